//! The shared state of a running emulator ([`App`]): the configuration, the
//! account, the faults and hostile modes in force, the request log, and the
//! keys of the legacy download tokens. Both listeners, every operation and
//! the test hooks read it.
//!
//! Subtle points:
//! - Every lock here is a std mutex, taken for a moment and never held across
//!   an await; a poisoned lock is taken over (`into_inner`), since a panic in
//!   one request must not take the emulator down for the rest of a test.
//! - The API key is never logged: the log keeps the query without `_apikey`,
//!   and the key is replaced by `REDACTED` anywhere else in the path or the
//!   query, raw or percent-encoded.
//! - The legacy download token is a keyed SipHash of (kind, id, file type)
//!   with keys drawn at start: unguessable, and different on every start, so
//!   a redirect is good only for the emulator that gave it.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use axum::http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::{Config, Dialect};
use super::datasets;
use super::faults::Faults;
use super::hostile::Hostile;
use super::query::{encode, pair_name};
use super::state::Db;

/// How many entries the request log keeps (the oldest go first).
const LOG_CAP: usize = 100_000;

/// One entry of the request log (`GET /_emulator/requests`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    /// The path as received (percent-encoded).
    pub path: String,
    /// The raw query without `_apikey` (empty when none).
    pub query: String,
    /// The status sent; 0 when the connection was dropped by a fault.
    pub status: u16,
    /// The spec's operationId, or `unknown`.
    pub operation: String,
    /// `api` or `files`.
    pub listener: String,
    /// Whether the request carried an `_apikey` parameter (its value is never
    /// logged): lets a test prove a redirected download reached the files
    /// listener without the key.
    pub had_apikey: bool,
    /// The Range header as received, if any: lets a test count the bytes
    /// a reader cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// What the request log keeps of a request, as received.
pub(crate) struct Seen<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub raw_query: &'a str,
    /// The Range header, if any.
    pub range: Option<&'a str>,
    pub operation: &'static str,
    pub listener: &'static str,
}

/// Shared state of a running emulator.
pub(crate) struct App {
    pub config: Config,
    pub db: Mutex<Db>,
    pub faults: Faults,
    hostile: Mutex<Hostile>,
    log: Mutex<VecDeque<LoggedRequest>>,
    files_url: String,
    token_keys: (RandomState, RandomState),
}

impl App {
    pub fn new(config: Config, files_url: String) -> App {
        let db = datasets::build(&config);
        App {
            faults: Faults::new(config.faults.clone()),
            config,
            db: Mutex::new(db),
            hostile: Mutex::new(Hostile::default()),
            log: Mutex::new(VecDeque::new()),
            files_url,
            token_keys: (RandomState::new(), RandomState::new()),
        }
    }

    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hostile modes in force (all off by default).
    pub fn hostile(&self) -> Hostile {
        self.hostile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_hostile(&self, h: Hostile) {
        *self.hostile.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    pub fn dialect(&self) -> Dialect {
        self.config.dialect
    }

    pub fn log_snapshot(&self) -> Vec<LoggedRequest> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Trace a request (method, path, status, operation) and add it to the
    /// request log, both without the key.
    pub(crate) fn log_request(&self, seen: &Seen<'_>, status: u16) {
        let path = self.redact(seen.path);
        let (method, operation, listener) = (seen.method, seen.operation, seen.listener);
        tracing::info!(%method, %path, status, operation, listener, "request");
        self.record(LoggedRequest {
            method: method.to_string(),
            path,
            query: self.redact_query(seen.raw_query),
            had_apikey: seen.raw_query.split('&').any(|p| pair_name(p) == "_apikey"),
            status,
            operation: operation.to_owned(),
            listener: listener.to_owned(),
            range: seen.range.map(str::to_owned),
        });
    }

    fn record(&self, entry: LoggedRequest) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= LOG_CAP {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// The unguessable path token of a legacy download (keyed SipHash, keys
    /// drawn at start).
    pub fn file_token(&self, kind: &str, id: &Uuid, ft: &str) -> String {
        let a = self.token_keys.0.hash_one((kind, id.as_bytes(), ft));
        let b = self.token_keys.1.hash_one((ft, id.as_bytes(), kind));
        format!("{a:016x}{b:016x}")
    }

    /// Where a legacy download redirects: the files listener,
    /// `<files_url>/<token>/<kind>/<id>/<type>`.
    pub fn file_location(&self, kind: &str, id: &Uuid, ft: &str) -> String {
        let token = self.file_token(kind, id, ft);
        format!("{}/{token}/{kind}/{id}/{ft}", self.files_url)
    }

    /// Remove `_apikey` from a raw query, and the key from anything else.
    fn redact_query(&self, raw: &str) -> String {
        let kept: Vec<&str> = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| pair_name(p) != "_apikey")
            .collect();
        self.redact(&kept.join("&"))
    }

    fn redact(&self, s: &str) -> String {
        let key = &self.config.api_key;
        if key.is_empty() {
            return s.to_owned();
        }
        let mut out = s.replace(key.as_str(), "REDACTED");
        let enc = encode(key);
        if enc != *key {
            out = out.replace(enc.as_str(), "REDACTED");
        }
        out
    }
}
