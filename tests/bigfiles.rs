//! Big result files within the disk and memory a mount is given, over real
//! mounts: a peek fetches only what it reads (counted in the emulator's
//! request log), closing stops read-ahead, `--cache-size` bounds the disk
//! at every moment, a full disk switches to memory instead of ENOSPC,
//! memory-path readers stay within `--max-memory`, and a partly read file
//! is never kept as whole.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The ranges the emulator was asked for `path` (inclusive `bytes=a-b`
/// spans as half-open `(a, b + 1)`); a GET of it without a Range header
/// (the whole file) fails the test.
fn ranges_asked(emu: &Emu, path: &str) -> Vec<(u64, u64)> {
    emu.requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == path)
        .map(|r| {
            let range = r["range"]
                .as_str()
                .unwrap_or_else(|| panic!("a GET of {path} without a range: {r}"));
            let spec = range.strip_prefix("bytes=").expect("bytes=");
            let (a, b) = spec.split_once('-').expect("a-b");
            (a.parse().unwrap(), b.parse::<u64>().unwrap() + 1)
        })
        .collect()
}

/// Bytes `from..from + len` of `path` straight from the emulator.
fn emu_range(emu: &Emu, path: &str, from: u64, len: u64) -> Vec<u8> {
    let url = format!("{}{}?_apikey={}", emu.url, path, emu.key);
    emu.rt.block_on(async {
        let r = emu
            .http
            .get(&url)
            .header("Range", format!("bytes={}-{}", from, from + len - 1))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 206, "GET {path} range");
        r.bytes().await.expect("body").to_vec()
    })
}

/// The SHA-256 of a whole file straight from the emulator, streamed (a
/// gigabyte is never held in the test's memory).
fn emu_sha(emu: &Emu, path: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "curl -sf '{}{}?_apikey={}' | sha256sum",
            emu.url, path, emu.key
        ))
        .output()
        .expect("curl");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)[..64].to_owned()
}

/// Bytes allocated on disk under `dir` (blocks, not apparent sizes: a
/// partly fetched file is sparse).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += disk_usage(&e.path());
        }
    }
    total
}

/// The ranges `path` cost once the mount is idle, checked to be at most
/// 16 MiB in all (`what` names the reader in the message).
fn peek_cost(emu: &Emu, m: &Mounted, path: &str, what: &str) -> Vec<(u64, u64)> {
    wait_idle(m);
    let asked = ranges_asked(emu, path);
    let total: u64 = asked.iter().map(|(a, b)| b - a).sum();
    assert!(total <= 16 * MIB, "{what} fetched {total} bytes: {asked:?}");
    asked
}

/// Read `seeks` (offset, length) of `file` in the mount with Python's
/// seek and read, each checked against the emulator's bytes of `api`.
fn check_seeks(emu: &Emu, m: &Mounted, file: &str, api: &str, seeks: &[(u64, u64)]) {
    let args: Vec<String> = seeks.iter().map(|(o, l)| format!("{o}:{l}")).collect();
    let out = m.sh_ok(&format!(
        "python3 -c '
import hashlib, sys
with open(sys.argv[1], \"rb\") as f:
    for a in sys.argv[2:]:
        o, n = map(int, a.split(\":\"))
        f.seek(o)
        print(hashlib.sha256(f.read(n)).hexdigest())
' {file} {}",
        args.join(" ")
    ));
    assert_eq!(out.lines().count(), seeks.len());
    for ((o, l), line) in seeks.iter().zip(out.lines()) {
        assert_eq!(line, sha256_bytes(&emu_range(emu, api, *o, *l)), "{o}:{l}");
    }
}

/// Wait (10 s at most) until the mount has no download running: what it
/// fetched is then all it will fetch.
fn wait_idle(m: &Mounted) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.stat("downloads_in_flight") > 0 {
        assert!(Instant::now() < deadline, "a fetch goes on after close");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Samples the disk used under a directory every few milliseconds, in a
/// thread, until dropped: the most it saw.
struct DiskSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskSampler {
    fn start(dir: &Path) -> DiskSampler {
        let (max, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (m, s, d) = (max.clone(), stop.clone(), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(disk_usage(&d), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        DiskSampler {
            max,
            stop,
            thread: Some(thread),
        }
    }

    fn max(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for DiskSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_peek_at_a_big_file_fetches_only_around_it() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(GIB, None));
    let m = Mounted::new(&emu.url, &[]);
    let runs = emu.finished_runs();
    assert!(runs.len() >= 3);
    let file = |i: usize| format!("crawlruns/{}/data.csv", runs[i]);
    let api = |i: usize| format!("/crawlruns/{}/csv", runs[i]);
    for i in 0..3 {
        assert_eq!(std::fs::metadata(m.path(&file(i))).unwrap().len(), GIB);
    }

    // head: the first chunk, and at most one more.
    emu.clear_requests();
    let head = m.sh_ok(&format!("head -c 4096 {} | sha256sum", file(0)));
    assert!(head.starts_with(&sha256_bytes(&emu_range(&emu, &api(0), 0, 4096))));
    peek_cost(&emu, &m, &api(0), "head -c 4096");

    // tail: the last bytes, not the head, nor the file.
    emu.clear_requests();
    let tail = m.sh_ok(&format!("tail -c 4096 {} | sha256sum", file(1)));
    let want = emu_range(&emu, &api(1), GIB - 4096, 4096);
    assert!(tail.starts_with(&sha256_bytes(&want)), "tail");
    peek_cost(&emu, &m, &api(1), "tail -c 4096");

    // dd into the middle: only around it.
    emu.clear_requests();
    let mid = GIB / 2 + 12345 * 4096;
    let dd = m.sh_ok(&format!(
        "dd if={} bs=4096 skip={} count=1 status=none | sha256sum",
        file(2),
        mid / 4096
    ));
    assert!(dd.starts_with(&sha256_bytes(&emu_range(&emu, &api(2), mid, 4096))));
    let asked = peek_cost(&emu, &m, &api(2), "dd skip=");
    for (a, b) in &asked {
        assert!(
            *a + 16 * MIB >= mid && *b <= mid + 16 * MIB,
            "dd skip= to {mid} fetched {a}..{b}"
        );
    }
    // What the three peeks left on disk is what they fetched.
    assert!(m.stat("data_cache_bytes") <= 48 * MIB);
}

#[test]
fn closing_a_file_stops_the_chunks_nobody_asked_for() {
    if !fuse_or_skip() {
        return;
    }
    // 20 MB/s a connection: the 256 MiB file takes seconds, so read-ahead
    // is still under way when the reader closes.
    let size = 256 * MIB;
    let emu = Emu::start(scale_account(size, Some(20_000_000)));
    let m = Mounted::new(&emu.url, &[]);
    let id = emu.finished_runs()[0].clone();
    let f = m.path(&format!("crawlruns/{id}/data.csv"));
    assert_eq!(std::fs::metadata(&f).unwrap().len(), size);
    let read = 48 * MIB;
    m.sh_ok(&format!("head -c {read} {} > /dev/null", f.display()));
    wait_idle(&m);
    let fetched = m.stat("download.bytes");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        m.stat("download.bytes"),
        fetched,
        "bytes still arrive after the reader closed"
    );
    // What was read, plus at most one read-ahead window and a chunk.
    assert!(
        fetched <= read + importfs::fs::data::READ_AHEAD_MAX + 8 * MIB,
        "a 48 MiB read of a 256 MiB file fetched {fetched} bytes"
    );
    assert!(fetched >= read);
    // The part read is not kept as the file, and a new open reads on from
    // what is held, to exact bytes.
    let sha = m.sh_ok(&format!("sha256sum < {}", f.display()));
    assert!(sha.starts_with(&emu_sha(&emu, &format!("/crawlruns/{id}/csv"))));
}

#[test]
fn a_file_larger_than_the_cache_streams_through_memory_within_the_bound() {
    if !fuse_or_skip() {
        return;
    }
    let size = 256 * MIB;
    let emu = Emu::start(scale_account(size, None));
    let m = Mounted::new(&emu.url, &["--cache-size", "64M"]);
    let runs = emu.finished_runs();
    let id = &runs[0];
    let f = format!("crawlruns/{id}/data.csv");
    assert_eq!(std::fs::metadata(m.path(&f)).unwrap().len(), size);
    let sampler = DiskSampler::start(&m.cache);
    let sha = m.sh_ok(&format!("sha256sum < {f}"));
    let tail = m.sh_ok(&format!("tail -c 100000 {f} | sha256sum"));
    let most = sampler.max();
    assert!(sha.starts_with(&emu_sha(&emu, &format!("/crawlruns/{id}/csv"))));
    let want = emu_range(
        &emu,
        &format!("/crawlruns/{id}/csv"),
        size - 100_000,
        100_000,
    );
    assert!(tail.starts_with(&sha256_bytes(&want)), "tail");
    assert!(
        most <= 64 * MIB,
        "the cache folder held {most} bytes under --cache-size 64M"
    );
    assert!(m.stat("data_memory_files") >= 1);
    wait_idle(&m);
    assert_eq!(m.stat("data_memory_bytes"), 0, "memory given back on close");
}

/// A tmpfs of `size` mounted at `dir` (root only), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t tmpfs");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_read_through_memory_not_enospc() {
    if !fuse_or_skip() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let why = "mounting a small tmpfs needs root";
        assert!(std::env::var("CI").is_err(), "{why}: CI runs as root");
        eprintln!("SKIPPED: {why}");
        return;
    }
    let size = 256 * MIB;
    let emu = Emu::start(scale_account(size, None));
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&dir.path().join("small"), "32m");
    let mut m = Mounted::with_cache(&emu.url, &[], &tmpfs.0);
    let runs = emu.finished_runs();
    let api = |i: usize| format!("/crawlruns/{}/csv", runs[i]);
    let file = |i: usize| format!("crawlruns/{}/data.csv", runs[i]);

    // cat of a file eight times the disk: exact, not ENOSPC.
    let sha = m.sh_ok(&format!("sha256sum < {}", file(0)));
    assert!(sha.starts_with(&emu_sha(&emu, &api(0))), "cat");
    assert!(m.stat("data_cache_disk_full") >= 1);
    // The next file goes the same way while the disk stays full: tail
    // and random seeks from Python, exact.
    let tail = m.sh_ok(&format!("tail -c 70000 {} | sha256sum", file(1)));
    let want = emu_range(&emu, &api(1), size - 70_000, 70_000);
    assert!(tail.starts_with(&sha256_bytes(&want)), "tail");
    let seeks: Vec<(u64, u64)> = (0..40u64)
        .map(|i| {
            let off = (i * 2_654_435_761 * 4099) % (size - MIB);
            (off, 1 + (i * 7919 * 131) % MIB)
        })
        .collect();
    check_seeks(&emu, &m, &file(2), &api(2), &seeks);
    m.unmount();
    let warnings = m.log_text().matches("the cache's disk is full").count();
    assert_eq!(warnings, 1, "one warning while the disk stays full");
    drop(tmpfs);
}

#[test]
fn memory_path_readers_stay_within_the_budget() {
    if !fuse_or_skip() {
        return;
    }
    let size = 256 * MIB;
    let emu = Emu::start(scale_account(size, None));
    // A 1 MiB disk cache: every file goes through memory, 64 MiB of it.
    let m = Mounted::new(&emu.url, &["--cache-size", "1M", "--max-memory", "64M"]);
    let runs = emu.finished_runs();
    assert!(runs.len() >= 4);
    let files: Vec<String> = runs[..4]
        .iter()
        .map(|id| format!("crawlruns/{id}/data.csv"))
        .collect();
    for f in &files {
        assert_eq!(std::fs::metadata(m.path(f)).unwrap().len(), size);
    }
    let pid = m.pid().expect("pid");
    let status = |key: &str| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    let before = status("VmRSS:");
    let script: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| format!("sha256sum < {f} > {}/sum{i} &", m.dir.path().display()))
        .collect();
    m.sh_ok(&format!("{} wait", script.join(" ")));
    let peak = status("VmHWM:");
    for (i, id) in runs[..4].iter().enumerate() {
        let got = std::fs::read_to_string(m.dir.path().join(format!("sum{i}"))).unwrap();
        assert!(
            got.starts_with(&emu_sha(&emu, &format!("/crawlruns/{id}/csv"))),
            "{id}"
        );
    }
    assert!(m.stat("data_memory_files") >= 4);
    // The budget, and what the mount's threads and buffers need besides.
    let grew = peak.saturating_sub(before);
    assert!(
        grew <= 64 * MIB + 32 * MIB,
        "the mount's RSS grew by {} MiB with four memory-path readers under --max-memory 64M",
        grew / MIB
    );
}

#[test]
fn a_partly_read_file_is_not_kept_as_whole() {
    if !fuse_or_skip() {
        return;
    }
    // More than one read-ahead window, so nothing completes it unread.
    let size = 100 * MIB;
    let emu = Emu::start(scale_account(size, None));
    let mut m = Mounted::new(&emu.url, &[]);
    let id = emu.finished_runs()[0].clone();
    let f = format!("crawlruns/{id}/data.csv");
    let want = emu_sha(&emu, &format!("/crawlruns/{id}/csv"));
    m.sh_ok(&format!(
        "head -c 100000 {f} > /dev/null; tail -c 100000 {f} > /dev/null"
    ));
    wait_idle(&m);
    m.unmount();
    let kept = |m: &Mounted| {
        std::fs::read_dir(m.cache.join("results"))
            .map(|d| {
                d.flatten()
                    .flat_map(|a| std::fs::read_dir(a.path()).into_iter().flatten().flatten())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "data"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(kept(&m), 0, "a partly read file was kept");
    m.remount(&emu.url, &[]);
    let sha = m.sh_ok(&format!("sha256sum < {f}"));
    assert!(sha.starts_with(&want));
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 0);
    // Read to its end, it is complete and kept, and the next mount uses it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while kept(&m) == 0 {
        assert!(Instant::now() < deadline, "a file read whole was not kept");
        std::thread::sleep(Duration::from_millis(50));
    }
    m.unmount();
    m.remount(&emu.url, &[]);
    emu.clear_requests();
    let sha = m.sh_ok(&format!("sha256sum < {f}"));
    assert!(sha.starts_with(&want));
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 1);
    assert!(ranges_asked(&emu, &format!("/crawlruns/{id}/csv")).is_empty());
}

#[test]
fn the_memory_path_gives_exact_bytes_through_faults_or_eio() {
    if !fuse_or_skip() {
        return;
    }
    // 4.5 MB files over a 1 MiB disk cache: all through memory, in 256 KiB
    // ranges, while the server cuts answers and fails some with 500s.
    let size = 4_500_000u64;
    let emu = Emu::start(scale_account(size, None));
    let flags = [
        "--cache-size",
        "1M",
        "--download-chunk-size",
        "256K",
        "--api-deadline",
        "20s",
    ];
    let m = Mounted::new(&emu.url, &flags);
    let runs = emu.finished_runs();
    let truths: Vec<Vec<u8>> = runs[..3]
        .iter()
        .map(|id| emu.get_bytes(&format!("/crawlruns/{id}/csv")))
        .collect();
    cut_and_fail_downloads(&emu);
    assert_reads_true(&m, &runs[..3], &truths);
    assert!(m.stat("data_memory_files") >= 3);
    // A server that fails every range: EIO, never short or wrong bytes.
    let m2 = Mounted::new(&emu.url, &["--cache-size", "1M", "--api-deadline", "2s"]);
    emu.set_faults(serde_json::json!({"operation": "getCrawlrunFile", "error_rate": 1.0}));
    let r = std::fs::read(m2.path(&format!("crawlruns/{}/data.csv", runs[3])));
    let e = r.expect_err("a file whose ranges all fail is not read");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    emu.clear_faults();
}

#[test]
fn a_file_read_cold_through_faults_reads_again_exact() {
    if !fuse_or_skip() {
        return;
    }
    // 100 MiB: its cold reader passes several steps at which the pages
    // behind it are dropped (when passthrough is on), while the server cuts
    // answers and fails some with 500s. Every later read is exact.
    let size = 100 * MIB;
    let emu = Emu::start(scale_account(size, None));
    let m = Mounted::new(&emu.url, &["--api-deadline", "20s"]);
    let id = emu.finished_runs()[0].clone();
    let api = format!("/crawlruns/{id}/csv");
    let f = format!("crawlruns/{id}/data.csv");
    let want = emu_sha(&emu, &api);
    cut_and_fail_downloads(&emu);
    let cold = m.sh_ok(&format!("sha256sum < {f}"));
    emu.clear_faults();
    assert!(cold.starts_with(&want), "cold");
    for round in 0..2 {
        let again = m.sh_ok(&format!("sha256sum < {f}"));
        assert!(again.starts_with(&want), "re-read {round}");
    }
    let seeks: Vec<(u64, u64)> = (1..20u64)
        .map(|i| ((i * 5_242_883) % (size - MIB), 4096 + i * 1000))
        .collect();
    check_seeks(&emu, &m, &f, &api, &seeks);
}
