//! The supervisor actor: starts the others, watches them, stops them in
//! order.
//!
//! - Start: the timing thread (ticker + sampler), the registry, the writer
//!   thread, then the actor faces, all linked to the supervisor.
//! - Ordered shutdown, on `Stop` or when an actor fails: ticker stops
//!   ticking → sampler hands over its last batch (the timing thread exits) →
//!   writer drains, writes the summary, flushes and syncs (its thread exits)
//!   → registry stops. Each step is a `supervisor.shutdown` event.
//! - The shutdown talks to the threads' mailboxes directly rather than
//!   through the faces, so a failed face cannot keep data from the disk.
//! - The result (final statistics, or the first error) is kept: stopping
//!   twice returns it twice.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{debug, trace, warn};

use crate::clock::Clock;
use crate::config::{SamplingMode, Scheduling};
use crate::error::Error;
use crate::face::{Face, FaceState};
use crate::format::{Encoder, RateRecord, Record, SampleBuffer};
use crate::messages::registry::{RegistryCounts, RegistryMsg};
pub use crate::messages::supervisor::{ActorRefs, SupervisorMsg, ThreadReport};
use crate::messages::timing::{SamplerMsg, TickerMsg, TimingMailbox, TimingMsg, TimingStats};
use crate::messages::writer::{WriterCmd, WriterMsg, WriterStats};
use crate::registry::{RegistryActor, RegistryArgs};
use crate::sampler::{SamplerCore, pool_channel};
use crate::stats::Stats;
use crate::ticker::TickerCore;
use crate::timing::TimingThread;
use crate::watch::{ThreadEvent, Watch};
use crate::writer::{Sink, WriterThread};

/// What the supervisor starts with.
pub struct SupervisorArgs {
    pub(crate) encoder: Encoder<Sink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) frequency_hz: u32,
    pub(crate) flush_samples: u32,
    pub(crate) flush_interval_ns: u64,
    /// The batch buffers, allocated by the caller of `start` (where a
    /// failure is an error, not an abort); the first is the sampler's.
    pub(crate) buffers: Vec<SampleBuffer>,
    /// The most buffers the pool may grow to ([`crate::config::Config::max_buffers`]).
    pub(crate) max_buffers: usize,
    pub(crate) actor_timeout: Duration,
    pub(crate) scheduling: Scheduling,
    pub(crate) sampling: SamplingMode,
    pub(crate) instruction_set: Option<Arc<dyn crate::isa::InstructionSet>>,
    pub(crate) dispatch: tracing::Dispatch,
}

impl std::fmt::Debug for SupervisorArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorArgs")
            .field("frequency_hz", &self.frequency_hz)
            .field("flush_samples", &self.flush_samples)
            .finish_non_exhaustive()
    }
}

/// The supervisor actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupervisorActor;

/// State of the supervisor.
pub struct SupervisorState {
    /// Every actor's reference (handed to the facade).
    refs: ActorRefs,
    /// Direct line to the timing thread, for the shutdown protocol.
    timing: TimingMailbox,
    /// Direct line to the writer thread, for the shutdown protocol.
    writer_inbox: flume::Sender<WriterCmd>,
    /// The timing thread, joined at the end of the shutdown's second step.
    timing_join: Option<JoinHandle<()>>,
    /// The writer thread, joined at the end of the shutdown's third step.
    writer_join: Option<JoinHandle<()>>,
    /// The profiler's clock (stop time).
    clock: Arc<dyn Clock>,
    /// How long any actor has to answer a step or a query.
    timeout: Duration,
    /// Errors seen so far (supervision events, failed steps).
    errors: Vec<Error>,
    /// Set once the shutdown has run; kept for every later `Stop` (an
    /// error carries the final statistics too).
    result: Option<Result<Stats, Error>>,
}

impl std::fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorState")
            .field("errors", &self.errors.len())
            .field("stopped", &self.result.is_some())
            .finish_non_exhaustive()
    }
}

/// Sends a request with a reply port and waits for the answer, at most
/// `limit`: a stalled actor is an error, never a hang.
async fn ask<T: Send + 'static>(
    role: &'static str,
    request: &'static str,
    limit: Duration,
    send: impl FnOnce(RpcReplyPort<T>) -> Result<(), Error>,
) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    send(tx.into())?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(Error::actor(
            role,
            format!("stopped without answering {request}"),
        )),
        Err(_) => {
            warn!(name: "supervisor.timeout", actor = role, request, limit_ms = limit.as_millis() as u64);
            Err(Error::timeout(role, request, limit))
        }
    }
}

/// The writer thread's inbox is closed: the thread has exited.
fn writer_gone<T>(_: flume::SendError<T>) -> Error {
    Error::actor("writer", "the writer thread has exited")
}

/// Spawns the face of a thread-hosted actor, linked to the supervisor.
async fn spawn_face<M>(
    role: &'static str,
    forward: impl Fn(M) -> Result<(), Error> + Send + Sync + 'static,
    supervisor: ActorCell,
) -> Result<ActorRef<M>, ActorProcessingErr>
where
    M: ractor::Message + std::fmt::Debug,
{
    let state = FaceState::new(role, Arc::new(forward));
    let (face, _) = Actor::spawn_linked(None, Face::<M>::new(), state, supervisor).await?;
    Ok(face)
}

/// Joins a thread that said it is exiting, waiting at most `limit` without
/// blocking the runtime; a thread still running then is left detached.
async fn join_within(
    role: &'static str,
    join: JoinHandle<()>,
    limit: Duration,
) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + limit;
    while !join.is_finished() {
        if std::time::Instant::now() >= deadline {
            return Err(Error::timeout(role, "exit", limit));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    join.join()
        .map_err(|_| Error::actor(role, "its thread panicked"))
}

fn merge(t: &TimingStats, c: &RegistryCounts, w: Option<&WriterStats>, errors: &[Error]) -> Stats {
    let mut s = Stats {
        frequency_hz: t.frequency_hz,
        elapsed_ns: t.elapsed_ns,
        ticks_scheduled: t.ticks_scheduled,
        ticks_taken: t.ticks_taken,
        ticks_missed: t.ticks_missed,
        samples_taken: t.samples_taken,
        samples_dropped: t.samples_dropped,
        batches_dropped: t.batches_dropped,
        lateness_p50_ns: t.lateness_p50_ns,
        lateness_p99_ns: t.lateness_p99_ns,
        lateness_max_ns: t.lateness_max_ns,
        interpreters_live: c.interpreters_live,
        interpreters_retired: c.interpreters_retired,
        functions_live: c.functions_live,
        functions_unloaded: c.functions_unloaded,
        scheduling: t.scheduling.clone(),
        sampler_cpu_ns: t.cpu_ns,
        stack_reads_torn: t.stack_reads_torn,
        stacks_cut: t.stacks_cut,
        batch_buffers: t.batch_buffers,
        errors: errors.len() as u64,
        first_error: errors.first().map(|e| e.to_string()),
        ..Stats::default()
    };
    if let Some(w) = w {
        s.samples_written = w.samples_written;
        s.samples_dropped += w.samples_dropped;
        s.batches_written = w.batches_written;
        s.bytes_written = w.bytes_written;
        s.writer_cpu_ns = w.cpu_ns;
        s.push_intervals_pushed = w.push_intervals_pushed;
        s.push_intervals_dropped = w.push_intervals_dropped;
        s.push_chunks_dropped = w.push_chunks_dropped;
        s.errors += w.errors;
        if s.first_error.is_none() {
            s.first_error = w.first_error.as_ref().map(|e| e.to_string());
        }
    }
    s
}

/// Keeps `e` unless an error about the same actor is kept already: a dead
/// actor also fails the shutdown steps that need it, which is one fault.
fn note(errors: &mut Vec<Error>, e: Error) {
    use crate::error::ErrorKind;
    let same = |x: &Error| match (x.kind(), e.kind()) {
        (ErrorKind::Actor { actor: a, .. }, ErrorKind::Actor { actor: b, .. }) => a == b,
        _ => false,
    };
    if !errors.iter().any(same) {
        errors.push(e);
    }
}

impl SupervisorActor {
    fn role_of(state: &SupervisorState, cell: &ActorCell) -> &'static str {
        let id = cell.get_id();
        let r = &state.refs;
        if id == r.registry.get_id() {
            "registry"
        } else if id == r.ticker.get_id() {
            "ticker"
        } else if id == r.sampler.get_id() {
            "sampler"
        } else if id == r.writer.get_id() {
            "writer"
        } else {
            "unknown"
        }
    }

    async fn stats(state: &SupervisorState) -> Result<Stats, Error> {
        if let Some(s) = state.result.as_ref().and_then(final_stats_of) {
            return Ok(s.clone());
        }
        let limit = state.timeout;
        let timing = state.timing.clone();
        let t = ask("sampler", "stats", limit, |p| {
            timing.send(TimingMsg::Sampler(SamplerMsg::GetStats(p)))
        })
        .await?;
        let registry = state.refs.registry.clone();
        let c = ask("registry", "counts", limit, |p| {
            registry
                .cast(RegistryMsg::GetCounts(p))
                .map_err(|e| Error::actor("registry", e))
        })
        .await?;
        let inbox = state.writer_inbox.clone();
        let w = ask("writer", "stats", limit, |p| {
            inbox
                .send(WriterCmd::Query(WriterMsg::GetStats(p)))
                .map_err(writer_gone)
        })
        .await?;
        Ok(merge(&t, &c, Some(&w), &state.errors))
    }

    /// Hands the sampler's batch to the writer and has it flush; a broken
    /// output is an error (carrying the statistics), not a silent `Ok`.
    async fn flush(state: &SupervisorState) -> Result<Stats, Error> {
        if state.result.is_some() {
            return Err(crate::error::ErrorKind::Stopped.into());
        }
        let limit = state.timeout;
        let timing = state.timing.clone();
        ask("sampler", "flush", limit, |p| {
            timing.send(TimingMsg::Sampler(SamplerMsg::Flush(p)))
        })
        .await?;
        let inbox = state.writer_inbox.clone();
        let w = ask("writer", "flush", limit, |p| {
            inbox
                .send(WriterCmd::Query(WriterMsg::Flush(p)))
                .map_err(writer_gone)
        })
        .await?;
        let stats = Self::stats(state).await?;
        match w.first_error {
            Some(e) => Err(e.with_stats(stats)),
            None => Ok(stats),
        }
    }

    /// The ordered shutdown. Runs once; every step is attempted even when an
    /// earlier one failed, so what was recorded reaches the disk; each step
    /// waits at most the actor timeout, so a stalled actor cannot hang it.
    async fn shutdown(state: &mut SupervisorState) -> Result<Stats, Error> {
        if let Some(r) = &state.result {
            return r.clone();
        }
        debug!(name: "supervisor.stopping", errors = state.errors.len());
        let limit = state.timeout;

        // 1. The ticker stops: no new sample commands.
        let timing = state.timing.clone();
        if let Err(e) = ask("ticker", "stop ticking", limit, |p| {
            timing.send(TimingMsg::StopTicking(p))
        })
        .await
        {
            note(&mut state.errors, e);
        }
        debug!(name: "supervisor.shutdown", step = "ticker");

        // 2. The sampler hands over its last batch; the timing thread exits.
        let drained = ask("sampler", "drain", limit, |p| {
            timing.send(TimingMsg::Drain(p))
        })
        .await;
        let timing_stats = match drained {
            Ok(t) => {
                if let Some(join) = state.timing_join.take()
                    && let Err(e) = join_within("sampler", join, limit).await
                {
                    note(&mut state.errors, e);
                }
                t
            }
            Err(e) => {
                // A thread that did not drain is left detached, not joined.
                note(&mut state.errors, e);
                state.timing_join = None;
                TimingStats::default()
            }
        };
        debug!(name: "supervisor.shutdown", step = "sampler", samples = timing_stats.samples_taken);

        // 3. The writer drains, writes the summary, flushes and syncs.
        let registry = state.refs.registry.clone();
        let counts = ask("registry", "counts", limit, |p| {
            registry
                .cast(RegistryMsg::GetCounts(p))
                .map_err(|e| Error::actor("registry", e))
        })
        .await
        .unwrap_or_else(|e| {
            note(&mut state.errors, e);
            RegistryCounts::default()
        });
        let partial = merge(&timing_stats, &counts, None, &state.errors);
        let stopped_ns = state.clock.now();
        let inbox = state.writer_inbox.clone();
        let finished = ask("writer", "finish", limit, |reply| {
            inbox
                .send(WriterCmd::Finish {
                    stats: Box::new(partial),
                    stopped_ns,
                    reply,
                })
                .map_err(writer_gone)
        })
        .await;
        let writer_stats = match finished {
            Ok(w) => {
                if let Some(join) = state.writer_join.take()
                    && let Err(e) = join_within("writer", join, limit).await
                {
                    note(&mut state.errors, e);
                }
                Some(w)
            }
            Err(e) => {
                note(&mut state.errors, e);
                state.writer_join = None;
                None
            }
        };
        debug!(name: "supervisor.shutdown", step = "writer");

        // 4. The registry, then the faces.
        for (role, cell) in [
            ("registry", state.refs.registry.get_cell()),
            ("ticker", state.refs.ticker.get_cell()),
            ("sampler", state.refs.sampler.get_cell()),
            ("writer", state.refs.writer.get_cell()),
        ] {
            if tokio::time::timeout(limit, cell.stop_and_wait(None, None))
                .await
                .is_err()
            {
                note(&mut state.errors, Error::timeout(role, "stop", limit));
            }
        }
        debug!(name: "supervisor.shutdown", step = "registry");

        let stats = merge(&timing_stats, &counts, writer_stats.as_ref(), &state.errors);
        let first = state
            .errors
            .first()
            .cloned()
            .or_else(|| writer_stats.as_ref().and_then(|w| w.first_error.clone()));
        let result = match first {
            Some(e) => Err(e.with_stats(stats.clone())),
            None => Ok(stats.clone()),
        };
        debug!(name: "supervisor.stopped", ok = result.is_ok());
        state.result = Some(result.clone());
        result
    }
}

/// The final statistics of a shutdown's result, whatever it was.
pub(crate) fn final_stats_of(result: &Result<Stats, Error>) -> Option<&Stats> {
    match result {
        Ok(s) => Some(s),
        Err(e) => e.stats(),
    }
}

impl SupervisorActor {
    /// Supervision of the timing and writer threads, as ractor's supervision
    /// events are for the actors on the runtime.
    async fn thread_event(state: &mut SupervisorState, role: &'static str, event: ThreadEvent) {
        if state.result.is_some() {
            return; // exits (or late panics) during our own shutdown
        }
        match event {
            // The writer keeps its own fault, like an I/O error: its output
            // is broken, later samples are counted as dropped, queries still
            // answer, and `stop` returns the error.
            ThreadEvent::Panicked(msg) if role == "writer" => {
                warn!(name: "supervisor.thread_panicked", actor = role, error = %msg);
            }
            // Sampling has ended: shut down in order at once, so the samples
            // taken and the summary reach the disk.
            ThreadEvent::Panicked(msg) => {
                warn!(name: "supervisor.thread_panicked", actor = role, error = %msg);
                note(
                    &mut state.errors,
                    Error::actor(role, format!("panicked: {msg}")),
                );
                let _ = Self::shutdown(state).await;
            }
            ThreadEvent::Exited => {
                warn!(name: "supervisor.thread_exited", actor = role, "exited before the shutdown");
                note(
                    &mut state.errors,
                    Error::actor(role, "its thread exited before the shutdown"),
                );
                let _ = Self::shutdown(state).await;
            }
        }
    }
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        debug!(name: "supervisor.starting", hz = args.frequency_hz, flush = args.flush_samples);
        let flush = args.flush_samples as usize;
        let mut buffers = args.buffers.into_iter();
        let first = buffers
            .next()
            .ok_or_else(|| Error::actor("supervisor", "no batch buffer"))?;
        let in_circulation = buffers.len() + 1;
        let capacity = first.samples.capacity();
        // Room for every buffer the pool may grow to, so neither end ever
        // waits or allocates.
        let room = args.max_buffers.max(in_circulation) + 1;
        let (batch_tx, batch_rx) = pool_channel(room);
        let (free_tx, free_rx) = pool_channel(room);
        for b in buffers {
            free_tx
                .try_send(b)
                .map_err(|_| Error::actor("supervisor", "buffer pool too small"))?;
        }
        let (writer_tx, writer_rx) = flume::unbounded::<WriterCmd>();

        // The threads report panics and exits as messages to this actor.
        let me = myself.clone();
        let report: Arc<dyn Fn(&'static str, ThreadEvent) + Send + Sync> =
            Arc::new(move |role, event| {
                let _ = me.cast(SupervisorMsg::Thread(ThreadReport { role, event }));
            });

        let timing = TimingThread {
            ticker: TickerCore::new(args.frequency_hz, args.sampling, args.clock.seed()),
            sampler: {
                let mut sampler = SamplerCore::new(
                    flush,
                    args.flush_interval_ns,
                    first,
                    batch_tx,
                    free_rx,
                    None,
                );
                sampler.set_pool(in_circulation, args.max_buffers, capacity, free_tx.clone());
                sampler
            },
            clock: Arc::clone(&args.clock),
            scheduling: args.scheduling,
            dispatch: args.dispatch.clone(),
            watch: Watch::new("sampler", Arc::clone(&report)),
        };
        let (timing_join, mailbox) = timing
            .spawn()
            .map_err(|e| Error::actor("sampler", format!("cannot spawn the timing thread: {e}")))?;

        let cell = myself.get_cell();
        let (registry, _) = Actor::spawn_linked(
            None,
            RegistryActor,
            RegistryArgs {
                timing: mailbox.clone(),
                writer: writer_tx.clone(),
                instruction_set: args.instruction_set.clone(),
            },
            cell.clone(),
        )
        .await?;
        let writer_join = WriterThread::new(
            args.encoder,
            writer_rx,
            batch_rx,
            free_tx,
            registry.clone(),
            args.dispatch.clone(),
            Watch::new("writer", report),
        )
        .spawn()
        .map_err(|e| Error::actor("writer", format!("cannot spawn the writer thread: {e}")))?;
        // The faces forward the public messages, unchanged, to the threads.
        let inbox = writer_tx.clone();
        let writer = spawn_face(
            "writer",
            move |m| inbox.send(WriterCmd::Query(m)).map_err(writer_gone),
            cell.clone(),
        )
        .await?;
        let timing = mailbox.clone();
        let ticker = spawn_face(
            "ticker",
            move |m| timing.send(TimingMsg::Ticker(m)),
            cell.clone(),
        )
        .await?;
        let timing = mailbox.clone();
        let sampler =
            spawn_face("sampler", move |m| timing.send(TimingMsg::Sampler(m)), cell).await?;
        debug!(name: "supervisor.started", "all actors started");
        Ok(SupervisorState {
            refs: ActorRefs {
                supervisor: myself,
                registry,
                ticker,
                sampler,
                writer,
            },
            timing: mailbox,
            writer_inbox: writer_tx,
            timing_join: Some(timing_join),
            writer_join: Some(writer_join),
            clock: args.clock,
            timeout: args.actor_timeout,
            errors: Vec::new(),
            result: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        trace!(name: "supervisor.message", msg = ?msg);
        match msg {
            SupervisorMsg::GetRefs(reply) => {
                let _ = reply.send(state.refs.clone());
            }
            SupervisorMsg::GetStats(reply) => {
                let stats = Self::stats(state).await;
                if let Err(e) = &stats {
                    warn!(name: "supervisor.stats_failed", error = %e);
                }
                // The error goes to the caller too: a dropped reply would
                // read as "the profiler has stopped".
                let _ = reply.send(stats);
            }
            SupervisorMsg::GetInterpreters(reply) => {
                let _ = state
                    .refs
                    .registry
                    .cast(RegistryMsg::GetInterpreters(reply));
            }
            SupervisorMsg::GetFunctions(reply) => {
                let _ = state.refs.registry.cast(RegistryMsg::GetFunctions(reply));
            }
            SupervisorMsg::GetHotFunctions(n, reply) => {
                let hot = match Self::flush(state).await {
                    Ok(_) => {
                        let inbox = state.writer_inbox.clone();
                        ask("writer", "hot functions", state.timeout, |p| {
                            inbox
                                .send(WriterCmd::Query(WriterMsg::GetHotFunctions(n, p)))
                                .map_err(writer_gone)
                        })
                        .await
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(hot);
            }
            SupervisorMsg::Flush(reply) => {
                let _ = reply.send(Self::flush(state).await);
            }
            SupervisorMsg::SetRate(hz, reply) => {
                let timing = state.timing.clone();
                let result = match ask("ticker", "set rate", state.timeout, |p| {
                    timing.send(TimingMsg::Ticker(TickerMsg::SetRate(hz, p)))
                })
                .await
                {
                    Ok(Ok(())) => {
                        let _ =
                            state
                                .writer_inbox
                                .send(WriterCmd::Record(Record::Rate(RateRecord {
                                    time_ns: state.clock.now(),
                                    frequency_hz: hz,
                                })));
                        Ok(())
                    }
                    Ok(Err(reason)) => Err(Error::config("rate", hz, reason)),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::Pause => {
                if state
                    .timing
                    .send(TimingMsg::Ticker(TickerMsg::Pause))
                    .is_ok()
                {
                    let _ = state
                        .writer_inbox
                        .send(WriterCmd::Record(Record::Rate(RateRecord {
                            time_ns: state.clock.now(),
                            frequency_hz: 0,
                        })));
                }
            }
            SupervisorMsg::Resume => {
                if state
                    .timing
                    .send(TimingMsg::Ticker(TickerMsg::Resume))
                    .is_ok()
                {
                    let timing = state.timing.clone();
                    let hz = ask("ticker", "stats", state.timeout, |p| {
                        timing.send(TimingMsg::Sampler(SamplerMsg::GetStats(p)))
                    })
                    .await
                    .map_or(0, |t| t.frequency_hz);
                    let _ = state
                        .writer_inbox
                        .send(WriterCmd::Record(Record::Rate(RateRecord {
                            time_ns: state.clock.now(),
                            frequency_hz: hz,
                        })));
                }
            }
            SupervisorMsg::Sync(reply) => {
                let registry = state.refs.registry.clone();
                let barrier = ask("registry", "barrier", state.timeout, |p| {
                    registry
                        .cast(RegistryMsg::Barrier(p))
                        .map_err(|e| Error::actor("registry", e))
                })
                .await;
                // The sampler is asked even when the registry failed: what
                // was sent to it directly still reaches it first.
                let timing = state.timing.clone();
                let sampled = ask("sampler", "stats", state.timeout, |p| {
                    timing.send(TimingMsg::Sampler(SamplerMsg::GetStats(p)))
                })
                .await;
                let _ = reply.send(barrier.and(sampled.map(|_| ())));
            }
            SupervisorMsg::Stop(reply) => {
                let result = Self::shutdown(state).await;
                let _ = reply.send(result);
                myself.stop(None);
            }
            SupervisorMsg::Thread(ThreadReport { role, event }) => {
                Self::thread_event(state, role, event).await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.result.is_some() {
            return Ok(()); // children stopping during our own shutdown
        }
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let role = Self::role_of(state, &cell);
                warn!(name: "supervisor.actor_failed", actor = role, error = %err);
                state
                    .errors
                    .push(Error::actor(role, format!("failed: {err}")));
                let _ = Self::shutdown(state).await;
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let role = Self::role_of(state, &cell);
                warn!(name: "supervisor.actor_terminated", actor = role, reason = ?reason);
                state.errors.push(Error::actor(
                    role,
                    format!("terminated unexpectedly ({reason:?})"),
                ));
                let _ = Self::shutdown(state).await;
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Stopped without `Stop` (e.g. killed): still shut down in order.
        if state.result.is_none() {
            let _ = Self::shutdown(state).await;
        }
        debug!(name: "supervisor.exited", "supervisor exited");
        Ok(())
    }
}
