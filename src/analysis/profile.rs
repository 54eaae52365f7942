//! A profile file, aggregated for analysis in one streaming pass.
//!
//! - [`load`] reads a native or Pulley file record by record; memory holds
//!   the functions (their code and a counter per byte offset), the
//!   interpreters and a bounded timeline, never the samples, so it grows
//!   neither with the file's length nor with its records' size (a Pulley
//!   samples section streams in chunks of 64 Ki PCs).
//! - Two threads: one reads and decodes, one aggregates, handing over
//!   blocks of about 64 Ki samples ([`load_reader`]: one thread).
//! - Samples resolve to functions by address and time (see
//!   [`crate::Resolver`]): unloaded code and reused addresses stay correct.
//! - Per-interpreter state is proportional to the interpreters that appear
//!   (the timeline is sparse); a reused interpreter id's samples go to the
//!   registration live at their time, and its registrations are one
//!   interpreter in the result.
//! - A file that ends early or has a corrupt record still yields the
//!   complete records before the fault; [`Profile::read_error`] tells where
//!   reading stopped.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Resolver;
use crate::format::{
    Event, FileHeader, Format, ListingRecord, ProfileReader, RateRecord, RawPc, ReadError, Sample,
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
    /// Every registration of this id, in time order, when it was registered
    /// more than once (the recorder reuses the id of a retired
    /// interpreter); empty otherwise. A sample belongs to the registration
    /// with the greatest `registered_ns` at or before its time; the fields
    /// above sum them (`registered_ns`: the first; `retired_ns`: the last's).
    pub registrations: Vec<Registration>,
}

/// One registration of a reused interpreter id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Registration time.
    pub registered_ns: u64,
    /// Retirement time, if retired.
    pub retired_ns: Option<u64>,
    /// Samples of this registration (before any filter).
    pub samples: u64,
}

/// Samples per interpreter over time, in equal buckets, kept sparse: only
/// the (interpreter, bucket) pairs with samples, so a million interpreters
/// of one sample each cost a million cells, not a million lanes of buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Width of a bucket, in ns (for Pulley files: in samples, see
    /// [`Timeline::by_sample_index`]).
    pub bucket_ns: u64,
    /// Time of the first bucket's start.
    pub start_ns: u64,
    /// Number of buckets: one past the last bucket with samples.
    pub buckets: usize,
    /// Every bucket with samples, ordered by interpreter id, then bucket.
    /// Registrations of one id (an id reused after its interpreter retired)
    /// are summed into one lane.
    pub cells: Vec<TimelineCell>,
    /// Which functions ran in each cell: ordered by interpreter id, bucket,
    /// then function (`None` last); a cell's entries sum to its `samples`.
    /// At most [`TIMELINE_FUNCTIONS_PER_CELL`] entries a cell: samples
    /// outside every function, and the least hit functions of a cell that
    /// had more, are `None` ("other").
    pub functions: Vec<TimelineFunction>,
    /// The file has no times (Pulley format): buckets count samples in file
    /// order instead.
    pub by_sample_index: bool,
}

/// The samples of one interpreter in one bucket of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineCell {
    /// Interpreter id.
    pub interp: u32,
    /// Bucket index.
    pub bucket: u32,
    /// Samples (never 0).
    pub samples: u64,
}

/// Function entries kept per timeline cell (the last one is "other"):
/// exact counts for every function of a cell with at most this many
/// distinct functions (outside code counting as one), so memory stays
/// bounded by cells, not by functions.
pub const TIMELINE_FUNCTIONS_PER_CELL: usize = 16;

/// The samples of one function in one cell of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineFunction {
    /// Interpreter id.
    pub interp: u32,
    /// Bucket index.
    pub bucket: u32,
    /// Index in [`Profile::functions`]; `None`: outside every function, or
    /// a function lumped into "other" (see [`Timeline::functions`]).
    pub function: Option<usize>,
    /// Samples (never 0).
    pub samples: u64,
}

impl Timeline {
    /// The functions of interpreter `id` in `bucket` (empty if none).
    pub fn cell_functions(&self, id: u32, bucket: u32) -> &[TimelineFunction] {
        let key = |f: &TimelineFunction| (f.interp, f.bucket);
        let from = self.functions.partition_point(|f| key(f) < (id, bucket));
        let to = self.functions.partition_point(|f| key(f) <= (id, bucket));
        &self.functions[from..to.max(from)]
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets
    }

    /// Whether the timeline is empty.
    pub fn is_empty(&self) -> bool {
        self.buckets == 0
    }

    /// One lane per interpreter id with samples, in id order: its cells.
    pub fn lanes(&self) -> impl Iterator<Item = (u32, &[TimelineCell])> + '_ {
        self.cells
            .chunk_by(|a, b| a.interp == b.interp)
            .map(|lane| (lane[0].interp, lane))
    }

    /// The counts of interpreter `id` in every bucket (`len()` of them).
    pub fn lane(&self, id: u32) -> Vec<u64> {
        let mut v = vec![0; self.buckets];
        let from = self.cells.partition_point(|c| c.interp < id);
        for c in self.cells[from..].iter().take_while(|c| c.interp == id) {
            if let Some(slot) = v.get_mut(c.bucket as usize) {
                *slot += c.samples;
            }
        }
        v
    }

    /// All samples in the timeline.
    pub fn total(&self) -> u64 {
        self.cells.iter().map(|c| c.samples).sum()
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
    /// A profile of nothing yet, to aggregate into.
    fn empty(
        path: PathBuf,
        file_bytes: u64,
        format: Format,
        header: Option<FileHeader>,
    ) -> Profile {
        Profile {
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
        }
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

    /// Functions ordered hottest first (ties by name).
    pub fn functions_by_heat(&self) -> Vec<&FunctionProfile> {
        let mut v: Vec<&FunctionProfile> = self.functions.iter().collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.name.cmp(&b.name)));
        v
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
    aggregate_pipelined(reader, path.to_path_buf(), file_bytes, options, progress)
}

/// Like [`load`], from a profile already in memory (`path` is left empty):
/// for tests and fuzzing, which have bytes rather than a file.
pub fn load_bytes(
    bytes: &[u8],
    options: &LoadOptions,
    progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let reader = ProfileReader::new(bytes).map_err(LoadError)?;
    aggregate_pipelined(
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
    let mut p = Profile::empty(path, file_bytes, reader.format(), reader.header().cloned());
    let mut agg = Aggregator::new(p.format, options);
    let mut samples: Vec<Sample> = Vec::new();
    let mut pcs: Vec<RawPc> = Vec::new();
    let mut last_progress = 0u64;
    while let Some(ev) = reader.next_pcs_into(&mut samples, &mut pcs) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                p.read_error_offset = Some(e.offset());
                p.read_error = Some(e.to_string());
                break;
            }
        };
        agg.event(&mut p, ev, &samples, &pcs);
        let at = reader.offset();
        if at != last_progress {
            last_progress = at;
            progress(at);
        }
    }
    agg.finish(&mut p);
    progress(reader.offset());
    Ok(p)
}

/// Samples (or PCs) a [`Block`] gathers before it is handed over: enough
/// that the hand-over costs nothing per sample, little enough that the
/// block stays in the cache.
const BLOCK_SAMPLES: usize = 1 << 16;
/// Events a [`Block`] gathers at most (files of many small records).
const BLOCK_EVENTS: usize = 1024;

/// What the reading thread of [`aggregate_pipelined`] hands over: events in
/// file order, each with the end of its samples in `samples` / `pcs`.
#[derive(Default)]
struct Block {
    events: Vec<(Event, usize, usize)>,
    samples: Vec<Sample>,
    pcs: Vec<RawPc>,
    /// The reader's offset after the last event.
    offset: u64,
    /// Where reading stopped, in the last block.
    error: Option<ReadError>,
}

/// [`aggregate`] on two threads: this one aggregates while a scoped thread
/// reads and decodes (the kernel's copy from the page cache and, for native
/// files, the varints), handing over [`Block`]s of about 64 Ki samples
/// through a channel of two; emptied blocks go back for reuse, so memory
/// stays a few blocks whatever the file. The result is the one-threaded
/// pass's, event for event.
fn aggregate_pipelined<R: Read + Send>(
    mut reader: ProfileReader<R>,
    path: PathBuf,
    file_bytes: u64,
    options: &LoadOptions,
    mut progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    use std::sync::mpsc::{channel, sync_channel};

    let mut p = Profile::empty(path, file_bytes, reader.format(), reader.header().cloned());
    let mut agg = Aggregator::new(p.format, options);
    let (full_tx, full_rx) = sync_channel::<Block>(2);
    let (empty_tx, empty_rx) = channel::<Block>();
    let mut last_progress = 0;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut samples = Vec::new();
            let mut pcs = Vec::new();
            loop {
                let mut block = empty_rx.try_recv().unwrap_or_default();
                block.events.clear();
                block.samples.clear();
                block.pcs.clear();
                let mut end = false;
                while block.events.len() < BLOCK_EVENTS
                    && block.samples.len() + block.pcs.len() < BLOCK_SAMPLES
                {
                    match reader.next_pcs_into(&mut samples, &mut pcs) {
                        Some(Ok(ev)) => {
                            if block.samples.is_empty() && block.pcs.is_empty() {
                                // No copy for the first (for Pulley files,
                                // often the only) batch of a block.
                                std::mem::swap(&mut samples, &mut block.samples);
                                std::mem::swap(&mut pcs, &mut block.pcs);
                            } else {
                                block.samples.extend_from_slice(&samples);
                                block.pcs.extend_from_slice(&pcs);
                            }
                            block
                                .events
                                .push((ev, block.samples.len(), block.pcs.len()));
                        }
                        Some(Err(e)) => {
                            block.error = Some(e);
                            end = true;
                            break;
                        }
                        None => {
                            end = true;
                            break;
                        }
                    }
                }
                block.offset = reader.offset();
                // The aggregating side has gone only if it panicked.
                if full_tx.send(block).is_err() || end {
                    return;
                }
            }
        });
        for mut block in full_rx {
            let (mut s0, mut p0) = (0, 0);
            for (ev, s1, p1) in block.events.drain(..) {
                agg.event(&mut p, ev, &block.samples[s0..s1], &block.pcs[p0..p1]);
                (s0, p0) = (s1, p1);
            }
            if let Some(e) = block.error.take() {
                p.read_error_offset = Some(e.offset());
                p.read_error = Some(e.to_string());
            }
            if block.offset != last_progress {
                last_progress = block.offset;
                progress(block.offset);
            }
            // The reading side has ended when this fails: nothing to reuse.
            let _ = empty_tx.send(block);
        }
    });
    agg.finish(&mut p);
    progress(last_progress);
    Ok(p)
}

/// Interpreter ids below this are looked up in a vector, not a map.
const DENSE_INTERPS: usize = 1 << 16;

/// Hashes interpreter ids with one multiplication (SipHash cost more than
/// the rest of registering an interpreter); the high half is folded into
/// the low so ids differing only in high bits spread too. A crafted file
/// can at worst make a load slower, never wrong.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.0 as u32));
        }
    }
    fn write_u32(&mut self, n: u32) {
        let h = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

/// A map keyed by interpreter id.
type IdMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The state of one [`load`] pass: caches in front of the resolver and of
/// the interpreter map, which turn the per-sample work into a few compares
/// in the common case (a PC in the same function as the last one).
struct Aggregator {
    format: Format,
    want_interp: Option<u32>,
    resolver: Resolver,
    /// The latest registration's slot (index in `Profile::interpreters`) by
    /// id, for ids from `DENSE_INTERPS` up; below, `slot_of`.
    latest: IdMap<usize>,
    /// The latest registration's slot by id, for ids below `DENSE_INTERPS`
    /// (`usize::MAX`: none yet).
    slot_of: Vec<usize>,
    /// Per slot: the earliest sample time the slot takes on the fast path.
    /// 0 unless its id was registered again (ids are reused after their
    /// interpreter retired): then a sample belongs to the registration with
    /// the greatest `registered_ns <= time_ns`.
    floor: Vec<u64>,
    /// Ids registered more than once: every registration
    /// (`registered_ns`, slot), by time.
    history: IdMap<Vec<(u64, usize)>>,
    seq: u64,
    timeline: TimelineBuilder,
}

impl Aggregator {
    fn new(format: Format, options: &LoadOptions) -> Aggregator {
        Aggregator {
            format,
            want_interp: options.interp,
            resolver: Resolver::new(),
            latest: IdMap::default(),
            slot_of: Vec::new(),
            floor: Vec::new(),
            history: IdMap::default(),
            seq: 0,
            timeline: TimelineBuilder::new(format == Format::Pulley, options.timeline_buckets),
        }
    }

    /// One event of the file; a samples event's samples are in `samples`
    /// (native) or `pcs` (Pulley).
    fn event(&mut self, p: &mut Profile, ev: Event, samples: &[Sample], pcs: &[RawPc]) {
        match ev {
            Event::Function(f) => self.add_function(p, f),
            Event::Unload(u) => self.unload(p, u.addr, u.unloaded_ns),
            Event::Interpreter(i) => {
                let slot = p.interpreters.len();
                p.interpreters.push(InterpreterProfile {
                    id: i.id,
                    label: i.label,
                    samples: 0,
                    registered_ns: i.registered_ns,
                    retired_ns: None,
                    registrations: Vec::new(),
                });
                self.register_interp(p, i.id, slot);
            }
            Event::Retired(r) => {
                if let Some(i) = self.latest_slot(r.id) {
                    p.interpreters[i].retired_ns = Some(r.retired_ns);
                }
            }
            Event::Rate(r) => p.rates.push(r),
            Event::Summary(s) => p.summary = Some(s),
            Event::Sampling(s) => p.sampling = Some(s),
            Event::Samples(owned) => {
                // The reader fills `samples` or `pcs`; `owned` is empty
                // unless a future reader hands batches over by value.
                self.add_samples(p, samples);
                self.add_samples(p, &owned);
                self.add_pcs(p, pcs);
            }
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

    /// The slot of the latest registration of `id` in file order.
    fn latest_slot(&self, id: u32) -> Option<usize> {
        match self.slot_of.get(id as usize) {
            Some(&slot) if slot != usize::MAX => Some(slot),
            Some(_) => None,
            None => self.latest.get(&id).copied(),
        }
    }

    /// Records that `slot` (already in `p.interpreters`) registers `id`.
    fn register_interp(&mut self, p: &Profile, id: u32, slot: usize) {
        self.floor.push(0);
        if let Some(prev) = self.latest_slot(id) {
            // The id again: samples go by time to the registration with the
            // greatest `registered_ns <= time_ns` (ties: the later record).
            let regs = self
                .history
                .entry(id)
                .or_insert_with(|| vec![(p.interpreters[prev].registered_ns, prev)]);
            let t = p.interpreters[slot].registered_ns;
            let at = regs.partition_point(|&(r, _)| r <= t);
            let old_last = regs.last().map(|&(_, s)| s);
            // At the end in the common case (registrations in time order),
            // so a thousand reuses of one id cost a thousand pushes.
            regs.insert(at, (t, slot));
            // The fast path takes only the registration latest in time, for
            // the samples at or after it; the others go through `history`.
            if let Some(&(r, last)) = regs.last() {
                if let Some(old) = old_last
                    && old != last
                {
                    self.floor[old] = u64::MAX;
                }
                self.floor[last] = r;
                if slot != last {
                    self.floor[slot] = u64::MAX;
                }
            }
        }
        let i = id as usize;
        if i < DENSE_INTERPS {
            if i >= self.slot_of.len() {
                self.slot_of.resize(i + 1, usize::MAX);
            }
            self.slot_of[i] = slot;
        } else {
            self.latest.insert(id, slot);
        }
    }

    /// The slot of the registration a sample of `id` at `time_ns` belongs
    /// to: O(1) unless the id was registered more than once.
    #[inline]
    fn interp_slot(&mut self, p: &mut Profile, id: u32, time_ns: u64) -> usize {
        if let Some(&slot) = self.slot_of.get(id as usize)
            && slot != usize::MAX
            && time_ns >= self.floor[slot]
        {
            return slot;
        }
        self.interp_slot_slow(p, id, time_ns)
    }

    fn interp_slot_slow(&mut self, p: &mut Profile, id: u32, time_ns: u64) -> usize {
        if !self.history.is_empty()
            && let Some(regs) = self.history.get(&id)
        {
            let at = regs.partition_point(|&(r, _)| r <= time_ns);
            // Before every registration: the earliest.
            return regs[at.saturating_sub(1)].1;
        }
        if let Some(slot) = self.latest_slot(id) {
            return slot;
        }
        // Pulley files (and files whose interpreter record was lost) get an
        // implicit interpreter.
        let slot = p.interpreters.len();
        p.interpreters.push(InterpreterProfile {
            id,
            label: None,
            samples: 0,
            registered_ns: 0,
            retired_ns: None,
            registrations: Vec::new(),
        });
        self.register_interp(p, id, slot);
        slot
    }

    /// A Pulley chunk: bare PCs, one interpreter (0), no times; the whole
    /// chunk is one run of sample indices.
    fn add_pcs(&mut self, p: &mut Profile, pcs: &[RawPc]) {
        self.add_indexed(p, pcs, |pc| u64::from_le_bytes(*pc));
    }

    fn add_samples(&mut self, p: &mut Profile, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        // Pulley files have one interpreter and no times: the whole batch
        // is one run of sample indices.
        if self.format == Format::Pulley {
            self.add_indexed(p, samples, |s| s.pc);
            return;
        }
        let mut k = 0;
        let (mut lo, mut hi) = p.time_range.unwrap_or((u64::MAX, 0));
        let mut spans = SpanCache::new(&self.resolver);
        for s in samples {
            let slot = self.interp_slot(p, s.interp, s.time_ns);
            p.interpreters[slot].samples += 1;
            self.seq += 1;
            if self.want_interp.is_some_and(|want| want != s.interp) {
                continue;
            }
            k += 1;
            lo = lo.min(s.time_ns);
            hi = hi.max(s.time_ns);
            let f = spans.hit(&mut self.resolver, p, s.pc, s.time_ns);
            self.timeline.add(slot, s.time_ns, f);
        }
        if k > 0 {
            p.time_range = Some((lo, hi));
        }
        p.total_samples += k;
    }

    /// Samples of interpreter 0 without times (Pulley): their timeline
    /// "time" is their index in the file. The hot loop of a Pulley file:
    /// per sample, the span cache's compares and an increment of the hit
    /// counter (no time: the span stays valid for the whole chunk).
    fn add_indexed<T>(&mut self, p: &mut Profile, items: &[T], pc_of: impl Fn(&T) -> u64) {
        if items.is_empty() {
            return;
        }
        let n = items.len() as u64;
        let slot = self.interp_slot(p, 0, 0);
        p.interpreters[slot].samples += n;
        let first = self.seq + 1;
        self.seq += n;
        if self.want_interp.is_some_and(|want| want != 0) {
            return;
        }
        p.total_samples += n;
        let mut spans = SpanCache::new(&self.resolver);
        let mut rest = items;
        let mut t = first;
        let mut run_f = OTHER;
        while !rest.is_empty() {
            // The samples up to the end of `t`'s bucket.
            let (idx, hi) = self.timeline.bucket_range(t);
            let take = (hi.saturating_sub(t) as usize).clamp(1, rest.len());
            let (now, later) = rest.split_at(take);
            rest = later;
            t += take as u64;
            // The function changes only where the span cache misses, so the
            // run of one function is counted by index there: a cache hit
            // costs what it did before the timeline knew functions.
            // `run_f` is the function of `spans.last` (kept across buckets).
            let mut run_start = 0;
            for (i, item) in now.iter().enumerate() {
                let pc = pc_of(item);
                if let Some((start, end, fi)) = spans.last
                    && pc >= start
                    && pc < end
                {
                    let f = &mut p.functions[fi];
                    if let Some(h) = f.hits.get_mut(pc.wrapping_sub(f.addr) as usize) {
                        *h += 1;
                        continue;
                    }
                }
                let f = spans.hit(&mut self.resolver, p, pc, 0);
                if f != run_f {
                    if i > run_start {
                        self.timeline.bump(slot, idx, run_f, (i - run_start) as u64);
                    }
                    (run_f, run_start) = (f, i);
                }
            }
            if now.len() > run_start {
                self.timeline
                    .bump(slot, idx, run_f, (now.len() - run_start) as u64);
            }
        }
    }

    /// Function totals, the timeline, and one interpreter entry per id.
    fn finish(self, p: &mut Profile) {
        for f in &mut p.functions {
            f.samples = f.hits.iter().sum();
        }
        p.timeline = self.timeline.finish(&p.interpreters);
        if !self.history.is_empty() {
            merge_registrations(&mut p.interpreters);
        }
    }
}

/// Makes the registrations of one id (ids are reused after their
/// interpreter retired) one entry, where the first registration was:
/// samples summed, registered at the first, retired as the last is, the
/// first label given, and each registration in `registrations`.
fn merge_registrations(interpreters: &mut Vec<InterpreterProfile>) {
    let mut first: IdMap<usize> = IdMap::default();
    let mut merged: Vec<InterpreterProfile> = Vec::new();
    let registration = |i: &InterpreterProfile| Registration {
        registered_ns: i.registered_ns,
        retired_ns: i.retired_ns,
        samples: i.samples,
    };
    for i in interpreters.drain(..) {
        match first.get(&i.id) {
            Some(&at) => {
                let m = &mut merged[at];
                if m.registrations.is_empty() {
                    m.registrations.push(registration(m));
                }
                m.registrations.push(registration(&i));
                m.samples += i.samples;
                m.registered_ns = m.registered_ns.min(i.registered_ns);
                m.retired_ns = i.retired_ns;
                if m.label.is_none() {
                    m.label = i.label;
                }
            }
            None => {
                first.insert(i.id, merged.len());
                merged.push(i);
            }
        }
    }
    for m in &mut merged {
        m.registrations.sort_by_key(|r| r.registered_ns);
    }
    *interpreters = merged;
}

/// The function of a timeline entry that is none: outside every function,
/// or past a cell's [`TIMELINE_FUNCTIONS_PER_CELL`].
const OTHER: u32 = u32::MAX;

/// Resolves samples to functions and counts their hits: the last span of
/// live code hit, valid until the resolver's next change, so in the common
/// case (a PC in the same function as the last one) a sample costs two
/// compares and an increment.
struct SpanCache {
    last: Option<(u64, u64, usize)>,
    until: u64,
}

impl SpanCache {
    fn new(resolver: &Resolver) -> SpanCache {
        SpanCache {
            last: None,
            until: resolver.next_change(),
        }
    }

    /// Counts a hit of `pc` at `time_ns`; its function's index, or
    /// [`OTHER`] (counted in `p.unresolved`).
    #[inline]
    fn hit(&mut self, resolver: &mut Resolver, p: &mut Profile, pc: u64, time_ns: u64) -> u32 {
        let fi = match self.last {
            Some((start, end, fi)) if pc >= start && pc < end && time_ns <= self.until => fi,
            _ => match resolver.resolve_hit(pc, time_ns) {
                Some(hit) => {
                    self.last = hit.span.map(|(start, end)| (start, end, hit.index));
                    self.until = resolver.next_change();
                    hit.index
                }
                None => {
                    p.unresolved += 1;
                    return OTHER;
                }
            },
        };
        // The resolver only answers for PCs inside the function, so the
        // offset is within `hits`; `get_mut` keeps a bad resolver from
        // panicking.
        let f = &mut p.functions[fi];
        match f.hits.get_mut(pc.wrapping_sub(f.addr) as usize) {
            Some(h) => {
                *h += 1;
                u32::try_from(fi).unwrap_or(OTHER)
            }
            None => {
                // Not cached: the fast path in `add_indexed` takes a cached
                // span's function for the current run's.
                self.last = None;
                p.unresolved += 1;
                OTHER
            }
        }
    }
}

/// Builds a [`Timeline`] with memory proportional to the (interpreter,
/// bucket) pairs that have samples, times the functions in each (at most
/// [`TIMELINE_FUNCTIONS_PER_CELL`]):
///
/// - each slot's current bucket, with its functions' counts, in a vector
///   indexed by slot, so a sample costs a compare and an increment (with a
///   cache of the last bucket's time range, rarely a division);
/// - a run ends when its slot's samples move to another bucket, or when it
///   meets one function more than a cell keeps, and goes to a log of
///   (slot, bucket, function) cells, compacted (sorted, equal cells summed,
///   each cell's functions capped to its most hit) when halving the
///   resolution and whenever it doubles, so out-of-order batches cannot
///   make it grow with the file.
struct TimelineBuilder {
    by_sample_index: bool,
    max_buckets: usize,
    bucket: u64,
    start: u64,
    started: bool,
    /// Per slot: its current bucket's functions; none if `funcs` is empty.
    runs: Vec<Run>,
    /// Ended runs: (slot, bucket, function, samples).
    log: Vec<(u32, u32, u32, u64)>,
    /// Log length after the last compaction.
    compacted: usize,
    /// `[lo, hi)`: times of bucket `cached_idx`.
    cached: Option<(u64, u64, usize)>,
}

/// One slot's current bucket: the function hit last inline (a sample of
/// it costs a compare and an increment; most slots never have another),
/// the bucket's other functions boxed (at most
/// [`TIMELINE_FUNCTIONS_PER_CELL`] in all: one more ends the run).
/// 24 bytes a slot, so a million interpreters cost 24 MB here.
#[derive(Default)]
struct Run {
    bucket: u32,
    f: u32,
    /// Samples of `f`; 0: no run.
    n: u64,
    /// Boxed: 8 bytes a slot rather than a `Vec`'s 24.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<(u32, u64)>>>,
}

impl TimelineBuilder {
    fn new(by_sample_index: bool, max_buckets: usize) -> TimelineBuilder {
        TimelineBuilder {
            by_sample_index,
            max_buckets: max_buckets.clamp(2, u32::MAX as usize),
            bucket: if by_sample_index { 16 } else { 1_000_000 },
            start: 0,
            started: false,
            runs: Vec::new(),
            log: Vec::new(),
            compacted: 0,
            cached: None,
        }
    }

    /// The bucket of `t` and the end of its range.
    fn bucket_range(&mut self, t: u64) -> (usize, u64) {
        let idx = self.bucket_of(t);
        (idx, self.cached.map_or(u64::MAX, |(_, hi, _)| hi))
    }

    #[inline]
    fn add(&mut self, slot: usize, t: u64, f: u32) {
        let idx = match self.cached {
            Some((lo, hi, idx)) if t >= lo && t < hi => idx,
            _ => self.bucket_of(t),
        };
        if let Some(run) = self.runs.get_mut(slot)
            && run.bucket == idx as u32
            && run.f == f
            && run.n > 0
        {
            run.n += 1;
            return;
        }
        self.bump(slot, idx, f, 1);
    }

    /// Adds `n` samples of function `f` to `slot` in bucket `idx`.
    fn bump(&mut self, slot: usize, idx: usize, f: u32, n: u64) {
        // `idx < max_buckets <= u32::MAX`.
        let idx = idx as u32;
        if slot >= self.runs.len() {
            self.runs.resize_with(slot + 1, Run::default);
        }
        let run = &self.runs[slot];
        // A run holds at most a cell's functions; one more ends it like a
        // new bucket does, and the log's compaction keeps the cell's most
        // hit. So the cap keeps the hottest functions, not the first seen.
        let full = run.n > 0
            && run.f != f
            && run.more.as_ref().is_some_and(|more| {
                more.len() + 1 >= TIMELINE_FUNCTIONS_PER_CELL && more.iter().all(|e| e.0 != f)
            });
        if run.n > 0 && (run.bucket != idx || full) {
            self.end_run(slot);
        }
        let run = &mut self.runs[slot];
        run.bucket = idx;
        if run.n == 0 || run.f == f {
            run.f = f;
            run.n += n;
            return;
        }
        let more = run.more.get_or_insert_with(Default::default);
        // The function hit last moves inline.
        let (was_f, was_n) = (run.f, run.n);
        match more.iter().position(|e| e.0 == f) {
            Some(at) => {
                let (g, m) = more[at];
                more[at] = (was_f, was_n);
                (run.f, run.n) = (g, m + n);
            }
            None => {
                more.push((was_f, was_n));
                (run.f, run.n) = (f, n);
            }
        }
    }

    /// Moves `slot`'s run to the log, compacting the log when it has
    /// doubled since the last compaction.
    fn end_run(&mut self, slot: usize) {
        let run = &mut self.runs[slot];
        let (bucket, first, more) = (run.bucket, (run.f, run.n), run.more.take());
        run.n = 0;
        let s = slot as u32;
        self.log.push((s, bucket, first.0, first.1));
        if let Some(more) = more {
            self.log
                .extend(more.iter().map(|&(f, n)| (s, bucket, f, n)));
        }
        if self.log.len() >= 2 * self.compacted.max(1 << 12) {
            self.compact();
        }
    }

    /// Sorts the log, sums equal cells and caps each cell's functions.
    fn compact(&mut self) {
        compact_cells(&mut self.log);
        self.compacted = self.log.len();
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
            for run in &mut self.runs {
                run.bucket /= 2;
            }
            for cell in &mut self.log {
                cell.1 /= 2;
            }
            self.compact();
            idx = (t - self.start) / self.bucket;
        }
        let lo = self.start + idx * self.bucket;
        self.cached = Some((lo, lo.saturating_add(self.bucket), idx as usize));
        idx as usize
    }

    fn finish(mut self, interpreters: &[InterpreterProfile]) -> Timeline {
        for (slot, run) in self.runs.iter().enumerate() {
            if run.n == 0 {
                continue;
            }
            let s = slot as u32;
            self.log.push((s, run.bucket, run.f, run.n));
            if let Some(more) = &run.more {
                self.log
                    .extend(more.iter().map(|&(f, n)| (s, run.bucket, f, n)));
            }
        }
        drop(self.runs);
        // By id: the registrations of one id become one lane.
        let mut by_id = self.log;
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
        Timeline {
            bucket_ns: if self.started { self.bucket } else { 0 },
            start_ns: self.start,
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
fn compact_cells(log: &mut Vec<(u32, u32, u32, u64)>) {
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
