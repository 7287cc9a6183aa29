//! Robots on separate ROS domains: one `fleetrec-ingest --source ros2` per domain
//! (`ROS_DOMAIN_ID`), both feeding one pipeline. Domain 1 has one robot (`alpha`) whose topics
//! have no namespace; domain 2 has two (`beta`, `gamma`) by namespace. rclpy publishers on each
//! domain publish known values; this test is the pipeline's subscriber and checks that every
//! message arrives byte exact, once, under the right robot (same robot ids in both processes),
//! from the ingest of its domain, with no topic id shared by the two processes, and that a topic
//! under the namespace of a robot of another domain is not recorded.
//!
//! Needs the ROS 2 environment and a network namespace: run through `scripts/test-ros2.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetrec_tests::{drain_messages, TestEnv};
use shared::plane::Plane;
use shared::topic::TopicInfo;

mod ros2_common;
use ros2_common::{ros2_env, same_cdr, unhex, Process};

const COUNT: usize = 100;
const STRAY: &str = "/beta/stray";

/// topic -> (type, messages in publish order)
fn read_published(path: &Path) -> BTreeMap<String, (String, Vec<Vec<u8>>)> {
    let mut p: BTreeMap<String, (String, Vec<Vec<u8>>)> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["done"] == true {
            continue;
        }
        let e = p.entry(v["topic"].as_str().unwrap().to_string()).or_default();
        e.0 = v["type"].as_str().unwrap().to_string();
        e.1.push(unhex(v["hex"].as_str().unwrap()));
    }
    p
}

struct Received {
    robot_id: u16,
    sequence: u64,
    session: u32,
    payload: Vec<u8>,
}

#[test]
#[ignore = "needs ROS 2: run scripts/test-ros2.sh"]
fn ros2_one_ingest_per_domain_feeds_one_pipeline() {
    let (python, script) = ros2_env();
    let env = TestEnv::new(
        "ros2dom",
        "[ingest]\nexclude = \"^/(rosout|parameter_events)$\"\n\n\
         [[robots]]\nname = \"alpha\"\ndomain_id = 1\n\n\
         [[robots]]\nname = \"beta\"\ndomain_id = 2\n\n\
         [[robots]]\nname = \"gamma\"\ndomain_id = 2\n",
    );
    let cfg = env.load();
    let plane = Plane::open("test-subscriber", &cfg.pipeline).unwrap();
    let messages = plane.message_subscriber().unwrap();
    let topics_sub = plane.topic_subscriber().unwrap();
    let dir = env.dir.path();
    let ingest = |domain: u32| Process::ingest(&env.config, domain, dir.join(format!("ingest-d{domain}.log")));
    let mut ingests = [ingest(1), ingest(2)];
    let publisher = |domain: &str, args: &[&str]| {
        let out = dir.join(format!("published-d{domain}.jsonl"));
        let mut cmd = Command::new(&python);
        cmd.arg(&script).args(args).args(["--count", &COUNT.to_string(), "--late-count", "10", "--rate", "100"]);
        cmd.arg("--out").arg(&out).env("ROS_DOMAIN_ID", domain);
        (Process::start(&mut cmd, dir.join(format!("publisher-d{domain}.log"))), out)
    };
    let (mut pub1, out1) = publisher("1", &["--robots", "alpha", "--no-namespace", "--stray", STRAY]);
    let (mut pub2, out2) = publisher("2", &["--robots", "beta,gamma"]);
    let logs = |ingests: &[Process]| ingests.iter().map(|p| p.log_text()).collect::<Vec<_>>().join("\n----\n");

    let mut topics: HashMap<u32, TopicInfo> = HashMap::new();
    let mut received: HashMap<u32, Vec<Received>> = HashMap::new();
    let mut done: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        while let Some(s) = topics_sub.receive().unwrap() {
            let t = TopicInfo::from_json_bytes(s.payload()).unwrap();
            if let Some(old) = topics.get(&t.topic_id) {
                assert_eq!((&old.robot, &old.name), (&t.robot, &t.name), "two topics announced with one id");
            }
            topics.insert(t.topic_id, t);
        }
        let got = drain_messages(&messages, |h, payload| {
            received.entry(h.topic_id).or_default().push(Received {
                robot_id: h.robot_id,
                sequence: h.sequence,
                session: h.ingest_session,
                payload: payload.to_vec(),
            });
        });
        if done.is_none() {
            let (s1, s2) = (pub1.exited(), pub2.exited());
            for (s, p) in [(s1, &pub1), (s2, &pub2)] {
                if let Some(s) = s {
                    assert!(s.success(), "publisher failed: {s}\n{}\ningest:\n{}", p.log_text(), logs(&ingests));
                }
            }
            if s1.is_some() && s2.is_some() {
                done = Some(Instant::now());
            }
        }
        if done.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) && !got {
            break;
        }
        assert!(Instant::now() < deadline, "timed out; ingest logs:\n{}", logs(&ingests));
        if !got {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for p in &mut ingests {
        assert!(p.stop(), "ingest did not stop cleanly:\n{}", p.log_text());
    }

    let robots = ["alpha", "beta", "gamma"];
    let by_name: HashMap<(&str, &str), &TopicInfo> =
        topics.values().map(|t| ((t.robot.as_str(), t.name.as_str()), t)).collect();
    assert_eq!(by_name.len(), topics.len(), "a (robot, topic) announced under two ids");
    let mut sessions: HashMap<&str, HashSet<u32>> = HashMap::new();
    let mut report = Vec::new();
    for (out, domain) in [(&out1, 1), (&out2, 2)] {
        for (topic, (type_name, sent)) in read_published(out) {
            if topic == STRAY {
                assert!(!topics.values().any(|t| t.name == STRAY), "{STRAY} (beta's namespace) recorded from domain 1");
                continue;
            }
            // Domain 1's robot is alone there: its topics have no namespace.
            let robot = if domain == 1 { "alpha" } else { topic.split('/').nth(1).unwrap() };
            let t = by_name
                .get(&(robot, topic.as_str()))
                .unwrap_or_else(|| panic!("{topic} (domain {domain}) not recorded for {robot}; {:?}", by_name.keys()));
            assert_eq!(t.type_name, type_name, "{topic}");
            let robot_id = robots.iter().position(|r| *r == robot).unwrap() as u16;
            assert_eq!(t.robot_id, robot_id, "{topic}: robot ids must agree across the ingest processes");
            let got = received.get(&t.topic_id).map(Vec::as_slice).unwrap_or_default();
            report.push(format!("{robot}{topic}: {} of {}", got.len(), sent.len()));
            for (i, r) in got.iter().enumerate() {
                if !topic.ends_with("/scan_be") {
                    assert_eq!(r.sequence, i as u64 + 1, "{topic}: sequence gap (dropped in ingest)");
                }
                assert_eq!(r.robot_id, robot_id, "{topic}");
                sessions.entry(if domain == 1 { "d1" } else { "d2" }).or_default().insert(r.session);
            }
            if topic.ends_with("/scan_be") {
                assert!(!got.is_empty(), "best-effort {topic} not recorded");
                assert!(got.iter().all(|r| sent.iter().any(|s| same_cdr(&r.payload, s))), "{topic}: bytes differ");
                continue;
            }
            assert_eq!(got.len(), sent.len(), "{topic}: lost messages");
            if let Some(i) = (0..sent.len()).find(|&i| !same_cdr(&got[i].payload, &sent[i])) {
                panic!("{topic} #{i}: recorded {:02x?}\n sent {:02x?}", got[i].payload, sent[i]);
            }
        }
    }
    eprintln!("recorded: {}", report.join(", "));
    // Each domain's messages came from one ingest process, and the two are different processes.
    let (d1, d2) = (&sessions["d1"], &sessions["d2"]);
    assert_eq!((d1.len(), d2.len()), (1, 1), "one ingest session per domain: {d1:?} {d2:?}");
    assert!(d1.is_disjoint(d2), "domain 1 and 2 were recorded by the same ingest process");
    assert!(by_name.contains_key(&("alpha", "/imu")) && by_name.contains_key(&("gamma", "/gamma/map_tl")));
}
