//! The upload journal: one JSON file per segment in the state directory
//! (`<state_dir>/<segment>.journal.json`), rewritten atomically (temp file, fsync, rename, fsync
//! of the directory) before every part is sent and after every part is acknowledged. It is the
//! uploader's whole memory: after a crash or restart the uploader continues from it at the
//! first part without an ETag, and never sends a completed segment again.
//!
//! Counting: each part records `sends` (attempts started, counted *before* the request goes
//! out) and `retries` (attempts that directly followed a failed attempt, inside one backoff
//! sequence). A part whose `sends - retries` is greater than 1 was started again by a later
//! attempt of the segment: after a crash of the uploader, an upload restart, or a new attempt
//! once the endpoint came back after being offline. The crash tests count exactly this.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, UploadError};

/// Value of [`UploadJournal::format`].
pub const JOURNAL_FORMAT: &str = "fleetrec-upload-journal";
/// Journal file suffix.
pub const JOURNAL_SUFFIX: &str = ".journal.json";

/// Where a segment's upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// No multipart upload exists yet.
    New,
    /// A multipart upload exists (`upload_id`); parts are being sent.
    Uploading,
    /// Every part has an ETag; `CompleteMultipartUpload` was (or is about to be) sent.
    Completing,
    /// The object exists.
    Completed,
}

/// One part of the multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalPart {
    /// 1-based part number (S3's numbering).
    pub number: u32,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Bytes in the part.
    pub size: u64,
    /// SHA-256 of the part's bytes, hex.
    pub sha256: String,
    /// The ETag the server returned; `None` until the part is acknowledged.
    pub etag: Option<String>,
    /// Attempts started, over every run of the uploader.
    pub sends: u32,
    /// Attempts that were retries after a failed attempt.
    pub retries: u32,
}

/// The journal of one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadJournal {
    /// `"fleetrec-upload-journal"`.
    pub format: String,
    /// Journal version, 1.
    pub version: u32,
    /// Segment file name.
    pub segment: String,
    /// Object key of the segment.
    pub key: String,
    /// Segment size.
    pub size: u64,
    /// SHA-256 of the whole segment, hex.
    pub sha256: String,
    /// Part size used for this upload (kept when the configuration changes mid-upload).
    pub chunk_size: u64,
    /// Where the upload stands.
    pub state: UploadState,
    /// The multipart upload id, persisted before the first part is sent.
    pub upload_id: Option<String>,
    /// Every part, numbered from 1.
    pub parts: Vec<JournalPart>,
    /// Multipart uploads abandoned because the server no longer knew them, kept failing with
    /// server errors, or did not match the file.
    pub restarts: u32,
    /// Consecutive attempts at the current multipart upload that ended with the backoff spent on
    /// a server error (HTTP 5xx) for one of its requests; at 2 the next attempt aborts the
    /// upload and starts a new one. Reset when a part or the completion succeeds, when an
    /// attempt ends because the endpoint did not answer, and with a new upload. Absent in
    /// journals written before it existed (0).
    #[serde(default)]
    pub server_error_rounds: u32,
    /// The error that ended the last of those attempts (for the log of the restart).
    #[serde(default)]
    pub last_server_error: Option<String>,
    /// ETag of the completed object.
    pub object_etag: Option<String>,
    /// The sidecar manifest and the upload manifest objects were written.
    pub manifests_uploaded: bool,
    /// A HEAD of the object matched size and SHA-256 metadata after completion (done when
    /// retention is on: only verified segments may be deleted locally).
    pub verified: bool,
    /// Retention deleted the local segment after verification.
    pub local_deleted: bool,
    /// When the upload completed, ns since the epoch (0 before).
    pub completed_ns: u64,
}

impl UploadJournal {
    /// A fresh journal for a segment of `size` bytes hashed as `chunks` (one SHA-256 per
    /// `chunk_size` piece).
    pub fn new(segment: &str, key: &str, size: u64, sha256: &str, chunk_size: u64, chunks: &[String]) -> Self {
        let mut j = UploadJournal {
            format: JOURNAL_FORMAT.into(),
            version: 1,
            segment: segment.into(),
            key: key.into(),
            size,
            sha256: sha256.into(),
            chunk_size,
            state: UploadState::New,
            upload_id: None,
            parts: Vec::new(),
            restarts: 0,
            server_error_rounds: 0,
            last_server_error: None,
            object_etag: None,
            manifests_uploaded: false,
            verified: false,
            local_deleted: false,
            completed_ns: 0,
        };
        j.reset_parts(chunks);
        j
    }

    /// Forgets the multipart upload and every part's ETag (keeps the send counters).
    pub fn reset_parts(&mut self, chunks: &[String]) {
        let old = std::mem::take(&mut self.parts);
        self.parts = chunks
            .iter()
            .enumerate()
            .map(|(i, sha)| {
                let offset = i as u64 * self.chunk_size;
                let prev = old.get(i);
                JournalPart {
                    number: i as u32 + 1,
                    offset,
                    size: self.chunk_size.min(self.size.saturating_sub(offset)),
                    sha256: sha.clone(),
                    etag: None,
                    sends: prev.map_or(0, |p| p.sends),
                    retries: prev.map_or(0, |p| p.retries),
                }
            })
            .collect();
        self.upload_id = None;
        self.state = UploadState::New;
        self.clear_server_errors();
        self.object_etag = None;
        self.manifests_uploaded = false;
        self.verified = false;
    }

    /// Forgets the count of attempts that ended on server errors (the upload made progress,
    /// the endpoint was unreachable instead, or the upload is new).
    pub fn clear_server_errors(&mut self) {
        self.server_error_rounds = 0;
        self.last_server_error = None;
    }

    /// Whether the object exists and its manifests are written.
    pub fn is_done(&self) -> bool {
        self.state == UploadState::Completed && self.manifests_uploaded
    }

    /// [`UploadJournal::is_done`], and verified by a HEAD of the object when `verify` (retention
    /// needs that before it may delete the local segment).
    pub fn is_settled(&self, verify: bool) -> bool {
        self.is_done() && (self.verified || !verify)
    }

    /// Parts acknowledged by the server.
    pub fn parts_done(&self) -> usize {
        self.parts.iter().filter(|p| p.etag.is_some()).count()
    }

    /// Bytes acknowledged by the server.
    pub fn bytes_done(&self) -> u64 {
        if self.state == UploadState::Completed {
            return self.size;
        }
        self.parts.iter().filter(|p| p.etag.is_some()).map(|p| p.size).sum()
    }

    /// The journal path of `segment` in `state_dir`.
    pub fn path_for(state_dir: &Path, segment: &str) -> PathBuf {
        state_dir.join(format!("{segment}{JOURNAL_SUFFIX}"))
    }

    /// Loads a journal; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<UploadJournal>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(UploadError::io(path, e)),
        };
        let j: UploadJournal = serde_json::from_slice(&bytes)
            .map_err(|e| UploadError::BadFile { path: path.to_path_buf(), reason: format!("journal JSON: {e}") })?;
        if j.format != JOURNAL_FORMAT || j.version != 1 {
            return Err(UploadError::BadFile {
                path: path.to_path_buf(),
                reason: format!("not a version 1 upload journal (format `{}`, version {})", j.format, j.version),
            });
        }
        Ok(Some(j))
    }

    /// Writes the journal atomically to `path`: temp file, fsync, rename, fsync of the directory.
    pub fn persist(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| UploadError::BadFile { path: path.to_path_buf(), reason: format!("serialize: {e}") })?;
        write_atomic(path, &json)
    }
}

/// Replaces `path` with `bytes` so that a crash at any instant leaves either the old or the new
/// content: write a temp file in the same directory, fsync it, rename it over `path`, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| UploadError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| UploadError::io(&tmp, e))?;
    f.sync_all().map_err(|e| UploadError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| UploadError::io(path, e))?;
    sync_dir(dir)
}

/// fsyncs a directory, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| UploadError::io(dir, e))
}

/// Every journal in `state_dir` (unreadable ones are skipped and returned as errors).
pub fn load_all(state_dir: &Path) -> (Vec<UploadJournal>, Vec<UploadError>) {
    let mut journals = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (journals, errors),
        Err(e) => {
            errors.push(UploadError::io(state_dir, e));
            return (journals, errors);
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(JOURNAL_SUFFIX) {
            continue;
        }
        match UploadJournal::load(&path) {
            Ok(Some(j)) => journals.push(j),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    journals.sort_by(|a, b| a.segment.cmp(&b.segment));
    (journals, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_segment() {
        let chunks: Vec<String> = (0..3).map(|i| format!("h{i}")).collect();
        let j = UploadJournal::new("s.wal", "k", 25, "all", 10, &chunks);
        let sizes: Vec<(u32, u64, u64)> = j.parts.iter().map(|p| (p.number, p.offset, p.size)).collect();
        assert_eq!(sizes, vec![(1, 0, 10), (2, 10, 10), (3, 20, 5)]);
        assert_eq!(j.bytes_done(), 0);
    }

    #[test]
    fn persist_round_trip_and_reset_keeps_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = UploadJournal::path_for(dir.path(), "s.wal");
        let chunks = vec!["a".to_string(), "b".to_string()];
        let mut j = UploadJournal::new("s.wal", "k", 15, "all", 10, &chunks);
        j.upload_id = Some("up".into());
        j.state = UploadState::Uploading;
        j.parts[0].etag = Some("\"e1\"".into());
        j.parts[0].sends = 2;
        j.persist(&path).unwrap();
        assert!(!dir.path().join("s.wal.journal.json.tmp").exists());
        let back = UploadJournal::load(&path).unwrap().unwrap();
        assert_eq!(back, j);
        assert_eq!(back.bytes_done(), 10);
        let mut r = back;
        r.reset_parts(&chunks);
        assert_eq!(r.state, UploadState::New);
        assert_eq!(r.parts[0].etag, None);
        assert_eq!(r.parts[0].sends, 2);
        let (all, errs) = load_all(dir.path());
        assert_eq!(all.len(), 1);
        assert!(errs.is_empty());
    }

    #[test]
    fn journal_without_server_error_fields_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = UploadJournal::path_for(dir.path(), "s.wal");
        let chunks = vec!["a".to_string(), "b".to_string()];
        let mut j = UploadJournal::new("s.wal", "k", 15, "all", 10, &chunks);
        j.server_error_rounds = 2;
        j.last_server_error = Some("HTTP 500".into());
        let mut value = serde_json::to_value(&j).unwrap();
        let fields = value.as_object_mut().unwrap();
        assert!(fields.remove("server_error_rounds").is_some());
        assert!(fields.remove("last_server_error").is_some());
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        let back = UploadJournal::load(&path).unwrap().unwrap();
        assert_eq!(back.server_error_rounds, 0);
        assert_eq!(back.last_server_error, None);
        let mut r = j;
        r.reset_parts(&chunks);
        assert_eq!((r.server_error_rounds, r.last_server_error), (0, None));
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.journal.json");
        std::fs::write(&path, b"{nope").unwrap();
        let e = UploadJournal::load(&path).unwrap_err().to_string();
        assert!(e.contains("x.journal.json"), "{e}");
    }
}
