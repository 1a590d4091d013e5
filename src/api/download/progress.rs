//! What a download holds so far, across its attempts, and the check on
//! every byte written.
//!
//! What is subtle here: the file only ever grows as one contiguous prefix
//! (from where the call started), so that "what we have" is one number and
//! a resume can ask `Range: bytes=<have>-`. [`Progress::put`] therefore
//! keeps of each batch only what extends that prefix within the range
//! asked, skips what is already held (a server that answered a resume with
//! the whole file, or a gzip retry from the start) after checking it is the
//! same bytes, and refuses a gap or a byte past the promised size rather
//! than writing it. Every byte that lands also moves the stall
//! deadline and tells the reader (`report`).

use super::written::Written;
use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::operation::Operation;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Where the bytes go.
pub(super) enum Out<'a> {
    /// The file, shared with the blocking threads that write into it (its
    /// own descriptor, a dup of the caller's).
    File(Arc<std::fs::File>),
    /// The caller's memory (see `Sink::Memory`).
    Memory(&'a (dyn Fn(u64, &[Bytes]) + Send + Sync)),
}

/// What a download has so far, across attempts.
pub(super) struct Progress<'a> {
    pub(super) out: Out<'a>,
    /// The checksums of what was written, when the caller keeps them.
    pub(super) written: Option<Arc<Written>>,
    pub(super) report: &'a (dyn Fn(u64) + Send + Sync),
    /// Bytes of the file written, contiguous from where this call started
    /// (offset 0 for a whole file), as a file offset.
    pub(super) have: u64,
    /// The end (exclusive) of the range this call fetches; `None` for the
    /// whole file.
    pub(super) limit: Option<u64>,
    /// The size the server promised, once known.
    pub(super) expected: Option<u64>,
    /// Whether a retry may ask a Range (false once the server sent gzip).
    pub(super) ranges: bool,
    /// When the call fails if no byte arrives before then.
    pub(super) stall_deadline: Instant,
}

impl Progress<'_> {
    /// The bytes still wanted, as the `Range` header's `FIRST-LAST`.
    pub(super) fn range_header(&self) -> Option<String> {
        match self.limit {
            Some(limit) => Some(format!("bytes={}-{}", self.have, limit - 1)),
            None if self.ranges && self.have > 0 => Some(format!("bytes={}-", self.have)),
            None => None,
        }
    }

    /// Whether every byte this call wants is written.
    pub(super) fn complete(&self) -> bool {
        match (self.limit, self.expected) {
            (Some(limit), _) => self.have >= limit,
            (None, Some(expected)) => self.have >= expected,
            (None, None) => false,
        }
    }

    /// Write `data`, which starts at file offset `at`, keeping only what
    /// extends the contiguous prefix and lies within the range asked.
    ///
    /// The write runs on a blocking thread: a `pwritev` into the page cache
    /// is usually a copy, but it may wait on dirty-page writeback, and it
    /// must not hold up the async workers that drive the other streams.
    pub(super) async fn put(
        &mut self,
        client: &Client,
        op: Operation,
        at: u64,
        data: &[Bytes],
    ) -> Result<(), Error> {
        let len: u64 = data.iter().map(|b| b.len() as u64).sum();
        let mut end = at + len;
        if let Some(limit) = self.limit {
            end = end.min(limit);
        }
        if at > self.have {
            return Err(Error::Protocol {
                op,
                detail: format!("bytes from offset {at} when {} were expected", self.have),
            });
        }
        if at < self.have {
            self.check_held(op, at, data, end.min(self.have)).await?;
        }
        if end <= self.have {
            return Ok(());
        }
        if let Some(expected) = self.expected {
            if end > expected {
                return Err(Error::Protocol {
                    op,
                    detail: format!("more than the {expected} bytes promised"),
                });
            }
        }
        let parts = slices_within(data, at, (self.have, end));
        match &self.out {
            Out::File(out) => {
                let (out, offset, written) = (out.clone(), self.have, self.written.clone());
                blocking_io(op, move || {
                    let mut slices: Vec<std::io::IoSlice<'_>> =
                        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
                    write_all_vectored_at(&out, &mut slices, offset)?;
                    // The bytes are still in the CPU's cache: their checksum
                    // now costs far less than reading the file back later.
                    if let Some(w) = written {
                        w.add(offset, &parts);
                    }
                    Ok(())
                })
                .await?;
            }
            Out::Memory(keep) => keep(self.have, &parts),
        }
        client.inner.counters.bytes(end - self.have);
        self.have = end;
        self.stall_deadline = Instant::now() + client.inner.cfg.call_deadline;
        client.note_progress();
        (self.report)(self.have);
        Ok(())
    }

    /// Bytes a retry sends again (`data` from `at`, up to `upto`, all held
    /// already) must be the bytes held: the held ones may have come from an
    /// answer that later failed its checksum (gzip), or the file may have
    /// changed on the server. Either way what readers were given is not the
    /// file, so the download fails rather than keep it.
    async fn check_held(
        &self,
        op: Operation,
        at: u64,
        data: &[Bytes],
        upto: u64,
    ) -> Result<(), Error> {
        let parts: Vec<Bytes> = slices_within(data, at, (at, upto));
        if parts.is_empty() {
            return Ok(());
        }
        let out = match &self.out {
            Out::File(out) => out.clone(),
            // Bytes handed over are not ours to compare: an answer that
            // repeats them is refused (ranged calls never ask for them).
            Out::Memory(_) => {
                return Err(Error::Protocol {
                    op,
                    detail: format!("an answer from offset {at} repeated bytes already received"),
                })
            }
        };
        let same = blocking_io(op, move || {
            use std::os::unix::fs::FileExt;
            let mut pos = at;
            let mut held = Vec::new();
            for p in &parts {
                held.resize(p.len(), 0);
                out.read_exact_at(&mut held, pos)?;
                if held[..] != p[..] {
                    return Ok(false);
                }
                pos += p.len() as u64;
            }
            Ok(true)
        })
        .await?;
        if same {
            return Ok(());
        }
        Err(Error::Protocol {
            op,
            detail: format!(
                "a retry sent other bytes than those held before offset {upto}: \
                 the file changed or an earlier answer was corrupt"
            ),
        })
    }

    /// The moment the current wait must end: the attempt's own timeout or the
    /// call's stall deadline, whichever comes first.
    pub(super) fn wait_until(&self, client: &Client) -> (Instant, Duration) {
        let cfg = &client.inner.cfg;
        let attempt = Instant::now() + cfg.attempt_timeout;
        if attempt <= self.stall_deadline {
            (attempt, cfg.attempt_timeout)
        } else {
            (self.stall_deadline, cfg.call_deadline)
        }
    }
}

/// Run file I/O `work` on the blocking pool: a page-cache copy is usually
/// quick, but it may wait on dirty-page writeback, and it must not hold up
/// the async workers that drive the other streams.
async fn blocking_io<T: Send + 'static>(
    op: Operation,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|source| Error::Io { op, source })
}

/// The parts of `data` (which starts at file offset `at`) that fall in
/// `from..to`, without a copy: `Bytes` slices share the received buffers.
fn slices_within(data: &[Bytes], at: u64, (from, to): (u64, u64)) -> Vec<Bytes> {
    let mut parts = Vec::with_capacity(data.len());
    let mut pos = at;
    for b in data {
        let (s, e) = (pos.max(from), (pos + b.len() as u64).min(to));
        if s < e {
            parts.push(b.slice((s - pos) as usize..(e - pos) as usize));
        }
        pos += b.len() as u64;
    }
    parts
}

/// `pwritev` of every byte of `slices` at `offset`: one syscall for a batch
/// of received chunks instead of a copy into one buffer and a `pwrite`.
///
/// The batch's blocks are allocated first (`platform::preallocate`): on
/// ext4 a buffered write into allocated blocks skips the delayed-allocation
/// bookkeeping of each 4 KiB block. Measured with and without it
/// alternating in one bench run (512 MiB from nginx, medians of 7): a cold
/// `cat` through the mount 0.447 -> 0.430 s and 0.421 -> 0.404 s, and
/// 0.393 -> 0.390 s in a third run; on `scripts/bench.sh` the mount's CPU
/// per GiB of a cold `cat` 0.83-0.90 -> 0.75. Only what is written is
/// allocated, so a download that stops early holds no blocks beyond its
/// bytes.
fn write_all_vectored_at(
    file: &std::fs::File,
    mut slices: &mut [std::io::IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len: usize = slices.iter().map(|s| s.len()).sum();
    crate::platform::preallocate(file, offset, len as u64)?;
    while !slices.is_empty() {
        // IOV_MAX is 1024 on Linux; a batch holds far fewer chunks.
        let n = slices.len().min(1024);
        // SAFETY: IoSlice is ABI-compatible with iovec, and the slices
        // borrow live buffers for the duration of the call.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast(),
                n as libc::c_int,
                offset as libc::off_t,
            )
        };
        if written < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += written as u64;
        std::io::IoSlice::advance_slices(&mut slices, written as usize);
    }
    Ok(())
}

/// Set the length of `file`, off the async workers (on ext4 a truncate may
/// wait on the journal).
pub async fn set_len(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    let file = file.try_clone()?;
    tokio::task::spawn_blocking(move || file.set_len(len))
        .await
        .map_err(std::io::Error::other)?
}
