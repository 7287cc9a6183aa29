//! The io_uring boundary: the only module that submits io_uring entries, hence the only one
//! that allows `unsafe`.
//!
//! A [`Chain`] is one group-commit batch: its bytes go out as one or more writes linked
//! (`IO_LINK`) to an `fdatasync` of the segment (and, for the first batch of a new segment, to
//! an `fsync` of the directory, so the new file's entry is durable too). Chains are never
//! drained (`IO_DRAIN`), so the writer can keep several in flight and overlap one batch's
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
use shared::segment::RecordSink;

/// Largest single buffered write entry; bigger batches become several linked writes, each
/// followed by a write-out hint (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the page cache
/// starts writing a commit's first MiB back while its next ones are copied in, instead of
/// all of it at the fdatasync. On the test VM (docs/BENCHMARKS.md, tenth session), 1 GiB of
/// 4 KiB records: 4 MiB writes without hints 326 MB/s, 1 MiB without 352, 1 MiB with hints
/// 374-380, 512 KiB with 376, 256 KiB with 358, 2 MiB with 366, 4 MiB with 308.
const MAX_WRITE: usize = 1024 * 1024;
/// Largest single direct write: smaller pieces keep several in flight on the device.
const MAX_DIRECT_WRITE: usize = 1024 * 1024;
/// Most entries of one chain (writes, their write-out hints, fdatasync, directory fsync).
const MAX_CHAIN_ENTRIES: usize = 200;
/// `user_data` of the wake-descriptor poll.
const POLL_TOKEN: u64 = u64::MAX;
/// Step index of the fdatasync in a chain's tokens.
const STEP_DATASYNC: u64 = 0xfe;
/// Step index of the directory fsync.
const STEP_DIRSYNC: u64 = 0xff;
/// Step index of a write-out hint (`sync_file_range`) after a buffered write.
const STEP_RANGE: u64 = 0xfd;

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
    /// The bytes (owned by the ring while in flight; block-aligned, see [`AlignedBuf`]).
    pub(crate) buf: AlignedBuf,
    /// First byte of `buf` still to write (after a short write, the rest is resubmitted).
    pub(crate) from: usize,
    /// A directory to fsync after the data sync.
    pub(crate) dir_sync: Option<Arc<File>>,
    /// `file` is in `O_DIRECT` mode: the bytes go out from `buf` itself (block-aligned), and `offset`
    /// and the end of `buf` must lie on [`DIRECT_ALIGN`] boundaries (else the kernel refuses the
    /// write with `EINVAL`, which the writer handles like any failed write).
    pub(crate) direct: bool,
}

/// Alignment of direct-I/O buffers, offsets and lengths.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// One block-aligned block of a direct-I/O buffer.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; DIRECT_ALIGN]);

/// A growable byte buffer whose first byte lies on a block boundary: a batch's records are
/// encoded straight into it and `O_DIRECT` writes go out from it, with no aligned copy. Once
/// the batch is durable, the sealer hashes the segment from it instead of reading it back.
#[derive(Default, Clone)]
pub(crate) struct AlignedBuf {
    /// The storage; always fully initialised (zeroed when it grows).
    blocks: Vec<Block>,
    /// Bytes in use, from the start of `blocks`.
    len: usize,
}

impl AlignedBuf {
    /// An empty buffer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> AlignedBuf {
        let mut b = AlignedBuf::default();
        b.reserve(capacity);
        b
    }

    /// Makes room for `additional` more bytes (at least doubling the storage when it grows).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let need = self.len.saturating_add(additional).div_ceil(DIRECT_ALIGN);
        if need > self.blocks.len() {
            let grow = need.max(self.blocks.len() * 2);
            self.blocks.resize(grow, Block([0; DIRECT_ALIGN]));
        }
    }

    /// Appends `data`.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        self.reserve(data.len());
        let at = self.len;
        self.len += data.len();
        self.storage_mut()[at..at + data.len()].copy_from_slice(data);
    }

    /// Bytes the storage holds.
    pub(crate) fn capacity(&self) -> usize {
        self.blocks.len() * DIRECT_ALIGN
    }

    /// Forgets the contents, keeping the storage.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    fn as_ptr(&self) -> *const u8 {
        self.blocks.as_ptr().cast::<u8>()
    }

    /// The whole storage as bytes.
    fn storage_mut(&mut self) -> &mut [u8] {
        let n = self.blocks.len() * DIRECT_ALIGN;
        // SAFETY: `Block` is `repr(C)` around `[u8; DIRECT_ALIGN]` with an alignment equal to
        // its size, so it has no padding and the vector's elements are `n` contiguous,
        // initialised bytes. The slice borrows `self` mutably, so nothing else aliases it.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), n) }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        debug_assert!(self.len <= self.blocks.len() * DIRECT_ALIGN);
        let len = self.len.min(self.blocks.len() * DIRECT_ALIGN);
        // SAFETY: as in `storage_mut`: the blocks are contiguous initialised bytes, and `len`
        // does not exceed them. The slice borrows `self`, so the storage cannot change under it.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), len) }
    }
}

impl RecordSink for AlignedBuf {
    fn position(&self) -> usize {
        self.len
    }

    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn patch(&mut self, at: usize, bytes: &[u8]) {
        let len = self.len;
        if let Some(dst) = self.storage_mut()[..len].get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}

impl From<&[u8]> for AlignedBuf {
    fn from(data: &[u8]) -> AlignedBuf {
        let mut b = AlignedBuf::with_capacity(data.len());
        b.extend_from_slice(data);
        b
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf").field("len", &self.len).field("capacity", &self.capacity()).finish()
    }
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

struct Pending {
    chain: Chain,
    writes: Vec<WriteResult>,
    datasync: Option<i32>,
    dirsync: Option<i32>,
    /// Entries submitted and not yet completed.
    outstanding: usize,
    /// Writes not yet completed.
    writes_left: usize,
    /// The syncs are submitted once every write completed (direct chains, whose writes run in
    /// parallel instead of linked one after the other).
    deferred_sync: bool,
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
        // A direct write resumed after a short write starts again at its block's beginning:
        // the bytes before `from` in that block are the same ones, written again.
        let from = if chain.direct { chain.from - chain.from % DIRECT_ALIGN } else { chain.from };
        let data_len = chain.buf.len().saturating_sub(from);
        let max_write = if chain.direct { MAX_DIRECT_WRITE } else { MAX_WRITE };
        let mut chunk = max_write.max(data_len.div_ceil((MAX_CHAIN_ENTRIES - 2) / 2));
        if chain.direct {
            chunk = chunk.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        }
        let mut writes = Vec::new();
        let mut start = from;
        while start < chain.buf.len() {
            let len = (chain.buf.len() - start).min(chunk);
            writes.push(WriteResult { start, len: u32::try_from(len).unwrap_or(u32::MAX), res: 0 });
            start += len;
        }
        let fd = types::Fd(chain.file.as_raw_fd());
        let mut entries = Vec::with_capacity(writes.len() + 2);
        for (i, w) in writes.iter().enumerate() {
            // Pointers into `chain.buf`, heap memory that the ring keeps unmoved (the buffer
            // is not touched) in `self.pending` until every entry of the chain has completed.
            let ptr = chain.buf[w.start..].as_ptr();
            entries.push(
                opcode::Write::new(fd, ptr, w.len)
                    .offset(chain.offset + w.start as u64)
                    .build()
                    .user_data(token(id, i as u64)),
            );
            if !chain.direct {
                // A hint, hard-linked: the next write follows even if the hint fails (its
                // result is ignored), and the fdatasync still covers every byte.
                entries.push(
                    opcode::SyncFileRange::new(fd, w.len)
                        .offset(chain.offset + w.start as u64)
                        .flags(libc::SYNC_FILE_RANGE_WRITE)
                        .build()
                        .flags(squeue::Flags::IO_HARDLINK)
                        .user_data(token(id, STEP_RANGE)),
                );
            }
        }
        let deferred_sync = chain.direct && !writes.is_empty();
        if deferred_sync {
            // Direct writes go out unlinked, so the device works on several at once; the
            // fdatasync follows once all of them completed (see `reap`).
        } else {
            entries.extend(sync_entries(&chain));
            let last = entries.len() - 1;
            for e in entries.iter_mut().take(last) {
                if e.get_user_data() & 0xff != STEP_RANGE {
                    *e = e.clone().flags(squeue::Flags::IO_LINK);
                }
            }
        }
        if let Err(e) = self.make_room(entries.len()) {
            return Err((chain, e));
        }
        let outstanding = entries.len();
        {
            let mut sq = self.ring.submission();
            for e in &entries {
                // SAFETY: every entry points into `chain.buf` (heap memory that does not move
                // when the chain moves; `w.start + w.len` stays within it) or names a file
                // descriptor owned by
                // `chain.file` / `chain.dir_sync`. Both are stored in `self.pending` right
                // below and only handed back after the completions of all these entries were
                // reaped, so buffers and descriptors outlive the kernel's use. `make_room`
                // guaranteed the space, so no push fails half-way through a chain.
                if unsafe { sq.push(e) }.is_err() {
                    // Unreachable after make_room; keep the chain consistent anyway.
                    drop(sq);
                    return Err((chain, io::Error::other("submission queue full")));
                }
            }
        }
        let writes_left = writes.len();
        self.pending.insert(
            id,
            Pending { chain, writes, datasync: None, dirsync: None, outstanding, writes_left, deferred_sync },
        );
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
        let mut to_sync = Vec::new();
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
                STEP_RANGE => {
                    if res < 0 {
                        // Writeback errors still reach the chain's fdatasync (the hint does not
                        // wait, so it does not consume them).
                        tracing::debug!(chain = id, error = %io::Error::from_raw_os_error(-res), "write-out hint failed; ignored");
                    }
                }
                i => {
                    if let Some(w) = p.writes.get_mut(i as usize) {
                        w.res = res;
                    }
                    p.writes_left = p.writes_left.saturating_sub(1);
                    if p.writes_left == 0 && p.deferred_sync {
                        p.deferred_sync = false;
                        if p.writes.iter().all(|w| w.res >= 0 && w.res as u32 == w.len) {
                            p.outstanding += sync_entries(&p.chain).len();
                            to_sync.push(id);
                        } else {
                            // As a link would: what follows a failed or short write is cancelled.
                            p.datasync = Some(-libc::ECANCELED);
                            p.dirsync = p.chain.dir_sync.as_ref().map(|_| -libc::ECANCELED);
                        }
                    }
                }
            }
            p.outstanding = p.outstanding.saturating_sub(1);
            if p.outstanding == 0 {
                self.finish(id, &mut out);
            }
        }
        for id in to_sync {
            let Some(entries) = self.pending.get(&id).map(|p| sync_entries(&p.chain)) else {
                continue;
            };
            let pushed = self.make_room(entries.len()).is_ok() && {
                let mut sq = self.ring.submission();
                // SAFETY: sync entries reference no memory, only the descriptors of
                // `chain.file` / `chain.dir_sync`, kept open in `self.pending` until their
                // completions are reaped. `make_room` guaranteed the space for both.
                entries.iter().all(|e| unsafe { sq.push(e) }.is_ok())
            };
            if pushed {
                if let Err(e) = self.ring.submit() {
                    tracing::warn!(error = %e, "io_uring submit failed, entries stay queued");
                }
            } else if let Some(p) = self.pending.get_mut(&id) {
                tracing::error!(chain = id, "no room to submit a chain's fdatasync: the chain fails");
                p.datasync = Some(-libc::EBUSY);
                p.dirsync = p.chain.dir_sync.as_ref().map(|_| -libc::ECANCELED);
                p.outstanding = 0;
                self.finish(id, &mut out);
            }
        }
        out
    }

    /// Hands a chain whose every entry completed back to the caller.
    fn finish(&mut self, id: u64, out: &mut Completions) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        out.chains.push(ChainResult {
            chain: p.chain,
            writes: p.writes,
            datasync: p.datasync.unwrap_or(-libc::ECANCELED),
            dirsync: p.dirsync,
        });
    }
}

/// The fdatasync of a chain's file, linked to the fsync of its directory if requested.
fn sync_entries(chain: &Chain) -> Vec<squeue::Entry> {
    let fd = types::Fd(chain.file.as_raw_fd());
    let sync =
        opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(token(chain.id, STEP_DATASYNC));
    match &chain.dir_sync {
        Some(dir) => vec![
            sync.flags(squeue::Flags::IO_LINK),
            opcode::Fsync::new(types::Fd(dir.as_raw_fd())).build().user_data(token(chain.id, STEP_DIRSYNC)),
        ],
        None => vec![sync],
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

    /// Submits `chain` and waits for its result.
    fn complete(ring: &mut Ring, chain: Chain) -> ChainResult {
        ring.submit(chain).unwrap();
        loop {
            if let Some(r) = ring.wait(None, None).unwrap().chains.pop() {
                return r;
            }
        }
    }

    #[test]
    fn chain_writes_syncs_and_returns_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Arc::new(File::create(&path).unwrap());
        let dirf = Arc::new(File::open(dir.path()).unwrap());
        let mut ring = Ring::new(32).unwrap();
        let buf: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let r = complete(
            &mut ring,
            Chain {
                id: 7,
                file: file.clone(),
                offset: 100,
                buf: AlignedBuf::from(&buf[..]),
                from: 0,
                dir_sync: Some(dirf),
                direct: false,
            },
        );
        assert_eq!(r.chain.id, 7);
        assert_eq!(&r.chain.buf[..], &buf[..]);
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
    fn a_buffered_chain_is_written_in_pieces_with_hints_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Arc::new(File::create(&path).unwrap());
        let mut ring = Ring::new(32).unwrap();
        // 3.5 MiB from byte 1000 on: 3 whole pieces and a half one, each followed by its hint.
        let buf: Vec<u8> = (0..1000 + 7 * MAX_WRITE / 2).map(|i| (i % 253) as u8).collect();
        let r = complete(
            &mut ring,
            Chain {
                id: 9,
                file: file.clone(),
                offset: 4096,
                buf: AlignedBuf::from(&buf[..]),
                from: 1000,
                dir_sync: None,
                direct: false,
            },
        );
        assert_eq!(r.datasync, 0);
        assert_eq!(r.dirsync, None);
        let pieces: Vec<(usize, u32, i32)> = r.writes.iter().map(|w| (w.start, w.len, w.res)).collect();
        let m = MAX_WRITE as u32;
        assert_eq!(
            pieces,
            vec![
                (1000, m, m as i32),
                (1000 + MAX_WRITE, m, m as i32),
                (1000 + 2 * MAX_WRITE, m, m as i32),
                (1000 + 3 * MAX_WRITE, m / 2, (m / 2) as i32)
            ]
        );
        let mut on_disk = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut on_disk).unwrap();
        assert_eq!(on_disk.len(), 4096 + buf.len());
        assert_eq!(&on_disk[..4096 + 1000], &[0u8; 5096][..]);
        assert_eq!(&on_disk[4096 + 1000..], &buf[1000..]);
        assert_eq!(ring.chains_in_flight(), 0);
    }

    #[test]
    fn direct_chain_writes_in_parallel_then_syncs() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let file = Arc::new(
            std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_DIRECT).open(&path).unwrap(),
        );
        let dirf = Arc::new(File::open(dir.path()).unwrap());
        let mut ring = Ring::new(32).unwrap();
        // 2.5 MiB: three direct writes of at most 1 MiB, then the fdatasync and directory fsync.
        let len = 5 * MAX_DIRECT_WRITE / 2;
        let buf: Vec<u8> = (0..len as u32).map(|i| (i % 253) as u8).collect();
        let r = complete(
            &mut ring,
            Chain {
                id: 3,
                file: file.clone(),
                offset: 8192,
                buf: AlignedBuf::from(&buf[..]),
                from: 0,
                dir_sync: Some(dirf),
                direct: true,
            },
        );
        assert_eq!(r.writes.len(), 3);
        assert!(r.writes.iter().all(|w| w.res as u32 == w.len), "{:?}", r.writes);
        assert_eq!((r.datasync, r.dirsync), (0, Some(0)));
        let mut on_disk = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut on_disk).unwrap();
        assert_eq!(on_disk.len(), 8192 + len);
        assert_eq!(&on_disk[8192..], &buf[..]);
        // A misaligned direct chain is refused by the kernel and its syncs are cancelled.
        let r = complete(
            &mut ring,
            Chain {
                id: 4,
                file,
                offset: 100,
                buf: AlignedBuf::from(&[1u8; 4096][..]),
                from: 0,
                dir_sync: None,
                direct: true,
            },
        );
        assert_eq!(r.writes[0].res, -libc::EINVAL);
        assert_eq!(r.datasync, -libc::ECANCELED);
        assert_eq!(ring.chains_in_flight(), 0);
    }

    #[test]
    fn aligned_buf_grows_aligned_and_encodes_records_in_place() {
        use shared::plane::MessageHeader;
        use shared::segment::encode_message;
        let mut a = AlignedBuf::default();
        let mut v = Vec::new();
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        for seq in 1..=40u64 {
            let h = MessageHeader { topic_id: 1, sequence: seq, ..Default::default() };
            let p = &payload[..(seq as usize * 997) % payload.len()];
            encode_message(&mut a, &h, p);
            encode_message(&mut v, &h, p);
            assert_eq!(a.as_ptr() as usize % DIRECT_ALIGN, 0);
        }
        assert_eq!(&a[..], &v[..]);
        a.clear();
        assert!(a.is_empty());
        a.extend_from_slice(b"abc");
        assert_eq!(&a[..], b"abc");
        assert_eq!(a.as_ptr() as usize % DIRECT_ALIGN, 0);
    }

    #[test]
    fn wait_with_timeout_returns_without_completions() {
        let mut ring = Ring::new(8).unwrap();
        let c = ring.wait(Some(Duration::from_millis(1)), None).unwrap();
        assert!(c.chains.is_empty());
        assert!(!c.woken);
    }
}
