//! Killing and restarting any stage while the viewer runs (issue 7): the headless viewer
//! (`--headless --json`, one snapshot per line) watches a pipeline of synthetic ingest, writer and
//! uploader (against moto on loopback). Each stage in turn is SIGKILLed: the viewer reports it
//! down (state, status age, and no live counters) while the others stay up; the stage is
//! restarted: the viewer shows the new process up with its values moving (messages for ingest and
//! the writer, uploaded segments for the uploader). The viewer itself runs on untouched and exits
//! cleanly on SIGTERM. The exporter is started on demand and is not part of this pipeline: the
//! viewer shows it "not running" throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fleetrec_tests::s3::{sync_section, S3Server, UploaderProcess};
use fleetrec_tests::{bin, Stage, TestEnv};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const BUCKET: &str = "fleetrec-viewer";
const WAIT: Duration = Duration::from_secs(60);

/// `fleetrec-viewer --headless --json` as a child process; its snapshots arrive on a channel.
/// Stopped with SIGTERM (SIGKILL if it does not exit) and its iceoryx2 resources cleaned on drop.
struct HeadlessViewer {
    child: Option<Child>,
    snapshots: Receiver<Value>,
    last: Value,
    log: PathBuf,
}

impl HeadlessViewer {
    fn start(config: &Path, dir: &Path) -> HeadlessViewer {
        let log = dir.join("viewer.log");
        let mut child = Command::new(bin("viewer"))
            .arg("--config")
            .arg(config)
            .args(["--headless", "--json", "--interval-ms", "100"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn fleetrec-viewer");
        let stdout = child.stdout.take().unwrap();
        let (tx, snapshots) = mpsc::channel();
        std::thread::Builder::new()
            .name("viewer-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let v: Value =
                        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
        HeadlessViewer { child: Some(child), snapshots, last: Value::Null, log }
    }

    /// Reads snapshots until `pred` holds for one (panics after `timeout` with the last one).
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            match self.snapshots.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) => {
                    self.last = v;
                    if pred(&self.last) {
                        return self.last.clone();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the viewer never showed {what}; last snapshot: {}", self.last)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the viewer stopped printing while waiting for {what}; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGTERM; returns whether it exited successfully within `timeout`.
    fn stop(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        let ok = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        shared::plane::clean_dead_nodes();
        ok
    }
}

impl Drop for HeadlessViewer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            shared::plane::clean_dead_nodes();
        }
    }
}

fn stage<'a>(snap: &'a Value, name: &str) -> &'a Value {
    snap["stages"].as_array().and_then(|a| a.iter().find(|s| s["stage"] == name)).unwrap_or(&Value::Null)
}

fn up(snap: &Value, name: &str) -> bool {
    stage(snap, name)["up"] == true
}

/// The value that shows a stage at work: messages for ingest and the writer, segments uploaded
/// for the uploader.
fn progress(snap: &Value, name: &str) -> u64 {
    match name {
        "uploader" => snap["sync"]["uploaded_segments"].as_u64().unwrap_or(0),
        _ => stage(snap, name)["messages"].as_u64().unwrap_or(0),
    }
}

/// The pipeline's stages as processes that can be killed and started again.
struct Pipeline<'a> {
    env: &'a TestEnv,
    ingest: Option<Stage>,
    writer: Option<Stage>,
    uploader: Option<UploaderProcess>,
}

impl Pipeline<'_> {
    fn start(&mut self, name: &str) -> u32 {
        let (config, dir) = (&self.env.config, self.env.dir.path());
        match name {
            "ingest" => {
                let s = Stage::start("ingest", config, &[], dir);
                let pid = s.pid();
                self.ingest = Some(s);
                pid
            }
            "writer" => {
                let s = Stage::start("writer", config, &[], dir);
                let pid = s.pid();
                self.writer = Some(s);
                pid
            }
            "uploader" => {
                let u = UploaderProcess::start(config, dir);
                let pid = u.pid();
                self.uploader = Some(u);
                pid
            }
            other => panic!("no stage {other}"),
        }
    }

    /// SIGKILL and reap (the process's dead iceoryx2 node is left for the restart to clean, as
    /// after a real crash).
    fn kill(&mut self, name: &str) {
        match name {
            "ingest" | "writer" => {
                let mut s = if name == "ingest" { self.ingest.take() } else { self.writer.take() }.unwrap();
                s.signal(Signal::SIGKILL);
                s.wait(Duration::from_secs(10));
            }
            "uploader" => {
                let u = self.uploader.as_ref().unwrap();
                kill(Pid::from_raw(u.pid() as i32), Signal::SIGKILL).unwrap();
                let mut u = self.uploader.take().unwrap();
                u.wait(Duration::from_secs(10));
            }
            other => panic!("no stage {other}"),
        }
    }
}

#[test]
fn killed_stages_show_down_then_up_and_the_viewer_keeps_going() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    // Small segments, so the writer seals (and the uploader uploads) every second or so.
    let env = TestEnv::new(
        "viewer-restart",
        &format!(
            "wal_segment_size = 1048576\n\n[synthetic]\nrobots = 1\n{}",
            sync_section(&server.endpoint(), BUCKET, "")
        ),
    );
    let mut pipeline = Pipeline { env: &env, ingest: None, writer: None, uploader: None };
    pipeline.start("writer");
    pipeline.start("ingest");
    pipeline.start("uploader");

    let mut viewer = HeadlessViewer::start(&env.config, env.dir.path());
    let first = viewer.wait_for("the pipeline up and uploading", WAIT, |s| {
        ["ingest", "writer", "uploader"].iter().all(|n| up(s, n))
            && progress(s, "ingest") > 0
            && progress(s, "writer") > 0
            && progress(s, "uploader") > 0
    });
    assert_eq!(first["sync"]["status"], "online", "{first}");
    assert_eq!(first["sync"]["online"], true, "{first}");
    assert_eq!(stage(&first, "exporter")["state"], "not running", "{first}");
    assert_eq!(first["pipeline"], env.pipeline.as_str());

    for name in ["ingest", "writer", "uploader"] {
        let before = viewer.wait_for(&format!("{name} up"), WAIT, |s| up(s, name));
        let old_pid = stage(&before, name)["pid"].as_u64().unwrap();

        pipeline.kill(name);
        let down = viewer.wait_for(&format!("{name} down"), WAIT, |s| !up(s, name));
        let d = stage(&down, name);
        assert_eq!(d["state"], "down", "{down}");
        assert_eq!(d["pid"], old_pid, "the last status seen is the killed process's: {down}");
        assert!(d["status_age_s"].is_u64(), "a stage seen before has a status age: {down}");
        assert_eq!(d["rate_msgs"], 0.0, "no live rate for a stage that is down: {down}");
        assert_eq!(d["robots"].as_array().map(Vec::len), Some(0), "no live counters: {down}");
        for other in ["ingest", "writer", "uploader"].into_iter().filter(|o| *o != name) {
            assert!(up(&down, other), "{other} must stay up while {name} is down: {down}");
        }
        match name {
            // The topics lose ingest's view; the writer's remains.
            "ingest" => assert!(
                down["topics"].as_array().unwrap().iter().all(|t| t["ingest"].is_null() && !t["writer"].is_null()),
                "{down}"
            ),
            // Without the writer there is no durable watermark to compare against.
            "writer" => {
                assert!(down["robots"].as_array().unwrap().iter().all(|r| r["durable_lag"].is_null()), "{down}")
            }
            // Sync status says the uploader is gone, not offline.
            _ => assert_eq!(down["sync"]["status"], "not running", "{down}"),
        }

        let new_pid = pipeline.start(name);
        let back = viewer.wait_for(&format!("{name} up again"), WAIT, |s| {
            up(s, name) && stage(s, name)["pid"].as_u64() == Some(u64::from(new_pid))
        });
        let p0 = progress(&back, name);
        let moving = viewer.wait_for(&format!("{name}'s values moving after the restart"), WAIT, |s| {
            up(s, name) && progress(s, name) > p0
        });
        assert_eq!(stage(&moving, name)["state"], "running", "{moving}");
        if name == "uploader" {
            assert_eq!(moving["sync"]["status"], "online", "{moving}");
        }
        eprintln!("{name}: pid {old_pid} killed, down, restarted as {new_pid}, {p0} -> {}", progress(&moving, name));
    }

    // The viewer ran through all of it and still reports everything live.
    // The stages' processes are sampled (CPU, memory) by pid, the restarted ones too.
    let last = viewer.wait_for("all stages up with CPU and memory at the end", WAIT, |s| {
        ["ingest", "writer", "uploader"]
            .iter()
            .all(|n| up(s, n) && stage(s, n)["cpu_percent"].is_u64() && stage(s, n)["memory_bytes"].as_u64() > Some(0))
    });
    for n in ["ingest", "writer", "uploader"] {
        let pid = stage(&last, n)["pid"].as_u64().unwrap() as u32;
        let live = match n {
            "ingest" => pipeline.ingest.as_ref().map(Stage::pid),
            "writer" => pipeline.writer.as_ref().map(Stage::pid),
            _ => pipeline.uploader.as_ref().map(UploaderProcess::pid),
        };
        assert_eq!(Some(pid), live, "{n}: the viewer shows the running process");
    }
    assert_eq!(stage(&last, "exporter")["state"], "not running", "{last}");
    assert!(viewer.running(), "the viewer must keep going");
    assert!(viewer.stop(Duration::from_secs(20)), "the viewer exits cleanly on SIGTERM");

    for s in [pipeline.ingest.take(), pipeline.writer.take()].into_iter().flatten() {
        s.signal(Signal::SIGTERM);
        let mut s = s;
        assert!(s.wait(Duration::from_secs(20)).success(), "{}", s.log_text());
    }
    if let Some(mut u) = pipeline.uploader.take() {
        assert!(u.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", u.log_text());
    }
    drop(server);
}
