//! The writing half shared by both formats: [`Encoder`] counts bytes and
//! dispatches each record to the format's own writer ([`super::native`],
//! [`super::pulley`]).

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};

use super::batch::EncodedBatch;
use super::batch::Sample;
use super::records::{FileHeader, ListingRecord, Record};
use super::{Format, MAGIC, VERSION};

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
}

/// Listings remembered by an encoder before it forgets them all: bounds its
/// memory under endless distinct code; forgetting only repeats a listing.
const LISTED_MAX: usize = 1 << 16;

impl<W: Write> Encoder<W> {
    /// A native encoder; writes the magic, the version and `header` at once.
    pub fn native(sink: W, header: &FileHeader) -> Result<Encoder<W>, EncodeError> {
        let mut e = Encoder {
            sink,
            format: Format::Native,
            bytes: 0,
            scratch: Vec::with_capacity(4096),
            listed: HashSet::new(),
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
            listed: HashSet::new(),
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
    /// Pulley format cannot carry). A native function record with a listing
    /// is preceded by that listing's record, unless its code's listing was
    /// written already.
    pub fn write(&mut self, record: &Record) -> Result<u64, EncodeError> {
        match self.format {
            Format::Native => {
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

    /// Writes a batch of samples (encoding it first for the native format).
    pub fn write_samples(&mut self, samples: &[Sample]) -> Result<u64, EncodeError> {
        if samples.is_empty() {
            return Ok(0);
        }
        match self.format {
            Format::Native => self.write_native(&Record::Samples(EncodedBatch::encode(samples))),
            Format::Pulley => self.write_pulley_samples(samples),
        }
    }
}
