//! The mount's Prometheus endpoint (`--metrics-addr`): `GET /metrics` in the
//! Prometheus text format (0.0.4) and `GET /healthz`.
//!
//! What is subtle here:
//! - **One source of numbers.** The endpoint keeps no counters of its own:
//!   a scrape encodes one [`Fs::snapshot`], the same snapshot
//!   `.importfs/stats` renders, through a prometheus-client [`Collector`]
//!   (the crate writes the format; nothing here hand-writes exposition text).
//! - **It answers when the mount is in trouble.** A snapshot reads atomics
//!   and two short locks, and `/healthz` reads the state the core keeps
//!   (outage, refused key): no handler awaits the API, so a hung API cannot
//!   hang a scrape. The server runs on the mount's runtime, beside the FUSE
//!   tasks, not behind the client's connection slots.
//! - **The port is taken before the mount exists.** [`bind`] runs before
//!   mounting, so a second mount with the same address fails with an error
//!   naming it instead of leaving a mount that cannot be scraped.
//! - **No secret in it.** Labels are operation names, HTTP statuses, FUSE
//!   operation names and errno names; no URL, path or key is ever a label,
//!   and the health reasons are fixed sentences.

use crate::fs::core::Fs;
use crate::fs::counters::{errno_name, MountStats};
use anyhow::{anyhow, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Take the endpoint's address, before mounting.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!(
                "cannot serve metrics on {addr}: the address is in use (another importfs mount \
                 or another program listens there); choose another port with --metrics-addr \
                 (or -o metrics_addr=), or stop the one that has it"
            )
        } else {
            anyhow!("cannot serve metrics on {addr}: {e}")
        }
    })?;
    l.set_nonblocking(true)
        .map_err(|e| anyhow!("cannot serve metrics on {addr}: {e}"))?;
    Ok(l)
}

/// The registry a scrape encodes: every metric of the mount, named
/// `importfs_*`.
pub fn registry(fs: Arc<Fs>) -> Registry {
    let mut r = Registry::with_prefix("importfs");
    r.register_collector(Box::new(MountCollector { fs }));
    r
}

/// `GET /metrics` as text, what the endpoint sends.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

struct Server {
    registry: Registry,
    fs: Arc<Fs>,
}

/// Serve `/metrics` and `/healthz` on `listener` from the current tokio
/// runtime, until the runtime stops.
pub fn serve(listener: std::net::TcpListener, fs: Arc<Fs>) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Server {
        registry: registry(fs.clone()),
        fs,
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(%addr, "serving /metrics and /healthz");
    Ok(())
}

async fn metrics(State(s): State<Arc<Server>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        encode(&s.registry),
    )
        .into_response()
}

/// 200 while the mount answers and the API does; 503 with the reason when
/// the key was refused or calls have been failing past their deadline.
async fn healthz(State(s): State<Arc<Server>>) -> Response {
    match s.fs.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        )
            .into_response(),
    }
}

/// Encodes one [`Fs::snapshot`] per scrape.
struct MountCollector {
    fs: Arc<Fs>,
}

impl fmt::Debug for MountCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MountCollector")
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

impl Collector for MountCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = self.fs.snapshot();
        self.encode_api(&mut enc, &s)?;
        self.encode_caches(&mut enc, &s)?;
        self.encode_data(&mut enc, &s)?;
        self.encode_fuse(&mut enc, &s)
    }
}

impl MountCollector {
    /// The API calls: requests, durations, failures, retries.
    fn encode_api(&self, enc: &mut DescriptorEncoder, s: &MountStats) -> fmt::Result {
        let api = &s.api;
        let mut m = enc.encode_descriptor(
            "api_requests",
            "HTTP requests sent to the API host, by operationId and how they ended: \
             the HTTP status, error (failed below HTTP) or no_answer (given up before an answer)",
            None,
            MetricType::Counter,
        )?;
        for ((op, outcome), n) in &api.answers {
            let labels = [("operation", op.to_string()), ("status", outcome.label())];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }

        let mut m = enc.encode_descriptor(
            "api_request_duration",
            "Time from sending a request to the API host to its response headers, by operationId",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (op, h) in self.fs.client().request_durations() {
            let labels = [("operation", op.as_str())];
            h.encode(m.encode_family(&labels)?)?;
        }

        let mut m = enc.encode_descriptor(
            "api_call_errors",
            "API calls that failed for good (after their retries), by operationId",
            None,
            MetricType::Counter,
        )?;
        for (op, n) in &api.errors {
            let labels = [("operation", *op)];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
        counter(
            enc,
            "api_retries",
            "Attempts repeated after a transient failure",
            api.retries,
        )?;
        counter(
            enc,
            "api_redirects_followed",
            "Redirect hops followed to another host (signed download URLs; they carry no key)",
            api.redirects_followed,
        )?;
        gauge(
            enc,
            "api_requests_in_flight",
            "Requests to the API holding a connection slot now",
            api.calls_in_flight,
        )?;
        Ok(())
    }

    /// The metadata and data caches: hits, misses, what was kept or lost.
    fn encode_caches(&self, enc: &mut DescriptorEncoder, s: &MountStats) -> fmt::Result {
        let mut m = enc.encode_descriptor(
            "cache_hits",
            "Answers from a cache: metadata (listings, objects) or data (result files)",
            None,
            MetricType::Counter,
        )?;
        for (cache, n) in [
            ("metadata", s.metadata_cache_hits),
            ("data", s.data_cache_hits),
        ] {
            ConstCounter::new(n).encode(m.encode_family(&[("cache", cache)])?)?;
        }
        let mut m = enc.encode_descriptor(
            "cache_misses",
            "Lookups a cache could not answer, so the API was asked",
            None,
            MetricType::Counter,
        )?;
        for (cache, n) in [
            ("metadata", s.metadata_cache_misses),
            ("data", s.data_cache_misses),
        ] {
            ConstCounter::new(n).encode(m.encode_family(&[("cache", cache)])?)?;
        }
        counter(
            enc,
            "data_cache_earlier_mount_hits",
            "Result files found complete in --cache-dir, kept by an earlier mount",
            s.data_cache_hits_earlier_mounts,
        )?;
        counter(
            enc,
            "data_cache_checksum_reads",
            "Kept result files read whole to check their checksum before first use",
            s.data_cache_checksum_reads,
        )?;
        counter(
            enc,
            "data_cache_corrupt",
            "Kept result files whose size or checksum was wrong (deleted, fetched again)",
            s.data_cache_corrupt,
        )?;
        counter(
            enc,
            "data_cache_evictions",
            "Result files evicted from the data cache to stay under --cache-size",
            s.data_cache_evictions,
        )?;
        counter(
            enc,
            "stale_answers",
            "Expired metadata served because the API was failing",
            s.stale_answers,
        )?;
        counter(
            enc,
            "polls",
            "Rounds of change detection (--poll-interval); their API calls count by operation",
            s.polls,
        )?;
        counter(
            enc,
            "events_logged",
            "Run events written to .importfs/events",
            s.events_logged,
        )?;
        gauge(
            enc,
            "events_kept_bytes",
            "Bytes of .importfs/events held in memory (older lines read as blank lines)",
            s.events_kept_bytes,
        )?;
        Ok(())
    }

    /// The downloads, the data cache's size and how result files are read.
    fn encode_data(&self, enc: &mut DescriptorEncoder, s: &MountStats) -> fmt::Result {
        let api = &s.api;
        counter(
            enc,
            "download_bytes",
            "Result-file bytes received from the API and written into the cache",
            api.bytes_downloaded,
        )?;
        counter(
            enc,
            "data_cache_fetched_bytes",
            "Bytes of result files whose download into the cache completed",
            s.bytes_fetched,
        )?;
        gauge(
            enc,
            "downloads_in_flight",
            "Result files being downloaded now",
            s.downloads_in_flight,
        )?;
        gauge(
            enc,
            "data_cache_bytes",
            "Bytes of result files the data cache holds now",
            s.data_cache_bytes,
        )?;
        gauge(
            enc,
            "data_cache_limit_bytes",
            "The most the data cache may hold (--cache-size)",
            s.data_cache_limit_bytes,
        )?;
        counter(
            enc,
            "data_memory_files",
            "Result files read through memory because the disk cache could not take them",
            s.data_memory_files,
        )?;
        gauge(
            enc,
            "data_memory_bytes",
            "Bytes that result files read through memory hold now",
            s.data_memory_bytes,
        )?;
        gauge(
            enc,
            "data_memory_limit_bytes",
            "The most result files read through memory may hold (--max-memory)",
            s.data_memory_limit_bytes,
        )?;
        counter(
            enc,
            "data_cache_disk_full",
            "Result files moved to memory because the cache's disk was full (ENOSPC, EDQUOT)",
            s.data_cache_disk_full,
        )?;
        let mut m = enc.encode_descriptor(
            "data_opens",
            "Opens of cached result files by how the kernel reads them: passthrough \
             (the kernel reads the cache file itself) or keep_cache (page cache kept)",
            None,
            MetricType::Counter,
        )?;
        for (mode, n) in [
            ("passthrough", s.passthrough_opens),
            ("keep_cache", s.keep_cache_opens),
        ] {
            ConstCounter::new(n).encode(m.encode_family(&[("mode", mode)])?)?;
        }
        gauge(enc, "inodes", "Inodes the mount has handed out", s.inodes)?;
        Ok(())
    }

    /// The kernel's requests and the mount's health.
    fn encode_fuse(&self, enc: &mut DescriptorEncoder, s: &MountStats) -> fmt::Result {
        let mut m = enc.encode_descriptor(
            "fuse_requests",
            "FUSE requests from the kernel, by operation",
            None,
            MetricType::Counter,
        )?;
        for (op, n) in &s.fuse.requests {
            ConstCounter::new(*n).encode(m.encode_family(&[("op", op.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "fuse_errors",
            "FUSE requests answered with an error, by operation and errno",
            None,
            MetricType::Counter,
        )?;
        for ((op, errno), n) in &s.fuse.errors {
            let labels = [
                ("op", op.as_str().to_owned()),
                ("errno", errno_name(*errno)),
            ];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }

        gauge(
            enc,
            "api_healthy",
            "1 while the API answers as /healthz sees it, 0 when the key was refused \
             or calls have been failing past their deadline",
            u64::from(self.fs.health().is_ok()),
        )?;
        Ok(())
    }
}
