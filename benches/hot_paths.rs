//! Criterion benchmarks of pcprof's hot paths (placeholder).
fn main() {}
