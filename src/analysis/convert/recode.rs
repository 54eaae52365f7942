//! `pulley` and `native`: either recording format into the other, record by
//! record; memory stays constant.
//!
//! - Native → Pulley keeps functions and PCs (Pulley's format has no times,
//!   interpreters, unloads nor summary).
//! - Pulley → native gives every sample a synthetic time
//!   (`index × pulley_interval_ns`) and one interpreter, declared before its
//!   first sample; the header's clock is `pulley`, so reports say the file
//!   was converted (and why it has no closing summary).
//! - Native → native keeps the listings, the sampling record and the call
//!   stacks (re-interned by the output's encoder); native → Pulley drops
//!   the stacks and says so in one note.
//! - Either format into itself copies, after the interpreter filter.

use std::io::{Read, Write};
use std::path::Path;

use super::{ConvertError, ConvertOptions, ConvertReport, Exporter, Prepared, Source, with_reader};
use crate::ProfileReader;
use crate::format::{Encoder, Event, FileHeader, Format, InterpreterRecord, Record, Sample};

/// The header's `clock` in a native file converted from the Pulley format:
/// its times are sample indices, and it never had a closing summary.
pub const PULLEY_CLOCK: &str = "pulley";

/// Samples per record written by [`recode`]: bounds a record's size however
/// large the source's batches are.
const CHUNK: usize = 1 << 16;

/// The table entry of `pulley`.
pub(super) const PULLEY: Exporter = Exporter {
    name: "pulley",
    description: "`pulley_interpreter::profile`'s format (e.g. for Pulley's `profiler-html` \
                  example)",
    extension: "data",
    needs_export_feature: false,
    prepare: Some(|input, options| prepare(input, options, Format::Pulley)),
};

/// The table entry of `native`.
pub(super) const NATIVE: Exporter = Exporter {
    name: "native",
    description: "pcprof's native format",
    extension: "pcprof",
    needs_export_feature: false,
    prepare: Some(|input, options| prepare(input, options, Format::Native)),
};

fn prepare<'a>(
    input: Source<'a>,
    options: &ConvertOptions,
    target: Format,
) -> Result<Box<dyn Prepared + 'a>, ConvertError> {
    with_reader!(input, |reader| Ok(Box::new(Recode {
        reader,
        target,
        options: options.clone(),
    })))
}

/// An opened input, to be re-encoded as it is read.
struct Recode<R: Read> {
    reader: ProfileReader<R>,
    target: Format,
    options: ConvertOptions,
}

impl<R: Read> Prepared for Recode<R> {
    fn write(
        self: Box<Self>,
        out: &mut dyn Write,
        path: &Path,
    ) -> Result<ConvertReport, ConvertError> {
        recode(self.reader, self.target, out, path, &self.options)
    }
}

/// Re-encodes a profile record by record into `target`'s format, written to
/// `sink` (`path` only names it in errors). See the module docs for what
/// each direction keeps.
pub fn recode<R: Read, W: Write>(
    reader: ProfileReader<R>,
    target: Format,
    sink: W,
    path: &Path,
    options: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    let enc_err = |source| ConvertError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let source_format = reader.format();
    let interval = options.pulley_interval_ns.max(1);
    let mut encoder = match target {
        Format::Pulley => Encoder::pulley(sink),
        Format::Native => {
            let header = reader.header().cloned().unwrap_or_else(|| FileHeader {
                pcprof_version: env!("CARGO_PKG_VERSION").to_string(),
                pid: 0,
                started_unix_ns: 0,
                frequency_hz: u32::try_from(1_000_000_000 / interval).unwrap_or(0),
                flush_samples: 0,
                clock: PULLEY_CLOCK.to_string(),
            });
            Encoder::native(sink, &header).map_err(enc_err)?
        }
    };
    let mut report = ConvertReport::default();
    let mut unloads = 0u64;
    // Pulley sources: interpreter 0 is declared before its first sample,
    // and samples get times in file order.
    let mut pulley_interp_written = false;
    let mut seq: u64 = 0;
    let mut batch: Vec<Sample> = Vec::new();
    // The output's id of each input stack (index: input id; 0 the empty
    // stack), and the samples that had one.
    let mut stack_ids: Vec<u32> = vec![0];
    let mut stacked = 0u64;
    let mut reader = reader;
    for event in reader.by_ref() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                report.read_error = Some(e.to_string());
                break;
            }
        };
        match event {
            Event::Function(f) => {
                report.functions += 1;
                encoder.write(&Record::Function(f)).map_err(enc_err)?;
            }
            Event::Samples(samples) => {
                batch.clear();
                for mut s in samples {
                    if source_format == Format::Pulley {
                        s.time_ns = seq.saturating_mul(interval);
                        seq += 1;
                    }
                    if options.interp.is_some_and(|want| want != s.interp) {
                        continue;
                    }
                    if s.stack != 0 {
                        stacked += 1;
                        // The reader checked that the stack was introduced.
                        s.stack = stack_ids.get(s.stack as usize).copied().unwrap_or(0);
                    }
                    batch.push(s);
                }
                if batch.is_empty() {
                    continue;
                }
                if target == Format::Native
                    && source_format == Format::Pulley
                    && !pulley_interp_written
                {
                    pulley_interp_written = true;
                    encoder
                        .write(&Record::Interpreter(InterpreterRecord {
                            id: 0,
                            label: Some("pulley".to_string()),
                            registered_ns: 0,
                        }))
                        .map_err(enc_err)?;
                }
                report.samples += batch.len() as u64;
                for chunk in batch.chunks(CHUNK) {
                    encoder.write_samples(chunk).map_err(enc_err)?;
                }
            }
            Event::Interpreter(i) => {
                if options.interp.is_none_or(|want| want == i.id) {
                    encoder.write(&Record::Interpreter(i)).map_err(enc_err)?;
                }
            }
            Event::Retired(r) => {
                if options.interp.is_none_or(|want| want == r.id) {
                    encoder.write(&Record::Retired(r)).map_err(enc_err)?;
                }
            }
            Event::Unload(u) => {
                unloads += 1;
                encoder.write(&Record::Unload(u)).map_err(enc_err)?;
            }
            Event::Rate(r) => {
                encoder.write(&Record::Rate(r)).map_err(enc_err)?;
            }
            Event::Summary(s) => {
                encoder.write(&Record::Summary(s)).map_err(enc_err)?;
            }
            Event::Sampling(s) => {
                encoder.write(&Record::Sampling(s)).map_err(enc_err)?;
            }
            Event::Stacks(nodes) => {
                let keep = encoder.keeps_stacks();
                for n in nodes {
                    let parent = stack_ids.get(n.parent as usize).copied().unwrap_or(0);
                    let id = if keep {
                        encoder.stacks().node(parent, n.frame)
                    } else {
                        0
                    };
                    stack_ids.push(id);
                }
            }
        }
    }
    let mut sink = encoder.into_inner();
    sink.flush().map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match (source_format, target) {
        (Format::Native, Format::Pulley) => {
            report.notes.push(
                "Not kept: sample times, interpreters, rate changes and the closing \
                 summary (Pulley's format has none)."
                    .to_string(),
            );
            if stacked > 0 {
                report.notes.push(format!(
                    "Not kept: the call stacks of {stacked} samples (Pulley's format has \
                     none); each sample keeps its PC."
                ));
            }
            if unloads > 0 {
                report.notes.push(format!(
                    "Not kept: {unloads} unloads; PCs in code loaded again at a reused \
                     address become ambiguous."
                ));
            }
        }
        (Format::Pulley, Format::Native) => report.notes.push(format!(
            "The Pulley file has no times: samples are {interval} ns apart on a \
             virtual clock, all from interpreter 0."
        )),
        _ => {}
    }
    Ok(report)
}
