//! The few OS calls the runtime makes: timer slack, scheduling of the timing
//! thread, per-thread CPU time, the monotonic clock and absolute sleeps on
//! it. Linux-only; elsewhere they do nothing or fall back to `std`.
//!
//! - Timer slack 1 ns on the timing thread: the kernel otherwise defers a
//!   sleeping thread's wake-up by up to 50 µs to batch timers.
//! - `SCHED_FIFO` only when asked (opt-in) and permitted, with a fall-back.
//! - At normal priority, a short EEVDF slice (Linux 6.12+, unprivileged): a
//!   waking thread with a shorter slice than the running one preempts it, so
//!   the timing thread is not kept waiting behind busy interpreters for a
//!   whole default slice (3 ms).

/// The origin of [`crate::clock::MonotonicClock`]: readings and absolute
/// sleeps on one clock (`CLOCK_MONOTONIC`, which is also what `Instant`
/// reads on Linux).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epoch {
    #[cfg(target_os = "linux")]
    origin_ns: u64,
    #[cfg(not(target_os = "linux"))]
    origin: std::time::Instant,
}

impl Epoch {
    /// An epoch at the current time.
    pub(crate) fn now() -> Epoch {
        #[cfg(target_os = "linux")]
        {
            Epoch {
                origin_ns: monotonic_ns(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Epoch {
                origin: std::time::Instant::now(),
            }
        }
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub(crate) fn elapsed_ns(&self) -> u64 {
        #[cfg(target_os = "linux")]
        {
            monotonic_ns().saturating_sub(self.origin_ns)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.origin.elapsed().as_nanos() as u64
        }
    }

    /// Sleeps until `at` ns after the epoch, or until a signal interrupts
    /// the sleep; an `unpark` does not. On Linux an absolute
    /// `clock_nanosleep`: it costs the thread less CPU than a futex wait
    /// (about 1 µs of the 10 µs a wake-up costs on a VM) and cannot drift
    /// between reading the time and sleeping.
    pub(crate) fn sleep_until(&self, at: u64) {
        #[cfg(target_os = "linux")]
        {
            let t = self.origin_ns.saturating_add(at);
            let ts = libc::timespec {
                tv_sec: (t / 1_000_000_000) as libc::time_t,
                tv_nsec: (t % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: `ts` is a valid timespec; the remainder pointer may be
            // null with TIMER_ABSTIME. An interrupted sleep just returns:
            // callers re-check the time.
            unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let now = self.elapsed_ns();
            if now < at {
                std::thread::sleep(std::time::Duration::from_nanos(at - now));
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in ns (a vDSO read, no system call).
#[cfg(target_os = "linux")]
#[inline]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec. CLOCK_MONOTONIC cannot
    // fail on Linux; were it to, 0 keeps time from moving, never backwards.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time consumed by the calling thread, in ns (0 where unsupported).
pub fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        }
    }
    0
}

/// The slice asked for at normal priority, in ns: the kernel's minimum
/// (0.1 ms). The timing thread runs for a few µs a tick, so it never uses it
/// up; what matters is that it is shorter than the interpreters' slice.
#[cfg(target_os = "linux")]
const NORMAL_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1), which the libc crate does not
/// define.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// Asks for a short EEVDF slice for the calling thread, keeping its policy
/// (normal) and nice value. Returns whether the kernel accepted it (kernels
/// before 6.12 accept and ignore it).
#[cfg(target_os = "linux")]
fn short_slice() -> bool {
    set_slice(true)
}

/// Sets the calling thread's EEVDF slice at normal priority: the short one
/// (`short`), for a thread that sleeps between ticks and must preempt busy
/// interpreters on waking, or the kernel's default, for a thread that spins
/// through (at 100 kHz): a short slice would hand its CPU to every task
/// that wakes on its core, and each such hand-over loses ticks. Returns
/// whether the kernel accepted it.
pub(crate) fn set_slice(short: bool) -> bool {
    #[cfg(not(target_os = "linux"))]
    {
        let _ = short;
        false
    }
    #[cfg(target_os = "linux")]
    {
        set_slice_linux(if short { NORMAL_SLICE_NS } else { 0 })
    }
}

#[cfg(target_os = "linux")]
fn set_slice_linux(runtime: u64) -> bool {
    // SAFETY: getpriority has no memory arguments; who = 0 is the caller.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_nice: nice,
        sched_runtime: runtime,
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid sched_attr of the size it declares; pid 0 is
    // the calling thread; flags 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::pid_t,
            &attr as *const SchedAttr,
            0 as libc::c_uint,
        )
    };
    rc == 0
}

/// Scheduling of the timing thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduling {
    /// The default policy of the process.
    Normal,
    /// `SCHED_FIFO` at this priority (1..=99) where the process may raise
    /// it (root or `CAP_SYS_NICE`); otherwise the thread falls back to normal
    /// scheduling and the statistics say so.
    Realtime {
        /// FIFO priority.
        priority: u8,
    },
}

/// Prepares the calling (timing) thread for precise wake-ups and returns a
/// description of the scheduling in force: `normal (slice 100us)`,
/// `fifo:N`, or `normal (...; fifo refused: reason)`.
///
/// - Timer slack 1 ns (see the module's documentation).
/// - `SCHED_FIFO` when asked and permitted: a FIFO thread preempts the
///   interpreters the moment its timer fires, which is what keeps 10 kHz
///   steady beside many busy threads. Without permission (no root, no
///   `CAP_SYS_NICE`) it stays at normal priority, with the short slice, and
///   says so.
pub fn prepare_timing_thread(scheduling: Scheduling) -> String {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        let mut refused = None;
        if let Scheduling::Realtime { priority } = scheduling {
            let param = libc::sched_param {
                sched_priority: i32::from(priority),
            };
            // SAFETY: `param` is a valid sched_param; 0 = the calling thread.
            let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            if rc == 0 {
                return format!("fifo:{priority}");
            }
            refused = Some(std::io::Error::last_os_error());
        }
        let slice = if short_slice() {
            format!("slice {}us", NORMAL_SLICE_NS / 1000)
        } else {
            "default slice".to_string()
        };
        match refused {
            None => format!("normal ({slice})"),
            Some(err) => format!("normal ({slice}; fifo refused: {err})"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        match scheduling {
            Scheduling::Normal => "normal".to_string(),
            Scheduling::Realtime { .. } => "normal (fifo unsupported on this OS)".to_string(),
        }
    }
}
