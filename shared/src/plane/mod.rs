//! The iceoryx2 shared-memory plane: service names, the plain-data types that travel through
//! shared memory, and helpers that open ports with explicit buffer, overflow and backpressure
//! settings (see `docs/ARCHITECTURE.md`, "Services").

mod batch;
mod ports;
mod types;

pub use batch::{
    batch_entry_len, messages_of, BatchBuilder, BatchError, MessagesOf, MESSAGE_FLAG_BATCH, MESSAGE_HEADER_LEN,
};
pub(crate) use ports::open_or_create_recovering;
pub use ports::{
    clean_dead_nodes, service_exists, MessagePublisher, MessageSubscriber, Plane, PlaneError, SegmentPublisher,
    SegmentSubscriber, StatusPublisher, StatusReader, StatusSubscriber, TopicPublisher, TopicSubscriber,
};
pub use types::*;

/// Most robots one pipeline carries (slots in [`StageStatus`]).
pub const MAX_ROBOTS: usize = 16;
/// Topics listed in one [`StageStatus`].
pub const MAX_STATUS_TOPICS: usize = 128;

/// Names of the services of one pipeline, all under the pipeline's name.
pub mod service_names {
    use super::Stage;

    /// Raw messages, ingest -> writer (publish-subscribe of `[u8]` with [`super::MessageHeader`];
    /// a sample is one message or a batch of them, see [`super::messages_of`]).
    pub fn messages(pipeline: &str) -> String {
        format!("{pipeline}/messages")
    }
    /// Wake-up events that go with `messages` (event service).
    pub fn messages_wake(pipeline: &str) -> String {
        format!("{pipeline}/messages/wake")
    }
    /// Topic announcements with history (`[u8]` JSON with [`super::TopicHeader`]).
    pub fn topics(pipeline: &str) -> String {
        format!("{pipeline}/topics")
    }
    /// The status of one stage ([`super::StageStatus`]).
    pub fn status(pipeline: &str, stage: Stage) -> String {
        format!("{pipeline}/status/{}", stage.name())
    }
    /// Sealed-segment notices ([`super::SegmentNotice`]).
    pub fn segments(pipeline: &str) -> String {
        format!("{pipeline}/segments")
    }
}
