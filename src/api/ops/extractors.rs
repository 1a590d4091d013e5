//! The Extractor operations.
//!
//! What is subtle here is the mutations' answers. A start, stop, duplicate
//! or delete that got a 2xx has happened, so an empty or odd body is taken
//! as a default value ([`Client::decode_or_default`]), never as a failure
//! the user would "fix" by doing it again; and those POSTs and the DELETE
//! are never repeated after a failure of unknown effect (see
//! [`Operation::idempotency`]). Inputs come in two dialects; the one the
//! server spoke is kept in [`Inputs::dialect`] so that the next PUT is
//! written in it.

use super::check_id;
use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::models::{Credentials, Extractor, Inputs, InputsDialect, StartResponse};
use crate::api::operation::Operation;
use crate::api::transport::Payload;
use bytes::Bytes;

impl Client {
    /// `listExtractors`, every page. Archived extractors are included (the
    /// filesystem decides what to show).
    pub async fn list_extractors(&self) -> Result<Vec<Extractor>, Error> {
        self.list_all(Operation::ListExtractors, &["extractors", ""], &[])
            .await
    }

    /// `getExtractor`.
    pub async fn get_extractor(&self, id: &str) -> Result<Extractor, Error> {
        let op = Operation::GetExtractor;
        self.get_object(op, &["extractors", check_id(op, id)?])
            .await
    }

    /// `deleteExtractor` (archives it). Retried only when surely not applied.
    pub async fn delete_extractor(&self, id: &str) -> Result<Extractor, Error> {
        let op = Operation::DeleteExtractor;
        let answer = self
            .call(op, &["extractors", check_id(op, id)?], &[], None)
            .await?;
        let mut e: Extractor = self.decode_or_default(op, &answer.body);
        if e.guid.is_empty() {
            e.guid = id.to_owned();
        }
        Ok(e)
    }

    /// `getExtractorInputs`, in whichever dialect the server speaks; the
    /// returned [`Inputs::dialect`] remembers it for the next PUT.
    pub async fn get_inputs(&self, id: &str) -> Result<Inputs, Error> {
        let op = Operation::GetExtractorInputs;
        let answer = self
            .call(op, &["extractors", check_id(op, id)?, "inputs"], &[], None)
            .await?;
        let text = String::from_utf8_lossy(&answer.body);
        let mut inputs = Inputs::parse(&text).map_err(|e| Error::Decode {
            op,
            detail: self.inner.redactor.redact(&e.to_string()),
        })?;
        // One JSON line looks like the spec's object: the content type tells.
        if answer
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.contains("ndjson") || ct.contains("jsonl"))
        {
            inputs.dialect = InputsDialect::Lines;
        }
        Ok(inputs)
    }

    /// `updateExtractorInputs`, sent in `inputs.dialect`. A PUT of the whole
    /// list is idempotent, so it is retried like a GET.
    pub async fn put_inputs(&self, id: &str, inputs: &Inputs) -> Result<(), Error> {
        let op = Operation::UpdateExtractorInputs;
        let (body, content_type) = inputs.to_body();
        let payload = Payload {
            bytes: Bytes::from(body),
            content_type,
        };
        self.call(
            op,
            &["extractors", check_id(op, id)?, "inputs"],
            &[],
            Some(payload),
        )
        .await?;
        Ok(())
    }

    /// `startExtractor`. Never sent twice: a timeout or a 500 is reported,
    /// not retried. A 400 means a run is already in progress (EBUSY is the
    /// caller's mapping; see [`Error::status`]). The run it answers with is
    /// remembered, so that it is waited for and listed while the server
    /// does not know it yet (see `crate::api::new_runs`).
    pub async fn start_extractor(&self, id: &str) -> Result<StartResponse, Error> {
        let op = Operation::StartExtractor;
        let answer = self
            .call(op, &["extractors", check_id(op, id)?, "start"], &[], None)
            .await?;
        let started: StartResponse = self.decode_or_default(op, &answer.body);
        if let Some(run) = started.crawl_run_id.as_deref().filter(|r| !r.is_empty()) {
            self.remember_start(run, id);
        }
        Ok(started)
    }

    /// `stopExtractor`.
    pub async fn stop_extractor(&self, id: &str) -> Result<(), Error> {
        let op = Operation::StopExtractor;
        self.call(op, &["extractors", check_id(op, id)?, "stop"], &[], None)
            .await?;
        Ok(())
    }

    /// `duplicateExtractor`: the new extractor.
    pub async fn duplicate_extractor(&self, id: &str) -> Result<Extractor, Error> {
        let op = Operation::DuplicateExtractor;
        let answer = self
            .call(
                op,
                &["extractors", check_id(op, id)?, "duplicate"],
                &[],
                None,
            )
            .await?;
        Ok(self.decode_or_default(op, &answer.body))
    }

    /// `updateExtractorCredentials`. The password is in the body only, and
    /// bodies are never logged.
    pub async fn update_credentials(&self, id: &str, creds: &Credentials) -> Result<(), Error> {
        let op = Operation::UpdateExtractorCredentials;
        let body = serde_json::to_vec(creds).map_err(|e| Error::Decode {
            op,
            detail: e.to_string(),
        })?;
        let payload = Payload {
            bytes: Bytes::from(body),
            content_type: "application/json",
        };
        self.call(
            op,
            &["extractors", check_id(op, id)?, "credentials"],
            &[],
            Some(payload),
        )
        .await?;
        Ok(())
    }
}
