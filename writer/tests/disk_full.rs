//! A real full disk: a 2 MiB tmpfs mounted by the test (we run as root; the test is skipped,
//! with the reason printed, if mounting fails). The writer fills it, stops accepting (counted
//! drops per topic, state "disk full"), keeps every durable byte, and resumes by itself when
//! space is freed. Afterwards every accepted message is on disk exactly once, byte-identical,
//! no dropped message is, and inspect finds no corruption.
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use writer::directory::list_segments;
use writer::{Appended, DropReason, WriterState};

#[derive(Default)]
struct Sets {
    accepted: BTreeSet<(u32, u64)>,
    dropped: BTreeSet<(u32, u64)>,
}

impl Sets {
    fn send(&mut self, w: &mut writer::SegmentWriter, ts: &[shared::topic::TopicInfo], seq: u64) {
        for t in ts {
            let p = payload(t.topic_id, seq, len_for(seq));
            match w.append(&header(t, seq), &p).unwrap() {
                Appended::Accepted => self.accepted.insert((t.topic_id, seq)),
                Appended::Dropped(r) => {
                    assert_eq!(r, DropReason::DiskFull);
                    self.dropped.insert((t.topic_id, seq))
                }
            };
        }
        w.poll().unwrap();
    }
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mount(dir.to_path_buf()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn full_tmpfs_stops_cleanly_and_resumes_when_space_returns() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _mount = match mount_tmpfs(&mnt, "2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED full_tmpfs_stops_cleanly_and_resumes_when_space_returns: mount failed: {why}");
            return;
        }
    };
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![0xaa; 768 * 1024]).unwrap();
    let dir = mnt.join("recording");
    let mut opts = small_opts(&dir);
    opts.segment_size = 64 * 1024;
    opts.commit_bytes = 8 * 1024;
    opts.resume_headroom = 128 * 1024;
    let mut w = open(opts);
    let ts = topics();
    for t in &ts {
        w.define_topic(t.clone()).unwrap();
    }

    let mut sets = Sets::default();

    // Fill the file system.
    let mut seq = 0;
    while w.state() != WriterState::DiskFull {
        seq += 1;
        assert!(seq < 20_000, "the 2 MiB file system never filled up");
        sets.send(&mut w, &ts, seq);
    }
    assert!(writer::segment_writer::free_bytes(&mnt).unwrap() < 256 * 1024);
    assert!(w.detail().starts_with("disk full"), "{}", w.detail());
    // Still full: new messages are dropped and counted, the writer stays up.
    for _ in 0..30 {
        seq += 1;
        sets.send(&mut w, &ts, seq);
    }
    assert!(sets.dropped.len() >= 90);
    assert_eq!(w.stats().dropped, sets.dropped.len() as u64);
    let per_topic: u64 = ts.iter().map(|t| w.watermark().topic(t.topic_id).unwrap().dropped).sum();
    assert_eq!(per_topic, sets.dropped.len() as u64);
    // Whatever is on disk now is intact.
    let report = writer::inspect::inspect(&dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    for t in &ts {
        let p = w.watermark().topic(t.topic_id).unwrap();
        assert!(p.durable_sequence < p.last_sequence, "some data is held, not durable");
    }

    // Free space: the writer notices by itself and resumes.
    std::fs::remove_file(&ballast).unwrap();
    let mut turns = 0;
    while w.state() != WriterState::Running {
        turns += 1;
        assert!(turns < 100_000, "writer did not resume");
        w.wait(Duration::from_millis(5), None).unwrap();
    }
    for _ in 0..40 {
        seq += 1;
        sets.send(&mut w, &ts, seq);
    }
    w.sync().unwrap();
    for t in &ts {
        let p = w.watermark().topic(t.topic_id).unwrap();
        assert_eq!(p.durable_sequence, seq, "everything accepted is durable again");
    }
    assert_eq!(w.stats().disk_full_events, 1);
    w.close().unwrap();

    let got = all_messages(&dir);
    let keys: BTreeSet<(u32, u64)> = got.keys().map(|(t, _, s)| (*t, *s)).collect();
    assert_eq!(keys, sets.accepted, "exactly the accepted messages are on disk");
    assert!(keys.is_disjoint(&sets.dropped));
    for ((topic, _, s), (_, p, _)) in &got {
        assert_eq!(p, &payload(*topic, *s, len_for(*s)));
    }
    for s in list_segments(&dir).unwrap() {
        let c = writer::read_segment(&s.path).unwrap();
        assert!(c.report.sealed, "{} sealed", s.path.display());
        checked_manifest(&s.path);
    }
    let report = writer::inspect::inspect(&dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}
