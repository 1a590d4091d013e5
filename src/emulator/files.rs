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

use std::io::{Cursor, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{json, Map, Value};

use super::state::{h64, mix, ResultKind, Spec, Totals};
use crate::api::models::{CrawlrunFile, ReportRunFile};

const BOM: &[u8] = b"\xEF\xBB\xBF";
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

// ---------------------------------------------------------------------------
// Rows: the demo shape.

/// One input URL's outcome.
#[derive(Clone, Debug)]
pub(crate) struct Page {
    pub url: String,
    pub ok: bool,
    pub message: String,
    /// One value per field, per row.
    pub rows: Vec<Vec<String>>,
}

/// A URL "fails" when it contains `404`: deterministic, and tests can ask for
/// failures through the inputs.
fn page_fails(url: &str) -> bool {
    url.contains("404")
}

const WORDS: &[&str] = &[
    "Aurora", "Nimbus", "Vertex", "Summit", "Harbor", "Cobalt", "Meadow", "Quartz", "Ember",
    "Atlas", "Willow", "Falcon", "Orbit", "Cedar", "Lumen", "Pioneer", "Granite", "Velvet",
    "Crescent", "Maple",
];

fn words(h: u64, n: usize) -> String {
    (0..n)
        .map(|i| WORDS[(mix(h ^ i as u64) % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A believable value for a field, from its name.
fn value(field: &str, url: &str, row: usize, seed: u64) -> String {
    let h = h64(&[
        field.as_bytes(),
        url.as_bytes(),
        &(row as u64).to_le_bytes(),
        &seed.to_le_bytes(),
    ]);
    let f = field.to_ascii_lowercase();
    let has = |k: &[&str]| k.iter().any(|k| f.contains(k));
    if has(&["price", "salary", "cost"]) {
        format!("${}.{:02}", 5 + h % 900, (h >> 16) % 100)
    } else if has(&["rating", "score"]) {
        format!("{}.{}", 1 + h % 4, (h >> 8) % 10)
    } else if has(&["date", "posted", "published", "year"]) {
        if f.contains("year") {
            format!("{}", 1950 + h % 74)
        } else {
            format!("2024-{:02}-{:02}", 1 + h % 12, 1 + (h >> 8) % 28)
        }
    } else if has(&["link", "url", "repository"]) {
        format!("{}#item-{}", url.trim_end_matches('/'), row + 1)
    } else if has(&[
        "count", "votes", "reviews", "points", "comments", "stars", "beds", "baths", "sqft",
    ]) {
        format!("{}", 1 + h % 5000)
    } else if has(&["summary", "description", "headline"]) {
        let mut s = format!(
            "{}, said \"{}\" — {}",
            words(h, 3),
            words(h >> 7, 2),
            words(h >> 13, 4)
        );
        if row % 3 == 2 {
            s.push_str("\nSecond line, with a comma");
        }
        s
    } else {
        words(h, 2 + (h % 3) as usize)
    }
}

/// The pages of a `Rows` run.
pub(crate) fn pages(spec: &Spec, seed: u64) -> Vec<Page> {
    spec.inputs
        .iter()
        .map(|url| {
            if page_fails(url) {
                return Page {
                    url: url.clone(),
                    ok: false,
                    message: "HTTP 404 Not Found".into(),
                    rows: Vec::new(),
                };
            }
            let n = 2 + (h64(&[url.as_bytes(), &seed.to_le_bytes()]) % 4) as usize;
            let rows = (0..n)
                .map(|r| spec.fields.iter().map(|f| value(f, url, r, seed)).collect())
                .collect();
            Page {
                url: url.clone(),
                ok: true,
                message: String::new(),
                rows,
            }
        })
        .collect()
}

/// A table: column names and rows (`url` first).
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn rows_table(spec: &Spec, seed: u64) -> Table {
    let mut columns = vec!["url".to_owned()];
    columns.extend(spec.fields.iter().cloned());
    let mut rows = Vec::new();
    for p in pages(spec, seed) {
        for r in p.rows {
            let mut row = vec![p.url.clone()];
            row.extend(r);
            rows.push(row);
        }
    }
    Table { columns, rows }
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

// ---------------------------------------------------------------------------
// Writers.

fn csv_bytes(columns: &[String], rows: &[Vec<String>], bom: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(BOM);
    }
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    w.write_record(columns).map_err(|e| e.to_string())?;
    for r in rows {
        w.write_record(r).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

fn xlsx_bytes(
    sheet: &str,
    columns: &[String],
    rows: &[Vec<String>],
    created_ms: i64,
) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut wb = Workbook::new();
    let when = ExcelDateTime::from_timestamp(created_ms.max(0) / 1000).map_err(err)?;
    wb.set_properties(
        &DocProperties::new()
            .set_creation_datetime(&when)
            .set_title("Import.io results")
            .set_author("importfs emulator"),
    );
    let bold = Format::new().set_bold();
    let ws = wb.add_worksheet();
    ws.set_name(sheet).map_err(err)?;
    for (c, name) in columns.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, name, &bold)
            .map_err(err)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, c as u16, v).map_err(err)?;
        }
    }
    wb.save_to_buffer().map_err(err)
}

fn group_json(fields: &[String], row: &[String]) -> Value {
    let mut g = Map::new();
    for (f, v) in fields.iter().zip(row) {
        g.insert(f.clone(), json!([{ "text": v }]));
    }
    Value::Object(g)
}

fn json_lines(spec: &Spec, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pages(spec, seed).into_iter().filter(|p| p.ok) {
        let group: Vec<Value> = p.rows.iter().map(|r| group_json(&spec.fields, r)).collect();
        let line = json!({
            "url": p.url,
            "result": {
                "extractorData": {
                    "url": p.url,
                    "data": [ { "group": group } ],
                },
                "pageData": { "statusCode": 200 },
            },
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn sample_json(table: &Table) -> Vec<u8> {
    let items: Vec<Value> = table
        .rows
        .iter()
        .take(5)
        .map(|r| {
            let mut m = Map::new();
            for (c, v) in table.columns.iter().zip(r) {
                m.insert(c.clone(), Value::String(v.clone()));
            }
            Value::Object(m)
        })
        .collect();
    let mut v = serde_json::to_vec_pretty(&Value::Array(items)).unwrap_or_default();
    v.push(b'\n');
    v
}

fn zip_bytes(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    use zip::write::SimpleFileOptions;
    let when = zip::DateTime::from_date_and_time(2024, 5, 1, 0, 0, 0).map_err(|e| e.to_string())?;
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(when);
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        z.start_file(name.as_str(), opts)
            .map_err(|e| e.to_string())?;
        z.write_all(data).map_err(|e| e.to_string())?;
    }
    Ok(z.finish().map_err(|e| e.to_string())?.into_inner())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn files_zip(table: &Table, urls: &[(String, bool)]) -> Result<Vec<u8>, String> {
    let mut entries = Vec::new();
    let manifest: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, (u, ok))| json!({"url": u, "success": ok, "file": format!("pages/{:04}.html", i + 1)}))
        .collect();
    entries.push((
        "manifest.json".to_owned(),
        serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    ));
    for (i, (u, ok)) in urls.iter().enumerate().take(100) {
        let mut html = format!(
            "<!doctype html>\n<html><head><title>{}</title></head><body>\n<table>\n",
            html_escape(u)
        );
        if *ok {
            for r in table.rows.iter().filter(|r| r.first() == Some(u)) {
                html.push_str("<tr>");
                for v in r {
                    html.push_str(&format!("<td>{}</td>", html_escape(v)));
                }
                html.push_str("</tr>\n");
            }
        }
        html.push_str("</table>\n</body></html>\n");
        entries.push((format!("pages/{:04}.html", i + 1), html.into_bytes()));
    }
    zip_bytes(&entries)
}

fn log_csv(urls: &[(String, bool, String)]) -> Result<Vec<u8>, String> {
    let rows: Vec<Vec<String>> = urls
        .iter()
        .map(|(u, ok, m)| vec![u.clone(), ok.to_string(), m.clone()])
        .collect();
    csv_bytes(
        &["Url".into(), "Success".into(), "Message".into()],
        &rows,
        false,
    )
}

/// A crawl run's result file.
pub(crate) fn crawlrun_file(
    spec: &Spec,
    seed: u64,
    ft: CrawlrunFile,
    started_ms: i64,
) -> Result<FileBody, String> {
    let mem = |v: Vec<u8>| Ok(FileBody::Mem(Bytes::from(v)));
    match &spec.result {
        ResultKind::Rows => {
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
        ResultKind::Fixed { bytes, base } => {
            let fixed = |f| FileBody::Fixed(Arc::new(FixedGen::new(f, base, *bytes)));
            let table = || {
                let g = FixedGen::new(FixedFormat::Csv, base, *bytes);
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
    // Reports summarise; a scale extractor's report stays small.
    let small = Spec {
        fields: spec.fields.clone(),
        inputs: spec.inputs.iter().take(50).cloned().collect(),
        result: ResultKind::Rows,
    };
    let base = rows_table(&small, seed);
    let kinds = ["added", "removed", "changed"];
    let (columns, rows) = if change {
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
        (columns, rows)
    } else {
        (base.columns.clone(), base.rows.clone())
    };
    let body = match ft {
        ReportRunFile::Csv => csv_bytes(&columns, &rows, true)?,
        ReportRunFile::Xlsx => xlsx_bytes("Report", &columns, &rows, started_ms)?,
        ReportRunFile::Json if !change => return Ok(None),
        ReportRunFile::Json => {
            let items: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut data = Map::new();
                    for (c, v) in columns.iter().zip(r).skip(2) {
                        data.insert(c.clone(), Value::String(v.clone()));
                    }
                    json!({
                        "change": r.first(),
                        "url": r.get(1),
                        "data": data,
                    })
                })
                .collect();
            let mut v = serde_json::to_vec_pretty(&json!({ "changes": items })).unwrap_or_default();
            v.push(b'\n');
            v
        }
    };
    Ok(Some(FileBody::Mem(Bytes::from(body))))
}

// ---------------------------------------------------------------------------
// Fixed: the scale shape.

const FIXED_COLUMNS: [&str; 4] = ["url", "title", "price", "description"];
const ID_DIGITS: usize = 12;
const PRICE_LEN: usize = 7; // "0000.00"
const LOREM: &[u8] = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FixedFormat {
    Csv,
    Json,
}

/// One row's bytes with the places where the row number and price go.
#[derive(Debug)]
struct Template {
    bytes: Vec<u8>,
    ids: Vec<usize>,
    prices: Vec<usize>,
}

enum Seg<'a> {
    Lit(&'a str),
    Id,
    Price,
    Filler,
}

fn segments(format: FixedFormat, base: &str) -> Vec<Seg<'_>> {
    use Seg::*;
    match format {
        FixedFormat::Csv => vec![
            Lit("\""),
            Lit(base),
            Lit("/item/"),
            Id,
            Lit("\",\"Item "),
            Id,
            Lit("\",\""),
            Price,
            Lit("\",\""),
            Filler,
            Lit("\"\r\n"),
        ],
        FixedFormat::Json => vec![
            Lit("{\"url\":\""),
            Lit(base),
            Lit("/item/"),
            Id,
            Lit("\",\"result\":{\"extractorData\":{\"url\":\""),
            Lit(base),
            Lit("/item/"),
            Id,
            Lit("\",\"data\":[{\"group\":[{\"title\":[{\"text\":\"Item "),
            Id,
            Lit("\"}],\"price\":[{\"text\":\""),
            Price,
            Lit("\"}],\"description\":[{\"text\":\""),
            Filler,
            Lit("\"}]}]}]}}}\n"),
        ],
    }
}

fn template(format: FixedFormat, base: &str, filler: usize) -> Template {
    let mut t = Template {
        bytes: Vec::new(),
        ids: Vec::new(),
        prices: Vec::new(),
    };
    for s in segments(format, base) {
        match s {
            Seg::Lit(l) => t.bytes.extend_from_slice(l.as_bytes()),
            Seg::Id => {
                t.ids.push(t.bytes.len());
                t.bytes.extend_from_slice(&[b'0'; ID_DIGITS]);
            }
            Seg::Price => {
                t.prices.push(t.bytes.len());
                t.bytes.extend_from_slice(b"0000.00");
            }
            Seg::Filler => {
                // Never start or end with a space: readers trim.
                for i in 0..filler {
                    let c = LOREM[i % LOREM.len()];
                    let edge = i == 0 || i + 1 == filler;
                    t.bytes.push(if edge && c == b' ' { b'x' } else { c });
                }
            }
        }
    }
    t
}

fn put_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn price_cents(row: u64) -> u64 {
    mix(row ^ 0xdead_beef) % 1_000_000
}

/// Generator of a fixed-width file.
#[derive(Debug)]
pub(crate) struct FixedGen {
    header: Vec<u8>,
    rows: u64,
    row_len: u64,
    last_len: u64,
    tpl: Template,
    last_tpl: Template,
    base: String,
}

impl FixedGen {
    /// A file of `bytes` bytes (or just the header, when that is too small
    /// for one row).
    pub fn new(format: FixedFormat, base: &str, bytes: u64) -> FixedGen {
        let header: Vec<u8> = match format {
            FixedFormat::Csv => {
                let mut h = BOM.to_vec();
                h.extend_from_slice(b"\"url\",\"title\",\"price\",\"description\"\r\n");
                h
            }
            FixedFormat::Json => Vec::new(),
        };
        let fixed = template(format, base, 0).bytes.len() as u64;
        let nominal = match format {
            FixedFormat::Csv => 128u64,
            FixedFormat::Json => 384,
        }
        .max(fixed + 16);
        let body = bytes.saturating_sub(header.len() as u64);
        let (rows, last_len) = if body < fixed {
            (0, 0)
        } else {
            let rows = (body / nominal).max(1);
            (rows, body - (rows - 1) * nominal)
        };
        FixedGen {
            tpl: template(format, base, (nominal - fixed) as usize),
            last_tpl: template(format, base, last_len.saturating_sub(fixed) as usize),
            header,
            rows,
            row_len: nominal,
            last_len,
            base: base.to_owned(),
        }
    }

    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.rows.saturating_sub(1) * self.row_len + self.last_len
    }

    /// The row's values as a table row (for xlsx, sample, ...).
    fn values(&self, row: u64) -> Vec<String> {
        let c = price_cents(row);
        vec![
            format!("{}/item/{:012}", self.base, row + 1),
            format!("Item {:012}", row + 1),
            format!("{:04}.{:02}", (c / 100) % 10_000, c % 100),
            "lorem ipsum dolor sit amet".to_owned(),
        ]
    }

    fn write_row(&self, row: u64, out: &mut Vec<u8>) {
        let t = if row + 1 == self.rows {
            &self.last_tpl
        } else {
            &self.tpl
        };
        let s = out.len();
        out.extend_from_slice(&t.bytes);
        let r = &mut out[s..];
        for &p in &t.ids {
            put_digits(&mut r[p..p + ID_DIGITS], row + 1);
        }
        let c = price_cents(row);
        for &p in &t.prices {
            put_digits(&mut r[p..p + 4], (c / 100) % 10_000);
            put_digits(&mut r[p + 5..p + PRICE_LEN], c % 100);
        }
    }

    /// (row, its first byte, its length) for a byte offset past the header.
    fn locate(&self, off: u64) -> (u64, u64, u64) {
        let h = self.header.len() as u64;
        let r = ((off - h) / self.row_len).min(self.rows.saturating_sub(1));
        let len = if r + 1 == self.rows {
            self.last_len
        } else {
            self.row_len
        };
        (r, h + r * self.row_len, len)
    }

    fn fill(&self, mut off: u64, end: u64, out: &mut Vec<u8>) {
        let h = self.header.len() as u64;
        if off < h {
            let e = end.min(h);
            out.extend_from_slice(&self.header[off as usize..e as usize]);
            off = e;
        }
        let mut scratch = Vec::new();
        while off < end {
            let (row, start, len) = self.locate(off);
            let within = off - start;
            let take = (len - within).min(end - off);
            if take == 0 {
                break;
            }
            if within == 0 && take == len {
                self.write_row(row, out);
            } else {
                scratch.clear();
                self.write_row(row, &mut scratch);
                out.extend_from_slice(&scratch[within as usize..(within + take) as usize]);
            }
            off += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(g: &FixedGen) -> Vec<u8> {
        let mut v = Vec::new();
        g.fill(0, g.len(), &mut v);
        v
    }

    #[test]
    fn fixed_files_have_the_asked_size_and_parse() {
        for bytes in [0u64, 10, 200, 1000, 12_345, 100_000] {
            for f in [FixedFormat::Csv, FixedFormat::Json] {
                let g = FixedGen::new(f, "https://shop1.example.com", bytes);
                let v = whole(&g);
                assert_eq!(v.len() as u64, g.len());
                if g.rows > 0 {
                    assert_eq!(g.len(), bytes, "{f:?} {bytes}");
                }
                if f == FixedFormat::Json {
                    for line in v.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let j: Value = serde_json::from_slice(line).expect("json line");
                        assert!(j["result"]["extractorData"]["data"][0]["group"].is_array());
                    }
                } else {
                    let mut r = csv::Reader::from_reader(&v[3..]);
                    assert_eq!(r.records().count() as u64, g.rows);
                }
            }
        }
    }

    #[test]
    fn any_range_matches_the_whole() {
        let g = FixedGen::new(FixedFormat::Csv, "https://s.example.com", 10_000);
        let all = whole(&g);
        for (a, b) in [
            (0, 1),
            (3, 60),
            (57, 300),
            (127, 129),
            (9_000, 10_000),
            (9_999, 10_000),
        ] {
            let mut v = Vec::new();
            g.fill(a, b, &mut v);
            assert_eq!(&v[..], &all[a as usize..b as usize], "{a}..{b}");
        }
    }

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
