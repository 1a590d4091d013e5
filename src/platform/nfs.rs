//! How the OS's own NFS client mounts importfs's server: the options for
//! Linux's `mount -t nfs` (nfs(5)) and macOS's `mount_nfs` (mount_nfs(8)).
//! Both are built on every OS (they are printed by `importfs serve nfs`)
//! and tested as text.
//!
//! The choices, the same on both: NFSv3 over TCP; MOUNT on the server's own
//! port (it has no portmapper); locks kept in the client's kernel, as the
//! server has no lock manager (`nolock` on Linux, `locallocks` on macOS:
//! see [`macos_options`]); a reserved source port (the server refuses
//! others by default); 1 MiB reads and writes (what the server's FSINFO
//! offers); attribute caching for as long as the mount's
//! `--metadata-ttl`, at least 1 s; and a soft mount whose timeout is well
//! above the API's call deadline (30 s), so that a slow API call is never
//! an EIO, while a dead server gives EIO in about 50 s (measured with Linux
//! 6.1, tests/kernel_nfs_dead.rs; nfs(5)'s "linear backoff" bounds it at
//! 15 + 30 + 45 s for `timeo=150,retrans=2`) instead of a shell that
//! hangs. `importfs unmount` does not wait for that: it
//! detaches a mount whose server is gone at once (`cli/manage.rs`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A mount of the server on `port`.
#[derive(Debug, Clone, Copy)]
pub struct NfsMount {
    pub port: u16,
    /// How long the client may trust attributes (`--metadata-ttl`).
    pub attr_ttl: Duration,
    pub read_only: bool,
}

/// What the client mounts: `127.0.0.1:/importfs`.
pub fn source(export: &str) -> String {
    format!("127.0.0.1:{export}")
}

/// Seconds of attribute caching: the metadata TTL, rounded up, at least 1.
fn actimeo(m: &NfsMount) -> u64 {
    m.attr_ttl.as_secs_f64().ceil().max(1.0) as u64
}

/// `mount -t nfs -o OPTIONS` on Linux (nfs(5)). `timeo` is in tenths of a
/// second: 15 s a try, 3 tries, then EIO.
pub fn linux_options(m: &NfsMount) -> String {
    let p = m.port;
    let mut o = format!(
        "vers=3,proto=tcp,port={p},mountport={p},mountproto=tcp,nolock,\
         rsize=1048576,wsize=1048576,actimeo={},soft,timeo=150,retrans=2",
        actimeo(m)
    );
    if m.read_only {
        o.push_str(",ro");
    }
    o
}

/// `mount_nfs -o OPTIONS` on macOS (Apple's mount_nfs(8), NFS-339 in
/// apple-oss-distributions/NFS). Each choice and its source:
/// - `locallocks`, not `nolocks`: mount_nfs(8) says `nolocks` makes "any
///   attempt to perform file locking operations" return ENOTSUP, which
///   breaks every program that takes a `flock`/`fcntl` lock (Python's
///   `filelock`, sqlite); `locallocks` keeps locks in the client's kernel,
///   the only place they can be, as the server has no NLM. hf-mount made
///   the same switch (huggingface/hf-mount eee917b, "use locallocks on
///   macOS so flock/fcntl work", `src/nfs.rs`).
/// - `resvport`: a reserved source port, taken by the kernel (the server
///   refuses others by default; mount_nfs(8) says it needs root, yet a
///   user's mount on a folder they own gets it from the kernel).
/// - 1 MiB `rsize`/`wsize`: xnu's `bsd/nfs/nfsproto.h` allows up to
///   `NFS_MAXDATA` = 8 * 64 * PAGE_SIZE (2 MiB on Intel, 8 MiB on Apple
///   Silicon); the 128 KiB of xet-core's nfsserve examples is an older
///   limit. hf-mount mounts with `rsize=1048576` (and `wsize`) on macOS.
///   A long sequential read then costs an eighth of the READs it costs at
///   128 KiB (the kernel-client harness of issue 28 is to measure what that is worth).
/// - `soft,intr`: soft makes calls fail "after retrans round trip timeout
///   intervals" (mount_nfs(8)); `intr` lets Ctrl-C end a call that waits
///   on an unresponsive server (EINTR) rather than leave it unkillable.
///   rclone's `nfsmount` passes only `port`, `mountport` and `tcp`
///   (cmd/nfsmount/nfsmount.go) and unmounts with `diskutil umount force`.
pub fn macos_options(m: &NfsMount) -> String {
    let p = m.port;
    let mut o = format!(
        "vers=3,tcp,port={p},mountport={p},locallocks,resvport,\
         rsize=1048576,wsize=1048576,actimeo={},soft,intr,timeo=150,retrans=2",
        actimeo(m)
    );
    if m.read_only {
        o.push_str(",rdonly");
    }
    o
}

/// Does mounting NFS here need root? On Linux mount(8) refuses an NFS
/// mount to a user unless fstab names it; macOS lets a user mount on a
/// directory they own.
pub const MOUNT_NEEDS_ROOT: bool = cfg!(target_os = "linux");

/// `program args...`, through `sudo` when asked. Without a terminal to
/// ask a password on (a background mount), sudo is told not to ask
/// (`-n`), so that it fails at once instead of waiting for nobody.
fn maybe_sudo(program: &str, args: &[&std::ffi::OsStr], sudo: bool) -> Command {
    if !sudo {
        let mut c = Command::new(program);
        c.args(args);
        return c;
    }
    let mut c = Command::new("sudo");
    // SAFETY: isatty has no preconditions.
    if unsafe { libc::isatty(0) } == 0 {
        c.arg("-n");
    }
    c.arg("--").arg(program).args(args);
    c
}

/// Can the OS's NFS client mount here? Each failure says what to do.
/// On Linux mount.nfs is needed only through sudo: without it importfs
/// calls mount(2) itself ([`mount_syscall`]).
pub fn check_client(sudo: bool) -> Result<(), String> {
    if cfg!(target_os = "macos") {
        return if Path::new("/sbin/mount_nfs").exists() {
            Ok(())
        } else {
            Err("/sbin/mount_nfs is missing: macOS ships it; is this a Mac?".into())
        };
    }
    let helper = ["/sbin/mount.nfs", "/usr/sbin/mount.nfs"];
    if sudo && !helper.iter().any(|p| Path::new(p).exists()) {
        return Err("mount.nfs is missing: install the NFS client with \
                    `sudo apt-get install nfs-common` (or use --backend fuse)"
            .into());
    }
    let known = std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| {
        f.lines()
            .any(|l| l.split_whitespace().last() == Some("nfs"))
    });
    let module = Path::new("/sys/module/nfs").exists() || has_nfs_module();
    if !known && !module {
        return Err(
            "this kernel has no NFS client (no nfs in /proc/filesystems and no nfs \
                    module): load it with `sudo modprobe nfs`, or use --backend fuse"
                .into(),
        );
    }
    Ok(())
}

/// Is there an nfs module for the running kernel, to be loaded on mount?
fn has_nfs_module() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = Path::new("/lib/modules").join(release.trim());
    std::fs::read_to_string(dir.join("modules.dep"))
        .is_ok_and(|d| d.lines().any(|l| l.contains("/nfs.ko")))
}

/// The command that mounts `export` of the server `m` on `mountpoint`:
/// `mount -t nfs` on Linux, `mount_nfs` on macOS.
pub fn mount_command(m: &NfsMount, export: &str, mountpoint: &Path, sudo: bool) -> Command {
    let src = source(export);
    if cfg!(target_os = "macos") {
        let opts = macos_options(m);
        let args = [
            "-o".as_ref(),
            opts.as_ref(),
            src.as_ref(),
            mountpoint.as_os_str(),
        ];
        maybe_sudo("/sbin/mount_nfs", &args, sudo)
    } else {
        let opts = linux_options(m);
        let args = [
            "-t".as_ref(),
            "nfs".as_ref(),
            "-o".as_ref(),
            opts.as_ref(),
            src.as_ref(),
            mountpoint.as_os_str(),
        ];
        maybe_sudo("mount", &args, sudo)
    }
}

/// Linux: mount `export` of the server `m` on `mountpoint` with mount(2)
/// itself, the options as text (nfs(5)) plus `addr=127.0.0.1`, which is
/// what mount.nfs adds before it makes the same call; so no mount.nfs
/// (nfs-common) is needed. Needs root (CAP_SYS_ADMIN), as mount(8) would.
/// Blocks until the kernel's client has asked the server (MOUNT, FSINFO).
#[cfg(target_os = "linux")]
pub fn mount_syscall(m: &NfsMount, export: &str, mountpoint: &Path) -> Result<(), String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let text = |s: &[u8]| CString::new(s).map_err(|_| "a NUL byte in a mount argument".to_owned());
    let src = text(source(export).as_bytes())?;
    let target = text(mountpoint.as_os_str().as_bytes())?;
    let data = text(format!("{},addr=127.0.0.1", linux_options(m)).as_bytes())?;
    let flags = if m.read_only { libc::MS_RDONLY } else { 0 };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            c"nfs".as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    Err(format!(
        "mount(2) of {} on {}: {}",
        source(export),
        mountpoint.display(),
        std::io::Error::last_os_error()
    ))
}

/// Unmount an NFS mount of ours: umount(8) through sudo when asked (`-l`
/// lazy on Linux, `-f` forced on macOS, which has no lazy unmount), else
/// the platform's own unmount.
pub fn unmount(mountpoint: &Path, lazy: bool, sudo: bool) -> Result<(), String> {
    if !sudo {
        return super::unmount(mountpoint, lazy);
    }
    let flag = if cfg!(target_os = "macos") {
        "-f"
    } else {
        "-l"
    };
    let mut args: Vec<&std::ffi::OsStr> = Vec::new();
    if lazy {
        args.push(flag.as_ref());
    }
    args.push(mountpoint.as_os_str());
    sudo_umount(&args)
}

/// `sudo umount ARGS`, its stderr as the error.
fn sudo_umount(args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = maybe_sudo("umount", args, true)
        .stdin(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("sudo: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Err(format!(
        "sudo umount {}: {}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Detach an NFS mount whose server is gone, at once and forcibly: calls
/// waiting on it fail (EIO) instead of waiting out the soft timeout, and
/// nothing on the way stats the path or flushes to the dead server. As
/// root, the system call itself (Linux: umount2(2) with `MNT_FORCE |
/// MNT_DETACH`, as hf-mount's `unmount_nfs` does; macOS: unmount(2) with
/// `MNT_FORCE`, as rclone's `diskutil umount force`); through sudo,
/// `umount -f -l` (umount(8): force, lazy).
pub fn detach_dead(mountpoint: &Path, sudo: bool) -> Result<(), String> {
    if !sudo {
        return super::os::force_detach(mountpoint);
    }
    sudo_umount(&["-f".as_ref(), "-l".as_ref(), mountpoint.as_os_str()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_the_port_twice_and_follow_the_ttl() {
        let m = NfsMount {
            port: 40123,
            attr_ttl: Duration::from_millis(2500),
            read_only: false,
        };
        let l = linux_options(&m);
        assert!(l.contains("port=40123,mountport=40123"), "{l}");
        assert!(l.contains("vers=3") && l.contains("nolock") && l.contains("soft"));
        assert!(l.contains("actimeo=3") && !l.contains(",ro"), "{l}");
        let mac = macos_options(&NfsMount {
            read_only: true,
            attr_ttl: Duration::ZERO,
            ..m
        });
        assert!(
            mac.contains("locallocks") && !mac.contains("nolocks") && mac.contains("resvport"),
            "{mac}"
        );
        assert!(
            mac.contains("soft,intr,") && mac.contains("rsize=1048576"),
            "{mac}"
        );
        assert!(
            !l.contains("intr"),
            "Linux ignores intr since 2.6.25 (nfs(5)): {l}"
        );
        assert!(
            mac.contains("actimeo=1") && mac.ends_with(",rdonly"),
            "{mac}"
        );
        assert_eq!(source("/importfs"), "127.0.0.1:/importfs");
    }

    #[test]
    fn the_mount_command_is_the_os_client_and_sudo_runs_only_it() {
        let m = NfsMount {
            port: 2049,
            attr_ttl: Duration::from_secs(5),
            read_only: false,
        };
        let plain = mount_command(&m, "/importfs", Path::new("/mnt/x"), false);
        let args: Vec<String> = plain
            .get_args()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert_eq!(args.last().unwrap(), "/mnt/x");
        assert!(args.contains(&"127.0.0.1:/importfs".to_owned()), "{args:?}");
        let sudo = mount_command(&m, "/importfs", Path::new("/mnt/x"), true);
        assert_eq!(sudo.get_program(), "sudo");
        let sargs: Vec<String> = sudo
            .get_args()
            .map(|a| a.to_string_lossy().into())
            .collect();
        let program = &sargs[sargs.iter().position(|a| a == "--").unwrap() + 1];
        assert_eq!(program, plain.get_program().to_str().unwrap());
    }
}
