//! The memory path: bytes of result files read without the disk cache, and
//! the budget all of them share (`--max-memory`).
//!
//! A file goes this way when it cannot be cached on disk: larger than
//! `--cache-size`, or more than the cache can take without pushing out
//! files in use, or once the disk is full. Its segments are fetched by the
//! same scheduler as on disk (the reader's bytes first, ranges checked,
//! cut answers resumed), but the bytes go into a buffer of the segment's
//! own (see [`MemBuf`]), from which replies are sent without a further
//! copy, as mountpoint-s3 streams through memory.
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

/// One segment's bytes, in an anonymous mapping of its own: its pages go
/// back to the kernel when it is dropped, whatever the allocator does.
/// Holding the socket's buffers instead left glibc's arenas fragmented:
/// four readers under a 64 MiB budget grew the mount by 111 MB; and fixing
/// glibc's mmap threshold instead cost every disk-path read too (a cold
/// 512 MiB cat went from 0.44 s to 0.62 s). The one copy into it is what
/// the disk path's write costs.
///
/// Bytes are written once each, past the held length, under the store's
/// lock; readers read only below it, so writes and reads never overlap.
pub(super) struct MemBuf {
    base: *mut u8,
    cap: usize,
}

// SAFETY: the mapping is owned by this value; writes go past the held
// length only (under the store's lock) and reads below it.
unsafe impl Send for MemBuf {}
unsafe impl Sync for MemBuf {}

impl MemBuf {
    fn new(cap: usize) -> Option<MemBuf> {
        // SAFETY: a fresh private anonymous mapping; nothing else refers
        // to its range.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                cap.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON | crate::platform::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            tracing::warn!(bytes = cap, error = %std::io::Error::last_os_error(), "no memory for a segment");
            return None;
        }
        Some(MemBuf {
            base: base.cast(),
            cap: cap.max(1),
        })
    }

    /// The bytes `from..to`, written before.
    pub(super) fn bytes(&self, from: usize, to: usize) -> &[u8] {
        assert!(from <= to && to <= self.cap);
        // SAFETY: within the mapping; the caller read `to` as held, and
        // held bytes are never written again.
        unsafe { std::slice::from_raw_parts(self.base.add(from), to - from) }
    }
}

impl Drop for MemBuf {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base.cast(), self.cap) };
    }
}

/// Bytes of a memory segment handed to a reader: the segment's buffer
/// stays mapped until the reply is sent, even if the segment is dropped.
pub struct MemSlice {
    buf: std::sync::Arc<MemBuf>,
    from: usize,
    to: usize,
}

impl MemSlice {
    pub(super) fn bytes(&self) -> &[u8] {
        self.buf.bytes(self.from, self.to)
    }
}

/// What one segment holds, from its start.
struct Held {
    buf: std::sync::Arc<MemBuf>,
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
        let held = match self.segs.entry(seg) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                match MemBuf::new((end - seg) as usize) {
                    Some(buf) => v.insert(Held {
                        buf: std::sync::Arc::new(buf),
                        len: 0,
                    }),
                    None => return 0,
                }
            }
        };
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
            let part = &p[(next - from) as usize..(to.min(end) - from) as usize];
            // SAFETY: `held.len + part.len() <= end - seg`, the buffer's
            // size; these bytes are past the held length, which no reader
            // reads, and the store's lock (our `&mut self`) keeps writers
            // apart.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    held.buf.base.add(held.len as usize),
                    part.len(),
                );
            }
            held.len += part.len() as u64;
        }
        held.len
    }

    /// Forget what the segment at `seg` holds.
    pub(super) fn remove(&mut self, seg: u64) {
        self.segs.remove(&seg);
    }

    /// Bytes `off..off + len` of the segment at `seg`, if it holds them
    /// all.
    pub(super) fn read(&self, seg: u64, off: u64, len: u64) -> Option<MemSlice> {
        let held = self.segs.get(&seg)?;
        let (from, to) = (off - seg, off - seg + len);
        if to > held.len {
            return None;
        }
        Some(MemSlice {
            buf: held.buf.clone(),
            from: from as usize,
            to: to as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn read(m: &MemBytes, seg: u64, off: u64, len: u64) -> Option<Vec<u8>> {
        m.read(seg, off, len).map(|s| s.bytes().to_vec())
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
        assert_eq!(read(&m, 100, 100, 10).unwrap(), b"abcdefghij");
        assert_eq!(read(&m, 100, 101, 2).unwrap(), b"bc");
        // A slice outlives the segment's removal.
        let kept = m.read(100, 104, 3).unwrap();
        m.remove(100);
        assert_eq!(kept.bytes(), b"efg");
        assert!(read(&m, 100, 100, 1).is_none());
        // Not all held.
        let mut m2 = MemBytes::default();
        m2.put(0, 10, 0, &[b("xy")]);
        assert!(read(&m2, 0, 1, 2).is_none());
    }
}
