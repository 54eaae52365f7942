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
//! - `--functions N` lays out N functions (the eight bodies in turn, named
//!   `sieve#3` and so on past the eighth); `--hop` picks a new function for
//!   every sample, as a real program's samples move between functions, by a
//!   skewed draw (the product of two uniform draws, so low indices are hot
//!   and every function can be hit); `--code-bytes B` repeats each body to
//!   make the functions' code B bytes in all, and `--big B` makes the first
//!   function B bytes (and hot: about 3 samples in 10 fall in it). The shape of the Yosys profile (issue 19):
//!   `--functions 54649 --code-bytes 136000000 --big 23500000 --samples 9335
//!   --hop`.
//! - `--stacks D` (with `--native`) gives every sample a call stack of 0 to
//!   D callers (call sites at the start of functions drawn like the
//!   samples' own), a new stack with each new function: the shape of a
//!   program's phases, for the call-stack views.
//! - `--case NAME` writes instead one of the crafted files of issue 11
//!   (`examples/crafted/mod.rs`: `large-ids`, `interpreters`,
//!   `interleaved`, `generations`, `pulley-records`), small but hard for
//!   an analysis that is not linear; `--samples N` scales each (default:
//!   the full size of the issue).
//!
//! ```text
//! cargo run --release --example gen_profile -- /tmp/big.pulley \
//!     [--samples 50000000] [--seed 1] [--native] [--record 20000] \
//!     [--functions 8] [--hop] [--code-bytes B] [--big B] [--stacks D]
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
    let mut functions: usize = 8;
    let mut hop = false;
    let mut code_bytes: Option<u64> = None;
    let mut big: Option<u64> = None;
    let mut stacks: u64 = 0;
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
            "--hop" => hop = true,
            "--functions" => {
                functions = args.next().ok_or("--functions N")?.parse::<usize>()?.max(1)
            }
            "--code-bytes" => code_bytes = Some(args.next().ok_or("--code-bytes B")?.parse()?),
            "--big" => big = Some(args.next().ok_or("--big B")?.parse()?),
            "--stacks" => stacks = args.next().ok_or("--stacks D")?.parse()?,
            _ if out.is_none() => out = Some(a),
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    let out = out.ok_or(
        "usage: gen_profile OUT [--samples N] [--seed S] [--native] [--record N] [--case NAME] \
         [--functions N] [--hop] [--code-bytes B] [--big B] [--stacks D]",
    )?;
    if stacks > 0 && !native {
        return Err("--stacks needs --native (the Pulley format has no stacks)".into());
    }
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
    let body_offsets: Vec<Vec<u64>> = bodies
        .iter()
        .map(|(_, code)| {
            PulleyDecoder
                .decode(code)
                .iter()
                .map(|i| u64::from(i.offset))
                .collect()
        })
        .collect();
    let weights = [30u64, 20, 15, 10, 10, 8, 5, 2];
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
    // Repeats of its body per function: the first is `--big` bytes, the
    // others share what `--code-bytes` leaves.
    let body_len = |k: usize| bodies[k % bodies.len()].1.len() as u64;
    let small_reps = match code_bytes {
        Some(total) if functions > 1 => {
            let rest = total.saturating_sub(big.unwrap_or(0));
            let per = rest / (functions as u64 - u64::from(big.is_some()));
            let mean_body =
                bodies.iter().map(|b| b.1.len() as u64).sum::<u64>() / bodies.len() as u64;
            (per / mean_body.max(1)).max(1)
        }
        _ => 1,
    };
    let mut addr = 0x10000u64;
    let mut funcs = Vec::with_capacity(functions); // (addr, body, repeats)
    let mut code = Vec::new();
    for k in 0..functions {
        let b = k % bodies.len();
        let reps = match big {
            Some(bytes) if k == 0 => (bytes / body_len(k)).max(1),
            _ => small_reps,
        };
        code.clear();
        for _ in 0..reps {
            code.extend_from_slice(&bodies[b].1);
        }
        let name = if k < bodies.len() {
            bodies[b].0.clone()
        } else {
            format!("{}#{k}", bodies[b].0)
        };
        enc.write(&Record::Function(FunctionRecord {
            addr,
            name,
            code: code.clone(),
            loaded_ns: 0,
            listing: None,
        }))?;
        funcs.push((addr, b, reps));
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
    let n_funcs = funcs.len() as u64;
    let mut frames: Vec<u64> = Vec::new();
    let mut stack = 0u32;
    for k in 0..samples {
        let was = current;
        if hop {
            // A new function every sample, skewed: the product of two
            // uniform draws over the functions.
            let was = current;
            while current == was && n_funcs > 1 {
                current = ((next() % n_funcs) * (next() % n_funcs) / n_funcs) as usize;
            }
            // A big function is hot, as the one of Yosys is: 3 samples in 10.
            if big.is_some() && was != 0 && next() % 10 < 3 {
                current = 0;
            }
        } else if k % 256 == 0 {
            let mut r = next() % total_w.max(1);
            current = 0;
            for (i, w) in weights.iter().take(funcs.len()).enumerate() {
                if r < *w {
                    current = i;
                    break;
                }
                r -= w;
            }
        }
        if stacks > 0 && (k == 0 || current != was) {
            frames.clear();
            for _ in 0..next() % (stacks + 1) {
                frames.push(funcs[(next() % n_funcs) as usize].0);
            }
            stack = enc.stacks().stack(&frames, false);
        }
        let (base, b, reps) = funcs[current];
        let offsets = &body_offsets[b];
        // Skewed towards the first instructions of a random window: the
        // minimum of two draws; in a repeated body, a random repeat.
        let n = offsets.len() as u64;
        let i = (next() % n).min(next() % n) as usize;
        let rep = if reps > 1 { next() % reps } else { 0 };
        batch.push(Sample {
            time_ns: k * 1000,
            interp: 0,
            pc: base + rep * bodies[b].1.len() as u64 + offsets[i],
            stack,
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
