//! The cache's bound on disk: reserving bytes before they are fetched,
//! evicting what nobody has open, and a full disk.
//!
//! What is subtle: the bound holds at every moment, so every byte is
//! counted before it is written (a chunk's bytes before its GET, a whole
//! download's size before its first byte), and only files nobody has open
//! (one `Arc`: the cache's own) are evicted. A write that finds the disk
//! full moves the file to memory instead of failing it; new files follow
//! until `statvfs` shows room again.

use super::{CachedFile, DataCache, Fill, Inner, Seg, DISK_FULL_MARGIN};
use crate::api::FileRef;
use crate::fs::cache::lock;
use crate::fs::store;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl DataCache {
    /// Record a finished download's size (it replaces what was reserved
    /// for it) and evict old files past the bound.
    pub(super) fn account(&self, f: &FileRef, size: u64) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.files.peek_mut(f) {
            let reserved = std::mem::replace(&mut entry.1, size);
            inner.total = inner.total.saturating_sub(reserved) + size;
        }
        self.evict(&mut inner, self.max_bytes);
    }

    /// A fetch stopped with `on_disk` bytes in the cache file: count those
    /// only (what was reserved for the rest is free again).
    pub(super) fn settle(&self, weak: &std::sync::Weak<CachedFile>, on_disk: u64) {
        let mut inner = lock(&self.inner);
        let Some(cf) = weak.upgrade() else {
            return;
        };
        if !inner.holds(&cf) {
            return;
        }
        if let Some(entry) = inner.files.peek_mut(&cf.fref) {
            let reserved = std::mem::replace(&mut entry.1, on_disk);
            inner.total = inner.total.saturating_sub(reserved) + on_disk;
        }
        // A file read through memory only holds nothing once stopped: its
        // entry goes too, unless someone opened it meanwhile (the cache's
        // lock, held here, is the one opens take).
        if cf.file().is_none() && Arc::strong_count(&cf) == 2 {
            inner.forget(&cf.fref);
        }
        drop(cf);
        self.evict(&mut inner, self.max_bytes);
    }

    /// Count `n` more bytes of disk for `cf` before they are fetched,
    /// evicting files nobody has open to make room; `false` when there is
    /// none to be made (files in use fill the bound), the disk is known to
    /// be full, or `cf` is no longer this mount's entry.
    pub(super) fn reserve_disk(&self, cf: &Arc<CachedFile>, n: u64) -> bool {
        if self.disk_is_full(n) {
            return false;
        }
        let mut inner = lock(&self.inner);
        if !inner.holds(cf) || n > self.max_bytes {
            return false;
        }
        self.evict(&mut inner, self.max_bytes - n);
        if inner.total + n > self.max_bytes {
            return false;
        }
        inner.total += n;
        if let Some(entry) = inner.files.peek_mut(&cf.fref) {
            entry.1 += n;
        }
        true
    }

    /// `cf` goes on through memory: the disk cache cannot take it.
    pub(super) fn to_memory(&self, cf: &CachedFile, why: &str) {
        if !cf.in_memory.swap(true, Ordering::Relaxed) {
            self.stats.memory_files.fetch_add(1, Ordering::Relaxed);
            tracing::info!(file = ?cf.fref, "reading through memory from here on: {why}");
        }
    }

    /// A write into the cache found the disk full: one warning until the
    /// disk has room again, and a count of the files it moved to memory.
    pub(super) fn note_disk_full(&self, f: &FileRef) {
        self.stats.disk_full.fetch_add(1, Ordering::Relaxed);
        if !self.disk_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dir = %self.dir.path().display(),
                file = ?f,
                "the cache's disk is full: reading result files through memory until it has room"
            );
        }
    }

    /// Whether the disk was found full and still has no room for `n` more
    /// bytes (and a margin); the first look that finds room clears it.
    pub(super) fn disk_is_full(&self, n: u64) -> bool {
        if !self.disk_full.load(Ordering::Relaxed) {
            return false;
        }
        match free_bytes(self.dir.path()) {
            Some(free) if free >= n.saturating_add(DISK_FULL_MARGIN) => {
                if self.disk_full.swap(false, Ordering::Relaxed) {
                    tracing::info!("the cache's disk has room again: caching result files on it");
                }
                false
            }
            _ => true,
        }
    }

    /// Evict least recently used files nobody has open until the total is
    /// within `target`.
    pub(super) fn evict(&self, inner: &mut Inner, target: u64) {
        let mut skipped = Vec::new();
        while inner.total > target {
            let Some((k, (cf, sz))) = inner.files.pop_lru() else {
                break;
            };
            // Files being read or fetched stay: a reader or the fetch holds
            // their Arc.
            if Arc::strong_count(&cf) > 1 {
                skipped.push((k, (cf, sz)));
                continue;
            }
            inner.total -= sz;
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            if cf.kept.load(Ordering::Relaxed) {
                // Gone from the store too, unless another mount uses it.
                if let Some(file) = &cf.file {
                    store::remove_unused(&lock(&cf.path), Some(file));
                }
            }
        }
        // Put the files in use back, as the least recently used.
        for (k, v) in skipped.into_iter().rev() {
            inner.files.push(k.clone(), v);
            inner.files.demote(&k);
        }
    }

    /// A file fetched whole found the disk full after `have` bytes of its
    /// `size`: what is held stays on disk, the rest is fetched in ranges
    /// through memory.
    pub(super) fn whole_to_memory(&self, cf: &CachedFile, size: u64) {
        self.note_disk_full(&cf.fref);
        cf.in_memory.store(true, Ordering::Relaxed);
        cf.state.send_modify(|s| {
            let have = match s.fill {
                Fill::Prefix(p) => p.min(size),
                _ => 0,
            };
            let mut segs = std::collections::BTreeMap::new();
            if have > 0 {
                segs.insert(
                    0,
                    Seg {
                        end: have,
                        have,
                        mem: false,
                    },
                );
            }
            if have < size {
                segs.insert(have, Seg::new(size, true));
            }
            s.fill = Fill::Chunks { segs };
        });
    }
}

/// Whether an I/O error says the disk (or the user's quota) is full.
pub(super) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Whether a download failed on a full disk.
pub(super) fn is_disk_full_error(e: &crate::api::Error) -> bool {
    matches!(e, crate::api::Error::Io { source, .. } if is_disk_full(source))
}

/// The bytes an unprivileged user may still write on the filesystem of
/// `dir` (statvfs(3)).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct the call fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
