//! A local Import.io API v2 server (`importfs emulator`), for tests, the demo
//! and the benchmarks — what minio is to S3.
//!
//! It implements the 22 operations of `tests/importio-openapi.yaml`, and one
//! more that clients in the wild use (below), with state:
//! `_apikey` auth (401 with the Error body), 404 for unknown ids, 400 for
//! malformed ids or bodies, 413 for bodies over 1 MiB, pagination and sorting,
//! crawl runs that move PENDING → STARTED → FINISHED over
//! [`Config::run_seconds`], result files generated from the extractor's inputs
//! and fields, fault injection and a request log.
//!
//! # Subtle points
//! - **Run states are computed from the clock when read**; there is no
//!   background task. A run stores when it started and, once forced (stop,
//!   finish/fail hooks), its final state and stop time.
//! - **Result files are never stored.** They are generated on each request from
//!   a snapshot of the extractor's inputs and fields taken when the run
//!   started (so a later PUT of inputs does not change a finished run). In the
//!   `scale` dataset `data.csv` and `data.json` are fixed-width rows, so any
//!   byte range is computed directly and a 1 GiB file streams in flat memory.
//! - **Deterministic datasets**: every guid of a dataset is derived from a hash
//!   of its role and index, so a restarted emulator with the same [`Config`]
//!   has the same ids. Objects created while running (start, duplicate, hooks)
//!   get random v4 guids.
//! - **The API key is never logged**: the request log drops `_apikey` from the
//!   query and replaces any other occurrence of the key by `REDACTED`; tracing
//!   logs only method, path, status and operation.
//! - **Connections can be killed**: every accepted connection carries a
//!   cancellation token. `shutdown()` cancels all of them (so a long download
//!   does not keep the port busy), and the `drop_rate` fault cancels one.
//!
//! # HTTPS
//! With [`Config::tls`] (`--tls-cert FILE --tls-key FILE`) both listeners
//! speak TLS only (ALPN `http/1.1`), and [`Emulator::url`],
//! [`Emulator::files_url`] and the legacy redirects say `https://`. The PEM
//! files are read when the emulator starts, so a bad file fails the start.
//! A failed handshake (plain HTTP to the TLS port, a client that refuses
//! the certificate) drops only that connection; handshakes run off the
//! accept loop, so a silent client holds up no other (see `conn`).
//!
//! # Dialects
//! `spec` (default) answers as the spec says. `legacy` answers like clients
//! saw the live service: `_meta` with `creationTimestamp`/`timestamp` in epoch
//! milliseconds, `startedAt`/`stoppedAt` in epoch milliseconds, `GET inputs` as
//! JSON lines (`application/x-ndjson`), and result downloads as a 302 to the
//! second ("files") listener, `files_url()/<token>/crawlruns/<id>/<type>`, which
//! serves the file without a key (the token is unguessable, per process).
//! A PUT of inputs accepts both forms in both dialects and answers in the form
//! it read.
//!
//! Two more habits of the live service are on by default in `legacy` and off
//! in `spec` (each has its own [`Config`] field and `importfs emulator` flag,
//! which also turn them on or off in either dialect):
//! - **Runs that appear late** ([`Config::new_run_404_ms`],
//!   `--new-run-404-ms MS`, legacy default [`LEGACY_NEW_RUN_404_MS`]): a run
//!   made by `POST /extractors/{id}/start` is unknown for that long after the
//!   start answered with its id — `GET /crawlruns/{id}` and its files answer
//!   404 and listings leave it out — as `importio2` (PyPI), which polls a new
//!   run up to 11 times a second apart, shows the service did. A run already
//!   in progress still makes a second start a 400. Runs of the dataset and of
//!   the hooks are never hidden.
//! - **Pages that repeat** ([`Config::repeat_last_page`],
//!   `--repeat-last-page BOOL`): a `_page` past the end answers the last page
//!   again instead of `[]` (a list with no objects still answers `[]`), as
//!   the MCMatters PHP client, which stops when a page repeats the one
//!   before, shows the service did. `X-Total-Count` stays true.
//!
//! # Beyond the spec: `GET /extractors/{extractorId}/crawlruns`
//! Not in the seed spec: `importio-client` 0.2.4 (PyPI,
//! `ExtractorEndpoint.get_history`) lists an extractor's runs there. Both
//! dialects answer it as `GET /crawlruns/?extractorId=` would (the same
//! objects, newest first by default, `_page`, `_perpage`, `_sort`,
//! `_sortDirection`, `X-Total-Count`, hostile modes and the dialect's
//! paging), with 404 and the Error body for an unknown or archived extractor,
//! 400 for a malformed id and 401 without a valid key; a trailing slash is
//! accepted; other methods get 405. Its operation (request log, faults) is
//! `listExtractorCrawlruns`. Schemathesis never asks for it (it is not in the
//! spec), and nothing of the spec's operations changed for it.
//!
//! # Downloads
//! Both listeners serve result files with an exact `Content-Length`, `HEAD`
//! (same headers, no body; HEAD always describes the identity encoding),
//! `Range: bytes=a-b` / `a-` / `-n` → 206 with `Content-Range` (416 with
//! `Content-Range: bytes */LEN` when unsatisfiable; several ranges → the whole
//! file, 200), `ETag` + `If-Range`, and `Accept-Encoding: gzip` → a gzip body
//! when no Range is asked (with a `Content-Length` up to 8 MiB of content,
//! chunked above). JSON answers over 1 KiB are gzipped too when asked.
//!
//! A bandwidth cap (`--conn-bytes-per-sec N`, [`Config::conn_bytes_per_sec`],
//! or the `bytes_per_sec` fault) paces every result-file body (200 and 206,
//! both listeners) to at most N bytes per second per response, so per
//! connection: a client with 4 ranged connections gets about 4N. The body
//! goes in pieces of at most N/20 bytes on a schedule that banks at most one
//! piece of credit for a slow reader. The cap counts the bytes on the wire:
//! of a gzipped body, the compressed bytes. Error bodies, JSON answers and
//! HEAD are never slowed; with no cap the body is not wrapped at all.
//!
//! # Choices where the spec is silent
//! - `POST /extractors/{id}/stop` with no run in progress answers 200 `{}`;
//!   with one, 200 `{"crawlRunId": ...}` and that run becomes CANCELLED.
//! - `POST /extractors/{id}/start` answers 200 `{"crawlRunId": ...}`; while a
//!   run is PENDING/STARTED, 400 with the Error body.
//! - `DELETE /extractors/{id}` archives: the answer is the Extractor with
//!   `archived: true`; from then on every extractor operation on it (GET,
//!   inputs, start, DELETE again, ...) answers 404 and lists skip it — the
//!   spec's "hidden and cannot be run", and what schemathesis' use-after-free
//!   check demands. Its crawl runs stay readable and listed.
//! - `DELETE /reports/{id}` removes the report (then 404). Its report runs stay
//!   readable by id but are no longer listed.
//! - `POST /reports/{id}/start` answers 200 `{"reportRunId": ...}`; report
//!   runs go PENDING → STARTED → FINISHED like crawl runs.
//! - `_page` below 1 reads as 1, `_perpage` is clamped to 1..=1000 (default 30);
//!   a value that is not an integer is a 400. `_sortDirection` must be `ASC`
//!   or `DESC` (400 otherwise). `_sort` accepts `meta_created_at`,
//!   `meta_modified_at`, `name`, `guid`, `state` (runs); any other field
//!   sorts by creation time (the spec allows any string).
//! - A `fileType` outside the spec's enum is a 404 (there is no such file).
//! - Credentials: the body must be an object with string `username` and
//!   `password` (else 400); they are stored, `credentialsId` is set on the
//!   extractor, and no API GET returns them.
//!
//! # Test hooks (under `/_emulator/`: no key, not logged, never faulted)
//! - `POST /_emulator/faults` — body a [`FaultSpec`] or an array of them; each
//!   replaces any fault with the same `operation`. `GET` lists them,
//!   `DELETE` clears them all.
//! - `GET /_emulator/requests` — the request log, a JSON array of
//!   `{"method","path","query","status","operation","listener"}` (`query`
//!   without `_apikey`, `status` 0 for a dropped connection, `listener` is
//!   `"api"` or `"files"`), plus `"range"` (the Range header as received)
//!   when the request had one; `DELETE` clears it. The log keeps the last 100 000.
//! - `POST /_emulator/extractors` `{"name": .., "inputs": [..], "fields": [..],
//!   "guid": ..}` (`fields` and `guid` optional; a `guid` already taken is a
//!   409) → 200 with the new Extractor. The name is stored as given: `/`,
//!   NUL (`\u0000`), 300 bytes, `..`, the empty string and duplicates are
//!   all accepted, as a hostile account would hold them.
//! - `POST /_emulator/extractors/{id}/rename` `{"name": ..}` → the Extractor.
//! - `POST /_emulator/extractors/{id}/archive` → the Extractor.
//! - `GET /_emulator/extractors/{id}/credentials` → `{"username","password"}`
//!   as stored (404 when none).
//! - `POST /_emulator/crawlruns` `{"extractorId": .., "state": "FINISHED"}` →
//!   the new Crawlrun (any state; PENDING/STARTED runs then follow the clock).
//! - `POST /_emulator/crawlruns/{id}/finish` and `/fail` → the Crawlrun, now
//!   FINISHED or FAILED.
//! - `POST /_emulator/reportruns/{id}/finish` → the ReportRun, now FINISHED.
//! - `POST /_emulator/reportruns/{id}/status` `{"status": "PARTIAL"}` → the
//!   ReportRun showing that status (any string; `FINISHED` finishes it), with
//!   result files whose bytes depend on it: a run whose partial results are
//!   replaced when it finishes, for tests of what a cache may keep.
//! - `POST /_emulator/hostile` — body a [`Hostile`] object, e.g.
//!   `{"wrong_types": true, "repeat_pages": true, "lying_length": 10000000000,
//!   "unauthorized": true, "ignore_range": true}`; it replaces the modes in
//!   force (a field not given is off; an unknown field is a 400). `GET` shows
//!   them, `DELETE` turns them all off. Off by default.
//!
//! # Hostile modes
//! For tests of what a client does with a server that lies (see [`Hostile`]):
//! - `wrong_types`: every successful JSON answer of the API gets fields of
//!   the wrong type in each object (`name` a number, `archived` `"yes"`,
//!   `_meta` a list, `state`/`status` 7, `tags` a string, `fields` an
//!   object, times booleans, counts strings, ...). `guid`, `extractorId`,
//!   `reportId` and `_url` are left as they are.
//! - `repeat_pages`: every list endpoint answers every `_page` with page 1,
//!   filled up to `_perpage` by repeating its objects, and `X-Total-Count`
//!   claims a million.
//! - `lying_length`: a whole-file download (200, and its HEAD) claims this
//!   `Content-Length` when it exceeds the real size, sends the real bytes
//!   and closes the connection. Range answers tell the truth (so a resume
//!   from the end of the real bytes gets a 416).
//! - `unauthorized`: every API call answers 401 with the Error body — a key
//!   revoked mid-session. Hooks and the files listener are unaffected.
//! - `ignore_range`: a result-file GET (both listeners) ignores `Range` and
//!   `If-Range` and answers 200 with the whole file and its whole
//!   `Content-Length`, like a server without range support — though it still
//!   sends `Accept-Ranges: bytes`. HEAD answers as without the mode.
//!
//! # Faults
//! A [`FaultSpec`] names an operationId (or `*`); the fault for the exact
//! operation wins over `*`. Per request, in this order, each with its own
//! random draw: sleep `latency_ms` (or a uniform value up to
//! `latency_max_ms`); `drop_rate` → the connection is closed with no answer;
//! `error_rate` → 500 with the Error body; `throttle_rate` → 429 with
//! `Retry-After: retry_after_s` (default 1);
//! `status` → that status (400..=599) with the Error body, every time,
//! instead of the operation (`{"operation": "listExtractorCrawlruns",
//! "status": 404}` makes a server of the seed spec); then the operation runs
//! and `truncate_rate` → the full `Content-Length` is sent but the body stops
//! half way and the connection is closed; `bytes_per_sec` (above 0) → a
//! result-file body is sent at no more than that many bytes per second (see
//! Downloads), overriding `--conn-bytes-per-sec` for the requests the rule
//! matches; it slows only `getCrawlrunFile` and `getReportRunFile`, even in
//! a `*` rule. As for every field, only the winning rule counts: an exact
//! rule without `bytes_per_sec` leaves the config's cap, not the `*` rule's.
//! Faults for `getCrawlrunFile` and `getReportRunFile` also apply on the
//! files listener. A rule's `new_run_404_ms` replaces
//! [`Config::new_run_404_ms`] for the operations it covers (e.g. only
//! `getCrawlrun`, or `*`; 0 turns it off). The `--faults FILE` of the CLI
//! holds the same objects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod app;
mod config;
mod conn;
mod datasets;
mod faults;
mod files;
mod hooks;
mod hostile;
mod query;
mod reply;
mod respond;
mod routes;
mod server;
mod state;
mod throttle;
mod tls;

use app::App;
pub use app::LoggedRequest;
pub use config::{Config, Dataset, Dialect, LEGACY_NEW_RUN_404_MS};
pub use faults::FaultSpec;
pub use hostile::Hostile;
pub use tls::TlsFiles;

/// A running emulator: the API listener and the files listener.
pub struct Emulator {
    addr: SocketAddr,
    files_addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    app: Arc<App>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("files_addr", &self.files_addr)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Read the TLS files if any, bind both listeners, build the dataset,
    /// and serve in background tasks. Returns once both listeners are bound.
    /// Needs a tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<Emulator> {
        let tls = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let api = tokio::net::TcpListener::bind(config.listen).await?;
        let files = tokio::net::TcpListener::bind(SocketAddr::new(config.listen.ip(), 0)).await?;
        let addr = api.local_addr()?;
        let files_addr = files.local_addr()?;
        let stop = CancellationToken::new();
        let app = Arc::new(App::new(
            config,
            format!("{scheme}://{}", display_addr(files_addr)),
        ));
        let tasks = vec![
            tokio::spawn(server::serve_api(
                api,
                tls.clone(),
                app.clone(),
                stop.clone(),
            )),
            tokio::spawn(server::serve_files(files, tls, app.clone(), stop.clone())),
        ];
        tracing::info!(%addr, %files_addr, scheme, "emulator listening");
        Ok(Emulator {
            addr,
            files_addr,
            scheme,
            app,
            stop,
            tasks,
        })
    }

    /// The API listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, `http://127.0.0.1:PORT` (`https://` with
    /// [`Config::tls`]; no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, display_addr(self.addr))
    }

    /// The files listener's base URL (where legacy downloads redirect),
    /// with the same scheme as [`Emulator::url`].
    pub fn files_url(&self) -> String {
        format!("{}://{}", self.scheme, display_addr(self.files_addr))
    }

    /// The API key this emulator accepts.
    pub fn api_key(&self) -> &str {
        &self.app.config.api_key
    }

    /// The request log (as `GET /_emulator/requests`).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.app.log_snapshot()
    }

    /// Forget the request log (as `DELETE /_emulator/requests`).
    pub fn clear_requests(&self) {
        self.app.clear_log();
    }

    /// Add or replace faults (as `POST /_emulator/faults`).
    pub fn set_faults(&self, faults: Vec<FaultSpec>) {
        self.app.faults.set(faults);
    }

    /// Remove every fault (as `DELETE /_emulator/faults`).
    pub fn clear_faults(&self) {
        self.app.faults.clear();
    }

    /// Stop both listeners and close every connection, including ones in the
    /// middle of a download, so the port can be bound again at once.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Dropped without shutdown(): still stop serving.
        self.stop.cancel();
    }
}

fn display_addr(a: SocketAddr) -> String {
    a.to_string()
}

/// Parse faults as `--faults FILE` holds them: one [`FaultSpec`] object or an
/// array of them (unknown fields and rates outside 0..=1 are errors).
pub fn faults_from_json(text: &str) -> Result<Vec<FaultSpec>, String> {
    faults::parse_faults(text)
}
