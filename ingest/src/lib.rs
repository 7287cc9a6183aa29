//! fleetrec ingest: takes messages from a source (a ROS 2 graph, or simulated robots) and
//! forwards their raw CDR bytes with timestamps and per-topic sequence numbers into the
//! pipeline's shared memory, announcing every topic with its full message definition.
//! Ingest never waits on the writer: what cannot be delivered within the configured bound is
//! dropped and counted per topic.

pub mod forward;
#[cfg(feature = "ros2")]
pub mod ros2;
pub mod run;
pub mod synthetic;

pub use run::{run, IngestError};
