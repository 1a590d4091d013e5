//! Fault injection: latency, 500s, 429s, a fixed error status, truncated
//! bodies, dropped connections, runs that stay unknown after a start, and a
//! bandwidth cap on result-file bodies.
//!
//! Faults are looked up per request by operationId; an exact match wins over
//! `*`. Each kind has its own random draw (fastrand), so rates are independent
//! and a rate of 1.0 always fires. Hooks (`/_emulator/`) are never faulted.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault rule: the JSON body of `POST /_emulator/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The spec's operationId (`getCrawlrunFile`, ...) or `*` for all.
    pub operation: String,
    /// Added latency in milliseconds (or the low end with `latency_max_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// When set, the latency is uniform in `latency_ms..=latency_max_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max_ms: Option<u64>,
    /// Chance of a 500 with the Error body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Chance of a 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<f64>,
    /// The `Retry-After` of a 429, in seconds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Chance that the body stops half way short of its `Content-Length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_rate: Option<f64>,
    /// Chance that the connection is closed without an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    /// Send result-file bodies (`getCrawlrunFile`, `getReportRunFile`) at no
    /// more than this many bytes per second per response, instead of
    /// [`Config::conn_bytes_per_sec`](super::Config::conn_bytes_per_sec).
    /// Other answers are not slowed. Must be above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<u64>,
    /// Answer every request with this status (400..=599) and the Error body
    /// instead of running the operation: a 404 or 405 is how a server that
    /// lacks the operation answers (`listExtractorCrawlruns` on a server
    /// of the seed spec, for tests of a client's fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For the operations this rule covers, a run made by a start is
    /// unknown (404, left out of listings) for this many milliseconds
    /// after it started; overrides [`crate::emulator::Config::new_run_404_ms`]
    /// (0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_run_404_ms: Option<u64>,
}

impl FaultSpec {
    /// Reject rates outside 0..=1, a `bytes_per_sec` of 0 and an empty
    /// operation.
    pub fn validate(&self) -> Result<(), String> {
        if self.operation.is_empty() {
            return Err("operation must be an operationId or \"*\"".into());
        }
        if self.bytes_per_sec == Some(0) {
            return Err("bytes_per_sec must be above 0".into());
        }
        for (name, r) in [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
            ("truncate_rate", self.truncate_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if let Some(r) = r {
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!("{name} must be between 0 and 1"));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (self.latency_ms, self.latency_max_ms) {
            if hi < lo {
                return Err("latency_max_ms must be at least latency_ms".into());
            }
        }
        if self.status.is_some_and(|s| !(400..=599).contains(&s)) {
            return Err("status must be an error status, 400 to 599".into());
        }
        Ok(())
    }
}

/// What the draws decided for one request.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    pub latency: Option<Duration>,
    pub drop: bool,
    pub error: bool,
    /// `Some(retry_after_s)` for a 429.
    pub throttle: Option<u64>,
    pub truncate: bool,
    /// The rule's bandwidth cap on a result-file body.
    pub bytes_per_sec: Option<u64>,
    /// `Some(status)`: answer it instead of running the operation.
    pub status: Option<u16>,
    /// `Some(ms)`: how long a started run stays unknown, for this request.
    pub new_run_404_ms: Option<u64>,
}

fn hit(rate: Option<f64>) -> bool {
    match rate {
        Some(r) if r >= 1.0 => true,
        Some(r) if r > 0.0 => fastrand::f64() < r,
        _ => false,
    }
}

/// The active faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultSpec>>,
}

impl Faults {
    pub fn new(initial: Vec<FaultSpec>) -> Faults {
        let f = Faults::default();
        f.set(initial);
        f
    }

    /// Add rules; a rule replaces an earlier one for the same operation.
    pub fn set(&self, specs: Vec<FaultSpec>) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        for s in specs {
            rules.retain(|r| r.operation != s.operation);
            rules.push(s);
        }
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn list(&self) -> Vec<FaultSpec> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Draw the faults for one request of `operation`.
    pub fn decide(&self, operation: &str) -> Decision {
        let rule = {
            let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            rules
                .iter()
                .find(|r| r.operation == operation)
                .or_else(|| rules.iter().find(|r| r.operation == "*"))
                .cloned()
        };
        let Some(r) = rule else {
            return Decision::default();
        };
        let latency = match (r.latency_ms, r.latency_max_ms) {
            (Some(lo), Some(hi)) if hi > lo => Some(fastrand::u64(lo..=hi)),
            (Some(lo), _) => Some(lo),
            (None, Some(hi)) => Some(fastrand::u64(0..=hi)),
            (None, None) => None,
        }
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
        Decision {
            latency,
            drop: hit(r.drop_rate),
            error: hit(r.error_rate),
            throttle: hit(r.throttle_rate).then(|| r.retry_after_s.unwrap_or(1)),
            truncate: hit(r.truncate_rate),
            bytes_per_sec: r.bytes_per_sec,
            status: r.status,
            new_run_404_ms: r.new_run_404_ms,
        }
    }
}

/// Read faults from a file: one FaultSpec object or an array of them.
pub(crate) fn parse_faults(text: &str) -> Result<Vec<FaultSpec>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let specs: Vec<FaultSpec> = if v.is_array() {
        serde_json::from_value(v).map_err(|e| e.to_string())?
    } else {
        vec![serde_json::from_value(v).map_err(|e| e.to_string())?]
    };
    for s in &specs {
        s.validate()?;
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_operation_wins_over_star() {
        let f = Faults::new(vec![
            FaultSpec {
                operation: "*".into(),
                error_rate: Some(1.0),
                ..Default::default()
            },
            FaultSpec {
                operation: "getCrawlrunFile".into(),
                drop_rate: Some(1.0),
                ..Default::default()
            },
        ]);
        let d = f.decide("getCrawlrunFile");
        assert!(d.drop && !d.error);
        let d = f.decide("listExtractors");
        assert!(d.error && !d.drop);
        f.clear();
        assert_eq!(f.decide("listExtractors"), Decision::default());
    }

    #[test]
    fn parse_rejects_unknown_fields_and_bad_rates() {
        assert!(parse_faults(r#"{"operation":"*","eror_rate":1}"#).is_err());
        assert!(parse_faults(r#"{"operation":"*","error_rate":2}"#).is_err());
        for bad in ["0", "-5", "\"fast\"", "1.5"] {
            let text = format!(r#"{{"operation":"*","bytes_per_sec":{bad}}}"#);
            assert!(parse_faults(&text).is_err(), "{text}");
        }
        let capped = parse_faults(r#"{"operation":"getCrawlrunFile","bytes_per_sec":1000}"#);
        assert_eq!(capped.map(|v| v[0].bytes_per_sec), Ok(Some(1000)));
        assert!(parse_faults(r#"{"operation":"*","status":302}"#).is_err());
        assert!(parse_faults(r#"{"operation":"*","status":405,"new_run_404_ms":5}"#).is_ok());
        let ok = parse_faults(r#"[{"operation":"*","latency_ms":5,"latency_max_ms":9}]"#);
        assert_eq!(ok.map(|v| v.len()), Ok(1));
    }
}
