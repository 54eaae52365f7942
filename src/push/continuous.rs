//! Continuous profiling: a running profiler pushes one pprof profile per
//! interval to Pyroscope.
//!
//! - The seam is the runtime's tee ([`pcprof_actors::tee`]): the writer
//!   hands each flushed chunk of its native stream (the bytes the file
//!   gets) to a bounded queue without waiting. Nothing here runs on the
//!   tick path or the writer's.
//! - The tee's thread ("pcprof-tee") reads that stream with a
//!   [`ProfileReader`] and cuts it into intervals with
//!   [`pprof_profiles_from`], the logic of `pcprof push --interval`: an
//!   interval is complete when the first sample after it arrives, or at the
//!   stop.
//! - Each complete interval goes to the "pcprof-push" thread through a
//!   bounded queue ([`Continuous::queue`]): a slow, refusing or absent
//!   server fills it, and each interval that finds it full is dropped and
//!   counted. That thread gzips and pushes ([`Pusher::push`]: timeouts,
//!   back-off), and reports each interval pushed or dropped to the tee,
//!   which counts them in `stats()` and the file's push record.
//! - At the stop the last interval is queued; the writer waits for it a
//!   bounded time (half the actor timeout) and counts it dropped past that.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use pcprof_actors::{ProfileReader, ProfilerBuilder, Tee, TeeReporter, TeeStream};

use super::{PushConfig, PushError, Pusher};
use crate::analysis::convert::ConvertOptions;
use crate::analysis::convert::pprof::{pprof_profiles_from, proto, write_gzipped};

/// Default push interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default intervals waiting for the server at most.
pub const DEFAULT_QUEUE: usize = 4;

/// Continuous profiling's settings: where to push, how often.
#[derive(Debug, Clone)]
pub struct Continuous {
    /// Server, service, static labels, credentials, timeouts, retries.
    pub push: PushConfig,
    /// One profile per this much recorded time (windows on the clock's
    /// epoch), default [`DEFAULT_INTERVAL`].
    pub interval: Duration,
    /// Intervals waiting for the server at most; one more is dropped.
    pub queue: usize,
    /// Granularity and the rest of the pprof conversion.
    pub options: ConvertOptions,
}

impl Continuous {
    /// Pushes to `url` as `service`, every [`DEFAULT_INTERVAL`], with
    /// [`PushConfig::new`]'s defaults (credentials from the environment).
    pub fn new(url: impl Into<String>, service: impl Into<String>) -> Continuous {
        Continuous {
            push: PushConfig::new(url, service),
            interval: DEFAULT_INTERVAL,
            queue: DEFAULT_QUEUE,
            options: ConvertOptions::default(),
        }
    }

    /// Adds a static label to every profile.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Continuous {
        self.push.labels.push((name.into(), value.into()));
        self
    }

    /// Sets the push interval.
    pub fn interval(mut self, interval: Duration) -> Continuous {
        self.interval = interval;
        self
    }

    /// The runtime's tee that pushes: checks the settings now (URL,
    /// credentials over http, labels, interval), so that a bad one fails
    /// before the profiler starts.
    pub fn into_tee(self) -> Result<Tee, PushError> {
        let interval_ns = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        if interval_ns < 1_000_000 {
            return Err(PushError::Url {
                url: self.push.url.clone(),
                reason: format!("push interval {:?}: must be at least 1 ms", self.interval),
            });
        }
        let pusher = Arc::new(Pusher::new(self.push)?);
        let queue = self.queue.max(1);
        let options = self.options;
        Ok(Tee::new(move |stream, reporter| {
            consume(stream, reporter, pusher, interval_ns, queue, &options);
        }))
    }
}

/// The builder option: `ProfilerBuilder::new().push_to(Continuous::new(..))?`.
pub trait PushTo: Sized {
    /// Pushes one pprof profile per interval to a Pyroscope server while
    /// recording (see the module's docs).
    fn push_to(self, continuous: Continuous) -> Result<Self, PushError>;
}

impl PushTo for ProfilerBuilder {
    fn push_to(self, continuous: Continuous) -> Result<ProfilerBuilder, PushError> {
        Ok(self.tee(continuous.into_tee()?))
    }
}

enum Job {
    Push(Box<proto::Profile>),
    Done(mpsc::Sender<()>),
}

/// Notes when the stream ends whether it was cut.
struct Watched<'a> {
    stream: &'a mut TeeStream,
    cut: Rc<Cell<bool>>,
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.cut.set(self.stream.was_cut());
        }
        Ok(n)
    }
}

/// The tee's thread: stream to intervals to the push thread.
fn consume(
    mut stream: TeeStream,
    reporter: TeeReporter,
    pusher: Arc<Pusher>,
    interval_ns: u64,
    queue: usize,
    options: &ConvertOptions,
) {
    let (jobs, inbox) = mpsc::sync_channel::<Job>(queue);
    let worker_reporter = reporter.clone();
    let spawned = std::thread::Builder::new()
        .name("pcprof-push".into())
        .spawn(move || push_thread(&inbox, &pusher, &worker_reporter));
    if let Err(e) = spawned {
        tracing::warn!(name: "push.error", "cannot spawn the push thread: {e}; nothing is pushed");
        return;
    }
    let cut = Rc::new(Cell::new(false));
    let watched = Watched {
        stream: &mut stream,
        cut: Rc::clone(&cut),
    };
    let emit = |profile: proto::Profile| {
        // The interval at a cut misses the samples after it.
        if cut.get() {
            reporter.dropped();
            return;
        }
        match jobs.try_send(Job::Push(Box::new(profile))) {
            Ok(()) => reporter.queued(),
            Err(_) => {
                tracing::warn!(name: "push.dropped", "the push queue is full: interval dropped");
                reporter.dropped();
            }
        }
    };
    let read = ProfileReader::new(watched)
        .map_err(|e| e.to_string())
        .and_then(|reader| {
            pprof_profiles_from(reader, options, Some(interval_ns), emit).map_err(|e| e.to_string())
        });
    if let Err(e) = read {
        tracing::warn!(name: "push.error", "continuous push stopped: {e}");
    }
    reporter.ended();
    // Done once the push thread has dealt with everything queued (the
    // writer waits for this a bounded time).
    let (done_tx, done_rx) = mpsc::channel();
    if jobs.send(Job::Done(done_tx)).is_ok() {
        let _ = done_rx.recv();
    }
    stream.done();
}

fn push_thread(inbox: &mpsc::Receiver<Job>, pusher: &Pusher, reporter: &TeeReporter) {
    for job in inbox {
        match job {
            Job::Push(profile) => {
                let mut gz = Vec::new();
                if let Err(e) = write_gzipped(&profile, &mut gz) {
                    tracing::warn!(name: "push.error", "cannot encode an interval: {e}");
                    reporter.failed();
                    continue;
                }
                match pusher.push(gz) {
                    Ok(_) => reporter.pushed(),
                    Err(e) => {
                        // The error names the endpoint, never the
                        // credentials (they are in a header only).
                        tracing::warn!(name: "push.dropped", "interval dropped: {e}");
                        reporter.failed();
                    }
                }
            }
            Job::Done(done) => {
                let _ = done.send(());
            }
        }
    }
}
