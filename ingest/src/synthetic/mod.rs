//! Simulated robots: real ROS 2 message types encoded as real CDR, with their full `.msg`
//! definitions (shipped in `ingest/msgs/`), published under `/<robot>/...` at configured rates.
//! Every value is a pure function of (robot, sequence, stamp) (see [`values`]), so a consumer
//! can regenerate and compare what it received.

pub mod cdr;
pub mod values;

use std::time::{Duration, Instant};

use shared::config::{Config, SyntheticTopic};

use crate::forward::{Forwarder, TopicHandle};

/// The full definition (`ros2msg`, with dependencies) of a synthetic type.
pub fn definition(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        "sensor_msgs/msg/Imu" => include_str!("../../msgs/sensor_msgs__msg__Imu.msg"),
        "sensor_msgs/msg/LaserScan" => include_str!("../../msgs/sensor_msgs__msg__LaserScan.msg"),
        "geometry_msgs/msg/PoseStamped" => include_str!("../../msgs/geometry_msgs__msg__PoseStamped.msg"),
        "sensor_msgs/msg/Image" => include_str!("../../msgs/sensor_msgs__msg__Image.msg"),
        "std_msgs/msg/String" => include_str!("../../msgs/std_msgs__msg__String.msg"),
        _ => return None,
    })
}

/// The robot number used inside generated values (frame ids `robot<N>/...`): robot id + 1.
pub fn value_robot(robot_id: u16) -> u16 {
    robot_id.saturating_add(1)
}

/// Encodes the synthetic message of `spec` for (robot id, seq, stamp).
pub fn encode(spec: &SyntheticTopic, robot_id: u16, seq: u64, stamp_ns: u64) -> Vec<u8> {
    let r = value_robot(robot_id);
    match spec.r#type.as_str() {
        "sensor_msgs/msg/Imu" => values::imu(r, seq, stamp_ns).encode(),
        "sensor_msgs/msg/LaserScan" => values::laser_scan(r, seq, stamp_ns, spec.size as usize).encode(),
        "geometry_msgs/msg/PoseStamped" => values::pose_stamped(r, seq, stamp_ns).encode(),
        "sensor_msgs/msg/Image" => {
            let w = spec.size.max(1);
            values::image(r, seq, stamp_ns, w, (w * 3 / 4).max(1)).encode()
        }
        _ => {
            let mut m = values::string(r, seq, stamp_ns);
            if spec.size as usize > m.data.len() {
                let pad = spec.size as usize - m.data.len();
                m.data.push_str(&".".repeat(pad));
            }
            m.encode()
        }
    }
}

struct Stream {
    handle: TopicHandle,
    robot_id: u16,
    spec: SyntheticTopic,
    period: Duration,
    next_due: Instant,
    sent: u64,
}

/// Longest a [`SyntheticSource::publish_due`] call publishes before it returns.
pub const BURST_BUDGET: Duration = Duration::from_millis(10);

/// The schedule of every simulated (robot, topic) stream.
pub struct SyntheticSource {
    streams: Vec<Stream>,
    max_per_topic: u64,
    deadline: Option<Instant>,
    /// The stream a [`SyntheticSource::publish_due`] call starts with.
    next_stream: usize,
}

impl std::fmt::Debug for SyntheticSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticSource").field("streams", &self.streams.len()).finish()
    }
}

/// Topic QoS text announced for synthetic topics.
pub const SYNTHETIC_QOS: &str = "reliability: reliable\ndurability: volatile\nhistory: keep_last\ndepth: 10\n";

impl SyntheticSource {
    /// Announces every topic of every robot and schedules them.
    pub fn new(config: &Config, fwd: &mut Forwarder) -> SyntheticSource {
        let start = Instant::now();
        let mut streams = Vec::new();
        let robots = fwd.robots().to_vec();
        for (robot_id, robot) in robots.iter().enumerate() {
            let robot_id = robot_id as u16;
            for spec in &config.synthetic.topics {
                let name = format!("/{robot}/{}", spec.name);
                let def = definition(&spec.r#type).unwrap_or_default();
                let handle = fwd.announce(robot_id, &name, &spec.r#type, def, SYNTHETIC_QOS);
                let hz = spec.rate_hz * config.synthetic.rate_scale;
                streams.push(Stream {
                    handle,
                    robot_id,
                    spec: spec.clone(),
                    period: Duration::from_secs_f64(1.0 / hz),
                    next_due: start,
                    sent: 0,
                });
            }
        }
        let deadline =
            (config.synthetic.duration_s > 0).then(|| start + Duration::from_secs(config.synthetic.duration_s));
        SyntheticSource { streams, max_per_topic: config.synthetic.max_messages_per_topic, deadline, next_stream: 0 }
    }

    /// Whether the configured duration or message count is reached.
    pub fn finished(&self) -> bool {
        let now = Instant::now();
        self.deadline.is_some_and(|d| now >= d)
            || (self.max_per_topic > 0 && self.streams.iter().all(|s| s.sent >= self.max_per_topic))
    }

    /// Publishes the messages that are due (catching up at most one second of backlog per
    /// stream; older backlog is skipped and logged, because a simulation has no real data to
    /// lose), for at most [`BURST_BUDGET`]: a source offered faster than it can publish still
    /// returns often enough for status and control requests. Returns the time of the next due
    /// message (now, if some are still due).
    pub fn publish_due(&mut self, fwd: &mut Forwarder, paused: bool) -> Instant {
        let now = Instant::now();
        let mut next = now + Duration::from_millis(100);
        let mut published = 0u32;
        let mut out_of_time = false;
        let n = self.streams.len();
        // Round robin: a call that ran out of time goes on with the next stream next time.
        let first = self.next_stream % n.max(1);
        for i in (first..n).chain(0..first) {
            let s = &mut self.streams[i];
            if now.duration_since(s.next_due) > Duration::from_secs(1) {
                tracing::warn!(topic = ?fwd.topic(s.handle).map(|t| &t.name), "synthetic source fell behind by > 1 s, skipping ahead");
                s.next_due = now;
            }
            while !out_of_time && s.next_due <= now && (self.max_per_topic == 0 || s.sent < self.max_per_topic) {
                s.next_due += s.period;
                if paused {
                    continue;
                }
                let stamp = shared::time::now_ns();
                // Sequence numbers are assigned by the forwarder: it is the next one.
                let seq = s.sent + 1;
                let payload = encode(&s.spec, s.robot_id, seq, stamp);
                s.sent += 1;
                let _ = fwd.forward(s.handle, stamp, &payload);
                published = published.wrapping_add(1);
                if published.is_multiple_of(256) && now.elapsed() >= BURST_BUDGET {
                    out_of_time = true;
                    self.next_stream = i + 1;
                }
            }
            if self.max_per_topic == 0 || s.sent < self.max_per_topic {
                next = next.min(s.next_due);
            }
        }
        fwd.wake();
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::plane::Plane;

    /// Offered far faster than it can publish (1 GHz per stream), the source still returns,
    /// and takes the streams in turn: no stream starves behind another's backlog.
    #[test]
    fn an_overloaded_source_returns_and_serves_every_stream() {
        let mut config = Config::default();
        config.pipeline.name = format!("synth-burst-{}", std::process::id());
        config.synthetic.robots = 2;
        config.synthetic.topics =
            vec![SyntheticTopic { name: "fast".into(), r#type: "std_msgs/msg/String".into(), rate_hz: 1e9, size: 8 }];
        let plane = Plane::open("synth-test", &config.pipeline).unwrap();
        let mut fwd = Forwarder::new(&plane, config.robot_names()).unwrap();
        let mut synth = SyntheticSource::new(&config, &mut fwd);
        std::thread::sleep(Duration::from_millis(50));
        let mut after = Vec::new();
        for _ in 0..2 {
            let next = synth.publish_due(&mut fwd, false);
            assert!(next <= Instant::now(), "messages are still due");
            after.push(synth.streams.iter().map(|s| s.sent).collect::<Vec<_>>());
        }
        // Call 1 ran out of time within the first stream's 50 M due messages; call 2 went on
        // with the second stream.
        assert_eq!(after[0][1], 0, "{after:?}");
        assert!(after[1][1] > 0, "the second stream starved: {after:?}");
        assert!(after[1][0] < 50_000_000, "{after:?}");
        // Nobody subscribes: every message is dropped and counted.
        assert_eq!(fwd.dropped(), after[1].iter().sum::<u64>());
    }
}
