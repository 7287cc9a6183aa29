//! The ingest process: open the plane, run the chosen source, publish status, obey control
//! requests, and return cleanly on SIGTERM/SIGINT so no shared-memory resources are left.

use std::time::{Duration, Instant};

use shared::config::{Config, IngestSource};
use shared::control::{ControlReply, ControlServer};
use shared::plane::{ControlCommand, Plane, PlaneError, Stage, StageState};

use crate::forward::Forwarder;
use crate::synthetic::SyntheticSource;

/// Why ingest stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Shared memory.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// Signal handler.
    #[error("cannot install signal handlers: {0}")]
    Signals(String),
    /// The ROS 2 source is not part of this build.
    #[error("this fleetrec-ingest is built without the `ros2` feature: run scripts/setup-ros2.sh, source target/ros2.env and build with `--features ingest/ros2`, or use --source synthetic")]
    Ros2NotBuilt,
    /// The ROS 2 source failed.
    #[cfg(feature = "ros2")]
    #[error(transparent)]
    Ros2(#[from] crate::ros2::Ros2Error),
}

/// Runs ingest until stopped (signal, control `stop`, or the synthetic duration).
pub fn run(config: &Config, source: IngestSource) -> Result<(), IngestError> {
    shared::shutdown::install().map_err(|e| IngestError::Signals(e.to_string()))?;
    if source == IngestSource::Ros2 {
        #[cfg(feature = "ros2")]
        return Ok(crate::ros2::run(config)?);
        #[cfg(not(feature = "ros2"))]
        return Err(IngestError::Ros2NotBuilt);
    }
    let plane = Plane::open("ingest", &config.pipeline)?;
    let control = ControlServer::new(&plane, Stage::Ingest)?;
    let mut fwd = Forwarder::new(&plane, config.robot_names())?;
    let mut synth = SyntheticSource::new(config, &mut fwd);
    tracing::info!(
        robots = fwd.robots().len(),
        topics = config.synthetic.topics.len(),
        pipeline = %config.pipeline.name,
        "ingest running (synthetic)"
    );
    let status_every = Duration::from_millis(config.pipeline.status_interval_ms);
    let mut next_status = Instant::now();
    let mut paused = false;
    fwd.publish_status(StageState::Running, "synthetic");
    while !shared::shutdown::requested() {
        control.poll(|command, _arg| match command {
            ControlCommand::Pause => {
                paused = true;
                ControlReply::ok("ingest paused")
            }
            ControlCommand::Resume | ControlCommand::Start => {
                paused = false;
                ControlReply::ok("ingest forwarding")
            }
            ControlCommand::Stop => {
                shared::shutdown::request();
                ControlReply::ok("ingest stopping")
            }
            other => ControlReply::failed(format!("{other:?} is not served by ingest")),
        });
        let next_msg = synth.publish_due(&mut fwd, paused);
        let now = Instant::now();
        if now >= next_status {
            let state = if paused { StageState::Paused } else { StageState::Running };
            fwd.publish_status(state, "synthetic");
            next_status = now + status_every;
        }
        if synth.finished() {
            tracing::info!("synthetic source finished");
            break;
        }
        let wake_at = next_msg.min(next_status);
        let now = Instant::now();
        if wake_at > now {
            std::thread::sleep(wake_at - now);
        }
    }
    fwd.publish_status(StageState::Stopping, "stopping");
    tracing::info!(dropped = fwd.dropped(), "ingest stopped");
    Ok(())
}
