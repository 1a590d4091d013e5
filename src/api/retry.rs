//! Which failures are retried, how long to wait, and the retry loop.
//!
//! Two budgets bound every call: a number of attempts and a deadline. The
//! deadline is enforced by the caller with `tokio::time::timeout_at` around
//! the whole loop (waiting for a connection slot, every attempt and every
//! backoff sleep), so no call can outlive it whatever the server does; the
//! loop itself also refuses to start a sleep that would end past the
//! deadline, so that a call out of time fails with the server's real answer
//! (a 503, a 429 whose Retry-After is too long) rather than a bare timeout.
//!
//! What may be retried depends on whether a repeat can do harm
//! ([`Idempotency`]): GETs and the PUT of inputs are retried after any
//! transient failure, but a POST or DELETE only when the server surely did
//! not act on it — no connection was made, or it answered 429 or 503. A
//! POST whose attempt timed out, or whose connection broke after sending,
//! may have started a run: it is reported, never repeated.

use super::error::Error;
use super::operation::{Idempotency, Operation};
use std::future::Future;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Capped exponential backoff with "equal jitter": attempt n waits between
/// half and all of `min(max, base * 2^(n-1))`, so that clients that failed
/// together do not retry together, and a wait is never zero.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            failures: 0,
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let full = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        let half = full / 2;
        let jitter_ms = fastrand::u64(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// Start over after progress (a download that delivered bytes).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try again, after the server's Retry-After if it gave one, else after backoff.
    Retry { after: Option<Duration> },
    /// Give up and report this error.
    Stop,
}

/// Whether `err` may be retried for an operation of this idempotency.
pub(crate) fn verdict(err: &Error, idem: Idempotency) -> Verdict {
    let repeatable = idem == Idempotency::Repeatable;
    match err {
        // 429: throttled, the request was not processed. 503: unavailable,
        // the request was not accepted. Both are safe for any method.
        Error::Status {
            status: 429 | 503,
            retry_after,
            ..
        } => Verdict::Retry {
            after: *retry_after,
        },
        Error::Status { status, .. } if (*status >= 500 || *status == 408) && repeatable => {
            Verdict::Retry { after: None }
        }
        Error::Status { .. } => Verdict::Stop,
        // Nothing reached the server.
        Error::Connect { .. } => Verdict::Retry { after: None },
        // The request may have been received and acted on.
        Error::Timeout { .. }
        | Error::Transport { .. }
        | Error::Truncated { .. }
        | Error::Decode { .. }
            if repeatable =>
        {
            Verdict::Retry { after: None }
        }
        _ => Verdict::Stop,
    }
}

/// The retry knobs taken from the client's configuration.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Run `attempt` until it succeeds, fails for good, runs out of attempts, or
/// would have to sleep past `deadline`. `on_retry` is told of each retry
/// (for the stats). The caller puts a `timeout_at(deadline)` around this.
pub(crate) async fn run<T, F, Fut>(
    op: Operation,
    policy: &RetryPolicy,
    deadline: Instant,
    on_retry: impl Fn(),
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut backoff = Backoff::new(policy.backoff_base, policy.backoff_max);
    let mut n = 0u32;
    loop {
        n += 1;
        let err = match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(wait) = next_wait(op, &err, n, policy, &mut backoff, deadline) else {
            return Err(err);
        };
        on_retry();
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait before attempt `n + 1`, or `None` to give up with `err`.
pub(crate) fn next_wait(
    op: Operation,
    err: &Error,
    n: u32,
    policy: &RetryPolicy,
    backoff: &mut Backoff,
    deadline: Instant,
) -> Option<Duration> {
    let after = match verdict(err, op.idempotency()) {
        Verdict::Stop => {
            tracing::debug!(%op, attempt = n, error = %err, "not retryable");
            return None;
        }
        Verdict::Retry { after } => after,
    };
    if n >= policy.max_attempts {
        tracing::warn!(%op, attempts = n, error = %err, "giving up: out of attempts");
        return None;
    }
    let wait = after.unwrap_or_else(|| backoff.next_delay());
    if Instant::now() + wait >= deadline {
        tracing::warn!(%op, attempts = n, wait = ?wait, error = %err, "giving up: the wait would pass the deadline");
        return None;
    }
    tracing::info!(%op, attempt = n, wait = ?wait, error = %err, "retrying");
    Some(wait)
}

/// Parse a Retry-After header: delay-seconds, or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
    }
    let when = parse_http_date(v)?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (the form RFC 9110 requires).
fn parse_http_date(v: &str) -> Option<SystemTime> {
    let rest = v.split_once(", ").map_or(v, |(_, r)| r);
    let mut parts = rest.split_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u32 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" {
        return None;
    }
    humantime::parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{time}Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
        assert!(d[2] >= Duration::from_millis(200) && d[2] <= Duration::from_millis(400));
        for x in &d[4..] {
            assert!(*x >= Duration::from_millis(500) && *x <= Duration::from_secs(1));
        }
    }

    #[test]
    fn post_is_retried_only_when_surely_not_applied() {
        let st = |status| Error::Status {
            op: Operation::StartExtractor,
            status,
            message: None,
            retry_after: None,
        };
        let once = Idempotency::Once;
        assert_eq!(verdict(&st(500), once), Verdict::Stop);
        assert_eq!(verdict(&st(502), once), Verdict::Stop);
        assert_eq!(verdict(&st(400), once), Verdict::Stop);
        assert!(matches!(verdict(&st(503), once), Verdict::Retry { .. }));
        assert!(matches!(verdict(&st(429), once), Verdict::Retry { .. }));
        let timeout = Error::Timeout {
            op: Operation::StartExtractor,
            after: Duration::from_secs(1),
        };
        assert_eq!(verdict(&timeout, once), Verdict::Stop);
        assert!(matches!(
            verdict(&timeout, Idempotency::Repeatable),
            Verdict::Retry { .. }
        ));
        let connect = Error::Connect {
            op: Operation::StartExtractor,
            detail: String::new(),
        };
        assert!(matches!(verdict(&connect, once), Verdict::Retry { .. }));
        assert!(matches!(
            verdict(&st(500), Idempotency::Repeatable),
            Verdict::Retry { .. }
        ));
        assert_eq!(verdict(&st(404), Idempotency::Repeatable), Verdict::Stop);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert!(parse_retry_after("soon").is_none());
        let future =
            humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(100))
                .to_string();
        // Build an IMF-fixdate from the RFC 3339 form.
        let (date, time) = future.trim_end_matches('Z').split_once('T').unwrap();
        let mut ymd = date.split('-');
        let (y, m, d) = (
            ymd.next().unwrap(),
            ymd.next().unwrap(),
            ymd.next().unwrap(),
        );
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mon = months[m.parse::<usize>().unwrap() - 1];
        let imf = format!("Mon, {d} {mon} {y} {time} GMT");
        let got = parse_retry_after(&imf).unwrap();
        assert!(
            got > Duration::from_secs(90) && got <= Duration::from_secs(100),
            "{got:?}"
        );
    }
}
