//! Uploading one sealed segment, resumably:
//!
//! 1. Hash the file whole and per part and compare with the sidecar manifest (a segment that
//!    does not match is never uploaded); compare every part the journal already holds with the
//!    file (a mismatch aborts the old upload and starts over). A segment that fits in one part
//!    skips this pass: its one part is hashed as it is read for sending, and must match then.
//! 2. No upload yet: if a journal from an earlier run exists, HEAD the key first; an object with
//!    our size and SHA-256 metadata means a previous run completed it (nothing is sent twice).
//!    A segment that fits in one part goes as one PutObject (steps 3 and 4 are skipped); else
//!    CreateMultipartUpload, and persist the upload id before the first part.
//! 3. Send the parts without an ETag, up to `concurrency` in flight (a semaphore shared by all
//!    segments), each paced by the bandwidth limit, counted in the journal before it is sent
//!    and recorded (number, ETag, SHA-256, size) after it is acknowledged. Each part retries
//!    with backoff; when the backoff is spent the segment waits for the next probe.
//! 4. Persist `completing`, CompleteMultipartUpload. `NoSuchUpload` here or on a part means
//!    the server forgot the upload: HEAD decides whether it completed (a crash between complete
//!    and persist), else abort and start over.
//!    A server that *answers* requests of one upload with errors (HTTP 5xx) until the backoff is
//!    spent, in [`SERVER_ERROR_ROUNDS_BEFORE_RESTART`] consecutive attempts with a successful
//!    probe in between, has lost or broken that upload (SeaweedFS after a SIGKILL was seen to
//!    answer `InternalError` instead of `NoSuchUpload`): the next attempt aborts it (best effort)
//!    and starts over. An endpoint that does not answer (refused, reset, timeout) never causes
//!    that: a restart sends every part again.
//! 5. PUT the sidecar manifest and the upload manifest; with retention on, HEAD to verify size
//!    and SHA-256 metadata (only verified segments may be deleted locally).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use object_store::path::Path as ObjectPath;
use object_store::PutPayload;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::backoff::BackoffPolicy;
use crate::digest::{digest_file, read_part, sha256_hex, SegmentDigest};
use crate::error::UploadError;
use crate::journal::{JournalPart, UploadJournal, UploadState};
use crate::progress::Progress;
use crate::sealed::{ObjectLayout, SealedSegment};
use crate::store::{classify, normalize_etag, Failure, Request, S3Store};
use crate::throttle::BandwidthLimiter;

/// How many times one attempt at a segment (one call of [`upload_segment`]) restarts its
/// multipart upload (forgotten by the server, or failing with server errors) before it waits
/// for the next probe instead. A restart for server errors happens at most once per attempt
/// (at its start), and only after [`SERVER_ERROR_ROUNDS_BEFORE_RESTART`] whole attempts.
const MAX_RESTARTS_PER_RUN: u32 = 3;

/// Consecutive attempts ("rounds") at one multipart upload that ended with the backoff spent on
/// a server error (HTTP 5xx from a part, the completion or ListParts of that upload) before the
/// next attempt aborts the upload and starts a new one. Between two rounds the engine's probe
/// found the endpoint reachable (else the segment would not be retried), so the errors are the
/// upload's, not the server's as a whole.
///
/// The count lives in the journal (`server_error_rounds`), not in the engine's memory: it is a
/// fact about the upload id stored there, it is reset in the same journal writes that record
/// progress (a part's ETag) or a new upload, and it survives an uploader restart, which a
/// robot may well do more often than two rounds take with the default backoff (minutes).
pub const SERVER_ERROR_ROUNDS_BEFORE_RESTART: u32 = 2;

/// The longest error text kept in the journal.
const MAX_ERROR_TEXT: usize = 1000;

/// What the upload tasks share.
#[derive(Debug)]
pub struct UploadContext {
    /// The bucket.
    pub store: S3Store,
    /// Key layout.
    pub layout: ObjectLayout,
    /// Where journals live.
    pub state_dir: PathBuf,
    /// Part size for new uploads.
    pub chunk_size: u64,
    /// Retry policy per request.
    pub backoff: BackoffPolicy,
    /// Parts in flight, over all segments.
    pub slots: Semaphore,
    /// Bandwidth limit.
    pub limiter: BandwidthLimiter,
    /// Counters.
    pub progress: Progress,
    /// Verify every upload with a HEAD (size, SHA-256 metadata) before it counts as done; on
    /// when retention may delete local segments.
    pub verify: bool,
    /// `true` while paused: no new part starts.
    pub paused: watch::Receiver<bool>,
}

/// How one segment's upload ended.
#[derive(Debug)]
pub enum SegmentOutcome {
    /// Uploaded, manifests written (and verified, when the context asks for it).
    Done {
        /// Whether this run sent anything (false: it was complete already).
        sent: bool,
        /// The journal.
        journal: Box<UploadJournal>,
    },
    /// The endpoint failed (backoff spent): wait for the next probe.
    Offline(String),
    /// The server answered with errors (HTTP 5xx; backoff spent): wait for the next probe.
    ServerFailing(String),
    /// The server refuses (permissions, bucket, rejected request): wait for the next probe.
    Refused(String),
    /// The segment does not match its manifest: not uploaded.
    Corrupt(String),
    /// A local error (journal, file): retried at the next rescan.
    Local(UploadError),
}

/// The journal of the segment being uploaded, shared by its part tasks.
#[derive(Debug)]
struct JournalFile {
    path: PathBuf,
    journal: Mutex<UploadJournal>,
}

impl JournalFile {
    fn lock(&self) -> MutexGuard<'_, UploadJournal> {
        self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `f` and persists the result atomically, under the lock (so later writes always
    /// contain earlier changes).
    fn update(&self, f: impl FnOnce(&mut UploadJournal)) -> Result<UploadJournal, UploadError> {
        let mut j = self.lock();
        f(&mut j);
        j.persist(&self.path)?;
        Ok(j.clone())
    }
}

/// Why a step stopped.
enum Stop {
    Failure(Failure),
    Local(UploadError),
    /// The bytes read for a part do not hash as recorded: the file does not match its manifest.
    Corrupt(UploadError),
}

impl From<UploadError> for Stop {
    fn from(e: UploadError) -> Self {
        Stop::Local(e)
    }
}

/// The upload manifest object (`<key>.upload.json`).
#[derive(Debug, Serialize)]
struct UploadManifest<'a> {
    format: &'static str,
    version: u32,
    segment: &'a str,
    key: &'a str,
    robot: &'a str,
    session: &'a str,
    size: u64,
    sha256: &'a str,
    chunk_size: u64,
    parts: &'a [JournalPart],
    upload_id: Option<&'a str>,
    etag: Option<&'a str>,
    segment_manifest_key: String,
    uploaded_ns: u64,
    fleetrec_version: &'static str,
}

/// Uploads `seg` (see the module docs). Never panics; every way it can end is an outcome.
pub async fn upload_segment(ctx: Arc<UploadContext>, seg: Arc<SealedSegment>) -> SegmentOutcome {
    match run(&ctx, &seg).await {
        Ok(outcome) => outcome,
        Err(Stop::Local(e)) => SegmentOutcome::Local(e),
        Err(Stop::Corrupt(e)) => SegmentOutcome::Corrupt(e.to_string()),
        Err(Stop::Failure(Failure::Transient(m))) => SegmentOutcome::Offline(m),
        Err(Stop::Failure(Failure::ServerError(m))) => SegmentOutcome::ServerFailing(m),
        Err(Stop::Failure(Failure::Permanent(m) | Failure::UploadGone(m))) => SegmentOutcome::Refused(m),
    }
}

async fn run(ctx: &Arc<UploadContext>, seg: &Arc<SealedSegment>) -> Result<SegmentOutcome, Stop> {
    let key = ctx.layout.segment_key(seg);
    let path = S3Store::path(&key)?;
    let journal_path = UploadJournal::path_for(&ctx.state_dir, &seg.name);
    let existing = UploadJournal::load(&journal_path)?;
    if let Some(j) = &existing {
        if j.is_settled(ctx.verify) {
            return Ok(SegmentOutcome::Done { sent: false, journal: Box::new(j.clone()) });
        }
    }
    let chunk_size = existing.as_ref().map_or(ctx.chunk_size, |j| j.chunk_size);
    let m = &seg.manifest;
    let on_disk = std::fs::metadata(&seg.path).map_err(|e| UploadError::io(&seg.path, e))?.len();
    let digest = if on_disk == m.size && m.size <= chunk_size {
        // One part: its bytes are hashed when they are read for sending and must equal the
        // manifest's hash then (a mismatch is `Corrupt`, nothing is stored), which saves a
        // whole read and hash of the file.
        SegmentDigest { size: m.size, sha256: m.sha256.clone(), chunks: vec![m.sha256.clone()], chunk_size }
    } else {
        let p = seg.path.clone();
        tokio::task::spawn_blocking(move || digest_file(&p, chunk_size))
            .await
            .map_err(|e| Stop::Local(UploadError::Setup(format!("hashing task: {e}"))))??
    };
    if digest.size != m.size || digest.sha256 != m.sha256 {
        let e = UploadError::SourceMismatch {
            segment: seg.name.clone(),
            size: digest.size,
            expected_size: m.size,
            sha256: digest.sha256.clone(),
            expected_sha256: m.sha256.clone(),
        };
        return Ok(SegmentOutcome::Corrupt(e.to_string()));
    }
    // Only a journal from an earlier run can hide a completed object (a crash after complete,
    // before the journal said so, or a reset journal): a fresh segment skips that HEAD.
    let had_journal = existing.is_some();
    let mut journal = match existing {
        Some(j) if j.key == key && j.sha256 == digest.sha256 && j.size == digest.size => j,
        Some(old) => {
            tracing::warn!(segment = %seg.name, old_key = %old.key, "journal does not match the segment: starting over");
            if let (Some(id), Ok(old_path)) = (&old.upload_id, S3Store::path(&old.key)) {
                let _ = ctx.store.abort(&old_path, id).await;
            }
            UploadJournal::new(&seg.name, &key, digest.size, &digest.sha256, chunk_size, &digest.chunks)
        }
        None => UploadJournal::new(&seg.name, &key, digest.size, &digest.sha256, chunk_size, &digest.chunks),
    };
    if journal.parts.len() != digest.chunks.len()
        || journal.parts.iter().zip(&digest.chunks).any(|(p, c)| p.etag.is_some() && &p.sha256 != c)
    {
        tracing::error!(segment = %seg.name, "parts in the journal differ from the file: aborting the upload and starting over");
        ctx.progress.error("journal parts differ from the file");
        if let Some(id) = &journal.upload_id {
            let _ = ctx.store.abort(&path, id).await;
        }
        journal.reset_parts(&digest.chunks);
        journal.restarts += 1;
    }
    let mut restarts = 0u32;
    if needs_restart_for_server_errors(&journal) {
        // This attempt only started because the probe (or another segment's upload) found the
        // endpoint working: the upload id itself is what fails.
        let id = journal.upload_id.clone().unwrap_or_default();
        let last = journal.last_server_error.clone().unwrap_or_default();
        tracing::warn!(
            segment = %seg.name,
            upload_id = %id,
            rounds = journal.server_error_rounds,
            last_error = %last,
            "the server keeps failing this multipart upload with server errors: aborting it and starting a new one (every part is sent again)"
        );
        ctx.progress.error(&format!("upload {id} of {} restarted after server errors: {last}", seg.name));
        if !id.is_empty() {
            if let Err(e) = ctx.store.abort(&path, &id).await {
                tracing::warn!(segment = %seg.name, upload_id = %id, error = %e, "could not abort the failing upload: it may stay open on the server");
            }
        }
        journal.reset_parts(&digest.chunks);
        journal.restarts += 1;
        restarts += 1;
    }
    journal.persist(&journal_path)?;
    set_queue(ctx, seg, &journal);
    let file = Arc::new(JournalFile { path: journal_path, journal: Mutex::new(journal) });
    let digest = Arc::new(digest);
    let mut sent = false;
    // An upload id from an earlier attempt is checked against the server before parts follow.
    let mut check_server = file.lock().state == UploadState::Uploading;
    loop {
        let state = file.lock().state;
        let step = match state {
            UploadState::New => {
                start(ctx, seg, &file, &path, &digest, had_journal || restarts > 0).await.map(|sent_now| {
                    sent |= sent_now;
                })
            }
            UploadState::Uploading => {
                sent = true;
                if std::mem::take(&mut check_server) {
                    match reconcile(ctx, seg, &file, &path).await {
                        Ok(()) => send_parts(ctx, seg, &file, &path, &digest).await,
                        Err(e) => Err(e),
                    }
                } else {
                    send_parts(ctx, seg, &file, &path, &digest).await
                }
            }
            UploadState::Completing => complete(ctx, seg, &file, &path).await,
            UploadState::Completed => break,
        };
        match step {
            Ok(()) => {}
            Err(Stop::Failure(Failure::UploadGone(m))) => {
                restarts += 1;
                tracing::warn!(segment = %seg.name, reason = %m, "the server no longer knows the upload: starting over");
                let old = file.lock().upload_id.clone();
                if let Some(id) = old {
                    let _ = ctx.store.abort(&path, &id).await;
                }
                let j = file.update(|j| {
                    j.reset_parts(&digest.chunks);
                    j.restarts += 1;
                })?;
                set_queue(ctx, seg, &j);
                if restarts > MAX_RESTARTS_PER_RUN {
                    return Err(Stop::Failure(Failure::Permanent(format!("upload restarted {restarts} times: {m}"))));
                }
            }
            Err(Stop::Failure(f)) if f.is_retryable() && state != UploadState::New => {
                // The attempt ends (the segment waits for the next probe): a round of the
                // current upload, counted towards a restart only when the server answered.
                file.update(|j| count_round(j, &f))?;
                return Err(Stop::Failure(f));
            }
            Err(e) => return Err(e),
        }
    }
    finish(ctx, seg, &file, &path).await?;
    let journal = file.lock().clone();
    Ok(SegmentOutcome::Done { sent, journal: Box::new(journal) })
}

/// Whether the journal's multipart upload failed with server errors in enough consecutive
/// attempts to be given up (see [`SERVER_ERROR_ROUNDS_BEFORE_RESTART`]).
pub fn needs_restart_for_server_errors(j: &UploadJournal) -> bool {
    j.server_error_rounds >= SERVER_ERROR_ROUNDS_BEFORE_RESTART
        && j.upload_id.is_some()
        && matches!(j.state, UploadState::Uploading | UploadState::Completing)
}

/// Counts an attempt at the journal's multipart upload that ended on the retryable failure `f`:
/// a server error adds a round; an endpoint that did not answer ends the series (a server that
/// is down must never cause a restart).
pub fn count_round(j: &mut UploadJournal, f: &Failure) {
    match f {
        Failure::ServerError(m) => {
            j.server_error_rounds += 1;
            // On one line (error bodies are XML documents, often with newlines), and short.
            let line = m.split_whitespace().collect::<Vec<_>>().join(" ");
            j.last_server_error = Some(line.chars().take(MAX_ERROR_TEXT).collect());
        }
        _ => j.clear_server_errors(),
    }
}

/// Updates this segment's queue entry from its journal.
fn set_queue(ctx: &UploadContext, seg: &SealedSegment, j: &UploadJournal) {
    let mut c = ctx.progress.lock();
    let e = c.queue.entry(seg.name.clone()).or_default();
    e.robot.clone_from(&seg.robot);
    e.robot_id = seg.robot_id;
    e.size = j.size;
    e.bytes_done = j.bytes_done();
    e.parts_done = j.parts_done() as u32;
    e.parts_total = j.parts.len() as u32;
}

/// Why one attempt failed.
enum Attempt {
    /// The request failed.
    Store(object_store::Error),
    /// Counting the attempt in the journal failed: not retried.
    Local(UploadError),
}

/// Runs `op` with the retry policy, counting failures. Returns the first non-transient failure,
/// or the last transient one when the backoff is spent.
async fn with_retries<T, F, Fut>(ctx: &UploadContext, request: Request, what: &str, mut op: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    let mut first_failure: Option<Instant> = None;
    let mut retry = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(Attempt::Local(e)) => return Err(Stop::Local(e)),
            Err(Attempt::Store(e)) => {
                let f = classify(&e, request);
                ctx.progress.error(f.message());
                if !f.is_retryable() {
                    return Err(Stop::Failure(f));
                }
                let since = *first_failure.get_or_insert_with(Instant::now);
                match ctx.backoff.next(retry, since.elapsed()) {
                    Some(d) => {
                        tracing::info!(what, retry, delay_ms = d.as_millis() as u64, error = %f.message(), "retrying");
                        ctx.progress.lock().retries += 1;
                        retry += 1;
                        tokio::time::sleep(d).await;
                    }
                    None => {
                        let why = match f {
                            Failure::ServerError(_) => "the server answers with errors",
                            _ => "waiting for connectivity",
                        };
                        tracing::warn!(what, retries = retry, error = %f.message(), "giving up for now: {why}");
                        return Err(Stop::Failure(f));
                    }
                }
            }
        }
    }
}

/// [`with_retries`] for a plain object store request.
async fn retry_store<T, F, Fut>(ctx: &UploadContext, request: Request, what: &str, mut op: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, object_store::Error>>,
{
    with_retries(ctx, request, what, || {
        let f = op();
        async move { f.await.map_err(Attempt::Store) }
    })
    .await
}

/// No upload yet: is the object there already (completed by a run that crashed before it
/// could persist; asked only when `may_exist`)? Else send a one-part segment whole, or create the
/// multipart upload and persist its id. Returns whether bytes were sent.
async fn start(
    ctx: &UploadContext,
    seg: &SealedSegment,
    file: &JournalFile,
    path: &ObjectPath,
    digest: &SegmentDigest,
    may_exist: bool,
) -> Result<bool, Stop> {
    if may_exist && object_matches(ctx, path, digest, None).await? {
        tracing::info!(segment = %seg.name, "object already in the bucket with this content: not sent again");
        file.update(|j| {
            j.state = UploadState::Completed;
            j.completed_ns = shared::time::now_ns();
        })?;
        return Ok(false);
    }
    let single = match file.lock().parts.as_slice() {
        [part] => Some(part.clone()),
        _ => None,
    };
    if let Some(part) = single {
        // One part: a multipart upload would only add two requests and a server-side assembly.
        // A single PUT is as resumable (the one part in flight is sent again) and atomic.
        send_part(ctx, seg, file, path, digest, Target::Whole { sha256: &digest.sha256 }, part).await?;
        tracing::info!(segment = %seg.name, key = %path, "segment uploaded (single PUT)");
        return Ok(true);
    }
    let id = retry_store(ctx, Request::Create, "create multipart upload", || {
        ctx.store.create_multipart(path, &digest.sha256)
    })
    .await?;
    tracing::info!(segment = %seg.name, key = %path, parts = digest.chunks.len(), "multipart upload created");
    file.update(|j| {
        j.upload_id = Some(id);
        j.state = UploadState::Uploading;
        j.clear_server_errors();
    })?;
    Ok(false)
}

/// Whether the object at `path` is this segment: same size and our SHA-256 metadata (or, for
/// servers that drop user metadata, the ETag `complete` returned).
async fn object_matches(
    ctx: &UploadContext,
    path: &ObjectPath,
    digest: &SegmentDigest,
    etag: Option<&str>,
) -> Result<bool, Stop> {
    let head = retry_store(ctx, Request::Other, "head object", || ctx.store.head(path)).await?;
    Ok(match head {
        Some(h) if h.size == digest.size => match (&h.sha256, etag) {
            (Some(sha), _) => *sha == digest.sha256,
            (None, Some(e)) => h.etag.as_deref() == Some(e),
            (None, None) => false,
        },
        _ => false,
    })
}

/// Compares the journal with the server's list of parts (ListParts) before resuming: an upload
/// the server does not know is [`Failure::UploadGone`]; a part the journal has but the server
/// lacks (or holds with another ETag) loses its ETag and is sent again.
async fn reconcile(
    ctx: &UploadContext,
    seg: &SealedSegment,
    file: &JournalFile,
    path: &ObjectPath,
) -> Result<(), Stop> {
    let Some(id) = file.lock().upload_id.clone() else {
        return Ok(());
    };
    match ctx.store.list_parts(path, &id).await {
        Ok(None) => Err(Stop::Failure(Failure::UploadGone(format!("ListParts: NoSuchUpload for upload {id}")))),
        Ok(Some(server)) => {
            let server: std::collections::HashMap<u32, String> = server.into_iter().collect();
            let mut lost = Vec::new();
            let j = file.update(|j| {
                for p in &mut j.parts {
                    if let Some(e) = &p.etag {
                        let held = server.get(&p.number);
                        if held != Some(&normalize_etag(e)) {
                            lost.push((p.number, e.clone(), held.cloned()));
                            p.etag = None;
                        }
                    }
                }
            })?;
            if !lost.is_empty() {
                tracing::warn!(segment = %seg.name, parts = ?lost, "the server lacks parts the journal recorded (number, journal ETag, server ETag): sending them again");
                set_queue(ctx, seg, &j);
            }
            Ok(())
        }
        Err(f) if f.is_retryable() => {
            ctx.progress.error(f.message());
            Err(Stop::Failure(f))
        }
        Err(f) => {
            tracing::warn!(segment = %seg.name, reason = f.message(), "cannot list the upload's parts: resuming without the check");
            Ok(())
        }
    }
}

/// Sends every part without an ETag.
async fn send_parts(
    ctx: &Arc<UploadContext>,
    seg: &Arc<SealedSegment>,
    file: &Arc<JournalFile>,
    path: &ObjectPath,
    digest: &Arc<SegmentDigest>,
) -> Result<(), Stop> {
    let (upload_id, todo): (String, Vec<JournalPart>) = {
        let j = file.lock();
        let id = j.upload_id.clone().unwrap_or_default();
        (id, j.parts.iter().filter(|p| p.etag.is_none()).cloned().collect())
    };
    let mut tasks = JoinSet::new();
    for part in todo {
        let (ctx, seg, file, path, digest, id) =
            (Arc::clone(ctx), Arc::clone(seg), Arc::clone(file), path.clone(), Arc::clone(digest), upload_id.clone());
        tasks.spawn(async move {
            send_part(&ctx, &seg, &file, &path, &digest, Target::Part { upload_id: &id }, part).await.map(|_| ())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(|e| Stop::Local(UploadError::Setup(format!("part task: {e}"))))?;
        if let Err(e) = r {
            tasks.abort_all();
            let mut c = ctx.progress.lock();
            if let Some(q) = c.queue.get_mut(&seg.name) {
                q.in_flight.clear();
            }
            return Err(e);
        }
    }
    file.update(|j| j.state = UploadState::Completing)?;
    Ok(())
}

/// Where the bytes of a part go.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// UploadPart of a multipart upload.
    Part {
        /// The upload id.
        upload_id: &'a str,
    },
    /// PutObject of the whole segment (it fits in one part), with its SHA-256 metadata.
    Whole {
        /// SHA-256 of the segment, hex.
        sha256: &'a str,
    },
}

/// Sends one part (waiting for a slot, the pause flag and the bandwidth limit), with retries,
/// and records its ETag. Returns the ETag.
async fn send_part(
    ctx: &UploadContext,
    seg: &SealedSegment,
    file: &JournalFile,
    path: &ObjectPath,
    digest: &SegmentDigest,
    target: Target<'_>,
    part: JournalPart,
) -> Result<String, Stop> {
    let mut paused = ctx.paused.clone();
    let _ = paused.wait_for(|p| !*p).await;
    let _slot =
        ctx.slots.acquire().await.map_err(|e| Stop::Local(UploadError::Setup(format!("upload slots closed: {e}"))))?;
    let bytes = {
        let p = seg.path.clone();
        let (offset, size) = (part.offset, part.size);
        tokio::task::spawn_blocking(move || read_part(&p, offset, size))
            .await
            .map_err(|e| Stop::Local(UploadError::Setup(format!("read task: {e}"))))??
    };
    let expected = digest.chunks.get(part.number as usize - 1);
    if expected != Some(&sha256_hex(&bytes)) {
        return Err(Stop::Corrupt(UploadError::ChunkChanged { segment: seg.name.clone(), part: part.number }));
    }
    let payload = PutPayload::from(bytes);
    let number = part.number;
    set_in_flight(ctx, &seg.name, number, true);
    let mut attempt = 0u32;
    let (request, what) = match target {
        Target::Part { .. } => (Request::Part, "upload part"),
        Target::Whole { .. } => (Request::Other, "put object"),
    };
    let result = with_retries(ctx, request, what, || {
        let retry = attempt > 0;
        attempt += 1;
        let counted = file.update(|j| {
            if let Some(p) = j.parts.get_mut(number as usize - 1) {
                p.sends += 1;
                p.retries += u32::from(retry);
            }
        });
        let payload = payload.clone();
        async move {
            counted.map_err(Attempt::Local)?;
            ctx.limiter.acquire(part.size).await;
            match target {
                Target::Part { upload_id } => {
                    ctx.store.put_part(path, upload_id, number, payload).await.map_err(Attempt::Store)
                }
                Target::Whole { sha256 } => ctx
                    .store
                    .put_segment(path, payload, sha256)
                    .await
                    .map(Option::unwrap_or_default)
                    .map_err(Attempt::Store),
            }
        }
    })
    .await;
    set_in_flight(ctx, &seg.name, number, false);
    let etag = result?;
    let j = file.update(|j| {
        if let Some(p) = j.parts.get_mut(number as usize - 1) {
            p.etag = Some(etag.clone());
        }
        // The upload works: attempts that failed with server errors start counting again.
        j.clear_server_errors();
        if let Target::Whole { .. } = target {
            j.state = UploadState::Completed;
            j.object_etag = Some(etag.clone());
            j.completed_ns = shared::time::now_ns();
        }
    })?;
    {
        let mut c = ctx.progress.lock();
        c.parts_uploaded += 1;
        c.part_bytes_sent += part.size;
        if let Some(q) = c.queue.get_mut(&seg.name) {
            q.bytes_done = j.bytes_done();
            q.parts_done = j.parts_done() as u32;
            q.retries += u64::from(attempt.saturating_sub(1));
        }
    }
    tracing::debug!(segment = %seg.name, part = number, size = part.size, "part uploaded");
    Ok(etag)
}

fn set_in_flight(ctx: &UploadContext, segment: &str, part: u32, on: bool) {
    let mut c = ctx.progress.lock();
    if let Some(q) = c.queue.get_mut(segment) {
        q.in_flight.retain(|p| *p != part);
        if on {
            q.in_flight.push(part);
        }
    }
}

/// CompleteMultipartUpload; a forgotten upload that did complete counts as completed.
async fn complete(ctx: &UploadContext, seg: &SealedSegment, file: &JournalFile, path: &ObjectPath) -> Result<(), Stop> {
    let (id, etags, size, sha) = {
        let j = file.lock();
        let etags: Option<Vec<String>> = j.parts.iter().map(|p| p.etag.clone()).collect();
        (j.upload_id.clone(), etags, j.size, j.sha256.clone())
    };
    let (Some(id), Some(etags)) = (id, etags) else {
        file.update(|j| j.state = UploadState::Uploading)?;
        return Ok(());
    };
    let result = retry_store(ctx, Request::Complete, "complete multipart upload", || {
        ctx.store.complete(path, &id, etags.clone())
    })
    .await;
    let object_etag = match result {
        Ok(etag) => etag,
        Err(Stop::Failure(Failure::UploadGone(m))) => {
            let digest = SegmentDigest { size, sha256: sha, chunks: Vec::new(), chunk_size: 0 };
            if object_matches(ctx, path, &digest, None).await? {
                tracing::info!(segment = %seg.name, "upload already completed by an earlier run");
                None
            } else {
                return Err(Stop::Failure(Failure::UploadGone(m)));
            }
        }
        Err(e) => return Err(e),
    };
    file.update(|j| {
        j.state = UploadState::Completed;
        j.object_etag = object_etag;
        j.completed_ns = shared::time::now_ns();
        j.clear_server_errors();
    })?;
    tracing::info!(segment = %seg.name, key = %path, "segment uploaded");
    Ok(())
}

/// Writes the sidecar manifest and the upload manifest, then verifies the object.
async fn finish(ctx: &UploadContext, seg: &SealedSegment, file: &JournalFile, path: &ObjectPath) -> Result<(), Stop> {
    let j = file.lock().clone();
    if !j.manifests_uploaded {
        let manifest_key = ObjectLayout::manifest_key(&j.key);
        let mpath = S3Store::path(&manifest_key)?;
        let bytes = seg.manifest_bytes.clone();
        let um = UploadManifest {
            format: "fleetrec-upload-manifest",
            version: 1,
            segment: &j.segment,
            key: &j.key,
            robot: &seg.robot,
            session: &seg.session,
            size: j.size,
            sha256: &j.sha256,
            chunk_size: j.chunk_size,
            parts: &j.parts,
            upload_id: j.upload_id.as_deref(),
            etag: j.object_etag.as_deref(),
            segment_manifest_key: manifest_key,
            uploaded_ns: j.completed_ns,
            fleetrec_version: env!("CARGO_PKG_VERSION"),
        };
        let json = serde_json::to_vec_pretty(&um)
            .map_err(|e| Stop::Local(UploadError::Setup(format!("upload manifest JSON: {e}"))))?;
        let upath = S3Store::path(&ObjectLayout::upload_manifest_key(&j.key))?;
        // The two small PUTs go together: they are independent and idempotent.
        let (a, b) = tokio::join!(
            retry_store(ctx, Request::Other, "put segment manifest", || ctx.store.put(&mpath, bytes.clone())),
            retry_store(ctx, Request::Other, "put upload manifest", || ctx.store.put(&upath, json.clone())),
        );
        a?;
        b?;
        file.update(|j| j.manifests_uploaded = true)?;
    }
    if ctx.verify && !j.verified {
        let digest = SegmentDigest { size: j.size, sha256: j.sha256.clone(), chunks: Vec::new(), chunk_size: 0 };
        if object_matches(ctx, path, &digest, j.object_etag.as_deref()).await? {
            file.update(|j| j.verified = true)?;
        } else {
            let m = format!("object {path} does not match the segment after upload");
            tracing::error!(segment = %seg.name, "{m}: uploading it again");
            ctx.progress.error(&m);
            file.update(|j| {
                let chunks: Vec<String> = j.parts.iter().map(|p| p.sha256.clone()).collect();
                j.reset_parts(&chunks);
                j.restarts += 1;
            })?;
            return Err(Stop::Failure(Failure::Permanent(m)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploading() -> UploadJournal {
        let chunks = vec!["a".to_string(), "b".to_string()];
        let mut j = UploadJournal::new("s.wal", "k", 15, "all", 10, &chunks);
        j.upload_id = Some("up1".into());
        j.state = UploadState::Uploading;
        j
    }

    #[test]
    fn two_rounds_of_server_errors_restart_the_upload() {
        let mut j = uploading();
        count_round(&mut j, &Failure::ServerError("HTTP 500 first".into()));
        assert!(!needs_restart_for_server_errors(&j));
        count_round(&mut j, &Failure::ServerError("HTTP 500:\n<?xml?>\n<Error>  second".into()));
        assert!(needs_restart_for_server_errors(&j));
        assert_eq!(j.last_server_error.as_deref(), Some("HTTP 500: <?xml?> <Error> second"));
        j.state = UploadState::Completing;
        assert!(needs_restart_for_server_errors(&j), "a failing completion counts too");
    }

    #[test]
    fn an_unreachable_endpoint_never_counts_towards_a_restart() {
        let mut j = uploading();
        for _ in 0..10 {
            count_round(&mut j, &Failure::Transient("connection refused".into()));
        }
        assert!(!needs_restart_for_server_errors(&j));
        count_round(&mut j, &Failure::ServerError("HTTP 500".into()));
        count_round(&mut j, &Failure::Transient("connection reset".into()));
        count_round(&mut j, &Failure::ServerError("HTTP 500".into()));
        assert!(!needs_restart_for_server_errors(&j), "the rounds must be consecutive: {j:?}");
        assert_eq!(j.server_error_rounds, 1);
    }

    #[test]
    fn no_upload_no_restart() {
        let mut j = uploading();
        j.server_error_rounds = 5;
        j.upload_id = None;
        assert!(!needs_restart_for_server_errors(&j));
        let mut j = uploading();
        j.server_error_rounds = 5;
        j.state = UploadState::Completed;
        assert!(!needs_restart_for_server_errors(&j));
    }
}
