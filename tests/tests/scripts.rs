//! The operator scripts, run as a user would: start-all, status, restart one stage while the
//! others keep running, stop-all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fleetrec_tests::{bin, nodes_of_pid, status_json, wait_status, TestEnv};

fn script(name: &str, args: &[&str], cwd: &Path) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin_dir = bin("ingest").parent().unwrap().to_path_buf();
    for stage in ["writer", "uploader", "exporter"] {
        bin(stage);
    }
    let out = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .args(args)
        .current_dir(cwd)
        .env("FLEETREC_BIN", bin_dir)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

struct StopAll<'a>(&'a TestEnv);

impl Drop for StopAll<'_> {
    fn drop(&mut self) {
        let cfg = self.0.config.to_str().unwrap();
        let _ = script("stop-all.sh", &["--config", cfg], self.0.dir.path());
        shared::plane::clean_dead_nodes();
    }
}

fn pid_of(env: &TestEnv, stage: &str) -> u32 {
    std::fs::read_to_string(env.dir.path().join("run").join(format!("{stage}.pid"))).unwrap().trim().parse().unwrap()
}

#[test]
fn start_all_status_restart_stage_stop_all() {
    let env = TestEnv::new("scripts", "[synthetic]\nrobots = 2\n");
    let cfg = env.config.to_str().unwrap();
    let _guard = StopAll(&env);
    let (ok, out) = script("start-all.sh", &["--config", cfg], env.dir.path());
    assert!(ok, "start-all failed:\n{out}");
    assert!(out.contains("writer: started") && out.contains("ingest: started"), "{out}");

    // Two robots publishing, and the writer receiving.
    let v = wait_status("ingest", &env.config, Duration::from_secs(30), |v| {
        v["robots"].as_array().is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["messages"].as_u64() > Some(20)))
    });
    assert_eq!(v["robots"][0]["name"], "robot1");
    assert_eq!(v["robots"][1]["name"], "robot2");
    let ingest_pid = pid_of(&env, "ingest");
    assert_eq!(v["pid"], ingest_pid);

    // Restart the writer alone: ingest keeps running (same pid) and keeps publishing.
    let old_writer = pid_of(&env, "writer");
    let (ok, out) = script("restart-stage.sh", &["writer", "--config", cfg], env.dir.path());
    assert!(ok, "restart-stage failed:\n{out}");
    let new_writer = pid_of(&env, "writer");
    assert_ne!(old_writer, new_writer);
    assert_eq!(nodes_of_pid(old_writer), (0, 0), "old writer left iceoryx2 nodes");
    let before = v["messages"].as_u64().unwrap();
    let v = wait_status("ingest", &env.config, Duration::from_secs(30), |v| v["messages"].as_u64() > Some(before + 50));
    assert_eq!(v["pid"], ingest_pid, "ingest was disturbed by the writer restart");
    let w = wait_status("writer", &env.config, Duration::from_secs(30), |w| w["messages"].as_u64() > Some(0));
    assert_eq!(w["pid"], new_writer);

    let (ok, out) = script("stop-all.sh", &["--config", cfg], env.dir.path());
    assert!(ok, "{out}");
    assert_eq!(nodes_of_pid(ingest_pid), (0, 0));
    assert_eq!(nodes_of_pid(new_writer), (0, 0));
    assert_eq!(status_json("ingest", &env.config).0, 1);
    // Everything the writer recorded is in sealed segments.
    let segs: Vec<_> = std::fs::read_dir(env.dir.path().join("recordings"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .collect();
    assert!(!segs.is_empty());
    for s in &segs {
        let manifest = shared::segment::SegmentManifest::path_for(&s.path());
        assert!(manifest.exists(), "{} has no manifest after stop-all", s.path().display());
    }
}
