//! Result files of crawl runs and report runs, for both listeners: finding
//! the file (or the 404 that answers for it), the legacy redirect to the
//! files listener, and `Range` / `If-Range` / `ETag`.
//!
//! Subtle points:
//! - A file exists only once its run is FINISHED; a report run with a forced
//!   status (`POST /_emulator/reportruns/{id}/status`) has files before,
//!   whose bytes depend on that status, so a cache that keeps partial
//!   results can be caught.
//! - The lookup is done before the legacy redirect, so a missing file is a
//!   404 on the API listener in both dialects, never a redirect to one.
//! - Only one `bytes=` range is honoured; several ranges, other units and
//!   syntax errors get the whole file (200), as RFC 9110 allows. The `ETag`
//!   is derived from the file's name and length, and an `If-Range` that does
//!   not match it gets the whole file too.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use uuid::Uuid;

use super::common::Ctx;
use crate::api::models::{CrawlrunFile, ReportRunFile, RunState};
use crate::emulator::app::App;
use crate::emulator::config::Dialect;
use crate::emulator::datasets::run_seed;
use crate::emulator::files::{self, FileBody};
use crate::emulator::reply::{Payload, Reply};
use crate::emulator::state::{h64, mix, now_ms};

/// A result file found: its bytes, content type and download name.
pub(crate) struct ResultFile {
    pub body: FileBody,
    pub content_type: &'static str,
    pub name: String,
}

/// A crawl run's file, or the 404 that answers for it.
pub(crate) fn crawlrun_file(app: &App, id: &Uuid, ft: &str) -> Result<ResultFile, Reply> {
    let kind = CrawlrunFile::from_api_name(ft).ok_or_else(|| Reply::not_found("file type"))?;
    let (spec, seed, started, state) = {
        let db = app.db();
        let r = db
            .runs
            .get(id)
            .ok_or_else(|| Reply::not_found("crawl run"))?;
        (
            r.spec.clone(),
            run_seed(&r.guid),
            r.timeline.started_ms,
            r.timeline.phase(now_ms()).state,
        )
    };
    if state != RunState::Finished {
        return Err(Reply::not_found(&format!(
            "result file (the run is {})",
            state.as_str()
        )));
    }
    let body = files::crawlrun_file(&spec, seed, kind, started)
        .map_err(|e| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    Ok(ResultFile {
        body,
        content_type: files::crawlrun_content_type(kind),
        name: files::download_name(id, kind.api_name(), files::crawlrun_content_type(kind)),
    })
}

/// A report run's file, or the 404 that answers for it.
pub(crate) fn reportrun_file(app: &App, id: &Uuid, ft: &str) -> Result<ResultFile, Reply> {
    let kind = ReportRunFile::from_api_name(ft).ok_or_else(|| Reply::not_found("file type"))?;
    let (spec, seed, started, state, change, partial) = {
        let db = app.db();
        let r = db
            .report_runs
            .get(id)
            .ok_or_else(|| Reply::not_found("report run"))?;
        (
            r.spec.clone(),
            run_seed(&r.guid),
            r.timeline.started_ms,
            r.timeline.phase(now_ms()).state,
            r.change,
            r.status_override.clone(),
        )
    };
    // A forced status has files of its own bytes (see `status_override`).
    let seed = match &partial {
        Some(status) => status.bytes().fold(seed, |h, b| mix(h ^ u64::from(b))),
        None => seed,
    };
    if state != RunState::Finished && partial.is_none() {
        return Err(Reply::not_found(
            "result file (the report run is not finished)",
        ));
    }
    let body = files::reportrun_file(&spec, seed, change, kind, started)
        .map_err(|e| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e))?
        .ok_or_else(|| Reply::not_found("json result (only Change reports have one)"))?;
    Ok(ResultFile {
        body,
        content_type: files::reportrun_content_type(kind),
        name: files::download_name(id, kind.api_name(), files::reportrun_content_type(kind)),
    })
}

/// The API listener's answer for a file found: in `legacy` a 302 to the
/// files listener, in `spec` the file itself. `kind` is `crawlruns` or
/// `reportruns`.
pub(super) fn deliver(ctx: &Ctx<'_>, kind: &str, id: &Uuid, ft: &str, file: ResultFile) -> Reply {
    if ctx.dialect == Dialect::Legacy {
        return redirect(ctx.app, kind, id, ft);
    }
    serve_file(&ctx.headers, file, ctx.ignore_range)
}

fn redirect(app: &App, kind: &str, id: &Uuid, ft: &str) -> Reply {
    let location = app.file_location(kind, id, ft);
    let mut r = Reply::empty(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers.insert(header::LOCATION, v);
    }
    r
}

enum RangeReq {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; anything else (several ranges, other units, syntax
/// errors, `a > b`) is ignored and the whole file served, as RFC 9110 allows.
fn parse_range(h: &str, len: u64) -> RangeReq {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Whole;
    };
    if spec.contains(',') {
        return RangeReq::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (num(a), num(b), b.trim().is_empty()) {
        (Some(a), None, true) => {
            if a >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(a, len)
            }
        }
        (Some(a), Some(b), _) => {
            if a > b {
                RangeReq::Whole
            } else if a >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(a, b.saturating_add(1).min(len))
            }
        }
        (None, Some(n), _) if a.trim().is_empty() => {
            if n == 0 || len == 0 {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(len.saturating_sub(n), len)
            }
        }
        _ => RangeReq::Whole,
    }
}

fn etag_of(body: &FileBody, name: &str) -> String {
    let n = body.len();
    let h = h64(&[name.as_bytes(), &n.to_le_bytes()]);
    format!("\"{h:016x}-{n:x}\"")
}

/// A result file with Range, ETag and the right headers. `ignore_range`
/// (hostile mode): always the whole file, 200, whatever `Range` asks.
pub(crate) fn serve_file(headers: &HeaderMap, file: ResultFile, ignore_range: bool) -> Reply {
    let ResultFile {
        body,
        content_type,
        name,
    } = file;
    let len = body.len();
    let etag = etag_of(&body, &name);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        _ if ignore_range => RangeReq::Whole,
        Some(r) if if_range_ok => parse_range(r, len),
        _ => RangeReq::Whole,
    };
    let part = |status, start, end, headers| Reply {
        status,
        headers,
        payload: Payload::File { body, start, end },
    };
    match range {
        RangeReq::Whole => part(StatusCode::OK, 0, len, h),
        RangeReq::Part(a, b) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{}/{len}", b - 1)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            part(StatusCode::PARTIAL_CONTENT, a, b, h)
        }
        RangeReq::Unsatisfiable => {
            let mut r = Reply::error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers.insert(header::CONTENT_RANGE, v);
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| match parse_range(h, 100) {
            RangeReq::Whole => "whole".to_owned(),
            RangeReq::Part(a, b) => format!("{a}..{b}"),
            RangeReq::Unsatisfiable => "416".to_owned(),
        };
        assert_eq!(p("bytes=0-9"), "0..10");
        assert_eq!(p("bytes=90-"), "90..100");
        assert_eq!(p("bytes=-10"), "90..100");
        assert_eq!(p("bytes=-1000"), "0..100");
        assert_eq!(p("bytes=50-1000"), "50..100");
        assert_eq!(p("bytes=100-"), "416");
        assert_eq!(p("bytes=-0"), "416");
        assert_eq!(p("bytes=9-3"), "whole");
        assert_eq!(p("bytes=0-1,3-4"), "whole");
        assert_eq!(p("items=0-1"), "whole");
        assert_eq!(p("bytes=x-1"), "whole");
    }
}
