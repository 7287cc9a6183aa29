//! What the viewer shows at one instant: every stage (up or down, state, counters, rates), every
//! topic with the ingest and writer view side by side (so the durable watermark lag can be
//! computed), and per-robot totals. Built by [`crate::Dashboard::tick`]; rendered by the UI, the
//! `--json` output and the Prometheus endpoint alike.

use serde::Serialize;

use crate::diagnostics::SystemSnapshot;

/// One stage as seen from its latest status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSnapshot {
    /// Lower-case stage name.
    pub stage: &'static str,
    /// Whether a fresh status arrived within three status intervals.
    pub up: bool,
    /// State name of the latest status; `down` when the stage is down or was never seen
    /// (`not running` for the exporter, which runs on demand).
    pub state: String,
    /// Age of the newest status, whole seconds ([`coarse_age_s`]); `None` if none was ever seen.
    pub status_age_s: Option<u64>,
    /// When the stage (of the newest status) started, ns since the epoch (0 if never seen).
    pub started_ns: u64,
    /// CPU use of the stage's process, integer percent of one core (`None`: down, not on this
    /// machine, or not sampled yet).
    pub cpu_percent: Option<u32>,
    /// Resident memory of the stage's process, bytes (rounded to MB).
    pub memory_bytes: Option<u64>,
    /// Process id from the latest status (0 if none).
    pub pid: u32,
    /// Messages handled (of the latest status, even when the stage is down since).
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Errors seen.
    pub errors: u64,
    /// Stage-specific queue (writer: unsynced bytes).
    pub queue_depth: u64,
    /// Writer: segments sealed; uploader: segments uploaded.
    pub segments: u64,
    /// Writer: bytes on stable storage; uploader: bytes uploaded.
    pub durable_bytes: u64,
    /// Corrupt or torn records found.
    pub corrupt: u64,
    /// Messages per second (0 when down).
    pub rate_msgs: f64,
    /// Payload bytes per second (0 when down).
    pub rate_bytes: f64,
    /// The stage's detail line.
    pub detail: String,
    /// Per-robot counters of the stage (empty when down).
    pub robots: Vec<StageRobot>,
}

/// One robot's counters in one stage's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRobot {
    /// Robot name.
    pub name: String,
    /// Messages handled.
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Messages per second, as the stage measured it.
    pub rate_hz: f64,
}

/// One stage's view of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TopicCounters {
    /// Messages handled.
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Highest sequence handled.
    pub last_sequence: u64,
    /// Writer: highest sequence on stable storage.
    pub durable_sequence: u64,
    /// Ingest session of the sequences.
    pub ingest_session: u32,
    /// Messages per second, measured by the viewer between two statuses.
    pub rate_hz: f64,
    /// Payload bytes per second, measured by the viewer between two statuses.
    pub bandwidth_bps: f64,
}

/// One topic: ingest's and the writer's counters side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRow {
    /// Topic id.
    pub topic_id: u32,
    /// Robot name.
    pub robot: String,
    /// Topic name.
    pub name: String,
    /// ROS type (from the topic announcements), empty if not announced yet.
    pub type_name: String,
    /// Ingest's counters, when ingest is up.
    pub ingest: Option<TopicCounters>,
    /// The writer's counters, when the writer is up.
    pub writer: Option<TopicCounters>,
    /// Messages received but not yet on stable storage: ingest's last sequence minus the writer's
    /// durable sequence (same ingest session), or the writer's own last minus durable sequence.
    /// `None` when the writer is down.
    pub durable_lag: Option<u64>,
    /// Seconds since the topic's message count last grew ([`coarse_age_s`]), as seen between two
    /// statuses of the incoming stage (so within one status interval). `None`: no message seen.
    pub last_message_age_s: Option<u64>,
    /// `false` when the count has not grown since the viewer attached: the last message is at
    /// least `last_message_age_s` old (the stages publish no per-topic receive time).
    pub last_message_age_exact: bool,
}

impl TopicRow {
    /// The incoming view: ingest's counters, else the writer's.
    pub fn incoming(&self) -> Option<&TopicCounters> {
        self.ingest.as_ref().or(self.writer.as_ref())
    }

    /// Messages dropped by ingest and the writer together.
    pub fn dropped(&self) -> u64 {
        self.ingest.map_or(0, |c| c.dropped) + self.writer.map_or(0, |c| c.dropped)
    }
}

/// Totals of one robot over its topics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RobotSnapshot {
    /// Robot name.
    pub name: String,
    /// Topics seen.
    pub topics: u32,
    /// Messages received (ingest, else writer).
    pub messages: u64,
    /// Messages recorded by the writer.
    pub recorded: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Messages dropped (ingest + writer).
    pub dropped: u64,
    /// Messages per second.
    pub rate_hz: f64,
    /// Payload bytes per second.
    pub bandwidth_bps: f64,
    /// Sum of the topics' durable lag; `None` when the writer is down.
    pub durable_lag: Option<u64>,
}

/// One robot directory of the uploader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRobot {
    /// Robot directory (`mixed` for segments holding several robots).
    pub name: String,
    /// Segments uploaded by the running uploader process.
    pub uploaded_segments: u64,
    /// Bytes uploaded by the running uploader process.
    pub uploaded_bytes: u64,
    /// Segments waiting.
    pub queued_segments: u32,
}

/// The segment being uploaded now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrentUpload {
    /// Segment file name.
    pub segment: String,
    /// Segment size, bytes.
    pub size_bytes: u64,
    /// Parts acknowledged.
    pub parts_done: u64,
    /// Parts in total (0 until the segment is hashed).
    pub parts_total: u64,
    /// The part being sent (1-based).
    pub part: u64,
}

impl CurrentUpload {
    /// Fraction of parts acknowledged, 0..1.
    pub fn fraction(&self) -> f64 {
        if self.parts_total == 0 {
            0.0
        } else {
            (self.parts_done as f64 / self.parts_total as f64).min(1.0)
        }
    }
}

/// Sync (upload) status, from the uploader's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncSnapshot {
    /// Whether the uploader is up.
    pub up: bool,
    /// `online`, `offline`, `paused`, `starting`, `stopping`, `error` or `not running`.
    pub status: String,
    /// Whether the endpoint answered the uploader's last probe; `None` when not known.
    pub online: Option<bool>,
    /// Segments sealed and waiting for upload.
    pub queued_segments: u64,
    /// Bytes of queued segments the server has not acknowledged.
    pub pending_bytes: u64,
    /// Segments uploaded, over every run.
    pub uploaded_segments: u64,
    /// Bytes uploaded, over every run.
    pub uploaded_bytes: u64,
    /// Upload throughput, bytes/s.
    pub rate_bytes: f64,
    /// Failed requests and local errors.
    pub errors: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Segments that do not match their manifest.
    pub corrupt: u64,
    /// The uploader's detail line (current part, offline reason, last error).
    pub detail: String,
    /// The segment being uploaded now.
    pub current: Option<CurrentUpload>,
    /// Seconds since the viewer last saw the uploaded-segment count grow ([`coarse_age_s`]);
    /// `None` if it has not grown since the viewer attached (the uploader publishes no time of
    /// its last success).
    pub last_success_age_s: Option<u64>,
    /// Per robot directory.
    pub robots: Vec<SyncRobot>,
}

/// Export progress, from the exporter service's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExportSnapshot {
    /// Whether the exporter service is up.
    pub up: bool,
    /// `exporting`, `idle`, `not running`, or the exporter's state name.
    pub status: String,
    /// Messages exported so far in the current job.
    pub exported: u64,
    /// Messages in the current job (0 if unknown).
    pub total: u64,
    /// The exporter's detail line.
    pub detail: String,
    /// Errors the exporter counted.
    pub errors: u64,
}

impl ExportSnapshot {
    /// Fraction done, 0..1 (0 when the total is unknown).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (self.exported as f64 / self.total as f64).min(1.0)
        }
    }
}

/// An age in ms as whole seconds, coarser as it grows (exact seconds under a minute, whole
/// minutes under an hour, whole hours after), so that an idle dashboard redraws rarely.
pub fn coarse_age_s(ms: u64) -> u64 {
    let s = ms / 1000;
    if s < 60 {
        s
    } else if s < 3600 {
        s / 60 * 60
    } else {
        s / 3600 * 3600
    }
}

/// Everything the viewer shows at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When the snapshot was taken, ns since the epoch.
    pub taken_ns: u64,
    /// Pipeline name.
    pub pipeline: String,
    /// Ingest, writer, uploader, exporter.
    pub stages: Vec<StageSnapshot>,
    /// Robots, by name.
    pub robots: Vec<RobotSnapshot>,
    /// Topics, by robot and name.
    pub topics: Vec<TopicRow>,
    /// Upload status.
    pub sync: SyncSnapshot,
    /// Export progress.
    pub export: ExportSnapshot,
    /// The machine: CPU, memory, disk, latency to the upload endpoint (`None` when the viewer
    /// runs without diagnostics).
    pub system: Option<SystemSnapshot>,
}

impl PartialEq for Snapshot {
    /// Equal when everything shown is equal; the time it was taken does not count, so an
    /// unchanged pipeline causes no redraw.
    fn eq(&self, other: &Self) -> bool {
        self.pipeline == other.pipeline
            && self.stages == other.stages
            && self.robots == other.robots
            && self.topics == other.topics
            && self.sync == other.sync
            && self.export == other.export
            && self.system == other.system
    }
}

impl Snapshot {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.stage == name)
    }

    /// The robot named `name`.
    pub fn robot(&self, name: &str) -> Option<&RobotSnapshot> {
        self.robots.iter().find(|r| r.name == name)
    }

    /// The robot's counters in `stage`'s status (empty name: none).
    pub fn stage_robot(&self, stage: &str, robot: &str) -> Option<&StageRobot> {
        self.stage(stage).and_then(|s| s.robots.iter().find(|r| r.name == robot))
    }

    /// JSON, one object (the `--json` output, one line per snapshot).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_coarsen_as_they_grow() {
        assert_eq!(coarse_age_s(999), 0);
        assert_eq!(coarse_age_s(59_999), 59);
        assert_eq!(coarse_age_s(61_000), 60);
        assert_eq!(coarse_age_s(3_599_000), 3540);
        assert_eq!(coarse_age_s(7_300_000), 7200);
    }

    #[test]
    fn the_time_taken_does_not_make_a_snapshot_new() {
        // The worker redraws only when the snapshot differs: the clock alone must not count.
        let a = Snapshot {
            taken_ns: 1,
            pipeline: "p".into(),
            stages: vec![],
            robots: vec![],
            topics: vec![],
            sync: SyncSnapshot::default(),
            export: ExportSnapshot::default(),
            system: None,
        };
        let mut b = a.clone();
        b.taken_ns = 2;
        assert_eq!(a, b);
        b.sync.pending_bytes = 1;
        assert_ne!(a, b);
    }

    #[test]
    fn progress_fractions() {
        let up = CurrentUpload { segment: "s".into(), size_bytes: 1, parts_done: 1, parts_total: 4, part: 2 };
        assert_eq!(up.fraction(), 0.25);
        let e = ExportSnapshot { exported: 30, total: 0, ..Default::default() };
        assert_eq!(e.fraction(), 0.0);
        let e = ExportSnapshot { exported: 30, total: 60, ..Default::default() };
        assert_eq!(e.fraction(), 0.5);
    }
}
