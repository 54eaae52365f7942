//! How late the kernel wakes a sleeping thread, learned: the spin margin.

use super::{AUTO_SPIN_MAX, AUTO_SPIN_SHARE, Nanos};

/// Wake-up errors remembered: the p99 is the 11th largest of them.
pub(crate) const WAKE_WINDOW: usize = 1024;
/// Wake-ups between two recomputations of the percentiles.
pub(crate) const WAKE_RECOMPUTE: usize = 32;
/// Wake-ups needed before the estimate is trusted (until then the margin is
/// the cap: the first ticks are on time rather than cheap).
pub(crate) const WAKE_WARMUP: usize = 32;
/// Wake-up errors are counted in whole microseconds, up to this many; the
/// last bucket holds every error of `WAKE_BUCKETS − 1` µs or more.
pub(crate) const WAKE_BUCKETS: usize = 1024;
/// The width of a bucket, in ns.
pub(crate) const WAKE_BUCKET_NS: Nanos = 1_000;

/// Learns how late the kernel wakes a sleeping thread, to wake it early
/// enough for a given p99 lateness and spin only the rest.
///
/// - Counts the last [`WAKE_WINDOW`] overshoots (how late a timed wait
///   returned after it was due) in 1 µs buckets, with a ring of the buckets
///   to forget the oldest. Recording is two counter updates and a ring
///   write in cache lines the last tick touched; every [`WAKE_RECOMPUTE`]
///   wake-ups the 5th, 50th and 99th percentiles are read off the counts.
///   Selecting them from a window of raw values instead cost about 0.1 µs a
///   tick on average, measured on a 2-vCPU VM.
/// - The margin is `p99 − target`, and never less than the p5: the kernel
///   is almost never that punctual, so waking that much early takes it off
///   every tick's lateness for almost no spin (measured on a 2-vCPU VM: a
///   p5 of 7–11 µs, at a fraction of a µs of spin a tick). Aiming a high
///   quantile at a budget, rather than a middle quantile at zero, is what
///   keeps both the p99 and the CPU low.
/// - The margin is capped: by default at 1/100 of the tick period (and
///   50 µs), or at exactly the cap the embedder set. Late wake-ups on a VM
///   are random (a late one predicts almost nothing about the next), so
///   spin is paid on every tick; the cap is what bounds that cost. When
///   even the cap cannot bring the p99 within the target (a noisy host),
///   the thread keeps only the head start rather than pay for a miss.
/// - With the automatic cap, when the kernel's median wake-up error is a
///   whole period (very high rates; errors are counted up to about 1 ms, so
///   at 1 kHz and above), the thread spins through: sleeping could not be on
///   time. An explicit cap is never exceeded.
/// - Observations are independent of the margin (they are measured against
///   the wait's own due time), so the feedback is stable.
/// - Pure and deterministic; owned by the thread that sleeps (no lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeEstimator {
    counts: Box<WakeCounts>,
    seen: usize,
    p5: Nanos,
    p50: Nanos,
    p99: Nanos,
    /// `None`: the automatic cap (a share of the period).
    cap: Option<Nanos>,
    target: Nanos,
    last_deadline: Nanos,
}

/// The estimator's window: how many of the remembered wake-ups fell in
/// each bucket, and which bucket each one fell in (oldest overwritten).
#[derive(Clone, Debug, PartialEq, Eq)]
struct WakeCounts {
    per_bucket: [u16; WAKE_BUCKETS],
    ring: [u16; WAKE_WINDOW],
}

impl WakeEstimator {
    /// A new estimator aiming the p99 of lateness at `target` ns, whose
    /// margin never exceeds `cap` ns (`None`: the automatic cap, 1/100 of
    /// the period and at most [`AUTO_SPIN_MAX`]).
    pub fn new(cap: Option<Nanos>, target: Nanos) -> WakeEstimator {
        WakeEstimator {
            counts: Box::new(WakeCounts {
                per_bucket: [0; WAKE_BUCKETS],
                ring: [0; WAKE_WINDOW],
            }),
            seen: 0,
            p5: 0,
            p50: 0,
            p99: 0,
            cap,
            target,
            last_deadline: 0,
        }
    }

    /// The learned 5th percentile of the kernel's wake-up error, in ns
    /// (whole microseconds, rounded down).
    pub fn p5(&self) -> Nanos {
        self.p5
    }

    /// The learned median of the kernel's wake-up error, in ns.
    pub fn p50(&self) -> Nanos {
        self.p50
    }

    /// The learned 99th percentile of the kernel's wake-up error, in ns.
    pub fn p99(&self) -> Nanos {
        self.p99
    }

    /// The most the thread may spin before a deadline, for ticks `period`
    /// ns apart (0: unknown).
    pub fn cap_for(&self, period: Nanos) -> Nanos {
        let auto_max = AUTO_SPIN_MAX.as_nanos() as Nanos;
        match (self.cap, period) {
            (Some(cap), 0) => cap,
            (Some(cap), period) => cap.min(period),
            (None, 0) => auto_max,
            (None, period) => (period / AUTO_SPIN_SHARE).min(auto_max),
        }
    }

    /// How long before a deadline to wake and start spinning, in ns, for
    /// ticks `period` ns apart (0: unknown).
    ///
    /// - Until enough wake-ups are seen, the cap.
    /// - With the automatic cap, when the kernel's median wake-up error is
    ///   a whole period, the period: spin through.
    /// - When `p99 − target` fits in the cap, that, and at least the p5.
    /// - Else the p5 alone (within the cap): a margin that cannot bring the
    ///   p99 within the target would be spun on every tick for a p99 still
    ///   above it, since late wake-ups are random.
    pub fn margin_for(&self, period: Nanos) -> Nanos {
        let cap = self.cap_for(period);
        if self.seen < WAKE_WARMUP {
            return cap;
        }
        if self.cap.is_none() && period > 0 && self.p50 >= period {
            return period;
        }
        let needed = self.p99.saturating_sub(self.target);
        let margin = if needed <= cap {
            needed.max(self.p5)
        } else {
            self.p5
        };
        margin.min(cap)
    }

    /// [`WakeEstimator::margin_for`] a period too long to bound the spin.
    pub fn margin(&self) -> Nanos {
        self.margin_for(0)
    }

    /// The period implied by the previous deadline (0 if none or odd), and
    /// remembers this one.
    pub fn next_deadline(&mut self, deadline: Nanos) -> Nanos {
        let period = deadline.saturating_sub(self.last_deadline);
        let seen = self.last_deadline != 0;
        self.last_deadline = deadline;
        if seen && period < 1_000_000_000 {
            period
        } else {
            0
        }
    }

    /// Records that a wait returned `overshoot` ns after it was due.
    pub fn observe(&mut self, overshoot: Nanos) {
        let bucket = (overshoot / WAKE_BUCKET_NS).min(WAKE_BUCKETS as Nanos - 1) as u16;
        let counts = &mut *self.counts;
        let slot = self.seen % WAKE_WINDOW;
        if self.seen >= WAKE_WINDOW {
            let oldest = usize::from(counts.ring[slot]);
            counts.per_bucket[oldest] -= 1;
        }
        counts.ring[slot] = bucket;
        counts.per_bucket[usize::from(bucket)] += 1;
        self.seen += 1;
        if self.seen.is_multiple_of(WAKE_RECOMPUTE) && self.seen >= WAKE_WARMUP {
            let n = self.seen.min(WAKE_WINDOW);
            // 0-based ranks in the window's sorted order.
            let ranks = [n * 5 / 100, n / 2, (n * 99).div_ceil(100) - 1];
            let mut found = [0; 3];
            let (mut below, mut next) = (0, 0);
            for (bucket, &count) in counts.per_bucket.iter().enumerate() {
                below += usize::from(count);
                while next < 3 && below > ranks[next] {
                    found[next] = bucket as Nanos * WAKE_BUCKET_NS;
                    next += 1;
                }
                if next == 3 {
                    break;
                }
            }
            [self.p5, self.p50, self.p99] = found;
        }
    }
}
