//! The Import.io API v2: models shared with the emulator, and the client.
//!
//! Nothing here knows about FUSE or files: the mount's file names, the text
//! of its `inputs` file and the errno of a failed call are all in `fs/`.
//!
//! Where things are:
//! - `config.rs`: [`ClientConfig`], every knob and why its default is what
//!   it is.
//! - `client.rs`: [`Client`], what its clones share, and [`FileRef`];
//!   `learned.rs`: what it learns about the server as it goes (state only,
//!   so that `client.rs` imports none of the modules that use it).
//! - `operation.rs`: the operations by name ([`Operation`]: method, whether
//!   a repeat is harmless); it depends on nothing else here.
//! - `ops/`: the calls. `ops/mod.rs` has what they share (id checks, JSON
//!   decoding); `ops/{users,extractors,crawlruns,reports,reportruns}.rs`
//!   have one function per operation, by the spec's tags
//!   (`tests/importio-openapi.yaml`).
//! - `transport.rs`: requests, redirects (the key only to the API host),
//!   retries inside the call deadline, error answers; `body.rs`: reading
//!   and inflating bodies; `retry.rs`: what is retried, and the backoff.
//! - `list.rs`: pagination, and when a listing stops; `new_runs.rs`: runs
//!   started here that the server does not know yet.
//! - `download/`: result files: sizes, ranges, resumes and their checks.
//! - `models.rs` and `models/`: tolerant serde models of every schema.
//! - `error.rs`: [`Error`], with its errno; its text never holds the key.
//! - `stats.rs`: the counters behind [`Client::stats`] and the metrics.
//!
//! Modules import one another one way only: `operation.rs` imports nothing
//! here; `error.rs`, `learned.rs`, `config.rs`, `retry.rs`, `stats.rs` and
//! `models/` sit below `client.rs`; the modules that `impl Client` import
//! it and it imports none of them.

mod body;
mod client;
mod config;
mod download;
mod error;
mod learned;
mod list;
pub mod models;
mod new_runs;
mod operation;
mod ops;
mod retry;
mod stats;
mod tls;
mod transport;

pub use client::{redact_url, Client, FileRef};
pub use config::{ClientConfig, USER_AGENT};
pub use download::{RangeOutcome, Sink, Written};
pub use error::{ApiKey, Error};
pub use models::{
    Crawlrun, CrawlrunFile, Credentials, Extractor, Inputs, InputsDialect, Report, ReportRun,
    ReportRunFile, RunState, StartResponse, Subscription, User,
};
pub use operation::{Idempotency, Operation};
pub use stats::{Outcome, Stats, DURATION_BUCKETS};
