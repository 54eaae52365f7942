//! The embedder's entry point: start, register, query, stop.
//!
//! - [`Profiler::start`] (or [`ProfilerBuilder`]) opens the output, starts a
//!   private async runtime on its own thread ("pcprof-runtime") and the
//!   actors on it; it works from plain `fn main` and from inside a tokio
//!   runtime alike, since nothing ever `block_on`s a caller's runtime.
//! - [`ProfilerHandle`] is the cheap, cloneable handle for registering
//!   interpreters and bytecode from any thread (non-blocking casts), and the
//!   blocking facade for queries. The actor references it exposes serve
//!   async code (`ractor::call!`).
//! - The profiler's threads inherit the tracing dispatcher of the thread
//!   that started it, so a test's subscriber sees every actor transition.
//! - Dropping the [`Profiler`] stops it in order; stopping twice is harmless.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ractor::{Actor, ActorRef, RpcReplyPort};
use tracing::{debug, warn};

use crate::clock::{Clock, MonotonicClock, Nanos};
use crate::config::{Config, Output, Scheduling};
use crate::error::{Error, ErrorKind};
use crate::format::{Encoder, FileHeader, Format, Record, SamplingMode, SamplingRecord};
use crate::pc::{Activity, OnDemandPc, PcHandle, PcSource};
use crate::registry::{FunctionInfo, InterpreterInfo, RegistryMsg, SourceBox};
use crate::sampler::SamplerMsg;
use crate::stack::StackHandle;
use crate::stats::Stats;
use crate::supervisor::{
    ActorRefs, SupervisorActor, SupervisorArgs, SupervisorMsg, final_stats_of,
};
use crate::ticker::TickerMsg;
use crate::writer::{HotFunction, Sink, WriterMsg};

/// Builds a [`Profiler`].
#[derive(Debug, Default)]
pub struct ProfilerBuilder {
    config: Config,
}

impl ProfilerBuilder {
    /// Defaults: 1000 Hz, 20000 samples a batch, `./pulley-<pid>.data`,
    /// native format. The environment is not read; see
    /// [`ProfilerBuilder::env`].
    pub fn new() -> ProfilerBuilder {
        ProfilerBuilder::default()
    }

    /// Applies `PULLEY_SAMPLING_FREQ`, `PULLEY_SAMPLING_FLUSH_AMT`,
    /// `PCPROF_FLUSH_INTERVAL`, `PCPROF_OUT`, `PCPROF_FORMAT`,
    /// `PCPROF_SAMPLING` and `PCPROF_SPIN` from the process environment.
    pub fn env(self) -> Result<ProfilerBuilder, Error> {
        self.env_from(|k| std::env::var(k).ok())
    }

    /// Applies the same variables from `lookup`.
    pub fn env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ProfilerBuilder, Error> {
        self.config.apply_env(lookup)?;
        Ok(self)
    }

    /// Ticks per second.
    pub fn frequency(mut self, hz: u32) -> Self {
        self.config.frequency_hz = hz;
        self
    }

    /// Samples per batch handed to the writer (at most: a batch is also
    /// handed over when it is `flush_interval` old).
    pub fn flush_every(mut self, samples: u32) -> Self {
        self.config.flush_samples = samples;
        self
    }

    /// The longest samples wait before they are written to the OS (default
    /// 1 s, `PCPROF_FLUSH_INTERVAL`): what `kill -9` can lose.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.config.flush_interval = interval;
        self
    }

    /// How long an actor has to answer each shutdown step and each query
    /// (default 5 s); past it the call returns `ErrorKind::Timeout`, so a
    /// stalled output sink never hangs `stop()` or a drop.
    pub fn actor_timeout(mut self, timeout: Duration) -> Self {
        self.config.actor_timeout = timeout;
        self
    }

    /// Output file (created; never overwritten).
    pub fn output(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.output = Output::Path(path.into());
        self
    }

    /// Output to an embedder's sink instead of a file.
    pub fn output_writer(mut self, sink: impl Write + Send + 'static) -> Self {
        self.config.output = Output::Writer(Box::new(sink));
        self
    }

    /// Output format.
    pub fn format(mut self, format: Format) -> Self {
        self.config.format = format;
        self
    }

    /// Time source (tests pass a [`crate::VirtualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = Some(clock);
        self
    }

    /// How much the timing thread may spin before each deadline (monotonic
    /// clock): a [`SpinPolicy`](crate::config::SpinPolicy), or a `Duration`
    /// that caps it, never exceeded (zero never spins: the CPU of one
    /// wake-up a tick, for the ticks that sleeping loses). The default,
    /// [`SpinPolicy::Auto`](crate::config::SpinPolicy::Auto), spins below
    /// 20 kHz only as far as each µs buys enough ticks on this host, never a
    /// whole core; [`SpinPolicy::Max`](crate::config::SpinPolicy::Max) puts
    /// ticks first at every rate (about a core at 10 kHz on a VM).
    /// `PCPROF_SPIN` sets it from the environment ([`ProfilerBuilder::env`]).
    pub fn spin(mut self, spin: impl Into<crate::config::SpinPolicy>) -> Self {
        self.config.spin = spin.into();
        self
    }

    /// The p99 lateness the timing thread aims at (default 40 µs): a smaller
    /// target spins more, a larger one less.
    pub fn lateness_target(mut self, target: Duration) -> Self {
        self.config.lateness_target = target;
        self
    }

    /// Ask for `SCHED_FIFO` at `priority` for the timing thread, falling back
    /// to normal scheduling where the process may not raise it.
    pub fn realtime(mut self, priority: u8) -> Self {
        self.config.scheduling = Scheduling::Realtime { priority };
        self
    }

    /// When in each period the sample is taken: at a random instant
    /// ([`SamplingMode::Randomized`], the default: immune to work that
    /// repeats with the period) or at its end ([`SamplingMode::Periodic`]).
    pub fn sampling(mut self, mode: SamplingMode) -> Self {
        self.config.sampling = mode;
        self
    }

    /// The interpreter's instruction set: every function registered is
    /// decoded once, at registration (never on the tick path), and its
    /// listing goes into the file, so `pcprof report`, `sequences`, `diff`,
    /// `html` and the exports show its mnemonics and basic blocks.
    pub fn instruction_set(mut self, isa: Arc<dyn crate::isa::InstructionSet>) -> Self {
        self.config.instruction_set = Some(isa);
        self
    }

    /// A bounded copy of the output (the native stream, the bytes the file
    /// gets) for `tee`'s consumer, on its own thread: how `pcprof::push`
    /// pushes each interval to a server while recording. The writer hands
    /// each flushed chunk over without waiting; the stop waits a bounded
    /// time for the consumer. Native format only.
    pub fn tee(mut self, tee: crate::tee::Tee) -> Self {
        self.config.tee = Some(tee);
        self
    }

    /// Batch buffers in circulation at the least (at least 2; default 4).
    /// The pool grows from it as interpreters register, to hold
    /// [`POOL_SLACK`](crate::config::POOL_SLACK) of the samples they can
    /// make, within [`Config::max_buffers`] (the memory bound).
    pub fn buffers(mut self, n: usize) -> Self {
        self.config.buffers = n;
        self
    }

    /// The configuration as built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Opens the output and starts the actors; the first tick is one period
    /// later.
    pub fn start(self) -> Result<Profiler, Error> {
        Profiler::with_config(self.config)
    }
}

/// A running profiler. Dropping it stops it.
#[derive(Debug)]
pub struct Profiler {
    /// Registration and queries (what `Deref` exposes).
    handle: ProfilerHandle,
    /// The "pcprof-runtime" thread, joined by `stop` once it has answered.
    runtime: Option<JoinHandle<()>>,
    /// The output file, unless it is an embedder's sink.
    output: Option<PathBuf>,
    /// What `stop` returned, kept for later calls (an error carries the
    /// final statistics).
    result: Option<Result<Stats, Error>>,
}

/// Removes a freshly created output file unless `start` succeeds: a failed
/// start leaves nothing behind (an empty file would block a rerun).
struct RemoveOnFailure(Option<PathBuf>);

impl Drop for RemoveOnFailure {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Allocates the batch buffers, refusing (with an error naming the
/// settings) what the allocator cannot give instead of aborting the host.
fn allocate_buffers(config: &Config) -> Result<Vec<crate::format::SampleBuffer>, Error> {
    config.buffer_bytes()?;
    let capacity = config.buffer_capacity();
    let mut buffers = Vec::new();
    let refuse = |e: std::collections::TryReserveError| {
        Error::config(
            "buffers × flush_samples",
            format!("{} × {}", config.buffers, config.flush_samples),
            format!("cannot allocate the batch buffers: {e}"),
        )
    };
    buffers.try_reserve_exact(config.buffers).map_err(refuse)?;
    for _ in 0..config.buffers {
        let mut b = crate::format::SampleBuffer::default();
        b.samples.try_reserve_exact(capacity).map_err(refuse)?;
        // The stacks' frames: a word a sample (an entry is reused while an
        // interpreter's stack is unchanged; a full arena seals the batch).
        b.frames.try_reserve_exact(capacity).map_err(refuse)?;
        buffers.push(b);
    }
    Ok(buffers)
}

/// The header (and the sampling record after it) is written on the caller's
/// thread, through the embedder's sink: a panic there is an error of
/// `start`, never the caller's panic.
fn write_header(
    sink: Sink,
    header: &FileHeader,
    sampling: SamplingRecord,
    label: &Path,
) -> Result<Encoder<Sink>, Error> {
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut encoder = Encoder::native(sink, header)?;
        encoder.write(&Record::Sampling(sampling))?;
        // The header reaches the OS now: a process killed at any later
        // moment leaves a file that is recognisably a profile.
        encoder.get_mut().flush()?;
        Ok(encoder)
    }));
    match written {
        Ok(Ok(encoder)) => Ok(encoder),
        Ok(Err(crate::format::EncodeError::Io(io))) => Err(Error::io(label, "write", io)),
        Ok(Err(crate::format::EncodeError::Encode(reason))) => Err(ErrorKind::Encode {
            record: "header",
            reason,
        }
        .into()),
        Err(payload) => Err(Error::actor(
            "writer",
            format!(
                "the output {} panicked while the header was written: {}",
                label.display(),
                crate::watch::panic_message(payload.as_ref())
            ),
        )),
    }
}

/// A cloneable handle to a running profiler: registration and queries.
#[derive(Clone)]
pub struct ProfilerHandle {
    /// Every actor's reference.
    refs: ActorRefs,
    /// The profiler's clock (registration times).
    clock: Arc<dyn Clock>,
    /// The actor timeout: a query waits for at most a few of these.
    timeout: Duration,
}

impl std::fmt::Debug for ProfilerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilerHandle")
            .field("supervisor", &self.refs.supervisor.get_id())
            .finish_non_exhaustive()
    }
}

fn open_output(output: Output) -> Result<(Sink, Option<PathBuf>), Error> {
    match output {
        Output::Writer(w) => Ok((Sink::Custom(w), None)),
        Output::Path(path) => {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        ErrorKind::OutputExists { path: path.clone() }.into()
                    } else {
                        Error::io(&path, "create", e)
                    }
                })?;
            Ok((
                Sink::File {
                    path: path.clone(),
                    file: BufWriter::with_capacity(1 << 16, file),
                },
                Some(path),
            ))
        }
    }
}

impl Profiler {
    /// Starts with defaults overridden by the environment variables.
    pub fn start() -> Result<Profiler, Error> {
        ProfilerBuilder::new().env()?.start()
    }

    /// A builder with the defaults.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder::new()
    }

    /// Starts with `config`.
    pub fn with_config(config: Config) -> Result<Profiler, Error> {
        config.validate()?;
        let clock: Arc<dyn Clock> = config.clock.clone().unwrap_or_else(|| {
            Arc::new(MonotonicClock::with_target(
                config.spin,
                config.lateness_target,
            ))
        });
        // Everything that can fail before any thread exists fails first,
        // and before the output is created where it can.
        let buffers = allocate_buffers(&config)?;
        let max_buffers = config.max_buffers();
        let mode = config.sampling;
        let (sink, path) = open_output(config.output)?;
        let mut created = RemoveOnFailure(path.clone());
        let label = sink_label(&path);
        let sink = match config.tee {
            None => sink,
            Some(tee) => Sink::Teed {
                inner: Box::new(sink),
                tee: tee.start(config.actor_timeout).map_err(|e| {
                    Error::actor("writer", format!("cannot spawn the tee's thread: {e}"))
                })?,
            },
        };
        let encoder = match config.format {
            Format::Pulley => Encoder::pulley(sink),
            Format::Native => {
                let header = FileHeader {
                    pcprof_version: env!("CARGO_PKG_VERSION").to_string(),
                    pid: std::process::id(),
                    started_unix_ns: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64)
                        .saturating_sub(clock.now()),
                    frequency_hz: config.frequency_hz,
                    flush_samples: config.flush_samples,
                    clock: clock.name().to_string(),
                };
                let sampling = SamplingRecord {
                    mode,
                    frequency_hz: config.frequency_hz,
                };
                write_header(sink, &header, sampling, &label)?
            }
        };
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let args = SupervisorArgs {
            encoder,
            clock: Arc::clone(&clock),
            frequency_hz: config.frequency_hz,
            flush_samples: config.flush_samples,
            flush_interval_ns: u64::try_from(config.flush_interval.as_nanos()).unwrap_or(u64::MAX),
            buffers,
            max_buffers,
            actor_timeout: config.actor_timeout,
            scheduling: config.scheduling,
            sampling: config.sampling,
            instruction_set: config.instruction_set.clone(),
            dispatch: dispatch.clone(),
        };

        let (ready_tx, ready_rx) = flume::bounded(1);
        let runtime = thread::Builder::new()
            .name("pcprof-runtime".into())
            .spawn(move || run_runtime(args, dispatch, ready_tx))
            .map_err(|e| {
                Error::actor(
                    "supervisor",
                    format!("cannot spawn the runtime thread: {e}"),
                )
            })?;
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::actor(
                "supervisor",
                "the runtime thread exited during start",
            ))
        });
        match ready {
            Ok(refs) => {
                debug!(name: "profiler.started", output = %label.display());
                created.0 = None;
                Ok(Profiler {
                    handle: ProfilerHandle {
                        refs,
                        clock,
                        timeout: config.actor_timeout,
                    },
                    runtime: Some(runtime),
                    output: path,
                    result: None,
                })
            }
            Err(e) => {
                let _ = runtime.join();
                Err(e)
            }
        }
    }

    /// A cloneable handle for other threads.
    pub fn handle(&self) -> ProfilerHandle {
        self.handle.clone()
    }

    /// The output file, unless the output is an embedder's sink.
    pub fn output_path(&self) -> Option<&Path> {
        self.output.as_deref()
    }

    /// Stops in order and returns the final statistics, or the first error
    /// met while profiling (its [`Error::stats`] holds the final
    /// statistics). Calling it again returns the same result. It never
    /// hangs: each shutdown step has the actor timeout
    /// ([`ProfilerBuilder::actor_timeout`]).
    pub fn stop(&mut self) -> Result<Stats, Error> {
        if let Some(r) = &self.result {
            return r.clone();
        }
        // Four steps at most wait their full timeout; the margin covers the
        // registry and the faces.
        let limit = self.handle.timeout.saturating_mul(8);
        let result = self
            .handle
            .call_within(SupervisorMsg::Stop, "stop", Some(limit));
        let answered = !matches!(
            result.as_ref().map_err(Error::kind),
            Err(ErrorKind::Timeout { .. })
        );
        let result = result.unwrap_or_else(Err);
        // The runtime thread exits right after the answer; without one it
        // is stuck, and is left detached rather than joined.
        if let Some(rt) = self.runtime.take()
            && answered
            && rt.join().is_err()
        {
            warn!(name: "profiler.runtime_panicked", "the runtime thread panicked");
        }
        self.result = Some(result.clone());
        result
    }

    /// The final statistics once [`Profiler::stop`] has run, whether it
    /// returned `Ok` or an error.
    pub fn final_stats(&self) -> Option<&Stats> {
        self.result.as_ref().and_then(final_stats_of)
    }
}

fn sink_label(path: &Option<PathBuf>) -> PathBuf {
    path.clone().unwrap_or_else(|| PathBuf::from("<writer>"))
}

type Ready = Result<ActorRefs, Error>;

fn run_runtime(args: SupervisorArgs, dispatch: tracing::Dispatch, ready: flume::Sender<Ready>) {
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(Error::actor(
                "supervisor",
                format!("cannot build the runtime: {e}"),
            )));
            return;
        }
    };
    rt.block_on(async move {
        let (supervisor, join) = match Actor::spawn(None, SupervisorActor, args).await {
            Ok(started) => started,
            Err(e) => {
                let _ = ready.send(Err(Error::actor(
                    "supervisor",
                    format!("cannot start: {e}"),
                )));
                return;
            }
        };
        let refs = ractor::call!(supervisor, SupervisorMsg::GetRefs)
            .map_err(|e| Error::actor("supervisor", e));
        let _ = ready.send(refs);
        let _ = join.await;
    });
    // A thread that missed its shutdown step is left behind, never waited
    // for: dropping the runtime would wait for its blocking tasks.
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// Runs a future to completion on the calling thread, parking between polls,
/// for at most `limit` (`None`: no limit); `None` when the limit passed.
/// Enough for a oneshot reply, which needs no runtime to make progress.
///
/// - The future is polled `unconstrained`: inside a caller's tokio runtime
///   each completed reply spends that runtime's cooperative budget, and once
///   it is spent tokio defers the wake-up to a scheduler that never runs,
///   because this thread is parked here (the facade hung after about 130
///   calls from a current_thread `block_on`).
fn block_on<F: std::future::Future>(fut: F, limit: Option<Duration>) -> Option<F::Output> {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let deadline = limit.map(|l| std::time::Instant::now() + l);
    let waker = std::task::Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(tokio::task::coop::unconstrained(fut));
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    return None;
                }
                thread::park_timeout(d - now);
            }
        }
    }
}

/// Sends `msg` to `actor` and parks for the reply, at most `limit`: a gone
/// actor is [`ErrorKind::Stopped`], a silent one [`ErrorKind::Timeout`].
fn ask_blocking<M: ractor::Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    msg: impl FnOnce(RpcReplyPort<T>) -> M,
    role: &'static str,
    request: &'static str,
    limit: Option<Duration>,
) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    actor
        .cast(msg(tx.into()))
        .map_err(|_| Error::from(ErrorKind::Stopped))?;
    match block_on(rx, limit) {
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => Err(ErrorKind::Stopped.into()),
        None => Err(Error::timeout(role, request, limit.unwrap_or_default())),
    }
}

impl Deref for Profiler {
    type Target = ProfilerHandle;
    fn deref(&self) -> &ProfilerHandle {
        &self.handle
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if self.result.is_none()
            && let Err(e) = self.stop()
        {
            warn!(name: "profiler.drop_error", error = %e);
        }
    }
}

impl ProfilerHandle {
    /// Sends a request to the supervisor and blocks for the reply, at most
    /// three actor timeouts (a query asks up to three actors, each bounded).
    ///
    /// The reply is awaited by parking this thread ([`block_on`]), not on a
    /// runtime: tokio's `blocking_recv` panics when the caller is inside a
    /// tokio runtime, and a task on the profiler's runtime could be dropped
    /// when the supervisor exits right after replying to `Stop`.
    fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, Error> {
        self.call_within(msg, "query", Some(self.timeout.saturating_mul(3)))
    }

    fn call_within<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
        request: &'static str,
        limit: Option<Duration>,
    ) -> Result<T, Error> {
        ask_blocking(&self.refs.supervisor, msg, "supervisor", request, limit)
    }

    /// Now, on the profiler's clock (ns since its start).
    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// Registers a new interpreter and returns the handle it publishes its
    /// PC through. `label` is typically the thread's name. Waits for the
    /// registry's answer, so a registration that races `stop()` is
    /// [`ErrorKind::Stopped`], never a handle that is silently not sampled.
    pub fn new_interpreter(&self, label: Option<&str>) -> Result<PcHandle, Error> {
        let handle = PcHandle::new();
        self.register(label, handle.reader().into())?;
        Ok(handle)
    }

    /// Registers a new interpreter on the activity protocol: its cell is
    /// read only between [`OnDemandPc::enter`] and the drop of the guard it
    /// returns (one `enter` per host→guest call), so a server's thousands of
    /// idle interpreters cost a tick one bit each instead of a cache line
    /// each. [`OnDemandPc::set`] stays one relaxed store, and must only be
    /// called while entered.
    pub fn new_interpreter_on_demand(&self, label: Option<&str>) -> Result<OnDemandPc, Error> {
        let handle = PcHandle::new();
        let activity = self.register_on_demand(label, handle.reader().into())?;
        Ok(OnDemandPc::new(handle, activity))
    }

    /// Registers an interpreter whose PC cell is its own, on the activity
    /// protocol: `source` must read as idle whenever no
    /// [`Activity::enter`] guard is alive, and the returned [`Activity`]
    /// must be dropped once the source is finished (the sampler then
    /// retires it). Its id is [`Activity::id`].
    pub fn register_source_on_demand(
        &self,
        label: Option<&str>,
        source: impl PcSource,
    ) -> Result<Activity, Error> {
        self.register_on_demand(label, SourceBox::foreign(source))
    }

    /// [`ProfilerHandle::new_interpreter_on_demand`] with a shadow stack of
    /// up to `capacity` frames (see
    /// [`ProfilerHandle::new_interpreter_with_stack`]), read after each PC
    /// while the interpreter is entered.
    pub fn new_interpreter_with_stack_on_demand(
        &self,
        label: Option<&str>,
        capacity: usize,
    ) -> Result<(OnDemandPc, StackHandle), Error> {
        let handle = PcHandle::new();
        let stack = StackHandle::new(capacity);
        let source = SourceBox::from(handle.reader()).with_stack(stack.reader());
        let activity = self.register_on_demand(label, source)?;
        Ok((OnDemandPc::new(handle, activity), stack))
    }

    /// [`ProfilerHandle::register_source_on_demand`] with a shadow stack of
    /// up to `capacity` frames.
    pub fn register_source_with_stack_on_demand(
        &self,
        label: Option<&str>,
        source: impl PcSource,
        capacity: usize,
    ) -> Result<(Activity, StackHandle), Error> {
        let stack = StackHandle::new(capacity);
        let activity =
            self.register_on_demand(label, SourceBox::foreign(source).with_stack(stack.reader()))?;
        Ok((activity, stack))
    }

    fn register_on_demand(
        &self,
        label: Option<&str>,
        source: SourceBox,
    ) -> Result<Activity, Error> {
        let registered_ns = self.clock.now();
        let label = label.map(str::to_string);
        ask_blocking(
            &self.refs.registry,
            |reply| RegistryMsg::RegisterOnDemand {
                label,
                source,
                registered_ns,
                reply,
            },
            "registry",
            "register interpreter",
            Some(self.timeout),
        )?
    }

    /// Registers a new interpreter that keeps a shadow stack of up to
    /// `capacity` frames (at most [`crate::stack::MAX_CAPACITY`]): the
    /// handle it publishes its PC through, and the stack it records its
    /// calls and returns in ([`StackHandle::call`], [`StackHandle::ret`],
    /// [`StackHandle::set_depth`]). Each sample then carries the stack read
    /// just after its PC. Deeper calls keep the outermost `capacity` frames
    /// and are marked truncated.
    pub fn new_interpreter_with_stack(
        &self,
        label: Option<&str>,
        capacity: usize,
    ) -> Result<(PcHandle, StackHandle), Error> {
        let handle = PcHandle::new();
        let stack = StackHandle::new(capacity);
        let source = SourceBox::from(handle.reader()).with_stack(stack.reader());
        self.register(label, source)?;
        Ok((handle, stack))
    }

    /// [`ProfilerHandle::register_source`] with a shadow stack of up to
    /// `capacity` frames (see [`ProfilerHandle::new_interpreter_with_stack`]):
    /// its id in the profile, and the stack.
    pub fn register_source_with_stack(
        &self,
        label: Option<&str>,
        source: impl PcSource,
        capacity: usize,
    ) -> Result<(u32, StackHandle), Error> {
        let stack = StackHandle::new(capacity);
        let id = self.register(label, SourceBox::foreign(source).with_stack(stack.reader()))?;
        Ok((id, stack))
    }

    /// Registers an interpreter whose PC cell is its own; returns its id in
    /// the profile.
    pub fn register_source(
        &self,
        label: Option<&str>,
        source: impl PcSource,
    ) -> Result<u32, Error> {
        self.register(label, SourceBox::foreign(source))
    }

    fn register(&self, label: Option<&str>, source: SourceBox) -> Result<u32, Error> {
        let registered_ns = self.clock.now();
        let label = label.map(str::to_string);
        ask_blocking(
            &self.refs.registry,
            |reply| RegistryMsg::RegisterInterpreter {
                label,
                source,
                registered_ns,
                reply: Some(reply),
            },
            "registry",
            "register interpreter",
            Some(self.timeout),
        )?
    }

    /// Registers bytecode that executes where `code` is (the address is
    /// `code.as_ptr()`); the bytes are copied.
    pub fn register_function(&self, name: &str, code: &[u8]) -> Result<(), Error> {
        self.register_function_at(name, code.as_ptr() as u64, code)
    }

    /// Registers bytecode loaded at `addr`; the bytes are copied.
    pub fn register_function_at(&self, name: &str, addr: u64, code: &[u8]) -> Result<(), Error> {
        self.refs
            .registry
            .cast(RegistryMsg::RegisterFunction(FunctionInfo {
                addr,
                name: name.to_string(),
                code: Arc::from(code),
                loaded_ns: self.clock.now(),
                unloaded_ns: None,
            }))
            .map_err(|_| ErrorKind::Stopped.into())
    }

    /// The function at `addr` was unloaded; its addresses may be reused.
    pub fn unregister_function(&self, addr: u64) -> Result<(), Error> {
        self.refs
            .registry
            .cast(RegistryMsg::UnregisterFunction {
                addr,
                unloaded_ns: self.clock.now(),
            })
            .map_err(|_| ErrorKind::Stopped.into())
    }

    /// Current statistics.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.call(SupervisorMsg::GetStats)?
    }

    /// The live interpreters (a retired one is forgotten, only counted in
    /// [`Stats`]).
    pub fn interpreters(&self) -> Result<Vec<InterpreterInfo>, Error> {
        self.call(SupervisorMsg::GetInterpreters)
    }

    /// The live functions, in registration order (an unloaded one is
    /// forgotten, only counted in [`Stats`]).
    pub fn functions(&self) -> Result<Vec<FunctionInfo>, Error> {
        self.call(SupervisorMsg::GetFunctions)
    }

    /// The `n` hottest functions so far (exact for `n` up to
    /// [`HOT_DEAD_KEPT`](crate::writer::HOT_DEAD_KEPT); see
    /// [`crate::writer::WriterMsg::GetHotFunctions`]).
    pub fn hot_functions(&self, n: usize) -> Result<Vec<HotFunction>, Error> {
        self.call(|p| SupervisorMsg::GetHotFunctions(n, p))?
    }

    /// Hands over the current batch and flushes the output.
    pub fn flush(&self) -> Result<Stats, Error> {
        self.call(SupervisorMsg::Flush)?
    }

    /// Changes the sampling rate.
    pub fn set_rate(&self, hz: u32) -> Result<(), Error> {
        self.call(|p| SupervisorMsg::SetRate(hz, p))?
    }

    /// Pauses sampling.
    pub fn pause(&self) -> Result<(), Error> {
        self.refs
            .supervisor
            .cast(SupervisorMsg::Pause)
            .map_err(|_| ErrorKind::Stopped.into())
    }

    /// Resumes sampling.
    pub fn resume(&self) -> Result<(), Error> {
        self.refs
            .supervisor
            .cast(SupervisorMsg::Resume)
            .map_err(|_| ErrorKind::Stopped.into())
    }

    /// Returns once every registration and control message sent before it
    /// has reached the sampler (tests use it before moving virtual time);
    /// an error if an actor did not answer within the actor timeout, since
    /// then that is not known.
    pub fn sync(&self) -> Result<(), Error> {
        self.call(SupervisorMsg::Sync)?
    }

    /// The supervisor, for async code (`ractor::call!`).
    pub fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.refs.supervisor
    }

    /// The registry.
    pub fn registry(&self) -> &ActorRef<RegistryMsg> {
        &self.refs.registry
    }

    /// The ticker.
    pub fn ticker(&self) -> &ActorRef<TickerMsg> {
        &self.refs.ticker
    }

    /// The sampler.
    pub fn sampler(&self) -> &ActorRef<SamplerMsg> {
        &self.refs.sampler
    }

    /// The writer.
    pub fn writer(&self) -> &ActorRef<WriterMsg> {
        &self.refs.writer
    }
}
