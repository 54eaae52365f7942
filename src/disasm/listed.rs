//! Listings a profile carries (format version 2), both ways.
//!
//! - [`listed_instructions`]: a file's [`ListingRecord`] as the
//!   [`Instruction`]s every analysis works on (offsets are the running sum
//!   of the lengths; mnemonics come from the record's table).
//! - [`RecordedDecoder`]: an [`InstructionDecoder`] written for reports,
//!   given to the profiler as its [`InstructionSet`], so the same decoder
//!   that would be a plug-in goes into the file instead.

use std::sync::Arc;

use super::{Instruction, InstructionDecoder};
use crate::format::ListingRecord;
use crate::isa::{InstructionSet, ListingBuilder};

/// The instructions of a listing read from a file.
pub fn listed_instructions(listing: &ListingRecord) -> Vec<Instruction> {
    let mut offset: u32 = 0;
    listing
        .instructions
        .iter()
        .map(|i| {
            let opcode = listing.mnemonic(i).to_string();
            let text = if i.operands.is_empty() {
                opcode.clone()
            } else {
                format!("{opcode} {}", i.operands)
            };
            let ins = Instruction {
                offset,
                len: i.len,
                opcode,
                text,
                kind: i.flow.clone(),
            };
            offset = offset.saturating_add(i.len);
            ins
        })
        .collect()
}

/// An [`InstructionDecoder`] recorded into the profile: give it to
/// `Profiler::builder().instruction_set(...)`.
#[derive(Debug, Clone)]
pub struct RecordedDecoder(pub Arc<dyn InstructionDecoder>);

impl RecordedDecoder {
    /// Wraps `decoder` for the profiler.
    pub fn new(decoder: impl InstructionDecoder + 'static) -> Arc<RecordedDecoder> {
        Arc::new(RecordedDecoder(Arc::new(decoder)))
    }
}

impl InstructionSet for RecordedDecoder {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn decode(&self, code: &[u8], out: &mut ListingBuilder) {
        for i in self.0.decode(code) {
            // A decoder that skips bytes breaks its contract: stop there and
            // let the rest be undecodable rather than shift every offset.
            if i.offset != out.offset() {
                return;
            }
            let operands = i
                .text
                .strip_prefix(i.opcode.as_str())
                .map_or(i.text.as_str(), str::trim_start);
            if !out.push(i.len, &i.opcode, operands, i.kind) {
                return;
            }
        }
    }
}
