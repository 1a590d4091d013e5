//! One result file in the cache: which of its bytes are present and where
//! (the cache file, or memory), how its download ends, who reads it, and
//! reading it.
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
//! - Each open is a reader with its own position and read-ahead window
//!   (see `ReadPos`): the scheduler fetches what readers will want next,
//!   and stops fetching what nobody asked for once the last one closes.
//! - A segment's held bytes are in the cache file or in memory (`Seg::mem`),
//!   never both; memory ones may be dropped again (their `have` falls to
//!   0), so a reader that saw a byte present and then finds it gone asks
//!   for it again rather than reading a hole.
//! - A download that ends at another size than the file was opened with
//!   fails every read with EIO: a file never silently shrinks or grows.

use super::mapped::{read_at_uninit, Mapped};
use super::memory::MemBytes;
use super::FileBytes;
use crate::api::{FileRef, Written};
use crate::fs::cache::lock;
use crate::fs::FsError;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// The most a reader's read-ahead window grows to. Default 64 MiB: twice
/// what four streams of 8 MiB chunks have in flight, so a sequential
/// reader keeps every stream busy at full speed, while a reader that stops
/// early (a `head`, pandas' `nrows=`) has cost at most this much more than
/// it read. A file no larger than this is also completed in the background
/// once opened (on disk), since that is cheap and serves the next open.
pub const READ_AHEAD_MAX: u64 = 64 << 20;

/// How far a read may land from where the last one ended and still count
/// as sequential: the kernel has up to two 1 MiB read-ahead requests in
/// flight, which may arrive in either order.
const SEQ_SLACK: u64 = 4 << 20;

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
    /// Fetched whole, in one stream, into the cache file: this many leading
    /// bytes.
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
    /// Its held bytes are in memory, not in the cache file.
    pub(super) mem: bool,
}

impl Seg {
    pub(super) fn new(end: u64, mem: bool) -> Seg {
        Seg { end, have: 0, mem }
    }
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

    /// The bytes held in the cache file (not in memory).
    pub(super) fn on_disk(&self) -> u64 {
        match self {
            Fill::Prefix(p) => *p,
            Fill::Chunks { segs } => segs.values().filter(|s| !s.mem).map(|s| s.have).sum(),
        }
    }
}

/// How far one download has come.
#[derive(Debug, Clone)]
pub(super) enum End {
    /// Not complete (bytes may be arriving, or wait for a reader to ask).
    Running,
    /// The whole file, of this exact size, is in the cache file.
    Done { size: u64 },
    /// The download failed; nothing more will arrive. Every read gets this.
    Failed(FsError),
}

#[derive(Debug, Clone)]
pub(super) struct State {
    pub(super) fill: Fill,
    pub(super) end: End,
}

/// Where one reader (an open) reads, for read-ahead.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReadPos {
    /// Where its reads have got to (the end of the furthest of its latest
    /// sequential run).
    pub(super) cursor: u64,
    /// Where its current sequential run began.
    seq_from: u64,
    /// It has read at all.
    started: bool,
    /// The chunk its window reached when the scheduler was last woken.
    kicked: u64,
}

impl ReadPos {
    /// How far past its cursor to fetch ahead: twice what it has read in
    /// one sequential run, so the window doubles as the run goes on (one
    /// chunk, two, four...), up to [`READ_AHEAD_MAX`]. A first read or a
    /// jump has none: it fetches its own chunk only.
    pub(super) fn window(&self) -> u64 {
        (2 * (self.cursor - self.seq_from)).min(READ_AHEAD_MAX)
    }

    /// A read of `offset..end`.
    fn moved(&mut self, offset: u64, end: u64) {
        let sequential =
            self.started && offset + SEQ_SLACK >= self.cursor && offset <= self.cursor + SEQ_SLACK;
        if sequential {
            self.cursor = self.cursor.max(end);
        } else {
            self.seq_from = offset;
            self.cursor = end;
        }
        self.started = true;
    }
}

/// What readers ask of the scheduler, and who reads.
#[derive(Default)]
pub(super) struct Wants {
    /// Offsets readers are waiting for, oldest first.
    pub(super) offsets: VecDeque<u64>,
    /// The open readers, by id.
    pub(super) readers: HashMap<u64, ReadPos>,
    next_reader: u64,
    /// A task is fetching the file (or ready to, when readers ask).
    pub(super) fetching: bool,
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
    /// The cache file; `None` for a file read through memory only.
    pub(super) file: Option<std::fs::File>,
    pub(super) state: watch::Sender<State>,
    pub(super) wants: Mutex<Wants>,
    /// Wakes the scheduler when a reader waits for a chunk, moves its
    /// window into a new one, or closes.
    pub(super) kick: Notify,
    /// The checksum of the bytes the download wrote, for keeping the file.
    pub(super) written: Arc<Written>,
    /// The bytes of segments held in memory.
    pub(super) mem: Mutex<MemBytes>,
    /// New fetches go to memory: the file does not fit the disk cache.
    pub(super) in_memory: AtomicBool,
    /// A finished run's file: kept for later mounts once complete.
    pub(super) finished: bool,
    /// The chunk size, for waking the scheduler once a chunk.
    pub(super) chunk: u64,
    /// The size a HEAD gave, if any.
    pub(super) size_hint: Option<u64>,
}

impl CachedFile {
    /// A file in `state`, with its cache file (if on disk) at `path`.
    pub(super) fn new(
        fref: FileRef,
        file: Option<(std::fs::File, PathBuf)>,
        state: State,
        finished: bool,
        chunk: u64,
    ) -> CachedFile {
        let in_memory = file.is_none();
        let (file, path) = match file {
            Some((f, p)) => (Some(f), p),
            None => (None, PathBuf::new()),
        };
        CachedFile {
            fref,
            path: Mutex::new(path),
            kept: AtomicBool::new(false),
            file,
            state: watch::Sender::new(state),
            wants: Mutex::new(Wants::default()),
            kick: Notify::new(),
            written: Arc::default(),
            mem: Mutex::default(),
            in_memory: AtomicBool::new(in_memory),
            finished,
            chunk: chunk.max(1),
            size_hint: None,
        }
    }

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

    /// Whether it is fetched into a cache file (not through memory).
    pub fn on_disk(&self) -> bool {
        self.file.is_some() && !self.in_memory()
    }

    /// Whether new fetches of this file go to memory.
    pub(super) fn in_memory(&self) -> bool {
        self.in_memory.load(Ordering::Relaxed)
    }

    /// Whether a task should be fetching it: not complete, not failed.
    fn needs_fetching(&self) -> bool {
        matches!(self.state.borrow().end, End::Running)
    }

    /// Register a reader; `true` when no task is fetching the file and the
    /// caller must start one.
    pub(super) fn add_reader(&self) -> (u64, bool) {
        let mut w = lock(&self.wants);
        let id = w.next_reader;
        w.next_reader += 1;
        w.readers.insert(id, ReadPos::default());
        let start = !w.fetching && self.needs_fetching();
        if start {
            w.fetching = true;
        }
        (id, start)
    }

    /// Read `len` bytes at `offset` for `reader`, waiting only until they
    /// have arrived.
    ///
    /// `expected` is the size the file was opened with (what `stat` said): a
    /// download that ends at another size fails every read with EIO rather
    /// than letting a reader see a file that silently shrank or grew.
    pub(super) fn read_now(
        &self,
        reader: u64,
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
                self.ask(reader, at, offset, end);
                return None;
            }
            Err(e) => return Some(Err(e)),
        };
        self.moved(reader, offset, end);
        if ready <= offset {
            return Some(Ok(FileBytes::from(Vec::new())));
        }
        // None: memory bytes dropped since the check; the wait asks again.
        self.copy_out(offset, ready - offset)
    }

    /// Wait until [`CachedFile::read_now`] of the same range has an answer,
    /// asking the scheduler for the first missing byte.
    pub(super) async fn wait_readable(
        &self,
        reader: u64,
        offset: u64,
        len: u32,
        expected: u64,
    ) -> Result<(), FsError> {
        let end = offset.saturating_add(len as u64).min(expected);
        let mut rx = self.state.subscribe();
        let mut asked = None;
        loop {
            rx.borrow_and_update();
            match self.readiness(offset, end, expected)? {
                Ready::Upto(_) => return Ok(()),
                Ready::Missing(at) if asked != Some(at) => {
                    asked = Some(at);
                    self.ask(reader, at, offset, end);
                }
                Ready::Missing(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(FsError::new(libc::EIO));
            }
        }
    }

    /// A reader waits for the byte at `at` (none to ask for in a file
    /// fetched whole) and reads `offset..end`. The want is queued and the
    /// reader's position moved under one lock, under which the scheduler
    /// reads both: it never reads ahead from the new position (from the
    /// start of the reader's chunk) before it has the want. Asking twice
    /// for one byte is harmless: the scheduler skips a want whose bytes are
    /// already being fetched.
    fn ask(&self, reader: u64, at: Option<u64>, offset: u64, end: u64) {
        let mut wants = lock(&self.wants);
        if let Some(at) = at {
            wants.offsets.push_back(at);
        }
        if let Some(pos) = wants.readers.get_mut(&reader) {
            pos.moved(offset, end);
        }
        drop(wants);
        if at.is_some() {
            self.kick.notify_one();
        }
    }

    /// A reader read `offset..end`: move its position, and wake the
    /// scheduler when its window has reached a new chunk.
    fn moved(&self, reader: u64, offset: u64, end: u64) {
        let mut wants = lock(&self.wants);
        let Some(pos) = wants.readers.get_mut(&reader) else {
            return;
        };
        pos.moved(offset, end);
        let reach = (pos.cursor + pos.window()) / self.chunk;
        let kick = reach != pos.kicked;
        pos.kicked = reach;
        drop(wants);
        if kick {
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

    /// `len` present bytes at `offset`; `None` if memory bytes among them
    /// were dropped since they were seen.
    fn copy_out(&self, offset: u64, len: u64) -> Option<Result<FileBytes, FsError>> {
        // Where each part lies, read from the state and let go of before
        // the memory store is locked (see memory.rs on lock order).
        let parts: Vec<(u64, u64, bool)> = match &self.state.borrow().fill {
            Fill::Chunks { segs } => {
                let first = segs.range(..=offset).next_back().map_or(0, |(s, _)| *s);
                segs.range(first..offset + len)
                    .map(|(&s, seg)| (s, seg.end, seg.mem))
                    .collect()
            }
            Fill::Prefix(_) => Vec::new(),
        };
        if !parts.iter().any(|p| p.2) {
            return Some(self.copy_disk(offset, len as usize));
        }
        let mut out = Vec::with_capacity(len as usize);
        let end = offset + len;
        for (seg, seg_end, mem) in parts {
            let (from, to) = (offset.max(seg), end.min(seg_end));
            if mem {
                let slice = lock(&self.mem).read(seg, from, to - from)?;
                if from == offset && to == end {
                    return Some(Ok(FileBytes::shared(slice)));
                }
                out.extend_from_slice(slice.bytes());
                continue;
            }
            let disk = match self.copy_disk(from, (to - from) as usize) {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            out.extend_from_slice(&disk);
        }
        Some(Ok(FileBytes::from(out)))
    }

    /// `len` bytes of the cache file at `offset`: mapped when the kernel
    /// lets us (no copy in user space), else read.
    fn copy_disk(&self, offset: u64, len: usize) -> Result<FileBytes, FsError> {
        let Some(file) = &self.file else {
            return Err(FsError::with(
                libc::EIO,
                "no cache file for bytes said to be on disk",
            ));
        };
        match Mapped::new(file, offset, len) {
            Ok(m) => Ok(FileBytes::mapped(m)),
            Err(e) => {
                tracing::debug!(error = %e, "mmap of the cache file failed: reading it");
                read_at_uninit(file, offset, len)
                    .map(FileBytes::from)
                    .map_err(|e| FsError::io("reading the cache file", e))
            }
        }
    }

    /// The cache file of a complete file, for passthrough opens.
    pub fn file(&self) -> Option<&std::fs::File> {
        self.file.as_ref()
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

    /// Keep bytes received for the memory segment at `seg` (see
    /// [`MemBytes::put`]) and publish what it holds.
    pub(super) fn landed_in_memory(&self, seg: u64, end: u64, at: u64, parts: &[bytes::Bytes]) {
        let held = lock(&self.mem).put(seg, end, at, parts);
        self.landed(seg, seg + held);
    }

    /// Forget the memory bytes of the segment at `seg`: absent again.
    pub(super) fn drop_memory(&self, seg: u64) {
        self.state.send_if_modified(|s| match &mut s.fill {
            Fill::Chunks { segs } => match segs.get_mut(&seg) {
                Some(sg) if sg.mem && sg.have > 0 => {
                    sg.have = 0;
                    true
                }
                _ => false,
            },
            Fill::Prefix(_) => false,
        });
        lock(&self.mem).remove(seg);
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
        if self.file.is_some() && !self.kept.load(Ordering::Relaxed) {
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
                .map(|&(start, end, have)| {
                    (
                        start,
                        Seg {
                            end,
                            have,
                            mem: false,
                        },
                    )
                })
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
