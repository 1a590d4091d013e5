//! Finished runs' result files kept in `--cache-dir` across mounts, over
//! real mounts: a remount reads them with no download and no HEAD, a
//! corrupted entry is fetched again, accounts never share, a killed mount
//! leaves nothing half-done to serve, two mounts share one directory, and
//! `--cache-size` bounds the directory across mounts.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Requests (GET or HEAD) for a crawl run's files.
fn file_calls(emu: &Emu, id: &str) -> Vec<Value> {
    file_calls_of(emu, "crawlruns", id)
}

/// Requests (GET or HEAD) for the files of run `id` under `/{kind}/`.
fn file_calls_of(emu: &Emu, kind: &str, id: &str) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(&format!("/{kind}/{id}/")))
        })
        .collect()
}

/// A finished report run of the account.
fn finished_report_run(emu: &Emu) -> String {
    emu.get_json("/reportruns/?_perpage=1000")
        .as_array()
        .expect("report runs")
        .iter()
        .find(|r| r["status"] == "FINISHED")
        .and_then(|r| r["guid"].as_str())
        .expect("a finished report run")
        .to_owned()
}

/// The kept entries' data files under a cache directory, with their meta.
fn kept(cache: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let Ok(accounts) = std::fs::read_dir(cache.join("results")) else {
        return out;
    };
    for a in accounts.flatten() {
        for e in std::fs::read_dir(a.path()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "data") {
                // An entry being evicted right now may lose its .meta
                // between the listing and the read: it is not kept.
                if let Ok(meta) = std::fs::read(p.with_extension("meta")) {
                    out.push((p, serde_json::from_slice(&meta).unwrap()));
                }
            }
        }
    }
    out
}

/// Wait (10 s at most) until `n` entries are kept in the mount's cache dir.
fn wait_kept(m: &Mounted, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while kept(&m.cache).len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} files kept: {:?}",
            kept(&m.cache)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait (10 s at most) for a killed mount's auto-unmount; detach it if it
/// is still there. Auto-unmount after SIGKILL is robust.rs's to prove;
/// these tests need only the mountpoint free.
fn wait_gone_or_detach(m: &Mounted) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_fuse_mount(&m.mnt) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if is_fuse_mount(&m.mnt) {
        let _ = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(&m.mnt)
            .status();
    }
}

fn unmount_and_wait(m: &mut Mounted) {
    m.unmount();
    assert!(!is_fuse_mount(&m.mnt));
}

#[test]
fn a_remount_reads_kept_files_with_no_download_and_no_head() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(3_000_000, None));
    let chunked = ["--download-chunk-size", "1M"];
    let mut m = Mounted::new(&emu.url, &chunked);
    let id = emu.finished_runs()[0].clone();
    let csv = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    let json = emu.get_bytes(&format!("/crawlruns/{id}/json"));
    // data.csv comes in ranges, data.json in one piece: both are kept.
    assert!(std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap() == csv);
    m.sh_ok(&format!(
        "dd if=crawlruns/{id}/data.json bs=1M status=none > /dev/null"
    ));
    wait_kept(&m, 2);
    unmount_and_wait(&mut m);

    emu.clear_requests();
    m.remount(&emu.url, &chunked);
    let f = format!("crawlruns/{id}/data.csv");
    assert_eq!(std::fs::metadata(m.path(&f)).unwrap().len(), 3_000_000);
    assert!(std::fs::read(m.path(&f)).unwrap() == csv);
    assert!(std::fs::read(m.path(&format!("crawlruns/{id}/data.json"))).unwrap() == json);
    let calls = file_calls(&emu, &id);
    assert!(calls.is_empty(), "no GET and no HEAD: {calls:?}");
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 2);
    // The metadata came from the API; only the bytes came from the cache.
    assert!(emu.count("GET", &format!("/crawlruns/{id}")) >= 1);
}

#[test]
fn a_corrupted_or_cut_kept_file_is_fetched_again() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(2_000_000, None));
    let mut m = Mounted::new(&emu.url, &[]);
    let runs = emu.finished_runs();
    let truth: Vec<Vec<u8>> = runs[..2]
        .iter()
        .map(|id| emu.get_bytes(&format!("/crawlruns/{id}/csv")))
        .collect();
    for id in &runs[..2] {
        std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    }
    wait_kept(&m, 2);
    unmount_and_wait(&mut m);
    // One entry gets a flipped byte, the other loses its last byte.
    for (data, meta) in kept(&m.cache) {
        let mut b = std::fs::read(&data).unwrap();
        if meta["run"] == runs[0].as_str() {
            b[1_000_000] ^= 0x20;
        } else {
            b.pop();
        }
        std::fs::write(&data, b).unwrap();
    }
    emu.clear_requests();
    m.remount(&emu.url, &[]);
    for (id, truth) in runs[..2].iter().zip(&truth) {
        let got = std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
        assert!(got == *truth, "run {id}: the right bytes came back");
        let gets = file_calls(&emu, id)
            .iter()
            .filter(|r| r["method"] == "GET")
            .count();
        assert_eq!(gets, 1, "run {id}: downloaded again, once");
    }
    assert_eq!(m.stat("data_cache_corrupt"), 1, "the flipped byte");
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 0);
    assert!(m.log_text().contains("does not match its checksum"));
}

#[test]
fn two_accounts_never_see_each_others_files() {
    if !fuse_or_skip() {
        return;
    }
    // Two servers with the same (deterministic) run ids, and other keys.
    let a = Emu::start(scale_account(500_000, None));
    let b = Emu::start_with_key(scale_account(500_000, None), "another-key-9876543210");
    let id = a.finished_runs()[0].clone();
    assert_eq!(b.finished_runs()[0], id, "the same ids on both servers");
    let mut ma = Mounted::new(&a.url, &[]);
    std::fs::read(ma.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    wait_kept(&ma, 1);
    unmount_and_wait(&mut ma);
    let mb = Mounted::sharing_cache(&b.url, &[], "another-key-9876543210", &ma);
    b.clear_requests();
    std::fs::read(mb.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    assert_eq!(
        file_calls(&b, &id)
            .iter()
            .filter(|r| r["method"] == "GET")
            .count(),
        1,
        "the other account downloads its own file"
    );
    assert_eq!(mb.stat("data_cache_hits_earlier_mounts"), 0);
    let accounts = std::fs::read_dir(ma.cache.join("results")).unwrap().count();
    assert_eq!(accounts, 2, "one folder per account");
}

#[test]
fn a_killed_mount_leaves_nothing_half_done_to_serve() {
    if !fuse_or_skip() {
        return;
    }
    // 6 MB at 1 MB/s a connection: the kill comes mid-download.
    let emu = Emu::start(scale_account(6_000_000, Some(1_000_000)));
    let mut m = Mounted::new(&emu.url, &["--download-chunk-size", "1M"]);
    let id = emu.finished_runs()[0].clone();
    let f = format!("crawlruns/{id}/data.csv");
    m.sh_ok(&format!("head -c 4096 {f} > /dev/null"));
    let mut child = m.take_child().expect("the mount process");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    wait_gone_or_detach(&m);
    assert!(!is_fuse_mount(&m.mnt), "the killed mount is gone");
    assert!(kept(&m.cache).is_empty(), "nothing partial was kept");
    m.remount(&emu.url, &["--download-chunk-size", "1M"]);
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    assert!(
        std::fs::read(m.path(&f)).unwrap() == truth,
        "whole, exact bytes"
    );
    // The dead mount's folder (with its partial file) is gone.
    let dirs: Vec<_> = std::fs::read_dir(&m.cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mount-"))
        .collect();
    assert_eq!(dirs.len(), 1, "only the live mount's folder: {dirs:?}");
}

#[test]
fn two_mounts_share_one_cache_dir() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(4_000_000, Some(8_000_000)));
    let m1 = Mounted::new(&emu.url, &["--download-chunk-size", "1M"]);
    let m2 = Mounted::sharing_cache(&emu.url, &["--download-chunk-size", "1M"], KEY, &m1);
    let id = emu.finished_runs()[0].clone();
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    let f = format!("crawlruns/{id}/data.csv");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| std::fs::read(m1.path(&f)).unwrap());
        let b = s.spawn(|| std::fs::read(m2.path(&f)).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a == truth && b == truth, "both mounts read the exact bytes");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let k = kept(&m1.cache);
        if !k.is_empty() {
            assert_eq!(k.len(), 1, "one entry for one file: {k:?}");
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    // A third mount of the same account finds it.
    let m3 = Mounted::sharing_cache(&emu.url, &[], KEY, &m1);
    emu.clear_requests();
    assert!(std::fs::read(m3.path(&f)).unwrap() == truth);
    assert!(file_calls(&emu, &id).is_empty());
}

#[test]
fn the_cache_size_bounds_the_directory_across_mounts() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(1_000_000, None));
    let mut m = Mounted::new(&emu.url, &["--cache-size", "3500000"]);
    let runs = emu.finished_runs();
    for id in &runs[..5] {
        std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    }
    let held = |m: &Mounted| -> u64 {
        kept(&m.cache)
            .iter()
            .map(|(p, _)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum()
    };
    // While running, the bound holds but for files still open.
    assert!(held(&m) <= 4_500_000, "{} bytes", held(&m));
    unmount_and_wait(&mut m);
    // The next mount evicts down to the bound, least recently used first.
    m.remount(&emu.url, &["--cache-size", "3500000"]);
    let after = held(&m);
    assert!(
        (2_000_000..=3_500_000).contains(&after),
        "{after} bytes kept under a 3.5 MB bound"
    );
    let runs_kept: Vec<String> = kept(&m.cache)
        .iter()
        .map(|(_, meta)| meta["run"].as_str().unwrap().to_owned())
        .collect();
    assert!(runs_kept.contains(&runs[4]), "{runs_kept:?}");
    assert!(!runs_kept.contains(&runs[0]), "{runs_kept:?}");
    unmount_and_wait(&mut m);
    // A smaller bound at the next mount evicts at once.
    m.remount(&emu.url, &["--cache-size", "1500000"]);
    assert!(held(&m) <= 1_500_000, "{} bytes", held(&m));
    assert_eq!(kept(&m.cache).len(), 1);
}

#[test]
fn a_cache_dir_others_can_write_is_refused() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared");
    std::fs::create_dir(&cache).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = || {
        std::process::Command::new(importfs_bin())
            .args(["mount", "--foreground"])
            .arg(&mnt)
            .args(["--api-url", &emu.url, "--cache-dir"])
            .arg(&cache)
            .env("IMPORTIO_API_KEY", KEY)
            .output()
            .unwrap()
    };
    let out = mount();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod go-w"), "{err}");
    assert!(!is_fuse_mount(&mnt));
    // Private but another user's: refused too, naming the owner.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let other = if me == 65534 { 65533 } else { 65534 };
    if std::os::unix::fs::chown(&cache, Some(other), None).is_ok() {
        let out = mount();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("belongs to user {other}")), "{err}");
        assert!(!is_fuse_mount(&mnt));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: chown must work"
        );
        eprintln!("SKIPPED the other-owner case: chown needs root");
    }
}

#[test]
fn importfs_cache_lists_and_clears_what_is_kept() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(700_000, None));
    let mut m = Mounted::new(&emu.url, &[]);
    let runs = emu.finished_runs();
    for id in &runs[..2] {
        std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
    }
    wait_kept(&m, 2);
    let dir = m.cache.clone();
    let cache = |action: &str| -> String {
        let out = std::process::Command::new(importfs_bin())
            .args(["cache", "--cache-dir"])
            .arg(&dir)
            .arg(action)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ls = cache("ls");
    for id in &runs[..2] {
        let line = ls.lines().find(|l| l.contains(id.as_str())).expect(id);
        assert!(
            line.contains("700000") && line.contains("data.csv"),
            "{line}"
        );
    }
    assert!(ls.contains("2 file(s), 1400000 bytes"), "{ls}");
    // While mounted, the files are in use: clear keeps them.
    let out = cache("clear");
    assert!(
        out.contains("2 file(s) in use by a mount were kept"),
        "{out}"
    );
    assert_eq!(kept(&m.cache).len(), 2);
    unmount_and_wait(&mut m);
    let out = cache("clear");
    assert!(out.contains("removed 2 file(s), 1400000 bytes"), "{out}");
    assert!(cache("ls").contains("0 file(s), 0 bytes"));
    assert!(kept(&m.cache).is_empty());
}

#[test]
fn a_finished_report_runs_files_are_kept_too() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let id = finished_report_run(&emu);
    let truth = emu.get_bytes(&format!("/reportruns/{id}/csv"));
    let mut m = Mounted::new(&emu.url, &[]);
    let f = format!("reportruns/{id}/data.csv");
    assert!(std::fs::read(m.path(&f)).unwrap() == truth);
    wait_kept(&m, 1);
    let (_, meta) = &kept(&m.cache)[0];
    assert_eq!(meta["kind"], "reportrun");
    assert_eq!(meta["run"], id.as_str());
    unmount_and_wait(&mut m);
    emu.clear_requests();
    m.remount(&emu.url, &[]);
    assert!(std::fs::read(m.path(&f)).unwrap() == truth);
    let calls = file_calls_of(&emu, "reportruns", &id);
    assert!(
        calls.is_empty(),
        "no GET and no HEAD of the kept file: {calls:?}"
    );
}

#[test]
fn an_unfinished_runs_files_are_not_reused_once_it_finishes_with_other_bytes() {
    if !fuse_or_skip() {
        return;
    }
    use reqwest::Method;
    let emu = Emu::demo();
    let id = finished_report_run(&emu);
    let status = |s: &str| {
        emu.hook(
            Method::POST,
            &format!("/_emulator/reportruns/{id}/status"),
            Some(serde_json::json!({ "status": s })),
        )
    };
    // A status the mount does not know: files are shown, with partial bytes.
    assert_eq!(status("PARTIAL")["status"], "PARTIAL");
    let partial = emu.get_bytes(&format!("/reportruns/{id}/csv"));
    let mut m = Mounted::new(&emu.url, &[]);
    let f = format!("reportruns/{id}/data.csv");
    assert!(std::fs::read(m.path(&f)).unwrap() == partial);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        kept(&m.cache).is_empty(),
        "a PARTIAL run's file is not kept"
    );
    unmount_and_wait(&mut m);
    // It finishes with other bytes; a remount reads those.
    status("FINISHED");
    let finished = emu.get_bytes(&format!("/reportruns/{id}/csv"));
    assert!(finished != partial, "the final bytes differ");
    m.remount(&emu.url, &[]);
    assert!(std::fs::read(m.path(&f)).unwrap() == finished);
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 0);
}

#[test]
fn a_kept_file_unchanged_since_its_check_is_served_without_reading_it_first() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(2_000_000, None));
    let mut m = Mounted::new(&emu.url, &[]);
    let id = emu.finished_runs()[0].clone();
    let truth = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    let f = format!("crawlruns/{id}/data.csv");
    assert!(std::fs::read(m.path(&f)).unwrap() == truth);
    // A few seconds after the download, the entry is stamped as checked.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kept(&m.cache)
        .iter()
        .any(|(_, meta)| meta.get("checked").is_some())
    {
        assert!(Instant::now() < deadline, "stamped: {:?}", kept(&m.cache));
        std::thread::sleep(Duration::from_millis(100));
    }
    unmount_and_wait(&mut m);
    m.remount(&emu.url, &[]);
    assert!(std::fs::read(m.path(&f)).unwrap() == truth);
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 1);
    assert_eq!(m.stat("data_cache_checksum_reads"), 0, "served unread");
    // Touched since (a write, even of the same bytes): read and checked.
    unmount_and_wait(&mut m);
    let (data, _) = kept(&m.cache).remove(0);
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes).unwrap();
    m.remount(&emu.url, &[]);
    assert!(std::fs::read(m.path(&f)).unwrap() == truth);
    assert_eq!(m.stat("data_cache_checksum_reads"), 1);
    assert_eq!(m.stat("data_cache_hits_earlier_mounts"), 1);
}

/// The `mount-*` folders under a cache directory.
fn mount_dirs(cache: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mount-"))
        .collect();
    dirs.sort();
    dirs
}

/// A process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a mount's folder is live is told by a lock it holds, not by its
/// PID: a folder named after a live process that is not a mount (a
/// `sleep`, holding no lock) is stale, and goes; a live mount's folder,
/// seen by a second mount of the same cache directory, stays.
#[test]
fn a_folder_named_after_a_live_process_that_is_not_a_mount_is_removed() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(100_000, None));
    let mut m = Mounted::new(&emu.url, &[]);
    unmount_and_wait(&mut m);
    let sleep = KillOnDrop(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep"),
    );
    let pid = sleep.0.id();
    let stale = m.cache.join(format!("mount-{pid}"));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("0.part"), vec![7u8; 1 << 20]).unwrap();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the PID the folder is named after is alive"
    );
    m.remount(&emu.url, &[]);
    assert!(m.sh_ok("ls extractors").lines().count() > 1);
    assert!(
        !stale.exists(),
        "the folder of a live non-mount PID is gone"
    );
    let own = format!("mount-{}", m.pid().unwrap());
    assert_eq!(mount_dirs(&m.cache), vec![own.clone()]);
    // A second mount of the same cache directory leaves the first one's alone.
    let m2 = Mounted::sharing_cache(&emu.url, &[], KEY, &m);
    let both = mount_dirs(&m.cache);
    assert!(
        both.contains(&own),
        "the live mount's folder stays: {both:?}"
    );
    assert_eq!(both.len(), 2, "{both:?}");
    drop(m2);
    drop(sleep);
}

/// A mount killed with SIGKILL and not yet reaped (a zombie, whose
/// `/proc/PID` still exists) holds no lock: the next mount removes its
/// folder, partial download and all.
#[test]
fn the_folder_of_a_killed_mount_not_yet_reaped_is_removed() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(scale_account(100_000, None));
    let mut m = Mounted::new(&emu.url, &[]);
    let child = m.take_child().expect("the mount process");
    let pid = child.id();
    let dead = m.cache.join(format!("mount-{pid}"));
    assert!(dead.is_dir());
    std::fs::write(dead.join("9.part"), b"partial").unwrap();
    // SIGKILL, and no wait(): the process stays a zombie while the test runs.
    let _zombie = KillOnDrop(child);
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.split(' ').nth(2) == Some("Z") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed mount is a zombie: {state}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_gone_or_detach(&m);
    m.remount(&emu.url, &[]);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "still not reaped"
    );
    assert!(!dead.exists(), "the killed mount's folder is gone");
    assert_eq!(
        mount_dirs(&m.cache),
        vec![format!("mount-{}", m.pid().unwrap())]
    );
}
