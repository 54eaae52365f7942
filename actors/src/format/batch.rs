//! The sample batch codec: [`EncodedBatch`] (struct of arrays, tick-grouped
//! deltas), and the reader's allocation-free fast path that decodes a
//! `Samples` record straight from its frame (a shadow of bincode's varint
//! layout for this one record, checked against bincode by the fuzzers).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One PC read at one tick (24 bytes: `stack` fills what was padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Sample {
    /// When the tick read the clock, just before reading the PCs, in ns since
    /// the clock's epoch (the tick's deadline in files written before
    /// 2026-11-27; 0 in Pulley files).
    pub time_ns: u64,
    /// The interpreter's id (0 in Pulley files).
    pub interp: u32,
    /// The PC read.
    pub pc: u64,
    /// Its call stack: a stack id introduced by an [`Event::Stacks`]
    /// (`crate::format::Event::Stacks`) before this sample, 0 for none (the
    /// interpreter keeps no shadow stack, or the file predates version 3).
    /// In the runtime's batches, before the writer interns it, 1 + the
    /// offset of the stack's frames in the batch's frame arena.
    pub stack: u32,
}

/// A batch of samples as the runtime hands it from the sampler to the
/// writer: the samples, and beside them the frames of their stacks (an
/// arena sized when the buffer is made, so the tick path never allocates).
/// A sample with a stack has `stack` = 1 + the offset of its entry: a
/// header word (the number of frames, bit 63 set if truncated), then the
/// frames, root first. The writer interns them
/// ([`Encoder::write_buffer`](super::Encoder::write_buffer)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleBuffer {
    /// The samples, in time order.
    pub samples: Vec<Sample>,
    /// Their stacks' frames.
    pub frames: Vec<u64>,
}

/// Bit 63 of an arena entry's header: the stack is truncated.
const ENTRY_TRUNCATED: u64 = 1 << 63;

impl SampleBuffer {
    /// An empty buffer with room for `samples` samples and `frames` words of
    /// stacks.
    pub fn with_capacity(samples: usize, frames: usize) -> SampleBuffer {
        SampleBuffer {
            samples: Vec::with_capacity(samples),
            frames: Vec::with_capacity(frames),
        }
    }

    /// Empties it, keeping its capacity.
    pub fn clear(&mut self) {
        self.samples.clear();
        self.frames.clear();
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Whether a stack of `frames` frames fits without allocating.
    #[inline]
    pub fn has_room_for_stack(&self, frames: usize) -> bool {
        self.frames.capacity() - self.frames.len() > frames
    }

    /// Stores a stack's frames (root first) in the arena; its value for
    /// [`Sample::stack`]. The caller checks the room first
    /// ([`SampleBuffer::has_room_for_stack`]) if it must not allocate.
    #[inline]
    pub fn push_stack(
        &mut self,
        frames: impl ExactSizeIterator<Item = u64>,
        truncated: bool,
    ) -> u32 {
        let at = self.frames.len();
        let header = frames.len() as u64 | if truncated { ENTRY_TRUNCATED } else { 0 };
        self.frames.push(header);
        self.frames.extend(frames);
        at as u32 + 1
    }

    /// The frames and truncation of the entry a sample's `stack` names.
    pub fn stack_at(&self, stack: u32) -> Option<(&[u64], bool)> {
        let at = (stack as usize).checked_sub(1)?;
        let header = *self.frames.get(at)?;
        let n = (header & !ENTRY_TRUNCATED) as usize;
        let frames = self.frames.get(at + 1..at + 1 + n)?;
        Some((frames, header & ENTRY_TRUNCATED != 0))
    }
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
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(super) fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

#[inline]
pub(super) fn push_leb128(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one LEB128 value at `*pos`; `None` if cut or longer than 10 bytes.
#[inline]
pub(super) fn read_leb128(bytes: &[u8], pos: &mut usize) -> Option<u64> {
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
        let mut last_pc = LastPcs::default();
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
            out.interps.push(s.interp);
            let last = last_pc.get_mut(s.interp);
            push_leb128(&mut out.pc_deltas, zigzag(s.pc.wrapping_sub(*last) as i64));
            *last = s.pc;
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
/// is encoded or decoded: the sampler's ids are dense from 0, and 10 000
/// interpreters parked put every one of them in each batch, where a hashed
/// map cost more than the rest of the encoding.
const DENSE_LAST_PC: usize = 1 << 16;

/// The last PC of each interpreter in a batch (PCs are stored as deltas from
/// it). Ids from [`DENSE_LAST_PC`] up (valid to 2^24, rare) go to a map: a
/// vector would be zeroed up to 8 × id bytes for every batch, on the writer's
/// side as on the reader's (at most 512 KiB below the bound).
#[derive(Default)]
pub(super) struct LastPcs {
    dense: Vec<u64>,
    sparse: HashMap<u32, u64>,
    /// The value of an interpreter not seen yet.
    unseen: u64,
}

impl LastPcs {
    /// A table whose interpreters start at `unseen`.
    pub(super) fn starting_at(unseen: u64) -> LastPcs {
        LastPcs {
            unseen,
            ..LastPcs::default()
        }
    }

    #[inline]
    pub(super) fn get_mut(&mut self, interp: u32) -> &mut u64 {
        let slot = interp as usize;
        if slot < DENSE_LAST_PC {
            if slot >= self.dense.len() {
                self.dense.resize(slot + 1, self.unseen);
            }
            &mut self.dense[slot]
        } else {
            self.sparse.entry(interp).or_insert(self.unseen)
        }
    }
}

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
    let mut last_pc = LastPcs::default();
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
            let last = last_pc.get_mut(interp);
            let delta = read_leb128(pc_bytes, &mut pos).ok_or_else(|| bad("PC delta"))?;
            let pc = last.wrapping_add(unzigzag(delta) as u64);
            *last = pc;
            out.push(Sample {
                time_ns: time,
                interp,
                pc,
                stack: 0,
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

/// Bincode's variant index of [`Record::Samples`](super::records::Record::Samples) (a one-byte varint).
pub(super) const SAMPLES_VARIANT: u8 = 5;

/// A cursor over bincode's standard varints.
pub(super) struct Varints<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
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
    pub(super) fn u64(&mut self) -> Option<u64> {
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
    pub(super) fn u32(&mut self) -> Option<u32> {
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
pub(super) fn decode_batch_payload(payload: &[u8], out: &mut Vec<Sample>) -> Option<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Large ids never grow the dense table: a batch costs its samples, not
    /// 8 × its largest id.
    #[test]
    fn last_pcs_of_large_ids_stay_sparse() {
        let mut last = LastPcs::default();
        *last.get_mut(1 << 24) = 7;
        *last.get_mut(3) = 9;
        assert_eq!((*last.get_mut(1 << 24), *last.get_mut(3)), (7, 9));
        assert_eq!(last.dense.len(), 4);
        assert_eq!(last.sparse.len(), 1);
    }
}
