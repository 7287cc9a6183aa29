//! fleetrec's writer: the crash-safe write-ahead log of a robot's recordings.
//!
//! - [`SegmentWriter`] appends messages to segment files through io_uring with group commit
//!   (writes linked to `fdatasync`, two batches in flight), publishes a [`DurableWatermark`],
//!   rotates and seals segments, survives failed syncs and full disks.
//! - [`recovery`] cuts torn tails and seals what a crash left; [`reader`] reads segments back
//!   without ever returning a record that fails its CRC; [`inspect`] reports on a recording.
//! - [`run`] is the `fleetrec-writer` process: the iceoryx2 plane around a `SegmentWriter`.
//!
//! The byte layout is specified in `docs/FORMAT.md`; the codec itself lives in
//! `shared::segment`.

mod batch;
pub mod directory;
pub mod error;
pub mod fault;
pub mod inspect;
pub mod reader;
pub mod recovery;
pub mod rotation;
pub mod run;
pub mod seal;
pub mod segment_file;
pub mod segment_writer;
pub mod status;
mod uring;
pub mod watermark;

pub use error::{Result, WriterError};
pub use fault::{IoFaults, NoFaults};
pub use reader::{read_segment, OwnedMessage, ReadReport, SegmentContents};
pub use recovery::{recover, AbandonMarker, RecoveryReport};
pub use seal::SealedSegment;
pub use segment_writer::{Appended, DropReason, SegmentWriter, WriterOptions, WriterState, WriterStats};
pub use watermark::{DurableWatermark, TopicProgress};
