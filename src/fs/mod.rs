//! The filesystem: a kernel-free core (`core`) over the API client, and a thin
//! fuser adapter (`fuse`). See ARCHITECTURE.md for the layering.

pub mod cache;
pub mod core;
pub mod counters;
pub mod data;
pub mod fuse;
pub mod inodes;
pub mod names;
pub mod store;
pub mod write;
pub use data::FetchPlan;

use std::fmt;

/// An error of a file operation: the errno the syscall returns.
///
/// The cause was logged where it happened (with the API key already redacted
/// by `api::Error`), so this carries only what the kernel needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsError {
    pub errno: i32,
}

impl FsError {
    pub const fn new(errno: i32) -> FsError {
        FsError { errno }
    }

    /// A local I/O failure (cache directory): logged, then EIO.
    pub fn io(what: &str, e: std::io::Error) -> FsError {
        tracing::error!(error = %e, "{what}");
        FsError::new(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.errno))
    }
}

impl std::error::Error for FsError {}

impl From<crate::api::Error> for FsError {
    fn from(e: crate::api::Error) -> FsError {
        let errno = e.errno();
        if errno == libc::ENOENT {
            tracing::debug!(error = %e, "not found");
        } else {
            tracing::warn!(error = %e, "API call failed");
        }
        FsError::new(errno)
    }
}
