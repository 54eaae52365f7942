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
//!   the CPU for it. For ticks (a wake-up later than the next deadline
//!   loses it), below 20 kHz it spins only as far as each µs of spin saves
//!   enough ticks on this host, now: the cheap point, read off the same
//!   wake-ups ([`WakeEstimator::cheap_margin`]), never a whole core unless
//!   asked for ([`SpinPolicy::Max`]); from 20 kHz up ticks come first, and
//!   it spins through when too little sleep is left to be worth a wake-up,
//!   as long as spinning does save ticks on this host (see
//!   [`WakeEstimator`]).
//! - [`VirtualClock`] moves only when a test says so, and stops at every
//!   deadline on the way, so "advance 10 ms at 1 kHz" is exactly 10 ticks.

use std::fmt;
use std::time::Duration;

mod estimator;
mod monotonic;
#[cfg(test)]
mod tests;
mod virtual_clock;

#[cfg(test)]
use estimator::{PROBE_EVERY, WAKE_BUCKETS, WAKE_RECOMPUTE, WAKE_WARMUP, WAKE_WINDOW};
pub use estimator::{SPIN_THROUGH, WakeEstimator};
pub use monotonic::MonotonicClock;
pub use virtual_clock::VirtualClock;

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

    /// What a thread that sleeps on this clock learns between sleeps, if
    /// the clock learns anything ([`MonotonicClock`]: how late the kernel
    /// wakes it). The sleeping thread owns it, so the tick path takes no
    /// lock for it.
    fn wake_estimator(&self) -> Option<WakeEstimator> {
        None
    }

    /// [`Clock::sleep_until`], then the time: a clock that reads the time on
    /// waking anyway returns that reading, saving the caller a clock read.
    /// `wake` is the caller's own [`Clock::wake_estimator`]: with it the
    /// clock wakes early enough to spin to the deadline and learns from the
    /// wake-up.
    fn wait_until(&self, deadline: Nanos, wake: Option<&mut WakeEstimator>) -> Nanos {
        let _ = wake;
        self.sleep_until(deadline);
        self.now()
    }

    /// Wakes `thread`, asleep on this clock or about to be, because a
    /// message was sent to it. A virtual clock counts it awake from here
    /// until it sleeps again, so that it does not move time (or report the
    /// thread settled) before the message is handled.
    fn wake(&self, thread: &std::thread::Thread) {
        thread.unpark();
    }

    /// The calling thread will sleep on this clock (virtual clocks wait for
    /// every attached thread to be asleep before moving time).
    fn attach(&self) {}

    /// The calling thread no longer sleeps on this clock.
    fn detach(&self) {}

    /// `"monotonic"` or `"virtual"`: recorded in the file's header.
    fn name(&self) -> &'static str;

    /// The seed of the random sampling instants
    /// ([`SamplingMode::Randomized`](crate::config::SamplingMode)): by
    /// default drawn from the wall clock, so no two runs share their
    /// instants; [`VirtualClock`] returns a fixed one, so that tests are
    /// exact.
    fn seed(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

/// The longest sleep a message cannot cut short: sleeps up to this long (all
/// of them at 100 Hz and above) are absolute `clock_nanosleep`s, longer ones
/// futex waits that an unpark ends. So a control message (a stats query, a
/// registration, a stop) waits at most this long for the timing thread.
pub const DEAF_SLEEP_MAX: Nanos = 10_000_000;

/// How much the timing thread may spin before each deadline rather than
/// sleep ([`Config::spin`](crate::config::Config::spin), `PCPROF_SPIN`).
///
/// A sleeping thread costs a kernel wake-up a tick (about 10 µs of CPU on a
/// 2-vCPU VM) and wakes tens of µs late, sometimes milliseconds; a spinning
/// one is on time but costs the CPU it spins. Below 20 kHz the default
/// spends only what the ticks it saves are worth; a whole core is spent
/// only where asked for: by [`SpinPolicy::Max`], or by a rate (20 kHz and
/// above) that a sleeping thread cannot hold on the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpinPolicy {
    /// The default. For lateness, at most 1/100 of the tick period (and
    /// 50 µs). For ticks below 20 kHz, the cheap point: one more µs of spin
    /// before each deadline only while the ticks it saves on this host, now,
    /// cost at most 20 times what a sleeping tick costs the thread, and in
    /// all at most that cost and a fifth of the period a tick (so at most
    /// twice the CPU of sleeping alone), always sleeping between ticks.
    /// From 20 kHz up, ticks first, as [`SpinPolicy::Max`].
    #[default]
    Auto,
    /// Ticks first at every rate (`PCPROF_SPIN=max`): as much spin as keeps
    /// sleeping from losing more than 0.5 % of the ticks, through the whole
    /// period where it must (about one core at 10 kHz on a 2-vCPU VM);
    /// none where sleeping holds the rate.
    Max,
    /// At most this long before each deadline, never more; within it, ticks
    /// first. [`Duration::ZERO`] only sleeps.
    Cap(Duration),
}

impl From<Duration> for SpinPolicy {
    fn from(cap: Duration) -> SpinPolicy {
        SpinPolicy::Cap(cap)
    }
}

impl From<Option<Duration>> for SpinPolicy {
    /// `None`: [`SpinPolicy::Auto`].
    fn from(cap: Option<Duration>) -> SpinPolicy {
        cap.map_or(SpinPolicy::Auto, SpinPolicy::Cap)
    }
}

impl fmt::Display for SpinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpinPolicy::Auto => f.write_str("auto"),
            SpinPolicy::Max => f.write_str("max"),
            SpinPolicy::Cap(d) => write!(f, "{}us", d.as_micros()),
        }
    }
}

/// The default lateness target: the 99th percentile of lateness the clock
/// aims at, spinning only as much as that needs.
pub const DEFAULT_LATENESS_TARGET: Duration = Duration::from_micros(40);

/// The automatic spin cap spends at most 1/`AUTO_SPIN_SHARE` of each tick
/// period spinning (10 µs at 1 kHz, 1 µs at 10 kHz): a tick already costs a
/// kernel wake-up (about 10 µs of CPU on a VM), and where the timing thread
/// shares a core with an interpreter every µs spun is a µs the interpreter
/// loses.
pub(crate) const AUTO_SPIN_SHARE: u64 = 100;
/// The automatic spin cap never exceeds this, at any rate.
pub const AUTO_SPIN_MAX: Duration = Duration::from_micros(50);
