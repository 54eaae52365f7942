//! Analysis of recorded profiles (native or Pulley format).
//!
//! - [`profile`]: one streaming pass aggregates a file into functions,
//!   per-instruction counts, interpreters and a timeline.
//! - The subcommands of the `pcprof` binary are library functions here, so
//!   embedders can call them.

pub mod profile;

pub use profile::{FunctionProfile, LoadOptions, Profile, load};
