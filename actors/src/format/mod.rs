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
//! - Samples travel as [`CompactBatch`] (version 3; [`EncodedBatch`] in
//!   versions 1 and 2): grouped by tick, one LEB128 stream of tick times
//!   against the batch's mean step, interpreter ids against the previous
//!   one, PCs and stack ids against the same interpreter's previous ones,
//!   so a sample with its tick time and interpreter costs about 3 bytes and
//!   its stack one more on a steady workload.
//! - Call stacks are interned by the writer ([`StackInterner`]): a
//!   [`StacksRecord`] introduces each (id, parent, call-site PC) before the
//!   first sample that uses it.
//! - **Pulley**: byte-for-byte the format of `pulley_interpreter::profile`'s
//!   `Recorder` (no header; tag 1 = function: `addr u64 | name_len u32 | name |
//!   body_len u32 | body`; tag 2 = samples: `count u32 | count × addr u64`,
//!   all little-endian). It carries neither times, interpreters, unloads nor a
//!   summary; those records are left out.
//! - [`ProfileReader`] streams either format from any `Read` (memory does not
//!   grow with the file), telling them apart by the first byte, and never
//!   panics on bad input: every error names the byte offset of the record at
//!   fault.
//!
//! Layout: [`records`] (what a file holds), [`batch`] (the sample batch
//! codec), [`encoder`] and [`reader`] (the shared halves), and each format's
//! own writing and reading side by side: [`native`], [`pulley`].

mod batch;
mod encoder;
mod native;
mod pulley;
mod reader;
mod records;
mod stacks;

pub use batch::{EncodedBatch, Sample, SampleBuffer};
pub use encoder::{EncodeError, Encoder};
pub use reader::{Event, ProfileReader, RawPc, ReadError, ReadErrorKind, SkippedCode};
pub use records::{
    FileHeader, Flow, FunctionRecord, InterpreterRecord, ListedInstruction, ListingRecord,
    PushRecord, RateRecord, Record, RetiredRecord, SamplingMode, SamplingRecord, Summary,
    UnloadRecord, code_hash,
};
pub use stacks::{
    CompactBatch, INTERNED_MAX, StackInterner, StackNode, StacksRecord, TRUNCATED_FRAME,
};

use std::fmt;

use serde::{Deserialize, Serialize};

/// Pulley format: tag of a function section.
pub(crate) const PULLEY_FUNCTION: u8 = 1;
/// Pulley format: tag of a samples section.
pub(crate) const PULLEY_SAMPLES: u8 = 2;

/// First bytes of a native profile.
pub const MAGIC: [u8; 8] = *b"PCPROF\0\n";
/// Version of the native format this crate writes (FORMAT.md, "Version
/// history"); it reads every version from [`OLDEST_VERSION`] to this one.
pub const VERSION: u16 = 3;
/// The oldest native version this crate reads.
pub const OLDEST_VERSION: u16 = 1;
/// Largest record payload accepted, in bytes: guards against allocating
/// gigabytes for a corrupt length field.
pub const MAX_RECORD_LEN: u32 = 1 << 30;

pub(crate) fn bincode_config() -> impl bincode::config::Config {
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
