//! The second adapter: NFSv3 (`nfs3_server`'s traits) → [`Fs`], so that a
//! Mac can mount the account with the NFS client it ships, no kernel
//! extension needed (as rclone's `nfsmount` and xet-core do).
//!
//! Each method is a call to the core and a conversion (`convert.rs`). What
//! NFS lacks is open and close; `sessions.rs` stands in for them, so that
//! the core's rules hold as they do under FUSE: a result file's bytes are
//! read as they arrive and kept for later mounts; `inputs` is validated and
//! PUT once, at the COMMIT a client sends at close or fsync (or a FILE_SYNC
//! WRITE), and a failed PUT fails that COMMIT, which the writer's close()
//! reports; a touch or a truncation of `start` is one POST.
//!
//! File handles are inode numbers; the server puts its start time in front
//! of them, so a handle from an earlier server is NFS3ERR_STALE, never
//! another object. Who may connect is decided per call in
//! [`Shared::authorize`], with what the server knows of the connection.

mod convert;
mod dir;
mod server;
mod sessions;

pub use server::{NfsOptions, NfsServer, EXPORT};

use self::convert::{fattr, status, On};
use self::sessions::{HandleCache, Lease, Session, WriteSessions};
use crate::fs::core::Fs;
use crate::fs::inodes::{Ino, Kind, ROOT_INO};
use crate::fs::FsError;
use nfs3_server::nfs3_types::nfs3::{
    createverf3, fattr3, filename3, nfspath3, nfsstat3, sattr3, set_atime, set_mtime, stable_how,
    Nfs3Option,
};
use nfs3_server::nfs3_types::rpc::auth_unix;
use nfs3_server::vfs::{
    FileHandleU64, NfsFileSystem, NfsReadFileSystem, ReadDirPlusIterator, VFSCapabilities,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What every connection of one server shares: the filesystem and the
/// handles standing in for open files.
pub(crate) struct Shared {
    fs: Arc<Fs>,
    reads: HandleCache,
    dirs: HandleCache,
    writes: WriteSessions,
    opts: NfsOptions,
}

/// The connection a call came on, for [`Shared::authorize`].
pub(crate) struct Peer {
    addr: String,
    /// The client's source port is below 1024 (kernel NFS clients').
    reserved_port: bool,
    /// A refusal was logged for this connection already.
    logged: AtomicBool,
}

impl Peer {
    pub(crate) fn new(addr: std::net::SocketAddr) -> Peer {
        Peer {
            addr: addr.to_string(),
            reserved_port: addr.port() < 1024,
            logged: AtomicBool::new(false),
        }
    }
}

/// The filesystem as one connection sees it: the shared state, and who is
/// at the other end.
pub struct NfsFs {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
}

impl Shared {
    fn new(fs: Arc<Fs>, opts: NfsOptions) -> Shared {
        Shared {
            fs,
            reads: HandleCache::default(),
            dirs: HandleCache::default(),
            writes: WriteSessions::default(),
            opts,
        }
    }

    /// May this call go on? Only from a reserved source port (unless
    /// allowed otherwise), with AUTH_SYS credentials of the serving user or
    /// root. A refusal is an RPC auth error (AUTH_TOOWEAK), logged once per
    /// connection.
    fn authorize(&self, peer: &Peer, auth: Option<&auth_unix>) -> bool {
        let why = if !peer.reserved_port && !self.opts.allow_unprivileged_ports {
            Some(
                "its source port is not a reserved one (below 1024), as a kernel NFS client's \
                 is (`importfs serve nfs --allow-unprivileged-ports` lets user-space clients in)"
                    .to_owned(),
            )
        } else {
            match auth {
                None => Some("it sent no AUTH_SYS credentials (AUTH_NONE)".to_owned()),
                Some(a) if a.uid != self.opts.uid && a.uid != 0 => Some(format!(
                    "its uid {} is neither the serving user's ({}) nor root's",
                    a.uid, self.opts.uid
                )),
                Some(_) => None,
            }
        };
        let Some(why) = why else { return true };
        if !peer.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(client = %peer.addr, "refused an NFS client: {why}");
        }
        false
    }

    /// Attributes; a file being written shows the size of what it holds.
    async fn attr(&self, ino: Ino) -> Result<fattr3, FsError> {
        let mut a = fattr(&self.fs.getattr(ino).await?.attr);
        if let Some(len) = self.writes.peek(ino).and_then(|fh| self.fs.pending_len(fh)) {
            a.size = len;
            a.used = len;
        }
        Ok(a)
    }

    /// The read handle of a result file, opened if need be; other files
    /// are read through a handle of their own, opened for the one read.
    async fn read(&self, ino: Ino, offset: u64, count: u32) -> Result<(Vec<u8>, bool), FsError> {
        let fs = &self.fs;
        // A session's bytes, unless a refused write poisoned it: those
        // will never be sent, so readers see what the service holds.
        let pending = self
            .writes
            .peek(ino)
            .and_then(|fh| Some((fh, fs.pending_len(fh)?)));
        if let Some((fh, len)) = pending {
            let bytes = fs.read(fh, offset, count).await?;
            return Ok((bytes.to_vec(), offset + bytes.len() as u64 >= len));
        }
        if let Some(lease) = self.reads.get(ino) {
            return read_leased(fs, &lease, offset, count).await;
        }
        if fs.is_events(ino) {
            // A log: read at any offset, with no open, as FUSE reads it.
            let bytes = fs.events.read(offset, count as usize);
            let eof = offset + bytes.len() as u64 >= fs.events.size_and_mtime().0;
            return Ok((bytes, eof));
        }
        let opened = fs.open(ino, libc::O_RDONLY).await?;
        if fs.is_data_handle(opened.fh) {
            let size = fs.getattr(ino).await?.attr.size;
            let lease = self.reads.insert(ino, opened.fh, size);
            return read_leased(fs, &lease, offset, count).await;
        }
        let r = fs.read(opened.fh, offset, count).await;
        fs.release_async(opened.fh).await;
        let bytes = r?.to_vec();
        let eof = bytes.len() < count as usize;
        Ok((bytes, eof))
    }

    /// The write session of `ino` (opened if need be), locked, with the
    /// core handle it writes through.
    async fn session(
        &self,
        ino: Ino,
    ) -> Result<(tokio::sync::OwnedMutexGuard<Option<Session>>, u64), FsError> {
        let mut s = self.writes.slot(ino).lock_owned().await;
        let fh = match *s {
            Some(sess) => sess.fh,
            None => self.fs.open(ino, libc::O_WRONLY).await?.fh,
        };
        let idle = if self.fs.is_trigger(ino) {
            sessions::TRIGGER_IDLE
        } else {
            sessions::WRITE_IDLE
        };
        *s = Some(Session {
            fh,
            last: Instant::now(),
            idle,
        });
        Ok((s, fh))
    }

    /// End a session: what it holds is sent as a close sends it (nothing,
    /// if a commit sent it already).
    async fn end(&self, s: &mut Option<Session>) {
        if let Some(sess) = s.take() {
            self.fs.release_async(sess.fh).await;
        }
    }

    async fn write(
        &self,
        ino: Ino,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), FsError> {
        let (mut s, fh) = self.session(ino).await?;
        // A refused write (a bad URL, too much) leaves the session
        // poisoned: its COMMIT fails and nothing is ever sent.
        self.fs.write(fh, offset, data).await?;
        if stable == stable_how::UNSTABLE {
            drop(s);
            return Ok((self.attr(ino).await?, stable_how::UNSTABLE));
        }
        self.commit_locked(&mut s).await?;
        drop(s);
        Ok((self.attr(ino).await?, stable_how::FILE_SYNC))
    }

    /// COMMIT: send what the session holds, and end it. A failed send
    /// fails the COMMIT, and its data is dropped, as the client drops it.
    async fn commit(&self, ino: Ino) -> Result<(), FsError> {
        let mut s = self.writes.slot(ino).lock_owned().await;
        self.commit_locked(&mut s).await
    }

    async fn commit_locked(&self, s: &mut Option<Session>) -> Result<(), FsError> {
        let Some(sess) = s.take() else {
            return Ok(());
        };
        match self.fs.fsync(sess.fh).await {
            Ok(()) => {
                self.fs.release_async(sess.fh).await;
                Ok(())
            }
            Err(e) => {
                self.fs.discard(sess.fh);
                Err(e)
            }
        }
    }

    /// SETATTR. A truncation or a touch of a file that is written as a
    /// whole joins its write session, so `echo x > inputs` (a truncation,
    /// then a WRITE and a COMMIT) is one PUT; on a control file it is the
    /// POST, sent now, and a WRITE right after (`echo > start`) joins it
    /// and sends nothing more.
    async fn setattr(&self, ino: Ino, set: &sattr3) -> Result<fattr3, FsError> {
        let size = match set.size {
            Nfs3Option::Some(s) => Some(s),
            Nfs3Option::None => None,
        };
        let mode = match set.mode {
            Nfs3Option::Some(m) => Some(m),
            Nfs3Option::None => None,
        };
        let owner =
            matches!(set.uid, Nfs3Option::Some(_)) || matches!(set.gid, Nfs3Option::Some(_));
        let times = !matches!(set.atime, set_atime::DONT_CHANGE)
            || !matches!(set.mtime, set_mtime::DONT_CHANGE);
        let fs = &self.fs;
        if mode.is_some() || owner || (size.is_none() && !times) {
            fs.setattr(ino, None, size, times, mode, owner).await?;
            return self.attr(ino).await;
        }
        let trigger = fs.is_trigger(ino);
        if trigger {
            // A new touch is a new POST: the session before it ends first.
            let mut s = self.writes.slot(ino).lock_owned().await;
            self.end(&mut s).await;
        }
        let (mut s, fh) = match self.session(ino).await {
            Ok(s) => s,
            // Not a file one writes (an API file): the core says why.
            Err(_) => {
                fs.setattr(ino, None, size, times, None, false).await?;
                return self.attr(ino).await;
            }
        };
        fs.setattr(ino, Some(fh), size, times, None, false).await?;
        if trigger {
            if let Err(e) = fs.fsync(fh).await {
                s.take();
                fs.discard(fh);
                return Err(e);
            }
        }
        drop(s);
        self.attr(ino).await
    }

    /// Release what has been idle: read handles, listings, write sessions
    /// (whose pending changes are then sent, as a close sends them).
    pub(crate) async fn reap(&self, all: bool) {
        use self::sessions::READ_IDLE;
        let (writes, reads, dirs) = if all {
            (
                self.writes.take_all(),
                self.reads.take_all(),
                self.dirs.take_all(),
            )
        } else {
            (
                self.writes.take_idle(false),
                self.reads.take_idle(READ_IDLE),
                self.dirs.take_idle(READ_IDLE),
            )
        };
        for fh in writes.into_iter().chain(reads) {
            self.fs.release_async(fh).await;
        }
        for fh in dirs {
            self.fs.releasedir(fh);
        }
    }

    /// mkdir, symlink and the like: EROFS on a read-only server, else EPERM.
    fn refused(&self) -> FsError {
        FsError::new(if self.fs.cfg.read_only {
            libc::EROFS
        } else {
            libc::EPERM
        })
    }
}

async fn read_leased(
    fs: &Fs,
    lease: &Lease,
    offset: u64,
    count: u32,
) -> Result<(Vec<u8>, bool), FsError> {
    let bytes = fs.read(lease.fh, offset, count).await?;
    let eof = offset + bytes.len() as u64 >= lease.size;
    Ok((bytes.to_vec(), eof))
}

fn ino(h: &FileHandleU64) -> Ino {
    h.as_u64()
}

fn name<'a>(f: &'a filename3<'_>) -> &'a OsStr {
    OsStr::from_bytes(f.as_ref())
}

impl NfsReadFileSystem for NfsFs {
    type Handle = FileHandleU64;

    fn root_dir(&self) -> FileHandleU64 {
        ROOT_INO.into()
    }

    fn authorize(&self, auth: Option<&auth_unix>) -> bool {
        self.shared.authorize(&self.peer, auth)
    }

    async fn lookup(
        &self,
        dir: &FileHandleU64,
        filename: &filename3<'_>,
    ) -> Result<FileHandleU64, nfsstat3> {
        let (fs, d) = (&self.shared.fs, ino(dir));
        let r = match filename.as_ref() {
            b"." => fs.getattr(d).await.map(|_| d),
            b".." => fs.parent(d),
            _ => fs.lookup(d, name(filename)).await.map(|e| e.attr.ino),
        };
        r.map(Into::into)
            .map_err(|e| status("lookup", d, On::Name, e))
    }

    async fn getattr(&self, id: &FileHandleU64) -> Result<fattr3, nfsstat3> {
        (self.shared.attr(ino(id)).await).map_err(|e| status("getattr", ino(id), On::Handle, e))
    }

    async fn read(
        &self,
        id: &FileHandleU64,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        (self.shared.read(ino(id), offset, count).await)
            .map_err(|e| status("read", ino(id), On::Handle, e))
    }

    async fn readdirplus(
        &self,
        dir: &FileHandleU64,
        cookie: u64,
    ) -> Result<impl ReadDirPlusIterator<FileHandleU64>, nfsstat3> {
        dir::open(&self.shared, ino(dir), cookie)
            .await
            .map_err(|e| status("readdir", ino(dir), On::Handle, e))
    }

    async fn readlink(&self, id: &FileHandleU64) -> Result<nfspath3<'_>, nfsstat3> {
        (self.shared.fs.readlink(ino(id)).await)
            .map(nfspath3::from)
            .map_err(|e| status("readlink", ino(id), On::Handle, e))
    }
}

impl NfsFileSystem for NfsFs {
    fn capabilities(&self) -> VFSCapabilities {
        if self.shared.fs.cfg.read_only {
            VFSCapabilities::ReadOnly
        } else {
            VFSCapabilities::ReadWrite
        }
    }

    async fn setattr(&self, id: &FileHandleU64, set: sattr3) -> Result<fattr3, nfsstat3> {
        (self.shared.setattr(ino(id), &set).await)
            .map_err(|e| status("setattr", ino(id), On::Handle, e))
    }

    async fn write(
        &self,
        id: &FileHandleU64,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        (self.shared.write(ino(id), offset, data, stable).await)
            .map_err(|e| status("write", ino(id), On::Handle, e))
    }

    /// CREATE. A name that exists here is an UNCHECKED create (the server
    /// answers a GUARDED one NFS3ERR_EXIST before asking, as RFC 1813
    /// 3.3.8 says; libnfs 4's `nfs-cp` asks GUARDED, as it opens with
    /// O_EXCL). An UNCHECKED create of an existing file is an open, as
    /// Linux's nfsd treats it: of the attributes only a size of 0 is kept
    /// (it truncates `inputs` in its write session, or is the POST of a
    /// control file); a mode or an owner is not a chmod. Of an existing
    /// directory or link it is NFS3ERR_EXIST.
    async fn create(
        &self,
        dir: &FileHandleU64,
        filename: &filename3<'_>,
        attr: sattr3,
    ) -> Result<(FileHandleU64, fattr3), nfsstat3> {
        let (shared, d) = (&self.shared, ino(dir));
        if let Ok(e) = shared.fs.lookup(d, name(filename)).await {
            let ino = e.attr.ino;
            if e.attr.kind != Kind::File {
                return Err(nfsstat3::NFS3ERR_EXIST);
            }
            let a = if matches!(attr.size, Nfs3Option::Some(0)) {
                let truncate = sattr3 {
                    size: Nfs3Option::Some(0),
                    ..Default::default()
                };
                shared.setattr(ino, &truncate).await
            } else {
                shared.attr(ino).await
            };
            return a
                .map(|a| (ino.into(), a))
                .map_err(|e| status("create", ino, On::Handle, e));
        }
        let mode = match attr.mode {
            Nfs3Option::Some(m) => m,
            Nfs3Option::None => 0o644,
        };
        let flags = libc::O_WRONLY | libc::O_CREAT;
        let made = shared.fs.create(d, name(filename), mode, flags).await;
        let (entry, opened) = made.map_err(|e| status("create", d, On::Name, e))?;
        shared.fs.release_async(opened.fh).await;
        Ok((entry.attr.ino.into(), fattr(&entry.attr)))
    }

    /// Exclusive create needs a verifier kept with the file; clients fall
    /// back to a guarded create, which scratch files support.
    async fn create_exclusive(
        &self,
        _dir: &FileHandleU64,
        _filename: &filename3<'_>,
        _verf: createverf3,
    ) -> Result<FileHandleU64, nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    async fn mkdir(
        &self,
        dir: &FileHandleU64,
        _dirname: &filename3<'_>,
    ) -> Result<(FileHandleU64, fattr3), nfsstat3> {
        Err(status("mkdir", ino(dir), On::Name, self.shared.refused()))
    }

    /// REMOVE and RMDIR both: a directory is an `rmdir` (archive or delete,
    /// with `--allow-delete`), anything else an `unlink`.
    async fn remove(&self, dir: &FileHandleU64, filename: &filename3<'_>) -> Result<(), nfsstat3> {
        let (fs, d) = (&self.shared.fs, ino(dir));
        let r = match fs.lookup(d, name(filename)).await {
            Ok(e) if e.attr.kind == Kind::Dir => fs.rmdir(d, name(filename)).await,
            Ok(_) => fs.unlink(d, name(filename)).await,
            Err(e) => Err(e),
        };
        r.map_err(|e| status("remove", d, On::Name, e))
    }

    async fn rename<'a>(
        &self,
        from_dir: &FileHandleU64,
        from_name: &filename3<'a>,
        to_dir: &FileHandleU64,
        to_name: &filename3<'a>,
    ) -> Result<(), nfsstat3> {
        let fs = &self.shared.fs;
        (fs.rename(ino(from_dir), name(from_name), ino(to_dir), name(to_name))
            .await)
            .map_err(|e| status("rename", ino(from_dir), On::Name, e))
    }

    async fn symlink<'a>(
        &self,
        dir: &FileHandleU64,
        _linkname: &filename3<'a>,
        _symlink: &nfspath3<'a>,
        _attr: &sattr3,
    ) -> Result<(FileHandleU64, fattr3), nfsstat3> {
        Err(status("symlink", ino(dir), On::Name, self.shared.refused()))
    }

    async fn commit(&self, id: &FileHandleU64, _offset: u64, _count: u32) -> Result<(), nfsstat3> {
        (self.shared.commit(ino(id)).await).map_err(|e| status("commit", ino(id), On::Handle, e))
    }
}
