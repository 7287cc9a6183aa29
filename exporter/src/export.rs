//! The export: reads the segments of a recording folder in order, follows the topic definitions
//! they carry, selects messages (robot, topic regex, receive-time range), decodes them into
//! batches and hands the batches to one writer per robot and topic (or copies them to MCAP),
//! then writes `manifest.json`.
//!
//! Memory is bounded: one segment in memory at a time, and per topic one batch of at most
//! [`ExportOptions::batch_rows`] rows or [`ExportOptions::batch_bytes`] bytes.
//! Corrupt records are skipped and counted; a payload that does not decode is skipped, counted
//! and logged; a topic without a usable definition is exported as raw CDR bytes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use regex::Regex;
use shared::plane::MessageHeader;
use shared::segment::{consts, scan, Record, ScanMode, SegmentManifest, Tail};
use shared::topic::TopicInfo;
use tracing::{error, info, warn};

use crate::align::{plan_join, AlignSpec, AlignedTable, JoinPlan, TopicTimes, Window, CHUNK_ROWS};
use crate::column::Batch;
use crate::error::{io_err, ExportError, Result};
use crate::format::mcap::{McapChannel, McapOutput};
use crate::format::{open_table, Format, Limits, StreamMeta, TableWriter};
use crate::manifest::{
    hash_file, write_manifest, ExportManifest, FileEntry, Filters, SegmentEntry, TopicEntry, Totals, MANIFEST_FORMAT,
};
use crate::names::{sanitize_component, NameAllocator};
use crate::plan::Plan;

/// Decode errors logged in full per topic; the rest are only counted.
const LOGGED_ERRORS_PER_TOPIC: u64 = 5;
/// Progress is reported (and cancellation checked) at least every this many records.
const PROGRESS_EVERY_RECORDS: usize = 16384;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Recording folder (segments `seg-*.wal`).
    pub input: PathBuf,
    /// Output folder (created).
    pub out: PathBuf,
    /// Output format.
    pub format: Format,
    /// Robot names to keep (empty: all).
    pub robots: Vec<String>,
    /// Regular expression a topic name must match (`Regex::is_match`), if any.
    pub topic_regex: Option<String>,
    /// Earliest receive time kept (inclusive), ns since the epoch.
    pub start_ns: Option<u64>,
    /// Latest receive time kept (inclusive), ns since the epoch.
    pub end_ns: Option<u64>,
    /// Also read segments without a valid sidecar manifest (being written, or left by a crash).
    pub include_unsealed: bool,
    /// Most rows per batch handed to a writer. Default 8192.
    pub batch_rows: usize,
    /// Most decoded bytes per batch. Default 8 MiB (below glibc's largest mmap threshold, so the
    /// buffers of one batch are reused by the next instead of being mapped and faulted in anew).
    pub batch_bytes: usize,
    /// Parquet row group limits.
    pub limits: Limits,
    /// Write one time-aligned table over these topics instead of a table per topic.
    pub align: Option<AlignSpec>,
    /// Most bytes the join's index of the aligned topics may take (16 bytes per message); beyond
    /// it the export fails with a clear error. Default 2 GiB.
    pub align_max_bytes: u64,
    /// `--align`, second pass: rows are written in chunks of this many, as soon as every message
    /// they need has been read. Default [`CHUNK_ROWS`].
    pub align_chunk_rows: usize,
    /// Set to true to stop the export early ([`ExportError::Cancelled`]); checked between
    /// batches of records. The output folder is then left without `manifest.json`.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ExportOptions {
    /// Options with the defaults.
    pub fn new(input: PathBuf, out: PathBuf, format: Format) -> ExportOptions {
        ExportOptions {
            input,
            out,
            format,
            robots: Vec::new(),
            topic_regex: None,
            start_ns: None,
            end_ns: None,
            include_unsealed: false,
            batch_rows: 8192,
            batch_bytes: 8 << 20,
            limits: Limits { row_group_rows: 1 << 20, row_group_bytes: 128 << 20 },
            align: None,
            align_max_bytes: 2 << 30,
            align_chunk_rows: CHUNK_ROWS,
            cancel: None,
        }
    }
}

/// Progress, reported after each segment and every few thousand records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Segments done.
    pub segments_done: u64,
    /// Segments to read.
    pub segments_total: u64,
    /// Segment bytes done.
    pub bytes_done: u64,
    /// Segment bytes to read.
    pub bytes_total: u64,
    /// Messages exported so far.
    pub messages: u64,
    /// Messages the export will go through, from the segments' sidecar manifests: the selected
    /// robots' and topics' messages of every segment read (exact unless `--start`/`--end` cut
    /// through a segment or unsealed segments are read; then an estimate).
    pub messages_total: u64,
}

enum Sink {
    None,
    Table(Box<dyn TableWriter>),
    Mcap(McapChannel),
}

struct Stream {
    info: TopicInfo,
    plan: Arc<Plan>,
    entry: TopicEntry,
    batch: Batch,
    sink: Sink,
    generation: u32,
    last_seq: HashMap<u32, u64>,
}

struct Exporter<'a> {
    opts: &'a ExportOptions,
    regex: Option<Regex>,
    /// `--align`: the topics selected (by exact name) and held for the join.
    align_names: Option<HashSet<String>>,
    streams: HashMap<u32, Stream>,
    done: Vec<TopicEntry>,
    names: NameAllocator,
    mcap: Option<McapOutput>,
    totals: Totals,
    files: Vec<PathBuf>,
    /// Reused for every segment read.
    read_buf: Vec<u8>,
    /// `--align`: the two passes' state.
    align: Option<AlignRun>,
    /// Second pass of `--align`: logs of the first pass are not repeated.
    quiet: bool,
}

/// `--align` runs in two passes over the segments. The first decodes every selected message of
/// the aligned topics (to count and skip the ones that do not decode) but keeps only its receive
/// time and ordinal; the join is planned on these ([`plan_join`]). The second decodes only the
/// messages some row uses and writes rows as soon as every message they need has been read, so
/// memory holds the times (16 bytes per message, capped by `align_max_bytes`) and a window of
/// rows, never the decoded topics.
#[derive(Default)]
struct AlignRun {
    /// Per topic id: selected messages seen in this pass (the next ordinal).
    ordinals: HashMap<u32, u64>,
    /// First pass: per topic id, `(receive time, ordinal)` of every decodable message.
    times: HashMap<u32, Vec<(u64, u64)>>,
    /// Bytes held by `times`.
    held_bytes: u64,
    /// Second pass.
    values: Option<ValuesPass>,
    /// The first pass's streams and totals (the manifest reports them, not the second pass's).
    pass1: Option<(HashMap<u32, Stream>, Totals)>,
}

struct ValuesPass {
    /// Topic id of each column.
    ids: Vec<u32>,
    /// Column of each topic id.
    column_of: HashMap<u32, usize>,
    plans: Vec<Arc<Plan>>,
    /// Per column, the sorted ordinals some row uses, and the next one to meet.
    needed: Vec<Vec<u64>>,
    next_needed: Vec<usize>,
    /// Per column, decoded messages still needed, and their ordinals (ascending).
    held: Vec<Batch>,
    held_ordinals: Vec<Vec<u64>>,
    join: JoinPlan,
    suffix_min: Vec<Vec<u64>>,
    next_row: usize,
    table: Option<AlignedTable>,
}

/// Exports a recording; returns the manifest (also written as `manifest.json`).
pub fn export(opts: &ExportOptions, progress: &mut dyn FnMut(&Progress)) -> Result<ExportManifest> {
    let regex = match &opts.topic_regex {
        Some(r) => {
            Some(Regex::new(r).map_err(|e| ExportError::BadOption { option: "--topic", reason: e.to_string() })?)
        }
        None => None,
    };
    if let (Some(s), Some(e)) = (opts.start_ns, opts.end_ns) {
        if s > e {
            return Err(ExportError::BadOption { option: "--start", reason: format!("start {s} is after end {e}") });
        }
    }
    if let Some(spec) = &opts.align {
        spec.validate(opts.format)?;
        if opts.topic_regex.is_some() {
            return Err(ExportError::BadOption {
                option: "--topic",
                reason: "--align names its topics; --topic cannot be combined with it".into(),
            });
        }
    }
    if !opts.input.is_dir() {
        return Err(ExportError::BadOption {
            option: "--input",
            reason: format!("{} is not a folder", opts.input.display()),
        });
    }
    let (mut segments, to_read, expected) = list_segments(opts, regex.as_ref())?;
    std::fs::create_dir_all(&opts.out).map_err(io_err("create folder", &opts.out))?;
    let mut ex = Exporter {
        opts,
        regex,
        align_names: opts.align.as_ref().map(|a| a.columns().into_iter().collect()),
        streams: HashMap::new(),
        done: Vec::new(),
        names: NameAllocator::default(),
        mcap: (opts.format == Format::Mcap).then(|| McapOutput::new(&opts.out)),
        totals: Totals::default(),
        files: Vec::new(),
        read_buf: Vec::new(),
        align: opts.align.as_ref().map(|_| AlignRun::default()),
        quiet: false,
    };
    // `--align` reads the segments twice.
    let passes = if opts.align.is_some() { 2 } else { 1 };
    let mut p = Progress {
        segments_total: to_read.len() as u64 * passes,
        bytes_total: to_read.iter().map(|i| segments[*i].size).sum::<u64>() * passes,
        messages_total: to_read.iter().map(|i| expected[*i]).sum(),
        ..Progress::default()
    };
    progress(&p);
    for &i in &to_read {
        let entry = &mut segments[i];
        let path = opts.input.join(&entry.file);
        let mut tick = |messages: u64| {
            progress(&Progress { messages, ..p });
        };
        ex.read_segment(&path, entry, &mut tick)?;
        p.segments_done += 1;
        p.bytes_done += entry.size;
        p.messages = ex.totals.messages;
        progress(&p);
    }
    if let Some(spec) = &opts.align {
        ex.start_values_pass(spec)?;
        for &i in &to_read {
            // The first pass recorded what the segment holds; this one only takes values.
            let mut scratch = segments[i].clone();
            let path = opts.input.join(&scratch.file);
            ex.read_segment(&path, &mut scratch, &mut |_| {})?;
            ex.write_ready_rows(false)?;
            p.segments_done += 1;
            p.bytes_done += scratch.size;
            progress(&p);
        }
        ex.write_ready_rows(true)?;
    }
    ex.finish(segments)
}

/// Every `*.wal` of the input, sorted, which of them to read, and how many selected messages
/// each holds according to its sidecar manifest (0 if it has none).
fn list_segments(opts: &ExportOptions, regex: Option<&Regex>) -> Result<(Vec<SegmentEntry>, Vec<usize>, Vec<u64>)> {
    let align_names = opts.align.as_ref().map(AlignSpec::columns);
    let selected = |robot: &str, name: &str| {
        let robot_ok = opts.robots.is_empty() || opts.robots.iter().any(|r| r == robot);
        let topic_ok = match &align_names {
            Some(names) => names.iter().any(|n| n == name),
            None => regex.is_none_or(|r| r.is_match(name)),
        };
        robot_ok && topic_ok
    };
    let mut expected = Vec::new();
    let dir = &opts.input;
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let e = e.map_err(io_err("list", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(&format!(".{}", consts::SEGMENT_EXTENSION)) && e.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    let mut entries = Vec::new();
    let mut read = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let size = std::fs::metadata(&path).map_err(io_err("stat", &path))?.len();
        let manifest = std::fs::read(SegmentManifest::path_for(&path))
            .ok()
            .and_then(|b| serde_json::from_slice::<SegmentManifest>(&b).ok())
            .filter(|m| m.size == size);
        let mut entry = SegmentEntry {
            file: name,
            size,
            sha256: manifest.as_ref().map(|m| m.sha256.clone()),
            sealed: manifest.is_some(),
            status: "read".into(),
            ..SegmentEntry::default()
        };
        let skip = match &manifest {
            None if size == 0 => Some("empty (created ahead by the writer, no data yet)"),
            None if !opts.include_unsealed => {
                Some("no sidecar manifest matching its size (open or not recovered; --include-unsealed reads it)")
            }
            Some(m) if m.summary.messages > 0 && outside(opts, m.summary.first_ns, m.summary.last_ns) => {
                Some("outside the time range")
            }
            Some(m)
                if !opts.robots.is_empty()
                    && !m.summary.topics.iter().any(|t| t.robot.is_empty() || opts.robots.contains(&t.robot)) =>
            {
                Some("no topic of the selected robots")
            }
            _ => None,
        };
        match skip {
            Some(reason) => {
                entry.status = "skipped".into();
                entry.reason = Some(reason.into());
            }
            None => read.push(entries.len()),
        }
        expected.push(manifest.as_ref().map_or(0, |m| {
            m.summary
                .topics
                .iter()
                .filter(|t| selected(&t.robot, &t.name) && !outside(opts, t.first_ns, t.last_ns))
                .map(|t| t.messages)
                .sum()
        }));
        entries.push(entry);
    }
    Ok((entries, read, expected))
}

fn outside(opts: &ExportOptions, first: u64, last: u64) -> bool {
    opts.start_ns.is_some_and(|s| last < s) || opts.end_ns.is_some_and(|e| first > e)
}

impl Exporter<'_> {
    fn read_segment(&mut self, path: &Path, entry: &mut SegmentEntry, tick: &mut dyn FnMut(u64)) -> Result<()> {
        self.check_cancel()?;
        // One buffer for every segment: a fresh 64 MiB allocation per segment costs more in page
        // faults than the decoding itself.
        let mut bytes = std::mem::take(&mut self.read_buf);
        bytes.clear();
        let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut bytes));
        let result = read.map_err(io_err("read", path)).and_then(|_| self.scan_segment(path, &bytes, entry, tick));
        self.read_buf = bytes;
        result
    }

    fn scan_segment(
        &mut self,
        path: &Path,
        bytes: &[u8],
        entry: &mut SegmentEntry,
        tick: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let scanned = match scan(bytes, ScanMode::SkipCorrupt) {
            Ok(s) => s,
            Err(e) => {
                if !self.quiet {
                    error!(segment = %path.display(), error = %e, "segment header invalid: segment not exported");
                }
                entry.status = "skipped".into();
                entry.reason = Some(format!("header invalid: {e}"));
                return Ok(());
            }
        };
        entry.corrupt_records = scanned.corrupt.len() as u64;
        for c in scanned.corrupt.iter().filter(|_| !self.quiet) {
            error!(segment = %path.display(), offset = c.offset, error = %c.error, "corrupt record skipped");
        }
        if let (Tail::Torn { offset, bytes: n, error }, false) = (scanned.tail, self.quiet) {
            entry.torn_tail_bytes = n;
            if entry.sealed {
                error!(segment = %path.display(), offset, bytes = n, %error, "damaged tail: records after it lost");
            } else {
                info!(segment = %path.display(), offset, bytes = n, "unsealed segment ends in an incomplete record");
            }
        }
        for (i, r) in scanned.records.iter().enumerate() {
            if i > 0 && i % PROGRESS_EVERY_RECORDS == 0 {
                self.check_cancel()?;
                tick(self.totals.messages);
            }
            match Record::decode(r) {
                Ok(Record::Topic(t)) => self.topic(t)?,
                Ok(Record::Message(m)) => {
                    entry.messages += 1;
                    self.message(path, r.offset, &m.header, m.payload)?;
                }
                Ok(_) => {}
                Err(e) => {
                    error!(segment = %path.display(), error = %e, "undecodable record skipped");
                    entry.undecodable_records += 1;
                }
            }
        }
        self.totals.corrupt_records += entry.corrupt_records;
        self.totals.undecodable_records += entry.undecodable_records;
        Ok(())
    }

    fn check_cancel(&self) -> Result<()> {
        match &self.opts.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(ExportError::Cancelled),
            _ => Ok(()),
        }
    }

    /// A topic definition record: new topic, same one again, or a changed definition.
    fn topic(&mut self, info: TopicInfo) -> Result<()> {
        if let Some(s) = self.streams.get_mut(&info.topic_id) {
            if s.info == info {
                return Ok(());
            }
            let plan = compile(&info);
            let same = *plan == *s.plan && s.info.name == info.name && s.info.robot == info.robot;
            let aligned = self.align_names.as_ref().is_some_and(|n| n.contains(&s.info.name) || n.contains(&info.name));
            if !same && aligned && (s.batch.rows() > 0 || s.entry.messages > 0) {
                return Err(ExportError::BadOption {
                    option: "--align",
                    reason: format!(
                        "topic {} (id {:08x}) changes its definition mid-recording: align a time range with one \
                         definition (--start/--end)",
                        s.info.name, s.info.topic_id
                    ),
                });
            }
            s.info = info;
            if same {
                return Ok(());
            }
            // A different layout: close this output, the next messages go to a new one.
            let id = s.info.topic_id;
            if let Some(old) = self.streams.remove(&id) {
                let generation = old.generation + 1;
                let info = old.info.clone();
                self.close_stream(old)?;
                self.streams.insert(id, new_stream(info, plan, generation));
            }
            return Ok(());
        }
        let plan = compile(&info);
        self.streams.insert(info.topic_id, new_stream(info, plan, 0));
        Ok(())
    }

    fn message(&mut self, seg: &Path, offset: u64, h: &MessageHeader, payload: &[u8]) -> Result<()> {
        let t = h.receive_time_ns;
        if self.opts.start_ns.is_some_and(|s| t < s) || self.opts.end_ns.is_some_and(|e| t > e) {
            self.totals.filtered_out += 1;
            return Ok(());
        }
        let s = self.streams.entry(h.topic_id).or_insert_with(|| {
            let info = TopicInfo {
                topic_id: h.topic_id,
                robot_id: h.robot_id,
                robot: format!("robot{}", h.robot_id),
                name: format!("/unknown/topic_{:08x}", h.topic_id),
                type_name: String::new(),
                type_hash: String::new(),
                encoding: String::new(),
                definition: String::new(),
                qos: String::new(),
            };
            let plan = compile(&info);
            new_stream(info, plan, 0)
        });
        let robot_ok = self.opts.robots.is_empty() || self.opts.robots.contains(&s.info.robot);
        let topic_ok = match &self.align_names {
            Some(names) => names.contains(&s.info.name),
            None => self.regex.as_ref().is_none_or(|r| r.is_match(&s.info.name)),
        };
        if !robot_ok || !topic_ok {
            self.totals.filtered_out += 1;
            return Ok(());
        }
        let aligned = self.align_names.is_some();
        if let Some(run) = self.align.as_mut() {
            let counter = run.ordinals.entry(h.topic_id).or_insert(0);
            let ordinal = *counter;
            *counter += 1;
            if let Some(v) = run.values.as_mut() {
                // Second pass: decode only the messages some row uses.
                let Some(&k) = v.column_of.get(&h.topic_id) else { return Ok(()) };
                if v.needed[k].get(v.next_needed[k]) != Some(&ordinal) {
                    return Ok(());
                }
                v.next_needed[k] += 1;
                let times = (h.receive_time_ns, h.publish_time_ns, h.sequence);
                if let Err(e) = v.held[k].push(&v.plans[k], times, payload) {
                    return Err(ExportError::Write {
                        format: self.opts.format.name(),
                        path: seg.to_path_buf(),
                        topic: s.info.name.clone(),
                        reason: format!("message {ordinal} decoded in the first pass but not the second: {e}"),
                    });
                }
                v.held_ordinals[k].push(ordinal);
                return Ok(());
            }
            if s.batch.rows() >= self.opts.batch_rows {
                // First pass: values are only decoded to find the ones that do not decode.
                s.batch.take();
            }
            if let Err(e) = s.batch.push(&s.plan, (h.receive_time_ns, h.publish_time_ns, h.sequence), payload) {
                s.entry.decode_errors += 1;
                self.totals.decode_errors += 1;
                if s.entry.decode_errors <= LOGGED_ERRORS_PER_TOPIC {
                    error!(segment = %seg.display(), offset, topic = %s.info.name, sequence = h.sequence,
                        error = %e, "message does not decode with its definition: not aligned");
                }
                return Ok(());
            } else {
                run.times.entry(h.topic_id).or_default().push((h.receive_time_ns, ordinal));
                run.held_bytes += 16;
                if run.held_bytes > self.opts.align_max_bytes {
                    return Err(ExportError::BadOption {
                        option: "--align-max-mb",
                        reason: format!(
                            "the join's index of the aligned topics exceeds {} MiB (16 bytes per message; at {} of \
                             topic {}): narrow the time range (--start/--end), align fewer topics, or raise \
                             --align-max-mb",
                            self.opts.align_max_bytes >> 20,
                            h.receive_time_ns,
                            s.info.name
                        ),
                    });
                }
            }
        }
        if matches!(s.sink, Sink::None) && !aligned {
            s.sink = open_sink(self.opts, &mut self.names, &mut self.mcap, s)?;
        }
        match &s.sink {
            Sink::Mcap(ch) => {
                if let Some(m) = self.mcap.as_mut() {
                    m.write(ch, &s.info.name, h, payload)?;
                }
            }
            // First pass of `--align`: decoded above.
            _ if aligned => {}
            _ => {
                if let Err(e) = s.batch.push(&s.plan, (h.receive_time_ns, h.publish_time_ns, h.sequence), payload) {
                    s.entry.decode_errors += 1;
                    self.totals.decode_errors += 1;
                    if s.entry.decode_errors <= LOGGED_ERRORS_PER_TOPIC && !self.quiet {
                        error!(segment = %seg.display(), offset, topic = %s.info.name, sequence = h.sequence,
                            error = %e, "message does not decode with its definition: not exported");
                    }
                    return Ok(());
                }
            }
        }
        record_stats(&mut s.entry, h, payload.len());
        if let Some(last) = s.last_seq.insert(h.ingest_session, h.sequence) {
            if h.sequence > last + 1 {
                s.entry.sequence_gaps += h.sequence - last - 1;
            }
        }
        self.totals.messages += 1;
        if !aligned && (s.batch.rows() >= self.opts.batch_rows || s.batch.heap_bytes() >= self.opts.batch_bytes) {
            flush(s)?;
        }
        Ok(())
    }

    fn close_stream(&mut self, mut s: Stream) -> Result<()> {
        flush(&mut s)?;
        if let Sink::Table(w) = std::mem::replace(&mut s.sink, Sink::None) {
            for f in w.finish()? {
                s.entry.files.push(self.rel(&f));
                self.files.push(f);
            }
        }
        if s.entry.messages > 0 || s.entry.decode_errors > 0 {
            finish_entry(&mut s.entry);
            self.done.push(s.entry);
        }
        Ok(())
    }

    fn rel(&self, f: &Path) -> String {
        f.strip_prefix(&self.opts.out).unwrap_or(f).to_string_lossy().replace('\\', "/")
    }

    /// `--align`, between the passes: finds each aligned topic's stream, plans the join on the
    /// first pass's times, creates the table, and resets the streams for the second pass.
    fn start_values_pass(&mut self, spec: &AlignSpec) -> Result<()> {
        let Some(mut run) = self.align.take() else { return Ok(()) };
        let mut ids = Vec::new();
        let mut times = Vec::new();
        let mut plans = Vec::new();
        for name in spec.columns() {
            let found: Vec<u32> = self
                .streams
                .iter()
                .filter(|(id, s)| s.info.name == name && run.times.get(id).is_some_and(|t| !t.is_empty()))
                .map(|(id, _)| *id)
                .collect();
            let bad = |reason: String| ExportError::BadOption { option: "--align", reason };
            let id = match found.as_slice() {
                [id] => *id,
                [] => {
                    let mut known: Vec<&str> = self.streams.values().map(|s| s.info.name.as_str()).collect();
                    known.sort();
                    known.dedup();
                    return Err(bad(format!(
                        "topic {name} has no message in the selection (robot, time range); topics: {}",
                        known.join(", ")
                    )));
                }
                _ => return Err(bad(format!("topic {name} is recorded under {} ids (types or robots)", found.len()))),
            };
            let Some(s) = self.streams.get(&id) else { continue };
            times.push(TopicTimes {
                topic: s.info.name.clone(),
                robot: s.info.robot.clone(),
                times: run.times.remove(&id).unwrap_or_default(),
            });
            plans.push(s.plan.clone());
            ids.push(id);
        }
        let window = Window { start_ns: self.opts.start_ns, end_ns: self.opts.end_ns };
        let join = plan_join(spec, window, &times)?;
        drop(times);
        let names = spec.columns();
        let topics: Vec<(&str, &Plan)> = names.iter().zip(&plans).map(|(n, p)| (n.as_str(), p.as_ref())).collect();
        let table = AlignedTable::create(&self.opts.out, self.opts.format, self.opts.limits, &topics, &join.alignment)?;
        let n = ids.len();
        run.values = Some(ValuesPass {
            column_of: ids.iter().enumerate().map(|(k, id)| (*id, k)).collect(),
            ids,
            held: plans.iter().map(|p| Batch::new(p)).collect(),
            plans,
            needed: join.needed(),
            next_needed: vec![0; n],
            held_ordinals: vec![Vec::new(); n],
            suffix_min: join.suffix_min(),
            join,
            next_row: 0,
            table: Some(table),
        });
        run.ordinals.clear();
        run.pass1 = Some((std::mem::take(&mut self.streams), self.totals.clone()));
        self.align = Some(run);
        self.quiet = true;
        Ok(())
    }

    /// `--align`, second pass: writes every row whose messages have all been read (all rows if
    /// `all`), then drops the messages no later row uses.
    fn write_ready_rows(&mut self, all: bool) -> Result<()> {
        let Some(run) = self.align.as_mut() else { return Ok(()) };
        let Some(v) = run.values.as_mut() else { return Ok(()) };
        let rows = v.join.ticks.len();
        let inconsistent = |what: String| ExportError::Write {
            format: self.opts.format.name(),
            path: self.opts.out.clone(),
            topic: "(aligned)".into(),
            reason: what,
        };
        while v.next_row < rows {
            let (r0, r1) = (v.next_row, (v.next_row + self.opts.align_chunk_rows.max(1)).min(rows));
            let ready = v.ids.iter().enumerate().all(|(k, id)| {
                let seen = run.ordinals.get(id).copied().unwrap_or(0);
                v.join.picks[k][r0..r1].iter().all(|o| *o < seen)
            });
            if !ready && !all {
                break;
            }
            let Some(table) = v.table.as_mut() else { break };
            for r in r0..r1 {
                let mut row = Vec::with_capacity(v.ids.len());
                for k in 0..v.ids.len() {
                    let o = v.join.picks[k][r];
                    let i = v.held_ordinals[k]
                        .binary_search(&o)
                        .map_err(|_| inconsistent(format!("message {o} of column {k} was not read again")))?;
                    row.push((&v.held[k], i));
                }
                table.push(v.join.ticks[r], &row)?;
            }
            v.next_row = r1;
            for k in 0..v.ids.len() {
                let keep = v.suffix_min[k][r1];
                let cut = v.held_ordinals[k].partition_point(|o| *o < keep);
                if cut > 0 {
                    let old = std::mem::replace(&mut v.held[k], Batch::new(&v.plans[k]));
                    let len = old.rows() - cut;
                    if !v.held[k].extend_from(&old, cut, len) {
                        return Err(inconsistent(format!("column {k}: held rows do not match their plan")));
                    }
                    v.held_ordinals[k].drain(..cut);
                }
            }
        }
        Ok(())
    }

    /// `--align`, at the end: completes the table and reports the aligned topics (from the first
    /// pass) with it.
    fn align_finish(&mut self) -> Result<Option<crate::manifest::Alignment>> {
        let Some(mut run) = self.align.take() else { return Ok(None) };
        let Some(mut v) = run.values.take() else { return Ok(None) };
        let Some(table) = v.table.take() else { return Ok(None) };
        let path = table.finish()?;
        if let Some((streams, totals)) = run.pass1.take() {
            self.streams = streams;
            self.totals = totals;
        }
        let rel = self.rel(&path);
        for id in &v.ids {
            if let Some(mut s) = self.streams.remove(id) {
                finish_entry(&mut s.entry);
                s.entry.files = vec![rel.clone()];
                self.done.push(s.entry);
            }
        }
        self.files.push(path);
        let mut alignment = v.join.alignment;
        alignment.file = rel.clone();
        info!(rows = alignment.rows, dropped = alignment.dropped_rows, file = %rel, "aligned table written");
        Ok(Some(alignment))
    }

    fn finish(mut self, segments: Vec<SegmentEntry>) -> Result<ExportManifest> {
        let alignment = self.align_finish()?;
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort();
        for id in ids {
            if let Some(s) = self.streams.remove(&id) {
                self.close_stream(s)?;
            }
        }
        if let Some(m) = self.mcap.take() {
            let files = m.finish()?;
            for f in files {
                let rel = self.rel(&f);
                let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                for e in &mut self.done {
                    if sanitize_component(&e.robot) == stem {
                        e.files = vec![rel.clone()];
                    }
                }
                self.files.push(f);
            }
        }
        self.done.sort_by(|a, b| (&a.robot, &a.topic).cmp(&(&b.robot, &b.topic)));
        self.files.sort();
        let mut files = Vec::new();
        for f in &self.files {
            let (sha256, bytes) = hash_file(f)?;
            files.push(FileEntry { path: self.rel(f), bytes, sha256 });
        }
        self.totals.segments_read = segments.iter().filter(|s| s.status == "read").count() as u64;
        self.totals.segments_skipped = segments.len() as u64 - self.totals.segments_read;
        self.totals.sequence_gaps = self.done.iter().map(|t| t.sequence_gaps).sum();
        let robots: BTreeSet<String> = self.done.iter().filter(|t| t.messages > 0).map(|t| t.robot.clone()).collect();
        let m = ExportManifest {
            format: MANIFEST_FORMAT.into(),
            version: 1,
            fleetrec_version: env!("CARGO_PKG_VERSION").into(),
            created_ns: shared::time::now_ns(),
            export_format: self.opts.format.name().into(),
            input: self.opts.input.display().to_string(),
            filters: Filters {
                robots: self.opts.robots.clone(),
                topic_regex: self.opts.topic_regex.clone(),
                start_ns: self.opts.start_ns,
                end_ns: self.opts.end_ns,
                include_unsealed: self.opts.include_unsealed,
            },
            alignment,
            segments,
            robots: robots.into_iter().collect(),
            topics: self.done,
            totals: self.totals,
            files,
        };
        write_manifest(&self.opts.out, &m)?;
        Ok(m)
    }
}

fn compile(info: &TopicInfo) -> Arc<Plan> {
    let reason = if info.definition.trim().is_empty() {
        "no message definition recorded".to_string()
    } else if !info.encoding.is_empty() && info.encoding != "ros2msg" {
        format!("definition encoding `{}` is not ros2msg", info.encoding)
    } else {
        match Plan::compile(&info.type_name, &info.definition) {
            Ok(p) => return Arc::new(p),
            Err(e) => format!("definition does not compile: {e}"),
        }
    };
    warn!(topic = %info.name, r#type = %info.type_name, %reason, "exporting raw CDR bytes (column `cdr`)");
    Arc::new(Plan::raw(&info.type_name))
}

fn new_stream(info: TopicInfo, plan: Arc<Plan>, generation: u32) -> Stream {
    let raw_reason = plan.raw.then(|| {
        if info.definition.trim().is_empty() {
            "no message definition recorded".to_string()
        } else {
            "definition does not compile (see the log)".to_string()
        }
    });
    let entry = TopicEntry {
        robot: info.robot.clone(),
        robot_id: info.robot_id,
        topic: info.name.clone(),
        topic_id: info.topic_id,
        type_name: info.type_name.clone(),
        type_hash: info.type_hash.clone(),
        decoded: !plan.raw,
        raw_reason,
        ..TopicEntry::default()
    };
    Stream { batch: Batch::new(&plan), info, plan, entry, sink: Sink::None, generation, last_seq: HashMap::new() }
}

fn open_sink(
    opts: &ExportOptions,
    names: &mut NameAllocator,
    mcap: &mut Option<McapOutput>,
    s: &mut Stream,
) -> Result<Sink> {
    if let Some(m) = mcap.as_mut() {
        let def = (!s.info.definition.trim().is_empty()).then_some(s.info.definition.as_str());
        let ch = m.channel(&sanitize_component(&s.info.robot), &s.info.name, &s.info.type_name, def, &s.info.qos)?;
        return Ok(Sink::Mcap(ch));
    }
    let suffix = if s.generation > 0 { format!("-def{}", s.generation + 1) } else { String::new() };
    let rel = names.allocate(&s.info.robot, &s.info.name, &suffix, s.info.topic_id);
    let base = opts.out.join(rel);
    let meta = StreamMeta {
        robot: s.info.robot.clone(),
        topic: s.info.name.clone(),
        type_name: s.info.type_name.clone(),
        definition: s.info.definition.clone(),
        plan: s.plan.clone(),
    };
    let w = open_table(opts.format, &base, &meta, opts.limits)?;
    if opts.format == Format::Npy {
        s.entry.skipped_fields = crate::format::npy::skipped_fields(&meta.plan);
    }
    Ok(Sink::Table(w))
}

fn flush(s: &mut Stream) -> Result<()> {
    if s.batch.rows() == 0 {
        return Ok(());
    }
    let b = s.batch.take();
    if let Sink::Table(w) = &mut s.sink {
        w.write(b)?;
    }
    Ok(())
}

fn record_stats(e: &mut TopicEntry, h: &MessageHeader, len: usize) {
    if e.messages == 0 {
        e.first_receive_ns = h.receive_time_ns;
        e.last_receive_ns = h.receive_time_ns;
    }
    e.messages += 1;
    e.payload_bytes += len as u64;
    e.first_receive_ns = e.first_receive_ns.min(h.receive_time_ns);
    e.last_receive_ns = e.last_receive_ns.max(h.receive_time_ns);
    if h.publish_time_ns != 0 {
        if e.first_publish_ns == 0 || h.publish_time_ns < e.first_publish_ns {
            e.first_publish_ns = h.publish_time_ns;
        }
        e.last_publish_ns = e.last_publish_ns.max(h.publish_time_ns);
    }
}

fn finish_entry(e: &mut TopicEntry) {
    let span = e.last_receive_ns.saturating_sub(e.first_receive_ns);
    e.rate_hz = if e.messages >= 2 && span > 0 { (e.messages - 1) as f64 / (span as f64 / 1e9) } else { 0.0 };
}
