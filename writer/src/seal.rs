//! Sealing: once a segment's footer is durable, its sidecar manifest is written atomically
//! (temp file, fsync, rename, fsync of the directory) with the SHA-256 of the segment file.
//!
//! Hashing reads the whole segment back and the manifest needs three syncs, so this runs on a
//! worker thread (`fleetrec-seal`) instead of stalling the append loop; the loop collects the
//! results and announces each sealed segment. A manifest that cannot be written (for example
//! on a full disk) is retried later; recovery also writes missing manifests at start.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use shared::segment::{SegmentManifest, SegmentSummary};

use crate::directory::{manifest_path, sha256_file, write_atomically};
use crate::error::{Result, WriterError};

/// Name of the worker thread.
const THREAD_NAME: &str = "fleetrec-seal";
/// Seal jobs queued at most before the writer waits.
const QUEUE_DEPTH: usize = 64;

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
}

/// Hashes `path` and writes its manifest atomically. With `expected_size`, a file of another
/// size is an error (something else wrote to it).
pub fn write_manifest(
    path: &Path,
    expected_size: Option<u64>,
    summary: SegmentSummary,
) -> Result<(SegmentManifest, String)> {
    let (sha256, size) = sha256_file(path)?;
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

fn run_job(job: &SealJob) -> Result<SealedSegment> {
    let (m, sha256) = write_manifest(&job.path, Some(job.size), job.summary.clone())?;
    Ok(SealedSegment { seq: job.seq, path: job.path.clone(), size: m.size, sha256, summary: m.summary })
}

/// What the worker reports for a job.
pub(crate) type SealOutcome = std::result::Result<SealedSegment, (SealJob, WriterError)>;

/// The manifest worker thread.
#[derive(Debug)]
pub(crate) struct ManifestWorker {
    tx: Option<SyncSender<SealJob>>,
    rx: Receiver<SealOutcome>,
    handle: Option<JoinHandle<()>>,
    outstanding: usize,
}

impl ManifestWorker {
    /// Starts the worker.
    pub(crate) fn spawn() -> Result<ManifestWorker> {
        let (tx, jobs) = mpsc::sync_channel::<SealJob>(QUEUE_DEPTH);
        let (done, rx) = mpsc::channel::<SealOutcome>();
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                for job in jobs {
                    let outcome = run_job(&job).map_err(|e| (job, e));
                    if done.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .map_err(|error| WriterError::Io { op: "spawn thread", path: PathBuf::from(THREAD_NAME), error })?;
        Ok(ManifestWorker { tx: Some(tx), rx, handle: Some(handle), outstanding: 0 })
    }

    /// Queues a job (waits if the queue is full).
    pub(crate) fn submit(&mut self, job: SealJob) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(WriterError::ThreadGone { name: THREAD_NAME })?;
        tx.send(job).map_err(|_| WriterError::ThreadGone { name: THREAD_NAME })?;
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
