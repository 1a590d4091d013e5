//! The User schemas: the account ([`User`]) and its plan
//! ([`Subscription`]). Tolerant like every model (see `common.rs`).

use super::common::{lenient, lenient_default, Meta, Stamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
