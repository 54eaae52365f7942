//! `collapsed`: `function;instruction count` lines for flame graph tools.
//!
//! - Built from the aggregated [`Profile`] (one streaming pass: memory
//!   holds the functions, never the samples), loaded before the output is
//!   opened, so a bad input never touches the output.
//! - Times and interpreters are not kept: collapsed stacks only count.

use std::io::{self, Write};
use std::path::Path;

use super::{
    ConvertError, ConvertOptions, ConvertReport, Exporter, Prepared, Source, UNRESOLVED,
    instruction_label,
};
use crate::analysis::profile::{LoadOptions, Profile, load, load_reader};
use crate::disasm::{DecoderChoice, HexDecoder, decode_function, instruction_totals};

/// The table entry of `collapsed`.
pub(super) const EXPORTER: Exporter = Exporter {
    name: "collapsed",
    description: "Collapsed stacks (`function;instruction count`) for flame graph tools",
    extension: "txt",
    needs_export_feature: false,
    prepare: Some(prepare),
};

fn prepare<'a>(
    input: Source<'a>,
    options: &ConvertOptions,
) -> Result<Box<dyn Prepared + 'a>, ConvertError> {
    let load_options = LoadOptions {
        interp: options.interp,
        ..LoadOptions::default()
    };
    let profile = match input {
        Source::Path(path) => load(path, &load_options, |_| {})?,
        Source::Reader(r) => load_reader(r, &load_options, |_| {})?,
    };
    Ok(Box::new(Collapsed {
        profile,
        decoder: options.decoder.clone(),
    }))
}

/// A loaded profile, to be written as collapsed stacks.
struct Collapsed {
    profile: Profile,
    decoder: DecoderChoice,
}

impl Prepared for Collapsed {
    fn write(
        self: Box<Self>,
        out: &mut dyn Write,
        path: &Path,
    ) -> Result<ConvertReport, ConvertError> {
        write_collapsed(&self.profile, &self.decoder, out).map_err(|source| ConvertError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(collapsed_report(&self.profile))
    }
}

fn collapsed_report(profile: &Profile) -> ConvertReport {
    ConvertReport {
        functions: profile.functions.len() as u64,
        samples: profile.total_samples,
        unresolved: profile.unresolved,
        read_error: profile.read_error.clone(),
        notes: vec!["Not kept: times and interpreters (collapsed stacks only count).".to_string()],
    }
}

/// Writes `profile` as collapsed stacks: one `function;instruction count`
/// line per sampled instruction (hottest function first, instructions in
/// offset order), `[unresolved] count` for samples outside every function.
/// `;` and line breaks in names become `:` and spaces, as the format needs.
/// Instructions are named as in the other exports (hex: a line per sampled
/// offset, [`HexDecoder::line_at`]).
pub fn write_collapsed(
    profile: &Profile,
    decoder: &DecoderChoice,
    out: &mut dyn Write,
) -> io::Result<()> {
    for f in profile.functions_by_heat() {
        if f.samples == 0 {
            continue;
        }
        let name = collapsed_frame(&f.name);
        let listing = decode_function(decoder, &f.code, f.listing.as_deref(), &[]);
        let (instructions, hits) = if listing.is_hex() {
            f.hits
                .iter()
                .filter_map(|(o, n)| Some((HexDecoder::default().line_at(&f.code, o as usize)?, n)))
                .unzip()
        } else {
            let hits = instruction_totals(&listing.instructions, f.hits.as_slice());
            (listing.instructions, hits)
        };
        let mut attributed = 0;
        for (ins, &count) in instructions.iter().zip(&hits) {
            if count > 0 {
                writeln!(
                    out,
                    "{name};{} {count}",
                    collapsed_frame(&instruction_label(&f.name, ins))
                )?;
                attributed += count;
            }
        }
        // Samples the listing cannot place (none with a complete decoder)
        // stay on the function itself.
        if f.samples > attributed {
            writeln!(out, "{name} {}", f.samples - attributed)?;
        }
    }
    if profile.unresolved > 0 {
        writeln!(out, "{UNRESOLVED} {}", profile.unresolved)?;
    }
    out.flush()
}

fn collapsed_frame(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}
