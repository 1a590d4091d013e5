//! The kernel-client harness: a real Linux kernel (Debian's cloud kernel,
//! unpacked by `scripts/guest.sh`, never installed) booted in QEMU with a
//! busybox initramfs, running one shell script as root and handing back
//! what it printed and its exit status.
//!
//! - The guest has the NFS client (nfsv3 and what it needs) and virtio-net
//!   loaded, `lo` and `eth0` up; QEMU's user network makes the host's
//!   loopback `10.0.2.2` (connections reach the host from unprivileged
//!   host ports, so a host server needs `--allow-unprivileged-ports`).
//! - [`GuestRun::importfs`] puts this build's `importfs` (stripped) at
//!   `/bin/importfs`, so the whole user path can run inside.
//! - The script's output comes back on the second serial port, between
//!   markers the guest's `/init` writes; the kernel's console (dmesg) on
//!   the first, kept for failure messages.
//! - A timeout kills QEMU, and [`Running`] kills it on drop, on every path.
//!
//! [`Guest::get`] skips (with a printed line) only where QEMU cannot run at
//! all (no `qemu-system-x86_64`, no apt to fetch the kernel with, no
//! busybox); under `CI=true` that fails instead. Anything else going wrong
//! (the kernel download, the boot) fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The kernel and base initramfs `scripts/guest.sh prepare` made.
#[derive(Debug, Clone)]
pub struct Guest {
    kernel: PathBuf,
    initrd: PathBuf,
    cache: PathBuf,
}

/// One guest to boot: its script, and what else goes in.
pub struct GuestRun<'a> {
    guest: &'a Guest,
    script: String,
    /// `(path in the guest, bytes)`, e.g. a seeded dataset.
    files: Vec<(String, Vec<u8>)>,
    importfs: bool,
    memory_mb: u32,
    timeout: Duration,
}

/// What a guest's script did.
#[derive(Debug)]
pub struct GuestOutput {
    /// Everything the script wrote (stdout and stderr), markers removed.
    pub out: String,
    /// The script's exit status; `None` if it never finished (timeout,
    /// panic, QEMU died).
    pub code: Option<i32>,
    /// The kernel's console: dmesg, for failure messages.
    pub console: String,
    /// Guest uptime when the script started (boot, modules, network).
    pub boot_secs: Option<f64>,
    /// From starting QEMU to it ending.
    pub wall: Duration,
}

impl GuestOutput {
    /// Panics with the output and the console's tail unless the script
    /// exited 0.
    pub fn ok(self) -> GuestOutput {
        assert_eq!(
            self.code,
            Some(0),
            "the guest script failed:\n{}",
            self.explain()
        );
        self
    }

    /// The output and the console's tail, for messages.
    pub fn explain(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- guest output ---\n{}\n--- console (tail) ---\n{}",
            self.code,
            self.wall,
            self.out,
            super::tail(&self.console, 40)
        )
    }

    /// The value of a line `NAME=value` the script printed.
    pub fn value(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

/// Where the guest's `importfs mount --backend nfs` gets its account.
pub enum GuestApi<'a> {
    /// An `importfs emulator` (demo account, key `k`) started inside the
    /// guest on 127.0.0.1:8080: everything runs in the guest.
    InGuest,
    /// An emulator on the host, at its `http://127.0.0.1:PORT` URL, with
    /// its key: the host can watch the API calls the mount makes. The
    /// guest reaches it through a relay (busybox `nc`) on its own
    /// 127.0.0.1:8080.
    Host { url: &'a str, key: &'a str },
}

/// Shell lines that mount the account on `/mnt/i` inside the guest with
/// `importfs mount --backend nfs` (as root, as a user would: the server,
/// reserved ports, the uid rule, mount(2) with `platform/nfs.rs`'s
/// options, the watcher), with `--metadata-ttl 2s --poll-interval 2s` and
/// `flags`; they print `MOUNT_SECS=start-end` (guest uptime), or the log
/// and exit 1. Run a suite after them; `unmount_script` ends it.
pub fn mount_script(api: GuestApi, flags: &str) -> String {
    let relay: String;
    let (url, key, start) = match api {
        GuestApi::InGuest => (
            "http://127.0.0.1:8080".to_owned(),
            "k".to_owned(),
            "importfs emulator --listen 127.0.0.1:8080 --api-key k >/tmp/emu.log 2>&1 &\n",
        ),
        // importfs sends a key over http:// only to this machine, so a
        // relay on the guest's loopback carries it to the host's.
        GuestApi::Host { url, key } => {
            let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
            relay = format!("nc -ll -p 8080 -e nc 10.0.2.2 {port} &\n");
            (
                "http://127.0.0.1:8080".to_owned(),
                key.to_owned(),
                relay.as_str(),
            )
        }
    };
    format!(
        r#"set -e
export IMPORTIO_API_KEY='{key}' API='{url}'
{start}i=0
until wget -q -O /dev/null "$API/extractors?_apikey=$IMPORTIO_API_KEY" 2>/dev/null; do
    i=$((i+1)); [ $i -lt 100 ] || {{ echo API_DOWN; cat /tmp/emu.log; exit 1; }}
    sleep 0.2
done
mkdir -p /mnt/i
t0=$(cut -d' ' -f1 /proc/uptime)
if ! importfs mount --backend nfs --api-url "$API" --no-config \
    --cache-dir /tmp/cache --log-file /tmp/mount.log --metadata-ttl 2s \
    --poll-interval 2s {flags} /mnt/i; then
    echo MOUNT_FAILED; cat /tmp/mount.log; exit 1
fi
echo MOUNT_SECS=$t0-$(cut -d' ' -f1 /proc/uptime)
"#
    )
}

/// Shell lines that `importfs unmount /mnt/i` and check that nothing is
/// left: they print `UNMOUNT_SECS=start-end`, `STILL_MOUNTED` or
/// `STILL_RUNNING` if something is, and `DONE`.
pub const UNMOUNT_SCRIPT: &str = r#"
t0=$(cut -d' ' -f1 /proc/uptime)
importfs unmount /mnt/i || echo UNMOUNT_FAILED
echo UNMOUNT_SECS=$t0-$(cut -d' ' -f1 /proc/uptime)
if grep -q ' /mnt/i ' /proc/mounts; then echo STILL_MOUNTED; fi
# The mount's process ends once it sees the mount gone (it looks every 0.5 s).
i=0
while ps -o args | grep -v grep | grep -q 'importfs mount'; do
    i=$((i+1)); [ $i -lt 100 ] || { echo STILL_RUNNING; ps -o pid,args; break; }
    sleep 0.1
done
echo DONE
"#;

/// Boot a guest with this build's `importfs`, mount the account on
/// `/mnt/i` with `importfs mount --backend nfs` ([`mount_script`]), run
/// `suite` there (sh, `set -e`, in `/mnt/i`), and unmount
/// ([`UNMOUNT_SCRIPT`]). The guest is returned running: wait for it.
pub fn nfs_suite(g: &Guest, api: GuestApi, flags: &str, suite: &str) -> Running {
    let script = format!(
        "{}cd /mnt/i\n{suite}\ncd /\n{UNMOUNT_SCRIPT}",
        mount_script(api, flags)
    );
    g.script(&script).importfs().spawn()
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

impl Guest {
    /// The guest, prepared once per test process; `None` (after a printed
    /// `SKIPPED:` line) where QEMU cannot run here.
    pub fn get() -> Option<&'static Guest> {
        static GUEST: OnceLock<Result<Guest, String>> = OnceLock::new();
        let g = GUEST.get_or_init(|| {
            let missing: Vec<&str> = [
                ("qemu-system-x86_64", "--version", "qemu-system-x86"),
                ("apt-get", "--version", "apt"),
                ("/bin/busybox", "true", "busybox-static"),
            ]
            .into_iter()
            .filter(|(p, a, _)| !have(p, a))
            .map(|(_, _, pkg)| pkg)
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "the kernel-client harness needs {} (scripts/test.sh installs them)",
                    missing.join(", ")
                ));
            }
            Ok(Guest::prepare())
        });
        match g {
            Ok(g) => Some(g),
            Err(why) if ci() => panic!("{why}: CI must run the kernel-client tests"),
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    fn prepare() -> Guest {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cache = root.join("target").join("guest");
        let out = Command::new("bash")
            .arg(root.join("scripts/guest.sh"))
            .arg("prepare")
            .arg(&cache)
            .stderr(Stdio::inherit())
            .output()
            .expect("bash scripts/guest.sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/guest.sh prepare failed: {text}"
        );
        let get = |k: &str| {
            let p = text
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("guest.sh said no {k}: {text}"));
            PathBuf::from(p)
        };
        Guest {
            kernel: get("KERNEL="),
            initrd: get("INITRD="),
            cache,
        }
    }

    /// A guest that will run `script` (sh) as root.
    pub fn script(&self, script: &str) -> GuestRun<'_> {
        GuestRun {
            guest: self,
            script: script.to_owned(),
            files: Vec::new(),
            importfs: false,
            memory_mb: 1024,
            timeout: Duration::from_secs(300),
        }
    }
}

impl GuestRun<'_> {
    /// Put this build's `importfs` at `/bin/importfs`.
    pub fn importfs(mut self) -> Self {
        self.importfs = true;
        self
    }

    /// Put `bytes` at `path` in the guest.
    pub fn file(mut self, path: &str, bytes: &[u8]) -> Self {
        self.files
            .push((path.trim_start_matches('/').to_owned(), bytes.to_vec()));
        self
    }

    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// QEMU is killed after this long (default 300 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Boot, run the script, and wait for it (or the timeout).
    pub fn run(self) -> GuestOutput {
        self.spawn().wait()
    }

    /// Boot and return at once; [`Running::wait`] collects the result.
    pub fn spawn(self) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let initrd = dir.path().join("initrd");
        self.write_initrd(&initrd, dir.path());
        let console = dir.path().join("console.txt");
        let out = dir.path().join("out.txt");
        let accel = if kvm_usable() { "kvm:tcg" } else { "tcg" };
        let child = Command::new("qemu-system-x86_64")
            .args(["-machine", &format!("accel={accel}"), "-m"])
            .arg(self.memory_mb.to_string())
            .args(["-smp", "1", "-display", "none", "-monitor", "none"])
            .args(["-no-reboot", "-nodefaults", "-serial"])
            .arg(format!("file:{}", console.display()))
            .arg("-serial")
            .arg(format!("file:{}", out.display()))
            .arg("-kernel")
            .arg(&self.guest.kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet"])
            .args(["-nic", "user,model=virtio-net-pci"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64");
        Running {
            child: Some(child),
            dir,
            started: Instant::now(),
            deadline: Instant::now() + self.timeout,
        }
    }

    /// The base initramfs, padded to 512 bytes, then an uncompressed cpio
    /// of this run's files (the kernel unpacks one after the other).
    fn write_initrd(&self, initrd: &Path, tmp: &Path) {
        let root = tmp.join("root");
        let put = |rel: &str, bytes: &[u8], mode: u32| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        put("guest/script.sh", self.script.as_bytes(), 0o755);
        for (path, bytes) in &self.files {
            put(path, bytes, 0o644);
        }
        if self.importfs {
            let bin = stripped_importfs(&self.guest.cache);
            std::fs::create_dir_all(root.join("bin")).unwrap();
            std::fs::hard_link(&bin, root.join("bin/importfs"))
                .or_else(|_| std::fs::copy(&bin, root.join("bin/importfs")).map(|_| ()))
                .unwrap();
            for lib in shared_libraries(&bin) {
                let bytes = std::fs::read(&lib).expect("shared library");
                put(lib.to_str().unwrap().trim_start_matches('/'), &bytes, 0o755);
            }
        }
        let mut base = std::fs::read(&self.guest.initrd).expect("base initramfs");
        base.resize(base.len().div_ceil(512) * 512, 0);
        let mut f = std::fs::File::create(initrd).unwrap();
        f.write_all(&base).unwrap();
        let st = Command::new("sh")
            .arg("-c")
            .arg("find . | /bin/busybox cpio -o -H newc 2>/dev/null")
            .current_dir(&root)
            .stdout(f)
            .status()
            .expect("busybox cpio");
        assert!(st.success(), "cpio of the run's files failed");
    }
}

/// The shared libraries `bin` loads, the dynamic loader included, as
/// ldd(1) lists them: the guest has none of its own.
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split("=> ").nth(1).unwrap_or(l);
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// KVM only when asked (`IMPORTFS_GUEST_KVM=1`): TCG works anywhere, and
/// KVM nested in a VM may stop with an emulation failure (it did here).
fn kvm_usable() -> bool {
    std::env::var("IMPORTFS_GUEST_KVM").is_ok_and(|v| v == "1")
}

/// This build's `importfs`, stripped of debug info (a tenth of the size),
/// kept in the cache keyed by the binary's size and mtime.
fn stripped_importfs(cache: &Path) -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let bin = Path::new(super::importfs_bin());
        let meta = std::fs::metadata(bin).expect("importfs binary");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let out = cache.join(format!("importfs-{}-{mtime}", meta.len()));
        if !out.exists() {
            // Copies of earlier builds go.
            for old in std::fs::read_dir(cache).into_iter().flatten().flatten() {
                if old.file_name().to_string_lossy().starts_with("importfs-") {
                    let _ = std::fs::remove_file(old.path());
                }
            }
            let tmp = out.with_extension(format!("tmp{}", std::process::id()));
            let st = Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&tmp)
                .arg(bin)
                .status();
            if !matches!(st, Ok(s) if s.success()) {
                std::fs::copy(bin, &tmp).expect("copy importfs");
            }
            std::fs::rename(&tmp, &out).expect("rename");
        }
        out
    })
    .clone()
}

/// A booted guest; QEMU is killed on drop.
pub struct Running {
    child: Option<Child>,
    dir: tempfile::TempDir,
    started: Instant,
    deadline: Instant,
}

impl Running {
    /// What the script has written so far.
    pub fn out_so_far(&self) -> String {
        let raw = std::fs::read_to_string(self.dir.path().join("out.txt")).unwrap_or_default();
        raw.replace('\r', "")
    }

    /// Wait until the script printed a line holding `what`, up to `t`.
    pub fn wait_for(&self, what: &str, t: Duration) -> bool {
        let end = Instant::now() + t;
        while Instant::now() < end {
            if self.out_so_far().lines().any(|l| l.contains(what)) {
                return true;
            }
            if self.out_so_far().contains("IMPORTFS-GUEST-EXIT") {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Wait for QEMU to end (the guest powers off after its script), or
    /// kill it at the deadline.
    pub fn wait(mut self) -> GuestOutput {
        let mut child = self.child.take().expect("child");
        let mut qemu_err = String::new();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < self.deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    qemu_err.push_str("(killed at the timeout)\n");
                    break;
                }
            }
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut qemu_err);
        }
        let wall = self.started.elapsed();
        let raw = self.out_so_far();
        let console = std::fs::read_to_string(self.dir.path().join("console.txt"))
            .unwrap_or_default()
            + "\n--- qemu ---\n"
            + &qemu_err;
        parse(&raw, console, wall)
    }
}

fn parse(raw: &str, console: String, wall: Duration) -> GuestOutput {
    let mut out = String::new();
    let (mut code, mut boot_secs) = (None, None);
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("IMPORTFS-GUEST-BEGIN ") {
            boot_secs = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("IMPORTFS-GUEST-EXIT ") {
            code = rest.split(' ').next().and_then(|c| c.parse().ok());
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    GuestOutput {
        out,
        code,
        console,
        boot_secs,
        wall,
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
