//! What a kernel wake-up costs on this machine, apart from any profiler
//! design: the floor beneath pcprof's and the baseline's timing figures.
//!
//! - `floor [HZ=1000] [SECONDS=3]`: one thread sleeps to each deadline
//!   (absolute `clock_nanosleep`, timer slack 1 ns, no spin) and prints the
//!   benchmark's lateness and CPU keys as one JSON line, to run beside
//!   `bench_sampling` and the baseline.
//! - `mechanisms [BLOCKS=60]`: CPU a tick at 1 kHz of three ways to sleep
//!   (absolute `clock_nanosleep`, a futex wait with an absolute timeout,
//!   `std::thread::park_timeout`), in alternating blocks of 100 ticks so that
//!   the host's noise, which drifts over seconds, falls on all three alike.
//! - `overshoot [HZ=1000]`: percentiles of how late a timed sleep returns,
//!   five runs of 2000 sleeps: what the timing thread's estimator learns.
//!
//! ```text
//! cargo run --release --example wake_probe -- floor 1000 3
//! ```

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> u64 {
        match args.get(i) {
            None => default,
            Some(s) => s.parse().unwrap_or_else(|_| {
                eprintln!("wake_probe: not a number: {s:?}");
                std::process::exit(2)
            }),
        }
    };
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    match args.first().map(String::as_str) {
        Some("floor") => linux::floor(num(1, 1000).max(1), num(2, 3).max(1)),
        Some("mechanisms") => linux::mechanisms(num(1, 60).max(1)),
        Some("overshoot") => linux::overshoot(num(1, 1000).max(1)),
        _ => {
            eprintln!(
                "usage: wake_probe floor [HZ] [SECONDS] | mechanisms [BLOCKS] | overshoot [HZ]"
            );
            std::process::exit(2)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("wake_probe measures Linux's timers; it does nothing on this OS");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    fn read(clock: libc::clockid_t) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn mono() -> u64 {
        read(libc::CLOCK_MONOTONIC)
    }

    fn cpu() -> u64 {
        read(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    fn timespec(t: u64) -> libc::timespec {
        libc::timespec {
            tv_sec: (t / 1_000_000_000) as libc::time_t,
            tv_nsec: (t % 1_000_000_000) as libc::c_long,
        }
    }

    fn nanosleep_until(t: u64) {
        let ts = timespec(t);
        // SAFETY: valid timespec; no remainder with TIMER_ABSTIME.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
    }

    fn futex_until(word: &AtomicU32, t: u64) {
        let ts = timespec(t);
        // SAFETY: `word` outlives the call; FUTEX_WAIT_BITSET takes an
        // absolute CLOCK_MONOTONIC timeout; the word stays 0, so the wait
        // lasts until the timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
                0u32,
                &ts as *const libc::timespec,
                0usize,
                u32::MAX,
            )
        };
    }

    /// The value at quantile `q` of sorted `v`, in µs.
    fn quantile_us(v: &[u64], q: f64) -> f64 {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    }

    pub fn floor(hz: u64, seconds: u64) {
        let period = 1_000_000_000 / hz;
        let ticks = hz * seconds;
        let mut late = Vec::with_capacity(ticks as usize);
        let cpu0 = cpu();
        let t0 = mono();
        for k in 1..=ticks {
            let deadline = t0 + k * period;
            nanosleep_until(deadline);
            late.push(mono().saturating_sub(deadline));
        }
        let cpu_s = (cpu() - cpu0) as f64 / 1e9;
        late.sort_unstable();
        println!(
            "{{\"impl\":\"floor\",\"freq\":{hz},\"seconds\":{seconds},\"ticks\":{ticks},\
             \"expected_ticks\":{ticks},\"late_p50_us\":{:.3},\"late_p99_us\":{:.3},\
             \"late_max_us\":{:.3},\"profiler_cpu_s\":{cpu_s:.6},\"sampling_cpu_s\":{cpu_s:.6}}}",
            quantile_us(&late, 0.5),
            quantile_us(&late, 0.99),
            quantile_us(&late, 1.0),
        );
    }

    pub fn mechanisms(blocks: u64) {
        const NAMES: [&str; 3] = [
            "clock_nanosleep (absolute)",
            "futex (absolute)",
            "park_timeout",
        ];
        let word = AtomicU32::new(0);
        let (mut total, mut cheapest) = ([0u64; 3], [0u64; 3]);
        let mut deadline = mono() + 1_000_000;
        for _ in 0..blocks {
            let mut block = [0u64; 3];
            for (m, spent) in block.iter_mut().enumerate() {
                let c0 = cpu();
                for _ in 0..100 {
                    deadline += 1_000_000;
                    match m {
                        0 => nanosleep_until(deadline),
                        1 => futex_until(&word, deadline),
                        _ => {
                            let now = mono();
                            if now < deadline {
                                std::thread::park_timeout(Duration::from_nanos(deadline - now));
                            }
                        }
                    }
                }
                *spent = cpu() - c0;
                total[m] += *spent;
            }
            let best = (0..3).min_by_key(|&m| block[m]).unwrap_or(0);
            cheapest[best] += 1;
        }
        for m in 0..3 {
            println!(
                "{:28} {:6.2} µs of CPU a tick, cheapest in {}/{blocks} blocks",
                NAMES[m],
                total[m] as f64 / (blocks * 100) as f64 / 1000.0,
                cheapest[m],
            );
        }
    }

    pub fn overshoot(hz: u64) {
        let period = 1_000_000_000 / hz;
        for _ in 0..5 {
            let mut v = Vec::with_capacity(2000);
            let t0 = mono();
            for k in 1..=2000 {
                let due = t0 + k * period;
                nanosleep_until(due);
                v.push(mono().saturating_sub(due));
            }
            v.sort_unstable();
            let qs = [0.01, 0.05, 0.25, 0.5, 0.9, 0.99, 0.999];
            let line: Vec<String> = qs
                .iter()
                .map(|&q| format!("p{} {:.1}", q * 100.0, quantile_us(&v, q)))
                .collect();
            println!("overshoot µs: {}", line.join("  "));
        }
    }
}
