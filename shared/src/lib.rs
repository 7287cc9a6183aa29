//! fleetrec's shared library: the pipeline configuration, the sans-IO segment codec, the
//! iceoryx2 plane (service names, shared-memory types, port helpers), topic metadata and
//! process plumbing (signals, status CLI) used by every stage.

pub mod cli;
pub mod config;
pub mod control;
pub mod plane;
pub mod segment;
pub mod shutdown;
pub mod time;
pub mod topic;
