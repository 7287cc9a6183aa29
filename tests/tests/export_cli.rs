//! `fleetrec-exporter` command line and selection: help, argument errors, robot/topic/time
//! filters, unsealed segments, hostile topic names, payloads that do not decode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod export_support;

use std::process::Command;

use export_support::*;
use shared::plane::MessageHeader;
use shared::topic::topic_id;

#[test]
fn help_explains_formats_layout_and_times() {
    let o = Command::new(exporter_bin()).args(["export", "--help"]).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--input",
        "--out",
        "--format",
        "parquet",
        "tfrecord",
        "mcap",
        "--robot",
        "--topic",
        "--start",
        "--end",
        "manifest.json",
        "RFC 3339",
        "--align",
        "--on",
        "--rate",
        "--max-age",
        "AT OR BEFORE",
        "aligned.parquet",
    ] {
        assert!(text.contains(needle), "help lacks {needle}:\n{text}");
    }
    let o = Command::new(exporter_bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in ["export", "status", "control", "--config", "{\"format\":\"parquet\"", "busy", "queue_depth"] {
        assert!(text.contains(needle), "top-level help lacks {needle}:\n{text}");
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    for extra in [
        vec!["--format", "xml"],
        vec!["--format", "csv", "--start", "yesterday"],
        vec!["--format", "csv", "--topic", "(unclosed"],
        vec!["--format", "csv", "--start", "20s", "--end", "10s"],
    ] {
        let o = Command::new(exporter_bin())
            .args(["export", "--quiet", "--input"])
            .arg(rec.path())
            .arg("--out")
            .arg(out.path())
            .args(&extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!o.stderr.is_empty());
    }
}

#[test]
fn filters_select_robot_topic_and_time_range() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    // sequences 3..=7 of robot2 (receive times are BASE + 1000 + seq * PERIOD + topic index)
    let start = format!("{}", BASE_NS + 1000 + 3 * PERIOD_NS);
    let end_ns = BASE_NS + 1000 + 7 * PERIOD_NS + 50;
    let end = format!("{}.{:09}s", end_ns / 1_000_000_000, end_ns % 1_000_000_000);
    let m = run_export(
        rec.path(),
        out.path(),
        "csv",
        &["--robot", "robot2", "--topic", "imu|scan$", "--start", &start, "--end", &end],
    );
    let topics: Vec<(&str, &str, u64)> =
        m.topics.iter().map(|t| (t.robot.as_str(), t.topic.as_str(), t.messages)).collect();
    assert_eq!(topics, [("robot2", "/robot2/imu", 5), ("robot2", "/robot2/scan", 5)]);
    assert_eq!(m.robots, ["robot2"]);
    assert_eq!(m.filters.robots, ["robot2"]);
    assert_eq!(m.filters.topic_regex.as_deref(), Some("imu|scan$"));
    let t = &m.topics[0];
    assert_eq!(t.first_receive_ns, BASE_NS + 1000 + 3 * PERIOD_NS);
    assert!(m.totals.filtered_out > 0);
    let files: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["robot2/imu.csv", "robot2/scan.csv"]);
    // a range after the recording: the segments are skipped from their manifests, unread
    let out2 = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out2.path(), "parquet", &["--start", "2030-01-01T00:00:00Z"]);
    assert_eq!(m.totals.messages, 0);
    assert!(m.segments.iter().all(|s| s.status == "skipped"), "{:?}", m.segments);
    assert_eq!(m.segments[0].reason.as_deref(), Some("outside the time range"));
}

#[test]
fn include_unsealed_reads_the_open_segment() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out.path(), "parquet", &["--include-unsealed", "--topic", "^/robot2/chatter$"]);
    assert_eq!(m.segments.iter().filter(|s| s.status == "read").count(), 3);
    assert!(!m.segments[2].sealed);
    assert_eq!(m.topics.len(), 1);
    assert_eq!(m.topics[0].messages, PER_TOPIC + 1);
}

#[test]
fn hostile_topic_names_never_leave_the_output_folder() {
    let rec = recording();
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("a/b");
    for format in ["parquet", "csv", "npy", "tfrecord", "mcap"] {
        let m = run_export(rec.path(), &out, format, &["--topic", "etc"]);
        assert_eq!(m.topics.len(), 1, "{format}");
        assert_eq!(m.topics[0].topic, HOSTILE);
        for f in &m.files {
            let p = out.join(&f.path).canonicalize().unwrap();
            assert!(p.starts_with(out.canonicalize().unwrap()), "{format}: {}", p.display());
        }
    }
    let top: Vec<String> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["a"], "nothing written outside the output folder");
    assert!(!parent.path().join("a/etc").exists() && !parent.path().join("etc").exists());
}

#[test]
fn payloads_that_do_not_decode_are_skipped_counted_and_the_rest_exported() {
    let dir = tempfile::tempdir().unwrap();
    let def = ingest::synthetic::definition("sensor_msgs/msg/Imu").unwrap();
    let t = info(0, "/robot1/imu", "sensor_msgs/msg/Imu", def);
    let mut seg = SegmentBuilder::new(1);
    seg.topic(&t);
    for seq in 1..=5u64 {
        let good = ingest::synthetic::values::imu(1, seq, BASE_NS).encode();
        let payload = match seq {
            2 => good[..good.len() / 2].to_vec(),          // truncated
            4 => vec![0, 1, 0, 0, 0xff, 0xff, 0xff, 0x7f], // hostile string length
            _ => good,
        };
        let h = MessageHeader {
            topic_id: topic_id("robot1", "/robot1/imu", "sensor_msgs/msg/Imu"),
            robot_id: 0,
            sequence: seq,
            receive_time_ns: BASE_NS + seq,
            ingest_session: 1,
            ..MessageHeader::default()
        };
        seg.message(&h, &payload, format!("{seq}"));
    }
    seg.seal(dir.path(), None);
    let out = tempfile::tempdir().unwrap();
    // through the library, as the control plane will
    let opts =
        exporter::ExportOptions::new(dir.path().to_path_buf(), out.path().to_path_buf(), exporter::Format::Parquet);
    let mut reports = 0;
    let m = exporter::export(&opts, &mut |_| reports += 1).unwrap();
    assert!(reports >= 2);
    assert_eq!(m.totals.decode_errors, 2);
    assert_eq!(m.topics[0].decode_errors, 2);
    assert_eq!(m.topics[0].messages, 3);
    let got = run_python(
        "import json, sys, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1])\nprint(json.dumps(t.column('sequence').to_pylist()))",
        &[&out.path().join("robot1/imu.parquet")],
    );
    assert_eq!(got, serde_json::json!([1, 3, 5]));
}

#[test]
fn a_cancelled_export_stops_and_leaves_no_manifest() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let mut opts =
        exporter::ExportOptions::new(rec.path().to_path_buf(), out.path().to_path_buf(), exporter::Format::Csv);
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    opts.cancel = Some(cancel.clone());
    let e = exporter::export(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, exporter::ExportError::Cancelled), "{e}");
    assert!(!out.path().join("manifest.json").exists(), "an incomplete export must not look complete");
    // The same options, not cancelled, export everything.
    cancel.store(false, std::sync::atomic::Ordering::Relaxed);
    let m = exporter::export(&opts, &mut |_| {}).unwrap();
    // every decodable message, plus /robot1/blob's, exported undecoded
    assert_eq!(m.totals.messages, rec.messages.len() as u64 + PER_TOPIC);
    assert!(out.path().join("manifest.json").exists());
}
