//! The scheduler of a chunked fetch: which ranged GET of a result file
//! comes next (see the parent module's doc), splitting a segment where a
//! reader waits, read-ahead per reader, where each fetch's bytes go (the
//! cache file or memory), and when to stop.
//!
//! What is subtle:
//! - **Read-ahead follows readers.** Each open reader has a window past
//!   its position that doubles while it reads sequentially (see
//!   `ReadPos::window`); only absent segments inside some window are
//!   fetched speculatively, nearest first, one reader after another. A
//!   file no larger than one window, on disk, is fetched whole instead.
//! - **Stopping.** With no reader left (and the file not one fetched whole
//!   in the background), every fetch is aborted, memory is given back and
//!   the task ends; what is held on disk stays for the next open, which
//!   starts a new task. The decision to end is taken under the readers'
//!   lock, so a reader that opens meanwhile is never left without a task.
//! - **Disk, then memory.** Each fetch to disk first reserves its bytes in
//!   the cache's bound; a file that cannot get them, or whose write finds
//!   the disk full, goes on through memory. A segment that holds bytes on
//!   disk is split where they end, so no segment is partly on each.
//! - **Memory within its share.** Read-ahead into memory starts only when
//!   it fits this file's share of `--max-memory`, after dropping segments
//!   no reader wants; the segment a reader waits for always starts.

use super::file::{CachedFile, Fill, ReadPos, Seg, READ_AHEAD_MAX};
use super::DataCache;
use crate::api::{RangeOutcome, Sink};
use crate::fs::cache::lock;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::task::JoinSet;

mod budget;

/// What the scheduler knows of one segment.
#[derive(Clone, Copy, PartialEq)]
enum Chunk {
    Absent,
    Fetching { urgent: bool },
    Present,
}

/// How a chunked fetch ended.
pub(super) enum FetchEnd {
    /// Every byte is in the cache file.
    Done,
    /// No reader is left (or the file is read through memory and nobody
    /// reads it): what the cache file holds stays, memory is given back.
    Stopped,
    /// The server does not serve ranges: fetch the file whole.
    RangesRefused,
}

/// Split an absent segment only this far past its held bytes.
const SPLIT_MIN: u64 = 256 << 10;
const SPLIT_ALIGN: u64 = 64 << 10;
/// Overtake a fetch under way only this far past the bytes it has brought.
/// The kernel reads ahead of a sequential reader by at most two windows of
/// `max_readahead` (1 MiB), which start before the next chunk does, so a
/// sequential reader never overtakes the fetch ahead of it; a jump does.
const OVERTAKE_MIN: u64 = 2 << 20;
/// How one ranged GET ended.
type Fetched = Result<RangeOutcome, crate::api::Error>;
type Fetches = JoinSet<Fetched>;

/// The state of one chunked fetch.
struct Scheduler<'a> {
    cache: &'a DataCache,
    cf: &'a Arc<CachedFile>,
    size: u64,
    chunks: BTreeMap<u64, Chunk>,
    /// Segments not yet present.
    remaining: usize,
    tasks: Fetches,
    running: HashMap<tokio::task::Id, (u64, tokio::task::AbortHandle)>,
    /// Offsets readers wait for, in the order they asked.
    urgent: VecDeque<u64>,
    /// The open readers, as of the last look.
    readers: Vec<ReadPos>,
    /// Memory segments counted against the budget, by start: their length.
    mem: BTreeMap<u64, u64>,
    /// Disk segments whose bytes are reserved in the cache's bound, by
    /// start: up to where (a fetch dropped and started again, or split,
    /// reserves nothing twice).
    disk: BTreeMap<u64, u64>,
}

impl DataCache {
    /// The scheduler of a chunked fetch: keeps up to `streams` ranged GETs
    /// in flight, the bytes readers wait for first, then their read-ahead.
    ///
    /// A reader waiting for a byte far into a segment (absent, or being
    /// read ahead from its start) splits it there (at a 64 KiB boundary)
    /// so that its fetch starts at that byte; the part before it is fetched
    /// later like any other segment, from its last held byte.
    pub(super) async fn fetch_chunks(
        &self,
        cf: &Arc<CachedFile>,
        size: u64,
    ) -> Result<FetchEnd, crate::api::Error> {
        let chunks: BTreeMap<u64, Chunk> = match &cf.state.borrow().fill {
            Fill::Chunks { segs } => segs
                .iter()
                .map(|(&k, s)| {
                    let done = !s.mem && k + s.have >= s.end;
                    (k, if done { Chunk::Present } else { Chunk::Absent })
                })
                .collect(),
            Fill::Prefix(_) => BTreeMap::new(),
        };
        let mut s = Scheduler {
            cache: self,
            cf,
            size,
            remaining: chunks.values().filter(|c| **c != Chunk::Present).count(),
            chunks,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            urgent: VecDeque::new(),
            readers: Vec::new(),
            mem: BTreeMap::new(),
            disk: BTreeMap::new(),
        };
        let end = s.run().await;
        s.tasks.shutdown().await;
        s.release_memory();
        end
    }

    /// Where a fetch for a reader waiting at `at` in the segment `seg`
    /// should start: `seg` itself when `at` is close to its held bytes,
    /// else a new segment split off at `at` (rounded down to 64 KiB).
    fn split_for(&self, cf: &CachedFile, seg: u64, at: u64) -> u64 {
        let mut target = seg;
        cf.state.send_if_modified(|s| {
            let Fill::Chunks { segs } = &mut s.fill else {
                return false;
            };
            let Some(cur) = segs.get(&seg).copied() else {
                return false;
            };
            let Some(cut) = split_point(seg, cur, at, SPLIT_MIN) else {
                return false;
            };
            segs.insert(seg, Seg { end: cut, ..cur });
            segs.insert(cut, Seg::new(cur.end, cur.mem));
            target = cut;
            true
        });
        target
    }
}

/// Where to split the segment at `seg` for a reader waiting at `at`: only
/// if `at` is well past the bytes held (or being fetched) at its start.
fn split_point(seg: u64, cur: Seg, at: u64, min: u64) -> Option<u64> {
    let cut = at - at % SPLIT_ALIGN;
    (cut >= seg + cur.have + min && cut < cur.end).then_some(cut)
}

impl Scheduler<'_> {
    async fn run(&mut self) -> Result<FetchEnd, crate::api::Error> {
        loop {
            if self.look() && !self.background() {
                if let Some(end) = self.stop().await {
                    return Ok(end);
                }
                continue;
            }
            self.serve_urgent();
            self.read_ahead();
            self.trim_memory();
            if self.remaining == 0 && !self.cf.in_memory() {
                return Ok(FetchEnd::Done);
            }
            tokio::select! {
                joined = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    if let Some(end) = self.joined(joined).await {
                        return end;
                    }
                }
                _ = self.cf.kick.notified() => {}
                _ = self.cache.memory.pressure.notified(), if !self.mem.is_empty() => {}
            }
        }
    }

    /// Take the readers' wants and positions; whether no reader is left.
    /// The positions are read with the wants: a reader that moved has its
    /// want taken in the same step, served before read-ahead.
    fn look(&mut self) -> bool {
        let mut wants = lock(&self.cf.wants);
        self.urgent.extend(wants.offsets.drain(..));
        self.readers = wants.readers.values().copied().collect();
        self.readers.is_empty()
    }

    /// A file fetched whole whether or not anyone reads it: small, on disk.
    fn background(&self) -> bool {
        !self.cf.in_memory() && self.size <= READ_AHEAD_MAX
    }

    /// Nobody reads: abort every fetch, give memory back, and end unless a
    /// reader came meanwhile (`None`: go on).
    async fn stop(&mut self) -> Option<FetchEnd> {
        for (_, (seg, handle)) in self.running.drain() {
            handle.abort();
            self.chunks.insert(seg, Chunk::Absent);
        }
        self.tasks.shutdown().await;
        self.urgent.clear();
        self.release_memory();
        let mut wants = lock(&self.cf.wants);
        if !wants.readers.is_empty() {
            return None;
        }
        wants.fetching = false;
        wants.offsets.clear();
        Some(FetchEnd::Stopped)
    }

    /// The segment at `seg`: its end, held bytes and where they are.
    fn seg(&self, seg: u64) -> Option<Seg> {
        match &self.cf.state.borrow().fill {
            Fill::Chunks { segs } => segs.get(&seg).copied(),
            Fill::Prefix(_) => None,
        }
    }

    /// Start fetching what the segment at `seg` lacks, into the cache file
    /// (once its bytes are reserved) or memory; when it lacks nothing (a
    /// dropped fetch that had in fact just finished), mark it present.
    fn start(&mut self, seg: u64, urgent: bool) {
        let Some(cur) = self.seg(seg).filter(|s| seg + s.have < s.end) else {
            self.present(seg);
            return;
        };
        let (from, to) = (seg + cur.have, cur.end);
        let mut mem = self.cf.in_memory();
        let reserved = self.disk.get(&seg).copied().unwrap_or(from).max(from);
        if !mem && reserved < to {
            if self.cache.reserve_disk(self.cf, to - reserved) {
                self.disk.insert(seg, to);
            } else {
                self.cache
                    .to_memory(self.cf, "the cache is full of files in use");
                mem = true;
            }
        }
        // Bytes held elsewhere than where the rest goes: split where they
        // end, so that each segment lies in one place.
        let seg = if cur.have > 0 && cur.mem != mem {
            self.split_held(seg, from, mem);
            from
        } else {
            if cur.have == 0 && cur.mem != mem {
                self.set_mem(seg, mem);
            }
            seg
        };
        if mem && !self.mem.contains_key(&seg) {
            self.count_mem(seg, to - seg);
        }
        let (client, cf, size) = (self.cache.client.clone(), self.cf.clone(), self.size);
        let handle = self.tasks.spawn(async move {
            if mem {
                let keep =
                    |at: u64, parts: &[bytes::Bytes]| cf.landed_in_memory(seg, to, at, parts);
                let sink = Sink::Memory(&keep);
                client
                    .download_range(&cf.fref, sink, &|_| {}, (from, to), size)
                    .await
            } else {
                let Some(out) = &cf.file else {
                    return Ok(RangeOutcome::Unsupported);
                };
                let report = |upto: u64| cf.landed(seg, upto);
                let sink = Sink::File {
                    out,
                    written: Some(&cf.written),
                };
                client
                    .download_range(&cf.fref, sink, &report, (from, to), size)
                    .await
            }
        });
        self.running.insert(handle.id(), (seg, handle));
        self.chunks.insert(seg, Chunk::Fetching { urgent });
    }

    /// Mark the segment at `seg` present.
    fn present(&mut self, seg: u64) {
        if self.chunks.insert(seg, Chunk::Present) != Some(Chunk::Present) {
            self.remaining -= 1;
        }
    }

    /// Split the segment at `seg` where its held bytes end (`at`): the
    /// first part is complete, the rest (absent) goes to memory or disk.
    fn split_held(&mut self, seg: u64, at: u64, mem: bool) {
        self.cf.state.send_modify(|s| {
            if let Fill::Chunks { segs } = &mut s.fill {
                if let Some(cur) = segs.get(&seg).copied() {
                    segs.insert(seg, Seg { end: at, ..cur });
                    segs.insert(at, Seg::new(cur.end, mem));
                }
            }
        });
        if let Some(len) = self.mem.get_mut(&seg) {
            let old = std::mem::replace(len, at - seg);
            self.cache.memory.give(old - (at - seg), false);
        }
        self.chunks.insert(at, Chunk::Absent);
        self.remaining += 1;
        self.present(seg);
    }

    /// Where an empty segment's bytes will be held.
    fn set_mem(&self, seg: u64, mem: bool) {
        self.cf.state.send_if_modified(|s| match &mut s.fill {
            Fill::Chunks { segs } => match segs.get_mut(&seg) {
                Some(sg) if sg.have == 0 && sg.mem != mem => {
                    sg.mem = mem;
                    true
                }
                _ => false,
            },
            Fill::Prefix(_) => false,
        });
    }

    /// Start the fetches readers wait for, in the order they asked, taking
    /// a speculative fetch's place when every stream is busy.
    fn serve_urgent(&mut self) {
        while let Some(&at) = self.urgent.front() {
            let Some((&seg, &state)) = self.chunks.range(..=at).next_back() else {
                self.urgent.pop_front();
                continue;
            };
            match state {
                Chunk::Present | Chunk::Fetching { urgent: true } => {
                    self.urgent.pop_front();
                    continue;
                }
                // A fetch read ahead from the start of the reader's segment
                // that is still far from the reader gives way: the reader's
                // bytes are fetched from where it reads, and the rest of the
                // segment resumes later from its last byte.
                Chunk::Fetching { urgent: false } if self.far_from(seg, at) => {
                    self.drop_fetch(seg);
                }
                Chunk::Fetching { urgent: false } => {
                    self.chunks.insert(seg, Chunk::Fetching { urgent: true });
                    self.urgent.pop_front();
                    continue;
                }
                Chunk::Absent => {}
            }
            if self.running.len() >= self.cache.plan.streams && !self.drop_speculative(at) {
                break;
            }
            self.urgent.pop_front();
            let target = self.cache.split_for(self.cf, seg, at);
            if target != seg {
                self.chunks.insert(target, Chunk::Absent);
                self.remaining += 1;
                // What was counted for the whole segment is split too.
                if let Some(len) = self.mem.get_mut(&seg) {
                    let old = std::mem::replace(len, target - seg);
                    self.cache.memory.give(old - (target - seg), false);
                }
                if let Some(upto) = self.disk.get_mut(&seg) {
                    if *upto > target {
                        let end = std::mem::replace(upto, target);
                        self.disk.insert(target, end);
                    }
                }
            }
            if self.cf.in_memory() {
                // The reader's bytes always come; room is made if it can be.
                let len = self.seg(target).map_or(0, |s| s.end - target);
                self.make_room(len);
            }
            self.start(target, true);
        }
    }

    /// Drop the speculative fetch furthest after a reader at `at` (it
    /// resumes later from its last byte); false if every fetch is urgent.
    fn drop_speculative(&mut self, at: u64) -> bool {
        let size = self.size;
        let victim = self
            .running
            .values()
            .map(|(s, _)| *s)
            .filter(|s| self.chunks[s] == Chunk::Fetching { urgent: false })
            .max_by_key(|s| (s + size - at) % size);
        let Some(seg) = victim else {
            return false;
        };
        self.drop_fetch(seg);
        true
    }

    /// Abort the fetch of the segment at `seg`; it is absent again, and its
    /// held bytes stay (a later fetch starts after them).
    fn drop_fetch(&mut self, seg: u64) {
        self.running.retain(|_, (s, handle)| {
            if *s == seg {
                handle.abort();
            }
            *s != seg
        });
        self.chunks.insert(seg, Chunk::Absent);
    }

    /// Whether a reader at `at` is so far past what the fetch of the
    /// segment at `seg` has brought that waiting for it would be long.
    fn far_from(&self, seg: u64, at: u64) -> bool {
        self.seg(seg)
            .is_some_and(|cur| split_point(seg, cur, at, OVERTAKE_MIN).is_some())
    }

    /// The spans read-ahead covers: each reader's window past its
    /// position; for a file fetched whole, all of it from the first
    /// reader's position on, wrapping round.
    fn spans(&self) -> Vec<(u64, u64)> {
        if self.background() {
            let from = self.readers.first().map_or(0, |r| r.cursor.min(self.size));
            return vec![(from, self.size), (0, from)];
        }
        self.readers
            .iter()
            .map(|r| {
                (
                    r.cursor.min(self.size),
                    (r.cursor + r.window()).min(self.size),
                )
            })
            .filter(|(a, b)| a < b)
            .collect()
    }

    /// Read-ahead: the absent segments in the readers' windows, nearest
    /// first, one reader after another, as many as there are free streams
    /// (and, into memory, as fit this file's share).
    fn read_ahead(&mut self) {
        let free = self.cache.plan.streams.saturating_sub(self.running.len());
        if free == 0 {
            return;
        }
        let lists: Vec<Vec<u64>> = self
            .spans()
            .into_iter()
            .map(|(a, b)| {
                let first = self.chunks.range(..=a).next_back().map_or(0, |(s, _)| *s);
                self.chunks
                    .range(first..b)
                    .filter(|(_, c)| **c == Chunk::Absent)
                    .map(|(s, _)| *s)
                    .collect()
            })
            .collect();
        let mut order: Vec<u64> = Vec::new();
        let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for l in &lists {
                if let Some(&s) = l.get(i) {
                    if !order.contains(&s) {
                        order.push(s);
                    }
                }
            }
            if order.len() >= free {
                break;
            }
        }
        for seg in order.into_iter().take(free) {
            if self.cf.in_memory() && !self.mem.contains_key(&seg) {
                let len = self.seg(seg).map_or(0, |s| s.end - seg);
                if !self.make_room(len) {
                    break;
                }
            }
            self.start(seg, false);
        }
    }

    /// A fetch ended: `Some` with the outcome of the whole file when it
    /// ends the file (ranges refused, or a chunk failed for good).
    async fn joined(
        &mut self,
        joined: Option<Result<(tokio::task::Id, Fetched), tokio::task::JoinError>>,
    ) -> Option<Result<FetchEnd, crate::api::Error>> {
        let (id, result) = match joined? {
            Ok((id, r)) => (id, Ok(r)),
            Err(e) => (e.id(), Err(e)),
        };
        // A dropped fetch was already taken out of `running`.
        let (seg, _) = self.running.remove(&id)?;
        let end = match result {
            Ok(Ok(RangeOutcome::Done)) => {
                // Every byte it fetched is held, unless a stale fetch got in
                // the way in memory: then what is missing is fetched again.
                match self.seg(seg) {
                    Some(s) if seg + s.have >= s.end => self.present(seg),
                    _ => {
                        self.chunks.insert(seg, Chunk::Absent);
                    }
                }
                return None;
            }
            Ok(Ok(RangeOutcome::Unsupported)) if self.cf.in_memory() => {
                Err(crate::api::Error::Protocol {
                    op: self.cf.fref.operation(),
                    detail: "the server does not serve ranges of this file, \
                             and it does not fit the disk cache"
                        .into(),
                })
            }
            Ok(Ok(RangeOutcome::Unsupported)) => Ok(FetchEnd::RangesRefused),
            // The disk is full: this segment and the rest go to memory.
            Ok(Err(e)) if super::room::is_disk_full_error(&e) => {
                self.cache.note_disk_full(&self.cf.fref);
                self.cache.to_memory(self.cf, "the disk is full");
                self.chunks.insert(seg, Chunk::Absent);
                return None;
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(crate::api::Error::Protocol {
                op: self.cf.fref.operation(),
                detail: format!("a chunk fetch ended abnormally: {e}"),
            }),
        };
        self.tasks.shutdown().await;
        Some(end)
    }
}
