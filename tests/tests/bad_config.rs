//! Bad configuration: every stage binary refuses to start with a one-line error naming the
//! file, the key and the line, and exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use fleetrec_tests::bin;

fn run_with(config_text: &str, stage: &str) -> (i32, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config_text).unwrap();
    let out = Command::new(bin(stage)).arg("--config").arg(&path).arg("status").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), path, dir)
}

fn assert_one_line_error(config_text: &str, line: usize, key: &str, what: &str) {
    for stage in ["ingest", "writer"] {
        let (code, stderr, path, _dir) = run_with(config_text, stage);
        assert_eq!(code, 2, "{stage}: exit code for {key}; stderr: {stderr}");
        let text = stderr.trim_end();
        assert_eq!(text.lines().count(), 1, "{stage}: one line expected: {text}");
        let expected = format!("error: {}:{line}: key `{key}`: ", path.display());
        assert!(text.starts_with(&expected), "{stage}: `{text}` does not start with `{expected}`");
        assert!(text.contains(what), "{stage}: `{text}` does not say `{what}`");
    }
}

#[test]
fn unknown_key() {
    assert_one_line_error(
        "[storage]\npath = \"/tmp/x\"\nsegment_sise = 5\n",
        3,
        "storage.segment_sise",
        "unknown field",
    );
}

#[test]
fn unknown_section() {
    assert_one_line_error("[pipeline]\nname = \"x\"\n\n[storrage]\npath = \"a\"\n", 4, "storrage", "unknown field");
}

#[test]
fn wrong_type() {
    assert_one_line_error("[sync]\nmax_retries = \"many\"\n", 2, "sync.max_retries", "invalid type");
}

#[test]
fn zero_segment_size() {
    assert_one_line_error("[storage]\nwal_segment_size = 0\n", 2, "storage.wal_segment_size", "must be > 0");
}

#[test]
fn chunk_below_s3_minimum() {
    assert_one_line_error("# comment\n[sync]\nbucket = \"b\"\nchunk_size = 4194304\n", 4, "sync.chunk_size", "5 MiB");
}

#[test]
fn bad_pipeline_name() {
    assert_one_line_error("[pipeline]\nname = \"a/b\"\n", 2, "pipeline.name", "must be");
}

#[test]
fn missing_file_is_named() {
    let out = Command::new(bin("ingest")).args(["--config", "/nonexistent/fleetrec.toml", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: /nonexistent/fleetrec.toml: cannot read"), "{err}");
}
