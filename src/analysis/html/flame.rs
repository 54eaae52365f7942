//! The flame graph of a profile with call stacks, drawn as an icicle (the
//! outermost callers on top).
//!
//! - Built from the call tree ([`CallTree`]): a frame per call path of
//!   functions, as wide as its total samples, its children below it by
//!   total; a recursion is a column of frames.
//! - Each frame is a `<div>` placed in percent here, so the graph reads
//!   without the script; the script zooms (click a frame: it spans the
//!   width, its callers stay above), searches (names containing the text
//!   are marked, with their share of all samples, a recursion counted
//!   once) and shows the hovered frame's counts. Counts and names travel
//!   in `data-*` attributes, escaped, never as code.
//! - Bounded: frames under [`HtmlOptions::flame_min_share`] of all samples
//!   are not drawn, nor any past the hottest
//!   [`HtmlOptions::flame_max_frames`]; the section says how many were left
//!   out. A frame's children are always hotter than the cut, so what is
//!   drawn is a whole tree.
//! - A profile without stacks has no such section (the page renders as
//!   before).

use std::fmt::Write as _;

use super::HtmlOptions;
use crate::analysis::calltree::{CallTree, frame_name};
use crate::analysis::profile::{Frame, Profile};
use crate::analysis::report::FunctionNames;
use crate::analysis::text::{escape, share, thousands};

/// Height of a row of frames, in CSS pixels.
const ROW: usize = 18;

pub(super) fn flame_graph(out: &mut String, profile: &Profile, options: &HtmlOptions) {
    if !profile.has_stacks() {
        return;
    }
    let tree = CallTree::new(profile);
    let names = FunctionNames::new(profile);
    let total = tree.nodes[0].total.max(1);
    // The cut: under the share asked, or past the most frames allowed.
    let min_samples = (options.flame_min_share / 100.0 * total as f64)
        .ceil()
        .max(1.0) as u64;
    let mut totals: Vec<u64> = tree.nodes[1..]
        .iter()
        .map(|n| n.total)
        .filter(|&t| t >= min_samples)
        .collect();
    let mut cut = min_samples;
    if totals.len() > options.flame_max_frames {
        totals.sort_unstable_by(|a, b| b.cmp(a));
        // Strictly hotter than the first frame left out: ties go together.
        cut = totals[options.flame_max_frames].saturating_add(1).max(cut);
    }
    let left_out: Vec<u64> = tree.nodes[1..]
        .iter()
        .map(|n| n.total)
        .filter(|&t| t < cut)
        .collect();

    let _ = write!(
        out,
        "<section id=\"flame-section\">\n<h2>Flame graph<span class=\"sub\">call paths top-down: \
         a frame's width is its total samples; click to zoom, type to search</span></h2>\n\
         <div class=\"flame-tools\"><input id=\"flame-search\" type=\"search\" \
         placeholder=\"Search functions\" aria-label=\"Search the flame graph\">\
         <button id=\"flame-reset\" type=\"button\">Reset zoom</button>\
         <span id=\"flame-matched\"></span></div>\n"
    );
    // Frames depth-first, children by total; x in samples from the left.
    let mut frames = String::new();
    let mut depth_max = 0usize;
    let mut drawn = 0usize;
    let mut todo: Vec<(u32, usize, u64)> = vec![(0, 0, 0)];
    let n_functions = profile.functions.len();
    while let Some((k, depth, x)) = todo.pop() {
        let node = &tree.nodes[k as usize];
        depth_max = depth_max.max(depth);
        drawn += 1;
        let name = if k == 0 {
            "all".to_string()
        } else {
            frame_name(&names, n_functions, node.frame)
        };
        let tip = format!(
            "{name}\ntotal {} samples ({:.2}%) · self {} ({:.2}%)",
            thousands(node.total),
            share(node.total, total),
            thousands(node.self_samples),
            share(node.self_samples, total),
        );
        let colour = match node.frame {
            _ if k == 0 => "#c9cdd4".to_string(),
            Frame::Function(_) => colour_of(&name),
            Frame::Outside | Frame::Truncated => "#adb5bd".to_string(),
        };
        let _ = writeln!(
            frames,
            "<div class=\"fl\" data-d=\"{depth}\" data-x=\"{x}\" data-t=\"{t}\" data-s=\"{s}\" \
             data-name=\"{ename}\" title=\"{etip}\" style=\"left:{left:.4}%;width:{width:.4}%;\
             top:{top}px;background:{colour}\">{ename}</div>",
            t = node.total,
            s = node.self_samples,
            ename = escape(&name),
            etip = escape(&tip),
            left = 100.0 * x as f64 / total as f64,
            width = 100.0 * node.total as f64 / total as f64,
            top = depth * ROW,
        );
        // Children pushed in reverse so the hottest is drawn first.
        let mut at = x;
        let mut kids = Vec::new();
        for &c in tree.children(k) {
            let t = tree.nodes[c as usize].total;
            if t >= cut {
                kids.push((c, depth + 1, at));
                at += t;
            }
        }
        todo.extend(kids.into_iter().rev());
    }
    let _ = writeln!(
        out,
        "<div id=\"flame\" class=\"flame\" data-total=\"{total}\" style=\"height:{}px\">\n{frames}</div>",
        (depth_max + 1) * ROW
    );
    out.push_str(
        "<p id=\"flame-info\" class=\"note\">Hover a frame for its counts; click it to zoom.</p>\n",
    );
    let _ = write!(
        out,
        "<p class=\"note flame-cut\">{} frames drawn (callers on top, the sample's function \
         at the bottom; <code>[truncated]</code> where a stack lost frames). ",
        thousands(drawn as u64)
    );
    if left_out.is_empty() {
        out.push_str("Every call path is drawn.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "{} frames under {} samples ({:.2}% of all) are not drawn: their width is left \
             blank under their caller.</p>",
            thousands(left_out.len() as u64),
            thousands(cut),
            share(cut, total),
        );
    }
    out.push_str("</section>\n");
}

/// A warm colour that depends on the name only, so a function keeps its
/// colour everywhere in the graph (FNV-1a of the name).
fn colour_of(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let hue = h % 50;
    let light = 58 + (h >> 8) % 14;
    format!("hsl({hue},78%,{light}%)")
}
