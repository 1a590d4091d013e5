//! What an emulator serves and how: [`Config`] and its choices ([`Dataset`],
//! [`Dialect`]), re-exported by the parent module as the public face of the
//! emulator.
//!
//! Subtle: two fields ([`Config::new_run_404_ms`], [`Config::repeat_last_page`])
//! are `Option`s whose `None` means "the dialect's default", so a flag given
//! on the command line wins in either dialect; read them through the
//! `effective_*` methods, never directly. The doc comments of the variants of
//! [`Dataset`] and [`Dialect`] are also the help of `importfs emulator`'s
//! `--dataset` and `--dialect` values (clap's `ValueEnum`).

use std::net::SocketAddr;

use super::faults::FaultSpec;
use super::tls::TlsFiles;

/// Which account the emulator starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Dataset {
    /// A believable account of a dozen extractors, plus extractors with
    /// hostile names; small result files.
    #[default]
    Demo,
    /// `extractors` extractors and `crawlruns` finished runs whose `data.csv`
    /// and `data.json` are `result_bytes` long, generated as they stream.
    Scale,
}

/// How the emulator shapes its answers (see the doc of the `emulator` module).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Dialect {
    /// As `importio-openapi.yaml` says.
    #[default]
    Spec,
    /// Epoch-millisecond times, JSON-lines inputs, 302 downloads.
    Legacy,
}

/// What to serve and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the API listens. Default `127.0.0.1:0`: any free port, so tests
    /// can run in parallel; read the real one with [`Emulator::addr`](super::Emulator::addr).
    pub listen: SocketAddr,
    /// The only `_apikey` accepted. Default `test-key`.
    pub api_key: String,
    /// The account to start with. Default [`Dataset::Demo`].
    pub dataset: Dataset,
    /// Number of extractors in [`Dataset::Scale`]. Default 100.
    pub extractors: usize,
    /// Number of crawl runs in [`Dataset::Scale`], spread over the
    /// extractors. Default 10 000: enough that listing must page.
    pub crawlruns: usize,
    /// Size in bytes of each `data.csv` (and `data.json`) in
    /// [`Dataset::Scale`]. Default 1 MiB; gigabytes work (generated while
    /// streamed).
    pub result_bytes: u64,
    /// Seconds a started run takes to go PENDING → STARTED → FINISHED
    /// (PENDING for the first fifth). Default 3: long enough to see it
    /// running, short enough for tests.
    pub run_seconds: f64,
    /// Answer shapes. Default [`Dialect::Spec`].
    pub dialect: Dialect,
    /// Faults active from the start (the same as `POST /_emulator/faults`).
    pub faults: Vec<FaultSpec>,
    /// Send every result-file body at no more than this many bytes per
    /// second per response (so per connection: HTTP/1.1 answers one at a
    /// time); parallel connections each get it. A fault's `bytes_per_sec`
    /// overrides it for the requests it matches. `Some(0)` is treated as
    /// 1 byte per second. Default `None`: no cap and no cost.
    pub conn_bytes_per_sec: Option<u64>,
    /// For how many milliseconds a run made by `POST .../start` is unknown
    /// to the API (404 for it, left out of listings), as the live service
    /// was seen to do. `None`: the dialect's default, 0 (off) in `spec` and
    /// [`LEGACY_NEW_RUN_404_MS`] in `legacy`. A fault's `new_run_404_ms`
    /// overrides it for the operations it covers.
    pub new_run_404_ms: Option<u64>,
    /// Whether a `_page` past the end answers the last page again instead
    /// of an empty one, as the live service was seen to do. `None`: the
    /// dialect's default, off in `spec`, on in `legacy`.
    pub repeat_last_page: Option<bool>,
    /// Serve both listeners (the API and the files listener of legacy
    /// downloads) over HTTPS with this certificate and key; the URLs become
    /// `https://`. Default `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// The `legacy` dialect's default [`Config::new_run_404_ms`]: one second,
/// long enough that a client which trusts the first 404 after a start is
/// caught, short enough for tests. (`importio2` polls up to 11 times a
/// second apart, so the live service's lag is a few seconds at most.)
pub const LEGACY_NEW_RUN_404_MS: u64 = 1000;

impl Config {
    /// [`Config::new_run_404_ms`] with the dialect's default applied.
    pub fn effective_new_run_404_ms(&self) -> u64 {
        self.new_run_404_ms.unwrap_or(match self.dialect {
            Dialect::Spec => 0,
            Dialect::Legacy => LEGACY_NEW_RUN_404_MS,
        })
    }

    /// [`Config::repeat_last_page`] with the dialect's default applied.
    pub fn effective_repeat_last_page(&self) -> bool {
        self.repeat_last_page
            .unwrap_or(self.dialect == Dialect::Legacy)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "test-key".to_owned(),
            dataset: Dataset::Demo,
            extractors: 100,
            crawlruns: 10_000,
            result_bytes: 1 << 20,
            run_seconds: 3.0,
            dialect: Dialect::Spec,
            faults: Vec::new(),
            conn_bytes_per_sec: None,
            new_run_404_ms: None,
            repeat_last_page: None,
            tls: None,
        }
    }
}
