//! The command line as a user meets it: a background mount that reports
//! success or the key problem, an fstab-style `mount -t fuse.importfs`, the
//! config file and its precedence (never printing the key), `importfs run`
//! against the emulator, and the newcomer errors.
//!
//! Every importfs child runs with HOME pointing into a temp dir and the
//! importfs variables cleared, so nothing here reads or writes the real
//! ~/.config, ~/.cache or ~/.local/state.

mod common;

use common::*;
use importfs::emulator::Config;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An importfs command with a clean environment rooted at `home`.
fn importfs(home: &Path) -> Command {
    let mut c = Command::new(importfs_bin());
    c.env("HOME", home)
        .env_remove("IMPORTIO_API_KEY")
        .env_remove("IMPORTIO_API_URL")
        .env_remove("IMPORTFS_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn out_text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Unmounts a mount made by a background `importfs mount` (or by mount(8))
/// on every path, and waits for the daemon behind it to exit.
struct MountGuard {
    mnt: PathBuf,
}

impl MountGuard {
    fn unmount(&self) {
        for _ in 0..50 {
            if !is_fuse_mount(&self.mnt) {
                break;
            }
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
            if is_fuse_mount(&self.mnt) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if is_fuse_mount(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        self.unmount();
        wait_no_daemon(&self.mnt, Duration::from_secs(10));
    }
}

/// Pids of `importfs mount` processes serving `mnt` (found by their argv).
fn daemons(mnt: &Path) -> Vec<u32> {
    let want = mnt.to_string_lossy().into_owned();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a == "mount") && args.contains(&want)
        })
        .collect()
}

fn wait_no_daemon(mnt: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !daemons(mnt).is_empty() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A plainly named extractor whose name no other extractor shares.
fn unique_extractor(emu: &Emu) -> (String, String) {
    let all = emu.get_json("/extractors/?_perpage=1000");
    let all = all.as_array().expect("extractors");
    let names: Vec<&str> = all.iter().filter_map(|e| e["name"].as_str()).collect();
    let e = all
        .iter()
        .find(|e| {
            let n = e["name"].as_str().unwrap_or("");
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
                && names.iter().filter(|m| m.eq_ignore_ascii_case(n)).count() == 1
        })
        .expect("a uniquely, plainly named extractor");
    (
        e["name"].as_str().unwrap_or("").to_owned(),
        e["guid"].as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn background_mount_returns_once_mounted_then_status_and_unmount() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let _guard = MountGuard { mnt: mnt.clone() };
    let log = dir.path().join("mount.log");
    let out = importfs(dir.path())
        .arg("mount")
        .arg(&mnt)
        .args(["--api-url", &emu.url])
        // `importfs mount MNT -o ...` works like fstab's options.
        .arg("-o")
        .arg(format!(
            "metadata_ttl=2s,cache_dir={},nodev,nosuid",
            dir.path().join("cache").display()
        ))
        .arg("--log-file")
        .arg(&log)
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("importfs mount");
    let (stdout, stderr) = out_text(&out);
    assert!(
        out.status.success(),
        "mount failed: {stderr}\nlog:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Returned 0: the mount answers now, without waiting.
    assert!(is_fuse_mount(&mnt), "exit 0 before the mount was up");
    let user: Value =
        serde_json::from_slice(&std::fs::read(mnt.join("user.json")).expect("read user.json"))
            .expect("user.json is JSON");
    assert!(user.is_object());
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
    // The key is not in the daemon's argv.
    for pid in daemons(&mnt) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(KEY),
            "key in argv of {pid}"
        );
    }
    assert_eq!(daemons(&mnt).len(), 1, "one daemon serves the mount");
    assert!(
        dir.path().join("cache").is_dir(),
        "-o cache_dir= was not used"
    );

    let st = importfs(dir.path())
        .arg("status")
        .arg(&mnt)
        .output()
        .expect("status");
    let (stdout, stderr) = out_text(&st);
    assert!(st.status.success(), "status failed: {stderr}");
    assert!(stdout.contains("api.calls_total"), "{stdout}");

    let un = importfs(dir.path())
        .arg("unmount")
        .arg(&mnt)
        .output()
        .expect("unmount");
    assert!(un.status.success(), "unmount failed: {}", out_text(&un).1);
    assert!(!is_fuse_mount(&mnt));
    assert!(
        wait_no_daemon(&mnt, Duration::from_secs(10)),
        "the daemon outlived its mount"
    );

    // Neither works on what is no longer mounted.
    let st = importfs(dir.path())
        .arg("status")
        .arg(&mnt)
        .output()
        .expect("status");
    assert!(!st.status.success());
    assert!(
        out_text(&st).1.contains("not mounted"),
        "{}",
        out_text(&st).1
    );
    let un = importfs(dir.path())
        .arg("unmount")
        .arg(&mnt)
        .output()
        .expect("unmount");
    assert!(!un.status.success());
    assert!(
        out_text(&un).1.contains("not mounted"),
        "{}",
        out_text(&un).1
    );
}

#[test]
fn background_mount_with_a_wrong_key_fails_and_leaves_no_mount() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let _guard = MountGuard { mnt: mnt.clone() };
    let wrong = "wrong-key-5e1d9a7c0b";
    let started = Instant::now();
    let out = importfs(dir.path())
        .arg("mount")
        .arg(&mnt)
        .args(["--api-url", &emu.url])
        .arg("--log-file")
        .arg(dir.path().join("mount.log"))
        .env("IMPORTIO_API_KEY", wrong)
        .output()
        .expect("importfs mount");
    let (stdout, stderr) = out_text(&out);
    assert!(!out.status.success(), "a wrong key mounted: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        stderr.contains("API key") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "the key was printed"
    );
    assert!(!is_fuse_mount(&mnt), "a failed mount was left behind");
    assert!(
        wait_no_daemon(&mnt, Duration::from_secs(5)),
        "a failed mount left a process"
    );
    let log = std::fs::read_to_string(dir.path().join("mount.log")).unwrap_or_default();
    assert!(!log.contains(wrong), "the key is in the log");
}

/// Puts the test binary where mount.fuse3's `/bin/sh -c importfs ...` finds
/// it: mount(8) strips PATH from a helper's environment, so the shell's
/// default PATH (which has /usr/local/bin) is what counts. Removed on drop.
struct HelperOnPath {
    link: PathBuf,
    /// Tests that need the link take turns: one's drop removes it.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static HELPER_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl HelperOnPath {
    fn install() -> Option<HelperOnPath> {
        let turn = HELPER_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let link = PathBuf::from("/usr/local/bin/importfs");
        let ours = PathBuf::from(importfs_bin());
        match std::fs::read_link(&link) {
            Ok(target) if target == ours => {}
            // A link into some cargo target dir: a leftover of an earlier run.
            Ok(target) if target.to_string_lossy().contains("/target/") => {
                let _ = std::fs::remove_file(&link);
                if let Err(e) = std::os::unix::fs::symlink(&ours, &link) {
                    eprintln!("SKIPPED: cannot link {}: {e}", link.display());
                    return None;
                }
            }
            _ if link.symlink_metadata().is_ok() => {
                eprintln!("SKIPPED: {} exists and is not a test build", link.display());
                return None;
            }
            _ => {
                if let Err(e) = std::os::unix::fs::symlink(&ours, &link) {
                    eprintln!("SKIPPED: cannot link {}: {e}", link.display());
                    return None;
                }
            }
        }
        Some(HelperOnPath { link, _turn: turn })
    }
}

impl Drop for HelperOnPath {
    fn drop(&mut self) {
        if std::fs::read_link(&self.link).is_ok_and(|t| t == Path::new(importfs_bin())) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

#[test]
fn fstab_style_mount_through_the_fuse_mount_helper() {
    if !fuse_or_skip() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let helper = [
        "/sbin/mount.fuse3",
        "/usr/sbin/mount.fuse3",
        "/sbin/mount.fuse",
        "/usr/sbin/mount.fuse",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !root || !helper {
        let why = format!(
            "mount -t fuse.importfs needs root and mount.fuse3 (root: {root}, helper: {helper})"
        );
        assert!(std::env::var("CI").is_err(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    let Some(_on_path) = HelperOnPath::install() else {
        return;
    };
    let emu = Emu::demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let _guard = MountGuard { mnt: mnt.clone() };
    let key_file = dir.path().join("importfs.key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("key file");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "metadata_ttl = \"2s\"\ncache_size = \"64M\"\n").expect("config");
    // What an /etc/fstab line holds, generic options included.
    let options = format!(
        "api_key_file={},api_url={},config={},cache_dir={},log_file={},ro,allow_other,nofail,_netdev,noauto,x-systemd.requires=network-online.target",
        key_file.display(),
        emu.url,
        config.display(),
        dir.path().join("cache").display(),
        dir.path().join("mount.log").display(),
    );
    let out = Command::new("mount")
        .args(["-t", "fuse.importfs", "none"])
        .arg(&mnt)
        .args(["-o", &options])
        .env_remove("IMPORTIO_API_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("mount(8)");
    let (_, stderr) = out_text(&out);
    assert!(
        out.status.success(),
        "mount -t fuse.importfs failed: {stderr}\nlog:\n{}",
        std::fs::read_to_string(dir.path().join("mount.log")).unwrap_or_default()
    );
    assert!(is_fuse_mount(&mnt));
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.to_string_lossy().as_ref()))
        .expect("mountinfo line");
    assert!(line.contains("fuse.importfs"), "{line}");
    assert!(line.contains("allow_other"), "{line}");
    let text = std::fs::read_to_string(mnt.join("user.json")).expect("read user.json");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("JSON")["guid"],
        emu.get_json("/users/current")["guid"]
    );
    // `ro` reached the mount.
    let err =
        std::fs::write(mnt.join("scratch"), b"x").expect_err("a read-only mount took a write");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    let un = Command::new("umount").arg(&mnt).output().expect("umount");
    assert!(un.status.success(), "umount: {}", out_text(&un).1);
    assert!(!is_fuse_mount(&mnt));
}

/// `importfs config` as `key -> (value, source)`.
fn config_map(stdout: &str) -> HashMap<String, (String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(" = ")?;
            let (v, src) = rest.split_once("  # ")?;
            Some((k.to_owned(), (v.to_owned(), src.to_owned())))
        })
        .collect()
}

#[test]
fn config_precedence_and_the_key_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_key = "FILEKEY-distinctive-7f3a91";
    let env_key = "ENVKEY-distinctive-9c1b42";
    let flag_key = "FLAGKEY-distinctive-2d8e63";
    std::fs::write(dir.path().join("keyfile"), file_key).expect("key");
    std::fs::write(dir.path().join("flagkey"), flag_key).expect("key");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "api_url = \"http://file.example\"\napi_key_file = \"keyfile\"\nmetadata_ttl = \"1m\"\nread_only = true\ncache_size = 1048576\n",
    )
    .expect("config");

    let run = |args: &[&str], env: &[(&str, &str)]| -> HashMap<String, (String, String)> {
        let mut c = importfs(dir.path());
        c.arg("config").args(args).env("IMPORTFS_CONFIG", &cfg);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("importfs config");
        let (stdout, stderr) = out_text(&out);
        assert!(out.status.success(), "config failed: {stderr}");
        for key in [file_key, env_key, flag_key] {
            assert!(
                !stdout.contains(key) && !stderr.contains(key),
                "a key was printed:\n{stdout}{stderr}"
            );
        }
        config_map(&stdout)
    };

    // The file beats the defaults.
    let m = run(&[], &[]);
    assert_eq!(m["api_url"].0, "\"http://file.example\"");
    assert!(
        m["api_url"].1.starts_with("config file"),
        "{:?}",
        m["api_url"]
    );
    assert_eq!(m["metadata_ttl"].0, "\"1m\"");
    assert_eq!(
        m["read_only"],
        ("true".into(), format!("config file {}", cfg.display()))
    );
    assert_eq!(m["cache_size"].0, "\"1M\"");
    assert_eq!(m["allow_other"], ("false".into(), "default".into()));
    assert_eq!(m["api_key"].0, "<redacted>");
    assert!(m["api_key"].1.contains("keyfile"), "{:?}", m["api_key"]);

    // The environment beats the file, for the URL and for the key.
    let m = run(
        &[],
        &[
            ("IMPORTIO_API_URL", "http://env.example"),
            ("IMPORTIO_API_KEY", env_key),
        ],
    );
    assert_eq!(
        m["api_url"],
        (
            "\"http://env.example\"".into(),
            "environment IMPORTIO_API_URL".into()
        )
    );
    assert_eq!(
        m["api_key"],
        ("<redacted>".into(), "environment IMPORTIO_API_KEY".into())
    );
    assert!(
        m["api_key_file"].1.contains("not used"),
        "{:?}",
        m["api_key_file"]
    );

    // -o beats the environment; a long flag beats -o.
    let env = [
        ("IMPORTIO_API_URL", "http://env.example"),
        ("IMPORTIO_API_KEY", env_key),
    ];
    let m = run(
        &["-o", "api_url=http://opt.example,metadata_ttl=3s,ro=false"],
        &env,
    );
    assert_eq!(
        m["api_url"],
        ("\"http://opt.example\"".into(), "option -o api_url".into())
    );
    assert_eq!(m["metadata_ttl"].0, "\"3s\"");
    assert_eq!(m["read_only"].0, "false");
    let m = run(
        &[
            "-o",
            "api_url=http://opt.example",
            "--api-url",
            "http://flag.example",
        ],
        &env,
    );
    assert_eq!(
        m["api_url"],
        ("\"http://flag.example\"".into(), "flag --api-url".into())
    );

    // An explicit key file beats IMPORTIO_API_KEY.
    let flagkey = dir.path().join("flagkey");
    let m = run(&["--api-key-file", flagkey.to_str().expect("utf-8")], &env);
    assert_eq!(m["api_key"].0, "<redacted>");
    assert!(
        m["api_key"].1.contains("flag --api-key-file"),
        "{:?}",
        m["api_key"]
    );

    // No key anywhere: "not set", and no file at all: defaults.
    let out = importfs(dir.path()).arg("config").output().expect("config");
    let m = config_map(&out_text(&out).0);
    assert_eq!(m["api_key"].0, "not set");
    assert_eq!(
        m["api_url"],
        ("\"https://api.import.io\"".into(), "default".into())
    );
    assert!(
        m["config_file"].1.contains("not found"),
        "{:?}",
        m["config_file"]
    );

    // $XDG_CONFIG_HOME/importfs/config.toml is the default file.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("importfs")).expect("mkdir");
    std::fs::write(
        xdg.join("importfs/config.toml"),
        "api_url = \"http://xdg.example\"\n",
    )
    .expect("config");
    let out = importfs(dir.path())
        .arg("config")
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .expect("config");
    assert_eq!(
        config_map(&out_text(&out).0)["api_url"].0,
        "\"http://xdg.example\""
    );

    // An unknown key is an error naming it.
    std::fs::write(
        &cfg,
        "api_url = \"http://file.example\"\nmetadata_tll = \"5s\"\n",
    )
    .expect("config");
    let out = importfs(dir.path())
        .arg("config")
        .env("IMPORTFS_CONFIG", &cfg)
        .output()
        .expect("config");
    assert!(!out.status.success());
    assert!(
        out_text(&out).1.contains("unknown key `metadata_tll`"),
        "{}",
        out_text(&out).1
    );
}

#[test]
fn run_wait_download_writes_the_runs_data() {
    let emu = Emu::start(Config {
        run_seconds: 1.0,
        ..Config::default()
    });
    let (name, guid) = unique_extractor(&emu);
    let dir = tempfile::tempdir().expect("tempdir");
    for (who, format) in [(name.as_str(), "csv"), (guid.as_str(), "json")] {
        let file = dir.path().join(format!("out.{format}"));
        let out = importfs(dir.path())
            .args(["run", who, "--wait", "--download", format, "-o"])
            .arg(&file)
            .args(["--api-url", &emu.url, "--poll-interval", "200ms"])
            .env("IMPORTIO_API_KEY", KEY)
            .output()
            .expect("importfs run");
        let (stdout, stderr) = out_text(&out);
        assert!(out.status.success(), "run {who} failed: {stderr}");
        let run_id = stdout.lines().next().expect("the run id").trim().to_owned();
        let run = emu.get_json(&format!("/crawlruns/{run_id}"));
        assert_eq!(run["state"], "FINISHED");
        assert_eq!(run["extractorId"], guid.as_str());
        // Plain progress lines, as stderr is not a terminal.
        assert!(stderr.contains("FINISHED"), "{stderr}");
        let want = emu.get_bytes(&format!("/crawlruns/{run_id}/{format}"));
        let got = std::fs::read(&file).expect("downloaded file");
        assert!(!want.is_empty());
        assert_eq!(
            sha256_bytes(&got),
            sha256_bytes(&want),
            "{format} differs from the emulator's"
        );
        assert!(!dir.path().join(format!("out.{format}.part")).exists());
        assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
    }

    // `-o -`: the data, and only the data, on standard output; the run id
    // on standard error; nothing left in the working directory.
    let out = importfs(dir.path())
        .args(["run", &name, "--download", "csv", "-o", "-"])
        .args(["--api-url", &emu.url, "--poll-interval", "200ms"])
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("importfs run -o -");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run -o - failed: {stderr}");
    let run_id = stderr.lines().next().expect("the run id").trim().to_owned();
    let want = emu.get_bytes(&format!("/crawlruns/{run_id}/csv"));
    assert!(!want.is_empty());
    assert_eq!(
        sha256_bytes(&out.stdout),
        sha256_bytes(&want),
        "stdout is the csv"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("out."))
        .collect();
    assert!(left.is_empty(), "left in the working directory: {left:?}");
}

#[test]
fn run_wait_waits_out_a_service_that_knows_the_new_run_late() {
    // The legacy dialect: the run a start answers with is 404 for a second.
    let emu = Emu::start(Config {
        dialect: importfs::emulator::Dialect::Legacy,
        run_seconds: 1.0,
        ..Config::default()
    });
    let (name, guid) = unique_extractor(&emu);
    let dir = tempfile::tempdir().expect("tempdir");
    emu.clear_requests();
    let out = importfs(dir.path())
        .args(["run", &name, "--wait"])
        .args(["--api-url", &emu.url, "--poll-interval", "200ms"])
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("importfs run");
    let (stdout, stderr) = out_text(&out);
    assert!(out.status.success(), "run --wait failed: {stderr}");
    let run_id = stdout.lines().next().expect("the run id").trim().to_owned();
    assert!(stderr.contains("FINISHED"), "{stderr}");
    let statuses: Vec<u64> = emu
        .requests()
        .iter()
        .filter(|r| r["operation"] == "getCrawlrun")
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    let first_ok = statuses.iter().position(|s| *s == 200);
    assert!(
        first_ok.is_some_and(|i| i > 0 && statuses[..i].iter().all(|s| *s == 404)),
        "404 while unknown, then known: {statuses:?}"
    );
    let run = emu.get_json(&format!("/crawlruns/{run_id}"));
    assert_eq!(run["state"], "FINISHED");
    assert_eq!(run["extractorId"], guid.as_str());
}

/// Kills a child on drop, so a failed assertion leaves no process behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_exits_nonzero_when_the_run_fails_or_is_already_running() {
    let emu = Emu::start(Config {
        run_seconds: 60.0,
        ..Config::default()
    });
    let (name, _) = unique_extractor(&emu);
    let dir = tempfile::tempdir().expect("tempdir");
    let child = importfs(dir.path())
        .args([
            "run",
            &name,
            "--wait",
            "--api-url",
            &emu.url,
            "--poll-interval",
            "200ms",
        ])
        .env("IMPORTIO_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("importfs run");
    let mut child = ChildGuard(child);
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read the run id");
    let run_id = first.trim().to_owned();
    assert!(!run_id.is_empty(), "no run id printed");

    // A second start while this run goes on is refused, clearly.
    let again = importfs(dir.path())
        .args(["run", &name, "--api-url", &emu.url])
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("importfs run");
    assert!(!again.status.success(), "a second start was accepted");
    assert!(
        out_text(&again).1.contains("running already"),
        "{}",
        out_text(&again).1
    );

    emu.hook(
        reqwest::Method::POST,
        &format!("/_emulator/crawlruns/{run_id}/fail"),
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "run --wait did not notice the failure"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success(), "a FAILED run exited 0");
    assert!(
        stderr.contains("FAILED") && stderr.contains(&run_id),
        "{stderr}"
    );
}

#[test]
fn newcomer_errors_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    // No key anywhere.
    let out = importfs(dir.path())
        .arg("mount")
        .arg(&mnt)
        .output()
        .expect("mount");
    assert!(!out.status.success());
    let (_, stderr) = out_text(&out);
    assert!(
        stderr.contains("IMPORTIO_API_KEY") && stderr.contains("--api-key-file"),
        "{stderr}"
    );
    let out = importfs(dir.path())
        .args(["run", "x"])
        .output()
        .expect("run");
    assert!(
        out_text(&out).1.contains("IMPORTIO_API_KEY"),
        "{}",
        out_text(&out).1
    );
    // A typo in an option.
    let out = importfs(dir.path())
        .arg("mount")
        .arg(&mnt)
        .args(["-o", "api_url=http://x,readonly"])
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("mount");
    assert!(
        out_text(&out).1.contains("unknown mount option `readonly`"),
        "{}",
        out_text(&out).1
    );
    // Not a mount.
    let out = importfs(dir.path())
        .arg("status")
        .arg(dir.path())
        .output()
        .expect("status");
    assert!(
        out_text(&out).1.contains("not mounted"),
        "{}",
        out_text(&out).1
    );
    if !fuse_or_skip() {
        return;
    }
    // The mountpoint is missing, then not empty.
    let out = importfs(dir.path())
        .arg("mount")
        .arg(&mnt)
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("mount");
    assert!(
        out_text(&out).1.contains("mkdir -p"),
        "{}",
        out_text(&out).1
    );
    std::fs::create_dir(&mnt).expect("mkdir");
    std::fs::write(mnt.join("file"), b"x").expect("file");
    let out = importfs(dir.path())
        .arg("mount")
        .arg(&mnt)
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .expect("mount");
    assert!(
        out_text(&out).1.contains("not empty"),
        "{}",
        out_text(&out).1
    );
    assert!(!is_fuse_mount(&mnt));
}

#[test]
fn completions_and_man_page_come_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish"] {
        let out = importfs(dir.path())
            .args(["completions", shell])
            .output()
            .expect("completions");
        assert!(out.status.success(), "{shell}: {}", out_text(&out).1);
        let text = out_text(&out).0;
        assert!(
            text.contains("importfs") && text.contains("api-key-file"),
            "{shell}"
        );
    }
    let out = importfs(dir.path())
        .arg("manpage")
        .output()
        .expect("manpage");
    assert!(out.status.success());
    assert!(
        out_text(&out).0.contains(".TH importfs"),
        "{}",
        out_text(&out).0
    );
    let man = dir.path().join("man");
    let out = importfs(dir.path())
        .arg("manpage")
        .arg("--dir")
        .arg(&man)
        .output()
        .expect("manpage");
    assert!(out.status.success(), "{}", out_text(&out).1);
    assert!(man.join("importfs.1").exists() && man.join("importfs-mount.1").exists());
}

/// scripts/importfs@.service: systemd accepts it (no unknown key, no bad
/// value), and its ExecStart is a command line importfs accepts.
#[test]
fn the_systemd_unit_verifies_and_its_command_parses() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/importfs@.service"),
    )
    .expect("the unit");
    let bin = env!("CARGO_BIN_EXE_importfs");
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        // An instance for the temp mountpoint, with the binary just built.
        let escaped = Command::new("systemd-escape")
            .arg("--path")
            .arg(&mnt)
            .output()
            .expect("systemd-escape");
        let instance = String::from_utf8_lossy(&escaped.stdout).trim().to_owned();
        let file = dir.path().join(format!("importfs@{instance}.service"));
        std::fs::write(&file, unit.replace("/usr/local/bin/importfs", bin)).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&file)
            .output()
            .expect("systemd-analyze verify");
        let (stdout, stderr) = out_text(&out);
        assert!(
            out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
            "systemd-analyze verify: {stdout}{stderr}"
        );
    } else {
        eprintln!("systemd-analyze is not installed: the unit's syntax is not checked");
    }

    // ExecStart, with %f and %i filled in and no key: importfs must get past
    // its argument parsing and stop at the missing key.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace("%f", &mnt.to_string_lossy())
                .replace("%i", "instance")
        })
        .collect();
    let out = importfs(dir.path())
        .args(&args)
        .env_remove("IMPORTIO_API_KEY")
        .output()
        .expect("importfs");
    let (_, stderr) = out_text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("IMPORTIO_API_KEY") && !stderr.contains("Usage:"),
        "ExecStart {args:?}: {stderr}"
    );
}

#[test]
fn a_key_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "KEY-distinctive-5e0c17\n").expect("key");
    let config = |mode: u32| {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = importfs(dir.path())
            .arg("config")
            .arg("--api-key-file")
            .arg(&key)
            .output()
            .expect("importfs config");
        assert!(out.status.success());
        let (stdout, stderr) = out_text(&out);
        assert!(!stdout.contains("distinctive") && !stderr.contains("distinctive"));
        stderr
    };
    let stderr = config(0o644);
    assert!(
        stderr.contains("can be read by others (mode 644)") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let stderr = config(0o600);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn run_with_a_refused_key_says_so_once() {
    let emu = Emu::demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = importfs(dir.path())
        .args(["run", "anything", "--api-url", &emu.url])
        .env("IMPORTIO_API_KEY", "wrong-key-3c9e1f")
        .output()
        .expect("importfs run");
    let (stdout, stderr) = out_text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one message: {stderr}");
    assert!(
        lines[0].contains("API key was refused") && lines[0].contains("IMPORTIO_API_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-key-3c9e1f"));
}

/// A test's turn at /dev/fuse's mode: the tests that change it take turns,
/// and the mode found is put back when the turn ends, however it ends.
struct DevFuseTurn {
    mode: u32,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static DEV_FUSE_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl DevFuseTurn {
    fn take() -> DevFuseTurn {
        use std::os::unix::fs::PermissionsExt;
        let turn = DEV_FUSE_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let mode = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o777;
        DevFuseTurn { mode, _turn: turn }
    }

    /// Usable by users, as distributions have it (see
    /// `a_user_who_is_not_root_mounts_reads_and_unmounts` for why).
    fn open_to_users(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    }
}

impl Drop for DevFuseTurn {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.mode));
    }
}

/// A temp dir others can enter, with `home` and `mnt` owned by nobody.
fn nobody_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    let mnt = dir.path().join("mnt");
    for d in [&home, &mnt] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
    }
    (dir, home, mnt)
}

/// Needs root and setpriv (to act as `nobody`); skipped otherwise.
fn can_act_as_nobody() -> bool {
    // SAFETY: geteuid has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0
        && Command::new("setpriv").arg("--version").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: needs root and setpriv to act as another user");
    }
    ok
}

/// Run a command as `nobody`, with `home` as its home.
fn as_nobody(home: &Path, program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .env("HOME", home)
        .env_remove("IMPORTIO_API_KEY")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// Most users are not root: no passthrough, no read-ahead tuning, the mount
/// made through fusermount3. A user mounts in the background, reads with
/// ordinary tools, and unmounts; and where /dev/fuse is root-only (some
/// containers), the error says what to do.
#[test]
fn a_user_who_is_not_root_mounts_reads_and_unmounts() {
    if !fuse_or_skip() || !can_act_as_nobody() {
        return;
    }
    let emu = Emu::demo();
    let (dir, home, mnt) = nobody_dirs();
    let bin = dir.path().join("importfs");
    std::fs::copy(env!("CARGO_BIN_EXE_importfs"), &bin).expect("copy the binary");
    let bin = bin.to_str().unwrap();
    let mount = || {
        as_nobody(&home, bin)
            .arg("mount")
            .arg(&mnt)
            .args(["--api-url", &emu.url])
            .env("IMPORTIO_API_KEY", KEY)
            .output()
            .expect("importfs mount as nobody")
    };

    let dev = DevFuseTurn::take();
    if dev.mode & 0o006 != 0o006 {
        let out = mount();
        let (_, stderr) = out_text(&out);
        assert!(!out.status.success(), "mounted without /dev/fuse access");
        assert!(
            stderr.contains("/dev/fuse cannot be opened by you") && stderr.contains("chmod 666"),
            "{stderr}"
        );
        assert!(!is_fuse_mount(&mnt));
        // As distributions have it, for the rest of the test.
        dev.open_to_users();
    }

    // A mountpoint the user cannot write to: fusermount3 would refuse it.
    let theirs = dir.path().join("root-owned");
    std::fs::create_dir(&theirs).unwrap();
    let out = as_nobody(&home, bin)
        .arg("mount")
        .arg(&theirs)
        .args(["--api-url", &emu.url])
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .unwrap();
    let (_, stderr) = out_text(&out);
    assert!(!out.status.success() && !is_fuse_mount(&theirs));
    assert!(
        stderr.contains("you cannot write to the mountpoint") && stderr.contains("mkdir -p"),
        "{stderr}"
    );

    let out = mount();
    let _guard = MountGuard { mnt: mnt.clone() };
    let (_, stderr) = out_text(&out);
    assert!(out.status.success(), "mount as nobody: {stderr}");
    assert!(is_fuse_mount(&mnt));

    // Reads, as nobody: every byte right, twice (the second from the cache).
    let run = emu.finished_runs()[0].clone();
    let want = sha256_bytes(&emu.get_bytes(&format!("/crawlruns/{run}/csv")));
    let file = mnt.join(format!("crawlruns/{run}/data.csv"));
    for pass in ["cold", "warm"] {
        let out = as_nobody(&home, "sha256sum").arg(&file).output().unwrap();
        let (stdout, stderr) = out_text(&out);
        assert!(out.status.success(), "{pass} read: {stderr}");
        assert_eq!(stdout.split(' ').next().unwrap(), want, "{pass} read");
    }
    let out = as_nobody(&home, "ls")
        .arg(mnt.join("crawlruns"))
        .output()
        .unwrap();
    let all = emu.get_json("/crawlruns/?_perpage=1000");
    assert_eq!(
        out_text(&out).0.lines().count(),
        all.as_array().unwrap().len(),
        "ls crawlruns"
    );

    // Unmounted by its owner, with importfs unmount.
    let out = as_nobody(&home, bin)
        .arg("unmount")
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "unmount: {}", out_text(&out).1);
    assert!(!is_fuse_mount(&mnt));
    wait_no_daemon(&mnt, Duration::from_secs(10));

    // Killed: without user_allow_other fusermount3 cannot auto-unmount for
    // a user, so importfs's own watcher must, and the path must not be left
    // answering "Transport endpoint is not connected".
    let out = mount();
    assert!(out.status.success(), "mount again: {}", out_text(&out).1);
    let pids = daemons(&mnt);
    assert_eq!(pids.len(), 1, "one daemon: {pids:?}");
    let _ = Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status();
    let t = Instant::now();
    while is_fuse_mount(&mnt) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!is_fuse_mount(&mnt), "still mounted 10 s after SIGKILL");
    let out = as_nobody(&home, "ls").arg(&mnt).output().unwrap();
    assert!(
        out.status.success(),
        "ls after the crash: {}",
        out_text(&out).1
    );
    let watchers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains("__watch-mount"))
            .count()
    };
    let t = Instant::now();
    while watchers() > 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(watchers(), 0, "the watcher outlived its work");

    let log = std::fs::read_to_string(home.join(".local/state/importfs/importfs.log"))
        .expect("the background mount's log");
    assert!(!log.contains(KEY), "the key is in the log");
    assert!(
        !log.contains("ERROR") && !log.contains("[Not Implemented]"),
        "{}",
        tail(&log, 20)
    );
}

/// Puts /etc/fstab back as it was when dropped.
struct FstabGuard(String);

impl Drop for FstabGuard {
    fn drop(&mut self) {
        let _ = std::fs::write("/etc/fstab", &self.0);
    }
}

/// An /etc/fstab line with `user,noauto` lets a user `mount MOUNTPOINT` and
/// `umount MOUNTPOINT`: mount(8), mount.fuse3 and importfs's helper form, all
/// as that user. It edits /etc/fstab (put back on drop), so it runs under
/// CI only.
#[test]
fn an_fstab_user_line_lets_a_user_mount_and_unmount() {
    use std::os::unix::fs::PermissionsExt;
    if !fuse_or_skip() || !can_act_as_nobody() {
        return;
    }
    if std::env::var("CI").is_err() {
        eprintln!("SKIPPED: edits /etc/fstab, so only under CI=true");
        return;
    }
    let Some(_on_path) = HelperOnPath::install() else {
        panic!("cannot put importfs on PATH for mount.fuse3");
    };
    let dev = DevFuseTurn::take();
    dev.open_to_users();
    let emu = Emu::demo();
    let (dir, home, mnt) = nobody_dirs();
    let key = home.join("key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::read_to_string("/etc/fstab").unwrap_or_default();
    let _fstab = FstabGuard(before.clone());
    let line = format!(
        "none {} fuse.importfs noauto,user,api_key_file={},api_url={},cache_dir={},log_file={} 0 0\n",
        mnt.display(),
        key.display(),
        emu.url,
        home.join("cache").display(),
        home.join("mount.log").display(),
    );
    let sep = if before.is_empty() || before.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    std::fs::write("/etc/fstab", format!("{before}{sep}{line}")).unwrap();
    let _guard = MountGuard { mnt: mnt.clone() };

    let out = as_nobody(&home, "mount").arg(&mnt).output().expect("mount");
    let log = || std::fs::read_to_string(home.join("mount.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "mount as a user: {}\nlog:\n{}",
        out_text(&out).1,
        log()
    );
    assert!(is_fuse_mount(&mnt));
    let out = as_nobody(&home, "cat")
        .arg(mnt.join("user.json"))
        .output()
        .unwrap();
    let user: Value = serde_json::from_slice(&out.stdout).expect("user.json is JSON");
    assert_eq!(user["guid"], emu.get_json("/users/current")["guid"]);

    let out = as_nobody(&home, "umount")
        .arg(&mnt)
        .output()
        .expect("umount");
    assert!(
        out.status.success(),
        "umount as a user: {}",
        out_text(&out).1
    );
    assert!(!is_fuse_mount(&mnt));
    assert!(wait_no_daemon(&mnt, Duration::from_secs(10)));
    assert!(!log().contains(KEY), "the key is in the log");
    drop(dir);
}
