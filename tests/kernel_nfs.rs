//! The NFS backend as a real kernel client meets it: Debian's kernel booted
//! in QEMU (tests/common/qemu.rs), mounting importfs's NFS server.

mod common;

use common::nfs::NfsServer;
use common::qemu::Guest;
use common::{sha256_bytes, Emu};

/// The harness itself: the guest boots, has its NFS modules and network,
/// and hands back output and exit status.
#[test]
fn the_guest_boots_with_nfs_and_network() {
    let Some(g) = Guest::get() else { return };
    let out = g
        .script("grep -w nfs /proc/filesystems; ip -4 addr show eth0; exit 3")
        .run();
    eprintln!("boot {:?} s, wall {:?}", out.boot_secs, out.wall);
    assert_eq!(out.code, Some(3), "{}", out.explain());
    assert!(out.out.contains("nfs"), "{}", out.explain());
    assert!(out.out.contains("10.0.2.15"), "{}", out.explain());
}

/// The options `importfs serve nfs` prints for Linux, pointed at the host
/// as the guest sees it (`addr=`: mount(2) with text options needs no
/// mount.nfs, and busybox's mount passes them as they are).
fn guest_options(port: u16) -> String {
    format!(
        "vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,nolock,\
         actimeo=2,soft,timeo=150,retrans=2,addr=10.0.2.2"
    )
}

/// The fallback path: `importfs serve nfs --allow-unprivileged-ports` on
/// the host (QEMU's user network connects from unprivileged host ports),
/// mounted by the guest's kernel; the tree lists and result files read
/// back byte for byte.
#[test]
fn a_guest_kernel_mounts_a_host_server_and_reads_exact_bytes() {
    let Some(g) = Guest::get() else { return };
    let emu = Emu::demo();
    let s = NfsServer::start(&emu.url, &["--allow-unprivileged-ports"]);
    let runs = emu.finished_runs();
    let mut want = String::new();
    let mut cats = String::new();
    for id in &runs[..2] {
        for (api, file) in [("csv", "data.csv"), ("json", "data.json"), ("xlsx", "data.xlsx")] {
            let truth = emu.get_bytes(&format!("/crawlruns/{id}/{api}"));
            want.push_str(&format!("{}  /mnt/i/crawlruns/{id}/{file}\n", sha256_bytes(&truth)));
            cats.push_str(&format!("sha256sum /mnt/i/crawlruns/{id}/{file}\n"));
        }
    }
    let script = format!(
        "set -e\nmkdir -p /mnt/i\nt0=$(cut -d' ' -f1 /proc/uptime)\n\
         mount -t nfs -o {opts} 10.0.2.2:/importfs /mnt/i\n\
         echo MOUNT_SECS=$t0-$(cut -d' ' -f1 /proc/uptime)\n\
         grep ' /mnt/i ' /proc/mounts\nls -1 /mnt/i\necho EXTRACTORS=$(ls /mnt/i/extractors | wc -l)\n\
         {cats}umount /mnt/i\necho UNMOUNTED\n",
        opts = guest_options(s.port)
    );
    let out = g.script(&script).run();
    let explain = || format!("{}\nserver log:\n{}", out.explain(), s.log_tail());
    assert_eq!(out.code, Some(0), "{}", explain());
    eprintln!("boot {:?} s; mount {:?}", out.boot_secs, out.value("MOUNT_SECS"));
    for name in ["crawlruns", "extractors", "user.json"] {
        assert!(out.out.lines().any(|l| l == name), "no {name}: {}", explain());
    }
    let listed: usize = out.value("EXTRACTORS").unwrap().parse().unwrap();
    assert!(listed >= 2, "{}", explain());
    for line in want.lines() {
        assert!(out.out.lines().any(|l| l == line), "want {line}: {}", explain());
    }
    assert!(out.out.contains("UNMOUNTED"), "{}", explain());
}

/// The emulator, started inside the guest on 127.0.0.1:8080 with key `k`,
/// ready when this returns; then `importfs mount --backend nfs` on
/// /mnt/i, as root, as a user would.
const GUEST_MOUNT: &str = r#"
set -e
export IMPORTIO_API_KEY=k
importfs emulator --listen 127.0.0.1:8080 >/tmp/emu.log 2>&1 &
i=0
until wget -q -O /dev/null "http://127.0.0.1:8080/extractors?_apikey=k"; do
    i=$((i+1)); [ $i -lt 100 ] || { echo EMULATOR_DOWN; cat /tmp/emu.log; exit 1; }
    sleep 0.2
done
mkdir -p /mnt/i
t0=$(cut -d' ' -f1 /proc/uptime)
if ! importfs mount --backend nfs --api-url http://127.0.0.1:8080 --no-config \
    --cache-dir /tmp/cache --log-file /tmp/mount.log --metadata-ttl 2s \
    --poll-interval 2s /mnt/i; then
    echo MOUNT_FAILED; cat /tmp/mount.log; exit 1
fi
echo MOUNT_SECS=$t0-$(cut -d' ' -f1 /proc/uptime)
"#;

/// The whole user path inside the guest: emulator, `importfs mount
/// --backend nfs` (server, reserved ports, uid rule, mount(2) with the
/// options of platform/nfs.rs, watcher) and the guest's kernel client;
/// the tree lists, finished runs' files read byte-exact against the
/// emulator's own answer, and `importfs unmount` leaves nothing mounted.
#[test]
fn importfs_mount_backend_nfs_works_inside_a_guest() {
    let Some(g) = Guest::get() else { return };
    let script = format!(
        "{GUEST_MOUNT}{}",
        r#"
grep ' /mnt/i ' /proc/mounts
ls -1 /mnt/i
n=0
for id in $(ls /mnt/i/crawlruns); do
    [ "$(cat /mnt/i/crawlruns/$id/state)" = FINISHED ] || continue
    for f in csv:data.csv json:data.json xlsx:data.xlsx; do
        wget -q -O /tmp/truth "http://127.0.0.1:8080/crawlruns/$id/${f%%:*}?_apikey=k"
        if cmp /tmp/truth "/mnt/i/crawlruns/$id/${f#*:}"; then echo "EXACT $id ${f#*:} $(wc -c </tmp/truth)"
        else echo "DIFFERENT $id ${f#*:}"; fi
    done
    n=$((n+1)); [ $n -lt 2 ] || break
done
t0=$(cut -d' ' -f1 /proc/uptime)
importfs unmount /mnt/i
echo UNMOUNT_SECS=$t0-$(cut -d' ' -f1 /proc/uptime)
if grep -q ' /mnt/i ' /proc/mounts; then echo STILL_MOUNTED; fi
# The mount's process ends once it sees the mount gone (it looks every 0.5 s).
i=0
while ps -o args | grep -v grep | grep -q 'importfs mount'; do
    i=$((i+1)); [ $i -lt 100 ] || { echo STILL_RUNNING; ps -o pid,args; break; }
    sleep 0.1
done
echo DONE
"#
    );
    let out = g.script(&script).importfs().run();
    eprintln!(
        "boot {:?} s, mount {:?}, unmount {:?}, wall {:?}",
        out.boot_secs,
        out.value("MOUNT_SECS"),
        out.value("UNMOUNT_SECS"),
        out.wall
    );
    let out = out.ok();
    let lines: Vec<&str> = out.out.lines().collect();
    assert!(lines.iter().any(|l| l.contains(" /mnt/i nfs ")), "{}", out.explain());
    for name in ["crawlruns", "extractors", "user.json"] {
        assert!(lines.contains(&name), "no {name}: {}", out.explain());
    }
    let exact = lines.iter().filter(|l| l.starts_with("EXACT ")).count();
    assert_eq!(exact, 6, "{}", out.explain());
    assert!(!out.out.contains("DIFFERENT"), "{}", out.explain());
    assert!(!out.out.contains("STILL_"), "{}", out.explain());
    assert!(lines.contains(&"DONE"), "{}", out.explain());
}
