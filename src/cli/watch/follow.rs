//! Following a mount's events log as `tail -F` does: a position in the
//! file, and one look at a time (open, read what is new, close), so that
//! nothing of the mount is held open between looks and its unmount needs
//! nothing from the watch.
//!
//! Subtle: the mount going away shows as the file gone (ENOENT; ENOTCONN
//! from a FUSE mount whose process died; ESTALE from NFS) or as another
//! file at the path (its device and inode changed: a new mount there, whose
//! log has offsets of its own). A line is handed on only once its newline
//! has been read: a look may end in the middle of one.

use anyhow::{Context, Result};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The most read from the log at one look.
const BATCH: usize = 1 << 20;

/// A position in a mount's events log, and the mount it belongs to.
pub(super) struct Follow {
    path: PathBuf,
    /// The log's device and inode at the start: another means another mount.
    id: (u64, u64),
    pos: u64,
    /// The start of a line whose end has not been read yet.
    partial: Vec<u8>,
}

/// What one look at the log found.
pub(super) enum Look {
    Lines(Vec<Vec<u8>>),
    Nothing,
    Gone(String),
}

/// Errors that mean the mount is no longer there.
fn went_away(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTCONN | libc::ESTALE | libc::ENODEV)
    )
}

impl Follow {
    pub(super) fn start(path: &Path, from_start: bool) -> Result<Follow> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
        Ok(Follow {
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
            pos: if from_start { 0 } else { meta.len() },
            partial: Vec::new(),
        })
    }

    /// Open the log, read what is new (at most [`BATCH`]), close it.
    pub(super) fn look(&mut self) -> Result<Look> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if went_away(&e) => return Ok(Look::Gone(e.to_string())),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open {}", self.path.display()))
            }
        };
        match file.metadata() {
            Ok(m) if (m.dev(), m.ino()) != self.id => {
                return Ok(Look::Gone("another filesystem is mounted there".into()))
            }
            Ok(_) => {}
            Err(e) if went_away(&e) => return Ok(Look::Gone(e.to_string())),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot stat {}", self.path.display()))
            }
        }
        let mut buf = vec![0; BATCH];
        let n = match file.read_at(&mut buf, self.pos) {
            Ok(n) => n,
            Err(e) if went_away(&e) => return Ok(Look::Gone(e.to_string())),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()))
            }
        };
        drop(file);
        if n == 0 {
            return Ok(Look::Nothing);
        }
        self.pos += n as u64;
        let mut bytes = std::mem::take(&mut self.partial);
        bytes.extend_from_slice(&buf[..n]);
        let mut lines: Vec<Vec<u8>> = bytes
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        if lines.last().is_some_and(|l| !l.ends_with(b"\n")) {
            self.partial = lines.pop().unwrap_or_default();
        }
        Ok(if lines.is_empty() {
            Look::Nothing
        } else {
            Look::Lines(lines)
        })
    }
}
