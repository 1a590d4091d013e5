//! The checks before mounting, each failing with the fix in its message:
//! FUSE present and usable, the mountpoint a usable empty directory, not
//! already an importfs mount.
//!
//! Subtle: these run before the background mount is started, so their
//! errors reach the user's terminal instead of a log file; and for a user
//! who is not root they check what fusermount3 or /dev/fuse would refuse
//! later (a mountpoint they cannot write to, a root-only /dev/fuse), so
//! that the message can say how to fix it.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Is `path` a mountpoint of an importfs filesystem right now?
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        f.get(4) == Some(&want.as_str())
            && fstype.starts_with("fuse")
            && fstype.contains("importfs")
    })
}

pub fn check_mountpoint(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // A mount whose process died: every stat fails with ENOTCONN until
        // someone unmounts it, and "does not exist" would send users astray.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "{} is a dead mount (Transport endpoint is not connected: the process serving it \
             is gone): clear it with `importfs unmount {}` (or `fusermount3 -uz {}`) and mount again",
            path.display(),
            path.display(),
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the mountpoint {} does not exist: create it with `mkdir -p {}`",
            path.display(),
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot use the mountpoint {}", path.display())),
    };
    if !meta.is_dir() {
        bail!("the mountpoint {} is not a directory", path.display());
    }
    // fusermount3 lets a user mount only on a directory they can write to.
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
            "{} is already an importfs mount: unmount it first with `fusermount3 -u {}`",
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

pub fn check_fuse_available() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse is missing: load the module with `modprobe fuse` (or run the container with --device /dev/fuse)");
    }
    let has_fusermount = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .any(|d| d.join("fusermount3").exists() || d.join("fusermount").exists())
        })
        .unwrap_or(false);
    if !has_fusermount {
        bail!("fusermount3 is missing: install it with `sudo apt-get install fuse3`");
    }
    // A user mounts through /dev/fuse (fuser opens it before it would try
    // fusermount3), so it must be readable and writable by everyone, as
    // distributions set it. Some containers leave it root-only.
    if !is_root() {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata("/dev/fuse")
                    .map(|m| format!(" (mode {:03o})", m.permissions().mode() & 0o777))
                    .unwrap_or_default();
                bail!(
                    "/dev/fuse cannot be opened by you{mode}: users mount through it, so \
                     distributions make it `crw-rw-rw-`; ask an administrator to run \
                     `chmod 666 /dev/fuse` (or add a udev rule), or mount as root"
                );
            }
        }
    }
    Ok(())
}

pub fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

/// Whether we run as root, to whom FUSE's rules for users do not apply.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
