//! `pprof`: Google's pprof format (`profile.proto`, gzipped), read by
//! `go tool pprof` and by continuous-profiling backends (Grafana Pyroscope,
//! Parca); behind the `export` feature.
//!
//! - One streaming pass (`walk.rs`): samples are summed per (stack,
//!   interpreter) as they arrive, so memory grows with the distinct sampled
//!   instructions and interpreters, never with the sample count.
//! - A Function is a bytecode function; a Location is one instruction, its
//!   byte offset into the function as the address (`-addresses` separates
//!   instructions). [`Granularity::Instruction`] (the default) gives the
//!   instruction's Location a second, inner line whose function is named
//!   `func+0x1c xadd64`, so the mnemonic shows in `go tool pprof -top` and
//!   in Pyroscope's flame graph (which groups by function name) under its
//!   function (hex lines, which have no mnemonic, are named by their
//!   bytes); [`Granularity::Function`] stops at the function.
//! - A sample's Locations come from one place (`Builder::stack`), leaf
//!   first: its instruction (or function), then, when the file has call
//!   stacks (format version 3), each caller's function, innermost first,
//!   `[truncated]` where frames were lost; samples are summed per (site,
//!   caller path, interpreter).
//! - Values: `samples/count` and, for native files, `cpu/nanoseconds`
//!   (each sample weighs the sampling period in force, following the file's
//!   rate changes); `time_nanos` is the clock's epoch, `duration_nanos` runs
//!   to the stop. A Pulley file has no times: counts only, and a comment in
//!   the profile says so.
//! - Labels: `interpreter_id` and `interpreter_label` (when the interpreter
//!   has one), as strings.
//! - `pprof_profiles_from` cuts a native file into one profile per
//!   interval of recorded time, each dated to its interval and handed over
//!   as soon as it is complete (`pcprof push --interval`).

#[cfg(feature = "export")]
use std::collections::HashMap;
use std::fmt;
#[cfg(feature = "export")]
use std::io::{Read, Write};
#[cfg(feature = "export")]
use std::path::Path;

use super::Exporter;
#[cfg(feature = "export")]
use super::walk::{Callers, Site, Step, WalkFunction, walk};
#[cfg(feature = "export")]
use super::{
    ConvertError, ConvertOptions, ConvertReport, Prepared, TRUNCATED, UNRESOLVED, with_reader,
};
#[cfg(feature = "export")]
use crate::ProfileReader;
#[cfg(feature = "export")]
use crate::analysis::profile::{FoldMap, Frame};

#[cfg(feature = "export")]
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod proto;

/// The table entry of `pprof`.
pub(super) const EXPORTER: Exporter = Exporter {
    name: "pprof",
    description: "pprof (go tool pprof, Grafana Pyroscope, Parca): gzipped profile.proto",
    extension: "pb.gz",
    needs_export_feature: true,
    #[cfg(feature = "export")]
    prepare: Some(|input, options| {
        with_reader!(input, |reader| {
            let (profile, report) = pprof_profile_from(reader, options)?;
            Ok(Box::new(Gzipped(profile, report)) as Box<dyn Prepared>)
        })
    }),
    #[cfg(not(feature = "export"))]
    prepare: None,
};

/// What the leaf of a pprof sample names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Granularity {
    /// The function; instructions differ only by address.
    Function,
    /// The instruction, as an inner frame `func+0x1c xadd64` under its
    /// function: what a flame graph that groups by name needs to show
    /// instructions.
    #[default]
    Instruction,
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Granularity::Function => "function",
            Granularity::Instruction => "instruction",
        })
    }
}

impl std::str::FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "function" => Ok(Granularity::Function),
            "instruction" => Ok(Granularity::Instruction),
            other => Err(format!(
                "unknown granularity {other:?} (expected function or instruction)"
            )),
        }
    }
}

/// Name of the string label holding a sample's interpreter id.
pub const LABEL_INTERPRETER_ID: &str = "interpreter_id";
/// Name of the string label holding a sample's interpreter label.
pub const LABEL_INTERPRETER_LABEL: &str = "interpreter_label";

/// The comment a Pulley file's profile carries.
pub const PULLEY_COMMENT: &str =
    "Pulley file: no times were recorded, so values count samples (no cpu/nanoseconds).";

/// A profile built, written gzipped.
#[cfg(feature = "export")]
struct Gzipped(proto::Profile, ConvertReport);

#[cfg(feature = "export")]
impl Prepared for Gzipped {
    fn write(
        self: Box<Self>,
        out: &mut dyn Write,
        path: &Path,
    ) -> Result<ConvertReport, ConvertError> {
        write_gzipped(&self.0, out).map_err(|source| ConvertError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(self.1)
    }
}

/// Writes `profile` as pprof files hold it: the encoded message, gzipped.
#[cfg(feature = "export")]
pub fn write_gzipped(profile: &proto::Profile, out: &mut dyn Write) -> std::io::Result<()> {
    use prost::Message;

    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?.flush()
}

/// Builds the pprof profile of `input` (see the module's doc).
#[cfg(feature = "export")]
pub fn pprof_profile(
    input: &Path,
    options: &ConvertOptions,
) -> Result<(proto::Profile, ConvertReport), ConvertError> {
    let reader = ProfileReader::open(input).map_err(ConvertError::Read)?;
    pprof_profile_from(reader, options)
}

/// [`pprof_profile`] from an open reader (any [`Read`]: an embedder's
/// sink).
#[cfg(feature = "export")]
pub fn pprof_profile_from<R: Read>(
    reader: ProfileReader<R>,
    options: &ConvertOptions,
) -> Result<(proto::Profile, ConvertReport), ConvertError> {
    let mut whole = None;
    let report = pprof_profiles_from(reader, options, None, |p| whole = Some(p))?;
    // `emit` is called exactly once without an interval.
    Ok((whole.unwrap_or_default(), report))
}

/// One pprof profile per `interval_ns` of recorded time (windows aligned on
/// the clock's epoch, each profile's `time_nanos` and `duration_nanos` its
/// window; windows without samples are skipped), handed to `emit` in time
/// order as the file streams by: memory holds one window's sums. Without
/// an interval, `emit` gets the one profile of the whole file. A Pulley
/// file has no times: asked for intervals, it is refused
/// ([`ConvertError::Io`] of kind `InvalidInput`, naming `<input>`).
#[cfg(feature = "export")]
pub fn pprof_profiles_from<R: Read>(
    reader: ProfileReader<R>,
    options: &ConvertOptions,
    interval_ns: Option<u64>,
    mut emit: impl FnMut(proto::Profile),
) -> Result<ConvertReport, ConvertError> {
    use crate::format::Format;

    let timed = reader.format() == Format::Native;
    if interval_ns.is_some() && !timed {
        return Err(ConvertError::Io {
            path: Path::new("<input>").to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a Pulley file has no times: it cannot be cut into intervals",
            ),
        });
    }
    let interval = interval_ns.map(|i| i.max(1));
    let header = reader.header().cloned();
    let started = header.as_ref().map_or(0, |h| h.started_unix_ns);
    let period_of = |hz: u32| 1_000_000_000 / u64::from(hz.max(1));
    let header_period = header.as_ref().map(|h| period_of(h.frequency_hz));
    let mut period = header_period.unwrap_or(0);
    let mut builder = Builder::new(options.granularity);
    let mut labels: HashMap<u32, String> = HashMap::new();
    let mut last_ns = 0;
    // The current window's start, once a sample opened it.
    let mut window: Option<u64> = None;
    let finish = |builder: Builder, labels: &HashMap<u32, String>, from: u64, to: u64| {
        let mut profile = builder.finish(timed, labels);
        if let Some(p) = header_period {
            profile.time_nanos = clamp(started.saturating_add(from));
            profile.period = clamp(p);
        }
        if timed {
            profile.duration_nanos = clamp(to.saturating_sub(from));
        }
        profile
    };
    let end = walk(reader, options, |step| match step {
        Step::Interpreter(i) => {
            if let Some(l) = &i.label {
                labels.insert(i.id, l.clone());
            }
        }
        Step::Retired(..) => {}
        // A pause (0) keeps the last period: no sample comes meanwhile.
        Step::Rate(hz) => {
            if hz > 0 {
                period = period_of(hz);
            }
        }
        Step::Sample {
            interp,
            time_ns,
            site,
            stack,
            functions,
        } => {
            last_ns = last_ns.max(time_ns);
            if let Some(iv) = interval {
                let start = time_ns - time_ns % iv;
                match window {
                    // A later window: the current one is complete. (A
                    // sample earlier than its window stays in it.)
                    Some(w) if start > w => {
                        let done =
                            std::mem::replace(&mut builder, Builder::new(options.granularity));
                        emit(finish(done, &labels, w, w.saturating_add(iv)));
                        window = Some(start);
                    }
                    Some(_) => {}
                    None => window = Some(start),
                }
            }
            builder.add(
                site,
                &stack,
                interp,
                functions,
                if timed { period } else { 0 },
            );
        }
    })?;
    match (interval, window) {
        (Some(iv), Some(w)) => emit(finish(builder, &labels, w, w.saturating_add(iv))),
        (Some(_), None) => {}
        (None, _) => emit(finish(
            builder,
            &labels,
            0,
            end.stopped_ns.unwrap_or(last_ns),
        )),
    }
    let mut report = end.report;
    report.notes.push(
        if timed {
            "Not kept: sample instants and time order (pprof sums samples per stack and interpreter), and unloads."
        } else {
            "Not kept: unloads. The Pulley file has no times: values count samples (no cpu/nanoseconds)."
        }
        .to_string(),
    );
    // The walk's note on synthetic Pulley times does not apply: none are
    // written.
    if !timed {
        report.notes.retain(|n| !n.contains("samples are"));
    }
    Ok(report)
}

/// A time or count as profile.proto's `int64`.
#[cfg(feature = "export")]
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What a location stands for.
#[cfg(feature = "export")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LocationKey {
    Unresolved,
    /// Function index, and instruction index when one contains the PC.
    Instruction(usize, Option<usize>),
    /// A caller's frame: its function (index), named by the function alone
    /// (the call site's instruction is not kept, as in the other exports).
    Caller(usize),
    /// Frames lost (deeper than the interpreter's capacity, or a stack that
    /// kept changing while it was read).
    Truncated,
}

/// Sums samples per (site, call stack, interpreter) and interns the strings,
/// functions and locations they name.
#[cfg(feature = "export")]
#[derive(Debug)]
struct Builder {
    granularity: Granularity,
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<proto::Function>,
    /// Function of a walk function index (`None`: unresolved) or of an
    /// instruction (granularity `instruction`), by name.
    function_ids: HashMap<String, u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<LocationKey, u64>,
    /// Per (site, the walk's caller node, interpreter): samples, and
    /// nanoseconds.
    totals: Vec<(SlotKey, (i64, i64))>,
    /// Index in `totals` of each key, by [`slot_key`]: one cheap hash a
    /// sample.
    slots: FoldMap<(u64, u64, u64), usize>,
    /// The last key added, and its index in `totals`.
    last: Option<(SlotKey, usize)>,
    /// Each (site, caller node)'s stack, as location ids, leaf first.
    stacks: HashMap<(Site, u32), Vec<u64>>,
    /// The largest address a location has (the mapping's limit).
    max_address: u64,
}

#[cfg(feature = "export")]
impl Builder {
    fn new(granularity: Granularity) -> Self {
        let mut b = Builder {
            granularity,
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            totals: Vec::new(),
            slots: FoldMap::default(),
            last: None,
            stacks: HashMap::new(),
            max_address: 0,
        };
        // The string table starts with "" (profile.proto).
        b.string("");
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_ids.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), i);
        i
    }

    fn function(&mut self, name: &str, system_name: &str) -> u64 {
        if let Some(&id) = self.function_ids.get(name) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let function = proto::Function {
            id,
            name: self.string(name),
            system_name: self.string(system_name),
            filename: 0,
            start_line: 0,
        };
        self.functions.push(function);
        self.function_ids.insert(name.to_string(), id);
        id
    }

    /// Adds one sample weighing `ns` nanoseconds.
    fn add(
        &mut self,
        site: Site,
        callers: &Callers<'_>,
        interp: u32,
        functions: &[WalkFunction],
        ns: u64,
    ) {
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        let key = (site, callers.node, interp);
        // Runs of one site and interpreter are common: one lookup a run.
        let slot = match self.last {
            Some((k, slot)) if k == key => slot,
            _ => {
                let packed = slot_key(key);
                let slot = match self.slots.get(&packed) {
                    Some(&slot) => slot,
                    None => {
                        if !self.stacks.contains_key(&(site, callers.node)) {
                            let stack = self.stack(site, callers, functions);
                            self.stacks.insert((site, callers.node), stack);
                        }
                        self.totals.push((key, (0, 0)));
                        self.slots.insert(packed, self.totals.len() - 1);
                        self.totals.len() - 1
                    }
                };
                self.last = Some((key, slot));
                slot
            }
        };
        let t = &mut self.totals[slot].1;
        t.0 += 1;
        t.1 = t.1.saturating_add(ns);
    }

    /// The locations of a sample at `site` under `callers`, leaf first
    /// (profile.proto's order): the one place a sample's stack is made. The
    /// leaf is the instruction (or function, by granularity); each caller
    /// is its function.
    fn stack(&mut self, site: Site, callers: &Callers<'_>, functions: &[WalkFunction]) -> Vec<u64> {
        let key = match site {
            Site::Unresolved => LocationKey::Unresolved,
            Site::Function(fi, ins) => LocationKey::Instruction(fi, ins),
        };
        let path = callers.path();
        let mut ids = Vec::with_capacity(1 + path.len());
        ids.push(self.location(key, functions));
        for frame in path.into_iter().rev() {
            let key = match frame {
                Frame::Function(fi) => LocationKey::Caller(fi),
                Frame::Outside => LocationKey::Unresolved,
                Frame::Truncated => LocationKey::Truncated,
            };
            ids.push(self.location(key, functions));
        }
        ids
    }

    fn location(&mut self, key: LocationKey, functions: &[WalkFunction]) -> u64 {
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let (address, lines) = match key {
            LocationKey::Unresolved => {
                let f = self.function(UNRESOLVED, UNRESOLVED);
                (0, vec![line(f)])
            }
            LocationKey::Truncated => {
                let f = self.function(TRUNCATED, TRUNCATED);
                (0, vec![line(f)])
            }
            LocationKey::Caller(fi) => {
                let name = functions.get(fi).map_or(UNRESOLVED, |wf| wf.name());
                let f = self.function(name, name);
                (0, vec![line(f)])
            }
            LocationKey::Instruction(fi, ins) => match functions.get(fi) {
                None => {
                    let f = self.function(UNRESOLVED, UNRESOLVED);
                    (0, vec![line(f)])
                }
                Some(wf) => {
                    let name = wf.name();
                    let f = self.function(name, name);
                    match ins.and_then(|i| wf.instruction(i)) {
                        None => (0, vec![line(f)]),
                        Some(i) => {
                            let address = u64::from(i.offset);
                            match self.granularity {
                                Granularity::Function => (address, vec![line(f)]),
                                // An inline frame under the function: the
                                // last line is the caller (profile.proto).
                                Granularity::Instruction => {
                                    // Hex lines have no mnemonic: their bytes
                                    // name them.
                                    let what = if wf.is_hex() { &i.text } else { &i.opcode };
                                    let leaf = format!("{name}+{:#x} {what}", i.offset);
                                    let fi = self.function(&leaf, &leaf);
                                    (address, vec![line(fi), line(f)])
                                }
                            }
                        }
                    }
                }
            },
        };
        self.max_address = self.max_address.max(address);
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id: MAPPING_ID,
            address,
            line: lines,
            is_folded: false,
        });
        self.location_ids.insert(key, id);
        id
    }

    /// The profile: sample types, samples (hottest first), the mapping,
    /// locations, functions, strings. Times and period are the caller's.
    fn finish(mut self, timed: bool, labels: &HashMap<u32, String>) -> proto::Profile {
        let value_type = |b: &mut Builder, kind: &str, unit: &str| proto::ValueType {
            r#type: b.string(kind),
            unit: b.string(unit),
        };
        let mut sample_type = vec![value_type(&mut self, "samples", "count")];
        let period_type = if timed {
            let cpu = value_type(&mut self, "cpu", "nanoseconds");
            sample_type.push(cpu);
            cpu
        } else {
            sample_type[0]
        };
        let default_sample_type = period_type.r#type;
        let mut totals = std::mem::take(&mut self.totals);
        // Deterministic output: hottest first, then by interpreter and stack.
        totals.sort_by_key(|&((site, node, interp), (n, _))| {
            (
                std::cmp::Reverse(n),
                interp,
                self.stacks.get(&(site, node)).cloned(),
            )
        });
        let key_id = self.string(LABEL_INTERPRETER_ID);
        let key_label = self.string(LABEL_INTERPRETER_LABEL);
        let mut samples = Vec::with_capacity(totals.len());
        for ((site, node, interp), (n, ns)) in totals {
            let mut label = vec![proto::Label {
                key: key_id,
                str: self.string(&interp.to_string()),
                num: 0,
                num_unit: 0,
            }];
            if let Some(l) = labels.get(&interp) {
                label.push(proto::Label {
                    key: key_label,
                    str: self.string(l),
                    num: 0,
                    num_unit: 0,
                });
            }
            samples.push(proto::Sample {
                location_id: self.stacks.get(&(site, node)).cloned().unwrap_or_default(),
                value: if timed { vec![n, ns] } else { vec![n] },
                label,
            });
        }
        let mut comment =
            vec![self.string(&format!("Written by pcprof {}.", env!("CARGO_PKG_VERSION")))];
        if !timed {
            comment.push(self.string(PULLEY_COMMENT));
        }
        let mapping = proto::Mapping {
            id: MAPPING_ID,
            memory_start: 0,
            memory_limit: self.max_address + 1,
            file_offset: 0,
            filename: self.string("[bytecode]"),
            build_id: 0,
            // Already symbolised: pprof must not look for a binary.
            has_functions: true,
            has_filenames: false,
            has_line_numbers: false,
            has_inline_frames: self.granularity == Granularity::Instruction,
        };
        proto::Profile {
            sample_type,
            sample: samples,
            mapping: vec![mapping],
            location: self.locations,
            function: self.functions,
            string_table: self.strings,
            drop_frames: 0,
            keep_frames: 0,
            time_nanos: 0,
            duration_nanos: 0,
            period_type: Some(period_type),
            period: 1,
            comment,
            default_sample_type,
            doc_url: 0,
        }
    }
}

/// What a sample is summed by: its site, the walk's node of its callers
/// (0: none), its interpreter.
#[cfg(feature = "export")]
type SlotKey = (Site, u32, u32);

/// A [`SlotKey`] as integers: function index (`u64::MAX`: unresolved),
/// instruction index + 1 (0: none), then the caller node and the
/// interpreter in one word.
#[cfg(feature = "export")]
fn slot_key((site, node, interp): SlotKey) -> (u64, u64, u64) {
    let rest = (u64::from(node) << 32) | u64::from(interp);
    match site {
        Site::Unresolved => (u64::MAX, 0, rest),
        Site::Function(fi, ins) => (fi as u64, ins.map_or(0, |i| i as u64 + 1), rest),
    }
}

/// The one mapping: bytecode, addressed by offset into its function.
#[cfg(feature = "export")]
const MAPPING_ID: u64 = 1;

#[cfg(feature = "export")]
fn line(function_id: u64) -> proto::Line {
    proto::Line {
        function_id,
        line: 0,
        column: 0,
    }
}
