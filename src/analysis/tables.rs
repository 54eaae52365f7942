//! Which Pulley opcode table decodes a profile's bytecode.
//!
//! - The Pulley format carries no version, and Wasmtime's opcode tables
//!   changed (36, 37, 40: see [`crate::pulley::PulleyTable`]). Asked for
//!   `auto`, the table is detected from the sampled functions that carry no
//!   listing: under the right one, samples land on instruction starts and
//!   functions decode to their end ([`crate::pulley::detect_table`]).
//! - When no table fits, the bytecode is shown as hex rather than under
//!   wrong names, and the note says so.
//! - The result is a [`DecoderChoice`] every analysis takes as it is, and a
//!   note for the report.

use std::sync::Arc;

use super::Profile;
use crate::disasm::{DecoderChoice, HexDecoder};
use crate::pulley::{PulleyTable, PulleyTableDecoder, detect_table};

/// `choice` with the Pulley table of `profile`'s bytecode: `table` if the
/// user named one, else the one detected. Returns the choice and a line on
/// the table used (`None` when nothing in the profile is decoded as Pulley
/// bytecode: listings recorded in the file, or `--decoder hex`).
pub fn with_pulley_table(
    profile: &Profile,
    choice: DecoderChoice,
    table: Option<PulleyTable>,
) -> (DecoderChoice, Option<String>) {
    let auto = match choice {
        DecoderChoice::Auto => true,
        DecoderChoice::Pulley => false,
        other => return (other, None),
    };
    let apply = |t: PulleyTable| {
        let d = Arc::new(PulleyTableDecoder::new(t));
        match (t == PulleyTable::LATEST, auto) {
            (true, true) => DecoderChoice::Auto,
            (true, false) => DecoderChoice::Pulley,
            (false, true) => DecoderChoice::AutoWith(d),
            (false, false) => DecoderChoice::Custom(d),
        }
    };
    if let Some(t) = table {
        return (apply(t), Some(format!("Pulley table: {t} (as asked)")));
    }
    // The sampled functions a Pulley decoder would decode, hottest first.
    let mut sampled: Vec<&super::FunctionProfile> = profile
        .functions
        .iter()
        .filter(|f| f.samples > 0 && f.has_code())
        .filter(|f| !(auto && f.listing.is_some()))
        .collect();
    if sampled.is_empty() {
        return (apply(PulleyTable::LATEST), None);
    }
    sampled.sort_by_key(|f| std::cmp::Reverse(f.samples));
    let offsets: Vec<Vec<u32>> = sampled
        .iter()
        .map(|f| f.hits.iter().map(|(o, _)| o).collect())
        .collect();
    let detection = detect_table(
        sampled
            .iter()
            .zip(&offsets)
            .map(|(f, o)| (f.code.as_slice(), o.as_slice())),
    );
    let note = Some(detection.describe());
    match detection.table {
        Some(t) => (apply(t), note),
        // Wrong names would mislead: hex says only what is known.
        None if auto => (
            DecoderChoice::AutoWith(Arc::new(HexDecoder::default())),
            note,
        ),
        None => (DecoderChoice::Hex, note),
    }
}
