//! The ReportRun operations (their files are downloads: see
//! `crate::api::download`).

use super::check_id;
use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::models::ReportRun;
use crate::api::operation::Operation;

impl Client {
    /// `listReportRuns`, every page.
    pub async fn list_report_runs(&self) -> Result<Vec<ReportRun>, Error> {
        self.list_all(Operation::ListReportRuns, &["reportruns", ""], &[])
            .await
    }

    /// The newest `n` report runs of the account, newest first: one call.
    pub async fn newest_report_runs(&self, n: u32) -> Result<Vec<ReportRun>, Error> {
        self.newest(Operation::ListReportRuns, &["reportruns", ""], n)
            .await
    }

    /// `getReportRun`.
    pub async fn get_report_run(&self, id: &str) -> Result<ReportRun, Error> {
        let op = Operation::GetReportRun;
        self.get_object(op, &["reportruns", check_id(op, id)?])
            .await
    }
}
