//! Answer bodies: their length and encoding, reading a whole one, and
//! inflating gzip.
//!
//! What is subtle here:
//! - **Bodies are decompressed here, not by reqwest.** JSON calls ask for
//!   gzip and are inflated after the raw bytes were checked against
//!   Content-Length; downloads ask for identity so that byte ranges mean
//!   file offsets (see `crate::api::download`). reqwest's transparent gzip
//!   would hide the Content-Length, and with it truncation.
//! - **Limits count inflated bytes.** A few KiB of gzip can inflate to
//!   megabytes, so a whole body is inflated only up to its limit plus one
//!   byte.

use super::client::Client;
use super::error::Error;
use super::ops::Operation;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use std::io::{Read as _, Write as _};

/// The most of an error body read for its message.
pub(super) const MAX_ERROR_BODY: usize = 64 << 10;

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
            Encoding::Gzip => inflate_whole(op, &raw, limit),
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
fn inflate_whole(op: Operation, raw: &[u8], limit: usize) -> Result<Bytes, Error> {
    let out = inflate_upto(op, raw, limit)?;
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

/// Inflates a gzip body as it streams, handing out what is ready.
pub(super) struct Inflater {
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
}

impl Inflater {
    pub(super) fn new() -> Inflater {
        Inflater {
            decoder: flate2::write::MultiGzDecoder::new(Vec::new()),
        }
    }

    pub(super) fn feed(&mut self, op: Operation, chunk: &[u8]) -> Result<Vec<u8>, Error> {
        self.decoder
            .write_all(chunk)
            .map_err(|e| gzip_error(op, e))?;
        Ok(std::mem::take(self.decoder.get_mut()))
    }

    pub(super) fn finish(mut self, op: Operation) -> Result<Vec<u8>, Error> {
        self.decoder.try_finish().map_err(|e| gzip_error(op, e))?;
        Ok(std::mem::take(self.decoder.get_mut()))
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
