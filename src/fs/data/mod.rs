//! The result cache: each result file is fetched as it is read, into a
//! file under the cache directory when it fits, else through a bounded
//! window of memory, and served from there.
//!
//! Three paths, chosen per file:
//! - **kept**: a finished run's file complete in the store (an earlier
//!   mount's, checksum verified), read straight from disk or passed
//!   through to the kernel;
//! - **disk**: fetched into this mount's folder, chunk by chunk as readers
//!   need them, kept in the store once every byte is there;
//! - **memory**: fetched into memory (see `memory.rs`) when the file cannot
//!   be cached on disk: larger than `--cache-size`, more than the cache can
//!   take without pushing out files in use, or once the disk is full.
//!
//! What is subtle here:
//! - **Fetch what is read.** A file of known size larger than one chunk is
//!   fetched as ranged GETs of `chunk_size` bytes, up to `streams` at once.
//!   One scheduler task per file (fetch.rs) decides what comes next: a
//!   chunk a reader waits for first (taking the place of a speculative one,
//!   which is dropped and later resumed from its last byte), then each
//!   reader's read-ahead window, which grows as it reads sequentially (see
//!   `ReadPos::window`). A reader far into a chunk splits it where it reads,
//!   so it waits for its own bytes only. When the last reader closes,
//!   fetches nobody asked for stop; the bytes held stay for the next open.
//!   A file no larger than one window is completed in the background.
//! - **Readers wait for their bytes only.** The state of a file is
//!   published on a `watch` channel; a read waits until its range is
//!   present. Within a chunk, bytes are readable as they land.
//! - **Fallback.** A file of unknown size, a small one, or a server that
//!   answers a range with the whole file (200) or compressed, is fetched as
//!   one stream from the start, exactly as `Client::download` does (resume,
//!   gzip, the size check). A refused range is remembered for the mount.
//! - **Never short, never wrong.** Every ranged answer must give the size
//!   the file was opened with; a chunk that fails after its retries fails
//!   the whole file, and every read of it gets EIO. Only a file whose every
//!   byte is on disk is complete, and only a complete one is kept.
//! - **The bound holds at every moment.** Disk is reserved chunk by chunk
//!   before each ranged GET (a whole-file fetch reserves its size), making
//!   room by evicting least recently used files nobody has open. When no
//!   room can be made (the rest is in use), the file goes on through
//!   memory. A reader that stops early leaves only what it fetched counted.
//! - **A full disk is not an error.** ENOSPC or EDQUOT while caching moves
//!   the file to memory (one warning, a counter), and new files go that way
//!   until the disk has room again.
//! - **Background work never holds a file back:** keeping a finished
//!   download for later mounts works on its own descriptor, and a file
//!   evicted meanwhile is removed from the store again. A failed download
//!   leaves the cache at once, so the next open starts afresh instead of
//!   serving a broken file.

use crate::api::{Client, FileRef};
use crate::fs::cache::lock;
use crate::fs::store::{self, Store};
use crate::fs::FsError;
use crate::platform::lock::OwnedDir;
use fetch::FetchEnd;
pub use file::{CachedFile, READ_AHEAD_MAX};
use file::{End, Fill, Seg, State};
pub use handle::DataHandle;
pub use mapped::FileBytes;
use memory::MemBudget;

mod fetch;
mod file;
mod handle;
mod keep;
mod mapped;
mod memory;
mod room;
use lru::LruCache;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The folders of mounts are `mount-<pid>` under the cache directory.
const MOUNT_DIR_PREFIX: &str = "mount-";

/// Once the disk was found full, a file goes to disk again only when the
/// disk has this much room besides it: a disk at the brink would fail the
/// next write all over again.
const DISK_FULL_MARGIN: u64 = 64 << 20;

/// How result files are fetched.
#[derive(Debug, Clone, Copy)]
pub struct FetchPlan {
    /// Bytes per ranged GET. Default 8 MiB: large enough that a request's
    /// round trip is a small share of its transfer, small enough that the
    /// chunk a `tail` needs arrives quickly even on a slow link.
    pub chunk_size: u64,
    /// Ranged GETs of one file in flight at once. Default 4.
    pub streams: usize,
}

impl Default for FetchPlan {
    fn default() -> FetchPlan {
        FetchPlan {
            chunk_size: 8 << 20,
            streams: 4,
        }
    }
}

/// Counters shown in `.importfs/stats`.
#[derive(Default)]
pub struct DataStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bytes_cached: AtomicU64,
    pub in_flight: AtomicU64,
    pub evictions: AtomicU64,
    /// Opens of result files the kernel reads itself (FUSE passthrough).
    pub passthrough_opens: AtomicU64,
    /// Opens of result files served through read() with the page cache kept.
    pub keep_cache_opens: AtomicU64,
    /// Files found complete in the store, kept by an earlier mount.
    pub earlier_hits: AtomicU64,
    /// Stored files whose size or checksum was wrong (deleted, fetched again).
    pub corrupt: AtomicU64,
    /// Stored files read whole to check their checksum before first use
    /// (the others were provably unchanged since a check).
    pub checksum_reads: AtomicU64,
    /// Files read through memory, from their open or from the moment the
    /// disk cache could not take them.
    pub memory_files: AtomicU64,
    /// Files moved to memory because the disk was full (ENOSPC, EDQUOT).
    pub disk_full: AtomicU64,
}

struct Inner {
    /// Every file of this mount, with the bytes of disk counted for it
    /// (its size once complete; what was reserved for it before).
    files: LruCache<FileRef, (Arc<CachedFile>, u64)>,
    total: u64,
    next_id: u64,
}

impl Inner {
    /// Drop a file's entry (a failed download) and what was counted for it.
    fn forget(&mut self, f: &FileRef) {
        if let Some((_, counted)) = self.files.pop(f) {
            self.total = self.total.saturating_sub(counted);
        }
    }

    /// Whether `cf` is the entry of its file (not one replaced since).
    fn holds(&self, cf: &Arc<CachedFile>) -> bool {
        self.files
            .peek(&cf.fref)
            .is_some_and(|(c, _)| Arc::ptr_eq(c, cf))
    }

    /// The bytes counted for files someone has open (or a task fetches):
    /// eviction cannot free them.
    fn pinned(&self) -> u64 {
        self.files
            .iter()
            .filter(|(_, (cf, _))| Arc::strong_count(cf) > 1)
            .map(|(_, (_, n))| n)
            .sum()
    }
}

/// The cache of result files of one mount.
pub struct DataCache {
    /// This mount's own folder, for partial downloads; removed on drop.
    dir: OwnedDir,
    /// Complete files of finished runs, kept across mounts.
    store: Store,
    max_bytes: u64,
    plan: FetchPlan,
    client: Client,
    inner: Mutex<Inner>,
    /// The server answered a range with the whole file: ask no more.
    ranges_refused: AtomicBool,
    /// What memory-path files may hold together (`--max-memory`).
    memory: MemBudget,
    /// A write to the cache found the disk full, and it has not had room
    /// since: new files go through memory.
    disk_full: AtomicBool,
    pub stats: DataStats,
}

impl DataCache {
    /// A cache in a fresh private directory under `parent` (removed on
    /// drop), with the store of `account` beside it. A `parent` owned by
    /// another user or writable by others is refused: files planted there
    /// would be served as the account's. Memory-path files together hold
    /// at most `max_memory` bytes.
    pub fn new(
        parent: &Path,
        max_bytes: u64,
        max_memory: u64,
        plan: FetchPlan,
        client: Client,
    ) -> std::io::Result<DataCache> {
        if !parent.exists() {
            std::fs::create_dir_all(parent)?;
            set_private(parent)?;
        }
        store::check_private(parent)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
        remove_stale_dirs(parent);
        let store = Store::open(parent, &client.account_id())?;
        let evicted = store.prune(max_bytes);
        if evicted > 0 {
            tracing::info!(evicted, "removed kept result files past --cache-size");
        }
        let dir = OwnedDir::create(parent, &format!("{MOUNT_DIR_PREFIX}{}", std::process::id()))?;
        Ok(DataCache {
            dir,
            store,
            max_bytes,
            plan: FetchPlan {
                chunk_size: plan.chunk_size.max(1),
                streams: plan.streams.max(1),
            },
            client,
            inner: Mutex::new(Inner {
                files: LruCache::unbounded(),
                total: 0,
                next_id: 0,
            }),
            ranges_refused: AtomicBool::new(false),
            memory: MemBudget::new(max_memory),
            disk_full: AtomicBool::new(false),
            stats: DataStats::default(),
        })
    }

    /// Open `f` (of `size` bytes, what `stat` said) for reading: this
    /// mount's cached file, else (for a file of a `finished` run) a
    /// verified one an earlier mount kept, else a new one, fetched as it
    /// is read. A finished run's file is kept in the store once complete;
    /// any other is deleted with the mount.
    pub async fn open(
        self: &Arc<Self>,
        f: &FileRef,
        size: u64,
        finished: bool,
    ) -> Result<DataHandle, FsError> {
        let cf = self.get(f, Some(size), finished).await?;
        let (reader, start) = cf.add_reader();
        if start {
            self.spawn_fetch(cf.clone());
        }
        Ok(DataHandle::new(cf, reader, size))
    }

    /// The cached file for `f`, as [`DataCache::open`] finds or makes it,
    /// without a reader: `size` is the size a HEAD gave, if any (only a
    /// file of known size is fetched in ranged chunks). A file fetched
    /// whole is fetched at once; a chunked one when a reader asks.
    pub async fn get(
        self: &Arc<Self>,
        f: &FileRef,
        size: Option<u64>,
        finished: bool,
    ) -> Result<Arc<CachedFile>, FsError> {
        if let Some(cf) = self.in_memory(f) {
            return Ok(cf);
        }
        if finished {
            if let Some(cf) = self.from_store(f, size).await {
                return Ok(cf);
            }
        }
        self.start(f, size, finished)
    }

    fn in_memory(&self, f: &FileRef) -> Option<Arc<CachedFile>> {
        self.hit(&mut lock(&self.inner), f)
    }

    /// This mount's entry for `f`, unless its download failed; a hit.
    fn hit(&self, inner: &mut Inner, f: &FileRef) -> Option<Arc<CachedFile>> {
        let (cf, _) = inner.files.get(f)?;
        if cf.failed() {
            return None;
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(cf.clone())
    }

    /// The size of `f` as kept by an earlier mount, without any API call.
    pub fn stored_size(&self, f: &FileRef) -> Option<u64> {
        self.store.size_of(f)
    }

    /// A new entry for `f`: on disk (the part file is made under the
    /// cache's lock, so that two opens can never start two downloads of
    /// one file; it is one metadata syscall), or in memory when it cannot
    /// be cached on disk. A file fetched whole starts downloading now.
    fn start(
        self: &Arc<Self>,
        f: &FileRef,
        size: Option<u64>,
        finished: bool,
    ) -> Result<Arc<CachedFile>, FsError> {
        let mut inner = lock(&self.inner);
        if let Some(cf) = self.hit(&mut inner, f) {
            return Ok(cf);
        }
        inner.forget(f);
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let chunk = self.plan.chunk_size;
        let ranges = !self.ranges_refused.load(Ordering::Relaxed);
        // The memory path needs ranges and a size; a file that would not
        // fit beside the files in use goes there from its open.
        let memory = size.filter(|&size| {
            ranges
                && (size > self.max_bytes.saturating_sub(inner.pinned()) || self.disk_is_full(size))
        });
        let disk = match memory {
            Some(_) => None,
            None => {
                inner.next_id += 1;
                let path = self.dir.path().join(format!("{}.part", inner.next_id));
                match std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                {
                    Ok(file) => Some((file, path)),
                    Err(e) if room::is_disk_full(&e) && ranges && size.is_some() => {
                        self.note_disk_full(f);
                        None
                    }
                    Err(e) => return Err(FsError::io("creating a cache file", e)),
                }
            }
        };
        let in_memory = disk.is_none();
        let fill = match size {
            Some(size) if in_memory || (size > chunk && ranges) => Fill::Chunks {
                segs: (0..size.div_ceil(chunk).max(1))
                    .map(|i| (i * chunk, Seg::new(((i + 1) * chunk).min(size), in_memory)))
                    .collect(),
            },
            _ => Fill::Prefix(0),
        };
        let whole = matches!(fill, Fill::Prefix(_));
        let state = State {
            fill,
            end: End::Running,
        };
        let mut cf = CachedFile::new(f.clone(), disk, state, finished, chunk);
        cf.size_hint = size;
        // Marked before any open can see it: a reader must not start a
        // second fetch of a file fetched whole.
        lock(&cf.wants).fetching = whole;
        let cf = Arc::new(cf);
        if in_memory {
            self.stats.memory_files.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(file = ?f, ?size, "reading through memory: it does not fit the disk cache");
        }
        // A file fetched whole has its size reserved before the first byte
        // is written; a chunked one reserves each chunk before its fetch.
        let reserved = if whole { size.unwrap_or(0) } else { 0 };
        inner.files.put(f.clone(), (cf.clone(), reserved));
        inner.total += reserved;
        self.evict(&mut inner, self.max_bytes);
        drop(inner);
        if whole {
            self.spawn_fetch(cf.clone());
        }
        Ok(cf)
    }

    /// Fetch `cf` in the background. Once complete, account for it and
    /// (for a finished run) keep it; once stopped (no reader left), count
    /// only what it holds; on failure, fail its readers and drop it, so
    /// the next open starts afresh.
    fn spawn_fetch(self: &Arc<Self>, task_cf: Arc<CachedFile>) {
        let this = self.clone();
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let fref = task_cf.fref.clone();
            let result = this.fetch(&task_cf).await;
            this.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(Some(size)) => {
                    task_cf.state.send_modify(|s| s.end = End::Done { size });
                    this.stats.bytes_cached.fetch_add(size, Ordering::Relaxed);
                    // The task lets go of the file before keeping it: only
                    // readers hold a file back from eviction, never this
                    // background work.
                    let finished = task_cf.finished;
                    let weak = Arc::downgrade(&task_cf);
                    drop(task_cf);
                    this.account(&fref, size);
                    if finished {
                        this.keep(weak, size).await;
                    }
                }
                Ok(None) => {
                    let on_disk = task_cf.state.borrow().fill.on_disk();
                    let weak = Arc::downgrade(&task_cf);
                    drop(task_cf);
                    this.settle(&weak, on_disk);
                }
                Err(e) => {
                    tracing::warn!(file = ?fref, error = %e, "download failed");
                    task_cf.state.send_modify(|s| {
                        s.end = End::Failed(FsError::from(e).context("download failed"))
                    });
                    drop(task_cf);
                    let mut inner = lock(&this.inner);
                    let same = inner.files.peek(&fref).is_some_and(|(c, _)| c.failed());
                    if same {
                        inner.forget(&fref);
                    }
                }
            }
        });
    }

    /// Fetch `cf`: in chunks when its size is known, else (or when the
    /// server refuses ranges) whole. `Some` with the exact size once every
    /// byte is in the cache file; `None` when the fetch stopped first (no
    /// reader left, or the file is read through memory).
    async fn fetch(&self, cf: &Arc<CachedFile>) -> Result<Option<u64>, crate::api::Error> {
        let op = cf.fref.operation();
        loop {
            let chunked = match &cf.state.borrow().fill {
                Fill::Chunks { segs } => segs.values().next_back().map(|s| s.end),
                Fill::Prefix(_) => None,
            };
            if let Some(size) = chunked {
                match self.fetch_chunks(cf, size).await? {
                    FetchEnd::Done => {
                        // Ranges were written at their offsets; the length
                        // is set once, off the async workers (ext4 may block).
                        let file = cf.clone();
                        tokio::task::spawn_blocking(move || match &file.file {
                            Some(f) => f.set_len(size),
                            None => Ok(()),
                        })
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r)
                        .map_err(|source| crate::api::Error::Io { op, source })?;
                        return Ok(Some(size));
                    }
                    FetchEnd::Stopped => return Ok(None),
                    FetchEnd::RangesRefused => {
                        tracing::info!(
                            file = ?cf.fref,
                            "the server does not serve ranges: fetching files whole from now on"
                        );
                        self.ranges_refused.store(true, Ordering::Relaxed);
                        if !self
                            .reserve_disk(cf, size.saturating_sub(cf.state.borrow().fill.on_disk()))
                        {
                            return Err(crate::api::Error::Protocol {
                                op,
                                detail: "the server does not serve ranges of this file, \
                                         and it does not fit the disk cache"
                                    .into(),
                            });
                        }
                        cf.state.send_modify(|s| s.fill = Fill::Prefix(0));
                    }
                }
            }
            let Some(file) = &cf.file else {
                return Err(crate::api::Error::Protocol {
                    op,
                    detail: "a file read through memory cannot be fetched whole".into(),
                });
            };
            let report = |have: u64| cf.landed_prefix(have);
            match self
                .client
                .download(&cf.fref, file, &report, Some(&cf.written))
                .await
            {
                Ok(size) => return Ok(Some(size)),
                // The disk is full: what is held stays on disk, the rest
                // comes in ranges through memory (if the server has them).
                Err(e)
                    if room::is_disk_full_error(&e)
                        && !self.ranges_refused.load(Ordering::Relaxed) =>
                {
                    let Some(size) = cf.size_hint else {
                        return Err(e);
                    };
                    self.whole_to_memory(cf, size);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The size of `f` if it is fully in the cache, without any API call.
    pub fn complete_size(&self, f: &FileRef) -> Option<u64> {
        lock(&self.inner)
            .files
            .peek(f)
            .and_then(|(c, _)| c.complete_size())
    }

    /// The cache's bound and the bytes it holds now (downloads done).
    pub fn usage(&self) -> (u64, u64) {
        (self.max_bytes, lock(&self.inner).total)
    }

    /// Evict what the bound calls for now: a reader that held files back
    /// has let go.
    pub fn trim(&self) {
        self.evict(&mut lock(&self.inner), self.max_bytes);
    }

    /// What memory-path files hold now, and their budget.
    pub fn memory_usage(&self) -> (u64, u64) {
        (self.memory.limit(), self.memory.used())
    }
}

fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Remove the cache directories of mounts that are gone (a killed mount
/// cannot clean up after itself), so they do not pile up on disk. Whether
/// a mount is gone is told by the lock its folder holds, not by its PID
/// (see `platform/lock.rs`).
pub(crate) fn remove_stale_dirs(parent: &Path) {
    for dir in crate::platform::lock::remove_stale(parent, MOUNT_DIR_PREFIX) {
        tracing::info!(dir = %dir.display(), "removed the cache of a mount that is gone");
    }
}
