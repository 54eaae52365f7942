//! Reliability: what was recorded survives the host's death, and pcprof
//! never hangs, aborts or panics its host.
//!
//! - `kill -9` of a child process that records on a virtual clock: the file
//!   holds exactly the samples of every flush interval that had passed.
//! - The blocking facade from plain threads, a current_thread `block_on` and
//!   multi_thread tasks: a thousand calls each, all answered.
//! - Supervision: a panicking `PcSource` or sink is an error naming the actor
//!   while the rest shuts down in order; a stalled sink is a timeout, never a
//!   hang; a registration racing `stop()` is an error to its caller.

use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pcprof::{ErrorKind, Format, PcHandle, PcSource, Profiler, SamplingMode, VirtualClock};

use crate::common::{TempDir, read_all, start_virtual};

/// Set in the environment of the child process of the kill tests.
const CHILD_OUT: &str = "PCPROF_TEST_KILL_CHILD_OUT";
const CHILD_FORMAT: &str = "PCPROF_TEST_KILL_CHILD_FORMAT";

/// Ticks (1 ms apart) the child records before it is killed; with a 100 ms
/// flush interval, batches seal at ticks 101, 202, ... 1010 (each holds the
/// ticks from its first one to 100 ms later), and ticks 1011..=1050 are still
/// in the sampler's batch when the child dies.
const CHILD_TICKS: u64 = 1050;
const CHILD_DURABLE: u64 = 1010;

/// The child of the kill tests: not a test of its own (it only runs when
/// the parent sets its environment). It records on a virtual clock, waits
/// until the writer has written every sealed batch, says so, and waits to be
/// killed.
#[test]
#[ignore = "the child process of the kill -9 tests"]
fn kill_child() {
    let Some(out) = std::env::var_os(CHILD_OUT) else {
        return;
    };
    let format: Format = std::env::var(CHILD_FORMAT)
        .expect("format set by the parent")
        .parse()
        .expect("a known format");
    let clock = VirtualClock::new();
    let p = Profiler::builder()
        .output(&out)
        .format(format)
        // Far above an interval's 101 samples: batches seal by age only.
        .flush_every(1_000)
        .flush_interval(Duration::from_millis(100))
        // A buffer for each of the 10 batches sealed and the one being
        // filled: virtual time outruns a writer starved of CPU, and a batch
        // with no free buffer is dropped (with the default 4, a loaded
        // machine dropped one now and then, and the writer never caught up).
        .buffers(16)
        // Batches seal at known ticks: deadlines at whole milliseconds.
        .sampling(SamplingMode::Periodic)
        .clock(Arc::new(clock.clone()))
        .start()
        .expect("start");
    let code = vec![0u8; 64];
    p.register_function("f", &code).expect("register");
    let pc = p.new_interpreter(Some("main")).expect("interpreter");
    pc.set_ptr(&code[8]);
    p.sync().expect("sync");
    clock.advance(Duration::from_millis(CHILD_TICKS));
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.stats().expect("stats").samples_written < CHILD_DURABLE {
        assert!(Instant::now() < deadline, "the writer never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let written = p.stats().expect("stats").samples_written;
    // A marker file, renamed into place whole: the parent polls for it.
    let ready = ready_marker(std::path::Path::new(&out));
    std::fs::write(ready.with_extension("tmp"), written.to_string()).expect("marker");
    std::fs::rename(ready.with_extension("tmp"), &ready).expect("marker");
    std::thread::sleep(Duration::from_secs(600));
}

fn ready_marker(out: &std::path::Path) -> std::path::PathBuf {
    out.with_extension("ready")
}

/// Runs [`kill_child`] in a new process, kills it with SIGKILL once it is
/// ready, and returns the file it left.
fn record_then_kill_9(format: Format) -> Vec<u8> {
    let dir = TempDir::new("kill9");
    let out = dir.path("killed.data");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "reliability::kill_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_OUT, &out)
        .env(CHILD_FORMAT, format.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let marker = ready_marker(&out);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        if let Ok(text) = std::fs::read_to_string(&marker) {
            break Some(text);
        }
        if Instant::now() > deadline || child.try_wait().expect("child status").is_some() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap");
    assert_eq!(
        ready.as_deref(),
        Some(&*CHILD_DURABLE.to_string()),
        "the child did not get ready ({status})"
    );
    std::fs::read(&out).expect("the killed child's file")
}

#[test]
fn kill_9_loses_at_most_the_last_flush_interval_native() {
    let bytes = record_then_kill_9(Format::Native);
    let c = read_all(&bytes).expect("a profile");
    // Ends at a record boundary: no torn record, no summary (it was killed).
    assert!(c.error.is_none(), "{:?}", c.error);
    assert!(c.summary.is_none());
    assert_eq!(c.functions.len(), 1);
    assert_eq!(c.interpreters.len(), 1);
    assert_eq!(c.batches, 10);
    let times: Vec<u64> = c.samples.iter().map(|s| s.time_ns).collect();
    let want: Vec<u64> = (1..=CHILD_DURABLE).map(|ms| ms * 1_000_000).collect();
    assert_eq!(times, want);
}

#[test]
fn kill_9_loses_at_most_the_last_flush_interval_pulley() {
    let bytes = record_then_kill_9(Format::Pulley);
    let c = read_all(&bytes).expect("a profile");
    assert!(c.error.is_none(), "{:?}", c.error);
    assert_eq!(c.functions.len(), 1);
    assert_eq!(c.batches, 10);
    assert_eq!(c.samples.len() as u64, CHILD_DURABLE);
    let addr = c.functions[0].addr;
    assert!(c.samples.iter().all(|s| s.pc == addr + 8));
}

/// A flush interval shorter than the batch: batches are handed over by age,
/// and the header and records reach the output before any sample does.
#[test]
fn records_and_header_reach_the_output_before_the_first_batch() {
    let clock = VirtualClock::new();
    let sink = SharedSink::default();
    let p = Profiler::builder()
        .output_writer(sink.clone())
        .flush_every(1_000_000)
        .flush_interval(Duration::from_millis(10))
        .sampling(SamplingMode::Periodic)
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    // The header is in the sink as soon as `start` returns.
    let header_len = sink.flushed_len();
    assert!(header_len > 8, "header flushed at start");
    let code = vec![0u8; 16];
    p.register_function("f", &code).unwrap();
    let pc = p.new_interpreter(None).unwrap();
    pc.set_ptr(&code[0]);
    p.sync().unwrap();
    // The function and interpreter records are flushed without any sample.
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_all(&sink.flushed()).unwrap().interpreters.is_empty() {
        assert!(Instant::now() < deadline, "records never flushed");
        std::thread::sleep(Duration::from_millis(2));
    }
    clock.advance(Duration::from_millis(35));
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_all(&sink.flushed()).unwrap().batches < 3 {
        assert!(Instant::now() < deadline, "batches never flushed");
        std::thread::sleep(Duration::from_millis(2));
    }
    let c = read_all(&sink.flushed()).unwrap();
    // Seals at ticks 11, 22, 33 (each batch: its first tick + 10 ms).
    assert_eq!(c.samples.len(), 33);
    drop(p);
}

/// A sink that counts what was flushed, as the OS would hold it.
#[derive(Clone, Default)]
struct SharedSink {
    pending: Arc<Mutex<Vec<u8>>>,
    flushed: Arc<Mutex<Vec<u8>>>,
}

impl SharedSink {
    fn flushed(&self) -> Vec<u8> {
        self.flushed.lock().unwrap().clone()
    }
    fn flushed_len(&self) -> usize {
        self.flushed.lock().unwrap().len()
    }
}

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut p = self.pending.lock().unwrap();
        self.flushed.lock().unwrap().extend_from_slice(&p);
        p.clear();
        Ok(())
    }
}

/// Registers a 16-byte function "f" and one interpreter executing its first
/// byte, then runs `ms` ticks of 1 ms; returns what must outlive the run.
fn run_one_interpreter(p: &Profiler, clock: &VirtualClock, ms: u64) -> (Vec<u8>, PcHandle) {
    let code = vec![0u8; 16];
    p.register_function("f", &code).unwrap();
    let pc = p.new_interpreter(None).unwrap();
    pc.set_ptr(&code[0]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(ms));
    (code, pc)
}

fn quiet_profiler() -> (Profiler, TempDir) {
    let dir = TempDir::new("facade");
    let p = Profiler::builder()
        .output(dir.path("p.data"))
        .clock(Arc::new(VirtualClock::new()))
        .start()
        .unwrap();
    (p, dir)
}

/// Each completed reply spends tokio's cooperative budget; the facade must
/// not depend on it (it hung after about 130 calls).
#[test]
fn the_facade_answers_a_thousand_calls_from_a_current_thread_block_on() {
    let (mut p, _dir) = quiet_profiler();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answered = rt.block_on(async {
        let mut n = 0;
        for i in 0..1000 {
            match i % 4 {
                0 => assert_eq!(p.stats().unwrap().samples_taken, 0),
                1 => assert!(p.hot_functions(3).unwrap().is_empty()),
                2 => assert!(p.interpreters().unwrap().is_empty()),
                _ => p.sync().unwrap(),
            }
            n += 1;
        }
        n
    });
    assert_eq!(answered, 1000);
    p.stop().unwrap();
}

#[test]
fn the_facade_answers_a_thousand_calls_from_multi_thread_tasks() {
    let (mut p, _dir) = quiet_profiler();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = p.handle();
    let answered = rt.block_on(async move {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let h = handle.clone();
                tokio::spawn(async move {
                    let mut n = 0u32;
                    for _ in 0..100 {
                        h.stats().unwrap();
                        n += 1;
                        tokio::task::yield_now().await;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(answered, 1000);
    p.stop().unwrap();
}

#[test]
fn the_facade_answers_a_thousand_calls_from_plain_threads() {
    let (mut p, _dir) = quiet_profiler();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let h = p.handle();
            std::thread::spawn(move || (0..250).filter(|_| h.stats().is_ok()).count())
        })
        .collect();
    let answered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, 1000);
    p.stop().unwrap();
}

/// A foreign PC source that panics on its `panic_at`-th read.
struct PanickingSource {
    pc: usize,
    reads: AtomicUsize,
    panic_at: usize,
}

impl PcSource for PanickingSource {
    fn pc(&self) -> Option<usize> {
        let n = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.panic_at {
            panic!("test source broke at read {n}");
        }
        Some(self.pc)
    }
    fn is_finished(&self) -> bool {
        false
    }
}

#[test]
fn a_panicking_pc_source_is_an_error_naming_the_sampler_and_the_file_stays_whole() {
    let dir = TempDir::new("panic-source");
    let path = dir.path("p.data");
    let (clock, mut p) = start_virtual(Profiler::builder().output(&path));
    let code = vec![0u8; 16];
    p.register_function("f", &code).unwrap();
    let steady = p.new_interpreter(Some("steady")).unwrap();
    steady.set_ptr(&code[1]);
    p.register_source(
        Some("broken"),
        PanickingSource {
            pc: code.as_ptr() as usize + 2,
            reads: AtomicUsize::new(0),
            panic_at: 6,
        },
    )
    .unwrap();
    p.sync().unwrap();
    // Ticks 1..=5 read both; tick 6 reads the steady one, then panics.
    clock.advance(Duration::from_millis(10));
    let err = p.stop().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Actor {
                actor: "sampler",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("test source broke at read 6"),
        "{err}"
    );
    let stats = err.stats().expect("final statistics");
    assert_eq!(stats.samples_taken, 11);
    assert_eq!(stats.samples_written, 11);
    // The rest shut down in order: every sample and the summary are on disk.
    let c = read_all(&std::fs::read(&path).unwrap()).unwrap();
    assert!(c.error.is_none(), "{:?}", c.error);
    assert_eq!(c.samples.len(), 11);
    let summary = c.summary.expect("summary written");
    assert_eq!(summary.stats.errors, 1);
    assert!(
        summary
            .stats
            .first_error
            .unwrap_or_default()
            .contains("sampler actor: panicked")
    );
}

/// A sink that panics on its `panic_at`-th write (the header is write 1..=3).
struct PanickingSink {
    writes: usize,
    panic_at: usize,
}

impl Write for PanickingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        if self.writes == self.panic_at {
            panic!("test sink broke at write {}", self.writes);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_sink_panicking_while_the_header_is_written_is_an_error_of_start() {
    let err = Profiler::builder()
        .output_writer(PanickingSink {
            writes: 0,
            panic_at: 1,
        })
        .start()
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Actor {
                actor: "writer",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("test sink broke at write 1"),
        "{err}"
    );
}

#[test]
fn a_panicking_sink_is_an_error_naming_the_writer_with_the_numbers_kept() {
    let clock = VirtualClock::new();
    let mut p = Profiler::builder()
        .output_writer(PanickingSink {
            writes: 0,
            panic_at: 6,
        })
        .flush_every(5)
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    let _running = run_one_interpreter(&p, &clock, 20);
    // Queries still answer after the sink's panic.
    let flushed = p.flush().unwrap_err();
    assert!(
        flushed.to_string().contains("writer actor: panicked"),
        "{flushed}"
    );
    let err = p.stop().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Actor {
                actor: "writer",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("test sink broke"), "{err}");
    let stats = err.stats().expect("final statistics");
    assert_eq!(stats.samples_taken, 20);
    assert_eq!(stats.samples_written + stats.samples_dropped, 20);
    assert!(stats.samples_dropped > 0);
}

/// A sink that blocks every write after the header until released.
#[derive(Clone)]
struct StalledSink {
    writes: Arc<AtomicUsize>,
    release: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Write for StalledSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The magic, the version, the header and the sampling record.
        if self.writes.fetch_add(1, Ordering::SeqCst) >= 4 {
            let (lock, cv) = &*self.release;
            let mut released = lock.lock().unwrap();
            while !*released {
                released = cv.wait(released).unwrap();
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_sink_makes_stop_return_a_timeout_never_hang() {
    let sink = StalledSink {
        writes: Arc::new(AtomicUsize::new(0)),
        release: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
    };
    let clock = VirtualClock::new();
    let mut p = Profiler::builder()
        .output_writer(sink.clone())
        // Every step and query of the run waits at most this long, not only
        // the writer's: 2 s keeps the others within it on a loaded machine
        // (a stalled timing thread or registry would fail the test with
        // another timeout), and the stalled writer still times out.
        .actor_timeout(Duration::from_secs(2))
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    // The function record's write stalls the writer thread.
    let _running = run_one_interpreter(&p, &clock, 5);
    let err = p.stop().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout {
                actor: "writer",
                request: "finish",
                ..
            }
        ),
        "{err}"
    );
    let stats = err.stats().expect("final statistics");
    assert_eq!(stats.samples_taken, 5);
    // Stopping again, and dropping, return at once.
    assert!(p.stop().is_err());
    drop(p);
    let (lock, cv) = &*sink.release;
    *lock.lock().unwrap() = true;
    cv.notify_all();
}

#[test]
fn a_registration_racing_stop_is_an_error_to_its_caller_never_an_actor_failure() {
    for round in 0..20 {
        let (mut p, _dir) = quiet_profiler();
        let h = p.handle();
        let go = Arc::new(AtomicBool::new(true));
        let registering = {
            let go = Arc::clone(&go);
            std::thread::spawn(move || {
                let (mut ok, mut refused) = (0u64, 0u64);
                // Registers until told that `stop` has returned, then once
                // more: so a call is refused however the threads were
                // scheduled (a busy machine can hold this thread off for the
                // whole of `stop`, and then none raced it).
                loop {
                    let last = !go.load(Ordering::Acquire);
                    let refused_now = match h.new_interpreter(None) {
                        Ok(_) => {
                            ok += 1;
                            false
                        }
                        Err(e) => {
                            assert!(matches!(e.kind(), ErrorKind::Stopped), "{e}");
                            refused += 1;
                            true
                        }
                    };
                    if last {
                        return (ok, refused, refused_now);
                    }
                }
            })
        };
        // Let some registrations through before stopping.
        while p.stats().unwrap().interpreters_live == 0 {
            std::thread::yield_now();
        }
        let stats = p
            .stop()
            .unwrap_or_else(|e| panic!("round {round}: stop failed: {e}"));
        go.store(false, Ordering::Release);
        let (ok, refused, last_refused) = registering.join().unwrap();
        assert!(
            ok > 0 && refused > 0,
            "round {round}: {ok} ok, {refused} refused"
        );
        assert!(last_refused, "round {round}: registered after stop");
        // Every registration that succeeded was counted.
        assert!(stats.interpreters_live + stats.interpreters_retired <= ok);
        assert!(stats.interpreters_live > 0);
    }
}

#[test]
fn buffers_that_cannot_be_allocated_are_refused_and_no_file_is_made() {
    let dir = TempDir::new("alloc");
    let path = dir.path("p.data");
    let err = Profiler::builder()
        .output(&path)
        .flush_every(10_000_000)
        .buffers(1_000_000)
        .start()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config { .. }), "{err}");
    assert!(err.to_string().contains("buffers × flush_samples"), "{err}");
    assert!(!path.exists());
}

/// A foreign PC source whose reads block until released, as a source
/// that waits on a lock might: the timing thread then answers nothing.
struct BlockingSource {
    /// (entered, released)
    gate: Arc<(Mutex<(bool, bool)>, std::sync::Condvar)>,
}

impl PcSource for BlockingSource {
    fn pc(&self) -> Option<usize> {
        let (lock, cv) = &*self.gate;
        let mut g = lock.lock().unwrap();
        g.0 = true;
        cv.notify_all();
        while !g.1 {
            g = cv.wait(g).unwrap();
        }
        None
    }
    fn is_finished(&self) -> bool {
        false
    }
}

/// `sync` promises that what was sent before it has been handled; when the
/// sampler cannot answer in time that is not known, and `sync` says so
/// rather than returning as if it were. `stats` says which actor was late
/// (it said "the profiler has stopped").
#[test]
fn sync_and_stats_name_an_actor_that_does_not_answer_in_time() {
    let gate = Arc::new((Mutex::new((false, false)), std::sync::Condvar::new()));
    let dir = TempDir::new("sync-timeout");
    let clock = VirtualClock::new();
    let mut p = Profiler::builder()
        .output(dir.path("p.data"))
        // Long enough for every other step on a loaded machine (see the
        // stalled-sink test); the blocked sampler still times out.
        .actor_timeout(Duration::from_secs(2))
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    p.register_source(
        None,
        BlockingSource {
            gate: Arc::clone(&gate),
        },
    )
    .unwrap();
    p.sync().unwrap();
    // The first tick blocks the timing thread in the read (and `advance`,
    // which waits for it to sleep again, with it).
    let ticking = {
        let clock = clock.clone();
        std::thread::spawn(move || clock.advance(Duration::from_millis(1)))
    };
    let (lock, cv) = &*gate;
    let mut g = lock.lock().unwrap();
    while !g.0 {
        g = cv.wait(g).unwrap();
    }
    drop(g);
    for err in [p.sync().unwrap_err(), p.stats().unwrap_err()] {
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Timeout {
                    actor: "sampler",
                    request: "stats",
                    ..
                }
            ),
            "{err}"
        );
    }
    lock.lock().unwrap().1 = true;
    cv.notify_all();
    ticking.join().unwrap();
    // Once the sampler answers again, so do sync and stats.
    p.sync().unwrap();
    assert_eq!(p.stats().unwrap().interpreters_live, 1);
    p.stop().unwrap();
}
