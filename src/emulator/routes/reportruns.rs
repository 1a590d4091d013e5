//! The report run operations: the runs of one report, all runs, get, and
//! result files.
//!
//! Subtle points:
//! - The runs of a deleted report stay readable by id (and their files), but
//!   no list shows them, and listing the runs of a deleted report is a 404.
//! - A run with a forced status (`POST /_emulator/reportruns/{id}/status`)
//!   shows that status and has files before it finishes (see `downloads`).

use super::common::{list_reply, parse_id, Ctx, Key, ListParams};
use super::downloads::{deliver, reportrun_file};
use crate::emulator::reply::Reply;
use crate::emulator::state::{Db, ReportRunRec};

/// One page of the report runs that pass `keep`.
fn list_where(
    ctx: &Ctx<'_>,
    p: &ListParams,
    db: &Db,
    keep: impl Fn(&ReportRunRec) -> bool,
) -> Reply {
    let now = ctx.now;
    let items = db
        .report_runs
        .items
        .iter()
        .filter(|r| keep(r))
        .map(|r| (Key::of_run(&r.timeline, &r.name, r.guid, now), r));
    list_reply(items, p, |r| db.report_run(r, now, ctx.dialect))
}

/// `GET /reports/{id}/reportruns`.
pub(super) fn list_for_report(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "report")?;
    let p = ctx.list_params()?;
    let db = ctx.app.db();
    if db.reports.get(&id).filter(|r| !r.deleted).is_none() {
        return Err(Reply::not_found("report"));
    }
    Ok(list_where(ctx, &p, &db, |r| r.report == id))
}

/// `GET /reportruns`: the runs of the reports not deleted.
pub(super) fn list(ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let p = ctx.list_params()?;
    let db = ctx.app.db();
    Ok(list_where(ctx, &p, &db, |r| {
        db.reports.get(&r.report).is_some_and(|rep| !rep.deleted)
    }))
}

/// `GET /reportruns/{id}`.
pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "report run")?;
    let db = ctx.app.db();
    let r = db
        .report_runs
        .get(&id)
        .ok_or_else(|| Reply::not_found("report run"))?;
    Ok(Reply::ok(&db.report_run(r, ctx.now, ctx.dialect)))
}

/// `GET /reportruns/{id}/{fileType}`.
pub(super) fn file(ctx: &Ctx<'_>, id: &str, ft: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "report run")?;
    let found = reportrun_file(ctx.app, &id, ft)?;
    Ok(deliver(ctx, "reportruns", &id, ft, found))
}
