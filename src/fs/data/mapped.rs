//! Bytes handed to the kernel for a read of a result file: owned, a
//! short-lived mapping of the cache file (see [`Mapped`]), or bytes held
//! by the memory path.

/// Bytes read from a file of the mount: owned, a mapping of the cache file,
/// or a slice of a memory-path segment.
pub struct FileBytes(Bytes);

enum Bytes {
    Owned(Vec<u8>),
    Mapped(Mapped),
    /// Bytes held by the memory path, in their segment's buffer.
    Shared(super::memory::MemSlice),
}

impl FileBytes {
    pub(super) fn mapped(m: Mapped) -> FileBytes {
        FileBytes(Bytes::Mapped(m))
    }

    pub(super) fn shared(b: super::memory::MemSlice) -> FileBytes {
        FileBytes(Bytes::Shared(b))
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(v: Vec<u8>) -> FileBytes {
        FileBytes(Bytes::Owned(v))
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m.bytes(),
            Bytes::Shared(b) => b.bytes(),
        }
    }
}

/// A read-only mapping of `len` bytes of a cache file at `offset`, made for
/// one reply and unmapped when dropped.
///
/// Replying from the mapping lets the kernel copy the page-cache pages of the
/// cache file straight into the reply, instead of a `pread` copy into a
/// buffer first: a cold `cat` spends a fifth of the mount's CPU on that copy.
/// Only ranges already written are mapped, and a cache file never shrinks
/// below a byte it holds (it is cut only to its final size and otherwise only
/// unlinked), so the mapping cannot fault. `MAP_POPULATE` maps every page at
/// once (Linux; macOS maps them as they are touched), and the mapping lives for one reply only, so the mount's RSS does
/// not grow with the files it streams.
pub(super) struct Mapped {
    base: *mut libc::c_void,
    map_len: usize,
    skip: usize,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    pub(super) fn new(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let page = crate::platform::page_size();
        let start = offset - offset % page;
        let skip = (offset - start) as usize;
        let map_len = skip + len;
        // SAFETY: a fresh shared read-only mapping of a range the file holds.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED | crate::platform::MAP_POPULATE,
                file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped {
            base,
            map_len,
            skip,
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `skip + len` bytes are mapped readable at `base` until drop.
        unsafe { std::slice::from_raw_parts(self.base.cast::<u8>().add(self.skip), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

/// Read exactly `len` bytes at `offset` into a new buffer without zeroing it
/// first (zeroing is a measurable share of a cold read's CPU).
pub(super) fn read_at_uninit(
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        // SAFETY: the pointer and length stay within the buffer's spare
        // capacity, which pread only writes; set_len below covers only the
        // bytes pread reported as written.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                len - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
        // SAFETY: the first `done` bytes were written by pread.
        unsafe { buf.set_len(done) };
    }
    Ok(buf)
}
