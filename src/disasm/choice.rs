//! Which decoder an analysis uses, and the one function that applies it.
//!
//! - [`DecoderChoice`] is what `--decoder` parses to, or a custom
//!   [`InstructionDecoder`] from an embedder.
//! - `auto` uses the listing the file carries for the function (its
//!   interpreter's own instruction set, see [`super::listed`]); without one
//!   it tries Pulley's disassembler and falls back to hex for a function
//!   whose bytes do not decode cleanly; without the `pulley` feature, Pulley
//!   and auto are hex.
//! - Code bigger than [`WHOLE_LISTING_BYTES`] is listed by its sampled
//!   basic blocks only ([`Listing::elided`] counts what lies between): a
//!   decoder's cheap [`InstructionDecoder::outline`] pass finds the blocks,
//!   and only their instructions get text, so a 23 MB function with a few
//!   samples costs a walk, not millions of strings.
//! - Hex listings get the function's samples, so a line starts at every
//!   sampled offset ([`HexDecoder::listing`]), and at every instruction of
//!   the file's listing when `--decoder hex` is asked of a self-describing
//!   file: hex never runs across a known instruction boundary.

use std::sync::Arc;

use super::{HexDecoder, Instruction, InstructionDecoder, OffsetHits, listed_instructions};
use crate::format::ListingRecord;

/// Which decoder turns a function's bytes into instructions.
#[derive(Debug, Clone, Default)]
pub enum DecoderChoice {
    /// The file's listing of the function when it has one; otherwise
    /// Pulley's disassembler, and a function with any undecodable byte is
    /// shown as hex instead.
    #[default]
    Auto,
    /// Pulley's disassembler, whatever it makes of the bytes (undecodable
    /// tails shown as such). Without the `pulley` feature: hex.
    Pulley,
    /// A plain hex listing.
    Hex,
    /// A decoder for another bytecode.
    Custom(Arc<dyn InstructionDecoder>),
    /// As [`DecoderChoice::Auto`], with this decoder instead of Pulley's
    /// latest table (Pulley bytecode of an older Wasmtime, `--pulley-version`).
    AutoWith(Arc<dyn InstructionDecoder>),
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
    /// Name of the decoder used (`pulley`, `hex`, the custom decoder's, or
    /// the instruction set named by the file's listing).
    pub decoder: String,
    /// `auto` fell back to hex because the bytes did not decode cleanly.
    pub fell_back: bool,
    /// The instructions, in offset order, covering the code (but for the
    /// runs in `elided`).
    pub instructions: Vec<Instruction>,
    /// Runs of unsampled basic blocks left out of `instructions` (code
    /// bigger than [`WHOLE_LISTING_BYTES`]), in offset order; empty when the
    /// listing is whole.
    pub elided: Vec<Elided>,
}

/// Code bigger than this is listed by its sampled basic blocks only.
pub const WHOLE_LISTING_BYTES: usize = 256 << 10;

/// Instructions at most kept of one sampled basic block of big code: a
/// block longer than this (straight-line code of megabytes) is cut.
const BLOCK_INSTRUCTIONS: usize = 4096;

/// A run of instructions a [`Listing`] leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elided {
    /// Index in [`Listing::instructions`] of the instruction after the run
    /// (its length when the run ends the code).
    pub at: usize,
    /// Instructions in the run (0 for hex, whose lines follow the samples).
    pub instructions: u64,
    /// Bytes in the run.
    pub bytes: u64,
}

impl Listing {
    /// Whether this is the hex fall-back, whose lines follow the samples
    /// rather than the code: [`HexDecoder::listing`], [`HexDecoder::line_at`].
    pub fn is_hex(&self) -> bool {
        self.decoder == "hex"
    }
}

/// Listings already made, by code: a function reloaded many times (or the
/// same function in both profiles of a diff) is decoded once. Only listings
/// that depend on the code alone are kept (the hex fall-back's lines follow
/// the samples); bounded, it starts over past [`ListingCache::MAX`] bodies
/// or [`ListingCache::MAX_INSTRUCTIONS`] instructions, so memory follows
/// the listings in use rather than the profile's size (the hundreds of
/// sampled functions of a real C++ program, kept whole, were 130 MB).
#[derive(Debug, Default)]
pub struct ListingCache<'a> {
    by_code: std::collections::HashMap<
        &'a [u8],
        std::rc::Rc<Listing>,
        std::hash::BuildHasherDefault<CodeHasher>,
    >,
    instructions: usize,
}

impl<'a> ListingCache<'a> {
    /// Distinct bodies kept at most.
    pub const MAX: usize = 4096;
    /// Instructions kept at most, over all bodies.
    pub const MAX_INSTRUCTIONS: usize = 1 << 16;

    /// [`decode_function`], or the listing made before for the same code.
    pub fn decode(
        &mut self,
        choice: &DecoderChoice,
        code: &'a [u8],
        listed: Option<&ListingRecord>,
        hits: &OffsetHits,
    ) -> std::rc::Rc<Listing> {
        if let Some(l) = self.by_code.get(code) {
            return l.clone();
        }
        let l = std::rc::Rc::new(decode_function(choice, code, listed, hits));
        // Hex lines, and the blocks listed of big code, follow the samples.
        let n = l.instructions.len();
        if !l.is_hex() && l.elided.is_empty() && n <= Self::MAX_INSTRUCTIONS / 4 {
            if self.by_code.len() >= Self::MAX || self.instructions + n > Self::MAX_INSTRUCTIONS {
                self.by_code.clear();
                self.instructions = 0;
            }
            self.instructions += n;
            self.by_code.insert(code, l.clone());
        }
        l
    }
}

/// Hashes code with CRC-32 (SIMD, gigabytes a second): SipHash over a
/// function of tens of megabytes cost more than decoding its samples.
#[derive(Default)]
struct CodeHasher(u64);

impl std::hash::Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let crc = crc32fast::hash(bytes);
        self.0 = (self.0.rotate_left(32) ^ u64::from(crc)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The samples of `hits` that fall inside an instruction rather than at
/// its start, under `choice` (as [`decode_function`] would list the code),
/// and whether `auto` would fall back to hex: the report's count over
/// every sampled function, from the decoder's cheap outline (no text).
pub fn inside_samples(
    choice: &DecoderChoice,
    code: &[u8],
    listed: Option<&ListingRecord>,
    hits: &OffsetHits,
) -> (u64, bool) {
    if hits.is_empty() {
        return (0, false);
    }
    let auto = matches!(choice, DecoderChoice::Auto | DecoderChoice::AutoWith(_));
    if auto
        && let Some(l) = listed
        && l.code_len as usize == code.len()
    {
        let ins = listed_instructions(l);
        let inside = super::instruction_hits(&ins, hits)
            .iter()
            .map(|h| h.1)
            .sum();
        return (inside, false);
    }
    let outline_inside = |d: &dyn InstructionDecoder| {
        let mut inside = 0;
        let mut clean = true;
        d.outline(code, &mut |offset, len, kind| {
            if *kind == super::InstructionKind::Undecodable {
                clean = false;
            }
            inside += super::hits_in(hits, offset.saturating_add(1), offset.saturating_add(len))
                .iter()
                .map(|h| h.1)
                .sum::<u64>();
        });
        (inside, clean)
    };
    // Hex lines start at every sampled offset: nothing is inside one.
    let (inside, clean) = match choice {
        DecoderChoice::Hex => return (0, false),
        DecoderChoice::Custom(d) => return (outline_inside(d.as_ref()).0, false),
        DecoderChoice::AutoWith(d) => outline_inside(d.as_ref()),
        #[cfg(feature = "pulley")]
        DecoderChoice::Pulley => return (outline_inside(&crate::pulley::PulleyDecoder).0, false),
        #[cfg(feature = "pulley")]
        DecoderChoice::Auto => outline_inside(&crate::pulley::PulleyDecoder),
        #[cfg(not(feature = "pulley"))]
        DecoderChoice::Pulley | DecoderChoice::Auto => return (0, false),
    };
    if clean { (inside, false) } else { (0, true) }
}

/// Decodes `code` with `choice`; `listed` is the listing the file carries
/// for it, if any. `hits` (the sampled offsets, may be empty) shapes the
/// hex listing: a line starts at every sampled offset (a sampled PC is an
/// instruction's start), so hex never runs across a known boundary; and it
/// picks the blocks listed of code bigger than [`WHOLE_LISTING_BYTES`].
pub fn decode_function(
    choice: &DecoderChoice,
    code: &[u8],
    listed: Option<&ListingRecord>,
    hits: &OffsetHits,
) -> Listing {
    decode_listing(choice, code, listed, hits, code.len() > WHOLE_LISTING_BYTES)
}

/// Like [`decode_function`], listing only the sampled basic blocks
/// whatever the code's size: what a view that shows a function's hottest
/// instruction, not its listing, needs (the HTML table's rows past those
/// it disassembles). The outline pass walks the code; only the sampled
/// blocks get their text.
pub fn decode_sampled(
    choice: &DecoderChoice,
    code: &[u8],
    listed: Option<&ListingRecord>,
    hits: &OffsetHits,
) -> Listing {
    decode_listing(choice, code, listed, hits, true)
}

/// The whole instruction stream of `code` as [`decode_function`] gives it,
/// with the opcode ([`InstructionDecoder::opcode_at`]: the operands' text
/// may be left empty) only for the instructions within `reach`
/// instructions of a sampled one; the others keep their offset, length and
/// control flow, with empty opcode and text. What sequence mining
/// needs: every block boundary (branch targets anywhere in the function)
/// and the opcodes of the runs that hold a sample, at the cost of the
/// cheap outline pass plus a few decodes a sample. Hex, a listing the file
/// carries, code a lenient choice cannot decode and code bigger than
/// [`WHOLE_LISTING_BYTES`] (listed by its sampled blocks) take
/// [`decode_function`]'s path.
pub fn decode_around(
    choice: &DecoderChoice,
    code: &[u8],
    listed: Option<&ListingRecord>,
    hits: &OffsetHits,
    reach: usize,
) -> Listing {
    let full = || decode_function(choice, code, listed, hits);
    if code.len() > WHOLE_LISTING_BYTES {
        // Its sampled blocks: an instruction a few bytes of memory, not
        // millions of them.
        return full();
    }
    let listed_fits = listed.is_some_and(|l| l.code_len as usize == code.len());
    let (d, strict): (&dyn InstructionDecoder, bool) = match choice {
        DecoderChoice::Hex => return full(),
        _ if listed_fits && matches!(choice, DecoderChoice::Auto | DecoderChoice::AutoWith(_)) => {
            return full();
        }
        DecoderChoice::Custom(d) => (d.as_ref(), true),
        DecoderChoice::AutoWith(d) => (d.as_ref(), false),
        #[cfg(feature = "pulley")]
        DecoderChoice::Pulley => (&crate::pulley::PulleyDecoder, true),
        #[cfg(feature = "pulley")]
        DecoderChoice::Auto => (&crate::pulley::PulleyDecoder, false),
        #[cfg(not(feature = "pulley"))]
        DecoderChoice::Pulley | DecoderChoice::Auto => return full(),
    };
    let mut instructions = Vec::new();
    let mut clean = true;
    d.outline(code, &mut |offset, len, kind| {
        clean &= *kind != super::InstructionKind::Undecodable;
        instructions.push(Instruction {
            offset,
            len,
            opcode: String::new(),
            text: String::new(),
            kind: kind.clone(),
        });
    });
    if !clean && !strict {
        return full();
    }
    // Instructions holding samples (at their start or inside), then every
    // one within `reach` of them.
    let mut wanted = vec![false; instructions.len()];
    let mut h = 0;
    for (k, i) in instructions.iter().enumerate() {
        while h < hits.len() && hits[h].0 < i.offset {
            h += 1;
        }
        if h < hits.len() && hits[h].0 < i.offset.saturating_add(i.len) {
            let from = k.saturating_sub(reach);
            let to = (k + reach + 1).min(wanted.len());
            wanted[from..to].fill(true);
        }
    }
    for (i, _) in instructions.iter_mut().zip(&wanted).filter(|(_, w)| **w) {
        if i.kind == super::InstructionKind::Undecodable {
            continue;
        }
        match d.opcode_at(code, i.offset) {
            Some(full) if full.len == i.len => *i = full,
            // The outline said an instruction starts here; a decoder that
            // disagrees gets its bytes shown as undecodable.
            _ => {
                i.opcode = "<undecodable>".to_string();
                i.kind = super::InstructionKind::Undecodable;
            }
        }
    }
    Listing {
        decoder: d.name().to_string(),
        fell_back: false,
        instructions,
        elided: Vec::new(),
    }
}

fn decode_listing(
    choice: &DecoderChoice,
    code: &[u8],
    listed: Option<&ListingRecord>,
    hits: &OffsetHits,
    big: bool,
) -> Listing {
    let listing = |decoder: &str, fell_back, instructions, elided| Listing {
        decoder: decoder.to_string(),
        fell_back,
        instructions,
        elided,
    };
    // Hex lines also start at every instruction the file's listing knows
    // (`--decoder hex` on a self-describing file).
    let hex = |fell_back| {
        let mut starts = hits.to_vec();
        if let Some(l) = listed.filter(|l| l.code_len as usize == code.len()) {
            starts.extend(listed_instructions(l).iter().map(|i| (i.offset, 1)));
            starts.sort_unstable_by_key(|s| s.0);
            starts.dedup_by_key(|s| s.0);
        }
        if big {
            let (instructions, elided) = sampled_hex(code, &starts);
            listing("hex", fell_back, instructions, elided)
        } else {
            let instructions = HexDecoder::default().listing(code, &starts);
            listing("hex", fell_back, instructions, Vec::new())
        }
    };
    if matches!(choice, DecoderChoice::Auto | DecoderChoice::AutoWith(_))
        && let Some(l) = listed
        && l.code_len as usize == code.len()
    {
        return listing(&l.isa, false, listed_instructions(l), Vec::new());
    }
    // With `strict`, undecodable bytes are shown as such; else the
    // function falls back to hex.
    let with = |d: &dyn InstructionDecoder, strict: bool| {
        let (instructions, elided, clean) = if big {
            sampled_blocks(d, code, hits)
        } else {
            let instructions = d.decode(code);
            let clean = !instructions
                .iter()
                .any(|i| i.kind == super::InstructionKind::Undecodable);
            (instructions, Vec::new(), clean)
        };
        if clean || strict {
            listing(d.name(), false, instructions, elided)
        } else {
            hex(true)
        }
    };
    match choice {
        DecoderChoice::Hex => hex(false),
        DecoderChoice::Custom(d) => with(d.as_ref(), true),
        DecoderChoice::AutoWith(d) => with(d.as_ref(), false),
        #[cfg(feature = "pulley")]
        DecoderChoice::Pulley => with(&crate::pulley::PulleyDecoder, true),
        #[cfg(feature = "pulley")]
        DecoderChoice::Auto => with(&crate::pulley::PulleyDecoder, false),
        #[cfg(not(feature = "pulley"))]
        DecoderChoice::Pulley | DecoderChoice::Auto => hex(false),
    }
}

/// The sampled basic blocks of big code: their instructions, the runs
/// between them, and whether the code decoded to its end.
fn sampled_blocks(
    d: &dyn InstructionDecoder,
    code: &[u8],
    hits: &OffsetHits,
) -> (Vec<Instruction>, Vec<Elided>, bool) {
    let mut out = Vec::new();
    let mut elided = Vec::new();
    let mut run = (0u64, 0u64);
    let mut block: Vec<(u32, u32)> = Vec::new();
    let mut clean = true;
    let mut end_block = |block: &mut Vec<(u32, u32)>, out: &mut Vec<Instruction>| {
        let (Some(&(start, _)), Some(&(last, len))) = (block.first(), block.last()) else {
            return;
        };
        let end = last.saturating_add(len);
        if super::hits_in(hits, start, end).is_empty() {
            run.0 += block.len() as u64;
            run.1 += u64::from(end - start);
        } else {
            if run.0 > 0 {
                elided.push(Elided {
                    at: out.len(),
                    instructions: run.0,
                    bytes: run.1,
                });
                run = (0, 0);
            }
            for &(offset, len) in block.iter() {
                // The outline said an instruction starts here; a decoder
                // that disagrees gets its bytes shown as undecodable.
                let ins = d.decode_at(code, offset).unwrap_or_else(|| Instruction {
                    offset,
                    len,
                    opcode: "<undecodable>".to_string(),
                    text: String::new(),
                    kind: super::InstructionKind::Undecodable,
                });
                out.push(ins);
            }
        }
        block.clear();
    };
    d.outline(code, &mut |offset, len, kind| {
        if *kind == super::InstructionKind::Undecodable {
            clean = false;
        }
        block.push((offset, len));
        if kind.ends_block() || block.len() >= BLOCK_INSTRUCTIONS {
            end_block(&mut block, &mut out);
        }
    });
    end_block(&mut block, &mut out);
    if run.0 > 0 {
        elided.push(Elided {
            at: out.len(),
            instructions: run.0,
            bytes: run.1,
        });
    }
    (out, elided, clean)
}

/// Hex lines of big code at its sampled offsets only (each up to the next
/// sampled offset, at most 4 bytes), the bytes between elided.
fn sampled_hex(code: &[u8], starts: &OffsetHits) -> (Vec<Instruction>, Vec<Elided>) {
    let hex = HexDecoder::default();
    let mut out = Vec::new();
    let mut elided = Vec::new();
    let mut at = 0u64;
    for (k, &(o, _)) in starts.iter().enumerate() {
        let next = starts
            .get(k + 1)
            .map_or(code.len() as u64, |n| u64::from(n.0));
        let width = (next.saturating_sub(u64::from(o))).min(u64::from(hex.width)) as u32;
        let Some(line) = HexDecoder { width }.line_at(code, o as usize) else {
            continue;
        };
        if u64::from(o) > at {
            elided.push(Elided {
                at: out.len(),
                instructions: 0,
                bytes: u64::from(o) - at,
            });
        }
        at = u64::from(o) + u64::from(line.len);
        out.push(line);
    }
    if (code.len() as u64) > at {
        elided.push(Elided {
            at: out.len(),
            instructions: 0,
            bytes: code.len() as u64 - at,
        });
    }
    (out, elided)
}
