//! The accounts the emulator starts with.
//!
//! `demo` is a believable account — a dozen extractors of well-known sites,
//! each with finished runs, two reports (one of type `Change`) — plus
//! extractors whose names a filesystem must not trust: a duplicate name, `/`,
//! `..`, a leading dot, an emoji, a newline, 300 bytes and the empty name.
//! `scale` is `extractors` extractors and `crawlruns` finished runs with large
//! generated results. Both are deterministic: ids and times come from
//! [`det_uuid`] and a fixed epoch, so a restart finds the same objects.

use std::sync::Arc;

use super::config::{Config, Dataset};
use super::files::totals;
use super::state::{
    det_uuid, Db, ExtractorRec, ReportRec, ReportRunRec, ResultKind, RunRec, Spec, Timeline,
};
use crate::api::models::RunState;

/// 2024-05-01T00:00:00Z: the datasets' "now", in epoch milliseconds.
pub(crate) const EPOCH_MS: i64 = 1_714_521_600_000;
const DAY: i64 = 86_400_000;
const MINUTE: i64 = 60_000;

/// The seed of a run's generated values.
pub(crate) fn run_seed(guid: &uuid::Uuid) -> u64 {
    let (a, b) = guid.as_u64_pair();
    a ^ b.rotate_left(17)
}

pub(crate) fn build(config: &Config) -> Db {
    match config.dataset {
        Dataset::Demo => demo(),
        Dataset::Scale => scale(config),
    }
}

/// `(name, fields, inputs)` of the believable extractors.
fn believable() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (
            "Amazon Best Sellers - Electronics",
            vec!["title", "price", "rating", "link"],
            vec![
                "https://www.amazon.com/Best-Sellers-Electronics/zgbs/electronics",
                "https://www.amazon.com/Best-Sellers-Electronics/zgbs/electronics?pg=2",
            ],
        ),
        (
            "Zillow Seattle Listings",
            vec!["address", "price", "beds", "baths", "sqft"],
            vec![
                "https://www.zillow.com/seattle-wa/",
                "https://www.zillow.com/seattle-wa/2_p/",
                "https://www.zillow.com/seattle-wa/3_p/",
            ],
        ),
        (
            "Indeed Rust Jobs",
            vec!["job_title", "company", "location", "salary", "posted"],
            vec!["https://www.indeed.com/jobs?q=rust+engineer&l=Remote"],
        ),
        (
            "BBC News Headlines",
            vec!["headline", "summary", "section", "published"],
            vec![
                "https://www.bbc.com/news",
                "https://www.bbc.com/news/technology",
                "https://www.bbc.com/news/not-found-404",
            ],
        ),
        (
            "Hacker News Front Page",
            vec!["title", "points", "comments", "link"],
            vec![
                "https://news.ycombinator.com/news",
                "https://news.ycombinator.com/news?p=2",
            ],
        ),
        (
            "eBay Sold Vintage Watches",
            vec!["title", "sold_price", "sold_date", "condition"],
            vec!["https://www.ebay.com/sch/i.html?_nkw=vintage+watch&LH_Sold=1"],
        ),
        (
            "Booking.com Paris Hotels",
            vec!["hotel", "price_per_night", "score", "district"],
            vec![
                "https://www.booking.com/city/fr/paris.html",
                "https://www.booking.com/city/fr/paris.html?offset=25",
            ],
        ),
        (
            "Yelp Coffee Shops SF",
            vec!["name", "rating", "reviews", "neighborhood"],
            vec!["https://www.yelp.com/search?find_desc=coffee&find_loc=San+Francisco"],
        ),
        (
            "IMDb Top Rated Movies",
            vec!["title", "year", "rating", "votes"],
            vec!["https://www.imdb.com/chart/top/"],
        ),
        (
            "GitHub Trending Rust",
            vec!["repository", "description", "stars", "language"],
            vec![
                "https://github.com/trending/rust?since=daily",
                "https://github.com/trending/rust?since=weekly",
            ],
        ),
        (
            "Walmart Grocery Prices",
            vec!["product", "price", "unit_price", "availability"],
            vec![
                "https://www.walmart.com/browse/food/976759",
                "https://www.walmart.com/browse/food/976759?page=2",
            ],
        ),
        (
            "Craigslist Portland Bikes",
            vec!["title", "price", "location", "posted"],
            vec!["https://portland.craigslist.org/search/bia"],
        ),
    ]
}

/// Names a filesystem must make safe, each with a short reason.
pub(crate) fn hostile_names() -> Vec<String> {
    let mut long = "Long-x".to_owned();
    while long.len() < 300 {
        long.push('é');
    }
    vec![
        "Product Prices".to_owned(), // twice: a duplicate name
        "Product Prices".to_owned(),
        "Prices/2024 Q1".to_owned(), // a slash
        "..".to_owned(),
        ".hidden config".to_owned(),
        "🚀 Launch Tracker".to_owned(),
        "Line one\nLine two".to_owned(),
        long, // 300 bytes, multi-byte characters
        String::new(),
    ]
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[allow(clippy::too_many_arguments)]
fn add_run(
    db: &mut Db,
    n: u64,
    extractor: uuid::Uuid,
    spec: &Arc<Spec>,
    started_ms: i64,
    minutes: i64,
    forced: Option<RunState>,
) {
    let guid = det_uuid("crawlrun", n);
    let mut timeline = Timeline {
        started_ms,
        pending_ms: MINUTE / 2,
        duration_ms: minutes * MINUTE,
        forced: None,
    };
    if let Some(s) = forced {
        timeline.force(s, started_ms + minutes * MINUTE / 2);
    }
    let totals = totals(spec, run_seed(&guid));
    db.runs.insert(
        guid,
        RunRec {
            guid,
            extractor,
            spec: spec.clone(),
            timeline,
            totals,
            from_start: false,
        },
    );
}

fn demo() -> Db {
    let mut db = Db::new("demo", EPOCH_MS - 400 * DAY);
    let mut run_n = 0u64;
    let mut specs = Vec::new();
    for (i, (name, fields, inputs)) in believable().into_iter().enumerate() {
        let guid = det_uuid("extractor", i as u64);
        let spec = Arc::new(Spec {
            fields: strings(&fields),
            inputs: strings(&inputs),
            result: ResultKind::Rows,
        });
        let created = EPOCH_MS - (200 - 9 * i as i64) * DAY;
        db.extractors.insert(
            guid,
            ExtractorRec {
                guid,
                name: name.to_owned(),
                spec: spec.clone(),
                tags: vec!["demo".into()],
                archived: false,
                created_ms: created,
                modified_ms: created + 3 * DAY,
                credentials: None,
                credentials_id: None,
            },
        );
        // 1 to 3 finished runs, a day apart, the newest a few days ago.
        let runs = 1 + i % 3;
        for k in 0..runs {
            let start =
                EPOCH_MS - (10 + i as i64) * DAY - (runs - k) as i64 * DAY + 9 * 60 * MINUTE;
            add_run(&mut db, run_n, guid, &spec, start, 4 + (i as i64 % 5), None);
            run_n += 1;
        }
        // A failed and a cancelled run, older than the finished ones.
        if i == 3 {
            add_run(
                &mut db,
                run_n,
                guid,
                &spec,
                created + DAY,
                6,
                Some(RunState::Failed),
            );
            run_n += 1;
        }
        if i == 5 {
            add_run(
                &mut db,
                run_n,
                guid,
                &spec,
                created + DAY,
                6,
                Some(RunState::Cancelled),
            );
            run_n += 1;
        }
        specs.push((guid, spec));
    }
    for (j, name) in hostile_names().into_iter().enumerate() {
        let i = 100 + j as u64;
        let guid = det_uuid("extractor", i);
        let spec = Arc::new(Spec {
            fields: strings(&["title", "price"]),
            inputs: vec![format!("https://example.com/hostile/{j}")],
            result: ResultKind::Rows,
        });
        let created = EPOCH_MS - (60 - j as i64) * DAY;
        db.extractors.insert(
            guid,
            ExtractorRec {
                guid,
                name,
                spec: spec.clone(),
                tags: vec!["hostile".into()],
                archived: false,
                created_ms: created,
                modified_ms: created,
                credentials: None,
                credentials_id: None,
            },
        );
        add_run(&mut db, run_n, guid, &spec, created + DAY, 3, None);
        run_n += 1;
    }
    // Reports: a Change report on the Amazon extractor with two runs, and a
    // Standard one on Zillow with one.
    let reports = [
        ("Weekly price changes", "Change", 0usize, 2u64),
        ("Seattle listings summary", "Standard", 1, 1),
    ];
    let mut rr_n = 0u64;
    for (k, (name, kind, ext, runs)) in reports.into_iter().enumerate() {
        let (extractor, spec) = specs[ext].clone();
        let guid = det_uuid("report", k as u64);
        let created = EPOCH_MS - (90 - k as i64) * DAY;
        let rec = ReportRec {
            guid,
            name: name.to_owned(),
            kind: kind.to_owned(),
            extractor,
            config_id: det_uuid("report-config", k as u64),
            created_ms: created,
            modified_ms: created,
            deleted: false,
        };
        for r in 0..runs {
            add_report_run(
                &mut db,
                &rec,
                &spec,
                rr_n,
                EPOCH_MS - (7 * (runs - r)) as i64 * DAY,
            );
            rr_n += 1;
        }
        db.reports.insert(guid, rec);
    }
    db
}

fn add_report_run(db: &mut Db, report: &ReportRec, spec: &Arc<Spec>, n: u64, started_ms: i64) {
    let guid = det_uuid("reportrun", n);
    db.report_runs.insert(
        guid,
        ReportRunRec {
            guid,
            report: report.guid,
            extractor: report.extractor,
            name: report.name.clone(),
            kind: report.kind.clone(),
            change: report.is_change(),
            config_id: report.config_id,
            spec: spec.clone(),
            timeline: Timeline {
                started_ms,
                pending_ms: 1_000,
                duration_ms: 2 * MINUTE,
                forced: None,
            },
            status_override: None,
        },
    );
}

fn scale(config: &Config) -> Db {
    let mut db = Db::new("scale", EPOCH_MS - 400 * DAY);
    let n = config.extractors.max(1);
    let mut specs = Vec::with_capacity(n);
    for i in 0..n {
        let guid = det_uuid("extractor", i as u64);
        let base = format!("https://shop{:05}.example.com", i + 1);
        let spec = Arc::new(Spec {
            fields: strings(&["title", "price", "description"]),
            inputs: (1..=3).map(|p| format!("{base}/page/{p}")).collect(),
            result: ResultKind::Fixed {
                bytes: config.result_bytes,
                base,
            },
        });
        let created = EPOCH_MS - 300 * DAY + i as i64 * MINUTE;
        db.extractors.insert(
            guid,
            ExtractorRec {
                guid,
                name: format!("Scale extractor {:05}", i + 1),
                spec: spec.clone(),
                tags: vec!["scale".into()],
                archived: false,
                created_ms: created,
                modified_ms: created,
                credentials: None,
                credentials_id: None,
            },
        );
        specs.push((guid, spec));
    }
    let totals = specs.first().map(|(_, s)| totals(s, 0)).unwrap_or_default();
    for j in 0..config.crawlruns {
        let (extractor, spec) = &specs[j % n];
        let guid = det_uuid("crawlrun", j as u64);
        // Spread over the past: newest last, one every ten minutes.
        let started = EPOCH_MS - (config.crawlruns - j) as i64 * 10 * MINUTE;
        db.runs.insert(
            guid,
            RunRec {
                guid,
                extractor: *extractor,
                spec: spec.clone(),
                timeline: Timeline {
                    started_ms: started,
                    pending_ms: MINUTE / 2,
                    duration_ms: 5 * MINUTE,
                    forced: None,
                },
                // Every scale run has the same size: compute once.
                totals,
                from_start: false,
            },
        );
    }
    let mut rr_n = 0;
    for (k, (name, kind)) in [
        ("Scale change report", "Change"),
        ("Scale report", "Standard"),
    ]
    .into_iter()
    .enumerate()
    {
        let (extractor, spec) = specs[0].clone();
        let guid = det_uuid("report", k as u64);
        let rec = ReportRec {
            guid,
            name: name.to_owned(),
            kind: kind.to_owned(),
            extractor,
            config_id: det_uuid("report-config", k as u64),
            created_ms: EPOCH_MS - 30 * DAY,
            modified_ms: EPOCH_MS - 30 * DAY,
            deleted: false,
        };
        for r in 0..2 {
            add_report_run(&mut db, &rec, &spec, rr_n, EPOCH_MS - (2 - r) * DAY);
            rr_n += 1;
        }
        db.reports.insert(guid, rec);
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_deterministic_and_hostile() {
        let a = demo();
        let b = demo();
        let ids = |d: &Db| {
            d.extractors
                .items
                .iter()
                .map(|e| e.guid)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        let names: Vec<_> = a.extractors.items.iter().map(|e| e.name.clone()).collect();
        assert!(names.iter().any(|n| n.len() == 300));
        assert!(names.iter().any(|n| n.is_empty()));
        assert!(names.iter().any(|n| n == ".."));
        assert_eq!(names.iter().filter(|n| *n == "Product Prices").count(), 2);
        assert!(a.extractors.items.len() >= 20);
    }

    #[test]
    fn scale_builds_quickly() {
        let c = Config {
            dataset: Dataset::Scale,
            extractors: 100,
            crawlruns: 20_000,
            ..Config::default()
        };
        let t = std::time::Instant::now();
        let db = build(&c);
        assert_eq!(db.runs.items.len(), 20_000);
        assert!(t.elapsed().as_secs() < 5);
    }
}
