//! The ticker actor: emits a sample command at each deadline.
//!
//! - Runs on the timing thread (see [`crate::timing`]), which it owns: a
//!   dedicated OS thread, because ractor's timers round to whole
//!   milliseconds.
//! - Time is cut into absolute slots of one period, `[origin + (k−1)P,
//!   origin + kP)`, so error never accumulates. Each slot has one deadline:
//!   its end ([`SamplingMode::Periodic`]) or a uniformly random instant
//!   within it ([`SamplingMode::Randomized`], the default: stratified
//!   sampling). A randomized instant is uniform over every phase of any work
//!   that repeats with the period, so such work cannot alias, and there is
//!   still exactly one deadline a slot: the rate asked for, never a burst.
//! - Waking late, it takes the latest deadline that has passed and counts
//!   the ones before it as missed (O(1), however long the stall): it never
//!   bursts to catch up, and lateness stays below about a period.
//! - The rate can be changed, paused and resumed while running; each change
//!   restarts the schedule at the moment it is applied.

use crate::clock::{NEVER, Nanos};
pub use crate::config::SamplingMode;
pub use crate::messages::timing::{SampleCommand, TickerMsg};

/// The ticker's schedule and counters (lives on the timing thread).
#[derive(Debug)]
pub(crate) struct TickerCore {
    /// The rate asked for.
    frequency_hz: u32,
    /// Its period, in ns.
    period: u64,
    /// Where the schedule starts (the last start, resume or rate change).
    origin: Nanos,
    /// Index of the slot whose deadline is `next` (1-based from `origin`).
    k: u64,
    /// The next deadline; `NEVER` while paused or stopped.
    next: Nanos,
    /// Whether deadlines are being emitted.
    running: bool,
    /// Stopped for good (the shutdown): a resume is ignored.
    stopped: bool,
    /// The random source of the instants, in randomized mode.
    random: Option<XorShift>,
    /// Deadlines that came while running.
    pub(crate) scheduled: u64,
    /// Deadlines turned into sample commands.
    pub(crate) taken: u64,
    /// Deadlines skipped because a later one had passed already.
    pub(crate) missed: u64,
    /// When the current running stretch began.
    run_since: Nanos,
    /// Time spent running before the current stretch.
    run_total: Nanos,
}

impl TickerCore {
    /// A stopped ticker at `frequency_hz`; `seed` drives the random instants
    /// of [`SamplingMode::Randomized`].
    pub(crate) fn new(frequency_hz: u32, mode: SamplingMode, seed: u64) -> TickerCore {
        TickerCore {
            frequency_hz,
            period: period_of(frequency_hz),
            origin: 0,
            k: 1,
            next: NEVER,
            running: false,
            stopped: false,
            random: match mode {
                SamplingMode::Periodic => None,
                SamplingMode::Randomized => Some(XorShift::seeded(seed)),
            },
            scheduled: 0,
            taken: 0,
            missed: 0,
            run_since: 0,
            run_total: 0,
        }
    }

    pub(crate) fn frequency_hz(&self) -> u32 {
        self.frequency_hz
    }

    /// The period of the rate in force, in ns.
    #[inline]
    pub(crate) fn period(&self) -> Nanos {
        self.period
    }

    /// Whether the deadlines are random instants within their slots.
    pub(crate) fn is_randomized(&self) -> bool {
        self.random.is_some()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running
    }

    /// Starts (or restarts) the schedule at `now`.
    pub(crate) fn start(&mut self, now: Nanos) {
        if self.stopped {
            return;
        }
        if !self.running {
            self.run_since = now;
        }
        self.running = true;
        self.restart(now);
    }

    fn restart(&mut self, now: Nanos) {
        self.origin = now;
        self.k = 1;
        self.next = self.deadline_of(1);
    }

    pub(crate) fn pause(&mut self, now: Nanos) {
        if self.running {
            self.run_total += now.saturating_sub(self.run_since);
        }
        self.running = false;
        self.next = NEVER;
    }

    pub(crate) fn stop(&mut self, now: Nanos) {
        self.pause(now);
        self.stopped = true;
    }

    pub(crate) fn set_rate(&mut self, hz: u32, now: Nanos) {
        self.frequency_hz = hz;
        self.period = period_of(hz);
        if self.running {
            self.restart(now);
        }
    }

    /// Time spent running, up to `now`.
    pub(crate) fn elapsed(&self, now: Nanos) -> Nanos {
        self.run_total
            + if self.running {
                now.saturating_sub(self.run_since)
            } else {
                0
            }
    }

    /// The deadline to sleep until ([`NEVER`] when paused).
    #[inline]
    pub(crate) fn next_deadline(&self) -> Nanos {
        self.next
    }

    /// The deadline of slot `k`: its end, or a uniform instant in
    /// `(start, end]` (never the start itself, so that advancing a clock by
    /// whole periods takes exactly one deadline a period).
    #[inline]
    fn deadline_of(&mut self, k: u64) -> Nanos {
        let end = self.origin + k * self.period;
        match &mut self.random {
            None => end,
            Some(rng) => end - self.period + 1 + rng.below(self.period),
        }
    }

    /// Called when the clock reads `now`: the command for the latest deadline
    /// that has passed, if any, skipping (and counting) earlier ones.
    #[inline]
    pub(crate) fn fire(&mut self, now: Nanos) -> Option<SampleCommand> {
        if !self.running || now < self.next {
            return None;
        }
        // The slot `now` falls in (its deadline may or may not have passed).
        let current = (now - self.origin) / self.period + 1;
        let (slot, deadline, next) = if current == self.k {
            (self.k, self.next, self.deadline_of(self.k + 1))
        } else {
            let there = self.deadline_of(current);
            if there <= now {
                (current, there, self.deadline_of(current + 1))
            } else {
                // Slot `current − 1` has ended: its deadline has passed.
                let before = if current - 1 == self.k {
                    self.next
                } else {
                    self.deadline_of(current - 1)
                };
                (current - 1, before, there)
            }
        };
        self.missed += slot - self.k;
        self.scheduled += slot - self.k + 1;
        self.k = slot + 1;
        self.next = next;
        self.taken += 1;
        Some(SampleCommand {
            seq: self.taken,
            deadline,
        })
    }
}

fn period_of(hz: u32) -> u64 {
    (1_000_000_000 / u64::from(hz.max(1))).max(1)
}

/// A small xorshift generator: the instants need speed and no dependency,
/// not cryptographic quality.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn seeded(seed: u64) -> XorShift {
        // A zero state would stay zero; mixing spreads a small seed.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n ≥ 1), by a multiply-high: no division.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn periodic(hz: u32) -> TickerCore {
        TickerCore::new(hz, SamplingMode::Periodic, 1)
    }

    #[test]
    fn absolute_deadlines_do_not_drift() {
        let mut t = periodic(1000);
        t.start(0);
        for k in 1..=1000u64 {
            let d = t.next_deadline();
            assert_eq!(d, k * 1_000_000);
            // Always wake 300 µs late: the schedule must not slide.
            let cmd = t.fire(d + 300_000).unwrap();
            assert_eq!(cmd.deadline, d);
        }
        assert_eq!((t.taken, t.missed, t.scheduled), (1000, 0, 1000));
    }

    #[test]
    fn late_wake_skips_and_counts_never_bursts() {
        let mut t = periodic(1000);
        t.start(0);
        assert_eq!(t.fire(999_999), None);
        // Wake 5.5 periods after the first deadline: deadlines 1..=6 passed.
        let cmd = t.fire(6_500_000).unwrap();
        assert_eq!(cmd.deadline, 6_000_000);
        assert_eq!((t.taken, t.missed, t.scheduled), (1, 5, 6));
        // No burst: nothing more is due until deadline 7.
        assert_eq!(t.fire(6_500_001), None);
        assert_eq!(t.next_deadline(), 7_000_000);
    }

    #[test]
    fn pause_resume_and_rate_change() {
        let mut t = periodic(1000);
        t.start(0);
        t.fire(1_000_000).unwrap();
        t.pause(1_500_000);
        assert_eq!(t.next_deadline(), NEVER);
        assert_eq!(t.fire(50_000_000), None);
        t.start(10_000_000);
        assert_eq!(t.next_deadline(), 11_000_000);
        t.set_rate(10_000, 11_000_000);
        assert_eq!(t.next_deadline(), 11_100_000);
        assert_eq!(t.elapsed(11_000_000), 1_500_000 + 1_000_000);
        t.stop(12_000_000);
        t.start(13_000_000);
        assert!(!t.is_running());
    }

    /// Stratified sampling: one deadline in each slot, uniform within it,
    /// exactly the rate asked for, and no slot taken twice.
    #[test]
    fn randomized_deadlines_fall_one_in_each_slot_uniformly() {
        let mut t = TickerCore::new(1000, SamplingMode::Randomized, 7);
        t.start(0);
        let mut deciles = [0u32; 10];
        for k in 1..=20_000u64 {
            let d = t.next_deadline();
            assert!(
                d > (k - 1) * 1_000_000 && d <= k * 1_000_000,
                "slot {k}: {d}"
            );
            assert_eq!(t.fire(d).unwrap().deadline, d);
            deciles[((d - 1) % 1_000_000 / 100_000) as usize] += 1;
        }
        assert_eq!((t.taken, t.missed, t.scheduled), (20_000, 0, 20_000));
        // 2000 expected in each tenth of the slot; 4 standard deviations
        // (about 170) either side, with a fixed seed.
        assert!(
            deciles.iter().all(|&n| n.abs_diff(2000) < 170),
            "{deciles:?}"
        );
    }

    #[test]
    fn randomized_late_wake_takes_the_latest_passed_deadline_once() {
        let mut t = TickerCore::new(1000, SamplingMode::Randomized, 3);
        t.start(0);
        let first = t.next_deadline();
        // Wake in the middle of slot 6, long after slot 1's deadline.
        let now = 5_500_000;
        let cmd = t.fire(now).unwrap();
        assert!(cmd.deadline <= now && cmd.deadline > 4_000_000);
        assert!(cmd.deadline != first);
        let skipped = t.missed;
        assert!(skipped == 4 || skipped == 5, "missed {skipped}");
        assert_eq!(t.scheduled, skipped + 1);
        // Never a burst: the next deadline is after `now`, in the next slot
        // not yet taken.
        let next = t.next_deadline();
        assert!(next > now && next <= 7_000_000);
        assert_eq!(t.fire(now), None);
        // A stall of a million periods costs the same: no loop over them.
        let cmd = t.fire(1_000_000_000_000 + 999_999).unwrap();
        assert!(cmd.deadline > 999_999_000_000);
        assert_eq!(t.scheduled, t.taken + t.missed);
    }
}
