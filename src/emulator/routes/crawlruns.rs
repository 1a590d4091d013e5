//! The crawl run operations: list (all, or of one extractor with
//! `?extractorId=`), `GET /extractors/{id}/crawlruns` (not in the spec; see
//! the `emulator` module doc), get, and result files.
//!
//! Subtle points:
//! - A run's state is computed from the request's clock reading
//!   ([`Ctx::now`]) for sorting and for the answer alike, so a list is
//!   sorted by the states it shows.
//! - A run made by a start stays unknown for `new_run_404_ms` (404 by id and
//!   for its files, left out of lists), like the live service; a run of the
//!   dataset or of the hooks never is.
//! - Runs of an archived extractor stay readable and listed; only the
//!   extractor's own listing (`/extractors/{id}/crawlruns`) answers 404 for it.

use uuid::Uuid;

use super::common::{list_reply, parse_id, Ctx, Key, ListParams};
use super::downloads::{crawlrun_file, deliver};
use crate::emulator::query::param;
use crate::emulator::reply::Reply;
use crate::emulator::state::{Db, RunRec};

/// One page of the runs that pass `keep`, leaving out the runs not known yet.
fn list_where(ctx: &Ctx<'_>, p: &ListParams, db: &Db, keep: impl Fn(&RunRec) -> bool) -> Reply {
    let (now, hide_ms) = (ctx.now, ctx.new_run_404_ms);
    let items = db
        .runs
        .items
        .iter()
        .filter(|r| keep(r) && !r.unknown_yet(now, hide_ms))
        .map(|r| (Key::of_run(&r.timeline, "", r.guid, now), r));
    list_reply(items, p, |r| db.crawlrun(r, now, ctx.dialect))
}

/// `GET /crawlruns` (with an optional `extractorId` filter).
pub(super) fn list(ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let p = ctx.list_params()?;
    let filter = match param(&ctx.pairs, "extractorId") {
        Some(v) if !v.is_empty() => Some(parse_id(v, "extractor")?),
        _ => None,
    };
    let db = ctx.app.db();
    Ok(list_where(ctx, &p, &db, |r| {
        filter.is_none_or(|f| r.extractor == f)
    }))
}

/// `GET /extractors/{id}/crawlruns`: as `GET /crawlruns?extractorId=`, but
/// 404 for an unknown or archived extractor.
pub(super) fn list_for_extractor(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "extractor")?;
    let p = ctx.list_params()?;
    let db = ctx.app.db();
    if db.live_extractor(&id).is_none() {
        return Err(Reply::not_found("extractor"));
    }
    Ok(list_where(ctx, &p, &db, |r| r.extractor == id))
}

/// `GET /crawlruns/{id}`.
pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<Reply, Reply> {
    let id = parse_id(id, "crawl run")?;
    let db = ctx.app.db();
    let r = db
        .runs
        .get(&id)
        .filter(|r| !r.unknown_yet(ctx.now, ctx.new_run_404_ms))
        .ok_or_else(|| Reply::not_found("crawl run"))?;
    Ok(Reply::ok(&db.crawlrun(r, ctx.now, ctx.dialect)))
}

/// `GET /crawlruns/{id}/{fileType}`.
pub(super) fn file(ctx: &Ctx<'_>, id: &str, ft: &str) -> Result<Reply, Reply> {
    let id: Uuid = parse_id(id, "crawl run")?;
    if ctx
        .app
        .db()
        .runs
        .get(&id)
        .is_some_and(|r| r.unknown_yet(ctx.now, ctx.new_run_404_ms))
    {
        return Err(Reply::not_found("crawl run"));
    }
    let found = crawlrun_file(ctx.app, &id, ft)?;
    Ok(deliver(ctx, "crawlruns", &id, ft, found))
}
