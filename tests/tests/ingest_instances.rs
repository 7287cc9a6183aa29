//! Two ingest processes on one pipeline (as with one ingest per ROS domain) publish the same
//! `<pipeline>/status/ingest`: `status` shows them merged, and a killed one drops out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fleetrec_tests::{wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// `dropped` of `robot` in a status.
fn robot_dropped(s: &Value, robot: &str) -> u64 {
    s["robots"].as_array().unwrap().iter().find(|r| r["name"] == robot).and_then(|r| r["dropped"].as_u64()).unwrap_or(0)
}

#[test]
fn two_ingest_processes_show_as_one_merged_status_and_a_killed_one_drops_out() {
    // A sends robot1 and robot2, B (same pipeline) robot1 only, at the same rates. No writer
    // subscribes, so every message is counted as dropped.
    let env = TestEnv::new("instances", "[synthetic]\nrobots = 2\nrate_scale = 2.0\n");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let config_b = env.dir.path().join("b.toml");
    std::fs::write(&config_b, text.replace("robots = 2", "robots = 1")).unwrap();
    let a = Stage::start("ingest", &env.config, &["--source", "synthetic"], env.dir.path());
    let b = Stage::start("ingest", &config_b, &["--source", "synthetic"], env.dir.path());

    let both = wait_status("ingest", &env.config, WAIT, |s| {
        s["detail"].as_str().is_some_and(|d| d.starts_with("2 instances")) && robot_dropped(s, "robot2") >= 1000
    });
    let detail = both["detail"].as_str().unwrap();
    for pid in [a.pid(), b.pid()] {
        assert!(detail.contains(&format!("pid {pid}")), "{detail}");
    }
    let (r1, r2) = (robot_dropped(&both, "robot1"), robot_dropped(&both, "robot2"));
    assert_eq!(both["dropped"].as_u64(), Some(r1 + r2), "{both}");
    // robot1 comes from both processes, robot2 from A alone.
    assert!(r1 as f64 > 1.4 * r2 as f64, "robot1 {r1} should be about twice robot2 {r2}: {both}");
    // Topics: robot1's (the same ids in both processes, listed once) and robot2's.
    assert_eq!(both["topics"].as_array().unwrap().len(), 10, "{both}");

    b.signal(Signal::SIGKILL);
    let one = wait_status("ingest", &env.config, WAIT, |s| {
        !s["detail"].as_str().unwrap_or("").contains("instances") && robot_dropped(s, "robot2") > r2 + 100
    });
    assert_eq!(one["pid"].as_u64(), Some(u64::from(a.pid())), "{one}");
    let (r1, r2) = (robot_dropped(&one, "robot1"), robot_dropped(&one, "robot2"));
    assert_eq!(one["dropped"].as_u64(), Some(r1 + r2), "{one}");
    assert!(r1.abs_diff(r2) as f64 <= 0.2 * r2 as f64 + 50.0, "A alone: robot1 {r1} and robot2 {r2} should be alike");
    drop(b);
    drop(a);
}
