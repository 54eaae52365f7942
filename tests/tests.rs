//! pcprof's integration tests, one binary (fast to link) with one module per
//! subject.

/// Recording under churn: generations at reused addresses, ids reused.
mod churn;
/// Shared helpers: temp paths, event recorder, file readers.
mod common;
/// Continuous profiling: a running profiler pushing each interval to a
/// loopback stand-in of Pyroscope.
mod continuous;
/// `pcprof convert`: each export checked against what its consumer needs.
mod convert;
/// `pcprof demo` end to end.
mod demo;
/// `pcprof diff`.
mod diff;
/// Faults: writer errors, bad paths, bad configuration, bounded memory.
mod faults;
/// Both file formats: round trips, Pulley compatibility, torn files.
mod formats;
/// The fuzz corpus replayed through the fuzz harness.
mod fuzz_corpus;
/// `pcprof html`, driven in headless Chromium.
mod html;
/// Self-describing profiles: an instruction set recorded in the file.
mod isa;
/// `pcprof merge` and suites: several files as one profile.
mod merge;
/// Outputs never replace an input or a special file; truncated and corrupt
/// inputs fail every analysis command after its output.
mod outputs;
/// `pcprof convert --to pprof`, decoded and read by `go tool pprof`.
mod pprof;
/// The Pulley adapter on the real interpreter.
mod pulley_adapter;
/// Pushing to Grafana Pyroscope, against a loopback stand-in server.
mod push;
/// Profiles shaped like real programs': Wasmtime's fixture, big code,
/// many threads' tallies.
mod real;
/// The recording runtime: virtual-clock counts, shutdown order, formats,
/// faults, concurrency.
mod recording;
/// Durability under kill -9, a facade that never hangs, supervision of
/// every thread.
mod reliability;
/// `pcprof report`: shares, disassembly, thresholds, bad files.
mod report;
/// Sampling tells the truth: no aliasing by default, shares that match
/// known instruction costs.
mod sampling;
/// Analysis at scale: streamed Pulley sections, reused interpreter ids, a
/// sparse timeline, exports from memory.
mod scale;
/// `pcprof sequences`: hot-sequence mining.
mod sequences;
/// Ctrl-C and SIGTERM during `pcprof demo`.
mod signals;
/// Call stacks end to end: shadow stacks recorded and read back against a
/// known program.
mod stacks;
/// Inside tokio, and many interpreters coming and going while sampling.
mod threads;
/// The timeline: which function ran when, and no times for Pulley files.
mod timeline;
/// Every native format version loads: a fixture of each, exact figures.
mod versions;
/// Call-stack views: exports with stacks, call tree, callers and callees,
/// inferno.
mod views;
