//! Record framing: `body_len u32 | kind u16 | flags u16 | crc32 u32 | body`, all little endian.
//! The CRC covers the first eight header bytes and the body.

use super::consts::*;
use super::header::le_arr;

/// One framed record inside a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Offset of the frame header in the segment.
    pub offset: u64,
    /// Record kind.
    pub kind: u16,
    /// Record flags.
    pub flags: u16,
    /// The body.
    pub body: &'a [u8],
}

impl RecordRef<'_> {
    /// Total length of the framed record.
    pub fn framed_len(&self) -> usize {
        FRAME_HEADER_LEN + self.body.len()
    }
}

/// Why no record could be decoded at an offset. Small and `Copy`: this is the per-record path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside the frame (at the end of a file: a torn tail).
    #[error("record at offset {offset} incomplete: need {need} bytes, {have} available")]
    Incomplete {
        /// Frame offset.
        offset: u64,
        /// Bytes the frame needs.
        need: u64,
        /// Bytes available from `offset`.
        have: u64,
    },
    /// Kind 0 or a length beyond the maximum: not a record (zeroed space or garbage).
    #[error("no record at offset {offset}: kind {kind}, length {len}")]
    NotARecord {
        /// Frame offset.
        offset: u64,
        /// Kind field.
        kind: u16,
        /// Length field.
        len: u32,
    },
    /// The CRC does not match.
    #[error("record at offset {offset}: CRC mismatch, stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// Frame offset.
        offset: u64,
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
        /// Length field (to skip the record when resynchronising).
        len: u32,
    },
}

/// Where records are encoded to: a `Vec<u8>`, or the writer's block-aligned batch buffer (so
/// the bytes need no second copy before an `O_DIRECT` write).
pub trait RecordSink {
    /// Bytes already in the sink.
    fn position(&self) -> usize;
    /// Makes room for `additional` more bytes.
    fn reserve_more(&mut self, additional: usize);
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
    /// Overwrites bytes already put, from `at` on.
    fn patch(&mut self, at: usize, bytes: &[u8]);
}

impl RecordSink for Vec<u8> {
    fn position(&self) -> usize {
        self.len()
    }

    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn patch(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}

/// Body bytes checksummed and then copied together: the copy reads them from cache, so a large
/// payload is read from memory once instead of twice.
const CRC_CHUNK: usize = 32 * 1024;

/// Appends one framed record to `out`; the body is the concatenation of `parts`.
pub fn encode_frame<S: RecordSink + ?Sized>(out: &mut S, kind: u16, flags: u16, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let mut head = [0u8; FRAME_HEADER_LEN];
    head[0..4].copy_from_slice(&len.to_le_bytes());
    head[4..6].copy_from_slice(&kind.to_le_bytes());
    head[6..8].copy_from_slice(&flags.to_le_bytes());
    let start = out.position();
    out.reserve_more(FRAME_HEADER_LEN + len as usize);
    // The CRC field is filled in once the body is in.
    out.put(&head);
    let mut h = crc32fast::Hasher::new();
    h.update(&head[0..8]);
    for p in parts {
        for chunk in p.chunks(CRC_CHUNK) {
            h.update(chunk);
            out.put(chunk);
        }
    }
    out.patch(start + 8, &h.finalize().to_le_bytes());
}

/// Decodes the record whose frame starts at `buf[0]`; `offset` is its offset in the segment.
pub fn decode_frame(buf: &[u8], offset: u64) -> Result<RecordRef<'_>, FrameError> {
    let have = buf.len() as u64;
    let Some(head) = buf.get(..FRAME_HEADER_LEN) else {
        return Err(FrameError::Incomplete { offset, need: FRAME_HEADER_LEN as u64, have });
    };
    let len = u32::from_le_bytes(le_arr(&head[0..4]));
    let kind = u16::from_le_bytes(le_arr(&head[4..6]));
    let flags = u16::from_le_bytes(le_arr(&head[6..8]));
    let stored = u32::from_le_bytes(le_arr(&head[8..12]));
    if kind == KIND_INVALID || len > MAX_BODY_LEN {
        return Err(FrameError::NotARecord { offset, kind, len });
    }
    let need = FRAME_HEADER_LEN as u64 + u64::from(len);
    let Some(body) = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len as usize) else {
        return Err(FrameError::Incomplete { offset, need, have });
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&head[0..8]);
    h.update(body);
    let computed = h.finalize();
    if computed != stored {
        return Err(FrameError::BadCrc { offset, stored, computed, len });
    }
    Ok(RecordRef { offset, kind, flags, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        let mut out = Vec::new();
        encode_frame(&mut out, KIND_MESSAGE, 0, &[b"ab", b"c"]);
        assert_eq!(&out[0..8], &[3, 0, 0, 0, 2, 0, 0, 0]);
        let crc = crc32fast::hash(&[3, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(&out[8..12], &crc.to_le_bytes());
        assert_eq!(&out[12..], b"abc");
        let r = decode_frame(&out, 100).unwrap();
        assert_eq!((r.offset, r.kind, r.body), (100, KIND_MESSAGE, &b"abc"[..]));
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut out = Vec::new();
        encode_frame(&mut out, KIND_TOPIC, 0, &[b"hello world"]);
        for i in 0..out.len() * 8 {
            let mut c = out.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert!(decode_frame(&c, 0).is_err(), "flip of bit {i} undetected");
        }
    }

    #[test]
    fn zeroes_and_truncation() {
        assert!(matches!(decode_frame(&[0u8; 64], 0), Err(FrameError::NotARecord { .. })));
        let mut out = Vec::new();
        encode_frame(&mut out, KIND_TOPIC, 0, &[b"hello"]);
        for n in 0..out.len() {
            assert!(matches!(decode_frame(&out[..n], 0), Err(FrameError::Incomplete { .. })));
        }
    }
}
