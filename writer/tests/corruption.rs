//! CRC corruption anywhere in a sealed segment is detected by `inspect`, which names the
//! segment and the offset of the damaged record; the `fleetrec-writer inspect` binary exits 1
//! then and 0 on a clean recording.
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;
use shared::segment::consts::HEADER_LEN;
use shared::segment::{scan, ScanMode};
use writer::directory::list_segments;
use writer::inspect::{inspect, ManifestCheck, ProblemKind};

fn sealed_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut opts = small_opts(dir);
    opts.segment_size = 1 << 20;
    let mut w = open(opts);
    let t = topic(11, 0, "robot1", "imu");
    w.define_topic(t.clone()).unwrap();
    for seq in 1..=12 {
        w.append(&header(&t, seq), &payload(11, seq, 40)).unwrap();
        if seq % 4 == 0 {
            w.sync().unwrap();
        }
    }
    w.close().unwrap();
    list_segments(dir).unwrap().remove(0).path
}

#[test]
fn every_flipped_byte_is_reported_with_segment_and_offset() {
    let src = tempfile::tempdir().unwrap();
    let seg = sealed_segment(src.path());
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let clean = std::fs::read(&seg).unwrap();
    let clean_report = inspect(src.path()).unwrap();
    assert!(clean_report.is_clean(), "{:?}", clean_report.problems);
    assert_eq!(clean_report.messages, 12);
    assert_eq!(clean_report.segments[0].manifest, ManifestCheck::Ok);

    let records = scan(&clean, ScanMode::StopAtFirstError).unwrap().records;
    let record_at = |i: usize| -> u64 {
        if i < HEADER_LEN {
            return 0;
        }
        records.iter().find(|r| (r.offset as usize..r.offset as usize + r.framed_len()).contains(&i)).unwrap().offset
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&name);
    for i in 0..clean.len() {
        let mut bytes = clean.clone();
        bytes[i] ^= 1 << (i % 8);
        std::fs::write(&path, &bytes).unwrap();
        let r = inspect(dir.path()).unwrap();
        assert!(!r.is_clean(), "flip at byte {i} not detected");
        let want = record_at(i);
        let hit = r.problems.iter().any(|p| {
            p.segment == name
                && p.offset == Some(want)
                && matches!(p.kind, ProblemKind::CorruptRecord | ProblemKind::TornTail | ProblemKind::BadHeader)
        });
        assert!(hit, "flip at byte {i}: expected a problem at offset {want}, got {:?}", r.problems);
        // Never a damaged message in the output.
        if let Ok(c) = writer::read_segment(&path) {
            for m in &c.messages {
                assert_eq!(m.payload, payload(11, m.header.sequence, 40));
            }
        }
    }
}

#[test]
fn manifest_mismatch_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let seg = sealed_segment(dir.path());
    assert!(inspect(dir.path()).unwrap().is_clean());
    // The segment is intact, but its manifest names another hash.
    let mpath = writer::directory::manifest_path(&seg);
    let text = std::fs::read_to_string(&mpath).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["sha256"] = serde_json::Value::String("00".repeat(32));
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = inspect(dir.path()).unwrap();
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].kind, ProblemKind::ManifestMismatch);
}

#[test]
fn inspect_binary_exit_codes_and_json() {
    let bin = env!("CARGO_BIN_EXE_fleetrec-writer");
    let dir = tempfile::tempdir().unwrap();
    let seg = sealed_segment(dir.path());
    let out = Command::new(bin).arg("inspect").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("/robot1/imu"), "{text}");
    assert!(text.contains("no corruption found"), "{text}");

    let mut bytes = std::fs::read(&seg).unwrap();
    let records = scan(&bytes, ScanMode::StopAtFirstError).unwrap().records;
    let victim = records[3].offset;
    bytes[victim as usize + 14] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let out = Command::new(bin).args(["inspect", "--json"]).arg(&seg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = j["problems"].as_array().unwrap();
    assert!(problems
        .iter()
        .any(|p| p["offset"] == victim && p["segment"] == seg.file_name().unwrap().to_string_lossy().as_ref()));
    assert_eq!(j["clean"], false);

    let out = Command::new(bin).args(["inspect", "/nonexistent/x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // recover refuses nothing here, and a config error is one line with exit 2
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[storage]\nwal_segment_size = 0\n").unwrap();
    let out = Command::new(bin).arg("--config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("storage.wal_segment_size"), "{err}");
}
