//! Recovery: bring every segment of a recording directory to a sealed state after a crash, a
//! failed fsync or a full disk. Runs at writer start (under the directory lock) and as
//! `fleetrec-writer recover PATH`.
//!
//! For each segment without a matching manifest:
//! - an empty file (the writer creates the next segments' files ahead of their use) or one
//!   shorter than a header holds nothing durable: it is removed;
//! - a header that does not decode is reported and the file left alone;
//! - otherwise the file is scanned ([`ScanMode::SkipCorrupt`]); the valid data ends at the last
//!   valid record (`valid_len`). A segment left after a failed fsync carries an
//!   [`AbandonMarker`] whose `durable_len` (the end of its last synced batch) lowers the cut,
//!   because everything after it was rewritten into a newer segment. The file is cut there
//!   (ftruncate + fsync), a footer is appended (with `recovered_cut_bytes`) and synced, and the
//!   manifest written. A segment that recovers to no message at all is removed instead.
//! - a sealed segment without manifest just gets its manifest.
//!
//! A torn tail is the normal result of a crash and is logged with `warn!`; corrupt records
//! in the middle of a segment are lost data and are logged with `error!`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::segment::consts::{HEADER_LEN, KIND_FOOTER};
use shared::segment::{encode_footer, scan, Record, RecordRef, ScanMode, SegmentManifest, SummaryBuilder, Tail};
use tracing::{error, info, warn};

use crate::directory::{
    abandoned_marker_path, list_segments, manifest_path, parent_dir, parse_segment_file_name, remove_durably,
    write_atomically, DirLock, TEMP_SUFFIX,
};
use crate::error::{io_err, Result, WriterError};
use crate::seal::{write_manifest, SealedSegment};

/// Marker left beside a segment whose write or fdatasync failed (`<segment>.abandoned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonMarker {
    /// `"fleetrec-abandoned-segment"`.
    pub format: String,
    /// Marker version, 1.
    pub version: u32,
    /// Segment file name.
    pub segment: String,
    /// End of the last batch whose fdatasync succeeded: recovery cuts here.
    pub durable_len: u64,
    /// The operation that failed (`write`, `fdatasync`, `directory fsync`).
    pub operation: String,
    /// The errno it failed with.
    pub errno: i32,
    /// When the segment was abandoned, ns since the epoch.
    pub abandoned_ns: u64,
}

impl AbandonMarker {
    /// A marker for `segment` (a path) durable up to `durable_len`.
    pub fn new(segment: &Path, durable_len: u64, operation: &str, errno: i32) -> Self {
        AbandonMarker {
            format: "fleetrec-abandoned-segment".into(),
            version: 1,
            segment: segment.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            durable_len,
            operation: operation.into(),
            errno,
            abandoned_ns: shared::time::now_ns(),
        }
    }

    /// Writes the marker beside its segment, atomically.
    pub fn write(&self, segment: &Path) -> Result<()> {
        let path = abandoned_marker_path(segment);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| WriterError::Json { path: path.clone(), reason: e.to_string() })?;
        write_atomically(&path, &json)
    }

    /// Reads the marker of `segment`, if there is one.
    pub fn read(segment: &Path) -> Result<Option<AbandonMarker>> {
        let path = abandoned_marker_path(segment);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| WriterError::Json { path, reason: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }
}

/// What recovery did to one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveredSegment {
    /// The segment.
    pub path: PathBuf,
    /// Size before recovery.
    pub original_len: u64,
    /// Where the segment was cut (end of the last kept record, before the new footer).
    pub cut_at: u64,
    /// Bytes cut (torn tail, or the unsynced part of an abandoned segment).
    pub cut_bytes: u64,
    /// The cut came from an abandonment marker (the cut data was rewritten elsewhere).
    pub abandoned: bool,
    /// Valid records that were cut because of the marker.
    pub records_cut: u64,
    /// Offsets of corrupt records in the kept part (unreadable: lost data).
    pub corrupt_offsets: Vec<u64>,
    /// Messages kept.
    pub messages: u64,
    /// The segment held no message and was removed.
    pub removed: bool,
}

/// What a recovery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Unsealed segments that were cut and sealed (or removed when empty).
    pub recovered: Vec<RecoveredSegment>,
    /// Sealed segments that only lacked their manifest.
    pub manifests_written: Vec<PathBuf>,
    /// Files removed: segments without a complete header, stale temp files.
    pub removed: Vec<PathBuf>,
    /// Segments that could not be recovered, with the reason (left untouched).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Segments sealed by this run (for announcements).
    #[serde(skip)]
    pub sealed: Vec<SealedSegment>,
}

impl RecoveryReport {
    /// Corrupt records found in the middle of recovered segments.
    pub fn corrupt_records(&self) -> u64 {
        self.recovered.iter().map(|r| r.corrupt_offsets.len() as u64).sum()
    }

    /// Bytes cut from torn tails (not counting abandoned parts, which were rewritten).
    pub fn torn_bytes(&self) -> u64 {
        self.recovered.iter().filter(|r| !r.abandoned).map(|r| r.cut_bytes).sum()
    }

    /// Whether recovery changed nothing.
    pub fn is_empty(&self) -> bool {
        self.recovered.is_empty()
            && self.manifests_written.is_empty()
            && self.removed.is_empty()
            && self.unreadable.is_empty()
    }
}

/// Recovers a segment file or every segment of a directory (`fleetrec-writer recover PATH`).
/// Takes the directory lock, so it refuses to run beside a writer.
pub fn recover(path: &Path) -> Result<RecoveryReport> {
    let meta = std::fs::metadata(path).map_err(io_err("stat", path))?;
    let mut report = RecoveryReport::default();
    if meta.is_dir() {
        let _lock = DirLock::acquire(path)?;
        recover_directory_locked(path, &mut report)?;
    } else {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if parse_segment_file_name(name).is_none() {
            return Err(WriterError::NotASegment { path: path.to_path_buf() });
        }
        let _lock = DirLock::acquire(&parent_dir(path))?;
        recover_segment(path, &mut report)?;
    }
    Ok(report)
}

/// Recovers every segment of `dir`; the caller holds the directory lock.
pub(crate) fn recover_directory_locked(dir: &Path, report: &mut RecoveryReport) -> Result<()> {
    remove_stale_temp_files(dir, report)?;
    for seg in list_segments(dir)? {
        if has_matching_manifest(&seg.path)? && !abandoned_marker_path(&seg.path).exists() {
            continue;
        }
        recover_segment(&seg.path, report)?;
    }
    Ok(())
}

fn remove_stale_temp_files(dir: &Path, report: &mut RecoveryReport) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("seg-") && name.ends_with(TEMP_SUFFIX) {
            let p = entry.path();
            remove_durably(&p)?;
            info!(file = %p.display(), "removed a temp file left by an interrupted manifest write");
            report.removed.push(p);
        }
    }
    Ok(())
}

/// Whether the segment has a manifest naming its current size.
fn has_matching_manifest(segment: &Path) -> Result<bool> {
    let mpath = manifest_path(segment);
    let bytes = match std::fs::read(&mpath) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("read", mpath)(e)),
    };
    let Ok(m) = serde_json::from_slice::<SegmentManifest>(&bytes) else {
        warn!(manifest = %mpath.display(), "manifest does not parse; it will be rewritten");
        return Ok(false);
    };
    let len = std::fs::metadata(segment).map_err(io_err("stat", segment))?.len();
    Ok(m.size == len)
}

/// Recovers one segment (see the module docs); the caller holds the directory lock.
pub(crate) fn recover_segment(path: &Path, report: &mut RecoveryReport) -> Result<()> {
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    let original_len = bytes.len() as u64;
    let marker = AbandonMarker::read(path)?;
    // A preallocated segment reads as zeros until its first batch is durable.
    if bytes.is_empty() {
        // The writer creates the next segments' files ahead of their use (empty).
        info!(segment = %path.display(), "empty segment file (created ahead by the writer): removing it");
        remove_durably(path)?;
        remove_marker(path, marker.is_some())?;
        report.removed.push(path.to_path_buf());
        return Ok(());
    }
    if bytes.len() < HEADER_LEN || bytes.iter().all(|b| *b == 0) {
        warn!(
            segment = %path.display(),
            bytes = bytes.len(),
            "segment has no header (crash right after it was created): removing it"
        );
        remove_durably(path)?;
        remove_marker(path, marker.is_some())?;
        report.removed.push(path.to_path_buf());
        return Ok(());
    }
    let scanned = match scan(&bytes, ScanMode::SkipCorrupt) {
        Ok(s) => s,
        Err(e) => {
            error!(segment = %path.display(), error = %e, "segment header is damaged; segment left untouched");
            report.unreadable.push((path.to_path_buf(), e.to_string()));
            return Ok(());
        }
    };
    let zero_tail = matches!(scanned.tail, Tail::Preallocated { .. });
    if scanned.sealed && (scanned.tail == Tail::Clean || zero_tail) && marker.is_none() {
        if let Some(summary) = scanned.records.last().and_then(|r| decode_footer(path, r)) {
            if zero_tail {
                // Sealed, but the crash came before the preallocated space was cut off.
                let file = OpenOptions::new().write(true).open(path).map_err(io_err("open", path))?;
                file.set_len(scanned.valid_len).and_then(|()| file.sync_all()).map_err(io_err("ftruncate", path))?;
                info!(segment = %path.display(), size = scanned.valid_len, "sealed segment: preallocated space cut off");
            }
            let (m, sha256) = write_manifest(path, Some(scanned.valid_len), summary)?;
            info!(segment = %path.display(), "sealed segment lacked its manifest: written");
            report.manifests_written.push(path.to_path_buf());
            report.sealed.push(SealedSegment {
                seq: m.summary.segment_seq,
                path: path.to_path_buf(),
                size: m.size,
                sha256,
                summary: m.summary,
            });
            return Ok(());
        }
    }

    let mut cut_at = scanned.valid_len;
    let mut abandoned = false;
    if let Some(m) = &marker {
        if m.durable_len >= HEADER_LEN as u64 && m.durable_len < cut_at {
            cut_at = m.durable_len;
            abandoned = true;
        }
    }
    // Never keep an old footer in the middle: cut before it, a new one follows.
    let kept: Vec<&RecordRef<'_>> =
        scanned.records.iter().filter(|r| r.offset + r.framed_len() as u64 <= cut_at).collect();
    // The cut lands on a record boundary: the end of the last kept record.
    cut_at = kept.last().map_or(HEADER_LEN as u64, |r| r.offset + r.framed_len() as u64);
    if let Some(last) = kept.last() {
        if last.kind == KIND_FOOTER {
            cut_at = last.offset;
        }
    }
    let records_cut = scanned.records.iter().filter(|r| r.offset >= cut_at && r.kind != KIND_FOOTER).count() as u64;
    let mut summary = SummaryBuilder::new(scanned.header.segment_seq, &scanned.header.session_id);
    for r in scanned.records.iter().filter(|r| r.offset + r.framed_len() as u64 <= cut_at && r.kind != KIND_FOOTER) {
        summary.add_record(r);
    }
    let corrupt_offsets: Vec<u64> = scanned.corrupt.iter().filter(|c| c.offset < cut_at).map(|c| c.offset).collect();
    // Preallocated zero space after the data is not data: it is not counted as cut.
    let data_len = match scanned.tail {
        Tail::Preallocated { offset, .. } => offset.max(cut_at),
        _ => original_len,
    };
    let cut_bytes = data_len - cut_at;
    let messages = summary.messages();

    if cut_bytes > 0 {
        if abandoned {
            info!(
                segment = %path.display(),
                cut_at, cut_bytes, records_cut,
                "abandoned segment cut at its last synced batch (the rest was rewritten to a newer segment)"
            );
        } else {
            let why = match scanned.tail {
                Tail::Torn { error, .. } => error.to_string(),
                Tail::Clean | Tail::Preallocated { .. } => "last record is corrupt".into(),
            };
            warn!(segment = %path.display(), cut_at, cut_bytes, reason = %why, "torn tail cut");
        }
    }
    for off in &corrupt_offsets {
        error!(segment = %path.display(), offset = off, "corrupt record in the middle of the segment: its data is lost");
    }

    let mut rec = RecoveredSegment {
        path: path.to_path_buf(),
        original_len,
        cut_at,
        cut_bytes,
        abandoned,
        records_cut,
        corrupt_offsets,
        messages,
        removed: false,
    };
    if messages == 0 {
        info!(segment = %path.display(), "segment holds no message after recovery: removing it");
        remove_durably(path)?;
        let mpath = manifest_path(path);
        if mpath.exists() {
            remove_durably(&mpath)?;
        }
        remove_marker(path, marker.is_some())?;
        rec.removed = true;
        report.recovered.push(rec);
        return Ok(());
    }

    summary.set_recovered_cut(cut_bytes);
    let built = summary.build();
    let mut footer = Vec::new();
    encode_footer(&mut footer, &built);
    let file = OpenOptions::new().write(true).open(path).map_err(io_err("open", path))?;
    file.set_len(cut_at).and_then(|()| file.sync_all()).map_err(io_err("ftruncate", path))?;
    file.write_all_at(&footer, cut_at).map_err(io_err("write footer", path))?;
    file.sync_all().map_err(io_err("fsync", path))?;
    drop(file);
    let size = cut_at + footer.len() as u64;
    let (m, sha256) = write_manifest(path, Some(size), built)?;
    remove_marker(path, marker.is_some())?;
    info!(segment = %path.display(), messages, size, "segment recovered and sealed");
    report.sealed.push(SealedSegment {
        seq: m.summary.segment_seq,
        path: path.to_path_buf(),
        size,
        sha256,
        summary: m.summary,
    });
    report.recovered.push(rec);
    Ok(())
}

/// The summary in a footer record; a footer that does not decode is treated as absent (the
/// segment is then re-sealed with a footer rebuilt from its records).
fn decode_footer(path: &Path, r: &RecordRef<'_>) -> Option<shared::segment::SegmentSummary> {
    match Record::decode(r) {
        Ok(Record::Footer(s)) => Some(*s),
        Ok(_) => None,
        Err(e) => {
            warn!(segment = %path.display(), offset = r.offset, error = %e, "footer does not decode; re-sealing");
            None
        }
    }
}

fn remove_marker(segment: &Path, exists: bool) -> Result<()> {
    if exists {
        remove_durably(&abandoned_marker_path(segment))?;
    }
    Ok(())
}
