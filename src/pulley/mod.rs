//! Support for Wasmtime's Pulley interpreter.
//!
//! - [`adapter`]: profile a real `pulley_interpreter::interp::Vm`.
//! - [`disas`]: Pulley's disassembler behind pcprof's decoder trait.
//! - [`workload`]: the bundled demo program of real Pulley bytecode.

pub mod adapter;
pub mod disas;
pub mod workload;

pub use adapter::ProfiledVm;
pub use disas::PulleyDecoder;
