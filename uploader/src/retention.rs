//! Local retention (`[sync] retention_max_disk_percent`): while the recording file system is
//! fuller than the threshold, delete the oldest segments whose upload is complete, whose
//! manifests are in the bucket and whose object was verified by a HEAD. Nothing else
//! is ever deleted. The segment goes first, then its sidecar manifest (an orphan manifest is
//! ignored by every reader), then the directory is fsynced and the journal records
//! `local_deleted`.

use std::path::Path;

use crate::error::{Result, UploadError};
use crate::journal::{sync_dir, UploadJournal};
use crate::sealed::list_sealed;

/// Used share of the file system holding `dir`, in percent, as `df` computes it (blocks
/// reserved for root count as unavailable).
pub fn disk_used_percent(dir: &Path) -> Result<f64> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| UploadError::io(dir, std::io::Error::from(e)))?;
    let total = s.blocks() as f64;
    let free = s.blocks_free() as f64;
    let avail = s.blocks_available() as f64;
    let used = total - free;
    let denom = used + avail;
    Ok(if denom <= 0.0 { 0.0 } else { used / denom * 100.0 })
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Deleted segment names, oldest first.
    pub deleted: Vec<String>,
    /// Bytes freed (segment sizes).
    pub freed: u64,
    /// Still over the threshold with nothing left that may be deleted.
    pub still_over: bool,
}

/// One retention pass over `recordings`, with journals in `state_dir`; `used_percent` measures
/// the file system (injected for tests).
pub fn enforce(
    recordings: &Path,
    state_dir: &Path,
    max_percent: u8,
    used_percent: &dyn Fn(&Path) -> Result<f64>,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    if max_percent == 0 {
        return Ok(report);
    }
    let limit = f64::from(max_percent);
    if used_percent(recordings)? <= limit {
        return Ok(report);
    }
    for name in list_sealed(recordings)? {
        let jpath = UploadJournal::path_for(state_dir, &name);
        let Some(mut journal) = UploadJournal::load(&jpath)? else {
            continue;
        };
        if !(journal.is_done() && journal.verified) {
            continue;
        }
        let seg = recordings.join(&name);
        let manifest = shared::segment::SegmentManifest::path_for(&seg);
        std::fs::remove_file(&seg).map_err(|e| UploadError::io(&seg, e))?;
        match std::fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(UploadError::io(&manifest, e)),
        }
        sync_dir(recordings)?;
        journal.local_deleted = true;
        journal.persist(&jpath)?;
        tracing::info!(segment = %name, bytes = journal.size, "retention: deleted uploaded and verified segment");
        report.freed += journal.size;
        report.deleted.push(name);
        if used_percent(recordings)? <= limit {
            return Ok(report);
        }
    }
    report.still_over = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::UploadState;
    use std::cell::Cell;

    fn seg(dir: &Path, state: &Path, name: &str, done: bool) {
        std::fs::write(dir.join(name), b"data").unwrap();
        std::fs::write(dir.join(format!("{name}.manifest.json")), b"{}").unwrap();
        let mut j = UploadJournal::new(name, "k", 4, "h", 5 << 20, &["c".to_string()]);
        if done {
            j.state = UploadState::Completed;
            j.manifests_uploaded = true;
            j.verified = true;
        }
        j.persist(&UploadJournal::path_for(state, name)).unwrap();
    }

    #[test]
    fn deletes_only_verified_uploads_oldest_first_until_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".upload");
        std::fs::create_dir(&state).unwrap();
        seg(dir.path(), &state, "seg-1.wal", true);
        seg(dir.path(), &state, "seg-2.wal", false);
        seg(dir.path(), &state, "seg-3.wal", true);
        seg(dir.path(), &state, "seg-4.wal", true);
        // 90 % full; every measurement after a deletion reads 5 points less.
        let used = Cell::new(90.0);
        let r = enforce(dir.path(), &state, 80, &|_| {
            let u = used.get();
            used.set(u - 5.0);
            Ok(u)
        })
        .unwrap();
        assert_eq!(r.deleted, vec!["seg-1.wal", "seg-3.wal"]);
        assert!(!r.still_over);
        assert!(!dir.path().join("seg-1.wal").exists());
        assert!(!dir.path().join("seg-1.wal.manifest.json").exists());
        assert!(dir.path().join("seg-2.wal").exists());
        assert!(dir.path().join("seg-4.wal").exists());
        let j = UploadJournal::load(&UploadJournal::path_for(&state, "seg-1.wal")).unwrap().unwrap();
        assert!(j.local_deleted);
        // Off, or under the limit: nothing happens.
        assert!(enforce(dir.path(), &state, 0, &|_| Ok(100.0)).unwrap().deleted.is_empty());
        assert!(enforce(dir.path(), &state, 80, &|_| Ok(10.0)).unwrap().deleted.is_empty());
        // Over the limit with only unfinished uploads left.
        let r = enforce(dir.path(), &state, 1, &|_| Ok(99.0)).unwrap();
        assert_eq!(r.deleted, vec!["seg-4.wal"]);
        assert!(r.still_over);
        assert!(dir.path().join("seg-2.wal").exists());
    }

    #[test]
    fn measures_a_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let u = disk_used_percent(dir.path()).unwrap();
        assert!((0.0..=100.0).contains(&u), "{u}");
    }
}
