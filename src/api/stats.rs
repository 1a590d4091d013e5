//! Counters of what the client did, shared by every clone of a `Client`,
//! for `.importfs/stats`.
//!
//! A "call" is one HTTP request sent to the API host (each retry and each
//! redirect hop to the API host counts; a hop to another host, such as a
//! signed storage URL, is counted under `redirects_followed` instead), so the
//! numbers match what the server's request log shows.

use super::ops::Operation;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: [AtomicU64; Operation::ALL.len()],
    errors: [AtomicU64; Operation::ALL.len()],
    retries: AtomicU64,
    redirects: AtomicU64,
    bytes_downloaded: AtomicU64,
    downloads_in_flight: AtomicU64,
    downloads_completed: AtomicU64,
    calls_in_flight: AtomicU64,
}

impl Counters {
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
        Stats {
            calls,
            errors,
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
