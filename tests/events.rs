//! Run events over real mounts: runs started and ended through the
//! emulator's hooks (as another user or a schedule would, no client
//! involved) show as lines of the `.importfs/events` log, followed with GNU
//! `tail -f` and read whole with `cat`, and in listings at once; the poll
//! costs the calls it should; an outage loses nothing; the log stays within
//! its bound; tools that read every file of the mount finish; `importfs
//! watch` follows the log and ends with the mount.

mod common;

use common::*;
use importfs::emulator::Config;
use serde_json::{json, Value};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// `tail -n 0 -f MOUNT/.importfs/events` (GNU tail, which polls a FUSE
/// file's size every second): the lines written after it started.
struct Reader {
    child: Child,
    lines: Receiver<String>,
}

impl Reader {
    fn start(m: &Mounted) -> Reader {
        let mut child = Command::new("tail")
            .args(["-n", "0", "-f"])
            .arg(m.path(".importfs/events"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("cat");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // tail starts at the end it sees: give it a moment to look.
        std::thread::sleep(Duration::from_millis(300));
        Reader { child, lines }
    }

    /// The next event, within `within`.
    fn next(&self, within: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no event within {within:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    }

    /// Events until one is `event` for run `id`, in order.
    fn until(&self, event: &str, id: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.next(left.max(Duration::from_millis(1)));
            let done = e["event"] == event && e["id"] == id;
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_extractor(emu: &Emu) -> String {
    emu.get_json("/extractors/?_perpage=1")[0]["guid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Start a run of `g` through the emulator's hook, as a schedule would.
fn start_run(emu: &Emu, g: &str) -> String {
    let run = emu.hook(
        reqwest::Method::POST,
        "/_emulator/crawlruns",
        Some(json!({"extractorId": g, "state": "STARTED"})),
    );
    run["guid"].as_str().unwrap().to_owned()
}

fn demo_with_runs_of(seconds: f64) -> Emu {
    Emu::start(Config {
        run_seconds: seconds,
        ..Config::default()
    })
}

#[test]
fn a_run_started_elsewhere_is_started_then_finished_and_listed_at_once() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1.5);
    // A long metadata TTL: only the poll can make the new run show.
    let m = Mounted::new(
        &emu.url,
        &["--poll-interval", "1s", "--metadata-ttl", "60s"],
    );
    let g = first_extractor(&emu);
    let before = m.sh_ok(&format!("ls extractors/{g}/crawlruns"));
    let _ = m.sh(&format!("readlink extractors/{g}/latest"));
    let a = Reader::start(&m);
    let b = Reader::start(&m);
    let id = start_run(&emu, &g);
    let seen = a.until("crawlrun.finished", &id, Duration::from_secs(10));
    let mine: Vec<&Value> = seen.iter().filter(|e| e["id"] == id.as_str()).collect();
    let kinds: Vec<&str> = mine.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["crawlrun.started", "crawlrun.finished"], "{seen:?}");
    let e = mine[1];
    assert_eq!(e["extractor"]["guid"], g.as_str());
    assert_eq!(e["path"], format!("crawlruns/{id}"));
    assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    assert!(m
        .path(e["path"].as_str().unwrap())
        .join("data.csv")
        .exists());
    // At once, not a TTL later.
    let after = m.sh_ok(&format!("ls extractors/{g}/crawlruns"));
    assert!(!before.contains(&id) && after.contains(&id), "{after}");
    let latest = m.sh_ok(&format!("readlink extractors/{g}/latest"));
    assert!(latest.trim().ends_with(&id), "{latest}");
    // The second reader got the same events.
    let seen_b = b.until("crawlrun.finished", &id, Duration::from_secs(5));
    assert_eq!(seen_b.len(), seen.len(), "{seen_b:?}");
}

#[test]
fn polling_costs_one_list_call_of_each_kind_a_round() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1000.0);
    let m = Mounted::new(&emu.url, &["--poll-interval", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    emu.clear_requests();
    std::thread::sleep(Duration::from_millis(4200));
    let all = emu.requests();
    let count = |op: &str| all.iter().filter(|r| r["operation"] == op).count();
    let (runs, reports) = (count("listCrawlruns"), count("listReportRuns"));
    assert!(
        (3..=6).contains(&runs),
        "{runs} crawl run lists in 4.2 s: {all:?}"
    );
    assert_eq!(runs, reports, "one of each a round");
    for r in &all {
        let q = r["query"].to_string();
        assert!(
            q.contains("_perpage") && q.contains("DESC"),
            "one sorted page: {r}"
        );
    }
    // A run that is not final is followed by one get a round, and only
    // once it falls off the page (here it stays on it: no get).
    assert_eq!(all.len(), runs + reports, "nothing else: {all:?}");
    drop(m);
}

#[test]
fn an_outage_invents_nothing_and_loses_nothing() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1000.0);
    let m = Mounted::new(&emu.url, &["--poll-interval", "1s"]);
    let g = first_extractor(&emu);
    std::thread::sleep(Duration::from_millis(1500));
    let r = Reader::start(&m);
    emu.set_faults(json!({"operation": "listCrawlruns", "error_rate": 1.0}));
    let id = start_run(&emu, &g);
    emu.hook(
        reqwest::Method::POST,
        &format!("/_emulator/crawlruns/{id}/finish"),
        None,
    );
    assert!(
        r.lines.recv_timeout(Duration::from_secs(4)).is_err(),
        "nothing while the API is down"
    );
    emu.clear_faults();
    let seen = r.until("crawlrun.finished", &id, Duration::from_secs(15));
    let kinds: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["crawlrun.started", "crawlrun.finished"], "{seen:?}");
}

/// Wait until `.importfs/events` holds a line for `event` of run `id`.
fn wait_logged(m: &Mounted, event: &str, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let want = format!("\"event\":\"{event}\",\"id\":\"{id}\"");
    while !std::fs::read_to_string(m.path(".importfs/events"))
        .unwrap()
        .contains(&want)
    {
        assert!(Instant::now() < deadline, "no {event} of {id} logged");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A mount of the demo account (runs of 1 s, polled every second) that has
/// logged one run's end, and that run; None where FUSE cannot run here.
fn mounted_after_a_run() -> Option<(Emu, Mounted, String)> {
    if !fuse_or_skip() {
        return None;
    }
    let emu = demo_with_runs_of(1.0);
    let m = Mounted::new(&emu.url, &["--poll-interval", "1s"]);
    let id = start_run(&emu, &first_extractor(&emu));
    wait_logged(&m, "crawlrun.finished", &id, Duration::from_secs(15));
    Some((emu, m, id))
}

#[test]
fn cat_of_the_log_ends_and_shows_what_happened_before_it() {
    let Some((_emu, m, id)) = mounted_after_a_run() else {
        return;
    };
    // cat ends by itself (a read past the end is end of file at once).
    let out = m.sh_ok("timeout 10 cat .importfs/events");
    let size = std::fs::metadata(m.path(".importfs/events")).unwrap().len();
    assert_eq!(out.len() as u64, size, "the size is the bytes there are");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let mine: Vec<&str> = events
        .iter()
        .filter(|e| e["id"] == id.as_str())
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(mine, ["crawlrun.started", "crawlrun.finished"], "{out}");
    // Offsets are stable: a later read of the same bytes gives the same.
    let again = std::fs::read(m.path(".importfs/events")).unwrap();
    assert_eq!(&again[..out.len()], out.as_bytes());
    // Python reads it to its end as well, line by line.
    let py = m.sh_ok(
        "timeout 10 python3 -c 'import json,sys; \
         print(sum(1 for l in open(\".importfs/events\") if json.loads(l)))'",
    );
    assert_eq!(py.trim(), events.len().to_string());
}

#[test]
fn the_log_keeps_its_bound_and_only_whole_lines() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1000.0);
    let m = Mounted::with_env(
        &emu.url,
        &["--poll-interval", "1s"],
        KEY,
        &[("IMPORTFS_EVENTS_KEEP", "4")],
    );
    let g = first_extractor(&emu);
    let mut ids = Vec::new();
    for _ in 0..6 {
        let id = start_run(&emu, &g);
        emu.hook(
            reqwest::Method::POST,
            &format!("/_emulator/crawlruns/{id}/finish"),
            None,
        );
        ids.push(id);
    }
    // Every run's start and end logged. Which run's end comes last is the
    // API's order of runs started within one clock tick, so the wait is on
    // the count, not on the last run's line (which the bound may drop).
    let deadline = Instant::now() + Duration::from_secs(15);
    while m.stat("events_logged") < 2 * ids.len() as u64 {
        assert!(Instant::now() < deadline, "not every start and end logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bytes = std::fs::read(m.path(".importfs/events")).unwrap();
    let size = std::fs::metadata(m.path(".importfs/events")).unwrap().len();
    assert_eq!(bytes.len() as u64, size);
    let text = String::from_utf8(bytes).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(kept.len(), 4, "the last 4 events only:\n{text}");
    for l in &kept {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("torn: {l}: {e}"));
    }
    let kept_bytes: u64 = kept.iter().map(|l| l.len() as u64 + 1).sum();
    assert_eq!(
        m.stat("events_kept_bytes"),
        kept_bytes,
        "memory holds only those"
    );
    assert!(
        text[..text.len() - kept_bytes as usize]
            .bytes()
            .all(|b| b == b'\n'),
        "what was dropped reads as blank lines"
    );
    for l in &kept {
        assert!(ids.iter().any(|id| l.contains(id.as_str())), "{l}");
    }
}

#[test]
fn tools_that_read_every_file_of_the_mount_finish() {
    let Some((_emu, m, id)) = mounted_after_a_run() else {
        return;
    };
    let copy = m.dir.path().join("copy");
    // Exit 124 is timeout's: the tool did not finish. Other failures are
    // the write-only control files, which no tool can read.
    for (tool, script) in [
        (
            "grep -r",
            "timeout 120 grep -r -l crawlrun.finished . ".to_owned(),
        ),
        ("cp -r", format!("timeout 120 cp -r . '{}'", copy.display())),
        ("tar", "timeout 120 tar cf - . | wc -c".to_owned()),
        ("du", "timeout 120 du -s .".to_owned()),
    ] {
        let out = m.sh(&script);
        assert_ne!(out.status.code(), Some(124), "{tool} did not finish");
        if tool == "grep -r" {
            let found = String::from_utf8_lossy(&out.stdout);
            assert!(found.contains("./.importfs/events"), "{found}");
        }
    }
    let copied = std::fs::read_to_string(copy.join(".importfs/events")).unwrap();
    assert!(copied.contains(&id), "{copied}");
}

#[test]
fn watch_follows_the_log_and_ends_with_the_mount() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1.0);
    let g = first_extractor(&emu);
    for lazy in [false, true] {
        let m = Mounted::new(&emu.url, &["--poll-interval", "1s"]);
        let before = start_run(&emu, &g);
        wait_logged(&m, "crawlrun.finished", &before, Duration::from_secs(15));
        let out = m.dir.path().join("ran.txt");
        let script = format!("printf '%s\\n' \"$IMPORTFS_ID\" >> '{}'", out.display());
        let args = ["--event", "crawlrun.finished", "--", "sh", "-c", &script];
        let mut from_end = watch(&m, &args);
        let mut from_start = watch(&m, &[&["--from-start"][..], &args].concat());
        std::thread::sleep(Duration::from_millis(700));
        let after = start_run(&emu, &g);
        let deadline = Instant::now() + Duration::from_secs(15);
        let count = |id: &str| {
            let ran = std::fs::read_to_string(&out).unwrap_or_default();
            ran.lines().filter(|l| *l == id).count()
        };
        while count(&after) < 2 {
            assert!(
                Instant::now() < deadline,
                "the watches never ran for {after}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(count(&after), 2, "once per watch");
        assert_eq!(count(&before), 1, "only --from-start saw the earlier run");
        // `importfs unmount` needs nothing from the watches: they hold no
        // file of the mount open while they wait.
        let mut how = vec!["unmount"];
        if lazy {
            how.push("--lazy");
        }
        let un = Command::new(importfs_bin())
            .args(&how)
            .arg(&m.mnt)
            .output()
            .unwrap();
        assert!(
            un.status.success(),
            "{}",
            String::from_utf8_lossy(&un.stderr)
        );
        for w in [&mut from_end, &mut from_start] {
            let status = wait_exit(w, Duration::from_secs(10));
            assert!(status.success(), "{how:?}: watch ended with {status}");
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "still running after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `importfs watch MOUNT ARGS`, its output discarded.
fn watch(m: &Mounted, args: &[&str]) -> Child {
    Command::new(importfs_bin())
        .arg("watch")
        .arg(&m.mnt)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("importfs watch")
}

#[test]
fn watch_runs_its_command_for_its_extractor_only_and_ends_cleanly() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1.0);
    let m = Mounted::new(&emu.url, &["--poll-interval", "1s"]);
    let gs = emu.get_json("/extractors/?_perpage=2");
    let (g1, g2) = (
        gs[0]["guid"].as_str().unwrap(),
        gs[1]["guid"].as_str().unwrap(),
    );
    let out = m.dir.path().join("ran.txt");
    let script = format!(
        "printf '%s %s\\n' \"$IMPORTFS_EVENT\" \"$IMPORTFS_ID\" >> '{}'",
        out.display()
    );
    let mut w = watch(
        &m,
        &[
            "--extractor",
            g1,
            "--event",
            "crawlrun.finished",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let r1 = start_run(&emu, g1);
    let r2 = start_run(&emu, g2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains(&r1)
    {
        assert!(Instant::now() < deadline, "no command for {r1}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let ran = std::fs::read_to_string(&out).unwrap();
    assert_eq!(ran, format!("crawlrun.finished {r1}\n"), "never for {r2}");
    // Ctrl-C ends it at once, though it is waiting for the next event.
    // SAFETY: kill(2) on the watch this test started.
    unsafe { libc::kill(w.id() as i32, libc::SIGINT) };
    let status = wait_exit(&mut w, Duration::from_secs(5));
    assert!(status.success(), "watch ended with {status}");
    // An unmount ends it too.
    let mut w = watch(&m, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let un = Command::new(importfs_bin())
        .args(["unmount", "--lazy"])
        .arg(&m.mnt)
        .output()
        .unwrap();
    assert!(
        un.status.success(),
        "{}",
        String::from_utf8_lossy(&un.stderr)
    );
    let status = wait_exit(&mut w, Duration::from_secs(10));
    assert!(status.success(), "watch ended with {status}");
}

#[test]
fn a_report_run_that_finishes_is_an_event_of_its_report() {
    if !fuse_or_skip() {
        return;
    }
    let emu = demo_with_runs_of(1000.0);
    let m = Mounted::new(&emu.url, &["--poll-interval", "1s"]);
    let rep = emu.get_json("/reports/?_perpage=1")[0]["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    let r = Reader::start(&m);
    emu.hook(
        reqwest::Method::POST,
        &format!("/reports/{rep}/start?_apikey={KEY}"),
        None,
    );
    let runs = emu.get_json("/reportruns/?_perpage=1000");
    let id = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reportId"] == rep.as_str())
        .max_by_key(|r| r["_meta"]["createdAt"].to_string())
        .expect("the new report run")["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.hook(
        reqwest::Method::POST,
        &format!("/_emulator/reportruns/{id}/finish"),
        None,
    );
    let seen = r.until("reportrun.finished", &id, Duration::from_secs(10));
    let e = seen.last().unwrap();
    assert_eq!(e["report"]["guid"], rep.as_str(), "{e}");
    assert!(e.get("extractor").is_none(), "{e}");
    assert_eq!(e["path"], format!("reportruns/{id}"));
    assert!(m.path(&format!("reportruns/{id}")).is_dir());
}
