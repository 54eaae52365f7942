//! pcprof: an in-process sampling profiler for bytecode interpreters.
//!
//! - Native profilers show an interpreter's dispatch loop, not which
//!   *bytecode* is hot. pcprof samples the program counter each interpreter
//!   publishes and records it with the bytecode it points into.
//! - Recording is done by the actors of [`pcprof_actors`], re-exported here:
//!   start a [`Profiler`], give each interpreter a [`PcHandle`], register
//!   bytecode, stop.
//! - Analysis reads native and Pulley files alike ([`analysis`]): hot
//!   functions and instructions with disassembly, hot instruction sequences,
//!   exports, diffs. Bytecode becomes instructions through [`disasm`], which
//!   also picks the decoder for all of them.
//! - The `push` feature sends pprof profiles to Grafana Pyroscope
//!   ([`push`]).
//! - The `pulley` feature adds an adapter for Wasmtime's Pulley interpreter
//!   and its disassembler.
#![warn(missing_docs, missing_debug_implementations)]

pub use pcprof_actors::*;

pub mod analysis;
pub mod disasm;
#[cfg(feature = "pulley")]
pub mod pulley;
#[cfg(feature = "push")]
pub mod push;

/// The README's code is compiled as a doctest, so its embedding snippet
/// cannot rot (`cargo test --doc`, with or without default features).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
