//! How the OS's own NFS client mounts importfs's server: the options for
//! Linux's `mount -t nfs` (nfs(5)) and macOS's `mount_nfs` (mount_nfs(8)).
//! Both are built on every OS (they are printed by `importfs serve nfs`)
//! and tested as text.
//!
//! The choices, the same on both: NFSv3 over TCP; MOUNT on the server's own
//! port (it has no portmapper); no locks (it has no lock manager); a
//! reserved source port (the server refuses others by default); attribute
//! caching for as long as the mount's `--metadata-ttl`, at least 1 s; and a
//! soft mount with a timeout above the API deadline, so a dead server gives
//! EIO in under a minute instead of a shell that hangs.

use std::time::Duration;

/// A mount of the server on `port`.
#[derive(Debug, Clone, Copy)]
pub struct NfsMount {
    pub port: u16,
    /// How long the client may trust attributes (`--metadata-ttl`).
    pub attr_ttl: Duration,
    pub read_only: bool,
}

/// What the client mounts: `127.0.0.1:/importfs`.
pub fn source(export: &str) -> String {
    format!("127.0.0.1:{export}")
}

/// Seconds of attribute caching: the metadata TTL, rounded up, at least 1.
fn actimeo(m: &NfsMount) -> u64 {
    m.attr_ttl.as_secs_f64().ceil().max(1.0) as u64
}

/// `mount -t nfs -o OPTIONS` on Linux (nfs(5)). `timeo` is in tenths of a
/// second: 15 s a try, 3 tries, then EIO.
pub fn linux_options(m: &NfsMount) -> String {
    let p = m.port;
    let mut o = format!(
        "vers=3,proto=tcp,port={p},mountport={p},mountproto=tcp,nolock,\
         rsize=1048576,wsize=1048576,actimeo={},soft,timeo=150,retrans=2",
        actimeo(m)
    );
    if m.read_only {
        o.push_str(",ro");
    }
    o
}

/// `mount_nfs -o OPTIONS` on macOS (mount_nfs(8)). The Mac's client takes
/// at most 128 KiB reads and writes (xet-core's nfsserve uses the same);
/// `resvport` makes it use a reserved port, which it does in the kernel.
pub fn macos_options(m: &NfsMount) -> String {
    let p = m.port;
    let mut o = format!(
        "vers=3,tcp,port={p},mountport={p},nolocks,resvport,\
         rsize=131072,wsize=131072,actimeo={},soft,timeo=150,retrans=2",
        actimeo(m)
    );
    if m.read_only {
        o.push_str(",rdonly");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_the_port_twice_and_follow_the_ttl() {
        let m = NfsMount {
            port: 40123,
            attr_ttl: Duration::from_millis(2500),
            read_only: false,
        };
        let l = linux_options(&m);
        assert!(l.contains("port=40123,mountport=40123"), "{l}");
        assert!(l.contains("vers=3") && l.contains("nolock") && l.contains("soft"));
        assert!(l.contains("actimeo=3") && !l.contains(",ro"), "{l}");
        let mac = macos_options(&NfsMount {
            read_only: true,
            attr_ttl: Duration::ZERO,
            ..m
        });
        assert!(mac.contains("nolocks") && mac.contains("resvport"), "{mac}");
        assert!(
            mac.contains("actimeo=1") && mac.ends_with(",rdonly"),
            "{mac}"
        );
        assert_eq!(source("/importfs"), "127.0.0.1:/importfs");
    }
}
