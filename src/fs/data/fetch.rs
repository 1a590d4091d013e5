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

impl DataCache {
    /// The scheduler of a chunked fetch: keeps up to `streams` ranged GETs
    /// in flight, the bytes readers wait for first, then the next absent
    /// segment from the read cursor on.
    ///
    /// A reader waiting for a byte far into an absent segment splits it
    /// there (at a 64 KiB boundary) so that its fetch starts at that byte;
    /// the part before it is fetched later like any other segment.
    pub(super) async fn fetch_chunks(
        &self,
        cf: &Arc<CachedFile>,
        size: u64,
    ) -> Result<RangeOutcome, crate::api::Error> {
        #[derive(Clone, Copy, PartialEq)]
        enum Chunk {
            Absent,
            Fetching { urgent: bool },
            Present,
        }
        /// Split an absent segment only this far past its held bytes.
        const SPLIT_MIN: u64 = 256 << 10;
        const SPLIT_ALIGN: u64 = 64 << 10;
        let mut chunks: BTreeMap<u64, Chunk> = match &cf.state.borrow().fill {
            Fill::Chunks { segs } => segs.keys().map(|&k| (k, Chunk::Absent)).collect(),
            Fill::Prefix(_) => BTreeMap::new(),
        };
        let mut remaining = chunks.len();
        let mut tasks: JoinSet<Result<RangeOutcome, crate::api::Error>> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, (u64, tokio::task::AbortHandle)> = HashMap::new();
        let mut urgent: VecDeque<u64> = VecDeque::new();
        // Start fetching what the segment at `start` lacks; `None` when it
        // lacks nothing (a dropped fetch that had in fact just finished).
        let begin = |start: u64, tasks: &mut JoinSet<_>| {
            let (from, to) = match &cf.state.borrow().fill {
                Fill::Chunks { segs } => segs.get(&start).map(|s| (start + s.have, s.end))?,
                Fill::Prefix(_) => return None,
            };
            if from >= to {
                return None;
            }
            let (client, cf) = (self.client.clone(), cf.clone());
            Some(tasks.spawn(async move {
                let report = |upto: u64| cf.landed(start, upto);
                client
                    .download_range(&cf.fref, &cf.file, &report, (from, to), size)
                    .await
            }))
        };
        macro_rules! start {
            ($seg:expr, $urgent:expr) => {
                match begin($seg, &mut tasks) {
                    Some(handle) => {
                        running.insert(handle.id(), ($seg, handle));
                        chunks.insert($seg, Chunk::Fetching { urgent: $urgent });
                    }
                    None => {
                        chunks.insert($seg, Chunk::Present);
                        remaining -= 1;
                    }
                }
            };
        }
        loop {
            urgent.extend(lock(&cf.wants).offsets.drain(..));
            // The bytes readers wait for, in the order they asked.
            while let Some(&at) = urgent.front() {
                let Some((&seg, &state)) = chunks.range(..=at).next_back() else {
                    urgent.pop_front();
                    continue;
                };
                match state {
                    Chunk::Present | Chunk::Fetching { urgent: true } => {
                        urgent.pop_front();
                        continue;
                    }
                    Chunk::Fetching { urgent: false } => {
                        chunks.insert(seg, Chunk::Fetching { urgent: true });
                        urgent.pop_front();
                        continue;
                    }
                    Chunk::Absent => {}
                }
                if running.len() >= self.plan.streams {
                    // Every stream is busy: drop the speculative fetch
                    // furthest after the reader (it resumes later).
                    let victim = running
                        .iter()
                        .filter(|(_, (s, _))| chunks[s] == Chunk::Fetching { urgent: false })
                        .max_by_key(|(_, (s, _))| (s + size - at) % size)
                        .map(|(id, _)| *id);
                    let Some(id) = victim else { break };
                    if let Some((s, handle)) = running.remove(&id) {
                        handle.abort();
                        chunks.insert(s, Chunk::Absent);
                    }
                }
                urgent.pop_front();
                let target = self.split_for(cf, seg, at, SPLIT_MIN, SPLIT_ALIGN);
                if target != seg {
                    chunks.insert(target, Chunk::Absent);
                    remaining += 1;
                }
                start!(target, true);
            }
            // Read-ahead: the next absent segments from the cursor on.
            let cursor = cf.cursor.load(Ordering::Relaxed).min(size - 1);
            let from = chunks.range(..=cursor).next_back().map_or(0, |(s, _)| *s);
            let order: Vec<u64> = chunks
                .range(from..)
                .chain(chunks.range(..from))
                .filter(|(_, c)| **c == Chunk::Absent)
                .map(|(s, _)| *s)
                .take(self.plan.streams.saturating_sub(running.len()))
                .collect();
            for seg in order {
                start!(seg, false);
            }
            if remaining == 0 {
                return Ok(RangeOutcome::Done);
            }
            tokio::select! {
                joined = tasks.join_next_with_id() => {
                    let (id, result) = match joined {
                        Some(Ok((id, r))) => (id, Ok(r)),
                        Some(Err(e)) => (e.id(), Err(e)),
                        None => continue,
                    };
                    // A dropped fetch was already taken out of `running`.
                    let Some((seg, _)) = running.remove(&id) else { continue };
                    match result {
                        Ok(Ok(RangeOutcome::Done)) => {
                            chunks.insert(seg, Chunk::Present);
                            remaining -= 1;
                        }
                        Ok(Ok(RangeOutcome::Unsupported)) => {
                            tasks.shutdown().await;
                            return Ok(RangeOutcome::Unsupported);
                        }
                        Ok(Err(e)) => {
                            tasks.shutdown().await;
                            return Err(e);
                        }
                        Err(e) => {
                            tasks.shutdown().await;
                            return Err(crate::api::Error::Protocol {
                                op: cf.fref.operation(),
                                detail: format!("a chunk fetch ended abnormally: {e}"),
                            });
                        }
                    }
                }
                _ = cf.kick.notified() => {}
            }
        }
    }

    /// Where a fetch for a reader waiting at `at` in the absent segment
    /// `seg` should start: `seg` itself when `at` is close to its held
    /// bytes, else a new segment split off at `at` (rounded down to `align`).
    fn split_for(&self, cf: &CachedFile, seg: u64, at: u64, min: u64, align: u64) -> u64 {
        let mut target = seg;
        cf.state.send_if_modified(|s| {
            let Fill::Chunks { segs } = &mut s.fill else {
                return false;
            };
            let Some(&cur) = segs.get(&seg) else {
                return false;
            };
            let cut = at - at % align;
            if cut < seg + cur.have + min || cut >= cur.end {
                return false;
            }
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
