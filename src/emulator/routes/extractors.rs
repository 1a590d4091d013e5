//! The extractor operations: list, get, delete (archive), inputs (get and
//! put), start, stop, duplicate and credentials.
//!
//! Subtle points:
//! - DELETE archives: an archived extractor answers 404 to every operation
//!   here and is left out of the list (its crawl runs stay readable), as the
//!   spec's "hidden and cannot be run" and schemathesis' use-after-free check
//!   demand.
//! - Inputs are read in both forms (`{"_url": "a\nb"}` and JSON lines) in
//!   both dialects, and answered in the form they were read in; a GET answers
//!   in the dialect's form.
//! - A run made by a start is marked `from_start`, so that it can stay
//!   unknown for `new_run_404_ms` after it (the live service's lag).
//! - The account lock is dropped before a body is read (an await), and the
//!   extractor looked up again after.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::common::{list_reply, parse_id, Ctx, Key};
use crate::api::models::{Inputs, InputsDialect, RunState, StartResponse};
use crate::emulator::config::Dialect;
use crate::emulator::datasets::insert_run;
use crate::emulator::reply::{read_body, Reply};
use crate::emulator::state::{Db, ExtractorRec, Spec, Timeline};

/// The extractor `id` unless archived, or the 404 that answers for it.
fn live<'d>(db: &'d Db, id: &Uuid) -> Result<&'d ExtractorRec, Reply> {
    db.live_extractor(id)
        .ok_or_else(|| Reply::not_found("extractor"))
}

fn live_mut<'d>(db: &'d mut Db, id: &Uuid) -> Result<&'d mut ExtractorRec, Reply> {
    db.live_extractor_mut(id)
        .ok_or_else(|| Reply::not_found("extractor"))
}

/// The answer of a start or a stop that found a run: `{"crawlRunId": ...}`.
fn run_id_reply(run: Uuid) -> Reply {
    Reply::ok(&StartResponse {
        crawl_run_id: Some(run.to_string()),
        extra: Default::default(),
    })
}

/// `GET /extractors`.
pub(super) fn list(ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let p = ctx.list_params()?;
    let db = ctx.app.db();
    let items = db.extractors.items.iter().filter(|e| !e.archived).map(|e| {
        let key = Key::of_object(e.created_ms, e.modified_ms, &e.name, e.guid);
        (key, e)
    });
    Ok(list_reply(items, &p, |e| db.extractor(e, ctx.dialect)))
}

/// `GET /extractors/{id}`.
pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let db = ctx.app.db();
    let e = live(&db, &id)?;
    Ok(Reply::ok(&db.extractor(e, ctx.dialect)))
}

/// `DELETE /extractors/{id}`: archive it.
pub(super) fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let mut db = ctx.app.db();
    let e = live_mut(&mut db, &id)?;
    e.archived = true;
    e.modified_ms = ctx.now;
    let e = e.clone();
    Ok(Reply::ok(&db.extractor(&e, ctx.dialect)))
}

/// `GET /extractors/{id}/inputs`.
pub(super) fn get_inputs(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let urls = live(&ctx.app.db(), &id)?.spec.inputs.clone();
    let inputs = Inputs {
        urls,
        dialect: match ctx.dialect {
            Dialect::Spec => InputsDialect::Object,
            Dialect::Legacy => InputsDialect::Lines,
        },
    };
    let (body, ct) = inputs.to_body();
    Ok(Reply::bytes(StatusCode::OK, ct, body.into_bytes()))
}

/// `PUT /extractors/{id}/inputs`.
pub(super) async fn put_inputs(ctx: Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    live(&ctx.app.db(), &id)?;
    let body = read_body(ctx.body).await?;
    let ndjson = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("ndjson") || v.contains("jsonl"));
    let inputs = parse_inputs(&body, ndjson).map_err(|m| Reply::bad_request(&m))?;
    {
        let mut db = ctx.app.db();
        let e = live_mut(&mut db, &id)?;
        e.spec = Arc::new(Spec {
            inputs: inputs.urls.clone(),
            ..(*e.spec).clone()
        });
        e.modified_ms = ctx.now;
    }
    let (body, ct) = inputs.to_body();
    Ok(Reply::bytes(StatusCode::OK, ct, body.into_bytes()))
}

/// `POST /extractors/{id}/start`: a new run, unless one is in progress.
pub(super) fn start(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let now = ctx.now;
    let mut db = ctx.app.db();
    let e = live(&db, &id)?;
    if e.archived {
        return Err(Reply::bad_request(
            "extractor is archived and cannot be run",
        ));
    }
    if let Some(run) = db.active_run(&id, now) {
        return Err(Reply::bad_request(&format!(
            "extractor already has a run in progress ({run})"
        )));
    }
    let spec = e.spec.clone();
    let guid = Uuid::new_v4();
    let timeline = Timeline::new(now, ctx.app.config.run_seconds);
    insert_run(&mut db, guid, id, spec, timeline);
    if let Some(r) = db.runs.get_mut(&guid) {
        r.from_start = true;
    }
    Ok(run_id_reply(guid))
}

/// `POST /extractors/{id}/stop`: cancel the run in progress, if any.
pub(super) fn stop(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let now = ctx.now;
    let mut db = ctx.app.db();
    live(&db, &id)?;
    let Some(run) = db.active_run(&id, now) else {
        return Ok(Reply::bytes(
            StatusCode::OK,
            "application/json",
            b"{}".to_vec(),
        ));
    };
    if let Some(r) = db.runs.get_mut(&run) {
        r.timeline.force(RunState::Cancelled, now);
    }
    Ok(run_id_reply(run))
}

/// `POST /extractors/{id}/duplicate`: a copy named `<name> (copy)`, without
/// the credentials.
pub(super) fn duplicate(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let now = ctx.now;
    let mut db = ctx.app.db();
    let e = live(&db, &id)?;
    let guid = Uuid::new_v4();
    let copy = ExtractorRec {
        guid,
        name: format!("{} (copy)", e.name),
        spec: e.spec.clone(),
        tags: e.tags.clone(),
        archived: false,
        created_ms: now,
        modified_ms: now,
        credentials: None,
        credentials_id: None,
    };
    db.extractors.insert(guid, copy.clone());
    Ok(Reply::ok(&db.extractor(&copy, ctx.dialect)))
}

/// `POST /extractors/{id}/credentials`: store them (no API GET returns
/// them) and give the extractor a new `credentialsId`.
pub(super) async fn credentials(ctx: Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    live(&ctx.app.db(), &id)?;
    let body = read_body(ctx.body).await?;
    let (user, pass) = parse_credentials(&body).map_err(|m| Reply::bad_request(&m))?;
    let mut db = ctx.app.db();
    let e = live_mut(&mut db, &id)?;
    e.credentials = Some((user, pass));
    e.credentials_id = Some(Uuid::new_v4());
    e.modified_ms = ctx.now;
    Ok(Reply::empty(StatusCode::OK))
}

/// Inputs in either dialect, validated strictly: `{"_url": string}` (other
/// keys allowed), or JSON lines of such objects.
fn parse_inputs(body: &[u8], ndjson: bool) -> Result<Inputs, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_owned())?;
    if text.trim().is_empty() {
        return Err("body must be a JSON object with _url".into());
    }
    if !ndjson {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return Ok(Inputs {
                urls: urls_of(&v, false)?,
                dialect: InputsDialect::Object,
            });
        }
    }
    let mut urls = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        urls.extend(urls_of(&v, true)?);
    }
    Ok(Inputs {
        urls,
        dialect: InputsDialect::Lines,
    })
}

/// The URLs of one inputs object: its `_url`, one URL a line.
fn urls_of(v: &Value, need_url: bool) -> Result<Vec<String>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "inputs must be a JSON object".to_owned())?;
    match obj.get("_url") {
        Some(Value::String(s)) => Ok(s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(_) => Err("_url must be a string".into()),
        None if need_url => Err("each line needs a _url".into()),
        None => Ok(Vec::new()),
    }
}

fn parse_credentials(body: &[u8]) -> Result<(String, String), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body must be JSON".to_owned())?;
    let user = v.get("username").and_then(|u| u.as_str());
    let pass = v.get("password").and_then(|p| p.as_str());
    match (user, pass) {
        (Some(u), Some(p)) => Ok((u.to_owned(), p.to_owned())),
        _ => Err("body must have string username and password".into()),
    }
}
