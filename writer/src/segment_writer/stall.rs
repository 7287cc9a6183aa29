//! Stalls: the disk is full, or writes keep failing. While stalled the writer accepts nothing
//! (each message is dropped and counted per topic), keeps every durable byte, holds the
//! unsynced messages in memory, and probes every `probe_interval`: free space (statvfs) for a
//! full disk, plain backoff for failing I/O. When the probe passes it seals the segments that
//! were cut back, rewrites the held messages into a fresh segment and accepts again.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{error, info};

use super::SegmentWriter;
use crate::error::{io_err, Result};

/// Longest backoff between retries after repeated I/O failures.
const MAX_IO_BACKOFF: Duration = Duration::from_secs(5);

/// Why the writer stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StallKind {
    /// No space left on the recording file system.
    DiskFull,
    /// Writes or syncs failed several times in a row.
    IoFailing,
}

/// A stall in progress.
#[derive(Debug, Clone)]
pub(super) struct Stall {
    /// Why.
    pub(super) kind: StallKind,
    /// When the next probe is due.
    pub(super) next_probe: Instant,
    /// Free bytes at the last probe.
    pub(super) free_bytes: Option<u64>,
    /// What caused it.
    pub(super) reason: String,
}

/// Bytes available to an unprivileged writer on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| io_err("statvfs", dir)(std::io::Error::from_raw_os_error(e as i32)))?;
    // The field types differ between platforms (u32/u64): convert explicitly.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(s.blocks_available()), u64::from(s.fragment_size()));
    Ok(blocks.saturating_mul(size))
}

impl SegmentWriter {
    /// Stops accepting messages until a probe passes.
    pub(super) fn enter_stall(&mut self, kind: StallKind, reason: &str) {
        let now = Instant::now();
        let delay = match kind {
            StallKind::DiskFull => self.opts.probe_interval,
            StallKind::IoFailing => {
                let d = self.io_backoff;
                self.io_backoff = (self.io_backoff * 2).min(MAX_IO_BACKOFF);
                d
            }
        };
        if self.stall.is_none() {
            if kind == StallKind::DiskFull {
                self.stats.disk_full_events += 1;
            }
            error!(
                dir = %self.opts.dir.display(),
                held = self.held.len(),
                reason,
                "{}: not accepting messages (each is dropped and counted) until it clears",
                match kind {
                    StallKind::DiskFull => "disk full",
                    StallKind::IoFailing => "I/O keeps failing",
                }
            );
        }
        self.stall = Some(Stall { kind, next_probe: now + delay, free_bytes: None, reason: reason.to_string() });
    }

    /// Probes a stall at `now` and resumes if it cleared.
    pub(super) fn try_resume(&mut self, now: Instant) -> Result<()> {
        let Some(stall) = self.stall.as_mut() else {
            return Ok(());
        };
        if now < stall.next_probe {
            return Ok(());
        }
        stall.next_probe = now + self.opts.probe_interval;
        let kind = stall.kind;
        if kind == StallKind::DiskFull {
            let free = free_bytes(&self.opts.dir)?;
            let need = self.held.bytes() + self.opts.resume_headroom;
            if let Some(s) = self.stall.as_mut() {
                s.free_bytes = Some(free);
            }
            if free < need {
                return Ok(());
            }
            info!(free, need, "disk space is back: resuming");
        } else {
            info!("retrying after I/O errors");
        }
        self.stall = None;
        if !self.seal_pending() && kind == StallKind::DiskFull {
            // Still no room for a footer: keep waiting.
            self.enter_stall(StallKind::DiskFull, "no space for sealing footers");
            return Ok(());
        }
        self.rewrite_held()
    }

    /// The status detail while stalled.
    pub(super) fn stall_detail(&self, s: &Stall) -> String {
        let held = self.held.len();
        match s.kind {
            StallKind::DiskFull => format!(
                "disk full in {}: {} bytes free, resuming at {}; {held} messages held, new ones dropped",
                self.opts.dir.display(),
                s.free_bytes.map_or_else(|| "?".into(), |f| f.to_string()),
                self.held.bytes() + self.opts.resume_headroom,
            ),
            StallKind::IoFailing => {
                format!("I/O failing ({}); {held} messages held, new ones dropped, retrying", s.reason)
            }
        }
    }
}
