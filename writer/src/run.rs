//! The `fleetrec-writer` process: a [`SegmentWriter`] on the iceoryx2 plane.
//!
//! One thread, event-driven: each turn drains topic announcements, control requests and then
//! the message subscriber (copying each payload into the batch), lets the writer commit and
//! collect completions, announces sealed segments and publishes the status when due, and then
//! blocks in one io_uring wait that ends on the first of: an I/O completion, the ingest wake
//! listener becoming readable, or the next deadline (commit, status, rotation, disk probe).
//! No busy spin: with nothing to do the thread sleeps up to [`MAX_IDLE_WAIT`].
//!
//! On SIGTERM/SIGINT (or a `Stop` request) it flushes the batch, syncs, seals the open segment
//! and returns, so the iceoryx2 ports are dropped cleanly.

use std::path::Path;
use std::time::{Duration, Instant};

use shared::config::Config;
use shared::control::{ControlReply, ControlServer};
use shared::plane::{
    messages_of, write_cstr, ControlCommand, MessageSubscriber, Plane, SegmentNotice, SegmentPublisher, Stage,
    StatusPublisher,
};
use shared::segment::SegmentSummary;
use shared::topic::TopicInfo;
use tracing::{error, info, warn};

use crate::error::{Result, WriterError};
use crate::recovery::RecoveryReport;
use crate::seal::SealedSegment;
use crate::segment_writer::{SegmentWriter, WriterOptions};
use crate::status::StatusReporter;

/// Longest sleep with nothing to do.
pub const MAX_IDLE_WAIT: Duration = Duration::from_millis(100);
/// Messages taken per turn (at least; the last batch is taken whole) before the writer services
/// commits and completions.
const MESSAGES_PER_TURN: usize = 4096;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages accepted.
    pub messages: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Segments sealed (including by recovery at start).
    pub segments_sealed: u64,
}

/// Installs the SIGTERM/SIGINT handler and runs until one arrives.
pub fn run(config: &Config) -> Result<RunSummary> {
    shared::shutdown::install().map_err(WriterError::Signal)?;
    run_until_stopped(config)
}

/// Runs until [`shared::shutdown::requested`] (a signal, a `Stop` request, or a test calling
/// `shared::shutdown::request`).
pub fn run_until_stopped(config: &Config) -> Result<RunSummary> {
    let (mut writer, recovery) = SegmentWriter::open(WriterOptions::from_config(config))?;
    log_recovery(&recovery);
    let plane = Plane::open(Stage::Writer.name(), &config.pipeline)?;
    // Topics first, so announcements are there before the first message is.
    let topics = plane.topic_subscriber()?;
    let control = ControlServer::new(&plane, Stage::Writer)?;
    let messages = plane.message_subscriber()?;
    let wake = plane.wake_listener()?;
    let status = plane.status_publisher(Stage::Writer)?;
    let notices = plane.segment_publisher()?;
    let mut reporter = StatusReporter::new(config.robot_names());
    let status_every = Duration::from_millis(config.pipeline.status_interval_ms);
    let mut next_status = Instant::now();
    let mut throttle = ErrorThrottle::default();
    let mut sealed_total = 0u64;
    info!(pipeline = %config.pipeline.name, dir = %config.storage.path.display(), "writer running");

    while !shared::shutdown::requested() {
        while let Some(t) = receive_or_log(topics.receive(), &mut throttle, "topic announcement") {
            match TopicInfo::from_json_bytes(t.payload()) {
                Ok(info) => {
                    if let Err(e) = writer.define_topic(info) {
                        throttle.error("writing waiting messages failed", &e);
                    }
                }
                Err(e) => warn!(error = %e, "topic announcement is not valid JSON: ignored"),
            }
        }
        control.poll(|command, _arg| apply_control(&mut writer, command));
        let more = drain_messages(&messages, &mut writer, &mut throttle);
        if let Err(e) = writer.poll() {
            throttle.error("writer upkeep failed", &e);
        }
        sealed_total += announce(&notices, writer.take_sealed());

        let now = Instant::now();
        if now >= next_status {
            publish_status(&status, &mut reporter, &writer, false);
            next_status = now + status_every;
        }
        let mut until = (now + MAX_IDLE_WAIT).min(next_status);
        if let Some(d) = writer.next_deadline() {
            until = until.min(d);
        }
        let timeout = if more { Duration::ZERO } else { until.saturating_duration_since(Instant::now()) };
        match writer.wait(timeout, Some(&wake)) {
            Ok(true) => {
                tracing::trace!("woken by the ingest notifier");
                if let Err(e) = wake.try_wait(|_| {}) {
                    throttle.error("wake listener", &format!("{e:?}"));
                }
            }
            Ok(false) => {}
            Err(e) => throttle.error("waiting for I/O failed", &e),
        }
    }

    info!("stopping: flushing, syncing and sealing the open segment");
    // Take what is already in the buffer, then stop accepting.
    drain_messages(&messages, &mut writer, &mut throttle);
    publish_status(&status, &mut reporter, &writer, true);
    let summary = RunSummary { messages: writer.stats().messages, dropped: writer.stats().dropped, segments_sealed: 0 };
    let sealed = writer.close()?;
    sealed_total += announce(&notices, sealed);
    Ok(RunSummary { segments_sealed: sealed_total, ..summary })
}

fn apply_control(writer: &mut SegmentWriter, command: ControlCommand) -> ControlReply {
    match command {
        ControlCommand::Pause => {
            writer.pause();
            ControlReply::ok("writer paused: incoming messages are dropped and counted")
        }
        ControlCommand::Resume | ControlCommand::Start => {
            writer.resume();
            ControlReply::ok("writer recording")
        }
        ControlCommand::SplitSegment => match writer.split() {
            Ok(()) => ControlReply::ok("segment split: the open segment is sealed with its next commit"),
            Err(e) => ControlReply::failed(format!("split failed: {e}")),
        },
        ControlCommand::Stop => {
            shared::shutdown::request();
            ControlReply::ok("writer stopping: flushing and sealing")
        }
        ControlCommand::SyncNow | ControlCommand::Export => {
            ControlReply::failed(format!("{command:?} is not served by the writer"))
        }
    }
}

/// Takes samples until about [`MESSAGES_PER_TURN`] messages (a sample is one message or a batch,
/// see [`shared::plane::messages_of`]); returns whether more may be waiting.
fn drain_messages(sub: &MessageSubscriber, writer: &mut SegmentWriter, throttle: &mut ErrorThrottle) -> bool {
    let mut taken = 0;
    while taken < MESSAGES_PER_TURN {
        match sub.receive() {
            Ok(Some(sample)) => {
                for message in messages_of(sample.user_header(), sample.payload()) {
                    match message {
                        Ok((header, payload)) => {
                            // Errors are counted and logged by the writer; the loop goes on.
                            let _ = writer.append(&header, payload);
                            taken += 1;
                        }
                        Err(e) => {
                            writer.count_unreadable(e.unread());
                            throttle
                                .error("a message batch from ingest is malformed (its rest is counted as dropped)", &e);
                        }
                    }
                }
            }
            Ok(None) => return false,
            Err(e) => {
                throttle.error("receiving a message failed", &format!("{e:?}"));
                return false;
            }
        }
    }
    true
}

fn receive_or_log<T, E: std::fmt::Debug>(
    r: std::result::Result<Option<T>, E>,
    throttle: &mut ErrorThrottle,
    what: &str,
) -> Option<T> {
    match r {
        Ok(v) => v,
        Err(e) => {
            throttle.error(&format!("receiving a {what} failed"), &format!("{e:?}"));
            None
        }
    }
}

fn publish_status(publisher: &StatusPublisher, reporter: &mut StatusReporter, writer: &SegmentWriter, stopping: bool) {
    let s = reporter.build(writer, stopping);
    if let Err(e) = publisher.send_copy(s) {
        warn!(error = ?e, "status not published");
    }
}

/// Announces sealed segments; returns how many.
fn announce(publisher: &SegmentPublisher, sealed: Vec<SealedSegment>) -> u64 {
    let n = sealed.len() as u64;
    for s in sealed {
        let notice = segment_notice(&s.path, s.size, &s.summary);
        if let Err(e) = publisher.send_copy(notice) {
            warn!(segment = %s.path.display(), error = ?e, "segment notice not published (the uploader rescans the directory)");
        }
    }
    n
}

/// The notice for a sealed segment.
pub fn segment_notice(path: &Path, size: u64, summary: &SegmentSummary) -> SegmentNotice {
    let mut robots = summary.topics.iter().map(|t| t.robot_id);
    let first = robots.next();
    let robot_id = match first {
        Some(r) if robots.all(|x| x == r) => r,
        _ => u16::MAX,
    };
    let mut notice = SegmentNotice {
        robot_id,
        reserved: 0,
        records: u32::try_from(summary.records + 1).unwrap_or(u32::MAX),
        segment_seq: summary.segment_seq,
        bytes: size,
        first_ns: summary.first_ns,
        last_ns: summary.last_ns,
        path: [0; 256],
    };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    write_cstr(&mut notice.path, &abs.to_string_lossy());
    notice
}

fn log_recovery(r: &RecoveryReport) {
    if r.is_empty() {
        return;
    }
    info!(
        recovered = r.recovered.len(),
        manifests_written = r.manifests_written.len(),
        removed = r.removed.len(),
        unreadable = r.unreadable.len(),
        torn_bytes = r.torn_bytes(),
        corrupt_records = r.corrupt_records(),
        "recovery at start"
    );
}

/// Logs repeated errors at most once a second (with a count of the suppressed ones).
#[derive(Debug, Default)]
struct ErrorThrottle {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorThrottle {
    fn error(&mut self, what: &str, e: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        error!(suppressed = self.suppressed, "{what}: {e}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}
