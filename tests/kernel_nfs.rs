//! The NFS backend as a real kernel client meets it: Debian's kernel booted
//! in QEMU (tests/common/qemu.rs), mounting importfs's NFS server.

mod common;

use common::qemu::Guest;

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
