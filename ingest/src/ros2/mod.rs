//! The ROS 2 source (cargo feature `ros2`): records every topic of the ROS graph as raw CDR.
//!
//! - Discovery: r2r's graph queries (`get_topic_names_and_types`) every
//!   [`DISCOVERY_INTERVAL`], across all namespaces; a new topic is subscribed on the next poll.
//! - Routing: namespace -> robot, include/exclude regexes ([`robots`]).
//! - Any type: type support loaded at run time, serialized takes ([`serialized`]); a type
//!   whose support is missing is reported once, with the package to install.
//! - QoS adapted to the topic's publishers ([`qos`]) when subscribing, and checked again on
//!   discovery polls (round robin, [`QOS_CHECKS_PER_POLL`] topics per poll): when the publishers change so that another QoS is needed (a
//!   best-effort publisher joins a reliable topic, a transient-local one replaces a volatile
//!   one, ...), the subscription is replaced without losing or duplicating messages
//!   ([`SerializedNode::replace`]); each replacement is logged and counted, and the topic is
//!   announced again with the new QoS. Definitions in
//!   rosbag2's `ros2msg` form ([`definition`]) are announced with the topic.
//! - One thread: it waits on an rcl wait set, drains every ready subscription and forwards each
//!   message with [`Forwarder::forward`], which never blocks past the pipeline's bound and
//!   counts what it could not deliver, per topic. Nothing is queued in between.
//!
//! One process records one ROS domain (`ROS_DOMAIN_ID`, default 0) and only the robots of that
//! domain ([`robots`]); robots on separate domains run one ingest each, all feeding the same
//! writer. The processes agree on robot ids (indexes into the configured robot list), and topic
//! ids of a domain other than 0 are scoped by the domain ([`Forwarder::set_topic_id_scope`]),
//! so the same topic name on two domains never shares an id.

pub mod definition;
pub mod qos;
pub mod robots;
pub mod serialized;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use shared::config::Config;
use shared::control::{ControlReply, ControlServer};
use shared::plane::{ControlCommand, Plane, PlaneError, Stage, StageState};

use crate::forward::{Forwarder, TopicHandle};
use definition::DefinitionResolver;
use robots::{DomainIdError, FilterError, RobotMap, Route};
use serialized::{SerializedNode, SubscriptionId, Taken};

/// How often the ROS graph is polled for new topics.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(250);
/// Most recorded topics whose publishers' QoS is re-read per discovery poll (round robin), so a
/// graph with hundreds of topics does not keep the ingest thread from taking messages: with N
/// topics each is re-checked every `ceil(N / QOS_CHECKS_PER_POLL)` polls.
pub const QOS_CHECKS_PER_POLL: usize = 32;
/// The longest single wait on the middleware (control requests are read in between).
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Why the ROS 2 source stopped.
#[derive(Debug, thiserror::Error)]
pub enum Ros2Error {
    /// Shared memory.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// A bad include/exclude regex.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A bad `ROS_DOMAIN_ID`.
    #[error(transparent)]
    Domain(#[from] DomainIdError),
    /// r2r (context, graph node).
    #[error("ros 2: {0}")]
    R2r(#[from] r2r::Error),
    /// rcl (recording node, wait set).
    #[error(transparent)]
    Rcl(#[from] serialized::RclError),
}

struct Recorded {
    type_name: String,
    subscription: SubscriptionId,
    handle: TopicHandle,
    qos: r2r::QosProfile,
}

/// Forwards one taken message (drops are counted per topic by the forwarder), after counting
/// the messages the middleware lost before it as dropped.
fn forward_taken(fwd: &mut Forwarder, handle: TopicHandle, msg: Taken<'_>) {
    if msg.lost_before > 0 {
        fwd.count_lost(handle, msg.lost_before);
    }
    if msg.recovered {
        fwd.count_recovered(handle);
    }
    let stamp = if msg.source_timestamp_ns > 0 {
        msg.source_timestamp_ns
    } else if msg.received_timestamp_ns > 0 {
        msg.received_timestamp_ns
    } else {
        shared::time::now_ns()
    };
    let _ = fwd.forward(handle, stamp, msg.bytes);
}

/// Discovery state and the subscriptions of one ingest process.
pub struct Ros2Source {
    robots: RobotMap,
    graph: r2r::Node,
    node: SerializedNode,
    definitions: DefinitionResolver,
    topics: HashMap<String, Recorded>,
    by_subscription: Vec<TopicHandle>,
    skipped: HashSet<String>,
    failed_types: HashSet<String>,
    qos_changes: u64,
    redelivered: u64,
    qos_cursor: usize,
}

impl std::fmt::Debug for Ros2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ros2Source").field("topics", &self.topics.len()).finish()
    }
}

impl Ros2Source {
    /// Creates the graph node (r2r) and the recording node (rcl).
    pub fn new(robots: RobotMap) -> Result<Ros2Source, Ros2Error> {
        let ctx = r2r::Context::create()?;
        let graph = r2r::Node::create(ctx, "fleetrec_ingest_graph", "")?;
        let node = SerializedNode::new("fleetrec_ingest")?;
        Ok(Ros2Source {
            robots,
            graph,
            node,
            definitions: DefinitionResolver::from_env(),
            topics: HashMap::new(),
            by_subscription: Vec::new(),
            skipped: HashSet::new(),
            failed_types: HashSet::new(),
            qos_changes: 0,
            redelivered: 0,
            qos_cursor: 0,
        })
    }

    /// How many subscriptions were replaced because their publishers' QoS changed.
    pub fn qos_changes(&self) -> u64 {
        self.qos_changes
    }

    /// Messages a replacement subscription received again and skipped (already recorded).
    pub fn redelivered(&self) -> u64 {
        self.redelivered
    }

    /// Number of recorded topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Polls the graph once, subscribes to every new topic that has publishers, and adapts the
    /// subscriptions whose publishers now need another QoS. Messages taken while replacing a
    /// subscription are forwarded unless `paused`.
    pub fn discover(&mut self, fwd: &mut Forwarder, paused: bool) {
        let names = match self.graph.get_topic_names_and_types() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "graph query failed; retrying");
                return;
            }
        };
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        for (topic, types) in names {
            if self.topics.contains_key(&topic) || self.skipped.contains(&topic) {
                continue;
            }
            let robot_id = match self.robots.route(&topic) {
                Route::Record(id) => id,
                Route::Skip => {
                    tracing::info!(topic, "not recorded (include/exclude)");
                    self.skipped.insert(topic);
                    continue;
                }
                Route::OtherDomain(id) => {
                    let robot = fwd.robots().get(usize::from(id)).cloned().unwrap_or_default();
                    tracing::info!(
                        topic,
                        robot,
                        domain = self.robots.domain_id(),
                        "not recorded here: its robot is configured on another ROS domain"
                    );
                    self.skipped.insert(topic);
                    continue;
                }
            };
            let Some(type_name) = types.first().cloned() else { continue };
            if types.len() > 1 {
                tracing::warn!(topic, ?types, "topic has several types; recording the first");
            }
            if self.failed_types.contains(&type_name) {
                continue;
            }
            self.subscribe(fwd, robot_id, &topic, &type_name);
        }
        self.adapt_qos(fwd, paused);
    }

    /// Re-reads the publishers of the next [`QOS_CHECKS_PER_POLL`] recorded topics and replaces
    /// a subscription whose QoS no longer fits them (reliability or durability differ from what
    /// [`qos::adapt`] picks).
    fn adapt_qos(&mut self, fwd: &mut Forwarder, paused: bool) {
        let mut topics: Vec<String> = self.topics.keys().cloned().collect();
        topics.sort();
        let n = topics.len();
        let start = if n == 0 { 0 } else { self.qos_cursor % n };
        let batch: Vec<String> = topics.into_iter().cycle().skip(start).take(n.min(QOS_CHECKS_PER_POLL)).collect();
        self.qos_cursor = start + batch.len();
        for topic in batch {
            let publishers = match self.graph.get_publishers_info_by_topic(&topic, false) {
                Ok(p) if !p.is_empty() => p,
                // Publishers gone (or the query failed): keep the subscription as it is.
                _ => continue,
            };
            let offered: Vec<_> = publishers.into_iter().map(|p| p.qos_profile).collect();
            let wanted = qos::adapt(&offered);
            let Some(rec) = self.topics.get_mut(&topic) else { continue };
            if qos::same_policies(&rec.qos, &wanted) {
                continue;
            }
            let handle = rec.handle;
            let replaced = self.node.replace(rec.subscription, wanted.clone().into(), |_, msg| {
                if !paused {
                    forward_taken(fwd, handle, msg);
                }
            });
            match replaced {
                Ok(drained) => {
                    self.qos_changes += 1;
                    tracing::warn!(
                        topic,
                        from = %qos::describe(&rec.qos).replace('\n', " "),
                        to = %qos::describe(&wanted).replace('\n', " "),
                        drained,
                        qos_changes = self.qos_changes,
                        "publishers' QoS changed: subscription replaced"
                    );
                    fwd.update_qos(handle, &qos::describe(&wanted));
                    rec.qos = wanted;
                }
                Err(e) => tracing::error!(topic, error = %e, "cannot re-subscribe with the publishers' QoS; retrying"),
            }
        }
    }

    fn subscribe(&mut self, fwd: &mut Forwarder, robot_id: u16, topic: &str, type_name: &str) {
        let publishers = match self.graph.get_publishers_info_by_topic(topic, false) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(topic, error = %e, "publisher query failed; retrying");
                return;
            }
        };
        if publishers.is_empty() {
            // Only subscribers so far: nothing to adapt QoS to. Checked again next poll.
            return;
        }
        let offered: Vec<_> = publishers.into_iter().map(|p| p.qos_profile).collect();
        let qos = qos::adapt(&offered);
        let id = match self.node.subscribe(topic, type_name, qos.clone().into()) {
            Ok(id) => id,
            Err(serialized::SubscribeError::TypeSupport(e)) => {
                tracing::error!(type_name, topic, error = %e, "cannot record this type; its topics are skipped");
                self.failed_types.insert(type_name.to_string());
                return;
            }
            Err(e) => {
                tracing::error!(topic, error = %e, "cannot subscribe; retrying");
                return;
            }
        };
        let definition = self.definitions.full_definition(type_name).unwrap_or_else(|e| {
            tracing::warn!(type_name, error = %e, "message definition not found; recording without it");
            String::new()
        });
        let handle = fwd.announce(robot_id, topic, type_name, &definition, &qos::describe(&qos));
        debug_assert_eq!(id.0, self.by_subscription.len());
        self.by_subscription.push(handle);
        self.topics.insert(
            topic.to_string(),
            Recorded { type_name: type_name.to_string(), subscription: id, handle, qos: qos.clone() },
        );
        tracing::info!(topic, type_name, qos = %qos::describe(&qos).replace('\n', " "), "recording");
    }

    /// Waits up to `timeout` for messages and forwards every one that is ready (discarding
    /// them while `paused`). Returns how many were taken.
    pub fn pump(&mut self, fwd: &mut Forwarder, timeout: Duration, paused: bool) -> Result<usize, Ros2Error> {
        self.node.wait(timeout)?;
        let by_subscription = &self.by_subscription;
        let (taken, skipped) = self.node.take_ready(|SubscriptionId(i), msg| {
            let Some(&handle) = by_subscription.get(i) else { return };
            if !paused {
                forward_taken(fwd, handle, msg);
            }
        });
        self.redelivered += skipped as u64;
        fwd.wake();
        Ok(taken)
    }

    /// The type recorded on a topic.
    pub fn topic_type(&self, topic: &str) -> Option<&str> {
        self.topics.get(topic).map(|t| t.type_name.as_str())
    }
}

/// Runs the ROS 2 ingest until stopped (signal or control `stop`).
pub fn run(config: &Config) -> Result<(), Ros2Error> {
    let domain = robots::domain_from_env()?;
    let robots = RobotMap::new(config, domain)?;
    if config.robots.iter().any(|r| r.domain_id.is_some()) && !config.robots.iter().any(|r| r.domain_id == Some(domain))
    {
        tracing::warn!(
            domain,
            "no [[robots]] entry has domain_id = {domain}: this ingest records only robots without a domain_id and `ingest.default_robot`"
        );
    }
    let plane = Plane::open("ingest", &config.pipeline)?;
    let control = ControlServer::new(&plane, Stage::Ingest)?;
    let mut fwd = Forwarder::new(&plane, robots.names())?;
    fwd.set_topic_id_scope(domain);
    let served: Vec<String> = robots.served().into_iter().map(String::from).collect();
    let fallback = robots.fallback().to_string();
    let mut source = Ros2Source::new(robots)?;
    tracing::info!(
        robots = ?fwd.robots(),
        ?served,
        fallback,
        domain,
        pipeline = %config.pipeline.name,
        "ingest running (ros2)"
    );
    let detail = format!("ros2 domain {domain}");
    let status_every = Duration::from_millis(config.pipeline.status_interval_ms);
    let mut next_status = Instant::now();
    let mut next_discovery = Instant::now();
    let mut paused = false;
    fwd.publish_status(StageState::Running, &detail);
    while !shared::shutdown::requested() {
        control.poll(|command, _arg| match command {
            ControlCommand::Pause => {
                paused = true;
                ControlReply::ok("ingest paused (ros2 messages are taken and discarded)")
            }
            ControlCommand::Resume | ControlCommand::Start => {
                paused = false;
                ControlReply::ok("ingest recording")
            }
            ControlCommand::Stop => {
                shared::shutdown::request();
                ControlReply::ok("ingest stopping")
            }
            other => ControlReply::failed(format!("{other:?} is not served by ingest")),
        });
        let now = Instant::now();
        if now >= next_discovery {
            source.discover(&mut fwd, paused);
            next_discovery = now + DISCOVERY_INTERVAL;
        }
        if now >= next_status {
            let state = if paused { StageState::Paused } else { StageState::Running };
            fwd.publish_status(state, &detail);
            next_status = now + status_every;
        }
        let until = next_discovery.min(next_status).saturating_duration_since(Instant::now());
        source.pump(&mut fwd, until.min(MAX_WAIT), paused)?;
    }
    fwd.publish_status(StageState::Stopping, "stopping");
    tracing::info!(
        topics = source.topic_count(),
        dropped = fwd.dropped(),
        qos_changes = source.qos_changes(),
        redelivered_skipped = source.redelivered(),
        "ingest stopped"
    );
    Ok(())
}
