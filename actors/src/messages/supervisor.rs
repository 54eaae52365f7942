//! Messages of the supervisor: the embedder's entry point.

use ractor::{ActorRef, RpcReplyPort};

use crate::error::Error;
use crate::messages::registry::{FunctionInfo, InterpreterInfo, RegistryMsg};
use crate::messages::timing::{SamplerMsg, TickerMsg};
use crate::messages::writer::{HotFunction, WriterMsg};
use crate::stats::Stats;
use crate::watch::ThreadEvent;

/// References to every actor of a running profiler.
#[derive(Clone, Debug)]
pub struct ActorRefs {
    /// The supervisor.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The registry.
    pub registry: ActorRef<RegistryMsg>,
    /// The ticker.
    pub ticker: ActorRef<TickerMsg>,
    /// The sampler.
    pub sampler: ActorRef<SamplerMsg>,
    /// The writer.
    pub writer: ActorRef<WriterMsg>,
}

/// Messages of the supervisor: the embedder's entry point.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// References to every actor.
    GetRefs(RpcReplyPort<ActorRefs>),
    /// Current statistics of the whole profiler; an error naming the actor
    /// that did not answer in time.
    GetStats(RpcReplyPort<Result<Stats, Error>>),
    /// The live interpreters (retired ones are forgotten; counted in
    /// `GetStats`).
    GetInterpreters(RpcReplyPort<Vec<InterpreterInfo>>),
    /// The live functions (unloaded ones are forgotten; counted in
    /// `GetStats`).
    GetFunctions(RpcReplyPort<Vec<FunctionInfo>>),
    /// The `n` hottest functions so far (hands over the current batch
    /// first, so the answer is up to date).
    GetHotFunctions(usize, RpcReplyPort<Result<Vec<HotFunction>, Error>>),
    /// Hands over the current batch and flushes the output.
    Flush(RpcReplyPort<Result<Stats, Error>>),
    /// Changes the sampling rate.
    SetRate(u32, RpcReplyPort<Result<(), Error>>),
    /// Pauses sampling.
    Pause,
    /// Resumes sampling.
    Resume,
    /// Replies once every message sent to the registry and the timing thread
    /// before this one has been handled; an error if one of them did not
    /// answer in time (then that is not known).
    Sync(RpcReplyPort<Result<(), Error>>),
    /// Ordered shutdown; replies with the final statistics or the first
    /// error (carrying the final statistics), then the supervisor stops.
    Stop(RpcReplyPort<Result<Stats, Error>>),
    /// A report from one of the profiler's own threads (sent by the threads
    /// themselves; it cannot be built outside this crate).
    Thread(ThreadReport),
}

/// A watched thread's report: which actor it hosts, and what happened.
#[derive(Debug)]
pub struct ThreadReport {
    pub(crate) role: &'static str,
    pub(crate) event: ThreadEvent,
}
