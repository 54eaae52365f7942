//! The `pcprof` command (placeholder until the CLI lands).
fn main() {}
