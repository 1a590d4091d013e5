//! The one helper every filesystem test stands on: an emulator in-process and
//! a real `importfs mount --foreground` child process over it, in a temp dir.
//!
//! [`Mounted`] unmounts on drop, on every path (panics included), and each
//! test gets its own temp dir and free ports, so tests can run in parallel
//! and a failed test never leaves a mount behind for the next one.
//!
//! [`core_fs::Core`] is the same account without the kernel: an `Fs` called
//! directly, for `fs_core.rs` and the model test's second target.
//! [`nfs::NfsServer`] is the account served by `importfs serve nfs`, with
//! the user-space NFS clients `nfs.rs` drives it with.
//! [`qemu::Guest`] boots a real Linux kernel in QEMU and runs a script in
//! it, for the kernel NFS client tests (`kernel_nfs.rs`).
//! [`tls::Certs`] makes a CA and server certificates at run time, for an
//! HTTPS emulator ([`Emu::start_tls`]).
#![allow(dead_code)]

pub mod core_fs;
pub mod nfs;
pub mod qemu;
pub mod tls;

use importfs::emulator::{Config, Emulator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const KEY: &str = "test-key-0123456789";

/// Is FUSE usable here? Under CI a missing FUSE fails loudly; elsewhere the
/// test is skipped with a printed reason.
pub fn fuse_or_skip() -> bool {
    let dev = Path::new("/dev/fuse").exists();
    let fm = Command::new("fusermount3")
        .arg("--version")
        .output()
        .is_ok();
    if dev && fm {
        return true;
    }
    let why = format!("FUSE unavailable (/dev/fuse: {dev}, fusermount3: {fm})");
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("{why}: CI must be able to mount");
    }
    eprintln!("SKIPPED: {why}");
    false
}

pub struct Emu {
    pub rt: tokio::runtime::Runtime,
    pub emu: Option<Emulator>,
    pub url: String,
    pub http: reqwest::Client,
    /// The key this emulator accepts ([`KEY`] unless started with another).
    pub key: String,
}

impl Emu {
    pub fn start(config: Config) -> Emu {
        Emu::start_with_key(config, KEY)
    }

    /// Like [`Emu::start`], accepting `key` instead of [`KEY`].
    pub fn start_with_key(config: Config, key: &str) -> Emu {
        Emu::build(config, key, reqwest::Client::new())
    }

    /// Like [`Emu::start`], serving HTTPS with `cert` and `key` (PEM files):
    /// `url` is `https://`, and `http` trusts the CA of `ca` (and the
    /// system's roots) only.
    pub fn start_tls(config: Config, ca: &Path, cert: &Path, key: &Path) -> Emu {
        let tls = importfs::emulator::TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        let config = Config {
            tls: Some(tls),
            ..config
        };
        Emu::build(config, KEY, trusting(ca))
    }

    fn build(config: Config, key: &str, http: reqwest::Client) -> Emu {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emu = rt
            .block_on(Emulator::start(Config {
                api_key: key.into(),
                ..config
            }))
            .expect("emulator starts");
        let url = emu.url();
        Emu {
            rt,
            emu: Some(emu),
            url,
            http,
            key: key.to_owned(),
        }
    }

    pub fn demo() -> Emu {
        Emu::start(Config::default())
    }

    pub fn get_json(&self, path: &str) -> Value {
        let url = format!(
            "{}{}{}_apikey={}",
            self.url,
            path,
            if path.contains('?') { "&" } else { "?" },
            self.key
        );
        self.rt.block_on(async {
            let r = self.http.get(&url).send().await.expect("GET");
            assert!(r.status().is_success(), "GET {path}: {}", r.status());
            r.json::<Value>().await.expect("JSON")
        })
    }

    /// The guids of the account's finished crawl runs.
    pub fn finished_runs(&self) -> Vec<String> {
        let runs = self.get_json("/crawlruns/?_perpage=1000");
        runs.as_array()
            .expect("runs")
            .iter()
            .filter(|r| r["state"] == "FINISHED")
            .map(|r| r["guid"].as_str().expect("guid").to_owned())
            .collect()
    }

    /// Bytes of a file straight from the emulator (the source of truth).
    pub fn get_bytes(&self, path: &str) -> Vec<u8> {
        let url = format!("{}{}?_apikey={}", self.url, path, self.key);
        self.rt.block_on(async {
            let r = self.http.get(&url).send().await.expect("GET");
            assert!(r.status().is_success(), "GET {path}: {}", r.status());
            r.bytes().await.expect("body").to_vec()
        })
    }

    /// `GET http://{addr}{path}` of another server (a mount's metrics
    /// endpoint) with this harness's client: (status, body).
    pub fn get_from(&self, addr: &str, path: &str) -> (u16, Vec<u8>) {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
        })
    }

    pub fn hook(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.url, path);
        self.rt.block_on(async {
            let mut req = self.http.request(method, &url);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await.expect("hook");
            assert!(r.status().is_success(), "{path}: {}", r.status());
            let text = r.text().await.unwrap_or_default();
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
    }

    /// The emulator's request log: `{"method","path","query","status",...}`.
    pub fn requests(&self) -> Vec<Value> {
        match self.hook(reqwest::Method::GET, "/_emulator/requests", None) {
            Value::Array(a) => a,
            other => panic!("request log is not an array: {other}"),
        }
    }

    pub fn clear_requests(&self) {
        self.hook(reqwest::Method::DELETE, "/_emulator/requests", None);
    }

    /// Requests whose method and path match.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r["method"] == method
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(path_prefix))
            })
            .count()
    }

    pub fn set_faults(&self, faults: Value) {
        self.hook(reqwest::Method::POST, "/_emulator/faults", Some(faults));
    }

    pub fn clear_faults(&self) {
        self.hook(reqwest::Method::DELETE, "/_emulator/faults", None);
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(e) = self.emu.take() {
            self.rt.block_on(e.shutdown());
        }
    }
}

/// A reqwest client that trusts the CA certificate in `ca` (PEM).
pub fn trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read the CA");
    let ca = reqwest::Certificate::from_pem(&pem).expect("CA certificate");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client")
}

/// A live mount of importfs over an emulator, unmounted on drop.
pub struct Mounted {
    pub dir: tempfile::TempDir,
    pub mnt: PathBuf,
    pub cache: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    key: String,
    env: Vec<(String, String)>,
}

pub fn importfs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_importfs")
}

impl Mounted {
    /// Mount `url` with extra flags, waiting until the mount answers.
    pub fn new(url: &str, extra: &[&str]) -> Mounted {
        Mounted::with_key(url, extra, KEY)
    }

    /// Like [`Mounted::new`], handing the mount `key` instead of [`KEY`].
    pub fn with_key(url: &str, extra: &[&str], key: &str) -> Mounted {
        Mounted::with_env(url, extra, key, &[])
    }

    /// Like [`Mounted::with_key`], with extra environment variables for the
    /// mount process (e.g. `RUST_LOG`); kept for [`Mounted::remount`].
    pub fn with_env(url: &str, extra: &[&str], key: &str, env: &[(&str, &str)]) -> Mounted {
        Mounted::build(url, extra, key, env, None)
    }

    /// Like [`Mounted::new`], with its cache directory at `cache`.
    pub fn with_cache(url: &str, extra: &[&str], cache: &Path) -> Mounted {
        Mounted::build(url, extra, KEY, &[], Some(cache.to_path_buf()))
    }

    /// Like [`Mounted::with_key`], with the cache directory of `other`.
    pub fn sharing_cache(url: &str, extra: &[&str], key: &str, other: &Mounted) -> Mounted {
        Mounted::build(url, extra, key, &[], Some(other.cache.clone()))
    }

    fn build(
        url: &str,
        extra: &[&str],
        key: &str,
        env: &[(&str, &str)],
        cache: Option<PathBuf>,
    ) -> Mounted {
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        let cache = cache.unwrap_or_else(|| dir.path().join("cache"));
        let log = dir.path().join("mount.log");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        let log_file = std::fs::File::create(&log).expect("log");
        let mut m = Mounted {
            dir,
            mnt,
            cache,
            log,
            child: None,
            key: key.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        m.child = Some(m.spawn(url, extra, log_file));
        m.wait_mounted();
        m
    }

    /// Mount again on the same directory, cache directory and log (appended
    /// to), once the previous process is gone (unmounted, or killed and
    /// taken with [`Mounted::take_child`]).
    pub fn remount(&mut self, url: &str, extra: &[&str]) {
        assert!(self.child.is_none(), "remount while the old mount runs");
        let log_file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("log");
        self.child = Some(self.spawn(url, extra, log_file));
        self.wait_mounted();
    }

    fn spawn(&self, url: &str, extra: &[&str], log_file: std::fs::File) -> Child {
        Command::new(importfs_bin())
            .arg("mount")
            .arg("--foreground")
            .arg(&self.mnt)
            .args(["--api-url", url])
            .args(if extra.contains(&"--metadata-ttl") {
                &[][..]
            } else {
                &["--metadata-ttl", "2s"][..]
            })
            .arg("--cache-dir")
            .arg(&self.cache)
            // Every mount of the suite logs at trace level, and is checked
            // on drop to have leaked its key nowhere (see `check_no_leak`).
            .args(["-vvv"])
            .args(extra)
            .env("IMPORTIO_API_KEY", &self.key)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn importfs")
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if is_fuse_mount(&self.mnt) {
                // The key travels in the environment, never in argv: not
                // in the mount's, nor in its helpers' (fusermount3, the
                // watcher). Other tests' processes are not this mount's.
                let shown: Vec<String> = self
                    .child
                    .as_ref()
                    .map(|c| process_tree_args(c.id()))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|args| args.contains(&self.key))
                    .map(|args| args.replace(&self.key, "<KEY>"))
                    .collect();
                assert!(shown.is_empty(), "the API key shows in ps: {shown:#?}");
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "importfs exited ({status}) before mounting:\n{}",
                        self.log_text()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "mount did not come up:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// One counter of `.importfs/stats` (a `name value` line).
    pub fn stat(&self, name: &str) -> u64 {
        let stats = std::fs::read_to_string(self.path(".importfs/stats")).expect("stats");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{stats}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run a shell command with the mount as working directory.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&self.mnt)
            .output()
            .expect("bash")
    }

    /// Like [`sh`] but asserting success, returning stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed: {}\nstderr: {}\nlog tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log_text(), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn unmount(&mut self) {
        if self.child.is_none() {
            return;
        }
        for _ in 0..50 {
            if !is_fuse_mount(&self.mnt) {
                break;
            }
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
            if !is_fuse_mount(&self.mnt) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if is_fuse_mount(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }

    /// The mount process, for signal tests.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn take_child(&mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Mounted {
    /// The API key must show in no log line and no file of the cache
    /// directory, whatever the test did. Checked for every mount of the suite.
    fn check_no_leak(&self) {
        let log = self.log_text();
        assert!(
            !log.contains(&self.key),
            "the API key appears in the mount's log:\n{}",
            log.lines()
                .filter(|l| l.contains(&self.key))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Every request the kernel sends is answered on purpose: fuser's
        // fallbacks log "[Not Implemented]" (an ioctl from isatty, a
        // setxattr from vim) and would fill a user's log.
        let unanswered: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[Not Implemented]"))
            .take(3)
            .collect();
        assert!(
            unanswered.is_empty(),
            "the mount left kernel requests to fuser's fallbacks:\n{}",
            unanswered.join("\n")
        );
        let grep = Command::new("grep")
            .args(["-r", "-l", "-F", &self.key])
            .arg(&self.cache)
            .output();
        if let Ok(out) = grep {
            assert!(
                out.stdout.is_empty(),
                "the API key is in the cache directory: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
        if is_fuse_mount(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
        if !std::thread::panicking() {
            self.check_no_leak();
        }
    }
}

pub fn is_fuse_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()) && l.contains(" - fuse"))
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned()
}

pub fn sha256_bytes(b: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b)
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A scale account of a few finished runs whose `data.csv` and `data.json`
/// are `bytes` long, each connection sent at most `conn_bytes_per_sec`.
pub fn scale_account(bytes: u64, conn_bytes_per_sec: Option<u64>) -> importfs::emulator::Config {
    importfs::emulator::Config {
        dataset: importfs::emulator::Dataset::Scale,
        extractors: 2,
        crawlruns: 8,
        result_bytes: bytes,
        conn_bytes_per_sec,
        ..importfs::emulator::Config::default()
    }
}

/// The command lines (what `ps` shows) of process `root` and all its
/// descendants, from /proc.
pub fn process_tree_args(root: u32) -> Vec<String> {
    let procs: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((
                pid,
                ppid,
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
            ))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    procs
        .into_iter()
        .filter(|p| tree.contains(&p.0))
        .map(|p| p.2)
        .collect()
}

/// The requests that change something (PUT, POST, DELETE, PATCH).
pub fn mutating(emu: &Emu) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| {
            ["PUT", "POST", "DELETE", "PATCH"].contains(&r["method"].as_str().unwrap_or(""))
        })
        .collect()
}

/// The PUTs of an extractor's inputs.
pub fn puts(emu: &Emu, guid: &str) -> usize {
    emu.count("PUT", &format!("/extractors/{guid}/inputs"))
}

/// An extractor's inputs as the API has them, one URL an item.
pub fn api_urls(emu: &Emu, guid: &str) -> Vec<String> {
    let v = emu.get_json(&format!("/extractors/{guid}/inputs"));
    v["_url"]
        .as_str()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A process whose command line names something: its pid, its command line
/// (NULs as spaces) and its environment block, as `/proc` has them.
pub struct Process {
    pub pid: u32,
    pub cmdline: String,
    pub environ: Vec<u8>,
}

/// Every process whose command line contains `what` (a background mount's
/// processes are not in the test's process tree: they run in a session of
/// their own).
pub fn processes_naming(what: &str) -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
            cmdline.contains(what).then_some(Process {
                pid,
                cmdline,
                environ,
            })
        })
        .collect()
}

/// The demo's plainly named extractors (ASCII letters, digits, space, `-`
/// and `_`, a name no other has), in the API's order.
pub fn plain_extractor_list(emu: &Emu) -> Vec<Value> {
    let ext = emu.get_json("/extractors/?_perpage=1000");
    let all = ext.as_array().unwrap().clone();
    all.iter()
        .filter(|e| {
            let name = e["name"].as_str().unwrap_or("");
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " -_".contains(c))
                && all.iter().filter(|o| o["name"] == e["name"]).count() == 1
        })
        .cloned()
        .collect()
}

/// Make the emulator cut 30% of its result-file answers short and fail
/// 10% with a 500 (the faults a ranged download must get through).
pub fn cut_and_fail_downloads(emu: &Emu) {
    emu.set_faults(serde_json::json!({
        "operation": "getCrawlrunFile",
        "truncate_rate": 0.3,
        "error_rate": 0.1
    }));
}

/// Each of `runs`' data.csv, read whole through the mount, is its truth.
pub fn assert_reads_true(m: &Mounted, runs: &[String], truths: &[Vec<u8>]) {
    for (id, truth) in runs.iter().zip(truths) {
        let got = std::fs::read(m.path(&format!("crawlruns/{id}/data.csv"))).unwrap();
        assert!(
            got == *truth,
            "run {id}: {} bytes, not the truth",
            got.len()
        );
    }
}

/// Unmounts a background mount (not our child) on drop, on every path:
/// `fusermount3 -u` for up to 5 s, then a lazy unmount.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for _ in 0..50 {
            if !is_fuse_mount(&self.0) {
                return;
            }
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.0)
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.0).status();
    }
}

/// A run's result files: the name in the mount and the API's fileType.
pub const RUN_FILES: [(&str, &str); 6] = [
    ("data.csv", "csv"),
    ("data.json", "json"),
    ("data.xlsx", "xlsx"),
    ("sample.json", "sample"),
    ("log.txt", "log"),
    ("files.zip", "files"),
];
