//! Result files: their exact size (HEAD), and streaming them into a file.
//!
//! What is subtle here:
//! - **Never short.** A download succeeds only when the bytes written equal
//!   the size the server promised (Content-Length of a 200, or the total of
//!   a 206's Content-Range). A body that ends early — a dropped connection,
//!   a truncated response — is resumed, never handed over as the file.
//! - **Resume with Range.** Bytes are written at their offsets as they
//!   arrive, always contiguously, so after a failure the file holds a prefix
//!   and the next attempt asks `Range: bytes=<have>-`. A server that answers
//!   the range with a plain 200 is fine too: the bytes already held are
//!   skipped. The download always re-enters at the API URL, so an expired
//!   signed storage URL is replaced by a fresh redirect.
//! - **gzip.** Downloads ask for identity, so that ranges are file offsets.
//!   A server that compresses anyway is inflated on the fly (on tokio's
//!   blocking pool, chunk by chunk: see `crate::api::body`); ranges are then
//!   not used (they would count compressed bytes) and a retry starts from the
//!   beginning, skipping the inflated bytes already held. The gzip trailer
//!   (CRC and length) is the completeness check in that case.
//! - **Deadlines that suit long transfers.** A 10 GB file may take minutes,
//!   so there is no limit on a whole download; instead each wait (headers,
//!   next chunk) is bounded by `attempt_timeout`, and the call fails once
//!   `call_deadline` passes without a single new byte or after
//!   `max_attempts` consecutive attempts without progress. An attempt that
//!   brought bytes resets both budgets.
//! - **Slots.** A download holds a connection slot while streaming, so it
//!   first takes a download slot, kept until it ends: at most
//!   `max_concurrent_downloads` run at once, leaving the other slots to
//!   metadata calls. Queueing for a download slot is not a stall: it has no
//!   deadline while downloads anywhere still receive bytes, and ends in a
//!   timeout only once none has for a whole `call_deadline` (a hung API).
//!   A download's first stall deadline counts from that same moment, so a
//!   slot freed by a download that timed out gives the next no fresh one.
//!
//! The pieces: this file holds the entry points, the retry loop across
//! attempts and the download slots; `attempt.rs` one attempt (request,
//! streaming the body); `checks.rs` what an answer must satisfy before and
//! after its body is read; `progress.rs` what the file holds so far and
//! the check on every byte written; `written.rs` the checksum of what was
//! written, so a complete file need not be read back to get it.

mod attempt;
mod checks;
mod progress;
mod written;

use super::body::{content_encoding, content_length, Encoding};
use super::client::{Client, FileRef};
use super::error::{closed, Error};
use super::operation::Operation;
use super::retry::{self, Backoff};
use super::transport::log_failure;
use progress::Progress;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, timeout_at, Instant};
pub use written::Written;

/// Where the bytes of a download go.
#[derive(Clone, Copy)]
pub enum Sink<'a> {
    /// Written into this file at their offsets, with the record of what
    /// was written (if kept).
    File {
        out: &'a std::fs::File,
        written: Option<&'a Arc<Written>>,
    },
    /// Handed to this function as they arrive, in order and contiguous: the
    /// file offset of the first byte, and the bytes as received (shared,
    /// not copied). Only ranged downloads take it: a whole-file download
    /// may have to compare resent bytes with those it holds.
    Memory(&'a (dyn Fn(u64, &[bytes::Bytes]) + Send + Sync)),
}

/// How one attempt ended, when it did not fail.
enum Attempt {
    /// Every byte asked for is written; the offset reached.
    Complete(u64),
    /// A ranged call got the whole file (200) or a compressed answer: the
    /// server does not serve ranges of this file.
    RangeRefused,
}

/// How a ranged download ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Every byte of the range is in the file.
    Done,
    /// The server ignores Range (or compresses): fetch the file whole.
    Unsupported,
}

impl Client {
    /// The exact size of a result file, from a HEAD's Content-Length; `None`
    /// when the server gives none (chunked) or only a compressed length.
    /// 404 (no such run, or the run has not finished) is an error.
    pub async fn file_size(&self, f: &FileRef) -> Result<Option<u64>, Error> {
        let op = f.operation();
        let segments = f.segments();
        super::ops::check_id(op, segments[1])?;
        let url = self.url(&segments, &[]);
        self.with_retries(op, |_| self.head_attempt(op, &url)).await
    }

    async fn head_attempt(&self, op: Operation, url: &Url) -> Result<Option<u64>, Error> {
        let _slot = self.inner.slots.acquire().await.map_err(|_| closed(op))?;
        let _in_flight = self.inner.counters.call_started();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let head = self.send_following(op, Method::HEAD, url.clone(), headers, None);
        let resp = match timeout(self.inner.cfg.attempt_timeout, head).await {
            Ok(Ok(resp)) => resp,
            // A server without HEAD: the size is learnt by downloading.
            Ok(Err(e)) if matches!(e.status(), Some(405 | 501)) => return Ok(None),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Timeout {
                    op,
                    after: self.inner.cfg.attempt_timeout,
                })
            }
        };
        if content_encoding(resp.headers()) != Encoding::Identity {
            return Ok(None);
        }
        Ok(content_length(resp.headers()))
    }

    /// Download a result file into `out`, writing each byte at its offset and
    /// calling `progress` with the number of bytes held (contiguous from 0) as
    /// they land, so readers can start early. Resumes with Range after a
    /// failure; returns the total size only once every promised byte is
    /// written, and cuts `out` to that size. With `written`, the CRC32 of
    /// every byte written is recorded there as it lands.
    ///
    /// `out` must be open for writing and not with `O_APPEND` (positional
    /// writes on an append-mode file land at its end on Linux). Waiting for
    /// one of the `max_concurrent_downloads` slots is queueing, not a stall:
    /// it is bounded only by downloads anywhere making progress (see
    /// `download_slot`), since every download ahead is itself bounded.
    pub async fn download(
        &self,
        f: &FileRef,
        out: &std::fs::File,
        progress: &(dyn Fn(u64) + Send + Sync),
        written: Option<&Arc<Written>>,
    ) -> Result<u64, Error> {
        let sink = Sink::File { out, written };
        let result = self.fetch(f, sink, progress, 0, None, None).await;
        let op = f.operation();
        let result = match result {
            Ok(Attempt::Complete(total)) => progress::set_len(out, total)
                .await
                .map(|()| total)
                .map_err(|source| Error::Io { op, source }),
            // A whole-file call asks no range, so it cannot be refused one.
            Ok(Attempt::RangeRefused) => Err(Error::Protocol {
                op,
                detail: "a range refused that was not asked".into(),
            }),
            Err(e) => Err(e),
        };
        self.downloaded(f, &result);
        result
    }

    /// Download bytes `start..end` of a result file of `size` bytes into
    /// `sink` (a file, at their offsets, or memory), with
    /// `Range: bytes=START-(END-1)`, calling
    /// `progress` with the offset reached (contiguous from `start`). A cut
    /// answer is resumed from the first missing byte; every answer's
    /// `Content-Range` must give the same total `size`, or the call fails
    /// (the file changed, or its size was a lie). A server that answers the
    /// range with the whole file (200) or compressed gives
    /// [`RangeOutcome::Unsupported`] at once, before any byte is written:
    /// the caller then fetches the file whole with [`Client::download`].
    /// A file sink's `written`, if given, records the CRC32 of the bytes
    /// written.
    pub async fn download_range(
        &self,
        f: &FileRef,
        sink: Sink<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
        (start, end): (u64, u64),
        size: u64,
    ) -> Result<RangeOutcome, Error> {
        let op = f.operation();
        if start >= end || end > size {
            return Err(Error::Protocol {
                op,
                detail: format!("the range {start}..{end} of a {size}-byte file"),
            });
        }
        let result = self
            .fetch(f, sink, progress, start, Some(end), Some(size))
            .await
            .map(|attempt| match attempt {
                Attempt::Complete(_) => RangeOutcome::Done,
                Attempt::RangeRefused => RangeOutcome::Unsupported,
            });
        self.downloaded(f, &result);
        result
    }

    /// Count and log how a download call ended.
    fn downloaded<T: std::fmt::Debug>(&self, f: &FileRef, result: &Result<T, Error>) {
        match result {
            Ok(outcome) => {
                self.inner.counters.download_completed();
                tracing::debug!(op = %f.operation(), file = ?f, ?outcome, "downloaded");
            }
            Err(e) => {
                self.inner.counters.error(f.operation());
                log_failure(e);
            }
        }
    }

    /// The retry loop of a download: attempts until the bytes asked
    /// (`from..limit`, or the whole file) are written, resuming each time
    /// from the first byte missing.
    async fn fetch(
        &self,
        f: &FileRef,
        sink: Sink<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
        from: u64,
        limit: Option<u64>,
        expected: Option<u64>,
    ) -> Result<Attempt, Error> {
        let op = f.operation();
        let segments = f.segments();
        super::ops::check_id(op, segments[1])?;
        let url = self.url(&segments, &[]);
        let inner = &self.inner;
        let _in_flight = inner.counters.download_started();
        let (_download_slot, stall_deadline) = self.download_slot(op).await?;
        let (out, written) = match sink {
            Sink::File { out, written } => (
                progress::Out::File(Arc::new(
                    out.try_clone().map_err(|source| Error::Io { op, source })?,
                )),
                written.cloned(),
            ),
            Sink::Memory(keep) => (progress::Out::Memory(keep), None),
        };
        let mut state = Progress {
            out,
            written,
            report: progress,
            have: from,
            limit,
            expected,
            ranges: true,
            stall_deadline,
        };
        let mut backoff = Backoff::new(inner.cfg.backoff_base, inner.cfg.backoff_max);
        let mut failures = 0u32;
        loop {
            let before = state.have;
            let err = match self.download_attempt(op, &url, &mut state).await {
                Ok(attempt) => return Ok(attempt),
                Err(e) => e,
            };
            if state.have > before {
                failures = 0;
                backoff.reset();
            }
            failures += 1;
            match retry::next_wait(
                op,
                &err,
                failures,
                &inner.policy,
                &mut backoff,
                state.stall_deadline,
            ) {
                Some(wait) => {
                    inner.counters.retry();
                    tokio::time::sleep(wait).await;
                }
                None => return Err(err),
            }
        }
    }
}

impl Client {
    /// Record that a download received bytes just now.
    fn note_progress(&self) {
        let ms = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner
            .last_byte_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Wait for a download slot. Queueing behind healthy downloads has no
    /// deadline, but when no download anywhere has received a byte for a
    /// whole `call_deadline` (since this one was asked for, at the earliest),
    /// the API is hung and the wait ends with a timeout. The slot comes with
    /// the download's first stall deadline, counted from that same moment:
    /// a slot freed by a download that just timed out must not start a
    /// fresh deadline for the next one in the queue.
    async fn download_slot(
        &self,
        op: Operation,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, Instant), Error> {
        let inner = &self.inner;
        let asked = inner.epoch.elapsed().as_millis() as u64;
        let deadline = inner.cfg.call_deadline;
        loop {
            let last = inner
                .last_byte_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(asked);
            let until = inner.epoch + Duration::from_millis(last) + deadline;
            match timeout_at(until, inner.download_slots.acquire()).await {
                Ok(permit) => {
                    let last = inner
                        .last_byte_ms
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .max(asked);
                    let stall = inner.epoch + Duration::from_millis(last) + deadline;
                    return Ok((permit.map_err(|_| closed(op))?, stall));
                }
                Err(_) => {
                    let now_last = inner
                        .last_byte_ms
                        .load(std::sync::atomic::Ordering::Relaxed);
                    if now_last <= last {
                        return Err(Error::Timeout {
                            op,
                            after: deadline,
                        });
                    }
                }
            }
        }
    }
}
