//! The emulator over HTTPS, as real clients meet it: the curl binary and
//! reqwest, trusting the test CA or not; certificates that are expired or
//! for another name; plain HTTP sent to the TLS port; a client that never
//! finishes its handshake; the legacy dialect's redirect to the files
//! listener; and `importfs emulator --tls-cert --tls-key` as a process.
//! No FUSE is needed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tls::{Certs, Pair};
use common::{Emu, KEY};
use importfs::emulator::{Config, Dialect};
use serde_json::Value;

/// curl with no `.curlrc`, no proxy and no CA bundle from the environment.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "20"])
        .args(args)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run curl")
}

/// curl trusting `ca`, asserting success; the body.
fn curl_ok(ca: &Path, url: &str, extra: &[&str]) -> Vec<u8> {
    let ca = ca.to_str().expect("utf-8 path");
    let out = curl(&[&["--fail", "--cacert", ca], extra, &[url]].concat());
    assert!(
        out.status.success(),
        "curl {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn user_url(base: &str) -> String {
    format!("{base}/users/current?_apikey={KEY}")
}

/// The current user, through curl trusting `ca`.
fn curl_user(ca: &Path, base: &str) -> Value {
    let body = curl_ok(ca, &user_url(base), &[]);
    let user: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(user.is_object(), "{user}");
    user
}

fn tls_emu(certs: &Certs, pair: &Pair, c: Config) -> Emu {
    Emu::start_tls(c, &certs.ca, &pair.0, &pair.1)
}

fn port(url: &str) -> &str {
    url.rsplit(':').next().expect("port")
}

/// An error and all its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

#[test]
fn https_answers_curl_and_reqwest_trusting_the_ca() {
    let certs = Certs::new();
    let emu = tls_emu(&certs, &certs.good, Config::default());
    assert!(emu.url.starts_with("https://127.0.0.1:"), "{}", emu.url);
    let by_curl = curl_user(&certs.ca, &emu.url);
    // The DNS name of the certificate works too.
    let p = port(&emu.url);
    let resolve = format!("localhost:{p}:127.0.0.1");
    let body = curl_ok(
        &certs.ca,
        &user_url(&format!("https://localhost:{p}")),
        &["--resolve", &resolve],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON"),
        by_curl
    );
    // reqwest, with the harness's client (which trusts the CA).
    assert_eq!(emu.get_json("/users/current"), by_curl);
    // HTTP/1.1 is what ALPN settles on.
    let out = curl(&[
        "--cacert",
        certs.ca.to_str().expect("utf-8"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &user_url(&emu.url),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1");
    // The request log names the requests, whatever the transport.
    assert!(emu.count("GET", "/users/current") >= 3);
    // Without TLS files, the harness is plain HTTP as ever.
    let plain = Emu::demo();
    assert!(plain.url.starts_with("http://"), "{}", plain.url);
    assert_eq!(plain.get_json("/users/current"), by_curl);
}

#[test]
fn plain_http_to_the_tls_port_fails_and_serving_goes_on() {
    let certs = Certs::new();
    let emu = tls_emu(&certs, &certs.good, Config::default());
    let plain = emu.url.replacen("https://", "http://", 1);
    for _ in 0..3 {
        let out = curl(&[&user_url(&plain)]);
        assert!(
            !out.status.success(),
            "plain HTTP was answered: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let by_reqwest = emu
        .rt
        .block_on(reqwest::Client::new().get(user_url(&plain)).send());
    assert!(by_reqwest.is_err(), "{by_reqwest:?}");
    // The files listener speaks TLS only too.
    let files = emu.emu.as_ref().expect("emulator").files_url();
    assert!(files.starts_with("https://"), "{files}");
    let out = curl(&[&files.replacen("https://", "http://", 1)]);
    assert!(!out.status.success());
    curl_user(&certs.ca, &emu.url);
    emu.get_json("/users/current");
}

#[test]
fn curl_without_the_ca_refuses_the_certificate() {
    let certs = Certs::new();
    let emu = tls_emu(&certs, &certs.good, Config::default());
    let out = curl(&[&user_url(&emu.url)]);
    let err = String::from_utf8_lossy(&out.stderr);
    // 60: "Peer certificate cannot be authenticated with known CA certificates".
    assert_eq!(out.status.code(), Some(60), "{err}");
    assert!(err.contains("certificate"), "{err}");
    // A client that refused the certificate did not stop the listener.
    curl_user(&certs.ca, &emu.url);
}

#[test]
fn expired_and_wrong_name_certificates_are_refused_by_clients_trusting_the_ca() {
    let certs = Certs::new();
    let cases = [
        (&certs.expired, "expired"),
        (&certs.wrong_name, "subject name"),
    ];
    for (pair, why) in cases {
        let emu = tls_emu(&certs, pair, Config::default());
        let ca = certs.ca.to_str().expect("utf-8");
        let out = curl(&["--cacert", ca, &user_url(&emu.url)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(60), "{why}: {err}");
        assert!(err.contains(why), "{why}: {err}");
        let r = emu
            .rt
            .block_on(emu.http.get(user_url(&emu.url)).send())
            .expect_err("reqwest refuses the certificate");
        let e = chain(&r).to_lowercase();
        let expected = if why == "expired" {
            "expired"
        } else {
            "not valid for name"
        };
        assert!(e.contains(expected), "{why}: {e}");
    }
}

#[test]
fn a_client_that_never_finishes_its_handshake_holds_up_no_other() {
    let certs = Certs::new();
    let emu = tls_emu(&certs, &certs.good, Config::default());
    let addr = emu.emu.as_ref().expect("emulator").addr();
    let silent: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    let t = Instant::now();
    curl_user(&certs.ca, &emu.url);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    drop(silent);
}

#[test]
fn legacy_downloads_redirect_to_the_https_files_listener() {
    let certs = Certs::new();
    let legacy = tls_emu(
        &certs,
        &certs.good,
        Config {
            dialect: Dialect::Legacy,
            ..Config::default()
        },
    );
    let spec = Emu::demo();
    let run = legacy.finished_runs().into_iter().next().expect("a run");
    let path = format!("/crawlruns/{run}/csv");
    let url = format!("{}{path}?_apikey={KEY}", legacy.url);
    let head = curl_ok(
        &certs.ca,
        &url,
        &["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"],
    );
    let head = String::from_utf8(head).expect("utf-8");
    let (code, location) = head.split_once(' ').expect("code and location");
    assert_eq!(code, "302");
    let files = legacy.emu.as_ref().expect("emulator").files_url();
    assert!(files.starts_with("https://127.0.0.1:"), "{files}");
    assert!(location.starts_with(&format!("{files}/")), "{location}");
    assert!(!location.contains(KEY), "{location}");
    let bytes = curl_ok(&certs.ca, &url, &["-L"]);
    let expected = spec.get_bytes(&path);
    assert!(!expected.is_empty());
    assert_eq!(bytes, expected);
    // reqwest follows it too.
    assert_eq!(legacy.get_bytes(&path), expected);
}

#[test]
fn faults_the_bandwidth_cap_and_shutdown_work_over_tls() {
    let certs = Certs::new();
    let mut emu = tls_emu(
        &certs,
        &certs.good,
        common::scale_account(200_000, Some(100_000)),
    );
    let ca = certs.ca.to_str().expect("utf-8").to_owned();
    // A dropped connection: no answer at all, then serving goes on.
    emu.set_faults(serde_json::json!({"operation": "getCurrentUser", "drop_rate": 1.0}));
    let out = curl(&["--cacert", &ca, &user_url(&emu.url)]);
    assert!(!out.status.success());
    assert_eq!(
        emu.requests().last().map(|r| r["status"].clone()),
        Some(0.into())
    );
    emu.clear_faults();
    curl_user(&certs.ca, &emu.url);
    // The cap paces a download: 200 kB at 100 kB/s.
    let run = emu.finished_runs().into_iter().next().expect("a run");
    let url = format!("{}/crawlruns/{run}/csv?_apikey={KEY}", emu.url);
    let t = Instant::now();
    let bytes = curl_ok(&certs.ca, &url, &[]);
    assert_eq!(bytes.len(), 200_000);
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    // Shutdown kills a download in progress at once.
    let mut slow = Command::new("curl")
        .args([
            "-q",
            "-sS",
            "--noproxy",
            "*",
            "--cacert",
            &ca,
            "-o",
            "/dev/null",
        ])
        .arg(&url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.count("GET", &format!("/crawlruns/{run}/csv")) < 2 {
        assert!(Instant::now() < deadline, "the download did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let running = emu.emu.take().expect("emulator");
    emu.rt.block_on(running.shutdown());
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let status = slow.wait().expect("curl");
    assert!(!status.success(), "the download finished: {status}");
}

/// `importfs emulator` as a process, killed on drop.
struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(common::importfs_bin())
            .args(["emulator", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("IMPORTIO_API_KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn importfs emulator");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let mut running = Running {
            child,
            url: line.trim().to_owned(),
        };
        if !matches!(read, Ok(n) if n > 0) {
            let status = running.child.try_wait();
            panic!("importfs emulator printed no URL: {read:?}, {status:?}");
        }
        running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `importfs ARGS` to its end (killed after 20 s).
fn importfs(args: &[&str]) -> Output {
    let mut child = Command::new(common::importfs_bin())
        .args(args)
        .env("IMPORTIO_API_KEY", KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn importfs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("importfs {args:?} is still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn the_cli_serves_https_and_prints_an_https_url() {
    let certs = Certs::new();
    let (cert, key) = &certs.good;
    let running = Running::start(&[
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ]);
    assert!(
        running.url.starts_with("https://127.0.0.1:"),
        "{}",
        running.url
    );
    curl_user(&certs.ca, &running.url);
}

#[test]
fn the_cli_wants_both_tls_flags() {
    let certs = Certs::new();
    let (cert, key) = &certs.good;
    for (given, missing) in [("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert")] {
        let file = if given == "--tls-cert" { cert } else { key };
        let out = importfs(&[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            given,
            file.to_str().expect("utf-8"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{given}: {err}");
        assert!(err.contains(missing), "{given}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_cli_names_a_missing_certificate_file() {
    let certs = Certs::new();
    let missing = certs.dir.path().join("no-such-cert.pem");
    let out = importfs(&[
        "emulator",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        missing.to_str().expect("utf-8"),
        "--tls-key",
        certs.good.1.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "cannot read the TLS certificate {}",
            missing.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "a URL was printed");
    // A key file without a key is named too.
    let out = importfs(&[
        "emulator",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        certs.good.0.to_str().expect("utf-8"),
        "--tls-key",
        certs.good.0.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("no private key in {}", certs.good.0.display())),
        "{err}"
    );
}
