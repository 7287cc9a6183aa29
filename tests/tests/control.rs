//! The control plane from the command line: requests reach the running stage and change what it
//! does; a request to a stage that is down fails fast with a clear message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use fleetrec_tests::{bin, wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;

fn control(stage: &str, env: &TestEnv, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin(stage)).arg("--config").arg(&env.config).arg("control").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn pause_resume_split_and_down_stage() {
    let env = TestEnv::new("control", "[synthetic]\nrobots = 2\n");
    // Ingest is down: the request fails at once (exit 3), naming the stage.
    let t = Instant::now();
    let (code, text) = control("ingest", &env, &["pause"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("ingest is not running"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let (code, text) = control("writer", &env, &["frobnicate"]);
    assert_eq!(code, 2, "{text}");

    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |w| w["messages"].as_u64() > Some(50));

    let (code, text) = control("writer", &env, &["pause"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("writer paused"), "{text}");
    let w = wait_status("writer", &env.config, Duration::from_secs(30), |w| w["state"] == "paused");
    let dropped = w["dropped"].as_u64().unwrap();
    // While paused, what ingest delivers is dropped by the writer and counted.
    let w = wait_status("writer", &env.config, Duration::from_secs(30), |w| w["dropped"].as_u64() > Some(dropped + 20));
    let messages = w["messages"].as_u64().unwrap();

    let (code, text) = control("writer", &env, &["resume"]);
    assert_eq!(code, 0, "{text}");
    let w = wait_status("writer", &env.config, Duration::from_secs(30), |w| {
        w["state"] == "running" && w["messages"].as_u64() > Some(messages + 20)
    });
    let segments = w["segments"].as_u64().unwrap();
    let (code, text) = control("writer", &env, &["split-segment"]);
    assert_eq!(code, 0, "{text}");
    wait_status("writer", &env.config, Duration::from_secs(30), |w| w["segments"].as_u64() > Some(segments));

    // A command the stage does not serve is refused, not ignored.
    let (code, text) = control("ingest", &env, &["sync-now"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not served by ingest"), "{text}");

    let (code, text) = control("ingest", &env, &["stop"]);
    assert_eq!(code, 0, "{text}");
    assert!(ingest.wait(Duration::from_secs(20)).success());
    writer.signal(Signal::SIGTERM);
    assert!(writer.wait(Duration::from_secs(20)).success());
}
