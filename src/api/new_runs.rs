//! Read-your-writes for runs: the runs this client started, remembered so
//! that a run the server does not know yet is still found.
//!
//! The live service may not know a run for a moment after its start
//! answered with the id (importio2 polls it up to 11 times a second apart).
//! So for `new_run_grace` after a start, a 404 for such a run is asked again
//! with a short backoff, and listings of runs add those it started that the
//! server does not list yet, as rclone's VFS and mountpoint-s3 do for
//! objects they just wrote. The waiting stops before the call's deadline
//! would cut it short, so that the caller gets the server's 404, not a
//! timeout; and [`Client::started_here`] lets callers that cache absence
//! leave such a 404 uncached. The record of the runs started here,
//! `StartedRuns`, is in `learned.rs`, with the client's other state.

use super::client::Client;
use super::error::Error;
use super::models::Crawlrun;
use super::operation::Operation;
use super::retry;
use super::transport::Answer;
use reqwest::Url;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Waits between asks for a run that is not known yet: short at first (the
/// service usually catches up within a second), at most a second apart
/// (how often importio2 asks).
const NEW_RUN_POLL_FIRST: Duration = Duration::from_millis(100);
const NEW_RUN_POLL_MAX: Duration = Duration::from_secs(1);

impl Client {
    /// Remember that this client started run `run` of `extractor` just now.
    pub(super) fn remember_start(&self, run: &str, extractor: &str) {
        lock(&self.inner.started).record(run, extractor);
    }

    /// Whether this client started the run `id` (in the last hour). A 404
    /// for such a run may mean "not yet": callers that cache absence should
    /// not cache that one.
    pub fn started_here(&self, id: &str) -> bool {
        lock(&self.inner.started).runs.contains_key(id)
    }

    /// One attempt of a GET of a run, which waits out the 404s of a run this
    /// client started a moment ago (see [`Client::get_crawlrun`]).
    pub(super) async fn attempt_awaiting_new_run(
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
    pub(super) async fn with_new_runs(
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
