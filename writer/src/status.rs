//! The writer's [`StageStatus`]: counters, rates, per-robot and per-topic progress including
//! the durable watermark (`TopicStatus.durable_sequence`), and a detail line.

use std::collections::BTreeMap;
use std::time::Instant;

use shared::plane::{
    write_cstr, RobotStatus, Stage, StageState, StageStatus, TopicStatus, MAX_ROBOTS, MAX_STATUS_TOPICS,
};

use crate::segment_writer::{SegmentWriter, WriterState};

/// Builds statuses over time (rates need the previous totals).
#[derive(Debug)]
pub struct StatusReporter {
    started_ns: u64,
    robot_names: Vec<String>,
    last: Option<(Instant, u64, u64, BTreeMap<u16, u64>)>,
}

impl StatusReporter {
    /// A reporter; `robot_names` (by robot index) name robots whose topics carry no name.
    pub fn new(robot_names: Vec<String>) -> StatusReporter {
        StatusReporter { started_ns: shared::time::now_ns(), robot_names, last: None }
    }

    /// The status now. `stopping` overrides the state while shutting down.
    pub fn build(&mut self, w: &SegmentWriter, stopping: bool) -> StageStatus {
        let mut s = StageStatus::new(Stage::Writer);
        s.started_ns = self.started_ns;
        s.updated_ns = shared::time::now_ns();
        s.set_state(if stopping {
            StageState::Stopping
        } else {
            match w.state() {
                WriterState::Running => StageState::Running,
                WriterState::Paused => StageState::Paused,
                WriterState::DiskFull => StageState::DiskFull,
                WriterState::IoFailing => StageState::Error,
            }
        });
        let st = w.stats();
        s.messages = st.messages;
        s.bytes = st.bytes;
        s.dropped = st.dropped;
        s.errors = st.errors;
        s.queue_depth = w.unsynced_bytes();
        s.segments = st.segments_sealed;
        s.durable_bytes = st.durable_bytes;
        s.corrupt = st.corrupt_records;
        s.set_detail(&w.detail());

        let infos = w.topics();
        let mut robots: BTreeMap<u16, RobotStatus> = BTreeMap::new();
        for (i, t) in w.watermark().topics().enumerate() {
            let info = infos.get(&t.topic_id);
            if i < MAX_STATUS_TOPICS {
                let mut ts = TopicStatus {
                    topic_id: t.topic_id,
                    robot_id: t.robot_id,
                    messages: t.messages,
                    bytes: t.bytes,
                    dropped: t.dropped,
                    last_sequence: t.last_sequence,
                    durable_sequence: t.durable_sequence,
                    ingest_session: t.ingest_session,
                    ..Default::default()
                };
                let name = info.map_or_else(|| format!("topic {:#010x}", t.topic_id), |x| x.name.clone());
                write_cstr(&mut ts.name, &name);
                s.topics[i] = ts;
                s.topic_count = (i + 1) as u32;
            }
            let r = robots.entry(t.robot_id).or_default();
            if r.name == [0; 32] {
                let name = info
                    .map(|x| x.robot.clone())
                    .filter(|n| !n.is_empty())
                    .or_else(|| self.robot_names.get(usize::from(t.robot_id)).cloned())
                    .unwrap_or_else(|| format!("robot#{}", t.robot_id));
                write_cstr(&mut r.name, &name);
            }
            r.messages += t.messages;
            r.bytes += t.bytes;
            r.dropped += t.dropped;
            r.topic_count += 1;
        }

        let now = Instant::now();
        let per_robot: BTreeMap<u16, u64> = robots.iter().map(|(k, r)| (*k, r.messages)).collect();
        if let Some((then, msgs, bytes, prev)) = &self.last {
            let dt = now.duration_since(*then).as_secs_f64();
            if dt > 0.0 {
                s.rate_msgs = st.messages.saturating_sub(*msgs) as f64 / dt;
                s.rate_bytes = st.bytes.saturating_sub(*bytes) as f64 / dt;
                for (id, r) in robots.iter_mut() {
                    let before = prev.get(id).copied().unwrap_or(0);
                    r.rate_hz = r.messages.saturating_sub(before) as f64 / dt;
                }
            }
        }
        self.last = Some((now, st.messages, st.bytes, per_robot));
        for (i, r) in robots.into_values().take(MAX_ROBOTS).enumerate() {
            s.robots[i] = r;
            s.robot_count = (i + 1) as u32;
        }
        s
    }
}
