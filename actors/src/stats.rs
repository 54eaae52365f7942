//! Statistics: what the runtime counts, and the lateness histogram.
//!
//! - Each actor counts its own part; the supervisor merges the parts into one
//!   [`Stats`] on request and at shutdown, and the writer stores the final one
//!   as the file's closing summary, so a report shows how trustworthy the
//!   profile is.
//! - [`LatencyHistogram`] is fixed-size and log-linear (32 sub-buckets per
//!   power of two, about 3 % error): recording is an index computation and an
//!   increment, never an allocation.

use serde::{Deserialize, Serialize};

/// Counters and figures of a profiling run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The sampling rate asked for, in hertz (the latest, if it was changed).
    pub frequency_hz: u32,
    /// Time from the first scheduled tick to now (or to the stop), in ns.
    pub elapsed_ns: u64,
    /// Deadlines that came while sampling was running.
    pub ticks_scheduled: u64,
    /// Deadlines at which the PCs were read.
    pub ticks_taken: u64,
    /// Deadlines skipped because the ticker woke after a later deadline had
    /// already passed (never made up in a burst).
    pub ticks_missed: u64,
    /// PCs read from executing interpreters.
    pub samples_taken: u64,
    /// Samples in the output.
    pub samples_written: u64,
    /// Samples lost: the writer could not keep up, or the output failed.
    pub samples_dropped: u64,
    /// Sample batches written.
    pub batches_written: u64,
    /// Sample batches dropped whole.
    pub batches_dropped: u64,
    /// Bytes in the output so far.
    pub bytes_written: u64,
    /// Median lateness of a PC read against its tick's deadline, in ns.
    pub lateness_p50_ns: u64,
    /// 99th percentile of the lateness, in ns.
    pub lateness_p99_ns: u64,
    /// Largest lateness, in ns.
    pub lateness_max_ns: u64,
    /// Interpreters registered and not finished.
    pub interpreters_live: u64,
    /// Interpreters that finished and were retired.
    pub interpreters_retired: u64,
    /// Functions registered and not unloaded.
    pub functions_live: u64,
    /// Functions unloaded.
    pub functions_unloaded: u64,
    /// The scheduling in force on the timing thread: `fifo:N` (real-time
    /// priority, when asked and permitted), `normal (slice 100us)` (normal
    /// priority with a short time slice, where the kernel supports it),
    /// `normal`, with `; fifo refused: ...` appended when real-time priority
    /// was asked for but not permitted.
    pub scheduling: String,
    /// CPU time of the timing thread (ticker and sampler), in ns.
    pub sampler_cpu_ns: u64,
    /// CPU time of the writer thread, in ns.
    pub writer_cpu_ns: u64,
    /// Shadow-stack reads given up because the stack kept changing while
    /// it was read ([`crate::stack::READ_TRIES`] attempts): those samples
    /// keep their PC and a truncated stack without frames. Not stored in
    /// the file's summary (its layout is frozen).
    pub stack_reads_torn: u64,
    /// Samples whose stack was deeper than a whole batch's frame arena,
    /// kept as truncated stacks without frames (not in the summary either).
    pub stacks_cut: u64,
    /// Batch buffers in circulation between sampler and writer: the
    /// configured `buffers`, grown as interpreters registered to hold
    /// [`POOL_SLACK`](crate::config::POOL_SLACK) of their samples (not in
    /// the summary either).
    #[serde(default)]
    pub batch_buffers: u64,
    /// Errors counted (I/O, encoding, actor failures).
    pub errors: u64,
    /// The first error, as text.
    pub first_error: Option<String>,
    /// Continuous profiling: intervals the server took (not in the
    /// summary record: in the push record, FORMAT.md record 12).
    #[serde(default)]
    pub push_intervals_pushed: u64,
    /// Continuous profiling: intervals dropped (a full queue, a server that
    /// refused or did not answer, in flight at the stop).
    #[serde(default)]
    pub push_intervals_dropped: u64,
    /// Continuous profiling: chunks of the output the consumer fell too far
    /// behind to take (the first one ends the pushes).
    #[serde(default)]
    pub push_chunks_dropped: u64,
}

impl Stats {
    /// Ticks taken per second of elapsed time.
    pub fn achieved_hz(&self) -> f64 {
        if self.elapsed_ns == 0 {
            0.0
        } else {
            self.ticks_taken as f64 * 1e9 / self.elapsed_ns as f64
        }
    }

    /// Share of scheduled ticks that were taken, in [0, 1].
    pub fn tick_ratio(&self) -> f64 {
        if self.ticks_scheduled == 0 {
            1.0
        } else {
            self.ticks_taken as f64 / self.ticks_scheduled as f64
        }
    }
}

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A fixed-size log-linear histogram of nanosecond values.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("total", &self.total)
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

#[inline]
fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        v as usize
    } else {
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS
        let mantissa = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
        (exp - SUB_BITS + 1) as usize * SUB + mantissa
    }
}

/// Smallest value that falls in bucket `i`, and the bucket's width.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        (i as u64, 1)
    } else {
        let exp = (i / SUB) as u32 + SUB_BITS - 1;
        let mantissa = (i % SUB) as u64;
        let width = 1u64 << (exp - SUB_BITS);
        ((SUB as u64 + mantissa) * width, width)
    }
}

impl LatencyHistogram {
    /// Records one value.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in [0, 1] (the middle of its bucket, never
    /// above the maximum); 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as u64 + 1;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return (low + (width - 1) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut expect_low = 0;
        for i in 0..BUCKETS - 1 {
            let (low, width) = bucket_range(i);
            assert_eq!(low, expect_low, "bucket {i}");
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(low + width - 1), i);
            expect_low = low + width;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_within_bucket_error() {
        let mut h = LatencyHistogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.percentile(0.5) as f64;
        let p99 = h.percentile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.04, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.04, "{p99}");
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.percentile(1.0), 1_000_000);
        assert_eq!(LatencyHistogram::default().percentile(0.5), 0);
        let mut exact = LatencyHistogram::default();
        for _ in 0..10 {
            exact.record(7);
        }
        assert_eq!(exact.percentile(0.99), 7);
    }
}
