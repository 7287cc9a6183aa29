//! Recovery: simulated power loss (a torn tail of random length followed by garbage, property
//! test), abandonment markers, sealed segments without manifest, empty and header-less files,
//! corruption in the middle, and the directory lock.
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use shared::config::IoMode;
use shared::segment::consts::{HEADER_LEN, KIND_MESSAGE};
use shared::segment::{scan, ScanMode};
use writer::directory::{abandoned_marker_path, list_segments, manifest_path};
use writer::{recover, AbandonMarker, WriterError};

/// An unsealed segment as a crash leaves it: `durable` = its length after the first sync; a
/// second sync added more records after it.
struct Crashed {
    name: String,
    bytes: Vec<u8>,
    durable: usize,
    durable_seqs: u64,
}

fn crashed_segment() -> &'static Crashed {
    static SEG: OnceLock<Crashed> = OnceLock::new();
    SEG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = small_opts(dir.path());
        opts.segment_size = 1 << 20;
        // Buffered I/O: the file's size is its data, as in a classic torn write. Direct I/O's
        // preallocated files are covered by `direct_io_crash_leaves_zeros_that_are_not_damage`.
        opts.io_mode = IoMode::Buffered;
        let mut w = open(opts);
        let ts = topics();
        for t in &ts {
            w.define_topic(t.clone()).unwrap();
        }
        write_messages(&mut w, &ts, 1..=40);
        w.sync().unwrap();
        let path = w.current_segment().unwrap();
        let durable = std::fs::metadata(&path).unwrap().len() as usize;
        let durable_seqs = w.watermark().topic(11).unwrap().durable_sequence;
        write_messages(&mut w, &ts, 41..=80);
        w.sync().unwrap();
        drop(w); // a crash: no footer, no manifest
        Crashed {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            bytes: std::fs::read(&path).unwrap(),
            durable,
            durable_seqs,
        }
    })
}

fn place(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Simulated power loss: cut the open segment anywhere beyond the durable point and append
    /// garbage. Recovery cuts at the last valid record before the damage, keeps every record
    /// before it byte for byte (so everything at or below the watermark), seals the segment and
    /// writes a manifest that matches it.
    #[test]
    fn torn_tail_is_cut_at_the_last_valid_record(
        cut_frac in 0.0f64..=1.0,
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let seg = crashed_segment();
        let cut = seg.durable + ((seg.bytes.len() - seg.durable) as f64 * cut_frac) as usize;
        let mut torn = seg.bytes[..cut].to_vec();
        torn.extend_from_slice(&garbage);
        let dir = tempfile::tempdir().unwrap();
        let path = place(dir.path(), &seg.name, &torn);

        let report = recover(dir.path()).unwrap();
        prop_assert_eq!(report.recovered.len(), 1);

        let original = scan(&seg.bytes, ScanMode::StopAtFirstError).unwrap();
        let kept: Vec<_> = original
            .records
            .iter()
            .filter(|r| r.offset as usize + r.framed_len() <= cut)
            .collect();
        let boundary = kept.last().map_or(HEADER_LEN, |r| r.offset as usize + r.framed_len());
        let r = &report.recovered[0];
        prop_assert_eq!(r.cut_at as usize, boundary);
        prop_assert_eq!(r.cut_bytes as usize, torn.len() - boundary);

        let after = std::fs::read(&path).unwrap();
        prop_assert_eq!(&after[..boundary], &seg.bytes[..boundary]);
        let c = writer::read_segment(&path).unwrap();
        prop_assert!(c.report.sealed);
        prop_assert!(c.report.corrupt.is_empty());
        let kept_msgs = kept.iter().filter(|r| r.kind == KIND_MESSAGE).count();
        prop_assert_eq!(c.messages.len(), kept_msgs);
        prop_assert_eq!(c.footer.as_ref().unwrap().recovered_cut_bytes as usize, torn.len() - boundary);
        // Everything at or below the watermark of the first sync is there.
        for t in topics() {
            for seq in 1..=seg.durable_seqs {
                prop_assert!(c.messages.iter().any(|m| m.header.topic_id == t.topic_id && m.header.sequence == seq));
            }
        }
        checked_manifest(&path);
        // A second recovery has nothing left to do.
        prop_assert!(recover(dir.path()).unwrap().is_empty());
    }
}

#[test]
fn abandonment_marker_cuts_at_the_last_synced_batch() {
    let seg = crashed_segment();
    let dir = tempfile::tempdir().unwrap();
    let path = place(dir.path(), &seg.name, &seg.bytes);
    AbandonMarker::new(&path, seg.durable as u64, "fdatasync", libc::EIO).write(&path).unwrap();
    let report = recover(dir.path()).unwrap();
    let r = &report.recovered[0];
    assert!(r.abandoned);
    assert_eq!(r.cut_at as usize, seg.durable);
    assert!(r.records_cut > 0);
    assert!(!abandoned_marker_path(&path).exists(), "marker removed after sealing");
    let c = writer::read_segment(&path).unwrap();
    assert!(c.report.sealed);
    assert_eq!(c.messages.len() as u64, 3 * seg.durable_seqs);
    checked_manifest(&path);
}

#[test]
fn sealed_segment_without_manifest_gets_one_and_stray_files_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(small_opts(dir.path()));
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=100);
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    let victim = &segs[1].path;
    let before = std::fs::read(victim).unwrap();
    std::fs::remove_file(manifest_path(victim)).unwrap();
    // a crash right after creating a segment, and one during a manifest write
    let empty = dir.path().join("seg-00000000000000000999-00000000.wal");
    std::fs::write(&empty, b"FLTREC").unwrap();
    let tmp = dir.path().join(format!("{}.manifest.json.tmp", segs[0].path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, b"{").unwrap();

    let report = recover(dir.path()).unwrap();
    assert_eq!(report.manifests_written, vec![victim.clone()]);
    assert!(report.recovered.is_empty());
    assert!(report.removed.contains(&empty));
    assert!(report.removed.contains(&tmp));
    assert!(!empty.exists() && !tmp.exists());
    assert_eq!(std::fs::read(victim).unwrap(), before, "a sealed segment is not modified");
    checked_manifest(victim);
    assert_exact(&all_messages(dir.path()), &ts, 1..=100);
}

#[test]
fn corrupt_record_in_the_middle_is_reported_and_later_records_kept() {
    let seg = crashed_segment();
    let original = scan(&seg.bytes, ScanMode::StopAtFirstError).unwrap();
    let victim = original.records.iter().filter(|r| r.kind == KIND_MESSAGE).nth(5).unwrap();
    let mut bytes = seg.bytes.clone();
    bytes[victim.offset as usize + 20] ^= 0x40;
    let dir = tempfile::tempdir().unwrap();
    let path = place(dir.path(), &seg.name, &bytes);
    let report = recover(&path).unwrap();
    let r = &report.recovered[0];
    assert_eq!(r.corrupt_offsets, vec![victim.offset]);
    assert_eq!(r.cut_bytes, 0);
    assert_eq!(report.corrupt_records(), 1);
    let c = writer::read_segment(&path).unwrap();
    let all_msgs = original.records.iter().filter(|r| r.kind == KIND_MESSAGE).count();
    assert_eq!(c.messages.len(), all_msgs - 1);
    assert_eq!(c.report.corrupt.len(), 1);
    assert!(c.report.sealed);
}

#[test]
fn writer_start_recovers_and_continues_after_the_highest_segment() {
    let seg = crashed_segment();
    let dir = tempfile::tempdir().unwrap();
    let path = place(dir.path(), &seg.name, &seg.bytes[..seg.bytes.len() - 7]);
    let (mut w, report) = writer::SegmentWriter::open(small_opts(dir.path())).unwrap();
    assert_eq!(report.recovered.len(), 1);
    assert!(report.torn_bytes() > 0);
    assert_eq!(w.stats().torn_bytes, report.torn_bytes());
    // Sealed by recovery: announced like any sealed segment.
    assert_eq!(w.take_sealed().len(), 1);
    assert!(matches!(recover(dir.path()), Err(WriterError::Locked { .. })));
    let t = topic(11, 0, "robot1", "imu");
    w.define_topic(t.clone()).unwrap();
    w.append(&header(&t, 1000), b"after").unwrap();
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].path, path);
    let recovered_seq = writer::read_segment(&path).unwrap().header.segment_seq;
    assert_eq!(segs[1].seq, recovered_seq + 1);
}

#[test]
fn segment_recovering_to_no_message_is_removed() {
    let seg = crashed_segment();
    let original = scan(&seg.bytes, ScanMode::StopAtFirstError).unwrap();
    let first_msg = original.records.iter().find(|r| r.kind == KIND_MESSAGE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = place(dir.path(), &seg.name, &seg.bytes[..first_msg.offset as usize + 3]);
    let report = recover(dir.path()).unwrap();
    assert!(report.recovered[0].removed);
    assert!(!path.exists());
}

/// A direct-I/O segment is preallocated: after a crash its data is followed by zeros up to the
/// preallocated size. Recovery keeps every synced record, counts nothing as cut or torn, and cuts
/// the file to its data; a segment sealed just before a crash (footer durable, preallocation not
/// yet cut, no manifest) only loses its zeros.
#[test]
fn direct_io_crash_leaves_zeros_that_are_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_opts(dir.path());
    opts.segment_size = 1 << 20;
    opts.io_mode = IoMode::Direct;
    opts.direct_min_commit = 0;
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }
    write_messages(&mut w, &ts, 1..=40);
    w.sync().unwrap();
    let path = w.current_segment().unwrap();
    drop(w); // a crash: no footer, no manifest
    let bytes = std::fs::read(&path).unwrap();
    let scanned = scan(&bytes, ScanMode::SkipCorrupt).unwrap();
    let data = scanned.valid_len;
    assert!(
        matches!(scanned.tail, shared::segment::Tail::Preallocated { offset, bytes: zeros } if offset == data && zeros > 0),
        "{:?}",
        scanned.tail
    );
    let report = recover(dir.path()).unwrap();
    assert_eq!(report.torn_bytes(), 0);
    let r = &report.recovered[0];
    assert_eq!((r.cut_at, r.cut_bytes, r.records_cut), (data, 0, 0));
    let c = writer::read_segment(&path).unwrap();
    assert!(c.report.sealed);
    assert_eq!(c.report.tail, shared::segment::Tail::Clean);
    assert_eq!(c.messages.len(), 3 * 40);
    assert_eq!(c.footer.as_ref().unwrap().recovered_cut_bytes, 0);
    checked_manifest(&path);

    // Sealed, then a crash before the preallocation was cut and the manifest written.
    let sealed = std::fs::read(&path).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut padded = sealed.clone();
    padded.extend_from_slice(&[0u8; 64 * 1024]);
    let p2 = place(dir2.path(), &seg_name(&path), &padded);
    let report = recover(dir2.path()).unwrap();
    assert!(report.recovered.is_empty(), "nothing cut: {:?}", report.recovered);
    assert_eq!(report.manifests_written, vec![p2.clone()]);
    assert_eq!(std::fs::read(&p2).unwrap(), sealed, "only the zeros are gone");
    checked_manifest(&p2);

    // Crash right after a preallocated segment was created: only zeros, removed.
    let dir3 = tempfile::tempdir().unwrap();
    let p3 = place(dir3.path(), &seg_name(&path), &vec![0u8; 1 << 20]);
    let report = recover(dir3.path()).unwrap();
    assert_eq!(report.removed, vec![p3.clone()]);
    assert!(!p3.exists());
}

fn seg_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}
