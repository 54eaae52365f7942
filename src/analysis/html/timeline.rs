//! The timeline: which function ran when, one inline-SVG lane per
//! interpreter.
//!
//! - Each lane is a bar per bucket, stacked by function: the
//!   [`TOP_FUNCTIONS`] hottest functions of the profile have a colour each
//!   (the legend names them), every other sample is grey "other"; a bar's
//!   `<title>` gives its time, samples and functions.
//! - At most [`MAX_LANES`] lanes: the least busy interpreters past that are
//!   summed into one, so a thousand threads stay one readable picture.
//! - A Pulley-format file has no times: its buckets are runs of samples in
//!   file order, and the section says so.
//! - Axis ticks are "nice" steps (1, 2 or 5 times a power of ten).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::analysis::profile::Profile;
use crate::analysis::text::{duration_text, escape, thousands, truncate};

/// Lanes drawn in the timeline; further interpreters are summed into one.
const MAX_LANES: usize = 16;
/// Functions with a colour of their own; the rest are "other".
const TOP_FUNCTIONS: usize = 8;
/// Function colours, hottest first.
const PALETTE: [&str; TOP_FUNCTIONS] = [
    "#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#d6336c", "#5c7cfa",
];
/// The colour of "other": the remaining functions and code outside any.
const OTHER_COLOUR: &str = "#adb5bd";

pub(super) fn timeline(out: &mut String, profile: &Profile) {
    let t = &profile.timeline;
    let by_index = t.by_sample_index;
    let _ = write!(
        out,
        "<section id=\"timeline\">\n<h2>Timeline<span class=\"sub\">which function ran when, per interpreter{}</span></h2>\n",
        if by_index { ", in file order" } else { "" }
    );
    if by_index {
        out.push_str(
            "<p class=\"note no-times\">Pulley-format files carry no times: samples in file order. \
             Each bar is a run of consecutive samples, not a span of time.</p>\n",
        );
    } else if profile.converted_from_pulley() {
        // Converted files carry evenly spaced synthetic times: the axis is
        // the sample order, scaled, not a clock.
        out.push_str(
            "<p class=\"note no-times\">Converted from a Pulley-format file, which carries no times: \
             the times are synthetic (samples evenly spaced in file order).</p>\n",
        );
    }
    let buckets = t.len();
    if buckets == 0 || t.bucket_ns == 0 {
        out.push_str("<p class=\"note\">No samples.</p>\n</section>\n");
        return;
    }

    // Colours: the hottest functions of the whole profile.
    let mut hot: Vec<usize> = (0..profile.functions.len())
        .filter(|&i| profile.functions[i].samples > 0)
        .collect();
    hot.sort_by_key(|&i| (std::cmp::Reverse(profile.functions[i].samples), i));
    hot.truncate(TOP_FUNCTIONS);
    let class_of: HashMap<usize, usize> = hot.iter().enumerate().map(|(c, &f)| (f, c)).collect();
    let other = hot.len();
    let colour = |c: usize| PALETTE.get(c).copied().unwrap_or(OTHER_COLOUR);
    let name_of = |c: usize| -> &str {
        hot.get(c)
            .map_or("other", |&f| profile.functions[f].name.as_str())
    };

    // Lanes: one per interpreter, the least busy merged past MAX_LANES.
    // The timeline is sparse (a million interpreters are a million cells):
    // only the lanes drawn are made dense, per bucket and colour.
    let labels: HashMap<u32, &str> = profile
        .interpreters
        .iter()
        .filter_map(|i| Some((i.id, i.label.as_deref()?)))
        .collect();
    let label_of = |id: u32| -> String {
        labels
            .get(&id)
            .map_or_else(|| format!("interp {id}"), |l| format!("{l} ({id})"))
    };
    let mut by_total: Vec<(u32, u64)> = t
        .lanes()
        .map(|(id, cells)| (id, cells.iter().map(|c| c.samples).sum()))
        .collect();
    let mut rest = Vec::new();
    if by_total.len() > MAX_LANES {
        by_total.sort_by_key(|&(id, total)| (std::cmp::Reverse(total), id));
        rest = by_total.split_off(MAX_LANES - 1);
    }
    let mut labels: Vec<String> = by_total.iter().map(|&(id, _)| label_of(id)).collect();
    if !rest.is_empty() {
        labels.push(format!("{} others", rest.len()));
    }
    let lane_of: HashMap<u32, usize> = by_total
        .iter()
        .enumerate()
        .map(|(k, &(id, _))| (id, k))
        .collect();
    let merged_lane = by_total.len();
    let mut stacks = vec![vec![[0u64; TOP_FUNCTIONS + 1]; buckets]; labels.len()];
    for f in &t.functions {
        let lane = lane_of.get(&f.interp).copied().unwrap_or(merged_lane);
        let class = f
            .function
            .and_then(|i| class_of.get(&i).copied())
            .unwrap_or(other);
        if let Some(cell) = stacks
            .get_mut(lane)
            .and_then(|l| l.get_mut(f.bucket as usize))
        {
            cell[class] += f.samples;
        }
    }
    let peak = stacks
        .iter()
        .flatten()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);

    // The legend: colours to function names.
    out.push_str("<ul class=\"legend\">");
    let mut classes: Vec<usize> = (0..hot.len()).collect();
    if stacks.iter().flatten().any(|c| c[other] > 0) {
        classes.push(other);
    }
    for &c in &classes {
        let _ = write!(
            out,
            "<li><svg width=\"10\" height=\"10\" aria-hidden=\"true\"><rect width=\"10\" height=\"10\" fill=\"{}\"/></svg> {}</li>",
            colour(c),
            escape(&truncate(name_of(c), 48)),
        );
    }
    out.push_str("</ul>\n");

    const WIDTH: f64 = 1200.0;
    const LEFT: f64 = 170.0;
    const RIGHT: f64 = 12.0;
    const LANE: f64 = 46.0;
    const GAP: f64 = 8.0;
    const TOP: f64 = 6.0;
    const AXIS: f64 = 26.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let height = TOP + labels.len() as f64 * (LANE + GAP) + AXIS;
    let x_of = |i: usize| LEFT + plot_w * i as f64 / buckets as f64;
    let when = |b: usize| -> String {
        let lo = t
            .start_ns
            .saturating_add(t.bucket_ns.saturating_mul(b as u64));
        let hi = lo.saturating_add(t.bucket_ns);
        if by_index {
            // Sample indices count from 1.
            format!("samples #{}–#{}", thousands(lo), thousands(hi - 1))
        } else {
            format!("{}–{}", duration_text(lo), duration_text(hi))
        }
    };

    let _ = writeln!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" \
         aria-label=\"Functions per interpreter over {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        if by_index { "sample index" } else { "time" }
    );
    // Vertical grid and axis labels, at round values within the range.
    let span = t.bucket_ns.saturating_mul(buckets as u64).max(1);
    let step = nice_step(span / 6);
    let axis_y = TOP + labels.len() as f64 * (LANE + GAP);
    let end = t.start_ns.saturating_add(span);
    let mut tick = t.start_ns.div_ceil(step).saturating_mul(step);
    while tick <= end {
        let x = LEFT + plot_w * (tick - t.start_ns) as f64 / span as f64;
        let label = if by_index {
            format!("#{}", thousands(tick))
        } else {
            duration_text(tick)
        };
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{axis_y:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            axis_y + 16.0,
            escape(&label)
        );
        tick = match tick.checked_add(step) {
            Some(t) => t,
            None => break,
        };
    }
    for (k, (label, lane)) in labels.iter().zip(&stacks).enumerate() {
        let top = TOP + k as f64 * (LANE + GAP);
        let base = top + LANE;
        let total: u64 = lane.iter().flatten().sum();
        let _ = write!(
            out,
            "<g class=\"lane\"><title>{title}</title>\
             <rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{plot_w:.1}\" height=\"{LANE}\" fill=\"#868e96\" fill-opacity=\"0.06\"/>\
             <text class=\"lane-label\" x=\"4\" y=\"{ly1:.1}\">{name}</text>\
             <text x=\"4\" y=\"{ly2:.1}\">{samples} samples</text>",
            title = escape(&format!("{label}: {} samples", thousands(total))),
            name = escape(&truncate(label, 22)),
            samples = thousands(total),
            ly1 = top + 18.0,
            ly2 = top + 34.0,
        );
        // One path per colour: each bucket's bar, stacked hottest at the
        // bottom.
        let mut paths = vec![String::new(); TOP_FUNCTIONS + 1];
        for (i, cell) in lane.iter().enumerate() {
            let (x, w) = (x_of(i), x_of(i + 1) - x_of(i));
            let mut below = 0u64;
            for (c, &n) in cell.iter().enumerate().filter(|&(_, &n)| n > 0) {
                let y0 = base - LANE * below as f64 / peak as f64;
                below += n;
                let y1 = base - LANE * below as f64 / peak as f64;
                let _ = write!(paths[c], "M{x:.1},{y1:.2}h{w:.2}V{y0:.2}h{:.2}Z", -w);
            }
        }
        for (c, d) in paths.iter().enumerate().filter(|(_, d)| !d.is_empty()) {
            let _ = write!(out, "<path class=\"fn\" d=\"{d}\" fill=\"{}\"/>", colour(c));
        }
        // Tooltips: one transparent bar per bucket with samples.
        for (i, cell) in lane.iter().enumerate() {
            let sum: u64 = cell.iter().sum();
            if sum == 0 {
                continue;
            }
            let mut tip = format!("{label} · {}: {} samples", when(i), thousands(sum));
            for (c, &n) in cell.iter().enumerate().filter(|&(_, &n)| n > 0) {
                let _ = write!(tip, "\n{}: {}", truncate(name_of(c), 48), thousands(n));
            }
            let (x, w) = (x_of(i), x_of(i + 1) - x_of(i));
            let _ = write!(
                out,
                "<rect class=\"tip\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.2}\" height=\"{LANE}\" fill=\"transparent\"><title>{}</title></rect>",
                escape(&tip)
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    let _ = writeln!(
        out,
        "<p class=\"note\">Each bar is {}; bar heights share one scale (peak {} samples per bar), \
         coloured by function: {}.</p>",
        if by_index {
            format!("{} consecutive samples", thousands(t.bucket_ns))
        } else {
            duration_text(t.bucket_ns)
        },
        thousands(peak),
        if classes.contains(&other) {
            format!("the {} hottest have a colour, the rest are grey", hot.len())
        } else {
            "each has a colour".to_string()
        }
    );
    out.push_str("</section>\n");
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw` (and at least 1).
fn nice_step(raw: u64) -> u64 {
    let raw = raw.max(1);
    let mut p: u64 = 1;
    while let Some(next) = p.checked_mul(10)
        && next <= raw
    {
        p = next;
    }
    for m in [1u64, 2, 5, 10] {
        let s = p.saturating_mul(m);
        if s >= raw {
            return s;
        }
    }
    p.saturating_mul(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(7), 10);
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(130), 200);
        assert_eq!(nice_step(u64::MAX), u64::MAX);
    }
}
