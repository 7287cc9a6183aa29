//! When a segment is full: at `wal_segment_size` (the message record that reaches the size is
//! the last one, so a segment exceeds the size by at most that record plus its checkpoint and
//! footer), optionally after `segment_max_duration_s`, and on request (control `SplitSegment`).

use std::time::{Duration, Instant};

/// The rotation rule of a writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Rotate once a segment holds this many bytes.
    pub max_bytes: u64,
    /// Rotate a segment this long after it was opened (`None`: never by age).
    pub max_age: Option<Duration>,
}

impl RotationPolicy {
    /// Whether a segment of `len` bytes is full.
    pub fn full_by_size(&self, len: u64) -> bool {
        len >= self.max_bytes
    }

    /// When a segment opened at `opened` is due by age.
    pub fn age_deadline(&self, opened: Instant) -> Option<Instant> {
        self.max_age.map(|a| opened + a)
    }

    /// Whether a segment opened at `opened` is due by age at `now`.
    pub fn full_by_age(&self, opened: Instant, now: Instant) -> bool {
        self.age_deadline(opened).is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_age() {
        let p = RotationPolicy { max_bytes: 100, max_age: Some(Duration::from_secs(2)) };
        assert!(!p.full_by_size(99));
        assert!(p.full_by_size(100));
        let t = Instant::now();
        assert!(!p.full_by_age(t, t + Duration::from_secs(1)));
        assert!(p.full_by_age(t, t + Duration::from_secs(2)));
        let never = RotationPolicy { max_bytes: 100, max_age: None };
        assert!(!never.full_by_age(t, t + Duration::from_secs(1_000_000)));
    }
}
