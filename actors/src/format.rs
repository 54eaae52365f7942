//! Profile files: pcprof's native format, Pulley's format, and one reader for
//! both.
//!
//! - **Native** (`FORMAT.md` has the full specification): the 8-byte magic
//!   `PCPROF\0\n`, a little-endian `u16` version, then records. Each record is
//!   framed as `len: u32 LE | crc32: u32 LE | payload`, the payload being one
//!   [`Record`] encoded with serde + bincode (standard configuration: varints).
//!   The frame makes every record self-delimiting and checkable, so a process
//!   killed mid-write leaves a file whose complete records all read back; the
//!   reader reports the torn tail as an error naming its offset.
//! - Samples travel as [`EncodedBatch`]: grouped by tick, tick times as
//!   differences from the nominal step (one byte on schedule), PCs as
//!   per-interpreter deltas in LEB128, so a sample with its tick time and
//!   interpreter costs about 3 bytes.
//! - **Pulley**: byte-for-byte the format of `pulley_interpreter::profile`'s
//!   `Recorder` (no header; tag 1 = function: `addr u64 | name_len u32 | name |
//!   body_len u32 | body`; tag 2 = samples: `count u32 | count × addr u64`,
//!   all little-endian). It carries neither times, interpreters, unloads nor a
//!   summary; those records are left out.
//! - [`ProfileReader`] streams either format from any `Read` (memory does not
//!   grow with the file), telling them apart by the first byte, and never
//!   panics on bad input: every error names the byte offset of the record at
//!   fault.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stats::Stats;

/// First bytes of a native profile.
pub const MAGIC: [u8; 8] = *b"PCPROF\0\n";
/// Version of the native format this crate writes and reads.
pub const VERSION: u16 = 1;
/// Largest record payload accepted, in bytes: guards against allocating
/// gigabytes for a corrupt length field.
pub const MAX_RECORD_LEN: u32 = 1 << 30;

const PULLEY_FUNCTION: u8 = 1;
const PULLEY_SAMPLES: u8 = 2;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_RECORD_LEN as usize }>()
}

/// Which of the two formats a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// pcprof's own format: header, times, interpreters, unloads, summary.
    Native,
    /// The format of `pulley_interpreter::profile`.
    Pulley,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Native => "native",
            Format::Pulley => "pulley",
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "native" => Ok(Format::Native),
            "pulley" => Ok(Format::Pulley),
            other => Err(format!(
                "unknown format {other:?} (expected `native` or `pulley`)"
            )),
        }
    }
}

/// First record of a native file: how the profile was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileHeader {
    /// Version of pcprof that wrote the file.
    pub pcprof_version: String,
    /// Process id of the profiled process.
    pub pid: u32,
    /// Wall-clock time of the clock's epoch, in ns since the Unix epoch.
    pub started_unix_ns: u64,
    /// Sampling rate asked for at start, in hertz.
    pub frequency_hz: u32,
    /// Samples per batch.
    pub flush_samples: u32,
    /// `monotonic` or `virtual`.
    pub clock: String,
}

/// A bytecode function and where it sits in memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// Address of the first byte of the code in the profiled process.
    pub addr: u64,
    /// Name of the function.
    pub name: String,
    /// The bytecode, copied at registration.
    pub code: Vec<u8>,
    /// When it was registered, in ns since the clock's epoch.
    pub loaded_ns: u64,
}

/// A function's code was unloaded; its address range may be reused later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnloadRecord {
    /// Address of the unloaded function.
    pub addr: u64,
    /// When, in ns since the clock's epoch.
    pub unloaded_ns: u64,
}

/// An interpreter that samples may come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterpreterRecord {
    /// Id, unique within the file.
    pub id: u32,
    /// Optional label, e.g. the thread's name.
    pub label: Option<String>,
    /// When it was registered, in ns since the clock's epoch.
    pub registered_ns: u64,
}

/// An interpreter finished and was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredRecord {
    /// Id of the interpreter.
    pub id: u32,
    /// When the sampler noticed it finished, in ns since the clock's epoch.
    pub retired_ns: u64,
}

/// The sampling rate changed (0 Hz: paused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRecord {
    /// When, in ns since the clock's epoch.
    pub time_ns: u64,
    /// New rate in hertz; 0 means paused.
    pub frequency_hz: u32,
}

/// The closing record: the runtime's final statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// When the profiler stopped, in ns since the clock's epoch.
    pub stopped_ns: u64,
    /// Final statistics (its `samples_written` and `bytes_written` do not
    /// count this record itself).
    pub stats: Stats,
}

/// One PC read at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Sample {
    /// The tick's deadline, in ns since the clock's epoch (0 in Pulley files).
    pub time_ns: u64,
    /// The interpreter's id (0 in Pulley files).
    pub interp: u32,
    /// The PC read.
    pub pc: u64,
}

/// A batch of samples as stored: struct of arrays of varints.
///
/// Samples of one tick share its time. Ticks are usually one period apart,
/// so a tick's distance from the previous one is stored as its difference
/// from `tick_step_ns` (zigzag: one byte when on schedule). PCs are stored
/// as the difference from the same interpreter's previous PC in the batch,
/// zigzag-mapped and LEB128-encoded in one byte stream (two bytes for a move
/// under 8 KiB, where bincode's varint would take three).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedBatch {
    /// Time of the first tick.
    pub first_time_ns: u64,
    /// The nominal distance between ticks (the first one seen).
    pub tick_step_ns: u64,
    /// For each later tick: its distance from the tick before, minus
    /// `tick_step_ns` (wrapping).
    pub time_deltas: Vec<i64>,
    /// Samples per tick.
    pub counts: Vec<u32>,
    /// Interpreter id of each sample.
    pub interps: Vec<u32>,
    /// For each sample, LEB128 of the zigzag of its PC minus the previous PC
    /// of the same interpreter in this batch (minus 0 for its first).
    pub pc_deltas: Vec<u8>,
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

#[inline]
fn push_leb128(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one LEB128 value at `*pos`; `None` if cut or longer than 10 bytes.
#[inline]
fn read_leb128(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

impl EncodedBatch {
    /// Encodes samples, which must be in time order (as the sampler makes
    /// them).
    pub fn encode(samples: &[Sample]) -> EncodedBatch {
        let mut out = EncodedBatch {
            first_time_ns: samples.first().map_or(0, |s| s.time_ns),
            ..EncodedBatch::default()
        };
        out.interps.reserve(samples.len());
        out.pc_deltas.reserve(samples.len() * 2);
        let mut last_pc: Vec<u64> = Vec::new();
        let mut prev_time = out.first_time_ns;
        for (i, s) in samples.iter().enumerate() {
            if i == 0 || s.time_ns != prev_time {
                if i != 0 {
                    let delta = s.time_ns.wrapping_sub(prev_time);
                    if out.time_deltas.is_empty() {
                        out.tick_step_ns = delta;
                    }
                    out.time_deltas
                        .push(delta.wrapping_sub(out.tick_step_ns) as i64);
                }
                out.counts.push(0);
                prev_time = s.time_ns;
            }
            if let Some(c) = out.counts.last_mut() {
                *c += 1;
            }
            let slot = s.interp as usize;
            if slot >= last_pc.len() {
                last_pc.resize(slot + 1, 0);
            }
            out.interps.push(s.interp);
            push_leb128(
                &mut out.pc_deltas,
                zigzag(s.pc.wrapping_sub(last_pc[slot]) as i64),
            );
            last_pc[slot] = s.pc;
        }
        out
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.interps.len()
    }

    /// Whether the batch has no sample.
    pub fn is_empty(&self) -> bool {
        self.interps.is_empty()
    }

    /// Decodes into `out` (appending). Fails, appending nothing, if the
    /// arrays disagree.
    pub fn decode_into(&self, out: &mut Vec<Sample>) -> Result<(), String> {
        let start = out.len();
        let r = decode_batch(
            self.first_time_ns,
            self.tick_step_ns,
            self.time_deltas.iter().map(|&d| Some(d)),
            self.time_deltas.len(),
            self.counts.iter().map(|&c| Some(c)),
            self.counts.len(),
            self.interps.iter().map(|&i| Some(i)),
            self.interps.len(),
            &self.pc_deltas,
            out,
        );
        if r.is_err() {
            out.truncate(start);
        }
        r
    }
}

/// Interpreter ids below this keep their last PC in a vector while a batch
/// is decoded; the sampler's ids are small.
const DENSE_LAST_PC: usize = 1 << 12;

/// The one decoder of a batch's arrays, fed either from an [`EncodedBatch`]
/// or straight from a record's bytes (the reader's fast path). Checks every
/// length and value; appends to `out`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn decode_batch(
    first_time_ns: u64,
    tick_step_ns: u64,
    mut time_deltas: impl Iterator<Item = Option<i64>>,
    n_times: usize,
    mut counts: impl Iterator<Item = Option<u32>>,
    n_counts: usize,
    mut interps: impl Iterator<Item = Option<u32>>,
    n_samples: usize,
    pc_bytes: &[u8],
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    if n_times + 1 != n_counts.max(1) {
        return Err(format!("{n_counts} ticks but {n_times} time deltas"));
    }
    out.reserve(n_samples);
    let bad = |what: &str| format!("malformed {what}");
    let mut last_pc: Vec<u64> = Vec::new();
    // Ids from `DENSE_LAST_PC` up (valid to 2^24, rare) go to a map: a
    // vector would be zeroed up to 8 × id bytes for every batch.
    let mut last_pc_sparse: HashMap<u32, u64> = HashMap::new();
    let mut time = first_time_ns;
    let mut left = n_samples;
    let mut pos = 0;
    for t in 0..n_counts {
        if t > 0 {
            let d = time_deltas
                .next()
                .flatten()
                .ok_or_else(|| bad("time delta"))?;
            time = time.wrapping_add(tick_step_ns).wrapping_add(d as u64);
        }
        let count = counts.next().flatten().ok_or_else(|| bad("tick count"))? as usize;
        if count > left {
            return Err(format!("tick counts exceed the {n_samples} samples"));
        }
        left -= count;
        for _ in 0..count {
            let interp = interps
                .next()
                .flatten()
                .ok_or_else(|| bad("interpreter id"))?;
            if interp > 1 << 24 {
                return Err(format!("interpreter id {interp} above 2^24"));
            }
            let slot = interp as usize;
            let last = if slot < DENSE_LAST_PC {
                if slot >= last_pc.len() {
                    last_pc.resize(slot + 1, 0);
                }
                &mut last_pc[slot]
            } else {
                last_pc_sparse.entry(interp).or_insert(0)
            };
            let delta = read_leb128(pc_bytes, &mut pos).ok_or_else(|| bad("PC delta"))?;
            let pc = last.wrapping_add(unzigzag(delta) as u64);
            *last = pc;
            out.push(Sample {
                time_ns: time,
                interp,
                pc,
            });
        }
    }
    if left != 0 {
        return Err(format!(
            "tick counts add up to {} but {n_samples} samples",
            n_samples - left
        ));
    }
    if pos != pc_bytes.len() {
        return Err(format!(
            "{} bytes of PC deltas left over",
            pc_bytes.len() - pos
        ));
    }
    Ok(())
}

/// A record of a native file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// Always first.
    Header(FileHeader),
    /// A function was loaded.
    Function(FunctionRecord),
    /// A function was unloaded.
    Unload(UnloadRecord),
    /// An interpreter was registered.
    Interpreter(InterpreterRecord),
    /// An interpreter finished.
    Retired(RetiredRecord),
    /// A batch of samples.
    Samples(EncodedBatch),
    /// The rate changed or sampling paused.
    Rate(RateRecord),
    /// The closing statistics.
    Summary(Summary),
}

impl Record {
    /// The record's kind as a word, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Header(_) => "header",
            Record::Function(_) => "function",
            Record::Unload(_) => "unload",
            Record::Interpreter(_) => "interpreter",
            Record::Retired(_) => "retired",
            Record::Samples(_) => "samples",
            Record::Rate(_) => "rate",
            Record::Summary(_) => "summary",
        }
    }
}

/// Why a record could not be written.
#[derive(Debug)]
pub enum EncodeError {
    /// The sink failed.
    Io(io::Error),
    /// The record cannot be represented (too large, or bincode refused).
    Encode(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Io(e) => write!(f, "{e}"),
            EncodeError::Encode(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<io::Error> for EncodeError {
    fn from(e: io::Error) -> Self {
        EncodeError::Io(e)
    }
}

/// Writes records in either format to a byte sink.
#[derive(Debug)]
pub struct Encoder<W: Write> {
    sink: W,
    format: Format,
    bytes: u64,
    scratch: Vec<u8>,
}

impl<W: Write> Encoder<W> {
    /// A native encoder; writes the magic, the version and `header` at once.
    pub fn native(sink: W, header: &FileHeader) -> Result<Encoder<W>, EncodeError> {
        let mut e = Encoder {
            sink,
            format: Format::Native,
            bytes: 0,
            scratch: Vec::with_capacity(4096),
        };
        e.sink.write_all(&MAGIC)?;
        e.sink.write_all(&VERSION.to_le_bytes())?;
        e.bytes = (MAGIC.len() + 2) as u64;
        e.write(&Record::Header(header.clone()))?;
        Ok(e)
    }

    /// A Pulley-format encoder (no header).
    pub fn pulley(sink: W) -> Encoder<W> {
        Encoder {
            sink,
            format: Format::Pulley,
            bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// The format written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// Consumes the encoder, returning the sink.
    pub fn into_inner(self) -> W {
        self.sink
    }

    /// Writes one record; returns the bytes it took (0 for records the
    /// Pulley format cannot carry).
    pub fn write(&mut self, record: &Record) -> Result<u64, EncodeError> {
        match self.format {
            Format::Native => self.write_native(record),
            Format::Pulley => self.write_pulley(record),
        }
    }

    /// Writes a batch of samples (encoding it first for the native format).
    pub fn write_samples(&mut self, samples: &[Sample]) -> Result<u64, EncodeError> {
        if samples.is_empty() {
            return Ok(0);
        }
        match self.format {
            Format::Native => self.write_native(&Record::Samples(EncodedBatch::encode(samples))),
            Format::Pulley => {
                let count = u32::try_from(samples.len()).map_err(|_| {
                    EncodeError::Encode(format!("{} samples in one batch", samples.len()))
                })?;
                self.scratch.clear();
                self.scratch.reserve(5 + samples.len() * 8);
                self.scratch.push(PULLEY_SAMPLES);
                self.scratch.extend_from_slice(&count.to_le_bytes());
                for s in samples {
                    self.scratch.extend_from_slice(&s.pc.to_le_bytes());
                }
                self.sink.write_all(&self.scratch)?;
                let n = self.scratch.len() as u64;
                self.bytes += n;
                Ok(n)
            }
        }
    }

    fn write_native(&mut self, record: &Record) -> Result<u64, EncodeError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&[0; 8]);
        bincode::serde::encode_into_std_write(record, &mut self.scratch, bincode_config())
            .map_err(|e| EncodeError::Encode(format!("{} record: {e}", record.kind())))?;
        let len = self.scratch.len() - 8;
        let len32 = u32::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RECORD_LEN)
            .ok_or_else(|| {
                EncodeError::Encode(format!("{} record of {len} bytes", record.kind()))
            })?;
        let crc = crc32fast::hash(&self.scratch[8..]);
        self.scratch[..4].copy_from_slice(&len32.to_le_bytes());
        self.scratch[4..8].copy_from_slice(&crc.to_le_bytes());
        self.sink.write_all(&self.scratch)?;
        let n = self.scratch.len() as u64;
        self.bytes += n;
        Ok(n)
    }

    fn write_pulley(&mut self, record: &Record) -> Result<u64, EncodeError> {
        match record {
            Record::Function(f) => {
                let name_len = u32::try_from(f.name.len()).map_err(|_| {
                    EncodeError::Encode(format!("function name of {} bytes", f.name.len()))
                })?;
                let body_len = u32::try_from(f.code.len()).map_err(|_| {
                    EncodeError::Encode(format!("function body of {} bytes", f.code.len()))
                })?;
                self.scratch.clear();
                self.scratch.push(PULLEY_FUNCTION);
                self.scratch.extend_from_slice(&f.addr.to_le_bytes());
                self.scratch.extend_from_slice(&name_len.to_le_bytes());
                self.scratch.extend_from_slice(f.name.as_bytes());
                self.scratch.extend_from_slice(&body_len.to_le_bytes());
                self.scratch.extend_from_slice(&f.code);
                self.sink.write_all(&self.scratch)?;
                let n = self.scratch.len() as u64;
                self.bytes += n;
                Ok(n)
            }
            Record::Samples(batch) => {
                let mut samples = Vec::with_capacity(batch.len());
                batch
                    .decode_into(&mut samples)
                    .map_err(EncodeError::Encode)?;
                self.write_samples(&samples)
            }
            // Pulley's format has no place for these.
            _ => Ok(0),
        }
    }
}

/// What is wrong with a profile file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The file has no bytes.
    Empty,
    /// The first byte is neither the native magic nor a Pulley tag.
    UnknownFormat {
        /// The first byte.
        first_byte: u8,
    },
    /// The native version is not one this reader understands.
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The file ends inside a record.
    Truncated {
        /// Bytes the record needs from its start.
        needed: u64,
        /// Bytes the file has from the record's start.
        available: u64,
    },
    /// A record's checksum does not match its bytes.
    Checksum {
        /// Checksum stored in the frame.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A length field is beyond what any valid record has.
    TooLarge {
        /// The length found.
        len: u64,
    },
    /// A Pulley section tag other than 1 or 2.
    UnknownTag {
        /// The tag found.
        tag: u8,
    },
    /// The record's content does not decode.
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    Io(io::Error),
}

/// A profile file could not be read: names the file (when known) and the
/// byte offset of the record at fault.
#[derive(Debug)]
pub struct ReadError {
    path: Option<PathBuf>,
    offset: u64,
    kind: ReadErrorKind,
}

impl ReadError {
    fn new(offset: u64, kind: ReadErrorKind) -> ReadError {
        ReadError {
            path: None,
            offset,
            kind,
        }
    }

    /// Byte offset of the record at fault (0 for errors about the whole file).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What is wrong.
    pub fn kind(&self) -> &ReadErrorKind {
        &self.kind
    }

    /// The file, if the reader was opened from a path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the file merely ends early (a run killed mid-write): every
    /// record before [`ReadError::offset`] is complete.
    pub fn is_truncation(&self) -> bool {
        matches!(self.kind, ReadErrorKind::Truncated { .. })
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        let at = self.offset;
        match &self.kind {
            ReadErrorKind::Empty => write!(f, "empty file: not a profile"),
            ReadErrorKind::UnknownFormat { first_byte } => write!(
                f,
                "not a profile: first byte is {first_byte:#04x}, \
                 expected the pcprof magic or a Pulley section tag (1 or 2)"
            ),
            ReadErrorKind::UnsupportedVersion { version } => write!(
                f,
                "native format version {version} at byte 8 is not supported (this pcprof reads version {VERSION})"
            ),
            ReadErrorKind::Truncated { needed, available } => write!(
                f,
                "truncated record at byte {at}: it needs {needed} bytes but the file has {available} more"
            ),
            ReadErrorKind::Checksum { stored, computed } => write!(
                f,
                "corrupt record at byte {at}: checksum {computed:#010x} does not match stored {stored:#010x}"
            ),
            ReadErrorKind::TooLarge { len } => {
                write!(f, "corrupt record at byte {at}: length {len} is too large")
            }
            ReadErrorKind::UnknownTag { tag } => {
                write!(f, "corrupt section at byte {at}: unknown tag {tag:#04x}")
            }
            ReadErrorKind::Invalid { reason } => write!(f, "corrupt record at byte {at}: {reason}"),
            ReadErrorKind::Io(e) => write!(f, "read error at byte {at}: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ReadErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// One item read from a profile.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A function was loaded.
    Function(FunctionRecord),
    /// A function was unloaded.
    Unload(UnloadRecord),
    /// An interpreter was registered.
    Interpreter(InterpreterRecord),
    /// An interpreter finished.
    Retired(RetiredRecord),
    /// A batch of samples, in time order.
    Samples(Vec<Sample>),
    /// The rate changed or sampling paused.
    Rate(RateRecord),
    /// The closing statistics.
    Summary(Summary),
}

/// Streams the events of a profile file of either format.
#[derive(Debug)]
pub struct ProfileReader<R: Read> {
    source: R,
    format: Format,
    header: Option<FileHeader>,
    offset: u64,
    /// A byte read to detect the format that belongs to the first record.
    pending: Option<u8>,
    buf: Vec<u8>,
    path: Option<PathBuf>,
    done: bool,
}

impl ProfileReader<BufReader<File>> {
    /// Opens a profile file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let with_path = |mut e: ReadError| {
            e.path = Some(path.to_path_buf());
            e
        };
        let file =
            File::open(path).map_err(|e| with_path(ReadError::new(0, ReadErrorKind::Io(e))))?;
        let mut r =
            ProfileReader::new(BufReader::with_capacity(1 << 20, file)).map_err(with_path)?;
        r.path = Some(path.to_path_buf());
        Ok(r)
    }
}

/// Reads up to `n` bytes into `buf` (replacing its content) without trusting
/// `n` for the allocation; returns how many bytes there were.
fn read_up_to<R: Read>(r: &mut R, n: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
    buf.clear();
    r.take(n).read_to_end(buf).map(|k| k as u64)
}

/// Fills `buf` as far as the source allows; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads a fixed-size field of the section that started at `start`.
fn take_fixed<R: Read, const N: usize>(
    r: &mut R,
    start: u64,
    pos: &mut u64,
) -> Result<[u8; N], ReadError> {
    let mut b = [0u8; N];
    let got = read_full(r, &mut b).map_err(|e| ReadError::new(start, ReadErrorKind::Io(e)))?;
    if got < N {
        return Err(ReadError::new(
            start,
            ReadErrorKind::Truncated {
                needed: *pos + N as u64,
                available: *pos + got as u64,
            },
        ));
    }
    *pos += N as u64;
    Ok(b)
}

/// Reads a variable-size field of `n` bytes into `buf`.
fn take_vec<R: Read>(
    r: &mut R,
    start: u64,
    pos: &mut u64,
    n: u64,
    buf: &mut Vec<u8>,
) -> Result<(), ReadError> {
    let got = read_up_to(r, n, buf).map_err(|e| ReadError::new(start, ReadErrorKind::Io(e)))?;
    if got < n {
        return Err(ReadError::new(
            start,
            ReadErrorKind::Truncated {
                needed: *pos + n,
                available: *pos + got,
            },
        ));
    }
    *pos += n;
    Ok(())
}

impl<R: Read> ProfileReader<R> {
    /// Starts reading: detects the format and, for native files, reads the
    /// header.
    pub fn new(mut source: R) -> Result<Self, ReadError> {
        let io_err = |e| ReadError::new(0, ReadErrorKind::Io(e));
        let mut first = [0u8; 1];
        if read_full(&mut source, &mut first).map_err(io_err)? == 0 {
            return Err(ReadError::new(0, ReadErrorKind::Empty));
        }
        let mut reader = ProfileReader {
            source,
            format: Format::Pulley,
            header: None,
            offset: 0,
            pending: None,
            buf: Vec::new(),
            path: None,
            done: false,
        };
        match first[0] {
            b if b == MAGIC[0] => {
                let mut rest = [0u8; MAGIC.len() + 1];
                let got = read_full(&mut reader.source, &mut rest).map_err(io_err)?;
                if rest[..got.min(MAGIC.len() - 1)] != MAGIC[1..1 + got.min(MAGIC.len() - 1)] {
                    return Err(ReadError::new(
                        0,
                        ReadErrorKind::UnknownFormat { first_byte: b },
                    ));
                }
                if got < rest.len() {
                    return Err(ReadError::new(
                        0,
                        ReadErrorKind::Truncated {
                            needed: MAGIC.len() as u64 + 2,
                            available: 1 + got as u64,
                        },
                    ));
                }
                let version = u16::from_le_bytes([rest[MAGIC.len() - 1], rest[MAGIC.len()]]);
                if version != VERSION {
                    return Err(ReadError::new(
                        MAGIC.len() as u64,
                        ReadErrorKind::UnsupportedVersion { version },
                    ));
                }
                reader.format = Format::Native;
                reader.offset = MAGIC.len() as u64 + 2;
                let at = reader.offset;
                match reader.next_native()? {
                    Some(Record::Header(h)) => reader.header = Some(h),
                    Some(other) => {
                        return Err(ReadError::new(
                            at,
                            ReadErrorKind::Invalid {
                                reason: format!(
                                    "first record is a {} record, not the header",
                                    other.kind()
                                ),
                            },
                        ));
                    }
                    None => {
                        return Err(ReadError::new(
                            at,
                            ReadErrorKind::Truncated {
                                needed: 8,
                                available: 0,
                            },
                        ));
                    }
                }
            }
            tag @ (PULLEY_FUNCTION | PULLEY_SAMPLES) => reader.pending = Some(tag),
            b => {
                return Err(ReadError::new(
                    0,
                    ReadErrorKind::UnknownFormat { first_byte: b },
                ));
            }
        }
        Ok(reader)
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The header of a native file (`None` for Pulley files).
    pub fn header(&self) -> Option<&FileHeader> {
        self.header.as_ref()
    }

    /// Offset of the next record: after an error, the offset up to which
    /// every record was complete.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn next_native(&mut self) -> Result<Option<Record>, ReadError> {
        let at = self.offset;
        let Some(len) = self.read_native_frame()? else {
            return Ok(None);
        };
        let record = self.decode_record(at)?;
        self.offset += 8 + len;
        Ok(Some(record))
    }

    /// Decodes the payload in `self.buf` (the frame at `at`) with bincode.
    fn decode_record(&self, at: u64) -> Result<Record, ReadError> {
        let err = |kind| ReadError::new(at, kind);
        let (record, used) = decode_payload(&self.buf).map_err(|e| {
            err(ReadErrorKind::Invalid {
                reason: e.to_string(),
            })
        })?;
        if used != self.buf.len() {
            return Err(err(ReadErrorKind::Invalid {
                reason: format!(
                    "{} trailing bytes after a {} record",
                    self.buf.len() - used,
                    record.kind()
                ),
            }));
        }
        Ok(record)
    }

    /// A Pulley section other than samples, whose tag (read at `start`) is
    /// `tag`: a function, or an error.
    fn pulley_section(&mut self, start: u64, tag: u8) -> Result<Option<Event>, ReadError> {
        // `pos` counts the bytes of this section consumed so far.
        let mut pos: u64 = 1;
        let src = &mut self.source;
        let event = match tag {
            PULLEY_FUNCTION => {
                let addr = u64::from_le_bytes(take_fixed(src, start, &mut pos)?);
                let name_len = u32::from_le_bytes(take_fixed(src, start, &mut pos)?);
                let mut name = Vec::new();
                take_vec(src, start, &mut pos, u64::from(name_len), &mut name)?;
                let name = String::from_utf8(name).map_err(|e| {
                    let reason = format!("function name is not UTF-8: {e}");
                    ReadError::new(start, ReadErrorKind::Invalid { reason })
                })?;
                let body_len = u32::from_le_bytes(take_fixed(src, start, &mut pos)?);
                let mut code = Vec::new();
                take_vec(src, start, &mut pos, u64::from(body_len), &mut code)?;
                Event::Function(FunctionRecord {
                    addr,
                    name,
                    code,
                    loaded_ns: 0,
                })
            }
            tag => return Err(ReadError::new(start, ReadErrorKind::UnknownTag { tag })),
        };
        self.offset += pos;
        Ok(Some(event))
    }

    /// The next event into `samples` (see [`ProfileReader::next_into`]).
    fn next_event_into(&mut self, samples: &mut Vec<Sample>) -> Result<Option<Event>, ReadError> {
        match self.format {
            Format::Pulley => self.next_pulley_into(samples),
            Format::Native => self.next_native_into(samples),
        }
    }

    /// Ends the iteration after the end of the file or an error.
    fn settle(
        &mut self,
        result: Result<Option<Event>, ReadError>,
    ) -> Option<Result<Event, ReadError>> {
        match result {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(mut e) => {
                self.done = true;
                e.path = self.path.clone();
                Some(Err(e))
            }
        }
    }
}

/// Allocation-free reading of sample batches, for analyses that aggregate
/// tens of millions of samples: the batch is decoded into a buffer the
/// caller reuses, instead of a fresh `Vec` per [`Event::Samples`].
impl<R: Read> ProfileReader<R> {
    /// Like [`Iterator::next`], but a batch of samples is decoded into
    /// `samples` (cleared first, its capacity reused from call to call) and
    /// announced as an empty [`Event::Samples`]; every other event is
    /// returned as `next` returns it. Errors and the end of the file are as
    /// for `next`, after which `samples` is empty.
    pub fn next_into(&mut self, samples: &mut Vec<Sample>) -> Option<Result<Event, ReadError>> {
        samples.clear();
        if self.done {
            return None;
        }
        let result = self.next_event_into(samples);
        if result.is_err() {
            samples.clear();
        }
        self.settle(result)
    }

    fn next_pulley_into(&mut self, samples: &mut Vec<Sample>) -> Result<Option<Event>, ReadError> {
        let start = self.offset;
        let tag = match self.pending.take() {
            Some(t) => t,
            None => {
                let mut t = [0u8; 1];
                match read_full(&mut self.source, &mut t) {
                    Ok(0) => return Ok(None),
                    Ok(_) => t[0],
                    Err(e) => return Err(ReadError::new(start, ReadErrorKind::Io(e))),
                }
            }
        };
        if tag != PULLEY_SAMPLES {
            return self.pulley_section(start, tag);
        }
        let mut pos: u64 = 1;
        let count = u32::from_le_bytes(take_fixed(&mut self.source, start, &mut pos)?);
        take_vec(
            &mut self.source,
            start,
            &mut pos,
            u64::from(count) * 8,
            &mut self.buf,
        )?;
        samples.extend(self.buf.chunks_exact(8).map(|c| Sample {
            time_ns: 0,
            interp: 0,
            pc: u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        }));
        self.offset += pos;
        Ok(Some(Event::Samples(Vec::new())))
    }

    fn next_native_into(&mut self, samples: &mut Vec<Sample>) -> Result<Option<Event>, ReadError> {
        let at = self.offset;
        let Some(len) = self.read_native_frame()? else {
            return Ok(None);
        };
        // Sample batches (variant 5 of `Record`) are decoded straight from
        // the payload; anything the fast path does not accept goes through
        // bincode, which names the fault.
        if self.buf.first() == Some(&SAMPLES_VARIANT) {
            if decode_batch_payload(&self.buf[1..], samples).is_some() {
                self.offset += 8 + len;
                return Ok(Some(Event::Samples(Vec::new())));
            }
            samples.clear();
        }
        let record = self.decode_record(at)?;
        self.offset += 8 + len;
        let invalid = |reason| ReadError::new(at, ReadErrorKind::Invalid { reason });
        Ok(Some(match record {
            Record::Header(_) => return Err(invalid("a second header record".to_string())),
            Record::Function(f) => Event::Function(f),
            Record::Unload(u) => Event::Unload(u),
            Record::Interpreter(i) => Event::Interpreter(i),
            Record::Retired(r) => Event::Retired(r),
            Record::Rate(r) => Event::Rate(r),
            Record::Summary(s) => Event::Summary(s),
            Record::Samples(batch) => {
                batch.decode_into(samples).map_err(invalid)?;
                Event::Samples(Vec::new())
            }
        }))
    }

    /// Reads the next native frame's payload into `self.buf`, checking its
    /// length and checksum; returns the payload length, `None` at the end.
    /// Does not advance `self.offset`.
    fn read_native_frame(&mut self) -> Result<Option<u64>, ReadError> {
        let start = self.offset;
        let err = |kind| ReadError::new(start, kind);
        let mut frame = [0u8; 8];
        let got = read_full(&mut self.source, &mut frame).map_err(|e| err(ReadErrorKind::Io(e)))?;
        if got == 0 {
            return Ok(None);
        }
        if got < frame.len() {
            return Err(err(ReadErrorKind::Truncated {
                needed: 8,
                available: got as u64,
            }));
        }
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let stored = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > MAX_RECORD_LEN {
            return Err(err(ReadErrorKind::TooLarge {
                len: u64::from(len),
            }));
        }
        let got = read_up_to(&mut self.source, u64::from(len), &mut self.buf)
            .map_err(|e| err(ReadErrorKind::Io(e)))?;
        if got < u64::from(len) {
            return Err(err(ReadErrorKind::Truncated {
                needed: 8 + u64::from(len),
                available: 8 + got,
            }));
        }
        let computed = crc32fast::hash(&self.buf);
        if computed != stored {
            return Err(err(ReadErrorKind::Checksum { stored, computed }));
        }
        Ok(Some(u64::from(len)))
    }
}

/// Decodes a record's payload with bincode, bounding what it may allocate
/// before reading: bincode sizes a string's buffer from its length field and
/// only its limit checks that length, so with the file-wide limit a corrupt
/// length of a few bytes cost up to 1 GiB. Only strings count against the
/// limit and their bytes are in the payload, so a valid record stays within
/// its own length; the limit is the smallest of a few tiers at or above it
/// (one decoder per tier), so a corrupt one allocates at most 16 times the
/// payload.
fn decode_payload(payload: &[u8]) -> Result<(Record, usize), bincode::error::DecodeError> {
    fn tier<const LIMIT: usize>(
        payload: &[u8],
    ) -> Result<(Record, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(
            payload,
            bincode::config::standard().with_limit::<LIMIT>(),
        )
    }
    match payload.len() {
        0..=0x1000 => tier::<0x1000>(payload),
        0x1001..=0x1_0000 => tier::<0x1_0000>(payload),
        0x1_0001..=0x10_0000 => tier::<0x10_0000>(payload),
        0x10_0001..=0x100_0000 => tier::<0x100_0000>(payload),
        0x100_0001..=0x1000_0000 => tier::<0x1000_0000>(payload),
        _ => tier::<{ MAX_RECORD_LEN as usize }>(payload),
    }
}

/// Bincode's variant index of [`Record::Samples`] (a one-byte varint).
const SAMPLES_VARIANT: u8 = 5;

/// A cursor over bincode's standard varints.
struct Varints<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Varints<'_> {
    #[inline]
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes.get(self.pos..self.pos + N)?;
        self.pos += N;
        b.try_into().ok()
    }

    /// An unsigned varint: < 251 in one byte, else a marker (251: u16,
    /// 252: u32, 253: u64) and the value little-endian.
    #[inline]
    fn u64(&mut self) -> Option<u64> {
        let tag = *self.bytes.get(self.pos)?;
        self.pos += 1;
        match tag {
            0..=250 => Some(u64::from(tag)),
            251 => self.take::<2>().map(|b| u64::from(u16::from_le_bytes(b))),
            252 => self.take::<4>().map(|b| u64::from(u32::from_le_bytes(b))),
            253 => self.take::<8>().map(u64::from_le_bytes),
            _ => None,
        }
    }

    /// A `u32` varint: as bincode, refuses the u64 marker even for a value
    /// that fits.
    #[inline]
    fn u32(&mut self) -> Option<u32> {
        if self.bytes.get(self.pos) == Some(&253) {
            return None;
        }
        u32::try_from(self.u64()?).ok()
    }

    /// A zigzag-encoded signed varint.
    #[inline]
    fn i64(&mut self) -> Option<i64> {
        let n = self.u64()?;
        Some((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    /// Skips one varint without decoding it.
    #[inline]
    fn skip(&mut self) -> Option<()> {
        let tag = *self.bytes.get(self.pos)?;
        self.pos += match tag {
            0..=250 => 1,
            251 => 3,
            252 => 5,
            253 => 9,
            _ => return None,
        };
        (self.pos <= self.bytes.len()).then_some(())
    }

    /// A sequence length, then skips its `n` varints; returns `n` and where
    /// the elements start. Their values are checked when decoded.
    fn skip_seq(&mut self) -> Option<(usize, usize)> {
        let n = usize::try_from(self.u64()?).ok()?;
        // Every element takes at least one byte.
        if n > self.bytes.len().saturating_sub(self.pos) {
            return None;
        }
        let at = self.pos;
        for _ in 0..n {
            self.skip()?;
        }
        Some((n, at))
    }
}

/// Decodes the payload of a `Record::Samples` after its variant byte (an
/// [`EncodedBatch`] as bincode lays it out) straight into `out`, without
/// the batch's intermediate vectors. `None` if it is not exactly a valid
/// batch: the caller falls back to bincode for the error message.
fn decode_batch_payload(payload: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let mut c = Varints {
        bytes: payload,
        pos: 0,
    };
    let first_time = c.u64()?;
    let step = c.u64()?;
    let (n_times, times_at) = c.skip_seq()?;
    let (n_counts, counts_at) = c.skip_seq()?;
    let (n_interps, interps_at) = c.skip_seq()?;
    // `Vec<u8>`: a varint length, then raw bytes.
    let n_pc_bytes = usize::try_from(c.u64()?).ok()?;
    let pcs = payload.get(c.pos..c.pos.checked_add(n_pc_bytes)?)?;
    if c.pos + n_pc_bytes != payload.len() {
        return None;
    }
    let cursor = |pos| Varints {
        bytes: payload,
        pos,
    };
    let (mut times, mut counts, mut interps) =
        (cursor(times_at), cursor(counts_at), cursor(interps_at));
    let start = out.len();
    let r = decode_batch(
        first_time,
        step,
        std::iter::from_fn(|| Some(times.i64())),
        n_times,
        std::iter::from_fn(|| Some(counts.u32())),
        n_counts,
        std::iter::from_fn(|| Some(interps.u32())),
        n_interps,
        pcs,
        out,
    );
    if r.is_err() {
        out.truncate(start);
        return None;
    }
    Some(())
}

impl<R: Read> Iterator for ProfileReader<R> {
    type Item = Result<Event, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut samples = Vec::new();
        let result = self.next_event_into(&mut samples).map(|e| {
            e.map(|e| match e {
                Event::Samples(_) => Event::Samples(samples),
                other => other,
            })
        });
        self.settle(result)
    }
}

impl<R: Read> std::iter::FusedIterator for ProfileReader<R> {}
