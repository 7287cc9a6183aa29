//! `fleetrec-writer inspect PATH`: what a segment or a recording directory holds (per robot
//! and topic: message counts, sequence ranges per ingest session, time ranges) and every
//! problem found: corrupt records and torn tails (with segment and offset), bad headers,
//! undecodable records, manifests that do not match their segment. Read-only.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use shared::segment::{FrameError, SegmentManifest, Tail};

use crate::directory::{abandoned_marker_path, hex, list_segments, manifest_path, parse_segment_file_name};
use crate::error::{io_err, Result, WriterError};
use crate::reader::decode_segment;

/// How a segment's manifest compares with the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ManifestCheck {
    /// Size and SHA-256 match.
    Ok,
    /// No manifest (an unsealed segment, or a crash before the manifest was written).
    Missing,
    /// The manifest does not parse.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The manifest names another size.
    SizeMismatch {
        /// Size in the manifest.
        manifest: u64,
        /// Size of the file.
        file: u64,
    },
    /// The manifest names another hash.
    HashMismatch {
        /// SHA-256 in the manifest.
        manifest: String,
        /// SHA-256 of the file.
        file: String,
    },
}

/// A torn tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// Where the valid data ends.
    pub offset: u64,
    /// Bytes after it.
    pub bytes: u64,
    /// Why they are not a record.
    pub reason: String,
}

/// One segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentInspection {
    /// File name.
    pub file: String,
    /// Segment sequence number (from the header, or the name if the header is bad).
    pub seq: u64,
    /// Writer session id, hex.
    pub session: String,
    /// File size.
    pub size: u64,
    /// Ends with a valid footer.
    pub sealed: bool,
    /// Manifest check.
    pub manifest: ManifestCheck,
    /// Valid records.
    pub records: u64,
    /// Messages.
    pub messages: u64,
    /// Topic definitions.
    pub topic_definitions: u64,
    /// First receive time, ns.
    pub first_ns: u64,
    /// Last receive time, ns.
    pub last_ns: u64,
    /// Corrupt records skipped.
    pub corrupt_records: u64,
    /// Torn tail, if any.
    pub torn_tail: Option<TornTail>,
    /// An abandonment marker is beside it (a failed fsync; recovery will seal it).
    pub abandoned: bool,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record failed its CRC (or is not a record) in the middle of a segment.
    CorruptRecord,
    /// The segment ends in bytes that are not a valid record.
    TornTail,
    /// The segment header is not valid.
    BadHeader,
    /// A record passed its CRC but its body does not parse.
    UndecodableRecord,
    /// The manifest does not match the segment.
    ManifestMismatch,
}

/// A problem found, with its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Segment file name.
    pub segment: String,
    /// Offset of the damaged record (or of the cut point); `None` when not about an offset.
    pub offset: Option<u64>,
    /// Kind.
    pub kind: ProblemKind,
    /// Details.
    pub detail: String,
}

/// A remark that is not corruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Segment file name.
    pub segment: String,
    /// Text.
    pub text: String,
}

/// Sequence numbers of one topic within one ingest session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRange {
    /// Ingest session.
    pub ingest_session: u32,
    /// Lowest sequence.
    pub first_sequence: u64,
    /// Highest sequence.
    pub last_sequence: u64,
    /// Message records (duplicates included).
    pub messages: u64,
    /// Distinct sequence numbers.
    pub distinct: u64,
    /// Sequence numbers between first and last that are absent.
    pub missing: u64,
    /// Records whose sequence number appeared before.
    pub duplicates: u64,
}

/// One topic of one robot across the inspected segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInspection {
    /// Robot index.
    pub robot_id: u16,
    /// Robot name (empty if no definition was found).
    pub robot: String,
    /// Topic id.
    pub topic_id: u32,
    /// Topic name.
    pub name: String,
    /// ROS type.
    pub type_name: String,
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// First receive time, ns.
    pub first_ns: u64,
    /// Last receive time, ns.
    pub last_ns: u64,
    /// Segments holding the topic.
    pub segments: u64,
    /// Sequence ranges per ingest session.
    pub sessions: Vec<SessionRange>,
}

/// The result of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    /// Path inspected.
    pub path: PathBuf,
    /// Messages in total.
    pub messages: u64,
    /// Segments, in order.
    pub segments: Vec<SegmentInspection>,
    /// Topics, by robot then topic id.
    pub topics: Vec<TopicInspection>,
    /// Corruption found.
    pub problems: Vec<Problem>,
    /// Remarks (unsealed segments, missing manifests, abandoned segments).
    pub notes: Vec<Note>,
    /// No problem found.
    pub clean: bool,
}

impl InspectReport {
    /// Whether no corruption was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Default)]
struct TopicAcc {
    robot_id: u16,
    robot: String,
    name: String,
    type_name: String,
    messages: u64,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
    segments: u64,
    seqs: BTreeMap<u32, Vec<u64>>,
}

/// Inspects a segment file or every segment of a directory.
pub fn inspect(path: &Path) -> Result<InspectReport> {
    let meta = std::fs::metadata(path).map_err(io_err("stat", path))?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        list_segments(path)?.into_iter().map(|s| s.path).collect()
    } else {
        vec![path.to_path_buf()]
    };
    if !meta.is_dir()
        && path.file_name().and_then(|n| n.to_str()).and_then(parse_segment_file_name).is_none()
        && std::fs::read(path).map(|b| !b.starts_with(&shared::segment::consts::MAGIC_PREFIX)).unwrap_or(true)
    {
        return Err(WriterError::NotASegment { path: path.to_path_buf() });
    }
    let mut report = InspectReport {
        path: path.to_path_buf(),
        messages: 0,
        segments: Vec::new(),
        topics: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        clean: true,
    };
    let mut topics: HashMap<u32, TopicAcc> = HashMap::new();
    for file in &files {
        inspect_segment(file, &mut report, &mut topics)?;
    }
    let mut list: Vec<TopicInspection> =
        topics.into_iter().map(|(topic_id, acc)| topic_inspection(topic_id, acc)).collect();
    list.sort_by_key(|t| (t.robot_id, t.robot.clone(), t.name.clone(), t.topic_id));
    report.topics = list;
    report.clean = report.problems.is_empty();
    Ok(report)
}

fn topic_inspection(topic_id: u32, acc: TopicAcc) -> TopicInspection {
    let sessions = acc
        .seqs
        .into_iter()
        .map(|(ingest_session, mut seqs)| {
            let messages = seqs.len() as u64;
            seqs.sort_unstable();
            seqs.dedup();
            let distinct = seqs.len() as u64;
            let first = seqs.first().copied().unwrap_or(0);
            let last = seqs.last().copied().unwrap_or(0);
            SessionRange {
                ingest_session,
                first_sequence: first,
                last_sequence: last,
                messages,
                distinct,
                missing: (last - first + 1).saturating_sub(distinct),
                duplicates: messages - distinct,
            }
        })
        .collect();
    TopicInspection {
        robot_id: acc.robot_id,
        robot: acc.robot,
        topic_id,
        name: acc.name,
        type_name: acc.type_name,
        messages: acc.messages,
        bytes: acc.bytes,
        first_ns: acc.first_ns,
        last_ns: acc.last_ns,
        segments: acc.segments,
        sessions,
    }
}

fn inspect_segment(path: &Path, report: &mut InspectReport, topics: &mut HashMap<u32, TopicAcc>) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    let abandoned = abandoned_marker_path(path).exists();
    if bytes.is_empty() && !abandoned {
        // Not a problem: a running writer creates its next segments' files ahead of their use.
        report.notes.push(Note {
            segment: name,
            text: "empty: created ahead by the writer, no data yet (recovery removes it if left by a crash)".into(),
        });
        return Ok(());
    }
    let contents = match decode_segment(path, &bytes) {
        Ok(c) => c,
        Err(e) => {
            let detail = match &e {
                WriterError::Header { error, .. } => error.to_string(),
                other => other.to_string(),
            };
            report.problems.push(Problem {
                segment: name.clone(),
                offset: Some(0),
                kind: ProblemKind::BadHeader,
                detail,
            });
            report.segments.push(SegmentInspection {
                file: name.clone(),
                seq: parse_segment_file_name(&name).unwrap_or(0),
                session: String::new(),
                size: bytes.len() as u64,
                sealed: false,
                manifest: check_manifest(path, &bytes),
                records: 0,
                messages: 0,
                topic_definitions: 0,
                first_ns: 0,
                last_ns: 0,
                corrupt_records: 0,
                torn_tail: None,
                abandoned,
            });
            return Ok(());
        }
    };
    let r = &contents.report;
    for c in &r.corrupt {
        report.problems.push(Problem {
            segment: name.clone(),
            offset: Some(c.offset),
            kind: ProblemKind::CorruptRecord,
            detail: c.error.to_string(),
        });
    }
    let torn_tail = match r.tail {
        Tail::Clean | Tail::Preallocated { .. } => None,
        Tail::Torn { offset, bytes, error } => {
            report.problems.push(Problem {
                segment: name.clone(),
                offset: Some(offset),
                kind: ProblemKind::TornTail,
                detail: format!("{bytes} bytes after the last valid record: {}", frame_reason(&error)),
            });
            Some(TornTail { offset, bytes, reason: frame_reason(&error) })
        }
    };
    for u in &r.undecodable {
        report.problems.push(Problem {
            segment: name.clone(),
            offset: Some(u.offset),
            kind: ProblemKind::UndecodableRecord,
            detail: u.reason.clone(),
        });
    }
    let manifest = check_manifest(path, &bytes);
    match &manifest {
        ManifestCheck::Ok => {}
        ManifestCheck::Missing => report.notes.push(Note {
            segment: name.clone(),
            text: if r.sealed {
                "sealed, manifest missing (recovery writes it)".into()
            } else {
                "not sealed: open, or left by a crash (recovery seals it)".into()
            },
        }),
        other => report.problems.push(Problem {
            segment: name.clone(),
            offset: None,
            kind: ProblemKind::ManifestMismatch,
            detail: format!("{other:?}"),
        }),
    }
    if abandoned {
        report.notes.push(Note {
            segment: name.clone(),
            text: "abandoned after a failed write or fsync; its unsynced part was rewritten to a newer segment (recovery cuts and seals it)".into(),
        });
    }

    let mut first_ns = 0u64;
    let mut last_ns = 0u64;
    let mut seen_here: HashMap<u32, ()> = HashMap::new();
    for t in &contents.topics {
        let acc = topics.entry(t.topic_id).or_default();
        acc.robot_id = t.robot_id;
        acc.robot.clone_from(&t.robot);
        acc.name.clone_from(&t.name);
        acc.type_name.clone_from(&t.type_name);
    }
    for m in &contents.messages {
        let h = &m.header;
        let acc = topics.entry(h.topic_id).or_default();
        if acc.messages == 0 {
            acc.robot_id = h.robot_id;
            acc.first_ns = h.receive_time_ns;
        }
        if seen_here.insert(h.topic_id, ()).is_none() {
            acc.segments += 1;
        }
        acc.messages += 1;
        acc.bytes += m.payload.len() as u64;
        acc.first_ns = acc.first_ns.min(h.receive_time_ns);
        acc.last_ns = acc.last_ns.max(h.receive_time_ns);
        acc.seqs.entry(h.ingest_session).or_default().push(h.sequence);
        if first_ns == 0 || h.receive_time_ns < first_ns {
            first_ns = h.receive_time_ns;
        }
        last_ns = last_ns.max(h.receive_time_ns);
    }
    report.messages += contents.messages.len() as u64;
    report.segments.push(SegmentInspection {
        file: name,
        seq: contents.header.segment_seq,
        session: hex(&contents.header.session_id),
        size: bytes.len() as u64,
        sealed: r.sealed,
        manifest,
        records: r.records,
        messages: contents.messages.len() as u64,
        topic_definitions: contents.topics.len() as u64,
        first_ns,
        last_ns,
        corrupt_records: r.corrupt.len() as u64,
        torn_tail,
        abandoned,
    });
    Ok(())
}

fn frame_reason(e: &FrameError) -> String {
    match e {
        FrameError::Incomplete { need, have, .. } => {
            format!("incomplete record ({have} of {need} bytes)")
        }
        FrameError::NotARecord { kind, len, .. } => {
            format!("not a record (kind {kind}, length {len})")
        }
        FrameError::BadCrc { stored, computed, .. } => {
            format!("CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")
        }
    }
}

fn check_manifest(segment: &Path, bytes: &[u8]) -> ManifestCheck {
    let Ok(text) = std::fs::read(manifest_path(segment)) else {
        return ManifestCheck::Missing;
    };
    let m: SegmentManifest = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(e) => return ManifestCheck::Unreadable { reason: e.to_string() },
    };
    if m.size != bytes.len() as u64 {
        return ManifestCheck::SizeMismatch { manifest: m.size, file: bytes.len() as u64 };
    }
    use sha2::Digest;
    let sha = hex(&sha2::Sha256::digest(bytes));
    if sha != m.sha256 {
        return ManifestCheck::HashMismatch { manifest: m.sha256, file: sha };
    }
    ManifestCheck::Ok
}

/// UTC time of `ns` since the epoch, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns % 1_000_000_000) / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// The report as text for a terminal.
pub fn format_report(r: &InspectReport) -> String {
    let mut out = String::new();
    let sealed = r.segments.iter().filter(|s| s.sealed).count();
    let _ = writeln!(
        out,
        "{}: {} segment(s) ({} sealed), {} message(s)",
        r.path.display(),
        r.segments.len(),
        sealed,
        r.messages
    );
    let _ = writeln!(out, "segments:");
    for s in &r.segments {
        let manifest = match &s.manifest {
            ManifestCheck::Ok => "manifest ok".to_string(),
            ManifestCheck::Missing => "no manifest".to_string(),
            other => format!("manifest BAD ({other:?})"),
        };
        let _ = writeln!(
            out,
            "  {}  {:>10} B  {:<8}  {:>8} msgs  {:>3} topic defs  {}{}{}",
            s.file,
            s.size,
            if s.sealed { "sealed" } else { "unsealed" },
            s.messages,
            s.topic_definitions,
            manifest,
            if s.corrupt_records > 0 { format!("  {} corrupt", s.corrupt_records) } else { String::new() },
            s.torn_tail.as_ref().map(|t| format!("  torn tail at {} ({} B)", t.offset, t.bytes)).unwrap_or_default(),
        );
    }
    let _ = writeln!(out, "topics:");
    for t in &r.topics {
        let _ = writeln!(
            out,
            "  {:<12} {:<32} {:<32} {:>8} msgs {:>12} B  {} .. {}",
            if t.robot.is_empty() { format!("robot#{}", t.robot_id) } else { t.robot.clone() },
            if t.name.is_empty() { format!("topic {:#010x}", t.topic_id) } else { t.name.clone() },
            t.type_name,
            t.messages,
            t.bytes,
            format_utc(t.first_ns),
            format_utc(t.last_ns),
        );
        for s in &t.sessions {
            let _ = writeln!(
                out,
                "      ingest session {:>10}: seq {}..{}  ({} distinct, {} missing, {} duplicates)",
                s.ingest_session, s.first_sequence, s.last_sequence, s.distinct, s.missing, s.duplicates
            );
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "notes:");
        for n in &r.notes {
            let _ = writeln!(out, "  {}: {}", n.segment, n.text);
        }
    }
    if r.problems.is_empty() {
        let _ = writeln!(out, "no corruption found");
    } else {
        let _ = writeln!(out, "problems ({}):", r.problems.len());
        for p in &r.problems {
            let at = p.offset.map(|o| format!(" @ offset {o}")).unwrap_or_default();
            let _ = writeln!(out, "  {}{at}: {:?}: {}", p.segment, p.kind, p.detail);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_700_000_000_123_000_000), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
