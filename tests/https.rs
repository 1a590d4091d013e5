//! The mount over HTTPS, as the real service speaks it: real FUSE mounts of
//! the emulator serving TLS with certificates made at run time
//! (`common::tls`), trusted through `--ca-cert` or the system's store
//! (`SSL_CERT_FILE`); untrusted, expired and wrong-name certificates and a
//! plain server refused with a clear message; a real CONNECT proxy
//! (Debian's tinyproxy); and the key kept out of the clear and out of every
//! process importfs starts.

mod common;

use common::tls::{Certs, Pair};
use common::*;
use importfs::emulator::Config;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tls_emu(certs: &Certs, pair: &Pair) -> Emu {
    Emu::start_tls(Config::default(), &certs.ca, &pair.0, &pair.1)
}

/// The first finished run and its data.csv as the API has it.
fn a_result(emu: &Emu) -> (String, Vec<u8>) {
    let id = emu.finished_runs()[0].clone();
    let csv = emu.get_bytes(&format!("/crawlruns/{id}/csv"));
    (id, csv)
}

/// Mount in the foreground where it must fail: its one-line error, after
/// checking it exited non-zero within `limit` and left nothing mounted.
fn mount_fails(url: &str, extra: &[&str], env: &[(&str, &str)], limit: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let t0 = Instant::now();
    let out = Command::new(importfs_bin())
        .arg("mount")
        .arg("--foreground")
        .arg(&mnt)
        .args(["--api-url", url, "--no-config", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .args(extra)
        .env("IMPORTIO_API_KEY", KEY)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(!out.status.success(), "mounted: {said}");
    assert!(t0.elapsed() < limit, "took {:?}: {said}", t0.elapsed());
    assert!(!is_fuse_mount(&mnt), "left mounted");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(!said.contains(KEY), "{said}");
    said
}

#[test]
fn the_tree_reads_over_https_with_ca_cert_or_the_system_store() {
    if !fuse_or_skip() {
        return;
    }
    let certs = Certs::new();
    let emu = tls_emu(&certs, &certs.good);
    assert!(emu.url.starts_with("https://"), "{}", emu.url);
    let (id, truth) = a_result(&emu);
    let ca = certs.ca.to_str().unwrap();
    let m = Mounted::new(&emu.url, &["--ca-cert", ca]);
    let user: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.path("user.json")).unwrap()).unwrap();
    assert_eq!(user["guid"], emu.get_json("/users/current")["guid"]);
    assert!(m.sh_ok("ls extractors").lines().count() > 1);
    let f = format!("crawlruns/{id}/data.csv");
    assert!(std::fs::read(m.path(&f)).unwrap() == truth, "exact bytes");
    drop(m);
    // The CA in the system's store instead (SSL_CERT_FILE), no flag.
    let m = Mounted::with_env(&emu.url, &[], KEY, &[("SSL_CERT_FILE", ca)]);
    assert!(std::fs::read(m.path(&f)).unwrap() == truth, "exact bytes");
}

#[test]
fn untrusted_expired_wrong_name_and_plain_servers_fail_the_mount_clearly() {
    let certs = Certs::new();
    let ca = certs.ca.to_str().unwrap();
    let limit = Duration::from_secs(20);
    let good = tls_emu(&certs, &certs.good);
    let said = mount_fails(&good.url, &[], &[], limit);
    assert!(
        said.contains("not signed by a CA this machine trusts") && said.contains("--ca-cert"),
        "{said}"
    );
    let expired = tls_emu(&certs, &certs.expired);
    let said = mount_fails(&expired.url, &["--ca-cert", ca], &[], limit);
    assert!(said.contains("expired"), "{said}");
    let wrong = tls_emu(&certs, &certs.wrong_name);
    let said = mount_fails(&wrong.url, &["--ca-cert", ca], &[], limit);
    assert!(said.contains("for another name"), "{said}");
    let plain = Emu::demo();
    let url = plain.url.replace("http://", "https://");
    let said = mount_fails(&url, &["--ca-cert", ca], &[], limit);
    assert!(said.contains("does not speak TLS"), "{said}");
    // A --ca-cert that is no certificate is said before anything is tried.
    let said = mount_fails(&good.url, &["--ca-cert", "/etc/hostname"], &[], limit);
    assert!(said.contains("--ca-cert"), "{said}");
}

#[test]
fn the_key_is_never_sent_in_the_clear() {
    // An http:// API on another host is refused before any connection.
    let said = mount_fails(
        "http://api.import.io.invalid",
        &[],
        &[],
        Duration::from_secs(10),
    );
    assert!(said.contains("in the clear"), "{said}");
    // An https answer that redirects to http is not followed.
    let certs = Certs::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = rt.block_on(redirect_to_http(&certs.good));
    let pem = std::fs::read(&certs.ca).unwrap();
    let cfg = importfs::api::ClientConfig {
        extra_roots: reqwest::Certificate::from_pem_bundle(&pem).unwrap(),
        max_attempts: 1,
        ..importfs::api::ClientConfig::new(format!("https://127.0.0.1:{port}"), KEY)
    };
    let client = importfs::api::Client::new(cfg).unwrap();
    let e = rt.block_on(client.current_user()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("from https to plain http"), "{text}");
    assert!(!text.contains(KEY) && !text.contains("_apikey"), "{text}");
}

/// A TLS server that answers every request with a redirect to plain http.
async fn redirect_to_http(pair: &Pair) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&pair.0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pair.1).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(sock).await else {
                continue;
            };
            let mut buf = vec![0u8; 8192];
            let _ = tls.read(&mut buf).await;
            let reply = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/users/current\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    port
}

/// tinyproxy in the foreground on a free port, its log (stdout) in a file;
/// killed on drop.
struct Proxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start() -> Option<Proxy> {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        if Command::new("tinyproxy").arg("-v").output().is_err() {
            assert!(!ci, "tinyproxy is missing: CI must have it");
            eprintln!("SKIPPED: tinyproxy is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogLevel Info\nMaxClients 64\n\
                 Allow 127.0.0.1\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("tinyproxy.log");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Proxy {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn connects(&self) -> usize {
        self.log().matches("CONNECT 127.0.0.1:").count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn it_works_through_a_connect_proxy_and_no_proxy_bypasses_it() {
    if !fuse_or_skip() {
        return;
    }
    let Some(proxy) = Proxy::start() else {
        return;
    };
    let certs = Certs::new();
    let emu = tls_emu(&certs, &certs.good);
    let (id, truth) = a_result(&emu);
    let f = format!("crawlruns/{id}/data.csv");
    let ca = certs.ca.to_str().unwrap();
    let port = emu.url.rsplit(':').next().unwrap().to_owned();
    {
        let m = Mounted::with_env(
            &emu.url,
            &["--ca-cert", ca],
            KEY,
            &[("HTTPS_PROXY", &proxy.url())],
        );
        assert!(std::fs::read(m.path(&f)).unwrap() == truth, "exact bytes");
    }
    let log = proxy.log();
    assert!(log.contains(&format!("CONNECT 127.0.0.1:{port}")), "{log}");
    assert!(!log.contains(KEY), "the proxy never sees the key");
    // The config key / flag `proxy` does the same, with no environment.
    let before = proxy.connects();
    {
        let m = Mounted::new(&emu.url, &["--ca-cert", ca, "--proxy", &proxy.url()]);
        assert!(m.sh_ok("ls extractors").lines().count() > 1);
    }
    assert!(proxy.connects() > before, "--proxy goes through it");
    // NO_PROXY bypasses it.
    let before = proxy.connects();
    {
        let env = [
            ("HTTPS_PROXY", proxy.url()),
            ("NO_PROXY", "127.0.0.1".into()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let m = Mounted::with_env(&emu.url, &["--ca-cert", ca], KEY, &env);
        assert!(std::fs::read(m.path(&f)).unwrap() == truth, "exact bytes");
    }
    assert_eq!(proxy.connects(), before, "NO_PROXY: not through the proxy");
    // The proxy's credentials never show in `importfs config`.
    let out = Command::new(importfs_bin())
        .args([
            "config",
            "--no-config",
            "--proxy",
            "http://user:pr0xyPass@127.0.0.1:3128",
        ])
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("proxy") && !text.contains("pr0xyPass"),
        "{text}"
    );
}

#[test]
fn no_process_importfs_starts_has_the_key_in_its_environment() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::demo();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = Unmount(mnt.clone());
    let out = Command::new(importfs_bin())
        .arg("mount")
        .arg(&mnt)
        .args(["--api-url", &emu.url, "--no-config", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg("--log-file")
        .arg(dir.path().join("log"))
        .env("IMPORTIO_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(mnt.join("user.json")).is_ok());
    let procs = processes_naming(&mnt.to_string_lossy());
    let names: Vec<&str> = procs.iter().map(|p| p.cmdline.as_str()).collect();
    // The background mount and its watcher at least (fusermount3 too, when
    // it stays to auto-unmount).
    assert!(procs.len() >= 2, "{names:#?}");
    for p in &procs {
        let (pid, cmd) = (p.pid, &p.cmdline);
        let env = String::from_utf8_lossy(&p.environ);
        assert!(
            !env.contains(KEY),
            "pid {pid} ({cmd}) has the key in its environment"
        );
        assert!(!env.contains("IMPORTIO_API_KEY="), "pid {pid} ({cmd})");
        assert!(!cmd.contains(KEY), "pid {pid}: the key in argv");
    }
}
