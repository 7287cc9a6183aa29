//! Plain `#[repr(C)]` data that crosses process boundaries. No pointers, fixed sizes, explicit
//! iceoryx2 type names that carry a version, so a mismatched peer fails to connect instead of
//! misreading memory.

use iceoryx2::prelude::ZeroCopySend;
use serde::{Deserialize, Serialize};

use super::{MAX_ROBOTS, MAX_STATUS_TOPICS};

/// Header of every message sample: the payload (`[u8]`) is the raw CDR bytes as received, or,
/// with [`super::MESSAGE_FLAG_BATCH`] in `flags`, a batch of messages (see
/// [`super::messages_of`]). v2: the batch form (a v1 peer cannot connect).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::MessageHeader::v2")]
pub struct MessageHeader {
    /// Stable topic id (see [`crate::topic::topic_id`]).
    pub topic_id: u32,
    /// Index of the robot in the pipeline's robot list.
    pub robot_id: u16,
    /// [`super::MESSAGE_FLAG_BATCH`] on a batch sample; other bits reserved, zero.
    pub flags: u16,
    /// Per-topic sequence number, starting at 1 for each ingest session (in a batch sample's
    /// own header: the number of messages in the batch).
    pub sequence: u64,
    /// Receive time, ns since the Unix epoch (system clock).
    pub receive_time_ns: u64,
    /// Publish time (or header stamp), ns since the Unix epoch; 0 when unknown.
    pub publish_time_ns: u64,
    /// Identifies one run of ingest; sequences restart with each.
    pub ingest_session: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
}

/// Header of a topic announcement; the payload is a JSON [`crate::topic::TopicInfo`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::TopicHeader::v1")]
pub struct TopicHeader {
    /// Topic id.
    pub topic_id: u32,
    /// Robot index.
    pub robot_id: u16,
    /// Reserved, zero.
    pub flags: u16,
}

/// The stages of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum Stage {
    /// fleetrec-ingest
    Ingest = 1,
    /// fleetrec-writer
    Writer = 2,
    /// fleetrec-uploader
    Uploader = 3,
    /// fleetrec-exporter
    Exporter = 4,
    /// fleetrec-viewer
    Viewer = 5,
}

impl Stage {
    /// All stages, in pipeline order.
    pub const ALL: [Stage; 5] = [Stage::Ingest, Stage::Writer, Stage::Uploader, Stage::Exporter, Stage::Viewer];

    /// Lower-case name, as in binary and service names.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Writer => "writer",
            Stage::Uploader => "uploader",
            Stage::Exporter => "exporter",
            Stage::Viewer => "viewer",
        }
    }

    /// Parses a lower-case stage name.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// From the `u32` in shared memory.
    pub fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == v)
    }
}

/// What a stage is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StageState {
    /// Setting up.
    Starting = 0,
    /// Working.
    Running = 1,
    /// Paused by a control request.
    Paused = 2,
    /// Not accepting data: the disk is full.
    DiskFull = 3,
    /// Shutting down.
    Stopping = 4,
    /// Failing; see the status detail.
    Error = 5,
    /// Waiting for a peer (network, upstream stage).
    Waiting = 6,
    /// Ran to completion.
    Finished = 7,
}

impl StageState {
    /// Lower-case name for status output.
    pub fn name(self) -> &'static str {
        match self {
            StageState::Starting => "starting",
            StageState::Running => "running",
            StageState::Paused => "paused",
            StageState::DiskFull => "disk full",
            StageState::Stopping => "stopping",
            StageState::Error => "error",
            StageState::Waiting => "waiting",
            StageState::Finished => "finished",
        }
    }

    /// From the `u32` in shared memory.
    pub fn from_u32(v: u32) -> StageState {
        [
            StageState::Starting,
            StageState::Running,
            StageState::Paused,
            StageState::DiskFull,
            StageState::Stopping,
            StageState::Error,
            StageState::Waiting,
            StageState::Finished,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
        .unwrap_or(StageState::Error)
    }
}

/// Per-robot counters in a status.
#[derive(Debug, Clone, Copy, Default, PartialEq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::RobotStatus::v1")]
pub struct RobotStatus {
    /// NUL-padded robot name.
    pub name: [u8; 32],
    /// Messages handled.
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Messages dropped (counted, never silent).
    pub dropped: u64,
    /// Messages per second over the last status interval.
    pub rate_hz: f64,
    /// Topics of this robot.
    pub topic_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Per-topic counters in a status.
#[derive(Debug, Clone, Copy, PartialEq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::TopicStatus::v1")]
pub struct TopicStatus {
    /// Topic id.
    pub topic_id: u32,
    /// Robot index.
    pub robot_id: u16,
    /// Reserved, zero.
    pub reserved: u16,
    /// Messages handled.
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Highest sequence handled.
    pub last_sequence: u64,
    /// Writer: highest sequence on stable storage (the durable watermark).
    pub durable_sequence: u64,
    /// Ingest session of the sequences above.
    pub ingest_session: u32,
    /// Reserved, zero.
    pub reserved2: u32,
    /// NUL-padded topic name (truncated to 63 bytes).
    pub name: [u8; 64],
}

impl Default for TopicStatus {
    fn default() -> Self {
        Self {
            topic_id: 0,
            robot_id: 0,
            reserved: 0,
            messages: 0,
            bytes: 0,
            dropped: 0,
            last_sequence: 0,
            durable_sequence: 0,
            ingest_session: 0,
            reserved2: 0,
            name: [0; 64],
        }
    }
}

/// The fixed-size status every stage publishes a few times a second.
#[derive(Debug, Clone, Copy, PartialEq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::StageStatus::v1")]
pub struct StageStatus {
    /// [`Stage`] as `u32`.
    pub stage: u32,
    /// [`StageState`] as `u32`.
    pub state: u32,
    /// Process id of the stage.
    pub pid: u32,
    /// Valid entries in `robots`.
    pub robot_count: u32,
    /// Valid entries in `topics`.
    pub topic_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// When the stage started, ns since the epoch.
    pub started_ns: u64,
    /// When this status was made, ns since the epoch.
    pub updated_ns: u64,
    /// Messages handled in total.
    pub messages: u64,
    /// Payload bytes handled in total.
    pub bytes: u64,
    /// Messages dropped in total.
    pub dropped: u64,
    /// Errors seen.
    pub errors: u64,
    /// Items waiting (messages buffered, bytes unsynced, segments queued: stage-specific).
    pub queue_depth: u64,
    /// Writer: segments sealed; uploader: segments uploaded.
    pub segments: u64,
    /// Writer: bytes on stable storage; uploader: bytes uploaded.
    pub durable_bytes: u64,
    /// Corrupt or torn records found and counted.
    pub corrupt: u64,
    /// Messages per second over the last interval.
    pub rate_msgs: f64,
    /// Payload bytes per second over the last interval.
    pub rate_bytes: f64,
    /// Per-robot counters.
    pub robots: [RobotStatus; MAX_ROBOTS],
    /// Per-topic counters.
    pub topics: [TopicStatus; MAX_STATUS_TOPICS],
    /// NUL-padded human-readable detail (last error, current file).
    pub detail: [u8; 192],
}

impl StageStatus {
    /// An empty status of `stage`.
    pub fn new(stage: Stage) -> Self {
        Self {
            stage: stage as u32,
            state: StageState::Starting as u32,
            pid: std::process::id(),
            robot_count: 0,
            topic_count: 0,
            reserved: 0,
            started_ns: crate::time::now_ns(),
            updated_ns: 0,
            messages: 0,
            bytes: 0,
            dropped: 0,
            errors: 0,
            queue_depth: 0,
            segments: 0,
            durable_bytes: 0,
            corrupt: 0,
            rate_msgs: 0.0,
            rate_bytes: 0.0,
            robots: [RobotStatus::default(); MAX_ROBOTS],
            topics: [TopicStatus::default(); MAX_STATUS_TOPICS],
            detail: [0; 192],
        }
    }

    /// Sets the state.
    pub fn set_state(&mut self, state: StageState) {
        self.state = state as u32;
    }

    /// The state.
    pub fn state(&self) -> StageState {
        StageState::from_u32(self.state)
    }

    /// Sets the detail text (truncated).
    pub fn set_detail(&mut self, text: &str) {
        write_cstr(&mut self.detail, text);
    }

    /// The valid robot entries.
    pub fn robots(&self) -> &[RobotStatus] {
        &self.robots[..(self.robot_count as usize).min(MAX_ROBOTS)]
    }

    /// The valid topic entries.
    pub fn topics(&self) -> &[TopicStatus] {
        &self.topics[..(self.topic_count as usize).min(MAX_STATUS_TOPICS)]
    }

    /// JSON form for `fleetrec-<stage> status --json` and the metrics endpoint.
    pub fn to_json(&self) -> serde_json::Value {
        let robots: Vec<_> = self
            .robots()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": read_cstr(&r.name),
                    "messages": r.messages,
                    "bytes": r.bytes,
                    "dropped": r.dropped,
                    "rate_hz": (r.rate_hz * 10.0).round() / 10.0,
                    "topics": r.topic_count,
                })
            })
            .collect();
        let topics: Vec<_> = self
            .topics()
            .iter()
            .map(|t| {
                serde_json::json!({
                    "topic_id": t.topic_id,
                    "robot_id": t.robot_id,
                    "name": read_cstr(&t.name),
                    "messages": t.messages,
                    "bytes": t.bytes,
                    "dropped": t.dropped,
                    "last_sequence": t.last_sequence,
                    "durable_sequence": t.durable_sequence,
                    "ingest_session": t.ingest_session,
                })
            })
            .collect();
        serde_json::json!({
            "stage": Stage::from_u32(self.stage).map_or("unknown", Stage::name),
            "state": self.state().name(),
            "pid": self.pid,
            "started_ns": self.started_ns,
            "updated_ns": self.updated_ns,
            "messages": self.messages,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "errors": self.errors,
            "queue_depth": self.queue_depth,
            "segments": self.segments,
            "durable_bytes": self.durable_bytes,
            "corrupt": self.corrupt,
            "rate_msgs": (self.rate_msgs * 10.0).round() / 10.0,
            "rate_bytes": self.rate_bytes.round(),
            "detail": read_cstr(&self.detail),
            "robots": robots,
            "topics": topics,
        })
    }
}

/// Commands of a [`ControlRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ControlCommand {
    /// Start recording / working.
    Start = 1,
    /// Pause (ingest: stop forwarding; writer: stop appending, counted as dropped).
    Pause = 2,
    /// Resume after pause.
    Resume = 3,
    /// Stop the stage cleanly.
    Stop = 4,
    /// Writer: seal the open segment and start a new one.
    SplitSegment = 5,
    /// Uploader: check connectivity and upload now.
    SyncNow = 6,
    /// Exporter: export (argument: a path or spec).
    Export = 7,
}

impl ControlCommand {
    /// From the `u32` in shared memory.
    pub fn from_u32(v: u32) -> Option<ControlCommand> {
        use ControlCommand::*;
        [Start, Pause, Resume, Stop, SplitSegment, SyncNow, Export].into_iter().find(|c| *c as u32 == v)
    }
}

/// A request from the viewer or the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::ControlRequest::v1")]
pub struct ControlRequest {
    /// Target [`Stage`] as `u32`; 0 for every stage.
    pub target: u32,
    /// [`ControlCommand`] as `u32`.
    pub command: u32,
    /// Caller-chosen id, echoed in logs.
    pub request_id: u64,
    /// NUL-padded argument.
    pub arg: [u8; 256],
}

impl ControlRequest {
    /// A request for `target` (`None`: every stage).
    pub fn new(target: Option<Stage>, command: ControlCommand, arg: &str) -> Self {
        let mut r = Self {
            target: target.map_or(0, |s| s as u32),
            command: command as u32,
            request_id: crate::time::now_ns(),
            arg: [0; 256],
        };
        write_cstr(&mut r.arg, arg);
        r
    }

    /// Whether `stage` should act on this request.
    pub fn is_for(&self, stage: Stage) -> bool {
        self.target == 0 || self.target == stage as u32
    }
}

/// Announces a sealed segment (a hint: the disk is the truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::SegmentNotice::v1")]
pub struct SegmentNotice {
    /// Robot index, or `u16::MAX` for a segment holding several robots.
    pub robot_id: u16,
    /// Reserved, zero.
    pub reserved: u16,
    /// Records in the segment.
    pub records: u32,
    /// Segment sequence number.
    pub segment_seq: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// First receive time in the segment, ns.
    pub first_ns: u64,
    /// Last receive time in the segment, ns.
    pub last_ns: u64,
    /// NUL-padded absolute path of the segment.
    pub path: [u8; 256],
}

/// One status for several live instances of a stage (for example one ingest per ROS domain,
/// all publishing `<pipeline>/status/ingest`): counters and rates are summed, robots with the
/// same name are added up, topics are listed together (a topic id seen twice keeps the newer
/// entry), the state is `running` if any instance runs, `pid` is the most recently started
/// instance's, and the detail joins the instances' details. One instance is returned as it is.
pub fn merge_statuses(instances: &[StageStatus]) -> Option<StageStatus> {
    let newest_started = instances.iter().max_by_key(|s| (s.started_ns, s.updated_ns))?;
    if instances.len() == 1 {
        return Some(*newest_started);
    }
    let mut m = *newest_started;
    m.robots = [RobotStatus::default(); MAX_ROBOTS];
    m.topics = [TopicStatus::default(); MAX_STATUS_TOPICS];
    (m.robot_count, m.topic_count) = (0, 0);
    (m.messages, m.bytes, m.dropped, m.errors, m.queue_depth) = (0, 0, 0, 0, 0);
    (m.segments, m.durable_bytes, m.corrupt, m.rate_msgs, m.rate_bytes) = (0, 0, 0, 0.0, 0.0);
    m.pid = newest_started.pid;
    m.started_ns = instances.iter().map(|s| s.started_ns).min().unwrap_or(0);
    m.updated_ns = instances.iter().map(|s| s.updated_ns).max().unwrap_or(0);
    let running = instances.iter().any(|s| s.state() == StageState::Running);
    m.state = if running { StageState::Running as u32 } else { newest_started.state };
    let mut details = Vec::new();
    let mut by_updated: Vec<&StageStatus> = instances.iter().collect();
    by_updated.sort_by_key(|s| s.updated_ns);
    for s in &by_updated {
        m.messages += s.messages;
        m.bytes += s.bytes;
        m.dropped += s.dropped;
        m.errors += s.errors;
        m.queue_depth += s.queue_depth;
        m.segments += s.segments;
        m.durable_bytes += s.durable_bytes;
        m.corrupt += s.corrupt;
        m.rate_msgs += s.rate_msgs;
        m.rate_bytes += s.rate_bytes;
        for r in s.robots() {
            let count = m.robot_count as usize;
            match m.robots[..count].iter_mut().find(|x| x.name == r.name) {
                Some(x) => {
                    x.messages += r.messages;
                    x.bytes += r.bytes;
                    x.dropped += r.dropped;
                    x.rate_hz += r.rate_hz;
                    x.topic_count += r.topic_count;
                }
                None if count < MAX_ROBOTS => {
                    m.robots[count] = *r;
                    m.robot_count += 1;
                }
                None => {}
            }
        }
        for t in s.topics() {
            let count = m.topic_count as usize;
            match m.topics[..count].iter_mut().find(|x| x.topic_id == t.topic_id) {
                // Sorted by update time: the later instance's entry wins.
                Some(x) => *x = *t,
                None if count < MAX_STATUS_TOPICS => {
                    m.topics[count] = *t;
                    m.topic_count += 1;
                }
                None => {}
            }
        }
        let d = read_cstr(&s.detail);
        details.push(if d.is_empty() { format!("pid {}", s.pid) } else { format!("pid {}: {d}", s.pid) });
    }
    m.set_detail(&format!("{} instances; {}", instances.len(), details.join("; ")));
    Some(m)
}

/// Writes `text` into a NUL-padded buffer, truncating at a char boundary.
pub fn write_cstr(buf: &mut [u8], text: &str) {
    buf.fill(0);
    let max = buf.len().saturating_sub(1);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    buf[..end].copy_from_slice(&text.as_bytes()[..end]);
}

/// Reads a NUL-padded buffer (lossy UTF-8).
pub fn read_cstr(buf: &[u8]) -> String {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstr_round_trip_and_truncation() {
        let mut b = [0u8; 8];
        write_cstr(&mut b, "robot1");
        assert_eq!(read_cstr(&b), "robot1");
        write_cstr(&mut b, "héllo wörld");
        assert_eq!(read_cstr(&b), "héllo ");
    }

    #[test]
    fn status_json_lists_valid_entries_only() {
        let mut s = StageStatus::new(Stage::Ingest);
        s.robot_count = 1;
        write_cstr(&mut s.robots[0].name, "robot1");
        s.robots[0].messages = 42;
        let j = s.to_json();
        assert_eq!(j["stage"], "ingest");
        assert_eq!(j["robots"].as_array().map(Vec::len), Some(1));
        assert_eq!(j["robots"][0]["name"], "robot1");
        assert_eq!(j["robots"][0]["messages"], 42);
    }

    fn instance(pid: u32, started: u64, updated: u64, robot: &str, topic: u32, messages: u64) -> StageStatus {
        let mut s = StageStatus::new(Stage::Ingest);
        s.pid = pid;
        s.started_ns = started;
        s.updated_ns = updated;
        s.set_state(StageState::Running);
        s.messages = messages;
        s.bytes = messages * 10;
        s.dropped = 1;
        s.rate_msgs = 100.0;
        s.robot_count = 1;
        write_cstr(&mut s.robots[0].name, robot);
        s.robots[0].messages = messages;
        s.robots[0].topic_count = 1;
        s.topic_count = 1;
        s.topics[0].topic_id = topic;
        s.topics[0].messages = messages;
        s.set_detail(&format!("ros2 domain {pid}"));
        s
    }

    #[test]
    fn one_instance_is_its_own_status() {
        let a = instance(7, 10, 20, "robot1", 1, 5);
        assert_eq!(merge_statuses(&[a]), Some(a));
        assert_eq!(merge_statuses(&[]), None);
    }

    #[test]
    fn instances_of_a_stage_are_summed() {
        let a = instance(7, 10, 50, "robot1", 1, 5);
        let b = instance(8, 30, 40, "robot2", 2, 11);
        let mut c = instance(9, 20, 45, "robot1", 3, 100);
        c.set_state(StageState::Stopping);
        let m = merge_statuses(&[a, b, c]).unwrap();
        assert_eq!((m.pid, m.started_ns, m.updated_ns), (8, 10, 50));
        assert_eq!(m.state(), StageState::Running);
        assert_eq!((m.messages, m.bytes, m.dropped), (116, 1160, 3));
        assert!((m.rate_msgs - 300.0).abs() < 1e-9);
        let robots: Vec<(String, u64, u32)> =
            m.robots().iter().map(|r| (read_cstr(&r.name), r.messages, r.topic_count)).collect();
        assert_eq!(robots, vec![("robot2".to_string(), 11, 1), ("robot1".to_string(), 105, 2)]);
        let topics: Vec<(u32, u64)> = m.topics().iter().map(|t| (t.topic_id, t.messages)).collect();
        assert_eq!(topics, vec![(2, 11), (3, 100), (1, 5)]);
        let detail = read_cstr(&m.detail);
        assert!(detail.starts_with("3 instances; pid 8: ros2 domain 8; pid 9"), "{detail}");
        // The same topic id from two instances: the more recently updated entry is kept.
        let d = instance(10, 60, 70, "robot1", 1, 77);
        let m = merge_statuses(&[a, d]).unwrap();
        let topics: Vec<(u32, u64)> = m.topics().iter().map(|t| (t.topic_id, t.messages)).collect();
        assert_eq!(topics, vec![(1, 77)]);
    }

    #[test]
    fn header_layout_is_stable() {
        assert_eq!(std::mem::size_of::<MessageHeader>(), 40);
        assert_eq!(std::mem::size_of::<TopicHeader>(), 8);
    }
}
