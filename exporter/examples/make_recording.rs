//! Writes a synthetic recording of about SIZE_MB megabytes (sealed segments of 64 MiB with
//! sidecar manifests) for `scripts/bench-exporter.sh`: 2 robots publishing Imu, LaserScan (720
//! ranges), PoseStamped, String, Image (160x120 rgb8) and PointCloud2 (64 points), real CDR.
//! Usage: `make_recording DIR SIZE_MB`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use exporter::fixtures::point_cloud2_definition;
use exporter::plan::Plan;
use exporter::value::{encode, Value};
use ingest::synthetic::{definition, values};
use shared::plane::MessageHeader;
use shared::segment::{encode_footer, encode_message, encode_topic, SegmentHeader, SegmentManifest, SummaryBuilder};
use shared::topic::{topic_id, TopicInfo};

const SEGMENT: usize = 64 << 20;

struct Seg {
    seq: u64,
    bytes: Vec<u8>,
    summary: SummaryBuilder,
}

fn open(seq: u64, topics: &[TopicInfo]) -> Seg {
    let session = [9u8; 16];
    let h = SegmentHeader {
        minor_version: 0,
        flags: 0,
        session_id: session,
        created_ns: 0,
        segment_seq: seq,
        robot_id: u16::MAX,
    };
    let mut s = Seg { seq, bytes: h.encode().to_vec(), summary: SummaryBuilder::new(seq, &session) };
    for t in topics {
        encode_topic(&mut s.bytes, t);
        s.summary.add_topic(t);
    }
    s
}

fn seal(dir: &std::path::Path, mut s: Seg) {
    encode_footer(&mut s.bytes, &s.summary.build());
    let name = format!("seg-{:020}-09090909.wal", s.seq);
    let path = dir.join(&name);
    std::fs::write(&path, &s.bytes).unwrap();
    let (sha, size) = exporter::manifest::hash_file(&path).unwrap();
    let m = SegmentManifest::new(&name, size, sha, s.summary.build());
    std::fs::write(SegmentManifest::path_for(&path), serde_json::to_vec(&m).unwrap()).unwrap();
}

fn cloud(robot: u16, seq: u64) -> Value {
    let f = |n: &str, o: u32| {
        Value::Struct(vec![
            ("name".into(), Value::String(n.into())),
            ("offset".into(), Value::U32(o)),
            ("datatype".into(), Value::U8(7)),
            ("count".into(), Value::U32(1)),
        ])
    };
    let data: Vec<u8> = (0..64 * 3).flat_map(|i| (i as f32 + seq as f32).to_le_bytes()).collect();
    Value::Struct(vec![
        (
            "header".into(),
            Value::Struct(vec![
                (
                    "stamp".into(),
                    Value::Struct(vec![("sec".into(), Value::I32(seq as i32)), ("nanosec".into(), Value::U32(0))]),
                ),
                ("frame_id".into(), Value::String(format!("robot{robot}/lidar"))),
            ]),
        ),
        ("height".into(), Value::U32(1)),
        ("width".into(), Value::U32(64)),
        ("fields".into(), Value::Array(vec![f("x", 0), f("y", 4), f("z", 8)])),
        ("is_bigendian".into(), Value::Bool(false)),
        ("point_step".into(), Value::U32(12)),
        ("row_step".into(), Value::U32(768)),
        ("data".into(), Value::Bytes(data)),
        ("is_dense".into(), Value::Bool(true)),
    ])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: make_recording DIR SIZE_MB"));
    let size_mb: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1100);
    std::fs::create_dir_all(&dir).unwrap();
    let pc2 = point_cloud2_definition();
    let pc2_plan = Plan::compile("sensor_msgs/msg/PointCloud2", &pc2).unwrap();
    let kinds = [
        ("imu", "sensor_msgs/msg/Imu"),
        ("scan", "sensor_msgs/msg/LaserScan"),
        ("pose", "geometry_msgs/msg/PoseStamped"),
        ("chatter", "std_msgs/msg/String"),
        ("camera", "sensor_msgs/msg/Image"),
        ("points", "sensor_msgs/msg/PointCloud2"),
    ];
    let mut topics = Vec::new();
    for (rid, robot) in ["robot1", "robot2"].iter().enumerate() {
        for (n, t) in kinds {
            let name = format!("/{robot}/{n}");
            let def = if t.ends_with("PointCloud2") { pc2.clone() } else { definition(t).unwrap().to_string() };
            topics.push(TopicInfo {
                topic_id: topic_id(robot, &name, t),
                robot_id: rid as u16,
                robot: robot.to_string(),
                name,
                type_name: t.into(),
                type_hash: String::new(),
                encoding: "ros2msg".into(),
                definition: def,
                qos: String::new(),
            });
        }
    }
    let mut seg_seq = 1;
    let mut seg = open(seg_seq, &topics);
    let (mut total, mut messages) = (0u64, 0u64);
    let target = size_mb << 20;
    let base = 1_700_000_000_000_000_000u64;
    let mut tick = 0u64;
    while total < target {
        tick += 1;
        for t in &topics {
            let r = t.robot_id + 1;
            // imu and pose at 10x the rate of the others
            let every = if t.name.ends_with("imu") || t.name.ends_with("pose") { 1 } else { 10 };
            if !tick.is_multiple_of(every) {
                continue;
            }
            let seq = tick / every;
            let stamp = base + tick * 1_000_000;
            let payload = match t.type_name.as_str() {
                "sensor_msgs/msg/Imu" => values::imu(r, seq, stamp).encode(),
                "sensor_msgs/msg/LaserScan" => values::laser_scan(r, seq, stamp, 720).encode(),
                "geometry_msgs/msg/PoseStamped" => values::pose_stamped(r, seq, stamp).encode(),
                "std_msgs/msg/String" => values::string(r, seq, stamp).encode(),
                "sensor_msgs/msg/Image" => values::image(r, seq, stamp, 160, 120).encode(),
                _ => encode(&pc2_plan, &cloud(r, seq), false).unwrap(),
            };
            let h = MessageHeader {
                topic_id: t.topic_id,
                robot_id: t.robot_id,
                flags: 0,
                sequence: seq,
                receive_time_ns: stamp + 1000,
                publish_time_ns: stamp,
                ingest_session: 1,
                payload_len: 0,
            };
            let off = seg.bytes.len() as u64;
            encode_message(&mut seg.bytes, &h, &payload);
            seg.summary.add_message(off, &h, payload.len() as u64);
            total += payload.len() as u64;
            messages += 1;
            if seg.bytes.len() >= SEGMENT {
                seal(&dir, seg);
                seg_seq += 1;
                seg = open(seg_seq, &topics);
            }
        }
    }
    seal(&dir, seg);
    println!("{{\"messages\": {messages}, \"payload_bytes\": {total}, \"segments\": {seg_seq}}}");
}
