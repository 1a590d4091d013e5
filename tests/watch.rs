//! `importfs watch` without a mount: a regular file at
//! `TMP/fakemnt/.importfs/events` stands in for the mount's events log (a
//! file that grows), and the real binary runs against it: read whole with
//! `--from-start --no-follow`, or followed as lines are appended, until the
//! file goes away as a mount's does at unmount.
//!
//! The command the watch runs appends one record per event to `$OUT`, so
//! the tests see which events it ran for, in which order, and with what
//! environment. One extractor name is hostile (`$(touch ...)`, backquotes,
//! quotes, a newline): it must arrive verbatim and run nothing.

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const RECORD: &str = r#"printf '%s|%s|%s|%s|%s|%s\n' "$IMPORTFS_EVENT" "$IMPORTFS_ID" "$IMPORTFS_EXTRACTOR" "$IMPORTFS_EXTRACTOR_GUID" "$IMPORTFS_REPORT" "$IMPORTFS_REPORT_GUID" >> "$OUT""#;

fn crawl(event: &str, id: &str, name: &str, guid: &str) -> String {
    json!({"time": "2026-12-05T19:20:03Z", "event": event, "id": id,
           "extractor": {"name": name, "guid": guid}, "path": format!("crawlruns/{id}")})
    .to_string()
}

fn report(event: &str, id: &str, name: &str, guid: &str) -> String {
    json!({"time": "2026-12-05T19:21:00Z", "event": event, "id": id,
           "report": {"name": name, "guid": guid}, "path": format!("reportruns/{id}")})
    .to_string()
}

/// A fake mount in a temporary directory.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fakemnt/.importfs")).unwrap();
        Fake { dir }
    }

    /// The events file as a regular file holding `lines`.
    fn with_lines(lines: &[String]) -> Fake {
        let f = Fake::new();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(f.events(), text).unwrap();
        f
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("fakemnt")
    }

    fn events(&self) -> PathBuf {
        self.mnt().join(".importfs/events")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn pwned(&self) -> PathBuf {
        self.dir.path().join("pwned")
    }

    fn records(&self) -> String {
        std::fs::read_to_string(self.out()).unwrap_or_default()
    }

    /// `importfs watch ARGS` with `$OUT` set, run from the temp directory.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_importfs"));
        c.arg("watch")
            .args(args)
            .current_dir(self.dir.path())
            .env("OUT", self.out())
            .env_remove("IMPORTIO_API_KEY")
            .env_remove("IMPORTFS_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// The watch over the whole log as it is, to its end (`--from-start
    /// --no-follow`), with `args`.
    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec![args[0], "--from-start", "--no-follow"];
        all.extend(&args[1..]);
        finish(self.command(&all).spawn().unwrap())
    }
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Wait for the watch (at most a minute), collecting its output.
fn finish(mut child: Child) -> Run {
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let status = wait_for(&mut child, Duration::from_secs(60));
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("importfs watch did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hostile name: command substitutions, quotes and a newline.
fn hostile(f: &Fake) -> String {
    let p = f.pwned().display().to_string();
    format!("x$(touch {p})`touch {p}`\"q'\nz; touch {p} #")
}

/// Seven lines: five run events, a blank line (what the log's dropped
/// bytes read as) and a malformed one.
fn mixed(f: &Fake) -> Vec<String> {
    vec![
        crawl("crawlrun.finished", "r1", "My shop", "G-SHOP"),
        crawl("crawlrun.started", "r2", "Other", "G-OTHER"),
        report("reportrun.finished", "p1", "Weekly", "G-WEEK"),
        String::new(),
        "{not json".to_owned(),
        crawl("crawlrun.finished", "r3", &hostile(f), "G-HOST"),
        crawl("crawlrun.failed", "r4", "My shop", "G-SHOP"),
    ]
}

fn mixed_fake() -> Fake {
    let f = Fake::new();
    let mut text = mixed(&f).join("\n");
    text.push('\n');
    std::fs::write(f.events(), text).unwrap();
    f
}

fn record(ev: &str, id: &str, ext: &str, eguid: &str, rep: &str, rguid: &str) -> String {
    format!("{ev}|{id}|{ext}|{eguid}|{rep}|{rguid}\n")
}

#[test]
fn runs_the_command_once_per_event_in_order_and_names_stay_data() {
    let f = mixed_fake();
    let r = f.run(&["fakemnt", "--", "sh", "-c", RECORD]);
    assert!(r.status.success(), "{}", r.stderr);
    let want = [
        record("crawlrun.finished", "r1", "My shop", "G-SHOP", "", ""),
        record("crawlrun.started", "r2", "Other", "G-OTHER", "", ""),
        record("reportrun.finished", "p1", "", "", "Weekly", "G-WEEK"),
        record("crawlrun.finished", "r3", &hostile(&f), "G-HOST", "", ""),
        record("crawlrun.failed", "r4", "My shop", "G-SHOP", "", ""),
    ]
    .concat();
    assert_eq!(f.records(), want);
    assert!(!f.pwned().exists(), "a name was executed");
    assert!(
        r.stderr.contains("importfs watch: skipping blank lines"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("malformed"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[test]
fn filters_by_name_guid_kind_and_type() {
    let ids = |args: &[&str]| {
        let f = mixed_fake();
        let mut all = vec!["fakemnt"];
        all.extend(args);
        all.extend(["--", "sh", "-c", r#"echo "$IMPORTFS_ID" >> "$OUT""#]);
        let r = f.run(&all);
        assert!(r.status.success(), "{}", r.stderr);
        f.records().lines().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(ids(&["--extractor", "My shop"]), "r1 r4");
    assert_eq!(
        ids(&["--extractor", "G-OTHER", "--extractor", "G-HOST"]),
        "r2 r3"
    );
    assert_eq!(ids(&["--extractor", "my shop"]), "");
    assert_eq!(ids(&["--report", "Weekly"]), "p1");
    assert_eq!(
        ids(&["--report", "G-WEEK", "--extractor", "Other"]),
        "r2 p1"
    );
    assert_eq!(ids(&["--event", "crawlrun.finished"]), "r1 r3");
    assert_eq!(
        ids(&["--extractor", "My shop", "--event", "crawlrun.failed"]),
        "r4"
    );
    let f = mixed_fake();
    let r = f.run(&["fakemnt", "--event", "crawlrun.done"]);
    assert!(!r.status.success(), "an unknown event type is refused");
}

#[test]
fn the_environment_is_absolute_whole_and_keyless() {
    let f = mixed_fake();
    let script = r#"printf '%s\n%s\n%s\n' "$IMPORTFS_PATH" "${IMPORTIO_API_KEY-unset}" "$IMPORTFS_EVENT_JSON" >> "$OUT""#;
    let r = f
        .command(&[
            "fakemnt",
            "--from-start",
            "--no-follow",
            "--extractor",
            "G-HOST",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("IMPORTIO_API_KEY", "secret-key")
        .env("IMPORTFS_REPORT", "stale")
        .spawn()
        .map(finish)
        .unwrap();
    assert!(r.status.success(), "{}", r.stderr);
    let mnt = f.dir.path().canonicalize().unwrap().join("fakemnt");
    let line = &mixed(&f)[5];
    let want = format!("{}\nunset\n{line}\n", mnt.join("crawlruns/r3").display());
    assert_eq!(f.records(), want);
    assert!(Path::new(f.records().lines().next().unwrap()).is_absolute());
    assert!(!f.pwned().exists());
}

#[test]
fn prints_human_lines_or_the_json_as_sent() {
    let f = mixed_fake();
    let r = f.run(&["fakemnt", "--extractor", "My shop"]);
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "2026-12-05T19:20:03Z crawlrun.finished My shop crawlruns/r1\n\
         2026-12-05T19:20:03Z crawlrun.failed My shop crawlruns/r4\n"
    );
    let r = f.run(&["fakemnt"]);
    assert_eq!(r.stdout.lines().count(), 5, "{}", r.stdout);
    assert!(!r.stdout.contains("\nz; touch"), "a name broke a line");
    let r = f.run(&["fakemnt", "--json", "--report", "Weekly"]);
    assert!(r.status.success(), "{}", r.stderr);
    let lines = mixed(&f);
    assert_eq!(r.stdout, format!("{}\n", lines[2]));
}

#[test]
fn a_failing_command_is_reported_and_the_watch_goes_on_unless_told_not_to() {
    let f = mixed_fake();
    let script = r#"echo "$IMPORTFS_ID" >> "$OUT"; exit 3"#;
    let r = f.run(&["fakemnt", "--", "sh", "-c", script]);
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(f.records(), "r1\nr2\np1\nr3\nr4\n");
    assert!(
        r.stderr
            .contains("importfs watch: sh failed (exit status 3) for crawlrun.finished r1"),
        "{}",
        r.stderr
    );

    let f = mixed_fake();
    let r = f.run(&["fakemnt", "--exit-on-error", "--", "sh", "-c", script]);
    assert!(!r.status.success());
    assert_eq!(f.records(), "r1\n");
    assert!(
        r.stderr
            .contains("sh failed (exit status 3) for crawlrun.finished r1"),
        "{}",
        r.stderr
    );

    let f = mixed_fake();
    let r = f.run(&[
        "fakemnt",
        "--extractor",
        "My shop",
        "--",
        "/nonexistent/cmd",
    ]);
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(
        r.stderr
            .matches("/nonexistent/cmd failed (cannot start")
            .count(),
        2
    );
}

#[test]
fn a_directory_without_an_events_file_is_not_a_mount() {
    let f = Fake::new();
    let r = f.run(&["fakemnt"]);
    assert!(!r.status.success());
    assert!(
        r.stderr
            .contains("fakemnt is not an importfs mount (no .importfs/events)"),
        "{}",
        r.stderr
    );
    let r = f.run(&["nowhere"]);
    assert!(!r.status.success());
    assert!(r.stderr.contains("nowhere does not exist"), "{}", r.stderr);
}

#[test]
fn an_empty_log_read_to_its_end_ends_with_0_at_once() {
    let f = Fake::with_lines(&[]);
    std::fs::write(f.events(), "").unwrap();
    let r = f.run(&["fakemnt"]);
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Read lines of the watch's output until one is `want`, within 15 s.
fn expect_line(out: &std::sync::mpsc::Receiver<String>, want: &str) {
    let got = out
        .recv_timeout(Duration::from_secs(15))
        .expect("no line from the watch");
    assert_eq!(got, want);
}

#[test]
fn a_growing_log_is_followed_from_its_end_and_its_removal_is_the_unmount() {
    let old = crawl("crawlrun.finished", "r0", "My shop", "G-SHOP");
    let f = Fake::with_lines(&[old]);
    let mut child = f.command(&["fakemnt", "--json"]).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    let first = crawl("crawlrun.started", "r1", "My shop", "G-SHOP");
    append(&f.events(), &format!("{first}\n"));
    // Only what was written after the start, flushed per line.
    expect_line(&out, &first);
    // A line written in two pieces comes out once, whole.
    let second = crawl("crawlrun.finished", "r1", "My shop", "G-SHOP");
    let (a, b) = second.split_at(20);
    append(&f.events(), a);
    std::thread::sleep(Duration::from_millis(1200));
    append(&f.events(), &format!("{b}\n"));
    expect_line(&out, &second);
    // The file going away is the mount going away: the end, with 0.
    std::fs::remove_file(f.events()).unwrap();
    let status = wait_for(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(out.try_recv().is_err(), "nothing else");
    assert!(err.contains("importfs watch: the mount went away"), "{err}");
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with plain integers, on a child not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

#[test]
fn sigterm_ends_the_watch_with_0_even_during_a_command() {
    // Waiting for events.
    let f = Fake::with_lines(&[]);
    let mut child = f.command(&["fakemnt"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&child);
    let status = wait_for(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");

    // Running a command: it is told to stop, and is not a failure.
    let f = Fake::with_lines(&[]);
    let script = r#"echo started >> "$OUT"; exec sleep 30"#;
    let mut child = f
        .command(&["fakemnt", "--exit-on-error", "--", "sh", "-c", script])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append(
        &f.events(),
        &format!("{}\n", crawl("crawlrun.finished", "r1", "A", "G")),
    );
    let start = Instant::now();
    while f.records().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the command never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&child);
    let status = wait_for(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
