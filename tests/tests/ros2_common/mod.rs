//! What the ROS 2 tests share: the ROS env check, the rclpy publisher script, the ROS-enabled
//! ingest binary, child processes that are always stopped, and CDR comparison.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The venv's python and `ros2_publisher.py`; panics unless run by `scripts/test-ros2.sh`.
pub fn ros2_env() -> (PathBuf, PathBuf) {
    assert_eq!(
        std::env::var("FLEETREC_ROS2").as_deref(),
        Ok("1"),
        "ROS 2 tests need the ROS 2 env and a network namespace: run scripts/test-ros2.sh"
    );
    let venv = PathBuf::from(std::env::var("FLEETREC_ROS2_VENV").expect("FLEETREC_ROS2_VENV (source target/ros2.env)"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ros2_publisher.py");
    (venv.join("bin/python"), script)
}

/// The ingest built with `--features ros2`: `$FLEETREC_ROS2_INGEST` (scripts/test-ros2.sh
/// copies it there, so a plain build of the workspace meanwhile cannot replace it), else the
/// profile's `fleetrec-ingest`.
pub fn ingest_bin() -> PathBuf {
    std::env::var_os("FLEETREC_ROS2_INGEST").map_or_else(|| fleetrec_tests::bin("ingest"), PathBuf::from)
}

/// A child process (ingest or publisher), killed and reaped if the test ends before it stops;
/// the iceoryx2 resources of a killed process are cleaned.
pub struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdout discarded and stderr into `log`.
    pub fn start(cmd: &mut Command, log: PathBuf) -> Process {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Process { child: Some(child), log }
    }

    /// `fleetrec-ingest --config <config> --source ros2` on ROS domain `domain`.
    pub fn ingest(config: &std::path::Path, domain: u32, log: PathBuf) -> Process {
        let mut cmd = Command::new(ingest_bin());
        cmd.arg("--config").arg(config).args(["--source", "ros2"]);
        cmd.env("ROS_DOMAIN_ID", domain.to_string()).env("RUST_LOG", "info");
        Process::start(&mut cmd, log)
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// SIGTERM, then wait (SIGKILL after 10 s). Returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                shared::plane::clean_dead_nodes();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            shared::plane::clean_dead_nodes();
        }
    }
}

/// Hex text to bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Whether `recorded` is the CDR `sent` (the bytes the publisher handed to `publish`): byte for
/// byte, plus the zero padding to a multiple of 4 bytes that Fast DDS may add to a serialized
/// payload on the wire (rosbag2 stores the wire form, as we do).
pub fn same_cdr(recorded: &[u8], sent: &[u8]) -> bool {
    (recorded.len() == sent.len() || recorded.len() == sent.len().next_multiple_of(4))
        && recorded.starts_with(sent)
        && recorded[sent.len()..].iter().all(|&b| b == 0)
}
