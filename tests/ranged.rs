//! Result files fetched in parallel ranged chunks, over a real mount: exact
//! bytes whatever the order of reads, the chunk a reader needs first, and
//! the faults a ranged download meets (cut ranges, 5xx mid-way, a server
//! that ignores Range, one that stops answering).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

/// The request-log entries of GETs of `path`, as their statuses.
fn statuses(emu: &Emu, path: &str) -> Vec<u64> {
    emu.requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == path)
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect()
}

/// The checksum the store keeps for run `id`'s data.csv, once it is kept.
fn kept_crc(m: &Mounted, id: &str) -> Option<u64> {
    let accounts = std::fs::read_dir(m.cache.join("results")).ok()?;
    for a in accounts.flatten() {
        for e in std::fs::read_dir(a.path()).ok()?.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "meta") {
                continue;
            }
            let Ok(meta) = std::fs::read(&p) else {
                continue;
            };
            let meta: Value = serde_json::from_slice(&meta).ok()?;
            if meta["run"] == id && meta["file"] == "data.csv" {
                return meta["crc32"].as_u64();
            }
        }
    }
    None
}

const CHUNKED: [&str; 4] = ["--download-chunk-size", "1M", "--download-streams", "3"];

#[test]
fn a_large_file_comes_in_ranged_chunks_and_reads_exact() {
    if !fuse_or_skip() {
        return;
    }
    let size = 6_500_000u64;
    let emu = Emu::start(scale_account(size, None));
    let m = Mounted::new(&emu.url, &CHUNKED);
    let id = emu.finished_runs()[0].clone();
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    emu.clear_requests();

    let f = format!("crawlruns/{id}/data.csv");
    assert_eq!(std::fs::metadata(m.path(&f)).unwrap().len(), size);
    let out = m.sh_ok(&format!("cat {f} | sha256sum"));
    assert!(out.starts_with(&sha256_bytes(&truth)), "cat: {out}");
    // cp and python agree, from the cache.
    m.sh_ok(&format!("cp {f} {}/copy.csv", m.dir.path().display()));
    assert_eq!(std::fs::read(m.dir.path().join("copy.csv")).unwrap(), truth);

    // Seven 1 MiB ranges (the last one short), each asked once, no whole GET.
    let st = statuses(&emu, &format!("/crawlruns/{id}/csv"));
    assert_eq!(st, vec![206; 7], "one 206 per chunk: {st:?}");
    // data.json (the same size) is fetched the same way, and both stay
    // cached: a second read costs nothing.
    let j = format!("crawlruns/{id}/data.json");
    let json_truth = emu.get_bytes(&format!("/crawlruns/{id}/json"));
    assert_eq!(std::fs::read(m.path(&j)).unwrap(), json_truth);
    emu.clear_requests();
    assert_eq!(std::fs::read(m.path(&f)).unwrap(), truth);
    assert_eq!(std::fs::read(m.path(&j)).unwrap(), json_truth);
    assert_eq!(emu.count("GET", &format!("/crawlruns/{id}/")), 0);
}

#[test]
fn reads_in_any_order_get_exact_bytes() {
    if !fuse_or_skip() {
        return;
    }
    let size = 5_000_000u64;
    let emu = Emu::start(scale_account(size, None));
    let m = Mounted::new(&emu.url, &CHUNKED);
    let runs = emu.finished_runs();
    // Backwards, in odd-sized steps that straddle chunk boundaries.
    let id = &runs[0];
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    let mut f = std::fs::File::open(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    let step = 777_777u64;
    let mut end = size;
    while end > 0 {
        let start = end.saturating_sub(step);
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert!(
            buf == truth[start as usize..end as usize],
            "bytes {start}..{end} differ"
        );
        end = start;
    }
    // Scattered: python reads 4 KiB at offsets across the file, then all of it.
    let id = &runs[1];
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    let script = format!(
        "import hashlib\n\
         f = open('crawlruns/{id}/data.csv', 'rb')\n\
         out = []\n\
         for off in [4_990_000, 17, 2_100_000, 1_048_575, 3_999_999, 0]:\n\
         \x20   f.seek(off); out.append(f.read(4096).hex())\n\
         f.seek(0); out.append(hashlib.sha256(f.read()).hexdigest())\n\
         print(' '.join(out))\n"
    );
    let py = std::env::var("IMPORTFS_PYTHON").unwrap_or_else(|_| "python3".into());
    let file = m.dir.path().join("scattered.py");
    std::fs::write(&file, script).unwrap();
    let out = m.sh_ok(&format!("{py} {}", file.display()));
    let mut want: Vec<String> = [4_990_000usize, 17, 2_100_000, 1_048_575, 3_999_999, 0]
        .iter()
        .map(|&o| {
            truth[o..(o + 4096).min(truth.len())]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect();
    want.push(sha256_bytes(&truth));
    assert_eq!(out.trim(), want.join(" "));
}

#[test]
fn the_range_a_reader_needs_is_fetched_before_the_rest() {
    if !fuse_or_skip() {
        return;
    }
    // 48 MB at 4 MB/s a connection: the whole file takes at least 4 s with
    // three streams; the chunk holding the last bytes comes in well under 1.
    let size = 48_000_000u64;
    let emu = Emu::start(scale_account(size, Some(4_000_000)));
    let m = Mounted::new(&emu.url, &CHUNKED);
    let id = emu.finished_runs()[0].clone();
    let f = format!("crawlruns/{id}/data.csv");
    assert_eq!(std::fs::metadata(m.path(&f)).unwrap().len(), size);
    let tail = m.sh_ok(&format!("tail -c 4096 {f} | sha256sum"));
    // The download is still going on: tail did not wait for the whole file.
    assert_eq!(
        m.stat("downloads_in_flight"),
        1,
        "tail -c returned before the download ended"
    );
    let mid = m.sh_ok(&format!(
        "dd if={f} bs=4096 skip=6000 count=1 status=none | sha256sum"
    ));
    assert_eq!(m.stat("downloads_in_flight"), 1);
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    let n = truth.len();
    assert!(tail.starts_with(&sha256_bytes(&truth[n - 4096..])), "tail");
    assert!(
        mid.starts_with(&sha256_bytes(&truth[6000 * 4096..6001 * 4096])),
        "dd skip="
    );
}

/// 24 MB result files at 500 kB/s a connection: three 8 MiB chunks (the
/// default) that take 14-17 s each to fetch from their start.
fn slow_24mb() -> importfs::emulator::Config {
    scale_account(24_000_000, Some(500_000))
}

/// A mount fetching over two streams, with a cold data.csv of `emu`: its
/// path in the mount and its true bytes.
fn two_streams(emu: &Emu) -> (Mounted, String, Vec<u8>) {
    let m = Mounted::new(&emu.url, &["--download-streams", "2"]);
    let id = emu.finished_runs()[0].clone();
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    (m, format!("crawlruns/{id}/data.csv"), truth)
}

#[test]
fn a_read_deep_in_a_chunk_starts_its_fetch_there() {
    if !fuse_or_skip() {
        return;
    }
    // 8 MiB chunks at 500 kB/s a connection: the last chunk holds 7.2 MB,
    // and fetching it from its start would take 14 s and all of its bytes.
    // The fetch starts at the 64 KiB boundary before the bytes asked, so
    // tail is answered after a few dozen KiB (plus what read-ahead brought).
    let emu = Emu::start(slow_24mb());
    let (m, f, truth) = two_streams(&emu);
    let tail = m.sh_ok(&format!("tail -c 4096 {f} | sha256sum"));
    let fetched = m.stat("download.bytes");
    assert!(tail.starts_with(&sha256_bytes(&truth[truth.len() - 4096..])));
    assert!(
        fetched < 4_000_000,
        "tail -c 4096 waited for {fetched} bytes: most of its chunk"
    );
}

#[test]
fn a_read_deep_in_a_chunk_already_coming_starts_its_own_fetch_there() {
    if !fuse_or_skip() {
        return;
    }
    // The open starts read-ahead of the first two 8 MiB chunks at 500 kB/s
    // a connection. A read 4 MiB into the second must not wait for the
    // speculative fetch to reach it (8 s and 4 MB): that fetch gives way,
    // the reader's bytes are fetched from where it reads, and the part
    // before them resumes later.
    let emu = Emu::start(slow_24mb());
    let (m, f, truth) = two_streams(&emu);
    let mut file = std::fs::File::open(m.path(&f)).unwrap();
    // Both read-ahead fetches are under way before the reader asks.
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.stat("download.bytes") < 100_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let at = (8 << 20) + (4 << 20);
    let mut got = vec![0u8; 4096];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut got).unwrap();
    let fetched = m.stat("download.bytes");
    assert!(got == truth[at as usize..at as usize + 4096], "exact bytes");
    assert!(
        fetched < 3_000_000,
        "a read 4 MiB into a chunk being read ahead waited for {fetched} bytes"
    );
    // The part before the reader's bytes resumes, exact up to and across
    // where the chunk was split.
    let from = 8u64 << 20;
    let mut span = vec![0u8; (at - from) as usize + 65536];
    file.seek(SeekFrom::Start(from)).unwrap();
    file.read_exact(&mut span).unwrap();
    assert!(
        span == truth[from as usize..from as usize + span.len()],
        "the resumed part"
    );
}

#[test]
fn cut_ranges_and_server_errors_mid_way_are_retried_to_exact_bytes() {
    if !fuse_or_skip() {
        return;
    }
    let size = 4_500_000u64;
    let emu = Emu::start(scale_account(size, None));
    let m = Mounted::new(
        &emu.url,
        &[
            "--download-chunk-size",
            "256K",
            "--download-streams",
            "4",
            "--api-deadline",
            "20s",
        ],
    );
    let runs = emu.finished_runs();
    let truths: Vec<Vec<u8>> = runs[..3]
        .iter()
        .map(|id| emu.get_bytes(&format!("/crawlruns/{id}/csv")))
        .collect();
    emu.clear_requests();
    cut_and_fail_downloads(&emu);
    assert_reads_true(&m, &runs[..3], &truths);
    emu.clear_faults();
    // Each is kept for later mounts with the checksum of its true bytes,
    // made while its cut and retried ranges were written, out of order.
    for (id, truth) in runs[..3].iter().zip(&truths) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut crc = kept_crc(&m, id);
        while crc.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            crc = kept_crc(&m, id);
        }
        assert_eq!(crc, Some(crc32fast::hash(truth) as u64), "run {id}");
    }
    let reqs = emu.requests();
    let gets: Vec<&Value> = reqs
        .iter()
        .filter(|r| r["method"] == "GET" && r["operation"] == "getCrawlrunFile")
        .collect();
    let count = |s: u64| gets.iter().filter(|r| r["status"] == s).count();
    assert!(count(500) >= 1, "some ranges got a 500: {}", count(500));
    assert!(count(206) > 3 * 18, "ranges were asked again after faults");
    assert_eq!(count(200), 0, "never a whole-file GET: ranges all along");
    assert_alive(&m);
}

#[test]
fn a_server_that_ignores_range_is_read_whole_and_remembered() {
    if !fuse_or_skip() {
        return;
    }
    let size = 3_000_000u64;
    let emu = Emu::start(scale_account(size, None));
    emu.hook(
        Method::POST,
        "/_emulator/hostile",
        Some(json!({"ignore_range": true})),
    );
    let m = Mounted::new(&emu.url, &CHUNKED);
    let runs = emu.finished_runs();
    for id in &runs[..2] {
        let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
        let got = std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
        assert!(got == truth, "run {id}: exact bytes");
    }
    // The first file: its ranged GETs got 200s, then one whole GET; the
    // second: one whole GET and nothing else (the refusal is remembered).
    let first = statuses(&emu, &format!("/crawlruns/{}/csv", runs[0]));
    assert!(
        first.iter().all(|&s| s == 200) && (2..=5).contains(&first.len()),
        "{first:?}"
    );
    let second = statuses(&emu, &format!("/crawlruns/{}/csv", runs[1]));
    assert_eq!(
        second,
        vec![200, 200],
        "the test's own GET, then the mount's one"
    );
    assert!(m.log_text().contains("does not serve ranges"));
    assert_alive(&m);
}

#[test]
fn a_range_that_keeps_failing_is_eio_for_every_reader_never_short_data() {
    if !fuse_or_skip() {
        return;
    }
    let size = 8_000_000u64;
    let emu = Emu::start(scale_account(size, Some(2_000_000)));
    let m = Mounted::new(
        &emu.url,
        &[
            "--download-chunk-size",
            "1M",
            "--download-streams",
            "2",
            "--api-deadline",
            "4s",
            "--api-timeout",
            "2s",
        ],
    );
    let id = emu.finished_runs()[0].clone();
    let f = m.path(&format!("crawlruns/{id}/data.csv"));
    let mut file = std::fs::File::open(&f).unwrap();
    let mut head = vec![0u8; 4096];
    file.read_exact(&mut head).unwrap();
    // From now on every answer is a 500: the chunks still to come fail.
    emu.set_faults(json!({"operation": "getCrawlrunFile", "error_rate": 1.0}));
    let t = Instant::now();
    let mut rest = Vec::new();
    let r = file.read_to_end(&mut rest);
    let e = r.expect_err("a file whose ranges fail is not read to its end");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(
        (rest.len() as u64) < size - 4096,
        "what was read before the EIO is a prefix"
    );
    // Once the server is well again, a new open reads the whole file.
    emu.clear_faults();
    drop(file);
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    assert!(std::fs::read(&f).unwrap() == truth);
    assert_alive(&m);
}

fn assert_alive(m: &Mounted) {
    assert!(
        m.sh_ok("cat user.json").contains("guid"),
        "the mount still answers"
    );
}
