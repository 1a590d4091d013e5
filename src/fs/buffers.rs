//! In-memory files: the buffer of a file opened for writing, and scratch
//! files (editors' swap, backup and temporary files).
//!
//! Plain data with no API calls: the write side (`write.rs`) decides what a
//! buffer means and when it is sent; the operations (`core.rs`) read them.
//! What is subtle: a scratch file is keyed by the exact bytes of its name
//! (UTF-8 or not) within one extractor directory, and both kinds of buffer
//! are bounded ([`MAX_SCRATCH`], `inputs::MAX_INPUTS`) so that a runaway
//! writer cannot grow the mount's memory without end.

use crate::fs::cache::lock;
use crate::fs::inodes::{Ino, Node};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The largest scratch file: editors' swap files are small; this bounds memory.
pub const MAX_SCRATCH: usize = 16 << 20;

/// The buffer of one file opened for writing.
pub struct Writer {
    pub node: Node,
    pub ino: Ino,
    pub(super) state: Mutex<WriteState>,
    /// For control files: the POST of this open has been sent.
    pub(super) fired: AtomicBool,
}

pub(super) struct WriteState {
    pub(super) buf: Vec<u8>,
    /// Written (or ftruncate'd, or touched) since the last commit: the next
    /// flush sends it.
    pub(super) written: bool,
    /// Opened with O_TRUNC and not yet sent. Sent at release, not at the
    /// first flush: a shell's `> file` opens, dup2s and closes the original
    /// descriptor (a flush) before the command writes anything, and sending
    /// the empty file then would make `echo x > inputs` two PUTs.
    pub(super) truncated: bool,
    /// Bytes before this offset are complete lines already checked.
    pub(super) checked: usize,
    pub(super) append: bool,
    /// A write failed (EFBIG): the content is not what the user meant, so
    /// close fails too and nothing is sent.
    pub(super) poisoned: Option<i32>,
}

/// One scratch file.
pub struct ScratchFile {
    pub guid: Arc<str>,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    pub perm: u16,
    pub mtime: SystemTime,
}

/// The scratch files of every extractor directory.
#[derive(Default)]
pub struct ScratchStore {
    pub(super) by_name: HashMap<(Arc<str>, Vec<u8>), u64>,
    pub files: HashMap<u64, ScratchFile>,
    next: u64,
}

impl ScratchStore {
    pub fn find(&self, guid: &Arc<str>, name: &[u8]) -> Option<u64> {
        self.by_name.get(&(guid.clone(), name.to_vec())).copied()
    }

    pub fn names_in(&self, guid: &Arc<str>) -> Vec<(u64, Vec<u8>)> {
        let mut v: Vec<(u64, Vec<u8>)> = self
            .by_name
            .iter()
            .filter(|((g, _), _)| g == guid)
            .map(|((_, n), id)| (*id, n.clone()))
            .collect();
        v.sort();
        v
    }

    pub(super) fn create(&mut self, guid: &Arc<str>, name: &[u8], perm: u16) -> u64 {
        self.next += 1;
        let id = self.next;
        self.by_name.insert((guid.clone(), name.to_vec()), id);
        self.files.insert(
            id,
            ScratchFile {
                guid: guid.clone(),
                name: name.to_vec(),
                data: Vec::new(),
                perm,
                mtime: SystemTime::now(),
            },
        );
        id
    }

    pub(super) fn remove(&mut self, id: u64) -> Option<ScratchFile> {
        let f = self.files.remove(&id)?;
        self.by_name.remove(&(f.guid.clone(), f.name.clone()));
        Some(f)
    }
}

/// `len` bytes of `data` at `offset`, short at its end.
pub(super) fn slice_at(data: &[u8], offset: u64, len: u32) -> Vec<u8> {
    let start = (offset as usize).min(data.len());
    let end = start.saturating_add(len as usize).min(data.len());
    data[start..end].to_vec()
}

impl Writer {
    /// Read back what has been written so far (a reader of the same open).
    pub fn read(&self, offset: u64, len: u32) -> Vec<u8> {
        slice_at(&lock(&self.state).buf, offset, len)
    }
}

impl ScratchStore {
    /// Read scratch file `id`; empty if it is gone.
    pub fn read(&self, id: u64, offset: u64, len: u32) -> Vec<u8> {
        self.files
            .get(&id)
            .map(|f| slice_at(&f.data, offset, len))
            .unwrap_or_default()
    }

    /// The scratch file `name` in extractor `g`, as a node.
    pub fn child(&self, g: &Arc<str>, name: &[u8]) -> Option<Node> {
        self.find(g, name).map(Node::Scratch)
    }

    /// The scratch files of extractor `g`, as nodes with their names.
    pub fn entries(&self, g: &Arc<str>) -> Vec<(Node, Vec<u8>)> {
        self.names_in(g)
            .into_iter()
            .map(|(id, n)| (Node::Scratch(id), n))
            .collect()
    }

    /// Size, mode and mtime of a scratch file.
    pub fn attr(&self, id: u64) -> Option<(u64, u16, SystemTime)> {
        self.files
            .get(&id)
            .map(|f| (f.data.len() as u64, f.perm, f.mtime))
    }
}
