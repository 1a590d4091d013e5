//! The accounts the emulator starts with.
//!
//! `demo` is a believable account — a dozen extractors of well-known sites,
//! each with finished runs, two reports (one of type `Change`) — plus
//! extractors whose names a filesystem must not trust: a duplicate name, `/`,
//! `..`, a leading dot, an emoji, a newline, 300 bytes and the empty name.
//! `scale` is `extractors` extractors and `crawlruns` finished runs with large
//! generated results. Both are deterministic: ids and times come from
//! [`det_uuid`] and a fixed epoch, so a restart finds the same objects.
//!
//! [`insert_run`] is here too: how the demo dataset, the start operation and
//! the hooks add a crawl run, with its totals computed when it is added from
//! the files it will have (seeded by [`run_seed`]). The scale dataset adds
//! its runs directly, all with the same totals, computed once.

use std::sync::Arc;

use uuid::Uuid;

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
pub(crate) fn run_seed(guid: &Uuid) -> u64 {
    let (a, b) = guid.as_u64_pair();
    a ^ b.rotate_left(17)
}

pub(crate) fn build(config: &Config) -> Db {
    match config.dataset {
        Dataset::Demo => demo(),
        Dataset::Scale => scale(config),
    }
}

/// `(name, fields, inputs)` of the believable extractors: a table of data
/// only, the sites a newcomer would recognise, with fields their pages show.
type Believable = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const BELIEVABLE: &[Believable] = &[
    (
        "Amazon Best Sellers - Electronics",
        &["title", "price", "rating", "link"],
        &[
            "https://www.amazon.com/Best-Sellers-Electronics/zgbs/electronics",
            "https://www.amazon.com/Best-Sellers-Electronics/zgbs/electronics?pg=2",
        ],
    ),
    (
        "Zillow Seattle Listings",
        &["address", "price", "beds", "baths", "sqft"],
        &[
            "https://www.zillow.com/seattle-wa/",
            "https://www.zillow.com/seattle-wa/2_p/",
            "https://www.zillow.com/seattle-wa/3_p/",
        ],
    ),
    (
        "Indeed Rust Jobs",
        &["job_title", "company", "location", "salary", "posted"],
        &["https://www.indeed.com/jobs?q=rust+engineer&l=Remote"],
    ),
    (
        "BBC News Headlines",
        &["headline", "summary", "section", "published"],
        &[
            "https://www.bbc.com/news",
            "https://www.bbc.com/news/technology",
            "https://www.bbc.com/news/not-found-404",
        ],
    ),
    (
        "Hacker News Front Page",
        &["title", "points", "comments", "link"],
        &[
            "https://news.ycombinator.com/news",
            "https://news.ycombinator.com/news?p=2",
        ],
    ),
    (
        "eBay Sold Vintage Watches",
        &["title", "sold_price", "sold_date", "condition"],
        &["https://www.ebay.com/sch/i.html?_nkw=vintage+watch&LH_Sold=1"],
    ),
    (
        "Booking.com Paris Hotels",
        &["hotel", "price_per_night", "score", "district"],
        &[
            "https://www.booking.com/city/fr/paris.html",
            "https://www.booking.com/city/fr/paris.html?offset=25",
        ],
    ),
    (
        "Yelp Coffee Shops SF",
        &["name", "rating", "reviews", "neighborhood"],
        &["https://www.yelp.com/search?find_desc=coffee&find_loc=San+Francisco"],
    ),
    (
        "IMDb Top Rated Movies",
        &["title", "year", "rating", "votes"],
        &["https://www.imdb.com/chart/top/"],
    ),
    (
        "GitHub Trending Rust",
        &["repository", "description", "stars", "language"],
        &[
            "https://github.com/trending/rust?since=daily",
            "https://github.com/trending/rust?since=weekly",
        ],
    ),
    (
        "Walmart Grocery Prices",
        &["product", "price", "unit_price", "availability"],
        &[
            "https://www.walmart.com/browse/food/976759",
            "https://www.walmart.com/browse/food/976759?page=2",
        ],
    ),
    (
        "Craigslist Portland Bikes",
        &["title", "price", "location", "posted"],
        &["https://portland.craigslist.org/search/bia"],
    ),
];

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

/// The next number of a sequence (of runs, of report runs), counting on.
fn next(n: &mut u64) -> u64 {
    let this = *n;
    *n += 1;
    this
}

/// Add a run, with the totals its files will show (cheap for the demo
/// shape, constant-time for the scale shape). The datasets, the start
/// operation and the hooks all add runs this way.
pub(crate) fn insert_run(
    db: &mut Db,
    guid: Uuid,
    extractor: Uuid,
    spec: Arc<Spec>,
    timeline: Timeline,
) {
    let totals = totals(&spec, run_seed(&guid));
    db.runs.insert(
        guid,
        RunRec {
            guid,
            extractor,
            spec,
            timeline,
            totals,
            from_start: false,
        },
    );
}

/// An extractor of a dataset: tagged with the dataset's name, no
/// credentials.
fn extractor(
    guid: Uuid,
    name: String,
    spec: &Arc<Spec>,
    tag: &str,
    created_ms: i64,
    modified_ms: i64,
) -> ExtractorRec {
    ExtractorRec {
        guid,
        name,
        spec: spec.clone(),
        tags: vec![tag.into()],
        archived: false,
        created_ms,
        modified_ms,
        credentials: None,
        credentials_id: None,
    }
}

/// Crawl run number `n` of a dataset, `minutes` long, ended early in state
/// `forced` when given.
#[allow(clippy::too_many_arguments)]
fn add_run(
    db: &mut Db,
    n: u64,
    extractor: Uuid,
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
    insert_run(db, guid, extractor, spec.clone(), timeline);
}

/// A report of a dataset, number `k`.
fn report(k: u64, name: &str, kind: &str, extractor: Uuid, created_ms: i64) -> ReportRec {
    ReportRec {
        guid: det_uuid("report", k),
        name: name.to_owned(),
        kind: kind.to_owned(),
        extractor,
        config_id: det_uuid("report-config", k),
        created_ms,
        modified_ms: created_ms,
        deleted: false,
    }
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

fn demo() -> Db {
    let mut db = Db::new("demo", EPOCH_MS - 400 * DAY);
    let mut run_n = 0u64;
    let specs = add_believable(&mut db, &mut run_n);
    add_hostile(&mut db, &mut run_n);
    add_demo_reports(&mut db, &specs);
    db
}

/// The [`BELIEVABLE`] extractors and their runs; their ids and specs, in
/// order.
fn add_believable(db: &mut Db, run_n: &mut u64) -> Vec<(Uuid, Arc<Spec>)> {
    let mut specs = Vec::new();
    for (i, (name, fields, inputs)) in BELIEVABLE.iter().enumerate() {
        let guid = det_uuid("extractor", i as u64);
        let spec = Arc::new(Spec {
            fields: strings(fields),
            inputs: strings(inputs),
            result: ResultKind::Rows,
        });
        let created = EPOCH_MS - (200 - 9 * i as i64) * DAY;
        let rec = extractor(
            guid,
            name.to_string(),
            &spec,
            "demo",
            created,
            created + 3 * DAY,
        );
        db.extractors.insert(guid, rec);
        // 1 to 3 finished runs, a day apart, the newest a few days ago.
        let runs = 1 + i % 3;
        for k in 0..runs {
            let start =
                EPOCH_MS - (10 + i as i64) * DAY - (runs - k) as i64 * DAY + 9 * 60 * MINUTE;
            add_run(
                db,
                next(run_n),
                guid,
                &spec,
                start,
                4 + (i as i64 % 5),
                None,
            );
        }
        // A failed and a cancelled run, older than the finished ones.
        let forced = match i {
            3 => Some(RunState::Failed),
            5 => Some(RunState::Cancelled),
            _ => None,
        };
        if forced.is_some() {
            add_run(db, next(run_n), guid, &spec, created + DAY, 6, forced);
        }
        specs.push((guid, spec));
    }
    specs
}

/// The extractors of [`hostile_names`], one finished run each.
fn add_hostile(db: &mut Db, run_n: &mut u64) {
    for (j, name) in hostile_names().into_iter().enumerate() {
        let guid = det_uuid("extractor", 100 + j as u64);
        let spec = Arc::new(Spec {
            fields: strings(&["title", "price"]),
            inputs: vec![format!("https://example.com/hostile/{j}")],
            result: ResultKind::Rows,
        });
        let created = EPOCH_MS - (60 - j as i64) * DAY;
        let rec = extractor(guid, name, &spec, "hostile", created, created);
        db.extractors.insert(guid, rec);
        add_run(db, next(run_n), guid, &spec, created + DAY, 3, None);
    }
}

/// A Change report on the Amazon extractor with two runs, and a Standard one
/// on Zillow with one.
fn add_demo_reports(db: &mut Db, specs: &[(Uuid, Arc<Spec>)]) {
    let reports = [
        ("Weekly price changes", "Change", 0usize, 2u64),
        ("Seattle listings summary", "Standard", 1, 1),
    ];
    let mut rr_n = 0u64;
    for (k, (name, kind, ext, runs)) in reports.into_iter().enumerate() {
        let (extractor, spec) = specs[ext].clone();
        let created = EPOCH_MS - (90 - k as i64) * DAY;
        let rec = report(k as u64, name, kind, extractor, created);
        for r in 0..runs {
            let started = EPOCH_MS - (7 * (runs - r)) as i64 * DAY;
            add_report_run(db, &rec, &spec, next(&mut rr_n), started);
        }
        db.reports.insert(rec.guid, rec);
    }
}

fn scale(config: &Config) -> Db {
    let mut db = Db::new("scale", EPOCH_MS - 400 * DAY);
    let specs = add_scale_extractors(&mut db, config);
    add_scale_runs(&mut db, config, &specs);
    add_scale_reports(&mut db, &specs);
    db
}

/// `config.extractors` extractors (at least one) of generated results of
/// `config.result_bytes`; their ids and specs, in order.
fn add_scale_extractors(db: &mut Db, config: &Config) -> Vec<(Uuid, Arc<Spec>)> {
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
        let name = format!("Scale extractor {:05}", i + 1);
        db.extractors.insert(
            guid,
            extractor(guid, name, &spec, "scale", created, created),
        );
        specs.push((guid, spec));
    }
    specs
}

/// `config.crawlruns` finished runs, spread over the extractors in turn.
fn add_scale_runs(db: &mut Db, config: &Config, specs: &[(Uuid, Arc<Spec>)]) {
    // Every scale run has the same size: compute the totals once.
    let totals = specs.first().map(|(_, s)| totals(s, 0)).unwrap_or_default();
    for j in 0..config.crawlruns {
        let (extractor, spec) = &specs[j % specs.len()];
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
                totals,
                from_start: false,
            },
        );
    }
}

/// A Change and a Standard report on the first extractor, two runs each.
fn add_scale_reports(db: &mut Db, specs: &[(Uuid, Arc<Spec>)]) {
    let mut rr_n = 0;
    for (k, (name, kind)) in [
        ("Scale change report", "Change"),
        ("Scale report", "Standard"),
    ]
    .into_iter()
    .enumerate()
    {
        let (extractor, spec) = specs[0].clone();
        let rec = report(k as u64, name, kind, extractor, EPOCH_MS - 30 * DAY);
        for r in 0..2 {
            add_report_run(db, &rec, &spec, next(&mut rr_n), EPOCH_MS - (2 - r) * DAY);
        }
        db.reports.insert(rec.guid, rec);
    }
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
