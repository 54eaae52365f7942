//! Continuous profiling from an embedder's side: every 10 s the profiler
//! pushes that interval's profile to a Grafana Pyroscope server, labelled
//! with the service and the host, while it writes its file as usual.
//!
//! ```text
//! cargo run --release --features push --example fleet -- http://pyroscope:4040
//! ```
//!
//! Credentials, if the server needs them, come from the environment
//! (`PCPROF_PUSH_TOKEN`, or `PCPROF_PUSH_USER` and `PCPROF_PUSH_PASSWORD`),
//! and only over https (feature `push-tls`).

use std::time::{Duration, Instant};

use pcprof::Profiler;
use pcprof::push::{Continuous, PushTo as _};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or("http://127.0.0.1:4040".into());
    // pcprof: the builder option. A slow or dead server never slows the
    // interpreter nor the file: intervals it cannot take are counted.
    let mut profiler = Profiler::builder()
        .output(format!("fleet-{}.data", std::process::id()))
        .push_to(Continuous::new(url, "fleet-demo").label("host", "demo-1"))?
        .start()?;

    // A toy interpreter: publish the PC before each instruction.
    let code: Vec<u8> = (0..=255).collect();
    profiler.register_function("spin", &code)?;
    let pc = profiler.new_interpreter(Some("main"))?;
    let until = Instant::now() + Duration::from_secs(25);
    let mut x = 0u64;
    while Instant::now() < until {
        for (i, op) in code.iter().enumerate() {
            pc.set_ptr(op);
            x = x.wrapping_mul(31).wrapping_add(i as u64 * u64::from(*op));
        }
    }
    pc.set_idle();

    let stats = profiler.stop()?;
    println!(
        "{} samples; intervals pushed {}, dropped {} ({x:x})",
        stats.samples_written, stats.push_intervals_pushed, stats.push_intervals_dropped
    );
    Ok(())
}
