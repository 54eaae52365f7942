//! A self-contained HTML report of a profile (`pcprof html`).
//!
//! - One file, nothing fetched at view time: the CSS and the script are
//!   inlined from `html/report.css` and `html/report.js`, the timeline is
//!   inline SVG computed here, and a Content-Security-Policy forbids any
//!   network access, so the page opens straight from the file system.
//! - The page holds a summary (duration, rate asked and achieved, ticks
//!   missed, samples dropped, lateness), a sortable and filterable table of
//!   functions (hottest first), a timeline of samples per interpreter, the
//!   hot instruction sequences, and per hot function its disassembly with a
//!   heat bar per instruction.
//! - Everything from the file (function names, disassembly, labels) is
//!   untrusted: it is HTML-escaped wherever it lands, text or attribute, and
//!   the script reads sort keys from `data-*` attributes instead of embedding
//!   data in code.
//! - Size stays bounded on huge profiles: the table lists at most
//!   [`HtmlOptions::max_table_rows`] functions, only the hottest
//!   [`HtmlOptions::max_disassembled`] are disassembled, and a long function
//!   shows windows around its hot instructions rather than every line.
//! - Hot sequences come in as plain [`HotSequence`] rows, so this module does
//!   not depend on how they are mined; the CLI fills them in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::analysis::convert::ConvertError;
use crate::analysis::output::write_output;

use crate::analysis::profile::{FunctionProfile, Profile};
use crate::analysis::report::{DecoderChoice, decode_function};
use crate::disasm::Instruction;
use crate::format::Format;

const CSS: &str = include_str!("html/report.css");
const JS: &str = include_str!("html/report.js");

/// Instructions of context shown around a hot instruction when a function
/// is too long to list whole.
const CONTEXT: usize = 4;
/// Lanes drawn in the timeline; further interpreters are summed into one.
const MAX_LANES: usize = 16;
/// Lane colours, one per interpreter (cycled).
const PALETTE: [&str; 10] = [
    "#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#d6336c", "#5c7cfa",
    "#66a80f", "#868e96",
];

/// One hot instruction sequence, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotSequence {
    /// Opcode mnemonics in execution order.
    pub opcodes: Vec<String>,
    /// Samples that fell in the sequence (summed over its sites).
    pub samples: u64,
    /// Places (function and offset) where the sequence occurs.
    pub sites: u64,
    /// One site, e.g. `fib+0x1c`, to find it in the disassembly.
    pub example: Option<String>,
}

/// What to put in the report, and how much of it.
#[derive(Debug, Clone)]
pub struct HtmlOptions {
    /// Page title (default: the profile's file name).
    pub title: Option<String>,
    /// How to decode bytecode (`Auto`: Pulley, hex for what it cannot
    /// decode).
    pub decoder: DecoderChoice,
    /// Most functions listed in the table (hottest kept).
    pub max_table_rows: usize,
    /// Most functions whose disassembly is shown (hottest kept).
    pub max_disassembled: usize,
    /// Most instruction lines per function before the listing is cut to
    /// windows around the hot instructions.
    pub max_lines_per_function: usize,
    /// Hot sequences to show, hottest first.
    pub sequences: Vec<HotSequence>,
    /// Shown instead of the sequences table when `sequences` is empty (why
    /// there are none).
    pub sequences_note: Option<String>,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        HtmlOptions {
            title: None,
            decoder: DecoderChoice::Auto,
            max_table_rows: 1000,
            max_disassembled: 40,
            max_lines_per_function: 400,
            sequences: Vec::new(),
            sequences_note: None,
        }
    }
}

/// Renders the report of `profile` as one HTML document.
pub fn render(profile: &Profile, options: &HtmlOptions) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let file_name = profile
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| profile.path.display().to_string());
    let title = options.title.clone().unwrap_or_else(|| file_name.clone());

    // Decode each listed function once; the table and the listings share it.
    let by_heat = profile.functions_by_heat();
    let index_of: BTreeMap<*const FunctionProfile, usize> = profile
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f as *const FunctionProfile, i))
        .collect();
    let mut decoders = std::collections::BTreeSet::new();
    let listed: Vec<Listed<'_>> = by_heat
        .iter()
        .filter(|f| f.samples > 0)
        .take(options.max_table_rows)
        .map(|f| {
            let listing = decode_function(&options.decoder, &f.code, &f.hits);
            let instructions = listing.instructions;
            let hits = super::report::instruction_totals(&instructions, &f.hits);
            decoders.insert(listing.decoder);
            Listed {
                index: index_of
                    .get(&(*f as *const FunctionProfile))
                    .copied()
                    .unwrap_or(0),
                function: f,
                instructions,
                hits,
            }
        })
        .collect();

    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"pcprof {}\">\n\
         <title>{} · pcprof</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&title)
    );
    header(&mut out, profile, &title);
    out.push_str("<main>\n");
    summary(&mut out, profile);
    functions_table(&mut out, profile, &listed, options);
    timeline(&mut out, profile);
    disassembly(&mut out, profile, &listed, options);
    sequences(&mut out, profile, options);
    out.push_str("</main>\n");
    let _ = write!(
        out,
        "<footer>Generated by pcprof {} · decoder: {} · a self-contained page: \
         it fetches nothing.</footer>\n<script>\n{JS}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        if decoders.is_empty() {
            "none".to_string()
        } else {
            escape(&decoders.into_iter().collect::<Vec<_>>().join(" and "))
        }
    );
    out
}

/// Renders the report of `profile` and writes it to `output` as
/// [`write_output`] does (a regular file replaced only once complete, a
/// symlink's target, a FIFO or device straight into). Refuses to write over
/// the profile itself.
pub fn write_report(
    profile: &Profile,
    options: &HtmlOptions,
    output: &Path,
) -> Result<(), ConvertError> {
    crate::analysis::output::refuse_inputs(output, &[&profile.path])?;
    let page = render(profile, options);
    write_output(output, &[&profile.path], |w| {
        w.write_all(page.as_bytes())
            .map_err(|source| ConvertError::Io {
                path: output.to_path_buf(),
                source,
            })
    })
}

/// A function listed in the report, decoded.
struct Listed<'a> {
    /// Index in `Profile::functions` (anchors are built from it: names may
    /// repeat and are untrusted).
    index: usize,
    function: &'a FunctionProfile,
    instructions: Vec<Instruction>,
    /// Samples per instruction (same indices as `instructions`).
    hits: Vec<u64>,
}

fn header(out: &mut String, profile: &Profile, title: &str) {
    let mut meta = format!("{} format", profile.format);
    if let Some(h) = &profile.header {
        if h.started_unix_ns > 0 {
            let _ = write!(meta, " · recorded {}", utc_date(h.started_unix_ns));
        }
        if h.pid > 0 {
            let _ = write!(meta, " · pid {}", h.pid);
        }
    }
    let _ = write!(
        out,
        "<header class=\"top\"><span class=\"brand\">pcprof</span>\
         <span class=\"file\" title=\"{path}\">{title}</span>\
         <span class=\"meta\">{meta}</span></header>\n\
         <nav class=\"toc\"><a href=\"#summary\">Summary</a><a href=\"#functions-section\">Functions</a>\
         <a href=\"#timeline\">Timeline</a><a href=\"#disassembly\">Disassembly</a>\
         <a href=\"#sequences-section\">Hot sequences</a></nav>\n",
        path = escape(&profile.path.display().to_string()),
        title = escape(title),
        meta = escape(&meta),
    );
}

/// One summary card: key, value, detail, and whether it signals a problem.
struct Card {
    key: &'static str,
    value: String,
    detail: String,
    bad: bool,
}

fn summary(out: &mut String, profile: &Profile) {
    let stats = profile.summary.as_ref().map(|s| &s.stats);
    let native = profile.format == Format::Native;
    let not_recorded = if native {
        "no closing summary"
    } else {
        "not in Pulley files"
    };
    let mut cards = Vec::new();

    let span = profile.time_range.map(|(a, b)| b.saturating_sub(a));
    let (duration, duration_detail) = match (stats, span) {
        (Some(s), _) if s.elapsed_ns > 0 => (
            duration_text(s.elapsed_ns),
            profile
                .header
                .as_ref()
                .map(|h| format!("{} clock", h.clock))
                .unwrap_or_default(),
        ),
        (_, Some(d)) => (duration_text(d), "first to last sample".to_string()),
        _ => ("—".to_string(), not_recorded.to_string()),
    };
    cards.push(Card {
        key: "Duration",
        value: duration,
        detail: duration_detail,
        bad: false,
    });

    let in_functions = profile.functions.iter().filter(|f| f.samples > 0).count();
    cards.push(Card {
        key: "Samples",
        value: thousands(profile.total_samples),
        detail: format!("in {} functions", thousands(in_functions as u64)),
        bad: false,
    });

    let asked = stats
        .map(|s| s.frequency_hz)
        .filter(|&hz| hz > 0)
        .or_else(|| profile.header.as_ref().map(|h| h.frequency_hz));
    cards.push(Card {
        key: "Rate asked",
        value: asked.map_or("—".to_string(), |hz| {
            format!("{} Hz", thousands(u64::from(hz)))
        }),
        detail: match stats {
            Some(s) => format!("achieved {:.0} Hz", s.achieved_hz()),
            None => not_recorded.to_string(),
        },
        bad: stats.is_some_and(|s| asked.is_some_and(|a| s.achieved_hz() < f64::from(a) * 0.9)),
    });

    match stats {
        Some(s) => {
            let missed_share = if s.ticks_scheduled == 0 {
                0.0
            } else {
                s.ticks_missed as f64 * 100.0 / s.ticks_scheduled as f64
            };
            cards.push(Card {
                key: "Ticks missed",
                value: thousands(s.ticks_missed),
                detail: format!(
                    "{missed_share:.1}% of {} scheduled",
                    thousands(s.ticks_scheduled)
                ),
                bad: missed_share > 1.0,
            });
            cards.push(Card {
                key: "Samples dropped",
                value: thousands(s.samples_dropped),
                detail: format!("{} written", thousands(s.samples_written)),
                bad: s.samples_dropped > 0,
            });
            cards.push(Card {
                key: "Lateness p50",
                value: duration_text(s.lateness_p50_ns),
                detail: format!(
                    "p99 {} · max {}",
                    duration_text(s.lateness_p99_ns),
                    duration_text(s.lateness_max_ns)
                ),
                bad: false,
            });
        }
        None => {
            for key in ["Ticks missed", "Samples dropped", "Lateness p50"] {
                cards.push(Card {
                    key,
                    value: "—".to_string(),
                    detail: not_recorded.to_string(),
                    bad: false,
                });
            }
        }
    }

    let retired = profile
        .interpreters
        .iter()
        .filter(|i| i.retired_ns.is_some())
        .count();
    cards.push(Card {
        key: "Interpreters",
        value: thousands(profile.interpreters.len() as u64),
        detail: format!("{retired} retired"),
        bad: false,
    });
    let unloaded = profile
        .functions
        .iter()
        .filter(|f| f.unloaded_ns.is_some())
        .count();
    cards.push(Card {
        key: "Functions",
        value: thousands(profile.functions.len() as u64),
        detail: format!("{unloaded} unloaded"),
        bad: false,
    });
    cards.push(Card {
        key: "Unresolved",
        value: thousands(profile.unresolved),
        detail: format!(
            "{:.1}% outside any function",
            profile.percent(profile.unresolved)
        ),
        bad: profile.percent(profile.unresolved) > 1.0,
    });
    cards.push(Card {
        key: "File",
        value: bytes_text(profile.file_bytes),
        detail: format!("{} format", profile.format),
        bad: false,
    });

    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    let warnings = warnings(profile);
    if !warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">");
        for w in &warnings {
            let _ = write!(out, "<li>{}</li>", escape(w));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<div class=\"cards\">\n");
    for c in &cards {
        let _ = writeln!(
            out,
            "<div class=\"card{}\"><div class=\"k\">{}</div><div class=\"v\">{}</div>\
             <div class=\"d\">{}</div></div>",
            if c.bad { " bad" } else { "" },
            escape(c.key),
            escape(&c.value),
            escape(&c.detail)
        );
    }
    out.push_str("</div>\n</section>\n");
}

/// What makes the profile less trustworthy, in words.
fn warnings(profile: &Profile) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(e) = &profile.read_error {
        w.push(format!(
            "Reading stopped early: {e}. Every complete record before it is counted."
        ));
    }
    if profile.format == Format::Native && profile.summary.is_none() && profile.read_error.is_none()
    {
        w.push(
            "The file has no closing summary: the profiler did not stop cleanly, \
             so rate, missed ticks and drops are unknown."
                .to_string(),
        );
    }
    if let Some(s) = profile.summary.as_ref().map(|s| &s.stats) {
        if s.samples_dropped > 0 {
            w.push(format!(
                "{} samples were dropped (the writer could not keep up or the output failed).",
                thousands(s.samples_dropped)
            ));
        }
        if let Some(e) = &s.first_error {
            w.push(format!(
                "{} errors during the run; the first: {e}",
                s.errors
            ));
        }
    }
    w
}

fn functions_table(
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
            size = f.code.len(),
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
fn share_bar(value: u64, max: u64, pct: f64) -> String {
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
fn heat(ratio: f64) -> String {
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

fn timeline(out: &mut String, profile: &Profile) {
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
    let label_of = |id: u32| -> String {
        profile
            .interpreters
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.label.clone())
            .map_or_else(|| format!("interp {id}"), |l| format!("{l} ({id})"))
    };
    let mut lanes: Vec<(String, Vec<u64>)> = t
        .counts
        .iter()
        .map(|(&id, v)| (label_of(id), v.clone()))
        .collect();
    if lanes.len() > MAX_LANES {
        lanes.sort_by_key(|(_, v)| std::cmp::Reverse(v.iter().sum::<u64>()));
        let rest = lanes.split_off(MAX_LANES - 1);
        let mut merged = vec![0u64; buckets];
        for (_, v) in &rest {
            for (m, c) in merged.iter_mut().zip(v) {
                *m += c;
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

fn sequences(out: &mut String, profile: &Profile, options: &HtmlOptions) {
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

fn disassembly(out: &mut String, profile: &Profile, listed: &[Listed<'_>], options: &HtmlOptions) {
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
    for (rank, l) in listed.iter().take(shown).enumerate() {
        let f = l.function;
        let _ = write!(
            out,
            "<details class=\"fn\" id=\"fn-{idx}\" data-name=\"{name}\"{open}>\n<summary>\
             <span class=\"fname\">{name}</span><span class=\"fstat\">{samples} samples · \
             {size} bytes · {addr:#x}{unloaded}</span>{bar}</summary>\n",
            idx = l.index,
            name = escape(&f.name),
            open = if rank < 3 { " open" } else { "" },
            samples = thousands(f.samples),
            size = f.code.len(),
            addr = f.addr,
            unloaded = if f.unloaded_ns.is_some() {
                " · unloaded"
            } else {
                ""
            },
            bar = share_bar(f.samples, max, profile.percent(f.samples)),
        );
        listing(out, profile, l, options.max_lines_per_function);
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

/// The instructions of one function with their heat; long functions are cut
/// to windows around their hottest instructions.
fn listing(out: &mut String, profile: &Profile, l: &Listed<'_>, max_lines: usize) {
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
            text = escape(&ins.text),
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

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters would make the document invalid; show them.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in ns, in the unit that reads best.
fn duration_text(ns: u64) -> String {
    let f = ns as f64;
    if ns == 0 {
        "0".to_string()
    } else if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.3} µs", f / 1e3).replace(".000 ", " ")
    } else if ns < 1_000_000_000 {
        trim_zeros(format!("{:.3}", f / 1e6)) + " ms"
    } else {
        trim_zeros(format!("{:.3}", f / 1e9)) + " s"
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn bytes_text(n: u64) -> String {
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", f / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.1} MiB", f / 1048576.0)
    } else {
        format!("{:.2} GiB", f / 1073741824.0)
    }
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

/// `YYYY-MM-DD HH:MM UTC` of a Unix time in ns (no time-zone database
/// needed: days to civil date, Howard Hinnant's algorithm).
fn utc_date(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>\"a\"&'b'</script>"),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\\u{0}b");
    }

    #[test]
    fn number_and_time_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(duration_text(1_500_000), "1.5 ms");
        assert_eq!(duration_text(2_000_000_000), "2 s");
        assert_eq!(nice_step(7), 10);
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(130), 200);
        assert_eq!(nice_step(u64::MAX), u64::MAX);
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000_000_000_000), "2023-11-14 22:13 UTC");
    }

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
