//! The per-sample work of a load: resolving each PC to its function and
//! counting it, and the bookkeeping of interpreters and registrations.
//!
//! - [`Tally`] resolves and counts: a direct-mapped memo of the PCs seen
//!   (PC → function and counter), valid while the resolver's live code
//!   stays the same, makes a sample one lookup and one increment wherever
//!   it falls, so samples that hop between functions cost what samples in
//!   one function do. A miss asks the [`Resolver`]. Counters exist only for
//!   sampled functions: a map of their sampled offsets, and an arena of
//!   16-bit counters for a small function once it has many samples.
//! - [`Aggregator`] applies the file's events to the [`Profile`] in file
//!   order; threads that tally other chunks of samples of the same file
//!   (`load.rs`) hold only a [`Tally`] and a [`TimelineBuilder`], merged at
//!   the end.
//! - Code is kept while it is small in all ([`KEEP_CODE_BYTES`]); past that
//!   a function's code is dropped as it is read, and the loader reads back
//!   the code of the ones that turned out sampled.

use crate::Resolver;
use crate::format::{Event, Format, FunctionRecord, RawPc, Sample, SkippedCode};

use super::stacks::StackBuilder;
use super::timeline::{FoldMap, OTHER, TimelineBuilder};
use super::{
    FunctionProfile, Hits, InterpreterProfile, LoadOptions, Profile, Registration,
    TIMELINE_FUNCTIONS_PER_CELL,
};

/// Interpreter ids below this are looked up in a vector, not a map.
const DENSE_INTERPS: usize = 1 << 16;

/// A map keyed by interpreter id.
type IdMap<V> = FoldMap<u32, V>;

/// Code held in memory at most for functions not known to be sampled, when
/// it can be read back from the source: past it, code is dropped as it is
/// read (a 136 MB program keeps little more than its names).
pub(super) const KEEP_CODE_BYTES: u64 = 4 << 20;

/// Where a function event's code lies in the source, and, when the reader
/// let it stream past rather than keep it, its length and checksum.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CodeAt {
    pub(super) offset: Option<u64>,
    pub(super) skipped: Option<SkippedCode>,
}

/// Functions of at most this many bytes count their samples in a dense
/// array of 16-bit counters (allocated at their first sample); bigger ones
/// in a map of their sampled offsets.
const DENSE_CODE_BYTES: u64 = 64 << 10;

/// log2 of the memo's slots: 16 Ki slots of 24 bytes, within a core's L2
/// (64 Ki were no faster on hot code wider than the memo, and cost their
/// pages on every load).
const MEMO_BITS: u32 = 14;

/// A memoized PC: its function and its counter in the arena, valid at
/// resolver `epoch`.
#[derive(Clone, Copy, Default)]
struct Slot {
    pc: u64,
    /// 0: empty (the resolver's epochs start at 1).
    epoch: u64,
    counter: u32,
    function: u32,
}

/// A function moves its counters to the arena once it has a sample for
/// every this many bytes of its code.
const DENSE_EVERY: u64 = 4;

/// A function's counters: where in the arena, or in the map.
const SPARSE: u32 = u32::MAX;
/// Not sampled yet.
const NONE_YET: u32 = u32::MAX - 1;

/// Resolves PCs and counts them per (function, offset).
///
/// Small functions (the many) count in one arena of `u16`s, two bytes a
/// byte of sampled code, a counter that wraps carrying into `overflow`;
/// big ones in `sparse`, so a 23 MB function with three sampled offsets
/// costs three entries. Per sample: a direct-mapped memo of the PCs seen
/// (PC → function and counter, valid while the resolver's live code stays
/// the same) makes a repeated PC one lookup and one increment wherever it
/// falls, so samples that hop between a few thousand hot PCs cost what
/// samples in one function do; a miss asks the resolver (its last piece, or
/// its granule table) and the function's entry.
///
/// A function's index must fit in 32 bits less two (the markers).
pub(super) struct Tally {
    resolver: Resolver,
    /// Per function: address, code length, where its counters are (an
    /// index in `arena`, [`SPARSE`] or [`NONE_YET`]), and its samples while
    /// they are in `sparse`.
    functions: Vec<(u64, u64, u32, u32)>,
    arena: Vec<u16>,
    /// Arena index → multiples of 65 536 carried out of its counter.
    overflow: FoldMap<u32, u64>,
    /// `(function << 32) | offset` → samples, for big functions.
    sparse: FoldMap<u64, u64>,
    memo: Box<[Slot]>,
    /// Per function (and one for outside every function): samples in the
    /// timeline bucket being filled ([`tally_indexed`]), and the functions
    /// touched.
    bucket: Vec<u64>,
    touched: Vec<u32>,
    /// Memo misses, and the lowest and highest address of the code: a
    /// chunk of PCs that mostly missed is counted in address order next.
    misses: u64,
    sort_next: bool,
    /// Slices counted, for the memo's periodic check.
    chunks: u64,
    lo: u64,
    hi: u64,
    /// PCs of a chunk in address order, and the counting sort's histogram.
    sorted: Vec<u64>,
    histogram: Vec<u32>,
    /// Arena length when it was last laid out in function order.
    laid_out: usize,
    /// Samples outside every function.
    pub(super) unresolved: u64,
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            resolver: Resolver::new(),
            functions: Vec::new(),
            arena: Vec::new(),
            overflow: FoldMap::default(),
            sparse: FoldMap::default(),
            memo: vec![Slot::default(); 1 << MEMO_BITS].into_boxed_slice(),
            bucket: Vec::new(),
            touched: Vec::new(),
            misses: 0,
            sort_next: false,
            chunks: 0,
            lo: u64::MAX,
            hi: 0,
            sorted: Vec::new(),
            histogram: Vec::new(),
            laid_out: 0,
            unresolved: 0,
        }
    }

    /// Lays the arena out again in function order (address order, in a
    /// Pulley file), once it has doubled since the last time: functions
    /// turn dense in the order their samples arrive, so with samples
    /// hopping over thousands of functions the counters of neighbouring
    /// code lie far apart, and a chunk counted in address order would
    /// still miss the cache on every counter. Laid out in order, that walk
    /// streams. Amortised O(1) a counter; the memo is emptied (its slots
    /// name arena places).
    fn lay_out(&mut self) {
        if self.arena.len() < 2 * self.laid_out.max(1 << 16) {
            return;
        }
        let mut moved: Vec<(u32, u32, u64)> = Vec::new();
        let mut arena = Vec::with_capacity(self.arena.len());
        for f in &mut self.functions {
            if f.2 >= NONE_YET {
                continue;
            }
            let (at, len) = (f.2 as usize, f.1 as usize);
            let Some(counters) = self.arena.get(at..at + len) else {
                continue;
            };
            moved.push((f.2, arena.len() as u32, f.1));
            f.2 = arena.len() as u32;
            arena.extend_from_slice(counters);
        }
        if !self.overflow.is_empty() {
            moved.sort_unstable_by_key(|m| m.0);
            let old = std::mem::take(&mut self.overflow);
            for (k, n) in old {
                let i = moved.partition_point(|m| m.0 <= k);
                if let Some(&(from, to, len)) = i.checked_sub(1).and_then(|i| moved.get(i))
                    && u64::from(k - from) < len
                {
                    *self.overflow.entry(to + (k - from)).or_insert(0) += n;
                }
            }
        }
        self.arena = arena;
        self.laid_out = self.arena.len();
        self.memo.fill(Slot::default());
    }

    /// Adds the next function (its index is the number added before).
    pub(super) fn add_function(&mut self, addr: u64, len: u64, loaded_ns: u64) {
        self.resolver
            .add(self.functions.len(), addr, len, loaded_ns);
        self.functions.push((addr, len, NONE_YET, 0));
        self.lo = self.lo.min(addr);
        self.hi = self.hi.max(addr.saturating_add(len));
    }

    /// The function holding `pc` at `time_ns` (a call site of a stack),
    /// without counting it.
    pub(super) fn function_of(&mut self, pc: u64, time_ns: u64) -> Option<usize> {
        let i = self.resolver.resolve(pc, time_ns)?;
        let &(addr, len, _, _) = self.functions.get(i)?;
        (pc.wrapping_sub(addr) < len).then_some(i)
    }

    /// Unloads the latest function at `addr`; its index.
    pub(super) fn unload(&mut self, addr: u64, unloaded_ns: u64) -> Option<usize> {
        self.resolver.unload(addr, unloaded_ns)
    }

    /// Counts a sample of `pc` at `time_ns`: its function's index, or
    /// [`OTHER`] (counted in `unresolved`).
    #[inline]
    pub(super) fn hit(&mut self, pc: u64, time_ns: u64) -> u32 {
        self.hit_n(pc, time_ns, 1)
    }

    /// Counts `n` samples of `pc` at `time_ns`, as [`Tally::hit`].
    #[inline]
    fn hit_n(&mut self, pc: u64, time_ns: u64, n: u64) -> u32 {
        let h = (pc.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - MEMO_BITS)) as usize;
        let s = self.memo[h];
        if s.pc == pc && s.epoch == self.resolver.epoch() && time_ns <= self.resolver.next_change()
        {
            self.bump(s.counter as usize, n);
            return s.function;
        }
        self.misses += 1;
        self.miss(pc, time_ns, h, n)
    }

    /// `n` more samples on arena counter `i`.
    #[inline]
    fn bump(&mut self, i: usize, n: u64) {
        let c = &mut self.arena[i];
        let sum = u64::from(*c) + n;
        *c = sum as u16;
        if sum > 0xffff {
            *self.overflow.entry(i as u32).or_insert(0) += sum >> 16;
        }
    }

    /// Counts `n` samples of `pc` without the memo (PCs in address order,
    /// whose resolution walks the resolver's tables in order, while the
    /// memo's slots would each be a miss).
    fn hit_direct(&mut self, pc: u64, n: u64) -> u32 {
        self.miss(pc, 0, usize::MAX, n)
    }

    fn miss(&mut self, pc: u64, time_ns: u64, h: usize, n: u64) -> u32 {
        let Some(hit) = self.resolver.resolve_hit(pc, time_ns) else {
            self.unresolved += n;
            return OTHER;
        };
        // The resolver answers only for PCs inside the function; the checks
        // keep a bad answer (or a function past u32 indices) from counting.
        let Some(&(addr, len, at, _)) = self.functions.get(hit.index) else {
            self.unresolved += n;
            return OTHER;
        };
        let offset = pc.wrapping_sub(addr);
        let function = hit.index as u32;
        if offset >= len || hit.index >= NONE_YET as usize {
            self.unresolved += n;
            return OTHER;
        }
        let at = if at < NONE_YET {
            let i = at as usize + offset as usize;
            self.bump(i, n);
            i
        } else {
            self.count_slow(hit.index, offset, n);
            match self.functions[hit.index].2 {
                SPARSE => return function,
                at => at as usize + offset as usize,
            }
        };
        // An answer of the nearest-in-time rule depends on the time: never
        // memoized; nor are big functions' offsets (no arena counter).
        if hit.span.is_some()
            && let Some(slot) = self.memo.get_mut(h)
        {
            *slot = Slot {
                pc,
                epoch: self.resolver.epoch(),
                counter: at as u32,
                function,
            };
        }
        function
    }

    /// A sample of a function whose counters are in the map: a function
    /// starts there, and moves to the arena once it has a sample for every
    /// [`DENSE_EVERY`] bytes of its code (if small), so the counters of a
    /// function hit a few times hold its sampled offsets only.
    #[cold]
    fn count_slow(&mut self, index: usize, offset: u64, n: u64) {
        *self
            .sparse
            .entry(((index as u64) << 32) | offset)
            .or_insert(0) += n;
        let (_, len, _, samples) = &mut self.functions[index];
        *samples = samples.saturating_add(n.min(u64::from(u32::MAX)) as u32);
        let (len, samples) = (*len, u64::from(*samples));
        self.functions[index].2 = SPARSE;
        let base = self.arena.len() as u64;
        if len <= DENSE_CODE_BYTES
            && samples.saturating_mul(DENSE_EVERY) >= len
            && base + len < u64::from(NONE_YET)
        {
            self.arena.resize((base + len) as usize, 0);
            self.functions[index].2 = base as u32;
            for o in 0..len {
                if let Some(c) = self.sparse.remove(&(((index as u64) << 32) | o)) {
                    self.bump(base as usize + o as usize, c);
                }
            }
        }
    }

    /// `pcs` into `out` in address order, near enough: a counting sort on
    /// the position within the code's address range, in at most 64 Ki
    /// classes (PCs outside the range first), so that equal PCs are
    /// adjacent and the counters are visited in address order.
    fn sort_chunk(&mut self, pcs: impl Iterator<Item = u64> + Clone, out: &mut Vec<u64>) {
        const CLASSES: usize = 1 << 16;
        let span = self.hi.saturating_sub(self.lo).max(1);
        let shift = (64 - (span - 1).leading_zeros()).saturating_sub(16);
        let (lo, hi) = (self.lo, self.hi);
        let class = move |pc: u64| -> usize {
            if pc < lo || pc >= hi {
                0
            } else {
                (((pc - lo) >> shift) as usize + 1).min(CLASSES - 1)
            }
        };
        self.histogram.clear();
        self.histogram.resize(CLASSES + 1, 0);
        let mut n = 0usize;
        for pc in pcs.clone() {
            self.histogram[class(pc) + 1] += 1;
            n += 1;
        }
        for i in 1..=CLASSES {
            self.histogram[i] += self.histogram[i - 1];
        }
        out.clear();
        out.resize(n, 0);
        for pc in pcs {
            let c = &mut self.histogram[class(pc)];
            out[*c as usize] = pc;
            *c += 1;
        }
        // Within a class (a few hundred bytes of code), equal PCs are made
        // adjacent.
        let mut start = 0;
        for i in 0..CLASSES {
            let end = self.histogram[i] as usize;
            if end > start + 1 {
                out[start..end].sort_unstable();
            }
            start = end;
        }
    }

    /// The counts of function `fi`'s arena counters, as (offset, samples).
    fn dense_counts(&self, fi: usize, out: &mut Vec<(u32, u64)>) {
        let (_, len, at, _) = self.functions[fi];
        if at >= NONE_YET {
            return;
        }
        let at = at as usize;
        for (o, &c) in self.arena[at..at + len as usize].iter().enumerate() {
            let carried = match self.overflow.is_empty() {
                true => 0,
                false => self.overflow.get(&((at + o) as u32)).copied().unwrap_or(0),
            };
            let n = u64::from(c) + (carried << 16);
            if n > 0 {
                out.push((o as u32, n));
            }
        }
    }

    /// Adds the counts of another thread's tally of the same file.
    pub(super) fn merge(&mut self, other: Tally) {
        let mut one = Vec::new();
        for fi in 0..other.functions.len().min(self.functions.len()) {
            one.clear();
            other.dense_counts(fi, &mut one);
            for &(off, n) in &one {
                self.add_count(fi, u64::from(off), n);
            }
        }
        for (&k, &n) in &other.sparse {
            self.add_count((k >> 32) as usize, k & 0xffff_ffff, n);
        }
        self.unresolved += other.unresolved;
    }

    /// Adds `n` samples at `offset` of function `index`.
    fn add_count(&mut self, index: usize, offset: u64, n: u64) {
        if n == 0 {
            return;
        }
        let at = self.functions[index].2;
        if at < NONE_YET {
            self.bump(at as usize + offset as usize, n);
        } else {
            *self
                .sparse
                .entry(((index as u64) << 32) | offset)
                .or_insert(0) += n;
        }
    }

    /// Each function's hits, by index (`functions` of them).
    fn into_hits(mut self, functions: usize) -> Vec<Hits> {
        let mut sparse: Vec<(u64, u64)> = self.sparse.drain().collect();
        sparse.sort_unstable_by_key(|e| e.0);
        let mut sparse = sparse.into_iter().peekable();
        let mut hits = Vec::with_capacity(functions);
        let mut one = Vec::new();
        for fi in 0..functions {
            one.clear();
            if fi < self.functions.len() {
                self.dense_counts(fi, &mut one);
            }
            while let Some((k, n)) = sparse.next_if(|e| (e.0 >> 32) as usize <= fi) {
                if (k >> 32) as usize == fi {
                    one.push((k as u32, n));
                }
            }
            hits.push(if one.is_empty() {
                Hits::new()
            } else {
                Hits::from_pairs(one.clone())
            });
        }
        // The resolver's maps and the counters of tens of thousands of
        // functions take a while to free, and nothing waits for that.
        if self.functions.len() >= FREE_ELSEWHERE_FUNCTIONS {
            let _ = std::thread::Builder::new()
                .name("pcprof-free".into())
                .spawn(move || drop(self));
        }
        hits
    }
}

/// A tally of this many functions is freed on a thread of its own.
const FREE_ELSEWHERE_FUNCTIONS: usize = 4096;

/// Counts `items`, samples of one slot without times whose indices start at
/// `first` (Pulley files: the timeline's "time" is the index), into `tally`
/// and `timeline`. The hot loop of a Pulley file.
pub(super) fn tally_indexed<T>(
    tally: &mut Tally,
    timeline: &mut TimelineBuilder,
    slot: usize,
    first: u64,
    items: &[T],
    pc_of: impl Fn(&T) -> u64,
) {
    let mut rest = items;
    let mut t = first;
    while !rest.is_empty() {
        // The samples up to the end of `t`'s bucket.
        let (idx, hi) = timeline.bucket_range(t);
        let take = (hi.saturating_sub(t) as usize).clamp(1, rest.len());
        let (now, later) = rest.split_at(take);
        rest = later;
        t += take as u64;
        // Per function for this bucket, handed to the timeline at its end:
        // one increment a sample however the samples hop.
        let n_functions = tally.functions.len() + 1;
        if tally.bucket.len() < n_functions {
            tally.bucket.resize(n_functions, 0);
        }
        // Sorted chunks skip the memo, but one in 16 goes through it to
        // see whether the hot code fits it again.
        tally.chunks += 1;
        let sorting = tally.sort_next && !tally.chunks.is_multiple_of(16);
        if sorting {
            tally.lay_out();
        }
        let count = |tally: &mut Tally, pc: u64, n: u64| {
            let f = match sorting {
                true => tally.hit_direct(pc, n),
                false => tally.hit_n(pc, 0, n),
            };
            let k = if f == OTHER {
                n_functions - 1
            } else {
                f as usize
            };
            let c = &mut tally.bucket[k];
            if *c == 0 {
                tally.touched.push(k as u32);
            }
            *c += n;
        };
        let misses = tally.misses;
        if sorting {
            // Most PCs of the last chunk missed the memo: the hot code is
            // wider than the caches, so counting in address order turns
            // random misses into a walk, and equal PCs into one count.
            let mut sorted = std::mem::take(&mut tally.sorted);
            tally.sort_chunk(now.iter().map(&pc_of), &mut sorted);
            for run in sorted.chunk_by(|a, b| a == b) {
                count(tally, run[0], run.len() as u64);
            }
            tally.sorted = sorted;
        } else {
            for item in now {
                count(tally, pc_of(item), 1);
            }
        }
        // Sorting pays once a chunk misses on more than one PC in four.
        if !sorting {
            tally.sort_next = (tally.misses - misses) * 4 > now.len() as u64 && now.len() >= 1024;
        }
        let mut touched = std::mem::take(&mut tally.touched);
        // A cell keeps its hottest functions (the rest is "other", as the
        // timeline's compaction would make it): capped here, a slice of
        // samples hopping over thousands of functions costs the timeline a
        // few cells, not a cell per function.
        let keep = TIMELINE_FUNCTIONS_PER_CELL - 1;
        if touched.len() > TIMELINE_FUNCTIONS_PER_CELL {
            let bucket = &mut tally.bucket;
            touched.select_nth_unstable_by_key(keep - 1, |&k| {
                (std::cmp::Reverse(bucket[k as usize]), k)
            });
            let rest: u64 = touched[keep..]
                .iter()
                .map(|&k| std::mem::take(&mut bucket[k as usize]))
                .sum();
            touched.truncate(keep);
            timeline.bump(slot, idx, OTHER, rest);
        }
        for &k in &touched {
            let n = std::mem::take(&mut tally.bucket[k as usize]);
            let f = if k as usize == n_functions - 1 {
                OTHER
            } else {
                k
            };
            timeline.bump(slot, idx, f, n);
        }
        touched.clear();
        tally.touched = touched;
    }
}

/// What a load keeps of the code as it reads: see [`KEEP_CODE_BYTES`].
#[derive(Default)]
pub(super) struct CodeKeeper {
    /// Code may be dropped: the loader can read it back.
    pub(super) can_drop: bool,
    pub(super) keep_all: bool,
    kept: u64,
    /// Functions whose code was dropped: (index, offset in the source, CRC-32).
    pub(super) dropped: Vec<(usize, u64, u32)>,
}

/// The state of one [`super::load()`] pass, applying the file's events in
/// order.
pub(super) struct Aggregator {
    format: Format,
    want_interp: Option<u32>,
    pub(super) tally: Tally,
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
    pub(super) timeline: TimelineBuilder,
    pub(super) code: CodeKeeper,
    /// Call stacks (version 3 files that have them).
    stacks: StackBuilder,
}

impl Aggregator {
    pub(super) fn new(format: Format, options: &LoadOptions) -> Aggregator {
        Aggregator {
            format,
            want_interp: options.interp,
            tally: Tally::new(),
            latest: IdMap::default(),
            slot_of: Vec::new(),
            floor: Vec::new(),
            history: IdMap::default(),
            seq: 0,
            timeline: TimelineBuilder::new(format == Format::Pulley, options.timeline_buckets),
            code: CodeKeeper {
                keep_all: options.keep_all_code,
                ..CodeKeeper::default()
            },
            stacks: StackBuilder::default(),
        }
    }

    /// One event of the file; a samples event's samples are in `samples`
    /// (native) or `pcs` (Pulley). `code_at`: where a function event's code
    /// lies in the source. `tally`: count this event's samples here (else
    /// another thread does; they are still counted in the totals).
    pub(super) fn event(
        &mut self,
        p: &mut Profile,
        ev: Event,
        samples: &[Sample],
        pcs: &[RawPc],
        code_at: CodeAt,
        tally: bool,
    ) {
        match ev {
            Event::Function(f) => self.add_function(p, f, code_at),
            Event::Unload(u) => {
                if let Some(i) = self.tally.unload(u.addr, u.unloaded_ns) {
                    p.functions[i].unloaded_ns = Some(u.unloaded_ns);
                }
            }
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
            Event::Stacks(nodes) => self.stacks.introduce(&nodes),
            Event::Samples(owned) => {
                // The reader fills `samples` or `pcs`; `owned` is empty
                // unless a future reader hands batches over by value.
                self.add_samples(p, samples);
                self.add_samples(p, &owned);
                self.add_pcs(p, pcs, tally);
            }
        }
    }

    fn add_function(&mut self, p: &mut Profile, f: FunctionRecord, code_at: CodeAt) {
        let keeper = &mut self.code;
        let (len, crc, code) = match code_at {
            // The reader kept none of it: read back if it turns out sampled.
            CodeAt {
                skipped: Some(s), ..
            } => {
                keeper.dropped.push((p.functions.len(), s.offset, s.crc));
                (s.len, s.crc, Vec::new())
            }
            CodeAt {
                offset: Some(at), ..
            } if keeper.can_drop
                && !keeper.keep_all
                && keeper.kept.saturating_add(f.code.len() as u64) > KEEP_CODE_BYTES =>
            {
                let crc = crc32fast::hash(&f.code);
                keeper.dropped.push((p.functions.len(), at, crc));
                (f.code.len() as u64, crc, Vec::new())
            }
            _ => {
                let len = f.code.len() as u64;
                keeper.kept += len;
                (len, crc32fast::hash(&f.code), f.code)
            }
        };
        self.tally.add_function(f.addr, len, f.loaded_ns);
        p.functions.push(FunctionProfile {
            hits: Hits::new(),
            name: f.name,
            addr: f.addr,
            code,
            code_len: len,
            code_crc: crc,
            loaded_ns: f.loaded_ns,
            unloaded_ns: None,
            samples: 0,
            listing: f.listing,
        });
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

    /// A Pulley chunk: bare PCs, one interpreter (0), no times.
    fn add_pcs(&mut self, p: &mut Profile, pcs: &[RawPc], tally: bool) {
        self.add_indexed(p, pcs, tally, |pc| u64::from_le_bytes(*pc));
    }

    fn add_samples(&mut self, p: &mut Profile, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        // Pulley files have one interpreter and no times: the whole batch
        // is one run of sample indices.
        if self.format == Format::Pulley {
            self.add_indexed(p, samples, true, |s| s.pc);
            return;
        }
        let mut k = 0;
        let (mut lo, mut hi) = p.time_range.unwrap_or((u64::MAX, 0));
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
            let f = self.tally.hit(s.pc, s.time_ns);
            self.timeline.add(slot, s.time_ns, f);
            if s.stack != 0 {
                self.count_stack(p, slot, s, f);
            }
        }
        if k > 0 {
            p.time_range = Some((lo, hi));
        }
        p.total_samples += k;
    }

    /// A sample with a stack, whose leaf is function `f` (or [`OTHER`]).
    #[inline]
    fn count_stack(&mut self, p: &Profile, slot: usize, s: &Sample, f: u32) {
        let tally = &mut self.tally;
        let node = self
            .stacks
            .node(s.stack, |pc| tally.function_of(pc, s.time_ns));
        let offset = match p.functions.get(f as usize) {
            Some(func) if f != OTHER => s.pc.wrapping_sub(func.addr),
            _ => 0,
        };
        let f = if f == OTHER { u32::MAX } else { f };
        self.stacks.count(slot, node, f, offset);
    }

    /// Samples of interpreter 0 without times (Pulley): their timeline
    /// "time" is their index in the file. Counted in the totals here; the
    /// PCs are tallied here when `tally`, else by another thread, which
    /// must be handed the same index ([`Aggregator::next_index`] before).
    fn add_indexed<T>(
        &mut self,
        p: &mut Profile,
        items: &[T],
        tally: bool,
        pc_of: impl Fn(&T) -> u64,
    ) {
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
        if tally {
            tally_indexed(
                &mut self.tally,
                &mut self.timeline,
                slot,
                first,
                items,
                pc_of,
            );
        }
    }

    /// The index the next sample without a time gets (its timeline time).
    pub(super) fn next_index(&self) -> u64 {
        self.seq + 1
    }

    /// Whether samples of interpreter 0 are counted (the filter).
    pub(super) fn wants_interp_0(&self) -> bool {
        self.want_interp.is_none_or(|want| want == 0)
    }

    /// Function totals, the timeline, and one interpreter entry per id.
    /// Returns the functions whose code was dropped and is needed
    /// (sampled): (index, offset in the source, CRC-32).
    pub(super) fn finish(self, p: &mut Profile) -> Vec<(usize, u64, u32)> {
        p.unresolved = self.tally.unresolved;
        let hits = self.tally.into_hits(p.functions.len());
        for (f, h) in p.functions.iter_mut().zip(hits) {
            f.samples = h.total();
            f.hits = h;
            if f.samples == 0 && !self.code.keep_all {
                f.code = Vec::new();
            }
        }
        p.timeline = self.timeline.finish(&p.interpreters);
        if self.stacks.any {
            let flat = p
                .functions
                .iter()
                .enumerate()
                .flat_map(|(i, f)| f.hits.iter().map(move |(o, n)| (i, u64::from(o), n)));
            p.stacks = self.stacks.finish(flat, p.unresolved);
        }
        if !self.history.is_empty() {
            merge_registrations(&mut p.interpreters);
        }
        let mut dropped = self.code.dropped;
        dropped.retain(|&(i, _, _)| p.functions[i].samples > 0 || self.code.keep_all);
        dropped
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function's counts, as `dense_counts` and the sparse map give them.
    fn counts(t: &Tally) -> Vec<Vec<(u32, u64)>> {
        (0..t.functions.len())
            .map(|fi| {
                let mut one = Vec::new();
                t.dense_counts(fi, &mut one);
                let mut sparse: Vec<(u32, u64)> = t
                    .sparse
                    .iter()
                    .filter(|(k, _)| (*k >> 32) as usize == fi)
                    .map(|(k, n)| ((k & 0xffff_ffff) as u32, *n))
                    .collect();
                one.append(&mut sparse);
                one.sort_unstable();
                one
            })
            .collect()
    }

    #[test]
    fn laying_the_arena_out_in_function_order_keeps_every_count() {
        // 1 000 functions of 256 bytes (an arena past the size worth laying
        // out), hit in an order far from their
        // address order, one counter past 65 535 (carried into overflow).
        let mut t = Tally::new();
        for f in 0..1000u64 {
            t.add_function(0x10_000 + f * 256, 256, 0);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x % 1000) * 7 % 1000;
            t.hit(0x10_000 + f * 256 + (x >> 40) % 64 * 4, 0);
        }
        t.hit_n(0x10_000 + 999 * 256 + 8, 0, 70_000);
        let before = counts(&t);
        assert!(!t.overflow.is_empty(), "no counter carried");
        let dense_bases: Vec<u32> = t.functions.iter().map(|f| f.2).collect();
        assert!(
            dense_bases.windows(2).any(|w| w[0] > w[1]),
            "the arena was in function order already"
        );
        t.lay_out();
        let bases: Vec<u32> = t.functions.iter().map(|f| f.2).collect();
        assert!(bases.windows(2).all(|w| w[0] < w[1]), "{bases:?}");
        assert_eq!(counts(&t), before);
        // Counting goes on where the counters now are (the memo was emptied).
        t.hit(0x10_000 + 5 * 256 + 4, 0);
        let mut after = before;
        match after[5].binary_search_by_key(&4, |c| c.0) {
            Ok(i) => after[5][i].1 += 1,
            Err(i) => after[5].insert(i, (4, 1)),
        }
        assert_eq!(counts(&t), after);
    }
}
