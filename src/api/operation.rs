//! The operations, by name: the 22 of the spec, by `operationId`, and one
//! the spec lacks but clients in the wild use (`listExtractorCrawlruns`,
//! `GET /extractors/{extractorId}/crawlruns`, named like the others), with
//! their HTTP method and whether they may be repeated.
//!
//! Every other part of the client speaks of operations ([`Operation`] is in
//! each error, counter and log line), so this file depends on nothing else
//! in `api/`. The typed calls, one function per operation, are in `ops/`;
//! the two file operations are downloads (`download/`). Adding an operation
//! means a variant here (listed in `ALL` and `as_str`, and in `method`
//! unless it is a GET) and a function in `ops/`.
//!
//! Whether an operation may be repeated is one bit that decides which
//! failures the retry loop may paper over (see `retry.rs`). Getting it
//! wrong for a POST means a double start, so it lives here, next to the
//! names, and nowhere else.

use std::fmt;

/// One operation of the Import.io API v2, named after its `operationId`
/// (or, for [`Operation::ListExtractorCrawlruns`], in their style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    GetCurrentUser,
    GetCurrentUserSubscription,
    ListExtractors,
    GetExtractor,
    DeleteExtractor,
    GetExtractorInputs,
    UpdateExtractorInputs,
    StartExtractor,
    StopExtractor,
    DuplicateExtractor,
    UpdateExtractorCredentials,
    ListCrawlruns,
    /// `GET /extractors/{extractorId}/crawlruns`: not in the seed spec;
    /// `importio-client` 0.2.4 (PyPI) lists an extractor's runs there.
    ListExtractorCrawlruns,
    GetCrawlrun,
    GetCrawlrunFile,
    ListReports,
    GetReport,
    DeleteReport,
    StartReport,
    ListReportRunsForReport,
    ListReportRuns,
    GetReportRun,
    GetReportRunFile,
}

/// Whether sending a request twice can do harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, HEAD and PUT of inputs: repeating them is harmless, so any
    /// transient failure (5xx, timeout, reset, truncated body) is retried.
    Repeatable,
    /// POSTs and DELETEs: retried only when the server surely did not act on
    /// the request (connect error before sending, 429, 503).
    Once,
}

impl Operation {
    pub const ALL: [Operation; 23] = [
        Operation::GetCurrentUser,
        Operation::GetCurrentUserSubscription,
        Operation::ListExtractors,
        Operation::GetExtractor,
        Operation::DeleteExtractor,
        Operation::GetExtractorInputs,
        Operation::UpdateExtractorInputs,
        Operation::StartExtractor,
        Operation::StopExtractor,
        Operation::DuplicateExtractor,
        Operation::UpdateExtractorCredentials,
        Operation::ListCrawlruns,
        Operation::ListExtractorCrawlruns,
        Operation::GetCrawlrun,
        Operation::GetCrawlrunFile,
        Operation::ListReports,
        Operation::GetReport,
        Operation::DeleteReport,
        Operation::StartReport,
        Operation::ListReportRunsForReport,
        Operation::ListReportRuns,
        Operation::GetReportRun,
        Operation::GetReportRunFile,
    ];

    /// The spec's `operationId` (for the operation it lacks, a name in its style).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetCurrentUser => "getCurrentUser",
            Operation::GetCurrentUserSubscription => "getCurrentUserSubscription",
            Operation::ListExtractors => "listExtractors",
            Operation::GetExtractor => "getExtractor",
            Operation::DeleteExtractor => "deleteExtractor",
            Operation::GetExtractorInputs => "getExtractorInputs",
            Operation::UpdateExtractorInputs => "updateExtractorInputs",
            Operation::StartExtractor => "startExtractor",
            Operation::StopExtractor => "stopExtractor",
            Operation::DuplicateExtractor => "duplicateExtractor",
            Operation::UpdateExtractorCredentials => "updateExtractorCredentials",
            Operation::ListCrawlruns => "listCrawlruns",
            Operation::ListExtractorCrawlruns => "listExtractorCrawlruns",
            Operation::GetCrawlrun => "getCrawlrun",
            Operation::GetCrawlrunFile => "getCrawlrunFile",
            Operation::ListReports => "listReports",
            Operation::GetReport => "getReport",
            Operation::DeleteReport => "deleteReport",
            Operation::StartReport => "startReport",
            Operation::ListReportRunsForReport => "listReportRunsForReport",
            Operation::ListReportRuns => "listReportRuns",
            Operation::GetReportRun => "getReportRun",
            Operation::GetReportRunFile => "getReportRunFile",
        }
    }

    /// The HTTP method of the operation (downloads may also be asked with HEAD).
    pub fn method(self) -> reqwest::Method {
        use reqwest::Method;
        match self {
            Operation::DeleteExtractor | Operation::DeleteReport => Method::DELETE,
            Operation::UpdateExtractorInputs => Method::PUT,
            Operation::StartExtractor
            | Operation::StopExtractor
            | Operation::DuplicateExtractor
            | Operation::UpdateExtractorCredentials
            | Operation::StartReport => Method::POST,
            _ => Method::GET,
        }
    }

    /// Whether the operation may be sent again after a failure of unknown effect.
    pub fn idempotency(self) -> Idempotency {
        match self.method() {
            reqwest::Method::GET | reqwest::Method::PUT => Idempotency::Repeatable,
            _ => Idempotency::Once,
        }
    }

    /// Position in [`Operation::ALL`], used to index counters.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_mutations_are_once() {
        for (i, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
        }
        for op in [
            Operation::StartExtractor,
            Operation::StopExtractor,
            Operation::DuplicateExtractor,
            Operation::UpdateExtractorCredentials,
            Operation::StartReport,
            Operation::DeleteExtractor,
            Operation::DeleteReport,
        ] {
            assert_eq!(op.idempotency(), Idempotency::Once, "{op}");
        }
        assert_eq!(
            Operation::UpdateExtractorInputs.idempotency(),
            Idempotency::Repeatable
        );
    }
}
