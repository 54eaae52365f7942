//! The sampler actor: reads every live interpreter's PC on each sample
//! command and batches the samples for the writer.
//!
//! - Runs on the timing thread beside the ticker: reading PCs on the thread
//!   that keeps time saves a cross-thread wake-up (several µs and a context
//!   switch) per tick.
//! - Owns its interpreter table; interpreters arrive as messages from the
//!   registry and leave when their handle reports them finished.
//! - Batches circulate in a fixed pool of buffers between sampler and writer.
//!   When the writer cannot keep up, no buffer comes back and the full batch
//!   is dropped and counted: memory stays bounded and the tick path never
//!   allocates.
//! - An interpreter with a shadow stack has its stack read just after its
//!   PC ([`read_stack`], in a function of its own): into the snapshot made
//!   when it was registered, then into the batch's frame arena, whose
//!   entry is reused while the stack is unchanged. A full arena seals the
//!   batch like full samples do.

use std::mem;

use ractor::ActorRef;
#[cfg(debug_assertions)]
use tracing::trace;
use tracing::{debug, warn};

use crate::clock::Nanos;
use crate::format::{Sample, SampleBuffer};
use crate::messages::registry::RegistryMsg;
use crate::messages::timing::SampleCommand;
pub use crate::messages::timing::SamplerMsg;
use crate::pc::Source;
use crate::stack::{ReadOutcome, Snapshot, StackReader};
use crate::stats::LatencyHistogram;

/// An interpreter as the sampler holds it.
#[derive(Debug)]
struct Slot {
    /// Its id in the profile.
    id: u32,
    /// Its PC cell.
    source: Source,
    /// Its shadow stack, if it keeps one.
    stack: Option<Box<SlotStack>>,
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

/// The sampler's state (lives on the timing thread).
#[derive(Debug)]
pub(crate) struct SamplerCore {
    /// The live interpreters, in registration order (retired ones removed).
    interps: Vec<Slot>,
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
            interps: Vec::new(),
            batch: first_buffer,
            batch_no: 1,
            spare: None,
            flush: flush.max(1),
            interval,
            to_writer,
            free,
            registry,
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

    pub(crate) fn interval(&self) -> Nanos {
        self.interval
    }

    pub(crate) fn live_interpreters(&self) -> usize {
        self.interps.len()
    }

    pub(crate) fn add_interpreter(&mut self, id: u32, source: Source) {
        // The snapshot is allocated here, on a message, never on a tick.
        let stack = source.stack().map(|reader| {
            Box::new(SlotStack {
                snap: reader.snapshot(),
                reader: reader.clone(),
                entry: 0,
                batch_no: 0,
            })
        });
        self.interps.push(Slot { id, source, stack });
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
        while i < self.interps.len() {
            let slot = &self.interps[i];
            if let Some(pc) = slot.source.pc() {
                let interp = slot.id;
                if self.batch.samples.len() == self.batch.samples.capacity() {
                    self.hand_over();
                }
                let stack = if self.interps[i].stack.is_some() {
                    self.read_stack(i)
                } else {
                    0
                };
                self.batch.samples.push(Sample {
                    time_ns: read_at,
                    interp,
                    pc: pc as u64,
                    stack,
                });
                self.samples_taken += 1;
                i += 1;
            } else if self.interps[i].source.is_finished() {
                let slot = self.interps.swap_remove(i);
                self.retire(slot, read_at);
            } else {
                i += 1;
            }
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

    /// Reads interpreter `i`'s shadow stack (just after its PC) and gives
    /// its entry in the batch's arena: the last one while the stack is
    /// unchanged, else a new one (sealing the batch first if the arena is
    /// full). A torn read is counted and kept as the prefix read, marked
    /// truncated.
    #[inline(never)]
    fn read_stack(&mut self, i: usize) -> u32 {
        let Some(st) = self.interps[i].stack.as_deref_mut() else {
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
        let Some(st) = self.interps[i].stack.as_deref_mut() else {
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
    fn retire(&mut self, slot: Slot, now: u64) {
        debug!(name: "sampler.retired", interp = slot.id);
        if let Some(registry) = &self.registry {
            let _ = registry.cast(RegistryMsg::InterpreterRetired {
                id: slot.id,
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
    use crate::pc::PcHandle;

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
