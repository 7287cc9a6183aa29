//! The uploader process: attach to the pipeline's shared memory, start the upload engine on a
//! small tokio runtime, and on this thread forward control requests and sealed-segment notices
//! to it and publish the status a few times a second. Returns cleanly on SIGTERM/SIGINT or a
//! `stop` request, so no shared-memory resources are left behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::config::Config;
use shared::control::ControlReply;
use shared::plane::{ControlCommand, Plane, Stage};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::backoff::BackoffPolicy;
use crate::credentials::{CredentialSource, Credentials};
use crate::engine::{Engine, EngineCommand, EngineConfig, EngineSummary};
use crate::error::{Result, UploadError};
use crate::progress::{Progress, RateMeter};
use crate::sealed::ObjectLayout;
use crate::segment_upload::UploadContext;
use crate::store::S3Store;
use crate::throttle::BandwidthLimiter;

/// How to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Upload what is there, then exit (benchmarks, one-shot syncs); no shared memory needed
    /// for the work itself, but status is still published.
    pub once: bool,
}

/// The journal directory of a configuration: `[sync] state_dir`, or `<storage.path>/.upload`.
pub fn state_dir(config: &Config) -> PathBuf {
    config.sync.state_dir.clone().unwrap_or_else(|| config.storage.path.join(".upload"))
}

/// Builds the S3 client from the configuration and the credentials (env or file).
pub fn connect(config: &Config) -> Result<S3Store> {
    let credentials = Credentials::load(config.sync.credentials_file.as_deref())?;
    match credentials.as_ref().map(|c| &c.source) {
        Some(CredentialSource::Environment) => tracing::info!("credentials from the environment"),
        Some(CredentialSource::File { path, profile }) => {
            tracing::info!(file = %path.display(), %profile, "credentials from file")
        }
        Some(CredentialSource::Anonymous) | None => {
            tracing::warn!("no credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or sync.credentials_file): requests are unsigned")
        }
    }
    S3Store::new(&config.sync, credentials.as_ref())
}

/// Runs the uploader until stopped (or, with `once`, until nothing more can be uploaded now).
pub fn run(config: &Config, options: RunOptions) -> Result<EngineSummary> {
    shared::shutdown::install().map_err(|e| UploadError::Setup(format!("signal handlers: {e}")))?;
    let store = connect(config)?;
    let state_dir = state_dir(config);
    std::fs::create_dir_all(&state_dir).map_err(|e| UploadError::io(&state_dir, e))?;
    let plane = Plane::open("uploader", &config.pipeline)?;
    let status = plane.status_publisher(Stage::Uploader)?;
    let control = shared::control::ControlServer::new(&plane, Stage::Uploader)?;
    let notices = plane.segment_subscriber()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fleetrec-upload")
        .enable_all()
        .build()
        .map_err(|e| UploadError::Setup(format!("tokio runtime: {e}")))?;
    let sync = &config.sync;
    let progress = Progress::default();
    let (pause_tx, pause_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let ctx = Arc::new(UploadContext {
        store,
        layout: ObjectLayout::new(&sync.prefix),
        state_dir,
        chunk_size: sync.chunk_size,
        backoff: BackoffPolicy::from_config(sync),
        slots: Semaphore::new(sync.concurrency),
        limiter: BandwidthLimiter::new(sync.bandwidth_limit),
        progress: progress.clone(),
        verify: sync.retention_max_disk_percent > 0,
        paused: pause_rx,
    });
    let engine = Engine::new(
        EngineConfig {
            recordings: config.storage.path.clone(),
            robot_names: config.robot_names(),
            rescan_interval: Duration::from_secs(sync.rescan_interval_s.max(1)),
            probe_interval: Duration::from_secs(sync.probe_interval_s.max(1)),
            concurrency: sync.concurrency,
            retention_max_disk_percent: sync.retention_max_disk_percent,
            once: options.once,
        },
        ctx,
    );
    tracing::info!(
        endpoint = %sync.endpoint,
        bucket = %sync.bucket,
        prefix = %sync.prefix,
        recordings = %config.storage.path.display(),
        chunk_size = sync.chunk_size,
        concurrency = sync.concurrency,
        bandwidth_limit = sync.bandwidth_limit,
        pipeline = %config.pipeline.name,
        "uploader running"
    );
    let handle = runtime.spawn(engine.run(cmd_rx, stop_rx));

    let status_every = Duration::from_millis(config.pipeline.status_interval_ms);
    let mut meter = RateMeter::default();
    let publish = |meter: &mut RateMeter| {
        let s = meter.status(&progress.snapshot(), shared::time::now_ns());
        if let Err(e) = status.send_copy(s) {
            tracing::warn!(?e, "could not publish status");
        }
    };
    let mut next_status = Instant::now();
    while !shared::shutdown::requested() && !handle.is_finished() {
        control.poll(|command, _arg| match command {
            ControlCommand::Pause => {
                let _ = pause_tx.send(true);
                progress.lock().paused = true;
                ControlReply::ok("uploads paused")
            }
            ControlCommand::Resume | ControlCommand::Start => {
                let _ = pause_tx.send(false);
                progress.lock().paused = false;
                ControlReply::ok("uploads resumed")
            }
            ControlCommand::SyncNow => match cmd_tx.try_send(EngineCommand::SyncNow) {
                Ok(()) => ControlReply::ok("rescanning and uploading now"),
                Err(_) => ControlReply::ok("a rescan is already pending"),
            },
            ControlCommand::Stop => {
                shared::shutdown::request();
                ControlReply::ok("uploader stopping")
            }
            other => ControlReply::failed(format!("{other:?} is not served by the uploader")),
        });
        let mut hinted = false;
        while let Ok(Some(_notice)) = notices.receive() {
            hinted = true;
        }
        if hinted {
            // A full channel already holds a pending rescan: nothing is lost.
            let _ = cmd_tx.try_send(EngineCommand::Rescan);
        }
        let now = Instant::now();
        if now >= next_status {
            publish(&mut meter);
            next_status = now + status_every;
        }
        std::thread::sleep(Duration::from_millis(20).min(status_every));
    }
    progress.lock().stopping = true;
    publish(&mut meter);
    let _ = stop_tx.send(true);
    let summary = runtime.block_on(async {
        match tokio::time::timeout(Duration::from_secs(10), handle).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "upload engine failed");
                EngineSummary::default()
            }
            Err(_) => {
                tracing::error!("upload engine did not stop within 10 s");
                EngineSummary::default()
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!(uploaded = summary.uploaded, pending = summary.pending, "uploader stopped");
    Ok(summary)
}
