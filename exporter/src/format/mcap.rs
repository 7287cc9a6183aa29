//! MCAP: one file per robot (`<robot>.mcap`) holding all of its topics, written as rosbag2 does:
//! profile `ros2`, one schema per type (`ros2msg` encoding, the recorded definition text), one
//! channel per topic (`cdr` message encoding), every message's recorded CDR bytes unchanged, log
//! time = receive time, publish time = recorded publish time (receive time if unknown). Chunked,
//! uncompressed, with the summary and message indexes, so Foxglove and the MCAP tools open it. A
//! topic without a definition gets a channel without schema.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::create_file;
use crate::error::{ExportError, Result};

struct RobotFile {
    path: PathBuf,
    writer: mcap::Writer<BufWriter<File>>,
}

/// The MCAP files of an export.
pub struct McapOutput {
    dir: PathBuf,
    files: HashMap<String, RobotFile>,
}

/// A channel handed out by [`McapOutput::channel`].
#[derive(Debug, Clone)]
pub struct McapChannel {
    robot_file: String,
    id: u16,
}

fn err(path: &Path, topic: &str, e: impl std::fmt::Display) -> ExportError {
    ExportError::Write { format: "mcap", path: path.to_path_buf(), topic: topic.to_string(), reason: e.to_string() }
}

impl McapOutput {
    /// Output under `dir`; files are created on first use.
    pub fn new(dir: &Path) -> McapOutput {
        McapOutput { dir: dir.to_path_buf(), files: HashMap::new() }
    }

    /// Registers a topic: `robot_file` is the sanitised robot name (the file stem).
    pub fn channel(
        &mut self,
        robot_file: &str,
        topic: &str,
        type_name: &str,
        definition: Option<&str>,
        qos: &str,
    ) -> Result<McapChannel> {
        if !self.files.contains_key(robot_file) {
            let path = self.dir.join(format!("{robot_file}.mcap"));
            let out = create_file(&path)?;
            let writer = mcap::WriteOptions::new()
                .compression(None)
                .profile("ros2")
                .library(format!("fleetrec-exporter {}", env!("CARGO_PKG_VERSION")))
                .create(out)
                .map_err(|e| err(&path, topic, e))?;
            self.files.insert(robot_file.to_string(), RobotFile { path, writer });
        }
        let Some(f) = self.files.get_mut(robot_file) else {
            return Err(err(&self.dir, topic, "robot file vanished"));
        };
        let schema_id = match definition {
            Some(d) => f.writer.add_schema(type_name, "ros2msg", d.as_bytes()).map_err(|e| err(&f.path, topic, e))?,
            None => 0,
        };
        let mut md = BTreeMap::new();
        if !qos.is_empty() {
            md.insert("fleetrec.qos".to_string(), qos.to_string());
        }
        let id = f.writer.add_channel(schema_id, topic, "cdr", &md).map_err(|e| err(&f.path, topic, e))?;
        Ok(McapChannel { robot_file: robot_file.to_string(), id })
    }

    /// Writes one message.
    pub fn write(
        &mut self,
        ch: &McapChannel,
        topic: &str,
        h: &shared::plane::MessageHeader,
        payload: &[u8],
    ) -> Result<()> {
        let Some(f) = self.files.get_mut(&ch.robot_file) else {
            return Err(err(&self.dir, topic, "unknown channel"));
        };
        let header = mcap::records::MessageHeader {
            channel_id: ch.id,
            sequence: h.sequence as u32,
            log_time: h.receive_time_ns,
            publish_time: if h.publish_time_ns == 0 { h.receive_time_ns } else { h.publish_time_ns },
        };
        f.writer.write_to_known_channel(&header, payload).map_err(|e| err(&f.path, topic, e))
    }

    /// Completes every file; returns their paths.
    pub fn finish(self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for (_, mut f) in self.files {
            f.writer.finish().map_err(|e| err(&f.path, "", e))?;
            let file = f.writer.into_inner().into_inner().map_err(|e| ExportError::Io {
                op: "write",
                path: f.path.clone(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(crate::error::io_err("fsync", &f.path))?;
            out.push(f.path);
        }
        out.sort();
        Ok(out)
    }
}
