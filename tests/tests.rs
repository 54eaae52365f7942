//! pcprof's integration tests, one binary (fast to link) with one module per
//! subject.

/// Shared helpers: temp paths, event recorder, file readers.
mod common;
/// The recording runtime: virtual-clock counts, shutdown order, formats,
/// faults, concurrency.
mod recording;
