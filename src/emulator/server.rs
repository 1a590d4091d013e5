//! The two listeners and the pipeline every request goes through.
//!
//! An API request: hooks (`/_emulator/`) are handed off first, untouched by
//! what follows; then auth (401), the faults decided before the operation
//! (latency, drop, 500, 429, a fixed status), the operation itself (see
//! `routes`), `respond::finish` (gzip, `Content-Length`, the bandwidth cap,
//! truncation, HEAD), the hostile `lying_length`; then the request log. The
//! files listener (legacy downloads, `/<token>/<kind>/<id>/<type>`, no key)
//! goes through the same steps, with the token instead of the key.
//!
//! Subtle points:
//! - The operationId is known before auth, so the log entry of a refused
//!   request names it too; a path that is no operation is `unknown` and
//!   never faulted.
//! - A dropped connection is logged with status 0 and answered by nothing:
//!   `pre_faults` cancels the connection's token, which closes the socket.
//! - The hostile modes are read once per request, so a request sees one set
//!   of them from start to end.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::app::{App, Seen};
use super::conn::{Conn, KillableListener};
use super::faults::Decision;
use super::hooks;
use super::hostile::{self, Hostile};
use super::query::{param, query_pairs};
use super::reply::{Payload, Reply, MAX_BODY};
use super::respond::{accepts_gzip, finish, Delivery};
use super::routes::downloads::{crawlrun_file, reportrun_file, serve_file};
use super::routes::{dispatch, resolve, Ctx, Resolved};

/// Serve the API on `listener` (over TLS with an acceptor) until `stop`.
pub(crate) async fn serve_api(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    stop: CancellationToken,
) {
    let router = Router::new().fallback(api_handler).with_state(app);
    serve(
        KillableListener::new(listener, stop.clone(), tls),
        router,
        stop,
    )
    .await;
}

/// Serve the files listener (legacy downloads) likewise.
pub(crate) async fn serve_files(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    stop: CancellationToken,
) {
    let router = Router::new().fallback(files_handler).with_state(app);
    serve(
        KillableListener::new(listener, stop.clone(), tls),
        router,
        stop,
    )
    .await;
}

async fn serve(listener: KillableListener, router: Router, stop: CancellationToken) {
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

impl<'a> Seen<'a> {
    fn of(parts: &'a Parts, operation: &'static str, listener: &'static str) -> Seen<'a> {
        Seen {
            method: &parts.method,
            path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or(""),
            range: parts
                .headers
                .get(axum::http::header::RANGE)
                .and_then(|v| v.to_str().ok()),
            operation,
            listener,
        }
    }

    fn log(&self, app: &App, status: u16) {
        app.log_request(self, status);
    }
}

/// What the faults decided before the operation leaves of a request.
enum Gate {
    /// Answer with this instead of the operation.
    Answer(Reply),
    /// The connection was dropped: answer nothing.
    Dropped,
    /// Go on to the operation.
    Pass,
}

/// Apply the faults decided before the operation; when the request goes on,
/// `d` takes the ones that act on the answer (truncation, bandwidth cap).
async fn gate(decision: &Decision, conn: &Conn, d: &mut Delivery) -> Gate {
    match pre_faults(decision, conn).await {
        Some(r) => Gate::Answer(r),
        None if decision.drop => Gate::Dropped,
        None => {
            d.truncate = decision.truncate;
            d.bytes_per_sec = decision.bytes_per_sec.or(d.bytes_per_sec);
            Gate::Pass
        }
    }
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

/// How an answer to this request is delivered before any fault.
fn delivery(app: &App, method: &Method, headers: &HeaderMap) -> Delivery {
    Delivery {
        head: *method == Method::HEAD,
        gzip_ok: accepts_gzip(headers),
        truncate: false,
        bytes_per_sec: app.config.conn_bytes_per_sec,
    }
}

/// The end of every request but a dropped one: the response, the hostile
/// `lying_length` when `lie` has it, and the log entry.
fn send(app: &App, seen: &Seen<'_>, reply: Reply, d: &Delivery, lie: Option<u64>) -> Response {
    let status = reply.status.as_u16();
    let mut resp = finish(reply, d);
    if let Some(claimed) = lie {
        resp = hostile::lie_about_length(resp, claimed, d.head);
    }
    seen.log(app, status);
    resp
}

/// The end of a dropped request: logged with status 0, no answer.
fn dropped(app: &App, seen: &Seen<'_>) -> Response {
    seen.log(app, 0);
    Response::new(Body::empty())
}

/// 401 unless the key is the one accepted (and not revoked by the hostile
/// `unauthorized`).
fn refuse(app: &App, hostile: &Hostile, pairs: &[(String, String)]) -> Option<Reply> {
    if hostile.unauthorized {
        return Some(Reply::error(
            StatusCode::UNAUTHORIZED,
            "invalid API key (_apikey): the key was revoked",
        ));
    }
    if param(pairs, "_apikey") != Some(app.config.api_key.as_str()) {
        return Some(Reply::error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key (_apikey)",
        ));
    }
    None
}

async fn api_handler(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return hooks::handle(&app, &parts.method, path, body).await;
    }
    let pairs = query_pairs(parts.uri.query().unwrap_or(""));
    let resolved = resolve(&parts.method, path);
    let operation = match &resolved {
        Resolved::Route(r) => r.op(),
        _ => "unknown",
    };
    let seen = Seen::of(&parts, operation, "api");
    let mut d = delivery(&app, &parts.method, &parts.headers);
    let hostile = app.hostile();
    let reply = match refuse(&app, &hostile, &pairs) {
        Some(r) => r,
        None => {
            let decision = match resolved {
                Resolved::Route(_) => app.faults.decide(operation),
                _ => Decision::default(),
            };
            match gate(&decision, &conn, &mut d).await {
                Gate::Answer(r) => r,
                Gate::Dropped => return dropped(&app, &seen),
                Gate::Pass => {
                    let too_big = body_too_big(&parts.headers);
                    let ctx = Ctx::new(
                        &app,
                        pairs,
                        parts.headers.clone(),
                        body,
                        hostile.ignore_range && !d.head,
                        decision
                            .new_run_404_ms
                            .unwrap_or_else(|| app.config.effective_new_run_404_ms()),
                    );
                    operate(resolved, ctx, too_big, hostile.wrong_types).await
                }
            }
        }
    };
    let lie = hostile
        .lying_length
        .filter(|_| matches!(operation, "getCrawlrunFile" | "getReportRunFile"));
    send(&app, &seen, reply, &d, lie)
}

/// Whether the request announces a body over [`MAX_BODY`].
fn body_too_big(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64)
}

/// The answer of a request let through by auth and the faults.
async fn operate(resolved: Resolved, ctx: Ctx<'_>, too_big: bool, wrong_types: bool) -> Reply {
    match resolved {
        _ if too_big => Reply::too_large(),
        Resolved::NotFound => Reply::not_found("resource"),
        Resolved::MethodNotAllowed(allow) => Reply::method_not_allowed(allow),
        Resolved::Route(route) => {
            let reply = dispatch(ctx, route).await;
            if wrong_types {
                spoil_reply(reply)
            } else {
                reply
            }
        }
    }
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

/// A path of the files listener: `/<token>/<crawlruns|reportruns>/<id>/<type>`.
struct FileTarget<'a> {
    token: &'a str,
    kind: &'a str,
    id: &'a str,
    ft: &'a str,
}

impl<'a> FileTarget<'a> {
    fn parse(path: &'a str) -> Option<FileTarget<'a>> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            [token, kind @ ("crawlruns" | "reportruns"), id, ft] => Some(FileTarget {
                token,
                kind,
                id,
                ft,
            }),
            _ => None,
        }
    }

    fn operation(&self) -> &'static str {
        if self.kind == "crawlruns" {
            "getCrawlrunFile"
        } else {
            "getReportRunFile"
        }
    }

    /// The file, when the token is the one the API listener gave for it.
    fn answer(&self, app: &App, headers: &HeaderMap, ignore_range: bool) -> Reply {
        match Uuid::parse_str(self.id) {
            Ok(uid) if app.file_token(self.kind, &uid, self.ft) == self.token => {
                let file = if self.kind == "crawlruns" {
                    crawlrun_file(app, &uid, self.ft)
                } else {
                    reportrun_file(app, &uid, self.ft)
                };
                match file {
                    Ok(file) => serve_file(headers, file, ignore_range),
                    Err(r) => r,
                }
            }
            _ => Reply::not_found("file"),
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
    let target = FileTarget::parse(parts.uri.path());
    let operation = target.as_ref().map_or("unknown", FileTarget::operation);
    let seen = Seen::of(&parts, operation, "files");
    let mut d = delivery(&app, &parts.method, &parts.headers);
    let hostile = app.hostile();
    let reply = match &target {
        None => Reply::not_found("file"),
        Some(_) if !(parts.method == Method::GET || d.head) => {
            Reply::method_not_allowed("GET, HEAD")
        }
        Some(t) => {
            let decision = app.faults.decide(seen.operation);
            match gate(&decision, &conn, &mut d).await {
                Gate::Answer(r) => r,
                Gate::Dropped => return dropped(&app, &seen),
                Gate::Pass => t.answer(&app, &parts.headers, hostile.ignore_range && !d.head),
            }
        }
    };
    let lie = hostile.lying_length.filter(|_| target.is_some());
    send(&app, &seen, reply, &d, lie)
}
