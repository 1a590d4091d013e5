//! `importfs unmount` and `importfs status`: the two things one does to a
//! running mount without knowing FUSE's tools.
//!
//! Subtle: a mount whose process died answers every stat with ENOTCONN
//! (FUSE) or makes it wait for the soft timeout, about 90 s (NFS), and
//! those are exactly the mounts one wants to unmount, so the path is looked
//! up in the mount table (`platform`) without stat()ing it, and the one
//! read through the mount (`.importfs/stats`) is made in a thread of its
//! own and given [`ANSWER_WITHIN`]: an NFS mount that does not answer in
//! that time is detached at once, forcibly. These commands run no async
//! runtime: the platform's unmount runs its tools with `std::process` and
//! waits for them in place.

use crate::platform::{self, MountEntry};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a read through the mount may take before its server is taken
/// for dead: a live one answers `.importfs/stats` from memory at once.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The text of `path`, read in a thread of its own: None when it has not
/// come within `within` (the thread is left to its read, which ends with
/// the process or with the forced unmount that follows).
fn read_within(path: PathBuf, within: Duration) -> Option<std::io::Result<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("importfs-read".into())
        .spawn(move || {
            let _ = tx.send(std::fs::read_to_string(&path));
        })
        .ok()?;
    rx.recv_timeout(within).ok()
}

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
    let entry = mount_at(&args.mountpoint).ok().flatten();
    let same_mount = entry
        .as_ref()
        .is_some_and(|m| m.is_importfs() && m.id == args.dev);
    // The server of an NFS mount was this process that ended: detach the
    // mount forcibly (fusermount3 knows no NFS mount).
    let done = match entry {
        Some(m) if same_mount && m.is_nfs() => {
            let sudo = platform::nfs::MOUNT_NEEDS_ROOT && !platform::is_root();
            platform::nfs::detach_dead(&args.mountpoint, sudo)
        }
        _ if same_mount => platform::unmount(&args.mountpoint, true),
        _ => Err(String::new()),
    };
    if done.is_ok() {
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
    let answers = answers(&mp);
    let nfs = mount_at(&mp)?.is_some_and(|m| m.is_nfs());
    let sudo = platform::nfs::MOUNT_NEEDS_ROOT && !platform::is_root();
    if nfs && !answers {
        eprintln!(
            "importfs: the server of {} does not answer (its process died?): detaching it",
            mp.display()
        );
    }
    let attempt = || {
        if nfs && answers {
            // An NFS mount of the NFS backend: umount(8), through sudo where
            // the OS keeps NFS mounts to root (and we are not).
            platform::nfs::unmount(&mp, args.lazy, sudo)
        } else if nfs {
            // One whose server does not answer is detached at once: a
            // plain umount could wait for the soft timeout.
            platform::nfs::detach_dead(&mp, sudo)
        } else {
            platform::unmount(&mp, args.lazy)
        }
    };
    // A file held open only for a moment (`importfs watch` or `tail -F`
    // looking at the events log, an indexer) makes the mount busy for that
    // moment: try again for a little while before calling it busy.
    let deadline = Instant::now() + BUSY_GRACE;
    let done = loop {
        match attempt() {
            Err(text) if text.contains("busy") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            done => break done,
        }
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

/// How long a busy mount is tried again before `importfs unmount` says it
/// is busy: longer than a poller's open, read and close of a file, even
/// over a slow NFS client.
const BUSY_GRACE: Duration = Duration::from_secs(3);

/// Whether the mount answers a read of its `.importfs/stats` within
/// [`ANSWER_WITHIN`]: an NFS mount whose server died would not, for the
/// whole soft timeout.
fn answers(mp: &Path) -> bool {
    let stats = mp.join(".importfs").join("stats");
    matches!(read_within(stats, ANSWER_WITHIN), Some(Ok(_)))
}

/// How long `importfs status` waits for the mount: longer than
/// [`ANSWER_WITHIN`], as it only reports.
const STATUS_WITHIN: Duration = Duration::from_secs(10);

/// `importfs status`: the mount's `.importfs/stats`, as is.
pub fn status(args: StatusArgs) -> Result<()> {
    let mp = platform::mount_path(&args.mountpoint)
        .with_context(|| format!("cannot resolve {}", args.mountpoint.display()))?;
    require_importfs(&mp)?;
    let stats = mp.join(".importfs").join("stats");
    let Some(read) = read_within(stats.clone(), STATUS_WITHIN) else {
        bail!(
            "{} does not answer within {} s: its server process may have died; \
             `importfs unmount {}` detaches it",
            mp.display(),
            STATUS_WITHIN.as_secs(),
            mp.display()
        );
    };
    match read {
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

    /// A mount whose server died makes a read wait (NFS's soft timeout):
    /// here a FIFO with no writer stands in for it. The read is given up
    /// in bounded time, and the mount taken for one that does not answer.
    #[test]
    fn a_mount_that_does_not_answer_is_given_up_in_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join(".importfs");
        std::fs::create_dir(&meta).unwrap();
        let fifo = meta.join("stats");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = Instant::now();
        assert!(!answers(dir.path()), "a mount that never answers");
        let took = t.elapsed();
        assert!(took >= ANSWER_WITHIN, "it waited {took:?}");
        assert!(took < ANSWER_WITHIN * 5, "bounded: {took:?}");
        // Let the reader thread go: a writer opens and closes the FIFO.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
        // A mount that answers.
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, "pid 1\n").unwrap();
        assert!(answers(dir.path()));
    }

    #[test]
    fn a_plain_folder_or_another_filesystem_is_refused() {
        let e = require_importfs(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("is not an importfs mount"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = require_importfs(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not mounted"), "{e}");
    }
}
