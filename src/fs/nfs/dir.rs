//! READDIR and READDIRPLUS: a directory's listing read page by page.
//!
//! A listing is opened with the core's `opendir` when a client starts at
//! cookie 0 and kept for the pages that follow ([`HandleCache`]): cookie N
//! means "after the Nth entry", the core's own offsets, so paging through a
//! listing that changes meanwhile neither repeats nor skips within it.
//! Attributes come with the entries (READDIRPLUS), fetched a page at a time
//! and concurrently by the core, so `ls -l` of thousands of runs costs no
//! lookup per entry. The server fills its reply from the iterator and drops
//! what does not fit; the client asks again from the last cookie it got.

use super::convert::fattr;
use super::sessions::Lease;
use super::Shared;
use crate::fs::inodes::Ino;
use crate::fs::FsError;
use nfs3_server::nfs3_types::nfs3::filename3;
use nfs3_server::vfs::{DirEntryPlus, FileHandleU64, NextResult, ReadDirPlusIterator};
use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// Entries whose attributes are fetched at once: about what one 32 KiB
/// READDIRPLUS reply holds.
const PAGE: usize = 128;

pub(super) struct DirIter {
    shared: Arc<Shared>,
    lease: Lease,
    /// The cookie (core offset) of the next page.
    offset: u64,
    len: u64,
    page: VecDeque<DirEntryPlus<FileHandleU64>>,
}

/// The listing of `dir` from `cookie` on: a fresh one at cookie 0, else
/// the one being paged through (or a fresh one, if it was released).
pub(super) async fn open(shared: &Arc<Shared>, dir: Ino, cookie: u64) -> Result<DirIter, FsError> {
    let fs = &shared.fs;
    let lease = match (cookie, shared.dirs.get(dir)) {
        (1.., Some(lease)) => lease,
        (0, _) => shared.dirs.replace(dir, fs.opendir(dir).await?.fh, 0),
        (_, None) => shared.dirs.insert(dir, fs.opendir(dir).await?.fh, 0),
    };
    let len = fs.dir_len(lease.fh).ok_or(FsError::new(libc::EBADF))?;
    Ok(DirIter {
        shared: shared.clone(),
        lease,
        offset: cookie,
        len,
        page: VecDeque::new(),
    })
}

impl ReadDirPlusIterator<FileHandleU64> for DirIter {
    async fn next(&mut self) -> NextResult<DirEntryPlus<FileHandleU64>> {
        loop {
            if let Some(e) = self.page.pop_front() {
                return NextResult::Ok(e);
            }
            if self.offset >= self.len {
                return NextResult::Eof;
            }
            let fs = &self.shared.fs;
            let page = match fs.readdirplus(self.lease.fh, self.offset, PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    return NextResult::Err(super::convert::stat_of(e.errno, super::On::Handle))
                }
            };
            // Entries whose attributes failed are left out of the page; the
            // page still covers PAGE offsets.
            self.offset = (self.offset + PAGE as u64).min(self.len);
            self.page
                .extend(page.into_iter().map(|(cookie, e, entry)| DirEntryPlus {
                    fileid: e.ino,
                    name: filename3::from(e.name.as_bytes().to_vec()),
                    cookie,
                    name_attributes: Some(fattr(&entry.attr)),
                    name_handle: Some(e.ino.into()),
                }));
        }
    }
}
