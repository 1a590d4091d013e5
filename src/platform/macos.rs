//! macOS: the mount table from `getmntinfo(3)`, unmounting with
//! `unmount(2)`, and the checks for macFUSE.
//!
//! Subtle: this file cannot be run where importfs is developed; it is
//! compiled for both Apple targets on every test run. It follows the man
//! pages getmntinfo(3), statfs(2) and unmount(2), and, for falling back to
//! `diskutil unmount`, what rclone's `cmd/mountlib` does on macOS.

use super::mounts::MountEntry;
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// macOS has no `MAP_POPULATE`: pages are mapped as they are touched.
pub const MAP_POPULATE: libc::c_int = 0;

/// Nothing to do: APFS allocates as it writes, and `F_PREALLOCATE`
/// (fcntl(2)) reserves space only at the end of a file, while downloads
/// write chunks at any offset.
pub fn preallocate(_file: &std::fs::File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}

/// fuser serves a session with one thread outside Linux.
pub const FUSE_THREADS: usize = 1;

/// What a user runs by hand to detach a mount, for messages.
pub const UNMOUNT_TOOL: &str = "umount";

/// Where macFUSE 4 and later installs its file system bundle.
const MACFUSE_BUNDLE: &str = "/Library/Filesystems/macfuse.fs";

/// A fixed-size C string field of `statfs` as bytes, up to its NUL.
fn field(chars: &[libc::c_char]) -> &[u8] {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(chars.as_ptr().cast(), chars.len()) };
    CStr::from_bytes_until_nul(bytes).map_or(bytes, CStr::to_bytes)
}

/// Every mount, from getmntinfo(3) with `MNT_NOWAIT` (the kernel's
/// current list, without asking each filesystem, so a hung mount does not
/// hang us).
pub(super) fn mount_table() -> std::io::Result<Vec<MountEntry>> {
    let mut buf: *mut libc::statfs = std::ptr::null_mut();
    // SAFETY: getmntinfo points `buf` at an array of `n` statfs it owns.
    let n = unsafe { libc::getmntinfo(&mut buf, libc::MNT_NOWAIT) };
    if n <= 0 || buf.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` entries are valid at `buf` until the next getmntinfo call.
    let all = unsafe { std::slice::from_raw_parts(buf, n as usize) };
    Ok(all
        .iter()
        .map(|s| {
            // fsid_t's two words are private in libc; it is `[i32; 2]` in C.
            // SAFETY: fsid_t is repr(C) and exactly two i32.
            let fsid: [i32; 2] = unsafe { std::mem::transmute(s.f_fsid) };
            MountEntry {
                point: PathBuf::from(OsStr::from_bytes(field(&s.f_mntonname))),
                fstype: String::from_utf8_lossy(field(&s.f_fstypename)).into_owned(),
                source: String::from_utf8_lossy(field(&s.f_mntfromname)).into_owned(),
                id: format!("{:x}:{:x}", fsid[0], fsid[1]),
            }
        })
        .collect())
}

/// Unmount `path` with unmount(2). macOS has no lazy unmount, so `lazy`
/// forces it (`MNT_FORCE`): open files then fail instead of finishing. When
/// the call is refused (a mount made through DiskArbitration by another
/// process), `diskutil unmount [force]` is tried, as rclone does.
pub fn unmount(path: &Path, lazy: bool) -> Result<(), String> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let flags = if lazy { libc::MNT_FORCE } else { 0 };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::unmount(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        return Err(format!("unmount: {e} (busy)"));
    }
    let mut du = Command::new("/usr/sbin/diskutil");
    du.arg("unmount");
    if lazy {
        du.arg("force");
    }
    match du.arg(path).stdin(std::process::Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "unmount: {e}; diskutil: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e2) => Err(format!("unmount: {e}; diskutil: {e2}")),
    }
}

/// Detach `path` now, forcibly: macOS has no lazy unmount, so this is
/// unmount(2) with `MNT_FORCE` (or `diskutil unmount force`), as
/// [`unmount`] does when asked to be lazy.
pub fn force_detach(path: &Path) -> Result<(), String> {
    unmount(path, true)
}

/// Can FUSE be used here? On macOS FUSE is macFUSE, a kernel extension,
/// and only a build with the `macfuse` feature speaks to it.
pub fn check_fuse() -> Result<(), String> {
    if !cfg!(feature = "macfuse") {
        return Err(
            "this importfs was built without FUSE support: on macOS FUSE means \
                    macFUSE, a kernel extension. Install it (`brew install --cask macfuse`, \
                    then allow it under System Settings > Privacy & Security and restart), \
                    and build importfs with `cargo install --features macfuse`"
                .into(),
        );
    }
    if !Path::new(MACFUSE_BUNDLE).exists() {
        return Err(format!(
            "macFUSE is not installed ({MACFUSE_BUNDLE} is missing): install it with \
             `brew install --cask macfuse`, then allow it under System Settings > \
             Privacy & Security and restart"
        ));
    }
    Ok(())
}

/// macFUSE's own mount helper decides who may use allow_other; nothing to
/// read beforehand.
pub fn user_allow_other() -> bool {
    false
}

/// macOS has no per-mount read-ahead knob: nothing to do.
pub fn raise_read_ahead(_mountpoint: &Path) {}

/// May this user mount with allow_other? macFUSE's mount helper decides,
/// and its refusal reaches the user as the mount's error.
pub fn check_allow_other() -> Result<(), String> {
    Ok(())
}

/// macFUSE (mount_macfuse(8)'s options): no subtype and no auto_unmount,
/// which are fusermount's; a volume name for Finder; no AppleDouble `._`
/// files and no Finder xattrs, which only the API could store; and a
/// `daemon_timeout` above the API deadline, so that a slow API call is not
/// taken for a dead filesystem and the volume ejected.
pub fn fuse_flavour(api_deadline: std::time::Duration) -> super::FuseFlavour {
    let timeout = (api_deadline.as_secs() + 30).max(60);
    super::FuseFlavour {
        subtype: false,
        auto_unmount: false,
        options: vec![
            "volname=importfs".into(),
            "noappledouble".into(),
            "noapplexattr".into(),
            format!("daemon_timeout={timeout}"),
        ],
    }
}

/// Under `$HOME`, where caches go when `$XDG_CACHE_HOME` is unset: the
/// Mac's own place, which backups skip and which Go's `os.UserCacheDir`
/// (so rclone's VFS cache) uses too.
pub const CACHE_HOME: &str = "Library/Caches";

/// Under `$HOME`, where logs go when `$XDG_STATE_HOME` is unset: where
/// Console.app looks for a user's logs.
pub const STATE_HOME: &str = "Library/Logs";

/// macOS mounts through its own NFS client by default: its FUSE, macFUSE,
/// is a kernel extension that an Apple Silicon Mac loads only after a
/// reboot into recovery mode.
pub const NFS_BY_DEFAULT: bool = true;
