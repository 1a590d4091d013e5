//! One attempt of a download: a connection slot, the request (with Range
//! when resuming or ranged), the checks, and the body streamed into the
//! file.
//!
//! What is subtle here is batching. Chunks from the socket are small (often
//! 16 KiB); writing and announcing each one would cost a syscall and a
//! reader wake-up per chunk. While chunks keep arriving they are gathered,
//! up to [`WRITE_BATCH`] bytes, and written with one pwritev (no copy into
//! one buffer); the batch is written as soon as the next chunk is not
//! already there, so a slow or stalled server never holds bytes back from
//! readers, and a resume starts from every byte that came. Each wait (the
//! headers, the next chunk) ends at the attempt's timeout or the call's
//! stall deadline, whichever comes first.

use super::checks::{self, Body, Step};
use super::progress::Progress;
use super::Attempt;
use crate::api::body::Inflater;
use crate::api::client::Client;
use crate::api::error::{closed, Error};
use crate::api::operation::Operation;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use tokio::time::timeout_at;

/// How many bytes a download gathers before writing them to the file.
const WRITE_BATCH: usize = 256 * 1024;

/// Chunks received and not yet written, and the file offset of the first.
struct Batch {
    chunks: Vec<Bytes>,
    len: usize,
    at: u64,
}

impl Batch {
    fn new(at: u64) -> Batch {
        Batch {
            chunks: Vec::with_capacity(64),
            len: 0,
            at,
        }
    }

    /// Add `data`, which starts at file offset `offset`; whether the batch
    /// is now full.
    fn push(&mut self, offset: u64, data: Bytes) -> bool {
        if self.chunks.is_empty() {
            self.at = offset;
        }
        self.len += data.len();
        self.chunks.push(data);
        self.len >= WRITE_BATCH
    }

    /// Write what is gathered (see [`Progress::put`]) and start afresh.
    async fn write(
        &mut self,
        client: &Client,
        op: Operation,
        st: &mut Progress<'_>,
    ) -> Result<(), Error> {
        st.put(client, op, self.at, &self.chunks).await?;
        self.chunks.clear();
        self.len = 0;
        Ok(())
    }
}

impl Client {
    /// One attempt: slots, request (with Range when resuming or ranged),
    /// checks, stream to the file.
    pub(super) async fn download_attempt(
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
        let resp = match self.send_download(op, url, range.as_deref(), st).await? {
            Step::Go(resp) => resp,
            Step::Done(attempt) => return Ok(attempt),
        };
        let body = match self.check_answer(op, &resp, range.is_some(), st)? {
            Step::Go(body) => body,
            Step::Done(attempt) => return Ok(attempt),
        };
        let received = self.stream_body(op, resp, &body, st).await?;
        checks::verdict(op, st, received, body.length)
    }

    /// Send the GET, asking identity and `range`, within the current wait.
    async fn send_download(
        &self,
        op: Operation,
        url: &Url,
        range: Option<&str>,
        st: &Progress<'_>,
    ) -> Result<Step<reqwest::Response>, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Some(v) = range.and_then(|r| HeaderValue::from_str(r).ok()) {
            headers.insert(header::RANGE, v);
        }
        let (until, after) = st.wait_until(self);
        let send = self.send_following(op, Method::GET, url.clone(), headers, None);
        match timeout_at(until, send).await {
            Err(_) => Err(Error::Timeout { op, after }),
            Ok(Err(e)) => checks::after_error(op, e, range.is_some(), st).map(Step::Done),
            Ok(Ok(resp)) => Ok(Step::Go(resp)),
        }
    }

    /// Stream the body into the file in batches (see the module doc),
    /// inflating it when gzip; the bytes received on the wire.
    async fn stream_body(
        &self,
        op: Operation,
        resp: reqwest::Response,
        body: &Body,
        st: &mut Progress<'_>,
    ) -> Result<u64, Error> {
        let mut inflater = body.gzip.then(Inflater::new);
        let mut stream = resp.bytes_stream();
        let mut offset = body.start;
        let mut received = 0u64;
        let mut batch = Batch::new(offset);
        loop {
            if st.limit.is_some_and(|limit| offset >= limit) {
                // Every byte asked for has come: a server that sends more
                // than the range is not read further.
                break;
            }
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => {
                    batch.write(self, op, st).await?;
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
                    batch.write(self, op, st).await?;
                    let e = self.transport_error(op, e);
                    return Err(match (body.length, &inflater) {
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
                Some(inf) => Bytes::from(inf.feed(op, chunk).await?),
                None => chunk,
            };
            let len = data.len() as u64;
            if batch.push(offset, data) {
                batch.write(self, op, st).await?;
            }
            offset += len;
        }
        batch.write(self, op, st).await?;
        if let Some(inf) = inflater.take() {
            let tail = Bytes::from(inf.finish(op)?);
            st.put(self, op, offset, &[tail]).await?;
        }
        Ok(received)
    }
}
