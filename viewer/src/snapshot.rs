//! What the viewer shows at one instant: every stage (up or down, state, counters, rates), every
//! topic with the ingest and writer view side by side (so the durable watermark lag can be
//! computed), and per-robot totals. Built by [`crate::Dashboard::tick`]; rendered by the UI, the
//! `--json` output and the Prometheus endpoint alike.

use serde::Serialize;

/// One stage as seen from its latest status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSnapshot {
    /// Lower-case stage name.
    pub stage: &'static str,
    /// Whether a fresh status arrived within three status intervals.
    pub up: bool,
    /// State name of the latest status (`down` when none was ever seen, or the stage is down).
    pub state: String,
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
}

impl PartialEq for Snapshot {
    /// Equal when everything shown is equal; the time it was taken does not count, so an
    /// unchanged pipeline causes no redraw.
    fn eq(&self, other: &Self) -> bool {
        self.pipeline == other.pipeline
            && self.stages == other.stages
            && self.robots == other.robots
            && self.topics == other.topics
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

    /// JSON, one object (the `--json` output, one line per snapshot).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
