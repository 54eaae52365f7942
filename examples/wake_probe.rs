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
//! - `core [HZ=10000] [ROUNDS=30] [PHASE_MS=100] [json]`: what sampling an
//!   interpreter on its own core costs it, by mechanism, paired in one
//!   process. Run it under `taskset -c 0`. A busy loop (the interpreter, one
//!   relaxed PC store a step) runs alone, then beside each way of reading its
//!   PC at `HZ`: the reference design's (a thread waiting on a condition
//!   variable to each deadline, reading under a mutex), a bare thread
//!   sleeping to each deadline, a per-thread POSIX timer whose signal handler
//!   reads the PC on the interpreter's own thread (no switch), and pcprof
//!   itself (resumed, then paused). Each phase is compared with the phases
//!   alone on either side of it, so the host's speed, which drifts by
//!   tens of percent over seconds here, cancels out. With `json`, one JSON
//!   line per mechanism (for `bench/compare.sh`).
//!
//! ```text
//! cargo run --release --example wake_probe -- floor 1000 3
//! taskset -c 0 target/release/examples/wake_probe core 10000 30 100
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
        Some("core") => core::core(
            num(1, 10_000).clamp(1, 1_000_000),
            num(2, 30).max(1),
            num(3, 100).max(1),
            args.get(4).is_some_and(|a| a == "json"),
        ),
        _ => {
            eprintln!(
                "usage: wake_probe floor [HZ] [SECONDS] | mechanisms [BLOCKS] | overshoot [HZ] \
                 | core [HZ] [ROUNDS] [PHASE_MS] [json]"
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

/// `core`: the interpreter's slowdown under each way of sampling it on its
/// own core, paired phase by phase.
#[cfg(target_os = "linux")]
mod core {
    use std::hint::black_box;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    use std::thread;
    use std::time::{Duration, Instant};

    use pcprof_actors::{PcHandle, PcReader, Profiler};

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Mode {
        /// No reader at all: a perf `cpu-clock` event firing its timer
        /// interrupt each period, so the floor of any design that
        /// interrupts the core once a sample.
        Interrupt,
        Reference,
        Sleep,
        Signal,
        Pcprof,
    }

    const MODES: [Mode; 5] = [
        Mode::Interrupt,
        Mode::Reference,
        Mode::Sleep,
        Mode::Signal,
        Mode::Pcprof,
    ];

    impl Mode {
        fn name(self) -> &'static str {
            match self {
                Mode::Interrupt => "timer interrupt alone (perf cpu-clock)",
                Mode::Reference => "reference design (condvar + mutex)",
                Mode::Sleep => "bare thread, clock_nanosleep",
                Mode::Signal => "signal on the interpreter's thread",
                Mode::Pcprof => "pcprof",
            }
        }
    }

    /// The PC the signal handler reads, and what it counts.
    static SIGNAL_PC: OnceLock<PcReader> = OnceLock::new();
    static SIGNAL_READS: AtomicU64 = AtomicU64::new(0);
    static SIGNAL_SUM: AtomicU64 = AtomicU64::new(0);

    extern "C" fn on_signal(_: libc::c_int) {
        // Only atomics: async-signal-safe.
        if let Some(r) = SIGNAL_PC.get() {
            let pc = r.pc().unwrap_or(0) as u64;
            SIGNAL_SUM.fetch_add(pc, Ordering::Relaxed);
            SIGNAL_READS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The interpreter: the benchmark's step (one relaxed PC store, then a
    /// little arithmetic) for `phase`; returns steps a second.
    fn run(pc: &PcHandle, base: usize, phase: Duration) -> f64 {
        let t0 = Instant::now();
        let mut steps = 0u64;
        let mut acc = 0x243F_6A88_85A3_08D3u64;
        while t0.elapsed() < phase {
            for off in (0..4096).step_by(4) {
                pc.set(base + off);
                let mut a = black_box(acc);
                a = a.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(13) ^ off as u64;
                a = a.wrapping_add(a >> 7).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                acc = black_box(a ^ (a >> 29));
                steps += 1;
            }
        }
        black_box(acc);
        steps as f64 / t0.elapsed().as_secs_f64()
    }

    /// A sampling thread for `Reference` or `Sleep`; returns its reads.
    fn sampler(mode: Mode, hz: u64, reader: PcReader, stop: Arc<AtomicBool>) -> u64 {
        let period = Duration::from_nanos(1_000_000_000 / hz);
        let cells = Mutex::new(vec![reader]);
        let cv = Condvar::new();
        let (mut reads, mut sum) = (0u64, 0u64);
        let mut deadline = Instant::now() + period;
        while !stop.load(Ordering::Relaxed) {
            match mode {
                Mode::Reference => {
                    // The reference's loop: wait on a condition variable
                    // until the deadline, then read every cell under the lock.
                    let mut g = cells.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        g = cv
                            .wait_timeout(g, deadline - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    sum += g.iter().map(|r| r.pc().unwrap_or(0) as u64).sum::<u64>();
                }
                _ => {
                    let now = Instant::now();
                    if deadline > now {
                        thread::sleep(deadline - now);
                    }
                    let g = cells.lock().unwrap_or_else(|e| e.into_inner());
                    sum += g[0].pc().unwrap_or(0) as u64;
                }
            }
            reads += 1;
            deadline += period;
            let now = Instant::now();
            while deadline <= now {
                deadline += period;
            }
        }
        black_box(sum);
        reads
    }

    /// A POSIX timer signalling this thread every period.
    struct ThreadTimer(libc::timer_t);

    impl ThreadTimer {
        fn start(hz: u64) -> Option<ThreadTimer> {
            // SAFETY: plain libc calls on zeroed, then filled, C structs;
            // the handler only touches atomics.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                if libc::sigaction(libc::SIGPROF, &sa, std::ptr::null_mut()) != 0 {
                    return None;
                }
                let mut se: libc::sigevent = std::mem::zeroed();
                se.sigev_notify = libc::SIGEV_THREAD_ID;
                se.sigev_signo = libc::SIGPROF;
                se.sigev_notify_thread_id = libc::gettid();
                let mut id: libc::timer_t = std::ptr::null_mut();
                if libc::timer_create(libc::CLOCK_MONOTONIC, &mut se, &mut id) != 0 {
                    return None;
                }
                let period = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: (1_000_000_000 / hz) as libc::c_long,
                };
                let spec = libc::itimerspec {
                    it_interval: period,
                    it_value: period,
                };
                if libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) != 0 {
                    libc::timer_delete(id);
                    return None;
                }
                Some(ThreadTimer(id))
            }
        }
    }

    impl Drop for ThreadTimer {
        fn drop(&mut self) {
            // SAFETY: `self.0` is a live timer of this process.
            unsafe { libc::timer_delete(self.0) };
        }
    }

    /// A perf software `cpu-clock` event on this thread that samples
    /// nothing user space sees: each period its hrtimer interrupts the
    /// core, and that is all.
    struct PerfInterrupt(libc::c_int);

    /// `perf_event_attr` up to its first published size (64 bytes).
    #[repr(C)]
    struct PerfAttr {
        kind: u32,
        size: u32,
        config: u64,
        sample_period: u64,
        sample_type: u64,
        read_format: u64,
        flags: u64,
        wakeup_events: u32,
        bp_type: u32,
        config1: u64,
    }

    impl PerfInterrupt {
        fn open(hz: u64) -> Option<PerfInterrupt> {
            const PERF_TYPE_SOFTWARE: u32 = 1;
            const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
            const PERF_SAMPLE_IP: u64 = 1;
            const DISABLED: u64 = 1;
            const EXCLUDE_KERNEL: u64 = 1 << 5;
            let attr = PerfAttr {
                kind: PERF_TYPE_SOFTWARE,
                size: std::mem::size_of::<PerfAttr>() as u32,
                config: PERF_COUNT_SW_CPU_CLOCK,
                sample_period: 1_000_000_000 / hz,
                sample_type: PERF_SAMPLE_IP,
                read_format: 0,
                flags: DISABLED | EXCLUDE_KERNEL,
                wakeup_events: 0,
                bp_type: 0,
                config1: 0,
            };
            // SAFETY: `attr` is a valid perf_event_attr of the size it
            // declares; pid 0, cpu -1: this thread on any CPU.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const PerfAttr,
                    0,
                    -1,
                    -1,
                    0,
                )
            };
            (fd >= 0).then_some(PerfInterrupt(fd as libc::c_int))
        }

        fn enable(&self, on: bool) {
            const ENABLE: libc::c_ulong = 0x2400;
            const DISABLE: libc::c_ulong = 0x2401;
            // SAFETY: ioctl on a perf event fd this struct owns.
            unsafe { libc::ioctl(self.0, if on { ENABLE } else { DISABLE }, 0) };
        }
    }

    impl Drop for PerfInterrupt {
        fn drop(&mut self) {
            // SAFETY: closes the fd this struct owns.
            unsafe { libc::close(self.0) };
        }
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub fn core(hz: u64, rounds: u64, phase_ms: u64, json: bool) {
        let phase = Duration::from_millis(phase_ms);
        let code = vec![0u8; 4096];
        let base = code.as_ptr() as usize;
        let profiler = Profiler::builder()
            .frequency(hz as u32)
            .output_writer(std::io::sink())
            .start();
        let mut profiler = match profiler {
            Ok(p) => p,
            Err(e) => {
                eprintln!("wake_probe: cannot start pcprof: {e}");
                std::process::exit(1)
            }
        };
        let ready = profiler
            .register_function("busy", &code)
            .and_then(|()| profiler.new_interpreter(Some("busy")))
            .and_then(|pc| profiler.pause().map(|()| pc))
            .and_then(|pc| profiler.sync().map(|()| pc));
        let pc = match ready {
            Ok(pc) => pc,
            Err(e) => {
                eprintln!("wake_probe: cannot set pcprof up: {e}");
                std::process::exit(1)
            }
        };
        let _ = SIGNAL_PC.set(pc.reader());
        let cpus = thread::available_parallelism().map_or(0, |n| n.get());
        if !json {
            println!(
                "core: {hz} Hz, {rounds} rounds of {phase_ms} ms phases, {cpus} CPU(s) available{}",
                if cpus == 1 {
                    ""
                } else {
                    " (run under taskset -c 0 to share one core)"
                }
            );
        }
        // Where perf events are refused (perf_event_paranoid), the floor is
        // left out.
        let perf = PerfInterrupt::open(hz);
        let mut slowdown: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
        let mut reads = [0u64; MODES.len()];
        let ticks0 = profiler.stats().map_or(0, |s| s.ticks_taken);
        let mut off = run(&pc, base, phase);
        for round in 0..rounds {
            for k in 0..MODES.len() {
                // Rotate the order so no mechanism always follows another.
                let m = (k + round as usize) % MODES.len();
                let mode = MODES[m];
                let on = match mode {
                    Mode::Interrupt => {
                        let Some(perf) = &perf else { continue };
                        perf.enable(true);
                        let on = run(&pc, base, phase);
                        perf.enable(false);
                        on
                    }
                    Mode::Reference | Mode::Sleep => {
                        let stop = Arc::new(AtomicBool::new(false));
                        let (r, s) = (pc.reader(), stop.clone());
                        let t = thread::spawn(move || sampler(mode, hz, r, s));
                        let on = run(&pc, base, phase);
                        stop.store(true, Ordering::Relaxed);
                        reads[m] += t.join().unwrap_or(0);
                        on
                    }
                    Mode::Signal => {
                        let before = SIGNAL_READS.load(Ordering::Relaxed);
                        let Some(timer) = ThreadTimer::start(hz) else {
                            eprintln!("wake_probe: timer_create failed");
                            std::process::exit(1)
                        };
                        let on = run(&pc, base, phase);
                        drop(timer);
                        reads[m] += SIGNAL_READS.load(Ordering::Relaxed) - before;
                        on
                    }
                    Mode::Pcprof => {
                        let _ = profiler.resume();
                        let on = run(&pc, base, phase);
                        let _ = profiler.pause();
                        let _ = profiler.sync();
                        on
                    }
                };
                let after = run(&pc, base, phase);
                slowdown[m].push(1.0 - on / ((off + after) / 2.0));
                off = after;
            }
        }
        reads[4] = profiler.stats().map_or(0, |s| s.ticks_taken) - ticks0;
        let expected = (rounds * phase_ms * hz) as f64 / 1000.0;
        if !json {
            println!(
                "{:38} {:>9} {:>9} {:>9} {:>12} {:>7}",
                "mechanism", "slowdown", "q1", "q3", "µs a tick", "ticks"
            );
        }
        for (m, mode) in MODES.iter().enumerate() {
            let mut v = slowdown[m].clone();
            if v.is_empty() {
                if !json {
                    println!("{:38} refused (perf_event_paranoid)", mode.name());
                }
                continue;
            }
            let med = median(&mut v);
            let (q1, q3) = (v[v.len() / 4], v[v.len() * 3 / 4]);
            // The interrupt floor reads nothing: no share of ticks to give.
            let share = if *mode == Mode::Interrupt {
                f64::NAN
            } else {
                reads[m] as f64 / expected
            };
            if json {
                println!(
                    "{{\"impl\":\"core-{mode:?}\",\"mechanism\":\"{}\",\"freq\":{hz},\"cpus\":{cpus},\
                     \"rounds\":{rounds},\"slowdown\":{med:.5},\"slowdown_q1\":{q1:.5},\
                     \"slowdown_q3\":{q3:.5},\"us_per_tick\":{:.3},\"tick_share\":{:.4}}}",
                    mode.name(),
                    med * 1e6 / hz as f64,
                    if share.is_nan() { -1.0 } else { share },
                );
                continue;
            }
            let ticks = if share.is_nan() {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * share)
            };
            println!(
                "{:38} {:>8.2}% {:>8.2}% {:>8.2}% {:>12.2} {:>7}",
                mode.name(),
                100.0 * med,
                100.0 * q1,
                100.0 * q3,
                med * 1e6 / hz as f64,
                ticks,
            );
        }
        drop(pc);
        let _ = profiler.stop();
        black_box(&code);
    }
}
