//! `fleetrec-viewer --headless`: attach, tick every status interval, print one JSON snapshot per
//! line (`--json`) and/or serve the Prometheus endpoint (`--metrics ADDR`), until a termination
//! signal ([`shared::shutdown`]) or the requested number of snapshots.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shared::config::Config;

use crate::dashboard::Dashboard;
use crate::error::{Result, ViewerError};
use crate::metrics::MetricsServer;

/// What the headless viewer does.
#[derive(Debug, Clone, Default)]
pub struct HeadlessOptions {
    /// Print a JSON snapshot per tick.
    pub json: bool,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Time between snapshots; `None`: the pipeline's status interval.
    pub interval: Option<Duration>,
    /// Stop after this many snapshots; `None`: run until a signal.
    pub count: Option<u64>,
}

/// Runs the headless viewer, writing JSON lines to `out`.
pub fn run_headless(config: &Config, options: &HeadlessOptions, out: &mut dyn Write) -> Result<()> {
    let mut dashboard = Dashboard::attach(config)?;
    let server = options.metrics.map(MetricsServer::start).transpose()?;
    let interval = options.interval.unwrap_or(Duration::from_millis(config.pipeline.status_interval_ms.max(10)));
    let mut taken = 0u64;
    let mut next = Instant::now();
    while !shared::shutdown::requested() {
        let snap = dashboard.tick();
        if let Some(s) = &server {
            s.publish(&snap);
        }
        if options.json {
            writeln!(out, "{}", snap.to_json()).map_err(ViewerError::Output)?;
            out.flush().map_err(ViewerError::Output)?;
        }
        taken += 1;
        if options.count.is_some_and(|c| taken >= c) {
            break;
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    tracing::info!(snapshots = taken, "headless viewer detached");
    Ok(())
}
