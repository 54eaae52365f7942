//! The text report: hot functions with their disassembly and per-instruction
//! shares, as Pulley's `profiler-html` example prints them, plus what the
//! runtime recorded about the run.
//!
//! - Works on an aggregated [`Profile`] (one streaming pass, see
//!   [`super::load`]); writing the report costs a decode of each function
//!   with samples, never another pass over the samples.
//! - Layout and semantics follow `profiler-html`: a function is listed with
//!   its share of all samples (hottest first here) unless that share is under
//!   the threshold; under it, every instruction with its share of the
//!   *function's* samples, annotated only when that share reaches the
//!   threshold, with a red (hottest) to green (coolest) heat colour.
//! - Decoding is pluggable ([`DecoderChoice`]): Pulley's disassembler, a hex
//!   listing, or any [`InstructionDecoder`]. `auto` tries Pulley and falls
//!   back to hex for a function whose bytes do not decode cleanly. The hex
//!   listing starts a new line at every sampled offset, so each sample of
//!   unknown bytecode still lands on a line of its own.
//! - Samples outside every function, or inside an instruction rather than at
//!   its start (a PC that is not an instruction boundary: wrong decoder or
//!   corrupt data), are counted on a summary line; the latter are credited
//!   to the instruction that contains them.
//! - Colour is plain ANSI (24-bit) and only when asked for; the caller
//!   decides (terminal, `NO_COLOR`).

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use super::profile::{FunctionProfile, Profile};
use crate::disasm::{HexDecoder, Instruction, InstructionDecoder, InstructionKind};
use crate::format::Format;

/// Which decoder turns a function's bytes into instructions.
#[derive(Debug, Clone, Default)]
pub enum DecoderChoice {
    /// Pulley's disassembler; a function with any undecodable byte is shown
    /// as hex instead.
    #[default]
    Auto,
    /// Pulley's disassembler, whatever it makes of the bytes (undecodable
    /// tails shown as such). Without the `pulley` feature: hex.
    Pulley,
    /// A plain hex listing.
    Hex,
    /// A decoder for another bytecode.
    Custom(Arc<dyn InstructionDecoder>),
}

impl std::str::FromStr for DecoderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DecoderChoice::Auto),
            "pulley" => Ok(DecoderChoice::Pulley),
            "hex" => Ok(DecoderChoice::Hex),
            other => Err(format!(
                "unknown decoder {other:?} (expected auto, pulley or hex)"
            )),
        }
    }
}

/// A function's bytes as instructions, and who decoded them.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Name of the decoder used (`pulley`, `hex`, or the custom decoder's).
    pub decoder: &'static str,
    /// `auto` fell back to hex because the bytes did not decode cleanly.
    pub fell_back: bool,
    /// The instructions, in offset order, covering the code.
    pub instructions: Vec<Instruction>,
}

/// Decodes `code` with `choice`. `hits` (samples per byte offset, may be
/// empty) only shapes the hex listing: a line starts at every sampled offset.
pub fn decode_function(choice: &DecoderChoice, code: &[u8], hits: &[u64]) -> Listing {
    let hex = |fell_back| Listing {
        decoder: "hex",
        fell_back,
        instructions: hex_listing(code, hits, HexDecoder::default().width),
    };
    match choice {
        DecoderChoice::Hex => hex(false),
        DecoderChoice::Custom(d) => Listing {
            decoder: d.name(),
            fell_back: false,
            instructions: d.decode(code),
        },
        #[cfg(feature = "pulley")]
        DecoderChoice::Pulley | DecoderChoice::Auto => {
            let instructions = crate::pulley::PulleyDecoder.decode(code);
            let clean = !instructions
                .iter()
                .any(|i| i.kind == InstructionKind::Undecodable);
            if clean || matches!(choice, DecoderChoice::Pulley) {
                Listing {
                    decoder: "pulley",
                    fell_back: false,
                    instructions,
                }
            } else {
                hex(true)
            }
        }
        #[cfg(not(feature = "pulley"))]
        DecoderChoice::Pulley | DecoderChoice::Auto => hex(false),
    }
}

/// Hex lines of at most `width` bytes, also starting at each offset with a
/// sample, so that every sampled PC of bytecode we cannot decode is a line
/// start.
fn hex_listing(code: &[u8], hits: &[u64], width: u32) -> Vec<Instruction> {
    let width = width.max(1) as usize;
    let mut out = Vec::new();
    let mut start = 0;
    while start < code.len() {
        let mut end = (start + width).min(code.len());
        if let Some(next_hot) = (start + 1..end).find(|&o| hits.get(o).is_some_and(|&h| h > 0)) {
            end = next_hot;
        }
        let text = code[start..end]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push(Instruction {
            offset: start as u32,
            len: (end - start) as u32,
            opcode: "bytes".to_string(),
            text,
            kind: InstructionKind::Plain,
        });
        start = end;
    }
    out
}

/// Samples per instruction, wherever in its bytes they fell.
pub fn instruction_totals(instructions: &[Instruction], hits: &[u64]) -> Vec<u64> {
    instruction_hits(instructions, hits)
        .into_iter()
        .map(|(at, inside)| at + inside)
        .collect()
}

/// Samples credited to each instruction: `(at its start, inside it)`.
/// Samples at offsets no instruction covers are ignored (a decoder breaking
/// its contract).
pub fn instruction_hits(instructions: &[Instruction], hits: &[u64]) -> Vec<(u64, u64)> {
    instructions
        .iter()
        .map(|i| {
            let start = i.offset as usize;
            let end = start.saturating_add(i.len as usize).min(hits.len());
            let at = hits.get(start).copied().unwrap_or(0);
            let inside = hits.get(start + 1..end).map_or(0, |h| h.iter().sum());
            (at, inside)
        })
        .collect()
}

/// Options of [`write_report`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Percent: functions with a smaller share of all samples are left out;
    /// instructions with a smaller share of their function's samples are
    /// listed but not annotated.
    pub threshold: f64,
    /// Whether to list each function's instructions.
    pub instructions: bool,
    /// List at most this many functions (after the threshold).
    pub top: Option<usize>,
    /// How to decode bytecode.
    pub decoder: DecoderChoice,
    /// Emit ANSI colours.
    pub color: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            threshold: 0.5,
            instructions: true,
            top: None,
            decoder: DecoderChoice::Auto,
            color: false,
        }
    }
}

/// Figures of a written report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportTotals {
    /// Samples counted (after the interpreter filter).
    pub samples: u64,
    /// Functions listed.
    pub functions_shown: usize,
    /// Samples outside every function.
    pub outside_functions: u64,
    /// Samples inside an instruction rather than at its start.
    pub inside_instructions: u64,
    /// Functions shown as hex because Pulley could not decode them.
    pub hex_fallbacks: usize,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

/// Writes the report of `profile` to `out`.
pub fn write_report(
    out: &mut dyn Write,
    profile: &Profile,
    options: &ReportOptions,
) -> io::Result<ReportTotals> {
    let functions = profile.functions_by_heat();
    // Decode every function with samples once: the mid-instruction count
    // covers them all, listed or not.
    let listings: Vec<Option<Listing>> = functions
        .iter()
        .map(|f| (f.samples > 0).then(|| decode_function(&options.decoder, &f.code, &f.hits)))
        .collect();
    let mut totals = ReportTotals {
        samples: profile.total_samples,
        outside_functions: profile.unresolved,
        ..ReportTotals::default()
    };
    for l in listings.iter().flatten() {
        totals.hex_fallbacks += usize::from(l.fell_back);
    }
    for (f, l) in functions.iter().zip(&listings) {
        if let Some(l) = l {
            totals.inside_instructions += instruction_hits(&l.instructions, &f.hits)
                .iter()
                .map(|&(_, inside)| inside)
                .sum::<u64>();
        }
    }

    write_summary(out, profile, &totals, options)?;

    let mut shown = 0;
    for (f, listing) in functions.iter().zip(&listings) {
        let pct = profile.percent(f.samples);
        if pct < options.threshold || options.top.is_some_and(|n| shown >= n) {
            continue;
        }
        shown += 1;
        write_function(out, profile, f, listing.as_ref(), options)?;
    }
    totals.functions_shown = shown;
    if profile.total_samples == 0 {
        writeln!(out, "no samples in this profile")?;
    } else if shown == 0 {
        writeln!(
            out,
            "no function reaches the threshold of {}% of the samples",
            options.threshold
        )?;
    }
    Ok(totals)
}

fn write_summary(
    out: &mut dyn Write,
    profile: &Profile,
    totals: &ReportTotals,
    options: &ReportOptions,
) -> io::Result<()> {
    writeln!(
        out,
        "profile: {} ({} format, {})",
        profile.path.display(),
        profile.format,
        Bytes(profile.file_bytes)
    )?;
    let with_samples = profile.functions.iter().filter(|f| f.samples > 0).count();
    writeln!(
        out,
        "samples: {} in {} functions ({} sampled)",
        profile.total_samples,
        profile.functions.len(),
        with_samples
    )?;
    writeln!(
        out,
        "not at an instruction: {} outside every function, {} inside an instruction rather than at its start",
        totals.outside_functions, totals.inside_instructions
    )?;
    if totals.hex_fallbacks > 0 {
        writeln!(
            out,
            "decoder: {} function(s) not valid Pulley bytecode, shown as hex",
            totals.hex_fallbacks
        )?;
    }
    write_run(out, profile)?;
    let all: u64 = profile.interpreters.iter().map(|i| i.samples).sum();
    if profile.interpreters.len() > 1 {
        writeln!(out, "interpreters: {}", profile.interpreters.len())?;
        let mut by_heat: Vec<_> = profile.interpreters.iter().collect();
        by_heat.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.id.cmp(&b.id)));
        for i in by_heat {
            let pct = if all == 0 {
                0.0
            } else {
                i.samples as f64 * 100.0 / all as f64
            };
            let label = i
                .label
                .as_deref()
                .map(|l| format!(" {l:?}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {:6.2}% interpreter {}{label}: {} samples",
                pct, i.id, i.samples
            )?;
        }
    }
    if profile.total_samples != all {
        writeln!(
            out,
            "filter: {} of {} samples kept (one interpreter)",
            profile.total_samples, all
        )?;
    }
    if options.threshold > 0.0 {
        writeln!(
            out,
            "threshold: {}% (functions under it left out, instructions under it not annotated)",
            options.threshold
        )?;
    }
    writeln!(out)
}

fn write_run(out: &mut dyn Write, profile: &Profile) -> io::Result<()> {
    match (&profile.summary, profile.format) {
        (Some(s), _) => {
            let st = &s.stats;
            writeln!(
                out,
                "run: duration {:.3} s, rate asked {} Hz, achieved {:.1} Hz, ticks missed {}, \
                 samples dropped {}, lateness p50 {}, p99 {}",
                st.elapsed_ns as f64 / 1e9,
                st.frequency_hz,
                st.achieved_hz(),
                st.ticks_missed,
                st.samples_dropped,
                Nanos(st.lateness_p50_ns),
                Nanos(st.lateness_p99_ns),
            )
        }
        (None, Format::Pulley) => writeln!(
            out,
            "run: not recorded (the Pulley format carries no run statistics)"
        ),
        (None, Format::Native) => {
            let asked = profile
                .header
                .as_ref()
                .map(|h| format!(", rate asked {} Hz", h.frequency_hz))
                .unwrap_or_default();
            writeln!(
                out,
                "run: no closing summary (the profiler did not stop cleanly){asked}"
            )
        }
    }
}

fn write_function(
    out: &mut dyn Write,
    profile: &Profile,
    f: &FunctionProfile,
    listing: Option<&Listing>,
    options: &ReportOptions,
) -> io::Result<()> {
    let pct = profile.percent(f.samples);
    let (bold, reset) = if options.color {
        (BOLD, RESET)
    } else {
        ("", "")
    };
    let note = match listing {
        Some(l) if l.fell_back => "  [not Pulley bytecode: hex]",
        _ => "",
    };
    writeln!(
        out,
        "{bold}{pct:6.2}% {}{reset}  ({} samples){note}",
        f.name, f.samples
    )?;
    if !options.instructions {
        return Ok(());
    }
    // A function without samples (threshold 0) still gets its listing.
    let owned;
    let listing = match listing {
        Some(l) => l,
        None => {
            owned = decode_function(&options.decoder, &f.code, &f.hits);
            &owned
        }
    };
    let hits = instruction_hits(&listing.instructions, &f.hits);
    let annotated = |h: u64| share(h, f.samples) >= options.threshold;
    let hot: Vec<u64> = hits
        .iter()
        .map(|&(a, b)| a + b)
        .filter(|&h| h > 0 && annotated(h))
        .collect();
    let min = hot.iter().copied().min().unwrap_or(0);
    let max = hot.iter().copied().max().unwrap_or(0);
    for (ins, &(at, inside)) in listing.instructions.iter().zip(&hits) {
        let h = at + inside;
        let p = share(h, f.samples);
        let inside_note = if inside > 0 {
            format!("    ({inside} inside)")
        } else {
            String::new()
        };
        if !annotated(h) {
            writeln!(
                out,
                "\t        {:6x}: {}{inside_note}",
                ins.offset, ins.text
            )?;
            continue;
        }
        if options.color && h > 0 {
            // Red for the hottest, green for the coolest annotated one.
            let t = if max == min {
                1.0
            } else {
                (h - min) as f64 / (max - min) as f64
            };
            let r = (255.0 * t) as u8;
            let g = (255.0 * (1.0 - t)) as u8;
            let b = if h == max { BOLD } else { "" };
            writeln!(
                out,
                "{b}\x1b[38;2;{r};{g};0m\t{p:6.2}% {:6x}: {}{inside_note}{RESET}",
                ins.offset, ins.text
            )?;
        } else {
            writeln!(
                out,
                "\t{p:6.2}% {:6x}: {}{inside_note}",
                ins.offset, ins.text
            )?;
        }
    }
    Ok(())
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub(crate) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A byte count for people.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if self.0 < 1024 {
            write!(f, "{} bytes", self.0)
        } else if b < 1024.0 * 1024.0 {
            write!(f, "{:.1} KiB", b / 1024.0)
        } else if b < 1024.0 * 1024.0 * 1024.0 {
            write!(f, "{:.1} MiB", b / (1024.0 * 1024.0))
        } else {
            write!(f, "{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
        }
    }
}

/// A duration in ns for people.
struct Nanos(u64);

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0 as f64;
        if self.0 < 1_000 {
            write!(f, "{} ns", self.0)
        } else if self.0 < 1_000_000 {
            write!(f, "{:.1} µs", n / 1e3)
        } else {
            write!(f, "{:.2} ms", n / 1e6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_listing_splits_at_hot_offsets() {
        let code = [1u8, 2, 3, 4, 5, 6, 7];
        let mut hits = vec![0u64; 7];
        hits[2] = 1;
        let l = hex_listing(&code, &hits, 4);
        let offs: Vec<(u32, u32)> = l.iter().map(|i| (i.offset, i.len)).collect();
        assert_eq!(offs, vec![(0, 2), (2, 4), (6, 1)]);
        assert_eq!(l[1].text, "03 04 05 06");
    }

    #[test]
    fn instruction_hits_split_start_and_inside() {
        let code = [0u8; 8];
        let l = hex_listing(&code, &[], 4);
        let hits = [1, 0, 2, 0, 0, 0, 0, 3];
        assert_eq!(instruction_hits(&l, &hits), vec![(1, 2), (0, 3)]);
    }
}
