//! Messages of topics whose definition has not arrived yet.
//!
//! Topic announcements and messages travel on separate iceoryx2 services, so a message can
//! arrive before the definition of its topic (a writer that just started, an announcement
//! still in flight). Writing it right away would leave the segment without the definition it
//! needs to decode alone. Instead such messages wait here, accepted and in order, until the
//! definition comes ([`SegmentWriter::define_topic`] flushes them behind it) or until
//! [`DEFINITION_WAIT`] passes, after which they are written without one (logged) and the
//! definition follows into the segment as soon as it is known.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shared::plane::MessageHeader;
use shared::segment::encode_message;
use tracing::warn;

use super::{SegmentWriter, StallKind};
use crate::batch::{Batch, HeldMessages};
use crate::uring::AlignedBuf;

/// Longest a message waits for its topic's definition.
pub(crate) const DEFINITION_WAIT: Duration = Duration::from_secs(1);
/// Messages waiting for definitions at most (beyond, they are written without one).
const MAX_WAITING: usize = 16 * 1024;

/// Messages waiting, per topic.
#[derive(Debug, Default)]
pub(crate) struct UndefinedTopics {
    topics: BTreeMap<u32, (Instant, HeldMessages)>,
    count: usize,
}

impl UndefinedTopics {
    /// Whether messages of `topic_id` are waiting.
    pub(crate) fn has(&self, topic_id: u32) -> bool {
        self.topics.contains_key(&topic_id)
    }

    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Bytes waiting.
    pub(crate) fn bytes(&self) -> u64 {
        self.topics.values().map(|(_, h)| h.bytes()).sum()
    }

    /// When the oldest waiting topic stops waiting.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.topics.values().map(|(t, _)| *t + DEFINITION_WAIT).min()
    }

    fn take(&mut self, topic_id: u32) -> Option<HeldMessages> {
        let (_, held) = self.topics.remove(&topic_id)?;
        self.count -= held.len();
        Some(held)
    }
}

impl SegmentWriter {
    /// Keeps a message of a topic without definition. Returns `false` if too many wait already
    /// (the caller writes it right away).
    pub(super) fn wait_for_definition(&mut self, h: &MessageHeader, payload: &[u8]) -> bool {
        if self.undefined.count >= MAX_WAITING {
            return false;
        }
        let mut one = Batch::new(0, 0, AlignedBuf::default());
        one.push_message(*h, |out| encode_message(out, h, payload));
        let (_, held) =
            self.undefined.topics.entry(h.topic_id).or_insert_with(|| (Instant::now(), HeldMessages::default()));
        held.take_from(&one);
        self.undefined.count += 1;
        true
    }

    /// Writes the waiting messages of `topic_id` (after its definition, if known now).
    pub(super) fn flush_undefined(&mut self, topic_id: u32) -> crate::Result<()> {
        let Some(held) = self.undefined.take(topic_id) else {
            return Ok(());
        };
        self.append_held(held)
    }

    /// Writes the messages that waited longer than [`DEFINITION_WAIT`] (all of them with
    /// `all`), without definition.
    pub(super) fn flush_expired_undefined(&mut self, now: Instant, all: bool) -> crate::Result<()> {
        let expired: Vec<u32> = self
            .undefined
            .topics
            .iter()
            .filter(|(_, (since, _))| all || now.saturating_duration_since(*since) >= DEFINITION_WAIT)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if !self.topics.contains_key(&id) {
                warn!(topic = id, "no definition arrived for this topic: its messages are written without one");
            }
            self.flush_undefined(id)?;
        }
        Ok(())
    }

    /// Appends held message records in order; what cannot be written (the writer stalled)
    /// joins the messages held for the stall.
    pub(super) fn append_held(&mut self, held: HeldMessages) -> crate::Result<()> {
        let mut done = 0usize;
        let mut failure = None;
        for (h, rec) in held.iter() {
            if self.stall.is_some() {
                break;
            }
            match self.append_record(h, |out| out.extend_from_slice(rec), u64::from(h.payload_len)) {
                Ok(true) => done += 1,
                Ok(false) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if self.unsubmitted_bytes() > self.max_unsubmitted() {
                self.pump()?;
            }
        }
        if done < held.len() {
            self.held.append(held.split_off(done));
        }
        if let Some(e) = failure {
            self.note_error(&e);
            tracing::error!(error = %e, held = self.held.len(), "messages could not be appended: held, retrying later");
            self.enter_stall(StallKind::IoFailing, &e.to_string());
        }
        self.pump()
    }
}
