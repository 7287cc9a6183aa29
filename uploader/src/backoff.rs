//! Retry policy of one request (a part, a create, a complete): exponential backoff with jitter,
//! bounded by a number of retries *and* a time budget, whichever ends first. When it ends, the
//! caller stops trying and the segment waits for the next connectivity probe; nothing is
//! dropped.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use shared::config::SyncConfig;

/// The policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Time budget from the first failure.
    pub timeout: Duration,
}

impl BackoffPolicy {
    /// From `[sync] retry_base_ms, retry_cap_ms, max_retries, retry_timeout_s`.
    pub fn from_config(c: &SyncConfig) -> Self {
        BackoffPolicy {
            base: Duration::from_millis(c.retry_base_ms),
            cap: Duration::from_millis(c.retry_cap_ms),
            max_retries: c.max_retries,
            timeout: Duration::from_secs(c.retry_timeout_s),
        }
    }

    /// The un-jittered delay before retry `retry` (0-based): `min(cap, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry `retry`, with "equal jitter": half the ceiling plus a random
    /// share of the other half, so retries of many parts or robots spread out but still grow.
    /// `unit` in `[0, 1]` is the random draw.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let c = self.ceiling(retry);
        let half = c / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether retry number `retry` (0-based) may happen `elapsed` after the first failure.
    /// Returns the jittered delay to sleep, or `None` when the budget is spent. The delay is cut
    /// so that it never sleeps past the time budget.
    pub fn next(&self, retry: u32, elapsed: Duration) -> Option<Duration> {
        if retry >= self.max_retries || elapsed >= self.timeout {
            return None;
        }
        Some(self.delay(retry, random_unit()).min(self.timeout - elapsed))
    }
}

/// A random number in `[0, 1)` from the standard library's randomly keyed hasher (no extra
/// dependency; quality is ample for jitter).
pub fn random_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(shared::time::now_ns());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_millis(3000),
            max_retries: 7,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = policy();
        let c: Vec<u128> = (0..6).map(|r| p.ceiling(r).as_millis()).collect();
        assert_eq!(c, vec![200, 400, 800, 1600, 3000, 3000]);
        assert_eq!(p.ceiling(200), Duration::from_millis(3000));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let p = policy();
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(800));
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
            let d = p.delay(3, u);
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1600));
        }
    }

    #[test]
    fn bounded_by_retries_and_time() {
        let p = policy();
        assert!(p.next(6, Duration::ZERO).is_some());
        assert!(p.next(7, Duration::ZERO).is_none());
        assert!(p.next(0, Duration::from_secs(10)).is_none());
        let d = p.next(5, Duration::from_millis(9900)).unwrap();
        assert!(d <= Duration::from_millis(100), "{d:?}");
    }
}
