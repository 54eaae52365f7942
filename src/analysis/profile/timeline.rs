//! Building the [`Timeline`]: samples per (interpreter, bucket), with the
//! functions of each cell.
//!
//! - The last (slot, bucket, function) run is counted inline, so a sample
//!   of the function before costs a compare and an increment.
//! - Other samples go to a map of the open cells, keyed by (slot, bucket,
//!   function): one hash increment however samples hop between functions
//!   or interpreters. When the map holds [`OPEN_CELLS`] entries it moves to
//!   a log, compacted (sorted, equal cells summed, each cell's functions
//!   capped to its most hit, the rest "other") whenever it doubles and when
//!   the resolution halves, so memory stays bounded by the cells, never the
//!   samples, whatever their order.
//! - Buckets start at 1 ms (16 samples for files without times) and double
//!   in width whenever a sample falls past [`LoadOptions::timeline_buckets`]
//!   of them; builders of the same file on several threads
//!   ([`TimelineBuilder::merge`]) meet at the widest.
//!
//! [`LoadOptions::timeline_buckets`]: super::LoadOptions::timeline_buckets

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::{
    InterpreterProfile, TIMELINE_FUNCTIONS_PER_CELL, Timeline, TimelineCell, TimelineFunction,
};

/// The function of a timeline entry that is none: outside every function,
/// or past a cell's [`TIMELINE_FUNCTIONS_PER_CELL`].
pub(super) const OTHER: u32 = u32::MAX;

/// Open cells kept in the map before they move to the log.
const OPEN_CELLS: usize = 1 << 15;

/// (slot, bucket, function, samples).
type Cell = (u32, u32, u32, u64);

/// Hashes a packed cell key with one multiplication and a fold.
#[derive(Default, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

impl std::hash::Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b) ^ self.0);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map with [`FoldHasher`].
pub(crate) type FoldMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

pub(super) struct TimelineBuilder {
    by_sample_index: bool,
    max_buckets: usize,
    bucket: u64,
    start: u64,
    started: bool,
    /// The current run: (slot, bucket, function), and its samples (0: none).
    run: (u32, u32, u32),
    run_n: u64,
    /// Open cells: ((slot << 32) | bucket, function) → samples.
    open: FoldMap<(u64, u32), u64>,
    /// Cells moved out of `open`.
    log: Vec<Cell>,
    /// Log length after the last compaction.
    compacted: usize,
    /// `[lo, hi)`: times of bucket `idx`.
    cached: Option<(u64, u64, usize)>,
}

impl TimelineBuilder {
    /// A builder. Bucket 0 starts at the first sample's time, or for files
    /// without times at sample index 1, so that builders of one file on
    /// several threads agree.
    pub(super) fn new(by_sample_index: bool, max_buckets: usize) -> TimelineBuilder {
        TimelineBuilder {
            by_sample_index,
            max_buckets: max_buckets.clamp(2, u32::MAX as usize),
            bucket: if by_sample_index { 16 } else { 1_000_000 },
            start: 1,
            started: by_sample_index,
            run: (0, 0, OTHER),
            run_n: 0,
            open: FoldMap::default(),
            log: Vec::new(),
            compacted: 0,
            cached: None,
        }
    }

    /// The bucket of `t` and the end of its range.
    pub(super) fn bucket_range(&mut self, t: u64) -> (usize, u64) {
        let idx = self.bucket_of(t);
        (idx, self.cached.map_or(u64::MAX, |(_, hi, _)| hi))
    }

    /// One sample of function `f` (or [`OTHER`]) in `slot` at time `t`.
    #[inline]
    pub(super) fn add(&mut self, slot: usize, t: u64, f: u32) {
        let idx = match self.cached {
            Some((lo, hi, idx)) if t >= lo && t < hi => idx,
            _ => self.bucket_of(t),
        };
        self.bump(slot, idx, f, 1);
    }

    /// Adds `n` samples of function `f` to `slot` in bucket `idx`.
    #[inline]
    pub(super) fn bump(&mut self, slot: usize, idx: usize, f: u32, n: u64) {
        // `idx < max_buckets <= u32::MAX`; slots past u32 share the last lane.
        let key = (u32::try_from(slot).unwrap_or(u32::MAX), idx as u32, f);
        if self.run == key {
            self.run_n += n;
            return;
        }
        self.end_run();
        self.run = key;
        self.run_n = n;
    }

    /// Moves the run to the open cells.
    fn end_run(&mut self) {
        if self.run_n == 0 {
            return;
        }
        let (slot, bucket, f) = self.run;
        let key = ((u64::from(slot) << 32) | u64::from(bucket), f);
        *self.open.entry(key).or_insert(0) += self.run_n;
        self.run_n = 0;
        if self.open.len() >= OPEN_CELLS {
            self.close_open();
        }
    }

    /// Moves the open cells to the log, compacting it when it has doubled.
    fn close_open(&mut self) {
        self.log.extend(
            self.open
                .drain()
                .map(|((sb, f), n)| ((sb >> 32) as u32, sb as u32, f, n)),
        );
        if self.log.len() >= 2 * self.compacted.max(1 << 12) {
            compact_cells(&mut self.log);
            self.compacted = self.log.len();
        }
    }

    fn bucket_of(&mut self, t: u64) -> usize {
        if !self.started {
            self.started = true;
            self.start = t;
        }
        let t = t.max(self.start);
        while (t - self.start) / self.bucket >= self.max_buckets as u64 {
            self.halve();
        }
        let idx = (t - self.start) / self.bucket;
        let lo = self.start + idx * self.bucket;
        self.cached = Some((lo, lo.saturating_add(self.bucket), idx as usize));
        idx as usize
    }

    /// Doubles the bucket width: merges bucket pairs.
    fn halve(&mut self) {
        self.end_run();
        self.close_open();
        self.bucket = self.bucket.saturating_mul(2);
        for cell in &mut self.log {
            cell.1 /= 2;
        }
        compact_cells(&mut self.log);
        self.compacted = self.log.len();
        self.cached = None;
    }

    /// Adds the cells of a builder of the same file that counted other
    /// samples (another thread's); both must have had their start fixed
    /// (files without times).
    pub(super) fn merge(&mut self, mut other: TimelineBuilder) {
        other.end_run();
        other.close_open();
        self.end_run();
        self.close_open();
        while self.bucket < other.bucket {
            self.halve();
        }
        while other.bucket < self.bucket {
            other.halve();
        }
        self.log.append(&mut other.log);
        compact_cells(&mut self.log);
        self.compacted = self.log.len();
    }

    pub(super) fn finish(mut self, interpreters: &[InterpreterProfile]) -> Timeline {
        self.end_run();
        self.close_open();
        // By id: the registrations of one id become one lane.
        let mut by_id = std::mem::take(&mut self.log);
        by_id.retain(|e| (e.0 as usize) < interpreters.len());
        for e in &mut by_id {
            e.0 = interpreters[e.0 as usize].id;
        }
        compact_cells(&mut by_id);
        let functions: Vec<TimelineFunction> = by_id
            .iter()
            .map(|&(interp, bucket, f, samples)| TimelineFunction {
                interp,
                bucket,
                function: (f != OTHER).then_some(f as usize),
                samples,
            })
            .collect();
        let cells: Vec<TimelineCell> = functions
            .chunk_by(|a, b| (a.interp, a.bucket) == (b.interp, b.bucket))
            .map(|c| TimelineCell {
                interp: c[0].interp,
                bucket: c[0].bucket,
                samples: c.iter().map(|f| f.samples).sum(),
            })
            .collect();
        let buckets = cells
            .iter()
            .map(|c| c.bucket as usize + 1)
            .max()
            .unwrap_or(0);
        let any = !cells.is_empty();
        Timeline {
            bucket_ns: if any { self.bucket } else { 0 },
            start_ns: if any { self.start } else { 0 },
            buckets,
            cells,
            functions,
            by_sample_index: self.by_sample_index,
        }
    }
}

/// Sorts (lane, bucket, function, samples) cells, sums equal ones, and
/// keeps at most [`TIMELINE_FUNCTIONS_PER_CELL`] a (lane, bucket): the
/// most hit, the rest summed into [`OTHER`] (which sorts last).
fn compact_cells(log: &mut Vec<Cell>) {
    log.sort_unstable_by_key(|&(lane, bucket, f, _)| (lane, bucket, f));
    log.dedup_by(|b, a| {
        let same = (a.0, a.1, a.2) == (b.0, b.1, b.2);
        if same {
            a.3 += b.3;
        }
        same
    });
    let over = log
        .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
        .any(|c| c.len() > TIMELINE_FUNCTIONS_PER_CELL);
    if !over {
        return;
    }
    let mut capped = Vec::with_capacity(log.len());
    for cell in log.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if cell.len() <= TIMELINE_FUNCTIONS_PER_CELL {
            capped.extend_from_slice(cell);
            continue;
        }
        let mut by_count = cell.to_vec();
        by_count.sort_unstable_by_key(|&(_, _, f, n)| (f == OTHER, std::cmp::Reverse(n), f));
        let (keep, rest) = by_count.split_at(TIMELINE_FUNCTIONS_PER_CELL - 1);
        let mut keep = keep.to_vec();
        keep.sort_unstable_by_key(|e| e.2);
        capped.extend(keep);
        capped.push((cell[0].0, cell[0].1, OTHER, rest.iter().map(|e| e.3).sum()));
    }
    *log = capped;
}
