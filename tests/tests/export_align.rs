//! `fleetrec-exporter export --align`: the aligned table read back by pyarrow and pandas, every
//! row checked against a brute-force as-of join of the recorded messages (latest at or before
//! the tick, within the maximum age), the drop counts, and that no later message is ever used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod export_support;

use std::path::Path;
use std::process::Command;

use export_support::*;
use serde_json::{json, Value as Json};
use shared::plane::MessageHeader;
use shared::topic::topic_id;

const MS: u64 = 1_000_000;
const SCAN: &str = "/robot1/scan";
const IMU: &str = "/robot1/imu";
const POSE: &str = "/robot1/pose";

/// Receive times (ns after `BASE_NS`) of each topic. imu: every 30 ms with a gap from 420 to
/// 690 ms; pose: a few, one of them 1 ns after the 800 ms tick.
fn times() -> Vec<(&'static str, &'static str, Vec<u64>)> {
    let scan: Vec<u64> = (1..=10).map(|k| k * 100 * MS).collect();
    let imu: Vec<u64> = (0..=33).map(|k| k * 30 * MS).filter(|t| !(420 * MS..=690 * MS).contains(t)).collect();
    let pose = vec![250 * MS, 510 * MS, 760 * MS, 800 * MS + 1, 900 * MS];
    vec![
        (SCAN, "sensor_msgs/msg/LaserScan", scan),
        (IMU, "sensor_msgs/msg/Imu", imu),
        (POSE, "geometry_msgs/msg/PoseStamped", pose),
    ]
}

/// A sealed recording of robot1's scan, imu and pose at [`times`], plus robot2's imu at the same
/// times as robot1's (which must not leak into the table); returns every message.
fn align_recording(dir: &Path) -> Vec<Expected> {
    align_recording_in(dir, usize::MAX)
}

/// [`align_recording`] in sealed segments of `per_segment` messages each.
fn align_recording_in(dir: &Path, per_segment: usize) -> Vec<Expected> {
    let defs = topics();
    let mut infos = Vec::new();
    let mut all = Vec::new();
    for (name, t, ts) in times() {
        let def = defs.iter().find(|(_, ty, _)| *ty == t).unwrap().2.clone();
        infos.push(info(0, name, t, &def));
        for (i, rel) in ts.iter().enumerate() {
            all.push((0u16, name.to_string(), t, def.clone(), i as u64 + 1, BASE_NS + rel));
        }
        if name == IMU {
            infos.push(info(1, "/robot2/imu", t, &def));
            for (i, rel) in ts.iter().enumerate() {
                all.push((1, "/robot2/imu".to_string(), t, def.clone(), i as u64 + 1, BASE_NS + rel));
            }
        }
    }
    let new_segment = |seq: u64| {
        // every segment repeats the definitions, as the writer does
        let mut seg = SegmentBuilder::new(seq);
        for i in &infos {
            seg.topic(i);
        }
        seg
    };
    let mut seg_no = 1;
    let mut seg = new_segment(seg_no);
    let mut in_segment = 0;
    // In time order, as the writer records them.
    all.sort_by_key(|m| (m.5, m.1.clone()));
    let mut out = Vec::new();
    for (robot_id, name, t, def, seq, recv) in all {
        let robot = ROBOTS[robot_id as usize];
        let (payload, value) = make(t, &def, robot_id + 1, seq, recv - 700);
        let h = MessageHeader {
            topic_id: topic_id(robot, &name, t),
            robot_id,
            sequence: seq,
            receive_time_ns: recv,
            publish_time_ns: recv - 700,
            ingest_session: 1,
            ..MessageHeader::default()
        };
        if in_segment == per_segment {
            seg_no += 1;
            let next = new_segment(seg_no);
            std::mem::replace(&mut seg, next).seal(dir, None);
            in_segment = 0;
        }
        seg.message(&h, &payload, format!("{name}{seq}"));
        in_segment += 1;
        out.push(Expected {
            robot: robot.into(),
            topic: name,
            type_name: t.into(),
            sequence: seq,
            receive_ns: recv,
            publish_ns: recv - 700,
            value,
        });
    }
    seg.seal(dir, None);
    out
}

/// The brute-force join: per tick, each topic's latest message at or before it, or why not.
enum Pick<'a> {
    Row(Vec<&'a Expected>),
    Missing,
    Stale,
}

fn oracle<'a>(msgs: &'a [Expected], topics: &[&str], tick: u64, max_age: u64) -> Pick<'a> {
    let mut row = Vec::new();
    let mut stale = false;
    for t in topics {
        let latest = msgs
            .iter()
            .filter(|m| m.robot == "robot1" && m.topic == *t && m.receive_ns <= tick)
            .max_by_key(|m| m.receive_ns);
        match latest {
            None => return Pick::Missing,
            Some(m) if tick - m.receive_ns > max_age => stale = true,
            Some(m) => row.push(m),
        }
    }
    if stale {
        Pick::Stale
    } else {
        Pick::Row(row)
    }
}

/// The aligned Parquet file as JSON: column names, ticks, and each topic column's rows.
fn read_parquet(path: &Path) -> Json {
    run_python(
        &format!(
            "{EXACT}import pyarrow.parquet as pq\n\
             t = pq.read_table(sys.argv[1])\n\
             import pandas as pd\n\
             d = pd.read_parquet(sys.argv[1])\n\
             print(json.dumps({{'names': t.column_names, 'meta': t.schema.metadata[b'fleetrec.alignment'].decode(),\n\
                                'dtypes': {{n: str(d[n].dtype) for n in d.columns}},\n\
                                'cols': {{n: exact(t.column(n).to_pylist()) for n in t.column_names}}}}))"
        ),
        &[path],
    )
}

/// Python: floats as exact text (`f:` + repr), so the Rust side parses them without rounding.
const EXACT: &str = r#"
import json, sys
def exact(o):
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [exact(v) for v in o]
    return o
"#;

fn check_rows(table: &Json, msgs: &[Expected], topics: &[&str], ticks: &[u64], max_age: u64) -> usize {
    let got_ticks: Vec<u64> =
        table["cols"]["time_ns"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let mut want_ticks = Vec::new();
    for &tick in ticks {
        if let Pick::Row(row) = oracle(msgs, topics, tick, max_age) {
            let i = want_ticks.len();
            want_ticks.push(tick);
            for (t, m) in topics.iter().zip(row) {
                // Flat columns: the topic's row under its name, by dotted path.
                let mut want = serde_json::Map::new();
                flatten(&export_support::row(m), &exporter::align::column_name(t), &mut want);
                for (k, v) in &want {
                    assert!(table["cols"].get(k).is_some(), "column {k} missing");
                    assert_json_eq(&table["cols"][k][i], v, &format!("tick {tick} {k}"));
                }
                assert!(m.receive_ns <= tick, "a later message was used");
            }
        }
    }
    assert_eq!(got_ticks, want_ticks);
    want_ticks.len()
}

#[test]
fn aligned_on_a_reference_topic_takes_the_latest_message_at_or_before_each_tick() {
    let rec = tempfile::tempdir().unwrap();
    let msgs = align_recording(rec.path());
    let out = tempfile::tempdir().unwrap();
    let m = run_export(
        rec.path(),
        out.path(),
        "parquet",
        &["--align", &format!("{IMU},{POSE}"), "--on", SCAN, "--max-age", "100ms"],
    );
    let a = m.alignment.as_ref().expect("alignment in the manifest");
    assert_eq!(a.policy, "asof_backward");
    assert_eq!(a.clock, "receive_time_ns");
    assert_eq!((a.reference.as_str(), a.reference_topic.as_deref()), ("topic", Some(SCAN)));
    assert_eq!(a.max_age_ns, 100 * MS);
    // ticks 100..=1000 ms: 100, 200 lack a pose; 400 (pose 150 ms old), 500, 600, 700 (imu gap)
    // are stale; 300, 800, 900, 1000 (pose exactly 100 ms old: kept) are rows.
    assert_eq!((a.ticks, a.rows, a.dropped_rows, a.dropped_missing, a.dropped_stale), (10, 4, 6, 2, 4));
    let per_topic: Vec<(&str, &str, u64, u64, u64)> =
        a.topics.iter().map(|t| (t.topic.as_str(), t.column.as_str(), t.messages, t.missing, t.stale)).collect();
    assert_eq!(
        per_topic,
        [(SCAN, "robot1__scan", 10, 0, 0), (IMU, "robot1__imu", 24, 0, 3), (POSE, "robot1__pose", 5, 2, 3)]
    );
    assert_eq!(a.file, "aligned.parquet");
    let files: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["aligned.parquet"]);
    assert_eq!(m.topics.len(), 3, "only the aligned topics are exported");
    assert!(m.topics.iter().all(|t| t.robot == "robot1" && t.files == ["aligned.parquet"]));

    let table = read_parquet(&out.path().join("aligned.parquet"));
    let names: Vec<&str> = table["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(
        names[..5],
        [
            "time_ns",
            "robot1__scan.receive_time_ns",
            "robot1__scan.publish_time_ns",
            "robot1__scan.sequence",
            "robot1__scan.header.stamp.sec"
        ]
    );
    // Every column is a leaf of one topic (or the tick), each topic's leaves together in order.
    let mut want_names = vec!["time_ns".to_string()];
    for t in [SCAN, IMU, POSE] {
        let m = msgs.iter().find(|m| m.topic == t).unwrap();
        let mut flat = serde_json::Map::new();
        flatten(&export_support::row(m), &exporter::align::column_name(t), &mut flat);
        let mut keys: Vec<String> = flat.keys().cloned().collect();
        keys.sort();
        let mut got: Vec<String> = names
            .iter()
            .filter(|n| n.starts_with(&format!("{}.", exporter::align::column_name(t))))
            .map(|n| n.to_string())
            .collect();
        got.sort();
        assert_eq!(got, keys, "{t}");
        want_names.extend(keys);
    }
    assert_eq!(names.len(), want_names.len());
    // pandas sees plain typed columns, no nested objects to unpack.
    assert_eq!(table["dtypes"]["robot1__imu.linear_acceleration.x"], "float64");
    assert_eq!(table["dtypes"]["robot1__pose.sequence"], "uint64");
    assert_eq!(table["dtypes"]["robot1__scan.header.frame_id"], "str");
    assert!(table["meta"].as_str().unwrap().contains("asof_backward"));
    let ticks: Vec<u64> = (1..=10).map(|k| BASE_NS + k * 100 * MS).collect();
    let rows = check_rows(&table, &msgs, &[SCAN, IMU, POSE], &ticks, 100 * MS);
    assert_eq!(rows, 4);
    // Spelled out: at 800 ms the pose is the one of 760 ms (sequence 3), not the one 1 ns later;
    // at 300 ms the imu received exactly at the tick is used.
    assert_eq!(table["cols"]["time_ns"][1], json!(BASE_NS + 800 * MS));
    assert_eq!(table["cols"]["robot1__pose.sequence"][1], json!(3));
    assert_eq!(table["cols"]["robot1__pose.receive_time_ns"][1], json!(BASE_NS + 760 * MS));
    assert_eq!(table["cols"]["robot1__imu.receive_time_ns"][0], json!(BASE_NS + 300 * MS));
    assert_eq!(table["cols"]["robot1__scan.sequence"][0], json!(3));
}

#[test]
fn aligned_on_a_fixed_rate_in_csv_reads_in_pandas() {
    let rec = tempfile::tempdir().unwrap();
    let msgs = align_recording(rec.path());
    let out = tempfile::tempdir().unwrap();
    let start = BASE_NS + 50 * MS;
    let end = BASE_NS + 1000 * MS;
    let m = run_export(
        rec.path(),
        out.path(),
        "csv",
        &[
            "--align",
            &format!("{POSE},{IMU}"),
            "--rate",
            "10",
            "--max-age",
            "0.1s",
            "--start",
            &start.to_string(),
            "--end",
            &end.to_string(),
        ],
    );
    let a = m.alignment.as_ref().unwrap();
    assert_eq!((a.reference.as_str(), a.rate_hz, a.period_ns), ("rate", Some(10.0), Some(100 * MS)));
    assert_eq!((a.first_tick_ns, a.last_tick_ns, a.ticks), (start, BASE_NS + 950 * MS, 10));
    let ticks: Vec<u64> = (0..10).map(|k| start + k * 100 * MS).collect();
    let mut want = Vec::new();
    let (mut missing, mut stale) = (0, 0);
    for &t in &ticks {
        match oracle(&msgs, &[POSE, IMU], t, 100 * MS) {
            Pick::Row(r) => want.push((t, r[0].sequence, r[1].sequence, r[1].value.clone())),
            Pick::Missing => missing += 1,
            Pick::Stale => stale += 1,
        }
    }
    assert_eq!((a.rows, a.dropped_missing, a.dropped_stale), (want.len() as u64, missing, stale));
    assert!(!want.is_empty() && missing > 0 && stale > 0, "the recording exercises every case");
    // At 850 ms the pose received 1 ns after 800 ms is the latest one: it is used.
    let at_850 = want.iter().find(|w| w.0 == BASE_NS + 850 * MS).expect("a row at 850 ms");
    assert_eq!(at_850.1, 4);

    let got = run_python(
        &format!("{EXACT}import pandas as pd\n\
         d = pd.read_csv(sys.argv[1])\n\
         print(json.dumps({{'cols': list(d.columns), 'time': [int(x) for x in d['time_ns']],\n\
           'pose_seq': [int(x) for x in d['robot1__pose.sequence']], 'imu_seq': [int(x) for x in d['robot1__imu.sequence']],\n\
           'imu_ax': exact([float(x) for x in d['robot1__imu.linear_acceleration.x']]),\n\
           'imu_cov': exact([json.loads(x) for x in d['robot1__imu.orientation_covariance']])}}))"),
        &[&out.path().join("aligned.csv")],
    );
    let cols: Vec<&str> = got["cols"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(
        cols[..5],
        [
            "time_ns",
            "robot1__pose.receive_time_ns",
            "robot1__pose.publish_time_ns",
            "robot1__pose.sequence",
            "robot1__pose.header.stamp.sec"
        ]
    );
    assert!(cols.contains(&"robot1__imu.linear_acceleration.x"));
    assert_eq!(got["time"], json!(want.iter().map(|w| w.0).collect::<Vec<_>>()));
    assert_eq!(got["pose_seq"], json!(want.iter().map(|w| w.1).collect::<Vec<_>>()));
    assert_eq!(got["imu_seq"], json!(want.iter().map(|w| w.2).collect::<Vec<_>>()));
    for (i, w) in want.iter().enumerate() {
        assert_json_eq(&got["imu_ax"][i], &w.3["linear_acceleration"]["x"], &format!("row {i} imu ax"));
        assert_json_eq(&got["imu_cov"][i], &w.3["orientation_covariance"], &format!("row {i} imu cov"));
    }
}

#[test]
fn align_errors_are_clear_and_exit_2() {
    let rec = tempfile::tempdir().unwrap();
    align_recording(rec.path());
    let out = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--format", "npy", "--align", IMU, "--rate", "10", "--max-age", "10ms"], "parquet or csv"),
        (&["--format", "parquet", "--align", IMU, "--rate", "10"], "--max-age"),
        (&["--format", "parquet", "--align", IMU, "--max-age", "10ms"], "--on TOPIC or --rate HZ"),
        (&["--format", "parquet", "--align", "/robot1/nope", "--on", SCAN, "--max-age", "10ms"], "/robot1/imu"),
        (&["--format", "parquet", "--align", IMU, "--rate", "10", "--max-age", "10"], "not a duration"),
        // The memory the join may hold is bounded: past it, a clean error instead of an OOM.
        (
            &["--format", "parquet", "--align", IMU, "--rate", "10", "--max-age", "10ms", "--align-max-mb", "0"],
            "--align-max-mb",
        ),
    ];
    for (args, needle) in cases {
        let o = Command::new(exporter_bin())
            .args(["export", "--quiet", "--input"])
            .arg(rec.path())
            .arg("--out")
            .arg(out.path())
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected `{needle}` in: {err}");
    }
}

#[test]
fn streaming_over_many_segments_in_one_row_chunks_gives_the_same_table() {
    // 5 messages per segment: every row's messages span segments; rows are written one at a
    // time as soon as their messages are read, and the messages no later row needs are dropped.
    let rec = tempfile::tempdir().unwrap();
    let msgs = align_recording_in(rec.path(), 5);
    let segments = std::fs::read_dir(rec.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wal"));
    assert!(segments.count() > 10);
    let spec = exporter::align::AlignSpec {
        topics: vec![IMU.into(), POSE.into()],
        reference: exporter::align::Reference::Topic(SCAN.into()),
        max_age_ns: 100 * MS,
    };
    for chunk in [1, 3] {
        let out = tempfile::tempdir().unwrap();
        let mut opts =
            exporter::ExportOptions::new(rec.path().to_path_buf(), out.path().to_path_buf(), exporter::Format::Parquet);
        opts.align = Some(spec.clone());
        opts.align_chunk_rows = chunk;
        let m = exporter::export(&opts, &mut |_| {}).unwrap();
        let a = m.alignment.unwrap();
        assert_eq!((a.ticks, a.rows, a.dropped_missing, a.dropped_stale), (10, 4, 2, 4), "chunk {chunk}");
        assert_eq!(m.totals.messages, 10 + 24 + 5, "the manifest counts each message once (first pass)");
        let table = read_parquet(&out.path().join("aligned.parquet"));
        let ticks: Vec<u64> = (1..=10).map(|k| BASE_NS + k * 100 * MS).collect();
        assert_eq!(check_rows(&table, &msgs, &[SCAN, IMU, POSE], &ticks, 100 * MS), 4, "chunk {chunk}");
    }
    // The fixed-rate grid too, against the one-segment recording's table.
    let one = tempfile::tempdir().unwrap();
    align_recording(one.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--align", &format!("{POSE},{IMU}"), "--rate", "25", "--max-age", "60ms"];
    run_export(rec.path(), a.path(), "parquet", &args);
    run_export(one.path(), b.path(), "parquet", &args);
    let same = run_python(
        "import json, sys, pyarrow.parquet as pq\n\
         x, y = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])\n\
         print(json.dumps([x.num_rows, x.equals(y)]))",
        &[&a.path().join("aligned.parquet"), &b.path().join("aligned.parquet")],
    );
    assert_eq!(same[1], json!(true), "{same}");
    assert!(same[0].as_u64() > Some(5), "{same}");
}
