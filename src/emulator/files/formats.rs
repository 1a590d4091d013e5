//! The writers of the result formats: CSV (with a BOM, every field quoted,
//! CRLF, as the service's exports), xlsx, JSON lines, the sample JSON, the
//! run log (CSV) and the `files` zip of pages.
//!
//! Subtle: every writer is deterministic — the xlsx carries the run's start
//! as its creation time and the zip a fixed date — so a resumed or ranged
//! download sees the same bytes as a full one.

use std::io::{Cursor, Write};

use serde_json::{json, Map, Value};

use super::rows::{pages, Table};
use crate::emulator::state::Spec;

/// The UTF-8 byte order mark that starts a CSV result.
pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) fn csv_bytes(
    columns: &[String],
    rows: &[Vec<String>],
    bom: bool,
) -> Result<Vec<u8>, String> {
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

pub(super) fn xlsx_bytes(
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

pub(super) fn json_lines(spec: &Spec, seed: u64) -> Vec<u8> {
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

pub(super) fn sample_json(table: &Table) -> Vec<u8> {
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

pub(super) fn files_zip(table: &Table, urls: &[(String, bool)]) -> Result<Vec<u8>, String> {
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

pub(super) fn log_csv(urls: &[(String, bool, String)]) -> Result<Vec<u8>, String> {
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

/// The JSON result of a Change report: `{"changes": [{"change", "url",
/// "data"}]}`, from rows whose first two columns are the change and the URL.
pub(super) fn changes_json(columns: &[String], rows: &[Vec<String>]) -> Vec<u8> {
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
