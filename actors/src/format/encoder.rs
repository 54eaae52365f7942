//! The writing half shared by both formats: [`Encoder`] counts bytes and
//! dispatches each record to the format's own writer ([`super::native`],
//! [`super::pulley`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Write};

use super::batch::EncodedBatch;
use super::batch::{Sample, SampleBuffer};
use super::records::{FileHeader, ListingRecord, Record};
use super::stacks::{CompactBatch, StackInterner, StacksRecord};
use super::{Format, MAGIC, OLDEST_VERSION, VERSION};

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
    pub(super) sink: W,
    pub(super) format: Format,
    pub(super) bytes: u64,
    pub(super) scratch: Vec<u8>,
    /// Code hashes whose listing was written (native format): a function
    /// reloaded many times with the same code costs one listing.
    listed: HashSet<u64>,
    /// The native version written ([`VERSION`] unless asked otherwise).
    version: u16,
    /// The stacks interned (native version 3).
    stacks: StackInterner,
}

/// Listings remembered by an encoder before it forgets them all: bounds its
/// memory under endless distinct code; forgetting only repeats a listing.
const LISTED_MAX: usize = 1 << 16;

impl<W: Write> Encoder<W> {
    /// A native encoder; writes the magic, the version and `header` at once.
    pub fn native(sink: W, header: &FileHeader) -> Result<Encoder<W>, EncodeError> {
        Encoder::native_version(sink, header, VERSION)
    }

    /// A native encoder of an earlier `version` (from [`OLDEST_VERSION`]):
    /// for tools that must write what an older pcprof reads, and for the
    /// fixtures of each version. Records the version lacks are refused;
    /// below version 3 samples go in `Samples` records and their stacks are
    /// dropped.
    pub fn native_version(
        sink: W,
        header: &FileHeader,
        version: u16,
    ) -> Result<Encoder<W>, EncodeError> {
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(EncodeError::Encode(format!(
                "native format version {version} (this pcprof writes {OLDEST_VERSION} to {VERSION})"
            )));
        }
        let mut e = Encoder {
            sink,
            format: Format::Native,
            bytes: 0,
            scratch: Vec::with_capacity(4096),
            listed: HashSet::new(),
            version,
            stacks: StackInterner::default(),
        };
        e.sink.write_all(&MAGIC)?;
        e.sink.write_all(&version.to_le_bytes())?;
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
            listed: HashSet::new(),
            version: 0,
            stacks: StackInterner::default(),
        }
    }

    /// The native version written (0 for the Pulley format).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Whether the format written keeps stacks (native, version 3 and
    /// later): else interned stacks are dropped when samples are written.
    pub fn keeps_stacks(&self) -> bool {
        self.format == Format::Native && self.version >= 3
    }

    /// The writer's stack table: intern a sample's stack here
    /// ([`StackInterner::stack`], [`StackInterner::node`]) and put the id in
    /// its `stack`; [`Encoder::write_samples`] introduces the new stacks
    /// first.
    pub fn stacks(&mut self) -> &mut StackInterner {
        &mut self.stacks
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
    /// Pulley format cannot carry). A native function record with a listing
    /// is preceded by that listing's record, unless its code's listing was
    /// written already.
    pub fn write(&mut self, record: &Record) -> Result<u64, EncodeError> {
        match self.format {
            Format::Native => {
                if record.since_version() > self.version {
                    return Err(EncodeError::Encode(format!(
                        "a {} record (format version {}) in a version {} file",
                        record.kind(),
                        record.since_version(),
                        self.version
                    )));
                }
                let mut n = 0;
                if let Record::Function(f) = record
                    && let Some(listing) = &f.listing
                    && !self.listed.contains(&listing.code_hash)
                {
                    if self.listed.len() >= LISTED_MAX {
                        self.listed.clear();
                    }
                    n += self.write_native(&Record::Listing(ListingRecord::clone(listing)))?;
                    self.listed.insert(listing.code_hash);
                }
                Ok(n + self.write_native(record)?)
            }
            Format::Pulley => self.write_pulley(record),
        }
    }

    /// Writes the runtime's batch: interns each sample's stack from the
    /// buffer's frames (its `stack` becomes the interned id), then writes
    /// the samples as [`Encoder::write_samples`] does.
    pub fn write_buffer(&mut self, buffer: &mut SampleBuffer) -> Result<u64, EncodeError> {
        if !buffer.frames.is_empty() {
            let SampleBuffer { samples, frames } = buffer;
            let arena = SampleBuffer {
                samples: Vec::new(),
                frames: std::mem::take(frames),
            };
            // Samples often share an entry (the sampler reuses an
            // interpreter's while its stack is unchanged): interned once.
            let mut seen: HashMap<u32, u32> = HashMap::new();
            let keep = self.keeps_stacks();
            for s in samples.iter_mut().filter(|s| s.stack != 0) {
                let entry = s.stack;
                s.stack = *seen
                    .entry(entry)
                    .or_insert_with(|| match arena.stack_at(entry) {
                        Some((f, truncated)) if keep => self.stacks.stack(f, truncated),
                        _ => 0,
                    });
            }
            *frames = arena.frames;
        }
        self.write_samples(&buffer.samples)
    }

    /// Writes a batch of samples (encoding it first for the native format),
    /// after a `Stacks` record introducing the stacks interned since the
    /// last batch. Their `stack` fields must be ids from [`Encoder::stacks`]
    /// (or 0); formats without stacks ignore them.
    pub fn write_samples(&mut self, samples: &[Sample]) -> Result<u64, EncodeError> {
        let mut n = 0;
        if !self.stacks.pending().is_empty() {
            if self.keeps_stacks() {
                let r = Record::Stacks(StacksRecord::encode(self.stacks.pending()));
                n += self.write_native(&r)?;
            }
            self.stacks.clear_pending();
        }
        if samples.is_empty() {
            return Ok(n);
        }
        Ok(n + match self.format {
            Format::Native if self.version >= 3 => {
                self.write_native(&Record::Batch(CompactBatch::encode(samples)))?
            }
            Format::Native => self.write_native(&Record::Samples(EncodedBatch::encode(samples)))?,
            Format::Pulley => self.write_pulley_samples(samples)?,
        })
    }
}
