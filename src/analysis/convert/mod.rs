//! Exports of a profile to other tools' formats (`pcprof convert`).
//!
//! - One file per format, each a table entry ([`Exporter`]: name, help,
//!   extension, whether it needs the `export` feature, how to prepare it).
//!   [`EXPORTERS`] lists them; [`ExportFormat`], the library's and the
//!   CLI's `--to` values, help and errors all come from it. A new format is
//!   one new file and one line in [`EXPORTERS`].
//! - An exporter works in two steps: `prepare` reads (or opens) the input,
//!   a file or any [`Read`] ([`Source`]: an embedder converts straight from
//!   its sink's bytes), then the [`Prepared`] conversion writes to any
//!   [`Write`] ([`convert_to_writer`] does both). So a bad
//!   input fails before the output is opened, and [`convert`] writes
//!   through [`output::write_output`] for every format alike: a regular file
//!   through a temporary file renamed into place only when complete, a
//!   symlink's target rather than the symlink, a FIFO or device straight
//!   into it; the input (by identity) is refused as output.
//! - The formats: [`collapsed`] (flame graph lines, from the aggregated
//!   profile), [`recode`](mod@recode) (`pulley` and `native`, record by record),
//!   [`firefox`] and [`speedscope`] (JSON built whole from one streaming
//!   pass, `walk.rs`; behind the `export` feature), [`pprof`](mod@pprof)
//!   (gzipped `profile.proto`, summed per stack in the same pass; behind
//!   the `export` feature).
//! - A file that ends early or has a corrupt record converts up to the fault
//!   and the output is still written, holding the complete records;
//!   [`ConvertReport::read_error`] says where it stopped (the CLI then exits
//!   non-zero).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::ReadError;
use crate::analysis::profile::LoadError;
use crate::disasm::{DecoderChoice, Instruction};
use crate::format::EncodeError;

use super::output;

pub mod collapsed;
pub mod firefox;
pub mod pprof;
pub mod recode;
pub mod speedscope;
#[cfg(feature = "export")]
mod walk;

pub use collapsed::write_collapsed;
#[cfg(feature = "export")]
pub use firefox::{firefox_profile, firefox_profile_from};
pub use pprof::Granularity;
#[cfg(feature = "export")]
pub use pprof::{pprof_profile, pprof_profile_from};
pub use recode::recode;
#[cfg(feature = "export")]
pub use speedscope::{speedscope_file, speedscope_file_from};

/// Every format `pcprof convert` writes, in the order the help lists them.
pub const EXPORTERS: &[&Exporter] = &[
    &firefox::EXPORTER,
    &speedscope::EXPORTER,
    &pprof::EXPORTER,
    &collapsed::EXPORTER,
    &recode::PULLEY,
    &recode::NATIVE,
];

/// Frame name of samples that fell outside every function.
pub const UNRESOLVED: &str = "[unresolved]";
/// The frame that stands for the frames a truncated stack lost.
pub const TRUNCATED: &str = "[truncated]";

/// One export format: what the help says about it and how it is written.
#[derive(Debug)]
pub struct Exporter {
    /// The name on the command line (`--to NAME`).
    pub name: &'static str,
    /// One line for the help.
    pub description: &'static str,
    /// The usual file name extension of the output, without the dot.
    pub extension: &'static str,
    /// Whether it is only available with pcprof's `export` feature.
    pub needs_export_feature: bool,
    /// Reads (or opens) the input; `None` when compiled without the feature
    /// the format needs.
    pub prepare: Option<Prepare>,
}

/// The first step of an export: read or open the input.
pub type Prepare =
    for<'a> fn(Source<'a>, &ConvertOptions) -> Result<Box<dyn Prepared + 'a>, ConvertError>;

/// Where an export reads its profile from.
pub enum Source<'a> {
    /// A profile file.
    Path(&'a Path),
    /// A profile's bytes from any reader (an embedder's sink, a buffer):
    /// read once, as a file is.
    Reader(&'a mut dyn Read),
}

impl Source<'_> {
    /// The input's file name, for the formats that name their profile.
    pub fn name(&self) -> Option<String> {
        match self {
            Source::Path(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            Source::Reader(_) => None,
        }
    }
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Source::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

/// Opens `source` as a profile reader and hands it to `then`, whatever
/// the source's type (one generic body, two instances).
macro_rules! with_reader {
    ($source:expr, |$reader:ident| $then:expr) => {
        match $source {
            $crate::analysis::convert::Source::Path(path) => {
                let $reader = $crate::ProfileReader::open(path)
                    .map_err($crate::analysis::convert::ConvertError::Read)?;
                $then
            }
            $crate::analysis::convert::Source::Reader(r) => {
                let $reader = $crate::ProfileReader::new(r)
                    .map_err($crate::analysis::convert::ConvertError::Read)?;
                $then
            }
        }
    };
}
pub(crate) use with_reader;

/// An export whose input is read (or open): what is left is writing it.
pub trait Prepared {
    /// Writes the output to `out` (`path` only names it in errors) and says
    /// what the conversion did.
    fn write(
        self: Box<Self>,
        out: &mut dyn Write,
        path: &Path,
    ) -> Result<ConvertReport, ConvertError>;
}

/// A value built whole, serialised as JSON (the `firefox` and `speedscope`
/// exports).
#[cfg(feature = "export")]
struct Json<T>(T, ConvertReport);

#[cfg(feature = "export")]
impl<T: serde::Serialize> Prepared for Json<T> {
    fn write(
        self: Box<Self>,
        out: &mut dyn Write,
        path: &Path,
    ) -> Result<ConvertReport, ConvertError> {
        serde_json::to_writer(out, &self.0).map_err(|source| ConvertError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(self.1)
    }
}

/// The `prepare` of a JSON export: `built` is the value and its report.
#[cfg(feature = "export")]
fn json<'a, T: serde::Serialize + 'static>(
    built: Result<(T, ConvertReport), ConvertError>,
) -> Result<Box<dyn Prepared + 'a>, ConvertError> {
    let (value, report) = built?;
    Ok(Box::new(Json(value, report)))
}

/// A target of `pcprof convert`: a handle on an entry of [`EXPORTERS`].
#[derive(Clone, Copy)]
pub struct ExportFormat(&'static Exporter);

// The names of the enum this type replaced, kept for callers; a new format
// does not need one (`"name".parse()` or [`ExportFormat::ALL`] reach it).
#[allow(non_upper_case_globals)]
impl ExportFormat {
    /// The Firefox Profiler's processed profile (JSON).
    pub const Firefox: ExportFormat = ExportFormat(&firefox::EXPORTER);
    /// speedscope's file format, "sampled" profiles (JSON).
    pub const Speedscope: ExportFormat = ExportFormat(&speedscope::EXPORTER);
    /// pprof: gzipped `profile.proto`.
    pub const Pprof: ExportFormat = ExportFormat(&pprof::EXPORTER);
    /// Collapsed stacks: `function;instruction count` lines.
    pub const Collapsed: ExportFormat = ExportFormat(&collapsed::EXPORTER);
    /// `pulley_interpreter::profile`'s format.
    pub const Pulley: ExportFormat = ExportFormat(&recode::PULLEY);
    /// pcprof's native format.
    pub const Native: ExportFormat = ExportFormat(&recode::NATIVE);
}

impl ExportFormat {
    /// Every format, in the order the help lists them ([`EXPORTERS`]).
    pub const ALL: [ExportFormat; EXPORTERS.len()] = {
        let mut all = [ExportFormat(EXPORTERS[0]); EXPORTERS.len()];
        let mut i = 1;
        while i < EXPORTERS.len() {
            all[i] = ExportFormat(EXPORTERS[i]);
            i += 1;
        }
        all
    };

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Its entry in [`EXPORTERS`].
    pub fn exporter(self) -> &'static Exporter {
        self.0
    }
}

// By name: two handles on one entry may not share an address.
impl PartialEq for ExportFormat {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ExportFormat {}

impl std::hash::Hash for ExportFormat {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExportFormat({:?})", self.name())
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
    /// What the leaf of a `pprof` sample names: the instruction (default)
    /// or its function.
    pub granularity: Granularity,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            interp: None,
            decoder: DecoderChoice::Auto,
            pulley_interval_ns: 1_000_000,
            granularity: Granularity::default(),
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
    let Some(prepare) = format.exporter().prepare else {
        return Err(ConvertError::Io {
            path: output.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {format} export needs pcprof's `export` feature"),
            ),
        });
    };
    let prepared = prepare(Source::Path(input), options)?;
    output::write_output(output, &[input], |w| prepared.write(w, output))
}

/// Converts a profile from any reader (the bytes an embedder's sink
/// received) to `format`, written to any writer: no file on either side.
/// `out` is written only once the input is read (or, for `pulley` and
/// `native`, open); errors name the output `<output>`.
pub fn convert_to_writer(
    input: &mut dyn Read,
    out: &mut dyn Write,
    format: ExportFormat,
    options: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    let name = Path::new("<output>");
    let Some(prepare) = format.exporter().prepare else {
        return Err(ConvertError::Io {
            path: name.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {format} export needs pcprof's `export` feature"),
            ),
        });
    };
    let prepared = prepare(Source::Reader(input), options)?;
    let report = prepared.write(out, name)?;
    out.flush().map_err(|source| ConvertError::Io {
        path: name.to_path_buf(),
        source,
    })?;
    Ok(report)
}

/// Frame name of an instruction: the mnemonic and operands first (it is
/// what a narrow flame graph box shows), then where it is, so that the same
/// text in two functions or at two offsets stays two frames. The
/// disassembler's `// target = ..` comments are left out: a frame is a name,
/// not a listing.
pub fn instruction_label(function: &str, instruction: &Instruction) -> String {
    let text = instruction
        .text
        .split_once("//")
        .map_or(instruction.text.as_str(), |(code, _)| code)
        .trim();
    format!("{text} @ {function}+{:#x}", instruction.offset)
}
