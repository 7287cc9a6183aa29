//! `fleetrec-ingest`: forwards ROS 2 (or simulated) messages into the pipeline.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use shared::config::IngestSource;
use shared::plane::Stage;

#[derive(Parser)]
#[command(name = "fleetrec-ingest", version, about = "fleetrec ingest: ROS 2 / synthetic messages into shared memory")]
struct Cli {
    /// Pipeline configuration (default: config/default.toml if present, else built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Message source; overrides `[ingest] source`.
    #[arg(long, value_enum)]
    source: Option<Source>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    Synthetic,
    Ros2,
}

#[derive(Subcommand)]
enum Command {
    /// Print this stage's latest status; exit 1 if it is not running.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Send a control request to the running ingest: pause, resume, stop.
    Control {
        /// The request.
        command: String,
        /// Its argument, if any.
        arg: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let config = match shared::cli::load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Status { json }) = cli.command {
        let (text, code) = shared::cli::status_command(&config, Stage::Ingest, json);
        if code == 0 || json {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
        return ExitCode::from(code as u8);
    }
    if let Some(Command::Control { command, arg }) = &cli.command {
        let (text, code) = shared::cli::control_command(&config, Stage::Ingest, command, arg.as_deref().unwrap_or(""));
        if code == 0 {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
        return ExitCode::from(code as u8);
    }
    let source = match cli.source {
        Some(Source::Synthetic) => IngestSource::Synthetic,
        Some(Source::Ros2) => IngestSource::Ros2,
        None => config.ingest.source,
    };
    match ingest::run(&config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
