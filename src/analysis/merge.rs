//! `merge`: many profiles (runs, processes, programs) into one native
//! profile, streamed record by record.
//!
//! - **Streaming.** Inputs are read one after another with
//!   [`ProfileReader`]; memory follows the functions (their names and code,
//!   to match them) and the interpreters, never the samples.
//! - **Functions** are matched by name and code: the first occurrence gets
//!   an address in the output's own address space (laid out afresh,
//!   sequentially from [`LAYOUT_BASE`], each aligned to
//!   [`LAYOUT_ALIGN`] bytes with a gap, so no two overlap), and every later
//!   function with the same name and code, in any input or reloaded in the
//!   same one, maps to it. Same name with other code is another function.
//!   Output functions are never unloaded (their addresses are never
//!   reused), so the output has no `Unload` records.
//! - **PCs** are resolved in their own input ([`Resolver`]: by address and
//!   time, so unloads and reused addresses resolve as `report` of that input
//!   resolves them), then become the output function's address plus the
//!   same offset. A PC outside every function of its input goes to
//!   [`OUTSIDE_BASE`] and above, where no output function lies, and is
//!   counted ([`SourceReport::unresolved`]).
//! - **Times**: runs follow one another. Input *i*'s times are shifted by
//!   the end of input *i−1* (its latest time: samples, records, summary)
//!   plus 1 ns, so times keep their order within each input and never go
//!   backwards across inputs (the timeline shows the runs side by side, and
//!   the summed summary's duration is the sum of the runs'). Pulley inputs
//!   have no times: sample *k* gets `k × pulley_interval_ns`, as
//!   `convert --to native` does.
//! - **Interpreters** stay apart: each (input, interpreter id) gets a fresh
//!   output id, labelled `<origin>: <label>` (`interp-N` without a label;
//!   `pulley` for a Pulley input's one interpreter). A reused id of one
//!   input stays one output id with its registrations.
//! - **Call stacks**: each frame is a PC, translated as a sample's PC is
//!   (once per input stack, at its first use), and re-interned by the
//!   output's encoder.
//! - **Listings** travel with their functions (the encoder writes each
//!   code's listing once).
//! - **Run statistics**: the `Summary` record holds one run's figures. The
//!   output's summary sums the counters of the inputs that had one (ticks,
//!   samples, batches, bytes, interpreters, functions, CPU, errors), keeps
//!   the maximum of the lateness percentiles (an upper bound, not a
//!   percentile of the union), the rate when all agree (else 0), the
//!   distinct scheduling texts, and the first error, prefixed by its origin.
//!   Each input's own summary is kept in [`MergeReport::sources`] (the
//!   format has no record for a per-source summary: see the README).
//! - **Header**: synthetic, as `recode` writes one: clock [`MERGED_CLOCK`]
//!   (or `pulley` when every input came from Pulley's format, so reports say
//!   the times are synthetic), the first input's rate; the `Sampling` record
//!   only when every input has the same one.
//! - **A corrupt or truncated input**: its complete records before the fault
//!   are merged, the fault (file and byte offset) goes to
//!   [`SourceReport::error`], and the next input is merged.
//! - [`merge`] writes a file as [`super::output`] does: never over an input.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::convert::ConvertError;
use super::convert::recode::PULLEY_CLOCK;
use super::output::write_output;
use crate::Resolver;
use crate::format::{
    Encoder, Event, FileHeader, Format, InterpreterRecord, ProfileReader, RateRecord, ReadError,
    Record, RetiredRecord, Sample, SamplingRecord, Summary, TRUNCATED_FRAME,
};

/// The header's `clock` of a merged file: times are each input's, shifted
/// so that the runs follow one another.
pub const MERGED_CLOCK: &str = "merged";
/// Address of the first output function.
pub const LAYOUT_BASE: u64 = 0x1_0000;
/// Alignment of each output function's address.
pub const LAYOUT_ALIGN: u64 = 16;
/// PCs outside every function of their input are mapped here and above
/// (their input address modulo 2^62): far above any laid-out function.
pub const OUTSIDE_BASE: u64 = 3 << 62;
/// Samples per record written. Small on purpose: bincode charges each
/// decoded element its size in memory (at most 17 bytes a sample: a tick
/// delta, a count, an interpreter, a PC byte) against the decoder's limit,
/// and readers of pcprof before the tier fix in `format/native.rs` set
/// that limit from the payload's own length (4 KiB for the smallest), so a
/// larger record of one-sample ticks (Pulley inputs) was refused as
/// `LimitExceeded`; 240 × 17 stays within 4 KiB whatever the payload, at a
/// cost of 8 bytes of frame per 240 samples.
const CHUNK: usize = 240;

/// One input of a merge: a file (native or Pulley format) and the label its
/// interpreters get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeInput {
    /// The profile file.
    pub path: PathBuf,
    /// Its label in the output (interpreter labels, reports).
    pub origin: String,
}

impl MergeInput {
    /// An input labelled with its file name.
    pub fn new(path: impl Into<PathBuf>) -> MergeInput {
        let path = path.into();
        let origin = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        MergeInput { path, origin }
    }

    /// Inputs labelled with their file names; where two names are the same
    /// (`a/run.pcprof`, `b/run.pcprof`), those are labelled with the path as
    /// given, so labels tell the inputs apart.
    pub fn from_paths<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Vec<MergeInput> {
        let mut inputs: Vec<MergeInput> = paths.into_iter().map(MergeInput::new).collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for i in &inputs {
            *seen.entry(i.origin.clone()).or_default() += 1;
        }
        for i in &mut inputs {
            if seen.get(&i.origin).is_some_and(|&n| n > 1) {
                i.origin = i.path.display().to_string();
            }
        }
        inputs
    }
}

/// Options of a merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Time between two samples of a Pulley input, which records none.
    pub pulley_interval_ns: u64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            pulley_interval_ns: 1_000_000,
        }
    }
}

/// Where an input stopped being readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFailure {
    /// The input.
    pub path: PathBuf,
    /// Byte offset of the record at fault: every record before it was
    /// merged.
    pub offset: u64,
    /// The reader's message (it names the file and the offset).
    pub message: String,
}

impl InputFailure {
    fn new(path: &Path, e: &ReadError) -> InputFailure {
        let message = if e.path().is_some() {
            e.to_string()
        } else {
            format!("{}: {e}", path.display())
        };
        InputFailure {
            path: path.to_path_buf(),
            offset: e.offset(),
            message,
        }
    }
}

impl std::fmt::Display for InputFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a merge took from one input.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    /// The input.
    pub path: PathBuf,
    /// Its label.
    pub origin: String,
    /// Its format (`None`: it could not be opened).
    pub format: Option<Format>,
    /// Its header (native inputs).
    pub header: Option<FileHeader>,
    /// Its closing summary, if it had one.
    pub summary: Option<Summary>,
    /// Samples merged.
    pub samples: u64,
    /// Of those, samples outside every function of the input.
    pub unresolved: u64,
    /// Function records read.
    pub functions: u64,
    /// Of those, functions new to the output (not matched by name and code).
    pub new_functions: u64,
    /// Interpreter ids seen.
    pub interpreters: u64,
    /// What was added to its times in the output.
    pub time_offset_ns: u64,
    /// Its latest time (before the shift).
    pub end_ns: u64,
    /// Where reading stopped early, if it did.
    pub error: Option<InputFailure>,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergeReport {
    /// One per input, in input order.
    pub sources: Vec<SourceReport>,
    /// Functions in the output.
    pub functions: u64,
    /// Interpreters in the output.
    pub interpreters: u64,
    /// Samples in the output.
    pub samples: u64,
    /// Of those, samples outside every function.
    pub unresolved: u64,
    /// The summed summary written (`None`: no input had one).
    pub summary: Option<Summary>,
}

impl MergeReport {
    /// The inputs that could not be read whole.
    pub fn failures(&self) -> impl Iterator<Item = &InputFailure> + '_ {
        self.sources.iter().filter_map(|s| s.error.as_ref())
    }

    /// Whether every input was read to its end.
    pub fn all_read(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// Merges `inputs` into a native profile at `output`, written as
/// [`super::output::write_output`] does: refused when `output` is one of
/// the inputs, replaced only once complete.
pub fn merge(
    inputs: &[MergeInput],
    output: &Path,
    options: &MergeOptions,
) -> Result<MergeReport, ConvertError> {
    let paths: Vec<&Path> = inputs.iter().map(|i| i.path.as_path()).collect();
    write_output(output, &paths, |w| {
        merge_to_writer(inputs, w, output, options)
    })
}

/// What the pre-pass learns of an input: enough for the output's header.
struct Opened {
    format: Format,
    header: Option<FileHeader>,
    sampling: Option<SamplingRecord>,
}

fn peek(path: &Path) -> Result<Opened, ReadError> {
    let mut reader = ProfileReader::open(path)?;
    let format = reader.format();
    let header = reader.header().cloned();
    // Version 2 files have their `Sampling` record right after the header.
    let sampling = match (format, reader.next()) {
        (Format::Native, Some(Ok(Event::Sampling(s)))) => Some(s),
        _ => None,
    };
    Ok(Opened {
        format,
        header,
        sampling,
    })
}

/// Merges `inputs` into one native profile written to `out`; `name` names
/// the output in errors. See the module documentation. Errors are the
/// output's only: an input's fault is in the report.
pub fn merge_to_writer<W: Write>(
    inputs: &[MergeInput],
    out: W,
    name: &Path,
    options: &MergeOptions,
) -> Result<MergeReport, ConvertError> {
    let interval = options.pulley_interval_ns.max(1);
    let pulley_hz = u32::try_from(1_000_000_000 / interval).unwrap_or(0);
    let opened: Vec<Result<Opened, ReadError>> = inputs.iter().map(|i| peek(&i.path)).collect();
    let readable: Vec<&Opened> = opened.iter().filter_map(|o| o.as_ref().ok()).collect();
    let from_pulley = |o: &Opened| {
        o.format == Format::Pulley || o.header.as_ref().is_some_and(|h| h.clock == PULLEY_CLOCK)
    };
    let nominal_hz = |o: &Opened| match &o.header {
        Some(h) => h.frequency_hz,
        None => pulley_hz,
    };
    let all_pulley = !readable.is_empty() && readable.iter().all(|o| from_pulley(o));
    let frequency_hz = readable.first().map(|o| nominal_hz(o)).unwrap_or(0);
    let header = FileHeader {
        pcprof_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: 0,
        started_unix_ns: readable
            .iter()
            .find_map(|o| o.header.as_ref().map(|h| h.started_unix_ns))
            .unwrap_or(0),
        frequency_hz,
        flush_samples: 0,
        clock: if all_pulley {
            PULLEY_CLOCK
        } else {
            MERGED_CLOCK
        }
        .to_string(),
    };
    let enc_err = |source| ConvertError::Encode {
        path: name.to_path_buf(),
        source,
    };
    let mut encoder = Encoder::native(out, &header).map_err(enc_err)?;
    let sampling = readable.first().and_then(|o| o.sampling);
    if let Some(s) = sampling
        && readable.iter().all(|o| o.sampling == Some(s))
    {
        encoder.write(&Record::Sampling(s)).map_err(enc_err)?;
    }
    let mut m = Merger {
        encoder,
        name,
        interval,
        functions: HashMap::new(),
        layout: Vec::new(),
        next_addr: LAYOUT_BASE,
        next_interp: 0,
        rate: frequency_hz,
        report: MergeReport::default(),
    };
    let mut base = 0u64;
    for (input, opened) in inputs.iter().zip(opened) {
        let mut source = SourceReport {
            path: input.path.clone(),
            origin: input.origin.clone(),
            format: None,
            header: None,
            summary: None,
            samples: 0,
            unresolved: 0,
            functions: 0,
            new_functions: 0,
            interpreters: 0,
            time_offset_ns: base,
            end_ns: 0,
            error: None,
        };
        match opened.and_then(|_| ProfileReader::open(&input.path)) {
            Err(e) => source.error = Some(InputFailure::new(&input.path, &e)),
            Ok(reader) => {
                source.format = Some(reader.format());
                source.header = reader.header().cloned();
                let hz = source.header.as_ref().map_or(pulley_hz, |h| h.frequency_hz);
                if hz != m.rate {
                    m.rate = hz;
                    m.write(&Record::Rate(RateRecord {
                        time_ns: base,
                        frequency_hz: hz,
                    }))?;
                }
                m.input(reader, input, &mut source)?;
                base = base.saturating_add(source.end_ns).saturating_add(1);
            }
        }
        m.report.sources.push(source);
    }
    let summary = sum_summaries(&m.report.sources, base.saturating_sub(1));
    if let Some(s) = &summary {
        m.write(&Record::Summary(s.clone()))?;
    }
    m.report.summary = summary;
    let mut sink = m.encoder.into_inner();
    sink.flush().map_err(|source| ConvertError::Io {
        path: name.to_path_buf(),
        source,
    })?;
    Ok(m.report)
}

/// The merge's state across inputs.
struct Merger<'a, W: Write> {
    encoder: Encoder<W>,
    name: &'a Path,
    interval: u64,
    /// Output function index by (name, code).
    functions: HashMap<(String, Vec<u8>), usize>,
    /// Output functions' `(addr, len)`, by index.
    layout: Vec<(u64, u64)>,
    next_addr: u64,
    next_interp: u32,
    /// The rate last declared in the output.
    rate: u32,
    report: MergeReport,
}

/// One input's function: the output function it maps to, where it lies in
/// the input.
#[derive(Clone, Copy)]
struct Mapped {
    out: usize,
    addr: u64,
    len: u64,
}

impl<W: Write> Merger<'_, W> {
    fn write(&mut self, record: &Record) -> Result<(), ConvertError> {
        self.encoder
            .write(record)
            .map(|_| ())
            .map_err(|source| ConvertError::Encode {
                path: self.name.to_path_buf(),
                source,
            })
    }

    fn write_samples(&mut self, samples: &[Sample]) -> Result<(), ConvertError> {
        for chunk in samples.chunks(CHUNK) {
            self.encoder
                .write_samples(chunk)
                .map_err(|source| ConvertError::Encode {
                    path: self.name.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Merges one input; a read fault ends it, into `source.error`.
    fn input<R: Read>(
        &mut self,
        mut reader: ProfileReader<R>,
        input: &MergeInput,
        source: &mut SourceReport,
    ) -> Result<(), ConvertError> {
        let base = source.time_offset_ns;
        let pulley = reader.format() == Format::Pulley;
        let mut resolver = Resolver::new();
        let mut mapped: Vec<Mapped> = Vec::new();
        let mut interps: HashMap<u32, u32> = HashMap::new();
        let mut seq = 0u64;
        let mut end = 0u64;
        let mut samples: Vec<Sample> = Vec::new();
        let mut batch: Vec<Sample> = Vec::new();
        // This input's stacks by id - 1 (parent, frame), and the output's
        // id of each once translated (0: not yet).
        let mut stacks: Vec<(u32, u64)> = Vec::new();
        let mut stack_out: Vec<u32> = Vec::new();
        let mut todo: Vec<u32> = Vec::new();
        while let Some(event) = reader.next_into(&mut samples) {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    source.error = Some(InputFailure::new(&input.path, &e));
                    break;
                }
            };
            match event {
                Event::Function(mut f) => {
                    source.functions += 1;
                    end = end.max(f.loaded_ns);
                    let len = f.code.len() as u64;
                    resolver.add(mapped.len(), f.addr, len, f.loaded_ns);
                    let in_addr = f.addr;
                    let key = (std::mem::take(&mut f.name), std::mem::take(&mut f.code));
                    let out = match self.functions.get(&key) {
                        Some(&out) => out,
                        None => {
                            let out = self.layout.len();
                            let addr = self.next_addr;
                            // At least one byte, and a gap: distinct functions
                            // never touch.
                            let span = len.max(1) + LAYOUT_ALIGN;
                            self.next_addr = (addr + span).next_multiple_of(LAYOUT_ALIGN);
                            if self.next_addr >= OUTSIDE_BASE {
                                return Err(ConvertError::Io {
                                    path: self.name.to_path_buf(),
                                    source: std::io::Error::other(
                                        "the merged functions do not fit the output's address space",
                                    ),
                                });
                            }
                            self.layout.push((addr, len));
                            f.addr = addr;
                            f.name = key.0.clone();
                            f.code = key.1.clone();
                            f.loaded_ns = base.saturating_add(f.loaded_ns);
                            self.write(&Record::Function(f))?;
                            self.functions.insert(key, out);
                            source.new_functions += 1;
                            self.report.functions += 1;
                            out
                        }
                    };
                    mapped.push(Mapped {
                        out,
                        addr: in_addr,
                        len,
                    });
                }
                Event::Unload(u) => {
                    // The output's function stays: other generations and
                    // inputs may map to it.
                    end = end.max(u.unloaded_ns);
                    resolver.unload(u.addr, u.unloaded_ns);
                }
                Event::Interpreter(i) => {
                    end = end.max(i.registered_ns);
                    let id = self.interp_id(&mut interps, i.id, source);
                    let label = format!(
                        "{}: {}",
                        input.origin,
                        i.label.unwrap_or_else(|| format!("interp-{}", i.id))
                    );
                    self.write(&Record::Interpreter(InterpreterRecord {
                        id,
                        label: Some(label),
                        registered_ns: base.saturating_add(i.registered_ns),
                    }))?;
                }
                Event::Retired(r) => {
                    end = end.max(r.retired_ns);
                    if let Some(&id) = interps.get(&r.id) {
                        self.write(&Record::Retired(RetiredRecord {
                            id,
                            retired_ns: base.saturating_add(r.retired_ns),
                        }))?;
                    }
                }
                Event::Rate(r) => {
                    end = end.max(r.time_ns);
                    self.rate = r.frequency_hz;
                    self.write(&Record::Rate(RateRecord {
                        time_ns: base.saturating_add(r.time_ns),
                        frequency_hz: r.frequency_hz,
                    }))?;
                }
                Event::Summary(s) => {
                    end = end.max(s.stopped_ns);
                    source.summary = Some(s);
                }
                // Written once, after the header, when every input agrees.
                Event::Sampling(_) => {}
                Event::Stacks(nodes) => {
                    for n in nodes {
                        stacks.push((n.parent, n.frame));
                        stack_out.push(0);
                    }
                }
                Event::Samples(_) => {
                    batch.clear();
                    for s in &samples {
                        let t = if pulley {
                            let t = seq.saturating_mul(self.interval);
                            seq += 1;
                            t
                        } else {
                            s.time_ns
                        };
                        end = end.max(t);
                        let time_ns = base.saturating_add(t);
                        let interp = match interps.get(&s.interp) {
                            Some(&id) => id,
                            None => {
                                // Pulley's one interpreter, or a native
                                // sample without its record (a crafted file).
                                let id = self.interp_id(&mut interps, s.interp, source);
                                let label = if pulley {
                                    "pulley".to_string()
                                } else {
                                    format!("interp-{}", s.interp)
                                };
                                self.write(&Record::Interpreter(InterpreterRecord {
                                    id,
                                    label: Some(format!("{}: {label}", input.origin)),
                                    registered_ns: time_ns,
                                }))?;
                                id
                            }
                        };
                        let layout = &self.layout;
                        let mut translate = |pc: u64| {
                            resolver
                                .resolve(pc, s.time_ns)
                                .and_then(|i| mapped.get(i))
                                .and_then(|m| {
                                    let offset = pc.wrapping_sub(m.addr);
                                    let (addr, _) = layout.get(m.out)?;
                                    (offset < m.len).then(|| addr + offset)
                                })
                        };
                        let pc = translate(s.pc).unwrap_or_else(|| {
                            source.unresolved += 1;
                            OUTSIDE_BASE + (s.pc & ((1 << 62) - 1))
                        });
                        // A stack's frames are PCs too: translated once, at
                        // the first sample that uses the stack.
                        let mut stack = 0;
                        if s.stack != 0 {
                            todo.clear();
                            let mut at = s.stack;
                            while at != 0 && stack_out.get(at as usize - 1) == Some(&0) {
                                todo.push(at);
                                at = stacks[at as usize - 1].0;
                            }
                            stack = if at == 0 {
                                0
                            } else {
                                stack_out.get(at as usize - 1).copied().unwrap_or(0)
                            };
                            while let Some(id) = todo.pop() {
                                let frame = stacks[id as usize - 1].1;
                                let frame = if frame == TRUNCATED_FRAME {
                                    frame
                                } else {
                                    translate(frame)
                                        .unwrap_or(OUTSIDE_BASE + (frame & ((1 << 62) - 1)))
                                };
                                stack = self.encoder.stacks().node(stack, frame);
                                stack_out[id as usize - 1] = stack;
                            }
                        }
                        batch.push(Sample {
                            time_ns,
                            interp,
                            pc,
                            stack,
                        });
                    }
                    source.samples += batch.len() as u64;
                    self.write_samples(&batch)?;
                }
            }
        }
        source.end_ns = end;
        self.report.samples += source.samples;
        self.report.unresolved += source.unresolved;
        Ok(())
    }

    /// The output id of `(this input, id)`, given on first sight.
    fn interp_id(
        &mut self,
        interps: &mut HashMap<u32, u32>,
        id: u32,
        source: &mut SourceReport,
    ) -> u32 {
        *interps.entry(id).or_insert_with(|| {
            let out = self.next_interp;
            self.next_interp += 1;
            self.report.interpreters += 1;
            source.interpreters += 1;
            out
        })
    }
}

/// The output's summary: the sum of the inputs' (see the module
/// documentation for what "sum" means per field); `None` when no input had
/// one.
fn sum_summaries(sources: &[SourceReport], stopped_ns: u64) -> Option<Summary> {
    let with: Vec<(&SourceReport, &Summary)> = sources
        .iter()
        .filter_map(|s| s.summary.as_ref().map(|x| (s, x)))
        .collect();
    let (_, first) = with.first()?;
    let mut st = crate::Stats {
        frequency_hz: first.stats.frequency_hz,
        ..crate::Stats::default()
    };
    let mut scheduling: Vec<&str> = Vec::new();
    for (source, s) in &with {
        let x = &s.stats;
        if x.frequency_hz != st.frequency_hz {
            st.frequency_hz = 0;
        }
        st.elapsed_ns = st.elapsed_ns.saturating_add(x.elapsed_ns);
        st.ticks_scheduled = st.ticks_scheduled.saturating_add(x.ticks_scheduled);
        st.ticks_taken = st.ticks_taken.saturating_add(x.ticks_taken);
        st.ticks_missed = st.ticks_missed.saturating_add(x.ticks_missed);
        st.samples_taken = st.samples_taken.saturating_add(x.samples_taken);
        st.samples_written = st.samples_written.saturating_add(x.samples_written);
        st.samples_dropped = st.samples_dropped.saturating_add(x.samples_dropped);
        st.batches_written = st.batches_written.saturating_add(x.batches_written);
        st.batches_dropped = st.batches_dropped.saturating_add(x.batches_dropped);
        st.bytes_written = st.bytes_written.saturating_add(x.bytes_written);
        st.lateness_p50_ns = st.lateness_p50_ns.max(x.lateness_p50_ns);
        st.lateness_p99_ns = st.lateness_p99_ns.max(x.lateness_p99_ns);
        st.lateness_max_ns = st.lateness_max_ns.max(x.lateness_max_ns);
        st.interpreters_live = st.interpreters_live.saturating_add(x.interpreters_live);
        st.interpreters_retired = st
            .interpreters_retired
            .saturating_add(x.interpreters_retired);
        st.functions_live = st.functions_live.saturating_add(x.functions_live);
        st.functions_unloaded = st.functions_unloaded.saturating_add(x.functions_unloaded);
        st.sampler_cpu_ns = st.sampler_cpu_ns.saturating_add(x.sampler_cpu_ns);
        st.writer_cpu_ns = st.writer_cpu_ns.saturating_add(x.writer_cpu_ns);
        st.errors = st.errors.saturating_add(x.errors);
        if st.first_error.is_none()
            && let Some(e) = &x.first_error
        {
            st.first_error = Some(format!("{}: {e}", source.origin));
        }
        if !x.scheduling.is_empty() && !scheduling.contains(&x.scheduling.as_str()) {
            scheduling.push(&x.scheduling);
        }
    }
    st.scheduling = scheduling.join(", ");
    Some(Summary {
        stopped_ns,
        stats: st,
    })
}
