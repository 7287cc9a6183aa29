//! A server that answers with errors instead of forgetting an upload: an HTTP proxy in front of
//! moto answers every part PUT and the completion of the first multipart upload with
//! `500 InternalError` (what SeaweedFS did for minutes after a SIGKILL and restart, once). The
//! uploader spends its backoff, goes offline, probes, retries; after two such rounds it aborts
//! that upload and starts a new one, which goes through. The object equals the local file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fleetrec_tests::s3::{journals, sha256, sync_section, S3Server, UploadErrorProxy, UploaderProcess};
use fleetrec_tests::TestEnv;
use uploader::fixtures::{write_sealed, FixtureSegment};

const BUCKET: &str = "servererrors";
/// A guard against hanging: with the backoff below a round takes about 3 s.
const WAIT: Duration = Duration::from_secs(90);
/// Attempts per request in one round: the first and `max_retries` retries.
const ATTEMPTS_PER_ROUND: u32 = 3;

#[test]
fn an_upload_the_server_keeps_failing_with_500_is_restarted_after_two_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    let proxy = UploadErrorProxy::start(server.port);
    // A round: 3 attempts of a part (max_retries = 2, at most 2 s), then offline until the
    // next probe (1 s).
    let env = TestEnv::new(
        "srverr",
        &sync_section(&proxy.endpoint(), BUCKET, "concurrency = 2\nmax_retries = 2\nretry_timeout_s = 2"),
    );
    let rec = env.dir.path().join("recordings");
    let state = rec.join(".upload");
    // 14 MiB in 5 MiB parts: a 3-part multipart upload.
    let spec = FixtureSegment::new(1, "robot1", 14 * 1024 * 1024);
    write_sealed(&rec, &spec).unwrap();
    let local = std::fs::read(rec.join(spec.file_name())).unwrap();
    let name = spec.file_name();

    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    let deadline = Instant::now() + WAIT;
    loop {
        let j = journals(&state);
        if j.get(&name).is_some_and(|j| j.is_done()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "segment not uploaded within {WAIT:?}: the uploader keeps retrying the upload the server fails \
             ({} InternalError answers so far, poisoned upload {:?}); journal: {:#?}\nlog:\n{}",
            proxy.errors_sent(),
            proxy.poisoned_upload(),
            j.get(&name),
            up.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    up.terminate(Duration::from_secs(20));
    let log = up.log_text();

    // The data.
    let key = format!("fleet/robot1/{}/{name}", "5e".repeat(16));
    let object = server.get_object(BUCKET, &key).unwrap_or_else(|| panic!("object {key} missing"));
    assert_eq!(object.len(), local.len());
    assert_eq!(sha256(&object), sha256(&local), "{key}: SHA-256 differs from the local file");

    // The fault happened as planned: two whole rounds of 500s on the first upload.
    let poisoned = proxy.poisoned_upload().expect("the proxy saw no multipart upload");
    assert!(
        proxy.errors_sent() >= 2 * ATTEMPTS_PER_ROUND,
        "{} errors answered, expected two rounds of {ATTEMPTS_PER_ROUND}",
        proxy.errors_sent()
    );
    assert_eq!(proxy.chunked_requests(), 0, "object_store sends Content-Length bodies");

    // One restart, logged with the segment, the upload id and the error.
    let j = journals(&state).remove(&name).unwrap();
    assert_eq!(j.restarts, 1, "{j:#?}");
    assert_eq!(j.server_error_rounds, 0, "{j:#?}");
    assert_ne!(j.upload_id.as_deref(), Some(poisoned.as_str()), "the object must come from a new upload");
    let warn = log
        .lines()
        .find(|l| l.contains("the server keeps failing this multipart upload with server errors"))
        .unwrap_or_else(|| panic!("no restart warning in the log:\n{log}"));
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains(&name) && warn.contains(&poisoned) && warn.contains("InternalError"), "{warn}");
    assert_eq!(log.matches("the server keeps failing this multipart upload").count(), 1, "log:\n{log}");
    assert!(log.matches("giving up for now: the server answers with errors").count() >= 2, "log:\n{log}");
    // The engine says what stopped the segment: the server answered, it was not unreachable.
    assert!(log.contains("the server answers with errors: segments wait for the next probe"), "log:\n{log}");

    // The poisoned upload was aborted (the proxy lets aborts through): nothing stays open.
    assert!(proxy.aborts_forwarded() >= 1, "the failing upload was not aborted");
    let open = server.uploads_in_progress(BUCKET);
    assert!(open.is_empty(), "multipart uploads left open: {open:?}");
    eprintln!(
        "server errors: {} InternalError answers, {} part sends",
        proxy.errors_sent(),
        j.parts.iter().map(|p| p.sends).sum::<u32>()
    );
}
