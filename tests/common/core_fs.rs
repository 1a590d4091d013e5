//! The filesystem without the kernel: an emulator in-process and an
//! [`importfs::fs::core::Fs`] over it, called directly the way the fuser
//! adapter calls it (lookups from ino 1, opendir/readdir, open/read/write,
//! flush, release).
//!
//! Paths are resolved by one lookup a component from the root, following
//! symlinks as the kernel does, so a test reads like a mount test. [`Core`]
//! drops the `Fs` before the emulator and its runtime, and its cache lives
//! in its own temp dir; each `Core` has its own emulator on a free port.

use super::{Emu, KEY};
use importfs::api::{Client, ClientConfig};
use importfs::emulator::Config;
use importfs::fs::core::{DirEntry, Entry, Fs, FsConfig};
use importfs::fs::inodes::{Kind, ROOT_INO};
use importfs::fs::FsError;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::future::Future;
use std::time::Duration;

/// The most symlinks one path may follow, as Linux allows.
const MAX_LINKS: usize = 40;

/// The kernel's read size: what a `cat` asks for at a time.
pub const KERNEL_READ: u32 = 128 << 10;

/// An `Fs` over its own emulator. Fields drop in order: the `Fs` first.
pub struct Core {
    pub fs: Fs,
    pub cache: tempfile::TempDir,
    pub emu: Emu,
}

/// Short timeouts and quick backoff: a test of a failing API must end fast.
pub fn fast_client_config(url: &str) -> ClientConfig {
    ClientConfig {
        attempt_timeout: Duration::from_secs(2),
        call_deadline: Duration::from_secs(6),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ClientConfig::new(url, KEY)
    }
}

impl Core {
    /// The demo account, whose runs started by a test never finish on their
    /// own, under an `Fs` whose metadata TTL outlasts any test: nothing
    /// expires unless the test refreshes.
    pub fn demo() -> Core {
        Core::start(
            Config {
                run_seconds: 1e7,
                ..Config::default()
            },
            FsConfig {
                metadata_ttl: Duration::from_secs(600),
                ..FsConfig::default()
            },
        )
    }

    /// An emulator started with `config`, and an `Fs` of `cfg` over it with
    /// a cache directory of its own.
    pub fn start(config: Config, cfg: FsConfig) -> Core {
        let emu = Emu::start(config);
        let cache = tempfile::tempdir().expect("tempdir");
        let client = Client::new(fast_client_config(&emu.url)).expect("client");
        let fs = {
            let _rt = emu.rt.enter();
            Fs::new(
                FsConfig {
                    cache_dir: cache.path().to_owned(),
                    ..cfg
                },
                client,
            )
            .expect("Fs::new")
        };
        Core { fs, cache, emu }
    }

    /// Run one operation to its end on the emulator's runtime.
    pub fn on<F: Future>(&self, f: F) -> F::Output {
        self.emu.rt.block_on(f)
    }

    /// The entry at `path` (relative to the root), following symlinks.
    pub fn resolve(&self, path: &str) -> Result<Entry, FsError> {
        self.walk(path, true)
    }

    /// The entry at `path`, a symlink itself when the last component is one.
    pub fn resolve_link(&self, path: &str) -> Result<Entry, FsError> {
        self.walk(path, false)
    }

    fn walk(&self, path: &str, follow_last: bool) -> Result<Entry, FsError> {
        let mut stack = vec![self.on(self.fs.getattr(ROOT_INO))?];
        let mut todo: VecDeque<String> = path.split('/').map(str::to_owned).collect();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            match name.as_str() {
                "" | "." => continue,
                ".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let parent = stack.last().expect("the root").attr.ino;
            let e = self.on(self.fs.lookup(parent, OsStr::new(&name)))?;
            if e.attr.kind == Kind::Symlink && (follow_last || !todo.is_empty()) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(FsError::new(libc::ELOOP));
                }
                let target = self.on(self.fs.readlink(e.attr.ino))?;
                let target = String::from_utf8(target).expect("a UTF-8 link target");
                assert!(!target.starts_with('/'), "{path}: absolute link {target}");
                for c in target.split('/').rev() {
                    todo.push_front(c.to_owned());
                }
                continue;
            }
            stack.push(e);
        }
        Ok(stack.pop().expect("the root"))
    }

    /// Every entry of a directory, `.` and `..` first, through
    /// opendir/readdir/releasedir.
    pub fn try_entries(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let ino = self.resolve(path)?.attr.ino;
        let dir = self.on(self.fs.opendir(ino))?;
        let r = self.fs.readdir(dir.fh, 0);
        self.fs.releasedir(dir.fh);
        Ok(r?.into_iter().map(|(_, e)| e).collect())
    }

    pub fn entries(&self, path: &str) -> Vec<DirEntry> {
        self.try_entries(path)
            .unwrap_or_else(|e| panic!("ls {path:?}: {e}"))
    }

    /// The names of a directory but `.` and `..`, in listing order.
    pub fn try_ls(&self, path: &str) -> Result<Vec<String>, FsError> {
        Ok(self
            .try_entries(path)?
            .into_iter()
            .map(|e| e.name.into_string().expect("a UTF-8 name"))
            .filter(|n| n != "." && n != "..")
            .collect())
    }

    pub fn ls(&self, path: &str) -> Vec<String> {
        self.try_ls(path)
            .unwrap_or_else(|e| panic!("ls {path:?}: {e}"))
    }

    /// A whole file through open/read/release, `piece` bytes a read.
    pub fn try_cat_by(&self, path: &str, piece: u32) -> Result<Vec<u8>, FsError> {
        let ino = self.resolve(path)?.attr.ino;
        let fh = self.on(self.fs.open(ino, libc::O_RDONLY))?.fh;
        let r = self.read_to_end(fh, piece);
        self.on(self.fs.release_async(fh));
        r
    }

    pub fn try_cat(&self, path: &str) -> Result<Vec<u8>, FsError> {
        self.try_cat_by(path, KERNEL_READ)
    }

    pub fn cat(&self, path: &str) -> Vec<u8> {
        self.try_cat(path)
            .unwrap_or_else(|e| panic!("cat {path:?}: {e}"))
    }

    /// Reads of `piece` bytes from offset 0 until one comes back empty.
    pub fn read_to_end(&self, fh: u64, piece: u32) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        loop {
            let b = self.on(self.fs.read(fh, out.len() as u64, piece))?;
            if b.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&b);
        }
    }

    /// A symlink's target.
    pub fn readlink(&self, path: &str) -> Result<String, FsError> {
        let ino = self.resolve_link(path)?.attr.ino;
        let t = self.on(self.fs.readlink(ino))?;
        Ok(String::from_utf8(t).expect("a UTF-8 link target"))
    }

    /// Open `path` with open(2)'s `flags`: (ino, fh).
    pub fn open(&self, path: &str, flags: i32) -> Result<(u64, u64), FsError> {
        let ino = self.resolve(path)?.attr.ino;
        Ok((ino, self.on(self.fs.open(ino, flags))?.fh))
    }

    /// Write `data` over a file as a shell's `> path` does through the
    /// kernel: open with O_TRUNC, a flush (the close of the descriptor
    /// dup2'ed away), the writes, a flush and the release of the close. The
    /// first error is the answer; the file is released on every path.
    pub fn write_file(&self, path: &str, data: &[u8]) -> Result<(), FsError> {
        let (_, fh) = self.open(path, libc::O_WRONLY | libc::O_TRUNC)?;
        let r = self.on(async {
            self.fs.flush(fh).await?;
            let mut at = 0;
            while at < data.len() {
                at += self.fs.write(fh, at as u64, &data[at..]).await? as usize;
            }
            self.fs.flush(fh).await
        });
        self.on(self.fs.release_async(fh));
        r
    }

    /// `touch path` through the kernel: open for writing, set the times
    /// (futimens, which names no descriptor), then close: flush, release.
    pub fn touch(&self, path: &str) -> Result<(), FsError> {
        let (ino, fh) = self.open(path, libc::O_WRONLY)?;
        let r = self.on(async {
            self.fs.setattr(ino, None, None, true, None, false).await?;
            self.fs.flush(fh).await
        });
        self.on(self.fs.release_async(fh));
        r
    }
}

/// The errno of a call that must fail.
pub fn errno_of<T: std::fmt::Debug>(r: Result<T, FsError>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), an error was expected"),
        Err(e) => e.errno,
    }
}
