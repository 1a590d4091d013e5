//! Between the core's types and NFSv3's: attributes (`fattr3`), and errors
//! (an errno becomes an `nfsstat3`, logged once, as the FUSE adapter's
//! `reply.rs` does).
//!
//! Subtle: ENOENT means two things over NFS. For an operation on a name
//! (LOOKUP, REMOVE, RENAME) it is NFS3ERR_NOENT. For an operation on a file
//! handle it means the object behind the handle is gone (a removed scratch
//! file, an inode this server never gave out), which NFS calls
//! NFS3ERR_STALE; clients then drop the handle and look the name up again.

use crate::fs::core::Attr;
use crate::fs::inodes::Kind;
use crate::fs::FsError;
use nfs3_server::nfs3_types::nfs3::{fattr3, ftype3, nfsstat3, nfstime3, specdata3};

/// The filesystem id every attribute carries: one filesystem per server.
const FSID: u64 = 0x1e0f_5000;

pub(super) fn fattr(a: &Attr) -> fattr3 {
    let time = nfstime3::try_from(a.mtime).unwrap_or_default();
    fattr3 {
        type_: match a.kind {
            Kind::Dir => ftype3::NF3DIR,
            Kind::File => ftype3::NF3REG,
            Kind::Symlink => ftype3::NF3LNK,
        },
        mode: u32::from(a.perm),
        nlink: if a.kind == Kind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.size,
        rdev: specdata3::default(),
        fsid: FSID,
        fileid: a.ino,
        atime: time,
        mtime: time,
        ctime: time,
    }
}

/// Whether the operation names an object (LOOKUP, REMOVE, RENAME) or acts
/// on a handle (everything else): ENOENT means NOENT for the one and STALE
/// for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum On {
    Name,
    Handle,
}

/// The NFS status for a failed operation `op`, logged as the FUSE adapter
/// logs a failed request: quiet errors at debug, others at warn.
pub(super) fn status(op: &'static str, ino: u64, on: On, e: FsError) -> nfsstat3 {
    if e.is_quiet() {
        tracing::debug!(op, ino, errno = e.errno, "nfs {e}");
    } else {
        tracing::warn!(op, ino, errno = e.errno, "nfs {op} failed: {e}");
    }
    stat_of(e.errno, on)
}

/// The NFSv3 status (RFC 1813, 2.6) that says what `errno` says. EBUSY has
/// none (NFS3ERR_JUKEBOX would make the client retry): it is EIO, as is
/// anything else without a match.
pub(super) fn stat_of(errno: i32, on: On) -> nfsstat3 {
    use nfsstat3::*;
    match errno {
        libc::ENOENT if on == On::Handle => NFS3ERR_STALE,
        libc::ENOENT => NFS3ERR_NOENT,
        libc::EPERM => NFS3ERR_PERM,
        libc::EACCES => NFS3ERR_ACCES,
        libc::EROFS => NFS3ERR_ROFS,
        libc::EEXIST => NFS3ERR_EXIST,
        libc::EXDEV => NFS3ERR_XDEV,
        libc::ENOTDIR => NFS3ERR_NOTDIR,
        libc::EISDIR => NFS3ERR_ISDIR,
        libc::EINVAL => NFS3ERR_INVAL,
        libc::EFBIG => NFS3ERR_FBIG,
        libc::ENOSPC => NFS3ERR_NOSPC,
        libc::ENAMETOOLONG => NFS3ERR_NAMETOOLONG,
        libc::ENOTEMPTY => NFS3ERR_NOTEMPTY,
        libc::EBADF => NFS3ERR_STALE,
        libc::ENOSYS | libc::EOPNOTSUPP => NFS3ERR_NOTSUPP,
        _ => NFS3ERR_IO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_the_nfs_status_that_says_the_same() {
        assert_eq!(stat_of(libc::ENOENT, On::Name), nfsstat3::NFS3ERR_NOENT);
        assert_eq!(stat_of(libc::ENOENT, On::Handle), nfsstat3::NFS3ERR_STALE);
        assert_eq!(stat_of(libc::EROFS, On::Handle), nfsstat3::NFS3ERR_ROFS);
        assert_eq!(stat_of(libc::EACCES, On::Name), nfsstat3::NFS3ERR_ACCES);
        assert_eq!(stat_of(libc::EINVAL, On::Handle), nfsstat3::NFS3ERR_INVAL);
        assert_eq!(stat_of(libc::EBUSY, On::Handle), nfsstat3::NFS3ERR_IO);
        assert_eq!(stat_of(libc::ETIMEDOUT, On::Handle), nfsstat3::NFS3ERR_IO);
    }

    #[test]
    fn attributes_keep_kind_mode_size_and_time() {
        let a = Attr {
            ino: 42,
            kind: Kind::Symlink,
            size: 7,
            perm: 0o444,
            mtime: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500),
            uid: 1000,
            gid: 100,
        };
        let f = fattr(&a);
        assert_eq!(f.type_, ftype3::NF3LNK);
        assert_eq!((f.mode, f.size, f.fileid, f.uid), (0o444, 7, 42, 1000));
        assert_eq!((f.mtime.seconds, f.mtime.nseconds), (1, 500_000_000));
    }
}
