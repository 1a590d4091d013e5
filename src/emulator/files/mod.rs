//! Result files: generated from a run's snapshot of the extractor's fields and
//! inputs, on every request, never stored.
//!
//! Two shapes:
//! - [`ResultKind::Rows`] (demo and most tests): a handful of rows per input
//!   URL with values derived from the field names and a hash of (url, field,
//!   row, run), built in memory — they are small.
//! - [`ResultKind::Fixed`] (scale): `data.csv` and `data.json` are a header
//!   plus fixed-width rows (the last row absorbs the remainder so the file is
//!   exactly the asked size). Row `r` starts at `header + r * row_len`, so any
//!   byte range is produced directly from templates with the row number
//!   patched in: memory stays flat whatever the size and ranges cost nothing
//!   extra. The other formats of a scale run cover the first 1000 rows.
//!
//! Everything is deterministic (xlsx and zip carry fixed timestamps), so a
//! resumed or ranged download sees the same bytes as a full one.
//!
//! This module picks what to generate for a file type and shape; the shapes
//! are in `rows` and `fixed`, the formats' writers in `formats`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::state::{mix, ResultKind, Spec, Totals};
use crate::api::models::{CrawlrunFile, ReportRunFile};

mod fixed;
mod formats;
mod rows;

use fixed::{FixedFormat, FixedGen, FIXED_COLUMNS};
use formats::{changes_json, csv_bytes, files_zip, json_lines, log_csv, sample_json, xlsx_bytes};
use rows::{pages, rows_table, Table};
/// Rows of a scale run shown in the formats that are not fixed-width.
const SCALE_TABLE_ROWS: u64 = 1000;
/// Bytes generated per streamed chunk.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A result file: its exact length, and its bytes for any range.
#[derive(Clone, Debug)]
pub(crate) enum FileBody {
    Mem(Bytes),
    Fixed(Arc<FixedGen>),
}

impl FileBody {
    pub fn len(&self) -> u64 {
        match self {
            FileBody::Mem(b) => b.len() as u64,
            FileBody::Fixed(g) => g.len(),
        }
    }

    /// Append bytes `off..end` (clamped to the file) to `out`.
    pub fn fill(&self, off: u64, end: u64, out: &mut Vec<u8>) {
        let end = end.min(self.len());
        if off >= end {
            return;
        }
        match self {
            FileBody::Mem(b) => out.extend_from_slice(&b[off as usize..end as usize]),
            FileBody::Fixed(g) => g.fill(off, end, out),
        }
    }

    /// The bytes `start..end` as a stream of chunks, generated lazily.
    pub fn stream(
        self,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold((self, start), move |(body, pos)| async move {
            if pos >= end {
                return None;
            }
            let stop = end.min(pos + CHUNK as u64);
            let chunk = match &body {
                FileBody::Mem(b) => b.slice(pos as usize..stop as usize),
                FileBody::Fixed(_) => {
                    let mut v = Vec::with_capacity((stop - pos) as usize);
                    body.fill(pos, stop, &mut v);
                    Bytes::from(v)
                }
            };
            Some((Ok(chunk), (body, stop)))
        })
    }

    /// The whole file in memory (only for small files).
    #[cfg(test)]
    pub fn to_bytes(&self) -> Bytes {
        match self {
            FileBody::Mem(b) => b.clone(),
            FileBody::Fixed(_) => {
                let mut v = Vec::with_capacity(self.len() as usize);
                self.fill(0, self.len(), &mut v);
                Bytes::from(v)
            }
        }
    }
}

/// The content type of a crawl run file, as the spec lists them.
pub(crate) fn crawlrun_content_type(ft: CrawlrunFile) -> &'static str {
    match ft {
        CrawlrunFile::Csv => "text/csv",
        CrawlrunFile::Xlsx => XLSX,
        CrawlrunFile::Log => "text/plain",
        CrawlrunFile::Sample => "application/json",
        CrawlrunFile::Json => "application/x-ndjson",
        CrawlrunFile::Files => "application/zip",
    }
}

pub(crate) fn reportrun_content_type(ft: ReportRunFile) -> &'static str {
    match ft {
        ReportRunFile::Csv => "text/csv",
        ReportRunFile::Xlsx => XLSX,
        ReportRunFile::Json => "application/json",
    }
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The name a download is offered under (Content-Disposition):
/// `<run id>-<file type>.<extension>`. The mount names files itself.
pub(crate) fn download_name(
    id: &impl std::fmt::Display,
    api_name: &str,
    content_type: &str,
) -> String {
    let ext = match content_type {
        "text/csv" => "csv",
        XLSX => "xlsx",
        "text/plain" => "txt",
        "application/zip" => "zip",
        _ => "json",
    };
    format!("{id}-{api_name}.{ext}")
}

/// The totals a finished run reports.
pub(crate) fn totals(spec: &Spec, seed: u64) -> Totals {
    match &spec.result {
        ResultKind::Rows => {
            let ps = pages(spec, seed);
            Totals {
                urls: ps.len() as u64,
                failed: ps.iter().filter(|p| !p.ok).count() as u64,
                rows: ps.iter().map(|p| p.rows.len() as u64).sum(),
            }
        }
        ResultKind::Fixed { bytes, base } => {
            let g = FixedGen::new(FixedFormat::Csv, base, *bytes);
            Totals {
                urls: spec.inputs.len() as u64,
                failed: 0,
                rows: g.rows,
            }
        }
    }
}

/// A crawl run's result file.
pub(crate) fn crawlrun_file(
    spec: &Spec,
    seed: u64,
    ft: CrawlrunFile,
    started_ms: i64,
) -> Result<FileBody, String> {
    match &spec.result {
        ResultKind::Rows => rows_crawlrun_file(spec, seed, ft, started_ms),
        ResultKind::Fixed { bytes, base } => {
            fixed_crawlrun_file(spec, base, *bytes, ft, started_ms)
        }
    }
}

fn mem(v: Vec<u8>) -> Result<FileBody, String> {
    Ok(FileBody::Mem(Bytes::from(v)))
}

/// A crawl run's file of the demo shape: every format from the same rows.
fn rows_crawlrun_file(
    spec: &Spec,
    seed: u64,
    ft: CrawlrunFile,
    started_ms: i64,
) -> Result<FileBody, String> {
    let table = || rows_table(spec, seed);
    match ft {
        CrawlrunFile::Csv => {
            let t = table();
            mem(csv_bytes(&t.columns, &t.rows, true)?)
        }
        CrawlrunFile::Json => mem(json_lines(spec, seed)),
        CrawlrunFile::Xlsx => {
            let t = table();
            mem(xlsx_bytes("Results", &t.columns, &t.rows, started_ms)?)
        }
        CrawlrunFile::Sample => mem(sample_json(&table())),
        CrawlrunFile::Log => {
            let urls: Vec<_> = pages(spec, seed)
                .into_iter()
                .map(|p| (p.url, p.ok, p.message))
                .collect();
            mem(log_csv(&urls)?)
        }
        CrawlrunFile::Files => {
            let urls: Vec<_> = pages(spec, seed)
                .into_iter()
                .map(|p| (p.url, p.ok))
                .collect();
            mem(files_zip(&table(), &urls)?)
        }
    }
}

/// A crawl run's file of the scale shape: `data.csv` and `data.json`
/// generated as they stream; the other formats from the first
/// [`SCALE_TABLE_ROWS`] rows, in memory.
fn fixed_crawlrun_file(
    spec: &Spec,
    base: &str,
    bytes: u64,
    ft: CrawlrunFile,
    started_ms: i64,
) -> Result<FileBody, String> {
    let fixed = |f| FileBody::Fixed(Arc::new(FixedGen::new(f, base, bytes)));
    let table = || {
        let g = FixedGen::new(FixedFormat::Csv, base, bytes);
        let rows = (0..g.rows.min(SCALE_TABLE_ROWS))
            .map(|r| g.values(r))
            .collect();
        Table {
            columns: FIXED_COLUMNS.iter().map(|s| s.to_string()).collect(),
            rows,
        }
    };
    match ft {
        CrawlrunFile::Csv => Ok(fixed(FixedFormat::Csv)),
        CrawlrunFile::Json => Ok(fixed(FixedFormat::Json)),
        CrawlrunFile::Xlsx => {
            let t = table();
            mem(xlsx_bytes("Results", &t.columns, &t.rows, started_ms)?)
        }
        CrawlrunFile::Sample => mem(sample_json(&table())),
        CrawlrunFile::Log => {
            let urls: Vec<_> = spec
                .inputs
                .iter()
                .map(|u| (u.clone(), true, String::new()))
                .collect();
            mem(log_csv(&urls)?)
        }
        CrawlrunFile::Files => {
            let t = table();
            let urls: Vec<_> = t
                .rows
                .iter()
                .take(20)
                .filter_map(|r| r.first().cloned())
                .map(|u| (u, true))
                .collect();
            mem(files_zip(&t, &urls)?)
        }
    }
}

/// A report run's result file. `None`: this report type has no such file.
pub(crate) fn reportrun_file(
    spec: &Spec,
    seed: u64,
    change: bool,
    ft: ReportRunFile,
    started_ms: i64,
) -> Result<Option<FileBody>, String> {
    let t = report_table(spec, seed, change);
    let body = match ft {
        ReportRunFile::Csv => csv_bytes(&t.columns, &t.rows, true)?,
        ReportRunFile::Xlsx => xlsx_bytes("Report", &t.columns, &t.rows, started_ms)?,
        ReportRunFile::Json if !change => return Ok(None),
        ReportRunFile::Json => changes_json(&t.columns, &t.rows),
    };
    Ok(Some(FileBody::Mem(Bytes::from(body))))
}

/// The rows of a report: the run's rows (of at most 50 inputs, in the demo
/// shape), and for a Change report a first column saying how each row
/// changed.
fn report_table(spec: &Spec, seed: u64, change: bool) -> Table {
    // Reports summarise; a scale extractor's report stays small.
    let small = Spec {
        fields: spec.fields.clone(),
        inputs: spec.inputs.iter().take(50).cloned().collect(),
        result: ResultKind::Rows,
    };
    let base = rows_table(&small, seed);
    if !change {
        return base;
    }
    let kinds = ["added", "removed", "changed"];
    let mut columns = vec!["change".to_owned()];
    columns.extend(base.columns.iter().cloned());
    let rows: Vec<Vec<String>> = base
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let k = kinds[(mix(seed ^ i as u64) % 3) as usize];
            let mut row = vec![k.to_owned()];
            row.extend(r.iter().cloned());
            row
        })
        .collect();
    Table { columns, rows }
}

#[cfg(test)]
mod tests {
    use super::formats::BOM;
    use super::*;

    #[test]
    fn demo_files_are_deterministic() {
        let spec = Spec {
            fields: vec!["title".into(), "price".into(), "summary".into()],
            inputs: vec!["https://a.example/".into(), "https://b.example/404".into()],
            result: ResultKind::Rows,
        };
        for ft in CrawlrunFile::ALL {
            let a = crawlrun_file(&spec, 7, ft, 1_714_521_600_000).expect("file");
            let b = crawlrun_file(&spec, 7, ft, 1_714_521_600_000).expect("file");
            assert_eq!(a.to_bytes(), b.to_bytes(), "{ft:?}");
            assert!(a.len() > 0);
        }
        let csv = crawlrun_file(&spec, 7, CrawlrunFile::Csv, 0)
            .expect("csv")
            .to_bytes();
        assert!(csv.starts_with(BOM));
        assert!(csv.ends_with(b"\r\n"));
        let t = totals(&spec, 7);
        assert_eq!((t.urls, t.failed), (2, 1));
    }
}
