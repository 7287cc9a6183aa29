//! `fleetrec-uploader`: uploads sealed segments to the configured S3-compatible bucket.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::plane::Stage;

#[derive(Parser)]
#[command(name = "fleetrec-uploader", version, about = "fleetrec uploader: sealed segments to S3, resumable")]
struct Cli {
    /// Pipeline configuration (default: config/default.toml if present, else built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Upload what is sealed now, then exit: 0 when nothing is left, 1 when segments remain
    /// (offline, refused), 2 on a configuration error.
    #[arg(long)]
    once: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print this stage's latest status; exit 1 if it is not running.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
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
        let (text, code) = shared::cli::status_command(&config, Stage::Uploader, json);
        if code == 0 || json {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
        return ExitCode::from(code as u8);
    }
    match uploader::run(&config, uploader::RunOptions { once: cli.once }) {
        Ok(summary) if cli.once && summary.pending > 0 => {
            eprintln!("{} segments uploaded, {} still pending", summary.uploaded, summary.pending);
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let config_error = e.is_config();
            let e = anyhow::Error::from(e);
            if config_error {
                // Like a bad config file: one line, exit code 2.
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
