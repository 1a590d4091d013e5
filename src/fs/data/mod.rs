//! The on-disk result cache: each result file is downloaded once, into a file
//! under the cache directory, and served from there.
//!
//! What is subtle here:
//! - **Chunks, in parallel, the needed one first.** A file whose size is
//!   known (a HEAD said it) and larger than one chunk is fetched as ranged
//!   GETs of `chunk_size` bytes, up to `streams` at once, each written at its
//!   offset. Which chunk comes next is decided by one scheduler task per
//!   file: a chunk a reader is waiting for goes first (taking the place of a
//!   speculative one, which is dropped and later resumed from its last byte
//!   when every stream is busy); otherwise the next absent chunk from where
//!   the last read ended, wrapping round, so a sequential reader finds the
//!   chunks ahead of it already arriving and a `tail` does not wait for the
//!   head. A reader far into a chunk (absent, or read ahead from its start
//!   and not yet near the reader) splits it where it reads, so it waits for
//!   its own bytes, not for the rest of the chunk before them. The whole
//!   file is fetched once opened, as before: it is then in the cache for
//!   the next open (and for passthrough).
//! - **Readers wait for their bytes only.** The state of a file (bytes held
//!   at the start of each chunk, or the contiguous prefix of a file fetched
//!   whole) is published on a `watch` channel; a read waits until its range
//!   is present. Within a chunk, bytes are readable as they land.
//! - **Fallback.** A file of unknown size, a small one, or a server that
//!   answers a range with the whole file (200) or compressed, is fetched as
//!   one stream from the start, exactly as `Client::download` does (resume,
//!   gzip, the size check). A refused range is remembered for the mount.
//! - **Never short, never wrong.** Every ranged answer must give the size
//!   the file was opened with; a chunk that fails after its retries fails
//!   the whole file, and every read of it gets EIO.
//! - **Eviction.** Entries are kept in least-recently-used order and evicted
//!   when the total passes `--cache-size`, but never while a handle holds
//!   them (an `Arc` count above one), so an open file is never cut from under
//!   its reader; when the last such handle closes, eviction runs again.
//!   Background work never holds a file back: keeping a finished download
//!   for later mounts works on its own descriptor, and a file evicted
//!   meanwhile is removed from the store again. A failed download leaves
//!   the cache at once, so the next open starts afresh instead of serving a
//!   broken file.

use crate::api::{Client, FileRef, RangeOutcome};
use crate::fs::cache::lock;
use crate::fs::names::FileName;
use crate::fs::store::{self, Store};
use crate::fs::FsError;
use crate::platform::lock::OwnedDir;
pub use file::CachedFile;
use file::{End, Fill, Seg, State, Wants};
pub use mapped::FileBytes;

mod fetch;
mod file;
mod mapped;
use lru::LruCache;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// The folders of mounts are `mount-<pid>` under the cache directory.
const MOUNT_DIR_PREFIX: &str = "mount-";

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
}

struct Inner {
    /// Every file of this mount, with the bytes counted for it (its size,
    /// or what was reserved for it while it downloads).
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
    pub stats: DataStats,
}

impl DataCache {
    /// A cache in a fresh private directory under `parent` (removed on
    /// drop), with the store of `account` beside it. A `parent` owned by
    /// another user or writable by others is refused: files planted there
    /// would be served as the account's.
    pub fn new(
        parent: &Path,
        max_bytes: u64,
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
            stats: DataStats::default(),
        })
    }

    /// The cached file for `f`: this mount's, else (for a file of a
    /// `finished` run) a verified one an earlier mount kept, else a new
    /// download. `size` is the size a HEAD gave, if any: only a file of
    /// known size is fetched in ranged chunks. A finished run's file is kept
    /// in the store once complete; any other is deleted with the mount.
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

    /// A complete file an earlier mount kept, once its size and checksum
    /// hold (read once, off the async workers). A wrong one is deleted.
    async fn from_store(
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
        let cf = Arc::new(CachedFile {
            fref: f.clone(),
            path: Mutex::new(data),
            kept: AtomicBool::new(true),
            file,
            state: watch::Sender::new(State {
                fill: Fill::Prefix(size),
                end: End::Done { size },
            }),
            wants: Mutex::new(Wants::default()),
            cursor: AtomicU64::new(0),
            kick: Notify::new(),
            written: Arc::default(),
        });
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

    /// Start downloading `f` into this mount's folder. The part file is
    /// made under the cache's lock, so that two opens can never start two
    /// downloads of one file; it is one metadata syscall.
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
        inner.next_id += 1;
        let path = self.dir.path().join(format!("{}.part", inner.next_id));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| FsError::io("creating a cache file", e))?;
        let chunk = self.plan.chunk_size;
        let fill = match size {
            Some(size) if size > chunk && !self.ranges_refused.load(Ordering::Relaxed) => {
                Fill::Chunks {
                    segs: (0..size.div_ceil(chunk))
                        .map(|i| {
                            let end = ((i + 1) * chunk).min(size);
                            (i * chunk, Seg { end, have: 0 })
                        })
                        .collect(),
                }
            }
            _ => Fill::Prefix(0),
        };
        let cf = Arc::new(CachedFile {
            fref: f.clone(),
            path: Mutex::new(path),
            kept: AtomicBool::new(false),
            file,
            state: watch::Sender::new(State {
                fill,
                end: End::Running,
            }),
            wants: Mutex::new(Wants::default()),
            cursor: AtomicU64::new(0),
            kick: Notify::new(),
            written: Arc::default(),
        });
        // The bytes a download will need are counted, and room made for
        // them, before the first one is written: the cache stays within its
        // bound while files stream in, not only once they are complete.
        let reserved = size.unwrap_or(0);
        inner.files.put(f.clone(), (cf.clone(), reserved));
        inner.total += reserved;
        self.evict(&mut inner);
        drop(inner);

        self.spawn_download(cf.clone(), finished);
        Ok(cf)
    }

    /// Download `cf` in the background; once complete, account for it and
    /// (for a finished run) keep it; on failure, fail its readers and drop
    /// it, so the next open starts afresh.
    fn spawn_download(self: &Arc<Self>, task_cf: Arc<CachedFile>, finished: bool) {
        let this = self.clone();
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let fref = task_cf.fref.clone();
            let result = this.fetch(&task_cf).await;
            this.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(size) => {
                    task_cf.state.send_modify(|s| s.end = End::Done { size });
                    this.stats.bytes_cached.fetch_add(size, Ordering::Relaxed);
                    // The task lets go of the file before keeping it: only
                    // readers hold a file back from eviction, never this
                    // background work.
                    let weak = Arc::downgrade(&task_cf);
                    drop(task_cf);
                    this.account(&fref, size);
                    if finished {
                        this.keep(weak, size).await;
                    }
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

    /// Move a complete download of a finished run into the store, with the
    /// checksum its download recorded (or, if that record is not whole, one
    /// computed by reading the file, off the async workers). It works on
    /// its own descriptor of the file, so the entry may be evicted
    /// meanwhile: then what was stored is removed again.
    async fn keep(self: &Arc<Self>, weak: std::sync::Weak<CachedFile>, size: u64) {
        let Some((file, part, fref, crc)) = weak.upgrade().and_then(|cf| {
            let file = cf.file.try_clone().ok()?;
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
    fn install(&self, weak: &std::sync::Weak<CachedFile>, data: &Path) -> bool {
        let inner = lock(&self.inner);
        let Some(cf) = weak.upgrade() else {
            return false;
        };
        let current = inner
            .files
            .peek(&cf.fref)
            .is_some_and(|(c, _)| Arc::ptr_eq(c, &cf));
        if current {
            *lock(&cf.path) = data.to_path_buf();
            cf.kept.store(true, Ordering::Relaxed);
        }
        drop(inner);
        current
    }

    /// Fetch every byte of `cf`: in chunks when its size is known, else (or
    /// when the server refuses ranges) whole. Returns the exact size.
    async fn fetch(&self, cf: &Arc<CachedFile>) -> Result<u64, crate::api::Error> {
        let chunked = match &cf.state.borrow().fill {
            Fill::Chunks { segs } => segs.values().next_back().map(|s| s.end),
            Fill::Prefix(_) => None,
        };
        if let Some(size) = chunked {
            match self.fetch_chunks(cf, size).await? {
                RangeOutcome::Done => {
                    // Ranges were written at their offsets; the length is
                    // set once, off the async workers (ext4 may block).
                    let file = cf.clone();
                    tokio::task::spawn_blocking(move || file.file.set_len(size))
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r)
                        .map_err(|source| crate::api::Error::Io {
                            op: cf.fref.operation(),
                            source,
                        })?;
                    return Ok(size);
                }
                RangeOutcome::Unsupported => {
                    tracing::info!(
                        file = ?cf.fref,
                        "the server does not serve ranges: fetching files whole from now on"
                    );
                    self.ranges_refused.store(true, Ordering::Relaxed);
                    cf.state.send_modify(|s| s.fill = Fill::Prefix(0));
                }
            }
        }
        let report = |have: u64| cf.landed_prefix(have);
        self.client
            .download(&cf.fref, &cf.file, &report, Some(&cf.written))
            .await
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

    /// Record a finished download's size (it replaces what was reserved
    /// for it) and evict old files past the bound.
    fn account(&self, f: &FileRef, size: u64) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.files.peek_mut(f) {
            let reserved = std::mem::replace(&mut entry.1, size);
            inner.total = inner.total.saturating_sub(reserved) + size;
        }
        self.evict(&mut inner);
    }

    /// Evict what the bound calls for now: a reader that held files back
    /// has let go.
    pub fn trim(&self) {
        self.evict(&mut lock(&self.inner));
    }

    /// Evict least recently used files until the total is within the bound.
    fn evict(&self, inner: &mut Inner) {
        let mut skipped = Vec::new();
        while inner.total > self.max_bytes {
            let Some((k, (cf, sz))) = inner.files.pop_lru() else {
                break;
            };
            // Files being read or downloaded stay: a reader holds their Arc.
            if Arc::strong_count(&cf) > 1 || cf.complete_size().is_none() {
                skipped.push((k, (cf, sz)));
                continue;
            }
            inner.total -= sz;
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            if cf.kept.load(Ordering::Relaxed) {
                // Gone from the store too, unless another mount uses it.
                store::remove_unused(&lock(&cf.path), Some(&cf.file));
            }
        }
        // Put the files in use back, as the least recently used.
        for (k, v) in skipped.into_iter().rev() {
            inner.files.push(k.clone(), v);
            inner.files.demote(&k);
        }
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
