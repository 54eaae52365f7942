//! Which decoder an analysis uses, and the one function that applies it.
//!
//! - [`DecoderChoice`] is what `--decoder` parses to, or a custom
//!   [`InstructionDecoder`] from an embedder.
//! - `auto` uses the listing the file carries for the function (its
//!   interpreter's own instruction set, see [`super::listed`]); without one
//!   it tries Pulley's disassembler and falls back to hex for a function
//!   whose bytes do not decode cleanly; without the `pulley` feature, Pulley
//!   and auto are hex.
//! - Hex listings get the function's samples, so a line starts at every
//!   sampled offset ([`HexDecoder::listing`]), and at every instruction of
//!   the file's listing when `--decoder hex` is asked of a self-describing
//!   file: hex never runs across a known instruction boundary.

use std::sync::Arc;

#[cfg(feature = "pulley")]
use super::InstructionKind;
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
    /// The instructions, in offset order, covering the code.
    pub instructions: Vec<Instruction>,
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
/// the samples); bounded, it starts over past [`ListingCache::MAX`] bodies,
/// so memory follows the listings in use rather than the profile's size.
#[derive(Debug, Default)]
pub struct ListingCache<'a> {
    by_code: std::collections::HashMap<&'a [u8], std::rc::Rc<Listing>>,
}

impl<'a> ListingCache<'a> {
    /// Distinct bodies kept at most.
    pub const MAX: usize = 4096;

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
        if !l.is_hex() {
            if self.by_code.len() >= Self::MAX {
                self.by_code.clear();
            }
            self.by_code.insert(code, l.clone());
        }
        l
    }
}

/// Decodes `code` with `choice`; `listed` is the listing the file carries
/// for it, if any. `hits` (the sampled offsets, may be empty) shapes the
/// hex listing: a line starts at every sampled offset (a sampled PC is an
/// instruction's start), so hex never runs across a known boundary.
pub fn decode_function(
    choice: &DecoderChoice,
    code: &[u8],
    listed: Option<&ListingRecord>,
    hits: &OffsetHits,
) -> Listing {
    // Hex lines also start at every instruction the file's listing knows
    // (`--decoder hex` on a self-describing file).
    let hex = |fell_back| Listing {
        decoder: "hex".to_string(),
        fell_back,
        instructions: match listed.filter(|l| l.code_len as usize == code.len()) {
            Some(l) => {
                let mut starts = hits.to_vec();
                starts.extend(listed_instructions(l).iter().map(|i| (i.offset, 1)));
                starts.sort_unstable_by_key(|s| s.0);
                starts.dedup_by_key(|s| s.0);
                HexDecoder::default().listing(code, &starts)
            }
            None => HexDecoder::default().listing(code, hits),
        },
    };
    if let (DecoderChoice::Auto, Some(l)) = (choice, listed)
        && l.code_len as usize == code.len()
    {
        return Listing {
            decoder: l.isa.clone(),
            fell_back: false,
            instructions: listed_instructions(l),
        };
    }
    match choice {
        DecoderChoice::Hex => hex(false),
        DecoderChoice::Custom(d) => Listing {
            decoder: d.name().to_string(),
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
                    decoder: "pulley".to_string(),
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
