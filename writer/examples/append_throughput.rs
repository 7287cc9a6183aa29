//! Raw append throughput of the writer library (no IPC): appends `TOTAL_MIB` of messages with
//! `RECORD_BYTES` payloads to a fresh recording under `DIR`, with the default `[storage]`
//! settings, and reports MB/s and messages/s until everything is durable and sealed.
//!
//! `cargo run --release -p writer --example append_throughput -- DIR RECORD_BYTES TOTAL_MIB [keep]`
//! (`keep` leaves the recording in `DIR/bench-<pid>-<size>` instead of removing it)

// An example program: printing its result and failing loudly are its job.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use shared::plane::MessageHeader;
use shared::topic::TopicInfo;
use writer::{SegmentWriter, WriterOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, size, total, keep) = match &args[..] {
        [_, d, s, t] => (d, s, t, false),
        [_, d, s, t, k] if k == "keep" => (d, s, t, true),
        _ => {
            eprintln!("usage: append_throughput DIR RECORD_BYTES TOTAL_MIB [keep]");
            std::process::exit(2);
        }
    };
    let size: usize = size.parse().expect("RECORD_BYTES");
    let total: u64 = total.parse::<u64>().expect("TOTAL_MIB") * 1024 * 1024;
    let dir = std::path::Path::new(dir).join(format!("bench-{}-{size}", std::process::id()));
    let (mut w, _) = SegmentWriter::open(WriterOptions::new(&dir)).expect("open");
    w.define_topic(TopicInfo {
        topic_id: 1,
        robot_id: 0,
        robot: "bench".into(),
        name: "/bench/data".into(),
        type_name: "std_msgs/msg/UInt8MultiArray".into(),
        type_hash: String::new(),
        encoding: "ros2msg".into(),
        definition: String::new(),
        qos: String::new(),
    })
    .expect("define");
    let payload = vec![0x5au8; size];
    let n = (total / size as u64).max(1);
    let start = Instant::now();
    for seq in 1..=n {
        let h =
            MessageHeader { topic_id: 1, sequence: seq, receive_time_ns: seq, ingest_session: 1, ..Default::default() };
        w.append(&h, &payload).expect("append");
        if seq % 1024 == 0 {
            w.poll().expect("poll");
        }
    }
    let durable = w.watermark().topic(1).map_or(0, |t| t.durable_sequence);
    let stats = w.stats().clone();
    w.close().expect("close");
    let secs = start.elapsed().as_secs_f64();
    let bytes = n * size as u64;
    println!(
        "record {size} B: {n} messages, {:.1} MB payload in {secs:.3} s: {:.1} MB/s, {:.0} msg/s \
         (durable before close: seq {durable}; commits {})",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        n as f64 / secs,
        stats.commits,
    );
    if keep {
        println!("recording kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
