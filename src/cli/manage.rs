//! `importfs unmount` and `importfs status`: the two things one does to a
//! running mount without knowing FUSE's tools.
//!
//! Subtle: a mount whose process died answers every stat with ENOTCONN,
//! and those are exactly the mounts one wants to unmount, so the path is
//! looked up in the mount table (`platform`) without stat()ing it. These
//! commands run no async runtime: the platform's unmount runs its tools
//! with `std::process` and waits for them in place.

use crate::platform::{self, MountEntry};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
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

/// The mount on top at `path`, found without `stat`ing the path (see the
/// module's comment), or None.
fn mount_at(path: &Path) -> Result<Option<MountEntry>> {
    platform::mount_at(path).context("cannot read the table of mounts")
}

/// Which importfs mount is at `path` now (its id in the mount table), if
/// there is one.
pub fn importfs_mount_id(path: &Path) -> Option<String> {
    match mount_at(path) {
        Ok(Some(m)) if m.is_importfs() => Some(m.id),
        _ => None,
    }
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The mount to watch over, by its id in the mount table (the device
    /// `major:minor` on Linux, the fsid on macOS).
    #[arg(long)]
    pub dev: String,
    /// The mountpoint.
    pub mountpoint: PathBuf,
}

/// `importfs __watch-mount`: the auto-unmount of mounts that cannot ask
/// fusermount3 for one (a user without `user_allow_other`, since fuser ties
/// auto_unmount to allow_root), and of every macFUSE mount. The mount process starts it with a pipe as
/// stdin and never writes: when that process ends, however it ends, the pipe
/// reads EOF. If the same mount (same id) is still there then, its
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
    let same_mount = importfs_mount_id(&args.mountpoint).as_deref() == Some(args.dev.as_str());
    if same_mount && platform::unmount(&args.mountpoint, true).is_ok() {
        // stderr may be gone with the terminal: never fail over a message.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "importfs: the process serving {} ended without unmounting it: unmounted",
            args.mountpoint.display()
        );
    }
    Ok(())
}

/// Fail unless an importfs filesystem is mounted at `path`.
fn require_importfs(path: &Path) -> Result<()> {
    match mount_at(path)? {
        Some(m) if m.is_importfs() => Ok(()),
        Some(m) => bail!(
            "{} is not an importfs mount (it is {})",
            path.display(),
            m.fstype
        ),
        None => bail!(
            "{} is not mounted (mount it with `importfs mount {}`)",
            path.display(),
            path.display()
        ),
    }
}

/// `importfs unmount`: the platform's unmount (fusermount3 -u on Linux,
/// what an unprivileged owner may run; unmount(2) on macOS); waits until
/// the mount is gone.
pub fn unmount(args: UnmountArgs) -> Result<()> {
    let mp = platform::mount_path(&args.mountpoint)
        .with_context(|| format!("cannot resolve {}", args.mountpoint.display()))?;
    require_importfs(&mp)?;
    let nfs = mount_at(&mp)?.is_some_and(|m| m.is_nfs());
    let done = if nfs {
        // An NFS mount of the NFS backend: umount(8), through sudo where
        // the OS keeps NFS mounts to root (and we are not).
        let sudo = platform::nfs::MOUNT_NEEDS_ROOT && !platform::is_root();
        platform::nfs::unmount(&mp, args.lazy, sudo)
    } else {
        platform::unmount(&mp, args.lazy)
    };
    if let Err(text) = done {
        if text.contains("busy") {
            bail!(
                "{} is busy: a process has a file open or its working directory there \
                 (find it with `lsof +f -- {}`); close it, or run `importfs unmount --lazy {}` ({text})",
                mp.display(),
                mp.display(),
                mp.display()
            );
        }
        bail!("cannot unmount {}: {text}", mp.display());
    }
    // The tools return once the kernel detached the mount; the table may lag a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mount_at(&mp)?.is_some_and(|m| m.is_importfs()) {
        if Instant::now() > deadline {
            bail!("{} is still mounted 10 s after unmounting", mp.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `importfs status`: the mount's `.importfs/stats`, as is.
pub fn status(args: StatusArgs) -> Result<()> {
    let mp = platform::mount_path(&args.mountpoint)
        .with_context(|| format!("cannot resolve {}", args.mountpoint.display()))?;
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
    fn a_plain_folder_or_another_filesystem_is_refused() {
        let e = require_importfs(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("is not an importfs mount"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = require_importfs(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not mounted"), "{e}");
    }
}
