//! The exporter as a pipeline stage (`fleetrec-exporter --config FILE`): it serves
//! `ControlCommand::Export` requests from the viewer and the CLI over the control plane, runs
//! each export in the background (one at a time: a request while one runs fails at once with
//! a clear message, nothing is queued), and publishes its progress in its status.
//!
//! The request argument is a compact JSON object (at most 255 bytes):
//! `{"format":"parquet","robot":"robot1","topic":"imu|scan","start":"2026-11-25T10:00:00Z","end":"1764065000s"}`.
//! Only `format` is required. `robot` is one robot name; `topic` a regular expression on full
//! topic names; `start`/`end` times as on the command line (or ns as a JSON number). Alignment:
//! `"align":"/robot1/imu,/robot1/pose"` with `"on":"/robot1/scan"` or `"rate":10`, and
//! `"max_age":"100ms"`. Unknown keys are refused. The export reads the sealed segments of
//! `[storage] path` into a new folder `<[export] dir>/<UTC time>-<format>`; the answer names it.
//!
//! | `StageStatus` field | exporter meaning |
//! |---|---|
//! | `state` | `running` while an export runs, `waiting` when idle, `stopping` at exit |
//! | `messages` | messages exported so far by the current (or last) export |
//! | `queue_depth` | messages the current (or last) export goes through (from the segment manifests) |
//! | `bytes` | segment bytes read by the current (or last) export |
//! | `segments` | exports finished successfully since start |
//! | `errors` | exports failed since start |
//! | `dropped` | messages of the current (or last) export that did not decode (not exported) |
//! | `corrupt` | corrupt records skipped by the current (or last) export |
//! | `rate_msgs`, `rate_bytes` | export speed over the last status interval |
//! | `detail` | `export parquet 45% -> DIR`, `done parquet 1200 messages -> DIR`, `failed parquet: WHY`, or `idle` |

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;
use shared::config::Config;
use shared::control::{ControlReply, ControlServer};
use shared::plane::{ControlCommand, Plane, Stage, StageState, StageStatus};
use tracing::{error, info, warn};

use crate::align::{AlignSpec, Reference};
use crate::error::{ExportError, Result};
use crate::export::{export, ExportOptions};
use crate::format::Format;
use crate::time_arg::{parse_duration, parse_time};

/// An export request, parsed from the control request's JSON argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    /// Output format.
    pub format: Format,
    /// One robot, if any.
    pub robot: Option<String>,
    /// Topic regex, if any.
    pub topic: Option<String>,
    /// Earliest receive time, ns.
    pub start_ns: Option<u64>,
    /// Latest receive time, ns.
    pub end_ns: Option<u64>,
    /// Alignment, if asked.
    pub align: Option<AlignSpec>,
}

const KEYS: [&str; 9] = ["format", "robot", "topic", "start", "end", "align", "on", "rate", "max_age"];

impl ExportRequest {
    /// Parses and checks a request; the error says which key is wrong and why.
    pub fn parse(arg: &str) -> std::result::Result<ExportRequest, String> {
        let v: serde_json::Value = serde_json::from_str(arg.trim())
            .map_err(|e| format!("the export argument is not JSON ({e}); e.g. {{\"format\":\"parquet\"}}"))?;
        let obj = v.as_object().ok_or("the export argument must be a JSON object, e.g. {\"format\":\"parquet\"}")?;
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("unknown key `{k}` (keys: {})", KEYS.join(", ")));
        }
        let text = |k: &str| -> std::result::Result<Option<String>, String> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("`{k}` must be a string, not {other}")),
            }
        };
        let time = |k: &str| -> std::result::Result<Option<u64>, String> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Number(n)) => n.as_u64().map(Some).ok_or(format!("`{k}`: {n} is not ns")),
                Some(serde_json::Value::String(s)) => parse_time(s).map(Some).map_err(|e| format!("`{k}`: {e}")),
                Some(other) => Err(format!("`{k}` must be a time, not {other}")),
            }
        };
        let format: Format = text("format")?
            .ok_or_else(|| format!("`format` is required ({})", Format::NAMES.join(", ")))?
            .parse()
            .map_err(|e: String| format!("`format`: {e}"))?;
        let topic = text("topic")?;
        if let Some(t) = &topic {
            Regex::new(t).map_err(|e| format!("`topic` is not a regular expression: {e}"))?;
        }
        let (start_ns, end_ns) = (time("start")?, time("end")?);
        if let (Some(s), Some(e)) = (start_ns, end_ns) {
            if s > e {
                return Err(format!("`start` {s} is after `end` {e}"));
            }
        }
        let align = match text("align")? {
            None => {
                if let Some(k) = ["on", "rate", "max_age"].into_iter().find(|k| obj.contains_key(*k)) {
                    return Err(format!("`{k}` only goes with `align`"));
                }
                None
            }
            Some(list) => {
                let topics: Vec<String> =
                    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                let reference = match (text("on")?, obj.get("rate")) {
                    (Some(t), None) => Reference::Topic(t),
                    (None, Some(r)) => Reference::Rate(r.as_f64().ok_or("`rate` must be a number (Hz)")?),
                    _ => return Err("`align` needs the ticks: `on` (a topic) or `rate` (Hz)".into()),
                };
                let max_age_ns = parse_duration(&text("max_age")?.ok_or("`align` needs `max_age`, e.g. \"100ms\"")?)
                    .map_err(|e| format!("`max_age`: {e}"))?;
                let spec = AlignSpec { topics, reference, max_age_ns };
                spec.validate(format).map_err(|e| e.to_string())?;
                if topic.is_some() {
                    return Err("`topic` cannot be combined with `align` (align names its topics)".into());
                }
                Some(spec)
            }
        };
        Ok(ExportRequest { format, robot: text("robot")?, topic, start_ns, end_ns, align })
    }
}

/// What the current or last export did; shared with its thread.
#[derive(Debug, Clone, Default)]
struct JobState {
    running: bool,
    format: &'static str,
    out: PathBuf,
    messages: u64,
    messages_total: u64,
    bytes_done: u64,
    bytes_total: u64,
    decode_errors: u64,
    corrupt: u64,
    finished_ok: u64,
    failed: u64,
    /// Detail when idle.
    last: String,
}

/// Serves export requests: one export at a time, on its own thread.
#[derive(Debug)]
pub struct ExportService {
    input: PathBuf,
    export_dir: PathBuf,
    state: Arc<Mutex<JobState>>,
    cancel: Arc<AtomicBool>,
    job: Option<JoinHandle<()>>,
    last_rate: (Instant, u64, u64),
    /// When the service started (the status's `started_ns`).
    started_ns: u64,
}

fn lock(state: &Mutex<JobState>) -> MutexGuard<'_, JobState> {
    // A panicked export thread leaves plain counters behind: still readable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl ExportService {
    /// A service exporting the recordings in `input` into subfolders of `export_dir`.
    pub fn new(input: PathBuf, export_dir: PathBuf) -> ExportService {
        let last = format!("idle; exports go to {}", export_dir.display());
        ExportService {
            input,
            export_dir,
            state: Arc::new(Mutex::new(JobState { last, ..JobState::default() })),
            cancel: Arc::new(AtomicBool::new(false)),
            job: None,
            last_rate: (Instant::now(), 0, 0),
            started_ns: shared::time::now_ns(),
        }
    }

    /// Whether an export runs.
    pub fn busy(&self) -> bool {
        lock(&self.state).running
    }

    /// Answers one control request.
    pub fn handle(&mut self, command: ControlCommand, arg: &str) -> ControlReply {
        match command {
            ControlCommand::Export => match self.start(arg) {
                Ok(out) => ControlReply::ok(format!("export started -> {}", out.display())),
                Err(e) => ControlReply::failed(e),
            },
            ControlCommand::Stop => {
                self.cancel.store(true, Ordering::Relaxed);
                shared::shutdown::request();
                ControlReply::ok("exporter stopping (a running export is cancelled)")
            }
            other => ControlReply::failed(format!("{other:?} is not served by the exporter (it serves export, stop)")),
        }
    }

    /// Starts an export from a JSON request; returns its output folder.
    pub fn start(&mut self, arg: &str) -> std::result::Result<PathBuf, String> {
        {
            let s = lock(&self.state);
            if s.running {
                return Err(format!(
                    "busy: export {} {}% -> {} is running; one export at a time, retry when the status says waiting",
                    s.format,
                    percent(&s),
                    s.out.display()
                ));
            }
        }
        if let Some(h) = self.job.take() {
            let _ = h.join();
        }
        let req = ExportRequest::parse(arg)?;
        if !self.input.is_dir() {
            return Err(format!("no recordings: {} is not a folder ([storage] path)", self.input.display()));
        }
        let out = new_export_folder(&self.export_dir, req.format)
            .map_err(|e| format!("cannot create an export folder in {}: {e}", self.export_dir.display()))?;
        let mut opts = ExportOptions::new(self.input.clone(), out.clone(), req.format);
        opts.robots = req.robot.into_iter().collect();
        opts.topic_regex = req.topic;
        opts.start_ns = req.start_ns;
        opts.end_ns = req.end_ns;
        opts.align = req.align;
        self.cancel.store(false, Ordering::Relaxed);
        opts.cancel = Some(self.cancel.clone());
        {
            let mut s = lock(&self.state);
            let (finished_ok, failed) = (s.finished_ok, s.failed);
            *s = JobState {
                running: true,
                format: req.format.name(),
                out: out.clone(),
                finished_ok,
                failed,
                ..JobState::default()
            };
        }
        self.last_rate = (Instant::now(), 0, 0);
        let state = self.state.clone();
        let spawned = std::thread::Builder::new().name("fleetrec-export".into()).spawn(move || run_job(&opts, &state));
        match spawned {
            Ok(h) => {
                self.job = Some(h);
                info!(out = %out.display(), format = req.format.name(), "export started");
                Ok(out)
            }
            Err(e) => {
                let mut s = lock(&self.state);
                s.running = false;
                s.failed += 1;
                Err(format!("cannot start the export thread: {e}"))
            }
        }
    }

    /// The stage status (see the module docs for the meaning of each field).
    pub fn status(&mut self) -> StageStatus {
        let s = lock(&self.state).clone();
        let mut st = StageStatus::new(Stage::Exporter);
        st.started_ns = self.started_ns;
        st.set_state(if s.running { StageState::Running } else { StageState::Waiting });
        st.updated_ns = shared::time::now_ns();
        st.messages = s.messages;
        st.queue_depth = s.messages_total.max(s.messages);
        st.bytes = s.bytes_done;
        st.segments = s.finished_ok;
        st.errors = s.failed;
        st.dropped = s.decode_errors;
        st.corrupt = s.corrupt;
        let (t0, m0, b0) = self.last_rate;
        let dt = t0.elapsed().as_secs_f64();
        if dt > 0.0 {
            st.rate_msgs = s.messages.saturating_sub(m0) as f64 / dt;
            st.rate_bytes = s.bytes_done.saturating_sub(b0) as f64 / dt;
        }
        self.last_rate = (Instant::now(), s.messages, s.bytes_done);
        if s.running {
            st.set_detail(&format!("export {} {}% -> {}", s.format, percent(&s), s.out.display()));
        } else {
            st.set_detail(&s.last);
        }
        st
    }

    /// Waits for the running export, if any, to finish.
    pub fn wait(&mut self) {
        if let Some(h) = self.job.take() {
            let _ = h.join();
        }
    }

    /// Cancels a running export and waits for its thread.
    pub fn shutdown(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(h) = self.job.take() {
            let _ = h.join();
        }
    }
}

/// Progress in percent, by segment bytes read.
fn percent(s: &JobState) -> u64 {
    s.bytes_done.saturating_mul(100).checked_div(s.bytes_total).unwrap_or(0).min(100)
}

fn run_job(opts: &ExportOptions, state: &Mutex<JobState>) {
    let result = export(opts, &mut |p| {
        let mut s = lock(state);
        s.messages = p.messages;
        s.messages_total = p.messages_total;
        s.bytes_done = p.bytes_done;
        s.bytes_total = p.bytes_total;
    });
    let mut s = lock(state);
    s.running = false;
    let out = opts.out.display();
    match result {
        Ok(m) => {
            s.finished_ok += 1;
            s.messages = m.totals.messages;
            s.messages_total = m.totals.messages;
            s.bytes_done = s.bytes_total;
            s.decode_errors = m.totals.decode_errors;
            s.corrupt = m.totals.corrupt_records;
            s.last = format!("done {} {} messages -> {out}", s.format, m.totals.messages);
            info!(%out, messages = m.totals.messages, files = m.files.len(), "export done");
        }
        Err(ExportError::Cancelled) => {
            s.failed += 1;
            s.last = format!("cancelled {} -> {out} (incomplete: no manifest.json)", s.format);
            warn!(%out, "export cancelled: the folder is incomplete (no manifest.json)");
        }
        Err(e) => {
            s.failed += 1;
            s.last = format!("failed {}: {e}", s.format);
            error!(%out, error = %e, "export failed");
        }
    }
}

/// Creates `<dir>/<UTC time>-<format>` (with `-2`, `-3`, ... if taken).
fn new_export_folder(dir: &Path, format: Format) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stamp = utc_stamp(shared::time::now_ns() / 1_000_000_000);
    for n in 1..1000 {
        let name = if n == 1 { format!("{stamp}-{}", format.name()) } else { format!("{stamp}-{}-{n}", format.name()) };
        let path = dir.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("1000 exports in one second"))
}

/// `YYYYMMDDTHHMMSS` of seconds since the epoch, UTC.
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Runs the exporter stage until SIGTERM/SIGINT or a `stop` request.
pub fn serve(config: &Config) -> Result<()> {
    let err = |what: &str, e: &dyn std::fmt::Display| ExportError::Service { reason: format!("{what}: {e}") };
    shared::shutdown::install().map_err(|e| err("signal handlers", &e))?;
    let plane = Plane::open("exporter", &config.pipeline).map_err(|e| err("shared memory", &e))?;
    let status = plane.status_publisher(Stage::Exporter).map_err(|e| err("status service", &e))?;
    let control = ControlServer::new(&plane, Stage::Exporter).map_err(|e| err("control service", &e))?;
    let mut service = ExportService::new(config.storage.path.clone(), config.export.dir.clone());
    info!(
        recordings = %config.storage.path.display(),
        exports = %config.export.dir.display(),
        pipeline = %config.pipeline.name,
        "exporter serving export requests"
    );
    let every = Duration::from_millis(config.pipeline.status_interval_ms);
    let mut next_status = Instant::now();
    while !shared::shutdown::requested() {
        control.poll(|command, arg| service.handle(command, arg));
        if Instant::now() >= next_status {
            if let Err(e) = status.send_copy(service.status()) {
                warn!(?e, "could not publish status");
            }
            next_status = Instant::now() + every;
        }
        std::thread::sleep(Duration::from_millis(20).min(every));
    }
    service.shutdown();
    let mut last = service.status();
    last.set_state(StageState::Stopping);
    if let Err(e) = status.send_copy(last) {
        warn!(?e, "could not publish status");
    }
    info!("exporter stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let r = ExportRequest::parse(
            r#"{"format":"csv","robot":"robot1","topic":"imu$","start":"1700000000s","end":1700000001000000000}"#,
        )
        .unwrap();
        assert_eq!(r.format, Format::Csv);
        assert_eq!(r.robot.as_deref(), Some("robot1"));
        assert_eq!(r.topic.as_deref(), Some("imu$"));
        assert_eq!((r.start_ns, r.end_ns), (Some(1_700_000_000_000_000_000), Some(1_700_000_001_000_000_000)));
        let r = ExportRequest::parse(r#"{"format":"parquet","align":"/a,/b","rate":10,"max_age":"100ms"}"#).unwrap();
        assert_eq!(
            r.align,
            Some(AlignSpec {
                topics: vec!["/a".into(), "/b".into()],
                reference: Reference::Rate(10.0),
                max_age_ns: 100_000_000
            })
        );
        for (bad, needle) in [
            ("", "not JSON"),
            ("[1]", "JSON object"),
            ("{}", "`format` is required"),
            (r#"{"format":"xml"}"#, "unknown format"),
            (r#"{"format":"csv","colour":"red"}"#, "unknown key `colour`"),
            (r#"{"format":"csv","topic":"("}"#, "not a regular expression"),
            (r#"{"format":"csv","start":"yesterday"}"#, "`start`"),
            (r#"{"format":"csv","start":"20s","end":"10s"}"#, "after"),
            (r#"{"format":"csv","robot":3}"#, "must be a string"),
            (r#"{"format":"csv","rate":10}"#, "only goes with `align`"),
            (r#"{"format":"npy","align":"/a","rate":10,"max_age":"1s"}"#, "parquet or csv"),
            (r#"{"format":"csv","align":"/a","max_age":"1s"}"#, "`on`"),
            (r#"{"format":"csv","align":"/a","on":"/b"}"#, "max_age"),
        ] {
            let e = ExportRequest::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114T221320");
        assert_eq!(utc_stamp(951_782_400 + 3661), "20000229T010101");
    }

    #[test]
    fn one_export_at_a_time_and_status_follows_it() {
        let rec = tempfile::tempdir().unwrap();
        let exports = tempfile::tempdir().unwrap();
        let mut svc = ExportService::new(rec.path().to_path_buf(), exports.path().join("x"));
        let st = svc.status();
        assert_eq!(st.state(), StageState::Waiting);
        assert!(shared::plane::read_cstr(&st.detail).starts_with("idle"));
        // Occupy the slot as a running export does, then ask again: refused at once.
        lock(&svc.state).running = true;
        lock(&svc.state).format = "csv";
        let e = svc.start(r#"{"format":"parquet"}"#).unwrap_err();
        assert!(e.starts_with("busy: export csv 0%"), "{e}");
        assert_eq!(svc.status().state(), StageState::Running);
        lock(&svc.state).running = false;
        // An empty recording folder exports nothing, successfully, into a new folder.
        let out = svc.start(r#"{"format":"parquet"}"#).unwrap();
        assert!(out.starts_with(exports.path().join("x")));
        assert!(out.file_name().unwrap().to_string_lossy().ends_with("-parquet"));
        svc.wait();
        let st = svc.status();
        assert_eq!(st.state(), StageState::Waiting);
        assert_eq!((st.segments, st.errors, st.messages), (1, 0, 0));
        assert!(out.join("manifest.json").exists());
        let detail = shared::plane::read_cstr(&st.detail);
        assert!(detail.starts_with("done parquet 0 messages -> "), "{detail}");
        // A second export in the same second gets its own folder.
        let out2 = svc.start(r#"{"format":"parquet"}"#).unwrap();
        assert_ne!(out, out2);
        svc.wait();
        // No recordings folder: refused with the reason.
        let mut svc = ExportService::new(rec.path().join("nope"), exports.path().to_path_buf());
        let e = svc.start(r#"{"format":"csv"}"#).unwrap_err();
        assert!(e.contains("no recordings"), "{e}");
    }
}
