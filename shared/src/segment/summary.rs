//! The segment summary (footer body and sidecar manifest): per-topic counts, sequence and time
//! ranges, and a sparse offset index. Built incrementally by the writer and by scans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::consts::*;
use super::frame::RecordRef;
use super::record::Record;
use crate::topic::TopicInfo;

/// Per-topic part of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// Topic id.
    pub topic_id: u32,
    /// Robot index.
    pub robot_id: u16,
    /// Robot name (empty when the definition was not in the segment).
    pub robot: String,
    /// Topic name.
    pub name: String,
    /// ROS type.
    pub type_name: String,
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// First sequence number.
    pub first_sequence: u64,
    /// Last sequence number.
    pub last_sequence: u64,
    /// First receive time, ns.
    pub first_ns: u64,
    /// Last receive time, ns.
    pub last_ns: u64,
    /// Offset of the first message record.
    pub first_offset: u64,
}

/// A sparse index entry: a message record offset and its receive time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Record offset.
    pub offset: u64,
    /// Receive time, ns.
    pub receive_ns: u64,
}

/// What a segment holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSummary {
    /// Segment sequence number.
    pub segment_seq: u64,
    /// Writer session id, hex.
    pub session_id: String,
    /// Records of every kind (without the footer).
    pub records: u64,
    /// Message records.
    pub messages: u64,
    /// Payload bytes of all messages.
    pub bytes: u64,
    /// First receive time, ns (0 when empty).
    pub first_ns: u64,
    /// Last receive time, ns.
    pub last_ns: u64,
    /// Per topic, ordered by topic id.
    pub topics: Vec<TopicSummary>,
    /// One entry about every [`INDEX_STRIDE`] bytes.
    pub index: Vec<IndexEntry>,
    /// Bytes cut from a torn tail when the segment was recovered (0 for a clean seal).
    pub recovered_cut_bytes: u64,
}

/// Sparse index granularity in bytes.
pub const INDEX_STRIDE: u64 = 1024 * 1024;

/// The sidecar manifest `<segment>.manifest.json`, written atomically when a segment is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentManifest {
    /// `"fleetrec-segment-manifest"`.
    pub format: String,
    /// Manifest version, 1.
    pub version: u32,
    /// Segment file name.
    pub segment: String,
    /// Segment size in bytes.
    pub size: u64,
    /// SHA-256 of the whole segment file, hex.
    pub sha256: String,
    /// fleetrec version that sealed it.
    pub fleetrec_version: String,
    /// The summary (same as the footer).
    pub summary: SegmentSummary,
}

/// Accumulates a [`SegmentSummary`] record by record.
#[derive(Debug, Default, Clone)]
pub struct SummaryBuilder {
    summary: SegmentSummary,
    topics: BTreeMap<u32, TopicSummary>,
    next_index_at: u64,
}

impl SummaryBuilder {
    /// A builder for segment `segment_seq` of session `session_id`.
    pub fn new(segment_seq: u64, session_id: &[u8; 16]) -> Self {
        let session_id = session_id.iter().map(|b| format!("{b:02x}")).collect();
        Self { summary: SegmentSummary { segment_seq, session_id, ..Default::default() }, ..Default::default() }
    }

    fn topic_entry(&mut self, topic_id: u32, robot_id: u16) -> &mut TopicSummary {
        self.topics.entry(topic_id).or_insert_with(|| TopicSummary {
            topic_id,
            robot_id,
            robot: String::new(),
            name: String::new(),
            type_name: String::new(),
            messages: 0,
            bytes: 0,
            first_sequence: 0,
            last_sequence: 0,
            first_ns: 0,
            last_ns: 0,
            first_offset: 0,
        })
    }

    /// Notes a topic definition.
    pub fn add_topic(&mut self, t: &TopicInfo) {
        self.summary.records += 1;
        let e = self.topic_entry(t.topic_id, t.robot_id);
        e.robot.clone_from(&t.robot);
        e.name.clone_from(&t.name);
        e.type_name.clone_from(&t.type_name);
    }

    /// Notes a message record written at `offset`.
    pub fn add_message(&mut self, offset: u64, h: &crate::plane::MessageHeader, payload_len: u64) {
        let s = &mut self.summary;
        s.records += 1;
        s.messages += 1;
        s.bytes += payload_len;
        if s.first_ns == 0 || h.receive_time_ns < s.first_ns {
            s.first_ns = h.receive_time_ns;
        }
        s.last_ns = s.last_ns.max(h.receive_time_ns);
        if offset >= self.next_index_at {
            s.index.push(IndexEntry { offset, receive_ns: h.receive_time_ns });
            self.next_index_at = offset + INDEX_STRIDE;
        }
        let e = self.topic_entry(h.topic_id, h.robot_id);
        if e.messages == 0 {
            e.first_sequence = h.sequence;
            e.first_ns = h.receive_time_ns;
            e.first_offset = offset;
        }
        e.messages += 1;
        e.bytes += payload_len;
        e.first_sequence = e.first_sequence.min(h.sequence);
        e.last_sequence = e.last_sequence.max(h.sequence);
        e.first_ns = e.first_ns.min(h.receive_time_ns);
        e.last_ns = e.last_ns.max(h.receive_time_ns);
    }

    /// Notes any other record.
    pub fn add_other(&mut self) {
        self.summary.records += 1;
    }

    /// Notes a scanned record of any kind (footers are not counted).
    pub fn add_record(&mut self, r: &RecordRef<'_>) {
        match Record::decode(r) {
            Ok(Record::Topic(t)) => self.add_topic(&t),
            Ok(Record::Message(m)) => self.add_message(r.offset, &m.header, m.payload.len() as u64),
            Ok(Record::Footer(_)) => {}
            _ => self.add_other(),
        }
    }

    /// Sets the bytes cut by recovery.
    pub fn set_recovered_cut(&mut self, bytes: u64) {
        self.summary.recovered_cut_bytes = bytes;
    }

    /// Messages so far.
    pub fn messages(&self) -> u64 {
        self.summary.messages
    }

    /// The summary so far.
    pub fn build(&self) -> SegmentSummary {
        let mut s = self.summary.clone();
        s.topics = self.topics.values().cloned().collect();
        s
    }
}

impl SegmentManifest {
    /// A manifest for segment file `segment` of `size` bytes with hash `sha256`.
    pub fn new(segment: &str, size: u64, sha256: String, summary: SegmentSummary) -> Self {
        Self {
            format: "fleetrec-segment-manifest".into(),
            version: 1,
            segment: segment.into(),
            size,
            sha256,
            fleetrec_version: env!("CARGO_PKG_VERSION").into(),
            summary,
        }
    }

    /// The manifest path of a segment path.
    pub fn path_for(segment: &std::path::Path) -> std::path::PathBuf {
        let mut s = segment.as_os_str().to_os_string();
        s.push(MANIFEST_SUFFIX);
        std::path::PathBuf::from(s)
    }
}
