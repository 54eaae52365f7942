//! Stopping pcprof cleanly on Ctrl-C or SIGTERM in an embedding program,
//! the way `pcprof demo` does it.
//!
//! The default action of SIGINT and SIGTERM kills the process before
//! `Profiler::stop` can write the file's summary. With `signal-hook`:
//!
//! 1. the first signal only sets flags (async-signal-safe, no thread); the
//!    program notices, stops its interpreters, calls `profiler.stop()` (the
//!    summary is written and the file synced) and exits with the shell's
//!    convention, 128 + the signal (130 for Ctrl-C, 143 for SIGTERM);
//! 2. a second signal, if the clean stop is stuck, `_exit`s at once: the
//!    file keeps whatever the writer had flushed.
//!
//! ```text
//! cargo run --release --example signals      # then press Ctrl-C
//! cargo run --release -- report pcprof-signals.data
//! ```
//!
//! It needs `signal-hook = { version = "0.4", default-features = false }`
//! in the embedder's own dependencies; pcprof's runtime does not pull it.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use signal_hook::consts::signal::{SIGINT, SIGTERM};

/// Installs the handlers; the returned cell holds the first signal's
/// number (0 until one arrives).
fn stop_on_signals() -> std::io::Result<Arc<AtomicUsize>> {
    let armed = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM] {
        // The order matters: per signal, the handlers run in registration
        // order, so the first signal finds `armed` false (no exit), then
        // arms it; the second finds it armed and exits.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&armed))?;
        signal_hook::flag::register(signal, Arc::clone(&armed))?;
        signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize)?;
    }
    Ok(received)
}

/// A stand-in for an interpreter: walks its bytecode, publishing the PC of
/// each "instruction" before executing it, until told to stop.
fn interpret(code: &[u8], pc: &pcprof::PcHandle, stop: &AtomicBool) -> u64 {
    let mut acc = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for (i, op) in code.iter().enumerate() {
            pc.set_ptr(&code[i]);
            acc = acc.wrapping_mul(31).wrapping_add(u64::from(*op));
        }
    }
    pc.set_idle();
    acc
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from("pcprof-signals.data");
    if out.exists() {
        return Err(format!("{} exists; remove it first", out.display()).into());
    }
    // Before the profiler starts: from then on a signal must not kill the
    // process with the file half-written.
    let received = stop_on_signals()?;
    let mut profiler = pcprof::Profiler::builder().output(&out).start()?;
    let code: Arc<[u8]> = (0..=255u8).collect::<Vec<_>>().into();
    profiler.register_function("loop", &code)?;

    let stop = Arc::new(AtomicBool::new(false));
    let pc = profiler.new_interpreter(Some("worker"))?;
    let worker = {
        let (code, stop) = (Arc::clone(&code), Arc::clone(&stop));
        std::thread::spawn(move || interpret(&code, &pc, &stop))
    };
    eprintln!(
        "profiling to {} until Ctrl-C or SIGTERM (pid {})",
        out.display(),
        std::process::id()
    );
    // Poll: the handlers only set flags, so the work happens here.
    while received.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let signal = received.load(Ordering::SeqCst) as i32;
    eprintln!("signal {signal}: stopping (a second one exits at once)");

    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
    let stats = profiler.stop()?; // writes the summary, syncs the file
    println!(
        "{} samples in {:.1} s written to {}",
        stats.samples_written,
        stats.elapsed_ns as f64 / 1e9,
        out.display()
    );
    Ok(ExitCode::from((128 + signal) as u8))
}
