//! What a download answer must satisfy: before its body is read (status,
//! encoding, Content-Range, the size it promises) and once the body ended.
//!
//! What is subtle here:
//! - **A size is promised once.** The size a ranged call was given, else
//!   the first Content-Length of a 200 or total of a 206's Content-Range,
//!   becomes the size; an answer that gives another is a file that changed
//!   under us (or a lie) and fails the call, so two halves of different
//!   files are never stitched together.
//! - **A ranged call never guesses.** A plain 200, a compressed 206 or a
//!   `bytes a-b/*` answer to a range leave nothing to check the range
//!   against: the caller is told the server does not serve ranges of this
//!   file ([`Attempt::RangeRefused`]) and fetches it whole instead.
//! - **A 416 to a resume** is a success when every promised byte is already
//!   held (a whole-file call only); when fewer are held, it fails with an
//!   error that says the promised size was wrong.
//! - **Ending early is never complete.** A body that ends before its
//!   Content-Length, the range or the promised size is
//!   [`Error::Truncated`], which the retry loop resumes.

use super::progress::Progress;
use super::Attempt;
use crate::api::body::{content_encoding, content_length, Encoding};
use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::operation::Operation;
use reqwest::header;
use reqwest::StatusCode;

/// What an answer that passed the checks leaves to read.
pub(super) struct Body {
    /// The file offset of its first byte.
    pub(super) start: u64,
    /// Its Content-Length (on the wire: compressed, when gzip).
    pub(super) length: Option<u64>,
    /// Whether it must be inflated.
    pub(super) gzip: bool,
}

/// Either a body to read, or an attempt already decided.
pub(super) enum Step<T> {
    Go(T),
    Done(Attempt),
}

/// What an error answer to a download request means, when a range was
/// asked (`asked_range`): a 416 is either "you have it all" or "the size
/// promised was wrong".
pub(super) fn after_error(
    op: Operation,
    e: Error,
    asked_range: bool,
    st: &Progress<'_>,
) -> Result<Attempt, Error> {
    let ranged = st.limit.is_some();
    // Asked for bytes past the end: we already have them all.
    if e.status() == Some(416) && asked_range && !ranged && st.expected == Some(st.have) {
        return Ok(Attempt::Complete(st.have));
    }
    // Bytes past the end when we hold fewer than promised: the
    // promise (Content-Length, or the size a range was asked
    // of) was wrong; say so plainly.
    if e.status() == Some(416) && asked_range {
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
    Err(e)
}

impl Client {
    /// Check an answer's status, encoding and size before reading its body
    /// (`asked_range`: whether the request carried a Range). Learns the
    /// file's size into `st`, and stops asking ranges once the server sent
    /// gzip.
    pub(super) fn check_answer(
        &self,
        op: Operation,
        resp: &reqwest::Response,
        asked_range: bool,
        st: &mut Progress<'_>,
    ) -> Result<Step<Body>, Error> {
        let ranged = st.limit.is_some();
        let status = resp.status();
        let encoding = content_encoding(resp.headers());
        let length = content_length(resp.headers());
        if ranged && (status != StatusCode::PARTIAL_CONTENT || encoding != Encoding::Identity) {
            return Ok(Step::Done(Attempt::RangeRefused));
        }
        let (start, total) = self.answer_span(op, resp, &encoding, length, asked_range, st)?;
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
            return Ok(Step::Done(Attempt::RangeRefused));
        }
        Ok(Step::Go(Body {
            start,
            length,
            gzip: encoding == Encoding::Gzip,
        }))
    }

    /// Where the answer's bytes start in the file, and the file's size if
    /// the answer says it: from Content-Range for a 206, from
    /// Content-Length for a whole identity body, unknown for gzip.
    fn answer_span(
        &self,
        op: Operation,
        resp: &reqwest::Response,
        encoding: &Encoding,
        length: Option<u64>,
        asked_range: bool,
        st: &mut Progress<'_>,
    ) -> Result<(u64, Option<u64>), Error> {
        match (resp.status(), encoding) {
            (StatusCode::PARTIAL_CONTENT, Encoding::Identity) if asked_range => {
                let range = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| Error::Protocol {
                        op,
                        detail: "a 206 without a readable Content-Range".into(),
                    })?;
                Ok((range.0, range.1))
            }
            (StatusCode::PARTIAL_CONTENT, Encoding::Gzip) => {
                // A compressed range counts compressed bytes: ask the whole again.
                st.ranges = false;
                Err(Error::Transport {
                    op,
                    detail: "a gzip-encoded partial answer".into(),
                })
            }
            (StatusCode::PARTIAL_CONTENT, _) => Err(Error::Protocol {
                op,
                detail: "a partial answer that was not asked for".into(),
            }),
            (_, Encoding::Identity) => Ok((0, length)),
            (_, Encoding::Gzip) => {
                st.ranges = false;
                Ok((0, None))
            }
            (_, Encoding::Other(name)) => Err(Error::Protocol {
                op,
                detail: format!(
                    "unsupported Content-Encoding {:?}",
                    self.inner.redactor.message(name)
                ),
            }),
        }
    }
}

/// How an attempt whose body ended without an error came out: complete,
/// or cut short of its Content-Length, its range or the promised size.
/// `received` counts the bytes on the wire (before inflating).
pub(super) fn verdict(
    op: Operation,
    st: &Progress<'_>,
    received: u64,
    length: Option<u64>,
) -> Result<Attempt, Error> {
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
