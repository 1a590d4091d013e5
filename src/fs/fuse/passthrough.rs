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
}

impl Backing {
    fn release(&mut self, fh: u64) {
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

    /// A handle closed.
    pub fn release(&self, fh: u64) {
        lock(&self.backing).release(fh);
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
