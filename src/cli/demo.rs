//! `pcprof demo`: the main job. Records real Pulley bytecode on several
//! interpreter threads under the profiler's default settings, then prints
//! the report and says what to run next.
//!
//! - The workload is [`pcprof::pulley::workload::DemoProgram`]: functions
//!   assembled with Pulley's own encoder, called from a host loop; every
//!   run's checksum is verified, so a profile of wrong code cannot pass.
//! - Each thread owns a `Vm` wrapped in a [`ProfiledVm`], so it is sampled
//!   only while bytecode runs.
//! - Progress (a bar with live sample counts) only on a terminal.
//! - Ctrl-C or SIGTERM ends the recording early but cleanly: the threads
//!   stop, the summary is written, the report printed, and the exit status
//!   is the shell's convention (130, 143); a second one exits at once
//!   ([`super::interrupt`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pcprof::analysis::text::counted;
use pcprof::pulley::ProfiledVm;
use pcprof::pulley::workload::{DemoProgram, Scratch, expected_checksum};
use pcprof::{Format, Profiler};
use pulley_interpreter::interp::Vm;

use super::CliResult;
use super::interrupt::Interrupt;

/// Arguments of `pcprof demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to record, in seconds.
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Interpreter threads running the workload.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Sampling rate in Hz [default: $PULLEY_SAMPLING_FREQ, else 1000].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub freq: Option<u32>,
    /// Output file [default: $PCPROF_OUT, else ./pulley-<pid>.data].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format: native or pulley [default: $PCPROF_FORMAT, else native].
    #[arg(long)]
    pub format: Option<Format>,
    /// Report: functions under this share (%) are left out, instructions
    /// under it are not annotated.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Report: show each function's disassembly.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub instructions: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            seconds: 3.0,
            threads: 2,
            freq: None,
            out: None,
            format: None,
            threshold: 0.5,
            instructions: true,
        }
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.01..=3600.0).contains(&v) {
        return Err(format!("{v} s is outside 0.01..=3600"));
    }
    Ok(v)
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> CliResult {
    let interrupt =
        Interrupt::install().map_err(|e| format!("cannot handle SIGINT and SIGTERM: {e}"))?;
    let mut builder = Profiler::builder().env()?;
    if let Some(out) = &args.out {
        builder = builder.output(out);
    }
    if let Some(format) = args.format {
        builder = builder.format(format);
    }
    if let Some(hz) = args.freq {
        builder = builder.frequency(hz);
    }
    let program = Arc::new(DemoProgram::new());
    let mut profiler = builder.start()?;
    let path = profiler
        .output_path()
        .map(|p| p.to_path_buf())
        .ok_or("the demo writes to a file")?;
    for (name, body) in program.function_bodies() {
        profiler.register_function(name, body)?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for i in 0..args.threads {
        let (program, stop, runs) = (Arc::clone(&program), Arc::clone(&stop), Arc::clone(&runs));
        // Registered here, one after another, so that interpreter `i` of the
        // profile is the thread named `interp-{i}` (registering from each
        // thread would number them in whatever order they start).
        let name = format!("interp-{i}");
        let vm = Vm::new().map_err(|_| "out of memory creating a Pulley Vm".to_string())?;
        let mut vm = ProfiledVm::new(vm, &profiler.handle(), Some(&name))?;
        threads.push(std::thread::Builder::new().name(name.clone()).spawn(
            move || -> Result<(), String> {
                let mut scratch = Scratch::new();
                let expected = expected_checksum();
                while !stop.load(Ordering::Relaxed) {
                    let sum = vm
                        .busy(|vm| program.run_once(vm, &mut scratch))
                        .map_err(|e| format!("{name}: {e}"))?;
                    if sum != expected {
                        return Err(format!("{name}: checksum {sum:#x}, expected {expected:#x}"));
                    }
                    runs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            },
        )?);
    }

    let started = Instant::now();
    let total = Duration::from_secs_f64(args.seconds);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("recording {bar:30} {elapsed}/{msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if bar.is_none() {
        eprintln!(
            "recording {:.1} s of the Pulley demo on {} threads to {} ...",
            args.seconds,
            args.threads,
            path.display()
        );
    }
    while started.elapsed() < total && interrupt.received().is_none() {
        std::thread::sleep(Duration::from_millis(100).min(total.saturating_sub(started.elapsed())));
        if let Some(bar) = &bar {
            bar.set_position(started.elapsed().as_millis() as u64);
            if let Ok(s) = profiler.stats() {
                bar.set_message(format!(
                    "{:.1}s  {}",
                    args.seconds,
                    counted(s.samples_taken, "sample")
                ));
            }
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(signal) = interrupt.received() {
        eprintln!(
            "pcprof: interrupted by {} after {:.1} s: stopping and writing the summary \
             (a second one exits at once)",
            signal.name(),
            started.elapsed().as_secs_f64()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("an interpreter thread panicked".to_string()),
        }
    }
    let stats = profiler.stop()?;
    if let Some(e) = failure {
        return Err(e.into());
    }

    print_report(&path, args.threshold, args.instructions)?;

    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!();
    println!(
        "recorded {} in {:.1} s on {} ({} Hz asked, {:.1} achieved, {} missed, \
         lateness p99 {:.0} µs); {}, every checksum correct",
        counted(stats.samples_written, "sample"),
        stats.elapsed_ns as f64 / 1e9,
        counted(u64::from(args.threads), "thread"),
        stats.frequency_hz,
        stats.achieved_hz(),
        counted(stats.ticks_missed, "tick"),
        stats.lateness_p99_ns as f64 / 1e3,
        counted(runs.load(Ordering::Relaxed), "workload run"),
    );
    let shown = path.display();
    println!("profile: {shown} ({bytes} bytes)");
    println!(
        "next:    pcprof report {shown}      # this report again (--threshold, --top, --interp)"
    );
    println!("         pcprof html {shown}        # an HTML report to open in a browser");
    println!(
        "         pcprof sequences {shown}   # hot instruction sequences: macro-instruction candidates"
    );
    println!(
        "more:    pcprof demo --seconds 10 --threads 4 --freq 5000   # longer, more threads, \
         another rate (--format pulley: Pulley's own format)"
    );
    if let Some(signal) = interrupt.received() {
        eprintln!(
            "pcprof: interrupted by {}; {shown} is complete up to then",
            signal.name()
        );
        return Ok(signal.exit_code());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the report of the recorded profile, as `pcprof report` would.
fn print_report(
    path: &std::path::Path,
    threshold: f64,
    instructions: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let profile = pcprof::analysis::load(path, &Default::default(), |_| {})?;
    let options = pcprof::analysis::report::ReportOptions {
        threshold,
        instructions,
        color: super::stdout_color(),
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    pcprof::analysis::report::write_report(&mut out, &profile, &options)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}
