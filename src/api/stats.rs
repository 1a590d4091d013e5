//! Counters of what the client did, shared by every clone of a `Client`,
//! for `.importfs/stats`.
//!
//! A "call" is one HTTP request sent to the API host (each retry and each
//! redirect hop to the API host counts; a hop to another host, such as a
//! signed storage URL, is counted under `redirects_followed` instead), so the
//! numbers match what the server's request log shows.
//!
//! The same counters feed the mount's Prometheus endpoint (see
//! `crate::metrics`): a request is counted once when it is sent (`calls`)
//! and once more, by its status, when it ends (`answers`, with its time to
//! the response headers in `durations`). A request that failed below HTTP
//! ends as `error`, one given up before its headers came (its attempt's
//! timeout, the call's deadline, or a reader that went away) as `no_answer`,
//! so the answers of an operation add up to its calls once nothing is in
//! flight.

use super::operation::Operation;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// How one request to the API host ended: its HTTP status, or `error`
/// (it failed below HTTP: a reset, a refused or timed-out connection) or
/// `no_answer` (given up before the response headers came: the attempt's
/// timeout, the call's deadline, or a caller that no longer wanted it;
/// which of them, the request itself cannot tell). The `status` label of
/// `importfs_api_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Status(u16),
    Error,
    NoAnswer,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Error => "error".into(),
            Outcome::NoAnswer => "no_answer".into(),
        }
    }
}

/// One request to the API host on its way: [`Answering::end`] records how
/// it ended; dropped before that (the future was cancelled), it records
/// `no_answer`, so every request sent is answered in the counts.
pub(crate) struct Answering<'a> {
    counters: &'a Counters,
    op: Operation,
    started: std::time::Instant,
    done: bool,
}

impl<'a> Answering<'a> {
    pub(crate) fn new(counters: &'a Counters, op: Operation) -> Self {
        Answering {
            counters,
            op,
            started: std::time::Instant::now(),
            done: false,
        }
    }

    pub(crate) fn end(mut self, outcome: Outcome) {
        self.done = true;
        self.counters
            .answered(self.op, outcome, self.started.elapsed());
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters
                .answered(self.op, Outcome::NoAnswer, self.started.elapsed());
        }
    }
}

/// Bounds of the request-duration histogram, in seconds: from a loopback
/// answer (a millisecond) to the default call deadline (30 s).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Debug)]
pub(crate) struct Counters {
    calls: [AtomicU64; Operation::ALL.len()],
    errors: [AtomicU64; Operation::ALL.len()],
    retries: AtomicU64,
    redirects: AtomicU64,
    bytes_downloaded: AtomicU64,
    downloads_in_flight: AtomicU64,
    downloads_completed: AtomicU64,
    calls_in_flight: AtomicU64,
    /// Ended requests by operation and outcome.
    answers: Mutex<BTreeMap<(Operation, Outcome), u64>>,
    /// Time to the response headers, by operation.
    durations: [Histogram; Operation::ALL.len()],
    /// The last answer of the API host was a 401 (the key was refused).
    key_refused: AtomicBool,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            calls: Default::default(),
            errors: Default::default(),
            retries: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            bytes_downloaded: AtomicU64::new(0),
            downloads_in_flight: AtomicU64::new(0),
            downloads_completed: AtomicU64::new(0),
            calls_in_flight: AtomicU64::new(0),
            answers: Mutex::new(BTreeMap::new()),
            durations: std::array::from_fn(|_| duration_histogram()),
            key_refused: AtomicBool::new(false),
        }
    }
}

impl Counters {
    /// One request to the API host has ended, `took` after it was sent.
    pub(crate) fn answered(&self, op: Operation, outcome: Outcome, took: Duration) {
        *self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op, outcome))
            .or_default() += 1;
        self.durations[op.index()].observe(took.as_secs_f64());
        // Any other status means the key got past the door (a 404 too).
        if let Outcome::Status(s) = outcome {
            self.key_refused.store(s == 401, Relaxed);
        }
    }

    /// Whether the API host's last answer refused the key.
    pub(crate) fn key_refused(&self) -> bool {
        self.key_refused.load(Relaxed)
    }

    /// The duration histograms of the operations that were asked at least
    /// once (clones share their counts with the originals).
    pub(crate) fn durations(&self) -> Vec<(Operation, Histogram)> {
        Operation::ALL
            .iter()
            .filter(|op| self.calls[op.index()].load(Relaxed) > 0)
            .map(|op| (*op, self.durations[op.index()].clone()))
            .collect()
    }

    pub(crate) fn call(&self, op: Operation) {
        self.calls[op.index()].fetch_add(1, Relaxed);
    }
    pub(crate) fn error(&self, op: Operation) {
        self.errors[op.index()].fetch_add(1, Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn redirect(&self) {
        self.redirects.fetch_add(1, Relaxed);
    }
    pub(crate) fn bytes(&self, n: u64) {
        self.bytes_downloaded.fetch_add(n, Relaxed);
    }
    pub(crate) fn download_started(&self) -> InFlight<'_> {
        self.downloads_in_flight.fetch_add(1, Relaxed);
        InFlight {
            counter: &self.downloads_in_flight,
        }
    }
    pub(crate) fn download_completed(&self) {
        self.downloads_completed.fetch_add(1, Relaxed);
    }
    pub(crate) fn call_started(&self) -> InFlight<'_> {
        self.calls_in_flight.fetch_add(1, Relaxed);
        InFlight {
            counter: &self.calls_in_flight,
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut calls = BTreeMap::new();
        let mut errors = BTreeMap::new();
        for op in Operation::ALL {
            let c = self.calls[op.index()].load(Relaxed);
            if c > 0 {
                calls.insert(op.as_str(), c);
            }
            let e = self.errors[op.index()].load(Relaxed);
            if e > 0 {
                errors.insert(op.as_str(), e);
            }
        }
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((op, o), n)| ((op.as_str(), *o), *n))
            .collect();
        Stats {
            calls,
            errors,
            answers,
            retries: self.retries.load(Relaxed),
            redirects_followed: self.redirects.load(Relaxed),
            bytes_downloaded: self.bytes_downloaded.load(Relaxed),
            downloads_in_flight: self.downloads_in_flight.load(Relaxed),
            downloads_completed: self.downloads_completed.load(Relaxed),
            calls_in_flight: self.calls_in_flight.load(Relaxed),
        }
    }
}

/// Decrements its counter when dropped, so a cancelled call is not left counted.
pub(crate) struct InFlight<'a> {
    counter: &'a AtomicU64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Relaxed);
    }
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests sent to the API host, by operationId (retries included;
    /// operations never called are absent).
    pub calls: BTreeMap<&'static str, u64>,
    /// Calls that ended in an error (after their retries), by operationId.
    pub errors: BTreeMap<&'static str, u64>,
    /// Requests that ended, by operationId and outcome (what
    /// `importfs_api_requests_total` shows).
    pub answers: BTreeMap<(&'static str, Outcome), u64>,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// Redirect hops followed to another host (signed download URLs).
    pub redirects_followed: u64,
    /// Result-file bytes written into download targets.
    pub bytes_downloaded: u64,
    pub downloads_in_flight: u64,
    pub downloads_completed: u64,
    /// Requests holding a connection slot right now.
    pub calls_in_flight: u64,
}

impl Stats {
    /// All calls, every operation.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// The calls made for one operation.
    pub fn calls_of(&self, op: Operation) -> u64 {
        self.calls.get(op.as_str()).copied().unwrap_or(0)
    }

    /// `name value` lines, for a stats file.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (op, n) in &self.calls {
            let _ = writeln!(s, "api.calls.{op} {n}");
        }
        for (op, n) in &self.errors {
            let _ = writeln!(s, "api.errors.{op} {n}");
        }
        for ((op, o), n) in &self.answers {
            let _ = writeln!(s, "api.requests.{op}.{} {n}", o.label());
        }
        let _ = writeln!(s, "api.calls_total {}", self.total_calls());
        let _ = writeln!(s, "api.calls_in_flight {}", self.calls_in_flight);
        let _ = writeln!(s, "api.retries {}", self.retries);
        let _ = writeln!(s, "api.redirects_followed {}", self.redirects_followed);
        let _ = writeln!(s, "download.bytes {}", self.bytes_downloaded);
        let _ = writeln!(s, "download.in_flight {}", self.downloads_in_flight);
        let _ = writeln!(s, "download.completed {}", self.downloads_completed);
        s
    }
}
