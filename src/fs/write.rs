//! The write side's operations: open for writing, write, flush, fsync,
//! release, setattr, create, unlink and rename, for `inputs`, control files,
//! `credentials` and scratch files. What a control file or an `rmdir` then
//! calls is in `control.rs`; the text of `inputs` in `inputs.rs`; the
//! buffers in `buffers.rs`.
//!
//! The rule that shapes everything here: one user action is exactly the API
//! calls it means, and its failure shows in the syscall that caused it.
//! - Writes are buffered per open file and sent on the first `flush` (close)
//!   or `fsync` after a change, so `>`, `>>`, `truncate`, Python and editors
//!   each end in one PUT; later flushes of dup'ed descriptors send nothing.
//!   `open(O_TRUNC)` arrives as a flag, not as a separate truncate, because the
//!   adapter asks for FUSE_ATOMIC_O_TRUNC.
//! - Validation happens before any call: UTF-8, at most 1 MiB, every non-blank
//!   line an absolute http(s) URL. A failure is EINVAL (EFBIG for size), its
//!   message (logged once, by the adapter) names the line, and `inputs`
//!   keeps its old content.
//! - A control file fires once per open-for-write (at its first flush), or
//!   once per `utime` when no descriptor is open on it: `touch` opens and sets
//!   times, and must still be a single POST.
//! - Scratch files (editors' swap, backup and temporary files) live in memory,
//!   in the extractor's directory only; renaming one onto `inputs` is a write
//!   of `inputs`, and renaming `inputs` away (vim's backup) copies it.

use crate::api::models::{Credentials, Inputs};
use crate::fs::buffers::{WriteState, Writer, MAX_SCRATCH};
use crate::fs::cache::lock;
use crate::fs::core::{Entry, Fs, Handle, Opened};
use crate::fs::inodes::{Ino, Node};
use crate::fs::inputs::{inputs_text, validate_inputs, validate_lines, MAX_INPUTS};
use crate::fs::FsError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

impl Fs {
    pub(super) fn writable(&self) -> Result<(), FsError> {
        if self.cfg.read_only {
            Err(FsError::new(libc::EROFS))
        } else {
            Ok(())
        }
    }

    /// Open a file for writing (`flags` are the open(2) flags).
    pub(super) async fn open_write(
        &self,
        node: Node,
        ino: Ino,
        flags: i32,
    ) -> Result<Opened, FsError> {
        self.writable()?;
        let trunc = flags & libc::O_TRUNC != 0;
        let append = flags & libc::O_APPEND != 0;
        let buf = match &node {
            Node::Scratch(id) => {
                let mut store = lock(&self.scratch);
                let f = store.files.get_mut(id).ok_or(FsError::new(libc::ENOENT))?;
                if trunc {
                    f.data.clear();
                    f.mtime = SystemTime::now();
                }
                drop(store);
                let fh = self.new_handle(Handle::Scratch(*id));
                return Ok(Opened {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                });
            }
            Node::Inputs(g) if !trunc => inputs_text(self.inputs(g).await?.0.as_ref()).into_bytes(),
            Node::Inputs(_) => Vec::new(),
            Node::Control(..) | Node::ReportStart(_) | Node::Refresh | Node::Credentials(_) => {
                Vec::new()
            }
            _ => return Err(FsError::new(libc::EACCES)),
        };
        let w = Arc::new(Writer {
            node,
            ino,
            state: Mutex::new(WriteState {
                buf,
                written: false,
                truncated: trunc,
                checked: 0,
                append,
                poisoned: None,
            }),
            fired: AtomicBool::new(false),
        });
        *lock(&self.writers).entry(ino).or_default() += 1;
        let fh = self.new_handle(Handle::Writer(w));
        Ok(Opened {
            fh,
            keep_cache: false,
            direct_io: true,
        })
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let h = lock(&self.handles).get(&fh).cloned();
        match h {
            Some(Handle::Writer(w)) => {
                let limit = match w.node {
                    Node::Inputs(_) | Node::Credentials(_) => MAX_INPUTS,
                    // Control files take any bytes (`echo > start`) and keep
                    // none; the write makes the next flush fire.
                    _ => {
                        lock(&w.state).written = true;
                        return Ok(data.len() as u32);
                    }
                };
                let mut st = lock(&w.state);
                let at = if st.append {
                    st.buf.len()
                } else {
                    offset as usize
                };
                let end = at.saturating_add(data.len());
                if end > limit {
                    st.poisoned = Some(libc::EFBIG);
                    return Err(FsError::with(
                        libc::EFBIG,
                        format!("write refused at {end} bytes: the file may hold at most 1 MiB"),
                    ));
                }
                if st.buf.len() < end {
                    st.buf.resize(end, 0);
                }
                st.buf[at..end].copy_from_slice(data);
                st.written = true;
                // Check the complete lines now, so that a bad URL fails the
                // write(2) itself: shells ignore close() errors of `>`.
                if matches!(w.node, Node::Inputs(_)) {
                    st.checked = st.checked.min(at);
                    let from = st.buf[..st.checked]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    if let Some(last_nl) = st.buf.iter().rposition(|&b| b == b'\n') {
                        if last_nl + 1 > from {
                            let first_line =
                                1 + st.buf[..from].iter().filter(|&&b| b == b'\n').count();
                            if let Err(e) = validate_lines(&st.buf[from..=last_nl], first_line) {
                                st.poisoned = Some(e.errno);
                                return Err(e);
                            }
                            st.checked = last_nl + 1;
                        }
                    }
                }
                Ok(data.len() as u32)
            }
            Some(Handle::Scratch(id)) => {
                let mut store = lock(&self.scratch);
                let f = store.files.get_mut(&id).ok_or(FsError::new(libc::ENOENT))?;
                let at = offset as usize;
                let end = at.saturating_add(data.len());
                if end > MAX_SCRATCH {
                    return Err(FsError::new(libc::EFBIG));
                }
                if f.data.len() < end {
                    f.data.resize(end, 0);
                }
                f.data[at..end].copy_from_slice(data);
                f.mtime = SystemTime::now();
                Ok(data.len() as u32)
            }
            _ => Err(FsError::new(libc::EBADF)),
        }
    }

    /// Send what an open-for-write means, once: the PUT of `inputs`, the
    /// POST of a control file or of `credentials`.
    async fn commit(&self, w: &Writer, at_release: bool) -> Result<(), FsError> {
        let (bytes, dirty, poisoned) = {
            let st = lock(&w.state);
            (
                st.buf.clone(),
                st.written || (at_release && st.truncated),
                st.poisoned,
            )
        };
        if let Some(errno) = poisoned {
            return Err(FsError::new(errno));
        }
        match &w.node {
            Node::Inputs(g) => {
                if !dirty {
                    return Ok(());
                }
                self.put_inputs(g, &bytes).await?;
                let mut st = lock(&w.state);
                st.written = false;
                st.truncated = false;
                Ok(())
            }
            Node::Credentials(g) => {
                if !dirty || w.fired.swap(true, Ordering::SeqCst) {
                    return Ok(());
                }
                let creds: Credentials = serde_json::from_slice(&bytes).map_err(|_| {
                    FsError::with(
                        libc::EINVAL,
                        "credentials refused: write JSON {\"username\": ..., \"password\": ...}",
                    )
                })?;
                self.client
                    .update_credentials(g, &creds)
                    .await
                    .map_err(|e| FsError::refused(e, false))?;
                tracing::info!(extractor = %g, "credentials updated");
                Ok(())
            }
            node => {
                // Fire at the first flush after a write or a touch, else at
                // release (`: > start`), and only once per open.
                if !(dirty || at_release) || w.fired.swap(true, Ordering::SeqCst) {
                    return Ok(());
                }
                self.fire(node).await
            }
        }
    }

    /// Validate and PUT new `inputs`, then show them.
    pub(super) async fn put_inputs(&self, g: &Arc<str>, bytes: &[u8]) -> Result<(), FsError> {
        self.writable()?;
        let urls = validate_inputs(bytes)?;
        let dialect = match self.caches.inputs.get_stale(g) {
            Some(i) => i.dialect,
            None => self.inputs(g).await?.0.dialect,
        };
        let inputs = Inputs { urls, dialect };
        self.client
            .put_inputs(g, &inputs)
            .await
            .map_err(|e| FsError::refused(e, false))?;
        tracing::info!(extractor = %g, urls = inputs.urls.len(), "inputs updated");
        self.caches
            .inputs
            .insert(g.clone(), Arc::new(inputs), self.ttl());
        Ok(())
    }

    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        let h = lock(&self.handles).get(&fh).cloned();
        match h {
            Some(Handle::Writer(w)) => self.commit(&w, false).await,
            _ => Ok(()),
        }
    }

    /// fsync: send now whatever is pending, truncation included.
    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        let h = lock(&self.handles).get(&fh).cloned();
        match h {
            Some(Handle::Writer(w)) => self.commit(&w, true).await,
            _ => Ok(()),
        }
    }

    /// Close a handle; a writer never flushed is committed now (errors can
    /// only be logged here: release has no caller to tell).
    pub async fn release_async(&self, fh: u64) {
        let h = lock(&self.handles).remove(&fh);
        if let Some(Handle::Data(..)) = h {
            // An eviction this reader held back can happen now.
            drop(h);
            self.data.trim();
            return;
        }
        if let Some(Handle::Writer(w)) = h {
            self.writer_closed(&w);
            let pending = match w.node {
                Node::Inputs(_) => {
                    let st = lock(&w.state);
                    (st.written || st.truncated) && st.poisoned.is_none()
                }
                _ => !w.fired.load(Ordering::SeqCst),
            };
            if pending {
                if let Err(e) = self.commit(&w, true).await {
                    tracing::error!(error = %e, "a write sent at close failed");
                }
            }
        }
    }

    /// Close a handle without sending what it holds. The NFS adapter ends a
    /// write session this way once its COMMIT has failed: the client then
    /// drops the data, and sending it again at release would be a second
    /// PUT nobody asked for.
    pub fn discard(&self, fh: u64) {
        if let Some(Handle::Writer(w)) = lock(&self.handles).remove(&fh) {
            self.writer_closed(&w);
        }
    }

    /// One descriptor fewer open for writing on the writer's inode.
    fn writer_closed(&self, w: &Writer) {
        let mut writers = lock(&self.writers);
        if let Some(n) = writers.get_mut(&w.ino) {
            *n -= 1;
            if *n == 0 {
                writers.remove(&w.ino);
            }
        }
    }

    /// The size of what an open writer holds now, which is what the file
    /// reads as through that handle (its attributes, for NFS clients that
    /// check the size after each WRITE); None once a refused write poisoned
    /// it, as what it holds will never be sent.
    pub fn pending_len(&self, fh: u64) -> Option<u64> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::Writer(w)) => {
                let st = lock(&w.state);
                st.poisoned.is_none().then_some(st.buf.len() as u64)
            }
            _ => None,
        }
    }

    /// setattr: truncation, times (which fire control files), modes.
    pub async fn setattr(
        &self,
        ino: Ino,
        fh: Option<u64>,
        size: Option<u64>,
        times: bool,
        mode: Option<u32>,
        owner: bool,
    ) -> Result<Entry, FsError> {
        let node = self.node(ino)?;
        if let Node::Scratch(id) = node {
            self.scratch_setattr(id, size, mode)?;
            return self.getattr(ino).await;
        }
        if mode.is_some() || owner {
            return Err(FsError::new(if self.cfg.read_only {
                libc::EROFS
            } else {
                libc::EPERM
            }));
        }
        match &node {
            Node::Inputs(g) => {
                if let Some(s) = size {
                    self.writable()?;
                    let h = fh.and_then(|fh| lock(&self.handles).get(&fh).cloned());
                    if let Some(Handle::Writer(w)) = h {
                        let mut st = lock(&w.state);
                        if s as usize > MAX_INPUTS {
                            return Err(FsError::new(libc::EFBIG));
                        }
                        st.buf.resize(s as usize, 0);
                        st.written = true;
                        st.checked = st.checked.min(s as usize);
                    } else {
                        // truncate(2) by path: a write of the whole file, now.
                        let mut bytes = inputs_text(self.inputs(g).await?.0.as_ref()).into_bytes();
                        if s as usize > MAX_INPUTS {
                            return Err(FsError::new(libc::EFBIG));
                        }
                        bytes.resize(s as usize, 0);
                        self.put_inputs(g, &bytes).await?;
                    }
                }
            }
            Node::Control(..) | Node::ReportStart(_) | Node::Refresh => {
                if times || size.is_some() {
                    self.writable()?;
                    let open = lock(&self.writers).get(&ino).copied().unwrap_or(0);
                    // With a descriptor open (touch), its close fires; else fire now (utime).
                    if open == 0 {
                        self.fire(&node).await?;
                    } else {
                        for h in lock(&self.handles).values() {
                            if let Handle::Writer(w) = h {
                                if w.ino == ino {
                                    lock(&w.state).written = true;
                                }
                            }
                        }
                    }
                }
            }
            Node::Credentials(_) => {}
            _ => {
                if size.is_some() || times {
                    return Err(FsError::new(if self.cfg.read_only {
                        libc::EROFS
                    } else {
                        libc::EPERM
                    }));
                }
            }
        }
        let mut e = self.getattr(ino).await?;
        if matches!(node, Node::Inputs(_)) {
            e.ttl = std::time::Duration::ZERO;
        }
        Ok(e)
    }

    /// Create a scratch file in an extractor's directory.
    pub async fn create(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(Entry, Opened), FsError> {
        self.writable()?;
        let Node::Extractor(g) = self.node(parent)? else {
            return Err(FsError::new(libc::EACCES));
        };
        let name_b = name.as_bytes();
        if name_b.len() > 255 || name_b.contains(&b'/') {
            return Err(FsError::new(libc::EINVAL));
        }
        // A name of the API's own files (the kernel asks create only when the
        // name did not look up, but be safe).
        if let Ok(s) = std::str::from_utf8(name_b) {
            if self.child(&Node::Extractor(g.clone()), s).await.is_ok() {
                return Err(FsError::new(libc::EEXIST));
            }
        }
        let id = {
            let mut store = lock(&self.scratch);
            if store.find(&g, name_b).is_some() {
                return Err(FsError::new(libc::EEXIST));
            }
            store.create(&g, name_b, (mode & 0o7777) as u16)
        };
        let node = Node::Scratch(id);
        let ino = self.inodes.ino(&node);
        let opened = self.open_write(node, ino, flags).await?;
        Ok((self.getattr(ino).await?, opened))
    }

    pub async fn unlink(&self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.writable()?;
        let Node::Extractor(g) = self.node(parent)? else {
            return Err(FsError::new(libc::EPERM));
        };
        let mut store = lock(&self.scratch);
        match store.find(&g, name.as_bytes()) {
            Some(id) => {
                store.remove(id);
                Ok(())
            }
            None => Err(FsError::new(libc::EPERM)),
        }
    }

    /// rename: scratch ↔ scratch, scratch → `inputs` (a write of inputs),
    /// `inputs` → scratch (a copy: the API file cannot go away).
    pub async fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
    ) -> Result<(), FsError> {
        self.writable()?;
        let (Node::Extractor(g), Node::Extractor(g2)) = (self.node(parent)?, self.node(newparent)?)
        else {
            return Err(FsError::new(libc::EPERM));
        };
        if g != g2 {
            return Err(FsError::new(libc::EXDEV));
        }
        let (from, to) = (name.as_bytes(), newname.as_bytes());
        if to.len() > 255 {
            return Err(FsError::new(libc::ENAMETOOLONG));
        }
        let src = lock(&self.scratch).find(&g, from);
        match (src, to) {
            (Some(id), b"inputs") => {
                let data = lock(&self.scratch)
                    .files
                    .get(&id)
                    .map(|f| f.data.clone())
                    .unwrap_or_default();
                self.put_inputs(&g, &data).await?;
                lock(&self.scratch).remove(id);
                Ok(())
            }
            (Some(id), _) => {
                if self.is_api_name(&g, to).await {
                    return Err(FsError::new(libc::EPERM));
                }
                let mut store = lock(&self.scratch);
                if let Some(old) = store.find(&g, to) {
                    if old != id {
                        store.remove(old);
                    }
                }
                if let Some(mut f) = store.remove(id) {
                    f.name = to.to_vec();
                    store.by_name.insert((g.clone(), to.to_vec()), id);
                    store.files.insert(id, f);
                }
                Ok(())
            }
            (None, _) if from == b"inputs" && !self.is_api_name(&g, to).await => {
                let data = inputs_text(self.inputs(&g).await?.0.as_ref()).into_bytes();
                let mut store = lock(&self.scratch);
                if let Some(old) = store.find(&g, to) {
                    store.remove(old);
                }
                let id = store.create(&g, to, 0o644);
                if let Some(f) = store.files.get_mut(&id) {
                    f.data = data;
                }
                Ok(())
            }
            _ => Err(FsError::new(libc::EPERM)),
        }
    }

    async fn is_api_name(&self, g: &Arc<str>, name: &[u8]) -> bool {
        match std::str::from_utf8(name) {
            Ok(s) => self.child(&Node::Extractor(g.clone()), s).await.is_ok(),
            Err(_) => false,
        }
    }

    fn scratch_setattr(
        &self,
        id: u64,
        size: Option<u64>,
        mode: Option<u32>,
    ) -> Result<(), FsError> {
        let mut store = lock(&self.scratch);
        let f = store.files.get_mut(&id).ok_or(FsError::new(libc::ENOENT))?;
        if let Some(s) = size {
            if s as usize > MAX_SCRATCH {
                return Err(FsError::new(libc::EFBIG));
            }
            f.data.resize(s as usize, 0);
        }
        if let Some(m) = mode {
            f.perm = (m & 0o7777) as u16;
        }
        f.mtime = SystemTime::now();
        Ok(())
    }
}
