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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Child nodes, by total samples (most first), then frame.
    pub children: Vec<u32>,
}

/// The top-down call tree of a profile: node 0 is the root (every sample),
/// every other node comes after its parent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallTree {
    /// The nodes, the root first.
    pub nodes: Vec<CallNode>,
}

impl CallTree {
    /// The call tree of `profile` (one level, every function at the root,
    /// when it has no call stacks).
    pub fn new(profile: &Profile) -> CallTree {
        let mut nodes = vec![CallNode {
            parent: 0,
            frame: Frame::Outside,
            total: 0,
            self_samples: 0,
            children: Vec::new(),
        }];
        let mut index: HashMap<(u32, Frame), u32> = HashMap::new();
        let mut child = |nodes: &mut Vec<CallNode>, parent: u32, frame: Frame| -> u32 {
            *index.entry((parent, frame)).or_insert_with(|| {
                nodes.push(CallNode {
                    parent,
                    frame,
                    total: 0,
                    self_samples: 0,
                    children: Vec::new(),
                });
                (nodes.len() - 1) as u32
            })
        };
        if profile.has_stacks() {
            let tree = &profile.stacks;
            // Each stack node's call node (a parent precedes its children).
            let mut of_stack: Vec<u32> = Vec::with_capacity(tree.nodes.len());
            for (k, n) in tree.nodes.iter().enumerate() {
                let node = if k == 0 {
                    0
                } else {
                    let parent = of_stack.get(n.parent as usize).copied().unwrap_or(0);
                    child(&mut nodes, parent, n.frame)
                };
                of_stack.push(node);
            }
            for leaf in &tree.leaves {
                let parent = of_stack.get(leaf.stack as usize).copied().unwrap_or(0);
                let frame = leaf.function.map_or(Frame::Outside, Frame::Function);
                let n = child(&mut nodes, parent, frame);
                nodes[n as usize].self_samples += leaf.samples;
            }
        } else {
            for (i, f) in profile.functions.iter().enumerate() {
                if f.samples > 0 {
                    let n = child(&mut nodes, 0, Frame::Function(i));
                    nodes[n as usize].self_samples += f.samples;
                }
            }
            if profile.unresolved > 0 {
                let n = child(&mut nodes, 0, Frame::Outside);
                nodes[n as usize].self_samples += profile.unresolved;
            }
        }
        // Totals bottom-up: children come after their parents.
        for n in (0..nodes.len()).rev() {
            nodes[n].total += nodes[n].self_samples;
            if n > 0 {
                let (p, t) = (nodes[n].parent as usize, nodes[n].total);
                nodes[p].total += t;
                nodes[p].children.push(n as u32);
            }
        }
        let keys: Vec<(u64, Frame)> = nodes.iter().map(|n| (n.total, n.frame)).collect();
        for n in &mut nodes {
            n.children.sort_by(|&a, &b| {
                let (ta, fa) = keys[a as usize];
                let (tb, fb) = keys[b as usize];
                tb.cmp(&ta).then(fa.cmp(&fb))
            });
        }
        CallTree { nodes }
    }
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
/// reaches `threshold` percent of all samples (`total% self% name`,
/// indented by depth), children by total; then how many nodes were left
/// out.
pub fn write_call_tree(out: &mut dyn Write, profile: &Profile, threshold: f64) -> io::Result<()> {
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
    let mut left_out = 0usize;
    // Depth-first, children by total: (node, depth).
    let mut todo: Vec<(u32, usize)> = tree.nodes[0]
        .children
        .iter()
        .rev()
        .map(|&c| (c, 0))
        .collect();
    while let Some((k, depth)) = todo.pop() {
        let node = &tree.nodes[k as usize];
        if profile.percent(node.total) < threshold {
            left_out += subtree_size(&tree, k);
            continue;
        }
        writeln!(
            out,
            "{:6.2}% {:6.2}%  {:indent$}{}",
            profile.percent(node.total),
            profile.percent(node.self_samples),
            "",
            frame_name(&names, n, node.frame),
            indent = depth * 2
        )?;
        todo.extend(node.children.iter().rev().map(|&c| (c, depth + 1)));
    }
    if left_out > 0 {
        writeln!(out, "({left_out} nodes under {threshold}% not shown)")?;
    }
    Ok(())
}

fn subtree_size(tree: &CallTree, k: u32) -> usize {
    let mut count = 0;
    let mut todo = vec![k];
    while let Some(k) = todo.pop() {
        count += 1;
        todo.extend(&tree.nodes[k as usize].children);
    }
    count
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
    /// first; [`Frame::Outside`] in `None`'s place is never used: `None`
    /// stands for "the function was the outermost frame".
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
