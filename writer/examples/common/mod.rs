//! What the writer's benchmark programs share: a settled start and the `dd` baseline.

use std::path::Path;
use std::time::{Duration, Instant};

/// Lets the file system finish the previous contender's cleanup before the next one is timed:
/// `sync -f` commits the journal, and the pause lets the discards of the deleted files run
/// (on a file system mounted with `discard` they are issued after a journal commit; without
/// this, each contender would pay for the one before it, and `dd`, which commits nothing,
/// would pay for nobody).
///
/// The pause is `BENCH_SETTLE_S` seconds (default 1).
pub fn settle(dir: &Path) {
    let _ = std::process::Command::new("sync").arg("-f").arg(dir).status();
    let pause = std::env::var("BENCH_SETTLE_S").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    std::thread::sleep(Duration::from_secs_f64(pause));
}

/// MB/s of `dd if=/dev/zero of=DIR/dd.bin bs=1M count=TOTAL_MIB oflag=direct`, on a settled
/// file system.
pub fn dd(dir: &Path, total_mib: u64) -> f64 {
    dd_with(dir, total_mib, &[])
}

/// MB/s of the same `dd` with `conv=fdatasync`: the bytes are on stable storage when it ends
/// (plain `dd oflag=direct` never flushes the device's write cache; on a virtual disk whose
/// host caches writes, that measures the host's cache).
#[allow(dead_code)] // one of the two benchmark programs uses it
pub fn dd_durable(dir: &Path, total_mib: u64) -> f64 {
    dd_with(dir, total_mib, &["conv=fdatasync"])
}

fn dd_with(dir: &Path, total_mib: u64, extra: &[&str]) -> f64 {
    settle(dir);
    let out = dir.join("dd.bin");
    let start = Instant::now();
    let status = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", out.display()))
        .args(["bs=1M", &format!("count={total_mib}"), "oflag=direct", "status=none"])
        .args(extra)
        .status()
        .expect("run dd");
    assert!(status.success());
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&out).ok();
    (total_mib * 1024 * 1024) as f64 / 1e6 / secs
}
