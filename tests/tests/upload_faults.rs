//! Network faults against a real S3 server (moto on loopback): connections reset mid-part by
//! an in-test TCP proxy, and an endpoint that is unreachable when the uploader starts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleetrec_tests::s3::{
    free_port, journals, sha256, sync_section, wait_uploaded, ResetProxy, S3Server, UploaderProcess,
};
use fleetrec_tests::{wait_status, TestEnv};
use uploader::fixtures::{write_sealed, FixtureSegment};

const BUCKET: &str = "faults";
const WAIT: Duration = Duration::from_secs(180);

fn recordings(env: &TestEnv) -> PathBuf {
    env.dir.path().join("recordings")
}

fn make(dir: &Path, seq: u64, size: u64) -> (FixtureSegment, Vec<u8>) {
    let spec = FixtureSegment::new(seq, "robot1", size);
    write_sealed(dir, &spec).unwrap();
    let bytes = std::fs::read(dir.join(spec.file_name())).unwrap();
    (spec, bytes)
}

fn assert_object(server: &S3Server, spec: &FixtureSegment, local: &[u8]) {
    let key = format!("fleet/robot1/{}/{}", "5e".repeat(16), spec.file_name());
    let object = server.get_object(BUCKET, &key).unwrap_or_else(|| panic!("object {key} missing"));
    assert_eq!(sha256(&object), sha256(local), "{key}: SHA-256 differs from the local file");
}

#[test]
fn connections_reset_mid_part_are_retried_and_the_objects_are_correct() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    // Reset the first 4 connections that carry more than 1 MiB: inside a 5 MiB part body.
    let proxy = ResetProxy::start(server.port, 1024 * 1024, 4);
    let env = TestEnv::new("reset", &sync_section(&proxy.endpoint(), BUCKET, "concurrency = 2"));
    let rec = recordings(&env);
    let segs: Vec<_> = (1..=2).map(|i| make(&rec, i, 12 * 1024 * 1024)).collect();
    let names: Vec<String> = segs.iter().map(|(s, _)| s.file_name()).collect();

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    wait_uploaded(&rec.join(".upload"), &names, WAIT, &|| up.log_text());
    let status = wait_status("uploader", &env.config, WAIT, |s| s["segments"] == 2);
    up.terminate(Duration::from_secs(20));

    for (spec, bytes) in &segs {
        assert_object(&server, spec, bytes);
    }
    assert_eq!(proxy.resets(), 4, "the proxy did not reset connections as planned");
    let j = journals(&rec.join(".upload"));
    let retries: u32 = j.values().flat_map(|j| &j.parts).map(|p| p.retries).sum();
    assert!(retries >= 1, "resets must show up as retried parts: {j:#?}");
    for jr in j.values() {
        assert_eq!(jr.restarts, 0, "a reset must not restart the upload: {jr:#?}");
        for p in &jr.parts {
            assert_eq!(p.sends, 1 + p.retries, "{} part {}: sends beyond retries", jr.segment, p.number);
        }
    }
    assert!(status["errors"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["dropped"].as_u64().unwrap() >= 1, "retries are reported: {status}");
    assert!(server.uploads_in_progress(BUCKET).is_empty());
}

#[test]
fn unreachable_endpoint_at_start_queues_segments_reports_offline_then_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = TestEnv::new("offline", &sync_section(&format!("http://127.0.0.1:{port}"), BUCKET, ""));
    let rec = recordings(&env);
    let segs: Vec<_> = vec![make(&rec, 1, 6 * 1024 * 1024), make(&rec, 2, 300 * 1024)];
    let names: Vec<String> = segs.iter().map(|(s, _)| s.file_name()).collect();
    let pending: u64 = segs.iter().map(|(_, b)| b.len() as u64).sum();

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    let s = wait_status("uploader", &env.config, WAIT, |s| s["state"] == "waiting" && s["queue_depth"] == 2);
    assert!(s["detail"].as_str().unwrap().starts_with("offline"), "{s}");
    assert_eq!(s["bytes"], pending, "pending bytes: {s}");
    assert_eq!(s["segments"], 0, "{s}");
    assert!(up.exited().is_none(), "the uploader must wait, not exit");

    // The endpoint comes up: the queued segments go without any help.
    let server = S3Server::moto_on(port, tmp.path());
    server.create_bucket(BUCKET);
    wait_uploaded(&rec.join(".upload"), &names, WAIT, &|| up.log_text());
    let s = wait_status("uploader", &env.config, WAIT, |s| s["segments"] == 2 && s["queue_depth"] == 0);
    assert_eq!(s["state"], "running", "{s}");
    up.terminate(Duration::from_secs(20));
    for (spec, bytes) in &segs {
        assert_object(&server, spec, bytes);
    }
    assert!(up.log_text().contains("endpoint unreachable"), "log:\n{}", up.log_text());
}
