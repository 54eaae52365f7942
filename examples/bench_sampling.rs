//! Sampling precision and cost of pcprof, side by side with the reference
//! design's benchmark (`shared/bench/seed-baseline`).
//!
//! - Drives the baseline's synthetic interpreters (same work per step, same
//!   4096-byte "bytecode" registered as `func{i}`) through pcprof's public
//!   API: `Profiler::builder()`, `new_interpreter`, `PcHandle::set`,
//!   `register_function`, `stop`.
//! - Writes a real file, reads it back with `ProfileReader`, and prints one
//!   JSON line with the baseline's keys, in its order and with its meanings,
//!   then pcprof's own keys (ticks scheduled and missed, samples dropped, the
//!   scheduling in force, ...).
//! - Lateness, ticks and samples are the runtime's own statistics (what
//!   `pcprof report` shows from the file's closing summary), not a second
//!   instrumentation.
//!
//! ```text
//! cargo run --release --example bench_sampling -- --freq 1000 --interpreters 4 --seconds 3 --work spin
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use pcprof_actors::{
    Event, Format, OnDemandPc, PcHandle, ProfileReader, Profiler, SamplingMode, Stats,
};

/// Bytes of "bytecode" per interpreter (as the baseline).
const CODE_LEN: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Spin,
    Idle,
    /// Work locked to 1 ms: 900 µs at the code's offset 0, then 100 µs at
    /// offset 4, on absolute deadlines; the JSON's `phased_brief_share` is
    /// the share of samples at offset 4 (the truth: 0.1).
    Phased,
}

/// The phased work's period and its brief part, in ns.
const PHASED_PERIOD_NS: u64 = 1_000_000;
const PHASED_BRIEF_NS: u64 = 100_000;

struct Args {
    freq: u32,
    flush: u32,
    interpreters: usize,
    seconds: f64,
    out: Option<String>,
    keep: bool,
    work: Work,
    timerslack_ns: Option<u64>,
    realtime: Option<u8>,
    spin_us: Option<u64>,
    spin_max: bool,
    target_us: Option<u64>,
    sampling: SamplingMode,
    format: Format,
    buffers: Option<usize>,
    /// Interpreters registered beside the working ones that stay idle
    /// (PC 0, no thread, no function): a server's idle Stores.
    idle: usize,
    /// Each interpreter keeps a shadow stack this deep (0: none).
    stack_depth: usize,
    /// Every interpreter on the activity protocol: the working ones enter
    /// once and run, the idle ones have entered and left once.
    on_demand: bool,
}

/// What an interpreter publishes its PC through: a plain cell, or one on
/// the activity protocol (`--on-demand`), entered around the whole run.
trait SetPc: Send + 'static {
    fn set(&self, pc: usize);
    fn run(&self, f: impl FnOnce());
}

impl SetPc for PcHandle {
    #[inline(always)]
    fn set(&self, pc: usize) {
        PcHandle::set(self, pc);
    }
    fn run(&self, f: impl FnOnce()) {
        f();
    }
}

impl SetPc for OnDemandPc {
    #[inline(always)]
    fn set(&self, pc: usize) {
        OnDemandPc::set(self, pc);
    }
    fn run(&self, f: impl FnOnce()) {
        let _entered = self.enter();
        f();
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("bench_sampling: {problem}");
    }
    eprintln!(
        "usage: bench_sampling [--freq HZ=1000] [--flush N=20000] [--interpreters N=4] \
         [--seconds S=2] [--out PATH] [--keep] [--work spin|idle] [--timerslack-ns N]\n\
         [--stack-depth N (a shadow stack N calls deep, one return and call a pass)]\n\
         \x20      [--realtime PRIO] [--spin-us N | --spin-max] [--target-us N] [--sampling randomized|periodic] [--format native|pulley] [--buffers N] [--idle N] [--on-demand]\n\
         Without --out a temp file under /tmp is used and removed at the end unless --keep.\n\
         --realtime asks for SCHED_FIFO on the timing thread (falls back to normal scheduling\n\
         where the process may not raise it; the JSON's \"scheduling\" says which was in force).\n\
         --spin-us caps the spin before each deadline (default: the profiler's own);\n\
         --spin-max puts ticks first at every rate (SpinPolicy::Max, PCPROF_SPIN=max).\n\
         --target-us is the p99 lateness the timing thread aims at (default: the profiler's own).\n\
         --idle N registers N more interpreters that stay idle (PC 0, no thread): the JSON's\n\
         sampler_us_per_tick is then what reading them costs a tick.\n\
         --on-demand registers every interpreter on the activity protocol (new_interpreter_on_demand):\n\
         the working ones enter around their run, the idle ones have entered and left once."
    );
    std::process::exit(2)
}

fn parse<T: std::str::FromStr>(flag: &str, value: Option<String>) -> T {
    let Some(value) = value else {
        usage(&format!("{flag} needs a value"))
    };
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {value:?}")))
}

fn parse_args() -> Args {
    let mut a = Args {
        freq: 1000,
        flush: 20000,
        interpreters: 4,
        seconds: 2.0,
        out: None,
        keep: false,
        work: Work::Spin,
        timerslack_ns: None,
        realtime: None,
        spin_us: None,
        spin_max: false,
        target_us: None,
        sampling: SamplingMode::Randomized,
        format: Format::Native,
        buffers: None,
        idle: 0,
        stack_depth: 0,
        on_demand: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--freq" => a.freq = parse(&flag, it.next()),
            "--flush" => a.flush = parse(&flag, it.next()),
            "--interpreters" => a.interpreters = parse(&flag, it.next()),
            "--stack-depth" => a.stack_depth = parse(&flag, it.next()),
            "--seconds" => a.seconds = parse(&flag, it.next()),
            "--out" => a.out = Some(parse(&flag, it.next())),
            "--keep" => a.keep = true,
            "--timerslack-ns" => a.timerslack_ns = Some(parse(&flag, it.next())),
            "--realtime" => a.realtime = Some(parse(&flag, it.next())),
            "--spin-us" => a.spin_us = Some(parse(&flag, it.next())),
            "--spin-max" => a.spin_max = true,
            "--target-us" => a.target_us = Some(parse(&flag, it.next())),
            "--sampling" => {
                let v: String = parse(&flag, it.next());
                a.sampling = v.parse().unwrap_or_else(|e: String| usage(&e));
            }
            "--buffers" => a.buffers = Some(parse(&flag, it.next())),
            "--idle" => a.idle = parse(&flag, it.next()),
            "--on-demand" => a.on_demand = true,
            "--format" => {
                let v: String = parse(&flag, it.next());
                a.format = v.parse().unwrap_or_else(|e: String| usage(&e));
            }
            "--work" => {
                a.work = match parse::<String>(&flag, it.next()).as_str() {
                    "spin" => Work::Spin,
                    "idle" => Work::Idle,
                    "phased" => Work::Phased,
                    other => usage(&format!("--work is spin, idle or phased, not {other:?}")),
                }
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    if a.freq == 0 || a.seconds.is_nan() || a.seconds <= 0.0 {
        usage("--freq and --seconds must be positive");
    }
    a
}

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("bench_sampling: {what}");
    std::process::exit(1)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct InterpReport {
    steps: u64,
    run: Duration,
    cpu_ns: u64,
}

/// The baseline's `interpreter_main`, step for step; the PC store is
/// `PcHandle::set` (one relaxed store, as the baseline's cell).
fn interpreter_main<P: SetPc>(
    code: Vec<u8>,
    pc: P,
    stop: Arc<AtomicBool>,
    start: Arc<Barrier>,
    work: Work,
    mut stack: Option<pcprof::StackHandle>,
) -> InterpReport {
    let base = code.as_ptr() as usize;
    let depth = stack.as_ref().map_or(0, |s| s.capacity());
    if let Some(st) = stack.as_mut() {
        for d in 0..depth {
            st.call(base + d);
        }
    }
    let mut steps = 0u64;
    let mut acc: u64 = 0x243F_6A88_85A3_08D3;
    start.wait();
    let t0 = Instant::now();
    pc.run(|| match work {
        Work::Spin => {
            while !stop.load(Ordering::Relaxed) {
                // A return and a call a pass: a new generation, so the
                // sampler reads the whole stack again at the next tick.
                if let Some(st) = stack.as_mut() {
                    st.ret();
                    st.call(base + depth);
                }
                for off in (0..CODE_LEN).step_by(4) {
                    pc.set(base + off);
                    // ~20 cheap arithmetic ops standing in for "executing" the op.
                    let mut a = black_box(acc);
                    a = a.wrapping_add(code[off] as u64);
                    a ^= a >> 7;
                    a = a.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    a = a.rotate_left(13);
                    a = a.wrapping_add(off as u64);
                    a ^= a << 11;
                    a = a.wrapping_sub(0x1234_5678);
                    a ^= a >> 29;
                    a = a.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    a = a.rotate_right(5);
                    a = a.wrapping_add(a >> 3);
                    a ^= 0x5555_AAAA_5555_AAAA;
                    a = a.wrapping_add(steps);
                    a ^= a >> 17;
                    a = a.wrapping_mul(0x94D0_49BB_1331_11EB);
                    a = a.rotate_left(3);
                    a = a.wrapping_sub(a >> 9);
                    a ^= a << 2;
                    a = a.wrapping_add(0x0F0F);
                    a ^= a >> 31;
                    acc = black_box(a);
                    steps += 1;
                }
            }
        }
        Work::Phased => {
            // The phase is the monotonic clock's, which the profiler's
            // deadlines also follow: ticks at whole periods of its epoch
            // fall at a fixed, unknown phase of this work.
            let mono = || clock_ns(libc::CLOCK_MONOTONIC);
            while !stop.load(Ordering::Relaxed) {
                let brief = mono() % PHASED_PERIOD_NS >= PHASED_PERIOD_NS - PHASED_BRIEF_NS;
                pc.set(base + if brief { 4 } else { 0 });
                steps += 1;
            }
        }
        Work::Idle => {
            pc.set(base);
            steps = 1;
            while !stop.load(Ordering::Acquire) {
                thread::park();
            }
        }
    });
    let run = t0.elapsed();
    pc.set(0);
    drop(pc); // marks the interpreter finished
    black_box(acc);
    black_box(&code);
    InterpReport {
        steps,
        run,
        cpu_ns: clock_ns(libc::CLOCK_THREAD_CPUTIME_ID),
    }
}

/// The timer slack of the profiler's timing thread, read from /proc while it
/// runs; the calling thread's when that thread cannot be found.
fn timing_thread_slack() -> i64 {
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            // The slack is exposed per process as /proc/<pid>/timerslack_ns,
            // which also answers for a thread id.
            let tid = task.file_name();
            if comm.trim() == "pcprof-sampler"
                && let Ok(s) =
                    std::fs::read_to_string(PathBuf::from("/proc").join(tid).join("timerslack_ns"))
                && let Ok(ns) = s.trim().parse()
            {
                return ns;
            }
        }
    }
    // SAFETY: plain prctl call; returns the current slack.
    i64::from(unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) })
}

struct ReadBack {
    samples: u64,
    outside: u64,
    /// Samples 4 bytes into a function (the phased work's brief part).
    at_offset_4: u64,
    bytes: u64,
}

fn read_back(path: &PathBuf) -> Result<ReadBack, String> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let reader = ProfileReader::open(path).map_err(|e| e.to_string())?;
    let mut functions: Vec<(u64, u64)> = Vec::new();
    let mut pcs: Vec<u64> = Vec::new();
    for event in reader {
        match event.map_err(|e| e.to_string())? {
            Event::Function(f) => functions.push((f.addr, f.code.len() as u64)),
            Event::Samples(batch) => pcs.extend(batch.iter().map(|s| s.pc)),
            _ => {}
        }
    }
    functions.sort_unstable();
    let inside = |addr: u64| {
        let idx = functions.partition_point(|&(a, _)| a <= addr);
        idx > 0 && {
            let (a, len) = functions[idx - 1];
            addr < a + len
        }
    };
    let outside = pcs.iter().filter(|&&pc| !inside(pc)).count() as u64;
    let at_offset_4 = pcs
        .iter()
        .filter(|&&pc| {
            functions
                .binary_search_by_key(&pc.wrapping_sub(4), |&(a, _)| a)
                .is_ok()
        })
        .count() as u64;
    Ok(ReadBack {
        samples: pcs.len() as u64,
        outside,
        at_offset_4,
        bytes,
    })
}

fn main() {
    // Actor transitions, when asked for: RUST_LOG=pcprof_actors=trace.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args();
    if let Some(ns) = args.timerslack_ns {
        // SAFETY: plain prctl call with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) } != 0 {
            fail("prctl(PR_SET_TIMERSLACK) failed");
        }
    }
    let (out_path, remove_at_end) = match &args.out {
        Some(p) => (PathBuf::from(p), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            (
                PathBuf::from(format!(
                    "/tmp/pcprof-bench-{}-{}.data",
                    std::process::id(),
                    nanos
                )),
                !args.keep,
            )
        }
    };

    let codes: Vec<Vec<u8>> = (0..args.interpreters)
        .map(|i| {
            (0..CODE_LEN)
                .map(|j| (j.wrapping_mul(31) + i) as u8)
                .collect()
        })
        .collect();

    let cpu0 = clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    let main_cpu0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let started = Instant::now();
    let mut builder = Profiler::builder()
        .frequency(args.freq)
        .flush_every(args.flush)
        .output(&out_path)
        .format(args.format)
        .sampling(args.sampling);
    if let Some(prio) = args.realtime {
        builder = builder.realtime(prio);
    }
    if let Some(us) = args.spin_us {
        builder = builder.spin(Duration::from_micros(us));
    }
    if args.spin_max {
        builder = builder.spin(pcprof_actors::SpinPolicy::Max);
    }
    if let Some(us) = args.target_us {
        builder = builder.lateness_target(Duration::from_micros(us));
    }
    if let Some(n) = args.buffers {
        builder = builder.buffers(n);
    }
    let mut profiler = builder
        .start()
        .unwrap_or_else(|e| fail(format!("cannot start the profiler: {e}")));

    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(args.interpreters + 1));
    let mut handles = Vec::with_capacity(args.interpreters);
    for (i, code) in codes.into_iter().enumerate() {
        profiler
            .register_function(&format!("func{i}"), &code)
            .unwrap_or_else(|e| fail(format!("register_function: {e}")));
        let label = format!("interp{i}");
        let (stop, barrier, work) = (stop.clone(), barrier.clone(), args.work);
        let thread = thread::Builder::new().name(label.clone());
        let spawned = if args.on_demand {
            let (pc, stack) = if args.stack_depth > 0 {
                let (pc, st) = profiler
                    .new_interpreter_with_stack_on_demand(Some(&label), args.stack_depth)
                    .unwrap_or_else(|e| fail(format!("new_interpreter_with_stack_on_demand: {e}")));
                (pc, Some(st))
            } else {
                let pc = profiler
                    .new_interpreter_on_demand(Some(&label))
                    .unwrap_or_else(|e| fail(format!("new_interpreter_on_demand: {e}")));
                (pc, None)
            };
            thread.spawn(move || interpreter_main(code, pc, stop, barrier, work, stack))
        } else {
            let (pc, stack) = if args.stack_depth > 0 {
                let (pc, st) = profiler
                    .new_interpreter_with_stack(Some(&label), args.stack_depth)
                    .unwrap_or_else(|e| fail(format!("new_interpreter_with_stack: {e}")));
                (pc, Some(st))
            } else {
                let pc = profiler
                    .new_interpreter(Some(&label))
                    .unwrap_or_else(|e| fail(format!("new_interpreter: {e}")));
                (pc, None)
            };
            thread.spawn(move || interpreter_main(code, pc, stop, barrier, work, stack))
        };
        handles.push(spawned.unwrap_or_else(|e| fail(format!("spawn: {e}"))));
    }
    // Idle interpreters: registered, never executing, dropped at the end.
    // On demand, each has entered and left once, as a served request's.
    let idle: Vec<Box<dyn std::any::Any>> = (0..args.idle)
        .map(|i| {
            let label = format!("idle{i}");
            let idle: Box<dyn std::any::Any> = if args.on_demand {
                let pc = profiler
                    .new_interpreter_on_demand(Some(&label))
                    .unwrap_or_else(|e| fail(format!("new_interpreter_on_demand: {e}")));
                drop(pc.enter());
                Box::new(pc)
            } else {
                Box::new(
                    profiler
                        .new_interpreter(Some(&label))
                        .unwrap_or_else(|e| fail(format!("new_interpreter: {e}"))),
                )
            };
            idle
        })
        .collect();
    // Registration is asynchronous: make sure every interpreter is sampled
    // before the interpreters start.
    profiler
        .sync()
        .unwrap_or_else(|e| fail(format!("sync: {e}")));
    barrier.wait();
    // The middle half of the run, apart from registering and retiring:
    // the steady cost of a tick and of a sample written.
    thread::sleep(Duration::from_secs_f64(args.seconds / 4.0));
    let first = profiler
        .stats()
        .unwrap_or_else(|e| fail(format!("stats: {e}")));
    thread::sleep(Duration::from_secs_f64(args.seconds / 4.0));
    let timerslack_ns = timing_thread_slack();
    thread::sleep(Duration::from_secs_f64(args.seconds / 4.0));
    let second = profiler
        .stats()
        .unwrap_or_else(|e| fail(format!("stats: {e}")));
    thread::sleep(Duration::from_secs_f64(args.seconds / 4.0));
    let steady_ticks = second.ticks_taken.saturating_sub(first.ticks_taken).max(1);
    let steady_tick_us = second.sampler_cpu_ns.saturating_sub(first.sampler_cpu_ns) as f64
        / 1e3
        / steady_ticks as f64;
    let steady_sample_ns = second.writer_cpu_ns.saturating_sub(first.writer_cpu_ns) as f64
        / second
            .samples_written
            .saturating_sub(first.samples_written)
            .max(1) as f64;
    let steady_share = (second.sampler_cpu_ns + second.writer_cpu_ns)
        .saturating_sub(first.sampler_cpu_ns + first.writer_cpu_ns) as f64
        / second.elapsed_ns.saturating_sub(first.elapsed_ns).max(1) as f64;
    // Where drops fall: before the middle half (registering, the pool
    // growing), within it (steady), after it while running, or while the
    // interpreters and the profiler stop.
    let dropped_before_steady = first.samples_dropped;
    let steady_samples_dropped = second.samples_dropped.saturating_sub(first.samples_dropped);
    let steady_ticks_share = steady_ticks as f64
        / second
            .ticks_scheduled
            .saturating_sub(first.ticks_scheduled)
            .max(1) as f64;
    let before_stop = profiler
        .stats()
        .unwrap_or_else(|e| fail(format!("stats: {e}")));
    stop.store(true, Ordering::Release);
    for h in &handles {
        h.thread().unpark();
    }
    let (mut total_steps, mut steps_per_sec, mut interp_cpu_ns) = (0u64, 0.0f64, 0u64);
    for h in handles {
        let r = h
            .join()
            .unwrap_or_else(|_| fail("an interpreter thread panicked"));
        total_steps += r.steps;
        steps_per_sec += r.steps as f64 / r.run.as_secs_f64();
        interp_cpu_ns += r.cpu_ns;
    }
    drop(idle);
    let stats: Stats = profiler
        .stop()
        .unwrap_or_else(|e| fail(format!("the profiler failed: {e}")));
    let profiler_wall_s = started.elapsed().as_secs_f64();
    let process_cpu_ns = clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).saturating_sub(cpu0);
    let main_cpu_ns = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).saturating_sub(main_cpu0);
    drop(profiler);

    let back = read_back(&out_path)
        .unwrap_or_else(|e| fail(format!("cannot read back {}: {e}", out_path.display())));
    if remove_at_end {
        let _ = std::fs::remove_file(&out_path);
    }

    let sampling_cpu_s = stats.sampler_cpu_ns as f64 / 1e9;
    let recording_cpu_s = stats.writer_cpu_ns as f64 / 1e9;
    // Everything else the process spent that is neither an interpreter nor
    // the driving thread: the actors' runtime thread (registration, stop).
    let runtime_cpu_ns = process_cpu_ns
        .saturating_sub(interp_cpu_ns)
        .saturating_sub(main_cpu_ns)
        .saturating_sub(stats.sampler_cpu_ns)
        .saturating_sub(stats.writer_cpu_ns);
    let runtime_cpu_s = runtime_cpu_ns as f64 / 1e9;
    let bytes_per_sample = if back.samples > 0 {
        back.bytes as f64 / back.samples as f64
    } else {
        0.0
    };
    let work = match args.work {
        Work::Spin => "spin",
        Work::Idle => "idle",
        Work::Phased => "phased",
    };
    let expected_ticks = (f64::from(args.freq) * args.seconds).round() as u64;
    let scheduling = serde_json::to_string(&stats.scheduling).unwrap_or_default();
    let spin_us = match (args.spin_max, args.spin_us) {
        (true, _) => "\"max\"".to_string(),
        (false, Some(us)) => us.to_string(),
        (false, None) => "null".to_string(),
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "{{\"impl\":\"pcprof\",\"freq\":{},\"interpreters\":{},\"seconds\":{},\"work\":\"{}\",\
\"ticks\":{},\"expected_ticks\":{},\"samples\":{},\"file_samples\":{},\"samples_outside_functions\":{},\
\"late_p50_us\":{:.3},\"late_p99_us\":{:.3},\"late_max_us\":{:.3},\"steps_per_sec\":{:.0},\
\"profiler_cpu_s\":{:.6},\"file_bytes\":{},\"bytes_per_sample\":{:.4},\
\"sampling_cpu_s\":{:.6},\"recording_cpu_s\":{:.6},\"process_cpu_s\":{:.6},\"profiler_wall_s\":{:.6},\
\"total_steps\":{},\"batches\":{},\"flush\":{},\"timerslack_ns\":{},\
\"ticks_scheduled\":{},\"ticks_missed\":{},\"tick_ratio\":{:.5},\"samples_written\":{},\"samples_dropped\":{},\
\"batches_dropped\":{},\"runtime_cpu_s\":{:.6},\"scheduling\":{},\"spin_us\":{},\"sampling\":\"{}\",\
\"format\":\"{}\",\"errors\":{},\"phased_brief_share\":{:.4},\"idle_interpreters\":{},\
\"sampler_us_per_tick\":{:.3},\"writer_ns_per_sample\":{:.1},\"profiler_cpu_share\":{:.4},\
\"steady_sampler_us_per_tick\":{:.3},\"steady_writer_ns_per_sample\":{:.1},\"steady_cpu_share\":{:.4},\
\"steady_ticks_share\":{:.4},\"batch_buffers\":{},\"on_demand\":{},\
\"dropped_before_steady\":{},\"steady_samples_dropped\":{},\"dropped_before_stop\":{}}}",
        args.freq,
        args.interpreters,
        args.seconds,
        work,
        stats.ticks_taken,
        expected_ticks,
        stats.samples_taken,
        back.samples,
        back.outside,
        us(stats.lateness_p50_ns),
        us(stats.lateness_p99_ns),
        us(stats.lateness_max_ns),
        steps_per_sec,
        sampling_cpu_s + recording_cpu_s + runtime_cpu_s,
        back.bytes,
        bytes_per_sample,
        sampling_cpu_s,
        recording_cpu_s,
        process_cpu_ns as f64 / 1e9,
        profiler_wall_s,
        total_steps,
        stats.batches_written,
        args.flush,
        timerslack_ns,
        stats.ticks_scheduled,
        stats.ticks_missed,
        stats.tick_ratio(),
        stats.samples_written,
        stats.samples_dropped,
        stats.batches_dropped,
        runtime_cpu_s,
        scheduling,
        spin_us,
        args.sampling,
        args.format,
        stats.errors,
        back.at_offset_4 as f64 / back.samples.max(1) as f64,
        args.idle,
        stats.sampler_cpu_ns as f64 / 1e3 / stats.ticks_taken.max(1) as f64,
        stats.writer_cpu_ns as f64 / stats.samples_written.max(1) as f64,
        (sampling_cpu_s + recording_cpu_s + runtime_cpu_s) / profiler_wall_s,
        steady_tick_us,
        steady_sample_ns,
        steady_share,
        steady_ticks_share,
        stats.batch_buffers,
        args.on_demand,
        dropped_before_steady,
        steady_samples_dropped,
        before_stop.samples_dropped,
    );
    if back.samples != stats.samples_taken {
        eprintln!(
            "warning: {} samples taken but {} in the file",
            stats.samples_taken, back.samples
        );
    }
}
