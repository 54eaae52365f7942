//! Support for Wasmtime's Pulley interpreter.
//!
//! - [`adapter`]: profile a real `pulley_interpreter::interp::Vm`.
//! - [`disas`]: Pulley's disassembler behind pcprof's decoder trait.
//! - [`tables`]: the opcode tables of older Wasmtimes, and detecting which
//!   one wrote a profile's bytecode.
//! - [`workload`]: the bundled demo program of real Pulley bytecode.

pub mod adapter;
pub mod disas;
pub mod tables;
pub mod workload;

pub use adapter::ProfiledVm;
pub use disas::{PulleyDecoder, PulleyTableDecoder};
pub use tables::{PulleyTable, TableDetection, TableEvidence, UnknownPulleyVersion, detect_table};
