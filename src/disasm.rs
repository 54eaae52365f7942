//! Instruction decoding for reports and sequence mining.
//!
//! - A profile stores raw bytecode; turning it into instructions is the job of
//!   an [`InstructionDecoder`], so interpreters other than Pulley plug in their
//!   own.
//! - [`HexDecoder`] is the fall-back for bytecode nobody can decode: fixed-width
//!   chunks shown as hex, never a basic-block boundary.
//! - Decoding never panics on bad bytecode: what cannot be decoded becomes one
//!   [`InstructionKind::Undecodable`] instruction covering the rest of the body.

use std::fmt;

/// How an instruction affects control flow; sequence mining splits basic
/// blocks at everything but [`InstructionKind::Plain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstructionKind {
    /// Falls through to the next instruction.
    Plain,
    /// A conditional or unconditional branch; `targets` are byte offsets from
    /// the start of the function (targets outside it are dropped).
    Branch {
        /// Offsets of the possible destinations within the function.
        targets: Vec<u32>,
        /// Whether execution may also fall through to the next instruction.
        conditional: bool,
    },
    /// A call (direct or indirect); control returns to the next instruction.
    Call,
    /// A return, trap or other instruction after which the block ends.
    Return,
    /// Bytes that could not be decoded; covers the rest of the body.
    Undecodable,
}

impl InstructionKind {
    /// Whether a basic block ends after this instruction.
    pub fn ends_block(&self) -> bool {
        !matches!(self, InstructionKind::Plain)
    }
}

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

/// Fall-back decoder: shows the bytes in fixed-width chunks of hex.
#[derive(Clone, Copy, Debug)]
pub struct HexDecoder {
    /// Bytes per listed line (at least 1).
    pub width: u32,
}

impl Default for HexDecoder {
    fn default() -> Self {
        HexDecoder { width: 4 }
    }
}

impl InstructionDecoder for HexDecoder {
    fn name(&self) -> &'static str {
        "hex"
    }

    fn decode(&self, code: &[u8]) -> Vec<Instruction> {
        let width = self.width.max(1) as usize;
        code.chunks(width)
            .enumerate()
            .map(|(i, chunk)| {
                let text = chunk
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                Instruction {
                    offset: (i * width) as u32,
                    len: chunk.len() as u32,
                    opcode: "bytes".to_string(),
                    text,
                    kind: InstructionKind::Plain,
                }
            })
            .collect()
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
