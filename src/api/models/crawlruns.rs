//! The Crawlrun schema and its [`RunState`]. The kinds of its result
//! files, which the mount names, are in `models.rs` itself.
//!
//! What is subtle here: `state` is kept as the text the server sent, and
//! read through [`Crawlrun::run_state`], so a state the spec does not know
//! survives a round trip to `*.json` instead of failing the run.

use super::common::{lenient, lenient_default, Meta, Stamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The state of a crawl run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Pending,
    Started,
    Finished,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "PENDING",
            RunState::Started => "STARTED",
            RunState::Finished => "FINISHED",
            RunState::Failed => "FAILED",
            RunState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "PENDING" => RunState::Pending,
            "STARTED" => RunState::Started,
            "FINISHED" => RunState::Finished,
            "FAILED" => RunState::Failed,
            "CANCELLED" => RunState::Cancelled,
            _ => return None,
        })
    }

    /// A run in a final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Finished | RunState::Failed | RunState::Cancelled
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Crawlrun {
    #[serde(default, deserialize_with = "lenient_default")]
    pub guid: String,
    #[serde(rename = "extractorId", default, deserialize_with = "lenient_default")]
    pub extractor_id: String,
    #[serde(default, deserialize_with = "lenient_default")]
    pub state: String,
    #[serde(
        rename = "startedAt",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<Stamp>,
    #[serde(
        rename = "stoppedAt",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub stopped_at: Option<Stamp>,
    #[serde(
        rename = "totalUrlCount",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_url_count: Option<i64>,
    #[serde(
        rename = "successUrlCount",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub success_url_count: Option<i64>,
    #[serde(
        rename = "failedUrlCount",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub failed_url_count: Option<i64>,
    #[serde(
        rename = "rowCount",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub row_count: Option<i64>,
    #[serde(
        rename = "screenCaptureCount",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub screen_capture_count: Option<i64>,
    #[serde(
        rename = "htmlExtractionCount",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub html_extraction_count: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub files: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub webhooks: Vec<Map<String, Value>>,
    #[serde(rename = "_meta", default, deserialize_with = "lenient_default")]
    pub meta: Meta,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Crawlrun {
    pub fn run_state(&self) -> Option<RunState> {
        RunState::parse(&self.state)
    }

    /// The time to show as the run's mtime: when it stopped, else started, else modified.
    pub fn mtime(&self) -> Option<SystemTime> {
        self.stopped_at
            .as_ref()
            .and_then(Stamp::to_system_time)
            .or_else(|| self.started_at.as_ref().and_then(Stamp::to_system_time))
            .or_else(|| self.meta.modified())
    }
}
