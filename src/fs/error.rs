//! The one error of a file operation: the errno the syscall returns, what
//! went wrong in words, and its cause.
//!
//! An error is logged once, by the adapter, when it replies: it names the
//! FUSE operation and the inode (`fuse/reply.rs`). Code below the adapter does not
//! log failures it returns; it puts what the user needs to know (which line
//! of `inputs` is wrong, which size the server claimed) in the message.
//!
//! The HTTP→errno mapping lives here, not in `api/`: the client knows HTTP,
//! only the filesystem knows errnos. Text from the API was redacted when the
//! `api::Error` was made, so an error's Display is safe to log.

use crate::api::Error as ApiError;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A failed file operation.
#[derive(Debug, Clone)]
pub struct FsError {
    /// What the syscall returns.
    pub errno: i32,
    /// What went wrong, for the log.
    message: Option<Cow<'static, str>>,
    /// The cause (an API call, a local I/O error). `Arc` so that one failed
    /// download can fail every reader waiting for it.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl FsError {
    /// An error that needs no words (ENOENT of a name that is not there,
    /// EBADF of a stale handle): the errno says it all.
    pub const fn new(errno: i32) -> FsError {
        FsError {
            errno,
            message: None,
            source: None,
        }
    }

    /// An error with a message for the log.
    pub fn with(errno: i32, message: impl Into<Cow<'static, str>>) -> FsError {
        FsError {
            errno,
            message: Some(message.into()),
            source: None,
        }
    }

    /// A local I/O failure (the cache directory): its own errno (ENOSPC,
    /// EACCES), EIO when it has none.
    pub fn io(what: &'static str, e: std::io::Error) -> FsError {
        FsError {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            message: Some(what.into()),
            source: Some(Arc::new(e)),
        }
    }

    /// Put `message` in front of what the error already says.
    pub fn context(mut self, message: impl Into<Cow<'static, str>>) -> FsError {
        let m = message.into();
        self.message = Some(match self.message.take() {
            Some(old) => format!("{m}: {old}").into(),
            None => m,
        });
        self
    }

    /// An API failure of a call that changes something (a PUT, a start):
    /// 401/403 means the key lacks the right; with `busy_on_400`, a 400 is
    /// the service saying a run is already in progress (EBUSY).
    pub fn refused(e: ApiError, busy_on_400: bool) -> FsError {
        if busy_on_400 && e.status() == Some(400) {
            let mut err = FsError::from(e).context("refused: a run is already in progress");
            err.errno = libc::EBUSY;
            return err;
        }
        let errno = errno_of(&e);
        let err = FsError::from(e);
        if errno == libc::EACCES {
            return err.context("the API refused the request (is the API key right?)");
        }
        err
    }

    /// What went wrong, in words, if more than the errno.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Whether the errno says it all: no words and no cause. Such errors are
    /// everyday answers (a name that is not there, an operation this
    /// filesystem does not do), not worth a warning.
    pub fn is_quiet(&self) -> bool {
        self.message.is_none() && self.source.is_none()
    }
}

/// The errno a failed API call gives a file operation.
///
/// 401/403 → EACCES, 404/410 → ENOENT, 413 → EFBIG, 400/422 → EINVAL (the
/// request itself was refused: retrying cannot help, and "invalid argument"
/// is what the user did), 409 → EBUSY; every other status, including 429
/// after its retries and all 5xx, → EIO, as are timeouts, connection
/// failures, truncated or unreadable bodies. A local write failure keeps its
/// own errno (ENOSPC).
pub fn errno_of(e: &ApiError) -> i32 {
    match e {
        ApiError::Status { status, .. } => match status {
            401 | 403 => libc::EACCES,
            404 | 410 => libc::ENOENT,
            413 => libc::EFBIG,
            400 | 422 => libc::EINVAL,
            409 => libc::EBUSY,
            _ => libc::EIO,
        },
        ApiError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        ApiError::InvalidId { .. } => libc::ENOENT,
        ApiError::Config(_) => libc::EINVAL,
        _ => libc::EIO,
    }
}

impl From<ApiError> for FsError {
    fn from(e: ApiError) -> FsError {
        // A 404 is the API's "no such object": as quiet as a missing name.
        let quiet = e.is_not_found();
        FsError {
            errno: errno_of(&e),
            message: None,
            source: (!quiet).then(|| Arc::new(e) as Arc<dyn std::error::Error + Send + Sync>),
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.message, &self.source) {
            (Some(m), Some(s)) => write!(f, "{m}: {s}"),
            (Some(m), None) => f.write_str(m),
            (None, Some(s)) => write!(f, "{s}"),
            (None, None) => write!(f, "{}", std::io::Error::from_raw_os_error(self.errno)),
        }
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Operation;

    fn status(status: u16) -> ApiError {
        ApiError::Status {
            op: Operation::GetExtractor,
            status,
            message: None,
            retry_after: None,
        }
    }

    #[test]
    fn errno_mapping() {
        for (s, errno) in [
            (401, libc::EACCES),
            (403, libc::EACCES),
            (404, libc::ENOENT),
            (413, libc::EFBIG),
            (400, libc::EINVAL),
            (409, libc::EBUSY),
            (429, libc::EIO),
            (503, libc::EIO),
        ] {
            assert_eq!(FsError::from(status(s)).errno, errno, "HTTP {s}");
        }
        let io = ApiError::Io {
            op: Operation::GetCrawlrunFile,
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(FsError::from(io).errno, libc::ENOSPC);
        assert_eq!(FsError::refused(status(400), true).errno, libc::EBUSY);
        assert_eq!(FsError::refused(status(400), false).errno, libc::EINVAL);
    }

    #[test]
    fn display_says_message_and_cause() {
        let e = FsError::from(status(503)).context("download failed");
        assert_eq!(e.to_string(), "download failed: getExtractor: HTTP 503");
        assert!(FsError::from(status(404)).is_quiet());
        assert!(!FsError::with(libc::ENOENT, "gone").is_quiet());
        assert_eq!(
            FsError::new(libc::EIO).to_string(),
            std::io::Error::from_raw_os_error(libc::EIO).to_string()
        );
    }
}
