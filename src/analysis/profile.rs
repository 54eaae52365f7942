//! A profile file, aggregated for analysis in one streaming pass.
//!
//! - [`load`] reads a native or Pulley file record by record; memory holds
//!   the functions (their code and a counter per byte offset), the
//!   interpreters and a bounded timeline, never the samples, so it does not
//!   grow with the file's length.
//! - Samples resolve to functions by address and time (see
//!   [`crate::Resolver`]): unloaded code and reused addresses stay correct.
//! - A file that ends early or has a corrupt record still yields the
//!   complete records before the fault; [`Profile::read_error`] tells where
//!   reading stopped.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Resolver;
use crate::format::{
    Event, FileHeader, Format, ListingRecord, ProfileReader, RateRecord, ReadError, Sample,
    SamplingRecord, Summary,
};

/// Options for [`load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Keep only the samples of this interpreter (native files).
    pub interp: Option<u32>,
    /// Upper bound on the number of timeline buckets.
    pub timeline_buckets: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            interp: None,
            timeline_buckets: 400,
        }
    }
}

/// A function with the samples that fell in it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionProfile {
    /// Name.
    pub name: String,
    /// Address of its first byte.
    pub addr: u64,
    /// Its bytecode.
    pub code: Vec<u8>,
    /// Load time (ns since the profile's start; 0 in Pulley files).
    pub loaded_ns: u64,
    /// Unload time, if unloaded.
    pub unloaded_ns: Option<u64>,
    /// Samples in this function.
    pub samples: u64,
    /// Samples at each byte offset (`hits.len() == code.len()`).
    pub hits: Vec<u64>,
    /// Its instructions as its interpreter decoded them at record time, if
    /// the file carries them (shared by every function with this code).
    pub listing: Option<Arc<ListingRecord>>,
}

impl FunctionProfile {
    /// Offsets with at least one sample, with their counts, in offset order.
    pub fn hot_offsets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.hits
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(o, c)| (o as u32, *c))
    }
}

/// An interpreter seen in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpreterProfile {
    /// Id.
    pub id: u32,
    /// Label (thread name), if given.
    pub label: Option<String>,
    /// Samples of this interpreter (before any filter).
    pub samples: u64,
    /// Registration time.
    pub registered_ns: u64,
    /// Retirement time, if retired.
    pub retired_ns: Option<u64>,
}

/// Samples per interpreter over time, in equal buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Width of a bucket, in ns (for Pulley files: in samples, see
    /// [`Timeline::by_sample_index`]).
    pub bucket_ns: u64,
    /// Time of the first bucket's start.
    pub start_ns: u64,
    /// Samples per interpreter id per bucket.
    pub counts: BTreeMap<u32, Vec<u64>>,
    /// The file has no times (Pulley format): buckets count samples in file
    /// order instead.
    pub by_sample_index: bool,
}

impl Timeline {
    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.counts.values().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether the timeline is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A profile, aggregated.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The file read.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Its format.
    pub format: Format,
    /// Native header.
    pub header: Option<FileHeader>,
    /// Closing statistics of the run (native files written to the end).
    pub summary: Option<Summary>,
    /// How the ticks were placed (native files of version 2 and later).
    pub sampling: Option<SamplingRecord>,
    /// Every function, in load order.
    pub functions: Vec<FunctionProfile>,
    /// Every interpreter, by id.
    pub interpreters: Vec<InterpreterProfile>,
    /// Rate changes and pauses.
    pub rates: Vec<RateRecord>,
    /// Samples counted (after the interpreter filter).
    pub total_samples: u64,
    /// Samples (after the filter) that fell outside every function.
    pub unresolved: u64,
    /// Earliest and latest sample time (native files).
    pub time_range: Option<(u64, u64)>,
    /// Samples over time.
    pub timeline: Timeline,
    /// Why reading stopped before the end of the file, if it did: every
    /// record before the fault is counted.
    pub read_error: Option<String>,
    /// Byte offset of that fault.
    pub read_error_offset: Option<u64>,
}

impl Profile {
    /// Functions ordered hottest first (ties by name).
    pub fn functions_by_heat(&self) -> Vec<&FunctionProfile> {
        let mut v: Vec<&FunctionProfile> = self.functions.iter().collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.name.cmp(&b.name)));
        v
    }

    /// Whether this native file was converted from the Pulley format
    /// (`pcprof convert --to native`): synthetic times, no closing summary.
    pub fn converted_from_pulley(&self) -> bool {
        self.header
            .as_ref()
            .is_some_and(|h| h.clock == crate::analysis::convert::recode::PULLEY_CLOCK)
    }

    /// How the ticks were placed, in words (`periodic, 1000 Hz`); `None`
    /// when the file does not say (Pulley files, native version 1).
    pub fn sampling_text(&self) -> Option<String> {
        self.sampling
            .map(|s| format!("{}, {} Hz", s.mode.as_str(), s.frequency_hz))
    }

    /// Share of all samples, in percent.
    pub fn percent(&self, samples: u64) -> f64 {
        if self.total_samples == 0 {
            0.0
        } else {
            samples as f64 * 100.0 / self.total_samples as f64
        }
    }
}

/// Why a profile could not be loaded at all.
#[derive(Debug)]
pub struct LoadError(pub ReadError);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Reads and aggregates a profile. `progress` is called now and then with
/// the bytes read so far.
pub fn load(
    path: &Path,
    options: &LoadOptions,
    progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let reader = ProfileReader::open(path).map_err(LoadError)?;
    aggregate(reader, path.to_path_buf(), file_bytes, options, progress)
}

/// Like [`load`], from a profile already in memory (`path` is left empty):
/// for tests and fuzzing, which have bytes rather than a file.
pub fn load_bytes(
    bytes: &[u8],
    options: &LoadOptions,
    progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let reader = ProfileReader::new(bytes).map_err(LoadError)?;
    aggregate(
        reader,
        PathBuf::new(),
        bytes.len() as u64,
        options,
        progress,
    )
}

/// Like [`load`], from any reader: an embedder who recorded into
/// `.output_writer(sink)` reports straight from the bytes its sink received
/// (`examples/from_memory.rs`). The profile's `file_bytes` counts the bytes
/// read; its `path` is `<memory>`.
pub fn load_reader<R: Read>(
    source: R,
    options: &LoadOptions,
    progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    /// Counts what the reader consumed, since a stream has no length.
    struct Counted<R> {
        inner: R,
        bytes: u64,
    }
    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.bytes += n as u64;
            Ok(n)
        }
    }
    let mut counted = Counted {
        inner: source,
        bytes: 0,
    };
    let reader = ProfileReader::new(&mut counted).map_err(LoadError)?;
    let mut profile = aggregate(reader, PathBuf::from("<memory>"), 0, options, progress)?;
    profile.file_bytes = counted.bytes;
    Ok(profile)
}

/// The one pass of [`load`], [`load_bytes`] and [`load_reader`].
fn aggregate<R: Read>(
    mut reader: ProfileReader<R>,
    path: PathBuf,
    file_bytes: u64,
    options: &LoadOptions,
    mut progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let format = reader.format();
    let header = reader.header().cloned();
    let mut p = Profile {
        path,
        file_bytes,
        format,
        header,
        summary: None,
        sampling: None,
        functions: Vec::new(),
        interpreters: Vec::new(),
        rates: Vec::new(),
        total_samples: 0,
        unresolved: 0,
        time_range: None,
        timeline: Timeline::default(),
        read_error: None,
        read_error_offset: None,
    };
    let mut agg = Aggregator::new(format, options);
    let mut samples: Vec<Sample> = Vec::new();
    while let Some(ev) = reader.next_into(&mut samples) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                p.read_error_offset = Some(e.offset());
                p.read_error = Some(e.to_string());
                break;
            }
        };
        match ev {
            Event::Function(f) => agg.add_function(&mut p, f),
            Event::Unload(u) => agg.unload(&mut p, u.addr, u.unloaded_ns),
            Event::Interpreter(i) => {
                agg.register_interp(i.id, p.interpreters.len());
                p.interpreters.push(InterpreterProfile {
                    id: i.id,
                    label: i.label,
                    samples: 0,
                    registered_ns: i.registered_ns,
                    retired_ns: None,
                });
            }
            Event::Retired(r) => {
                if let Some(&i) = agg.interp_index.get(&r.id) {
                    p.interpreters[i].retired_ns = Some(r.retired_ns);
                }
            }
            Event::Rate(r) => p.rates.push(r),
            Event::Summary(s) => p.summary = Some(s),
            Event::Sampling(s) => p.sampling = Some(s),
            Event::Samples(owned) => {
                // `next_into` fills `samples`; `owned` is empty unless a
                // future reader hands batches over by value.
                agg.add_samples(&mut p, &samples);
                agg.add_samples(&mut p, &owned);
                progress(reader.offset());
            }
        }
    }
    Aggregator::finish_functions(&mut p);
    p.timeline = agg.timeline.finish(&p.interpreters);
    progress(reader.offset());
    Ok(p)
}

/// Interpreter ids below this are looked up in a vector, not a map.
const DENSE_INTERPS: usize = 1 << 16;

/// The state of one [`load`] pass: caches in front of the resolver and of
/// the interpreter map, which turn the per-sample work into a few compares
/// in the common case (a PC in the same function as the last one).
struct Aggregator {
    format: Format,
    want_interp: Option<u32>,
    resolver: Resolver,
    interp_index: BTreeMap<u32, usize>,
    /// Index in `Profile::interpreters` by id, for ids below
    /// `DENSE_INTERPS` (`usize::MAX`: none yet); others use `interp_index`.
    slot_of: Vec<usize>,
    seq: u64,
    timeline: TimelineBuilder,
}

impl Aggregator {
    fn new(format: Format, options: &LoadOptions) -> Aggregator {
        Aggregator {
            format,
            want_interp: options.interp,
            resolver: Resolver::new(),
            interp_index: BTreeMap::new(),
            slot_of: Vec::new(),
            seq: 0,
            timeline: TimelineBuilder::new(format == Format::Pulley, options.timeline_buckets),
        }
    }

    fn add_function(&mut self, p: &mut Profile, f: crate::format::FunctionRecord) {
        self.resolver
            .add(p.functions.len(), f.addr, f.code.len() as u64, f.loaded_ns);
        p.functions.push(FunctionProfile {
            hits: vec![0; f.code.len()],
            name: f.name,
            addr: f.addr,
            code: f.code,
            loaded_ns: f.loaded_ns,
            unloaded_ns: None,
            samples: 0,
            listing: f.listing,
        });
    }

    fn unload(&mut self, p: &mut Profile, addr: u64, unloaded_ns: u64) {
        if let Some(i) = self.resolver.unload(addr, unloaded_ns) {
            p.functions[i].unloaded_ns = Some(unloaded_ns);
        }
    }

    fn register_interp(&mut self, id: u32, slot: usize) {
        self.interp_index.insert(id, slot);
        let i = id as usize;
        if i < DENSE_INTERPS {
            if i >= self.slot_of.len() {
                self.slot_of.resize(i + 1, usize::MAX);
            }
            self.slot_of[i] = slot;
        }
    }

    #[inline]
    fn interp_slot(&mut self, p: &mut Profile, id: u32) -> usize {
        match self.slot_of.get(id as usize) {
            Some(&slot) if slot != usize::MAX => slot,
            _ => self.interp_slot_slow(p, id),
        }
    }

    fn interp_slot_slow(&mut self, p: &mut Profile, id: u32) -> usize {
        if let Some(&i) = self.interp_index.get(&id) {
            return i;
        }
        // Pulley files (and files whose interpreter record was lost) get an
        // implicit interpreter.
        let slot = p.interpreters.len();
        self.register_interp(id, slot);
        p.interpreters.push(InterpreterProfile {
            id,
            label: None,
            samples: 0,
            registered_ns: 0,
            retired_ns: None,
        });
        slot
    }

    fn add_samples(&mut self, p: &mut Profile, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        // Interpreters and timeline. Pulley files have one interpreter and
        // no times: the whole batch is one run of sample indices.
        let kept: u64;
        if self.format == Format::Pulley {
            let n = samples.len() as u64;
            let slot = self.interp_slot(p, 0);
            p.interpreters[slot].samples += n;
            let first = self.seq + 1;
            self.seq += n;
            if self.want_interp.is_some_and(|want| want != 0) {
                return;
            }
            self.timeline.add_index_run(slot, first, n);
            kept = n;
        } else {
            let mut k = 0;
            let (mut lo, mut hi) = p.time_range.unwrap_or((u64::MAX, 0));
            for s in samples {
                let slot = self.interp_slot(p, s.interp);
                p.interpreters[slot].samples += 1;
                self.seq += 1;
                if self.want_interp.is_some_and(|want| want != s.interp) {
                    continue;
                }
                k += 1;
                self.timeline.add(slot, s.time_ns);
                lo = lo.min(s.time_ns);
                hi = hi.max(s.time_ns);
            }
            if k > 0 {
                p.time_range = Some((lo, hi));
            }
            kept = k;
        }
        p.total_samples += kept;

        // Functions: the hot loop. A function's `samples` is the sum of its
        // `hits`, computed once at the end (`finish_functions`). The resolver
        // caches the last function hit, so a PC in the same function as the
        // last one costs a few compares.
        let want = self.want_interp;
        for s in samples {
            if want.is_some_and(|w| w != s.interp) {
                continue;
            }
            let Some(fi) = self.resolver.resolve(s.pc, s.time_ns) else {
                p.unresolved += 1;
                continue;
            };
            let f = &mut p.functions[fi];
            // The resolver only answers for PCs inside the function, so the
            // offset is within `hits`; `get_mut` keeps a bad resolver from
            // panicking.
            match f.hits.get_mut(s.pc.wrapping_sub(f.addr) as usize) {
                Some(h) => *h += 1,
                None => p.unresolved += 1,
            }
        }
    }

    /// Sets each function's `samples` from its `hits`.
    fn finish_functions(p: &mut Profile) {
        for f in &mut p.functions {
            f.samples = f.hits.iter().sum();
        }
    }
}

/// Builds a [`Timeline`] with a cache of the last bucket's time range, so
/// that most samples cost a compare and an increment rather than a
/// division and a map lookup.
struct TimelineBuilder {
    by_sample_index: bool,
    max_buckets: usize,
    bucket: u64,
    start: u64,
    started: bool,
    /// Counts per bucket, per interpreter slot (index in
    /// `Profile::interpreters`).
    counts: Vec<Vec<u64>>,
    /// `[lo, hi)`: times of bucket `cached_idx`.
    cached: Option<(u64, u64, usize)>,
}

impl TimelineBuilder {
    fn new(by_sample_index: bool, max_buckets: usize) -> TimelineBuilder {
        TimelineBuilder {
            by_sample_index,
            max_buckets: max_buckets.max(2),
            bucket: if by_sample_index { 16 } else { 1_000_000 },
            start: 0,
            started: false,
            counts: Vec::new(),
            cached: None,
        }
    }

    /// Adds `n` samples at consecutive sample indices from `first`.
    fn add_index_run(&mut self, slot: usize, first: u64, n: u64) {
        let (mut t, end) = (first, first.saturating_add(n));
        while t < end {
            let idx = self.bucket_of(t);
            let hi = self.cached.map_or(end, |(_, hi, _)| hi);
            let take = hi.min(end) - t;
            self.bump(slot, idx, take.max(1));
            t += take.max(1);
        }
    }

    fn bump(&mut self, slot: usize, idx: usize, n: u64) {
        if slot >= self.counts.len() {
            self.counts.resize_with(slot + 1, Vec::new);
        }
        let v = &mut self.counts[slot];
        if v.len() <= idx {
            v.resize(idx + 1, 0);
        }
        v[idx] += n;
    }

    #[inline]
    fn add(&mut self, slot: usize, t: u64) {
        let idx = match self.cached {
            Some((lo, hi, idx)) if t >= lo && t < hi => idx,
            _ => self.bucket_of(t),
        };
        if slot >= self.counts.len() {
            self.counts.resize_with(slot + 1, Vec::new);
        }
        let v = &mut self.counts[slot];
        if v.len() <= idx {
            v.resize(idx + 1, 0);
        }
        v[idx] += 1;
    }

    fn bucket_of(&mut self, t: u64) -> usize {
        if !self.started {
            self.started = true;
            self.start = t;
        }
        let t = t.max(self.start);
        let mut idx = (t - self.start) / self.bucket;
        while idx >= self.max_buckets as u64 {
            // Halve the resolution: merge bucket pairs.
            self.bucket = self.bucket.saturating_mul(2);
            for v in &mut self.counts {
                let merged: Vec<u64> = v.chunks(2).map(|c| c.iter().sum()).collect();
                *v = merged;
            }
            idx = (t - self.start) / self.bucket;
        }
        let lo = self.start + idx * self.bucket;
        self.cached = Some((lo, lo.saturating_add(self.bucket), idx as usize));
        idx as usize
    }

    fn finish(self, interpreters: &[InterpreterProfile]) -> Timeline {
        let mut counts = BTreeMap::new();
        for (slot, v) in self.counts.into_iter().enumerate() {
            if let Some(i) = interpreters.get(slot)
                && !v.is_empty()
            {
                // An id registered twice has two slots: add them up (the
                // buckets are the same for every slot).
                let sum: &mut Vec<u64> = counts.entry(i.id).or_default();
                if sum.len() < v.len() {
                    sum.resize(v.len(), 0);
                }
                for (s, c) in sum.iter_mut().zip(v) {
                    *s += c;
                }
            }
        }
        Timeline {
            bucket_ns: if self.started { self.bucket } else { 0 },
            start_ns: self.start,
            counts,
            by_sample_index: self.by_sample_index,
        }
    }
}
