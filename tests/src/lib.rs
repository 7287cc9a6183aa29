//! Helpers for the multi-process tests: locate (and if needed build) the stage binaries, write
//! a per-test configuration with a unique pipeline name, and run stages as child processes that
//! are always stopped, with their iceoryx2 resources cleaned, whether the test passes or fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod s3;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The target directory profile folder the test binary runs from (`target/debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent().and_then(Path::parent).expect("profile dir").to_path_buf()
}

/// Path of `fleetrec-<stage>`, building it first if this `cargo test` run did not.
pub fn bin(stage: &str) -> PathBuf {
    let name = format!("fleetrec-{stage}");
    let path = profile_dir().join(&name);
    if !path.exists() {
        let release = profile_dir().ends_with("release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-q", "-p", stage, "--bin", &name]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building {name} failed");
    }
    path
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique pipeline name for one test.
pub fn unique_pipeline(tag: &str) -> String {
    format!("t{}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), tag)
}

/// A temporary directory holding a config file (and recordings).
pub struct TestEnv {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The pipeline name.
    pub pipeline: String,
}

impl TestEnv {
    /// Writes a config with a unique pipeline name; `extra` is appended TOML.
    pub fn new(tag: &str, extra: &str) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let pipeline = unique_pipeline(tag);
        let config = dir.path().join("fleetrec.toml");
        let text = format!(
            "[pipeline]\nname = \"{pipeline}\"\nrun_dir = \"{run}\"\nstatus_interval_ms = 100\n\n[storage]\npath = \"{rec}\"\n{extra}",
            run = dir.path().join("run").display(),
            rec = dir.path().join("recordings").display(),
        );
        std::fs::File::create(&config).unwrap().write_all(text.as_bytes()).unwrap();
        TestEnv { dir, config, pipeline }
    }

    /// The parsed config.
    pub fn load(&self) -> shared::config::Config {
        shared::config::Config::load(&self.config).expect("test config")
    }
}

/// A stage running as a child process; killed (SIGKILL) and reaped on drop if still running,
/// after which dead iceoryx2 nodes are cleaned.
pub struct Stage {
    child: Option<Child>,
    /// Where stderr goes.
    pub log: PathBuf,
}

impl Stage {
    /// Starts `fleetrec-<stage> --config <config> <args>`, stderr into a log file in `dir`.
    pub fn start(stage: &str, config: &Path, args: &[&str], dir: &Path) -> Stage {
        let log = dir.join(format!("{stage}-{}.log", COUNTER.fetch_add(1, Ordering::SeqCst)));
        let child = Command::new(bin(stage))
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn stage");
        Stage { child: Some(child), log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("kill");
    }

    /// Waits for exit, at most `timeout` (then SIGKILL). Returns the exit status.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running child");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                eprintln!("stage did not exit in {timeout:?}; killed. log:\n{}", self.log_text());
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The stage's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            shared::plane::clean_dead_nodes();
        }
    }
}

/// Runs `fleetrec-<stage> --config <config> status --json` and parses its output.
pub fn status_json(stage: &str, config: &Path) -> (i32, serde_json::Value) {
    let out =
        Command::new(bin(stage)).arg("--config").arg(config).args(["status", "--json"]).output().expect("run status");
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), value)
}

/// Polls `status --json` until `pred` holds (or panics after `timeout` with the last status).
pub fn wait_status(
    stage: &str,
    config: &Path,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, v) = status_json(stage, config);
        if code == 0 && pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "status of {stage} never satisfied the condition; last: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pids of iceoryx2 nodes, alive or dead, whose process id is `pid`.
pub fn nodes_of_pid(pid: u32) -> (usize, usize) {
    use iceoryx2::node::NodeView;
    use iceoryx2::prelude::*;
    set_log_level(LogLevel::Error);
    let (mut alive, mut dead) = (0, 0);
    Node::<ipc::Service>::list(Config::global_config(), |state| {
        match &state {
            NodeState::Alive(v) if v.details().as_ref().is_some_and(|d| d.process_id().value() == pid as i32) => {
                alive += 1
            }
            NodeState::Dead(v) if v.details().as_ref().is_some_and(|d| d.process_id().value() == pid as i32) => {
                dead += 1
            }
            _ => {}
        }
        CallbackProgression::Continue
    })
    .expect("list nodes");
    (alive, dead)
}

/// Takes every sample waiting on `sub` and calls `f` with each message in it (a sample is one
/// message or a batch of them: [`shared::plane::messages_of`]); panics on a malformed batch.
/// Returns whether any sample was taken.
pub fn drain_messages(
    sub: &shared::plane::MessageSubscriber,
    mut f: impl FnMut(shared::plane::MessageHeader, &[u8]),
) -> bool {
    let mut got = false;
    while let Some(sample) = sub.receive().expect("receive a message sample") {
        for message in shared::plane::messages_of(sample.user_header(), sample.payload()) {
            let (h, payload) = message.expect("a well-formed message batch");
            f(h, payload);
        }
        got = true;
    }
    got
}
