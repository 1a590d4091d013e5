//! Change detection: every `--poll-interval` the mount asks for the newest
//! crawl runs and report runs (one list call each, newest first, one page),
//! and turns what changed into events (`events.rs`), into expired cache
//! entries, and into kernel invalidations, so that `ls` and `readlink
//! latest` show a new run as soon as a poll has seen it.
//!
//! Subtle points:
//! - **The first round only learns** what exists: events are for what
//!   happens after the mount starts.
//! - **Runs not yet final are followed** until they are, even after they
//!   fall off the first page: one `get` each per round.
//! - **A failed round changes nothing**: no event is invented and no run
//!   forgotten; the next round that works sees the changes, in order. A
//!   429 doubles the interval, up to eight times, until a round works.
//! - **Only run ids key the state**, so an extractor renamed or archived
//!   between rounds yields no event of its own.

use crate::api::models::{Crawlrun, ReportRun, RunState};
use crate::api::Error as ApiError;
use crate::fs::core::{Fs, Inval};
use crate::fs::events::{Event, Owner};
use crate::fs::inodes::Node;
use crate::fs::runs::{arc, report_run_is_final};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Runs asked for per list call: more than a poll interval's worth of new
/// runs on any account a person runs, so none is missed between rounds.
const PAGE: u32 = 100;

/// A run as the poll last saw it: its state, final or not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: String,
    is_final: bool,
}

#[derive(Default)]
struct State {
    crawlruns: HashMap<String, Seen>,
    reportruns: HashMap<String, Seen>,
    learned: bool,
}

/// Poll until the mount's events are closed (it is going away).
pub async fn run(fs: Arc<Fs>, every: Duration) {
    let mut state = State::default();
    let mut wait = every;
    loop {
        match round(&fs, &mut state).await {
            Ok(()) => wait = every,
            Err(e) if e.status() == Some(429) => {
                wait = (wait * 2).min(every * 8);
                tracing::info!(next = ?wait, "polling throttled (429): backing off");
            }
            Err(e) => tracing::debug!(error = %e, "a poll failed; the next one tries again"),
        }
        if fs.events.is_closed() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

async fn round(fs: &Fs, st: &mut State) -> Result<(), ApiError> {
    fs.counters.polls.fetch_add(1, Ordering::Relaxed);
    let runs = fs.client.newest_crawlruns(PAGE).await?;
    let reports = fs.client.newest_report_runs(PAGE).await?;
    // Followed runs off the first page: fetched before anything is noted,
    // so a failure leaves the state as it was.
    let on_page: std::collections::HashSet<&str> = runs.iter().map(|r| r.guid.as_str()).collect();
    let mut followed = Vec::new();
    for (id, seen) in &st.crawlruns {
        if !seen.is_final && !on_page.contains(id.as_str()) {
            match fs.client.get_crawlrun(id).await {
                Ok(r) => followed.push(r),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    let rr_on_page: std::collections::HashSet<&str> =
        reports.iter().map(|r| r.guid.as_str()).collect();
    let mut rr_followed = Vec::new();
    for (id, seen) in &st.reportruns {
        if !seen.is_final && !rr_on_page.contains(id.as_str()) {
            match fs.client.get_report_run(id).await {
                Ok(r) => rr_followed.push(r),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    let quiet = !st.learned;
    // Oldest first, so events come in the order things happened.
    for r in runs.iter().rev().chain(followed.iter()) {
        note_crawlrun(fs, st, r, quiet).await;
    }
    for r in reports.iter().rev().chain(rr_followed.iter()) {
        note_reportrun(fs, st, r, quiet).await;
    }
    st.learned = true;
    Ok(())
}

fn crawlrun_event(state: Option<RunState>) -> Option<&'static str> {
    match state? {
        RunState::Finished => Some("crawlrun.finished"),
        RunState::Failed => Some("crawlrun.failed"),
        RunState::Cancelled => Some("crawlrun.cancelled"),
        RunState::Pending | RunState::Started => None,
    }
}

async fn note_crawlrun(fs: &Fs, st: &mut State, r: &Crawlrun, quiet: bool) {
    let now = Seen {
        state: r.state.to_ascii_uppercase(),
        is_final: crawlrun_event(r.run_state()).is_some(),
    };
    let before = st.crawlruns.insert(r.guid.clone(), now.clone());
    if quiet || before.as_ref() == Some(&now) {
        return;
    }
    let mut kinds = Vec::new();
    if before.is_none() {
        kinds.push("crawlrun.started");
    }
    if before.is_none_or(|b| !b.is_final) {
        kinds.extend(crawlrun_event(r.run_state()));
    }
    fs.forget_crawlrun(&r.guid, &r.extractor_id);
    let owner = Owner {
        name: fs.extractor_name(&r.extractor_id).await,
        guid: r.extractor_id.clone(),
    };
    for event in kinds {
        fs.events.publish(&Event {
            time: now_rfc3339(),
            event,
            id: r.guid.clone(),
            extractor: Some(owner.clone()),
            report: None,
            path: format!("crawlruns/{}", r.guid),
        });
    }
}

async fn note_reportrun(fs: &Fs, st: &mut State, r: &ReportRun, quiet: bool) {
    let failed = r
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("FAILED"));
    let now = Seen {
        state: r.status.clone().unwrap_or_default().to_ascii_uppercase(),
        is_final: report_run_is_final(r),
    };
    let before = st.reportruns.insert(r.guid.clone(), now.clone());
    if quiet || before.as_ref() == Some(&now) {
        return;
    }
    let report = r.report_id.clone().unwrap_or_default();
    fs.forget_reportrun(&r.guid, &report);
    if !now.is_final || before.is_some_and(|b| b.is_final) {
        return;
    }
    fs.events.publish(&Event {
        time: now_rfc3339(),
        event: if failed {
            "reportrun.failed"
        } else {
            "reportrun.finished"
        },
        id: r.guid.clone(),
        extractor: None,
        report: Some(Owner {
            name: fs.report_name(&report).await,
            guid: report,
        }),
        path: format!("reportruns/{}", r.guid),
    });
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Fs {
    /// A run changed: what the caches and the kernel hold of it, of its
    /// extractor's runs and of its `latest` is stale now, and the
    /// listings and links that show it have changed (their mtime moves).
    fn forget_crawlrun(&self, id: &str, extractor: &str) {
        let (id, ext) = (arc(id), arc(extractor));
        self.caches.crawlruns.remove(&id);
        self.caches.runs_of.remove(&ext);
        self.caches.crawlrun_list.expire_all();
        let ino = |n: Node| self.inodes.existing(&n).unwrap_or(0);
        let runs = ino(Node::ExtractorRuns(ext.clone()));
        let run = ino(Node::Crawlrun(id.clone()));
        let state = ino(Node::CrawlrunState(id));
        let latest = ino(Node::ExtractorLatest(ext.clone()));
        self.changes
            .note(&[runs, run, latest, ino(Node::Crawlruns)]);
        self.invalidate_all(&[
            Inval::Inode(runs),
            Inval::Inode(run),
            Inval::Inode(state),
            Inval::Entry(ino(Node::Extractor(ext)), "latest".into()),
        ]);
    }

    fn forget_reportrun(&self, id: &str, report: &str) {
        let (id, rep) = (arc(id), arc(report));
        self.caches.reportruns.remove(&id);
        self.caches.runs_of_report.remove(&rep);
        self.caches.reportrun_list.expire_all();
        let ino = |n: Node| self.inodes.existing(&n).unwrap_or(0);
        let runs = ino(Node::ReportRuns(rep.clone()));
        let run = ino(Node::ReportRun(id));
        let latest = ino(Node::ReportLatest(rep.clone()));
        self.changes
            .note(&[runs, run, latest, ino(Node::ReportRunsTop)]);
        self.invalidate_all(&[
            Inval::Inode(runs),
            Inval::Inode(run),
            Inval::Entry(ino(Node::Report(rep)), "latest".into()),
        ]);
    }

    /// Hand the kernel's adapter what it should forget (inode 0: never
    /// handed out, nothing to forget).
    pub fn invalidate_all(&self, what: &[Inval]) {
        let guard = crate::fs::cache::lock(&self.invalidator);
        let Some(f) = guard.as_ref() else { return };
        for w in what {
            match w {
                Inval::Inode(0) | Inval::Entry(0, _) => {}
                w => f(w.clone()),
            }
        }
    }

    /// Let the adapter hear what the kernel should forget (FUSE's notifier).
    pub fn set_invalidator(&self, f: Box<dyn Fn(Inval) + Send + Sync>) {
        *crate::fs::cache::lock(&self.invalidator) = Some(f);
    }

    /// An extractor's name in the mount (its guid, which also works as a
    /// path, when the listing cannot be had).
    async fn extractor_name(&self, guid: &str) -> String {
        self.name_in(&self.extractor_names, guid, self.extractor_list())
            .await
    }

    async fn report_name(&self, guid: &str) -> String {
        self.name_in(&self.report_names, guid, self.report_list())
            .await
    }

    /// `guid`'s name in `names`, after one listing (`list`) if it has none
    /// yet; the guid itself if it still has none.
    async fn name_in<T>(
        &self,
        names: &std::sync::Mutex<crate::fs::names::NameTable>,
        guid: &str,
        list: impl std::future::Future<Output = T>,
    ) -> String {
        let known = || {
            crate::fs::cache::lock(names)
                .name_of(guid)
                .map(str::to_owned)
        };
        if let Some(n) = known() {
            return n;
        }
        let _ = list.await;
        known().unwrap_or_else(|| guid.to_owned())
    }
}
