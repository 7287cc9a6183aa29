//! Which I/O mode a fast recording's next segment uses (`storage.io_mode = "auto"`).
//!
//! Direct I/O (`O_DIRECT` into preallocated space) and buffered writes (page cache, written back
//! by each commit's fdatasync) are each faster on some disks. On one of this project's VMs the
//! direct writer ran at 1.2-1.5 GB/s, where the earlier buffered design had reached 0.28-0.55
//! of `dd`; on another (a virtual disk whose host cache makes every flush cost as much as the
//! writes it covers) buffered segments ran at 0.35-0.40 GB/s and direct ones at 0.26-0.31 GB/s
//! (docs/BENCHMARKS.md, fourth and fifth sessions). So the writer measures: every segment
//! opened while commits are big ("under load") reports how fast it was made durable, and new
//! segments use the mode with the better recent rate. Each mode is judged by its last
//! [`TRIAL_SEGMENTS`] segments: a recording starts with a trial of each, and after every
//! [`EXPLORE_EVERY`] segments of the faster mode the other one gets a trial again, so that a
//! change of conditions is noticed.
//!
//! The rate of a segment is its bytes over its *busy time*: for each of its commits, from its
//! submission (or the previous commit's completion, if that came later) to its completion. With
//! commits back to back this is the segment's wall time; with a slower source the idle gaps
//! between commits are not counted, so both modes are judged by the time the disk took.

use std::collections::VecDeque;
use std::time::Duration;

/// Under load, the mode not in use is tried again after this many segments of the other.
pub(crate) const EXPLORE_EVERY: u32 = 32;

/// A trial of a mode lasts this many segments, and a mode's rate is that of its last this
/// many measured segments: single segments vary too much (on the VM of docs/BENCHMARKS.md,
/// 16 MiB direct segments of one run took from 20 to 70 ms) to decide on one.
pub(crate) const TRIAL_SEGMENTS: usize = 4;

/// Segments shorter than this (busy time or bytes) tell nothing: their rate is not kept.
const MIN_SAMPLE_BYTES: u64 = 1024 * 1024;
const MIN_SAMPLE_TIME: Duration = Duration::from_millis(1);

/// The last [`TRIAL_SEGMENTS`] measured segments of one mode.
#[derive(Debug, Clone, Default)]
struct Window {
    /// (bytes, busy time) per segment, newest last.
    samples: VecDeque<(u64, Duration)>,
    /// A trial of this mode was started (its samples may still be on their way).
    tried: bool,
}

impl Window {
    /// Bytes per busy second over the window.
    fn rate(&self) -> Option<f64> {
        let (bytes, busy) = self.samples.iter().fold((0u64, Duration::ZERO), |(b, t), (sb, st)| (b + sb, t + *st));
        (bytes > 0 && !busy.is_zero()).then(|| bytes as f64 / busy.as_secs_f64())
    }

    fn push(&mut self, bytes: u64, busy: Duration) {
        if self.samples.len() == TRIAL_SEGMENTS {
            self.samples.pop_front();
        }
        self.samples.push_back((bytes, busy));
    }
}

/// Picks direct or buffered I/O for each segment opened under load, by measured rates.
#[derive(Debug, Clone, Default)]
pub(crate) struct IoModeChooser {
    direct: Window,
    buffered: Window,
    /// Segments left in the running trial, and its mode (`true`: direct).
    trial: Option<(usize, bool)>,
    /// Segments opened in the preferred mode since the last trial.
    since_trial: u32,
}

impl IoModeChooser {
    /// The mode of a segment opened now under load: `true` for direct. First a trial of
    /// [`TRIAL_SEGMENTS`] direct segments, then one of buffered ones; then the faster mode,
    /// with a trial of the other one after every [`EXPLORE_EVERY`] segments.
    pub(crate) fn choose(&mut self) -> bool {
        let (left, direct) = match self.trial {
            Some(running) => running,
            None => {
                let start = if !self.direct.tried {
                    true
                } else if !self.buffered.tried {
                    false
                } else if self.since_trial >= EXPLORE_EVERY {
                    !self.prefers_direct()
                } else {
                    self.since_trial += 1;
                    return self.prefers_direct();
                };
                self.since_trial = 0;
                if start {
                    self.direct.tried = true;
                } else {
                    self.buffered.tried = true;
                }
                (TRIAL_SEGMENTS, start)
            }
        };
        self.trial = (left > 1).then_some((left - 1, direct));
        direct
    }

    /// Whether the faster mode measured so far is direct (`true` while nothing is measured, and
    /// while only direct is). Does not count as a choice.
    pub(crate) fn prefers_direct(&self) -> bool {
        match (self.direct.rate(), self.buffered.rate()) {
            (Some(d), Some(b)) => d >= b,
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// Records how fast a segment opened under load was made durable: `bytes` in `busy` time.
    /// Returns the segment's own rate (bytes per second), if it was long enough to tell.
    pub(crate) fn record(&mut self, direct: bool, bytes: u64, busy: Duration) -> Option<f64> {
        if bytes < MIN_SAMPLE_BYTES || busy < MIN_SAMPLE_TIME {
            return None;
        }
        let w = if direct { &mut self.direct } else { &mut self.buffered };
        w.push(bytes, busy);
        Some(bytes as f64 / busy.as_secs_f64())
    }

    /// The measured rates (bytes per second) of direct and buffered segments.
    pub(crate) fn rates(&self) -> (Option<f64>, Option<f64>) {
        (self.direct.rate(), self.buffered.rate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tries_both_then_keeps_the_faster_and_tries_the_other_again() {
        let mut c = IoModeChooser::default();
        let t = TRIAL_SEGMENTS;
        // A trial of direct, then one of buffered (samples arrive while segments open).
        let first: Vec<bool> = (0..2 * t).map(|_| c.choose()).collect();
        assert_eq!(first, [vec![true; t], vec![false; t]].concat());
        assert!(c.prefers_direct(), "nothing measured");
        // Direct: 16 MiB segments in 40 ms (419 MB/s); buffered in 20 ms (839 MB/s).
        for _ in 0..t {
            assert_eq!(c.record(true, 16 * MIB, ms(40)).map(|r| r.round() as u64), Some(419_430_400));
        }
        assert!(c.prefers_direct(), "only direct measured");
        for _ in 0..t {
            c.record(false, 16 * MIB, ms(20));
        }
        assert!(!c.prefers_direct());
        // Buffered from now on; after EXPLORE_EVERY segments, a trial of direct.
        let picks: Vec<bool> = (0..EXPLORE_EVERY as usize + t + 1).map(|_| c.choose()).collect();
        let explore = EXPLORE_EVERY as usize;
        assert!(picks[..explore].iter().all(|d| !d), "{picks:?}");
        assert!(picks[explore..explore + t].iter().all(|d| *d), "{picks:?}");
        // The trial finds direct faster now (the disk changed): 4 segments at 15 ms.
        for _ in 0..t - 1 {
            c.record(true, 16 * MIB, ms(15));
        }
        assert!(!c.prefers_direct(), "the window still holds a slow segment: (40 + 3 x 15) / 4 > 20 ms");
        c.record(true, 16 * MIB, ms(15));
        assert!(c.prefers_direct());
        assert!(c.choose());
        let (d, b) = c.rates();
        assert_eq!((d.unwrap().round() as u64, b.unwrap().round() as u64), (1_118_481_067, 838_860_800));
    }

    #[test]
    fn short_segments_are_not_measured() {
        let mut c = IoModeChooser::default();
        assert_eq!(c.record(false, MIB - 1, ms(100)), None);
        assert_eq!(c.record(false, 16 * MIB, Duration::from_micros(10)), None);
        assert_eq!(c.rates(), (None, None));
        assert!(c.prefers_direct());
    }
}
