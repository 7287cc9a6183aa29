//! fleetrec uploader: uploads sealed segments to an S3-compatible bucket, resumably and
//! offline-first.
//!
//! - [`sealed`]: which segments are sealed (directory scan) and their object keys.
//! - [`digest`]: SHA-256 of a segment, whole and per part.
//! - [`journal`]: the per-segment upload journal, persisted atomically around every part.
//! - [`store`]: the S3 client (object_store's `MultipartStore` on `AmazonS3`), error classes,
//!   the connectivity probe.
//! - [`segment_upload`]: one segment's resumable multipart upload.
//! - [`engine`]: the queue, offline handling, concurrency, retention.
//! - [`backoff`], [`throttle`]: retry policy and bandwidth limit.
//! - [`credentials`]: credentials from the environment or a file, never printed.
//! - [`progress`]: counters and their meaning in the stage status.
//! - [`run`]: the process (shared memory, control requests, status).
//! - [`fixtures`]: real sealed segments for tests and benchmarks.

pub mod backoff;
pub mod credentials;
pub mod digest;
pub mod engine;
pub mod error;
pub mod fixtures;
pub mod journal;
pub mod progress;
pub mod retention;
pub mod run;
pub mod sealed;
pub mod segment_upload;
pub mod store;
pub mod throttle;

pub use engine::EngineSummary;
pub use error::{Result, UploadError};
pub use run::{run, state_dir, RunOptions};
