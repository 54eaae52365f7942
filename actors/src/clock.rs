//! Time as the ticker sees it, replaceable by a virtual clock in tests.
//!
//! - Time is nanoseconds since the clock's epoch (the profiler's start), a
//!   plain `u64`, so deadlines are absolute integers and never drift.
//! - [`Clock::sleep_until`] may return early: the timing thread is woken
//!   (`Thread::unpark`) whenever a message arrives, handles it, and sleeps
//!   again. [`MonotonicClock`] makes the sleeps of a tick (at most
//!   [`DEAF_SLEEP_MAX`]) absolute `clock_nanosleep`s, which cost the thread
//!   less CPU than a wakeable futex wait; a message arriving then waits for
//!   the end of that sleep.
//! - [`MonotonicClock`] parks with the kernel's timer (the timing thread sets
//!   its timer slack to 1 ns) until a margin before the deadline, then spins.
//!   The margin is learned ([`WakeEstimator`]): the 99th percentile of how
//!   late the kernel actually wakes the thread, minus the lateness the
//!   profiler is allowed (the target), but at least the 5th percentile (a
//!   head start that almost never needs spinning), capped by default at
//!   1/100 of the tick period. So the thread spins only as much as a p99
//!   lateness within the target needs, and never more than a set share of
//!   the CPU. When the kernel's median wake-up error is a whole period (very
//!   high rates), sleeping cannot be on time and the thread spins through.
//! - [`VirtualClock`] moves only when a test says so, and stops at every
//!   deadline on the way, so "advance 10 ms at 1 kHz" is exactly 10 ticks.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::Duration;

use crate::sys::Epoch;

/// Nanoseconds since a clock's epoch.
pub type Nanos = u64;

/// A deadline that never comes: sleeping until it waits for a wake-up.
pub const NEVER: Nanos = u64::MAX;

/// The time source of the profiler.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since the clock's epoch.
    fn now(&self) -> Nanos;

    /// Blocks the calling thread until `now() >= deadline` or until the
    /// thread is unparked, whichever comes first; a clock may let an unpark
    /// wait for the end of a short sleep ([`MonotonicClock`] does, up to
    /// [`DEAF_SLEEP_MAX`]). May return early for no reason; callers re-check.
    fn sleep_until(&self, deadline: Nanos);

    /// [`Clock::sleep_until`], then the time: a clock that reads the time on
    /// waking anyway returns that reading, saving the caller a clock read.
    fn wait_until(&self, deadline: Nanos) -> Nanos {
        self.sleep_until(deadline);
        self.now()
    }

    /// The calling thread will sleep on this clock (virtual clocks wait for
    /// every attached thread to be asleep before moving time).
    fn attach(&self) {}

    /// The calling thread no longer sleeps on this clock.
    fn detach(&self) {}

    /// `"monotonic"` or `"virtual"`: recorded in the file's header.
    fn name(&self) -> &'static str;
}

/// The real clock: `CLOCK_MONOTONIC` through [`Instant`].
///
/// Sleeps until a learned margin before each deadline, then spins (see the
/// module's documentation). Clones share the epoch but learn separately.
/// The [`Default`] clock never spins.
#[derive(Debug)]
pub struct MonotonicClock {
    epoch: Epoch,
    /// What the clock learned of the kernel's wake-ups. Only the thread that
    /// sleeps on the clock (the timing thread) locks it, so the lock is never
    /// contended; no interpreter or registration can hold it.
    wake: Mutex<WakeEstimator>,
}

impl Clone for MonotonicClock {
    fn clone(&self) -> Self {
        MonotonicClock {
            epoch: self.epoch,
            wake: Mutex::new(self.estimator()),
        }
    }
}

impl MonotonicClock {
    /// A clock whose epoch is now, which spins through at most the last
    /// `spin` before each deadline (`Some(ZERO)`: never spin, wake on the
    /// kernel's timer alone; `None`: the automatic cap, 1/100 of the tick
    /// period and at most [`AUTO_SPIN_MAX`]).
    pub fn new(spin: Option<Duration>) -> MonotonicClock {
        MonotonicClock::with_target(spin, DEFAULT_LATENESS_TARGET)
    }

    /// As [`MonotonicClock::new`], aiming the 99th percentile of lateness at
    /// `target` rather than [`DEFAULT_LATENESS_TARGET`].
    pub fn with_target(spin: Option<Duration>, target: Duration) -> MonotonicClock {
        let ns = |d: Duration| d.as_nanos().min(u128::from(u64::MAX / 4)) as Nanos;
        MonotonicClock {
            epoch: Epoch::now(),
            wake: Mutex::new(WakeEstimator::new(spin.map(ns), ns(target))),
        }
    }

    /// The margin before a deadline at which the thread now wakes to spin.
    pub fn spin_margin(&self) -> Duration {
        Duration::from_nanos(self.estimator().margin())
    }

    fn estimator(&self) -> WakeEstimator {
        self.wake
            .lock()
            .map_or_else(|poison| poison.into_inner().clone(), |e| e.clone())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new(Some(Duration::ZERO))
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.epoch.elapsed_ns()
    }

    fn sleep_until(&self, deadline: Nanos) {
        self.wait_until(deadline);
    }

    /// Two clock reads a tick that needs no spin (before the sleep and on
    /// waking), rather than four: on a VM each costs about 40 ns, and more
    /// with the cold caches a tick starts with.
    fn wait_until(&self, deadline: Nanos) -> Nanos {
        let now = self.now();
        if now >= deadline {
            return now;
        }
        if deadline == NEVER {
            thread::park();
            return self.now();
        }
        let mut estimator = self
            .wake
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let period = estimator.next_deadline(deadline);
        let wake = deadline.saturating_sub(estimator.margin_for(period));
        let mut woke = now;
        if now < wake {
            if wake - now <= DEAF_SLEEP_MAX {
                // The sleep of a tick: measured on a 2-vCPU VM, an absolute
                // clock_nanosleep costs about 1 µs less CPU than a futex
                // wait (of about 10 µs a wake-up), which is what lets the
                // spin margin fit in the baseline's CPU. A message waits for
                // its end.
                self.epoch.sleep_until(wake);
            } else {
                // Long sleeps (slow rates) stay wakeable: parking lets a
                // message unpark the thread before the deadline.
                thread::park_timeout(Duration::from_nanos(wake - now));
            }
            woke = self.now();
            if woke < wake {
                return woke; // woken early: the caller handles its mailbox first
            }
            // A timed-out wait: learn how late the kernel woke us.
            estimator.observe(woke - wake);
        }
        drop(estimator);
        // The kernel's timer wake-up jitters by tens of microseconds; the
        // final margin is covered by spinning, bounded by the cap.
        while woke < deadline {
            std::hint::spin_loop();
            woke = self.now();
        }
        woke
    }

    fn name(&self) -> &'static str {
        "monotonic"
    }
}

/// The longest sleep a message cannot cut short: sleeps up to this long (all
/// of them at 100 Hz and above) are absolute `clock_nanosleep`s, longer ones
/// futex waits that an unpark ends. So a control message (a stats query, a
/// registration, a stop) waits at most this long for the timing thread.
pub const DEAF_SLEEP_MAX: Nanos = 10_000_000;

/// The default lateness target: the 99th percentile of lateness the clock
/// aims at, spinning only as much as that needs.
pub const DEFAULT_LATENESS_TARGET: Duration = Duration::from_micros(40);

/// The automatic spin cap spends at most 1/`AUTO_SPIN_SHARE` of each tick
/// period spinning (10 µs at 1 kHz, 1 µs at 10 kHz): a tick already costs a
/// kernel wake-up (about 10 µs of CPU on a VM), and where the timing thread
/// shares a core with an interpreter every µs spun is a µs the interpreter
/// loses.
const AUTO_SPIN_SHARE: u64 = 100;
/// The automatic spin cap never exceeds this, at any rate.
pub const AUTO_SPIN_MAX: Duration = Duration::from_micros(50);

/// Wake-up errors remembered: the p99 is the 11th largest of them.
const WAKE_WINDOW: usize = 1024;
/// Wake-ups between two recomputations of the percentiles.
const WAKE_RECOMPUTE: usize = 32;
/// Wake-ups needed before the estimate is trusted (until then the margin is
/// the cap: the first ticks are on time rather than cheap).
const WAKE_WARMUP: usize = 32;
/// Wake-up errors are counted in whole microseconds, up to this many; the
/// last bucket holds every error of `WAKE_BUCKETS − 1` µs or more.
const WAKE_BUCKETS: usize = 1024;
/// The width of a bucket, in ns.
const WAKE_BUCKET_NS: Nanos = 1_000;

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
/// - Pure and deterministic; the clock keeps it behind an uncontended lock.
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

/// A clock that moves only when told: [`VirtualClock::advance`].
///
/// `advance` steps to each deadline that attached threads sleep on, wakes the
/// sleepers and waits until they are all asleep again, so every tick in the
/// advanced span is taken exactly once, on time, with no real sleeping.
#[derive(Clone, Default)]
pub struct VirtualClock {
    shared: Arc<VirtualShared>,
}

#[derive(Default)]
struct VirtualShared {
    state: Mutex<VirtualState>,
    changed: Condvar,
}

#[derive(Default)]
struct VirtualState {
    now: Nanos,
    attached: usize,
    sleepers: Vec<Sleeper>,
}

struct Sleeper {
    thread: Thread,
    deadline: Nanos,
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("VirtualClock")
            .field("now", &s.now)
            .field("attached", &s.attached)
            .field("sleeping", &s.sleepers.len())
            .finish()
    }
}

impl VirtualClock {
    /// A virtual clock at time zero.
    pub fn new() -> VirtualClock {
        VirtualClock::default()
    }

    fn lock(&self) -> MutexGuard<'_, VirtualState> {
        // A poisoned lock only means a test thread panicked while holding
        // it; the state itself is always consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn wait_all_asleep<'a>(
        &'a self,
        mut s: MutexGuard<'a, VirtualState>,
    ) -> MutexGuard<'a, VirtualState> {
        while s.sleepers.len() < s.attached {
            s = self
                .shared
                .changed
                .wait(s)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        s
    }

    /// Moves time forward by `by`, stopping at every deadline on the way.
    /// Returns once every attached thread is asleep at a deadline beyond the
    /// new time.
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        let target = s.now.saturating_add(by.as_nanos() as Nanos);
        loop {
            s = self.wait_all_asleep(s);
            let next = s.sleepers.iter().map(|z| z.deadline).min().unwrap_or(NEVER);
            if next > target {
                break;
            }
            s.now = s.now.max(next);
            let now = s.now;
            let mut i = 0;
            while i < s.sleepers.len() {
                if s.sleepers[i].deadline <= now {
                    s.sleepers.swap_remove(i).thread.unpark();
                } else {
                    i += 1;
                }
            }
        }
        s.now = target;
    }

    /// Moves time forward by `by` at once, without stopping at deadlines on
    /// the way: the ticker wakes late and must skip the ticks it missed.
    pub fn jump(&self, by: Duration) {
        let mut s = self.wait_all_asleep(self.lock());
        s.now = s.now.saturating_add(by.as_nanos() as Nanos);
        let now = s.now;
        let mut i = 0;
        while i < s.sleepers.len() {
            if s.sleepers[i].deadline <= now {
                s.sleepers.swap_remove(i).thread.unpark();
            } else {
                i += 1;
            }
        }
        drop(self.wait_all_asleep(s));
    }

    /// Waits until every attached thread is asleep (it has handled every
    /// message sent to it so far).
    pub fn settle(&self) {
        drop(self.wait_all_asleep(self.lock()));
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Nanos {
        self.lock().now
    }

    fn sleep_until(&self, deadline: Nanos) {
        let me = thread::current();
        {
            let mut s = self.lock();
            if s.now >= deadline {
                return;
            }
            s.sleepers.push(Sleeper {
                thread: me.clone(),
                deadline,
            });
            self.shared.changed.notify_all();
        }
        thread::park();
        // Woken by `advance` (which removed us) or by a message (we remove
        // ourselves, and are counted awake until we sleep again).
        let mut s = self.lock();
        if let Some(i) = s.sleepers.iter().position(|z| z.thread.id() == me.id()) {
            s.sleepers.swap_remove(i);
        }
    }

    fn attach(&self) {
        self.lock().attached += 1;
    }

    fn detach(&self) {
        let mut s = self.lock();
        s.attached = s.attached.saturating_sub(1);
        self.shared.changed.notify_all();
    }

    fn name(&self) -> &'static str {
        "virtual"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for the kernel's wake-up errors: 5 µs one
    /// time in 10, 12 µs most of the time, 150 µs one time in 50 (2 %, so
    /// the p99 is 150 µs and the p5 5 µs).
    fn overshoot(i: u64) -> Nanos {
        match i % 50 {
            49 => 150_000,
            i if i % 10 == 0 => 5_000,
            _ => 12_000,
        }
    }

    #[test]
    fn estimator_starts_at_the_cap_then_aims_the_p99_at_the_target() {
        let mut e = WakeEstimator::new(Some(50_000), 40_000);
        assert_eq!(e.margin(), 50_000);
        for i in 0..(WAKE_WARMUP as u64 - 1) {
            e.observe(overshoot(i));
        }
        assert_eq!(e.margin(), 50_000, "still warming up");
        for i in 0..2000 {
            e.observe(overshoot(i));
        }
        assert_eq!((e.p5(), e.p50(), e.p99()), (5_000, 12_000, 150_000));
        // p99 150 µs, target 40 µs: 110 µs early would be needed, beyond the
        // cap; spinning 50 µs a tick would still miss, so only the head start.
        assert_eq!(e.margin(), 5_000);
        let mut wide = WakeEstimator::new(Some(200_000), 40_000);
        for i in 0..2000 {
            wide.observe(overshoot(i));
        }
        assert_eq!(wide.margin(), 110_000);
    }

    #[test]
    fn a_punctual_kernel_gets_only_the_free_head_start_and_a_shift_is_followed() {
        let mut e = WakeEstimator::new(Some(50_000), 40_000);
        for i in 0..2000 {
            e.observe(if i % 4 == 0 { 8_000 } else { 20_000 });
        }
        // p99 20 µs is within the target: only the p5 (8 µs), which the
        // kernel almost always overshoots, so it costs almost no spin.
        assert_eq!((e.p5(), e.p99(), e.margin()), (8_000, 20_000, 8_000));
        // The machine gets busier: wake-ups at 70 µs, and the window follows.
        for _ in 0..WAKE_WINDOW {
            e.observe(70_000);
        }
        // All 70 µs late: the p5 is 70 µs too, so waking that early costs
        // almost no spin; the cap still bounds it.
        assert_eq!((e.p5(), e.p99(), e.margin()), (70_000, 70_000, 50_000));
        // Mostly 10 µs, 2 % at 85 µs: 45 µs early brings the p99 to the target.
        for i in 0..WAKE_WINDOW {
            e.observe(if i % 50 == 0 { 85_000 } else { 10_000 });
        }
        assert_eq!((e.p5(), e.p99(), e.margin()), (10_000, 85_000, 45_000));
        // Huge preemptions: no margin within the cap reaches the target.
        for _ in 0..WAKE_WINDOW {
            e.observe(5_000_000);
        }
        assert_eq!(e.margin(), 50_000, "the head start, capped");
    }

    #[test]
    fn the_automatic_cap_is_a_share_of_the_period_and_spins_through_when_sleep_is_hopeless() {
        let mut e = WakeEstimator::new(None, 40_000);
        // Before learning: the cap, 1/100 of the period, at most 50 µs.
        assert_eq!(e.margin_for(100_000), 1_000);
        assert_eq!(e.margin_for(1_000_000), 10_000);
        assert_eq!(e.margin_for(100_000_000), 50_000);
        for i in 0..2000 {
            e.observe(17_000 + 80_000 * u64::from(i % 50 == 0));
        }
        assert_eq!((e.p5(), e.p50(), e.p99()), (17_000, 17_000, 97_000));
        // 1 kHz: p99 97 µs − target 40 µs = 57 µs, beyond the 10 µs cap:
        // the head start (17 µs), capped at 10 µs.
        assert_eq!(e.margin_for(1_000_000), 10_000);
        // 10 kHz: at most 1 µs of each 100 µs period.
        assert_eq!(e.margin_for(100_000), 1_000);
        // 100 Hz: the cap is 50 µs, and 57 µs would be needed: the head start.
        assert_eq!(e.margin_for(10_000_000), 17_000);
        // 100 kHz: the median wake-up (17 µs) exceeds the period: spin through.
        assert_eq!(e.margin_for(10_000), 10_000);
        // Deadlines give the period.
        assert_eq!(e.next_deadline(1_000_000), 0);
        assert_eq!(e.next_deadline(1_100_000), 100_000);
        let mut e = WakeEstimator::new(None, 40_000);
        for i in 0..2000 {
            e.observe(6_000 + 40_000 * u64::from(i % 50 == 0));
        }
        // 1 kHz, p99 46 µs: 6 µs early is within the cap and reaches the target.
        assert_eq!(e.margin_for(1_000_000), 6_000);
    }

    #[test]
    fn errors_are_counted_in_whole_microseconds_up_to_the_last_bucket() {
        let mut e = WakeEstimator::new(None, 40_000);
        for i in 0..WAKE_WINDOW as u64 {
            // 2 % at 7 ms, the rest 12.9 µs and 12.1 µs.
            e.observe(match i % 50 {
                0 => 7_000_000,
                i if i % 2 == 0 => 12_900,
                _ => 12_100,
            });
        }
        let top = (WAKE_BUCKETS as Nanos - 1) * WAKE_BUCKET_NS;
        assert_eq!((e.p5(), e.p50(), e.p99()), (12_000, 12_000, top));
        // Forgetting is exact: a full window later only the new errors count.
        for _ in 0..WAKE_WINDOW {
            e.observe(3_000);
        }
        assert_eq!((e.p5(), e.p50(), e.p99()), (3_000, 3_000, 3_000));
        // Errors beyond the last bucket still mean "a whole period" at 1 kHz.
        for _ in 0..WAKE_WINDOW {
            e.observe(5_000_000);
        }
        assert_eq!(e.margin_for(1_000_000), 1_000_000);
    }

    #[test]
    fn an_explicit_cap_is_never_exceeded() {
        let mut e = WakeEstimator::new(Some(5_000), 40_000);
        for _ in 0..2000 {
            e.observe(17_000);
        }
        // Even where sleeping cannot be on time (100 kHz), an explicit cap holds.
        assert_eq!(e.margin_for(10_000), 5_000);
        assert_eq!(e.margin_for(1_000_000), 5_000);
    }

    #[test]
    fn a_long_sleep_is_ended_by_an_unpark_and_a_short_one_runs_to_its_deadline() {
        let clock = Arc::new(MonotonicClock::default());
        // Longer than DEAF_SLEEP_MAX: wakeable. Were the unpark ignored, the
        // sleep would last 60 s and return at or after its deadline.
        let long = clock.now() + 60_000_000_000;
        let sleeper = {
            let clock = Arc::clone(&clock);
            thread::spawn(move || {
                clock.sleep_until(long);
                clock.now()
            })
        };
        let woke = loop {
            sleeper.thread().unpark();
            if sleeper.is_finished() {
                break sleeper.join().expect("the sleeping thread panicked");
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert!(woke < long, "an unpark must end a long sleep");
        // A tick's sleep: an unpark (already pending) does not cut it short.
        thread::current().unpark();
        let short = clock.now() + 2_000_000;
        clock.sleep_until(short);
        assert!(clock.now() >= short);
    }

    #[test]
    fn zero_cap_never_spins() {
        let mut e = WakeEstimator::new(Some(0), 40_000);
        for _ in 0..2000 {
            e.observe(1_000_000);
        }
        assert_eq!((e.margin(), e.margin_for(10_000)), (0, 0));
        let c = MonotonicClock::default();
        assert_eq!(c.spin_margin(), Duration::ZERO);
        let c = MonotonicClock::new(Some(Duration::from_micros(40)));
        assert_eq!(c.clone().spin_margin(), Duration::from_micros(40));
        let c = MonotonicClock::new(None);
        assert_eq!(c.spin_margin(), AUTO_SPIN_MAX);
    }
}
