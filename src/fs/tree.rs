//! The namespace: which paths exist, what each node stands for, and what a
//! generated file or a symlink holds.
//!
//! Nodes are plain values ([`Node`]); this module maps a directory and a
//! name to a child node, a directory to its entries, and a node to its
//! attributes, content or link target, asking [`crate::fs::objects`] for
//! the objects behind them. What is subtle:
//! - Sizes are exact before the first read: a generated file's size is the
//!   length of the same rendering `open` serves, from the same cached object.
//! - Names under `crawlruns/` and `reportruns/` that cannot be ids are
//!   ENOENT without asking the API: shells and tools probe names like
//!   `.git` or `libc.so` all the time.
//! - A result file's size is what a HEAD said until the file is downloaded,
//!   so the kernel keeps it only for a short TTL until then.
//! - Scratch files (editors' temporary files) are the only names that may
//!   be any bytes; every API name is UTF-8.

use crate::api::models::{CrawlrunFile, ReportRunFile};
use crate::api::FileRef;
use crate::fs::cache::{lock, Expiry};
use crate::fs::core::{Attr, DirEntry, Entry, Fs};
use crate::fs::inodes::{Control, Ino, Kind, Node};
use crate::fs::objects::{arc, report_run_has_files, run_has_files};
use crate::fs::FsError;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;
use std::time::SystemTime;

/// Does `name` look like an API id? Lookups of other names under `crawlruns/`
/// are answered ENOENT without asking the API (shells and tools probe names
/// like `.git` or `*.so` all the time).
fn looks_like_id(name: &str) -> bool {
    (8..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A generated JSON file: the object as the API gave it, indented.
fn pretty<T: serde::Serialize>(v: &T) -> Arc<[u8]> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out.into()
}

impl Fs {
    /// Which extractor a name in `extractors/` means: a listed name, or a guid.
    pub(super) async fn resolve_extractor(&self, name: &str) -> Result<Arc<str>, FsError> {
        if let Some(g) = lock(&self.extractor_names).guid_of(name) {
            if self.caches.extractor_list.get(&()).is_some() {
                return Ok(arc(g));
            }
        }
        let (list, _) = self.extractor_list().await?;
        if let Some(g) = lock(&self.extractor_names).guid_of(name) {
            return Ok(arc(g));
        }
        if looks_like_id(name) {
            if let Some(id) = list.iter().find(|id| &***id == name) {
                return Ok(id.clone());
            }
            let id = arc(name);
            self.extractor(&id).await?;
            return Ok(id);
        }
        Err(FsError::new(libc::ENOENT))
    }

    pub(super) async fn resolve_report(&self, name: &str) -> Result<Arc<str>, FsError> {
        if let Some(g) = lock(&self.report_names).guid_of(name) {
            if self.caches.report_list.get(&()).is_some() {
                return Ok(arc(g));
            }
        }
        let (list, _) = self.report_list().await?;
        if let Some(g) = lock(&self.report_names).guid_of(name) {
            return Ok(arc(g));
        }
        if looks_like_id(name) {
            if let Some(id) = list.iter().find(|id| &***id == name) {
                return Ok(id.clone());
            }
            let id = arc(name);
            self.report(&id).await?;
            return Ok(id);
        }
        Err(FsError::new(libc::ENOENT))
    }

    /// The child `name` of directory `parent`, as a node.
    pub(super) async fn child(&self, parent: &Node, name: &str) -> Result<Node, FsError> {
        let enoent = || Err(FsError::new(libc::ENOENT));
        let node = match parent {
            Node::Root => match name {
                "user.json" => Node::UserJson,
                "subscription.json" => Node::SubscriptionJson,
                "extractors" => Node::Extractors,
                "crawlruns" => Node::Crawlruns,
                "reports" => Node::Reports,
                "reportruns" => Node::ReportRunsTop,
                ".importfs" => Node::Meta,
                _ => return enoent(),
            },
            Node::Meta => match name {
                "stats" => Node::Stats,
                "refresh" => Node::Refresh,
                _ => return enoent(),
            },
            Node::Extractors => Node::Extractor(self.resolve_extractor(name).await?),
            Node::Extractor(g) => match name {
                "extractor.json" => Node::ExtractorJson(g.clone()),
                "inputs" => Node::Inputs(g.clone()),
                "start" => Node::Control(g.clone(), Control::Start),
                "stop" => Node::Control(g.clone(), Control::Stop),
                "duplicate" => Node::Control(g.clone(), Control::Duplicate),
                "credentials" => Node::Credentials(g.clone()),
                "crawlruns" => Node::ExtractorRuns(g.clone()),
                "latest" => {
                    let (ids, _) = self.runs_of(g).await?;
                    if self.newest_run(&ids).is_none() {
                        return enoent();
                    }
                    Node::ExtractorLatest(g.clone())
                }
                _ => match lock(&self.scratch).child(g, name.as_bytes()) {
                    Some(n) => n,
                    None => return enoent(),
                },
            },
            Node::ExtractorRuns(g) => {
                let (ids, _) = self.runs_of(g).await?;
                match ids.iter().find(|id| &***id == name) {
                    Some(id) => Node::ExtractorRunLink(g.clone(), id.clone()),
                    None => return enoent(),
                }
            }
            Node::Crawlruns => {
                if !looks_like_id(name) {
                    return enoent();
                }
                let id = arc(name);
                self.crawlrun(&id).await?;
                Node::Crawlrun(id)
            }
            Node::Crawlrun(id) => match name {
                "crawlrun.json" => Node::CrawlrunJson(id.clone()),
                "state" => Node::CrawlrunState(id.clone()),
                _ => {
                    let Some(f) = CrawlrunFile::ALL
                        .into_iter()
                        .find(|f| f.file_name() == name)
                    else {
                        return enoent();
                    };
                    let (run, _) = self.crawlrun(id).await?;
                    if !run_has_files(&run) {
                        return enoent();
                    }
                    Node::CrawlrunData(id.clone(), f)
                }
            },
            Node::Reports => Node::Report(self.resolve_report(name).await?),
            Node::Report(g) => match name {
                "report.json" => Node::ReportJson(g.clone()),
                "start" => Node::ReportStart(g.clone()),
                "reportruns" => Node::ReportRuns(g.clone()),
                "latest" => {
                    let (ids, _) = self.runs_of_report(g).await?;
                    if self.newest_report_run(&ids).is_none() {
                        return enoent();
                    }
                    Node::ReportLatest(g.clone())
                }
                _ => return enoent(),
            },
            Node::ReportRuns(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                match ids.iter().find(|id| &***id == name) {
                    Some(id) => Node::ReportRunLink(g.clone(), id.clone()),
                    None => return enoent(),
                }
            }
            Node::ReportRunsTop => {
                if !looks_like_id(name) {
                    return enoent();
                }
                let id = arc(name);
                self.reportrun(&id).await?;
                Node::ReportRun(id)
            }
            Node::ReportRun(id) => match name {
                "reportrun.json" => Node::ReportRunJson(id.clone()),
                _ => {
                    let Some(f) = ReportRunFile::ALL
                        .into_iter()
                        .find(|f| f.file_name() == name)
                    else {
                        return enoent();
                    };
                    let (rr, _) = self.reportrun(id).await?;
                    if !report_run_has_files(&rr)
                        || (f == ReportRunFile::Json && !rr.is_change_report())
                    {
                        return enoent();
                    }
                    Node::ReportRunData(id.clone(), f)
                }
            },
            _ => return Err(FsError::new(libc::ENOTDIR)),
        };
        Ok(node)
    }

    /// The parent of a directory node (for `..`).
    pub(super) fn parent_of(&self, node: &Node) -> Node {
        match node {
            Node::Extractor(_) => Node::Extractors,
            Node::ExtractorRuns(g) => Node::Extractor(g.clone()),
            Node::Crawlrun(_) => Node::Crawlruns,
            Node::Report(_) => Node::Reports,
            Node::ReportRuns(g) => Node::Report(g.clone()),
            Node::ReportRun(_) => Node::ReportRunsTop,
            _ => Node::Root,
        }
    }

    /// The contents of a generated file, and how long they stay true.
    pub(super) async fn content(&self, node: &Node) -> Result<(Arc<[u8]>, Expiry), FsError> {
        Ok(match node {
            Node::UserJson => {
                let (u, e) = self.user().await?;
                (pretty(&*u), e)
            }
            Node::SubscriptionJson => {
                let (s, e) = self.subscription().await?;
                (pretty(&*s), e)
            }
            Node::ExtractorJson(g) => {
                let (x, e) = self.extractor(g).await?;
                (pretty(&*x), e)
            }
            Node::Inputs(g) => {
                let (i, e) = self.inputs(g).await?;
                (i.to_file_text().into_bytes().into(), e)
            }
            Node::CrawlrunJson(id) => {
                let (r, e) = self.crawlrun(id).await?;
                (pretty(&*r), e)
            }
            Node::CrawlrunState(id) => {
                let (r, e) = self.crawlrun(id).await?;
                let state = if r.state.is_empty() {
                    "UNKNOWN"
                } else {
                    r.state.as_str()
                };
                (format!("{state}\n").into_bytes().into(), e)
            }
            Node::ReportJson(g) => {
                let (r, e) = self.report(g).await?;
                (pretty(&*r), e)
            }
            Node::ReportRunJson(id) => {
                let (r, e) = self.reportrun(id).await?;
                (pretty(&*r), e)
            }
            Node::Stats => (
                self.render_stats().into_bytes().into(),
                Expiry::At(std::time::Instant::now()),
            ),
            Node::Control(..) | Node::Credentials(_) | Node::ReportStart(_) | Node::Refresh => {
                (Arc::from(&b""[..]), Expiry::Never)
            }
            _ => return Err(FsError::new(libc::EINVAL)),
        })
    }

    /// The target of a symlink node.
    pub(super) async fn link_target(&self, node: &Node) -> Result<(String, Expiry), FsError> {
        Ok(match node {
            Node::ExtractorRunLink(_, r) => (format!("../../../crawlruns/{r}"), Expiry::Never),
            Node::ReportRunLink(_, r) => (format!("../../../reportruns/{r}"), Expiry::Never),
            Node::ExtractorLatest(g) => {
                let (ids, e) = self.runs_of(g).await?;
                let id = self.newest_run(&ids).ok_or(FsError::new(libc::ENOENT))?;
                (format!("../../crawlruns/{id}"), e)
            }
            Node::ReportLatest(g) => {
                let (ids, e) = self.runs_of_report(g).await?;
                let id = self
                    .newest_report_run(&ids)
                    .ok_or(FsError::new(libc::ENOENT))?;
                (format!("../../reportruns/{id}"), e)
            }
            _ => return Err(FsError::new(libc::EINVAL)),
        })
    }

    pub(super) fn file_ref(node: &Node) -> Option<FileRef> {
        match node {
            Node::CrawlrunData(id, f) => Some(FileRef::Crawlrun(id.to_string(), *f)),
            Node::ReportRunData(id, f) => Some(FileRef::ReportRun(id.to_string(), *f)),
            _ => None,
        }
    }

    /// Attributes of a node and how long they may be trusted.
    pub(super) async fn attr_of(&self, node: &Node) -> Result<(Attr, Expiry), FsError> {
        let ino = self.inodes.ino(node);
        let mut mtime = self.mounted_at;
        let (size, exp) = match node {
            Node::Root
            | Node::Extractors
            | Node::Crawlruns
            | Node::Reports
            | Node::ReportRunsTop
            | Node::Meta => (0, Expiry::Never),
            Node::Extractor(g) | Node::ExtractorRuns(g) => {
                let (x, e) = self.extractor(g).await?;
                mtime = x.meta.modified().unwrap_or(mtime);
                (0, e)
            }
            Node::Crawlrun(id) | Node::CrawlrunData(id, _) => {
                let (r, e) = self.crawlrun(id).await?;
                mtime = r.mtime().unwrap_or(mtime);
                match Self::file_ref(node) {
                    Some(f) => self.data_attr(&f, e).await?,
                    None => (0, e),
                }
            }
            Node::Report(g) | Node::ReportRuns(g) => {
                let (r, e) = self.report(g).await?;
                mtime = r.meta.modified().unwrap_or(mtime);
                (0, e)
            }
            Node::ReportRun(id) | Node::ReportRunData(id, _) => {
                let (r, e) = self.reportrun(id).await?;
                mtime = r.meta.modified().unwrap_or(mtime);
                match Self::file_ref(node) {
                    Some(f) => self.data_attr(&f, e).await?,
                    None => (0, e),
                }
            }
            Node::ExtractorRunLink(..)
            | Node::ExtractorLatest(_)
            | Node::ReportRunLink(..)
            | Node::ReportLatest(_) => {
                let (t, e) = self.link_target(node).await?;
                (t.len() as u64, e)
            }
            Node::Scratch(id) => {
                let (size, perm, t) = lock(&self.scratch).attr(*id).ok_or(FsError::new(libc::ENOENT))?;
                let attr = Attr {
                    ino,
                    kind: Kind::File,
                    size,
                    perm,
                    mtime: t,
                    uid: self.cfg.uid,
                    gid: self.cfg.gid,
                };
                return Ok((attr, Expiry::At(std::time::Instant::now())));
            }
            _ => {
                let (bytes, e) = self.content(node).await?;
                mtime = self.content_mtime(node).unwrap_or(mtime);
                (bytes.len() as u64, e)
            }
        };
        Ok((
            Attr {
                ino,
                kind: node.kind(),
                size,
                perm: node.perm(),
                mtime,
                uid: self.cfg.uid,
                gid: self.cfg.gid,
            },
            exp,
        ))
    }

    /// The mtime of a generated file: its object's.
    pub(super) fn content_mtime(&self, node: &Node) -> Option<SystemTime> {
        match node {
            Node::ExtractorJson(g)
            | Node::Inputs(g)
            | Node::Control(g, _)
            | Node::Credentials(g) => self
                .caches
                .extractors
                .get_stale(g)
                .and_then(|x| x.meta.modified()),
            Node::CrawlrunJson(id) | Node::CrawlrunState(id) => {
                self.caches.crawlruns.get_stale(id).and_then(|r| r.mtime())
            }
            Node::ReportJson(g) | Node::ReportStart(g) => self
                .caches
                .reports
                .get_stale(g)
                .and_then(|r| r.meta.modified()),
            Node::ReportRunJson(id) => self
                .caches
                .reportruns
                .get_stale(id)
                .and_then(|r| r.meta.modified()),
            Node::UserJson => self
                .caches
                .user
                .get_stale(&())
                .and_then(|u| u.meta.modified()),
            Node::Stats => Some(SystemTime::now()),
            _ => None,
        }
    }

    pub(super) fn entry(&self, attr: Attr, exp: Expiry) -> Entry {
        let cap = if exp == Expiry::Never {
            self.cfg.immutable_ttl
        } else {
            self.cfg.kernel_ttl
        };
        Entry {
            attr,
            ttl: exp.remaining(cap),
        }
    }

    pub(super) fn node(&self, ino: Ino) -> Result<Node, FsError> {
        self.inodes.node(ino).ok_or(FsError::new(libc::ENOENT))
    }

    /// List a directory (complete; the adapter pages through it by offset).
    pub(super) async fn list(&self, node: &Node) -> Result<Vec<DirEntry>, FsError> {
        let mut out = vec![
            DirEntry {
                ino: self.inodes.ino(node),
                kind: Kind::Dir,
                name: ".".into(),
            },
            DirEntry {
                ino: self.inodes.ino(&self.parent_of(node)),
                kind: Kind::Dir,
                name: "..".into(),
            },
        ];
        let mut scratch = Vec::new();
        let mut push = |n: Node, name: &str| {
            out.push(DirEntry {
                ino: self.inodes.ino(&n),
                kind: n.kind(),
                name: name.into(),
            });
        };
        match node {
            Node::Root => {
                push(Node::UserJson, "user.json");
                push(Node::SubscriptionJson, "subscription.json");
                push(Node::Extractors, "extractors");
                push(Node::Crawlruns, "crawlruns");
                push(Node::Reports, "reports");
                push(Node::ReportRunsTop, "reportruns");
                push(Node::Meta, ".importfs");
            }
            Node::Meta => {
                push(Node::Stats, "stats");
                push(Node::Refresh, "refresh");
            }
            Node::Extractors => {
                let (ids, _) = self.extractor_list().await?;
                let names = lock(&self.extractor_names);
                for id in ids.iter() {
                    if let Some(name) = names.name_of(id) {
                        push(Node::Extractor(id.clone()), name);
                    }
                }
            }
            Node::Extractor(g) => {
                let (ids, _) = self.runs_of(g).await?;
                let has_latest = self.newest_run(&ids).is_some();
                push(Node::ExtractorJson(g.clone()), "extractor.json");
                push(Node::Inputs(g.clone()), "inputs");
                for c in Control::ALL {
                    push(Node::Control(g.clone(), c), c.file_name());
                }
                push(Node::Credentials(g.clone()), "credentials");
                push(Node::ExtractorRuns(g.clone()), "crawlruns");
                if has_latest {
                    push(Node::ExtractorLatest(g.clone()), "latest");
                }
                // Scratch names are the bytes they were created with, UTF-8
                // or not: added after the match, as OsStrings.
                scratch = lock(&self.scratch).entries(g);
            }
            Node::ExtractorRuns(g) => {
                let (ids, _) = self.runs_of(g).await?;
                for id in ids.iter() {
                    push(Node::ExtractorRunLink(g.clone(), id.clone()), id);
                }
            }
            Node::Crawlruns => {
                let (ids, _) = self.crawlrun_list().await?;
                for id in ids.iter() {
                    push(Node::Crawlrun(id.clone()), id);
                }
            }
            Node::Crawlrun(id) => {
                let (run, _) = self.crawlrun(id).await?;
                push(Node::CrawlrunJson(id.clone()), "crawlrun.json");
                push(Node::CrawlrunState(id.clone()), "state");
                if run_has_files(&run) {
                    for f in CrawlrunFile::ALL {
                        push(Node::CrawlrunData(id.clone(), f), f.file_name());
                    }
                }
            }
            Node::Reports => {
                let (ids, _) = self.report_list().await?;
                let names = lock(&self.report_names);
                for id in ids.iter() {
                    if let Some(name) = names.name_of(id) {
                        push(Node::Report(id.clone()), name);
                    }
                }
            }
            Node::Report(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                let has_latest = self.newest_report_run(&ids).is_some();
                push(Node::ReportJson(g.clone()), "report.json");
                push(Node::ReportStart(g.clone()), "start");
                push(Node::ReportRuns(g.clone()), "reportruns");
                if has_latest {
                    push(Node::ReportLatest(g.clone()), "latest");
                }
            }
            Node::ReportRuns(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                for id in ids.iter() {
                    push(Node::ReportRunLink(g.clone(), id.clone()), id);
                }
            }
            Node::ReportRunsTop => {
                let (ids, _) = self.reportrun_list().await?;
                for id in ids.iter() {
                    push(Node::ReportRun(id.clone()), id);
                }
            }
            Node::ReportRun(id) => {
                let (rr, _) = self.reportrun(id).await?;
                push(Node::ReportRunJson(id.clone()), "reportrun.json");
                if report_run_has_files(&rr) {
                    for f in ReportRunFile::ALL {
                        if f != ReportRunFile::Json || rr.is_change_report() {
                            push(Node::ReportRunData(id.clone(), f), f.file_name());
                        }
                    }
                }
            }
            _ => return Err(FsError::new(libc::ENOTDIR)),
        }
        for (n, name) in scratch {
            out.push(DirEntry {
                ino: self.inodes.ino(&n),
                kind: n.kind(),
                name: OsString::from_vec(name),
            });
        }
        Ok(out)
    }
}
