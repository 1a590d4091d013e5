//! What a client learns about the server as it goes, kept in its `Inner`
//! (`client.rs`) and shared by every clone: whether the server has
//! `GET /extractors/{id}/crawlruns` (asked and used in `ops/crawlruns.rs`),
//! and which runs this client started (read-your-writes, in `new_runs.rs`).
//!
//! Only the state is here, so that the client can hold it without
//! depending on the modules that use it; what it means and when it changes
//! is told where it is used.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Not asked yet whether the server has `GET /extractors/{id}/crawlruns`.
pub(super) const PATH_UNKNOWN: u8 = 0;
/// It answered the path: an error there is the extractor's (404: gone).
pub(super) const PATH_SERVED: u8 = 1;
/// It answered 404 or 405 the first time: `listCrawlruns` with
/// `extractorId=` from then on.
pub(super) const PATH_MISSING: u8 = 2;

/// Runs started by this client: run id → (extractor id, when).
#[derive(Default)]
pub(super) struct StartedRuns {
    pub(super) runs: HashMap<String, (String, Instant)>,
}

impl StartedRuns {
    /// How many are kept, and for how long: enough for any burst of starts
    /// by hand or script; `Client::started_here` needs them past the grace.
    const KEEP: usize = 1024;
    const KEEP_FOR: Duration = Duration::from_secs(3600);

    /// Remember that run `run` of `extractor` was started just now.
    pub(super) fn record(&mut self, run: &str, extractor: &str) {
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
