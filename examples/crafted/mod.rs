//! The crafted profiles of issue 11: small, well-formed (the library's own
//! encoder, correct CRCs), each the worst case of one part of an analysis.
//! Shared by `examples/gen_profile.rs` (`--case NAME`, full sizes) and
//! `benches/analysis_scale.rs` (small sizes).
//!
//! - `large-ids`: interpreter ids near 2^24 (the reader's limit).
//! - `interpreters`: a million distinct interpreters, each registered,
//!   sampled once (late ones late in the run) and retired.
//! - `interleaved`: 80 000 function/sample pairs (a new function, a sample
//!   in it and one in an earlier one).
//! - `generations`: 80 000 generations of code at one address (load, two
//!   samples, unload).
//! - `reused-ids`: one interpreter id registered 200 000 times (the
//!   recorder reuses the lowest free id), one sample and a retirement each.
//! - `pulley-records`: Pulley format, 8 functions, samples in records of
//!   1 000 000 as Wasmtime's agent writes long runs (50 M samples at full
//!   size; `gen_profile` without `--case` writes the same shape with real
//!   Pulley bytecode, for Pulley's own viewer).

use std::io::Write;

use pcprof::format::{
    Encoder, FileHeader, FunctionRecord, InterpreterRecord, Record, RetiredRecord, Sample,
    UnloadRecord,
};

/// Every case, by name.
#[allow(dead_code)]
pub const CASES: [&str; 6] = [
    "large-ids",
    "interpreters",
    "interleaved",
    "generations",
    "reused-ids",
    "pulley-records",
];

/// Writes case `name` to `sink`; `n` overrides its size (ticks,
/// interpreters, pairs, generations, samples). Returns the bytes written.
pub fn write<W: Write>(
    sink: W,
    name: &str,
    n: Option<u64>,
) -> Result<u64, Box<dyn std::error::Error>> {
    let header = FileHeader {
        pcprof_version: "gen".to_string(),
        pid: 0,
        started_unix_ns: 0,
        frequency_hz: 1000,
        flush_samples: 1000,
        clock: "virtual".to_string(),
    };
    let code = vec![0u8; 64];
    let function = |addr: u64, k: u64, loaded_ns: u64| {
        Record::Function(FunctionRecord {
            addr,
            name: format!("f{k}"),
            code: code.clone(),
            loaded_ns,
            listing: None,
        })
    };
    let interp = |id: u32, registered_ns: u64| {
        Record::Interpreter(InterpreterRecord {
            id,
            label: None,
            registered_ns,
        })
    };
    let sample = |time_ns: u64, interp: u32, pc: u64| Sample {
        time_ns,
        interp,
        pc,
        stack: 0,
    };
    if name == "pulley-records" {
        let n = n.unwrap_or(50_000_000);
        let mut enc = Encoder::pulley(sink);
        for k in 0..8u64 {
            enc.write(&function(0x10000 + k * 0x100, k, 0))?;
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut batch = Vec::with_capacity(1 << 20);
        for k in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Phases of 256 samples in one function, as a real profile.
            let f = (k / 256).wrapping_mul(0x9e37_79b9) % 8;
            batch.push(sample(0, 0, 0x10000 + f * 0x100 + x % 64));
            if batch.len() == 1_000_000 {
                enc.write_samples(&batch)?;
                batch.clear();
            }
        }
        enc.write_samples(&batch)?;
        return Ok(enc.bytes_written());
    }
    let mut enc = Encoder::native(sink, &header)?;
    match name {
        // 8 interpreters with ids just under 2^24, one sample each per
        // tick, `n` ticks in batches of 10.
        "large-ids" => {
            let n = n.unwrap_or(2_000);
            let ids: Vec<u32> = (1..=8).map(|k| (1 << 24) - k).collect();
            enc.write(&function(0x1000, 0, 0))?;
            for &id in &ids {
                enc.write(&interp(id, 0))?;
            }
            let mut batch = Vec::new();
            for t in 0..n {
                for (k, &id) in ids.iter().enumerate() {
                    batch.push(sample(t * 1_000_000, id, 0x1000 + (t + k as u64) % 64));
                }
                if t % 10 == 9 {
                    enc.write_samples(&batch)?;
                    batch.clear();
                }
            }
            enc.write_samples(&batch)?;
        }
        "interpreters" => {
            let n = n.unwrap_or(1_000_000);
            enc.write(&function(0x1000, 0, 0))?;
            let mut batch = Vec::new();
            let mut first = 0;
            for k in 0..n {
                let id = u32::try_from(k)?;
                let t = k * 1_000;
                enc.write(&interp(id, t))?;
                batch.push(sample(t + 500, id, 0x1000 + k % 64));
                if batch.len() == 1_000 || k + 1 == n {
                    enc.write_samples(&batch)?;
                    batch.clear();
                    for r in first..=k {
                        enc.write(&Record::Retired(RetiredRecord {
                            id: u32::try_from(r)?,
                            retired_ns: t + 900,
                        }))?;
                    }
                    first = k + 1;
                }
            }
        }
        "interleaved" => {
            let n = n.unwrap_or(80_000);
            for k in 0..n {
                let t = k * 1_000_000;
                let addr = 0x10_0000 + k * 64;
                enc.write(&function(addr, k, t))?;
                enc.write_samples(&[
                    sample(t + 1, 0, addr + k % 64),
                    sample(t + 2, 0, 0x10_0000 + (k * 7919 % (k + 1)) * 64),
                ])?;
            }
        }
        "generations" => {
            let n = n.unwrap_or(80_000);
            for k in 0..n {
                let t = k * 1_000_000;
                enc.write(&function(0x1000, k, t))?;
                enc.write_samples(&[sample(t + 1, 0, 0x1000 + k % 64), sample(t + 2, 0, 0x1000)])?;
                enc.write(&Record::Unload(UnloadRecord {
                    addr: 0x1000,
                    unloaded_ns: t + 3,
                }))?;
            }
        }
        "reused-ids" => {
            let n = n.unwrap_or(200_000);
            enc.write(&function(0x1000, 0, 0))?;
            for k in 0..n {
                let t = k * 1_000;
                enc.write(&interp(0, t + 1))?;
                enc.write_samples(&[sample(t + 2, 0, 0x1000 + k % 64)])?;
                enc.write(&Record::Retired(RetiredRecord {
                    id: 0,
                    retired_ns: t + 3,
                }))?;
            }
        }
        other => {
            return Err(format!("unknown case {other:?} (one of {})", CASES.join(", ")).into());
        }
    }
    Ok(enc.bytes_written())
}
