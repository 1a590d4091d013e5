//! FUSE passthrough of complete result files: the kernel reads the cache
//! file itself, at page-cache speed, and `read` is never called.
//!
//! Part of the adapter (it uses fuser's backing ids). What is subtle:
//! - One backing id per inode, shared by every handle open on it and closed
//!   with the last one: the kernel needs the same id for all handles of an
//!   inode.
//! - The kernel refuses (EIO) to mix modes on one inode: while a handle
//!   opened the ordinary way is open (a reader that started during the
//!   download), later opens of that inode must be ordinary too.
//! - A passthrough open must not ask for FOPEN_KEEP_CACHE (the kernel
//!   refuses it); an ordinary open of an immutable file does.
//! - Passthrough needs CAP_SYS_ADMIN: the first refusal turns it off for
//!   the mount, and reads are served by `read` from then on.
//! - A passthrough open cannot keep the page cache, so the kernel drops the
//!   pages a cold read left on the inode in that open (`fuse_finish_open`):
//!   57-69 ms for 512 MiB, which made the first re-read after a download
//!   0.65x a local page-cache `cat`. So, when passthrough is on, the pages
//!   well behind an ordinary reader of a file fetched to disk are dropped
//!   as it goes, and the rest when it closes a complete file, from the
//!   notifier's thread ([`Passthrough::behind`]): the next open has
//!   nothing left to drop, and is read from the cache file's own pages.

use crate::fs::cache::lock;
use crate::fs::core::{Fs, Opened};
use fuser::{BackingId, FileHandle, FopenFlags, ReplyOpen};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Passthrough state of one mount.
#[derive(Default)]
pub struct Passthrough {
    /// The kernel agreed to passthrough (Linux >= 6.9), and we may use it.
    enabled: AtomicBool,
    backing: Mutex<Backing>,
}

/// Which handles are open on which inode, by mode.
#[derive(Default)]
struct Backing {
    by_ino: HashMap<u64, (Arc<BackingId>, usize)>,
    fh_ino: HashMap<u64, u64>,
    cached_by_ino: HashMap<u64, usize>,
    fh_cached: HashMap<u64, u64>,
    /// Ordinary handles: up to where the pages behind them were dropped.
    dropped: HashMap<u64, u64>,
}

/// Pages this far behind an ordinary reader are kept: the kernel's own
/// read-ahead requests, and a reader's small seeks back, still use them.
const DROP_KEEP: u64 = 8 << 20;
/// Pages behind a reader are dropped this many at a time.
const DROP_STEP: u64 = 32 << 20;

impl Backing {
    fn release(&mut self, fh: u64) {
        self.dropped.remove(&fh);
        if let Some(ino) = self.fh_ino.remove(&fh) {
            if let Some((_, n)) = self.by_ino.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    self.by_ino.remove(&ino);
                }
            }
        }
        if let Some(ino) = self.fh_cached.remove(&fh) {
            if let Some(n) = self.cached_by_ino.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    self.cached_by_ino.remove(&ino);
                }
            }
        }
    }
}

impl Passthrough {
    /// The kernel said yes at init.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Answer an open: by passthrough when it is a complete result file and
    /// the inode has no ordinary handle open, else the ordinary way.
    pub fn reply_open(&self, fs: &Fs, ino: u64, o: Opened, reply: ReplyOpen) {
        let mut b = lock(&self.backing);
        if self.enabled.load(Ordering::Relaxed) && !b.cached_by_ino.contains_key(&ino) {
            if let Some(id) = fs
                .backing_file(o.fh)
                .and_then(|cf| self.backing_id(&mut b, ino, &reply, cf.file()?))
            {
                b.fh_ino.insert(o.fh, ino);
                fs.note_data_open(true, false);
                return reply.opened_passthrough(FileHandle(o.fh), FopenFlags::empty(), &id);
            }
        }
        if fs.is_data_handle(o.fh) {
            b.fh_cached.insert(o.fh, ino);
            *b.cached_by_ino.entry(ino).or_default() += 1;
            fs.note_data_open(false, o.keep_cache);
        }
        drop(b);
        reply.opened(FileHandle(o.fh), open_flags(&o))
    }

    /// The inode's backing id, opened now if it has none.
    fn backing_id(
        &self,
        b: &mut Backing,
        ino: u64,
        reply: &ReplyOpen,
        file: &std::fs::File,
    ) -> Option<Arc<BackingId>> {
        if let Some((id, n)) = b.by_ino.get_mut(&ino) {
            *n += 1;
            return Some(id.clone());
        }
        match reply.open_backing(file) {
            Ok(id) => {
                let id = Arc::new(id);
                b.by_ino.insert(ino, (id.clone(), 1));
                Some(id)
            }
            Err(e) => {
                // Not permitted (not root) or not supported: read() it is.
                tracing::debug!(error = %e, "passthrough unavailable");
                self.enabled.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// The pages to drop behind a read at `offset` of the ordinary handle
    /// `fh`, as (offset, length), when passthrough is on and the reader
    /// has gone a step past what was dropped (see the module doc).
    pub fn behind(&self, fh: u64, offset: u64) -> Option<(u64, u64)> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut b = lock(&self.backing);
        if !b.fh_cached.contains_key(&fh) {
            return None;
        }
        let mark = b.dropped.entry(fh).or_insert(0);
        let upto = offset.saturating_sub(DROP_KEEP);
        if upto < *mark + DROP_STEP {
            return None;
        }
        let range = (*mark, upto - *mark);
        *mark = upto;
        Some(range)
    }

    /// A handle closed: where the pages left behind it start, when it read
    /// the ordinary way with passthrough on.
    pub fn release(&self, fh: u64) -> Option<u64> {
        let mut b = lock(&self.backing);
        let left = self.enabled.load(Ordering::Relaxed) && b.fh_cached.contains_key(&fh);
        let mark = b.dropped.get(&fh).copied().unwrap_or(0);
        b.release(fh);
        left.then_some(mark)
    }
}

/// The open flags of an ordinary open.
pub(super) fn open_flags(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    f
}
