//! Typed records: what the body of each kind holds.

use super::consts::*;
use super::frame::{encode_frame, RecordRef, RecordSink};
use super::header::le_arr;
use super::summary::SegmentSummary;
use crate::plane::MessageHeader;
use crate::topic::TopicInfo;

/// A message record: the same fixed fields as the shared-memory [`MessageHeader`], then the
/// raw CDR payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRecord<'a> {
    /// Fixed fields (`payload_len` equals `payload.len()`).
    pub header: MessageHeader,
    /// Raw CDR bytes, exactly as received.
    pub payload: &'a [u8],
}

/// A checkpoint: written at each group commit boundary that starts a new batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// When written, ns since the epoch.
    pub created_ns: u64,
    /// Message records in the segment before this checkpoint.
    pub messages_before: u64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// Topic definition.
    Topic(TopicInfo),
    /// Message.
    Message(MessageRecord<'a>),
    /// Checkpoint.
    Checkpoint(Checkpoint),
    /// Footer of a sealed segment.
    Footer(Box<SegmentSummary>),
    /// A kind this build does not know: skipped.
    Unknown {
        /// The kind.
        kind: u16,
    },
}

/// A record whose CRC is fine but whose body does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record at offset {offset} (kind {kind}): {reason}")]
pub struct RecordError {
    /// Frame offset.
    pub offset: u64,
    /// Kind.
    pub kind: u16,
    /// What is wrong.
    pub reason: String,
}

impl<'a> Record<'a> {
    /// Parses the body of a framed record.
    pub fn decode(r: &RecordRef<'a>) -> Result<Record<'a>, RecordError> {
        let err = |reason: String| RecordError { offset: r.offset, kind: r.kind, reason };
        match r.kind {
            KIND_TOPIC => {
                let json = r.body.get(8..).ok_or_else(|| err("topic body shorter than 8 bytes".into()))?;
                TopicInfo::from_json_bytes(json).map(Record::Topic).map_err(|e| err(format!("topic JSON: {e}")))
            }
            KIND_MESSAGE => decode_message(r.body).map(Record::Message).ok_or_else(|| {
                err(format!("message body of {} bytes is inconsistent with its payload length", r.body.len()))
            }),
            KIND_CHECKPOINT => {
                let b = r.body.get(..16).ok_or_else(|| err("checkpoint body shorter than 16 bytes".into()))?;
                Ok(Record::Checkpoint(Checkpoint {
                    created_ns: u64::from_le_bytes(le_arr(&b[0..8])),
                    messages_before: u64::from_le_bytes(le_arr(&b[8..16])),
                }))
            }
            KIND_FOOTER => serde_json::from_slice(r.body)
                .map(|s| Record::Footer(Box::new(s)))
                .map_err(|e| err(format!("footer JSON: {e}"))),
            kind => Ok(Record::Unknown { kind }),
        }
    }
}

fn decode_message(b: &[u8]) -> Option<MessageRecord<'_>> {
    let f: &[u8; MESSAGE_FIXED_LEN] = b.get(..MESSAGE_FIXED_LEN)?.try_into().ok()?;
    let header = MessageHeader::from_le_bytes(f);
    let payload = &b[MESSAGE_FIXED_LEN..];
    (payload.len() == header.payload_len as usize).then_some(MessageRecord { header, payload })
}

/// Appends a message record. `header.payload_len` is set from `payload`.
pub fn encode_message<S: RecordSink + ?Sized>(out: &mut S, header: &MessageHeader, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let f = MessageHeader { payload_len: len, ..*header }.to_le_bytes();
    encode_frame(out, KIND_MESSAGE, 0, &[&f, payload]);
}

/// Appends a topic-definition record.
pub fn encode_topic<S: RecordSink + ?Sized>(out: &mut S, topic: &TopicInfo) {
    let mut f = [0u8; 8];
    f[0..4].copy_from_slice(&topic.topic_id.to_le_bytes());
    f[4..6].copy_from_slice(&topic.robot_id.to_le_bytes());
    encode_frame(out, KIND_TOPIC, 0, &[&f, &topic.to_json_bytes()]);
}

/// Appends a checkpoint record.
pub fn encode_checkpoint<S: RecordSink + ?Sized>(out: &mut S, c: &Checkpoint) {
    encode_checkpoint_padded(out, c, 0);
}

/// Framed length of a checkpoint record with `padding` zero bytes after its fields.
pub const fn checkpoint_len(padding: usize) -> usize {
    FRAME_HEADER_LEN + CHECKPOINT_FIELDS_LEN + padding
}

/// Bytes of a checkpoint body's fields (`created_ns`, `messages_before`).
const CHECKPOINT_FIELDS_LEN: usize = 16;

/// Appends a checkpoint record whose body ends with `padding` zero bytes (readers ignore bytes
/// after the fields they know). The writer uses it to end a group commit on a block boundary,
/// which direct I/O needs.
pub fn encode_checkpoint_padded<S: RecordSink + ?Sized>(out: &mut S, c: &Checkpoint, padding: usize) {
    let mut f = [0u8; CHECKPOINT_FIELDS_LEN];
    f[0..8].copy_from_slice(&c.created_ns.to_le_bytes());
    f[8..16].copy_from_slice(&c.messages_before.to_le_bytes());
    if padding == 0 {
        encode_frame(out, KIND_CHECKPOINT, 0, &[&f]);
    } else {
        let zeros = vec![0u8; padding];
        encode_frame(out, KIND_CHECKPOINT, 0, &[&f, &zeros]);
    }
}

/// Zero bytes a checkpoint record starting at `offset` needs so that it, followed by `after`
/// more bytes, ends on a multiple of `align` (a power of two).
pub const fn checkpoint_padding(offset: u64, after: u64, align: u64) -> usize {
    let end = offset + checkpoint_len(0) as u64 + after;
    ((align - end % align) % align) as usize
}

/// Appends the footer record.
pub fn encode_footer<S: RecordSink + ?Sized>(out: &mut S, summary: &SegmentSummary) {
    let json = serde_json::to_vec(summary).unwrap_or_default();
    encode_frame(out, KIND_FOOTER, 0, &[&json]);
}

#[cfg(test)]
mod tests {
    use super::super::frame::decode_frame;
    use super::*;

    #[test]
    fn message_round_trip() {
        let h = MessageHeader {
            topic_id: 0xdead_beef,
            robot_id: 3,
            flags: 0,
            sequence: 77,
            receive_time_ns: 1_700_000_000_000_000_000,
            publish_time_ns: 1_699_999_999_000_000_000,
            ingest_session: 5,
            payload_len: 0,
        };
        let mut out = Vec::new();
        encode_message(&mut out, &h, b"\x00\x01\x00\x00cdr");
        assert_eq!(out.len(), FRAME_HEADER_LEN + MESSAGE_FIXED_LEN + 7);
        let r = decode_frame(&out, 0).unwrap();
        let Record::Message(m) = Record::decode(&r).unwrap() else { panic!("not a message") };
        assert_eq!(m.payload, b"\x00\x01\x00\x00cdr");
        assert_eq!(m.header, MessageHeader { payload_len: 7, ..h });
    }

    #[test]
    fn padded_checkpoint_ends_on_the_boundary_and_decodes() {
        for offset in [0u64, 64, 4095, 4096, 12_345] {
            for after in [0u64, 1, 300, 5000] {
                let pad = checkpoint_padding(offset, after, 4096);
                let mut out = Vec::new();
                let c = Checkpoint { created_ns: 9, messages_before: offset };
                encode_checkpoint_padded(&mut out, &c, pad);
                assert_eq!(out.len(), checkpoint_len(pad));
                assert_eq!((offset + out.len() as u64 + after) % 4096, 0, "offset {offset} after {after}");
                let r = decode_frame(&out, 0).unwrap();
                assert_eq!(Record::decode(&r).unwrap(), Record::Checkpoint(c));
            }
        }
    }

    #[test]
    fn unknown_kind_is_skipped_not_an_error() {
        let mut out = Vec::new();
        encode_frame(&mut out, 0x9000, 0, &[b"future"]);
        let r = decode_frame(&out, 0).unwrap();
        assert_eq!(Record::decode(&r).unwrap(), Record::Unknown { kind: 0x9000 });
    }
}
