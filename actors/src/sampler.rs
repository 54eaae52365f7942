//! The sampler actor: reads every live interpreter's PC on each sample
//! command and batches the samples for the writer.
//!
//! - Runs on the timing thread beside the ticker: reading PCs on the thread
//!   that keeps time saves a cross-thread wake-up (several µs and a context
//!   switch) per tick.
//! - Owns its interpreter table; interpreters arrive as messages from the
//!   registry and leave when their handle reports them finished. The table
//!   is two dense arrays (pcprof's own cells, read inline; foreign
//!   sources), walked in tight loops so that the reads of thousands of
//!   mostly idle cells overlap their cache misses; retiring is a swap, O(1).
//! - Batches circulate in a pool of buffers between sampler and writer.
//!   When the writer cannot keep up, no buffer comes back and the full batch
//!   is dropped and counted: memory stays bounded and the tick path never
//!   allocates. The pool grows as interpreters register (and when the rate
//!   changes), on those messages, never on a tick: to hold
//!   [`POOL_SLACK`](crate::config::POOL_SLACK) of the samples the rate and
//!   the live interpreters can produce, within the memory bound
//!   ([`Config::max_buffers`](crate::config::Config::max_buffers)). Its
//!   channels are filled and emptied once when made ([`pool_channel`]), so
//!   their queues never allocate on a tick either.
//! - Interpreters on the activity protocol (`pc.rs`) sit in a fourth table,
//!   indexed by their slot (their id), with their shadow stack if any: a
//!   tick walks the activity bitmap's words and reads the cell (and stack)
//!   of each set bit only, so an interpreter that has left costs a bit,
//!   not a cache line. Adding and retiring are O(1); retiring clears the
//!   bit, after which the registry may reuse the slot.
//! - An interpreter with a shadow stack (a third table) has its stack read
//!   just after its PC ([`read_stack`], in a function of its own): into the
//!   snapshot made when it was registered, then into the batch's frame
//!   arena, whose entry is reused while the stack is unchanged. A full arena
//!   seals the batch like full samples do.

use std::mem;
use std::sync::Arc;

use ractor::ActorRef;
#[cfg(debug_assertions)]
use tracing::trace;
use tracing::{debug, warn};

use crate::clock::Nanos;
use crate::format::{Sample, SampleBuffer};
use crate::messages::registry::RegistryMsg;
use crate::messages::timing::SampleCommand;
pub use crate::messages::timing::SamplerMsg;
use crate::pc::{ACTIVITY_CHUNK, ActivityChunk, CHUNK_WORDS, PcReader, PcSource, Source, order};
use crate::stack::{ReadOutcome, Snapshot, StackReader};
use crate::stats::LatencyHistogram;

/// The live interpreters, in two dense tables: pcprof's own cells
/// ([`PcReader`]s: one pointer each, read inline) and foreign sources
/// (a virtual call each). A tick walks each table in a tight loop whose
/// loads are independent, so the reads of thousands of cells (idle ones
/// included: an idle interpreter can resume at any instruction, and only
/// its cell says so) overlap their cache misses rather than wait for each
/// one. Retiring swaps the last entry in: O(1), and registration order
/// within a tick is not kept (samples of one tick share their time).
#[derive(Default)]
struct Table {
    /// pcprof's own cells, and their ids (same index).
    native: Vec<PcReader>,
    native_ids: Vec<u32>,
    /// Foreign sources, and their ids (same index).
    foreign: Vec<Arc<dyn PcSource>>,
    foreign_ids: Vec<u32>,
    /// Interpreters with a shadow stack, of either kind.
    stacked: Vec<StackedSlot>,
    /// Interpreters on the activity protocol.
    on_demand: OnDemand,
}

/// An interpreter with a shadow stack, as the sampler holds it.
#[derive(Debug)]
struct StackedSlot {
    /// Its id in the profile.
    id: u32,
    /// Its PC cell (native or foreign).
    source: Source,
    /// Its shadow stack.
    stack: SlotStack,
}

/// A shadow stack as the sampler holds it.
#[derive(Debug)]
struct SlotStack {
    reader: StackReader,
    /// The last accepted snapshot (sized at registration).
    snap: Snapshot,
    /// Its entry in the batch numbered `batch_no` (0: none).
    entry: u32,
    batch_no: u64,
}

/// Interpreters on the activity protocol, read only while their bit is set.
#[derive(Default)]
struct OnDemand {
    /// The bitmap's chunks, by number (`None`: no such interpreter was
    /// ever in it). Shared with the handles; never moved.
    chunks: Vec<Option<Arc<ActivityChunk>>>,
    /// Each slot's interpreter (the slot is the id; `None`: free).
    by_slot: Vec<Option<OnDemandSlot>>,
    /// Words of the bitmap a tick walks: up to the highest slot added.
    words: usize,
    /// Live ones.
    live: usize,
}

/// An interpreter on the activity protocol, as the sampler holds it.
#[derive(Debug)]
struct OnDemandSlot {
    /// Its PC cell (native or foreign).
    source: Source,
    /// Its shadow stack, if it keeps one.
    stack: Option<SlotStack>,
}

/// Where an interpreter's shadow stack is: in the stacked table, or in the
/// on-demand one (by slot).
#[derive(Clone, Copy, Debug)]
enum StackAt {
    Stacked(usize),
    OnDemand(usize),
}

impl OnDemand {
    fn add(&mut self, id: u32, source: Source, chunk: Arc<ActivityChunk>) {
        let slot = id as usize;
        let n = slot / ACTIVITY_CHUNK;
        if self.chunks.len() <= n {
            self.chunks.resize(n + 1, None);
        }
        self.chunks[n].get_or_insert(chunk);
        if self.by_slot.len() <= slot {
            self.by_slot.resize_with(slot + 1, || None);
        }
        let entry = match source {
            // The snapshot is allocated here, on a message, never on a tick.
            Source::Stacked(inner, reader) => OnDemandSlot {
                source: *inner,
                stack: Some(SlotStack {
                    snap: reader.snapshot(),
                    reader,
                    entry: 0,
                    batch_no: 0,
                }),
            },
            source => OnDemandSlot {
                source,
                stack: None,
            },
        };
        if self.by_slot[slot].replace(entry).is_none() {
            self.live += 1;
        }
        self.words = self.words.max(slot / 64 + 1);
    }

    /// The bits of word `w` (all words of all chunks, in slot order).
    #[inline]
    fn word(&self, w: usize) -> u64 {
        match &self.chunks[w / CHUNK_WORDS] {
            Some(c) => c.words[w % CHUNK_WORDS].load(order::READ),
            None => 0,
        }
    }

    /// Forgets slot `slot` and clears its bit: the slot is free from now.
    fn remove(&mut self, slot: usize) {
        if self.by_slot[slot].take().is_some() {
            self.live -= 1;
        }
        if let Some(c) = &self.chunks[slot / ACTIVITY_CHUNK] {
            let bit = slot % ACTIVITY_CHUNK;
            c.words[bit / 64].fetch_and(!(1u64 << (bit % 64)), order::LEAVE);
        }
    }
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("live", &self.live)
            .field("words", &self.words)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("native", &self.native_ids)
            .field("foreign", &self.foreign_ids)
            .field(
                "stacked",
                &self.stacked.iter().map(|s| s.id).collect::<Vec<_>>(),
            )
            .field("on_demand", &self.on_demand)
            .finish()
    }
}

impl Table {
    /// The shadow stack at `at` (`None` only for an on-demand interpreter
    /// without one, which is never asked).
    #[inline]
    fn stack_at(&mut self, at: StackAt) -> Option<&mut SlotStack> {
        match at {
            StackAt::Stacked(i) => self.stacked.get_mut(i).map(|s| &mut s.stack),
            StackAt::OnDemand(slot) => self
                .on_demand
                .by_slot
                .get_mut(slot)
                .and_then(Option::as_mut)
                .and_then(|e| e.stack.as_mut()),
        }
    }

    fn len(&self) -> usize {
        self.native.len() + self.foreign.len() + self.stacked.len() + self.on_demand.live
    }

    fn add(&mut self, id: u32, source: Source) {
        match source {
            Source::Native(r) => {
                self.native.push(r);
                self.native_ids.push(id);
            }
            Source::Foreign(s) => {
                self.foreign.push(s);
                self.foreign_ids.push(id);
            }
            Source::Stacked(inner, reader) => {
                // The snapshot is allocated here, on a message, never on a
                // tick.
                self.stacked.push(StackedSlot {
                    id,
                    source: *inner,
                    stack: SlotStack {
                        snap: reader.snapshot(),
                        reader,
                        entry: 0,
                        batch_no: 0,
                    },
                });
            }
        }
    }
}

/// A channel of batch buffers (to the writer, or back) that holds `capacity`
/// without allocating: flume's queue grows on first use, so it is filled and
/// emptied once here, before any tick.
pub(crate) fn pool_channel(
    capacity: usize,
) -> (flume::Sender<SampleBuffer>, flume::Receiver<SampleBuffer>) {
    let (tx, rx) = flume::bounded(capacity);
    for _ in 0..capacity {
        // Empty buffers own no memory.
        let _ = tx.try_send(SampleBuffer::default());
    }
    while rx.try_recv().is_ok() {}
    (tx, rx)
}

/// The growth of the batch-buffer pool ([`SamplerCore::grow_pool`]).
#[derive(Debug, Default)]
struct Pool {
    /// Buffers in circulation, the one being filled included (0: not
    /// tracked, the pool does not grow).
    total: usize,
    /// The fewest (the configured `buffers`) and the most
    /// ([`Config::max_buffers`](crate::config::Config::max_buffers)).
    min: usize,
    max: usize,
    /// Samples (and frames) a buffer holds.
    capacity: usize,
    /// Where a new buffer joins the pool: the free channel's sending end.
    refill: Option<flume::Sender<SampleBuffer>>,
    /// An allocation failed: the pool stays as it is.
    failed: bool,
}

/// The sampler's state (lives on the timing thread).
#[derive(Debug)]
pub(crate) struct SamplerCore {
    /// The live interpreters.
    interps: Table,
    /// The batch being filled; pre-sized, so a tick never allocates.
    batch: SampleBuffer,
    /// Batches begun so far: tells a stack's entry in the current batch
    /// from one in a batch gone.
    batch_no: u64,
    /// A buffer whose hand-over failed, kept for reuse.
    spare: Option<SampleBuffer>,
    /// Batch size that seals a batch.
    flush: usize,
    /// Age that seals a batch, in ns: the durability bound.
    interval: Nanos,
    /// Full batches to the writer.
    to_writer: flume::Sender<SampleBuffer>,
    /// Empty buffers back from the writer: the pool that bounds memory.
    free: flume::Receiver<SampleBuffer>,
    /// Where retirements are reported (set once the registry exists).
    registry: Option<ActorRef<RegistryMsg>>,
    /// How many buffers circulate, and how the pool grows.
    pool: Pool,
    /// Lateness of each read against its deadline.
    pub(crate) lateness: LatencyHistogram,
    /// PCs read from executing interpreters.
    pub(crate) samples_taken: u64,
    /// Samples lost for want of a free buffer.
    pub(crate) samples_dropped: u64,
    /// Batches handed to the writer.
    pub(crate) batches_sent: u64,
    /// Batches lost whole.
    pub(crate) batches_dropped: u64,
    /// Stack reads given up as torn (kept as truncated stacks).
    pub(crate) stack_reads_torn: u64,
    /// Samples whose stack found no room in the arena even after a fresh
    /// buffer (a stack deeper than a whole arena): kept as truncated.
    pub(crate) stacks_cut: u64,
}

impl SamplerCore {
    pub(crate) fn new(
        flush: usize,
        interval: Nanos,
        first_buffer: SampleBuffer,
        to_writer: flume::Sender<SampleBuffer>,
        free: flume::Receiver<SampleBuffer>,
        registry: Option<ActorRef<RegistryMsg>>,
    ) -> SamplerCore {
        SamplerCore {
            interps: Table::default(),
            batch: first_buffer,
            batch_no: 1,
            spare: None,
            flush: flush.max(1),
            interval,
            to_writer,
            free,
            registry,
            pool: Pool::default(),
            lateness: LatencyHistogram::default(),
            samples_taken: 0,
            samples_dropped: 0,
            batches_sent: 0,
            batches_dropped: 0,
            stack_reads_torn: 0,
            stacks_cut: 0,
        }
    }

    pub(crate) fn set_registry(&mut self, registry: ActorRef<RegistryMsg>) {
        self.registry = Some(registry);
    }

    /// Lets the pool grow from `buffers` (those in circulation now, the one
    /// being filled included) up to `max`, each new buffer of `capacity`
    /// samples joining the free channel through `refill` (made by
    /// [`pool_channel`] with room for `max`).
    pub(crate) fn set_pool(
        &mut self,
        buffers: usize,
        max: usize,
        capacity: usize,
        refill: flume::Sender<SampleBuffer>,
    ) {
        self.pool = Pool {
            total: buffers,
            min: buffers,
            max: max.max(buffers),
            capacity,
            refill: Some(refill),
            failed: false,
        };
    }

    /// Batch buffers in circulation (0 when the pool is not tracked).
    pub(crate) fn batch_buffers(&self) -> usize {
        self.pool.total
    }

    /// Grows the pool to hold [`POOL_SLACK`](crate::config::POOL_SLACK) of
    /// the samples that `hz` ticks over the live interpreters can make (each
    /// may be executing at every tick), within its bounds. Called on a
    /// registration or a rate change, never on a tick: it allocates. It
    /// never shrinks: buffers in the writer's hands cannot be taken back,
    /// and a server's interpreters come and go.
    pub(crate) fn grow_pool(&mut self, hz: u32) {
        let Some(refill) = &self.pool.refill else {
            return;
        };
        if self.pool.failed {
            return;
        }
        let per_second = u128::from(hz) * self.interps.len() as u128;
        let slack = per_second * crate::config::POOL_SLACK.as_nanos() / 1_000_000_000;
        let wanted = slack.div_ceil(self.flush as u128).saturating_add(1);
        let target = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .clamp(self.pool.min, self.pool.max);
        let before = self.pool.total;
        while self.pool.total < target {
            let mut b = SampleBuffer::default();
            let cap = self.pool.capacity;
            if b.samples.try_reserve_exact(cap).is_err() || b.frames.try_reserve_exact(cap).is_err()
            {
                warn!(name: "sampler.pool_not_grown", buffers = self.pool.total, wanted = target, "cannot allocate another batch buffer");
                self.pool.failed = true;
                return;
            }
            if refill.try_send(b).is_err() {
                // The writer is gone (or the channel smaller than `max`):
                // nothing to grow.
                return;
            }
            self.pool.total += 1;
        }
        if self.pool.total > before {
            debug!(name: "sampler.pool_grown", buffers = self.pool.total);
        }
    }

    pub(crate) fn interval(&self) -> Nanos {
        self.interval
    }

    pub(crate) fn live_interpreters(&self) -> usize {
        self.interps.len()
    }

    pub(crate) fn add_interpreter(&mut self, id: u32, source: Source) {
        self.interps.add(id, source);
    }

    /// An interpreter on the activity protocol (with a shadow stack or
    /// not), in slot `id` of `chunk`.
    pub(crate) fn add_on_demand(&mut self, id: u32, source: Source, chunk: Arc<ActivityChunk>) {
        self.interps.on_demand.add(id, source, chunk);
    }

    /// Executes one sample command. The only work done per tick.
    ///
    /// `read_at` is the clock's reading just before the PCs are read (the
    /// one the ticker fired on: nothing runs between), so lateness is
    /// measured at the read, against the deadline, with one clock read a tick.
    /// Samples are stamped `read_at`, not the deadline: a sample belongs to
    /// the code that was live when its PC was read, and an unload stamped
    /// after the code stopped is then never before a sample of that code
    /// (ARCHITECTURE.md, "Which generation a sample belongs to"). Readings
    /// only grow, and each tick's is after the last tick's deadline, so
    /// sample times strictly increase from tick to tick, across batches too.
    #[inline]
    pub(crate) fn sample(&mut self, cmd: SampleCommand, read_at: Nanos) {
        self.lateness.record(read_at.saturating_sub(cmd.deadline));
        let mut i = 0;
        while i < self.interps.native.len() {
            // Idle is the common case with thousands of interpreters: one
            // load, one predictable branch.
            match self.interps.native[i].pc() {
                Some(pc) => {
                    let interp = self.interps.native_ids[i];
                    self.push(read_at, interp, pc);
                    i += 1;
                }
                None if self.interps.native[i].is_finished() => {
                    self.interps.native.swap_remove(i);
                    let id = self.interps.native_ids.swap_remove(i);
                    self.retire(id, read_at);
                }
                None => i += 1,
            }
        }
        let mut i = 0;
        while i < self.interps.foreign.len() {
            match self.interps.foreign[i].pc() {
                Some(pc) => {
                    let interp = self.interps.foreign_ids[i];
                    self.push(read_at, interp, pc);
                    i += 1;
                }
                None if self.interps.foreign[i].is_finished() => {
                    // The registry holds the last reference: nothing is
                    // freed here.
                    drop(self.interps.foreign.swap_remove(i));
                    let id = self.interps.foreign_ids.swap_remove(i);
                    self.retire(id, read_at);
                }
                None => i += 1,
            }
        }
        let mut i = 0;
        while i < self.interps.stacked.len() {
            match self.interps.stacked[i].source.pc() {
                Some(pc) => {
                    let interp = self.interps.stacked[i].id;
                    self.push_stacked(read_at, interp, pc, StackAt::Stacked(i));
                    i += 1;
                }
                None if self.interps.stacked[i].source.is_finished() => {
                    let gone = self.interps.stacked.swap_remove(i);
                    self.retire(gone.id, read_at);
                }
                None => i += 1,
            }
        }
        // The activity bitmap: only the cells whose bit is set. A clear bit
        // means PC 0, so the others would give no sample (pc.rs).
        let mut w = 0;
        while w < self.interps.on_demand.words {
            let mut bits = self.interps.on_demand.word(w);
            while bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(Some(entry)) = self.interps.on_demand.by_slot.get(slot) else {
                    // Entered before its registration reached the sampler.
                    continue;
                };
                match entry.source.pc() {
                    Some(pc) if entry.stack.is_some() => {
                        self.push_stacked(read_at, slot as u32, pc, StackAt::OnDemand(slot));
                    }
                    Some(pc) => self.push(read_at, slot as u32, pc),
                    None if entry.source.is_finished() => {
                        // The registry holds the last reference: nothing is
                        // freed here.
                        self.interps.on_demand.remove(slot);
                        self.retire(slot as u32, read_at);
                    }
                    None => {}
                }
            }
            w += 1;
        }
        #[cfg(debug_assertions)]
        trace!(
            name: "sampler.tick",
            seq = cmd.seq,
            lateness_ns = read_at.saturating_sub(cmd.deadline),
            batch_len = self.batch.len()
        );
        // Sealed when full, or when its first samples are `interval` old:
        // the writer writes a batch to the OS as soon as it gets it, so a
        // killed process loses at most about one interval, whatever the
        // batch size.
        let old = self
            .batch
            .samples
            .first()
            .is_some_and(|s| read_at >= s.time_ns.saturating_add(self.interval));
        if old || self.batch.len() >= self.flush {
            self.hand_over();
        }
    }

    /// One sample into the batch (handed over first if full).
    #[inline]
    fn push(&mut self, time_ns: Nanos, interp: u32, pc: usize) {
        if self.batch.samples.len() == self.batch.samples.capacity() {
            self.hand_over();
        }
        self.batch.samples.push(Sample {
            time_ns,
            interp,
            pc: pc as u64,
            stack: 0,
        });
        self.samples_taken += 1;
    }

    /// One sample of the stacked interpreter at `at` into the batch, with
    /// its stack read just after its PC.
    #[inline]
    fn push_stacked(&mut self, time_ns: Nanos, interp: u32, pc: usize, at: StackAt) {
        if self.batch.samples.len() == self.batch.samples.capacity() {
            self.hand_over();
        }
        let stack = self.read_stack(at);
        self.batch.samples.push(Sample {
            time_ns,
            interp,
            pc: pc as u64,
            stack,
        });
        self.samples_taken += 1;
    }

    /// Reads the shadow stack at `at` (just after its PC) and gives
    /// its entry in the batch's arena: the last one while the stack is
    /// unchanged, else a new one (sealing the batch first if the arena is
    /// full). A torn read is counted and kept as the prefix read, marked
    /// truncated.
    #[inline(never)]
    fn read_stack(&mut self, at: StackAt) -> u32 {
        let Some(st) = self.interps.stack_at(at) else {
            return 0;
        };
        let outcome = st.reader.read(&mut st.snap);
        if outcome == ReadOutcome::Same && st.batch_no == self.batch_no && st.entry != 0 {
            return st.entry;
        }
        let torn = outcome == ReadOutcome::Torn;
        if !self.batch.has_room_for_stack(st.snap.frames().len()) {
            self.hand_over();
        }
        let Some(st) = self.interps.stack_at(at) else {
            return 0;
        };
        if torn {
            self.stack_reads_torn += 1;
        }
        let frames = st.snap.frames();
        if !self.batch.has_room_for_stack(frames.len()) {
            // Deeper than a whole arena: only the marker, never an
            // allocation on the tick.
            self.stacks_cut += 1;
            if !self.batch.has_room_for_stack(0) {
                return 0;
            }
            st.entry = self.batch.push_stack([].into_iter(), true);
        } else {
            st.entry = self.batch.push_stack(frames, st.snap.truncated());
        }
        st.batch_no = self.batch_no;
        if torn {
            // A torn entry is never reused.
            let e = st.entry;
            st.entry = 0;
            return e;
        }
        st.entry
    }

    /// Retirement is rare, so telling the registry (which allocates a
    /// message) is acceptable here.
    #[cold]
    fn retire(&mut self, id: u32, now: u64) {
        debug!(name: "sampler.retired", interp = id);
        if let Some(registry) = &self.registry {
            let _ = registry.cast(RegistryMsg::InterpreterRetired {
                id,
                retired_ns: now,
            });
        }
    }

    /// Data loss: counted, and traced (rare, so the event costs nothing on
    /// the ticks that matter).
    #[cold]
    fn dropped(&mut self, samples: u64, why: &'static str) {
        self.samples_dropped += samples;
        self.batches_dropped += 1;
        warn!(name: "sampler.batch_dropped", samples, reason = why);
    }

    /// Hands the current batch to the writer in exchange for an empty buffer
    /// from the pool; with none to exchange, drops the batch and counts it.
    pub(crate) fn hand_over(&mut self) {
        if self.batch.is_empty() {
            self.batch.frames.clear();
            return;
        }
        // Stack entries of the batch that leaves are not reused.
        self.batch_no += 1;
        let fresh = self.spare.take().or_else(|| self.free.try_recv().ok());
        let Some(mut fresh) = fresh else {
            self.dropped(
                self.batch.len() as u64,
                "no free buffer: the writer is behind",
            );
            self.batch.clear();
            return;
        };
        fresh.clear();
        let full = mem::replace(&mut self.batch, fresh);
        let len = full.len() as u64;
        match self.to_writer.try_send(full) {
            Ok(()) => self.batches_sent += 1,
            Err(e) => {
                let mut back = e.into_inner();
                back.clear();
                self.spare = Some(back);
                self.dropped(len, "the writer's queue is full or gone");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc_count;
    use crate::pc::PcHandle;

    struct Foreign(
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicBool,
    );

    impl PcSource for Foreign {
        fn pc(&self) -> Option<usize> {
            match self.0.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                pc => Some(pc),
            }
        }
        fn is_finished(&self) -> bool {
            self.1.load(std::sync::atomic::Ordering::Acquire)
        }
    }

    /// Thousands registered, few executing: a tick samples exactly the
    /// executing ones, native or foreign, and retires exactly the finished
    /// ones, whatever their place in the table; the others stay.
    #[test]
    fn a_tick_samples_the_executing_and_retires_the_finished_among_thousands() {
        let (to_writer, batches) = flume::unbounded();
        let (free_tx, free) = flume::unbounded();
        free_tx
            .send(SampleBuffer::with_capacity(64, 64))
            .expect("the pool is open");
        let mut s = SamplerCore::new(
            1_000_000,
            u64::MAX,
            SampleBuffer::with_capacity(64, 64),
            to_writer,
            free,
            None,
        );
        let handles: Vec<PcHandle> = (0..5_000).map(|_| PcHandle::new()).collect();
        for (i, h) in handles.iter().enumerate() {
            s.add_interpreter(i as u32, Source::Native(h.reader()));
        }
        let foreign: Vec<Arc<Foreign>> = (0..100)
            .map(|_| Arc::new(Foreign(0.into(), false.into())))
            .collect();
        for (i, f) in foreign.iter().enumerate() {
            let source: Arc<dyn PcSource> = f.clone();
            s.add_interpreter(10_000 + i as u32, Source::Foreign(source));
        }
        handles[7].set(0x70);
        handles[4_999].set(0x4999);
        foreign[3]
            .0
            .store(0x3000, std::sync::atomic::Ordering::Relaxed);
        let tick = |s: &mut SamplerCore, seq: u64| {
            s.sample(
                SampleCommand {
                    seq,
                    deadline: seq * 1_000,
                },
                seq * 1_000,
            )
        };
        tick(&mut s, 1);
        // The first native, the last native and a foreign one finish.
        let mut handles = handles;
        drop(handles.remove(0));
        drop(handles.pop());
        foreign[99]
            .1
            .store(true, std::sync::atomic::Ordering::Release);
        tick(&mut s, 2);
        assert_eq!(s.live_interpreters(), 5_100 - 3);
        s.hand_over();
        let mut got: Vec<(u64, u32, u64)> = batches
            .try_recv()
            .expect("handed over")
            .samples
            .iter()
            .map(|x| (x.time_ns, x.interp, x.pc))
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                (1_000, 7, 0x70),
                (1_000, 4_999, 0x4999),
                (1_000, 10_003, 0x3000),
                (2_000, 7, 0x70),
                (2_000, 10_003, 0x3000),
            ]
        );
        assert_eq!(s.samples_taken, 5);
    }

    /// The pool grows with the registrations (on their messages) to hold
    /// `POOL_SLACK` (100 ms) of the samples they can make, up to its bound:
    /// a writer stalled that long loses nothing, one stalled longer loses
    /// the next batch; and no tick, hand-overs included, calls the
    /// allocator.
    #[test]
    fn the_pool_grows_with_registrations_and_ticks_never_allocate() {
        let (flush, max) = (1_000, 64);
        let cap = flush + 64;
        let (to_writer, batches) = pool_channel(max + 1);
        let (free_tx, free) = pool_channel(max + 1);
        for _ in 1..4 {
            free_tx
                .send(SampleBuffer::with_capacity(cap, cap))
                .expect("the pool is open");
        }
        let mut s = SamplerCore::new(
            flush,
            u64::MAX,
            SampleBuffer::with_capacity(cap, cap),
            to_writer,
            free,
            None,
        );
        s.set_pool(4, max, cap, free_tx);
        assert_eq!(s.batch_buffers(), 4);
        let handles: Vec<PcHandle> = (0..1_000).map(|_| PcHandle::new()).collect();
        let mut grown = Vec::new();
        for (i, h) in handles.iter().enumerate() {
            s.add_interpreter(i as u32, Source::Native(h.reader()));
            s.grow_pool(1_000);
            if [10, 30, 31, 100].contains(&(i + 1)) {
                grown.push((i + 1, s.batch_buffers()));
            }
            if i + 1 == 100 {
                break;
            }
        }
        // n interpreters at 1 kHz make 100 n samples in 100 ms: n / 10
        // batches of 1 000, and the one being filled; never fewer than 4.
        assert_eq!(grown, [(10, 4), (30, 4), (31, 5), (100, 11)]);
        for (i, h) in handles[..100].iter().enumerate() {
            h.set(0x1000 + i);
        }
        let tick = |s: &mut SamplerCore, seq: u64| {
            s.sample(
                SampleCommand {
                    seq,
                    deadline: seq * 1_000_000,
                },
                seq * 1_000_000,
            )
        };
        // 100 ms with the writer stalled: 10 batches handed over, none lost,
        // and not one allocator call.
        let ((), calls) = alloc_count::allocator_calls_in(|| {
            for seq in 1..=100 {
                tick(&mut s, seq);
            }
        });
        assert_eq!(calls, 0);
        assert_eq!((s.batches_sent, s.samples_dropped), (10, 0));
        for seq in 101..=110 {
            tick(&mut s, seq);
        }
        assert_eq!((s.batches_sent, s.batches_dropped), (10, 1));
        // The writer catches up; the same again allocates nothing either.
        let back: Vec<SampleBuffer> = batches.try_iter().collect();
        assert_eq!(back.len(), 10);
        let refill = s.pool.refill.clone().expect("the pool grows");
        for b in back {
            refill.send(b).expect("the pool is open");
        }
        let ((), calls) = alloc_count::allocator_calls_in(|| {
            for seq in 111..=210 {
                tick(&mut s, seq);
            }
        });
        assert_eq!(calls, 0);
        assert_eq!((s.batches_sent, s.batches_dropped), (20, 1));
        // The rest register: the pool stops at its bound.
        for (i, h) in handles.iter().enumerate().skip(100) {
            s.add_interpreter(i as u32, Source::Native(h.reader()));
            s.grow_pool(1_000);
        }
        assert_eq!(s.batch_buffers(), max);
    }

    /// A sampler that never hands a batch over on its own (no size or age
    /// limit) into `batch`, with one spare buffer; and where its batches go.
    fn flushing_never(batch: SampleBuffer) -> (SamplerCore, flume::Receiver<SampleBuffer>) {
        let (to_writer, batches) = flume::unbounded();
        let (free_tx, free) = flume::unbounded();
        free_tx
            .send(SampleBuffer::with_capacity(0, 0))
            .expect("the pool is open");
        let s = SamplerCore::new(usize::MAX, u64::MAX, batch, to_writer, free, None);
        (s, batches)
    }

    /// The activity protocol is exact: over a scripted sequence of enters
    /// (nested too), PCs, idles, leaves, finishes while not entered and
    /// slots reused after their retirement, across two chunks of the
    /// bitmap, a sampler that reads only the set bits takes exactly the
    /// samples of one that reads every cell, tick by tick; and every bit
    /// left set is an entered interpreter's.
    #[test]
    fn the_activity_bitmap_samples_exactly_what_reading_every_cell_does() {
        use crate::pc::{Activity, ActivityChunk, OnDemandPc};
        let sampler = || flushing_never(SampleBuffer::with_capacity(1 << 16, 0));
        let (mut every, every_out) = sampler();
        let (mut bits, bits_out) = sampler();
        let chunks = [
            Arc::new(ActivityChunk::new()),
            Arc::new(ActivityChunk::new()),
        ];
        // Slots at both ends of both chunks, and some in between.
        let ids: Vec<u32> = (0..40)
            .chain(4_060..4_100)
            .chain((200..4_000).step_by(97))
            .chain([8_191])
            .collect();
        let make = |id: u32| {
            let chunk = Arc::clone(&chunks[id as usize / crate::pc::ACTIVITY_CHUNK]);
            OnDemandPc::new(PcHandle::new(), Activity::new(chunk, id))
        };
        let mut live: Vec<Option<OnDemandPc>> = Vec::new();
        let mut depth = vec![0u32; ids.len()];
        // Finished, waiting for the tick that retires them.
        let mut finished: Vec<usize> = Vec::new();
        let add = |i: usize, pc: &OnDemandPc, every: &mut SamplerCore, bits: &mut SamplerCore| {
            let id = ids[i];
            let chunk = Arc::clone(&chunks[id as usize / crate::pc::ACTIVITY_CHUNK]);
            every.add_interpreter(id, Source::Native(pc.reader()));
            bits.add_on_demand(id, Source::Native(pc.reader()), chunk);
        };
        for (i, &id) in ids.iter().enumerate() {
            let pc = make(id);
            add(i, &pc, &mut every, &mut bits);
            live.push(Some(pc));
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let (mut reused, mut nested, mut finished_idle) = (0, 0, 0);
        for seq in 1..=400u64 {
            for _ in 0..12 {
                let i = next(ids.len());
                let Some(pc) = &live[i] else { continue };
                match next(10) {
                    0..=2 if depth[i] < 3 => {
                        nested += usize::from(depth[i] > 0);
                        pc.enter_raw();
                        depth[i] += 1;
                    }
                    3..=5 if depth[i] > 0 => pc.set(0x10_000 + 8 * next(512)),
                    6 if depth[i] > 0 => pc.set_idle(),
                    7 | 8 if depth[i] > 0 => {
                        pc.leave_raw();
                        depth[i] -= 1;
                    }
                    9 if depth[i] == 0 => {
                        finished_idle += 1;
                        live[i] = None;
                        finished.push(i);
                    }
                    _ => {}
                }
            }
            let cmd = SampleCommand {
                seq,
                deadline: seq * 1_000,
            };
            every.sample(cmd, seq * 1_000);
            bits.sample(cmd, seq * 1_000);
            // Retired at this tick by both: the slot is free, and a new
            // interpreter may take it.
            for i in finished.drain(..) {
                assert!(bits.interps.on_demand.by_slot[ids[i] as usize].is_none());
                if next(2) == 0 {
                    let pc = make(ids[i]);
                    add(i, &pc, &mut every, &mut bits);
                    live[i] = Some(pc);
                    reused += 1;
                } else {
                    live[i] = None;
                }
            }
            assert_eq!(every.live_interpreters(), bits.live_interpreters());
        }
        assert!(reused > 10 && nested > 10 && finished_idle > 10);
        every.hand_over();
        bits.hand_over();
        let samples = |out: flume::Receiver<SampleBuffer>| {
            let mut v: Vec<(u64, u32, u64)> = out
                .try_iter()
                .flat_map(|b| {
                    b.samples
                        .iter()
                        .map(|s| (s.time_ns, s.interp, s.pc))
                        .collect::<Vec<_>>()
                })
                .collect();
            v.sort_unstable();
            v
        };
        let want = samples(every_out);
        assert!(want.len() > 1_000, "{} samples", want.len());
        assert_eq!(samples(bits_out), want);
        for (i, &id) in ids.iter().enumerate() {
            let slot = id as usize % crate::pc::ACTIVITY_CHUNK;
            let word = chunks[id as usize / crate::pc::ACTIVITY_CHUNK].words[slot / 64]
                .load(std::sync::atomic::Ordering::Relaxed);
            let set = word & (1 << (slot % 64)) != 0;
            assert_eq!(set, live[i].is_some() && depth[i] > 0, "slot {id}");
        }
    }

    /// On-demand interpreters with shadow stacks: the same samples, stacks
    /// included, as reading every cell and stack, while they enter, call,
    /// return, leave and finish.
    #[test]
    fn on_demand_stacks_are_read_as_every_cell_reads_them() {
        use crate::pc::{Activity, ActivityChunk, OnDemandPc};
        use crate::stack::StackHandle;
        let sampler = || flushing_never(SampleBuffer::with_capacity(4_096, 16_384));
        let (mut every, every_out) = sampler();
        let (mut bits, bits_out) = sampler();
        let chunk = Arc::new(ActivityChunk::new());
        let mut interps: Vec<(OnDemandPc, StackHandle)> = (0..6u32)
            .map(|id| {
                let pc = OnDemandPc::new(PcHandle::new(), Activity::new(Arc::clone(&chunk), id));
                let st = StackHandle::new(4);
                let stacked = |pc: &OnDemandPc| {
                    Source::Stacked(Box::new(Source::Native(pc.reader())), st.reader())
                };
                every.add_interpreter(id, stacked(&pc));
                bits.add_on_demand(id, stacked(&pc), Arc::clone(&chunk));
                (pc, st)
            })
            .collect();
        let tick = |every: &mut SamplerCore, bits: &mut SamplerCore, seq: u64| {
            let cmd = SampleCommand {
                seq,
                deadline: seq * 1_000,
            };
            every.sample(cmd, seq * 1_000);
            bits.sample(cmd, seq * 1_000);
        };
        let mut seq = 0;
        for round in 0..20usize {
            for (i, (pc, st)) in interps.iter_mut().enumerate() {
                if (round + i) % 3 == 0 {
                    continue;
                }
                pc.enter_raw();
                st.call(0x100 * (i + 1) + round);
                pc.set(0x1_0000 + 16 * i + round);
            }
            seq += 1;
            tick(&mut every, &mut bits, seq);
            for (i, (pc, st)) in interps.iter_mut().enumerate() {
                if (round + i) % 3 == 0 {
                    continue;
                }
                if round % 2 == 0 {
                    st.ret();
                }
                pc.leave_raw();
            }
            seq += 1;
            tick(&mut every, &mut bits, seq);
        }
        // Two finish while left.
        drop(interps.remove(1));
        drop(interps.remove(3));
        seq += 1;
        tick(&mut every, &mut bits, seq);
        assert_eq!(bits.live_interpreters(), 4);
        assert_eq!(every.live_interpreters(), 4);
        every.hand_over();
        bits.hand_over();
        type Seen = (u64, u32, u64, Vec<u64>, bool);
        let samples = |out: flume::Receiver<SampleBuffer>| {
            let mut v: Vec<Seen> = Vec::new();
            for b in out.try_iter() {
                for x in &b.samples {
                    let (frames, cut) = b.stack_at(x.stack).expect("a stack in the arena");
                    v.push((x.time_ns, x.interp, x.pc, frames.to_vec(), cut));
                }
            }
            v.sort_unstable();
            v
        };
        let want = samples(every_out);
        assert_eq!(want.len(), 20 * 4);
        assert!(want.iter().all(|w| !w.3.is_empty()));
        assert_eq!(samples(bits_out), want);
        drop(interps);
    }

    /// A late tick stamps its samples with the moment of the read, not the
    /// deadline, and a batch's age is measured on the same readings.
    #[test]
    fn samples_carry_the_time_of_the_read() {
        let (to_writer, batches) = flume::unbounded();
        let (free_tx, free) = flume::unbounded();
        free_tx
            .send(SampleBuffer::with_capacity(8, 8))
            .expect("the pool is open");
        let mut s = SamplerCore::new(
            100,
            1_000,
            SampleBuffer::with_capacity(8, 8),
            to_writer,
            free,
            None,
        );
        let pc = PcHandle::new();
        pc.set(0x40);
        s.add_interpreter(3, Source::Native(pc.reader()));
        s.sample(
            SampleCommand {
                seq: 1,
                deadline: 100,
            },
            150,
        );
        // 1 000 ns after the first read (not the first deadline): sealed.
        s.sample(
            SampleCommand {
                seq: 2,
                deadline: 1_100,
            },
            1_149,
        );
        assert!(batches.try_recv().is_err());
        s.sample(
            SampleCommand {
                seq: 3,
                deadline: 1_150,
            },
            1_150,
        );
        let batch = batches.try_recv().expect("sealed by age");
        let times: Vec<u64> = batch.samples.iter().map(|s| s.time_ns).collect();
        assert_eq!(times, [150, 1_149, 1_150]);
        assert!(batch.samples.iter().all(|s| (s.interp, s.pc) == (3, 0x40)));
        assert_eq!(s.lateness.max(), 50);
    }
}
