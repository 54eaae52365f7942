//! Shadow call stacks: the second memory an interpreter may share with
//! pcprof, opt-in per interpreter.
//!
//! - **One writer, no read-modify-write.** The interpreter owns a
//!   [`StackHandle`]: one array of atomic words, word 0 the state
//!   `generation << 32 | depth`, of which the interpreter keeps its own
//!   copy, then the frames. [`StackHandle::call`] stores the frame (the call
//!   site's PC, tagged with the low 16 bits of the generation), then the
//!   state: two Release stores (plain `mov`s on x86). [`StackHandle::ret`]
//!   stores the state with the depth one less and the generation one more:
//!   one store. No lock, no allocation; an interpreter that never asks for a
//!   stack pays nothing, and [`PcHandle::set`](crate::PcHandle::set) stays
//!   one relaxed store.
//! - **Consistent snapshots without UB.** Every shared word is an atomic.
//!   The sampler loads the state (Acquire): generation `g1`, depth `d1`;
//!   loads the frames (Relaxed), fences (Acquire), loads the state again
//!   (`g2`). A frame below `d1` changes after that first load only if it is
//!   pushed again, which needs a pop first, so its tag is then in
//!   `(g1, g2]`; a frame read from such a push synchronises (its Release
//!   store, the reader's fence) with the reader, so `g2` covers its tag.
//!   Frames whose tags are outside `(g1, g2]` are therefore those of the
//!   stack as it was at the first load: the snapshot is its prefix up to
//!   the first frame pushed again (all of it when nothing was). A stack
//!   deeper than its prefix is retried [`READ_TRIES`] times, then kept as
//!   that prefix, marked truncated and counted (`Stats::stack_reads_torn`);
//!   the leaf PC is exact either way. (A frame whose 16-bit tag happens to
//!   fall in `(g1, g2]` after 65 536 pops only cuts the prefix shorter;
//!   a read over which the generation moved 32 768 or more is retried.)
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
//! - **PCs of 48 bits**: a frame keeps the low 48 bits of the call site's
//!   PC (user-space addresses on x86-64 and AArch64 fit; an embedder's own
//!   numbering must too).
//! - The stack is read just after the PC: a call or return between the two
//!   reads (a few ns) gives that one sample the neighbouring stack.
//! - Checked two ways: a stress test (a thread calling, returning and
//!   unwinding flat out against a reader; every snapshot a path that
//!   existed) and loom's model checker over every interleaving of a read
//!   with calls, returns and an unwind
//!   (`RUSTFLAGS="--cfg pcprof_loom" cargo test -p pcprof-actors --lib loom_tests`,
//!   best with its own `CARGO_TARGET_DIR`; it fails, as it should, when the
//!   tag check is removed). Miri is not installed on this toolchain.

#[cfg(all(test, pcprof_loom))]
use loom::sync::Arc;
#[cfg(all(test, pcprof_loom))]
use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(all(test, pcprof_loom)))]
use std::sync::Arc;
#[cfg(not(all(test, pcprof_loom)))]
use std::sync::atomic::{AtomicU64, Ordering, fence};

/// The shared words: word 0 the state, then the frames. Under loom (its
/// `Arc` holds no slice) a vector behind the `Arc`, indexed alike.
#[cfg(not(all(test, pcprof_loom)))]
type Words = Arc<[AtomicU64]>;
#[cfg(all(test, pcprof_loom))]
type Words = Arc<Vec<AtomicU64>>;

fn words(n: usize) -> Words {
    #[cfg(not(all(test, pcprof_loom)))]
    return (0..n).map(|_| AtomicU64::new(0)).collect();
    #[cfg(all(test, pcprof_loom))]
    return Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
}

/// Attempts at a whole snapshot before a sample's stack is kept as the
/// prefix read (marked truncated, counted).
pub const READ_TRIES: u32 = 4;

/// The largest capacity an interpreter may ask for: the sampler's snapshot
/// and a batch's frames are sized by it.
pub const MAX_CAPACITY: usize = 1 << 16;

const DEPTH: u64 = 0xffff_ffff;
const ONE_GENERATION: u64 = 1 << 32;
/// The bits of a frame word that hold the PC; the top 16 hold the tag.
const PC_BITS: u64 = (1 << 48) - 1;

/// The interpreter's side of a shadow stack. Not `Clone`: one interpreter
/// writes it. Make it with
/// [`ProfilerHandle::new_interpreter_with_stack`](crate::ProfilerHandle::new_interpreter_with_stack).
#[derive(Debug)]
pub struct StackHandle {
    /// Word 0: the state; words 1 to the capacity: the frames.
    cell: Words,
    /// The interpreter's copy of the state (it is the only writer).
    state: u64,
}

impl StackHandle {
    /// A new, empty stack of `capacity` frames (at most [`MAX_CAPACITY`]).
    pub fn new(capacity: usize) -> StackHandle {
        let capacity = capacity.min(MAX_CAPACITY);
        StackHandle {
            cell: words(capacity + 1),
            state: 0,
        }
    }

    /// A call from the instruction at `site_pc` (the caller's call
    /// instruction): two stores, the frame then the state.
    #[inline(always)]
    pub fn call(&mut self, site_pc: usize) {
        let depth = (self.state & DEPTH) as usize;
        if let Some(frame) = self.cell.get(depth + 1) {
            let tag = (self.state >> 32) << 48;
            frame.store(site_pc as u64 & PC_BITS | tag, Ordering::Release);
        }
        // The depth stays below 2^32: a deeper call is not counted.
        if self.state & DEPTH != DEPTH {
            self.state += 1;
        }
        self.cell[0].store(self.state, Ordering::Release);
    }

    /// A return: one store (depth one less, generation one more). A return
    /// at depth 0 does nothing.
    #[inline(always)]
    pub fn ret(&mut self) {
        if self.state & DEPTH == 0 {
            return;
        }
        self.state = self.state.wrapping_add(ONE_GENERATION) - 1;
        self.cell[0].store(self.state, Ordering::Release);
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
        self.cell[0].store(self.state, Ordering::Release);
    }

    /// The current depth (calls not yet returned, beyond the capacity too).
    #[inline]
    pub fn depth(&self) -> usize {
        (self.state & DEPTH) as usize
    }

    /// The number of frames kept.
    pub fn capacity(&self) -> usize {
        self.cell.len() - 1
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
    cell: Words,
}

/// A sampler's copy of one interpreter's stack: its last snapshot.
/// Allocated when the interpreter is registered, never on a tick.
#[derive(Debug)]
pub struct Snapshot {
    /// The frames (tagged words), root first.
    frames: Box<[u64]>,
    /// How many of them are the snapshot.
    len: usize,
    /// Whether frames were lost (capacity, or a prefix kept).
    truncated: bool,
    /// The state a whole snapshot was taken at (`None`: the frames are a
    /// prefix, or none yet; read them all next time).
    state: Option<u64>,
}

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The same snapshot as the last one (the state did not change).
    Same,
    /// A whole snapshot that differs from the last one.
    Changed,
    /// Every attempt found frames pushed again while it read: the snapshot
    /// is the prefix read before them, marked truncated.
    Torn,
}

impl Snapshot {
    /// The call sites' PCs of the snapshot, root first (at most the
    /// capacity).
    pub fn frames(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.frames[..self.len].iter().map(|&w| w & PC_BITS)
    }

    /// The frames as stored (the PC in the low 48 bits).
    pub fn words(&self) -> &[u64] {
        &self.frames[..self.len]
    }

    /// Whether frames were lost: the stack was deeper than the capacity,
    /// or only a prefix could be read.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl StackReader {
    /// A snapshot buffer for this stack.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            frames: vec![0; self.cell.len() - 1].into_boxed_slice(),
            len: 0,
            truncated: false,
            state: None,
        }
    }

    /// Reads the stack into `snap`, reading only the frames pushed since
    /// its last whole snapshot when nothing was popped meanwhile.
    #[inline]
    pub fn read(&self, snap: &mut Snapshot) -> ReadOutcome {
        self.read_hooked(snap, &mut |_, _| {})
    }

    /// [`StackReader::read`], calling `hook(attempt, k)` after it loads
    /// frame `k`: where a test makes the interpreter move mid-read.
    #[inline(always)]
    fn read_hooked(&self, snap: &mut Snapshot, hook: &mut impl FnMut(u32, usize)) -> ReadOutcome {
        let frames = &self.cell[1..];
        let cap = snap.frames.len().min(frames.len());
        let mut best = 0;
        for attempt in 0..READ_TRIES {
            let s1 = self.cell[0].load(Ordering::Acquire);
            if snap.state == Some(s1) {
                return ReadOutcome::Same;
            }
            let depth = (s1 & DEPTH) as usize;
            let kept = depth.min(cap);
            // Same generation: no pop since the last whole snapshot, so the
            // frames below its depth are unchanged.
            let from = match snap.state {
                Some(s0) if s0 >> 32 == s1 >> 32 => ((s0 & DEPTH) as usize).min(kept),
                _ => 0,
            };
            for (k, (dst, src)) in snap.frames[from..kept]
                .iter_mut()
                .zip(&frames[from..kept])
                .enumerate()
            {
                *dst = src.load(Ordering::Relaxed);
                hook(attempt, from + k);
            }
            fence(Ordering::Acquire);
            let s2 = self.cell[0].load(Ordering::Relaxed);
            let (g1, g2) = ((s1 >> 32) as u32, (s2 >> 32) as u32);
            let moved = g2.wrapping_sub(g1);
            if moved == 0 {
                snap.state = Some(s1);
                snap.len = kept;
                snap.truncated = depth > cap;
                return ReadOutcome::Changed;
            }
            if moved >= 1 << 15 {
                // Tags cannot tell this read's frames apart (a reader
                // descheduled while the interpreter returned 32 768 times):
                // nothing it read is known good, and it overwrote the
                // prefix an earlier attempt had checked.
                snap.state = None;
                best = 0;
                continue;
            }
            // Frames pushed again since `s1` carry a tag in (g1, g2]: the
            // prefix before the first of them is the stack at `s1`.
            let pushed_again = |w: &u64| {
                let tag = (w >> 48) as u16;
                let since = tag.wrapping_sub(g1 as u16);
                since != 0 && u32::from(since) <= moved
            };
            let good = snap.frames[..kept]
                .iter()
                .position(pushed_again)
                .unwrap_or(kept);
            if good == kept {
                snap.state = Some(s1);
                snap.len = kept;
                snap.truncated = depth > cap;
                return ReadOutcome::Changed;
            }
            snap.state = None;
            best = good;
        }
        snap.len = best;
        snap.truncated = true;
        ReadOutcome::Torn
    }
}

#[cfg(all(test, not(pcprof_loom)))]
mod tests {
    use super::*;

    #[test]
    fn calls_returns_and_unwinds_read_back() {
        let mut h = StackHandle::new(3);
        let r = h.reader();
        let mut s = r.snapshot();
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert_eq!(s.frames().count(), 0);
        h.call(0x10);
        h.call(0x20);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert!(s.frames().eq([0x10, 0x20]));
        assert_eq!(r.read(&mut s), ReadOutcome::Same);
        h.call(0x30);
        h.call(0x40);
        assert_eq!(h.depth(), 4);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert!(s.frames().eq([0x10, 0x20, 0x30]));
        assert!(s.truncated());
        h.ret();
        h.ret();
        h.call(0x50);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert!(s.frames().eq([0x10, 0x20, 0x50]));
        assert!(!s.truncated());
        h.set_depth(1);
        h.set_depth(5);
        assert_eq!(r.read(&mut s), ReadOutcome::Changed);
        assert!(s.frames().eq([0x10]));
        h.ret();
        h.ret();
        assert_eq!(h.depth(), 0);
    }

    /// The frame a call at depth `d` pushes on top of `parent`, with
    /// `choice` (0 to 3): every frame is a function of the path below it,
    /// so a snapshot mixing two paths breaks the chain.
    fn frame(parent: u64, d: usize, choice: u64) -> u64 {
        ((parent ^ (d as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9)
            & PC_BITS
            & !3)
            | choice
    }

    fn consistent(frames: impl Iterator<Item = u64>) -> bool {
        let mut parent = 0;
        frames.enumerate().all(|(d, f)| {
            let ok = frame(parent, d, f & 3) == f;
            parent = f;
            ok
        })
    }

    /// A read that an earlier attempt cut to a checked prefix, and that a
    /// later attempt then tears while the interpreter returns 32 768 times
    /// or more (a sampler descheduled mid-read), keeps nothing rather than
    /// the prefix's place overwritten with frames of two stacks.
    #[test]
    fn a_read_torn_across_a_wrapped_tag_keeps_nothing() {
        let mut h = StackHandle::new(8);
        let r = h.reader();
        let push = |h: &mut StackHandle, path: &mut Vec<u64>, choice: u64| {
            let f = frame(path.last().copied().unwrap_or(0), path.len(), choice);
            path.push(f);
            h.call(f as usize);
        };
        let mut path = Vec::new();
        for c in [1, 2, 3] {
            push(&mut h, &mut path, c);
        }
        let mut snap = r.snapshot();
        let outcome = r.read_hooked(&mut snap, &mut |attempt, k| match (attempt, k) {
            // First attempt: the leaf frame is pushed again before it is
            // read, so the checked prefix is two frames.
            (0, 1) => {
                path.pop();
                h.ret();
                push(&mut h, &mut path, 0);
            }
            // Later attempts: after the root frame is read, the stack is
            // unwound and rebuilt another way 40 000 times, so the next
            // frames read belong to another stack.
            (a @ 1.., 0) => {
                for k in 0..40_000u64 {
                    h.set_depth(0);
                    path.clear();
                    for d in 0..3 {
                        push(&mut h, &mut path, (k + d + u64::from(a)) & 3);
                    }
                }
            }
            _ => {}
        });
        assert_eq!(outcome, ReadOutcome::Torn);
        assert!(
            consistent(snap.frames()),
            "a snapshot that never existed: {:x?}",
            snap.words()
        );
        assert!(snap.truncated());
        // The next read, with nothing moving, is whole again.
        assert_eq!(r.read(&mut snap), ReadOutcome::Changed);
        assert_eq!(snap.frames().collect::<Vec<_>>(), path);
    }

    /// A thread calls and returns as fast as it can (a random walk of
    /// depth, over the capacity at times, with unwinds) while this one
    /// reads: every snapshot, whole or a prefix kept from a torn read, is
    /// a stack that existed (each frame follows from the ones below it).
    #[test]
    fn every_snapshot_is_a_stack_that_existed() {
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
        let (mut whole, mut torn, mut deep, mut kept) = (0u64, 0u64, 0u64, 0u64);
        // The control: the frames read without any check, after a torn
        // read, to show that the consistency test does see torn stacks.
        let mut raw = vec![0u64; cap];
        let mut raw_broken = 0u64;
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_millis(500) || whole < 1000 {
            let outcome = r.read(&mut snap);
            assert!(
                consistent(snap.frames()),
                "a snapshot that never existed ({outcome:?}): {:x?}",
                snap.words()
            );
            match outcome {
                ReadOutcome::Torn => {
                    torn += 1;
                    kept += snap.frames().len() as u64;
                    let d = (r.cell[0].load(Ordering::Relaxed) & DEPTH) as usize;
                    let n = d.min(cap);
                    for (dst, src) in raw[..n].iter_mut().zip(&r.cell[1..=n]) {
                        *dst = src.load(Ordering::Relaxed) & PC_BITS;
                    }
                    raw_broken += u64::from(!consistent(raw[..n].iter().copied()));
                }
                _ => {
                    whole += 1;
                    deep += u64::from(snap.truncated());
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let ops = writer.join().unwrap();
        assert!(ops > 0 && whole >= 1000);
        // Figures for the curious (`--nocapture`); the assertions above
        // are the test.
        println!(
            "{ops} calls/returns; {whole} whole snapshots ({deep} deeper than the capacity), \
             {torn} torn kept as prefixes ({kept} frames); unchecked reads after a torn one: \
             {raw_broken} inconsistent"
        );
    }
}

/// The core under loom: every interleaving (and every value the memory
/// model lets a relaxed load see) of an interpreter's calls, returns and
/// unwind against one read. Each call pushes a frame that names its depth
/// and the path below it, so any snapshot mixing two paths is caught.
#[cfg(all(test, pcprof_loom))]
mod loom_tests {
    use super::*;

    /// The frame pushed at depth `d` on the path `tag` (the path's id).
    fn site(d: usize, tag: usize) -> usize {
        0x100 * (tag + 1) + d
    }

    #[test]
    fn a_read_racing_calls_and_returns_sees_a_stack_that_existed() {
        loom::model(|| {
            let mut h = StackHandle::new(2);
            h.call(site(0, 0));
            let r = h.reader();
            let writer = loom::thread::spawn(move || {
                // Path 0: [s(0,0)] -> [s(0,0), s(1,0)] -> back -> path 1:
                // [s(0,0), s(1,1)], then an unwind to the root and path 2.
                h.call(site(1, 0));
                h.ret();
                h.call(site(1, 1));
                h.set_depth(0);
                h.call(site(0, 2));
            });
            let mut snap = r.snapshot();
            r.read(&mut snap);
            let frames: Vec<u64> = snap.frames().collect();
            let existed: [&[u64]; 6] = [
                &[],
                &[0x100],
                &[0x100, 0x101],
                &[0x100, 0x201],
                &[0x300],
                &[0x100],
            ];
            // A whole snapshot is one of them; a prefix kept from a torn
            // read (marked truncated) is a prefix of one of them.
            let ok = if snap.truncated() {
                existed.iter().any(|p| p.starts_with(&frames))
            } else {
                existed.iter().any(|p| *p == &frames[..])
            };
            assert!(ok, "{frames:x?} never existed");
            writer.join().unwrap();
        });
    }
}
