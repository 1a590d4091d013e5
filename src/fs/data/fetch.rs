//! The scheduler of a chunked fetch: which ranged GET of a result file
//! comes next (see the parent module's doc), and splitting a segment where a
//! reader waits.

use super::file::{CachedFile, Fill, Seg};
use super::DataCache;
use crate::api::RangeOutcome;
use crate::fs::cache::lock;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::task::JoinSet;

/// What the scheduler knows of one segment.
#[derive(Clone, Copy, PartialEq)]
enum Chunk {
    Absent,
    Fetching { urgent: bool },
    Present,
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
}

impl DataCache {
    /// The scheduler of a chunked fetch: keeps up to `streams` ranged GETs
    /// in flight, the bytes readers wait for first, then the next absent
    /// segment from the read cursor on.
    ///
    /// A reader waiting for a byte far into a segment (absent, or being
    /// read ahead from its start) splits it there (at a 64 KiB boundary)
    /// so that its fetch starts at that byte; the part before it is fetched
    /// later like any other segment, from its last held byte.
    pub(super) async fn fetch_chunks(
        &self,
        cf: &Arc<CachedFile>,
        size: u64,
    ) -> Result<RangeOutcome, crate::api::Error> {
        let chunks: BTreeMap<u64, Chunk> = match &cf.state.borrow().fill {
            Fill::Chunks { segs } => segs.keys().map(|&k| (k, Chunk::Absent)).collect(),
            Fill::Prefix(_) => BTreeMap::new(),
        };
        let mut s = Scheduler {
            cache: self,
            cf,
            size,
            remaining: chunks.len(),
            chunks,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            urgent: VecDeque::new(),
        };
        loop {
            // The cursor is read with the wants: a reader that moved it has
            // its want taken in the same step, served before read-ahead.
            let cursor = {
                let mut wants = lock(&cf.wants);
                s.urgent.extend(wants.offsets.drain(..));
                cf.cursor.load(Ordering::Relaxed)
            };
            s.serve_urgent();
            s.read_ahead(cursor);
            if s.remaining == 0 {
                return Ok(RangeOutcome::Done);
            }
            tokio::select! {
                joined = s.tasks.join_next_with_id() => {
                    if let Some(end) = s.joined(joined).await {
                        return end;
                    }
                }
                _ = cf.kick.notified() => {}
            }
        }
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
            segs.insert(
                seg,
                Seg {
                    end: cut,
                    have: cur.have,
                },
            );
            segs.insert(
                cut,
                Seg {
                    end: cur.end,
                    have: 0,
                },
            );
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
    /// Start fetching what the segment at `seg` lacks; when it lacks
    /// nothing (a dropped fetch that had in fact just finished), mark it
    /// present.
    fn start(&mut self, seg: u64, urgent: bool) {
        let lacks = match &self.cf.state.borrow().fill {
            Fill::Chunks { segs } => segs.get(&seg).map(|s| (seg + s.have, s.end)),
            Fill::Prefix(_) => None,
        };
        let Some((from, to)) = lacks.filter(|(from, to)| from < to) else {
            self.chunks.insert(seg, Chunk::Present);
            self.remaining -= 1;
            return;
        };
        let (client, cf, size) = (self.cache.client.clone(), self.cf.clone(), self.size);
        let handle = self.tasks.spawn(async move {
            let report = |upto: u64| cf.landed(seg, upto);
            client
                .download_range(
                    &cf.fref,
                    &cf.file,
                    &report,
                    Some(&cf.written),
                    (from, to),
                    size,
                )
                .await
        });
        self.running.insert(handle.id(), (seg, handle));
        self.chunks.insert(seg, Chunk::Fetching { urgent });
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
        match &self.cf.state.borrow().fill {
            Fill::Chunks { segs } => segs
                .get(&seg)
                .is_some_and(|&cur| split_point(seg, cur, at, OVERTAKE_MIN).is_some()),
            Fill::Prefix(_) => false,
        }
    }

    /// Read-ahead: the next absent segments from the read cursor on,
    /// wrapping round, as many as there are free streams.
    fn read_ahead(&mut self, cursor: u64) {
        let cursor = cursor.min(self.size - 1);
        let from = self
            .chunks
            .range(..=cursor)
            .next_back()
            .map_or(0, |(s, _)| *s);
        let order: Vec<u64> = self
            .chunks
            .range(from..)
            .chain(self.chunks.range(..from))
            .filter(|(_, c)| **c == Chunk::Absent)
            .map(|(s, _)| *s)
            .take(self.cache.plan.streams.saturating_sub(self.running.len()))
            .collect();
        for seg in order {
            self.start(seg, false);
        }
    }

    /// A fetch ended: `Some` with the outcome of the whole file when it
    /// ends the file (ranges refused, or a chunk failed for good).
    async fn joined(
        &mut self,
        joined: Option<Result<(tokio::task::Id, Fetched), tokio::task::JoinError>>,
    ) -> Option<Fetched> {
        let (id, result) = match joined? {
            Ok((id, r)) => (id, Ok(r)),
            Err(e) => (e.id(), Err(e)),
        };
        // A dropped fetch was already taken out of `running`.
        let (seg, _) = self.running.remove(&id)?;
        let end = match result {
            Ok(Ok(RangeOutcome::Done)) => {
                self.chunks.insert(seg, Chunk::Present);
                self.remaining -= 1;
                return None;
            }
            Ok(Ok(RangeOutcome::Unsupported)) => Ok(RangeOutcome::Unsupported),
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
