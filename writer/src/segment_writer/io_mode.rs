//! Which I/O mode a fast recording's next segment uses (`storage.io_mode = "auto"`).
//!
//! Direct I/O (`O_DIRECT` into preallocated space) and buffered writes (page cache, written back
//! by each commit's fdatasync) are each faster on some disks. On one of this project's VMs the
//! direct writer ran at 1.2-1.5 GB/s, where the earlier buffered design had reached 0.28-0.55
//! of `dd`; on another (a virtual disk whose host cache makes every flush cost as much as the
//! writes it covers) buffered segments ran at 0.35-0.40 GB/s and direct ones at 0.26-0.31 GB/s
//! (docs/BENCHMARKS.md, fourth and fifth sessions). So the writer measures: every segment
//! opened while commits are big ("under load") reports how fast it was made durable, and new
//! segments use the mode with the better recent rate. A recording starts buffered (every file
//! system has it, and it needs no preallocation); after [`EXPLORE_EVERY`] segments, direct
//! gets a trial of [`TRIAL_SEGMENTS`] segments, and after [`EXPLORE_EVERY`] segments of the
//! preferred mode the other one gets a trial again, so that a change of conditions is
//! noticed. (Until 2026-12-07 a recording started with a trial of each mode, and a 1 GiB run
//! spent 8 of its 64 segments on direct trials where direct was the slower mode.) Each trial
//! that changes nothing doubles the wait for the next one (up to [`MAX_EXPLORE_EVERY`]
//! segments): on a disk where one mode is much slower, a trial every 32 segments cost a
//! recording running for days several percent of its throughput. A trial that changes the
//! preferred mode brings the wait back to [`EXPLORE_EVERY`].
//!
//! The rate of a segment is its bytes over its *busy time*: for each of its commits, from its
//! submission (or the previous commit's completion, if that came later) to its completion. With
//! commits back to back this is the segment's wall time; with a slower source the idle gaps
//! between commits are not counted, so both modes are judged by the time the disk took.
//!
//! Single segments' rates scatter widely, because batches overlap (up to three are in flight):
//! a sync that takes long is charged to the batch that waited for it, and the batches that
//! were written meanwhile become durable right after it and look nearly free. On the VM of
//! docs/BENCHMARKS.md (eighth session), 16 MiB segments measured from 130 MB/s to 16 GB/s in
//! one 4 GiB run, and judging each mode by its last 4 segments (bytes over busy time, pooled)
//! chose direct I/O for 98 of 260 segments, where direct ran about 30% slower than buffered
//! (seventh session). So:
//! - a mode's rate is taken over its last [`WINDOW_SEGMENTS`] segments, as the lower of the
//!   median of their rates (which a nearly free segment does not move) and their pooled rate
//!   (bytes over busy time, which keeps the time of a slow sync that the nearly free segment
//!   did not pay);
//! - the first segment after a change of mode is not measured (it shares its first batches'
//!   syncs with the other mode's last ones);
//! - a trial's mode is judged by that trial's segments only, and only once all of them are
//!   measured;
//! - direct I/O is used only once it was measured faster than buffered by [`SWITCH_MARGIN`]
//!   (buffered segments need no preallocation and leave the data in the page cache for the
//!   uploader), and buffered then replaces it only if it was faster by that margin again.

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

/// A trial of a mode lasts this many segments (the first of them is not measured: see the
/// module docs).
pub(crate) const TRIAL_SEGMENTS: usize = 4;
/// Measured segments a trial yields, and the fewest a mode is judged by.
const TRIAL_SAMPLES: usize = TRIAL_SEGMENTS - 1;
/// A mode's rate is taken over its last this many measured segments.
pub(crate) const WINDOW_SEGMENTS: usize = 16;
/// Once a mode is preferred, the other one replaces it only if it was faster by this factor.
pub(crate) const SWITCH_MARGIN: f64 = 1.15;

/// Segments shorter than this (busy time or bytes) tell nothing: their rate is not kept.
const MIN_SAMPLE_BYTES: u64 = 1024 * 1024;
const MIN_SAMPLE_TIME: Duration = Duration::from_millis(1);

/// The last [`WINDOW_SEGMENTS`] measured segments of one mode.
#[derive(Debug, Clone, Default)]
struct Window {
    /// (bytes, busy time) per segment, newest last.
    samples: VecDeque<(u64, Duration)>,
}

impl Window {
    /// The lower of the median of the window's segment rates (bytes per busy second) and the
    /// pooled rate (all its bytes over all its busy time): the median is robust to the nearly
    /// free segments that follow a slow sync, the pooled rate counts the slow sync itself
    /// (see the module docs).
    fn rate(&self) -> Option<f64> {
        // `record` keeps no sample under MIN_SAMPLE_TIME: no busy time is zero.
        let mut rates: Vec<f64> = self.samples.iter().map(|(bytes, busy)| *bytes as f64 / busy.as_secs_f64()).collect();
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => rates[n / 2],
            _ => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
        };
        let (bytes, busy) = self.samples.iter().fold((0u64, Duration::ZERO), |(b, t), (sb, st)| (b + sb, t + *st));
        Some(median.min(bytes as f64 / busy.as_secs_f64()))
    }

    /// The rate, once the window holds at least a trial's worth of segments.
    fn judged_rate(&self) -> Option<f64> {
        self.rate().filter(|_| self.samples.len() >= TRIAL_SAMPLES)
    }

    fn push(&mut self, bytes: u64, busy: Duration) {
        if self.samples.len() == WINDOW_SEGMENTS {
            self.samples.pop_front();
        }
        self.samples.push_back((bytes, busy));
    }
}

/// The I/O mode of a segment opened under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Choice {
    /// Direct I/O (else buffered).
    pub(crate) direct: bool,
    /// Its rate is to be recorded: it is not the first segment after a change of mode.
    pub(crate) measured: bool,
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
    /// The preferred mode (`true`: direct), once both modes were judged.
    preferred: Option<bool>,
    /// The mode of the last segment opened (`None` after one opened not under load).
    last: Option<bool>,
}

impl IoModeChooser {
    /// The mode of a segment opened now under load. Buffered first, with a trial of
    /// [`TRIAL_SEGMENTS`] direct segments after [`EXPLORE_EVERY`] segments; then the faster
    /// mode, with a trial of the other one after [`EXPLORE_EVERY`] segments, then ever more
    /// rarely while trials change nothing (see the module docs).
    pub(crate) fn choose(&mut self) -> Choice {
        let direct = self.pick();
        let measured = self.last == Some(direct);
        self.last = Some(direct);
        Choice { direct, measured }
    }

    /// A segment was opened not under load (buffered, not chosen): the next chosen one follows
    /// a change of conditions and is not measured.
    pub(crate) fn not_chosen(&mut self) {
        self.last = None;
    }

    fn pick(&mut self) -> bool {
        if self.explore_every == 0 {
            // As if a trial of buffered had just been run: direct's trial comes after
            // EXPLORE_EVERY segments.
            self.explore_every = EXPLORE_EVERY;
            self.since_trial = TRIAL_SEGMENTS as u32;
        }
        // This choice included.
        self.since_trial = self.since_trial.saturating_add(1);
        let (left, direct) = match self.trial {
            Some(running) => running,
            None => {
                self.judge();
                let preferred = self.prefers_direct();
                if self.since_trial <= self.explore_every + TRIAL_SEGMENTS as u32 {
                    return preferred;
                }
                // A trial of the other mode, judged by its own segments.
                self.judging = Some(preferred);
                self.since_trial = 1;
                let start = !preferred;
                let w = if start { &mut self.direct } else { &mut self.buffered };
                w.samples.clear();
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

    /// Whether the preferred mode is direct (buffered until both modes are judged). Does not
    /// count as a choice.
    pub(crate) fn prefers_direct(&self) -> bool {
        self.preferred.unwrap_or(false)
    }

    /// Records how fast a segment opened under load was made durable: `bytes` in `busy` time.
    /// Returns the segment's own rate (bytes per second), if it was long enough to tell.
    pub(crate) fn record(&mut self, direct: bool, bytes: u64, busy: Duration) -> Option<f64> {
        if bytes < MIN_SAMPLE_BYTES || busy < MIN_SAMPLE_TIME {
            return None;
        }
        let w = if direct { &mut self.direct } else { &mut self.buffered };
        w.push(bytes, busy);
        self.update_preference();
        Some(bytes as f64 / busy.as_secs_f64())
    }

    /// Once both modes are judged: the preferred one, unless the other was faster by
    /// [`SWITCH_MARGIN`] (buffered at first).
    fn update_preference(&mut self) {
        let (Some(d), Some(b)) = (self.direct.judged_rate(), self.buffered.judged_rate()) else {
            return;
        };
        self.preferred = Some(match self.preferred {
            Some(true) => b <= d * SWITCH_MARGIN,
            None | Some(false) => d > b * SWITCH_MARGIN,
        });
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

    fn picks(c: &mut IoModeChooser, n: usize) -> Vec<bool> {
        (0..n).map(|_| c.choose().direct).collect()
    }

    #[test]
    fn starts_buffered_tries_direct_then_keeps_the_faster_and_tries_the_other_again() {
        let mut c = IoModeChooser::default();
        let (t, e) = (TRIAL_SEGMENTS, EXPLORE_EVERY as usize);
        // Buffered first, then a trial of direct; the first segment after each change of mode
        // is not measured.
        let first: Vec<Choice> = (0..e + t + 1).map(|_| c.choose()).collect();
        let direct: Vec<bool> = first.iter().map(|c| c.direct).collect();
        assert_eq!(direct, [vec![false; e], vec![true; t], vec![false]].concat());
        let unmeasured: Vec<usize> = (0..first.len()).filter(|&i| !first[i].measured).collect();
        assert_eq!(unmeasured, [0, e, e + t]);
        assert!(!c.prefers_direct(), "buffered while nothing is measured");
        // Buffered: 16 MiB segments in 20 ms (839 MB/s).
        for _ in 0..e - 1 {
            assert_eq!(c.record(false, 16 * MIB, ms(20)).map(|r| r.round() as u64), Some(838_860_800));
        }
        assert!(!c.prefers_direct());
        // Direct in 40 ms (419 MB/s): buffered stays, and the next trial comes after twice as
        // many segments.
        for _ in 0..TRIAL_SAMPLES {
            c.record(true, 16 * MIB, ms(40));
        }
        assert!(!c.prefers_direct());
        let picks = picks(&mut c, 2 * e - 1 + t);
        assert!(picks[..2 * e - 1].iter().all(|d| !d), "{picks:?}");
        assert!(picks[2 * e - 1..].iter().all(|d| *d), "{picks:?}");
        // The trial's mode is judged by the trial alone (the old 40 ms segments are gone), and
        // only once its segments are all measured: direct at 15 ms (1118 MB/s) now.
        for _ in 0..TRIAL_SAMPLES - 1 {
            c.record(true, 16 * MIB, ms(15));
        }
        assert!(!c.prefers_direct(), "judged only on the whole trial");
        c.record(true, 16 * MIB, ms(15));
        assert!(c.prefers_direct());
        assert!(c.choose().direct);
        let (d, b) = c.rates();
        assert_eq!((d.unwrap().round() as u64, b.unwrap().round() as u64), (1_118_481_067, 838_860_800));
    }

    #[test]
    fn a_trial_changes_the_preferred_mode_only_by_a_margin() {
        let mut c = IoModeChooser::default();
        let e = EXPLORE_EVERY as usize;
        // Buffered 16 MiB in 21 ms, a trial of direct at 19 ms (11% faster): buffered stays.
        let p = picks(&mut c, e + TRIAL_SEGMENTS);
        assert!(p[e], "{p:?}");
        for _ in 0..TRIAL_SAMPLES {
            c.record(false, 16 * MIB, ms(21));
            c.record(true, 16 * MIB, ms(19));
        }
        assert!(!c.prefers_direct(), "rates {:?}", c.rates());
        // The next trial of direct, at 17 ms (24% faster), changes it.
        let p = picks(&mut c, 2 * e + TRIAL_SEGMENTS);
        assert!(p[2 * e], "{p:?}");
        for _ in 0..TRIAL_SAMPLES {
            c.record(true, 16 * MIB, ms(17));
        }
        assert!(c.prefers_direct(), "rates {:?}", c.rates());
        // A trial of buffered at 15 ms (13% faster) does not change it back; with three more
        // buffered segments at 10 ms (the median of the 6 is then 12.5 ms: 36% faster) it does.
        let p = picks(&mut c, e + TRIAL_SEGMENTS);
        assert!(!p[e], "{p:?}");
        for _ in 0..TRIAL_SAMPLES {
            c.record(false, 16 * MIB, ms(15));
        }
        assert!(c.prefers_direct(), "rates {:?}", c.rates());
        for _ in 0..3 {
            c.record(false, 16 * MIB, ms(10));
        }
        assert!(!c.prefers_direct(), "rates {:?}", c.rates());
    }

    #[test]
    fn a_segment_after_a_change_of_conditions_is_not_measured() {
        let mut c = IoModeChooser::default();
        let p: Vec<bool> = (0..3).map(|_| c.choose().measured).collect();
        assert_eq!(p, [false, true, true]);
        c.not_chosen();
        assert!(!c.choose().measured, "after a segment opened not under load");
        assert!(c.choose().measured);
    }

    /// Runs `n` choices on a disk where a 16 MiB segment takes `direct_ms` / `buffered_ms`,
    /// recording each measured segment `lag` choices later (when it is sealed), with each
    /// segment's time shifted by `noise(i)` (ms, may be negative) onto the segment before it
    /// (so pairs of measured segments keep their sum); returns the choices.
    fn run_with(
        c: &mut IoModeChooser,
        n: usize,
        direct_ms: f64,
        buffered_ms: f64,
        lag: usize,
        noise: impl Fn(usize) -> f64,
    ) -> Vec<bool> {
        let mut out: Vec<Choice> = Vec::new();
        let mut times: Vec<f64> = Vec::new();
        for i in 0..n {
            let ch = c.choose();
            times.push(if ch.direct { direct_ms } else { buffered_ms });
            // Segment i steals from (or gives to) segment i - 1.
            if i > 0 {
                let shift = noise(i).clamp(-times[i - 1] + 0.5, times[i] - 0.5);
                times[i - 1] += shift;
                times[i] -= shift;
            }
            out.push(ch);
            if i >= lag {
                let j = i - lag;
                if out[j].measured {
                    c.record(out[j].direct, 16 * MIB, Duration::from_secs_f64(times[j] / 1e3));
                }
            }
        }
        out.iter().map(|c| c.direct).collect()
    }

    fn run(c: &mut IoModeChooser, n: usize, direct_ms: u64, buffered_ms: u64) -> Vec<bool> {
        run_with(c, n, direct_ms as f64, buffered_ms as f64, 0, |_| 0.0)
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
        let picks = run(&mut c, 2000, 40, 20);
        let starts = trial_starts(&picks);
        let gaps: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0] - t).collect();
        assert_eq!(starts[0], 32);
        assert_eq!(gaps, vec![64, 128, 256, 512, 512], "starts {starts:?}");
        assert!(starts.iter().all(|&s| picks[s..s + t].iter().all(|d| *d)), "trials last {t}");
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
    fn scattered_segment_times_rarely_pick_the_slower_mode() {
        // Buffered 16 MiB in 42 ms (400 MB/s), direct in 60 (280 MB/s), as on the VM of
        // docs/BENCHMARKS.md. A slow sync moves up to 55 ms of a segment's time onto the one
        // before (which looks slow; the later one nearly free): about 18% of the segments are
        // measured at over twice the median rate (12-20% in the runs of the eighth session).
        let mut counts = Vec::new();
        for seed in [0x2545_f491_4f6c_dd1du64, 1, 42, 0x9e37_79b9_7f4a_7c15, 7_777_777] {
            let mut rng = seed;
            let mut shifts = Vec::new();
            for _ in 0..3000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let u = (rng % 1000) as f64 / 1000.0;
                shifts.push(if u < 0.3 { 55.0 * u / 0.3 } else { -10.0 * (u - 0.3) });
            }
            let mut c = IoModeChooser::default();
            let picks = run_with(&mut c, 3000, 60.0, 42.0, 3, |i| shifts[i]);
            let direct = picks.iter().filter(|d| **d).count();
            counts.push((direct, c.prefers_direct()));
        }
        // The trials alone: TRIAL_SEGMENTS each after 32, 64, ... 512, 512 segments: 8 in
        // 3000. A mistaken switch is undone by the next segments' rates, and a few of those
        // may come; an early one would also reset the wait between trials to 32.
        let bound = 8 * TRIAL_SEGMENTS + 8;
        assert!(
            counts.iter().all(|&(d, p)| d <= bound && !p),
            "direct segments of 3000 (and preference at the end) per seed: {counts:?}"
        );
    }

    #[test]
    fn short_segments_are_not_measured() {
        let mut c = IoModeChooser::default();
        assert_eq!(c.record(false, MIB - 1, ms(100)), None);
        assert_eq!(c.record(false, 16 * MIB, Duration::from_micros(10)), None);
        assert_eq!(c.rates(), (None, None));
        assert!(!c.prefers_direct());
    }
}
