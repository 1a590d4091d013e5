//! The report operations: list, get, delete and start.
//!
//! Subtle points:
//! - DELETE removes the report (404 from then on); its report runs stay
//!   readable by id but are no longer listed (see `reportruns`).
//! - A start snapshots the spec of the report's extractor, like a crawl run,
//!   so later changes to its inputs do not change the run's files; a report
//!   whose extractor is not in the account gets an empty spec.

use std::sync::Arc;

use axum::http::StatusCode;
use uuid::Uuid;

use super::common::{list_reply, parse_id, Ctx, Key};
use crate::emulator::reply::Reply;
use crate::emulator::state::{Db, ReportRec, ReportRunRec, ResultKind, Spec, Timeline};

/// The report `id` unless deleted, or the 404 that answers for it.
fn live<'d>(db: &'d Db, id: &Uuid) -> Result<&'d ReportRec, Reply> {
    db.reports
        .get(id)
        .filter(|r| !r.deleted)
        .ok_or_else(|| Reply::not_found("report"))
}

/// `GET /reports`.
pub(super) fn list(ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let p = ctx.list_params()?;
    let db = ctx.app.db();
    let items = db.reports.items.iter().filter(|r| !r.deleted).map(|r| {
        let key = Key::of_object(r.created_ms, r.modified_ms, &r.name, r.guid);
        (key, r)
    });
    Ok(list_reply(items, &p, |r| db.report(r, ctx.dialect)))
}

/// `GET /reports/{id}`.
pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "report")?;
    let db = ctx.app.db();
    let r = live(&db, &id)?;
    Ok(Reply::ok(&db.report(r, ctx.dialect)))
}

/// `DELETE /reports/{id}`.
pub(super) fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "report")?;
    let mut db = ctx.app.db();
    let r = db
        .reports
        .get_mut(&id)
        .filter(|r| !r.deleted)
        .ok_or_else(|| Reply::not_found("report"))?;
    r.deleted = true;
    r.modified_ms = ctx.now;
    Ok(Reply::empty(StatusCode::OK))
}

/// `POST /reports/{id}/start`: a new report run, `{"reportRunId": ...}`.
pub(super) fn start(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "report")?;
    let mut db = ctx.app.db();
    let r = live(&db, &id)?.clone();
    let spec = db
        .extractors
        .get(&r.extractor)
        .map(|e| e.spec.clone())
        .unwrap_or_else(|| {
            Arc::new(Spec {
                fields: Vec::new(),
                inputs: Vec::new(),
                result: ResultKind::Rows,
            })
        });
    let guid = Uuid::new_v4();
    db.report_runs.insert(
        guid,
        ReportRunRec {
            guid,
            report: r.guid,
            extractor: r.extractor,
            name: r.name.clone(),
            kind: r.kind.clone(),
            change: r.is_change(),
            config_id: r.config_id,
            spec,
            timeline: Timeline::new(ctx.now, ctx.app.config.run_seconds),
            status_override: None,
        },
    );
    Ok(Reply::ok(
        &serde_json::json!({ "reportRunId": guid.to_string() }),
    ))
}
