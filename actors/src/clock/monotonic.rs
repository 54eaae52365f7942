//! The real clock: `CLOCK_MONOTONIC`, absolute sleeps, a learned spin.

use std::thread;
use std::time::Duration;

use super::{
    Clock, DEAF_SLEEP_MAX, DEFAULT_LATENESS_TARGET, NEVER, Nanos, SpinPolicy, WakeEstimator,
};
use crate::sys::Epoch;

/// The real clock: `CLOCK_MONOTONIC` through [`std::time::Instant`].
///
/// Sleeps until a learned margin before each deadline, then spins (see the
/// module's documentation). What it learns lives in each sleeping thread's
/// own [`WakeEstimator`] ([`Clock::wake_estimator`]); the clock holds only
/// the policy. The [`Default`] clock never spins.
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    /// The origin of the readings.
    epoch: Epoch,
    /// How much it may spin before a deadline.
    spin: SpinPolicy,
    /// The p99 lateness it aims at, ns.
    target: Nanos,
}

impl MonotonicClock {
    /// A clock whose epoch is now, which spins before each deadline as
    /// `spin` allows (a [`SpinPolicy`]; a `Duration` caps it, `ZERO` never
    /// spins and wakes on the kernel's timer alone; `None` is
    /// [`SpinPolicy::Auto`]).
    pub fn new(spin: impl Into<SpinPolicy>) -> MonotonicClock {
        MonotonicClock::with_target(spin, DEFAULT_LATENESS_TARGET)
    }

    /// As [`MonotonicClock::new`], aiming the 99th percentile of lateness at
    /// `target` rather than [`DEFAULT_LATENESS_TARGET`].
    pub fn with_target(spin: impl Into<SpinPolicy>, target: Duration) -> MonotonicClock {
        MonotonicClock {
            epoch: Epoch::now(),
            spin: spin.into(),
            target: target.as_nanos().min(u128::from(u64::MAX / 4)) as Nanos,
        }
    }

    /// The margin before a deadline at which a new sleeper wakes to spin
    /// (before it has learned anything: the cap).
    pub fn spin_margin(&self) -> Duration {
        Duration::from_nanos(self.estimator().margin())
    }

    fn estimator(&self) -> WakeEstimator {
        WakeEstimator::with_policy(self.spin, self.target)
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
        self.epoch.elapsed_ns()
    }

    fn sleep_until(&self, deadline: Nanos) {
        self.wait_until(deadline, None);
    }

    fn wake_estimator(&self) -> Option<WakeEstimator> {
        Some(self.estimator())
    }

    /// Two clock reads a tick that needs no spin (before the sleep and on
    /// waking), rather than four: on a VM each costs about 40 ns, and more
    /// with the cold caches a tick starts with.
    fn wait_until(&self, deadline: Nanos, wake: Option<&mut WakeEstimator>) -> Nanos {
        let now = self.now();
        if now >= deadline {
            return now;
        }
        if deadline == NEVER {
            thread::park();
            return self.now();
        }
        let mut estimator = wake;
        // Without an estimator (a caller that learns nothing): no spin.
        let margin = estimator.as_deref_mut().map_or(0, WakeEstimator::plan);
        let wake = deadline.saturating_sub(margin);
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
            if let Some(e) = estimator.as_deref_mut() {
                e.observe(woke - wake);
            }
        }
        // The kernel's timer wake-up jitters by tens of microseconds; the
        // final margin is covered by spinning, bounded by the cap.
        if woke < deadline {
            let from = woke;
            while woke < deadline {
                std::hint::spin_loop();
                woke = self.now();
            }
            if let Some(e) = estimator {
                e.count_spin(woke - from);
                // How late the spin ended: the CPU taken from it meanwhile.
                e.observe_spin(woke - deadline);
            }
        }
        woke
    }

    fn name(&self) -> &'static str {
        "monotonic"
    }
}
