//! `fleetrec-exporter export` end to end: real segments in, each format out, read back by the
//! real Python readers (pyarrow, pandas, numpy, the PyPI `tfrecord` reader, `mcap` +
//! `mcap-ros2-support`), every value compared with what was recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod export_support;

use export_support::*;
use serde_json::{json, Value as Json};

fn topics_of_robot(robot: &str) -> Vec<String> {
    let mut t: Vec<String> = topics().iter().map(|(s, _, _)| format!("/{robot}/{s}")).collect();
    if robot == "robot1" {
        t.push(HOSTILE.into());
    }
    t
}

fn check_manifest(rec: &Recording, out: &std::path::Path, m: &exporter::ExportManifest, format: &str) {
    assert_eq!(m.format, "fleetrec-export-manifest");
    assert_eq!(m.export_format, format);
    assert_eq!(m.fleetrec_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.robots, ["robot1", "robot2"]);
    assert_eq!(m.segments.len(), 3);
    assert_eq!(m.segments.iter().filter(|s| s.status == "read").count(), 2);
    assert_eq!(m.segments[2].status, "skipped", "the unsealed segment is skipped by default");
    assert!(m.segments[..2].iter().all(|s| s.sealed && s.sha256.is_some()));
    assert_eq!(m.totals.corrupt_records, 1);
    assert_eq!(m.segments[1].corrupt_records, 1);
    assert_eq!(m.totals.decode_errors, 0);
    // every recorded message except the corrupt one, plus the raw topic's
    assert_eq!(m.totals.messages, rec.messages.len() as u64 + PER_TOPIC);
    let imu = m.topics.iter().find(|t| t.topic == CORRUPT.1).unwrap();
    assert_eq!(imu.messages, PER_TOPIC - 1);
    assert_eq!(imu.sequence_gaps, 1, "the corrupt record shows as a gap");
    assert_eq!(imu.type_name, "sensor_msgs/msg/Imu");
    assert!(imu.decoded);
    let scan = m.topics.iter().find(|t| t.topic == "/robot2/scan").unwrap();
    assert_eq!(scan.messages, PER_TOPIC);
    assert_eq!(scan.first_receive_ns, BASE_NS + 1000 + PERIOD_NS + 1);
    assert_eq!(scan.last_receive_ns, BASE_NS + 1000 + PER_TOPIC * PERIOD_NS + 1);
    assert_eq!(scan.first_publish_ns, scan.first_receive_ns - 500);
    assert!((scan.rate_hz - 100.0).abs() < 1e-9, "rate {}", scan.rate_hz);
    let blob = m.topics.iter().find(|t| t.topic == "/robot1/blob").unwrap();
    assert!(!blob.decoded);
    assert!(blob.raw_reason.as_deref().unwrap().contains("no message definition"));
    // every file listed with its hash, and only files inside the output folder
    assert!(!m.files.is_empty());
    for f in &m.files {
        assert!(!f.path.contains(".."), "{}", f.path);
        let (sha, size) = exporter::manifest::hash_file(&out.join(&f.path)).unwrap();
        assert_eq!((sha, size), (f.sha256.clone(), f.bytes), "{}", f.path);
    }
    let mut listed: Vec<String> = m.topics.iter().flat_map(|t| t.files.clone()).collect();
    listed.sort();
    listed.dedup();
    let mut all: Vec<String> = m.files.iter().map(|f| f.path.clone()).collect();
    all.sort();
    assert_eq!(listed, all, "every file belongs to a topic");
}

const PARQUET_PY: &str = r#"
import json, os, sys
def exact(o):
    # floats as exact text (`f:` + repr), so the Rust side parses them without rounding
    if hasattr(o, 'item') and not isinstance(o, (list, dict, tuple, bytes)):
        o = o.item()
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [exact(v) for v in o]
    return o
import pyarrow.parquet as pq
import pandas as pd
out = sys.argv[1]
res = {}
for root, _, files in os.walk(out):
    for f in files:
        if f.endswith('.parquet'):
            p = os.path.join(root, f)
            t = pq.read_table(p)
            md = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items() if k.startswith(b'fleetrec.')}
            res[os.path.relpath(p, out)] = {"schema": {fl.name: str(fl.type) for fl in t.schema}, "rows": t.to_pylist(), "meta": md}
df = pd.read_parquet(os.path.join(out, 'robot1', 'imu.parquet'))
res['pandas'] = {"n": len(df), "x": [r['x'] for r in df['linear_acceleration']], "seq": df['sequence'].tolist(),
                 "dtype": str(df['receive_time_ns'].dtype)}
print(json.dumps(exact(res), default=str))
"#;

#[test]
fn parquet_read_by_pyarrow_and_pandas_equals_recorded_values() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out.path(), "parquet", &[]);
    check_manifest(&rec, out.path(), &m, "parquet");
    let got = run_python(PARQUET_PY, &[out.path()]);
    for robot in ROBOTS {
        for topic in topics_of_robot(robot) {
            let file = format!("{robot}/{}.parquet", stem(robot, &topic));
            let t = &got[&file];
            assert!(t.is_object(), "{file} missing; have {:?}", got.as_object().unwrap().keys().collect::<Vec<_>>());
            let want: Vec<Json> = rec.topic(robot, &topic).into_iter().map(row).collect();
            assert_json_eq(&t["rows"], &Json::Array(want), &file);
            assert_eq!(t["meta"]["fleetrec.topic"], json!(topic));
        }
    }
    let imu = &got["robot1/imu.parquet"]["schema"];
    assert_eq!(imu["receive_time_ns"], "uint64");
    assert_eq!(imu["orientation_covariance"], "fixed_size_list<item: double not null>[9]");
    assert_eq!(
        imu["header"],
        "struct<stamp: struct<sec: int32 not null, nanosec: uint32 not null> not null, frame_id: string not null>"
    );
    assert_eq!(got["robot1/scan.parquet"]["schema"]["ranges"], "list<item: float not null>");
    assert_eq!(got["robot1/camera__image_raw.parquet"]["schema"]["data"], "binary");
    let mission = &got["robot2/mission.parquet"]["schema"];
    assert_eq!(mission["u64"], "uint64");
    assert_eq!(mission["tag"], "fixed_size_binary[4]");
    assert!(mission["waypoints"].as_str().unwrap().starts_with("list<item: struct<position: struct<x: double"));
    // the raw topic: one binary column with the payload bytes
    let blob = &got["robot1/blob.parquet"];
    assert_eq!(blob["schema"]["cdr"], "binary");
    assert_eq!(blob["rows"].as_array().unwrap().len() as u64, PER_TOPIC);
    assert_eq!(blob["rows"][2]["cdr"], json!([0, 1, 0, 0, 3, 0xee]));
    // pandas
    let imu_rows = rec.topic("robot1", "/robot1/imu");
    assert_eq!(got["pandas"]["n"], json!(imu_rows.len()));
    assert_eq!(got["pandas"]["dtype"], "uint64");
    let want_x: Vec<Json> = imu_rows.iter().map(|m| m.value["linear_acceleration"]["x"].clone()).collect();
    assert_json_eq(&got["pandas"]["x"], &Json::Array(want_x), "pandas x");
    // the hostile name stayed inside
    assert!(out.path().join("robot1/________etc__x.parquet").is_file());
}

const CSV_PY: &str = r#"
import json, os, sys
def exact(o):
    # floats as exact text (`f:` + repr), so the Rust side parses them without rounding
    if hasattr(o, 'item') and not isinstance(o, (list, dict, tuple, bytes)):
        o = o.item()
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [exact(v) for v in o]
    return o
import pandas as pd
out = sys.argv[1]
res = {}
for root, _, files in os.walk(out):
    for f in files:
        if f.endswith('.csv'):
            p = os.path.join(root, f)
            df = pd.read_csv(p, float_precision='round_trip', keep_default_na=False)
            rows = df.to_dict(orient='records')
            for r in rows:
                for k, v in r.items():
                    if isinstance(v, str) and v[:1] in '[{':
                        r[k] = json.loads(v)
            res[os.path.relpath(p, out)] = {"columns": list(df.columns), "rows": rows}
print(json.dumps(exact(res), default=str))
"#;

#[test]
fn csv_read_by_pandas_equals_recorded_values() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out.path(), "csv", &[]);
    check_manifest(&rec, out.path(), &m, "csv");
    let got = run_python(CSV_PY, &[out.path()]);
    for robot in ROBOTS {
        for topic in topics_of_robot(robot) {
            let file = format!("{robot}/{}.csv", stem(robot, &topic));
            let rows = got[&file]["rows"].as_array().unwrap_or_else(|| panic!("{file} missing"));
            let want = rec.topic(robot, &topic);
            assert_eq!(rows.len(), want.len(), "{file}");
            for (i, (g, w)) in rows.iter().zip(want).enumerate() {
                let mut flat = serde_json::Map::new();
                flatten(&row(w), "", &mut flat);
                let mut g = g.as_object().unwrap().clone();
                for (k, v) in flat.iter() {
                    // arrays are JSON text in their cell (parsed by the snippet); bools are `true`/`false`
                    if v.is_boolean() && g[k].is_string() {
                        let b = g[k].as_str().unwrap() == "true";
                        g.insert(k.clone(), json!(b));
                    }
                }
                assert_json_eq_text(&Json::Object(g), &Json::Object(flat), &format!("{file}[{i}]"));
            }
        }
    }
    let cols = &got["robot1/imu.csv"]["columns"];
    assert_eq!(cols[0], "receive_time_ns");
    assert_eq!(cols[3], "header.stamp.sec");
    assert!(cols.as_array().unwrap().contains(&json!("linear_acceleration.x")));
}

const NPY_PY: &str = r#"
import json, os, sys
def exact(o):
    # floats as exact text (`f:` + repr), so the Rust side parses them without rounding
    if hasattr(o, 'item') and not isinstance(o, (list, dict, tuple, bytes)):
        o = o.item()
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [exact(v) for v in o]
    return o
import numpy as np
out = sys.argv[1]
res = {}
for root, _, files in os.walk(out):
    for f in files:
        if f.endswith('.npy'):
            p = os.path.join(root, f)
            a = np.load(p)
            res[os.path.relpath(p, out)] = {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tolist()}
print(json.dumps(exact(res)))
"#;

#[test]
fn npy_read_by_numpy_equals_recorded_values() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out.path(), "npy", &[]);
    check_manifest(&rec, out.path(), &m, "npy");
    let got = run_python(NPY_PY, &[out.path()]);
    let arr = |f: &str| got.get(f).unwrap_or_else(|| panic!("{f} missing")).clone();
    let col = |robot: &str, topic: &str, f: &dyn Fn(&Expected) -> Json| -> Json {
        Json::Array(rec.topic(robot, topic).into_iter().map(f).collect())
    };
    for robot in ROBOTS {
        let imu = format!("/{robot}/imu");
        let a = arr(&format!("{robot}/imu/receive_time_ns.npy"));
        assert_eq!(a["dtype"], "<u8");
        assert_json_eq(&a["data"], &col(robot, &imu, &|m| json!(m.receive_ns)), "receive");
        assert_json_eq(
            &arr(&format!("{robot}/imu/sequence.npy"))["data"],
            &col(robot, &imu, &|m| json!(m.sequence)),
            "seq",
        );
        let a = arr(&format!("{robot}/imu/linear_acceleration.x.npy"));
        assert_eq!(a["dtype"], "<f8");
        assert_json_eq(&a["data"], &col(robot, &imu, &|m| m.value["linear_acceleration"]["x"].clone()), "lin x");
        let a = arr(&format!("{robot}/imu/orientation_covariance.npy"));
        assert_eq!(a["shape"], json!([rec.topic(robot, &imu).len(), 9]));
        assert_json_eq(&a["data"], &col(robot, &imu, &|m| m.value["orientation_covariance"].clone()), "cov");
        let a = arr(&format!("{robot}/imu/header.stamp.sec.npy"));
        assert_eq!(a["dtype"], "<i4");
        assert_json_eq(&a["data"], &col(robot, &imu, &|m| m.value["header"]["stamp"]["sec"].clone()), "sec");
        assert!(
            !got.as_object().unwrap().contains_key(&format!("{robot}/imu/header.frame_id.npy")),
            "strings are left out"
        );
        // ragged: values + offsets
        let scan = format!("/{robot}/scan");
        let vals = arr(&format!("{robot}/scan/ranges.npy"));
        let offs = arr(&format!("{robot}/scan/ranges.offsets.npy"));
        assert_eq!(vals["dtype"], "<f4");
        assert_eq!(offs["dtype"], "<i8");
        let o = offs["data"].as_array().unwrap();
        let want = rec.topic(robot, &scan);
        assert_eq!(o.len(), want.len() + 1);
        for (i, w) in want.iter().enumerate() {
            let (a, b) = (o[i].as_u64().unwrap() as usize, o[i + 1].as_u64().unwrap() as usize);
            let slice = Json::Array(vals["data"].as_array().unwrap()[a..b].to_vec());
            assert_json_eq(&slice, &w.value["ranges"], &format!("{robot} ranges[{i}]"));
        }
        let img = arr(&format!("{robot}/camera__image_raw/data.npy"));
        assert_eq!(img["dtype"], "|u1");
        let want: Vec<Json> = rec
            .topic(robot, &format!("/{robot}/camera/image_raw"))
            .iter()
            .flat_map(|m| m.value["data"].as_array().unwrap().clone())
            .collect();
        assert_json_eq(&img["data"], &Json::Array(want), "image data");
        // fixed arrays of nested structs add a dimension
        let corners = arr(&format!("{robot}/mission/corners.position.x.npy"));
        assert_eq!(corners["shape"], json!([PER_TOPIC, 2]));
        assert_json_eq(
            &corners["data"],
            &col(robot, &format!("/{robot}/mission"), &|m| {
                Json::Array(m.value["corners"].as_array().unwrap().iter().map(|c| c["position"]["x"].clone()).collect())
            }),
            "corners",
        );
        let u64s = arr(&format!("{robot}/mission/u64.npy"));
        assert_eq!(u64s["dtype"], "<u8");
        assert_json_eq(&u64s["data"], &col(robot, &format!("/{robot}/mission"), &|m| m.value["u64"].clone()), "u64");
        let speeds = arr(&format!("{robot}/mission/waypoints.speed.npy"));
        let offs = arr(&format!("{robot}/mission/waypoints.offsets.npy"));
        let want: Vec<Json> = rec
            .topic(robot, &format!("/{robot}/mission"))
            .iter()
            .flat_map(|m| {
                m.value["waypoints"].as_array().unwrap().iter().map(|w| w["speed"].clone()).collect::<Vec<_>>()
            })
            .collect();
        assert_json_eq(&speeds["data"], &Json::Array(want.clone()), "speeds");
        assert_eq!(offs["data"].as_array().unwrap().last().unwrap(), &json!(want.len()));
    }
    let mission = m.topics.iter().find(|t| t.topic == "/robot1/mission").unwrap();
    assert!(mission.skipped_fields.contains(&"waypoints.label".to_string()), "{:?}", mission.skipped_fields);
    assert!(mission.skipped_fields.contains(&"corners.blob".to_string()), "{:?}", mission.skipped_fields);
}

const TFRECORD_PY: &str = r#"
import json, os, struct, sys
def exact(o):
    # floats as exact text (`f:` + repr), so the Rust side parses them without rounding
    if hasattr(o, 'item') and not isinstance(o, (list, dict, tuple, bytes)):
        o = o.item()
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [exact(v) for v in o]
    return o
import numpy as np
from tfrecord.reader import tfrecord_loader
# An independent CRC32C to check the framing of every record.
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
def masked(b):
    c = crc32c(b)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
def conv(v):
    if isinstance(v, bytes):
        return [list(v)]
    if isinstance(v, np.ndarray) and v.dtype.kind == 'S':
        return [list(x) for x in v.tolist()]
    if isinstance(v, np.ndarray) and v.dtype == np.float32:
        return [float(x) for x in v.tolist()]
    return v.tolist()
out = sys.argv[1]
res = {}
for root, _, files in os.walk(out):
    for f in files:
        if f.endswith('.tfrecord'):
            p = os.path.join(root, f)
            data = open(p, 'rb').read()
            pos, frames = 0, 0
            while pos < len(data):
                (n,) = struct.unpack_from('<Q', data, pos)
                (lc,) = struct.unpack_from('<I', data, pos + 8)
                assert lc == masked(data[pos:pos + 8]), (p, pos, 'length crc')
                (dc,) = struct.unpack_from('<I', data, pos + 12 + n)
                assert dc == masked(data[pos + 12:pos + 12 + n]), (p, pos, 'data crc')
                pos += 16 + n
                frames += 1
            recs = [{k: conv(v) for k, v in r.items()} for r in tfrecord_loader(p, None)]
            assert len(recs) == frames
            res[os.path.relpath(p, out)] = recs
print(json.dumps(exact(res)))
"#;

fn f32s(v: &Json) -> Json {
    match v {
        Json::Array(a) => Json::Array(a.iter().map(f32s).collect()),
        Json::Number(n) => json!(f64::from(n.as_f64().unwrap() as f32)),
        o => o.clone(),
    }
}

fn bytes_of(s: &Json) -> Json {
    Json::Array(s.as_str().unwrap().bytes().map(|b| json!(b)).collect())
}

#[test]
fn tfrecord_read_by_tfrecord_reader_equals_recorded_values() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out.path(), "tfrecord", &[]);
    check_manifest(&rec, out.path(), &m, "tfrecord");
    let got = run_python(TFRECORD_PY, &[out.path()]);
    for robot in ROBOTS {
        let ex = got[format!("{robot}/imu.tfrecord")].as_array().unwrap();
        let want = rec.topic(robot, &format!("/{robot}/imu"));
        assert_eq!(ex.len(), want.len());
        for (e, w) in ex.iter().zip(&want) {
            assert_eq!(e["receive_time_ns"], json!([w.receive_ns]));
            assert_eq!(e["publish_time_ns"], json!([w.publish_ns]));
            assert_eq!(e["sequence"], json!([w.sequence]));
            assert_json_eq(&e["linear_acceleration.x"], &f32s(&json!([w.value["linear_acceleration"]["x"]])), "x");
            assert_json_eq(&e["orientation_covariance"], &f32s(&w.value["orientation_covariance"]), "cov");
            assert_eq!(e["header.stamp.sec"], json!([w.value["header"]["stamp"]["sec"]]));
            assert_eq!(e["header.frame_id"], json!([bytes_of(&w.value["header"]["frame_id"])]));
        }
        let ex = got[format!("{robot}/camera__image_raw.tfrecord")].as_array().unwrap();
        for (e, w) in ex.iter().zip(rec.topic(robot, &format!("/{robot}/camera/image_raw"))) {
            assert_eq!(e["data"], json!([w.value["data"]]));
            assert_eq!(e["width"], json!([4]));
        }
        let ex = got[format!("{robot}/mission.tfrecord")].as_array().unwrap();
        for (e, w) in ex.iter().zip(rec.topic(robot, &format!("/{robot}/mission"))) {
            let xs: Vec<Json> =
                w.value["waypoints"].as_array().unwrap().iter().map(|p| p["position"]["x"].clone()).collect();
            assert_json_eq(&e["waypoints.position.x"], &f32s(&Json::Array(xs)), "waypoints x");
            let tags: Vec<Json> = w.value["tags"].as_array().unwrap().iter().map(bytes_of).collect();
            assert_eq!(e["tags"], Json::Array(tags));
            assert_eq!(e["i64"], json!([w.value["i64"]]));
            assert_eq!(e["tag"], json!([w.value["tag"]]));
        }
        let ex = got[format!("{robot}/scan.tfrecord")].as_array().unwrap();
        for (e, w) in ex.iter().zip(rec.topic(robot, &format!("/{robot}/scan"))) {
            assert_json_eq(&e["ranges"], &w.value["ranges"], "ranges");
        }
    }
}

const MCAP_PY: &str = r#"
import json, os, sys
def exact(o):
    # floats as exact text (`f:` + repr), so the Rust side parses them without rounding
    if hasattr(o, 'item') and not isinstance(o, (list, dict, tuple, bytes)):
        o = o.item()
    if isinstance(o, float):
        return 'f:' + repr(o)
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [exact(v) for v in o]
    return o
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
def conv(o):
    if isinstance(o, (bytes, bytearray)):
        return list(o)
    if isinstance(o, (list, tuple)):
        return [conv(x) for x in o]
    if hasattr(o, '__slots__'):
        return {k: conv(getattr(o, k)) for k in o.__slots__}
    return o
out = sys.argv[1]
res = {}
for f in sorted(os.listdir(out)):
    if f.endswith('.mcap'):
        with open(os.path.join(out, f), 'rb') as fh:
            reader = make_reader(fh, decoder_factories=[DecoderFactory()])
            summary = reader.get_summary()
            msgs = {}
            for schema, channel, message, ros in reader.iter_decoded_messages(topics=[c.topic for c in summary.channels.values() if c.schema_id != 0]):
                msgs.setdefault(channel.topic, []).append({"log_time": message.log_time, "publish_time": message.publish_time,
                    "sequence": message.sequence, "schema": schema.name, "schema_encoding": schema.encoding,
                    "encoding": channel.message_encoding, "value": conv(ros)})
            raw = {}
            fh.seek(0)
            for schema, channel, message in make_reader(fh).iter_messages():
                if channel.schema_id == 0:
                    raw.setdefault(channel.topic, []).append(list(message.data))
            res[f] = {"profile": reader.get_header().profile, "messages": msgs, "raw": raw,
                      "count": summary.statistics.message_count}
print(json.dumps(exact(res)))
"#;

#[test]
fn mcap_decoded_by_mcap_ros2_equals_recorded_values() {
    let rec = recording();
    let out = tempfile::tempdir().unwrap();
    let m = run_export(rec.path(), out.path(), "mcap", &[]);
    check_manifest(&rec, out.path(), &m, "mcap");
    let got = run_python(MCAP_PY, &[out.path()]);
    for robot in ROBOTS {
        let f = &got[format!("{robot}.mcap")];
        assert_eq!(f["profile"], "ros2");
        let extra = if robot == "robot1" { PER_TOPIC } else { 0 };
        assert_eq!(f["count"], json!(rec.messages.iter().filter(|m| m.robot == robot).count() as u64 + extra));
        for topic in topics_of_robot(robot) {
            let msgs = f["messages"][&topic].as_array().unwrap_or_else(|| panic!("{robot} {topic} missing"));
            let want = rec.topic(robot, &topic);
            assert_eq!(msgs.len(), want.len(), "{topic}");
            for (g, w) in msgs.iter().zip(want) {
                assert_eq!(g["log_time"], json!(w.receive_ns));
                assert_eq!(g["publish_time"], json!(w.publish_ns));
                assert_eq!(g["sequence"], json!(w.sequence));
                assert_eq!(g["schema"], json!(w.type_name));
                assert_eq!(g["schema_encoding"], "ros2msg");
                assert_eq!(g["encoding"], "cdr");
                assert_json_eq(&g["value"], &without_placeholder(&w.value), &format!("{topic}#{}", w.sequence));
            }
        }
    }
    let raw = got["robot1.mcap"]["raw"]["/robot1/blob"].as_array().unwrap();
    assert_eq!(raw.len() as u64, PER_TOPIC);
    assert_eq!(raw[0], json!([0, 1, 0, 0, 1, 0xee]));
}
