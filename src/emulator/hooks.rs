//! Test hooks under `/_emulator/` (listed in the module doc of `emulator`):
//! faults, hostile modes, the request log, and objects made or changed in
//! ways the API does not offer (hostile names, chosen guids, runs in any
//! state, forced report statuses).
//!
//! They need no key, are not logged, and are never faulted, so a test can
//! set up and inspect the account without disturbing what it measures. For
//! the same reason their answers skip `respond::finish` (no gzip, no cap)
//! and ids are parsed by the uuid crate as they are, not held to the API's
//! strict 36-character form.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::app::App;
use super::config::Dataset;
use super::datasets::insert_run;
use super::faults::parse_faults;
use super::hostile::Hostile;
use super::reply::{read_body, Payload, Reply};
use super::state::{now_ms, ExtractorRec, ReportRunRec, ResultKind, Spec, Timeline};
use crate::api::models::RunState;

fn respond(r: Reply) -> Response {
    let mut resp = match r.payload {
        Payload::Full(b) => Response::new(Body::from(b)),
        _ => Response::new(Body::empty()),
    };
    *resp.status_mut() = r.status;
    resp.headers_mut().extend(r.headers);
    resp
}

fn ok_json<T: serde::Serialize>(v: &T) -> Response {
    respond(Reply::json(StatusCode::OK, v))
}

fn err(status: StatusCode, msg: &str) -> Response {
    respond(Reply::error(status, msg))
}

#[derive(Deserialize)]
struct NewExtractor {
    name: String,
    /// A chosen guid (tests of guids that share their first 8 characters).
    #[serde(default)]
    guid: Option<String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Rename {
    name: String,
}

#[derive(Deserialize)]
struct ForcedStatus {
    status: String,
}

#[derive(Deserialize)]
struct NewRun {
    #[serde(rename = "extractorId")]
    extractor_id: String,
    #[serde(default)]
    state: Option<String>,
}

pub(crate) async fn handle(app: &Arc<App>, method: &Method, path: &str, body: Body) -> Response {
    let segs: Vec<&str> = path
        .trim_start_matches("/_emulator")
        .trim_matches('/')
        .split('/')
        .collect();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return respond(r),
    };
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["faults"]) => ok_json(&app.faults.list()),
        (Method::POST, ["faults"]) => set_faults(app, &body),
        (Method::DELETE, ["faults"]) => {
            app.faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, ["hostile"]) => ok_json(&app.hostile()),
        (Method::POST, ["hostile"]) => set_hostile(app, &body),
        (Method::DELETE, ["hostile"]) => {
            app.set_hostile(Hostile::default());
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, ["requests"]) => ok_json(&app.log_snapshot()),
        (Method::DELETE, ["requests"]) => {
            app.clear_log();
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, ["extractors"]) => new_extractor(app, &body),
        (m, ["extractors", id, action]) => change_extractor(app, &m, id, action, &body),
        (Method::POST, ["crawlruns"]) => new_run(app, &body),
        (Method::POST, ["crawlruns", id, action @ ("finish" | "fail")]) => end_run(app, id, action),
        (Method::POST, ["reportruns", id, "finish"]) => finish_report_run(app, id),
        (Method::POST, ["reportruns", id, "status"]) => force_report_status(app, id, &body),
        _ => err(StatusCode::NOT_FOUND, "no such hook"),
    }
}

/// `POST /_emulator/faults`.
fn set_faults(app: &App, body: &[u8]) -> Response {
    let text = String::from_utf8_lossy(body);
    match parse_faults(&text) {
        Ok(specs) => {
            app.faults.set(specs);
            ok_json(&app.faults.list())
        }
        Err(e) => err(StatusCode::BAD_REQUEST, &format!("bad fault: {e}")),
    }
}

/// `POST /_emulator/hostile`.
fn set_hostile(app: &App, body: &[u8]) -> Response {
    match Hostile::parse(body) {
        Ok(h) => {
            app.set_hostile(h);
            ok_json(&app.hostile())
        }
        Err(e) => err(StatusCode::BAD_REQUEST, &format!("bad hostile mode: {e}")),
    }
}

/// `POST /_emulator/extractors`: any name, a chosen guid unless taken.
fn new_extractor(app: &App, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<NewExtractor>(body) else {
        return err(
            StatusCode::BAD_REQUEST,
            "body must be {\"name\": string, \"inputs\": [string]}",
        );
    };
    let now = now_ms();
    let guid = match req.guid.as_deref().map(Uuid::parse_str) {
        None => Uuid::new_v4(),
        Some(Ok(g)) => g,
        Some(Err(_)) => return err(StatusCode::BAD_REQUEST, "malformed guid"),
    };
    if app.db().extractors.get(&guid).is_some() {
        return err(StatusCode::CONFLICT, "an extractor with this guid exists");
    }
    let rec = ExtractorRec {
        guid,
        name: req.name,
        spec: Arc::new(Spec {
            fields: req
                .fields
                .unwrap_or_else(|| vec!["title".into(), "price".into(), "description".into()]),
            inputs: req.inputs,
            result: result_kind(app, &guid),
        }),
        tags: Vec::new(),
        archived: false,
        created_ms: now,
        modified_ms: now,
        credentials: None,
        credentials_id: None,
    };
    let mut db = app.db();
    db.extractors.insert(guid, rec.clone());
    ok_json(&db.extractor(&rec, app.config.dialect))
}

/// The results of an extractor made by a hook: shaped like the dataset's.
fn result_kind(app: &App, guid: &Uuid) -> ResultKind {
    match app.config.dataset {
        Dataset::Demo => ResultKind::Rows,
        Dataset::Scale => ResultKind::Fixed {
            bytes: app.config.result_bytes,
            base: format!(
                "https://new-{}.example.com",
                &guid.simple().to_string()[..8]
            ),
        },
    }
}

/// `POST .../extractors/{id}/rename` and `/archive`,
/// `GET .../extractors/{id}/credentials`; archived extractors included.
fn change_extractor(app: &App, m: &Method, id: &str, action: &str, body: &[u8]) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return err(StatusCode::BAD_REQUEST, "malformed extractor id");
    };
    let mut db = app.db();
    let Some(e) = db.extractors.get_mut(&id) else {
        return err(StatusCode::NOT_FOUND, "extractor not found");
    };
    match (m, action) {
        (&Method::POST, "rename") => {
            let Ok(r) = serde_json::from_slice::<Rename>(body) else {
                return err(StatusCode::BAD_REQUEST, "body must be {\"name\": string}");
            };
            e.name = r.name;
            e.modified_ms = now_ms();
        }
        (&Method::POST, "archive") => {
            e.archived = true;
            e.modified_ms = now_ms();
        }
        (&Method::GET, "credentials") => {
            return match &e.credentials {
                Some((u, p)) => ok_json(&serde_json::json!({"username": u, "password": p})),
                None => err(StatusCode::NOT_FOUND, "no credentials stored"),
            };
        }
        _ => return err(StatusCode::NOT_FOUND, "no such hook"),
    }
    let e = e.clone();
    ok_json(&db.extractor(&e, app.config.dialect))
}

/// `POST /_emulator/crawlruns`: a run in any state (FINISHED by default).
fn new_run(app: &App, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<NewRun>(body) else {
        return err(
            StatusCode::BAD_REQUEST,
            "body must be {\"extractorId\": guid, \"state\": STATE}",
        );
    };
    let state = match req.state.as_deref() {
        None => RunState::Finished,
        Some(s) => match RunState::parse(s) {
            Some(s) => s,
            None => return err(StatusCode::BAD_REQUEST, "unknown state"),
        },
    };
    let Ok(ext) = Uuid::parse_str(&req.extractor_id) else {
        return err(StatusCode::BAD_REQUEST, "malformed extractor id");
    };
    let now = now_ms();
    let mut db = app.db();
    let Some(spec) = db.extractors.get(&ext).map(|e| e.spec.clone()) else {
        return err(StatusCode::NOT_FOUND, "extractor not found");
    };
    let mut timeline = Timeline::new(now, app.config.run_seconds);
    match state {
        RunState::Pending => {}
        RunState::Started => {
            // Already past PENDING.
            timeline.started_ms = now - timeline.pending_ms;
        }
        s => timeline.force(s, now),
    }
    let guid = Uuid::new_v4();
    insert_run(&mut db, guid, ext, spec, timeline);
    match db.runs.get(&guid) {
        Some(r) => ok_json(&db.crawlrun(r, now, app.config.dialect)),
        None => err(StatusCode::INTERNAL_SERVER_ERROR, "run vanished"),
    }
}

/// `POST /_emulator/crawlruns/{id}/finish` and `/fail`.
fn end_run(app: &App, id: &str, action: &str) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return err(StatusCode::BAD_REQUEST, "malformed crawl run id");
    };
    let now = now_ms();
    let mut db = app.db();
    let Some(r) = db.runs.get_mut(&id) else {
        return err(StatusCode::NOT_FOUND, "crawl run not found");
    };
    let state = if action == "finish" {
        RunState::Finished
    } else {
        RunState::Failed
    };
    r.timeline.force(state, now);
    let r = r.clone();
    ok_json(&db.crawlrun(&r, now, app.config.dialect))
}

/// `POST /_emulator/reportruns/{id}/finish`.
fn finish_report_run(app: &App, id: &str) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return err(StatusCode::BAD_REQUEST, "malformed report run id");
    };
    change_report_run(app, &id, |r, now| {
        r.timeline.force(RunState::Finished, now);
        r.status_override = None;
    })
}

/// `POST /_emulator/reportruns/{id}/status`: `FINISHED` finishes the run,
/// any other status is shown as it is, with files of its own.
fn force_report_status(app: &App, id: &str, body: &[u8]) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return err(StatusCode::BAD_REQUEST, "malformed report run id");
    };
    let Ok(req) = serde_json::from_slice::<ForcedStatus>(body) else {
        return err(StatusCode::BAD_REQUEST, "expected {\"status\": \"...\"}");
    };
    change_report_run(app, &id, |r, now| {
        if req.status == "FINISHED" {
            r.timeline.force(RunState::Finished, now);
            r.status_override = None;
        } else {
            r.status_override = Some(req.status);
        }
    })
}

/// Apply `change` to report run `id` (404 when unknown) and answer the run.
fn change_report_run(
    app: &App,
    id: &Uuid,
    change: impl FnOnce(&mut ReportRunRec, i64),
) -> Response {
    let now = now_ms();
    let mut db = app.db();
    let Some(r) = db.report_runs.get_mut(id) else {
        return err(StatusCode::NOT_FOUND, "report run not found");
    };
    change(r, now);
    let r = r.clone();
    ok_json(&db.report_run(&r, now, app.config.dialect))
}
