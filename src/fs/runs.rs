//! What a run's state means for the tree: which runs have result files,
//! which can no longer change.
//!
//! What is subtle: a report run's status is free text in the API. Any
//! status not known to be in progress or failed is taken to have files
//! (a new final status must not hide them), and one that is not known to be
//! in progress is final. Only `FINISHED` runs are kept across mounts
//! (`core.rs`), since a final status we do not know may still change.

use crate::api::models::{Crawlrun, ReportRun, RunState};
use std::sync::Arc;

pub fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

/// Result files exist only for finished runs.
pub fn run_has_files(run: &Crawlrun) -> bool {
    run.run_state() == Some(RunState::Finished)
}

/// Report runs still in progress have no files; any other status has them.
pub fn report_run_has_files(rr: &ReportRun) -> bool {
    !matches!(
        rr.status.as_deref().map(str::to_ascii_uppercase).as_deref(),
        Some("PENDING" | "STARTED" | "RUNNING" | "IN_PROGRESS" | "QUEUED" | "FAILED" | "CANCELLED")
    )
}

pub fn report_run_is_final(rr: &ReportRun) -> bool {
    !matches!(
        rr.status.as_deref().map(str::to_ascii_uppercase).as_deref(),
        Some("PENDING" | "STARTED" | "RUNNING" | "IN_PROGRESS" | "QUEUED")
    )
}
