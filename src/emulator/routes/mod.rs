//! The API's operations: a request path is resolved to a [`Route`] (the
//! spec's operationId, with its path parameters), and [`dispatch`] hands it
//! to one handler per operation, in one module per resource: `users`,
//! `extractors`, `crawlruns`, `reports`, `reportruns`; result files of both
//! kinds of run are in `downloads`, what all of them share in `common`.
//!
//! Subtle points:
//! - Routing is done by hand on the path segments rather than with axum's
//!   router, so that every error — unknown path, wrong method, malformed id,
//!   bad query — carries the spec's Error body and a status the tests can
//!   predict, and so that each request is classified by operationId before
//!   auth, faults and logging (which the caller, `server`, does).
//! - A trailing slash is accepted on the lists; HEAD is accepted wherever GET
//!   is; a known path with another method is a 405 with `Allow`.
//! - The account lock is never held across an await nor while a file is
//!   generated.

// A Reply is an error path taken once per request: boxing it buys nothing.
// The lint level holds for the resource modules below as well.
#![allow(clippy::result_large_err)]

use axum::http::Method;

mod common;
mod crawlruns;
pub(crate) mod downloads;
mod extractors;
mod reportruns;
mod reports;
mod users;

pub(crate) use common::Ctx;

use crate::emulator::reply::Reply;

#[derive(Debug, Clone)]
pub(crate) enum Route {
    User,
    Subscription,
    ListExtractors,
    GetExtractor(String),
    DeleteExtractor(String),
    GetInputs(String),
    PutInputs(String),
    Start(String),
    Stop(String),
    Duplicate(String),
    Credentials(String),
    ListCrawlruns,
    ListExtractorCrawlruns(String),
    GetCrawlrun(String),
    CrawlrunFile(String, String),
    ListReports,
    GetReport(String),
    DeleteReport(String),
    StartReport(String),
    ReportRunsFor(String),
    ListReportRuns,
    GetReportRun(String),
    ReportRunFile(String, String),
}

impl Route {
    /// The operationId of `tests/importio-openapi.yaml` (or
    /// `listExtractorCrawlruns`, which is not in it).
    pub fn op(&self) -> &'static str {
        match self {
            Route::User => "getCurrentUser",
            Route::Subscription => "getCurrentUserSubscription",
            Route::ListExtractors => "listExtractors",
            Route::GetExtractor(_) => "getExtractor",
            Route::DeleteExtractor(_) => "deleteExtractor",
            Route::GetInputs(_) => "getExtractorInputs",
            Route::PutInputs(_) => "updateExtractorInputs",
            Route::Start(_) => "startExtractor",
            Route::Stop(_) => "stopExtractor",
            Route::Duplicate(_) => "duplicateExtractor",
            Route::Credentials(_) => "updateExtractorCredentials",
            Route::ListCrawlruns => "listCrawlruns",
            Route::ListExtractorCrawlruns(_) => "listExtractorCrawlruns",
            Route::GetCrawlrun(_) => "getCrawlrun",
            Route::CrawlrunFile(..) => "getCrawlrunFile",
            Route::ListReports => "listReports",
            Route::GetReport(_) => "getReport",
            Route::DeleteReport(_) => "deleteReport",
            Route::StartReport(_) => "startReport",
            Route::ReportRunsFor(_) => "listReportRunsForReport",
            Route::ListReportRuns => "listReportRuns",
            Route::GetReportRun(_) => "getReportRun",
            Route::ReportRunFile(..) => "getReportRunFile",
        }
    }
}

pub(crate) enum Resolved {
    Route(Route),
    NotFound,
    /// A known path asked with another method: the methods it takes.
    MethodNotAllowed(&'static str),
}

pub(crate) fn resolve(method: &Method, path: &str) -> Resolved {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let get = *method == Method::GET || *method == Method::HEAD;
    let is = |m: Method| *method == m;
    let s = |x: &str| x.to_owned();
    use Resolved::{MethodNotAllowed as No, Route as R};
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    match segs.as_slice() {
        ["users", "current"] if get => R(Route::User),
        ["users", "current"] => No(GET),
        ["users", "current", "subscription"] if get => R(Route::Subscription),
        ["users", "current", "subscription"] => No(GET),
        ["extractors"] | ["extractors", ""] if get => R(Route::ListExtractors),
        ["extractors"] | ["extractors", ""] => No(GET),
        ["extractors", id] if get => R(Route::GetExtractor(s(id))),
        ["extractors", id] if is(Method::DELETE) => R(Route::DeleteExtractor(s(id))),
        ["extractors", _] => No("GET, HEAD, DELETE"),
        ["extractors", id, "inputs"] if get => R(Route::GetInputs(s(id))),
        ["extractors", id, "inputs"] if is(Method::PUT) => R(Route::PutInputs(s(id))),
        ["extractors", _, "inputs"] => No("GET, HEAD, PUT"),
        // Not in the seed spec: `importio-client` (PyPI) asks for an
        // extractor's runs here.
        ["extractors", id, "crawlruns"] | ["extractors", id, "crawlruns", ""] if get => {
            R(Route::ListExtractorCrawlruns(s(id)))
        }
        ["extractors", _, "crawlruns"] | ["extractors", _, "crawlruns", ""] => No(GET),
        ["extractors", id, op @ ("start" | "stop" | "duplicate" | "credentials")] => {
            if !is(Method::POST) {
                return No(POST);
            }
            R(match *op {
                "start" => Route::Start(s(id)),
                "stop" => Route::Stop(s(id)),
                "duplicate" => Route::Duplicate(s(id)),
                _ => Route::Credentials(s(id)),
            })
        }
        ["crawlruns"] | ["crawlruns", ""] if get => R(Route::ListCrawlruns),
        ["crawlruns"] | ["crawlruns", ""] => No(GET),
        ["crawlruns", id] if get => R(Route::GetCrawlrun(s(id))),
        ["crawlruns", _] => No(GET),
        ["crawlruns", id, ft] if get => R(Route::CrawlrunFile(s(id), s(ft))),
        ["crawlruns", _, _] => No(GET),
        ["reports"] | ["reports", ""] if get => R(Route::ListReports),
        ["reports"] | ["reports", ""] => No(GET),
        ["reports", id] if get => R(Route::GetReport(s(id))),
        ["reports", id] if is(Method::DELETE) => R(Route::DeleteReport(s(id))),
        ["reports", _] => No("GET, HEAD, DELETE"),
        ["reports", id, "start"] if is(Method::POST) => R(Route::StartReport(s(id))),
        ["reports", _, "start"] => No(POST),
        ["reports", id, "reportruns"] if get => R(Route::ReportRunsFor(s(id))),
        ["reports", _, "reportruns"] => No(GET),
        ["reportruns"] | ["reportruns", ""] if get => R(Route::ListReportRuns),
        ["reportruns"] | ["reportruns", ""] => No(GET),
        ["reportruns", id] if get => R(Route::GetReportRun(s(id))),
        ["reportruns", _] => No(GET),
        ["reportruns", id, ft] if get => R(Route::ReportRunFile(s(id), s(ft))),
        ["reportruns", _, _] => No(GET),
        _ => Resolved::NotFound,
    }
}

/// Run the operation of `route`: its answer, or the error it met.
pub(crate) async fn dispatch(ctx: Ctx<'_>, route: Route) -> Reply {
    let c = &ctx;
    let done = match &route {
        Route::User => Ok(users::current(c)),
        Route::Subscription => Ok(users::subscription(c)),
        Route::ListExtractors => extractors::list(c),
        Route::GetExtractor(id) => extractors::get(c, id),
        Route::DeleteExtractor(id) => extractors::delete(c, id),
        Route::GetInputs(id) => extractors::get_inputs(c, id),
        Route::PutInputs(id) => extractors::put_inputs(ctx, id).await,
        Route::Start(id) => extractors::start(c, id),
        Route::Stop(id) => extractors::stop(c, id),
        Route::Duplicate(id) => extractors::duplicate(c, id),
        Route::Credentials(id) => extractors::credentials(ctx, id).await,
        Route::ListCrawlruns => crawlruns::list(c),
        Route::ListExtractorCrawlruns(id) => crawlruns::list_for_extractor(c, id),
        Route::GetCrawlrun(id) => crawlruns::get(c, id),
        Route::CrawlrunFile(id, ft) => crawlruns::file(c, id, ft),
        Route::ListReports => reports::list(c),
        Route::GetReport(id) => reports::get(c, id),
        Route::DeleteReport(id) => reports::delete(c, id),
        Route::StartReport(id) => reports::start(c, id),
        Route::ReportRunsFor(id) => reportruns::list_for_report(c, id),
        Route::ListReportRuns => reportruns::list(c),
        Route::GetReportRun(id) => reportruns::get(c, id),
        Route::ReportRunFile(id, ft) => reportruns::file(c, id, ft),
    };
    match done {
        Ok(r) | Err(r) => r,
    }
}
