//! `fleetrec-writer`: records what ingest delivers into crash-safe segments.
//!
//! ```text
//! fleetrec-writer [--config FILE]              run (default config/default.toml)
//! fleetrec-writer status [--json]              the running writer's status (exit 1: not running)
//! fleetrec-writer inspect PATH [--json]        segment or directory report (exit 1: corruption)
//! fleetrec-writer recover PATH [--json]        cut torn tails, seal, write missing manifests
//! ```
//! Exit codes: 0 ok, 1 failure (or corruption found / not running), 2 configuration or usage
//! error.

// A command-line tool: printing its reports to stdout is its job (the library never prints).
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::config::Config;
use shared::plane::Stage;

#[derive(Debug, Parser)]
#[command(name = "fleetrec-writer", version, about = "fleetrec writer: crash-safe segments on io_uring")]
struct Cli {
    /// Pipeline configuration file.
    #[arg(long, global = true, default_value = "config/default.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the running writer's status.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report on a segment file or a recording directory (read-only).
    Inspect {
        /// Segment file or directory.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a control request to the running writer: pause, resume, split-segment, stop.
    Control {
        /// The request.
        command: String,
        /// Its argument, if any.
        arg: Option<String>,
    },
    /// Repair a segment file or a recording directory: cut torn tails, seal, write manifests.
    Recover {
        /// Segment file or directory.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        None => run(&cli.config),
        Some(Command::Status { json }) => status(&cli.config, json),
        Some(Command::Inspect { path, json }) => inspect(&path, json),
        Some(Command::Control { command, arg }) => control(&cli.config, &command, arg.as_deref().unwrap_or("")),
        Some(Command::Recover { path, json }) => recover(&path, json),
    }
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

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn report_failure(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(1)
}

fn run(config_path: &Path) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match writer::run::run(&config).context("fleetrec-writer") {
        Ok(summary) => {
            tracing::info!(
                messages = summary.messages,
                dropped = summary.dropped,
                sealed = summary.segments_sealed,
                "fleetrec-writer stopped"
            );
            ExitCode::SUCCESS
        }
        Err(e) => report_failure(&e),
    }
}

fn control(config_path: &Path, command: &str, arg: &str) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (text, code) = shared::cli::control_command(&config, Stage::Writer, command, arg);
    if code == 0 {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
    ExitCode::from(code as u8)
}

fn status(config_path: &Path, json: bool) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match shared::cli::read_status(&config, Stage::Writer) {
        Ok(s) => {
            if json {
                println!("{}", s.to_json());
            } else {
                print!("{}", shared::cli::format_status(&s));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn inspect(path: &Path, json: bool) -> ExitCode {
    let report = match writer::inspect::inspect(path).context("inspect") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return report_failure(&e.into()),
        }
    } else {
        print!("{}", writer::inspect::format_report(&report));
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn recover(path: &Path, json: bool) -> ExitCode {
    match writer::recover(path).context("recover") {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return report_failure(&e.into()),
                }
            } else if report.is_empty() {
                println!("{}: nothing to recover", path.display());
            } else {
                for r in &report.recovered {
                    println!(
                        "{}: cut {} bytes at offset {}{}, {} messages kept, {} corrupt records{}",
                        r.path.display(),
                        r.cut_bytes,
                        r.cut_at,
                        if r.abandoned { " (abandoned part)" } else { "" },
                        r.messages,
                        r.corrupt_offsets.len(),
                        if r.removed { ", removed (no messages)" } else { ", sealed" },
                    );
                }
                for p in &report.manifests_written {
                    println!("{}: manifest written", p.display());
                }
                for p in &report.removed {
                    println!("{}: removed", p.display());
                }
                for (p, why) in &report.unreadable {
                    println!("{}: left untouched: {why}", p.display());
                }
            }
            if report.unreadable.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => report_failure(&e),
    }
}
