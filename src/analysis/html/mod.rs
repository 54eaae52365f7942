//! A self-contained HTML report of a profile (`pcprof html`).
//!
//! - One file, nothing fetched at view time: the CSS and the script are
//!   inlined from `html/report.css` and `html/report.js`, the timeline is
//!   inline SVG computed here, and a Content-Security-Policy forbids any
//!   network access, so the page opens straight from the file system.
//! - The page holds a summary (duration, rate asked and achieved, ticks
//!   missed, samples dropped, lateness), a sortable and filterable table of
//!   functions (hottest first), a timeline of which function ran when per
//!   interpreter (runs of samples in file order for Pulley files), a flame
//!   graph of the call paths when the samples carry call stacks, the
//!   hot instruction sequences, and per hot function its disassembly with a
//!   heat bar per instruction.
//! - Everything from the file (function names, disassembly, labels) is
//!   untrusted: it is HTML-escaped wherever it lands, text or attribute, and
//!   the script reads sort keys from `data-*` attributes instead of embedding
//!   data in code.
//! - Size stays bounded on huge profiles: the table lists at most
//!   [`HtmlOptions::max_table_rows`] functions, only the hottest
//!   [`HtmlOptions::max_disassembled`] are disassembled, and a long function
//!   shows windows around its hot instructions rather than every line;
//!   the flame graph draws at most [`HtmlOptions::flame_max_frames`]
//!   frames, none under [`HtmlOptions::flame_min_share`].
//! - Hot sequences come in as plain [`HotSequence`] rows, so this module does
//!   not depend on how they are mined; the CLI fills them in.
//! - One file per part of the page: `summary` (cards and warnings),
//!   `functions` (the table and the heat bars), `flame`, `timeline`,
//!   `disassembly`, `sequences`; this file decodes the listed functions
//!   once and assembles the page. Escaping and number formats are
//!   [`crate::analysis::text`]'s.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::analysis::convert::ConvertError;
use crate::analysis::output::write_output;

use crate::analysis::profile::{FunctionProfile, Profile};
use crate::analysis::text::escape;
use crate::disasm::{
    DecoderChoice, Instruction, decode_function, decode_sampled, instruction_totals,
};

mod disassembly;
mod flame;
mod functions;
mod sequences;
mod summary;
mod timeline;

use disassembly::disassembly;
use flame::flame_graph;
use functions::functions_table;
use sequences::sequences;
use summary::summary;
use timeline::timeline;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

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
    /// Flame graph (profiles with call stacks): frames under this share of
    /// all samples (%) are not drawn.
    pub flame_min_share: f64,
    /// Flame graph: most frames drawn (the hottest kept).
    pub flame_max_frames: usize,
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
            flame_min_share: 0.1,
            flame_max_frames: 3000,
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
    let by_heat = profile.sampled_by_heat_indexed();
    let mut decoders = std::collections::BTreeSet::new();
    let listed: Vec<Listed<'_>> = by_heat
        .iter()
        .take(options.max_table_rows)
        .enumerate()
        .map(|(rank, &(index, f))| {
            // A row that is not disassembled needs its sampled blocks only.
            let decode = if rank < options.max_disassembled {
                decode_function
            } else {
                decode_sampled
            };
            let listing = decode(
                &options.decoder,
                &f.code,
                f.listing.as_deref(),
                f.hits.as_slice(),
            );
            let mut instructions = listing.instructions;
            let mut hits = instruction_totals(&instructions, f.hits.as_slice());
            // A row that is not disassembled shows its hottest instruction
            // only: a thousand rows keep a thousand instructions, not a
            // thousand listings.
            if rank >= options.max_disassembled
                && let Some((i, _)) = hits
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            {
                instructions = vec![instructions.swap_remove(i)];
                hits = vec![hits[i]];
            }
            decoders.insert(listing.decoder);
            Listed {
                index,
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
    flame_graph(&mut out, profile, options);
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
         <nav class=\"toc\"><a href=\"#summary\">Summary</a><a href=\"#functions-section\">Functions</a>{flame}\
         <a href=\"#timeline\">Timeline</a><a href=\"#disassembly\">Disassembly</a>\
         <a href=\"#sequences-section\">Hot sequences</a></nav>\n",
        path = escape(&profile.path.display().to_string()),
        title = escape(title),
        meta = escape(&meta),
        flame = if profile.has_stacks() {
            "<a href=\"#flame-section\">Flame graph</a>"
        } else {
            ""
        },
    );
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
    fn dates_in_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000_000_000_000), "2023-11-14 22:13 UTC");
    }
}
