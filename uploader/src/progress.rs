//! What the uploader reports: counters and the queue, shared between the upload tasks and the
//! status publisher, and their mapping onto the fixed-size [`StageStatus`].
//!
//! | `StageStatus` field | uploader meaning |
//! |---|---|
//! | `state` | `running` (uploading or idle), `waiting` (offline: the endpoint failed the probe), `paused`, `starting`, `stopping` |
//! | `queue_depth` | segments queued: sealed, not yet uploaded (or not yet verified, with retention on) |
//! | `bytes` | pending bytes: bytes of queued segments the server has not acknowledged yet |
//! | `segments` | segments uploaded (and verified, with retention on), over every run (from the journals) |
//! | `durable_bytes` | bytes uploaded: completed segments plus acknowledged parts of queued ones, over every run |
//! | `messages` | parts acknowledged by this process |
//! | `rate_bytes` | upload throughput over the last status interval, bytes/s |
//! | `rate_msgs` | parts per second over the last status interval |
//! | `errors` | failed requests (each failed attempt counts, retried or not) and local errors |
//! | `dropped` | retries: attempts that followed a failed attempt (the uploader never drops data) |
//! | `corrupt` | segments that do not match their manifest (not uploaded) |
//! | `robots[]` | per robot directory: `messages` segments uploaded by this process, `bytes` bytes uploaded by this process, `topic_count` segments queued, `dropped` 0 |
//! | `topics[]` | one row per queued segment, oldest first (up to 128): `name` segment file, `robot_id` header robot id, `bytes` size, `messages` parts acknowledged, `last_sequence` parts in total, `durable_sequence` the part being sent now (1-based, 0 = none), `dropped` retries of this segment |
//! | `detail` | `offline: <reason>`, `uploading <segment> part i/n`, `idle`, `paused`, or the last error |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use shared::plane::{write_cstr, Stage, StageState, StageStatus, MAX_ROBOTS, MAX_STATUS_TOPICS};

/// One queued segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueEntry {
    /// Robot directory.
    pub robot: String,
    /// Header robot id.
    pub robot_id: u16,
    /// Segment size.
    pub size: u64,
    /// Bytes acknowledged.
    pub bytes_done: u64,
    /// Parts acknowledged.
    pub parts_done: u32,
    /// Parts in total (0 until hashed).
    pub parts_total: u32,
    /// Parts being sent now (1-based numbers).
    pub in_flight: Vec<u32>,
    /// Retries of this segment in this process.
    pub retries: u64,
}

/// The counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Whether the endpoint answered the last probe or request.
    pub online: bool,
    /// Paused by a control request.
    pub paused: bool,
    /// Startup is over (first scan and probe done).
    pub started: bool,
    /// Stopping.
    pub stopping: bool,
    /// Why we are offline.
    pub offline_reason: String,
    /// The last error, for `detail`.
    pub last_error: String,
    /// Segments uploaded (and verified, with retention on), all runs.
    pub segments_uploaded: u64,
    /// Bytes of uploaded segments, all runs (acknowledged parts of queued segments are in the
    /// queue entries).
    pub bytes_uploaded: u64,
    /// Parts acknowledged by this process.
    pub parts_uploaded: u64,
    /// Part bytes acknowledged by this process.
    pub part_bytes_sent: u64,
    /// Failed requests and local errors.
    pub errors: u64,
    /// Retries.
    pub retries: u64,
    /// Segments that do not match their manifest.
    pub corrupt: u64,
    /// Segments deleted by retention.
    pub retention_deleted: u64,
    /// Per robot directory: (segments uploaded, bytes uploaded) by this process.
    pub per_robot: BTreeMap<String, (u64, u64)>,
    /// The queue, by segment name.
    pub queue: BTreeMap<String, QueueEntry>,
}

/// Shared, cheaply cloned handle on the counters.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Counters>>);

impl Progress {
    /// Locks the counters (a poisoned lock is still usable: counters stay consistent enough).
    pub fn lock(&self) -> MutexGuard<'_, Counters> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        self.lock().clone()
    }

    /// Counts an error and remembers it for `detail`.
    pub fn error(&self, text: &str) {
        let mut c = self.lock();
        c.errors += 1;
        c.last_error = text.to_string();
    }
}

/// Turns counters into rates between two status publications.
#[derive(Debug, Default)]
pub struct RateMeter {
    last: Option<(u64, u64, u64)>,
    /// When the first status was made: the stage's `started_ns`.
    started_ns: Option<u64>,
}

impl RateMeter {
    /// Fills a [`StageStatus`] from `c`; `now_ns` is the status time.
    pub fn status(&mut self, c: &Counters, now_ns: u64) -> StageStatus {
        let mut s = StageStatus::new(Stage::Uploader);
        s.started_ns = *self.started_ns.get_or_insert(now_ns);
        s.updated_ns = now_ns;
        let state = if c.stopping {
            StageState::Stopping
        } else if !c.started {
            StageState::Starting
        } else if c.paused {
            StageState::Paused
        } else if !c.online {
            StageState::Waiting
        } else {
            StageState::Running
        };
        s.set_state(state);
        s.queue_depth = c.queue.len() as u64;
        s.bytes = c.queue.values().map(|q| q.size.saturating_sub(q.bytes_done)).sum();
        s.segments = c.segments_uploaded;
        s.durable_bytes = c.bytes_uploaded + c.queue.values().map(|q| q.bytes_done).sum::<u64>();
        s.messages = c.parts_uploaded;
        s.errors = c.errors;
        s.dropped = c.retries;
        s.corrupt = c.corrupt;
        if let Some((t0, b0, p0)) = self.last {
            let dt = now_ns.saturating_sub(t0) as f64 / 1e9;
            if dt > 0.0 {
                s.rate_bytes = c.part_bytes_sent.saturating_sub(b0) as f64 / dt;
                s.rate_msgs = c.parts_uploaded.saturating_sub(p0) as f64 / dt;
            }
        }
        self.last = Some((now_ns, c.part_bytes_sent, c.parts_uploaded));

        let mut robots: BTreeMap<&str, (u64, u64, u32)> = BTreeMap::new();
        for (r, (segs, bytes)) in &c.per_robot {
            robots.insert(r, (*segs, *bytes, 0));
        }
        for q in c.queue.values() {
            robots.entry(&q.robot).or_default().2 += 1;
        }
        for (i, (name, (segs, bytes, queued))) in robots.into_iter().take(MAX_ROBOTS).enumerate() {
            let r = &mut s.robots[i];
            write_cstr(&mut r.name, name);
            r.messages = segs;
            r.bytes = bytes;
            r.topic_count = queued;
            s.robot_count = i as u32 + 1;
        }
        for (i, (name, q)) in c.queue.iter().take(MAX_STATUS_TOPICS).enumerate() {
            let t = &mut s.topics[i];
            t.topic_id = i as u32;
            t.robot_id = q.robot_id;
            write_cstr(&mut t.name, name);
            t.bytes = q.size;
            t.messages = u64::from(q.parts_done);
            t.last_sequence = u64::from(q.parts_total);
            t.durable_sequence = q.in_flight.iter().min().copied().map_or(0, u64::from);
            t.dropped = q.retries;
            s.topic_count = i as u32 + 1;
        }
        s.set_detail(&detail(c, state));
        s
    }
}

fn detail(c: &Counters, state: StageState) -> String {
    match state {
        StageState::Waiting => format!("offline: {}", c.offline_reason),
        StageState::Paused => "paused".into(),
        StageState::Starting => "starting".into(),
        StageState::Stopping => "stopping".into(),
        _ => {
            let busy = c.queue.iter().find(|(_, q)| !q.in_flight.is_empty());
            match busy {
                Some((name, q)) => format!(
                    "uploading {name} part {}/{}",
                    q.in_flight.iter().min().copied().unwrap_or(0),
                    q.parts_total
                ),
                None if !c.last_error.is_empty() && !c.queue.is_empty() => format!("last error: {}", c.last_error),
                None => "idle".into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::plane::read_cstr;

    #[test]
    fn status_mapping() {
        let mut c =
            Counters { started: true, online: true, segments_uploaded: 3, bytes_uploaded: 300, ..Default::default() };
        c.queue.insert(
            "seg-2.wal".into(),
            QueueEntry {
                robot: "r1".into(),
                size: 100,
                bytes_done: 40,
                parts_done: 2,
                parts_total: 5,
                in_flight: vec![4, 3],
                ..Default::default()
            },
        );
        c.queue.insert("seg-3.wal".into(), QueueEntry { robot: "r2".into(), size: 50, ..Default::default() });
        c.per_robot.insert("r1".into(), (1, 100));
        let mut m = RateMeter::default();
        let s = m.status(&c, 1_000_000_000);
        assert_eq!(s.state(), StageState::Running);
        assert_eq!((s.queue_depth, s.bytes, s.segments, s.durable_bytes), (2, 110, 3, 340));
        assert_eq!(s.topic_count, 2);
        assert_eq!(read_cstr(&s.topics[0].name), "seg-2.wal");
        assert_eq!((s.topics[0].messages, s.topics[0].last_sequence, s.topics[0].durable_sequence), (2, 5, 3));
        assert_eq!(s.robot_count, 2);
        assert_eq!((s.robots[0].messages, s.robots[0].topic_count), (1, 1));
        assert_eq!(read_cstr(&s.detail), "uploading seg-2.wal part 3/5");
        c.part_bytes_sent = 2_000;
        let s = m.status(&c, 3_000_000_000);
        assert_eq!(s.rate_bytes, 1000.0);
        c.online = false;
        c.offline_reason = "connection refused".into();
        let s = m.status(&c, 4_000_000_000);
        assert_eq!(s.state(), StageState::Waiting);
        assert_eq!(read_cstr(&s.detail), "offline: connection refused");
    }
}
