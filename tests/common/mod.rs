#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pcprof::format::FileHeader;
use pcprof::{Event, ProfileReader, ReadError, Sample};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// A sink whose bytes the test keeps (`.output_writer(sink.clone())`, then
/// [`MemorySink::bytes`]).
#[derive(Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("the sink is not poisoned").clone()
    }
}

impl std::io::Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A unique path in a fresh temporary directory (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pcprof-test-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a file holds, read to the end.
#[derive(Debug, Default)]
pub struct FileContents {
    pub functions: Vec<pcprof::format::FunctionRecord>,
    pub unloads: Vec<pcprof::format::UnloadRecord>,
    pub interpreters: Vec<pcprof::format::InterpreterRecord>,
    pub retired: Vec<pcprof::format::RetiredRecord>,
    pub samples: Vec<Sample>,
    pub batches: usize,
    pub summary: Option<pcprof::format::Summary>,
    /// Order of records, by kind.
    pub order: Vec<&'static str>,
    pub error: Option<ReadError>,
}

pub fn read_all(bytes: &[u8]) -> Result<FileContents, ReadError> {
    let reader = ProfileReader::new(bytes)?;
    let mut c = FileContents::default();
    for ev in reader {
        match ev {
            Ok(Event::Function(f)) => {
                c.order.push("function");
                c.functions.push(f)
            }
            Ok(Event::Unload(u)) => {
                c.order.push("unload");
                c.unloads.push(u)
            }
            Ok(Event::Interpreter(i)) => {
                c.order.push("interpreter");
                c.interpreters.push(i)
            }
            Ok(Event::Retired(r)) => {
                c.order.push("retired");
                c.retired.push(r)
            }
            Ok(Event::Samples(s)) => {
                c.order.push("samples");
                c.batches += 1;
                c.samples.extend(s)
            }
            Ok(Event::Rate(_)) => c.order.push("rate"),
            Ok(Event::Sampling(_)) => c.order.push("sampling"),
            Ok(Event::Stacks(_)) => c.order.push("stacks"),
            Ok(Event::Summary(s)) => {
                c.order.push("summary");
                c.summary = Some(s)
            }
            Err(e) => {
                c.error = Some(e);
                break;
            }
        }
    }
    Ok(c)
}

/// Records the names of tracing events, from every thread of the profiler
/// started under it.
#[derive(Clone, Default)]
pub struct EventLog(pub Arc<Mutex<Vec<(String, String)>>>);

struct Recorder(EventLog);

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = String::new();
        struct V<'a>(&'a mut String);
        impl tracing::field::Visit for V<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        event.record(&mut V(&mut fields));
        if let Ok(mut v) = (self.0).0.lock() {
            v.push((event.metadata().name().to_string(), fields));
        }
    }
}

/// A global subscriber that records nothing but keeps every callsite's
/// interest at "sometimes". Without it, a callsite first hit by a thread with
/// no subscriber (another test running in parallel) may cache "never" and
/// hide its events from a test's scoped subscriber.
struct KeepInterest;

impl Subscriber for KeepInterest {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl EventLog {
    /// A subscriber recording every event at trace level into this log.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(KeepInterest);
        });
        tracing_subscriber::registry()
            .with(Recorder(self.clone()))
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
    }

    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|v| v.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    pub fn events(&self) -> Vec<(String, String)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The header of the files tests write by hand: 1000 Hz, batches of 10, a
/// virtual clock (`FileHeader { flush_samples: 100, ..header() }` for
/// others).
pub fn header() -> FileHeader {
    FileHeader {
        pcprof_version: "0".into(),
        pid: 1,
        started_unix_ns: 0,
        frequency_hz: 1000,
        flush_samples: 10,
        clock: "virtual".into(),
    }
}

/// Starts `builder` on a fresh [`pcprof::VirtualClock`]: the clock the test
/// advances, and the profiler.
pub fn start_virtual(builder: pcprof::ProfilerBuilder) -> (pcprof::VirtualClock, pcprof::Profiler) {
    let clock = pcprof::VirtualClock::new();
    let p = builder
        .clock(Arc::new(clock.clone()))
        .start()
        .expect("start the profiler");
    (clock, p)
}
