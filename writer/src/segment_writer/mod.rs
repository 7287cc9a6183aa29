//! [`SegmentWriter`]: the write-ahead log of one recording directory, without any IPC, so
//! tests and tools drive it with plain `MessageHeader` + payload pairs.
//!
//! Appending encodes a record into the current `Batch`. A batch is committed when
//! `commit_interval` has passed since its first record or it holds `commit_bytes`: it gets a
//! checkpoint record and goes to io_uring as writes linked to an `fdatasync`. Up to
//! `max_in_flight` (3) batches are in flight, so one batch's sync overlaps the next ones'
//! writes. Batches retire strictly in submission order; retiring one advances the
//! [`DurableWatermark`] and the file's durable length. A batch that fails is handled by
//! `interruption` (failed sync: rewrite into a new segment; ENOSPC: stall, see `stall`).
//!
//! The writer creates a segment lazily with the first message after a rotation, writes each
//! topic's definition into a segment before that topic's first message there, rotates at
//! `wal_segment_size` (and optionally by age), and seals a segment by ending its last batch
//! with the footer; once that batch is durable, the manifest worker writes the sidecar
//! manifest.

mod interruption;
mod io_mode;
mod stall;
mod undefined_topics;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceoryx2::prelude::FileDescriptorBased;
use shared::config::{Config, IoMode};
use shared::plane::MessageHeader;
use shared::segment::{
    checkpoint_padding, encode_checkpoint_padded, encode_footer, encode_message, encode_topic, Checkpoint,
};
use shared::topic::TopicInfo;
use tracing::{error, info, warn};

use crate::batch::{Batch, HeldMessages};
use crate::directory::{self, DirLock, DirSyncs};
use crate::error::{io_err, is_disk_full_errno, Result, WriterError};
use crate::fault::{IoFaults, NoFaults};
use crate::recovery::{self, RecoveryReport};
use crate::rotation::RotationPolicy;
use crate::seal::{ManifestWorker, SealJob, SealedSegment};
use crate::segment_file::{FileFailure, FileMode, OpenSegment, SegmentFile, DIRECT_ALIGN};
use crate::uring::{AlignedBuf, Chain, ChainResult, Completions, Ring};
use crate::watermark::DurableWatermark;

use io_mode::IoModeChooser;
pub use stall::free_bytes;
use stall::{Stall, StallKind};
use undefined_topics::UndefinedTopics;

/// Entries of the io_uring submission queue.
const RING_ENTRIES: u32 = 256;
/// Short writes of one batch resubmitted at most before the file is given up.
const MAX_SHORT_WRITE_RETRIES: u32 = 16;
/// Default [`WriterOptions::direct_min_commit`]: at 4 KiB of padding per commit at most, direct
/// segments cost under 2% extra space.
const DIRECT_MIN_COMMIT: u64 = 256 * 1024;
/// Batches kept for buffer reuse.
const SPARE_BUFFERS: usize = 8;

/// A buffered segment is ended early for a direct one (see [`WriterOptions::direct_min_commit`])
/// only once it holds this much (or a quarter of the segment size), so that a load that keeps
/// changing cannot make tiny segments.
const UPGRADE_MIN_LEN: u64 = 1024 * 1024;

/// [`SegmentWriter::append`] takes the I/O completions already there once this many bytes
/// were appended since it last did (every 1 MiB record, every 64th 4 KiB one).
const REAP_EVERY: u64 = 256 * 1024;

/// Bytes counted per message besides its payload for [`REAP_EVERY`] (about its framing).
const MESSAGE_OVERHEAD: u64 = 64;

/// How a [`SegmentWriter`] works. [`WriterOptions::from_config`] maps the `[storage]` section.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Recording directory (created if missing).
    pub dir: PathBuf,
    /// Rotate at this many bytes (`storage.wal_segment_size`).
    pub segment_size: u64,
    /// Rotate segments this old (`storage.segment_max_duration_s`, `None` = off).
    pub max_segment_age: Option<Duration>,
    /// Commit a batch at the latest this long after its first record
    /// (`storage.commit_interval_ms`).
    pub commit_interval: Duration,
    /// Commit a batch once it holds this many bytes (`storage.commit_bytes`).
    pub commit_bytes: u64,
    /// Batches in flight at once (3: one batch's fdatasync overlaps the next ones' writes).
    pub max_in_flight: usize,
    /// While stalled (disk full, repeated I/O errors), check for recovery this often.
    pub probe_interval: Duration,
    /// Free space needed beyond the held data before resuming after a full disk.
    pub resume_headroom: u64,
    /// How segments are written (`storage.io_mode`). Direct segments use `O_DIRECT` into
    /// preallocated space (falling back to buffered writes where the file system has no direct
    /// I/O); every commit then ends on a 4 KiB boundary (its checkpoint record is padded).
    /// [`IoMode::Auto`] measures both modes while commits are big and uses the faster (see
    /// `io_mode.rs`); [`IoMode::Direct`] always uses direct I/O then.
    pub io_mode: IoMode,
    /// Unless `io_mode` is buffered, a new segment may use direct I/O only while recent commits
    /// average at least this many bytes (before padding); slower recordings stay buffered, because padding
    /// each small commit to 4 KiB would multiply their disk use. 0: always direct. A segment
    /// opened buffered for that reason is ended early (after 1 MiB, or a quarter of
    /// `segment_size`) once the average reaches this again, so that a fast recording does not
    /// stay buffered for a whole segment (the first segment always opens buffered).
    pub direct_min_commit: u64,
    /// Writer session id (`None`: a random one).
    pub session_id: Option<[u8; 16]>,
    /// Fault injection at the I/O boundary (tests); [`NoFaults`] in production.
    pub faults: Arc<dyn IoFaults>,
}

impl WriterOptions {
    /// Defaults (those of `[storage]`) for directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> WriterOptions {
        let s = shared::config::StorageConfig::default();
        WriterOptions {
            dir: dir.into(),
            segment_size: s.wal_segment_size,
            max_segment_age: None,
            commit_interval: Duration::from_millis(s.commit_interval_ms),
            commit_bytes: s.commit_bytes,
            max_in_flight: 3,
            probe_interval: Duration::from_millis(500),
            resume_headroom: 1024 * 1024,
            io_mode: IoMode::Auto,
            direct_min_commit: DIRECT_MIN_COMMIT,
            session_id: None,
            faults: Arc::new(NoFaults),
        }
    }

    /// The options of a pipeline configuration.
    pub fn from_config(config: &Config) -> WriterOptions {
        let s = &config.storage;
        WriterOptions {
            segment_size: s.wal_segment_size,
            max_segment_age: (s.segment_max_duration_s > 0).then(|| Duration::from_secs(s.segment_max_duration_s)),
            commit_interval: Duration::from_millis(s.commit_interval_ms),
            commit_bytes: s.commit_bytes,
            resume_headroom: s.wal_segment_size.min(4 * 1024 * 1024),
            io_mode: s.io_mode,
            ..WriterOptions::new(&s.path)
        }
    }
}

/// What the writer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// Accepting and writing.
    Running,
    /// Paused by request: new messages are dropped (counted).
    Paused,
    /// The disk is full: new messages are dropped (counted), unsynced ones held in memory.
    DiskFull,
    /// Writes or syncs keep failing: like `DiskFull`, retried with backoff.
    IoFailing,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The writer is paused.
    Paused,
    /// The disk is full.
    DiskFull,
    /// I/O keeps failing.
    IoFailing,
}

/// The result of [`SegmentWriter::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The message is in a batch and will be durable after its commit.
    Accepted,
    /// The message was dropped and counted.
    Dropped(DropReason),
}

/// Counters of a writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Messages accepted.
    pub messages: u64,
    /// Payload bytes accepted.
    pub bytes: u64,
    /// Messages dropped (paused, disk full, I/O failing).
    pub dropped: u64,
    /// I/O errors (failed writes, failed syncs, failed side files).
    pub errors: u64,
    /// Failed fdatasync / directory fsync completions.
    pub fsync_errors: u64,
    /// Failed writes (other than a full disk).
    pub write_errors: u64,
    /// Times the disk became full.
    pub disk_full_events: u64,
    /// Batches made durable.
    pub commits: u64,
    /// Bytes on stable storage written by this writer.
    pub durable_bytes: u64,
    /// Segments sealed (manifest written), including those sealed by recovery.
    pub segments_sealed: u64,
    /// Segments abandoned after a failed write or sync.
    pub segments_abandoned: u64,
    /// Messages written a second time into a new segment after an interruption.
    pub rewritten_messages: u64,
    /// Corrupt records found by recovery at start.
    pub corrupt_records: u64,
    /// Torn-tail bytes cut by recovery at start.
    pub torn_bytes: u64,
    /// Directory fsyncs on the commit path: first batches of segment files whose directory
    /// entry no earlier directory fsync covered (see [`SegmentWriter`]'s file created ahead).
    pub commit_dir_syncs: u64,
    /// Directory fsyncs that made sealed segments' manifests durable (one may cover several
    /// seals).
    pub seal_dir_syncs: u64,
}

/// How a batch in flight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Written and synced.
    Durable,
    /// Not finished because another batch failed first (its data is rewritten).
    Interrupted,
    /// A write hit ENOSPC/EDQUOT.
    DiskFull(FileFailure),
    /// A write or sync failed otherwise: the file is given up.
    Failed(FileFailure),
}

/// What a failure interrupts: ordered so that `max` picks the resulting mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Interrupt {
    /// Rewrite the unsynced data into a new segment right away.
    Failed,
    /// Hold the unsynced data until space returns.
    DiskFull,
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    /// When the batch went to io_uring (for the I/O mode's busy time).
    submitted: Instant,
    batch: Batch,
    outcome: Option<Outcome>,
    short_retries: u32,
}

/// Segment files created ahead of their use: with 2, the seal of segment N-2 (not only N-1)
/// covers segment N's file, so that a seal slower than a whole segment (16 MiB at 400 MB/s
/// is 40 ms) still covers it.
const FILES_AHEAD: usize = 2;

/// A segment file created empty ahead of its use.
#[derive(Debug)]
struct Ahead {
    seq: u64,
    path: PathBuf,
    /// Its generation in [`DirSyncs`].
    generation: u64,
}

/// The write-ahead log of one recording directory.
///
/// The files of the next [`FILES_AHEAD`] segments are created (empty) ahead of their use.
/// Sealing a segment ends with a directory fsync (its manifest's rename), which then covers
/// their directory entries too, so a new segment's first batch usually needs no directory
/// fsync of its own: that would cost a journal commit and a device flush on the commit path
/// at every rotation. Recovery removes the empty segment files a crash leaves.
pub struct SegmentWriter {
    opts: WriterOptions,
    rotation: RotationPolicy,
    session: [u8; 16],
    dir_file: Arc<File>,
    _lock: DirLock,
    ring: Ring,
    next_seq: u64,
    /// The next segments' files, created empty ahead of their use (see [`Self::create_ahead`]).
    ahead: VecDeque<Ahead>,
    /// Directory fsyncs completed by the sealing thread, and what they covered.
    dir_syncs: Arc<DirSyncs>,
    next_batch_id: u64,
    /// Moving average of commit sizes (bytes before padding), for choosing direct I/O.
    commit_avg: u64,
    /// Direct or buffered for segments opened under load, by measured rates.
    io_modes: IoModeChooser,
    /// When the last batch retired (a batch's busy time starts at its submission or here).
    last_retired: Instant,
    /// Bytes appended since completions were last taken (see [`Self::pump`]).
    unreaped: u64,
    /// An iceoryx2 wake taken with other completions, reported by the next [`Self::wait`].
    woken: bool,
    topics: HashMap<u32, TopicInfo>,
    open: Option<OpenSegment>,
    current: Option<Batch>,
    ready: VecDeque<Batch>,
    in_flight: VecDeque<InFlight>,
    files: BTreeMap<u64, SegmentFile>,
    spare_buffers: Vec<AlignedBuf>,
    watermark: DurableWatermark,
    stats: WriterStats,
    paused: bool,
    stall: Option<Stall>,
    held: HeldMessages,
    undefined: UndefinedTopics,
    interrupt: Option<Interrupt>,
    consecutive_failures: u32,
    io_backoff: Duration,
    pending_seals: Vec<PathBuf>,
    manifest_retry: Vec<SealJob>,
    next_manifest_retry: Instant,
    sealer: ManifestWorker,
    sealed: Vec<SealedSegment>,
    last_error: Option<String>,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("dir", &self.opts.dir)
            .field("state", &self.state())
            .field("open_segment", &self.open.as_ref().map(|o| o.seq))
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl SegmentWriter {
    /// Opens the recording directory: takes its lock, recovers every unsealed segment (see
    /// [`crate::recovery`]) and continues after the highest segment sequence number.
    pub fn open(opts: WriterOptions) -> Result<(SegmentWriter, RecoveryReport)> {
        std::fs::create_dir_all(&opts.dir).map_err(io_err("create directory", &opts.dir))?;
        let lock = DirLock::acquire(&opts.dir)?;
        let mut report = RecoveryReport::default();
        recovery::recover_directory_locked(&opts.dir, &mut report)?;
        let next_seq = directory::next_segment_seq(&opts.dir)?;
        let dir_file = File::open(&opts.dir).map_err(io_err("open directory", &opts.dir))?;
        let ring = Ring::new(RING_ENTRIES).map_err(|error| WriterError::Ring { op: "setup", error })?;
        let dir_syncs = Arc::new(DirSyncs::default());
        let session = opts.session_id.unwrap_or_else(directory::new_session_id);
        let stats = WriterStats {
            corrupt_records: report.corrupt_records(),
            torn_bytes: report.torn_bytes(),
            segments_sealed: report.sealed.len() as u64,
            ..Default::default()
        };
        let writer = SegmentWriter {
            rotation: RotationPolicy { max_bytes: opts.segment_size, max_age: opts.max_segment_age },
            session,
            dir_file: Arc::new(dir_file),
            _lock: lock,
            ring,
            next_seq,
            ahead: VecDeque::new(),
            dir_syncs: dir_syncs.clone(),
            next_batch_id: 1,
            unreaped: 0,
            woken: false,
            commit_avg: 0,
            io_modes: IoModeChooser::default(),
            last_retired: Instant::now(),
            topics: HashMap::new(),
            open: None,
            current: None,
            ready: VecDeque::new(),
            in_flight: VecDeque::new(),
            files: BTreeMap::new(),
            spare_buffers: Vec::new(),
            watermark: DurableWatermark::default(),
            stats,
            paused: false,
            stall: None,
            held: HeldMessages::default(),
            undefined: UndefinedTopics::default(),
            interrupt: None,
            consecutive_failures: 0,
            io_backoff: opts.probe_interval,
            pending_seals: Vec::new(),
            manifest_retry: Vec::new(),
            next_manifest_retry: Instant::now(),
            sealer: ManifestWorker::spawn(dir_syncs)?,
            sealed: report.sealed.clone(),
            last_error: None,
            opts,
        };
        info!(
            dir = %writer.opts.dir.display(),
            session = %directory::hex(&writer.session),
            next_segment = writer.next_seq,
            "writer opened"
        );
        Ok((writer, report))
    }

    // ----- accessors -----

    /// The recording directory.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// This writer's session id.
    pub fn session_id(&self) -> [u8; 16] {
        self.session
    }

    /// What the writer is doing.
    pub fn state(&self) -> WriterState {
        match self.stall.as_ref().map(|s| s.kind) {
            Some(StallKind::DiskFull) => WriterState::DiskFull,
            Some(StallKind::IoFailing) => WriterState::IoFailing,
            None if self.paused => WriterState::Paused,
            None => WriterState::Running,
        }
    }

    /// Counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Per-topic progress and the durable watermark.
    pub fn watermark(&self) -> &DurableWatermark {
        &self.watermark
    }

    /// The known topic definitions.
    pub fn topics(&self) -> &HashMap<u32, TopicInfo> {
        &self.topics
    }

    /// The segment being filled, if any.
    pub fn current_segment(&self) -> Option<PathBuf> {
        let seq = self.open.as_ref()?.seq;
        self.files.get(&seq).map(|f| f.path.clone())
    }

    /// Bytes accepted and not yet durable (batched, in flight, or held after an interruption).
    pub fn unsynced_bytes(&self) -> u64 {
        let batched: usize = self.ready.iter().map(Batch::len).sum::<usize>()
            + self.current.as_ref().map_or(0, Batch::len)
            + self.in_flight.iter().map(|f| f.batch.len()).sum::<usize>();
        batched as u64 + self.held.bytes() + self.undefined.bytes()
    }

    /// Messages held in memory after an interruption, waiting to be rewritten.
    pub fn held_messages(&self) -> usize {
        self.held.len()
    }

    /// The last I/O error, as text.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// One line on what the writer is doing, for the status detail.
    pub fn detail(&self) -> String {
        if let Some(s) = &self.stall {
            return self.stall_detail(s);
        }
        let seg = self.current_segment().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        match (&self.last_error, seg) {
            (Some(e), _) => format!("last error: {e}"),
            (None, Some(s)) => format!("writing {s} ({})", self.io_mode_detail()),
            (None, None) => "idle".into(),
        }
    }

    /// The open segment's I/O mode, and the rates measured for `io_mode = "auto"`:
    /// `direct, measured direct 1210 MB/s, buffered 640 MB/s`.
    fn io_mode_detail(&self) -> String {
        let direct = self.open.as_ref().and_then(|o| self.files.get(&o.seq)).is_some_and(|f| f.direct);
        let mut out = String::from(if direct { "direct" } else { "buffered" });
        if let (Some(d), Some(b)) = self.io_modes.rates() {
            out.push_str(&format!(", measured direct {:.0} MB/s, buffered {:.0} MB/s", d / 1e6, b / 1e6));
        }
        out
    }

    /// Segments sealed since the last call (to announce).
    pub fn take_sealed(&mut self) -> Vec<SealedSegment> {
        std::mem::take(&mut self.sealed)
    }

    // ----- input -----

    /// Learns a topic definition. A segment that already has messages of the topic gets the
    /// (new) definition right away; others get it before the topic's first message. Messages
    /// that waited for this definition are written now, behind it.
    pub fn define_topic(&mut self, info: TopicInfo) -> Result<()> {
        let id = info.topic_id;
        if self.topics.get(&id) == Some(&info) {
            return Ok(());
        }
        let seen = self.open.as_ref().is_some_and(|o| o.defined.contains(&id) || o.undefined.contains(&id));
        self.topics.insert(id, info);
        if seen {
            self.write_topic_definition(id);
        }
        self.flush_undefined(id)
    }

    /// Stops accepting messages (they are dropped and counted) until [`Self::resume`].
    pub fn pause(&mut self) {
        if !self.paused {
            info!("writer paused: incoming messages are dropped");
        }
        self.paused = true;
    }

    /// Accepts messages again after [`Self::pause`].
    pub fn resume(&mut self) {
        if self.paused {
            info!("writer resumed");
        }
        self.paused = false;
    }

    /// Appends one message. The payload is copied into the current batch.
    pub fn append(&mut self, header: &MessageHeader, payload: &[u8]) -> Result<Appended> {
        let mut h = *header;
        h.payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        if let Some(reason) = self.refusal() {
            self.count_drop(&h);
            return Ok(Appended::Dropped(reason));
        }
        let len = payload.len() as u64;
        let wait = !self.topics.contains_key(&h.topic_id)
            && (self.undefined.has(h.topic_id) || self.open_has_no_messages_of(h.topic_id));
        if wait && self.wait_for_definition(&h, payload) {
            self.watermark.accepted(&h, len);
            self.stats.messages += 1;
            self.stats.bytes += len;
            return Ok(Appended::Accepted);
        }
        match self.append_record(&h, |out| encode_message(out, &h, payload), len) {
            Ok(true) => {
                self.watermark.accepted(&h, len);
                self.stats.messages += 1;
                self.stats.bytes += len;
                self.unreaped += len + MESSAGE_OVERHEAD;
                self.pump()?;
                Ok(Appended::Accepted)
            }
            Ok(false) => {
                self.count_drop(&h);
                Ok(Appended::Dropped(self.refusal().unwrap_or(DropReason::DiskFull)))
            }
            Err(e) => {
                self.count_drop(&h);
                error!(topic = h.topic_id, sequence = h.sequence, error = %e, "message lost: it could not be appended");
                self.note_error(&e);
                Err(e)
            }
        }
    }

    /// Whether the open segment (if any) has no message of `topic_id` yet.
    fn open_has_no_messages_of(&self, topic_id: u32) -> bool {
        self.open.as_ref().is_none_or(|o| !o.undefined.contains(&topic_id))
    }

    fn refusal(&self) -> Option<DropReason> {
        match self.stall.as_ref().map(|s| s.kind) {
            Some(StallKind::DiskFull) => Some(DropReason::DiskFull),
            Some(StallKind::IoFailing) => Some(DropReason::IoFailing),
            None if self.paused => Some(DropReason::Paused),
            None => None,
        }
    }

    /// Counts `n` messages that arrived unreadable (a malformed batch from ingest) as dropped.
    /// Their topics are unknown, so only the total counts them.
    pub fn count_unreadable(&mut self, n: u64) {
        self.stats.dropped += n;
    }

    fn count_drop(&mut self, h: &MessageHeader) {
        self.watermark.dropped(h);
        self.stats.dropped += 1;
    }

    fn note_error(&mut self, e: &WriterError) {
        self.stats.errors += 1;
        self.last_error = Some(e.to_string());
    }

    /// Requests a new segment: the open one is sealed with its next commit.
    pub fn split(&mut self) -> Result<()> {
        self.rotate();
        self.pump()
    }

    // ----- driving -----

    /// Non-blocking upkeep: takes I/O completions, handles failures, commits due batches,
    /// rotates by age, probes a full disk, collects sealed segments.
    pub fn poll(&mut self) -> Result<()> {
        let done = self.ring.reap();
        self.take_completions(done);
        if self.interrupt.is_some() {
            self.handle_interruption()?;
        }
        self.collect_seals();
        let now = Instant::now();
        if self.stall.is_some() {
            self.try_resume(now)?;
        }
        let aged = self.open.as_ref().is_some_and(|o| o.messages > 0 && self.rotation.full_by_age(o.opened, now));
        if aged {
            self.rotate();
        }
        if self.stall.is_none() && self.undefined.len() > 0 {
            self.flush_expired_undefined(now, false)?;
        }
        self.retry_manifests(now);
        self.pump()
    }

    /// Waits up to `timeout` for an I/O completion or for `wake` (an iceoryx2 listener) to
    /// become readable, then does [`Self::poll`]. Returns whether `wake` fired.
    pub fn wait(&mut self, timeout: Duration, wake: Option<&dyn FileDescriptorBased>) -> Result<bool> {
        let woken = self.wait_io(Some(timeout), wake)?;
        self.poll()?;
        Ok(woken)
    }

    /// The next instant [`Self::poll`] has work to do without any I/O completion (a commit
    /// deadline, a rotation by age, a disk probe, a manifest retry).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut d: Option<Instant> = None;
        let mut at = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        let slot_free = self.in_flight.len() < self.opts.max_in_flight;
        if slot_free && self.interrupt.is_none() {
            if !self.ready.is_empty() {
                at(now);
            }
            if let Some(t) = self.current.as_ref().and_then(|b| b.deadline(self.opts.commit_interval)) {
                at(t);
            }
        }
        if let Some(t) =
            self.open.as_ref().filter(|o| o.messages > 0).and_then(|o| self.rotation.age_deadline(o.opened))
        {
            at(t);
        }
        if let Some(s) = &self.stall {
            at(s.next_probe);
        }
        if !self.manifest_retry.is_empty() {
            at(self.next_manifest_retry);
        }
        if let Some(t) = self.undefined.deadline().filter(|_| self.stall.is_none()) {
            at(t);
        }
        if self.sealer.outstanding() > 0 {
            at(now + Duration::from_millis(20));
        }
        d
    }

    /// Commits everything appended so far and waits until it is durable (or the writer
    /// stalled on a full disk or failing I/O).
    pub fn sync(&mut self) -> Result<()> {
        if self.stall.is_none() {
            self.flush_expired_undefined(Instant::now(), true)?;
        }
        loop {
            self.poll()?;
            if self.stall.is_some() {
                return Ok(());
            }
            if self.interrupt.is_none() {
                self.finalize_current();
                self.submit_ready()?;
            }
            let idle = self.in_flight.is_empty()
                && self.ready.is_empty()
                && self.current.as_ref().is_none_or(Batch::is_empty)
                && self.interrupt.is_none()
                && self.held.is_empty();
            if idle {
                return Ok(());
            }
            self.wait_io(Some(Duration::from_millis(100)), None)?;
        }
    }

    /// Seals the open segment, makes everything durable, waits for the manifests and returns
    /// the segments sealed since the last [`Self::take_sealed`].
    pub fn close(mut self) -> Result<Vec<SealedSegment>> {
        self.sync()?;
        self.rotate();
        self.sync()?;
        if self.stall.is_some() {
            self.try_resume(Instant::now() + self.opts.probe_interval)?;
            self.sync()?;
        }
        if !self.held.is_empty() || self.open.is_some() || self.undefined.len() > 0 {
            error!(
                messages = self.held.len() + self.undefined.len(),
                "writer stopped while it could not write: unsynced messages are lost"
            );
        }
        self.discard_ahead();
        self.seal_pending();
        for outcome in self.sealer.wait_all() {
            self.on_seal_outcome(outcome);
        }
        for job in std::mem::take(&mut self.manifest_retry) {
            let written = crate::seal::cut_preallocation(&job)
                .and_then(|()| crate::seal::write_manifest(&job.path, Some(job.size), job.summary.clone()));
            match written {
                Ok((m, sha256)) => {
                    self.stats.segments_sealed += 1;
                    self.sealed.push(SealedSegment {
                        seq: job.seq,
                        path: job.path,
                        size: m.size,
                        sha256,
                        summary: m.summary,
                    });
                }
                Err(e) => {
                    warn!(segment = %job.path.display(), error = %e, "manifest not written; recovery writes it at the next start");
                }
            }
        }
        info!(
            messages = self.stats.messages,
            dropped = self.stats.dropped,
            sealed = self.stats.segments_sealed,
            "writer closed"
        );
        Ok(self.take_sealed())
    }

    // ----- append path -----

    /// Appends a message record (encoded by `encode`) to the open segment, opening one first
    /// if needed. Returns `false` if no segment could be created because the disk is full.
    fn append_record(
        &mut self,
        h: &MessageHeader,
        encode: impl FnOnce(&mut AlignedBuf),
        payload_len: u64,
    ) -> Result<bool> {
        if !self.ensure_open()? {
            return Ok(false);
        }
        let id = h.topic_id;
        let needs_definition = self.open.as_ref().is_some_and(|o| !o.defined.contains(&id));
        if needs_definition {
            if self.topics.contains_key(&id) {
                self.write_topic_definition(id);
            } else if let Some(open) = self.open.as_mut() {
                if open.undefined.insert(id) {
                    warn!(
                        topic = id,
                        segment = open.seq,
                        "message for a topic without a known definition: written without one until it is announced"
                    );
                }
            }
        }
        let (Some(open), Some(batch)) = (self.open.as_mut(), self.current.as_mut()) else {
            return Ok(false);
        };
        let offset = open.len;
        let n = batch.push_message(*h, encode);
        open.len += n as u64;
        open.messages += 1;
        open.summary.add_message(offset, h, payload_len);
        let full = self.rotation.full_by_size(open.len);
        let commit = batch.len() as u64 >= self.opts.commit_bytes;
        if full {
            self.rotate();
        } else if commit {
            self.finalize_current();
        }
        Ok(true)
    }

    /// Opens a new segment if none is open. `false`: no segment can be created now (the disk
    /// is full, or creating files fails); the writer stalled.
    fn ensure_open(&mut self) -> Result<bool> {
        if self.open.is_some() {
            return Ok(true);
        }
        let mut attempts = 0;
        let mode = self.next_file_mode();
        let (file, header) = loop {
            let seq = self.next_seq;
            let ahead = self.take_ahead(seq);
            match SegmentFile::create(&self.opts.dir, seq, &self.session, mode, ahead) {
                Ok(created) => {
                    self.next_seq += 1;
                    break created;
                }
                Err(e) if ahead.is_some() => {
                    // Removed or written by someone else meanwhile: create a new one.
                    warn!(error = %e, "the segment file created ahead cannot be used: creating another");
                    self.next_seq += 1;
                }
                Err(e) if e.is_disk_full() => {
                    self.enter_stall(StallKind::DiskFull, &e.to_string());
                    return Ok(false);
                }
                Err(WriterError::Io { error: source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && attempts < 16 =>
                {
                    attempts += 1;
                    self.next_seq += 1;
                }
                Err(e) => {
                    // Cannot create files here (permissions, read-only file system, ...):
                    // refuse (counted) and retry with backoff instead of failing each message.
                    self.note_error(&e);
                    self.enter_stall(StallKind::IoFailing, &e.to_string());
                    return Ok(false);
                }
            }
        };
        let seq = file.seq;
        let mut batch = Batch::new(seq, 0, self.take_buffer());
        batch.push_record(|out| out.extend_from_slice(&header));
        info!(segment = %file.path.display(), "segment opened");
        self.files.insert(seq, file);
        self.open = Some(OpenSegment::new(seq, &self.session));
        self.current = Some(batch);
        self.create_ahead();
        Ok(true)
    }

    /// The generation of the file created ahead for segment `seq`, if there is one; files
    /// created ahead for other numbers (the sequence moved back after an interruption) are
    /// removed.
    fn take_ahead(&mut self, seq: u64) -> Option<u64> {
        if self.ahead.front().is_some_and(|a| a.seq == seq) {
            return self.ahead.pop_front().map(|a| a.generation);
        }
        self.discard_ahead();
        None
    }

    /// Creates the next segments' files now, empty, so that a directory fsync (a seal's)
    /// covers their entries before their first batches. Best effort: a segment without one
    /// has its first batch fsync the directory itself.
    fn create_ahead(&mut self) {
        while self.ahead.len() < FILES_AHEAD {
            let seq = self.ahead.back().map_or(self.next_seq, |a| a.seq + 1);
            match crate::segment_file::create_ahead(&self.opts.dir, seq, &self.session) {
                Ok(path) => {
                    let generation = self.dir_syncs.created();
                    self.ahead.push_back(Ahead { seq, path, generation });
                }
                Err(e) => {
                    tracing::debug!(segment = seq, error = %e, "segment file not created ahead");
                    return;
                }
            }
        }
    }

    /// Removes the files created ahead (they hold nothing). A removal lost in a crash leaves
    /// an empty file, which recovery removes.
    fn discard_ahead(&mut self) {
        for ahead in std::mem::take(&mut self.ahead) {
            if let Err(e) = std::fs::remove_file(&ahead.path) {
                warn!(segment = %ahead.path.display(), error = %e, "could not remove an unused segment file created ahead");
            }
        }
    }

    fn write_topic_definition(&mut self, id: u32) {
        let (Some(open), Some(batch), Some(info)) = (self.open.as_mut(), self.current.as_mut(), self.topics.get(&id))
        else {
            return;
        };
        let n = batch.push_record(|out| encode_topic(out, info));
        open.summary.add_topic(info);
        open.len += n as u64;
        open.defined.insert(id);
        open.undefined.remove(&id);
    }

    /// How the next segment file is opened (a choice of the I/O mode, when under load).
    fn next_file_mode(&mut self) -> FileMode {
        let under_load = self.under_load();
        let (direct, measured) = match self.opts.io_mode {
            _ if !under_load => {
                self.io_modes.not_chosen();
                (false, false)
            }
            IoMode::Auto => {
                let c = self.io_modes.choose();
                (c.direct, c.measured)
            }
            IoMode::Direct => (true, false),
            IoMode::Buffered => (false, false),
        };
        FileMode {
            direct,
            measured,
            // Exactly the rotation size: a segment ends just past it (its last batch extends
            // the file), so sealing cuts nothing. Freed blocks would cost a discard on file
            // systems mounted with `discard`, and ext4 runs those inside its journal commits,
            // which the next fdatasyncs wait for.
            preallocate: if direct { self.opts.segment_size } else { 0 },
            under_load,
        }
    }

    /// Whether a segment opened now under load would use direct I/O outside a trial: always
    /// with `io_mode = "direct"`, with `"auto"` once direct was measured faster.
    fn next_prefers_direct(&self) -> bool {
        match self.opts.io_mode {
            IoMode::Direct => true,
            IoMode::Auto => self.io_modes.prefers_direct(),
            IoMode::Buffered => false,
        }
    }

    /// Whether a segment opened now may use direct I/O: unless `io_mode` is buffered, while
    /// recent commits are big (see [`WriterOptions::direct_min_commit`]).
    fn under_load(&self) -> bool {
        self.opts.io_mode != IoMode::Buffered && self.commit_avg >= self.opts.direct_min_commit
    }

    /// Closes the current batch at a commit boundary (a checkpoint record) and queues it.
    fn finalize_current(&mut self) {
        let (Some(open), Some(batch)) = (self.open.as_mut(), self.current.as_mut()) else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        self.commit_avg = (self.commit_avg.saturating_mul(7) + batch.len() as u64) / 8;
        let pad = direct_align(&self.files, open.seq).map_or(0, |a| checkpoint_padding(open.len, 0, a));
        let cp = Checkpoint { created_ns: shared::time::now_ns(), messages_before: open.messages };
        let n = batch.push_record(|out| encode_checkpoint_padded(out, &cp, pad));
        open.summary.add_other();
        open.len += n as u64;
        let (seq, len) = (open.seq, open.len);
        let next = Batch::new(seq, len, self.take_buffer());
        if let Some(done) = self.current.replace(next) {
            self.ready.push_back(done);
        }
        if self.rotation.full_by_size(len) {
            // The padding reached the rotation size: no message goes after it.
            self.rotate();
        } else if len >= (self.opts.segment_size / 4).min(UPGRADE_MIN_LEN)
            && self.under_load()
            && self.next_prefers_direct()
            && self.files.get(&seq).is_some_and(|f| f.buffered_for_small_commits)
        {
            // Commits grew (a fast recording, or the start of one: the first segment opens
            // before any commit size is known): end this buffered segment early so that the
            // next one uses direct I/O. (Where the next one would be buffered anyway, as
            // `auto` starts, ending early would only cost a seal.)
            info!(segment = seq, bytes = len, "commits grew: ending the buffered segment for a direct one");
            self.rotate();
        }
    }

    /// Ends the open segment: its last batch gets a checkpoint and the footer (on a direct-I/O
    /// file the checkpoint is padded so that the footer ends on a block boundary).
    fn rotate(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        let align = direct_align(&self.files, open.seq);
        let mut batch = self.current.take().unwrap_or_else(|| Batch::new(open.seq, open.len, AlignedBuf::default()));
        let checkpoint = !batch.is_empty() || align.is_some();
        if checkpoint {
            open.summary.add_other();
        }
        let summary = open.summary.build();
        let mut footer = Vec::new();
        encode_footer(&mut footer, &summary);
        if checkpoint {
            let pad = align.map_or(0, |a| checkpoint_padding(open.len, footer.len() as u64, a));
            let cp = Checkpoint { created_ns: shared::time::now_ns(), messages_before: open.messages };
            let n = batch.push_record(|out| encode_checkpoint_padded(out, &cp, pad));
            open.len += n as u64;
        }
        let n = batch.push_record(|out| out.extend_from_slice(&footer));
        open.len += n as u64;
        batch.seals = true;
        if let Some(f) = self.files.get_mut(&open.seq) {
            f.seal_summary = Some(summary);
        }
        self.ready.push_back(batch);
    }

    // ----- commit path -----

    fn unsubmitted_bytes(&self) -> u64 {
        let n: usize = self.ready.iter().map(Batch::len).sum::<usize>() + self.current.as_ref().map_or(0, Batch::len);
        n as u64
    }

    fn max_unsubmitted(&self) -> u64 {
        (2 * self.opts.commit_bytes).max(256 * 1024)
    }

    /// Submits what can be submitted; if too much waits unsubmitted, blocks for a completion.
    fn pump(&mut self) -> Result<()> {
        if self.unreaped >= REAP_EVERY {
            // Take the completions already there (no system call): a direct chain's
            // fdatasync is submitted only once its writes were taken, and an in-flight slot
            // frees only when its chain was. Waiting for the next `poll` or a full queue
            // would leave the device idle meanwhile.
            let done = self.ring.reap();
            self.take_completions(done);
        }
        self.submit_ready()?;
        while self.interrupt.is_none()
            && self.unsubmitted_bytes() > self.max_unsubmitted()
            && self.ring.chains_in_flight() > 0
        {
            self.wait_io(None, None)?;
        }
        Ok(())
    }

    /// Fills the free in-flight slots: queued batches first, then the current batch if due.
    fn submit_ready(&mut self) -> Result<()> {
        if self.interrupt.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        while self.in_flight.len() < self.opts.max_in_flight {
            if self.ready.is_empty() {
                let due = self
                    .current
                    .as_ref()
                    .is_some_and(|b| b.due(now, self.opts.commit_interval, self.opts.commit_bytes));
                if !due {
                    break;
                }
                self.finalize_current();
            }
            let Some(batch) = self.ready.pop_front() else {
                break;
            };
            self.submit(batch)?;
        }
        Ok(())
    }

    fn submit(&mut self, mut batch: Batch) -> Result<()> {
        // Hashed buffers back to the pool first, so that new batches reuse them instead of
        // allocating (and page-faulting) new ones.
        self.take_hashed_buffers();
        let Some(file) = self.files.get_mut(&batch.seq) else {
            // Cannot happen: a batch's file stays until the batch retires.
            error!(segment = batch.seq, "batch without its segment file: holding its messages");
            self.held.take_from(&batch);
            return Ok(());
        };
        let covered = file.created_ahead.is_some_and(|g| self.dir_syncs.covered(g));
        let dir_sync = std::mem::take(&mut file.needs_dir_sync) && !covered;
        if dir_sync {
            self.stats.commit_dir_syncs += 1;
        }
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let chain = Chain {
            id,
            file: file.file.clone(),
            offset: batch.file_offset,
            buf: std::mem::take(&mut batch.buf),
            from: 0,
            dir_sync: dir_sync.then(|| self.dir_file.clone()),
            direct: file.direct,
        };
        match self.ring.submit(chain) {
            Ok(()) => {
                let submitted = Instant::now();
                self.in_flight.push_back(InFlight { id, submitted, batch, outcome: None, short_retries: 0 });
                Ok(())
            }
            Err((chain, source)) => {
                batch.buf = chain.buf;
                file.needs_dir_sync |= dir_sync;
                self.ready.push_front(batch);
                Err(WriterError::Ring { op: "submit", error: source })
            }
        }
    }

    /// Waits on the ring, handles the completions and retires what became durable.
    fn wait_io(&mut self, timeout: Option<Duration>, wake: Option<&dyn FileDescriptorBased>) -> Result<bool> {
        let timeout =
            if self.ring.chains_in_flight() == 0 && timeout.is_none() { Some(Duration::ZERO) } else { timeout };
        let done = self.ring.wait(timeout, wake).map_err(|error| WriterError::Ring { op: "wait", error })?;
        self.take_completions(done);
        if self.interrupt.is_none() {
            self.submit_ready()?;
        }
        Ok(std::mem::take(&mut self.woken))
    }

    /// Records reaped completions: each chain's outcome, then retires what became durable.
    /// A wake among them is kept for the next [`Self::wait`].
    fn take_completions(&mut self, done: Completions) {
        self.unreaped = 0;
        self.woken |= done.woken;
        for r in done.chains {
            self.on_chain_done(r);
        }
        self.retire();
    }

    /// Judges one completed chain (through the fault hook) and records its outcome.
    fn on_chain_done(&mut self, r: ChainResult) {
        let ChainResult { chain, writes, datasync, dirsync } = r;
        let Some(idx) = self.in_flight.iter().position(|f| f.id == chain.id) else {
            error!(batch = chain.id, "completion of an unknown batch");
            return;
        };
        let seq = self.in_flight[idx].batch.seq;
        let path = self.files.get(&seq).map(|f| f.path.clone()).unwrap_or_default();
        let faults = self.opts.faults.clone();

        let mut written_to = chain.from;
        let mut short = false;
        let mut write_error = None;
        for w in &writes {
            let res = faults.write_result(&path, chain.offset + w.start as u64, w.len, w.res);
            if res >= 0 && res as u32 == w.len {
                written_to = w.start + w.len as usize;
                continue;
            }
            if res >= 0 || res == -libc::ECANCELED {
                written_to = w.start + res.max(0) as usize;
                short = true;
            } else {
                write_error = Some(-res);
            }
            break;
        }
        let outcome = if let Some(errno) = write_error {
            let f = FileFailure { op: "write", errno };
            if is_disk_full_errno(errno) {
                Outcome::DiskFull(f)
            } else {
                Outcome::Failed(f)
            }
        } else if short {
            if self.interrupt.is_some() {
                Outcome::Interrupted
            } else if self.in_flight[idx].short_retries < MAX_SHORT_WRITE_RETRIES {
                self.in_flight[idx].short_retries += 1;
                let retry = Chain { from: written_to, ..chain };
                match self.ring.submit(retry) {
                    Ok(()) => return,
                    Err((chain, e)) => {
                        self.in_flight[idx].batch.buf = chain.buf;
                        self.in_flight[idx].outcome = Some(Outcome::Failed(FileFailure {
                            op: "write",
                            errno: e.raw_os_error().unwrap_or(libc::EIO),
                        }));
                        self.after_failure(idx, &path);
                        return;
                    }
                }
            } else {
                Outcome::Failed(FileFailure { op: "write", errno: libc::EIO })
            }
        } else {
            let ds = faults.fdatasync_result(&path, datasync);
            if ds < 0 {
                Outcome::Failed(FileFailure { op: "fdatasync", errno: -ds })
            } else if let Some(d) = dirsync.filter(|d| *d < 0) {
                Outcome::Failed(FileFailure { op: "directory fsync", errno: -d })
            } else {
                Outcome::Durable
            }
        };
        let fl = &mut self.in_flight[idx];
        fl.batch.buf = chain.buf;
        fl.outcome = Some(outcome);
        if outcome != Outcome::Durable {
            self.after_failure(idx, &path);
        }
    }

    /// Records a non-durable outcome: poisons the file on a real failure and raises the
    /// interruption that `handle_interruption` settles.
    fn after_failure(&mut self, idx: usize, path: &Path) {
        let Some(fl) = self.in_flight.get(idx) else {
            return;
        };
        let seq = fl.batch.seq;
        match fl.outcome {
            Some(Outcome::Failed(f)) => {
                if let Some(file) = self.files.get_mut(&seq) {
                    file.failure.get_or_insert(f);
                }
                self.stats.errors += 1;
                if f.op == "write" {
                    self.stats.write_errors += 1;
                } else {
                    self.stats.fsync_errors += 1;
                }
                let e = std::io::Error::from_raw_os_error(f.errno);
                self.last_error = Some(format!("{} of {} failed: {e}", f.op, path.display()));
                error!(
                    segment = %path.display(),
                    op = f.op,
                    error = %e,
                    "I/O failed: the segment is abandoned (never synced again) and its unsynced data rewritten to a new segment"
                );
                self.interrupt = self.interrupt.max(Some(Interrupt::Failed));
            }
            Some(Outcome::DiskFull(f)) => {
                let e = std::io::Error::from_raw_os_error(f.errno);
                self.last_error = Some(format!("{} of {}: {e}", f.op, path.display()));
                warn!(segment = %path.display(), error = %e, "disk full");
                self.interrupt = Some(Interrupt::DiskFull);
            }
            _ => {}
        }
    }

    /// Retires, in order, the batches at the front whose sync completed.
    fn retire(&mut self) {
        // The time since the last retirement (or since the first of these batches was
        // submitted, if the ring was idle meanwhile) is the disk's busy time for the batches
        // retiring now, shared out by their sizes (see `io_mode.rs`).
        let now = Instant::now();
        let retiring = self.in_flight.iter().take_while(|f| f.outcome == Some(Outcome::Durable));
        let (first_submitted, retiring_bytes) = retiring.fold((None::<Instant>, 0u64), |(t, n), f| {
            (Some(t.map_or(f.submitted, |t| t.min(f.submitted))), n + f.batch.len() as u64)
        });
        let busy_total =
            first_submitted.map_or(Duration::ZERO, |t| now.saturating_duration_since(t.max(self.last_retired)));
        if first_submitted.is_some() {
            self.last_retired = now;
        }
        while self.in_flight.front().is_some_and(|f| f.outcome == Some(Outcome::Durable)) {
            let Some(fl) = self.in_flight.pop_front() else {
                break;
            };
            let busy = busy_total.mul_f64(fl.batch.len() as f64 / retiring_bytes.max(1) as f64);
            let mut b = fl.batch;
            let len = b.len() as u64;
            for m in &b.messages {
                self.watermark.durable(&m.header);
            }
            self.stats.durable_bytes += len;
            self.stats.commits += 1;
            self.consecutive_failures = 0;
            self.io_backoff = self.opts.probe_interval;
            let mut buf = Some(std::mem::take(&mut b.buf));
            if let Some(f) = self.files.get_mut(&b.seq) {
                f.durable_len = b.file_offset + len;
                f.busy += busy;
                // Feed the batch's bytes to the segment's SHA-256 if they continue it.
                if f.hashed_to == Some(b.file_offset) {
                    match buf.take().map(|a| self.sealer.hash(b.seq, a)) {
                        Some(Ok(())) => f.hashed_to = Some(b.file_offset + len),
                        Some(Err(a)) => {
                            f.hashed_to = None;
                            buf = Some(a);
                        }
                        None => f.hashed_to = None,
                    }
                } else {
                    f.hashed_to = None;
                }
            }
            if b.seals {
                if let Some(f) = self.files.remove(&b.seq) {
                    if f.mode_measured {
                        self.measured_io_mode(&f);
                    }
                    let job = SealJob {
                        seq: f.seq,
                        path: f.path.clone(),
                        size: f.durable_len,
                        summary: f.seal_summary.clone().unwrap_or_default(),
                        prehashed: f.hashed_to == Some(f.durable_len),
                        truncate: f.preallocated,
                    };
                    if let Err(e) = self.sealer.submit(job.clone()) {
                        error!(error = %e, "manifest worker unavailable: retrying later");
                        self.manifest_retry.push(job);
                    }
                }
            }
            if let Some(buf) = buf {
                self.recycle(buf);
            }
        }
    }

    /// Keeps the rate a sealed segment opened under load was made durable at, for the choice of
    /// the next segments' I/O mode.
    fn measured_io_mode(&mut self, f: &SegmentFile) {
        let before = self.io_modes.prefers_direct();
        let Some(rate) = self.io_modes.record(f.direct, f.durable_len, f.busy) else {
            return;
        };
        let mode = if f.direct { "direct" } else { "buffered" };
        tracing::debug!(segment = f.seq, mode, mb_per_s = rate / 1e6, "I/O mode measured");
        let after = self.io_modes.prefers_direct();
        if before != after {
            let (d, b) = self.io_modes.rates();
            info!(
                direct_mb_per_s = d.map(|r| (r / 1e6).round()),
                buffered_mb_per_s = b.map(|r| (r / 1e6).round()),
                "fast segments now use {} I/O (measured faster)",
                if after { "direct" } else { "buffered" }
            );
        }
    }

    /// Room a new batch buffer is made with: twice the recent commits (a slow recording keeps
    /// small buffers), at least 64 KiB, at most a full commit and some.
    fn batch_room(&self) -> usize {
        let full = self.opts.commit_bytes.min(self.opts.segment_size).saturating_add(64 * 1024);
        let room = self.commit_avg.saturating_mul(2).clamp(64 * 1024, full.max(64 * 1024));
        usize::try_from(room).unwrap_or(usize::MAX)
    }

    /// A buffer for a new batch: a spare one, or a new one sized by [`Self::batch_room`].
    fn take_buffer(&mut self) -> AlignedBuf {
        let room = self.batch_room();
        self.spare_buffers.pop().unwrap_or_else(|| AlignedBuf::with_capacity(room))
    }

    /// Keeps a buffer for reuse, unless enough are kept or it is far bigger than recent commits
    /// need (a huge message, or a burst that ended): its memory is given back then.
    fn recycle(&mut self, mut buf: AlignedBuf) {
        if self.spare_buffers.len() < SPARE_BUFFERS && buf.capacity() <= 2 * self.batch_room() {
            buf.clear();
            self.spare_buffers.push(buf);
        }
    }

    /// Takes back the buffers the sealer finished hashing.
    fn take_hashed_buffers(&mut self) {
        let back: Vec<AlignedBuf> = self.sealer.returned().collect();
        for buf in back {
            self.recycle(buf);
        }
    }

    // ----- sealing -----

    fn collect_seals(&mut self) {
        self.take_hashed_buffers();
        self.stats.seal_dir_syncs = self.dir_syncs.fsyncs();
        for outcome in self.sealer.try_results() {
            self.on_seal_outcome(outcome);
        }
    }

    fn on_seal_outcome(&mut self, outcome: crate::seal::SealOutcome) {
        match outcome {
            Ok(s) => {
                info!(segment = %s.path.display(), size = s.size, messages = s.summary.messages, "segment sealed");
                self.stats.segments_sealed += 1;
                self.sealed.push(s);
            }
            Err((job, e)) => {
                self.note_error(&e);
                warn!(segment = %job.path.display(), error = %e, "manifest not written: retrying later");
                self.manifest_retry.push(job);
            }
        }
    }

    fn retry_manifests(&mut self, now: Instant) {
        if self.manifest_retry.is_empty() || now < self.next_manifest_retry {
            return;
        }
        self.next_manifest_retry = now + self.opts.probe_interval;
        for job in std::mem::take(&mut self.manifest_retry) {
            if let Err(e) = self.sealer.submit(job.clone()) {
                error!(error = %e, "manifest worker unavailable");
                self.manifest_retry.push(job);
            }
        }
    }
}

/// The block alignment commits of segment `seq` need: `Some` for a direct-I/O file.
fn direct_align(files: &BTreeMap<u64, SegmentFile>, seq: u64) -> Option<u64> {
    files.get(&seq).filter(|f| f.direct).map(|_| DIRECT_ALIGN)
}
