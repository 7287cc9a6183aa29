//! Sealed segments as the uploader sees them: a directory scan finds every `*.wal` whose sidecar
//! `*.wal.manifest.json` exists (the writer writes the manifest atomically when it seals, so its
//! presence is the definition of "sealed"), and [`ObjectLayout`] gives each its object keys.
//!
//! Object keys: `<prefix>/<robot>/<session>/<segment file>`, the sidecar manifest at
//! `<key>.manifest.json` and the upload manifest at `<key>.upload.json`. `<robot>` is the one
//! robot named by the topics in the segment's manifest; a segment that holds several robots
//! goes under the robot `mixed` (the writer marks such segments with header robot id
//! `u16::MAX`); a segment without topic definitions takes the configured robot of its header's
//! robot id, else `unknown`. `<session>` is the writer session id (hex) of the manifest.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use shared::segment::consts::{HEADER_LEN, MANIFEST_SUFFIX, SEGMENT_EXTENSION};
use shared::segment::{SegmentHeader, SegmentManifest};

use crate::error::{Result, UploadError};

/// Robot directory for segments holding several robots.
pub const MIXED_ROBOT: &str = "mixed";
/// Robot directory when nothing names the robot.
pub const UNKNOWN_ROBOT: &str = "unknown";

/// A sealed segment found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// Segment file name (`seg-....wal`).
    pub name: String,
    /// Full path of the segment.
    pub path: PathBuf,
    /// Full path of its sidecar manifest.
    pub manifest_path: PathBuf,
    /// The parsed manifest.
    pub manifest: SegmentManifest,
    /// The manifest file's bytes, uploaded as they are.
    pub manifest_bytes: Vec<u8>,
    /// Robot directory of the object key.
    pub robot: String,
    /// Robot index from the segment header (`u16::MAX`: several).
    pub robot_id: u16,
    /// Session directory of the object key.
    pub session: String,
}

impl SealedSegment {
    /// Segment size from the manifest.
    pub fn size(&self) -> u64 {
        self.manifest.size
    }
}

/// Names of the sealed segments in `dir`, sorted (segment names sort in recording order).
pub fn list_sealed(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(UploadError::io(dir, e)),
    };
    let mut names = BTreeSet::new();
    let mut manifests = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| UploadError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(seg) = name.strip_suffix(MANIFEST_SUFFIX) {
            manifests.insert(seg.to_string());
        } else if name.ends_with(&format!(".{SEGMENT_EXTENSION}")) {
            names.insert(name);
        }
    }
    Ok(names.into_iter().filter(|n| manifests.contains(n)).collect())
}

/// Reads segment `name` of `dir` with its manifest. `robot_names` maps header robot ids to
/// names when the manifest lists no topic.
pub fn load_sealed(dir: &Path, name: &str, robot_names: &[String]) -> Result<SealedSegment> {
    let path = dir.join(name);
    let manifest_path = SegmentManifest::path_for(&path);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| UploadError::io(&manifest_path, e))?;
    let manifest: SegmentManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| UploadError::BadFile { path: manifest_path.clone(), reason: format!("manifest JSON: {e}") })?;
    if manifest.segment != name {
        return Err(UploadError::BadFile {
            path: manifest_path,
            reason: format!("manifest names segment `{}`, expected `{name}`", manifest.segment),
        });
    }
    let mut head = [0u8; HEADER_LEN];
    std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)).map_err(|e| UploadError::io(&path, e))?;
    let header =
        SegmentHeader::decode(&head).map_err(|e| UploadError::BadFile { path: path.clone(), reason: e.to_string() })?;
    let robot = robot_of(&manifest, header.robot_id, robot_names);
    let session = if manifest.summary.session_id.is_empty() {
        hex(&header.session_id)
    } else {
        sanitize(&manifest.summary.session_id)
    };
    Ok(SealedSegment {
        name: name.to_string(),
        path,
        manifest_path,
        manifest,
        manifest_bytes,
        robot,
        robot_id: header.robot_id,
        session,
    })
}

/// The robot directory of a segment (see the module docs).
pub fn robot_of(manifest: &SegmentManifest, header_robot_id: u16, robot_names: &[String]) -> String {
    let robots: BTreeSet<&str> =
        manifest.summary.topics.iter().map(|t| t.robot.as_str()).filter(|r| !r.is_empty()).collect();
    match robots.len() {
        1 => robots.into_iter().next().map_or_else(|| UNKNOWN_ROBOT.to_string(), sanitize),
        0 if header_robot_id == u16::MAX => MIXED_ROBOT.to_string(),
        0 => robot_names.get(usize::from(header_robot_id)).map_or_else(|| UNKNOWN_ROBOT.to_string(), |n| sanitize(n)),
        _ => MIXED_ROBOT.to_string(),
    }
}

/// Keeps letters, digits, `-`, `_` and `.`; anything else becomes `_`, so a key part can never
/// contain `/` or be empty.
pub fn sanitize(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        UNKNOWN_ROBOT.to_string()
    } else {
        out
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a segment's objects go in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLayout {
    prefix: String,
}

impl ObjectLayout {
    /// A layout under `prefix` (slashes at either end are ignored; empty: the bucket root).
    pub fn new(prefix: &str) -> Self {
        ObjectLayout { prefix: prefix.trim_matches('/').to_string() }
    }

    /// `<prefix>/<robot>/<session>/<segment>`.
    pub fn segment_key(&self, seg: &SealedSegment) -> String {
        let tail = format!("{}/{}/{}", seg.robot, seg.session, seg.name);
        if self.prefix.is_empty() {
            tail
        } else {
            format!("{}/{tail}", self.prefix)
        }
    }

    /// The sidecar manifest's key.
    pub fn manifest_key(segment_key: &str) -> String {
        format!("{segment_key}{MANIFEST_SUFFIX}")
    }

    /// The upload manifest's key.
    pub fn upload_manifest_key(segment_key: &str) -> String {
        format!("{segment_key}.upload.json")
    }

    /// A key under the prefix that never exists, for the connectivity probe.
    pub fn probe_key(&self) -> String {
        if self.prefix.is_empty() {
            ".fleetrec-probe".into()
        } else {
            format!("{}/.fleetrec-probe", self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::segment::{SegmentSummary, TopicSummary};

    fn manifest(robots: &[&str]) -> SegmentManifest {
        let topics = robots
            .iter()
            .enumerate()
            .map(|(i, r)| TopicSummary {
                topic_id: i as u32,
                robot_id: i as u16,
                robot: (*r).into(),
                name: format!("/{r}/x"),
                type_name: "std_msgs/msg/String".into(),
                messages: 1,
                bytes: 1,
                first_sequence: 1,
                last_sequence: 1,
                first_ns: 1,
                last_ns: 1,
                first_offset: 64,
            })
            .collect();
        SegmentManifest::new("seg.wal", 1, "00".into(), SegmentSummary { topics, ..Default::default() })
    }

    #[test]
    fn robot_directory_rules() {
        let names = vec!["alpha".to_string()];
        assert_eq!(robot_of(&manifest(&["robot1", "robot1"]), 0, &names), "robot1");
        assert_eq!(robot_of(&manifest(&["robot1", "robot2"]), u16::MAX, &names), MIXED_ROBOT);
        assert_eq!(robot_of(&manifest(&[]), 0, &names), "alpha");
        assert_eq!(robot_of(&manifest(&[]), 5, &names), UNKNOWN_ROBOT);
        assert_eq!(robot_of(&manifest(&[]), u16::MAX, &names), MIXED_ROBOT);
        assert_eq!(robot_of(&manifest(&["a/b"]), 0, &names), "a_b");
    }

    #[test]
    fn keys() {
        let seg = SealedSegment {
            name: "seg-1.wal".into(),
            path: "/x/seg-1.wal".into(),
            manifest_path: "/x/seg-1.wal.manifest.json".into(),
            manifest: manifest(&["r"]),
            manifest_bytes: Vec::new(),
            robot: "r".into(),
            robot_id: 0,
            session: "abcd".into(),
        };
        let k = ObjectLayout::new("/fleet/site1/").segment_key(&seg);
        assert_eq!(k, "fleet/site1/r/abcd/seg-1.wal");
        assert_eq!(ObjectLayout::manifest_key(&k), "fleet/site1/r/abcd/seg-1.wal.manifest.json");
        assert_eq!(ObjectLayout::upload_manifest_key(&k), "fleet/site1/r/abcd/seg-1.wal.upload.json");
        assert_eq!(ObjectLayout::new("").segment_key(&seg), "r/abcd/seg-1.wal");
    }

    #[test]
    fn listing_needs_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["seg-2.wal", "seg-1.wal", "seg-1.wal.manifest.json", "seg-3.wal.manifest.json", "x.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".upload")).unwrap();
        assert_eq!(list_sealed(dir.path()).unwrap(), vec!["seg-1.wal"]);
        assert!(list_sealed(&dir.path().join("missing")).unwrap().is_empty());
    }
}
