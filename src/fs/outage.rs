//! Whether the API is failing right now, as the mount has seen it.
//!
//! What is subtle: two clocks. `until` is how long stale answers are given
//! without asking (one metadata TTL after a failure), so that a dead or
//! hung API costs one deadline, not one per syscall; `since` is when the
//! failing began, and lasts until a call succeeds, so `/healthz` keeps
//! reporting an outage that nobody is asking about.

use crate::fs::cache::lock;
use std::sync::Mutex;
use std::time::Duration;

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
pub struct Outage {
    until: Mutex<Option<std::time::Instant>>,
    since: Mutex<Option<std::time::Instant>>,
}

impl Outage {
    pub fn began(&self, ttl: Duration) {
        let now = std::time::Instant::now();
        *lock(&self.until) = now.checked_add(ttl);
        lock(&self.since).get_or_insert(now);
    }

    pub fn ended(&self) {
        lock(&self.since).take();
        self.ask_again();
    }

    /// Ask the API at the next call again, without claiming it answers.
    pub fn ask_again(&self) {
        let mut until = lock(&self.until);
        if until.is_some() {
            tracing::info!("API answering again");
            *until = None;
        }
    }

    pub fn failing_since(&self) -> Option<std::time::Instant> {
        *lock(&self.since)
    }

    pub fn ongoing(&self) -> bool {
        lock(&self.until).is_some_and(|t| std::time::Instant::now() < t)
    }
}
