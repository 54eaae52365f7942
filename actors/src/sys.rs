//! The few OS calls the runtime makes: timer slack, real-time priority,
//! per-thread CPU time. Linux-only; elsewhere they do nothing.

use crate::config::Scheduling;

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

/// Prepares the calling (timing) thread for precise wake-ups and returns a
/// description of the scheduling in force.
///
/// - Timer slack 1 ns: the kernel otherwise rounds a sleeping thread's
///   wake-up by up to 50 µs to batch timers.
/// - `SCHED_FIFO` when asked and permitted: a FIFO thread preempts the
///   interpreters the moment its timer fires, which is what keeps 10 kHz
///   steady beside many busy threads. Without permission (no root, no
///   `CAP_SYS_NICE`) it stays at normal priority and says so.
pub fn prepare_timing_thread(scheduling: Scheduling) -> String {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        if let Scheduling::Realtime { priority } = scheduling {
            let param = libc::sched_param {
                sched_priority: i32::from(priority),
            };
            // SAFETY: `param` is a valid sched_param; 0 = the calling thread.
            let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            if rc == 0 {
                return format!("fifo:{priority}");
            }
            let err = std::io::Error::last_os_error();
            return format!("normal (fifo refused: {err})");
        }
        "normal".to_string()
    }
    #[cfg(not(target_os = "linux"))]
    {
        match scheduling {
            Scheduling::Normal => "normal".to_string(),
            Scheduling::Realtime { .. } => "normal (fifo unsupported on this OS)".to_string(),
        }
    }
}
