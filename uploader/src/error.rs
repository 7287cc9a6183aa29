//! The uploader's error type. Each variant names what failed and where; none ever carries a
//! credential.

use std::path::PathBuf;

/// Everything that can stop the uploader or one segment's upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The credentials could not be loaded (the message never contains a secret).
    #[error("credentials: {0}")]
    Credentials(String),
    /// The object store client could not be built from `[sync]`.
    #[error("object store `{endpoint}`: {reason}")]
    Store {
        /// The configured endpoint.
        endpoint: String,
        /// object_store's reason.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A journal or manifest file is not valid JSON of the expected shape.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A segment does not match its sidecar manifest: it is not uploaded.
    #[error(
        "segment {segment}: content does not match its manifest (size {size} vs {expected_size}, sha256 {sha256} vs {expected_sha256})"
    )]
    SourceMismatch {
        /// Segment file name.
        segment: String,
        /// Size on disk.
        size: u64,
        /// Size in the manifest.
        expected_size: u64,
        /// SHA-256 of the file on disk.
        sha256: String,
        /// SHA-256 in the manifest.
        expected_sha256: String,
    },
    /// A part read for upload does not hash to what the manifest or the pre-upload pass says:
    /// the file does not match its manifest (any more).
    #[error("segment {segment}: part {part} read for upload does not match the segment's manifest")]
    ChunkChanged {
        /// Segment file name.
        segment: String,
        /// 1-based part number.
        part: u32,
    },
    /// An object key could not be formed.
    #[error("object key `{key}`: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Shared-memory plane.
    #[error(transparent)]
    Plane(#[from] shared::plane::PlaneError),
    /// Signal handler or runtime setup.
    #[error("process setup: {0}")]
    Setup(String),
}

impl UploadError {
    /// An [`UploadError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        UploadError::Io { path: path.into(), source }
    }

    /// Whether this is a configuration problem (credentials, endpoint): exit code 2.
    pub fn is_config(&self) -> bool {
        matches!(self, UploadError::Credentials(_) | UploadError::Store { .. })
    }
}

/// The crate's result type.
pub type Result<T, E = UploadError> = std::result::Result<T, E>;
