//! The writer actor: serialises records and sample batches to the output.
//!
//! - Runs on its own thread ("pcprof-writer") so disk I/O never delays a
//!   tick, nor the actors on the async runtime.
//! - Two inputs: the record inbox (registry records and control, unbounded:
//!   they are few) and the batch channel from the sampler (bounded by the
//!   buffer pool). A written batch's buffer goes back to the pool.
//! - Before a batch it asks the registry for a barrier, then writes every
//!   record that came in: so each function record precedes the samples that
//!   fall in it, whichever thread registered it.
//! - Each batch, and each burst of records, is flushed to the OS when
//!   written, so a killed process loses at most the samples not yet handed
//!   over (at most one flush interval); the closing summary is followed by a
//!   flush and an fsync.
//! - A panic while writing (an embedder's sink) is caught: the output is
//!   broken like after an I/O error and the supervisor is told.
//! - An I/O error does not stop the profiler: it is kept (first one wins) and
//!   counted, later samples are counted as dropped, and `stop` returns it.
//! - Its memory follows the live code, not the churn: samples come in time
//!   order (the sampler stamps each tick later than the last), so once a
//!   batch is tallied no later sample can fall in a generation unloaded
//!   before its last sample; such generations leave the resolver, and their
//!   tallies leave too, except the [`HOT_DEAD_KEPT`] hottest, which keep
//!   [`WriterMsg::GetHotFunctions`] exact (see `HotTally`). The one cost
//!   of churn kept is the tally's count slot: 8 bytes a function ever
//!   registered, so that a sample is counted by index, without hashing.
//! - A sample reaches the tally through a direct-mapped PC memo (`PcMemo`):
//!   thousands of parked interpreters repeat their PCs every tick,
//!   interleaved, which the resolver's own last-answer memo cannot catch.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::thread::{self, JoinHandle};

use ractor::{ActorRef, RpcReplyPort};
use tracing::{debug, trace, warn};

use crate::error::{Error, ErrorKind};
use crate::format::{EncodeError, Encoder, Record, SampleBuffer, Summary};
use crate::messages::registry::RegistryMsg;
use crate::messages::writer::WriterCmd;
pub use crate::messages::writer::{HotFunction, WriterMsg, WriterStats};
use crate::resolve::Resolver;
use crate::stats::Stats;
use crate::sys;
use crate::watch::{ThreadEvent, Watch, panic_message};

/// Where the bytes go.
pub(crate) enum Sink {
    File {
        path: PathBuf,
        file: BufWriter<File>,
    },
    Custom(Box<dyn Write + Send>),
    /// The output, with a copy of its bytes for a tee's consumer.
    Teed {
        inner: Box<Sink>,
        tee: crate::tee::TeeWriter,
    },
}

impl Sink {
    fn label(&self) -> PathBuf {
        match self {
            Sink::File { path, .. } => path.clone(),
            Sink::Custom(_) => PathBuf::from("<writer>"),
            Sink::Teed { inner, .. } => inner.label(),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        match self {
            Sink::File { file, .. } => file.get_ref().sync_all(),
            Sink::Custom(_) => Ok(()),
            Sink::Teed { inner, .. } => inner.sync(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File { file, .. } => file.write(buf),
            Sink::Custom(w) => w.write(buf),
            Sink::Teed { inner, tee } => {
                let n = inner.write(buf)?;
                tee.copy(&buf[..n]);
                Ok(n)
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::File { file, .. } => file.write_all(buf),
            Sink::Custom(w) => w.write_all(buf),
            Sink::Teed { inner, tee } => {
                inner.write_all(buf)?;
                tee.copy(buf);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File { file, .. } => file.flush(),
            Sink::Custom(w) => w.flush(),
            // A flush ends on a record boundary: the chunk is handed over
            // (never waiting), whatever the output's own flush does.
            Sink::Teed { inner, tee } => {
                let flushed = inner.flush();
                tee.hand_over();
                flushed
            }
        }
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({})", self.label().display())
    }
}

/// The writer thread's state.
pub(crate) struct WriterThread {
    /// Serialises records and batches into the output.
    pub(crate) encoder: Encoder<Sink>,
    /// Records, queries and the shutdown step.
    pub(crate) inbox: flume::Receiver<WriterCmd>,
    /// Full batches from the sampler.
    pub(crate) batches: flume::Receiver<SampleBuffer>,
    /// Where emptied buffers go back to the sampler.
    pub(crate) free: flume::Sender<SampleBuffer>,
    /// For the barrier before each batch (records first).
    pub(crate) registry: ActorRef<RegistryMsg>,
    /// The tracing dispatcher of the thread that started the profiler.
    pub(crate) dispatch: tracing::Dispatch,
    /// PC + time to function, for the live hot-function tally.
    resolver: Resolver,
    /// Samples per function.
    tally: HotTally,
    /// Repeated PCs tallied without asking the resolver (`PcMemo`).
    memo: PcMemo,
    /// Counters, and the first error.
    stats: WriterStats,
    /// The output has failed: nothing more is written, samples are dropped.
    broken: bool,
    /// Control commands met while draining records; handled once the batch
    /// at hand is written, so their answers cover it.
    deferred: std::collections::VecDeque<WriterCmd>,
    /// The shutdown's `Finish`, once received: done after the deferred.
    finish: Option<(Box<Stats>, u64, RpcReplyPort<WriterStats>)>,
    /// Records written since the last flush to the OS.
    unflushed: bool,
    /// Reports a caught panic and the thread's exit to the supervisor.
    watch: Watch,
}

/// What the writer thread waits for.
#[allow(clippy::large_enum_variant)] // as `WriterCmd`
enum Ev {
    Cmd(Option<WriterCmd>),
    Batch(Option<SampleBuffer>),
}

impl WriterThread {
    pub(crate) fn new(
        encoder: Encoder<Sink>,
        inbox: flume::Receiver<WriterCmd>,
        batches: flume::Receiver<SampleBuffer>,
        free: flume::Sender<SampleBuffer>,
        registry: ActorRef<RegistryMsg>,
        dispatch: tracing::Dispatch,
        watch: Watch,
    ) -> WriterThread {
        let bytes = encoder.bytes_written();
        WriterThread {
            encoder,
            inbox,
            batches,
            free,
            registry,
            dispatch,
            resolver: Resolver::new(),
            tally: HotTally::default(),
            memo: PcMemo::new(),
            stats: WriterStats {
                bytes_written: bytes,
                ..WriterStats::default()
            },
            broken: false,
            deferred: std::collections::VecDeque::new(),
            finish: None,
            unflushed: false,
            watch,
        }
    }

    pub(crate) fn spawn(self) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("pcprof-writer".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let dispatch = self.dispatch.clone();
        let _guard = tracing::dispatcher::set_default(&dispatch);
        debug!(name: "writer.started", format = %self.encoder.format());
        let mut batches_open = true;
        loop {
            let ev = if let Some(cmd) = self.deferred.pop_front() {
                Ev::Cmd(Some(cmd))
            } else if let Some((stats, stopped_ns, reply)) = self.finish.take() {
                // A panic here drops the reply port: the supervisor's step
                // sees it and reports the writer.
                let _ = self.guarded(|w| w.finish(*stats, stopped_ns, reply));
                break;
            } else if batches_open {
                flume::Selector::new()
                    .recv(&self.inbox, |r| Ev::Cmd(r.ok()))
                    .recv(&self.batches, |r| Ev::Batch(r.ok()))
                    .wait()
            } else {
                Ev::Cmd(self.inbox.recv().ok())
            };
            match ev {
                Ev::Batch(Some(batch)) => self.write_batch_guarded(batch),
                Ev::Batch(None) => batches_open = false,
                Ev::Cmd(Some(cmd)) => {
                    self.guarded(|w| {
                        w.handle(cmd);
                        // Records reach the OS when they are made: a burst of
                        // them (registrations) is written with one flush.
                        if w.unflushed && w.inbox.is_empty() {
                            w.flush_output("write");
                        }
                    });
                }
                Ev::Cmd(None) => {
                    // Every sender is gone without a Finish: the supervisor
                    // died. Keep what was received.
                    let _ = self.guarded(|w| {
                        w.drain_batches();
                        let _ = w.encoder.get_mut().sync();
                    });
                    warn!(name: "writer.orphaned", "writer closed without a summary");
                    break;
                }
            }
        }
        debug!(name: "writer.exited", samples = self.stats.samples_written);
        self.watch.report(ThreadEvent::Exited);
    }

    /// Runs one step, catching a panic (an embedder's sink, or a bug): the
    /// output is then broken like after an I/O error, later samples are
    /// counted as dropped, the supervisor is told, and the thread goes on
    /// answering so that the shutdown completes.
    /// Returns whether the step completed.
    fn guarded(&mut self, step: impl FnOnce(&mut WriterThread)) -> bool {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self)));
        let Err(payload) = caught else {
            return true;
        };
        {
            let msg = panic_message(payload.as_ref());
            let label = self.encoder.get_mut().label();
            self.fail(Error::actor(
                "writer",
                format!("panicked while writing to {}: {msg}", label.display()),
            ));
            self.watch.report(ThreadEvent::Panicked(msg));
        }
        false
    }

    /// Flushes the output to the OS; a failure breaks it.
    fn flush_output(&mut self, operation: &'static str) {
        self.unflushed = false;
        if self.broken {
            return;
        }
        if let Err(e) = self.encoder.get_mut().flush() {
            let path = self.encoder.get_mut().label();
            self.fail(Error::io(path, operation, e));
        }
    }

    fn handle(&mut self, cmd: WriterCmd) {
        match cmd {
            WriterCmd::Record(record) => self.write_record(record),
            WriterCmd::Query(WriterMsg::Flush(reply)) => {
                trace!(name: "writer.flush", "flush");
                self.drain_batches();
                let _ = self.guarded(|w| w.flush_output("flush"));
                let _ = reply.send(self.current_stats());
            }
            WriterCmd::Query(WriterMsg::GetStats(reply)) => {
                trace!(name: "writer.stats", "stats");
                let _ = reply.send(self.current_stats());
            }
            WriterCmd::Query(WriterMsg::GetHotFunctions(n, reply)) => {
                trace!(name: "writer.hot_functions", n);
                let _ = reply.send(self.hot(n));
            }
            WriterCmd::Finish {
                stats,
                stopped_ns,
                reply,
            } => {
                trace!(name: "writer.finish", stopped_ns);
                self.finish = Some((stats, stopped_ns, reply));
            }
        }
    }

    fn current_stats(&mut self) -> WriterStats {
        let tee = match self.encoder.get_mut() {
            Sink::Teed { tee, .. } => tee.counts(),
            _ => crate::tee::TeeCounts::default(),
        };
        WriterStats {
            bytes_written: self.encoder.bytes_written(),
            cpu_ns: sys::thread_cpu_ns(),
            push_intervals_pushed: tee.pushed,
            push_intervals_dropped: tee.dropped,
            push_chunks_dropped: tee.chunks_dropped,
            ..self.stats.clone()
        }
    }

    fn hot(&self, n: usize) -> Vec<HotFunction> {
        self.tally.hot(n)
    }

    fn fail(&mut self, e: Error) {
        warn!(name: "writer.error", error = %e);
        self.stats.errors += 1;
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(e);
        }
        self.broken = true;
    }

    fn encode_failed(&mut self, what: &'static str, e: EncodeError) {
        let err = match e {
            EncodeError::Io(io) => Error::io(self.encoder.get_mut().label(), "write", io),
            EncodeError::Encode(reason) => ErrorKind::Encode {
                record: what,
                reason,
            }
            .into(),
        };
        self.fail(err);
    }

    fn write_record(&mut self, record: Record) {
        trace!(name: "writer.record", kind = record.kind());
        match &record {
            Record::Function(f) => {
                let index = self.tally.add(&f.name, f.addr);
                self.resolver
                    .add(index, f.addr, f.code.len() as u64, f.loaded_ns);
            }
            Record::Unload(u) => {
                if let Some(index) = self.resolver.unload(u.addr, u.unloaded_ns) {
                    self.tally.unloaded(index, u.unloaded_ns);
                }
            }
            _ => {}
        }
        if self.broken {
            return;
        }
        match self.encoder.write(&record) {
            Ok(_) => self.unflushed = true,
            Err(e) => self.encode_failed(record.kind(), e),
        }
    }

    /// Writes every record that has arrived (after the registry's barrier,
    /// that includes every registration made before the current batch).
    fn drain_records(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.registry.cast(RegistryMsg::Barrier(tx.into())).is_ok() {
            // Not a runtime thread, so blocking here is allowed.
            let _ = rx.blocking_recv();
        }
        while let Ok(cmd) = self.inbox.try_recv() {
            match cmd {
                WriterCmd::Record(r) => self.write_record(r),
                // Control waits until the batch at hand is written.
                other => self.deferred.push_back(other),
            }
        }
    }

    fn write_batch(&mut self, mut batch: SampleBuffer) {
        self.drain_records();
        // Records written since the last batch may have queued loads and
        // unloads: the memo holds only until the earliest.
        self.memo.begin(&self.resolver);
        for s in &batch.samples {
            self.memo
                .tally(&mut self.resolver, &mut self.tally, s.pc, s.time_ns);
        }
        self.memo.flush(&mut self.tally);
        // Every later sample is stamped after this batch's last (the
        // sampler's readings increase from tick to tick, and batches arrive
        // in the order sealed), so no later sample falls in a generation
        // unloaded before it (alive over `(loaded, unloaded]`).
        if let Some(last) = batch.samples.last() {
            self.resolver.forget_unloaded_before(last.time_ns);
            self.tally.forget_unloaded_before(last.time_ns);
        }
        let n = batch.len() as u64;
        if self.broken {
            self.stats.samples_dropped += n;
            warn!(name: "writer.dropped", samples = n, "the output has failed; batch dropped");
        } else {
            match self.encoder.write_buffer(&mut batch) {
                Ok(_) => {
                    // Flushed per batch: a killed process loses at most the
                    // batch being sampled.
                    self.flush_output("write");
                    if self.broken {
                        self.stats.samples_dropped += n;
                    } else {
                        self.stats.samples_written += n;
                        self.stats.batches_written += 1;
                    }
                }
                Err(e) => {
                    self.encode_failed("samples", e);
                    self.stats.samples_dropped += n;
                }
            }
        }
        trace!(name: "writer.batch", batch_len = n);
        batch.clear();
        // The pool has room for every buffer, so this only fails when the
        // sampler has exited; the buffer is then simply freed.
        let _ = self.free.try_send(batch);
    }

    /// Writes a batch; if that panics, its samples are counted as dropped
    /// (a sample counts as written only once written and flushed).
    fn write_batch_guarded(&mut self, batch: SampleBuffer) {
        let n = batch.len() as u64;
        if !self.guarded(|w| w.write_batch(batch)) {
            self.stats.samples_dropped += n;
        }
    }

    /// Every batch and record that has arrived. Each step is guarded, so a
    /// panicking sink never keeps the caller (a flush, the finish) from
    /// answering.
    fn drain_batches(&mut self) {
        while let Ok(batch) = self.batches.try_recv() {
            self.write_batch_guarded(batch);
        }
        let _ = self.guarded(|w| w.drain_records());
    }

    fn finish(&mut self, mut stats: Stats, stopped_ns: u64, reply: RpcReplyPort<WriterStats>) {
        self.drain_batches();
        stats.samples_written = self.stats.samples_written;
        stats.samples_dropped += self.stats.samples_dropped;
        stats.batches_written = self.stats.batches_written;
        stats.bytes_written = self.encoder.bytes_written();
        stats.writer_cpu_ns = sys::thread_cpu_ns();
        stats.errors += self.stats.errors;
        if stats.first_error.is_none() {
            stats.first_error = self.stats.first_error.as_ref().map(|e| e.to_string());
        }
        let _ = self.guarded(|w| {
            // The tee's end: its last chunk, then a bounded wait for the
            // consumer; the push record precedes the summary.
            w.flush_output("write");
            let push = match w.encoder.get_mut() {
                Sink::Teed { tee, .. } => Some(tee.finish(stopped_ns)),
                _ => None,
            };
            if let Some(p) = push {
                stats.push_intervals_pushed = p.intervals_pushed;
                stats.push_intervals_dropped = p.intervals_dropped;
                stats.push_chunks_dropped = p.chunks_dropped;
                if !w.broken
                    && w.encoder.format() == crate::format::Format::Native
                    && let Err(e) = w.encoder.write(&Record::Push(p))
                {
                    w.encode_failed("push", e);
                }
            }
            if !w.broken {
                let summary = Record::Summary(Summary { stopped_ns, stats });
                if let Err(e) = w.encoder.write(&summary) {
                    w.encode_failed("summary", e);
                }
            }
            if !w.broken
                && let Err(e) = w.encoder.get_mut().sync()
            {
                let path = w.encoder.get_mut().label();
                w.fail(Error::io(path, "sync", e));
            }
        });
        debug!(
            name: "writer.finished",
            samples = self.stats.samples_written,
            bytes = self.encoder.bytes_written()
        );
        let _ = reply.send(self.current_stats());
    }
}

/// Slots of [`PcMemo`]: a power of two, a few times the distinct PCs of
/// one tick with 10 000 interpreters parked (1 MiB).
const MEMO_SLOTS: usize = 32_768;

/// A direct-mapped memo of PC → function for the hot-function tally, with
/// the hits counted in it and handed to [`HotTally`] when a slot is reused
/// and at the end of each batch. Thousands of interpreters parked on their
/// PCs put the same PCs in every tick, interleaved (no two in a row alike),
/// so the resolver's own last-answer memo misses each time and each sample
/// cost a lookup and a hashed map update: about two thirds of the writer's
/// time per sample. An answer holds for its PC while the resolver's live
/// code stands (its epoch, and no sample later than its next change):
/// entries of an older generation of the memo are never reused.
#[derive(Debug)]
struct PcMemo {
    /// (pc, function index, generation, hits not yet tallied).
    slots: Box<[(u64, usize, u64, u64)]>,
    /// Slots holding hits not yet tallied.
    dirty: Vec<u32>,
    /// The memo's generation: bumped when the resolver's code changes.
    generation: u64,
    /// The resolver's epoch the generation stands for.
    epoch: u64,
    /// No entry holds for samples later than this.
    valid_until: u64,
}

impl PcMemo {
    fn new() -> PcMemo {
        PcMemo {
            slots: vec![(0, 0, 0, 0); MEMO_SLOTS].into_boxed_slice(),
            dirty: Vec::new(),
            generation: 1,
            epoch: u64::MAX,
            valid_until: 0,
        }
    }

    /// Before a batch: the resolver may have changed since the last one
    /// (records written between batches queue loads and unloads).
    fn begin(&mut self, resolver: &Resolver) {
        if resolver.epoch() != self.epoch {
            self.generation += 1;
            self.epoch = resolver.epoch();
        }
        self.valid_until = self.valid_until.min(resolver.next_change());
    }

    /// Counts the sample at `pc`, `time_ns` in `tally`, as
    /// `tally.hit(resolver.resolve(pc, time_ns))` would.
    #[inline]
    fn tally(&mut self, resolver: &mut Resolver, tally: &mut HotTally, pc: u64, time_ns: u64) {
        if time_ns <= self.valid_until {
            let slot = &mut self.slots[Self::slot_of(pc)];
            if slot.0 == pc && slot.2 == self.generation {
                if slot.3 == 0 {
                    self.dirty.push(Self::slot_of(pc) as u32);
                }
                slot.3 += 1;
                return;
            }
        }
        let hit = resolver.resolve_hit(pc, time_ns);
        if resolver.epoch() != self.epoch || time_ns > self.valid_until {
            // The live code changed or time passed its next change: every
            // entry is stale (its hits still count, when tallied).
            self.generation += 1;
            self.epoch = resolver.epoch();
            self.valid_until = resolver.next_change();
        }
        let Some(hit) = hit else { return };
        if hit.span.is_none() {
            // Resolved by time, not by live code: never memoized.
            tally.hit(hit.index);
            return;
        }
        let i = Self::slot_of(pc);
        let slot = &mut self.slots[i];
        if slot.3 > 0 {
            tally.hit_n(slot.1, slot.3);
        } else {
            self.dirty.push(i as u32);
        }
        *slot = (pc, hit.index, self.generation, 1);
    }

    /// Tallies every hit still held.
    fn flush(&mut self, tally: &mut HotTally) {
        for i in self.dirty.drain(..) {
            let slot = &mut self.slots[i as usize];
            if slot.3 > 0 {
                tally.hit_n(slot.1, slot.3);
                slot.3 = 0;
            }
        }
    }

    #[inline]
    fn slot_of(pc: u64) -> usize {
        // Fibonacci hashing: PCs a few bytes apart spread over the slots.
        (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - MEMO_SLOTS.trailing_zeros())) as usize
    }
}

/// Dead functions whose tallies are kept after they leave the resolver:
/// [`WriterMsg::GetHotFunctions`] is exact for `n` up to this.
pub const HOT_DEAD_KEPT: usize = 1024;

/// Samples per function for the hot-function query, bounded by the live
/// functions plus the [`HOT_DEAD_KEPT`] hottest dead ones.
///
/// Exact for the functions it reports, for any `n <= HOT_DEAD_KEPT`: a dead
/// function's count is final, and one is dropped only when `HOT_DEAD_KEPT`
/// dead functions with at least as many samples are kept (ties favour the
/// earlier registration, as the query's order does), so it could never be
/// among the `n` hottest.
#[derive(Debug, Default)]
pub(crate) struct HotTally {
    /// Live functions, and unloaded ones not yet forgotten, by index (the
    /// resolver's); their counts are in `counts`.
    live: HashMap<usize, Tallied>,
    /// Samples per function, by index: a hit is one indexed add, no hashing
    /// (10 000 parked interpreters make 10 M a second). A forgotten
    /// function's slot stays at 0: 8 bytes a function ever registered.
    counts: Vec<u64>,
    /// Unloaded functions awaiting the time when no sample can fall in them
    /// any more: (unload time, index), in the order the unloads arrived.
    unloaded: VecDeque<(u64, usize)>,
    /// The hottest forgotten functions; the least hot on top.
    dead: BinaryHeap<Reverse<(u64, Reverse<usize>, Tallied)>>,
    /// The index the next function gets.
    next: usize,
    /// Samples tallied in any function, forgotten ones too.
    total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Tallied {
    /// Kept here once dead; a live function's are in `HotTally::counts`.
    hits: u64,
    name: String,
    addr: u64,
}

impl HotTally {
    /// A new function; returns its index.
    pub(crate) fn add(&mut self, name: &str, addr: u64) -> usize {
        let index = self.next;
        self.next += 1;
        self.counts.push(0);
        self.live.insert(
            index,
            Tallied {
                hits: 0,
                name: name.to_string(),
                addr,
            },
        );
        index
    }

    pub(crate) fn hit(&mut self, index: usize) {
        self.hit_n(index, 1);
    }

    /// `n` samples in the function at `index`.
    pub(crate) fn hit_n(&mut self, index: usize, n: u64) {
        // Indices come from `add`; a forgotten one is never resolved again.
        if let Some(c) = self.counts.get_mut(index) {
            *c += n;
            self.total += n;
        }
    }

    pub(crate) fn unloaded(&mut self, index: usize, unloaded_ns: u64) {
        self.unloaded.push_back((unloaded_ns, index));
    }

    /// Moves functions unloaded before `time_ns` to the dead, keeping the
    /// hottest [`HOT_DEAD_KEPT`]. Unloads stamped on different threads may
    /// arrive slightly out of order: one behind a later stamp waits for it.
    pub(crate) fn forget_unloaded_before(&mut self, time_ns: u64) {
        while let Some(&(unloaded_ns, index)) = self.unloaded.front() {
            if unloaded_ns >= time_ns {
                break;
            }
            self.unloaded.pop_front();
            let Some(mut t) = self.live.remove(&index) else {
                continue;
            };
            t.hits = std::mem::take(&mut self.counts[index]);
            if t.hits == 0 {
                continue;
            }
            self.dead.push(Reverse((t.hits, Reverse(index), t)));
            if self.dead.len() > HOT_DEAD_KEPT {
                self.dead.pop();
            }
        }
    }

    /// The `n` functions with the most samples, ties in registration order.
    pub(crate) fn hot(&self, n: usize) -> Vec<HotFunction> {
        let mut all: BTreeMap<(Reverse<u64>, usize), &Tallied> = BTreeMap::new();
        let live = self.live.iter().map(|(&i, t)| (i, self.counts[i], t));
        let dead = self
            .dead
            .iter()
            .map(|Reverse((_, Reverse(i), t))| (*i, t.hits, t));
        for (i, hits, t) in live.chain(dead).filter(|&(_, hits, _)| hits > 0) {
            all.insert((Reverse(hits), i), t);
        }
        all.into_iter()
            .take(n)
            .map(|((Reverse(hits), _), t)| HotFunction {
                name: t.name.clone(),
                addr: t.addr,
                samples: hits,
                share: hits as f64 / self.total.max(1) as f64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(hot: &[HotFunction]) -> Vec<(&str, u64)> {
        hot.iter().map(|h| (h.name.as_str(), h.samples)).collect()
    }

    /// The memo tallies exactly what asking the resolver for every sample
    /// does, through loads and unloads at the same addresses between and
    /// within batches (queued for later times), samples that fall outside
    /// every function, and PCs that collide in the memo's slots.
    #[test]
    fn the_pc_memo_tallies_as_the_resolver_does() {
        let (mut plain_r, mut plain_t) = (Resolver::new(), HotTally::default());
        let (mut memo_r, mut memo_t) = (Resolver::new(), HotTally::default());
        let mut memo = PcMemo::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        // Ten addresses 0x1000 apart, each holding a 0x100-byte function
        // that is reloaded now and then; PCs also every MEMO_SLOTS × 8
        // bytes (colliding slots) and outside any function.
        let mut time = 1_000u64;
        let mut loaded = [false; 10];
        let mut generation = 0;
        for _batch in 0..200 {
            for _ in 0..rand(4) {
                let a = rand(10) as usize;
                let addr = 0x10_000 + 0x1000 * a as u64;
                let at = time + rand(3_000);
                if loaded[a] {
                    let (p, m) = (plain_r.unload(addr, at), memo_r.unload(addr, at));
                    assert_eq!(p, m);
                    if let Some(i) = p {
                        plain_t.unloaded(i, at);
                        memo_t.unloaded(i, at);
                    }
                }
                generation += 1;
                let name = format!("f{a}.{generation}");
                let (p, m) = (plain_t.add(&name, addr), memo_t.add(&name, addr));
                assert_eq!(p, m);
                plain_r.add(p, addr, 0x100, at + 1);
                memo_r.add(m, addr, 0x100, at + 1);
                loaded[a] = true;
            }
            memo.begin(&memo_r);
            let mut last = time;
            for _ in 0..rand(300) {
                time += rand(40);
                last = time;
                let pc = match rand(4) {
                    0 => 0x10_000 + 0x1000 * rand(10) + rand(0x100),
                    1 => 0x10_000 + 0x1000 * rand(10) + 0x10 * rand(2),
                    2 => 0x10_000 + 0x1000 * rand(2) + (MEMO_SLOTS as u64 * 8) * rand(3),
                    _ => 0x90_000 + rand(0x40),
                };
                if let Some(i) = plain_r.resolve(pc, time) {
                    plain_t.hit(i);
                }
                memo.tally(&mut memo_r, &mut memo_t, pc, time);
            }
            memo.flush(&mut memo_t);
            plain_r.forget_unloaded_before(last);
            plain_t.forget_unloaded_before(last);
            memo_r.forget_unloaded_before(last);
            memo_t.forget_unloaded_before(last);
            assert_eq!(plain_t.total, memo_t.total);
        }
        assert!(plain_t.total > 10_000, "{} samples tallied", plain_t.total);
        assert_eq!(plain_t.hot(HOT_DEAD_KEPT), memo_t.hot(HOT_DEAD_KEPT));
    }

    /// Dead functions beyond the hottest `HOT_DEAD_KEPT` are forgotten, yet
    /// the top list and its shares are those of the full tally.
    #[test]
    fn forgotten_functions_never_change_the_top_list() {
        let mut t = HotTally::default();
        let live = t.add("live", 1);
        for _ in 0..5 {
            t.hit(live);
        }
        // Many dead functions: f{i} has i % 7 samples.
        let n = 3 * HOT_DEAD_KEPT;
        for i in 0..n {
            let f = t.add(&format!("f{i}"), 100 + i as u64);
            for _ in 0..i % 7 {
                t.hit(f);
            }
            t.unloaded(f, i as u64);
        }
        let before = t.hot(HOT_DEAD_KEPT);
        // Not yet forgotten: an unload at or after the time stays.
        t.forget_unloaded_before(0);
        assert_eq!(t.live.len(), n + 1);
        t.forget_unloaded_before(u64::MAX);
        assert_eq!(t.live.len(), 1);
        assert_eq!(t.dead.len(), HOT_DEAD_KEPT);
        assert_eq!(t.hot(HOT_DEAD_KEPT), before);
        let top = t.hot(3);
        assert_eq!(names(&top), [("f6", 6), ("f13", 6), ("f20", 6)]);
        let total: u64 = (0..n as u64).map(|i| i % 7).sum::<u64>() + 5;
        assert_eq!(top[0].share, 6.0 / total as f64);
        // The live one keeps counting.
        t.hit(live);
        assert_eq!(
            t.hot(usize::MAX)
                .iter()
                .find(|h| h.name == "live")
                .map(|h| h.samples),
            Some(6)
        );
    }
}
