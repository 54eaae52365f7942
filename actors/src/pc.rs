//! Program-counter cells: the one memory an interpreter shares with pcprof.
//!
//! - The interpreter owns a [`PcHandle`] and publishes the address of the
//!   instruction it is about to execute with one relaxed store ([`PcHandle::set`]):
//!   no lock, no allocation, no branch on whether profiling is on.
//! - [`NOT_EXECUTING`] (0) means idle: the sampler takes no sample.
//! - Dropping the handle marks the interpreter finished; the sampler then
//!   retires it.
//! - The sampler reads through [`PcSource`], so foreign cells (Pulley's
//!   `ExecutingPc`) are sampled like pcprof's own.
//! - **The activity protocol (opt-in).** A plain cell is read at every tick,
//!   since an idle interpreter may resume at any instruction and only its
//!   cell says so: with thousands of interpreters, that is a cache line each
//!   a tick. An interpreter registered on demand
//!   ([`ProfilerHandle::new_interpreter_on_demand`](crate::ProfilerHandle::new_interpreter_on_demand),
//!   [`OnDemandPc`]) also owns a bit in a shared **activity bitmap**
//!   ([`Activity`]; words of `AtomicU64`, in chunks of [`ACTIVITY_CHUNK`]
//!   slots that never move), and the sampler reads its cell only while the
//!   bit is set. The bit is part of the cell's protocol: the bitmap and the
//!   cells are still the one memory an interpreter writes and the sampler
//!   reads. Its invariant, which makes the sampler exact: **a clear bit
//!   means the PC is [`NOT_EXECUTING`]**.
//!   - `enter` (once per host→guest call, not per instruction) sets the bit
//!     (`fetch_or`) *before* any PC is published; re-entries only count.
//!   - `leave` stores PC 0, *then* clears the bit (`fetch_and`, Release) at
//!     the outermost leave.
//!   - Finishing (the handle's drop) stores PC 0 and `finished` (Release),
//!     then sets the bit (Release), so the sampler sees the finish and
//!     retires the interpreter, clearing the bit; only then may the slot go
//!     to another registration (the registry reuses ids, which are the
//!     slots, only after the sampler reported the retirement).
//!   - The sampler loads each word with Acquire: reading a clear bit, or a
//!     bit set by a later `enter`, synchronises with the `leave` that
//!     cleared it (a read-modify-write continues the release sequence), so
//!     the PC it then reads is never one stored before that leave. A PC
//!     stored after an `enter` that happened before the tick is read, since
//!     its bit is then visible. A loom model checks both, and the finish
//!     (`RUSTFLAGS="--cfg pcprof_loom" cargo test -p pcprof-actors --lib loom_tests`,
//!     best with its own `CARGO_TARGET_DIR`); it fails, as it should, with
//!     a Relaxed leave or a Relaxed read.
//!   - `set` outside `enter`/`leave` breaks the invariant (its samples may be
//!     lost); debug builds assert it. Release `set` is one relaxed store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

// Under loom (`--cfg pcprof_loom`), the cell's and the bitmap's atomics are
// loom's, so its model checks the protocol's own code (`loom_tests`).
#[cfg(all(test, pcprof_loom))]
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
#[cfg(not(all(test, pcprof_loom)))]
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use crate::stack::StackReader;

/// The PC value that means "this interpreter is not executing bytecode".
pub const NOT_EXECUTING: usize = 0;

/// The shared cell. Aligned to a cache line so that the cells of interpreters
/// running on different cores never share one (false sharing would turn each
/// interpreter's per-instruction store into cache-line ping-pong).
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct PcCell {
    pc: AtomicUsize,
    finished: AtomicBool,
}

/// The interpreter's side of a PC cell. Not `Clone`: one interpreter writes it.
#[derive(Debug)]
pub struct PcHandle {
    cell: Arc<PcCell>,
}

impl PcHandle {
    /// A new cell, initially not executing.
    pub fn new() -> PcHandle {
        PcHandle {
            cell: Arc::new(PcCell::default()),
        }
    }

    /// Publishes the address of the instruction about to execute.
    ///
    /// This is the whole per-instruction cost of pcprof: one relaxed store.
    /// Relaxed suffices because the sampler wants *a* recent value, not one
    /// ordered with the interpreter's other memory.
    #[inline(always)]
    pub fn set(&self, pc: usize) {
        self.cell.pc.store(pc, Ordering::Relaxed);
    }

    /// Publishes a pointer into bytecode as the current PC.
    #[inline(always)]
    pub fn set_ptr(&self, pc: *const u8) {
        self.set(pc as usize);
    }

    /// Marks the interpreter idle: ticks until the next [`PcHandle::set`] take
    /// no sample of it.
    #[inline(always)]
    pub fn set_idle(&self) {
        self.set(NOT_EXECUTING);
    }

    /// The sampler's view of this cell.
    pub fn reader(&self) -> PcReader {
        PcReader {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl Default for PcHandle {
    fn default() -> Self {
        PcHandle::new()
    }
}

impl Drop for PcHandle {
    fn drop(&mut self) {
        self.cell.pc.store(NOT_EXECUTING, Ordering::Relaxed);
        // Release pairs with the sampler's acquire load: once it sees the
        // interpreter finished it also sees the idle PC.
        self.cell.finished.store(true, Ordering::Release);
    }
}

/// Slots in one chunk of the activity bitmap: 4096 bits, 512 bytes.
pub const ACTIVITY_CHUNK: usize = 4096;
/// Words in one chunk.
pub(crate) const CHUNK_WORDS: usize = ACTIVITY_CHUNK / 64;

/// The orderings of the activity protocol, named once so that the loom
/// model checks the ones the code uses.
pub(crate) mod order {
    use std::sync::atomic::Ordering;
    /// `enter`'s `fetch_or`: the PCs after it need no ordering with it (the
    /// sampler reads a cell only after seeing the bit).
    pub(crate) const ENTER: Ordering = Ordering::Relaxed;
    /// `leave`'s `fetch_and`: publishes the PC 0 stored before it.
    pub(crate) const LEAVE: Ordering = Ordering::Release;
    /// The finish's `fetch_or`: publishes PC 0 and `finished`.
    pub(crate) const FINISH: Ordering = Ordering::Release;
    /// The sampler's load of a word.
    pub(crate) const READ: Ordering = Ordering::Acquire;
}

/// One chunk of the activity bitmap: bit `s % 64` of word `s / 64` is slot
/// `s`'s. Allocated once and shared by `Arc`, so the bitmap grows by
/// chunks without moving a word an interpreter may be writing.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct ActivityChunk {
    pub(crate) words: [AtomicU64; CHUNK_WORDS],
}

impl ActivityChunk {
    pub(crate) fn new() -> ActivityChunk {
        ActivityChunk {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// An interpreter's bit in the activity bitmap: set while it may be
/// executing, between [`Activity::enter`] and the drop of the guard it
/// returns (module docs, "The activity protocol").
///
/// For a foreign [`PcSource`] registered with
/// [`ProfilerHandle::register_source_on_demand`](crate::ProfilerHandle::register_source_on_demand):
/// the source must report `None` whenever no guard is alive, and this
/// `Activity` must be dropped once the source is finished (and not used
/// after), which tells the sampler to look. Not `Sync`: one interpreter
/// enters and leaves it.
#[derive(Debug)]
pub struct Activity {
    chunk: Arc<ActivityChunk>,
    word: usize,
    mask: u64,
    /// The interpreter's id, which is its slot.
    id: u32,
    /// Nested entries (a host→guest call made from inside a host call).
    /// Only the entering thread touches it (plain loads and stores); an
    /// atomic so that a guard may be held across an `.await` that moves
    /// the task to another thread (the hand-over orders it).
    depth: std::sync::atomic::AtomicU32,
}

impl Activity {
    pub(crate) fn new(chunk: Arc<ActivityChunk>, id: u32) -> Activity {
        let slot = id as usize % ACTIVITY_CHUNK;
        Activity {
            chunk,
            word: slot / 64,
            mask: 1 << (slot % 64),
            id,
            depth: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The interpreter's id in the profile.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether a guard is alive: the sampler may read the cell.
    pub fn is_entered(&self) -> bool {
        self.depth.load(Ordering::Relaxed) > 0
    }

    /// The interpreter may execute until the guard is dropped: its cell is
    /// read at every tick meanwhile. Nested calls only count; the bit is
    /// cleared at the outermost drop.
    pub fn enter(&self) -> ActivityGuard<'_> {
        self.enter_raw();
        ActivityGuard(self)
    }

    #[inline]
    fn enter_raw(&self) {
        let d = self.depth.load(Ordering::Relaxed);
        if d == 0 {
            self.chunk.words[self.word].fetch_or(self.mask, order::ENTER);
        }
        self.depth.store(d + 1, Ordering::Relaxed);
    }

    #[inline]
    fn leave_raw(&self) {
        let d = self.depth.load(Ordering::Relaxed).saturating_sub(1);
        self.depth.store(d, Ordering::Relaxed);
        if d == 0 {
            self.chunk.words[self.word].fetch_and(!self.mask, order::LEAVE);
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        // The finish: the sampler looks at the cell, finds it finished and
        // retires it (clearing the bit). Whatever made the source finished
        // comes before this in program order, and Release publishes it.
        self.chunk.words[self.word].fetch_or(self.mask, order::FINISH);
    }
}

/// While alive, the [`Activity`]'s interpreter may execute; dropping it
/// leaves (on `?`-returns and unwinding too).
#[derive(Debug)]
pub struct ActivityGuard<'a>(&'a Activity);

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        self.0.leave_raw();
    }
}

/// An interpreter's PC cell on the activity protocol: read by the sampler
/// only between [`OnDemandPc::enter`] and the drop of the [`Entered`] guard
/// it returns, so thousands of idle interpreters cost a tick one bit each
/// rather than a cache line each. From
/// [`ProfilerHandle::new_interpreter_on_demand`](crate::ProfilerHandle::new_interpreter_on_demand).
///
/// [`OnDemandPc::set`] outside `enter` is a usage error (asserted in debug
/// builds): its PCs may not be sampled. One interpreter, on one thread at
/// a time, enters it and stores into it; it is `Sync` so that an async
/// embedder may hold the [`Entered`] guard across an `.await` (the task,
/// guard included, may resume on another thread).
#[derive(Debug)]
pub struct OnDemandPc {
    // Dropped first: PC 0 and `finished`, then the activity's bit (field
    // order is drop order).
    pc: PcHandle,
    activity: Activity,
}

impl OnDemandPc {
    pub(crate) fn new(pc: PcHandle, activity: Activity) -> OnDemandPc {
        OnDemandPc { pc, activity }
    }

    /// The interpreter's id in the profile.
    pub fn id(&self) -> u32 {
        self.activity.id
    }

    /// Enters guest code (once per host→guest call): PCs may be published
    /// until the guard is dropped, which stores PC 0 (the interpreter is back
    /// in the host) and, at the outermost drop, clears the bit. A nested
    /// entry (a host function calling back into the interpreter) keeps the
    /// bit set until the outermost guard goes.
    pub fn enter(&self) -> Entered<'_> {
        self.enter_raw();
        Entered(self)
    }

    #[inline]
    pub(crate) fn enter_raw(&self) {
        self.activity.enter_raw();
    }

    #[inline]
    pub(crate) fn leave_raw(&self) {
        // PC 0 first: a clear bit must mean an idle cell.
        self.pc.set_idle();
        self.activity.leave_raw();
    }

    /// Whether a guard is alive.
    pub fn is_entered(&self) -> bool {
        self.activity.is_entered()
    }

    /// Publishes the address of the instruction about to execute: one
    /// relaxed store, as [`PcHandle::set`]. Only between `enter` and the
    /// guard's drop.
    #[inline(always)]
    pub fn set(&self, pc: usize) {
        debug_assert!(
            self.activity.is_entered() || pc == NOT_EXECUTING,
            "OnDemandPc::set({pc:#x}) outside enter(): the sampler may not see it"
        );
        self.pc.set(pc);
    }

    /// Publishes a pointer into bytecode as the current PC.
    #[inline(always)]
    pub fn set_ptr(&self, pc: *const u8) {
        self.set(pc as usize);
    }

    /// Marks the interpreter idle while still entered.
    #[inline(always)]
    pub fn set_idle(&self) {
        self.pc.set_idle();
    }

    /// The sampler's view of this cell.
    pub fn reader(&self) -> PcReader {
        self.pc.reader()
    }
}

/// While alive, the [`OnDemandPc`]'s interpreter may execute; dropping it
/// stores PC 0 and leaves (on `?`-returns and unwinding too).
#[derive(Debug)]
pub struct Entered<'a>(&'a OnDemandPc);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.leave_raw();
    }
}

/// The sampler's view of a [`PcHandle`]; cheap to clone, readable from any
/// thread.
#[derive(Clone, Debug)]
pub struct PcReader {
    cell: Arc<PcCell>,
}

impl PcReader {
    /// The current PC, or `None` when idle.
    #[inline]
    pub fn pc(&self) -> Option<usize> {
        match self.cell.pc.load(Ordering::Relaxed) {
            NOT_EXECUTING => None,
            pc => Some(pc),
        }
    }

    /// Whether the interpreter's handle has been dropped.
    #[inline]
    pub fn is_finished(&self) -> bool {
        self.cell.finished.load(Ordering::Acquire)
    }
}

/// Anything the sampler can read a PC from.
///
/// Implement it for an interpreter's own PC cell to register that cell
/// without copying PCs into a [`PcHandle`].
pub trait PcSource: Send + Sync + 'static {
    /// The PC the interpreter is executing, or `None` when it is idle.
    fn pc(&self) -> Option<usize>;
    /// Whether the interpreter is gone for good; the sampler then retires it.
    fn is_finished(&self) -> bool;
}

impl PcSource for PcReader {
    #[inline]
    fn pc(&self) -> Option<usize> {
        PcReader::pc(self)
    }

    #[inline]
    fn is_finished(&self) -> bool {
        PcReader::is_finished(self)
    }
}

/// A registered source as the registry and the sampler hold it: pcprof's own
/// cells are read inline, foreign ones through a virtual call. Shared, so the
/// registry can report where an interpreter is, and so the sampler never
/// frees a source on the tick path (the registry drops the last reference).
#[derive(Clone)]
pub(crate) enum Source {
    Native(PcReader),
    Foreign(Arc<dyn PcSource>),
    /// Either of the above with a shadow stack.
    Stacked(Box<Source>, StackReader),
}

impl Source {
    #[inline]
    pub(crate) fn pc(&self) -> Option<usize> {
        match self {
            Source::Native(r) => r.pc(),
            Source::Foreign(s) => s.pc(),
            Source::Stacked(s, _) => s.pc(),
        }
    }

    #[inline]
    pub(crate) fn is_finished(&self) -> bool {
        match self {
            Source::Native(r) => r.is_finished(),
            Source::Foreign(s) => s.is_finished(),
            Source::Stacked(s, _) => s.is_finished(),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Native(r) => f.debug_tuple("Native").field(&r.pc()).finish(),
            Source::Foreign(s) => f.debug_tuple("Foreign").field(&s.pc()).finish(),
            Source::Stacked(s, _) => f.debug_tuple("Stacked").field(s).finish(),
        }
    }
}

#[cfg(all(test, not(pcprof_loom)))]
mod tests {
    use super::*;

    #[test]
    fn idle_is_no_sample_and_drop_finishes() {
        let h = PcHandle::new();
        let r = h.reader();
        assert_eq!(r.pc(), None);
        h.set(0x1234);
        assert_eq!(r.pc(), Some(0x1234));
        h.set_idle();
        assert_eq!(r.pc(), None);
        h.set(8);
        assert!(!r.is_finished());
        drop(h);
        assert!(r.is_finished());
        assert_eq!(r.pc(), None);
    }

    fn bit(chunk: &ActivityChunk, slot: usize) -> bool {
        chunk.words[slot / 64].load(Ordering::Relaxed) & (1 << (slot % 64)) != 0
    }

    /// The bit follows the outermost enter and leave; every leave stores
    /// PC 0; the finish sets the bit with the cell idle and finished.
    #[test]
    fn the_bit_is_set_while_entered_and_by_the_finish() {
        let chunk = Arc::new(ActivityChunk::new());
        let slot = 4_096 + 130;
        let pc = OnDemandPc::new(
            PcHandle::new(),
            Activity::new(Arc::clone(&chunk), slot as u32),
        );
        let (r, slot) = (pc.reader(), slot % ACTIVITY_CHUNK);
        assert_eq!(pc.id(), 4_096 + 130);
        assert!(!bit(&chunk, slot) && !pc.is_entered());
        {
            let _outer = pc.enter();
            assert!(bit(&chunk, slot));
            pc.set(0x40);
            {
                let _inner = pc.enter();
                pc.set(0x80);
                assert_eq!(r.pc(), Some(0x80));
            }
            // Back in the host under the outer call: idle, still entered.
            assert_eq!(r.pc(), None);
            assert!(bit(&chunk, slot) && pc.is_entered());
            pc.set(0x44);
        }
        assert_eq!(r.pc(), None);
        assert!(!bit(&chunk, slot) && !pc.is_entered());
        // No other slot was touched.
        let others: u32 = chunk
            .words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum();
        assert_eq!(others, 0);
        drop(pc);
        assert!(bit(&chunk, slot) && r.is_finished());
        assert_eq!(r.pc(), None);
    }

    /// A store outside `enter` breaks the protocol's invariant: debug builds
    /// say so.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "outside enter()")]
    fn a_set_outside_enter_is_caught_in_debug_builds() {
        let pc = OnDemandPc::new(
            PcHandle::new(),
            Activity::new(Arc::new(ActivityChunk::new()), 0),
        );
        pc.set(0x40);
    }
}

/// The activity protocol under loom: every interleaving, and every value the
/// memory model lets a load see, of an interpreter's enter, PC stores,
/// leave and finish against the sampler's read (a word with `order::READ`,
/// then the cell of a set bit, as `SamplerCore::sample` does).
#[cfg(all(test, pcprof_loom))]
mod loom_tests {
    use super::*;

    fn read_bit(chunk: &ActivityChunk, slot: usize) -> bool {
        chunk.words[slot / 64].load(order::READ) & (1 << (slot % 64)) != 0
    }

    /// A host thread serves request A, then request B (another
    /// interpreter, whose bit shares A's word). A sampler that sees B's bit
    /// read a word from after A's leave: A's bit is clear and A's cell,
    /// were it read, holds 0, never the PC A published while entered.
    #[test]
    fn no_pc_is_read_from_an_interpreter_that_left() {
        loom::model(|| {
            let chunk = Arc::new(ActivityChunk::new());
            let a = OnDemandPc::new(PcHandle::new(), Activity::new(Arc::clone(&chunk), 0));
            let b = OnDemandPc::new(PcHandle::new(), Activity::new(Arc::clone(&chunk), 1));
            let (ra, rb) = (a.reader(), b.reader());
            let host = loom::thread::spawn(move || {
                {
                    let _in = a.enter();
                    a.set(0xA1);
                }
                let _in = b.enter();
                b.set(0xB1);
                drop(_in);
                (a, b)
            });
            let word = chunk.words[0].load(order::READ);
            if word & 0b10 != 0 {
                assert_eq!(word & 0b01, 0, "A's leave precedes B's enter");
                assert_eq!(ra.pc(), None, "a PC of A read after it left");
            }
            if word & 0b01 != 0 {
                // Entered: 0xA1, or 0 around it.
                assert!(matches!(ra.pc(), None | Some(0xA1)));
            }
            if word & 0b10 != 0 {
                assert!(matches!(rb.pc(), None | Some(0xB1)));
            }
            drop(host.join().unwrap());
        });
    }

    /// A PC published after an enter that happened before the tick (here
    /// through a flag, as any synchronisation would) is sampled: its bit is
    /// seen and its cell read.
    #[test]
    fn a_pc_published_before_the_tick_is_sampled() {
        loom::model(|| {
            let chunk = Arc::new(ActivityChunk::new());
            let a = OnDemandPc::new(PcHandle::new(), Activity::new(Arc::clone(&chunk), 5));
            let ra = a.reader();
            let published = Arc::new(AtomicBool::new(false));
            let p = Arc::clone(&published);
            let host = loom::thread::spawn(move || {
                // Entered until after the tick: the guard's drop, by hand.
                a.enter_raw();
                a.set(0xA1);
                p.store(true, Ordering::Release);
                a
            });
            if published.load(Ordering::Acquire) {
                assert!(read_bit(&chunk, 5), "the bit of an entered interpreter");
                assert_eq!(ra.pc(), Some(0xA1));
            }
            let a = host.join().unwrap();
            a.leave_raw();
            assert!(!read_bit(&chunk, 5));
            assert_eq!(ra.pc(), None);
        });
    }

    /// A finish while left sets the bit; a sampler that sees it set after
    /// the interpreter left reads PC 0, and once it reads the finish, the
    /// retirement is safe.
    #[test]
    fn a_finish_is_seen_through_its_bit() {
        loom::model(|| {
            let chunk = Arc::new(ActivityChunk::new());
            let a = OnDemandPc::new(PcHandle::new(), Activity::new(Arc::clone(&chunk), 63));
            let ra = a.reader();
            let host = loom::thread::spawn(move || {
                {
                    let _in = a.enter();
                    a.set(0xA1);
                }
                drop(a);
            });
            if read_bit(&chunk, 63) && ra.is_finished() {
                assert_eq!(ra.pc(), None);
            }
            host.join().unwrap();
        });
    }
}
