//! Bytes per sample of the native format's sample records, version 2
//! against version 3, with and without call stacks, on a recorded file's
//! own samples (its batches as stored) or on a synthetic many-interpreter
//! run.
//!
//! ```text
//! cargo run --release --example sample_bytes -- FILE
//! cargo run --release --example sample_bytes -- --parked 10000   # 1 kHz, 10 000 interpreters on a PC each
//! ```
//!
//! Each batch is written alone through the library's encoder, frame and
//! all: version 2 (`Samples`), version 3 without stacks (`Batch`), version
//! 3 with them (`Batch` plus the `Stacks` records that introduce them, the
//! stacks re-interned in file order as the writer interns them).

use pcprof::ProfileReader;
use pcprof::format::{Encoder, Event, FileHeader, Sample, StackNode};

fn header() -> FileHeader {
    FileHeader {
        pcprof_version: String::new(),
        pid: 0,
        started_unix_ns: 0,
        frequency_hz: 0,
        flush_samples: 0,
        clock: String::new(),
    }
}

/// Bytes of the sample records per version, summed over the batches.
#[derive(Default)]
struct Totals {
    samples: u64,
    stacked: u64,
    v2: u64,
    v3_flat: u64,
    v3_stacks: u64,
}

/// The three encoders, each into memory (only the byte counts matter).
struct Encoders {
    v2: Encoder<Vec<u8>>,
    v3: Encoder<Vec<u8>>,
    v3s: Encoder<Vec<u8>>,
}

impl Encoders {
    /// One batch as stored, and with its stacks re-interned (`stacked`).
    fn count(
        &mut self,
        t: &mut Totals,
        batch: &[Sample],
        stacked: &[Sample],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let flat: Vec<Sample> = batch.iter().map(|s| Sample { stack: 0, ..*s }).collect();
        t.samples += batch.len() as u64;
        t.stacked += batch.iter().filter(|s| s.stack != 0).count() as u64;
        t.v2 += self.v2.write_samples(&flat)?;
        t.v3_flat += self.v3.write_samples(&flat)?;
        t.v3_stacks += self.v3s.write_samples(stacked)?;
        // Only the counts matter: keep the memory flat.
        self.v2.get_mut().clear();
        self.v3.get_mut().clear();
        self.v3s.get_mut().clear();
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut t = Totals::default();
    let mut e = Encoders {
        v2: Encoder::native_version(Vec::new(), &header(), 2)?,
        v3: Encoder::native(Vec::new(), &header())?,
        v3s: Encoder::native(Vec::new(), &header())?,
    };
    if args.first().map(String::as_str) == Some("--parked") {
        let n: u32 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
        // 1 kHz, every interpreter parked on its own PC, read in id order;
        // batches of 20 000 samples (the default flush).
        let mut batch = Vec::new();
        for tick in 0..(200_000 / n as u64).max(2) {
            for i in 0..n {
                batch.push(Sample {
                    time_ns: tick * 1_000_000 + (tick * 7919) % 40_000,
                    interp: i,
                    pc: 0x10_0000 + u64::from(i) * 64,
                    stack: 0,
                });
                if batch.len() == 20_000 {
                    e.count(&mut t, &batch, &batch)?;
                    batch.clear();
                }
            }
        }
        if !batch.is_empty() {
            e.count(&mut t, &batch, &batch)?;
        }
        println!("synthetic: 1 kHz, {n} parked interpreters");
    } else {
        let path = args
            .first()
            .ok_or("usage: sample_bytes FILE | --parked N")?;
        let reader = ProfileReader::open(path)?;
        // The file's stacks, by id - 1: (parent, frame).
        let mut nodes: Vec<(u32, u64)> = Vec::new();
        let mut frames = Vec::new();
        for ev in reader {
            match ev? {
                Event::Stacks(new) => {
                    nodes.extend(new.iter().map(|n: &StackNode| (n.parent, n.frame)))
                }
                Event::Samples(batch) => {
                    let mut stacked = batch.clone();
                    for s in stacked.iter_mut().filter(|s| s.stack != 0) {
                        frames.clear();
                        let mut at = s.stack;
                        while let Some(&(parent, frame)) =
                            at.checked_sub(1).and_then(|k| nodes.get(k as usize))
                        {
                            frames.push(frame);
                            at = parent;
                        }
                        let mut id = 0;
                        for &f in frames.iter().rev() {
                            id = e.v3s.stacks().node(id, f);
                        }
                        s.stack = id;
                    }
                    e.count(&mut t, &batch, &stacked)?;
                }
                _ => {}
            }
        }
        println!("{path}");
    }
    let per = |b: u64| b as f64 / t.samples.max(1) as f64;
    println!(
        "{} samples ({} with a stack): bytes per sample, frames included: \
         version 2 {:.2}, version 3 {:.2} without stacks, {:.2} with them",
        t.samples,
        t.stacked,
        per(t.v2),
        per(t.v3_flat),
        per(t.v3_stacks)
    );
    Ok(())
}
