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
//! - This file: the instruction types, and how samples (counted per byte
//!   offset) are credited to instructions.
//! - Decoding never panics on bad bytecode: what cannot be decoded becomes one
//!   [`InstructionKind::Undecodable`] instruction covering the rest of the body.

use std::fmt;

pub mod choice;
pub mod hex;
pub mod listed;

pub use choice::{DecoderChoice, Listing, ListingCache, decode_function};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_hits_split_start_and_inside() {
        let code = [0u8; 8];
        let l = HexDecoder { width: 4 }.decode(&code);
        let hits = [1, 0, 2, 0, 0, 0, 0, 3];
        assert_eq!(instruction_hits(&l, &hits), vec![(1, 2), (0, 3)]);
    }
}
