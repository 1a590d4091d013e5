//! The demo shape of results ([`ResultKind::Rows`](crate::emulator::state::ResultKind)):
//! a few rows per input URL, each value made up from its field's name and a
//! hash of (url, field, row, run seed).
//!
//! Subtle points:
//! - Values are believable for their field (`price` looks like a price,
//!   `date` like a date, a `description` has a comma, a quote and sometimes a
//!   second line), so the CSV and xlsx writers meet what real results hold.
//! - A URL containing `404` fails (no rows, a message in the log): a test
//!   asks for failures through the inputs, deterministically.
//! - Everything depends on the spec and the seed only, so the same run gives
//!   the same rows on every request.

use crate::emulator::state::{h64, mix, Spec};

/// One input URL's outcome.
#[derive(Clone, Debug)]
pub(super) struct Page {
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
pub(super) fn pages(spec: &Spec, seed: u64) -> Vec<Page> {
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
pub(super) struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub(super) fn rows_table(spec: &Spec, seed: u64) -> Table {
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
