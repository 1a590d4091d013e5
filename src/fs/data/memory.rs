//! The memory path: bytes of result files read without the disk cache, and
//! the budget all of them share (`--max-memory`).
//!
//! A file goes this way when it cannot be cached on disk: larger than
//! `--cache-size`, or more than the cache can take without pushing out
//! files in use, or once the disk is full. Its segments are fetched by the
//! same scheduler as on disk (the reader's bytes first, ranges checked,
//! cut answers resumed), but the bytes stay as they came off the socket
//! (`Bytes`, shared, never copied) until a reader copies them into its
//! reply, as mountpoint-s3 streams through memory.
//!
//! What is subtle:
//! - **The budget is shared fairly.** Each file's scheduler keeps what its
//!   segments hold, or will hold once their fetch ends, within its share of
//!   the budget (the budget over the files holding memory). Read-ahead
//!   that does not fit first drops segments no reader wants any more, then
//!   waits: past the budget read-ahead shrinks, it never fails. Only the
//!   segment a reader is waiting for may go over, so a reader always
//!   progresses.
//! - **Idempotent puts.** A dropped fetch may still hand over bytes after
//!   a new fetch of its segment started; a put keeps only what extends the
//!   segment's held bytes contiguously, so no byte is held twice or out of
//!   place, and the segment's `have` is always what is really held.
//! - **Lock order.** A put takes this store's lock, then (released) the
//!   file's state; a drop changes the state first, then the store. Readers
//!   never hold the state while they lock the store, and a byte they saw as
//!   present but find dropped makes them ask again, never read a hole.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What every memory-path file together may hold.
pub(super) struct MemBudget {
    limit: u64,
    used: AtomicU64,
    /// Files holding memory now.
    files: AtomicUsize,
    /// Wakes the files holding memory, to trim to their share: one that
    /// cannot start read-ahead within the budget asks.
    pub(super) pressure: tokio::sync::Notify,
}

impl MemBudget {
    pub(super) fn new(limit: u64) -> MemBudget {
        MemBudget {
            limit,
            used: AtomicU64::new(0),
            files: AtomicUsize::new(0),
            pressure: tokio::sync::Notify::new(),
        }
    }

    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// One file's share: the budget over the files holding memory, one
    /// more when `joining` (a file about to hold its first bytes).
    pub(super) fn share(&self, joining: bool) -> u64 {
        let files = self.files.load(Ordering::Relaxed) + usize::from(joining);
        self.limit / files.max(1) as u64
    }

    /// Whether `n` more bytes fit the whole budget.
    pub(super) fn fits(&self, n: u64) -> bool {
        self.used() + n <= self.limit
    }

    /// Count `n` bytes (`first`: the file's first).
    pub(super) fn take(&self, n: u64, first: bool) {
        self.used.fetch_add(n, Ordering::Relaxed);
        if first {
            self.files.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Give back `n` bytes (`last`: the file holds none now).
    pub(super) fn give(&self, n: u64, last: bool) {
        self.used.fetch_sub(n, Ordering::Relaxed);
        if last {
            self.files.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The bytes one segment holds, from its start, as received.
#[derive(Default)]
struct Held {
    parts: Vec<Bytes>,
    /// Offset (from the segment's start) of each part.
    starts: Vec<u64>,
    len: u64,
}

/// The memory segments of one file, by start offset.
#[derive(Default)]
pub(super) struct MemBytes {
    segs: BTreeMap<u64, Held>,
}

impl MemBytes {
    /// Keep bytes received for the segment at `seg` (ending at `end`):
    /// `parts`, starting at file offset `at`, as far as they extend what it
    /// holds contiguously. Returns how many bytes it holds now.
    pub(super) fn put(&mut self, seg: u64, end: u64, at: u64, parts: &[Bytes]) -> u64 {
        let held = self.segs.entry(seg).or_default();
        let mut pos = at;
        for p in parts {
            let (from, to) = (pos, pos + p.len() as u64);
            pos = to;
            let next = seg + held.len;
            // Before what is held: already here. Past it: a gap (a stale
            // fetch), never kept.
            if to <= next || from > next || next >= end {
                continue;
            }
            let part = p.slice((next - from) as usize..(to.min(end) - from) as usize);
            held.starts.push(held.len);
            held.len += part.len() as u64;
            held.parts.push(part);
        }
        held.len
    }

    /// Forget what the segment at `seg` holds.
    pub(super) fn remove(&mut self, seg: u64) {
        self.segs.remove(&seg);
    }

    /// Bytes `off..off + len` of the segment at `seg`, if it holds them
    /// all: with `share`, one shared slice when they lie in one received
    /// part; else appended to `out`.
    pub(super) fn read(
        &self,
        seg: u64,
        off: u64,
        len: u64,
        out: &mut Vec<u8>,
        share: bool,
    ) -> Option<Option<Bytes>> {
        let held = self.segs.get(&seg)?;
        let (from, to) = (off - seg, off - seg + len);
        if to > held.len {
            return None;
        }
        let mut i = held.starts.partition_point(|&s| s <= from) - 1;
        let first = held.starts[i];
        if share && to <= first + held.parts[i].len() as u64 {
            let p = &held.parts[i];
            return Some(Some(
                p.slice((from - first) as usize..(to - first) as usize),
            ));
        }
        let mut pos = from;
        while pos < to {
            let (start, p) = (held.starts[i], &held.parts[i]);
            let a = (pos - start) as usize;
            let b = ((to - start) as usize).min(p.len());
            out.extend_from_slice(&p[a..b]);
            pos = start + b as u64;
            i += 1;
        }
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn puts_keep_only_contiguous_new_bytes() {
        let mut m = MemBytes::default();
        // Segment 100..110.
        assert_eq!(m.put(100, 110, 100, &[b("abc"), b("de")]), 5);
        // A stale fetch repeating bytes held, and bringing one more.
        assert_eq!(m.put(100, 110, 102, &[b("cdef")]), 6);
        // A gap: not kept.
        assert_eq!(m.put(100, 110, 108, &[b("ij")]), 6);
        // Past the end: cut.
        assert_eq!(m.put(100, 110, 106, &[b("ghijkl")]), 10);
        let mut out = Vec::new();
        assert_eq!(m.read(100, 100, 10, &mut out, true), Some(None));
        assert_eq!(out, b"abcdefghij");
        // Within one part: shared, not copied.
        let mut out = Vec::new();
        assert_eq!(m.read(100, 101, 2, &mut out, true), Some(Some(b("bc"))));
        assert_eq!(m.read(100, 101, 2, &mut out, false), Some(None));
        assert_eq!(out, b"bc");
        // Not all held.
        let mut m2 = MemBytes::default();
        m2.put(0, 10, 0, &[b("xy")]);
        assert_eq!(m2.read(0, 1, 2, &mut Vec::new(), false), None);
        m.remove(100);
        assert_eq!(m.read(100, 100, 1, &mut Vec::new(), false), None);
    }
}
