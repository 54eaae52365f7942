//! The timeline: samples per time bucket, one inline-SVG lane per
//! interpreter.
//!
//! - At most [`MAX_LANES`] lanes: the least busy interpreters past that are
//!   summed into one, so a thousand threads stay one readable picture.
//! - Axis ticks are "nice" steps (1, 2 or 5 times a power of ten).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::analysis::profile::Profile;
use crate::analysis::text::{duration_text, escape, thousands, truncate};

/// Lanes drawn in the timeline; further interpreters are summed into one.
const MAX_LANES: usize = 16;
/// Lane colours, one per interpreter (cycled).
const PALETTE: [&str; 10] = [
    "#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#d6336c", "#5c7cfa",
    "#66a80f", "#868e96",
];

pub(super) fn timeline(out: &mut String, profile: &Profile) {
    let t = &profile.timeline;
    let by_index = t.by_sample_index;
    let _ = write!(
        out,
        "<section id=\"timeline\">\n<h2>Timeline<span class=\"sub\">samples per interpreter{}</span></h2>\n",
        if by_index {
            " in file order (Pulley files carry no times)"
        } else {
            " over time"
        }
    );
    let buckets = t.len();
    if buckets == 0 || t.bucket_ns == 0 {
        out.push_str("<p class=\"note\">No samples.</p>\n</section>\n");
        return;
    }

    // Lanes: one per interpreter, the least busy merged past MAX_LANES.
    // The timeline is sparse (a million interpreters are a million cells):
    // only the lanes drawn are made dense.
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
    let mut lanes: Vec<(String, Vec<u64>)> = by_total
        .iter()
        .map(|&(id, _)| (label_of(id), t.lane(id)))
        .collect();
    if !rest.is_empty() {
        let drawn: HashSet<u32> = by_total.iter().map(|&(id, _)| id).collect();
        let mut merged = vec![0u64; buckets];
        for c in t.cells.iter().filter(|c| !drawn.contains(&c.interp)) {
            if let Some(m) = merged.get_mut(c.bucket as usize) {
                *m += c.samples;
            }
        }
        lanes.push((format!("{} others", rest.len()), merged));
    }
    let peak = lanes
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);

    const WIDTH: f64 = 1200.0;
    const LEFT: f64 = 170.0;
    const RIGHT: f64 = 12.0;
    const LANE: f64 = 46.0;
    const GAP: f64 = 8.0;
    const TOP: f64 = 6.0;
    const AXIS: f64 = 26.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let height = TOP + lanes.len() as f64 * (LANE + GAP) + AXIS;
    let x_of = |i: usize| LEFT + plot_w * i as f64 / buckets as f64;

    let _ = writeln!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" \
         aria-label=\"Samples per interpreter over time\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    // Vertical grid and axis labels, at round values within the range.
    let span = t.bucket_ns.saturating_mul(buckets as u64).max(1);
    let step = nice_step(span / 6);
    let axis_y = TOP + lanes.len() as f64 * (LANE + GAP);
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
    for (k, (label, counts)) in lanes.iter().enumerate() {
        let top = TOP + k as f64 * (LANE + GAP);
        let base = top + LANE;
        let total: u64 = counts.iter().sum();
        let colour = PALETTE[k % PALETTE.len()];
        // A step area: each bucket is a flat top over its width.
        let mut d = format!("M{LEFT:.1},{base:.1}");
        for (i, &c) in counts.iter().enumerate() {
            let y = base - LANE * c as f64 / peak as f64;
            let _ = write!(d, "L{:.1},{y:.1}L{:.1},{y:.1}", x_of(i), x_of(i + 1));
        }
        let _ = write!(d, "L{:.1},{base:.1}Z", x_of(counts.len()));
        let _ = writeln!(
            out,
            "<g class=\"lane\"><title>{title}</title>\
             <rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{plot_w:.1}\" height=\"{LANE}\" fill=\"{colour}\" fill-opacity=\"0.06\"/>\
             <path d=\"{d}\" fill=\"{colour}\" fill-opacity=\"0.55\" stroke=\"{colour}\" stroke-width=\"1\"/>\
             <text class=\"lane-label\" x=\"{lx}\" y=\"{ly1:.1}\">{name}</text>\
             <text x=\"{lx}\" y=\"{ly2:.1}\">{samples} samples</text></g>",
            title = escape(&format!("{label}: {} samples", thousands(total))),
            name = escape(&truncate(label, 22)),
            samples = thousands(total),
            lx = 4,
            ly1 = top + 18.0,
            ly2 = top + 34.0,
        );
    }
    out.push_str("</svg>\n");
    let _ = writeln!(
        out,
        "<p class=\"note\">Each bucket is {}; lane heights share one scale (peak {} samples per bucket).</p>",
        if by_index {
            format!("{} samples", thousands(t.bucket_ns))
        } else {
            duration_text(t.bucket_ns)
        },
        thousands(peak)
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
