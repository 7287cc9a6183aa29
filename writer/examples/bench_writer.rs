//! Writer benchmark, everything in ONE run on the same disk (`DIR`):
//! - `dd if=/dev/zero bs=1M oflag=direct` (the disk's direct-write limit), and the same with
//!   `conv=fdatasync` (the same bytes made durable once, at the end),
//! - a plain `std::fs::File` writer (the same framed bytes, write + `sync_data` with the same
//!   commit policy: every `commit_interval` or `commit_bytes`),
//! - the fleetrec `SegmentWriter` (io_uring, group commit, default `[storage]` settings),
//! - a durable reference: the same number of bytes as `dd`, as plain buffered 1 MiB writes of
//!   one buffer into one file, each followed by `sync_file_range(SYNC_FILE_RANGE_WRITE)`, with
//!   an `fdatasync` every `commit_bytes` (like `fio --rw=write --bs=1M
//!   --sync_file_range=write:1 --fdatasync=8`): the fastest durable pattern seen on the test
//!   VM, with no records, no checksums and no segments. `reference/dd` is how close any writer that syncs as often
//!   as ours can come to `dd` on this disk; `writer/reference` is what the writer's own work
//!   (framing, CRC32, SHA-256, 16 MiB segments and their seals) costs on top,
//!
//! for 64 B, 4 KiB, 64 KiB and 1 MiB records, as MB/s and ratios (each contender starts on a
//! settled file system: see `settle`; 6 rounds by default, in orders that put each of the
//! writer, `std` and the reference right after a `dd` in two of them); then the durable latency
//! (append -> covered by the durable watermark) p50/p99 at a paced 100 MB/s of 4 KiB messages.
//!
//! `cargo run --release -p writer --example bench_writer -- DIR [TOTAL_MIB]`
//! (`scripts/bench-writer.sh` runs it together with the end-to-end ingest -> writer run.)

// A benchmark program: printing its results and failing loudly are its job.
// Its only unsafe code is the reference's `sync_file_range` call.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, unsafe_code)]

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use shared::config::IoMode;
use shared::plane::MessageHeader;
use shared::segment::encode_message;
use shared::topic::TopicInfo;
use writer::{SegmentWriter, WriterOptions};

mod common;
use common::{dd, dd_durable, settle};

const SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];

fn topic() -> TopicInfo {
    TopicInfo {
        topic_id: 1,
        robot_id: 0,
        robot: "bench".into(),
        name: "/bench/data".into(),
        type_name: "std_msgs/msg/UInt8MultiArray".into(),
        type_hash: String::new(),
        encoding: "ros2msg".into(),
        definition: String::new(),
        qos: String::new(),
    }
}

fn header(seq: u64) -> MessageHeader {
    MessageHeader { topic_id: 1, sequence: seq, receive_time_ns: seq, ingest_session: 1, ..Default::default() }
}

/// MB/s of payload through a plain File with the writer's commit policy: the same framed
/// records, written in 256 KiB chunks, `sync_data` once `commit_bytes` are unsynced or
/// `commit_interval` passed.
fn std_file(dir: &Path, size: usize, total: u64) -> f64 {
    settle(dir);
    let opts = options(dir);
    let (interval, commit_bytes) = (opts.commit_interval, opts.commit_bytes as usize);
    let path = dir.join(format!("std-{size}.bin"));
    let mut f = std::fs::File::create(&path).unwrap();
    let payload = vec![0x5au8; size];
    let n = (total / size as u64).max(1);
    let mut buf = Vec::with_capacity(8 << 20);
    let start = Instant::now();
    let mut unsynced = 0usize;
    let mut last_sync = Instant::now();
    for seq in 1..=n {
        encode_message(&mut buf, &header(seq), &payload);
        if buf.len() >= 256 * 1024 {
            f.write_all(&buf).unwrap();
            unsynced += buf.len();
            buf.clear();
        }
        if unsynced >= commit_bytes || (unsynced > 0 && last_sync.elapsed() >= interval) {
            f.sync_data().unwrap();
            unsynced = 0;
            last_sync = Instant::now();
        }
    }
    f.write_all(&buf).unwrap();
    f.sync_data().unwrap();
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).ok();
    (n * size as u64) as f64 / 1e6 / secs
}

/// MB/s of `total_mib` MiB written as buffered 1 MiB writes of one buffer into one new file,
/// each followed by a write-out hint, with `sync_data` every `commit_bytes` and at the end
/// (the durable reference; see the module docs).
fn durable_reference(dir: &Path, total_mib: u64) -> f64 {
    settle(dir);
    let commit_bytes = options(dir).commit_bytes.max(1 << 20);
    let path = dir.join("reference.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut unsynced = 0u64;
    for i in 0..total_mib {
        f.write_all(&block).unwrap();
        // SAFETY: a plain system call on a descriptor `f` keeps open; no memory is passed.
        let hinted = unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                (i << 20) as libc::off64_t,
                1 << 20,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        assert_eq!(hinted, 0, "sync_file_range: {}", std::io::Error::last_os_error());
        unsynced += block.len() as u64;
        if unsynced >= commit_bytes {
            f.sync_data().unwrap();
            unsynced = 0;
        }
    }
    f.sync_data().unwrap();
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).ok();
    (total_mib * 1024 * 1024) as f64 / 1e6 / secs
}

/// The writer's options: the defaults, varied by `BENCH_*` environment variables.
fn options(dir: &Path) -> WriterOptions {
    let mut o = WriterOptions::new(dir);
    if let Some(ms) = std::env::var("BENCH_COMMIT_MS").ok().and_then(|s| s.parse().ok()) {
        o.commit_interval = Duration::from_millis(ms);
    }
    if let Some(n) = std::env::var("BENCH_IN_FLIGHT").ok().and_then(|s| s.parse().ok()) {
        o.max_in_flight = n;
    }
    if let Some(b) = std::env::var("BENCH_COMMIT_BYTES").ok().and_then(|s| s.parse().ok()) {
        o.commit_bytes = b;
    }
    if let Some(m) = std::env::var("BENCH_SEGMENT_MIB").ok().and_then(|s| s.parse::<u64>().ok()) {
        o.segment_size = m << 20;
    }
    // BENCH_IO_MODE=auto|direct|buffered (default: the writer's default, auto); BENCH_DIRECT=0
    // is buffered, as before.
    match std::env::var("BENCH_IO_MODE").as_deref() {
        Ok("direct") => o.io_mode = IoMode::Direct,
        Ok("buffered") => o.io_mode = IoMode::Buffered,
        Ok("auto") => o.io_mode = IoMode::Auto,
        _ => {}
    }
    if std::env::var("BENCH_DIRECT").is_ok_and(|v| v == "0") {
        o.io_mode = IoMode::Buffered;
    }
    o
}

/// MB/s and msg/s of payload through the SegmentWriter, until everything is durable and sealed.
fn segment_writer(dir: &Path, size: usize, total: u64) -> (f64, f64) {
    settle(dir);
    let d = dir.join(format!("wal-{size}"));
    let (mut w, _) = SegmentWriter::open(options(&d)).unwrap();
    w.define_topic(topic()).unwrap();
    let payload = vec![0x5au8; size];
    let n = (total / size as u64).max(1);
    let start = Instant::now();
    for seq in 1..=n {
        w.append(&header(seq), &payload).unwrap();
        if seq % 256 == 0 {
            w.poll().unwrap();
        }
    }
    // Everything durable (the watermark covers the last message). Sealed segments' manifests
    // (SHA-256 of each file) are written by a background thread meanwhile; `close` waits for
    // the last ones, and that tail is reported separately.
    w.sync().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let (commits, dir_syncs) = (w.stats().commits, w.stats().commit_dir_syncs);
    w.close().unwrap();
    let close_secs = start.elapsed().as_secs_f64() - secs;
    if std::env::var("BENCH_VERBOSE").is_ok() {
        println!(
            "  {size} B: durable after {secs:.3} s, last manifests {close_secs:.3} s later; {commits} commits, {dir_syncs} with a directory fsync"
        );
    }
    std::fs::remove_dir_all(&d).ok();
    ((n * size as u64) as f64 / 1e6 / secs, n as f64 / secs)
}

/// Durable latency at a paced rate: time from `append` until the watermark covers the message.
fn latency(dir: &Path, size: usize, mb_per_s: f64, seconds: f64) -> Latency {
    // Like every contender, on a settled file system; and then a pause (BENCH_LATENCY_PAUSE_S,
    // default 10 s): the throughput cases before it write gigabytes as fast as the disk takes
    // them, and on this project's VM the host writes its cache of them back for seconds after
    // the guest's `sync` returned (right after them p99 was 61-68 ms, after a pause 7.3 ms).
    // The host's own load still moves p99 between runs (docs/BENCHMARKS.md, fifth session).
    settle(dir);
    let pause = std::env::var("BENCH_LATENCY_PAUSE_S").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    std::thread::sleep(Duration::from_secs(pause));
    let d = dir.join("latency");
    let (mut w, _) = SegmentWriter::open(WriterOptions { dir: d.clone(), ..options(&d) }).unwrap();
    w.define_topic(topic()).unwrap();
    let payload = vec![0x5au8; size];
    let rate = mb_per_s * 1e6 / size as f64;
    let total = (rate * seconds) as u64;
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut lat = Vec::with_capacity(total as usize);
    // BENCH_LATENCY_TRACE=FILE: every message's append time (ms since the start) and latency.
    let trace = std::env::var_os("BENCH_LATENCY_TRACE");
    let mut at = Vec::new();
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < total || !pending.is_empty() {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
        while seq < due {
            seq += 1;
            w.append(&header(seq), &payload).unwrap();
            pending.push_back((seq, Instant::now()));
        }
        let next_due = start + Duration::from_secs_f64((seq + 1) as f64 / rate);
        let timeout = next_due.saturating_duration_since(Instant::now()).min(Duration::from_millis(1));
        w.wait(timeout, None).unwrap();
        let durable = w.watermark().topic(1).map_or(0, |t| t.durable_sequence);
        let now = Instant::now();
        while pending.front().is_some_and(|(s, _)| *s <= durable) {
            let (_, t) = pending.pop_front().unwrap();
            lat.push(now.duration_since(t).as_secs_f64() * 1e3);
            if trace.is_some() {
                at.push(t.duration_since(start).as_secs_f64() * 1e3);
            }
        }
        if seq >= total && !pending.is_empty() && start.elapsed().as_secs_f64() > seconds + 10.0 {
            panic!("messages never became durable");
        }
    }
    let achieved = (total * size as u64) as f64 / 1e6 / start.elapsed().as_secs_f64();
    w.close().unwrap();
    std::fs::remove_dir_all(&d).ok();
    if let Some(path) = trace {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for (t, l) in at.iter().zip(&lat) {
            writeln!(out, "{t:.3} {l:.3}").unwrap();
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Latency { p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max: pct(1.0), achieved, n: total }
}

/// Durable latencies in ms, the rate achieved in MB/s and the number of messages.
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    achieved: f64,
    n: u64,
}

fn main() {
    // RUST_LOG=info shows the writer's own log (the I/O mode it settles on, ...).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map_or("target/bench-writer", String::as_str)).to_path_buf();
    let total_mib: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    std::fs::create_dir_all(&dir).unwrap();
    let total = total_mib * 1024 * 1024;
    println!("writer benchmark: {total_mib} MiB per case in {}", dir.display());
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6).max(1);
    let o = options(&dir);
    println!(
        "writer: io_mode {:?}, commit every {} ms or {} bytes, {} batches in flight; {rounds} rounds per size \
         (dd and dd + fdatasync first, in turns; then writer, std, reference, rotated), medians; \
         reference = buffered 1 MiB writes, each with sync_file_range(WRITE), + fdatasync every {} bytes, one file",
        o.io_mode,
        o.commit_interval.as_millis(),
        o.commit_bytes,
        o.max_in_flight,
        o.commit_bytes.max(1 << 20)
    );
    println!();
    println!(
        "| record | SegmentWriter MB/s | msg/s | std File+sync_data MB/s | dd direct MB/s | dd direct + fdatasync MB/s | reference MB/s | writer/dd | writer/(dd + fdatasync) | writer/std | writer/reference | reference/dd |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    // BENCH_SIZES= (empty): no throughput cases, only the latency one.
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    // With an even number of rounds, the mean of the middle two.
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n.is_multiple_of(2) {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        } else {
            v[n / 2]
        }
    };
    // BENCH_WRITER_ONLY=1: no baselines (for profiling the writer alone), no goal lines, no
    // latency run.
    let only = std::env::var("BENCH_WRITER_ONLY").is_ok();
    // Per record size >= 4 KiB: the medians of writer/dd and reference/dd (for the goal line).
    let mut goal_rows: Vec<(usize, f64, f64)> = Vec::new();
    for size in sizes {
        // Small records: fewer MiB keep the run short; the rate is what matters.
        let t = if size < 4096 { total / 4 } else { total };
        let (mut dds, mut ws, mut msgs, mut ss, mut r_dd, mut r_std) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut dsyncs, mut r_dsync) = (Vec::new(), Vec::new());
        let (mut refs, mut r_ref, mut r_ref_dd) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (mut d, mut ds, mut w, mut s_mbs, mut r) =
                (f64::NAN, f64::NAN, (f64::NAN, f64::NAN), f64::NAN, f64::NAN);
            // On the test VM a run right after a `dd` (and the deletion of its file) is 5-10%
            // slower than one after a writer (docs/BENCHMARKS.md, ninth session). So the two
            // `dd`s run first, in turns, and the writer, `std` and the reference follow in an
            // order rotated every round: over 6 rounds each of them runs right after a `dd`
            // twice, and each `dd` after the other three times.
            let dds_first: [u8; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut rest: [u8; 3] = [2, 3, 4];
            rest.rotate_left(round % 3);
            for c in dds_first.into_iter().chain(rest) {
                match c {
                    0 if !only => d = dd(&dir, total_mib),
                    1 if !only => ds = dd_durable(&dir, total_mib),
                    2 => w = segment_writer(&dir, size, t),
                    3 if !only => s_mbs = std_file(&dir, size, t),
                    4 if !only => r = durable_reference(&dir, total_mib),
                    _ => {}
                }
            }
            let (w_mbs, w_msgs) = w;
            r_dd.push(w_mbs / d);
            r_dsync.push(w_mbs / ds);
            dsyncs.push(ds);
            r_std.push(w_mbs / s_mbs);
            r_ref.push(w_mbs / r);
            r_ref_dd.push(r / d);
            refs.push(r);
            dds.push(d);
            ws.push(w_mbs);
            msgs.push(w_msgs);
            ss.push(s_mbs);
        }
        let (w_dd, ref_dd) = (median(r_dd), median(r_ref_dd));
        if size >= 4096 {
            goal_rows.push((size, w_dd, ref_dd));
        }
        println!(
            "| {size} B | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            median(ws),
            median(msgs),
            median(ss),
            median(dds),
            median(dsyncs),
            median(refs),
            w_dd,
            median(r_dsync),
            median(r_std),
            median(r_ref),
            ref_dd
        );
    }
    if !goal_rows.is_empty() && !only {
        let met = goal_rows.iter().all(|(_, r, _)| *r >= 0.90);
        let list = |f: fn(&(usize, f64, f64)) -> f64| {
            goal_rows.iter().map(|row| format!("{:.2} at {} B", f(row), row.0)).collect::<Vec<_>>().join(", ")
        };
        println!();
        println!("goal writer/dd >= 0.90 for records >= 4 KiB: {} ({})", verdict(met), list(|r| r.1));
        // Where even the durable reference stays below 0.90 of `dd`, the disk of this run
        // favoured `dd` (which syncs nothing) over any writer that syncs as often as ours.
        println!("  (reference/dd on this disk in this run: {})", list(|r| r.2));
    }
    if only {
        return;
    }
    println!();
    let Latency { p50, p99, p999, max, achieved, n } = latency(&dir, 4096, 100.0, 5.0);
    let interval = options(&dir).commit_interval.as_secs_f64() * 1e3;
    println!(
        "durable latency at {achieved:.0} MB/s (4 KiB messages, {n} messages, commit_interval {interval} ms): p50 {p50:.2} ms, p99 {p99:.2} ms (p99.9 {p999:.2} ms, max {max:.2} ms)"
    );
    println!("goal p99 durable latency <= 10 ms at 100 MB/s: {} ({p99:.2} ms)", verdict(p99 <= 10.0));
}

/// A goal line's verdict.
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
