//! The recording directory: segment file names, listing segments in order, the lock that keeps
//! two writers (or a writer and `recover`) apart, session ids, and the atomic-file and
//! directory-fsync primitives that sealing and abandonment use.
//!
//! Layout of `storage.path`:
//! - `seg-<20-digit segment seq>-<first 8 hex digits of the session id>.wal`: segments (the
//!   next two of a running writer exist empty, created ahead of their use);
//! - `<segment>.manifest.json`: sidecar manifest of a sealed segment;
//! - `<segment>.abandoned`: marker of a segment left after a failed fsync (see `recovery`);
//! - `*.tmp`: a side file being written atomically (removed by recovery);
//! - `.fleetrec-writer.lock`: held (flock) by the writer or `recover` while they run.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use shared::segment::consts::{MANIFEST_SUFFIX, SEGMENT_EXTENSION};

use crate::error::{io_err, Result, WriterError};

/// Name of the lock file inside the recording directory.
pub const LOCK_FILE: &str = ".fleetrec-writer.lock";
/// Suffix of the marker left beside a segment abandoned after a failed fsync.
pub const ABANDONED_SUFFIX: &str = ".abandoned";
/// Suffix of a side file while it is written (then renamed into place).
pub const TEMP_SUFFIX: &str = ".tmp";

/// The file name of segment `seq` of writer session `session`.
pub fn segment_file_name(seq: u64, session: &[u8; 16]) -> String {
    format!(
        "seg-{seq:020}-{:02x}{:02x}{:02x}{:02x}.{SEGMENT_EXTENSION}",
        session[0], session[1], session[2], session[3]
    )
}

/// The segment sequence number in a segment file name, or `None` if `name` is not one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("seg-")?;
    let rest = rest.strip_suffix(&format!(".{SEGMENT_EXTENSION}"))?;
    let (seq, session) = rest.split_once('-')?;
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if session.len() != 8 || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    seq.parse().ok()
}

/// A segment found in a directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentPath {
    /// Segment sequence number (from the name).
    pub seq: u64,
    /// Full path.
    pub path: PathBuf,
}

/// The segments of `dir`, ordered by sequence number (then name).
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentPath>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_segment_file_name(name) {
            out.push(SegmentPath { seq, path: entry.path() });
        }
    }
    out.sort();
    Ok(out)
}

/// The sequence number the next segment in `dir` gets: one after the highest present.
pub fn next_segment_seq(dir: &Path) -> Result<u64> {
    Ok(list_segments(dir)?.last().map_or(1, |s| s.seq + 1))
}

/// The manifest path of a segment.
pub fn manifest_path(segment: &Path) -> PathBuf {
    with_suffix(segment, MANIFEST_SUFFIX)
}

/// The abandonment-marker path of a segment.
pub fn abandoned_marker_path(segment: &Path) -> PathBuf {
    with_suffix(segment, ABANDONED_SUFFIX)
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// A fresh random writer session id (from the kernel's random source, or a hash of time and
/// pid if that cannot be read).
pub fn new_session_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    let from_kernel = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut id));
    if from_kernel.is_err() {
        let mut h = Sha256::new();
        h.update(shared::time::now_ns().to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        let digest = h.finalize();
        id.copy_from_slice(&digest[..16]);
    }
    id
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Which segment files created in the recording directory are known to have a durable
/// directory entry. The writer creates the next segment file ahead of time (empty, see
/// `SegmentWriter`) and notes each creation here; the sealing thread notes each directory fsync
/// it completes (every manifest ends with one). A file created before a directory fsync
/// started is covered by it, so its first batch needs no directory fsync of its own: on a disk
/// without FUA each one costs a journal commit and a device flush on the commit path.
#[derive(Debug, Default)]
pub(crate) struct DirSyncs {
    /// Files created (a running count: the n-th creation is generation n).
    created: std::sync::atomic::AtomicU64,
    /// Every generation up to this one is covered by a completed directory fsync.
    synced: std::sync::atomic::AtomicU64,
    /// Directory fsyncs done for seals.
    fsyncs: std::sync::atomic::AtomicU64,
}

impl DirSyncs {
    /// Notes a file created (the creation returned): its generation.
    pub(crate) fn created(&self) -> u64 {
        self.created.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// Before a directory fsync starts: the creations it will cover.
    pub(crate) fn snapshot(&self) -> u64 {
        self.created.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After a directory fsync that started after [`Self::snapshot`] returned `upto` succeeded.
    pub(crate) fn synced(&self, upto: u64) {
        self.synced.fetch_max(upto, std::sync::atomic::Ordering::SeqCst);
    }

    /// Notes a directory fsync done (for the count).
    pub(crate) fn fsynced(&self) {
        self.fsyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Directory fsyncs done for seals so far.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the file created as generation `generation` has a durable directory entry.
    pub(crate) fn covered(&self, generation: u64) -> bool {
        self.synced.load(std::sync::atomic::Ordering::SeqCst) >= generation
    }
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename over `path`,
/// fsync of the directory. A crash leaves either the old file (or none) or the new one, never
/// a partial one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_and_rename(path, bytes)?;
    fsync_dir(&parent_dir(path))
}

/// [`write_atomically`] without the final fsync of the directory: the caller makes the rename
/// durable with one [`fsync_dir`] (which may cover several files) before relying on it.
pub(crate) fn write_and_rename(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = with_suffix(path, TEMP_SUFFIX);
    let mut f =
        OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io_err("create", &tmp))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_err("write", &tmp));
    if let Err(e) = written {
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err("rename", &tmp))
}

/// Removes a file and makes the removal durable.
pub fn remove_durably(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(io_err("remove", path))?;
    fsync_dir(&parent_dir(path))
}

/// SHA-256 of a whole file, hex, and its length.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&h.finalize()), len))
}

/// Exclusive hold on a recording directory (an flock on [`LOCK_FILE`]), released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting; fails with [`WriterError::Locked`] if another
    /// process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(WriterError::Locked { dir: dir.to_path_buf(), lock: path }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        let s = [0xab, 0xcd, 0x01, 0x02, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
        let a = segment_file_name(9, &s);
        let b = segment_file_name(10, &s);
        assert_eq!(a, "seg-00000000000000000009-abcd0102.wal");
        assert!(a < b);
        assert_eq!(parse_segment_file_name(&a), Some(9));
        assert_eq!(parse_segment_file_name(&b), Some(10));
        assert_eq!(parse_segment_file_name("seg-1-abcd0102.wal"), None);
        assert_eq!(parse_segment_file_name(&format!("{a}{}", MANIFEST_SUFFIX)), None);
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let l = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(DirLock::acquire(dir.path()), Err(WriterError::Locked { .. })));
        drop(l);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!with_suffix(&p, TEMP_SUFFIX).exists());
        let (sha, len) = sha256_file(&p).unwrap();
        assert_eq!(len, 3);
        assert_eq!(sha, hex(&Sha256::digest(b"two")));
    }
}
