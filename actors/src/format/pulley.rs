//! Pulley's format, writing and reading side by side: byte for byte what
//! `pulley_interpreter::profile::Recorder` writes (tag 1 = function, tag 2 =
//! samples; no header, times or interpreters).

use std::io::{Read, Write};

use super::batch::Sample;
use super::encoder::{EncodeError, Encoder};
use super::reader::{
    Event, ProfileReader, PulleySection, RawPc, ReadError, ReadErrorKind, SkippedCode, read_full,
    take_crc, take_fixed, take_vec,
};
use super::records::{FunctionRecord, Record};
use super::{PULLEY_FUNCTION, PULLEY_SAMPLES};

impl<W: Write> Encoder<W> {
    /// A samples section: `2 | count: u32 | count × pc: u64`.
    pub(super) fn write_pulley_samples(&mut self, samples: &[Sample]) -> Result<u64, EncodeError> {
        let count = u32::try_from(samples.len())
            .map_err(|_| EncodeError::Encode(format!("{} samples in one batch", samples.len())))?;
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

    pub(super) fn write_pulley(&mut self, record: &Record) -> Result<u64, EncodeError> {
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
            Record::Batch(batch) => {
                let mut samples = Vec::with_capacity(batch.samples as usize);
                batch
                    .decode_into(&mut samples, u32::MAX)
                    .map_err(EncodeError::Encode)?;
                self.write_samples(&samples)
            }
            // Pulley's format has no place for these.
            _ => Ok(0),
        }
    }
}

impl<R: Read> ProfileReader<R> {
    /// A Pulley section other than samples, whose tag (read at `start`) is
    /// `tag`: a function, or an error.
    pub(super) fn pulley_section(
        &mut self,
        start: u64,
        tag: u8,
    ) -> Result<Option<Event>, ReadError> {
        // `pos` counts the bytes of this section consumed so far.
        let mut pos: u64 = 1;
        let src = &mut self.source;
        let event = match tag {
            PULLEY_FUNCTION => {
                let addr = u64::from_le_bytes(take_fixed(src, start, &mut pos)?);
                let name_len = u32::from_le_bytes(take_fixed(src, start, &mut pos)?);
                let mut name = Vec::with_capacity(name_len.min(1 << 16) as usize);
                take_vec(src, start, &mut pos, u64::from(name_len), &mut name)?;
                let name = String::from_utf8(name).map_err(|e| {
                    let reason = format!("function name is not UTF-8: {e}");
                    ReadError::new(start, ReadErrorKind::Invalid { reason })
                })?;
                let body_len = u32::from_le_bytes(take_fixed(src, start, &mut pos)?);
                let at = start + pos;
                self.code_at = Some(at);
                let len = u64::from(body_len);
                let mut code = Vec::new();
                if self.code_kept.saturating_add(len) > self.code_budget {
                    let crc = take_crc(src, start, &mut pos, len, &mut self.scratch)?;
                    self.skipped = Some(SkippedCode {
                        offset: at,
                        len,
                        crc,
                    });
                } else {
                    // The length is known: one allocation, no regrowth
                    // (bounded, so a corrupt length cannot claim memory
                    // the file does not back).
                    code.reserve_exact(body_len.min(1 << 26) as usize);
                    take_vec(src, start, &mut pos, len, &mut code)?;
                    self.code_kept += len;
                    self.skipped = None;
                }
                Event::Function(FunctionRecord {
                    addr,
                    name,
                    code,
                    loaded_ns: 0,
                    listing: None,
                })
            }
            tag => return Err(ReadError::new(start, ReadErrorKind::UnknownTag { tag })),
        };
        self.offset += pos;
        Ok(Some(event))
    }

    /// The next Pulley event; a samples section comes in chunks of at most
    /// [`PULLEY_CHUNK`] samples, their PCs decoded into `pcs` (appended).
    pub(super) fn next_pulley_pcs(
        &mut self,
        pcs: &mut Vec<RawPc>,
    ) -> Result<Option<Event>, ReadError> {
        if let Some(e) = self.pulley.failed.take() {
            return Err(e);
        }
        if self.pulley.left == 0 {
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
            if count == 0 {
                self.offset += pos;
                return Ok(Some(Event::Samples(Vec::new())));
            }
            self.pulley = PulleySection {
                count,
                left: count,
                pos,
                failed: None,
            };
        }
        // Bounded: at most PULLEY_CHUNK samples' bytes, whatever `count`
        // says; read straight into `pcs` (no decoding pass).
        let n = self.pulley.left.min(PULLEY_CHUNK);
        let want = n as usize * 8;
        let from = pcs.len();
        pcs.resize(from + n as usize, [0; 8]);
        let got = read_full(&mut self.source, pcs[from..].as_flattened_mut())
            .map_err(|e| ReadError::new(self.offset, ReadErrorKind::Io(e)));
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                self.pulley.left = 0;
                pcs.truncate(from);
                return Err(e);
            }
        };
        pcs.truncate(from + got / 8);
        self.pulley.pos += got as u64;
        if got < want {
            // A torn section: the samples read whole still count, then the
            // error names the section's start (where the complete records
            // end).
            let err = ReadError::new(
                self.offset,
                ReadErrorKind::Truncated {
                    needed: 5 + u64::from(self.pulley.count) * 8,
                    available: self.pulley.pos,
                },
            );
            self.pulley.left = 0;
            if got < 8 {
                return Err(err);
            }
            self.pulley.failed = Some(err);
            return Ok(Some(Event::Samples(Vec::new())));
        }
        self.pulley.left -= n;
        if self.pulley.left == 0 {
            self.offset += self.pulley.pos;
        }
        Ok(Some(Event::Samples(Vec::new())))
    }

    /// [`Self::next_pulley_pcs`] with the PCs as [`Sample`]s (time and
    /// interpreter 0).
    pub(super) fn next_pulley_into(
        &mut self,
        samples: &mut Vec<Sample>,
    ) -> Result<Option<Event>, ReadError> {
        let mut pcs = std::mem::take(&mut self.pulley_pcs);
        pcs.clear();
        let result = self.next_pulley_pcs(&mut pcs);
        samples.extend(pcs.iter().map(|&pc| Sample {
            time_ns: 0,
            interp: 0,
            pc: u64::from_le_bytes(pc),
            stack: 0,
        }));
        self.pulley_pcs = pcs;
        result
    }
}

/// Samples read per step of a samples section: memory stays bounded (512
/// KiB) however large the section (Wasmtime's
/// agent writes 1 000 000 samples a section), and a chunk stays in the
/// cache while it is counted.
pub(crate) const PULLEY_CHUNK: u32 = 1 << 16;
