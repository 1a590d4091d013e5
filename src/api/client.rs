//! The Import.io client itself: what every clone shares, and building one.
//!
//! A [`Client`] is an `Arc` of [`Inner`]: one reqwest connection pool, the
//! two semaphores that bound concurrency, the counters, and the little the
//! client learns about the server as it goes (whether it has
//! `GET /extractors/{id}/crawlruns`, which runs it started: that state is
//! in `learned.rs`). Everything else is spread by concern, each an
//! `impl Client` of its own (so this file imports none of them):
//! - `transport.rs`: requests, redirects and the key, retries, errors;
//!   `body.rs`: reading and inflating bodies;
//! - `ops/`: one function per operation, by the spec's tags; `list.rs`:
//!   pagination; `new_runs.rs`: runs started here that the server does not
//!   know yet;
//! - `download/`: result files, by ranges and with resumes.
//!
//! What is subtle here is [`Client::new`]: it turns off everything reqwest
//! would do on its own that the rest relies on doing itself (following
//! redirects, which would carry the key to another host; transparent gzip,
//! which would hide Content-Length; retries, which would not know which
//! POSTs must never be sent twice).

use super::config::{ClientConfig, USER_AGENT};
use super::error::{ApiKey, Error, Redactor};
use super::learned::{StartedRuns, PATH_UNKNOWN};
use super::operation::Operation;
use super::retry::RetryPolicy;
use super::stats::{Counters, Stats};
use reqwest::Url;
use std::fmt;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

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
    /// Whether the server has `GET /extractors/{id}/crawlruns` (see
    /// `ops/crawlruns.rs`; its values are in `learned.rs`).
    pub(super) extractor_runs_path: AtomicU8,
    /// The runs this client started, for read-your-writes (see
    /// `new_runs.rs`).
    pub(super) started: Mutex<StartedRuns>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

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
        if base.scheme() == "http" && !is_loopback(&base) {
            return Err(Error::Config(format!(
                "refusing to send the API key in the clear to {}: over http:// anyone on the \
                 network path can read it. Use https://, or an http:// URL on this machine \
                 (127.0.0.1, localhost) for a local emulator",
                base.host_str().unwrap_or("")
            )));
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
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_gzip()
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        for root in &cfg.extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if let Some(url) = &cfg.proxy {
            let proxy = reqwest::Proxy::all(url.as_str())
                .map_err(|_| Error::Config(format!("proxy {}: not a URL", redact_url(url))))?
                .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(proxy);
        }
        let http = builder
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

    /// The configuration this client was built with.
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
}

/// Is the URL's host this machine (127.0.0.0/8, ::1, `localhost`)?
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = host.to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// A URL with its password (and user) replaced, for logs and messages:
/// a proxy's credentials travel in its URL.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("<redacted>");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<not a URL>".into(),
    }
}
