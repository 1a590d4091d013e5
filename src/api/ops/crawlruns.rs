//! The Crawlrun operations, and `listExtractorCrawlruns`, which the seed
//! spec lacks but clients in the wild use (their files are downloads: see
//! `crate::api::download`).
//!
//! What is subtle here:
//! - **An extractor's runs** come from `GET /extractors/{id}/crawlruns`, or,
//!   when the server answers that path 404 or 405 the first time it is
//!   asked, from `GET /crawlruns/?extractorId=` filtered on the answer; what
//!   the server answered is remembered for the life of the client (one
//!   mount; the flag is in `learned.rs`), so the fallback costs one extra call once.
//! - **Filters are not trusted.** A server may ignore `extractorId=`, or
//!   list another extractor's runs under the path: the answer is filtered
//!   here too (when its runs say whose they are), so no run lands in the
//!   wrong extractor's folder.
//! - **Runs appear late.** Listings and `getCrawlrun` also cover the runs
//!   this client just started that the server does not know yet (see
//!   `crate::api::new_runs`).

use super::check_id;
use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::learned::{PATH_MISSING, PATH_SERVED, PATH_UNKNOWN};
use crate::api::models::Crawlrun;
use crate::api::operation::Operation;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl Client {
    /// `listCrawlruns`, every page. With an extractor id, asks the server to
    /// filter (`extractorId=`) and filters the answer too, since a server
    /// may ignore the parameter. Runs this client just started that the
    /// server does not list yet are added (see `crate::api::new_runs`).
    pub async fn list_crawlruns(&self, extractor_id: Option<&str>) -> Result<Vec<Crawlrun>, Error> {
        let op = Operation::ListCrawlruns;
        let runs = match extractor_id {
            None => self.list_all(op, &["crawlruns", ""], &[]).await?,
            Some(id) => self.crawlruns_by_filter(check_id(op, id)?).await?,
        };
        Ok(self.with_new_runs(runs, extractor_id).await)
    }

    /// The newest `n` runs of the account, newest first: one call.
    pub async fn newest_crawlruns(&self, n: u32) -> Result<Vec<Crawlrun>, Error> {
        self.newest(Operation::ListCrawlruns, &["crawlruns", ""], n)
            .await
    }

    /// `listCrawlruns` with `extractorId=`, the answer filtered too.
    async fn crawlruns_by_filter(&self, id: &str) -> Result<Vec<Crawlrun>, Error> {
        let op = Operation::ListCrawlruns;
        let mut runs: Vec<Crawlrun> = self
            .list_all(op, &["crawlruns", ""], &[("extractorId", id)])
            .await?;
        keep_runs_of(&mut runs, id);
        Ok(runs)
    }

    /// An extractor's runs, every page: `listExtractorCrawlruns`
    /// (`GET /extractors/{id}/crawlruns`) when the server has it, else
    /// [`Client::list_crawlruns`] with the extractor's id. The first answer
    /// decides for the life of the client: a 404 or 405 then means the
    /// server lacks the path (one extra call, once); once the server has
    /// answered the path, its 404 means the extractor is unknown or
    /// archived. (A first ask for an extractor that is already gone cannot
    /// tell the two 404s apart and settles on the fallback, which gives the
    /// same runs.) Runs this client just started that the server does not
    /// list yet are added (see `crate::api::new_runs`).
    pub async fn list_extractor_crawlruns(&self, id: &str) -> Result<Vec<Crawlrun>, Error> {
        let op = Operation::ListExtractorCrawlruns;
        let id = check_id(op, id)?;
        let path = &self.inner.extractor_runs_path;
        let known = path.load(Ordering::Relaxed);
        let mut runs = if known == PATH_MISSING {
            self.crawlruns_by_filter(id).await?
        } else {
            match self
                .list_all(op, &["extractors", id, "crawlruns"], &[])
                .await
            {
                Ok(runs) => {
                    path.store(PATH_SERVED, Ordering::Relaxed);
                    runs
                }
                Err(e) if known == PATH_UNKNOWN && matches!(e.status(), Some(404 | 405)) => {
                    tracing::info!(
                        status = e.status(),
                        "the API has no GET /extractors/{{id}}/crawlruns: runs are listed with GET /crawlruns/?extractorId= from now on"
                    );
                    path.store(PATH_MISSING, Ordering::Relaxed);
                    self.crawlruns_by_filter(id).await?
                }
                Err(e) => return Err(e),
            }
        };
        // The path names the extractor, but a server that lists another's
        // runs there must not put them in this extractor's folder either.
        keep_runs_of(&mut runs, id);
        Ok(self.with_new_runs(runs, Some(id)).await)
    }

    /// `getCrawlrun`. A 404 for a run this client started less than
    /// `new_run_grace` ago is asked again (backoff from 100 ms to 1 s) until
    /// the grace is over: the service may not know a run yet when its start
    /// has answered.
    pub async fn get_crawlrun(&self, id: &str) -> Result<Crawlrun, Error> {
        let op = Operation::GetCrawlrun;
        let id = check_id(op, id)?;
        let url = self.url(&["crawlruns", id], &[]);
        // Stop waiting before the call's deadline would cut the wait short,
        // so that the caller gets the server's 404, not a timeout.
        let give_up = Instant::now() + self.inner.cfg.call_deadline.mul_f64(0.9);
        let answer = self
            .with_retries(op, |_| self.attempt_awaiting_new_run(op, &url, id, give_up))
            .await?;
        self.decode(op, &answer.body)
    }
}

/// Keep the runs of extractor `id`. A server that never says whose a run is
/// leaves only its own filter to trust; otherwise keep the extractor's runs.
fn keep_runs_of(runs: &mut Vec<Crawlrun>, id: &str) {
    if runs.iter().any(|r| !r.extractor_id.is_empty()) {
        runs.retain(|r| r.extractor_id == id);
    }
}
