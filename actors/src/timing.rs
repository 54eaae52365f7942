//! The timing thread: one dedicated OS thread hosting the ticker and the
//! sampler.
//!
//! - Its loop: handle every message waiting in the mailbox, sleep until the
//!   ticker's next deadline, let the ticker turn the deadline into a
//!   [`SampleCommand`](crate::ticker::SampleCommand), let the sampler execute
//!   it. Nothing else runs on it.
//! - The mailbox is lock-free (tokio's unbounded MPSC queue, drained with
//!   `try_recv` before a sleep when its doorbell flag rang); a sender rings
//!   the doorbell and unparks the thread, which ends a long sleep (slow
//!   rates, pauses) at once; a tick's sleep (at most
//!   [`DEAF_SLEEP_MAX`](crate::clock::DEAF_SLEEP_MAX)) runs to its end, so a
//!   message is handled between ticks, never in the middle of one. No lock
//!   is shared with an interpreter or a registration.
//! - The thread sets its timer slack to 1 ns, a short EEVDF slice at normal
//!   priority (so a waking tick preempts busy interpreters) and, when asked
//!   and permitted, `SCHED_FIFO` (see [`crate::sys`]). The clock sleeps until
//!   a learned margin before each deadline and spins the rest (see
//!   [`crate::clock::WakeEstimator`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};

use tokio::sync::mpsc::{UnboundedReceiver, error::TryRecvError};
use tracing::{debug, trace, warn};

use crate::clock::Clock;
use crate::config::Scheduling;
pub use crate::messages::timing::TimingStats;
pub(crate) use crate::messages::timing::{SamplerMsg, TickerMsg, TimingMailbox, TimingMsg};
use crate::sampler::SamplerCore;
use crate::sys;
use crate::ticker::TickerCore;
use crate::watch::{ThreadEvent, Watch, panic_message};

/// Everything the timing thread owns.
pub(crate) struct TimingThread {
    pub(crate) ticker: TickerCore,
    pub(crate) sampler: SamplerCore,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) scheduling: Scheduling,
    pub(crate) dispatch: tracing::Dispatch,
    /// Reports a caught panic and the thread's exit to the supervisor.
    pub(crate) watch: Watch,
}

enum Next {
    Continue,
    Exit,
}

impl TimingThread {
    /// Spawns the thread; it starts ticking at once.
    pub(crate) fn spawn(self) -> std::io::Result<(JoinHandle<()>, TimingMailbox)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let doorbell = Arc::new(AtomicBool::new(false));
        let bell = Arc::clone(&doorbell);
        // The clock is attached before the thread exists, so a virtual clock
        // never advances past the thread's first deadline before it sleeps.
        self.clock.attach();
        let clock = Arc::clone(&self.clock);
        let spawned = thread::Builder::new()
            .name("pcprof-sampler".into())
            .spawn(move || self.run(rx, bell));
        match spawned {
            Ok(join) => {
                let thread = join.thread().clone();
                Ok((
                    join,
                    TimingMailbox {
                        tx,
                        thread,
                        doorbell,
                        clock,
                    },
                ))
            }
            Err(e) => {
                clock.detach();
                Err(e)
            }
        }
    }

    fn run(mut self, mut inbox: UnboundedReceiver<TimingMsg>, doorbell: Arc<AtomicBool>) {
        let dispatch = self.dispatch.clone();
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let policy = sys::prepare_timing_thread(self.scheduling);
        let clock = Arc::clone(&self.clock);
        self.ticker.start(clock.now());
        debug!(name: "ticker.started", hz = self.ticker.frequency_hz());
        debug!(name: "sampler.started", flush_interval_ns = self.sampler.interval());
        debug!(name: "ticker.running", hz = self.ticker.frequency_hz(), scheduling = %policy);
        let mut panics = 0;
        loop {
            // A panic (an embedder's `PcSource`, or a bug) is caught here, at
            // no cost to a tick that does not panic. The state survives it:
            // the batch holds whole samples. Sampling stops, the samples are
            // handed over, the supervisor is told, and the thread keeps
            // answering until the shutdown drains it.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run_loop(&mut inbox, &doorbell, &policy)
            }));
            match run {
                Ok(()) => break,
                Err(payload) => {
                    let msg = panic_message(payload.as_ref());
                    warn!(name: "sampler.panicked", error = %msg);
                    self.ticker.stop(clock.now());
                    self.sampler.hand_over();
                    self.watch.report(ThreadEvent::Panicked(msg));
                    panics += 1;
                    if panics >= 3 {
                        // Panicking again and again, even with the ticker
                        // stopped: give up; the supervisor's steps time out.
                        break;
                    }
                }
            }
        }
        clock.detach();
        debug!(name: "sampler.exited", "timing thread exited");
        self.watch.report(ThreadEvent::Exited);
    }

    /// Messages, then a sleep to the next deadline, then the tick; returns
    /// when the thread should exit.
    fn run_loop(
        &mut self,
        inbox: &mut UnboundedReceiver<TimingMsg>,
        doorbell: &Arc<AtomicBool>,
        policy: &str,
    ) {
        let clock = Arc::clone(&self.clock);
        // What the clock learns of this thread's wake-ups: this thread's own.
        let mut wake = clock.wake_estimator();
        if let Some(w) = wake.as_mut() {
            // A process confined to one CPU (`taskset -c 0`): this thread
            // shares it with the interpreters, so spinning only steals from
            // them.
            w.set_shared_core(thread::available_parallelism().is_ok_and(|n| n.get() == 1));
            w.set_randomized(self.ticker.is_randomized());
        }
        // The short slice suits a thread that sleeps between ticks; one that
        // spins through keeps the default (see `sys::set_slice`). Only at
        // normal priority, where the short slice was granted.
        let adjust_slice = policy.starts_with("normal (slice");
        let mut short_slice = adjust_slice;
        // What a tick costs this thread is learned from its CPU time, read
        // (a system call) once in `CPU_EVERY` ticks.
        const CPU_EVERY: u32 = 256;
        let mut since_cpu = 0u32;
        if let Some(w) = wake.as_mut() {
            w.observe_cpu(sys::thread_cpu_ns());
        }
        loop {
            // Messages first: registrations and control take effect between
            // ticks, never in the middle of one. The queue is polled only when
            // the doorbell rang, or when this thread holds the last reference
            // to it (every mailbox dropped: the poll then sees the queue
            // disconnected).
            if doorbell.load(Ordering::Relaxed) || Arc::strong_count(doorbell) == 1 {
                // Lowered before draining (and the Acquire pairs with the
                // sender's Release): a message queued after this is seen now
                // or rings again.
                doorbell.swap(false, Ordering::Acquire);
                loop {
                    match inbox.try_recv() {
                        Ok(msg) => {
                            if let TimingMsg::Drain(_) = msg {
                                // From now on a send fails at once: a
                                // registration racing the shutdown is
                                // refused to its caller.
                                inbox.close();
                            }
                            if let Next::Exit = self.handle(msg, policy) {
                                return;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            // Every sender is gone: the supervisor died. Keep
                            // what was sampled.
                            self.sampler.hand_over();
                            return;
                        }
                    }
                }
            }
            if let Some(w) = wake.as_mut() {
                w.set_period(self.ticker.period());
            }
            let now = clock.wait_until(self.ticker.next_deadline(), wake.as_mut());
            since_cpu += 1;
            if since_cpu == CPU_EVERY
                && let Some(w) = wake.as_mut()
            {
                since_cpu = 0;
                w.observe_cpu(sys::thread_cpu_ns());
            }
            if adjust_slice
                && let Some(w) = wake.as_ref()
                && w.spinning_through() == short_slice
            {
                // Rare: the policy changed between sleeping and spinning.
                short_slice = !w.spinning_through();
                sys::set_slice(short_slice);
                debug!(name: "ticker.slice", short = short_slice);
            }
            if let Some(cmd) = self.ticker.fire(now) {
                self.sampler.sample(cmd, now);
            }
        }
    }

    fn stats(&self, policy: &str) -> TimingStats {
        let now = self.clock.now();
        let s = &self.sampler;
        TimingStats {
            frequency_hz: self.ticker.frequency_hz(),
            running: self.ticker.is_running(),
            elapsed_ns: self.ticker.elapsed(now),
            ticks_scheduled: self.ticker.scheduled,
            ticks_taken: self.ticker.taken,
            ticks_missed: self.ticker.missed,
            samples_taken: s.samples_taken,
            samples_dropped: s.samples_dropped,
            batches_sent: s.batches_sent,
            batches_dropped: s.batches_dropped,
            lateness_p50_ns: s.lateness.percentile(0.5),
            lateness_p99_ns: s.lateness.percentile(0.99),
            lateness_max_ns: s.lateness.max(),
            interpreters_live: s.live_interpreters() as u64,
            scheduling: policy.to_string(),
            cpu_ns: sys::thread_cpu_ns(),
            stack_reads_torn: s.stack_reads_torn,
            stacks_cut: s.stacks_cut,
            batch_buffers: s.batch_buffers() as u64,
        }
    }

    fn handle(&mut self, msg: TimingMsg, policy: &str) -> Next {
        trace!(name: "timing.message", msg = ?msg);
        let now = self.clock.now();
        match msg {
            TimingMsg::Ticker(TickerMsg::SetRate(hz, reply)) => {
                let result = if hz == 0 || hz > crate::config::MAX_FREQUENCY_HZ {
                    Err(format!(
                        "rate {hz} Hz is outside 1..={}",
                        crate::config::MAX_FREQUENCY_HZ
                    ))
                } else {
                    self.ticker.set_rate(hz, now);
                    self.sampler.grow_pool(hz);
                    debug!(name: "ticker.rate", hz);
                    Ok(())
                };
                let _ = reply.send(result);
            }
            TimingMsg::Ticker(TickerMsg::Pause) => {
                self.ticker.pause(now);
                // Nothing would seal the batch while paused.
                self.sampler.hand_over();
                debug!(name: "ticker.paused", "ticker paused");
            }
            TimingMsg::Ticker(TickerMsg::Resume) => {
                self.ticker.start(now);
                debug!(name: "ticker.resumed", "ticker resumed");
            }
            TimingMsg::Ticker(TickerMsg::GetStats(reply))
            | TimingMsg::Sampler(SamplerMsg::GetStats(reply)) => {
                let _ = reply.send(self.stats(policy));
            }
            TimingMsg::Sampler(SamplerMsg::Flush(reply)) => {
                self.sampler.hand_over();
                debug!(name: "sampler.flushed", batches = self.sampler.batches_sent);
                let _ = reply.send(());
            }
            TimingMsg::StopTicking(reply) => {
                self.ticker.stop(now);
                debug!(name: "ticker.stopped_ticking", taken = self.ticker.taken);
                let _ = reply.send(self.stats(policy));
            }
            TimingMsg::AddInterpreter { id, source } => {
                self.sampler.add_interpreter(id, source);
                // On the registration, never on a tick: it may allocate.
                self.sampler.grow_pool(self.ticker.frequency_hz());
                debug!(name: "sampler.add_interpreter", interp = id);
            }
            TimingMsg::AddOnDemand { id, source, chunk } => {
                self.sampler.add_on_demand(id, source, chunk);
                self.sampler.grow_pool(self.ticker.frequency_hz());
                debug!(name: "sampler.add_interpreter", interp = id, on_demand = true);
            }
            TimingMsg::SetRegistry(registry) => {
                debug!(name: "sampler.registry_set", "retirements go to the registry");
                self.sampler.set_registry(registry);
            }
            TimingMsg::Drain(reply) => {
                self.ticker.stop(now);
                self.sampler.hand_over();
                debug!(name: "sampler.drained", batches = self.sampler.batches_sent);
                let _ = reply.send(self.stats(policy));
                return Next::Exit;
            }
        }
        Next::Continue
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::VirtualClock;
    use crate::format::SampleBuffer;
    use crate::pc::{PcHandle, Source};

    /// The doorbell replaces polling the queue: a message is still handled
    /// at the next tick, and when every mailbox is gone the thread hands
    /// over what it sampled and exits, as it did when it polled every tick.
    #[test]
    fn messages_ring_the_doorbell_and_the_last_mailbox_dropped_ends_the_thread() {
        let clock = VirtualClock::new();
        let (batch_tx, batch_rx) = flume::unbounded::<SampleBuffer>();
        let (free_tx, free_rx) = flume::unbounded();
        free_tx
            .send(SampleBuffer::with_capacity(64, 64))
            .expect("the pool is open");
        let timing = TimingThread {
            ticker: TickerCore::new(1000, crate::config::SamplingMode::Periodic, 1),
            sampler: SamplerCore::new(
                1000,
                1_000_000_000,
                SampleBuffer::with_capacity(64, 64),
                batch_tx,
                free_rx,
                None,
            ),
            clock: Arc::new(clock.clone()),
            scheduling: Scheduling::Normal,
            dispatch: tracing::Dispatch::none(),
            watch: Watch::none("sampler"),
        };
        let (join, mailbox) = timing.spawn().expect("spawn the timing thread");
        let pc = PcHandle::new();
        pc.set(0x1234);
        mailbox
            .send(TimingMsg::AddInterpreter {
                id: 7,
                source: Source::Native(pc.reader()),
            })
            .expect("the thread is running");
        // The send woke the thread through the clock, so `settle` waits
        // until it has handled the message: the interpreter is in before
        // the 1 ms tick, however late the thread runs.
        clock.settle();
        let (reply, added) = ractor::concurrency::oneshot();
        mailbox
            .send(TimingMsg::Sampler(SamplerMsg::GetStats(reply.into())))
            .expect("the thread is running");
        let added = added.blocking_recv().expect("the thread replies");
        assert_eq!(added.interpreters_live, 1);
        clock.advance(Duration::from_millis(3));
        let (reply, stats) = ractor::concurrency::oneshot();
        mailbox
            .send(TimingMsg::Sampler(SamplerMsg::GetStats(reply.into())))
            .expect("the thread is running");
        clock.settle();
        let stats = stats.blocking_recv().expect("the thread replies");
        assert_eq!((stats.ticks_taken, stats.samples_taken), (3, 3));
        assert_eq!(stats.interpreters_live, 1);

        drop(mailbox);
        // The thread notices at its next wake-up, without a message. That is
        // the tick at 4 ms (taken first), or an earlier return from its
        // sleep: a park may return at once on the unpark of a message it has
        // handled already (seen on a loaded machine). Either way every tick
        // it took is handed over, and no other.
        clock.advance(Duration::from_millis(1));
        join.join().expect("the timing thread exits cleanly");
        let batch = batch_rx.recv().expect("the last batch was handed over");
        let times: Vec<u64> = batch.samples.iter().map(|s| s.time_ns).collect();
        let taken = [1_000_000, 2_000_000, 3_000_000, 4_000_000];
        assert!(
            times == taken || times == taken[..3],
            "handed over {times:?}"
        );
        assert!(
            batch
                .samples
                .iter()
                .all(|s| (s.interp, s.pc) == (7, 0x1234))
        );
    }
}
