//! The disassembly of the hottest functions, with a heat bar per
//! instruction.
//!
//! - Only [`HtmlOptions::max_disassembled`] functions are listed, and a
//!   function longer than [`HtmlOptions::max_lines_per_function`] shows
//!   windows of [`CONTEXT`] instructions around its hot ones: the page stays
//!   bounded on huge profiles.

use std::fmt::Write as _;

use super::functions::{heat, share_bar};
use super::{HtmlOptions, Listed};
use crate::analysis::profile::Profile;
use crate::analysis::report::FunctionNames;
use crate::analysis::text::{escape, thousands};

/// Instructions of context shown around a hot instruction when a function
/// is too long to list whole.
const CONTEXT: usize = 4;

pub(super) fn disassembly(
    out: &mut String,
    profile: &Profile,
    listed: &[Listed<'_>],
    options: &HtmlOptions,
) {
    let shown = listed.len().min(options.max_disassembled);
    let _ = write!(
        out,
        "<section id=\"disassembly\">\n<h2>Disassembly<span class=\"sub\">the {shown} hottest \
         functions · bar: samples of the instruction against the function's hottest · %: share \
         of the function</span></h2>\n"
    );
    if shown == 0 {
        out.push_str("<p class=\"note\">Nothing to show.</p>\n");
    }
    let max = listed.first().map_or(0, |l| l.function.samples);
    let names = FunctionNames::new(profile);
    for (rank, l) in listed.iter().take(shown).enumerate() {
        let f = l.function;
        let _ = write!(
            out,
            "<details class=\"fn\" id=\"fn-{idx}\" data-name=\"{name}\"{open}>\n<summary>\
             <span class=\"fname\">{name}</span><span class=\"fstat\">{samples} samples · \
             {size} bytes · {addr:#x}{unloaded}</span>{bar}</summary>\n",
            idx = l.index,
            name = escape(&names.name(l.index)),
            open = if rank < 3 { " open" } else { "" },
            samples = thousands(f.samples),
            size = f.code_len,
            addr = f.addr,
            unloaded = if f.unloaded_ns.is_some() {
                " · unloaded"
            } else {
                ""
            },
            bar = share_bar(f.samples, max, profile.percent(f.samples)),
        );
        listing(out, profile, &names, l, options.max_lines_per_function);
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

/// The instructions of one function with their heat; long functions are cut
/// to windows around their hottest instructions.
fn listing(
    out: &mut String,
    profile: &Profile,
    names: &FunctionNames<'_>,
    l: &Listed<'_>,
    max_lines: usize,
) {
    let n = l.instructions.len();
    let shown = lines_to_show(&l.hits, max_lines.max(1));
    let fmax = l.hits.iter().copied().max().unwrap_or(0);
    let fsamples = l.function.samples.max(1);
    out.push_str("<table class=\"disasm\"><tbody>\n");
    let mut next = 0usize;
    for (i, (ins, &h)) in l.instructions.iter().zip(&l.hits).enumerate() {
        if !shown.get(i).copied().unwrap_or(false) {
            continue;
        }
        if i > next {
            gap_row(out, i - next);
        }
        next = i + 1;
        let ratio = if fmax == 0 {
            0.0
        } else {
            h as f64 / fmax as f64
        };
        let (bar, pct) = if h > 0 {
            (
                format!(
                    "<div class=\"bar\"><span style=\"width:{:.2}%;background:{}\"></span></div>",
                    ratio * 100.0,
                    heat(ratio)
                ),
                format!("{:.1}%", h as f64 * 100.0 / fsamples as f64),
            )
        } else {
            (String::new(), String::new())
        };
        let row_style = if h > 0 {
            format!(
                " style=\"background:linear-gradient(90deg,{} 0,transparent 6px)\"",
                heat(ratio)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"{row_style} title=\"{title}\"><td class=\"off\">{off:#06x}</td>\
             <td class=\"heat\">{bar}</td><td class=\"cnt\">{cnt}</td><td class=\"pct\">{pct}</td>\
             <td class=\"txt\">{text}</td></tr>",
            class = if h > 0 { "hot" } else { "cold" },
            title = escape(&format!(
                "{} samples, {:.2}% of all",
                thousands(h),
                profile.percent(h)
            )),
            off = ins.offset,
            cnt = if h > 0 { thousands(h) } else { String::new() },
            text = escape(&format!("{}{}", ins.text, names.callee_note(l.index, ins))),
        );
    }
    if n > next && next > 0 {
        gap_row(out, n - next);
    }
    if n == 0 {
        out.push_str("<tr class=\"gap\"><td colspan=\"5\">(no bytecode)</td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn gap_row(out: &mut String, skipped: usize) {
    let _ = writeln!(
        out,
        "<tr class=\"gap\"><td colspan=\"5\">… {} instruction{} without samples …</td></tr>",
        thousands(skipped as u64),
        if skipped == 1 { "" } else { "s" }
    );
}

/// Which instructions to list: all when they fit in `max_lines`, else the
/// hottest ones (as many as fit) with [`CONTEXT`] neighbours each side.
fn lines_to_show(hits: &[u64], max_lines: usize) -> Vec<bool> {
    let n = hits.len();
    if n <= max_lines {
        return vec![true; n];
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| hits[i] > 0).collect();
    order.sort_by(|&a, &b| hits[b].cmp(&hits[a]).then(a.cmp(&b)));
    let mut shown = vec![false; n];
    let mut count = 0;
    for i in order {
        let lo = i.saturating_sub(CONTEXT);
        let hi = (i + CONTEXT + 1).min(n);
        let new = shown[lo..hi].iter().filter(|s| !**s).count();
        if count + new > max_lines {
            break;
        }
        shown[lo..hi].iter_mut().for_each(|s| *s = true);
        count += new;
    }
    if count == 0 {
        // Nothing hot fits: show the start so the listing is not empty.
        shown.iter_mut().take(max_lines).for_each(|s| *s = true);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_functions_show_windows_around_hot_lines() {
        let mut hits = vec![0u64; 100];
        hits[50] = 5;
        let shown = lines_to_show(&hits, 20);
        let idx: Vec<usize> = (0..100).filter(|&i| shown[i]).collect();
        assert_eq!(idx, (46..=54).collect::<Vec<_>>());
        assert!(lines_to_show(&hits, 200).iter().all(|&s| s));
        let cold = lines_to_show(&[0; 50], 10);
        assert_eq!(cold.iter().filter(|&&s| s).count(), 10);
    }
}
