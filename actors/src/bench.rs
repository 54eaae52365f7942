//! Benchmarking entry points into the timing thread's hot path.
//!
//! - Not part of the API (`#[doc(hidden)]`): criterion benchmarks in the
//!   root package drive the real `TickerCore` and `SamplerCore` through
//!   it, without threads, actors or a writer.
//! - [`Tick::tick`] is exactly what the timing thread does per deadline once
//!   awake: `ticker.fire(now)` then `sampler.sample(cmd)`. Full batches go to
//!   a channel that the bench drains back into the buffer pool, standing in
//!   for the writer, so the tick path allocates nothing and drops nothing.
#![doc(hidden)]

use std::sync::Arc;

use crate::clock::{Clock, MonotonicClock};
use crate::format::SampleBuffer;
use crate::pc::{PcHandle, Source};
use crate::sampler::SamplerCore;
use crate::ticker::TickerCore;

/// A ticker and a sampler over `n` interpreters whose PCs never change.
#[derive(Debug)]
pub struct Tick {
    ticker: TickerCore,
    sampler: SamplerCore,
    clock: Arc<MonotonicClock>,
    /// Kept so the interpreters are not retired.
    _handles: Vec<PcHandle>,
    /// Their shadow stacks, if any.
    stacks: Vec<crate::stack::StackHandle>,
    /// Interpreters on the activity protocol, if any.
    on_demand: Vec<crate::pc::OnDemandPc>,
    written: flume::Receiver<SampleBuffer>,
    free: flume::Sender<SampleBuffer>,
}

impl Tick {
    /// `interpreters` executing interpreters, batches of `flush` samples, at
    /// 1 kHz (the rate only sets the deadlines; nothing sleeps).
    pub fn new(interpreters: usize, flush: usize) -> Tick {
        Tick::with_idle(interpreters, 0, flush)
    }

    /// As [`Tick::new`], with `idle` more interpreters registered whose PC
    /// is 0 (not executing): a server's idle Stores.
    pub fn with_idle(interpreters: usize, idle: usize, flush: usize) -> Tick {
        let buffers = 4;
        let (to_writer, written) = flume::bounded(buffers);
        let (free, from_writer) = flume::bounded(buffers);
        for _ in 1..buffers {
            let _ = free.send(SampleBuffer::with_capacity(flush, flush));
        }
        let mut sampler = SamplerCore::new(
            flush,
            crate::config::DEFAULT_FLUSH_INTERVAL.as_nanos() as u64,
            SampleBuffer::with_capacity(flush, flush),
            to_writer,
            from_writer,
            None,
        );
        let mut handles = Vec::with_capacity(interpreters);
        for i in 0..interpreters {
            let h = PcHandle::new();
            h.set(0x1000 + 4 * i);
            sampler.add_interpreter(i as u32, Source::Native(h.reader()));
            handles.push(h);
        }
        for i in 0..idle {
            let h = PcHandle::new();
            sampler.add_interpreter((interpreters + i) as u32, Source::Native(h.reader()));
            handles.push(h);
        }
        let clock = Arc::new(MonotonicClock::default());
        let mut ticker = TickerCore::new(1000, crate::config::SamplingMode::Periodic, 1);
        ticker.start(clock.now());
        Tick {
            ticker,
            sampler,
            clock,
            _handles: handles,
            stacks: Vec::new(),
            on_demand: Vec::new(),
            written,
            free,
        }
    }

    /// As [`Tick::with_idle`], every interpreter on the activity protocol:
    /// the executing ones entered, the idle ones entered and left once.
    pub fn with_idle_on_demand(interpreters: usize, idle: usize, flush: usize) -> Tick {
        use crate::pc::{ACTIVITY_CHUNK, Activity, ActivityChunk, OnDemandPc};
        let mut t = Tick::new(0, flush);
        let n = interpreters + idle;
        let chunks: Vec<Arc<ActivityChunk>> = (0..n.div_ceil(ACTIVITY_CHUNK))
            .map(|_| Arc::new(ActivityChunk::new()))
            .collect();
        for i in 0..n {
            let chunk = Arc::clone(&chunks[i / ACTIVITY_CHUNK]);
            let pc = OnDemandPc::new(PcHandle::new(), Activity::new(Arc::clone(&chunk), i as u32));
            pc.enter_raw();
            if i < interpreters {
                pc.set(0x1000 + 4 * i);
            } else {
                pc.leave_raw();
            }
            t.sampler
                .add_on_demand(i as u32, Source::Native(pc.reader()), chunk);
            t.on_demand.push(pc);
        }
        t
    }

    /// As [`Tick::new`], each interpreter with a shadow stack `depth` calls
    /// deep (capacity `depth`).
    pub fn with_stacks(interpreters: usize, flush: usize, depth: usize) -> Tick {
        let mut t = Tick::new(0, flush);
        for i in 0..interpreters {
            let h = PcHandle::new();
            h.set(0x1000 + 4 * i);
            let mut st = crate::stack::StackHandle::new(depth);
            for d in 0..depth {
                st.call(0x10_0000 + 8 * d);
            }
            t.sampler.add_interpreter(
                i as u32,
                Source::Stacked(Box::new(Source::Native(h.reader())), st.reader()),
            );
            t._handles.push(h);
            t.stacks.push(st);
        }
        t
    }

    /// Each stack returns and calls again (a new generation: the sampler
    /// reads every frame again and makes a new entry), then one tick.
    #[inline]
    pub fn tick_after_return(&mut self) -> u64 {
        for st in &mut self.stacks {
            let d = st.depth();
            st.ret();
            st.call(0x10_0000 + 8 * d);
        }
        self.tick()
    }

    /// One tick, as the timing thread runs it once its deadline has come.
    /// Returns the samples taken so far.
    #[inline]
    pub fn tick(&mut self) -> u64 {
        // One clock read, as on the timing thread; never before the
        // deadline, so every call fires.
        let now = self.clock.now().max(self.ticker.next_deadline());
        if let Some(cmd) = self.ticker.fire(now) {
            self.sampler.sample(cmd, now);
        }
        // The writer's part, recycling buffers without encoding them.
        while let Ok(batch) = self.written.try_recv() {
            let _ = self.free.try_send(batch);
        }
        self.sampler.samples_taken
    }

    /// Samples dropped for want of a free buffer (zero in a sound bench).
    pub fn dropped(&self) -> u64 {
        self.sampler.samples_dropped
    }
}
