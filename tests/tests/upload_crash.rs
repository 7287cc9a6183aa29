//! The uploader SIGKILLed at random points, again and again (N from `FLEETREC_UPLOAD_KILLS`,
//! default 10): after the last restart every object equals its local file, and the journals
//! show that at most the parts in flight at each kill were sent again (sends are counted in the
//! journal before a part goes out, so a kill can never hide one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fleetrec_tests::s3::{journals, sha256, sync_section, wait_uploaded, S3Server, UploaderProcess};
use fleetrec_tests::TestEnv;
use uploader::fixtures::{write_sealed, FixtureSegment};

const BUCKET: &str = "crash";
const CONCURRENCY: u32 = 2;

fn kills() -> usize {
    std::env::var("FLEETREC_UPLOAD_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

fn acknowledged(state_dir: &std::path::Path) -> usize {
    journals(state_dir).values().map(|j| if j.is_done() { j.parts.len() } else { j.parts_done() }).sum()
}

#[test]
fn sigkill_at_random_points_resends_at_most_the_parts_in_flight() {
    let n = kills();
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    // 8 MiB/s: a 5 MiB part takes ~0.6 s, so kills land before, inside and after parts.
    let env = TestEnv::new(
        "crash",
        &sync_section(&server.endpoint(), BUCKET, &format!("concurrency = {CONCURRENCY}\nbandwidth_limit = 8388608")),
    );
    let rec = env.dir.path().join("recordings");
    let state = rec.join(".upload");
    // Enough parts that the uploads outlast the kills (every other run uploads one part or a
    // few): 3 parts per segment.
    let segs: Vec<(FixtureSegment, Vec<u8>)> = (1..=(n as u64 / 2 + 3))
        .map(|i| {
            let spec = FixtureSegment::new(i, "robot1", 14 * 1024 * 1024 + 512 * 1024);
            write_sealed(&rec, &spec).unwrap();
            let bytes = std::fs::read(rec.join(spec.file_name())).unwrap();
            (spec, bytes)
        })
        .collect();
    let names: Vec<String> = segs.iter().map(|(s, _)| s.file_name()).collect();
    let total_parts = acknowledged_total(&segs);

    let mut delays = Vec::new();
    for i in 0..n {
        let before = acknowledged(&state);
        assert!(before < total_parts, "everything was uploaded after {i} kills: make the test data larger");
        let mut up = UploaderProcess::start(&env.config, env.dir.path());
        if i % 2 == 1 {
            // Every other run makes progress first, so the upload moves on whatever the timing.
            let deadline = Instant::now() + Duration::from_secs(120);
            while acknowledged(&state) == before {
                assert!(Instant::now() < deadline, "no progress; log:\n{}", up.log_text());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let delay = Duration::from_millis((uploader::backoff::random_unit() * 700.0) as u64);
        std::thread::sleep(delay);
        up.kill();
        delays.push(delay.as_millis());
        // moto keeps every acknowledged part: the ListParts check on resume must find them all.
        let log = up.log_text();
        assert!(!log.contains("the server lacks parts"), "log:\n{log}");
    }
    let resent_before_final = resent(&state);
    // The last run goes at full speed.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace("bandwidth_limit = 8388608", "bandwidth_limit = 0")).unwrap();
    let mut up = UploaderProcess::start(&env.config, env.dir.path());
    wait_uploaded(&state, &names, Duration::from_secs(600), &|| up.log_text());
    let code = up.terminate(Duration::from_secs(20)).and_then(|s| s.code());
    assert_eq!(code, Some(0), "log:\n{}", up.log_text());

    for (spec, bytes) in &segs {
        let key = format!("fleet/robot1/{}/{}", "5e".repeat(16), spec.file_name());
        let object = server.get_object(BUCKET, &key).unwrap_or_else(|| panic!("object {key} missing"));
        assert_eq!(sha256(&object), sha256(bytes), "{key}: SHA-256 differs from the local file");
    }
    let j = journals(&state);
    for jr in j.values() {
        assert_eq!(jr.restarts, 0, "moto kept every upload: none may restart: {jr:#?}");
        for p in &jr.parts {
            assert!(p.sends > p.retries, "{} part {} never sent", jr.segment, p.number);
        }
    }
    let resent_total = resent(&state);
    eprintln!(
        "{n} kills after {delays:?} ms; {total_parts} parts; sent again: {resent_before_final} during the kills, \
         {resent_total} in total"
    );
    assert!(
        resent_total <= n as u64 * u64::from(CONCURRENCY),
        "{resent_total} parts were sent again after {n} kills with {CONCURRENCY} parts in flight at most: {j:#?}"
    );
}

fn acknowledged_total(segs: &[(FixtureSegment, Vec<u8>)]) -> usize {
    segs.iter().map(|(_, b)| b.len().div_ceil(5 * 1024 * 1024)).sum()
}

/// Parts sent more often than once plus their retries: sends after a crash.
fn resent(state_dir: &std::path::Path) -> u64 {
    journals(state_dir)
        .values()
        .flat_map(|j| &j.parts)
        .map(|p| u64::from(p.sends.saturating_sub(p.retries).saturating_sub(1)))
        .sum()
}
