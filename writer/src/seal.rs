//! Sealing: once a segment's footer is durable, its sidecar manifest is written atomically
//! (temp file, fsync, rename, fsync of the directory) with the SHA-256 of the segment file.
//!
//! The SHA-256 is computed from the batches' aligned copies as they become durable (direct
//! I/O), or by reading the segment back (buffered I/O, or when a batch had to be written
//! again); that and the manifest's three syncs run on a worker thread (`fleetrec-seal`)
//! instead of stalling the append loop; the loop collects the
//! results and announces each sealed segment. A manifest that cannot be written (for example
//! on a full disk) is retried later; recovery also writes missing manifests at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;

use shared::segment::{SegmentManifest, SegmentSummary};

use sha2::{Digest, Sha256};

use crate::directory::{hex, manifest_path, sha256_file, write_atomically};
use crate::error::{Result, WriterError};
use crate::uring::AlignedBuf;

/// Name of the worker thread.
const THREAD_NAME: &str = "fleetrec-seal";
/// Seal jobs and hash chunks (up to a commit's size each) queued at most before the writer
/// waits.
const QUEUE_DEPTH: usize = 16;

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
    /// Write the manifest.
    Seal(SealJob),
}

/// Hashes `path` and writes its manifest atomically. With `expected_size`, a file of another
/// size is an error (something else wrote to it).
pub fn write_manifest(
    path: &Path,
    expected_size: Option<u64>,
    summary: SegmentSummary,
) -> Result<(SegmentManifest, String)> {
    let (sha256, size) = sha256_file(path)?;
    finish_manifest(path, expected_size, summary, sha256, size)
}

/// Writes the manifest of a segment whose SHA-256 is already known (computed from the bytes as
/// they were written); the file's size must be `size`.
pub(crate) fn write_manifest_hashed(
    path: &Path,
    size: u64,
    summary: SegmentSummary,
    sha256: String,
) -> Result<(SegmentManifest, String)> {
    let on_disk = std::fs::metadata(path).map_err(crate::error::io_err("stat", path))?.len();
    finish_manifest(path, Some(size), summary, sha256, on_disk)
}

fn finish_manifest(
    path: &Path,
    expected_size: Option<u64>,
    summary: SegmentSummary,
    sha256: String,
    size: u64,
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
    write_atomically(&mpath, &json)?;
    Ok((manifest, sha256))
}

/// Cuts a preallocated segment to its data (the footer's end) and syncs the cut.
pub(crate) fn cut_preallocation(job: &SealJob) -> Result<()> {
    if !job.truncate {
        return Ok(());
    }
    let file =
        std::fs::OpenOptions::new().write(true).open(&job.path).map_err(crate::error::io_err("open", &job.path))?;
    file.set_len(job.size).and_then(|()| file.sync_all()).map_err(crate::error::io_err("ftruncate", &job.path))
}

fn run_job(job: &SealJob, sha256: Option<String>) -> Result<SealedSegment> {
    cut_preallocation(job)?;
    let (m, sha256) = match sha256 {
        Some(sha) => write_manifest_hashed(&job.path, job.size, job.summary.clone(), sha)?,
        None => write_manifest(&job.path, Some(job.size), job.summary.clone())?,
    };
    Ok(SealedSegment { seq: job.seq, path: job.path.clone(), size: m.size, sha256, summary: m.summary })
}

/// What the worker reports for a job.
pub(crate) type SealOutcome = std::result::Result<SealedSegment, (SealJob, WriterError)>;

/// The manifest worker thread.
#[derive(Debug)]
pub(crate) struct ManifestWorker {
    tx: Option<SyncSender<Work>>,
    rx: Receiver<SealOutcome>,
    /// Aligned buffers hashed by the worker, for reuse.
    returned: Receiver<AlignedBuf>,
    handle: Option<JoinHandle<()>>,
    outstanding: usize,
}

impl ManifestWorker {
    /// Starts the worker.
    pub(crate) fn spawn() -> Result<ManifestWorker> {
        let (tx, jobs) = mpsc::sync_channel::<Work>(QUEUE_DEPTH);
        let (done, rx) = mpsc::channel::<SealOutcome>();
        let (give_back, returned) = mpsc::channel::<AlignedBuf>();
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let mut hashing: HashMap<u64, (Sha256, u64)> = HashMap::new();
                for work in jobs {
                    match work {
                        Work::Chunk { seq, buf } => {
                            let (h, n) = hashing.entry(seq).or_insert_with(|| (Sha256::new(), 0));
                            for c in buf.chunks() {
                                h.update(c);
                            }
                            *n += buf.len() as u64;
                            // The writer may be gone (closing): then the buffer is just freed.
                            let _ = give_back.send(buf);
                        }
                        Work::Seal(job) => {
                            let fed = hashing.remove(&job.seq);
                            let sha =
                                fed.filter(|(_, n)| job.prehashed && *n == job.size).map(|(h, _)| hex(&h.finalize()));
                            let outcome = run_job(&job, sha).map_err(|e| (job, e));
                            if done.send(outcome).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|error| WriterError::Io { op: "spawn thread", path: PathBuf::from(THREAD_NAME), error })?;
        Ok(ManifestWorker { tx: Some(tx), rx, returned, handle: Some(handle), outstanding: 0 })
    }

    /// Feeds the next bytes of segment `seq` to its SHA-256. Never waits: if the worker is
    /// behind (queue full) or gone, the buffer is handed back and the segment is hashed by
    /// reading it when it is sealed. Durability never waits for hashing.
    pub(crate) fn hash(&mut self, seq: u64, buf: AlignedBuf) -> std::result::Result<(), AlignedBuf> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(buf);
        };
        tx.try_send(Work::Chunk { seq, buf }).map_err(|e| match e {
            TrySendError::Full(Work::Chunk { buf, .. }) | TrySendError::Disconnected(Work::Chunk { buf, .. }) => buf,
            TrySendError::Full(Work::Seal(_)) | TrySendError::Disconnected(Work::Seal(_)) => AlignedBuf::default(),
        })
    }

    /// Buffers the worker finished hashing.
    pub(crate) fn returned(&self) -> impl Iterator<Item = AlignedBuf> + '_ {
        self.returned.try_iter()
    }

    /// Queues a job (waits if the queue is full).
    pub(crate) fn submit(&mut self, job: SealJob) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(WriterError::ThreadGone { name: THREAD_NAME })?;
        tx.send(Work::Seal(job)).map_err(|_| WriterError::ThreadGone { name: THREAD_NAME })?;
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
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
