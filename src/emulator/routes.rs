//! HTTP: the 22 spec operations (and `listExtractorCrawlruns`, seen in the
//! wild) on the API listener, result files on the files listener, and the
//! pipeline every answer goes through.
//!
//! Routing is done by hand on the path segments rather than with axum's
//! router, so that every error — unknown path, wrong method, malformed id,
//! bad query — carries the spec's Error body and a status the tests can
//! predict, and so that each request is classified by operationId before
//! auth, faults and logging.
//!
//! Pipeline of an API request: hooks (`/_emulator/`) are handed off first;
//! then auth (401), faults (latency, drop, 500, 429, a fixed status), the
//! operation itself, and [`finish`]: gzip when asked, `Content-Length`, the
//! bandwidth cap of result files, truncation, HEAD; then the request log. The
//! account lock is never held across an await nor while a file is generated.

// A Reply is an error path taken once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::config::{Config, Dialect};
use super::conn::{Conn, KillableListener};
use super::datasets;
use super::datasets::{insert_run, run_seed};
use super::faults::{Decision, Faults};
use super::files::{self, FileBody, CHUNK};
use super::hostile::{self, Hostile};
use super::state::{now_ms, Db, ExtractorRec, RunRec, Spec, Timeline};
use super::throttle::throttle;
use crate::api::models::{
    CrawlrunFile, ErrorBody, Inputs, InputsDialect, ReportRunFile, RunState, StartResponse,
};

/// Largest request body accepted (413 above).
pub(crate) const MAX_BODY: usize = 1 << 20;
/// Largest identity body compressed in memory (with a Content-Length);
/// larger ones are gzipped while streamed, chunked.
const GZIP_IN_MEMORY: u64 = 8 << 20;
/// JSON answers smaller than this are not worth compressing.
const GZIP_MIN_JSON: usize = 1024;
const LOG_CAP: usize = 100_000;

/// One entry of the request log (`GET /_emulator/requests`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    /// The path as received (percent-encoded).
    pub path: String,
    /// The raw query without `_apikey` (empty when none).
    pub query: String,
    /// The status sent; 0 when the connection was dropped by a fault.
    pub status: u16,
    /// The spec's operationId, or `unknown`.
    pub operation: String,
    /// `api` or `files`.
    pub listener: String,
    /// Whether the request carried an `_apikey` parameter (its value is never
    /// logged): lets a test prove a redirected download reached the files
    /// listener without the key.
    pub had_apikey: bool,
}

/// Shared state of a running emulator.
pub(crate) struct App {
    pub config: Config,
    pub db: Mutex<Db>,
    pub faults: Faults,
    hostile: Mutex<Hostile>,
    log: Mutex<VecDeque<LoggedRequest>>,
    files_url: String,
    token_keys: (RandomState, RandomState),
}

impl App {
    pub fn new(config: Config, files_url: String) -> App {
        let db = datasets::build(&config);
        App {
            faults: Faults::new(config.faults.clone()),
            config,
            db: Mutex::new(db),
            hostile: Mutex::new(Hostile::default()),
            log: Mutex::new(VecDeque::new()),
            files_url,
            token_keys: (RandomState::new(), RandomState::new()),
        }
    }

    pub fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hostile modes in force (all off by default).
    pub fn hostile(&self) -> Hostile {
        self.hostile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_hostile(&self, h: Hostile) {
        *self.hostile.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    pub fn log_snapshot(&self) -> Vec<LoggedRequest> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn record(&self, entry: LoggedRequest) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= LOG_CAP {
            log.pop_front();
        }
        log.push_back(entry);
    }

    fn dialect(&self) -> Dialect {
        self.config.dialect
    }

    /// The unguessable path token of a legacy download (keyed SipHash, keys
    /// drawn at start).
    fn file_token(&self, kind: &str, id: &Uuid, ft: &str) -> String {
        let a = self.token_keys.0.hash_one((kind, id.as_bytes(), ft));
        let b = self.token_keys.1.hash_one((ft, id.as_bytes(), kind));
        format!("{a:016x}{b:016x}")
    }

    /// Remove `_apikey` from a raw query, and the key from anything else.
    fn redact_query(&self, raw: &str) -> String {
        let kept: Vec<&str> = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let k = p.split('=').next().unwrap_or("");
                decode(k) != "_apikey"
            })
            .collect();
        self.redact(&kept.join("&"))
    }

    fn redact(&self, s: &str) -> String {
        let key = &self.config.api_key;
        if key.is_empty() {
            return s.to_owned();
        }
        let mut out = s.replace(key.as_str(), "REDACTED");
        let enc = encode(key);
        if enc != *key {
            out = out.replace(enc.as_str(), "REDACTED");
        }
        out
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query pairs, percent-decoded.
fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------
// Replies.

pub(crate) enum Payload {
    Empty,
    Full(Bytes),
    File {
        body: FileBody,
        start: u64,
        end: u64,
    },
}

/// An answer before the finishing touches of [`finish`].
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

    fn not_found(what: &str) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, &format!("{what} not found"))
    }

    fn bad_request(message: &str) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, message)
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
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

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

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

/// Turn a reply into a response: gzip when asked and worth it,
/// Content-Length, truncation, and no body for HEAD. A result file's body
/// (only a [`Payload::File`], never an error body) is sent at no more than
/// `bytes_per_sec` when set: the bytes on the wire, so the compressed ones
/// when gzipped.
fn finish(
    mut reply: Reply,
    head: bool,
    gzip_ok: bool,
    truncate: bool,
    bytes_per_sec: Option<u64>,
) -> Response {
    let ranged = reply.headers.contains_key(header::CONTENT_RANGE);
    let cap = bytes_per_sec.filter(|_| matches!(reply.payload, Payload::File { .. }));
    let plain_200 = reply.status == StatusCode::OK && !ranged;
    let mut len: Option<u64> = match &reply.payload {
        Payload::Empty => Some(0),
        Payload::Full(b) => Some(b.len() as u64),
        Payload::File { start, end, .. } => Some(end - start),
    };
    let mut stream: Option<BodyStream> = None;
    if !head && gzip_ok && plain_200 {
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
                    len = None;
                    Payload::Empty
                }
            }
            other => other,
        };
        if let Payload::Full(b) = &reply.payload {
            if stream.is_none() {
                len = Some(b.len() as u64);
            }
        }
    }
    if let Some(n) = len {
        reply
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let body = if head {
        Body::empty()
    } else {
        let s: Option<BodyStream> = match (stream, reply.payload) {
            (Some(s), _) => Some(s),
            (None, Payload::Empty) => None,
            (None, Payload::Full(b)) if !truncate && cap.is_none() => {
                return build(reply.status, reply.headers, Body::from(b))
            }
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
    };
    build(reply.status, reply.headers, body)
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

// ---------------------------------------------------------------------------
// Serving.

pub(crate) async fn serve_api(listener: TcpListener, app: Arc<App>, stop: CancellationToken) {
    let router = Router::new().fallback(api_handler).with_state(app);
    serve(listener, router, stop).await;
}

pub(crate) async fn serve_files(listener: TcpListener, app: Arc<App>, stop: CancellationToken) {
    let router = Router::new().fallback(files_handler).with_state(app);
    serve(listener, router, stop).await;
}

async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let listener = KillableListener {
        inner: listener,
        stop: stop.clone(),
    };
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Conn>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await;
    if let Err(e) = served {
        tracing::warn!("emulator listener stopped: {e}");
    }
}

/// The request after auth: what the operations need.
pub(crate) struct Ctx<'a> {
    pub app: &'a App,
    pub pairs: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Body,
    /// Hostile `ignore_range`, for a GET (HEAD is never affected).
    pub ignore_range: bool,
    /// How long a run made by a start stays unknown, for this request (the
    /// fault's `new_run_404_ms`, else the configuration's).
    pub new_run_404_ms: u64,
}

async fn api_handler(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return super::hooks::handle(&app, &parts.method, &path, body).await;
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let pairs = query_pairs(&raw_query);
    let head = parts.method == Method::HEAD;
    let resolved = resolve(&parts.method, &path);
    let operation = match &resolved {
        Resolved::Route(r) => r.op(),
        _ => "unknown",
    };
    let gzip_ok = accepts_gzip(&parts.headers);
    let hostile = app.hostile();
    let key_ok = param(&pairs, "_apikey") == Some(app.config.api_key.as_str());

    let mut truncate = false;
    let mut bytes_per_sec = app.config.conn_bytes_per_sec;
    let reply = if hostile.unauthorized {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "invalid API key (_apikey): the key was revoked",
        )
    } else if !key_ok {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key (_apikey)",
        )
    } else {
        let decision = match resolved {
            Resolved::Route(_) => app.faults.decide(operation),
            _ => Decision::default(),
        };
        match pre_faults(&decision, &conn).await {
            Some(r) => r,
            None if decision.drop => {
                log_request(&app, &parts.method, &path, &raw_query, 0, operation, "api");
                return Response::new(Body::empty());
            }
            None => {
                truncate = decision.truncate;
                bytes_per_sec = decision.bytes_per_sec.or(bytes_per_sec);
                let too_big = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|n| n > MAX_BODY as u64);
                match resolved {
                    _ if too_big => {
                        Reply::error(StatusCode::PAYLOAD_TOO_LARGE, "request body over 1 MiB")
                    }
                    Resolved::NotFound => Reply::not_found("resource"),
                    Resolved::MethodNotAllowed(allow) => {
                        let mut r =
                            Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                        r.headers
                            .insert(header::ALLOW, HeaderValue::from_static(allow));
                        r
                    }
                    Resolved::Route(route) => {
                        let ctx = Ctx {
                            app: &app,
                            pairs,
                            headers: parts.headers.clone(),
                            body,
                            ignore_range: hostile.ignore_range && !head,
                            new_run_404_ms: decision
                                .new_run_404_ms
                                .unwrap_or_else(|| app.config.effective_new_run_404_ms()),
                        };
                        let reply = dispatch(ctx, route).await;
                        if hostile.wrong_types {
                            spoil_reply(reply)
                        } else {
                            reply
                        }
                    }
                }
            }
        }
    };
    let status = reply.status.as_u16();
    let mut resp = finish(reply, head, gzip_ok, truncate, bytes_per_sec);
    if let Some(claimed) = hostile.lying_length {
        if matches!(operation, "getCrawlrunFile" | "getReportRunFile") {
            resp = hostile::lie_about_length(resp, claimed, head);
        }
    }
    log_request(
        &app,
        &parts.method,
        &path,
        &raw_query,
        status,
        operation,
        "api",
    );
    resp
}

/// A successful JSON answer with fields of the wrong type (hostile mode).
fn spoil_reply(mut reply: Reply) -> Reply {
    let json = reply
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !reply.status.is_success() || !json {
        return reply;
    }
    if let Payload::Full(b) = &reply.payload {
        if let Some(spoiled) = hostile::spoil_json(b) {
            reply.payload = Payload::Full(Bytes::from(spoiled));
        }
    }
    reply
}

/// Latency, then drop / 500 / 429 / a fixed status. `None`: go on (check
/// `decision.drop`).
async fn pre_faults(d: &Decision, conn: &Conn) -> Option<Reply> {
    if let Some(lat) = d.latency {
        tokio::select! {
            _ = tokio::time::sleep(lat) => {}
            _ = conn.kill.cancelled() => {}
        }
    }
    if d.drop {
        conn.kill.cancel();
        return None;
    }
    if d.error {
        return Some(Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error (injected fault)",
        ));
    }
    if let Some(after) = d.throttle {
        let mut r = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests (injected fault)",
        );
        r.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
        return Some(r);
    }
    if let Some(status) = d.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        return Some(Reply::error(status, "answered by an injected fault"));
    }
    None
}

fn log_request(
    app: &App,
    method: &Method,
    path: &str,
    raw_query: &str,
    status: u16,
    operation: &str,
    listener: &str,
) {
    let path = app.redact(path);
    tracing::info!(%method, %path, status, operation, listener, "request");
    app.record(LoggedRequest {
        method: method.to_string(),
        path,
        query: app.redact_query(raw_query),
        had_apikey: raw_query
            .split('&')
            .any(|p| decode(p.split('=').next().unwrap_or("")) == "_apikey"),
        status,
        operation: operation.to_owned(),
        listener: listener.to_owned(),
    });
}

// ---------------------------------------------------------------------------
// Routing.

#[derive(Debug, Clone)]
pub(crate) enum Route {
    User,
    Subscription,
    ListExtractors,
    GetExtractor(String),
    DeleteExtractor(String),
    GetInputs(String),
    PutInputs(String),
    Start(String),
    Stop(String),
    Duplicate(String),
    Credentials(String),
    ListCrawlruns,
    ListExtractorCrawlruns(String),
    GetCrawlrun(String),
    CrawlrunFile(String, String),
    ListReports,
    GetReport(String),
    DeleteReport(String),
    StartReport(String),
    ReportRunsFor(String),
    ListReportRuns,
    GetReportRun(String),
    ReportRunFile(String, String),
}

impl Route {
    pub fn op(&self) -> &'static str {
        match self {
            Route::User => "getCurrentUser",
            Route::Subscription => "getCurrentUserSubscription",
            Route::ListExtractors => "listExtractors",
            Route::GetExtractor(_) => "getExtractor",
            Route::DeleteExtractor(_) => "deleteExtractor",
            Route::GetInputs(_) => "getExtractorInputs",
            Route::PutInputs(_) => "updateExtractorInputs",
            Route::Start(_) => "startExtractor",
            Route::Stop(_) => "stopExtractor",
            Route::Duplicate(_) => "duplicateExtractor",
            Route::Credentials(_) => "updateExtractorCredentials",
            Route::ListCrawlruns => "listCrawlruns",
            Route::ListExtractorCrawlruns(_) => "listExtractorCrawlruns",
            Route::GetCrawlrun(_) => "getCrawlrun",
            Route::CrawlrunFile(..) => "getCrawlrunFile",
            Route::ListReports => "listReports",
            Route::GetReport(_) => "getReport",
            Route::DeleteReport(_) => "deleteReport",
            Route::StartReport(_) => "startReport",
            Route::ReportRunsFor(_) => "listReportRunsForReport",
            Route::ListReportRuns => "listReportRuns",
            Route::GetReportRun(_) => "getReportRun",
            Route::ReportRunFile(..) => "getReportRunFile",
        }
    }
}

pub(crate) enum Resolved {
    Route(Route),
    NotFound,
    MethodNotAllowed(&'static str),
}

fn resolve(method: &Method, path: &str) -> Resolved {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let get = *method == Method::GET || *method == Method::HEAD;
    let is = |m: Method| *method == m;
    let s = |x: &str| x.to_owned();
    use Resolved::{MethodNotAllowed as No, Route as R};
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    match segs.as_slice() {
        ["users", "current"] if get => R(Route::User),
        ["users", "current"] => No(GET),
        ["users", "current", "subscription"] if get => R(Route::Subscription),
        ["users", "current", "subscription"] => No(GET),
        ["extractors"] | ["extractors", ""] if get => R(Route::ListExtractors),
        ["extractors"] | ["extractors", ""] => No(GET),
        ["extractors", id] if get => R(Route::GetExtractor(s(id))),
        ["extractors", id] if is(Method::DELETE) => R(Route::DeleteExtractor(s(id))),
        ["extractors", _] => No("GET, HEAD, DELETE"),
        ["extractors", id, "inputs"] if get => R(Route::GetInputs(s(id))),
        ["extractors", id, "inputs"] if is(Method::PUT) => R(Route::PutInputs(s(id))),
        ["extractors", _, "inputs"] => No("GET, HEAD, PUT"),
        // Not in the seed spec: `importio-client` (PyPI) asks for an
        // extractor's runs here.
        ["extractors", id, "crawlruns"] | ["extractors", id, "crawlruns", ""] if get => {
            R(Route::ListExtractorCrawlruns(s(id)))
        }
        ["extractors", _, "crawlruns"] | ["extractors", _, "crawlruns", ""] => No(GET),
        ["extractors", id, op @ ("start" | "stop" | "duplicate" | "credentials")] => {
            if !is(Method::POST) {
                return No(POST);
            }
            R(match *op {
                "start" => Route::Start(s(id)),
                "stop" => Route::Stop(s(id)),
                "duplicate" => Route::Duplicate(s(id)),
                _ => Route::Credentials(s(id)),
            })
        }
        ["crawlruns"] | ["crawlruns", ""] if get => R(Route::ListCrawlruns),
        ["crawlruns"] | ["crawlruns", ""] => No(GET),
        ["crawlruns", id] if get => R(Route::GetCrawlrun(s(id))),
        ["crawlruns", _] => No(GET),
        ["crawlruns", id, ft] if get => R(Route::CrawlrunFile(s(id), s(ft))),
        ["crawlruns", _, _] => No(GET),
        ["reports"] | ["reports", ""] if get => R(Route::ListReports),
        ["reports"] | ["reports", ""] => No(GET),
        ["reports", id] if get => R(Route::GetReport(s(id))),
        ["reports", id] if is(Method::DELETE) => R(Route::DeleteReport(s(id))),
        ["reports", _] => No("GET, HEAD, DELETE"),
        ["reports", id, "start"] if is(Method::POST) => R(Route::StartReport(s(id))),
        ["reports", _, "start"] => No(POST),
        ["reports", id, "reportruns"] if get => R(Route::ReportRunsFor(s(id))),
        ["reports", _, "reportruns"] => No(GET),
        ["reportruns"] | ["reportruns", ""] if get => R(Route::ListReportRuns),
        ["reportruns"] | ["reportruns", ""] => No(GET),
        ["reportruns", id] if get => R(Route::GetReportRun(s(id))),
        ["reportruns", _] => No(GET),
        ["reportruns", id, ft] if get => R(Route::ReportRunFile(s(id), s(ft))),
        ["reportruns", _, _] => No(GET),
        _ => Resolved::NotFound,
    }
}

/// An id as `format: uuid` means it: the hyphenated 36-character form only
/// (the uuid crate would also take the braced, `urn:uuid:` and bare-hex forms).
fn parse_id(raw: &str, what: &str) -> Result<Uuid, Reply> {
    let malformed = || Reply::bad_request(&format!("malformed {what} id"));
    if raw.len() != 36 {
        return Err(malformed());
    }
    Uuid::parse_str(raw).map_err(|_| malformed())
}

// ---------------------------------------------------------------------------
// Lists.

struct ListParams {
    page: u64,
    per_page: u64,
    sort: SortKey,
    desc: bool,
    paging: Paging,
}

/// How pages past the end are answered.
#[derive(Clone, Copy, Default)]
struct Paging {
    /// Hostile mode `repeat_pages`: every page is page 1, never short.
    repeat: bool,
    /// [`Config::repeat_last_page`]: a page past the end is the last page
    /// again (the legacy dialect's default), not an empty one.
    repeat_last: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum SortKey {
    Created,
    Modified,
    Name,
    Guid,
    State,
}

/// Integers as the spec allows them: `-?[0-9]+`, any size (saturating).
/// Nothing around the digits: `2\x0B` or ` 2` is a string, not an integer,
/// and gets a 400 (schemathesis sends such values to check that).
fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

fn list_params(pairs: &[(String, String)], paging: Paging) -> Result<ListParams, Reply> {
    let page = match param(pairs, "_page") {
        None => 1,
        Some(v) => parse_int(v)
            .ok_or_else(|| Reply::bad_request("_page must be an integer"))?
            .max(1) as u64,
    };
    let per_page = match param(pairs, "_perpage") {
        None => 30,
        Some(v) => parse_int(v)
            .ok_or_else(|| Reply::bad_request("_perpage must be an integer"))?
            .clamp(1, 1000) as u64,
    };
    let desc = match param(pairs, "_sortDirection") {
        None | Some("DESC") => true,
        Some("ASC") => false,
        Some(_) => return Err(Reply::bad_request("_sortDirection must be ASC or DESC")),
    };
    let sort = match param(pairs, "_sort").unwrap_or("meta_created_at") {
        "name" => SortKey::Name,
        "meta_modified_at" | "_meta.modifiedAt" | "modifiedAt" => SortKey::Modified,
        "guid" => SortKey::Guid,
        "state" | "status" => SortKey::State,
        _ => SortKey::Created,
    };
    Ok(ListParams {
        page,
        per_page,
        sort,
        desc,
        paging,
    })
}

/// What lists sort on.
struct Key<'a> {
    created: i64,
    modified: i64,
    name: &'a str,
    guid: Uuid,
    state: &'static str,
}

/// One page of a list, converted for the answer, with `X-Total-Count`
/// saying how many items there are in all (as many REST APIs do), so a client
/// can stop after the last full page.
fn list_reply<'a, T: Clone, U: Serialize>(
    items: Vec<(Key<'a>, T)>,
    p: &ListParams,
    to_json: impl FnMut(T) -> U,
) -> Reply {
    // Hostile mode (repeat_pages): claim a thousand full pages, whatever there is.
    let total = if p.paging.repeat {
        1000 * 1000
    } else {
        items.len() as u64
    };
    let page: Vec<U> = page_of(items, p).into_iter().map(to_json).collect();
    let mut r = Reply::json(StatusCode::OK, &page);
    r.headers.insert("x-total-count", HeaderValue::from(total));
    r
}

/// Sort (ties broken by guid, so pages are stable) and cut one page. With
/// `repeat_pages` (hostile mode) every page is page 1 filled to `_perpage`;
/// with `repeat_last_page` a page past the end is the last page again.
fn page_of<'a, T: Clone>(mut items: Vec<(Key<'a>, T)>, p: &ListParams) -> Vec<T> {
    items.sort_by(|(a, _), (b, _)| {
        let primary = match p.sort {
            SortKey::Created => a.created.cmp(&b.created),
            SortKey::Modified => a.modified.cmp(&b.modified),
            SortKey::Name => a.name.cmp(b.name),
            SortKey::Guid => std::cmp::Ordering::Equal,
            SortKey::State => a.state.cmp(b.state),
        };
        let o = primary.then(a.guid.cmp(&b.guid));
        if p.desc {
            o.reverse()
        } else {
            o
        }
    });
    if p.paging.repeat {
        let first: Vec<T> = items
            .into_iter()
            .take(p.per_page as usize)
            .map(|(_, t)| t)
            .collect();
        return first
            .iter()
            .cycle()
            .take(p.per_page as usize)
            .cloned()
            .collect();
    }
    let len = items.len() as u64;
    let mut skip = (p.page - 1).saturating_mul(p.per_page);
    if skip >= len && p.paging.repeat_last && len > 0 {
        skip = (len - 1) / p.per_page * p.per_page;
    }
    if skip >= len {
        return Vec::new();
    }
    items
        .into_iter()
        .skip(skip as usize)
        .take(p.per_page as usize)
        .map(|(_, t)| t)
        .collect()
}

// ---------------------------------------------------------------------------
// Operations.

async fn dispatch(ctx: Ctx<'_>, route: Route) -> Reply {
    match run_op(ctx, route).await {
        Ok(r) | Err(r) => r,
    }
}

async fn run_op(ctx: Ctx<'_>, route: Route) -> Result<Reply, Reply> {
    let app = ctx.app;
    let dialect = app.dialect();
    let now = now_ms();
    let ok = |v: &dyn ErasedSer| v.reply();
    let paging = Paging {
        repeat: app.hostile().repeat_pages,
        repeat_last: app.config.effective_repeat_last_page(),
    };
    let hide_ms = ctx.new_run_404_ms;
    match route {
        Route::User => Ok(ok(&app.db().user(dialect))),
        Route::Subscription => Ok(ok(&app.db().subscription())),
        Route::ListExtractors => {
            let p = list_params(&ctx.pairs, paging)?;
            let db = app.db();
            let items: Vec<_> = db
                .extractors
                .items
                .iter()
                .filter(|e| !e.archived)
                .map(|e| (ext_key(e), e))
                .collect::<Vec<_>>();
            Ok(list_reply(items, &p, |e| db.extractor(e, dialect)))
        }
        Route::GetExtractor(id) => {
            let id = parse_id(&id, "extractor")?;
            let db = app.db();
            let e = db
                .live_extractor(&id)
                .ok_or_else(|| Reply::not_found("extractor"))?;
            Ok(ok(&db.extractor(e, dialect)))
        }
        Route::DeleteExtractor(id) => {
            let id = parse_id(&id, "extractor")?;
            let mut db = app.db();
            let e = db
                .live_extractor_mut(&id)
                .ok_or_else(|| Reply::not_found("extractor"))?;
            e.archived = true;
            e.modified_ms = now;
            let e = e.clone();
            Ok(ok(&db.extractor(&e, dialect)))
        }
        Route::GetInputs(id) => {
            let id = parse_id(&id, "extractor")?;
            let urls = {
                let db = app.db();
                let e = db
                    .live_extractor(&id)
                    .ok_or_else(|| Reply::not_found("extractor"))?;
                e.spec.inputs.clone()
            };
            let inputs = Inputs {
                urls,
                dialect: match dialect {
                    Dialect::Spec => InputsDialect::Object,
                    Dialect::Legacy => InputsDialect::Lines,
                },
            };
            let (body, ct) = inputs.to_body();
            Ok(Reply::bytes(StatusCode::OK, ct, body.into_bytes()))
        }
        Route::PutInputs(id) => {
            let id = parse_id(&id, "extractor")?;
            if app.db().live_extractor(&id).is_none() {
                return Err(Reply::not_found("extractor"));
            }
            let body = read_body(ctx.body).await?;
            let ndjson = ctx
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("ndjson") || v.contains("jsonl"));
            let inputs = parse_inputs(&body, ndjson).map_err(|m| Reply::bad_request(&m))?;
            {
                let mut db = app.db();
                let e = db
                    .live_extractor_mut(&id)
                    .ok_or_else(|| Reply::not_found("extractor"))?;
                e.spec = Arc::new(Spec {
                    inputs: inputs.urls.clone(),
                    ..(*e.spec).clone()
                });
                e.modified_ms = now;
            }
            let (body, ct) = inputs.to_body();
            Ok(Reply::bytes(StatusCode::OK, ct, body.into_bytes()))
        }
        Route::Start(id) => {
            let id = parse_id(&id, "extractor")?;
            let mut db = app.db();
            let e = db
                .live_extractor(&id)
                .ok_or_else(|| Reply::not_found("extractor"))?;
            if e.archived {
                return Err(Reply::bad_request(
                    "extractor is archived and cannot be run",
                ));
            }
            if let Some(run) = db.active_run(&id, now) {
                return Err(Reply::bad_request(&format!(
                    "extractor already has a run in progress ({run})"
                )));
            }
            let spec = e.spec.clone();
            let guid = Uuid::new_v4();
            insert_run(
                &mut db,
                guid,
                id,
                spec,
                Timeline::new(now, app.config.run_seconds),
            );
            if let Some(r) = db.runs.get_mut(&guid) {
                r.from_start = true;
            }
            Ok(ok(&StartResponse {
                crawl_run_id: Some(guid.to_string()),
                extra: Default::default(),
            }))
        }
        Route::Stop(id) => {
            let id = parse_id(&id, "extractor")?;
            let mut db = app.db();
            if db.live_extractor(&id).is_none() {
                return Err(Reply::not_found("extractor"));
            }
            match db.active_run(&id, now) {
                Some(run) => {
                    if let Some(r) = db.runs.get_mut(&run) {
                        r.timeline.force(RunState::Cancelled, now);
                    }
                    Ok(ok(&StartResponse {
                        crawl_run_id: Some(run.to_string()),
                        extra: Default::default(),
                    }))
                }
                None => Ok(Reply::bytes(
                    StatusCode::OK,
                    "application/json",
                    b"{}".to_vec(),
                )),
            }
        }
        Route::Duplicate(id) => {
            let id = parse_id(&id, "extractor")?;
            let mut db = app.db();
            let e = db
                .live_extractor(&id)
                .ok_or_else(|| Reply::not_found("extractor"))?;
            let guid = Uuid::new_v4();
            let copy = ExtractorRec {
                guid,
                name: format!("{} (copy)", e.name),
                spec: e.spec.clone(),
                tags: e.tags.clone(),
                archived: false,
                created_ms: now,
                modified_ms: now,
                credentials: None,
                credentials_id: None,
            };
            db.extractors.insert(guid, copy.clone());
            Ok(ok(&db.extractor(&copy, dialect)))
        }
        Route::Credentials(id) => {
            let id = parse_id(&id, "extractor")?;
            if app.db().live_extractor(&id).is_none() {
                return Err(Reply::not_found("extractor"));
            }
            let body = read_body(ctx.body).await?;
            let (user, pass) = parse_credentials(&body).map_err(|m| Reply::bad_request(&m))?;
            let mut db = app.db();
            let e = db
                .live_extractor_mut(&id)
                .ok_or_else(|| Reply::not_found("extractor"))?;
            e.credentials = Some((user, pass));
            e.credentials_id = Some(Uuid::new_v4());
            e.modified_ms = now;
            Ok(Reply::empty(StatusCode::OK))
        }
        Route::ListCrawlruns => {
            let p = list_params(&ctx.pairs, paging)?;
            let filter = match param(&ctx.pairs, "extractorId") {
                Some(v) if !v.is_empty() => Some(parse_id(v, "extractor")?),
                _ => None,
            };
            let db = app.db();
            let items: Vec<_> = db
                .runs
                .items
                .iter()
                .filter(|r| filter.is_none_or(|f| r.extractor == f))
                .filter(|r| !r.unknown_yet(now, hide_ms))
                .map(|r| (run_key(r, now), r))
                .collect();
            Ok(list_reply(items, &p, |r| db.crawlrun(r, now, dialect)))
        }
        Route::ListExtractorCrawlruns(id) => {
            let id = parse_id(&id, "extractor")?;
            let p = list_params(&ctx.pairs, paging)?;
            let db = app.db();
            if db.live_extractor(&id).is_none() {
                return Err(Reply::not_found("extractor"));
            }
            let items: Vec<_> = db
                .runs
                .items
                .iter()
                .filter(|r| r.extractor == id && !r.unknown_yet(now, hide_ms))
                .map(|r| (run_key(r, now), r))
                .collect();
            Ok(list_reply(items, &p, |r| db.crawlrun(r, now, dialect)))
        }
        Route::GetCrawlrun(id) => {
            let id = parse_id(&id, "crawl run")?;
            let db = app.db();
            let r = db
                .runs
                .get(&id)
                .filter(|r| !r.unknown_yet(now, hide_ms))
                .ok_or_else(|| Reply::not_found("crawl run"))?;
            Ok(ok(&db.crawlrun(r, now, dialect)))
        }
        Route::CrawlrunFile(id, ft) => {
            let id = parse_id(&id, "crawl run")?;
            if app
                .db()
                .runs
                .get(&id)
                .is_some_and(|r| r.unknown_yet(now, hide_ms))
            {
                return Err(Reply::not_found("crawl run"));
            }
            let (body, ct, name) = crawlrun_file(app, &id, &ft)?;
            if dialect == Dialect::Legacy {
                return Ok(redirect(app, "crawlruns", &id, &ft));
            }
            Ok(serve_file(&ctx.headers, body, ct, &name, ctx.ignore_range))
        }
        Route::ListReports => {
            let p = list_params(&ctx.pairs, paging)?;
            let db = app.db();
            let items: Vec<_> = db
                .reports
                .items
                .iter()
                .filter(|r| !r.deleted)
                .map(|r| {
                    let k = Key {
                        created: r.created_ms,
                        modified: r.modified_ms,
                        name: &r.name,
                        guid: r.guid,
                        state: "",
                    };
                    (k, r)
                })
                .collect();
            Ok(list_reply(items, &p, |r| db.report(r, dialect)))
        }
        Route::GetReport(id) => {
            let id = parse_id(&id, "report")?;
            let db = app.db();
            let r = db
                .reports
                .get(&id)
                .filter(|r| !r.deleted)
                .ok_or_else(|| Reply::not_found("report"))?;
            Ok(ok(&db.report(r, dialect)))
        }
        Route::DeleteReport(id) => {
            let id = parse_id(&id, "report")?;
            let mut db = app.db();
            let r = db
                .reports
                .get_mut(&id)
                .filter(|r| !r.deleted)
                .ok_or_else(|| Reply::not_found("report"))?;
            r.deleted = true;
            r.modified_ms = now;
            Ok(Reply::empty(StatusCode::OK))
        }
        Route::StartReport(id) => {
            let id = parse_id(&id, "report")?;
            let mut db = app.db();
            let r = db
                .reports
                .get(&id)
                .filter(|r| !r.deleted)
                .ok_or_else(|| Reply::not_found("report"))?
                .clone();
            let spec = db
                .extractors
                .get(&r.extractor)
                .map(|e| e.spec.clone())
                .unwrap_or_else(|| {
                    Arc::new(Spec {
                        fields: Vec::new(),
                        inputs: Vec::new(),
                        result: super::state::ResultKind::Rows,
                    })
                });
            let guid = Uuid::new_v4();
            db.report_runs.insert(
                guid,
                super::state::ReportRunRec {
                    guid,
                    report: r.guid,
                    extractor: r.extractor,
                    name: r.name.clone(),
                    kind: r.kind.clone(),
                    change: r.is_change(),
                    config_id: r.config_id,
                    spec,
                    timeline: Timeline::new(now, app.config.run_seconds),
                    status_override: None,
                },
            );
            Ok(ok(&serde_json::json!({ "reportRunId": guid.to_string() })))
        }
        Route::ReportRunsFor(id) => {
            let id = parse_id(&id, "report")?;
            let p = list_params(&ctx.pairs, paging)?;
            let db = app.db();
            if db.reports.get(&id).filter(|r| !r.deleted).is_none() {
                return Err(Reply::not_found("report"));
            }
            let items: Vec<_> = db
                .report_runs
                .items
                .iter()
                .filter(|r| r.report == id)
                .map(|r| (rr_key(r, now), r))
                .collect();
            Ok(list_reply(items, &p, |r| db.report_run(r, now, dialect)))
        }
        Route::ListReportRuns => {
            let p = list_params(&ctx.pairs, paging)?;
            let db = app.db();
            let items: Vec<_> = db
                .report_runs
                .items
                .iter()
                .filter(|r| db.reports.get(&r.report).is_some_and(|rep| !rep.deleted))
                .map(|r| (rr_key(r, now), r))
                .collect();
            Ok(list_reply(items, &p, |r| db.report_run(r, now, dialect)))
        }
        Route::GetReportRun(id) => {
            let id = parse_id(&id, "report run")?;
            let db = app.db();
            let r = db
                .report_runs
                .get(&id)
                .ok_or_else(|| Reply::not_found("report run"))?;
            Ok(ok(&db.report_run(r, now, dialect)))
        }
        Route::ReportRunFile(id, ft) => {
            let id = parse_id(&id, "report run")?;
            let (body, ct, name) = reportrun_file(app, &id, &ft)?;
            if dialect == Dialect::Legacy {
                return Ok(redirect(app, "reportruns", &id, &ft));
            }
            Ok(serve_file(&ctx.headers, body, ct, &name, ctx.ignore_range))
        }
    }
}

/// Serialize-and-reply through a trait object (keeps `run_op` short).
trait ErasedSer {
    fn reply(&self) -> Reply;
}

impl<T: Serialize> ErasedSer for T {
    fn reply(&self) -> Reply {
        Reply::json(StatusCode::OK, self)
    }
}

fn ext_key(e: &ExtractorRec) -> Key<'_> {
    Key {
        created: e.created_ms,
        modified: e.modified_ms,
        name: &e.name,
        guid: e.guid,
        state: "",
    }
}

fn run_key(r: &RunRec, now: i64) -> Key<'static> {
    let p = r.timeline.phase(now);
    Key {
        created: r.timeline.started_ms,
        modified: p.changed_ms,
        name: "",
        guid: r.guid,
        state: p.state.as_str(),
    }
}

fn rr_key(r: &super::state::ReportRunRec, now: i64) -> Key<'_> {
    let p = r.timeline.phase(now);
    Key {
        created: r.timeline.started_ms,
        modified: p.changed_ms,
        name: &r.name,
        guid: r.guid,
        state: p.state.as_str(),
    }
}

/// Read a request body, 413 beyond [`MAX_BODY`].
pub(crate) async fn read_body(body: Body) -> Result<Vec<u8>, Reply> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Reply::bad_request("could not read the request body"))?;
        if out.len() + chunk.len() > MAX_BODY {
            return Err(Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body over 1 MiB",
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Inputs in either dialect, validated strictly: `{"_url": string}` (other
/// keys allowed), or JSON lines of such objects.
fn parse_inputs(body: &[u8], ndjson: bool) -> Result<Inputs, String> {
    use serde_json::Value;
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_owned())?;
    if text.trim().is_empty() {
        return Err("body must be a JSON object with _url".into());
    }
    fn urls_of(v: &Value, need_url: bool) -> Result<Vec<String>, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| "inputs must be a JSON object".to_owned())?;
        match obj.get("_url") {
            Some(Value::String(s)) => Ok(s
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()),
            Some(_) => Err("_url must be a string".into()),
            None if need_url => Err("each line needs a _url".into()),
            None => Ok(Vec::new()),
        }
    }
    if !ndjson {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return Ok(Inputs {
                urls: urls_of(&v, false)?,
                dialect: InputsDialect::Object,
            });
        }
    }
    let mut urls = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        urls.extend(urls_of(&v, true)?);
    }
    Ok(Inputs {
        urls,
        dialect: InputsDialect::Lines,
    })
}

fn parse_credentials(body: &[u8]) -> Result<(String, String), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "body must be JSON".to_owned())?;
    let user = v.get("username").and_then(|u| u.as_str());
    let pass = v.get("password").and_then(|p| p.as_str());
    match (user, pass) {
        (Some(u), Some(p)) => Ok((u.to_owned(), p.to_owned())),
        _ => Err("body must have string username and password".into()),
    }
}

// ---------------------------------------------------------------------------
// Downloads.

/// A crawl run's file, or the 404 that answers for it.
fn crawlrun_file(
    app: &App,
    id: &Uuid,
    ft: &str,
) -> Result<(FileBody, &'static str, String), Reply> {
    let kind = CrawlrunFile::from_api_name(ft).ok_or_else(|| Reply::not_found("file type"))?;
    let (spec, seed, started, state) = {
        let db = app.db();
        let r = db
            .runs
            .get(id)
            .ok_or_else(|| Reply::not_found("crawl run"))?;
        (
            r.spec.clone(),
            run_seed(&r.guid),
            r.timeline.started_ms,
            r.timeline.phase(now_ms()).state,
        )
    };
    if state != RunState::Finished {
        return Err(Reply::not_found(&format!(
            "result file (the run is {})",
            state.as_str()
        )));
    }
    let body = files::crawlrun_file(&spec, seed, kind, started)
        .map_err(|e| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    Ok((
        body,
        files::crawlrun_content_type(kind),
        format!("{id}-{}", kind.file_name()),
    ))
}

fn reportrun_file(
    app: &App,
    id: &Uuid,
    ft: &str,
) -> Result<(FileBody, &'static str, String), Reply> {
    let kind = ReportRunFile::from_api_name(ft).ok_or_else(|| Reply::not_found("file type"))?;
    let (spec, seed, started, state, change, partial) = {
        let db = app.db();
        let r = db
            .report_runs
            .get(id)
            .ok_or_else(|| Reply::not_found("report run"))?;
        (
            r.spec.clone(),
            run_seed(&r.guid),
            r.timeline.started_ms,
            r.timeline.phase(now_ms()).state,
            r.change,
            r.status_override.clone(),
        )
    };
    // A forced status has files of its own bytes (see `status_override`).
    let seed = match &partial {
        Some(status) => status
            .bytes()
            .fold(seed, |h, b| super::state::mix(h ^ u64::from(b))),
        None => seed,
    };
    if state != RunState::Finished && partial.is_none() {
        return Err(Reply::not_found(
            "result file (the report run is not finished)",
        ));
    }
    let body = files::reportrun_file(&spec, seed, change, kind, started)
        .map_err(|e| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e))?
        .ok_or_else(|| Reply::not_found("json result (only Change reports have one)"))?;
    Ok((
        body,
        files::reportrun_content_type(kind),
        format!("{id}-{}", kind.file_name()),
    ))
}

fn redirect(app: &App, kind: &str, id: &Uuid, ft: &str) -> Reply {
    let token = app.file_token(kind, id, ft);
    let location = format!("{}/{token}/{kind}/{id}/{ft}", app.files_url);
    let mut r = Reply::empty(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers.insert(header::LOCATION, v);
    }
    r
}

enum RangeReq {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; anything else (several ranges, other units, syntax
/// errors, `a > b`) is ignored and the whole file served, as RFC 9110 allows.
fn parse_range(h: &str, len: u64) -> RangeReq {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Whole;
    };
    if spec.contains(',') {
        return RangeReq::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (num(a), num(b), b.trim().is_empty()) {
        (Some(a), None, true) => {
            if a >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(a, len)
            }
        }
        (Some(a), Some(b), _) => {
            if a > b {
                RangeReq::Whole
            } else if a >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(a, b.saturating_add(1).min(len))
            }
        }
        (None, Some(n), _) if a.trim().is_empty() => {
            if n == 0 || len == 0 {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(len.saturating_sub(n), len)
            }
        }
        _ => RangeReq::Whole,
    }
}

fn etag_of(body: &FileBody, name: &str) -> String {
    let n = body.len();
    let h = super::state::h64(&[name.as_bytes(), &n.to_le_bytes()]);
    format!("\"{h:016x}-{n:x}\"")
}

/// A result file with Range, ETag and the right headers. `ignore_range`
/// (hostile mode): always the whole file, 200, whatever `Range` asks.
pub(crate) fn serve_file(
    headers: &HeaderMap,
    body: FileBody,
    content_type: &'static str,
    name: &str,
    ignore_range: bool,
) -> Reply {
    let len = body.len();
    let etag = etag_of(&body, name);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        _ if ignore_range => RangeReq::Whole,
        Some(r) if if_range_ok => parse_range(r, len),
        _ => RangeReq::Whole,
    };
    match range {
        RangeReq::Whole => Reply {
            status: StatusCode::OK,
            headers: h,
            payload: Payload::File {
                body,
                start: 0,
                end: len,
            },
        },
        RangeReq::Part(a, b) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{}/{len}", b - 1)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            Reply {
                status: StatusCode::PARTIAL_CONTENT,
                headers: h,
                payload: Payload::File {
                    body,
                    start: a,
                    end: b,
                },
            }
        }
        RangeReq::Unsatisfiable => {
            let mut r = Reply::error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers.insert(header::CONTENT_RANGE, v);
            }
            r
        }
    }
}

/// The files listener: `/<token>/<crawlruns|reportruns>/<id>/<type>`, no key.
async fn files_handler(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let (parts, _body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let head = parts.method == Method::HEAD;
    let gzip_ok = accepts_gzip(&parts.headers);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (operation, target) = match segs.as_slice() {
        [token, kind @ ("crawlruns" | "reportruns"), id, ft] => (
            if *kind == "crawlruns" {
                "getCrawlrunFile"
            } else {
                "getReportRunFile"
            },
            Some((*token, *kind, *id, *ft)),
        ),
        _ => ("unknown", None),
    };
    let mut truncate = false;
    let mut bytes_per_sec = app.config.conn_bytes_per_sec;
    let hostile = app.hostile();
    let reply = match target {
        None => Reply::not_found("file"),
        Some(_) if !(parts.method == Method::GET || head) => {
            let mut r = Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Some((token, kind, id, ft)) => {
            let decision = app.faults.decide(operation);
            match pre_faults(&decision, &conn).await {
                Some(r) => r,
                None if decision.drop => {
                    log_request(
                        &app,
                        &parts.method,
                        &path,
                        &raw_query,
                        0,
                        operation,
                        "files",
                    );
                    return Response::new(Body::empty());
                }
                None => {
                    truncate = decision.truncate;
                    bytes_per_sec = decision.bytes_per_sec.or(bytes_per_sec);
                    match Uuid::parse_str(id) {
                        Ok(uid) if app.file_token(kind, &uid, ft) == token => {
                            let file = if kind == "crawlruns" {
                                crawlrun_file(&app, &uid, ft)
                            } else {
                                reportrun_file(&app, &uid, ft)
                            };
                            match file {
                                Ok((body, ct, name)) => serve_file(
                                    &parts.headers,
                                    body,
                                    ct,
                                    &name,
                                    hostile.ignore_range && !head,
                                ),
                                Err(r) => r,
                            }
                        }
                        _ => Reply::not_found("file"),
                    }
                }
            }
        }
    };
    let status = reply.status.as_u16();
    let mut resp = finish(reply, head, gzip_ok, truncate, bytes_per_sec);
    if let (Some(claimed), Some(_)) = (hostile.lying_length, target) {
        resp = hostile::lie_about_length(resp, claimed, head);
    }
    log_request(
        &app,
        &parts.method,
        &path,
        &raw_query,
        status,
        operation,
        "files",
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| match parse_range(h, 100) {
            RangeReq::Whole => "whole".to_owned(),
            RangeReq::Part(a, b) => format!("{a}..{b}"),
            RangeReq::Unsatisfiable => "416".to_owned(),
        };
        assert_eq!(p("bytes=0-9"), "0..10");
        assert_eq!(p("bytes=90-"), "90..100");
        assert_eq!(p("bytes=-10"), "90..100");
        assert_eq!(p("bytes=-1000"), "0..100");
        assert_eq!(p("bytes=50-1000"), "50..100");
        assert_eq!(p("bytes=100-"), "416");
        assert_eq!(p("bytes=-0"), "416");
        assert_eq!(p("bytes=9-3"), "whole");
        assert_eq!(p("bytes=0-1,3-4"), "whole");
        assert_eq!(p("items=0-1"), "whole");
        assert_eq!(p("bytes=x-1"), "whole");
    }

    #[test]
    fn query_decoding_and_gzip_negotiation() {
        assert_eq!(decode("a%20b+c%2"), "a b c%2");
        assert_eq!(decode("%5Fapikey"), "_apikey");
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

    #[test]
    fn ints_saturate() {
        assert_eq!(parse_int("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("2\u{b}"), None);
        assert_eq!(parse_int(" 2"), None);
        assert_eq!(parse_int("+2"), None);
        assert_eq!(parse_int(""), None);
    }
}
