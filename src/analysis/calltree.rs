//! Call trees of a profile with call stacks: the top-down tree of call
//! paths (`pcprof report --tree`, the HTML flame graph) and the callers and
//! callees of one function (`pcprof calls`).
//!
//! - Built from the profile's [`StackTree`](crate::analysis::StackTree):
//!   a node is a function reached by one path of caller functions (call
//!   sites merge: the tree is of functions), then the sample's own
//!   function as the leaf frame. Memory follows the distinct paths.
//! - Each node has its total (inclusive: samples at it or below) and self
//!   samples (samples whose leaf it is). A recursion is a chain of nodes,
//!   each counting a sample once.
//! - Callers and callees count a function once per sample however often
//!   it recurs: its total is [`Profile::inclusive_samples`]' figure, and a
//!   caller (callee) counts the samples in which it called (was called by)
//!   the function at least once.
//! - A truncated stack shows `[truncated]` where frames were lost, a frame
//!   outside every function `[unresolved]`. A profile without stacks is a
//!   tree of one level: every function at the root.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::analysis::convert::{TRUNCATED, UNRESOLVED};
use crate::analysis::profile::{Frame, Profile};
use crate::analysis::report::FunctionNames;

/// A node of a [`CallTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallNode {
    /// The caller node (the root is its own parent).
    pub parent: u32,
    /// The node's function (the root's is [`Frame::Outside`], never
    /// shown).
    pub frame: Frame,
    /// Samples at this node or below it.
    pub total: u64,
    /// Samples whose leaf function is this node.
    pub self_samples: u64,
    /// Where its children start in [`CallTree::children`]'s array.
    first_child: u32,
    /// How many children it has.
    child_count: u32,
}

/// The top-down call tree of a profile: node 0 is the root (every sample),
/// every other node comes after its parent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallTree {
    /// The nodes, the root first.
    pub nodes: Vec<CallNode>,
    /// Every node's children, one run per node (no allocation per node).
    child_ids: Vec<u32>,
}

impl CallTree {
    /// The call tree of `profile` (one level, every function at the root,
    /// when it has no call stacks).
    ///
    /// The stack tree's nodes are already one per distinct path: they are
    /// this tree's first nodes, same indices, and each (path, leaf
    /// function) of the leaves, which come sorted by path and function,
    /// is the path's child of that function (found by binary search) or a
    /// new node. Nothing is hashed: on millions of distinct paths a map
    /// cost more than the rest together.
    pub fn new(profile: &Profile) -> CallTree {
        let root = CallNode {
            parent: 0,
            frame: Frame::Outside,
            total: 0,
            self_samples: 0,
            first_child: 0,
            child_count: 0,
        };
        let mut nodes = vec![root];
        if profile.has_stacks() {
            let tree = &profile.stacks;
            nodes.extend(tree.nodes.iter().skip(1).map(|n| CallNode {
                parent: n.parent,
                frame: n.frame,
                ..root
            }));
            let (first, ids) = children_of(&nodes, |ids, nodes| {
                ids.sort_unstable_by_key(|&c| nodes[c as usize].frame)
            });
            let mut k = 0;
            let leaves = &tree.leaves;
            while k < leaves.len() {
                let (stack, function) = (leaves[k].stack, leaves[k].function);
                let mut samples = 0;
                while k < leaves.len() && leaves[k].stack == stack && leaves[k].function == function
                {
                    samples += leaves[k].samples;
                    k += 1;
                }
                let frame = function.map_or(Frame::Outside, Frame::Function);
                let run = first
                    .get(stack as usize)
                    .zip(first.get(stack as usize + 1))
                    .map_or(&[][..], |(&a, &b)| &ids[a as usize..b as usize]);
                let n = match run.binary_search_by_key(&frame, |&c| nodes[c as usize].frame) {
                    Ok(i) => run[i] as usize,
                    Err(_) => {
                        nodes.push(CallNode {
                            parent: if (stack as usize) < tree.nodes.len() {
                                stack
                            } else {
                                0
                            },
                            frame,
                            ..root
                        });
                        nodes.len() - 1
                    }
                };
                nodes[n].self_samples += samples;
            }
        } else {
            for (i, f) in profile.functions.iter().enumerate() {
                if f.samples > 0 {
                    nodes.push(CallNode {
                        frame: Frame::Function(i),
                        self_samples: f.samples,
                        ..root
                    });
                }
            }
            if profile.unresolved > 0 {
                nodes.push(CallNode {
                    self_samples: profile.unresolved,
                    ..root
                });
            }
        }
        // Totals bottom-up: children come after their parents.
        for n in (0..nodes.len()).rev() {
            nodes[n].total += nodes[n].self_samples;
            if n > 0 {
                let (p, t) = (nodes[n].parent as usize, nodes[n].total);
                nodes[p].total += t;
            }
        }
        let (first, child_ids) = children_of(&nodes, |ids, nodes| {
            ids.sort_unstable_by(|&a, &b| {
                let (a, b) = (&nodes[a as usize], &nodes[b as usize]);
                b.total.cmp(&a.total).then(a.frame.cmp(&b.frame))
            })
        });
        for (k, n) in nodes.iter_mut().enumerate() {
            n.first_child = first[k];
            n.child_count = first[k + 1] - first[k];
        }
        CallTree { nodes, child_ids }
    }

    /// The children of node `k`, by total samples (most first), then
    /// frame.
    pub fn children(&self, k: u32) -> &[u32] {
        self.nodes.get(k as usize).map_or(&[], |n| {
            let a = n.first_child as usize;
            self.child_ids
                .get(a..a + n.child_count as usize)
                .unwrap_or(&[])
        })
    }
}

/// Every node's children as one array: node `k`'s are
/// `ids[first[k]..first[k + 1]]`, each run ordered by `order`.
fn children_of(
    nodes: &[CallNode],
    order: impl Fn(&mut [u32], &[CallNode]),
) -> (Vec<u32>, Vec<u32>) {
    let mut first = vec![0u32; nodes.len() + 1];
    for n in nodes.iter().skip(1) {
        first[n.parent as usize + 1] += 1;
    }
    for k in 0..nodes.len() {
        first[k + 1] += first[k];
    }
    let mut at = first.clone();
    let mut ids = vec![0u32; nodes.len().saturating_sub(1)];
    for (k, n) in nodes.iter().enumerate().skip(1) {
        let slot = &mut at[n.parent as usize];
        ids[*slot as usize] = k as u32;
        *slot += 1;
    }
    for k in 0..nodes.len() {
        order(&mut ids[first[k] as usize..first[k + 1] as usize], nodes);
    }
    (first, ids)
}

/// The name of a frame of a call tree.
pub fn frame_name(names: &FunctionNames<'_>, functions: usize, frame: Frame) -> String {
    match frame {
        Frame::Function(i) if i < functions => names.name(i),
        Frame::Function(_) | Frame::Outside => UNRESOLVED.to_string(),
        Frame::Truncated => TRUNCATED.to_string(),
    }
}

/// Writes `profile`'s call tree, top-down: a line per node whose total
/// reaches `threshold` percent of all samples and whose depth (1 for an
/// outermost frame) is at most `max_depth` (`total% self% name`, indented
/// by depth), children by total; then how many nodes were left out.
pub fn write_call_tree(
    out: &mut dyn Write,
    profile: &Profile,
    threshold: f64,
    max_depth: usize,
) -> io::Result<()> {
    let tree = CallTree::new(profile);
    let names = FunctionNames::new(profile);
    let n = profile.functions.len();
    if profile.has_stacks() {
        writeln!(
            out,
            "call tree: {} samples, {} with a truncated stack; nodes under {threshold}% left out",
            profile.total_samples, profile.stacks.truncated_samples
        )?;
    } else {
        writeln!(
            out,
            "call tree: {} samples, no call stacks (each function at the root); nodes under \
             {threshold}% left out",
            profile.total_samples
        )?;
    }
    writeln!(out, " total%   self%  function")?;
    let mut shown = 0usize;
    // Depth-first, children by total: (node, depth).
    let mut todo: Vec<(u32, usize)> = tree.children(0).iter().rev().map(|&c| (c, 0)).collect();
    while let Some((k, depth)) = todo.pop() {
        let node = &tree.nodes[k as usize];
        if profile.percent(node.total) < threshold || depth >= max_depth {
            continue;
        }
        shown += 1;
        writeln!(
            out,
            "{:6.2}% {:6.2}%  {:indent$}{}",
            profile.percent(node.total),
            profile.percent(node.self_samples),
            "",
            frame_name(&names, n, node.frame),
            indent = depth * 2
        )?;
        todo.extend(tree.children(k).iter().rev().map(|&c| (c, depth + 1)));
    }
    // A node left out takes its subtree with it: every node not shown.
    let left_out = tree.nodes.len() - 1 - shown;
    if left_out > 0 && max_depth == usize::MAX {
        writeln!(out, "({left_out} nodes under {threshold}% not shown)")?;
    } else if left_out > 0 {
        writeln!(
            out,
            "({left_out} nodes under {threshold}% or deeper than {max_depth} not shown)"
        )?;
    }
    Ok(())
}

/// The callers and callees of a set of functions (one function, or every
/// function of one name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calls {
    /// Samples in which the function is on the stack or the leaf, once per
    /// sample.
    pub total: u64,
    /// Samples whose leaf it is.
    pub self_samples: u64,
    /// Each caller with the samples in which it called the function, most
    /// first; `None` counts the samples in which the function was the
    /// outermost frame (no caller).
    pub callers: Vec<(Option<Frame>, u64)>,
    /// Each callee with the samples in which the function called it, most
    /// first.
    pub callees: Vec<(Frame, u64)>,
}

impl Calls {
    /// The callers and callees of the functions `of` (indices in
    /// [`Profile::functions`]) in `profile`.
    pub fn new(profile: &Profile, of: &[usize]) -> Calls {
        let is_it = |f: Frame| matches!(f, Frame::Function(i) if of.contains(&i));
        let mut calls = Calls::default();
        let mut callers: HashMap<Option<Frame>, u64> = HashMap::new();
        let mut callees: HashMap<Frame, u64> = HashMap::new();
        let mut path: Vec<Frame> = Vec::new();
        let (mut seen_callers, mut seen_callees) = (Vec::new(), Vec::new());
        let mut add = |path: &[Frame], samples: u64, calls: &mut Calls| {
            seen_callers.clear();
            seen_callees.clear();
            for (k, &f) in path.iter().enumerate() {
                if !is_it(f) {
                    continue;
                }
                let caller = k.checked_sub(1).map(|c| path[c]);
                if !seen_callers.contains(&caller) {
                    seen_callers.push(caller);
                    *callers.entry(caller).or_insert(0) += samples;
                }
                if let Some(&callee) = path.get(k + 1)
                    && !seen_callees.contains(&callee)
                {
                    seen_callees.push(callee);
                    *callees.entry(callee).or_insert(0) += samples;
                }
            }
            if path.iter().any(|&f| is_it(f)) {
                calls.total += samples;
            }
            if path.last().is_some_and(|&f| is_it(f)) {
                calls.self_samples += samples;
            }
        };
        if profile.has_stacks() {
            let tree = &profile.stacks;
            for leaf in &tree.leaves {
                path.clear();
                path.extend(tree.path(leaf.stack));
                path.push(leaf.function.map_or(Frame::Outside, Frame::Function));
                add(&path, leaf.samples, &mut calls);
            }
        } else {
            for &i in of {
                if let Some(f) = profile.functions.get(i) {
                    add(&[Frame::Function(i)], f.samples, &mut calls);
                }
            }
        }
        calls.callers = callers.into_iter().collect();
        calls
            .callers
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        calls.callees = callees.into_iter().collect();
        calls
            .callees
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        calls
    }
}

/// The functions of `profile` that `name` names: those of exactly that
/// name, else those whose name contains it when they all share one name.
/// An error names the candidates when `name` is ambiguous or unknown.
pub fn find_function(profile: &Profile, name: &str) -> Result<Vec<usize>, String> {
    let exact: Vec<usize> = (0..profile.functions.len())
        .filter(|&i| profile.functions[i].name == name)
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let within: Vec<usize> = (0..profile.functions.len())
        .filter(|&i| profile.functions[i].name.contains(name))
        .collect();
    let mut distinct: Vec<&str> = within
        .iter()
        .map(|&i| profile.functions[i].name.as_str())
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    match distinct.len() {
        0 => Err(format!("no function of the profile is named {name:?}")),
        1 => Ok(within),
        k => {
            let shown: Vec<&str> = distinct.iter().take(10).copied().collect();
            Err(format!(
                "{name:?} matches {k} functions: {}{}",
                shown.join(", "),
                if k > 10 { ", ..." } else { "" }
            ))
        }
    }
}

/// Writes the callers and callees of the functions `of` (named `name`):
/// their total and self shares, then each caller and each callee with the
/// share of all samples in which it called them (was called by them).
pub fn write_calls(
    out: &mut dyn Write,
    profile: &Profile,
    of: &[usize],
    name: &str,
) -> io::Result<()> {
    let calls = Calls::new(profile, of);
    let names = FunctionNames::new(profile);
    let n = profile.functions.len();
    writeln!(
        out,
        "{name}: total {:.2}% ({} samples), self {:.2}% ({} samples) of {} samples",
        profile.percent(calls.total),
        calls.total,
        profile.percent(calls.self_samples),
        calls.self_samples,
        profile.total_samples
    )?;
    if !profile.has_stacks() {
        writeln!(out, "the profile has no call stacks: no callers or callees")?;
        return Ok(());
    }
    writeln!(
        out,
        "\ncallers (share of all samples in which each called it):"
    )?;
    if calls.callers.is_empty() {
        writeln!(out, "  none")?;
    }
    for &(caller, samples) in &calls.callers {
        let who = caller.map_or_else(
            || "[root] (no caller: the outermost frame)".to_string(),
            |f| frame_name(&names, n, f),
        );
        writeln!(out, "{:6.2}% {samples:>9}  {who}", profile.percent(samples))?;
    }
    writeln!(
        out,
        "\ncallees (share of all samples in which it called each):"
    )?;
    if calls.callees.is_empty() {
        writeln!(out, "  none")?;
    }
    for &(callee, samples) in &calls.callees {
        writeln!(
            out,
            "{:6.2}% {samples:>9}  {}",
            profile.percent(samples),
            frame_name(&names, n, callee)
        )?;
    }
    Ok(())
}
