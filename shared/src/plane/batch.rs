//! Batched message samples: one shared-memory sample that carries several small messages.
//!
//! A sample of the messages service is either a single message (its [`MessageHeader`] is the
//! user header, the payload is the raw CDR) or, when the user header has
//! [`MESSAGE_FLAG_BATCH`], a batch: the payload is a run of entries, each a 40-byte message
//! header ([`MessageHeader::to_le_bytes`]), the raw CDR, and zero padding to a multiple of 8.
//! The batch's own header holds the entry count in `sequence` and the used length in
//! `payload_len`. One loan and one send per batch instead of per message is what lets ingest
//! forward small messages at over 1 M/s on two cores (`docs/BENCHMARKS.md`).
//!
//! Subscribers read both forms through [`messages_of`].

use super::MessageHeader;
use crate::segment::le_arr;

/// `MessageHeader::flags` bit of a sample that carries a batch of messages.
pub const MESSAGE_FLAG_BATCH: u16 = 1;
/// Bytes of a message header inside a batch (and inside a segment's message record).
pub const MESSAGE_HEADER_LEN: usize = 40;

/// Bytes one message takes in a batch: header, payload, padding to 8.
pub fn batch_entry_len(payload_len: usize) -> usize {
    (MESSAGE_HEADER_LEN + payload_len).next_multiple_of(8)
}

impl MessageHeader {
    /// The 40-byte little-endian form (field order as declared).
    pub fn to_le_bytes(&self) -> [u8; MESSAGE_HEADER_LEN] {
        let mut f = [0u8; MESSAGE_HEADER_LEN];
        f[0..4].copy_from_slice(&self.topic_id.to_le_bytes());
        f[4..6].copy_from_slice(&self.robot_id.to_le_bytes());
        f[6..8].copy_from_slice(&self.flags.to_le_bytes());
        f[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        f[16..24].copy_from_slice(&self.receive_time_ns.to_le_bytes());
        f[24..32].copy_from_slice(&self.publish_time_ns.to_le_bytes());
        f[32..36].copy_from_slice(&self.ingest_session.to_le_bytes());
        f[36..40].copy_from_slice(&self.payload_len.to_le_bytes());
        f
    }

    /// Reads the form written by [`MessageHeader::to_le_bytes`].
    pub fn from_le_bytes(f: &[u8; MESSAGE_HEADER_LEN]) -> MessageHeader {
        MessageHeader {
            topic_id: u32::from_le_bytes(le_arr(&f[0..4])),
            robot_id: u16::from_le_bytes(le_arr(&f[4..6])),
            flags: u16::from_le_bytes(le_arr(&f[6..8])),
            sequence: u64::from_le_bytes(le_arr(&f[8..16])),
            receive_time_ns: u64::from_le_bytes(le_arr(&f[16..24])),
            publish_time_ns: u64::from_le_bytes(le_arr(&f[24..32])),
            ingest_session: u32::from_le_bytes(le_arr(&f[32..36])),
            payload_len: u32::from_le_bytes(le_arr(&f[36..40])),
        }
    }

    /// Whether this is the header of a batch sample.
    pub fn is_batch(&self) -> bool {
        self.flags & MESSAGE_FLAG_BATCH != 0
    }
}

/// A batch sample whose entries do not add up (a bug or a mismatched peer, never normal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message batch: entry {entry} of {count} at byte {offset}: {reason}")]
pub struct BatchError {
    /// Index of the entry that could not be read.
    pub entry: u64,
    /// Entries the batch header announces.
    pub count: u64,
    /// Byte offset of that entry in the sample payload.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl BatchError {
    /// Messages of the batch that were not read (to be counted as dropped).
    pub fn unread(&self) -> u64 {
        self.count.saturating_sub(self.entry)
    }
}

/// The messages of one sample: itself when it is a single message, its entries when it is a
/// batch. A malformed entry ends the iteration with one `Err`.
pub fn messages_of<'a>(header: &MessageHeader, payload: &'a [u8]) -> MessagesOf<'a> {
    if header.is_batch() {
        let used = (header.payload_len as usize).min(payload.len());
        MessagesOf::Batch { data: &payload[..used], offset: 0, entry: 0, count: header.sequence }
    } else {
        MessagesOf::Single(Some((*header, payload)))
    }
}

/// Iterator returned by [`messages_of`].
#[derive(Debug)]
pub enum MessagesOf<'a> {
    /// A single-message sample.
    Single(Option<(MessageHeader, &'a [u8])>),
    /// A batch sample.
    Batch {
        /// The used part of the payload.
        data: &'a [u8],
        /// Offset of the next entry.
        offset: usize,
        /// Index of the next entry.
        entry: u64,
        /// Entries announced.
        count: u64,
    },
}

impl<'a> Iterator for MessagesOf<'a> {
    type Item = Result<(MessageHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            MessagesOf::Single(one) => one.take().map(Ok),
            MessagesOf::Batch { data, offset, entry, count } => {
                if *entry >= *count {
                    return None;
                }
                let fail = |reason| BatchError { entry: *entry, count: *count, offset: *offset, reason };
                let Some(fixed) = data.get(*offset..*offset + MESSAGE_HEADER_LEN) else {
                    let e = fail("the payload ends before the entry's header");
                    *entry = *count;
                    return Some(Err(e));
                };
                let h = MessageHeader::from_le_bytes(&le_arr(fixed));
                let start = *offset + MESSAGE_HEADER_LEN;
                let Some(payload) = data.get(start..start + h.payload_len as usize) else {
                    let e = fail("the payload ends inside the entry's message");
                    *entry = *count;
                    return Some(Err(e));
                };
                *offset += batch_entry_len(h.payload_len as usize);
                *entry += 1;
                Some(Ok((h, payload)))
            }
        }
    }
}

/// Builds the payload of a batch sample (the publishing side).
#[derive(Debug, Default)]
pub struct BatchBuilder {
    data: Vec<u8>,
    count: u64,
    first_receive_ns: u64,
    session: u32,
}

impl BatchBuilder {
    /// An empty batch with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> BatchBuilder {
        BatchBuilder { data: Vec::with_capacity(capacity), ..Default::default() }
    }

    /// Appends one message (its `payload_len` is set from `payload`).
    pub fn push(&mut self, header: &MessageHeader, payload: &[u8]) {
        let h = MessageHeader { payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX), ..*header };
        if self.count == 0 {
            self.first_receive_ns = h.receive_time_ns;
            self.session = h.ingest_session;
        }
        self.data.extend_from_slice(&h.to_le_bytes());
        self.data.extend_from_slice(payload);
        let pad = batch_entry_len(payload.len()) - MESSAGE_HEADER_LEN - payload.len();
        self.data.extend_from_slice(&[0u8; 8][..pad]);
        self.count += 1;
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch payload takes.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The user header of the batch sample.
    pub fn header(&self) -> MessageHeader {
        MessageHeader {
            topic_id: 0,
            robot_id: 0,
            flags: MESSAGE_FLAG_BATCH,
            sequence: self.count,
            receive_time_ns: self.first_receive_ns,
            publish_time_ns: 0,
            ingest_session: self.session,
            payload_len: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
        }
    }

    /// The batch payload.
    pub fn payload(&self) -> &[u8] {
        &self.data
    }

    /// Empties the batch (keeps the allocation).
    pub fn clear(&mut self) {
        self.data.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(topic_id: u32, sequence: u64) -> MessageHeader {
        MessageHeader {
            topic_id,
            robot_id: 3,
            flags: 0,
            sequence,
            receive_time_ns: 1_000 + sequence,
            publish_time_ns: 2_000 + sequence,
            ingest_session: 77,
            payload_len: 0,
        }
    }

    #[test]
    fn header_bytes_round_trip() {
        let h = MessageHeader { payload_len: 0xdead_beef, sequence: u64::MAX - 5, ..header(9, 1) };
        let b = h.to_le_bytes();
        assert_eq!(&b[8..16], &(u64::MAX - 5).to_le_bytes());
        assert_eq!(&b[36..40], &[0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(MessageHeader::from_le_bytes(&b), h);
    }

    #[test]
    fn a_batch_yields_its_messages_in_order_with_their_bytes() {
        let mut b = BatchBuilder::with_capacity(4096);
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 3]).collect();
        for (i, p) in payloads.iter().enumerate() {
            b.push(&header(1 + (i as u32 % 2), i as u64 + 1), p);
        }
        let bh = b.header();
        assert!(bh.is_batch());
        assert_eq!(bh.sequence, 20);
        assert_eq!(bh.receive_time_ns, 1_001);
        assert_eq!(b.bytes(), payloads.iter().map(|p| batch_entry_len(p.len())).sum::<usize>());
        // Subscribers may see a longer slice than the used part.
        let mut sample = b.payload().to_vec();
        sample.extend_from_slice(&[0xAA; 64]);
        let got: Vec<_> = messages_of(&bh, &sample).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 20);
        for (i, (h, p)) in got.iter().enumerate() {
            assert_eq!(*p, &payloads[i][..]);
            assert_eq!(h.sequence, i as u64 + 1);
            assert_eq!(h.topic_id, 1 + (i as u32 % 2));
            assert_eq!(h.payload_len as usize, payloads[i].len());
            assert_eq!(h.flags, 0);
        }
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn a_single_message_sample_yields_itself() {
        let h = MessageHeader { payload_len: 3, ..header(5, 8) };
        let got: Vec<_> = messages_of(&h, b"abc").collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![(h, &b"abc"[..])]);
    }

    #[test]
    fn a_truncated_batch_reports_the_entry_and_the_unread_count() {
        let mut b = BatchBuilder::with_capacity(1024);
        for i in 0..5 {
            b.push(&header(1, i + 1), &[7u8; 30]);
        }
        let bh = b.header();
        // Cut inside the fourth entry's payload.
        let cut = 3 * batch_entry_len(30) + MESSAGE_HEADER_LEN + 10;
        let results: Vec<_> = messages_of(&bh, &b.payload()[..cut]).collect();
        assert_eq!(results.len(), 4);
        assert!(results[..3].iter().all(|r| r.is_ok()));
        let e = results[3].clone().unwrap_err();
        assert_eq!((e.entry, e.count, e.offset, e.unread()), (3, 5, 3 * batch_entry_len(30), 2));
        // A count larger than the entries present ends in an error too, never a panic.
        let lying = MessageHeader { sequence: 9, ..bh };
        let results: Vec<_> = messages_of(&lying, b.payload()).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
        assert_eq!(results.last().unwrap().clone().unwrap_err().unread(), 4);
    }
}
