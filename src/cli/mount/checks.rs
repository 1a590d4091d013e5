//! The checks before mounting, each failing with the fix in its message:
//! FUSE present and usable, the mountpoint a usable empty directory, not
//! already an importfs mount.
//!
//! Subtle: these run before the background mount is started, so their
//! errors reach the user's terminal instead of a log file; and for a user
//! who is not root they check what the OS's FUSE (`platform::check_fuse`)
//! would refuse later (a mountpoint they cannot write to, a root-only
//! /dev/fuse), so that the message can say how to fix it.

use crate::platform::{self, is_root};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Is `path` a mountpoint of an importfs filesystem right now?
pub fn is_mounted(path: &Path) -> bool {
    platform::is_importfs_mount(path)
}

pub fn check_mountpoint(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // A mount whose process died: every stat fails with ENOTCONN until
        // someone unmounts it, and "does not exist" would send users astray.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "{} is a dead mount (Transport endpoint is not connected: the process serving it \
             is gone): clear it with `importfs unmount {}` (or `{} {}`) and mount again",
            path.display(),
            path.display(),
            platform::UNMOUNT_TOOL,
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the mountpoint {} does not exist: create it with `mkdir -p {}`",
            path.display(),
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot use the mountpoint {}", path.display()))
        }
    };
    if !meta.is_dir() {
        bail!("the mountpoint {} is not a directory", path.display());
    }
    // fusermount3 and macFUSE let a user mount only on a directory they can write to.
    if !is_root() {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .context("the mountpoint has a NUL byte")?;
        // SAFETY: a valid NUL-terminated path; access has no other preconditions.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            use std::os::unix::fs::MetadataExt;
            bail!(
                "you cannot write to the mountpoint {} (owner uid {}), and FUSE lets users mount \
                 only on directories they can write to: use one of your own, e.g. `mkdir -p ~/importio`",
                path.display(),
                meta.uid()
            );
        }
    }
    if is_mounted(path) {
        bail!(
            "{} is already an importfs mount: unmount it first with `importfs unmount {}`",
            path.display(),
            path.display()
        );
    }
    if std::fs::read_dir(path)?.next().is_some() {
        bail!(
            "the mountpoint {} is not empty: mount on an empty directory",
            path.display()
        );
    }
    Ok(())
}

/// Can the NFS backend mount here? The OS's NFS client must be there, and
/// on Linux the mount needs root: run as root, or `--sudo` for the mount
/// and umount commands only.
pub fn check_nfs_available(sudo: bool) -> Result<()> {
    platform::nfs::check_client(sudo).map_err(anyhow::Error::msg)?;
    if platform::nfs::MOUNT_NEEDS_ROOT && !is_root() && !sudo {
        bail!(
            "an NFS mount needs root here: run `importfs mount` as root, or add --sudo to run \
             only the mount and umount commands through sudo (the server runs as you)"
        );
    }
    Ok(())
}

/// Can FUSE be used here? Fails with what to install or change.
pub fn check_fuse_available() -> Result<()> {
    platform::check_fuse().map_err(anyhow::Error::msg)
}
