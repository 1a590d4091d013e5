//! `importfs emulator`: serve the local Import.io API until interrupted.
//!
//! Prints the API's URL on stdout (one line, so scripts can read it), logs with
//! tracing on stderr (`RUST_LOG`, default `info`), and stops on Ctrl-C or
//! SIGTERM. The key may come from `IMPORTIO_API_KEY` rather than `--api-key`,
//! since argv shows in `ps`. With `--tls-cert` and `--tls-key` (both or
//! neither) it serves HTTPS and the printed URL says `https://`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::emulator::{Config, Dataset, Dialect, Emulator, TlsFiles};

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (port 0: any free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The API key clients must send as `_apikey`.
    #[arg(
        long,
        env = "IMPORTIO_API_KEY",
        default_value = "test-key",
        hide_env_values = true
    )]
    pub api_key: String,
    /// The account to serve.
    #[arg(long, value_enum, default_value_t = Dataset::Demo)]
    pub dataset: Dataset,
    /// Extractors in the scale dataset.
    #[arg(long, default_value_t = 100)]
    pub extractors: usize,
    /// Crawl runs in the scale dataset.
    #[arg(long, default_value_t = 10_000)]
    pub crawlruns: usize,
    /// Size of each data.csv / data.json in the scale dataset, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub result_bytes: u64,
    /// Seconds a started run takes to finish.
    #[arg(long, default_value_t = 3.0)]
    pub run_seconds: f64,
    /// Answer as the spec says, or like the live service did.
    #[arg(long, value_enum, default_value_t = Dialect::Spec)]
    pub dialect: Dialect,
    /// JSON file of faults active from the start (one object or an array).
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Send every result-file body (data.csv, ...; both listeners) at no more
    /// than N bytes per second per connection, so N per ranged connection of
    /// a parallel download. Gzipped bodies are capped on the compressed
    /// bytes. A `bytes_per_sec` fault overrides it. Default: no cap.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub conn_bytes_per_sec: Option<u64>,
    /// Milliseconds a run made by a start stays unknown (404, not listed),
    /// as the live service did [default: 0 in the spec dialect, 1000 in legacy].
    #[arg(long, value_name = "MS")]
    pub new_run_404_ms: Option<u64>,
    /// Answer a `_page` past the end with the last page again, as the live
    /// service did [default: false in the spec dialect, true in legacy].
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub repeat_last_page: Option<bool>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first), on both
    /// listeners (the API and where legacy downloads redirect).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

pub fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if !(args.run_seconds.is_finite() && args.run_seconds >= 0.0) {
        anyhow::bail!("--run-seconds must be a non-negative number");
    }
    let faults = match &args.faults {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            crate::emulator::faults_from_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
    };
    let config = Config {
        listen: args.listen,
        api_key: args.api_key,
        dataset: args.dataset,
        extractors: args.extractors,
        crawlruns: args.crawlruns,
        result_bytes: args.result_bytes,
        run_seconds: args.run_seconds,
        dialect: args.dialect,
        faults,
        conn_bytes_per_sec: args.conn_bytes_per_sec,
        new_run_404_ms: args.new_run_404_ms,
        repeat_last_page: args.repeat_last_page,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let emu = Emulator::start(config)
            .await
            .with_context(|| format!("starting the emulator on {}", args.listen))?;
        println!("{}", emu.url());
        tracing::info!(url = %emu.url(), files = %emu.files_url(), "serving the Import.io API");
        crate::cli::signal::wait_for_signal().await;
        tracing::info!("shutting down");
        emu.shutdown().await;
        Ok(())
    })
}
