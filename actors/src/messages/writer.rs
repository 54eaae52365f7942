//! Messages of the writer thread, and its answers.
//!
//! - [`WriterMsg`] is what embedders send (through the writer's face,
//!   `ractor::call!`); the thread's inbox wraps it in [`WriterCmd`] beside
//!   the records and the shutdown step, which cannot be built outside this
//!   crate.

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::format::Record;
use crate::stats::Stats;

/// A function and the samples that fell in it so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HotFunction {
    /// Name.
    pub name: String,
    /// Address.
    pub addr: u64,
    /// Samples in it.
    pub samples: u64,
    /// Share of all samples written, in [0, 1].
    pub share: f64,
}

/// Counters of the writer.
#[derive(Clone, Debug, Default)]
pub struct WriterStats {
    /// Samples written.
    pub samples_written: u64,
    /// Samples not written because the output had failed.
    pub samples_dropped: u64,
    /// Batches written.
    pub batches_written: u64,
    /// Bytes in the output.
    pub bytes_written: u64,
    /// CPU time of the writer thread, in ns.
    pub cpu_ns: u64,
    /// Errors counted.
    pub errors: u64,
    /// The first error.
    pub first_error: Option<Error>,
    /// Intervals pushed by a tee's consumer (continuous profiling).
    pub push_intervals_pushed: u64,
    /// Intervals it dropped.
    pub push_intervals_dropped: u64,
    /// Chunks of the output it fell too far behind to take.
    pub push_chunks_dropped: u64,
}

/// Messages of the writer actor (queries).
#[derive(Debug)]
pub enum WriterMsg {
    /// Write out everything received so far, flush the output, and answer
    /// the counters.
    Flush(RpcReplyPort<WriterStats>),
    /// Counters.
    GetStats(RpcReplyPort<WriterStats>),
    /// The `n` functions with the most samples written so far (each
    /// generation of code its own entry). Exact for `n` up to
    /// [`HOT_DEAD_KEPT`](crate::writer::HOT_DEAD_KEPT): the writer keeps
    /// the live functions and only that many of the hottest unloaded ones.
    GetHotFunctions(usize, RpcReplyPort<Vec<HotFunction>>),
}

/// Messages to the writer thread.
// A summary's statistics are the large variant; records are the many, and
// boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum WriterCmd {
    /// A record from the registry or the supervisor.
    Record(Record),
    /// A query (the face's, or the supervisor's).
    Query(WriterMsg),
    /// The third step of the ordered shutdown: drain, write the summary
    /// (these statistics completed with the writer's own), flush, sync, exit.
    Finish {
        stats: Box<Stats>,
        stopped_ns: u64,
        reply: RpcReplyPort<WriterStats>,
    },
}

impl std::fmt::Debug for WriterCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterCmd::Record(r) => write!(f, "Record({})", r.kind()),
            WriterCmd::Query(q) => write!(f, "Query({q:?})"),
            WriterCmd::Finish { .. } => f.write_str("Finish"),
        }
    }
}
