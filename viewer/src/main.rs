//! `fleetrec-viewer`: the dashboard of a running pipeline.
//!
//! ```text
//! fleetrec-viewer [--config FILE] [--metrics ADDR]          the Slint window
//! fleetrec-viewer --headless [--json] [--metrics ADDR]      no window: JSON lines and/or Prometheus
//!                 [--interval-ms N] [--count N]
//! ```
//! Exit codes: 0 ok, 1 failure, 2 configuration or usage error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shared::config::Config;
use viewer::headless::{run_headless, HeadlessOptions};

#[derive(Debug, Parser)]
#[command(
    name = "fleetrec-viewer",
    version,
    about = "fleetrec viewer: dashboard, JSON snapshots and Prometheus metrics"
)]
struct Cli {
    /// Pipeline configuration file.
    #[arg(long, default_value = "config/default.toml")]
    config: PathBuf,
    /// No window: print snapshots (`--json`) and/or serve metrics (`--metrics`).
    #[arg(long)]
    headless: bool,
    /// With `--headless`: print one JSON snapshot per line.
    #[arg(long)]
    json: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464), at `GET /metrics`.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// With `--headless`: time between snapshots (default: the pipeline's status interval).
    #[arg(long)]
    interval_ms: Option<u64>,
    /// With `--headless`: exit after this many snapshots.
    #[arg(long)]
    count: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if cli.headless && !cli.json && cli.metrics.is_none() {
        tracing::error!("--headless needs --json and/or --metrics ADDR");
        return ExitCode::from(2);
    }
    if let Err(e) = shared::shutdown::install() {
        tracing::warn!(%e, "no SIGTERM handler; a signal will end the viewer abruptly");
    }
    let result = if cli.headless {
        let options = HeadlessOptions {
            json: cli.json,
            metrics: cli.metrics,
            interval: cli.interval_ms.map(Duration::from_millis),
            count: cli.count,
        };
        run_headless(&config, &options, &mut std::io::stdout().lock()).context("fleetrec-viewer --headless")
    } else {
        window(&config, cli.metrics)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn window(config: &Config, metrics: Option<SocketAddr>) -> anyhow::Result<()> {
    let app = viewer::ViewerApp::new(config, metrics).context("fleetrec-viewer")?;
    app.run().context("fleetrec-viewer")
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
