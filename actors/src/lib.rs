//! pcprof's recording runtime: the actors that turn interpreter PCs into a
//! profile on disk.
//!
//! - An interpreter publishes its PC in a [`PcHandle`] (one relaxed store an
//!   instruction); that cell is the only memory shared with the profiler.
//! - Five actors own everything else and talk by messages: the **registry**
//!   (interpreters and bytecode), the **ticker** (absolute deadlines on a
//!   dedicated thread), the **sampler** (reads PCs, batches samples; on the
//!   ticker's thread), the **writer** (serialises on its own thread) and the
//!   **supervisor** (start, watch, ordered shutdown).
//! - [`Profiler`] is the entry point; [`ProfileReader`] reads what it wrote,
//!   in pcprof's native format or Pulley's.
//!
//! ```no_run
//! let mut profiler = pcprof_actors::Profiler::start()?; // env + defaults
//! let pc = profiler.new_interpreter(Some("main"))?;
//! let code = vec![0u8; 64];
//! profiler.register_function("f", &code)?;
//! for i in 0..code.len() {
//!     pc.set_ptr(&code[i]); // before each instruction
//! }
//! pc.set_idle();
//! let stats = profiler.stop()?;
//! # Ok::<(), pcprof_actors::Error>(())
//! ```
#![warn(missing_docs, missing_debug_implementations)]
// The design notes in public docs link the private constants and modules
// they explain; `cargo doc --document-private-items` resolves them.
#![allow(rustdoc::private_intra_doc_links)]

#[cfg(test)]
mod alloc_count;
#[doc(hidden)]
pub mod bench;
pub mod clock;
pub mod config;
pub mod error;
pub mod face;
pub mod format;
pub mod isa;
pub mod messages;
pub mod pc;
mod profiler;
pub mod registry;
pub mod resolve;
pub mod sampler;
pub mod stack;
pub mod stats;
pub mod supervisor;
mod sys;
pub mod tee;
pub mod ticker;
pub mod timing;
pub mod watch;
pub mod writer;

pub use clock::{Clock, MonotonicClock, Nanos, VirtualClock};
pub use config::{Config, Output, SamplingMode, Scheduling, SpinPolicy};
pub use error::{Error, ErrorKind};
pub use format::{Event, Format, ProfileReader, ReadError, Sample};
pub use isa::{InstructionSet, ListingBuilder};
pub use pc::{
    Activity, ActivityGuard, Entered, NOT_EXECUTING, OnDemandPc, PcHandle, PcReader, PcSource,
};
pub use profiler::{Profiler, ProfilerBuilder, ProfilerHandle};
pub use resolve::{Hit, Resolver};
pub use stack::{StackHandle, StackReader};
pub use stats::Stats;
pub use tee::{Tee, TeeReporter, TeeStream};
pub use writer::HotFunction;

/// Re-exported so embedders use the same ractor as the actors.
pub use ractor;
