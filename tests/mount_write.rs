//! Driving the API through a real mount: every way of writing `inputs` is one
//! PUT, bad input changes nothing, control files are one POST each, deletes
//! need `--allow-delete`, `--read-only` refuses everything, and credentials
//! never come back out. Calls are counted in the emulator's request log.

mod common;

use common::*;
use importfs::emulator::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A plainly named extractor of the demo account (name, guid), the `n`th.
fn plain_extractor(emu: &Emu, n: usize) -> (String, String) {
    let plain = plain_extractor_list(emu);
    let e = &plain[n % plain.len()];
    (
        e["name"].as_str().unwrap().to_owned(),
        e["guid"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn every_way_of_writing_inputs_is_one_put() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);
    let (name, guid) = plain_extractor(&emu, 0);
    let f = format!("extractors/{name}/inputs");
    // A temporary name that is not UTF-8: listed with its exact bytes,
    // stat-able, and renamed onto inputs like any editor's temp file.
    let bytes_py = m.dir.path().join("bytes_name.py");
    std::fs::write(
        &bytes_py,
        format!(
            r#"import os
d = os.fsencode('extractors/' + {name:?})
t = d + b'/.tmp\xff\xfe'
with open(t, 'wb') as w:
    w.write(b'https://bytes.example/1\n')
assert b'.tmp\xff\xfe' in os.listdir(d), os.listdir(d)
assert os.stat(t).st_size == 24
os.rename(t, d + b'/inputs')
"#
        ),
    )
    .unwrap();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("redirect", format!("printf 'https://a.example/1\\nhttps://a.example/2\\n' > '{f}'"), vec!["https://a.example/1", "https://a.example/2"]),
        ("append", format!("echo https://a.example/3 >> '{f}'"), vec!["https://a.example/1", "https://a.example/2", "https://a.example/3"]),
        ("truncate", format!("truncate -s 0 '{f}'"), vec![]),
        ("python", format!("python3 -c \"open('{f}', 'w').write('https://py.example/a\\nhttps://py.example/b\\n')\""), vec!["https://py.example/a", "https://py.example/b"]),
        ("sed -i", format!("sed -i 's/py.example/sed.example/' '{f}'"), vec!["https://sed.example/a", "https://sed.example/b"]),
        ("vim", format!("vim -es -u NONE -c '%s/sed.example/vim.example/' -c 'wq' '{f}'"), vec!["https://vim.example/a", "https://vim.example/b"]),
        ("ex", format!("ex -s -c '$a|https://ex.example/c' -c 'wq' '{f}'"), vec!["https://vim.example/a", "https://vim.example/b", "https://ex.example/c"]),
        ("non-UTF-8 temp name", format!("python3 '{}'", bytes_py.display()), vec!["https://bytes.example/1"]),
    ];
    for (what, script, want) in cases {
        emu.clear_requests();
        let out = m.sh(&script);
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&m.log_text(), 30)
        );
        assert_eq!(
            puts(&emu, &guid),
            1,
            "{what}: exactly one PUT, log: {:?}",
            mutating(&emu)
        );
        assert_eq!(
            api_urls(&emu, &guid),
            want,
            "{what}: the API has the new inputs"
        );
        let text = std::fs::read_to_string(m.path(&f)).unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, want, "{what}: reads back");
        assert_eq!(
            std::fs::metadata(m.path(&f)).unwrap().len(),
            text.len() as u64,
            "{what}: size"
        );
    }
    // Editors' scratch files are gone afterwards and were never sent.
    let listing = m.sh_ok(&format!("ls -A 'extractors/{name}'"));
    for l in listing.lines() {
        assert!(
            [
                "extractor.json",
                "inputs",
                "start",
                "stop",
                "duplicate",
                "credentials",
                "crawlruns",
                "latest"
            ]
            .contains(&l),
            "left behind: {l}"
        );
    }
}

#[test]
fn invalid_inputs_change_nothing() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);
    let (name, guid) = plain_extractor(&emu, 1);
    let f = format!("extractors/{name}/inputs");
    let before = std::fs::read_to_string(m.path(&f)).unwrap();
    let before_api = api_urls(&emu, &guid);
    emu.clear_requests();
    for (what, script, err) in [
        ("not a url", format!("printf 'https://ok.example/\\nnot a url\\n' > '{f}'"), "Invalid argument"),
        ("relative", format!("echo /just/a/path > '{f}'"), "Invalid argument"),
        ("ftp", format!("echo ftp://files.example/x > '{f}'"), "Invalid argument"),
        ("binary", format!("printf 'https://ok.example/\\n\\xff\\xfe\\x01junk\\n' > '{f}'"), "Invalid argument"),
        ("huge", format!("python3 -c \"import sys; f=open('{f}','w'); f.write(('https://big.example/' + 'x'*80 + '\\n') * 20000); f.close()\""), "too large"),
        ("rename junk", format!("echo 'junk' > 'extractors/{name}/tmp.txt' && python3 -c \"import os; os.rename('extractors/{name}/tmp.txt', '{f}')\""), "Invalid argument"),
    ] {
        let out = m.sh(&script);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} must fail");
        assert!(stderr.contains(err), "{what}: expected {err:?} in {stderr:?}");
        assert_eq!(std::fs::read_to_string(m.path(&f)).unwrap(), before, "{what}: content unchanged");
    }
    let _ = m.sh(&format!("rm -f 'extractors/{name}/tmp.txt'"));
    assert_eq!(puts(&emu, &guid), 0, "no PUT sent: {:?}", mutating(&emu));
    assert_eq!(api_urls(&emu, &guid), before_api);
    assert!(
        m.log_text()
            .contains("line 2 is not an absolute http(s) URL"),
        "the log names the line"
    );
}

#[test]
fn control_files_are_one_post_each() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(Config {
        run_seconds: 2.0,
        ..Config::default()
    });
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);
    let ways = [
        "touch '{d}/start'",
        "echo go > '{d}/start'",
        "python3 -c \"import os; os.utime('{d}/start')\"",
    ];
    for (i, way) in ways.iter().enumerate() {
        let (name, guid) = plain_extractor(&emu, 2 + i);
        let d = format!("extractors/{name}");
        emu.clear_requests();
        m.sh_ok(&way.replace("{d}", &d));
        assert_eq!(
            emu.count("POST", &format!("/extractors/{guid}/start")),
            1,
            "{way}: one POST: {:?}",
            mutating(&emu)
        );
        assert_eq!(mutating(&emu).len(), 1, "{way}: nothing else");
    }
    // Reading a control file triggers nothing; a start during a run is EBUSY.
    let (name, guid) = plain_extractor(&emu, 2);
    let d = format!("extractors/{name}");
    emu.clear_requests();
    assert!(!m.sh(&format!("cat '{d}/start'")).status.success());
    assert_eq!(mutating(&emu).len(), 0);
    let out = m.sh(&format!("touch '{d}/start'"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("busy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The new run shows in crawlruns/ and latest, and finishes.
    std::thread::sleep(Duration::from_millis(1200));
    let runs = emu.get_json(&format!("/crawlruns/?extractorId={guid}&_perpage=1000"));
    let newest = runs
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|r| r["startedAt"].as_str().unwrap_or("").to_owned())
        .unwrap();
    let newest = newest["guid"].as_str().unwrap().to_owned();
    let target = std::fs::read_link(m.path(&format!("{d}/latest"))).unwrap();
    assert!(
        target.to_string_lossy().ends_with(&newest),
        "latest → {target:?}, newest {newest}"
    );
    assert!(m.path(&format!("{d}/crawlruns/{newest}")).exists());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = std::fs::read_to_string(m.path(&format!("{d}/latest/state"))).unwrap();
        if state == "FINISHED\n" {
            break;
        }
        assert!(Instant::now() < deadline, "run never finished: {state}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(m.path(&format!("{d}/latest/data.csv")).exists());

    // Stop cancels a run; duplicate makes a copy that shows in extractors/.
    let (name2, guid2) = plain_extractor(&emu, 5);
    let d2 = format!("extractors/{name2}");
    m.sh_ok(&format!("touch '{d2}/start'"));
    emu.clear_requests();
    m.sh_ok(&format!("touch '{d2}/stop'"));
    assert_eq!(emu.count("POST", &format!("/extractors/{guid2}/stop")), 1);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        std::fs::read_to_string(m.path(&format!("{d2}/latest/state"))).unwrap(),
        "CANCELLED\n"
    );
    let before = std::fs::read_dir(m.path("extractors")).unwrap().count();
    emu.clear_requests();
    m.sh_ok(&format!("touch '{d2}/duplicate'"));
    assert_eq!(
        emu.count("POST", &format!("/extractors/{guid2}/duplicate")),
        1
    );
    assert_eq!(
        std::fs::read_dir(m.path("extractors")).unwrap().count(),
        before + 1
    );
}

#[test]
fn credentials_are_write_only_and_never_stored() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);
    let (name, guid) = plain_extractor(&emu, 0);
    let secret = "s3cr3t-PW-7f1c9e";
    emu.clear_requests();
    m.sh_ok(&format!("echo '{{\"username\": \"alice\", \"password\": \"{secret}\"}}' > 'extractors/{name}/credentials'"));
    assert_eq!(
        emu.count("POST", &format!("/extractors/{guid}/credentials")),
        1
    );
    assert!(!m
        .sh(&format!("cat 'extractors/{name}/credentials'"))
        .status
        .success());
    // (an external echo: bash ignores close() errors of its builtins' redirections)
    let out = m.sh(&format!(
        "/bin/echo 'not json' > 'extractors/{name}/credentials'"
    ));
    assert!(!out.status.success(), "invalid credentials fail");
    assert_eq!(
        emu.count("POST", &format!("/extractors/{guid}/credentials")),
        1
    );
    assert!(!m.log_text().contains(secret), "password in the log");
    let grep = std::process::Command::new("grep")
        .args(["-r", "-l", secret])
        .arg(&m.cache)
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "password in the cache dir");
    let got = emu.get_json(&format!("/extractors/{guid}"));
    assert!(!got.to_string().contains(secret), "no GET returns it");
}

#[test]
fn deleting_needs_allow_delete() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let before = emu
        .get_json("/extractors/?_perpage=1000")
        .as_array()
        .unwrap()
        .len();
    {
        let m = Mounted::new(&emu.url, &[]);
        emu.clear_requests();
        let out =
            m.sh(
            "rm -rf ./* 2>&1; mkdir extractors/new 2>&1; mv extractors/* /tmp/ 2>&1; \
             for d in extractors/*/; do chmod 777 \"$d/inputs\" 2>&1; echo x > \"$d/extractor.json\" 2>&1; \
             mv \"$d/start\" \"$d/begin\" 2>&1; done; true",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Operation not permitted") || text.contains("Permission denied"),
            "{text}"
        );
        assert_eq!(
            mutating(&emu),
            Vec::<Value>::new(),
            "no DELETE, POST or PUT"
        );
        assert_eq!(
            emu.get_json("/extractors/?_perpage=1000")
                .as_array()
                .unwrap()
                .len(),
            before
        );
    }
    let m = Mounted::new(&emu.url, &["--allow-delete"]);
    let (name, guid) = plain_extractor(&emu, 3);
    emu.clear_requests();
    m.sh_ok(&format!("rmdir 'extractors/{name}'"));
    let muts = mutating(&emu);
    assert_eq!(muts.len(), 1, "{muts:?}");
    assert_eq!(muts[0]["method"], "DELETE");
    assert_eq!(muts[0]["path"], format!("/extractors/{guid}"));
    assert_eq!(
        emu.get_json("/extractors/?_perpage=1000")
            .as_array()
            .unwrap()
            .len(),
        before - 1
    );
    assert!(!m.path(&format!("extractors/{name}")).exists());
}

#[test]
fn read_only_refuses_every_write() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &["--read-only", "--allow-delete"]);
    let (name, _) = plain_extractor(&emu, 0);
    let d = format!("extractors/{name}");
    emu.clear_requests();
    for script in [
        format!("touch '{d}/start'"),
        format!("echo https://x.example/ > '{d}/inputs'"),
        format!("python3 -c \"import os; os.utime('{d}/start')\""),
        format!("rmdir '{d}'"),
        format!("mkdir '{d}/x'"),
        format!("touch '{d}/scratch'"),
        format!("echo '{{}}' > '{d}/credentials'"),
    ] {
        let out = m.sh(&script);
        assert!(!out.status.success(), "{script} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Read-only file system"), "{script}: {err}");
    }
    assert_eq!(mutating(&emu), Vec::<Value>::new());
}

#[test]
fn refresh_forgets_cached_listings() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "60s"]);
    let n = std::fs::read_dir(m.path("extractors")).unwrap().count();
    emu.hook(
        reqwest::Method::POST,
        "/_emulator/extractors",
        Some(json!({"name": "Fresh one", "inputs": ["https://fresh.example/"]})),
    );
    assert_eq!(
        std::fs::read_dir(m.path("extractors")).unwrap().count(),
        n,
        "cached within the TTL"
    );
    m.sh_ok("touch .importfs/refresh");
    assert_eq!(
        std::fs::read_dir(m.path("extractors")).unwrap().count(),
        n + 1
    );
    assert!(m.path("extractors/Fresh one/inputs").exists());
}

// ---------------------------------------------------------------------------
// A service that knows a run late: the start answers with its id, but for a
// while GET /crawlruns/{id} is 404 (importio2 polls it for that reason).

/// A fresh extractor (no runs yet) made by the emulator's hook: its guid.
fn fresh_extractor(emu: &Emu, name: &str) -> String {
    let e = emu.hook(
        reqwest::Method::POST,
        "/_emulator/extractors",
        Some(json!({"name": name, "inputs": ["https://late.example/a", "https://late.example/b"]})),
    );
    e["guid"].as_str().unwrap().to_owned()
}

/// The statuses of the `getCrawlrun` calls of `run` in the request log.
fn get_statuses(emu: &Emu, run: &str) -> Vec<u64> {
    emu.requests()
        .iter()
        .filter(|r| r["operation"] == "getCrawlrun" && r["path"] == format!("/crawlruns/{run}"))
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect()
}

/// Some 404s, then 200s only: the run was unknown at first, then known.
fn unknown_then_known(statuses: &[u64]) -> bool {
    let first_ok = statuses.iter().position(|s| *s == 200);
    matches!(first_ok, Some(i) if i > 0)
        && statuses[..first_ok.unwrap_or(0)].iter().all(|s| *s == 404)
        && statuses[first_ok.unwrap_or(0)..].iter().all(|s| *s == 200)
}

#[test]
fn touch_start_then_latest_at_once_on_a_service_that_knows_runs_late() {
    if !fuse_or_skip() {
        return;
    }
    // The legacy dialect: a started run is unknown for a second by default.
    let emu = Emu::start(Config {
        dialect: importfs::emulator::Dialect::Legacy,
        run_seconds: 30.0,
        ..Config::default()
    });
    let g = fresh_extractor(&emu, "Late runs");
    let m = Mounted::new(&emu.url, &[]);
    let d = format!("extractors/{g}");
    let before = m.sh_ok(&format!("ls {d}"));
    assert!(
        !before.lines().any(|l| l == "latest"),
        "no run yet: {before}"
    );
    emu.clear_requests();

    let out = m.sh_ok(&format!(
        "touch {d}/start && cat {d}/latest/state && readlink {d}/latest && ls {d}/crawlruns"
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|s| ["PENDING", "STARTED"].contains(s)),
        "{out}"
    );
    let run = lines[1]
        .strip_prefix("../../crawlruns/")
        .unwrap_or_else(|| panic!("latest → {}", lines[1]))
        .to_owned();
    assert_eq!(lines[2..], [run.as_str()], "crawlruns/ holds the new run");
    assert_eq!(emu.count("POST", &format!("/extractors/{g}/start")), 1);
    let statuses = get_statuses(&emu, &run);
    assert!(
        unknown_then_known(&statuses),
        "the service did not know the run at first, then did: {statuses:?}"
    );
    // It is this extractor's run, as the API says once it knows it.
    let api = emu.get_json(&format!("/crawlruns/{run}"));
    assert_eq!(api["extractorId"], json!(g));
    assert_eq!(
        m.sh_ok(&format!("cat crawlruns/{run}/state")).trim(),
        api["state"].as_str().unwrap()
    );
}

#[test]
fn a_new_runs_404_is_waited_for_and_never_cached_as_missing() {
    if !fuse_or_skip() {
        return;
    }
    // Spec dialect; only getCrawlrun does not know new runs (listings do),
    // so the test can learn the id the way a script would.
    let emu = Emu::start(Config {
        run_seconds: 60.0,
        ..Config::default()
    });
    emu.set_faults(json!({"operation": "getCrawlrun", "new_run_404_ms": 2000}));
    let g = fresh_extractor(&emu, "Known late");
    // A long TTL: a 404 remembered as "missing" would last the whole test.
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "60s"]);
    let new_run = |g: &str| {
        let runs = emu.get_json(&format!("/crawlruns/?extractorId={g}"));
        runs[0]["guid"].as_str().unwrap().to_owned()
    };
    m.sh_ok(&format!("touch extractors/{g}/start"));
    let run = new_run(&g);
    emu.clear_requests();
    let out = m.sh_ok(&format!("ls crawlruns/{run} && cat crawlruns/{run}/state"));
    assert!(
        out.contains("crawlrun.json") && out.contains("state"),
        "{out}"
    );
    assert!(out.contains("PENDING") || out.contains("STARTED"), "{out}");
    assert!(
        unknown_then_known(&get_statuses(&emu, &run)),
        "{:?}",
        get_statuses(&emu, &run)
    );

    // Unknown for longer than the mount waits (10 s): the lookup fails, but
    // the 404 is not remembered; once the service knows the run, the next
    // lookup finds it, long before the 60 s TTL.
    emu.set_faults(json!({"operation": "getCrawlrun", "new_run_404_ms": 11000}));
    let g2 = fresh_extractor(&emu, "Known very late");
    m.sh_ok(&format!("touch extractors/{g2}/start"));
    let run2 = new_run(&g2);
    let first = m.sh(&format!("ls crawlruns/{run2}"));
    assert!(!first.status.success(), "known before the service knew it");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("No such file"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let guard = Instant::now() + Duration::from_secs(60);
    let url = format!("{}/crawlruns/{run2}?_apikey={}", emu.url, emu.key);
    while emu
        .rt
        .block_on(async { emu.http.get(&url).send().await.map(|r| r.status().as_u16()) })
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < guard, "the emulator never knew {run2}");
        std::thread::sleep(Duration::from_millis(200));
    }
    emu.clear_requests();
    let out = m.sh_ok(&format!("cat crawlruns/{run2}/state"));
    assert!(out.trim() == "PENDING" || out.trim() == "STARTED", "{out}");
    assert_eq!(
        get_statuses(&emu, &run2),
        vec![200],
        "asked, not remembered as missing"
    );
}
