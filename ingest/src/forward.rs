//! The forwarding half shared by every source: topic announcements, message samples into
//! shared memory, per-topic counters, and the ingest status.

use std::collections::HashMap;
use std::time::Instant;

use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::{ipc, PortFactory as _};
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use shared::plane::{
    batch_entry_len, write_cstr, BatchBuilder, MessageHeader, Plane, PlaneError, Stage, StageState, StageStatus,
    TopicHeader, MAX_ROBOTS, MAX_STATUS_TOPICS,
};
use shared::topic::TopicInfo;

type MessageService = PortFactory<ipc::Service, [u8], MessageHeader>;
type MessagePublisher = iceoryx2::port::publisher::Publisher<ipc::Service, [u8], MessageHeader>;
type TopicPublisher = iceoryx2::port::publisher::Publisher<ipc::Service, [u8], TopicHeader>;
type StatusPublisher = iceoryx2::port::publisher::Publisher<ipc::Service, StageStatus, ()>;

/// Most bytes of one batch sample: a batch fits the publisher's initial slice, so batching never
/// grows the shared-memory data segment. A message whose entry is larger goes alone.
pub const BATCH_BYTES: usize = 4096;

/// Handle of an announced topic (index into the forwarder's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicHandle(usize);

/// Why a message was not delivered. Small and `Copy`: the per-message path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// No subscriber (writer absent) or a subscriber's buffer stayed full past the bound.
    #[error("not delivered to {missed} subscriber(s)")]
    NotDelivered {
        /// Subscribers that did not get it.
        missed: usize,
    },
    /// Larger than `pipeline.max_message_size`.
    #[error("payload of {len} bytes exceeds max_message_size")]
    TooLarge {
        /// Payload length.
        len: usize,
    },
    /// Shared memory could not provide a sample.
    #[error("no shared-memory sample available")]
    Loan,
    /// The send itself failed.
    #[error("send failed")]
    Send,
}

#[derive(Debug)]
struct TopicState {
    info: TopicInfo,
    sequence: u64,
    messages: u64,
    bytes: u64,
    dropped: u64,
    reported_error: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct RateWindow {
    at_messages: u64,
    at_bytes: u64,
}

/// Publishes messages and status for one ingest process.
pub struct Forwarder {
    service: MessageService,
    publisher: MessagePublisher,
    topic_publisher: TopicPublisher,
    status_publisher: StatusPublisher,
    notifier: Notifier<ipc::Service>,
    robots: Vec<String>,
    topics: Vec<TopicState>,
    by_id: HashMap<u32, usize>,
    session: u32,
    max_message_size: usize,
    status: StageStatus,
    robot_windows: Vec<RateWindow>,
    window: RateWindow,
    window_start: Instant,
    sent_since_wake: usize,
    topic_id_scope: Option<u32>,
    /// Messages forwarded but not yet sent: small ones travel in batch samples.
    batch: BatchBuilder,
    /// Topic index and payload length of each message in `batch`.
    batch_topics: Vec<(usize, u32)>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("robots", &self.robots).field("topics", &self.topics.len()).finish()
    }
}

impl Drop for Forwarder {
    /// Sends what is still queued: a source that stops loses nothing it forwarded.
    fn drop(&mut self) {
        self.flush();
    }
}

impl Forwarder {
    /// Opens the publishers. `robots` is the pipeline's robot list (index = robot id).
    pub fn new(plane: &Plane, robots: Vec<String>) -> Result<Forwarder, PlaneError> {
        let service = plane.messages_service()?;
        let publisher = plane.message_publisher()?;
        let topic_publisher = plane.topic_publisher()?;
        let status_publisher = plane.status_publisher(Stage::Ingest)?;
        let notifier = plane.wake_notifier()?;
        let session = (shared::time::now_ns() as u32) ^ std::process::id().rotate_left(16);
        let mut status = StageStatus::new(Stage::Ingest);
        status.robot_count = robots.len().min(MAX_ROBOTS) as u32;
        for (slot, name) in status.robots.iter_mut().zip(&robots) {
            write_cstr(&mut slot.name, name);
        }
        Ok(Forwarder {
            service,
            publisher,
            topic_publisher,
            status_publisher,
            notifier,
            robot_windows: vec![RateWindow::default(); robots.len()],
            robots,
            topics: Vec::new(),
            by_id: HashMap::new(),
            session,
            max_message_size: plane.config().max_message_size,
            status,
            window: RateWindow::default(),
            window_start: Instant::now(),
            sent_since_wake: 0,
            topic_id_scope: None,
            batch: BatchBuilder::with_capacity(BATCH_BYTES),
            batch_topics: Vec::with_capacity(BATCH_BYTES / 48),
        })
    }

    /// Scopes the ids of topics announced from now on by `scope` (a ROS domain id), so ingest
    /// processes of different domains feeding one writer never give the same id to two topics
    /// that share robot, name and type (e.g. `/rosout` of the default robot on two domains).
    /// Scope 0 (and no scope, the default) keeps [`shared::topic::topic_id`] unchanged.
    pub fn set_topic_id_scope(&mut self, scope: u32) {
        self.topic_id_scope = (scope != 0).then_some(scope);
    }

    /// This process's ingest session id (sequences restart with each session).
    pub fn session(&self) -> u32 {
        self.session
    }

    /// The robot list.
    pub fn robots(&self) -> &[String] {
        &self.robots
    }

    /// Registers a topic and announces it (with history, so late subscribers learn it). The
    /// topic id is [`shared::topic::topic_id`]; a collision with another topic is resolved by
    /// probing to the next free id.
    pub fn announce(&mut self, robot_id: u16, name: &str, type_name: &str, definition: &str, qos: &str) -> TopicHandle {
        let robot = self.robots.get(robot_id as usize).cloned().unwrap_or_default();
        let mut id = match self.topic_id_scope {
            None => shared::topic::topic_id(&robot, name, type_name),
            Some(scope) => shared::topic::topic_id(&format!("{robot}\0ros_domain_id={scope}"), name, type_name),
        };
        while let Some(&idx) = self.by_id.get(&id) {
            let t = &self.topics[idx].info;
            if t.robot_id == robot_id && t.name == name && t.type_name == type_name {
                return TopicHandle(idx);
            }
            tracing::warn!(topic = name, id, "topic id collision, probing");
            id = id.wrapping_add(1);
        }
        let info = TopicInfo {
            topic_id: id,
            robot_id,
            robot,
            name: name.to_string(),
            type_name: type_name.to_string(),
            type_hash: String::new(),
            encoding: "ros2msg".into(),
            definition: definition.to_string(),
            qos: qos.to_string(),
        };
        self.send_announcement(&info);
        let idx = self.topics.len();
        self.by_id.insert(id, idx);
        tracing::info!(topic = name, type_name, id, robot_id, "announced topic");
        self.topics.push(TopicState { info, sequence: 0, messages: 0, bytes: 0, dropped: 0, reported_error: false });
        TopicHandle(idx)
    }

    fn send_announcement(&self, info: &TopicInfo) {
        let json = info.to_json_bytes();
        let result = self.topic_publisher.loan_slice_uninit(json.len()).map(|mut s| {
            *s.user_header_mut() = TopicHeader { topic_id: info.topic_id, robot_id: info.robot_id, flags: 0 };
            s.write_from_slice(&json).send()
        });
        if !matches!(result, Ok(Ok(_))) {
            tracing::error!(topic = %info.name, ?result, "could not announce topic");
        }
    }

    /// Records a topic's new QoS text and announces the topic again (same id), so the writer
    /// stores the QoS its messages are now received with. Nothing is sent if it is unchanged.
    pub fn update_qos(&mut self, h: TopicHandle, qos: &str) {
        let Some(t) = self.topics.get_mut(h.0) else { return };
        if t.info.qos != qos {
            t.info.qos = qos.to_string();
            let info = t.info.clone();
            self.send_announcement(&info);
        }
    }

    /// The topic info of a handle.
    pub fn topic(&self, h: TopicHandle) -> Option<&TopicInfo> {
        self.topics.get(h.0).map(|t| &t.info)
    }

    /// Forwards one message. Assigns the next sequence number of the topic (also when the
    /// message is then dropped, so drops show as sequence gaps downstream too) and counts the
    /// outcome. Never blocks longer than the configured backpressure bound.
    ///
    /// A message whose batch entry fits [`BATCH_BYTES`] is queued in the current batch and sent
    /// with it: when the batch is full, at [`wake`](Self::wake) (which every source calls once
    /// per turn), or before a large message. `Ok` then means queued; whether the batch was
    /// delivered is counted per topic when it is sent, like every other outcome.
    pub fn forward(&mut self, h: TopicHandle, publish_time_ns: u64, payload: &[u8]) -> Result<u64, ForwardError> {
        let Some(t) = self.topics.get_mut(h.0) else { return Err(ForwardError::Send) };
        t.sequence += 1;
        let header = MessageHeader {
            topic_id: t.info.topic_id,
            robot_id: t.info.robot_id,
            flags: 0,
            sequence: t.sequence,
            receive_time_ns: shared::time::now_ns(),
            publish_time_ns,
            ingest_session: self.session,
            payload_len: payload.len() as u32,
        };
        if payload.len() > self.max_message_size {
            let e = ForwardError::TooLarge { len: payload.len() };
            self.count_outcome(h.0, payload.len() as u32, Err(e));
            return Err(e);
        }
        let entry = batch_entry_len(payload.len());
        if entry <= BATCH_BYTES {
            if self.batch.bytes() + entry > BATCH_BYTES {
                self.flush();
            }
            self.batch.push(&header, payload);
            self.batch_topics.push((h.0, header.payload_len));
            return Ok(header.sequence);
        }
        // Large: alone, after what is queued (so the order on the plane is the order here).
        self.flush();
        let subscribers = self.subscribers();
        let result = match self.publisher.loan_slice_uninit(payload.len()) {
            Err(_) => Err(ForwardError::Loan),
            Ok(mut sample) => {
                *sample.user_header_mut() = header;
                delivered(subscribers, sample.write_from_slice(payload).send())
            }
        };
        self.count_outcome(h.0, header.payload_len, result);
        result.map(|()| header.sequence)
    }

    /// Sends the queued batch (if any) and counts its messages per topic.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let subscribers = self.subscribers();
        let result = match self.publisher.loan_slice_uninit(self.batch.bytes()) {
            Err(_) => Err(ForwardError::Loan),
            Ok(mut sample) => {
                *sample.user_header_mut() = self.batch.header();
                delivered(subscribers, sample.write_from_slice(self.batch.payload()).send())
            }
        };
        let mut queued = std::mem::take(&mut self.batch_topics);
        for &(topic, len) in &queued {
            self.count_outcome(topic, len, result);
        }
        queued.clear();
        self.batch_topics = queued;
        self.batch.clear();
    }

    /// Subscribers connected now (read before a loan, as the send will see them).
    fn subscribers(&self) -> usize {
        self.service.dynamic_config().number_of_subscribers()
    }

    /// Counts one message's outcome on its topic.
    fn count_outcome(&mut self, topic: usize, len: u32, result: Result<(), ForwardError>) {
        let Some(t) = self.topics.get_mut(topic) else { return };
        match result {
            Ok(()) => {
                t.messages += 1;
                t.bytes += len as u64;
                self.sent_since_wake += 1;
            }
            Err(e) => {
                t.dropped += 1;
                if !t.reported_error && !matches!(e, ForwardError::NotDelivered { .. }) {
                    t.reported_error = true;
                    tracing::error!(topic = %t.info.name, error = %e, "message dropped (counted; further drops of this topic are only counted)");
                }
            }
        }
    }

    /// Counts `n` messages of a topic that were lost before they reached this process (a source
    /// that sees gaps, e.g. ROS 2 publication sequence numbers): dropped, and given sequence
    /// numbers, so they show as a gap downstream like every other drop.
    pub fn count_lost(&mut self, h: TopicHandle, n: u64) {
        let Some(t) = self.topics.get_mut(h.0) else { return };
        t.sequence += n;
        t.dropped += n;
        if !t.reported_error {
            t.reported_error = true;
            tracing::error!(topic = %t.info.name, lost = n, "messages lost before ingest took them (counted as dropped; further losses of this topic are only counted)");
        }
    }

    /// Takes back one message counted by [`count_lost`](Self::count_lost) that arrived after
    /// all (it is forwarded now, with a new sequence number; its old number stays a gap).
    pub fn count_recovered(&mut self, h: TopicHandle) {
        if let Some(t) = self.topics.get_mut(h.0) {
            t.dropped = t.dropped.saturating_sub(1);
        }
    }

    /// Sends the queued batch, then wakes the consumers if messages were sent since the last
    /// wake. Call once per turn of the source.
    pub fn wake(&mut self) {
        self.flush();
        if self.sent_since_wake > 0 {
            self.sent_since_wake = 0;
            if let Err(e) = self.notifier.notify() {
                tracing::warn!(?e, "wake notification failed");
            }
        }
    }

    /// Total dropped messages (of those sent: call [`wake`](Self::wake) or
    /// [`flush`](Self::flush) first to include the queued batch).
    pub fn dropped(&self) -> u64 {
        self.topics.iter().map(|t| t.dropped).sum()
    }

    /// Publishes the status with counters and rates, and lets late subscribers of the topic
    /// announcements get the history.
    pub fn publish_status(&mut self, state: StageState, detail: &str) {
        self.flush();
        if let Err(e) = self.topic_publisher.update_connections() {
            tracing::warn!(?e, "topic publisher could not update connections");
        }
        let now = Instant::now();
        let secs = now.duration_since(self.window_start).as_secs_f64().max(1e-3);
        let s = &mut self.status;
        s.set_state(state);
        s.set_detail(detail);
        s.updated_ns = shared::time::now_ns();
        s.messages = self.topics.iter().map(|t| t.messages).sum();
        s.bytes = self.topics.iter().map(|t| t.bytes).sum();
        s.dropped = self.topics.iter().map(|t| t.dropped).sum();
        s.rate_msgs = (s.messages - self.window.at_messages) as f64 / secs;
        s.rate_bytes = (s.bytes - self.window.at_bytes) as f64 / secs;
        self.window = RateWindow { at_messages: s.messages, at_bytes: s.bytes };
        s.topic_count = self.topics.len().min(MAX_STATUS_TOPICS) as u32;
        for (slot, t) in s.topics.iter_mut().zip(&self.topics) {
            slot.topic_id = t.info.topic_id;
            slot.robot_id = t.info.robot_id;
            slot.messages = t.messages;
            slot.bytes = t.bytes;
            slot.dropped = t.dropped;
            slot.last_sequence = t.sequence;
            slot.ingest_session = self.session;
            write_cstr(&mut slot.name, &t.info.name);
        }
        for (r, (slot, win)) in s.robots.iter_mut().zip(self.robot_windows.iter_mut()).enumerate() {
            let of_robot = || self.topics.iter().filter(|t| t.info.robot_id as usize == r);
            slot.messages = of_robot().map(|t| t.messages).sum();
            slot.bytes = of_robot().map(|t| t.bytes).sum();
            slot.dropped = of_robot().map(|t| t.dropped).sum();
            slot.topic_count = of_robot().count() as u32;
            slot.rate_hz = (slot.messages - win.at_messages) as f64 / secs;
            *win = RateWindow { at_messages: slot.messages, at_bytes: slot.bytes };
        }
        self.window_start = now;
        if let Err(e) = self.status_publisher.send_copy(*s) {
            tracing::warn!(?e, "could not publish status");
        }
    }
}

/// Whether a send reached all `subscribers` counted before it (and there was one).
fn delivered<E>(subscribers: usize, sent: Result<usize, E>) -> Result<(), ForwardError> {
    match sent {
        Ok(delivered) if delivered >= subscribers && subscribers > 0 => Ok(()),
        Ok(delivered) => Err(ForwardError::NotDelivered { missed: subscribers.max(1) - delivered.min(subscribers) }),
        Err(_) => Err(ForwardError::Send),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::Config;
    use shared::plane::messages_of;

    /// Small messages travel in batch samples, a large one alone, and the subscriber gets every
    /// message whole and in the order forwarded; the counters count messages, not samples.
    #[test]
    fn small_messages_are_batched_large_ones_go_alone_in_order() {
        let mut config = Config::default();
        config.pipeline.name = format!("fwd-batch-{}", std::process::id());
        config.pipeline.message_buffer = 64;
        let plane = Plane::open("fwd-test", &config.pipeline).unwrap();
        let sub = plane.message_subscriber().unwrap();
        let mut fwd = Forwarder::new(&plane, vec!["r1".into()]).unwrap();
        let small = fwd.announce(0, "/r1/small", "std_msgs/msg/String", "string data\n", "");
        let large = fwd.announce(0, "/r1/large", "std_msgs/msg/String", "string data\n", "");
        let mut sent = Vec::new();
        // 100 small (2 full batches and part of a third), 1 large, 5 small.
        for i in 0..106u32 {
            let (h, payload) = if i == 100 { (large, vec![0xEE; 10_000]) } else { (small, vec![i as u8; 60]) };
            assert!(fwd.forward(h, 1_000 + u64::from(i), &payload).is_ok());
            sent.push(payload);
        }
        fwd.wake();
        let mut samples = Vec::new();
        let mut got = Vec::new();
        while let Some(s) = sub.receive().unwrap() {
            samples.push((s.user_header().is_batch(), s.user_header().sequence));
            for m in messages_of(s.user_header(), s.payload()) {
                let (h, p) = m.unwrap();
                assert_eq!(h.publish_time_ns, 1_000 + got.len() as u64);
                got.push(p.to_vec());
            }
        }
        assert_eq!(got, sent);
        // 60-byte payloads take 104 bytes: 39 to a 4096-byte batch.
        assert_eq!(samples, vec![(true, 39), (true, 39), (true, 22), (false, 1), (true, 5)]);
        fwd.publish_status(StageState::Running, "");
        assert_eq!((fwd.status.messages, fwd.status.dropped), (106, 0));
        assert_eq!(fwd.status.bytes, 105 * 60 + 10_000);
    }
}
