//! Sealing: once a segment's footer is durable, its sidecar manifest is written atomically
//! (temp file, fsync, rename, fsync of the directory) with the SHA-256 of the segment file.
//! While seals come often (a fast recording: 25 a second at 400 MB/s with 16 MiB segments),
//! the manifests renamed within [`SYNC_GROUP_WINDOW`] share one directory fsync; each seal is
//! reported (and announced) only once that fsync succeeded.
//!
//! The SHA-256 is computed from the batches' aligned copies as they become durable (direct
//! I/O), or by reading the segment back (buffered I/O, or when a batch had to be written
//! again) on a worker thread (`fleetrec-hash`), and the manifest's syncs on the thread
//! after it (`fleetrec-seal`), so neither stalls the append loop and hashing never waits
//! behind a sync; the loop collects the
//! results and announces each sealed segment. A manifest that cannot be written (for example
//! on a full disk) is retried later; recovery also writes missing manifests at start.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shared::segment::{SegmentManifest, SegmentSummary};

use sha2::{Digest, Sha256};

use crate::directory::{
    fsync_dir, hex, manifest_path, parent_dir, sha256_file, write_and_rename, write_atomically, DirSyncs,
};
use crate::error::{Result, WriterError};
use crate::uring::AlignedBuf;

/// Name of the worker thread that hashes (and hands seals on).
const THREAD_NAME: &str = "fleetrec-hash";
/// Name of the thread that writes manifests.
const SEAL_THREAD_NAME: &str = "fleetrec-seal";
/// While seals come often, one directory fsync at most this often covers the manifests renamed
/// meanwhile (each one costs a journal commit and a device flush that the data's commits wait
/// behind). A seal is announced at most this much later than it could be.
const SYNC_GROUP_WINDOW: Duration = Duration::from_millis(100);
/// Hashing threads (one SHA-256 stream runs at about 1.8 GB/s on one core of the test
/// machine, slower than its disk).
const HASHERS: usize = 2;
/// Seal jobs and hash chunks (up to a commit's size each) queued at most per hashing thread
/// before the writer waits (seal jobs) or hashes by reading the file back (chunks).
const QUEUE_DEPTH: usize = 8;

/// A sealed segment with its manifest written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// Segment sequence number.
    pub seq: u64,
    /// Path of the segment.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The footer summary.
    pub summary: SegmentSummary,
}

/// A segment whose footer is durable and whose manifest is still to write.
#[derive(Debug, Clone)]
pub(crate) struct SealJob {
    /// Segment sequence number.
    pub(crate) seq: u64,
    /// Path.
    pub(crate) path: PathBuf,
    /// Size the segment was sealed at (checked against the file).
    pub(crate) size: u64,
    /// Footer summary.
    pub(crate) summary: SegmentSummary,
    /// The worker was fed every byte of the segment ([`ManifestWorker::hash`]).
    pub(crate) prehashed: bool,
    /// The file was preallocated: cut it to `size` (and sync) before the manifest.
    pub(crate) truncate: bool,
}

/// Work for the worker thread, in order.
enum Work {
    /// Bytes of segment `seq`, following those fed before.
    Chunk { seq: u64, buf: AlignedBuf },
    /// Write the manifest (the `ticket`-th seal).
    Seal { ticket: u64, job: SealJob },
}

/// Hashes `path` and writes its manifest atomically. With `expected_size`, a file of another
/// size is an error (something else wrote to it).
pub fn write_manifest(
    path: &Path,
    expected_size: Option<u64>,
    summary: SegmentSummary,
) -> Result<(SegmentManifest, String)> {
    let (sha256, size) = sha256_file(path)?;
    finish_manifest(path, expected_size, summary, sha256, size, true)
}

/// Writes the manifest of a segment of `size` bytes, hashing the file unless its SHA-256 is
/// already known (computed from the bytes as they were written), up to the rename: the
/// caller fsyncs the directory.
fn write_manifest_renamed(
    path: &Path,
    size: u64,
    summary: SegmentSummary,
    sha256: Option<String>,
) -> Result<(SegmentManifest, String)> {
    let (sha256, on_disk) = match sha256 {
        Some(sha) => (sha, std::fs::metadata(path).map_err(crate::error::io_err("stat", path))?.len()),
        None => sha256_file(path)?,
    };
    finish_manifest(path, Some(size), summary, sha256, on_disk, false)
}

fn finish_manifest(
    path: &Path,
    expected_size: Option<u64>,
    summary: SegmentSummary,
    sha256: String,
    size: u64,
    dir_sync: bool,
) -> Result<(SegmentManifest, String)> {
    if let Some(expected) = expected_size {
        if expected != size {
            return Err(WriterError::Json {
                path: path.to_path_buf(),
                reason: format!("sealed at {expected} bytes but the file has {size} bytes"),
            });
        }
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let manifest = SegmentManifest::new(&name, size, sha256.clone(), summary);
    let mpath = manifest_path(path);
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| WriterError::Json { path: mpath.clone(), reason: e.to_string() })?;
    if dir_sync {
        write_atomically(&mpath, &json)?;
    } else {
        write_and_rename(&mpath, &json)?;
    }
    Ok((manifest, sha256))
}

/// Cuts a preallocated segment to its data (the footer's end) and syncs the cut.
pub(crate) fn cut_preallocation(job: &SealJob) -> Result<()> {
    if !job.truncate {
        return Ok(());
    }
    let file =
        std::fs::OpenOptions::new().write(true).open(&job.path).map_err(crate::error::io_err("open", &job.path))?;
    // A segment that filled its preallocation ends just past it (its last batch extended the
    // file, and that batch's fdatasync made the size durable): nothing to cut, and no sync.
    let len = file.metadata().map_err(crate::error::io_err("stat", &job.path))?.len();
    if len == job.size {
        return Ok(());
    }
    file.set_len(job.size).and_then(|()| file.sync_all()).map_err(crate::error::io_err("ftruncate", &job.path))
}

/// A seal up to its manifest's rename (the directory fsync follows for a group of seals).
fn run_job(job: &SealJob, sha256: Option<String>) -> Result<SealedSegment> {
    cut_preallocation(job)?;
    let (m, sha256) = write_manifest_renamed(&job.path, job.size, job.summary.clone(), sha256)?;
    Ok(SealedSegment { seq: job.seq, path: job.path.clone(), size: m.size, sha256, summary: m.summary })
}

/// Seals whose manifests were renamed into place, waiting for one directory fsync.
struct SealGroup {
    seals: Vec<(SealJob, Result<SealedSegment>)>,
    /// When the group's directory fsync is due.
    due: Instant,
}

/// The sealing thread's state: seals in ticket order, grouped under one directory fsync.
struct Sealer {
    dir_syncs: Arc<DirSyncs>,
    done: Sender<SealOutcome>,
    early: BTreeMap<u64, (SealJob, Option<String>)>,
    next: u64,
    group: Option<SealGroup>,
    /// When the last group's directory fsync ended.
    last_sync: Option<Instant>,
}

impl Sealer {
    /// Takes a seal in ticket order; writes every manifest that is next up to its rename.
    fn take(&mut self, ticket: u64, job: SealJob, sha: Option<String>) {
        self.early.insert(ticket, (job, sha));
        while let Some((job, sha)) = self.early.remove(&self.next) {
            self.next += 1;
            self.prepare(job, sha);
        }
    }

    /// A hashing thread gone early left a gap in the tickets: the rest, in order.
    fn take_rest(&mut self) {
        for (_, (job, sha)) in std::mem::take(&mut self.early) {
            self.prepare(job, sha);
        }
    }

    fn prepare(&mut self, job: SealJob, sha: Option<String>) {
        let outcome = run_job(&job, sha);
        let now = Instant::now();
        // Seals come often (a fast recording): their directory fsyncs wait up to
        // SYNC_GROUP_WINDOW after the last one, so that one covers several.
        let due = match self.last_sync {
            Some(t) if now.duration_since(t) < SYNC_GROUP_WINDOW => t + SYNC_GROUP_WINDOW,
            _ => now,
        };
        self.group.get_or_insert_with(|| SealGroup { seals: Vec::new(), due }).seals.push((job, outcome));
    }

    /// When the pending group's directory fsync is due.
    fn due(&self) -> Option<Instant> {
        self.group.as_ref().map(|g| g.due)
    }

    /// Fsyncs the directory for the pending group and reports its seals. False once the
    /// writer is gone.
    fn sync_group(&mut self) -> bool {
        let Some(group) = self.group.take() else { return true };
        let renamed = group.seals.iter().find(|(_, r)| r.is_ok()).map(|(job, _)| parent_dir(&job.path));
        let upto = self.dir_syncs.snapshot();
        let synced = match renamed {
            Some(dir) => {
                self.dir_syncs.fsynced();
                fsync_dir(&dir)
            }
            None => Ok(()),
        };
        self.last_sync = Some(Instant::now());
        if synced.is_ok() {
            self.dir_syncs.synced(upto);
        }
        for (job, outcome) in group.seals {
            let outcome = match (outcome, &synced) {
                (Ok(sealed), Ok(())) => Ok(sealed),
                (Ok(_), Err(e)) => Err((job, copy_error(e))),
                (Err(e), _) => Err((job, e)),
            };
            if self.done.send(outcome).is_err() {
                return false;
            }
        }
        true
    }
}

/// The same error for another job (`std::io::Error` does not clone).
fn copy_error(e: &WriterError) -> WriterError {
    match e {
        WriterError::Io { op, path, error } => WriterError::Io {
            op,
            path: path.clone(),
            error: error.raw_os_error().map_or_else(
                || std::io::Error::new(error.kind(), error.to_string()),
                std::io::Error::from_raw_os_error,
            ),
        },
        other => WriterError::Json { path: PathBuf::new(), reason: other.to_string() },
    }
}

/// What the worker reports for a job.
pub(crate) type SealOutcome = std::result::Result<SealedSegment, (SealJob, WriterError)>;

/// The manifest worker threads.
#[derive(Debug)]
pub(crate) struct ManifestWorker {
    /// One queue per hashing thread; segment `seq` goes to `seq % HASHERS`.
    tx: Vec<SyncSender<Work>>,
    rx: Receiver<SealOutcome>,
    /// Aligned buffers hashed by the worker, for reuse.
    returned: Receiver<AlignedBuf>,
    handles: Vec<JoinHandle<()>>,
    outstanding: usize,
    /// Tickets give the seals their order: the sealing thread writes manifests in it.
    next_ticket: u64,
}

impl ManifestWorker {
    /// Starts the worker: [`HASHERS`] hashing threads that only compute SHA-256 (so a chunk
    /// never waits behind a sync; consecutive segments are hashed on different threads, so
    /// one that falls behind is not the limit), and a sealing thread behind them that does
    /// the file system work of each seal (cut, manifest, syncs), in the order of the seals.
    ///
    /// Manifests are made durable by a directory fsync (one per group of seals): a successful
    /// one is noted in `dir_syncs`, covering the files created before it started.
    pub(crate) fn spawn(dir_syncs: Arc<DirSyncs>) -> Result<ManifestWorker> {
        let (done, rx) = mpsc::channel::<SealOutcome>();
        let (give_back, returned) = mpsc::channel::<AlignedBuf>();
        let (to_sealer, seals) = mpsc::channel::<(u64, SealJob, Option<String>)>();
        let spawn_err =
            |name: &'static str| move |error| WriterError::Io { op: "spawn thread", path: PathBuf::from(name), error };
        let mut handles = Vec::new();
        let sealer = std::thread::Builder::new()
            .name(SEAL_THREAD_NAME.into())
            .spawn(move || {
                let mut sealer =
                    Sealer { dir_syncs, done, early: BTreeMap::new(), next: 0, group: None, last_sync: None };
                loop {
                    let received = match sealer.due() {
                        None => seals.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        Some(due) => seals.recv_timeout(due.saturating_duration_since(Instant::now())),
                    };
                    match received {
                        Ok((ticket, job, sha)) => sealer.take(ticket, job, sha),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if sealer.due().is_some_and(|d| d <= Instant::now()) && !sealer.sync_group() {
                        return;
                    }
                }
                // The writer is closing (or a hashing thread went early): everything left now.
                sealer.take_rest();
                sealer.sync_group();
            })
            .map_err(spawn_err(SEAL_THREAD_NAME))?;
        handles.push(sealer);
        let mut tx = Vec::new();
        for _ in 0..HASHERS {
            let (t, jobs) = mpsc::sync_channel::<Work>(QUEUE_DEPTH);
            tx.push(t);
            let give_back = give_back.clone();
            let to_sealer = to_sealer.clone();
            let hasher = std::thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || {
                    let mut hashing: HashMap<u64, (Sha256, u64)> = HashMap::new();
                    for work in jobs {
                        match work {
                            Work::Chunk { seq, buf } => {
                                let (h, n) = hashing.entry(seq).or_insert_with(|| (Sha256::new(), 0));
                                h.update(&buf[..]);
                                *n += buf.len() as u64;
                                // The writer may be gone (closing): then the buffer is just freed.
                                let _ = give_back.send(buf);
                            }
                            Work::Seal { ticket, job } => {
                                let fed = hashing.remove(&job.seq);
                                let sha = fed
                                    .filter(|(_, n)| job.prehashed && *n == job.size)
                                    .map(|(h, _)| hex(&h.finalize()));
                                if to_sealer.send((ticket, job, sha)).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                })
                .map_err(spawn_err(THREAD_NAME))?;
            handles.push(hasher);
        }
        Ok(ManifestWorker { tx, rx, returned, handles, outstanding: 0, next_ticket: 0 })
    }

    fn queue(&self, seq: u64) -> Option<&SyncSender<Work>> {
        self.tx.get((seq % HASHERS as u64) as usize)
    }

    /// Feeds the next bytes of segment `seq` to its SHA-256. Never waits: if the worker is
    /// behind (queue full) or gone, the buffer is handed back and the segment is hashed by
    /// reading it when it is sealed. Durability never waits for hashing.
    pub(crate) fn hash(&mut self, seq: u64, buf: AlignedBuf) -> std::result::Result<(), AlignedBuf> {
        let Some(tx) = self.queue(seq) else {
            return Err(buf);
        };
        tx.try_send(Work::Chunk { seq, buf }).map_err(|e| match e {
            TrySendError::Full(Work::Chunk { buf, .. }) | TrySendError::Disconnected(Work::Chunk { buf, .. }) => buf,
            TrySendError::Full(Work::Seal { .. }) | TrySendError::Disconnected(Work::Seal { .. }) => {
                AlignedBuf::default()
            }
        })
    }

    /// Buffers the worker finished hashing.
    pub(crate) fn returned(&self) -> impl Iterator<Item = AlignedBuf> + '_ {
        self.returned.try_iter()
    }

    /// Queues a job (waits if the queue is full).
    pub(crate) fn submit(&mut self, job: SealJob) -> Result<()> {
        let ticket = self.next_ticket;
        let tx = self.queue(job.seq).ok_or(WriterError::ThreadGone { name: THREAD_NAME })?;
        tx.send(Work::Seal { ticket, job }).map_err(|_| WriterError::ThreadGone { name: THREAD_NAME })?;
        self.next_ticket += 1;
        self.outstanding += 1;
        Ok(())
    }

    /// Jobs queued and not yet reported.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Results available now.
    pub(crate) fn try_results(&mut self) -> Vec<SealOutcome> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(r) => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    out.push(r);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.outstanding = 0;
                    break;
                }
            }
        }
        out
    }

    /// Waits for every queued job and returns the results.
    pub(crate) fn wait_all(&mut self) -> Vec<SealOutcome> {
        let mut out = Vec::new();
        while self.outstanding > 0 {
            match self.rx.recv() {
                Ok(r) => {
                    self.outstanding -= 1;
                    out.push(r);
                }
                Err(_) => {
                    self.outstanding = 0;
                }
            }
        }
        out
    }
}

impl Drop for ManifestWorker {
    fn drop(&mut self) {
        // Closing the queues ends the hashing threads, and with them the sealing thread.
        self.tx.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::TEMP_SUFFIX;

    fn sha_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// Seals are reported in order, each once its manifest is at its final name with the
    /// file's size and SHA-256; a failing seal is reported in its place without holding up the
    /// others, no temp file is left, and a burst of seals shares directory fsyncs.
    #[test]
    fn seals_are_reported_in_order_with_their_manifests_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let dir_syncs = Arc::new(DirSyncs::default());
        let mut worker = ManifestWorker::spawn(dir_syncs.clone()).unwrap();
        let mut contents = Vec::new();
        for seq in 0..6u64 {
            let path = dir.path().join(format!("seg-{seq:020}-test.wal"));
            let bytes: Vec<u8> = (0..(1000 + seq as usize * 37)).map(|i| (i as u64 * 31 + seq) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            // Segment 2 claims another size than its file's: its manifest must not be written.
            let size = if seq == 2 { bytes.len() as u64 + 1 } else { bytes.len() as u64 };
            let summary = SegmentSummary { segment_seq: seq, messages: seq * 10, ..SegmentSummary::default() };
            worker
                .submit(SealJob { seq, path: path.clone(), size, summary, prehashed: false, truncate: false })
                .unwrap();
            contents.push((path, bytes));
        }
        let outcomes = worker.wait_all();
        assert_eq!(outcomes.len(), 6);
        for (seq, outcome) in outcomes.iter().enumerate() {
            let (path, bytes) = &contents[seq];
            let mpath = manifest_path(path);
            match outcome {
                Ok(sealed) => {
                    assert_ne!(seq, 2, "segment 2 must fail");
                    assert_eq!(sealed.seq, seq as u64);
                    assert_eq!(sealed.size, bytes.len() as u64);
                    assert_eq!(sealed.sha256, sha_hex(bytes));
                    let m: SegmentManifest = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
                    assert_eq!(m.sha256, sha_hex(bytes));
                    assert_eq!(m.size, bytes.len() as u64);
                    assert_eq!(m.summary.messages, seq as u64 * 10);
                }
                Err((job, e)) => {
                    assert_eq!(seq, 2, "only segment 2 fails: {e}");
                    assert_eq!(job.seq, 2);
                    assert!(e.to_string().contains("sealed at"), "{e}");
                    assert!(!mpath.exists());
                }
            }
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let syncs = dir_syncs.fsyncs();
        assert!((1..5).contains(&syncs), "{syncs} directory fsyncs for 5 seals submitted at once");
    }

    /// A preallocated segment is cut to its sealed size before its manifest names that size.
    #[test]
    fn a_preallocated_segment_is_cut_before_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut worker = ManifestWorker::spawn(Arc::new(DirSyncs::default())).unwrap();
        let path = dir.path().join("seg-00000000000000000000-test.wal");
        let data = vec![7u8; 5000];
        let mut file_bytes = data.clone();
        file_bytes.resize(64 * 1024, 0);
        std::fs::write(&path, &file_bytes).unwrap();
        let job = SealJob {
            seq: 0,
            path: path.clone(),
            size: data.len() as u64,
            summary: SegmentSummary::default(),
            prehashed: false,
            truncate: true,
        };
        worker.submit(job).unwrap();
        let outcomes = worker.wait_all();
        let sealed = match &outcomes[..] {
            [Ok(s)] => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(sealed.sha256, sha_hex(&data));
        let m: SegmentManifest = serde_json::from_slice(&std::fs::read(manifest_path(&path)).unwrap()).unwrap();
        assert_eq!(m.size, 5000);
    }
}
