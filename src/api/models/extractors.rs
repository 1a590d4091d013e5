//! The Extractor schemas: the extractor, its login [`Credentials`], and
//! the answer to a start ([`StartResponse`]). Its inputs, which the mount
//! shows as a text file, are in `models.rs` itself.
//!
//! What is subtle here: [`Credentials`] carry a password, so their Debug
//! never shows it (bodies are never logged either).

use super::common::{lenient, lenient_default, Meta};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
