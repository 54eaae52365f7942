//! The ticker actor: emits a sample command at each deadline.
//!
//! - Runs on the timing thread (see [`crate::timing`]), which it owns: a
//!   dedicated OS thread, because ractor's timers round to whole
//!   milliseconds.
//! - Deadlines are absolute: `origin + k × period`, so error never
//!   accumulates. Waking late, it takes the latest deadline that has passed
//!   and counts the ones before it as missed: it never bursts to catch up,
//!   and lateness stays below one period.
//! - The rate can be changed, paused and resumed while running; each change
//!   restarts the schedule at the moment it is applied.
//! - Optional jitter draws each interval from an exponential distribution
//!   with the period as mean (a Poisson process), which cannot alias with
//!   periodic work in the program.

use crate::clock::{NEVER, Nanos};
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
    /// Index of the next deadline after `origin` (fixed-rate mode).
    k: u64,
    /// The next deadline; `NEVER` while paused or stopped.
    next: Nanos,
    /// Whether deadlines are being emitted.
    running: bool,
    /// Stopped for good (the shutdown): a resume is ignored.
    stopped: bool,
    /// The random source of jittered intervals, when jitter is on.
    jitter: Option<XorShift>,
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
    pub(crate) fn new(frequency_hz: u32, jitter: bool) -> TickerCore {
        TickerCore {
            frequency_hz,
            period: period_of(frequency_hz),
            origin: 0,
            k: 1,
            next: NEVER,
            running: false,
            stopped: false,
            jitter: jitter.then(|| XorShift::seeded(frequency_hz)),
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
        self.origin = now;
        self.k = 1;
        self.next = self.draw_next(now);
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
            self.origin = now;
            self.k = 1;
            self.next = self.draw_next(now);
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

    fn draw_next(&mut self, after: Nanos) -> Nanos {
        match &mut self.jitter {
            None => self.origin + self.k * self.period,
            Some(rng) => after + rng.exponential(self.period).max(1),
        }
    }

    /// Called when the clock reads `now`: the command for the latest deadline
    /// that has passed, if any, skipping (and counting) earlier ones.
    #[inline]
    pub(crate) fn fire(&mut self, now: Nanos) -> Option<SampleCommand> {
        if !self.running || now < self.next {
            return None;
        }
        let deadline = match self.jitter {
            None => {
                let latest = (now - self.origin) / self.period;
                self.missed += latest - self.k;
                self.scheduled += latest - self.k + 1;
                let deadline = self.origin + latest * self.period;
                self.k = latest + 1;
                self.next = self.origin + self.k * self.period;
                deadline
            }
            Some(_) => {
                let mut deadline = self.next;
                self.scheduled += 1;
                let mut next = self.draw_next(deadline);
                while next <= now {
                    self.missed += 1;
                    self.scheduled += 1;
                    deadline = next;
                    next = self.draw_next(deadline);
                }
                self.next = next;
                deadline
            }
        };
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

/// A small xorshift generator: jitter needs speed and no dependency, not
/// cryptographic quality.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn seeded(salt: u32) -> XorShift {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        XorShift((t ^ u64::from(salt).rotate_left(32)) | 1)
    }

    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        // 53 random bits in (0, 1].
        ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn exponential(&mut self, mean: u64) -> u64 {
        // Capped at 20 means so one unlucky draw cannot stall sampling.
        ((-self.next_f64().ln()).min(20.0) * mean as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_deadlines_do_not_drift() {
        let mut t = TickerCore::new(1000, false);
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
        let mut t = TickerCore::new(1000, false);
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
        let mut t = TickerCore::new(1000, false);
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

    #[test]
    fn jitter_keeps_the_mean_rate() {
        let mut t = TickerCore::new(1000, true);
        t.start(0);
        let mut now = 0;
        for _ in 0..20_000 {
            now = t.next_deadline();
            t.fire(now).unwrap();
        }
        let mean = now as f64 / 20_000.0;
        assert!((mean - 1e6).abs() < 0.05e6, "mean interval {mean}");
        assert_eq!(t.missed, 0);
    }
}
