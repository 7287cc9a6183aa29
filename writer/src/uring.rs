//! The io_uring boundary: the only module that submits io_uring entries, hence the only one
//! that allows `unsafe`.
//!
//! A [`Chain`] is one group-commit batch: its bytes go out as one or more writes linked
//! (`IO_LINK`) to an `fdatasync` of the segment (and, for the first batch of a new segment, to
//! an `fsync` of the directory, so the new file's entry is durable too). Chains are never
//! drained (`IO_DRAIN`), so the writer can keep two in flight and overlap one batch's
//! `fdatasync` with the next batch's writes. The ring owns each chain's buffer and an `Arc` of
//! each file until every entry of the chain has completed: the kernel never sees freed memory
//! or a reused file descriptor. The ring can also poll one extra descriptor (the iceoryx2 wake
//! listener), so a single wait covers "messages arrived" and "I/O completed".
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use iceoryx2::prelude::FileDescriptorBased;
use io_uring::{opcode, squeue, types, IoUring};

/// Largest single write entry; bigger batches become several linked writes.
const MAX_WRITE: usize = 4 * 1024 * 1024;
/// Most entries of one chain (writes, fdatasync, directory fsync).
const MAX_CHAIN_ENTRIES: usize = 200;
/// `user_data` of the wake-descriptor poll.
const POLL_TOKEN: u64 = u64::MAX;
/// Step index of the fdatasync in a chain's tokens.
const STEP_DATASYNC: u64 = 0xfe;
/// Step index of the directory fsync.
const STEP_DIRSYNC: u64 = 0xff;

/// One batch to make durable: `buf[from..]` is written at `offset + from` of `file`, then
/// `file` is fdatasync'ed (and `dir_sync`, if set, fsync'ed).
#[derive(Debug)]
pub(crate) struct Chain {
    /// Caller's id, returned with the result.
    pub(crate) id: u64,
    /// The segment file.
    pub(crate) file: Arc<File>,
    /// File offset of `buf[0]`.
    pub(crate) offset: u64,
    /// The bytes (owned by the ring while in flight).
    pub(crate) buf: Vec<u8>,
    /// First byte of `buf` still to write (after a short write, the rest is resubmitted).
    pub(crate) from: usize,
    /// A directory to fsync after the data sync.
    pub(crate) dir_sync: Option<Arc<File>>,
}

/// The result of one write entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteResult {
    /// Start of the write in the chain's `buf`.
    pub(crate) start: usize,
    /// Bytes requested.
    pub(crate) len: u32,
    /// Bytes written, or a negated errno (`-ECANCELED` after an earlier failure in the chain).
    pub(crate) res: i32,
}

/// A chain whose every entry has completed.
#[derive(Debug)]
pub(crate) struct ChainResult {
    /// The chain, with its buffer handed back.
    pub(crate) chain: Chain,
    /// Write results in order.
    pub(crate) writes: Vec<WriteResult>,
    /// fdatasync result (0 or a negated errno).
    pub(crate) datasync: i32,
    /// Directory fsync result, if one was requested.
    pub(crate) dirsync: Option<i32>,
}

#[derive(Debug)]
struct Pending {
    chain: Chain,
    writes: Vec<WriteResult>,
    datasync: Option<i32>,
    dirsync: Option<i32>,
    outstanding: usize,
}

/// What a [`Ring::wait`] saw.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    /// Chains that completed.
    pub(crate) chains: Vec<ChainResult>,
    /// The wake descriptor became readable.
    pub(crate) woken: bool,
}

/// The writer's io_uring instance.
pub(crate) struct Ring {
    ring: IoUring,
    pending: HashMap<u64, Pending>,
    poll_armed: bool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("chains_in_flight", &self.pending.len())
            .field("poll_armed", &self.poll_armed)
            .finish()
    }
}

fn token(id: u64, step: u64) -> u64 {
    (id << 8) | step
}

impl Ring {
    /// A ring with room for `entries` submissions.
    pub(crate) fn new(entries: u32) -> io::Result<Ring> {
        Ok(Ring { ring: IoUring::new(entries)?, pending: HashMap::new(), poll_armed: false })
    }

    /// Chains submitted and not yet fully completed.
    pub(crate) fn chains_in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Queues and submits a chain. On error the chain is handed back untouched.
    pub(crate) fn submit(&mut self, chain: Chain) -> Result<(), (Chain, io::Error)> {
        let id = chain.id;
        let data = chain.buf.get(chain.from..).unwrap_or(&[]);
        let chunk = MAX_WRITE.max(data.len().div_ceil(MAX_CHAIN_ENTRIES - 2));
        let mut writes = Vec::new();
        let mut start = chain.from;
        while start < chain.buf.len() {
            let len = (chain.buf.len() - start).min(chunk);
            writes.push(WriteResult { start, len: u32::try_from(len).unwrap_or(u32::MAX), res: 0 });
            start += len;
        }
        let fd = types::Fd(chain.file.as_raw_fd());
        let mut entries = Vec::with_capacity(writes.len() + 2);
        for (i, w) in writes.iter().enumerate() {
            // Pointers into `chain.buf`, which the ring keeps (unmoved heap allocation) in
            // `self.pending` until every entry of the chain has completed.
            let ptr = chain.buf[w.start..].as_ptr();
            entries.push(
                opcode::Write::new(fd, ptr, w.len)
                    .offset(chain.offset + w.start as u64)
                    .build()
                    .user_data(token(id, i as u64)),
            );
        }
        entries.push(
            opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(token(id, STEP_DATASYNC)),
        );
        if let Some(dir) = &chain.dir_sync {
            entries.push(opcode::Fsync::new(types::Fd(dir.as_raw_fd())).build().user_data(token(id, STEP_DIRSYNC)));
        }
        let last = entries.len() - 1;
        for e in entries.iter_mut().take(last) {
            *e = e.clone().flags(squeue::Flags::IO_LINK);
        }
        if let Err(e) = self.make_room(entries.len()) {
            return Err((chain, e));
        }
        let outstanding = entries.len();
        {
            let mut sq = self.ring.submission();
            for e in &entries {
                // SAFETY: every entry points into `chain.buf` (heap memory that does not move
                // when `chain` moves) or names a file descriptor owned by `chain.file` /
                // `chain.dir_sync`. `chain` is stored in `self.pending` right below and is
                // only handed back after the completions of all these entries were reaped, so
                // buffer and descriptors outlive the kernel's use. `make_room` guaranteed the
                // space, so no push fails half-way through a chain.
                if unsafe { sq.push(e) }.is_err() {
                    // Unreachable after make_room; keep the chain consistent anyway.
                    drop(sq);
                    return Err((chain, io::Error::other("submission queue full")));
                }
            }
        }
        self.pending.insert(id, Pending { chain, writes, datasync: None, dirsync: None, outstanding });
        if let Err(e) = self.ring.submit() {
            // The entries are queued in the submission ring; the next enter submits them.
            tracing::warn!(error = %e, "io_uring submit failed, entries stay queued");
        }
        Ok(())
    }

    fn make_room(&mut self, n: usize) -> io::Result<()> {
        let capacity = self.ring.params().sq_entries() as usize;
        if n > capacity {
            return Err(io::Error::other("chain longer than the submission queue"));
        }
        while capacity - self.ring.submission().len() < n {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Waits until at least one completion arrives, the wake descriptor becomes readable, or
    /// `timeout` passes (`None`: no limit; zero: do not block), then reaps every completion.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        wake: Option<&dyn FileDescriptorBased>,
    ) -> io::Result<Completions> {
        if let Some(w) = wake {
            if !self.poll_armed {
                // SAFETY: the descriptor is owned by the listener that `w` borrows; it is used
                // right here to build a poll entry and not stored. The kernel takes its own
                // reference to the file when the poll is armed, so the listener closing it
                // later cannot make the poll touch another file.
                let fd = unsafe { w.file_descriptor().native_handle() };
                let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32).build().user_data(POLL_TOKEN);
                self.make_room(1)?;
                // SAFETY: a poll entry references no memory of ours.
                if unsafe { self.ring.submission().push(&e) }.is_ok() {
                    self.poll_armed = true;
                }
            }
        }
        let submitter = self.ring.submitter();
        let entered = match timeout {
            Some(t) if t.is_zero() => submitter.submit(),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(1, &args)
            }
            None => submitter.submit_and_wait(1),
        };
        match entered {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        Ok(self.reap())
    }

    /// Takes every completion available now.
    pub(crate) fn reap(&mut self) -> Completions {
        let mut out = Completions::default();
        let cqes: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (user_data, res) in cqes {
            if user_data == POLL_TOKEN {
                self.poll_armed = false;
                out.woken = true;
                continue;
            }
            let id = user_data >> 8;
            let step = user_data & 0xff;
            let Some(p) = self.pending.get_mut(&id) else {
                tracing::error!(user_data, res, "io_uring completion for an unknown chain");
                continue;
            };
            match step {
                STEP_DATASYNC => p.datasync = Some(res),
                STEP_DIRSYNC => p.dirsync = Some(res),
                i => {
                    if let Some(w) = p.writes.get_mut(i as usize) {
                        w.res = res;
                    }
                }
            }
            p.outstanding = p.outstanding.saturating_sub(1);
            if p.outstanding == 0 {
                if let Some(p) = self.pending.remove(&id) {
                    out.chains.push(ChainResult {
                        chain: p.chain,
                        writes: p.writes,
                        datasync: p.datasync.unwrap_or(-libc::ECANCELED),
                        dirsync: p.dirsync,
                    });
                }
            }
        }
        out
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still write from buffers we own: wait for every chain first.
        while !self.pending.is_empty() {
            if self.ring.submit_and_wait(1).is_err() {
                // The ring is unusable; leak the buffers rather than free memory the kernel
                // might still read.
                for (_, p) in self.pending.drain() {
                    std::mem::forget(p);
                }
                return;
            }
            let _ = self.reap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn chain_writes_syncs_and_returns_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Arc::new(File::create(&path).unwrap());
        let dirf = Arc::new(File::open(dir.path()).unwrap());
        let mut ring = Ring::new(32).unwrap();
        let buf: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        ring.submit(Chain { id: 7, file: file.clone(), offset: 100, buf: buf.clone(), from: 0, dir_sync: Some(dirf) })
            .unwrap();
        let mut done = Vec::new();
        while done.is_empty() {
            done = ring.wait(None, None).unwrap().chains;
        }
        let r = done.pop().unwrap();
        assert_eq!(r.chain.id, 7);
        assert_eq!(r.chain.buf, buf);
        assert_eq!(r.datasync, 0);
        assert_eq!(r.dirsync, Some(0));
        assert_eq!(r.writes.len(), 1);
        assert_eq!(r.writes[0].res, 10_000);
        let mut on_disk = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut on_disk).unwrap();
        assert_eq!(&on_disk[..100], &[0u8; 100][..]);
        assert_eq!(&on_disk[100..], &buf[..]);
        assert_eq!(ring.chains_in_flight(), 0);
    }

    #[test]
    fn wait_with_timeout_returns_without_completions() {
        let mut ring = Ring::new(8).unwrap();
        let c = ring.wait(Some(Duration::from_millis(1)), None).unwrap();
        assert!(c.chains.is_empty());
        assert!(!c.woken);
    }
}
