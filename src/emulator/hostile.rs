//! Hostile modes: the emulator lies the way a broken or malicious server
//! might, so that tests can prove the client and the mount survive it.
//!
//! Set with `POST /_emulator/hostile` (a [`Hostile`] object; the fields not
//! given are off), read with `GET`, cleared with `DELETE`. All off by
//! default, so the conformance run and every other test see a well-behaved
//! server.

use std::pin::Pin;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the emulator lies about. Every field is off when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostile {
    /// JSON answers of the API get fields of the wrong type in every object
    /// (top level, or each element of a list): `name` a number, `archived`
    /// the string `"yes"`, `_meta` a list, `state` and `status` the number 7,
    /// `tags` a string, `fields` and `webhooks` an object, `startedAt` and
    /// `stoppedAt` booleans, counts strings, `files` a string, `username` a
    /// number, `roles` a string. Identity fields (`guid`, `extractorId`,
    /// `reportId`) and inputs (`_url`) are left alone, so objects stay
    /// reachable.
    #[serde(default)]
    pub wrong_types: bool,
    /// Every list endpoint answers every `_page` with page 1, filled to
    /// `_perpage` items by repeating its objects (so the page is never
    /// short), and `X-Total-Count` claims a million objects. A client that
    /// pages until a short or empty page, or until that count, never stops.
    #[serde(default)]
    pub repeat_pages: bool,
    /// Whole-file answers (200, and HEAD) of result downloads claim this
    /// `Content-Length` when it is larger than the real size; the real
    /// bytes are sent and the connection is then closed. Ranged answers
    /// (206, 416) tell the truth. Applies to both listeners.
    #[serde(default)]
    pub lying_length: Option<u64>,
    /// Every API call answers 401 with the Error body, whatever the key: a
    /// key revoked mid-session. Hooks and the files listener are unaffected.
    #[serde(default)]
    pub unauthorized: bool,
    /// Result-file GETs ignore `Range` (and `If-Range`) and answer 200 with
    /// the whole file and its whole `Content-Length`, as a server without
    /// range support does, while `Accept-Ranges: bytes` is still sent. HEAD
    /// answers as usual (so a HEAD with a Range still gets its 206). Applies
    /// to both listeners.
    #[serde(default)]
    pub ignore_range: bool,
}

impl Hostile {
    /// Parse the body of `POST /_emulator/hostile`.
    pub(crate) fn parse(body: &[u8]) -> Result<Hostile, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Hostile::default());
        }
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
}

/// Replace fields of `obj` by values of the wrong type (see
/// [`Hostile::wrong_types`]).
fn spoil_object(obj: &mut serde_json::Map<String, Value>) {
    let replacements: [(&str, Value); 18] = [
        ("name", json!(12345)),
        ("archived", json!("yes")),
        ("_meta", json!([])),
        ("state", json!(7)),
        ("status", json!(7)),
        ("tags", json!("tag")),
        ("fields", json!({"not": "a list"})),
        ("webhooks", json!({"not": "a list"})),
        ("startedAt", json!(true)),
        ("stoppedAt", json!(false)),
        ("totalUrlCount", json!("many")),
        ("successUrlCount", json!("some")),
        ("failedUrlCount", json!([1])),
        ("rowCount", json!({"rows": 3})),
        ("files", json!("none")),
        ("username", json!(42)),
        ("roles", json!("admin")),
        ("summary", json!("fine")),
    ];
    for (k, v) in replacements {
        if let Some(slot) = obj.get_mut(k) {
            *slot = v;
        }
    }
}

/// A JSON body with wrong-typed fields, or `None` when it is not JSON.
pub(crate) fn spoil_json(body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    match &mut v {
        Value::Object(o) => spoil_object(o),
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    spoil_object(o);
                }
            }
        }
        _ => return None,
    }
    serde_json::to_vec(&v).ok()
}

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Make a whole-file answer claim `claimed` bytes: HEAD gets the header only;
/// a GET sends its real body, then the connection is cut.
pub(crate) fn lie_about_length(resp: Response, claimed: u64, head: bool) -> Response {
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let real = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if real.is_some_and(|n| n >= claimed) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(claimed));
    if head {
        return Response::from_parts(parts, Body::empty());
    }
    let real_bytes: BodyStream = Box::pin(
        body.into_data_stream()
            .map(|r| r.map_err(std::io::Error::other)),
    );
    let cut: BodyStream = Box::pin(futures_util::stream::once(async {
        // Let hyper flush the real bytes before the connection goes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the body is shorter than the Content-Length claimed (hostile mode)",
        ))
    }));
    Response::from_parts(parts, Body::from_stream(real_bytes.chain(cut)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoils_objects_and_lists_but_keeps_ids() {
        let one = spoil_json(br#"{"guid":"g","name":"n","archived":false,"_meta":{}}"#).unwrap();
        let v: Value = serde_json::from_slice(&one).unwrap();
        assert_eq!(v["guid"], "g");
        assert_eq!(v["name"], 12345);
        assert_eq!(v["archived"], "yes");
        assert!(v["_meta"].is_array());
        assert!(v.get("state").is_none(), "absent fields are not added");
        let list = spoil_json(br#"[{"guid":"a","state":"FINISHED"},3]"#).unwrap();
        let v: Value = serde_json::from_slice(&list).unwrap();
        assert_eq!(v[0]["state"], 7);
        assert_eq!(v[1], 3);
        assert!(spoil_json(b"not json").is_none());
    }

    #[test]
    fn parses_modes() {
        assert_eq!(Hostile::parse(b"").unwrap(), Hostile::default());
        let h = Hostile::parse(br#"{"lying_length": 10, "unauthorized": true}"#).unwrap();
        assert_eq!(h.lying_length, Some(10));
        assert!(h.unauthorized && !h.wrong_types && !h.ignore_range);
        assert!(
            Hostile::parse(br#"{"ignore_range": true}"#)
                .unwrap()
                .ignore_range
        );
        assert!(Hostile::parse(br#"{"nope": 1}"#).is_err());
    }
}
