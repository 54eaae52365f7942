//! Time as the ticker sees it, replaceable by a virtual clock in tests.
//!
//! - Time is nanoseconds since the clock's epoch (the profiler's start), a
//!   plain `u64`, so deadlines are absolute integers and never drift.
//! - [`Clock::sleep_until`] may return early: the timing thread is woken
//!   (`Thread::unpark`) whenever a message arrives, handles it, and sleeps again.
//! - [`MonotonicClock`] parks with the kernel's timer (the timing thread sets
//!   its timer slack to 1 ns) until a margin before the deadline, then spins.
//!   The margin is learned ([`WakeEstimator`]): it follows a high quantile of
//!   how late the kernel actually wakes the thread, capped by the configured
//!   spin, so the thread spins only about as long as the kernel's wake-up
//!   error (a few µs of CPU a tick, not a fixed slice). When the wait is
//!   shorter than the margin (very high rates), sleeping cannot be on time
//!   and the thread spins through it.
//! - [`VirtualClock`] moves only when a test says so, and stops at every
//!   deadline on the way, so "advance 10 ms at 1 kHz" is exactly 10 ticks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The learned wake-up error ([`WakeEstimator`]'s state), in ns. Only the
    /// thread that sleeps on the clock writes it; relaxed suffices.
    wake_error: AtomicU64,
    cap: Nanos,
}

impl Clone for MonotonicClock {
    fn clone(&self) -> Self {
        MonotonicClock {
            epoch: self.epoch,
            wake_error: AtomicU64::new(self.wake_error.load(Ordering::Relaxed)),
            cap: self.cap,
        }
    }
}

impl MonotonicClock {
    /// A clock whose epoch is now, which spins through at most the last
    /// `spin` before each deadline (zero: never spin, wake on the kernel's
    /// timer alone).
    pub fn new(spin: Duration) -> MonotonicClock {
        let cap = spin.as_nanos().min(u128::from(u64::MAX / 4)) as Nanos;
        MonotonicClock {
            epoch: Instant::now(),
            wake_error: AtomicU64::new(WakeEstimator::new(cap).estimate()),
            cap,
        }
    }

    /// The margin before a deadline at which the thread now wakes to spin.
    pub fn spin_margin(&self) -> Duration {
        Duration::from_nanos(self.estimator().margin())
    }

    fn estimator(&self) -> WakeEstimator {
        WakeEstimator {
            estimate: self.wake_error.load(Ordering::Relaxed),
            cap: self.cap,
        }
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
        let mut estimator = self.estimator();
        let wake = deadline.saturating_sub(estimator.margin());
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
            self.wake_error
                .store(estimator.estimate(), Ordering::Relaxed);
        }
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

/// Learns how late the kernel wakes a sleeping thread, to wake it that much
/// before a deadline and spin only the rest.
///
/// - The estimate tracks a quantile of the observed overshoots (a streaming
///   "frugal" quantile: up by `q` steps when a wake-up is later than the
///   estimate, down by `1 - q` steps when earlier, so it settles where a
///   fraction `q` of wake-ups are earlier). Spinning costs the gap between
///   the estimate and an early wake-up; a late one costs lateness. Tracking
///   the 80th percentile rather than the maximum keeps the spin to a few µs
///   a tick while most reads land within a µs of their deadline.
/// - Observations are clamped to the cap, and the estimate never exceeds it:
///   a thread preempted for milliseconds learns "as late as allowed".
/// - Pure and deterministic (the clock keeps its state in an atomic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeEstimator {
    estimate: Nanos,
    cap: Nanos,
}

/// The quantile of wake-up errors the margin covers, in percent.
const WAKE_QUANTILE_PCT: u64 = 80;
/// Step of the quantile estimate, in ns: converges over a few hundred ticks
/// from the cap, and follows drifts of a µs a tick.
const WAKE_STEP_NS: u64 = 1_000;

impl WakeEstimator {
    /// A new estimator whose margin never exceeds `cap` ns. It starts
    /// pessimistic (at the cap) and learns downwards, so the first ticks are
    /// on time rather than cheap.
    pub fn new(cap: Nanos) -> WakeEstimator {
        WakeEstimator { estimate: cap, cap }
    }

    /// The learned wake-up error, in ns.
    pub fn estimate(&self) -> Nanos {
        self.estimate
    }

    /// How long before a deadline to wake and start spinning, in ns.
    pub fn margin(&self) -> Nanos {
        self.estimate
    }

    /// Records that a wait timed out `overshoot` ns after it was due.
    pub fn observe(&mut self, overshoot: Nanos) {
        let x = overshoot.min(self.cap);
        if x > self.estimate {
            let up = WAKE_STEP_NS * WAKE_QUANTILE_PCT / 100;
            self.estimate = (self.estimate + up).min(self.cap);
        } else if x < self.estimate {
            let down = WAKE_STEP_NS * (100 - WAKE_QUANTILE_PCT) / 100;
            self.estimate = self.estimate.saturating_sub(down);
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
    /// every tenth wake-up at 30 µs.
    fn overshoot(i: u64) -> Nanos {
        if i % 10 == 9 { 30_000 } else { 10_000 }
    }

    #[test]
    fn estimator_starts_at_the_cap_and_settles_on_the_quantile() {
        let mut e = WakeEstimator::new(50_000);
        assert_eq!(e.margin(), 50_000);
        for _ in 0..1000 {
            e.observe(10_000);
        }
        // A steady error is matched to within one step.
        assert!(e.estimate().abs_diff(10_000) <= WAKE_STEP_NS, "{e:?}");
        // 90 % of wake-ups at 10 µs: the 80th percentile is 10 µs, and
        // the estimate hovers just above it, never near the late ones.
        for i in 0..10_000 {
            e.observe(overshoot(i));
        }
        assert!((10_000..=12_000).contains(&e.estimate()), "{e:?}");
    }

    #[test]
    fn estimator_is_capped_and_follows_a_shift() {
        let mut e = WakeEstimator::new(50_000);
        for _ in 0..1000 {
            e.observe(5_000_000); // preempted for 5 ms, again and again
        }
        assert_eq!(e.margin(), 50_000);
        for _ in 0..1000 {
            e.observe(20_000);
        }
        assert!(e.estimate().abs_diff(20_000) <= WAKE_STEP_NS, "{e:?}");
    }

    #[test]
    fn zero_cap_never_spins() {
        let mut e = WakeEstimator::new(0);
        e.observe(1_000_000);
        assert_eq!((e.estimate(), e.margin()), (0, 0));
        let c = MonotonicClock::new(Duration::ZERO);
        assert_eq!(c.spin_margin(), Duration::ZERO);
        let c = MonotonicClock::new(Duration::from_micros(40));
        assert_eq!(c.clone().spin_margin(), Duration::from_micros(40));
    }
}
