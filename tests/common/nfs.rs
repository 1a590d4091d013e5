//! `importfs serve nfs` as a child process over an emulator, and the two
//! user-space NFS clients the NFS tests drive it with: libnfs's tools
//! (`nfs-ls`, `nfs-cat`, run through `timeout`) and `nfs3_client`, whose
//! every call is bounded by [`CALL_TIMEOUT`] (its read loop spins forever
//! on a connection the server closed).
//!
//! [`NfsServer`] stops its process on drop (SIGTERM, then SIGKILL, by pid),
//! on every path, and each server gets its own temp dir and free port.

use super::{importfs_bin, tail, KEY};
use nfs3_client::nfs3_types::nfs3::{
    cookieverf3, createhow3, diropargs3, fattr3, filename3, nfs_fh3, nfsstat3, sattr3, set_atime,
    set_mtime, stable_how, COMMIT3args, CREATE3args, GETATTR3args, LOOKUP3args, Nfs3Option,
    Nfs3Result, READ3args, READDIRPLUS3args, READLINK3args, REMOVE3args, RENAME3args, RMDIR3args,
    SETATTR3args, WRITE3args,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder, RpcError};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The most any one NFS call of a test may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

fn skip_or_fail(why: &str) -> bool {
    if ci() {
        panic!("{why}: CI must be able to run the NFS tests");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Can this process use reserved source ports (the server's default rule)?
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_or_fail("not root: NFS clients cannot use reserved source ports")
}

/// Are libnfs's tools here, and reserved ports usable?
pub fn libnfs_or_skip() -> bool {
    let missing: Vec<&str> = ["nfs-ls", "nfs-cat"]
        .into_iter()
        .filter(|t| Command::new(t).output().is_err())
        .collect();
    if !missing.is_empty() {
        return skip_or_fail(&format!(
            "libnfs tools missing ({}; apt-get install libnfs-utils)",
            missing.join(", ")
        ));
    }
    root_or_skip()
}

/// A running `importfs serve nfs`, stopped on drop.
pub struct NfsServer {
    pub dir: tempfile::TempDir,
    pub cache: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl NfsServer {
    /// Serve the account at `url` on a free port, with extra flags.
    pub fn start(url: &str, extra: &[&str]) -> NfsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let log = dir.path().join("serve.log");
        let mut s = NfsServer {
            dir,
            cache,
            log,
            port: 0,
            child: None,
        };
        s.spawn(url, 0, extra);
        s
    }

    /// Stop this server and start another on the same port and cache dir
    /// (its log appended to the same file).
    pub fn restart(&mut self, url: &str, extra: &[&str]) {
        self.stop();
        let port = self.port;
        self.spawn(url, port, extra);
        assert_eq!(self.port, port, "the new server listens on the old port");
    }

    fn spawn(&mut self, url: &str, port: u16, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let mut child = Command::new(importfs_bin())
            .args(["serve", "nfs", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--api-url", url, "--no-config", "--metadata-ttl", "2s"])
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("-v")
            .args(extra)
            .env("IMPORTIO_API_KEY", KEY)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn importfs serve nfs");
        // The first stdout line says where it listens; the rest is drained
        // so that the server never writes into a full pipe.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        self.child = Some(child);
        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(l))) => l,
            other => panic!(
                "importfs serve nfs did not say where it listens ({other:?}):\n{}",
                self.log_text()
            ),
        };
        let port: u16 = first
            .strip_prefix("importfs: serving NFSv3 on 127.0.0.1:")
            .and_then(|r| r.strip_suffix(", export /importfs"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        self.port = port;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log_text(), 30)
    }

    /// SIGTERM, and SIGKILL if it is still there 10 s later.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) of our own child's pid, which we have not reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.try_wait() {
                Ok(Some(_)) => return,
                _ if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// `nfs://` URL of `path` under the export (`""`: the export itself),
    /// with `query` (e.g. `&uid=4242`) appended.
    pub fn url(&self, path: &str, query: &str) -> String {
        let p = self.port;
        format!("nfs://127.0.0.1/importfs/{path}?nfsport={p}&mountport={p}{query}")
    }

    /// A libnfs tool on `url`, killed after 60 s.
    pub fn libnfs(&self, tool: &str, url: &str) -> Output {
        Command::new("timeout")
            .args(["60", tool, url])
            .stdin(Stdio::null())
            .output()
            .expect("timeout")
    }

    fn ok(&self, tool: &str, url: &str) -> Vec<u8> {
        let out = self.libnfs(tool, url);
        assert!(
            out.status.success(),
            "{tool} {url}: {}\nstdout: {}\nstderr: {}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        out.stdout
    }

    /// The names `nfs-ls` lists in `path` (a directory, ending in `/`).
    pub fn ls(&self, path: &str) -> Vec<(String, String)> {
        let out = self.ok("nfs-ls", &self.url(path, ""));
        ls_entries(&String::from_utf8_lossy(&out))
    }

    /// `nfs-cat` of `path` into the file `out`, killed after 120 s.
    pub fn cat_to(&self, path: &str, out: &std::path::Path) {
        let url = self.url(path, "");
        let st = Command::new("timeout")
            .args(["120", "nfs-cat", &url])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out).expect("create"))
            .status()
            .expect("timeout");
        assert!(
            st.success(),
            "nfs-cat {url}: {st}\nserver log:\n{}",
            self.log_tail()
        );
    }

    /// `nfs-cat` of `path`: its bytes.
    pub fn cat(&self, path: &str) -> Vec<u8> {
        self.ok("nfs-cat", &self.url(path, ""))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port, Some(0), true)
            .unwrap_or_else(|e| panic!("mount: {e}\nserver log:\n{}", self.log_tail()))
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let log = self.log_text();
            assert!(
                !log.contains(KEY),
                "the API key appears in the server's log"
            );
        }
    }
}

/// `(mode, name)` of each line of `nfs-ls` output: `mode nlink uid gid size
/// name` (the name may hold spaces).
pub fn ls_entries(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut rest = l;
            let mut mode = String::new();
            for i in 0..5 {
                rest = rest.trim_start();
                let end = rest.find(' ').unwrap_or(rest.len());
                if i == 0 {
                    mode = rest[..end].to_owned();
                }
                rest = &rest[end..];
            }
            (mode, rest.trim_start().to_owned())
        })
        .collect()
}

/// An `nfs3_client` connection (MOUNT and NFS), with its own runtime.
pub struct Client {
    rt: tokio::runtime::Runtime,
    conn: Nfs3Connection<TokioIo<tokio::net::TcpStream>>,
}

/// Run one client call, bounded by [`CALL_TIMEOUT`]; an RPC failure panics.
fn call<T>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    f: impl Future<Output = Result<T, RpcError>>,
) -> T {
    match rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, f).await }) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("NFS {what}: RPC error: {e} ({e:?})"),
        Err(_) => panic!("NFS {what}: no answer in {CALL_TIMEOUT:?}"),
    }
}

fn status<T, E>(r: Nfs3Result<T, E>) -> Result<T, nfsstat3> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((s, _)) => Err(s),
    }
}

/// What a client that sends no credentials (AUTH_NONE, as a Linux kernel
/// does for its first call) gets: the answer to NULL on the NFS program,
/// to NULL on the MOUNT program, and to GETATTR of `root` (a handle of the
/// export, got otherwise), each as `Ok` or the RPC error's text. From a
/// reserved source port.
pub fn auth_none_calls(port: u16, root: &nfs_fh3) -> [Result<(), String>; 3] {
    use nfs3_client::{MountClient, Nfs3Client};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = |r: Result<Result<(), RpcError>, _>| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e} ({e:?})")),
        Err(_) => Err(format!("no answer in {CALL_TIMEOUT:?}")),
    };
    rt.block_on(async {
        let io = || async { TokioIo::new(reserved_port_stream(port).await) };
        let mut nfs = Nfs3Client::new(io().await);
        let null = text(tokio::time::timeout(CALL_TIMEOUT, nfs.null()).await);
        let mut mnt = MountClient::new(io().await);
        let mnt_null = text(tokio::time::timeout(CALL_TIMEOUT, mnt.null()).await);
        let args = GETATTR3args {
            object: root.clone(),
        };
        let getattr = tokio::time::timeout(CALL_TIMEOUT, nfs.getattr(&args)).await;
        let getattr = text(getattr.map(|r| r.map(|_| ())));
        [null, mnt_null, getattr]
    })
}

/// A TCP connection to `127.0.0.1:port` from a free reserved port.
async fn reserved_port_stream(port: u16) -> tokio::net::TcpStream {
    for local in (600..1024).rev() {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        if sock.bind(([0, 0, 0, 0], local).into()).is_err() {
            continue;
        }
        match sock.connect(([127, 0, 0, 1], port).into()).await {
            Ok(s) => return s,
            Err(_) => continue,
        }
    }
    panic!("no free reserved port to connect from");
}

impl Client {
    /// MOUNT `/importfs` on `port` with AUTH_SYS `uid` (`None`: AUTH_NONE),
    /// from a reserved source port or an ephemeral one. The error is the
    /// client's, as text.
    pub fn connect(port: u16, uid: Option<u32>, privileged: bool) -> Result<Client, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut b = Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", "/importfs")
            .mount_port(port)
            .nfs3_port(port)
            .connect_from_privileged_port(privileged);
        if let Some(uid) = uid {
            b = b.credential(opaque_auth::auth_unix(&auth_unix {
                stamp: 0,
                machinename: Opaque::borrowed(b"importfs-test"),
                uid,
                gid: uid,
                gids: vec![],
            }));
        }
        let conn = rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, b.mount()).await });
        match conn {
            Ok(Ok(conn)) => Ok(Client { rt, conn }),
            Ok(Err(e)) => Err(format!("{e} ({e:?})")),
            Err(_) => Err(format!("no answer to MOUNT in {CALL_TIMEOUT:?}")),
        }
    }

    pub fn root(&self) -> nfs_fh3 {
        self.conn.root_nfs_fh3()
    }

    pub fn lookup(&mut self, dir: &nfs_fh3, name: &str) -> Result<nfs_fh3, nfsstat3> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: filename3(Opaque::borrowed(name.as_bytes())),
            },
        };
        let r = call(&self.rt, "LOOKUP", self.conn.lookup(&args));
        status(r).map(|ok| ok.object)
    }

    /// The handle of `path` (relative to the export), one LOOKUP a name.
    pub fn walk(&mut self, path: &str) -> Result<nfs_fh3, nfsstat3> {
        let mut fh = self.root();
        for name in path.split('/').filter(|n| !n.is_empty()) {
            fh = self.lookup(&fh, name)?;
        }
        Ok(fh)
    }

    /// Like [`Client::walk`], panicking on an error.
    pub fn fh(&mut self, path: &str) -> nfs_fh3 {
        self.walk(path)
            .unwrap_or_else(|e| panic!("LOOKUP {path}: {e:?}"))
    }

    pub fn getattr(&mut self, fh: &nfs_fh3) -> Result<fattr3, nfsstat3> {
        let args = GETATTR3args { object: fh.clone() };
        let r = call(&self.rt, "GETATTR", self.conn.getattr(&args));
        status(r).map(|ok| ok.obj_attributes)
    }

    /// One READ: its bytes and its EOF flag.
    pub fn read(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let args = READ3args {
            file: fh.clone(),
            offset,
            count,
        };
        let r = call(&self.rt, "READ", self.conn.read(&args));
        status(r).map(|ok| (ok.data.into_owned(), ok.eof))
    }

    /// READs of 1 MiB from `from` to EOF, each handed to `each`; the
    /// offset of the end.
    pub fn read_each(&mut self, fh: &nfs_fh3, from: u64, mut each: impl FnMut(&[u8])) -> u64 {
        let mut off = from;
        loop {
            let (b, eof) = self
                .read(fh, off, 1 << 20)
                .unwrap_or_else(|e| panic!("READ at {off}: {e:?}"));
            each(&b);
            off += b.len() as u64;
            if eof || b.is_empty() {
                return off;
            }
        }
    }

    pub fn read_all(&mut self, fh: &nfs_fh3) -> Vec<u8> {
        let mut all = Vec::new();
        self.read_each(fh, 0, |b| all.extend_from_slice(b));
        all
    }

    pub fn write(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<stable_how, nfsstat3> {
        let args = WRITE3args {
            file: fh.clone(),
            offset,
            count: data.len() as u32,
            stable,
            data: Opaque::borrowed(data),
        };
        let r = call(&self.rt, "WRITE", self.conn.write(&args));
        status(r).map(|ok| {
            assert_eq!(ok.count as usize, data.len(), "a short WRITE");
            ok.committed
        })
    }

    pub fn commit(&mut self, fh: &nfs_fh3) -> Result<(), nfsstat3> {
        let args = COMMIT3args {
            file: fh.clone(),
            offset: 0,
            count: 0,
        };
        let r = call(&self.rt, "COMMIT", self.conn.commit(&args));
        status(r).map(|_| ())
    }

    pub fn setattr(&mut self, fh: &nfs_fh3, set: sattr3) -> Result<(), nfsstat3> {
        let args = SETATTR3args {
            object: fh.clone(),
            new_attributes: set,
            guard: Nfs3Option::None,
        };
        let r = call(&self.rt, "SETATTR", self.conn.setattr(&args));
        status(r).map(|_| ())
    }

    /// SETATTR size 0, as `open(O_TRUNC)` sends it.
    pub fn truncate(&mut self, fh: &nfs_fh3) -> Result<(), nfsstat3> {
        self.setattr(
            fh,
            sattr3 {
                size: Nfs3Option::Some(0),
                ..Default::default()
            },
        )
    }

    /// SETATTR of both times to the server's, as `touch` sends it.
    pub fn touch(&mut self, fh: &nfs_fh3) -> Result<(), nfsstat3> {
        self.setattr(
            fh,
            sattr3 {
                atime: set_atime::SET_TO_SERVER_TIME,
                mtime: set_mtime::SET_TO_SERVER_TIME,
                ..Default::default()
            },
        )
    }

    pub fn readlink(&mut self, fh: &nfs_fh3) -> Result<String, nfsstat3> {
        let args = READLINK3args {
            symlink: fh.clone(),
        };
        let r = call(&self.rt, "READLINK", self.conn.readlink(&args));
        status(r).map(|ok| String::from_utf8_lossy(ok.data.as_ref()).into_owned())
    }

    /// `(name, fileid)` of every entry of `dir` but `.` and `..`, by
    /// READDIRPLUS in small pages (4 KiB answers), following cookies.
    pub fn readdir(&mut self, dir: &nfs_fh3) -> Result<Vec<(Vec<u8>, u64)>, nfsstat3> {
        let (mut out, mut cookie, mut cookieverf) = (Vec::new(), 0, cookieverf3::default());
        loop {
            let args = READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf,
                dircount: 1024,
                maxcount: 4096,
            };
            let ok = status(call(&self.rt, "READDIRPLUS", self.conn.readdirplus(&args)))?;
            let entries = ok.reply.entries.into_inner();
            assert!(
                !entries.is_empty() || ok.reply.eof,
                "an empty READDIRPLUS page before EOF at cookie {cookie}"
            );
            for e in entries {
                cookie = e.cookie;
                let name = e.name.as_ref().to_vec();
                if name != b"." && name != b".." {
                    out.push((name, e.fileid));
                }
            }
            if ok.reply.eof {
                return Ok(out);
            }
            cookieverf = ok.cookieverf;
        }
    }

    /// An UNCHECKED CREATE of `name` in `dir`.
    pub fn create(&mut self, dir: &nfs_fh3, name: &str) -> Result<(), nfsstat3> {
        self.create_how(dir, name, createhow3::UNCHECKED(sattr3::default()))
            .map(|_| ())
    }

    /// A CREATE of `name` in `dir` as `how` asks: the handle it answers.
    pub fn create_how(
        &mut self,
        dir: &nfs_fh3,
        name: &str,
        how: createhow3,
    ) -> Result<Option<nfs_fh3>, nfsstat3> {
        let args = CREATE3args {
            where_: diropargs3 {
                dir: dir.clone(),
                name: filename3(Opaque::borrowed(name.as_bytes())),
            },
            how,
        };
        let r = call(&self.rt, "CREATE", self.conn.create(&args));
        status(r).map(|ok| match ok.obj {
            Nfs3Option::Some(fh) => Some(fh),
            Nfs3Option::None => None,
        })
    }

    /// RENAME `from` to `to`, both in `dir`.
    pub fn rename(&mut self, dir: &nfs_fh3, from: &str, to: &str) -> Result<(), nfsstat3> {
        let args = RENAME3args {
            from: dirop(dir, from),
            to: dirop(dir, to),
        };
        let r = call(&self.rt, "RENAME", self.conn.rename(&args));
        status(r).map(|_| ())
    }

    /// REMOVE `name` from `dir`.
    pub fn remove(&mut self, dir: &nfs_fh3, name: &str) -> Result<(), nfsstat3> {
        let args = REMOVE3args {
            object: dirop(dir, name),
        };
        let r = call(&self.rt, "REMOVE", self.conn.remove(&args));
        status(r).map(|_| ())
    }

    /// RMDIR `name` in `dir`.
    pub fn rmdir(&mut self, dir: &nfs_fh3, name: &str) -> Result<(), nfsstat3> {
        let args = RMDIR3args {
            object: dirop(dir, name),
        };
        let r = call(&self.rt, "RMDIR", self.conn.rmdir(&args));
        status(r).map(|_| ())
    }

    /// One counter of `.importfs/stats` (a `name value` line).
    pub fn stat(&mut self, name: &str) -> u64 {
        let fh = self.fh(".importfs/stats");
        let stats = String::from_utf8_lossy(&self.read_all(&fh)).into_owned();
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{stats}"))
    }
}

/// `name` in `dir`, as NFS names a directory entry.
fn dirop<'a>(dir: &nfs_fh3, name: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3(Opaque::borrowed(name.as_bytes())),
    }
}
