//! The filesystem as plain async operations, with no fuser types: what the
//! adapter (`fuse/`) calls, one method per kernel request, each a few lines
//! over the namespace (`tree.rs`), the objects (`objects.rs`) and the
//! caches. The write side's operations are in `write.rs` and `control.rs`.
//!
//! What is subtle:
//! - Sizes are exact before the first read. Generated files (JSON, `inputs`,
//!   `state`, `stats`) are rendered from the same cached object for `getattr`
//!   and for `open`, and are opened with direct I/O so a change of content
//!   between the two can never be cut at a stale size. Result files take their
//!   size from a HEAD (or the finished download) and are opened with
//!   `keep_cache` when immutable: a finished run's files cannot change.
//! - Kernel TTLs are the time our cached answer has left, capped at
//!   `kernel_ttl` for mutable nodes and `immutable_ttl` for finished runs
//!   ([`Fs::entry`]).
//! - A directory is listed whole at `opendir` and paged from the handle, so
//!   a listing that changes on the API between two `getdents` calls cannot
//!   skip or repeat an entry.
//! - A read of a result file is a check and a copy ([`Fs::read_now`]) or a
//!   wait ([`Fs::wait_readable`]), so that the adapter can copy off the
//!   async workers; [`Fs::read`] is both in one call, for other callers.
//! - A failed read of a result file forgets the size a HEAD gave: the
//!   server may have lied, and the next open asks again.
//! - Opening a result file starts its whole download, not only the part
//!   read: the file is then in the cache for the next open (and for FUSE
//!   passthrough); only a FINISHED run's files are kept for later mounts.

use crate::api::{Client, FileRef};
use crate::fs::buffers::{slice_at, ScratchStore, Writer};
use crate::fs::cache::{lock, Expiry, KeyLocks};
use crate::fs::cache::{Caches, Counters, FetchKey};
use crate::fs::counters::MountStats;
use crate::fs::data::{CachedFile, DataCache, DataHandle, FetchPlan, FileBytes};
use crate::fs::inodes::{Ino, InodeTable, Kind, Node};
use crate::fs::names::NameTable;
use crate::fs::outage::Outage;
use crate::fs::runs::run_has_files;
use crate::fs::FsError;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Settings of one mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// How long listings and mutable objects are trusted. A few seconds: long
    /// enough that `ls -l` and a script's burst of stats cost one listing,
    /// short enough that a run started elsewhere shows up promptly.
    pub metadata_ttl: Duration,
    /// The longest the kernel may trust a mutable node without asking again.
    /// About a second, as mountpoint-s3 does: the kernel re-asks cheaply from
    /// our cache, and changes show up within a second of our own expiry.
    pub kernel_ttl: Duration,
    /// How long the kernel may trust immutable nodes (finished runs).
    pub immutable_ttl: Duration,
    /// Where result files are kept (a private subdirectory is made per
    /// mount, and finished runs' files are kept for later mounts). Default
    /// `$XDG_CACHE_HOME/importfs`, else `~/.cache/importfs` (macOS:
    /// `~/Library/Caches/importfs`): the OS's place for data that can be
    /// fetched again; the temporary directory only when there is no home.
    pub cache_dir: PathBuf,
    /// Bound of the result cache in bytes, over every mount sharing the
    /// directory. Default 4 GiB: a few large results, without filling a
    /// laptop's disk.
    pub cache_size: u64,
    /// How result files are fetched: chunk size and parallel ranged GETs.
    pub fetch: FetchPlan,
    /// What files read through memory may hold together. Default 256 MiB:
    /// eight readers streaming at once each keep four 8 MiB chunks.
    pub max_memory: u64,
    /// Refuse every change (EROFS). Default off.
    pub read_only: bool,
    /// Let `rmdir` archive an extractor or delete a report. Default off: a
    /// stray `rm -r` must not reach the account.
    pub allow_delete: bool,
    /// The owner every node shows. Default: the process's own user and
    /// group, since the mount answers for the user who mounted it.
    pub uid: u32,
    pub gid: u32,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            metadata_ttl: Duration::from_secs(5),
            kernel_ttl: Duration::from_secs(1),
            immutable_ttl: Duration::from_secs(3600),
            cache_dir: default_cache_dir(),
            cache_size: 4 << 30,
            fetch: FetchPlan::default(),
            max_memory: 256 << 20,
            read_only: false,
            allow_delete: false,
            // SAFETY: getuid/getgid have no preconditions and cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
        }
    }
}

/// `$XDG_CACHE_HOME/importfs`, else `~/.cache/importfs` (or the OS's
/// place, `platform::CACHE_HOME`), else (no home) the temporary directory.
/// An empty variable counts as unset.
fn default_cache_dir() -> PathBuf {
    let set = |v: &str| std::env::var_os(v).filter(|d| !d.is_empty());
    if let Some(d) = set("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("importfs");
    }
    if let Some(h) = set("HOME") {
        return PathBuf::from(h)
            .join(crate::platform::CACHE_HOME)
            .join("importfs");
    }
    std::env::temp_dir().join("importfs-cache")
}

/// Attributes of a node, as the adapter hands them to the kernel.
#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub mtime: SystemTime,
    pub uid: u32,
    pub gid: u32,
}

/// A looked-up or stat'ed node, with how long the kernel may trust it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: Kind,
    pub name: OsString,
}

/// The answer to an open.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub fh: u64,
    /// Keep the kernel page cache across opens (immutable files).
    pub keep_cache: bool,
    /// Bypass the page cache (generated files whose size may change).
    pub direct_io: bool,
}

#[derive(Clone)]
pub(super) enum Handle {
    Bytes(Arc<[u8]>),
    /// An open result file (a reader of it).
    Data(Arc<DataHandle>),
    Dir(Arc<Vec<DirEntry>>),
    /// A file opened for writing whose content is sent on close.
    Writer(Arc<Writer>),
    /// A scratch file, read and written in place.
    Scratch(u64),
    /// An open of `.importfs/events`, read from the log at any offset.
    Events,
}

/// The filesystem of one mount.
pub struct Fs {
    pub cfg: FsConfig,
    pub(super) client: Client,
    pub(super) inodes: InodeTable,
    pub(super) extractor_names: Mutex<NameTable>,
    pub(super) report_names: Mutex<NameTable>,
    pub(super) caches: Caches,
    pub(super) fetches: KeyLocks<FetchKey>,
    pub(super) data: Arc<DataCache>,
    pub(super) handles: Mutex<HashMap<u64, Handle>>,
    pub(super) next_fh: AtomicU64,
    pub(super) counters: Counters,
    pub(super) outage: Outage,
    /// FUSE requests and error replies, counted by the adapter.
    pub fuse: crate::fs::counters::FuseCounters,
    pub(super) mounted_at: SystemTime,
    pub(super) scratch: Mutex<ScratchStore>,
    pub(super) writers: Mutex<HashMap<Ino, usize>>,
    /// When listings and links were last seen to change (their mtime).
    pub(super) changes: crate::fs::changes::Changes,
    /// The run events the poll sees (`.importfs/events`).
    pub events: crate::fs::events::EventLog,
    /// What the adapter does with kernel invalidations (FUSE's notifier).
    pub(super) invalidator: Mutex<Option<InvalidateFn>>,
}

/// An adapter's way to make the kernel forget what changed.
pub type InvalidateFn = Box<dyn Fn(Inval) + Send + Sync>;

/// What the kernel may hold that a change makes stale (`poll.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inval {
    /// Everything about an inode (a directory's listing, a file's pages).
    Inode(Ino),
    /// One name in a directory (a `latest` link's target).
    Entry(Ino, OsString),
    /// A file's pages from an offset, this many bytes (0: to its end).
    Pages(Ino, u64, u64),
}

impl Fs {
    pub fn new(cfg: FsConfig, client: Client) -> std::io::Result<Fs> {
        let data = Arc::new(DataCache::new(
            &cfg.cache_dir,
            cfg.cache_size,
            cfg.max_memory,
            cfg.fetch,
            client.clone(),
        )?);
        Ok(Fs {
            cfg,
            client,
            inodes: InodeTable::default(),
            extractor_names: Mutex::new(NameTable::default()),
            report_names: Mutex::new(NameTable::default()),
            caches: Caches::default(),
            fetches: KeyLocks::default(),
            data,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            counters: Counters::default(),
            outage: Outage::default(),
            fuse: Default::default(),
            mounted_at: SystemTime::now(),
            scratch: Mutex::new(Default::default()),
            writers: Mutex::new(HashMap::new()),
            changes: Default::default(),
            events: crate::fs::events::EventLog::from_env(),
            invalidator: Mutex::new(None),
        })
    }

    pub(super) fn ttl(&self) -> Expiry {
        Expiry::after(self.cfg.metadata_ttl)
    }

    // ---- operations --------------------------------------------------------

    pub async fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Entry, FsError> {
        let parent = self.node(parent)?;
        if parent.kind() != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR));
        }
        let node = match std::str::from_utf8(name.as_bytes()) {
            Ok(name) => self.child(&parent, name).await?,
            // Every name of the API's tree is UTF-8; a scratch file may be
            // named with any bytes.
            Err(_) => match &parent {
                Node::Extractor(g) => lock(&self.scratch)
                    .child(g, name.as_bytes())
                    .ok_or(FsError::new(libc::ENOENT))?,
                _ => return Err(FsError::new(libc::ENOENT)),
            },
        };
        let (attr, exp) = self.attr_of(&node).await?;
        Ok(self.entry(attr, exp))
    }

    pub async fn getattr(&self, ino: Ino) -> Result<Entry, FsError> {
        let node = self.node(ino)?;
        let (attr, exp) = self.attr_of(&node).await?;
        Ok(self.entry(attr, exp))
    }

    pub async fn readlink(&self, ino: Ino) -> Result<Vec<u8>, FsError> {
        let node = self.node(ino)?;
        Ok(self.link_target(&node).await?.0.into_bytes())
    }

    /// The directory that holds `ino` (the root is its own parent), for
    /// adapters whose protocol looks up `..` by name (NFS).
    pub fn parent(&self, ino: Ino) -> Result<Ino, FsError> {
        let node = self.node(ino)?;
        if node == Node::Root {
            return Ok(ino);
        }
        Ok(self.inodes.ino(&self.parent_of(&node)))
    }

    pub(super) fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }

    pub async fn opendir(&self, ino: Ino) -> Result<Opened, FsError> {
        let node = self.node(ino)?;
        if node.kind() != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR));
        }
        let entries = self.list(&node).await?;
        let fh = self.new_handle(Handle::Dir(Arc::new(entries)));
        Ok(Opened {
            fh,
            keep_cache: false,
            direct_io: false,
        })
    }

    /// Entries from `offset` on; the offset of entry i is i + 1.
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<Vec<(u64, DirEntry)>, FsError> {
        let entries = match lock(&self.handles).get(&fh) {
            Some(Handle::Dir(e)) => e.clone(),
            _ => return Err(FsError::new(libc::EBADF)),
        };
        Ok(entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (i as u64 + 1, e.clone()))
            .collect())
    }

    /// Whether `ino` is `.importfs/events`, which NFS reads from the log
    /// directly, at any offset, with no open.
    pub fn is_events(&self, ino: Ino) -> bool {
        matches!(self.node(ino), Ok(Node::Events))
    }

    /// `.importfs/events`' size, and its mtime into `mtime`: the end of the
    /// log and its last change, never to be cached (`tail -f` polls them).
    pub(super) fn events_attr(&self, mtime: &mut SystemTime) -> (u64, Expiry) {
        let (size, changed) = self.events.size_and_mtime();
        *mtime = changed;
        (size, Expiry::At(std::time::Instant::now()))
    }

    /// How many entries an open directory listing holds.
    pub fn dir_len(&self, fh: u64) -> Option<u64> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::Dir(e)) => Some(e.len() as u64),
            _ => None,
        }
    }

    /// Up to `max` entries from `offset` on, each with its attributes, for
    /// READDIRPLUS: `ls -l` of 10,000 runs then needs no lookup per entry.
    /// Attributes are computed concurrently; an entry whose attributes cannot
    /// be had (a file gone since the listing) is left out.
    pub async fn readdirplus(
        &self,
        fh: u64,
        offset: u64,
        max: usize,
    ) -> Result<Vec<(u64, DirEntry, Entry)>, FsError> {
        let page: Vec<(u64, DirEntry)> = self.readdir(fh, offset)?.into_iter().take(max).collect();
        let attrs = futures_util::future::join_all(page.iter().map(|(_, e)| async move {
            let node = self.node(e.ino)?;
            let (attr, exp) = self.attr_of(&node).await?;
            Ok::<Entry, FsError>(self.entry(attr, exp))
        }))
        .await;
        Ok(page
            .into_iter()
            .zip(attrs)
            .filter_map(|((off, e), a)| a.ok().map(|a| (off, e, a)))
            .collect())
    }

    pub fn releasedir(&self, fh: u64) {
        lock(&self.handles).remove(&fh);
    }

    /// Open a file; `flags` are open(2)'s.
    pub async fn open(&self, ino: Ino, flags: i32) -> Result<Opened, FsError> {
        let node = self.node(ino)?;
        if node.kind() == Kind::Dir {
            return Err(FsError::new(libc::EISDIR));
        }
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if write {
            return self.open_write(node, ino, flags).await;
        }
        match node {
            Node::Credentials(_) | Node::Control(..) | Node::ReportStart(_) | Node::Refresh => {
                return Err(FsError::new(libc::EACCES));
            }
            Node::Scratch(id) => {
                let fh = self.new_handle(Handle::Scratch(id));
                return Ok(Opened {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                });
            }
            Node::Events => {
                let fh = self.new_handle(Handle::Events);
                return Ok(Opened {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                });
            }
            _ => {}
        }
        if let Some(f) = Self::file_ref(&node) {
            return self.open_result(&node, f).await;
        }
        let (bytes, exp) = self.content(&node).await?;
        let fh = self.new_handle(Handle::Bytes(bytes));
        let immutable = exp == Expiry::Never;
        Ok(Opened {
            fh,
            keep_cache: immutable,
            direct_io: !immutable,
        })
    }

    /// Open a result file: its download starts (or its cached copy is
    /// used), and reads wait only for the bytes they need.
    async fn open_result(&self, node: &Node, f: FileRef) -> Result<Opened, FsError> {
        let size = self.attr_of(node).await?.0.size;
        // Immutable files keep the page cache; only a FINISHED run's
        // are kept for later mounts (a report run in a status we do not
        // know may be final and still change).
        let (immutable, finished) = match node {
            Node::CrawlrunData(id, _) => {
                let (run, exp) = self.crawlrun(id).await?;
                (exp == Expiry::Never, run_has_files(&run))
            }
            Node::ReportRunData(id, _) => {
                let (rr, exp) = self.reportrun(id).await?;
                let done = rr
                    .status
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("FINISHED"));
                (exp == Expiry::Never, exp == Expiry::Never && done)
            }
            _ => (false, false),
        };
        let h = self.data.open(&f, size, finished).await?;
        let fh = self.new_handle(Handle::Data(Arc::new(h)));
        Ok(Opened {
            fh,
            keep_cache: immutable,
            direct_io: false,
        })
    }

    /// Read `size` bytes at `offset`, waiting for a result file's bytes to
    /// arrive. The copy runs on the caller's thread: the adapter uses
    /// [`Fs::read_now`] and [`Fs::wait_readable`] to keep it off the
    /// runtime.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<FileBytes, FsError> {
        loop {
            if let Some(r) = self.read_now(fh, offset, size) {
                return r;
            }
            self.wait_readable(fh, offset, size).await?;
        }
    }

    /// The answer to a read if it needs no waiting: every open but a result
    /// file whose bytes at `offset` are still downloading.
    pub fn read_now(&self, fh: u64, offset: u64, size: u32) -> Option<Result<FileBytes, FsError>> {
        let h = match lock(&self.handles).get(&fh) {
            Some(Handle::Bytes(b)) => return Some(Ok(slice_at(b, offset, size).into())),
            Some(Handle::Data(h)) => h.clone(),
            Some(Handle::Scratch(id)) => {
                return Some(Ok(lock(&self.scratch).read(*id, offset, size).into()))
            }
            Some(Handle::Writer(w)) => return Some(Ok(w.read(offset, size).into())),
            Some(Handle::Events) => {
                return Some(Ok(self.events.read(offset, size as usize).into()))
            }
            _ => return Some(Err(FsError::new(libc::EBADF))),
        };
        let r = h.read_now(offset, size)?;
        Some(r.inspect_err(|_| self.read_failed(h.file())))
    }

    /// Wait until [`Fs::read_now`] of the same range has an answer.
    pub async fn wait_readable(&self, fh: u64, offset: u64, size: u32) -> Result<(), FsError> {
        let handle = lock(&self.handles).get(&fh).cloned();
        match handle {
            Some(Handle::Data(h)) => h
                .wait_readable(offset, size)
                .await
                .inspect_err(|_| self.read_failed(h.file())),
            _ => Ok(()),
        }
    }

    /// A result file failed a read: the size we had may be the server's
    /// mistake (a HEAD the download contradicts); the next open asks again.
    fn read_failed(&self, cf: &CachedFile) {
        self.caches.sizes.remove(&cf.fref);
    }

    /// How many inodes the mount has handed out (statfs' file count).
    pub fn inode_count(&self) -> u64 {
        self.inodes.len() as u64
    }

    /// The result cache's bound and the bytes in it, which is what `df`
    /// shows of the mount: the account itself has no size or free space.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.data.usage()
    }

    /// Every counter of the mount, read now: what `.importfs/stats` and
    /// the metrics endpoint show. Reads atomics and two short locks; never
    /// waits on the API.
    pub fn snapshot(&self) -> MountStats {
        let c = &self.counters;
        let d = &self.data.stats;
        let ((limit, used), (mem_limit, mem_used)) = (self.data.usage(), self.data.memory_usage());
        MountStats {
            metadata_cache_hits: c.meta_hits.load(Ordering::Relaxed),
            metadata_cache_misses: c.meta_misses.load(Ordering::Relaxed),
            stale_answers: c.stale_answers.load(Ordering::Relaxed),
            polls: c.polls.load(Ordering::Relaxed),
            events_logged: self.events.counts().0,
            events_kept_bytes: self.events.counts().1,
            pid: u64::from(std::process::id()),
            data_cache_hits: d.hits.load(Ordering::Relaxed),
            data_cache_hits_earlier_mounts: d.earlier_hits.load(Ordering::Relaxed),
            data_cache_corrupt: d.corrupt.load(Ordering::Relaxed),
            data_cache_checksum_reads: d.checksum_reads.load(Ordering::Relaxed),
            data_cache_misses: d.misses.load(Ordering::Relaxed),
            data_cache_evictions: d.evictions.load(Ordering::Relaxed),
            bytes_fetched: d.bytes_cached.load(Ordering::Relaxed),
            downloads_in_flight: d.in_flight.load(Ordering::Relaxed),
            passthrough_opens: d.passthrough_opens.load(Ordering::Relaxed),
            keep_cache_opens: d.keep_cache_opens.load(Ordering::Relaxed),
            inodes: self.inodes.len() as u64,
            data_cache_bytes: used,
            data_cache_limit_bytes: limit,
            data_memory_files: d.memory_files.load(Ordering::Relaxed),
            data_memory_bytes: mem_used,
            data_memory_limit_bytes: mem_limit,
            data_cache_disk_full: d.disk_full.load(Ordering::Relaxed),
            api: self.client.stats(),
            fuse: self.fuse.snapshot(),
        }
    }

    /// `.importfs/stats`: one `name value` pair a line.
    pub fn render_stats(&self) -> String {
        self.snapshot().to_text()
    }

    /// The API's health as this mount has seen it, for `/healthz`: `Err`
    /// with the reason when the key was refused, or when calls have been
    /// failing for good (past their deadline and retries) since a moment
    /// with no success after it. Reads state only; asks nothing.
    pub fn health(&self) -> Result<(), String> {
        if self.client.key_refused() {
            return Err(
                "the API key was refused (HTTP 401): set a valid key and mount again".into(),
            );
        }
        if let Some(since) = self.outage.failing_since() {
            return Err(format!(
                "the API has been failing for {} s: calls end in errors after their deadline ({} s) and retries",
                since.elapsed().as_secs(),
                self.client.config().call_deadline.as_secs()
            ));
        }
        Ok(())
    }

    /// The API client (its config and counters).
    pub fn client(&self) -> &Client {
        &self.client
    }
}
