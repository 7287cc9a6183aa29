//! Group commit: a [`Batch`] is the run of records appended to one segment between two
//! commits. It is written with one io_uring chain ending in an `fdatasync`; its messages become
//! durable (and enter the watermark) only when that chain completed without error.
//!
//! A batch remembers where each message record lies in its buffer. Message records do not
//! depend on their position in a segment, so after a failed fsync or a full disk the very same
//! bytes are copied into a new segment ([`HeldMessages`]), preceded by fresh topic definitions.

use std::time::{Duration, Instant};

use shared::plane::MessageHeader;

use crate::uring::AlignedBuf;

/// One message record inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchedMessage {
    /// The message's fixed fields.
    pub(crate) header: MessageHeader,
    /// Start of the framed record in the buffer.
    pub(crate) start: usize,
    /// Length of the framed record.
    pub(crate) len: usize,
}

/// Records of one segment waiting for (or in) one group commit.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The segment the batch belongs to.
    pub(crate) seq: u64,
    /// File offset of `buf[0]`.
    pub(crate) file_offset: u64,
    /// The framed records (and, for the first batch of a segment, its header), block-aligned
    /// so that a direct write goes out from here.
    pub(crate) buf: AlignedBuf,
    /// The message records in `buf`, in order.
    pub(crate) messages: Vec<BatchedMessage>,
    /// The batch ends with the segment's footer.
    pub(crate) seals: bool,
    /// When the first record was added (the commit deadline runs from here).
    pub(crate) opened: Option<Instant>,
}

impl Batch {
    /// An empty batch for segment `seq` starting at `file_offset`, reusing `buf`'s allocation.
    pub(crate) fn new(seq: u64, file_offset: u64, mut buf: AlignedBuf) -> Batch {
        buf.clear();
        Batch { seq, file_offset, buf, messages: Vec::new(), seals: false, opened: None }
    }

    /// Bytes in the batch.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends a non-message record (header, topic definition, checkpoint, footer).
    pub(crate) fn push_record(&mut self, encode: impl FnOnce(&mut AlignedBuf)) -> usize {
        let start = self.buf.len();
        encode(&mut self.buf);
        self.opened.get_or_insert_with(Instant::now);
        self.buf.len() - start
    }

    /// Appends a message record.
    pub(crate) fn push_message(&mut self, header: MessageHeader, encode: impl FnOnce(&mut AlignedBuf)) -> usize {
        let start = self.buf.len();
        let len = self.push_record(encode);
        self.messages.push(BatchedMessage { header, start, len });
        len
    }

    /// Whether the batch should be committed now: it holds `commit_bytes`, or its first
    /// record is `interval` old.
    pub(crate) fn due(&self, now: Instant, interval: Duration, commit_bytes: u64) -> bool {
        self.buf.len() as u64 >= commit_bytes
            || self.opened.is_some_and(|t| now.saturating_duration_since(t) >= interval)
    }

    /// When the batch becomes due by time.
    pub(crate) fn deadline(&self, interval: Duration) -> Option<Instant> {
        self.opened.map(|t| t + interval)
    }
}

/// Messages taken out of batches that did not become durable, kept in memory (in order) until
/// they can be written to a new segment.
#[derive(Debug, Default)]
pub(crate) struct HeldMessages {
    buf: Vec<u8>,
    messages: Vec<BatchedMessage>,
}

impl HeldMessages {
    /// Takes a copy of every message record of `batch`, after those already held.
    pub(crate) fn take_from(&mut self, batch: &Batch) {
        for m in &batch.messages {
            if let Some(rec) = batch.buf.get(m.start..m.start + m.len) {
                let start = self.buf.len();
                self.buf.extend_from_slice(rec);
                self.messages.push(BatchedMessage { header: m.header, start, len: m.len });
            }
        }
    }

    /// Appends everything of `other` after what is held.
    pub(crate) fn append(&mut self, other: HeldMessages) {
        let base = self.buf.len();
        self.buf.extend_from_slice(&other.buf);
        self.messages.extend(other.messages.into_iter().map(|m| BatchedMessage { start: m.start + base, ..m }));
    }

    /// Number of messages held.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Bytes of framed records held.
    pub(crate) fn bytes(&self) -> u64 {
        self.buf.len() as u64
    }

    /// The held messages: header and framed record bytes.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&MessageHeader, &[u8])> {
        self.messages.iter().filter_map(|m| self.buf.get(m.start..m.start + m.len).map(|rec| (&m.header, rec)))
    }

    /// The messages from index `from` on, as a new holding (what could not be rewritten).
    pub(crate) fn split_off(&self, from: usize) -> HeldMessages {
        let mut rest = HeldMessages::default();
        for m in self.messages.iter().skip(from) {
            if let Some(rec) = self.buf.get(m.start..m.start + m.len) {
                let start = rest.buf.len();
                rest.buf.extend_from_slice(rec);
                rest.messages.push(BatchedMessage { header: m.header, start, len: m.len });
            }
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::segment::encode_message;

    fn h(seq: u64) -> MessageHeader {
        MessageHeader { topic_id: 1, sequence: seq, ..Default::default() }
    }

    #[test]
    fn held_messages_keep_exact_record_bytes_in_order() {
        let mut b = Batch::new(1, 64, AlignedBuf::default());
        b.push_record(|out| out.extend_from_slice(b"topicdef"));
        for seq in 1..=3 {
            b.push_message(h(seq), |out| encode_message(out, &h(seq), &[seq as u8; 5]));
        }
        let mut held = HeldMessages::default();
        held.take_from(&b);
        let mut other = Batch::new(2, 64, AlignedBuf::default());
        other.push_message(h(4), |out| encode_message(out, &h(4), b"four"));
        let mut more = HeldMessages::default();
        more.take_from(&other);
        held.append(more);
        assert_eq!(held.len(), 4);
        let seqs: Vec<u64> = held.iter().map(|(h, _)| h.sequence).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        let mut expect = Vec::new();
        encode_message(&mut expect, &h(4), b"four");
        assert_eq!(held.iter().last().unwrap().1, &expect[..]);
        let rest = held.split_off(2);
        assert_eq!(rest.len(), 2);
        assert_eq!(rest.iter().next().unwrap().0.sequence, 3);
    }

    #[test]
    fn due_by_bytes_or_age() {
        let mut b = Batch::new(1, 0, AlignedBuf::default());
        let now = Instant::now();
        assert!(!b.due(now, Duration::from_millis(5), 100));
        b.push_record(|out| out.extend_from_slice(&[0; 100]));
        assert!(b.due(now, Duration::from_secs(60), 100));
        let later = b.opened.unwrap() + Duration::from_millis(5);
        assert!(b.due(later, Duration::from_millis(5), 1000));
    }
}
