//! Exports of a profile to other tools' formats (`pcprof convert`).
//!
//! - `collapsed`: `function;instruction count` lines for flame graph tools,
//!   from the aggregated [`Profile`] (one streaming pass: memory holds the
//!   functions, never the samples).
//! - `pulley` and `native`: either recording format into the other, record
//!   by record ([`recode`]); memory stays constant. Native → Pulley keeps
//!   functions and PCs (Pulley's format has no times, interpreters, unloads
//!   nor summary); Pulley → native gives every sample a synthetic time
//!   (`index × pulley_interval_ns` on a `virtual` clock) and one interpreter.
//! - `firefox` (the Firefox Profiler's processed format, through
//!   `fxprof-processed-profile`) and `speedscope` (its "sampled" JSON, serde
//!   structs in [`speedscope`]), behind the `export` feature. Both stream the
//!   file once, resolving each sample to a two-frame stack (function, then
//!   instruction); the output must be built whole before it is serialised, so
//!   memory grows with the samples: the Firefox profile keeps every sample
//!   with its real time (about 40 bytes each), speedscope merges consecutive
//!   samples of one interpreter at the same instruction into one weighted
//!   sample.
//! - Output is written by [`output::write_output`]: a regular file through a
//!   temporary file renamed into place only when complete (a failed
//!   conversion never leaves half a file), a symlink's target rather than the
//!   symlink, a FIFO or device straight into it. The input (by identity, so
//!   also through a symlink or a hard link) is refused as output.
//! - A file that ends early or has a corrupt record converts up to the fault
//!   and the output is still written, holding the complete records;
//!   [`ConvertReport::read_error`] says where it stopped (the CLI then exits
//!   non-zero).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

#[cfg(feature = "export")]
use crate::Resolver;
use crate::analysis::profile::{LoadError, LoadOptions, Profile, load};
use crate::analysis::report::{DecoderChoice, decode_function, instruction_totals};
use crate::disasm::Instruction;
#[cfg(feature = "export")]
use crate::disasm::containing_instruction;
use crate::format::{
    EncodeError, Encoder, Event, FileHeader, Format, InterpreterRecord, Record, Sample,
};
use crate::{ProfileReader, ReadError};

use super::output::{self, write_output};

/// Samples per record written by [`recode`]: bounds a record's size however
/// large the source's batches are.
const CHUNK: usize = 1 << 16;
/// Frame name of samples that fell outside every function.
pub const UNRESOLVED: &str = "[unresolved]";

/// A target of `pcprof convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// The Firefox Profiler's processed profile (JSON).
    Firefox,
    /// speedscope's file format, "sampled" profiles (JSON).
    Speedscope,
    /// Collapsed stacks: `function;instruction count` lines.
    Collapsed,
    /// `pulley_interpreter::profile`'s format.
    Pulley,
    /// pcprof's native format.
    Native,
}

impl ExportFormat {
    /// Every format, in the order the help lists them.
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Firefox,
        ExportFormat::Speedscope,
        ExportFormat::Collapsed,
        ExportFormat::Pulley,
        ExportFormat::Native,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Firefox => "firefox",
            ExportFormat::Speedscope => "speedscope",
            ExportFormat::Collapsed => "collapsed",
            ExportFormat::Pulley => "pulley",
            ExportFormat::Native => "native",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ExportFormat, String> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ExportFormat::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown format {s:?} (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Options of a conversion.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Keep only the samples of this interpreter.
    pub interp: Option<u32>,
    /// How to decode bytecode (the instruction frames of `firefox`,
    /// `speedscope` and `collapsed`).
    pub decoder: DecoderChoice,
    /// Time between two samples of a Pulley file, which records none: the
    /// synthetic times of `native`, `firefox` and `speedscope` outputs.
    pub pulley_interval_ns: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            interp: None,
            decoder: DecoderChoice::Auto,
            pulley_interval_ns: 1_000_000,
        }
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertReport {
    /// Functions in the output.
    pub functions: u64,
    /// Samples in the output.
    pub samples: u64,
    /// Of those, samples outside every function.
    pub unresolved: u64,
    /// Why reading stopped before the end of the input, if it did.
    pub read_error: Option<String>,
    /// Notes on the output, as sentences: what the target format could not
    /// carry, and times that had to be made up.
    pub notes: Vec<String>,
}

/// Why a conversion failed.
#[derive(Debug)]
pub enum ConvertError {
    /// The input could not be opened or is not a profile.
    Read(ReadError),
    /// Writing the output failed.
    Io {
        /// The output file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A record could not be encoded.
    Encode {
        /// The output file.
        path: PathBuf,
        /// The failure.
        source: EncodeError,
    },
    /// JSON serialisation failed.
    #[cfg(feature = "export")]
    Json {
        /// The output file.
        path: PathBuf,
        /// The failure.
        source: serde_json::Error,
    },
    /// The output is one of the inputs (the same file, by identity).
    SameFile {
        /// The output as given.
        output: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::Read(e) => write!(f, "{e}"),
            ConvertError::Io { path, source } => {
                write!(f, "{}: cannot write: {source}", path.display())
            }
            ConvertError::Encode { path, source } => {
                write!(f, "{}: cannot encode a record: {source}", path.display())
            }
            #[cfg(feature = "export")]
            ConvertError::Json { path, source } => {
                write!(f, "{}: cannot write JSON: {source}", path.display())
            }
            ConvertError::SameFile { output, input } => write!(
                f,
                "{}: the output is the input file {}; choose another output",
                output.display(),
                input.display()
            ),
        }
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConvertError::Read(e) => Some(e),
            ConvertError::Io { source, .. } => Some(source),
            ConvertError::Encode { source, .. } => Some(source),
            #[cfg(feature = "export")]
            ConvertError::Json { source, .. } => Some(source),
            ConvertError::SameFile { .. } => None,
        }
    }
}

impl From<LoadError> for ConvertError {
    fn from(e: LoadError) -> Self {
        ConvertError::Read(e.0)
    }
}

/// Converts the profile at `input` to `format`, written to `output` as
/// [`output::write_output`] does (a regular file replaced only once the
/// conversion is complete).
pub fn convert(
    input: &Path,
    output: &Path,
    format: ExportFormat,
    options: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    output::refuse_inputs(output, &[input])?;
    match format {
        ExportFormat::Collapsed => {
            let profile = load(
                input,
                &LoadOptions {
                    interp: options.interp,
                    ..LoadOptions::default()
                },
                |_| {},
            )?;
            let report = collapsed_report(&profile);
            write_output(output, &[input], |w| {
                write_collapsed(&profile, &options.decoder, w).map_err(|source| ConvertError::Io {
                    path: output.to_path_buf(),
                    source,
                })
            })?;
            Ok(report)
        }
        ExportFormat::Pulley | ExportFormat::Native => {
            let target = if format == ExportFormat::Pulley {
                Format::Pulley
            } else {
                Format::Native
            };
            let reader = ProfileReader::open(input).map_err(ConvertError::Read)?;
            write_output(output, &[input], |w| {
                recode(reader, target, w, output, options)
            })
        }
        #[cfg(feature = "export")]
        ExportFormat::Firefox => {
            let (profile, report) = firefox_profile(input, options)?;
            write_output(output, &[input], |w| {
                serde_json::to_writer(w, &profile).map_err(|source| ConvertError::Json {
                    path: output.to_path_buf(),
                    source,
                })
            })?;
            Ok(report)
        }
        #[cfg(feature = "export")]
        ExportFormat::Speedscope => {
            let (file, report) = speedscope_file(input, options)?;
            write_output(output, &[input], |w| {
                serde_json::to_writer(w, &file).map_err(|source| ConvertError::Json {
                    path: output.to_path_buf(),
                    source,
                })
            })?;
            Ok(report)
        }
        #[cfg(not(feature = "export"))]
        ExportFormat::Firefox | ExportFormat::Speedscope => Err(ConvertError::Io {
            path: output.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {format} export needs pcprof's `export` feature"),
            ),
        }),
    }
}

/// Frame name of an instruction: the instruction first (it is what a narrow
/// flame graph box shows), then where it is, so that the same text in two
/// functions or at two offsets stays two frames.
pub fn instruction_label(function: &str, instruction: &Instruction) -> String {
    format!(
        "{} @ {function}+{:#x}",
        instruction.text, instruction.offset
    )
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
/// Instructions are named as in the other exports (the hex listing is not
/// split at sampled offsets, which a streaming export cannot know ahead).
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
        let instructions = decode_function(decoder, &f.code, &[]).instructions;
        let hits = instruction_totals(&instructions, &f.hits);
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
                clock: "virtual".to_string(),
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

/// Where a sample fell: what its two-frame stack is made of.
#[cfg(feature = "export")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Site {
    Unresolved,
    /// Function index, and instruction index when one contains the PC.
    Function(usize, Option<usize>),
}

/// A function seen while walking a file, decoded once.
#[cfg(feature = "export")]
#[derive(Debug)]
struct WalkFunction {
    name: String,
    addr: u64,
    instructions: Vec<Instruction>,
}

/// What [`walk`] reports, in file order.
#[cfg(feature = "export")]
enum Step<'a> {
    Interpreter(&'a InterpreterRecord),
    Retired(u32, u64),
    Sample {
        interp: u32,
        time_ns: u64,
        site: Site,
        functions: &'a [WalkFunction],
    },
}

/// What a walk learnt beyond its steps.
#[cfg(feature = "export")]
#[derive(Debug, Default)]
struct WalkEnd {
    stopped_ns: Option<u64>,
    report: ConvertReport,
}

/// Streams `input` once, resolving every sample (after the interpreter
/// filter) to its function and instruction; Pulley samples get synthetic
/// times.
#[cfg(feature = "export")]
fn walk(
    input: &Path,
    options: &ConvertOptions,
    mut step: impl FnMut(Step<'_>),
) -> Result<WalkEnd, ConvertError> {
    let mut reader = ProfileReader::open(input).map_err(ConvertError::Read)?;
    let mut end = WalkEnd::default();
    let pulley = reader.format() == Format::Pulley;
    let interval = options.pulley_interval_ns.max(1);
    let mut functions: Vec<WalkFunction> = Vec::new();
    let mut resolver = Resolver::new();
    let mut seq: u64 = 0;
    for event in reader.by_ref() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                end.report.read_error = Some(e.to_string());
                break;
            }
        };
        match event {
            Event::Function(f) => {
                resolver.add(functions.len(), f.addr, f.code.len() as u64, f.loaded_ns);
                functions.push(WalkFunction {
                    instructions: decode_function(&options.decoder, &f.code, &[]).instructions,
                    name: f.name,
                    addr: f.addr,
                });
            }
            Event::Unload(u) => {
                resolver.unload(u.addr, u.unloaded_ns);
            }
            Event::Interpreter(i) => {
                if options.interp.is_none_or(|want| want == i.id) {
                    step(Step::Interpreter(&i));
                }
            }
            Event::Retired(r) => {
                if options.interp.is_none_or(|want| want == r.id) {
                    step(Step::Retired(r.id, r.retired_ns));
                }
            }
            Event::Rate(_) => {}
            Event::Summary(s) => end.stopped_ns = Some(s.stopped_ns),
            Event::Samples(samples) => {
                for s in samples {
                    let time_ns = if pulley {
                        seq = seq.saturating_add(1);
                        (seq - 1).saturating_mul(interval)
                    } else {
                        s.time_ns
                    };
                    if options.interp.is_some_and(|want| want != s.interp) {
                        continue;
                    }
                    let site = match resolver.resolve(s.pc, s.time_ns) {
                        Some(fi) => {
                            let f = &functions[fi];
                            let ins =
                                s.pc.checked_sub(f.addr)
                                    .and_then(|o| containing_instruction(&f.instructions, o));
                            Site::Function(fi, ins)
                        }
                        None => {
                            end.report.unresolved += 1;
                            Site::Unresolved
                        }
                    };
                    end.report.samples += 1;
                    step(Step::Sample {
                        interp: s.interp,
                        time_ns,
                        site,
                        functions: &functions,
                    });
                }
            }
        }
    }
    end.report.functions = functions.len() as u64;
    if pulley {
        end.report.notes.push(format!(
            "The Pulley file has no times: samples are {interval} ns apart."
        ));
    }
    Ok(end)
}

/// The frame names of a site, outermost first.
#[cfg(feature = "export")]
fn site_frames(site: Site, functions: &[WalkFunction]) -> Vec<String> {
    match site {
        Site::Unresolved => vec![UNRESOLVED.to_string()],
        Site::Function(fi, ins) => {
            let Some(f) = functions.get(fi) else {
                return vec![UNRESOLVED.to_string()];
            };
            let mut v = vec![f.name.clone()];
            if let Some(i) = ins.and_then(|i| f.instructions.get(i)) {
                v.push(instruction_label(&f.name, i));
            }
            v
        }
    }
}

/// The name of an interpreter's track.
#[cfg(feature = "export")]
fn interp_name(id: u32, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{l} (interpreter {id})"),
        None => format!("interpreter {id}"),
    }
}

/// Builds the Firefox Profiler profile of `input`: one thread per
/// interpreter with every sample at its real time, two frames per sample
/// (function, then instruction). Serialise it with `serde_json`.
#[cfg(feature = "export")]
pub fn firefox_profile(
    input: &Path,
    options: &ConvertOptions,
) -> Result<(fxprof_processed_profile::Profile, ConvertReport), ConvertError> {
    use std::collections::HashMap;

    use fxprof_processed_profile as fx;

    // The header is needed before the first thread: peek at it.
    let header = ProfileReader::open(input)
        .map_err(ConvertError::Read)?
        .header()
        .cloned();
    let interval_ns = match &header {
        Some(h) if h.frequency_hz > 0 => (1_000_000_000 / u64::from(h.frequency_hz)).max(1),
        Some(_) => 1_000_000,
        None => options.pulley_interval_ns.max(1),
    };
    let product = format!(
        "pcprof: {}",
        input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let reference = fx::ReferenceTimestamp::from_millis_since_unix_epoch(
        header
            .as_ref()
            .map_or(0.0, |h| h.started_unix_ns as f64 / 1e6),
    );
    let mut profile = fx::Profile::new(
        &product,
        reference,
        fx::SamplingInterval::from_nanos(interval_ns),
    );
    let category = profile.add_category("Bytecode", fx::CategoryColor::Orange);
    let process = profile.add_process(
        &product,
        header.as_ref().map_or(0, |h| h.pid),
        fx::Timestamp::from_nanos_since_reference(0),
    );

    struct Track {
        thread: fx::ThreadHandle,
        last_ns: Option<u64>,
    }
    let mut tracks: HashMap<u32, Track> = HashMap::new();
    let mut stacks: HashMap<(u32, Site), Option<fx::StackHandle>> = HashMap::new();
    // No thread is "main": the Firefox Profiler would show the process name
    // instead of the interpreter's. Every interpreter is visible at first,
    // the first one selected.
    let new_track = |profile: &mut fx::Profile, id: u32, label: Option<&str>, start: u64, first| {
        let thread = profile.add_thread(
            process,
            id,
            fx::Timestamp::from_nanos_since_reference(start),
            false,
        );
        profile.set_thread_name(thread, &interp_name(id, label));
        profile.add_initial_visible_thread(thread);
        if first {
            profile.add_initial_selected_thread(thread);
        }
        Track {
            thread,
            last_ns: None,
        }
    };

    let end = walk(input, options, |step| match step {
        Step::Interpreter(i) => {
            if !tracks.contains_key(&i.id) {
                let first = tracks.is_empty();
                let t = new_track(
                    &mut profile,
                    i.id,
                    i.label.as_deref(),
                    i.registered_ns,
                    first,
                );
                tracks.insert(i.id, t);
            }
        }
        Step::Retired(id, t) => {
            if let Some(track) = tracks.get(&id) {
                profile.set_thread_end_time(
                    track.thread,
                    fx::Timestamp::from_nanos_since_reference(t),
                );
            }
        }
        Step::Sample {
            interp,
            time_ns,
            site,
            functions,
        } => {
            let first = tracks.is_empty();
            let track = tracks
                .entry(interp)
                .or_insert_with(|| new_track(&mut profile, interp, None, time_ns, first));
            let thread = track.thread;
            let stack = *stacks.entry((interp, site)).or_insert_with(|| {
                let frames: Vec<fx::FrameInfo> = site_frames(site, functions)
                    .iter()
                    .map(|name| fx::FrameInfo {
                        frame: fx::Frame::Label(profile.intern_string(name)),
                        category_pair: category.into(),
                        flags: fx::FrameFlags::empty(),
                    })
                    .collect();
                profile.intern_stack_frames(thread, frames.into_iter())
            });
            // The interpreter was executing when sampled: count it busy
            // since its previous sample, at most one tick (it may have been
            // idle, and unsampled, in a longer gap).
            let busy = track.last_ns.map_or(interval_ns, |last| {
                time_ns.saturating_sub(last).min(interval_ns)
            });
            track.last_ns = Some(time_ns);
            profile.add_sample(
                thread,
                fx::Timestamp::from_nanos_since_reference(time_ns),
                stack,
                fx::CpuDelta::from_nanos(busy),
                1,
            );
        }
    })?;
    if let Some(stopped) = end.stopped_ns {
        profile.set_process_end_time(process, fx::Timestamp::from_nanos_since_reference(stopped));
    }
    let mut report = end.report;
    report
        .notes
        .push("Not kept: unloads and rate changes (no Firefox Profiler equivalent).".to_string());
    Ok((profile, report))
}

/// speedscope's file format (<https://www.speedscope.app/file-format-schema.json>),
/// the parts pcprof writes: "sampled" profiles over shared frames.
#[cfg(feature = "export")]
pub mod speedscope {
    use serde::{Deserialize, Serialize};

    /// The schema URL speedscope recognises its files by.
    pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

    /// A speedscope file.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct File {
        /// Always [`SCHEMA`].
        #[serde(rename = "$schema")]
        pub schema: String,
        /// Frames shared by all profiles.
        pub shared: Shared,
        /// One profile per interpreter.
        pub profiles: Vec<SampledProfile>,
        /// Name of the whole file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Profile shown first.
        #[serde(
            rename = "activeProfileIndex",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        pub active_profile_index: Option<usize>,
        /// The program that wrote the file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exporter: Option<String>,
    }

    /// The shared part of a file.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Shared {
        /// Every frame; stacks refer to them by index.
        pub frames: Vec<Frame>,
    }

    /// A stack frame.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Frame {
        /// Name shown.
        pub name: String,
        /// Source file, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub file: Option<String>,
        /// Line, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub line: Option<u64>,
        /// Column, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub col: Option<u64>,
    }

    /// A profile of type "sampled".
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SampledProfile {
        /// Always `"sampled"`.
        #[serde(rename = "type")]
        pub kind: String,
        /// Name (the interpreter).
        pub name: String,
        /// Unit of the weights: pcprof writes `"none"` (sample counts).
        pub unit: String,
        /// Start of the value range.
        #[serde(rename = "startValue")]
        pub start_value: f64,
        /// End of the value range (start + sum of weights).
        #[serde(rename = "endValue")]
        pub end_value: f64,
        /// Stacks, outermost frame first, as indices into the shared frames.
        pub samples: Vec<Vec<usize>>,
        /// Weight of each stack in `samples`.
        pub weights: Vec<f64>,
    }
}

/// Builds the speedscope file of `input`: one "sampled" profile per
/// interpreter in time order, weights counting samples (consecutive samples
/// at one instruction merged into one weighted sample).
#[cfg(feature = "export")]
pub fn speedscope_file(
    input: &Path,
    options: &ConvertOptions,
) -> Result<(speedscope::File, ConvertReport), ConvertError> {
    use std::collections::{BTreeMap, HashMap};

    struct Lane {
        name: String,
        samples: Vec<Vec<usize>>,
        weights: Vec<f64>,
        last: Option<Site>,
    }
    let mut frames: Vec<speedscope::Frame> = Vec::new();
    let mut frame_index: HashMap<String, usize> = HashMap::new();
    let mut stacks: HashMap<Site, Vec<usize>> = HashMap::new();
    let mut lanes: BTreeMap<u32, Lane> = BTreeMap::new();
    let lane = |id: u32, label: Option<&str>| Lane {
        name: interp_name(id, label),
        samples: Vec::new(),
        weights: Vec::new(),
        last: None,
    };
    let end = walk(input, options, |step| match step {
        Step::Interpreter(i) => {
            lanes
                .entry(i.id)
                .or_insert_with(|| lane(i.id, i.label.as_deref()));
        }
        Step::Retired(..) => {}
        Step::Sample {
            interp,
            site,
            functions,
            ..
        } => {
            let l = lanes.entry(interp).or_insert_with(|| lane(interp, None));
            if l.last == Some(site)
                && let Some(w) = l.weights.last_mut()
            {
                *w += 1.0;
                return;
            }
            let stack = stacks.entry(site).or_insert_with(|| {
                site_frames(site, functions)
                    .into_iter()
                    .map(|name| {
                        *frame_index.entry(name.clone()).or_insert_with(|| {
                            frames.push(speedscope::Frame {
                                name,
                                file: None,
                                line: None,
                                col: None,
                            });
                            frames.len() - 1
                        })
                    })
                    .collect()
            });
            l.samples.push(stack.clone());
            l.weights.push(1.0);
            l.last = Some(site);
        }
    })?;
    let profiles: Vec<speedscope::SampledProfile> = lanes
        .into_values()
        .filter(|l| !l.samples.is_empty())
        .map(|l| {
            let total: f64 = l.weights.iter().sum();
            speedscope::SampledProfile {
                kind: "sampled".to_string(),
                name: l.name,
                unit: "none".to_string(),
                start_value: 0.0,
                end_value: total,
                samples: l.samples,
                weights: l.weights,
            }
        })
        .collect();
    let file = speedscope::File {
        schema: speedscope::SCHEMA.to_string(),
        shared: speedscope::Shared { frames },
        active_profile_index: (!profiles.is_empty()).then_some(0),
        profiles,
        name: input.file_name().map(|n| n.to_string_lossy().into_owned()),
        exporter: Some(format!("pcprof {}", env!("CARGO_PKG_VERSION"))),
    };
    let mut report = end.report;
    report.notes.push(
        "Not kept: sample times (weights count samples; time order is kept) and unloads."
            .to_string(),
    );
    Ok((file, report))
}
