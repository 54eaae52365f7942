//! Analysis of recorded profiles (native or Pulley format).
//!
//! - [`profile`]: one streaming pass aggregates a file into functions,
//!   per-instruction counts, interpreters and a timeline.
//! - [`html`]: a self-contained HTML report; [`convert`]: exports (Firefox
//!   Profiler, speedscope, collapsed stacks) and Pulley/native re-encoding;
//!   [`output`]: how they write, never over an input or a special file.
//! - [`calltree`]: the top-down call tree of a profile with call stacks,
//!   and the callers and callees of one function.
//! - [`report`]: the text report; [`sequences`]: hot instruction
//!   sequences (macro-instruction candidates); [`diff`]: two profiles
//!   compared per function and instruction.
//! - [`merge`]: many profiles into one native file; [`suite`]: several
//!   files analysed as one (merged on the fly), and sequences across
//!   programs.
//! - [`text`]: escaping and number formats shared by all of them.
//! - The subcommands of the `pcprof` binary are library functions here, so
//!   embedders can call them.

pub mod calltree;
pub mod convert;
pub mod diff;
pub mod html;
pub mod merge;
pub mod output;
pub mod profile;
pub mod report;
pub mod sequences;
pub mod suite;
#[cfg(feature = "pulley")]
pub mod tables;
pub mod text;

pub use profile::{
    Frame, FunctionProfile, LoadOptions, PathNode, Profile, Registration, StackLeaf, StackTree,
    TIMELINE_FUNCTIONS_PER_CELL, Timeline, TimelineCell, TimelineFunction, load, load_bytes,
    load_reader,
};
