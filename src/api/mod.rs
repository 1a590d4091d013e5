//! The Import.io API v2: models shared with the emulator, and the client.
//!
//! - [`models`]: tolerant serde models of every schema (both dialects).
//! - [`Client`]: the 22 operations (and one seen in the wild), pagination,
//!   downloads, retries with deadlines, a shared concurrency bound and
//!   counters ([`Client::stats`]).
//! - [`Error`]: one error type with its errno; its text never holds the key.
//!
//! Nothing here knows about files or FUSE.

mod body;
mod client;
mod config;
mod download;
mod error;
mod list;
pub mod models;
mod new_runs;
mod ops;
mod retry;
mod stats;
mod transport;

pub use client::{Client, FileRef};
pub use config::{ClientConfig, USER_AGENT};
pub use download::RangeOutcome;
pub use error::{ApiKey, Error};
pub use models::{
    Crawlrun, CrawlrunFile, Credentials, Extractor, Inputs, InputsDialect, Report, ReportRun,
    ReportRunFile, RunState, StartResponse, Subscription, User,
};
pub use ops::{Idempotency, Operation};
pub use stats::{Outcome, Stats, DURATION_BUCKETS};
