//! Control files and guarded deletes: the writes that are API actions.
//!
//! `start` and `stop` of an extractor, `duplicate`, a report's `start`,
//! `.importfs/refresh`, and `rmdir` of an extractor (archive) or a report
//! (delete, only with `--allow-delete`). What is subtle:
//! - One user action is one call. A control file fires once per
//!   open-for-write, at its first flush after a write or a touch (else at
//!   release: `: > start`); with no descriptor open, once per `utime`
//!   (`touch` by path). `write.rs` decides when; this module does the call.
//! - A 400 to a start is the service saying a run is already in progress:
//!   EBUSY, so `touch start` twice says "Device or resource busy".
//! - Whatever an action changed shows at the next look: every cached
//!   listing and object is expired after it (`refresh` is exactly that, and
//!   also stops serving stale answers of an outage at once).

use crate::fs::core::Fs;
use crate::fs::inodes::{Control, Ino, Node};
use crate::fs::FsError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

impl Fs {
    /// The API call of a control file.
    pub(super) async fn fire(&self, node: &Node) -> Result<(), FsError> {
        self.writable()?;
        let r = match node {
            Node::Control(g, Control::Start) => self.client.start_extractor(g).await.map(|r| {
                tracing::info!(extractor = %g, run = ?r.crawl_run_id, "run started");
            }),
            Node::Control(g, Control::Stop) => self.client.stop_extractor(g).await,
            Node::Control(g, Control::Duplicate) => {
                self.client.duplicate_extractor(g).await.map(|x| {
                    tracing::info!(extractor = %g, copy = %x.guid, "extractor duplicated");
                })
            }
            Node::ReportStart(g) => self.client.start_report(g).await.map(|_| ()),
            Node::Refresh => Ok(()),
            _ => return Err(FsError::new(libc::EACCES)),
        };
        let busy = matches!(
            node,
            Node::Control(_, Control::Start) | Node::ReportStart(_)
        );
        r.map_err(|e| FsError::refused(e, busy))?;
        self.refresh();
        Ok(())
    }

    /// Whether writing or touching `ino` fires a call (a control file, a
    /// report's `start`, `refresh`) rather than storing what is written.
    pub fn is_trigger(&self, ino: Ino) -> bool {
        matches!(
            self.node(ino),
            Ok(Node::Control(..) | Node::ReportStart(_) | Node::Refresh)
        )
    }

    /// `rmdir extractors/<name>` archives and `rmdir reports/<name>` deletes,
    /// only with `--allow-delete`.
    pub async fn rmdir(&self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.writable()?;
        let parent = self.node(parent)?;
        if !matches!(parent, Node::Extractors | Node::Reports) || !self.cfg.allow_delete {
            return Err(FsError::new(libc::EPERM));
        }
        let name = std::str::from_utf8(name.as_bytes()).map_err(|_| FsError::new(libc::ENOENT))?;
        match self.child(&parent, name).await? {
            Node::Extractor(g) => {
                self.client
                    .delete_extractor(&g)
                    .await
                    .map_err(|e| FsError::refused(e, false))?;
                tracing::info!(extractor = %g, "extractor archived");
            }
            Node::Report(g) => {
                self.client
                    .delete_report(&g)
                    .await
                    .map_err(|e| FsError::refused(e, false))?;
                tracing::info!(report = %g, "report deleted");
            }
            _ => return Err(FsError::new(libc::EPERM)),
        }
        self.refresh();
        Ok(())
    }

    /// Forget every cached listing and object, and ask the API again at the
    /// next call even during an outage: what `.importfs/refresh` does, and
    /// what every action does after it, so that its effect shows at once.
    pub fn refresh(&self) {
        self.outage.ask_again();
        self.caches.expire_all();
    }
}
