//! Failed fsync: the writer never syncs that file again, rewrites the unsynced data into a new
//! segment (with topic definitions), and the durable watermark never covers a record whose
//! fdatasync did not succeed. Faults are injected at the I/O boundary ([`writer::IoFaults`]).
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use shared::segment::consts::KIND_CHECKPOINT;
use shared::segment::{scan, ScanMode};
use writer::directory::{abandoned_marker_path, list_segments};
use writer::{AbandonMarker, IoFaults, SegmentWriter, WriterState};

/// Fails the next `fail_syncs` fdatasync completions with EIO, and every write while
/// `enospc` is set.
#[derive(Debug, Default)]
struct Faults {
    fail_syncs: AtomicU64,
    failed: Mutex<Vec<PathBuf>>,
    enospc: AtomicBool,
}

impl IoFaults for Faults {
    fn fdatasync_result(&self, segment: &Path, result: i32) -> i32 {
        let armed = self.fail_syncs.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if armed {
            self.failed.lock().unwrap().push(segment.to_path_buf());
            return -libc::EIO;
        }
        result
    }

    fn write_result(&self, _segment: &Path, _offset: u64, _len: u32, result: i32) -> i32 {
        if self.enospc.load(Ordering::SeqCst) {
            -libc::ENOSPC
        } else {
            result
        }
    }
}

fn writer_with(dir: &Path, faults: Arc<Faults>) -> SegmentWriter {
    let mut opts = small_opts(dir);
    opts.segment_size = 1 << 20;
    opts.faults = faults;
    open(opts)
}

fn round(w: &mut SegmentWriter, seqs: std::ops::RangeInclusive<u64>) {
    for t in topics() {
        w.define_topic(t).unwrap();
    }
    write_messages(w, &topics(), seqs);
    w.sync().unwrap();
}

#[test]
fn failed_fdatasync_rewrites_unsynced_data_into_a_new_segment() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let mut w = writer_with(dir.path(), faults.clone());
    round(&mut w, 1..=20);
    round(&mut w, 21..=40);
    let before = w.current_segment().unwrap();
    // The data's end (an open direct-I/O segment's file is preallocated: its size is not it).
    let durable_before = scan(&std::fs::read(&before).unwrap(), ScanMode::StopAtFirstError).unwrap().valid_len;
    // The next fdatasync fails: its batch (and anything after it) is rewritten and synced in
    // a new segment.
    faults.fail_syncs.store(1, Ordering::SeqCst);
    round(&mut w, 41..=60);
    assert_eq!(faults.failed.lock().unwrap().clone(), vec![before.clone()]);
    assert_eq!(w.stats().fsync_errors, 1);
    assert_eq!(w.stats().segments_abandoned, 1);
    assert!(w.stats().rewritten_messages > 0);
    assert_eq!(w.state(), WriterState::Running);
    assert_ne!(w.current_segment().unwrap(), before, "writing goes on in a new segment");
    for t in topics() {
        assert_eq!(w.watermark().topic(t.topic_id).unwrap().durable_sequence, 60);
    }
    // The failed file is left alone, with a marker naming its durable length: the end of the
    // last batch synced before the failure (a checkpoint record ends every batch). Completions
    // may be judged out of order, so a batch submitted after arming may still have retired.
    let marker = AbandonMarker::read(&before).unwrap().expect("marker");
    assert!(marker.durable_len >= durable_before);
    let bytes = std::fs::read(&before).unwrap();
    let records = scan(&bytes, ScanMode::StopAtFirstError).unwrap().records;
    let last_durable = records.iter().find(|r| r.offset + r.framed_len() as u64 == marker.durable_len).unwrap();
    assert_eq!(last_durable.kind, KIND_CHECKPOINT);
    assert_eq!(marker.operation, "fdatasync");
    assert_eq!(marker.errno, libc::EIO);
    round(&mut w, 61..=80);
    w.close().unwrap();
    assert!(abandoned_marker_path(&before).exists());
    let c = writer::read_segment(&before).unwrap();
    assert!(!c.report.sealed, "the abandoned segment is not sealed by the writer");

    // The next start recovers it: cut at its durable length, sealed; nothing lost, nothing
    // duplicated.
    let (w2, report) = SegmentWriter::open(small_opts(dir.path())).unwrap();
    drop(w2);
    let r = report.recovered.iter().find(|r| r.path == before).unwrap();
    assert!(r.abandoned);
    assert_eq!(r.cut_at, marker.durable_len);
    assert!(!abandoned_marker_path(&before).exists());
    for s in list_segments(dir.path()).unwrap() {
        checked_manifest(&s.path);
        let c = writer::read_segment(&s.path).unwrap();
        assert!(c.report.sealed);
        for m in &c.messages {
            assert!(
                c.topics.iter().any(|t| t.topic_id == m.header.topic_id),
                "each segment carries its topic definitions"
            );
        }
    }
    assert_exact(&all_messages(dir.path()), &topics(), 1..=80);
}

#[test]
fn watermark_never_covers_records_whose_sync_failed() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let mut w = writer_with(dir.path(), faults.clone());
    round(&mut w, 1..=20);
    round(&mut w, 21..=40);
    // Every sync fails from now on: the first failure and three rewrites, then the writer
    // stalls and retries with backoff until syncs succeed again.
    faults.fail_syncs.store(u64::MAX, Ordering::SeqCst);
    round(&mut w, 41..=60);
    assert_eq!(w.state(), WriterState::IoFailing);
    for t in topics() {
        let p = w.watermark().topic(t.topic_id).unwrap();
        assert_eq!(p.last_sequence, 60);
        assert_eq!(p.durable_sequence, 40, "unsynced records are not in the watermark");
    }
    assert!(w.stats().fsync_errors >= 4);
    assert_eq!(w.held_messages(), 60);
    // While failing, new messages are refused and counted.
    let t = topic(11, 0, "robot1", "imu");
    assert_eq!(w.append(&header(&t, 61), b"x").unwrap(), writer::Appended::Dropped(writer::DropReason::IoFailing));
    assert_eq!(w.watermark().topic(11).unwrap().dropped, 1);

    // The disk heals: the held messages are written and synced.
    faults.fail_syncs.store(0, Ordering::SeqCst);
    while w.state() != WriterState::Running {
        w.wait(std::time::Duration::from_millis(5), None).unwrap();
    }
    w.sync().unwrap();
    for t in topics() {
        assert_eq!(w.watermark().topic(t.topic_id).unwrap().durable_sequence, 60);
    }
    w.close().unwrap();
    drop(SegmentWriter::open(small_opts(dir.path())).unwrap());
    assert_exact(&all_messages(dir.path()), &topics(), 1..=60);
}

#[test]
fn injected_enospc_holds_data_and_resumes_without_loss() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let mut w = writer_with(dir.path(), faults.clone());
    round(&mut w, 1..=20);
    let first = w.current_segment().unwrap();
    faults.enospc.store(true, Ordering::SeqCst);
    round(&mut w, 21..=30);
    assert_eq!(w.state(), WriterState::DiskFull);
    assert!(w.detail().starts_with("disk full"), "{}", w.detail());
    assert_eq!(w.held_messages(), 30);
    for t in topics() {
        assert_eq!(w.watermark().topic(t.topic_id).unwrap().durable_sequence, 20);
    }
    let t = topic(12, 0, "robot1", "scan");
    assert_eq!(w.append(&header(&t, 31), b"x").unwrap(), writer::Appended::Dropped(writer::DropReason::DiskFull));
    // Cut back to what was durable; sealed as soon as there is room.
    faults.enospc.store(false, Ordering::SeqCst);
    while w.state() != WriterState::Running {
        w.wait(std::time::Duration::from_millis(5), None).unwrap();
    }
    w.sync().unwrap();
    assert_eq!(w.stats().disk_full_events, 1);
    assert_eq!(w.stats().dropped, 1);
    let c = writer::read_segment(&first).unwrap();
    assert!(c.report.sealed, "the interrupted segment is sealed after the cut");
    assert_eq!(c.messages.len(), 60);
    checked_manifest(&first);
    for t in topics() {
        assert_eq!(w.watermark().topic(t.topic_id).unwrap().durable_sequence, 30);
    }
    w.close().unwrap();
    assert_exact(&all_messages(dir.path()), &topics(), 1..=30);
}
