//! [`ClientConfig`]: every knob of the client, and why each default is what
//! it is.
//!
//! The numbers hang together, so change one with the others in view: an
//! attempt (`attempt_timeout`) must fit a few times into a call
//! (`call_deadline`) for retries to be worth anything, the backoff
//! (`backoff_base`, `backoff_max`, `max_attempts`) must spend only part of
//! that deadline, and `new_run_grace` must end well inside it so that a
//! lookup that waits for a new run still answers in time. The downloads'
//! share of the connection slots (`max_concurrent_downloads`) is what keeps
//! an `ls` fast while files stream.

use super::error::ApiKey;
use std::time::Duration;

/// The User-Agent of every request.
pub const USER_AGENT: &str = concat!("importfs/", env!("CARGO_PKG_VERSION"));

/// How the client talks to the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API root. Default `https://api.import.io`, the production service.
    pub base_url: String,
    /// Sent as `_apikey` to the API host only; Debug prints `<redacted>`.
    /// Default empty, which [`Client::new`](super::Client::new) refuses:
    /// there is no key that could be right for everyone.
    pub api_key: ApiKey,
    /// One attempt of a JSON call, headers and body. Default 10 s: the
    /// service answers in well under a second, a 1,000-object page in a few;
    /// 10 s is patient with a slow page yet leaves room for two more
    /// attempts inside the call deadline when an attempt hangs. For a
    /// download it bounds the wait for the headers and for each next chunk
    /// (a stall), not the whole transfer.
    pub attempt_timeout: Duration,
    /// The most a call may take, all attempts and waits included. Default
    /// 30 s: a hung API must end in an error (EIO), never in a hung `ls`;
    /// 30 s rides out a short outage (a deploy, a burst of 503s) and is
    /// about as long as a person waits before pressing Ctrl-C. For a
    /// download it is the longest time without a single new byte.
    pub call_deadline: Duration,
    /// Attempts per call, the first included. Default 5: with the default
    /// backoff that is about 3 s of waiting, enough for a blip, without
    /// hammering a service that is really down.
    pub max_attempts: u32,
    /// Requests in flight at once, over all clones. Default 8: enough to
    /// overlap a listing with a few downloads; browsers use 6 per host, and
    /// more would invite 429s from one mount.
    pub max_concurrent: usize,
    /// Of those, how many may be long downloads. Default 4 (half), so an
    /// `ls` never waits behind file transfers.
    pub max_concurrent_downloads: usize,
    /// Establishing a TCP/TLS connection. Default 5 s: a healthy host
    /// connects in milliseconds; an unreachable one should fail soon enough
    /// to retry inside the deadline. A connect error is retried for every
    /// method, since nothing was sent.
    pub connect_timeout: Duration,
    /// First backoff step, doubled per failure (a Retry-After, when the
    /// server sends one, is waited instead). Default 200 ms: one dropped
    /// connection costs a fifth of a second at most, and the four waits of
    /// the default five attempts add up to 3 s at most.
    pub backoff_base: Duration,
    /// Backoff cap. Default 5 s: longer waits only burn the call deadline.
    pub backoff_max: Duration,
    /// `_perpage` of listings. Default 1,000: few calls for big accounts
    /// (2,500 extractors in 3), pages of about 1 MB.
    pub page_size: u32,
    /// The most pages one listing fetches. Default 1,000 (a million objects
    /// at 1,000 a page): a last stop for a server that never ends a listing.
    pub max_pages: u32,
    /// Redirect hops followed per request. Default 5: a download that is
    /// sent on to signed storage takes one hop, a proxy in front may add one
    /// or two; more is most likely a loop, and every hop is a round trip
    /// spent inside the deadline.
    pub max_redirects: u32,
    /// How long after this client started a run a 404 for it means "not
    /// known yet" rather than "does not exist" (asked again, and the run
    /// added to listings that lack it). Default 10 s: `importio2` (PyPI)
    /// waits as long (11 polls a second apart) for the live service, and it
    /// is a third of `call_deadline`, so a lookup that waits it out still
    /// answers in time. Zero turns the waiting off.
    pub new_run_grace: Duration,
    /// Roots trusted besides the system's store (`--ca-cert`): the CA of a
    /// company's TLS-inspecting proxy, or of a test server. Default none:
    /// the system's store (`/etc/ssl/certs`, `SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`; the Keychain on macOS) is what every other program
    /// of the machine trusts.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// A proxy for every request (the config key `proxy`), credentials in
    /// its URL if it needs them; `NO_PROXY` still applies. Default none:
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case)
    /// are honoured as curl honours them.
    pub proxy: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            base_url: "https://api.import.io".to_owned(),
            api_key: ApiKey::new(""),
            attempt_timeout: Duration::from_secs(10),
            call_deadline: Duration::from_secs(30),
            max_attempts: 5,
            max_concurrent: 8,
            max_concurrent_downloads: 4,
            connect_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            page_size: 1000,
            max_pages: 1000,
            max_redirects: 5,
            new_run_grace: Duration::from_secs(10),
            extra_roots: Vec::new(),
            proxy: None,
        }
    }
}

impl ClientConfig {
    /// The defaults, with this API root and key.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<ApiKey>) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            ..ClientConfig::default()
        }
    }
}
