//! The persistent part of the result cache: complete result files of
//! finished runs, kept in `--cache-dir` across unmounts, crashes and reboots.
//!
//! What is subtle here:
//! - **Keys that cannot serve the wrong bytes.** An entry lives under
//!   `results/<account>/`, where `<account>` is a hash of the API URL and
//!   the key (never the key), and is named by a hash of the run's kind, id
//!   and file, so that no name from the API becomes a path. Its `.meta` file
//!   holds the size the server gave and a CRC-32 of the bytes, computed when
//!   the download completed. An entry is reused only when its data file has
//!   exactly that size and, once per mount, that checksum; otherwise it is
//!   deleted and the file downloaded again.
//! - **Only complete files.** Downloads happen in the mount's own directory;
//!   a complete file of a finished run is moved into the store by one
//!   `rename` (data last, after its `.meta`), so another mount sharing the
//!   directory sees either nothing or the whole entry. A killed mount's
//!   partial files stay in its own directory, which the next mount removes.
//! - **Sharing.** Every mount using an entry holds a shared `flock` on it;
//!   eviction takes the exclusive lock without waiting and skips entries it
//!   cannot lock, so a file another mount is reading is never deleted under
//!   it (deleting is an unlink anyway: an open file stays readable).
//! - **One bound.** `--cache-size` bounds the whole directory: at mount and
//!   after each new entry, the least recently used unlocked entries (by the
//!   `.meta` mtime, touched on every use) are removed until it fits.

use crate::api::FileRef;
use crate::fs::names::FileName;
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The folder of the store under `--cache-dir`.
pub const RESULTS_DIR: &str = "results";

/// What an entry's `.meta` file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// `crawlrun` or `reportrun`.
    pub kind: String,
    /// The run's id.
    pub run: String,
    /// The file's name in the mount (`data.csv`, ...).
    pub file: String,
    /// The size the server gave.
    pub size: u64,
    /// CRC-32 (IEEE) of the bytes.
    pub crc32: u32,
    /// The data file as it was when its bytes were last known to match the
    /// checksum; see [`verify`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<Checked>,
}

/// A data file's identity (inode and ctime), and when its bytes matched.
///
/// Any write to the file, or a file put in its place, changes the inode or
/// the ctime (which no user can set). The bytes are trusted without reading
/// them again only when the check happened at least [`CHECK_MARGIN_S`]
/// after the ctime it saw: a write in the same clock tick as that ctime
/// would then have happened before the check, and been in the bytes checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub ino: u64,
    pub dev: u64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    /// Unix seconds of the check.
    pub at: i64,
}

/// See [`Checked`]: far above any timestamp granularity.
pub const CHECK_MARGIN_S: i64 = 2;

/// The identity of an open data file (`at` left 0).
pub fn identity(file: &std::fs::File) -> Option<Checked> {
    use std::os::unix::fs::MetadataExt;
    let md = file.metadata().ok()?;
    Some(Checked {
        ino: md.ino(),
        dev: md.dev(),
        ctime: md.ctime(),
        ctime_nsec: md.ctime_nsec(),
        at: 0,
    })
}

fn same_file(a: &Checked, b: &Checked) -> bool {
    (a.ino, a.dev, a.ctime, a.ctime_nsec) == (b.ino, b.dev, b.ctime, b.ctime_nsec)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One entry, as `importfs cache ls` and eviction see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub account: String,
    pub data: PathBuf,
    pub meta_path: PathBuf,
    pub meta: Option<Meta>,
    pub bytes: u64,
    pub used: SystemTime,
}

/// The store of one account.
pub struct Store {
    root: PathBuf,
    dir: PathBuf,
}

impl Store {
    /// The store of `account` under `cache_dir`, created (0700) if missing.
    pub fn open(cache_dir: &Path, account: &str) -> std::io::Result<Store> {
        let root = cache_dir.join(RESULTS_DIR);
        let dir = root.join(account);
        for d in [&root, &dir] {
            match std::fs::create_dir(d) {
                Ok(()) => set_private(d)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Store { root, dir })
    }

    /// The folder holding every account's entries.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn paths(&self, f: &FileRef) -> (PathBuf, PathBuf) {
        let name = entry_name(f);
        (
            self.dir.join(format!("{name}.data")),
            self.dir.join(format!("{name}.meta")),
        )
    }

    /// A complete entry for `f`: its data file opened and share-locked,
    /// and what its `.meta` says. The size is checked here; the checksum by
    /// [`verify`]. An entry whose files disagree is deleted.
    pub fn lookup(&self, f: &FileRef) -> Option<(std::fs::File, PathBuf, Meta)> {
        let (data, meta_path) = self.paths(f);
        let meta: Meta = serde_json::from_slice(&std::fs::read(&meta_path).ok()?).ok()?;
        let file = match std::fs::File::open(&data) {
            Ok(file) => file,
            Err(_) => return None,
        };
        let len = file.metadata().ok()?.len();
        if len != meta.size || meta.run != f.run_id() || meta.file != f.file_name() {
            tracing::warn!(
                run = f.run_id(),
                file = f.file_name(),
                "a cached file has {len} bytes, not the {} it should: downloading it again",
                meta.size
            );
            remove(&data, &meta_path);
            return None;
        }
        lock_shared(&file);
        touch(&meta_path);
        Some((file, data, meta))
    }

    /// The size of a complete entry for `f`, from its `.meta` (no checksum).
    pub fn size_of(&self, f: &FileRef) -> Option<u64> {
        let (data, meta_path) = self.paths(f);
        let meta: Meta = serde_json::from_slice(&std::fs::read(meta_path).ok()?).ok()?;
        let len = std::fs::metadata(data).ok()?.len();
        (len == meta.size && meta.run == f.run_id() && meta.file == f.file_name())
            .then_some(meta.size)
    }

    /// Move the complete download at `part` (open as `file`, `size` bytes)
    /// into the store, with its checksum; the new data path. `known` is the
    /// checksum of the bytes as they were written, if the download kept it;
    /// without it the file is read once to compute it.
    pub fn persist(
        &self,
        f: &FileRef,
        part: &Path,
        file: &std::fs::File,
        size: u64,
        known: Option<u32>,
    ) -> std::io::Result<PathBuf> {
        let crc32 = match known {
            Some(crc) if file.metadata()?.len() == size => crc,
            Some(_) => return Err(std::io::Error::other("not the size it was downloaded at")),
            None => checksum(file, size)?,
        };
        let (kind, _) = kind_of(f);
        let meta = Meta {
            kind: kind.into(),
            run: f.run_id().to_owned(),
            file: f.file_name().to_owned(),
            size,
            crc32,
            checked: None,
        };
        let (data, meta_path) = self.paths(f);
        let tmp = meta_path.with_extension(format!("meta.{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&meta).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &meta_path)?;
        if let Err(e) = std::fs::rename(part, &data) {
            // No entry without its data (the part may have been evicted);
            // another mount's entry of the same file is left alone.
            if !data.exists() {
                let _ = std::fs::remove_file(&meta_path);
            }
            return Err(e);
        }
        lock_shared(file);
        Ok(data)
    }

    /// Record that the entry of `f`, whose data file is `file`, matched its
    /// checksum while it had identity `seen` (taken when the bytes were
    /// known good): only if it still has it, and the margin has passed.
    /// Later mounts then use it without reading it first.
    pub fn stamp(&self, f: &FileRef, file: &std::fs::File, seen: Checked) {
        let now = unix_now();
        let Some(current) = identity(file) else {
            return;
        };
        if !same_file(&current, &seen) || now < seen.ctime + CHECK_MARGIN_S {
            return;
        }
        let (_, meta_path) = self.paths(f);
        let Some(mut meta) = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
        else {
            return;
        };
        meta.checked = Some(Checked { at: now, ..seen });
        let tmp = meta_path.with_extension(format!("meta.{}", std::process::id()));
        let written = serde_json::to_vec(&meta)
            .ok()
            .is_some_and(|b| std::fs::write(&tmp, b).is_ok());
        if !written || std::fs::rename(&tmp, &meta_path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Remove every entry's least recently used files until the whole
    /// store holds at most `max` bytes, skipping entries in use (locked).
    /// Returns how many entries were removed.
    pub fn prune(&self, max: u64) -> u64 {
        prune(&self.root, max)
    }
}

/// How [`verify`] found the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Unchanged since a check (see [`Checked`]): not read.
    Unchanged,
    /// Read, and they match the checksum.
    Read,
    /// They do not match: corrupt.
    Bad,
}

/// Whether the bytes of `file` have the checksum of `meta`: without reading
/// them when the file is provably unchanged since they last did, else by
/// reading them once, start to end.
pub fn verify(file: &std::fs::File, meta: &Meta) -> Verified {
    if let (Some(c), Some(now)) = (meta.checked, identity(file)) {
        if same_file(&c, &now) && c.ctime + CHECK_MARGIN_S <= c.at {
            return Verified::Unchanged;
        }
    }
    match checksum(file, meta.size) {
        Ok(c) if c == meta.crc32 => Verified::Read,
        _ => Verified::Bad,
    }
}

/// Delete an entry: data first, so a half-deleted entry is never whole.
pub fn remove(data: &Path, meta: &Path) {
    let _ = std::fs::remove_file(data);
    let _ = std::fs::remove_file(meta);
}

/// Delete the entry at `data` if no mount uses it; whether it was deleted.
/// `held` is an open file of it whose own shared lock does not count.
pub fn remove_unused(data: &Path, held: Option<&std::fs::File>) -> bool {
    let own;
    let file = match held {
        Some(f) => f,
        None => match std::fs::File::open(data) {
            Ok(f) => {
                own = f;
                &own
            }
            Err(_) => return false,
        },
    };
    // Another mount may have replaced the entry since (the same bytes, by a
    // rename): that one is not ours to delete.
    use std::os::unix::fs::MetadataExt;
    let same = match (file.metadata(), std::fs::metadata(data)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    // SAFETY: flock on an open descriptor; no memory is involved.
    if !same || unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return false;
    }
    remove(data, &data.with_extension("meta"));
    true
}

/// Every entry of every account under `root` (a `results` folder).
pub fn entries(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(accounts) = std::fs::read_dir(root) else {
        return out;
    };
    for account in accounts.flatten() {
        let Ok(files) = std::fs::read_dir(account.path()) else {
            continue;
        };
        for e in files.flatten() {
            let data = e.path();
            if data.extension().and_then(|x| x.to_str()) != Some("data") {
                continue;
            }
            let meta_path = data.with_extension("meta");
            let meta = std::fs::read(&meta_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
            let used = std::fs::metadata(&meta_path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(Entry {
                account: account.file_name().to_string_lossy().into_owned(),
                data,
                meta_path,
                meta,
                bytes,
                used,
            });
        }
    }
    out
}

/// See [`Store::prune`].
pub fn prune(root: &Path, max: u64) -> u64 {
    let mut all = entries(root);
    let mut total: u64 = all.iter().map(|e| e.bytes).sum();
    all.sort_by_key(|e| e.used);
    let mut removed = 0;
    for e in all {
        if total <= max {
            break;
        }
        if remove_unused(&e.data, None) {
            total -= e.bytes;
            removed += 1;
        }
    }
    removed
}

/// The bytes the store under `cache_dir` holds.
pub fn held_bytes(cache_dir: &Path) -> u64 {
    entries(&cache_dir.join(RESULTS_DIR))
        .iter()
        .map(|e| e.bytes)
        .sum()
}

/// Refuse a cache directory others could plant files in: owned by another
/// user, or writable by group or others. The message names the fix.
pub fn check_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me {
        return Err(format!(
            "the cache directory {} belongs to user {}, not to you (uid {me}): \
             use a directory of your own with --cache-dir, or `chown {me} {}`",
            dir.display(),
            md.uid(),
            dir.display()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "the cache directory {} can be written by others (mode {:o}): \
             run `chmod go-w {}` or use another --cache-dir",
            dir.display(),
            md.mode() & 0o777,
            dir.display()
        ));
    }
    Ok(())
}

fn kind_of(f: &FileRef) -> (&'static str, &'static str) {
    match f {
        FileRef::Crawlrun(..) => ("crawlrun", "crawlruns"),
        FileRef::ReportRun(..) => ("reportrun", "reportruns"),
    }
}

/// A file name for `f` that no id from the API can turn into a path.
fn entry_name(f: &FileRef) -> String {
    let (kind, _) = kind_of(f);
    let key = format!("{kind}/{}/{}", f.run_id(), f.file_name());
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    hex(&digest.as_ref()[..16])
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// CRC-32 of the first `size` bytes of `file` (all of them: fewer is an error).
fn checksum(file: &std::fs::File, size: u64) -> std::io::Result<u32> {
    use std::os::unix::fs::FileExt;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < size {
        let want = buf.len().min((size - off) as usize);
        let n = file.read_at(&mut buf[..want], off)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    // Nothing past the size either.
    let mut extra = [0u8; 1];
    if file.read_at(&mut extra, size)? != 0 {
        return Err(std::io::Error::other("longer than its size"));
    }
    Ok(h.finalize())
}

fn lock_shared(file: &std::fs::File) {
    // SAFETY: flock on an open descriptor; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) };
}

/// Bump an entry's last use (eviction is least recently used first).
fn touch(meta: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(meta) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::CrawlrunFile;

    #[test]
    fn names_are_hashes() {
        let f = FileRef::Crawlrun("../../etc".into(), CrawlrunFile::Csv);
        let n = entry_name(&f);
        assert_eq!(n.len(), 32);
        assert!(n.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    /// A store in a fresh folder, and a complete download of "hello world"
    /// in it waiting to be kept: (folder, store, file ref, part path, file).
    fn downloaded() -> (tempfile::TempDir, Store, FileRef, PathBuf, std::fs::File) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "acct").unwrap();
        let f = FileRef::Crawlrun("run-1".into(), CrawlrunFile::Csv);
        let part = dir.path().join("x.part");
        std::fs::write(&part, b"hello world").unwrap();
        let file = std::fs::File::open(&part).unwrap();
        (dir, store, f, part, file)
    }

    #[test]
    fn a_checksum_known_from_the_download_is_stored_as_given() {
        let (_dir, store, f, part, file) = downloaded();
        // A size that is not the file's is refused, and nothing is stored.
        let crc = crc32fast::hash(b"hello world");
        assert!(store.persist(&f, &part, &file, 12, Some(crc)).is_err());
        assert!(store.lookup(&f).is_none());
        store.persist(&f, &part, &file, 11, Some(crc)).unwrap();
        let (file, _, meta) = store.lookup(&f).unwrap();
        assert_eq!(meta.crc32, crc);
        assert_eq!(verify(&file, &meta), Verified::Read);
    }

    #[test]
    fn persisted_entries_are_found_verified_and_pruned() {
        let (_dir, store, f, part, file) = downloaded();
        store.persist(&f, &part, &file, 11, None).unwrap();
        drop(file);
        let (file, data, meta) = store.lookup(&f).unwrap();
        assert_eq!(meta.size, 11);
        assert_eq!(verify(&file, &meta), Verified::Read);
        // A check stamped well after the file's ctime is trusted unread; a
        // stamp too close to it is refused.
        let seen = identity(&file).unwrap();
        store.stamp(&f, &file, seen);
        let (_, _, fresh) = store.lookup(&f).unwrap();
        assert!(fresh.checked.is_none() || fresh.checked.unwrap().at >= seen.ctime + 2);
        let mut m2 = meta.clone();
        m2.checked = Some(Checked {
            at: seen.ctime + 10,
            ..seen
        });
        assert_eq!(verify(&file, &m2), Verified::Unchanged);
        m2.checked = Some(Checked {
            at: seen.ctime + 1,
            ..seen
        });
        assert_eq!(verify(&file, &m2), Verified::Read);
        drop(file);
        // A flipped byte fails the checksum.
        let mut b = std::fs::read(&data).unwrap();
        b[0] ^= 1;
        std::fs::write(&data, b).unwrap();
        let (file, _, meta) = store.lookup(&f).unwrap();
        assert_eq!(verify(&file, &meta), Verified::Bad);
        // An entry in use is not pruned; once closed it is.
        assert_eq!(store.prune(0), 0);
        drop(file);
        assert_eq!(store.prune(0), 1);
        assert!(store.lookup(&f).is_none());
    }
}
