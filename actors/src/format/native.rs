//! pcprof's native format, writing and reading side by side: the framed
//! records (`len | crc32 | bincode payload`), see FORMAT.md.

use std::io::{Read, Write};
use std::sync::Arc;

use super::batch::Sample;
use super::batch::{SAMPLES_VARIANT, decode_batch_payload};
use super::encoder::{EncodeError, Encoder};
use super::reader::{Event, ProfileReader, ReadError, ReadErrorKind, read_full, read_up_to};
use super::records::{Record, code_hash};
use super::stacks::{BATCH_VARIANT, decode_compact_payload};
use super::{MAX_RECORD_LEN, bincode_config};

impl<W: Write> Encoder<W> {
    pub(super) fn write_native(&mut self, record: &Record) -> Result<u64, EncodeError> {
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
}

impl<R: Read> ProfileReader<R> {
    pub(super) fn next_native(&mut self) -> Result<Option<Record>, ReadError> {
        let at = self.offset;
        let Some(len) = self.read_native_frame()? else {
            return Ok(None);
        };
        let record = self.decode_record(at)?;
        self.offset += 8 + len;
        Ok(Some(record))
    }

    /// Decodes the payload in `self.buf` (the frame at `at`) with bincode.
    pub(super) fn decode_record(&self, at: u64) -> Result<Record, ReadError> {
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

    pub(super) fn next_native_into(
        &mut self,
        samples: &mut Vec<Sample>,
    ) -> Result<Option<Event>, ReadError> {
        // A listing is not an event of its own: it is kept and attached to
        // the function records that follow, so the loop goes on to the next
        // record.
        loop {
            let at = self.offset;
            let Some(len) = self.read_native_frame()? else {
                return Ok(None);
            };
            // Sample batches (variant 5 of `Record`) are decoded straight
            // from the payload; anything the fast path does not accept goes
            // through bincode, which names the fault.
            if self.buf.first() == Some(&SAMPLES_VARIANT) {
                if decode_batch_payload(&self.buf[1..], samples).is_some() {
                    self.offset += 8 + len;
                    return Ok(Some(Event::Samples(Vec::new())));
                }
                samples.clear();
            }
            if self.buf.first() == Some(&BATCH_VARIANT) && self.version >= 3 {
                if decode_compact_payload(&self.buf[1..], self.stacks_known, samples).is_some() {
                    self.offset += 8 + len;
                    return Ok(Some(Event::Samples(Vec::new())));
                }
                samples.clear();
            }
            let record = self.decode_record(at)?;
            let invalid = |reason| ReadError::new(at, ReadErrorKind::Invalid { reason });
            if record.since_version() > self.version {
                return Err(invalid(format!(
                    "a {} record (format version {}) in a version {} file",
                    record.kind(),
                    record.since_version(),
                    self.version
                )));
            }
            self.offset += 8 + len;
            return Ok(Some(match record {
                Record::Header(_) => return Err(invalid("a second header record".to_string())),
                Record::Function(mut f) => {
                    // The code is the payload's bytes just before
                    // `loaded_ns` (bincode's varint: 1, 3, 5 or 9 bytes).
                    let tail = match f.loaded_ns {
                        0..=250 => 1,
                        251..=0xffff => 3,
                        0x1_0000..=0xffff_ffff => 5,
                        _ => 9,
                    };
                    let code_start = self.buf.len().checked_sub(tail + f.code.len());
                    self.code_at = code_start
                        .filter(|&s| self.buf.get(s..s + f.code.len()) == Some(&f.code[..]))
                        .map(|s| at + 8 + s as u64);
                    if !self.listings.is_empty() {
                        f.listing = self
                            .listings
                            .get(&code_hash(&f.code))
                            .filter(|l| l.code_len as usize == f.code.len())
                            .cloned();
                    }
                    Event::Function(f)
                }
                Record::Unload(u) => Event::Unload(u),
                Record::Interpreter(i) => Event::Interpreter(i),
                Record::Retired(r) => Event::Retired(r),
                Record::Rate(r) => Event::Rate(r),
                Record::Summary(s) => Event::Summary(s),
                Record::Sampling(s) => Event::Sampling(s),
                Record::Push(p) => {
                    self.push = Some(p);
                    continue;
                }
                Record::Listing(l) => {
                    l.check().map_err(invalid)?;
                    self.listings.insert(l.code_hash, Arc::new(l));
                    continue;
                }
                Record::Samples(batch) => {
                    batch.decode_into(samples).map_err(invalid)?;
                    Event::Samples(Vec::new())
                }
                Record::Batch(batch) => {
                    batch
                        .decode_into(samples, self.stacks_known)
                        .map_err(invalid)?;
                    Event::Samples(Vec::new())
                }
                Record::Stacks(r) => {
                    if r.first_id != self.stacks_known.wrapping_add(1) {
                        return Err(invalid(format!(
                            "stacks introduced from id {} after {} known",
                            r.first_id, self.stacks_known
                        )));
                    }
                    let mut nodes = Vec::new();
                    r.decode_into(&mut nodes).map_err(invalid)?;
                    if let Some(last) = nodes.last() {
                        self.stacks_known = last.id;
                    }
                    Event::Stacks(nodes)
                }
            }));
        }
    }

    /// Reads the next native frame's payload into `self.buf`, checking its
    /// length and checksum; returns the payload length, `None` at the end.
    /// Does not advance `self.offset`.
    pub(super) fn read_native_frame(&mut self) -> Result<Option<u64>, ReadError> {
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

/// The most bincode charges against its limit per payload byte: a value
/// stored as a one-byte varint and decoded into 8 bytes (`u64`, `i64`, a
/// length).
const CHARGE_PER_BYTE: usize = 8;

/// Decodes a record's payload with bincode, bounding what it may allocate
/// before reading: bincode sizes a string's buffer from its length field and
/// only its limit checks that length, so with the file-wide limit a corrupt
/// length of a few bytes cost up to 1 GiB. bincode charges every decoded
/// value its size in memory against the limit (a `u64` 8 bytes, a length
/// 8, even when its varint is one byte; a string or `Vec<u8>` one per
/// byte), so a valid record charges at most [`CHARGE_PER_BYTE`] times its
/// payload; the limit is the smallest of a few tiers at or above that (one
/// decoder per tier), so a corrupt one allocates at most 16 times that
/// (128 times its payload).
/// (Tiers taken at the payload's own length refused valid records near a
/// tier's top: a function of 4 061 bytes of code, a batch of one-sample
/// ticks.)
fn decode_payload(payload: &[u8]) -> Result<(Record, usize), bincode::error::DecodeError> {
    fn tier<const LIMIT: usize>(
        payload: &[u8],
    ) -> Result<(Record, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(
            payload,
            bincode::config::standard().with_limit::<LIMIT>(),
        )
    }
    match payload.len().saturating_mul(CHARGE_PER_BYTE) {
        0..=0x1000 => tier::<0x1000>(payload),
        0x1001..=0x1_0000 => tier::<0x1_0000>(payload),
        0x1_0001..=0x10_0000 => tier::<0x10_0000>(payload),
        0x10_0001..=0x100_0000 => tier::<0x100_0000>(payload),
        0x100_0001..=0x1000_0000 => tier::<0x1000_0000>(payload),
        _ => tier::<{ (MAX_RECORD_LEN as usize).saturating_mul(CHARGE_PER_BYTE) }>(payload),
    }
}
