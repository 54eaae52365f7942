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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

#[cfg(test)]
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
}
