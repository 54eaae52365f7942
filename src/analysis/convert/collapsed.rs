//! `collapsed`: `root;caller;callee;instruction count` lines for flame
//! graph tools (`function;instruction count` for a profile without stacks).
//!
//! - Built from the aggregated [`Profile`] (one streaming pass: memory
//!   holds the functions, never the samples), loaded before the output is
//!   opened, so a bad input never touches the output.
//! - Times and interpreters are not kept: collapsed stacks only count.
//! - With call stacks, a line per (call path, leaf instruction), in the
//!   order of the profile's stack tree; a truncated stack shows
//!   `[truncated]` where frames were lost, a call site outside every
//!   function `[unresolved]`.

use std::io::{self, Write};
use std::path::Path;

use super::{
    ConvertError, ConvertOptions, ConvertReport, Exporter, Prepared, Source, TRUNCATED, UNRESOLVED,
    instruction_label,
};
use std::collections::HashMap;

use crate::analysis::profile::{Frame, LoadOptions, Profile, load, load_reader};
use crate::disasm::{
    DecoderChoice, HexDecoder, Instruction, containing_instruction, decode_function,
    instruction_totals,
};

/// The table entry of `collapsed`.
pub(super) const EXPORTER: Exporter = Exporter {
    name: "collapsed",
    description: "Collapsed stacks (`root;caller;callee;instruction count`) for flame graph tools",
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
    if profile.has_stacks() {
        return write_collapsed_stacks(profile, decoder, out);
    }
    for f in profile.sampled_by_heat() {
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

/// The name of a caller's frame.
fn frame_name(profile: &Profile, frame: Frame) -> String {
    match frame {
        Frame::Function(i) => profile
            .functions
            .get(i)
            .map_or_else(|| UNRESOLVED.to_string(), |f| collapsed_frame(&f.name)),
        Frame::Outside => UNRESOLVED.to_string(),
        Frame::Truncated => TRUNCATED.to_string(),
    }
}

/// [`write_collapsed`] of a profile with call stacks: one line per (call
/// path, leaf instruction), paths in the stack tree's order. Each
/// function is decoded once.
fn write_collapsed_stacks(
    profile: &Profile,
    decoder: &DecoderChoice,
    out: &mut dyn Write,
) -> io::Result<()> {
    let tree = &profile.stacks;
    // Each node's path, as text, made once (a node's parent comes first).
    let mut paths: Vec<String> = Vec::with_capacity(tree.nodes.len());
    for (k, n) in tree.nodes.iter().enumerate() {
        let path = if k == 0 {
            String::new()
        } else {
            let parent = paths.get(n.parent as usize).map_or("", String::as_str);
            let name = frame_name(profile, n.frame);
            if parent.is_empty() {
                name
            } else {
                format!("{parent};{name}")
            }
        };
        paths.push(path);
    }
    let mut listings: HashMap<usize, Vec<Instruction>> = HashMap::new();
    // Leaves are ordered by path, function, offset: equal lines (offsets of
    // one instruction) are next to each other.
    let mut line = String::new();
    let mut count = 0u64;
    for leaf in &tree.leaves {
        let mut text = paths.get(leaf.stack as usize).cloned().unwrap_or_default();
        if !text.is_empty() {
            text.push(';');
        }
        match leaf
            .function
            .and_then(|i| Some((i, profile.functions.get(i)?)))
        {
            Some((i, f)) => {
                text.push_str(&collapsed_frame(&f.name));
                let ins = listings.entry(i).or_insert_with(|| {
                    let l = decode_function(decoder, &f.code, f.listing.as_deref(), &[]);
                    if l.is_hex() {
                        Vec::new()
                    } else {
                        l.instructions
                    }
                });
                let label = match containing_instruction(ins, leaf.offset) {
                    Some(k) => Some(instruction_label(&f.name, &ins[k])),
                    None => HexDecoder::default()
                        .line_at(&f.code, leaf.offset as usize)
                        .map(|l| instruction_label(&f.name, &l)),
                };
                if let Some(label) = label {
                    text.push(';');
                    text.push_str(&collapsed_frame(&label));
                }
            }
            None => text.push_str(UNRESOLVED),
        }
        if text != line {
            if count > 0 {
                writeln!(out, "{line} {count}")?;
            }
            line = text;
            count = 0;
        }
        count += leaf.samples;
    }
    if count > 0 {
        writeln!(out, "{line} {count}")?;
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
