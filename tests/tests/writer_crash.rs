//! Crash test: with synthetic ingest running, SIGKILL the writer at random instants N times
//! (`FLEETREC_CRASH_ITERATIONS`, default 20; `scripts/soak-writer-crash.sh` runs 200). After
//! each restart the writer recovers; at the end every record at or below each durable watermark
//! seen before a kill is on disk, intact, and decodes to the values ingest sent, and no record
//! that fails its CRC is ever returned by the reader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use fleetrec_tests::{wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use shared::segment::{scan, Record, ScanMode};
use shared::topic::TopicInfo;

/// Tiny deterministic generator (no extra crates): xorshift seeded from the env or the pid.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// (topic id, ingest session) -> durable sequence, from the writer's status JSON.
fn watermarks(v: &serde_json::Value) -> HashMap<(u32, u32), u64> {
    v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (t["topic_id"].as_u64().unwrap() as u32, t["ingest_session"].as_u64().unwrap() as u32),
                t["durable_sequence"].as_u64().unwrap(),
            )
        })
        .filter(|(_, w)| *w > 0)
        .collect()
}

#[test]
fn sigkill_writer_at_random_instants_loses_nothing_below_the_watermark() {
    let iterations: usize = std::env::var("FLEETREC_CRASH_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("FLEETREC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9 ^ u64::from(std::process::id()));
    eprintln!("crash test: {iterations} iterations, seed {seed}");
    let mut rng = Rng(seed | 1);
    let env = TestEnv::new("crash", "");
    let text = format!(
        "[pipeline]\nname = \"{}\"\nstatus_interval_ms = 50\nbackpressure_timeout_us = 20000\n\n[storage]\npath = \"{}\"\nwal_segment_size = 262144\ncommit_interval_ms = 5\n\n[synthetic]\nrobots = 2\nrate_scale = 2.0\n",
        env.pipeline,
        env.dir.path().join("recordings").display()
    );
    std::fs::write(&env.config, text).unwrap();
    let cfg = env.load();

    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());

    // Every watermark seen before a kill: (topic, session, durable sequence).
    let mut promised: Vec<(u32, u32, u64)> = Vec::new();
    for i in 0..iterations {
        let pid = writer.pid();
        // Let it write for a while (at least until it reports a watermark), then capture the
        // newest watermark and kill at a random instant after it.
        let v = wait_status("writer", &env.config, Duration::from_secs(30), |v| {
            v["pid"].as_u64() == Some(u64::from(pid)) && !watermarks(v).is_empty()
        });
        std::thread::sleep(Duration::from_millis(rng.next() % 300));
        let v = wait_status("writer", &env.config, Duration::from_secs(30), |w| {
            w["pid"].as_u64() == Some(u64::from(pid)) && w["updated_ns"].as_u64() >= v["updated_ns"].as_u64()
        });
        std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
        writer.signal(Signal::SIGKILL);
        writer.wait(Duration::from_secs(10));
        promised.extend(watermarks(&v).into_iter().map(|((topic, session), w)| (topic, session, w)));
        eprintln!("kill {i}: {} watermarks", promised.len());
        writer = Stage::start("writer", &env.config, &[], env.dir.path());
    }
    ingest.signal(Signal::SIGTERM);
    assert!(ingest.wait(Duration::from_secs(20)).success(), "{}", ingest.log_text());
    writer.signal(Signal::SIGTERM);
    assert!(writer.wait(Duration::from_secs(30)).success(), "{}", writer.log_text());

    // Read everything back with the shared reader.
    let mut topics: HashMap<u32, TopicInfo> = HashMap::new();
    // Per writer lifetime (segment session id), topic and ingest session: the sequences on disk.
    let mut lifetimes: BTreeMap<([u8; 16], u32, u32), BTreeSet<u64>> = BTreeMap::new();
    let mut all: BTreeSet<(u32, u32, u64)> = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&cfg.storage.path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    assert!(files.len() > iterations, "expected a segment per writer lifetime at least: {}", files.len());
    let mut checked = 0u64;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let report = scan(&bytes, ScanMode::SkipCorrupt).unwrap();
        assert!(report.corrupt.is_empty(), "{}: corrupt records {:?}", f.display(), report.corrupt);
        assert!(report.sealed, "{} not sealed after recovery", f.display());
        for r in &report.records {
            match Record::decode(r).unwrap() {
                Record::Topic(t) => {
                    topics.insert(t.topic_id, t);
                }
                Record::Message(m) => {
                    let t = topics.get(&m.header.topic_id).expect("definition precedes messages in the segment");
                    let h = &m.header;
                    assert!(
                        all.insert((h.topic_id, h.ingest_session, h.sequence)),
                        "duplicate record {} seq {}",
                        t.name,
                        h.sequence
                    );
                    lifetimes
                        .entry((report.header.session_id, h.topic_id, h.ingest_session))
                        .or_default()
                        .insert(h.sequence);
                    let short = t.name.splitn(3, '/').nth(2).unwrap();
                    let spec = cfg.synthetic.topics.iter().find(|s| s.name == short).unwrap();
                    let expected =
                        ingest::synthetic::encode(spec, t.robot_id, m.header.sequence, m.header.publish_time_ns);
                    assert_eq!(m.payload, &expected[..], "{} seq {} payload differs", t.name, m.header.sequence);
                    checked += 1;
                }
                _ => {}
            }
        }
    }
    assert!(checked > 0);
    // Within one writer lifetime, what is on disk for a topic is a contiguous run: the writer
    // received the sequences in order (ingest counted no drops at this load), and a crash only
    // ever cuts a suffix. So each run holds every sequence from its first one up to its last.
    for ((_, topic, _), seqs) in &lifetimes {
        let (first, last) = (*seqs.first().unwrap(), *seqs.last().unwrap());
        assert_eq!(
            seqs.len() as u64,
            last - first + 1,
            "topic {topic}: gap inside one writer lifetime {first}..={last}"
        );
    }
    // Every watermark promised before a kill is backed by its record, and (by the run property
    // above) by every record of that lifetime below it.
    assert!(promised.len() >= iterations, "a watermark before each kill: {}", promised.len());
    for (topic, session, w) in &promised {
        assert!(
            all.contains(&(*topic, *session, *w)),
            "topic {topic} session {session}: watermark {w} promised but record missing"
        );
    }
    eprintln!("checked {checked} records in {} segments; {} watermarks held", files.len(), promised.len());
}
