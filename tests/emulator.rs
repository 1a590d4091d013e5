//! The emulator over real HTTP: every one of the 22 operations with its
//! success and error codes, pagination and sorting, the run lifecycle,
//! downloads (HEAD, Range, gzip, legacy 302), faults, the request log, the
//! hooks, the datasets, and shutdown; and what clients in the wild meet
//! beyond the spec (`GET /extractors/{id}/crawlruns`, runs unknown for a
//! while after a start, pages past the end that repeat the last one).

use std::io::Read;
use std::time::{Duration, Instant};

use importfs::emulator::{Config, Dataset, Dialect, Emulator, FaultSpec};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "s3cret-Key_123";

struct T {
    emu: Emulator,
    c: Client,
}

impl T {
    async fn start(config: Config) -> T {
        let emu = Emulator::start(Config {
            api_key: KEY.into(),
            ..config
        })
        .await
        .expect("emulator starts");
        let c = Client::builder()
            .no_gzip()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        T { emu, c }
    }

    async fn demo() -> T {
        T::start(Config::default()).await
    }

    /// `path` with the key appended.
    fn u(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}_apikey={KEY}", self.emu.url())
    }

    async fn req(&self, m: Method, path: &str) -> reqwest::Response {
        self.c
            .request(m, self.u(path))
            .send()
            .await
            .expect("request")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.req(Method::GET, path).await
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.expect("json")
    }

    async fn post(&self, path: &str) -> reqwest::Response {
        self.req(Method::POST, path).await
    }

    async fn hook(&self, m: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut rb = self
            .c
            .request(m, format!("{}/_emulator{path}", self.emu.url()));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.expect("hook")
    }

    async fn extractors(&self) -> Vec<Value> {
        self.json("/extractors/?_perpage=1000")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn extractor_named(&self, prefix: &str) -> String {
        self.extractors()
            .await
            .iter()
            .find(|e| e["name"].as_str().unwrap_or("").starts_with(prefix))
            .and_then(|e| e["guid"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no extractor named {prefix}"))
    }

    /// A finished run of the named extractor.
    async fn finished_run(&self, prefix: &str) -> String {
        let e = self.extractor_named(prefix).await;
        let runs = self.json(&format!("/crawlruns/?extractorId={e}")).await;
        runs.as_array()
            .and_then(|a| a.iter().find(|r| r["state"] == "FINISHED"))
            .and_then(|r| r["guid"].as_str().map(str::to_owned))
            .expect("a finished run")
    }
}

async fn assert_error(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "{}", r.url().path());
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        ct.starts_with("application/json"),
        "error content type {ct}"
    );
    let body: Value = r.json().await.expect("error body is JSON");
    assert_eq!(body["code"], json!(status.as_u16()));
    assert!(body["message"].is_string());
    body
}

const MISSING: &str = "00000000-0000-4000-8000-000000000000";

#[tokio::test]
async fn auth_errors_and_bad_input() {
    let t = T::demo().await;
    let url = t.emu.url();
    // Missing and wrong keys: 401 with the Error body, never echoing the key.
    let r =
        t.c.get(format!("{url}/users/current"))
            .send()
            .await
            .expect("req");
    assert_error(r, StatusCode::UNAUTHORIZED).await;
    let r =
        t.c.get(format!("{url}/extractors/?_apikey=wrong-{KEY}"))
            .send()
            .await
            .expect("req");
    let text = r.text().await.expect("body");
    assert!(text.contains("401") && !text.contains(KEY), "{text}");

    let e = t.extractor_named("Hacker News").await;
    // Unknown ids: 404 on every kind of object.
    for p in [
        format!("/extractors/{MISSING}"),
        format!("/extractors/{MISSING}/inputs"),
        format!("/crawlruns/{MISSING}"),
        format!("/crawlruns/{MISSING}/csv"),
        format!("/reports/{MISSING}"),
        format!("/reports/{MISSING}/reportruns"),
        format!("/reportruns/{MISSING}"),
        format!("/reportruns/{MISSING}/csv"),
        "/nothing/here".to_owned(),
    ] {
        assert_error(t.get(&p).await, StatusCode::NOT_FOUND).await;
    }
    for p in ["start", "stop", "duplicate"] {
        assert_error(
            t.post(&format!("/extractors/{MISSING}/{p}")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    assert_error(
        t.post(&format!("/reports/{MISSING}/start")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        t.req(Method::DELETE, &format!("/extractors/{MISSING}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        t.req(Method::DELETE, &format!("/reports/{MISSING}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Malformed ids: 400.
    for p in [
        "/extractors/not-a-uuid",
        "/crawlruns/1234",
        "/reports/x",
        "/reportruns/zz/csv",
        // Other spellings the uuid crate would take: not `format: uuid`.
        "/extractors/{00000000-0000-4000-8000-000000000000}",
        "/extractors/urn:uuid:00000000-0000-4000-8000-000000000000",
        "/extractors/00000000000040008000000000000000",
    ] {
        assert_error(t.get(p).await, StatusCode::BAD_REQUEST).await;
    }
    // Unknown file type: 404.
    let run = t.finished_run("Hacker News").await;
    assert_error(
        t.get(&format!("/crawlruns/{run}/pdf")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Bad JSON bodies: 400.
    for body in ["{not json", "[1,2]", "{\"_url\": 5}", ""] {
        let r =
            t.c.put(t.u(&format!("/extractors/{e}/inputs")))
                .body(body)
                .send()
                .await
                .expect("put");
        assert_error(r, StatusCode::BAD_REQUEST).await;
    }
    for body in [
        json!({"username": "u"}),
        json!({"username": 1, "password": "p"}),
        json!([]),
    ] {
        let r =
            t.c.post(t.u(&format!("/extractors/{e}/credentials")))
                .json(&body)
                .send()
                .await
                .expect("post");
        assert_error(r, StatusCode::BAD_REQUEST).await;
    }
    // Over 1 MiB: 413.
    let big = format!("{{\"_url\": \"{}\"}}", "a".repeat(1_100_000));
    let r =
        t.c.put(t.u(&format!("/extractors/{e}/inputs")))
            .body(big)
            .send()
            .await
            .expect("put");
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Chunked (no Content-Length) and still too big: 413 too.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]))),
    );
    let r =
        t.c.put(t.u(&format!("/extractors/{e}/inputs")))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .expect("put");
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Wrong method: 405 with Allow.
    let r = t.req(Method::PATCH, &format!("/extractors/{e}")).await;
    assert!(r.headers().contains_key("allow"));
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED).await;
    t.emu.shutdown().await;
}

#[tokio::test]
async fn user_subscription_and_hostile_names() {
    let t = T::demo().await;
    let u = t.json("/users/current").await;
    assert!(uuid::Uuid::parse_str(u["guid"].as_str().expect("guid")).is_ok());
    assert!(u["_meta"]["createdAt"].is_string());
    let s = t.json("/users/current/subscription").await;
    assert_eq!(s["userId"], u["guid"]);
    assert!(s["planCode"].is_string());

    let names: Vec<String> = t
        .extractors()
        .await
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect();
    assert!(names.len() >= 21, "{}", names.len());
    assert_eq!(names.iter().filter(|n| *n == "Product Prices").count(), 2);
    assert!(names.iter().any(|n| n.contains('/')));
    assert!(names.iter().any(|n| n == ".."));
    assert!(names.iter().any(|n| n.starts_with('.') && n.len() > 2));
    assert!(names.iter().any(|n| n.contains('🚀')));
    assert!(names.iter().any(|n| n.contains('\n')));
    assert!(names.iter().any(|n| n.len() == 300));
    assert!(names.iter().any(|n| n.is_empty()));
    for real in ["Amazon Best Sellers", "Zillow", "Hacker News", "IMDb"] {
        assert!(names.iter().any(|n| n.starts_with(real)), "{real}");
    }
    // Every believable extractor has a finished run with results.
    let runs = t.json("/crawlruns/?_perpage=1000").await;
    let runs = runs.as_array().expect("array");
    assert!(runs.iter().any(|r| r["state"] == "FAILED"));
    assert!(runs.iter().any(|r| r["state"] == "CANCELLED"));
    assert!(runs
        .iter()
        .filter(|r| r["state"] == "FINISHED")
        .all(|r| r["rowCount"].as_i64().unwrap_or(0) > 0));
    t.emu.shutdown().await;
}

#[tokio::test]
async fn pagination_and_sorting() {
    let t = T::demo().await;
    let all = t.extractors().await;
    let n = all.len();
    // Default: 30 a page, newest first.
    let first = t.json("/extractors/").await;
    assert_eq!(first.as_array().map(Vec::len), Some(n.min(30)));
    let created: Vec<String> = all
        .iter()
        .map(|e| {
            e["_meta"]["createdAt"]
                .as_str()
                .expect("createdAt")
                .to_owned()
        })
        .collect();
    let mut sorted = created.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(created, sorted, "default is meta_created_at DESC");
    // Pages of 4 cover everything once.
    let mut seen = Vec::new();
    for page in 1.. {
        let p = t
            .json(&format!(
                "/extractors/?_perpage=4&_page={page}&_sort=name&_sortDirection=ASC"
            ))
            .await;
        let items = p.as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        assert!(items.len() <= 4);
        seen.extend(items);
    }
    assert_eq!(seen.len(), n);
    let names: Vec<&str> = seen
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "name ASC");
    let mut guids: Vec<&str> = seen
        .iter()
        .map(|e| e["guid"].as_str().unwrap_or(""))
        .collect();
    guids.sort();
    guids.dedup();
    assert_eq!(guids.len(), n, "no duplicates across pages");
    // Beyond the last page: [].
    assert_eq!(t.json("/extractors/?_page=99").await, json!([]));
    // Bad values.
    // Query integers are digits only: a trailing control character, a
    // space or a plus sign makes a string (schemathesis found `_page=2%0B`
    // accepted once).
    for q in [
        "_perpage=abc",
        "_page=1.5",
        "_sortDirection=UP",
        "_page=2%0B",
        "_page=%202",
        "_perpage=%2B5",
        "_perpage=",
    ] {
        assert_error(
            t.get(&format!("/extractors/?{q}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // Clamped values.
    assert_eq!(
        t.get("/extractors/?_page=0&_perpage=479612026")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        t.json("/extractors/?_perpage=0")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        t.json("/crawlruns/?_perpage=5000")
            .await
            .as_array()
            .map(Vec::len),
        Some(
            t.json("/crawlruns/?_perpage=1000")
                .await
                .as_array()
                .map_or(0, Vec::len)
        )
    );
    // Lists of the other kinds page too.
    assert_eq!(
        t.json("/crawlruns/?_perpage=2")
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        t.json("/reports/?_perpage=1")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        t.json("/reportruns/?_perpage=1&_page=2")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    t.emu.shutdown().await;
}

#[tokio::test]
async fn extractor_operations() {
    let t = T::demo().await;
    let e = t.extractor_named("IMDb").await;
    let x = t.json(&format!("/extractors/{e}")).await;
    assert_eq!(x["guid"], json!(e));
    assert!(x["fields"].as_array().is_some_and(|f| !f.is_empty()));

    // Inputs: spec form out; both forms in, answered in the form read.
    let inp = t.json(&format!("/extractors/{e}/inputs")).await;
    assert_eq!(inp["_url"], json!("https://www.imdb.com/chart/top/"));
    let r =
        t.c.put(t.u(&format!("/extractors/{e}/inputs")))
            .json(&json!({"_url": "https://a.example/1\nhttps://a.example/2"}))
            .send()
            .await
            .expect("put");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.expect("json")["_url"],
        json!("https://a.example/1\nhttps://a.example/2")
    );
    let r =
        t.c.put(t.u(&format!("/extractors/{e}/inputs")))
            .header("content-type", "application/x-ndjson")
            .body("{\"_url\":\"https://b.example/1\"}\n{\"_url\":\"https://b.example/2\"}\n")
            .send()
            .await
            .expect("put");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let inp = t.json(&format!("/extractors/{e}/inputs")).await;
    assert_eq!(
        inp["_url"],
        json!("https://b.example/1\nhttps://b.example/2")
    );

    // Duplicate: a new extractor with the same fields and inputs.
    let r = t.post(&format!("/extractors/{e}/duplicate")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let d: Value = r.json().await.expect("json");
    assert_ne!(d["guid"], json!(e));
    assert_eq!(d["name"], json!("IMDb Top Rated Movies (copy)"));
    let dg = d["guid"].as_str().expect("guid").to_owned();
    let dinp = t.json(&format!("/extractors/{dg}/inputs")).await;
    assert_eq!(dinp["_url"], inp["_url"]);
    assert_eq!(
        t.json(&format!("/extractors/{dg}")).await["fields"]
            .as_array()
            .map(|f| f.iter().map(|x| x["name"].clone()).collect::<Vec<_>>()),
        x["fields"]
            .as_array()
            .map(|f| f.iter().map(|x| x["name"].clone()).collect::<Vec<_>>())
    );

    // Credentials: stored, shown by no API GET.
    let r =
        t.c.post(t.u(&format!("/extractors/{e}/credentials")))
            .json(&json!({"username": "ada", "password": "hunter2-very-secret"}))
            .send()
            .await
            .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    for p in [
        format!("/extractors/{e}"),
        format!("/extractors/{e}/inputs"),
        "/extractors/?_perpage=1000".into(),
    ] {
        let text = t.get(&p).await.text().await.expect("text");
        assert!(!text.contains("hunter2"), "{p} shows the password");
    }
    assert!(t.json(&format!("/extractors/{e}")).await["credentialsId"].is_string());
    let stored: Value = t
        .hook(Method::GET, &format!("/extractors/{e}/credentials"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        stored,
        json!({"username": "ada", "password": "hunter2-very-secret"})
    );

    // Delete archives: answered with the archived extractor, then hidden
    // (404 everywhere, not listed); its runs stay readable.
    let r = t.req(Method::DELETE, &format!("/extractors/{dg}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.expect("json")["archived"],
        json!(true)
    );
    assert!(!t.extractors().await.iter().any(|x| x["guid"] == json!(dg)));
    for p in ["", "/inputs"] {
        assert_error(
            t.get(&format!("/extractors/{dg}{p}")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    for p in ["start", "stop", "duplicate"] {
        assert_error(
            t.post(&format!("/extractors/{dg}/{p}")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    assert_error(
        t.req(Method::DELETE, &format!("/extractors/{dg}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let e_runs = t.json(&format!("/crawlruns/?extractorId={e}")).await;
    let some_run = e_runs[0]["guid"].as_str().expect("a run").to_owned();
    t.req(Method::DELETE, &format!("/extractors/{e}")).await;
    assert_eq!(
        t.get(&format!("/crawlruns/{some_run}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        t.get(&format!("/crawlruns/{some_run}/csv")).await.status(),
        StatusCode::OK
    );
    t.emu.shutdown().await;
}

async fn wait_state(t: &T, run: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = t.json(&format!("/crawlruns/{run}")).await;
        if r["state"] == json!(want) {
            return r;
        }
        assert!(Instant::now() < deadline, "run never became {want}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn run_lifecycle() {
    let t = T::start(Config {
        run_seconds: 1.0,
        ..Config::default()
    })
    .await;
    let e = t.extractor_named("Zillow").await;
    let before = t
        .json(&format!("/crawlruns/?extractorId={e}&_perpage=100"))
        .await;
    let r = t.post(&format!("/extractors/{e}/start")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let run = r.json::<Value>().await.expect("json")["crawlRunId"]
        .as_str()
        .expect("crawlRunId")
        .to_owned();
    let pending = t.json(&format!("/crawlruns/{run}")).await;
    assert_eq!(pending["state"], json!("PENDING"));
    assert_eq!(pending["extractorId"], json!(e));
    assert!(pending.get("stoppedAt").is_none());
    // A second start while running: 400 with the Error body.
    assert_error(
        t.post(&format!("/extractors/{e}/start")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // No files before it finishes.
    assert_error(
        t.get(&format!("/crawlruns/{run}/csv")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let started = wait_state(&t, &run, "STARTED").await;
    let done = wait_state(&t, &run, "FINISHED").await;
    assert!(done["stoppedAt"].is_string());
    assert_eq!(done["successUrlCount"], json!(3));
    assert!(done["rowCount"].as_i64().unwrap_or(0) >= started["rowCount"].as_i64().unwrap_or(0));
    assert!(done["rowCount"].as_i64().unwrap_or(0) > 0);
    assert_eq!(
        t.get(&format!("/crawlruns/{run}/csv")).await.status(),
        StatusCode::OK
    );
    // The filter: the new run is listed for this extractor, and only its runs are.
    let after = t
        .json(&format!("/crawlruns/?extractorId={e}&_perpage=100"))
        .await;
    let after = after.as_array().expect("array");
    assert_eq!(after.len(), before.as_array().map_or(0, Vec::len) + 1);
    assert!(after.iter().all(|r| r["extractorId"] == json!(e)));
    assert_eq!(after[0]["guid"], json!(run), "newest first");

    // Stop: the running run becomes CANCELLED; stop when idle is 200 {}.
    let r = t.post(&format!("/extractors/{e}/start")).await;
    let run2 = r.json::<Value>().await.expect("json")["crawlRunId"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = t.post(&format!("/extractors/{e}/stop")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.expect("json")["crawlRunId"],
        json!(run2)
    );
    let c = t.json(&format!("/crawlruns/{run2}")).await;
    assert_eq!(c["state"], json!("CANCELLED"));
    assert!(c["stoppedAt"].is_string());
    assert_error(
        t.get(&format!("/crawlruns/{run2}/json")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = t.post(&format!("/extractors/{e}/stop")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.expect("json"), json!({}));
    // After a cancel, start works again.
    assert_eq!(
        t.post(&format!("/extractors/{e}/start")).await.status(),
        StatusCode::OK
    );
    t.emu.shutdown().await;
}

fn unzip_names(bytes: &[u8]) -> Vec<String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    (0..z.len())
        .map(|i| z.by_index(i).expect("entry").name().to_owned())
        .collect()
}

#[tokio::test]
async fn result_files_and_downloads() {
    let t = T::demo().await;
    let run = t.finished_run("BBC News").await;
    let tr = &t;
    let runr = &run;
    let get = move |ft: &str| {
        let p = format!("/crawlruns/{runr}/{ft}");
        async move { tr.get(&p).await }
    };
    // CSV: BOM, quoted, CRLF; content types as the spec lists them.
    let r = get("csv").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv");
    let len: u64 = r.headers()["content-length"]
        .to_str()
        .expect("len")
        .parse()
        .expect("num");
    let csv = r.bytes().await.expect("body");
    assert_eq!(csv.len() as u64, len);
    assert!(csv.starts_with(b"\xEF\xBB\xBF\"url\",\"headline\""));
    assert!(csv.ends_with(b"\"\r\n"));
    let mut rd = csv::Reader::from_reader(&csv[3..]);
    let rows: Vec<_> = rd.records().collect::<Result<_, _>>().expect("csv parses");
    assert!(rows.len() >= 4);
    assert!(
        rows.iter().any(|r| r.iter().any(|f| f.contains('\n'))),
        "multi-line values"
    );
    // JSON lines in the extractorData shape.
    let r = get("json").await;
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.expect("text");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len(), 2, "the 404 input has no results");
    assert!(
        lines[0]["result"]["extractorData"]["data"][0]["group"][0]["headline"][0]["text"]
            .is_string()
    );
    // XLSX and zip are real zips.
    let r = get("xlsx").await;
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let x = r.bytes().await.expect("xlsx");
    assert!(unzip_names(&x)
        .iter()
        .any(|n| n == "xl/worksheets/sheet1.xml"));
    let r = get("files").await;
    assert_eq!(r.headers()["content-type"], "application/zip");
    let names = unzip_names(&r.bytes().await.expect("zip"));
    assert!(names.contains(&"manifest.json".to_owned()));
    // Log: Url, Success, Message with the failed URL.
    let log = get("log").await.text().await.expect("log");
    assert!(log.starts_with("\"Url\",\"Success\",\"Message\"\r\n"));
    assert!(log.contains("\"false\",\"HTTP 404 Not Found\""));
    let sample: Value = get("sample").await.json().await.expect("sample");
    assert!(sample.as_array().is_some_and(|a| !a.is_empty()));

    // HEAD: same length, no body.
    let h = t.req(Method::HEAD, &format!("/crawlruns/{run}/csv")).await;
    assert_eq!(h.status(), StatusCode::OK);
    assert_eq!(
        h.headers()["content-length"].to_str().ok(),
        Some(len.to_string().as_str())
    );
    assert!(h.bytes().await.expect("empty").is_empty());
    // Range: 206 with the right slice; open-ended and suffix forms; 416.
    for (range, a, b) in [
        ("bytes=5-24", 5, 25),
        ("bytes=10-", 10, len),
        ("bytes=-7", len - 7, len),
    ] {
        let r =
            t.c.get(t.u(&format!("/crawlruns/{run}/csv")))
                .header("range", range)
                .send()
                .await
                .expect("range");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            r.headers()["content-range"].to_str().ok(),
            Some(format!("bytes {a}-{}/{len}", b - 1).as_str())
        );
        assert_eq!(
            &r.bytes().await.expect("part")[..],
            &csv[a as usize..b as usize]
        );
    }
    let r =
        t.c.get(t.u(&format!("/crawlruns/{run}/csv")))
            .header("range", format!("bytes={len}-"))
            .send()
            .await
            .expect("range");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()["content-range"].to_str().ok(),
        Some(format!("bytes */{len}").as_str())
    );
    // gzip when asked: decompresses to the same bytes.
    let r =
        t.c.get(t.u(&format!("/crawlruns/{run}/csv")))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("gzip");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.expect("gz");
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .expect("gunzip");
    assert_eq!(plain, csv);
    t.emu.shutdown().await;
}

#[tokio::test]
async fn reports_and_report_runs() {
    let t = T::start(Config {
        run_seconds: 0.3,
        ..Config::default()
    })
    .await;
    let reports = t.json("/reports/").await;
    let reports = reports.as_array().expect("array").clone();
    assert_eq!(reports.len(), 2);
    let change = reports
        .iter()
        .find(|r| r["type"] == "Change")
        .expect("a Change report");
    let other = reports
        .iter()
        .find(|r| r["type"] != "Change")
        .expect("another report");
    let (cid, oid) = (
        change["guid"].as_str().expect("id").to_owned(),
        other["guid"].as_str().expect("id").to_owned(),
    );
    assert_eq!(
        t.json(&format!("/reports/{cid}")).await["name"],
        change["name"]
    );
    let runs = t.json(&format!("/reports/{cid}/reportruns")).await;
    let runs = runs.as_array().expect("array").clone();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["reportId"] == json!(cid)));
    let rr = runs[0]["guid"].as_str().expect("id").to_owned();
    assert_eq!(
        t.json(&format!("/reportruns/{rr}")).await["guid"],
        json!(rr)
    );
    let all = t.json("/reportruns/").await;
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    // Files: csv and xlsx always, json only for Change reports.
    let r = t.get(&format!("/reportruns/{rr}/csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .bytes()
        .await
        .expect("csv")
        .starts_with(b"\xEF\xBB\xBF\"change\""));
    let r = t.get(&format!("/reportruns/{rr}/xlsx")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let j = t.get(&format!("/reportruns/{rr}/json")).await;
    assert_eq!(j.status(), StatusCode::OK);
    assert!(j.json::<Value>().await.expect("json")["changes"].is_array());
    let orr = t.json(&format!("/reports/{oid}/reportruns")).await[0]["guid"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        t.get(&format!("/reportruns/{orr}/csv")).await.status(),
        StatusCode::OK
    );
    assert_error(
        t.get(&format!("/reportruns/{orr}/json")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Start: a new report run that finishes.
    let r = t.post(&format!("/reports/{oid}/start")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new = r.json::<Value>().await.expect("json")["reportRunId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        t.json(&format!("/reports/{oid}/reportruns"))
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_error(
        t.get(&format!("/reportruns/{new}/csv")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        t.json(&format!("/reportruns/{new}")).await["status"],
        json!("FINISHED")
    );
    assert_eq!(
        t.get(&format!("/reportruns/{new}/xlsx")).await.status(),
        StatusCode::OK
    );
    // Delete: gone.
    let r = t.req(Method::DELETE, &format!("/reports/{oid}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(
        t.get(&format!("/reports/{oid}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        t.get(&format!("/reports/{oid}/reportruns")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(t.json("/reports/").await.as_array().map(Vec::len), Some(1));
    t.emu.shutdown().await;
}

#[tokio::test]
async fn legacy_dialect() {
    let spec = T::demo().await;
    let t = T::start(Config {
        dialect: Dialect::Legacy,
        ..Config::default()
    })
    .await;
    // Same dataset, same ids, whatever the dialect.
    let run = t.finished_run("Hacker News").await;
    assert_eq!(run, spec.finished_run("Hacker News").await);
    let e = t.extractor_named("Hacker News").await;
    let x = t.json(&format!("/extractors/{e}")).await;
    assert!(x["_meta"]["creationTimestamp"].is_i64());
    assert!(x["_meta"]["timestamp"].is_i64());
    assert!(x["_meta"].get("createdAt").is_none());
    let r = t.json(&format!("/crawlruns/{run}")).await;
    assert!(r["startedAt"].is_i64() && r["stoppedAt"].is_i64());
    // Inputs as JSON lines.
    let r = t.get(&format!("/extractors/{e}/inputs")).await;
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.expect("text");
    assert_eq!(text.lines().count(), 2);
    for l in text.lines() {
        assert!(serde_json::from_str::<Value>(l).expect("line")["_url"].is_string());
    }
    // Downloads: a 302 to the files listener, which needs no key.
    let r = t.get(&format!("/crawlruns/{run}/csv")).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(loc.starts_with(&t.emu.files_url()), "{loc}");
    assert!(!loc.contains(KEY) && !loc.contains("_apikey"));
    let body = t.c.get(&loc).send().await.expect("files");
    assert_eq!(body.status(), StatusCode::OK);
    let bytes = body.bytes().await.expect("bytes");
    let direct = spec
        .get(&format!("/crawlruns/{run}/csv"))
        .await
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes, direct);
    // HEAD and Range work there too; a wrong token does not.
    let h = t.c.head(&loc).send().await.expect("head");
    assert_eq!(
        h.headers()["content-length"].to_str().ok(),
        Some(bytes.len().to_string().as_str())
    );
    let p =
        t.c.get(&loc)
            .header("range", "bytes=0-9")
            .send()
            .await
            .expect("range");
    assert_eq!(p.status(), StatusCode::PARTIAL_CONTENT);
    let bad = format!(
        "{}/0000000000000000ffffffffffffffff/crawlruns/{run}/csv",
        t.emu.files_url()
    );
    assert_eq!(
        t.c.get(&bad).send().await.expect("forged").status(),
        StatusCode::NOT_FOUND
    );
    // The following client (reqwest's default policy) lands on the file.
    let follow = Client::new();
    let r = follow
        .get(t.u(&format!("/crawlruns/{run}/json")))
        .send()
        .await
        .expect("follow");
    assert_eq!(r.status(), StatusCode::OK);
    // PUT inputs in the spec form still works, answered in that form.
    let r =
        t.c.put(t.u(&format!("/extractors/{e}/inputs")))
            .json(&json!({"_url": "https://x.example/"}))
            .send()
            .await
            .expect("put");
    assert_eq!(r.headers()["content-type"], "application/json");
    spec.emu.shutdown().await;
    t.emu.shutdown().await;
}

#[tokio::test]
async fn faults_each_kind() {
    let t = T::demo().await;
    let run = t.finished_run("IMDb").await;
    let set = |f: Value| t.hook(Method::POST, "/faults", Some(f));
    // 500
    assert_eq!(
        set(json!({"operation": "getCurrentUser", "error_rate": 1.0}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_error(
        t.get("/users/current").await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(
        t.get("/users/current/subscription").await.status(),
        StatusCode::OK,
        "other operations unaffected"
    );
    // 429 with Retry-After
    set(json!({"operation": "getCurrentUser", "throttle_rate": 1.0, "retry_after_s": 3})).await;
    let r = t.get("/users/current").await;
    assert_eq!(r.headers()["retry-after"], "3");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS).await;
    // Latency, fixed and ranged.
    set(json!({"operation": "getCurrentUser", "latency_ms": 300})).await;
    let t0 = Instant::now();
    assert_eq!(t.get("/users/current").await.status(), StatusCode::OK);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    set(json!({"operation": "getCurrentUser", "latency_ms": 100, "latency_max_ms": 200})).await;
    let t0 = Instant::now();
    t.get("/users/current").await;
    assert!(t0.elapsed() >= Duration::from_millis(100));
    // Drop: no answer at all.
    set(json!({"operation": "getCrawlrun", "drop_rate": 1.0})).await;
    let r = t.c.get(t.u(&format!("/crawlruns/{run}"))).send().await;
    assert!(r.is_err(), "dropped connection gives no response");
    // Truncate: Content-Length promised, fewer bytes sent.
    set(json!({"operation": "getCrawlrunFile", "truncate_rate": 1.0})).await;
    let r = t.get(&format!("/crawlruns/{run}/csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let promised: usize = r.headers()["content-length"]
        .to_str()
        .expect("len")
        .parse()
        .expect("num");
    assert!(promised > 0);
    match r.bytes().await {
        Err(_) => {}
        Ok(b) => assert!(b.len() < promised, "body not truncated"),
    }
    // Truncated JSON too.
    set(json!({"operation": "listExtractors", "truncate_rate": 1.0})).await;
    let r = t.get("/extractors/").await;
    assert!(r.bytes().await.is_err());
    // `*` applies to all; hooks are never faulted; GET lists; DELETE clears.
    set(json!({"operation": "*", "error_rate": 1.0})).await;
    assert_eq!(
        t.get("/reports/").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let listed: Value = t
        .hook(Method::GET, "/faults", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(5));
    assert_eq!(
        t.hook(Method::DELETE, "/faults", None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.get("/reports/").await.status(), StatusCode::OK);
    assert_eq!(
        t.get(&format!("/crawlruns/{run}")).await.status(),
        StatusCode::OK
    );
    // Bad fault bodies.
    assert_eq!(
        set(json!({"operation": "*", "error_rat": 1}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        set(json!({"operation": "*", "error_rate": 7}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    // In-process API and config faults.
    t.emu.set_faults(vec![FaultSpec {
        operation: "getReport".into(),
        error_rate: Some(1.0),
        ..FaultSpec::default()
    }]);
    let rid = t.json("/reports/").await[0]["guid"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        t.get(&format!("/reports/{rid}")).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    t.emu.clear_faults();
    assert_eq!(
        t.get(&format!("/reports/{rid}")).await.status(),
        StatusCode::OK
    );
    t.emu.shutdown().await;

    let t = T::start(Config {
        faults: vec![FaultSpec {
            operation: "*".into(),
            throttle_rate: Some(1.0),
            ..FaultSpec::default()
        }],
        ..Config::default()
    })
    .await;
    assert_eq!(
        t.get("/users/current").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    t.emu.shutdown().await;
}

#[tokio::test]
async fn request_log() {
    let t = T::demo().await;
    t.get("/extractors/?_perpage=2&_page=1").await;
    t.c.get(format!("{}/users/current?_apikey=wrong", t.emu.url()))
        .send()
        .await
        .expect("req");
    // A key smuggled elsewhere in the query is redacted too.
    t.get(&format!("/reports/?note={KEY}")).await;
    t.hook(Method::GET, "/faults", None).await;
    let r = t.hook(Method::GET, "/requests", None).await;
    let text = r.text().await.expect("text");
    assert!(!text.contains(KEY), "the key is in the log: {text}");
    let log: Vec<Value> = serde_json::from_str(&text).expect("json");
    assert_eq!(log.len(), 3, "hooks are not logged: {text}");
    assert_eq!(log[0]["method"], "GET");
    assert_eq!(log[0]["path"], "/extractors/");
    assert_eq!(log[0]["query"], "_perpage=2&_page=1");
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["operation"], "listExtractors");
    assert_eq!(log[1]["status"], 401);
    assert_eq!(log[1]["operation"], "getCurrentUser");
    assert_eq!(log[2]["query"], "note=REDACTED");
    assert_eq!(t.emu.requests().len(), 3);
    assert_eq!(
        t.hook(Method::DELETE, "/requests", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let log: Value = t
        .hook(Method::GET, "/requests", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(log, json!([]));
    t.emu.shutdown().await;
}

#[tokio::test]
async fn hooks_change_the_account() {
    let t = T::start(Config {
        run_seconds: 60.0,
        ..Config::default()
    })
    .await;
    let r = t
        .hook(
            Method::POST,
            "/extractors",
            Some(json!({"name": "Made by a test", "inputs": ["https://t.example/1", "https://t.example/2"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let x: Value = r.json().await.expect("json");
    let id = x["guid"].as_str().expect("id").to_owned();
    assert_eq!(
        t.json(&format!("/extractors/{id}/inputs")).await["_url"],
        "https://t.example/1\nhttps://t.example/2"
    );
    assert!(t.extractors().await.iter().any(|e| e["guid"] == json!(id)));
    let r = t
        .hook(
            Method::POST,
            &format!("/extractors/{id}/rename"),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["name"], "Renamed");
    assert_eq!(
        t.json(&format!("/extractors/{id}")).await["name"],
        "Renamed"
    );
    // Runs: add one directly, finish or fail one now.
    let r = t
        .hook(
            Method::POST,
            "/crawlruns",
            Some(json!({"extractorId": id, "state": "FINISHED"})),
        )
        .await;
    let added: Value = r.json().await.expect("json");
    assert_eq!(added["state"], "FINISHED");
    let aid = added["guid"].as_str().expect("id");
    assert_eq!(
        t.get(&format!("/crawlruns/{aid}/csv")).await.status(),
        StatusCode::OK
    );
    let started = t
        .post(&format!("/extractors/{id}/start"))
        .await
        .json::<Value>()
        .await
        .expect("json");
    let sid = started["crawlRunId"].as_str().expect("id").to_owned();
    assert_eq!(
        t.json(&format!("/crawlruns/{sid}")).await["state"],
        "PENDING"
    );
    let r = t
        .hook(Method::POST, &format!("/crawlruns/{sid}/finish"), None)
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["state"], "FINISHED");
    assert_eq!(
        t.get(&format!("/crawlruns/{sid}/json")).await.status(),
        StatusCode::OK
    );
    let started = t
        .post(&format!("/extractors/{id}/start"))
        .await
        .json::<Value>()
        .await
        .expect("json");
    let fid = started["crawlRunId"].as_str().expect("id").to_owned();
    t.hook(Method::POST, &format!("/crawlruns/{fid}/fail"), None)
        .await;
    assert_eq!(
        t.json(&format!("/crawlruns/{fid}")).await["state"],
        "FAILED"
    );
    assert_error(
        t.get(&format!("/crawlruns/{fid}/csv")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Archive.
    let r = t
        .hook(Method::POST, &format!("/extractors/{id}/archive"), None)
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["archived"], true);
    assert!(!t.extractors().await.iter().any(|e| e["guid"] == json!(id)));
    // Hook errors.
    assert_eq!(
        t.hook(
            Method::POST,
            &format!("/extractors/{MISSING}/rename"),
            Some(json!({"name": "x"}))
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.hook(Method::POST, "/extractors", Some(json!({"nom": 1})))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.hook(Method::GET, "/nope", None).await.status(),
        StatusCode::NOT_FOUND
    );
    t.emu.shutdown().await;
}

#[tokio::test]
async fn scale_dataset_and_restart() {
    let config = Config {
        dataset: Dataset::Scale,
        extractors: 40,
        crawlruns: 12_000,
        result_bytes: 3_000_000,
        ..Config::default()
    };
    let t = T::start(config.clone()).await;
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for page in 1.. {
        let p = t
            .json(&format!("/crawlruns/?_perpage=1000&_page={page}"))
            .await;
        let items = p.as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        ids.extend(
            items
                .iter()
                .filter_map(|r| r["guid"].as_str().map(str::to_owned)),
        );
    }
    assert_eq!(ids.len(), 12_000);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "listing took {:?}",
        t0.elapsed()
    );
    assert_eq!(t.extractors().await.len(), 40);
    let run = ids[17].clone();
    // data.csv and data.json are exactly result_bytes long; ranges agree.
    for ft in ["csv", "json"] {
        let h = t.req(Method::HEAD, &format!("/crawlruns/{run}/{ft}")).await;
        assert_eq!(h.headers()["content-length"], "3000000");
    }
    let full = t
        .get(&format!("/crawlruns/{run}/csv"))
        .await
        .bytes()
        .await
        .expect("csv");
    assert_eq!(full.len(), 3_000_000);
    let mut rd = csv::Reader::from_reader(&full[3..]);
    assert!(rd.records().all(|r| r.is_ok_and(|r| r.len() == 4)));
    let r =
        t.c.get(t.u(&format!("/crawlruns/{run}/csv")))
            .header("range", "bytes=1234567-1299999")
            .send()
            .await
            .expect("range");
    assert_eq!(
        &r.bytes().await.expect("part")[..],
        &full[1_234_567..1_300_000]
    );
    let xlsx = t
        .get(&format!("/crawlruns/{run}/xlsx"))
        .await
        .bytes()
        .await
        .expect("xlsx");
    assert!(unzip_names(&xlsx).iter().any(|n| n.starts_with("xl/")));
    // Restart on the same port: same ids, same bytes.
    let addr = t.emu.addr();
    t.emu.shutdown().await;
    let t2 = T::start(Config {
        listen: addr,
        ..config
    })
    .await;
    assert_eq!(t2.emu.addr(), addr);
    let first = t2.json("/crawlruns/?_perpage=1000").await;
    assert_eq!(first[0]["guid"], json!(ids[0]));
    let again =
        t2.c.get(t2.u(&format!("/crawlruns/{run}/csv")))
            .header("range", "bytes=2999000-")
            .send()
            .await
            .expect("range")
            .bytes()
            .await
            .expect("bytes");
    assert_eq!(&again[..], &full[2_999_000..]);
    t2.emu.shutdown().await;
}

#[tokio::test]
async fn shutdown_cuts_downloads_and_frees_the_port() {
    let config = Config {
        dataset: Dataset::Scale,
        extractors: 2,
        crawlruns: 2,
        result_bytes: 1 << 30,
        ..Config::default()
    };
    let t = T::start(config.clone()).await;
    let run = t.json("/crawlruns/").await[0]["guid"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut r = t.get(&format!("/crawlruns/{run}/csv")).await;
    assert_eq!(
        r.headers()["content-length"],
        (1u64 << 30).to_string().as_str()
    );
    let first = r.chunk().await.expect("chunk").expect("some bytes");
    assert!(!first.is_empty());
    let addr = t.emu.addr();
    let t0 = Instant::now();
    t.emu.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t0.elapsed()
    );
    // The download in flight ends (with an error) instead of hanging.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match r.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the download ends");
    assert!(rest.is_err());
    let again = Emulator::start(Config {
        listen: addr,
        ..config
    })
    .await
    .expect("the port is free again");
    again.shutdown().await;
}

/// A scale account of a few finished runs whose data.csv is `bytes` long,
/// sent at no more than `cap` bytes per second per connection.
fn capped_scale(bytes: u64, cap: Option<u64>) -> Config {
    Config {
        dataset: Dataset::Scale,
        extractors: 2,
        crawlruns: 4,
        result_bytes: bytes,
        conn_bytes_per_sec: cap,
        ..Config::default()
    }
}

/// GET `url` (with `range` when given): status, body, and the time it took.
async fn timed(c: &Client, url: &str, range: Option<&str>) -> (StatusCode, Vec<u8>, Duration) {
    let t0 = Instant::now();
    let mut rb = c.get(url);
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    let r = rb.send().await.expect("GET");
    let status = r.status();
    let body = r.bytes().await.expect("body").to_vec();
    (status, body, t0.elapsed())
}

/// POST a fault body; its status.
async fn post_fault(t: &T, f: Value) -> StatusCode {
    t.hook(Method::POST, "/faults", Some(f)).await.status()
}

const MB3: u64 = 3_000_000;
const RATE: u64 = 2_000_000;

#[tokio::test]
async fn bandwidth_cap_per_connection() {
    // The source of truth: an uncapped emulator (same config, same ids).
    let free = T::start(capped_scale(MB3, None)).await;
    let run = free.json("/crawlruns/").await[0]["guid"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/crawlruns/{run}/csv");
    let (st, whole, _) = timed(&free.c, &free.u(&path), None).await;
    assert_eq!((st, whole.len() as u64), (StatusCode::OK, MB3));

    // 3 MB at 2 MB/s: at least ~1.5 s; the same bytes.
    let t = T::start(capped_scale(MB3, Some(RATE))).await;
    let (st, body, took) = timed(&t.c, &t.u(&path), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(took >= Duration::from_millis(1200), "3 MB in {took:?}");
    assert!(body == whole, "capped bytes differ");
    let h = t.req(Method::HEAD, &path).await;
    assert_eq!(h.headers()["content-length"], MB3.to_string().as_str());

    // Two ranged halves in parallel, two connections: each capped on its own.
    let half = MB3 / 2;
    let first = format!("bytes=0-{}", half - 1);
    let second = format!("bytes={half}-");
    let url = t.u(&path);
    let (a, b) = tokio::join!(
        timed(&t.c, &url, Some(&first)),
        timed(&t.c, &url, Some(&second))
    );
    for (part, (st, bytes, took), range) in [
        (&whole[..half as usize], a, &first),
        (&whole[half as usize..], b, &second),
    ] {
        assert_eq!(st, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(bytes == part, "{range}: wrong bytes");
        assert!(took >= Duration::from_millis(600), "{range} in {took:?}");
    }

    // The files listener of the legacy dialect is capped too.
    let legacy = T::start(Config {
        dialect: Dialect::Legacy,
        ..capped_scale(MB3, Some(RATE))
    })
    .await;
    let r = legacy.get(&path).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    let (st, bytes, took) = timed(&legacy.c, &loc, Some("bytes=0-999999")).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert!(bytes == whole[..1_000_000], "files listener bytes");
    assert!(took >= Duration::from_millis(400), "1 MB in {took:?}");
    legacy.emu.shutdown().await;

    // A fault's bytes_per_sec overrides the config's cap for what it matches.
    assert_eq!(
        post_fault(
            &t,
            json!({"operation": "getCrawlrunFile", "bytes_per_sec": 500_000})
        )
        .await,
        StatusCode::OK
    );
    let (st, bytes, took) = timed(&t.c, &t.u(&path), Some("bytes=0-299999")).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert!(bytes == whole[..300_000]);
    assert!(took >= Duration::from_millis(450), "300 kB in {took:?}");
    t.emu.shutdown().await;

    // On an uncapped emulator a fault posted at runtime caps downloads, and
    // DELETE removes it.
    assert_eq!(
        post_fault(
            &free,
            json!([{"operation": "getCrawlrunFile", "bytes_per_sec": RATE}])
        )
        .await,
        StatusCode::OK
    );
    let listed: Value = free
        .hook(Method::GET, "/faults", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["bytes_per_sec"], json!(RATE));
    let (st, bytes, took) = timed(&free.c, &free.u(&path), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(bytes == whole, "faulted bytes differ");
    assert!(took >= Duration::from_millis(1200), "3 MB in {took:?}");
    assert_eq!(
        free.hook(Method::DELETE, "/faults", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let listed: Value = free
        .hook(Method::GET, "/faults", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed, json!([]));
    let (st, bytes, _) = timed(&free.c, &free.u(&path), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(bytes == whole);

    // Bad values: 0, negative, not a number, not an integer.
    for bad in [json!(0), json!(-1), json!("fast"), json!(1.5)] {
        let body = json!({"operation": "getCrawlrunFile", "bytes_per_sec": bad});
        assert_eq!(
            post_fault(&free, body).await,
            StatusCode::BAD_REQUEST,
            "bytes_per_sec {bad}"
        );
    }
    let listed: Value = free
        .hook(Method::GET, "/faults", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed, json!([]), "a rejected fault is not kept");
    free.emu.shutdown().await;
}

#[tokio::test]
async fn hostile_ignore_range() {
    for dialect in [Dialect::Spec, Dialect::Legacy] {
        let t = T::start(Config {
            dialect,
            ..Config::default()
        })
        .await;
        let run = t.finished_run("BBC News").await;
        // Where the file is served: the API, or the files listener.
        let url = match dialect {
            Dialect::Spec => t.u(&format!("/crawlruns/{run}/csv")),
            Dialect::Legacy => {
                let r = t.get(&format!("/crawlruns/{run}/csv")).await;
                assert_eq!(r.status(), StatusCode::FOUND);
                r.headers()["location"].to_str().expect("loc").to_owned()
            }
        };
        let whole = t.c.get(&url).send().await.expect("GET");
        let whole = whole.bytes().await.expect("body");
        let len = whole.len();
        assert!(len > 20);
        let etag = t.c.head(&url).send().await.expect("HEAD").headers()["etag"].clone();
        let ranged = |if_range: bool| {
            let mut rb = t.c.get(&url).header("range", "bytes=10-19");
            if if_range {
                rb = rb.header("if-range", etag.clone());
            }
            async move { rb.send().await.expect("range") }
        };

        let r = t
            .hook(
                Method::POST,
                "/hostile",
                Some(json!({"ignore_range": true})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let shown: Value = r.json().await.expect("json");
        assert_eq!(shown["ignore_range"], json!(true));
        for if_range in [false, true] {
            let r = ranged(if_range).await;
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "{dialect:?} if-range {if_range}"
            );
            assert!(r.headers().get("content-range").is_none());
            assert_eq!(r.headers()["content-length"], len.to_string().as_str());
            assert_eq!(r.bytes().await.expect("body"), whole);
        }
        // HEAD answers as without the mode.
        let h =
            t.c.head(&url)
                .header("range", "bytes=10-19")
                .send()
                .await
                .expect("HEAD");
        assert_eq!(h.status(), StatusCode::PARTIAL_CONTENT);

        // Off again: 206 with the slice.
        let r = t.hook(Method::DELETE, "/hostile", None).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = ranged(true).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            r.headers()["content-range"].to_str().ok(),
            Some(format!("bytes 10-19/{len}").as_str())
        );
        assert_eq!(r.bytes().await.expect("part"), whole.slice(10..20));
        t.emu.shutdown().await;
    }
}
// ---------------------------------------------------------------------------
// What clients in the wild meet: GET /extractors/{id}/crawlruns, runs that
// appear late, pages that repeat.

/// The body and X-Total-Count of a list answer.
async fn page_and_total(t: &T, path: &str) -> (Value, String) {
    let r = t.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    let total = r.headers()["x-total-count"]
        .to_str()
        .expect("count")
        .to_owned();
    (r.json().await.expect("json"), total)
}

#[tokio::test]
async fn extractor_crawlruns_path_lists_like_the_filter() {
    for dialect in [Dialect::Spec, Dialect::Legacy] {
        let t = T::start(Config {
            dialect,
            dataset: Dataset::Scale,
            extractors: 3,
            crawlruns: 31,
            result_bytes: 1024,
            ..Config::default()
        })
        .await;
        let e = t.extractors().await[0]["guid"]
            .as_str()
            .expect("guid")
            .to_owned();
        let (all, total) = page_and_total(&t, &format!("/extractors/{e}/crawlruns")).await;
        let all = all.as_array().expect("array").clone();
        assert!(all.len() >= 10, "{dialect:?}: {} runs", all.len());
        assert_eq!(total, all.len().to_string());
        assert!(all.iter().all(|r| r["extractorId"] == json!(e)));
        // Newest first.
        let started: Vec<i64> = all
            .iter()
            .map(|r| match &r["startedAt"] {
                Value::Number(n) => n.as_i64().expect("ms"),
                Value::String(s) => humantime::parse_rfc3339(s)
                    .expect("iso")
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("after 1970")
                    .as_millis() as i64,
                other => panic!("startedAt {other}"),
            })
            .collect();
        assert!(started.windows(2).all(|w| w[0] >= w[1]), "{started:?}");
        // The same answers as the filtered listing, page for page.
        for q in [
            "",
            "_perpage=3",
            "_perpage=3&_page=2",
            "_perpage=4&_page=3&_sort=state&_sortDirection=ASC",
            "_sort=guid&_sortDirection=DESC&_perpage=5",
            "_page=99&_perpage=4",
        ] {
            let sep = if q.is_empty() { "" } else { "&" };
            let want = page_and_total(&t, &format!("/crawlruns/?extractorId={e}{sep}{q}")).await;
            for path in [
                format!("/extractors/{e}/crawlruns?{q}"),
                format!("/extractors/{e}/crawlruns/?{q}"),
            ] {
                assert_eq!(page_and_total(&t, &path).await, want, "{dialect:?} {path}");
            }
        }
        // Errors: unknown, archived, malformed, no key, wrong method.
        assert_error(
            t.get(&format!("/extractors/{MISSING}/crawlruns")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let archived = t.extractors().await[1]["guid"]
            .as_str()
            .expect("guid")
            .to_owned();
        let r = t
            .hook(
                Method::POST,
                &format!("/extractors/{archived}/archive"),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = assert_error(
            t.get(&format!("/extractors/{archived}/crawlruns")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert!(
            body["message"].as_str().unwrap_or("").contains("extractor"),
            "{body}"
        );
        assert_error(
            t.get("/extractors/not-a-guid/crawlruns").await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        for url in [
            format!("{}/extractors/{e}/crawlruns", t.emu.url()),
            format!(
                "{}/extractors/{e}/crawlruns?_apikey=wrong-{KEY}",
                t.emu.url()
            ),
        ] {
            let r = t.c.get(&url).send().await.expect("req");
            assert_error(r, StatusCode::UNAUTHORIZED).await;
        }
        let r = t
            .req(Method::POST, &format!("/extractors/{e}/crawlruns"))
            .await;
        assert_eq!(r.headers()["allow"], "GET, HEAD");
        assert_error(r, StatusCode::METHOD_NOT_ALLOWED).await;
        // The request log names the operation.
        t.emu.clear_requests();
        t.get(&format!("/extractors/{e}/crawlruns?_perpage=2"))
            .await;
        let log = t.emu.requests();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].operation, "listExtractorCrawlruns");
        assert_eq!(log[0].path, format!("/extractors/{e}/crawlruns"));
        assert_eq!(log[0].status, 200);
        // A fault makes a server of the seed spec, which lacks the path.
        t.emu.set_faults(vec![FaultSpec {
            operation: "listExtractorCrawlruns".into(),
            status: Some(404),
            ..Default::default()
        }]);
        assert_error(
            t.get(&format!("/extractors/{e}/crawlruns")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(
            t.get(&format!("/crawlruns/?extractorId={e}"))
                .await
                .status(),
            StatusCode::OK,
            "only that operation"
        );
        let r = t
            .hook(
                Method::POST,
                "/faults",
                Some(json!({"operation": "*", "status": 200})),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "status must be an error"
        );
        t.emu.shutdown().await;
    }
}

#[tokio::test]
async fn pages_past_the_end_repeat_the_last_one_in_the_legacy_dialect() {
    for (dialect, flag, repeats) in [
        (Dialect::Spec, None, false),
        (Dialect::Legacy, None, true),
        (Dialect::Spec, Some(true), true),
        (Dialect::Legacy, Some(false), false),
    ] {
        let t = T::start(Config {
            dialect,
            repeat_last_page: flag,
            ..Config::default()
        })
        .await;
        let n = t.extractors().await.len();
        assert!(n > 4 && n % 4 != 0, "{n} extractors");
        let last_page = n.div_ceil(4);
        let last = t
            .json(&format!("/extractors/?_perpage=4&_page={last_page}"))
            .await;
        assert_eq!(last.as_array().map(Vec::len), Some(n % 4));
        let (past, total) = page_and_total(
            &t,
            &format!("/extractors/?_perpage=4&_page={}", last_page + 1),
        )
        .await;
        assert_eq!(total, n.to_string(), "the count stays true");
        let far = t.json("/extractors/?_perpage=4&_page=999").await;
        if repeats {
            assert_eq!(past, last, "{dialect:?} {flag:?}");
            assert_eq!(far, last);
        } else {
            assert_eq!(past, json!([]), "{dialect:?} {flag:?}");
            assert_eq!(far, json!([]));
        }
        // A list with nothing in it is empty on every page.
        let r = t
            .hook(
                Method::POST,
                "/extractors",
                Some(json!({"name": "no runs", "inputs": ["https://n.example/"]})),
            )
            .await;
        let id = r.json::<Value>().await.expect("json")["guid"]
            .as_str()
            .expect("id")
            .to_owned();
        for page in [1, 2, 7] {
            assert_eq!(
                t.json(&format!("/extractors/{id}/crawlruns?_page={page}"))
                    .await,
                json!([])
            );
        }
        t.emu.shutdown().await;
    }
}

/// Poll `GET /crawlruns/{run}` until it answers 200; the statuses seen.
async fn until_known(t: &T, run: &str) -> Vec<StatusCode> {
    let mut seen = Vec::new();
    let guard = Instant::now() + Duration::from_secs(30);
    loop {
        let s = t.get(&format!("/crawlruns/{run}")).await.status();
        seen.push(s);
        if s == StatusCode::OK {
            return seen;
        }
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(Instant::now() < guard, "the run never became known");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start(t: &T, e: &str) -> String {
    let r = t.post(&format!("/extractors/{e}/start")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.expect("json")["crawlRunId"]
        .as_str()
        .expect("crawlRunId")
        .to_owned()
}

async fn listed(t: &T, path: &str, run: &str) -> bool {
    t.json(path)
        .await
        .as_array()
        .expect("array")
        .iter()
        .any(|r| r["guid"] == json!(run))
}

#[tokio::test]
async fn started_runs_are_unknown_for_a_while() {
    // Legacy: on by default, for LEGACY_NEW_RUN_404_MS.
    let t = T::start(Config {
        dialect: Dialect::Legacy,
        run_seconds: 60.0,
        ..Config::default()
    })
    .await;
    let e = t.extractor_named("Zillow").await;
    let t0 = Instant::now();
    let run = start(&t, &e).await;
    assert_error(
        t.get(&format!("/crawlruns/{run}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        t.get(&format!("/crawlruns/{run}/log")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for path in [
        format!("/crawlruns/?extractorId={e}"),
        format!("/extractors/{e}/crawlruns"),
        "/crawlruns/?_perpage=1000".to_owned(),
    ] {
        assert!(!listed(&t, &path, &run).await, "{path} lists it at once");
    }
    // The service knows it is running, though.
    assert_error(
        t.post(&format!("/extractors/{e}/start")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let seen = until_known(&t, &run).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(importfs::emulator::LEGACY_NEW_RUN_404_MS),
        "known after {:?}",
        t0.elapsed()
    );
    assert!(seen.len() > 1, "{seen:?}");
    assert!(listed(&t, &format!("/extractors/{e}/crawlruns"), &run).await);
    assert!(listed(&t, &format!("/crawlruns/?extractorId={e}"), &run).await);
    // Runs made by a hook are known at once.
    let r = t
        .hook(
            Method::POST,
            "/crawlruns",
            Some(json!({"extractorId": e, "state": "FINISHED"})),
        )
        .await;
    let hooked = r.json::<Value>().await.expect("json")["guid"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        t.get(&format!("/crawlruns/{hooked}")).await.status(),
        StatusCode::OK
    );
    // A fault of 0 turns it off for the operations it covers.
    t.emu.set_faults(vec![FaultSpec {
        operation: "*".into(),
        new_run_404_ms: Some(0),
        ..Default::default()
    }]);
    let other = t.extractor_named("IMDb").await;
    let run2 = start(&t, &other).await;
    assert_eq!(
        t.get(&format!("/crawlruns/{run2}")).await.status(),
        StatusCode::OK
    );
    t.emu.shutdown().await;

    // Spec: off by default; a fault for getCrawlrun alone hides the run from
    // that operation only; the config knob turns it on for every one.
    let t = T::start(Config {
        run_seconds: 60.0,
        ..Config::default()
    })
    .await;
    let e = t.extractor_named("Zillow").await;
    let run = start(&t, &e).await;
    assert_eq!(
        t.get(&format!("/crawlruns/{run}")).await.status(),
        StatusCode::OK
    );
    let r = t
        .hook(
            Method::POST,
            "/faults",
            Some(json!({"operation": "getCrawlrun", "new_run_404_ms": 60000})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let other = t.extractor_named("IMDb").await;
    let run2 = start(&t, &other).await;
    assert_error(
        t.get(&format!("/crawlruns/{run2}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(listed(&t, &format!("/extractors/{other}/crawlruns"), &run2).await);
    t.emu.shutdown().await;

    let t = T::start(Config {
        run_seconds: 60.0,
        new_run_404_ms: Some(300),
        ..Config::default()
    })
    .await;
    let e = t.extractor_named("Zillow").await;
    let t0 = Instant::now();
    let run = start(&t, &e).await;
    assert!(!listed(&t, &format!("/extractors/{e}/crawlruns"), &run).await);
    until_known(&t, &run).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    t.emu.shutdown().await;
}
