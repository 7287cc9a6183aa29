//! The Prometheus endpoint: [`render`] writes a [`Snapshot`] in the text exposition format
//! (version 0.0.4), [`MetricsServer`] serves the latest rendering over plain HTTP on
//! `GET /metrics`. Counters of a stage that is down are left out (only `fleetrec_stage_up` 0
//! remains), so a scrape never reports stale values as live.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, ViewerError};
use crate::snapshot::Snapshot;

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Formats a sample value (integers without a fraction).
fn value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, l)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(l));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value(v));
    }
}

/// Renders `snap` in the Prometheus text exposition format.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(8192);
    let mut f = Family { out: &mut out };
    f.header("fleetrec_stage_up", "gauge", "1 if the stage published a fresh status, else 0.");
    for s in &snap.stages {
        f.sample("fleetrec_stage_up", &[("stage", s.stage)], if s.up { 1.0 } else { 0.0 });
    }
    let up: Vec<_> = snap.stages.iter().filter(|s| s.up).collect();
    f.header("fleetrec_stage_state", "gauge", "1 for the current state of each running stage.");
    for s in &up {
        f.sample("fleetrec_stage_state", &[("stage", s.stage), ("state", &s.state)], 1.0);
    }
    type StageField = fn(&crate::snapshot::StageSnapshot) -> f64;
    let stage_families: [(&str, &str, &str, StageField); 9] = [
        ("fleetrec_stage_messages_total", "counter", "Messages handled by the stage.", |s| s.messages as f64),
        ("fleetrec_stage_bytes_total", "counter", "Payload bytes handled by the stage.", |s| s.bytes as f64),
        ("fleetrec_stage_dropped_total", "counter", "Messages dropped by the stage (counted, never silent).", |s| {
            s.dropped as f64
        }),
        ("fleetrec_stage_errors_total", "counter", "Errors seen by the stage.", |s| s.errors as f64),
        ("fleetrec_stage_corrupt_total", "counter", "Corrupt or torn records found.", |s| s.corrupt as f64),
        ("fleetrec_stage_segments_total", "counter", "Writer: segments sealed; uploader: segments uploaded.", |s| {
            s.segments as f64
        }),
        ("fleetrec_stage_queue_depth", "gauge", "Items waiting in the stage (writer: unsynced bytes).", |s| {
            s.queue_depth as f64
        }),
        ("fleetrec_stage_durable_bytes", "gauge", "Writer: bytes on stable storage; uploader: bytes uploaded.", |s| {
            s.durable_bytes as f64
        }),
        ("fleetrec_stage_messages_per_second", "gauge", "Message rate over the last status interval.", |s| s.rate_msgs),
    ];
    for (name, kind, help, get) in stage_families {
        f.header(name, kind, help);
        for s in &up {
            f.sample(name, &[("stage", s.stage)], get(s));
        }
    }
    f.header("fleetrec_stage_bytes_per_second", "gauge", "Payload bandwidth over the last status interval.");
    for s in &up {
        f.sample("fleetrec_stage_bytes_per_second", &[("stage", s.stage)], s.rate_bytes);
    }

    type RobotField = fn(&crate::snapshot::StageRobot) -> f64;
    let robot_families: [(&str, &str, &str, RobotField); 4] = [
        ("fleetrec_messages_total", "counter", "Messages handled, per stage and robot.", |r| r.messages as f64),
        ("fleetrec_bytes_total", "counter", "Payload bytes handled, per stage and robot.", |r| r.bytes as f64),
        ("fleetrec_dropped_total", "counter", "Messages dropped, per stage and robot.", |r| r.dropped as f64),
        ("fleetrec_messages_per_second", "gauge", "Message rate, per stage and robot.", |r| r.rate_hz),
    ];
    for (name, kind, help, get) in robot_families {
        f.header(name, kind, help);
        for s in &up {
            for r in &s.robots {
                f.sample(name, &[("stage", s.stage), ("robot", &r.name)], get(r));
            }
        }
    }

    f.header("fleetrec_topic_messages_total", "counter", "Messages handled, per stage, robot and topic.");
    for t in &snap.topics {
        for (stage, c) in [("ingest", t.ingest), ("writer", t.writer)] {
            if let Some(c) = c {
                let labels = [("stage", stage), ("robot", t.robot.as_str()), ("topic", t.name.as_str())];
                f.sample("fleetrec_topic_messages_total", &labels, c.messages as f64);
            }
        }
    }
    f.header("fleetrec_topic_dropped_total", "counter", "Messages dropped, per stage, robot and topic.");
    for t in &snap.topics {
        for (stage, c) in [("ingest", t.ingest), ("writer", t.writer)] {
            if let Some(c) = c {
                let labels = [("stage", stage), ("robot", t.robot.as_str()), ("topic", t.name.as_str())];
                f.sample("fleetrec_topic_dropped_total", &labels, c.dropped as f64);
            }
        }
    }
    f.header("fleetrec_topic_durable_sequence", "gauge", "Writer: highest sequence on stable storage.");
    for t in &snap.topics {
        if let Some(w) = t.writer {
            let labels = [("robot", t.robot.as_str()), ("topic", t.name.as_str())];
            f.sample("fleetrec_topic_durable_sequence", &labels, w.durable_sequence as f64);
        }
    }
    f.header(
        "fleetrec_topic_durable_lag_messages",
        "gauge",
        "Messages received by ingest but not yet on stable storage (durable watermark lag).",
    );
    for t in &snap.topics {
        if let Some(lag) = t.durable_lag {
            let labels = [("robot", t.robot.as_str()), ("topic", t.name.as_str())];
            f.sample("fleetrec_topic_durable_lag_messages", &labels, lag as f64);
        }
    }
    f.header(
        "fleetrec_topic_last_message_age_seconds",
        "gauge",
        "Seconds since the topic's message count last grew (status resolution; a lower bound when it has not grown since the viewer attached).",
    );
    for t in &snap.topics {
        if let Some(age) = t.last_message_age_s {
            let labels = [("robot", t.robot.as_str()), ("topic", t.name.as_str())];
            f.sample("fleetrec_topic_last_message_age_seconds", &labels, age as f64);
        }
    }
    f.header("fleetrec_stage_status_age_seconds", "gauge", "Seconds since the stage's newest status.");
    for s in &snap.stages {
        if let Some(age) = s.status_age_s {
            f.sample("fleetrec_stage_status_age_seconds", &[("stage", s.stage)], age as f64);
        }
    }
    f.header("fleetrec_stage_cpu_percent", "gauge", "CPU use of the stage's process, percent of one core.");
    for s in &up {
        if let Some(cpu) = s.cpu_percent {
            f.sample("fleetrec_stage_cpu_percent", &[("stage", s.stage)], f64::from(cpu));
        }
    }
    f.header("fleetrec_stage_memory_bytes", "gauge", "Resident memory of the stage's process.");
    for s in &up {
        if let Some(m) = s.memory_bytes {
            f.sample("fleetrec_stage_memory_bytes", &[("stage", s.stage)], m as f64);
        }
    }
    render_sync(&mut f, snap);
    render_system(&mut f, snap);
    out
}

fn render_sync(f: &mut Family<'_>, snap: &Snapshot) {
    let sync = &snap.sync;
    if !sync.up {
        return;
    }
    f.header("fleetrec_sync_online", "gauge", "1 if the upload endpoint answered the uploader's last probe.");
    if let Some(online) = sync.online {
        f.sample("fleetrec_sync_online", &[], if online { 1.0 } else { 0.0 });
    }
    f.header("fleetrec_sync_pending_bytes", "gauge", "Bytes of sealed segments not yet acknowledged by the server.");
    f.sample("fleetrec_sync_pending_bytes", &[], sync.pending_bytes as f64);
    f.header("fleetrec_sync_queued_segments", "gauge", "Sealed segments waiting for upload.");
    f.sample("fleetrec_sync_queued_segments", &[], sync.queued_segments as f64);
    f.header("fleetrec_sync_uploaded_segments_total", "counter", "Segments uploaded, over every run.");
    f.sample("fleetrec_sync_uploaded_segments_total", &[], sync.uploaded_segments as f64);
    f.header("fleetrec_sync_uploaded_bytes_total", "counter", "Bytes uploaded, over every run.");
    f.sample("fleetrec_sync_uploaded_bytes_total", &[], sync.uploaded_bytes as f64);
}

fn render_system(f: &mut Family<'_>, snap: &Snapshot) {
    let Some(sys) = &snap.system else { return };
    if let Some(cpu) = sys.cpu_percent {
        f.header("fleetrec_system_cpu_percent", "gauge", "CPU use of the machine, percent of all cores.");
        f.sample("fleetrec_system_cpu_percent", &[], f64::from(cpu));
    }
    f.header("fleetrec_system_memory_used_bytes", "gauge", "Memory in use on the machine.");
    f.sample("fleetrec_system_memory_used_bytes", &[], sys.memory_used_bytes as f64);
    f.header("fleetrec_system_memory_total_bytes", "gauge", "Memory of the machine.");
    f.sample("fleetrec_system_memory_total_bytes", &[], sys.memory_total_bytes as f64);
    if let Some(d) = &sys.disk {
        f.header("fleetrec_storage_available_bytes", "gauge", "Free bytes on the recording directory's filesystem.");
        f.sample("fleetrec_storage_available_bytes", &[("mount", &d.mount)], d.available_bytes as f64);
        f.header("fleetrec_storage_total_bytes", "gauge", "Size of the recording directory's filesystem.");
        f.sample("fleetrec_storage_total_bytes", &[("mount", &d.mount)], d.total_bytes as f64);
    }
    if let Some(b) = sys.recording_bytes {
        f.header("fleetrec_recording_dir_bytes", "gauge", "Bytes of files in the recording directory.");
        f.sample("fleetrec_recording_dir_bytes", &[], b as f64);
    }
    if let Some(l) = &sys.endpoint_latency {
        f.header("fleetrec_endpoint_up", "gauge", "1 if a TCP connection to the upload endpoint opened.");
        f.sample("fleetrec_endpoint_up", &[("target", &l.target)], if l.connect_ms.is_some() { 1.0 } else { 0.0 });
        if let Some(ms) = l.connect_ms {
            f.header(
                "fleetrec_endpoint_connect_seconds",
                "gauge",
                "Time to open a TCP connection to the upload endpoint.",
            );
            f.sample("fleetrec_endpoint_connect_seconds", &[("target", &l.target)], ms / 1000.0);
        }
    }
}

/// Serves `GET /metrics` (and `GET /`) with the latest rendering, on its own thread. Dropping it
/// stops the thread.
pub struct MetricsServer {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish()
    }
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free port; see [`MetricsServer::addr`]).
    pub fn start(addr: SocketAddr) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|source| ViewerError::MetricsBind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ViewerError::MetricsBind { addr, source })?;
        let body = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (Arc::clone(&body), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("viewer-metrics".into())
            .spawn(move || serve(&listener, &b, &s))
            .map_err(|source| ViewerError::Thread { name: "viewer-metrics", source })?;
        tracing::info!(%addr, "metrics endpoint listening");
        Ok(MetricsServer { addr, body, stop, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces what the endpoint serves.
    pub fn publish(&self, snap: &Snapshot) {
        let text = render(snap);
        *self.body.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, body: &Mutex<String>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                if let Err(e) = answer(stream, body) {
                    tracing::debug!(%e, "metrics request failed");
                }
            }
            Err(e) => tracing::warn!(%e, "metrics endpoint accept failed"),
        }
    }
}

fn answer(mut stream: TcpStream, body: &Mutex<String>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let is_get = request.starts_with("GET ");
    let (status, content_type, text) = if is_get && (path == "/metrics" || path == "/") {
        let text = body.lock().unwrap_or_else(PoisonError::into_inner).clone();
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
    } else {
        ("404 Not Found", "text/plain; charset=utf-8", "not found: try GET /metrics\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{StageRobot, StageSnapshot};

    fn stage(name: &'static str, up: bool) -> StageSnapshot {
        StageSnapshot {
            stage: name,
            up,
            state: if up { "running".into() } else { "down".into() },
            status_age_s: Some(0),
            started_ns: 1,
            cpu_percent: Some(3),
            memory_bytes: Some(1_000_000),
            pid: 1,
            messages: 10,
            bytes: 100,
            dropped: 2,
            errors: 0,
            queue_depth: 0,
            segments: 0,
            durable_bytes: 0,
            corrupt: 0,
            rate_msgs: 2.5,
            rate_bytes: 0.0,
            detail: String::new(),
            robots: vec![StageRobot { name: "r\"1".into(), messages: 10, bytes: 100, dropped: 2, rate_hz: 1.0 }],
        }
    }

    #[test]
    fn renders_up_stages_and_escapes_labels() {
        let snap = Snapshot {
            taken_ns: 0,
            pipeline: "p".into(),
            stages: vec![stage("ingest", true), stage("writer", false)],
            robots: vec![],
            topics: vec![],
            sync: crate::snapshot::SyncSnapshot {
                up: true,
                online: Some(false),
                pending_bytes: 7,
                ..Default::default()
            },
            export: crate::snapshot::ExportSnapshot::default(),
            system: Some(crate::diagnostics::SystemSnapshot {
                cpu_percent: Some(12),
                endpoint_latency: Some(crate::diagnostics::LatencySnapshot {
                    target: "h:9000".into(),
                    connect_ms: Some(1.5),
                    error: None,
                }),
                ..Default::default()
            }),
        };
        let text = render(&snap);
        assert!(text.contains("fleetrec_stage_up{stage=\"ingest\"} 1\n"), "{text}");
        assert!(text.contains("fleetrec_stage_up{stage=\"writer\"} 0\n"), "{text}");
        assert!(text.contains("fleetrec_messages_total{stage=\"ingest\",robot=\"r\\\"1\"} 10\n"), "{text}");
        assert!(text.contains("fleetrec_stage_messages_per_second{stage=\"ingest\"} 2.5\n"), "{text}");
        assert!(!text.contains("stage=\"writer\",robot"), "down stages have no counters: {text}");
        assert!(text.contains("fleetrec_sync_online 0\n"), "{text}");
        assert!(text.contains("fleetrec_stage_cpu_percent{stage=\"ingest\"} 3\n"), "{text}");
        assert!(!text.contains("fleetrec_stage_cpu_percent{stage=\"writer\"}"), "down: {text}");
        assert!(text.contains("fleetrec_sync_pending_bytes 7\n"), "{text}");
        assert!(text.contains("fleetrec_system_cpu_percent 12\n"), "{text}");
        assert!(text.contains("fleetrec_endpoint_connect_seconds{target=\"h:9000\"} 0.0015\n"), "{text}");
    }
}
