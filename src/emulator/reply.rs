//! [`Reply`]: an answer as the operations and the test hooks build it, before
//! `respond::finish` turns it into an HTTP response, and [`read_body`], the
//! one way a request body is read.
//!
//! Subtle points:
//! - A reply is not yet a response, so that the finishing touches (gzip,
//!   `Content-Length`, the bandwidth cap, truncation, HEAD) are applied in one
//!   place for every operation, and a result file stays a [`FileBody`] —
//!   bytes generated on demand — until then.
//! - Operations return `Result<Reply, Reply>` so that `?` can answer an
//!   error; every error answer carries the spec's Error body
//!   (`tests/importio-openapi.yaml`), with `code` the status.
//! - A body is refused with 413 as soon as it grows past [`MAX_BODY`], not
//!   after it has been read whole.

// A Reply is an error path taken once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;

use super::files::FileBody;
use crate::api::models::ErrorBody;

/// Largest request body accepted (413 above).
pub(crate) const MAX_BODY: usize = 1 << 20;

/// What a reply sends.
pub(crate) enum Payload {
    Empty,
    Full(Bytes),
    /// Bytes `start..end` of a result file.
    File {
        body: FileBody,
        start: u64,
        end: u64,
    },
}

/// An answer before the finishing touches of `respond::finish`.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub payload: Payload,
}

impl Reply {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(v) => Reply::bytes(status, "application/json", v),
            Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    /// 200 with `value` as JSON.
    pub fn ok<T: Serialize>(value: &T) -> Reply {
        Reply::json(StatusCode::OK, value)
    }

    pub fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply {
            status,
            headers,
            payload: Payload::Full(Bytes::from(body)),
        }
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            payload: Payload::Empty,
        }
    }

    /// The spec's Error body.
    pub fn error(status: StatusCode, message: &str) -> Reply {
        Reply::json(
            status,
            &ErrorBody {
                code: Some(i64::from(status.as_u16())),
                message: Some(message.to_owned()),
                error: status.canonical_reason().map(str::to_owned),
            },
        )
    }

    pub fn not_found(what: &str) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, &format!("{what} not found"))
    }

    pub fn bad_request(message: &str) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, message)
    }

    /// 405 with the `Allow` header.
    pub fn method_not_allowed(allow: &'static str) -> Reply {
        let mut r = Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        r
    }

    pub fn too_large() -> Reply {
        Reply::error(StatusCode::PAYLOAD_TOO_LARGE, "request body over 1 MiB")
    }
}

/// Read a request body, 413 beyond [`MAX_BODY`].
pub(crate) async fn read_body(body: Body) -> Result<Vec<u8>, Reply> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Reply::bad_request("could not read the request body"))?;
        if out.len() + chunk.len() > MAX_BODY {
            return Err(Reply::too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
