//! What differs by operating system, in one place, so that the rest of the
//! crate is written once for Linux and macOS:
//!
//! - what is mounted where, and by whom ([`mount_at`], [`MountEntry`]):
//!   `/proc/self/mountinfo` on Linux, `getmntinfo(3)` on macOS;
//! - unmounting ([`unmount`]): `fusermount3 -u` on Linux (what a user who
//!   is not root may run), `unmount(2)` on macOS, where a lazy unmount
//!   becomes a forced one (macOS has no lazy unmount);
//! - whether a folder's owner is still alive ([`lock`]): by a `flock` the
//!   live process holds, never by PID;
//! - whether FUSE can be used here, with the fix for each OS ([`check_fuse`]);
//! - tuning only Linux has: 1 MiB read-ahead on the mount, `MAP_POPULATE`,
//!   two FUSE threads (fuser allows one elsewhere), blocks allocated before
//!   a download's write ([`preallocate`]);
//! - how the OS's NFS client mounts the NFS backend ([`nfs`]);
//! - the OS's secret store for the API key ([`secrets`]): the Secret
//!   Service on Linux, the Keychain on macOS;
//! - the page size, from `sysconf` (16 KiB on Apple Silicon, not 4 KiB);
//! - where caches and logs go by default: the XDG places on Linux,
//!   `~/Library/Caches` and `~/Library/Logs` on macOS (`$XDG_*` win on
//!   both; the config file is `~/.config/importfs` on both, as rclone's is).
//!
//! Subtle: the macOS half cannot be run on the machines this is developed
//! on; it is compiled for both Apple targets on every test run
//! (`scripts/check-macos.sh`), kept small, and each call cites the man page
//! it follows.

pub mod lock;
mod mounts;
pub mod nfs;
pub mod secrets;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as os;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("importfs runs on Linux and macOS");

pub use mounts::MountEntry;
pub use os::{
    check_allow_other, check_fuse, fuse_flavour, preallocate, raise_read_ahead, unmount,
    user_allow_other, CACHE_HOME, FUSE_THREADS, MAP_POPULATE, NFS_BY_DEFAULT, STATE_HOME,
    UNMOUNT_TOOL,
};

use std::path::Path;

/// How this OS's FUSE wants to be mounted, as plain data (the FUSE
/// adapter turns it into fuser's options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseFlavour {
    /// Give the mount a subtype (`fuse.importfs` in the mount table).
    pub subtype: bool,
    /// fusermount's auto_unmount is available.
    pub auto_unmount: bool,
    /// More options, passed as they are.
    pub options: Vec<String>,
}

/// The mount on top at `path` (the last one mounted there), found without
/// `stat`ing `path`: a FUSE mount whose process died answers every stat
/// with ENOTCONN, and those are exactly the mounts one wants to find.
/// `path` must be absolute and canonical up to its last component (see
/// [`mount_path`]).
pub fn mount_at(path: &Path) -> std::io::Result<Option<MountEntry>> {
    Ok(os::mount_table()?
        .into_iter()
        .rev()
        .find(|m| m.point == path))
}

/// `path` as the mount table spells it, made without `stat`ing `path`
/// itself: absolute, with its parent canonicalized.
pub fn mount_path(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let abs = std::path::absolute(path)?;
    Ok(match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or(abs),
        _ => abs,
    })
}

/// Is an importfs filesystem mounted at `path` right now?
pub fn is_importfs_mount(path: &Path) -> bool {
    mount_path(path)
        .and_then(|p| mount_at(&p))
        .is_ok_and(|m| m.is_some_and(|m| m.is_importfs()))
}

/// The size of a memory page, for aligning `mmap` offsets: 4 KiB on x86,
/// 16 KiB on Apple Silicon.
pub fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
    })
}

/// Whether we run as root, to whom the rules for users do not apply.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two_of_at_least_4k() {
        let p = page_size();
        assert!(p >= 4096 && p.is_power_of_two(), "{p}");
    }

    #[test]
    fn root_is_mounted_and_not_importfs() {
        let root = mount_at(Path::new("/")).unwrap().expect("/ is mounted");
        assert!(!root.is_importfs(), "{root:?}");
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_importfs_mount(dir.path()));
    }
}
