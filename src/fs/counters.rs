//! What a mount has done, in one snapshot: the FUSE requests the adapter
//! answered (by operation, and the errors by errno), the core's cache
//! counters and the client's. `.importfs/stats` and the Prometheus endpoint
//! (`metrics.rs`) both render a [`MountStats`], so they cannot disagree;
//! the endpoint imports this file (and its [`errno_name`]), never the other
//! way round.
//!
//! FUSE requests are counted in the adapter (`fuse/reply.rs`), once per request as it arrives
//! and once per error reply; a lock-free array per operation keeps the
//! hot path (reads) to one atomic add. Errors are rarer and keyed by errno,
//! so a small map behind a mutex is enough.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

macro_rules! fuse_ops {
    ($($v:ident => $s:literal),* $(,)?) => {
        /// A FUSE operation, named as in the kernel's protocol (the `op`
        /// label of `importfs_fuse_requests_total`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum FuseOp { $($v),* }

        impl FuseOp {
            pub const ALL: &'static [FuseOp] = &[$(FuseOp::$v),*];
            pub fn as_str(self) -> &'static str {
                match self { $(FuseOp::$v => $s),* }
            }
        }
    };
}

fuse_ops! {
    Lookup => "lookup", Getattr => "getattr", Setattr => "setattr",
    Readlink => "readlink", Mknod => "mknod", Mkdir => "mkdir",
    Unlink => "unlink", Rmdir => "rmdir", Symlink => "symlink",
    Rename => "rename", Link => "link", Open => "open", Read => "read",
    Write => "write", Flush => "flush", Release => "release",
    Fsync => "fsync", Opendir => "opendir", Readdir => "readdir",
    Readdirplus => "readdirplus", Releasedir => "releasedir",
    Statfs => "statfs", Getxattr => "getxattr", Listxattr => "listxattr",
    Access => "access", Setxattr => "setxattr", Removexattr => "removexattr",
    Fsyncdir => "fsyncdir", Ioctl => "ioctl", Poll => "poll",
    Fallocate => "fallocate", Lseek => "lseek",
    CopyFileRange => "copy_file_range", Create => "create",
}

/// FUSE requests and error replies, by operation.
#[derive(Debug)]
pub struct FuseCounters {
    requests: Vec<AtomicU64>,
    errors: Mutex<BTreeMap<(FuseOp, i32), u64>>,
}

impl Default for FuseCounters {
    fn default() -> FuseCounters {
        FuseCounters {
            requests: FuseOp::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

impl FuseCounters {
    pub fn request(&self, op: FuseOp) {
        self.requests[op as usize].fetch_add(1, Relaxed);
    }

    pub fn error(&self, op: FuseOp, errno: i32) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op, errno))
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> FuseStats {
        FuseStats {
            requests: FuseOp::ALL
                .iter()
                .map(|op| (*op, self.requests[*op as usize].load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A snapshot of [`FuseCounters`] (operations never asked are absent).
#[derive(Debug, Clone, Default)]
pub struct FuseStats {
    pub requests: BTreeMap<FuseOp, u64>,
    pub errors: BTreeMap<(FuseOp, i32), u64>,
}

/// `ENOENT` for 2: the `errno` label, as `errno(3)` names them; a number
/// the table lacks stays a number.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOTTY => "ENOTTY",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EINTR => "EINTR",
        _ => return e.to_string(),
    };
    name.to_owned()
}

/// Everything `.importfs/stats` and `/metrics` show, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct MountStats {
    pub metadata_cache_hits: u64,
    pub metadata_cache_misses: u64,
    pub stale_answers: u64,
    /// Rounds of change detection (`--poll-interval`).
    pub polls: u64,
    /// Lines ever written to `.importfs/events`, and the bytes of those
    /// still in memory (the rest read as blank lines).
    pub events_logged: u64,
    pub events_kept_bytes: u64,
    /// The process serving the mount.
    pub pid: u64,
    pub data_cache_hits: u64,
    /// Result files found complete in the store, kept by an earlier mount.
    pub data_cache_hits_earlier_mounts: u64,
    /// Kept result files whose size or checksum was wrong (fetched again).
    pub data_cache_corrupt: u64,
    /// Kept result files read whole to check their checksum before use.
    pub data_cache_checksum_reads: u64,
    pub data_cache_misses: u64,
    pub data_cache_evictions: u64,
    /// Bytes of result files that finished downloading into the cache.
    pub bytes_fetched: u64,
    /// Result files being downloaded right now.
    pub downloads_in_flight: u64,
    pub passthrough_opens: u64,
    pub keep_cache_opens: u64,
    pub inodes: u64,
    /// Bytes the result cache holds now, and its bound (`--cache-size`).
    pub data_cache_bytes: u64,
    pub data_cache_limit_bytes: u64,
    /// Result files read through memory (the disk cache could not take
    /// them), and what they hold now, within its bound (`--max-memory`).
    pub data_memory_files: u64,
    pub data_memory_bytes: u64,
    pub data_memory_limit_bytes: u64,
    /// Result files moved to memory because the cache's disk was full.
    pub data_cache_disk_full: u64,
    pub api: crate::api::Stats,
    pub fuse: FuseStats,
}

impl MountStats {
    /// `.importfs/stats`: one `name value` pair a line. The lines before
    /// `inodes` and the client's `api.*` / `download.*` lines are the ones
    /// the file always had; scripts read them.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (k, v) in [
            ("metadata_cache_hits", self.metadata_cache_hits),
            ("metadata_cache_misses", self.metadata_cache_misses),
            ("stale_answers", self.stale_answers),
            ("polls", self.polls),
            ("events_logged", self.events_logged),
            ("events_kept_bytes", self.events_kept_bytes),
            ("pid", self.pid),
            ("data_cache_hits", self.data_cache_hits),
            (
                "data_cache_hits_earlier_mounts",
                self.data_cache_hits_earlier_mounts,
            ),
            ("data_cache_corrupt", self.data_cache_corrupt),
            ("data_cache_checksum_reads", self.data_cache_checksum_reads),
            ("data_cache_misses", self.data_cache_misses),
            ("data_cache_evictions", self.data_cache_evictions),
            ("bytes_fetched", self.bytes_fetched),
            ("downloads_in_flight", self.downloads_in_flight),
            ("passthrough_opens", self.passthrough_opens),
            ("keep_cache_opens", self.keep_cache_opens),
            ("inodes", self.inodes),
            ("data_cache_bytes", self.data_cache_bytes),
            ("data_cache_limit_bytes", self.data_cache_limit_bytes),
            ("data_memory_files", self.data_memory_files),
            ("data_memory_bytes", self.data_memory_bytes),
            ("data_memory_limit_bytes", self.data_memory_limit_bytes),
            ("data_cache_disk_full", self.data_cache_disk_full),
        ] {
            let _ = writeln!(s, "{k} {v}");
        }
        s.push_str(&self.api.to_text());
        for (op, n) in &self.fuse.requests {
            let _ = writeln!(s, "fuse.requests.{} {n}", op.as_str());
        }
        for ((op, errno), n) in &self.fuse.errors {
            let _ = writeln!(s, "fuse.errors.{}.{} {n}", op.as_str(), errno_name(*errno));
        }
        s
    }
}
