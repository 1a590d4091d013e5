//! `importfs run EXTRACTOR [--wait] [--download csv|json|xlsx -o FILE]`:
//! start a run from a script or a terminal without a mount.
//!
//! The crawl run's id is the only thing printed on stdout (so
//! `id=$(importfs run shop)` works); progress goes to stderr, as an
//! indicatif bar when stderr is a terminal and as one plain line per change
//! otherwise (a log, CI). Interrupting the wait leaves the run going on the
//! server: it is Import.io's, not ours.

use crate::api::{Client, Crawlrun, CrawlrunFile, Error as ApiError, Extractor, FileRef, RunState};
use crate::cli::settings::{self, ApiFlags};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The extractor: its name (as in the dashboard) or its guid.
    pub extractor: String,
    /// Wait until the run ends: exit 0 when FINISHED, 1 when FAILED or CANCELLED.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// Once FINISHED, download the run's data in this format (implies --wait).
    #[arg(long, value_name = "FORMAT")]
    pub download: Option<Format>,
    /// Where --download writes; `-` is standard output (the run id then goes
    /// to standard error) [default: CRAWLRUNID.FORMAT in the current directory].
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        requires = "download"
    )]
    pub output: Option<PathBuf>,
    /// Give up waiting after this long (e.g. 30m); the run goes on.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// How often to ask for the run's state.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1s", hide = true)]
    pub poll_interval: Duration,
    #[command(flatten)]
    pub api: ApiFlags,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// A run's downloadable data formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Xlsx,
}

impl Format {
    fn file(self) -> CrawlrunFile {
        match self {
            Format::Csv => CrawlrunFile::Csv,
            Format::Json => CrawlrunFile::Json,
            Format::Xlsx => CrawlrunFile::Xlsx,
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Xlsx => "xlsx",
        }
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    // Errors reach the user as one message; the client's own log lines about
    // the same failure (a refused key is logged as an error, for mounts)
    // would only repeat it. `-v` shows the log.
    crate::cli::logging::init_logging(args.verbose, Some("off"))?;
    let eff = settings::resolve_api(&args.api)?;
    let key = eff.api_key()?;
    let settings = eff.settings();
    let url = settings.api_url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let cfg = crate::cli::connect::client_config(&settings, key)?;
    let client = Client::new(cfg).context("cannot build the API client")?;
    rt.block_on(run_async(&args, &client, &url))
}

/// Explain an API error in terms of what the user can do about it.
fn explain(e: ApiError, url: &str, what: &str) -> anyhow::Error {
    if e.is_auth() {
        anyhow!("the API key was refused by {url} ({e}): check IMPORTIO_API_KEY or your key file, or run `importfs login` again")
    } else if matches!(e, ApiError::Connect { .. }) {
        anyhow!("cannot reach the Import.io API at {url}: {e}")
    } else {
        anyhow!("{what}: {e}")
    }
}

fn looks_like_guid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

/// Find the extractor a name or guid means. A guid is tried as such first;
/// a name must match exactly (then case-insensitively) one extractor.
async fn find_extractor(client: &Client, url: &str, wanted: &str) -> Result<Extractor> {
    if looks_like_guid(wanted) {
        match client.get_extractor(wanted).await {
            Ok(e) => return Ok(e),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(explain(e, url, "cannot read the extractor")),
        }
    }
    let all: Vec<Extractor> = client
        .list_extractors()
        .await
        .map_err(|e| explain(e, url, "cannot list the extractors"))?
        .into_iter()
        .filter(|e| !e.archived)
        .collect();
    let mut hits: Vec<&Extractor> = all.iter().filter(|e| e.name == wanted).collect();
    if hits.is_empty() {
        hits = all
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(wanted))
            .collect();
    }
    match hits.len() {
        1 => Ok(hits[0].clone()),
        0 => {
            let lower = wanted.to_lowercase();
            let close: Vec<String> = all
                .iter()
                .filter(|e| e.name.to_lowercase().contains(&lower))
                .take(5)
                .map(|e| format!("  {}  {}", e.guid, e.name))
                .collect();
            if close.is_empty() {
                bail!("no extractor is named {wanted:?} (names are as in the dashboard; `ls MOUNT/extractors` lists them)");
            }
            bail!(
                "no extractor is named {wanted:?}; did you mean one of these?\n{}",
                close.join("\n")
            )
        }
        _ => {
            let list: Vec<String> = hits
                .iter()
                .map(|e| format!("  {}  {}", e.guid, e.name))
                .collect();
            bail!(
                "{} extractors are named {wanted:?}; pass the guid of the one you mean:\n{}",
                hits.len(),
                list.join("\n")
            )
        }
    }
}

async fn run_async(args: &RunArgs, client: &Client, url: &str) -> Result<()> {
    let extractor = find_extractor(client, url, &args.extractor).await?;
    let label = if extractor.name.is_empty() {
        extractor.guid.clone()
    } else {
        extractor.name.clone()
    };
    let started = client.start_extractor(&extractor.guid).await.map_err(|e| {
        if e.status() == Some(400) {
            anyhow!(
                "{label} did not start ({}): it is probably running already; \
                 wait for that run to end, or stop it, then try again",
                e.message().unwrap_or("the API refused the start")
            )
        } else {
            explain(e, url, &format!("cannot start {label}"))
        }
    })?;
    let run_id = started
        .crawl_run_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| anyhow!("{label} started, but the API did not say which crawl run it is"))?;
    // With the data on standard output, the run id goes to standard error.
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if to_stdout {
        eprintln!("{run_id}");
    } else {
        println!("{run_id}");
    }
    if !args.wait && args.download.is_none() {
        return Ok(());
    }
    let run = wait(args, client, url, &label, &run_id).await?;
    if let Some(format) = args.download {
        let out = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{run_id}.{}", format.ext())));
        if to_stdout {
            download_to_stdout(client, url, &run, format).await?;
        } else {
            download(client, url, &run, format, &out).await?;
        }
    }
    Ok(())
}

/// What a progress report shows of a run.
fn counts(run: &Crawlrun) -> (u64, Option<u64>, u64) {
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    let done = n(run.success_url_count) + n(run.failed_url_count);
    let total = run.total_url_count.filter(|t| *t > 0).map(|t| t as u64);
    (done, total, n(run.row_count))
}

fn describe(run: &Crawlrun) -> String {
    let (done, total, rows) = counts(run);
    let total = total.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
    format!("{} {done}/{total} URLs, {rows} rows", run.state)
}

/// How a wait shows its progress on stderr: an indicatif bar on a terminal,
/// else one line per change.
struct Progress {
    bar: Option<ProgressBar>,
    last_line: String,
}

impl Progress {
    fn start(label: &str, run_id: &str) -> Result<Progress> {
        if !std::io::stderr().is_terminal() {
            eprintln!("waiting for crawl run {run_id} of {label}");
            return Ok(Progress {
                bar: None,
                last_line: String::new(),
            });
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} {msg:10} [{bar:30}] {pos}/{len} URLs, {elapsed}",
            )
            .map_err(|e| anyhow!("progress template: {e}"))?
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Ok(Progress {
            bar: Some(bar),
            last_line: String::new(),
        })
    }

    fn show(&mut self, run: &Crawlrun, run_id: &str) {
        let (done, total, rows) = counts(run);
        if let Some(bar) = &self.bar {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
            bar.set_message(format!("{} {rows} rows", run.state));
        } else {
            let line = describe(run);
            if line != self.last_line {
                eprintln!("{run_id}: {line}");
                self.last_line = line;
            }
        }
    }

    fn finish(self, result: &Result<Crawlrun>) {
        if let Some(bar) = self.bar {
            match result {
                Ok(run) => bar.finish_with_message(format!("{} {} rows", run.state, counts(run).2)),
                Err(_) => bar.abandon(),
            }
        }
    }
}

/// The outcome of a run that has ended; `None` while it goes on.
fn ended(run: Crawlrun, run_id: &str, label: &str) -> Option<Result<Crawlrun>> {
    match run.run_state() {
        Some(RunState::Finished) => Some(Ok(run)),
        Some(RunState::Failed) => Some(Err(anyhow!(
            "crawl run {run_id} of {label} FAILED ({})",
            describe(&run)
        ))),
        Some(RunState::Cancelled) => Some(Err(anyhow!(
            "crawl run {run_id} of {label} was CANCELLED ({})",
            describe(&run)
        ))),
        _ => None,
    }
}

/// Poll the run until it ends. Errors while polling are tolerated for a
/// while (the client already retried each one): a long wait should not die
/// of one network hiccup.
async fn wait(
    args: &RunArgs,
    client: &Client,
    url: &str,
    label: &str,
    run_id: &str,
) -> Result<Crawlrun> {
    let mut progress = Progress::start(label, run_id)?;
    let start = Instant::now();
    let mut failing_since: Option<Instant> = None;
    let result = loop {
        match client.get_crawlrun(run_id).await {
            Ok(run) => {
                failing_since = None;
                progress.show(&run, run_id);
                if let Some(outcome) = ended(run, run_id, label) {
                    break outcome;
                }
            }
            Err(e) if e.is_auth() || e.is_not_found() => {
                break Err(explain(e, url, "cannot read the crawl run"))
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(60) {
                    break Err(explain(e, url, "cannot read the crawl run for a minute"));
                }
                tracing::warn!(error = %e, "reading the crawl run failed; trying again");
            }
        }
        if let Some(limit) = args.timeout {
            if start.elapsed() > limit {
                break Err(anyhow!(
                    "crawl run {run_id} of {label} did not end within {}; it goes on (see `importfs run --help`)",
                    humantime::format_duration(limit)
                ));
            }
        }
        tokio::time::sleep(args.poll_interval).await;
    };
    progress.finish(&result);
    result
}

/// Download into `OUT.part` and rename once complete, so `OUT` is never a
/// half-written file (a script may test for it).
async fn download(
    client: &Client,
    url: &str,
    run: &Crawlrun,
    format: Format,
    out: &Path,
) -> Result<()> {
    let mut part = out.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let file = std::fs::File::create(&part)
        .with_context(|| format!("cannot create {}", part.display()))?;
    let total = match fetch(client, url, run, format, &file, &out.display().to_string()).await {
        Ok(total) => total,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    file.sync_all()
        .with_context(|| format!("cannot write {}", part.display()))?;
    drop(file);
    std::fs::rename(&part, out)
        .with_context(|| format!("cannot rename {} to {}", part.display(), out.display()))?;
    eprintln!("wrote {} ({total} bytes)", out.display());
    Ok(())
}

/// `-o -`: download into an unnamed temporary file (a download resumes by
/// offset, which a pipe cannot do), then copy it to standard output whole,
/// so a reader never gets part of a download that failed.
async fn download_to_stdout(
    client: &Client,
    url: &str,
    run: &Crawlrun,
    format: Format,
) -> Result<()> {
    use std::io::{Seek, Write};
    let mut file = tempfile::tempfile().context("cannot create a temporary file")?;
    fetch(client, url, run, format, &file, "standard output").await?;
    file.rewind().context("cannot read the temporary file")?;
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut file, &mut stdout)
        .and_then(|_| stdout.flush())
        .context("cannot write to standard output")?;
    Ok(())
}

/// Stream the run's file into `file`, with a progress bar on a terminal.
async fn fetch(
    client: &Client,
    url: &str,
    run: &Crawlrun,
    format: Format,
    file: &std::fs::File,
    what: &str,
) -> Result<u64> {
    let fref = FileRef::Crawlrun(run.guid.clone(), format.file());
    let bar = if std::io::stderr().is_terminal() {
        let size = client.file_size(&fref).await.ok().flatten();
        let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("downloading to {what}"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = {
        let bar = bar.clone();
        move |n: u64| bar.set_position(n)
    };
    match client.download(&fref, file, &progress, None).await {
        Ok(total) => {
            bar.finish_and_clear();
            Ok(total)
        }
        Err(e) => {
            bar.abandon();
            Err(explain(
                e,
                url,
                &format!(
                    "cannot download the {} of crawl run {}",
                    format.ext(),
                    run.guid
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_recognised() {
        assert!(looks_like_guid("0f8b7e1c-6b0e-4d7e-9b1e-3c2a1f0e9d8c"));
        assert!(!looks_like_guid("Shop prices"));
    }
}
