//! The exporter as a pipeline stage: synthetic ingest and the writer record, the exporter stage
//! serves export requests over the control plane (library client and `control export` CLI),
//! runs them in the background, and reports progress in its status; the exported values are
//! read back with pyarrow and compared with what the synthetic robot sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod export_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use export_support::*;
use fleetrec_tests::{bin, nodes_of_pid, wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use serde_json::Value as Json;
use shared::control::ControlClient;
use shared::plane::{ControlCommand, Plane};

const PER_TOPIC: u64 = 40;

fn control(env: &TestEnv, args: &[&str]) -> (i32, String) {
    let out =
        Command::new(bin("exporter")).arg("--config").arg(&env.config).arg("control").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The folder named in an answer `export started -> DIR`.
fn started_dir(message: &str) -> PathBuf {
    let dir = message.split("export started -> ").nth(1).unwrap_or_else(|| panic!("no folder in `{message}`"));
    PathBuf::from(dir.lines().next().unwrap_or_default().trim())
}

fn manifest(dir: &Path) -> exporter::ExportManifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn export_requests_over_the_control_plane_run_in_the_background_with_progress_in_the_status() {
    let env = TestEnv::new(
        "export-svc",
        &format!(
            "[synthetic]\nrobots = 1\nmax_messages_per_topic = {PER_TOPIC}\n\
             [[synthetic.topics]]\nname = \"imu\"\ntype = \"sensor_msgs/msg/Imu\"\nrate_hz = 400.0\n\
             [[synthetic.topics]]\nname = \"pose\"\ntype = \"geometry_msgs/msg/PoseStamped\"\nrate_hz = 200.0\n"
        ),
    );
    let exports = env.dir.path().join("exports");
    write!(
        std::fs::OpenOptions::new().append(true).open(&env.config).unwrap(),
        "[export]\ndir = \"{}\"\n",
        exports.display()
    )
    .unwrap();

    let mut exporter = Stage::start("exporter", &env.config, &[], env.dir.path());
    let v = wait_status("exporter", &env.config, Duration::from_secs(30), |v| v["state"] == "waiting");
    assert_eq!(v["pid"], exporter.pid());
    assert!(v["detail"].as_str().unwrap().starts_with("idle"), "{v}");

    // Nothing recorded yet: the request fails at once, saying why.
    let (code, text) = control(&env, &["export", r#"{"format":"parquet"}"#]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no recordings"), "{text}");
    // A bad request is refused with the reason (exit 1), and changes nothing.
    let (code, text) = control(&env, &["export", r#"{"format":"xml"}"#]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("unknown format `xml`"), "{text}");

    // Record: the writer, then ingest, which stops after PER_TOPIC messages per topic; the
    // writer seals everything when it stops.
    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    assert!(ingest.wait(Duration::from_secs(60)).success(), "{}", ingest.log_text());
    wait_status("writer", &env.config, Duration::from_secs(30), |w| w["messages"].as_u64() == Some(2 * PER_TOPIC));
    writer.signal(Signal::SIGTERM);
    assert!(writer.wait(Duration::from_secs(30)).success(), "{}", writer.log_text());

    // Export robot1's imu to Parquet through the control plane, as the viewer does.
    let cfg = env.load();
    let plane = Plane::open("export-test", &cfg.pipeline).unwrap();
    let reply = ControlClient::new(&plane)
        .request(
            shared::plane::Stage::Exporter,
            ControlCommand::Export,
            r#"{"format":"parquet","robot":"robot1","topic":"/imu$"}"#,
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(reply.ok, "{}", reply.message);
    let dir = started_dir(&reply.message);
    assert!(dir.starts_with(&exports), "{}", dir.display());
    assert!(dir.file_name().unwrap().to_string_lossy().ends_with("-parquet"));

    // Progress: when it is done the stage waits again, and its status tells what it did.
    let v = wait_status("exporter", &env.config, Duration::from_secs(60), |v| {
        v["state"] == "waiting" && v["segments"].as_u64() == Some(1)
    });
    assert_eq!(v["messages"], PER_TOPIC, "{v}");
    assert_eq!(v["queue_depth"], PER_TOPIC, "{v}");
    assert_eq!(v["errors"], 0, "refused requests are answered, not export failures: {v}");
    let detail = v["detail"].as_str().unwrap();
    assert_eq!(detail, format!("done parquet {PER_TOPIC} messages -> {}", dir.display()));

    let m = manifest(&dir);
    assert_eq!(m.totals.messages, PER_TOPIC);
    assert_eq!(m.topics.len(), 1);
    assert_eq!(m.topics[0].topic, "/robot1/imu");
    let got = run_python(
        r#"
import json, sys, pyarrow.parquet as pq
def exact(o):
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, list):
        return [exact(v) for v in o]
    return o
print(json.dumps(exact(pq.read_table(sys.argv[1]).to_pylist())))
"#,
        &[&dir.join("robot1/imu.parquet")],
    );
    let rows = got.as_array().unwrap();
    assert_eq!(rows.len() as u64, PER_TOPIC);
    let def = ingest::synthetic::definition("sensor_msgs/msg/Imu").unwrap();
    for (i, r) in rows.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(r["sequence"], seq);
        // The synthetic robot's value for (robot 1, seq, stamp): every field must match.
        let stamp = r["publish_time_ns"].as_u64().unwrap();
        let (_, value) = make("sensor_msgs/msg/Imu", def, 1, seq, stamp);
        let mut want = value.as_object().unwrap().clone();
        for k in ["receive_time_ns", "publish_time_ns", "sequence"] {
            want.insert(k.into(), r[k].clone());
        }
        assert_json_eq(r, &Json::Object(want), &format!("imu row {i}"));
        assert!(r["receive_time_ns"].as_u64() >= Some(stamp));
    }

    // The same through the command line, to CSV; a second finished export.
    let (code, text) = control(&env, &["export", r#"{"format":"csv","topic":"pose$"}"#]);
    assert_eq!(code, 0, "{text}");
    let dir2 = started_dir(&text);
    assert_ne!(dir, dir2);
    let v = wait_status("exporter", &env.config, Duration::from_secs(60), |v| {
        v["state"] == "waiting" && v["segments"].as_u64() == Some(2)
    });
    assert_eq!((v["messages"].as_u64(), v["queue_depth"].as_u64()), (Some(PER_TOPIC), Some(PER_TOPIC)));
    let m = manifest(&dir2);
    assert_eq!((m.topics.len(), m.totals.messages), (1, PER_TOPIC));
    let csv = std::fs::read_to_string(dir2.join("robot1/pose.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, PER_TOPIC + 1);

    // An aligned table through the stage: imu on pose's ticks, at most 10 ms old. The synthetic
    // timing varies, so the invariants are checked: every tick is a row or a counted drop, and
    // every row's imu is at or before its tick and within the tolerance.
    let (code, text) = control(
        &env,
        &["export", r#"{"format":"parquet","align":"/robot1/imu","on":"/robot1/pose","max_age":"10ms"}"#],
    );
    assert_eq!(code, 0, "{text}");
    let dir3 = started_dir(&text);
    let v = wait_status("exporter", &env.config, Duration::from_secs(60), |v| {
        v["state"] == "waiting" && v["segments"].as_u64() == Some(3)
    });
    assert_eq!(v["messages"], v["queue_depth"], "{v}");
    let a = manifest(&dir3).alignment.expect("alignment");
    assert_eq!(a.ticks, PER_TOPIC);
    assert_eq!(a.rows + a.dropped_missing + a.dropped_stale, PER_TOPIC);
    let got = run_python(
        "import json, sys, pyarrow.parquet as pq\n\
         t = pq.read_table(sys.argv[1])\n\
         print(json.dumps([t.column('time_ns').to_pylist(), t.column('robot1__imu.receive_time_ns').to_pylist(),\n\
                           t.column('robot1__pose.sequence').to_pylist()]))",
        &[&dir3.join("aligned.parquet")],
    );
    let (ticks, imu, pose_seq) = (got[0].as_array().unwrap(), got[1].as_array().unwrap(), got[2].as_array().unwrap());
    assert_eq!(ticks.len() as u64, a.rows);
    assert_eq!(pose_seq.len() as u64, a.rows);
    for (t, i) in ticks.iter().zip(imu) {
        let (t, i) = (t.as_u64().unwrap(), i.as_u64().unwrap());
        assert!(i <= t && t - i <= 10_000_000, "imu at {i} for tick {t}");
    }

    // `stop` ends the stage cleanly, leaving no iceoryx2 node behind.
    let pid = exporter.pid();
    let (code, text) = control(&env, &["stop"]);
    assert_eq!(code, 0, "{text}");
    assert!(exporter.wait(Duration::from_secs(30)).success(), "{}", exporter.log_text());
    drop(plane);
    assert_eq!(nodes_of_pid(pid), (0, 0));
}
