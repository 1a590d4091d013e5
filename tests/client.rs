//! The Import.io client against the in-process emulator (both dialects, with
//! its faults) and against a tiny scripted HTTP server for the shapes the
//! emulator does not produce (a page repeated forever, gzip downloads asked
//! as identity, a server that ignores Range, garbage bodies, redirect loops).
//!
//! Call counts come from the emulator's request log (`/_emulator/requests`),
//! never from the client's own counters, so they show what the server saw.

use importfs::api::{
    Client, ClientConfig, CrawlrunFile, Credentials, Error, FileRef, Inputs, InputsDialect,
    Operation, ReportRunFile, RunState,
};
use importfs::emulator::{Config, Dataset, Dialect, Emulator};
use importfs::fs::error::errno_of;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "test-key-client";
const NO_SUCH: &str = "00000000-0000-4000-8000-000000000000";

// ---------------------------------------------------------------- helpers

async fn emulator(dialect: Dialect, dataset: Dataset) -> Emulator {
    emulator_with(Config {
        dialect,
        dataset,
        ..Config::default()
    })
    .await
}

async fn emulator_with(cfg: Config) -> Emulator {
    Emulator::start(Config {
        api_key: if cfg.api_key == Config::default().api_key {
            KEY.to_owned()
        } else {
            cfg.api_key.clone()
        },
        ..cfg
    })
    .await
    .expect("emulator starts")
}

/// Short timeouts and quick backoff: tests of failure must end fast.
fn fast_config(url: &str, key: &str) -> ClientConfig {
    ClientConfig {
        attempt_timeout: Duration::from_secs(2),
        call_deadline: Duration::from_secs(6),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ClientConfig::new(url, key)
    }
}

fn client(emu: &Emulator) -> Client {
    Client::new(fast_config(&emu.url(), emu.api_key())).expect("client")
}

/// Plain HTTP for the emulator's hooks and reference downloads.
fn hooks() -> reqwest::Client {
    reqwest::Client::builder().no_gzip().build().unwrap()
}

async fn set_fault(emu: &Emulator, spec: Value) {
    let r = hooks()
        .post(format!("{}/_emulator/faults", emu.url()))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "fault {spec} refused: {}",
        r.status()
    );
}

async fn clear_faults(emu: &Emulator) {
    hooks()
        .delete(format!("{}/_emulator/faults", emu.url()))
        .send()
        .await
        .unwrap();
}

async fn requests(emu: &Emulator) -> Vec<Value> {
    hooks()
        .get(format!("{}/_emulator/requests", emu.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn clear_requests(emu: &Emulator) {
    hooks()
        .delete(format!("{}/_emulator/requests", emu.url()))
        .send()
        .await
        .unwrap();
}

fn of_op<'a>(log: &'a [Value], op: &str) -> Vec<&'a Value> {
    log.iter().filter(|r| r["operation"] == op).collect()
}

/// The bytes a plain client gets for a result file (redirects followed).
async fn reference_bytes(emu: &Emulator, path: &str) -> Vec<u8> {
    let r = hooks()
        .get(format!("{}{path}", emu.url()))
        .query(&[("_apikey", emu.api_key())])
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

fn file_path(f: &FileRef) -> String {
    match f {
        FileRef::Crawlrun(id, k) => format!("/crawlruns/{id}/{}", k.api_name()),
        FileRef::ReportRun(id, k) => format!("/reportruns/{id}/{}", k.api_name()),
    }
}

/// Download into a fresh temp file; the bytes and the progress calls seen.
/// The checksum the download kept of what it wrote is that of the file,
/// whatever resumes and skipped bytes it took.
async fn download(c: &Client, f: &FileRef) -> Result<(Vec<u8>, Vec<u64>), Error> {
    let tmp = tempfile::tempfile().unwrap();
    let seen = Mutex::new(Vec::new());
    let written = std::sync::Arc::new(importfs::api::Written::default());
    let n = c
        .download(
            f,
            &tmp,
            &|done| seen.lock().unwrap().push(done),
            Some(&written),
        )
        .await?;
    let bytes = std::fs::read(format!("/proc/self/fd/{}", fd(&tmp))).unwrap();
    assert_eq!(
        bytes.len() as u64,
        n,
        "returned length is the file's length"
    );
    assert_eq!(
        written.whole(n),
        Some(crc32fast::hash(&bytes)),
        "the checksum kept while writing"
    );
    Ok((bytes, seen.into_inner().unwrap()))
}

fn fd(f: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}

async fn finished_crawlrun(c: &Client) -> String {
    let runs = c.list_crawlruns(None).await.unwrap();
    runs.iter()
        .find(|r| r.run_state() == Some(RunState::Finished))
        .expect("a finished crawl run")
        .guid
        .clone()
}

// ---------------------------------------------------------------- every operation

async fn every_operation(dialect: Dialect) {
    let emu = emulator(dialect, Dataset::Demo).await;
    let c = client(&emu);

    let user = c.current_user().await.unwrap();
    assert!(!user.guid.is_empty());
    let sub = c.subscription().await.unwrap();
    assert!(sub.plan_code.is_some() || !sub.extra.is_empty() || sub.user_id.is_some());

    let extractors = c.list_extractors().await.unwrap();
    assert!(!extractors.is_empty());
    let ex = &extractors[0];
    assert!(ex.meta.modified().is_some(), "_meta read in {dialect:?}");
    let got = c.get_extractor(&ex.guid).await.unwrap();
    assert_eq!(got.guid, ex.guid);

    // Inputs: read in the server's dialect, written back in it.
    let inputs = c.get_inputs(&ex.guid).await.unwrap();
    let want = match dialect {
        Dialect::Spec => InputsDialect::Object,
        Dialect::Legacy => InputsDialect::Lines,
    };
    assert_eq!(inputs.dialect, want);
    let new = Inputs {
        urls: vec![
            "https://a.example/one".into(),
            "https://b.example/two?x=1".into(),
        ],
        dialect: inputs.dialect,
    };
    c.put_inputs(&ex.guid, &new).await.unwrap();
    let back = c.get_inputs(&ex.guid).await.unwrap();
    assert_eq!(back.urls, new.urls);
    assert_eq!(back.dialect, want);
    // The other dialect is accepted too.
    let other = Inputs {
        dialect: match want {
            InputsDialect::Object => InputsDialect::Lines,
            InputsDialect::Lines => InputsDialect::Object,
        },
        ..new.clone()
    };
    c.put_inputs(&ex.guid, &other).await.unwrap();

    // A fresh extractor for the run lifecycle (demo ones may be running).
    let fresh: Value = hooks()
        .post(format!("{}/_emulator/extractors", emu.url()))
        .json(&json!({"name": "client test", "inputs": ["https://c.example/"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = fresh["guid"].as_str().unwrap().to_owned();
    let started = c.start_extractor(&id).await.unwrap();
    let run_id = started.crawl_run_id.clone().expect("crawlRunId");
    let busy = c.start_extractor(&id).await.unwrap_err();
    assert_eq!(busy.status(), Some(400), "{busy}");
    let runs = c.list_crawlruns(Some(&id)).await.unwrap();
    assert!(runs.iter().any(|r| r.guid == run_id));
    assert!(runs.iter().all(|r| r.extractor_id == id));
    let runs = c.list_extractor_crawlruns(&id).await.unwrap();
    assert_eq!(runs.first().map(|r| r.guid.as_str()), Some(run_id.as_str()));
    assert!(runs.iter().all(|r| r.extractor_id == id));
    c.stop_extractor(&id).await.unwrap();
    let run = c.get_crawlrun(&run_id).await.unwrap();
    assert_eq!(run.run_state(), Some(RunState::Cancelled));

    let dup = c.duplicate_extractor(&id).await.unwrap();
    assert!(!dup.guid.is_empty() && dup.guid != id);
    c.update_credentials(
        &dup.guid,
        &Credentials {
            username: "u".into(),
            password: "p4ss".into(),
        },
    )
    .await
    .unwrap();
    let stored: Value = hooks()
        .get(format!(
            "{}/_emulator/extractors/{}/credentials",
            emu.url(),
            dup.guid
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["password"], "p4ss");
    let archived = c.delete_extractor(&dup.guid).await.unwrap();
    assert!(archived.archived);
    assert!(!c
        .list_extractors()
        .await
        .unwrap()
        .iter()
        .any(|e| e.guid == dup.guid));

    // Crawl run files: exact size, exact bytes.
    let all_runs = c.list_crawlruns(None).await.unwrap();
    assert!(!all_runs.is_empty());
    let fin = finished_crawlrun(&c).await;
    for kind in CrawlrunFile::ALL {
        let f = FileRef::Crawlrun(fin.clone(), kind);
        let size = c.file_size(&f).await.unwrap();
        let (bytes, progress) = download(&c, &f).await.unwrap();
        assert_eq!(size, Some(bytes.len() as u64), "{kind:?}");
        assert_eq!(
            bytes,
            reference_bytes(&emu, &file_path(&f)).await,
            "{kind:?}"
        );
        if !bytes.is_empty() {
            assert_eq!(progress.last(), Some(&(bytes.len() as u64)));
            assert!(progress.windows(2).all(|w| w[0] <= w[1]));
        }
    }

    // Reports and report runs.
    let reports = c.list_reports().await.unwrap();
    assert!(!reports.is_empty(), "the demo has reports");
    let rep = &reports[0];
    assert_eq!(c.get_report(&rep.guid).await.unwrap().guid, rep.guid);
    let all_rr = c.list_report_runs().await.unwrap();
    assert!(!all_rr.is_empty());
    let mut files_checked = 0;
    for r in &reports {
        for rr in c.list_report_runs_for_report(&r.guid).await.unwrap() {
            assert_eq!(rr.report_id.as_deref(), Some(r.guid.as_str()));
            let got = c.get_report_run(&rr.guid).await.unwrap();
            assert_eq!(got.guid, rr.guid);
            if files_checked > 0 || rr.status.as_deref() != Some("FINISHED") {
                continue;
            }
            let mut kinds = vec![ReportRunFile::Csv, ReportRunFile::Xlsx];
            if rr.is_change_report() {
                kinds.push(ReportRunFile::Json);
            }
            for kind in kinds {
                let f = FileRef::ReportRun(rr.guid.clone(), kind);
                let (bytes, _) = download(&c, &f).await.unwrap();
                assert_eq!(c.file_size(&f).await.unwrap(), Some(bytes.len() as u64));
                assert_eq!(bytes, reference_bytes(&emu, &file_path(&f)).await);
                files_checked += 1;
            }
        }
    }
    assert!(files_checked > 0, "a finished report run was downloaded");
    let rr = c.start_report(&rep.guid).await.unwrap();
    assert!(rr.get("reportRunId").is_some(), "{rr}");
    c.delete_report(&rep.guid).await.unwrap();
    assert!(c.get_report(&rep.guid).await.unwrap_err().is_not_found());

    // Every stat counted something, and no call failed unexpectedly.
    let stats = c.stats();
    assert!(stats.calls_of(Operation::ListExtractors) >= 2);
    assert!(stats.bytes_downloaded > 0);
    assert_eq!(stats.downloads_in_flight, 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_spec_dialect() {
    every_operation(Dialect::Spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_legacy_dialect() {
    every_operation(Dialect::Legacy).await;
}

/// Each operation that takes an id, called with one that does not exist.
async fn not_found_everywhere(c: &Client) -> Vec<(&'static str, Error)> {
    let creds = Credentials::default();
    let inputs = Inputs::default();
    let mut out = Vec::new();
    macro_rules! probe {
        ($name:expr, $call:expr) => {
            out.push(($name, $call.await.map(|_| ()).unwrap_err()))
        };
    }
    probe!("getExtractor", c.get_extractor(NO_SUCH));
    probe!("deleteExtractor", c.delete_extractor(NO_SUCH));
    probe!("getExtractorInputs", c.get_inputs(NO_SUCH));
    probe!("updateExtractorInputs", c.put_inputs(NO_SUCH, &inputs));
    probe!("startExtractor", c.start_extractor(NO_SUCH));
    probe!("stopExtractor", c.stop_extractor(NO_SUCH));
    probe!("duplicateExtractor", c.duplicate_extractor(NO_SUCH));
    probe!(
        "updateExtractorCredentials",
        c.update_credentials(NO_SUCH, &creds)
    );
    probe!("getCrawlrun", c.get_crawlrun(NO_SUCH));
    let f = FileRef::Crawlrun(NO_SUCH.into(), CrawlrunFile::Csv);
    probe!("getCrawlrunFile", c.file_size(&f));
    let tmp = tempfile::tempfile().unwrap();
    probe!("getCrawlrunFile", c.download(&f, &tmp, &|_: u64| {}, None));
    probe!("getReport", c.get_report(NO_SUCH));
    probe!("deleteReport", c.delete_report(NO_SUCH));
    probe!("startReport", c.start_report(NO_SUCH));
    probe!(
        "listReportRunsForReport",
        c.list_report_runs_for_report(NO_SUCH)
    );
    probe!("getReportRun", c.get_report_run(NO_SUCH));
    let f = FileRef::ReportRun(NO_SUCH.into(), ReportRunFile::Csv);
    probe!("getReportRunFile", c.file_size(&f));
    out
}

async fn error_statuses(dialect: Dialect) {
    let emu = emulator(dialect, Dataset::Demo).await;
    let c = client(&emu);

    for (op, e) in not_found_everywhere(&c).await {
        assert_eq!(e.status(), Some(404), "{op}: {e}");
        assert!(e.is_not_found(), "{op}");
        assert_eq!(errno_of(&e), libc::ENOENT, "{op}");
        assert_eq!(e.operation().map(|o| o.as_str()), Some(op));
    }

    // 401 on every operation with a wrong key.
    let bad = Client::new(fast_config(&emu.url(), "not-the-key")).unwrap();
    let mut refused = not_found_everywhere(&bad).await;
    refused.push(("getCurrentUser", bad.current_user().await.unwrap_err()));
    refused.push((
        "getCurrentUserSubscription",
        bad.subscription().await.unwrap_err(),
    ));
    refused.push(("listExtractors", bad.list_extractors().await.unwrap_err()));
    refused.push(("listCrawlruns", bad.list_crawlruns(None).await.unwrap_err()));
    refused.push((
        "listExtractorCrawlruns",
        bad.list_extractor_crawlruns(NO_SUCH).await.unwrap_err(),
    ));
    refused.push(("listReports", bad.list_reports().await.unwrap_err()));
    refused.push(("listReportRuns", bad.list_report_runs().await.unwrap_err()));
    assert_eq!(refused.len(), 24);
    for (op, e) in refused {
        assert_eq!(e.status(), Some(401), "{op}: {e}");
        assert_eq!(errno_of(&e), libc::EACCES, "{op}");
        assert!(e.is_auth());
        assert_eq!(e.operation().map(|o| o.as_str()), Some(op));
    }

    // 400: a malformed id.
    let e = c.get_extractor("not a guid").await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert_eq!(errno_of(&e), libc::EINVAL);

    // 413: inputs over the server's body limit.
    let ex = &c.list_extractors().await.unwrap()[0];
    let huge = Inputs {
        urls: (0..40_000)
            .map(|i| format!("https://example.com/a/rather/long/path/{i}"))
            .collect(),
        dialect: InputsDialect::Object,
    };
    let e = c.put_inputs(&ex.guid, &huge).await.unwrap_err();
    assert_eq!(e.status(), Some(413), "{e}");
    assert_eq!(errno_of(&e), libc::EFBIG);

    // 500 on every operation once retries are exhausted.
    set_fault(&emu, json!({"operation": "*", "error_rate": 1.0})).await;
    let e = c.current_user().await.unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
    assert_eq!(errno_of(&e), libc::EIO);
    let e = c.list_extractors().await.unwrap_err();
    assert_eq!(e.status(), Some(500));

    // Ids that would change the path's meaning are refused without a call.
    clear_requests(&emu).await;
    for id in ["", ".", ".."] {
        let e = c.get_extractor(id).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }
    assert!(requests(&emu).await.is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_spec_dialect() {
    error_statuses(Dialect::Spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_legacy_dialect() {
    error_statuses(Dialect::Legacy).await;
}

// ---------------------------------------------------------------- pagination

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_2500_extractors_in_exactly_3_calls() {
    for dialect in [Dialect::Spec, Dialect::Legacy] {
        let emu = emulator_with(Config {
            dialect,
            dataset: Dataset::Scale,
            extractors: 2500,
            crawlruns: 10,
            result_bytes: 1024,
            ..Config::default()
        })
        .await;
        let c = client(&emu);
        clear_requests(&emu).await;
        let all = c.list_extractors().await.unwrap();
        assert_eq!(all.len(), 2500);
        let unique: std::collections::HashSet<_> = all.iter().map(|e| &e.guid).collect();
        assert_eq!(unique.len(), 2500);
        let log = requests(&emu).await;
        let calls = of_op(&log, "listExtractors");
        assert_eq!(calls.len(), 3, "{dialect:?}: {calls:?}");
        // Page 1 first (it gives the count); pages 2 and 3 are asked at
        // once, so the server may log them in either order.
        let mut pages: Vec<String> = calls
            .iter()
            .map(|r| {
                let q = r["query"].as_str().unwrap_or_default();
                assert!(q.contains("_perpage=1000"), "{q}");
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("_page="))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(pages[0], "1", "{dialect:?}: {calls:?}");
        pages.sort();
        assert_eq!(pages, ["1", "2", "3"], "{dialect:?}: {calls:?}");
        emu.shutdown().await;
    }
}

// ---------------------------------------------------------------- faults

/// Run `work` with a fault set, lifting the fault once the log shows
/// `failures` failed attempts of `op`; returns the result and the log.
async fn with_fault_lifted_after<T>(
    emu: &Emulator,
    fault: Value,
    op: &str,
    failures: usize,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> (T, Vec<Value>)
where
    T: Send + 'static,
{
    clear_requests(emu).await;
    set_fault(emu, fault).await;
    let task = tokio::spawn(work);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = requests(emu).await;
        if of_op(&log, op).len() >= failures || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clear_faults(emu).await;
    let out = task.await.unwrap();
    (out, requests(emu).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_to_success() {
    let emu = emulator(Dialect::Spec, Dataset::Demo).await;
    let c = Client::new(ClientConfig {
        max_attempts: 20,
        backoff_base: Duration::from_millis(50),
        ..fast_config(&emu.url(), KEY)
    })
    .unwrap();
    let c2 = c.clone();
    let (user, log) = with_fault_lifted_after(
        &emu,
        json!({"operation": "getCurrentUser", "error_rate": 1.0}),
        "getCurrentUser",
        2,
        async move { c2.current_user().await },
    )
    .await;
    assert!(user.is_ok(), "{user:?}");
    let statuses: Vec<_> = of_op(&log, "getCurrentUser")
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert!(
        statuses.iter().filter(|s| **s == 500).count() >= 2,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&200));
    assert!(c.stats().retries >= 2);

    // The PUT of inputs is idempotent: retried too.
    let ex = c.list_extractors().await.unwrap()[0].guid.clone();
    let c2 = c.clone();
    let ex2 = ex.clone();
    let (put, log) = with_fault_lifted_after(
        &emu,
        json!({"operation": "updateExtractorInputs", "error_rate": 1.0}),
        "updateExtractorInputs",
        2,
        async move {
            let inputs = Inputs {
                urls: vec!["https://x.example/".into()],
                dialect: InputsDialect::Object,
            };
            c2.put_inputs(&ex2, &inputs).await
        },
    )
    .await;
    assert!(put.is_ok(), "{put:?}");
    assert!(of_op(&log, "updateExtractorInputs").len() >= 3);

    // Dropped connections on a GET are retried.
    let c2 = c.clone();
    let (got, log) = with_fault_lifted_after(
        &emu,
        json!({"operation": "getExtractor", "drop_rate": 1.0}),
        "getExtractor",
        2,
        async move { c2.get_extractor(&ex).await },
    )
    .await;
    assert!(got.is_ok(), "{got:?}");
    assert!(of_op(&log, "getExtractor").len() >= 3);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_for_retry_after() {
    let emu = emulator(Dialect::Spec, Dataset::Demo).await;
    let c = client(&emu);
    let c2 = c.clone();
    let t0 = Instant::now();
    let (user, log) = with_fault_lifted_after(
        &emu,
        json!({"operation": "getCurrentUser", "throttle_rate": 1.0, "retry_after_s": 1}),
        "getCurrentUser",
        1,
        async move { c2.current_user().await },
    )
    .await;
    assert!(user.is_ok(), "{user:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    let calls = of_op(&log, "getCurrentUser");
    assert_eq!(calls[0]["status"], 429);
    assert_eq!(calls.last().unwrap()["status"], 200);

    // A POST start is retried after a 429: the server did not act on it.
    let fresh: Value = hooks()
        .post(format!("{}/_emulator/extractors", emu.url()))
        .json(&json!({"name": "throttled", "inputs": ["https://t.example/"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = fresh["guid"].as_str().unwrap().to_owned();
    let c2 = c.clone();
    let (started, log) = with_fault_lifted_after(
        &emu,
        json!({"operation": "startExtractor", "throttle_rate": 1.0, "retry_after_s": 1}),
        "startExtractor",
        1,
        async move { c2.start_extractor(&id).await },
    )
    .await;
    assert!(started.is_ok(), "{started:?}");
    let starts = of_op(&log, "startExtractor");
    assert_eq!(starts.iter().filter(|r| r["status"] == 200).count(), 1);

    // A Retry-After longer than the deadline fails at once, not at the deadline.
    set_fault(
        &emu,
        json!({"operation": "getCurrentUser", "throttle_rate": 1.0, "retry_after_s": 60}),
    )
    .await;
    let t0 = Instant::now();
    let e = c.current_user().await.unwrap_err();
    assert_eq!(e.status(), Some(429));
    assert!(t0.elapsed() < Duration::from_secs(2));
    emu.shutdown().await;
}

async fn truncated_downloads_resume(dialect: Dialect) {
    let emu = emulator_with(Config {
        dialect,
        dataset: Dataset::Scale,
        extractors: 3,
        crawlruns: 3,
        result_bytes: 3 << 20,
        ..Config::default()
    })
    .await;
    let c = Client::new(ClientConfig {
        backoff_base: Duration::from_millis(40),
        ..fast_config(&emu.url(), KEY)
    })
    .unwrap();
    let run = finished_crawlrun(&c).await;
    let f = FileRef::Crawlrun(run, CrawlrunFile::Csv);
    let (clean, _) = download(&c, &f).await.unwrap();
    assert_eq!(clean.len(), 3 << 20);

    // Every answer cut half way, until three attempts were cut.
    let c2 = c.clone();
    let f2 = f.clone();
    let (cut, log) = with_fault_lifted_after(
        &emu,
        json!({"operation": "getCrawlrunFile", "truncate_rate": 1.0}),
        "getCrawlrunFile",
        3,
        async move { download(&c2, &f2).await },
    )
    .await;
    let (bytes, progress) = cut.unwrap();
    assert_eq!(bytes.len(), clean.len());
    assert!(
        bytes == clean,
        "resumed bytes identical to a clean download"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));
    let partial = of_op(&log, "getCrawlrunFile")
        .iter()
        .filter(|r| r["status"] == 206)
        .count();
    assert!(partial >= 1, "resumed with Range: {log:?}");

    // Truncation forever: an error, never short data.
    set_fault(
        &emu,
        json!({"operation": "getCrawlrunFile", "truncate_rate": 1.0}),
    )
    .await;
    let small = Client::new(ClientConfig {
        max_attempts: 2,
        ..fast_config(&emu.url(), KEY)
    })
    .unwrap();
    let err = download(&small, &f).await.unwrap_err();
    assert_eq!(errno_of(&err), libc::EIO, "{err}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_downloads_resume_spec_dialect() {
    truncated_downloads_resume(Dialect::Spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_downloads_resume_legacy_dialect() {
    truncated_downloads_resume(Dialect::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_end_within_the_deadline() {
    let emu = emulator(Dialect::Spec, Dataset::Demo).await;
    let deadline = Duration::from_secs(3);
    let c = Client::new(ClientConfig {
        attempt_timeout: Duration::from_secs(1),
        call_deadline: deadline,
        max_attempts: 1000,
        ..fast_config(&emu.url(), KEY)
    })
    .unwrap();
    let run = finished_crawlrun(&c).await;
    let f = FileRef::Crawlrun(run, CrawlrunFile::Csv);

    // Always 500, many attempts allowed: the deadline ends it.
    set_fault(&emu, json!({"operation": "*", "error_rate": 1.0})).await;
    for what in ["json", "list", "download"] {
        let t0 = Instant::now();
        let e = match what {
            "json" => c.current_user().await.map(|_| ()).unwrap_err(),
            "list" => c.list_extractors().await.map(|_| ()).unwrap_err(),
            _ => download(&c, &f).await.map(|_| ()).unwrap_err(),
        };
        let took = t0.elapsed();
        assert!(took < deadline + Duration::from_secs(1), "{what}: {took:?}");
        assert_eq!(errno_of(&e), libc::EIO, "{what}: {e}");
    }

    // A hung server: every attempt times out, the call ends at its deadline.
    set_fault(&emu, json!({"operation": "*", "latency_ms": 30_000})).await;
    for what in ["json", "download"] {
        let t0 = Instant::now();
        let e = match what {
            "json" => c.current_user().await.map(|_| ()).unwrap_err(),
            _ => download(&c, &f).await.map(|_| ()).unwrap_err(),
        };
        let took = t0.elapsed();
        assert!(took < deadline + Duration::from_secs(1), "{what}: {took:?}");
        assert!(e.is_timeout(), "{what}: {e}");
        assert_eq!(errno_of(&e), libc::EIO);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_repeated_after_a_timeout_or_a_500() {
    let emu = emulator(Dialect::Spec, Dataset::Demo).await;
    let c = Client::new(ClientConfig {
        attempt_timeout: Duration::from_millis(500),
        call_deadline: Duration::from_secs(5),
        ..fast_config(&emu.url(), KEY)
    })
    .unwrap();
    let mk = |name: &'static str| {
        let url = emu.url();
        async move {
            let v: Value = hooks()
                .post(format!("{url}/_emulator/extractors"))
                .json(&json!({"name": name, "inputs": ["https://p.example/"]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["guid"].as_str().unwrap().to_owned()
        }
    };
    let id = mk("slow start").await;

    // The start is slower than an attempt: reported as a timeout, sent once.
    clear_requests(&emu).await;
    set_fault(
        &emu,
        json!({"operation": "startExtractor", "latency_ms": 1500}),
    )
    .await;
    let e = c.start_extractor(&id).await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // Let the server finish (and log) the slow request.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let log = requests(&emu).await;
    let starts: Vec<_> = log
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap_or("").ends_with("/start"))
        .collect();
    // The client sent one; the server saw at most that one (it may drop a
    // request whose client went away before logging it).
    assert_eq!(c.stats().calls_of(Operation::StartExtractor), 1);
    assert!(starts.len() <= 1, "{starts:?}");
    // A server that logs on arrival shows it: exactly one POST.
    let slow = mock::start_slow(Duration::from_millis(1500), |_, _| {
        mock::reply("200 OK", &[], b"{\"crawlRunId\":\"r\"}")
    })
    .await;
    let s = Client::new(ClientConfig {
        attempt_timeout: Duration::from_millis(500),
        ..fast_config(&slow.url, KEY)
    })
    .unwrap();
    let e = s.start_extractor("e").await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let e = s.start_report("r").await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts: Vec<_> = slow.requests().iter().map(|r| r.target.clone()).collect();
    // 503 is "not accepted": a POST is sent again; a 500 is not.
    let flaky = mock::start(|req, n| match (req.path(), n) {
        ("/extractors/a/start", 0) => mock::reply("503 Service Unavailable", &[], b""),
        ("/extractors/a/start", _) => mock::reply("200 OK", &[], b"{\"crawlRunId\":\"x\"}"),
        _ => mock::reply("500 Internal Server Error", &[], b""),
    })
    .await;
    let f = Client::new(fast_config(&flaky.url, KEY)).unwrap();
    let started = f.start_extractor("a").await.unwrap();
    assert_eq!(started.crawl_run_id.as_deref(), Some("x"));
    assert_eq!(
        f.start_extractor("b").await.unwrap_err().status(),
        Some(500)
    );
    assert_eq!(flaky.requests().len(), 3);
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(slow.requests().iter().all(|r| r.method == "POST"));
    clear_faults(&emu).await;

    // A 500 on any POST or DELETE: one request each.
    set_fault(&emu, json!({"operation": "*", "error_rate": 1.0})).await;
    let id = mk("failing posts").await;
    clear_requests(&emu).await;
    let creds = Credentials {
        username: "u".into(),
        password: "p".into(),
    };
    let report = NO_SUCH;
    let errors = vec![
        c.start_extractor(&id).await.map(|_| ()).unwrap_err(),
        c.stop_extractor(&id).await.unwrap_err(),
        c.duplicate_extractor(&id).await.map(|_| ()).unwrap_err(),
        c.update_credentials(&id, &creds).await.unwrap_err(),
        c.delete_extractor(&id).await.map(|_| ()).unwrap_err(),
        c.start_report(report).await.map(|_| ()).unwrap_err(),
        c.delete_report(report).await.unwrap_err(),
    ];
    for e in &errors {
        assert_eq!(e.status(), Some(500), "{e}");
    }
    let log = requests(&emu).await;
    assert_eq!(log.len(), errors.len(), "one request each: {log:?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_redirects_reach_the_files_host_without_the_key() {
    let emu = emulator(Dialect::Legacy, Dataset::Demo).await;
    let c = client(&emu);
    let run = finished_crawlrun(&c).await;
    clear_requests(&emu).await;
    for kind in [CrawlrunFile::Csv, CrawlrunFile::Xlsx] {
        let f = FileRef::Crawlrun(run.clone(), kind);
        c.file_size(&f).await.unwrap().expect("a size");
        download(&c, &f).await.unwrap();
    }
    let log = requests(&emu).await;
    let files: Vec<_> = log.iter().filter(|r| r["listener"] == "files").collect();
    assert!(files.len() >= 4, "the 302s were followed: {log:?}");
    for r in &files {
        let q = r["query"].as_str().unwrap_or_default();
        assert!(!q.contains("apikey") && !q.contains(KEY), "{r}");
        assert_eq!(r["had_apikey"], false, "the files host got no key: {r}");
    }
    let api_downloads: Vec<_> = log
        .iter()
        .filter(|r| r["listener"] == "api" && r["operation"] == "getCrawlrunFile")
        .collect();
    assert!(!api_downloads.is_empty());
    assert!(
        api_downloads.iter().all(|r| r["had_apikey"] == true),
        "the API host did get it: {api_downloads:?}"
    );
    assert!(c.stats().redirects_followed >= 4);
    emu.shutdown().await;
}

// ---------------------------------------------------------------- redaction

/// A writer that appends to a shared buffer, for a test subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Every error kind, with a distinctive key: the key is in no Display, no
/// Debug and no log line (TRACE, every target, this thread's runtime).
#[tokio::test(flavor = "current_thread")]
async fn the_key_never_shows() {
    const SECRET: &str = "Zk9-SECRET-key_do-not-leak-4471";
    const WRONG: &str = "Qx7-WRONG-key_do-not-leak-9902";
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = emulator_with(Config {
        api_key: SECRET.into(),
        dialect: Dialect::Legacy,
        dataset: Dataset::Scale,
        extractors: 5,
        crawlruns: 5,
        result_bytes: 256 << 10,
        ..Config::default()
    })
    .await;
    let cfg = |key: &str| ClientConfig {
        attempt_timeout: Duration::from_millis(500),
        call_deadline: Duration::from_secs(2),
        max_attempts: 2,
        ..fast_config(&emu.url(), key)
    };
    let c = Client::new(cfg(SECRET)).unwrap();
    assert!(!format!("{c:?} {:?}", cfg(SECRET)).contains(SECRET));
    let run = finished_crawlrun(&c).await;
    let f = FileRef::Crawlrun(run, CrawlrunFile::Csv);
    download(&c, &f).await.unwrap();

    let mut errors: Vec<Error> = Vec::new();
    // 401 with a wrong (also distinctive) key.
    let wrong = Client::new(cfg(WRONG)).unwrap();
    errors.push(wrong.current_user().await.unwrap_err());
    errors.push(wrong.file_size(&f).await.unwrap_err());
    // 404, 400.
    errors.push(c.get_extractor(NO_SUCH).await.unwrap_err());
    errors.push(c.get_extractor("bad id").await.unwrap_err());
    // 500, 429, dropped connection, truncated body, latency (timeout).
    for fault in [
        json!({"operation": "*", "error_rate": 1.0}),
        json!({"operation": "*", "throttle_rate": 1.0, "retry_after_s": 0}),
        json!({"operation": "*", "drop_rate": 1.0}),
        json!({"operation": "*", "truncate_rate": 1.0}),
        json!({"operation": "*", "latency_ms": 5000}),
    ] {
        set_fault(&emu, fault).await;
        errors.push(c.list_extractors().await.unwrap_err());
        errors.push(download(&c, &f).await.map(|_| ()).unwrap_err());
        errors.push(c.start_extractor(NO_SUCH).await.map(|_| ()).unwrap_err());
        clear_faults(&emu).await;
    }
    // Connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let refused = Client::new(ClientConfig::new(format!("http://{closed}"), SECRET)).unwrap();
    errors.push(refused.current_user().await.unwrap_err());
    // Bodies and redirects the emulator does not make.
    let mock = mock::start(|req, _| {
        let q = req.target.clone();
        match req.path() {
            "/users/current" => mock::reply("200 OK", &[], format!("not json {q}").as_bytes()),
            "/extractors/" => mock::reply("200 OK", &[("content-encoding", "br")], q.as_bytes()),
            // The full Content-Length announced, half the body sent.
            "/crawlruns/" => {
                let body = format!("[{{\"guid\":\"{q}\"}}]");
                let mut r = mock::reply("200 OK", &[], body.as_bytes());
                r.truncate(r.len() - body.len() / 2);
                r
            }
            "/users/current/subscription" => mock::reply(
                "400 Bad Request",
                &[],
                json!({ "message": format!("bad request: {q}") })
                    .to_string()
                    .as_bytes(),
            ),
            _ => mock::reply(
                "302 Found",
                &[("location", &format!("{}?again=1", req.path()))],
                b"",
            ),
        }
    })
    .await;
    let m = Client::new(cfg(SECRET).with_url(&mock.url)).unwrap();
    errors.push(m.current_user().await.unwrap_err());
    errors.push(m.subscription().await.unwrap_err());
    errors.push(m.list_crawlruns(None).await.unwrap_err());
    errors.push(m.list_extractors().await.unwrap_err());
    errors.push(download(&m, &f).await.map(|_| ()).unwrap_err());
    errors.push(
        Client::new(ClientConfig::new(
            format!("http://x/?_apikey={SECRET}"),
            SECRET,
        ))
        .unwrap_err(),
    );

    let kinds: std::collections::BTreeSet<String> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    for want in [
        "Status",
        "Timeout",
        "Connect",
        "Transport",
        "Truncated",
        "Decode",
        "Protocol",
        "Config",
    ] {
        assert!(kinds.contains(want), "{want} not triggered: {kinds:?}");
    }
    for e in &errors {
        let shown = format!("{e} | {e:?} | {:?}", std::error::Error::source(e));
        assert!(!shown.contains(SECRET) && !shown.contains(WRONG), "{shown}");
    }
    emu.shutdown().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("getCrawlrunFile"), "logs were captured");
    assert!(!text.contains(SECRET), "key in logs");
    assert!(!text.contains(WRONG), "wrong key in logs");
}

// ---------------------------------------------------------------- a scripted server

trait WithUrl {
    fn with_url(self, url: &str) -> Self;
}

impl WithUrl for ClientConfig {
    fn with_url(self, url: &str) -> ClientConfig {
        ClientConfig {
            base_url: url.to_owned(),
            ..self
        }
    }
}

/// A one-request-per-connection HTTP server whose answers a test scripts.
mod mock {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Debug, Clone)]
    pub struct Req {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, String)>,
    }

    impl Req {
        pub fn path(&self) -> &str {
            self.target.split('?').next().unwrap_or("")
        }
        pub fn query(&self) -> &str {
            self.target.split_once('?').map_or("", |(_, q)| q)
        }
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    pub struct Mock {
        pub url: String,
        pub log: Arc<Mutex<Vec<Req>>>,
        /// The most requests being answered at once.
        peak: Arc<AtomicUsize>,
    }

    impl Mock {
        pub fn requests(&self) -> Vec<Req> {
            self.log.lock().unwrap().clone()
        }
        pub fn peak(&self) -> usize {
            self.peak.load(SeqCst)
        }
    }

    /// A full answer: status line, headers, Content-Length (unless given),
    /// `Connection: close`, body.
    pub fn reply(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
        let mut has_len = false;
        for (k, v) in headers {
            has_len |= k.eq_ignore_ascii_case("content-length");
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_len {
            out.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// Serve: `answer(request, n)` (n counts from 0) gives the raw bytes
    /// written before the connection is closed.
    pub async fn start(answer: impl Fn(&Req, usize) -> Vec<u8> + Send + Sync + 'static) -> Mock {
        start_slow(Duration::ZERO, answer).await
    }

    /// Like [`start`], each answer written `delay` after its request arrived.
    pub async fn start_slow(
        delay: Duration,
        answer: impl Fn(&Req, usize) -> Vec<u8> + Send + Sync + 'static,
    ) -> Mock {
        start_steps(move |req, n| vec![Step::Sleep(delay), Step::Write(answer(req, n))]).await
    }

    /// One step of an answer.
    pub enum Step {
        Write(Vec<u8>),
        Sleep(Duration),
    }

    /// Serve answers made of steps: bytes written and pauses, in order.
    pub async fn start_steps(
        answer: impl Fn(&Req, usize) -> Vec<Step> + Send + Sync + 'static,
    ) -> Mock {
        let peak: Arc<AtomicUsize> = Arc::default();
        let now: Arc<AtomicUsize> = Arc::default();
        let peak2 = peak.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let answer = Arc::new(answer);
        let log2 = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let answer = answer.clone();
                let log = log2.clone();
                let (now, peak) = (now.clone(), peak2.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let req = Req {
                        method: first.next().unwrap_or("").to_owned(),
                        target: first.next().unwrap_or("").to_owned(),
                        headers: lines
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                            .collect(),
                    };
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push(req.clone());
                        l.len() - 1
                    };
                    peak.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                    let mut steps = answer(&req, n);
                    let last = steps.pop();
                    for step in steps
                        .into_iter()
                        .chain(std::iter::once(Step::Sleep(Duration::ZERO)))
                    {
                        match step {
                            Step::Write(b) => {
                                if sock.write_all(&b).await.is_err() {
                                    break;
                                }
                                let _ = sock.flush().await;
                            }
                            Step::Sleep(d) => tokio::time::sleep(d).await,
                        }
                    }
                    // Leave the count before the last step, so that a client
                    // may send its next request as soon as it has the answer.
                    now.fetch_sub(1, SeqCst);
                    match last {
                        Some(Step::Write(b)) => {
                            let _ = sock.write_all(&b).await;
                        }
                        Some(Step::Sleep(d)) => tokio::time::sleep(d).await,
                        None => {}
                    }
                    let _ = sock.shutdown().await;
                });
            }
        });
        Mock { url, log, peak }
    }
}

fn extractor_page(guids: impl Iterator<Item = String>) -> Vec<u8> {
    let items: Vec<Value> = guids.map(|g| json!({"guid": g, "name": g})).collect();
    serde_json::to_vec(&items).unwrap()
}

#[tokio::test]
async fn a_page_repeated_forever_ends_the_listing() {
    // Every page is the same full page.
    let same = mock::start(|_, _| {
        mock::reply(
            "200 OK",
            &[("content-type", "application/json")],
            &extractor_page((0..1000).map(|i| format!("g{i}"))),
        )
    })
    .await;
    let c = Client::new(fast_config(&same.url, KEY)).unwrap();
    assert_eq!(c.list_extractors().await.unwrap().len(), 1000);
    assert_eq!(same.requests().len(), 2);

    // Pages alternate between two full pages: nothing new on the third.
    let alt = mock::start(|req, _| {
        let odd = req.query().contains("_page=1&") || req.query().contains("_page=3&");
        let base = if odd { 0 } else { 1000 };
        mock::reply(
            "200 OK",
            &[],
            &extractor_page((base..base + 1000).map(|i| format!("g{i}"))),
        )
    })
    .await;
    let c = Client::new(fast_config(&alt.url, KEY)).unwrap();
    assert_eq!(c.list_extractors().await.unwrap().len(), 2000);
    assert_eq!(alt.requests().len(), 3);

    // New guids on every page, forever: the page cap ends it.
    let endless = mock::start(|_, n| {
        mock::reply(
            "200 OK",
            &[],
            &extractor_page((0..10).map(|i| format!("p{n}-{i}"))),
        )
    })
    .await;
    let c = Client::new(ClientConfig {
        page_size: 10,
        max_pages: 7,
        ..fast_config(&endless.url, KEY)
    })
    .unwrap();
    assert_eq!(c.list_extractors().await.unwrap().len(), 70);
    assert_eq!(endless.requests().len(), 7);
}

/// A paged list of `exist` extractors g0, g1, ... whose answers claim
/// `X-Total-Count: claimed`, each written after `delay`.
async fn counted_list(
    exist: usize,
    claimed: usize,
    per_page: usize,
    delay: Duration,
) -> mock::Mock {
    mock::start_slow(delay, move |req, _| {
        let page: usize = req
            .query()
            .split('&')
            .find_map(|kv| kv.strip_prefix("_page="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let from = ((page - 1) * per_page).min(exist);
        let to = (from + per_page).min(exist);
        mock::reply(
            "200 OK",
            &[("x-total-count", &claimed.to_string())],
            &extractor_page((from..to).map(|i| format!("g{i}"))),
        )
    })
    .await
}

/// A client asking `per_page` objects a page.
fn paged_client(url: &str, per_page: u32) -> Client {
    Client::new(ClientConfig {
        page_size: per_page,
        ..fast_config(url, KEY)
    })
    .unwrap()
}

#[tokio::test]
async fn a_counted_list_asks_its_pages_a_few_at_a_time_in_order() {
    let list = counted_list(25, 25, 5, Duration::from_millis(100)).await;
    let c = paged_client(&list.url, 5);
    let got: Vec<String> = c
        .list_extractors()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.guid)
        .collect();
    let want: Vec<String> = (0..25).map(|i| format!("g{i}")).collect();
    assert_eq!(got, want, "every item once, in page order");
    assert_eq!(
        list.requests().len(),
        5,
        "exactly the pages the count implies"
    );
    let peak = list.peak();
    assert!(
        (2..=3).contains(&peak),
        "pages after the first overlap, three at most: {peak} at once"
    );

    // A count that lies high: the short page still ends the listing, and
    // the read-ahead costs at most two calls past it.
    let liar = counted_list(12, 1000, 5, Duration::ZERO).await;
    let c = paged_client(&liar.url, 5);
    assert_eq!(c.list_extractors().await.unwrap().len(), 12);
    let calls = liar.requests().len();
    assert!((3..=5).contains(&calls), "{calls} calls for 3 pages");

    // A count that lies low (3, with a first page of 5): ignored, and the
    // pages alone end the listing.
    let low = counted_list(12, 3, 5, Duration::ZERO).await;
    let c = paged_client(&low.url, 5);
    assert_eq!(c.list_extractors().await.unwrap().len(), 12);
    assert_eq!(low.requests().len(), 3);
}

#[tokio::test]
async fn lists_tolerate_odd_shapes_and_filter_runs() {
    let mock = mock::start(|req, _| {
        let body = match req.path() {
            // Wrapped in an object, with an element that is not an object.
            "/reports/" => json!({"items": [{"guid": "r1", "name": "one"}, 42]}),
            // The server ignores extractorId; a plain array with an
            // element that is not an object (skipped, not fatal).
            "/crawlruns/" => json!([
                {"guid": "c1", "extractorId": "e1", "state": "FINISHED"},
                "not a run",
                {"guid": "c2", "extractorId": "e2", "state": "FINISHED"},
            ]),
            _ => json!(null),
        };
        mock::reply("200 OK", &[], body.to_string().as_bytes())
    })
    .await;
    let c = Client::new(fast_config(&mock.url, KEY)).unwrap();
    let reports = c.list_reports().await.unwrap();
    assert_eq!(reports.len(), 1);
    let runs = c.list_crawlruns(Some("e1")).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].guid, "c1");
    assert!(mock.requests()[1].query().contains("extractorId=e1"));
    assert!(c.list_report_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stalled_download_is_resumed_where_it_stopped() {
    let content: Arc<Vec<u8>> = Arc::new((0..100_000u32).map(|i| (i % 251) as u8).collect());
    let body = content.clone();
    let mock = mock::start_steps(move |req, _| {
        let len = body.len();
        match req.header("range") {
            // First attempt: the headers and 40,000 bytes, then silence.
            None => vec![
                mock::Step::Write(mock::reply(
                    "200 OK",
                    &[("content-length", &len.to_string())],
                    &body[..40_000],
                )),
                mock::Step::Sleep(Duration::from_secs(5)),
            ],
            Some(range) => {
                let from: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                vec![mock::Step::Write(mock::reply(
                    "206 Partial Content",
                    &[("content-range", &format!("bytes {from}-{}/{len}", len - 1))],
                    &body[from..],
                ))]
            }
        }
    })
    .await;
    let c = Client::new(ClientConfig {
        attempt_timeout: Duration::from_millis(300),
        ..fast_config(&mock.url, KEY)
    })
    .unwrap();
    let t0 = Instant::now();
    let f = FileRef::Crawlrun("s".into(), CrawlrunFile::Csv);
    let (bytes, progress) = download(&c, &f).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(bytes == *content);
    assert!(
        progress.contains(&40_000),
        "the first bytes were reported early"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("range"), Some("bytes=40000-"));
}

#[tokio::test]
async fn downloads_survive_gzip_chunked_and_ignored_ranges() {
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&content).unwrap();
        e.finish().unwrap()
    };
    let body = Arc::new(content.clone());
    let gz = Arc::new(gz);
    let mock = mock::start(move |req, n| {
        let path = req.path();
        assert_eq!(req.header("accept-encoding"), Some("identity"), "{req:?}");
        match path {
            // gzip although identity was asked; the first answer is cut.
            "/crawlruns/gz/csv" => {
                let mut r = mock::reply(
                    "200 OK",
                    &[
                        ("content-encoding", "gzip"),
                        ("content-length", &gz.len().to_string()),
                    ],
                    &gz,
                );
                if n == 0 {
                    r.truncate(r.len() - gz.len() / 2);
                }
                r
            }
            // No Content-Length: the end of the stream is the end.
            "/crawlruns/chunked/log" => {
                let mut r =
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
                        .to_vec();
                for part in body.chunks(70_000) {
                    r.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    r.extend_from_slice(part);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            }
            // The first answer is cut; the resume's Range is ignored (200).
            "/crawlruns/norange/json" => {
                let mut r = mock::reply("200 OK", &[], &body);
                if req.header("range").is_none() {
                    r.truncate(r.len() - body.len() / 3);
                }
                r
            }
            _ => mock::reply("404 Not Found", &[], b"{\"message\":\"no\"}"),
        }
    })
    .await;
    let c = Client::new(fast_config(&mock.url, KEY)).unwrap();
    for (id, kind) in [
        ("gz", CrawlrunFile::Csv),
        ("chunked", CrawlrunFile::Log),
        ("norange", CrawlrunFile::Json),
    ] {
        let f = FileRef::Crawlrun(id.into(), kind);
        let (bytes, progress) = download(&c, &f).await.unwrap();
        assert!(bytes == content, "{id}: {} bytes", bytes.len());
        assert_eq!(progress.last(), Some(&(content.len() as u64)), "{id}");
    }
    let ranged: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.header("range").is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "only the identity resume asks a range");
    // A HEAD that gives only a compressed length has no usable size.
    let f = FileRef::Crawlrun("gz".into(), CrawlrunFile::Csv);
    assert_eq!(c.file_size(&f).await.unwrap(), None);
    assert_eq!(mock.requests().last().unwrap().method, "HEAD");
}

#[tokio::test]
async fn a_gzip_body_that_fails_its_checksum_is_never_kept() {
    let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    // Stored (uncompressed) deflate blocks: a flipped byte inflates fine
    // and is caught only by the gzip trailer's CRC, after every byte of the
    // body was written.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(&content).unwrap();
        e.finish().unwrap()
    };
    let mut bad = gz.clone();
    bad[gz.len() / 2] ^= 0x55;
    let (gz, bad) = (Arc::new(gz), Arc::new(bad));
    let mock = mock::start(move |_, n| {
        // The first answer is corrupt, every later one is right.
        let body = if n == 0 { &bad } else { &gz };
        mock::reply(
            "200 OK",
            &[
                ("content-encoding", "gzip"),
                ("content-length", &body.len().to_string()),
            ],
            body,
        )
    })
    .await;
    let c = Client::new(fast_config(&mock.url, KEY)).unwrap();
    let f = FileRef::Crawlrun("gz".into(), CrawlrunFile::Csv);
    // The retry sends other bytes than those written (and maybe read)
    // already: the download fails, it does not keep them as the file.
    let e = download(&c, &f).await.unwrap_err();
    assert_eq!(errno_of(&e), libc::EIO, "{e}");
    assert!(e.to_string().contains("other bytes"), "{e}");
    assert_eq!(mock.requests().len(), 2, "one retry, then no more");
    // A download afresh gets the truth.
    let (bytes, _) = download(&c, &f).await.unwrap();
    assert!(bytes == content);
}

#[tokio::test]
async fn a_resume_answered_with_another_file_fails() {
    let old: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let mut new = old.clone();
    new[1000] ^= 1;
    let (old, new) = (Arc::new(old), Arc::new(new));
    let mock = mock::start(move |_, n| {
        // The first answer is cut; the resume is answered with the whole
        // file (200, Range ignored), which has changed meanwhile.
        if n == 0 {
            let mut r = mock::reply("200 OK", &[], &old);
            r.truncate(r.len() - old.len() / 2);
            r
        } else {
            mock::reply("200 OK", &[], &new)
        }
    })
    .await;
    let c = Client::new(fast_config(&mock.url, KEY)).unwrap();
    let f = FileRef::Crawlrun("changed".into(), CrawlrunFile::Csv);
    let e = download(&c, &f).await.unwrap_err();
    assert_eq!(errno_of(&e), libc::EIO, "{e}");
    assert!(e.to_string().contains("other bytes"), "{e}");
}

#[tokio::test]
async fn redirects_send_the_key_only_to_the_api_host() {
    let storage = mock::start(|_, _| mock::reply("200 OK", &[], b"stored bytes")).await;
    let storage_url = storage.url.clone();
    let api = mock::start(move |req, _| {
        match req.path() {
            // A hop on the API host first, then off to storage, with a Location
            // that (wrongly) carries a key: it must be stripped.
            "/crawlruns/r/csv" => {
                mock::reply("302 Found", &[("location", "/crawlruns/r/csv2?x=1")], b"")
            }
            "/crawlruns/r/csv2" => mock::reply(
                "302 Found",
                &[(
                    "location",
                    &format!("{storage_url}/signed/r.csv?sig=abc&_apikey=leaked"),
                )],
                b"",
            ),
            _ => mock::reply("404 Not Found", &[], b""),
        }
    })
    .await;
    let c = Client::new(fast_config(&api.url, KEY)).unwrap();
    let f = FileRef::Crawlrun("r".into(), CrawlrunFile::Csv);
    let (bytes, _) = download(&c, &f).await.unwrap();
    assert_eq!(bytes, b"stored bytes");
    for r in api.requests() {
        assert!(r.query().contains(&format!("_apikey={KEY}")), "{r:?}");
    }
    let stored = storage.requests();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].query(), "sig=abc", "{:?}", stored[0]);
    assert!(stored[0]
        .header("user-agent")
        .unwrap()
        .starts_with("importfs/"));
    assert_eq!(c.stats().redirects_followed, 1);
    assert_eq!(c.stats().calls_of(Operation::GetCrawlrunFile), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_across_clones() {
    let mock = mock::start_slow(Duration::from_millis(100), |_, _| {
        mock::reply("200 OK", &[], b"{\"guid\":\"u\"}")
    })
    .await;
    let c = Client::new(ClientConfig {
        max_concurrent: 3,
        ..fast_config(&mock.url, KEY)
    })
    .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.current_user().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(mock.peak(), 3, "three at a time, never more");
    assert_eq!(c.stats().calls_of(Operation::GetCurrentUser), 12);
    assert_eq!(c.stats().calls_in_flight, 0);
}

// ---------------------------------------------------------------- clients in the wild

/// Two extractors of the demo with runs, and each one's run guids (sorted).
async fn two_with_runs(c: &Client) -> Vec<(String, Vec<String>)> {
    let all = c.list_crawlruns(None).await.unwrap();
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in all {
        by.entry(r.extractor_id.clone()).or_default().push(r.guid);
    }
    let mut out: Vec<(String, Vec<String>)> = by
        .into_iter()
        .filter(|(_, runs)| runs.len() >= 2)
        .take(2)
        .collect();
    for (_, runs) in &mut out {
        runs.sort();
    }
    assert_eq!(out.len(), 2, "two demo extractors with runs");
    out
}

fn guids(runs: &[importfs::api::Crawlrun]) -> Vec<String> {
    let mut g: Vec<String> = runs.iter().map(|r| r.guid.clone()).collect();
    g.sort();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_runs_come_from_their_own_path_when_the_server_has_it() {
    for dialect in [Dialect::Spec, Dialect::Legacy] {
        let emu = emulator(dialect, Dataset::Demo).await;
        let c = client(&emu);
        let exts = two_with_runs(&c).await;
        clear_requests(&emu).await;
        for (e, want) in &exts {
            let runs = c.list_extractor_crawlruns(e).await.unwrap();
            assert_eq!(&guids(&runs), want, "{dialect:?}");
        }
        let log = requests(&emu).await;
        let own = of_op(&log, "listExtractorCrawlruns");
        assert_eq!(own.len(), 2, "one call per extractor: {log:?}");
        assert_eq!(
            own[0]["path"],
            format!("/extractors/{}/crawlruns", exts[0].0)
        );
        assert!(of_op(&log, "listCrawlruns").is_empty(), "{log:?}");
        // The server has the path: its 404 is the extractor's, an error.
        let e = c.list_extractor_crawlruns(NO_SUCH).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(errno_of(&e), libc::ENOENT);
        emu.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_runs_fall_back_to_the_filter_once_on_a_server_without_the_path() {
    for status in [404, 405] {
        let emu = emulator(Dialect::Spec, Dataset::Demo).await;
        let c = client(&emu);
        let exts = two_with_runs(&c).await;
        set_fault(
            &emu,
            json!({"operation": "listExtractorCrawlruns", "status": status}),
        )
        .await;
        clear_requests(&emu).await;
        let runs = c.list_extractor_crawlruns(&exts[0].0).await.unwrap();
        assert_eq!(guids(&runs), exts[0].1, "{status}");
        let log = requests(&emu).await;
        assert_eq!(of_op(&log, "listExtractorCrawlruns").len(), 1, "{log:?}");
        let filtered = of_op(&log, "listCrawlruns");
        assert_eq!(filtered.len(), 1, "{log:?}");
        assert!(filtered[0]["query"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("extractorId={}", exts[0].0)));
        // Remembered: the next extractor costs the fallback alone.
        clear_requests(&emu).await;
        let runs = c.list_extractor_crawlruns(&exts[1].0).await.unwrap();
        assert_eq!(guids(&runs), exts[1].1);
        let runs = c.list_extractor_crawlruns(&exts[0].0).await.unwrap();
        assert_eq!(guids(&runs), exts[0].1);
        let log = requests(&emu).await;
        assert_eq!(of_op(&log, "listExtractorCrawlruns").len(), 0, "{log:?}");
        assert_eq!(of_op(&log, "listCrawlruns").len(), 2, "{log:?}");
        // A client of its own (another mount) asks the path again.
        clear_requests(&emu).await;
        client(&emu)
            .list_extractor_crawlruns(&exts[1].0)
            .await
            .unwrap();
        let log = requests(&emu).await;
        assert_eq!(of_op(&log, "listExtractorCrawlruns").len(), 1);
        emu.shutdown().await;
    }

    // Any other failure decides nothing: a 500 is an error, and the next
    // call asks the path again (and, served, keeps it).
    let emu = emulator(Dialect::Spec, Dataset::Demo).await;
    let c = client(&emu);
    let exts = two_with_runs(&c).await;
    set_fault(
        &emu,
        json!({"operation": "listExtractorCrawlruns", "status": 500}),
    )
    .await;
    let e = c.list_extractor_crawlruns(&exts[0].0).await.unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
    clear_faults(&emu).await;
    clear_requests(&emu).await;
    let runs = c.list_extractor_crawlruns(&exts[0].0).await.unwrap();
    assert_eq!(guids(&runs), exts[0].1);
    let log = requests(&emu).await;
    assert_eq!(of_op(&log, "listExtractorCrawlruns").len(), 1, "{log:?}");
    assert!(of_op(&log, "listCrawlruns").is_empty(), "{log:?}");
    emu.shutdown().await;
}

async fn fresh_extractor(emu: &Emulator, name: &str) -> String {
    let x: Value = hooks()
        .post(format!("{}/_emulator/extractors", emu.url()))
        .json(&json!({"name": name, "inputs": ["https://late.example/"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    x["guid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_here_is_waited_for_while_the_service_does_not_know_it() {
    // Legacy: a started run is 404, and not listed, for a second.
    let emu = emulator_with(Config {
        dialect: Dialect::Legacy,
        run_seconds: 60.0,
        ..Config::default()
    })
    .await;
    let c = client(&emu);
    let x = fresh_extractor(&emu, "late one").await;
    clear_requests(&emu).await;
    let run = c.start_extractor(&x).await.unwrap().crawl_run_id.unwrap();
    assert!(c.started_here(&run));
    let got = c.get_crawlrun(&run).await.unwrap();
    assert_eq!(got.guid, run);
    assert!(!got.run_state().unwrap().is_final());
    let log = requests(&emu).await;
    let gets: Vec<u64> = of_op(&log, "getCrawlrun")
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert!(gets.len() >= 2, "asked again: {gets:?}");
    assert_eq!(gets.last(), Some(&200), "{gets:?}");
    assert!(gets[..gets.len() - 1].iter().all(|s| *s == 404), "{gets:?}");
    assert!(c.stats().retries >= 1);

    // Listings right after a start show the run the server does not list yet.
    let y = fresh_extractor(&emu, "late two").await;
    let run2 = c.start_extractor(&y).await.unwrap().crawl_run_id.unwrap();
    let runs = c.list_extractor_crawlruns(&y).await.unwrap();
    assert_eq!(guids(&runs), vec![run2.clone()]);
    let z = fresh_extractor(&emu, "late three").await;
    let run3 = c.start_extractor(&z).await.unwrap().crawl_run_id.unwrap();
    let all = c.list_crawlruns(None).await.unwrap();
    assert_eq!(all[0].guid, run3, "the newest first");
    assert_eq!(all.iter().filter(|r| r.guid == run3).count(), 1);
    assert!(all.iter().any(|r| r.guid == run2));
    let by_filter = c.list_crawlruns(Some(&x)).await.unwrap();
    assert_eq!(guids(&by_filter), vec![run.clone()]);

    // Another client did not start it: its 404 is the answer, at once.
    let w = fresh_extractor(&emu, "late four").await;
    let run4 = c.start_extractor(&w).await.unwrap().crawl_run_id.unwrap();
    let other = client(&emu);
    assert!(!other.started_here(&run4));
    clear_requests(&emu).await;
    let e = other.get_crawlrun(&run4).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(of_op(&requests(&emu).await, "getCrawlrun").len(), 1);
    // Nor for an id nobody started.
    clear_requests(&emu).await;
    assert!(c.get_crawlrun(NO_SUCH).await.unwrap_err().is_not_found());
    assert_eq!(of_op(&requests(&emu).await, "getCrawlrun").len(), 1);
    emu.shutdown().await;

    // A run that stays unknown past the grace: the 404 comes back.
    let emu = emulator_with(Config {
        run_seconds: 60.0,
        new_run_404_ms: Some(600_000),
        ..Config::default()
    })
    .await;
    let c = Client::new(ClientConfig {
        new_run_grace: Duration::from_millis(700),
        ..fast_config(&emu.url(), KEY)
    })
    .unwrap();
    let x = fresh_extractor(&emu, "never known").await;
    let run = c.start_extractor(&x).await.unwrap().crawl_run_id.unwrap();
    clear_requests(&emu).await;
    let e = c.get_crawlrun(&run).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let n = of_op(&requests(&emu).await, "getCrawlrun").len();
    assert!(n >= 2, "{n} asks within the grace");
    assert!(c.list_extractor_crawlruns(&x).await.unwrap().is_empty());
    assert!(c.started_here(&run), "still known as started here");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_last_page_repeated_past_the_end_is_listed_once() {
    // No X-Total-Count, 2000 objects: page 3 repeats page 2.
    let list = mock::start(|req, _| {
        let page: usize = req
            .query()
            .split('&')
            .find_map(|kv| kv.strip_prefix("_page="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let from = (page.min(2) - 1) * 1000;
        mock::reply(
            "200 OK",
            &[],
            &extractor_page((from..from + 1000).map(|i| format!("g{i}"))),
        )
    })
    .await;
    let c = Client::new(fast_config(&list.url, KEY)).unwrap();
    let got = c.list_extractors().await.unwrap();
    assert_eq!(got.len(), 2000);
    assert_eq!(
        got.iter()
            .map(|e| &e.guid)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        2000
    );
    assert_eq!(list.requests().len(), 3);

    // The legacy emulator repeats its last page too; listings of every
    // size show each object once, N of N.
    for n in [20usize, 23] {
        let emu = emulator_with(Config {
            dialect: Dialect::Legacy,
            dataset: Dataset::Scale,
            extractors: n,
            crawlruns: n * 2,
            result_bytes: 1024,
            ..Config::default()
        })
        .await;
        let c = paged_client(&emu.url(), 5);
        clear_requests(&emu).await;
        let all = c.list_extractors().await.unwrap();
        assert_eq!(all.len(), n);
        let unique: std::collections::HashSet<_> = all.iter().map(|e| &e.guid).collect();
        assert_eq!(unique.len(), n);
        let calls = of_op(&requests(&emu).await, "listExtractors").len();
        assert_eq!(calls, n.div_ceil(5), "{n}: pages the count implies");
        let e = &all[0].guid;
        let runs = c.list_extractor_crawlruns(e).await.unwrap();
        assert_eq!(runs.len(), 2, "{n}");
        emu.shutdown().await;
    }
}
