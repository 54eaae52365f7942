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
//! - With call stacks, a table of the functions by total (inclusive) share,
//!   each beside its self share (a function counts once per sample however
//!   often it recurs), and each function's line gives its total too. A
//!   profile without stacks reports exactly as before.
//! - Decoding is pluggable ([`DecoderChoice`], chosen in [`crate::disasm`]
//!   like every analysis does): Pulley's disassembler, a hex listing that
//!   starts a new line at every sampled offset, or any
//!   [`crate::disasm::InstructionDecoder`].
//! - Samples outside every function, or inside an instruction rather than at
//!   its start (a PC that is not an instruction boundary: wrong decoder or
//!   corrupt data), are counted on a summary line; the latter are credited
//!   to the instruction that contains them.
//! - Colour is plain ANSI (24-bit) and only when asked for; the caller
//!   decides (terminal, `NO_COLOR`).

use std::io::{self, Write};

use super::profile::{FunctionProfile, Profile};
use super::text::{bytes_text, counted, duration_fixed_text, share};
// Decoder selection lives beside the decoders; re-exported for the paths
// embedders already use.
pub use crate::disasm::{
    DecoderChoice, Listing, ListingCache, WHOLE_LISTING_BYTES, decode_function, instruction_hits,
    instruction_totals,
};
use crate::disasm::{Instruction, InstructionKind, inside_samples};
use crate::format::Format;

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
    /// List every instruction: no run of unsampled instructions is folded
    /// into one line (code over [`WHOLE_LISTING_BYTES`] still lists only
    /// its sampled blocks).
    pub all_instructions: bool,
    /// A line on how the bytecode was decoded (which Pulley table, and
    /// why), for the summary.
    pub decoder_note: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            threshold: 0.5,
            instructions: true,
            top: None,
            decoder: DecoderChoice::Auto,
            color: false,
            all_instructions: false,
            decoder_note: None,
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

/// Runs of at least this many unsampled instructions print as one line.
pub const FOLD_RUN: usize = 8;

/// How the report names functions: a name shared by several functions
/// gets the function's address (and its index, if the address is shared
/// too: generations of code reloaded at one address), and a call's target
/// address is looked up among the functions.
#[derive(Debug)]
pub struct FunctionNames<'a> {
    profile: &'a Profile,
    shared: std::collections::HashMap<&'a str, usize>,
    /// Functions by address: (start, end, index), the latest loaded last.
    by_addr: Vec<(u64, u64, usize)>,
}

impl<'a> FunctionNames<'a> {
    /// The names of `profile`'s functions.
    pub fn new(profile: &'a Profile) -> FunctionNames<'a> {
        // Names that several functions share: sorted, not hashed (SipHash
        // over tens of thousands of C++ names cost more than the sort).
        let mut names: Vec<&str> = profile.functions.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        let mut shared = std::collections::HashMap::new();
        for run in names.chunk_by(|a, b| a == b).filter(|r| r.len() > 1) {
            shared.insert(run[0], run.len());
        }
        let mut by_addr: Vec<(u64, u64, usize)> = profile
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.addr, f.addr.saturating_add(f.code_len), i))
            .collect();
        by_addr.sort_unstable();
        FunctionNames {
            profile,
            shared,
            by_addr,
        }
    }

    /// The name of function `index`, told apart from others of that name.
    pub fn name(&self, index: usize) -> String {
        let f = &self.profile.functions[index];
        if !self.shared.contains_key(f.name.as_str()) {
            return f.name.clone();
        }
        let same_addr = self
            .by_addr
            .iter()
            .filter(|&&(a, _, i)| a == f.addr && self.profile.functions[i].name == f.name)
            .count();
        if same_addr > 1 {
            format!("{}@{:#x}#{index}", f.name, f.addr)
        } else {
            format!("{}@{:#x}", f.name, f.addr)
        }
    }

    /// The function holding absolute address `addr` (the last loaded).
    pub fn at(&self, addr: u64) -> Option<usize> {
        let i = self.by_addr.partition_point(|&(a, _, _)| a <= addr);
        self.by_addr[..i]
            .iter()
            .rev()
            .take(8)
            .find(|&&(a, end, _)| addr >= a && addr < end)
            .map(|&(_, _, i)| i)
    }

    /// ` -> callee` for a direct call of function `caller`, from the target
    /// its text gives (`// target = 0x147`, relative to the caller's
    /// start); empty when unknown.
    pub fn callee_note(&self, caller: usize, ins: &Instruction) -> String {
        if ins.kind != InstructionKind::Call {
            return String::new();
        }
        let Some(rel) = call_target(&ins.text) else {
            return String::new();
        };
        let base = self.profile.functions[caller].addr;
        let Some(addr) = base.checked_add_signed(rel) else {
            return String::new();
        };
        match self.at(addr) {
            Some(i) if self.profile.functions[i].addr == addr => format!(" -> {}", self.name(i)),
            Some(i) => format!(
                " -> {}+{:#x}",
                self.name(i),
                addr - self.profile.functions[i].addr
            ),
            None => String::new(),
        }
    }
}

/// The target of a direct call as Pulley's disassembly prints it
/// (`target = 0x147`, or `-0x20`), relative to the function's start.
pub fn call_target(text: &str) -> Option<i64> {
    let (_, t) = text.split_once("target = ")?;
    let t = t.split_whitespace().next()?;
    let (neg, hex) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let v = i64::from_str_radix(hex.strip_prefix("0x")?, 16).ok()?;
    Some(if neg { -v } else { v })
}

/// Writes the report of `profile` to `out`.
pub fn write_report(
    out: &mut dyn Write,
    profile: &Profile,
    options: &ReportOptions,
) -> io::Result<ReportTotals> {
    // Above a threshold only sampled functions can show.
    let functions = if options.threshold > 0.0 {
        profile.sampled_by_heat_indexed()
    } else {
        profile.functions_by_heat_indexed()
    };
    // The functions shown: over the threshold, at most `top`.
    let shown_count = functions
        .iter()
        .take_while(|f| profile.percent(f.1.samples) >= options.threshold)
        .count()
        .min(options.top.unwrap_or(usize::MAX));
    // Every function with samples is outlined (no text), since the
    // mid-instruction count covers them all, listed or not; only the
    // functions shown are decoded, code seen before (a function reloaded
    // many times) once, and big code shown is listed here already (its
    // listing follows the samples, so it is outlined once, not twice).
    let mut memo = ListingCache::default();
    let mut big = std::collections::HashMap::new();
    let mut totals = ReportTotals {
        samples: profile.total_samples,
        outside_functions: profile.unresolved,
        ..ReportTotals::default()
    };
    // Without instructions, no code is decoded at all: the count of samples
    // inside an instruction is left out (it would cost an outline of every
    // sampled function, the bulk of a report of a big program).
    for (rank, &(index, f)) in functions.iter().enumerate() {
        if f.samples == 0 || !options.instructions {
            continue;
        }
        let (inside, fell_back) =
            if options.instructions && rank < shown_count && f.code.len() > WHOLE_LISTING_BYTES {
                let l = decode_function(
                    &options.decoder,
                    &f.code,
                    f.listing.as_deref(),
                    f.hits.as_slice(),
                );
                let inside = instruction_hits(&l.instructions, f.hits.as_slice())
                    .iter()
                    .map(|h| h.1)
                    .sum();
                let fell_back = l.fell_back;
                big.insert(index, std::rc::Rc::new(l));
                (inside, fell_back)
            } else {
                inside_samples(
                    &options.decoder,
                    &f.code,
                    f.listing.as_deref(),
                    f.hits.as_slice(),
                )
            };
        totals.hex_fallbacks += usize::from(fell_back);
        totals.inside_instructions += inside;
    }

    write_summary(out, profile, &totals, options)?;

    let names = FunctionNames::new(profile);
    // With call stacks: each function's total share (counted once per
    // sample however often it recurs) beside its self share.
    let inclusive = profile.has_stacks().then(|| profile.inclusive_samples());
    if let Some(total) = &inclusive {
        write_totals(out, &names, total, options)?;
    }
    let mut shown = 0;
    for &(index, f) in functions.iter().take(shown_count) {
        shown += 1;
        let listing = (f.samples > 0 && options.instructions).then(|| match big.remove(&index) {
            Some(l) => l,
            None => memo.decode(
                &options.decoder,
                &f.code,
                f.listing.as_deref(),
                f.hits.as_slice(),
            ),
        });
        let total = inclusive.as_ref().and_then(|t| t.get(index).copied());
        write_function(out, &names, (index, f), total, listing.as_deref(), options)?;
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

/// Interpreters listed one per line in the summary; the rest share a line.
pub const INTERPRETER_LINES: usize = 16;

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
        bytes_text(profile.file_bytes)
    )?;
    let with_samples = profile.functions.iter().filter(|f| f.samples > 0).count();
    writeln!(
        out,
        "samples: {} in {} ({} sampled)",
        profile.total_samples,
        counted(profile.functions.len() as u64, "function"),
        with_samples
    )?;
    if options.instructions {
        writeln!(
            out,
            "not at an instruction: {} outside every function, {} inside an instruction rather than at its start",
            totals.outside_functions, totals.inside_instructions
        )?;
    } else {
        writeln!(
            out,
            "not at an instruction: {} outside every function (inside an instruction: not checked \
             without instructions)",
            totals.outside_functions
        )?;
    }
    if totals.hex_fallbacks > 0 {
        writeln!(
            out,
            "decoder: {} function(s) not valid Pulley bytecode, shown as hex (no instruction \
             listing in the file: see the README, \"Profile your own interpreter\")",
            totals.hex_fallbacks
        )?;
    }
    if let Some(note) = &options.decoder_note {
        writeln!(out, "decoder: {note}")?;
    }
    if matches!(
        options.decoder,
        DecoderChoice::Auto | DecoderChoice::AutoWith(_)
    ) {
        let isas: std::collections::BTreeSet<&str> = profile
            .functions
            .iter()
            .filter_map(|f| f.listing.as_deref().map(|l| l.isa.as_str()))
            .collect();
        if !isas.is_empty() {
            let isas: Vec<&str> = isas.into_iter().collect();
            writeln!(
                out,
                "decoder: {}, the instruction listings recorded in the file",
                isas.join(", ")
            )?;
        }
    }
    write_run(out, profile)?;
    if let Some(s) = profile.sampling_text() {
        writeln!(out, "sampling: {s}")?;
    } else if profile.format == Format::Native && !profile.converted_from_pulley() {
        writeln!(
            out,
            "sampling: not recorded (files before format version 2 do not say)"
        )?;
    }
    let all: u64 = profile.interpreters.iter().map(|i| i.samples).sum();
    if profile.interpreters.len() > 1 {
        writeln!(out, "interpreters: {}", profile.interpreters.len())?;
        let mut by_heat: Vec<_> = profile.interpreters.iter().collect();
        by_heat.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.id.cmp(&b.id)));
        let share = |n: u64| {
            if all == 0 {
                0.0
            } else {
                n as f64 * 100.0 / all as f64
            }
        };
        // The busiest few, then one line for the rest: a process with a
        // million short-lived interpreters still gets a readable report.
        let rest = by_heat.split_off(by_heat.len().min(INTERPRETER_LINES));
        for i in by_heat {
            let label = i
                .label
                .as_deref()
                .map(|l| format!(" {l:?}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {:6.2}% interpreter {}{label}: {}",
                share(i.samples),
                i.id,
                counted(i.samples, "sample")
            )?;
        }
        if !rest.is_empty() {
            let n: u64 = rest.iter().map(|i| i.samples).sum();
            writeln!(
                out,
                "  {:6.2}% {}: {}",
                share(n),
                counted(rest.len() as u64, "more interpreter"),
                counted(n, "sample")
            )?;
        }
    }
    if profile.total_samples != all {
        writeln!(
            out,
            "filter: {} of {} kept (one interpreter)",
            profile.total_samples,
            counted(all, "sample")
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
                duration_fixed_text(st.lateness_p50_ns),
                duration_fixed_text(st.lateness_p99_ns),
            )
        }
        (None, Format::Pulley) => writeln!(
            out,
            "run: not recorded (the Pulley format carries no run statistics)"
        ),
        (None, Format::Native) if profile.converted_from_pulley() => writeln!(
            out,
            "run: converted from a Pulley-format file: no run statistics, sample times are \
             synthetic"
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

/// The functions by total (inclusive) share, over the threshold, at most
/// `top`: `total% self% name`.
fn write_totals(
    out: &mut dyn Write,
    names: &FunctionNames<'_>,
    total: &[u64],
    options: &ReportOptions,
) -> io::Result<()> {
    let profile = names.profile;
    let tree = &profile.stacks;
    let stacked: u64 = tree
        .leaves
        .iter()
        .filter(|l| l.stack != 0)
        .map(|l| l.samples)
        .sum();
    writeln!(
        out,
        "call stacks: {stacked} of {} samples under a caller, {} truncated",
        profile.total_samples, tree.truncated_samples
    )?;
    let mut order: Vec<usize> = (0..total.len()).filter(|&i| total[i] > 0).collect();
    order.sort_by(|&a, &b| {
        total[b]
            .cmp(&total[a])
            .then_with(|| {
                profile.functions[b]
                    .samples
                    .cmp(&profile.functions[a].samples)
            })
            .then_with(|| profile.functions[a].name.cmp(&profile.functions[b].name))
    });
    writeln!(out, "  total    self  function")?;
    for &i in order
        .iter()
        .take_while(|&&i| profile.percent(total[i]) >= options.threshold)
        .take(options.top.unwrap_or(usize::MAX))
    {
        writeln!(
            out,
            "{:6.2}% {:6.2}%  {}",
            profile.percent(total[i]),
            profile.percent(profile.functions[i].samples),
            names.name(i)
        )?;
    }
    writeln!(out)
}

fn write_function(
    out: &mut dyn Write,
    names: &FunctionNames<'_>,
    (index, f): (usize, &FunctionProfile),
    total: Option<u64>,
    listing: Option<&Listing>,
    options: &ReportOptions,
) -> io::Result<()> {
    let profile = names.profile;
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
    let total = total
        .map(|t| format!(", total {:.2}%", profile.percent(t)))
        .unwrap_or_default();
    writeln!(
        out,
        "{bold}{pct:6.2}% {}{reset}  ({}{total}){note}",
        names.name(index),
        counted(f.samples, "sample")
    )?;
    if !options.instructions {
        return Ok(());
    }
    // A function without samples (threshold 0) still gets its listing.
    let owned;
    let listing = match listing {
        Some(l) => l,
        None => {
            owned = decode_function(
                &options.decoder,
                &f.code,
                f.listing.as_deref(),
                f.hits.as_slice(),
            );
            &owned
        }
    };
    let hits = instruction_hits(&listing.instructions, f.hits.as_slice());
    let annotated = |h: u64| share(h, f.samples) >= options.threshold;
    let hot: Vec<u64> = hits
        .iter()
        .map(|&(a, b)| a + b)
        .filter(|&h| h > 0 && annotated(h))
        .collect();
    let min = hot.iter().copied().min().unwrap_or(0);
    let max = hot.iter().copied().max().unwrap_or(0);
    // Unsampled instructions wait here; a long run (or one the listing
    // elided) prints as one line.
    let mut run = Fold::default();
    let mut elided = listing.elided.iter().peekable();
    for (k, (ins, &(at, inside))) in listing.instructions.iter().zip(&hits).enumerate() {
        while let Some(e) = elided.next_if(|e| e.at <= k) {
            run.elided(e.instructions, e.bytes);
        }
        let h = at + inside;
        if h == 0 {
            run.push(k, ins);
            continue;
        }
        run.flush(out, listing, names, index, options, ins.offset)?;
        run.printed(ins);
        let p = share(h, f.samples);
        let inside_note = if inside > 0 {
            format!("    ({inside} inside)")
        } else {
            String::new()
        };
        let callee = names.callee_note(index, ins);
        if !annotated(h) {
            writeln!(
                out,
                "\t        {:6x}: {}{callee}{inside_note}",
                ins.offset, ins.text
            )?;
            continue;
        }
        if options.color {
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
                "{b}\x1b[38;2;{r};{g};0m\t{p:6.2}% {:6x}: {}{callee}{inside_note}{RESET}",
                ins.offset, ins.text
            )?;
        } else {
            writeln!(
                out,
                "\t{p:6.2}% {:6x}: {}{callee}{inside_note}",
                ins.offset, ins.text
            )?;
        }
    }
    for e in elided {
        run.elided(e.instructions, e.bytes);
    }
    let end = u32::try_from(f.code_len).unwrap_or(u32::MAX);
    run.flush(out, listing, names, index, options, end)?;
    Ok(())
}

/// A run of unsampled instructions being gathered by the report.
#[derive(Default)]
struct Fold {
    /// Listed instructions of the run (indices in the listing).
    listed: Vec<usize>,
    /// Instructions and bytes the listing left out within the run.
    elided_instructions: u64,
    elided_bytes: u64,
    /// Bytes of the listed ones.
    listed_bytes: u64,
    /// Where the run starts: the offset after the last instruction printed.
    start: Option<u32>,
    /// The offset after the last instruction seen.
    next: u32,
}

impl Fold {
    fn push(&mut self, k: usize, ins: &Instruction) {
        self.start.get_or_insert(self.next);
        self.listed.push(k);
        self.listed_bytes += u64::from(ins.len);
        self.next = ins.offset.saturating_add(ins.len);
    }

    /// An instruction printed on its own line: a run starts after it.
    fn printed(&mut self, ins: &Instruction) {
        self.next = ins.offset.saturating_add(ins.len);
    }

    fn elided(&mut self, instructions: u64, bytes: u64) {
        self.start.get_or_insert(self.next);
        self.elided_instructions += instructions;
        self.elided_bytes += bytes;
    }

    /// Prints the run before the instruction at `until`: one line when it
    /// is long or has elided parts, else its instructions.
    fn flush(
        &mut self,
        out: &mut dyn Write,
        listing: &Listing,
        names: &FunctionNames<'_>,
        caller: usize,
        options: &ReportOptions,
        until: u32,
    ) -> io::Result<()> {
        let Some(start) = self.start.take() else {
            return Ok(());
        };
        let count = self.listed.len() as u64 + self.elided_instructions;
        let fold =
            self.elided_bytes > 0 || (!options.all_instructions && self.listed.len() >= FOLD_RUN);
        if fold {
            let bytes = self.listed_bytes + self.elided_bytes;
            let what = if listing.is_hex() && self.listed.is_empty() {
                String::new()
            } else {
                format!("{}, ", counted(count, "instruction"))
            };
            writeln!(
                out,
                "\t        {start:6x}: ... {what}{} not sampled (to {until:#x})",
                counted(bytes, "byte")
            )?;
        } else {
            for &k in &self.listed {
                let ins = &listing.instructions[k];
                writeln!(
                    out,
                    "\t        {:6x}: {}{}",
                    ins.offset,
                    ins.text,
                    names.callee_note(caller, ins)
                )?;
            }
        }
        self.listed.clear();
        self.listed_bytes = 0;
        self.elided_instructions = 0;
        self.elided_bytes = 0;
        Ok(())
    }
}
