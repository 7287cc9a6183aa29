//! The writer's direct-I/O pattern without the writer, next to `dd`: how much of the
//! writer's gap to `dd` is the pattern itself (commits of parallel 1 MiB `O_DIRECT` writes,
//! each followed by its `fdatasync` once they completed, several commits in flight, rotating
//! preallocated segments), and how much is the work around it (copying records in, hashing).
//!
//! `cargo run --release -p writer --example bench_io_pattern -- DIR [ROUNDS]`
//!
//! Each round runs, on a settled file system (`sync -f`, then a pause, like `bench_writer`),
//! 1 GiB of: `dd if=/dev/zero bs=1M oflag=direct`; the pattern alone; the pattern with each
//! commit's 8 MiB copied into its buffer first; and with that copy plus SHA-256 of every
//! durable buffer on two threads (as the writer's hashing threads do). Prints each round and
//! the medians. `IN_FLIGHT` (3), `COMMIT_MIB` (8) and `SEGMENT_MIB` (16) vary the pattern.

// A benchmark program: printing its results and failing loudly are its job. Its only unsafe
// code hands buffers to io_uring, as `writer/src/uring.rs` does.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use io_uring::{opcode, types, IoUring};
use sha2::Digest;

mod common;
use common::{dd, settle};

const WRITE: usize = 1 << 20;
const TOTAL: usize = 1 << 30;
const STEP_SYNC: u64 = 0xff;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; 4096]);

fn env(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

struct Commit {
    file: std::sync::Arc<File>,
    buf: Vec<Block>,
    writes_left: usize,
}

/// MB/s of 1 GiB written with the writer's pattern; `copy`: each commit's bytes are copied
/// into its buffer first; `hash`: durable buffers are SHA-256 hashed on two threads.
fn pattern(dir: &Path, copy: bool, hash: bool) -> f64 {
    settle(dir);
    let commit = env("COMMIT_MIB", 8) << 20;
    let in_flight = env("IN_FLIGHT", 3);
    let segment = env("SEGMENT_MIB", 16) << 20;
    let source = vec![0x5au8; commit];
    let mut pool: Vec<Vec<Block>> = (0..in_flight + 8).map(|_| vec![Block([0x5a; 4096]); commit / 4096]).collect();
    // Hashing threads: buffers in, buffers back.
    let (back_tx, back) = mpsc::channel::<Vec<Block>>();
    let mut to_hash = Vec::new();
    let mut hashers = Vec::new();
    if hash {
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel::<Vec<Block>>();
            let back_tx = back_tx.clone();
            to_hash.push(tx);
            hashers.push(std::thread::spawn(move || {
                let mut h = sha2::Sha256::new();
                for buf in rx {
                    for b in &buf {
                        h.update(b.0);
                    }
                    let _ = back_tx.send(buf);
                }
                h.finalize()
            }));
        }
    }
    let mut ring = IoUring::new(256).unwrap();
    let mut commits: HashMap<u64, Commit> = HashMap::new();
    let mut files = Vec::new();
    let mut file: Option<std::sync::Arc<File>> = None;
    let (mut offset, mut submitted, mut durable, mut id) = (segment, 0usize, 0usize, 0u64);
    let start = Instant::now();
    while durable < TOTAL {
        while submitted < TOTAL && commits.len() < in_flight {
            if offset >= segment || file.is_none() {
                let path = dir.join(format!("pattern-{}.bin", files.len()));
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(&path)
                    .unwrap();
                nix::fcntl::fallocate(&f, nix::fcntl::FallocateFlags::empty(), 0, segment as i64).unwrap();
                files.push(path);
                file = Some(std::sync::Arc::new(f));
                offset = 0;
            }
            let mut buf = match pool.pop() {
                Some(b) => b,
                None => back.recv().unwrap(),
            };
            if copy {
                for (b, c) in buf.iter_mut().zip(source.chunks(4096)) {
                    b.0.copy_from_slice(c);
                }
            }
            let f = file.clone().unwrap();
            let n = commit / WRITE;
            {
                let mut sq = ring.submission();
                for i in 0..n {
                    let ptr = buf.as_ptr().cast::<u8>().wrapping_add(i * WRITE);
                    let e = opcode::Write::new(types::Fd(f.as_raw_fd()), ptr, WRITE as u32)
                        .offset((offset + i * WRITE) as u64)
                        .build()
                        .user_data((id << 8) | i as u64);
                    // SAFETY: `ptr..ptr + WRITE` lies in `buf`, a heap allocation that moves
                    // into `commits` below and stays there, untouched, until every write and
                    // the sync of this commit completed; the descriptor is kept open by `f`.
                    unsafe { sq.push(&e).unwrap() };
                }
            }
            ring.submit().unwrap();
            commits.insert(id, Commit { file: f, buf, writes_left: n });
            id += 1;
            offset += commit;
            submitted += commit;
        }
        ring.submit_and_wait(1).unwrap();
        let done: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (ud, res) in done {
            assert!(res >= 0, "I/O failed: {}", std::io::Error::from_raw_os_error(-res));
            let (cid, step) = (ud >> 8, ud & 0xff);
            if step == STEP_SYNC {
                let c = commits.remove(&cid).unwrap();
                durable += commit;
                match to_hash.get((cid / (segment / commit).max(1) as u64) as usize % to_hash.len().max(1)) {
                    Some(tx) => tx.send(c.buf).unwrap(),
                    None => pool.push(c.buf),
                }
                continue;
            }
            let c = commits.get_mut(&cid).unwrap();
            c.writes_left -= 1;
            if c.writes_left == 0 {
                let e = opcode::Fsync::new(types::Fd(c.file.as_raw_fd()))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data((cid << 8) | STEP_SYNC);
                // SAFETY: a sync references no memory; its descriptor is kept open by the
                // commit, which stays in `commits` until this sync completed.
                unsafe { ring.submission().push(&e).unwrap() };
                ring.submit().unwrap();
            }
        }
        pool.extend(back.try_iter());
    }
    let mbs = TOTAL as f64 / 1e6 / start.elapsed().as_secs_f64();
    drop(to_hash);
    for h in hashers {
        h.join().unwrap();
    }
    for p in files {
        std::fs::remove_file(p).ok();
    }
    mbs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map_or("target/bench-writer", String::as_str)).to_path_buf();
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "1 GiB per case; commits of {} MiB as 1 MiB O_DIRECT writes + fdatasync, {} in flight, {} MiB segments",
        env("COMMIT_MIB", 8),
        env("IN_FLIGHT", 3),
        env("SEGMENT_MIB", 16)
    );
    println!("| round | dd MB/s | pattern | + copy | + copy + SHA-256 |");
    println!("|---|---|---|---|---|");
    let mut cols: [Vec<f64>; 4] = Default::default();
    for r in 1..=rounds {
        let v = [
            dd(&dir, (TOTAL >> 20) as u64),
            pattern(&dir, false, false),
            pattern(&dir, true, false),
            pattern(&dir, true, true),
        ];
        println!("| {r} | {:.0} | {:.0} | {:.0} | {:.0} |", v[0], v[1], v[2], v[3]);
        for (c, x) in cols.iter_mut().zip(v) {
            c.push(x);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let m: Vec<f64> = cols.iter_mut().map(median).collect();
    println!(
        "| median | {:.0} | {:.0} ({:.2} of dd) | {:.0} ({:.2}) | {:.0} ({:.2}) |",
        m[0],
        m[1],
        m[1] / m[0],
        m[2],
        m[2] / m[0],
        m[3],
        m[3] / m[0]
    );
}
