//! What the adapters ask about open result files: whether the kernel may
//! read one itself (passthrough), and how each was opened, for the counters.
//!
//! What is subtle: only a complete file on disk has a backing file; one
//! still arriving, or read through memory, must be read through `read`.

use crate::fs::cache::lock;
use crate::fs::core::{Fs, Handle};
use crate::fs::data::CachedFile;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Fs {
    /// The complete cache file behind an open result file, for a passthrough
    /// open: the kernel then reads it itself and read() is never called.
    pub fn backing_file(&self, fh: u64) -> Option<Arc<CachedFile>> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::Data(h)) if h.file().complete_size().is_some() => Some(h.file().clone()),
            _ => None,
        }
    }

    /// Count how the kernel was told to read an open result file.
    pub fn note_data_open(&self, passthrough: bool, keep_cache: bool) {
        let d = &self.data.stats;
        if passthrough {
            d.passthrough_opens.fetch_add(1, Ordering::Relaxed);
        } else if keep_cache {
            d.keep_cache_opens.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether `fh` reads a result file fetched into the disk cache (not
    /// through memory): once complete, later opens can pass it through.
    pub fn fetches_to_disk(&self, fh: u64) -> bool {
        matches!(lock(&self.handles).get(&fh), Some(Handle::Data(h)) if h.file().on_disk())
    }

    /// Is this handle an open result file?
    pub fn is_data_handle(&self, fh: u64) -> bool {
        matches!(lock(&self.handles).get(&fh), Some(Handle::Data(..)))
    }
}
