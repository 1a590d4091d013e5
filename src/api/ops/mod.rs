//! The typed calls: one function per operation, in submodules by the
//! spec's tags (`tests/importio-openapi.yaml`): [`users`], [`extractors`],
//! [`crawlruns`], [`reports`], [`reportruns`]. The two file operations are
//! downloads (`download/`); the operations themselves, their names, methods
//! and whether they may be repeated, are named in `operation.rs`.
//!
//! This file holds what every call shares: [`check_id`], and reading the
//! JSON answers (a mutation's odd answer never turns its success into a
//! failure).

mod crawlruns;
mod extractors;
mod reportruns;
mod reports;
mod users;

use super::client::Client;
use super::error::Error;
use super::operation::Operation;
use serde::de::DeserializeOwned;

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
