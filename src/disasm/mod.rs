//! Instruction decoding for reports, exports and sequence mining.
//!
//! - A profile stores raw bytecode; turning it into instructions is the job of
//!   an [`InstructionDecoder`], so interpreters other than Pulley plug in their
//!   own.
//! - [`hex`]: [`HexDecoder`], the fall-back for bytecode nobody can decode:
//!   fixed-width chunks shown as hex, never a basic-block boundary.
//! - [`listed`]: the listings a profile carries (its interpreter's own
//!   instruction set, recorded at registration) as instructions, and
//!   [`RecordedDecoder`], which records a decoder written for reports.
//! - [`choice`]: [`DecoderChoice`] (`--decoder auto|pulley|hex` or a custom
//!   decoder) and [`decode_function`], the one place every analysis picks
//!   its decoder, so none of them depends on another's module.
//! - This file: the instruction types, and how samples (counted per sampled
//!   byte offset, [`OffsetHits`]) are credited to instructions.
//! - Decoding never panics on bad bytecode: what cannot be decoded becomes one
//!   [`InstructionKind::Undecodable`] instruction covering the rest of the body.

use std::fmt;

pub mod choice;
pub mod hex;
pub mod listed;

pub use choice::{
    DecoderChoice, Elided, Listing, ListingCache, WHOLE_LISTING_BYTES, decode_around,
    decode_function, decode_sampled, inside_samples,
};
pub use hex::HexDecoder;
pub use listed::{RecordedDecoder, listed_instructions};

/// How an instruction affects control flow; sequence mining splits basic
/// blocks at everything but [`InstructionKind::Plain`]. The same type as a
/// recorded listing's [`Flow`](crate::format::Flow), so a listing read from a
/// file and one decoded here need no translation.
pub use crate::format::Flow as InstructionKind;

/// One decoded instruction of a function body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Byte offset of the instruction's first byte within the function.
    pub offset: u32,
    /// Encoded length in bytes (at least 1).
    pub len: u32,
    /// Opcode mnemonic without operands (`xadd32`, `br_if_xslt32`): the key
    /// under which sequences are merged across functions.
    pub opcode: String,
    /// Full disassembly text with operands.
    pub text: String,
    /// Control-flow effect.
    pub kind: InstructionKind,
}

/// Decodes a function body into instructions.
pub trait InstructionDecoder: Send + Sync + fmt::Debug {
    /// Short name of the bytecode this decodes (`pulley`, `hex`).
    fn name(&self) -> &'static str;
    /// Decodes `code` completely. Instructions are in offset order, do not
    /// overlap and cover `code` from offset 0 to its end.
    fn decode(&self, code: &[u8]) -> Vec<Instruction>;

    /// The instructions of `code` without their text, each as (offset,
    /// length, control flow), in the order of [`InstructionDecoder::decode`]:
    /// the cheap pass over code too big to list whole (a function of tens
    /// of megabytes), whose sampled instructions alone are then decoded
    /// with [`InstructionDecoder::decode_at`]. The default decodes
    /// everything; decoders of big code override it.
    fn outline(&self, code: &[u8], each: &mut dyn FnMut(u32, u32, &InstructionKind)) {
        for i in self.decode(code) {
            each(i.offset, i.len, &i.kind);
        }
    }

    /// The instruction starting at `offset` (one that
    /// [`InstructionDecoder::outline`] reports), with its text. The default
    /// decodes everything.
    fn decode_at(&self, code: &[u8], offset: u32) -> Option<Instruction> {
        self.decode(code).into_iter().find(|i| i.offset == offset)
    }

    /// The instruction starting at `offset` with its opcode, length and
    /// control flow, its `text` possibly empty: what sequence mining needs,
    /// where printing the operands would be most of the cost. The default
    /// is [`InstructionDecoder::decode_at`].
    fn opcode_at(&self, code: &[u8], offset: u32) -> Option<Instruction> {
        self.decode_at(code, offset)
    }
}

/// Index of the instruction that starts exactly at `offset`, if any.
pub fn instruction_at(instructions: &[Instruction], offset: u32) -> Option<usize> {
    instructions
        .binary_search_by_key(&offset, |i| i.offset)
        .ok()
}

/// Index of the instruction whose bytes include `offset`, if any.
pub fn containing_instruction(instructions: &[Instruction], offset: u64) -> Option<usize> {
    let i = instructions
        .partition_point(|ins| u64::from(ins.offset) <= offset)
        .checked_sub(1)?;
    let ins = &instructions[i];
    (offset < u64::from(ins.offset) + u64::from(ins.len.max(1))).then_some(i)
}

/// Samples at the sampled byte offsets of a function, in offset order
/// (offsets distinct): a profile's
/// [`Hits::as_slice`](crate::analysis::profile::Hits::as_slice).
pub type OffsetHits = [(u32, u64)];

/// The samples at offsets in `[start, end)`.
pub(crate) fn hits_in(hits: &OffsetHits, start: u32, end: u32) -> &OffsetHits {
    let from = hits.partition_point(|h| h.0 < start);
    let to = hits.partition_point(|h| h.0 < end);
    &hits[from..to.max(from)]
}

/// Samples per instruction, wherever in its bytes they fell.
pub fn instruction_totals(instructions: &[Instruction], hits: &OffsetHits) -> Vec<u64> {
    instruction_hits(instructions, hits)
        .into_iter()
        .map(|(at, inside)| at + inside)
        .collect()
}

/// Samples credited to each instruction: `(at its start, inside it)`.
/// Samples at offsets no instruction covers are ignored (a decoder breaking
/// its contract).
pub fn instruction_hits(instructions: &[Instruction], hits: &OffsetHits) -> Vec<(u64, u64)> {
    if hits.is_empty() {
        return vec![(0, 0); instructions.len()];
    }
    instructions
        .iter()
        .map(|i| {
            let end = i.offset.saturating_add(i.len);
            let mut at = 0;
            let mut inside = 0;
            for &(o, n) in hits_in(hits, i.offset, end) {
                if o == i.offset {
                    at += n;
                } else {
                    inside += n;
                }
            }
            (at, inside)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_hits_split_start_and_inside() {
        let code = [0u8; 8];
        let l = HexDecoder { width: 4 }.decode(&code);
        let hits = [(0, 1), (2, 2), (7, 3)];
        assert_eq!(instruction_hits(&l, &hits), vec![(1, 2), (0, 3)]);
    }
}
