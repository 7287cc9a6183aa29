//! The segment file format, sans-IO: encode records into a [`RecordSink`] (a `Vec<u8>`, or
//! the writer's aligned batch buffer), decode and scan byte slices. No function here touches a
//! file, so the io_uring writer, the uploader, the exporter and the tests share one
//! implementation. The byte layout is specified in `docs/FORMAT.md`.

mod frame;
mod header;
mod record;
mod scan;
mod summary;

pub use frame::{decode_frame, encode_frame, FrameError, RecordRef, RecordSink};
pub(crate) use header::le_arr;
pub use header::{HeaderError, SegmentHeader};
pub use record::{
    checkpoint_len, checkpoint_padding, encode_checkpoint, encode_checkpoint_padded, encode_footer, encode_message,
    encode_topic, Checkpoint, MessageRecord, Record, RecordError,
};
pub use scan::{scan, Corruption, ScanMode, ScanReport, Tail};
pub use summary::{IndexEntry, SegmentManifest, SegmentSummary, SummaryBuilder, TopicSummary};

/// Constants of the format. Records only grow at the end; kinds are never reused.
pub mod consts {
    /// Magic of a segment: `FLTREC`, the major version byte, `\n`.
    pub const MAGIC: [u8; 8] = *b"FLTREC\x01\n";
    /// First six bytes of every version's magic, to recognise other major versions.
    pub const MAGIC_PREFIX: [u8; 6] = *b"FLTREC";
    /// Major version, also byte 6 of the magic.
    pub const MAJOR_VERSION: u8 = 1;
    /// Minor format version written by this build.
    pub const MINOR_VERSION: u16 = 0;
    /// Length of the segment header.
    pub const HEADER_LEN: usize = 64;
    /// Length of a record frame header (length, kind, flags, CRC).
    pub const FRAME_HEADER_LEN: usize = 12;
    /// Largest record body accepted (256 MiB); anything larger is treated as corruption.
    pub const MAX_BODY_LEN: u32 = 256 * 1024 * 1024;
    /// Length of the fixed part of a message record body.
    pub const MESSAGE_FIXED_LEN: usize = crate::plane::MESSAGE_HEADER_LEN;

    /// Never valid: zero-filled space reads as this kind.
    pub const KIND_INVALID: u16 = 0;
    /// A topic definition (JSON [`crate::topic::TopicInfo`]).
    pub const KIND_TOPIC: u16 = 1;
    /// A message.
    pub const KIND_MESSAGE: u16 = 2;
    /// A checkpoint.
    pub const KIND_CHECKPOINT: u16 = 3;
    /// The segment footer (JSON summary); the last record of a sealed segment.
    pub const KIND_FOOTER: u16 = 4;
    /// Kinds `5..=0x7fff` are reserved for future core records; `0x8000..` for extensions.
    /// Readers skip every kind they do not know.
    pub const FIRST_EXTENSION_KIND: u16 = 0x8000;
    /// Sidecar manifest suffix: `seg-....wal` -> `seg-....wal.manifest.json`.
    pub const MANIFEST_SUFFIX: &str = ".manifest.json";
    /// Segment file extension.
    pub const SEGMENT_EXTENSION: &str = "wal";
}
