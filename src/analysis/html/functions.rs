//! The functions table (sortable and filterable by the page's script,
//! which reads `data-*` attributes), and the heat bars every table shares.

use std::fmt::Write as _;

use super::{HtmlOptions, Listed};
use crate::analysis::profile::Profile;
use crate::analysis::text::{escape, thousands};

pub(super) fn functions_table(
    out: &mut String,
    profile: &Profile,
    listed: &[Listed<'_>],
    options: &HtmlOptions,
) {
    let with_samples = profile.functions.iter().filter(|f| f.samples > 0).count();
    let _ = write!(
        out,
        "<section id=\"functions-section\">\n<h2>Functions<span class=\"sub\">hottest first · \
         click a column to sort · click a name for its disassembly</span></h2>\n\
         <div class=\"toolbar\"><input id=\"function-filter\" type=\"search\" \
         placeholder=\"Filter by name\" aria-label=\"Filter functions by name\">"
    );
    let hidden_cold = profile.functions.len() - with_samples;
    let mut notes = Vec::new();
    if with_samples > listed.len() {
        notes.push(format!(
            "{} more functions with samples not listed",
            thousands((with_samples - listed.len()) as u64)
        ));
    }
    if hidden_cold > 0 {
        notes.push(format!(
            "{} functions without samples not listed",
            thousands(hidden_cold as u64)
        ));
    }
    if !notes.is_empty() {
        let _ = write!(
            out,
            "<span class=\"note\">{}</span>",
            escape(&notes.join(" · "))
        );
    }
    out.push_str(
        "</div>\n<table id=\"functions\" class=\"sortable\">\n<thead><tr>\
         <th class=\"num\" data-key=\"order\" data-type=\"num\">#</th>\
         <th data-key=\"name\" data-type=\"str\">Function</th>\
         <th class=\"num\" data-key=\"samples\" data-type=\"num\" aria-sort=\"descending\">Samples</th>\
         <th data-key=\"samples\" data-type=\"num\" data-alias=\"share\">Share</th>\
         <th>Hottest instruction</th>\
         <th class=\"num\" data-key=\"size\" data-type=\"num\">Size</th>\
         <th data-key=\"addr\" data-type=\"str\">Address</th>\
         </tr></thead>\n<tbody>\n",
    );
    let max = listed.first().map_or(0, |l| l.function.samples);
    for (rank, l) in listed.iter().enumerate() {
        let f = l.function;
        let pct = profile.percent(f.samples);
        let link = rank < options.max_disassembled;
        let name_html = if link {
            format!("<a href=\"#fn-{}\">{}</a>", l.index, escape(&f.name))
        } else {
            escape(&f.name)
        };
        let hottest = l
            .hits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .filter(|&(_, &h)| h > 0)
            .and_then(|(i, &h)| {
                let ins = l.instructions.get(i)?;
                Some(format!(
                    "{:.0}% {:+#x} {}",
                    h as f64 * 100.0 / f.samples.max(1) as f64,
                    ins.offset,
                    ins.text
                ))
            })
            .unwrap_or_default();
        let unloaded = if f.unloaded_ns.is_some() {
            " (unloaded)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr data-order=\"{rank}\" data-name=\"{name}\" data-samples=\"{samples}\" \
             data-size=\"{size}\" data-addr=\"{addr:016x}\">\
             <td class=\"num\">{rank1}</td><td class=\"name\" title=\"{name}{unloaded}\">{name_html}</td>\
             <td class=\"num\">{samples_text}</td><td>{bar}</td>\
             <td class=\"mono hot-insn\" title=\"{hottest}\">{hottest}</td>\
             <td class=\"num\">{size}</td><td class=\"mono\">{addr:#x}</td></tr>",
            rank1 = rank + 1,
            name = escape(&f.name),
            samples = f.samples,
            samples_text = thousands(f.samples),
            size = f.code_len,
            addr = f.addr,
            bar = share_bar(f.samples, max, pct),
            hottest = escape(&hottest),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if listed.is_empty() {
        out.push_str("<p class=\"note\">No function has any sample.</p>\n");
    }
    out.push_str("</section>\n");
}

/// A heat bar `value / max` long, coloured by that ratio, with `pct` as text.
pub(super) fn share_bar(value: u64, max: u64, pct: f64) -> String {
    let ratio = if max == 0 {
        0.0
    } else {
        value as f64 / max as f64
    };
    format!(
        "<div style=\"display:flex;gap:8px;align-items:center\"><div class=\"bar\" style=\"flex:1\">\
         <span style=\"width:{:.2}%;background:{}\"></span></div>\
         <span class=\"num\" style=\"min-width:46px;text-align:right\">{pct:.1}%</span></div>",
        ratio * 100.0,
        heat(ratio)
    )
}

/// Heat colour of a ratio in [0, 1]: pale amber (cool) to deep red (hot).
pub(super) fn heat(ratio: f64) -> String {
    let r = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let hue = 46.0 - 42.0 * r;
    let sat = 92.0 - 12.0 * r;
    let light = 66.0 - 20.0 * r;
    format!("hsl({hue:.0},{sat:.0}%,{light:.0}%)")
}
