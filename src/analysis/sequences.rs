//! Hot instruction sequences: candidates for macro-instructions
//! (superinstructions).
//!
//! - Each function with samples is outlined (Pulley's decoder, or any
//!   [`crate::disasm::InstructionDecoder`] through
//!   [`DecoderChoice::Custom`]), and only the instructions within a run of a
//!   sampled one get their opcode decoded ([`decode_around`]); it is cut
//!   into basic blocks: a block ends after
//!   a branch, call, return or undecodable instruction, and a new one starts
//!   at every branch target. The terminator belongs to its block, so a run
//!   may *end* with a branch (compare-and-branch fusion) but never crosses
//!   one; undecodable bytes are never part of a run.
//! - A *run* is `min_len..=max_len` consecutive instructions of one block
//!   (default 2 to 4). Runs are merged across functions and sites by their
//!   opcode sequence (mnemonics only: operands abstracted).
//! - Samples credited to an instruction are those at its first byte plus
//!   those inside it (as in the report). Only runs holding at least one
//!   sample count ("for each sampled instruction, the runs that contain
//!   it").
//! - **Weight** of a sequence = the samples on the instructions covered by
//!   at least one of its occurrences (an instruction shared by two
//!   overlapping occurrences, as in `a a a` for `a a`, counts once), so the
//!   weight never exceeds the total. **Share** = weight / all samples of the
//!   profile (after any interpreter filter), in percent. **Sites** = number
//!   of occurrences (function, offset) holding samples; the **top site** is
//!   the occurrence holding the most samples.
//! - Candidates rank by weight, then by length (longer first: a longer
//!   macro saves more dispatches for the same samples), then by opcodes.
//!   Shares of different candidates overlap (a run of 4 contains runs of 2)
//!   and do not add up to 100 %.
//! - Cost: one outline per sampled function, a decode for each instruction
//!   near a sample, and `max_len` runs per instruction; independent of the
//!   number of samples. Code bigger than
//!   [`crate::disasm::WHOLE_LISTING_BYTES`] is mined in its sampled blocks
//!   only, whose runs stop at the instructions left out between them.

use std::collections::HashMap;

use super::profile::Profile;
use super::text::{counted, share};
use crate::disasm::{DecoderChoice, InstructionKind, decode_around, instruction_hits};

/// Options of [`mine`].
#[derive(Debug, Clone)]
pub struct SequenceOptions {
    /// Shortest run, in instructions (at least 1; default 2).
    pub min_len: usize,
    /// Longest run, in instructions (default 4).
    pub max_len: usize,
    /// Keep the best this many candidates (`None`: all).
    pub top: Option<usize>,
    /// How to decode the bytecode. With `Auto`, functions that are not
    /// valid Pulley bytecode are skipped (hex chunks are not instructions).
    pub decoder: DecoderChoice,
}

impl Default for SequenceOptions {
    fn default() -> Self {
        SequenceOptions {
            min_len: 2,
            max_len: 4,
            top: Some(20),
            decoder: DecoderChoice::Auto,
        }
    }
}

/// One occurrence of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Name of the function.
    pub function: String,
    /// Byte offset of the first instruction in the function.
    pub offset: u32,
    /// Samples on the occurrence's instructions.
    pub samples: u64,
}

/// A hot opcode sequence: a macro-instruction candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The opcodes, in order.
    pub opcodes: Vec<String>,
    /// Weight: samples on the instructions its occurrences cover.
    pub samples: u64,
    /// Weight as a percentage of all samples.
    pub share: f64,
    /// Occurrences holding samples.
    pub sites: usize,
    /// The occurrence holding the most samples.
    pub top_site: Site,
}

/// The result of [`mine`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sequences {
    /// All samples of the profile (the denominator of the shares).
    pub total_samples: u64,
    /// Distinct sequences found, before `top` was applied.
    pub distinct: usize,
    /// Functions skipped because their bytes are not valid for the decoder.
    pub skipped_functions: Vec<String>,
    /// The candidates, best first.
    pub candidates: Vec<Candidate>,
    /// The options used.
    pub min_len: usize,
    /// The options used.
    pub max_len: usize,
}

#[derive(Debug)]
struct Agg {
    samples: u64,
    sites: usize,
    /// (samples, function index in heat order, offset) of the best site.
    top: (u64, usize, u32),
    /// Function index and instruction index where the last occurrence
    /// ended, to count shared instructions once.
    last_end: (usize, usize),
}

/// Mines the hot instruction sequences of `profile`.
pub fn mine(profile: &Profile, options: &SequenceOptions) -> Sequences {
    let min_len = options.min_len.max(1);
    let max_len = options.max_len.max(min_len);
    let functions = profile.sampled_by_heat();
    let mut interned: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut aggs: HashMap<Vec<u32>, Agg> = HashMap::new();
    let mut skipped = Vec::new();

    for (fi, f) in functions.iter().enumerate() {
        if f.samples == 0 {
            continue;
        }
        // Only runs that hold a sample count: the text of instructions
        // further than a run from every sample is never read.
        let listing = decode_around(
            &options.decoder,
            &f.code,
            f.listing.as_deref(),
            f.hits.as_slice(),
            max_len - 1,
        );
        if listing.fell_back {
            skipped.push(f.name.clone());
            continue;
        }
        let ins = &listing.instructions;
        let hits = instruction_hits(ins, f.hits.as_slice());
        // prefix[i] = samples on instructions [0, i).
        let mut prefix = Vec::with_capacity(ins.len() + 1);
        prefix.push(0u64);
        for &(a, b) in &hits {
            let last = prefix.last().copied().unwrap_or(0);
            prefix.push(last + a + b);
        }
        let mut targets: Vec<u32> = ins
            .iter()
            .filter_map(|i| match &i.kind {
                InstructionKind::Branch { targets, .. } => Some(targets.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        targets.sort_unstable();
        let ids: Vec<u32> = ins
            .iter()
            .map(|i| {
                if let Some(&id) = interned.get(&i.opcode) {
                    return id;
                }
                let id = names.len() as u32;
                names.push(i.opcode.clone());
                interned.insert(i.opcode.clone(), id);
                id
            })
            .collect();

        // Blocks: [start, end) ranges of instruction indices, undecodable
        // instructions left out.
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        // Big code lists its sampled blocks only: a run never crosses the
        // instructions left out between two of them.
        let gaps: Vec<usize> = listing.elided.iter().map(|e| e.at).collect();
        for (i, x) in ins.iter().enumerate() {
            if i > start
                && (targets.binary_search(&x.offset).is_ok() || gaps.binary_search(&i).is_ok())
            {
                blocks.push((start, i));
                start = i;
            }
            if x.kind == InstructionKind::Undecodable {
                blocks.push((start, i));
                start = i + 1;
            } else if x.kind.ends_block() {
                blocks.push((start, i + 1));
                start = i + 1;
            }
        }
        blocks.push((start, ins.len()));

        for &(b, e) in &blocks {
            for i in b..e {
                for len in min_len..=max_len {
                    let end = i + len;
                    if end > e {
                        break;
                    }
                    let w = prefix[end] - prefix[i];
                    if w == 0 {
                        continue;
                    }
                    let key = ids[i..end].to_vec();
                    let agg = aggs.entry(key).or_insert(Agg {
                        samples: 0,
                        sites: 0,
                        top: (0, fi, ins[i].offset),
                        last_end: (usize::MAX, 0),
                    });
                    // Occurrences of one key come in increasing `i` within a
                    // function: only the part past the previous one is new.
                    let from = if agg.last_end.0 == fi {
                        agg.last_end.1.max(i)
                    } else {
                        i
                    };
                    agg.samples += prefix[end] - prefix[from.min(end)];
                    agg.last_end = (fi, end);
                    agg.sites += 1;
                    if w > agg.top.0 {
                        agg.top = (w, fi, ins[i].offset);
                    }
                }
            }
        }
    }

    let distinct = aggs.len();
    let mut ranked: Vec<(Vec<u32>, Agg)> = aggs.into_iter().collect();
    let text = |k: &[u32]| -> Vec<String> {
        k.iter()
            .map(|&id| names.get(id as usize).cloned().unwrap_or_default())
            .collect()
    };
    ranked.sort_by(|(ka, a), (kb, b)| {
        b.samples
            .cmp(&a.samples)
            .then(kb.len().cmp(&ka.len()))
            .then_with(|| text(ka).cmp(&text(kb)))
    });
    if let Some(n) = options.top {
        ranked.truncate(n);
    }
    let candidates = ranked
        .into_iter()
        .map(|(key, a)| Candidate {
            opcodes: text(&key),
            samples: a.samples,
            share: share(a.samples, profile.total_samples),
            sites: a.sites,
            top_site: Site {
                function: functions
                    .get(a.top.1)
                    .map(|f| f.name.clone())
                    .unwrap_or_default(),
                offset: a.top.2,
                samples: a.top.0,
            },
        })
        .collect();
    Sequences {
        total_samples: profile.total_samples,
        distinct,
        skipped_functions: skipped,
        candidates,
        min_len,
        max_len,
    }
}

/// The sequence column of a table of candidates: each candidate's opcodes
/// as text, and the column's width (at least the header's). Shared by the
/// one-program and the suite tables so their columns line up alike.
pub(crate) fn sequence_column<'a>(
    candidates: impl Iterator<Item = &'a [String]>,
) -> (Vec<String>, usize) {
    let seqs: Vec<String> = candidates.map(|ops| ops.join(" ; ")).collect();
    let width = seqs
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    (seqs, width)
}

/// Writes `sequences` as a table.
pub fn write_sequences(
    out: &mut dyn std::io::Write,
    profile: &Profile,
    sequences: &Sequences,
) -> std::io::Result<()> {
    writeln!(
        out,
        "hot instruction sequences of {} ({} format): {}, runs of {} to {} instructions \
         within basic blocks, merged by opcode",
        profile.path.display(),
        profile.format,
        counted(sequences.total_samples, "sample"),
        sequences.min_len,
        sequences.max_len
    )?;
    writeln!(
        out,
        "samples = samples on the instructions the occurrences cover; share = samples / all samples; \
         sites = occurrences with samples"
    )?;
    if !sequences.skipped_functions.is_empty() {
        writeln!(
            out,
            "skipped (not decodable): {}",
            sequences.skipped_functions.join(", ")
        )?;
    }
    if sequences.candidates.is_empty() {
        writeln!(out, "no sampled instruction sequence found")?;
        return Ok(());
    }
    writeln!(out)?;
    let (seqs, width) = sequence_column(sequences.candidates.iter().map(|c| &c.opcodes[..]));
    writeln!(
        out,
        "rank   share     samples  sites  {:width$}  top site",
        "sequence"
    )?;
    for (i, (c, s)) in sequences.candidates.iter().zip(&seqs).enumerate() {
        writeln!(
            out,
            "{:>4} {:6.2}% {:>11} {:>6}  {s:width$}  {}+{:#x} ({})",
            i + 1,
            c.share,
            c.samples,
            c.sites,
            c.top_site.function,
            c.top_site.offset,
            counted(c.top_site.samples, "sample")
        )?;
    }
    writeln!(
        out,
        "\n{} distinct sequences; shares overlap (a run contains shorter runs)",
        sequences.distinct
    )
}
