//! The Import.io client: configuration, the request machinery, the 22
//! operations of the spec (and `listExtractorCrawlruns`, seen in the wild)
//! and pagination.
//!
//! What is subtle here:
//! - **The key goes to the API host only.** reqwest's own redirect following
//!   is off; [`Client::send_following`] follows 3xx itself and adds
//!   `_apikey` only when the target has the API's scheme, host and port,
//!   stripping any `_apikey` a Location carries to another host. A signed
//!   storage URL never sees the key.
//! - **Bodies are decompressed here, not by reqwest.** JSON calls ask for
//!   gzip and are inflated after the raw bytes were checked against
//!   Content-Length; downloads ask for identity so that byte ranges mean
//!   file offsets (see `download.rs`). reqwest's transparent gzip would hide
//!   the Content-Length, and with it truncation.
//! - **Timeouts are ours.** The reqwest client has only a connect timeout;
//!   each JSON attempt is bounded by `attempt_timeout` (headers and body), the
//!   whole call (slot wait, attempts, sleeps) by `call_deadline`.
//! - **Concurrency.** One semaphore of `max_concurrent` slots is shared by
//!   every clone. A slot is held for one attempt, never across a backoff
//!   sleep. Downloads hold a slot for as long as they stream, so they also
//!   take one of `max_concurrent_downloads` first: metadata calls (an `ls`)
//!   always find a free slot however many files are being read.
//! - **Listings stop.** Pages are requested until one is empty or shorter
//!   than `_perpage`, repeats the previous page, or brings no object not
//!   already seen; and never more than `max_pages` pages. When the server
//!   sends `X-Total-Count`, the listing also stops once that many are in,
//!   and the pages that count implies are asked a few at a time. A server
//!   that answers a page past the end with the last page again (the live
//!   service does) is stopped by the repeat rule: nothing is shown twice.
//! - **Runs appear late.** The live service may not know a run for a moment
//!   after its start answered with the id (importio2 polls it up to 11
//!   times a second apart). The client remembers the runs it started: for
//!   `new_run_grace` after a start, a 404 for such a run is asked again with
//!   a short backoff, and listings of runs add those it started that the
//!   server does not list yet. Read-your-writes, as rclone's VFS and
//!   mountpoint-s3 give for objects they just wrote.
//! - **An extractor's runs** come from `GET /extractors/{id}/crawlruns`
//!   (not in the seed spec; clients in the wild use it), or, when the server
//!   answers that path 404 or 405 the first time it is asked, from
//!   `GET /crawlruns/?extractorId=` filtered on the answer; what the server
//!   answered is remembered for the life of the client (one mount), so the
//!   fallback costs one extra call once.

use super::config::{ClientConfig, USER_AGENT};
use super::error::{ApiKey, Error, Redactor};
use super::models::{
    Crawlrun, Credentials, ErrorBody, Extractor, Inputs, InputsDialect, Report, ReportRun,
    StartResponse, Subscription, User,
};
use super::ops::Operation;
use super::retry::{self, RetryPolicy};
use super::stats::{Answering, Counters, Outcome, Stats};
use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};

/// The largest JSON answer read (a page of 1,000 extractors is about 1 MB).
const MAX_JSON_BODY: usize = 64 << 20;
/// The most of an error body read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Pages of one listing in flight at once, once the server has said how
/// many objects there are (see [`Client::list_all`]).
const LIST_WINDOW: usize = 3;

/// A result file of a crawl run or a report run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileRef {
    Crawlrun(String, super::models::CrawlrunFile),
    ReportRun(String, super::models::ReportRunFile),
}

impl FileRef {
    pub fn operation(&self) -> Operation {
        match self {
            FileRef::Crawlrun(..) => Operation::GetCrawlrunFile,
            FileRef::ReportRun(..) => Operation::GetReportRunFile,
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        match self {
            FileRef::Crawlrun(id, _) | FileRef::ReportRun(id, _) => id,
        }
    }

    /// The file's name in the mount (`data.csv`, ...).
    pub fn file_name(&self) -> &'static str {
        match self {
            FileRef::Crawlrun(_, f) => f.file_name(),
            FileRef::ReportRun(_, f) => f.file_name(),
        }
    }

    pub(crate) fn segments(&self) -> [&str; 3] {
        match self {
            FileRef::Crawlrun(id, f) => ["crawlruns", id, f.api_name()],
            FileRef::ReportRun(id, f) => ["reportruns", id, f.api_name()],
        }
    }
}

/// The Import.io API client. Cheap to clone: clones share one connection
/// pool, one concurrency bound and one set of counters.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) key: ApiKey,
    pub(crate) redactor: Redactor,
    pub(crate) cfg: ClientConfig,
    pub(crate) policy: RetryPolicy,
    pub(crate) slots: Semaphore,
    pub(crate) download_slots: Semaphore,
    pub(crate) counters: Counters,
    /// When any download last received a byte (ms since `epoch`): a download
    /// queued for a slot gives up once no download anywhere made progress
    /// for a whole deadline, so a hung API fails queued reads in time too.
    pub(crate) last_byte_ms: std::sync::atomic::AtomicU64,
    pub(crate) epoch: Instant,
    /// Whether the server has `GET /extractors/{id}/crawlruns`
    /// ([`PATH_UNKNOWN`], [`PATH_SERVED`], [`PATH_MISSING`]).
    extractor_runs_path: AtomicU8,
    /// The runs this client started, for read-your-writes (see the module doc).
    started: Mutex<StartedRuns>,
}

/// Not asked yet whether the server has `GET /extractors/{id}/crawlruns`.
const PATH_UNKNOWN: u8 = 0;
/// It answered the path: an error there is the extractor's (404: gone).
const PATH_SERVED: u8 = 1;
/// It answered 404 or 405 the first time: `listCrawlruns` with
/// `extractorId=` from then on.
const PATH_MISSING: u8 = 2;

/// Waits between asks for a run that is not known yet: short at first (the
/// service usually catches up within a second), at most a second apart
/// (how often importio2 asks).
const NEW_RUN_POLL_FIRST: Duration = Duration::from_millis(100);
const NEW_RUN_POLL_MAX: Duration = Duration::from_secs(1);

/// Runs started by this client: run id → (extractor id, when).
#[derive(Default)]
struct StartedRuns {
    runs: HashMap<String, (String, Instant)>,
}

impl StartedRuns {
    /// How many are kept, and for how long: enough for any burst of starts
    /// by hand or script; [`Client::started_here`] needs them past the grace.
    const KEEP: usize = 1024;
    const KEEP_FOR: Duration = Duration::from_secs(3600);

    fn record(&mut self, run: &str, extractor: &str) {
        let now = Instant::now();
        self.runs
            .retain(|_, (_, at)| now.duration_since(*at) < Self::KEEP_FOR);
        if self.runs.len() >= Self::KEEP {
            if let Some(oldest) = self
                .runs
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                self.runs.remove(&oldest);
            }
        }
        self.runs
            .insert(run.to_owned(), (extractor.to_owned(), now));
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

/// A successful answer to a JSON call.
pub(crate) struct Answer {
    pub content_type: Option<String>,
    pub body: Bytes,
    /// `X-Total-Count` of a list answer, when the server sends one.
    pub total: Option<u64>,
}

/// The request body of a PUT or POST.
#[derive(Clone)]
pub(crate) struct Payload {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// Objects that listings deduplicate by guid.
trait Guid {
    fn guid(&self) -> &str;
}

macro_rules! impl_guid {
    ($($t:ty),*) => {$(impl Guid for $t { fn guid(&self) -> &str { &self.guid } })*};
}
impl_guid!(Extractor, Crawlrun, Report, ReportRun);

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, Error> {
        let base =
            Url::parse(cfg.base_url.trim()).map_err(|e| Error::Config(format!("base URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config("base URL must be http or https".into()));
        }
        if base.query().is_some() {
            return Err(Error::Config("base URL must have no query".into()));
        }
        if cfg.api_key.is_empty() {
            return Err(Error::Config("the API key is empty".into()));
        }
        if cfg.max_attempts == 0
            || cfg.max_concurrent == 0
            || cfg.max_concurrent_downloads == 0
            || cfg.page_size == 0
            || cfg.max_pages == 0
        {
            return Err(Error::Config(
                "max_attempts, max_concurrent, max_concurrent_downloads, page_size and max_pages must be at least 1"
                    .into(),
            ));
        }
        if cfg.attempt_timeout.is_zero() || cfg.call_deadline.is_zero() {
            return Err(Error::Config("timeouts must be positive".into()));
        }
        let redactor = Redactor::new(&cfg.api_key);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_gzip()
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Config(redactor.describe(e)))?;
        let policy = RetryPolicy {
            max_attempts: cfg.max_attempts,
            backoff_base: cfg.backoff_base,
            backoff_max: cfg.backoff_max,
        };
        let downloads = cfg.max_concurrent_downloads.min(cfg.max_concurrent);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                key: cfg.api_key.clone(),
                redactor,
                policy,
                slots: Semaphore::new(cfg.max_concurrent),
                download_slots: Semaphore::new(downloads),
                counters: Counters::default(),
                last_byte_ms: std::sync::atomic::AtomicU64::new(0),
                epoch: Instant::now(),
                extractor_runs_path: AtomicU8::new(PATH_UNKNOWN),
                started: Mutex::new(StartedRuns::default()),
                base,
                cfg,
            }),
        })
    }

    /// The configuration this client was built with.
    /// A name for the account this client talks to: a hash of the API URL
    /// and the key, never the key. Different keys or servers give different
    /// names, so the result cache never mixes two accounts' files.
    pub fn account_id(&self) -> String {
        let cfg = &self.inner.cfg;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"importfs account\n");
        ctx.update(cfg.base_url.trim_end_matches('/').as_bytes());
        ctx.update(b"\n");
        ctx.update(self.inner.key.expose().as_bytes());
        ctx.finish().as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// What the client has done so far (all clones together).
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Time to the response headers of each operation asked so far, in
    /// seconds (`importfs_api_request_duration_seconds`).
    pub fn request_durations(
        &self,
    ) -> Vec<(Operation, prometheus_client::metrics::histogram::Histogram)> {
        self.inner.counters.durations()
    }

    /// Whether the API host's last answer was a 401: the key was refused
    /// (a later success clears it).
    pub fn key_refused(&self) -> bool {
        self.inner.counters.key_refused()
    }

    // ----- the operations -----

    /// `getCurrentUser`.
    pub async fn current_user(&self) -> Result<User, Error> {
        self.get_object(Operation::GetCurrentUser, &["users", "current"])
            .await
    }

    /// `getCurrentUserSubscription`.
    pub async fn subscription(&self) -> Result<Subscription, Error> {
        self.get_object(
            Operation::GetCurrentUserSubscription,
            &["users", "current", "subscription"],
        )
        .await
    }

    /// `listExtractors`, every page. Archived extractors are included (the
    /// filesystem decides what to show).
    pub async fn list_extractors(&self) -> Result<Vec<Extractor>, Error> {
        self.list_all(Operation::ListExtractors, &["extractors", ""], &[])
            .await
    }

    /// `getExtractor`.
    pub async fn get_extractor(&self, id: &str) -> Result<Extractor, Error> {
        let op = Operation::GetExtractor;
        self.get_object(op, &["extractors", check_id(op, id)?])
            .await
    }

    /// `deleteExtractor` (archives it). Retried only when surely not applied.
    pub async fn delete_extractor(&self, id: &str) -> Result<Extractor, Error> {
        let op = Operation::DeleteExtractor;
        let answer = self
            .call(op, &["extractors", check_id(op, id)?], &[], None)
            .await?;
        let mut e: Extractor = self.decode_or_default(op, &answer.body);
        if e.guid.is_empty() {
            e.guid = id.to_owned();
        }
        Ok(e)
    }

    /// `getExtractorInputs`, in whichever dialect the server speaks; the
    /// returned [`Inputs::dialect`] remembers it for the next PUT.
    pub async fn get_inputs(&self, id: &str) -> Result<Inputs, Error> {
        let op = Operation::GetExtractorInputs;
        let answer = self
            .call(op, &["extractors", check_id(op, id)?, "inputs"], &[], None)
            .await?;
        let text = String::from_utf8_lossy(&answer.body);
        let mut inputs = Inputs::parse(&text).map_err(|e| Error::Decode {
            op,
            detail: self.inner.redactor.redact(&e.to_string()),
        })?;
        // One JSON line looks like the spec's object: the content type tells.
        if answer
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.contains("ndjson") || ct.contains("jsonl"))
        {
            inputs.dialect = InputsDialect::Lines;
        }
        Ok(inputs)
    }

    /// `updateExtractorInputs`, sent in `inputs.dialect`. A PUT of the whole
    /// list is idempotent, so it is retried like a GET.
    pub async fn put_inputs(&self, id: &str, inputs: &Inputs) -> Result<(), Error> {
        let op = Operation::UpdateExtractorInputs;
        let (body, content_type) = inputs.to_body();
        let payload = Payload {
            bytes: Bytes::from(body),
            content_type,
        };
        self.call(
            op,
            &["extractors", check_id(op, id)?, "inputs"],
            &[],
            Some(payload),
        )
        .await?;
        Ok(())
    }

    /// `startExtractor`. Never sent twice: a timeout or a 500 is reported,
    /// not retried. A 400 means a run is already in progress (EBUSY is the
    /// caller's mapping; see [`Error::status`]). The run it answers with is
    /// remembered, so that it is waited for and listed while the server
    /// does not know it yet (see the module doc).
    pub async fn start_extractor(&self, id: &str) -> Result<StartResponse, Error> {
        let op = Operation::StartExtractor;
        let answer = self
            .call(op, &["extractors", check_id(op, id)?, "start"], &[], None)
            .await?;
        let started: StartResponse = self.decode_or_default(op, &answer.body);
        if let Some(run) = started.crawl_run_id.as_deref().filter(|r| !r.is_empty()) {
            lock(&self.inner.started).record(run, id);
        }
        Ok(started)
    }

    /// `stopExtractor`.
    pub async fn stop_extractor(&self, id: &str) -> Result<(), Error> {
        let op = Operation::StopExtractor;
        self.call(op, &["extractors", check_id(op, id)?, "stop"], &[], None)
            .await?;
        Ok(())
    }

    /// `duplicateExtractor`: the new extractor.
    pub async fn duplicate_extractor(&self, id: &str) -> Result<Extractor, Error> {
        let op = Operation::DuplicateExtractor;
        let answer = self
            .call(
                op,
                &["extractors", check_id(op, id)?, "duplicate"],
                &[],
                None,
            )
            .await?;
        Ok(self.decode_or_default(op, &answer.body))
    }

    /// `updateExtractorCredentials`. The password is in the body only, and
    /// bodies are never logged.
    pub async fn update_credentials(&self, id: &str, creds: &Credentials) -> Result<(), Error> {
        let op = Operation::UpdateExtractorCredentials;
        let body = serde_json::to_vec(creds).map_err(|e| Error::Decode {
            op,
            detail: e.to_string(),
        })?;
        let payload = Payload {
            bytes: Bytes::from(body),
            content_type: "application/json",
        };
        self.call(
            op,
            &["extractors", check_id(op, id)?, "credentials"],
            &[],
            Some(payload),
        )
        .await?;
        Ok(())
    }

    /// `listCrawlruns`, every page. With an extractor id, asks the server to
    /// filter (`extractorId=`) and filters the answer too, since a server
    /// may ignore the parameter. Runs this client just started that the
    /// server does not list yet are added (see the module doc).
    pub async fn list_crawlruns(&self, extractor_id: Option<&str>) -> Result<Vec<Crawlrun>, Error> {
        let op = Operation::ListCrawlruns;
        let runs = match extractor_id {
            None => self.list_all(op, &["crawlruns", ""], &[]).await?,
            Some(id) => self.crawlruns_by_filter(check_id(op, id)?).await?,
        };
        Ok(self.with_new_runs(runs, extractor_id).await)
    }

    /// `listCrawlruns` with `extractorId=`, the answer filtered too.
    async fn crawlruns_by_filter(&self, id: &str) -> Result<Vec<Crawlrun>, Error> {
        let op = Operation::ListCrawlruns;
        let mut runs: Vec<Crawlrun> = self
            .list_all(op, &["crawlruns", ""], &[("extractorId", id)])
            .await?;
        keep_runs_of(&mut runs, id);
        Ok(runs)
    }

    /// An extractor's runs, every page: `listExtractorCrawlruns`
    /// (`GET /extractors/{id}/crawlruns`) when the server has it, else
    /// [`Client::list_crawlruns`] with the extractor's id. The first answer
    /// decides for the life of the client: a 404 or 405 then means the
    /// server lacks the path (one extra call, once); once the server has
    /// answered the path, its 404 means the extractor is unknown or
    /// archived. (A first ask for an extractor that is already gone cannot
    /// tell the two 404s apart and settles on the fallback, which gives the
    /// same runs.) Runs this client just started that the server does not
    /// list yet are added (see the module doc).
    pub async fn list_extractor_crawlruns(&self, id: &str) -> Result<Vec<Crawlrun>, Error> {
        let op = Operation::ListExtractorCrawlruns;
        let id = check_id(op, id)?;
        let path = &self.inner.extractor_runs_path;
        let known = path.load(Ordering::Relaxed);
        let mut runs = if known == PATH_MISSING {
            self.crawlruns_by_filter(id).await?
        } else {
            match self
                .list_all(op, &["extractors", id, "crawlruns"], &[])
                .await
            {
                Ok(runs) => {
                    path.store(PATH_SERVED, Ordering::Relaxed);
                    runs
                }
                Err(e) if known == PATH_UNKNOWN && matches!(e.status(), Some(404 | 405)) => {
                    tracing::info!(
                        status = e.status(),
                        "the API has no GET /extractors/{{id}}/crawlruns: runs are listed with GET /crawlruns/?extractorId= from now on"
                    );
                    path.store(PATH_MISSING, Ordering::Relaxed);
                    self.crawlruns_by_filter(id).await?
                }
                Err(e) => return Err(e),
            }
        };
        // The path names the extractor, but a server that lists another's
        // runs there must not put them in this extractor's folder either.
        keep_runs_of(&mut runs, id);
        Ok(self.with_new_runs(runs, Some(id)).await)
    }

    /// `getCrawlrun`. A 404 for a run this client started less than
    /// `new_run_grace` ago is asked again (backoff from 100 ms to 1 s) until
    /// the grace is over: the service may not know a run yet when its start
    /// has answered.
    pub async fn get_crawlrun(&self, id: &str) -> Result<Crawlrun, Error> {
        let op = Operation::GetCrawlrun;
        let id = check_id(op, id)?;
        let url = self.url(&["crawlruns", id], &[]);
        // Stop waiting before the call's deadline would cut the wait short,
        // so that the caller gets the server's 404, not a timeout.
        let give_up = Instant::now() + self.inner.cfg.call_deadline.mul_f64(0.9);
        let answer = self
            .with_retries(op, |_| self.attempt_awaiting_new_run(op, &url, id, give_up))
            .await?;
        self.decode(op, &answer.body)
    }

    /// One attempt of a GET of a run, which waits out the 404s of a run this
    /// client started a moment ago (see [`Client::get_crawlrun`]).
    async fn attempt_awaiting_new_run(
        &self,
        op: Operation,
        url: &Url,
        id: &str,
        give_up: Instant,
    ) -> Result<Answer, Error> {
        let mut backoff = retry::Backoff::new(NEW_RUN_POLL_FIRST, NEW_RUN_POLL_MAX);
        loop {
            let err = match self.attempt_json(op, url, None).await {
                Err(e) if e.is_not_found() => e,
                other => return other,
            };
            let Some(until) = self.new_run_until(id) else {
                return Err(err);
            };
            let wait = backoff.next_delay();
            if Instant::now() + wait >= until.min(give_up) {
                tracing::warn!(run = %id, "a run started here is still unknown to the API");
                return Err(err);
            }
            tracing::debug!(run = %id, wait = ?wait, "a run started a moment ago is not known yet: asking again");
            self.inner.counters.retry();
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether this client started the run `id` (in the last hour). A 404
    /// for such a run may mean "not yet": callers that cache absence should
    /// not cache that one.
    pub fn started_here(&self, id: &str) -> bool {
        lock(&self.inner.started).runs.contains_key(id)
    }

    /// Until when a 404 for run `id` means "not known yet".
    fn new_run_until(&self, id: &str) -> Option<Instant> {
        let grace = self.inner.cfg.new_run_grace;
        let (_, at) = *lock(&self.inner.started).runs.get(id)?;
        Some(at + grace).filter(|until| *until > Instant::now())
    }

    /// Runs this client started within the grace (of one extractor, or all),
    /// newest first.
    fn new_runs(&self, extractor: Option<&str>) -> Vec<String> {
        let grace = self.inner.cfg.new_run_grace;
        let now = Instant::now();
        let mut young: Vec<(Instant, String)> = lock(&self.inner.started)
            .runs
            .iter()
            .filter(|(_, (ext, at))| {
                now.duration_since(*at) < grace && extractor.is_none_or(|e| e == ext)
            })
            .map(|(run, (_, at))| (*at, run.clone()))
            .collect();
        young.sort_by_key(|y| std::cmp::Reverse(y.0));
        young.into_iter().map(|(_, run)| run).collect()
    }

    /// `runs` with the runs this client just started that it lacks, each
    /// asked for by id (waiting out its 404s), put first: they are the
    /// newest. One the server still does not know is left out.
    async fn with_new_runs(
        &self,
        mut runs: Vec<Crawlrun>,
        extractor: Option<&str>,
    ) -> Vec<Crawlrun> {
        let missing: Vec<String> = self
            .new_runs(extractor)
            .into_iter()
            .filter(|id| !runs.iter().any(|r| r.guid == *id))
            .collect();
        let mut found = Vec::new();
        for id in missing {
            match self.get_crawlrun(&id).await {
                Ok(run) if !run.guid.is_empty() => found.push(run),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(run = %id, error = %e, "a run started here is not listed yet")
                }
            }
        }
        if !found.is_empty() {
            tracing::debug!(
                runs = found.len(),
                "listed runs started here that the API does not list yet"
            );
            found.append(&mut runs);
            runs = found;
        }
        runs
    }

    /// `listReports`, every page.
    pub async fn list_reports(&self) -> Result<Vec<Report>, Error> {
        self.list_all(Operation::ListReports, &["reports", ""], &[])
            .await
    }

    /// `getReport`.
    pub async fn get_report(&self, id: &str) -> Result<Report, Error> {
        let op = Operation::GetReport;
        self.get_object(op, &["reports", check_id(op, id)?]).await
    }

    /// `deleteReport`. Retried only when surely not applied.
    pub async fn delete_report(&self, id: &str) -> Result<(), Error> {
        let op = Operation::DeleteReport;
        self.call(op, &["reports", check_id(op, id)?], &[], None)
            .await?;
        Ok(())
    }

    /// `startReport`: whatever the server answered (`Value::Null` when the
    /// body was empty or not JSON). Never sent twice.
    pub async fn start_report(&self, id: &str) -> Result<Value, Error> {
        let op = Operation::StartReport;
        let answer = self
            .call(op, &["reports", check_id(op, id)?, "start"], &[], None)
            .await?;
        Ok(self.decode_or_default(op, &answer.body))
    }

    /// `listReportRunsForReport`, every page.
    pub async fn list_report_runs_for_report(&self, id: &str) -> Result<Vec<ReportRun>, Error> {
        let op = Operation::ListReportRunsForReport;
        self.list_all(op, &["reports", check_id(op, id)?, "reportruns"], &[])
            .await
    }

    /// `listReportRuns`, every page.
    pub async fn list_report_runs(&self) -> Result<Vec<ReportRun>, Error> {
        self.list_all(Operation::ListReportRuns, &["reportruns", ""], &[])
            .await
    }

    /// `getReportRun`.
    pub async fn get_report_run(&self, id: &str) -> Result<ReportRun, Error> {
        let op = Operation::GetReportRun;
        self.get_object(op, &["reportruns", check_id(op, id)?])
            .await
    }

    // ----- the machinery -----

    /// The URL of an API path, without the key.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Whether `url` is on the API host (same scheme, host and port), the only
    /// place the key may go.
    pub(crate) fn is_api_origin(&self, url: &Url) -> bool {
        let base = &self.inner.base;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    async fn get_object<T: DeserializeOwned>(
        &self,
        op: Operation,
        segments: &[&str],
    ) -> Result<T, Error> {
        let answer = self.call(op, segments, &[], None).await?;
        self.decode(op, &answer.body)
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        op: Operation,
        body: &[u8],
    ) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Decode {
            op,
            detail: self.inner.redactor.redact(&e.to_string()),
        })
    }

    /// The answer to a mutation: the action happened (2xx), so an empty or
    /// odd body must not turn it into a failure the user would "fix" by
    /// doing it again.
    fn decode_or_default<T: DeserializeOwned + Default>(&self, op: Operation, body: &[u8]) -> T {
        if body.iter().all(u8::is_ascii_whitespace) {
            return T::default();
        }
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%op, error = %self.inner.redactor.redact(&e.to_string()), "unreadable answer to a successful call, ignored");
                T::default()
            }
        }
    }

    /// One JSON call, with retries, inside its deadline.
    pub(crate) async fn call(
        &self,
        op: Operation,
        segments: &[&str],
        query: &[(&str, &str)],
        payload: Option<Payload>,
    ) -> Result<Answer, Error> {
        let url = self.url(segments, query);
        self.with_retries(op, |_| self.attempt_json(op, &url, payload.clone()))
            .await
    }

    /// Run `attempt` with retries (see `retry.rs`), the whole inside the
    /// call deadline; a failure is counted and logged once, here.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        op: Operation,
        attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.cfg.call_deadline;
        let attempts = retry::run(
            op,
            &inner.policy,
            deadline,
            || inner.counters.retry(),
            attempt,
        );
        let result = match timeout_at(deadline, attempts).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                op,
                after: inner.cfg.call_deadline,
            }),
        };
        if let Err(e) = &result {
            inner.counters.error(op);
            log_failure(e);
        }
        result
    }

    /// One attempt of a JSON call: a connection slot, the request (following
    /// redirects), the whole body, all within `attempt_timeout`.
    async fn attempt_json(
        &self,
        op: Operation,
        url: &Url,
        payload: Option<Payload>,
    ) -> Result<Answer, Error> {
        let _slot = self.inner.slots.acquire().await.map_err(|_| closed(op))?;
        let _in_flight = self.inner.counters.call_started();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/x-ndjson;q=0.9, */*;q=0.1"),
        );
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let attempt = async {
            let resp = self
                .send_following(op, op.method(), url.clone(), headers, payload)
                .await?;
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let total = resp
                .headers()
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = self.read_body(op, resp, MAX_JSON_BODY).await?;
            Ok(Answer {
                content_type,
                body,
                total,
            })
        };
        match timeout(self.inner.cfg.attempt_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                op,
                after: self.inner.cfg.attempt_timeout,
            }),
        }
    }

    /// Send one request and follow redirects by hand: `_apikey` only to the
    /// API host, never to another. Returns a 2xx response; any other final
    /// status becomes [`Error::Status`].
    pub(crate) async fn send_following(
        &self,
        op: Operation,
        method: Method,
        mut url: Url,
        headers: HeaderMap,
        payload: Option<Payload>,
    ) -> Result<reqwest::Response, Error> {
        let inner = &self.inner;
        let mut hops = 0u32;
        loop {
            strip_key(&mut url);
            let on_api = self.is_api_origin(&url);
            let mut rb = inner
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if on_api {
                rb = rb.query(&[("_apikey", inner.key.expose())]);
                inner.counters.call(op);
            } else {
                inner.counters.redirect();
            }
            if let Some(p) = &payload {
                rb = rb
                    .header(header::CONTENT_TYPE, p.content_type)
                    .body(p.bytes.clone());
            }
            let started = Instant::now();
            let answering = on_api.then(|| Answering::new(&inner.counters, op));
            let resp = match rb.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    if let Some(a) = answering {
                        a.end(Outcome::Error);
                    }
                    return Err(self.transport_error(op, e));
                }
            };
            let status = resp.status();
            if let Some(a) = answering {
                a.end(Outcome::Status(status.as_u16()));
            }
            tracing::debug!(
                %op,
                %method,
                host = if on_api { "api" } else { url.host_str().unwrap_or("") },
                path = url.path(),
                status = status.as_u16(),
                elapsed = ?started.elapsed(),
                "answer"
            );
            if is_followed_redirect(status) && (method == Method::GET || method == Method::HEAD) {
                let Some(location) = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Err(Error::Protocol {
                        op,
                        detail: format!("HTTP {status} without a Location"),
                    });
                };
                hops += 1;
                if hops > inner.cfg.max_redirects {
                    return Err(Error::Protocol {
                        op,
                        detail: format!("more than {} redirects", inner.cfg.max_redirects),
                    });
                }
                url = url.join(location).map_err(|_| Error::Protocol {
                    op,
                    detail: "a redirect to an unreadable Location".into(),
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(Error::Protocol {
                        op,
                        detail: "a redirect to a non-HTTP URL".into(),
                    });
                }
                continue;
            }
            if !status.is_success() {
                return Err(self.status_error(op, resp).await);
            }
            return Ok(resp);
        }
    }

    /// A reqwest failure as an [`Error`] of the right kind, key-free.
    pub(crate) fn transport_error(&self, op: Operation, e: reqwest::Error) -> Error {
        let connect = e.is_connect();
        let timed_out = e.is_timeout();
        let detail = self.inner.redactor.describe(e);
        if connect {
            Error::Connect { op, detail }
        } else if timed_out {
            Error::Timeout {
                op,
                after: self.inner.cfg.attempt_timeout,
            }
        } else {
            Error::Transport { op, detail }
        }
    }

    /// An error status, with the message of its Error body and its Retry-After.
    pub(crate) async fn status_error(&self, op: Operation, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry::parse_retry_after);
        // The body is only a nicety: a broken one must not hide the status.
        let body = match timeout(
            Duration::from_secs(2),
            self.read_body(op, resp, MAX_ERROR_BODY),
        )
        .await
        {
            Ok(Ok(b)) => b,
            _ => Bytes::new(),
        };
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .and_then(|b| b.message.or(b.error))
            .or_else(|| {
                let text = String::from_utf8_lossy(&body);
                let line = text.lines().next().unwrap_or("").trim();
                (!line.is_empty()).then(|| line.to_owned())
            })
            .map(|m| self.inner.redactor.message(&m));
        Error::Status {
            op,
            status,
            message,
            retry_after,
        }
    }

    /// The whole body, checked against Content-Length and inflated if gzip.
    async fn read_body(
        &self,
        op: Operation,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let expected = content_length(resp.headers());
        let encoding = content_encoding(resp.headers());
        let mut raw = Vec::with_capacity(expected.unwrap_or(0).min(limit as u64) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if raw.len() + chunk.len() > limit {
                        return Err(Error::Protocol {
                            op,
                            detail: format!("answer larger than {limit} bytes"),
                        });
                    }
                    raw.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(match expected {
                        Some(expected) => Error::Truncated {
                            op,
                            got: raw.len() as u64,
                            expected,
                        },
                        None => self.transport_error(op, e),
                    })
                }
            }
        }
        if let Some(expected) = expected {
            if (raw.len() as u64) < expected {
                return Err(Error::Truncated {
                    op,
                    got: raw.len() as u64,
                    expected,
                });
            }
        }
        match encoding {
            Encoding::Identity => Ok(Bytes::from(raw)),
            Encoding::Gzip => {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| Error::Decode {
                        op,
                        detail: format!("gzip: {e}"),
                    })?;
                if out.len() > limit {
                    return Err(Error::Protocol {
                        op,
                        detail: format!("answer larger than {limit} bytes"),
                    });
                }
                Ok(Bytes::from(out))
            }
            Encoding::Other(name) => Err(Error::Protocol {
                op,
                detail: format!(
                    "unsupported Content-Encoding {:?}",
                    self.inner.redactor.message(&name)
                ),
            }),
        }
    }

    /// Every page of a listing (see the module docs for when it stops).
    ///
    /// Pages are asked one at a time until an answer says how many objects
    /// there are (`X-Total-Count`); then up to [`LIST_WINDOW`] of the pages
    /// that count implies are in flight at once, so that the server builds
    /// the next pages while this one is decoded (and, over a real network,
    /// round trips overlap). Pages are still taken in order and every stop
    /// rule applies as before; a server whose count lies costs at most
    /// `LIST_WINDOW - 1` calls whose answers are dropped.
    async fn list_all<T: DeserializeOwned + Guid>(
        &self,
        op: Operation,
        segments: &[&str],
        filter: &[(&str, &str)],
    ) -> Result<Vec<T>, Error> {
        let per_page = self.inner.cfg.page_size;
        let max_pages = self.inner.cfg.max_pages;
        let per_page_text = per_page.to_string();
        let fetch = |page: u32| {
            let per_page_text = &per_page_text;
            async move {
                let page_text = page.to_string();
                let mut query: Vec<(&str, &str)> = filter.to_vec();
                query.push(("_page", &page_text));
                query.push(("_perpage", per_page_text));
                (page, self.call(op, segments, &query, None).await)
            }
        };
        let mut in_flight = FuturesOrdered::new();
        // The next page to ask for, and the last page known to be needed.
        let (mut next, mut wanted) = (1u32, 1u32);
        let mut all = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut previous: Option<Vec<String>> = None;
        loop {
            while next <= wanted.min(max_pages) && in_flight.len() < LIST_WINDOW {
                in_flight.push_back(fetch(next));
                next += 1;
            }
            let Some((page, answer)) = in_flight.next().await else {
                break;
            };
            let answer = answer?;
            let items: Vec<T> = self.decode_list(op, &answer.body)?;
            if items.is_empty() {
                break;
            }
            let guids: Vec<String> = items.iter().map(|i| i.guid().to_owned()).collect();
            if previous.as_ref() == Some(&guids) {
                tracing::warn!(%op, page, "the server repeated a page: listing ends here");
                break;
            }
            let count = items.len();
            let mut fresh = 0usize;
            for item in items {
                let guid = item.guid();
                if guid.is_empty() || seen.insert(guid.to_owned()) {
                    all.push(item);
                    fresh += 1;
                }
            }
            if fresh == 0 {
                tracing::warn!(%op, page, "a page with nothing new: listing ends here");
                break;
            }
            if count < per_page as usize {
                break;
            }
            // A server that says how many there are saves the call that
            // would find the empty page after an exact multiple of _perpage.
            // A count below what it has already listed is wrong, and then
            // only the pages themselves say when the listing ends.
            let total = answer.total.filter(|&t| t >= seen.len() as u64);
            if answer.total.is_some() && total.is_none() {
                tracing::warn!(%op, page, "X-Total-Count is below the objects listed so far: ignored");
            }
            if total == Some(seen.len() as u64) {
                break;
            }
            if page == max_pages {
                tracing::warn!(%op, pages = page, "page limit reached: the listing may be incomplete");
                break;
            }
            // A full page: the next one is needed, and as many more as the
            // count says remain.
            let by_count = total.map_or(0, |t| {
                u32::try_from(t.div_ceil(u64::from(per_page))).unwrap_or(u32::MAX)
            });
            wanted = wanted.max(page + 1).max(by_count);
            previous = Some(guids);
        }
        Ok(all)
    }

    /// A page: a JSON array, or an object wrapping one. An element that is not
    /// an object of the expected shape is skipped, not fatal.
    fn decode_list<T: DeserializeOwned>(
        &self,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<T>, Error> {
        // The usual shape, a JSON array, is split into its items without
        // building a tree of it first: each item is decoded straight from
        // its own text (a third of a 1000-item page's decoding time went to
        // the intermediate tree).
        if let Ok(raw) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
            return Ok(keep_decoded(
                op,
                raw.iter().map(|r| serde_json::from_str(r.get())),
            ));
        }
        let value: Value = self.decode(op, body)?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(mut map) => ["items", "data", "results", "hits", "content"]
                .iter()
                .find_map(|k| match map.remove(*k) {
                    Some(Value::Array(a)) => Some(a),
                    _ => None,
                })
                .ok_or_else(|| Error::Decode {
                    op,
                    detail: "expected a JSON array".into(),
                })?,
            Value::Null => Vec::new(),
            _ => {
                return Err(Error::Decode {
                    op,
                    detail: "expected a JSON array".into(),
                })
            }
        };
        Ok(keep_decoded(
            op,
            items.into_iter().map(serde_json::from_value),
        ))
    }
}

/// Keep the runs of extractor `id`. A server that never says whose a run is
/// leaves only its own filter to trust; otherwise keep the extractor's runs.
fn keep_runs_of(runs: &mut Vec<Crawlrun>, id: &str) {
    if runs.iter().any(|r| !r.extractor_id.is_empty()) {
        runs.retain(|r| r.extractor_id == id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reject ids that cannot name an object and would change the path's
/// meaning (`""` would turn `/extractors/{id}` into the listing).
pub(crate) fn check_id(op: Operation, id: &str) -> Result<&str, Error> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(Error::InvalidId { op });
    }
    Ok(id)
}

/// The items of a page that decoded; one of an unexpected shape is skipped
/// (and counted in the log), not fatal to the listing.
fn keep_decoded<T>(
    op: Operation,
    items: impl ExactSizeIterator<Item = Result<T, serde_json::Error>>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    let mut skipped = 0usize;
    for item in items {
        match item {
            Ok(v) => out.push(v),
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(%op, skipped, "listing entries of an unexpected shape skipped");
    }
    out
}
fn closed(op: Operation) -> Error {
    Error::Protocol {
        op,
        detail: "client shut down".into(),
    }
}

fn is_followed_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Remove any `_apikey` a URL already carries (a Location copied from
/// the request): the key is added per hop, and only for the API host.
fn strip_key(url: &mut Url) {
    if url.query().is_none() {
        return;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "_apikey")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let had_key = url.query_pairs().any(|(k, _)| k == "_apikey");
    if !had_key {
        return;
    }
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
}

pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Other(String),
}

pub(crate) fn content_encoding(h: &HeaderMap) -> Encoding {
    let Some(v) = h
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return Encoding::Identity;
    };
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "identity" => Encoding::Identity,
        "gzip" | "x-gzip" => Encoding::Gzip,
        _ => Encoding::Other(v),
    }
}

/// Log a failed call at the level it deserves: a missing object is routine.
pub(crate) fn log_failure(e: &Error) {
    match e.status() {
        Some(404 | 410) => tracing::debug!(error = %e, "call failed"),
        Some(401) => tracing::error!(error = %e, "the API key was refused"),
        _ => tracing::warn!(error = %e, "call failed"),
    }
}
