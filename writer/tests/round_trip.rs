//! Round trip through the real io_uring writer: every message comes back byte-identical,
//! across many rotations, and every segment decodes alone (its own topic definitions, a
//! footer that matches its records, a manifest that matches its bytes).
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use shared::config::IoMode;
use shared::segment::consts::{FRAME_HEADER_LEN, HEADER_LEN, MESSAGE_FIXED_LEN};
use writer::directory::{list_segments, parse_segment_file_name};
use writer::WriterState;

#[test]
fn messages_round_trip_byte_identical_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_opts(dir.path());
    let segment_size = opts.segment_size;
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=400);
    w.sync().unwrap();
    for t in &ts {
        let p = w.watermark().topic(t.topic_id).unwrap();
        assert_eq!((p.last_sequence, p.durable_sequence), (400, 400));
        assert_eq!(p.messages, 400);
        assert_eq!(p.ingest_session, SESSION);
    }
    assert_eq!(w.stats().messages, 1200);
    assert_eq!(w.state(), WriterState::Running);
    let sealed = w.close().unwrap();

    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() >= 10, "expected many rotations, got {}", segs.len());
    assert_eq!(sealed.len(), segs.len(), "every segment announced as sealed");
    // Sequence numbers in names are contiguous from 1 and match the headers.
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.seq, i as u64 + 1);
        assert_eq!(parse_segment_file_name(&s.path.file_name().unwrap().to_string_lossy()), Some(s.seq));
    }

    let max_record = FRAME_HEADER_LEN + MESSAGE_FIXED_LEN + 900;
    for s in &segs {
        let bytes = std::fs::read(&s.path).unwrap();
        let c = writer::read_segment(&s.path).unwrap();
        assert_eq!(c.header.segment_seq, s.seq);
        assert!(c.report.sealed, "{} sealed", s.path.display());
        assert!(c.report.corrupt.is_empty());
        assert_eq!(c.report.tail, shared::segment::Tail::Clean);
        assert!(!c.checkpoints.is_empty(), "a checkpoint at each commit");
        // The footer is the last record and describes exactly this segment.
        let footer = c.footer.clone().expect("footer");
        assert_eq!(footer.messages, c.messages.len() as u64);
        assert_eq!(footer.segment_seq, s.seq);
        let mut per_topic: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        for m in &c.messages {
            let e = per_topic.entry(m.header.topic_id).or_insert((0, u64::MAX, 0));
            e.0 += 1;
            e.1 = e.1.min(m.header.sequence);
            e.2 = e.2.max(m.header.sequence);
        }
        assert_eq!(footer.topics.len(), per_topic.len());
        for ft in &footer.topics {
            let (n, first, last) = per_topic[&ft.topic_id];
            assert_eq!((ft.messages, ft.first_sequence, ft.last_sequence), (n, first, last));
            assert!(!ft.name.is_empty(), "footer names the topic");
        }
        // Size bound: rotation happens at the record that reaches the size.
        let data_end = c.messages.last().map_or(HEADER_LEN as u64, |m| m.offset);
        assert!(data_end < segment_size, "last message starts before the rotation size");
        assert!((bytes.len() as u64) < segment_size + max_record as u64 + 8 * 1024);
        // Independence: each topic's definition precedes its first message in this segment.
        let defs: HashMap<u32, &shared::topic::TopicInfo> = c.topics.iter().map(|t| (t.topic_id, t)).collect();
        for m in &c.messages {
            let def = defs.get(&m.header.topic_id).expect("definition in the same segment");
            assert_eq!(def.robot_id, m.header.robot_id);
        }
        let scan = shared::segment::scan(&bytes, shared::segment::ScanMode::StopAtFirstError).unwrap();
        let mut defined = std::collections::HashSet::new();
        for r in &scan.records {
            match shared::segment::Record::decode(r).unwrap() {
                shared::segment::Record::Topic(t) => {
                    defined.insert(t.topic_id);
                }
                shared::segment::Record::Message(m) => {
                    assert!(defined.contains(&m.header.topic_id), "definition before first message");
                    // Byte-identical record.
                    let framed = &bytes[r.offset as usize..r.offset as usize + r.framed_len()];
                    let want = payload(m.header.topic_id, m.header.sequence, len_for(m.header.sequence));
                    assert_eq!(framed, &encoded(&m.header, &want)[..]);
                }
                _ => {}
            }
        }
        assert_eq!(scan.records.last().unwrap().kind, shared::segment::consts::KIND_FOOTER);
        let m = checked_manifest(&s.path);
        assert_eq!(m.summary, footer);
    }
    assert_exact(&all_messages(dir.path()), &ts, 1..=400);
}

#[test]
fn restart_continues_numbering_and_split_repeats_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let ts = topics();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 1024 * 1024;
    let mut w = open(opts.clone());
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=10);
    w.split().unwrap();
    write_messages(&mut w, &ts, 11..=20);
    let first_session = w.session_id();
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 2, "split made exactly one boundary");

    let mut w = open(opts);
    assert_ne!(w.session_id(), first_session);
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 21..=30);
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    for c in read_all(dir.path()) {
        let mut ids: Vec<u32> = c.topics.iter().map(|t| t.topic_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![11, 12, 21], "every segment repeats every topic it uses");
        assert_eq!(c.messages.len(), 30);
    }
    assert_exact(&all_messages(dir.path()), &ts, 1..=30);
}

#[test]
fn rotation_by_age_and_late_topic_definition() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 1024 * 1024;
    opts.max_segment_age = Some(Duration::from_millis(1));
    let mut w = open(opts);
    let t = topic(5, 0, "robot1", "late");
    // A message before its topic is announced: written without a definition ...
    w.append(&header(&t, 1), &payload(5, 1, len_for(1))).unwrap();
    // ... and the definition follows as soon as it is known.
    w.define_topic(t.clone()).unwrap();
    w.append(&header(&t, 2), &payload(5, 2, len_for(2))).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    w.poll().unwrap();
    w.append(&header(&t, 3), &payload(5, 3, len_for(3))).unwrap();
    w.close().unwrap();
    let all = read_all(dir.path());
    assert_eq!(all.len(), 2, "rotated by age");
    assert_eq!(all[0].messages.len(), 2);
    assert_eq!(all[0].topics, vec![t.clone()]);
    assert_eq!(all[1].topics, vec![t.clone()]);
    assert_eq!(all[1].messages[0].header.sequence, 3);
    assert_exact(&all_messages(dir.path()), &[t], 1..=3);
}

#[test]
fn pause_drops_and_counts_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(small_opts(dir.path()));
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=5);
    w.pause();
    assert_eq!(w.state(), WriterState::Paused);
    for seq in 6..=8 {
        let r = w.append(&header(&ts[0], seq), b"x").unwrap();
        assert_eq!(r, writer::Appended::Dropped(writer::DropReason::Paused));
    }
    w.resume();
    write_messages(&mut w, &ts[1..], 6..=8);
    w.sync().unwrap();
    assert_eq!(w.watermark().topic(11).unwrap().dropped, 3);
    assert_eq!(w.watermark().topic(11).unwrap().durable_sequence, 5);
    assert_eq!(w.watermark().topic(12).unwrap().durable_sequence, 8);
    assert_eq!(w.stats().dropped, 3);
    w.close().unwrap();
    let got = all_messages(dir.path());
    assert_eq!(got.len(), 5 * 3 + 3 * 2);
}

/// Direct I/O (the default, on this test's ext4/tmpfs directory) ends every commit on a 4 KiB
/// boundary with a padded checkpoint, releases the preallocated space when sealing, and records
/// exactly what buffered mode records.
#[test]
fn direct_io_commits_end_on_block_boundaries_and_match_buffered_mode() {
    use std::os::unix::fs::MetadataExt;
    let mut per_mode = Vec::new();
    for direct in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = small_opts(dir.path());
        opts.io_mode = if direct { IoMode::Direct } else { IoMode::Buffered };
        opts.direct_min_commit = 0; // these commits are small: direct from the first segment
        let mut w = open(opts);
        let ts = topics();
        for t in &ts {
            w.define_topic(t.clone()).unwrap();
        }
        for chunk in [1..=50u64, 51..=120, 121..=300] {
            write_messages(&mut w, &ts, chunk);
            w.sync().unwrap();
        }
        let sealed = w.close().unwrap();
        let segs = list_segments(dir.path()).unwrap();
        assert!(segs.len() >= 3);
        // Consecutive segments are hashed on different threads; seals still come in order.
        let sealed_seqs: Vec<u64> = sealed.iter().map(|s| s.seq).collect();
        let seg_seqs: Vec<u64> = segs.iter().map(|s| s.seq).collect();
        assert_eq!(sealed_seqs, seg_seqs, "every segment sealed once, in order");
        // The SHA-256 hashed from the batch buffers (direct) or read back (buffered) is the
        // file's.
        for s in &sealed {
            use sha2::Digest;
            let bytes = std::fs::read(&s.path).unwrap();
            let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(s.sha256, sha, "{}", s.path.display());
            assert_eq!(s.size, bytes.len() as u64);
        }
        let mut checkpoints = 0;
        for s in &segs {
            let bytes = std::fs::read(&s.path).unwrap();
            let scan = shared::segment::scan(&bytes, shared::segment::ScanMode::StopAtFirstError).unwrap();
            assert!(scan.corrupt.is_empty());
            for r in scan.records.iter().filter(|r| r.kind == shared::segment::consts::KIND_CHECKPOINT) {
                checkpoints += 1;
                let end = r.offset + r.framed_len() as u64;
                let next_is_footer = scan
                    .records
                    .iter()
                    .find(|n| n.offset == end)
                    .is_some_and(|n| n.kind == shared::segment::consts::KIND_FOOTER);
                if direct && !next_is_footer {
                    assert_eq!(
                        end % 4096,
                        0,
                        "{}: checkpoint at {} ends off a block boundary",
                        s.path.display(),
                        r.offset
                    );
                }
            }
            if direct {
                assert_eq!(bytes.len() % 4096, 0, "{} ends on a block boundary", s.path.display());
                let meta = std::fs::metadata(&s.path).unwrap();
                assert!(
                    meta.blocks() * 512 <= meta.len() + 4096,
                    "{}: {} bytes allocated for {} bytes: preallocation not released",
                    s.path.display(),
                    meta.blocks() * 512,
                    meta.len()
                );
            }
            checked_manifest(&s.path);
        }
        assert!(checkpoints >= 3);
        let got = all_messages(dir.path());
        assert_exact(&got, &ts, 1..=300);
        // Same messages, whatever file holds them.
        per_mode.push(got.into_iter().map(|(k, (h, p, _))| (k, h, p)).collect::<Vec<_>>());
    }
    assert!(per_mode[0] == per_mode[1], "different messages in direct and buffered mode");
}

/// Small commits (a slow recording) stay buffered even with direct I/O on: padding each commit
/// to 4 KiB would multiply the disk use. Big commits switch new segments to direct I/O.
#[test]
fn small_commits_stay_buffered_big_ones_go_direct() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 256 * 1024;
    opts.commit_bytes = 64 * 1024;
    opts.direct_min_commit = 32 * 1024;
    opts.io_mode = IoMode::Direct;
    // Commits by size or sync only, never by time: a slow machine must not shrink them.
    opts.commit_interval = std::time::Duration::from_secs(3600);
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    // One small message per commit: no padding anywhere.
    for seq in 1..=40u64 {
        write_messages(&mut w, &ts[..1], seq..=seq);
        w.sync().unwrap();
    }
    w.split().unwrap();
    w.sync().unwrap();
    let small: Vec<_> = list_segments(dir.path()).unwrap();
    let small_bytes: u64 = small.iter().map(|s| std::fs::metadata(&s.path).unwrap().len()).sum();
    let payload: u64 = (1..=40u64).map(|s| len_for(s) as u64).sum();
    assert!(small_bytes < payload + 40 * 200 + 8192, "{small_bytes} bytes on disk for {payload} of payload");
    // Big commits: once the average passes the threshold, new segments are direct (4 KiB
    // aligned commits, sizes a multiple of 4 KiB).
    for round in 0..12u64 {
        write_messages(&mut w, &ts, 1000 + round * 100..=1000 + round * 100 + 99);
        w.sync().unwrap();
    }
    w.close().unwrap();
    let all = list_segments(dir.path()).unwrap();
    let sizes: Vec<u64> = all.iter().map(|s| std::fs::metadata(&s.path).unwrap().len()).collect();
    let direct = sizes.iter().filter(|n| *n % 4096 == 0).count();
    assert!(direct >= 2, "segments sized {sizes:?}: none went direct");
    assert_ne!(sizes[0] % 4096, 0, "the first segment is buffered: {sizes:?}");
    for s in &all {
        checked_manifest(&s.path);
    }
}

/// A fast recording's first segment opens buffered (no commit size is known yet) and is ended
/// early once commits are big, so that the rest of the recording goes direct.
#[test]
fn a_fast_start_ends_the_buffered_first_segment_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 4 * 1024 * 1024;
    opts.commit_bytes = 256 * 1024;
    opts.direct_min_commit = 128 * 1024;
    opts.io_mode = IoMode::Direct;
    opts.commit_interval = std::time::Duration::from_secs(3600);
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    // About 9 MiB of big messages, committed by size (256 KiB).
    let big = vec![0xa5u8; 60_000];
    for seq in 1..=150u64 {
        let h = shared::plane::MessageHeader {
            topic_id: ts[0].topic_id,
            robot_id: ts[0].robot_id,
            sequence: seq,
            receive_time_ns: seq,
            ingest_session: SESSION,
            payload_len: big.len() as u32,
            ..Default::default()
        };
        w.append(&h, &big).unwrap();
        w.poll().unwrap();
    }
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    let sizes: Vec<u64> = segs.iter().map(|s| std::fs::metadata(&s.path).unwrap().len()).collect();
    // The EMA of commit sizes passes 128 KiB after the 6th commit (1.5 MiB): the first segment
    // ends there instead of at 4 MiB.
    assert!(sizes.len() >= 3, "segments sized {sizes:?}");
    assert!((1024 * 1024..2 * 1024 * 1024).contains(&sizes[0]), "first segment not ended early: {sizes:?}");
    assert_ne!(sizes[0] % 4096, 0, "the first segment is buffered: {sizes:?}");
    assert!(sizes[1..].iter().all(|n| n % 4096 == 0), "later segments are direct: {sizes:?}");
    let seen = read_back_in_order(&segs, |_| big.clone());
    assert_eq!(seen, 150);
}

/// `io_mode = "auto"` (the default): a fast recording starts buffered, runs a trial of 4 direct
/// segments after 32 buffered ones, and every message reads back the same whichever mode wrote it,
/// with manifests whose SHA-256 (hashed from the batch buffers in both modes) is the file's.
#[test]
fn auto_io_mode_starts_buffered_then_tries_direct_segments_with_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 256 * 1024;
    opts.commit_bytes = 64 * 1024;
    opts.direct_min_commit = 32 * 1024;
    opts.commit_interval = std::time::Duration::from_secs(3600);
    assert_eq!(opts.io_mode, IoMode::Auto);
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    // About 15 MiB of 30-60 kB messages, committed by size (64 KiB): about 58 segments.
    let n = 330u64;
    for seq in 1..=n {
        let t = &ts[(seq % 2) as usize];
        let p = payload(t.topic_id, seq, 30_000 + (seq as usize * 331) % 30_000);
        let h = shared::plane::MessageHeader { payload_len: p.len() as u32, ..header(t, seq) };
        w.append(&h, &p).unwrap();
        w.poll().unwrap();
    }
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    let direct: Vec<bool> = segs
        .iter()
        .map(|s| {
            let bytes = std::fs::read(&s.path).unwrap();
            let scan = shared::segment::scan(&bytes, shared::segment::ScanMode::StopAtFirstError).unwrap();
            // Direct segments pad their checkpoints so that every commit ends on a block.
            scan.records.iter().filter(|r| r.kind == shared::segment::consts::KIND_CHECKPOINT).all(|r| {
                (r.offset + r.framed_len() as u64).is_multiple_of(4096) || bytes.len() as u64 - r.offset < 8192
            }) && bytes.len().is_multiple_of(4096)
        })
        .collect();
    assert!(segs.len() >= 45, "{direct:?}");
    // The first segments open while the average commit is still small: buffered (not
    // chosen). Then 32 buffered ones chosen under load, then a trial of 4 direct ones (what
    // follows depends on the rates measured here).
    let k = direct.iter().position(|d| *d).unwrap();
    assert!((33..=35).contains(&k), "{direct:?}");
    // No buffered segment was ended early for a direct one: `auto` prefers buffered until it
    // measured direct faster, so only the last segment (closed) is short.
    let sizes: Vec<u64> = segs.iter().map(|s| std::fs::metadata(&s.path).unwrap().len()).collect();
    assert!(sizes[..sizes.len() - 1].iter().all(|&n| n >= 256 * 1024), "{sizes:?}");
    assert_eq!(&direct[k..k + 4], &[true; 4], "{direct:?}");
    let seen = read_back_in_order(&segs, |seq| {
        let t = &ts[(seq % 2) as usize];
        payload(t.topic_id, seq, 30_000 + (seq as usize * 331) % 30_000)
    });
    assert_eq!(seen, n);
}

/// Reads `segs` back in order, each manifest checked against its file, and asserts that no
/// record is corrupt and that the messages run 1, 2, ... with the payload `expected(seq)`.
/// Returns how many messages there were.
fn read_back_in_order(segs: &[writer::directory::SegmentPath], expected: impl Fn(u64) -> Vec<u8>) -> u64 {
    let mut seen = 0u64;
    for s in segs {
        checked_manifest(&s.path);
        let c = writer::read_segment(&s.path).unwrap();
        assert!(c.report.corrupt.is_empty());
        for m in &c.messages {
            seen += 1;
            assert_eq!(m.header.sequence, seen, "messages in order, none lost");
            assert_eq!(&m.payload[..], &expected(seen)[..]);
        }
    }
    seen
}
