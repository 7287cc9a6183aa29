//! What happens when a batch does not become durable.
//!
//! A failed `fdatasync` is never retried on the same file: Linux may have dropped the dirty
//! pages and a second sync would report success for data that is gone. So, once every chain in
//! flight has completed, everything not yet durable (batches in flight, queued, being filled)
//! goes back to memory as [`HeldMessages`], in order. Each file that had such data is settled:
//! - a file whose write or sync failed is abandoned: it keeps its durable prefix and gets an
//!   [`AbandonMarker`] naming that length, and recovery seals it at the next start;
//! - any other file (one that hit ENOSPC, or a neighbour of the failed one) is cut back to its
//!   durable length and sealed through the recovery path;
//! - a file with nothing durable in it is removed.
//!
//! After a failed sync the held messages are written right away into a new segment (with topic
//! definitions); after ENOSPC they wait in memory until space returns (see `stall`).

use std::time::Duration;

use tracing::{error, info, warn};

use super::stall::StallKind;
use super::{Interrupt, SegmentWriter};
use crate::batch::HeldMessages;
use crate::directory::remove_durably;
use crate::recovery::{self, AbandonMarker, RecoveryReport};
use crate::segment_file::SegmentFile;

/// Failed interruptions in a row before the writer stops and retries with backoff.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

impl SegmentWriter {
    /// Settles an interruption raised by a failed batch (see the module docs).
    pub(super) fn handle_interruption(&mut self) -> crate::Result<()> {
        while self.in_flight.iter().any(|f| f.outcome.is_none()) {
            let done = self
                .ring
                .wait(Some(Duration::from_millis(100)), None)
                .map_err(|error| crate::WriterError::Ring { op: "wait", error })?;
            for r in done.chains {
                self.on_chain_done(r);
            }
        }
        self.retire();
        let Some(cause) = self.interrupt.take() else {
            return Ok(());
        };

        let mut held = HeldMessages::default();
        let mut buffers = Vec::new();
        // Batches behind a failed one are taken back even if their own sync succeeded: the
        // watermark advances in order, and their file is cut back (or abandoned) anyway.
        for fl in self.in_flight.drain(..) {
            held.take_from(&fl.batch);
            buffers.push(fl.batch.buf);
        }
        for b in self.ready.drain(..) {
            held.take_from(&b);
            buffers.push(b.buf);
        }
        if let Some(b) = self.current.take() {
            held.take_from(&b);
            buffers.push(b.buf);
        }
        for buf in buffers {
            self.recycle(buf);
        }
        self.open = None;
        held.append(std::mem::take(&mut self.held));
        self.held = held;

        let mut settled: Vec<(u64, bool)> = Vec::new();
        for (seq, file) in std::mem::take(&mut self.files) {
            settled.push((seq, self.settle_file(file)));
        }
        // Numbers of removed segments at the top are free again: keep the sequence dense.
        while let Some((seq, true)) = settled.last().copied() {
            if seq + 1 == self.next_seq {
                self.next_seq = seq;
            }
            settled.pop();
        }

        match cause {
            Interrupt::DiskFull => {
                let reason = self.last_error.clone().unwrap_or_else(|| "no space left".into());
                self.enter_stall(StallKind::DiskFull, &reason);
            }
            Interrupt::Failed => {
                self.consecutive_failures += 1;
                if self.consecutive_failures > MAX_CONSECUTIVE_FAILURES {
                    let reason = self.last_error.clone().unwrap_or_else(|| "I/O errors".into());
                    self.consecutive_failures = 0;
                    self.enter_stall(StallKind::IoFailing, &reason);
                } else {
                    self.seal_pending();
                    self.rewrite_held()?;
                }
            }
        }
        Ok(())
    }

    /// Abandons, cuts back or removes one file that had data not yet durable. Returns whether
    /// the file was removed.
    fn settle_file(&mut self, file: SegmentFile) -> bool {
        let path = file.path.clone();
        if file.durable_len == 0 {
            // Not even the header is durable: nothing to keep.
            if file.failure.is_some() {
                self.stats.segments_abandoned += 1;
            }
            drop(file);
            return match remove_durably(&path) {
                Ok(()) => {
                    info!(segment = %path.display(), "segment with nothing durable removed; its messages are rewritten");
                    true
                }
                Err(e) => {
                    error!(segment = %path.display(), error = %e, "could not remove a segment with nothing durable");
                    false
                }
            };
        }
        if let Some(f) = file.failure {
            self.stats.segments_abandoned += 1;
            let marker = AbandonMarker::new(&path, file.durable_len, f.op, f.errno);
            drop(file);
            match marker.write(&path) {
                Ok(()) => error!(
                    segment = %path.display(),
                    durable_len = marker.durable_len,
                    "segment abandoned after a failed {}: recovery seals it at the next start",
                    f.op
                ),
                Err(e) => error!(
                    segment = %path.display(),
                    error = %e,
                    "segment abandoned and its marker could not be written: recovery will keep its scanned records, which may duplicate rewritten ones"
                ),
            }
            return false;
        }
        match file.cut_to_durable() {
            Ok(()) => {
                info!(segment = %path.display(), durable_len = file.durable_len, "segment cut back to its durable length; it is sealed when possible");
                drop(file);
                self.pending_seals.push(path);
            }
            Err(e) => {
                self.note_error(&e);
                let marker =
                    AbandonMarker::new(&path, file.durable_len, "ftruncate", e.raw_os_error().unwrap_or(libc::EIO));
                drop(file);
                self.stats.segments_abandoned += 1;
                if let Err(e2) = marker.write(&path) {
                    error!(segment = %path.display(), error = %e2, "abandonment marker not written");
                }
                error!(segment = %path.display(), error = %e, "segment could not be cut back: abandoned");
            }
        }
        false
    }

    /// Seals the files cut back after an interruption (footer + manifest, via recovery).
    /// Returns whether all of them are sealed now.
    pub(super) fn seal_pending(&mut self) -> bool {
        for path in std::mem::take(&mut self.pending_seals) {
            let mut report = RecoveryReport::default();
            match recovery::recover_segment(&path, &mut report) {
                Ok(()) => {
                    self.stats.segments_sealed += report.sealed.len() as u64;
                    self.sealed.extend(report.sealed);
                }
                Err(e) if e.is_disk_full() => {
                    warn!(segment = %path.display(), "segment not sealed yet: disk full");
                    self.pending_seals.push(path);
                }
                Err(e) => {
                    self.note_error(&e);
                    error!(segment = %path.display(), error = %e, "segment could not be sealed; recovery seals it at the next start");
                }
            }
        }
        self.pending_seals.is_empty()
    }

    /// Writes the held messages into new segment(s), in order. Stops (keeping the rest held)
    /// if the writer stalls again.
    pub(super) fn rewrite_held(&mut self) -> crate::Result<()> {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return Ok(());
        }
        let total = held.len();
        self.append_held(held)?;
        let done = total.saturating_sub(self.held.len());
        self.stats.rewritten_messages += done as u64;
        if done > 0 {
            info!(messages = done, "unsynced messages rewritten into a new segment");
        }
        Ok(())
    }
}
