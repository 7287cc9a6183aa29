//! Shared by the `export_*` tests: a recording made of real segments (shared codec, synthetic
//! robots' values, PointCloud2 and a nested custom type), the values every message must export
//! to (as JSON), and running the exporter and the Python readers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use exporter::fixtures::{mission_definition, point_cloud2_definition, MISSION_TYPE};
use exporter::plan::Plan;
use exporter::value::{encode, Value};
use ingest::synthetic::{cdr, definition, values};
use serde_json::{json, Value as Json};
use shared::plane::MessageHeader;
use shared::segment::{encode_footer, encode_message, encode_topic, SegmentHeader, SegmentManifest, SummaryBuilder};
use shared::topic::{topic_id, TopicInfo};

/// Messages per topic.
pub const PER_TOPIC: u64 = 12;
/// Receive time of sequence 0 of robot 0.
pub const BASE_NS: u64 = 1_700_000_000_000_000_000;
/// 100 Hz.
pub const PERIOD_NS: u64 = 10_000_000;
/// Robots of the recording.
pub const ROBOTS: [&str; 2] = ["robot1", "robot2"];
/// Topic of the hostile name.
pub const HOSTILE: &str = "/../../etc/x";

/// One recorded message and what it must export to.
#[derive(Debug, Clone)]
pub struct Expected {
    pub robot: String,
    pub topic: String,
    pub type_name: String,
    pub sequence: u64,
    pub receive_ns: u64,
    pub publish_ns: u64,
    /// The message as JSON: structs as objects, arrays and byte arrays as arrays.
    pub value: Json,
}

/// A recording folder and every message it holds (in order), minus the one made corrupt.
pub struct Recording {
    pub dir: tempfile::TempDir,
    pub messages: Vec<Expected>,
}

impl Recording {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Expected messages of one robot's topic, in sequence order.
    pub fn topic(&self, robot: &str, topic: &str) -> Vec<&Expected> {
        self.messages.iter().filter(|m| m.robot == robot && m.topic == topic).collect()
    }
}

fn header_json(h: &cdr::Header) -> Json {
    json!({"stamp": {"sec": h.stamp.sec, "nanosec": h.stamp.nanosec}, "frame_id": h.frame_id})
}

fn xyz(x: f64, y: f64, z: f64) -> Json {
    json!({"x": x, "y": y, "z": z})
}

fn quat(q: &cdr::Quaternion) -> Json {
    json!({"x": q.x, "y": q.y, "z": q.z, "w": q.w})
}

/// JSON of a dynamic value (the generators of PointCloud2 and the custom type).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Bool(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U8(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::F32(x) => json!(f64::from(*x)),
        Value::F64(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(b),
        Value::Array(a) => Json::Array(a.iter().map(value_json).collect()),
        Value::Struct(f) => Json::Object(f.iter().map(|(k, v)| (k.clone(), value_json(v))).collect()),
    }
}

fn s(fields: Vec<(&str, Value)>) -> Value {
    Value::Struct(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn header_value(robot: u16, link: &str, stamp_ns: u64) -> Value {
    let t = cdr::Time::from_nanos(stamp_ns);
    s(vec![
        ("stamp", s(vec![("sec", Value::I32(t.sec)), ("nanosec", Value::U32(t.nanosec))])),
        ("frame_id", Value::String(values::frame_id(robot, link))),
    ])
}

/// A PointCloud2 of `seq % 3 + 1` points of x, y, z float32.
pub fn point_cloud(robot: u16, seq: u64, stamp_ns: u64) -> Value {
    let n = (seq % 3 + 1) as u32;
    let mut data = Vec::new();
    for i in 0..n {
        for k in 0..3u32 {
            let v = robot as f32 + seq as f32 * 0.5 + (i * 3 + k) as f32 * 0.25;
            data.extend_from_slice(&v.to_le_bytes());
        }
    }
    let field = |name: &str, off: u32| {
        s(vec![
            ("name", Value::String(name.into())),
            ("offset", Value::U32(off)),
            ("datatype", Value::U8(7)),
            ("count", Value::U32(1)),
        ])
    };
    s(vec![
        ("header", header_value(robot, "lidar", stamp_ns)),
        ("height", Value::U32(1)),
        ("width", Value::U32(n)),
        ("fields", Value::Array(vec![field("x", 0), field("y", 4), field("z", 8)])),
        ("is_bigendian", Value::Bool(false)),
        ("point_step", Value::U32(12)),
        ("row_step", Value::U32(12 * n)),
        ("data", Value::Bytes(data)),
        ("is_dense", Value::Bool(seq.is_multiple_of(2))),
    ])
}

fn waypoint(robot: u16, seq: u64, i: u64) -> Value {
    let f = robot as f64 * 100.0 + seq as f64 + i as f64 * 0.125;
    s(vec![
        ("position", s(vec![("x", Value::F64(f)), ("y", Value::F64(-f)), ("z", Value::F64(0.5))])),
        ("speed", Value::F64(1.0 + i as f64)),
        ("label", Value::String(format!("wp{i}"))),
        ("blob", Value::Bytes((0..(i % 3) as u8).collect())),
        ("ids", Value::Array(vec![Value::I32(i as i32), Value::I32(-(seq as i32))])),
    ])
}

/// The nested custom type: arrays of nested structs of every array kind.
pub fn mission(robot: u16, seq: u64, stamp_ns: u64) -> Value {
    s(vec![
        ("header", header_value(robot, "map", stamp_ns)),
        ("name", Value::String(format!("mission {seq}, \"quoted\""))),
        ("waypoints", Value::Array((0..seq % 4).map(|i| waypoint(robot, seq, i)).collect())),
        ("corners", Value::Array(vec![waypoint(robot, seq, 10), waypoint(robot, seq, 11)])),
        ("extras", Value::Array((0..seq % 2).map(|i| waypoint(robot, seq, 20 + i)).collect())),
        ("scale", Value::Array(vec![Value::F32(1.5), Value::F32(-0.1), Value::F32(seq as f32)])),
        ("small", Value::Array((0..seq % 5).map(|i| Value::I16(-(i as i16))).collect())),
        ("e", s(vec![("structure_needs_at_least_one_member", Value::U8(0))])),
        ("flags", Value::Array(vec![Value::Bool(true), Value::Bool(seq % 2 == 1)])),
        ("tag", Value::Bytes(vec![1, 2, 3, seq as u8])),
        ("c", Value::U8(b'A' + (seq % 26) as u8)),
        ("i8", Value::I8(-(seq as i8))),
        ("u16", Value::U16(60_000 + seq as u16)),
        ("i64", Value::I64(-(1i64 << 40) - seq as i64)),
        ("u64", Value::U64(u64::MAX - seq)),
        ("tags", Value::Array(vec![Value::String("a,b".into()), Value::String(format!("t{seq}"))])),
    ])
}

/// (topic suffix, type, definition) of every topic of each robot.
pub fn topics() -> Vec<(&'static str, &'static str, String)> {
    let def = |t| definition(t).unwrap().to_string();
    vec![
        ("imu", "sensor_msgs/msg/Imu", def("sensor_msgs/msg/Imu")),
        ("scan", "sensor_msgs/msg/LaserScan", def("sensor_msgs/msg/LaserScan")),
        ("pose", "geometry_msgs/msg/PoseStamped", def("geometry_msgs/msg/PoseStamped")),
        ("camera/image_raw", "sensor_msgs/msg/Image", def("sensor_msgs/msg/Image")),
        ("chatter", "std_msgs/msg/String", def("std_msgs/msg/String")),
        ("points", "sensor_msgs/msg/PointCloud2", point_cloud2_definition()),
        ("mission", MISSION_TYPE, mission_definition()),
    ]
}

/// The payload and expected JSON of one message.
pub fn make(type_name: &str, def: &str, robot: u16, seq: u64, stamp: u64) -> (Vec<u8>, Json) {
    match type_name {
        "sensor_msgs/msg/Imu" => {
            let m = values::imu(robot, seq, stamp);
            let j = json!({
                "header": header_json(&m.header),
                "orientation": quat(&m.orientation),
                "orientation_covariance": m.orientation_covariance,
                "angular_velocity": xyz(m.angular_velocity.x, m.angular_velocity.y, m.angular_velocity.z),
                "angular_velocity_covariance": m.angular_velocity_covariance,
                "linear_acceleration": xyz(m.linear_acceleration.x, m.linear_acceleration.y, m.linear_acceleration.z),
                "linear_acceleration_covariance": m.linear_acceleration_covariance,
            });
            (m.encode(), j)
        }
        "sensor_msgs/msg/LaserScan" => {
            let m = values::laser_scan(robot, seq, stamp, (seq % 4) as usize * 3);
            let f = |x: f32| f64::from(x);
            let j = json!({
                "header": header_json(&m.header),
                "angle_min": f(m.angle_min), "angle_max": f(m.angle_max), "angle_increment": f(m.angle_increment),
                "time_increment": f(m.time_increment), "scan_time": f(m.scan_time),
                "range_min": f(m.range_min), "range_max": f(m.range_max),
                "ranges": m.ranges.iter().map(|x| f(*x)).collect::<Vec<_>>(),
                "intensities": m.intensities.iter().map(|x| f(*x)).collect::<Vec<_>>(),
            });
            (m.encode(), j)
        }
        "geometry_msgs/msg/PoseStamped" => {
            let m = values::pose_stamped(robot, seq, stamp);
            let p = &m.pose.position;
            let j = json!({"header": header_json(&m.header), "pose": {"position": xyz(p.x, p.y, p.z), "orientation": quat(&m.pose.orientation)}});
            (m.encode(), j)
        }
        "sensor_msgs/msg/Image" => {
            let m = values::image(robot, seq, stamp, 4, 3);
            let j = json!({"header": header_json(&m.header), "height": m.height, "width": m.width, "encoding": m.encoding,
                "is_bigendian": m.is_bigendian, "step": m.step, "data": m.data});
            (m.encode(), j)
        }
        "std_msgs/msg/String" => {
            let m = values::string(robot, seq, stamp);
            let j = json!({"data": m.data});
            (m.encode(), j)
        }
        t => {
            let v = if t == MISSION_TYPE { mission(robot, seq, stamp) } else { point_cloud(robot, seq, stamp) };
            let plan = Plan::compile(t, def).unwrap();
            // robot2's custom messages are big endian, as some DDS vendors send them.
            (encode(&plan, &v, robot.is_multiple_of(2)).unwrap(), value_json(&v))
        }
    }
}

pub fn info(robot_id: u16, name: &str, type_name: &str, def: &str) -> TopicInfo {
    let robot = ROBOTS[robot_id as usize];
    TopicInfo {
        topic_id: topic_id(robot, name, type_name),
        robot_id,
        robot: robot.into(),
        name: name.into(),
        type_name: type_name.into(),
        type_hash: String::new(),
        encoding: "ros2msg".into(),
        definition: def.into(),
        qos: "reliability: reliable\n".into(),
    }
}

pub struct SegmentBuilder {
    seq: u64,
    bytes: Vec<u8>,
    summary: SummaryBuilder,
    offsets: Vec<(String, u64, usize)>,
}

impl SegmentBuilder {
    pub fn new(seq: u64) -> SegmentBuilder {
        let session = [7u8; 16];
        let h = SegmentHeader {
            minor_version: 0,
            flags: 0,
            session_id: session,
            created_ns: BASE_NS,
            segment_seq: seq,
            robot_id: u16::MAX,
        };
        SegmentBuilder {
            seq,
            bytes: h.encode().to_vec(),
            summary: SummaryBuilder::new(seq, &session),
            offsets: Vec::new(),
        }
    }

    pub fn topic(&mut self, t: &TopicInfo) {
        encode_topic(&mut self.bytes, t);
        self.summary.add_topic(t);
    }

    pub fn message(&mut self, h: &MessageHeader, payload: &[u8], label: String) {
        let off = self.bytes.len();
        encode_message(&mut self.bytes, h, payload);
        self.summary.add_message(off as u64, h, payload.len() as u64);
        self.offsets.push((label, off as u64, payload.len()));
    }

    /// Writes the segment (sealed, with its sidecar manifest) into `dir`.
    pub fn seal(mut self, dir: &Path, corrupt: Option<&str>) -> PathBuf {
        if let Some(label) = corrupt {
            // Flip a payload byte: the record's CRC fails, the scan skips it.
            let (_, off, _) = self.offsets.iter().find(|(l, _, _)| l == label).unwrap();
            let at = *off as usize + 12 + 40 + 6;
            self.bytes[at] ^= 0x5a;
        }
        encode_footer(&mut self.bytes, &self.summary.build());
        let name = format!("seg-{:020}-07070707.wal", self.seq);
        let path = dir.join(&name);
        std::fs::write(&path, &self.bytes).unwrap();
        let (sha, size) = exporter::manifest::hash_file(&path).unwrap();
        let m = SegmentManifest::new(&name, size, sha, self.summary.build());
        std::fs::write(SegmentManifest::path_for(&path), serde_json::to_vec(&m).unwrap()).unwrap();
        path
    }
}

/// Label of the message made corrupt: robot1's imu, sequence 9 (in the second segment).
pub const CORRUPT: (&str, &str, u64) = ("robot1", "/robot1/imu", 9);

/// Makes the recording: 2 robots x 7 typed topics x [`PER_TOPIC`] messages in 2 sealed segments,
/// plus robot1's `/robot1/blob` without a definition and robot1's hostile topic name; one message
/// ([`CORRUPT`]) damaged; and an unsealed third segment (skipped unless asked).
pub fn recording() -> Recording {
    let dir = tempfile::tempdir().unwrap();
    let mut messages = Vec::new();
    let mut segs = vec![SegmentBuilder::new(1), SegmentBuilder::new(2)];
    let topics = topics();
    for (si, seg) in segs.iter_mut().enumerate() {
        let seqs = if si == 0 { 1..=PER_TOPIC / 2 } else { PER_TOPIC / 2 + 1..=PER_TOPIC };
        // every segment repeats the definitions, as the writer does
        for robot_id in 0..ROBOTS.len() as u16 {
            for (suffix, t, def) in &topics {
                seg.topic(&info(robot_id, &format!("/{}/{suffix}", ROBOTS[robot_id as usize]), t, def));
            }
        }
        seg.topic(&info(0, HOSTILE, "std_msgs/msg/String", definition("std_msgs/msg/String").unwrap()));
        seg.topic(&info(0, "/robot1/blob", "custom_msgs/msg/Blob", ""));
        for seq in seqs {
            for robot_id in 0..ROBOTS.len() as u16 {
                let robot = ROBOTS[robot_id as usize];
                let vr = robot_id + 1;
                let mut all: Vec<(String, &str, String)> =
                    topics.iter().map(|(sfx, t, d)| (format!("/{robot}/{sfx}"), *t, d.clone())).collect();
                if robot_id == 0 {
                    all.push((
                        HOSTILE.into(),
                        "std_msgs/msg/String",
                        definition("std_msgs/msg/String").unwrap().into(),
                    ));
                }
                for (ti, (name, t, def)) in all.iter().enumerate() {
                    let recv = BASE_NS + u64::from(robot_id) * 1000 + seq * PERIOD_NS + ti as u64;
                    let stamp = recv - 500;
                    let (payload, value) = make(t, def, vr, seq, stamp);
                    let h = MessageHeader {
                        topic_id: topic_id(robot, name, t),
                        robot_id,
                        flags: 0,
                        sequence: seq,
                        receive_time_ns: recv,
                        publish_time_ns: stamp,
                        ingest_session: 3,
                        payload_len: 0,
                    };
                    seg.message(&h, &payload, format!("{robot}|{name}|{seq}"));
                    if (robot, name.as_str(), seq) != CORRUPT {
                        messages.push(Expected {
                            robot: robot.into(),
                            topic: name.clone(),
                            type_name: t.to_string(),
                            sequence: seq,
                            receive_ns: recv,
                            publish_ns: stamp,
                            value,
                        });
                    }
                }
                if robot_id == 0 {
                    let h = MessageHeader {
                        topic_id: topic_id(robot, "/robot1/blob", "custom_msgs/msg/Blob"),
                        robot_id,
                        sequence: seq,
                        receive_time_ns: BASE_NS + seq * PERIOD_NS + 99,
                        publish_time_ns: 0,
                        ingest_session: 3,
                        ..MessageHeader::default()
                    };
                    seg.message(&h, &[0, 1, 0, 0, seq as u8, 0xee], format!("blob{seq}"));
                }
            }
        }
    }
    let label = format!("{}|{}|{}", CORRUPT.0, CORRUPT.1, CORRUPT.2);
    let second = segs.pop().unwrap();
    segs.pop().unwrap().seal(dir.path(), None);
    second.seal(dir.path(), Some(&label));
    // An unsealed segment (no manifest), as the writer leaves while it writes.
    let mut open = SegmentBuilder::new(3);
    open.topic(&info(1, "/robot2/chatter", "std_msgs/msg/String", definition("std_msgs/msg/String").unwrap()));
    let h = MessageHeader {
        topic_id: topic_id("robot2", "/robot2/chatter", "std_msgs/msg/String"),
        robot_id: 1,
        sequence: PER_TOPIC + 1,
        receive_time_ns: BASE_NS + 10_000 * PERIOD_NS,
        ingest_session: 3,
        ..MessageHeader::default()
    };
    open.message(&h, &values::string(2, PER_TOPIC + 1, 0).encode(), "open".into());
    std::fs::write(dir.path().join("seg-00000000000000000003-07070707.wal"), &open.bytes).unwrap();
    Recording { dir, messages }
}

/// Path of `fleetrec-exporter`, built if needed.
pub fn exporter_bin() -> PathBuf {
    fleetrec_tests::bin("exporter")
}

/// Runs `fleetrec-exporter export` with extra args; panics with its stderr if it fails.
pub fn run_export(input: &Path, out: &Path, format: &str, extra: &[&str]) -> exporter::ExportManifest {
    let o = Command::new(exporter_bin())
        .args(["export", "--quiet", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--format", format])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "exporter failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// The venv's python, installing the readers first if the venv is missing.
pub fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let venv = std::env::var_os("FLEETREC_PY_VENV").map(PathBuf::from).unwrap_or_else(|| root.join("target/py-venv"));
    let venv = if venv.is_absolute() { venv } else { root.join(venv) };
    let py = venv.join("bin/python");
    let ready = venv.join(".fleetrec-py-readers");
    if !py.exists() || !ready.exists() {
        let st = Command::new("bash")
            .arg(root.join("scripts/install-py-readers.sh"))
            .env("FLEETREC_PY_VENV", &venv)
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "scripts/install-py-readers.sh failed");
    }
    py
}

/// Runs a Python snippet with args; returns the JSON it prints.
pub fn run_python(code: &str, args: &[&Path]) -> Json {
    let o = Command::new(python()).arg("-c").arg(code).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Equality of JSON values where numbers compare by value (an integer-valued float read back as
/// an integer is equal; a float printed by Python as `f:<repr>` is parsed exactly), reporting the
/// path of the first difference.
pub fn assert_json_eq(got: &Json, want: &Json, path: &str) {
    json_eq(got, want, path, false);
}

/// [`assert_json_eq`] for values that went through text: a `float32` is written in its shortest
/// form, so it is equal when it rounds to the same `float32`.
pub fn assert_json_eq_text(got: &Json, want: &Json, path: &str) {
    json_eq(got, want, path, true);
}

fn float_eq(x: f64, want: f64, f32_text: bool) -> bool {
    x == want || (f32_text && f64::from(want as f32) == want && x as f32 == want as f32)
}

fn json_eq(got: &Json, want: &Json, path: &str, f32_text: bool) {
    match (got, want) {
        (Json::String(a), Json::Number(b)) if a.starts_with("f:") => {
            let x: f64 = a[2..].parse().unwrap();
            assert!(float_eq(x, b.as_f64().unwrap(), f32_text), "{path}: got {x:?}, want {b}");
        }
        (Json::Number(a), Json::Number(b)) => {
            let same = match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => float_eq(a.as_f64().unwrap(), b.as_f64().unwrap(), f32_text),
            };
            assert!(same, "{path}: got {a}, want {b}");
        }
        (Json::Array(a), Json::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: length (got {got}, want {want})");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_eq(x, y, &format!("{path}[{i}]"), f32_text);
            }
        }
        (Json::Object(a), Json::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            assert_eq!(ka, kb, "{path}: keys");
            for (k, y) in b {
                json_eq(&a[k], y, &format!("{path}.{k}"), f32_text);
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

/// Removes ROS 2's placeholder field of empty messages (the MCAP decoder shows them as `{}`).
pub fn without_placeholder(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "structure_needs_at_least_one_member")
                .map(|(k, x)| (k.clone(), without_placeholder(x)))
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.iter().map(without_placeholder).collect()),
        o => o.clone(),
    }
}

/// Flattens nested objects into dotted keys, stopping at arrays (the CSV layout).
pub fn flatten(v: &Json, prefix: &str, out: &mut serde_json::Map<String, Json>) {
    match v {
        Json::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(x, &key, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The expected table row: times, sequence, then the message's fields.
pub fn row(m: &Expected) -> Json {
    let mut r = m.value.as_object().cloned().unwrap_or_default();
    r.insert("receive_time_ns".into(), json!(m.receive_ns));
    r.insert("publish_time_ns".into(), json!(m.publish_ns));
    r.insert("sequence".into(), json!(m.sequence));
    Json::Object(r)
}

/// Output stem of a robot's topic.
pub fn stem(robot: &str, topic: &str) -> String {
    exporter::names::topic_stem(robot, topic)
}
