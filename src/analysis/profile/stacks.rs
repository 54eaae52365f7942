//! Call stacks, aggregated: the tree of call paths that samples ran in, and
//! the samples of each (path, leaf instruction).
//!
//! - **Memory follows the distinct stacks**, never the samples: a path is a
//!   node of a tree ([`StackTree::nodes`], node 0 the root), each node a
//!   caller's frame; a sample adds one to the count of its (node, leaf
//!   function, leaf offset) ([`StackTree::leaves`]).
//! - **Frames are functions**: a file's frame is a call site's PC, resolved
//!   to its function at the time of the first sample that uses it (a file's
//!   stack is resolved once, so a frame in code unloaded and replaced at
//!   the same address later keeps its first function). Paths that resolve
//!   alike are one node, whatever their file ids.
//! - **Truncated stacks** end in [`Frame::Truncated`]: the frames above it
//!   are the outermost ones, and frames between it and the leaf are lost.
//! - A profile without stacks has an empty tree: nothing is kept.
//! - What a call tree, a flame graph or an export needs: walk
//!   [`StackTree::leaves`] with [`StackTree::path`] (root first), or the
//!   nodes' parents; [`StackTree::inclusive`] gives each function's samples
//!   counted once per sample however often it recurs.

use super::timeline::FoldMap;
use crate::format::{StackNode, TRUNCATED_FRAME};

/// One frame of an aggregated call path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frame {
    /// A call from this function (index in [`super::Profile::functions`]).
    Function(usize),
    /// A call site outside every function of the profile.
    Outside,
    /// Frames were lost here (deeper than the interpreter's capacity, or a
    /// stack that kept changing while the sampler read it): the frames
    /// above are the outermost ones, the leaf is exact.
    Truncated,
}

/// A node of the call tree: `parent`'s path, then `frame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNode {
    /// The node this one extends (0, the root, for an outermost frame;
    /// the root is its own parent).
    pub parent: u32,
    /// The caller's frame (the root's is [`Frame::Outside`], never shown).
    pub frame: Frame,
}

/// The samples that ran at one leaf under one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackLeaf {
    /// The path of callers: a node of [`StackTree::nodes`] (0: none).
    pub stack: u32,
    /// The function the sample's PC was in (`None`: outside every
    /// function).
    pub function: Option<usize>,
    /// The PC's offset in that function (0 when `None`).
    pub offset: u64,
    /// Samples.
    pub samples: u64,
}

/// The call stacks of a profile (empty when it has none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StackTree {
    /// Node 0 is the root (no caller); every other node's parent is below
    /// it, so a node's path is known before its children's.
    pub nodes: Vec<PathNode>,
    /// Every (path, leaf) with samples, ordered by path node, function,
    /// offset. When the profile has stacks, every counted sample is here
    /// (samples of interpreters without a shadow stack under the root), so
    /// the leaves sum to [`super::Profile::total_samples`].
    pub leaves: Vec<StackLeaf>,
    /// Samples whose stack was truncated.
    pub truncated_samples: u64,
}

impl StackTree {
    /// Whether the profile has stacks at all.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The frames of node `node`, root first (the root itself left out).
    pub fn path(&self, node: u32) -> Vec<Frame> {
        let mut v = Vec::new();
        let mut n = node as usize;
        while n != 0 {
            let Some(p) = self.nodes.get(n) else { break };
            v.push(p.frame);
            n = p.parent as usize;
        }
        v.reverse();
        v
    }

    /// The frames of `leaf`'s samples leaf first, as pprof and most
    /// profilers order a sample's locations: its own function
    /// ([`Frame::Outside`] when its PC fell outside every function), then
    /// each caller from the innermost to the outermost. Allocates nothing.
    pub fn leaf_first(&self, leaf: &StackLeaf) -> impl Iterator<Item = Frame> + '_ {
        let own = leaf.function.map_or(Frame::Outside, Frame::Function);
        let mut n = leaf.stack as usize;
        std::iter::once(own).chain(std::iter::from_fn(move || {
            if n == 0 {
                return None;
            }
            let p = self.nodes.get(n)?;
            n = p.parent as usize;
            Some(p.frame)
        }))
    }

    /// Samples of each function counted once per sample in which it is on
    /// the stack or the leaf (inclusive, "total"); `functions` is the
    /// number of functions of the profile.
    pub fn inclusive(&self, functions: usize) -> Vec<u64> {
        let mut total = vec![0u64; functions];
        // The last leaf that counted each function: a recursion counts once.
        let mut stamp = vec![usize::MAX; functions];
        let mut path = Vec::new();
        for (k, leaf) in self.leaves.iter().enumerate() {
            path.clear();
            let mut n = leaf.stack as usize;
            while n != 0 {
                let Some(p) = self.nodes.get(n) else { break };
                path.push(p.frame);
                n = p.parent as usize;
            }
            let fs = path
                .iter()
                .filter_map(|f| match f {
                    Frame::Function(i) => Some(*i),
                    _ => None,
                })
                .chain(leaf.function);
            for f in fs {
                if let Some(s) = stamp.get_mut(f)
                    && *s != k
                {
                    *s = k;
                    total[f] += leaf.samples;
                }
            }
        }
        total
    }
}

/// A packed frame in the builder: a function index, or one of these.
const OUTSIDE: u32 = u32::MAX - 1;
const TRUNCATED: u32 = u32::MAX;

fn pack(frame: Frame) -> u32 {
    match frame {
        // Function indices fit in 32 bits less the markers (see `Tally`).
        Frame::Function(i) => i as u32,
        Frame::Outside => OUTSIDE,
        Frame::Truncated => TRUNCATED,
    }
}

fn unpack(frame: u32) -> Frame {
    match frame {
        OUTSIDE => Frame::Outside,
        TRUNCATED => Frame::Truncated,
        i => Frame::Function(i as usize),
    }
}

/// The leaf key of a run: (node << 32 | function), offset.
type LeafKey = (u64, u64);

/// An interpreter's run of samples at one (node, function, offset), not yet
/// in the map.
#[derive(Clone, Copy, Default)]
struct Run {
    key: LeafKey,
    samples: u64,
}

/// Builds a [`StackTree`] from a file's stacks and samples (and resolves
/// a file's stacks for the streaming exports, `convert/walk.rs`).
///
/// Per sample, O(1) without SipHash: the file's stack id is an index
/// (`resolved`, ids are dense), and each interpreter's run of samples at
/// one (node, leaf) is counted in place and moved to the map when the leaf
/// changes, so a phase of samples costs one lookup. Nodes are 8 bytes
/// (parent, packed frame) while building, their index keyed by one `u64`.
#[derive(Default)]
pub(crate) struct StackBuilder {
    /// The file's stacks by id - 1: (parent id, frame PC).
    file: Vec<(u32, u64)>,
    /// The tree node of each file stack, by id - 1, once resolved (0: not
    /// yet; file stack ids never map to the root unless empty).
    resolved: Vec<u32>,
    /// (parent, packed frame) of each node; node 0 is the root.
    nodes: Vec<(u32, u32)>,
    /// (parent << 32 | packed frame) → node.
    index: FoldMap<u64, u32>,
    /// (node << 32 | function or `u32::MAX`, offset) → samples, for
    /// samples with a stack.
    leaves: FoldMap<LeafKey, u64>,
    /// Per interpreter slot: its current run.
    runs: Vec<Run>,
    truncated: u64,
    /// Samples with a stack were seen.
    pub(super) any: bool,
    /// The walk's scratch: file ids to resolve, innermost first.
    todo: Vec<u32>,
}

impl StackBuilder {
    /// Stacks introduced by the file.
    pub(crate) fn introduce(&mut self, nodes: &[StackNode]) {
        for n in nodes {
            // The reader checks that ids follow one another.
            if n.id as usize == self.file.len() + 1 {
                self.file.push((n.parent, n.frame));
                self.resolved.push(0);
            }
        }
    }

    /// The tree node of file stack `id`, resolving its frames (with
    /// `function_of`, at this sample's time) on first use.
    #[inline]
    pub(crate) fn node(&mut self, id: u32, function_of: impl FnMut(u64) -> Option<usize>) -> u32 {
        match self.resolved.get((id as usize).wrapping_sub(1)) {
            Some(&r) if r != 0 => r,
            _ => self.resolve(id, function_of),
        }
    }

    #[cold]
    fn resolve(&mut self, id: u32, mut function_of: impl FnMut(u64) -> Option<usize>) -> u32 {
        if self.nodes.is_empty() {
            self.nodes.push((0, OUTSIDE));
        }
        self.todo.clear();
        let mut at = id;
        // Walk up to a resolved ancestor (or the root).
        while at != 0 {
            let k = at as usize - 1;
            let Some(&r) = self.resolved.get(k) else {
                break;
            };
            if r != 0 {
                break;
            }
            self.todo.push(at);
            at = self.file[k].0;
        }
        let mut node = if at == 0 {
            0
        } else {
            self.resolved.get(at as usize - 1).copied().unwrap_or(0)
        };
        while let Some(id) = self.todo.pop() {
            let (_, pc) = self.file[id as usize - 1];
            let frame = if pc == TRUNCATED_FRAME {
                TRUNCATED
            } else {
                function_of(pc).map_or(OUTSIDE, |i| pack(Frame::Function(i)))
            };
            let next = self.nodes.len() as u32;
            let parent = node;
            node = *self
                .index
                .entry(u64::from(parent) << 32 | u64::from(frame))
                .or_insert_with(|| {
                    self.nodes.push((parent, frame));
                    next
                });
            self.resolved[id as usize - 1] = node;
        }
        node
    }

    /// The frames of tree node `node` (from [`StackBuilder::node`]), root
    /// first, into `out` (cleared first).
    #[cfg(feature = "export")]
    pub(crate) fn path_into(&self, node: u32, out: &mut Vec<Frame>) {
        out.clear();
        let mut n = node as usize;
        while n != 0 {
            let Some(&(parent, frame)) = self.nodes.get(n) else {
                break;
            };
            out.push(unpack(frame));
            n = parent as usize;
        }
        out.reverse();
    }

    /// Tree node `node`'s parent node and frame (the root: itself, and
    /// [`Frame::Outside`]).
    #[cfg(feature = "export")]
    pub(crate) fn parent_and_frame(&self, node: u32) -> (u32, Frame) {
        self.nodes
            .get(node as usize)
            .map_or((0, Frame::Outside), |&(p, f)| (p, unpack(f)))
    }

    /// A sample of interpreter slot `slot` under tree node `node` at
    /// `function` (`u32::MAX`: outside) and `offset`.
    #[inline]
    pub(super) fn count(&mut self, slot: usize, node: u32, function: u32, offset: u64) {
        self.any = true;
        let key = (u64::from(node) << 32 | u64::from(function), offset);
        if slot >= self.runs.len() {
            self.runs.resize(slot + 1, Run::default());
        }
        let run = &mut self.runs[slot];
        if run.key == key && run.samples > 0 {
            run.samples += 1;
            return;
        }
        let done = std::mem::replace(run, Run { key, samples: 1 });
        self.flush(done);
    }

    fn flush(&mut self, run: Run) {
        if run.samples == 0 {
            return;
        }
        let node = (run.key.0 >> 32) as usize;
        if self.nodes.get(node).map(|n| n.1) == Some(TRUNCATED) {
            self.truncated += run.samples;
        }
        *self.leaves.entry(run.key).or_insert(0) += run.samples;
    }

    /// The tree; `flat` gives the samples of each function without a stack:
    /// every (function, offset, samples) counted, minus those with a stack.
    pub(super) fn finish(
        mut self,
        flat: impl Iterator<Item = (usize, u64, u64)>,
        unresolved: u64,
    ) -> StackTree {
        if !self.any {
            return StackTree::default();
        }
        for run in std::mem::take(&mut self.runs) {
            self.flush(run);
        }
        // Done with the index and the file's stacks before the tree's own
        // nodes are made.
        drop(std::mem::take(&mut self.index));
        drop(std::mem::take(&mut self.file));
        drop(std::mem::take(&mut self.resolved));
        let mut stacked: FoldMap<(u64, u64), u64> = FoldMap::default();
        let mut stacked_outside = 0;
        for (&(nf, o), &n) in &self.leaves {
            let f = nf as u32;
            if f == u32::MAX {
                stacked_outside += n;
            } else {
                *stacked.entry((u64::from(f), o)).or_insert(0) += n;
            }
        }
        let mut leaves: Vec<StackLeaf> = self
            .leaves
            .into_iter()
            .map(|((nf, offset), samples)| {
                let f = nf as u32;
                StackLeaf {
                    stack: (nf >> 32) as u32,
                    function: (f != u32::MAX).then_some(f as usize),
                    offset,
                    samples,
                }
            })
            .collect();
        for (f, offset, n) in flat {
            let with = stacked.get(&(f as u64, offset)).copied().unwrap_or(0);
            if n > with {
                leaves.push(StackLeaf {
                    stack: 0,
                    function: Some(f),
                    offset,
                    samples: n - with,
                });
            }
        }
        if unresolved > stacked_outside {
            leaves.push(StackLeaf {
                stack: 0,
                function: None,
                offset: 0,
                samples: unresolved - stacked_outside,
            });
        }
        leaves.sort_by_key(|l| (l.stack, l.function.map_or(u64::MAX, |f| f as u64), l.offset));
        let nodes = self
            .nodes
            .into_iter()
            .map(|(parent, frame)| PathNode {
                parent,
                frame: unpack(frame),
            })
            .collect();
        StackTree {
            nodes,
            leaves,
            truncated_samples: self.truncated,
        }
    }
}
