//! The writer creates the next segments' files (empty) ahead of their use, so that a seal's
//! directory fsync covers their directory entries and their first batches need no directory
//! fsync of their own. These tests check the files on disk, the count of directory fsyncs on
//! the commit path, that a clean close leaves no empty file, and that after a crash recovery
//! removes them while every durable message stays.
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use writer::directory::list_segments;
use writer::{SealedSegment, SegmentWriter};

/// (sequence number, size) of every segment file in `dir`.
fn files(dir: &Path) -> Vec<(u64, u64)> {
    list_segments(dir).unwrap().into_iter().map(|s| (s.seq, std::fs::metadata(&s.path).unwrap().len())).collect()
}

/// Polls until `n` more segments were sealed (manifest written); returns them.
fn wait_sealed(w: &mut SegmentWriter, n: usize) -> Vec<SealedSegment> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sealed = Vec::new();
    while sealed.len() < n {
        assert!(Instant::now() < deadline, "no seal within 20 s: {sealed:?}");
        w.poll().unwrap();
        sealed.extend(w.take_sealed());
        std::thread::sleep(Duration::from_millis(5));
    }
    sealed
}

#[test]
fn next_segments_are_created_ahead_and_need_no_directory_fsync_once_a_seal_covered_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 1024 * 1024;
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=10);
    w.sync().unwrap();
    // Segment 1 holds the data; 2 and 3 exist, empty.
    let f = files(dir.path());
    assert_eq!(f.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(f[0].1 > 0);
    assert_eq!((f[1].1, f[2].1), (0, 0));
    // Segment 1 was created on demand: its first batch fsynced the directory.
    assert_eq!(w.stats().commit_dir_syncs, 1);

    // Seal segment 1: its manifest's directory fsync covers 2 and 3.
    w.split().unwrap();
    w.sync().unwrap();
    let sealed = wait_sealed(&mut w, 1);
    assert_eq!(sealed[0].seq, 1);
    write_messages(&mut w, &ts, 11..=20);
    w.sync().unwrap();
    w.split().unwrap();
    w.sync().unwrap();
    assert_eq!(wait_sealed(&mut w, 1)[0].seq, 2);
    write_messages(&mut w, &ts, 21..=30);
    w.sync().unwrap();
    let commits = w.stats().commits;
    assert!(commits >= 3, "{commits} commits");
    assert_eq!(w.stats().commit_dir_syncs, 1, "segments 2 and 3 used files a seal had covered");
    let f = files(dir.path());
    assert_eq!(f.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(f[2].1 > 0);
    assert_eq!((f[3].1, f[4].1), (0, 0), "4 and 5 created ahead");

    // A clean close removes the unused files; the data is exact.
    let sealed = w.close().unwrap();
    assert_eq!(sealed.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3]);
    assert_eq!(files(dir.path()).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(files(dir.path()).iter().all(|(_, len)| *len > 0));
    for s in list_segments(dir.path()).unwrap() {
        checked_manifest(&s.path);
    }
    assert_exact(&all_messages(dir.path()), &ts, 1..=30);
}

#[test]
fn after_a_crash_recovery_removes_the_empty_files_and_keeps_every_durable_message() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_opts(dir.path());
    let ts = topics();
    let mut w = open(opts.clone());
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=100);
    w.sync().unwrap();
    let before = files(dir.path());
    let (last, _) = *before.last().unwrap();
    assert_eq!(before[before.len() - 2..].iter().map(|(_, len)| *len).collect::<Vec<_>>(), vec![0, 0]);
    // A crash: no close (no seal, the files stay as they are; dropping frees the lock).
    drop(w);

    let (mut w, report) = SegmentWriter::open(opts).unwrap();
    let removed: Vec<u64> = report
        .removed
        .iter()
        .filter_map(|p| writer::directory::parse_segment_file_name(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(removed, vec![last - 1, last], "the two empty files were removed");
    assert!(report.corrupt_records() == 0);
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 101..=110);
    w.close().unwrap();
    assert!(files(dir.path()).iter().all(|(_, len)| *len > 0), "no empty file left: {:?}", files(dir.path()));
    // Numbering goes on after the last segment with data.
    assert_eq!(files(dir.path()).last().unwrap().0, last - 1);
    assert_exact(&all_messages(dir.path()), &ts, 1..=110);
}

#[test]
fn inspect_notes_an_empty_file_ahead_without_calling_it_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(small_opts(dir.path()));
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=10);
    w.sync().unwrap();
    let r = writer::inspect::inspect(dir.path()).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(r.clean);
    let ahead: Vec<_> = r.notes.iter().filter(|n| n.text.contains("created ahead")).collect();
    assert_eq!(ahead.len(), 2, "{:?}", r.notes);
    assert_eq!(r.messages, 30);
    w.close().unwrap();
}

#[test]
fn seals_that_come_often_share_directory_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(small_opts(dir.path()));
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=200);
    w.sync().unwrap();
    let segments = list_segments(dir.path()).unwrap().len() - 3; // the open one and two ahead
    assert!(segments >= 8, "{segments} sealed segments");
    let sealed = wait_sealed(&mut w, segments);
    assert_eq!(sealed.len(), segments);
    let syncs = w.stats().seal_dir_syncs;
    assert!(syncs >= 1 && syncs as usize <= segments / 2, "{syncs} directory fsyncs for {segments} seals");
    for s in &sealed {
        checked_manifest(&s.path);
    }
    w.close().unwrap();
    assert_exact(&all_messages(dir.path()), &ts, 1..=200);
}
