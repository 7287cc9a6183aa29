//! Errors of the exporter library. Each names the file and, where there is one, the topic.

use std::path::PathBuf;

use shared::segment::HeaderError;

/// An export that could not be carried out. Per-message problems (corrupt records, payloads
/// that do not decode) are not errors: they are skipped, counted and logged.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A segment's header is not valid: the whole segment is unreadable.
    #[error("segment {path}: {error}")]
    SegmentHeader {
        /// The segment.
        path: PathBuf,
        /// Why.
        error: HeaderError,
    },
    /// An option is invalid.
    #[error("invalid option {option}: {reason}")]
    BadOption {
        /// The option, e.g. `--topic`.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// An output file could not be written.
    #[error("writing {format} file {path} (topic {topic}): {reason}")]
    Write {
        /// Output format.
        format: &'static str,
        /// The file.
        path: PathBuf,
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The exporter service could not set up (shared memory, signals).
    #[error("exporter service: {reason}")]
    Service {
        /// What failed.
        reason: String,
    },
    /// The export was cancelled ([`crate::ExportOptions::cancel`]); its folder has no manifest.
    #[error("export cancelled")]
    Cancelled,
}

/// Result of the exporter library.
pub type Result<T> = std::result::Result<T, ExportError>;

/// Maps an I/O error to [`ExportError::Io`] on `path`.
pub fn io_err<'a>(op: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError + 'a {
    move |source| ExportError::Io { op, path: path.to_path_buf(), source }
}
