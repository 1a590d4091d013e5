//! Answer bodies: their length and encoding, reading a whole one, and
//! inflating gzip off the async workers.
//!
//! What is subtle here:
//! - **Bodies are decompressed here, not by reqwest.** JSON calls ask for
//!   gzip and are inflated after the raw bytes were checked against
//!   Content-Length; downloads ask for identity so that byte ranges mean
//!   file offsets (see `download/`). reqwest's transparent gzip
//!   would hide the Content-Length, and with it truncation.
//! - **Limits count inflated bytes.** A few KiB of gzip can inflate to
//!   megabytes, so a whole body is inflated only up to its limit plus one
//!   byte, and the work of inflating is judged by its output, never by the
//!   size of what came over the wire.
//! - **Inflating is CPU work, kept off the async workers.** A whole body is
//!   inflated on the worker only up to [`INLINE_INFLATE`] bytes (an object
//!   or a short page, some tens of microseconds); one that inflates to more
//!   is inflated again from its start with `spawn_blocking`. A download's
//!   gzip stream is inflated chunk by chunk with `spawn_blocking`
//!   ([`Inflater::feed`]). Neither changes what is accepted: the same
//!   limits and the same errors as inflating in place. One difference in
//!   timing only: the attempt's timeout can now end a long inflate, where
//!   before it was noticed only once the inflate was done.

use super::client::Client;
use super::error::{closed, Error};
use super::operation::Operation;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use std::io::{Read as _, Write as _};

/// The most of an error body read for its message.
pub(super) const MAX_ERROR_BODY: usize = 64 << 10;

/// How many inflated bytes of a whole body are inflated on the async
/// worker before the work moves to a blocking thread. 32 KiB is more than
/// one object or a short page usually inflates to; inflating it took about
/// 40 µs in a release build on a small VM (most of it setting up the
/// decoder), within what a task may take between two awaits and of the
/// order of the two thread wake-ups a trip to the blocking pool costs.
/// A 1 MiB page took 0.9 ms: that one goes to the pool.
const INLINE_INFLATE: usize = 32 << 10;

impl Client {
    /// The whole body, checked against Content-Length and inflated if gzip.
    pub(super) async fn read_body(
        &self,
        op: Operation,
        resp: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let encoding = content_encoding(resp.headers());
        let raw = self.read_raw(op, resp, limit).await?;
        match encoding {
            Encoding::Identity => Ok(Bytes::from(raw)),
            Encoding::Gzip => inflate_whole(op, raw, limit).await,
            Encoding::Other(name) => Err(Error::Protocol {
                op,
                detail: format!(
                    "unsupported Content-Encoding {:?}",
                    self.inner.redactor.message(&name)
                ),
            }),
        }
    }

    /// The bytes of the body as they came over the wire, at most `limit`,
    /// and no fewer than its Content-Length promised.
    async fn read_raw(
        &self,
        op: Operation,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, Error> {
        let expected = content_length(resp.headers());
        let mut raw = Vec::with_capacity(expected.unwrap_or(0).min(limit as u64) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if raw.len() + chunk.len() > limit {
                        return Err(too_large(op, limit));
                    }
                    raw.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(match expected {
                        Some(expected) => Error::Truncated {
                            op,
                            got: raw.len() as u64,
                            expected,
                        },
                        None => self.transport_error(op, e),
                    })
                }
            }
        }
        if let Some(expected) = expected {
            if (raw.len() as u64) < expected {
                return Err(Error::Truncated {
                    op,
                    got: raw.len() as u64,
                    expected,
                });
            }
        }
        Ok(raw)
    }
}

fn too_large(op: Operation, limit: usize) -> Error {
    Error::Protocol {
        op,
        detail: format!("answer larger than {limit} bytes"),
    }
}

/// A whole gzip body, inflated, of at most `limit` bytes.
///
/// The first pass, on this worker, stops after [`INLINE_INFLATE`] bytes of
/// output whatever the input; only a body that inflates to more is
/// inflated again, from its start, on a blocking thread. Inflating is
/// deterministic, so a stream that is broken within the bytes the first
/// pass saw fails the same way the second pass would.
async fn inflate_whole(op: Operation, raw: Vec<u8>, limit: usize) -> Result<Bytes, Error> {
    let inline = limit.min(INLINE_INFLATE);
    let mut out = inflate_upto(op, &raw, inline)?;
    if out.len() > inline && inline < limit {
        out = off_worker(op, move || inflate_upto(op, &raw, limit)).await??;
    }
    if out.len() > limit {
        return Err(too_large(op, limit));
    }
    Ok(Bytes::from(out))
}

/// `raw` inflated, stopping once more than `limit` bytes came out (the
/// caller tells "too large" by the length).
fn inflate_upto(op: Operation, raw: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Decode {
            op,
            detail: format!("gzip: {e}"),
        })?;
    Ok(out)
}

/// Run CPU-bound `work` on tokio's blocking pool. A panic in it is a panic
/// here, as it would have been inline; a runtime that shuts down and will
/// not run it is the client shutting down.
async fn off_worker<T, F>(op: Operation, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(closed(op)),
    }
}

/// Inflates a gzip body as it streams, handing out what is ready.
pub(super) struct Inflater {
    /// `None` only while a chunk is being inflated on the blocking pool
    /// (or after that was abandoned, when the attempt is gone too).
    decoder: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
}

impl Inflater {
    pub(super) fn new() -> Inflater {
        Inflater {
            decoder: Some(flate2::write::MultiGzDecoder::new(Vec::new())),
        }
    }

    /// The bytes `chunk` inflates to. Always on the blocking pool: a chunk
    /// of a few KiB may inflate to megabytes, and this is the path of a
    /// server that compresses a file it was asked for as is, where a
    /// thread hop per chunk costs little next to the inflating.
    pub(super) async fn feed(&mut self, op: Operation, chunk: Bytes) -> Result<Vec<u8>, Error> {
        let Some(mut decoder) = self.decoder.take() else {
            return Err(gzip_error(op, std::io::Error::other("inflater lost")));
        };
        let (decoder, out) = off_worker(op, move || {
            let out = decoder
                .write_all(&chunk)
                .map(|()| std::mem::take(decoder.get_mut()));
            (decoder, out)
        })
        .await?;
        self.decoder = Some(decoder);
        out.map_err(|e| gzip_error(op, e))
    }

    /// The last bytes, once the gzip trailer (CRC and length) is checked.
    /// Inline: it only drains what the decoder already holds, at most its
    /// own buffer.
    pub(super) fn finish(mut self, op: Operation) -> Result<Vec<u8>, Error> {
        let Some(mut decoder) = self.decoder.take() else {
            return Err(gzip_error(op, std::io::Error::other("inflater lost")));
        };
        decoder.try_finish().map_err(|e| gzip_error(op, e))?;
        Ok(std::mem::take(decoder.get_mut()))
    }
}

/// A broken gzip stream is most likely a cut one: retryable like a transport error.
fn gzip_error(op: Operation, e: std::io::Error) -> Error {
    Error::Transport {
        op,
        detail: format!("gzip: {e}"),
    }
}

pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Other(String),
}

pub(crate) fn content_encoding(h: &HeaderMap) -> Encoding {
    let Some(v) = h
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return Encoding::Identity;
    };
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "identity" => Encoding::Identity,
        "gzip" | "x-gzip" => Encoding::Gzip,
        _ => Encoding::Other(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Text that compresses about as well as a JSON page.
    fn page(len: usize) -> Vec<u8> {
        (0u32..)
            .flat_map(|i| {
                format!("{{\"guid\":\"{i:08x}\",\"name\":\"n{}\"}},", i % 97).into_bytes()
            })
            .take(len)
            .collect()
    }

    const OP: Operation = Operation::ListExtractors;

    #[tokio::test]
    async fn whole_bodies_inflate_the_same_on_either_side_of_the_inline_limit() {
        for len in [
            0,
            1,
            INLINE_INFLATE - 1,
            INLINE_INFLATE,
            INLINE_INFLATE + 1,
            1 << 20,
        ] {
            let data = page(len);
            let out = inflate_whole(OP, gzip(&data), 64 << 20).await.unwrap();
            assert!(out == data, "{len} bytes");
            // Exactly at the limit is fine; one byte over is not.
            assert_eq!(
                inflate_whole(OP, gzip(&data), len).await.unwrap().len(),
                len
            );
            if len > 0 {
                let e = inflate_whole(OP, gzip(&data), len - 1).await.unwrap_err();
                assert!(matches!(e, Error::Protocol { .. }), "{len}: {e}");
            }
        }
    }

    #[tokio::test]
    async fn broken_gzip_fails_whether_inflated_inline_or_not() {
        for len in [100, 1 << 20] {
            let mut gz = gzip(&page(len));
            // A wrong CRC in the trailer: seen only at the very end.
            let at = gz.len() - 8;
            gz[at] ^= 0xff;
            let e = inflate_whole(OP, gz.clone(), 64 << 20).await.unwrap_err();
            assert!(matches!(e, Error::Decode { .. }), "{len}: {e}");
            // Cut short.
            gz.truncate(gz.len() / 2);
            let e = inflate_whole(OP, gz, 64 << 20).await.unwrap_err();
            assert!(matches!(e, Error::Decode { .. }), "{len}: {e}");
        }
    }

    #[tokio::test]
    async fn a_streamed_body_inflates_chunk_by_chunk_and_checks_its_trailer() {
        let data = page(300_000);
        let gz = gzip(&data);
        let mut inf = Inflater::new();
        let mut out = Vec::new();
        for chunk in gz.chunks(16 << 10) {
            out.extend(inf.feed(OP, Bytes::copy_from_slice(chunk)).await.unwrap());
        }
        out.extend(inf.finish(OP).unwrap());
        assert!(out == data);

        let mut inf = Inflater::new();
        inf.feed(OP, Bytes::copy_from_slice(&gz[..gz.len() - 4]))
            .await
            .unwrap();
        let e = inf.finish(OP).unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e}");
    }
}
