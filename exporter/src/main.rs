//! `fleetrec-exporter`: exports recordings to Parquet, CSV, NumPy, TFRecord or MCAP.
//!
//! ```text
//! fleetrec-exporter [--config FILE]                  run as a stage: serve export requests
//! fleetrec-exporter export --input DIR --out DIR ... one export, now (progress bar)
//! fleetrec-exporter status [--json]                  the running stage's status (exit 1: not running)
//! fleetrec-exporter control export '{"format":"parquet"}'   ask the running stage for an export
//! ```
//! Parses arguments, sets up tracing and the progress bar, calls the library, and turns the
//! result into an exit code (0 ok, 1 export failed, 2 bad arguments or options; `control`: 1
//! refused, 3 stage not running).
// A command-line tool: `status` and `control` print their answers to stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use exporter::align::{AlignSpec, Reference};
use exporter::format::Limits;
use exporter::time_arg::{parse_duration, parse_time};
use exporter::{export, ExportOptions, Format};
use shared::plane::Stage;

const AFTER_HELP: &str = "\
Output layout (OUT):
  parquet   <robot>/<topic>.parquet   columns receive_time_ns, publish_time_ns, sequence, then the
                                      message fields as Arrow structs and lists (ROS widths)
  csv       <robot>/<topic>.csv       same rows; nested fields as dotted columns, arrays as JSON
  npy       <robot>/<topic>/*.npy     one array per numeric field + timestamps (see exporter/README.md)
  tfrecord  <robot>/<topic>.tfrecord  one tf.train.Example per message
  mcap      <robot>.mcap              ros2msg schemas + raw CDR, as rosbag2 writes it
  manifest.json                       segments, topics, counts, time ranges, rates, SHA-256 of files
<topic> is the topic name without `/<robot>/`, `/` replaced by `__`, unsafe characters by `_`.

Time alignment (--align, parquet or csv): instead of a table per topic, ONE table `aligned.parquet`
(or `aligned.csv`) with a row per tick. Ticks are the receive times of the --on topic (one row per
message of it) or a fixed --rate grid (from --start, else the first message, to --end, else the
last). At each tick every topic contributes its latest message received AT OR BEFORE the tick
(as-of join; never a later message). A tick where a topic has no message yet (missing) or only one
older than --max-age (stale) is dropped; drops are counted per reason and per topic in
manifest.json (`alignment`), with the policy and the tolerance. Columns, flat (one row = one
sample): `time_ns` (the tick), then per topic, under its name (`/robot1/imu` -> `robot1__imu`),
receive_time_ns, publish_time_ns, sequence and every message field by its dotted path
(`robot1__imu.linear_acceleration.x`); arrays stay lists (CSV: JSON arrays). The segments are
read twice (times, then the values the rows use): memory holds 16 bytes per aligned message
(capped by --align-max-mb) and a window of rows, never the decoded topics.

Times (--start/--end, inclusive, on the receive time): ns since the epoch (1700000000000000000),
seconds with `s` (1700000000.25s), or RFC 3339 (2023-11-14T22:13:20Z).

Examples:
  fleetrec-exporter export --input data/recordings --out /tmp/ds --format parquet
  fleetrec-exporter export --input data/recordings --out /tmp/imu --format npy --robot robot1 --topic '/imu$'
  fleetrec-exporter export --input data/recordings --out /tmp/al --format parquet \
      --align /robot1/imu,/robot1/pose --on /robot1/scan --max-age 100ms
  fleetrec-exporter export --input data/recordings --out /tmp/al --format csv \
      --align /robot1/imu,/robot1/pose --rate 10 --max-age 50ms";

/// Longest control request argument (the request carries 256 bytes, NUL-terminated).
const MAX_CONTROL_ARG: usize = 255;

const SERVICE_HELP: &str = "\
Without a subcommand, fleetrec-exporter runs as a pipeline stage (scripts/start-all.sh starts it):
it serves export requests from the viewer and from `fleetrec-exporter control export JSON`, one at
a time, in the background, reading the sealed segments of [storage] path into a new folder
<[export] dir>/<UTC time>-<format>. JSON keys (only format is required):
  {\"format\":\"parquet\",\"robot\":\"robot1\",\"topic\":\"imu|scan\",\"start\":\"T\",\"end\":\"T\"}
  alignment: \"align\":\"/robot1/imu,/robot1/pose\", \"on\":\"/robot1/scan\" or \"rate\":10, \"max_age\":\"100ms\"
A request while an export runs is refused (busy). Progress is in `fleetrec-exporter status`:
state running/waiting, messages (exported) of queue_depth (to export), detail `export parquet 45% -> DIR`.";

#[derive(Debug, Parser)]
#[command(
    name = "fleetrec-exporter",
    version,
    about = "Export fleetrec recordings for training and analysis",
    after_help = SERVICE_HELP
)]
struct Cli {
    /// Pipeline configuration (default: config/default.toml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a recording folder with its recorded message definitions and write one format.
    #[command(after_help = AFTER_HELP)]
    Export(Box<ExportArgs>),
    /// Show the running exporter stage's status (exit 1 if it is not running).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a control request to the running exporter stage: export JSON, stop.
    Control {
        /// The request (`export`, `stop`).
        command: String,
        /// Its argument: for `export`, the JSON request, e.g. '{"format":"parquet","robot":"robot1"}'.
        arg: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Recording folder holding the segments (`seg-*.wal`), e.g. the writer's `storage.path`.
    #[arg(long, value_name = "DIR")]
    input: PathBuf,
    /// Output folder (created; files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Format::NAMES))]
    format: String,
    /// Keep only this robot (repeat for several).
    #[arg(long = "robot", value_name = "NAME")]
    robots: Vec<String>,
    /// Keep only topics whose full name matches this regular expression (e.g. `imu|scan`).
    #[arg(long, value_name = "REGEX")]
    topic: Option<String>,
    /// Keep only messages received at or after T.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    start: Option<u64>,
    /// Keep only messages received at or before T.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    end: Option<u64>,
    /// Also read segments that are not sealed (being written, or left by a crash and not recovered).
    #[arg(long)]
    include_unsealed: bool,
    /// Rows per Parquet row group (at most).
    #[arg(long, default_value_t = 1 << 20, value_name = "N")]
    row_group_rows: usize,
    /// Encoded megabytes per Parquet row group (at most).
    #[arg(long, default_value_t = 128, value_name = "MB")]
    row_group_mb: usize,
    /// Write one time-aligned table over these topics (full names, comma-separated) instead of a
    /// table per topic; needs --on or --rate, and --max-age. See below.
    #[arg(long, value_name = "TOPIC,...", value_delimiter = ',', num_args = 1..)]
    align: Vec<String>,
    /// Alignment ticks: the receive time of every message of this topic (its fields are included).
    #[arg(long, value_name = "TOPIC", requires = "align", conflicts_with = "rate")]
    on: Option<String>,
    /// Alignment ticks: a fixed rate in Hz (e.g. 10).
    #[arg(long, value_name = "HZ", requires = "align")]
    rate: Option<f64>,
    /// Alignment tolerance: a topic whose latest message is older than this at a tick makes the
    /// tick stale (dropped). A number with ns, us, ms or s (100ms, 0.5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "align")]
    max_age: Option<u64>,
    /// Alignment memory limit for the join's index (16 bytes per aligned message); beyond this
    /// many megabytes the export stops with an error (narrow --start/--end).
    #[arg(long, value_name = "MB", default_value_t = 2048, requires = "align")]
    align_max_mb: u64,
    /// Do not draw a progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(Command::Export(a)) = cli.command {
        return match run_export(*a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                let bad_option = matches!(e.downcast_ref(), Some(exporter::ExportError::BadOption { .. }));
                ExitCode::from(if bad_option { 2 } else { 1 })
            }
        };
    }
    let config = match shared::cli::load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Status { json }) => {
            let (text, code) = shared::cli::status_command(&config, Stage::Exporter, json);
            if code == 0 || json {
                println!("{text}");
            } else {
                eprintln!("{text}");
            }
            ExitCode::from(code as u8)
        }
        Some(Command::Control { command, arg }) => {
            if arg.as_ref().is_some_and(|a| a.len() > MAX_CONTROL_ARG) {
                eprintln!("the request argument is longer than {MAX_CONTROL_ARG} bytes: shorten it");
                return ExitCode::from(2);
            }
            let (text, code) =
                shared::cli::control_command(&config, Stage::Exporter, &command, arg.as_deref().unwrap_or(""));
            if code == 0 {
                println!("{text}");
            } else {
                eprintln!("{text}");
            }
            ExitCode::from(code as u8)
        }
        _ => match exporter::service::serve(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_export(a: ExportArgs) -> anyhow::Result<()> {
    let format: Format = a.format.parse().map_err(anyhow::Error::msg)?;
    let mut opts = ExportOptions::new(a.input, a.out, format);
    opts.robots = a.robots;
    opts.topic_regex = a.topic;
    opts.start_ns = a.start;
    opts.end_ns = a.end;
    opts.include_unsealed = a.include_unsealed;
    opts.limits = Limits { row_group_rows: a.row_group_rows.max(1), row_group_bytes: a.row_group_mb.max(1) << 20 };
    if !a.align.is_empty() {
        let bad = |option, reason: &str| exporter::ExportError::BadOption { option, reason: reason.into() };
        let reference = match (a.on, a.rate) {
            (Some(t), None) => Reference::Topic(t),
            (None, Some(hz)) => Reference::Rate(hz),
            _ => return Err(bad("--align", "needs the ticks: --on TOPIC or --rate HZ").into()),
        };
        let max_age_ns =
            a.max_age.ok_or_else(|| bad("--max-age", "--align needs a tolerance, e.g. --max-age 100ms"))?;
        opts.align = Some(AlignSpec { topics: a.align, reference, max_age_ns });
        opts.align_max_bytes = a.align_max_mb.saturating_mul(1 << 20);
    }
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let manifest = export(&opts, &mut |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("segment {}/{}, {} messages", p.segments_done, p.segments_total, p.messages));
    })
    .with_context(|| format!("export of {} failed", opts.input.display()))?;
    bar.finish_and_clear();
    let t = &manifest.totals;
    tracing::info!(
        out = %opts.out.display(),
        format = format.name(),
        topics = manifest.topics.len(),
        messages = t.messages,
        files = manifest.files.len(),
        segments_read = t.segments_read,
        segments_skipped = t.segments_skipped,
        corrupt_records = t.corrupt_records,
        decode_errors = t.decode_errors,
        "export done (manifest.json)"
    );
    Ok(())
}
