//! The `fleetrec-writer` loop on a real iceoryx2 plane, in-process: topics and messages
//! published like ingest does, a control request splits the segment, the status carries the
//! durable watermark, sealed segments are announced, and shutdown seals the open segment.
//! (The multi-process crash test lives in the workspace `tests/` crate.)
// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::service::port_factory::PortFactory;
use shared::config::Config;
use shared::plane::{read_cstr, ControlCommand, Plane, Stage, StageState, StatusReader, TopicHeader};
use writer::directory::list_segments;

const PER_TOPIC: u64 = 300;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    // A generous bound so a broken build fails instead of hanging; not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn writer_loop_records_messages_from_the_plane() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.pipeline.name = format!("wtest{}", std::process::id());
    cfg.pipeline.status_interval_ms = 20;
    cfg.storage.path = dir.path().join("rec");
    cfg.storage.wal_segment_size = 256 * 1024;
    cfg.storage.commit_interval_ms = 2;

    let plane = Plane::open("ingest-test", &cfg.pipeline).unwrap();
    let notices = plane.segment_subscriber().unwrap();
    let topic_pub = plane.topic_publisher().unwrap();
    let ts = topics();
    for t in &ts {
        let json = t.to_json_bytes();
        let s = topic_pub.loan_slice_uninit(json.len()).unwrap();
        let mut s = s.write_from_slice(&json);
        *s.user_header_mut() = TopicHeader { topic_id: t.topic_id, robot_id: t.robot_id, flags: 0 };
        s.send().unwrap();
    }

    let writer_cfg = cfg.clone();
    let handle = std::thread::Builder::new()
        .name("writer-under-test".into())
        .spawn(move || writer::run::run_until_stopped(&writer_cfg))
        .unwrap();

    let messages = plane.messages_service().unwrap();
    wait_for("the writer's subscriber", || messages.dynamic_config().number_of_subscribers() > 0);
    let mut status = StatusReader::new(&plane, Stage::Writer).unwrap();
    wait_for("the writer's first status", || status.poll().is_some());
    // iceoryx2 hands a publisher's history to a new subscriber when the publisher updates its
    // connections (ingest does this periodically).
    topic_pub.update_connections().unwrap();
    let publisher = plane.message_publisher().unwrap();
    let notifier = plane.wake_notifier().unwrap();
    let control = shared::control::ControlClient::new(&plane);

    for seq in 1..=PER_TOPIC {
        for t in &ts {
            let p = payload(t.topic_id, seq, len_for(seq));
            let s = publisher.loan_slice_uninit(p.len()).unwrap();
            let mut s = s.write_from_slice(&p);
            *s.user_header_mut() = shared::plane::MessageHeader { payload_len: p.len() as u32, ..header(t, seq) };
            s.send().unwrap();
        }
        if seq % 20 == 0 {
            notifier.notify().unwrap();
            // Let the writer keep up (the subscriber buffer holds 1024 samples).
            wait_for("the writer to take the messages", || status.poll().is_some_and(|s| s.messages >= seq * 3));
        }
        if seq == PER_TOPIC / 2 {
            let reply = control
                .request(Stage::Writer, ControlCommand::SplitSegment, "", std::time::Duration::from_secs(30))
                .unwrap();
            assert!(reply.ok, "{reply:?}");
        }
    }
    notifier.notify().unwrap();

    // The watermark reaches the last sequence of every topic.
    wait_for("the durable watermark", || {
        status
            .poll()
            .is_some_and(|s| s.topics().len() == 3 && s.topics().iter().all(|t| t.durable_sequence == PER_TOPIC))
    });
    let s = *status.poll().unwrap();
    assert_eq!(s.state(), StageState::Running);
    assert_eq!(s.messages, 3 * PER_TOPIC);
    assert_eq!(s.dropped, 0);
    assert_eq!(s.robot_count, 2);
    let names: Vec<String> = s.robots().iter().map(|r| read_cstr(&r.name)).collect();
    assert_eq!(names, vec!["robot1", "robot2"]);
    for t in s.topics() {
        assert_eq!(t.last_sequence, PER_TOPIC);
        assert_eq!(t.ingest_session, SESSION);
        assert!(read_cstr(&t.name).starts_with("/robot"));
    }

    // The split sealed the first segment: its notice arrives while the writer runs. (A
    // notice sent during shutdown may vanish with the writer's publisher: notices are hints,
    // consumers rescan the directory.)
    let mut announced = Vec::new();
    wait_for("the first segment's notice", || {
        while let Some(n) = notices.receive().unwrap() {
            announced.push(read_cstr(&n.payload().path));
        }
        !announced.is_empty()
    });

    shared::shutdown::request();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.messages, 3 * PER_TOPIC);
    assert_eq!(summary.dropped, 0);

    let dir = &cfg.storage.path;
    let segs = list_segments(dir).unwrap();
    assert!(segs.len() >= 2, "the split request made a boundary");
    for seg in &segs {
        assert!(writer::read_segment(&seg.path).unwrap().report.sealed);
        checked_manifest(&seg.path);
    }
    assert_exact(&all_messages(dir), &ts, 1..=PER_TOPIC);

    let first = std::path::absolute(&segs[0].path).unwrap();
    assert_eq!(announced, vec![first.to_string_lossy().into_owned()]);
    assert_eq!(summary.segments_sealed, segs.len() as u64);
}
