//! Turning the core's answers into fuser replies: attributes, and the one
//! place a failed request is counted and logged.
//!
//! What is subtle: every error reply goes through [`Tally::err`], so each
//! failure is logged exactly once, naming the FUSE operation and the inode,
//! and `importfs_fuse_errors_total` counts exactly the errors the kernel
//! saw. Errors with nothing to say (a name that is not there) are logged at
//! debug only: shells probe names all the time.

use crate::fs::core::{Attr, Entry, Fs};
use crate::fs::counters::FuseOp;
use crate::fs::data::FileBytes;
use crate::fs::inodes::Kind;
use crate::fs::FsError;
use fuser::{Errno, FileAttr, FileType, Generation, INodeNo, ReplyData, ReplyEmpty, ReplyEntry};
use std::sync::Arc;

pub(super) fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

pub(super) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: if a.kind == Kind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 128 * 1024,
        flags: 0,
    }
}

pub(super) fn reply_empty(t: &Tally, reply: ReplyEmpty, r: Result<(), FsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(t.err(e)),
    }
}

pub(super) fn reply_data(t: &Tally, reply: ReplyData, r: Result<FileBytes, FsError>) {
    match r {
        Ok(data) => reply.data(&data),
        Err(e) => reply.error(t.err(e)),
    }
}

pub(super) fn reply_entry(t: &Tally, reply: ReplyEntry, r: Result<Entry, FsError>) {
    match r {
        Ok(e) => reply.entry(&e.ttl, &file_attr(&e.attr), Generation(0)),
        Err(e) => reply.error(t.err(e)),
    }
}

/// An errno the adapter decides itself (an operation this filesystem does
/// not do).
impl From<Errno> for FsError {
    fn from(e: Errno) -> FsError {
        FsError::new(e.code())
    }
}

/// One FUSE request: counted when it arrives (`FuseFs::count`); an error
/// reply is counted by its errno, and logged, as it is made
/// (`reply.error(t.err(e))`). Moved into the request's task with the reply.
pub(super) struct Tally {
    fs: Arc<Fs>,
    op: FuseOp,
    ino: u64,
}

impl Tally {
    /// Count a request of `op` on inode `ino` (`importfs_fuse_requests_total`).
    pub(super) fn new(fs: &Arc<Fs>, op: FuseOp, ino: INodeNo) -> Tally {
        fs.fuse.request(op);
        Tally {
            fs: fs.clone(),
            op,
            ino: ino.0,
        }
    }
}

impl Tally {
    /// Count and log a failed request, once: naming the operation and the
    /// inode. An error with nothing to say (a name that is not there, an
    /// operation this filesystem does not do) is logged at debug only:
    /// shells probe names all the time.
    pub(super) fn err(&self, e: impl Into<FsError>) -> Errno {
        let e = e.into();
        let (op, ino) = (self.op.as_str(), self.ino);
        if e.is_quiet() {
            tracing::debug!(op, ino, errno = e.errno, "{e}");
        } else {
            tracing::warn!(op, ino, errno = e.errno, "{op} failed: {e}");
        }
        self.fs.fuse.error(self.op, e.errno);
        Errno::from_i32(e.errno)
    }
}
