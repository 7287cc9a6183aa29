//! [`Dashboard`]: the viewer's attachment to a pipeline. It reads every stage's status and the
//! topic announcements, never publishes anything but control requests, and so can attach and
//! detach at any time without disturbing the stages. [`Dashboard::tick`] turns the latest
//! statuses into a [`Snapshot`]: stages, robots, topics (with rates and last message ages the
//! viewer derives between two statuses), sync details from the uploader's status, export
//! progress from the exporter's status, and the machine's diagnostics ([`SystemMonitor`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shared::config::{Config, PipelineConfig};
use shared::control::{ControlClient, ControlError, ControlReply};
use shared::plane::{read_cstr, ControlCommand, Plane, Stage, StageState, StageStatus, StatusReader, TopicSubscriber};
use shared::topic::TopicInfo;

use crate::diagnostics::SystemMonitor;
use crate::error::Result;
use crate::snapshot::{
    coarse_age_s, CurrentUpload, ExportSnapshot, RobotSnapshot, Snapshot, StageRobot, StageSnapshot, SyncRobot,
    SyncSnapshot, TopicCounters, TopicRow,
};

/// The stages the viewer watches, in pipeline order.
pub const WATCHED_STAGES: [Stage; 4] = [Stage::Ingest, Stage::Writer, Stage::Uploader, Stage::Exporter];

/// A stage is down when its newest status is older than this many status intervals.
pub const STALE_INTERVALS: u64 = 3;

/// How long a control request waits for the stage's answer.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(3);

/// The last counters of one (stage, topic), the rates measured from them, and when the message
/// count last grew.
#[derive(Debug, Clone, Copy, Default)]
struct RateSample {
    updated_ns: u64,
    messages: u64,
    bytes: u64,
    rate_hz: f64,
    bandwidth_bps: f64,
    /// Status time at which the count was first seen to grow (`None`: not since first sight).
    changed_ns: Option<u64>,
    /// Status time of the first sight.
    first_seen_ns: u64,
}

/// When a topic's last message arrived, as far as the statuses tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastMessage {
    /// No message counted.
    None,
    /// The count grew by the status of this time (ns).
    At(u64),
    /// Messages were counted before the viewer's first status; none since this time (ns).
    NotSince(u64),
}

/// Per-topic rates, measured between two statuses of the same stage (statuses carry counters
/// per topic but rates only per stage and robot).
#[derive(Debug, Default)]
struct RateTracker {
    samples: HashMap<(u32, u32), RateSample>,
}

impl RateTracker {
    fn update(&mut self, stage: Stage, topic_id: u32, updated_ns: u64, messages: u64, bytes: u64) -> (f64, f64) {
        let entry = self.samples.entry((stage as u32, topic_id)).or_default();
        if updated_ns > entry.updated_ns {
            if entry.updated_ns > 0 && messages >= entry.messages && bytes >= entry.bytes {
                let dt = (updated_ns - entry.updated_ns) as f64 / 1e9;
                entry.rate_hz = (messages - entry.messages) as f64 / dt;
                entry.bandwidth_bps = (bytes - entry.bytes) as f64 / dt;
                if messages > entry.messages {
                    entry.changed_ns = Some(updated_ns);
                }
            } else {
                if entry.updated_ns > 0 {
                    // The stage restarted and its counters began again: what it counted since
                    // arrived after its previous status.
                    entry.changed_ns = (messages > 0).then_some(updated_ns);
                } else {
                    entry.first_seen_ns = updated_ns;
                }
                entry.rate_hz = 0.0;
                entry.bandwidth_bps = 0.0;
            }
            entry.updated_ns = updated_ns;
            entry.messages = messages;
            entry.bytes = bytes;
        }
        (entry.rate_hz, entry.bandwidth_bps)
    }

    fn last_message(&self, stage: Stage, topic_id: u32) -> LastMessage {
        match self.samples.get(&(stage as u32, topic_id)) {
            Some(RateSample { changed_ns: Some(t), .. }) => LastMessage::At(*t),
            Some(s) if s.messages > 0 => LastMessage::NotSince(s.first_seen_ns),
            _ => LastMessage::None,
        }
    }
}

/// What the topic announcements say about a topic.
#[derive(Debug, Clone)]
struct TopicMeta {
    robot: String,
    type_name: String,
}

/// Attachment to one pipeline: status readers for every stage, the topic announcements, and a
/// control client.
pub struct Dashboard {
    plane: Plane,
    readers: Vec<(Stage, StatusReader)>,
    topic_subscriber: Option<TopicSubscriber>,
    topics: HashMap<u32, TopicMeta>,
    rates: RateTracker,
    stale_ns: u64,
    /// CPU, memory, disk and endpoint latency (`None` if it could not start).
    monitor: Option<SystemMonitor>,
    /// The uploader's uploaded-segment count last seen, and when the viewer saw it grow.
    uploads_seen: Option<u64>,
    last_upload_ns: Option<u64>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("pipeline", &self.plane.config().name).finish()
    }
}

impl Dashboard {
    /// Attaches to the pipeline described by `config` and starts the system diagnostics (of
    /// `storage.path`'s filesystem and the `[sync] endpoint`). Works whether or not any stage
    /// runs: stages that are down show as down until they publish.
    pub fn attach(config: &Config) -> Result<Dashboard> {
        let mut d = Self::attach_pipeline(&config.pipeline)?;
        d.monitor = match SystemMonitor::start(&config.storage.path, &config.sync.endpoint) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(%e, "system diagnostics unavailable");
                None
            }
        };
        Ok(d)
    }

    /// Attaches to the pipeline without system diagnostics (`Snapshot::system` stays `None`).
    pub fn attach_pipeline(config: &PipelineConfig) -> Result<Dashboard> {
        let plane = Plane::open(&format!("viewer-{}", std::process::id()), config)?;
        let mut readers = Vec::with_capacity(WATCHED_STAGES.len());
        for stage in WATCHED_STAGES {
            readers.push((stage, StatusReader::new(&plane, stage)?));
        }
        // Types are a nicety: without the announcements the table shows empty types.
        let topic_subscriber = match plane.topic_subscriber() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(%e, "topic announcements unavailable; topic types will be empty");
                None
            }
        };
        let stale_ns = STALE_INTERVALS * config.status_interval_ms.max(1) * 1_000_000;
        tracing::info!(pipeline = %config.name, "viewer attached");
        Ok(Dashboard {
            plane,
            readers,
            topic_subscriber,
            topics: HashMap::new(),
            rates: RateTracker::default(),
            stale_ns,
            monitor: None,
            uploads_seen: None,
            last_upload_ns: None,
        })
    }

    /// The pipeline settings.
    pub fn config(&self) -> &PipelineConfig {
        self.plane.config()
    }

    /// Sends a control request to `stage` and waits for its answer ([`CONTROL_TIMEOUT`]). A stage
    /// that is down fails at once with [`ControlError::StageDown`].
    pub fn control(&self, stage: Stage, command: ControlCommand, arg: &str) -> Result<ControlReply, ControlError> {
        ControlClient::new(&self.plane).request(stage, command, arg, CONTROL_TIMEOUT)
    }

    fn drain_topic_announcements(&mut self) {
        let Some(sub) = &self.topic_subscriber else { return };
        loop {
            match sub.receive() {
                Ok(Some(sample)) => match TopicInfo::from_json_bytes(sample.payload()) {
                    Ok(info) => {
                        self.topics.insert(info.topic_id, TopicMeta { robot: info.robot, type_name: info.type_name });
                    }
                    Err(e) => tracing::warn!(%e, "unreadable topic announcement skipped"),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(?e, "receiving topic announcements failed");
                    break;
                }
            }
        }
    }

    /// Reads the newest statuses and builds a snapshot.
    pub fn tick(&mut self) -> Snapshot {
        self.drain_topic_announcements();
        let now = shared::time::now_ns();
        let mut latest: Vec<(Stage, Option<StageStatus>, bool)> = Vec::with_capacity(self.readers.len());
        for (stage, reader) in &mut self.readers {
            let status = reader.poll().copied();
            let up = status.is_some_and(|s| now.saturating_sub(s.updated_ns) <= self.stale_ns);
            latest.push((*stage, status, up));
        }

        let system = self.monitor.as_ref().map(|m| {
            let pids: Vec<u32> =
                latest.iter().filter(|(_, _, up)| *up).filter_map(|(_, s, _)| s.map(|s| s.pid)).collect();
            m.watch_pids(&pids);
            m.snapshot()
        });
        let stages = latest
            .iter()
            .map(|(stage, status, up)| {
                let mut s = stage_snapshot(*stage, status.as_ref(), *up, now);
                if let Some(p) = system.as_ref().and_then(|sys| sys.process(s.pid)).filter(|_| s.up) {
                    s.cpu_percent = Some(p.cpu_percent);
                    s.memory_bytes = Some(p.memory_bytes);
                }
                s
            })
            .collect();

        // Robot names by index, as ingest numbers them.
        let mut robot_names: HashMap<u16, String> = HashMap::new();
        if let Some((_, Some(ingest), _)) = latest.iter().find(|(s, _, _)| *s == Stage::Ingest) {
            for (i, r) in ingest.robots().iter().enumerate() {
                let name = read_cstr(&r.name);
                if !name.is_empty() {
                    robot_names.insert(i as u16, name);
                }
            }
        }

        let mut rows: BTreeMap<u32, TopicRow> = BTreeMap::new();
        for (stage, status, up) in &latest {
            let (Some(status), true) = (status, *up) else { continue };
            if !matches!(stage, Stage::Ingest | Stage::Writer) {
                continue;
            }
            for t in status.topics() {
                let (rate_hz, bandwidth_bps) =
                    self.rates.update(*stage, t.topic_id, status.updated_ns, t.messages, t.bytes);
                let counters = TopicCounters {
                    messages: t.messages,
                    bytes: t.bytes,
                    dropped: t.dropped,
                    last_sequence: t.last_sequence,
                    durable_sequence: t.durable_sequence,
                    ingest_session: t.ingest_session,
                    rate_hz,
                    bandwidth_bps,
                };
                let meta = self.topics.get(&t.topic_id);
                let row = rows.entry(t.topic_id).or_insert_with(|| TopicRow {
                    topic_id: t.topic_id,
                    robot: meta
                        .map(|m| m.robot.clone())
                        .filter(|r| !r.is_empty())
                        .or_else(|| robot_names.get(&t.robot_id).cloned())
                        .unwrap_or_else(|| format!("robot#{}", t.robot_id)),
                    name: read_cstr(&t.name),
                    type_name: meta.map(|m| m.type_name.clone()).unwrap_or_default(),
                    ingest: None,
                    writer: None,
                    durable_lag: None,
                    last_message_age_s: None,
                    last_message_age_exact: false,
                });
                if *stage == Stage::Ingest {
                    row.ingest = Some(counters);
                } else {
                    row.writer = Some(counters);
                }
            }
        }
        let mut topics: Vec<TopicRow> = rows
            .into_values()
            .map(|mut row| {
                row.durable_lag = row.writer.map(|w| match row.ingest {
                    Some(i) if i.ingest_session == w.ingest_session => {
                        i.last_sequence.saturating_sub(w.durable_sequence)
                    }
                    _ => w.last_sequence.saturating_sub(w.durable_sequence),
                });
                let incoming = if row.ingest.is_some() { Stage::Ingest } else { Stage::Writer };
                let age = |t: u64| coarse_age_s(now.saturating_sub(t) / 1_000_000);
                (row.last_message_age_s, row.last_message_age_exact) =
                    match self.rates.last_message(incoming, row.topic_id) {
                        LastMessage::None => (None, false),
                        LastMessage::At(t) => (Some(age(t)), true),
                        LastMessage::NotSince(t) => (Some(age(t)), false),
                    };
                row
            })
            .collect();
        topics.sort_by(|a, b| (&a.robot, &a.name).cmp(&(&b.robot, &b.name)));

        let mut robots: BTreeMap<String, RobotSnapshot> = BTreeMap::new();
        for row in &topics {
            let r = robots.entry(row.robot.clone()).or_insert_with(|| RobotSnapshot {
                name: row.robot.clone(),
                topics: 0,
                messages: 0,
                recorded: 0,
                bytes: 0,
                dropped: 0,
                rate_hz: 0.0,
                bandwidth_bps: 0.0,
                durable_lag: None,
            });
            r.topics += 1;
            if let Some(c) = row.incoming() {
                r.messages += c.messages;
                r.bytes += c.bytes;
                r.rate_hz += c.rate_hz;
                r.bandwidth_bps += c.bandwidth_bps;
            }
            r.recorded += row.writer.map_or(0, |w| w.messages);
            r.dropped += row.dropped();
            if let Some(lag) = row.durable_lag {
                r.durable_lag = Some(r.durable_lag.unwrap_or(0) + lag);
            }
        }

        let uploader = latest.iter().find(|(s, _, _)| *s == Stage::Uploader).and_then(|(_, st, up)| st.filter(|_| *up));
        let sync = self.sync_snapshot(uploader.as_ref(), now);
        let exporter = latest.iter().find(|(s, _, _)| *s == Stage::Exporter).and_then(|(_, st, up)| st.filter(|_| *up));
        Snapshot {
            taken_ns: now,
            pipeline: self.plane.config().name.clone(),
            stages,
            robots: robots.into_values().collect(),
            topics,
            sync,
            export: export_snapshot(exporter.as_ref()),
            system,
        }
    }

    /// Sync details from the uploader's status (see `uploader/src/progress.rs` for the mapping);
    /// `status` is `None` when the uploader is down.
    fn sync_snapshot(&mut self, status: Option<&StageStatus>, now: u64) -> SyncSnapshot {
        if let Some(s) = status {
            if self.uploads_seen.is_some_and(|seen| s.segments > seen) {
                self.last_upload_ns = Some(s.updated_ns);
            }
            self.uploads_seen = Some(s.segments);
        }
        let last_success_age_s = self.last_upload_ns.map(|t| coarse_age_s(now.saturating_sub(t) / 1_000_000));
        let Some(s) = status else {
            return SyncSnapshot { status: "not running".into(), last_success_age_s, ..SyncSnapshot::default() };
        };
        let state = s.state();
        let (status_text, online) = match state {
            StageState::Running => ("online", Some(true)),
            StageState::Waiting => ("offline", Some(false)),
            other => (other.name(), None),
        };
        // Queued segments, oldest first: the one with a part in flight is the current upload.
        let current = s.topics().iter().find(|t| t.durable_sequence > 0).map(|t| CurrentUpload {
            segment: read_cstr(&t.name),
            size_bytes: t.bytes,
            parts_done: t.messages,
            parts_total: t.last_sequence,
            part: t.durable_sequence,
        });
        SyncSnapshot {
            up: true,
            status: status_text.into(),
            online,
            queued_segments: s.queue_depth,
            pending_bytes: s.bytes,
            uploaded_segments: s.segments,
            uploaded_bytes: s.durable_bytes,
            rate_bytes: s.rate_bytes,
            errors: s.errors,
            retries: s.dropped,
            corrupt: s.corrupt,
            detail: read_cstr(&s.detail),
            current,
            last_success_age_s,
            robots: s
                .robots()
                .iter()
                .map(|r| SyncRobot {
                    name: read_cstr(&r.name),
                    uploaded_segments: r.messages,
                    uploaded_bytes: r.bytes,
                    queued_segments: r.topic_count,
                })
                .collect(),
        }
    }
}

/// Export progress from the exporter service's status: `messages` exported so far,
/// `queue_depth` messages in the current job, state running while exporting and waiting when
/// idle; `status` is `None` when the exporter is not running.
fn export_snapshot(status: Option<&StageStatus>) -> ExportSnapshot {
    let Some(s) = status else {
        return ExportSnapshot { status: "not running".into(), ..ExportSnapshot::default() };
    };
    let status = match s.state() {
        StageState::Running => "exporting",
        StageState::Waiting => "idle",
        other => other.name(),
    };
    ExportSnapshot {
        up: true,
        status: status.into(),
        exported: s.messages,
        total: s.queue_depth,
        detail: read_cstr(&s.detail),
        errors: s.errors,
    }
}

/// State shown for a stage that is not up: the exporter runs on demand, so its absence is
/// normal.
pub fn down_state(stage: Stage) -> &'static str {
    if stage == Stage::Exporter {
        "not running"
    } else {
        "down"
    }
}

fn stage_snapshot(stage: Stage, status: Option<&StageStatus>, up: bool, now: u64) -> StageSnapshot {
    let Some(s) = status else {
        return StageSnapshot {
            stage: stage.name(),
            up: false,
            state: down_state(stage).into(),
            status_age_s: None,
            started_ns: 0,
            cpu_percent: None,
            memory_bytes: None,
            pid: 0,
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
            detail: String::new(),
            robots: Vec::new(),
        };
    };
    let live = |v: f64| if up { v } else { 0.0 };
    StageSnapshot {
        stage: stage.name(),
        up,
        state: if up { s.state().name().to_string() } else { down_state(stage).into() },
        status_age_s: Some(coarse_age_s(now.saturating_sub(s.updated_ns) / 1_000_000)),
        started_ns: s.started_ns,
        cpu_percent: None,
        memory_bytes: None,
        pid: s.pid,
        messages: s.messages,
        bytes: s.bytes,
        dropped: s.dropped,
        errors: s.errors,
        queue_depth: s.queue_depth,
        segments: s.segments,
        durable_bytes: s.durable_bytes,
        corrupt: s.corrupt,
        rate_msgs: live(s.rate_msgs),
        rate_bytes: live(s.rate_bytes),
        detail: read_cstr(&s.detail),
        robots: if up {
            s.robots()
                .iter()
                .map(|r| StageRobot {
                    name: read_cstr(&r.name),
                    messages: r.messages,
                    bytes: r.bytes,
                    dropped: r.dropped,
                    rate_hz: r.rate_hz,
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// Whether a stage in `state` is recording (for the UI's pause/resume toggle).
pub fn is_paused(state: &str) -> bool {
    state == StageState::Paused.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_two_statuses_and_reset_on_restart() {
        let mut r = RateTracker::default();
        assert_eq!(r.update(Stage::Ingest, 1, 1_000_000_000, 10, 100), (0.0, 0.0));
        assert_eq!(r.update(Stage::Ingest, 1, 1_500_000_000, 60, 600), (100.0, 1000.0));
        // The same status again keeps the rate.
        assert_eq!(r.update(Stage::Ingest, 1, 1_500_000_000, 60, 600), (100.0, 1000.0));
        // Counters went back: the stage restarted.
        assert_eq!(r.update(Stage::Ingest, 1, 2_000_000_000, 5, 50), (0.0, 0.0));
    }

    #[test]
    fn a_stage_never_seen_is_down() {
        let s = stage_snapshot(Stage::Uploader, None, false, 1);
        assert!(!s.up);
        assert_eq!(s.state, "down");
        assert_eq!(s.status_age_s, None);
        let e = stage_snapshot(Stage::Exporter, None, false, 1);
        assert_eq!(e.state, "not running");
    }

    #[test]
    fn last_message_time_comes_from_the_status_where_the_count_grew() {
        let mut r = RateTracker::default();
        assert_eq!(r.last_message(Stage::Ingest, 1), LastMessage::None);
        r.update(Stage::Ingest, 1, 1_000, 10, 100);
        // Counted before the first status the viewer saw: at least that old.
        assert_eq!(r.last_message(Stage::Ingest, 1), LastMessage::NotSince(1_000));
        r.update(Stage::Ingest, 1, 2_000, 12, 120);
        assert_eq!(r.last_message(Stage::Ingest, 1), LastMessage::At(2_000));
        r.update(Stage::Ingest, 1, 3_000, 12, 120);
        assert_eq!(r.last_message(Stage::Ingest, 1), LastMessage::At(2_000));
        // Restart: counters began again.
        r.update(Stage::Ingest, 1, 4_000, 0, 0);
        assert_eq!(r.last_message(Stage::Ingest, 1), LastMessage::None);
        r.update(Stage::Ingest, 1, 5_000, 3, 30);
        assert_eq!(r.last_message(Stage::Ingest, 1), LastMessage::At(5_000));
        // A topic with no message yet.
        r.update(Stage::Writer, 2, 1_000, 0, 0);
        assert_eq!(r.last_message(Stage::Writer, 2), LastMessage::None);
    }
}
