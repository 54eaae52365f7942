//! Writes a large synthetic profile for benchmarking the analysis commands
//! against Pulley's `profiler-html` example.
//!
//! - Eight functions of real Pulley bytecode (the seven of the bundled demo
//!   plus a copy of `sieve`), laid out back to back from address `0x10000`,
//!   so both pcprof and `profiler-html` can disassemble every function.
//! - Samples land on instruction starts only (`profiler-html` asserts so),
//!   drawn with a fixed xorshift seed: deterministic output. Like a real
//!   profile they come in phases: every 256 samples one function is picked
//!   by weight (30/20/15/10/10/8/5/2 %), and within it instructions are
//!   skewed towards a few hot ones.
//! - Written in records of 20 000 samples (`--record N`: Wasmtime's agent
//!   writes long runs in records of 1 000 000) with
//!   `pcprof::format::Encoder`.
//! - `--case NAME` writes instead one of the crafted files of issue 11
//!   (`examples/crafted/mod.rs`: `large-ids`, `interpreters`,
//!   `interleaved`, `generations`, `pulley-records`), small but hard for
//!   an analysis that is not linear; `--samples N` scales each (default:
//!   the full size of the issue).
//!
//! ```text
//! cargo run --release --example gen_profile -- /tmp/big.pulley \
//!     [--samples 50000000] [--seed 1] [--native] [--record 20000]
//! cargo run --release --example gen_profile -- /tmp/c.pcprof --case interleaved
//! ```

use std::process::ExitCode;

#[cfg(feature = "pulley")]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::BufWriter;

    use pcprof::disasm::InstructionDecoder;
    use pcprof::format::{Encoder, FileHeader, FunctionRecord, Record, Sample};
    use pcprof::pulley::PulleyDecoder;
    use pcprof::pulley::workload::DemoProgram;

    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut samples: u64 = 50_000_000;
    let mut seed: u64 = 1;
    let mut native = false;
    let mut record: usize = 20_000;
    let mut case = None;
    let mut samples_given = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--samples" => {
                samples = args.next().ok_or("--samples N")?.parse()?;
                samples_given = true;
            }
            "--record" => record = args.next().ok_or("--record N")?.parse::<usize>()?.max(1),
            "--case" => case = Some(args.next().ok_or("--case NAME")?),
            "--seed" => seed = args.next().ok_or("--seed S")?.parse()?,
            "--native" => native = true,
            _ if out.is_none() => out = Some(a),
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    let out = out.ok_or(
        "usage: gen_profile OUT [--samples N] [--seed S] [--native] [--record N] [--case NAME]",
    )?;
    if let Some(case) = case {
        let file = std::fs::File::create(&out).map_err(|e| format!("{out}: {e}"))?;
        let mut sink = BufWriter::with_capacity(1 << 20, file);
        let bytes = crafted::write(&mut sink, &case, samples_given.then_some(samples))?;
        std::io::Write::flush(&mut sink)?;
        eprintln!("{out}: {bytes} bytes, case {case}");
        return Ok(());
    }

    let program = DemoProgram::new();
    let mut bodies: Vec<(String, Vec<u8>)> = program
        .function_bodies()
        .map(|(n, b)| (n.to_string(), b.to_vec()))
        .collect();
    if let Some((_, sieve)) = bodies.iter().find(|(n, _)| n == "sieve") {
        bodies.push(("sieve2".to_string(), sieve.clone()));
    }
    let weights = [30u64, 20, 15, 10, 10, 8, 5, 2];
    let mut addr = 0x10000u64;
    let mut funcs = Vec::new(); // (addr, instruction offsets)
    let file = std::fs::File::create(&out).map_err(|e| format!("{out}: {e}"))?;
    let sink = BufWriter::with_capacity(1 << 20, file);
    let mut enc = if native {
        Encoder::native(
            sink,
            &FileHeader {
                pcprof_version: "gen".to_string(),
                pid: 0,
                started_unix_ns: 0,
                frequency_hz: 1000,
                flush_samples: 20_000,
                clock: "virtual".to_string(),
            },
        )?
    } else {
        Encoder::pulley(sink)
    };
    for (name, code) in &bodies {
        let offsets: Vec<u64> = PulleyDecoder
            .decode(code)
            .iter()
            .map(|i| u64::from(i.offset))
            .collect();
        enc.write(&Record::Function(FunctionRecord {
            addr,
            name: name.clone(),
            code: code.clone(),
            loaded_ns: 0,
            listing: None,
        }))?;
        funcs.push((addr, offsets));
        addr += code.len() as u64 + 16;
    }
    let total_w: u64 = weights.iter().take(funcs.len()).sum();
    let mut x = seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut batch: Vec<Sample> = Vec::with_capacity(record.min(1 << 24));
    let mut current = 0usize;
    for k in 0..samples {
        if k % 256 == 0 {
            let mut r = next() % total_w;
            current = 0;
            for (i, w) in weights.iter().take(funcs.len()).enumerate() {
                if r < *w {
                    current = i;
                    break;
                }
                r -= w;
            }
        }
        let (base, offsets) = &funcs[current];
        // Skewed towards the first instructions of a random window: the
        // minimum of two draws.
        let n = offsets.len() as u64;
        let i = (next() % n).min(next() % n) as usize;
        batch.push(Sample {
            time_ns: k * 1000,
            interp: 0,
            pc: base + offsets[i],
        });
        if batch.len() == record {
            enc.write_samples(&batch)?;
            batch.clear();
        }
    }
    enc.write_samples(&batch)?;
    std::io::Write::flush(enc.get_mut())?;
    eprintln!("{out}: {} bytes, {samples} samples", enc.bytes_written());
    Ok(())
}

/// The crafted files of issue 11 (shared with `benches/analysis_scale.rs`).
#[cfg(feature = "pulley")]
#[path = "crafted/mod.rs"]
mod crafted;

#[cfg(not(feature = "pulley"))]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    Err("gen_profile needs the `pulley` feature".into())
}

fn main() -> ExitCode {
    // Actor transitions, when asked for: RUST_LOG=pcprof_actors=trace.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_profile: error: {e}");
            ExitCode::FAILURE
        }
    }
}
