//! Reading a segment back: owned records, never one that fails its CRC.
//!
//! [`read_segment`] scans with [`ScanMode::SkipCorrupt`]: a damaged record in the middle is
//! skipped when its length still leads to a valid record, and counted; a damaged tail ends the
//! read. Records whose CRC is fine but whose body does not parse are counted as undecodable.
//! Unknown record kinds are skipped (forward compatibility).

use std::path::{Path, PathBuf};

use shared::plane::MessageHeader;
use shared::segment::{
    scan, Checkpoint, Corruption, Record, RecordError, ScanMode, SegmentHeader, SegmentSummary, Tail,
};
use shared::topic::TopicInfo;

use crate::error::{io_err, Result, WriterError};

/// A message record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Offset of the record's frame in the segment.
    pub offset: u64,
    /// The fixed fields.
    pub header: MessageHeader,
    /// The payload (raw CDR).
    pub payload: Vec<u8>,
}

/// How reading a segment went.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadReport {
    /// File size.
    pub file_len: u64,
    /// End of the last valid record.
    pub valid_len: u64,
    /// The last valid record is a footer.
    pub sealed: bool,
    /// How the file ends.
    pub tail: Tail,
    /// Records skipped because their CRC failed.
    pub corrupt: Vec<Corruption>,
    /// Records with a valid CRC whose body does not parse.
    pub undecodable: Vec<RecordError>,
    /// Records of kinds this build does not know (skipped).
    pub unknown_kinds: u64,
    /// Valid records of every kind.
    pub records: u64,
}

/// A segment read back.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentContents {
    /// Path read.
    pub path: PathBuf,
    /// The header.
    pub header: SegmentHeader,
    /// Topic definitions, in file order (a topic may appear more than once).
    pub topics: Vec<TopicInfo>,
    /// Messages, in file order.
    pub messages: Vec<OwnedMessage>,
    /// Checkpoints, in file order.
    pub checkpoints: Vec<Checkpoint>,
    /// The footer's summary, if the segment is sealed.
    pub footer: Option<SegmentSummary>,
    /// What was found on the way.
    pub report: ReadReport,
}

/// Reads a segment file. Fails only if the file cannot be read or its header is not valid.
pub fn read_segment(path: &Path) -> Result<SegmentContents> {
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    decode_segment(path, &bytes)
}

/// Decodes a segment held in memory (`path` is only used in errors and the result).
pub fn decode_segment(path: &Path, bytes: &[u8]) -> Result<SegmentContents> {
    let scanned =
        scan(bytes, ScanMode::SkipCorrupt).map_err(|error| WriterError::Header { path: path.to_path_buf(), error })?;
    let mut topics = Vec::new();
    let mut messages = Vec::new();
    let mut checkpoints = Vec::new();
    let mut footer = None;
    let mut undecodable = Vec::new();
    let mut unknown_kinds = 0;
    for r in &scanned.records {
        match Record::decode(r) {
            Ok(Record::Topic(t)) => topics.push(t),
            Ok(Record::Message(m)) => {
                messages.push(OwnedMessage { offset: r.offset, header: m.header, payload: m.payload.to_vec() })
            }
            Ok(Record::Checkpoint(c)) => checkpoints.push(c),
            Ok(Record::Footer(s)) => footer = Some(*s),
            Ok(Record::Unknown { .. }) => unknown_kinds += 1,
            Err(e) => undecodable.push(e),
        }
    }
    if !scanned.sealed {
        footer = None;
    }
    Ok(SegmentContents {
        path: path.to_path_buf(),
        header: scanned.header,
        topics,
        messages,
        checkpoints,
        footer,
        report: ReadReport {
            file_len: bytes.len() as u64,
            valid_len: scanned.valid_len,
            sealed: scanned.sealed,
            tail: scanned.tail,
            corrupt: scanned.corrupt,
            undecodable,
            unknown_kinds,
            records: scanned.records.len() as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::segment::{encode_frame, encode_message, encode_topic};

    #[test]
    fn corrupt_and_unknown_records_are_never_returned() {
        let h = SegmentHeader {
            minor_version: 0,
            flags: 0,
            session_id: [3; 16],
            created_ns: 5,
            segment_seq: 1,
            robot_id: u16::MAX,
        };
        let mut b = h.encode().to_vec();
        let t = TopicInfo {
            topic_id: 1,
            robot_id: 0,
            robot: "r".into(),
            name: "/r/t".into(),
            type_name: "std_msgs/msg/String".into(),
            type_hash: String::new(),
            encoding: "ros2msg".into(),
            definition: "string data".into(),
            qos: String::new(),
        };
        encode_topic(&mut b, &t);
        let mut offsets = Vec::new();
        for seq in 1..=3u64 {
            offsets.push(b.len());
            let mh = MessageHeader { topic_id: 1, sequence: seq, ..Default::default() };
            encode_message(&mut b, &mh, &[seq as u8; 8]);
            encode_frame(&mut b, 0x8001, 0, &[b"extension"]);
        }
        // damage the payload of message 2
        b[offsets[1] + 12 + 40 + 2] ^= 0x10;
        let c = decode_segment(Path::new("x.wal"), &b).unwrap();
        assert_eq!(c.topics, vec![t]);
        let seqs: Vec<u64> = c.messages.iter().map(|m| m.header.sequence).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(c.messages[1].payload, vec![3u8; 8]);
        assert_eq!(c.report.corrupt.len(), 1);
        assert_eq!(c.report.corrupt[0].offset, offsets[1] as u64);
        assert_eq!(c.report.unknown_kinds, 3);
        assert!(!c.report.sealed);
    }
}
