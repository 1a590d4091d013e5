//! The mount's Prometheus endpoint (`--metrics-addr`), over real mounts:
//! counters that move by exactly what the emulator's request log says,
//! `promtool check metrics` on a scrape, `/healthz` while the API hangs or
//! refuses the key, and a second mount on a taken port.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `GET http://addr{path}`: (status, body).
fn get(emu: &Emu, addr: &str, path: &str) -> (u16, String) {
    let (status, body) = emu.get_from(addr, path);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A scrape as `name{labels}` → value (labels as the text has them).
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("a sample line");
            (k.to_owned(), v.parse::<f64>().expect("a number"))
        })
        .collect()
}

fn scrape(emu: &Emu, addr: &str) -> BTreeMap<String, f64> {
    let (status, body) = get(emu, addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

fn val(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// The `importfs_api_requests_total` samples as (operation, status) → n.
fn api_requests(m: &BTreeMap<String, f64>) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Some(labels) = k
            .strip_prefix("importfs_api_requests_total{")
            .and_then(|r| r.strip_suffix('}'))
        else {
            continue;
        };
        let get = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .and_then(|v| v.strip_suffix('"'))
                .expect("label")
                .to_owned()
        };
        out.insert((get("operation"), get("status")), *v);
    }
    out
}

/// Scrapes until no request is in flight and the request log has stopped
/// growing: what the mount started in the background has ended. (The cap
/// only keeps a broken mount from hanging the suite.)
fn settle(emu: &Emu, addr: &str) -> BTreeMap<String, f64> {
    let mut last = usize::MAX;
    let cap = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < cap,
            "the mount never settled: requests stay in flight"
        );
        let m = scrape(emu, addr);
        let n = emu.requests().len();
        if val(&m, "importfs_api_requests_in_flight") == 0.0
            && val(&m, "importfs_downloads_in_flight") == 0.0
            && n == last
        {
            return m;
        }
        last = n;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stats_file(m: &Mounted) -> BTreeMap<String, u64> {
    std::fs::read_to_string(m.path(".importfs/stats"))
        .expect("stats")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("name value");
            (k.to_owned(), v.parse().expect("number"))
        })
        .collect()
}

#[test]
fn counters_move_by_exactly_what_the_request_log_says() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let addr = format!("127.0.0.1:{}", free_port());
    let m = Mounted::new(&emu.url, &["--metrics-addr", &addr]);
    let before = settle(&emu, &addr);
    emu.clear_requests();

    let run = emu.finished_runs()[0].clone();
    let truth = emu.get_bytes(&format!("/crawlruns/{run}/csv"));
    emu.clear_requests();
    // A listing, a cold read, a warm read, and two refusals.
    m.sh_ok("ls -l extractors > /dev/null");
    m.sh_ok(&format!("cat crawlruns/{run}/data.csv > /dev/null"));
    m.sh_ok(&format!("cat crawlruns/{run}/data.csv > /dev/null"));
    assert!(!m.sh("mkdir not-here").status.success());
    assert!(!m.sh("mkdir also-not-here").status.success());
    let after = settle(&emu, &addr);

    // Every request of the log, by operation and status, and nothing else.
    let log: Vec<Value> = emu
        .requests()
        .into_iter()
        .filter(|r| r["listener"] == "api")
        .collect();
    assert!(!log.is_empty());
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in &log {
        let op = r["operation"].as_str().expect("operation").to_owned();
        *want.entry((op, r["status"].to_string())).or_default() += 1.0;
    }
    let (b, a) = (api_requests(&before), api_requests(&after));
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (k, n) in &a {
        let d = n - b.get(k).copied().unwrap_or(0.0);
        if d != 0.0 {
            got.insert(k.clone(), d);
        }
    }
    assert_eq!(got, want, "api_requests_total moved unlike the request log");
    eprintln!("api_requests_total deltas: {got:?}");
    let csv_reads = log
        .iter()
        .filter(|r| r["path"] == format!("/crawlruns/{run}/csv").as_str())
        .count() as f64;
    assert!(csv_reads >= 1.0);
    assert_eq!(
        got.iter()
            .filter(|((op, _), _)| op == "getCrawlrunFile")
            .map(|(_, n)| n)
            .sum::<f64>(),
        csv_reads
    );

    let delta = |k: &str| val(&after, k) - val(&before, k);
    // The file came down once, whole; the second read was a hit.
    assert_eq!(delta("importfs_download_bytes_total"), truth.len() as f64);
    assert_eq!(delta("importfs_cache_misses_total{cache=\"data\"}"), 1.0);
    assert_eq!(delta("importfs_cache_hits_total{cache=\"data\"}"), 1.0);
    assert_eq!(val(&after, "importfs_data_cache_bytes"), truth.len() as f64);
    assert_eq!(val(&after, "importfs_downloads_in_flight"), 0.0);
    // Two mkdirs, two EPERMs.
    assert_eq!(delta("importfs_fuse_requests_total{op=\"mkdir\"}"), 2.0);
    assert_eq!(
        delta("importfs_fuse_errors_total{op=\"mkdir\",errno=\"EPERM\"}"),
        2.0
    );
    assert!(delta("importfs_fuse_requests_total{op=\"read\"}") >= 1.0);
    assert_eq!(
        val(
            &after,
            "importfs_api_request_duration_seconds_count{operation=\"getCrawlrunFile\"}"
        ),
        a.iter()
            .filter(|((op, _), _)| op == "getCrawlrunFile")
            .map(|(_, n)| n)
            .sum::<f64>()
    );

    // The stats file shows the same numbers, from the same counters (these
    // do not move by reading the stats file itself).
    let stats = stats_file(&m);
    let scraped = scrape(&emu, &addr);
    for (line, metric) in [
        ("download.bytes", "importfs_download_bytes_total"),
        (
            "data_cache_misses",
            "importfs_cache_misses_total{cache=\"data\"}",
        ),
        (
            "data_cache_hits",
            "importfs_cache_hits_total{cache=\"data\"}",
        ),
        ("data_cache_bytes", "importfs_data_cache_bytes"),
        ("downloads_in_flight", "importfs_downloads_in_flight"),
        (
            "data_cache_evictions",
            "importfs_data_cache_evictions_total",
        ),
        (
            "fuse.errors.mkdir.EPERM",
            "importfs_fuse_errors_total{op=\"mkdir\",errno=\"EPERM\"}",
        ),
        (
            "api.requests.getCrawlrunFile.200",
            "importfs_api_requests_total{operation=\"getCrawlrunFile\",status=\"200\"}",
        ),
    ] {
        assert_eq!(
            stats.get(line).copied().unwrap_or(0) as f64,
            val(&scraped, metric),
            "{line} vs {metric}"
        );
    }
    // And `importfs status` prints that file.
    let status = Command::new(importfs_bin())
        .arg("status")
        .arg(&m.mnt)
        .output()
        .expect("status");
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("download.bytes {}", truth.len())),
        "{text}"
    );
}

#[test]
fn promtool_accepts_a_scrape() {
    if !fuse_or_skip() {
        return;
    }
    let promtool = Command::new("promtool").arg("--version").output();
    assert!(
        promtool.is_ok_and(|o| o.status.success()),
        "promtool is missing: apt-get install prometheus (scripts/test.sh installs it)"
    );
    let emu = Emu::demo();
    let addr = format!("127.0.0.1:{}", free_port());
    let m = Mounted::new(&emu.url, &["--metrics-addr", &addr]);
    let run = emu.finished_runs()[0].clone();
    m.sh_ok(&format!("ls -l extractors crawlruns/{run} > /dev/null"));
    m.sh_ok(&format!("cat crawlruns/{run}/data.json > /dev/null"));
    assert!(!m
        .sh("cat crawlruns/0000aaaa-0000-4000-8000-000000000000/state")
        .status
        .success());
    assert!(!m.sh("mkdir nope").status.success());
    let (status, body) = get(&emu, &addr, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "importfs_api_requests_total{",
        "importfs_api_request_duration_seconds_bucket{",
        "importfs_cache_hits_total{cache=\"metadata\"}",
        "importfs_download_bytes_total ",
        "importfs_downloads_in_flight ",
        "importfs_data_cache_bytes ",
        "importfs_fuse_requests_total{op=",
        "importfs_fuse_errors_total{op=",
        "status=\"404\"",
    ] {
        assert!(body.contains(name), "no {name} in the scrape:\n{body}");
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_endpoint_answers_while_the_api_hangs_and_healthz_says_why() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let addr = format!("127.0.0.1:{}", free_port());
    let m = Mounted::new(
        &emu.url,
        &[
            "--metrics-addr",
            &addr,
            "--api-deadline",
            "20s",
            "--api-timeout",
            "5s",
        ],
    );
    assert_eq!(get(&emu, &addr, "/healthz"), (200, "ok\n".to_owned()));

    // Every call now hangs far past the deadline.
    emu.set_faults(json!({"operation": "*", "latency_ms": 600_000}));
    let mnt = m.mnt.clone();
    let ls = std::thread::spawn(move || {
        Command::new("ls")
            .arg(mnt.join("reports"))
            .output()
            .expect("ls")
    });
    // While the `ls` waits on the hung API, the endpoint answers, and
    // shows the request it waits for.
    let mut seen_in_flight = false;
    while !ls.is_finished() {
        let s = scrape(&emu, &addr);
        if val(&s, "importfs_api_requests_in_flight") >= 1.0 {
            assert_eq!(get(&emu, &addr, "/healthz").0, 200);
            seen_in_flight = !ls.is_finished();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen_in_flight, "no scrape saw the hung request in flight");
    let out = ls.join().expect("ls thread");
    assert!(!out.status.success(), "ls of a hung API succeeded");

    // Failing past the deadline: 503, saying so.
    let (status, body) = get(&emu, &addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("failing"), "{body}");
    assert!(val(&scrape(&emu, &addr), "importfs_api_healthy") == 0.0);
    let s = scrape(&emu, &addr);
    assert!(
        val(
            &s,
            "importfs_api_requests_total{operation=\"listReports\",status=\"no_answer\"}"
        ) >= 1.0,
        "{s:?}"
    );

    // The API back: one answered call makes it healthy again.
    emu.clear_faults();
    m.sh_ok("touch .importfs/refresh && ls reports > /dev/null");
    assert_eq!(get(&emu, &addr, "/healthz"), (200, "ok\n".to_owned()));
}

#[test]
fn a_refused_key_makes_healthz_503() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let addr = format!("127.0.0.1:{}", free_port());
    let m = Mounted::new(&emu.url, &["--metrics-addr", &addr]);
    emu.set_faults(json!({"operation": "*", "status": 401}));
    assert!(!m.sh("ls reports").status.success());
    let (status, body) = get(&emu, &addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("key was refused"), "{body}");
    let s = scrape(&emu, &addr);
    assert!(
        val(
            &s,
            "importfs_api_requests_total{operation=\"listReports\",status=\"401\"}"
        ) >= 1.0
    );
    emu.clear_faults();
    m.sh_ok("touch .importfs/refresh && ls reports > /dev/null");
    assert_eq!(get(&emu, &addr, "/healthz").0, 200);
}

#[test]
fn a_second_mount_on_the_same_port_fails_before_mounting() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let first = Mounted::new(&emu.url, &["--metrics-addr", &addr]);
    let dir = tempfile::tempdir().expect("tempdir");
    for (mode, port_arg) in [
        ("--foreground", addr.clone()),
        ("background", port.to_string()),
    ] {
        let mnt = dir
            .path()
            .join(format!("mnt-{}", mode.trim_start_matches('-')));
        std::fs::create_dir(&mnt).expect("mkdir");
        let mut cmd = Command::new(importfs_bin());
        cmd.arg("mount").arg(&mnt);
        if mode == "--foreground" {
            cmd.arg(mode);
        }
        let out = cmd
            .args(["--no-config", "--api-url", &emu.url])
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("--log-file")
            .arg(dir.path().join("second.log"))
            .args(["--metrics-addr", &port_arg])
            .env("IMPORTIO_API_KEY", KEY)
            .output()
            .expect("second mount");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{mode}: a second mount on {addr} worked"
        );
        assert!(
            err.contains(&addr) && err.contains("in use") && err.contains("--metrics-addr"),
            "{mode}: unclear error: {err}"
        );
        assert!(!is_fuse_mount(&mnt), "{mode}: mounted anyway");
    }
    // The first mount's endpoint still answers.
    assert_eq!(get(&emu, &addr, "/healthz").0, 200);
    drop(first);
}
