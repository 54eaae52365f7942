//! Shadow call stacks: the second memory an interpreter may share with
//! pcprof, opt-in per interpreter.
//!
//! - **One writer, no read-modify-write.** The interpreter owns a
//!   [`StackHandle`]: an array of frames (`AtomicU64`, the call sites' PCs)
//!   and one word `state = generation << 32 | depth`, of which it keeps its
//!   own copy. [`StackHandle::call`] stores the frame, then the state: two
//!   Release stores (plain `mov`s on x86). [`StackHandle::ret`] stores the
//!   state with the depth one less and the generation one more: one store.
//!   No lock, no allocation; an interpreter that never asks for a stack
//!   pays nothing, and [`PcHandle::set`](crate::PcHandle::set) stays one
//!   relaxed store.
//! - **Consistent snapshots without UB** (a seqlock whose data are atomics):
//!   the sampler loads the state (Acquire), the frames (Relaxed), fences
//!   (Acquire) and loads the state again, and accepts iff both loads are
//!   equal. A frame below the depth changes only after a pop, and every pop
//!   bumps the generation; a frame read from a later call's store
//!   synchronises (its Release store, the reader's fence) with the reader,
//!   so the second load sees at least the pop before it: the snapshot is
//!   refused. A refused read is retried [`READ_TRIES`] times, then counted
//!   (`Stats::stack_reads_torn`) and kept as a truncated stack with no
//!   frames (the leaf PC is still exact).
//! - **Low-water mark.** The sampler keeps each interpreter's last accepted
//!   snapshot ([`Snapshot`], sized at registration). While the generation
//!   is the same, nothing was popped, so the frames below the last depth are
//!   the same: only the new ones are read. After a pop everything is read
//!   again (knowing how far the stack was popped would cost the interpreter
//!   a store on every return).
//! - **Capacity.** Deeper than its capacity, the interpreter keeps counting
//!   the depth but stores no frame; a sample keeps the outermost `capacity`
//!   frames, the exact leaf PC, and is marked truncated. The outermost
//!   frames are kept because a call tree is built from the root: a stack cut
//!   at the root would hang its frames under the wrong parents, while a
//!   stack cut in the middle still places its root side right, and its leaf
//!   (the hot instruction) is always exact.
//! - The stack is read just after the PC: a call or return between the two
//!   reads (a few ns) gives that one sample the neighbouring stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Attempts at a consistent snapshot before a sample's stack is given up
/// (kept as truncated, counted).
pub const READ_TRIES: u32 = 4;

/// The largest capacity an interpreter may ask for: the sampler's snapshot
/// and a batch's frames are sized by it.
pub const MAX_CAPACITY: usize = 1 << 16;

/// The shared cell: the state word on its own cache line, the frames after.
#[derive(Debug)]
struct StackCell {
    state: Padded,
    frames: Box<[AtomicU64]>,
}

#[repr(align(64))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

const DEPTH: u64 = 0xffff_ffff;
const ONE_GENERATION: u64 = 1 << 32;

/// The interpreter's side of a shadow stack. Not `Clone`: one interpreter
/// writes it. Make it with
/// [`ProfilerHandle::new_interpreter_with_stack`](crate::ProfilerHandle::new_interpreter_with_stack).
#[derive(Debug)]
pub struct StackHandle {
    cell: Arc<StackCell>,
    /// The interpreter's copy of `cell.state` (it is the only writer).
    state: u64,
}

impl StackHandle {
    /// A new, empty stack of `capacity` frames (at most [`MAX_CAPACITY`]).
    pub fn new(capacity: usize) -> StackHandle {
        let capacity = capacity.min(MAX_CAPACITY);
        StackHandle {
            cell: Arc::new(StackCell {
                state: Padded::default(),
                frames: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            }),
            state: 0,
        }
    }

    /// A call from the instruction at `site_pc` (the caller's call
    /// instruction): two stores, the frame then the state.
    #[inline(always)]
    pub fn call(&mut self, site_pc: usize) {
        let depth = (self.state & DEPTH) as usize;
        if let Some(frame) = self.cell.frames.get(depth) {
            frame.store(site_pc as u64, Ordering::Release);
        }
        // The depth stays below 2^32: a deeper call is not counted.
        if self.state & DEPTH != DEPTH {
            self.state += 1;
        }
        self.cell.state.0.store(self.state, Ordering::Release);
    }

    /// A return: one store (depth one less, generation one more). A return
    /// at depth 0 does nothing.
    #[inline(always)]
    pub fn ret(&mut self) {
        if self.state & DEPTH == 0 {
            return;
        }
        self.state = self.state.wrapping_add(ONE_GENERATION) - 1;
        self.cell.state.0.store(self.state, Ordering::Release);
    }

    /// Unwinds to `depth` at once (a trap, an exception, a host call that
    /// returns to an outer frame); a depth above the current one is
    /// ignored, since its frames are unknown.
    #[inline]
    pub fn set_depth(&mut self, depth: usize) {
        let now = self.state & DEPTH;
        let depth = depth as u64;
        if depth >= now {
            return;
        }
        self.state = ((self.state & !DEPTH).wrapping_add(ONE_GENERATION)) | depth;
        self.cell.state.0.store(self.state, Ordering::Release);
    }

    /// The current depth (calls not yet returned, beyond the capacity too).
    #[inline]
    pub fn depth(&self) -> usize {
        (self.state & DEPTH) as usize
    }

    /// The number of frames kept.
    pub fn capacity(&self) -> usize {
        self.cell.frames.len()
    }

    /// The sampler's view of this stack.
    pub fn reader(&self) -> StackReader {
        StackReader {
            cell: Arc::clone(&self.cell),
        }
    }
}

/// The sampler's view of a [`StackHandle`].
#[derive(Clone, Debug)]
pub struct StackReader {
    cell: Arc<StackCell>,
}

/// A sampler's copy of one interpreter's stack: its last accepted snapshot.
/// Allocated when the interpreter is registered, never on a tick.
#[derive(Debug)]
pub struct Snapshot {
    frames: Box<[u64]>,
    /// The state it was accepted at (`None`: no valid snapshot).
    state: Option<u64>,
}

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A consistent snapshot, the same as the last one (nothing changed).
    Same,
    /// A consistent snapshot that differs from the last one.
    Changed,
    /// Every attempt was torn: the snapshot holds nothing valid.
    Torn,
}

impl Snapshot {
    /// The frames of the last accepted snapshot, root first (at most the
    /// capacity).
    pub fn frames(&self) -> &[u64] {
        match self.state {
            Some(s) => &self.frames[..((s & DEPTH) as usize).min(self.frames.len())],
            None => &[],
        }
    }

    /// Whether the stack was deeper than the capacity.
    pub fn truncated(&self) -> bool {
        self.state
            .is_some_and(|s| (s & DEPTH) as usize > self.frames.len())
    }
}

impl StackReader {
    /// A snapshot buffer for this stack.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            frames: vec![0; self.cell.frames.len()].into_boxed_slice(),
            state: None,
        }
    }

    /// Reads the stack into `snap`, reading only the frames pushed since
    /// its last accepted state when nothing was popped meanwhile.
    #[inline]
    pub fn read(&self, snap: &mut Snapshot) -> ReadOutcome {
        let cap = snap.frames.len().min(self.cell.frames.len());
        for _ in 0..READ_TRIES {
            let s1 = self.cell.state.0.load(Ordering::Acquire);
            if snap.state == Some(s1) {
                return ReadOutcome::Same;
            }
            let kept = ((s1 & DEPTH) as usize).min(cap);
            // Same generation: no pop since the last snapshot, so the
            // frames below its depth are unchanged.
            let from = match snap.state {
                Some(s0) if s0 >> 32 == s1 >> 32 => ((s0 & DEPTH) as usize).min(kept),
                _ => 0,
            };
            for (dst, src) in snap.frames[from..kept]
                .iter_mut()
                .zip(&self.cell.frames[from..kept])
            {
                *dst = src.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            let s2 = self.cell.state.0.load(Ordering::Relaxed);
            if s1 == s2 {
                snap.state = Some(s1);
                return ReadOutcome::Changed;
            }
            // Frames from `from` on may be torn: read them all next time.
            snap.state = None;
        }
        ReadOutcome::Torn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_returns_and_unwinds_read_back() {
        let mut h = StackHandle::new(3);
        let r = h.reader();
        let mut s = r.snapshot();
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert_eq!(s.frames(), &[] as &[u64]);
        h.call(0x10);
        h.call(0x20);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert_eq!(s.frames(), [0x10, 0x20]);
        assert_eq!(r.read(&mut s), ReadOutcome::Same);
        h.call(0x30);
        h.call(0x40);
        assert_eq!(h.depth(), 4);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert_eq!(s.frames(), [0x10, 0x20, 0x30]);
        assert!(s.truncated());
        h.ret();
        h.ret();
        h.call(0x50);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert_eq!(s.frames(), [0x10, 0x20, 0x50]);
        assert!(!s.truncated());
        h.set_depth(1);
        h.set_depth(5);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert_eq!(s.frames(), [0x10]);
        h.ret();
        h.ret();
        assert_eq!(h.depth(), 0);
    }

    /// The frame a call at depth `d` pushes on top of `parent`, with
    /// `choice` (0 to 3): every frame is a function of the path below it,
    /// so a snapshot mixing two paths breaks the chain.
    fn frame(parent: u64, d: usize, choice: u64) -> u64 {
        (parent ^ (d as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9)
            & !3
            | choice
    }

    fn consistent(frames: &[u64]) -> bool {
        let mut parent = 0;
        frames.iter().enumerate().all(|(d, &f)| {
            let ok = frame(parent, d, f & 3) == f;
            parent = f;
            ok
        })
    }

    /// A thread calls and returns as fast as it can (a random walk of
    /// depth, over the capacity at times, with unwinds) while this one
    /// reads: every accepted snapshot is a stack that existed (each frame
    /// follows from the ones below it), and torn reads are seen and
    /// refused rather than accepted.
    #[test]
    fn every_accepted_snapshot_is_a_stack_that_existed() {
        use std::sync::atomic::AtomicBool;
        let cap = 24;
        let mut h = StackHandle::new(cap);
        let r = h.reader();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut path: Vec<u64> = Vec::new();
                let mut x: u64 = 0x2545_f491_4f6c_dd1d;
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let d = h.depth();
                    match x % 16 {
                        0..=8 if d < 32 => {
                            let parent = path.last().copied().unwrap_or(0);
                            let f = frame(parent, d, (x >> 8) & 3);
                            path.push(f);
                            h.call(f as usize);
                        }
                        9 if d > 4 => {
                            let to = d - 1 - (x >> 8) as usize % 4;
                            path.truncate(to);
                            h.set_depth(to);
                        }
                        _ if d > 0 => {
                            path.pop();
                            h.ret();
                        }
                        _ => {}
                    }
                    ops += 1;
                }
                ops
            })
        };
        let mut snap = r.snapshot();
        let (mut accepted, mut torn, mut deep) = (0u64, 0u64, 0u64);
        // The control: the same frames read without the check, to show
        // that the consistency test does see torn stacks when they occur.
        let mut raw = vec![0u64; cap];
        let mut raw_broken = 0u64;
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_millis(500) || accepted < 1000 {
            match r.read(&mut snap) {
                ReadOutcome::Torn => {
                    torn += 1;
                    let d = (r.cell.state.0.load(Ordering::Relaxed) & DEPTH) as usize;
                    let n = d.min(cap);
                    for (dst, src) in raw[..n].iter_mut().zip(&r.cell.frames[..n]) {
                        *dst = src.load(Ordering::Relaxed);
                    }
                    raw_broken += u64::from(!consistent(&raw[..n]));
                }
                _ => {
                    accepted += 1;
                    deep += u64::from(snap.truncated());
                    assert!(
                        consistent(snap.frames()),
                        "a snapshot that never existed: {:x?}",
                        snap.frames()
                    );
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let ops = writer.join().unwrap();
        assert!(ops > 0 && accepted >= 1000);
        // Figures for the curious (`--nocapture`); the assertion above is
        // the test.
        println!(
            "{ops} calls/returns, {accepted} snapshots accepted ({deep} truncated), \
             {torn} torn; unchecked reads after a torn one: {raw_broken} inconsistent"
        );
    }
}
