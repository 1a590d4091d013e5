//! Serde models for every schema of the Import.io API v2 spec
//! (`tests/importio-openapi.yaml`), shared by the client and the emulator.
//!
//! They are *tolerant*: the live service differs from its spec, so every
//! field is optional or defaulted, a field of the wrong type is read as
//! absent instead of failing the whole object, and unknown fields are kept
//! in `extra` so that `*.json` files show the object as the server sent it.
//! Timestamps come either as RFC 3339 strings (spec) or as epoch
//! milliseconds (legacy); [`Stamp`] holds whichever arrived and serializes
//! it back the same.
//!
//! The schemas are in the submodules, one per resource (`common.rs` has
//! the field readers, [`Stamp`], [`Meta`] and [`ErrorBody`]). This file
//! keeps the models whose names and text the mount shows: the result file
//! kinds ([`CrawlrunFile`], [`ReportRunFile`]) with their file names, and
//! an extractor's [`Inputs`] in both wire dialects and as the text of the
//! `inputs` file.

mod common;
mod crawlruns;
mod extractors;
mod reports;
mod users;

pub use common::{lenient, lenient_default, ErrorBody, Meta, Stamp, WRONG_TYPE_LOG_EVERY};
pub use crawlruns::{Crawlrun, RunState};
pub use extractors::{Credentials, Extractor, StartResponse};
pub use reports::{Report, ReportRun};
pub use users::{Subscription, User};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `ExtractorInputs` in the spec dialect: `{"_url": "a\nb"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtractorInputs {
    #[serde(rename = "_url", default, deserialize_with = "lenient_default")]
    pub url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a server wrote an extractor's inputs; a PUT answers in the dialect it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputsDialect {
    /// One JSON object, `{"_url": "a\nb"}`, as the spec says.
    #[default]
    Object,
    /// JSON lines, one `{"_url": ...}` object a line (`application/x-ndjson`).
    Lines,
}

/// An extractor's inputs as a list of URLs, whichever dialect carried them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub urls: Vec<String>,
    pub dialect: InputsDialect,
}

impl Inputs {
    /// Parse a body in either dialect. A body that is one JSON object is the
    /// spec dialect; otherwise each non-blank line must be a JSON object.
    pub fn parse(body: &str) -> Result<Inputs, serde_json::Error> {
        let trimmed = body.trim();
        if trimmed.is_empty() {
            return Ok(Inputs::default());
        }
        if let Ok(one) = serde_json::from_str::<ExtractorInputs>(trimmed) {
            return Ok(Inputs {
                urls: split_urls(&one.url),
                dialect: InputsDialect::Object,
            });
        }
        let mut urls = Vec::new();
        for line in trimmed.lines().filter(|l| !l.trim().is_empty()) {
            let one: ExtractorInputs = serde_json::from_str(line)?;
            urls.extend(split_urls(&one.url));
        }
        Ok(Inputs {
            urls,
            dialect: InputsDialect::Lines,
        })
    }

    /// The body to send (or serve) in this value's dialect, and its content type.
    pub fn to_body(&self) -> (String, &'static str) {
        match self.dialect {
            InputsDialect::Object => {
                let body = serde_json::to_string(&ExtractorInputs {
                    url: self.urls.join("\n"),
                    extra: Map::new(),
                })
                .expect("a string map serializes");
                (body, "application/json")
            }
            InputsDialect::Lines => {
                let mut body = String::new();
                for u in &self.urls {
                    body.push_str(&serde_json::json!({ "_url": u }).to_string());
                    body.push('\n');
                }
                (body, "application/x-ndjson")
            }
        }
    }
}

fn split_urls(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The result file kinds of a crawl run (`getCrawlrunFile`'s `fileType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrawlrunFile {
    Csv,
    Xlsx,
    Log,
    Sample,
    Json,
    Files,
}

impl CrawlrunFile {
    pub const ALL: [CrawlrunFile; 6] = [
        CrawlrunFile::Csv,
        CrawlrunFile::Json,
        CrawlrunFile::Xlsx,
        CrawlrunFile::Sample,
        CrawlrunFile::Log,
        CrawlrunFile::Files,
    ];

    /// The path segment of the API.
    pub fn api_name(self) -> &'static str {
        match self {
            CrawlrunFile::Csv => "csv",
            CrawlrunFile::Xlsx => "xlsx",
            CrawlrunFile::Log => "log",
            CrawlrunFile::Sample => "sample",
            CrawlrunFile::Json => "json",
            CrawlrunFile::Files => "files",
        }
    }

    pub fn from_api_name(s: &str) -> Option<CrawlrunFile> {
        CrawlrunFile::ALL.into_iter().find(|f| f.api_name() == s)
    }
}

/// The result file kinds of a report run (`getReportRunFile`'s `fileType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportRunFile {
    Csv,
    Xlsx,
    Json,
}

impl ReportRunFile {
    pub const ALL: [ReportRunFile; 3] =
        [ReportRunFile::Csv, ReportRunFile::Json, ReportRunFile::Xlsx];

    pub fn api_name(self) -> &'static str {
        match self {
            ReportRunFile::Csv => "csv",
            ReportRunFile::Xlsx => "xlsx",
            ReportRunFile::Json => "json",
        }
    }

    pub fn from_api_name(s: &str) -> Option<ReportRunFile> {
        ReportRunFile::ALL.into_iter().find(|f| f.api_name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_round_trip_in_both_dialects() {
        let obj = Inputs::parse(r#"{"_url":"https://a.example/\nhttps://b.example/"}"#).unwrap();
        assert_eq!(obj.dialect, InputsDialect::Object);
        assert_eq!(obj.urls, vec!["https://a.example/", "https://b.example/"]);
        let lines =
            Inputs::parse("{\"_url\":\"https://a.example/\"}\n{\"_url\":\"https://b.example/\"}\n")
                .unwrap();
        assert_eq!(lines.dialect, InputsDialect::Lines);
        assert_eq!(lines.urls, obj.urls);
        assert_eq!(Inputs::parse(&lines.to_body().0).unwrap(), lines);
        assert_eq!(Inputs::parse(&obj.to_body().0).unwrap(), obj);
    }
}
