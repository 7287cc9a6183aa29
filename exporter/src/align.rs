//! Time alignment (`--align`): one table over chosen topics on one time grid, by as-of join.
//!
//! The grid is either a reference topic's receive times (one tick per message of it) or a fixed
//! rate (ticks every `1/rate` s from `--start`, or the first selected message, to `--end`, or
//! the last). At each tick every aligned topic contributes its latest message received **at or
//! before** the tick (never a later one); if that message is older than the maximum age the
//! topic is stale there, if there is none it is missing, and the whole tick is dropped and
//! counted. The join runs on receive times (`receive_time_ns`), the one clock every record has.
//!
//! Memory holds 16 bytes per aligned message and a window of rows, never the decoded topics: the
//! export reads the segments twice. The
//! first pass keeps only each aligned message's receive time and ordinal (16 bytes), and
//! [`plan_join`] decides from them which message of each topic goes into each row. The second
//! pass decodes only those messages and writes rows ([`AlignedTable`]) as soon as every message
//! they need has been read, dropping the messages no later row uses (`export.rs`). The in-memory
//! [`write_aligned`] does the same over decoded batches (tests, tools).
//!
//! Layout (Parquet and CSV alike): a `time_ns` column (the tick), then per topic its
//! `receive_time_ns`, `publish_time_ns`, `sequence` and message fields, flat, named by their
//! dotted path under the topic's column name (`robot1__imu.linear_acceleration.x`): one row is
//! one sample, one column one feature. Arrays stay Arrow lists (CSV: JSON arrays).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;

use crate::column::{Batch, Column};
use crate::error::{io_err, ExportError, Result};
use crate::format::csv::{column_at, leaves, push_csv_text, push_scalar, Leaf};
use crate::format::{create_file, Format, Limits};
use crate::manifest::{AlignedTopic, Alignment};
use crate::msgdef::Primitive;
use crate::names::sanitize_component;
use crate::plan::{Node, Plan, StructNode};
use crate::value::write_json;

/// Rows handed to the writer at a time.
pub const CHUNK_ROWS: usize = 8192;
/// Most ticks of a `--rate` grid (a guard against a rate typo such as `--rate 1e9`).
pub const MAX_TICKS: u64 = 1 << 32;
/// Name of the tick column.
pub const TIME_COLUMN: &str = "time_ns";
/// File stem of the aligned table.
pub const FILE_STEM: &str = "aligned";

/// The time grid of an alignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// One tick per message of this topic (full name), at its receive time.
    Topic(String),
    /// A tick every `1 / hz` seconds.
    Rate(f64),
}

/// What `--align` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignSpec {
    /// Topics to align (full names), in column order.
    pub topics: Vec<String>,
    /// The grid.
    pub reference: Reference,
    /// A topic's latest message older than this at a tick makes the tick stale (dropped), ns.
    pub max_age_ns: u64,
}

impl AlignSpec {
    /// Every topic of the table in column order: the reference topic first, then `topics`
    /// (each once).
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Reference::Topic(t) = &self.reference {
            out.push(t.clone());
        }
        for t in &self.topics {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }

    /// Checks the spec; the error names the option.
    pub fn validate(&self, format: Format) -> Result<()> {
        let bad = |option: &'static str, reason: String| Err(ExportError::BadOption { option, reason });
        if !matches!(format, Format::Parquet | Format::Csv) {
            return bad("--align", format!("an aligned table is written as parquet or csv, not {}", format.name()));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return bad(
                "--align",
                "give one or more full topic names, comma-separated (/robot1/imu,/robot1/odom)".into(),
            );
        }
        if let Reference::Rate(hz) = self.reference {
            if !(hz.is_finite() && hz > 0.0 && 1e9 / hz >= 1.0) {
                return bad("--rate", format!("{hz} is not a rate in Hz between 0 and 1e9"));
            }
        }
        let mut seen = HashMap::new();
        for t in self.columns() {
            if let Some(other) = seen.insert(column_name(&t), t.clone()) {
                return bad(
                    "--align",
                    format!("topics `{other}` and `{t}` map to the same column {}", column_name(&t)),
                );
            }
        }
        Ok(())
    }

    /// Period of a rate grid in ns.
    fn period_ns(&self) -> Option<u64> {
        match self.reference {
            Reference::Rate(hz) => Some(((1e9 / hz).round() as u64).max(1)),
            Reference::Topic(_) => None,
        }
    }
}

/// Column (CSV prefix) of a topic: its name without the leading `/`, `/` as `__`, every
/// character outside `[A-Za-z0-9_-]` as `_` (`/robot1/imu` -> `robot1__imu`).
pub fn column_name(topic: &str) -> String {
    let parts: Vec<String> = topic.split('/').filter(|p| !p.is_empty()).map(sanitize_component).collect();
    if parts.is_empty() {
        "_".into()
    } else {
        parts.join("__")
    }
}

/// One aligned topic's decoded messages (the in-memory form, [`write_aligned`]).
#[derive(Debug)]
pub struct AlignInput {
    /// Topic name.
    pub topic: String,
    /// Robot name.
    pub robot: String,
    /// Its plan.
    pub plan: Arc<Plan>,
    /// Every selected message, in recording order.
    pub batch: Batch,
}

/// Where the grid may start and end (the `--start` / `--end` filters).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// `--start`, ns.
    pub start_ns: Option<u64>,
    /// `--end`, ns.
    pub end_ns: Option<u64>,
}

/// One aligned topic's receive times, without values: the first pass of an export.
#[derive(Debug, Clone, Default)]
pub struct TopicTimes {
    /// Topic name.
    pub topic: String,
    /// Robot name.
    pub robot: String,
    /// `(receive time, ordinal)` of every decodable selected message, in recording order; the
    /// ordinal numbers the topic's selected messages in recording order.
    pub times: Vec<(u64, u64)>,
}

/// The join, decided on times alone: which message of each topic goes into each row.
#[derive(Debug, Clone, Default)]
pub struct JoinPlan {
    /// The tick of each row written.
    pub ticks: Vec<u64>,
    /// Per topic (in column order), the ordinal of the message of each row.
    pub picks: Vec<Vec<u64>>,
    /// Policy, tolerance, counts (`file` not set yet).
    pub alignment: Alignment,
}

impl JoinPlan {
    /// Per topic, the sorted distinct ordinals some row uses (the messages to decode).
    pub fn needed(&self) -> Vec<Vec<u64>> {
        self.picks
            .iter()
            .map(|p| {
                let mut v = p.clone();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect()
    }

    /// Per topic, `suffix_min[r]` = the smallest ordinal rows `r..` use (`u64::MAX` past the end):
    /// messages below it are no longer needed once rows `..r` are written.
    pub fn suffix_min(&self) -> Vec<Vec<u64>> {
        self.picks
            .iter()
            .map(|p| {
                let mut out = vec![u64::MAX; p.len() + 1];
                for r in (0..p.len()).rev() {
                    out[r] = out[r + 1].min(p[r]);
                }
                out
            })
            .collect()
    }
}

/// One topic during the join: its messages in time order and a cursor.
struct Source<'a> {
    /// `(receive time, ordinal)` in ascending time (stable: recording order among equal times).
    sorted: Vec<(u64, u64)>,
    /// Entries of `sorted` at or before the current tick.
    seen: usize,
    topic: &'a TopicTimes,
    missing: u64,
    stale: u64,
}

impl<'a> Source<'a> {
    fn new(topic: &'a TopicTimes) -> Source<'a> {
        let mut sorted = topic.times.clone();
        // Stable: messages with equal times keep their recording order, the last one wins.
        sorted.sort_by_key(|(t, _)| *t);
        Source { sorted, seen: 0, topic, missing: 0, stale: 0 }
    }

    /// `(time, ordinal)` of the latest message at or before `tick` (ticks come in ascending order).
    fn at_or_before(&mut self, tick: u64) -> Option<(u64, u64)> {
        while self.seen < self.sorted.len() && self.sorted[self.seen].0 <= tick {
            self.seen += 1;
        }
        self.seen.checked_sub(1).map(|i| self.sorted[i])
    }
}

const DESCRIPTION: &str = "as-of join on receive time: at each tick, every topic's latest message received at or \
     before the tick (never a later one); a tick where a topic has no such message (missing) or only one older than \
     max_age_ns (stale) is dropped and counted";

/// Decides the join from the topics' times (one per topic of [`AlignSpec::columns`], in that
/// order): the ticks, which rows are kept, and which message of each topic each row takes.
pub fn plan_join(spec: &AlignSpec, window: Window, topics: &[TopicTimes]) -> Result<JoinPlan> {
    let mut sources: Vec<Source<'_>> = topics.iter().map(Source::new).collect();
    let mut a = Alignment {
        policy: "asof_backward".into(),
        description: DESCRIPTION.into(),
        clock: "receive_time_ns".into(),
        max_age_ns: spec.max_age_ns,
        ..Alignment::default()
    };
    // The ticks: the reference topic's messages, or a grid.
    let grid: Box<dyn Iterator<Item = (u64, Option<u64>)>> = match &spec.reference {
        Reference::Topic(t) => {
            a.reference = "topic".into();
            a.reference_topic = Some(t.clone());
            let r = sources.first().filter(|s| &s.topic.topic == t).ok_or_else(|| ExportError::BadOption {
                option: "--on",
                reason: format!("reference topic {t} is not the first aligned input"),
            })?;
            let pairs: Vec<(u64, Option<u64>)> = r.sorted.iter().map(|(t, o)| (*t, Some(*o))).collect();
            Box::new(pairs.into_iter())
        }
        Reference::Rate(hz) => {
            let period = spec.period_ns().unwrap_or(1);
            a.reference = "rate".into();
            a.rate_hz = Some(*hz);
            a.period_ns = Some(period);
            let first = sources.iter().filter_map(|s| s.sorted.first().map(|x| x.0)).min();
            let last = sources.iter().filter_map(|s| s.sorted.last().map(|x| x.0)).max();
            match (window.start_ns.or(first), window.end_ns.or(last)) {
                (Some(start), Some(end)) if start <= end => {
                    let n = (end - start) / period + 1;
                    if n > MAX_TICKS {
                        return Err(ExportError::BadOption {
                            option: "--rate",
                            reason: format!("{n} ticks between {start} and {end}: more than {MAX_TICKS}"),
                        });
                    }
                    Box::new((0..n).map(move |k| (start + k * period, None)))
                }
                _ => Box::new(std::iter::empty()),
            }
        }
    };
    let reference_is_first = matches!(spec.reference, Reference::Topic(_));
    let mut plan = JoinPlan { picks: vec![Vec::new(); sources.len()], ..JoinPlan::default() };
    let mut row = vec![0u64; sources.len()];
    for (tick, own) in grid {
        a.ticks += 1;
        if a.ticks == 1 {
            a.first_tick_ns = tick;
        }
        a.last_tick_ns = tick;
        let (mut missing, mut stale) = (false, false);
        for (i, s) in sources.iter_mut().enumerate() {
            let found = match own {
                // The reference topic's row is the tick's own message (age 0).
                Some(o) if i == 0 && reference_is_first => {
                    s.at_or_before(tick);
                    Some((tick, o))
                }
                _ => s.at_or_before(tick),
            };
            match found {
                None => {
                    s.missing += 1;
                    missing = true;
                }
                Some((t, _)) if tick - t > spec.max_age_ns => {
                    s.stale += 1;
                    stale = true;
                }
                Some((_, o)) => row[i] = o,
            }
        }
        if missing {
            a.dropped_missing += 1;
        } else if stale {
            a.dropped_stale += 1;
        } else {
            plan.ticks.push(tick);
            for (p, o) in plan.picks.iter_mut().zip(&row) {
                p.push(*o);
            }
            a.rows += 1;
        }
    }
    a.dropped_rows = a.dropped_missing + a.dropped_stale;
    a.topics = sources
        .iter()
        .map(|s| AlignedTopic {
            topic: s.topic.topic.clone(),
            robot: s.topic.robot.clone(),
            column: column_name(&s.topic.topic),
            messages: s.sorted.len() as u64,
            missing: s.missing,
            stale: s.stale,
        })
        .collect();
    plan.alignment = a;
    Ok(plan)
}

/// The aligned table being written: the column tree of a virtual plan over every topic, and
/// the writer. Rows are appended one by one and written in chunks of [`CHUNK_ROWS`].
pub struct AlignedTable {
    data: Column,
    writer: TableOut,
    path: PathBuf,
}

impl std::fmt::Debug for AlignedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedTable").field("path", &self.path).finish()
    }
}

enum TableOut {
    Parquet { schema: SchemaRef, leaves: Vec<Leaf>, writer: Box<ArrowWriter<BufWriter<File>>>, limits: Limits },
    Csv { out: BufWriter<File>, leaves: Vec<Leaf>, line: String },
}

fn topic_node(plan: &Plan) -> Node {
    let u64 = Node::Prim(Primitive::U64);
    let mut fields = vec![
        ("receive_time_ns".to_string(), u64.clone()),
        ("publish_time_ns".to_string(), u64.clone()),
        ("sequence".to_string(), u64),
    ];
    fields.extend(plan.root.fields.iter().cloned());
    Node::Struct(Arc::new(StructNode { type_name: plan.root.type_name.clone(), fields }))
}

impl AlignedTable {
    /// Creates `aligned.<format>` in `out_dir` for these topics (name and plan, column order).
    pub fn create(
        out_dir: &Path,
        format: Format,
        limits: Limits,
        topics: &[(&str, &Plan)],
        alignment: &Alignment,
    ) -> Result<AlignedTable> {
        let mut fields = vec![(TIME_COLUMN.to_string(), Node::Prim(Primitive::U64))];
        for (topic, plan) in topics {
            fields.push((column_name(topic), topic_node(plan)));
        }
        let root = StructNode { type_name: "fleetrec/aligned".into(), fields };
        let data = Column::for_struct(&root);
        let path = out_dir.join(format!("{FILE_STEM}{}", format.suffix()));
        let err = |e: &dyn std::fmt::Display| write_err(format, &path, e);
        let mut ls = Vec::new();
        leaves(&root.fields, "", &mut Vec::new(), &mut ls);
        let writer = match format {
            Format::Csv => {
                let mut out = create_file(&path)?;
                let mut header = String::new();
                for (i, l) in ls.iter().enumerate() {
                    if i > 0 {
                        header.push(',');
                    }
                    push_csv_text(&mut header, &l.name);
                }
                header.push('\n');
                out.write_all(header.as_bytes()).map_err(io_err("write", &path))?;
                TableOut::Csv { out, leaves: ls, line: String::new() }
            }
            _ => {
                let meta = serde_json::json!({
                    "policy": alignment.policy, "clock": alignment.clock, "reference": alignment.reference,
                    "reference_topic": alignment.reference_topic, "rate_hz": alignment.rate_hz,
                    "max_age_ns": alignment.max_age_ns,
                });
                let mut md = HashMap::new();
                md.insert("fleetrec.alignment".to_string(), meta.to_string());
                // Flat: one column per leaf, named by its dotted path, so a row is one sample
                // and pandas/polars/DuckDB see plain columns (lists stay lists).
                let arrow_fields: Vec<Field> = ls
                    .iter()
                    .map(|l| Field::new(l.name.clone(), crate::format::arrow::data_type(&l.node), false))
                    .collect();
                let schema: SchemaRef = Arc::new(Schema::new_with_metadata(arrow_fields, md));
                let props = crate::format::parquet::writer_properties(&schema, limits).map_err(|e| err(&e))?;
                let file = create_file(&path)?;
                let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| err(&e))?;
                TableOut::Parquet { schema, leaves: ls, writer: Box::new(writer), limits }
            }
        };
        Ok(AlignedTable { data, writer, path })
    }

    /// Appends one row: the tick and, per topic (column order), row `.1` of batch `.0`.
    pub fn push(&mut self, tick: u64, sources: &[(&Batch, usize)]) -> Result<()> {
        let shape_err = self.shape_err();
        let Column::Struct(cols) = &mut self.data else { return Err(shape_err) };
        let mut ok = push_u64(cols.first_mut(), tick) && cols.len() == sources.len() + 1;
        for (&(b, row), col) in sources.iter().zip(cols.iter_mut().skip(1)) {
            let (Column::Struct(parts), Column::Struct(msg)) = (col, &b.data) else { return Err(shape_err) };
            for (i, v) in [&b.receive_time_ns, &b.publish_time_ns, &b.sequence].into_iter().enumerate() {
                ok &= match v.get(row) {
                    Some(x) => push_u64(parts.get_mut(i), *x),
                    None => false,
                };
            }
            for (d, src) in parts.iter_mut().skip(3).zip(msg) {
                ok &= d.extend_from(src, row, 1);
            }
        }
        if !ok {
            return Err(shape_err);
        }
        if self.data.len() >= CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn shape_err(&self) -> ExportError {
        write_err(Format::Parquet, &self.path, &"aligned columns do not match their plans")
    }

    fn flush(&mut self) -> Result<()> {
        let rows = self.data.len();
        if rows == 0 {
            return Ok(());
        }
        let data = self.data.take();
        match &mut self.writer {
            TableOut::Parquet { schema, leaves, writer, limits } => {
                let err = |e: &dyn std::fmt::Display| write_err(Format::Parquet, &self.path, e);
                let mut cols = Vec::with_capacity(leaves.len());
                flatten_struct(data, &mut cols);
                if cols.len() != leaves.len() {
                    return Err(err(&"aligned columns do not match their leaves"));
                }
                let arrays: Vec<ArrayRef> = cols
                    .into_iter()
                    .zip(leaves.iter())
                    .map(|(c, l)| crate::format::arrow::array(c, &l.node))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| err(&e))?;
                let rb = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| err(&e))?;
                writer.write(&rb).map_err(|e| err(&e))?;
                if writer.in_progress_size() >= limits.row_group_bytes {
                    writer.flush().map_err(|e| err(&e))?;
                }
            }
            TableOut::Csv { out, leaves, line } => {
                use std::fmt::Write as _;
                let mut json = String::new();
                for row in 0..rows {
                    line.clear();
                    for (i, leaf) in leaves.iter().enumerate() {
                        if i > 0 {
                            line.push(',');
                        }
                        let Some(col) = column_at(&data, &leaf.path) else { continue };
                        if !push_scalar(line, col, row) {
                            json.clear();
                            write_json(&col.value_at(&leaf.node, row), &mut json);
                            push_csv_text(line, &json);
                        }
                    }
                    let _ = writeln!(line);
                    out.write_all(line.as_bytes()).map_err(io_err("write", &self.path))?;
                }
            }
        }
        Ok(())
    }

    /// Writes what is left and completes the file; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.flush()?;
        let path = self.path;
        let file = match self.writer {
            TableOut::Parquet { writer, .. } => {
                let err = |e: &dyn std::fmt::Display| write_err(Format::Parquet, &path, e);
                let inner = writer.into_inner().map_err(|e| err(&e))?;
                inner.into_inner().map_err(|e| err(e.error()))?
            }
            TableOut::Csv { out, .. } => out.into_inner().map_err(|e| ExportError::Io {
                op: "write",
                path: path.clone(),
                source: e.into_error(),
            })?,
        };
        file.sync_all().map_err(io_err("fsync", &path))?;
        Ok(path)
    }
}

/// The leaves of a struct column, in [`leaves`] order (nested structs opened, arrays kept).
fn flatten_struct(col: Column, out: &mut Vec<Column>) {
    match col {
        Column::Struct(children) => {
            for c in children {
                match c {
                    Column::Struct(_) => flatten_struct(c, out),
                    other => out.push(other),
                }
            }
        }
        other => out.push(other),
    }
}

fn push_u64(col: Option<&mut Column>, v: u64) -> bool {
    match col {
        Some(Column::U64(d)) => {
            d.push(v);
            true
        }
        _ => false,
    }
}

fn write_err(format: Format, path: &Path, e: &dyn std::fmt::Display) -> ExportError {
    ExportError::Write {
        format: format.name(),
        path: path.to_path_buf(),
        topic: "(aligned)".into(),
        reason: e.to_string(),
    }
}

/// Joins in-memory inputs (one per topic of [`AlignSpec::columns`], in that order) and writes
/// the aligned table into `out_dir` (tests and small tools; the export streams, see
/// `export.rs`). Returns the manifest's alignment entry and the file.
pub fn write_aligned(
    spec: &AlignSpec,
    format: Format,
    out_dir: &Path,
    limits: Limits,
    window: Window,
    inputs: Vec<AlignInput>,
) -> Result<(Alignment, PathBuf)> {
    let times: Vec<TopicTimes> = inputs
        .iter()
        .map(|i| TopicTimes {
            topic: i.topic.clone(),
            robot: i.robot.clone(),
            times: i.batch.receive_time_ns.iter().enumerate().map(|(o, t)| (*t, o as u64)).collect(),
        })
        .collect();
    let plan = plan_join(spec, window, &times)?;
    let topics: Vec<(&str, &Plan)> = inputs.iter().map(|i| (i.topic.as_str(), i.plan.as_ref())).collect();
    let mut table = AlignedTable::create(out_dir, format, limits, &topics, &plan.alignment)?;
    for (r, tick) in plan.ticks.iter().enumerate() {
        let row: Vec<(&Batch, usize)> =
            inputs.iter().zip(&plan.picks).map(|(i, p)| (&i.batch, p[r] as usize)).collect();
        table.push(*tick, &row)?;
    }
    let path = table.finish()?;
    let mut a = plan.alignment;
    a.file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((a, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imu_plan() -> Arc<Plan> {
        let def = "float64 x\nint32[] v\n";
        Arc::new(Plan::compile("t/msg/T", def).unwrap())
    }

    fn input(topic: &str, times: &[u64]) -> AlignInput {
        let plan = imu_plan();
        let mut batch = Batch::new(&plan);
        for (i, t) in times.iter().enumerate() {
            // CDR LE: x = t as f64, v = [i]
            let mut p = vec![0, 1, 0, 0];
            p.extend_from_slice(&(*t as f64).to_le_bytes());
            p.extend_from_slice(&1u32.to_le_bytes());
            p.extend_from_slice(&(i as i32).to_le_bytes());
            batch.push(&plan, (*t, 0, i as u64 + 1), &p).unwrap();
        }
        AlignInput { topic: topic.into(), robot: "r".into(), plan, batch }
    }

    #[test]
    fn column_names() {
        assert_eq!(column_name("/robot1/imu"), "robot1__imu");
        assert_eq!(column_name("/robot1/camera/image_raw"), "robot1__camera__image_raw");
        assert_eq!(column_name("/../x y"), "____x_y");
    }

    #[test]
    fn rate_grid_takes_latest_at_or_before_and_drops_missing_and_stale() {
        let dir = tempfile::tempdir().unwrap();
        let spec =
            AlignSpec { topics: vec!["/a".into(), "/b".into()], reference: Reference::Rate(10.0), max_age_ns: 150 };
        // ticks every 100 ns? no: 10 Hz = 100 ms; use a window in ns units of the grid instead
        let spec = AlignSpec { reference: Reference::Rate(1e7), ..spec }; // period 100 ns
        let a = input("/a", &[100, 150, 290, 300]);
        let b = input("/b", &[120, 310]);
        let (al, path) = write_aligned(
            &spec,
            Format::Csv,
            dir.path(),
            Limits { row_group_rows: 10, row_group_bytes: 1 << 20 },
            Window { start_ns: Some(100), end_ns: Some(600) },
            vec![a, b],
        )
        .unwrap();
        // ticks 100..=600: 100 (b missing), 200 (a=150, b=120), 300 (a=300, b=120: age 180 > 150 stale),
        // 400 (a=300, b=310), 500 (a=300 age 200 stale), 600 (stale)
        assert_eq!(al.ticks, 6);
        assert_eq!(al.rows, 2);
        assert_eq!((al.dropped_missing, al.dropped_stale, al.dropped_rows), (1, 3, 4));
        assert_eq!((al.topics[0].missing, al.topics[0].stale), (0, 2));
        assert_eq!((al.topics[1].missing, al.topics[1].stale), (1, 3));
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "time_ns,a.receive_time_ns,a.publish_time_ns,a.sequence,a.x,a.v,b.receive_time_ns,b.publish_time_ns,b.sequence,b.x,b.v");
        assert_eq!(lines[1], "200,150,0,2,150.0,[1],120,0,1,120.0,[0]");
        assert_eq!(lines[2], "400,300,0,4,300.0,[3],310,0,2,310.0,[1]");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn reference_topic_rows_are_its_own_messages() {
        let dir = tempfile::tempdir().unwrap();
        let spec = AlignSpec { topics: vec!["/f".into()], reference: Reference::Topic("/r".into()), max_age_ns: 1000 };
        // recorded out of order: the join sorts by time
        let r = input("/r", &[50, 200, 100]);
        let f = input("/f", &[100, 60, 201]);
        let (al, path) = write_aligned(
            &spec,
            Format::Csv,
            dir.path(),
            Limits { row_group_rows: 10, row_group_bytes: 1 << 20 },
            Window::default(),
            vec![r, f],
        )
        .unwrap();
        assert_eq!((al.ticks, al.rows, al.dropped_missing), (3, 2, 1));
        let text = std::fs::read_to_string(path).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
        // tick 100: r's own message (seq 3), f's message at exactly 100 (seq 1); tick 200: f = 100, not 201
        assert_eq!(rows[0][..5], ["100", "100", "0", "3", "100.0"]);
        assert_eq!(rows[0][6..9], ["100", "0", "1"]);
        assert_eq!(rows[1][..4], ["200", "200", "0", "2"]);
        assert_eq!(rows[1][6..9], ["100", "0", "1"]);
    }

    #[test]
    fn spec_validation() {
        let s = AlignSpec { topics: vec!["/a".into()], reference: Reference::Rate(10.0), max_age_ns: 1 };
        assert!(s.validate(Format::Parquet).is_ok());
        assert!(s.validate(Format::Npy).is_err());
        assert!(AlignSpec { reference: Reference::Rate(0.0), ..s.clone() }.validate(Format::Csv).is_err());
        assert!(AlignSpec { topics: vec![], ..s.clone() }.validate(Format::Csv).is_err());
        assert!(AlignSpec { topics: vec!["/a/b".into(), "/a__b".into()], ..s }.validate(Format::Csv).is_err());
    }
}
