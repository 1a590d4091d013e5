//! A mount whose server died, as a real kernel NFS client meets it (the
//! guest of tests/common/qemu.rs running `importfs mount --backend nfs`):
//! `importfs unmount` returns in seconds even while a reader waits on the
//! dead server, and that reader gets EIO within the soft timeout the README
//! states; with the watcher alive, the mount is detached by it at once.

mod common;

use common::qemu::{mount_script, Guest, GuestApi};

/// Guest lines that print the pids of the mount's server process and of
/// its watcher as `SERVER=...` and `WATCHER=...`.
const PIDS: &str = r#"
ps -o pid,args | grep -v grep | grep importfs
server=$(ps -o pid,args | grep -v grep | grep 'importfs mount' | awk '{print $1}' | head -n1)
watcher=$(ps -o pid,args | grep -v grep | grep '__watch-mount' | awk '{print $1}' | head -n1)
echo SERVER=$server WATCHER=$watcher
up() { cut -d' ' -f1 /proc/uptime; }
"#;

fn secs(range: Option<&str>) -> f64 {
    let r = range.unwrap_or_else(|| panic!("no time range"));
    let (a, b) = r.split_once('-').expect("start-end");
    b.parse::<f64>().unwrap() - a.parse::<f64>().unwrap()
}

/// Server and watcher killed (SIGKILL): a reader then waits on a dead
/// server; `importfs unmount` must not, and must leave nothing mounted.
#[test]
fn unmount_of_a_mount_whose_server_died_takes_seconds() {
    let Some(g) = Guest::get() else { return };
    let script = format!(
        r#"{mount}cd /
cat /mnt/i/user.json >/dev/null && echo READ_OK
{PIDS}
kill -9 $watcher $server
# The attributes the client holds (actimeo=2) expire: the next read asks
# the dead server.
sleep 3
r0=$(up)
( if cat /mnt/i/user.json >/dev/null 2>/tmp/cat.err; then echo CAT_OK; else echo CAT_FAILED; fi
  cat /tmp/cat.err ) >/tmp/cat.out 2>&1 &
reader=$!
sleep 2
t0=$(up)
importfs unmount /mnt/i 2>&1 || echo UNMOUNT_FAILED
echo UNMOUNT_SECS=$t0-$(up)
if grep -q ' /mnt/i ' /proc/mounts; then echo STILL_MOUNTED; fi
wait $reader || true
echo READER_SECS=$r0-$(up)
cat /tmp/cat.out
echo DONE
"#,
        mount = mount_script(GuestApi::InGuest, "")
    );
    let out = g.script(&script).importfs().run();
    eprintln!("{}", out.out);
    let out = out.ok();
    assert!(out.out.contains("READ_OK"), "{}", out.explain());
    assert!(!out.out.contains("UNMOUNT_FAILED"), "{}", out.explain());
    assert!(!out.out.contains("STILL_MOUNTED"), "{}", out.explain());
    let unmount = secs(out.value("UNMOUNT_SECS"));
    assert!(
        unmount <= 10.0,
        "unmount took {unmount} s: {}",
        out.explain()
    );
    // The reader that waited on the dead server got an error, within the
    // soft timeout the README states (about 90 s at most; the unmount
    // does not cut it short: MNT_FORCE does not end a call waiting to
    // reconnect).
    assert!(out.out.contains("CAT_FAILED"), "{}", out.explain());
    let reader = secs(out.value("READER_SECS"));
    eprintln!("unmount {unmount:.1} s; the reader's EIO after {reader:.1} s");
    assert!(reader <= 100.0, "EIO after {reader} s: {}", out.explain());
    assert!(out.out.contains("DONE"), "{}", out.explain());
}

/// The server killed, its watcher alive: the watcher detaches the mount
/// at once (forcibly: fusermount3 knows no NFS mount).
#[test]
fn the_watcher_detaches_a_mount_whose_server_was_killed() {
    let Some(g) = Guest::get() else { return };
    let script = format!(
        r#"{mount}cd /
{PIDS}
t0=$(up)
kill -9 $server
i=0
while grep -q ' /mnt/i ' /proc/mounts; do
    i=$((i+1)); [ $i -lt 300 ] || {{ echo STILL_MOUNTED; break; }}
    sleep 0.1
done
echo GONE_SECS=$t0-$(up)
echo DONE
"#,
        mount = mount_script(GuestApi::InGuest, "")
    );
    let out = g.script(&script).importfs().run();
    eprintln!("{}", out.out);
    let out = out.ok();
    assert!(!out.out.contains("STILL_MOUNTED"), "{}", out.explain());
    let gone = secs(out.value("GONE_SECS"));
    assert!(gone <= 10.0, "detached after {gone} s: {}", out.explain());
}
