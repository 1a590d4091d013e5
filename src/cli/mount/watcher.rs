//! The watcher of a mount: `importfs __watch-mount`, started by the mount
//! process, unmounts the mount if that process dies without doing so (a
//! SIGKILL, a crash), so the path does not answer "Transport endpoint is
//! not connected" (FUSE) or EIO forever (NFS).
//!
//! Subtle: it knows its mount by its id in the mount table, so a new mount
//! at the same path is never taken for the dead one.

use crate::cli::settings::KEY_ENV;
use crate::platform;
use std::path::Path;

/// Start `importfs __watch-mount` over this mount: it unmounts it if this
/// process dies without doing so. It runs in its own process group (a
/// Ctrl-C meant for us must not reach it) from `/` (so it keeps no
/// directory busy), and holds the read end of a pipe whose write end only
/// this process has.
pub fn spawn(mountpoint: &Path) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mountpoint = platform::mount_path(mountpoint).ok()?;
    let id = crate::cli::manage::importfs_mount_id(&mountpoint)?;
    let exe = std::env::current_exe().ok()?;
    let spawned = std::process::Command::new(exe)
        .arg("__watch-mount")
        .arg("--dev")
        .arg(&id)
        .arg(&mountpoint)
        .env_remove(KEY_ENV)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn();
    match spawned {
        Ok(child) => {
            tracing::debug!(pid = child.id(), %id, "auto-unmount watcher started");
            Some(child)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no auto-unmount: the watcher process did not start");
            None
        }
    }
}

/// The mount was unmounted: the watcher reads EOF, finds no mount, and
/// exits; wait for it.
pub fn stop(watcher: Option<std::process::Child>) {
    if let Some(mut watcher) = watcher {
        drop(watcher.stdin.take());
        let _ = watcher.wait();
    }
}
