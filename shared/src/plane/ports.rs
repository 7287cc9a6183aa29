//! Opening the pipeline's services with explicit settings. Every setting iceoryx2 defaults
//! (buffer 2, safe overflow on, 8 subscribers, 2 publishers, 20 nodes, no history) is set here
//! on purpose; both sides open a service through these helpers so the settings always match.

use std::time::{Duration, Instant};

use iceoryx2::node::NodeView;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::BackpressureAction;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::{event, publish_subscribe};

use super::service_names as names;
use super::{MessageHeader, SegmentNotice, Stage, StageStatus, TopicHeader};
use crate::config::PipelineConfig;

/// Shared-memory plane errors. They name the service and carry iceoryx2's reason.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// A node could not be created.
    #[error("iceoryx2 node `{node}`: {reason}")]
    Node {
        /// Node name.
        node: String,
        /// iceoryx2's error.
        reason: String,
    },
    /// A service or port could not be opened.
    #[error("iceoryx2 service `{service}`: {reason}")]
    Service {
        /// Service name.
        service: String,
        /// iceoryx2's error.
        reason: String,
    },
}

fn svc_err(service: &str, e: impl std::fmt::Debug) -> PlaneError {
    PlaneError::Service { service: service.to_string(), reason: format!("{e:?}") }
}

/// Runs `open` (a service builder's `open_or_create`). Where iceoryx2 answers that the service
/// hangs in creation, a process was killed while it created the service: iceoryx2 waited its
/// creation timeout (1 s) for the creation to finish, and the service's static config stays
/// unfinished for ever, so the stage could never start again. Then the unfinished static
/// config is removed and `open` runs once more.
pub(crate) fn open_or_create_recovering<T, E: std::fmt::Debug>(
    name: &ServiceName,
    open: impl Fn() -> Result<T, E>,
) -> Result<T, E> {
    match open() {
        // The variant sits at different depths of the patterns' error enums, all with this name.
        Err(e) if format!("{e:?}").contains("HangsInCreation") => {
            let removed = remove_unfinished_static_config(name.as_str());
            tracing::warn!(service = %name, removed, "iceoryx2 service left half-created by a dead process: created anew");
            open()
        }
        other => other,
    }
}

/// Removes the static config files of service `name` that were never finished: iceoryx2 writes
/// one with the permissions 0600 and makes it read-only (0400 or 0444) once the service is
/// complete. No process uses such a service, since none could open it. Returns how many.
fn remove_unfinished_static_config(name: &str) -> usize {
    let dir = std::path::PathBuf::from(Config::global_config().global.service_dir().to_string());
    let line = format!("service_name = \"{name}\"");
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let unfinished = entry.metadata().is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o777 == 0o600
        });
        if !unfinished || path.extension().is_none_or(|x| x != "service") {
            continue;
        }
        let ours = std::fs::read_to_string(&path).is_ok_and(|text| text.lines().any(|l| l.trim() == line));
        if !ours {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an unfinished iceoryx2 service")
            }
        }
    }
    removed
}

/// Publisher of raw messages.
pub type MessagePublisher = Publisher<ipc::Service, [u8], MessageHeader>;
/// Subscriber of raw messages.
pub type MessageSubscriber = Subscriber<ipc::Service, [u8], MessageHeader>;
/// Publisher of topic announcements.
pub type TopicPublisher = Publisher<ipc::Service, [u8], TopicHeader>;
/// Subscriber of topic announcements.
pub type TopicSubscriber = Subscriber<ipc::Service, [u8], TopicHeader>;
/// Publisher of a stage status.
pub type StatusPublisher = Publisher<ipc::Service, StageStatus, ()>;
/// Subscriber of a stage status.
pub type StatusSubscriber = Subscriber<ipc::Service, StageStatus, ()>;
/// Publisher of sealed-segment notices.
pub type SegmentPublisher = Publisher<ipc::Service, SegmentNotice, ()>;
/// Subscriber of sealed-segment notices.
pub type SegmentSubscriber = Subscriber<ipc::Service, SegmentNotice, ()>;

const MAX_NODES: usize = 32;

/// One process's attachment to a pipeline: an iceoryx2 node plus the pipeline settings.
pub struct Plane {
    node: Node<ipc::Service>,
    cfg: PipelineConfig,
}

impl std::fmt::Debug for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plane").field("pipeline", &self.cfg.name).finish()
    }
}

/// Removes the iceoryx2 resources of processes that died without cleaning up. Returns how many
/// dead nodes were removed.
pub fn clean_dead_nodes() -> usize {
    let mut removed = 0;
    let result = Node::<ipc::Service>::list(Config::global_config(), |state| {
        if let NodeState::Dead(view) = state {
            let pid = view.details().as_ref().map(|d| d.process_id().value());
            match view.try_remove_stale_resources() {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(?pid, "removed stale iceoryx2 resources of a dead process");
                }
                // A node without details is often one another process is creating right now
                // (no details written yet): not worth a warning at every start.
                Err(e) if pid.is_none() => {
                    tracing::debug!(?e, "could not remove the resources of a node without details")
                }
                Err(e) => tracing::warn!(?pid, ?e, "could not remove stale iceoryx2 resources"),
            }
        }
        CallbackProgression::Continue
    });
    if let Err(e) = result {
        tracing::warn!(?e, "could not list iceoryx2 nodes");
    }
    removed
}

/// Whether a publish-subscribe service exists (used by tests and `status`).
pub fn service_exists(name: &str) -> bool {
    let Ok(sn) = ServiceName::new(name) else {
        return false;
    };
    matches!(ipc::Service::does_exist(&sn, Config::global_config(), MessagingPattern::PublishSubscribe), Ok(true))
}

impl Plane {
    /// Cleans dead nodes, then creates this process's node `fleetrec-<stage>`. iceoryx2's own
    /// signal handling is off: [`crate::shutdown`] installs ours.
    pub fn open(stage_name: &str, cfg: &PipelineConfig) -> Result<Plane, PlaneError> {
        set_log_level(LogLevel::Error);
        clean_dead_nodes();
        let node_name = format!("fleetrec-{stage_name}");
        let err = |e: &dyn std::fmt::Debug| PlaneError::Node { node: node_name.clone(), reason: format!("{e:?}") };
        let name = NodeName::new(&node_name).map_err(|e| err(&e))?;
        let node = NodeBuilder::new()
            .name(&name)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(|e| err(&e))?;
        Ok(Plane { node, cfg: cfg.clone() })
    }

    /// The iceoryx2 node (for services defined outside this module).
    pub fn node(&self) -> &Node<ipc::Service> {
        &self.node
    }

    /// The pipeline settings.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    fn service_name(name: &str) -> Result<ServiceName, PlaneError> {
        ServiceName::new(name).map_err(|e| svc_err(name, e))
    }

    /// The messages service (lossless up to a bounded wait, no history).
    pub fn messages_service(
        &self,
    ) -> Result<publish_subscribe::PortFactory<ipc::Service, [u8], MessageHeader>, PlaneError> {
        let name = names::messages(&self.cfg.name);
        let sn = Self::service_name(&name)?;
        open_or_create_recovering(&sn, || {
            self.node
                .service_builder(&sn)
                .publish_subscribe::<[u8]>()
                .user_header::<MessageHeader>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(self.cfg.message_buffer)
                .subscriber_max_borrowed_samples(4)
                .history_size(0)
                .max_publishers(8)
                .max_subscribers(4)
                .max_nodes(MAX_NODES)
                .open_or_create()
        })
        .map_err(|e| svc_err(&name, e))
    }

    /// A message publisher whose `send` never waits longer than the configured backpressure
    /// timeout for a full subscriber; what it cannot deliver it discards (the caller counts it).
    pub fn message_publisher(&self) -> Result<MessagePublisher, PlaneError> {
        let svc = self.messages_service()?;
        let bound = Duration::from_micros(self.cfg.backpressure_timeout_us);
        svc.publisher_builder()
            .initial_max_slice_len(4096)
            .allocation_strategy(AllocationStrategy::PowerOfTwo)
            .max_loaned_samples(4)
            .backpressure_strategy(BackpressureStrategy::DiscardData)
            .set_backpressure_handler(move |info: &iceoryx2::port::BackpressureInfo| {
                if info.elapsed_time < bound {
                    BackpressureAction::Retry
                } else {
                    BackpressureAction::DiscardData
                }
            })
            .create()
            .map_err(|e| svc_err(&names::messages(&self.cfg.name), e))
    }

    /// A message subscriber with the configured buffer depth.
    pub fn message_subscriber(&self) -> Result<MessageSubscriber, PlaneError> {
        let svc = self.messages_service()?;
        svc.subscriber_builder()
            .buffer_size(self.cfg.message_buffer)
            .create()
            .map_err(|e| svc_err(&names::messages(&self.cfg.name), e))
    }

    fn wake_service(&self) -> Result<event::PortFactory<ipc::Service>, PlaneError> {
        let name = names::messages_wake(&self.cfg.name);
        let sn = Self::service_name(&name)?;
        open_or_create_recovering(&sn, || {
            self.node
                .service_builder(&sn)
                .event()
                .max_notifiers(16)
                .max_listeners(8)
                .max_nodes(MAX_NODES)
                .open_or_create()
        })
        .map_err(|e| svc_err(&name, e))
    }

    /// Notifier that wakes message consumers.
    pub fn wake_notifier(&self) -> Result<Notifier<ipc::Service>, PlaneError> {
        self.wake_service()?.notifier_builder().create().map_err(|e| svc_err(&names::messages_wake(&self.cfg.name), e))
    }

    /// Listener woken when messages were sent.
    pub fn wake_listener(&self) -> Result<Listener<ipc::Service>, PlaneError> {
        self.wake_service()?.listener_builder().create().map_err(|e| svc_err(&names::messages_wake(&self.cfg.name), e))
    }

    fn topics_service(&self) -> Result<publish_subscribe::PortFactory<ipc::Service, [u8], TopicHeader>, PlaneError> {
        let name = names::topics(&self.cfg.name);
        let sn = Self::service_name(&name)?;
        open_or_create_recovering(&sn, || {
            self.node
                .service_builder(&sn)
                .publish_subscribe::<[u8]>()
                .user_header::<TopicHeader>()
                .enable_safe_overflow(true)
                .history_size(self.cfg.max_topics)
                .subscriber_max_buffer_size(self.cfg.max_topics)
                .max_publishers(8)
                .max_subscribers(16)
                .max_nodes(MAX_NODES)
                .open_or_create()
        })
        .map_err(|e| svc_err(&name, e))
    }

    /// Publisher of topic announcements (with history for late subscribers).
    pub fn topic_publisher(&self) -> Result<TopicPublisher, PlaneError> {
        self.topics_service()?
            .publisher_builder()
            .initial_max_slice_len(16 * 1024)
            .allocation_strategy(AllocationStrategy::PowerOfTwo)
            .create()
            .map_err(|e| svc_err(&names::topics(&self.cfg.name), e))
    }

    /// Subscriber of topic announcements; it receives the history of every known topic.
    pub fn topic_subscriber(&self) -> Result<TopicSubscriber, PlaneError> {
        self.topics_service()?
            .subscriber_builder()
            .buffer_size(self.cfg.max_topics)
            .history_request(self.cfg.max_topics)
            .create()
            .map_err(|e| svc_err(&names::topics(&self.cfg.name), e))
    }

    fn status_service(
        &self,
        stage: Stage,
    ) -> Result<publish_subscribe::PortFactory<ipc::Service, StageStatus, ()>, PlaneError> {
        let name = names::status(&self.cfg.name, stage);
        let sn = Self::service_name(&name)?;
        open_or_create_recovering(&sn, || {
            self.node
                .service_builder(&sn)
                .publish_subscribe::<StageStatus>()
                .enable_safe_overflow(true)
                .history_size(1)
                .subscriber_max_buffer_size(2)
                // One ingest per ROS domain publishes here each: up to 8.
                .max_publishers(8)
                .max_subscribers(16)
                .max_nodes(MAX_NODES)
                .open_or_create()
        })
        .map_err(|e| svc_err(&name, e))
    }

    /// Publisher of this stage's status (latest wins).
    pub fn status_publisher(&self, stage: Stage) -> Result<StatusPublisher, PlaneError> {
        self.status_service(stage)?
            .publisher_builder()
            .create()
            .map_err(|e| svc_err(&names::status(&self.cfg.name, stage), e))
    }

    /// Subscriber of a stage's status.
    pub fn status_subscriber(&self, stage: Stage) -> Result<StatusSubscriber, PlaneError> {
        self.status_service(stage)?
            .subscriber_builder()
            .buffer_size(2)
            .history_request(1)
            .create()
            .map_err(|e| svc_err(&names::status(&self.cfg.name, stage), e))
    }

    fn segments_service(&self) -> Result<publish_subscribe::PortFactory<ipc::Service, SegmentNotice, ()>, PlaneError> {
        let name = names::segments(&self.cfg.name);
        let sn = Self::service_name(&name)?;
        open_or_create_recovering(&sn, || {
            self.node
                .service_builder(&sn)
                .publish_subscribe::<SegmentNotice>()
                .enable_safe_overflow(true)
                .history_size(64)
                .subscriber_max_buffer_size(64)
                .max_publishers(4)
                .max_subscribers(8)
                .max_nodes(MAX_NODES)
                .open_or_create()
        })
        .map_err(|e| svc_err(&name, e))
    }

    /// Publisher of sealed-segment notices.
    pub fn segment_publisher(&self) -> Result<SegmentPublisher, PlaneError> {
        self.segments_service()?.publisher_builder().create().map_err(|e| svc_err(&names::segments(&self.cfg.name), e))
    }

    /// Subscriber of sealed-segment notices.
    pub fn segment_subscriber(&self) -> Result<SegmentSubscriber, PlaneError> {
        self.segments_service()?
            .subscriber_builder()
            .buffer_size(64)
            .history_request(64)
            .create()
            .map_err(|e| svc_err(&names::segments(&self.cfg.name), e))
    }
}

/// Reads the latest status of one stage (for `fleetrec-<stage> status`, tests, the viewer).
///
/// Several processes may publish one stage's status (one ingest per ROS domain): the reader
/// keeps the latest status of each process and returns them merged
/// ([`super::merge_statuses`]). A process is forgotten once its last status is older than
/// the start of a newer instance (it was restarted) or [`STALE_INSTANCE`] older than the
/// newest status (it died while others run). With one process the status is passed through.
pub struct StatusReader {
    subscriber: StatusSubscriber,
    instances: Vec<StageStatus>,
    latest: Option<StageStatus>,
}

/// A stage instance whose status is this much older than the newest one of the stage is gone.
pub const STALE_INSTANCE: Duration = Duration::from_secs(5);

impl StatusReader {
    /// Subscribes to `stage`'s status.
    pub fn new(plane: &Plane, stage: Stage) -> Result<StatusReader, PlaneError> {
        Ok(StatusReader { subscriber: plane.status_subscriber(stage)?, instances: Vec::new(), latest: None })
    }

    /// Takes every pending status; returns the newest seen so far (merged over the live
    /// instances of the stage).
    pub fn poll(&mut self) -> Option<&StageStatus> {
        let mut changed = false;
        while let Ok(Some(sample)) = self.subscriber.receive() {
            let s = *sample.payload();
            match self.instances.iter_mut().find(|i| i.pid == s.pid) {
                Some(i) if i.updated_ns > s.updated_ns => {}
                Some(i) => *i = s,
                None => self.instances.push(s),
            }
            changed = true;
        }
        if changed {
            let newest = self.instances.iter().map(|i| i.updated_ns).max().unwrap_or(0);
            let stale = STALE_INSTANCE.as_nanos() as u64;
            let starts: Vec<(u32, u64)> = self.instances.iter().map(|i| (i.pid, i.started_ns)).collect();
            self.instances.retain(|i| {
                // Another process started after this one's last status: this one was replaced.
                let replaced = starts.iter().any(|&(pid, st)| pid != i.pid && st > i.updated_ns);
                !replaced && newest.saturating_sub(i.updated_ns) <= stale
            });
            self.latest = super::merge_statuses(&self.instances).or(self.latest);
        }
        self.latest.as_ref()
    }

    /// Waits up to `timeout` for a status newer than `min_updated_ns`.
    pub fn wait_fresh(&mut self, min_updated_ns: u64, timeout: Duration) -> Option<StageStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.poll() {
                if s.updated_ns >= min_updated_ns {
                    return Some(*s);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The static config file of the service named `name`, and its bytes.
    fn static_config_of(name: &str) -> Option<(std::path::PathBuf, Vec<u8>)> {
        let dir = std::path::PathBuf::from(Config::global_config().global.service_dir().to_string());
        let needle = format!("service_name = \"{name}\"");
        std::fs::read_dir(&dir).ok()?.filter_map(Result::ok).find_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            String::from_utf8_lossy(&bytes).contains(&needle).then(|| (e.path(), bytes))
        })
    }

    /// A process killed while it created a service leaves the service's static config with
    /// the permissions of one being written; every later open waited 1 s and failed with
    /// `HangsInCreation`, so the stage could not start again. Now the stage removes the
    /// half-created service and creates it anew.
    #[test]
    fn a_service_left_half_created_by_a_killed_process_is_created_anew() {
        let cfg = PipelineConfig { name: format!("t{}-half", std::process::id()), ..PipelineConfig::default() };
        let service = names::status(&cfg.name, Stage::Writer);
        let (path, content) = {
            let plane = Plane::open("test-first", &cfg).unwrap();
            let _publisher = plane.status_publisher(Stage::Writer).unwrap();
            static_config_of(&service).expect("the service's static config")
        };
        assert!(!path.exists(), "the service went with its last port and node");
        // Pass or fail, the unfinished file does not outlive the test.
        struct RemoveAtEnd(std::path::PathBuf);
        impl Drop for RemoveAtEnd {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let _cleanup = RemoveAtEnd(path.clone());
        std::fs::write(&path, &content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

        let plane = Plane::open("test-again", &cfg).unwrap();
        let publisher = plane.status_publisher(Stage::Writer).unwrap();
        let subscriber = plane.status_subscriber(Stage::Writer).unwrap();
        let (again, _) = static_config_of(&service).expect("the service, created anew");
        assert_ne!(std::fs::metadata(&again).unwrap().permissions().mode() & 0o777, 0o600, "finished");
        drop((publisher, subscriber, plane));
        assert!(static_config_of(&service).is_none(), "nothing left behind");
    }
}
