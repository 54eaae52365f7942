//! Configuration: defaults as Pulley's agent, environment variables, builder.
//!
//! - Defaults: 1000 Hz, a batch every 20000 samples, `./pulley-<pid>.data`,
//!   native format.
//! - `PULLEY_SAMPLING_FREQ`, `PULLEY_SAMPLING_FLUSH_AMT`, `PCPROF_OUT`,
//!   `PCPROF_FORMAT`, `PCPROF_SAMPLING`, `PCPROF_FLUSH_INTERVAL`,
//!   `PCPROF_SPIN` override them; a bad value is an error naming the
//!   variable and the value, never a silent default.
//! - The environment is read through a lookup function so that tests pass
//!   their own (changing the process environment is `unsafe` in Rust 2024).

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
pub use crate::clock::SpinPolicy;
use crate::error::Error;
use crate::format::Format;
pub use crate::sys::Scheduling;

/// Highest accepted sampling rate.
pub const MAX_FREQUENCY_HZ: u32 = 1_000_000;
/// Highest accepted batch size.
pub const MAX_FLUSH_SAMPLES: u32 = 10_000_000;

/// Sampling rate variable (as Pulley's agent).
pub const ENV_FREQ: &str = "PULLEY_SAMPLING_FREQ";
/// Batch size variable (as Pulley's agent).
pub const ENV_FLUSH: &str = "PULLEY_SAMPLING_FLUSH_AMT";
/// Output path variable.
pub const ENV_OUT: &str = "PCPROF_OUT";
/// Output format variable (`native` or `pulley`).
pub const ENV_FORMAT: &str = "PCPROF_FORMAT";
/// Sampling mode variable (`randomized` or `periodic`).
pub const ENV_SAMPLING: &str = "PCPROF_SAMPLING";
/// Flush interval variable (`500ms`, `2s`; a bare number is milliseconds).
pub const ENV_FLUSH_INTERVAL: &str = "PCPROF_FLUSH_INTERVAL";

/// Spin variable: `auto` (the default policy's cheap point), `max` (ticks
/// first at every rate, up to a core), `0` only sleeps, `20us` or `1ms`
/// caps the spin before each deadline.
pub const ENV_SPIN: &str = "PCPROF_SPIN";
/// The longest spin cap accepted from the environment.
pub const MAX_ENV_SPIN: Duration = Duration::from_secs(1);

/// Default flush interval: a killed process loses at most about this much.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest and longest accepted flush intervals.
pub const FLUSH_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_secs(3600));
/// Default time an actor has to answer a shutdown step or a query.
pub const DEFAULT_ACTOR_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer may fall behind without a sample being dropped: the
/// batch-buffer pool grows, as interpreters register (never on a tick), to
/// hold this much of the samples that the rate and the live interpreters
/// can produce.
pub const POOL_SLACK: Duration = Duration::from_millis(100);
/// The most the grown pool may take, with each buffer's stack arena: the
/// lesser of this and an eighth of the machine's memory (never less than
/// the configured `buffers`).
pub const MAX_POOL_BYTES: u64 = 256 << 20;
/// The most buffers the grown pool may hold (small batches would otherwise
/// make thousands).
pub const MAX_POOL_BUFFERS: usize = 1024;

/// Where the profile goes.
pub enum Output {
    /// A new file at this path (never overwritten).
    Path(PathBuf),
    /// An embedder's sink (flushed at the end, not synced).
    Writer(Box<dyn Write + Send>),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Output::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

pub use crate::format::SamplingMode;

/// How the profiler runs. Build it with [`ProfilerBuilder`](crate::ProfilerBuilder).
#[derive(Debug)]
pub struct Config {
    /// Ticks per second (1..=1_000_000).
    pub frequency_hz: u32,
    /// Samples per batch handed to the writer (at most; see
    /// `flush_interval`).
    pub flush_samples: u32,
    /// The longest samples wait in the sampler's batch before they are
    /// handed to the writer, which writes them to the OS at once: what a
    /// killed process can lose, whatever the batch size.
    pub flush_interval: Duration,
    /// How long the supervisor waits for an actor's answer, in each step of
    /// the shutdown and in each query; past it the actor is reported
    /// (`ErrorKind::Timeout`) and the profiler goes on without it, so a
    /// stalled sink never hangs `stop()`.
    pub actor_timeout: Duration,
    /// Where the profile goes.
    pub output: Output,
    /// Its format.
    pub format: Format,
    /// The time source; `None` = the monotonic clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// How much the timing thread may spin before each deadline instead of
    /// sleeping (monotonic clock only; see [`SpinPolicy`]). The clock
    /// learns how late the kernel wakes the thread and spins only about as
    /// long as that is worth. [`SpinPolicy::Auto`] (the default) never
    /// spins a whole core below 20 kHz; [`SpinPolicy::Max`] puts ticks
    /// first at every rate; [`SpinPolicy::Cap`] never exceeds its
    /// duration (`ZERO` never spins).
    pub spin: SpinPolicy,
    /// The 99th percentile of lateness the timing thread aims at: it wakes
    /// early (spinning the rest, within `spin`) only as much as this needs.
    pub lateness_target: Duration,
    /// Scheduling of the timing thread.
    pub scheduling: Scheduling,
    /// When in each period the sample is taken (default: a random instant,
    /// which cannot alias with periodic work).
    pub sampling: SamplingMode,
    /// Batch buffers in circulation between sampler and writer at the
    /// least: the pool grows from it as interpreters register, to hold
    /// [`POOL_SLACK`] of samples, up to [`Config::max_buffers`] (the memory
    /// bound).
    pub buffers: usize,
    /// The interpreter's instruction set: each registered function's
    /// listing goes into the file, so reports show its mnemonics.
    pub instruction_set: Option<Arc<dyn crate::isa::InstructionSet>>,
    /// A copy of the output for a consumer thread (continuous profiling;
    /// native format only).
    pub tee: Option<crate::tee::Tee>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            frequency_hz: 1000,
            flush_samples: 20_000,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            actor_timeout: DEFAULT_ACTOR_TIMEOUT,
            output: Output::Path(default_output()),
            format: Format::Native,
            clock: None,
            spin: SpinPolicy::Auto,
            lateness_target: crate::clock::DEFAULT_LATENESS_TARGET,
            scheduling: Scheduling::Normal,
            sampling: SamplingMode::Randomized,
            buffers: 4,
            instruction_set: None,
            tee: None,
        }
    }
}

/// `./pulley-<pid>.data`, as Pulley's agent.
pub fn default_output() -> PathBuf {
    PathBuf::from(format!("./pulley-{}.data", std::process::id()))
}

fn parse_u32(variable: &str, value: &str, min: u32, max: u32) -> Result<u32, Error> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| Error::config(variable, value, "not a whole number"))?;
    if n < u64::from(min) || n > u64::from(max) {
        return Err(Error::config(
            variable,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(n as u32)
}

/// `500ms`, `1.5s`, `250us` or a bare number of milliseconds, within
/// [`FLUSH_INTERVAL_RANGE`].
fn parse_interval(variable: &str, value: &str) -> Result<Duration, Error> {
    let d = parse_duration(
        variable,
        value,
        "not a duration (examples: 500ms, 2s, 1.5s; a bare number is milliseconds)",
    )?;
    check_interval(variable, value, d)
}

/// A spin policy: `auto`, `max`, `0`, or a cap with its unit. A bare
/// number other than 0 is refused: microseconds or milliseconds would both
/// be a plausible guess.
fn parse_spin(variable: &str, value: &str) -> Result<SpinPolicy, Error> {
    const HINT: &str = "not a duration with a unit (examples: 0, 20us, 1ms), auto or max";
    let v = value.trim();
    match v {
        "auto" => return Ok(SpinPolicy::Auto),
        "max" => return Ok(SpinPolicy::Max),
        "0" => return Ok(SpinPolicy::Cap(Duration::ZERO)),
        _ => {}
    }
    if !v.ends_with('s') {
        return Err(Error::config(variable, value, HINT));
    }
    let d = parse_duration(variable, value, HINT)?;
    if d > MAX_ENV_SPIN {
        return Err(Error::config(
            variable,
            value,
            format!("must be at most {MAX_ENV_SPIN:?}"),
        ));
    }
    Ok(SpinPolicy::Cap(d))
}

/// `500ms`, `20us`, `1.5s`; a bare number is milliseconds.
fn parse_duration(variable: &str, value: &str, hint: &str) -> Result<Duration, Error> {
    let v = value.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1e-3)
    };
    let seconds = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x * scale)
        .ok_or_else(|| Error::config(variable, value, hint))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| Error::config(variable, value, "out of range"))
}

fn check_interval(
    variable: &str,
    value: impl fmt::Display,
    d: Duration,
) -> Result<Duration, Error> {
    let (lo, hi) = FLUSH_INTERVAL_RANGE;
    if d < lo || d > hi {
        return Err(Error::config(
            variable,
            value,
            format!("must be between {lo:?} and {hi:?}"),
        ));
    }
    Ok(d)
}

/// Physical memory, where the OS tells it.
fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system constants.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

impl Config {
    /// Capacity of one batch buffer: headroom so that one tick of many
    /// interpreters rarely splits a batch.
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.flush_samples as usize + 64
    }

    /// Bytes the batch buffers take when full: `buffers` times
    /// `flush_samples + 64` samples. Refused, naming both settings, when it
    /// overflows or exceeds the machine's memory, instead of aborting the
    /// host on a failed allocation.
    pub fn buffer_bytes(&self) -> Result<u64, Error> {
        let sample = std::mem::size_of::<crate::format::Sample>() as u64;
        let total = (self.buffer_capacity() as u64)
            .checked_mul(sample)
            .and_then(|b| b.checked_mul(self.buffers as u64));
        let refuse = |why: String| {
            Error::config(
                "buffers × flush_samples",
                format!("{} × {}", self.buffers, self.flush_samples),
                why,
            )
        };
        let total = total.ok_or_else(|| refuse("the buffers' size overflows".into()))?;
        if let Some(mem) = physical_memory()
            && total > mem
        {
            return Err(refuse(format!(
                "the batch buffers would take {} MiB, more than this machine's {} MiB",
                total >> 20,
                mem >> 20
            )));
        }
        Ok(total)
    }

    /// The most batch buffers the pool may grow to: what [`POOL_SLACK`] asks
    /// within [`MAX_POOL_BYTES`] (an eighth of the memory on a smaller
    /// machine) and [`MAX_POOL_BUFFERS`], and never fewer than `buffers`.
    pub fn max_buffers(&self) -> usize {
        // A buffer's samples and its arena of frames (a word a sample).
        let per_buffer = (self.buffer_capacity() as u64)
            .saturating_mul(std::mem::size_of::<crate::format::Sample>() as u64 + 8)
            .max(1);
        let bound = physical_memory().map_or(MAX_POOL_BYTES, |m| MAX_POOL_BYTES.min(m / 8));
        let grown = usize::try_from(bound / per_buffer)
            .unwrap_or(usize::MAX)
            .min(MAX_POOL_BUFFERS);
        grown.max(self.buffers)
    }

    /// Applies the environment variables found by `lookup` (use
    /// `|k| std::env::var(k).ok()` for the process environment).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(v) = lookup(ENV_FREQ) {
            self.frequency_hz = parse_u32(ENV_FREQ, &v, 1, MAX_FREQUENCY_HZ)?;
        }
        if let Some(v) = lookup(ENV_FLUSH) {
            self.flush_samples = parse_u32(ENV_FLUSH, &v, 1, MAX_FLUSH_SAMPLES)?;
        }
        if let Some(v) = lookup(ENV_FLUSH_INTERVAL) {
            self.flush_interval = parse_interval(ENV_FLUSH_INTERVAL, &v)?;
        }
        if let Some(v) = lookup(ENV_SPIN) {
            self.spin = parse_spin(ENV_SPIN, &v)?;
        }
        if let Some(v) = lookup(ENV_OUT) {
            if v.is_empty() {
                return Err(Error::config(ENV_OUT, &v, "empty path"));
            }
            self.output = Output::Path(PathBuf::from(v));
        }
        if let Some(v) = lookup(ENV_FORMAT) {
            self.format = v
                .trim()
                .parse()
                .map_err(|reason: String| Error::config(ENV_FORMAT, &v, reason))?;
        }
        if let Some(v) = lookup(ENV_SAMPLING) {
            self.sampling = v
                .parse()
                .map_err(|reason: String| Error::config(ENV_SAMPLING, &v, reason))?;
        }
        Ok(())
    }

    /// When in each period samples are taken: what the file's sampling
    /// record should say.
    pub fn sampling_mode(&self) -> SamplingMode {
        self.sampling
    }

    /// Checks values set through the builder.
    pub fn validate(&self) -> Result<(), Error> {
        if self.frequency_hz == 0 || self.frequency_hz > MAX_FREQUENCY_HZ {
            return Err(Error::config(
                "frequency_hz",
                self.frequency_hz,
                format!("must be between 1 and {MAX_FREQUENCY_HZ}"),
            ));
        }
        if self.flush_samples == 0 || self.flush_samples > MAX_FLUSH_SAMPLES {
            return Err(Error::config(
                "flush_samples",
                self.flush_samples,
                format!("must be between 1 and {MAX_FLUSH_SAMPLES}"),
            ));
        }
        check_interval(
            "flush_interval",
            format!("{:?}", self.flush_interval),
            self.flush_interval,
        )?;
        if self.actor_timeout.is_zero() {
            return Err(Error::config(
                "actor_timeout",
                format!("{:?}", self.actor_timeout),
                "must be longer than zero",
            ));
        }
        if self.buffers < 2 {
            return Err(Error::config(
                "buffers",
                self.buffers,
                "at least 2 are needed",
            ));
        }
        if let Scheduling::Realtime { priority } = self.scheduling
            && !(1..=99).contains(&priority)
        {
            return Err(Error::config(
                "realtime priority",
                priority,
                "must be between 1 and 99",
            ));
        }
        if self.tee.is_some() && self.format != Format::Native {
            return Err(Error::config(
                "tee",
                self.format,
                "a tee reads the native format (a Pulley file has no times)",
            ));
        }
        self.buffer_bytes()?;
        Ok(())
    }

    /// The tick period in ns.
    pub fn period_ns(&self) -> u64 {
        1_000_000_000 / u64::from(self.frequency_hz.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_are_the_references() {
        let c = Config::default();
        assert_eq!(c.frequency_hz, 1000);
        assert_eq!(c.flush_samples, 20_000);
        assert!(matches!(&c.output, Output::Path(p) if *p == default_output()));
        assert_eq!(c.period_ns(), 1_000_000);
        assert_eq!(c.sampling_mode(), SamplingMode::Randomized);
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::default();
        c.apply_env(env(&[
            (ENV_FREQ, "10000"),
            (ENV_FLUSH, "5"),
            (ENV_OUT, "/tmp/x.data"),
            (ENV_FORMAT, "pulley"),
            (ENV_SAMPLING, "periodic"),
        ]))
        .unwrap();
        assert_eq!(c.sampling_mode(), SamplingMode::Periodic);
        assert_eq!(c.frequency_hz, 10_000);
        assert_eq!(c.flush_samples, 5);
        assert_eq!(c.format, Format::Pulley);
        assert!(matches!(&c.output, Output::Path(p) if p.to_str() == Some("/tmp/x.data")));
    }

    #[test]
    fn bad_values_name_variable_and_value() {
        for (var, val) in [
            (ENV_FREQ, "0"),
            (ENV_FREQ, "1000001"),
            (ENV_FREQ, "fast"),
            (ENV_FLUSH, "-3"),
            (ENV_FORMAT, "json"),
            (ENV_SAMPLING, "sometimes"),
            (ENV_OUT, ""),
            (ENV_FLUSH_INTERVAL, "0"),
            (ENV_FLUSH_INTERVAL, "soon"),
            (ENV_FLUSH_INTERVAL, "2h"),
            (ENV_FLUSH_INTERVAL, "-1s"),
            (ENV_SPIN, "20"),
            (ENV_SPIN, "never"),
            (ENV_SPIN, "2s"),
            (ENV_SPIN, "-5us"),
        ] {
            let mut c = Config::default();
            let e = c.apply_env(env(&[(var, val)])).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Config { .. }));
            let msg = e.to_string();
            assert!(msg.contains(var), "{msg}");
            assert!(msg.contains(&format!("{val:?}")), "{msg}");
        }
    }

    #[test]
    fn flush_interval_from_env() {
        for (val, want) in [
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("1500us", Duration::from_micros(1500)),
            ("40", Duration::from_millis(40)),
        ] {
            let mut c = Config::default();
            c.apply_env(env(&[(ENV_FLUSH_INTERVAL, val)])).unwrap();
            assert_eq!(c.flush_interval, want, "{val}");
        }
        assert_eq!(Config::default().flush_interval, Duration::from_secs(1));
    }

    #[test]
    fn spin_cap_from_env() {
        let cap = |us| SpinPolicy::Cap(Duration::from_micros(us));
        for (val, want) in [
            ("0", cap(0)),
            ("20us", cap(20)),
            ("1ms", cap(1000)),
            (" 0.5ms ", cap(500)),
            ("auto", SpinPolicy::Auto),
            ("max", SpinPolicy::Max),
        ] {
            let mut c = Config {
                spin: cap(7),
                ..Config::default()
            };
            c.apply_env(env(&[(ENV_SPIN, val)])).unwrap();
            assert_eq!(c.spin, want, "{val}");
        }
        assert_eq!(Config::default().spin, SpinPolicy::Auto);
        for bad in ["20", "maximum", "-1us"] {
            let err = Config::default()
                .apply_env(env(&[(ENV_SPIN, bad)]))
                .expect_err(bad)
                .to_string();
            assert!(err.contains(ENV_SPIN) && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn buffers_that_cannot_be_allocated_are_refused_by_name() {
        let c = Config {
            flush_samples: MAX_FLUSH_SAMPLES,
            buffers: 1_000_000,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("buffers × flush_samples"), "{msg}");
        assert!(msg.contains("1000000 × 10000000"), "{msg}");
        let c = Config {
            buffers: usize::MAX,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("overflows"));
        // The defaults take 4 × 20064 samples.
        assert_eq!(
            Config::default().buffer_bytes().unwrap(),
            4 * 20_064 * std::mem::size_of::<crate::format::Sample>() as u64
        );
    }

    /// The pool's growth bound: 256 MiB of buffers (samples and frames) on
    /// a machine of at least 2 GiB, at most 1 024 buffers, never fewer than
    /// the configured `buffers`.
    #[test]
    fn the_pool_grows_within_its_memory_bound() {
        let per_buffer = 20_064 * (std::mem::size_of::<crate::format::Sample>() as u64 + 8);
        let big_enough = physical_memory().is_none_or(|m| m / 8 >= MAX_POOL_BYTES);
        if big_enough {
            assert_eq!(
                Config::default().max_buffers() as u64,
                MAX_POOL_BYTES / per_buffer
            );
        }
        let small = Config {
            flush_samples: 1,
            ..Config::default()
        };
        assert_eq!(small.max_buffers(), MAX_POOL_BUFFERS);
        let many = Config {
            buffers: 5_000,
            ..Config::default()
        };
        assert_eq!(many.max_buffers(), 5_000);
    }
}
