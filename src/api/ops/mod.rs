//! The operations: the 22 of the spec, by `operationId`, and one the spec
//! lacks but clients in the wild use (`listExtractorCrawlruns`,
//! `GET /extractors/{extractorId}/crawlruns`, named like the others).
//!
//! This file names them, with their HTTP method and whether they may be
//! repeated, and holds what every operation shares ([`check_id`], the JSON
//! decoders). The typed calls, one function per operation, are in the
//! submodules, one per tag of the spec (`tests/importio-openapi.yaml`):
//! [`users`], [`extractors`], [`crawlruns`], [`reports`], [`reportruns`];
//! the two file operations are downloads (`crate::api::download`). Adding
//! an operation means a variant here (listed in `ALL` and `as_str`, and in
//! `method` unless it is a GET) and a function there.
//!
//! Whether an operation may be repeated is one bit that decides which
//! failures the retry loop may paper over (see [`crate::api::retry`]).
//! Getting it wrong for a POST means a double start, so it lives here,
//! next to the names, and nowhere else.

mod crawlruns;
mod extractors;
mod reportruns;
mod reports;
mod users;

pub(super) use crawlruns::PATH_UNKNOWN;

use super::client::Client;
use super::error::Error;
use serde::de::DeserializeOwned;
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

/// Reject ids that cannot name an object and would change the path's
/// meaning (`""` would turn `/extractors/{id}` into the listing).
pub(crate) fn check_id(op: Operation, id: &str) -> Result<&str, Error> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(Error::InvalidId { op });
    }
    Ok(id)
}

/// Reading the answers of the operations.
impl Client {
    pub(super) async fn get_object<T: DeserializeOwned>(
        &self,
        op: Operation,
        segments: &[&str],
    ) -> Result<T, Error> {
        let answer = self.call(op, segments, &[], None).await?;
        self.decode(op, &answer.body)
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        op: Operation,
        body: &[u8],
    ) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Decode {
            op,
            detail: self.inner.redactor.redact(&e.to_string()),
        })
    }

    /// The answer to a mutation: the action happened (2xx), so an empty or
    /// odd body must not turn it into a failure the user would "fix" by
    /// doing it again.
    pub(super) fn decode_or_default<T: DeserializeOwned + Default>(
        &self,
        op: Operation,
        body: &[u8],
    ) -> T {
        if body.iter().all(u8::is_ascii_whitespace) {
            return T::default();
        }
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%op, error = %self.inner.redactor.redact(&e.to_string()), "unreadable answer to a successful call, ignored");
                T::default()
            }
        }
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
