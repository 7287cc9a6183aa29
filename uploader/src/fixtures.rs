//! Real sealed segments made with the shared codec (header, topic definitions, messages,
//! footer, then the sidecar manifest with the file's SHA-256, written atomically like the
//! writer does), for the uploader's tests and benchmark. In production the writer is the only
//! producer of segments; this module exists so the uploader can be tested without it.

use std::io::Write;
use std::path::Path;

use shared::plane::MessageHeader;
use shared::segment::{encode_footer, encode_message, encode_topic, SegmentHeader, SegmentManifest, SummaryBuilder};
use shared::topic::TopicInfo;

use crate::digest::sha256_hex;
use crate::error::{Result, UploadError};
use crate::journal::write_atomic;
use crate::sealed::hex;

/// What segment to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureSegment {
    /// Segment sequence number (also in the file name).
    pub seq: u64,
    /// Writer session id.
    pub session: [u8; 16],
    /// Robots whose messages the segment holds (index in the pipeline, name). One robot: the
    /// header carries its id; several: `u16::MAX`.
    pub robots: Vec<(u16, String)>,
    /// Approximate size: messages are added until the segment reaches this many bytes.
    pub target_size: u64,
    /// Payload bytes per message.
    pub message_size: usize,
    /// Seed of the payload bytes (different seeds, different content).
    pub seed: u64,
}

impl FixtureSegment {
    /// A one-robot segment of about `target_size` bytes.
    pub fn new(seq: u64, robot: &str, target_size: u64) -> Self {
        FixtureSegment {
            seq,
            session: [0x5e; 16],
            robots: vec![(0, robot.to_string())],
            target_size,
            message_size: 64 * 1024,
            seed: seq,
        }
    }

    /// The file name: `seg-<seq, 10 digits>-<session, 8 hex>.wal` (sortable).
    pub fn file_name(&self) -> String {
        format!("seg-{:010}-{}.wal", self.seq, &hex(&self.session)[..8])
    }
}

/// A fast deterministic byte stream (xorshift64*), so payloads do not compress.
fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// Encodes the segment's bytes and its summary.
pub fn encode(spec: &FixtureSegment) -> (Vec<u8>, SegmentManifest) {
    let robot_id = match spec.robots.as_slice() {
        [(id, _)] => *id,
        _ => u16::MAX,
    };
    let created_ns = 1_700_000_000_000_000_000 + spec.seq * 1_000_000_000;
    let header = SegmentHeader {
        minor_version: shared::segment::consts::MINOR_VERSION,
        flags: 0,
        session_id: spec.session,
        created_ns,
        segment_seq: spec.seq,
        robot_id,
    };
    let mut out = header.encode().to_vec();
    let mut summary = SummaryBuilder::new(spec.seq, &spec.session);
    let topics: Vec<TopicInfo> = spec
        .robots
        .iter()
        .map(|(id, robot)| {
            let name = format!("/{robot}/data");
            let type_name = "std_msgs/msg/String".to_string();
            TopicInfo {
                topic_id: shared::topic::topic_id(robot, &name, &type_name),
                robot_id: *id,
                robot: robot.clone(),
                name,
                type_name,
                type_hash: String::new(),
                encoding: "ros2msg".into(),
                definition: "string data\n".into(),
                qos: String::new(),
            }
        })
        .collect();
    for t in &topics {
        encode_topic(&mut out, t);
        summary.add_topic(t);
    }
    let mut state = spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut payload = vec![0u8; spec.message_size.max(8)];
    let mut seq = 0u64;
    while (out.len() as u64) < spec.target_size && !topics.is_empty() {
        let t = &topics[(seq as usize) % topics.len()];
        seq += 1;
        // A CDR string: encapsulation header, length, bytes (content is random, which CDR allows
        // for this test data; the uploader never decodes payloads).
        fill(&mut payload, &mut state);
        payload[0..4].copy_from_slice(&[0, 1, 0, 0]);
        let h = MessageHeader {
            topic_id: t.topic_id,
            robot_id: t.robot_id,
            flags: 0,
            sequence: seq,
            receive_time_ns: created_ns + seq * 1_000_000,
            publish_time_ns: created_ns + seq * 1_000_000,
            ingest_session: 1,
            payload_len: 0,
        };
        let offset = out.len() as u64;
        encode_message(&mut out, &h, &payload);
        summary.add_message(offset, &h, payload.len() as u64);
    }
    let s = summary.build();
    encode_footer(&mut out, &s);
    let manifest = SegmentManifest::new(&spec.file_name(), out.len() as u64, sha256_hex(&out), s);
    (out, manifest)
}

/// Writes the segment (fsynced) and then its sidecar manifest (atomically) into `dir`, exactly
/// as a writer seals. Returns the manifest.
pub fn write_sealed(dir: &Path, spec: &FixtureSegment) -> Result<SegmentManifest> {
    std::fs::create_dir_all(dir).map_err(|e| UploadError::io(dir, e))?;
    let (bytes, manifest) = encode(spec);
    let path = dir.join(spec.file_name());
    let mut f = std::fs::File::create(&path).map_err(|e| UploadError::io(&path, e))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| UploadError::io(&path, e))?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| UploadError::BadFile { path: path.clone(), reason: e.to_string() })?;
    write_atomic(&SegmentManifest::path_for(&path), &json)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::segment::{scan, ScanMode};

    #[test]
    fn fixture_is_a_valid_sealed_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = FixtureSegment::new(3, "robot1", 300_000);
        spec.robots.push((1, "robot2".into()));
        let m = write_sealed(dir.path(), &spec).unwrap();
        let bytes = std::fs::read(dir.path().join(spec.file_name())).unwrap();
        assert_eq!(m.size, bytes.len() as u64);
        assert_eq!(m.sha256, sha256_hex(&bytes));
        let r = scan(&bytes, ScanMode::StopAtFirstError).unwrap();
        assert!(r.sealed);
        assert_eq!(r.header.robot_id, u16::MAX);
        assert_eq!(m.summary.topics.len(), 2);
        assert!(m.summary.messages >= 4);
        let names = crate::sealed::list_sealed(dir.path()).unwrap();
        assert_eq!(names, vec![spec.file_name()]);
        let seg = crate::sealed::load_sealed(dir.path(), &names[0], &[]).unwrap();
        assert_eq!(seg.robot, crate::sealed::MIXED_ROBOT);
        assert_eq!(seg.session, hex(&[0x5e; 16]));
    }
}
