//! fleetrec exporter: decodes recordings with the message definitions recorded in the segments
//! (no compiled-in message types) into the formats ML engineers train on: Parquet, CSV, NumPy,
//! TFRecord, and MCAP. See `exporter/README.md` for the layout of every format.
//!
//! | module | owns |
//! |---|---|
//! | [`align`] | `--align`: one time-aligned table by as-of join |
//! | [`msgdef`] | parser of `ros2msg` definition texts |
//! | [`plan`] | a definition compiled once per type into a decoding plan |
//! | [`cdr`] | the CDR cursor: encapsulation, byte order, alignment, bounds |
//! | [`column`](mod@column) | decoding messages straight into columnar batches |
//! | [`value`] | dynamic values and a plan-driven CDR encoder (tests, tools) |
//! | [`format`](mod@format) | the writers of each output format |
//! | [`export`](mod@export) | the export: segments in, files and manifest out |
//! | [`manifest`] | `manifest.json` |
//! | [`service`] | the exporter stage: export requests over the control plane, progress in its status |
//! | [`names`] | file names from untrusted topic names |
//! | [`time_arg`] | parsing `--start`/`--end` times |
//! | [`fixtures`] | extra definitions for tests and benchmarks |

pub mod align;
pub mod cdr;
pub mod column;
pub mod error;
pub mod export;
pub mod fixtures;
pub mod format;
pub mod manifest;
pub mod msgdef;
pub mod names;
pub mod plan;
pub mod service;
pub mod time_arg;
pub mod value;

pub use error::{ExportError, Result};
pub use export::{export, ExportOptions, Progress};
pub use format::Format;
pub use manifest::ExportManifest;
