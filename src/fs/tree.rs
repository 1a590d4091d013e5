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

use crate::api::models::{CrawlrunFile, ReportRun, ReportRunFile};
use crate::api::FileRef;
use crate::fs::cache::{lock, Expiry, List};
use crate::fs::core::{Attr, DirEntry, Entry, Fs};
use crate::fs::inodes::{Control, Ino, Kind, Node};
use crate::fs::inputs::inputs_text;
use crate::fs::names::{FileName, NameTable};
use crate::fs::runs::{arc, report_run_has_files, run_has_files};
use crate::fs::FsError;
use std::ffi::OsString;
use std::future::Future;
use std::os::unix::ffi::OsStringExt;
use std::sync::{Arc, Mutex};
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

/// The entries of the root and of `.importfs/`, in listing order.
fn fixed_entries(dir: &Node) -> Vec<(&'static str, Node)> {
    match dir {
        Node::Root => vec![
            ("user.json", Node::UserJson),
            ("subscription.json", Node::SubscriptionJson),
            ("extractors", Node::Extractors),
            ("crawlruns", Node::Crawlruns),
            ("reports", Node::Reports),
            ("reportruns", Node::ReportRunsTop),
            (".importfs", Node::Meta),
        ],
        Node::Meta => vec![
            ("stats", Node::Stats),
            ("refresh", Node::Refresh),
            ("events", Node::Events),
        ],
        _ => Vec::new(),
    }
}

/// What an extractor's directory always holds (`latest` and scratch files
/// come and go).
fn extractor_entries(g: &Arc<str>) -> Vec<(&'static str, Node)> {
    let mut v = vec![
        ("extractor.json", Node::ExtractorJson(g.clone())),
        ("inputs", Node::Inputs(g.clone())),
    ];
    v.extend(Control::ALL.map(|c| (c.file_name(), Node::Control(g.clone(), c))));
    v.push(("credentials", Node::Credentials(g.clone())));
    v.push(("crawlruns", Node::ExtractorRuns(g.clone())));
    v
}

/// What a crawl run's directory holds before it has result files.
fn crawlrun_entries(id: &Arc<str>) -> Vec<(&'static str, Node)> {
    vec![
        ("crawlrun.json", Node::CrawlrunJson(id.clone())),
        ("state", Node::CrawlrunState(id.clone())),
    ]
}

/// What a report's directory always holds (`latest` comes with a run).
fn report_entries(g: &Arc<str>) -> Vec<(&'static str, Node)> {
    vec![
        ("report.json", Node::ReportJson(g.clone())),
        ("start", Node::ReportStart(g.clone())),
        ("reportruns", Node::ReportRuns(g.clone())),
    ]
}

/// The result files a report run has: none while it runs, `data.json` only
/// for a Change report.
fn report_run_files(rr: &ReportRun) -> Vec<ReportRunFile> {
    if !report_run_has_files(rr) {
        return Vec::new();
    }
    ReportRunFile::ALL
        .into_iter()
        .filter(|f| *f != ReportRunFile::Json || rr.is_change_report())
        .collect()
}

fn find(entries: Vec<(&'static str, Node)>, name: &str) -> Option<Node> {
    entries
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, node)| node)
}

fn find_id(ids: &[Arc<str>], name: &str) -> Option<Arc<str>> {
    ids.iter().find(|id| &***id == name).cloned()
}

/// Listed objects under the names the table gave them.
fn named_by(
    ids: &[Arc<str>],
    names: &NameTable,
    node: fn(Arc<str>) -> Node,
) -> Vec<(Node, OsString)> {
    ids.iter()
        .filter_map(|id| Some((node(id.clone()), names.name_of(id)?.into())))
        .collect()
}

impl Fs {
    /// Which extractor a name in `extractors/` means: a listed name, or a guid.
    pub(super) async fn resolve_extractor(&self, name: &str) -> Result<Arc<str>, FsError> {
        let listed = self.caches.extractor_list.get(&()).is_some();
        self.resolve(
            name,
            &self.extractor_names,
            listed,
            self.extractor_list(),
            |id| async move { self.extractor(&id).await.map(|_| id) },
        )
        .await
    }

    /// Which report a name in `reports/` means: a listed name, or a guid.
    pub(super) async fn resolve_report(&self, name: &str) -> Result<Arc<str>, FsError> {
        let listed = self.caches.report_list.get(&()).is_some();
        self.resolve(
            name,
            &self.report_names,
            listed,
            self.report_list(),
            |id| async move { self.report(&id).await.map(|_| id) },
        )
        .await
    }

    /// A name of a listing directory as an id: a name the table gave (with
    /// the listing fresh, no call at all), else after listing, else a guid
    /// that is listed or that the API knows (`get`, one object, no list).
    async fn resolve<G>(
        &self,
        name: &str,
        names: &Mutex<NameTable>,
        listed: bool,
        list: impl Future<Output = Result<(List, Expiry), FsError>>,
        get: impl FnOnce(Arc<str>) -> G,
    ) -> Result<Arc<str>, FsError>
    where
        G: Future<Output = Result<Arc<str>, FsError>>,
    {
        if let Some(g) = lock(names).guid_of(name) {
            if listed {
                return Ok(arc(g));
            }
        }
        let (list, _) = list.await?;
        if let Some(g) = lock(names).guid_of(name) {
            return Ok(arc(g));
        }
        if !looks_like_id(name) {
            return Err(FsError::new(libc::ENOENT));
        }
        match list.iter().find(|id| &***id == name) {
            Some(id) => Ok(id.clone()),
            None => get(arc(name)).await,
        }
    }

    /// The child `name` of directory `parent`, as a node. Only what the name
    /// needs is asked: `inputs` of an extractor costs nothing, `latest`
    /// costs its runs.
    pub(super) async fn child(&self, parent: &Node, name: &str) -> Result<Node, FsError> {
        let found = match parent {
            Node::Root | Node::Meta => find(fixed_entries(parent), name),
            Node::Extractors => Some(Node::Extractor(self.resolve_extractor(name).await?)),
            Node::Extractor(g) => self.extractor_child(g, name).await?,
            Node::ExtractorRuns(g) => {
                let (ids, _) = self.runs_of(g).await?;
                find_id(&ids, name).map(|id| Node::ExtractorRunLink(g.clone(), id))
            }
            Node::Crawlruns if looks_like_id(name) => {
                let id = arc(name);
                self.crawlrun(&id).await?;
                Some(Node::Crawlrun(id))
            }
            Node::Crawlruns => None,
            Node::Crawlrun(id) => self.crawlrun_child(id, name).await?,
            Node::Reports => Some(Node::Report(self.resolve_report(name).await?)),
            Node::Report(g) => self.report_child(g, name).await?,
            Node::ReportRuns(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                find_id(&ids, name).map(|id| Node::ReportRunLink(g.clone(), id))
            }
            Node::ReportRunsTop if looks_like_id(name) => {
                let id = arc(name);
                self.reportrun(&id).await?;
                Some(Node::ReportRun(id))
            }
            Node::ReportRunsTop => None,
            Node::ReportRun(id) => self.reportrun_child(id, name).await?,
            _ => return Err(FsError::new(libc::ENOTDIR)),
        };
        found.ok_or(FsError::new(libc::ENOENT))
    }

    async fn extractor_child(&self, g: &Arc<str>, name: &str) -> Result<Option<Node>, FsError> {
        if name == "latest" {
            let (ids, _) = self.runs_of(g).await?;
            return Ok(self
                .newest_run(&ids)
                .map(|_| Node::ExtractorLatest(g.clone())));
        }
        Ok(find(extractor_entries(g), name)
            .or_else(|| lock(&self.scratch).child(g, name.as_bytes())))
    }

    async fn crawlrun_child(&self, id: &Arc<str>, name: &str) -> Result<Option<Node>, FsError> {
        if let Some(n) = find(crawlrun_entries(id), name) {
            return Ok(Some(n));
        }
        let Some(f) = CrawlrunFile::ALL
            .into_iter()
            .find(|f| f.file_name() == name)
        else {
            return Ok(None);
        };
        let (run, _) = self.crawlrun(id).await?;
        Ok(run_has_files(&run).then(|| Node::CrawlrunData(id.clone(), f)))
    }

    async fn report_child(&self, g: &Arc<str>, name: &str) -> Result<Option<Node>, FsError> {
        if name == "latest" {
            let (ids, _) = self.runs_of_report(g).await?;
            return Ok(self
                .newest_report_run(&ids)
                .map(|_| Node::ReportLatest(g.clone())));
        }
        Ok(find(report_entries(g), name))
    }

    async fn reportrun_child(&self, id: &Arc<str>, name: &str) -> Result<Option<Node>, FsError> {
        if name == "reportrun.json" {
            return Ok(Some(Node::ReportRunJson(id.clone())));
        }
        let Some(f) = ReportRunFile::ALL
            .into_iter()
            .find(|f| f.file_name() == name)
        else {
            return Ok(None);
        };
        let (rr, _) = self.reportrun(id).await?;
        Ok(report_run_files(&rr)
            .contains(&f)
            .then(|| Node::ReportRunData(id.clone(), f)))
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
                (inputs_text(&i).into_bytes().into(), e)
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
            Node::Root | Node::Crawlruns | Node::ReportRunsTop | Node::Meta => (0, Expiry::Never),
            Node::Extractors | Node::Reports => {
                self.relist(node).await;
                (0, Expiry::Never)
            }
            Node::Events => self.events_attr(&mut mtime),
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
                let (size, perm, t) = lock(&self.scratch)
                    .attr(*id)
                    .ok_or(FsError::new(libc::ENOENT))?;
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
                mtime: self.changes.mtime(ino, mtime),
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
        let dots = [(node.clone(), "."), (self.parent_of(node), "..")];
        let mut out: Vec<DirEntry> = dots
            .into_iter()
            .map(|(n, name)| DirEntry {
                ino: self.inodes.ino(&n),
                kind: Kind::Dir,
                name: name.into(),
            })
            .collect();
        for (n, name) in self.entries(node).await? {
            out.push(DirEntry {
                ino: self.inodes.ino(&n),
                kind: n.kind(),
                name,
            });
        }
        Ok(out)
    }

    /// A directory's children and their names, in listing order.
    async fn entries(&self, node: &Node) -> Result<Vec<(Node, OsString)>, FsError> {
        let named = |v: Vec<(&'static str, Node)>| -> Vec<(Node, OsString)> {
            v.into_iter().map(|(name, n)| (n, name.into())).collect()
        };
        let ids_as = |ids: &[Arc<str>], f: &dyn Fn(Arc<str>) -> Node| -> Vec<(Node, OsString)> {
            ids.iter()
                .map(|id| (f(id.clone()), (**id).into()))
                .collect()
        };
        Ok(match node {
            Node::Root | Node::Meta => named(fixed_entries(node)),
            Node::Extractors => {
                let (ids, _) = self.extractor_list().await?;
                named_by(&ids, &lock(&self.extractor_names), Node::Extractor)
            }
            Node::Extractor(g) => {
                let (ids, _) = self.runs_of(g).await?;
                let mut v = named(extractor_entries(g));
                if self.newest_run(&ids).is_some() {
                    v.push((Node::ExtractorLatest(g.clone()), "latest".into()));
                }
                // Scratch names are the bytes they were created with.
                let scratch = lock(&self.scratch).entries(g);
                v.extend(scratch.into_iter().map(|(n, b)| (n, OsString::from_vec(b))));
                v
            }
            Node::ExtractorRuns(g) => {
                let (ids, _) = self.runs_of(g).await?;
                ids_as(&ids, &|id| Node::ExtractorRunLink(g.clone(), id))
            }
            Node::Crawlruns => ids_as(&self.crawlrun_list().await?.0, &Node::Crawlrun),
            Node::Crawlrun(id) => {
                let (run, _) = self.crawlrun(id).await?;
                let mut v = named(crawlrun_entries(id));
                if run_has_files(&run) {
                    v.extend(named(
                        CrawlrunFile::ALL
                            .map(|f| (f.file_name(), Node::CrawlrunData(id.clone(), f)))
                            .to_vec(),
                    ));
                }
                v
            }
            Node::Reports => {
                let (ids, _) = self.report_list().await?;
                named_by(&ids, &lock(&self.report_names), Node::Report)
            }
            Node::Report(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                let mut v = named(report_entries(g));
                if self.newest_report_run(&ids).is_some() {
                    v.push((Node::ReportLatest(g.clone()), "latest".into()));
                }
                v
            }
            Node::ReportRuns(g) => {
                let (ids, _) = self.runs_of_report(g).await?;
                ids_as(&ids, &|id| Node::ReportRunLink(g.clone(), id))
            }
            Node::ReportRunsTop => ids_as(&self.reportrun_list().await?.0, &Node::ReportRun),
            Node::ReportRun(id) => {
                let (rr, _) = self.reportrun(id).await?;
                let files = report_run_files(&rr);
                let mut v = vec![(Node::ReportRunJson(id.clone()), "reportrun.json".into())];
                v.extend(named(
                    files
                        .into_iter()
                        .map(|f| (f.file_name(), Node::ReportRunData(id.clone(), f)))
                        .collect(),
                ));
                v
            }
            _ => return Err(FsError::new(libc::ENOTDIR)),
        })
    }
}
