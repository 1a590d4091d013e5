//! What every model is built from: the tolerant field readers, [`Stamp`]
//! and [`Meta`], and the [`ErrorBody`] of every error answer.
//!
//! What is subtle here is tolerance. The live service differs from its
//! spec, so a field of the wrong type is read as absent ([`lenient`])
//! instead of failing the whole object, and a whole listing with it;
//! absent must not be silent, though, so misfits are logged, at most once
//! every [`WRONG_TYPE_LOG_EVERY`]. Timestamps come either as RFC 3339 text
//! (the spec) or as epoch milliseconds (the legacy dialect): [`Stamp`]
//! holds whichever arrived and serializes it back the same, so `*.json`
//! files show what the server sent.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
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
}
