//! The Report and ReportRun schemas. The kinds of a report run's result
//! files, which the mount names, are in `models.rs` itself.
//!
//! What is subtle here: only change reports have a `json` result, and
//! their type is taken in two spellings, `change` and `CHANGE_REPORT`, in
//! any case ([`ReportRun::is_change_report`]).

use super::common::{lenient, lenient_default, Meta};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(default, deserialize_with = "lenient_default")]
    pub guid: String,
    #[serde(default, deserialize_with = "lenient_default")]
    pub name: String,
    #[serde(
        rename = "type",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<String>,
    #[serde(
        rename = "extractorId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub extractor_id: Option<String>,
    #[serde(
        rename = "latestConfigId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_config_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub archived: bool,
    #[serde(rename = "_meta", default, deserialize_with = "lenient_default")]
    pub meta: Meta,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportRun {
    #[serde(default, deserialize_with = "lenient_default")]
    pub guid: String,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(
        rename = "type",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    #[serde(
        rename = "reportId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub report_id: Option<String>,
    #[serde(
        rename = "configId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_id: Option<String>,
    #[serde(
        rename = "extractorId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub extractor_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub inputs: Option<Map<String, Value>>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub csv: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub json: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub log: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub pdf: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub xlsx: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub summary: Option<Map<String, Value>>,
    #[serde(
        rename = "errorMessage",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub archived: bool,
    #[serde(rename = "_meta", default, deserialize_with = "lenient_default")]
    pub meta: Meta,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ReportRun {
    /// Change reports are the only ones with a `json` result.
    pub fn is_change_report(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| {
            k.eq_ignore_ascii_case("change") || k.eq_ignore_ascii_case("CHANGE_REPORT")
        })
    }
}
