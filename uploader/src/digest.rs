//! SHA-256 of a segment, whole and per part, in one pass over the file; and reading one part
//! for upload. The hashing is aws-lc-rs's (assembly; already linked for request signing), which
//! stays fast in debug builds where a pure-Rust SHA-256 runs at a few MiB/s.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use aws_lc_rs::digest::{digest, Context, SHA256};

use crate::error::{Result, UploadError};
use crate::sealed::hex;

/// Hashes of one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDigest {
    /// Bytes in the file.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// SHA-256 of each `chunk_size` piece, hex, in order.
    pub chunks: Vec<String>,
    /// The chunk size used.
    pub chunk_size: u64,
}

/// Reads `path` once and hashes it whole and in `chunk_size` pieces. An empty file has one
/// empty chunk (S3 needs at least one part).
pub fn digest_file(path: &Path, chunk_size: u64) -> Result<SegmentDigest> {
    let mut f = File::open(path).map_err(|e| UploadError::io(path, e))?;
    let mut whole = Context::new(&SHA256);
    let mut chunks = Vec::new();
    let mut size = 0u64;
    let buf_len = usize::try_from(chunk_size.min(4 * 1024 * 1024)).unwrap_or(4 * 1024 * 1024);
    let mut buf = vec![0u8; buf_len];
    let mut part = Context::new(&SHA256);
    let mut in_part = 0u64;
    loop {
        let want = usize::try_from((chunk_size - in_part).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = f.read(&mut buf[..want]).map_err(|e| UploadError::io(path, e))?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        part.update(&buf[..n]);
        size += n as u64;
        in_part += n as u64;
        if in_part == chunk_size {
            chunks.push(hex(std::mem::replace(&mut part, Context::new(&SHA256)).finish().as_ref()));
            in_part = 0;
        }
    }
    if in_part > 0 || chunks.is_empty() {
        chunks.push(hex(part.finish().as_ref()));
    }
    Ok(SegmentDigest { size, sha256: hex(whole.finish().as_ref()), chunks, chunk_size })
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// Reads `len` bytes at `offset` of `path`.
pub fn read_part(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| UploadError::io(path, e))?;
    let len = usize::try_from(len).map_err(|_| {
        UploadError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "part larger than memory"))
    })?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).map_err(|e| UploadError::io(path, e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn chunks_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..25u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let d = digest_file(&p, 10).unwrap();
        assert_eq!(d.size, 25);
        assert_eq!(d.sha256, sha256_hex(&data));
        assert_eq!(d.chunks, vec![sha256_hex(&data[0..10]), sha256_hex(&data[10..20]), sha256_hex(&data[20..])]);
        assert_eq!(read_part(&p, 10, 10).unwrap(), &data[10..20]);
        std::fs::write(&p, &data[..20]).unwrap();
        assert_eq!(digest_file(&p, 10).unwrap().chunks.len(), 2);
        std::fs::write(&p, b"").unwrap();
        assert_eq!(digest_file(&p, 10).unwrap().chunks, vec![sha256_hex(b"")]);
    }
}
