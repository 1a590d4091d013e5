//! One result file in the cache: which of its bytes are present, how its
//! download ends, and reading it.
//!
//! What is subtle:
//! - The state (bytes held at the start of each segment, or the prefix of a
//!   file fetched whole, and how the download ended) is published on a
//!   `watch` channel; a read waits until its range is present, so within a
//!   chunk bytes are readable as they land.
//! - A read is a check and a copy ([`CachedFile::read_now`]) or a wait
//!   ([`CachedFile::wait_readable`]): the adapter checks on its FUSE
//!   thread, and only a reader ahead of the download waits on the runtime;
//!   the copy never runs on an async worker.
//! - A download that ends at another size than the file was opened with
//!   fails every read with EIO: a file never silently shrinks or grows.

use super::mapped::{read_at_uninit, Mapped};
use super::FileBytes;
use crate::api::{FileRef, Written};
use crate::fs::cache::lock;
use crate::fs::FsError;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// How much of a range can be read now.
enum Ready {
    /// Up to this offset (the range's end, or the file's).
    Upto(u64),
    /// Not yet: the first absent byte to ask for (`None`: nothing to ask,
    /// the file is fetched whole and the prefix will come).
    Missing(Option<u64>),
}

/// Which bytes of a cache file are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fill {
    /// Fetched whole, in one stream: this many leading bytes.
    Prefix(u64),
    /// Fetched in segments (chunks, some split where a reader wanted a byte
    /// far into one), by start offset, covering the file: `have` bytes of
    /// each are present from its start.
    Chunks { segs: BTreeMap<u64, Seg> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seg {
    pub(super) end: u64,
    pub(super) have: u64,
}

impl Fill {
    /// The first byte of `off..end` (non-empty) that is not present: `None`
    /// when the whole range is; `Some(None)` when it is missing from a file
    /// fetched whole (there is nothing to ask for).
    pub(super) fn missing(&self, off: u64, end: u64) -> Option<Option<u64>> {
        match self {
            Fill::Prefix(p) => (*p < end).then_some(None),
            Fill::Chunks { segs } => {
                let first = segs.range(..=off).next_back().map_or(0, |(s, _)| *s);
                segs.range(first..end).find_map(|(&start, seg)| {
                    let held = start + seg.have;
                    (held < end.min(seg.end)).then_some(Some(held.max(off)))
                })
            }
        }
    }
}

/// How far one download has come.
#[derive(Debug, Clone)]
pub(super) enum End {
    /// Still arriving.
    Running,
    /// The whole file, of this exact size, is in the file.
    Done { size: u64 },
    /// The download failed; nothing more will arrive. Every read gets this.
    Failed(FsError),
}

#[derive(Debug, Clone)]
pub(super) struct State {
    pub(super) fill: Fill,
    pub(super) end: End,
}

/// What readers ask of the scheduler.
#[derive(Default)]
pub(super) struct Wants {
    /// Offsets readers are waiting for, oldest first.
    pub(super) offsets: VecDeque<u64>,
}

/// One result file in the cache.
pub struct CachedFile {
    /// Which result file this is.
    pub fref: FileRef,
    /// Where the file is: the mount's own folder while it downloads (and
    /// for files of unfinished runs), the store once kept.
    pub(super) path: Mutex<PathBuf>,
    /// In the store: outlives this mount, so it is not deleted on drop.
    pub(super) kept: AtomicBool,
    pub(super) file: std::fs::File,
    pub(super) state: watch::Sender<State>,
    pub(super) wants: Mutex<Wants>,
    /// Where the latest read ended: where read-ahead continues.
    pub(super) cursor: AtomicU64,
    /// Wakes the scheduler when a reader waits for a chunk.
    pub(super) kick: Notify,
    /// The checksum of the bytes the download wrote, for keeping the file.
    pub(super) written: Arc<Written>,
}

impl CachedFile {
    /// Wait for the download to end and return the exact size.
    pub async fn size(&self) -> Result<u64, FsError> {
        let mut rx = self.state.subscribe();
        loop {
            match &rx.borrow_and_update().end {
                End::Done { size } => return Ok(*size),
                End::Failed(e) => return Err(e.clone()),
                End::Running => {}
            }
            if rx.changed().await.is_err() {
                return Err(FsError::new(libc::EIO));
            }
        }
    }

    /// The size if the download is complete.
    pub fn complete_size(&self) -> Option<u64> {
        match self.state.borrow().end {
            End::Done { size } => Some(size),
            _ => None,
        }
    }

    pub(super) fn failed(&self) -> bool {
        matches!(self.state.borrow().end, End::Failed(_))
    }

    /// Read `len` bytes at `offset`, waiting only until they have arrived.
    ///
    /// `expected` is the size the file was opened with (what `stat` said): a
    /// download that ends at another size fails every read with EIO rather
    /// than letting a reader see a file that silently shrank or grew.
    ///
    /// The copy out of the cache file runs on the caller's thread; on an
    /// async worker, [`CachedFile::wait_readable`] then
    /// [`CachedFile::read_now`] on a blocking thread is the way.
    pub async fn read(&self, offset: u64, len: u32, expected: u64) -> Result<FileBytes, FsError> {
        loop {
            if let Some(r) = self.read_now(offset, len, expected) {
                return r;
            }
            self.wait_readable(offset, len, expected).await?;
        }
    }

    /// The bytes at `offset` if they are all here (or the read's error),
    /// without waiting: `None` when some have yet to arrive.
    pub fn read_now(
        &self,
        offset: u64,
        len: u32,
        expected: u64,
    ) -> Option<Result<FileBytes, FsError>> {
        let end = offset.saturating_add(len as u64).min(expected);
        let ready = match self.readiness(offset, end, expected) {
            Ok(Ready::Upto(ready)) => ready,
            Ok(Ready::Missing(at)) => {
                // Ask now, before anything else can move the cursor: a
                // scheduler that saw the cursor first would read ahead from
                // here from the start of the chunk, and the reader would
                // wait for all of it.
                self.ask(at, end);
                return None;
            }
            Err(e) => return Some(Err(e)),
        };
        self.cursor.store(end, Ordering::Relaxed);
        if ready <= offset {
            return Some(Ok(FileBytes::from(Vec::new())));
        }
        Some(self.copy_out(offset, (ready - offset) as usize))
    }

    /// Wait until [`CachedFile::read_now`] of the same range has an answer,
    /// asking the scheduler for the first missing byte.
    pub async fn wait_readable(&self, offset: u64, len: u32, expected: u64) -> Result<(), FsError> {
        let end = offset.saturating_add(len as u64).min(expected);
        let mut rx = self.state.subscribe();
        let mut asked = None;
        loop {
            rx.borrow_and_update();
            match self.readiness(offset, end, expected)? {
                Ready::Upto(_) => return Ok(()),
                Ready::Missing(at) if asked != Some(at) => {
                    asked = Some(at);
                    self.ask(at, end);
                }
                Ready::Missing(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(FsError::new(libc::EIO));
            }
        }
    }

    /// A reader waits for the byte at `at` (none to ask for in a file
    /// fetched whole) and will read on from `end`. The want is queued and
    /// the cursor moved under one lock, under which the scheduler reads
    /// both: it never reads ahead from the new cursor (from the start of
    /// the reader's chunk) before it has the want. Asking twice for one
    /// byte is harmless: the scheduler skips a want whose bytes are already
    /// being fetched.
    fn ask(&self, at: Option<u64>, end: u64) {
        let mut wants = lock(&self.wants);
        if let Some(at) = at {
            wants.offsets.push_back(at);
        }
        self.cursor.store(end, Ordering::Relaxed);
        drop(wants);
        if at.is_some() {
            self.kick.notify_one();
        }
    }

    /// How much of `offset..end` can be read now.
    fn readiness(&self, offset: u64, end: u64, expected: u64) -> Result<Ready, FsError> {
        let state = self.state.borrow();
        match (&state.end, &state.fill) {
            (End::Done { size }, _) if *size != expected => Err(FsError::with(
                libc::EIO,
                format!("the server sent {size} bytes for a file it said was {expected} bytes: refusing to serve it"),
            )),
            (End::Done { size }, _) => Ok(Ready::Upto(end.min(*size))),
            (End::Failed(e), _) => Err(e.clone()),
            (End::Running, _) if end <= offset => Ok(Ready::Upto(end)),
            (End::Running, fill) => Ok(match fill.missing(offset, end) {
                None => Ready::Upto(end),
                Some(at) => Ready::Missing(at),
            }),
        }
    }

    /// `len` present bytes at `offset`: mapped when the kernel lets us (no
    /// copy in user space), else read.
    fn copy_out(&self, offset: u64, len: usize) -> Result<FileBytes, FsError> {
        match Mapped::new(&self.file, offset, len) {
            Ok(m) => Ok(FileBytes::mapped(m)),
            Err(e) => {
                tracing::debug!(error = %e, "mmap of the cache file failed: reading it");
                read_at_uninit(&self.file, offset, len)
                    .map(FileBytes::from)
                    .map_err(|e| FsError::io("reading the cache file", e))
            }
        }
    }

    /// The cache file, for passthrough opens of complete files.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// Record that the bytes of the segment at `start` are present up to
    /// file offset `upto` (never past the segment's end: a fetch that was
    /// dropped may still report after its segment was split).
    pub(super) fn landed(&self, start: u64, upto: u64) {
        self.state.send_if_modified(|s| match &mut s.fill {
            Fill::Chunks { segs } => match segs.get_mut(&start) {
                Some(seg) if start + seg.have < upto.min(seg.end) => {
                    seg.have = upto.min(seg.end) - start;
                    true
                }
                _ => false,
            },
            Fill::Prefix(_) => false,
        });
    }

    /// Record that the first `upto` bytes are present (a whole-file fetch).
    pub(super) fn landed_prefix(&self, upto: u64) {
        self.state.send_if_modified(|s| match &mut s.fill {
            Fill::Prefix(p) if *p < upto => {
                *p = upto;
                true
            }
            _ => false,
        });
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        if !self.kept.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&*lock(&self.path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(list: &[(u64, u64, u64)]) -> Fill {
        Fill::Chunks {
            segs: list
                .iter()
                .map(|&(start, end, have)| (start, Seg { end, have }))
                .collect(),
        }
    }

    #[test]
    fn missing_names_the_first_absent_byte_of_a_range() {
        // Three segments: full, half, empty.
        let f = segs(&[(0, 100, 100), (100, 200, 50), (200, 300, 0)]);
        assert_eq!(f.missing(0, 100), None);
        assert_eq!(f.missing(120, 150), None, "inside the held half");
        assert_eq!(f.missing(90, 160), Some(Some(150)));
        assert_eq!(f.missing(170, 180), Some(Some(170)), "past the held bytes");
        assert_eq!(f.missing(0, 300), Some(Some(150)));
        assert_eq!(f.missing(250, 300), Some(Some(250)));
        let p = Fill::Prefix(10);
        assert_eq!(p.missing(0, 10), None);
        assert_eq!(p.missing(5, 11), Some(None));
    }
}
