//! Messages of the timing thread: the ticker's and the sampler's public
//! messages, and the steps only the supervisor and the registry send.
//!
//! - [`TickerMsg`] and [`SamplerMsg`] are what embedders send (through the
//!   actors' faces, `ractor::call!`); the thread's mailbox wraps them in
//!   [`TimingMsg`] beside the internal messages, which cannot be built
//!   outside this crate.
//! - [`TimingMailbox`] is the thread's lock-free mailbox with its doorbell.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::clock::{Clock, Nanos};
use crate::error::Error;
use crate::messages::registry::RegistryMsg;
use crate::pc::{ActivityChunk, Source};

/// Messages of the ticker actor.
#[derive(Debug)]
pub enum TickerMsg {
    /// Change the rate (1..=1_000_000 Hz); out-of-range values are refused
    /// with an error in the reply.
    SetRate(u32, RpcReplyPort<Result<(), String>>),
    /// Stop emitting commands until [`TickerMsg::Resume`].
    Pause,
    /// Start again, the first deadline one period from now.
    Resume,
    /// Counters of the ticker and sampler.
    GetStats(RpcReplyPort<TimingStats>),
}

/// One sample command: read every PC now, for this deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleCommand {
    /// Sequence number of the tick (1-based, counting taken ticks).
    pub seq: u64,
    /// The deadline, in ns since the clock's epoch.
    pub deadline: Nanos,
}

/// Messages of the sampler actor.
#[derive(Debug)]
pub enum SamplerMsg {
    /// Hand the current batch to the writer now (replies once handed over).
    Flush(RpcReplyPort<()>),
    /// Counters of the ticker and sampler.
    GetStats(RpcReplyPort<TimingStats>),
}

/// Messages to the timing thread.
pub(crate) enum TimingMsg {
    /// A message of the ticker's face (or the supervisor's).
    Ticker(TickerMsg),
    /// A message of the sampler's face (or the supervisor's).
    Sampler(SamplerMsg),
    /// A new interpreter to sample, from the registry.
    AddInterpreter { id: u32, source: Source },
    /// A new interpreter on the activity protocol: its id is its slot in
    /// the bitmap, whose chunk comes along.
    AddOnDemand {
        id: u32,
        source: Source,
        chunk: Arc<ActivityChunk>,
    },
    /// Where to report retired interpreters (the registry starts after the
    /// timing thread, since it needs this mailbox).
    SetRegistry(ractor::ActorRef<RegistryMsg>),
    /// The first step of the ordered shutdown: no more ticks.
    StopTicking(RpcReplyPort<TimingStats>),
    /// The second step: hand over the last batch, close the mailbox, exit.
    Drain(RpcReplyPort<TimingStats>),
}

impl std::fmt::Debug for TimingMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimingMsg::Ticker(m) => write!(f, "Ticker({m:?})"),
            TimingMsg::Sampler(m) => write!(f, "Sampler({m:?})"),
            TimingMsg::AddInterpreter { id, .. } => write!(f, "AddInterpreter({id})"),
            TimingMsg::AddOnDemand { id, .. } => write!(f, "AddOnDemand({id})"),
            TimingMsg::SetRegistry(_) => f.write_str("SetRegistry"),
            TimingMsg::StopTicking(_) => f.write_str("StopTicking"),
            TimingMsg::Drain(_) => f.write_str("Drain"),
        }
    }
}

/// Counters of the ticker and the sampler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingStats {
    /// Current rate in hertz.
    pub frequency_hz: u32,
    /// Whether ticks are being emitted.
    pub running: bool,
    /// Time spent running, in ns.
    pub elapsed_ns: u64,
    /// Deadlines that came while running.
    pub ticks_scheduled: u64,
    /// Deadlines at which PCs were read.
    pub ticks_taken: u64,
    /// Deadlines skipped.
    pub ticks_missed: u64,
    /// Samples read.
    pub samples_taken: u64,
    /// Samples dropped for lack of a free buffer.
    pub samples_dropped: u64,
    /// Batches handed to the writer.
    pub batches_sent: u64,
    /// Batches dropped.
    pub batches_dropped: u64,
    /// Lateness percentiles and maximum, in ns.
    pub lateness_p50_ns: u64,
    /// 99th percentile of lateness, in ns.
    pub lateness_p99_ns: u64,
    /// Largest lateness, in ns.
    pub lateness_max_ns: u64,
    /// Interpreters being sampled.
    pub interpreters_live: u64,
    /// Scheduling in force on the timing thread.
    pub scheduling: String,
    /// CPU time of the timing thread, in ns.
    pub cpu_ns: u64,
    /// Shadow-stack reads given up as torn (kept as truncated stacks).
    pub stack_reads_torn: u64,
    /// Stacks too deep for a whole batch's frame arena (kept as truncated).
    pub stacks_cut: u64,
    /// Batch buffers in circulation between sampler and writer (the pool
    /// grows with the interpreters registered).
    #[serde(default)]
    pub batch_buffers: u64,
}

/// Sends to the timing thread and wakes it.
#[derive(Clone, Debug)]
pub struct TimingMailbox {
    pub(crate) tx: UnboundedSender<TimingMsg>,
    pub(crate) thread: Thread,
    /// The doorbell: raised after each send. What the timing thread checks
    /// before each sleep instead of polling the queue: one flag in one cache
    /// line, where the queue's poll reads three or four (a tick starts with
    /// cold caches, at about 0.1 µs a line on a VM). The thread lowers it
    /// before draining the queue, so a message is never left waiting for the
    /// next one; the count of mailboxes sharing it (the `Arc`'s, in the same
    /// line) tells the thread when every sender is gone.
    pub(crate) doorbell: Arc<AtomicBool>,
    /// The clock the thread sleeps on, which wakes it ([`Clock::wake`]): a
    /// virtual clock then counts it awake until it sleeps again.
    pub(crate) clock: Arc<dyn Clock>,
}

impl TimingMailbox {
    pub(crate) fn send(&self, msg: TimingMsg) -> Result<(), Error> {
        self.tx
            .send(msg)
            .map_err(|_| Error::actor("sampler", "the timing thread has exited"))?;
        self.doorbell.store(true, Ordering::Release);
        self.clock.wake(&self.thread);
        Ok(())
    }
}
