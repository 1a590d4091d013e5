//! The on-disk result cache: each result file is downloaded once, into a file
//! under the cache directory, and served from there.
//!
//! A reader does not wait for the whole download: the download task publishes
//! how many leading bytes have landed on a `watch` channel and a read waits
//! only until its range is present. Entries are kept in least-recently-used
//! order and evicted when the total passes `--cache-size`, but never while a
//! handle holds them (an `Arc` count above one), so an open file is never cut
//! from under its reader. A failed download leaves the cache at once, so the
//! next open starts afresh instead of serving a broken file.

use crate::api::{Client, FileRef};
use crate::fs::cache::lock;
use crate::fs::FsError;
use lru::LruCache;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How far one download has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// `have` leading bytes are in the file.
    Running { have: u64 },
    /// The whole file, of this exact size, is in the file.
    Done { size: u64 },
    /// The download failed with this errno; nothing more will arrive.
    Failed { errno: i32 },
}

/// One result file in the cache.
pub struct CachedFile {
    /// Which result file this is.
    pub fref: FileRef,
    path: PathBuf,
    file: std::fs::File,
    progress: watch::Receiver<Progress>,
}

impl CachedFile {
    /// Wait for the download to end and return the exact size.
    pub async fn size(&self) -> Result<u64, FsError> {
        let mut rx = self.progress.clone();
        loop {
            match &*rx.borrow_and_update() {
                Progress::Done { size } => return Ok(*size),
                Progress::Failed { errno } => return Err(FsError::new(*errno)),
                Progress::Running { .. } => {}
            }
            if rx.changed().await.is_err() {
                return Err(FsError::new(libc::EIO));
            }
        }
    }

    /// The size if the download is complete.
    pub fn complete_size(&self) -> Option<u64> {
        match &*self.progress.borrow() {
            Progress::Done { size } => Some(*size),
            _ => None,
        }
    }

    /// Read `len` bytes at `offset`, waiting only until they have arrived.
    ///
    /// `expected` is the size the file was opened with (what `stat` said): a
    /// download that ends at another size fails every read with EIO rather
    /// than letting a reader see a file that silently shrank or grew.
    pub async fn read(&self, offset: u64, len: u32, expected: u64) -> Result<Vec<u8>, FsError> {
        let want_end = offset.saturating_add(len as u64);
        let mut rx = self.progress.clone();
        let end = loop {
            let state = rx.borrow_and_update().clone();
            match state {
                Progress::Done { size } if size != expected => {
                    tracing::error!(
                        "the server sent {size} bytes for a file it said was {expected} bytes: refusing to serve it"
                    );
                    return Err(FsError::new(libc::EIO));
                }
                Progress::Done { size } => break want_end.min(size),
                Progress::Running { have } if have >= want_end => break want_end,
                Progress::Failed { errno } => return Err(FsError::new(errno)),
                Progress::Running { .. } => {}
            }
            if rx.changed().await.is_err() {
                return Err(FsError::new(libc::EIO));
            }
        };
        if end <= offset {
            return Ok(Vec::new());
        }
        read_at_uninit(&self.file, offset, (end - offset) as usize)
            .map_err(|e| FsError::io("reading the cache file", e))
    }

    /// The cache file, for passthrough opens of complete files.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }
}

/// Read exactly `len` bytes at `offset` into a new buffer without zeroing it
/// first (zeroing is a measurable share of a cold read's CPU).
fn read_at_uninit(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        // SAFETY: the pointer and length stay within the buffer's spare
        // capacity, which pread only writes; set_len below covers only the
        // bytes pread reported as written.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                len - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
        // SAFETY: the first `done` bytes were written by pread.
        unsafe { buf.set_len(done) };
    }
    Ok(buf)
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
}

struct Inner {
    files: LruCache<FileRef, (Arc<CachedFile>, u64)>,
    total: u64,
    next_id: u64,
}

/// The cache of result files of one mount.
pub struct DataCache {
    dir: PathBuf,
    max_bytes: u64,
    client: Client,
    inner: Mutex<Inner>,
    pub stats: DataStats,
}

impl DataCache {
    /// A cache in a fresh private directory under `parent`, removed on drop.
    pub fn new(parent: &Path, max_bytes: u64, client: Client) -> std::io::Result<DataCache> {
        std::fs::create_dir_all(parent)?;
        remove_stale_dirs(parent);
        let dir = parent.join(format!("mount-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(DataCache {
            dir,
            max_bytes,
            client,
            inner: Mutex::new(Inner {
                files: LruCache::unbounded(),
                total: 0,
                next_id: 0,
            }),
            stats: DataStats::default(),
        })
    }

    /// The cached file for `f`, starting its download if it is not cached.
    pub fn get(self: &Arc<Self>, f: &FileRef) -> Result<Arc<CachedFile>, FsError> {
        let mut inner = lock(&self.inner);
        if let Some((cf, _)) = inner.files.get(f) {
            if !matches!(&*cf.progress.borrow(), Progress::Failed { .. }) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cf.clone());
            }
        }
        inner.files.pop(f);
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        inner.next_id += 1;
        let path = self.dir.join(format!("{}.part", inner.next_id));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| FsError::io("creating a cache file", e))?;
        let writer = file
            .try_clone()
            .map_err(|e| FsError::io("opening a cache file", e))?;
        let (tx, rx) = watch::channel(Progress::Running { have: 0 });
        let cf = Arc::new(CachedFile {
            fref: f.clone(),
            path,
            file,
            progress: rx,
        });
        inner.files.put(f.clone(), (cf.clone(), 0));
        drop(inner);

        let this = self.clone();
        let fref = f.clone();
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let report = |have: u64| {
                tx.send_if_modified(|p| match p {
                    Progress::Running { have: h } if *h < have => {
                        *h = have;
                        true
                    }
                    _ => false,
                });
            };
            let result = this.client.download(&fref, &writer, &report).await;
            this.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(size) => {
                    this.stats.bytes_cached.fetch_add(size, Ordering::Relaxed);
                    tx.send_replace(Progress::Done { size });
                    this.account(&fref, size);
                }
                Err(e) => {
                    tracing::warn!(file = ?fref, error = %e, "download failed");
                    tx.send_replace(Progress::Failed { errno: e.errno() });
                    let mut inner = lock(&this.inner);
                    let same = inner.files.peek(&fref).is_some_and(|(c, _)| {
                        matches!(&*c.progress.borrow(), Progress::Failed { .. })
                    });
                    if same {
                        inner.files.pop(&fref);
                    }
                }
            }
        });
        Ok(cf)
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

    /// Record a finished download's size and evict old files past the bound.
    fn account(&self, f: &FileRef, size: u64) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.files.peek_mut(f) {
            entry.1 = size;
        }
        inner.total += size;
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
        }
        // Put the files in use back, as the least recently used.
        for (k, v) in skipped.into_iter().rev() {
            inner.files.push(k.clone(), v);
            inner.files.demote(&k);
        }
    }
}

/// Remove the cache directories of mounts whose process is gone (a killed
/// mount cannot clean up after itself), so they do not pile up on disk.
fn remove_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mount-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(dir = %e.path().display(), "removing the cache of a mount that is gone");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for DataCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
