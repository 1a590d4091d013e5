//! Serde models for every schema of the Import.io API v2 spec.
//!
//! They are shared by the client and the emulator, and they are *tolerant*:
//! the live service differs from its spec (see DESIGN.md, "Tolerating the real
//! service"), so every field is optional or defaulted, a field of the wrong
//! type is read as absent instead of failing the whole object, and unknown
//! fields are kept in `extra` so that `*.json` files show the object as the
//! server sent it.
//!
//! Timestamps come either as RFC 3339 strings (spec) or as epoch milliseconds
//! (legacy); [`Stamp`] holds whichever arrived and serializes it back the same.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Deserialize a field, reading a value of the wrong type as `None`.
///
/// A hostile or sloppy server must not make a whole listing unreadable
/// because one field of one object has an unexpected type. `null` is read as
/// absent quietly; any other misfit is logged (at most once every
/// [`WRONG_TYPE_LOG_EVERY`], with a count of the ones not shown), so that a
/// user who sees `_~1a2b3c4d` instead of a name can learn why.
pub fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    match serde_json::from_value(v) {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            note_wrong_type(&e);
            Ok(None)
        }
    }
}

/// How often a field of the wrong type is logged, at most.
pub const WRONG_TYPE_LOG_EVERY: Duration = Duration::from_secs(10);

fn note_wrong_type(e: &serde_json::Error) {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    match &mut *last {
        Some((at, unlogged)) if now.duration_since(*at) < WRONG_TYPE_LOG_EVERY => {
            *unlogged += 1;
        }
        slot => {
            let unlogged = slot.map_or(0, |(_, n)| n);
            *slot = Some((now, 0));
            drop(last);
            // serde's message names the type found and the one expected, and
            // a scalar's value: keep it short.
            let text = e.to_string();
            let detail: String = text.chars().take(120).collect();
            tracing::warn!(
                detail = %detail,
                not_logged_since = unlogged,
                "the API sent a field of the wrong type; it is read as absent"
            );
        }
    }
}

/// Like [`lenient`] for fields that have a natural default (strings, bools, lists).
pub fn lenient_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(lenient(d)?.unwrap_or_default())
}

/// A point in time as the server wrote it: RFC 3339 text or epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stamp {
    Millis(i64),
    Text(String),
}

impl Stamp {
    pub fn from_system_time(t: SystemTime, millis: bool) -> Stamp {
        if millis {
            let ms = t
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            Stamp::Millis(ms)
        } else {
            Stamp::Text(humantime::format_rfc3339_millis(t).to_string())
        }
    }

    /// The time this stamp stands for, if it can be read.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        match self {
            Stamp::Millis(ms) if *ms >= 0 => Some(UNIX_EPOCH + Duration::from_millis(*ms as u64)),
            Stamp::Millis(_) => None,
            Stamp::Text(s) => humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
                .ok()
                .or_else(|| humantime::parse_rfc3339(s).ok()),
        }
    }
}

/// Common metadata (`_meta`). Spec: `createdAt`/`modifiedAt` as date-time;
/// legacy: `creationTimestamp`/`timestamp` in epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(
        rename = "createdAt",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<Stamp>,
    #[serde(
        rename = "modifiedAt",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub modified_at: Option<Stamp>,
    #[serde(
        rename = "creationTimestamp",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_timestamp: Option<Stamp>,
    #[serde(
        rename = "timestamp",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<Stamp>,
    #[serde(
        rename = "ownerId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner_id: Option<String>,
    #[serde(
        rename = "creatorId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub creator_id: Option<String>,
    #[serde(
        rename = "editorId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub editor_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Meta {
    /// When the object was last modified, in either dialect.
    pub fn modified(&self) -> Option<SystemTime> {
        self.modified_at
            .as_ref()
            .or(self.timestamp.as_ref())
            .and_then(Stamp::to_system_time)
            .or_else(|| self.created())
    }

    /// When the object was created, in either dialect.
    pub fn created(&self) -> Option<SystemTime> {
        self.created_at
            .as_ref()
            .or(self.creation_timestamp.as_ref())
            .and_then(Stamp::to_system_time)
    }
}

/// The Error body every 4xx/5xx carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, deserialize_with = "lenient_default")]
    pub guid: String,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub username: Option<String>,
    #[serde(
        rename = "firstName",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_name: Option<String>,
    #[serde(
        rename = "lastName",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub company: Option<String>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub roles: Vec<String>,
    #[serde(
        rename = "passwordSetAt",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub password_set_at: Option<Stamp>,
    #[serde(
        rename = "lastLoginDateTime",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_login_date_time: Option<Stamp>,
    #[serde(
        rename = "loginAttemptsLeft",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub login_attempts_left: Option<i64>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub archived: bool,
    #[serde(rename = "_meta", default, deserialize_with = "lenient_default")]
    pub meta: Meta,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    #[serde(
        rename = "userId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_id: Option<String>,
    #[serde(
        rename = "planCode",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub plan_code: Option<String>,
    #[serde(
        rename = "currentUsage",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub current_usage: Option<i64>,
    #[serde(
        rename = "maxUsage",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_usage: Option<i64>,
    #[serde(
        rename = "expiryDate",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_date: Option<Stamp>,
    #[serde(
        rename = "nextBillingDate",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_billing_date: Option<Stamp>,
    #[serde(rename = "autoRenew", default, deserialize_with = "lenient_default")]
    pub auto_renew: bool,
    #[serde(default, deserialize_with = "lenient_default")]
    pub trial: bool,
    #[serde(default, deserialize_with = "lenient_default")]
    pub custom: bool,
    #[serde(default, deserialize_with = "lenient_default")]
    pub features: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub overage: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extractor {
    #[serde(default, deserialize_with = "lenient_default")]
    pub guid: String,
    #[serde(default, deserialize_with = "lenient_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_default")]
    pub fields: Vec<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub archived: bool,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient_default")]
    pub webhooks: Vec<Map<String, Value>>,
    #[serde(
        rename = "chainingConfig",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub chaining_config: Option<Map<String, Value>>,
    #[serde(
        rename = "credentialsId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub credentials_id: Option<String>,
    #[serde(rename = "_meta", default, deserialize_with = "lenient_default")]
    pub meta: Meta,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

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

    /// The `inputs` file: one URL a line, ending with a newline (empty when none).
    pub fn to_file_text(&self) -> String {
        let mut s = String::new();
        for u in &self.urls {
            s.push_str(u);
            s.push('\n');
        }
        s
    }
}

fn split_urls(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Login credentials for an extractor. Debug never shows the password.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

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

/// The answer to `POST /extractors/{id}/start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartResponse {
    #[serde(
        rename = "crawlRunId",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub crawl_run_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

    /// The file name in the mount.
    pub fn file_name(self) -> &'static str {
        match self {
            CrawlrunFile::Csv => "data.csv",
            CrawlrunFile::Xlsx => "data.xlsx",
            CrawlrunFile::Log => "log.txt",
            CrawlrunFile::Sample => "sample.json",
            CrawlrunFile::Json => "data.json",
            CrawlrunFile::Files => "files.zip",
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

    pub fn file_name(self) -> &'static str {
        match self {
            ReportRunFile::Csv => "data.csv",
            ReportRunFile::Xlsx => "data.xlsx",
            ReportRunFile::Json => "data.json",
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
    fn meta_reads_both_dialects() {
        let spec: Meta = serde_json::from_str(
            r#"{"createdAt":"2024-01-02T03:04:05.000Z","modifiedAt":"2024-02-02T03:04:05Z"}"#,
        )
        .unwrap();
        let legacy: Meta = serde_json::from_str(
            r#"{"creationTimestamp":1704164645000,"timestamp":1706843045000}"#,
        )
        .unwrap();
        assert_eq!(spec.created(), legacy.created());
        assert_eq!(spec.modified(), legacy.modified());
        assert!(spec.modified().is_some());
    }

    #[test]
    fn wrong_types_are_absent_not_fatal() {
        let e: Extractor = serde_json::from_str(
            r#"{"guid":"g","name":42,"archived":"yes","tags":"x","fields":[1],"_meta":[],"new":true}"#,
        )
        .unwrap();
        assert_eq!(e.guid, "g");
        assert_eq!(e.name, "");
        assert!(!e.archived);
        assert!(e.tags.is_empty());
        assert_eq!(e.extra.get("new"), Some(&Value::Bool(true)));
    }

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
        assert_eq!(
            obj.to_file_text(),
            "https://a.example/\nhttps://b.example/\n"
        );
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
