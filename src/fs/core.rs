//! The filesystem as plain async operations, with no fuser types.
//!
//! `fuse.rs` turns each kernel request into one call here and the result into
//! a reply. Everything that may touch the network is `async` and runs on the
//! tokio runtime, never on a FUSE thread.
//!
//! What is subtle:
//! - Sizes are exact before the first read. Generated files (JSON, `inputs`,
//!   `state`, `stats`) are rendered from the same cached object for `getattr`
//!   and for `open`, and are opened with direct I/O so a change of content
//!   between the two can never be cut at a stale size. Result files take their
//!   size from a HEAD (or the finished download) and are opened with
//!   `keep_cache`: a finished run's files cannot change.
//! - A listing fills the per-object caches, so `ls -l` of 10,000 runs costs the
//!   list pages and nothing per run; a lookup of an id that is not cached asks
//!   for that one object and never lists.
//! - When the API fails with a transient error, a stale cached answer is given
//!   rather than an error: a dead API must not make `ls` of known things fail.
//! - A run this mount started may be unknown to the service for a moment
//!   (404). The client waits that out and lists such runs itself (see
//!   `api/client.rs`); here its 404 is never cached as "does not exist", so
//!   `touch start; cat latest/state` and `ls crawlruns/<new id>` work at once.

use crate::api::models::{
    Crawlrun, CrawlrunFile, Extractor, Inputs, Report, ReportRun, ReportRunFile, RunState,
    Subscription, User,
};
use crate::api::{Client, FileRef};
use crate::fs::cache::{lock, Expiry, KeyLocks, TtlCache};
use crate::fs::counters::MountStats;
use crate::fs::data::{CachedFile, DataCache, FetchPlan, FileBytes};
use crate::fs::inodes::{Control, Ino, InodeTable, Kind, Node};
use crate::fs::names::NameTable;
use crate::fs::FsError;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::hash::Hash;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Settings of one mount. Defaults are what `importfs mount` uses.
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
    /// Where result files are kept (a private subdirectory is made per mount).
    pub cache_dir: PathBuf,
    /// Bound of the result cache in bytes.
    pub cache_size: u64,
    /// How result files are fetched: chunk size and parallel ranged GETs.
    pub fetch: FetchPlan,
    pub read_only: bool,
    pub allow_delete: bool,
    pub uid: u32,
    pub gid: u32,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            metadata_ttl: Duration::from_secs(5),
            kernel_ttl: Duration::from_secs(1),
            immutable_ttl: Duration::from_secs(3600),
            cache_dir: std::env::temp_dir().join("importfs-cache"),
            cache_size: 4 << 30,
            fetch: FetchPlan::default(),
            read_only: false,
            allow_delete: false,
            uid: 0,
            gid: 0,
        }
    }
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
    /// A result file and the size it was opened with.
    Data(Arc<CachedFile>, u64),
    Dir(Arc<Vec<DirEntry>>),
    /// A file opened for writing whose content is sent on close.
    Writer(Arc<crate::fs::write::Writer>),
    /// A scratch file, read and written in place.
    Scratch(u64),
}

/// What a metadata fetch is keyed on, for merging concurrent fetches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FetchKey {
    User,
    Subscription,
    Extractors,
    Extractor(Arc<str>),
    Inputs(Arc<str>),
    Crawlruns,
    RunsOf(Arc<str>),
    Crawlrun(Arc<str>),
    Reports,
    Report(Arc<str>),
    ReportRuns,
    RunsOfReport(Arc<str>),
    ReportRun(Arc<str>),
    Size(FileRef),
}

type List = Arc<Vec<Arc<str>>>;

pub(super) struct Caches {
    user: TtlCache<(), Arc<User>>,
    subscription: TtlCache<(), Arc<Subscription>>,
    extractor_list: TtlCache<(), List>,
    extractors: TtlCache<Arc<str>, Arc<Extractor>>,
    pub(super) inputs: TtlCache<Arc<str>, Arc<Inputs>>,
    crawlrun_list: TtlCache<(), List>,
    runs_of: TtlCache<Arc<str>, List>,
    crawlruns: TtlCache<Arc<str>, Arc<Crawlrun>>,
    report_list: TtlCache<(), List>,
    reports: TtlCache<Arc<str>, Arc<Report>>,
    reportrun_list: TtlCache<(), List>,
    runs_of_report: TtlCache<Arc<str>, List>,
    reportruns: TtlCache<Arc<str>, Arc<ReportRun>>,
    sizes: TtlCache<FileRef, Option<u64>>,
    /// Ids known not to exist, so repeated probes of a missing name cost nothing.
    missing: TtlCache<FetchKey, ()>,
    /// When a fetch of a key last failed for a transient reason (EIO), so
    /// that callers who queued behind that fetch share its outcome instead of
    /// each waiting out another deadline.
    failed: TtlCache<FetchKey, std::time::Instant>,
}

impl Caches {
    fn new() -> Caches {
        // Sized for accounts of tens of thousands of runs; entries are small.
        const OBJECTS: usize = 50_000;
        Caches {
            user: TtlCache::new(1),
            subscription: TtlCache::new(1),
            extractor_list: TtlCache::new(1),
            extractors: TtlCache::new(OBJECTS),
            inputs: TtlCache::new(4096),
            crawlrun_list: TtlCache::new(1),
            runs_of: TtlCache::new(4096),
            crawlruns: TtlCache::new(OBJECTS),
            report_list: TtlCache::new(1),
            reports: TtlCache::new(4096),
            reportrun_list: TtlCache::new(1),
            runs_of_report: TtlCache::new(4096),
            reportruns: TtlCache::new(OBJECTS),
            sizes: TtlCache::new(OBJECTS),
            missing: TtlCache::new(4096),
            failed: TtlCache::new(4096),
        }
    }

    pub(super) fn expire_all(&self) {
        self.user.expire_all();
        self.subscription.expire_all();
        self.extractor_list.expire_all();
        self.extractors.expire_all();
        self.inputs.expire_all();
        self.crawlrun_list.expire_all();
        self.runs_of.expire_all();
        self.crawlruns.expire_all();
        self.report_list.expire_all();
        self.reports.expire_all();
        self.reportrun_list.expire_all();
        self.runs_of_report.expire_all();
        self.reportruns.expire_all();
        self.sizes.expire_all();
        self.missing.clear();
    }
}

#[derive(Default)]
struct Counters {
    meta_hits: AtomicU64,
    meta_misses: AtomicU64,
    stale_answers: AtomicU64,
}

/// Whether the API is failing right now: after a call fails for good with a
/// transient error, stale answers are given at once, without asking, until
/// `until` (one metadata TTL) or the next successful call. With the API down
/// or hung, an `ls` of known things then costs at most one deadline, not one
/// per syscall (a readdir's entries each need their object) or per caller.
///
/// `since` is when the failing began, kept until a call succeeds (not only
/// for one TTL): `/healthz` reports the API failing for as long as nothing
/// has shown otherwise.
#[derive(Default)]
struct Outage {
    until: Mutex<Option<std::time::Instant>>,
    since: Mutex<Option<std::time::Instant>>,
}

impl Outage {
    fn began(&self, ttl: Duration) {
        let now = std::time::Instant::now();
        *lock(&self.until) = now.checked_add(ttl);
        lock(&self.since).get_or_insert(now);
    }

    fn ended(&self) {
        lock(&self.since).take();
        self.ask_again();
    }

    /// Ask the API at the next call again, without claiming it answers.
    fn ask_again(&self) {
        let mut until = lock(&self.until);
        if until.is_some() {
            tracing::info!("API answering again");
            *until = None;
        }
    }

    fn failing_since(&self) -> Option<std::time::Instant> {
        *lock(&self.since)
    }

    fn ongoing(&self) -> bool {
        lock(&self.until).is_some_and(|t| std::time::Instant::now() < t)
    }
}

/// The filesystem of one mount.
pub struct Fs {
    pub cfg: FsConfig,
    pub(super) client: Client,
    pub(super) inodes: InodeTable,
    extractor_names: Mutex<NameTable>,
    report_names: Mutex<NameTable>,
    pub(super) caches: Caches,
    fetches: KeyLocks<FetchKey>,
    data: Arc<DataCache>,
    pub(super) handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    counters: Counters,
    outage: Outage,
    /// FUSE requests and error replies, counted by the adapter.
    pub fuse: crate::fs::counters::FuseCounters,
    pub(super) mounted_at: SystemTime,
    pub(super) scratch: Mutex<crate::fs::write::ScratchStore>,
    pub(super) writers: Mutex<HashMap<Ino, usize>>,
}

fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

/// Does `name` look like an API id? Lookups of other names under `crawlruns/`
/// are answered ENOENT without asking the API (shells and tools probe names
/// like `.git` or `*.so` all the time).
fn looks_like_id(name: &str) -> bool {
    (8..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn pretty<T: serde::Serialize>(v: &T) -> Arc<[u8]> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out.into()
}

/// Result files exist only for finished runs.
fn run_has_files(run: &Crawlrun) -> bool {
    run.run_state() == Some(RunState::Finished)
}

/// Report runs still in progress have no files; any other status has them.
fn report_run_has_files(rr: &ReportRun) -> bool {
    !matches!(
        rr.status.as_deref().map(str::to_ascii_uppercase).as_deref(),
        Some("PENDING" | "STARTED" | "RUNNING" | "IN_PROGRESS" | "QUEUED" | "FAILED" | "CANCELLED")
    )
}

fn report_run_is_final(rr: &ReportRun) -> bool {
    !matches!(
        rr.status.as_deref().map(str::to_ascii_uppercase).as_deref(),
        Some("PENDING" | "STARTED" | "RUNNING" | "IN_PROGRESS" | "QUEUED")
    )
}

impl Fs {
    pub fn new(cfg: FsConfig, client: Client) -> std::io::Result<Fs> {
        let data = Arc::new(DataCache::new(
            &cfg.cache_dir,
            cfg.cache_size,
            cfg.fetch,
            client.clone(),
        )?);
        Ok(Fs {
            cfg,
            client,
            inodes: InodeTable::default(),
            extractor_names: Mutex::new(NameTable::default()),
            report_names: Mutex::new(NameTable::default()),
            caches: Caches::new(),
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
        })
    }

    pub(super) fn ttl(&self) -> Expiry {
        Expiry::after(self.cfg.metadata_ttl)
    }

    /// The cached value, or fetch it once (merging concurrent callers). On a
    /// transient failure a stale value is served if there is one.
    async fn cached<K, V, F, Fut>(
        &self,
        cache: &TtlCache<K, V>,
        key: K,
        fetch_key: FetchKey,
        fetch: F,
    ) -> Result<(V, Expiry), FsError>
    where
        K: Hash + Eq + Clone,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Expiry), FsError>>,
    {
        if let Some(hit) = cache.get(&key) {
            self.counters.meta_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        if self.caches.missing.get(&fetch_key).is_some() {
            return Err(FsError::new(libc::ENOENT));
        }
        if self.outage.ongoing() {
            if let Some(stale) = self.stale(cache, &key) {
                return Ok(stale);
            }
        }
        let asked = std::time::Instant::now();
        let lock = self.fetches.get(&fetch_key);
        let _guard = lock.lock().await;
        if let Some(hit) = cache.get(&key) {
            self.counters.meta_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        if self.caches.missing.get(&fetch_key).is_some() {
            return Err(FsError::new(libc::ENOENT));
        }
        // The fetch we queued behind failed: its answer is ours too.
        if self
            .caches
            .failed
            .get(&fetch_key)
            .is_some_and(|(at, _)| at >= asked)
        {
            return self.stale(cache, &key).ok_or(FsError::new(libc::EIO));
        }
        self.counters.meta_misses.fetch_add(1, Ordering::Relaxed);
        match fetch().await {
            Ok((v, exp)) => {
                self.outage.ended();
                cache.insert(key, v.clone(), exp);
                Ok((v, exp))
            }
            Err(e) if e.errno == libc::ENOENT => {
                self.outage.ended();
                cache.remove(&key);
                // A run this mount started may be unknown to the service
                // for a while: its 404 is "not yet", never remembered.
                let not_yet =
                    matches!(&fetch_key, FetchKey::Crawlrun(id) if self.client.started_here(id));
                if !not_yet {
                    self.caches.missing.insert(fetch_key, (), self.ttl());
                }
                Err(e)
            }
            Err(e) if e.errno == libc::EIO => {
                self.outage.began(self.cfg.metadata_ttl);
                self.caches.failed.insert(
                    fetch_key,
                    std::time::Instant::now(),
                    Expiry::after(Duration::from_secs(600)),
                );
                match self.stale(cache, &key) {
                    Some(stale) => {
                        tracing::warn!("API unavailable, serving a cached answer");
                        Ok(stale)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// An expired answer, handed out while the API fails; the kernel is told
    /// not to keep it.
    fn stale<K: Hash + Eq, V: Clone>(
        &self,
        cache: &TtlCache<K, V>,
        key: &K,
    ) -> Option<(V, Expiry)> {
        let v = cache.get_stale(key)?;
        self.counters.stale_answers.fetch_add(1, Ordering::Relaxed);
        Some((v, Expiry::At(std::time::Instant::now())))
    }

    // ---- objects -------------------------------------------------------

    async fn user(&self) -> Result<(Arc<User>, Expiry), FsError> {
        self.cached(&self.caches.user, (), FetchKey::User, || async {
            Ok((Arc::new(self.client.current_user().await?), self.ttl()))
        })
        .await
    }

    async fn subscription(&self) -> Result<(Arc<Subscription>, Expiry), FsError> {
        self.cached(
            &self.caches.subscription,
            (),
            FetchKey::Subscription,
            || async { Ok((Arc::new(self.client.subscription().await?), self.ttl())) },
        )
        .await
    }

    /// All extractors (names assigned), filling the per-extractor cache.
    async fn extractor_list(&self) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.extractor_list,
            (),
            FetchKey::Extractors,
            || async {
                let all = self.client.list_extractors().await?;
                let exp = self.ttl();
                let live: Vec<Extractor> = all
                    .into_iter()
                    .filter(|e| !e.archived && !e.guid.is_empty())
                    .collect();
                lock(&self.extractor_names)
                    .update(live.iter().map(|e| (e.guid.as_str(), e.name.as_str())));
                let mut ids = Vec::with_capacity(live.len());
                for e in live {
                    let id = arc(&e.guid);
                    self.caches.extractors.insert(id.clone(), Arc::new(e), exp);
                    ids.push(id);
                }
                Ok((Arc::new(ids), exp))
            },
        )
        .await
    }

    async fn extractor(&self, id: &Arc<str>) -> Result<(Arc<Extractor>, Expiry), FsError> {
        self.cached(
            &self.caches.extractors,
            id.clone(),
            FetchKey::Extractor(id.clone()),
            || async {
                let e = self.client.get_extractor(id).await?;
                if e.archived {
                    return Err(FsError::new(libc::ENOENT));
                }
                Ok((Arc::new(e), self.ttl()))
            },
        )
        .await
    }

    pub(super) async fn inputs(&self, id: &Arc<str>) -> Result<(Arc<Inputs>, Expiry), FsError> {
        self.cached(
            &self.caches.inputs,
            id.clone(),
            FetchKey::Inputs(id.clone()),
            || async { Ok((Arc::new(self.client.get_inputs(id).await?), self.ttl())) },
        )
        .await
    }

    fn run_expiry(&self, run: &Crawlrun) -> Expiry {
        if run.run_state().is_some_and(RunState::is_final) {
            Expiry::Never
        } else {
            self.ttl()
        }
    }

    fn cache_runs(&self, runs: Vec<Crawlrun>, exp: Expiry) -> Vec<Arc<str>> {
        let mut ids = Vec::with_capacity(runs.len());
        for r in runs {
            if r.guid.is_empty() {
                continue;
            }
            let id = arc(&r.guid);
            let e = if self.run_expiry(&r) == Expiry::Never {
                Expiry::Never
            } else {
                exp
            };
            self.caches.crawlruns.insert(id.clone(), Arc::new(r), e);
            ids.push(id);
        }
        ids
    }

    async fn crawlrun_list(&self) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.crawlrun_list,
            (),
            FetchKey::Crawlruns,
            || async {
                let runs = self.client.list_crawlruns(None).await?;
                let exp = self.ttl();
                Ok((Arc::new(self.cache_runs(runs, exp)), exp))
            },
        )
        .await
    }

    async fn runs_of(&self, ext: &Arc<str>) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.runs_of,
            ext.clone(),
            FetchKey::RunsOf(ext.clone()),
            || async {
                // Filtered to this extractor's runs by the client.
                let runs = self.client.list_extractor_crawlruns(ext).await?;
                let exp = self.ttl();
                Ok((Arc::new(self.cache_runs(runs, exp)), exp))
            },
        )
        .await
    }

    async fn crawlrun(&self, id: &Arc<str>) -> Result<(Arc<Crawlrun>, Expiry), FsError> {
        self.cached(
            &self.caches.crawlruns,
            id.clone(),
            FetchKey::Crawlrun(id.clone()),
            || async {
                let r = self.client.get_crawlrun(id).await?;
                let exp = self.run_expiry(&r);
                Ok((Arc::new(r), exp))
            },
        )
        .await
    }

    async fn report_list(&self) -> Result<(List, Expiry), FsError> {
        self.cached(&self.caches.report_list, (), FetchKey::Reports, || async {
            let all = self.client.list_reports().await?;
            let exp = self.ttl();
            let live: Vec<Report> = all
                .into_iter()
                .filter(|r| !r.archived && !r.guid.is_empty())
                .collect();
            lock(&self.report_names)
                .update(live.iter().map(|r| (r.guid.as_str(), r.name.as_str())));
            let mut ids = Vec::with_capacity(live.len());
            for r in live {
                let id = arc(&r.guid);
                self.caches.reports.insert(id.clone(), Arc::new(r), exp);
                ids.push(id);
            }
            Ok((Arc::new(ids), exp))
        })
        .await
    }

    async fn report(&self, id: &Arc<str>) -> Result<(Arc<Report>, Expiry), FsError> {
        self.cached(
            &self.caches.reports,
            id.clone(),
            FetchKey::Report(id.clone()),
            || async {
                let r = self.client.get_report(id).await?;
                if r.archived {
                    return Err(FsError::new(libc::ENOENT));
                }
                Ok((Arc::new(r), self.ttl()))
            },
        )
        .await
    }

    fn cache_report_runs(&self, runs: Vec<ReportRun>, exp: Expiry) -> Vec<Arc<str>> {
        let mut ids = Vec::with_capacity(runs.len());
        for r in runs {
            if r.guid.is_empty() {
                continue;
            }
            let id = arc(&r.guid);
            let e = if report_run_is_final(&r) {
                Expiry::Never
            } else {
                exp
            };
            self.caches.reportruns.insert(id.clone(), Arc::new(r), e);
            ids.push(id);
        }
        ids
    }

    async fn reportrun_list(&self) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.reportrun_list,
            (),
            FetchKey::ReportRuns,
            || async {
                let runs = self.client.list_report_runs().await?;
                let exp = self.ttl();
                Ok((Arc::new(self.cache_report_runs(runs, exp)), exp))
            },
        )
        .await
    }

    async fn runs_of_report(&self, rep: &Arc<str>) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.runs_of_report,
            rep.clone(),
            FetchKey::RunsOfReport(rep.clone()),
            || async {
                let runs = self.client.list_report_runs_for_report(rep).await?;
                let exp = self.ttl();
                Ok((Arc::new(self.cache_report_runs(runs, exp)), exp))
            },
        )
        .await
    }

    async fn reportrun(&self, id: &Arc<str>) -> Result<(Arc<ReportRun>, Expiry), FsError> {
        self.cached(
            &self.caches.reportruns,
            id.clone(),
            FetchKey::ReportRun(id.clone()),
            || async {
                let r = self.client.get_report_run(id).await?;
                let exp = if report_run_is_final(&r) {
                    Expiry::Never
                } else {
                    self.ttl()
                };
                Ok((Arc::new(r), exp))
            },
        )
        .await
    }

    /// The exact size of a result file: from the cache if downloaded, else a
    /// HEAD, else (a server that gives no length) by downloading it.
    async fn file_size(&self, f: &FileRef, immutable: bool) -> Result<u64, FsError> {
        if let Some(size) = self.data.complete_size(f) {
            return Ok(size);
        }
        if immutable {
            if let Some(size) = self.data.stored_size(f) {
                return Ok(size);
            }
        }
        let (size, _) = self
            .cached(
                &self.caches.sizes,
                f.clone(),
                FetchKey::Size(f.clone()),
                || async {
                    let size = self.client.file_size(f).await?;
                    Ok((size, if immutable { Expiry::Never } else { self.ttl() }))
                },
            )
            .await?;
        match size {
            Some(s) => Ok(s),
            None => self.data.get(f, None, immutable).await?.size().await,
        }
    }

    /// Size and expiry of a result file. Until the file is in the cache its
    /// size is only what a HEAD said, so the kernel keeps it for a short TTL
    /// only: a server whose download disagrees with its HEAD shows the true
    /// size at the next stat instead of an hour later.
    async fn data_attr(&self, f: &FileRef, run_expiry: Expiry) -> Result<(u64, Expiry), FsError> {
        let immutable = run_expiry == Expiry::Never;
        let size = self.file_size(f, immutable).await?;
        if self.data.complete_size(f).is_some() {
            return Ok((size, run_expiry));
        }
        let short = Expiry::after(self.cfg.kernel_ttl);
        Ok((size, if immutable { short } else { run_expiry }))
    }

    /// The newest of a list of runs (by start, else creation time).
    fn newest_run(&self, ids: &[Arc<str>]) -> Option<Arc<str>> {
        ids.iter()
            .filter_map(|id| {
                let run = self.caches.crawlruns.get_stale(id)?;
                let t = run
                    .started_at
                    .as_ref()
                    .and_then(|s| s.to_system_time())
                    .or_else(|| run.meta.created())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Some((t, id.clone()))
            })
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .map(|(_, id)| id)
    }

    fn newest_report_run(&self, ids: &[Arc<str>]) -> Option<Arc<str>> {
        ids.iter()
            .filter_map(|id| {
                let run = self.caches.reportruns.get_stale(id)?;
                Some((
                    run.meta.created().unwrap_or(SystemTime::UNIX_EPOCH),
                    id.clone(),
                ))
            })
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .map(|(_, id)| id)
    }

    // ---- the tree --------------------------------------------------------

    /// Which extractor a name in `extractors/` means: a listed name, or a guid.
    async fn resolve_extractor(&self, name: &str) -> Result<Arc<str>, FsError> {
        if let Some(g) = lock(&self.extractor_names).guid_of(name) {
            if self.caches.extractor_list.get(&()).is_some() {
                return Ok(arc(g));
            }
        }
        let (list, _) = self.extractor_list().await?;
        if let Some(g) = lock(&self.extractor_names).guid_of(name) {
            return Ok(arc(g));
        }
        if looks_like_id(name) {
            if let Some(id) = list.iter().find(|id| &***id == name) {
                return Ok(id.clone());
            }
            let id = arc(name);
            self.extractor(&id).await?;
            return Ok(id);
        }
        Err(FsError::new(libc::ENOENT))
    }

    async fn resolve_report(&self, name: &str) -> Result<Arc<str>, FsError> {
        if let Some(g) = lock(&self.report_names).guid_of(name) {
            if self.caches.report_list.get(&()).is_some() {
                return Ok(arc(g));
            }
        }
        let (list, _) = self.report_list().await?;
        if let Some(g) = lock(&self.report_names).guid_of(name) {
            return Ok(arc(g));
        }
        if looks_like_id(name) {
            if let Some(id) = list.iter().find(|id| &***id == name) {
                return Ok(id.clone());
            }
            let id = arc(name);
            self.report(&id).await?;
            return Ok(id);
        }
        Err(FsError::new(libc::ENOENT))
    }

    /// The child `name` of directory `parent`, as a node.
    pub(super) async fn child(&self, parent: &Node, name: &str) -> Result<Node, FsError> {
        let enoent = || Err(FsError::new(libc::ENOENT));
        let node = match parent {
            Node::Root => match name {
                "user.json" => Node::UserJson,
                "subscription.json" => Node::SubscriptionJson,
                "extractors" => Node::Extractors,
                "crawlruns" => Node::Crawlruns,
                "reports" => Node::Reports,
                "reportruns" => Node::ReportRunsTop,
                ".importfs" => Node::Meta,
                _ => return enoent(),
            },
            Node::Meta => match name {
                "stats" => Node::Stats,
                "refresh" => Node::Refresh,
                _ => return enoent(),
            },
            Node::Extractors => Node::Extractor(self.resolve_extractor(name).await?),
            Node::Extractor(g) => match name {
                "extractor.json" => Node::ExtractorJson(g.clone()),
                "inputs" => Node::Inputs(g.clone()),
                "start" => Node::Control(g.clone(), Control::Start),
                "stop" => Node::Control(g.clone(), Control::Stop),
                "duplicate" => Node::Control(g.clone(), Control::Duplicate),
                "credentials" => Node::Credentials(g.clone()),
                "crawlruns" => Node::ExtractorRuns(g.clone()),
                "latest" => {
                    let (ids, _) = self.runs_of(g).await?;
                    if self.newest_run(&ids).is_none() {
                        return enoent();
                    }
                    Node::ExtractorLatest(g.clone())
                }
                _ => match self.scratch_child(g, name.as_bytes()) {
                    Some(n) => n,
                    None => return enoent(),
                },
            },
            Node::ExtractorRuns(g) => {
                let (ids, _) = self.runs_of(g).await?;
                match ids.iter().find(|id| &***id == name) {
                    Some(id) => Node::ExtractorRunLink(g.clone(), id.clone()),
                    None => return enoent(),
                }
            }
            Node::Crawlruns => {
                if !looks_like_id(name) {
                    return enoent();
                }
                let id = arc(name);
                self.crawlrun(&id).await?;
                Node::Crawlrun(id)
            }
            Node::Crawlrun(id) => match name {
                "crawlrun.json" => Node::CrawlrunJson(id.clone()),
                "state" => Node::CrawlrunState(id.clone()),
                _ => {
                    let Some(f) = CrawlrunFile::ALL
                        .into_iter()
                        .find(|f| f.file_name() == name)
                    else {
                        return enoent();
                    };
                    let (run, _) = self.crawlrun(id).await?;
                    if !run_has_files(&run) {
                        return enoent();
                    }
                    Node::CrawlrunData(id.clone(), f)
                }
            },
            Node::Reports => Node::Report(self.resolve_report(name).await?),
            Node::Report(g) => match name {
                "report.json" => Node::ReportJson(g.clone()),
                "start" => Node::ReportStart(g.clone()),
                "reportruns" => Node::ReportRuns(g.clone()),
                "latest" => {
                    let (ids, _) = self.runs_of_report(g).await?;
                    if self.newest_report_run(&ids).is_none() {
                        return enoent();
                    }
                    Node::ReportLatest(g.clone())
                }
                _ => return enoent(),
            },
            Node::ReportRuns(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                match ids.iter().find(|id| &***id == name) {
                    Some(id) => Node::ReportRunLink(g.clone(), id.clone()),
                    None => return enoent(),
                }
            }
            Node::ReportRunsTop => {
                if !looks_like_id(name) {
                    return enoent();
                }
                let id = arc(name);
                self.reportrun(&id).await?;
                Node::ReportRun(id)
            }
            Node::ReportRun(id) => match name {
                "reportrun.json" => Node::ReportRunJson(id.clone()),
                _ => {
                    let Some(f) = ReportRunFile::ALL
                        .into_iter()
                        .find(|f| f.file_name() == name)
                    else {
                        return enoent();
                    };
                    let (rr, _) = self.reportrun(id).await?;
                    if !report_run_has_files(&rr)
                        || (f == ReportRunFile::Json && !rr.is_change_report())
                    {
                        return enoent();
                    }
                    Node::ReportRunData(id.clone(), f)
                }
            },
            _ => return Err(FsError::new(libc::ENOTDIR)),
        };
        Ok(node)
    }

    /// The parent of a directory node (for `..`).
    fn parent_of(&self, node: &Node) -> Node {
        match node {
            Node::Extractor(_) => Node::Extractors,
            Node::ExtractorRuns(g) => Node::Extractor(g.clone()),
            Node::Crawlrun(_) => Node::Crawlruns,
            Node::Report(_) => Node::Reports,
            Node::ReportRuns(g) => Node::Report(g.clone()),
            Node::ReportRun(_) => Node::ReportRunsTop,
            _ => Node::Root,
        }
    }

    /// The contents of a generated file, and how long they stay true.
    async fn content(&self, node: &Node) -> Result<(Arc<[u8]>, Expiry), FsError> {
        Ok(match node {
            Node::UserJson => {
                let (u, e) = self.user().await?;
                (pretty(&*u), e)
            }
            Node::SubscriptionJson => {
                let (s, e) = self.subscription().await?;
                (pretty(&*s), e)
            }
            Node::ExtractorJson(g) => {
                let (x, e) = self.extractor(g).await?;
                (pretty(&*x), e)
            }
            Node::Inputs(g) => {
                let (i, e) = self.inputs(g).await?;
                (i.to_file_text().into_bytes().into(), e)
            }
            Node::CrawlrunJson(id) => {
                let (r, e) = self.crawlrun(id).await?;
                (pretty(&*r), e)
            }
            Node::CrawlrunState(id) => {
                let (r, e) = self.crawlrun(id).await?;
                let state = if r.state.is_empty() {
                    "UNKNOWN"
                } else {
                    r.state.as_str()
                };
                (format!("{state}\n").into_bytes().into(), e)
            }
            Node::ReportJson(g) => {
                let (r, e) = self.report(g).await?;
                (pretty(&*r), e)
            }
            Node::ReportRunJson(id) => {
                let (r, e) = self.reportrun(id).await?;
                (pretty(&*r), e)
            }
            Node::Stats => (
                self.render_stats().into_bytes().into(),
                Expiry::At(std::time::Instant::now()),
            ),
            Node::Control(..) | Node::Credentials(_) | Node::ReportStart(_) | Node::Refresh => {
                (Arc::from(&b""[..]), Expiry::Never)
            }
            _ => return Err(FsError::new(libc::EINVAL)),
        })
    }

    /// The target of a symlink node.
    async fn link_target(&self, node: &Node) -> Result<(String, Expiry), FsError> {
        Ok(match node {
            Node::ExtractorRunLink(_, r) => (format!("../../../crawlruns/{r}"), Expiry::Never),
            Node::ReportRunLink(_, r) => (format!("../../../reportruns/{r}"), Expiry::Never),
            Node::ExtractorLatest(g) => {
                let (ids, e) = self.runs_of(g).await?;
                let id = self.newest_run(&ids).ok_or(FsError::new(libc::ENOENT))?;
                (format!("../../crawlruns/{id}"), e)
            }
            Node::ReportLatest(g) => {
                let (ids, e) = self.runs_of_report(g).await?;
                let id = self
                    .newest_report_run(&ids)
                    .ok_or(FsError::new(libc::ENOENT))?;
                (format!("../../reportruns/{id}"), e)
            }
            _ => return Err(FsError::new(libc::EINVAL)),
        })
    }

    fn file_ref(node: &Node) -> Option<FileRef> {
        match node {
            Node::CrawlrunData(id, f) => Some(FileRef::Crawlrun(id.to_string(), *f)),
            Node::ReportRunData(id, f) => Some(FileRef::ReportRun(id.to_string(), *f)),
            _ => None,
        }
    }

    /// Attributes of a node and how long they may be trusted.
    pub(super) async fn attr_of(&self, node: &Node) -> Result<(Attr, Expiry), FsError> {
        let ino = self.inodes.ino(node);
        let mut mtime = self.mounted_at;
        let (size, exp) = match node {
            Node::Root
            | Node::Extractors
            | Node::Crawlruns
            | Node::Reports
            | Node::ReportRunsTop
            | Node::Meta => (0, Expiry::Never),
            Node::Extractor(g) | Node::ExtractorRuns(g) => {
                let (x, e) = self.extractor(g).await?;
                mtime = x.meta.modified().unwrap_or(mtime);
                (0, e)
            }
            Node::Crawlrun(id) | Node::CrawlrunData(id, _) => {
                let (r, e) = self.crawlrun(id).await?;
                mtime = r.mtime().unwrap_or(mtime);
                match Self::file_ref(node) {
                    Some(f) => self.data_attr(&f, e).await?,
                    None => (0, e),
                }
            }
            Node::Report(g) | Node::ReportRuns(g) => {
                let (r, e) = self.report(g).await?;
                mtime = r.meta.modified().unwrap_or(mtime);
                (0, e)
            }
            Node::ReportRun(id) | Node::ReportRunData(id, _) => {
                let (r, e) = self.reportrun(id).await?;
                mtime = r.meta.modified().unwrap_or(mtime);
                match Self::file_ref(node) {
                    Some(f) => self.data_attr(&f, e).await?,
                    None => (0, e),
                }
            }
            Node::ExtractorRunLink(..)
            | Node::ExtractorLatest(_)
            | Node::ReportRunLink(..)
            | Node::ReportLatest(_) => {
                let (t, e) = self.link_target(node).await?;
                (t.len() as u64, e)
            }
            Node::Scratch(id) => {
                let (size, perm, t) = self.scratch_attr(*id).ok_or(FsError::new(libc::ENOENT))?;
                let attr = Attr {
                    ino,
                    kind: Kind::File,
                    size,
                    perm,
                    mtime: t,
                    uid: self.cfg.uid,
                    gid: self.cfg.gid,
                };
                return Ok((attr, Expiry::At(std::time::Instant::now())));
            }
            _ => {
                let (bytes, e) = self.content(node).await?;
                mtime = self.content_mtime(node).unwrap_or(mtime);
                (bytes.len() as u64, e)
            }
        };
        Ok((
            Attr {
                ino,
                kind: node.kind(),
                size,
                perm: node.perm(),
                mtime,
                uid: self.cfg.uid,
                gid: self.cfg.gid,
            },
            exp,
        ))
    }

    /// The mtime of a generated file: its object's.
    fn content_mtime(&self, node: &Node) -> Option<SystemTime> {
        match node {
            Node::ExtractorJson(g)
            | Node::Inputs(g)
            | Node::Control(g, _)
            | Node::Credentials(g) => self
                .caches
                .extractors
                .get_stale(g)
                .and_then(|x| x.meta.modified()),
            Node::CrawlrunJson(id) | Node::CrawlrunState(id) => {
                self.caches.crawlruns.get_stale(id).and_then(|r| r.mtime())
            }
            Node::ReportJson(g) | Node::ReportStart(g) => self
                .caches
                .reports
                .get_stale(g)
                .and_then(|r| r.meta.modified()),
            Node::ReportRunJson(id) => self
                .caches
                .reportruns
                .get_stale(id)
                .and_then(|r| r.meta.modified()),
            Node::UserJson => self
                .caches
                .user
                .get_stale(&())
                .and_then(|u| u.meta.modified()),
            Node::Stats => Some(SystemTime::now()),
            _ => None,
        }
    }

    pub(super) fn entry(&self, attr: Attr, exp: Expiry) -> Entry {
        let cap = if exp == Expiry::Never {
            self.cfg.immutable_ttl
        } else {
            self.cfg.kernel_ttl
        };
        Entry {
            attr,
            ttl: exp.remaining(cap),
        }
    }

    pub(super) fn node(&self, ino: Ino) -> Result<Node, FsError> {
        self.inodes.node(ino).ok_or(FsError::new(libc::ENOENT))
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
                Node::Extractor(g) => self
                    .scratch_child(g, name.as_bytes())
                    .ok_or_else(|| FsError::new(libc::ENOENT))?,
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

    /// List a directory (complete; the adapter pages through it by offset).
    async fn list(&self, node: &Node) -> Result<Vec<DirEntry>, FsError> {
        let mut out = vec![
            DirEntry {
                ino: self.inodes.ino(node),
                kind: Kind::Dir,
                name: ".".into(),
            },
            DirEntry {
                ino: self.inodes.ino(&self.parent_of(node)),
                kind: Kind::Dir,
                name: "..".into(),
            },
        ];
        let mut scratch = Vec::new();
        let mut push = |n: Node, name: &str| {
            out.push(DirEntry {
                ino: self.inodes.ino(&n),
                kind: n.kind(),
                name: name.into(),
            });
        };
        match node {
            Node::Root => {
                push(Node::UserJson, "user.json");
                push(Node::SubscriptionJson, "subscription.json");
                push(Node::Extractors, "extractors");
                push(Node::Crawlruns, "crawlruns");
                push(Node::Reports, "reports");
                push(Node::ReportRunsTop, "reportruns");
                push(Node::Meta, ".importfs");
            }
            Node::Meta => {
                push(Node::Stats, "stats");
                push(Node::Refresh, "refresh");
            }
            Node::Extractors => {
                let (ids, _) = self.extractor_list().await?;
                let names = lock(&self.extractor_names);
                for id in ids.iter() {
                    if let Some(name) = names.name_of(id) {
                        push(Node::Extractor(id.clone()), name);
                    }
                }
            }
            Node::Extractor(g) => {
                let (ids, _) = self.runs_of(g).await?;
                let has_latest = self.newest_run(&ids).is_some();
                push(Node::ExtractorJson(g.clone()), "extractor.json");
                push(Node::Inputs(g.clone()), "inputs");
                for c in Control::ALL {
                    push(Node::Control(g.clone(), c), c.file_name());
                }
                push(Node::Credentials(g.clone()), "credentials");
                push(Node::ExtractorRuns(g.clone()), "crawlruns");
                if has_latest {
                    push(Node::ExtractorLatest(g.clone()), "latest");
                }
                // Scratch names are the bytes they were created with, UTF-8
                // or not: added after the match, as OsStrings.
                scratch = self.scratch_entries(g);
            }
            Node::ExtractorRuns(g) => {
                let (ids, _) = self.runs_of(g).await?;
                for id in ids.iter() {
                    push(Node::ExtractorRunLink(g.clone(), id.clone()), id);
                }
            }
            Node::Crawlruns => {
                let (ids, _) = self.crawlrun_list().await?;
                for id in ids.iter() {
                    push(Node::Crawlrun(id.clone()), id);
                }
            }
            Node::Crawlrun(id) => {
                let (run, _) = self.crawlrun(id).await?;
                push(Node::CrawlrunJson(id.clone()), "crawlrun.json");
                push(Node::CrawlrunState(id.clone()), "state");
                if run_has_files(&run) {
                    for f in CrawlrunFile::ALL {
                        push(Node::CrawlrunData(id.clone(), f), f.file_name());
                    }
                }
            }
            Node::Reports => {
                let (ids, _) = self.report_list().await?;
                let names = lock(&self.report_names);
                for id in ids.iter() {
                    if let Some(name) = names.name_of(id) {
                        push(Node::Report(id.clone()), name);
                    }
                }
            }
            Node::Report(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                let has_latest = self.newest_report_run(&ids).is_some();
                push(Node::ReportJson(g.clone()), "report.json");
                push(Node::ReportStart(g.clone()), "start");
                push(Node::ReportRuns(g.clone()), "reportruns");
                if has_latest {
                    push(Node::ReportLatest(g.clone()), "latest");
                }
            }
            Node::ReportRuns(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                for id in ids.iter() {
                    push(Node::ReportRunLink(g.clone(), id.clone()), id);
                }
            }
            Node::ReportRunsTop => {
                let (ids, _) = self.reportrun_list().await?;
                for id in ids.iter() {
                    push(Node::ReportRun(id.clone()), id);
                }
            }
            Node::ReportRun(id) => {
                let (rr, _) = self.reportrun(id).await?;
                push(Node::ReportRunJson(id.clone()), "reportrun.json");
                if report_run_has_files(&rr) {
                    for f in ReportRunFile::ALL {
                        if f != ReportRunFile::Json || rr.is_change_report() {
                            push(Node::ReportRunData(id.clone(), f), f.file_name());
                        }
                    }
                }
            }
            _ => return Err(FsError::new(libc::ENOTDIR)),
        }
        for (n, name) in scratch {
            out.push(DirEntry {
                ino: self.inodes.ino(&n),
                kind: n.kind(),
                name: OsString::from_vec(name),
            });
        }
        Ok(out)
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

    /// The complete cache file behind an open result file, for a passthrough
    /// open: the kernel then reads it itself and read() is never called.
    pub fn backing_file(&self, fh: u64) -> Option<Arc<CachedFile>> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::Data(cf, _)) if cf.complete_size().is_some() => Some(cf.clone()),
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

    /// Is this handle an open result file?
    pub fn is_data_handle(&self, fh: u64) -> bool {
        matches!(lock(&self.handles).get(&fh), Some(Handle::Data(..)))
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
            _ => {}
        }
        if let Some(f) = Self::file_ref(&node) {
            let size = self.attr_of(&node).await?.0.size;
            // Immutable files keep the page cache; only a FINISHED run's
            // are kept for later mounts (a report run in a status we do not
            // know may be final and still change).
            let (immutable, finished) = match &node {
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
            let cf = self.data.get(&f, Some(size), finished).await?;
            let fh = self.new_handle(Handle::Data(cf, size));
            return Ok(Opened {
                fh,
                keep_cache: immutable,
                direct_io: false,
            });
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

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<FileBytes, FsError> {
        let handle = match lock(&self.handles).get(&fh) {
            Some(Handle::Bytes(b)) => Ok(b.clone()),
            Some(Handle::Data(cf, size)) => Err((cf.clone(), *size)),
            Some(Handle::Scratch(id)) => return Ok(self.scratch_read(*id, offset, size).into()),
            Some(Handle::Writer(w)) => return Ok(Fs::writer_read(w, offset, size).into()),
            _ => return Err(FsError::new(libc::EBADF)),
        };
        match handle {
            Ok(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                Ok(bytes[start..end].to_vec().into())
            }
            Err((cf, expected)) => {
                let r = cf.read(offset, size, expected).await;
                if r.is_err() {
                    // The size we had may be the server's mistake (a HEAD that
                    // disagrees with the download): ask again next time.
                    self.caches.sizes.remove(&cf.fref);
                }
                r
            }
        }
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
        let (limit, used) = self.data.usage();
        MountStats {
            metadata_cache_hits: c.meta_hits.load(Ordering::Relaxed),
            metadata_cache_misses: c.meta_misses.load(Ordering::Relaxed),
            stale_answers: c.stale_answers.load(Ordering::Relaxed),
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

    /// `.importfs/refresh`: forget every cached listing and object.
    pub fn refresh(&self) {
        self.outage.ask_again();
        self.caches.expire_all();
    }
}
