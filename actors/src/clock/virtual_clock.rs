//! A clock that moves only when a test says so.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread, ThreadId};
use std::time::Duration;

use super::{Clock, NEVER, Nanos};

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
    /// Threads woken by a message while not asleep: their next sleep
    /// returns at once, as a park does on a pending unpark, but without
    /// counting them asleep in between.
    woken: Vec<ThreadId>,
}

struct Sleeper {
    thread: Thread,
    deadline: Nanos,
}

impl VirtualState {
    /// Wakes every sleeper whose deadline has come.
    fn wake_due(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.sleepers.len() {
            if self.sleepers[i].deadline <= now {
                self.sleepers.swap_remove(i).thread.unpark();
            } else {
                i += 1;
            }
        }
    }
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
            s.wake_due();
        }
        s.now = target;
    }

    /// Moves time forward by `by` at once, without stopping at deadlines on
    /// the way: the ticker wakes late and must skip the ticks it missed.
    pub fn jump(&self, by: Duration) {
        let mut s = self.wait_all_asleep(self.lock());
        s.now = s.now.saturating_add(by.as_nanos() as Nanos);
        s.wake_due();
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
            if let Some(i) = s.woken.iter().position(|&id| id == me.id()) {
                // A message came while it was awake: handle it first.
                s.woken.swap_remove(i);
                return;
            }
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
        // Woken by `advance` or by a message through `wake` (either removed
        // us), or by a stray unpark (we remove ourselves).
        let mut s = self.lock();
        if let Some(i) = s.sleepers.iter().position(|z| z.thread.id() == me.id()) {
            s.sleepers.swap_remove(i);
        }
    }

    fn wake(&self, thread: &Thread) {
        {
            let mut s = self.lock();
            match s.sleepers.iter().position(|z| z.thread.id() == thread.id()) {
                // Awake from now: `advance` and `settle` wait for its next
                // sleep, which comes after the message is handled.
                Some(i) => drop(s.sleepers.swap_remove(i)),
                None if !s.woken.contains(&thread.id()) => s.woken.push(thread.id()),
                None => {}
            }
        }
        thread.unpark();
    }

    fn attach(&self) {
        self.lock().attached += 1;
    }

    fn detach(&self) {
        let me = thread::current().id();
        let mut s = self.lock();
        s.attached = s.attached.saturating_sub(1);
        s.woken.retain(|&id| id != me);
        self.shared.changed.notify_all();
    }

    fn name(&self) -> &'static str {
        "virtual"
    }

    /// Fixed: a test's random sampling instants are the same on every run.
    fn seed(&self) -> u64 {
        0x5EED
    }
}
