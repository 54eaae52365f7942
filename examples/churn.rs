//! Recording under churn: code loaded and unloaded thousands of times a
//! second at reused addresses (a JIT's short-lived code), in real time.
//!
//! - Each interpreter thread runs generation after generation of code: it
//!   registers `i{k}g{g}` at one of a few addresses it reuses, executes it
//!   (PC stores for a while), stops, unregisters it, and goes on with the
//!   next generation at the next address.
//! - Generations are told apart by the PC itself: generation `g` executes
//!   only at offset `g / slots % CODE_LEN` of its code, so generations that
//!   share an address run at different offsets, and a sample's PC says which
//!   generation was live when it was read. After `stop()` the file is read
//!   back, each sample is resolved by its time to a generation (as the
//!   analysis does: alive over `(loaded, unloaded]`), and a sample whose PC
//!   is not that generation's offset is counted misattributed. One stamped
//!   before any generation at its address was loaded (the load fell between
//!   the tick's clock reading and its PC read) is counted apart: the
//!   resolver's nearest-in-time rule gives it to the next generation loaded
//!   there, so it is misattributed only if that is not its own.
//! - Prints samples taken, written and dropped, misattributed samples, the
//!   duration of `stop()`, and the RSS before, at the end of the run and
//!   after `stop()`.
//! - `--drop-interpreters N` instead creates and drops N interpreters one
//!   after another and prints the RSS and the registry's counts.
//!
//! ```text
//! cargo run --release --example churn -- --seconds 20
//! cargo run --release --example churn -- --drop-interpreters 200000
//! ```

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use pcprof::{Event, PcHandle, ProfileReader, Profiler, ProfilerHandle, Sample};

/// Bytes of code per generation; also how many offsets tell generations at
/// one address apart.
const CODE_LEN: u64 = 64;
/// Where interpreter `k`'s addresses start.
const BASE: u64 = 0x10_0000;

struct Args {
    seconds: f64,
    interpreters: u64,
    slots: u64,
    gens_per_sec: f64,
    freq: u32,
    drop_interpreters: Option<u64>,
    out: Option<String>,
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("churn: {problem}");
    }
    eprintln!(
        "usage: churn [--seconds S=20] [--interpreters N=4] [--slots N=2] [--gens-per-sec N=4200]\n\
         \x20            [--freq HZ=1000] [--out PATH] [--drop-interpreters N]\n\
         --gens-per-sec is the total over all interpreters; each reuses --slots addresses.\n\
         --drop-interpreters N creates and drops N interpreters instead, and prints the RSS."
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
        seconds: 20.0,
        interpreters: 4,
        slots: 2,
        gens_per_sec: 4200.0,
        freq: 1000,
        drop_interpreters: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => a.seconds = parse(&flag, it.next()),
            "--interpreters" => a.interpreters = parse(&flag, it.next()),
            "--slots" => a.slots = parse(&flag, it.next()),
            "--gens-per-sec" => a.gens_per_sec = parse(&flag, it.next()),
            "--freq" => a.freq = parse(&flag, it.next()),
            "--drop-interpreters" => a.drop_interpreters = Some(parse(&flag, it.next())),
            "--out" => a.out = Some(parse(&flag, it.next())),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    if a.seconds.is_nan()
        || a.seconds <= 0.0
        || a.interpreters == 0
        || a.slots == 0
        || a.gens_per_sec.is_nan()
        || a.gens_per_sec <= 0.0
    {
        usage("--seconds, --interpreters, --slots and --gens-per-sec must be positive");
    }
    a
}

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("churn: {what}");
    std::process::exit(1)
}

/// Resident set size, in MB (from /proc/self/status).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The address interpreter `k` runs generation `g` at.
fn slot_addr(k: u64, g: u64, slots: u64) -> u64 {
    BASE + (k * slots + g % slots) * CODE_LEN
}

/// The offset generation `g` executes at: generations sharing an address
/// (`g`, `g + slots`, ...) run at different offsets.
fn gen_offset(g: u64, slots: u64) -> u64 {
    (g / slots) % CODE_LEN
}

/// One interpreter: generation after generation, each registered before its
/// first PC store and unregistered after its last.
fn interpreter(
    k: u64,
    p: ProfilerHandle,
    pc: PcHandle,
    a: (u64, Duration, u64),
    stop: Arc<AtomicBool>,
    start: Arc<Barrier>,
    gens: Arc<AtomicU64>,
) {
    let (slots, lifetime, _) = a;
    let code = [0u8; CODE_LEN as usize];
    start.wait();
    let t0 = Instant::now();
    let mut g = 0u64;
    let mut acc = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let addr = slot_addr(k, g, slots);
        if p.register_function_at(&format!("i{k}g{g}"), addr, &code)
            .is_err()
        {
            break;
        }
        let pc_value = (addr + gen_offset(g, slots)) as usize;
        let end = t0 + lifetime * (g + 1) as u32;
        while Instant::now() < end {
            for _ in 0..64 {
                pc.set(pc_value);
                acc = black_box(acc.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7));
            }
        }
        pc.set(0);
        if p.unregister_function(addr).is_err() {
            break;
        }
        g += 1;
    }
    gens.fetch_add(g, Ordering::Relaxed);
}

/// A generation as the file describes it.
struct Generation {
    loaded_ns: u64,
    unloaded_ns: u64,
    offset: u64,
}

/// What reading the file back found.
struct Checked {
    read: u64,
    /// Resolved to another generation than the one the PC was read from.
    wrong: u64,
    /// Stamped before their generation's load (and resolved to it by the
    /// nearest-in-time rule).
    early: u64,
    /// In no generation at all.
    unresolved: u64,
}

/// Reads the file back and checks each sample's generation.
fn check(path: &std::path::Path, slots: u64) -> Checked {
    let mut reader = ProfileReader::open(path).unwrap_or_else(|e| fail(e));
    // A file cut short (a writer stopped at its time limit) is read up to
    // where it stops.
    // Generations by address, in load order; those unloaded before the
    // current batch are dropped (batches come in time order).
    let mut by_addr: HashMap<u64, VecDeque<Generation>> = HashMap::new();
    let (mut read, mut wrong, mut early, mut unresolved) = (0u64, 0u64, 0u64, 0u64);
    let mut samples: Vec<Sample> = Vec::new();
    while let Some(Ok(ev)) = reader.next_into(&mut samples) {
        match ev {
            Event::Function(f) => {
                let g: u64 = f
                    .name
                    .split_once('g')
                    .and_then(|(_, g)| g.parse().ok())
                    .unwrap_or_else(|| fail(format!("unexpected function {}", f.name)));
                by_addr.entry(f.addr).or_default().push_back(Generation {
                    loaded_ns: f.loaded_ns,
                    unloaded_ns: u64::MAX,
                    offset: gen_offset(g, slots),
                });
            }
            Event::Unload(u) => {
                if let Some(g) = by_addr
                    .get_mut(&u.addr)
                    .and_then(|q| q.iter_mut().rev().find(|g| g.unloaded_ns == u64::MAX))
                {
                    g.unloaded_ns = u.unloaded_ns;
                }
            }
            Event::Samples(_) => {
                for s in &samples {
                    read += 1;
                    let addr = s.pc - (s.pc - BASE) % CODE_LEN;
                    let q = by_addr.entry(addr).or_default();
                    while q.front().is_some_and(|g| g.unloaded_ns < s.time_ns) {
                        q.pop_front();
                    }
                    let alive = q
                        .iter()
                        .find(|g| g.loaded_ns < s.time_ns && s.time_ns <= g.unloaded_ns);
                    match alive {
                        Some(g) if g.offset == s.pc - addr => {}
                        Some(_) => wrong += 1,
                        // Stamped before any generation here was loaded: the
                        // load fell between the tick's clock reading and its
                        // PC read. The resolver's nearest-in-time rule gives
                        // it to the next generation loaded here.
                        None => match q.front() {
                            Some(g) if g.offset == s.pc - addr => early += 1,
                            Some(_) => wrong += 1,
                            None => unresolved += 1,
                        },
                    }
                }
            }
            _ => {}
        }
    }
    Checked {
        read,
        wrong,
        early,
        unresolved,
    }
}

fn drop_interpreters(n: u64, freq: u32) {
    let rss0 = rss_mb();
    let mut p = Profiler::builder()
        .frequency(freq)
        .output(std::env::temp_dir().join(format!("churn-drop-{}.data", std::process::id())))
        .start()
        .unwrap_or_else(|e| fail(e));
    let path = p.output_path().map(|p| p.to_path_buf());
    let rss_started = rss_mb();
    let t0 = Instant::now();
    let mut max_id = 0;
    for _ in 0..n {
        let pc = p.new_interpreter(None).unwrap_or_else(|e| fail(e));
        pc.set(0x1000);
        drop(pc);
    }
    let stats = p.stats().unwrap_or_else(|e| fail(e));
    // One more, live: the id it gets shows whether ids are reused.
    let last = p.new_interpreter(Some("last")).unwrap_or_else(|e| fail(e));
    for info in p.interpreters().unwrap_or_else(|e| fail(e)) {
        if info.label.as_deref() == Some("last") {
            max_id = info.id;
        }
    }
    drop(last);
    let rss_end = rss_mb();
    let s0 = Instant::now();
    let final_stats = p.stop().unwrap_or_else(|e| fail(e));
    let stop_s = s0.elapsed().as_secs_f64();
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
    println!(
        "{n} interpreters created and dropped in {:.1} s; live {} retired {} (at stop: retired {})",
        t0.elapsed().as_secs_f64(),
        stats.interpreters_live,
        stats.interpreters_retired,
        final_stats.interpreters_retired
    );
    println!("id of one more interpreter registered after them: {max_id}");
    println!(
        "RSS: {rss0:.1} MB before start, {rss_started:.1} MB started, {rss_end:.1} MB after the churn; stop() {stop_s:.3} s"
    );
}

fn main() {
    let a = parse_args();
    if let Some(n) = a.drop_interpreters {
        drop_interpreters(n, a.freq);
        return;
    }
    let out = a.out.clone().map_or_else(
        || std::env::temp_dir().join(format!("churn-{}.data", std::process::id())),
        std::path::PathBuf::from,
    );
    let rss0 = rss_mb();
    let mut p = Profiler::builder()
        .frequency(a.freq)
        .output(&out)
        .start()
        .unwrap_or_else(|e| fail(e));
    let rss_started = rss_mb();
    let lifetime = Duration::from_secs_f64(a.interpreters as f64 / a.gens_per_sec);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(a.interpreters as usize + 1));
    let gens = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for k in 0..a.interpreters {
        let pc = p
            .new_interpreter(Some(&format!("interp-{k}")))
            .unwrap_or_else(|e| fail(e));
        let (h, stop, start, gens) = (p.handle(), stop.clone(), start.clone(), gens.clone());
        let cfg = (a.slots, lifetime, k);
        threads.push(thread::spawn(move || {
            interpreter(k, h, pc, cfg, stop, start, gens)
        }));
    }
    start.wait();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(a.seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let ran = t0.elapsed().as_secs_f64();
    let rss_end = rss_mb();
    let s0 = Instant::now();
    let stopped = p.stop();
    let stop_s = s0.elapsed().as_secs_f64();
    let rss_stopped = rss_mb();
    // A stop that failed (the writer not done within its time limit) still
    // carries the statistics; the file then lacks its summary.
    let stats = match stopped {
        Ok(stats) => stats,
        Err(e) => {
            println!("stop() failed: {e}");
            e.stats().cloned().unwrap_or_else(|| fail(e))
        }
    };
    let Checked {
        read,
        wrong,
        early,
        unresolved,
    } = check(&out, a.slots);
    if a.out.is_none() {
        let _ = std::fs::remove_file(&out);
    }
    let generations = gens.load(Ordering::Relaxed);
    println!(
        "{generations} generations in {ran:.1} s ({:.0}/s), {} interpreters, {} addresses each",
        generations as f64 / ran,
        a.interpreters,
        a.slots
    );
    println!(
        "samples: taken {} written {} dropped {} ({:.1} %); read back {read}",
        stats.samples_taken,
        stats.samples_written,
        stats.samples_dropped,
        100.0 * stats.samples_dropped as f64 / stats.samples_taken.max(1) as f64
    );
    println!(
        "misattributed {wrong} ({:.3} %), unresolved {unresolved}; \
         stamped before their load (given to it by the nearest-time rule) {early}",
        100.0 * wrong as f64 / read.max(1) as f64
    );
    println!(
        "stop() {stop_s:.3} s; RSS {rss0:.1} MB before start, {rss_started:.1} MB started, \
         {rss_end:.1} MB at the end, {rss_stopped:.1} MB after stop; writer CPU {:.2} s",
        stats.writer_cpu_ns as f64 / 1e9
    );
}
