//! The account held by the emulator: extractors, crawl runs, reports and
//! report runs, and how each is rendered as an API object in either dialect.
//!
//! Records are small: a run points at an `Arc<Spec>` (the extractor's fields
//! and inputs when the run started) instead of holding results, so 10 000
//! runs cost a few MB. Run states are derived from a [`Timeline`] and the
//! current time on every read. The whole account sits behind one std mutex
//! that is never held across an await or while generating a file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::config::Dialect;
use crate::api::models::{
    Crawlrun, Extractor, Meta, Report, ReportRun, RunState, Stamp, Subscription, User,
};

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn stamp(ms: i64, dialect: Dialect) -> Stamp {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    Stamp::from_system_time(t, dialect == Dialect::Legacy)
}

fn iso(ms: i64) -> Stamp {
    stamp(ms, Dialect::Spec)
}

/// A 64-bit FNV-1a hash finished with splitmix64: stable across runs and
/// platforms (unlike std's hasher), used for every derived id and value.
pub(crate) fn h64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A v4-shaped guid derived from a role and an index: the same on every start.
pub(crate) fn det_uuid(role: &str, n: u64) -> Uuid {
    let a = h64(&[b"importfs-emulator", role.as_bytes(), &n.to_le_bytes()]);
    let b = mix(a ^ 0x5555_5555_5555_5555);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// How a run's result files are made.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ResultKind {
    /// A few rows per input URL, values derived from the field names.
    Rows,
    /// Fixed-width rows filling `bytes` (scale dataset); `base` prefixes URLs.
    Fixed { bytes: u64, base: String },
}

/// What an extractor extracts: its fields and inputs. Shared, immutable: a
/// change makes a new `Arc`, so runs keep the version they started with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spec {
    pub fields: Vec<String>,
    pub inputs: Vec<String>,
    pub result: ResultKind,
}

#[derive(Clone, Debug)]
pub(crate) struct ExtractorRec {
    pub guid: Uuid,
    pub name: String,
    pub spec: Arc<Spec>,
    pub tags: Vec<String>,
    pub archived: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub credentials: Option<(String, String)>,
    pub credentials_id: Option<Uuid>,
}

/// When a run started and how it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeline {
    pub started_ms: i64,
    /// PENDING lasts this long after `started_ms`.
    pub pending_ms: i64,
    /// FINISHED this long after `started_ms`, unless forced first.
    pub duration_ms: i64,
    /// Set by stop and the finish/fail hooks: the final state and when.
    pub forced: Option<(RunState, i64)>,
}

/// A run's state at a given time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phase {
    pub state: RunState,
    /// Share of the work done, 0..=1: counts grow with it.
    pub done: f64,
    pub stopped_ms: Option<i64>,
    /// When the state last changed.
    pub changed_ms: i64,
}

impl Timeline {
    pub fn new(started_ms: i64, run_seconds: f64) -> Timeline {
        let duration_ms = (run_seconds.max(0.0) * 1000.0) as i64;
        Timeline {
            started_ms,
            pending_ms: duration_ms / 5,
            duration_ms,
            forced: None,
        }
    }

    fn natural(&self, at: i64) -> Phase {
        let elapsed = at - self.started_ms;
        if elapsed >= self.duration_ms {
            Phase {
                state: RunState::Finished,
                done: 1.0,
                stopped_ms: Some(self.started_ms + self.duration_ms),
                changed_ms: self.started_ms + self.duration_ms,
            }
        } else if elapsed < self.pending_ms {
            Phase {
                state: RunState::Pending,
                done: 0.0,
                stopped_ms: None,
                changed_ms: self.started_ms,
            }
        } else {
            let span = (self.duration_ms - self.pending_ms).max(1) as f64;
            Phase {
                state: RunState::Started,
                done: ((elapsed - self.pending_ms) as f64 / span).clamp(0.0, 1.0),
                stopped_ms: None,
                changed_ms: self.started_ms + self.pending_ms,
            }
        }
    }

    pub fn phase(&self, now: i64) -> Phase {
        match self.forced {
            Some((state, at)) => {
                let before = self.natural(at);
                Phase {
                    state,
                    done: if state == RunState::Finished {
                        1.0
                    } else {
                        before.done
                    },
                    stopped_ms: Some(at),
                    changed_ms: at,
                }
            }
            None => self.natural(now),
        }
    }

    pub fn force(&mut self, state: RunState, at: i64) {
        self.forced = Some((state, at));
    }
}

/// Totals of a finished run, computed once when the run is created.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub urls: u64,
    pub failed: u64,
    pub rows: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct RunRec {
    pub guid: Uuid,
    pub extractor: Uuid,
    pub spec: Arc<Spec>,
    pub timeline: Timeline,
    pub totals: Totals,
    /// Made by `POST .../start` (not by the dataset or a hook): only such
    /// runs can be unknown for a while after they started.
    pub from_start: bool,
}

impl RunRec {
    /// Whether the API does not know this run yet at `now`: it was made by a
    /// start less than `new_run_404_ms` ago (see `Config::new_run_404_ms`).
    pub fn unknown_yet(&self, now: i64, new_run_404_ms: u64) -> bool {
        self.from_start
            && now.saturating_sub(self.timeline.started_ms)
                < i64::try_from(new_run_404_ms).unwrap_or(i64::MAX)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ReportRec {
    pub guid: Uuid,
    pub name: String,
    pub kind: String,
    pub extractor: Uuid,
    pub config_id: Uuid,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub deleted: bool,
}

impl ReportRec {
    pub fn is_change(&self) -> bool {
        self.kind.eq_ignore_ascii_case("change") || self.kind.eq_ignore_ascii_case("CHANGE_REPORT")
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ReportRunRec {
    pub guid: Uuid,
    pub report: Uuid,
    pub extractor: Uuid,
    pub name: String,
    pub kind: String,
    pub change: bool,
    pub config_id: Uuid,
    pub spec: Arc<Spec>,
    pub timeline: Timeline,
    /// A status forced by `POST /_emulator/reportruns/{id}/status` that is
    /// not one of the run's own: the run shows it, with files whose bytes
    /// depend on it (partial results, to be replaced when it finishes).
    pub status_override: Option<String>,
}

/// A keyed collection that keeps insertion order and finds by guid.
#[derive(Debug)]
pub(crate) struct Table<T> {
    pub items: Vec<T>,
    index: HashMap<Uuid, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    pub fn insert(&mut self, id: Uuid, item: T) {
        match self.index.get(&id) {
            Some(&i) => self.items[i] = item,
            None => {
                self.index.insert(id, self.items.len());
                self.items.push(item);
            }
        }
    }
    pub fn get(&self, id: &Uuid) -> Option<&T> {
        self.index.get(id).and_then(|&i| self.items.get(i))
    }
    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut T> {
        match self.index.get(id) {
            Some(&i) => self.items.get_mut(i),
            None => None,
        }
    }
}

/// The whole account.
#[derive(Debug)]
pub(crate) struct Db {
    pub user_guid: Uuid,
    pub username: String,
    pub created_ms: i64,
    pub extractors: Table<ExtractorRec>,
    pub runs: Table<RunRec>,
    pub reports: Table<ReportRec>,
    pub report_runs: Table<ReportRunRec>,
}

impl Db {
    pub fn new(username: &str, created_ms: i64) -> Db {
        Db {
            user_guid: det_uuid("user", 0),
            username: username.to_owned(),
            created_ms,
            extractors: Table::default(),
            runs: Table::default(),
            reports: Table::default(),
            report_runs: Table::default(),
        }
    }

    /// An extractor the API still shows: archived ones answer 404 (their
    /// data and runs are kept, as the spec says, but DELETE hides them).
    pub fn live_extractor(&self, id: &Uuid) -> Option<&ExtractorRec> {
        self.extractors.get(id).filter(|e| !e.archived)
    }

    pub fn live_extractor_mut(&mut self, id: &Uuid) -> Option<&mut ExtractorRec> {
        self.extractors.get_mut(id).filter(|e| !e.archived)
    }

    /// The run of this extractor that is PENDING or STARTED now, if any.
    pub fn active_run(&self, extractor: &Uuid, now: i64) -> Option<Uuid> {
        self.runs
            .items
            .iter()
            .rev()
            .find(|r| &r.extractor == extractor && !r.timeline.phase(now).state.is_final())
            .map(|r| r.guid)
    }

    fn meta(&self, created: i64, modified: i64, dialect: Dialect) -> Meta {
        let owner = Some(self.user_guid.to_string());
        let mut m = Meta {
            owner_id: owner.clone(),
            creator_id: owner.clone(),
            editor_id: owner,
            ..Meta::default()
        };
        match dialect {
            Dialect::Spec => {
                m.created_at = Some(stamp(created, dialect));
                m.modified_at = Some(stamp(modified, dialect));
            }
            Dialect::Legacy => {
                m.creation_timestamp = Some(stamp(created, dialect));
                m.timestamp = Some(stamp(modified, dialect));
            }
        }
        m
    }

    pub fn user(&self, dialect: Dialect) -> User {
        User {
            guid: self.user_guid.to_string(),
            username: Some(self.username.clone()),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Some(format!("{}@example.com", self.username)),
            company: Some("Example Analytics Ltd".into()),
            roles: vec!["user".into(), "admin".into()],
            password_set_at: Some(iso(self.created_ms)),
            last_login_date_time: Some(iso(self.created_ms + 86_400_000)),
            login_attempts_left: Some(5),
            archived: false,
            meta: self.meta(self.created_ms, self.created_ms, dialect),
            extra: Map::new(),
        }
    }

    pub fn subscription(&self) -> Subscription {
        let mut overage = Map::new();
        overage.insert("enabled".into(), Value::Bool(false));
        overage.insert("rate".into(), json!(0));
        Subscription {
            user_id: Some(self.user_guid.to_string()),
            plan_code: Some("ENTERPRISE_2024".into()),
            current_usage: Some(self.runs.items.len() as i64),
            max_usage: Some(1_000_000),
            expiry_date: Some(iso(self.created_ms + 3 * 365 * 86_400_000)),
            next_billing_date: Some(iso(self.created_ms + 30 * 86_400_000)),
            auto_renew: true,
            trial: false,
            custom: false,
            features: vec![
                "API".into(),
                "SCHEDULING".into(),
                "AUTHENTICATED_EXTRACTION".into(),
                "REPORTS".into(),
            ],
            overage: Some(overage),
            extra: Map::new(),
        }
    }

    pub fn extractor(&self, e: &ExtractorRec, dialect: Dialect) -> Extractor {
        let fields = e
            .spec
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut m = Map::new();
                m.insert(
                    "id".into(),
                    Value::String(det_uuid(&format!("field:{}", e.guid), i as u64).to_string()),
                );
                m.insert("name".into(), Value::String(f.clone()));
                m.insert("type".into(), Value::String("TEXT".into()));
                m
            })
            .collect();
        Extractor {
            guid: e.guid.to_string(),
            name: e.name.clone(),
            fields,
            tags: e.tags.clone(),
            archived: e.archived,
            proxy: None,
            webhooks: Vec::new(),
            chaining_config: None,
            credentials_id: e.credentials_id.map(|u| u.to_string()),
            meta: self.meta(e.created_ms, e.modified_ms, dialect),
            extra: Map::new(),
        }
    }

    pub fn crawlrun(&self, r: &RunRec, now: i64, dialect: Dialect) -> Crawlrun {
        let p = r.timeline.phase(now);
        let scale = |n: u64| (n as f64 * p.done).floor() as i64;
        let ok = r.totals.urls.saturating_sub(r.totals.failed);
        let files = (p.state == RunState::Finished).then(|| {
            let mut m = Map::new();
            for ft in ["csv", "json", "xlsx", "log", "sample", "files"] {
                m.insert(
                    ft.into(),
                    Value::String(
                        det_uuid(&format!("file:{ft}"), r.guid.as_u64_pair().0).to_string(),
                    ),
                );
            }
            m
        });
        Crawlrun {
            guid: r.guid.to_string(),
            extractor_id: r.extractor.to_string(),
            state: p.state.as_str().to_owned(),
            started_at: Some(stamp(r.timeline.started_ms, dialect)),
            stopped_at: p.stopped_ms.map(|ms| stamp(ms, dialect)),
            total_url_count: Some(r.totals.urls as i64),
            success_url_count: Some(scale(ok)),
            failed_url_count: Some(scale(r.totals.failed)),
            row_count: Some(scale(r.totals.rows)),
            screen_capture_count: Some(0),
            html_extraction_count: Some(scale(ok)),
            files,
            webhooks: Vec::new(),
            meta: self.meta(r.timeline.started_ms, p.changed_ms, dialect),
            extra: Map::new(),
        }
    }

    pub fn report(&self, r: &ReportRec, dialect: Dialect) -> Report {
        Report {
            guid: r.guid.to_string(),
            name: r.name.clone(),
            kind: Some(r.kind.clone()),
            extractor_id: Some(r.extractor.to_string()),
            latest_config_id: Some(r.config_id.to_string()),
            archived: false,
            meta: self.meta(r.created_ms, r.modified_ms, dialect),
            extra: Map::new(),
        }
    }

    pub fn report_run(&self, r: &ReportRunRec, now: i64, dialect: Dialect) -> ReportRun {
        let p = r.timeline.phase(now);
        let done = p.state == RunState::Finished || r.status_override.is_some();
        let file = |ft: &str| {
            done.then(|| det_uuid(&format!("rfile:{ft}"), r.guid.as_u64_pair().0).to_string())
        };
        let mut inputs = Map::new();
        inputs.insert("_url".into(), Value::String(r.spec.inputs.join("\n")));
        let mut summary = Map::new();
        summary.insert("rows".into(), json!(r.spec.inputs.len() * 3));
        if r.change {
            summary.insert("added".into(), json!(r.spec.inputs.len()));
            summary.insert("removed".into(), json!(r.spec.inputs.len() / 2));
            summary.insert("changed".into(), json!(r.spec.inputs.len()));
        }
        ReportRun {
            guid: r.guid.to_string(),
            name: Some(r.name.clone()),
            kind: Some(r.kind.clone()),
            status: Some(
                r.status_override
                    .clone()
                    .unwrap_or_else(|| p.state.as_str().to_owned()),
            ),
            report_id: Some(r.report.to_string()),
            config_id: Some(r.config_id.to_string()),
            extractor_id: Some(r.extractor.to_string()),
            inputs: Some(inputs),
            csv: file("csv"),
            json: if r.change { file("json") } else { None },
            log: None,
            pdf: None,
            xlsx: file("xlsx"),
            summary: done.then_some(summary),
            error_message: None,
            archived: false,
            meta: self.meta(r.timeline.started_ms, p.changed_ms, dialect),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_moves_through_states() {
        let t = Timeline::new(1_000, 1.0);
        assert_eq!(t.phase(1_000).state, RunState::Pending);
        let mid = t.phase(1_600);
        assert_eq!(mid.state, RunState::Started);
        assert!(mid.done > 0.0 && mid.done < 1.0);
        let end = t.phase(2_000);
        assert_eq!(end.state, RunState::Finished);
        assert_eq!(end.stopped_ms, Some(2_000));
        let mut c = t;
        c.force(RunState::Cancelled, 1_600);
        let p = c.phase(5_000);
        assert_eq!(p.state, RunState::Cancelled);
        assert_eq!(p.stopped_ms, Some(1_600));
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(det_uuid("x", 1), det_uuid("x", 1));
        assert_ne!(det_uuid("x", 1), det_uuid("x", 2));
        assert_ne!(det_uuid("x", 1), det_uuid("y", 1));
        assert_eq!(det_uuid("x", 1).get_version_num(), 4);
    }
}
