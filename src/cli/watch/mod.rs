//! `importfs watch MOUNTPOINT [filters] [--json] [-- COMMAND...]`: follow a
//! mount's run events (its `.importfs/events` log) and print each one, or
//! run a command for each, so that "load every finished run" needs no cron.
//!
//! Subtle points:
//! - **It follows a log, as `tail -F` does.** The events file is a log that
//!   grows and whose reads never wait; the watch starts at its end (or at
//!   its start with `--from-start`), and every [`FOLLOW_EVERY`] opens it,
//!   reads what is new and closes it. It holds no file of the mount open
//!   while it waits, so it never keeps a mount busy: `importfs unmount`
//!   needs nothing from it. Over NFS each open also revalidates the file's
//!   attributes (close-to-open), so a new line shows at the next look.
//! - **The mount going away ends it with 0**: the file gone (ENOENT,
//!   ENOTCONN, ESTALE) or another filesystem at the mountpoint (its device
//!   changed).
//! - **No shell, ever.** Extractor and report names come from the API and
//!   may hold `$(...)`, quotes or newlines: they reach the command only in
//!   its environment (`IMPORTFS_EXTRACTOR`, ...), never in its arguments,
//!   and the command is started with `std::process::Command` as given.
//!   The child gets no `IMPORTIO_API_KEY`.
//! - **One command at a time, in order.** The log keeps what happens
//!   meanwhile; lines it no longer keeps (past 10,000 events) read as blank
//!   lines, which the watch says it skipped.
//! - **Ctrl-C and SIGTERM exit 0.** A signal thread sets [`STOP`] and then
//!   waits for [`GATE`], which the main loop holds while it handles an event
//!   (not while it waits for one), so a line is never half printed; a
//!   running command is sent SIGTERM (then SIGKILL after [`GRACE`]) and
//!   waited for.
//! - **A bad line is skipped, never fatal.**

mod follow;
mod stop;

use anyhow::{bail, Context, Result};
use clap::Args;
use follow::{Follow, Look};
use serde::Deserialize;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use stop::catch_signals;

/// The event types a mount sends (besides `lost`).
pub const EVENT_TYPES: [&str; 6] = [
    "crawlrun.started",
    "crawlrun.finished",
    "crawlrun.failed",
    "crawlrun.cancelled",
    "reportrun.finished",
    "reportrun.failed",
];

/// Every variable the command may get; all are removed first, so a value
/// inherited from our own environment never passes for the event's.
const ENV_NAMES: [&str; 8] = [
    "IMPORTFS_EVENT",
    "IMPORTFS_ID",
    "IMPORTFS_PATH",
    "IMPORTFS_EXTRACTOR",
    "IMPORTFS_EXTRACTOR_GUID",
    "IMPORTFS_REPORT",
    "IMPORTFS_REPORT_GUID",
    "IMPORTFS_EVENT_JSON",
];

/// How long a command has to end after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);
/// How often a running command is checked on (and [`STOP`] with it).
const POLL: Duration = Duration::from_millis(20);
/// How often the log is looked at for new lines: twice as often as
/// `tail -f` does, and cheap (an open, a stat, a read at the end, a close).
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Set by the signal thread on Ctrl-C or SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);
/// Held by the main loop while it handles an event.
static GATE: Mutex<()> = Mutex::new(());

const SHORT_HELP: &str = "Example: importfs watch ~/importio --extractor \"My shop\" \
                          --event crawlrun.finished -- ./load.sh  (more with --help)";

const LONG_HELP: &str = "\
Examples:
  Print each run event as it happens:
    importfs watch ~/importio

  Load each finished run of one extractor into duckdb as it finishes (no cron):
    importfs watch ~/importio --extractor \"My shop\" --event crawlrun.finished -- \\
      sh -c 'duckdb shop.db \"insert into runs select * from read_csv(\\\"$IMPORTFS_PATH/data.csv\\\")\"'

The command runs once per matching event, one at a time, in order. importfs
never runs it through a shell (the `sh -c` above is the example's own choice).
It gets the event in its environment:
  IMPORTFS_EVENT         crawlrun.finished, ...
  IMPORTFS_ID            the run's id
  IMPORTFS_PATH          the run's directory in the mount (absolute)
  IMPORTFS_EXTRACTOR     the extractor's name (crawl runs), IMPORTFS_EXTRACTOR_GUID its guid
  IMPORTFS_REPORT        the report's name (report runs), IMPORTFS_REPORT_GUID its guid
  IMPORTFS_EVENT_JSON    the whole event, one line of JSON
Names come from the API: quote them (\"$IMPORTFS_EXTRACTOR\"), never paste them
into a command string. A failing command is reported and the watch goes on,
unless --exit-on-error. The watch starts at the end of the mount's events log
(--from-start: at its beginning) and follows it until Ctrl-C, SIGTERM or the
unmount, each of which ends it with 0; --no-follow ends it at the log's end.";

#[derive(Debug, Clone, Args)]
#[command(after_help = SHORT_HELP, after_long_help = LONG_HELP)]
pub struct WatchArgs {
    /// The importfs mount to watch.
    pub mountpoint: PathBuf,
    /// Only runs of this extractor (its name or guid); repeatable.
    #[arg(long, value_name = "NAME|GUID")]
    pub extractor: Vec<String>,
    /// Only runs of this report (its name or guid); repeatable.
    #[arg(long, value_name = "NAME|GUID")]
    pub report: Vec<String>,
    /// Only events of this type; repeatable.
    #[arg(long, value_name = "TYPE",
          value_parser = clap::builder::PossibleValuesParser::new(EVENT_TYPES))]
    pub event: Vec<String>,
    /// Print each event as the line of JSON the mount sent.
    #[arg(long, conflicts_with = "command")]
    pub json: bool,
    /// Start at the beginning of the log (every event the mount has seen)
    /// instead of its end, so that a pipeline misses no run that ended
    /// before it started.
    #[arg(long)]
    pub from_start: bool,
    /// Handle the events the log holds now, then exit, instead of
    /// following it (with --from-start: every event of the mount so far).
    #[arg(long)]
    pub no_follow: bool,
    /// Stop (non-zero) the first time the command fails.
    #[arg(long, requires = "command")]
    pub exit_on_error: bool,
    /// Run this for each matching event (after `--`), without a shell.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The extractor or report a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Owner {
    pub name: String,
    pub guid: String,
}

/// A run event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunEvent {
    pub time: String,
    pub event: String,
    pub id: String,
    pub extractor: Option<Owner>,
    pub report: Option<Owner>,
    /// The run's directory relative to the mount: only plain names.
    pub path: String,
}

/// Parse one line (without its newline); the error says what is wrong.
pub fn parse_line(line: &str) -> Result<RunEvent, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let ev = RunEvent::deserialize(value).map_err(|e| format!("not an event: {e}"))?;
    if !is_plain_relative(&ev.path) {
        return Err(format!("its path {:?} is not inside the mount", ev.path));
    }
    Ok(ev)
}

/// `crawlruns/ID` yes; `/etc`, `../x`, `./x` and `` no.
fn is_plain_relative(path: &str) -> bool {
    let p = Path::new(path);
    p.components().next().is_some() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Which events the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub extractors: Vec<String>,
    pub reports: Vec<String>,
    pub events: Vec<String>,
}

impl Filter {
    /// An event type must be one asked for (if any were); with
    /// `--extractor` or `--report`, the run's owner must be one of those
    /// given for its kind, by name (exactly) or guid.
    pub fn matches(&self, ev: &RunEvent) -> bool {
        if !self.events.is_empty() && !self.events.contains(&ev.event) {
            return false;
        }
        if self.extractors.is_empty() && self.reports.is_empty() {
            return true;
        }
        let is_one_of = |owner: &Option<Owner>, wanted: &[String]| {
            owner.as_ref().is_some_and(|o| {
                wanted
                    .iter()
                    .any(|w| *w == o.name || w.eq_ignore_ascii_case(&o.guid))
            })
        };
        is_one_of(&ev.extractor, &self.extractors) || is_one_of(&ev.report, &self.reports)
    }
}

/// Control characters shown escaped, so a hostile name cannot break a line
/// of output in two or send escape sequences to a terminal.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// `TIME EVENT NAME PATH`, the line printed without `--json`.
pub fn human_line(ev: &RunEvent) -> String {
    let owner = ev.extractor.as_ref().or(ev.report.as_ref());
    let name = owner.map_or("-", |o| o.name.as_str());
    printable(&format!("{} {} {} {}", ev.time, ev.event, name, ev.path))
}

/// An environment value: a NUL cannot be passed, so it becomes U+FFFD.
fn env_value(s: &str) -> OsString {
    s.replace('\0', "\u{FFFD}").into()
}

/// The variables a command gets for `ev` (`raw` is the line as sent).
pub fn child_env(ev: &RunEvent, mount: &Path, raw: &str) -> Vec<(&'static str, OsString)> {
    let mut env = vec![
        ("IMPORTFS_EVENT", env_value(&ev.event)),
        ("IMPORTFS_ID", env_value(&ev.id)),
        ("IMPORTFS_PATH", mount.join(&ev.path).into_os_string()),
    ];
    if let Some(o) = &ev.extractor {
        env.push(("IMPORTFS_EXTRACTOR", env_value(&o.name)));
        env.push(("IMPORTFS_EXTRACTOR_GUID", env_value(&o.guid)));
    }
    if let Some(o) = &ev.report {
        env.push(("IMPORTFS_REPORT", env_value(&o.name)));
        env.push(("IMPORTFS_REPORT_GUID", env_value(&o.guid)));
    }
    env.push(("IMPORTFS_EVENT_JSON", env_value(raw)));
    env
}

/// How a command ended, when that is a failure.
pub fn failure(status: ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match (status.success(), status.code(), status.signal()) {
        (true, _, _) => None,
        (_, Some(code), _) => Some(format!("exit status {code}")),
        (_, _, Some(sig)) => Some(format!("killed by signal {sig}")),
        _ => Some(status.to_string()),
    }
}

/// The events file of `mountpoint`, or why there is none.
fn events_file(mountpoint: &Path) -> Result<PathBuf> {
    let (events, shown) = (mountpoint.join(".importfs/events"), mountpoint.display());
    if !mountpoint.exists() {
        bail!("{shown} does not exist");
    }
    if !events.exists() {
        bail!("{shown} is not an importfs mount (no .importfs/events)");
    }
    Ok(events)
}

/// Whether to read on after an event.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    End,
}

fn lock_gate() -> std::sync::MutexGuard<'static, ()> {
    GATE.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn run(args: WatchArgs) -> Result<()> {
    let events = events_file(&args.mountpoint)?;
    let mount = std::path::absolute(&args.mountpoint)
        .with_context(|| format!("cannot make {} absolute", args.mountpoint.display()))?;
    let filter = Filter {
        extractors: args.extractor.clone(),
        reports: args.report.clone(),
        events: args.event.clone(),
    };
    catch_signals();
    let mut log = Follow::start(&events, args.from_start)?;
    let mut told_of_blanks = false;
    loop {
        let lines = match log.look()? {
            Look::Lines(lines) => lines,
            Look::Nothing if args.no_follow => return Ok(()),
            Look::Nothing => {
                sleep_unless_stopped(FOLLOW_EVERY);
                continue;
            }
            Look::Gone(why) => {
                eprintln!("importfs watch: the mount went away ({why})");
                return Ok(());
            }
        };
        for line in lines {
            let _gate = lock_gate();
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            if line == b"\n" {
                if !told_of_blanks {
                    eprintln!(
                        "importfs watch: skipping blank lines: events the mount no longer \
                         keeps (it keeps the last 10,000)"
                    );
                    told_of_blanks = true;
                }
                continue;
            }
            if handle_line(&args, &filter, &mount, &line)? == Flow::End {
                return Ok(());
            }
        }
    }
}

/// Sleep for `d`, or less when Ctrl-C or SIGTERM came.
fn sleep_unless_stopped(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

/// Print, or run the command for, one line as read (with its newline).
fn handle_line(args: &WatchArgs, filter: &Filter, mount: &Path, bytes: &[u8]) -> Result<Flow> {
    let text = String::from_utf8_lossy(bytes);
    let raw = text.trim_end_matches(['\n', '\r']);
    if raw.trim().is_empty() {
        return Ok(Flow::Go);
    }
    let parsed = match std::str::from_utf8(bytes) {
        Ok(_) => parse_line(raw),
        Err(_) => Err("not UTF-8".to_owned()),
    };
    let ev = match parsed {
        Ok(ev) => ev,
        Err(why) => {
            let shown: String = raw.chars().take(200).collect();
            eprintln!(
                "importfs watch: skipping a malformed line ({}): {}",
                printable(&why),
                printable(&shown)
            );
            return Ok(Flow::Go);
        }
    };
    if !filter.matches(&ev) {
        return Ok(Flow::Go);
    }
    if args.command.is_empty() {
        return emit(&if args.json {
            raw.to_owned()
        } else {
            human_line(&ev)
        });
    }
    run_command(args, &ev, mount, raw)
}

/// Write one line to stdout now (it may be a pipe); a closed pipe ends the
/// watch quietly, as it does `yes | head`.
fn emit(line: &str) -> Result<Flow> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(Flow::Go),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Flow::End),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

/// Run the command for `ev` and wait for it; report a failure, or stop on
/// it with `--exit-on-error`.
fn run_command(args: &WatchArgs, ev: &RunEvent, mount: &Path, raw: &str) -> Result<Flow> {
    let program = &args.command[0];
    let mut cmd = Command::new(program);
    cmd.args(&args.command[1..])
        .env_remove(crate::cli::settings::key::KEY_ENV);
    for name in ENV_NAMES {
        cmd.env_remove(name);
    }
    cmd.envs(child_env(ev, mount, raw));
    let outcome = match cmd.spawn() {
        Ok(child) => match wait_child(child) {
            Ok(status) => failure(status),
            Err(e) => Some(format!("cannot be waited for: {e}")),
        },
        Err(e) => Some(format!("cannot start: {e}")),
    };
    if STOP.load(Ordering::SeqCst) {
        return Ok(Flow::End); // ended by our Ctrl-C or SIGTERM: not a failure
    }
    let Some(why) = outcome else {
        return Ok(Flow::Go);
    };
    let msg = format!(
        "{} failed ({why}) for {} {}",
        printable(&program.to_string_lossy()),
        printable(&ev.event),
        printable(&ev.id)
    );
    if args.exit_on_error {
        bail!("{msg}");
    }
    eprintln!("importfs watch: {msg}");
    Ok(Flow::Go)
}

/// Wait for the command; on [`STOP`], send it SIGTERM, then SIGKILL after
/// [`GRACE`]. It is polled rather than waited for, so that the signal goes
/// to a child not yet reaped (whose pid cannot have been reused).
fn wait_child(mut child: Child) -> std::io::Result<ExitStatus> {
    let mut terminated: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if STOP.load(Ordering::SeqCst) {
            match terminated {
                None => {
                    terminate(&mut child);
                    terminated = Some(Instant::now());
                }
                Some(t) if t.elapsed() > GRACE => {
                    let _ = child.kill();
                    return child.wait();
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(POLL);
    }
}

fn terminate(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers; the child is not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        return;
    }
    let _ = child.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRAWL: &str = r#"{"time":"2026-12-05T19:20:03Z","event":"crawlrun.finished","id":"r1","extractor":{"name":"My shop","guid":"E-GUID"},"path":"crawlruns/r1"}"#;
    const REPORT: &str = r#"{"time":"2026-12-05T19:21:00Z","event":"reportrun.failed","id":"p1","report":{"name":"Weekly","guid":"R-GUID"},"path":"reportruns/p1"}"#;

    fn run_event(line: &str) -> RunEvent {
        parse_line(line).unwrap()
    }

    fn filter(extractors: &[&str], reports: &[&str], events: &[&str]) -> Filter {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Filter {
            extractors: v(extractors),
            reports: v(reports),
            events: v(events),
        }
    }

    #[test]
    fn lines_parse() {
        let ev = run_event(CRAWL);
        assert_eq!(ev.event, "crawlrun.finished");
        assert_eq!(ev.extractor.as_ref().unwrap().name, "My shop");
        assert_eq!(ev.report, None);
        assert_eq!(run_event(REPORT).report.unwrap().guid, "R-GUID");
        assert!(parse_line(r#"{"event":"lost","count":7}"#).is_err());
        assert!(parse_line("not json").is_err());
        assert!(parse_line(r#"{"event":"crawlrun.finished","id":"x"}"#).is_err());
        for path in ["/etc", "../x", "crawlruns/../../x", ""] {
            let line = CRAWL.replace("crawlruns/r1", path);
            assert!(parse_line(&line).is_err(), "{path}");
        }
    }

    #[test]
    fn filters_match_by_name_guid_kind_and_type() {
        let (crawl, report) = (run_event(CRAWL), run_event(REPORT));
        assert!(filter(&[], &[], &[]).matches(&crawl));
        assert!(filter(&[], &[], &[]).matches(&report));
        assert!(filter(&["My shop"], &[], &[]).matches(&crawl));
        assert!(filter(&["e-guid"], &[], &[]).matches(&crawl));
        assert!(!filter(&["my shop"], &[], &[]).matches(&crawl));
        assert!(!filter(&["My shop"], &[], &[]).matches(&report));
        assert!(!filter(&[], &["Weekly"], &[]).matches(&crawl));
        assert!(filter(&[], &["R-GUID"], &[]).matches(&report));
        assert!(filter(&["Other", "My shop"], &["Weekly"], &[]).matches(&crawl));
        assert!(filter(&["Other", "My shop"], &["Weekly"], &[]).matches(&report));
        assert!(filter(&[], &[], &["crawlrun.finished"]).matches(&crawl));
        assert!(!filter(&[], &[], &["crawlrun.failed"]).matches(&crawl));
        assert!(!filter(&["My shop"], &[], &["crawlrun.started"]).matches(&crawl));
    }

    #[test]
    fn the_environment_carries_the_event() {
        let ev = run_event(CRAWL);
        let env = child_env(&ev, Path::new("/mnt/io"), CRAWL);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("IMPORTFS_EVENT").unwrap(), "crawlrun.finished");
        assert_eq!(get("IMPORTFS_ID").unwrap(), "r1");
        assert_eq!(get("IMPORTFS_PATH").unwrap(), "/mnt/io/crawlruns/r1");
        assert_eq!(get("IMPORTFS_EXTRACTOR").unwrap(), "My shop");
        assert_eq!(get("IMPORTFS_EXTRACTOR_GUID").unwrap(), "E-GUID");
        assert_eq!(get("IMPORTFS_EVENT_JSON").unwrap(), CRAWL);
        assert_eq!(get("IMPORTFS_REPORT"), None);
        assert!(env.iter().all(|(n, _)| ENV_NAMES.contains(n)));
        let env = child_env(&run_event(REPORT), Path::new("/m"), REPORT);
        let names: Vec<&str> = env.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"IMPORTFS_REPORT") && names.contains(&"IMPORTFS_REPORT_GUID"));
        assert!(!names.contains(&"IMPORTFS_EXTRACTOR"));
        let nul = CRAWL.replace("My shop", "a\\u0000b");
        let env = child_env(&run_event(&nul), Path::new("/m"), &nul);
        assert!(env.iter().all(|(_, v)| !v.as_encoded_bytes().contains(&0)));
    }

    #[test]
    fn human_lines_are_one_line() {
        assert_eq!(
            human_line(&run_event(CRAWL)),
            "2026-12-05T19:20:03Z crawlrun.finished My shop crawlruns/r1"
        );
        let hostile = CRAWL.replace("My shop", "a\\nb\\u001b[31m");
        let line = human_line(&run_event(&hostile));
        assert!(!line.chars().any(char::is_control), "{line}");
        assert!(line.contains("a\\nb"));
    }

    #[test]
    fn failures_are_described() {
        use std::os::unix::process::ExitStatusExt;
        let f = |raw| failure(ExitStatus::from_raw(raw));
        assert_eq!(f(0), None);
        assert_eq!(f(3 << 8).as_deref(), Some("exit status 3"));
        assert_eq!(f(9).as_deref(), Some("killed by signal 9"));
    }
}
