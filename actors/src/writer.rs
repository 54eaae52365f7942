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
//!   [`WriterMsg::GetHotFunctions`] exact (see `HotTally`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::thread::{self, JoinHandle};

use ractor::{ActorRef, RpcReplyPort};
use tracing::{debug, trace, warn};

use crate::error::{Error, ErrorKind};
use crate::format::{EncodeError, Encoder, Record, Sample, Summary};
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
    pub(crate) batches: flume::Receiver<Vec<Sample>>,
    /// Where emptied buffers go back to the sampler.
    pub(crate) free: flume::Sender<Vec<Sample>>,
    /// For the barrier before each batch (records first).
    pub(crate) registry: ActorRef<RegistryMsg>,
    /// The tracing dispatcher of the thread that started the profiler.
    pub(crate) dispatch: tracing::Dispatch,
    /// PC + time to function, for the live hot-function tally.
    resolver: Resolver,
    /// Samples per function.
    tally: HotTally,
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
    Batch(Option<Vec<Sample>>),
}

impl WriterThread {
    pub(crate) fn new(
        encoder: Encoder<Sink>,
        inbox: flume::Receiver<WriterCmd>,
        batches: flume::Receiver<Vec<Sample>>,
        free: flume::Sender<Vec<Sample>>,
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

    fn write_batch(&mut self, mut batch: Vec<Sample>) {
        self.drain_records();
        for s in &batch {
            if let Some(i) = self.resolver.resolve(s.pc, s.time_ns) {
                self.tally.hit(i);
            }
        }
        // Every later sample is stamped after this batch's last (the
        // sampler's readings increase from tick to tick, and batches arrive
        // in the order sealed), so no later sample falls in a generation
        // unloaded before it (alive over `(loaded, unloaded]`).
        if let Some(last) = batch.last() {
            self.resolver.forget_unloaded_before(last.time_ns);
            self.tally.forget_unloaded_before(last.time_ns);
        }
        let n = batch.len() as u64;
        if self.broken {
            self.stats.samples_dropped += n;
            warn!(name: "writer.dropped", samples = n, "the output has failed; batch dropped");
        } else {
            match self.encoder.write_samples(&batch) {
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
    fn write_batch_guarded(&mut self, batch: Vec<Sample>) {
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
    /// resolver's).
    live: HashMap<usize, Tallied>,
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
    hits: u64,
    name: String,
    addr: u64,
}

impl HotTally {
    /// A new function; returns its index.
    pub(crate) fn add(&mut self, name: &str, addr: u64) -> usize {
        let index = self.next;
        self.next += 1;
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
        if let Some(t) = self.live.get_mut(&index) {
            t.hits += 1;
            self.total += 1;
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
            let Some(t) = self.live.remove(&index) else {
                continue;
            };
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
        let live = self.live.iter().map(|(&i, t)| (i, t));
        let dead = self.dead.iter().map(|Reverse((_, Reverse(i), t))| (*i, t));
        for (i, t) in live.chain(dead).filter(|(_, t)| t.hits > 0) {
            all.insert((Reverse(t.hits), i), t);
        }
        all.into_values()
            .take(n)
            .map(|t| HotFunction {
                name: t.name.clone(),
                addr: t.addr,
                samples: t.hits,
                share: t.hits as f64 / self.total.max(1) as f64,
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
