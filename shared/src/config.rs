//! The one typed configuration file of a pipeline (`config/default.toml`).
//!
//! Loading is strict: unknown keys, wrong types and invalid values are errors that name the file,
//! the key and the line (`ConfigError`'s `Display` is one line). Every field has a documented
//! default, so an empty file is a valid configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Smallest part size S3 accepts for every part but the last.
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
/// Largest segment the codec accepts (a record length is a `u32`, and we keep headroom).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 31;
/// Most robots one pipeline carries (the status structs have this many slots).
pub const MAX_ROBOTS: usize = crate::plane::MAX_ROBOTS;

/// A configuration error, always naming the file and, where known, the line and the key.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the offending key, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `storage.wal_segment_size`, when known.
    pub key: Option<String>,
    /// What is wrong, one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The whole configuration of one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[pipeline]`: names and timing shared by all stages.
    pub pipeline: PipelineConfig,
    /// `[storage]`: where and how the writer records.
    pub storage: StorageConfig,
    /// `[sync]`: upload target (used by the uploader).
    pub sync: SyncConfig,
    /// `[ingest]`: where messages come from.
    pub ingest: IngestConfig,
    /// `[[robots]]`: the robots of this pipeline. Default: none configured, in which case the
    /// synthetic source makes `robot1..robotN` and ROS ingest uses the first namespace level.
    pub robots: Vec<RobotConfig>,
    /// `[synthetic]`: the simulated robots of `--source synthetic`.
    pub synthetic: SyntheticConfig,
    /// `[export]`: the exporter service (export requests from the viewer and the CLI).
    pub export: ExportConfig,
}

/// `[export]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Folder under which the exporter service writes each requested export, in a new
    /// subfolder `<UTC time>-<format>` (e.g. `20261125T101500-parquet`). Default
    /// `"./data/exports"`.
    pub dir: PathBuf,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("./data/exports") }
    }
}

/// `[pipeline]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Prefix of every iceoryx2 service of this pipeline, so two pipelines can coexist.
    /// Default `"fleetrec"`. Letters, digits, `-` and `_` only.
    pub name: String,
    /// Directory for pid files and logs of `scripts/start-all.sh`. Default `"./data/run"`.
    pub run_dir: PathBuf,
    /// How often each stage publishes its status, in milliseconds. Default `250`.
    pub status_interval_ms: u64,
    /// Depth of each subscriber's buffer on the messages service. Default `1024`.
    pub message_buffer: usize,
    /// Largest message payload in bytes that travels through shared memory; larger ones are
    /// counted as dropped. Default `4194304` (4 MiB).
    pub max_message_size: usize,
    /// How long a publisher waits for a full subscriber buffer before it drops (and counts)
    /// the message, in microseconds. Default `500`.
    pub backpressure_timeout_us: u64,
    /// Topics announced with history, so late subscribers learn all of them. Default `512`.
    pub max_topics: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            name: "fleetrec".into(),
            run_dir: PathBuf::from("./data/run"),
            status_interval_ms: 250,
            message_buffer: 1024,
            max_message_size: 4 * 1024 * 1024,
            backpressure_timeout_us: 500,
            max_topics: 512,
        }
    }
}

/// `compress` and `encryption` accept `false` or `"none"`; nothing else is implemented yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "`false` or a name such as \"none\"")]
pub enum Toggle {
    /// `true` / `false`
    Bool(bool),
    /// A named algorithm, `"none"` for off.
    Name(String),
}

impl Toggle {
    fn is_off(&self) -> bool {
        matches!(self, Toggle::Bool(false)) || matches!(self, Toggle::Name(n) if n == "none")
    }
}

/// `storage.io_mode`: how the writer writes segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// Measure both modes under load and use the faster one.
    #[default]
    Auto,
    /// `O_DIRECT` into preallocated space, whenever commits are big enough.
    Direct,
    /// Through the page cache, always.
    Buffered,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Recording directory (segments and sidecar manifests). Default `"./data/recordings"`.
    pub path: PathBuf,
    /// Segment rotation size in bytes. Default `16777216` (16 MiB). Must be at least 4096.
    pub wal_segment_size: u64,
    /// Also rotate a segment after this many seconds; `0` turns it off. Default `0`.
    pub segment_max_duration_s: u64,
    /// Group commit: fdatasync at least this often, in milliseconds. Default `2` (at 100 MB/s
    /// of 4 KiB messages: durable latency p99 about 4 ms, against about 8 ms with 5; at high
    /// rates commits are as big as the syncs in flight make them, so throughput is the same;
    /// at low rates it is the number of fdatasyncs a second: raise it to spare flash).
    pub commit_interval_ms: u64,
    /// Group commit: fdatasync once this many bytes are unsynced. Default `8388608` (8 MiB).
    pub commit_bytes: u64,
    /// How segment files are written: `"auto"` measures direct (`O_DIRECT` into preallocated
    /// space) and buffered (page cache) segments while the recording is fast and uses direct
    /// only where it made data durable at least 15% faster (buffered first), with a trial
    /// of 4 segments of the other mode after 32 segments (twice as many after each trial that
    /// changed nothing, up to 512);
    /// `"direct"` or `"buffered"` fix the mode. A slow recording (small commits) is always buffered. Default
    /// `"auto"`.
    pub io_mode: IoMode,
    /// Segment compression. Default `"none"` (only `"none"`/`false` is implemented).
    pub compress: Toggle,
    /// Segment encryption. Default `"none"` (only `"none"`/`false` is implemented).
    pub encryption: Toggle,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data/recordings"),
            wal_segment_size: 16 * 1024 * 1024,
            segment_max_duration_s: 0,
            commit_interval_ms: 2,
            commit_bytes: 8 * 1024 * 1024,
            io_mode: IoMode::Auto,
            compress: Toggle::Name("none".into()),
            encryption: Toggle::Name("none".into()),
        }
    }
}

/// `[sync]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// S3-compatible endpoint URL. Default `"http://127.0.0.1:9000"`.
    pub endpoint: String,
    /// Bucket name. Default `"fleetrec"`.
    pub bucket: String,
    /// Object key prefix. Default `"fleet"`.
    pub prefix: String,
    /// Multipart part size in bytes, at least 5 MiB. Default `16777216` (16 MiB).
    pub chunk_size: u64,
    /// Retries per part before the segment waits for connectivity. Default `7`.
    pub max_retries: u32,
    /// Region for request signing. Default `"us-east-1"`.
    pub region: String,
    /// First backoff delay in milliseconds (doubles per retry, with jitter). Default `200`.
    pub retry_base_ms: u64,
    /// Longest backoff delay in milliseconds. Default `30000`.
    pub retry_cap_ms: u64,
    /// Give up on a part after this many seconds of retrying, whatever `max_retries` says;
    /// the segment then waits for the next connectivity probe. Default `120`.
    pub retry_timeout_s: u64,
    /// Seconds between connectivity probes while offline. Default `5`.
    pub probe_interval_s: u64,
    /// Seconds between directory rescans for sealed segments. Default `10`.
    pub rescan_interval_s: u64,
    /// Parts uploaded concurrently per segment. Default `2`.
    pub concurrency: usize,
    /// Upload bandwidth limit in bytes per second; `0` means unlimited. Default `0`.
    pub bandwidth_limit: u64,
    /// Directory of the upload journals. Default: `<storage.path>/.upload`.
    pub state_dir: Option<PathBuf>,
    /// AWS-style credentials file (`[default]` with `aws_access_key_id`, `aws_secret_access_key`).
    /// Default: none (the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables).
    pub credentials_file: Option<PathBuf>,
    /// Delete uploaded and verified segments, oldest first, while the recording file system is
    /// fuller than this percentage; `0` turns retention off. Default `0`.
    pub retention_max_disk_percent: u8,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "fleetrec".into(),
            prefix: "fleet".into(),
            chunk_size: 16 * 1024 * 1024,
            max_retries: 7,
            region: "us-east-1".into(),
            retry_base_ms: 200,
            retry_cap_ms: 30_000,
            retry_timeout_s: 120,
            probe_interval_s: 5,
            rescan_interval_s: 10,
            concurrency: 2,
            bandwidth_limit: 0,
            state_dir: None,
            credentials_file: None,
            retention_max_disk_percent: 0,
        }
    }
}

/// Where ingest takes its messages from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestSource {
    /// Simulated robots (`[synthetic]`), no ROS install needed.
    Synthetic,
    /// A live ROS 2 graph (r2r).
    Ros2,
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// `"synthetic"` or `"ros2"`. Default `"synthetic"`. `--source` overrides it.
    pub source: IngestSource,
    /// Robot that topics outside every configured namespace belong to. Default `"default"`.
    pub default_robot: String,
    /// ROS 2 source: record only topics whose full name matches this regex (like
    /// `ros2 bag record -e`). Default `""`: every topic.
    pub include: String,
    /// ROS 2 source: skip topics whose full name matches this regex (like `ros2 bag record -x`),
    /// applied after `include`. Default `""`: none.
    pub exclude: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            source: IngestSource::Synthetic,
            default_robot: "default".into(),
            include: String::new(),
            exclude: String::new(),
        }
    }
}

/// `[[robots]]`: one robot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    /// Robot name, used in topic names, file names and object keys. Required.
    pub name: String,
    /// ROS namespace of the robot. Default: `/<name>`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// ROS domain id for robots on their own domain. Default: none (the ingest's domain).
    #[serde(default)]
    pub domain_id: Option<u32>,
    /// ROS 2 source: this robot's include regex on full topic names, replacing
    /// `ingest.include`. Default: none (`ingest.include` applies).
    #[serde(default)]
    pub include: Option<String>,
    /// ROS 2 source: this robot's exclude regex on full topic names, replacing
    /// `ingest.exclude`. Default: none (`ingest.exclude` applies).
    #[serde(default)]
    pub exclude: Option<String>,
}

/// `[synthetic]`: simulated robots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Number of robots when `[[robots]]` is empty (`robot1..robotN`). Default `2`.
    pub robots: usize,
    /// Multiplies every topic's rate (for benchmarks). Default `1.0`.
    pub rate_scale: f64,
    /// Stop after this many seconds; `0` runs until stopped. Default `0`.
    pub duration_s: u64,
    /// Stop after this many messages per topic; `0` means no limit. Default `0`.
    pub max_messages_per_topic: u64,
    /// Topics each robot publishes. Default: imu 200 Hz, scan 10 Hz (360 ranges), pose 50 Hz,
    /// camera 5 Hz (160x120 rgb8), status 1 Hz.
    pub topics: Vec<SyntheticTopic>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        let t = |name: &str, ty: &str, rate_hz: f64, size: u32| SyntheticTopic {
            name: name.into(),
            r#type: ty.into(),
            rate_hz,
            size,
        };
        Self {
            robots: 2,
            rate_scale: 1.0,
            duration_s: 0,
            max_messages_per_topic: 0,
            topics: vec![
                t("imu", "sensor_msgs/msg/Imu", 200.0, 0),
                t("scan", "sensor_msgs/msg/LaserScan", 10.0, 360),
                t("pose", "geometry_msgs/msg/PoseStamped", 50.0, 0),
                t("camera/image_raw", "sensor_msgs/msg/Image", 5.0, 160),
                t("status", "std_msgs/msg/String", 1.0, 32),
            ],
        }
    }
}

/// One simulated topic; published as `/<robot>/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticTopic {
    /// Topic name below the robot's namespace, e.g. `imu`.
    pub name: String,
    /// ROS type: one of `sensor_msgs/msg/Imu`, `sensor_msgs/msg/LaserScan`,
    /// `geometry_msgs/msg/PoseStamped`, `sensor_msgs/msg/Image`, `std_msgs/msg/String`.
    pub r#type: String,
    /// Messages per second.
    pub rate_hz: f64,
    /// Payload size knob: LaserScan ranges, Image width (height = width * 3 / 4, rgb8),
    /// String length; ignored for fixed-size types. Default `0`.
    #[serde(default)]
    pub size: u32,
}

/// The message types the synthetic source can produce.
pub const SYNTHETIC_TYPES: [&str; 5] = [
    "sensor_msgs/msg/Imu",
    "sensor_msgs/msg/LaserScan",
    "geometry_msgs/msg/PoseStamped",
    "sensor_msgs/msg/Image",
    "std_msgs/msg/String",
];

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of_offset(text, s.start));
            let key = e.span().and_then(|s| key_at(text, s.start));
            let message = e.message().lines().next().unwrap_or("invalid TOML").to_string();
            ConfigError { file: path.to_path_buf(), line, key, message }
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            file: path.to_path_buf(),
            line: line_of_key(text, &key),
            key: Some(key),
            message,
        })?;
        Ok(config)
    }

    /// Checks values serde cannot check. Returns the dotted key and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        let p = &self.pipeline;
        if p.name.is_empty()
            || p.name.len() > 64
            || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return err("pipeline.name", format!("`{}` must be 1..64 letters, digits, `-` or `_`", p.name));
        }
        if p.status_interval_ms == 0 {
            return err("pipeline.status_interval_ms", "must be > 0".into());
        }
        if p.message_buffer == 0 {
            return err("pipeline.message_buffer", "must be > 0".into());
        }
        if p.max_message_size < 1024 {
            return err("pipeline.max_message_size", "must be >= 1024".into());
        }
        if p.max_topics == 0 {
            return err("pipeline.max_topics", "must be > 0".into());
        }
        let s = &self.storage;
        if s.path.as_os_str().is_empty() {
            return err("storage.path", "must not be empty".into());
        }
        if s.wal_segment_size == 0 {
            return err("storage.wal_segment_size", "must be > 0".into());
        }
        if s.wal_segment_size < 4096 || s.wal_segment_size > MAX_SEGMENT_SIZE {
            return err(
                "storage.wal_segment_size",
                format!("{} is outside 4096..={MAX_SEGMENT_SIZE}", s.wal_segment_size),
            );
        }
        if s.commit_interval_ms == 0 {
            return err("storage.commit_interval_ms", "must be > 0".into());
        }
        if s.commit_bytes == 0 {
            return err("storage.commit_bytes", "must be > 0".into());
        }
        if !s.compress.is_off() {
            return err("storage.compress", "only \"none\" is implemented".into());
        }
        if !s.encryption.is_off() {
            return err("storage.encryption", "only \"none\" is implemented".into());
        }
        let y = &self.sync;
        if y.chunk_size < MIN_CHUNK_SIZE {
            return err(
                "sync.chunk_size",
                format!("{} is below the S3 minimum part size {MIN_CHUNK_SIZE} (5 MiB)", y.chunk_size),
            );
        }
        if y.concurrency == 0 {
            return err("sync.concurrency", "must be > 0".into());
        }
        if y.retention_max_disk_percent > 99 {
            return err("sync.retention_max_disk_percent", "must be 0 (off) or 1..=99".into());
        }
        if y.retry_base_ms == 0 || y.retry_cap_ms < y.retry_base_ms {
            return err("sync.retry_cap_ms", "need 0 < retry_base_ms <= retry_cap_ms".into());
        }
        if y.bucket.is_empty() {
            return err("sync.bucket", "must not be empty".into());
        }
        if !(y.endpoint.starts_with("http://") || y.endpoint.starts_with("https://")) {
            return err("sync.endpoint", format!("`{}` must start with http:// or https://", y.endpoint));
        }
        if self.robots.len() > MAX_ROBOTS {
            return err("robots", format!("{} robots configured, at most {MAX_ROBOTS}", self.robots.len()));
        }
        for (i, r) in self.robots.iter().enumerate() {
            if !valid_robot_name(&r.name) {
                return err(
                    "robots.name",
                    format!("robot #{}: `{}` must be 1..31 letters, digits, `-` or `_`", i + 1, r.name),
                );
            }
            if let Some(ns) = &r.namespace {
                if !ns.starts_with('/') {
                    return err("robots.namespace", format!("robot `{}`: `{ns}` must start with `/`", r.name));
                }
            }
        }
        if !valid_robot_name(&self.ingest.default_robot) {
            return err("ingest.default_robot", "must be 1..31 letters, digits, `-` or `_`".into());
        }
        if self.export.dir.as_os_str().is_empty() {
            return err("export.dir", "must not be empty".into());
        }
        let y = &self.synthetic;
        if self.robots.is_empty() && (y.robots == 0 || y.robots > MAX_ROBOTS) {
            return err("synthetic.robots", format!("{} is outside 1..={MAX_ROBOTS}", y.robots));
        }
        if !(y.rate_scale > 0.0 && y.rate_scale.is_finite()) {
            return err("synthetic.rate_scale", "must be a positive number".into());
        }
        for t in &y.topics {
            if !SYNTHETIC_TYPES.contains(&t.r#type.as_str()) {
                return err(
                    "synthetic.topics.type",
                    format!(
                        "topic `{}`: unknown type `{}`, expected one of {}",
                        t.name,
                        t.r#type,
                        SYNTHETIC_TYPES.join(", ")
                    ),
                );
            }
            if !(t.rate_hz > 0.0 && t.rate_hz.is_finite()) {
                return err("synthetic.topics.rate_hz", format!("topic `{}`: must be a positive number", t.name));
            }
            if t.name.is_empty() || t.name.starts_with('/') {
                return err("synthetic.topics.name", format!("`{}` must be a relative topic name", t.name));
            }
        }
        Ok(())
    }

    /// The robots of this pipeline: the configured ones, or `robot1..robotN` for synthetic.
    pub fn robot_names(&self) -> Vec<String> {
        if self.robots.is_empty() {
            (1..=self.synthetic.robots).map(|i| format!("robot{i}")).collect()
        } else {
            self.robots.iter().map(|r| r.name.clone()).collect()
        }
    }
}

fn valid_robot_name(n: &str) -> bool {
    !n.is_empty() && n.len() < 32 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The dotted key (`section.key`, or the section of a header line) at a byte offset.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_no = line_of_offset(text, offset);
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let header = line
            .strip_prefix("[[")
            .and_then(|l| l.split("]]").next())
            .or_else(|| line.strip_prefix('[').and_then(|l| l.split(']').next()));
        if i + 1 == line_no {
            if let Some(h) = header {
                return Some(h.trim().to_string());
            }
            let (k, _) = line.split_once('=')?;
            let k = k.trim().trim_matches('"');
            return Some(if section.is_empty() { k.to_string() } else { format!("{section}.{k}") });
        }
        if let Some(h) = header {
            section = h.trim().to_string();
        }
    }
    None
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.matches('\n').count() + 1)
}

/// Finds the line of `section.key` (or `section` for array tables) by a light scan of the text.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (s, k),
        None => (dotted, ""),
    };
    let mut current = String::new();
    let mut section_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            current = h.trim().to_string();
            if current == section || current == dotted {
                section_line.get_or_insert(i + 1);
            }
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = h.trim().to_string();
            if current == section || current == dotted {
                section_line.get_or_insert(i + 1);
            }
            continue;
        }
        if current == section && !key.is_empty() {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(i + 1);
                }
            }
        }
    }
    section_line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.storage.wal_segment_size, 16 * 1024 * 1024);
        assert_eq!(c.robot_names(), vec!["robot1", "robot2"]);
    }

    #[test]
    fn shipped_default_config_parses() {
        let text = include_str!("../../config/default.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.pipeline.name, "fleetrec");
        assert_eq!(c.sync.max_retries, 7);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[storage]\npath = \"x\"\nwal_segmnt_size = 5\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key.as_deref(), Some("storage.wal_segmnt_size"));
        let s = e.to_string();
        assert!(s.starts_with("test.toml:3: key `storage.wal_segmnt_size`: unknown field"), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn wrong_type_names_line() {
        let e = parse("[sync]\nmax_retries = \"seven\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sync.max_retries"));
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn zero_segment_size_is_rejected_with_line() {
        let e = parse("[pipeline]\nname = \"a\"\n[storage]\n\nwal_segment_size = 0\n").unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("storage.wal_segment_size"));
        assert_eq!(e.to_string(), "test.toml:5: key `storage.wal_segment_size`: must be > 0");
    }

    #[test]
    fn small_chunk_is_rejected() {
        let e = parse("[sync]\nchunk_size = 1048576\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("5 MiB"), "{e}");
    }

    #[test]
    fn seed_keys_are_accepted() {
        let c = parse(
            "[storage]\npath = \"/var/fleetrec\"\nwal_segment_size = 8388608\ncompress = false\nencryption = \"none\"\n\
             [sync]\nendpoint = \"http://10.0.0.1:9000\"\nbucket = \"b\"\nchunk_size = 5242880\nmax_retries = 3\n",
        )
        .unwrap();
        assert_eq!(c.storage.path, PathBuf::from("/var/fleetrec"));
        assert_eq!(c.sync.chunk_size, 5 * 1024 * 1024);
        let e = parse("[storage]\ncompress = \"zstd\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn export_dir_and_unknown_export_key() {
        assert_eq!(parse("").unwrap().export.dir, PathBuf::from("./data/exports"));
        assert_eq!(parse("[export]\ndir = \"/srv/x\"\n").unwrap().export.dir, PathBuf::from("/srv/x"));
        let e = parse("[export]\ndir = \"/srv/x\"\nformat = \"csv\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("export.format")), "{e}");
        let e = parse("[export]\ndir = \"\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("export.dir")), "{e}");
    }

    #[test]
    fn robots_array_and_bad_synthetic_type() {
        let c = parse("[[robots]]\nname = \"alpha\"\n[[robots]]\nname = \"beta\"\nnamespace = \"/b\"\n").unwrap();
        assert_eq!(c.robot_names(), vec!["alpha", "beta"]);
        let e =
            parse("[synthetic]\nrobots = 2\n[[synthetic.topics]]\nname = \"x\"\ntype = \"foo/Bar\"\nrate_hz = 1.0\n")
                .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("synthetic.topics.type"));
        assert_eq!(e.line, Some(5));
    }
}
