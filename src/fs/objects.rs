//! The account's objects, fetched through the metadata caches.
//!
//! Every object the tree shows (the user, extractors, runs, reports, report
//! runs, result sizes) is asked for here, and only here, through
//! [`Fs::cached`]. What is subtle:
//! - Concurrent askers of one key share one fetch (`KeyLocks`), and a caller
//!   that queued behind a fetch that failed shares its failure instead of
//!   waiting out another deadline.
//! - A listing fills the per-object caches, so `ls -l` of 10,000 runs costs
//!   the list pages and nothing per run.
//! - When the API fails with a transient error (EIO), a stale answer is given
//!   rather than an error, and for one metadata TTL (`outage.rs`) stale
//!   answers are given without asking: a dead API must not make `ls` of
//!   known things fail, nor cost one deadline per syscall.
//! - A 404 is remembered as "missing" for one TTL, except for a run this
//!   mount started: the service may not know it yet, so its 404 means "not
//!   yet" (see `Client::started_here`).
//! - Finished runs and final report runs never expire: they cannot change.

use crate::api::models::{
    Crawlrun, Extractor, Inputs, Report, ReportRun, RunState, Subscription, User,
};
use crate::api::FileRef;
use crate::fs::cache::{lock, Expiry, FetchKey, List, TtlCache};
use crate::fs::core::Fs;
use crate::fs::inodes::Node;
use crate::fs::runs::{arc, report_run_is_final};
use crate::fs::FsError;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The longest a GETATTR of `extractors/` or `reports/` waits for their
/// listing to be looked at again ([`Fs::relist`]).
const RELIST_WITHIN: Duration = Duration::from_secs(1);

impl Fs {
    /// The cached value, or fetch it once (merging concurrent callers). On a
    /// transient failure a stale value is served if there is one.
    pub(super) async fn cached<K, V, F, Fut>(
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
        if let Some(known) = self.known(cache, &key, &fetch_key) {
            return known;
        }
        if self.outage.ongoing() {
            if let Some(stale) = self.stale(cache, &key) {
                return Ok(stale);
            }
        }
        let asked = std::time::Instant::now();
        let lock = self.fetches.get(&fetch_key);
        let _guard = lock.lock().await;
        if let Some(known) = self.known(cache, &key, &fetch_key) {
            return known;
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
                        tracing::warn!(error = %e, "API unavailable, serving a cached answer");
                        Ok(stale)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A listing fetched again: when it differs from the one before, the
    /// directories (and `latest` links) that show it have changed, and
    /// their mtime says so (`changes.rs`).
    fn relisted<K: Hash + Eq>(
        &self,
        cache: &TtlCache<K, List>,
        key: &K,
        new: &List,
        shown: &[Node],
    ) {
        if cache.get_stale(key).is_some_and(|old| old != *new) {
            let inos: Vec<_> = shown
                .iter()
                .map(|n| self.inodes.existing(n).unwrap_or(0))
                .collect();
            self.changes.note(&inos);
        }
    }

    /// A top-level listing looked at again once its TTL is over, for its
    /// directory's attributes: an NFS client relists `extractors/` only
    /// when its mtime moves, which only a fresh listing can tell. Only a
    /// listing someone has read is looked at again, never during an outage,
    /// and for at most [`RELIST_WITHIN`]: a GETATTR must not wait on a slow
    /// API (a failed or late listing is no news; the next GETATTR asks
    /// again).
    pub(super) async fn relist(&self, node: &Node) {
        if self.outage.ongoing() {
            return;
        }
        let fetch = async {
            match node {
                Node::Extractors if self.caches.extractor_list.get_stale(&()).is_some() => {
                    let _ = self.extractor_list().await;
                }
                Node::Reports if self.caches.report_list.get_stale(&()).is_some() => {
                    let _ = self.report_list().await;
                }
                _ => {}
            }
        };
        let _ = tokio::time::timeout(RELIST_WITHIN, fetch).await;
    }

    /// The answer the caches already have: the value, or that it is missing.
    fn known<K: Hash + Eq, V: Clone>(
        &self,
        cache: &TtlCache<K, V>,
        key: &K,
        fetch_key: &FetchKey,
    ) -> Option<Result<(V, Expiry), FsError>> {
        if let Some(hit) = cache.get(key) {
            self.counters.meta_hits.fetch_add(1, Ordering::Relaxed);
            return Some(Ok(hit));
        }
        self.caches
            .missing
            .get(fetch_key)
            .map(|_| Err(FsError::new(libc::ENOENT)))
    }

    /// An expired answer, handed out while the API fails; the kernel is told
    /// not to keep it.
    pub(super) fn stale<K: Hash + Eq, V: Clone>(
        &self,
        cache: &TtlCache<K, V>,
        key: &K,
    ) -> Option<(V, Expiry)> {
        let v = cache.get_stale(key)?;
        self.counters.stale_answers.fetch_add(1, Ordering::Relaxed);
        Some((v, Expiry::At(std::time::Instant::now())))
    }

    // ---- objects -------------------------------------------------------

    pub(super) async fn user(&self) -> Result<(Arc<User>, Expiry), FsError> {
        self.cached(&self.caches.user, (), FetchKey::User, || async {
            Ok((Arc::new(self.client.current_user().await?), self.ttl()))
        })
        .await
    }

    pub(super) async fn subscription(&self) -> Result<(Arc<Subscription>, Expiry), FsError> {
        self.cached(
            &self.caches.subscription,
            (),
            FetchKey::Subscription,
            || async { Ok((Arc::new(self.client.subscription().await?), self.ttl())) },
        )
        .await
    }

    /// All extractors (names assigned), filling the per-extractor cache.
    pub(super) async fn extractor_list(&self) -> Result<(List, Expiry), FsError> {
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
                let ids = Arc::new(ids);
                self.relisted(&self.caches.extractor_list, &(), &ids, &[Node::Extractors]);
                Ok((ids, exp))
            },
        )
        .await
    }

    pub(super) async fn extractor(
        &self,
        id: &Arc<str>,
    ) -> Result<(Arc<Extractor>, Expiry), FsError> {
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

    pub(super) fn run_expiry(&self, run: &Crawlrun) -> Expiry {
        if run.run_state().is_some_and(RunState::is_final) {
            Expiry::Never
        } else {
            self.ttl()
        }
    }

    pub(super) fn cache_runs(&self, runs: Vec<Crawlrun>, exp: Expiry) -> Vec<Arc<str>> {
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

    pub(super) async fn crawlrun_list(&self) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.crawlrun_list,
            (),
            FetchKey::Crawlruns,
            || async {
                let runs = self.client.list_crawlruns(None).await?;
                let exp = self.ttl();
                let ids = Arc::new(self.cache_runs(runs, exp));
                self.relisted(&self.caches.crawlrun_list, &(), &ids, &[Node::Crawlruns]);
                Ok((ids, exp))
            },
        )
        .await
    }

    pub(super) async fn runs_of(&self, ext: &Arc<str>) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.runs_of,
            ext.clone(),
            FetchKey::RunsOf(ext.clone()),
            || async {
                // Filtered to this extractor's runs by the client.
                let runs = self.client.list_extractor_crawlruns(ext).await?;
                let exp = self.ttl();
                let ids = Arc::new(self.cache_runs(runs, exp));
                let shown = [
                    Node::ExtractorRuns(ext.clone()),
                    Node::ExtractorLatest(ext.clone()),
                ];
                self.relisted(&self.caches.runs_of, ext, &ids, &shown);
                Ok((ids, exp))
            },
        )
        .await
    }

    pub(super) async fn crawlrun(&self, id: &Arc<str>) -> Result<(Arc<Crawlrun>, Expiry), FsError> {
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

    pub(super) async fn report_list(&self) -> Result<(List, Expiry), FsError> {
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
            let ids = Arc::new(ids);
            self.relisted(&self.caches.report_list, &(), &ids, &[Node::Reports]);
            Ok((ids, exp))
        })
        .await
    }

    pub(super) async fn report(&self, id: &Arc<str>) -> Result<(Arc<Report>, Expiry), FsError> {
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

    pub(super) fn cache_report_runs(&self, runs: Vec<ReportRun>, exp: Expiry) -> Vec<Arc<str>> {
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

    pub(super) async fn reportrun_list(&self) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.reportrun_list,
            (),
            FetchKey::ReportRuns,
            || async {
                let runs = self.client.list_report_runs().await?;
                let exp = self.ttl();
                let ids = Arc::new(self.cache_report_runs(runs, exp));
                let top = [Node::ReportRunsTop];
                self.relisted(&self.caches.reportrun_list, &(), &ids, &top);
                Ok((ids, exp))
            },
        )
        .await
    }

    pub(super) async fn runs_of_report(&self, rep: &Arc<str>) -> Result<(List, Expiry), FsError> {
        self.cached(
            &self.caches.runs_of_report,
            rep.clone(),
            FetchKey::RunsOfReport(rep.clone()),
            || async {
                let runs = self.client.list_report_runs_for_report(rep).await?;
                let exp = self.ttl();
                let ids = Arc::new(self.cache_report_runs(runs, exp));
                let shown = [
                    Node::ReportRuns(rep.clone()),
                    Node::ReportLatest(rep.clone()),
                ];
                self.relisted(&self.caches.runs_of_report, rep, &ids, &shown);
                Ok((ids, exp))
            },
        )
        .await
    }

    pub(super) async fn reportrun(
        &self,
        id: &Arc<str>,
    ) -> Result<(Arc<ReportRun>, Expiry), FsError> {
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
    pub(super) async fn file_size(&self, f: &FileRef, immutable: bool) -> Result<u64, FsError> {
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
    pub(super) async fn data_attr(
        &self,
        f: &FileRef,
        run_expiry: Expiry,
    ) -> Result<(u64, Expiry), FsError> {
        let immutable = run_expiry == Expiry::Never;
        let size = self.file_size(f, immutable).await?;
        if self.data.complete_size(f).is_some() {
            return Ok((size, run_expiry));
        }
        let short = Expiry::after(self.cfg.kernel_ttl);
        Ok((size, if immutable { short } else { run_expiry }))
    }

    /// The newest of a list of runs (by start, else creation time).
    pub(super) fn newest_run(&self, ids: &[Arc<str>]) -> Option<Arc<str>> {
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

    pub(super) fn newest_report_run(&self, ids: &[Arc<str>]) -> Option<Arc<str>> {
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
}
