//! A model test: random sequences of remote changes (through the emulator's
//! hooks: add, rename and archive extractors, new runs, runs that finish or
//! fail, inputs changed elsewhere, report runs that finish) and local
//! operations through a real mount (`ls`, `cat`, writing `inputs`,
//! `touch start` of an extractor or a report, `touch .importfs/refresh`),
//! checked against a plain model of the account.
//!
//! The model is the account as the API should show it: live extractors with
//! their names, inputs and runs, and each run's state. Names are the one
//! thing that depends on history (a name once given stays with its object),
//! so the model keeps its own [`NameTable`] and feeds it exactly the
//! listings the mount sees: after a remote change, before any local
//! operation, the test touches `.importfs/refresh` and lists `extractors/`
//! (a *sync*), so the mount never lists an account state the model did not
//! also name. At the end of each case (and at `Wait` steps) nothing is
//! refreshed: the test waits out the metadata TTL (`--metadata-ttl 1s`) and
//! the kernel's entry TTL, then checks that the mount shows exactly the
//! model: the extractor directory names, the guid behind each, its inputs,
//! its runs under `crawlruns/` and every run's `state`; the report directory
//! names, each report's runs under `reportruns/` and `latest`, and each
//! report run's status and files (data only once finished, `data.json` only
//! for a Change report).
//!
//! Reports come from the demo dataset and are never added or removed; their
//! runs accumulate across cases, so each case reads them from the API.
//!
//! One emulator and one mount serve every case (and every shrink step): each
//! case begins by archiving whatever extractors the account has, which also
//! releases their names. Runs never finish on their own (`run_seconds` is
//! huge), so states change only through the model's own steps.
//!
//! The same model and steps run against two targets ("one test body, two
//! targets", as mountpoint-s3's test matrix and rclone's vfstest do): the real
//! mount, through syscalls and shell tools, and the kernel-free core
//! (`importfs::fs::core::Fs`), through the calls the fuser adapter makes. A
//! [`Target`] is what the checks do to either; the core's waits are its
//! metadata TTL only, since it has no kernel cache.
//!
//! `IMPORTFS_MODEL_SEED=<n>` replays a run; `IMPORTFS_MODEL_CASES=<n>` runs
//! more cases.

mod common;

use common::core_fs::Core;
use common::*;
use importfs::emulator::Config;
use importfs::fs::core::FsConfig;
use importfs::fs::names::NameTable;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PtConfig, RngSeed, TestError, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Longer than the metadata TTL (1 s) and the kernel's entry TTL (1 s).
const PAST_TTL: Duration = Duration::from_millis(1400);

/// The core target's metadata TTL: it has no kernel TTL to wait out.
const CORE_TTL: Duration = Duration::from_millis(500);

/// Names that collide, need making safe, or both.
fn name_pool() -> Vec<String> {
    vec![
        "Shop".into(),
        "News".into(),
        "a/b".into(),
        "a\u{2215}b".into(),
        "".into(),
        "..".into(),
        "nul\u{0}x".into(),
        "nulx".into(),
        "x".repeat(300),
        format!("{}y", "x".repeat(299)),
    ]
}

/// The inputs numbered `n`: 0 to 3 URLs.
fn inputs_of(n: u8) -> Vec<String> {
    (0..n % 4)
        .map(|i| format!("https://site{n}.example.com/page/{i}"))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Pending,
    Started,
    Finished,
    Failed,
}

impl St {
    fn as_str(self) -> &'static str {
        match self {
            St::Pending => "PENDING",
            St::Started => "STARTED",
            St::Finished => "FINISHED",
            St::Failed => "FAILED",
        }
    }
    fn is_final(self) -> bool {
        matches!(self, St::Finished | St::Failed)
    }
}

#[derive(Debug, Clone)]
enum Op {
    // Remote changes, through the emulator.
    Add {
        name: usize,
        inputs: u8,
    },
    Rename {
        ext: Index,
        name: usize,
    },
    Archive {
        ext: Index,
    },
    NewRun {
        ext: Index,
        state: St,
    },
    FinishRun {
        run: Index,
    },
    FailRun {
        run: Index,
    },
    RemoteInputs {
        ext: Index,
        inputs: u8,
    },
    // Local operations, through the mount.
    LsRuns {
        ext: Index,
    },
    Cat {
        ext: Index,
    },
    CatState {
        run: Index,
    },
    WriteInputs {
        ext: Index,
        inputs: u8,
    },
    TouchStart {
        ext: Index,
    },
    /// `touch reports/<name>/start`: one POST, one new report run.
    StartReport {
        rep: Index,
    },
    /// A report run that is not finished yet finishes (remote).
    FinishReportRun {
        run: Index,
    },
    Refresh,
    /// Wait out the TTLs and check everything, as at the end of a case.
    Wait,
}

fn op_strategy(names: usize) -> impl Strategy<Value = Op> {
    let state = prop_oneof![
        Just(St::Pending),
        Just(St::Started),
        Just(St::Finished),
        Just(St::Failed)
    ];
    prop_oneof![
        3 => add_strategy(names),
        2 => (any::<Index>(), 0..names).prop_map(|(ext, name)| Op::Rename { ext, name }),
        1 => any::<Index>().prop_map(|ext| Op::Archive { ext }),
        3 => (any::<Index>(), state).prop_map(|(ext, state)| Op::NewRun { ext, state }),
        2 => any::<Index>().prop_map(|run| Op::FinishRun { run }),
        2 => any::<Index>().prop_map(|run| Op::FailRun { run }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(ext, inputs)| Op::RemoteInputs { ext, inputs }),
        1 => any::<Index>().prop_map(|ext| Op::LsRuns { ext }),
        2 => any::<Index>().prop_map(|ext| Op::Cat { ext }),
        1 => any::<Index>().prop_map(|run| Op::CatState { run }),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(ext, inputs)| Op::WriteInputs { ext, inputs }),
        2 => any::<Index>().prop_map(|ext| Op::TouchStart { ext }),
        2 => any::<Index>().prop_map(|rep| Op::StartReport { rep }),
        2 => any::<Index>().prop_map(|run| Op::FinishReportRun { run }),
        1 => Just(Op::Refresh),
        1 => Just(Op::Wait),
    ]
}

fn add_strategy(names: usize) -> impl Strategy<Value = Op> {
    (0..names, any::<u8>()).prop_map(|(name, inputs)| Op::Add { name, inputs })
}

/// 5 to 15 steps, the first one to three of them adding extractors, so that
/// the rest have something to act on.
fn steps_strategy(names: usize) -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(add_strategy(names), 1..=3),
        proptest::collection::vec(op_strategy(names), 4..=12),
    )
        .prop_map(|(mut adds, ops)| {
            adds.extend(ops);
            adds
        })
}

#[derive(Debug, Clone)]
struct ExtM {
    name: String,
    inputs: Vec<String>,
    runs: BTreeMap<String, St>,
}

/// A report: its name, whether it is a Change report, and its runs'
/// statuses by guid.
#[derive(Debug, Clone)]
struct RepM {
    name: String,
    change: bool,
    runs: BTreeMap<String, String>,
}

/// The account as the mount should show it.
#[derive(Default)]
struct Model {
    exts: BTreeMap<String, ExtM>,
    names: NameTable,
    reports: BTreeMap<String, RepM>,
    report_names: NameTable,
    /// A remote change the mount has not been made to see yet.
    dirty: bool,
}

impl Model {
    fn pick_ext(&self, i: &Index) -> Option<String> {
        if self.exts.is_empty() {
            return None;
        }
        self.exts.keys().nth(i.index(self.exts.len())).cloned()
    }

    /// Runs of live extractors, optionally only those not final yet.
    fn runs(&self, open_only: bool) -> Vec<(String, String)> {
        self.exts
            .iter()
            .flat_map(|(g, e)| {
                e.runs
                    .iter()
                    .filter(move |(_, s)| !open_only || !s.is_final())
                    .map(move |(r, _)| (g.clone(), r.clone()))
            })
            .collect()
    }

    fn pick_run(&self, i: &Index, open_only: bool) -> Option<(String, String)> {
        let runs = self.runs(open_only);
        (!runs.is_empty()).then(|| runs[i.index(runs.len())].clone())
    }

    /// Name the reports as the mount does on a listing.
    fn listed_reports(&mut self) -> BTreeMap<String, String> {
        self.report_names.update(
            self.reports
                .iter()
                .map(|(g, r)| (g.as_str(), r.name.as_str())),
        );
        self.reports
            .keys()
            .map(|g| {
                let name = self.report_names.name_of(g).expect("named");
                (name.to_owned(), g.clone())
            })
            .collect()
    }

    /// Name the live extractors as the mount does on a listing.
    fn listed(&mut self) -> BTreeMap<String, String> {
        self.names
            .update(self.exts.iter().map(|(g, e)| (g.as_str(), e.name.as_str())));
        self.exts
            .keys()
            .map(|g| (self.names.name_of(g).expect("named").to_owned(), g.clone()))
            .collect()
    }
}

/// The filesystem under test: what the steps and checks do to it.
trait Target {
    /// The names in a directory.
    fn list(&self, rel: &str) -> BTreeSet<String>;
    /// A file's content.
    fn read(&self, rel: &str) -> String;
    /// A symlink's target, or why it cannot be read.
    fn read_link(&self, rel: &str) -> Result<String, String>;
    /// `printf '%s\n' <lines> > rel`.
    fn write_lines(&self, rel: &str, lines: &[String]);
    /// `touch rel`: the error, as `touch` says it, when it fails.
    fn touch(&self, rel: &str) -> Result<(), String>;
    /// Wait until nothing cached (by the mount or the kernel) is trusted.
    fn wait_past_ttl(&self);
    /// What to show of the target when a case fails.
    fn log_tail(&self) -> String;
}

impl Target for Mounted {
    fn list(&self, rel: &str) -> BTreeSet<String> {
        std::fs::read_dir(self.path(rel))
            .unwrap_or_else(|err| panic!("ls {rel}: {err}"))
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| {
            panic!(
                "read {rel:?}: {e}\nlog tail:\n{}",
                tail(&self.log_text(), 30)
            )
        })
    }

    fn read_link(&self, rel: &str) -> Result<String, String> {
        std::fs::read_link(self.path(rel))
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|e| e.to_string())
    }

    fn write_lines(&self, rel: &str, lines: &[String]) {
        // printf with no URL writes one blank line: no URLs.
        let quoted: Vec<String> = lines.iter().map(|u| format!("'{u}'")).collect();
        self.sh_ok(&format!("printf '%s\\n' {} > {rel}", quoted.join(" ")));
    }

    fn touch(&self, rel: &str) -> Result<(), String> {
        let out = std::process::Command::new("touch")
            .arg(self.path(rel))
            .output()
            .expect("touch");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn wait_past_ttl(&self) {
        std::thread::sleep(PAST_TTL);
    }

    fn log_tail(&self) -> String {
        tail(&self.log_text(), 40)
    }
}

/// The core through the adapter's calls; an error is shown as `touch` or
/// `cat` would show its errno.
impl Target for Core {
    fn list(&self, rel: &str) -> BTreeSet<String> {
        self.ls(rel).into_iter().collect()
    }

    fn read(&self, rel: &str) -> String {
        String::from_utf8(self.cat(rel)).expect("UTF-8")
    }

    fn read_link(&self, rel: &str) -> Result<String, String> {
        self.readlink(rel).map_err(|e| e.to_string())
    }

    fn write_lines(&self, rel: &str, lines: &[String]) {
        let mut text: String = lines.iter().map(|u| format!("{u}\n")).collect();
        if text.is_empty() {
            text.push('\n');
        }
        self.write_file(rel, text.as_bytes())
            .unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    fn touch(&self, rel: &str) -> Result<(), String> {
        // As touch(1) says it: the errno's text, then what the mount said.
        Core::touch(self, rel).map_err(|e| {
            let errno = std::io::Error::from_raw_os_error(e.errno);
            format!("touch {rel}: {errno}: {e}")
        })
    }

    fn wait_past_ttl(&self) {
        std::thread::sleep(self.fs.cfg.metadata_ttl + Duration::from_millis(100));
    }

    fn log_tail(&self) -> String {
        self.fs.render_stats()
    }
}

struct World<'a> {
    emu: &'a Emu,
    t: &'a dyn Target,
    pool: Vec<String>,
    /// How many steps of each kind had something to act on.
    applied: std::cell::RefCell<BTreeMap<&'static str, usize>>,
}

impl World<'_> {
    fn hook(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.emu.hook(method, path, body)
    }

    /// The extractor directory names, sorted.
    fn read_names(&self) -> Vec<String> {
        self.t.list("extractors").into_iter().collect()
    }

    fn read(&self, rel: &str) -> String {
        self.t.read(rel)
    }

    /// Make the mount see the account as it is now, and name it as it does.
    fn sync(&self, model: &mut Model) {
        let out = self.t.touch(".importfs/refresh");
        assert!(out.is_ok(), "touch refresh: {out:?}");
        let names = self.read_names();
        let want: Vec<String> = model.listed().into_keys().collect();
        assert_eq!(names, want, "extractors/ right after a refresh");
        model.dirty = false;
    }

    /// One extractor's directory against the model.
    fn check_extractor(&self, dir: &str, guid: &str, e: &ExtM) {
        let v: Value = serde_json::from_str(&self.read(&format!("{dir}/extractor.json")))
            .expect("extractor.json is JSON");
        assert_eq!(v["guid"], guid, "{dir}/extractor.json");
        assert_eq!(v["name"], e.name.as_str(), "{dir}/extractor.json");
        let mut inputs = String::new();
        for u in &e.inputs {
            inputs.push_str(u);
            inputs.push('\n');
        }
        assert_eq!(self.read(&format!("{dir}/inputs")), inputs, "{dir}/inputs");
        let runs = self.list(&format!("{dir}/crawlruns"));
        let want: BTreeSet<String> = e.runs.keys().cloned().collect();
        assert_eq!(runs, want, "{dir}/crawlruns");
        for (r, st) in &e.runs {
            let got = self.read(&format!("{dir}/crawlruns/{r}/state"));
            assert_eq!(
                got,
                format!("{}\n", st.as_str()),
                "{dir}/crawlruns/{r}/state"
            );
        }
        let latest = self.t.read_link(&format!("{dir}/latest"));
        match latest {
            Ok(t) => {
                let id = t.rsplit('/').next().unwrap_or("");
                assert!(e.runs.contains_key(id), "{dir}/latest → {t}");
            }
            Err(err) => assert!(e.runs.is_empty(), "{dir}/latest: {err}"),
        }
    }

    /// Past the TTLs, with no refresh: the mount shows exactly the model.
    fn check_all(&self, model: &mut Model) {
        self.t.wait_past_ttl();
        let names = self.read_names();
        let want = model.listed();
        assert_eq!(
            names,
            want.keys().cloned().collect::<Vec<_>>(),
            "extractors/ after the TTL"
        );
        for (name, g) in &want {
            self.check_extractor(&format!("extractors/{name}"), g, &model.exts[g]);
        }
        let reports = model.listed_reports();
        assert_eq!(
            self.list("reports"),
            reports.keys().cloned().collect::<BTreeSet<_>>(),
            "reports/ after the TTL"
        );
        for (name, g) in &reports {
            self.check_report(&format!("reports/{name}"), &model.reports[g]);
        }
        model.dirty = false;
    }

    /// The names in a directory of the mount.
    fn list(&self, rel: &str) -> BTreeSet<String> {
        self.t.list(rel)
    }

    /// One report's directory, and each of its runs, against the model.
    fn check_report(&self, dir: &str, r: &RepM) {
        let want: BTreeSet<String> = r.runs.keys().cloned().collect();
        assert_eq!(
            self.list(&format!("{dir}/reportruns")),
            want,
            "{dir}/reportruns"
        );
        match self.t.read_link(&format!("{dir}/latest")) {
            Ok(t) => {
                let id = t.rsplit('/').next().unwrap_or("");
                assert!(r.runs.contains_key(id), "{dir}/latest → {t}");
            }
            Err(err) => assert!(r.runs.is_empty(), "{dir}/latest: {err}"),
        }
        for (id, status) in &r.runs {
            let run = format!("reportruns/{id}");
            let v: Value = serde_json::from_str(&self.read(&format!("{run}/reportrun.json")))
                .expect("reportrun.json is JSON");
            assert_eq!(v["status"], status.as_str(), "{run}/reportrun.json");
            let mut files = BTreeSet::from(["reportrun.json".to_owned()]);
            if status == "FINISHED" {
                files.insert("data.csv".into());
                files.insert("data.xlsx".into());
                if r.change {
                    files.insert("data.json".into());
                }
            }
            assert_eq!(self.list(&run), files, "{run} ({status})");
        }
    }

    /// The reports and their runs as the API has them now.
    fn load_reports(&self, model: &mut Model) {
        model.reports.clear();
        let reports = self.emu.get_json("/reports/?_perpage=1000");
        for r in reports.as_array().expect("a list") {
            let g = r["guid"].as_str().expect("guid").to_owned();
            let runs = self
                .emu
                .get_json(&format!("/reports/{g}/reportruns?_perpage=1000"));
            let runs = runs
                .as_array()
                .expect("a list")
                .iter()
                .map(|rr| {
                    let id = rr["guid"].as_str().expect("guid").to_owned();
                    (id, rr["status"].as_str().unwrap_or("").to_owned())
                })
                .collect();
            let kind = r["type"].as_str().unwrap_or("");
            model.reports.insert(
                g,
                RepM {
                    name: r["name"].as_str().unwrap_or("").to_owned(),
                    change: kind.eq_ignore_ascii_case("change"),
                    runs,
                },
            );
        }
    }

    /// Archive every live extractor: an empty account, all names released.
    fn reset(&self) -> Model {
        let live = self.emu.get_json("/extractors/?_perpage=1000");
        for e in live.as_array().expect("a list") {
            let g = e["guid"].as_str().expect("guid");
            self.hook(
                Method::POST,
                &format!("/_emulator/extractors/{g}/archive"),
                None,
            );
        }
        let mut model = Model::default();
        self.load_reports(&mut model);
        self.sync(&mut model);
        model
    }

    fn apply(&self, model: &mut Model, op: &Op) {
        if self.apply_one(model, op) {
            let kind = match op {
                Op::Add { .. } => "add",
                Op::Rename { .. } => "rename",
                Op::Archive { .. } => "archive",
                Op::NewRun { .. } => "new run",
                Op::FinishRun { .. } => "finish run",
                Op::FailRun { .. } => "fail run",
                Op::RemoteInputs { .. } => "remote inputs",
                Op::LsRuns { .. } => "ls runs",
                Op::Cat { .. } => "cat",
                Op::CatState { .. } => "cat state",
                Op::WriteInputs { .. } => "write inputs",
                Op::TouchStart { .. } => "touch start",
                Op::StartReport { .. } => "start report",
                Op::FinishReportRun { .. } => "finish report run",
                Op::Refresh => "refresh",
                Op::Wait => "wait",
            };
            *self.applied.borrow_mut().entry(kind).or_default() += 1;
        }
    }

    /// Apply one step; false when it had nothing to act on.
    fn apply_one(&self, model: &mut Model, op: &Op) -> bool {
        match op {
            Op::Add { name, inputs } => {
                let name = &self.pool[*name];
                let inputs = inputs_of(*inputs);
                let e = self.hook(
                    Method::POST,
                    "/_emulator/extractors",
                    Some(json!({"name": name, "inputs": inputs})),
                );
                let g = e["guid"].as_str().expect("guid").to_owned();
                model.exts.insert(
                    g,
                    ExtM {
                        name: name.clone(),
                        inputs,
                        runs: BTreeMap::new(),
                    },
                );
                model.dirty = true;
            }
            Op::Rename { ext, name } => {
                let Some(g) = model.pick_ext(ext) else {
                    return false;
                };
                let name = &self.pool[*name];
                self.hook(
                    Method::POST,
                    &format!("/_emulator/extractors/{g}/rename"),
                    Some(json!({ "name": name })),
                );
                model.exts.get_mut(&g).unwrap().name = name.clone();
                model.dirty = true;
            }
            Op::Archive { ext } => {
                let Some(g) = model.pick_ext(ext) else {
                    return false;
                };
                self.hook(
                    Method::POST,
                    &format!("/_emulator/extractors/{g}/archive"),
                    None,
                );
                model.exts.remove(&g);
                model.dirty = true;
            }
            Op::NewRun { ext, state } => {
                let Some(g) = model.pick_ext(ext) else {
                    return false;
                };
                let r = self.hook(
                    Method::POST,
                    "/_emulator/crawlruns",
                    Some(json!({"extractorId": g, "state": state.as_str()})),
                );
                assert_eq!(r["state"], state.as_str());
                let id = r["guid"].as_str().expect("guid").to_owned();
                model.exts.get_mut(&g).unwrap().runs.insert(id, *state);
                model.dirty = true;
            }
            Op::FinishRun { run } | Op::FailRun { run } => {
                let Some((g, r)) = model.pick_run(run, true) else {
                    return false;
                };
                let (action, st) = match op {
                    Op::FinishRun { .. } => ("finish", St::Finished),
                    _ => ("fail", St::Failed),
                };
                self.hook(
                    Method::POST,
                    &format!("/_emulator/crawlruns/{r}/{action}"),
                    None,
                );
                model.exts.get_mut(&g).unwrap().runs.insert(r, st);
                model.dirty = true;
            }
            Op::RemoteInputs { ext, inputs } => {
                let Some(g) = model.pick_ext(ext) else {
                    return false;
                };
                let inputs = inputs_of(*inputs);
                let url = format!("{}/extractors/{g}/inputs?_apikey={KEY}", self.emu.url);
                let body = json!({"_url": inputs.join("\n")});
                let status = self.emu.rt.block_on(async {
                    self.emu
                        .http
                        .put(&url)
                        .json(&body)
                        .send()
                        .await
                        .expect("PUT inputs")
                        .status()
                });
                assert!(status.is_success(), "PUT inputs: {status}");
                model.exts.get_mut(&g).unwrap().inputs = inputs;
                model.dirty = true;
            }
            Op::LsRuns { ext } => {
                let Some(g) = self.local(model, ext) else {
                    return false;
                };
                let runs = self.list(&format!("extractors/{g}/crawlruns"));
                let want: BTreeSet<String> = model.exts[&g].runs.keys().cloned().collect();
                assert_eq!(runs, want, "ls extractors/{g}/crawlruns");
            }
            Op::Cat { ext } => {
                let Some(g) = self.local(model, ext) else {
                    return false;
                };
                // By guid, which the kernel never confuses with another
                // object; by name is checked after the TTL.
                self.check_extractor(&format!("extractors/{g}"), &g, &model.exts[&g]);
            }
            Op::CatState { run } => {
                if model.dirty {
                    self.sync(model);
                }
                let Some((g, r)) = model.pick_run(run, false) else {
                    return false;
                };
                let st = model.exts[&g].runs[&r];
                assert_eq!(
                    self.read(&format!("crawlruns/{r}/state")),
                    format!("{}\n", st.as_str()),
                    "crawlruns/{r}/state"
                );
            }
            Op::WriteInputs { ext, inputs } => {
                let Some(g) = self.local(model, ext) else {
                    return false;
                };
                let inputs = inputs_of(*inputs);
                let before = self.emu.count("PUT", &format!("/extractors/{g}/inputs"));
                self.t
                    .write_lines(&format!("extractors/{g}/inputs"), &inputs);
                let after = self.emu.count("PUT", &format!("/extractors/{g}/inputs"));
                assert_eq!(after - before, 1, "one write, one PUT");
                model.exts.get_mut(&g).unwrap().inputs = inputs;
            }
            Op::TouchStart { ext } => {
                let Some(g) = self.local(model, ext) else {
                    return false;
                };
                let busy = model.exts[&g].runs.values().any(|s| !s.is_final());
                let posts = || self.emu.count("POST", &format!("/extractors/{g}/start"));
                let before = posts();
                let out = self.t.touch(&format!("extractors/{g}/start"));
                assert_eq!(posts() - before, 1, "one touch, one POST");
                if busy {
                    let err = out.expect_err("a start while a run is open");
                    assert!(err.contains("busy"), "EBUSY: {err}");
                    return true;
                }
                assert!(out.is_ok(), "touch start: {out:?}");
                let new = self.one_new(
                    &format!("/crawlruns/?extractorId={g}&_perpage=1000"),
                    &model.exts[&g].runs,
                );
                assert_eq!(new["state"], "PENDING");
                let id = new["guid"].as_str().unwrap().to_owned();
                model.exts.get_mut(&g).unwrap().runs.insert(id, St::Pending);
                model.dirty = true;
            }
            Op::StartReport { rep } => {
                if model.reports.is_empty() {
                    return false;
                }
                let g = model
                    .reports
                    .keys()
                    .nth(rep.index(model.reports.len()))
                    .unwrap()
                    .clone();
                let name = model
                    .listed_reports()
                    .into_iter()
                    .find(|(_, id)| *id == g)
                    .unwrap()
                    .0;
                let posts = || self.emu.count("POST", &format!("/reports/{g}/start"));
                let before = posts();
                let out = self.t.touch(&format!("reports/{name}/start"));
                assert!(out.is_ok(), "touch reports/{name}/start: {out:?}");
                assert_eq!(posts() - before, 1, "one touch, one POST");
                let new = self.one_new(
                    &format!("/reports/{g}/reportruns?_perpage=1000"),
                    &model.reports[&g].runs,
                );
                let id = new["guid"].as_str().unwrap().to_owned();
                let status = new["status"].as_str().unwrap_or("").to_owned();
                model.reports.get_mut(&g).unwrap().runs.insert(id, status);
            }
            Op::FinishReportRun { run } => {
                let open: Vec<(String, String)> = model
                    .reports
                    .iter()
                    .flat_map(|(g, r)| {
                        r.runs
                            .iter()
                            .filter(|(_, st)| st.as_str() != "FINISHED")
                            .map(move |(id, _)| (g.clone(), id.clone()))
                    })
                    .collect();
                if open.is_empty() {
                    return false;
                }
                let (g, id) = open[run.index(open.len())].clone();
                let rr = self.hook(
                    Method::POST,
                    &format!("/_emulator/reportruns/{id}/finish"),
                    None,
                );
                assert_eq!(rr["status"], "FINISHED");
                let st = model
                    .reports
                    .get_mut(&g)
                    .unwrap()
                    .runs
                    .get_mut(&id)
                    .unwrap();
                *st = "FINISHED".into();
            }
            Op::Refresh => self.sync(model),
            Op::Wait => self.check_all(model),
        }
        true
    }

    /// The one object of the API list at `path` whose guid is not in `known`.
    fn one_new<V>(&self, path: &str, known: &BTreeMap<String, V>) -> Value {
        let list = self.emu.get_json(path);
        let mut new: Vec<Value> = list
            .as_array()
            .expect("a list")
            .iter()
            .filter(|o| !known.contains_key(o["guid"].as_str().unwrap_or("")))
            .cloned()
            .collect();
        assert_eq!(new.len(), 1, "one new object in {path}: {new:?}");
        new.pop().unwrap()
    }

    /// An extractor for a local operation, after a sync if the account
    /// changed since the mount last looked.
    fn local(&self, model: &mut Model, ext: &Index) -> Option<String> {
        if model.dirty {
            self.sync(model);
        }
        model.pick_ext(ext)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Run the model's cases against `t`, over `emu`; `what` names the target.
fn run_cases(emu: &Emu, t: &dyn Target, what: &str) {
    let world = World {
        emu,
        t,
        pool: name_pool(),
        applied: Default::default(),
    };
    let cases = env_u64("IMPORTFS_MODEL_CASES").unwrap_or(10) as u32;
    let seed = env_u64("IMPORTFS_MODEL_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "model test of {what}: seed {seed} (IMPORTFS_MODEL_SEED={seed} replays it), {cases} cases"
    );
    let mut runner = TestRunner::new(PtConfig {
        cases,
        max_shrink_iters: 48,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..PtConfig::default()
    });
    let ops = steps_strategy(world.pool.len());
    let result = runner.run(&ops, |ops| {
        let mut model = world.reset();
        for op in &ops {
            world.apply(&mut model, op);
        }
        world.check_all(&mut model);
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => panic!(
            "seed {seed}: {what} differs from the model: {why}\nminimal steps: {ops:#?}\nlog tail:\n{}",
            t.log_tail()
        ),
        Err(e) => panic!("seed {seed}: {e}"),
    }
    eprintln!("steps applied: {:?}", world.applied.borrow());
}

/// Runs that never finish on their own: states change only through steps.
fn model_account() -> Config {
    Config {
        run_seconds: 1e7,
        ..Config::default()
    }
}

#[test]
fn the_mount_shows_exactly_the_model() {
    if !fuse_or_skip() {
        return;
    }
    let emu = Emu::start(model_account());
    let m = Mounted::new(&emu.url, &["--metadata-ttl", "1s"]);
    run_cases(&emu, &m, "the mount");
    let log = m.log_text();
    assert!(!log.contains("panicked"), "{}", tail(&log, 60));
}

/// The same cases through the core's calls, with no kernel.
#[test]
fn the_core_shows_exactly_the_model() {
    let core = Core::start(
        model_account(),
        FsConfig {
            metadata_ttl: CORE_TTL,
            ..FsConfig::default()
        },
    );
    run_cases(&core.emu, &core, "the core");
}
