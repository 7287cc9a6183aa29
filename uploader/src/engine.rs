//! The upload queue: which segments to upload, when, and what to do when the network goes.
//!
//! The disk is the truth: the queue is rebuilt from a scan of the recording directory (at start,
//! every `rescan_interval_s`, and when a sealed-segment notice or `sync now` arrives) and from
//! the journals. Segments are taken oldest first; parts in flight are bounded by `concurrency`
//! across all segments, and up to twice that many segments are in progress, so hashing and
//! creating the next uploads overlaps the parts on the wire. When a request's backoff is spent the
//! endpoint is declared offline: nothing new starts, and a cheap probe runs every
//! `probe_interval_s` (or at `sync now`) until the endpoint answers, then the queue resumes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::journal::load_all;
use crate::progress::QueueEntry;
use crate::retention;
use crate::sealed::{list_sealed, load_sealed, SealedSegment};
use crate::segment_upload::{upload_segment, SegmentOutcome, UploadContext};

/// Requests to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineCommand {
    /// Rescan the directory (a sealed-segment notice arrived).
    Rescan,
    /// Rescan, probe now if offline, and retry segments that were waiting.
    SyncNow,
}

/// Engine settings (from the config).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The recording directory.
    pub recordings: PathBuf,
    /// Configured robot names (header robot id -> name).
    pub robot_names: Vec<String>,
    /// Rescan period.
    pub rescan_interval: Duration,
    /// Probe period while offline, and the wait of a refused segment.
    pub probe_interval: Duration,
    /// Segments uploaded at once.
    pub concurrency: usize,
    /// Retention threshold, 0 = off.
    pub retention_max_disk_percent: u8,
    /// Stop when nothing more can be uploaded now (queue empty, or offline).
    pub once: bool,
}

/// What a run achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSummary {
    /// Segments uploaded by this run.
    pub uploaded: u64,
    /// Segments still queued at the end.
    pub pending: usize,
    /// Segments found not to match their manifest.
    pub corrupt: u64,
}

/// Identity of a file, to notice when a skipped segment changes.
type FileId = (u64, Option<SystemTime>);

fn file_id(p: &std::path::Path) -> FileId {
    std::fs::metadata(p).map_or((0, None), |m| (m.len(), m.modified().ok()))
}

/// The upload queue.
pub struct Engine {
    cfg: EngineConfig,
    ctx: Arc<UploadContext>,
    queue: BTreeMap<String, Arc<SealedSegment>>,
    done: HashSet<String>,
    skipped: HashMap<String, FileId>,
    not_before: HashMap<String, Instant>,
    running: HashSet<String>,
    online: bool,
    next_probe: Instant,
    next_rescan: Instant,
    summary: EngineSummary,
}

impl Engine {
    /// An engine over `ctx`.
    pub fn new(cfg: EngineConfig, ctx: Arc<UploadContext>) -> Self {
        let now = Instant::now();
        Engine {
            cfg,
            ctx,
            queue: BTreeMap::new(),
            done: HashSet::new(),
            skipped: HashMap::new(),
            not_before: HashMap::new(),
            running: HashSet::new(),
            online: false,
            next_probe: now,
            next_rescan: now,
            summary: EngineSummary::default(),
        }
    }

    /// Runs until `stop` turns true (or, in `once` mode, until nothing more can be done now).
    /// In-flight requests are abandoned at stop; the journals make that safe.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<EngineCommand>,
        mut stop: watch::Receiver<bool>,
    ) -> EngineSummary {
        self.load_journals();
        self.rescan();
        self.probe(&mut stop).await;
        self.ctx.progress.lock().started = true;
        let mut paused = self.ctx.paused.clone();
        let mut tasks: JoinSet<(String, SegmentOutcome)> = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let now = Instant::now();
            if now >= self.next_rescan {
                self.rescan();
            }
            if !self.online && now >= self.next_probe && tasks.is_empty() {
                self.probe(&mut stop).await;
            }
            let is_paused = *paused.borrow();
            if self.online && !is_paused {
                self.start_uploads(&mut tasks);
            }
            if self.cfg.once && tasks.is_empty() && (self.queue.is_empty() || !self.online || self.all_waiting()) {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => match joined {
                    Ok((name, outcome)) => self.on_outcome(name, outcome),
                    Err(e) => {
                        tracing::error!(error = %e, "an upload task failed");
                        self.ctx.progress.error(&format!("upload task: {e}"));
                        self.running.clear();
                    }
                },
                cmd = commands.recv() => match cmd {
                    Some(EngineCommand::Rescan) => self.next_rescan = Instant::now(),
                    Some(EngineCommand::SyncNow) => {
                        tracing::info!("sync now: rescanning and probing");
                        self.next_rescan = Instant::now();
                        self.next_probe = Instant::now();
                        self.not_before.clear();
                    }
                    None => break,
                },
                _ = stop.changed() => {}
                _ = paused.changed() => {
                    let p = *paused.borrow();
                    self.ctx.progress.lock().paused = p;
                    tracing::info!(paused = p, "uploads {}", if p { "paused" } else { "resumed" });
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.summary.pending = self.queue.len();
        self.summary
    }

    /// Counts what the journals say is uploaded already.
    fn load_journals(&mut self) {
        let (journals, errors) = load_all(&self.ctx.state_dir);
        for e in errors {
            tracing::error!(error = %e, "unreadable upload journal: that segment will be uploaded again");
            self.ctx.progress.error(&e.to_string());
        }
        let mut c = self.ctx.progress.lock();
        for j in journals {
            if j.is_settled(self.ctx.verify) {
                c.segments_uploaded += 1;
                c.bytes_uploaded += j.size;
                self.done.insert(j.segment);
            }
        }
    }

    /// Scans the recording directory and updates the queue.
    fn rescan(&mut self) {
        self.next_rescan = Instant::now() + self.cfg.rescan_interval;
        let names = match list_sealed(&self.cfg.recordings) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot scan the recording directory");
                self.ctx.progress.error(&e.to_string());
                return;
            }
        };
        let on_disk: HashSet<&String> = names.iter().collect();
        let gone: Vec<String> =
            self.queue.keys().filter(|n| !on_disk.contains(n) && !self.running.contains(*n)).cloned().collect();
        for n in gone {
            tracing::warn!(segment = %n, "queued segment disappeared from disk");
            self.queue.remove(&n);
            self.ctx.progress.lock().queue.remove(&n);
        }
        for name in names {
            if self.done.contains(&name) || self.queue.contains_key(&name) {
                continue;
            }
            let path = self.cfg.recordings.join(&name);
            if let Some(id) = self.skipped.get(&name) {
                if *id == file_id(&path) {
                    continue;
                }
                self.skipped.remove(&name);
            }
            let jpath = crate::journal::UploadJournal::path_for(&self.ctx.state_dir, &name);
            let journal = crate::journal::UploadJournal::load(&jpath).ok().flatten();
            if journal.as_ref().is_some_and(|j| j.is_settled(self.ctx.verify)) {
                self.done.insert(name);
                continue;
            }
            match load_sealed(&self.cfg.recordings, &name, &self.cfg.robot_names) {
                Ok(seg) => {
                    let mut c = self.ctx.progress.lock();
                    c.queue.insert(
                        name.clone(),
                        QueueEntry {
                            robot: seg.robot.clone(),
                            robot_id: seg.robot_id,
                            size: seg.size(),
                            bytes_done: journal.as_ref().map_or(0, |j| j.bytes_done()),
                            parts_done: journal.as_ref().map_or(0, |j| j.parts_done() as u32),
                            parts_total: journal.as_ref().map_or(0, |j| j.parts.len() as u32),
                            ..QueueEntry::default()
                        },
                    );
                    drop(c);
                    tracing::debug!(segment = %name, robot = %seg.robot, size = seg.size(), "queued");
                    self.queue.insert(name, Arc::new(seg));
                }
                Err(e) => {
                    tracing::error!(segment = %name, error = %e, "cannot read sealed segment: skipped until it changes");
                    self.ctx.progress.error(&e.to_string());
                    self.skipped.insert(name, file_id(&path));
                }
            }
        }
        self.retention();
    }

    /// Probes the endpoint (abandoned at stop).
    async fn probe(&mut self, stop: &mut watch::Receiver<bool>) {
        self.next_probe = Instant::now() + self.cfg.probe_interval;
        let key = self.ctx.layout.probe_key();
        let result = tokio::select! {
            r = self.ctx.store.probe(&key) => r,
            _ = stop.changed() => return,
        };
        let was = self.online;
        self.online = result.is_ok();
        let mut c = self.ctx.progress.lock();
        c.online = self.online;
        match result {
            Ok(()) => {
                c.offline_reason.clear();
                if !was {
                    tracing::info!("endpoint reachable: uploading");
                }
            }
            Err(reason) => {
                if was || c.offline_reason.is_empty() {
                    tracing::warn!(%reason, "endpoint unreachable: segments wait for the next probe");
                } else {
                    tracing::debug!(%reason, "probe failed: still offline");
                }
                c.offline_reason = reason;
            }
        }
    }

    fn all_waiting(&self) -> bool {
        let now = Instant::now();
        self.queue.keys().all(|n| self.not_before.get(n).is_some_and(|t| *t > now))
    }

    fn start_uploads(&mut self, tasks: &mut JoinSet<(String, SegmentOutcome)>) {
        let now = Instant::now();
        self.not_before.retain(|_, t| *t > now);
        // Twice as many segments as part slots: while parts of some segments are on the wire,
        // the next ones are hashed and their uploads created, so the slots never wait for that.
        // Parts in flight stay bounded by the slots (`concurrency`).
        let max_segments = self.cfg.concurrency.saturating_mul(2);
        for (name, seg) in &self.queue {
            if self.running.len() >= max_segments {
                break;
            }
            if self.running.contains(name) || self.not_before.contains_key(name) {
                continue;
            }
            self.running.insert(name.clone());
            let (ctx, seg, name) = (Arc::clone(&self.ctx), Arc::clone(seg), name.clone());
            tasks.spawn(async move { (name, upload_segment(ctx, seg).await) });
        }
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = self.next_rescan;
        if !self.online {
            wake = wake.min(self.next_probe);
        }
        if let Some(t) = self.not_before.values().min() {
            wake = wake.min(*t);
        }
        wake.max(now + Duration::from_millis(1))
    }

    fn on_outcome(&mut self, name: String, outcome: SegmentOutcome) {
        self.running.remove(&name);
        let retry_at = Instant::now() + self.cfg.probe_interval;
        let server_failing = matches!(outcome, SegmentOutcome::ServerFailing(_));
        match outcome {
            SegmentOutcome::Done { sent, journal } => {
                self.queue.remove(&name);
                self.done.insert(name.clone());
                self.summary.uploaded += 1;
                let mut c = self.ctx.progress.lock();
                let robot = c.queue.remove(&name).map(|q| q.robot).unwrap_or_default();
                c.segments_uploaded += 1;
                c.bytes_uploaded += journal.size;
                let r = c.per_robot.entry(robot).or_default();
                r.0 += 1;
                r.1 += journal.size;
                c.online = true;
                drop(c);
                self.online = true;
                tracing::info!(segment = %name, sent, key = %journal.key, "segment done");
                self.retention();
            }
            SegmentOutcome::Offline(reason) | SegmentOutcome::ServerFailing(reason) => {
                // Say what stopped the segment: no answer, or answers that were errors.
                let what = if server_failing { "the server answers with errors" } else { "endpoint unreachable" };
                if self.online {
                    tracing::warn!(segment = %name, %reason, "{what}: segments wait for the next probe");
                }
                self.online = false;
                self.next_probe = retry_at;
                let mut c = self.ctx.progress.lock();
                c.online = false;
                c.offline_reason = if server_failing { format!("{what}: {reason}") } else { reason };
            }
            SegmentOutcome::Refused(reason) => {
                tracing::error!(segment = %name, %reason, "the server refused the upload: retrying after the probe interval");
                self.not_before.insert(name, retry_at);
            }
            SegmentOutcome::Corrupt(reason) => {
                tracing::error!(segment = %name, %reason, "segment does not match its manifest: NOT uploaded");
                let path = self.cfg.recordings.join(&name);
                self.skipped.insert(name.clone(), file_id(&path));
                self.queue.remove(&name);
                self.summary.corrupt += 1;
                let mut c = self.ctx.progress.lock();
                c.queue.remove(&name);
                c.corrupt += 1;
                c.errors += 1;
                c.last_error = reason;
            }
            SegmentOutcome::Local(e) => {
                tracing::error!(segment = %name, error = %e, "local error: retrying at the next rescan");
                self.ctx.progress.error(&e.to_string());
                self.not_before.insert(name, Instant::now() + self.cfg.rescan_interval);
            }
        }
    }

    fn retention(&mut self) {
        if self.cfg.retention_max_disk_percent == 0 {
            return;
        }
        match retention::enforce(
            &self.cfg.recordings,
            &self.ctx.state_dir,
            self.cfg.retention_max_disk_percent,
            &retention::disk_used_percent,
        ) {
            Ok(r) => {
                if !r.deleted.is_empty() {
                    self.ctx.progress.lock().retention_deleted += r.deleted.len() as u64;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention failed");
                self.ctx.progress.error(&e.to_string());
            }
        }
    }
}
