//! Time as the ticker sees it, replaceable by a virtual clock in tests.
//!
//! - Time is nanoseconds since the clock's epoch (the profiler's start), a
//!   plain `u64`, so deadlines are absolute integers and never drift.
//! - [`Clock::sleep_until`] may return early: the timing thread is woken
//!   (`Thread::unpark`) whenever a message arrives, handles it, and sleeps again.
//! - [`MonotonicClock`] parks with the kernel's timer (the timing thread sets
//!   its timer slack to 1 ns) until a margin before the deadline, then spins.
//!   The margin is learned ([`WakeEstimator`]): the 99th percentile of how
//!   late the kernel actually wakes the thread, minus the lateness the
//!   profiler is allowed (the target), capped by the configured spin and by
//!   1/20 of the tick period. So
//!   the thread spins only as much as a p99 lateness within the target
//!   needs; when the kernel alone is that punctual it does not spin at all.
//!   When the kernel's median wake-up error is a whole period (very high
//!   rates), sleeping cannot be on time and the thread spins through.
//! - [`VirtualClock`] moves only when a test says so, and stops at every
//!   deadline on the way, so "advance 10 ms at 1 kHz" is exactly 10 ticks.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Nanoseconds since a clock's epoch.
pub type Nanos = u64;

/// A deadline that never comes: sleeping until it waits for a wake-up.
pub const NEVER: Nanos = u64::MAX;

/// The time source of the profiler.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since the clock's epoch.
    fn now(&self) -> Nanos;

    /// Blocks the calling thread until `now() >= deadline` or until the
    /// thread is unparked, whichever comes first. May return early for no
    /// reason; callers re-check.
    fn sleep_until(&self, deadline: Nanos);

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
#[derive(Debug)]
pub struct MonotonicClock {
    epoch: Instant,
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
    /// `spin` before each deadline (zero: never spin, wake on the kernel's
    /// timer alone).
    pub fn new(spin: Duration) -> MonotonicClock {
        MonotonicClock::with_target(spin, DEFAULT_LATENESS_TARGET)
    }

    /// As [`MonotonicClock::new`], aiming the 99th percentile of lateness at
    /// `target` rather than [`DEFAULT_LATENESS_TARGET`].
    pub fn with_target(spin: Duration, target: Duration) -> MonotonicClock {
        let ns = |d: Duration| d.as_nanos().min(u128::from(u64::MAX / 4)) as Nanos;
        MonotonicClock {
            epoch: Instant::now(),
            wake: Mutex::new(WakeEstimator::new(ns(spin), ns(target))),
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
        MonotonicClock::new(Duration::ZERO)
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    fn sleep_until(&self, deadline: Nanos) {
        let now = self.now();
        if now >= deadline {
            return;
        }
        if deadline == NEVER {
            thread::park();
            return;
        }
        let mut estimator = self
            .wake
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let period = estimator.next_deadline(deadline);
        let wake = deadline.saturating_sub(estimator.margin_for(period));
        if now < wake {
            // Parking (a futex wait) rather than sleeping lets a message
            // unpark the thread before the deadline.
            thread::park_timeout(Duration::from_nanos(wake - now));
            let woke = self.now();
            if woke < wake {
                return; // woken early: the caller handles its mailbox first
            }
            // A timed-out wait: learn how late the kernel woke us.
            estimator.observe(woke - wake);
        }
        drop(estimator);
        // The kernel's timer wake-up jitters by tens of microseconds; the
        // final margin is covered by spinning, bounded by the cap.
        while self.now() < deadline {
            std::hint::spin_loop();
        }
    }

    fn name(&self) -> &'static str {
        "monotonic"
    }
}

/// The default lateness target: the 99th percentile of lateness the clock
/// aims at, spinning only as much as that needs.
pub const DEFAULT_LATENESS_TARGET: Duration = Duration::from_micros(40);

/// Wake-up errors remembered: the p99 is the 11th largest of them.
const WAKE_WINDOW: usize = 1024;
/// Wake-ups between two recomputations of the percentile.
const WAKE_RECOMPUTE: usize = 64;
/// Wake-ups needed before the estimate is trusted (until then the margin is
/// the cap: the first ticks are on time rather than cheap).
const WAKE_WARMUP: usize = 128;

/// Learns how late the kernel wakes a sleeping thread, to wake it early
/// enough for a given p99 lateness and spin only the rest.
///
/// - Keeps the last [`WAKE_WINDOW`] overshoots (how late a timed wait
///   returned after it was due) in a fixed array, and every
///   [`WAKE_RECOMPUTE`] wake-ups takes their 99th percentile by selection on
///   a stack copy: no allocation, about a µs every 64 ticks.
/// - The margin is `p99 − target`, capped by `cap` and by 1/20 of the tick
///   period (spinning on a core shared with an interpreter costs it that
///   time; at 10 kHz the thread spins at most 5 µs a tick). Waking that much before
///   the deadline, 99 % of wake-ups land at most `target` late, and the
///   thread spins only through the part of the margin the kernel did not
///   use. Aiming a high quantile at a budget, rather than a middle quantile
///   at zero, is what keeps both the p99 and the CPU low.
/// - Observations are independent of the margin (they are measured against
///   the wait's own due time), so the feedback is stable.
/// - Pure and deterministic; the clock keeps it behind an uncontended lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeEstimator {
    window: Box<[u32; WAKE_WINDOW]>,
    seen: usize,
    p50: Nanos,
    p99: Nanos,
    cap: Nanos,
    target: Nanos,
    last_deadline: Nanos,
}

/// Spinning may take at most 1/`SPIN_BUDGET_DIV` of the tick period: where the
/// timing thread shares a core with an interpreter, every µs spun is a µs the
/// interpreter loses.
const SPIN_BUDGET_DIV: u64 = 20;

impl WakeEstimator {
    /// A new estimator whose margin never exceeds `cap` ns, aiming the p99
    /// of lateness at `target` ns.
    pub fn new(cap: Nanos, target: Nanos) -> WakeEstimator {
        WakeEstimator {
            window: Box::new([0; WAKE_WINDOW]),
            seen: 0,
            p50: 0,
            p99: cap.saturating_add(target),
            cap,
            target,
            last_deadline: 0,
        }
    }

    /// The learned median of the kernel's wake-up error, in ns.
    pub fn p50(&self) -> Nanos {
        self.p50
    }

    /// The learned 99th percentile of the kernel's wake-up error, in ns.
    pub fn p99(&self) -> Nanos {
        self.p99
    }

    /// How long before a deadline to wake and start spinning, in ns, for
    /// ticks `period` ns apart (0: unknown).
    ///
    /// - When the kernel's median wake-up error is a whole period, sleeping
    ///   cannot be on time: spin through (very high rates, on a free core).
    /// - Else `p99 − target`, within the cap and within 1/20 of the period.
    /// - Until enough wake-ups are seen, the most the budget allows.
    pub fn margin_for(&self, period: Nanos) -> Nanos {
        let warm = self.seen >= WAKE_WARMUP;
        if warm && period > 0 && self.p50 >= period {
            return period;
        }
        let budget = if period > 0 {
            period / SPIN_BUDGET_DIV
        } else {
            self.cap
        };
        let cap = self.cap.min(budget);
        if warm {
            self.p99.saturating_sub(self.target).min(cap)
        } else {
            cap
        }
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
        self.window[self.seen % WAKE_WINDOW] = overshoot.min(u64::from(u32::MAX)) as u32;
        self.seen += 1;
        if self.seen.is_multiple_of(WAKE_RECOMPUTE) && self.seen >= WAKE_WARMUP {
            let n = self.seen.min(WAKE_WINDOW);
            let mut copy = [0u32; WAKE_WINDOW];
            copy[..n].copy_from_slice(&self.window[..n]);
            let rank = (n * 99).div_ceil(100) - 1;
            let (_, p, _) = copy[..n].select_nth_unstable(rank);
            self.p99 = Nanos::from(*p);
            let (_, p, _) = copy[..n].select_nth_unstable(n / 2);
            self.p50 = Nanos::from(*p);
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

    /// A deterministic stand-in for the kernel's wake-up errors: 10 µs, with
    /// one wake-up in 50 at 150 µs (2 %, so the p99 is 150 µs).
    fn overshoot(i: u64) -> Nanos {
        if i % 50 == 49 { 150_000 } else { 10_000 }
    }

    #[test]
    fn estimator_starts_at_the_cap_then_aims_the_p99_at_the_target() {
        let mut e = WakeEstimator::new(50_000, 40_000);
        assert_eq!(e.margin(), 50_000);
        for i in 0..(WAKE_WARMUP as u64 - 1) {
            e.observe(overshoot(i));
        }
        assert_eq!(e.margin(), 50_000, "still warming up");
        for i in 0..2000 {
            e.observe(overshoot(i));
        }
        assert_eq!(e.p99(), 150_000);
        // p99 150 µs, target 40 µs: wake 110 µs early, but never beyond the cap.
        assert_eq!(e.margin(), 50_000);
        let mut wide = WakeEstimator::new(200_000, 40_000);
        for i in 0..2000 {
            wide.observe(overshoot(i));
        }
        assert_eq!(wide.margin(), 110_000);
    }

    #[test]
    fn a_punctual_kernel_needs_no_spin_and_a_shift_is_followed() {
        let mut e = WakeEstimator::new(50_000, 40_000);
        for _ in 0..2000 {
            e.observe(20_000);
        }
        assert_eq!((e.p99(), e.margin()), (20_000, 0));
        // The machine gets busier: wake-ups at 70 µs, and the window follows.
        for _ in 0..WAKE_WINDOW {
            e.observe(70_000);
        }
        assert_eq!((e.p99(), e.margin()), (70_000, 30_000));
        // Huge preemptions are clamped by the cap.
        for _ in 0..WAKE_WINDOW {
            e.observe(5_000_000);
        }
        assert_eq!(e.margin(), 50_000);
    }

    #[test]
    fn spin_is_bounded_by_the_period_and_spins_through_when_sleep_is_hopeless() {
        let mut e = WakeEstimator::new(50_000, 40_000);
        // Before learning: the budget (1/20 of the period) or the cap.
        assert_eq!(e.margin_for(100_000), 5_000);
        assert_eq!(e.margin_for(1_000_000), 50_000);
        for _ in 0..2000 {
            e.observe(17_000 + 80_000 * u64::from(e.seen.is_multiple_of(50)));
        }
        assert_eq!((e.p50(), e.p99()), (17_000, 97_000));
        // 1 kHz: p99 97 µs − target 40 µs = 57 µs, capped at 50 µs.
        assert_eq!(e.margin_for(1_000_000), 50_000);
        // 10 kHz: at most 5 µs of each 100 µs period.
        assert_eq!(e.margin_for(100_000), 5_000);
        // 100 kHz: the median wake-up (17 µs) exceeds the period: spin through.
        assert_eq!(e.margin_for(10_000), 10_000);
        // Deadlines give the period.
        assert_eq!(e.next_deadline(1_000_000), 0);
        assert_eq!(e.next_deadline(1_100_000), 100_000);
    }

    #[test]
    fn zero_cap_never_spins() {
        let mut e = WakeEstimator::new(0, 40_000);
        for _ in 0..2000 {
            e.observe(1_000_000);
        }
        assert_eq!(e.margin(), 0);
        let c = MonotonicClock::new(Duration::ZERO);
        assert_eq!(c.spin_margin(), Duration::ZERO);
        let c = MonotonicClock::new(Duration::from_micros(40));
        assert_eq!(c.clone().spin_margin(), Duration::from_micros(40));
    }
}
