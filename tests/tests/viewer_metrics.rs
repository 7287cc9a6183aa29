//! The viewer's Prometheus endpoint with a pipeline running (writer + synthetic ingest): the
//! exposition text parses, carries the expected metric names, and its values agree with the
//! stages' own status; stages that are not running are reported down. Also the headless
//! binary's `--json` snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetrec_tests::{bin, status_json, wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use viewer::metrics::MetricsServer;
use viewer::Dashboard;

/// One sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses the Prometheus text exposition format (0.0.4): `# HELP`/`# TYPE` lines and samples
/// `name{label="value",...} number`, with `\\`, `\"` and `\n` escapes in label values.
fn parse_exposition(text: &str) -> (Vec<Sample>, HashMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(["counter", "gauge"].contains(&kind), "bad type line: {line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let name_end = line.find(['{', ' ']).expect("sample line");
        let name = &line[..name_end];
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name {name:?}");
        let mut labels = Vec::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut key = String::new();
            let end;
            loop {
                let (i, c) = chars.next().expect("unterminated labels");
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "label value must be quoted: {line}");
                        let mut value = String::new();
                        loop {
                            let (_, c) = chars.next().expect("unterminated label value");
                            match c {
                                '\\' => match chars.next().expect("escape").1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            }
            rest = &r[end..];
        }
        let value: f64 = rest.trim().parse().unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        assert!(types.contains_key(name), "sample before its # TYPE line: {line}");
        samples.push((name.to_string(), labels, value));
    }
    (samples, types)
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name && l.len() == labels.len() && labels.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.2)
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

#[test]
fn prometheus_metrics_match_status_and_headless_json() {
    // The upload endpoint: a port that accepts connections, for the latency probe.
    let endpoint = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = endpoint.local_addr().unwrap().to_string();
    let env =
        TestEnv::new("viewer-metrics", &format!("[synthetic]\nrobots = 2\n\n[sync]\nendpoint = \"http://{target}\"\n"));
    let config = env.load();
    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |w| w["messages"].as_u64() > Some(200));

    let mut dashboard = Dashboard::attach(&config).unwrap();
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap()).unwrap();

    let (_, ingest_before) = status_json("ingest", &env.config);
    let (_, writer_before) = status_json("writer", &env.config);
    // Tick until both stages are seen up with their topics (the first poll may precede a status).
    let deadline = Instant::now() + Duration::from_secs(30);
    let snap = loop {
        let snap = dashboard.tick();
        let ready = snap.stage("ingest").is_some_and(|s| s.up)
            && snap.stage("writer").is_some_and(|s| s.up)
            && snap.topics.iter().filter(|t| t.ingest.is_some() && t.writer.is_some()).count() >= 10
            && snap.system.as_ref().is_some_and(|s| {
                s.cpu_percent.is_some() && s.recording_bytes.is_some() && s.endpoint_latency.is_some()
            });
        if ready {
            break snap;
        }
        assert!(Instant::now() < deadline, "viewer never saw both stages up: {}", snap.to_json());
        std::thread::sleep(Duration::from_millis(50));
    };
    server.publish(&snap);
    let text = scrape(server.addr());
    let (_, ingest_after) = status_json("ingest", &env.config);
    let (_, writer_after) = status_json("writer", &env.config);

    let (samples, types) = parse_exposition(&text);
    for name in [
        "fleetrec_stage_up",
        "fleetrec_stage_state",
        "fleetrec_stage_messages_total",
        "fleetrec_stage_dropped_total",
        "fleetrec_stage_queue_depth",
        "fleetrec_messages_total",
        "fleetrec_bytes_total",
        "fleetrec_dropped_total",
        "fleetrec_topic_messages_total",
        "fleetrec_topic_durable_lag_messages",
    ] {
        assert!(types.contains_key(name), "missing # TYPE of {name}:\n{text}");
        assert!(samples.iter().any(|s| s.0 == name), "no sample of {name}:\n{text}");
    }
    assert_eq!(types["fleetrec_messages_total"], "counter");
    assert_eq!(types["fleetrec_stage_up"], "gauge");

    assert_eq!(get(&samples, "fleetrec_stage_up", &[("stage", "ingest")]), Some(1.0));
    assert_eq!(get(&samples, "fleetrec_stage_up", &[("stage", "writer")]), Some(1.0));
    assert_eq!(get(&samples, "fleetrec_stage_up", &[("stage", "uploader")]), Some(0.0));
    assert_eq!(get(&samples, "fleetrec_stage_up", &[("stage", "exporter")]), Some(0.0));
    assert_eq!(get(&samples, "fleetrec_stage_state", &[("stage", "writer"), ("state", "running")]), Some(1.0));
    assert_eq!(get(&samples, "fleetrec_stage_messages_total", &[("stage", "uploader")]), None, "down: no counters");

    // Counters grow: what was scraped lies between the status read before and the one after.
    let between = |name: &str, labels: &[(&str, &str)], before: &serde_json::Value, after: &serde_json::Value| {
        let v = get(&samples, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?}:\n{text}"));
        let (b, a) = (before.as_u64().unwrap() as f64, after.as_u64().unwrap() as f64);
        assert!(b <= v && v <= a, "{name}{labels:?} = {v}, status before {b}, after {a}");
        v
    };
    between(
        "fleetrec_stage_messages_total",
        &[("stage", "ingest")],
        &ingest_before["messages"],
        &ingest_after["messages"],
    );
    between(
        "fleetrec_stage_messages_total",
        &[("stage", "writer")],
        &writer_before["messages"],
        &writer_after["messages"],
    );
    between("fleetrec_stage_bytes_total", &[("stage", "writer")], &writer_before["bytes"], &writer_after["bytes"]);
    let robots = ingest_after["robots"].as_array().unwrap();
    assert_eq!(robots.len(), 2);
    for (i, r) in robots.iter().enumerate() {
        let robot = r["name"].as_str().unwrap();
        assert_eq!(robot, format!("robot{}", i + 1));
        let labels = [("stage", "ingest"), ("robot", robot)];
        let m = between("fleetrec_messages_total", &labels, &ingest_before["robots"][i]["messages"], &r["messages"]);
        assert!(m > 0.0);
        between("fleetrec_dropped_total", &labels, &ingest_before["robots"][i]["dropped"], &r["dropped"]);
        // Per-topic counters add up to the robot's.
        let topic_sum: f64 = samples
            .iter()
            .filter(|(n, l, _)| {
                n == "fleetrec_topic_messages_total"
                    && l.iter().any(|(k, v)| k == "stage" && v == "ingest")
                    && l.iter().any(|(k, v)| k == "robot" && v == robot)
            })
            .map(|s| s.2)
            .sum();
        assert_eq!(topic_sum, m, "topics of {robot} add up to the robot's messages");
    }
    let imu = get(
        &samples,
        "fleetrec_topic_messages_total",
        &[("stage", "writer"), ("robot", "robot1"), ("topic", "/robot1/imu")],
    )
    .expect("writer's /robot1/imu");
    assert!(imu > 0.0);
    // The durable lag is never negative and is bounded by what ingest has sent.
    let lag = get(&samples, "fleetrec_topic_durable_lag_messages", &[("robot", "robot1"), ("topic", "/robot1/imu")])
        .expect("lag of /robot1/imu");
    assert!(lag >= 0.0 && lag <= imu + 1000.0, "lag {lag}");

    // Status ages, and the last message age of every topic that has messages.
    assert!(get(&samples, "fleetrec_stage_status_age_seconds", &[("stage", "writer")]).is_some(), "{text}");
    assert_eq!(get(&samples, "fleetrec_stage_status_age_seconds", &[("stage", "uploader")]), None, "never seen");
    for t in snap.topics.iter().filter(|t| t.incoming().is_some_and(|c| c.messages > 0)) {
        let labels = [("robot", t.robot.as_str()), ("topic", t.name.as_str())];
        assert!(get(&samples, "fleetrec_topic_last_message_age_seconds", &labels).is_some(), "{}: {text}", t.name);
    }
    // No uploader: no sync families.
    assert!(!samples.iter().any(|s| s.0.starts_with("fleetrec_sync_")), "{text}");

    // System diagnostics: memory, the recording filesystem (agreeing with statvfs within 1 GB:
    // others write to the same disk), the recording directory, the endpoint latency.
    let mem_total = get(&samples, "fleetrec_system_memory_total_bytes", &[]).expect("memory total");
    let mem_used = get(&samples, "fleetrec_system_memory_used_bytes", &[]).expect("memory used");
    assert!(mem_total > 0.0 && mem_used <= mem_total, "{mem_used} of {mem_total}");
    let cpu = get(&samples, "fleetrec_system_cpu_percent", &[]).expect("cpu");
    assert!((0.0..=100.0).contains(&cpu), "cpu {cpu}");
    let disk = snap.system.as_ref().and_then(|s| s.disk.clone()).expect("the recording directory's filesystem");
    let mount = [("mount", disk.mount.as_str())];
    let avail = get(&samples, "fleetrec_storage_available_bytes", &mount).expect("available");
    let total = get(&samples, "fleetrec_storage_total_bytes", &mount).expect("total");
    let vfs = nix::sys::statvfs::statvfs(&config.storage.path).unwrap();
    let vfs_avail = vfs.blocks_available() as f64 * vfs.fragment_size() as f64;
    let vfs_total = vfs.blocks() as f64 * vfs.fragment_size() as f64;
    assert!((avail - vfs_avail).abs() < 1e9, "available {avail} vs statvfs {vfs_avail}");
    assert!((total - vfs_total).abs() < 1e9, "total {total} vs statvfs {vfs_total}");
    let rec = get(&samples, "fleetrec_recording_dir_bytes", &[]).expect("recording dir bytes");
    assert!(rec > 0.0, "the writer has written segments: {rec}");
    assert_eq!(get(&samples, "fleetrec_endpoint_up", &[("target", target.as_str())]), Some(1.0), "{text}");
    let connect = get(&samples, "fleetrec_endpoint_connect_seconds", &[("target", target.as_str())]);
    assert!(connect.is_some_and(|c| c >= 0.0), "{text}");
    drop(endpoint);

    // Killing ingest: the viewer reports it down within a few status intervals.
    ingest.signal(Signal::SIGKILL);
    ingest.wait(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = dashboard.tick();
        server.publish(&snap);
        let (samples, _) = parse_exposition(&scrape(server.addr()));
        if get(&samples, "fleetrec_stage_up", &[("stage", "ingest")]) == Some(0.0) {
            assert_eq!(get(&samples, "fleetrec_stage_up", &[("stage", "writer")]), Some(1.0));
            break;
        }
        assert!(Instant::now() < deadline, "ingest never reported down");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    drop(dashboard);

    // The binary: --headless --json prints one parseable snapshot per line.
    let out = Command::new(bin("viewer"))
        .arg("--config")
        .arg(&env.config)
        .args(["--headless", "--json", "--count", "3", "--interval-ms", "100"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let last = &lines[2];
    assert_eq!(last["pipeline"], env.pipeline.as_str());
    let writer_json = last["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "writer").unwrap();
    assert_eq!(writer_json["up"], true, "{last}");
    assert!(writer_json["messages"].as_u64() > Some(200), "{last}");
    let ingest_json = last["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "ingest").unwrap();
    assert_eq!(ingest_json["up"], false, "{last}");

    writer.signal(Signal::SIGTERM);
    assert!(writer.wait(Duration::from_secs(20)).success());
}
