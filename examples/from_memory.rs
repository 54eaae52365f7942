//! Records into an embedder's own sink (a buffer in memory) and reports
//! straight from the bytes it received: no temporary file.
//!
//! - `ProfilerBuilder::output_writer` takes any `Write + Send`; here a
//!   shared `Vec<u8>`.
//! - `analysis::load_reader` takes any `Read`; the text report writes to any
//!   `Write`.
//! - `analysis::convert::convert_to_writer` exports from any `Read` to any
//!   `Write`: here collapsed stacks (flame graph lines) to stdout, and the
//!   native bytes re-encoded in Pulley's format, in memory.
//!
//! ```text
//! cargo run --release --example from_memory
//! ```

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pcprof::Profiler;
use pcprof::analysis::convert::{ConvertOptions, ExportFormat, convert_to_writer};
use pcprof::analysis::report::{ReportOptions, write_report};
use pcprof::analysis::{LoadOptions, load_reader};

/// A sink whose bytes the program keeps.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let memory = Memory::default();
    let mut profiler = Profiler::builder()
        .output_writer(memory.clone())
        .frequency(1000)
        .start()?;

    // A toy "interpreter": two functions, one three times hotter.
    let hot = vec![0u8; 32];
    let cold = vec![0u8; 32];
    profiler.register_function("hot", &hot)?;
    profiler.register_function("cold", &cold)?;
    let pc = profiler.new_interpreter(Some("main"))?;
    let until = Instant::now() + Duration::from_millis(300);
    let mut i = 0usize;
    while Instant::now() < until {
        let code = if i % 4 == 3 { &cold } else { &hot };
        for b in code {
            pc.set_ptr(b);
            std::hint::black_box(b);
        }
        i += 1;
    }
    pc.set_idle();
    let stats = profiler.stop()?;

    let bytes = memory.0.lock().map_err(|_| "buffer poisoned")?.clone();
    println!(
        "{} samples, {} bytes in memory",
        stats.samples_written,
        bytes.len()
    );
    let profile = load_reader(&bytes[..], &LoadOptions::default(), |_| {})?;
    write_report(
        &mut io::stdout().lock(),
        &profile,
        &ReportOptions::default(),
    )?;

    // Exports, from the same bytes, to any writer.
    println!("\ncollapsed stacks:");
    let options = ConvertOptions::default();
    convert_to_writer(
        &mut &bytes[..],
        &mut io::stdout().lock(),
        ExportFormat::Collapsed,
        &options,
    )?;
    let mut pulley = Vec::new();
    let report = convert_to_writer(&mut &bytes[..], &mut pulley, ExportFormat::Pulley, &options)?;
    println!(
        "\nin Pulley's format: {} bytes, {} samples, {} functions",
        pulley.len(),
        report.samples,
        report.functions
    );
    Ok(())
}
