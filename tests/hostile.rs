//! A hostile API through a real mount: names that are not path components,
//! fields of the wrong type, a listing that never ends, a Content-Length
//! that lies, and a key revoked mid-session. The mount must not panic, must
//! not hang, must stay up, must say clearly in its log what went wrong, and
//! must never hand back short data as if it were the file.
//!
//! The emulator's hostile modes (`/_emulator/hostile`, see
//! `importfs::emulator`) are first checked over plain HTTP, then each is
//! turned on under a mount.

mod common;

use common::*;
use importfs::fs::names::NameTable;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Live extractors as the API lists them: guid → name.
fn api_extractors(emu: &Emu) -> BTreeMap<String, String> {
    emu.get_json("/extractors/?_perpage=1000")
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["guid"].as_str().expect("guid").to_owned(),
                e["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn add_extractor(emu: &Emu, name: &str, guid: Option<&str>) -> String {
    let mut body = json!({"name": name, "inputs": ["https://example.com/"]});
    if let Some(g) = guid {
        body["guid"] = json!(g);
    }
    let e = emu.hook(Method::POST, "/_emulator/extractors", Some(body));
    e["guid"].as_str().expect("guid").to_owned()
}

/// The directory names of `extractors/`, as read_dir gives them.
fn listed(m: &Mounted) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(m.path("extractors"))
        .expect("read_dir extractors")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .into_string()
                .expect("names are UTF-8")
        })
        .collect();
    v.sort();
    v
}

/// guid of the extractor behind `extractors/<name>`, from its extractor.json.
fn guid_behind(m: &Mounted, name: &str) -> String {
    let p = m.path("extractors").join(name).join("extractor.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {name:?}: {e}"));
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name:?}: {e}"));
    v["guid"].as_str().expect("guid").to_owned()
}

/// The mount process is alive, still mounted, and has not panicked.
fn assert_alive(m: &Mounted) {
    let pid = m.pid().expect("a mount process");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.chars().next().unwrap_or('?'))
        .unwrap_or('?');
    assert!(
        !stat.is_empty() && state != 'Z' && state != 'X',
        "the mount process is gone ({state}):\n{}",
        tail(&m.log_text(), 40)
    );
    assert!(is_fuse_mount(&m.mnt), "no longer mounted");
    m.sh_ok("ls > /dev/null");
    let log = m.log_text();
    assert!(
        !log.contains("panicked"),
        "the mount panicked:\n{}",
        tail(&log, 60)
    );
}

fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// A raw request to the emulator: status, headers, and the body (an error
/// when it ended short).
fn raw(
    emu: &Emu,
    method: Method,
    url: &str,
    range: Option<String>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Result<Vec<u8>, String>) {
    emu.rt.block_on(async {
        // Identity, so that reqwest leaves Content-Length as sent.
        let mut rb = emu
            .http
            .request(method, url)
            .header("accept-encoding", "identity");
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string());
        (status, headers, body)
    })
}

fn wait_for_log(m: &Mounted, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if m.log_text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

// ---------------------------------------------------------------------------
// The emulator's hostile modes, over HTTP.

#[test]
fn emulator_hostile_modes_over_http() {
    let emu = Emu::demo();
    let key = KEY;
    assert_eq!(
        emu.hook(Method::GET, "/_emulator/hostile", None),
        json!({"wrong_types": false, "repeat_pages": false, "lying_length": null, "unauthorized": false, "ignore_range": false})
    );

    // wrong_types: objects keep their guid, other fields change type.
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"wrong_types": true})),
    );
    let list = emu.get_json("/extractors/?_perpage=5");
    for e in list.as_array().unwrap() {
        assert!(e["guid"].is_string());
        assert!(e["name"].is_number(), "{e}");
        assert_eq!(e["archived"], "yes");
        assert!(e["_meta"].is_array());
    }
    let runs = emu.get_json("/crawlruns/?_perpage=5");
    assert_eq!(runs[0]["state"], 7);
    assert!(runs[0]["extractorId"].is_string());

    // repeat_pages: page 7 is page 1, full, and the total lies.
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"repeat_pages": true})),
    );
    let total = api_extractors(&emu).len();
    let get = |page: u32| {
        let url = format!(
            "{}/extractors/?_perpage=50&_page={page}&_apikey={key}",
            emu.url
        );
        raw(&emu, Method::GET, &url, None, None)
    };
    let (_, h1, b1) = get(1);
    assert_eq!(h1["x-total-count"], "1000000");
    let p1: Value = serde_json::from_slice(&b1.unwrap()).unwrap();
    let p7: Value = serde_json::from_slice(&get(7).2.unwrap()).unwrap();
    assert_eq!(p1.as_array().unwrap().len(), 50, "filled to _perpage");
    assert!(total < 50, "the demo has fewer than a page of extractors");
    assert_eq!(p1, p7, "every page is page 1");
    assert!(
        p1[0]["name"].is_string(),
        "one mode at a time: wrong_types is off"
    );

    // lying_length: HEAD and GET claim 10 GB; the body is the real one, cut.
    let run = emu.finished_runs()[0].clone();
    let real = emu.get_bytes(&format!("/crawlruns/{run}/csv"));
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"lying_length": 10_000_000_000u64})),
    );
    let url = format!("{}/crawlruns/{run}/csv?_apikey={key}", emu.url);
    let (_, head, _) = raw(&emu, Method::HEAD, &url, None, None);
    assert_eq!(head["content-length"], "10000000000");
    let (status, get, body) = raw(&emu, Method::GET, &url, None, None);
    assert_eq!(status, 200);
    assert_eq!(get["content-length"], "10000000000");
    assert!(body.is_err(), "the body ends short of its length");
    let range = Some(format!("bytes={}-", real.len()));
    let (status, _, _) = raw(&emu, Method::GET, &url, range, None);
    assert_eq!(status, 416, "a resume past the real end");

    // unauthorized: the right key is refused too; hooks still answer.
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"unauthorized": true})),
    );
    let url = format!("{}/users/current?_apikey={key}", emu.url);
    let (status, _, body) = raw(&emu, Method::GET, &url, None, None);
    assert_eq!(status, 401);
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(body["code"], 401);
    assert!(body["message"].as_str().unwrap().contains("API key"));

    // Unknown modes are refused; DELETE turns everything off.
    let url = format!("{}/_emulator/hostile", emu.url);
    let (status, _, _) = raw(&emu, Method::POST, &url, None, Some(json!({"lying": 1})));
    assert_eq!(status, 400);
    emu.hook(Method::DELETE, "/_emulator/hostile", None);
    assert_eq!(api_extractors(&emu).len(), total);
    assert_eq!(emu.get_bytes(&format!("/crawlruns/{run}/csv")), real);

    // The add hook takes any name and a chosen guid, once.
    let g = "abcdef01-0000-4000-8000-0000000000aa";
    add_extractor(&emu, "a/b\u{0}c", Some(g));
    assert_eq!(api_extractors(&emu)[g], "a/b\u{0}c");
    let url = format!("{}/_emulator/extractors", emu.url);
    let (status, _, _) = raw(
        &emu,
        Method::POST,
        &url,
        None,
        Some(json!({"name": "x", "guid": g})),
    );
    assert_eq!(status, 409);
}

// ---------------------------------------------------------------------------
// Through a mount.

#[test]
fn hostile_names_are_listed_distinct_safe_and_reachable() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let long = "x".repeat(300);
    let long_other = format!("{}y", "x".repeat(299));
    let wide = "é".repeat(150); // 300 bytes, cut at a character boundary
    for name in [
        "a/b",
        "a\u{2215}b", // what "a/b" becomes: a collision
        "/",
        "nul\u{0}name",
        "nulname", // what "nul\0name" becomes
        "\u{0}",
        long.as_str(),
        long.as_str(),
        long_other.as_str(), // the same first 255 bytes as `long`
        wide.as_str(),
        "Twin",
        "Twin",
        "",
        ".",
        "..",
    ] {
        add_extractor(&emu, name, None);
    }
    // Guids that share their first 8 characters, and names made to take the
    // suffixes those guids would get: a suffix must never hand out a name
    // that is already held.
    let a = "abcdef01-0000-4000-8000-000000000001";
    let b = "abcdef01-0000-4000-8000-000000000002";
    add_extractor(&emu, "T", Some(a));
    add_extractor(&emu, "T", Some(b));
    add_extractor(
        &emu,
        "T~abcdef01",
        Some("00000000-0000-4000-8000-00000000000c"),
    );
    add_extractor(
        &emu,
        &format!("T~{a}"),
        Some("00000000-0000-4000-8000-00000000000d"),
    );

    let api = api_extractors(&emu);
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);
    let names = listed(&m);
    assert_eq!(names.len(), api.len(), "every extractor listed once");
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "names are distinct: {names:?}");
    let mut reached = BTreeSet::new();
    for n in &names {
        assert!(
            !n.is_empty()
                && n != "."
                && n != ".."
                && !n.contains('/')
                && !n.contains('\0')
                && n.len() <= 255,
            "unsafe name {n:?}"
        );
        let g = guid_behind(&m, n);
        assert!(reached.insert(g.clone()), "{g} reached twice");
        // The guid reaches the same directory.
        assert_eq!(guid_behind(&m, &g), g);
    }
    let want: BTreeSet<String> = api.keys().cloned().collect();
    assert_eq!(reached, want, "every extractor reachable by its name");

    // The names are exactly what the naming rules give for this listing.
    let mut table = NameTable::default();
    table.update(api.iter().map(|(g, n)| (g.as_str(), n.as_str())));
    let mut expected: Vec<String> = api
        .keys()
        .map(|g| table.name_of(g).expect("named").to_owned())
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    // Spot checks of DESIGN.md's rules.
    assert!(names.iter().any(|n| n.starts_with("a\u{2215}b~")));
    assert!(!names.contains(&"a\u{2215}b".to_owned()), "both suffixed");
    assert!(names.iter().any(|n| n.starts_with("nulname~")));
    assert!(names.iter().any(|n| n.starts_with("Twin~")));
    let longs = names.iter().filter(|n| n.starts_with("xxxxxxxx")).count();
    assert_eq!(longs, 3, "three 300-byte names, three distinct names");
    assert!(names.iter().any(|n| n.starts_with('é') && n.len() <= 255));

    // Stable across listings.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(listed(&m), names, "names are stable across listings");
    assert_alive(&m);
}

#[test]
fn wrong_typed_fields_leave_the_mount_up_and_the_objects_shown() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let api = api_extractors(&emu);
    let runs = emu.get_json("/crawlruns/?_perpage=1000");
    let runs: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["guid"].as_str().unwrap().to_owned())
        .collect();
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"wrong_types": true})),
    );
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);

    // Every extractor is there, under a safe name, and reachable.
    let names = listed(&m);
    assert_eq!(names.len(), api.len(), "{names:?}");
    let reached: BTreeSet<String> = names.iter().map(|n| guid_behind(&m, n)).collect();
    assert_eq!(reached, api.keys().cloned().collect::<BTreeSet<_>>());
    // A name that is a number is read as no name.
    assert!(names.iter().all(|n| n.starts_with("_~")), "{names:?}");

    // The rest of the tree reads.
    for f in ["user.json", "subscription.json"] {
        let v: Value = serde_json::from_slice(&std::fs::read(m.path(f)).unwrap()).unwrap();
        assert!(v.is_object(), "{f}");
    }
    let listed_runs: BTreeSet<String> = std::fs::read_dir(m.path("crawlruns"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed_runs, runs.iter().cloned().collect());
    let state = std::fs::read_to_string(m.path(&format!("crawlruns/{}/state", runs[0]))).unwrap();
    assert_eq!(state, "UNKNOWN\n", "a state of 7 is no state");
    let g = api.keys().next().unwrap();
    let inputs = std::fs::read_to_string(m.path(&format!("extractors/{g}/inputs"))).unwrap();
    assert!(inputs.starts_with("http"), "inputs untouched: {inputs:?}");
    m.sh_ok("ls -lR extractors reports > /dev/null");
    assert!(
        wait_for_log(&m, "a field of the wrong type"),
        "the log says the API sent fields of the wrong type:\n{}",
        tail(&m.log_text(), 30)
    );
    assert_alive(&m);

    // Once the server behaves, the real names come back after the TTL.
    emu.hook(Method::DELETE, "/_emulator/hostile", None);
    std::thread::sleep(Duration::from_millis(1300));
    let names = listed(&m);
    assert!(
        names.iter().any(|n| !n.starts_with("_~")),
        "real names again: {names:?}"
    );
    assert_alive(&m);
}

#[test]
fn a_list_that_repeats_a_page_forever_ends() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let api = api_extractors(&emu);
    let runs = emu.get_json("/crawlruns/?_perpage=1000");
    let n_runs = runs.as_array().unwrap().len();
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"repeat_pages": true})),
    );
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);
    emu.clear_requests();

    let t = Instant::now();
    let names = listed(&m);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(10), "ls took {took:?}");
    // Page 1 alone, then (the count claims a thousand pages) pages 2-4 at
    // once; page 2 repeats page 1 and ends it. A 1 s TTL could let a second
    // listing in later, so this is counted now.
    let pages = emu.count("GET", "/extractors/");
    assert!(pages <= 4, "{pages} pages asked for one listing");
    assert_eq!(names.len(), api.len(), "each extractor once: {names:?}");
    let reached: BTreeSet<String> = names.iter().map(|n| guid_behind(&m, n)).collect();
    assert_eq!(reached, api.keys().cloned().collect::<BTreeSet<_>>());

    let t = Instant::now();
    let out = m.sh_ok("ls crawlruns | wc -l");
    assert!(t.elapsed() < Duration::from_secs(10), "ls crawlruns");
    assert_eq!(out.trim().parse::<usize>().unwrap(), n_runs);
    // An extractor's runs (its own path, GET /extractors/{id}/crawlruns)
    // end too, each run once.
    let t = Instant::now();
    let g = api.keys().next().unwrap();
    let out = m.sh_ok(&format!("ls extractors/{g}/crawlruns"));
    assert!(t.elapsed() < Duration::from_secs(10));
    let mut shown: Vec<&str> = out.lines().collect();
    shown.sort();
    let mut want: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["extractorId"] == json!(g))
        .map(|r| r["guid"].as_str().unwrap())
        .collect();
    want.sort();
    assert_eq!(shown, want, "each of the extractor's runs once");
    assert!(emu.count("GET", &format!("/extractors/{g}/crawlruns")) >= 1);

    assert!(
        wait_for_log(&m, "repeated a page"),
        "the log says the server repeated a page:\n{}",
        tail(&m.log_text(), 30)
    );
    assert_alive(&m);
}

#[test]
fn a_lying_content_length_is_eio_never_short_data() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let runs = emu.get_json("/crawlruns/?_perpage=1000");
    let finished: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "FINISHED")
        .map(|r| r["guid"].as_str().unwrap().to_owned())
        .collect();
    let claimed: u64 = 10_000_000_000;
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);
    // One file read before the server starts lying stays readable.
    let good = format!("crawlruns/{}/data.json", finished[0]);
    let good_bytes = std::fs::read(m.path(&good)).unwrap();
    let real = emu.get_bytes(&format!("/crawlruns/{}/csv", finished[1]));
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"lying_length": claimed})),
    );

    let f = format!("crawlruns/{}/data.csv", finished[1]);
    let size = std::fs::metadata(m.path(&f)).unwrap().len();
    assert!(
        size == claimed || size == real.len() as u64,
        "stat shows the claim or the truth, not {size}"
    );
    let t = Instant::now();
    let r = std::fs::read(m.path(&f));
    let took = t.elapsed();
    match r {
        Ok(b) => panic!(
            "a body short of its Content-Length read as {} bytes",
            b.len()
        ),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
    }
    assert!(took < Duration::from_secs(31), "read took {took:?}");
    // `cat` agrees, and prints no partial file as a success.
    let out = m.sh(&format!("cat {f} > /dev/null"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Input/output error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Fetched whole, the body ends short of the claim; fetched in ranges,
    // a Content-Range gives the true size, or a range past the real end is
    // refused (416). Each way the log names the claim.
    let said = [
        format!("of {claimed} bytes arrived"),
        format!("changed size ({claimed} then {} bytes)", real.len()),
        format!("promised {claimed} bytes but has no byte"),
    ];
    assert!(
        (0..100).any(|_| {
            let log = m.log_text();
            said.iter().any(|s| log.contains(s))
                || (std::thread::sleep(Duration::from_millis(50)), false).1
        }),
        "the log says the body was short of the claim:\n{}",
        tail(&m.log_text(), 30)
    );
    assert!(m.log_text().contains("download failed"));
    assert_eq!(std::fs::read(m.path(&good)).unwrap(), good_bytes);
    assert_alive(&m);

    // Once the server tells the truth, the file reads whole, without a
    // remount (the failed download left nothing behind), and stat agrees.
    emu.hook(Method::DELETE, "/_emulator/hostile", None);
    assert_eq!(std::fs::read(m.path(&f)).unwrap(), real);
    assert_eq!(
        std::fs::metadata(m.path(&f)).unwrap().len(),
        real.len() as u64
    );
    assert_alive(&m);
}

#[test]
fn a_key_revoked_mid_session_is_eacces_and_recovers() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let api = api_extractors(&emu);
    let g = api.keys().next().unwrap().clone();
    let runs = emu.get_json("/crawlruns/?_perpage=1000");
    let run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "FINISHED")
        .unwrap()["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);
    let cached = format!("crawlruns/{run}/data.csv");
    let cached_bytes = std::fs::read(m.path(&cached)).unwrap();
    let before = listed(&m);

    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"unauthorized": true})),
    );
    std::thread::sleep(Duration::from_millis(1300)); // past the metadata TTL
    let t = Instant::now();
    assert_eq!(
        errno_of(std::fs::read(
            m.path(&format!("extractors/{g}/extractor.json"))
        )),
        Some(libc::EACCES)
    );
    assert_eq!(
        errno_of(std::fs::read_dir(m.path("extractors")).map(|d| d.count())),
        Some(libc::EACCES)
    );
    assert_eq!(
        errno_of(std::fs::read(m.path("user.json"))),
        Some(libc::EACCES)
    );
    let touch = m.sh(&format!("touch extractors/{g}/start"));
    assert!(!touch.status.success(), "a start with a revoked key fails");
    assert!(
        String::from_utf8_lossy(&touch.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&touch.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(10), "401 is not retried");
    // A result file already downloaded still reads.
    assert_eq!(std::fs::read(m.path(&cached)).unwrap(), cached_bytes);
    assert!(
        wait_for_log(&m, "the API key was refused"),
        "the log says the key was refused:\n{}",
        tail(&m.log_text(), 30)
    );
    assert_alive(&m);

    // The key works again: so does the mount, without a remount.
    emu.hook(Method::DELETE, "/_emulator/hostile", None);
    assert_eq!(listed(&m), before);
    assert_eq!(guid_behind(&m, &g), g);
    assert!(std::fs::read(m.path("user.json")).is_ok());
    assert_alive(&m);
}

#[test]
fn the_legacy_dialects_repeated_last_pages_show_each_object_once() {
    if !fuse_or_skip() {
        return;
    }
    // Past the end, the legacy dialect answers the last page again. Whole
    // pages (2000 at 1000 a page) and a short last page (2345): N shown of N.
    for n in [2000usize, 2345] {
        let emu = Emu::start(importfs::emulator::Config {
            dialect: importfs::emulator::Dialect::Legacy,
            dataset: importfs::emulator::Dataset::Scale,
            extractors: n,
            crawlruns: n,
            result_bytes: 1024,
            ..Default::default()
        });
        // The emulator does repeat: the page after the last is the last.
        let pages = n.div_ceil(1000);
        let last = emu.get_json(&format!("/extractors/?_perpage=1000&_page={pages}"));
        let past = emu.get_json(&format!("/extractors/?_perpage=1000&_page={}", pages + 1));
        assert_eq!(past, last);
        let m = Mounted::new(&emu.url, &["--metadata-ttl", "30s"]);
        emu.clear_requests();
        let names = listed(&m);
        assert_eq!(names.len(), n);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), n);
        let out = m.sh_ok("ls crawlruns | sort | uniq | wc -l");
        assert_eq!(out.trim().parse::<usize>().unwrap(), n);
        let calls = |op: &str| {
            emu.requests()
                .iter()
                .filter(|r| r["operation"] == op)
                .count()
        };
        assert_eq!(calls("listExtractors"), pages, "{n}");
        assert_eq!(calls("listCrawlruns"), pages, "{n}");
        // A second look within the TTL is the same, and costs nothing.
        emu.clear_requests();
        assert_eq!(listed(&m), names);
        assert_eq!(emu.requests().len(), 0);
        let g = guid_behind(&m, &names[0]);
        let runs = m.sh_ok(&format!("ls extractors/{g}/crawlruns"));
        assert_eq!(runs.lines().count(), 1, "{runs}");
    }
}
