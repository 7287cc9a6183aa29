//! The 64-byte segment header.

use super::consts::*;

/// The header at offset 0 of every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Minor format version.
    pub minor_version: u16,
    /// Reserved flags, zero.
    pub flags: u32,
    /// Writer session that created the segment.
    pub session_id: [u8; 16],
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
    /// Segment sequence number within the recording directory.
    pub segment_seq: u64,
    /// Robot index of every message in the segment, or `u16::MAX` for mixed.
    pub robot_id: u16,
}

/// Why a header is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than 64 bytes.
    #[error("segment header truncated: {len} of 64 bytes")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// Not a fleetrec segment at all.
    #[error("not a fleetrec segment (magic {found:02x?})")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// A fleetrec segment of another major version.
    #[error("fleetrec segment of major version {found}, this build reads version {MAJOR_VERSION}")]
    UnsupportedMajor {
        /// Major version found.
        found: u8,
    },
    /// The header checksum does not match.
    #[error("segment header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC stored at bytes 60..64.
        stored: u32,
        /// CRC of bytes 0..60.
        computed: u32,
    },
}

impl SegmentHeader {
    /// Encodes the header (64 bytes).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.minor_version.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..32].copy_from_slice(&self.session_id);
        b[32..40].copy_from_slice(&self.created_ns.to_le_bytes());
        b[40..48].copy_from_slice(&self.segment_seq.to_le_bytes());
        b[48..50].copy_from_slice(&self.robot_id.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header at the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::Truncated { len: bytes.len() })?;
        let magic: [u8; 8] = le_arr(&b[0..8]);
        if magic[0..6] != MAGIC_PREFIX {
            return Err(HeaderError::BadMagic { found: magic });
        }
        if magic != MAGIC {
            return Err(HeaderError::UnsupportedMajor { found: magic[6] });
        }
        let stored = u32::from_le_bytes(le_arr(&b[60..64]));
        let computed = crc32fast::hash(&b[0..60]);
        if stored != computed {
            return Err(HeaderError::BadCrc { stored, computed });
        }
        Ok(SegmentHeader {
            minor_version: u16::from_le_bytes(le_arr(&b[8..10])),
            flags: u32::from_le_bytes(le_arr(&b[12..16])),
            session_id: le_arr(&b[16..32]),
            created_ns: u64::from_le_bytes(le_arr(&b[32..40])),
            segment_seq: u64::from_le_bytes(le_arr(&b[40..48])),
            robot_id: u16::from_le_bytes(le_arr(&b[48..50])),
        })
    }
}

/// Copies a slice of known length into an array (lengths are fixed by the callers).
pub(crate) fn le_arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s[..n]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader { minor_version: 0, flags: 0, session_id: [7; 16], created_ns: 1234, segment_seq: 9, robot_id: 2 }
    }

    #[test]
    fn round_trip_and_magic_bytes() {
        let b = sample().encode();
        assert_eq!(&b[0..8], b"FLTREC\x01\n");
        assert_eq!(SegmentHeader::decode(&b).unwrap(), sample());
    }

    #[test]
    fn errors_are_precise() {
        let mut b = sample().encode();
        assert_eq!(SegmentHeader::decode(&b[..10]), Err(HeaderError::Truncated { len: 10 }));
        b[6] = 2;
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::UnsupportedMajor { found: 2 }));
        let mut b = sample().encode();
        b[33] ^= 1;
        assert!(matches!(SegmentHeader::decode(&b), Err(HeaderError::BadCrc { .. })));
        assert!(matches!(SegmentHeader::decode(&[0u8; 64]), Err(HeaderError::BadMagic { .. })));
    }
}
