//! Reading an account through a real mount: every path of the tree, exact
//! sizes, byte-identical contents, real tools (ls, stat, find, cat, cp, rsync,
//! tar, python), hostile names, and what each action costs in API calls.

mod common;

use common::*;
use importfs::emulator::{Config, Dataset};
use serde_json::Value;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn python() -> String {
    std::env::var("IMPORTFS_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn every_kind_of_node_lists_and_stats() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);

    let root = m.sh_ok("ls -la");
    for name in [
        "user.json",
        "subscription.json",
        "extractors",
        "crawlruns",
        "reports",
        "reportruns",
        ".importfs",
    ] {
        assert!(root.contains(name), "root lacks {name}:\n{root}");
    }
    // Modes as DESIGN.md sets them.
    let mode = |p: &str| std::fs::symlink_metadata(m.path(p)).expect(p).mode() & 0o7777;
    assert_eq!(mode("user.json"), 0o444);
    assert_eq!(mode("extractors"), 0o555);
    let ext = emu.get_json("/extractors/?_perpage=1000");
    let all = ext.as_array().unwrap();
    let first = all.iter().find(|e| {
        let n = e["name"].as_str().unwrap_or("");
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || " -_()".contains(c))
            && all.iter().filter(|o| o["name"] == e["name"]).count() == 1
    });
    let first = first.expect("a plainly named extractor");
    let name = first["name"].as_str().unwrap();
    let guid = first["guid"].as_str().unwrap();
    let d = format!("extractors/{name}");
    assert_eq!(mode(&d), 0o755);
    assert_eq!(mode(&format!("{d}/inputs")), 0o644);
    assert_eq!(mode(&format!("{d}/start")), 0o200);
    assert_eq!(mode(&format!("{d}/credentials")), 0o200);
    assert_eq!(mode(&format!("{d}/extractor.json")), 0o444);
    let listing = m.sh_ok(&format!("ls -la '{d}'"));
    for f in [
        "extractor.json",
        "inputs",
        "start",
        "stop",
        "duplicate",
        "credentials",
        "crawlruns",
    ] {
        assert!(listing.contains(f), "{d} lacks {f}:\n{listing}");
    }

    // extractor.json is the API object, pretty-printed, newline-terminated.
    let text = std::fs::read_to_string(m.path(&format!("{d}/extractor.json"))).unwrap();
    assert!(text.ends_with("}\n"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["guid"], guid);
    // inputs: one URL a line.
    let inputs = std::fs::read_to_string(m.path(&format!("{d}/inputs"))).unwrap();
    let api_inputs = emu.get_json(&format!("/extractors/{guid}/inputs"));
    let want: Vec<&str> = api_inputs["_url"]
        .as_str()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let got: Vec<&str> = inputs.lines().collect();
    assert_eq!(got, want);
    assert!(inputs.is_empty() || inputs.ends_with('\n'));
    // Reading a control file or credentials never works.
    assert!(std::fs::read(m.path(&format!("{d}/credentials"))).is_err());

    // Runs: per-extractor symlinks, latest, state.
    let runs = m.sh_ok(&format!("ls '{d}/crawlruns'"));
    if !runs.trim().is_empty() {
        let target = std::fs::read_link(m.path(&format!("{d}/latest"))).unwrap();
        assert!(
            target.to_string_lossy().starts_with("../../crawlruns/"),
            "{target:?}"
        );
        let state = std::fs::read_to_string(m.path(&format!("{d}/latest/state"))).unwrap();
        assert!(
            [
                "PENDING\n",
                "STARTED\n",
                "FINISHED\n",
                "FAILED\n",
                "CANCELLED\n"
            ]
            .contains(&state.as_str()),
            "{state:?}"
        );
        let one = runs.lines().next().unwrap();
        let link = std::fs::read_link(m.path(&format!("{d}/crawlruns/{one}"))).unwrap();
        assert_eq!(link.to_string_lossy(), format!("../../../crawlruns/{one}"));
        assert!(m
            .path(&format!("{d}/crawlruns/{one}/crawlrun.json"))
            .exists());
    }

    // stat of every file reached by find agrees with what is read.
    let files = m.sh_ok("find . -type f -not -name start -not -name stop -not -name duplicate -not -name credentials -not -name refresh -not -path './.importfs/*' -print0");
    let files: Vec<&str> = files.split('\0').filter(|f| !f.is_empty()).collect();
    assert!(files.len() > 20, "find reached only {} files", files.len());
    for f in &files {
        let p = m.path(f);
        let size = std::fs::metadata(&p).unwrap().len();
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {f}: {e}"));
        assert_eq!(size, bytes.len() as u64, "stat size of {f}");
        assert!(size > 0, "{f} is empty");
    }
    // Unfinished runs have no result files; finished ones have all six.
    let all_runs = emu.get_json("/crawlruns/?_perpage=1000");
    for r in all_runs.as_array().unwrap() {
        let id = r["guid"].as_str().unwrap();
        let has = m.path(&format!("crawlruns/{id}/data.csv")).exists();
        assert_eq!(
            has,
            r["state"] == "FINISHED",
            "run {id} in state {}",
            r["state"]
        );
    }
    // The stats file says something.
    let stats = std::fs::read_to_string(m.path(".importfs/stats")).unwrap();
    assert!(stats.contains("metadata_cache_hits"), "{stats}");
}

#[test]
fn result_files_are_byte_identical_and_tools_agree() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);
    let runs = emu.finished_runs();
    assert!(!runs.is_empty());
    for id in runs.iter().take(4) {
        for (api, file) in [
            ("csv", "data.csv"),
            ("json", "data.json"),
            ("xlsx", "data.xlsx"),
            ("sample", "sample.json"),
            ("log", "log.txt"),
            ("files", "files.zip"),
        ] {
            let src = emu.get_bytes(&format!("/crawlruns/{id}/{api}"));
            let p = m.path(&format!("crawlruns/{id}/{file}"));
            assert_eq!(
                std::fs::metadata(&p).unwrap().len(),
                src.len() as u64,
                "size of {id}/{file}"
            );
            assert_eq!(sha256(&p), sha256_bytes(&src), "content of {id}/{file}");
            // cp, then a second read (from the cache) is the same.
            let copy = m.dir.path().join(format!("{id}-{file}"));
            std::fs::copy(&p, &copy).unwrap();
            assert_eq!(std::fs::read(&copy).unwrap(), src);
        }
    }
    // Report runs: csv/xlsx always, json only for Change reports.
    let rr = emu.get_json("/reportruns/?_perpage=1000");
    for r in rr.as_array().unwrap() {
        let id = r["guid"].as_str().unwrap();
        let dir = m.path(&format!("reportruns/{id}"));
        assert!(dir.join("reportrun.json").exists());
        if dir.join("data.csv").exists() {
            let src = emu.get_bytes(&format!("/reportruns/{id}/csv"));
            assert_eq!(std::fs::read(dir.join("data.csv")).unwrap(), src);
        }
    }

    // rsync then diff -r; tar without "file changed as we read it".
    let copy = m.dir.path().join("copy");
    let first = &runs[0];
    m.sh_ok(&format!(
        "rsync -a crawlruns/{first}/ '{}/'",
        copy.display()
    ));
    m.sh_ok(&format!("diff -r crawlruns/{first} '{}'", copy.display()));
    let tar = m.sh(&format!(
        "tar cf '{}/runs.tar' crawlruns/{first}",
        m.dir.path().display()
    ));
    let err = String::from_utf8_lossy(&tar.stderr);
    assert!(
        tar.status.success() && !err.contains("changed"),
        "tar: {err}"
    );

    // Python reads csv, json lines and xlsx.
    let py = r#"
import csv, json, sys
d = sys.argv[1]
rows = list(csv.reader(open(d + '/data.csv', encoding='utf-8-sig', newline='')))
assert len(rows) >= 2, rows
# isatty() is an ioctl the mount answers with ENOTTY (not ENOSYS, and
# not a warning in its log: the harness checks that on unmount).
assert not open(d + '/data.csv', 'rb').isatty()
n = 0
for line in open(d + '/data.json', encoding='utf-8'):
    if line.strip():
        json.loads(line); n += 1
assert n >= 1
try:
    import openpyxl
except ImportError:
    import os
    if os.environ.get('CI'): raise
    print('openpyxl missing, xlsx not checked'); sys.exit(0)
wb = openpyxl.load_workbook(d + '/data.xlsx', read_only=True)
ws = wb.worksheets[0]
assert sum(1 for _ in ws.iter_rows()) >= 2
print('ok', len(rows), n)
"#;
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(py)
        .arg(m.path(&format!("crawlruns/{first}")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_names_are_listed_distinct_stable_and_reachable() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);
    let list = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(m.path("extractors"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let a = list();
    let api = emu.get_json("/extractors/?_perpage=1000");
    let api = api.as_array().unwrap();
    assert_eq!(a.len(), api.len(), "every extractor listed once: {a:?}");
    let distinct: HashSet<&String> = a.iter().collect();
    assert_eq!(distinct.len(), a.len());
    for n in &a {
        assert!(
            !n.is_empty() && n != "." && n != ".." && !n.contains('/') && n.len() <= 255,
            "{n:?}"
        );
        let p = m.path("extractors").join(n).join("extractor.json");
        let v: Value =
            serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{n:?}: {e}")))
                .unwrap();
        // A guid lookup reaches the same directory.
        let g = v["guid"].as_str().unwrap();
        let by_name = std::fs::metadata(m.path("extractors").join(n))
            .unwrap()
            .ino();
        let by_guid = std::fs::metadata(m.path("extractors").join(g))
            .unwrap()
            .ino();
        assert_eq!(by_name, by_guid, "{n:?} vs {g}");
    }
    std::thread::sleep(Duration::from_millis(2500)); // past the metadata TTL
    assert_eq!(list(), a, "names are stable across listings");
    // The duplicate names got suffixes, the others kept their (safe) names.
    let names: Vec<&str> = api
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names.iter().filter(|x| *x == n).count() > 1 {
            let g = &api[i]["guid"].as_str().unwrap()[..8];
            assert!(
                a.iter().any(|x| x.ends_with(&format!("~{g}"))),
                "{n:?} ~{g} in {a:?}"
            );
        }
    }
    assert!(
        a.iter().any(|n| n.contains('\u{2215}')),
        "a name with / shown with ∕: {a:?}"
    );
}

#[test]
fn listing_costs_pages_and_lookups_cost_no_listing() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(Config {
        dataset: Dataset::Scale,
        extractors: 50,
        crawlruns: 10_000,
        result_bytes: 10_000,
        ..Config::default()
    });
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "30s"]);
    emu.clear_requests();
    let out = m.sh_ok("ls -l crawlruns | wc -l");
    assert!(out.trim().parse::<usize>().unwrap() >= 10_000, "{out}");
    let reqs = emu.requests();
    let lists = reqs.iter().filter(|r| r["path"] == "/crawlruns/").count();
    let per_run = reqs
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/crawlruns/") && p.len() > 11)
        })
        .count();
    assert_eq!(lists, 10, "ceil(10000/1000) list calls: {reqs:?}");
    assert_eq!(per_run, 0, "no per-run call");
    emu.clear_requests();
    m.sh_ok("ls -l crawlruns > /dev/null");
    assert_eq!(
        emu.requests().len(),
        0,
        "a second ls within the TTL costs nothing"
    );
    drop(m);

    // A fresh mount reading one run's file by id lists nothing.
    let m = Mounted::new(&emu.url, &[]);
    let id = emu.finished_runs()[0].clone();
    emu.clear_requests();
    let bytes = std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    assert!(!bytes.is_empty());
    let reqs = emu.requests();
    assert!(
        !reqs
            .iter()
            .any(|r| r["path"] == "/crawlruns/" || r["path"] == "/extractors/"),
        "no listing: {reqs:?}"
    );
}

#[test]
fn a_slow_download_does_not_block_ls() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let m = Mounted::new(&emu.url, &[]);
    let id = emu.finished_runs()[0].clone();
    m.sh_ok("ls extractors > /dev/null; ls reports > /dev/null");
    // The download takes 5 s or more; an ls blocked behind it would take
    // 2.6 s or more, far past what an ls on a busy 2-core machine takes.
    emu.set_faults(serde_json::json!({"operation": "getCrawlrunFile", "latency_ms": 5000}));
    let p = m.path(&format!("crawlruns/{id}/data.csv"));
    let reader = std::thread::spawn(move || std::fs::read(p).map(|b| b.len()));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(2100)); // let the listings' TTL pass, so ls asks the API
    let t2 = Instant::now();
    let out = m.sh_ok("ls extractors");
    let took = t2.elapsed();
    assert!(!out.is_empty());
    assert!(
        took < Duration::from_millis(1500),
        "ls took {took:?} during a slow download"
    );
    assert!(
        !reader.is_finished() || t.elapsed() < Duration::from_secs(3),
        "the download was indeed slow"
    );
    let n = reader.join().unwrap().expect("the slow read completes");
    assert!(n > 0);
    emu.clear_faults();
    assert!(Path::new(&m.mnt).exists());
}

#[test]
fn the_result_cache_streams_and_stays_within_its_bound() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(Config {
        dataset: Dataset::Scale,
        extractors: 5,
        crawlruns: 20,
        result_bytes: 1_000_000,
        ..Config::default()
    });
    let m = Mounted::new(&emu.url, &["--cache-size", "2500000"]);
    // df shows the cache: its size, and (below) the bytes it holds.
    let df = |m: &Mounted| -> (u64, u64) {
        let out = m.sh_ok("stat -f -c '%b %f %S' .");
        let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
        (v[0] * v[2], (v[0] - v[1]) * v[2])
    };
    let (size, used) = df(&m);
    assert_eq!(
        (size, used),
        (2_498_560, 0),
        "df of a fresh mount (4 KiB blocks)"
    );
    let runs = emu.finished_runs();
    assert!(runs.len() >= 5);
    std::fs::read(m.path(&format!("crawlruns/{}/data.csv", runs[0]))).unwrap();
    // The download is counted just after its last byte is readable.
    let mut used = 0;
    for _ in 0..100 {
        used = df(&m).1;
        if used != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        used, 1_003_520,
        "df after one 1 MB file (rounded up to blocks)"
    );
    for id in runs.iter().take(5) {
        let bytes = std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
        assert_eq!(bytes.len(), 1_000_000);
    }
    let cached: u64 = walk_size(&m.cache);
    assert!(
        cached <= 2_500_000,
        "the cache holds {cached} bytes, over its 2.5 MB bound"
    );
    let stats = std::fs::read_to_string(m.path(".importfs/stats")).unwrap();
    let evictions = stats
        .lines()
        .find_map(|l| l.strip_prefix("data_cache_evictions "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap();
    assert!(evictions >= 2, "{stats}");
    // An evicted file is downloaded again and still reads right.
    let again = std::fs::read(m.path(&format!("crawlruns/{}/data.csv", runs[0]))).unwrap();
    assert_eq!(
        sha256_bytes(&again),
        sha256_bytes(&emu.get_bytes(&format!("/crawlruns/{}/csv", runs[0])))
    );
    // Three files held open are more than the bound: none is cut from
    // under its reader, and the one that does not fit beside the others
    // is read through memory, so the cache stays within its bound all the
    // while; once they are closed it is still within it.
    let ids = [&runs[4], &runs[0], &runs[1]];
    let held: Vec<std::fs::File> = ids
        .iter()
        .map(|id| std::fs::File::open(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap())
        .collect();
    for (f, id) in held.iter().zip(ids) {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; 1_000_000];
        f.read_exact_at(&mut bytes, 0).unwrap();
        let want = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
        assert_eq!(sha256_bytes(&bytes), sha256_bytes(&want), "run {id}");
    }
    let during = walk_size(&m.cache);
    assert!(
        during <= 2_500_000,
        "{during} bytes in the cache with three 1 MB files open"
    );
    assert!(m.stat("data_memory_files") >= 1, "one went through memory");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cached = walk_size(&m.cache);
    while cached > 2_500_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        cached = walk_size(&m.cache);
    }
    assert!(
        cached <= 2_500_000,
        "{cached} bytes stay in the cache after its readers closed"
    );
}

#[test]
fn a_reader_gets_the_first_bytes_before_the_download_ends() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(Config {
        dataset: Dataset::Scale,
        extractors: 2,
        crawlruns: 4,
        result_bytes: 400_000_000,
        ..Config::default()
    });
    let m = Mounted::new(&emu.url, &[]);
    let id = emu.finished_runs()[0].clone();
    let p = m.path(&format!("crawlruns/{id}/data.csv"));
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        400_000_000,
        "exact size before reading"
    );
    use std::io::Read;
    let mut f = std::fs::File::open(&p).unwrap();
    let mut head = [0u8; 4096];
    f.read_exact(&mut head).unwrap();
    let stats = std::fs::read_to_string(m.path(".importfs/stats")).unwrap();
    assert!(
        stats.contains("downloads_in_flight 1"),
        "the first bytes were served while the download went on:\n{stats}"
    );
    assert!(head.starts_with("\u{feff}".as_bytes()), "a CSV with a BOM");
}

#[test]
fn sigterm_unmounts_cleanly() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let mut m = Mounted::new(&emu.url, &[]);
    m.sh_ok("ls extractors > /dev/null");
    let pid = m.pid().unwrap();
    let mut child = m.take_child().unwrap();
    assert!(std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "importfs did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(!is_fuse_mount(&m.mnt), "still mounted after SIGTERM");
    assert!(
        std::fs::read_dir(&m.mnt).unwrap().next().is_none(),
        "the mountpoint is an empty directory again"
    );
}

/// The bytes of the files under `dir`, each counted once. The cache changes
/// while it is walked: a download moved from the mount's folder into the
/// store (a rename) is known by its inode wherever the walk meets it, and a
/// file deleted between listing and stat is not counted.
fn walk_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashMap<u64, u64>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(Result::ok) {
            let Ok(md) = e.metadata() else {
                continue;
            };
            if md.is_dir() {
                walk(&e.path(), seen);
            } else {
                use std::os::unix::fs::MetadataExt;
                seen.insert(md.ino(), md.len());
            }
        }
    }
    let mut seen = std::collections::HashMap::new();
    walk(dir, &mut seen);
    seen.values().sum()
}

/// The `operation`s of the request log, with their paths and queries.
fn ops_of(emu: &Emu, op: &str) -> Vec<(String, String)> {
    emu.requests()
        .iter()
        .filter(|r| r["operation"] == op)
        .map(|r| {
            (
                r["path"].as_str().unwrap_or("").to_owned(),
                r["query"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Two extractors of the demo with runs: (guid, sorted run guids).
fn two_with_runs(emu: &Emu) -> Vec<(String, Vec<String>)> {
    let runs = emu.get_json("/crawlruns/?_perpage=1000");
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in runs.as_array().unwrap() {
        by.entry(r["extractorId"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["guid"].as_str().unwrap().to_owned());
    }
    let out: Vec<_> = by
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(k, mut v)| {
            v.sort();
            (k, v)
        })
        .take(2)
        .collect();
    assert_eq!(out.len(), 2);
    out
}

fn listed_runs(m: &Mounted, g: &str) -> Vec<String> {
    let mut v: Vec<String> = m
        .sh_ok(&format!("ls extractors/{g}/crawlruns"))
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn an_extractors_runs_come_from_its_own_path_or_the_fallback_once() {
    if !fuse_or_skip() {
        return;
    }
    // A server with GET /extractors/{id}/crawlruns: one call per extractor,
    // and no GET /crawlruns/ at all.
    let emu = Emu::demo();
    let exts = two_with_runs(&emu);
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "30s"]);
    m.sh_ok("ls extractors > /dev/null");
    emu.clear_requests();
    for (g, want) in &exts {
        assert_eq!(&listed_runs(&m, g), want);
        m.sh_ok(&format!(
            "readlink extractors/{g}/latest && ls extractors/{g}"
        ));
    }
    let own = ops_of(&emu, "listExtractorCrawlruns");
    assert_eq!(
        own.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        exts.iter()
            .map(|(g, _)| format!("/extractors/{g}/crawlruns"))
            .collect::<Vec<_>>(),
        "one call per extractor"
    );
    assert_eq!(ops_of(&emu, "listCrawlruns"), vec![], "no fallback");
    drop(m);

    // A server of the seed spec (the path answers 404): the first listing
    // costs one extra call, then the mount asks GET /crawlruns/?extractorId=
    // alone.
    let emu = Emu::demo();
    emu.set_faults(serde_json::json!({"operation": "listExtractorCrawlruns", "status": 404}));
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "30s"]);
    m.sh_ok("ls extractors > /dev/null");
    emu.clear_requests();
    let (g0, want0) = &exts[0];
    assert_eq!(&listed_runs(&m, g0), want0);
    assert_eq!(ops_of(&emu, "listExtractorCrawlruns").len(), 1);
    let fallback = ops_of(&emu, "listCrawlruns");
    assert_eq!(fallback.len(), 1, "{fallback:?}");
    assert_eq!(fallback[0].0, "/crawlruns/");
    assert!(
        fallback[0].1.contains(&format!("extractorId={g0}")),
        "{fallback:?}"
    );
    emu.clear_requests();
    let (g1, want1) = &exts[1];
    assert_eq!(&listed_runs(&m, g1), want1);
    m.sh_ok(&format!("readlink extractors/{g1}/latest"));
    assert_eq!(
        ops_of(&emu, "listExtractorCrawlruns").len(),
        0,
        "remembered"
    );
    assert_eq!(ops_of(&emu, "listCrawlruns").len(), 1);
    // 405 is taken the same way.
    drop(m);
    let emu = Emu::demo();
    emu.set_faults(serde_json::json!({"operation": "listExtractorCrawlruns", "status": 405}));
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "30s"]);
    m.sh_ok("ls extractors > /dev/null");
    emu.clear_requests();
    for (g, want) in &exts {
        assert_eq!(&listed_runs(&m, g), want);
    }
    assert_eq!(ops_of(&emu, "listExtractorCrawlruns").len(), 1);
    assert_eq!(ops_of(&emu, "listCrawlruns").len(), 2);
}
