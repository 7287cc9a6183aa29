//! ROS 2 end to end: rclpy publishers (`ros2_publisher.py`) on two robots publish known values at
//! 100 Hz; `fleetrec-ingest --source ros2` records them; this test is the pipeline's subscriber
//! and compares every recorded CDR byte with what rclpy serialized.
//!
//! Needs the ROS 2 environment and a network namespace: run through `scripts/test-ros2.sh`,
//! which sources `target/ros2.env`, builds ingest with `--features ros2`, sets
//! `FLEETREC_ROS2=1` and runs this inside `../shared/tools/netns-run`. Ignored otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use fleetrec_tests::{drain_messages, TestEnv};
use shared::plane::Plane;
use shared::topic::TopicInfo;

mod ros2_common;
use ros2_common::{ros2_env, same_cdr, unhex, Process};

const COUNT: usize = 300;
const LATE_COUNT: usize = 50;
const TRANSIENT_COUNT: usize = 5;

#[derive(Default, Debug)]
struct Published {
    by_topic: BTreeMap<String, Vec<Vec<u8>>>,
    types: HashMap<String, String>,
    late_match_s: Option<f64>,
    qos_match_s: Option<f64>,
    qos_up_match_s: Option<f64>,
}

fn read_published(path: &std::path::Path) -> Published {
    let mut p = Published::default();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["done"] == true {
            p.late_match_s = v["late_match_s"].as_f64();
            p.qos_match_s = v["qos_match_s"].as_f64();
            p.qos_up_match_s = v["qos_up_match_s"].as_f64();
            continue;
        }
        let topic = v["topic"].as_str().unwrap().to_string();
        p.types.insert(topic.clone(), v["type"].as_str().unwrap().to_string());
        p.by_topic.entry(topic).or_default().push(unhex(v["hex"].as_str().unwrap()));
    }
    p
}

#[derive(Debug)]
struct Received {
    sequence: u64,
    publish_time_ns: u64,
    receive_time_ns: u64,
    payload: Vec<u8>,
}

#[test]
#[ignore = "needs ROS 2: run scripts/test-ros2.sh"]
fn ros2_two_robots_any_type_recorded_byte_exact_without_loss() {
    let (python, script) = ros2_env();
    let env = TestEnv::new(
        "ros2",
        "[ingest]\nexclude = \"^/(rosout|parameter_events)$\"\n\n[[robots]]\nname = \"robot1\"\n\n[[robots]]\nname = \"robot2\"\nnamespace = \"/robot2\"\n",
    );
    let cfg = env.load();
    let plane = Plane::open("test-subscriber", &cfg.pipeline).unwrap();
    let messages = plane.message_subscriber().unwrap();
    let topics_sub = plane.topic_subscriber().unwrap();
    let mut ingest = Process::ingest(&env.config, 0, env.dir.path().join("ingest.log"));
    let out = env.dir.path().join("published.jsonl");
    let pub_log = env.dir.path().join("publisher.log");
    let mut publisher = Process::start(
        Command::new(&python)
            .arg(&script)
            .args(["--robots", "robot1,robot2", "--rate", "100", "--qos-change"])
            .env("ROS_DOMAIN_ID", "0")
            .args(["--count", &COUNT.to_string(), "--late-count", &LATE_COUNT.to_string()])
            .arg("--out")
            .arg(&out),
        pub_log.clone(),
    );

    let mut topics: HashMap<u32, TopicInfo> = HashMap::new();
    let mut received: HashMap<u32, Vec<Received>> = HashMap::new();
    let mut publisher_done: Option<Instant> = None;
    let hard_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        while let Some(s) = topics_sub.receive().unwrap() {
            let t = TopicInfo::from_json_bytes(s.payload()).unwrap();
            topics.insert(t.topic_id, t);
        }
        let got = drain_messages(&messages, |h, payload| {
            received.entry(h.topic_id).or_default().push(Received {
                sequence: h.sequence,
                publish_time_ns: h.publish_time_ns,
                receive_time_ns: h.receive_time_ns,
                payload: payload.to_vec(),
            });
        });
        if publisher_done.is_none() {
            if let Some(status) = publisher.exited() {
                let log = std::fs::read_to_string(&pub_log).unwrap_or_default();
                assert!(status.success(), "publisher failed: {status}\n{log}\ningest:\n{}", ingest.log_text());
                publisher_done = Some(Instant::now());
            }
        }
        // The publisher waits 2 s for reliable delivery before it exits; then drain 1 s more.
        if publisher_done.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) && !got {
            break;
        }
        assert!(Instant::now() < hard_deadline, "timed out; ingest log:\n{}", ingest.log_text());
        if !got {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(ingest.stop(), "ingest did not stop cleanly:\n{}", ingest.log_text());

    let published = read_published(&out);
    let by_name: HashMap<&str, &TopicInfo> = topics.values().map(|t| (t.name.as_str(), t)).collect();
    assert!(!by_name.contains_key("/rosout") && !by_name.contains_key("/parameter_events"), "exclude ignored");
    let mut report = Vec::new();
    for (topic, sent) in &published.by_topic {
        let t = by_name.get(topic.as_str()).unwrap_or_else(|| panic!("{topic} was not recorded; {:?}", by_name.keys()));
        let robot = topic.split('/').nth(1).unwrap();
        assert_eq!(t.robot, robot, "{topic}");
        assert_eq!(&t.type_name, &published.types[topic]);
        assert_eq!(t.encoding, "ros2msg");
        assert!(!t.definition.is_empty(), "{topic} has no definition");
        let got = received.get(&t.topic_id).map(Vec::as_slice).unwrap_or_default();
        report.push(format!("{topic}: {} of {}", got.len(), sent.len()));
        // Sequences are consecutive: the forwarder counts drops as gaps too, and so messages the
        // middleware lost (allowed by best effort only, where they leave a gap).
        let best_effort = ["/scan_be", "/qos_change", "/qos_up"].iter().any(|s| topic.ends_with(s));
        for (i, r) in got.iter().enumerate() {
            if best_effort {
                assert!(
                    r.sequence > i.checked_sub(1).map_or(0, |p| got[p].sequence),
                    "{topic}: sequence not increasing"
                );
            } else {
                assert_eq!(r.sequence, i as u64 + 1, "{topic}: sequence gap (dropped in ingest)");
            }
            assert!(r.publish_time_ns > 0 && r.publish_time_ns <= r.receive_time_ns + 1_000_000_000, "{topic}");
        }
        if topic.ends_with("/qos_change") {
            check_qos_change(topic, got, sent);
            continue;
        }
        if topic.ends_with("/qos_up") {
            check_qos_up(topic, got, sent);
            continue;
        }
        if topic.ends_with("/scan_be") {
            // Best effort: recorded, every byte as sent (loss is allowed by the QoS).
            assert!(!got.is_empty(), "best-effort {topic} not recorded");
            assert!(got.iter().all(|r| sent.iter().any(|s| same_cdr(&r.payload, s))), "{topic}: bytes differ");
            continue;
        }
        assert_eq!(got.len(), sent.len(), "{topic}: lost messages");
        if let Some(i) = (0..sent.len()).find(|&i| !same_cdr(&got[i].payload, &sent[i])) {
            panic!(
                "{topic} #{i}: recorded CDR differs from what rclpy serialized:\n recorded {:02x?}\n sent     {:02x?}",
                got[i].payload, sent[i]
            );
        }
    }
    eprintln!("recorded: {}", report.join(", "));
    // Every kind of topic was there: build-time types, a type outside r2r's filter,
    // transient local (published before the recorder existed), and a topic created mid-run.
    assert_eq!(published.by_topic["/robot1/imu"].len(), COUNT);
    assert_eq!(published.by_topic["/robot2/map_tl"].len(), TRANSIENT_COUNT);
    assert_eq!(published.by_topic["/robot2/late"].len(), LATE_COUNT);
    assert_eq!(published.types["/robot1/odom"], "nav_msgs/msg/Odometry");
    let odom = by_name["/robot1/odom"];
    assert!(odom.definition.contains("\nMSG: geometry_msgs/PoseWithCovariance\n"), "{}", odom.definition);
    assert!(by_name["/robot2/map_tl"].qos.contains("durability: transient_local"));
    assert!(by_name["/robot1/scan_be"].qos.contains("reliability: best_effort"));
    // Re-announced with the QoS it is recorded with after the best-effort publisher joined.
    let qos_change = &by_name["/robot1/qos_change"].qos;
    assert!(qos_change.contains("reliability: best_effort\ndurability: volatile"), "{qos_change}");
    assert!(
        published.qos_up_match_s.is_some(),
        "/robot2/qos_up: a reliable transient-local publisher replaced the best-effort one, but ingest never \
         re-subscribed reliable transient local"
    );
    let qos_up = &by_name["/robot2/qos_up"].qos;
    assert!(qos_up.contains("reliability: reliable\ndurability: transient_local"), "{qos_up}");
    assert!(
        published.qos_match_s.is_some(),
        "the best-effort publisher that joined /robot1/qos_change was never matched: ingest did not re-subscribe"
    );
    let late = published.late_match_s.expect("late topic created");
    eprintln!("late topic subscribed {late:.3} s after it was created");
    assert!(late < 1.0, "a topic created mid-run must be recorded within 1 s (took {late:.3} s)");
}

/// `/robot1/qos_change`: a reliable transient-local publisher (with history from before the
/// recorder existed), joined halfway by a best-effort one. Everything sent while the topic had
/// only the reliable publisher is recorded, byte exact and in order; after the join the reader
/// is best effort (loss is allowed by the QoS, but not duplicates), and the best-effort
/// publisher's messages are recorded too.
fn check_qos_change(topic: &str, got: &[Received], sent: &[Vec<u8>]) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let joined_at = sent.iter().position(|s| text(s).contains("qos best effort")).expect("best-effort publisher sent");
    // The reliable message of the iteration that created the best-effort publisher went out
    // before it: everything up to there was published to a reliable reader only.
    let before = &sent[..joined_at - 1];
    assert!(got.len() >= before.len(), "{topic}: {} recorded, {} sent before the join", got.len(), before.len());
    for (i, s) in before.iter().enumerate() {
        assert!(same_cdr(&got[i].payload, s), "{topic} #{i}: recorded {:?}, sent {:?}", text(&got[i].payload), text(s));
    }
    let mut seen = std::collections::HashSet::new();
    for r in got {
        let i = sent.iter().position(|s| same_cdr(&r.payload, s));
        let i = i.unwrap_or_else(|| panic!("{topic}: recorded bytes never sent: {:?}", text(&r.payload)));
        assert!(seen.insert(i), "{topic}: {:?} recorded twice (re-subscription duplicated it)", text(&sent[i]));
    }
    let best_effort = got.iter().filter(|r| text(&r.payload).contains("qos best effort")).count();
    assert!(best_effort > 0, "{topic}: no message of the best-effort publisher recorded");
    eprintln!("{topic}: {} of {} recorded ({best_effort} from the best-effort publisher)", got.len(), sent.len());
}

/// `/robot2/qos_up`: a best-effort publisher, replaced halfway by a reliable transient-local one
/// that publishes a few messages at once (before ingest re-subscribes), then more once ingest's
/// subscription is reliable and transient local. Every message of the reliable publisher is
/// recorded exactly once (those sent before the re-subscription come from its history); of the
/// best-effort phase, some are recorded, none twice.
fn check_qos_up(topic: &str, got: &[Received], sent: &[Vec<u8>]) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut seen = std::collections::HashSet::new();
    for r in got {
        let i = sent.iter().position(|s| same_cdr(&r.payload, s));
        let i = i.unwrap_or_else(|| panic!("{topic}: recorded bytes never sent: {:?}", text(&r.payload)));
        assert!(seen.insert(i), "{topic}: {:?} recorded twice", text(&sent[i]));
    }
    let is_reliable = |s: &[u8]| text(s).contains("qos up history") || text(s).contains("qos up reliable");
    let missing: Vec<String> =
        (0..sent.len()).filter(|&i| is_reliable(&sent[i]) && !seen.contains(&i)).map(|i| text(&sent[i])).collect();
    assert!(
        missing.is_empty(),
        "{topic}: messages of the reliable transient-local publisher not recorded: {missing:?}"
    );
    let reliable = sent.iter().filter(|s| is_reliable(s)).count();
    assert!(reliable > 5, "{topic}: the reliable publisher sent only {reliable}");
    assert!(seen.len() > reliable, "{topic}: nothing of the best-effort phase recorded");
    eprintln!("{topic}: {} of {} recorded ({reliable} from the reliable publisher, all)", got.len(), sent.len());
}
