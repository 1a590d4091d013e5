//! The thin adapter: `fuser::Filesystem` → [`Fs`](super::core::Fs), and the
//! only module that knows fuser.
//!
//! Each method is a count, a call to the core and a reply. Requests that may
//! touch the network are handed to the tokio runtime and answered from the
//! task (fuser 0.18 replies are `Send`), so the FUSE threads never wait on
//! HTTP and one slow download does not stall an `ls` elsewhere.
//!
//! Every method starts with `let t = self.count(FuseOp::..)` and replies to
//! an error with `reply.error(t.err(e))`: that is all the counting of
//! `importfs_fuse_requests_total` and `importfs_fuse_errors_total` there is,
//! and the one place a failed request is logged (`reply.rs`).
//!
//! Reads are the exception to "hand it to the runtime": a read whose bytes
//! are in the cache file is answered on the FUSE thread, and one that must
//! wait for the download waits on the runtime but copies on a blocking
//! thread, so the 1 MiB copies never occupy an async worker.
//!
//! This file is one piece over 600 lines because it is one `impl
//! Filesystem`, and a trait impl cannot be split across files: about forty
//! methods of a few lines each, including the operations refused on
//! purpose (so that fuser never logs "not implemented").

use crate::fs::core::{Fs, Inval};
use crate::fs::counters::FuseOp;
use passthrough::{open_flags, Passthrough};
use reply::{file_attr, file_type, reply_data, reply_empty, reply_entry, Tally};

mod passthrough;
mod reply;
use fuser::{
    Errno, FileHandle, Filesystem, Generation, INodeNo, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::runtime::Handle;

/// The fuser filesystem: the core plus the runtime its tasks run on.
pub struct FuseFs {
    fs: Arc<Fs>,
    rt: Handle,
    /// FUSE passthrough of complete result files, when the kernel has it.
    passthrough: Arc<Passthrough>,
}

impl FuseFs {
    pub fn new(fs: Arc<Fs>, rt: Handle) -> FuseFs {
        FuseFs {
            fs,
            rt,
            passthrough: Arc::new(Passthrough::default()),
        }
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
        Tally::new(&self.fs, op, ino)
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
        // sequential read streaming: the kernel then sends 1 MiB reads and
        // keeps several in flight while the download runs.
        let _ = config.set_max_readahead(1024 * 1024);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        // open(O_TRUNC) arrives as one open, not a truncate and then an open:
        // otherwise `echo x > inputs` would be two PUTs.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        // Passthrough: complete cache files are read by the kernel itself, at
        // local-file speed (the README's Performance section has figures).
        // Needs Linux >= 6.9 and
        // CAP_SYS_ADMIN; without them every read goes through read().
        if config
            .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
            .is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.enable();
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

    /// macOS (macFUSE) asks for the creation and backup times apart from
    /// the other attributes: created is the mtime, as `getattr` says, and
    /// there is no backup time (the epoch, as for a file never backed up).
    #[cfg(target_os = "macos")]
    fn getxtimes(&self, _req: &Request, ino: INodeNo, reply: fuser::ReplyXTimes) {
        let t = self.count(FuseOp::Getattr, ino);
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.getattr(ino.0).await {
                Ok(e) => reply.xtimes(SystemTime::UNIX_EPOCH, e.attr.mtime),
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
        self.spawn(async move {
            match fs.open(ino.0, flags.0).await {
                Ok(o) => passthrough.reply_open(&fs, ino.0, o, reply),
                Err(e) => reply.error(t.err(e)),
            }
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
        if let Some((off, len)) = self.passthrough.behind(fh.0, offset) {
            if self.fs.fetches_to_disk(fh.0) {
                self.fs.invalidate_all(&[Inval::Pages(ino.0, off, len)]);
            }
        }
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
                    // Memory-path bytes dropped since the wait ended:
                    // wait again rather than answer wrongly.
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
        // A complete file will be passed through at its next open: drop
        // the pages its reader left now, off that open's path.
        let left = self.passthrough.release(fh.0);
        if let Some(from) = left.filter(|_| self.fs.backing_file(fh.0).is_some()) {
            self.fs.invalidate_all(&[Inval::Pages(ino.0, from, 0)]);
        }
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
