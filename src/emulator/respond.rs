//! The last step of every answer of both listeners: a [`Reply`] becomes a
//! [`Response`] ([`finish`]) — gzip when asked and worth it, an exact
//! `Content-Length`, the bandwidth cap of result files, the truncation
//! fault, and no body for HEAD.
//!
//! Subtle points:
//! - Only a whole answer (200 without `Content-Range`) is gzipped, so a
//!   range always counts identity bytes, and HEAD always describes the
//!   identity encoding. A gzipped file gets its own `ETag` (`...-gzip"`).
//! - A result file up to [`GZIP_IN_MEMORY`] is compressed in memory to give
//!   a `Content-Length`; a larger one is compressed while it streams, and
//!   goes chunked, so memory stays flat for a 1 GiB file.
//! - The cap counts the bytes on the wire (the compressed ones when gzipped)
//!   and slows only a [`Payload::File`], never an error body or JSON.
//! - A truncated body ends with an error after half its bytes (after one
//!   chunk when its length is unknown), so hyper closes the connection short
//!   of the promised `Content-Length`.

use std::io::Write;
use std::pin::Pin;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::files::{FileBody, CHUNK};
use super::reply::{Payload, Reply};
use super::throttle::throttle;

/// Largest identity body compressed in memory (with a Content-Length);
/// larger ones are gzipped while streamed, chunked.
const GZIP_IN_MEMORY: u64 = 8 << 20;
/// JSON answers smaller than this are not worth compressing.
const GZIP_MIN_JSON: usize = 1024;

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// How an answer is to be delivered: what the request asked and what the
/// faults decided.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delivery {
    /// A HEAD request: headers only.
    pub head: bool,
    /// The request accepts gzip.
    pub gzip_ok: bool,
    /// The truncation fault fired.
    pub truncate: bool,
    /// The bandwidth cap of a result-file body, if any.
    pub bytes_per_sec: Option<u64>,
}

/// Whether `Accept-Encoding` allows gzip (`q=0` refuses it).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case("gzip") {
                return false;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f64>().ok())
                .next()
                .unwrap_or(1.0);
            q > 0.0
        })
}

/// Turn a reply into a response: gzip when asked and worth it,
/// Content-Length, truncation, and no body for HEAD. A result file's body
/// (only a [`Payload::File`], never an error body) is sent at no more than
/// `bytes_per_sec` when set: the bytes on the wire, so the compressed ones
/// when gzipped.
pub(crate) fn finish(mut reply: Reply, d: &Delivery) -> Response {
    let ranged = reply.headers.contains_key(header::CONTENT_RANGE);
    let cap = d
        .bytes_per_sec
        .filter(|_| matches!(reply.payload, Payload::File { .. }));
    let plain_200 = reply.status == StatusCode::OK && !ranged;
    let mut len: Option<u64> = Some(match &reply.payload {
        Payload::Empty => 0,
        Payload::Full(b) => b.len() as u64,
        Payload::File { start, end, .. } => end - start,
    });
    let mut stream: Option<BodyStream> = None;
    if !d.head && d.gzip_ok && plain_200 {
        (stream, len) = compress(&mut reply, len);
    }
    if let Some(n) = len {
        reply
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let body = if d.head {
        Body::empty()
    } else {
        body_of(reply.payload, stream, d.truncate, cap, len)
    };
    build(reply.status, reply.headers, body)
}

/// Gzip a whole answer's payload when worth it. Returns the stream of a file
/// too large to compress in memory (then the length is unknown) and the
/// length of what is left in the payload.
fn compress(reply: &mut Reply, len: Option<u64>) -> (Option<BodyStream>, Option<u64>) {
    let mut stream = None;
    let payload = std::mem::replace(&mut reply.payload, Payload::Empty);
    reply.payload = match payload {
        Payload::Full(b) if b.len() >= GZIP_MIN_JSON => match gzip_bytes(&b) {
            Some(gz) => {
                mark_gzip(&mut reply.headers);
                Payload::Full(Bytes::from(gz))
            }
            None => Payload::Full(b),
        },
        Payload::File { body, start, end } if end > start => {
            mark_gzip(&mut reply.headers);
            if end - start <= GZIP_IN_MEMORY {
                let mut v = Vec::with_capacity((end - start) as usize);
                body.fill(start, end, &mut v);
                match gzip_bytes(&v) {
                    Some(gz) => Payload::Full(Bytes::from(gz)),
                    None => Payload::Full(Bytes::from(v)),
                }
            } else {
                stream = Some(gzip_stream(body, start, end));
                Payload::Empty
            }
        }
        other => other,
    };
    if stream.is_some() {
        return (stream, None);
    }
    match &reply.payload {
        Payload::Full(b) => (None, Some(b.len() as u64)),
        _ => (None, len),
    }
}

/// The body of a response that is not HEAD: throttled when `cap` is set,
/// cut half way (of `len`, else after one chunk) when `truncate`.
fn body_of(
    payload: Payload,
    stream: Option<BodyStream>,
    truncate: bool,
    cap: Option<u64>,
    len: Option<u64>,
) -> Body {
    let s: Option<BodyStream> = match (stream, payload) {
        (Some(s), _) => Some(s),
        (None, Payload::Empty) => None,
        (None, Payload::Full(b)) if !truncate && cap.is_none() => return Body::from(b),
        (None, Payload::Full(b)) => Some(Box::pin(futures_util::stream::iter([Ok(b)]))),
        (None, Payload::File { body, start, end }) => Some(Box::pin(body.stream(start, end))),
    };
    let s = match (s, cap) {
        (Some(s), Some(n)) => Some(Box::pin(throttle(s, n)) as BodyStream),
        (s, _) => s,
    };
    match s {
        None => Body::empty(),
        Some(s) if truncate => {
            let limit = len.map(|n| n / 2).unwrap_or(CHUNK as u64);
            Body::from_stream(cut(s, limit))
        }
        Some(s) => Body::from_stream(s),
    }
}

fn gzip_stream(body: FileBody, start: u64, end: u64) -> BodyStream {
    use flate2::write::GzEncoder;
    let enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    Box::pin(futures_util::stream::unfold(
        Some((body, start, enc)),
        move |st| async move {
            let (body, mut pos, mut enc) = st?;
            loop {
                if pos >= end {
                    return Some((enc.finish().map(Bytes::from), None));
                }
                let stop = end.min(pos + CHUNK as u64);
                let mut v = Vec::with_capacity((stop - pos) as usize);
                body.fill(pos, stop, &mut v);
                pos = stop;
                if let Err(e) = enc.write_all(&v) {
                    return Some((Err(e), None));
                }
                let out = std::mem::take(enc.get_mut());
                if !out.is_empty() {
                    return Some((Ok(Bytes::from(out)), Some((body, pos, enc))));
                }
            }
        },
    ))
}

/// JSON answers compressed at the fastest level, as front ends usually
/// compress dynamic content (nginx's default `gzip_comp_level` is 1): the
/// default level took as long as building a 1000-item page.
fn gzip_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// Stop a body after `limit` bytes with an error: hyper then closes the
/// connection short of the promised Content-Length.
fn cut(stream: BodyStream, limit: u64) -> BodyStream {
    Box::pin(futures_util::stream::unfold(
        Some((stream, 0u64)),
        move |st| async move {
            let (mut s, sent) = st?;
            if sent >= limit {
                // Let hyper flush the headers and the bytes so far: erroring
                // at once would abort before anything reached the socket.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                return Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "truncated by a fault",
                    )),
                    None,
                ));
            }
            match s.next().await {
                Some(Ok(mut b)) => {
                    let left = limit - sent;
                    if b.len() as u64 > left {
                        b = b.slice(..left as usize);
                    }
                    let n = b.len() as u64;
                    Some((Ok(b), Some((s, sent + n))))
                }
                other => other.map(|x| (x, None)),
            }
        },
    ))
}

fn mark_gzip(h: &mut HeaderMap) {
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(etag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        let gz = format!("{}-gzip\"", etag.trim_end_matches('"'));
        if let Ok(v) = HeaderValue::from_str(&gz) {
            h.insert(header::ETAG, v);
        }
    }
}

fn build(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, GZIP"),
        );
        assert!(accepts_gzip(&h));
    }
}
