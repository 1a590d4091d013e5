//! `api::Error`: one error type for every call (and `closed`, the error of
//! a call made while the client shuts down), and key redaction. (Which
//! errno a failed call gives a file operation is the filesystem's business:
//! `fs/error.rs`.)
//!
//! The subtle part is the API key. It travels in the query string
//! (`?_apikey=...`), and `reqwest::Error`'s Display prints the request URL,
//! query included; a server may also echo the URL in an error body. So no
//! foreign error text is ever stored as is: everything that enters an
//! [`Error`] goes through [`Redactor::redact`] first (reqwest errors through
//! [`Redactor::describe`], which also drops the URL), and the error keeps
//! only that redacted text. Display and Debug of an `Error` therefore cannot
//! show the key, whatever the caller does with it. This is the one place
//! where redaction happens; the client logs only paths, never URLs with a
//! query.

use super::operation::Operation;
use std::error::Error as _;
use std::fmt;
use std::time::Duration;

/// The longest server message kept in an error (the rest is cut).
const MAX_MESSAGE: usize = 300;

/// An API key. Its Debug and Display print `<redacted>`, so that a config
/// struct can derive Debug and be logged without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the query string and nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for ApiKey {
    fn from(s: String) -> ApiKey {
        ApiKey(s)
    }
}

impl From<&str> for ApiKey {
    fn from(s: &str) -> ApiKey {
        ApiKey(s.to_owned())
    }
}

/// The one place where foreign text is made safe to show.
#[derive(Clone)]
pub(crate) struct Redactor {
    /// The key as written and as it appears percent-encoded in a URL.
    forms: Vec<String>,
}

impl Redactor {
    pub(crate) fn new(key: &ApiKey) -> Redactor {
        let mut forms = Vec::new();
        if !key.0.is_empty() {
            forms.push(key.0.clone());
            let encoded = form_encode(&key.0);
            if encoded != key.0 {
                forms.push(encoded);
            }
        }
        Redactor { forms }
    }

    /// `text` with the key (in any form) and every `_apikey=` value replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut s = text.to_owned();
        for form in &self.forms {
            if s.contains(form.as_str()) {
                s = s.replace(form.as_str(), "<redacted>");
            }
        }
        scrub_apikey_params(&s)
    }

    /// A reqwest error as text: without its URL, with its causes, redacted.
    pub(crate) fn describe(&self, e: reqwest::Error) -> String {
        let e = e.without_url();
        let mut s = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !s.contains(&text) {
                s.push_str(": ");
                s.push_str(&text);
            }
            cause = c.source();
        }
        self.redact(&s)
    }

    /// A server's error message, redacted and cut to a readable length.
    pub(crate) fn message(&self, text: &str) -> String {
        let s = self.redact(text.trim());
        cut(&s, MAX_MESSAGE)
    }
}

/// `application/x-www-form-urlencoded` serialization, as the query builder does it.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Replace the value of every `_apikey=` parameter, whatever key it holds
/// (another mount's key, a key the server echoes back).
fn scrub_apikey_params(text: &str) -> String {
    const NEEDLE: &str = "_apikey=";
    let lower = text.to_ascii_lowercase();
    if !lower.contains(NEEDLE) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(pos) = lower[search..].find(NEEDLE) {
        let start = search + pos + NEEDLE.len();
        let end = text[start..]
            .find(|c: char| c == '&' || c == '#' || c == '"' || c == '\'' || c.is_whitespace())
            .map_or(text.len(), |n| start + n);
        out.push_str(&text[rest..start]);
        out.push_str("<redacted>");
        rest = end;
        search = end;
    }
    out.push_str(&text[rest..]);
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Everything that can go wrong with an API call.
///
/// Every text field was redacted when the error was made (see the module
/// docs), so Display and Debug are safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status (after any retries).
    #[error("{op}: HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        op: Operation,
        status: u16,
        /// The Error body's `message` (or `error`), or the start of the body.
        message: Option<String>,
        /// The server's Retry-After, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The call's deadline passed, or an attempt hung past its timeout and
    /// could not be retried.
    #[error("{op}: timed out after {}", humantime::format_duration(*after))]
    Timeout { op: Operation, after: Duration },
    /// No connection could be made (refused, DNS, TLS, connect timeout):
    /// the request was surely not sent.
    #[error("{op}: cannot connect to the API: {detail}")]
    Connect { op: Operation, detail: String },
    /// The connection failed after the request may have been sent.
    #[error("{op}: connection failed: {detail}")]
    Transport { op: Operation, detail: String },
    /// TLS refused the server (its certificate untrusted, expired, for
    /// another name; or no TLS at all on an https URL). Not retried: it
    /// will not change by itself. `detail` says what to do.
    #[error("{op}: {detail}")]
    Tls { op: Operation, detail: String },
    /// A body ended before its Content-Length.
    #[error("{op}: body truncated: {got} of {expected} bytes arrived")]
    Truncated {
        op: Operation,
        got: u64,
        expected: u64,
    },
    /// A 2xx answer whose body could not be read as the expected JSON.
    #[error("{op}: unreadable answer: {detail}")]
    Decode { op: Operation, detail: String },
    /// The server broke HTTP's rules: a bad redirect, a wrong Content-Range,
    /// more bytes than promised.
    #[error("{op}: {detail}")]
    Protocol { op: Operation, detail: String },
    /// Writing a download into its file failed.
    #[error("{op}: writing the download: {source}")]
    Io {
        op: Operation,
        #[source]
        source: std::io::Error,
    },
    /// An id that cannot name an object (empty, `.` or `..`): nothing was sent.
    #[error("{op}: not a valid id")]
    InvalidId { op: Operation },
    /// The client could not be built from its configuration.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status the server answered with, when it did.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The object does not exist (404/410, or an id that cannot exist).
    pub fn is_not_found(&self) -> bool {
        matches!(self.status(), Some(404 | 410)) || matches!(self, Error::InvalidId { .. })
    }

    /// The API key was refused (401) or lacks the right (403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// The call ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// The operation that failed, when the error comes from a call.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Error::Status { op, .. }
            | Error::Timeout { op, .. }
            | Error::Connect { op, .. }
            | Error::Transport { op, .. }
            | Error::Tls { op, .. }
            | Error::Truncated { op, .. }
            | Error::Decode { op, .. }
            | Error::Protocol { op, .. }
            | Error::Io { op, .. }
            | Error::InvalidId { op } => Some(*op),
            Error::Config(_) => None,
        }
    }

    /// The server's message (the Error body's `message`), if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Status { message, .. } => message.as_deref(),
            _ => None,
        }
    }
}

/// The error of a call made while the client shuts down (its semaphores are
/// closed, or its runtime will not run a blocking task).
pub(super) fn closed(op: Operation) -> Error {
    Error::Protocol {
        op,
        detail: "client shut down".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_key_in_every_form() {
        let r = Redactor::new(&ApiKey::new("s3cr3t key/+"));
        let t = r.redact("GET /x?_apikey=s3cr3t+key%2F%2B&a=1 and s3cr3t key/+ and _APIKEY=other");
        assert!(!t.contains("s3cr3t"), "{t}");
        assert!(!t.contains("other"), "{t}");
        assert!(t.contains("&a=1"), "{t}");
        assert_eq!(format!("{:?}", ApiKey::new("k")), "<redacted>");
        assert_eq!(ApiKey::new("k").to_string(), "<redacted>");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let r = Redactor::new(&ApiKey::new("k1"));
        let m = r.message(&"é".repeat(400));
        assert!(m.len() <= MAX_MESSAGE + "…".len());
    }
}
