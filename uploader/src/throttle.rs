//! The bandwidth limit (`[sync] bandwidth_limit`, bytes per second, shared by every part in
//! flight). A virtual clock schedules each part: a part of `n` bytes may start once the parts
//! before it have "paid" for their bytes at the configured rate. So over any window longer than
//! one part, the bytes sent stay within `rate * window + one part per concurrent slot`; inside
//! one part the bytes go out at link speed (an S3 part is one request whose body we do not
//! pace). Robots sharing an uplink see the configured average.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A shared pacing schedule; `rate == 0` means unlimited.
#[derive(Debug)]
pub struct BandwidthLimiter {
    rate: u64,
    next_free: Mutex<Option<Instant>>,
}

impl BandwidthLimiter {
    /// A limiter of `rate` bytes per second (0: unlimited).
    pub fn new(rate: u64) -> Self {
        BandwidthLimiter { rate, next_free: Mutex::new(None) }
    }

    /// Reserves `bytes` and returns when they may start being sent (pure scheduling, no sleep).
    pub fn reserve(&self, now: Instant, bytes: u64) -> Instant {
        if self.rate == 0 {
            return now;
        }
        let mut next = self.next_free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = next.map_or(now, |n| n.max(now));
        *next = Some(start + Duration::from_secs_f64(bytes as f64 / self.rate as f64));
        start
    }

    /// Waits until `bytes` may be sent.
    pub async fn acquire(&self, bytes: u64) {
        let now = Instant::now();
        let start = self.reserve(now, bytes);
        if start > now {
            tokio::time::sleep_until(start.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_pays_for_each_part_at_the_rate() {
        let l = BandwidthLimiter::new(1_000_000);
        let t0 = Instant::now();
        assert_eq!(l.reserve(t0, 500_000), t0);
        assert_eq!(l.reserve(t0, 2_000_000), t0 + Duration::from_millis(500));
        assert_eq!(l.reserve(t0, 1), t0 + Duration::from_millis(2500));
        // Idle time is not saved up: after a pause the next part starts at once, no burst credit.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(l.reserve(later, 1_000_000), later);
        assert_eq!(l.reserve(later, 1), later + Duration::from_secs(1));
    }

    #[test]
    fn unlimited_never_waits() {
        let l = BandwidthLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.reserve(t0, u64::MAX / 4), t0);
        }
    }
}
