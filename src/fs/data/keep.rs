//! Result files kept for later mounts: finding a verified one an earlier
//! mount kept, and moving a complete download into the store.
//!
//! What is subtle: background work never holds a file back. Keeping works
//! on its own descriptor of the file, so the entry may be evicted
//! meanwhile (then what was stored is removed again), and a kept file is
//! stamped as checked only once the check margin has passed unchanged.

use super::{CachedFile, DataCache, End, Fill, State};
use crate::api::FileRef;
use crate::fs::cache::lock;
use crate::fs::names::FileName;
use crate::fs::store;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl DataCache {
    /// A complete file an earlier mount kept, once its size and checksum
    /// hold (read once, off the async workers). A wrong one is deleted.
    pub(super) async fn from_store(
        self: &Arc<Self>,
        f: &FileRef,
        size: Option<u64>,
    ) -> Option<Arc<CachedFile>> {
        let this = self.clone();
        let key = f.clone();
        let found = tokio::task::spawn_blocking(move || {
            let (file, data, meta) = this.store.lookup(&key)?;
            let right_size = size.is_none_or(|s| s == meta.size);
            let seen = store::identity(&file);
            let verified = store::verify(&file, &meta);
            if verified != store::Verified::Unchanged {
                this.stats.checksum_reads.fetch_add(1, Ordering::Relaxed);
            }
            match verified {
                store::Verified::Unchanged if right_size => return Some((file, data, meta.size)),
                store::Verified::Read if right_size => {
                    // Read and good: later mounts need not read it again.
                    if let Some(seen) = seen {
                        this.store.stamp(&key, &file, seen);
                    }
                    return Some((file, data, meta.size));
                }
                _ => {}
            }
            this.stats.corrupt.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                run = key.run_id(),
                file = key.file_name(),
                "a kept result file does not match its checksum or size: downloading it again"
            );
            drop(file);
            store::remove(&data, &data.with_extension("meta"));
            None
        })
        .await
        .ok()
        .flatten()?;
        let (file, data, size) = found;
        let state = State {
            fill: Fill::Prefix(size),
            end: End::Done { size },
        };
        let cf = CachedFile::new(
            f.clone(),
            Some((file, data)),
            state,
            true,
            self.plan.chunk_size,
        );
        cf.kept.store(true, Ordering::Relaxed);
        let cf = Arc::new(cf);
        {
            let mut inner = lock(&self.inner);
            // Another open got there first: use its entry.
            if let Some(other) = self.hit(&mut inner, f) {
                return Some(other);
            }
            inner.files.put(f.clone(), (cf.clone(), 0));
        }
        self.stats.earlier_hits.fetch_add(1, Ordering::Relaxed);
        self.account(f, size);
        Some(cf)
    }

    /// Move a complete download of a finished run into the store, with the
    /// checksum its download recorded (or, if that record is not whole, one
    /// computed by reading the file, off the async workers). It works on
    /// its own descriptor of the file, so the entry may be evicted
    /// meanwhile: then what was stored is removed again.
    pub(super) async fn keep(self: &Arc<Self>, weak: std::sync::Weak<CachedFile>, size: u64) {
        let Some((file, part, fref, crc)) = weak.upgrade().and_then(|cf| {
            let file = cf.file.as_ref()?.try_clone().ok()?;
            let part = lock(&cf.path).clone();
            Some((file, part, cf.fref.clone(), cf.written.whole(size)))
        }) else {
            return;
        };
        let this = self.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let data = this.store.persist(&fref, &part, &file, size, crc);
            let data = match data {
                Ok(data) => data,
                // Evicted (and its part file deleted) while being kept.
                Err(_) if weak.strong_count() == 0 => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep a result file for later mounts");
                    return None;
                }
            };
            if !this.install(&weak, &data) {
                store::remove_unused(&data, Some(&file));
                return None;
            }
            // The bound holds for the whole folder, other mounts' files too.
            this.store.prune(this.max_bytes);
            Some((store::identity(&file)?, file, fref))
        })
        .await;
        if let Ok(Some((seen, file, fref))) = kept {
            // The checksum was made from these very bytes; once the margin
            // has passed with the file unchanged, stamp it so the next mount
            // serves it without reading it first.
            let this = self.clone();
            tokio::spawn(async move {
                let wait = store::CHECK_MARGIN_S as u64 + 1;
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                let _ =
                    tokio::task::spawn_blocking(move || this.store.stamp(&fref, &file, seen)).await;
            });
        }
    }

    /// Point the entry `weak` at its stored copy `data`, if it is still
    /// this mount's entry (not evicted while it was being stored).
    pub(super) fn install(&self, weak: &std::sync::Weak<CachedFile>, data: &Path) -> bool {
        let inner = lock(&self.inner);
        let Some(cf) = weak.upgrade() else {
            return false;
        };
        let current = inner.holds(&cf);
        if current {
            *lock(&cf.path) = data.to_path_buf();
            cf.kept.store(true, Ordering::Relaxed);
        }
        drop(inner);
        current
    }
}
