//! Linux: the mount table from `/proc/self/mountinfo`, unmounting with
//! fusermount3 (what a user who is not root may run) or umount(8), the
//! checks of `/dev/fuse`, and the tuning only Linux has.

use super::mounts::{parse_mountinfo, MountEntry};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `mmap` flag that maps every page at once (see `fs/data/mapped.rs`).
pub const MAP_POPULATE: libc::c_int = libc::MAP_POPULATE;

/// Allocate the disk blocks of `len` bytes of `file` at `offset` before
/// they are written, without changing its size (`fallocate(2)` with
/// `FALLOC_FL_KEEP_SIZE`). A buffered write into allocated blocks skips
/// ext4's per-block delayed-allocation bookkeeping; see
/// `api/download/progress.rs` for the figures. Only ENOSPC and EDQUOT are
/// errors: a filesystem without `fallocate` takes the write as it is.
pub fn preallocate(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Ok(());
    };
    if len == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: a plain syscall on an open descriptor.
        let r =
            unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => return Err(e),
            _ => return Ok(()),
        }
    }
}

/// FUSE request threads: two keep a cold read's replies flowing while the
/// other thread waits (PERFORMANCE.md). fuser allows more than one only here.
pub const FUSE_THREADS: usize = 2;

/// What a user runs by hand to detach a mount, for messages.
pub const UNMOUNT_TOOL: &str = "fusermount3 -u";

/// Every mount this process can see.
pub(super) fn mount_table() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// Unmount `path`: `fusermount3 -u` (`-uz` when `lazy`: detach now, finish
/// when the last file closes), then, for root, umount(8) (`-l`). On failure,
/// the tools' own messages, joined.
pub fn unmount(path: &Path, lazy: bool) -> Result<(), String> {
    let mut tries: Vec<Command> = Vec::new();
    let mut fm = Command::new("fusermount3");
    fm.arg(if lazy { "-uz" } else { "-u" }).arg(path);
    tries.push(fm);
    if super::is_root() {
        let mut um = Command::new("umount");
        if lazy {
            um.arg("-l");
        }
        um.arg(path);
        tries.push(um);
    }
    let mut errors = Vec::new();
    for mut cmd in tries {
        let program = cmd.get_program().to_string_lossy().into_owned();
        match cmd.stdin(std::process::Stdio::null()).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => errors.push(format!(
                "{program}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                errors.push(format!("{program} is missing: install fuse3"))
            }
            Err(e) => errors.push(format!("{program}: {e}")),
        }
    }
    Err(errors.join("; "))
}

/// Detach `path` now, forcibly (umount2(2): `MNT_FORCE` aborts the NFS
/// calls in flight, `MNT_DETACH` takes it out of the tree at once); root
/// only. The kernel finds the mountpoint without revalidating it, so a dead
/// NFS server does not make this wait.
pub fn force_detach(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_FORCE | libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(format!("umount2: {}", std::io::Error::last_os_error()))
    }
}

/// Can FUSE be used here? Each failure says how to fix it.
pub fn check_fuse() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err(
            "/dev/fuse is missing: load the module with `modprobe fuse` \
                    (or run the container with --device /dev/fuse)"
                .into(),
        );
    }
    let has_fusermount = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .any(|d| d.join("fusermount3").exists() || d.join("fusermount").exists())
        })
        .unwrap_or(false);
    if !has_fusermount {
        return Err("fusermount3 is missing: install it with `sudo apt-get install fuse3`".into());
    }
    // A user mounts through /dev/fuse (fuser opens it before it would try
    // fusermount3), so it must be readable and writable by everyone, as
    // distributions set it. Some containers leave it root-only.
    if super::is_root() {
        return Ok(());
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    match opened {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata("/dev/fuse")
                .map(|m| format!(" (mode {:03o})", m.permissions().mode() & 0o777))
                .unwrap_or_default();
            Err(format!(
                "/dev/fuse cannot be opened by you{mode}: users mount through it, so \
                 distributions make it `crw-rw-rw-`; ask an administrator to run \
                 `chmod 666 /dev/fuse` (or add a udev rule), or mount as root"
            ))
        }
        _ => Ok(()),
    }
}

/// May a user who is not root mount with allow_other or allow_root?
/// fusermount3 allows it only with `user_allow_other` in /etc/fuse.conf.
pub fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

/// Ask the kernel for 1 MiB read-ahead on this mount (root only; quietly
/// skipped otherwise): 1 MiB FUSE reads stream a cold file much faster
/// (PERFORMANCE.md). The mount may take a moment to answer `stat`, so this
/// tries for 5 s in a thread of its own.
pub fn raise_read_ahead(mountpoint: &Path) {
    let mp = mountpoint.to_owned();
    std::thread::spawn(move || {
        use std::os::unix::fs::MetadataExt;
        for _ in 0..50 {
            if let Ok(meta) = std::fs::metadata(&mp) {
                let dev = meta.dev();
                let (major, minor) = (libc::major(dev), libc::minor(dev));
                let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
                if std::fs::write(&path, "1024").is_ok() {
                    tracing::debug!(%path, "read-ahead raised to 1 MiB");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// May this user mount with allow_other? Said before mounting, with the fix.
pub fn check_allow_other() -> Result<(), String> {
    if super::is_root() || user_allow_other() {
        return Ok(());
    }
    Err(
        "allow_other needs `user_allow_other` in /etc/fuse.conf: add it with \
         `echo user_allow_other | sudo tee -a /etc/fuse.conf`, or mount without --allow-other"
            .into(),
    )
}

/// Linux's FUSE: the subtype shows in the mount table (`fuse.importfs`),
/// and fusermount3 can unmount when the process dies.
pub fn fuse_flavour(_api_deadline: Duration) -> super::FuseFlavour {
    super::FuseFlavour {
        subtype: true,
        auto_unmount: true,
        options: Vec::new(),
    }
}

/// Under `$HOME`, where caches go when `$XDG_CACHE_HOME` is unset (XDG).
pub const CACHE_HOME: &str = ".cache";

/// Under `$HOME`, where logs go when `$XDG_STATE_HOME` is unset (XDG).
pub const STATE_HOME: &str = ".local/state";

/// Linux mounts with FUSE unless told otherwise.
pub const NFS_BY_DEFAULT: bool = false;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// Blocks allocated ahead of a write leave the size alone (a partial
    /// download's file must not look longer than what it holds), and the
    /// bytes written there read back as written.
    #[test]
    fn preallocate_keeps_the_size() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("part"))
            .unwrap();
        preallocate(&f, 1 << 20, 1 << 20).unwrap();
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), 0, "size unchanged");
        f.write_all_at(b"abc", (1 << 20) + 5).unwrap();
        assert_eq!(f.metadata().unwrap().len(), (1 << 20) + 8);
        let mut back = [0u8; 3];
        f.read_exact_at(&mut back, (1 << 20) + 5).unwrap();
        assert_eq!(&back, b"abc");
    }

    /// The forced detach of a dead NFS mount, tried on a tmpfs (no NFS
    /// client here): it goes at once, and the mount table says so.
    #[test]
    fn force_detach_takes_a_mount_out_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m");
        std::fs::create_dir(&target).unwrap();
        let c = std::ffi::CString::new(target.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; a tmpfs takes no data.
        let mounted = unsafe {
            libc::mount(
                c"none".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        } == 0;
        if !mounted {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(!ci, "CI must be able to mount a tmpfs (root)");
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
            return;
        }
        // Whatever happens below, the tmpfs does not outlive the test.
        struct Detach(std::ffi::CString);
        impl Drop for Detach {
            fn drop(&mut self) {
                // SAFETY: a valid NUL-terminated path; failure is fine.
                unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _guard = Detach(c.clone());
        let on_top = || {
            mount_table()
                .unwrap()
                .into_iter()
                .rev()
                .find(|m| m.point == target)
        };
        assert_eq!(on_top().map(|m| m.fstype), Some("tmpfs".to_owned()));
        let busy = std::fs::File::create(target.join("open")).unwrap();
        force_detach(&target).expect("detached though a file is open");
        assert!(on_top().is_none(), "gone from the mount table");
        drop(busy);
        assert!(force_detach(&target).is_err(), "nothing left to detach");
    }
}
