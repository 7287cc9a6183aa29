//! The uploader against a real S3 server (moto on loopback): objects equal the local files,
//! manifests are written, nothing is sent twice, credentials never reach the log, control
//! requests, retention, corrupt segments, and an upload id the server forgot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleetrec_tests::s3::{journals, sha256, sync_section, wait_uploaded, S3Server, UploaderProcess, TEST_SECRET_KEY};
use fleetrec_tests::{status_json, wait_status, TestEnv};
use shared::plane::{ControlCommand, Plane, Stage};
use uploader::fixtures::{write_sealed, FixtureSegment};

const BUCKET: &str = "fleet-test";
const WAIT: Duration = Duration::from_secs(180);

fn recordings(env: &TestEnv) -> PathBuf {
    env.dir.path().join("recordings")
}

fn state_dir(env: &TestEnv) -> PathBuf {
    recordings(env).join(".upload")
}

fn session_hex() -> String {
    "5e".repeat(16)
}

/// Checks that the object of `spec` equals the local file, that the sidecar manifest object
/// equals the local manifest, and that the upload manifest's part hashes are the file's.
fn assert_uploaded(server: &S3Server, dir: &Path, spec: &FixtureSegment, robot: &str, local: &[u8]) {
    let key = format!("fleet/{robot}/{}/{}", session_hex(), spec.file_name());
    let object = server.get_object(BUCKET, &key).unwrap_or_else(|| panic!("object {key} missing"));
    assert_eq!(object.len(), local.len(), "{key}: size");
    assert_eq!(sha256(&object), sha256(local), "{key}: SHA-256 differs from the local file");
    let manifest = std::fs::read(dir.join(format!("{}.manifest.json", spec.file_name())));
    if let Ok(manifest) = manifest {
        assert_eq!(server.get_object(BUCKET, &format!("{key}.manifest.json")).unwrap(), manifest);
    }
    let um: serde_json::Value =
        serde_json::from_slice(&server.get_object(BUCKET, &format!("{key}.upload.json")).unwrap()).unwrap();
    assert_eq!(um["format"], "fleetrec-upload-manifest");
    assert_eq!(um["sha256"], sha256(local));
    assert_eq!(um["size"], local.len() as u64);
    let chunk = um["chunk_size"].as_u64().unwrap() as usize;
    let parts = um["parts"].as_array().unwrap();
    assert_eq!(parts.len(), local.len().div_ceil(chunk));
    for (i, p) in parts.iter().enumerate() {
        let range = &local[i * chunk..((i + 1) * chunk).min(local.len())];
        assert_eq!(p["number"], i as u64 + 1);
        assert_eq!(p["size"], range.len() as u64);
        assert_eq!(p["sha256"], sha256(range), "part {} hash", i + 1);
        assert!(p["etag"].as_str().is_some_and(|e| !e.is_empty()), "part {} has no ETag", i + 1);
    }
}

fn make(dir: &Path, spec: &FixtureSegment) -> Vec<u8> {
    write_sealed(dir, spec).unwrap();
    std::fs::read(dir.join(spec.file_name())).unwrap()
}

#[test]
fn segments_upload_and_objects_equal_local_files_and_are_never_sent_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    let env = TestEnv::new("upload", &sync_section(&server.endpoint(), BUCKET, "concurrency = 2"));
    let rec = recordings(&env);
    let big = FixtureSegment::new(1, "robot1", 12 * 1024 * 1024); // 3 parts of 5 MiB
    let small = FixtureSegment::new(2, "robot2", 200 * 1024); // 1 part
    let mut mixed = FixtureSegment::new(3, "robot1", 6 * 1024 * 1024); // 2 parts, two robots
    mixed.robots.push((1, "robot2".into()));
    let files: Vec<(FixtureSegment, &str, Vec<u8>)> = [(big, "robot1"), (small, "robot2"), (mixed, "mixed")]
        .into_iter()
        .map(|(s, r)| {
            let b = make(&rec, &s);
            (s, r, b)
        })
        .collect();
    let names: Vec<String> = files.iter().map(|(s, _, _)| s.file_name()).collect();

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    wait_uploaded(&state_dir(&env), &names, WAIT, &|| up.log_text());
    for (spec, robot, bytes) in &files {
        assert_uploaded(&server, &rec, spec, robot, bytes);
    }
    let before = journals(&state_dir(&env));
    for j in before.values() {
        for p in &j.parts {
            assert_eq!(p.sends - p.retries, 1, "{} part {} sent more than once: {j:#?}", j.segment, p.number);
        }
        assert_eq!(j.restarts, 0);
    }
    assert_eq!(before[&names[0]].parts.len(), 3);
    assert!(server.uploads_in_progress(BUCKET).is_empty(), "no multipart upload may stay open");
    let status = wait_status("uploader", &env.config, WAIT, |s| s["segments"] == 3 && s["queue_depth"] == 0);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["bytes"], 0, "no pending bytes: {status}");
    let total: u64 = files.iter().map(|(_, _, b)| b.len() as u64).sum();
    assert_eq!(status["durable_bytes"], total, "{status}");
    let code = up.terminate(Duration::from_secs(20)).and_then(|s| s.code());
    assert_eq!(code, Some(0), "SIGTERM must stop the uploader cleanly; log:\n{}", up.log_text());

    // A restarted uploader sends nothing for completed segments, and does upload a new one.
    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    let fourth = FixtureSegment::new(4, "robot1", 100 * 1024);
    let fourth_bytes = make(&rec, &fourth);
    wait_uploaded(&state_dir(&env), &[fourth.file_name()], WAIT, &|| up.log_text());
    assert_uploaded(&server, &rec, &fourth, "robot1", &fourth_bytes);
    let after = journals(&state_dir(&env));
    for n in &names {
        assert_eq!(after[n], before[n], "journal of {n} changed after restart");
    }
    wait_status("uploader", &env.config, WAIT, |s| s["segments"] == 4);
    up.terminate(Duration::from_secs(20));
}

#[test]
fn credentials_from_env_or_file_are_never_logged_even_at_trace_level() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);

    // Environment.
    let env = TestEnv::new("creds", &sync_section(&server.endpoint(), BUCKET, ""));
    let rec = recordings(&env);
    let a = FixtureSegment::new(1, "robot1", 6 * 1024 * 1024);
    let a_bytes = make(&rec, &a);
    let mut up = UploaderProcess::start_with(
        &env.config,
        env.dir.path(),
        &[],
        &[("AWS_ACCESS_KEY_ID", "AKIAENVKEY"), ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)],
        "trace",
    );
    wait_uploaded(&state_dir(&env), &[a.file_name()], WAIT, &|| up.log_text());
    up.terminate(Duration::from_secs(20));
    assert_uploaded(&server, &rec, &a, "robot1", &a_bytes);
    let log = up.log_text();
    assert!(log.contains("credentials from the environment"), "log:\n{log}");
    assert!(log.contains("DEBUG") || log.contains("TRACE"), "the log must really be at debug level");
    assert!(!log.contains(TEST_SECRET_KEY), "the secret appears in the log");

    // File (no environment).
    let secret = "file-secret-must-not-leak-9f8e7d";
    let creds = env.dir.path().join("credentials");
    std::fs::write(&creds, format!("[default]\naws_access_key_id = AKIAFILEKEY\naws_secret_access_key = {secret}\n"))
        .unwrap();
    let env2 = TestEnv::new(
        "credsfile",
        &sync_section(&server.endpoint(), BUCKET, &format!("credentials_file = \"{}\"", creds.display())),
    );
    let rec2 = recordings(&env2);
    let b = FixtureSegment::new(2, "robot2", 300 * 1024);
    let b_bytes = make(&rec2, &b);
    let mut up = UploaderProcess::start_with(&env2.config, env2.dir.path(), &[], &[], "debug");
    wait_uploaded(&rec2.join(".upload"), &[b.file_name()], WAIT, &|| up.log_text());
    up.terminate(Duration::from_secs(20));
    assert_uploaded(&server, &rec2, &b, "robot2", &b_bytes);
    let log = up.log_text();
    assert!(log.contains("credentials from file"), "log:\n{log}");
    assert!(log.contains("DEBUG"), "the log must really be at debug level");
    assert!(!log.contains(secret), "the secret appears in the log");
    // The main config never holds credentials: an `aws_secret_access_key` key there is refused.
    let bad = env2.dir.path().join("bad.toml");
    std::fs::write(&bad, "[sync]\naws_secret_access_key = \"x\"\n").unwrap();
    let out = std::process::Command::new(fleetrec_tests::bin("uploader")).arg("--config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"));
    // A credentials file without the secret: a one-line configuration error, exit code 2.
    std::fs::write(&creds, "[default]\naws_access_key_id = AKIAFILEKEY\n").unwrap();
    let mut up = UploaderProcess::start_with(&env2.config, env2.dir.path(), &[], &[], "info");
    let code = up.wait(Duration::from_secs(30)).and_then(|s| s.code());
    assert_eq!(code, Some(2), "log:\n{}", up.log_text());
    let log = up.log_text();
    assert_eq!(log.trim_end().lines().count(), 1, "{log}");
    assert!(log.starts_with("error: credentials: ") && log.contains("aws_secret_access_key missing"), "{log}");
}

#[test]
fn corrupt_segment_is_not_uploaded_and_retention_deletes_only_verified_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    // The test file system is surely fuller than 1 %: retention deletes every verified upload.
    let env = TestEnv::new("retain", &sync_section(&server.endpoint(), BUCKET, "retention_max_disk_percent = 1"));
    let rec = recordings(&env);
    let good = FixtureSegment::new(1, "robot1", 7 * 1024 * 1024);
    let good_bytes = make(&rec, &good);
    let bad = FixtureSegment::new(2, "robot1", 1024 * 1024);
    make(&rec, &bad);
    // Damage one byte after sealing: the file no longer matches its manifest.
    let bad_path = rec.join(bad.file_name());
    let mut bytes = std::fs::read(&bad_path).unwrap();
    bytes[5000] ^= 0xff;
    std::fs::write(&bad_path, &bytes).unwrap();

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    wait_uploaded(&state_dir(&env), &[good.file_name()], WAIT, &|| up.log_text());
    let status = wait_status("uploader", &env.config, WAIT, |s| s["corrupt"] == 1 && s["segments"] == 1);
    assert!(status["errors"].as_u64().unwrap() >= 1, "{status}");
    // Retention runs right after the upload is verified.
    let deadline = std::time::Instant::now() + WAIT;
    while !journals(&state_dir(&env))[&good.file_name()].local_deleted {
        assert!(std::time::Instant::now() < deadline, "retention keeps an uploaded, verified segment");
        std::thread::sleep(Duration::from_millis(50));
    }
    up.terminate(Duration::from_secs(20));
    assert_uploaded(&server, &rec, &good, "robot1", &good_bytes);
    let bad_key = format!("fleet/robot1/{}/{}", session_hex(), bad.file_name());
    assert!(server.get_object(BUCKET, &bad_key).is_none(), "a corrupt segment must not be uploaded");
    assert!(server.uploads_in_progress(BUCKET).is_empty());
    assert!(!rec.join(good.file_name()).exists(), "retention keeps an uploaded, verified segment");
    assert!(!rec.join(format!("{}.manifest.json", good.file_name())).exists());
    assert!(bad_path.exists(), "retention deleted a segment that was not uploaded");
    let j = &journals(&state_dir(&env))[&good.file_name()];
    assert!(j.local_deleted && j.verified);
    assert!(up.log_text().contains("does not match its manifest"), "log:\n{}", up.log_text());
}

/// Sends a control request to the uploader over the request-response control plane and checks
/// that it was carried out.
fn send_control(plane: &Plane, command: ControlCommand) {
    let reply = shared::control::ControlClient::new(plane)
        .request(Stage::Uploader, command, "", Duration::from_secs(30))
        .unwrap();
    assert!(reply.ok, "{command:?}: {reply:?}");
}

#[test]
fn pause_resume_sync_now_and_segment_notices() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    // Rescans are rare here, so only `sync now` or a notice makes the uploader look.
    let env = TestEnv::new(
        "control",
        &sync_section(&server.endpoint(), BUCKET, "").replace("rescan_interval_s = 1", "rescan_interval_s = 3600"),
    );
    let rec = recordings(&env);
    let first = FixtureSegment::new(1, "robot1", 100 * 1024);
    make(&rec, &first);
    let plane = Plane::open("test-control", &env.load().pipeline).unwrap();
    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    wait_uploaded(&state_dir(&env), &[first.file_name()], WAIT, &|| up.log_text());

    // sync now: a segment sealed after the last scan is found and uploaded.
    let second = FixtureSegment::new(2, "robot1", 100 * 1024);
    let second_bytes = make(&rec, &second);
    send_control(&plane, ControlCommand::SyncNow);
    wait_uploaded(&state_dir(&env), &[second.file_name()], WAIT, &|| up.log_text());
    assert_uploaded(&server, &rec, &second, "robot1", &second_bytes);

    // A sealed-segment notice is a hint that makes it rescan.
    let third = FixtureSegment::new(3, "robot1", 100 * 1024);
    make(&rec, &third);
    let notices = plane.segment_publisher().unwrap();
    let mut notice = shared::plane::SegmentNotice {
        robot_id: 0,
        reserved: 0,
        records: 0,
        segment_seq: 3,
        bytes: 0,
        first_ns: 0,
        last_ns: 0,
        path: [0; 256],
    };
    shared::plane::write_cstr(&mut notice.path, &rec.join(third.file_name()).to_string_lossy());
    notices.send_copy(notice).unwrap();
    wait_uploaded(&state_dir(&env), &[third.file_name()], WAIT, &|| up.log_text());

    // pause: new segments are queued, not sent; resume sends them.
    send_control(&plane, ControlCommand::Pause);
    wait_status("uploader", &env.config, WAIT, |s| s["state"] == "paused");
    let fourth = FixtureSegment::new(4, "robot1", 6 * 1024 * 1024);
    let fourth_bytes = make(&rec, &fourth);
    send_control(&plane, ControlCommand::SyncNow);
    let s = wait_status("uploader", &env.config, WAIT, |s| s["queue_depth"] == 1);
    assert_eq!(s["state"], "paused", "{s}");
    assert_eq!(s["bytes"], fourth_bytes.len() as u64, "pending bytes: {s}");
    assert_eq!(s["topics"][0]["name"], fourth.file_name(), "{s}");
    std::thread::sleep(Duration::from_secs(2));
    let key = format!("fleet/robot1/{}/{}", session_hex(), fourth.file_name());
    assert!(server.get_object(BUCKET, &key).is_none(), "uploaded while paused");
    let sent: u32 =
        journals(&state_dir(&env)).get(&fourth.file_name()).map_or(0, |j| j.parts.iter().map(|p| p.sends).sum());
    assert_eq!(sent, 0, "a part was sent while paused");
    send_control(&plane, ControlCommand::Resume);
    wait_uploaded(&state_dir(&env), &[fourth.file_name()], WAIT, &|| up.log_text());
    assert_uploaded(&server, &rec, &fourth, "robot1", &fourth_bytes);
    let s = wait_status("uploader", &env.config, WAIT, |s| s["segments"] == 4);
    assert_eq!(s["state"], "running", "{s}");

    // stop
    send_control(&plane, ControlCommand::Stop);
    let code = up.wait(Duration::from_secs(30)).and_then(|s| s.code());
    assert_eq!(code, Some(0), "log:\n{}", up.log_text());
    let (code, _) = status_json("uploader", &env.config);
    assert_eq!(code, 1, "status must say not running after stop");
}

#[test]
fn an_upload_the_server_forgot_is_restarted_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    // 2 MiB/s: the 4-part upload takes several seconds, so it can be interrupted mid-way.
    let env =
        TestEnv::new("forgot", &sync_section(&server.endpoint(), BUCKET, "concurrency = 1\nbandwidth_limit = 2097152"));
    let rec = recordings(&env);
    let seg = FixtureSegment::new(1, "robot1", 16 * 1024 * 1024);
    let bytes = make(&rec, &seg);
    let name = seg.file_name();
    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    let deadline = std::time::Instant::now() + WAIT;
    let journal = loop {
        if let Some(j) = journals(&state_dir(&env)).remove(&name) {
            if j.parts_done() >= 1 && j.parts_done() < j.parts.len() {
                break j;
            }
            assert!(!j.is_done(), "finished before it could be interrupted");
        }
        assert!(std::time::Instant::now() < deadline, "no part uploaded; log:\n{}", up.log_text());
        std::thread::sleep(Duration::from_millis(20));
    };
    up.kill();
    let id = journal.upload_id.clone().unwrap();
    server.abort_upload(BUCKET, &journal.key, &id);
    assert!(server.uploads_in_progress(BUCKET).is_empty());

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    wait_uploaded(&state_dir(&env), std::slice::from_ref(&name), WAIT, &|| up.log_text());
    up.terminate(Duration::from_secs(20));
    assert_uploaded(&server, &rec, &seg, "robot1", &bytes);
    let j = &journals(&state_dir(&env))[&name];
    assert_eq!(j.restarts, 1, "{j:#?}");
    assert_ne!(j.upload_id.as_deref(), Some(id.as_str()));
    assert!(server.uploads_in_progress(BUCKET).is_empty());
    assert!(up.log_text().contains("no longer knows the upload"), "log:\n{}", up.log_text());
}
