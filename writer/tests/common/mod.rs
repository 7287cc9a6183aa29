//! Helpers shared by the writer's integration tests: deterministic topics and messages,
//! small-segment writer options, and reading a whole recording back.
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;
use shared::plane::MessageHeader;
use shared::segment::{encode_message, SegmentManifest};
use shared::topic::TopicInfo;
use writer::directory::{list_segments, manifest_path};
use writer::{read_segment, SegmentContents, SegmentWriter, WriterOptions};

pub const SESSION: u32 = 77;

/// Messages of a recording by (topic, ingest session, sequence): header, payload, segment.
pub type Recording = BTreeMap<(u32, u32, u64), (MessageHeader, Vec<u8>, PathBuf)>;

pub fn topic(id: u32, robot_id: u16, robot: &str, name: &str) -> TopicInfo {
    TopicInfo {
        topic_id: id,
        robot_id,
        robot: robot.into(),
        name: format!("/{robot}/{name}"),
        type_name: "std_msgs/msg/String".into(),
        type_hash: String::new(),
        encoding: "ros2msg".into(),
        definition: "string data\n".into(),
        qos: "reliability: reliable".into(),
    }
}

/// Three topics over two robots.
pub fn topics() -> Vec<TopicInfo> {
    vec![topic(11, 0, "robot1", "imu"), topic(12, 0, "robot1", "scan"), topic(21, 1, "robot2", "imu")]
}

/// A deterministic payload of `len` bytes for (topic, seq).
pub fn payload(topic: u32, seq: u64, len: usize) -> Vec<u8> {
    let mut x = (u64::from(topic) << 32) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn header(t: &TopicInfo, seq: u64) -> MessageHeader {
    MessageHeader {
        topic_id: t.topic_id,
        robot_id: t.robot_id,
        flags: 0,
        sequence: seq,
        receive_time_ns: 1_700_000_000_000_000_000 + seq * 1_000_000 + u64::from(t.topic_id),
        publish_time_ns: 1_700_000_000_000_000_000 + seq * 1_000_000,
        ingest_session: SESSION,
        payload_len: 0,
    }
}

/// Payload length used for message `seq` (varied, sometimes 0).
pub fn len_for(seq: u64) -> usize {
    ((seq * 37) % 900) as usize
}

/// Options with small segments and quick commits.
pub fn small_opts(dir: &Path) -> WriterOptions {
    WriterOptions {
        segment_size: 16 * 1024,
        commit_interval: Duration::from_millis(1),
        commit_bytes: 4 * 1024,
        probe_interval: Duration::from_millis(5),
        resume_headroom: 64 * 1024,
        ..WriterOptions::new(dir)
    }
}

pub fn open(opts: WriterOptions) -> SegmentWriter {
    SegmentWriter::open(opts).expect("open writer").0
}

/// Appends `seqs` of every topic (interleaved) and polls the writer now and then.
pub fn write_messages(w: &mut SegmentWriter, topics: &[TopicInfo], seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        for t in topics {
            let h = header(t, seq);
            let p = payload(t.topic_id, seq, len_for(seq));
            w.append(&h, &p).expect("append");
        }
        if seq % 16 == 0 {
            w.poll().expect("poll");
        }
    }
}

/// Every message of every segment of `dir`, keyed by (topic, session, seq); panics on a
/// duplicate.
pub fn all_messages(dir: &Path) -> Recording {
    let mut out = BTreeMap::new();
    for seg in list_segments(dir).unwrap() {
        let c = read_segment(&seg.path).unwrap();
        for m in c.messages {
            let key = (m.header.topic_id, m.header.ingest_session, m.header.sequence);
            let prev = out.insert(key, (m.header, m.payload, seg.path.clone()));
            assert!(prev.is_none(), "duplicate message {key:?} in {}", seg.path.display());
        }
    }
    out
}

/// Checks that `got` holds exactly `seqs` of every topic with the expected bytes.
pub fn assert_exact(got: &Recording, topics: &[TopicInfo], seqs: impl IntoIterator<Item = u64> + Clone) {
    let mut expected = 0;
    for t in topics {
        for seq in seqs.clone() {
            expected += 1;
            let (h, p, path) = got
                .get(&(t.topic_id, SESSION, seq))
                .unwrap_or_else(|| panic!("missing topic {} seq {seq}", t.topic_id));
            let want = payload(t.topic_id, seq, len_for(seq));
            assert_eq!(p, &want, "payload of topic {} seq {seq} in {}", t.topic_id, path.display());
            let mut hh = header(t, seq);
            hh.payload_len = want.len() as u32;
            assert_eq!(h, &hh);
        }
    }
    assert_eq!(got.len(), expected, "unexpected extra messages");
}

/// The manifest of a segment, checked against the file (size and SHA-256).
pub fn checked_manifest(segment: &Path) -> SegmentManifest {
    let m: SegmentManifest = serde_json::from_slice(&std::fs::read(manifest_path(segment)).unwrap()).unwrap();
    let bytes = std::fs::read(segment).unwrap();
    assert_eq!(m.size, bytes.len() as u64);
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(m.sha256, sha, "manifest hash of {}", segment.display());
    assert_eq!(m.segment, segment.file_name().unwrap().to_string_lossy());
    m
}

/// The framed bytes of a message record as the codec encodes it.
pub fn encoded(h: &MessageHeader, p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(&mut out, h, p);
    out
}

pub fn read_all(dir: &Path) -> Vec<SegmentContents> {
    list_segments(dir).unwrap().into_iter().map(|s| read_segment(&s.path).unwrap()).collect()
}

/// Routes the writer's logs to the test output (shown for failing tests, or with
/// `--nocapture`).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}
