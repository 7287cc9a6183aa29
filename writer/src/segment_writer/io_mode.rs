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
//! [`TRIAL_SEGMENTS`] segments: a recording starts with a trial of each, and after
//! [`EXPLORE_EVERY`] segments of the faster mode the other one gets a trial again, so that a
//! change of conditions is noticed. Each trial that changes nothing doubles the wait for the
//! next one (up to [`MAX_EXPLORE_EVERY`] segments): on a disk where one mode is much slower, a
//! trial every 32 segments cost a recording running for days several percent of its
//! throughput. A trial that changes the preferred mode brings the wait back to
//! [`EXPLORE_EVERY`].
//!
//! The rate of a segment is its bytes over its *busy time*: for each of its commits, from its
//! submission (or the previous commit's completion, if that came later) to its completion. With
//! commits back to back this is the segment's wall time; with a slower source the idle gaps
//! between commits are not counted, so both modes are judged by the time the disk took.

use std::collections::VecDeque;
use std::time::Duration;

/// Under load, the mode not in use is tried again after this many segments of the other
/// (at first, and after a trial that changed the preferred mode).
pub(crate) const EXPLORE_EVERY: u32 = 32;
/// The longest wait between trials (with 16 MiB segments, 8 GiB).
pub(crate) const MAX_EXPLORE_EVERY: u32 = 512;
/// An exploration trial is judged this many segments after its start (its segments are then
/// sealed and measured).
const JUDGE_AFTER: u32 = TRIAL_SEGMENTS as u32 + 4;

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
    /// Choices since the last trial started (its first segment included).
    since_trial: u32,
    /// Segments of the preferred mode between trials (see [`EXPLORE_EVERY`]); 0 until set.
    explore_every: u32,
    /// The preferred mode when the running or last exploration trial started, until judged.
    judging: Option<bool>,
}

impl IoModeChooser {
    /// The mode of a segment opened now under load: `true` for direct. First a trial of
    /// [`TRIAL_SEGMENTS`] direct segments, then one of buffered ones; then the faster mode,
    /// with a trial of the other one after [`EXPLORE_EVERY`] segments, then ever more rarely
    /// while trials change nothing (see the module docs).
    pub(crate) fn choose(&mut self) -> bool {
        if self.explore_every == 0 {
            self.explore_every = EXPLORE_EVERY;
        }
        // This choice included.
        self.since_trial = self.since_trial.saturating_add(1);
        let (left, direct) = match self.trial {
            Some(running) => running,
            None => {
                self.judge();
                let start = if !self.direct.tried {
                    true
                } else if !self.buffered.tried {
                    false
                } else if self.since_trial > self.explore_every + TRIAL_SEGMENTS as u32 {
                    self.judging = Some(self.prefers_direct());
                    !self.prefers_direct()
                } else {
                    return self.prefers_direct();
                };
                self.since_trial = 1;
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

    /// Once an exploration trial's segments are measured: a trial that left the preferred mode
    /// as it was doubles the wait for the next one, one that changed it resets the wait.
    fn judge(&mut self) {
        let Some(before) = self.judging else { return };
        if self.since_trial < JUDGE_AFTER {
            return;
        }
        self.judging = None;
        self.explore_every = if self.prefers_direct() == before {
            (self.explore_every * 2).min(MAX_EXPLORE_EVERY)
        } else {
            EXPLORE_EVERY
        };
    }

    /// Segments of the preferred mode until the next exploration trial (after a trial).
    #[cfg(test)]
    fn explore_every(&self) -> u32 {
        self.explore_every
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

    /// Runs `n` choices, recording each chosen segment at the given rates (16 MiB in
    /// `direct_ms` / `buffered_ms`) as soon as it is chosen; returns the choices.
    fn run(c: &mut IoModeChooser, n: usize, direct_ms: u64, buffered_ms: u64) -> Vec<bool> {
        (0..n)
            .map(|_| {
                let d = c.choose();
                c.record(d, 16 * MIB, ms(if d { direct_ms } else { buffered_ms }));
                d
            })
            .collect()
    }

    /// Positions of the first segment of each direct trial in `picks` (buffered preferred).
    fn trial_starts(picks: &[bool]) -> Vec<usize> {
        (0..picks.len()).filter(|&i| picks[i] && (i == 0 || !picks[i - 1])).collect()
    }

    #[test]
    fn trials_that_change_nothing_come_ever_more_rarely_and_a_change_resets_the_wait() {
        let mut c = IoModeChooser::default();
        let t = TRIAL_SEGMENTS;
        // Buffered twice as fast, always: trials of direct after 32, 64, 128, 256, 512, 512
        // segments of buffered.
        let picks = run(&mut c, 2 * t + 2000, 40, 20);
        assert_eq!(&picks[..2 * t], [vec![true; t], vec![false; t]].concat());
        let starts = trial_starts(&picks[2 * t..]);
        let gaps: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0] - t).collect();
        assert_eq!(starts[0], 32);
        assert_eq!(gaps, vec![64, 128, 256, 512, 512], "starts {starts:?}");
        assert!(starts.iter().all(|&s| picks[2 * t + s..2 * t + s + t].iter().all(|d| *d)), "trials last {t}");
        assert_eq!(c.explore_every(), MAX_EXPLORE_EVERY);

        // The disk changes: direct becomes faster. The next trial finds it, direct is kept,
        // and the wait is back to 32 segments before buffered is tried again.
        let mut picks = Vec::new();
        while !picks.contains(&true) {
            picks.extend(run(&mut c, 1, 10, 20));
        }
        let first = picks.len() - 1;
        picks.extend(run(&mut c, t + 32 + t - 1, 10, 20));
        assert!(picks[first..first + t + 32].iter().all(|d| *d), "{picks:?}");
        assert!(picks[first + t + 32..].iter().all(|d| !d), "then a trial of buffered: {picks:?}");
        assert_eq!(c.explore_every(), EXPLORE_EVERY);
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
