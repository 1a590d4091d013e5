//! The Report operations, and the listing of one report's runs (which the
//! spec files under Report, as its path does).
//!
//! Nothing subtle beyond what every operation shares: `startReport` is a
//! POST, never sent twice, and its answer is returned as whatever JSON the
//! server sent, since the spec gives it no schema.

use super::check_id;
use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::models::{Report, ReportRun};
use crate::api::operation::Operation;
use serde_json::Value;

impl Client {
    /// `listReports`, every page.
    pub async fn list_reports(&self) -> Result<Vec<Report>, Error> {
        self.list_all(Operation::ListReports, &["reports", ""], &[])
            .await
    }

    /// `getReport`.
    pub async fn get_report(&self, id: &str) -> Result<Report, Error> {
        let op = Operation::GetReport;
        self.get_object(op, &["reports", check_id(op, id)?]).await
    }

    /// `deleteReport`. Retried only when surely not applied.
    pub async fn delete_report(&self, id: &str) -> Result<(), Error> {
        let op = Operation::DeleteReport;
        self.call(op, &["reports", check_id(op, id)?], &[], None)
            .await?;
        Ok(())
    }

    /// `startReport`: whatever the server answered (`Value::Null` when the
    /// body was empty or not JSON). Never sent twice.
    pub async fn start_report(&self, id: &str) -> Result<Value, Error> {
        let op = Operation::StartReport;
        let answer = self
            .call(op, &["reports", check_id(op, id)?, "start"], &[], None)
            .await?;
        Ok(self.decode_or_default(op, &answer.body))
    }

    /// `listReportRunsForReport`, every page.
    pub async fn list_report_runs_for_report(&self, id: &str) -> Result<Vec<ReportRun>, Error> {
        let op = Operation::ListReportRunsForReport;
        self.list_all(op, &["reports", check_id(op, id)?, "reportruns"], &[])
            .await
    }
}
