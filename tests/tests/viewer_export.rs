//! The viewer's export dialog against the exporter service: a recording is made (synthetic
//! ingest + writer, then stopped so every segment is sealed), `fleetrec-exporter` runs as a stage,
//! and the viewer sends the request its dialog builds (`ExportRequest`, compact JSON) through its
//! control client. The exporter's answer is shown; the export progress the viewer reads from the
//! exporter's status ends with every selected message exported (exported == total == what the
//! writer recorded for those topics), and the CSV files are there. Killing the exporter shows it
//! "not running", restarting it shows it idle again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fleetrec_tests::{status_json, wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use shared::plane::{ControlCommand, Stage as PlaneStage};
use viewer::export_request::ExportRequest;
use viewer::{Dashboard, Snapshot};

const WAIT: Duration = Duration::from_secs(60);

fn tick_until(dashboard: &mut Dashboard, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let snap = dashboard.tick();
        if pred(&snap) {
            return snap;
        }
        assert!(Instant::now() < deadline, "the viewer never showed {what}: {}", snap.to_json()["export"]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn export_dialog_request_runs_on_the_exporter_and_progress_is_shown() {
    let exports = tempfile::tempdir().unwrap();
    let env = TestEnv::new(
        "viewer-export",
        &format!(
            "wal_segment_size = 65536\n\n[synthetic]\nrobots = 2\nrate_scale = 10.0\nmax_messages_per_topic = 20\n\n[export]\ndir = \"{}\"\n",
            exports.path().display()
        ),
    );
    let config = env.load();

    // A recording: every topic sends 20 messages (at 10x the default rates); the writer stops cleanly, sealing its segment.
    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, WAIT, |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    let recorded = wait_status("writer", &env.config, WAIT, |w| {
        let t = w["topics"].as_array().map(Vec::as_slice).unwrap_or_default();
        t.len() == 10 && t.iter().all(|t| t["messages"] == 20 && t["durable_sequence"] == 20)
    });
    let selected: u64 = recorded["topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "/robot1/imu" || t["name"] == "/robot1/pose")
        .map(|t| t["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(selected, 40);
    ingest.signal(Signal::SIGTERM);
    assert!(ingest.wait(Duration::from_secs(20)).success(), "{}", ingest.log_text());
    writer.signal(Signal::SIGTERM);
    assert!(writer.wait(Duration::from_secs(20)).success(), "{}", writer.log_text());

    let mut dashboard = Dashboard::attach(&config).unwrap();
    let snap = dashboard.tick();
    assert_eq!(snap.export.status, "not running");
    // Refused at once while no exporter runs.
    let arg = ExportRequest::from_fields("csv", "robot1", "^/robot1/(imu|pose)$", "", "").to_arg().unwrap();
    let err = dashboard.control(PlaneStage::Exporter, ControlCommand::Export, &arg).unwrap_err();
    assert!(err.to_string().contains("exporter is not running"), "{err}");

    let mut exporter = Stage::start("exporter", &env.config, &[], env.dir.path());
    tick_until(&mut dashboard, "the exporter idle", |s| s.export.up && s.export.status == "idle");
    let (_, st) = status_json("exporter", &env.config);
    assert_eq!(st["state"], "waiting", "idle is the exporter's waiting state: {st}");

    let reply = dashboard.control(PlaneStage::Exporter, ControlCommand::Export, &arg).unwrap();
    assert!(reply.ok, "{reply:?}");
    let done = tick_until(&mut dashboard, "the export done", |s| {
        s.export.status == "idle" && s.export.detail.starts_with("done")
    });
    assert_eq!(done.export.exported, selected, "{:?}", done.export);
    assert_eq!(done.export.total, selected, "{:?}", done.export);
    assert_eq!(done.export.fraction(), 1.0);
    assert_eq!(done.export.errors, 0);
    // The CSV files of the two topics, in the folder the exporter named.
    let csv: Vec<String> = walk(exports.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(csv.iter().any(|p| p.contains("imu")) && csv.iter().any(|p| p.contains("pose")), "{csv:?}");
    assert!(!csv.iter().any(|p| p.contains("scan") || p.contains("robot2")), "only the selected topics: {csv:?}");

    // Killed: not running (not an alarm); restarted: idle again.
    exporter.signal(Signal::SIGKILL);
    exporter.wait(Duration::from_secs(10));
    let gone = tick_until(&mut dashboard, "the exporter gone", |s| !s.export.up);
    assert_eq!(gone.stage("exporter").map(|s| s.state.as_str()), Some("not running"));
    assert_eq!(gone.export.status, "not running");
    let mut exporter = Stage::start("exporter", &env.config, &[], env.dir.path());
    tick_until(&mut dashboard, "the exporter back", |s| s.export.up && s.export.status == "idle");
    drop(dashboard);
    exporter.signal(Signal::SIGTERM);
    assert!(exporter.wait(Duration::from_secs(20)).success(), "{}", exporter.log_text());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
