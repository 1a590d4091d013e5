//! The thin adapter: `fuser::Filesystem` → [`Fs`](super::core::Fs).
//!
//! Each method is a span, a call to the core and a reply. Requests that may
//! touch the network are handed to the tokio runtime and answered from the
//! task (fuser 0.18 replies are `Send`), so the FUSE threads never wait on
//! HTTP and one slow download does not stall an `ls` elsewhere.
//!
//! Every method starts with `let t = self.count(FuseOp::..)` and replies to
//! an error with `reply.error(t.err(e))`: that is all the counting of
//! `importfs_fuse_requests_total` and `importfs_fuse_errors_total` there is.

use crate::fs::core::{Attr, Entry, Fs, Opened};
use crate::fs::counters::FuseOp;
use crate::fs::data::FileBytes;
use crate::fs::inodes::Kind;
use crate::fs::FsError;
use fuser::BackingId;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::runtime::Handle;

/// The fuser filesystem: the core plus the runtime its tasks run on.
pub struct FuseFs {
    fs: Arc<Fs>,
    rt: Handle,
    /// The kernel agreed to FUSE passthrough (Linux >= 6.9, and we may use it).
    passthrough: Arc<AtomicBool>,
    backing: Arc<Mutex<Backing>>,
}

/// Passthrough bookkeeping: one backing id per inode, shared by every handle
/// open on it and closed with the last one (the kernel needs the same id for
/// all handles of an inode).
/// The kernel also refuses (EIO) to mix modes on one inode: while a handle
/// opened the ordinary way is open (a reader that started during the
/// download), later opens of that inode must be ordinary too.
#[derive(Default)]
struct Backing {
    by_ino: HashMap<u64, (Arc<BackingId>, usize)>,
    fh_ino: HashMap<u64, u64>,
    cached_by_ino: HashMap<u64, usize>,
    fh_cached: HashMap<u64, u64>,
}

impl Backing {
    fn release(&mut self, fh: u64) {
        if let Some(ino) = self.fh_ino.remove(&fh) {
            if let Some((_, n)) = self.by_ino.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    self.by_ino.remove(&ino);
                }
            }
        }
        if let Some(ino) = self.fh_cached.remove(&fh) {
            if let Some(n) = self.cached_by_ino.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    self.cached_by_ino.remove(&ino);
                }
            }
        }
    }
}

impl FuseFs {
    pub fn new(fs: Arc<Fs>, rt: Handle) -> FuseFs {
        FuseFs {
            fs,
            rt,
            passthrough: Arc::new(AtomicBool::new(false)),
            backing: Arc::new(Mutex::new(Backing::default())),
        }
    }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: if a.kind == Kind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 128 * 1024,
        flags: 0,
    }
}

fn open_flags(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    f
}

fn reply_empty(t: &Tally, reply: ReplyEmpty, r: Result<(), FsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(t.err(e)),
    }
}

fn reply_data(t: &Tally, reply: ReplyData, r: Result<FileBytes, FsError>) {
    match r {
        Ok(data) => reply.data(&data),
        Err(e) => reply.error(t.err(e)),
    }
}

fn reply_entry(t: &Tally, reply: ReplyEntry, r: Result<Entry, FsError>) {
    match r {
        Ok(e) => reply.entry(&e.ttl, &file_attr(&e.attr), Generation(0)),
        Err(e) => reply.error(t.err(e)),
    }
}

/// An errno the adapter decides itself (an operation this filesystem does
/// not do).
impl From<Errno> for FsError {
    fn from(e: Errno) -> FsError {
        FsError::new(e.code())
    }
}

/// One FUSE request: counted when it arrives (`FuseFs::count`); an error
/// reply is counted by its errno, and logged, as it is made
/// (`reply.error(t.err(e))`). Moved into the request's task with the reply.
struct Tally {
    fs: Arc<Fs>,
    op: FuseOp,
    ino: u64,
}

impl Tally {
    /// Count and log a failed request, once: naming the operation and the
    /// inode. An error with nothing to say (a name that is not there, an
    /// operation this filesystem does not do) is logged at debug only:
    /// shells probe names all the time.
    fn err(&self, e: impl Into<FsError>) -> Errno {
        let e = e.into();
        let (op, ino) = (self.op.as_str(), self.ino);
        if e.is_quiet() {
            tracing::debug!(op, ino, errno = e.errno, "{e}");
        } else {
            tracing::warn!(op, ino, errno = e.errno, "{op} failed: {e}");
        }
        self.fs.fuse.error(self.op, e.errno);
        Errno::from_i32(e.errno)
    }
}

impl FuseFs {
    /// Run `f` on the runtime and reply from there.
    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f);
    }

    /// Count a request of `op` on inode `ino` (`importfs_fuse_requests_total`).
    fn count(&self, op: FuseOp, ino: INodeNo) -> Tally {
        self.fs.fuse.request(op);
        Tally {
            fs: self.fs.clone(),
            op,
            ino: ino.0,
        }
    }

    /// The error every mutation gets until writing is implemented for it.
    fn refuse(&self) -> Errno {
        if self.fs.cfg.read_only {
            Errno::EROFS
        } else {
            Errno::EPERM
        }
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger read-ahead and more background requests keep a cold
        // sequential read streaming (see PERFORMANCE.md).
        let _ = config.set_max_readahead(1024 * 1024);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        // open(O_TRUNC) arrives as one open, not a truncate and then an open:
        // otherwise `echo x > inputs` would be two PUTs.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        // Passthrough: complete cache files are read by the kernel itself, at
        // local-file speed (PERFORMANCE.md). Needs Linux >= 6.9 and
        // CAP_SYS_ADMIN; without them every read goes through read().
        if config
            .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
            .is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        // Entries come with their attributes when the kernel sees `ls -l`
        // (lookups after a readdir), and as plain names otherwise: a plain
        // `ls` of a run directory then costs no HEAD of its files.
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        // Lookups and readdirs of one directory run in parallel: without this
        // the kernel serializes them, and with the API hung, 8 shells looking
        // up 8 ids under `crawlruns/` waited 8 deadlines, one after another.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_PARALLEL_DIROPS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let t = self.count(FuseOp::Lookup, parent);
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move { reply_entry(&t, reply, fs.lookup(parent.0, &name).await) });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let t = self.count(FuseOp::Getattr, ino);
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.getattr(ino.0).await {
                Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
                Err(e) => reply.error(t.err(e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let t = self.count(FuseOp::Setattr, ino);
        let fs = self.fs.clone();
        let times = atime.is_some() || mtime.is_some();
        let owner = uid.is_some() || gid.is_some();
        self.spawn(async move {
            match fs
                .setattr(ino.0, fh.map(|f| f.0), size, times, mode, owner)
                .await
            {
                Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
                Err(e) => reply.error(t.err(e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let t = self.count(FuseOp::Readlink, ino);
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(t.err(e)),
            }
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let t = self.count(FuseOp::Mknod, parent);
        reply.error(t.err(self.refuse()));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let t = self.count(FuseOp::Mkdir, parent);
        reply.error(t.err(self.refuse()));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.count(FuseOp::Unlink, parent);
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move { reply_empty(&t, reply, fs.unlink(parent.0, &name).await) });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.count(FuseOp::Rmdir, parent);
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move { reply_empty(&t, reply, fs.rmdir(parent.0, &name).await) });
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        let t = self.count(FuseOp::Symlink, parent);
        reply.error(t.err(self.refuse()));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let t = self.count(FuseOp::Rename, parent);
        if flags.bits() != 0 {
            return reply.error(t.err(Errno::EINVAL));
        }
        let fs = self.fs.clone();
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn(async move {
            reply_empty(
                &t,
                reply,
                fs.rename(parent.0, &name, newparent.0, &newname).await,
            )
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let t = self.count(FuseOp::Link, ino);
        reply.error(t.err(self.refuse()));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let t = self.count(FuseOp::Open, ino);
        let fs = self.fs.clone();
        let passthrough = self.passthrough.clone();
        let backing = self.backing.clone();
        self.spawn(async move {
            let o = match fs.open(ino.0, flags.0).await {
                Ok(o) => o,
                Err(e) => return reply.error(t.err(e)),
            };
            let mut b = crate::fs::cache::lock(&backing);
            if passthrough.load(Ordering::Relaxed) && !b.cached_by_ino.contains_key(&ino.0) {
                if let Some(cf) = fs.backing_file(o.fh) {
                    let id = match b.by_ino.get_mut(&ino.0) {
                        Some((id, n)) => {
                            *n += 1;
                            Some(id.clone())
                        }
                        None => match reply.open_backing(cf.file()) {
                            Ok(id) => {
                                let id = Arc::new(id);
                                b.by_ino.insert(ino.0, (id.clone(), 1));
                                Some(id)
                            }
                            Err(e) => {
                                // Not permitted (not root) or not supported: read() it is.
                                tracing::debug!(error = %e, "passthrough unavailable");
                                passthrough.store(false, Ordering::Relaxed);
                                None
                            }
                        },
                    };
                    if let Some(id) = id {
                        b.fh_ino.insert(o.fh, ino.0);
                        fs.note_data_open(true, false);
                        // No FOPEN_KEEP_CACHE here: the kernel refuses (EIO) a
                        // passthrough open that also asks for the page cache.
                        return reply.opened_passthrough(
                            FileHandle(o.fh),
                            FopenFlags::empty(),
                            &id,
                        );
                    }
                }
            }
            if fs.is_data_handle(o.fh) {
                b.fh_cached.insert(o.fh, ino.0);
                *b.cached_by_ino.entry(ino.0).or_default() += 1;
                fs.note_data_open(false, o.keep_cache);
            }
            drop(b);
            reply.opened(FileHandle(o.fh), open_flags(&o))
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let t = self.count(FuseOp::Read, ino);
        // Bytes that are here are copied out on this FUSE thread; a read
        // ahead of the download waits on the runtime, and its copy and
        // reply then run on a blocking thread, never on an async worker.
        if let Some(r) = self.fs.read_now(fh.0, offset, size) {
            return reply_data(&t, reply, r);
        }
        let fs = self.fs.clone();
        let rt = self.rt.clone();
        self.spawn(async move {
            if let Err(e) = fs.wait_readable(fh.0, offset, size).await {
                return reply.error(t.err(e));
            }
            rt.spawn_blocking(move || {
                let r = match fs.read_now(fh.0, offset, size) {
                    Some(r) => r,
                    // Cannot happen (bytes never go away once here), but if
                    // it did, wait again rather than answer wrongly.
                    None => Handle::current().block_on(fs.read(fh.0, offset, size)),
                };
                reply_data(&t, reply, r)
            });
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let t = self.count(FuseOp::Write, ino);
        let fs = self.fs.clone();
        let data = data.to_vec();
        self.spawn(async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(t.err(e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let t = self.count(FuseOp::Flush, ino);
        let fs = self.fs.clone();
        self.spawn(async move { reply_empty(&t, reply, fs.flush(fh.0).await) });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.count(FuseOp::Release, ino);
        crate::fs::cache::lock(&self.backing).release(fh.0);
        let fs = self.fs.clone();
        reply.ok();
        self.spawn(async move { fs.release_async(fh.0).await });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let t = self.count(FuseOp::Fsync, ino);
        let fs = self.fs.clone();
        self.spawn(async move { reply_empty(&t, reply, fs.fsync(fh.0).await) });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let t = self.count(FuseOp::Opendir, ino);
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.opendir(ino.0).await {
                Ok(o) => reply.opened(FileHandle(o.fh), open_flags(&o)),
                Err(e) => reply.error(t.err(e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let t = self.count(FuseOp::Readdir, ino);
        match self.fs.readdir(fh.0, offset) {
            Ok(entries) => {
                for (next, e) in entries {
                    if reply.add(INodeNo(e.ino), next, file_type(e.kind), &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(t.err(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: fuser::ReplyDirectoryPlus,
    ) {
        let t = self.count(FuseOp::Readdirplus, ino);
        let fs = self.fs.clone();
        self.spawn(async move {
            // A reply buffer holds a few hundred entries; ask for about that many.
            match fs.readdirplus(fh.0, offset, 256).await {
                Ok(entries) => {
                    for (next, e, a) in entries {
                        if reply.add(
                            INodeNo(e.ino),
                            next,
                            &e.name,
                            &a.ttl,
                            &file_attr(&a.attr),
                            Generation(0),
                        ) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(t.err(e)),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.count(FuseOp::Releasedir, ino);
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    /// `df` shows the result cache: its size is `--cache-size`, its use the
    /// bytes of result files held. (Reporting zeros made `df` print a
    /// filesystem of no size, and some tools refuse to write to one.)
    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.count(FuseOp::Statfs, ino);
        const BLOCK: u64 = 4096;
        let (size, used) = self.fs.cache_usage();
        let blocks = size / BLOCK;
        let free = blocks.saturating_sub(used.div_ceil(BLOCK));
        let files = self.fs.inode_count();
        reply.statfs(
            blocks,
            free,
            free,
            files,
            0,
            BLOCK as u32,
            255,
            BLOCK as u32,
        );
    }

    fn getxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        let t = self.count(FuseOp::Getxattr, ino);
        // ENOSYS tells the kernel to stop asking for this mount.
        reply.error(t.err(Errno::ENOSYS));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        let t = self.count(FuseOp::Listxattr, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.count(FuseOp::Access, ino);
        reply.ok();
    }

    // What follows is what the mount does not do. fuser's defaults give the
    // same answers but log a warning each time, and everyday tools ask (the
    // shell's isatty is an ioctl, vim sets xattrs, cp asks SEEK_DATA): the
    // log of a mount would fill with noise. ENOSYS makes the kernel stop
    // asking and use its own generic behaviour for the rest of the mount.

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let t = self.count(FuseOp::Setxattr, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        let t = self.count(FuseOp::Removexattr, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let t = self.count(FuseOp::Fsyncdir, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    /// No ioctl is a terminal's: ENOTTY is what isatty() and friends expect.
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        let t = self.count(FuseOp::Ioctl, ino);
        reply.error(t.err(Errno::ENOTTY));
    }

    fn poll(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        let t = self.count(FuseOp::Poll, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        let t = self.count(FuseOp::Fallocate, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        let t = self.count(FuseOp::Lseek, ino);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: fuser::ReplyWrite,
    ) {
        let t = self.count(FuseOp::CopyFileRange, ino_in);
        reply.error(t.err(Errno::ENOSYS));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        let t = self.count(FuseOp::Create, parent);
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move {
            match fs.create(parent.0, &name, mode & !umask, flags).await {
                Ok((e, o)) => reply.created(
                    &e.ttl,
                    &file_attr(&e.attr),
                    Generation(0),
                    FileHandle(o.fh),
                    open_flags(&o),
                ),
                Err(e) => reply.error(t.err(e)),
            }
        });
    }
}
