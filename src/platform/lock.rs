//! Folders owned by a live process, known by a lock rather than a PID.
//!
//! Each mount keeps its partial downloads in a folder of its own. A mount
//! killed with SIGKILL cannot remove it, so the next mount removes the
//! folders whose owner is gone. Asking "is PID N alive" gets that wrong both
//! ways: a dead process not yet reaped still has a `/proc/N`, a reused PID
//! makes a stale folder look live forever, and macOS has no `/proc` at all.
//! So the owner holds an exclusive `flock(2)` on `<folder>/lock` for as long
//! as it lives; the kernel drops it when the process ends, however it ends
//! (even before it is reaped). A folder whose lock can be taken is stale.
//!
//! Subtle: a folder must never be seen under its final name without its
//! lock held, or another process could take the free lock and remove it. So
//! it is made under a temporary name (`.NAME.new-RANDOM`), locked, and only
//! then renamed into place; the rename keeps the lock, which belongs to the
//! open file, not to the name. `flock` locks conflict between two opens even
//! in one process, so the owner's own check sees its folder as in use.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file inside an owned folder.
const LOCK_FILE: &str = "lock";

/// A half-made folder (a crash between creating and renaming it) is removed
/// once it is this old; no live process takes longer than this to rename.
const NEW_DIR_GRACE: Duration = Duration::from_secs(60);

/// A private folder this process owns while the value lives, removed (with
/// everything in it) on drop.
#[derive(Debug)]
pub struct OwnedDir {
    path: PathBuf,
    _lock: File,
}

impl OwnedDir {
    /// Make `parent/name` (mode 0700) with its lock held. A stale folder of
    /// that name is replaced; a live one is an `AlreadyExists` error.
    pub fn create(parent: &Path, name: &str) -> io::Result<OwnedDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = parent.join(name);
        let tmp = parent.join(format!(".{name}.new-{:016x}", fastrand::u64(..)));
        std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
        let made = (|| {
            let lock = File::create(tmp.join(LOCK_FILE))?;
            if !try_lock(&lock)? {
                return Err(io::Error::other("a new folder's lock is taken"));
            }
            match remove_if_stale(&path) {
                Ok(true) | Err(_) => {}
                Ok(false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} belongs to a live process", path.display()),
                    ))
                }
            }
            std::fs::rename(&tmp, &path)?;
            Ok(lock)
        })();
        match made {
            Ok(lock) => Ok(OwnedDir { path, _lock: lock }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Take the exclusive lock without waiting: `Ok(false)` if someone has it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on an open descriptor; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Is the folder at `dir` owned by a live process (its lock is held)? A
/// folder with no lock file has no live owner: it was left by a version
/// that named owners by PID only.
pub fn in_use(dir: &Path) -> bool {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => !try_lock(&f).unwrap_or(false),
        Err(_) => false,
    }
}

/// Remove `dir` if no live process owns it, holding its lock while doing
/// so. `Ok(true)` if it is gone (or never was), `Ok(false)` if it is in use.
pub fn remove_if_stale(dir: &Path) -> io::Result<bool> {
    if !dir.exists() {
        return Ok(true);
    }
    let lock = File::open(dir.join(LOCK_FILE)).ok();
    if let Some(f) = &lock {
        if !try_lock(f)? {
            return Ok(false);
        }
    }
    std::fs::remove_dir_all(dir)?;
    Ok(true)
}

/// Remove the folders under `parent` named `PREFIX...` whose owner is gone,
/// and half-made ones (`.PREFIX....new-*`) older than a minute. Returns the
/// paths removed.
pub fn remove_stale(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let half_made = name.starts_with(&format!(".{prefix}")) && name.contains(".new-");
        if half_made {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > NEW_DIR_GRACE);
            if old && !in_use(&e.path()) && std::fs::remove_dir_all(e.path()).is_ok() {
                removed.push(e.path());
            }
        } else if name.starts_with(prefix) && e.path().is_dir() {
            if let Ok(true) = remove_if_stale(&e.path()) {
                removed.push(e.path());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_folder_is_in_use_until_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let owned = OwnedDir::create(parent.path(), "mount-1").unwrap();
        let dir = owned.path().to_owned();
        assert!(dir.is_dir() && in_use(&dir));
        assert!(!remove_if_stale(&dir).unwrap(), "a live folder stays");
        assert!(remove_stale(parent.path(), "mount-").is_empty());
        assert!(dir.is_dir());
        let again = OwnedDir::create(parent.path(), "mount-1").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        // Nothing half-made is left by the refused one.
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);
        drop(owned);
        assert!(!dir.exists(), "removed on drop");
    }

    #[test]
    fn a_folder_whose_lock_is_free_is_stale_and_replaced() {
        let parent = tempfile::tempdir().unwrap();
        // What a killed owner leaves: the folder and its lock file, the
        // lock itself gone with the process.
        let dir = parent.path().join("mount-7");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(LOCK_FILE), b"").unwrap();
        std::fs::write(dir.join("1.part"), b"partial").unwrap();
        assert!(!in_use(&dir));
        let new = OwnedDir::create(parent.path(), "mount-7").unwrap();
        assert!(
            !dir.join("1.part").exists(),
            "the stale folder was replaced"
        );
        assert!(in_use(new.path()));
    }

    #[test]
    fn a_folder_without_a_lock_is_stale() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("mount-42")).unwrap();
        std::fs::create_dir(parent.path().join("other")).unwrap();
        let removed = remove_stale(parent.path(), "mount-");
        assert_eq!(removed, vec![parent.path().join("mount-42")]);
        assert!(parent.path().join("other").exists(), "other names are left");
    }
}
