//! Output formats. Table formats ([`TableWriter`]: Parquet, CSV, NumPy, TFRecord) take batches of
//! decoded rows of one topic; MCAP ([`mcap::McapOutput`]) copies the CDR payloads unchanged.

pub mod arrow;
pub mod csv;
pub mod mcap;
pub mod npy;
pub mod parquet;
pub mod tfrecord;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::column::Batch;
use crate::error::Result;
use crate::plan::Plan;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One Parquet file per robot and topic.
    Parquet,
    /// One CSV file per robot and topic.
    Csv,
    /// One folder of `.npy` arrays per robot and topic.
    Npy,
    /// One TFRecord file of `tf.train.Example`s per robot and topic.
    Tfrecord,
    /// One MCAP file per robot (ROS 2 `ros2msg` schemas, `cdr` messages).
    Mcap,
}

impl Format {
    /// Every format, as named on the command line.
    pub const NAMES: [&'static str; 5] = ["parquet", "csv", "npy", "tfrecord", "mcap"];

    /// Name on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Npy => "npy",
            Format::Tfrecord => "tfrecord",
            Format::Mcap => "mcap",
        }
    }

    /// File name suffix of a topic's output (`""` for the npy folder).
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Parquet => ".parquet",
            Format::Csv => ".csv",
            Format::Npy => "",
            Format::Tfrecord => ".tfrecord",
            Format::Mcap => ".mcap",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        Ok(match s {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "npy" => Format::Npy,
            "tfrecord" => Format::Tfrecord,
            "mcap" => Format::Mcap,
            other => return Err(format!("unknown format `{other}` (one of {})", Format::NAMES.join(", "))),
        })
    }
}

/// What a table writer knows about its topic.
#[derive(Debug, Clone)]
pub struct StreamMeta {
    /// Robot name.
    pub robot: String,
    /// Topic name.
    pub topic: String,
    /// ROS type.
    pub type_name: String,
    /// Recorded definition (`ros2msg`), empty if none.
    pub definition: String,
    /// Compiled plan (raw if the definition is missing or does not compile).
    pub plan: Arc<Plan>,
}

/// Limits that keep memory bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most rows in one Parquet row group.
    pub row_group_rows: usize,
    /// Most encoded bytes in one Parquet row group.
    pub row_group_bytes: usize,
}

/// Writes one topic's rows in one table format.
pub trait TableWriter {
    /// Writes (and consumes) a batch of rows.
    fn write(&mut self, batch: Batch) -> Result<()>;
    /// Completes the output; returns every file written (absolute paths).
    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>>;
}

/// Opens the writer of one topic. `base` is the output path without suffix.
pub fn open_table(format: Format, base: &Path, meta: &StreamMeta, limits: Limits) -> Result<Box<dyn TableWriter>> {
    let with = |s: &str| PathBuf::from(format!("{}{s}", base.display()));
    Ok(match format {
        Format::Parquet => Box::new(parquet::ParquetTable::create(&with(".parquet"), meta, limits)?),
        Format::Csv => Box::new(csv::CsvTable::create(&with(".csv"), meta)?),
        Format::Npy => Box::new(npy::NpyTable::create(base, meta)?),
        Format::Tfrecord => Box::new(tfrecord::TfRecordTable::create(&with(".tfrecord"), meta)?),
        Format::Mcap => {
            return Err(crate::error::ExportError::BadOption {
                option: "--format",
                reason: "mcap is not a table format".into(),
            })
        }
    })
}

/// Creates a file and its parent folders.
pub(crate) fn create_file(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(crate::error::io_err("create folder", dir))?;
    }
    let f = std::fs::File::create(path).map_err(crate::error::io_err("create", path))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}
