//! The namespace's nodes and their inode numbers.
//!
//! A [`Node`] says what a path stands for in API terms (an extractor's
//! `inputs`, a run's `data.csv`, ...), keyed by guids rather than by names so
//! that a remote rename keeps the inode. The [`InodeTable`] hands out one
//! number per node and never reuses it while mounted, which is what lets the
//! kernel cache dentries and lets `find` and `tar` trust inode numbers.
//! Forget messages are not used to drop nodes: a node is a few dozen bytes
//! and keeping it is what keeps the inode stable.

use crate::api::models::{CrawlrunFile, ReportRunFile};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

/// The control files of an extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    Start,
    Stop,
    Duplicate,
}

impl Control {
    pub const ALL: [Control; 3] = [Control::Start, Control::Stop, Control::Duplicate];
    pub fn file_name(self) -> &'static str {
        match self {
            Control::Start => "start",
            Control::Stop => "stop",
            Control::Duplicate => "duplicate",
        }
    }
}

/// What one inode stands for. Ids are `Arc<str>` so that the thousands of
/// nodes of one run share one allocation of its guid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    UserJson,
    SubscriptionJson,
    Extractors,
    Extractor(Arc<str>),
    ExtractorJson(Arc<str>),
    Inputs(Arc<str>),
    Control(Arc<str>, Control),
    Credentials(Arc<str>),
    ExtractorRuns(Arc<str>),
    /// `extractors/<x>/crawlruns/<run>`: a symlink to `../../../crawlruns/<run>`.
    ExtractorRunLink(Arc<str>, Arc<str>),
    ExtractorLatest(Arc<str>),
    Crawlruns,
    Crawlrun(Arc<str>),
    CrawlrunJson(Arc<str>),
    CrawlrunState(Arc<str>),
    CrawlrunData(Arc<str>, CrawlrunFile),
    Reports,
    Report(Arc<str>),
    ReportJson(Arc<str>),
    ReportStart(Arc<str>),
    ReportRuns(Arc<str>),
    ReportRunLink(Arc<str>, Arc<str>),
    ReportLatest(Arc<str>),
    ReportRunsTop,
    ReportRun(Arc<str>),
    ReportRunJson(Arc<str>),
    ReportRunData(Arc<str>, ReportRunFile),
    Meta,
    Stats,
    Refresh,
    /// `.importfs/events`: each open a subscription to the run events; size
    /// 0, read as a stream (direct_io) that the page cache never hides.
    Events,
    /// A scratch file (editor swap, backup, temporary) in an extractor's
    /// directory: local only, never sent to the API. Numbered, so that a file
    /// removed and created again under the same name is a new inode.
    Scratch(u64),
}

/// The kind of file a node is shown as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

impl Node {
    pub fn kind(&self) -> Kind {
        match self {
            Node::Root
            | Node::Extractors
            | Node::Extractor(_)
            | Node::ExtractorRuns(_)
            | Node::Crawlruns
            | Node::Crawlrun(_)
            | Node::Reports
            | Node::Report(_)
            | Node::ReportRuns(_)
            | Node::ReportRunsTop
            | Node::ReportRun(_)
            | Node::Meta => Kind::Dir,
            Node::ExtractorRunLink(..)
            | Node::ExtractorLatest(_)
            | Node::ReportRunLink(..)
            | Node::ReportLatest(_) => Kind::Symlink,
            _ => Kind::File,
        }
    }

    /// Permission bits: read-only for what the API gives, write-only for
    /// control files, owner-writable for `inputs`, scratch files and
    /// extractor directories (which may hold scratch files).
    pub fn perm(&self) -> u16 {
        match self {
            Node::Extractor(_) => 0o755,
            Node::Inputs(_) | Node::Scratch(_) => 0o644,
            Node::Control(..) | Node::Credentials(_) | Node::ReportStart(_) | Node::Refresh => {
                0o200
            }
            Node::ExtractorRunLink(..)
            | Node::ExtractorLatest(_)
            | Node::ReportRunLink(..)
            | Node::ReportLatest(_) => 0o777,
            n if n.kind() == Kind::Dir => 0o555,
            _ => 0o444,
        }
    }
}

#[derive(Default)]
struct Table {
    by_node: HashMap<Node, Ino>,
    by_ino: Vec<Node>,
}

/// Stable inode numbers for nodes: `ino = index + 1`, never reused.
pub struct InodeTable {
    inner: Mutex<Table>,
}

impl Default for InodeTable {
    fn default() -> Self {
        let mut t = Table::default();
        t.by_ino.push(Node::Root);
        t.by_node.insert(Node::Root, ROOT_INO);
        InodeTable {
            inner: Mutex::new(t),
        }
    }
}

impl InodeTable {
    /// The inode of `node`, allocating one the first time it is seen.
    pub fn ino(&self, node: &Node) -> Ino {
        let mut t = super::cache::lock(&self.inner);
        if let Some(&ino) = t.by_node.get(node) {
            return ino;
        }
        t.by_ino.push(node.clone());
        let ino = t.by_ino.len() as Ino;
        t.by_node.insert(node.clone(), ino);
        ino
    }

    /// The inode of `node`, if it has one already (for invalidating what
    /// the kernel may hold of it: a node never handed out has nothing).
    pub fn existing(&self, node: &Node) -> Option<Ino> {
        super::cache::lock(&self.inner).by_node.get(node).copied()
    }

    pub fn node(&self, ino: Ino) -> Option<Node> {
        let t = super::cache::lock(&self.inner);
        ino.checked_sub(1)
            .and_then(|i| t.by_ino.get(i as usize))
            .cloned()
    }

    pub fn len(&self) -> usize {
        super::cache::lock(&self.inner).by_ino.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_are_stable_and_distinct() {
        let t = InodeTable::default();
        let a = Node::Extractor("g1".into());
        let b = Node::Extractor("g2".into());
        let ia = t.ino(&a);
        let ib = t.ino(&b);
        assert_ne!(ia, ib);
        assert_ne!(ia, ROOT_INO);
        assert_eq!(t.ino(&a), ia);
        assert_eq!(t.node(ia), Some(a));
        assert_eq!(t.node(ROOT_INO), Some(Node::Root));
        assert_eq!(t.node(0), None);
        assert_eq!(t.node(999), None);
    }
}
