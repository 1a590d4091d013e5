//! Proving the mount under faults, outages, crashes, load and a hunt for the
//! key: a flaky API never yields a wrong byte, only EIO, and no file
//! operation waits much past the configured API deadline; a dead API leaves
//! cached things readable and `ls` answering, and a revived one is used
//! without a remount; a killed mount leaves no dead mountpoint behind; many
//! readers and writers at once each get exactly what they should, one PUT per
//! write; and the API key shows up nowhere, even at trace level.
//!
//! Every test runs its own emulator(s) and mount(s) in its own temp dir and
//! is bounded to a couple of minutes on a busy 2-core machine.

mod common;

use common::*;
use importfs::emulator::{Config, Dataset, Emulator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every result file of these runs, straight from the emulator: mount path
/// (relative) → bytes.
fn truth_of(emu: &Emu, runs: &[String]) -> HashMap<String, Arc<Vec<u8>>> {
    let mut truth = HashMap::new();
    for run in runs {
        for (name, ft) in RUN_FILES {
            let bytes = emu.get_bytes(&format!("/crawlruns/{run}/{ft}"));
            assert!(!bytes.is_empty(), "{run}/{ft} is empty at the source");
            truth.insert(format!("crawlruns/{run}/{name}"), Arc::new(bytes));
        }
    }
    truth
}

/// The slowest syscall seen, and what it was.
#[derive(Debug, Clone, Default)]
struct Slowest {
    took: Duration,
    what: String,
}

impl Slowest {
    fn note(&mut self, started: Instant, what: &str, path: &Path) {
        let took = started.elapsed();
        if took > self.took {
            self.took = took;
            self.what = format!("{what} {}", path.display());
        }
    }

    fn merge(&mut self, other: Slowest) {
        if other.took > self.took {
            *self = other;
        }
    }
}

/// Copy a file the way `cp` does (open, fstat, read until EOF), timing each
/// syscall. The size fstat reports must be the size read.
fn read_timed(path: &Path, slowest: &mut Slowest) -> std::io::Result<Vec<u8>> {
    let t = Instant::now();
    let f = std::fs::File::open(path);
    slowest.note(t, "open", path);
    let mut f = f?;
    let t = Instant::now();
    let meta = f.metadata();
    slowest.note(t, "fstat", path);
    let size = meta?.len();
    let mut out = Vec::with_capacity(size as usize);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let t = Instant::now();
        let n = f.read(&mut buf);
        slowest.note(t, "read", path);
        match n {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    assert_eq!(
        out.len() as u64,
        size,
        "{}: fstat said {size} bytes, read gave {}",
        path.display(),
        out.len()
    );
    Ok(out)
}

/// Requests in the emulator's log with this status (0: dropped connection).
fn with_status(reqs: &[Value], status: u64) -> usize {
    reqs.iter().filter(|r| r["status"] == status).count()
}

// ---- 1. fault soak ----------------------------------------------------------

/// 8 readers copy every result file of 50 runs three times while the API
/// fails a quarter of all requests in one way or another and every answer is
/// 20-200 ms late. Each copy is byte-identical or fails with EIO; no syscall
/// takes longer than the API deadline plus a second; and once the faults
/// stop, every file reads correctly (no failure stuck in a cache).
#[test]
fn fault_soak_gives_exact_bytes_or_eio_within_the_deadline() {
    if !fuse_or_skip() {
        return;
    }
    const DEADLINE: Duration = Duration::from_secs(10);
    const READERS: usize = 8;
    const PASSES: usize = 3;
    let emu = Emu::start(Config {
        dataset: Dataset::Scale,
        extractors: 5,
        crawlruns: 50,
        result_bytes: 200_000,
        ..Config::default()
    });
    let runs = emu.finished_runs();
    assert_eq!(runs.len(), 50, "the scale account has 50 finished runs");
    let truth = truth_of(&emu, &runs);
    let m = Mounted::new(&emu.url, &["--api-deadline", "10s", "--api-timeout", "4s"]);

    emu.clear_requests();
    emu.set_faults(json!({
        "operation": "*",
        "latency_ms": 20,
        "latency_max_ms": 200,
        "error_rate": 0.10,
        "throttle_rate": 0.05,
        "retry_after_s": 1,
        "truncate_rate": 0.05,
        "drop_rate": 0.05,
    }));

    // Three passes over every file, each pass in its own shuffled order, so
    // the same file is often read by two threads at once.
    let mut paths: Vec<&String> = truth.keys().collect();
    paths.sort();
    let mut work: Vec<&String> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..PASSES {
        let mut pass = paths.clone();
        rng.shuffle(&mut pass);
        work.extend(pass);
    }
    let next = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let eio = AtomicUsize::new(0);
    let wrong: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let slowest = Mutex::new(Slowest::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..READERS {
            s.spawn(|| {
                let mut mine = Slowest::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(rel) = work.get(i) else { break };
                    match read_timed(&m.path(rel), &mut mine) {
                        Ok(bytes) if bytes == **truth[*rel] => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(bytes) => wrong.lock().unwrap().push(format!(
                            "{rel}: {} bytes differ from the source's {}",
                            bytes.len(),
                            truth[*rel].len()
                        )),
                        Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                            eio.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => wrong.lock().unwrap().push(format!("{rel}: {e}")),
                    }
                }
                slowest.lock().unwrap().merge(mine);
            });
        }
    });
    let soak_time = started.elapsed();
    let reqs = emu.requests();
    emu.clear_faults();
    let (ok, eio) = (ok.into_inner(), eio.into_inner());
    let slowest = slowest.into_inner().unwrap();
    let wrong = wrong.into_inner().unwrap();
    eprintln!(
        "fault soak: {} reads in {:.1?}: {ok} exact, {eio} EIO; slowest syscall {:.2?} ({}); \
         API requests {}, 500s {}, 429s {}, dropped {}",
        work.len(),
        soak_time,
        slowest.took,
        slowest.what,
        reqs.len(),
        with_status(&reqs, 500),
        with_status(&reqs, 429),
        with_status(&reqs, 0),
    );
    assert!(
        wrong.is_empty(),
        "reads that were neither exact nor EIO:\n{}\nlog tail:\n{}",
        wrong.join("\n"),
        tail(&m.log_text(), 30)
    );
    assert_eq!(ok + eio, work.len());
    // The faults really fired, and the retries really rode them out.
    assert!(with_status(&reqs, 500) > 0, "no 500 was served");
    assert!(with_status(&reqs, 429) > 0, "no 429 was served");
    assert!(with_status(&reqs, 0) > 0, "no connection was dropped");
    assert!(
        ok * 10 >= work.len() * 9,
        "only {ok} of {} reads succeeded: the retries do not ride out the faults",
        work.len()
    );
    assert!(
        slowest.took <= DEADLINE + Duration::from_secs(1),
        "a syscall took {:?} ({}), past the {DEADLINE:?} deadline",
        slowest.took,
        slowest.what
    );

    // Faults off: every file reads, exactly, at once.
    let mut after = Slowest::default();
    for rel in &paths {
        let bytes = read_timed(&m.path(rel), &mut after)
            .unwrap_or_else(|e| panic!("{rel} after the faults: {e}"));
        assert!(bytes == **truth[*rel], "{rel} differs after the faults");
    }
}

// ---- 2. API down ------------------------------------------------------------

/// Stop the emulator under a live mount: cached files still read, an
/// uncached one fails with EIO within the deadline, `ls` answers from what
/// it knew; then a new emulator on the same address is used at once.
#[test]
fn a_dead_api_leaves_the_cache_readable_and_a_revived_one_is_used() {
    if !fuse_or_skip() {
        return;
    }
    const DEADLINE: Duration = Duration::from_secs(5);
    let mut emu = Emu::demo();
    let addr = emu.emu.as_ref().expect("emulator").addr();
    let m = Mounted::new(&emu.url, &["--api-deadline", "5s", "--api-timeout", "2s"]);
    let runs = emu.finished_runs();
    assert!(runs.len() >= 2, "the demo account has finished runs");
    let (a, b) = (&runs[0], &runs[1]);
    let a_csv = emu.get_bytes(&format!("/crawlruns/{a}/csv"));
    let b_csv = emu.get_bytes(&format!("/crawlruns/{b}/csv"));

    // Warm up: a's file and the listings.
    assert!(std::fs::read(m.path(&format!("crawlruns/{a}/data.csv"))).unwrap() == a_csv);
    let a_json = std::fs::read(m.path(&format!("crawlruns/{a}/crawlrun.json"))).unwrap();
    let ls_ext = m.sh_ok("ls extractors");
    let ls_runs = m.sh_ok("ls crawlruns");
    assert!(ls_runs.contains(b.as_str()));
    assert!(!ls_ext.trim().is_empty());

    emu.rt
        .block_on(emu.emu.take().expect("emulator").shutdown());
    // Past the metadata TTL (2 s), so listings must be asked again and fail.
    std::thread::sleep(Duration::from_millis(2500));

    let t = Instant::now();
    let got = std::fs::read(m.path(&format!("crawlruns/{a}/data.csv"))).expect("cached file");
    assert!(got == a_csv, "the cached file changed");
    let got = std::fs::read(m.path(&format!("crawlruns/{a}/crawlrun.json"))).expect("cached run");
    assert_eq!(got, a_json);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "cached reads took {:?} with the API down",
        t.elapsed()
    );

    let t = Instant::now();
    let err = std::fs::read(m.path(&format!("crawlruns/{b}/data.csv")))
        .expect_err("an uncached file cannot be read with the API down");
    let took = t.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        took <= DEADLINE + Duration::from_secs(1),
        "the failed read took {took:?}"
    );

    for (dir, before) in [("extractors", &ls_ext), ("crawlruns", &ls_runs)] {
        let t = Instant::now();
        assert_eq!(
            &m.sh_ok(&format!("ls {dir}")),
            before,
            "ls {dir} while down"
        );
        let took = t.elapsed();
        assert!(
            took <= DEADLINE + Duration::from_secs(1),
            "ls {dir} with the API down took {took:?}"
        );
    }
    let stats = std::fs::read_to_string(m.path(".importfs/stats")).unwrap();
    assert!(
        !stats.contains("stale_answers 0\n"),
        "ls was not answered from the stale cache:\n{stats}"
    );

    // The API is back, at the same address: no remount needed.
    let revived = emu
        .rt
        .block_on(Emulator::start(Config {
            listen: addr,
            api_key: KEY.into(),
            ..Config::default()
        }))
        .expect("a new emulator binds the old address");
    emu.emu = Some(revived);
    let t = Instant::now();
    let got = std::fs::read(m.path(&format!("crawlruns/{b}/data.csv")))
        .unwrap_or_else(|e| panic!("{b}/data.csv once the API is back: {e}"));
    assert!(got == b_csv, "{b}/data.csv differs once the API is back");
    assert!(t.elapsed() < DEADLINE, "took {:?}", t.elapsed());
    // Something new on the revived API shows within the TTL.
    let made = emu.hook(
        reqwest::Method::POST,
        "/_emulator/extractors",
        Some(json!({"name": "After the outage", "inputs": ["https://back.example/"]})),
    );
    assert!(made["guid"].is_string(), "{made}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if m.sh_ok("ls extractors").contains("After the outage") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new extractor never showed:\n{}",
            tail(&m.log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        m.sh_ok("cat 'extractors/After the outage/inputs'"),
        "https://back.example/\n"
    );
}

/// A hung API (every answer an hour late) while 8 shells work at once: each
/// `ls` of a listed directory answers from what it knew, each read of a file
/// not yet fetched and each lookup of an unknown id fails with EIO, and none
/// of them takes longer than the deadline plus a second, however many wait
/// on the same call. Once the API answers again, so does the mount.
///
/// Only 4 of the shells read a result file: that is how many downloads run
/// at once (`max_concurrent_downloads`); the test below queues more.
#[test]
fn a_hung_api_gives_eio_or_a_cached_answer_within_the_deadline() {
    hung_api(4);
}

/// Twice as many readers as download slots: the 5th to 8th wait in the
/// queue, and must still get their EIO within one deadline (they used to
/// wait out the downloads ahead of them and then their own deadline).
#[test]
fn a_hung_api_fails_queued_downloads_within_the_deadline() {
    hung_api(8);
}

/// What a shell did, how long it took, and whether it went as it should.
type Timed = (String, Duration, Result<(), String>);

fn hung_api(data_readers: usize) {
    if !fuse_or_skip() {
        return;
    }
    const DEADLINE: Duration = Duration::from_secs(4);
    const SHELLS: usize = 8;
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &["--api-deadline", "4s", "--api-timeout", "2s"]);
    let runs = emu.finished_runs();
    assert!(runs.len() >= 2);
    let ls_ext = m.sh_ok("ls extractors");
    let ls_runs = m.sh_ok("ls crawlruns");
    // Sizes known (ls -l asks them), contents not fetched.
    for run in &runs {
        m.sh_ok(&format!("ls -l crawlruns/{run} > /dev/null"));
    }
    emu.set_faults(json!({"operation": "*", "latency_ms": 3_600_000}));
    std::thread::sleep(Duration::from_millis(2500)); // past the metadata TTL

    let results: Mutex<Vec<Timed>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for i in 0..SHELLS {
            let (m, results, runs) = (&m, &results, &runs);
            let (ls_ext, ls_runs) = (&ls_ext, &ls_runs);
            s.spawn(move || {
                let note = |what: String, t: Instant, r: Result<(), String>| {
                    results.lock().unwrap().push((what, t.elapsed(), r));
                };
                let eio = |r: std::io::Result<Vec<u8>>| match r {
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(()),
                    Err(e) => Err(format!("{e}, not EIO")),
                    Ok(_) => Err("succeeded".to_owned()),
                };
                let t = Instant::now();
                let out = m.sh("ls extractors");
                let r = if String::from_utf8_lossy(&out.stdout) == **ls_ext {
                    Ok(())
                } else {
                    Err(format!("{out:?}"))
                };
                note("ls extractors".into(), t, r);
                let t = Instant::now();
                let out = m.sh("ls crawlruns");
                let r = if String::from_utf8_lossy(&out.stdout) == **ls_runs {
                    Ok(())
                } else {
                    Err(format!("{out:?}"))
                };
                note("ls crawlruns".into(), t, r);
                if i < data_readers {
                    let rel = format!("crawlruns/{}/data.csv", runs[i % runs.len()]);
                    let t = Instant::now();
                    note(format!("cat {rel}"), t, eio(std::fs::read(m.path(&rel))));
                }
                let rel = format!("crawlruns/{:08x}-0000-4000-8000-000000000000/state", i);
                let t = Instant::now();
                note(format!("cat {rel}"), t, eio(std::fs::read(m.path(&rel))));
            });
        }
    });
    emu.clear_faults();
    let results = results.into_inner().unwrap();
    let slowest = results.iter().map(|r| r.1).max().unwrap_or_default();
    eprintln!(
        "hung API: {} operations, slowest {slowest:.2?}",
        results.len()
    );
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, took, r)| r.is_err() || *took > DEADLINE + Duration::from_secs(1))
        .map(|(what, took, r)| format!("{what}: {took:.2?} {r:?}"))
        .collect();
    assert!(
        bad.is_empty(),
        "with the API hung (deadline {DEADLINE:?}):\n{}\nlog tail:\n{}",
        bad.join("\n"),
        tail(&m.log_text(), 30)
    );

    // The API answers again: so does the mount.
    let want = emu.get_bytes(&format!("/crawlruns/{}/csv", runs[0]));
    let got = std::fs::read(m.path(&format!("crawlruns/{}/data.csv", runs[0])))
        .expect("data.csv once the API answers");
    assert!(got == want);
}

// ---- 3. crash -----------------------------------------------------------

/// SIGKILL the mount process: auto-unmount clears the mountpoint (no
/// "Transport endpoint is not connected"), and a new mount there works.
#[test]
fn a_killed_mount_leaves_no_dead_mountpoint() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let mut m = Mounted::new(&emu.url, &[]);
    let user = emu.get_json("/users/current");
    let read_user = |m: &Mounted| -> Value {
        serde_json::from_slice(&std::fs::read(m.path("user.json")).expect("user.json"))
            .expect("JSON")
    };
    assert_eq!(read_user(&m)["guid"], user["guid"]);
    m.sh_ok("ls -l extractors > /dev/null");

    let mut child = m.take_child().expect("the mount process");
    child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "{status}");

    // fusermount3's auto-unmount watcher unmounts once it sees the process
    // gone; on a loaded 2-core machine that can take a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let meta = std::fs::metadata(&m.mnt);
        let gone = !is_fuse_mount(&m.mnt);
        if gone && meta.is_ok() && std::fs::read_dir(&m.mnt).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "20 s after SIGKILL: still a fuse mount: {}, stat: {meta:?}\nprocesses: {}",
            !gone,
            String::from_utf8_lossy(
                &Command::new("ps")
                    .args(["-eo", "pid,ppid,stat,args"])
                    .output()
                    .map(|o| o.stdout)
                    .unwrap_or_default()
            )
            .lines()
            .filter(|l| l.contains("fusermount") || l.contains("importfs"))
            .collect::<Vec<_>>()
            .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("ls")
        .arg("-la")
        .arg(&m.mnt)
        .output()
        .expect("ls");
    assert!(
        out.status.success(),
        "ls of the old mountpoint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&m.mnt).unwrap().count(),
        0,
        "the bare mountpoint is empty"
    );

    let killed_cache = m.cache.join(format!("mount-{}", child.id()));
    assert!(
        killed_cache.exists(),
        "the killed mount left its cache directory"
    );
    m.remount(&emu.url, &[]);
    assert_eq!(read_user(&m)["guid"], user["guid"]);
    assert!(m.sh_ok("ls extractors").lines().count() > 1);
    assert!(
        !killed_cache.exists(),
        "the new mount removed the cache of the killed one"
    );
}

// ---- 4. concurrency -------------------------------------------------------

/// 32 readers of different files, while 4 writers rewrite the inputs of
/// their own extractors and 2 starters start runs: every read is exact,
/// every write is one PUT whose content the API and the mount then show,
/// every start is one POST whose run then shows.
#[test]
fn readers_writers_and_starters_at_once() {
    if !fuse_or_skip() {
        return;
    }
    const READERS: usize = 32;
    const WRITERS: usize = 4;
    const STARTERS: usize = 2;
    const REWRITES: usize = 6;
    const STARTS: usize = 2;
    let emu = Emu::start(Config {
        dataset: Dataset::Scale,
        extractors: 8,
        crawlruns: 32,
        result_bytes: 150_000,
        run_seconds: 1.0,
        ..Config::default()
    });
    let runs = emu.finished_runs();
    assert_eq!(runs.len(), 32);
    let truth = truth_of(&emu, &runs);
    let exts = emu.get_json("/extractors/?_perpage=1000");
    let mut exts: Vec<(String, String)> = exts
        .as_array()
        .expect("extractors")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["guid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    exts.sort();
    assert!(exts.len() >= WRITERS + STARTERS);
    let m = Mounted::new(&emu.url, &[]);

    // Reader i reads the 6 files of run i, again and again (twice at least)
    // until the writers and starters are done.
    let busy = AtomicUsize::new(WRITERS + STARTERS);
    let reads = AtomicUsize::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let fail = |s: String| failures.lock().unwrap().push(s);
    let started = Instant::now();
    std::thread::scope(|s| {
        for run in runs.iter().take(READERS) {
            let (truth, m, fail, busy, reads) = (&truth, &m, &fail, &busy, &reads);
            s.spawn(move || {
                for pass in 0..3000 {
                    if pass >= 2 {
                        if busy.load(Ordering::Relaxed) == 0 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    for (name, _) in RUN_FILES {
                        reads.fetch_add(1, Ordering::Relaxed);
                        let rel = format!("crawlruns/{run}/{name}");
                        match std::fs::read(m.path(&rel)) {
                            Ok(b) if b == **truth[&rel] => {}
                            Ok(b) => fail(format!("{rel}: {} wrong bytes", b.len())),
                            Err(e) => fail(format!("{rel}: {e}")),
                        }
                    }
                }
            });
        }
        for (w, (name, guid)) in exts.iter().take(WRITERS).enumerate() {
            let (m, emu, fail, busy) = (&m, &emu, &fail, &busy);
            s.spawn(move || {
                let _done = Done(busy);
                let path = m.path(&format!("extractors/{name}/inputs"));
                let puts = || emu.count("PUT", &format!("/extractors/{guid}/inputs"));
                for i in 0..REWRITES {
                    let want: Vec<String> = (0..=i % 3)
                        .map(|k| format!("https://w{w}.example/{i}/{k}"))
                        .collect();
                    let before = puts();
                    let text: String = want.iter().map(|u| format!("{u}\n")).collect();
                    if let Err(e) = std::fs::write(&path, &text) {
                        fail(format!("write {name}/inputs #{i}: {e}"));
                        continue;
                    }
                    let n = puts() - before;
                    if n != 1 {
                        fail(format!("write {name}/inputs #{i}: {n} PUTs"));
                    }
                    let api = emu.get_json(&format!("/extractors/{guid}/inputs"));
                    let api: Vec<&str> = api["_url"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .collect();
                    if api != want {
                        fail(format!("{name}/inputs #{i}: the API has {api:?}"));
                    }
                    match std::fs::read_to_string(&path) {
                        Ok(t) if t == text => {}
                        other => fail(format!("{name}/inputs #{i} reads back {other:?}")),
                    }
                }
            });
        }
        for (name, guid) in exts.iter().skip(WRITERS).take(STARTERS) {
            let (m, emu, fail, busy) = (&m, &emu, &fail, &busy);
            s.spawn(move || {
                let _done = Done(busy);
                let start = m.path(&format!("extractors/{name}/start"));
                let posts = || emu.count("POST", &format!("/extractors/{guid}/start"));
                for i in 0..STARTS {
                    let runs_before = emu
                        .get_json(&format!("/crawlruns/?extractorId={guid}&_perpage=1000"))
                        .as_array()
                        .map_or(0, Vec::len);
                    let before = posts();
                    let t = Command::new("touch").arg(&start).output().expect("touch");
                    if !t.status.success() {
                        fail(format!(
                            "touch {name}/start #{i}: {}",
                            String::from_utf8_lossy(&t.stderr)
                        ));
                        continue;
                    }
                    let n = posts() - before;
                    if n != 1 {
                        fail(format!("touch {name}/start #{i}: {n} POSTs"));
                    }
                    let runs_now = emu.get_json(&format!(
                        "/crawlruns/?extractorId={guid}&_perpage=1000&_sort=meta_created_at&_sortDirection=DESC"
                    ));
                    let runs_now = runs_now.as_array().expect("runs");
                    if runs_now.len() != runs_before + 1 {
                        fail(format!(
                            "start {name} #{i}: {} runs, was {runs_before}",
                            runs_now.len()
                        ));
                        continue;
                    }
                    let newest = runs_now[0]["guid"].as_str().unwrap_or("").to_owned();
                    // The new run shows in the extractor's crawlruns/ and
                    // finishes (1 s runs), so the next start is accepted.
                    let deadline = Instant::now() + Duration::from_secs(15);
                    loop {
                        let link = m.path(&format!("extractors/{name}/crawlruns/{newest}"));
                        let state = std::fs::read_to_string(link.join("state"));
                        if state.as_deref().is_ok_and(|s| s == "FINISHED\n") {
                            break;
                        }
                        if Instant::now() > deadline {
                            fail(format!("run {newest} of {name}: state {state:?}"));
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "concurrency: {READERS} readers, {} reads; {WRITERS} writers x {REWRITES}, \
         {STARTERS} starters x {STARTS}; in {:.1?}",
        reads.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{}\nlog tail:\n{}",
        failures.join("\n"),
        tail(&m.log_text(), 30)
    );
}

/// Counts a worker out when it ends, however it ends.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// ---- 5. secrets -------------------------------------------------------------

const SECRET: &str = "KEY-zz9-plural-z-alpha-0451";
const WRONG: &str = "WRONG-zz9-plural-z-beta-0452";

fn assert_no_key(what: &str, text: &[u8]) {
    for key in [SECRET, WRONG] {
        let hay = String::from_utf8_lossy(text);
        if let Some(at) = hay.find(key) {
            let from = hay[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            panic!(
                "the key {key} appears in {what}: ...{}",
                &hay[from..(at + key.len()).min(hay.len())]
            );
        }
    }
}

/// Every regular file under `dir` (not following symlinks) smaller than
/// `max` bytes; unreadable ones are skipped.
fn files_under(dir: &Path, max: u64, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files_under(&e.path(), max, out);
        } else if ft.is_file() && e.metadata().is_ok_and(|md| md.len() <= max) {
            out.push(e.path());
        }
    }
}

/// A mount at trace level (RUST_LOG=trace, so hyper and reqwest log too)
/// driven through reads, 404s, faults, writes, credentials, a 401 mid-session
/// and a second mount with a wrong key, plus a background mount: the key is
/// in no log, no `ps` line, no file of the mount or of the cache.
#[test]
fn the_key_is_nowhere_at_trace_level() {
    if !fuse_or_skip() {
        return;
    }
    let mut emu = Emu::start_with_key(Config::default(), SECRET);
    let addr = emu.emu.as_ref().expect("emulator").addr();
    // Both mounts serve their metrics endpoint: it is hunted too.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    };
    let metrics = format!("127.0.0.1:{}", free_port());
    let bg_metrics = format!("127.0.0.1:{}", free_port());
    let m = Mounted::with_env(
        &emu.url,
        &[
            "--api-deadline",
            "5s",
            "--api-timeout",
            "2s",
            "--metrics-addr",
            &metrics,
        ],
        SECRET,
        &[("RUST_LOG", "trace")],
    );
    let bg = tempfile::tempdir().expect("tempdir");
    let bg_mnt = bg.path().join("mnt");
    let bg_log = bg.path().join("bg.log");
    std::fs::create_dir(&bg_mnt).unwrap();
    let _bg_guard = Unmount(bg_mnt.clone());
    let out = Command::new(importfs_bin())
        .arg("mount")
        .arg(&bg_mnt)
        .args(["--no-config", "--api-url", &emu.url, "-vvv"])
        .arg("--cache-dir")
        .arg(bg.path().join("cache"))
        .arg("--log-file")
        .arg(&bg_log)
        .args(["--metrics-addr", &bg_metrics])
        .env("IMPORTIO_API_KEY", SECRET)
        .env("RUST_LOG", "trace")
        .output()
        .expect("background mount");
    assert!(
        out.status.success(),
        "background mount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut outputs: Vec<(String, Vec<u8>)> = vec![
        ("background mount's stdout".into(), out.stdout),
        ("background mount's stderr".into(), out.stderr),
    ];
    // GET /metrics and /healthz of an endpoint, kept for the hunt.
    let scrape = |emu: &Emu, addr: &str, when: &str, outputs: &mut Vec<(String, Vec<u8>)>| {
        for path in ["/metrics", "/healthz"] {
            let (status, body) = emu.get_from(addr, path);
            assert!(status == 200 || status == 503, "{path}: {status}");
            outputs.push((format!("{path} of {addr} {when} (HTTP {status})"), body));
        }
    };

    // Reads of every kind.
    m.sh_ok("cat user.json subscription.json .importfs/stats > /dev/null");
    m.sh_ok("ls -lR extractors > /dev/null");
    m.sh_ok("ls -l crawlruns reports reportruns > /dev/null");
    let runs = emu.finished_runs();
    for run in runs.iter().take(3) {
        m.sh_ok(&format!("cat crawlruns/{run}/* > /dev/null"));
    }
    // 404s.
    assert!(!m
        .sh("cat crawlruns/0000aaaa-0000-4000-8000-000000000000/state")
        .status
        .success());
    assert!(!m
        .sh("cat extractors/0000aaaa-0000-4000-8000-000000000000/inputs")
        .status
        .success());
    // Faults: retried reads, and a few that fail.
    emu.set_faults(json!({
        "operation": "*", "error_rate": 0.3, "throttle_rate": 0.1, "retry_after_s": 1,
        "truncate_rate": 0.2, "drop_rate": 0.1
    }));
    for run in runs.iter().skip(3).take(3) {
        let _ = m.sh(&format!("cat crawlruns/{run}/* > /dev/null"));
    }
    scrape(&emu, &metrics, "after faults", &mut outputs);
    emu.clear_faults();
    // Writes: inputs (good and bad), a start, credentials.
    let all = emu.get_json("/extractors/?_perpage=1000");
    let all = all.as_array().expect("extractors");
    let plain = |e: &&Value| {
        let n = e["name"].as_str().unwrap_or("");
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
            && all.iter().filter(|o| o["name"] == e["name"]).count() == 1
    };
    let ext = all.iter().find(plain).expect("a plainly named extractor");
    let name = ext["name"].as_str().unwrap();
    let d = format!("extractors/{name}");
    m.sh_ok(&format!(
        "echo https://secret-test.example/a > '{d}/inputs'"
    ));
    assert!(!m
        .sh(&format!("echo not-a-url > '{d}/inputs'"))
        .status
        .success());
    let _ = m.sh(&format!("touch '{d}/start'"));
    m.sh_ok(&format!(
        "echo '{{\"username\":\"someone\",\"password\":\"pw-0451\"}}' > '{d}/credentials'"
    ));
    // A 401 mid-session: the API now wants another key.
    emu.rt.block_on(emu.emu.take().unwrap().shutdown());
    emu.emu = Some(
        emu.rt
            .block_on(Emulator::start(Config {
                listen: addr,
                api_key: "another-key-entirely".into(),
                ..Config::default()
            }))
            .expect("rebind"),
    );
    m.sh_ok("touch .importfs/refresh");
    let denied = m.sh(&format!("cat crawlruns/{}/data.csv", runs[runs.len() - 1]));
    assert!(!denied.status.success(), "a refused key still reads");
    let _ = m.sh("ls extractors");
    scrape(&emu, &metrics, "while the key is refused", &mut outputs);
    assert!(
        outputs
            .iter()
            .any(|(what, _)| what.contains("/healthz") && what.contains("HTTP 503")),
        "healthz did not report the refused key"
    );
    assert!(
        m.log_text().contains("refused"),
        "the 401 was not logged as a refused key:\n{}",
        tail(&m.log_text(), 20)
    );
    // A second mount with a wrong key fails, saying so.
    let wrong_dir = tempfile::tempdir().expect("tempdir");
    let wrong = Command::new(importfs_bin())
        .arg("mount")
        .arg("--foreground")
        .arg(wrong_dir.path())
        .args(["--no-config", "--api-url", &emu.url, "-vvv"])
        .arg("--cache-dir")
        .arg(wrong_dir.path().join("cache"))
        .env("IMPORTIO_API_KEY", WRONG)
        .env("RUST_LOG", "trace")
        .output()
        .expect("wrong-key mount");
    assert!(!wrong.status.success(), "a wrong key mounted");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    outputs.push(("the wrong-key mount's stdout".into(), wrong.stdout));
    outputs.push(("the wrong-key mount's stderr".into(), wrong.stderr));

    // ps, while both good mounts run.
    assert!(is_fuse_mount(&m.mnt) && is_fuse_mount(&bg_mnt));
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    assert!(String::from_utf8_lossy(&ps.stdout).contains("importfs"));
    assert_no_key("ps -eo args", &ps.stdout);

    // Back to the mount's own key; then every file of both mounts.
    emu.rt.block_on(emu.emu.take().unwrap().shutdown());
    emu.emu = Some(
        emu.rt
            .block_on(Emulator::start(Config {
                listen: addr,
                api_key: SECRET.into(),
                ..Config::default()
            }))
            .expect("rebind"),
    );
    m.sh_ok("touch .importfs/refresh");
    for mnt in [&m.mnt, &bg_mnt] {
        let mut files = Vec::new();
        files_under(mnt, 16 << 20, &mut files);
        assert!(
            files.len() > 50,
            "only {} files under {}",
            files.len(),
            mnt.display()
        );
        for f in files {
            // A stream that waits for the next run event: no end to read to
            // (its lines hold names and ids, never the key).
            if f.ends_with(".importfs/events") {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&f) {
                assert_no_key(&f.display().to_string(), &bytes);
            }
        }
    }
    // The cache directories, while the mounts hold files there.
    for dir in [m.cache.clone(), bg.path().join("cache")] {
        let mut files = Vec::new();
        files_under(&dir, u64::MAX, &mut files);
        assert!(!files.is_empty(), "nothing cached under {}", dir.display());
        for f in files {
            assert_no_key(
                &f.display().to_string(),
                &std::fs::read(&f).unwrap_or_default(),
            );
        }
    }
    scrape(&emu, &metrics, "at the end", &mut outputs);
    scrape(&emu, &bg_metrics, "at the end", &mut outputs);
    drop(_bg_guard);
    let log = m.log_text();
    assert!(
        log.lines().count() > 1000 && log.contains("TRACE"),
        "the mount did not log at trace level ({} lines)",
        log.lines().count()
    );
    assert_no_key("the mount's log", log.as_bytes());
    assert_no_key(
        "the background mount's log",
        &std::fs::read(&bg_log).expect("background log"),
    );
    for (what, text) in &outputs {
        assert_no_key(what, text);
    }
}
