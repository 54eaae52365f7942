//! The hot sequences table: rows come in as [`super::HotSequence`], already
//! mined, so the page does not depend on how.

use std::fmt::Write as _;

use super::HtmlOptions;
use super::functions::share_bar;
use crate::analysis::profile::Profile;
use crate::analysis::text::{escape, thousands};

pub(super) fn sequences(out: &mut String, profile: &Profile, options: &HtmlOptions) {
    out.push_str(
        "<section id=\"sequences-section\">\n<h2>Hot sequences<span class=\"sub\">straight-line \
         opcode runs that take the most samples: candidates for macro-instructions</span></h2>\n",
    );
    if options.sequences.is_empty() {
        let note = options
            .sequences_note
            .as_deref()
            .unwrap_or("No hot sequences found.");
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
        out.push_str("</section>\n");
        return;
    }
    out.push_str(
        "<table id=\"sequences\" class=\"sortable\">\n<thead><tr>\
         <th class=\"num\" data-key=\"order\" data-type=\"num\">#</th><th>Sequence</th>\
         <th class=\"num\" data-key=\"len\" data-type=\"num\">Length</th>\
         <th class=\"num\" data-key=\"samples\" data-type=\"num\" aria-sort=\"descending\">Samples</th>\
         <th data-key=\"samples\" data-type=\"num\">Share</th>\
         <th class=\"num\" data-key=\"sites\" data-type=\"num\">Sites</th><th>Example</th>\
         </tr></thead>\n<tbody>\n",
    );
    let max = options
        .sequences
        .iter()
        .map(|s| s.samples)
        .max()
        .unwrap_or(0);
    for (rank, s) in options.sequences.iter().enumerate() {
        let chips: Vec<String> = s
            .opcodes
            .iter()
            .map(|o| format!("<span class=\"chip\">{}</span>", escape(o)))
            .collect();
        let _ = writeln!(
            out,
            "<tr data-order=\"{rank}\" data-len=\"{len}\" data-samples=\"{samples}\" data-sites=\"{sites}\">\
             <td class=\"num\">{rank1}</td><td><div class=\"chips\">{chips}</div></td>\
             <td class=\"num\">{len}</td><td class=\"num\">{samples_text}</td><td>{bar}</td>\
             <td class=\"num\">{sites}</td><td class=\"mono\">{example}</td></tr>",
            rank1 = rank + 1,
            len = s.opcodes.len(),
            samples = s.samples,
            samples_text = thousands(s.samples),
            sites = s.sites,
            chips = chips.join("<span class=\"arrow\">→</span>"),
            bar = share_bar(s.samples, max, profile.percent(s.samples)),
            example = escape(s.example.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}
