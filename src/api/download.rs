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
//!   A server that compresses anyway is inflated on the fly; ranges are then
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
//!   metadata calls. The stall deadline starts once the download slot is
//!   held: a download queued behind others is waiting its turn, not stalled.

use super::body::{content_encoding, content_length, Encoding, Inflater};
use super::client::{Client, FileRef};
use super::error::Error;
use super::ops::Operation;
use super::retry::{self, Backoff};
use super::transport::{closed, log_failure};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::time::Duration;
use tokio::time::{timeout, timeout_at, Instant};

/// What a download has so far, across attempts.
struct Progress<'a> {
    out: &'a std::fs::File,
    report: &'a (dyn Fn(u64) + Send + Sync),
    /// Bytes of the file written, contiguous from where this call started
    /// (offset 0 for a whole file), as a file offset.
    have: u64,
    /// The end (exclusive) of the range this call fetches; `None` for the
    /// whole file.
    limit: Option<u64>,
    /// The size the server promised, once known.
    expected: Option<u64>,
    /// Whether a retry may ask a Range (false once the server sent gzip).
    ranges: bool,
    /// When the call fails if no byte arrives before then.
    stall_deadline: Instant,
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

impl Progress<'_> {
    /// The bytes still wanted, as the `Range` header's `FIRST-LAST`.
    fn range_header(&self) -> Option<String> {
        match self.limit {
            Some(limit) => Some(format!("bytes={}-{}", self.have, limit - 1)),
            None if self.ranges && self.have > 0 => Some(format!("bytes={}-", self.have)),
            None => None,
        }
    }

    /// Whether every byte this call wants is written.
    fn complete(&self) -> bool {
        match (self.limit, self.expected) {
            (Some(limit), _) => self.have >= limit,
            (None, Some(expected)) => self.have >= expected,
            (None, None) => false,
        }
    }

    /// Write `data`, which starts at file offset `at`, keeping only what
    /// extends the contiguous prefix and lies within the range asked.
    fn put(
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
        if end <= self.have {
            return Ok(());
        }
        if at > self.have {
            return Err(Error::Protocol {
                op,
                detail: format!("bytes from offset {at} when {} were expected", self.have),
            });
        }
        if let Some(expected) = self.expected {
            if end > expected {
                return Err(Error::Protocol {
                    op,
                    detail: format!("more than the {expected} bytes promised"),
                });
            }
        }
        // The slices of `data` that fall in `have..end`.
        let mut slices: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(data.len());
        let mut pos = at;
        for b in data {
            let (s, e) = (pos.max(self.have), (pos + b.len() as u64).min(end));
            if s < e {
                slices.push(std::io::IoSlice::new(
                    &b[(s - pos) as usize..(e - pos) as usize],
                ));
            }
            pos += b.len() as u64;
        }
        write_all_vectored_at(self.out, &mut slices, self.have)
            .map_err(|source| Error::Io { op, source })?;
        client.inner.counters.bytes(end - self.have);
        self.have = end;
        self.stall_deadline = Instant::now() + client.inner.cfg.call_deadline;
        client.note_progress();
        (self.report)(self.have);
        Ok(())
    }

    /// The moment the current wait must end: the attempt's own timeout or the
    /// call's stall deadline, whichever comes first.
    fn wait_until(&self, client: &Client) -> (Instant, Duration) {
        let cfg = &client.inner.cfg;
        let attempt = Instant::now() + cfg.attempt_timeout;
        if attempt <= self.stall_deadline {
            (attempt, cfg.attempt_timeout)
        } else {
            (self.stall_deadline, cfg.call_deadline)
        }
    }
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
    /// written, and cuts `out` to that size.
    ///
    /// `out` must be open for writing and not with `O_APPEND` (positional
    /// writes on an append-mode file land at its end on Linux). Waiting for
    /// one of the `max_concurrent_downloads` slots is queueing, not a stall,
    /// and has no deadline: every download ahead is itself bounded.
    pub async fn download(
        &self,
        f: &FileRef,
        out: &std::fs::File,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, Error> {
        let result = self.fetch(f, out, progress, 0, None, None).await;
        let op = f.operation();
        let result = result.and_then(|attempt| match attempt {
            Attempt::Complete(total) => {
                out.set_len(total)
                    .map_err(|source| Error::Io { op, source })?;
                Ok(total)
            }
            // A whole-file call asks no range, so it cannot be refused one.
            Attempt::RangeRefused => Err(Error::Protocol {
                op,
                detail: "a range refused that was not asked".into(),
            }),
        });
        self.downloaded(f, &result);
        result
    }

    /// Download bytes `start..end` of a result file of `size` bytes into
    /// `out` at their offsets, with `Range: bytes=START-(END-1)`, calling
    /// `progress` with the offset reached (contiguous from `start`). A cut
    /// answer is resumed from the first missing byte; every answer's
    /// `Content-Range` must give the same total `size`, or the call fails
    /// (the file changed, or its size was a lie). A server that answers the
    /// range with the whole file (200) or compressed gives
    /// [`RangeOutcome::Unsupported`] at once, before any byte is written:
    /// the caller then fetches the file whole with [`Client::download`].
    pub async fn download_range(
        &self,
        f: &FileRef,
        out: &std::fs::File,
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
            .fetch(f, out, progress, start, Some(end), Some(size))
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
                tracing::debug!(op = %f.operation(), run = f.run_id(), file = f.file_name(), ?outcome, "downloaded");
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
        out: &std::fs::File,
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
        let mut state = Progress {
            out,
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

    /// One attempt: slots, request (with Range when resuming or ranged),
    /// stream to the file.
    async fn download_attempt(
        &self,
        op: Operation,
        url: &Url,
        st: &mut Progress<'_>,
    ) -> Result<Attempt, Error> {
        let inner = &self.inner;
        let (until, after) = (st.stall_deadline, inner.cfg.call_deadline);
        let _slot = timeout_at(until, inner.slots.acquire())
            .await
            .map_err(|_| Error::Timeout { op, after })?
            .map_err(|_| closed(op))?;
        let _in_flight = inner.counters.call_started();

        let range = st.range_header();
        let ranged = st.limit.is_some();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Some(v) = range.as_deref().and_then(|r| HeaderValue::from_str(r).ok()) {
            headers.insert(header::RANGE, v);
        }
        let (until, after) = st.wait_until(self);
        let send = self.send_following(op, Method::GET, url.clone(), headers, None);
        let resp = match timeout_at(until, send).await {
            Err(_) => return Err(Error::Timeout { op, after }),
            Ok(Err(e)) => {
                // Asked for bytes past the end: we already have them all.
                if e.status() == Some(416)
                    && range.is_some()
                    && !ranged
                    && st.expected == Some(st.have)
                {
                    return Ok(Attempt::Complete(st.have));
                }
                // Bytes past the end when we hold fewer than promised: the
                // promise (Content-Length, or the size a range was asked
                // of) was wrong; say so plainly.
                if e.status() == Some(416) && range.is_some() {
                    if let Some(expected) = st.expected.filter(|&x| x > st.have) {
                        return Err(Error::Protocol {
                            op,
                            detail: format!(
                                "the server promised {expected} bytes but has no byte {}",
                                st.have
                            ),
                        });
                    }
                }
                return Err(e);
            }
            Ok(Ok(resp)) => resp,
        };

        let status = resp.status();
        let encoding = content_encoding(resp.headers());
        let length = content_length(resp.headers());
        if ranged && (status != StatusCode::PARTIAL_CONTENT || encoding != Encoding::Identity) {
            return Ok(Attempt::RangeRefused);
        }
        let (start, total) = match (status, &encoding) {
            (StatusCode::PARTIAL_CONTENT, Encoding::Identity) if range.is_some() => {
                let range = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| Error::Protocol {
                        op,
                        detail: "a 206 without a readable Content-Range".into(),
                    })?;
                (range.0, range.1)
            }
            (StatusCode::PARTIAL_CONTENT, Encoding::Gzip) => {
                // A compressed range counts compressed bytes: ask the whole again.
                st.ranges = false;
                return Err(Error::Transport {
                    op,
                    detail: "a gzip-encoded partial answer".into(),
                });
            }
            (StatusCode::PARTIAL_CONTENT, _) => {
                return Err(Error::Protocol {
                    op,
                    detail: "a partial answer that was not asked for".into(),
                })
            }
            (_, Encoding::Identity) => (0, length),
            (_, Encoding::Gzip) => {
                st.ranges = false;
                (0, None)
            }
            (_, Encoding::Other(name)) => {
                return Err(Error::Protocol {
                    op,
                    detail: format!(
                        "unsupported Content-Encoding {:?}",
                        self.inner.redactor.message(name)
                    ),
                })
            }
        };
        if start > st.have {
            return Err(Error::Protocol {
                op,
                detail: format!("a range from {start} when {} was asked", st.have),
            });
        }
        if let Some(total) = total {
            match st.expected {
                Some(expected) if expected != total => {
                    return Err(Error::Protocol {
                        op,
                        detail: format!("the file changed size ({expected} then {total} bytes)"),
                    })
                }
                _ => st.expected = Some(total),
            }
        } else if ranged {
            // `bytes a-b/*`: nothing to check the size we ranged over against.
            return Ok(Attempt::RangeRefused);
        }

        let mut inflater = (encoding == Encoding::Gzip).then(Inflater::new);
        let mut stream = resp.bytes_stream();
        let mut offset = start;
        let mut received = 0u64;
        // Chunks from the socket are small (often 16 KiB); writing and
        // announcing each one cost a syscall and a reader wake-up per chunk.
        // While chunks keep arriving they are gathered, up to WRITE_BATCH
        // bytes, and written with one pwritev (no copy into one buffer); the
        // batch is written as soon as the next chunk is not already there,
        // so a slow or stalled server never holds bytes back from readers,
        // and a resume starts from every byte that came.
        let mut batch: Vec<Bytes> = Vec::with_capacity(64);
        let mut batch_len = 0usize;
        let mut batch_at = offset;
        loop {
            if st.limit.is_some_and(|limit| offset >= limit) {
                // Every byte asked for has come: a server that sends more
                // than the range is not read further.
                break;
            }
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => {
                    st.put(self, op, batch_at, &batch)?;
                    batch.clear();
                    batch_len = 0;
                    let (until, after) = st.wait_until(self);
                    match timeout_at(until, stream.next()).await {
                        Err(_) => return Err(Error::Timeout { op, after }),
                        Ok(next) => next,
                    }
                }
            };
            let chunk: Bytes = match next {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    st.put(self, op, batch_at, &batch)?;
                    let e = self.transport_error(op, e);
                    return Err(match (length, &inflater) {
                        (Some(expected), None) => Error::Truncated {
                            op,
                            got: received,
                            expected,
                        },
                        _ => e,
                    });
                }
            };
            received += chunk.len() as u64;
            let data = match &mut inflater {
                Some(inf) => Bytes::from(inf.feed(op, &chunk)?),
                None => chunk,
            };
            if batch.is_empty() {
                batch_at = offset;
            }
            offset += data.len() as u64;
            batch_len += data.len();
            batch.push(data);
            if batch_len >= WRITE_BATCH {
                st.put(self, op, batch_at, &batch)?;
                batch.clear();
                batch_len = 0;
            }
        }
        st.put(self, op, batch_at, &batch)?;
        if let Some(inf) = inflater.take() {
            let tail = Bytes::from(inf.finish(op)?);
            st.put(self, op, offset, &[tail])?;
        }
        if st.complete() {
            return Ok(Attempt::Complete(st.have));
        }
        if let Some(length) = length {
            if received < length {
                return Err(Error::Truncated {
                    op,
                    got: received,
                    expected: length,
                });
            }
        }
        match (st.limit, st.expected) {
            (Some(limit), _) => Err(Error::Truncated {
                op,
                got: st.have,
                expected: limit,
            }),
            (None, Some(expected)) if st.have < expected => Err(Error::Truncated {
                op,
                got: st.have,
                expected,
            }),
            _ => Ok(Attempt::Complete(st.have)),
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

/// `pwritev` of every byte of `slices` at `offset`: one syscall for a batch
/// of received chunks instead of a copy into one buffer and a `pwrite`.
fn write_all_vectored_at(
    file: &std::fs::File,
    mut slices: &mut [std::io::IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
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

/// How many bytes a download gathers before writing them to the file.
const WRITE_BATCH: usize = 256 * 1024;

/// `bytes START-END/TOTAL` → (START, TOTAL), TOTAL `None` when `*`.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    if total.is_some_and(|t| end >= t) {
        return None;
    }
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 10-100/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
