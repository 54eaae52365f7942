//! A live "top" of bytecode: runs the bundled Pulley workload and, every
//! second, asks the running profiler for its hottest functions through actor
//! messages (`ractor::call!` on the supervisor), as an async embedder would.
//!
//! ```text
//! cargo run --release --example live_top -- 5    # seconds (default 5)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pcprof::Profiler;
use pcprof::pulley::ProfiledVm;
use pcprof::pulley::workload::{DemoProgram, Scratch};
use pcprof::supervisor::SupervisorMsg;
use pulley_interpreter::interp::Vm;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("seconds: {s:?} is not a whole number"))?,
        None => 5,
    };
    let out = std::env::temp_dir().join(format!("pcprof-live-top-{}.data", std::process::id()));
    let mut profiler = Profiler::builder().output(&out).start()?;
    let program = Arc::new(DemoProgram::new());
    for (name, body) in program.function_bodies() {
        profiler.register_function(name, body)?;
    }

    // The workload: two interpreter threads.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..2 {
        let (program, stop, handle) = (program.clone(), stop.clone(), profiler.handle());
        workers.push(std::thread::spawn(move || -> Result<(), String> {
            let vm = Vm::new().map_err(|_| "out of memory".to_string())?;
            let mut vm = ProfiledVm::new(vm, &handle, Some(&format!("interp-{i}")))
                .map_err(|e| e.to_string())?;
            let mut scratch = Scratch::new();
            while !stop.load(Ordering::Relaxed) {
                vm.busy(|vm| program.run_once(vm, &mut scratch))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }));
    }

    // The monitor: an async task talking to the supervisor actor.
    let supervisor = profiler.supervisor().clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        for second in 1..=seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let stats = ractor::call!(supervisor, SupervisorMsg::GetStats)??;
            let hot = ractor::call!(supervisor, SupervisorMsg::GetHotFunctions, 5)??;
            println!(
                "--- {second:>3} s: {} samples, {:.0} Hz, p99 lateness {:.0} µs, {} missed",
                stats.samples_taken,
                stats.achieved_hz(),
                stats.lateness_p99_ns as f64 / 1e3,
                stats.ticks_missed
            );
            for f in hot {
                let bar = "#".repeat((f.share * 40.0).round() as usize);
                println!("  {:6.2}%  {:<10} {bar}", f.share * 100.0, f.name);
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().map_err(|_| "a worker panicked")??;
    }
    let stats = profiler.stop()?;
    println!("{} samples in {}", stats.samples_written, out.display());
    Ok(())
}
