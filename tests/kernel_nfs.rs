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
