//! Topic metadata: what ingest announces and what every segment repeats, so each segment can be
//! decoded alone.

use serde::{Deserialize, Serialize};

/// Everything needed to decode one topic's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Stable id, see [`topic_id`].
    pub topic_id: u32,
    /// Robot index in the pipeline's robot list.
    pub robot_id: u16,
    /// Robot name.
    pub robot: String,
    /// Full topic name, e.g. `/robot1/imu`.
    pub name: String,
    /// ROS type, e.g. `sensor_msgs/msg/Imu`.
    pub type_name: String,
    /// ROS type hash (`RIHS01_...`) where known, else empty.
    pub type_hash: String,
    /// Encoding of the message definition: `ros2msg` (concatenated `.msg` texts).
    pub encoding: String,
    /// Full message definition including all dependencies.
    pub definition: String,
    /// Offered QoS, as YAML-ish text (`reliability: reliable ...`), or empty.
    pub qos: String,
}

impl TopicInfo {
    /// Serializes for the topics service and the segment's topic-definition record.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses what [`TopicInfo::to_json_bytes`] wrote.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<TopicInfo, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The stable id of a topic: CRC32 of `robot \0 name \0 type`. The same topic gets the same id
/// across ingest restarts and across processes; ingest resolves the (unlikely) collisions.
pub fn topic_id(robot: &str, name: &str, type_name: &str) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(robot.as_bytes());
    h.update(&[0]);
    h.update(name.as_bytes());
    h.update(&[0]);
    h.update(type_name.as_bytes());
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = topic_id("robot1", "/robot1/imu", "sensor_msgs/msg/Imu");
        assert_eq!(a, topic_id("robot1", "/robot1/imu", "sensor_msgs/msg/Imu"));
        assert_ne!(a, topic_id("robot2", "/robot2/imu", "sensor_msgs/msg/Imu"));
        let mut h = crc32fast::Hasher::new();
        h.update(b"robot1\0/robot1/imu\0sensor_msgs/msg/Imu");
        assert_eq!(a, h.finalize());
    }

    #[test]
    fn json_round_trip() {
        let t = TopicInfo {
            topic_id: 7,
            robot_id: 1,
            robot: "r".into(),
            name: "/r/x".into(),
            type_name: "std_msgs/msg/String".into(),
            type_hash: String::new(),
            encoding: "ros2msg".into(),
            definition: "string data\n".into(),
            qos: String::new(),
        };
        assert_eq!(TopicInfo::from_json_bytes(&t.to_json_bytes()).unwrap(), t);
    }
}
