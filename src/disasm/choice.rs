//! Which decoder an analysis uses, and the one function that applies it.
//!
//! - [`DecoderChoice`] is what `--decoder` parses to, or a custom
//!   [`InstructionDecoder`] from an embedder.
//! - `auto` tries Pulley's disassembler and falls back to hex for a function
//!   whose bytes do not decode cleanly; without the `pulley` feature, Pulley
//!   and auto are hex.
//! - Hex listings get the function's samples, so a line starts at every
//!   sampled offset ([`HexDecoder::listing`]).

use std::sync::Arc;

#[cfg(feature = "pulley")]
use super::InstructionKind;
use super::{HexDecoder, Instruction, InstructionDecoder};

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
        instructions: HexDecoder::default().listing(code, hits),
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
