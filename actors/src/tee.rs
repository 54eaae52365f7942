//! A bounded tee of the writer's output to a consumer thread (continuous
//! profiling: `pcprof::push` cuts the stream into intervals and pushes
//! them).
//!
//! - The writer's sink copies every byte it writes (the native stream, the
//!   same bytes the file gets) into a pending buffer and hands it over, as
//!   one chunk, at each flush: so a chunk always ends on a record boundary.
//!   The hand-over is a `try_send` on a bounded queue: the writer never
//!   waits for the consumer.
//! - A full queue drops the chunk, counts it, and cuts the stream for good
//!   (a stream with a hole would resolve later samples against missing
//!   records): nothing more is sent but the end. The file is never
//!   affected.
//! - The consumer runs on its own thread ("pcprof-tee"), started with the
//!   profiler; it reads the stream with [`TeeStream`] (a [`Read`]: end of
//!   stream at the profiler's stop) and reports what became of each
//!   interval with a [`TeeReporter`]. The writer sums the reports into its
//!   statistics (`stats()`) and, at the stop, into the file's push record.
//! - At the stop the writer sends the end, then waits a bounded time
//!   ([`Tee::finish_wait`]) for the consumer to say it is done with the last
//!   interval; intervals still in flight then are counted as dropped, so
//!   `stop()` returns within the actor timeout whatever the consumer does.

use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::format::PushRecord;

/// Default chunks queued between the writer and the consumer.
pub const DEFAULT_TEE_CAPACITY: usize = 64;

/// What the writer sends the consumer.
enum TeeMsg {
    /// Bytes of the stream, ending on a record boundary.
    Chunk(Vec<u8>),
    /// The end (the profiler stops): the consumer answers on `done` once it
    /// is done with the last interval; `cut`: the stream lost a chunk.
    End { cut: bool, done: flume::Sender<()> },
}

/// What the consumer reports, as increments.
#[derive(Clone, Copy, Debug)]
enum Report {
    /// An interval was handed to the pusher.
    Queued,
    /// An interval reached the server.
    Pushed,
    /// An interval was dropped (a full queue, a server that refused it or
    /// never answered, a cut stream).
    Dropped,
    /// The consumer has read the end and dealt with the last interval
    /// (queued or dropped it).
    Ended,
}

/// The consumer of a tee: runs on the "pcprof-tee" thread.
pub type TeeConsumer = Box<dyn FnOnce(TeeStream, TeeReporter) + Send>;

/// A tee of the writer's output: the builder option
/// ([`ProfilerBuilder::tee`](crate::ProfilerBuilder::tee)).
pub struct Tee {
    /// Chunks queued at most.
    pub capacity: usize,
    /// The longest the stop waits for the consumer; `None`: half the actor
    /// timeout.
    pub finish_wait: Option<Duration>,
    /// What reads the stream.
    pub consumer: TeeConsumer,
}

impl fmt::Debug for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tee")
            .field("capacity", &self.capacity)
            .field("finish_wait", &self.finish_wait)
            .finish_non_exhaustive()
    }
}

impl Tee {
    /// A tee of [`DEFAULT_TEE_CAPACITY`] chunks to `consumer`.
    pub fn new(consumer: impl FnOnce(TeeStream, TeeReporter) + Send + 'static) -> Tee {
        Tee {
            capacity: DEFAULT_TEE_CAPACITY,
            finish_wait: None,
            consumer: Box::new(consumer),
        }
    }

    /// Starts the consumer thread; returns the writer's end.
    pub(crate) fn start(self, actor_timeout: Duration) -> io::Result<TeeWriter> {
        let (chunks_tx, chunks_rx) = flume::bounded(self.capacity.max(1));
        let (reports_tx, reports_rx) = flume::unbounded();
        let consumer = self.consumer;
        let stream = TeeStream {
            chunks: chunks_rx,
            chunk: Vec::new(),
            at: 0,
            done: None,
            cut: false,
        };
        let reporter = TeeReporter { tx: reports_tx };
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::Builder::new()
            .name("pcprof-tee".into())
            .spawn(move || {
                let _guard = tracing::dispatcher::set_default(&dispatch);
                consumer(stream, reporter);
            })?;
        Ok(TeeWriter {
            tx: chunks_tx,
            reports: reports_rx,
            pending: Vec::new(),
            cut: false,
            counts: TeeCounts::default(),
            ended: false,
            finish_wait: self.finish_wait.unwrap_or(actor_timeout / 2),
        })
    }
}

/// What the tee counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TeeCounts {
    /// Intervals handed to the pusher.
    pub queued: u64,
    /// Intervals the server took.
    pub pushed: u64,
    /// Intervals dropped.
    pub dropped: u64,
    /// Chunks of the stream dropped (the first one cuts the stream).
    pub chunks_dropped: u64,
}

/// The writer's end of a tee (inside its sink).
pub(crate) struct TeeWriter {
    tx: flume::Sender<TeeMsg>,
    reports: flume::Receiver<Report>,
    pending: Vec<u8>,
    cut: bool,
    counts: TeeCounts,
    /// The consumer reported the end.
    ended: bool,
    finish_wait: Duration,
}

impl TeeWriter {
    /// Bytes written to the output.
    pub(crate) fn copy(&mut self, bytes: &[u8]) {
        if !self.cut {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// Hands the pending bytes over without waiting; a full queue drops
    /// them and cuts the stream.
    pub(crate) fn hand_over(&mut self) {
        // Sums the reports as they come, so their channel stays short
        // however rarely the statistics are asked.
        self.counts();
        if self.cut || self.pending.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.pending);
        match self.tx.try_send(TeeMsg::Chunk(chunk)) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(_)) => {
                self.counts.chunks_dropped += 1;
                self.cut = true;
                tracing::warn!(
                    name: "tee.cut",
                    "the tee's consumer fell behind: its stream is cut (the file is not affected)"
                );
            }
            // The consumer has gone: nothing to count but the bytes.
            Err(flume::TrySendError::Disconnected(_)) => self.cut = true,
        }
    }

    /// The counts so far, with the consumer's latest reports.
    pub(crate) fn counts(&mut self) -> TeeCounts {
        while let Ok(r) = self.reports.try_recv() {
            self.apply(r);
        }
        self.counts
    }

    fn apply(&mut self, r: Report) {
        match r {
            Report::Queued => self.counts.queued += 1,
            Report::Pushed => self.counts.pushed += 1,
            Report::Dropped => self.counts.dropped += 1,
            Report::Ended => self.ended = true,
        }
    }

    /// The end of the stream: waits at most `finish_wait` for the consumer
    /// to be done with the last interval; what is still in flight then
    /// counts as dropped. Returns the file's push record.
    pub(crate) fn finish(&mut self, stopped_ns: u64) -> PushRecord {
        self.hand_over();
        let deadline = Instant::now() + self.finish_wait;
        let (done_tx, done_rx) = flume::bounded(1);
        let end = TeeMsg::End {
            cut: self.cut,
            done: done_tx,
        };
        if self.tx.send_deadline(end, deadline).is_ok() {
            // First the consumer's word that the last interval is queued,
            // then that the queue is pushed; each within the deadline.
            while !self.ended {
                match self.reports.recv_deadline(deadline) {
                    Ok(r) => self.apply(r),
                    Err(_) => break,
                }
            }
            if self.ended {
                let _ = done_rx.recv_deadline(deadline);
            }
        }
        let mut c = self.counts();
        let in_flight = c.queued.saturating_sub(c.pushed + c.dropped);
        c.dropped += in_flight;
        if !self.ended {
            // The last interval never reached the queue.
            c.dropped += 1;
        }
        c.queued = c.pushed + c.dropped;
        self.counts = c;
        self.cut = true;
        PushRecord {
            stopped_ns,
            intervals_pushed: c.pushed,
            intervals_dropped: c.dropped,
            chunks_dropped: c.chunks_dropped,
        }
    }
}

/// The consumer's end: the writer's output as a byte stream, ending when
/// the profiler stops (or its writer is gone).
pub struct TeeStream {
    chunks: flume::Receiver<TeeMsg>,
    chunk: Vec<u8>,
    at: usize,
    done: Option<flume::Sender<()>>,
    cut: bool,
}

impl fmt::Debug for TeeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeeStream")
            .field("cut", &self.cut)
            .finish_non_exhaustive()
    }
}

impl TeeStream {
    /// Whether the stream was cut (a chunk dropped): what followed the cut
    /// is missing, so the last interval read is incomplete. Known at the
    /// end of the stream.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Tells the writer, waiting at the stop, that the consumer is done
    /// with the last interval. Dropping the stream says it too.
    pub fn done(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

impl Drop for TeeStream {
    fn drop(&mut self) {
        self.done();
    }
}

impl Read for TeeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done.is_some() {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(TeeMsg::Chunk(c)) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Ok(TeeMsg::End { cut, done }) => {
                    self.cut = cut;
                    self.done = Some(done);
                    return Ok(0);
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Reports what became of each interval; cloneable, for the threads that
/// push.
#[derive(Clone, Debug)]
pub struct TeeReporter {
    tx: flume::Sender<Report>,
}

impl TeeReporter {
    /// An interval was handed to the pusher (it will be reported pushed or
    /// dropped; one still in flight at the stop counts as dropped).
    pub fn queued(&self) {
        let _ = self.tx.send(Report::Queued);
    }

    /// A queued interval reached the server.
    pub fn pushed(&self) {
        let _ = self.tx.send(Report::Pushed);
    }

    /// A queued interval was given up.
    pub fn failed(&self) {
        let _ = self.tx.send(Report::Dropped);
    }

    /// An interval was dropped before it was queued.
    pub fn dropped(&self) {
        let _ = self.tx.send(Report::Queued);
        let _ = self.tx.send(Report::Dropped);
    }

    /// The end of the stream is read and the last interval queued or
    /// dropped: the stop now waits only for the queue.
    pub fn ended(&self) {
        let _ = self.tx.send(Report::Ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer that falls behind cuts the stream: the chunk that finds
    /// the queue full is counted, nothing after it is sent, and the
    /// consumer reads what came before, then the end, told of the cut.
    #[test]
    fn a_full_queue_cuts_the_stream_and_counts_the_chunk() {
        let (go_tx, go_rx) = flume::bounded::<()>(1);
        let (read_tx, read_rx) = flume::bounded(1);
        let tee = Tee {
            capacity: 1,
            finish_wait: Some(Duration::from_secs(60)),
            consumer: Box::new(move |mut stream: TeeStream, reporter: TeeReporter| {
                let _ = go_rx.recv();
                let mut bytes = Vec::new();
                let _ = stream.read_to_end(&mut bytes);
                reporter.queued();
                reporter.pushed();
                reporter.dropped();
                reporter.ended();
                let _ = read_tx.send((bytes, stream.was_cut()));
            }),
        };
        let mut w = tee.start(Duration::from_secs(5)).unwrap();
        w.copy(b"first ");
        w.hand_over();
        w.copy(b"second ");
        w.hand_over(); // the queue holds "first ": dropped, cut
        w.copy(b"third");
        w.hand_over();
        assert_eq!(w.counts().chunks_dropped, 1);
        go_tx.send(()).unwrap();
        let record = w.finish(7);
        assert_eq!(
            record,
            PushRecord {
                stopped_ns: 7,
                intervals_pushed: 1,
                intervals_dropped: 1,
                chunks_dropped: 1,
            }
        );
        assert_eq!(read_rx.recv().unwrap(), (b"first ".to_vec(), true));
    }

    /// A consumer that never reports the end costs the stop its bounded
    /// wait, and its last interval and those in flight count as dropped.
    #[test]
    fn a_stuck_consumer_costs_a_bounded_wait_and_counts_as_dropped() {
        let (release_tx, release_rx) = flume::bounded::<()>(1);
        let (reported_tx, reported_rx) = flume::bounded::<()>(1);
        let tee = Tee {
            capacity: 4,
            finish_wait: Some(Duration::from_millis(1)),
            consumer: Box::new(move |_stream: TeeStream, reporter: TeeReporter| {
                reporter.queued();
                reporter.queued();
                reporter.pushed();
                let _ = reported_tx.send(());
                let _ = release_rx.recv();
            }),
        };
        let mut w = tee.start(Duration::from_secs(5)).unwrap();
        w.copy(b"x");
        w.hand_over();
        // The reports are sent before the stop: what is counted must not
        // depend on when the consumer's thread got to run.
        reported_rx.recv().unwrap();
        let record = w.finish(1);
        // One queued and not answered, and the last never queued.
        assert_eq!((record.intervals_pushed, record.intervals_dropped), (1, 2));
        drop(release_tx);
    }
}
