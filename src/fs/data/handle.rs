//! One open of a result file: a reader of a [`CachedFile`].
//!
//! What is subtle: the reader's life is the handle's. Dropping the last
//! clone of it (the adapter's release) removes the reader and wakes the
//! scheduler, which stops fetching ahead once no reader is left.

use super::file::CachedFile;
use super::FileBytes;
use crate::fs::cache::lock;
use crate::fs::FsError;
use std::sync::Arc;

/// One open of a result file: a reader of its [`CachedFile`], with the
/// size it was opened with. Dropping it (the last clone of a handle)
/// closes the reader, which lets the scheduler stop fetching ahead.
pub struct DataHandle {
    cf: Arc<CachedFile>,
    reader: u64,
    expected: u64,
}

impl DataHandle {
    pub(super) fn new(cf: Arc<CachedFile>, reader: u64, expected: u64) -> DataHandle {
        DataHandle {
            cf,
            reader,
            expected,
        }
    }

    /// The file it reads.
    pub fn file(&self) -> &Arc<CachedFile> {
        &self.cf
    }

    /// The bytes at `offset` if they are all here (or the read's error),
    /// without waiting: `None` when some have yet to arrive.
    ///
    /// The copy runs on the caller's thread; on an async worker,
    /// [`DataHandle::wait_readable`] then this on a blocking thread is the
    /// way.
    pub fn read_now(&self, offset: u64, len: u32) -> Option<Result<FileBytes, FsError>> {
        self.cf.read_now(self.reader, offset, len, self.expected)
    }

    /// Wait until [`DataHandle::read_now`] of the same range has an answer.
    pub async fn wait_readable(&self, offset: u64, len: u32) -> Result<(), FsError> {
        self.cf
            .wait_readable(self.reader, offset, len, self.expected)
            .await
    }

    /// Read `len` bytes at `offset`, waiting for them.
    pub async fn read(&self, offset: u64, len: u32) -> Result<FileBytes, FsError> {
        loop {
            if let Some(r) = self.read_now(offset, len) {
                return r;
            }
            self.wait_readable(offset, len).await?;
        }
    }
}

impl Drop for DataHandle {
    fn drop(&mut self) {
        lock(&self.cf.wants).readers.remove(&self.reader);
        self.cf.kick.notify_one();
    }
}
