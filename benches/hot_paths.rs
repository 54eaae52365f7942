//! Criterion benchmarks of pcprof's hot paths.
//!
//! - `pc_store`: the interpreter's whole per-instruction cost, one relaxed
//!   store through [`PcHandle::set`].
//! - `tick/N`: one tick of the timing thread once awake (ticker fires, the
//!   sampler reads N PCs, records lateness, appends to the batch, hands full
//!   batches over), through the hidden `pcprof_actors::bench::Tick`.
//! - `encode_batch`: [`EncodedBatch::encode`] of a 20000-sample batch (the
//!   default flush), 4 interpreters stepping through 4 KiB of code.
//! - `decode_file`: reading a native file of 100 such batches back with
//!   [`ProfileReader`].
//!
//! Run: `cargo bench --bench hot_paths` (figures in BENCHMARKS.md).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pcprof_actors::bench::Tick;
use pcprof_actors::format::EncodedBatch;
use pcprof_actors::{Event, PcHandle, ProfileReader, Sample};

const BATCH: usize = 20_000;

/// A batch as the sampler makes it: 4 interpreters, one tick every 1 ms,
/// each interpreter a few instructions further at each tick.
fn batch() -> Vec<Sample> {
    let mut out = Vec::with_capacity(BATCH);
    let mut t = 1_000_000u64;
    let mut pcs = [0x1000u64, 0x3000, 0x5000, 0x7000];
    while out.len() < BATCH {
        for (i, pc) in pcs.iter_mut().enumerate() {
            *pc = 0x1000 + 0x2000 * i as u64 + (*pc + 4 * (i as u64 + 3)) % 4096;
            out.push(Sample {
                time_ns: t,
                interp: i as u32,
                pc: *pc,
                stack: 0,
            });
        }
        t += 1_000_000;
    }
    out
}

fn pc_store(c: &mut Criterion) {
    let pc = PcHandle::new();
    let mut g = c.benchmark_group("pc_store");
    g.throughput(Throughput::Elements(1024));
    g.bench_function("set_x1024", |b| {
        b.iter(|| {
            for off in 0..1024usize {
                pc.set(black_box(0x1000 + 4 * off));
            }
        })
    });
    g.finish();
}

fn tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("tick");
    for n in [1usize, 4, 16, 256] {
        let mut t = Tick::new(n, BATCH);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| b.iter(|| black_box(t.tick())));
        assert_eq!(t.dropped(), 0, "the bench must not drop samples");
    }
    g.finish();
    // 2 executing among thousands registered and idle (PC 0).
    let mut g = c.benchmark_group("tick_idle");
    for idle in [98usize, 998, 9998] {
        let mut t = Tick::with_idle(2, idle, BATCH);
        g.throughput(Throughput::Elements(idle as u64 + 2));
        g.bench_function(format!("2+{idle}"), |b| b.iter(|| black_box(t.tick())));
        assert_eq!(t.dropped(), 0, "the bench must not drop samples");
    }
    g.finish();
    // The same on the activity protocol: the idle ones have left.
    let mut g = c.benchmark_group("tick_idle_on_demand");
    for idle in [98usize, 998, 9998] {
        let mut t = Tick::with_idle_on_demand(2, idle, BATCH);
        g.throughput(Throughput::Elements(idle as u64 + 2));
        g.bench_function(format!("2+{idle}"), |b| b.iter(|| black_box(t.tick())));
        assert_eq!(t.dropped(), 0, "the bench must not drop samples");
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let samples = batch();
    let mut g = c.benchmark_group("encode_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("20000", |b| {
        b.iter(|| black_box(EncodedBatch::encode(black_box(&samples))))
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    // The file is written with the encoder the profiler's writer uses, so
    // the figure is the reader's alone, without threads or sleeping.
    let dir = std::env::temp_dir().join(format!("pcprof-bench-decode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("decode_file skipped: cannot create {}: {e}", dir.display());
        return;
    }
    let path = dir.join("profile.data");
    let samples = batch();
    let batches = 100u64;
    let mut encoder = match std::fs::File::create(&path) {
        Ok(f) => pcprof_actors::format::Encoder::native(
            std::io::BufWriter::new(f),
            &pcprof_actors::format::FileHeader {
                pcprof_version: "bench".into(),
                pid: 0,
                started_unix_ns: 0,
                frequency_hz: 1000,
                flush_samples: BATCH as u32,
                clock: "monotonic".into(),
            },
        ),
        Err(e) => {
            eprintln!("decode_file skipped: {e}");
            return;
        }
    };
    let written = match &mut encoder {
        Ok(enc) => (0..batches).all(|_| enc.write_samples(&samples).is_ok()),
        Err(_) => false,
    };
    drop(encoder);
    if !written {
        eprintln!("decode_file skipped: cannot write {}", path.display());
        return;
    }
    let mut g = c.benchmark_group("decode_file");
    g.throughput(Throughput::Elements(batches * BATCH as u64));
    g.sample_size(20);
    g.bench_function("100x20000", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut n = 0usize;
                if let Ok(reader) = ProfileReader::open(&path) {
                    for event in reader.flatten() {
                        if let Event::Samples(s) = event {
                            n += s.len();
                        }
                    }
                }
                assert_eq!(n as u64, batches * BATCH as u64);
                n
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tick over 4 interpreters with shadow stacks, by depth: unchanged
/// stacks (the snapshot is reused) and stacks popped and pushed between
/// ticks (every frame read again, a new arena entry).
fn tick_stack(c: &mut Criterion) {
    let mut g = c.benchmark_group("tick_stack");
    for depth in [1, 16, 64, 256] {
        let mut t = Tick::with_stacks(4, BATCH, depth);
        g.bench_function(format!("same/{depth}"), |b| b.iter(|| black_box(t.tick())));
        let mut t = Tick::with_stacks(4, BATCH, depth);
        g.bench_function(format!("changed/{depth}"), |b| {
            b.iter(|| black_box(t.tick_after_return()))
        });
    }
    g.finish();
}

criterion_group!(benches, pc_store, tick, tick_stack, encode, decode);
criterion_main!(benches);
