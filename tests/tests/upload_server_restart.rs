//! The S3 server (SeaweedFS, which keeps its data on disk) SIGKILLed mid-upload and started
//! again on the same ports: the uploader rides it out (backoff, then offline and probes) and
//! finishes every segment without help; the objects equal the local files. Once, on a clean CI
//! run, SeaweedFS answered every part PUT of the resumed upload with `500 InternalError` for
//! minutes after the restart: the uploader then restarts that upload after two rounds (see
//! `upload_server_errors.rs`), so the test allows upload restarts and resent parts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fleetrec_tests::s3::{journals, sha256, sync_section, wait_uploaded, S3Server, UploaderProcess};
use fleetrec_tests::{wait_status, TestEnv};
use uploader::fixtures::{write_sealed, FixtureSegment};

const BUCKET: &str = "restart";
const WAIT: Duration = Duration::from_secs(300);

#[test]
fn server_killed_and_restarted_mid_upload_the_upload_finishes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = S3Server::seaweedfs(tmp.path());
    server.create_bucket(BUCKET);
    // 4 MiB/s and 3 parts per segment: the server dies while parts are being sent. The
    // backoff is short on purpose, so the segment also goes through "offline" and the probe.
    let env = TestEnv::new(
        "weed",
        &sync_section(
            &server.endpoint(),
            BUCKET,
            "concurrency = 2\nbandwidth_limit = 4194304\nmax_retries = 4\nretry_timeout_s = 3",
        ),
    );
    let rec = env.dir.path().join("recordings");
    let state = rec.join(".upload");
    let segs: Vec<(FixtureSegment, Vec<u8>)> = (1..=2)
        .map(|i| {
            let spec = FixtureSegment::new(i, "robot1", 14 * 1024 * 1024);
            write_sealed(&rec, &spec).unwrap();
            let bytes = std::fs::read(rec.join(spec.file_name())).unwrap();
            (spec, bytes)
        })
        .collect();
    let names: Vec<String> = segs.iter().map(|(s, _)| s.file_name()).collect();

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    let deadline = Instant::now() + WAIT;
    loop {
        let j = journals(&state);
        let done: usize = j.values().map(|j| j.parts_done()).sum();
        if done >= 1 {
            assert!(j.values().any(|j| !j.is_done()), "finished before the server could be killed");
            break;
        }
        assert!(Instant::now() < deadline, "no part uploaded; log:\n{}", up.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    // The uploader notices: requests fail, the backoff runs out, the status says offline.
    let s = wait_status("uploader", &env.config, WAIT, |s| s["state"] == "waiting");
    assert!(s["detail"].as_str().unwrap().starts_with("offline"), "{s}");
    server.restart();
    wait_uploaded(&state, &names, WAIT, &|| up.log_text());
    let s = wait_status("uploader", &env.config, WAIT, |s| s["segments"] == 2);
    assert_eq!(s["state"], "running", "{s}");
    up.terminate(Duration::from_secs(20));

    for (spec, bytes) in &segs {
        let key = format!("fleet/robot1/{}/{}", "5e".repeat(16), spec.file_name());
        let object = server.get_object(BUCKET, &key).unwrap_or_else(|| panic!("object {key} missing"));
        assert_eq!(object.len(), bytes.len());
        assert_eq!(sha256(&object), sha256(bytes), "{key}: SHA-256 differs from the local file");
    }
    let j = journals(&state);
    let restarts: u32 = j.values().map(|j| j.restarts).sum();
    let sends: u32 = j.values().flat_map(|j| &j.parts).map(|p| p.sends).sum();
    eprintln!("server restart: {restarts} upload restarts, {sends} part sends for 6 parts");
    let open = server.uploads_in_progress(BUCKET);
    assert!(open.is_empty(), "no multipart upload may stay open: {open:?}");
    // SeaweedFS usually keeps acknowledged parts across the restart (the check against ListParts
    // before resuming finds every one of them); if it lost some, or failed the upload with
    // server errors until it was restarted, sending the parts again is the right behaviour, so
    // that is reported, not asserted.
    let log = up.log_text();
    for what in ["the server lacks parts the journal recorded", "the server keeps failing this multipart upload"] {
        if let Some(line) = log.lines().find(|l| l.contains(what)) {
            eprintln!("server restart: server behaviour worth knowing: {line}");
        }
    }
    assert!(log.contains("endpoint unreachable") && log.contains("endpoint reachable"), "log:\n{log}");
}
