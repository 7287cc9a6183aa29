//! The CDR cursor: the encapsulation header, byte order, alignment and bounds checks. Every read
//! is checked; nothing here can panic or allocate on a length it has not checked against the
//! remaining bytes.
//!
//! Encapsulations: `00 00` (CDR, big endian), `00 01` (CDR, little endian) as ROS 2 writes them,
//! and `00 06` / `00 07` (plain XCDR2, where 8-byte values align to 4). Alignment counts from the
//! first byte after the 4-byte encapsulation header.

/// Length of the encapsulation header.
pub const ENCAPSULATION_LEN: usize = 4;

/// Why a payload does not decode. Small and `Copy`: it is made on the per-message path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CdrError {
    /// Fewer than 4 bytes.
    #[error("payload shorter than the 4-byte CDR encapsulation header")]
    NoHeader,
    /// An encapsulation this decoder does not read.
    #[error("unsupported CDR encapsulation {0:02x} {1:02x}")]
    Encapsulation(u8, u8),
    /// The payload ends early.
    #[error("payload truncated: {need} byte(s) needed at offset {offset}")]
    Truncated {
        /// Offset in the payload (encapsulation header included).
        offset: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A length prefix larger than what the remaining bytes can hold.
    #[error("length {len} at offset {offset} exceeds the {remaining} remaining bytes")]
    TooLong {
        /// Offset of the length field.
        offset: usize,
        /// The length read.
        len: usize,
        /// Bytes left after it.
        remaining: usize,
    },
    /// A string that is not valid UTF-8 (or UTF-16 for `wstring`).
    #[error("string at offset {offset} is not valid Unicode")]
    BadString {
        /// Offset of its first byte.
        offset: usize,
    },
    /// A batch column grew past Arrow's 32-bit offsets (flush earlier).
    #[error("a column of the batch exceeds 2 GiB")]
    ColumnOverflow,
}

/// A position in one CDR payload.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
    max_align: usize,
}

impl<'a> Cursor<'a> {
    /// Reads the encapsulation header of `payload` (which includes it).
    pub fn new(payload: &'a [u8]) -> Result<Cursor<'a>, CdrError> {
        let [a, b, ..] = payload else { return Err(CdrError::NoHeader) };
        if payload.len() < ENCAPSULATION_LEN {
            return Err(CdrError::NoHeader);
        }
        let (big_endian, max_align) = match (*a, *b) {
            (0, 0) => (true, 8),
            (0, 1) => (false, 8),
            (0, 6) => (true, 4),
            (0, 7) => (false, 4),
            (a, b) => return Err(CdrError::Encapsulation(a, b)),
        };
        Ok(Cursor { buf: payload, pos: ENCAPSULATION_LEN, big_endian, max_align })
    }

    /// Whether the payload is big endian.
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// Offset of the next byte (encapsulation header included).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes after the position.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Skips padding up to a multiple of `n` (capped by the encapsulation's largest alignment).
    #[inline]
    pub fn align(&mut self, n: usize) -> Result<(), CdrError> {
        let n = n.min(self.max_align);
        if n > 1 {
            let rel = self.pos - ENCAPSULATION_LEN;
            let pad = (n - rel % n) % n;
            if pad > 0 {
                self.take(pad)?;
            }
        }
        Ok(())
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CdrError> {
        let err = CdrError::Truncated { offset: self.pos, need: n };
        let end = self.pos.checked_add(n).ok_or(err)?;
        let s = self.buf.get(self.pos..end).ok_or(err)?;
        self.pos = end;
        Ok(s)
    }

    /// Aligns to `N` and takes `N` bytes as an array in wire order.
    #[inline]
    pub fn prim<const N: usize>(&mut self) -> Result<[u8; N], CdrError> {
        self.align(N)?;
        let offset = self.pos;
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| CdrError::Truncated { offset, need: N })
    }

    /// Reads a `uint32` length prefix and checks that `len * min_elem_size` bytes remain.
    pub fn read_len(&mut self, min_elem_size: usize) -> Result<usize, CdrError> {
        self.align(4)?;
        let offset = self.pos;
        let raw = self.prim::<4>()?;
        let len = if self.big_endian { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) } as usize;
        let remaining = self.remaining();
        match len.checked_mul(min_elem_size) {
            Some(bytes) if bytes <= remaining => Ok(len),
            _ => Err(CdrError::TooLong { offset, len, remaining }),
        }
    }

    /// Checks that `count` values of at least `min_size` bytes can still follow.
    pub fn check_fits(&self, count: usize, min_size: usize) -> Result<(), CdrError> {
        let remaining = self.remaining();
        match count.checked_mul(min_size) {
            Some(b) if b <= remaining => Ok(()),
            _ => Err(CdrError::TooLong { offset: self.pos, len: count, remaining }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encapsulations_and_alignment() {
        assert_eq!(Cursor::new(&[0, 1]).unwrap_err(), CdrError::NoHeader);
        assert_eq!(Cursor::new(&[0, 2, 0, 0]).unwrap_err(), CdrError::Encapsulation(0, 2));
        let mut c = Cursor::new(&[0, 1, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(c.prim::<1>().unwrap(), [7]);
        assert_eq!(c.prim::<8>().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
        // XCDR2 caps 8-byte alignment at 4
        let mut c = Cursor::new(&[0, 7, 0, 0, 7, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(c.prim::<1>().unwrap(), [7]);
        assert_eq!(c.prim::<8>().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut c = Cursor::new(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(c.read_len(1), Err(CdrError::TooLong { offset: 4, .. })));
    }
}
