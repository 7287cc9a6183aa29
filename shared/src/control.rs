//! The control plane: request-response over iceoryx2, one service per stage
//! (`<pipeline>/control/<stage>`). A stage serves what it owns ([`ControlServer`], polled from its
//! main loop); the viewer and the CLI send requests ([`ControlClient`]). A request to a stage
//! that is not running fails at once with [`ControlError::StageDown`]; a stage that does not
//! answer within the timeout gives [`ControlError::Timeout`].

use std::time::{Duration, Instant};

use iceoryx2::port::server::Server;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::request_response;

use crate::plane::{read_cstr, write_cstr, ControlCommand, ControlRequest, Plane, PlaneError, Stage};

/// The answer of a stage to a [`ControlRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[repr(C)]
#[type_name("fleetrec::ControlResponse::v1")]
pub struct ControlResponse {
    /// 1 if the request was carried out.
    pub ok: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The request id this answers.
    pub request_id: u64,
    /// NUL-padded human-readable result.
    pub message: [u8; 256],
}

impl Default for ControlResponse {
    fn default() -> Self {
        Self { ok: 0, reserved: 0, request_id: 0, message: [0; 256] }
    }
}

impl Default for ControlRequest {
    fn default() -> Self {
        Self { target: 0, command: 0, request_id: 0, arg: [0; 256] }
    }
}

/// What a stage answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlReply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What happened, for the user.
    pub message: String,
}

impl ControlReply {
    /// A success with a message.
    pub fn ok(message: impl Into<String>) -> Self {
        Self { ok: true, message: message.into() }
    }

    /// A refusal or failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self { ok: false, message: message.into() }
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The shared-memory plane failed.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// Nobody serves the stage: it is not running.
    #[error("{stage} is not running (no control server)")]
    StageDown {
        /// The stage.
        stage: &'static str,
    },
    /// The stage did not answer in time.
    #[error("{stage} did not answer within {ms} ms")]
    Timeout {
        /// The stage.
        stage: &'static str,
        /// How long we waited.
        ms: u64,
    },
    /// The request could not be sent.
    #[error("sending the request to {stage} failed: {reason}")]
    Send {
        /// The stage.
        stage: &'static str,
        /// iceoryx2's error.
        reason: String,
    },
}

type Service = request_response::PortFactory<ipc::Service, ControlRequest, (), ControlResponse, ()>;

/// Name of a stage's control service.
pub fn service_name(pipeline: &str, stage: Stage) -> String {
    format!("{pipeline}/control/{}", stage.name())
}

fn open_service(plane: &Plane, stage: Stage) -> Result<Service, PlaneError> {
    let name = service_name(&plane.config().name, stage);
    let err = |e: &dyn std::fmt::Debug| PlaneError::Service { service: name.clone(), reason: format!("{e:?}") };
    let sn = ServiceName::new(&name).map_err(|e| err(&e))?;
    crate::plane::open_or_create_recovering(&sn, || {
        plane
            .node()
            .service_builder(&sn)
            .request_response::<ControlRequest, ControlResponse>()
            // One ingest per ROS domain serves its stage each: up to 8.
            .max_servers(8)
            .max_clients(16)
            .max_active_requests_per_client(4)
            .max_response_buffer_size(4)
            .max_nodes(32)
            .open_or_create()
    })
    .map_err(|e| err(&e))
}

/// Serves one stage's control requests. Poll it from the stage's main loop.
pub struct ControlServer {
    _service: Service,
    server: Server<ipc::Service, ControlRequest, (), ControlResponse, ()>,
    stage: Stage,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer").field("stage", &self.stage).finish()
    }
}

impl ControlServer {
    /// Opens the stage's control service as its server.
    pub fn new(plane: &Plane, stage: Stage) -> Result<ControlServer, PlaneError> {
        let service = open_service(plane, stage)?;
        let server = service.server_builder().create().map_err(|e| PlaneError::Service {
            service: service_name(&plane.config().name, stage),
            reason: format!("{e:?}"),
        })?;
        Ok(ControlServer { _service: service, server, stage })
    }

    /// Answers every pending request with `handler`. Returns how many were handled.
    pub fn poll(&self, mut handler: impl FnMut(ControlCommand, &str) -> ControlReply) -> usize {
        let mut n = 0;
        loop {
            let active = match self.server.receive() {
                Ok(Some(a)) => a,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(stage = self.stage.name(), ?e, "control request receive failed");
                    break;
                }
            };
            let req = *active.payload();
            let arg = read_cstr(&req.arg);
            let reply = match ControlCommand::from_u32(req.command) {
                Some(cmd) => {
                    let r = handler(cmd, &arg);
                    tracing::info!(stage = self.stage.name(), ?cmd, arg, ok = r.ok, message = %r.message, "control request");
                    r
                }
                None => ControlReply::failed(format!("unknown command {}", req.command)),
            };
            let mut resp =
                ControlResponse { ok: u32::from(reply.ok), request_id: req.request_id, ..Default::default() };
            write_cstr(&mut resp.message, &reply.message);
            if let Err(e) = active.send_copy(resp) {
                tracing::warn!(stage = self.stage.name(), ?e, "control response could not be sent");
            }
            n += 1;
        }
        n
    }
}

/// Sends control requests to stages.
pub struct ControlClient<'a> {
    plane: &'a Plane,
}

impl std::fmt::Debug for ControlClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient").finish()
    }
}

impl<'a> ControlClient<'a> {
    /// A client on `plane`.
    pub fn new(plane: &'a Plane) -> ControlClient<'a> {
        ControlClient { plane }
    }

    /// Sends `command` with `arg` to `stage` and waits up to `timeout` for the answer.
    pub fn request(
        &self,
        stage: Stage,
        command: ControlCommand,
        arg: &str,
        timeout: Duration,
    ) -> Result<ControlReply, ControlError> {
        let service = open_service(self.plane, stage)?;
        if service.dynamic_config().number_of_servers() == 0 {
            return Err(ControlError::StageDown { stage: stage.name() });
        }
        let client = service
            .client_builder()
            .create()
            .map_err(|e| ControlError::Send { stage: stage.name(), reason: format!("{e:?}") })?;
        let req = ControlRequest::new(Some(stage), command, arg);
        let pending =
            client.send_copy(req).map_err(|e| ControlError::Send { stage: stage.name(), reason: format!("{e:?}") })?;
        let deadline = Instant::now() + timeout;
        loop {
            match pending.receive() {
                Ok(Some(resp)) => {
                    let r = resp.payload();
                    return Ok(ControlReply { ok: r.ok == 1, message: read_cstr(&r.message) });
                }
                Ok(None) => {}
                Err(e) => return Err(ControlError::Send { stage: stage.name(), reason: format!("{e:?}") }),
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Timeout { stage: stage.name(), ms: timeout.as_millis() as u64 });
            }
            if service.dynamic_config().number_of_servers() == 0 {
                return Err(ControlError::StageDown { stage: stage.name() });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;

    #[test]
    fn request_reaches_server_and_down_stage_fails_fast() {
        let cfg = PipelineConfig { name: format!("ctl-unit-{}", std::process::id()), ..Default::default() };
        let plane = Plane::open("ctl-test", &cfg).unwrap();
        let client = ControlClient::new(&plane);
        let t = Instant::now();
        let e = client.request(Stage::Uploader, ControlCommand::SyncNow, "", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, ControlError::StageDown { stage: "uploader" }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "down stage must fail before the timeout");

        let server = ControlServer::new(&plane, Stage::Writer).unwrap();
        let handle = std::thread::scope(|s| {
            let h =
                s.spawn(|| client.request(Stage::Writer, ControlCommand::SplitSegment, "now", Duration::from_secs(10)));
            let mut seen = Vec::new();
            while seen.is_empty() {
                server.poll(|cmd, arg| {
                    seen.push((cmd, arg.to_string()));
                    ControlReply::ok("split")
                });
                std::thread::sleep(Duration::from_millis(1));
            }
            (h.join().unwrap(), seen)
        });
        let (reply, seen) = handle;
        assert_eq!(seen, vec![(ControlCommand::SplitSegment, "now".to_string())]);
        assert_eq!(reply.unwrap(), ControlReply::ok("split"));
    }
}
