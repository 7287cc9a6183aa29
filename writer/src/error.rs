//! The writer library's error type. Every variant names the file (and where it matters the
//! offset) it is about, so one line in a log says what failed where.

use std::path::PathBuf;

use shared::plane::PlaneError;
use shared::segment::HeaderError;

/// Errors of the writer library.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A file system operation failed.
    #[error("{op} `{path}`: {error}")]
    Io {
        /// What was attempted (`open`, `read`, `ftruncate`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (part of the message, so one line says it all).
        error: std::io::Error,
    },
    /// The io_uring instance could not be set up or entered.
    #[error("io_uring {op}: {error}")]
    Ring {
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        error: std::io::Error,
    },
    /// A segment's header is not valid.
    #[error("`{path}`: {error}")]
    Header {
        /// The segment.
        path: PathBuf,
        /// What is wrong with the header.
        error: HeaderError,
    },
    /// A record passed its CRC but its body could not be used.
    #[error("`{path}`: record at offset {offset}: {reason}")]
    Record {
        /// The segment.
        path: PathBuf,
        /// Offset of the record's frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process (a running writer or a `recover`) holds the recording directory.
    #[error("`{dir}` is in use by another fleetrec-writer or recovery (lock `{lock}` is held)")]
    Locked {
        /// The recording directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A path is neither a segment file nor a directory.
    #[error("`{path}` is neither a segment file (seg-*.wal) nor a directory")]
    NotASegment {
        /// The path.
        path: PathBuf,
    },
    /// A JSON side file (manifest, abandonment marker) could not be encoded or decoded.
    #[error("`{path}`: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The shared-memory plane failed.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// A background thread of the writer stopped unexpectedly.
    #[error("writer thread `{name}` stopped")]
    ThreadGone {
        /// The thread's name.
        name: &'static str,
    },
    /// Installing the signal handler failed.
    #[error("installing the SIGTERM/SIGINT handler: {0}")]
    Signal(nix::Error),
}

/// The writer library's result type.
pub type Result<T, E = WriterError> = std::result::Result<T, E>;

/// Builds a `map_err` closure for a failed file operation on `path`.
pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WriterError {
    let path = path.into();
    move |error| WriterError::Io { op, path, error }
}

impl WriterError {
    /// The OS error number, when this is a file system or io_uring error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            WriterError::Io { error, .. } | WriterError::Ring { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }

    /// Whether this error means the file system is out of space (ENOSPC or EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        self.raw_os_error().is_some_and(is_disk_full_errno)
    }
}

/// Whether `errno` means "no space left" (ENOSPC, or EDQUOT for a quota).
pub(crate) fn is_disk_full_errno(errno: i32) -> bool {
    errno == libc::ENOSPC || errno == libc::EDQUOT
}
