//! What every stage binary's `status` subcommand does: read the stage's latest status from
//! shared memory, or report that the stage is not running.

use std::time::Duration;

use crate::config::Config;
use crate::plane::{read_cstr, Plane, PlaneError, Stage, StageStatus, StatusReader};

/// Why no status could be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The plane could not be opened.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// No fresh status arrived: the stage is not running.
    #[error("{stage} is not running in pipeline `{pipeline}` (no status within {waited_ms} ms)")]
    NotRunning {
        /// Stage name.
        stage: &'static str,
        /// Pipeline name.
        pipeline: String,
        /// How long we waited.
        waited_ms: u64,
    },
}

/// Waits for a status of `stage` that is at most a few status intervals old.
pub fn read_status(config: &Config, stage: Stage) -> Result<StageStatus, StatusError> {
    let plane = Plane::open(&format!("{}-status", stage.name()), &config.pipeline)?;
    let mut reader = StatusReader::new(&plane, stage)?;
    let interval = config.pipeline.status_interval_ms;
    let waited_ms = (interval * 4).max(1500);
    let min_updated = crate::time::now_ns().saturating_sub(waited_ms * 1_000_000);
    let first = reader.wait_fresh(min_updated, Duration::from_millis(waited_ms)).ok_or(StatusError::NotRunning {
        stage: stage.name(),
        pipeline: config.pipeline.name.clone(),
        waited_ms,
    })?;
    if stage != Stage::Ingest {
        return Ok(first);
    }
    // Several ingest processes (one per ROS domain) may publish this status; each one's
    // latest reaches a new reader when it next publishes. Listen one interval and a half more
    // so that the merged status covers all of them.
    let until = std::time::Instant::now() + Duration::from_millis(interval + interval / 2);
    while std::time::Instant::now() < until {
        reader.poll();
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(reader.poll().copied().unwrap_or(first))
}

/// Human-readable status, one block.
pub fn format_status(s: &StageStatus) -> String {
    let mut out = format!(
        "{} (pid {}): {}\n  messages {}  bytes {}  dropped {}  errors {}  corrupt {}\n  rate {:.1} msg/s  {:.1} MB/s  queue {}  segments {}  durable bytes {}\n",
        Stage::from_u32(s.stage).map_or("unknown", Stage::name),
        s.pid,
        s.state().name(),
        s.messages,
        s.bytes,
        s.dropped,
        s.errors,
        s.corrupt,
        s.rate_msgs,
        s.rate_bytes / 1e6,
        s.queue_depth,
        s.segments,
        s.durable_bytes,
    );
    let detail = read_cstr(&s.detail);
    if !detail.is_empty() {
        out.push_str(&format!("  detail: {detail}\n"));
    }
    for r in s.robots() {
        out.push_str(&format!(
            "  robot {:<12} topics {:>3}  messages {:>10}  dropped {:>8}  {:>8.1} msg/s\n",
            read_cstr(&r.name),
            r.topic_count,
            r.messages,
            r.dropped,
            r.rate_hz
        ));
    }
    for t in s.topics() {
        out.push_str(&format!(
            "    {:<32} messages {:>10}  dropped {:>8}  last seq {:>10}  durable seq {:>10}\n",
            read_cstr(&t.name),
            t.messages,
            t.dropped,
            t.last_sequence,
            t.durable_sequence
        ));
    }
    out
}

/// The configuration file used when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

/// Loads `path`, or [`DEFAULT_CONFIG_PATH`] if it exists, or the built-in defaults.
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, crate::config::ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => {
            let p = std::path::Path::new(DEFAULT_CONFIG_PATH);
            if p.exists() {
                Config::load(p)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// What `fleetrec-<stage> status [--json]` prints, and its exit code (0 running, 1 not).
pub fn status_command(config: &Config, stage: Stage, json: bool) -> (String, i32) {
    match read_status(config, stage) {
        Ok(s) if json => (s.to_json().to_string(), 0),
        Ok(s) => (format_status(&s), 0),
        Err(e) if json => {
            (serde_json::json!({ "stage": stage.name(), "running": false, "error": e.to_string() }).to_string(), 1)
        }
        Err(e) => (format!("{e}"), 1),
    }
}

/// Control command names as typed on the command line.
pub const CONTROL_COMMANDS: [(&str, crate::plane::ControlCommand); 7] = [
    ("start", crate::plane::ControlCommand::Start),
    ("pause", crate::plane::ControlCommand::Pause),
    ("resume", crate::plane::ControlCommand::Resume),
    ("stop", crate::plane::ControlCommand::Stop),
    ("split-segment", crate::plane::ControlCommand::SplitSegment),
    ("sync-now", crate::plane::ControlCommand::SyncNow),
    ("export", crate::plane::ControlCommand::Export),
];

/// What `fleetrec-<stage> control COMMAND [ARG]` prints and its exit code: 0 done, 1 refused or
/// failed, 3 stage not running / no answer, 2 unknown command.
pub fn control_command(config: &Config, stage: Stage, name: &str, arg: &str) -> (String, i32) {
    let Some((_, command)) = CONTROL_COMMANDS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = CONTROL_COMMANDS.iter().map(|(n, _)| *n).collect();
        return (format!("unknown control command `{name}`; expected one of {}", names.join(", ")), 2);
    };
    let plane = match Plane::open(&format!("{}-control", stage.name()), &config.pipeline) {
        Ok(p) => p,
        Err(e) => return (e.to_string(), 3),
    };
    match crate::control::ControlClient::new(&plane).request(stage, *command, arg, Duration::from_secs(10)) {
        Ok(r) if r.ok => (format!("{}: {}", stage.name(), r.message), 0),
        Ok(r) => (format!("{}: refused: {}", stage.name(), r.message), 1),
        Err(e) => (e.to_string(), 3),
    }
}
