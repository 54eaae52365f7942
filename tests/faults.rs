//! Faults: errors reach `stop` as values, never panics; memory stays bounded
//! when the writer cannot keep up; configuration errors name the culprit.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pcprof::{ErrorKind, Format, Profiler, VirtualClock};

use crate::common::{TempDir, start_virtual};

/// A sink that accepts `limit` bytes, then fails like a full disk.
struct FailAfter {
    limit: usize,
    written: Arc<AtomicUsize>,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let so_far = self.written.load(Ordering::Relaxed);
        if so_far + buf.len() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left (test)",
            ));
        }
        self.written.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_error_reaches_stop_without_panic() {
    let clock = VirtualClock::new();
    let written = Arc::new(AtomicUsize::new(0));
    let mut p = Profiler::builder()
        .flush_every(2)
        .output_writer(FailAfter {
            limit: 200,
            written: written.clone(),
        })
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    let code = vec![0u8; 100];
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[0]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(50));
    // The embedder keeps running: queries still answer, and `flush` reports
    // the broken output with the numbers beside it. (`flush` has the writer
    // take every batch sent so far first; `stats` alone may be answered
    // before it has.)
    let broken = p.flush().unwrap_err();
    assert!(broken.to_string().contains("no space left"), "{broken}");
    let live = broken
        .stats()
        .expect("flush's error carries the statistics");
    assert_eq!(live.errors, 1);
    assert!(
        live.first_error
            .as_deref()
            .unwrap_or("")
            .contains("no space left")
    );
    let err = p.stop().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Io {
                operation: "write",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("<writer>"), "{err}");
    // The final numbers survive the fault: 50 ticks of one interpreter were
    // taken; what was not written is counted as dropped.
    let last = err
        .stats()
        .expect("stop's error carries the final statistics");
    assert_eq!(last.samples_taken, 50);
    assert_eq!(last.samples_written + last.samples_dropped, 50);
    assert!(last.samples_dropped > 0);
    assert_eq!(p.final_stats(), Some(last));
    // Stopping again returns the same error.
    assert!(p.stop().is_err());
}

#[test]
fn full_disk_is_an_error_not_a_panic() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not Linux
    };
    // The header is written at start: a full disk is reported there, as a
    // value naming the output.
    let err = Profiler::builder().output_writer(full).start().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Io {
                operation: "write",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("No space left"), "{err}");
}

#[test]
fn existing_output_is_never_overwritten() {
    let dir = TempDir::new("exists");
    let path = dir.path("p.data");
    std::fs::write(&path, b"precious").unwrap();
    let err = Profiler::builder().output(&path).start().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::OutputExists { .. }));
    assert!(err.to_string().contains(path.to_str().unwrap()));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");

    let missing = dir.path("no/such/dir/p.data");
    let err = Profiler::builder().output(&missing).start().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Io {
                operation: "create",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no/such/dir/p.data"), "{err}");
}

#[test]
fn bad_configuration_names_variable_and_value() {
    for (var, value) in [
        ("PULLEY_SAMPLING_FREQ", "0"),
        ("PULLEY_SAMPLING_FREQ", "2000000"),
        ("PULLEY_SAMPLING_FREQ", "ten"),
        ("PULLEY_SAMPLING_FLUSH_AMT", "0"),
        ("PCPROF_FORMAT", "xml"),
    ] {
        let err = Profiler::builder()
            .env_from(|k| (k == var).then(|| value.to_string()))
            .map(|_| ())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(var) && msg.contains(value), "{msg}");
    }
    let err = Profiler::builder().frequency(0).start().unwrap_err();
    assert!(err.to_string().contains("frequency_hz"), "{err}");
    let b = Profiler::builder()
        .env_from(|k| match k {
            "PULLEY_SAMPLING_FREQ" => Some("250".into()),
            "PCPROF_FORMAT" => Some("pulley".into()),
            _ => None,
        })
        .unwrap();
    assert_eq!(b.config().frequency_hz, 250);
    assert_eq!(b.config().format, Format::Pulley);
}

/// A sink that blocks while the gate is closed, like a stalled disk.
struct Gate(Arc<(Mutex<bool>, Condvar)>, Arc<AtomicBool>);

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.1.load(Ordering::Relaxed) {
            let (lock, cv) = &*self.0;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn slow_writer_drops_and_counts_instead_of_queueing() {
    let clock = VirtualClock::new();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let armed = Arc::new(AtomicBool::new(false));
    let mut p = Profiler::builder()
        .flush_every(4)
        .buffers(2)
        .output_writer(Gate(gate.clone(), armed.clone()))
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    let code = [0u8; 8];
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[1]);
    p.sync().unwrap();
    // The pool grew from 2 to hold 100 ms of this interpreter's samples:
    // 100 samples, 25 batches of 4, and the one being filled. Asked before
    // the gate is armed: stats are the writer's too, and an armed gate
    // holds the writer in its next write (a flush it makes on its own
    // included), which no query may wait behind.
    assert_eq!(p.stats().unwrap().batch_buffers, 26);
    armed.store(true, Ordering::Relaxed);
    // 400 samples, 100 batches; the writer is stuck on the first one and
    // only 26 buffers exist, so all but about 100 ms must be dropped.
    clock.advance(Duration::from_millis(400));
    let (lock, cv) = &*gate;
    *lock.lock().unwrap() = true;
    cv.notify_all();
    let s = p.stop().unwrap();
    assert_eq!(s.samples_taken, 400);
    assert_eq!(s.samples_written + s.samples_dropped, 400);
    assert!(s.samples_dropped >= 400 - 26 * 4, "{s:?}");
    assert!(s.batches_dropped >= 100 - 26, "{s:?}");
    assert_eq!(s.batch_buffers, 26);
}

#[test]
fn a_failed_actor_stops_the_rest_in_order_and_keeps_the_data() {
    let dir = TempDir::new("killed");
    let path = dir.path("p.data");
    let (clock, mut p) =
        start_virtual(Profiler::builder().output(&path).flush_every(3).buffers(64));
    let code = [0u8; 8];
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[2]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(10));
    p.registry().kill();
    // The supervisor notices and shuts down at once (stats then report
    // the failure); stop returns it.
    let mut waited = 0;
    while p.stats().map_or(0, |s| s.errors) == 0 {
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
        assert!(waited < 10_000, "the supervisor never noticed");
    }
    let err = p.stop().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Actor {
                actor: "registry",
                ..
            }
        ),
        "{err}"
    );
    // What was recorded is on disk, summary included.
    let c = crate::common::read_all(&std::fs::read(&path).unwrap()).unwrap();
    assert!(c.error.is_none(), "{:?}", c.error);
    assert_eq!(c.samples.len(), 10);
    let summary = c.summary.expect("summary");
    assert_eq!(summary.stats.errors, 1);
    assert!(summary.stats.first_error.unwrap().contains("registry"));
    drop(h);
}
