//! One segment file while the writer owns it: the physical side (`SegmentFile`: the file
//! handle, how far it is durable, whether an I/O error poisoned it) and the logical side
//! (`OpenSegment`: where the next record goes, its summary, which topics it has defined).
//! Appends and syncs to the file go through io_uring (`crate::uring`); this module only
//! creates, cuts back and names files.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use shared::segment::consts::{HEADER_LEN, MINOR_VERSION};
use shared::segment::{SegmentHeader, SegmentSummary, SummaryBuilder};

use crate::directory::segment_file_name;
use crate::error::{io_err, Result};

/// Header `robot_id` of a segment that may hold several robots.
pub const MIXED_ROBOTS: u16 = u16::MAX;

/// Why a segment file was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileFailure {
    /// The operation that failed (`write`, `fdatasync`, `directory fsync`).
    pub(crate) op: &'static str,
    /// Its errno.
    pub(crate) errno: i32,
}

/// A segment file with batches not yet retired, or the one being filled.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    /// Segment sequence number.
    pub(crate) seq: u64,
    /// Path.
    pub(crate) path: PathBuf,
    /// The open file (shared with io_uring chains in flight).
    pub(crate) file: Arc<File>,
    /// End of the last batch whose fdatasync completed (0: nothing durable, not even the
    /// header).
    pub(crate) durable_len: u64,
    /// A write or fdatasync of this file failed: it is never synced again.
    pub(crate) failure: Option<FileFailure>,
    /// The next batch submitted must also fsync the directory (new file entry), unless the
    /// file was created ahead as `created_ahead` and a directory fsync covered it meanwhile.
    pub(crate) needs_dir_sync: bool,
    /// The file was created ahead of its use (the writer's next segment): its generation in
    /// the directory's [`crate::directory::DirSyncs`].
    pub(crate) created_ahead: Option<u64>,
    /// The footer's summary, once the sealing batch was built.
    pub(crate) seal_summary: Option<SegmentSummary>,
    /// Opened with `O_DIRECT`: every write must start and end on a [`DIRECT_ALIGN`] boundary.
    pub(crate) direct: bool,
    /// Opened buffered because recent commits were small (not because the file system has no
    /// direct I/O, nor by the measured choice): the writer ends it early once commits grow.
    pub(crate) buffered_for_small_commits: bool,
    /// Its rate counts for the choice of the I/O mode (see [`FileMode::measured`]).
    pub(crate) mode_measured: bool,
    /// Time its batches were in flight (see `io_mode.rs`).
    pub(crate) busy: std::time::Duration,
    /// The file was preallocated: its size is the preallocation, not its data, until sealing
    /// cuts it to the footer's end.
    pub(crate) preallocated: bool,
    /// The sealer holds the SHA-256 of the file's bytes `0..n` (fed from the batches' aligned
    /// copies, so sealing needs no read back); `None` once that chain of bytes is broken.
    pub(crate) hashed_to: Option<u64>,
}

/// Block alignment of direct-I/O writes (file offsets, lengths and memory).
pub(crate) const DIRECT_ALIGN: u64 = crate::uring::DIRECT_ALIGN as u64;

/// How segment files are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileMode {
    /// Try `O_DIRECT` (falls back to buffered I/O where the file system refuses it).
    pub(crate) direct: bool,
    /// Preallocate this many bytes (`fallocate` mode 0, best effort; 0: none).
    pub(crate) preallocate: u64,
    /// Opened while commits were big (else buffered because they were small).
    pub(crate) under_load: bool,
    /// Its I/O mode was chosen by measurement (`io_mode = "auto"`) and it is not the first
    /// segment after a change of mode: its rate counts for the next choices.
    pub(crate) measured: bool,
}

impl SegmentFile {
    /// Creates segment `seq` in `dir` (the file must not exist) and returns it with the header
    /// bytes that must start the segment's first batch. With `ahead`, the file was created
    /// empty earlier (see [`create_ahead`]) as that generation, and is opened instead.
    pub(crate) fn create(
        dir: &Path,
        seq: u64,
        session: &[u8; 16],
        mode: FileMode,
        ahead: Option<u64>,
    ) -> Result<(SegmentFile, [u8; HEADER_LEN])> {
        let path = dir.join(segment_file_name(seq, session));
        let (file, direct) = match ahead {
            Some(_) => open_ahead(&path, mode.direct).map_err(io_err("open segment", &path))?,
            None => open_new(&path, mode.direct).map_err(io_err("create segment", &path))?,
        };
        // Preallocate only with room to spare: near a full disk, reserved but unused space
        // would turn into dropped messages sooner.
        let roomy = || crate::segment_writer::free_bytes(dir).is_ok_and(|free| free / 8 > mode.preallocate);
        let preallocated = mode.preallocate > 0 && roomy() && preallocate(&file, mode.preallocate, &path);
        let header = SegmentHeader {
            minor_version: MINOR_VERSION,
            flags: 0,
            session_id: *session,
            created_ns: shared::time::now_ns(),
            segment_seq: seq,
            robot_id: MIXED_ROBOTS,
        };
        Ok((
            SegmentFile {
                seq,
                path,
                file: Arc::new(file),
                durable_len: 0,
                failure: None,
                needs_dir_sync: true,
                created_ahead: ahead,
                seal_summary: None,
                direct,
                buffered_for_small_commits: !mode.under_load,
                mode_measured: mode.measured,
                busy: std::time::Duration::ZERO,
                preallocated,
                hashed_to: Some(0),
            },
            header.encode(),
        ))
    }

    /// Cuts the file back to its durable length and syncs the cut. Only for a file whose
    /// syncs never failed (a file that hit ENOSPC, or was interrupted by another file's error).
    pub(crate) fn cut_to_durable(&self) -> Result<()> {
        self.file.set_len(self.durable_len).and_then(|()| self.file.sync_all()).map_err(io_err("ftruncate", &self.path))
    }
}

/// Creates segment `seq`'s file in `dir` empty, ahead of its use (it must not exist; nothing
/// is synced). Returns its path.
pub(crate) fn create_ahead(dir: &Path, seq: u64, session: &[u8; 16]) -> Result<PathBuf> {
    let path = dir.join(segment_file_name(seq, session));
    OpenOptions::new().write(true).create_new(true).open(&path).map_err(io_err("create segment", &path))?;
    Ok(path)
}

/// Opens `path`, created empty ahead by [`create_ahead`], for writing, with `O_DIRECT` if
/// `direct` and the file system accepts it. It must still be empty: a file that is not (which
/// the writer never leaves) is refused rather than written over.
fn open_ahead(path: &Path, direct: bool) -> std::io::Result<(File, bool)> {
    let (file, direct) = open_with(path, direct, false)?;
    if file.metadata()?.len() != 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "segment created ahead is not empty"));
    }
    Ok((file, direct))
}

/// Creates `path` (which must not exist) for writing, with `O_DIRECT` if `direct` and the file
/// system accepts it. Returns the file and whether it is in direct mode.
fn open_new(path: &Path, direct: bool) -> std::io::Result<(File, bool)> {
    open_with(path, direct, true)
}

fn open_with(path: &Path, direct: bool, create: bool) -> std::io::Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    if direct {
        match OpenOptions::new().write(true).create_new(create).custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // The file system has no direct I/O (the file may exist now: reopen it).
                tracing::info!(path = %path.display(), "O_DIRECT refused by the file system: buffered writes");
                let f = OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
                return Ok((f, false));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((OpenOptions::new().write(true).create_new(create).open(path)?, false))
}

/// Reserves `len` bytes for `file` (the file's size becomes `len`; the space reads as zeros),
/// so direct writes land in allocated blocks: they neither extend the file nor allocate, and
/// the kernel runs several at once. Sealing cuts the file to its data. Best effort: returns
/// whether it worked (a failed attempt is undone).
fn preallocate(file: &File, len: u64, path: &Path) -> bool {
    use nix::fcntl::{fallocate, FallocateFlags};
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "segment not preallocated");
            if let Err(e) = file.set_len(0) {
                tracing::warn!(path = %path.display(), error = %e, "could not undo a partial preallocation");
            }
            false
        }
    }
}

/// Where the writer appends: the segment currently being filled.
#[derive(Debug)]
pub(crate) struct OpenSegment {
    /// Segment sequence number.
    pub(crate) seq: u64,
    /// Bytes encoded so far (durable, in flight and batched): the offset of the next record.
    pub(crate) len: u64,
    /// Summary of every record so far.
    pub(crate) summary: SummaryBuilder,
    /// Topics whose definition this segment holds.
    pub(crate) defined: HashSet<u32>,
    /// Topics with messages in this segment but no known definition yet.
    pub(crate) undefined: HashSet<u32>,
    /// Message records so far.
    pub(crate) messages: u64,
    /// When the segment was opened (rotation by age).
    pub(crate) opened: Instant,
}

impl OpenSegment {
    /// A segment `seq` of `session` whose header was just encoded.
    pub(crate) fn new(seq: u64, session: &[u8; 16]) -> OpenSegment {
        OpenSegment {
            seq,
            len: HEADER_LEN as u64,
            summary: SummaryBuilder::new(seq, session),
            defined: HashSet::new(),
            undefined: HashSet::new(),
            messages: 0,
            opened: Instant::now(),
        }
    }
}
