//! The durable watermark: per topic, the highest sequence number (of the topic's current
//! ingest session) whose record is on stable storage, next to the topic's counters.
//!
//! A message enters the watermark only when the batch holding it, and every batch submitted
//! before it, completed its `fdatasync` without error. Batches retire strictly in submission
//! order, and messages are appended in arrival order, so everything the writer accepted at or
//! below a topic's durable sequence is on disk. (Messages the writer dropped while paused or
//! while the disk was full are counted in `dropped`: they leave gaps below the watermark.)

use std::collections::BTreeMap;

use shared::plane::MessageHeader;

/// Progress of one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicProgress {
    /// Topic id.
    pub topic_id: u32,
    /// Robot index.
    pub robot_id: u16,
    /// Ingest session of `last_sequence` and `durable_sequence`.
    pub ingest_session: u32,
    /// Highest sequence accepted in that session.
    pub last_sequence: u64,
    /// Highest sequence of that session on stable storage (0: none yet).
    pub durable_sequence: u64,
    /// Messages accepted.
    pub messages: u64,
    /// Payload bytes accepted.
    pub bytes: u64,
    /// Messages on stable storage.
    pub durable_messages: u64,
    /// Messages dropped (paused, disk full, I/O failure).
    pub dropped: u64,
}

/// Per-topic progress and durable watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurableWatermark {
    topics: BTreeMap<u32, TopicProgress>,
}

impl DurableWatermark {
    fn entry(&mut self, h: &MessageHeader) -> &mut TopicProgress {
        self.topics.entry(h.topic_id).or_insert_with(|| TopicProgress {
            topic_id: h.topic_id,
            robot_id: h.robot_id,
            ingest_session: h.ingest_session,
            ..Default::default()
        })
    }

    /// Notes an accepted message.
    pub(crate) fn accepted(&mut self, h: &MessageHeader, payload_len: u64) {
        let t = self.entry(h);
        if t.ingest_session != h.ingest_session {
            // A new ingest run: its sequences start again.
            t.ingest_session = h.ingest_session;
            t.last_sequence = 0;
            t.durable_sequence = 0;
        }
        t.last_sequence = t.last_sequence.max(h.sequence);
        t.messages += 1;
        t.bytes += payload_len;
    }

    /// Notes a dropped message.
    pub(crate) fn dropped(&mut self, h: &MessageHeader) {
        self.entry(h).dropped += 1;
    }

    /// Notes a message whose record is now on stable storage.
    pub(crate) fn durable(&mut self, h: &MessageHeader) {
        let t = self.entry(h);
        t.durable_messages += 1;
        if t.ingest_session == h.ingest_session {
            t.durable_sequence = t.durable_sequence.max(h.sequence);
        }
    }

    /// The progress of one topic.
    pub fn topic(&self, topic_id: u32) -> Option<&TopicProgress> {
        self.topics.get(&topic_id)
    }

    /// Every topic seen, ordered by id.
    pub fn topics(&self) -> impl Iterator<Item = &TopicProgress> {
        self.topics.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(session: u32, seq: u64) -> MessageHeader {
        MessageHeader { topic_id: 9, sequence: seq, ingest_session: session, ..Default::default() }
    }

    #[test]
    fn durable_follows_session_and_never_exceeds_what_was_synced() {
        let mut w = DurableWatermark::default();
        for s in 1..=5 {
            w.accepted(&h(1, s), 10);
        }
        w.durable(&h(1, 1));
        w.durable(&h(1, 2));
        let t = w.topic(9).unwrap();
        assert_eq!((t.last_sequence, t.durable_sequence), (5, 2));
        assert_eq!(t.bytes, 50);
        // ingest restarted: sequences begin again in session 2
        w.accepted(&h(2, 1), 10);
        let t = w.topic(9).unwrap();
        assert_eq!((t.ingest_session, t.last_sequence, t.durable_sequence), (2, 1, 0));
        // a late sync of the old session does not move the new session's mark
        w.durable(&h(1, 5));
        assert_eq!(w.topic(9).unwrap().durable_sequence, 0);
        w.durable(&h(2, 1));
        assert_eq!(w.topic(9).unwrap().durable_sequence, 1);
    }
}
