//! Multi-process tests of the recording spine: synthetic ingest as a real process, this test
//! as the subscriber, data checked byte by byte and value by value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fleetrec_tests::{drain_messages, nodes_of_pid, status_json, wait_status, Stage, TestEnv};
use ingest::synthetic::{cdr, values};
use nix::sys::signal::Signal;
use shared::plane::{service_names, Plane};
use shared::topic::TopicInfo;

/// Decodes `payload` as `type_name` and compares it with the value the synthetic source must
/// have produced for (robot, seq, stamp). Returns a description of the first mismatch.
fn check_payload(t: &TopicInfo, seq: u64, stamp: u64, payload: &[u8], size: u32) -> Result<(), String> {
    let r = ingest::synthetic::value_robot(t.robot_id);
    let ok = match t.type_name.as_str() {
        "sensor_msgs/msg/Imu" => cdr::Imu::decode(payload).map_err(|e| e.to_string())? == values::imu(r, seq, stamp),
        "sensor_msgs/msg/LaserScan" => {
            cdr::LaserScan::decode(payload).map_err(|e| e.to_string())?
                == values::laser_scan(r, seq, stamp, size as usize)
        }
        "geometry_msgs/msg/PoseStamped" => {
            cdr::PoseStamped::decode(payload).map_err(|e| e.to_string())? == values::pose_stamped(r, seq, stamp)
        }
        "sensor_msgs/msg/Image" => {
            let m = cdr::Image::decode(payload).map_err(|e| e.to_string())?;
            m == values::image(r, seq, stamp, size, size * 3 / 4)
        }
        "std_msgs/msg/String" => {
            let m = cdr::StringMsg::decode(payload).map_err(|e| e.to_string())?;
            m.data.starts_with(&values::string(r, seq, stamp).data)
        }
        other => return Err(format!("unexpected type {other}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} seq {seq}: decoded value differs from the one sent", t.name))
    }
}

#[test]
fn synthetic_two_robots_arrive_with_right_robot_topic_sequence_and_values() {
    let env = TestEnv::new("spine", "[synthetic]\nrobots = 2\nrate_scale = 4.0\nmax_messages_per_topic = 40\n");
    let cfg = env.load();
    let sizes: HashMap<String, u32> = cfg.synthetic.topics.iter().map(|t| (t.name.clone(), t.size)).collect();
    let plane = Plane::open("test-subscriber", &cfg.pipeline).unwrap();
    let messages = plane.message_subscriber().unwrap();
    let topics_sub = plane.topic_subscriber().unwrap();
    let mut ingest = Stage::start("ingest", &env.config, &["--source", "synthetic"], env.dir.path());

    let mut topics: HashMap<u32, TopicInfo> = HashMap::new();
    let mut last_seq: HashMap<u32, u64> = HashMap::new();
    let mut counts: HashMap<u32, u64> = HashMap::new();
    let mut session = None;
    let expected_total = 2 * 5 * 40;
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < expected_total && Instant::now() < deadline {
        while let Some(s) = topics_sub.receive().unwrap() {
            let t = TopicInfo::from_json_bytes(s.payload()).unwrap();
            assert_eq!(s.user_header().topic_id, t.topic_id);
            assert_eq!(t.topic_id, shared::topic::topic_id(&t.robot, &t.name, &t.type_name));
            // The full definition travels with the topic: own fields plus every dependency.
            let sep = "================================================================================\nMSG: ";
            if t.type_name == "std_msgs/msg/String" {
                assert!(t.definition.ends_with("string data\n"), "{}", t.definition);
            } else {
                assert!(t.definition.contains(sep), "{} lacks its dependencies", t.name);
            }
            topics.insert(t.topic_id, t);
        }
        let Some(sample) = messages.receive().unwrap() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        // A sample is one message or a batch of them: every message arrives whole either way.
        for message in shared::plane::messages_of(sample.user_header(), sample.payload()) {
            let (h, payload) = message.unwrap();
            let t = topics.get(&h.topic_id).unwrap_or_else(|| panic!("message of unannounced topic {}", h.topic_id));
            // Right robot: the robot id, the robot name and the topic namespace agree.
            assert_eq!(h.robot_id, t.robot_id);
            assert_eq!(t.robot, format!("robot{}", h.robot_id + 1));
            assert!(t.name.starts_with(&format!("/{}/", t.robot)), "{} not under /{}/", t.name, t.robot);
            // Sequence: consecutive per topic, starting at 1, one ingest session.
            assert_eq!(*session.get_or_insert(h.ingest_session), h.ingest_session);
            let prev = last_seq.insert(h.topic_id, h.sequence).unwrap_or(0);
            assert_eq!(h.sequence, prev + 1, "gap on {}", t.name);
            assert_eq!(h.payload_len as usize, payload.len());
            assert!(h.receive_time_ns >= h.publish_time_ns && h.publish_time_ns > 0);
            // CDR bytes decode to exactly the values sent.
            let short = t.name.splitn(3, '/').nth(2).unwrap();
            check_payload(t, h.sequence, h.publish_time_ns, payload, sizes[short]).unwrap();
            *counts.entry(h.topic_id).or_default() += 1;
            total += 1;
        }
    }
    assert_eq!(total, expected_total, "received {total} of {expected_total}; counts {counts:?}");
    assert_eq!(topics.len(), 10);
    assert!(counts.values().all(|c| *c == 40), "{counts:?}");
    let robots: std::collections::BTreeSet<_> = topics.values().map(|t| t.robot.clone()).collect();
    assert_eq!(robots.into_iter().collect::<Vec<_>>(), vec!["robot1", "robot2"]);
    ingest.signal(Signal::SIGTERM);
    assert!(ingest.wait(Duration::from_secs(10)).success());
}

#[test]
fn ingest_counts_drops_when_no_writer_and_never_blocks() {
    let env = TestEnv::new("drops", "[synthetic]\nrobots = 2\nrate_scale = 2.0\n");
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    // Nobody subscribes to messages: every message is counted as dropped, none delivered,
    // and ingest keeps its rate (it does not wait on the absent writer).
    let v = wait_status("ingest", &env.config, Duration::from_secs(20), |v| v["dropped"].as_u64() > Some(500));
    assert_eq!(v["messages"], 0);
    let robots = v["robots"].as_array().unwrap();
    assert_eq!(robots.len(), 2);
    for r in robots {
        assert!(r["dropped"].as_u64().unwrap() > 100, "{r}");
    }
    let topics = v["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 10);
    for t in topics {
        assert_eq!(t["dropped"], t["last_sequence"], "every sequence number of {t} was dropped and counted");
    }
    ingest.signal(Signal::SIGTERM);
    assert!(ingest.wait(Duration::from_secs(10)).success());
}

#[test]
fn sigkill_then_restart_needs_no_manual_cleanup() {
    let env = TestEnv::new("kill", "[synthetic]\nrobots = 2\n");
    let cfg = env.load();
    let plane = Plane::open("test-subscriber", &cfg.pipeline).unwrap();
    let messages = plane.message_subscriber().unwrap();

    let mut first = Stage::start("ingest", &env.config, &[], env.dir.path());
    let v = wait_status("ingest", &env.config, Duration::from_secs(20), |v| v["messages"].as_u64() > Some(50));
    assert_eq!(v["pid"], first.pid());
    let mut first_session = None;
    drain_messages(&messages, |h, _| first_session = Some(h.ingest_session));
    first.signal(Signal::SIGKILL);
    let status = first.wait(Duration::from_secs(10));
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    let killed_pid = v["pid"].as_u64().unwrap() as u32;
    assert_eq!(nodes_of_pid(killed_pid).0, 0, "killed process has no alive node");

    // Start again with no cleanup step: the new process cleans the dead node and publishes.
    let second = Stage::start("ingest", &env.config, &[], env.dir.path());
    let v = wait_status("ingest", &env.config, Duration::from_secs(20), |v| {
        v["pid"].as_u64() == Some(u64::from(second.pid())) && v["messages"].as_u64() > Some(20)
    });
    assert_eq!(v["robots"].as_array().unwrap().len(), 2);
    assert_eq!(nodes_of_pid(killed_pid), (0, 0), "stale node of the killed process was removed");
    // The subscriber that lived through the crash receives the new session from sequence 1.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen_new = None;
    while Instant::now() < deadline && seen_new.is_none() {
        match messages.receive().unwrap() {
            Some(s) => {
                let mut ms = shared::plane::messages_of(s.user_header(), s.payload()).map(|m| m.unwrap().0);
                seen_new = ms.find(|h| Some(h.ingest_session) != first_session);
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let h = seen_new.expect("messages from the restarted ingest");
    assert!(h.sequence >= 1);
    assert_eq!(h.flags, 0, "a message, not a batch header");
    drop(second);
}

#[test]
fn sigterm_leaves_no_stale_iceoryx2_resources() {
    let env = TestEnv::new("term", "[synthetic]\nrobots = 2\n");
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    let v = wait_status("ingest", &env.config, Duration::from_secs(20), |v| v["dropped"].as_u64() > Some(10));
    let pid = v["pid"].as_u64().unwrap() as u32;
    assert_eq!(nodes_of_pid(pid), (1, 0));
    assert!(shared::plane::service_exists(&service_names::messages(&env.pipeline)));
    ingest.signal(Signal::SIGTERM);
    let status = ingest.wait(Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}\n{}", ingest.log_text());
    // No node of the process, alive or dead, and none of its services remain.
    assert_eq!(nodes_of_pid(pid), (0, 0));
    for name in [
        service_names::messages(&env.pipeline),
        service_names::topics(&env.pipeline),
        service_names::status(&env.pipeline, shared::plane::Stage::Ingest),
        shared::control::service_name(&env.pipeline, shared::plane::Stage::Ingest),
    ] {
        assert!(!shared::plane::service_exists(&name), "{name} still exists after SIGTERM");
    }
    let (code, v) = status_json("ingest", &env.config);
    assert_eq!(code, 1, "status of a stopped stage exits 1: {v}");
    assert_eq!(v["running"], false);
}
