//! The records a profile holds, in the native format's order of variants.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::batch::EncodedBatch;
use super::stacks::{CompactBatch, StacksRecord};
use crate::stats::Stats;

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
    /// The instructions of `code`, as the embedder's instruction set decoded
    /// them. Not part of this record's bytes: in a file it travels as a
    /// [`Record::Listing`] keyed by [`code_hash`] (written once per distinct
    /// code by the [`Encoder`](super::Encoder), reattached by the reader).
    #[serde(skip)]
    pub listing: Option<Arc<ListingRecord>>,
}

/// FNV-1a (64 bits) of a function's bytecode: the key that ties a
/// [`ListingRecord`] to every [`FunctionRecord`] with the same code.
pub fn code_hash(code: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in code {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How an instruction affects control flow (what cuts basic blocks).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Flow {
    /// Falls through to the next instruction.
    Plain,
    /// A jump: `targets` are byte offsets within the function;
    /// `conditional` if it may also fall through.
    Branch {
        /// Offsets of the possible destinations within the function.
        targets: Vec<u32>,
        /// Whether execution may also fall through.
        conditional: bool,
    },
    /// A call; control comes back to the next instruction.
    Call,
    /// A return, halt or trap: the block ends and does not fall through.
    Return,
    /// Bytes the instruction set could not decode.
    Undecodable,
}

impl Flow {
    /// Whether a basic block ends after this instruction.
    pub fn ends_block(&self) -> bool {
        !matches!(self, Flow::Plain)
    }
}

/// One instruction of a [`ListingRecord`]; its offset is the sum of the
/// lengths before it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListedInstruction {
    /// Encoded length in bytes (at least 1).
    pub len: u32,
    /// Index of its mnemonic in [`ListingRecord::opcodes`].
    pub opcode: u32,
    /// Operand text (may be empty); the full text is `mnemonic operands`.
    pub operands: String,
    /// Control-flow effect.
    pub flow: Flow,
}

/// A function's code as the embedder's instruction set decodes it (format
/// version 2): written once per distinct code, whatever the number of
/// functions (or reloads) that share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListingRecord {
    /// [`code_hash`] of the code described.
    pub code_hash: u64,
    /// Its length in bytes: the instructions' lengths add up to it.
    pub code_len: u32,
    /// Name of the instruction set (`stack-vm`): what reports call the
    /// decoder.
    pub isa: String,
    /// The distinct mnemonics of this code, referenced by index.
    pub opcodes: Vec<String>,
    /// The instructions, in offset order, covering the code exactly.
    pub instructions: Vec<ListedInstruction>,
}

impl ListingRecord {
    /// Whether this listing can describe `code`: same hash and length, every
    /// instruction at least one byte, the lengths adding up to the code's,
    /// every mnemonic index and branch target in range. Err names the fault.
    pub fn check(&self) -> Result<(), String> {
        let mut at: u64 = 0;
        for (k, i) in self.instructions.iter().enumerate() {
            if i.len == 0 {
                return Err(format!("listing instruction {k} has length 0"));
            }
            if i.opcode as usize >= self.opcodes.len() {
                return Err(format!(
                    "listing instruction {k} names mnemonic {} of {}",
                    i.opcode,
                    self.opcodes.len()
                ));
            }
            if let Flow::Branch { targets, .. } = &i.flow
                && let Some(t) = targets.iter().find(|&&t| t >= self.code_len)
            {
                return Err(format!(
                    "listing instruction {k} branches to {t}, past the code's {} bytes",
                    self.code_len
                ));
            }
            at += u64::from(i.len);
        }
        if at != u64::from(self.code_len) {
            return Err(format!(
                "listing covers {at} bytes of a {}-byte code",
                self.code_len
            ));
        }
        Ok(())
    }

    /// The mnemonic of `i` (empty if out of range; [`ListingRecord::check`]
    /// rules that out).
    pub fn mnemonic(&self, i: &ListedInstruction) -> &str {
        self.opcodes
            .get(i.opcode as usize)
            .map_or("", String::as_str)
    }
}

/// When in each period the sample is taken (recorded in the file: the
/// variant order is the format's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SamplingMode {
    /// At the end of each period: `origin + k × period`. Work that repeats
    /// in step with the period is always seen at the same phase, so its
    /// shares can be anything (aliasing).
    Periodic,
    /// At a uniformly random instant within each period (stratified
    /// sampling, the default): still exactly one sample a period, but every
    /// phase is equally likely, so no work can alias with the sampling.
    #[default]
    Randomized,
}

impl SamplingMode {
    /// `"periodic"` or `"randomized"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SamplingMode::Periodic => "periodic",
            SamplingMode::Randomized => "randomized",
        }
    }
}

impl std::fmt::Display for SamplingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SamplingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "periodic" => Ok(SamplingMode::Periodic),
            "randomized" | "randomised" | "random" => Ok(SamplingMode::Randomized),
            _ => Err(format!(
                "unknown sampling mode {s:?}: expected periodic or randomized"
            )),
        }
    }
}

/// How the profile was sampled (format version 2), written right after the
/// header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SamplingRecord {
    /// Periodic or randomised instants.
    pub mode: SamplingMode,
    /// The rate asked for at start, in hertz.
    pub frequency_hz: u32,
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
///
/// Stored as [`SummaryV1`], the format's own frozen layout, not as the
/// runtime's [`Stats`]: a counter added to the runtime changes only the
/// conversion, never the bytes; a new layout would be a new record variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SummaryV1", into = "SummaryV1")]
pub struct Summary {
    /// When the profiler stopped, in ns since the clock's epoch.
    pub stopped_ns: u64,
    /// Final statistics (its `samples_written` and `bytes_written` do not
    /// count this record itself).
    pub stats: Stats,
}

/// Version 1 of the `Summary` record's layout (FORMAT.md): `stopped_ns`,
/// then the counters, in this order. Frozen.
#[derive(Serialize, Deserialize)]
struct SummaryV1 {
    stopped_ns: u64,
    frequency_hz: u32,
    elapsed_ns: u64,
    ticks_scheduled: u64,
    ticks_taken: u64,
    ticks_missed: u64,
    samples_taken: u64,
    samples_written: u64,
    samples_dropped: u64,
    batches_written: u64,
    batches_dropped: u64,
    bytes_written: u64,
    lateness_p50_ns: u64,
    lateness_p99_ns: u64,
    lateness_max_ns: u64,
    interpreters_live: u64,
    interpreters_retired: u64,
    functions_live: u64,
    functions_unloaded: u64,
    scheduling: String,
    sampler_cpu_ns: u64,
    writer_cpu_ns: u64,
    errors: u64,
    first_error: Option<String>,
}

impl From<Summary> for SummaryV1 {
    fn from(s: Summary) -> SummaryV1 {
        SummaryV1 {
            stopped_ns: s.stopped_ns,
            frequency_hz: s.stats.frequency_hz,
            elapsed_ns: s.stats.elapsed_ns,
            ticks_scheduled: s.stats.ticks_scheduled,
            ticks_taken: s.stats.ticks_taken,
            ticks_missed: s.stats.ticks_missed,
            samples_taken: s.stats.samples_taken,
            samples_written: s.stats.samples_written,
            samples_dropped: s.stats.samples_dropped,
            batches_written: s.stats.batches_written,
            batches_dropped: s.stats.batches_dropped,
            bytes_written: s.stats.bytes_written,
            lateness_p50_ns: s.stats.lateness_p50_ns,
            lateness_p99_ns: s.stats.lateness_p99_ns,
            lateness_max_ns: s.stats.lateness_max_ns,
            interpreters_live: s.stats.interpreters_live,
            interpreters_retired: s.stats.interpreters_retired,
            functions_live: s.stats.functions_live,
            functions_unloaded: s.stats.functions_unloaded,
            scheduling: s.stats.scheduling,
            sampler_cpu_ns: s.stats.sampler_cpu_ns,
            writer_cpu_ns: s.stats.writer_cpu_ns,
            errors: s.stats.errors,
            first_error: s.stats.first_error,
        }
    }
}

impl From<SummaryV1> for Summary {
    fn from(v: SummaryV1) -> Summary {
        Summary {
            stopped_ns: v.stopped_ns,
            stats: Stats {
                frequency_hz: v.frequency_hz,
                elapsed_ns: v.elapsed_ns,
                ticks_scheduled: v.ticks_scheduled,
                ticks_taken: v.ticks_taken,
                ticks_missed: v.ticks_missed,
                samples_taken: v.samples_taken,
                samples_written: v.samples_written,
                samples_dropped: v.samples_dropped,
                batches_written: v.batches_written,
                batches_dropped: v.batches_dropped,
                bytes_written: v.bytes_written,
                lateness_p50_ns: v.lateness_p50_ns,
                lateness_p99_ns: v.lateness_p99_ns,
                lateness_max_ns: v.lateness_max_ns,
                interpreters_live: v.interpreters_live,
                interpreters_retired: v.interpreters_retired,
                functions_live: v.functions_live,
                functions_unloaded: v.functions_unloaded,
                scheduling: v.scheduling,
                sampler_cpu_ns: v.sampler_cpu_ns,
                writer_cpu_ns: v.writer_cpu_ns,
                errors: v.errors,
                first_error: v.first_error,
                // Not in this layout: the push record has the push
                // counts; the stack counters are the runtime's only.
                ..Stats::default()
            },
        }
    }
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
    // Version 2: appended, never reordered (bincode writes the index).
    /// The instructions of a code, before the first function that has it.
    Listing(ListingRecord),
    /// How the ticks were placed, right after the header.
    Sampling(SamplingRecord),
    // Version 3, appended.
    /// Call stacks, each introduced before the first batch that uses it.
    Stacks(StacksRecord),
    /// A batch of samples, compact, with their stacks: version 3's
    /// replacement of `Samples`.
    Batch(CompactBatch),
    /// What became of the intervals pushed while recording (continuous
    /// profiling), just before the summary.
    Push(PushRecord),
}

/// What became of the intervals pushed while recording (record 12, format
/// version 3): the profile's own account of what the server did not get.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    /// When the profiler stopped, in ns since the clock's epoch.
    pub stopped_ns: u64,
    /// Intervals the server took.
    pub intervals_pushed: u64,
    /// Intervals dropped: a full queue, a server that refused them or did
    /// not answer in time, a stream cut, or still in flight at the stop.
    pub intervals_dropped: u64,
    /// Chunks of the output the consumer fell too far behind to take; the
    /// first one ended the pushes (intervals after it are not counted).
    pub chunks_dropped: u64,
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
            Record::Listing(_) => "listing",
            Record::Sampling(_) => "sampling",
            Record::Stacks(_) => "stacks",
            Record::Batch(_) => "batch",
            Record::Push(_) => "push",
        }
    }

    /// The first format version with this record.
    pub fn since_version(&self) -> u16 {
        match self {
            Record::Listing(_) | Record::Sampling(_) => 2,
            Record::Stacks(_) | Record::Batch(_) | Record::Push(_) => 3,
            _ => 1,
        }
    }
}
