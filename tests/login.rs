//! `importfs login` / `logout` / `login --status` as a user meets them, with
//! real processes: the real Secret Service (Debian's gnome-keyring in a
//! `dbus-run-session`, checked with `secret-tool`, a client no one here
//! wrote) and a FUSE mount that finds the stored key; the 0600 file when
//! there is no session bus; a refused key that stores nothing; a locked
//! keyring and a D-Bus peer that never answers, which must end in one clear
//! line, not a hang; a key typed at a terminal (a pty) is not echoed; and
//! the key in no argv, no environment and no log along the way.
//!
//! Every importfs child runs with HOME and XDG_CONFIG_HOME in a temp dir,
//! the importfs variables cleared, and a D-Bus address chosen by the test
//! (none, a hung socket, or the test's own session bus), so nothing here
//! touches the real keyring or ~/.config.

mod common;

use common::*;
use importfs::emulator::Config;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An importfs command rooted at `home` (see [`clean`]).
fn importfs(home: &Path) -> Command {
    let mut c = Command::new(importfs_bin());
    clean(&mut c, home);
    c
}

/// `c`'s environment rooted at `home`, with no session bus (its runtime
/// dir is an empty one of ours, where zbus's fallback `bus` socket is not).
fn clean(c: &mut Command, home: &Path) {
    let run = home.join("run");
    std::fs::create_dir_all(&run).expect("mkdir run");
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", &run)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("IMPORTIO_API_KEY")
        .env_remove("IMPORTIO_API_URL")
        .env_remove("IMPORTFS_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
}

/// Run `cmd` with `input` on its stdin (a pipe: not a terminal).
fn with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn importfs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write the key");
    child.wait_with_output().expect("importfs runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// A prerequisite tool: under CI its absence fails loudly; elsewhere the
/// test is skipped with the reason.
fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!("{tool} is missing (scripts/lib.sh ensure_system installs it)");
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// Every process's argv and environment block that holds `key`.
fn processes_holding(key: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if e.file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_none()
        {
            continue;
        }
        for part in ["cmdline", "environ"] {
            let bytes = std::fs::read(e.path().join(part)).unwrap_or_default();
            if String::from_utf8_lossy(&bytes).contains(key) {
                found.push(format!("{}/{part}", e.path().display()));
            }
        }
    }
    found
}

/// A key no other process on the machine can hold.
fn unique_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("login-test-{}-{nanos}", std::process::id())
}

/// Kills a child we started (and waits for it) on every path.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `dbus-run-session` of the Secret Service test. On a path that did
/// not wait for it (a failed assertion), it tells the script to finish
/// (which unmounts), gives it 20 s, then kills it.
struct Session {
    child: Option<Child>,
    checked: PathBuf,
}

impl Session {
    fn finish(&mut self) -> Output {
        let _ = std::fs::write(&self.checked, "");
        let child = self.child.take().expect("the session runs");
        child.wait_with_output().expect("the session ends")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = std::fs::write(&self.checked, "");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// No session bus: the key goes to a 0600 file in a 0700 dir, one entry per
/// API URL; a second login replaces it; logout removes it, the file last.
#[test]
fn without_a_session_bus_the_key_is_kept_in_a_private_file() {
    let a = Emu::start_with_key(Config::default(), "key-for-a-0123456789");
    let b = Emu::start_with_key(Config::default(), "key-for-b-9876543210");
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("config/importfs/key");
    let login = |url: &str, key: &str| {
        let mut c = importfs(home.path());
        c.args(["login", "--api-url", url]);
        with_stdin(c, &format!("{key}\n"))
    };

    let out = login(&a.url, &a.key);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("Logged in to {} as Ada Lovelace", a.url)),
        "{said}"
    );
    assert!(said.contains("No secret store here"), "{said}");
    assert!(said.contains(&file.display().to_string()), "{said}");
    assert!(!said.contains(&a.key), "the key was printed: {said}");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    // Another URL, another key, the same file; then a second login to the first.
    assert!(login(&b.url, &b.key).status.success());
    let out = login(&a.url, &a.key);
    assert!(out.status.success(), "{}", text(&out));
    let body = std::fs::read_to_string(&file).expect("key file");
    assert_eq!(body.matches(&a.key).count(), 1, "{body}");
    assert_eq!(body.matches(&b.key).count(), 1, "{body}");
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["key"], "no temporary file left behind");
    assert_eq!(mode(&file), 0o600);

    // Every command finds it, last: config and login --status say where.
    let out = importfs(home.path())
        .args(["login", "--status", "--api-url", &a.url])
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("stored by importfs login in {}", file.display())),
        "{}",
        text(&out)
    );
    let out = importfs(home.path())
        .args(["config", "--api-url", &b.url])
        .output()
        .expect("config");
    assert!(
        text(&out).contains("api_key = <redacted>  # stored by importfs login"),
        "{}",
        text(&out)
    );
    // An exported key still wins over the stored one.
    let out = importfs(home.path())
        .args(["config", "--api-url", &b.url])
        .env("IMPORTIO_API_KEY", "from-env")
        .output()
        .expect("config");
    assert!(
        text(&out).contains("# environment IMPORTIO_API_KEY"),
        "{}",
        text(&out)
    );

    let logout = |url: &str| {
        let out = importfs(home.path())
            .args(["logout", "--api-url", url])
            .output()
            .expect("logout");
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    assert!(logout(&a.url).contains("Removed the key"));
    let body = std::fs::read_to_string(&file).expect("key file");
    assert!(!body.contains(&a.key) && body.contains(&b.key), "{body}");
    assert!(logout(&a.url).contains("No key was stored"));
    assert!(logout(&b.url).contains("Removed the key"));
    assert!(!file.exists(), "the last logout removes the file");
    let out = importfs(home.path())
        .args(["login", "--status", "--api-url", &a.url])
        .output()
        .expect("status");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("api_key = not set"), "{}", text(&out));
}

/// At a terminal (a pty, through util-linux `script`), the key is asked for
/// and not echoed: it is typed only once the prompt shows (echo is off by
/// then), and the terminal's output never holds it.
#[test]
fn a_key_typed_at_a_terminal_is_not_echoed() {
    if !have("script") {
        return;
    }
    let emu = Emu::demo();
    let home = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new("script");
    clean(&mut c, home.path());
    let cmd = format!("{} login --api-url {}", importfs_bin(), emu.url);
    let mut child = c
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shown().contains("(not shown): ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(shown().contains("(not shown): "), "no prompt: {}", shown());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\n", emu.key).as_bytes())
        .expect("type");
    let status = child.wait().expect("script ends");
    drop(stdin);
    reader.join().expect("reader");
    let all = shown();
    assert!(status.success(), "{all}");
    assert!(all.contains("Logged in to"), "{all}");
    assert!(!all.contains(&emu.key), "the key was echoed: {all}");
}

/// A key the API refuses is stored nowhere, and the message says why.
#[test]
fn a_refused_key_stores_nothing() {
    let emu = Emu::demo();
    let home = tempfile::tempdir().expect("tempdir");
    let mut c = importfs(home.path());
    c.args(["login", "--api-url", &emu.url]);
    let out = with_stdin(c, "not-the-right-key-000\n");
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&format!("this key is not valid for {}", emu.url)),
        "{said}"
    );
    assert!(!said.contains("not-the-right-key-000"), "{said}");
    assert!(
        !home.path().join("config/importfs").exists(),
        "nothing stored"
    );
    // Exactly one check was made.
    assert_eq!(emu.count("GET", "/users/current"), 1);
}

/// A session bus that accepts and never answers: login and a lookup each
/// end within the store timeout (15 s) with one line naming --api-key-file,
/// and nothing is written.
#[test]
fn a_secret_store_that_never_answers_ends_in_one_clear_line() {
    if !have("python3") {
        return;
    }
    let emu = Emu::demo();
    let home = tempfile::tempdir().expect("tempdir");
    let sock = home.path().join("hung-bus");
    let server = Command::new("python3")
        .args([
            "-c",
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(16)\n\
             held=[]\n\
             while True: held.append(s.accept())",
        ])
        .arg(&sock)
        .spawn()
        .expect("python3");
    let _server = Kill(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let bus = format!("unix:path={}", sock.display());

    let started = Instant::now();
    let mut c = importfs(home.path());
    c.args(["login", "--api-url", &emu.url])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus);
    let out = with_stdin(c, &format!("{}\n", emu.key));
    let took = started.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("did not answer within 15 s"), "{said}");
    assert!(said.contains("--api-key-file"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        !home.path().join("config/importfs").exists(),
        "nothing stored"
    );

    // A command that needs the key and finds only the hung store.
    let out = importfs(home.path())
        .args(["run", "anything", "--api-url", &emu.url])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("did not answer within 15 s") && said.contains("--api-key-file"),
        "{said}"
    );
}

/// The real Secret Service: gnome-keyring in a private D-Bus session,
/// unlocked with a test password. Login stores the key there (secret-tool
/// finds it), a background FUSE mount finds it with no variable and no key
/// file, the key is in no process's argv or environment and no log, and
/// logout removes it (secret-tool finds nothing).
#[test]
fn the_secret_service_keeps_the_key_for_a_mount() {
    if !fuse_or_skip()
        || !have("gnome-keyring-daemon")
        || !have("secret-tool")
        || !have("dbus-run-session")
    {
        return;
    }
    // A key of this run only: /proc is scanned whole, and other tests on the
    // machine use the common test key.
    let emu = Emu::start_with_key(Config::default(), &unique_key());
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir mnt");
    let _unmount = Unmount(mnt.clone());
    std::fs::write(dir.join("keyfile"), format!("{}\n", emu.key)).expect("keyfile");
    std::fs::write(dir.join("badkey"), "refused-key-424242\n").expect("badkey");
    let mut session = start_session(dir, SESSION_SCRIPT, &emu.url);

    // While the mount is up: no process shows the key.
    let ready = dir.join("mounted");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() && Instant::now() < deadline {
        if let Some(Ok(Some(_))) = session.child.as_mut().map(Child::try_wait) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let holding = ready.exists().then(|| processes_holding(&emu.key));
    let out = session.finish();
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let said = format!("{}\n--- steps:\n{}", text(&out), log("steps"));
    assert!(out.status.success(), "{said}");
    assert_eq!(holding, Some(vec![]), "the key shows in /proc: {said}");

    assert!(
        log("bad.out").contains(&format!("this key is not valid for {}", emu.url)),
        "{said}"
    );
    assert_eq!(log("bad.lookup"), "", "a refused key was stored");
    assert!(log("login.out").contains("Logged in to"), "{said}");
    assert!(
        log("login.out").contains("The key is kept in the Secret Service"),
        "{said}"
    );
    assert_eq!(log("stored").trim(), emu.key, "secret-tool finds the key");
    assert_eq!(
        log("label").trim(),
        format!("label = importfs API key for {}", emu.url)
    );
    assert!(
        log("status.out").contains("stored by importfs login in the Secret Service"),
        "{said}"
    );
    assert!(log("user.json").contains("\"firstName\""), "{said}");
    assert!(log("logout.out").contains("Removed the key"), "{said}");
    assert_eq!(log("after.lookup"), "", "logout left the key");
    assert!(
        !dir.join("config/importfs/key").exists(),
        "no file when the store works"
    );
    for name in [
        "login.out",
        "status.out",
        "logout.out",
        "bad.out",
        "mount.log",
        "mount.out",
        "steps",
    ] {
        assert!(!log(name).contains(&emu.key), "the key is in {name}");
    }
}

/// `script` run by bash inside a `dbus-run-session` of its own, with
/// `$IMPORTFS`, `$URL`, `$DIR` (= `dir`) and `$MNT` (`dir/mnt`) set.
fn start_session(dir: &Path, script: &str, url: &str) -> Session {
    std::fs::write(dir.join("session.sh"), script).expect("script");
    let mut cmd = Command::new("dbus-run-session");
    clean(&mut cmd, dir); // the script sets its own runtime dir
    let child = cmd
        .args(["--", "bash"])
        .arg(dir.join("session.sh"))
        .env("IMPORTFS", importfs_bin())
        .env("URL", url)
        .env("DIR", dir)
        .env("MNT", dir.join("mnt"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dbus-run-session");
    Session {
        child: Some(child),
        checked: dir.join("checked"),
    }
}

/// A locked keyring (made, with a key in it, in a first session; the
/// daemon started without its password in a second): login stores
/// nothing, and a command that needs the stored key fails, both in one
/// line naming --api-key-file and neither after more than the store's
/// timeout, whether the unlock prompt fails at once (no display) or waits.
#[test]
fn a_locked_keyring_ends_in_one_clear_line() {
    if !have("gnome-keyring-daemon") || !have("dbus-run-session") {
        return;
    }
    let emu = Emu::demo();
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    std::fs::write(dir.join("keyfile"), format!("{}\n", emu.key)).expect("keyfile");
    let prelude = r#"
export XDG_RUNTIME_DIR="$DIR/run-session" XDG_DATA_HOME="$DIR/data"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
"#;
    let first = format!(
        "{prelude}echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null\n\
         \"$IMPORTFS\" login --api-url \"$URL\" <\"$DIR/keyfile\""
    );
    let out = start_session(dir, &first, &emu.url).finish();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("kept in the Secret Service"),
        "{}",
        text(&out)
    );

    let second = format!(
        "{prelude}gnome-keyring-daemon --start --components=secrets >/dev/null\n\
         \"$IMPORTFS\" login --api-url \"$URL\" <\"$DIR/keyfile\" >\"$DIR/login.out\" 2>&1\n\
         echo \"login: $?\" >>\"$DIR/login.out\"\n\
         \"$IMPORTFS\" run anything --api-url \"$URL\" >\"$DIR/run.out\" 2>&1\n\
         echo \"run: $?\" >>\"$DIR/run.out\""
    );
    let started = Instant::now();
    let out = start_session(dir, &second, &emu.url).finish();
    let took = started.elapsed();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let said = format!("{}\n{}{}", text(&out), read("login.out"), read("run.out"));
    assert!(read("login.out").ends_with("login: 1\n"), "{said}");
    assert!(read("run.out").ends_with("run: 1\n"), "{said}");
    for name in ["login.out", "run.out"] {
        let first_line = read(name).lines().next().unwrap_or("").to_owned();
        assert!(first_line.contains("--api-key-file"), "{name}: {said}");
        assert!(!read(name).contains(&emu.key), "{name} shows the key");
    }
    assert!(took < Duration::from_secs(90), "took {took:?}");
    assert!(
        !dir.join("config/importfs/key").exists(),
        "no file fallback: {said}"
    );
}

/// Run inside `dbus-run-session` by the test above: every step's output in
/// a file of `$DIR`, the mount held until the test has looked at /proc.
const SESSION_SCRIPT: &str = r#"
set -u
exec 2>>"$DIR/steps"
export XDG_RUNTIME_DIR="$DIR/run-session" XDG_DATA_HOME="$DIR/data"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
step() { echo "== $*" >&2; }
trap 'fusermount3 -u "$MNT" 2>/dev/null' EXIT
step unlock
echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 1
step refused key
"$IMPORTFS" login --api-url "$URL" <"$DIR/badkey" >"$DIR/bad.out" 2>&1 && exit 1
secret-tool lookup service importfs username "$URL" >"$DIR/bad.lookup"
step login
"$IMPORTFS" login --api-url "$URL" <"$DIR/keyfile" >"$DIR/login.out" 2>&1 || exit 1
secret-tool lookup service importfs username "$URL" >"$DIR/stored" || exit 1
secret-tool search service importfs username "$URL" 2>&1 | grep '^label' >"$DIR/label"
"$IMPORTFS" login --status --api-url "$URL" >"$DIR/status.out" 2>&1 || exit 1
step mount
"$IMPORTFS" mount "$MNT" --api-url "$URL" -v --cache-dir "$DIR/cache" \
    --log-file "$DIR/mount.log" >"$DIR/mount.out" 2>&1 || exit 1
cat "$MNT/user.json" >"$DIR/user.json" || exit 1
touch "$DIR/mounted"
for _ in $(seq 1 1200); do [ -e "$DIR/checked" ] && break; sleep 0.1; done
fusermount3 -u "$MNT" || exit 1
step logout
"$IMPORTFS" logout --api-url "$URL" >"$DIR/logout.out" 2>&1 || exit 1
secret-tool lookup service importfs username "$URL" >"$DIR/after.lookup"
step done
exit 0
"#;
