//! A bandwidth cap on one response body: `--conn-bytes-per-sec` and the
//! `bytes_per_sec` fault.
//!
//! The body's chunks are split into pieces of at most a twentieth of a
//! second's worth of bytes (so pacing is smooth), and each piece is held back
//! until the schedule allows it: a piece of `n` bytes takes `n / rate`
//! seconds of the schedule, which starts when the body is first polled. A
//! reader that falls behind (a slow client, a busy machine) banks at most one
//! piece of credit, so it cannot burst far above the rate when it catches
//! up. Pieces are zero-copy slices of the chunks ([`Bytes::split_to`]); no
//! lock is held anywhere, so nothing is held across the sleeps.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use super::files::CHUNK;

/// The largest piece sent at once at `bytes_per_sec`: a twentieth of a
/// second's worth, at least one byte, at most one generated chunk.
fn piece_len(bytes_per_sec: u64) -> usize {
    (bytes_per_sec / 20).clamp(1, CHUNK as u64) as usize
}

/// How long `n` bytes take at `bytes_per_sec`.
fn time_for(n: usize, bytes_per_sec: u64) -> Duration {
    let nanos = n as u128 * 1_000_000_000 / u128::from(bytes_per_sec.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

struct Paced<S> {
    inner: S,
    /// The rest of the chunk being sent.
    pending: Bytes,
    /// When the next piece may go (`None` before the first).
    next: Option<Instant>,
    /// The inner stream has ended (or failed).
    done: bool,
}

/// `stream` sent at no more than `bytes_per_sec` (see the module doc).
/// Errors and the end of the inner stream pass through at once.
pub(crate) fn throttle<S>(
    stream: S,
    bytes_per_sec: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    let rate = bytes_per_sec.max(1);
    let piece = piece_len(rate);
    let credit = time_for(piece, rate);
    let st = Paced {
        inner: stream,
        pending: Bytes::new(),
        next: None,
        done: false,
    };
    futures_util::stream::unfold(st, move |mut st| async move {
        while st.pending.is_empty() {
            if st.done {
                return None;
            }
            match st.inner.next().await {
                Some(Ok(b)) => st.pending = b,
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => return None,
            }
        }
        let now = Instant::now();
        let at = match st.next {
            None => now,
            // Behind schedule by more than one piece: forget the lost time.
            Some(t) => t.max(now.checked_sub(credit).unwrap_or(now)),
        };
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        let n = piece.min(st.pending.len());
        let out = st.pending.split_to(n);
        st.next = Some(at + time_for(n, rate));
        Some((Ok(out), st))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_times() {
        assert_eq!(piece_len(10), 1);
        assert_eq!(piece_len(2_000_000), 100_000);
        assert_eq!(piece_len(u64::MAX), CHUNK);
        assert_eq!(time_for(1_000, 2_000), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn paces_and_keeps_the_bytes() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(7_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let t0 = std::time::Instant::now();
        // 20 000 bytes at 100 000 B/s: pieces of 5 000, the first at once.
        let out: Vec<Bytes> = throttle(futures_util::stream::iter(chunks), 100_000)
            .map(|r| r.expect("chunk"))
            .collect()
            .await;
        assert!(
            t0.elapsed() >= Duration::from_millis(140),
            "{:?}",
            t0.elapsed()
        );
        assert!(out.iter().all(|b| b.len() <= 5_000));
        assert_eq!(out.concat(), data);
    }

    #[tokio::test]
    async fn errors_pass_through() {
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("cut")),
            Ok(Bytes::from_static(b"never")),
        ];
        let out: Vec<_> = throttle(futures_util::stream::iter(items), 1_000_000)
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert!(out[1].is_err());
    }
}
