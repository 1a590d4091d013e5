//! The scheduler's side of the memory budget: counting a file's memory
//! segments, making room for read-ahead within its share, and giving
//! memory back (see `memory.rs` for the budget itself).
//!
//! What is subtle: only segments no reader wants are dropped (outside
//! every reader's window and more than a little behind it), and never one
//! being fetched; what is dropped is absent again and fetched anew if a
//! reader comes back to it.

use super::{Chunk, Scheduler};

/// Memory bytes this far behind a reader are still wanted: the kernel's
/// read-ahead requests may arrive out of order.
const KEEP_BEHIND: u64 = 4 << 20;

impl Scheduler<'_> {
    /// This file's memory, counted.
    pub(super) fn mem_total(&self) -> u64 {
        self.mem.values().sum()
    }

    /// Count `len` bytes of memory for the segment at `seg`.
    pub(super) fn count_mem(&mut self, seg: u64, len: u64) {
        self.cache.memory.take(len, self.mem.is_empty());
        self.mem.insert(seg, len);
    }

    /// Make room for `len` more bytes of memory within this file's share
    /// and the whole budget, dropping segments no reader wants; whether it
    /// fits now. Others over their share are told to trim.
    pub(super) fn make_room(&mut self, len: u64) -> bool {
        loop {
            let budget = &self.cache.memory;
            let share = budget.share(self.mem.is_empty());
            let mine = self.mem_total() + len <= share;
            if mine && budget.fits(len) {
                return true;
            }
            if mine {
                budget.pressure.notify_waiters();
            }
            if !self.drop_unwanted() {
                return false;
            }
        }
    }

    /// Keep this file's memory within its share, as files come and go.
    pub(super) fn trim_memory(&mut self) {
        while !self.mem.is_empty() && self.mem_total() > self.cache.memory.share(false) {
            if !self.drop_unwanted() {
                break;
            }
        }
    }

    /// Drop the memory segment no reader wants that lies furthest from
    /// every reader (not one being fetched); whether there was one.
    pub(super) fn drop_unwanted(&mut self) -> bool {
        let distance = |seg: u64, end: u64| {
            self.readers
                .iter()
                .map(|r| {
                    let (lo, hi) = (r.cursor.saturating_sub(KEEP_BEHIND), r.cursor + r.window());
                    if end <= lo {
                        lo - end + 1
                    } else if seg >= hi.max(r.cursor + 1) {
                        seg - hi + 1
                    } else {
                        0
                    }
                })
                .min()
                .unwrap_or(u64::MAX)
        };
        let victim = self
            .mem
            .iter()
            .filter(|(s, _)| !matches!(self.chunks.get(s), Some(Chunk::Fetching { .. })))
            .map(|(&s, &len)| (distance(s, s + len), s))
            .filter(|(d, _)| *d > 0)
            .max();
        let Some((_, seg)) = victim else {
            return false;
        };
        self.drop_mem(seg);
        true
    }

    /// Give back the memory of the segment at `seg`: absent again.
    pub(super) fn drop_mem(&mut self, seg: u64) {
        self.cf.drop_memory(seg);
        if let Some(len) = self.mem.remove(&seg) {
            self.cache.memory.give(len, self.mem.is_empty());
        }
        if self.chunks.insert(seg, Chunk::Absent) == Some(Chunk::Present) {
            self.remaining += 1;
        }
    }

    /// Give back all memory (the fetch ends, or nobody reads).
    pub(super) fn release_memory(&mut self) {
        let segs: Vec<u64> = self.mem.keys().copied().collect();
        for seg in segs {
            self.drop_mem(seg);
        }
    }
}
