//! The transport: one JSON call from URL to checked body, with the rules
//! every request obeys, JSON calls and downloads alike.
//!
//! What is subtle here:
//! - **The key goes to the API host only.** reqwest's own redirect following
//!   is off; [`Client::send_following`] follows 3xx itself and adds
//!   `_apikey` only when the target has the API's scheme, host and port,
//!   stripping any `_apikey` a Location carries to another host. A signed
//!   storage URL never sees the key. Only GET and HEAD follow redirects: a
//!   POST or PUT answered with a 3xx fails, rather than being re-sent
//!   somewhere the caller never named.
//! - **Timeouts are ours.** The reqwest client has only a connect timeout;
//!   each JSON attempt is bounded by `attempt_timeout` (headers and body), the
//!   whole call (slot wait, attempts, sleeps) by `call_deadline`.
//! - **Concurrency.** One semaphore of `max_concurrent` slots is shared by
//!   every clone. A slot is held for one attempt, never across a backoff
//!   sleep. Downloads hold a slot for as long as they stream, so they also
//!   take one of `max_concurrent_downloads` first (see `download/`):
//!   metadata calls (an `ls`) always find a free slot however many files
//!   are being read.
//! - **Counted once.** A failed call is counted and logged in one place,
//!   [`Client::with_retries`], whatever its attempts did; each request to
//!   the API host is counted as it is sent and again, by status, as it ends
//!   (see `crate::api::stats`).
//! - **An error body is a nicety.** Its message is read for at most two
//!   seconds and 64 KiB; a broken one must not hide the status.

use super::body::MAX_ERROR_BODY;
use super::client::Client;
use super::error::{closed, Error};
use super::models::ErrorBody;
use super::operation::Operation;
use super::retry;
use super::stats::{Answering, Outcome};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::time::Duration;
use tokio::time::{timeout, timeout_at, Instant};

/// The largest JSON answer read (a page of 1,000 extractors is about 1 MB).
const MAX_JSON_BODY: usize = 64 << 20;

/// A successful answer to a JSON call.
pub(crate) struct Answer {
    pub content_type: Option<String>,
    pub body: Bytes,
    /// `X-Total-Count` of a list answer, when the server sends one.
    pub total: Option<u64>,
}

/// The request body of a PUT or POST.
#[derive(Clone)]
pub(crate) struct Payload {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

impl Client {
    /// The URL of an API path, without the key.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Whether `url` is on the API host (same scheme, host and port), the only
    /// place the key may go.
    pub(crate) fn is_api_origin(&self, url: &Url) -> bool {
        let base = &self.inner.base;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    /// One JSON call, with retries, inside its deadline.
    pub(crate) async fn call(
        &self,
        op: Operation,
        segments: &[&str],
        query: &[(&str, &str)],
        payload: Option<Payload>,
    ) -> Result<Answer, Error> {
        let url = self.url(segments, query);
        self.with_retries(op, |_| self.attempt_json(op, &url, payload.clone()))
            .await
    }

    /// Run `attempt` with retries (see `crate::api::retry`), the whole inside the
    /// call deadline; a failure is counted and logged once, here.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        op: Operation,
        attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.cfg.call_deadline;
        let attempts = retry::run(
            op,
            &inner.policy,
            deadline,
            || inner.counters.retry(),
            attempt,
        );
        let result = match timeout_at(deadline, attempts).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                op,
                after: inner.cfg.call_deadline,
            }),
        };
        if let Err(e) = &result {
            inner.counters.error(op);
            log_failure(e);
        }
        result
    }

    /// One attempt of a JSON call: a connection slot, the request (following
    /// redirects), the whole body, all within `attempt_timeout`.
    pub(super) async fn attempt_json(
        &self,
        op: Operation,
        url: &Url,
        payload: Option<Payload>,
    ) -> Result<Answer, Error> {
        let _slot = self.inner.slots.acquire().await.map_err(|_| closed(op))?;
        let _in_flight = self.inner.counters.call_started();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/x-ndjson;q=0.9, */*;q=0.1"),
        );
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let attempt = async {
            let resp = self
                .send_following(op, op.method(), url.clone(), headers, payload)
                .await?;
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let total = resp
                .headers()
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = self.read_body(op, resp, MAX_JSON_BODY).await?;
            Ok(Answer {
                content_type,
                body,
                total,
            })
        };
        match timeout(self.inner.cfg.attempt_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                op,
                after: self.inner.cfg.attempt_timeout,
            }),
        }
    }

    /// Send one request and follow redirects by hand: `_apikey` only to the
    /// API host, never to another. Returns a 2xx response; any other final
    /// status becomes [`Error::Status`].
    pub(crate) async fn send_following(
        &self,
        op: Operation,
        method: Method,
        mut url: Url,
        headers: HeaderMap,
        payload: Option<Payload>,
    ) -> Result<reqwest::Response, Error> {
        let mut hops = 0u32;
        loop {
            let resp = self
                .send_hop(op, &method, &mut url, &headers, payload.as_ref())
                .await?;
            let status = resp.status();
            if is_followed_redirect(status) && (method == Method::GET || method == Method::HEAD) {
                hops += 1;
                url = self.redirect_target(op, &resp, &url, hops)?;
                continue;
            }
            if !status.is_success() {
                return Err(self.status_error(op, resp).await);
            }
            return Ok(resp);
        }
    }

    /// One request of a redirect chain: any `_apikey` in `url` removed and
    /// the key added only for the API host; counted (a call to the API
    /// host, a redirect elsewhere), timed and logged by path, never by URL.
    async fn send_hop(
        &self,
        op: Operation,
        method: &Method,
        url: &mut Url,
        headers: &HeaderMap,
        payload: Option<&Payload>,
    ) -> Result<reqwest::Response, Error> {
        let inner = &self.inner;
        strip_key(url);
        let on_api = self.is_api_origin(url);
        let mut rb = inner
            .http
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if on_api {
            rb = rb.query(&[("_apikey", inner.key.expose())]);
            inner.counters.call(op);
        } else {
            inner.counters.redirect();
        }
        if let Some(p) = payload {
            rb = rb
                .header(header::CONTENT_TYPE, p.content_type)
                .body(p.bytes.clone());
        }
        let started = Instant::now();
        let answering = on_api.then(|| Answering::new(&inner.counters, op));
        let resp = match rb.send().await {
            Ok(resp) => resp,
            Err(e) => {
                if let Some(a) = answering {
                    a.end(Outcome::Error);
                }
                return Err(self.transport_error(op, e));
            }
        };
        let status = resp.status();
        if let Some(a) = answering {
            a.end(Outcome::Status(status.as_u16()));
        }
        tracing::debug!(
            %op,
            %method,
            host = if on_api { "api" } else { url.host_str().unwrap_or("") },
            path = url.path(),
            status = status.as_u16(),
            elapsed = ?started.elapsed(),
            "answer"
        );
        Ok(resp)
    }

    /// Where redirect number `hops` (a 3xx to `url`) leads: its Location,
    /// resolved against `url`, if there is one, it is HTTP(S), and the hop
    /// is within `max_redirects`.
    fn redirect_target(
        &self,
        op: Operation,
        resp: &reqwest::Response,
        url: &Url,
        hops: u32,
    ) -> Result<Url, Error> {
        let max = self.inner.cfg.max_redirects;
        let Some(location) = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(Error::Protocol {
                op,
                detail: format!("HTTP {} without a Location", resp.status()),
            });
        };
        if hops > max {
            return Err(Error::Protocol {
                op,
                detail: format!("more than {max} redirects"),
            });
        }
        let target = url.join(location).map_err(|_| Error::Protocol {
            op,
            detail: "a redirect to an unreadable Location".into(),
        })?;
        if !matches!(target.scheme(), "http" | "https") {
            return Err(Error::Protocol {
                op,
                detail: "a redirect to a non-HTTP URL".into(),
            });
        }
        // Down from https to http, what was private would travel in the
        // clear (and a later hop could carry the key): refused, as curl
        // and browsers refuse it.
        if url.scheme() == "https" && target.scheme() == "http" {
            return Err(Error::Protocol {
                op,
                detail: "refused a redirect from https to plain http".into(),
            });
        }
        Ok(target)
    }

    /// A reqwest failure as an [`Error`] of the right kind, key-free.
    pub(crate) fn transport_error(&self, op: Operation, e: reqwest::Error) -> Error {
        if let Some(detail) = super::tls::diagnose(&e) {
            return Error::Tls { op, detail };
        }
        let connect = e.is_connect();
        let timed_out = e.is_timeout();
        let detail = self.inner.redactor.describe(e);
        if connect {
            Error::Connect { op, detail }
        } else if timed_out {
            Error::Timeout {
                op,
                after: self.inner.cfg.attempt_timeout,
            }
        } else {
            Error::Transport { op, detail }
        }
    }

    /// An error status, with the message of its Error body and its Retry-After.
    pub(crate) async fn status_error(&self, op: Operation, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry::parse_retry_after);
        // The body is only a nicety: a broken one must not hide the status.
        let body = match timeout(
            Duration::from_secs(2),
            self.read_body(op, resp, MAX_ERROR_BODY),
        )
        .await
        {
            Ok(Ok(b)) => b,
            _ => Bytes::new(),
        };
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .and_then(|b| b.message.or(b.error))
            .or_else(|| {
                let text = String::from_utf8_lossy(&body);
                let line = text.lines().next().unwrap_or("").trim();
                (!line.is_empty()).then(|| line.to_owned())
            })
            .map(|m| self.inner.redactor.message(&m));
        Error::Status {
            op,
            status,
            message,
            retry_after,
        }
    }
}

fn is_followed_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Remove any `_apikey` a URL already carries (a Location copied from
/// the request): the key is added per hop, and only for the API host.
fn strip_key(url: &mut Url) {
    if url.query().is_none() {
        return;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "_apikey")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let had_key = url.query_pairs().any(|(k, _)| k == "_apikey");
    if !had_key {
        return;
    }
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
}

/// Log a failed call. Only a refused key is logged loudly here, as the
/// diagnosis it is; any other failure is the caller's to report (the mount
/// logs each failed file operation once, naming it), so here it is debug.
pub(crate) fn log_failure(e: &Error) {
    match e.status() {
        Some(401) => tracing::error!(error = %e, "the API key was refused"),
        _ => tracing::debug!(error = %e, "call failed"),
    }
}
