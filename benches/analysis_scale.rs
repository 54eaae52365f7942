//! Criterion benchmarks of `analysis::load` on the crafted profiles of
//! issue 11 (`examples/crafted/mod.rs`), at sizes that keep `cargo bench`
//! fast; `gen_profile --case NAME` writes them at full size, and
//! BENCHMARKS.md ("Analysis at scale") has the full-size figures and the
//! commands.
//!
//! Run: `cargo bench --bench analysis_scale`.

use std::hint::black_box;
use std::io::BufWriter;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pcprof::analysis::{LoadOptions, load};

#[path = "../examples/crafted/mod.rs"]
mod crafted;

/// Each case at a bench size.
const SIZES: [(&str, u64); 6] = [
    ("large-ids", 2_000),
    ("interpreters", 50_000),
    ("interleaved", 2_000),
    ("generations", 2_000),
    ("reused-ids", 20_000),
    ("pulley-records", 2_000_000),
];

fn analysis_load(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("pcprof-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut g = c.benchmark_group("analysis_load");
    g.sample_size(10);
    for (case, n) in SIZES {
        let path = dir.join(case);
        let file = std::fs::File::create(&path).expect("bench file");
        let bytes = crafted::write(BufWriter::new(file), case, Some(n)).expect("generate");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("{case}/{n}"), |b| {
            b.iter(|| black_box(load(&path, &LoadOptions::default(), |_| {}).expect("load")))
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, analysis_load);
criterion_main!(benches);
