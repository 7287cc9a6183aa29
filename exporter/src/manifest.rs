//! `manifest.json`, written at the root of every export: what was read (segments, with what
//! damage), what was selected (filters), what came out (per robot and topic: type, counts, time
//! ranges, measured rate, decode problems, files) and every output file with its SHA-256.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io_err, Result};

/// Value of [`ExportManifest::format`].
pub const MANIFEST_FORMAT: &str = "fleetrec-export-manifest";
/// File name of the manifest in the output folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest of one export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Manifest layout version, `1`.
    pub version: u32,
    /// Version of the exporter that wrote it.
    pub fleetrec_version: String,
    /// When the export finished, ns since the epoch.
    pub created_ns: u64,
    /// Output format (`parquet`, `csv`, `npy`, `tfrecord`, `mcap`).
    pub export_format: String,
    /// Input recording folder, as given.
    pub input: String,
    /// What was selected.
    pub filters: Filters,
    /// Time alignment (`null`: not aligned, one table per topic).
    pub alignment: Option<Alignment>,
    /// Every segment found, read or skipped.
    pub segments: Vec<SegmentEntry>,
    /// Robots with exported messages.
    pub robots: Vec<String>,
    /// Every exported topic.
    pub topics: Vec<TopicEntry>,
    /// Sums over segments and topics.
    pub totals: Totals,
    /// Every output file (paths relative to the output folder), the manifest excepted.
    pub files: Vec<FileEntry>,
}

/// The selection of an export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    /// Robot names (empty: all).
    pub robots: Vec<String>,
    /// Topic name regular expression, if any.
    pub topic_regex: Option<String>,
    /// Earliest receive time kept, ns since the epoch.
    pub start_ns: Option<u64>,
    /// Latest receive time kept, ns since the epoch.
    pub end_ns: Option<u64>,
    /// Whether segments without a valid sidecar manifest (open or crashed) were read.
    pub include_unsealed: bool,
}

/// One segment of the input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// File name.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 from its sidecar manifest, if it has a valid one.
    pub sha256: Option<String>,
    /// Whether it has a sidecar manifest matching its size.
    pub sealed: bool,
    /// `read` or `skipped`.
    pub status: String,
    /// Why skipped, or what went wrong reading it.
    pub reason: Option<String>,
    /// Message records read (before filters).
    pub messages: u64,
    /// Records skipped because their CRC failed.
    pub corrupt_records: u64,
    /// Records with a valid CRC whose body does not parse.
    pub undecodable_records: u64,
    /// Bytes after the last valid record (torn tail), 0 if none.
    pub torn_tail_bytes: u64,
}

/// One exported topic (one robot's topic, one definition).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicEntry {
    /// Robot name.
    pub robot: String,
    /// Robot index.
    pub robot_id: u16,
    /// Topic name.
    pub topic: String,
    /// Topic id in the segments.
    pub topic_id: u32,
    /// ROS type.
    pub type_name: String,
    /// ROS type hash, if recorded.
    pub type_hash: String,
    /// Whether messages were decoded with the recorded definition (else raw CDR bytes).
    pub decoded: bool,
    /// Why not decoded.
    pub raw_reason: Option<String>,
    /// Messages exported.
    pub messages: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Lowest receive time, ns.
    pub first_receive_ns: u64,
    /// Highest receive time, ns.
    pub last_receive_ns: u64,
    /// Lowest non-zero publish time, ns (0 if none known).
    pub first_publish_ns: u64,
    /// Highest publish time, ns.
    pub last_publish_ns: u64,
    /// Measured rate: `(messages - 1) / (last - first receive time)`, 0 if undefined.
    pub rate_hz: f64,
    /// Messages whose payload did not decode with the definition (not exported).
    pub decode_errors: u64,
    /// Messages missing from the sequence numbers (dropped before recording, or filtered by a
    /// corrupt record), per ingest session.
    pub sequence_gaps: u64,
    /// Fields the format cannot hold (npy: strings, nested sequences).
    pub skipped_fields: Vec<String>,
    /// Output files of this topic, relative to the output folder.
    pub files: Vec<String>,
}

/// Sums.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Segments read.
    pub segments_read: u64,
    /// Segments skipped.
    pub segments_skipped: u64,
    /// Messages exported.
    pub messages: u64,
    /// Messages read but not selected by the filters.
    pub filtered_out: u64,
    /// Corrupt records skipped (CRC).
    pub corrupt_records: u64,
    /// Records with a valid CRC that do not parse.
    pub undecodable_records: u64,
    /// Payloads that did not decode with their definition.
    pub decode_errors: u64,
    /// Sum of the topics' sequence gaps.
    pub sequence_gaps: u64,
}

/// The alignment of an `--align` export: policy, tolerance, what was kept and what dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// Always `asof_backward`: each topic's latest message received at or before the tick.
    pub policy: String,
    /// The policy in words.
    pub description: String,
    /// The time the join uses: `receive_time_ns`.
    pub clock: String,
    /// `topic` (one tick per message of `reference_topic`) or `rate` (a fixed grid).
    pub reference: String,
    /// The reference topic, for `reference = topic`.
    pub reference_topic: Option<String>,
    /// Ticks per second, for `reference = rate`.
    pub rate_hz: Option<f64>,
    /// Time between ticks in ns, for `reference = rate`.
    pub period_ns: Option<u64>,
    /// Tolerance: a message older than this at a tick is stale, ns.
    pub max_age_ns: u64,
    /// First tick, ns since the epoch (0 if none).
    pub first_tick_ns: u64,
    /// Last tick, ns since the epoch (0 if none).
    pub last_tick_ns: u64,
    /// Ticks considered.
    pub ticks: u64,
    /// Rows written (ticks where every topic had a fresh value).
    pub rows: u64,
    /// Ticks dropped: `dropped_missing + dropped_stale`.
    pub dropped_rows: u64,
    /// Ticks dropped because some topic had no message at or before the tick.
    pub dropped_missing: u64,
    /// Ticks dropped because some topic's latest message was older than `max_age_ns` (and none
    /// was missing).
    pub dropped_stale: u64,
    /// The aligned topics, in column order.
    pub topics: Vec<AlignedTopic>,
    /// The aligned table, relative to the output folder.
    pub file: String,
}

/// One topic of an aligned table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlignedTopic {
    /// Topic name.
    pub topic: String,
    /// Robot name.
    pub robot: String,
    /// Its column (Parquet struct) or column prefix (CSV).
    pub column: String,
    /// Its messages in the selection.
    pub messages: u64,
    /// Ticks at which it had no message yet.
    pub missing: u64,
    /// Ticks at which its latest message was older than the maximum age.
    pub stale: u64,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the output folder, `/`-separated.
    pub path: String,
    /// Size.
    pub bytes: u64,
    /// SHA-256, 64 lower-case hex digits.
    pub sha256: String,
}

/// SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(io_err("read", path))?;
        if r == 0 {
            break;
        }
        n += r as u64;
        h.update(&buf[..r]);
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, n))
}

/// Writes the manifest atomically (temporary file, fsync, rename).
pub fn write_manifest(dir: &Path, m: &ExportManifest) -> Result<()> {
    use std::io::Write;
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(m).unwrap_or_default();
    let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&json).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
    Ok(())
}
