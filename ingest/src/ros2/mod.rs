//! The ROS 2 source (cargo feature `ros2`): records every topic of the ROS graph as raw CDR.
//!
//! - Discovery: r2r's graph queries (`get_topic_names_and_types`) every
//!   [`DISCOVERY_INTERVAL`], across all namespaces; a new topic is subscribed on the next poll.
//! - Routing: namespace -> robot, include/exclude regexes ([`robots`]).
//! - Any type: type support loaded at run time, serialized takes ([`serialized`]); a type
//!   whose support is missing is reported once, with the package to install.
//! - QoS adapted to the topic's publishers ([`qos`]); definitions in rosbag2's `ros2msg` form
//!   ([`definition`]) announced with the topic.
//! - One thread: it waits on an rcl wait set, drains every ready subscription and forwards each
//!   message with [`Forwarder::forward`], which never blocks past the pipeline's bound and
//!   counts what it could not deliver, per topic. Nothing is queued in between.
//!
//! One process records one ROS domain (`ROS_DOMAIN_ID`); robots on separate domains run one
//! ingest each, all feeding the same writer.

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
use robots::{FilterError, RobotMap, Route};
use serialized::{SerializedNode, SubscriptionId};

/// How often the ROS graph is polled for new topics.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(250);
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
    /// r2r (context, graph node).
    #[error("ros 2: {0}")]
    R2r(#[from] r2r::Error),
    /// rcl (recording node, wait set).
    #[error(transparent)]
    Rcl(#[from] serialized::RclError),
}

struct Recorded {
    type_name: String,
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
        })
    }

    /// Number of recorded topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Polls the graph once and subscribes to every new topic that has publishers.
    pub fn discover(&mut self, fwd: &mut Forwarder) {
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
        self.topics.insert(topic.to_string(), Recorded { type_name: type_name.to_string() });
        tracing::info!(topic, type_name, qos = %qos::describe(&qos).replace('\n', " "), "recording");
    }

    /// Waits up to `timeout` for messages and forwards every one that is ready (discarding
    /// them while `paused`). Returns how many were taken.
    pub fn pump(&mut self, fwd: &mut Forwarder, timeout: Duration, paused: bool) -> Result<usize, Ros2Error> {
        self.node.wait(timeout)?;
        let by_subscription = &self.by_subscription;
        let taken = self.node.take_ready(|SubscriptionId(i), msg| {
            let Some(&handle) = by_subscription.get(i) else { return };
            if paused {
                return;
            }
            let stamp = if msg.source_timestamp_ns > 0 {
                msg.source_timestamp_ns
            } else if msg.received_timestamp_ns > 0 {
                msg.received_timestamp_ns
            } else {
                shared::time::now_ns()
            };
            // Drops are counted per topic by the forwarder.
            let _ = fwd.forward(handle, stamp, msg.bytes);
        });
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
    let robots = RobotMap::new(config)?;
    let plane = Plane::open("ingest", &config.pipeline)?;
    let control = ControlServer::new(&plane, Stage::Ingest)?;
    let mut fwd = Forwarder::new(&plane, robots.names())?;
    let mut source = Ros2Source::new(robots)?;
    tracing::info!(
        robots = ?fwd.robots(),
        domain = std::env::var("ROS_DOMAIN_ID").unwrap_or_else(|_| "0".into()),
        pipeline = %config.pipeline.name,
        "ingest running (ros2)"
    );
    let status_every = Duration::from_millis(config.pipeline.status_interval_ms);
    let mut next_status = Instant::now();
    let mut next_discovery = Instant::now();
    let mut paused = false;
    fwd.publish_status(StageState::Running, "ros2");
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
            source.discover(&mut fwd);
            next_discovery = now + DISCOVERY_INTERVAL;
        }
        if now >= next_status {
            let state = if paused { StageState::Paused } else { StageState::Running };
            fwd.publish_status(state, "ros2");
            next_status = now + status_every;
        }
        let until = next_discovery.min(next_status).saturating_duration_since(Instant::now());
        source.pump(&mut fwd, until.min(MAX_WAIT), paused)?;
    }
    fwd.publish_status(StageState::Stopping, "stopping");
    tracing::info!(topics = source.topic_count(), dropped = fwd.dropped(), "ingest stopped");
    Ok(())
}
