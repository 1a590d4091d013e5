//! `importfs unmount` and `importfs status`: the two things one does to a
//! running mount without knowing FUSE's tools.
//!
//! Subtle: a mount whose process died answers every stat with ENOTCONN,
//! and those are exactly the mounts one wants to unmount, so the path is
//! looked up in /proc/self/mountinfo without stat()ing it. These commands
//! run no async runtime, so they run fusermount3 and umount(8) with
//! `std::process` and wait for them in place.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct UnmountArgs {
    /// The mountpoint.
    pub mountpoint: PathBuf,
    /// Detach now even if busy; the kernel finishes once the last file is closed.
    #[arg(long, short = 'z')]
    pub lazy: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The mountpoint.
    pub mountpoint: PathBuf,
}

/// What /proc/self/mountinfo says is mounted at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    NotMounted,
    /// Mounted, with this filesystem type (`fuse.importfs`, `ext4`, ...).
    Mounted(String),
}

/// The path as mountinfo spells it, found without stat()ing the path itself:
/// a mount whose process died answers every stat with ENOTCONN, and those
/// are exactly the mounts one wants to unmount.
fn mountinfo_path(path: &Path) -> Result<PathBuf> {
    let abs =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or(abs.clone())),
        _ => Ok(abs),
    }
}

/// Decode mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Is something mounted at `path`, and what? The last matching line wins:
/// it is the mount on top.
pub fn mount_state(path: &Path) -> Result<MountState> {
    Ok(match mount_entry(path)? {
        Some((_, fstype)) => MountState::Mounted(fstype),
        None => MountState::NotMounted,
    })
}

/// The mount on top at `path`, as mountinfo has it: its device
/// (`major:minor`, unique among the mounts of the moment) and its type.
fn mount_entry(path: &Path) -> Result<Option<(String, String)>> {
    let want = mountinfo_path(path)?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    let mut found = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').take(5).collect();
        let [_, _, dev, _, point] = fields[..] else {
            continue;
        };
        if Path::new(&unescape(point)) != want {
            continue;
        }
        let fstype = line
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        found = Some((dev.to_owned(), fstype.to_owned()));
    }
    Ok(found)
}

/// The device of the importfs mount at `path`, if there is one.
pub fn importfs_device(path: &Path) -> Option<String> {
    match mount_entry(path) {
        Ok(Some((dev, fstype))) if is_importfs(&fstype) => Some(dev),
        _ => None,
    }
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The device (major:minor) of the mount to watch over.
    #[arg(long)]
    pub dev: String,
    /// The mountpoint.
    pub mountpoint: PathBuf,
}

/// `importfs __watch-mount`: the auto-unmount of mounts that cannot ask
/// fusermount3 for one (a user without `user_allow_other`, since fuser ties
/// auto_unmount to allow_root). The mount process starts it with a pipe as
/// stdin and never writes: when that process ends, however it ends, the pipe
/// reads EOF. If the same mount (same device) is still there then, its
/// process died without unmounting: detach it, so the path does not answer
/// "Transport endpoint is not connected".
pub fn watch_mount(args: WatchArgs) -> Result<()> {
    use std::io::Read;
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if importfs_device(&args.mountpoint).as_deref() == Some(args.dev.as_str()) {
        let done = Command::new("fusermount3")
            .arg("-uz")
            .arg(&args.mountpoint)
            .status()
            .is_ok_and(|s| s.success());
        if done {
            // stderr may be gone with the terminal: never fail over a message.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "importfs: the process serving {} ended without unmounting it: unmounted",
                args.mountpoint.display()
            );
        }
    }
    Ok(())
}

fn is_importfs(fstype: &str) -> bool {
    fstype == "fuse.importfs" || (fstype.starts_with("fuse") && fstype.contains("importfs"))
}

/// Fail unless an importfs filesystem is mounted at `path`.
fn require_importfs(path: &Path) -> Result<()> {
    match mount_state(path)? {
        MountState::Mounted(t) if is_importfs(&t) => Ok(()),
        MountState::Mounted(t) => bail!("{} is not an importfs mount (it is {t})", path.display()),
        MountState::NotMounted => bail!(
            "{} is not mounted (mount it with `importfs mount {}`)",
            path.display(),
            path.display()
        ),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `importfs unmount`: fusermount3 -u (what an unprivileged owner may run),
/// then umount(8) when root; waits until the mount is gone.
pub fn unmount(args: UnmountArgs) -> Result<()> {
    let mp = mountinfo_path(&args.mountpoint)?;
    require_importfs(&mp)?;
    let mut tries: Vec<Command> = Vec::new();
    let mut fm = Command::new("fusermount3");
    fm.arg(if args.lazy { "-uz" } else { "-u" }).arg(&mp);
    tries.push(fm);
    if is_root() {
        let mut um = Command::new("umount");
        if args.lazy {
            um.arg("-l");
        }
        um.arg(&mp);
        tries.push(um);
    }
    let mut errors = Vec::new();
    for mut cmd in tries {
        let program = cmd.get_program().to_string_lossy().into_owned();
        match cmd.output() {
            Ok(out) if out.status.success() => {
                errors.clear();
                break;
            }
            Ok(out) => errors.push(format!(
                "{program}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => errors.push(format!("{program}: {e}")),
        }
    }
    if !errors.is_empty() {
        let text = errors.join("; ");
        if text.contains("busy") {
            bail!(
                "{} is busy: a process has a file open or its working directory there \
                 (find it with `fuser -vm {}`); close it, or run `importfs unmount --lazy {}` ({text})",
                mp.display(),
                mp.display(),
                mp.display()
            );
        }
        if text.contains("No such file") && !is_root() {
            bail!(
                "cannot unmount {}: fusermount3 is missing; install fuse3 ({text})",
                mp.display()
            );
        }
        bail!("cannot unmount {}: {text}", mp.display());
    }
    // fusermount3 returns once the kernel detached the mount; mountinfo may lag a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mount_state(&mp)? != MountState::NotMounted {
        if Instant::now() > deadline {
            bail!("{} is still mounted 10 s after unmounting", mp.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `importfs status`: the mount's `.importfs/stats`, as is.
pub fn status(args: StatusArgs) -> Result<()> {
    let mp = mountinfo_path(&args.mountpoint)?;
    require_importfs(&mp)?;
    let stats = mp.join(".importfs").join("stats");
    match std::fs::read_to_string(&stats) {
        Ok(text) => {
            println!("mountpoint {}", mp.display());
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "the importfs process behind {} is gone (Transport endpoint is not connected): \
             run `importfs unmount {}` and mount again; its log may say why it stopped",
            mp.display(),
            mp.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", stats.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn root_is_mounted_and_not_importfs() {
        assert!(matches!(
            mount_state(Path::new("/")).unwrap(),
            MountState::Mounted(_)
        ));
        assert!(require_importfs(Path::new("/")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = require_importfs(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not mounted"), "{e}");
    }
}
