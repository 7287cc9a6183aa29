//! Fault injection at the I/O boundary. Every io_uring completion of a segment write or sync
//! passes through an [`IoFaults`] before the writer looks at it, so tests can turn a successful
//! `fdatasync` into `EIO` or a write into `ENOSPC` and drive the real failure paths (the
//! raft-engine failpoint idea, without a global registry). Production uses [`NoFaults`].

use std::fmt::Debug;
use std::path::Path;

/// Rewrites I/O results before the writer sees them. Results are what io_uring reports:
/// bytes written (>= 0) or a negated errno.
pub trait IoFaults: Send + Sync + Debug {
    /// The result of one write of `len` bytes at `offset` of `segment`.
    fn write_result(&self, segment: &Path, offset: u64, len: u32, result: i32) -> i32 {
        let _ = (segment, offset, len);
        result
    }

    /// The result of an `fdatasync` of `segment`.
    fn fdatasync_result(&self, segment: &Path, result: i32) -> i32 {
        let _ = segment;
        result
    }
}

/// No faults: every result passes unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl IoFaults for NoFaults {}
