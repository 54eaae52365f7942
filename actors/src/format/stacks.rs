//! Format version 3: interned call stacks and the compact sample batch.
//!
//! - A stack is a chain of [`StackNode`]s (id, parent id, frame), the frame
//!   being a call site's PC; id 0 is the empty stack (and "no stack"). The
//!   writer interns them ([`StackInterner`]) and introduces each new node in
//!   a [`StacksRecord`] before the first batch that uses it; ids are dense,
//!   in the order introduced, so the reader checks every reference with one
//!   comparison.
//! - [`CompactBatch`] replaces version 2's `Samples` record: one LEB128
//!   byte stream (time deltas against the batch's mean tick distance,
//!   interpreter ids against the previous one of the tick plus one, PCs and
//!   stack ids against the same interpreter's previous ones), so a tick's
//!   time costs 3 bytes at 1 kHz even with randomised instants, an id of
//!   10 000 one byte when the sampler reads interpreters in order, and a
//!   steady stack one byte.
//! - A truncated stack (deeper than the interpreter's capacity, or a torn
//!   read given up on) ends with [`TRUNCATED_FRAME`]: the frames above it
//!   are the outermost ones, the leaf (the sample's PC) is exact.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::batch::{LastPcs, Sample, Varints, push_leb128, read_leb128, unzigzag, zigzag};

/// Bincode's variant index of [`Record::Batch`](super::records::Record::Batch).
pub(super) const BATCH_VARIANT: u8 = 11;

/// Decodes the payload of a `Record::Batch` after its variant byte straight
/// into `out`, without copying the stream. `None` if it is not exactly a
/// valid batch: the caller falls back to bincode, which names the fault.
pub(super) fn decode_compact_payload(
    payload: &[u8],
    known_stacks: u32,
    out: &mut Vec<Sample>,
) -> Option<()> {
    let mut c = Varints {
        bytes: payload,
        pos: 0,
    };
    let first = c.u64()?;
    let step = c.u64()?;
    let ticks = c.u32()?;
    let samples = c.u32()?;
    let stacks = match payload.get(c.pos)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    c.pos += 1;
    let n = usize::try_from(c.u64()?).ok()?;
    let data = payload.get(c.pos..c.pos.checked_add(n)?)?;
    if c.pos + n != payload.len() {
        return None;
    }
    decode_compact(first, step, ticks, samples, stacks, data, known_stacks, out).ok()
}

/// The frame that marks a truncated stack: frames were lost between the
/// ones above it and the sample's PC (the stack was deeper than the
/// interpreter's capacity, or it kept changing while the sampler read it).
pub const TRUNCATED_FRAME: u64 = u64::MAX;

/// One interned stack: `parent`'s frames, then `frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StackNode {
    /// Its id (at least 1).
    pub id: u32,
    /// The stack it extends (0: the empty stack); always below `id`.
    pub parent: u32,
    /// A call site's PC (the caller's instruction that made the call), or
    /// [`TRUNCATED_FRAME`].
    pub frame: u64,
}

/// Stacks introduced before the samples that use them (record 10).
///
/// `data` holds, for each node `first_id + k`, LEB128 of `id - parent`
/// (at least 1) then LEB128 of the zigzag of its frame minus the previous
/// node's frame in this record (minus 0 for the first): a recursion through
/// one call site costs 2 bytes a level.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StacksRecord {
    /// Id of the first node (one past the last id introduced before).
    pub first_id: u32,
    /// The nodes, encoded as above.
    pub data: Vec<u8>,
}

impl StacksRecord {
    /// Encodes `nodes`, whose ids must follow one another from the first.
    pub fn encode(nodes: &[StackNode]) -> StacksRecord {
        let mut out = StacksRecord {
            first_id: nodes.first().map_or(1, |n| n.id),
            data: Vec::with_capacity(nodes.len() * 2),
        };
        let mut prev = 0u64;
        for n in nodes {
            push_leb128(&mut out.data, u64::from(n.id.wrapping_sub(n.parent)));
            push_leb128(&mut out.data, zigzag(n.frame.wrapping_sub(prev) as i64));
            prev = n.frame;
        }
        out
    }

    /// Decodes the nodes into `out` (appending). Err names the fault.
    pub fn decode_into(&self, out: &mut Vec<StackNode>) -> Result<(), String> {
        if self.first_id == 0 {
            return Err("stack id 0 introduced (it is the empty stack)".into());
        }
        let mut pos = 0;
        let mut prev = 0u64;
        let mut id = self.first_id;
        while pos < self.data.len() {
            let up = read_leb128(&self.data, &mut pos)
                .ok_or_else(|| format!("malformed parent of stack {id}"))?;
            let d = read_leb128(&self.data, &mut pos)
                .ok_or_else(|| format!("malformed frame of stack {id}"))?;
            let parent = u64::from(id)
                .checked_sub(up)
                .filter(|&p| p < u64::from(id))
                .ok_or_else(|| format!("stack {id} has parent {id} - {up}, not below it"))?;
            let frame = prev.wrapping_add(unzigzag(d) as u64);
            prev = frame;
            out.push(StackNode {
                id,
                parent: parent as u32,
                frame,
            });
            id = id
                .checked_add(1)
                .ok_or_else(|| "stack ids past 2^32".to_string())?;
        }
        Ok(())
    }
}

/// An interpreter's PC before its first sample in a batch: that sample's
/// PC is then a delta from the previous sample's (any interpreter's), so a
/// batch of thousands of interpreters seen twice each does not pay their
/// full addresses. (A real PC of this value only changes which base the
/// next delta takes, alike in the writer and the reader.)
const FIRST_PC: u64 = u64::MAX;

/// A batch of samples (record 11, format version 3): `ticks` ticks, `samples`
/// samples, one LEB128 stream (see FORMAT.md, "Compact batches").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactBatch {
    /// Time of the first tick.
    pub first_time_ns: u64,
    /// The expected distance between ticks: the batch's mean.
    pub tick_step_ns: u64,
    /// Number of ticks.
    pub ticks: u32,
    /// Number of samples.
    pub samples: u32,
    /// Whether each sample carries a stack id.
    pub stacks: bool,
    /// The stream.
    #[serde(serialize_with = "serialize_stream")]
    pub data: Vec<u8>,
}

/// The stream in one piece: the same bytes as the derived sequence (a
/// length, then each byte as is), without a serializer call a byte.
fn serialize_stream<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(data)
}

impl CompactBatch {
    /// Encodes samples, which must be in time order (as the sampler makes
    /// them); their `stack` fields are interned stack ids.
    pub fn encode(samples: &[Sample]) -> CompactBatch {
        let first = samples.first().map_or(0, |s| s.time_ns);
        let last = samples.last().map_or(0, |s| s.time_ns);
        let mut ticks = 0u32;
        let mut prev = None;
        for s in samples {
            if prev != Some(s.time_ns) {
                ticks += 1;
                prev = Some(s.time_ns);
            }
        }
        let step = if ticks > 1 {
            last.wrapping_sub(first) / u64::from(ticks - 1)
        } else {
            0
        };
        let stacks = samples.iter().any(|s| s.stack != 0);
        let mut out = CompactBatch {
            first_time_ns: first,
            tick_step_ns: step,
            ticks,
            samples: samples.len() as u32,
            stacks,
            data: Vec::with_capacity(samples.len() * if stacks { 4 } else { 3 }),
        };
        let mut last_pc = LastPcs::starting_at(FIRST_PC);
        let mut last_stack = LastPcs::default();
        let mut prev_pc = 0u64;
        let mut i = 0;
        let mut prev_time = first;
        while i < samples.len() {
            let t = samples[i].time_ns;
            let n = samples[i..].iter().take_while(|s| s.time_ns == t).count();
            if i > 0 {
                let d = t.wrapping_sub(prev_time).wrapping_sub(step);
                push_leb128(&mut out.data, zigzag(d as i64));
            }
            prev_time = t;
            push_leb128(&mut out.data, n as u64);
            let mut expect: u32 = 0;
            for s in &samples[i..i + n] {
                let d = s.interp.wrapping_sub(expect) as i32;
                push_leb128(&mut out.data, zigzag(i64::from(d)));
                expect = s.interp.wrapping_add(1);
                let lp = last_pc.get_mut(s.interp);
                let base = if *lp == FIRST_PC { prev_pc } else { *lp };
                push_leb128(&mut out.data, zigzag(s.pc.wrapping_sub(base) as i64));
                *lp = s.pc;
                prev_pc = s.pc;
                if stacks {
                    let ls = last_stack.get_mut(s.interp);
                    let d = i64::from(s.stack) - *ls as i64;
                    push_leb128(&mut out.data, zigzag(d));
                    *ls = u64::from(s.stack);
                }
            }
            i += n;
        }
        out
    }

    /// Decodes into `out` (appending); `known_stacks` is the highest stack id
    /// introduced so far. Fails, appending nothing, if the stream and the
    /// counts disagree or a stack is used before it is introduced.
    pub fn decode_into(&self, out: &mut Vec<Sample>, known_stacks: u32) -> Result<(), String> {
        decode_compact(
            self.first_time_ns,
            self.tick_step_ns,
            self.ticks,
            self.samples,
            self.stacks,
            &self.data,
            known_stacks,
            out,
        )
    }
}

/// The one decoder of a compact batch, from the record or straight from a
/// frame's bytes. Appends nothing on error.
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_compact(
    first_time_ns: u64,
    step: u64,
    ticks: u32,
    samples: u32,
    stacks: bool,
    data: &[u8],
    known_stacks: u32,
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    let start = out.len();
    let r = decode_compact_inner(
        first_time_ns,
        step,
        ticks,
        samples,
        stacks,
        data,
        known_stacks,
        out,
    );
    if r.is_err() {
        out.truncate(start);
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn decode_compact_inner(
    first_time_ns: u64,
    step: u64,
    ticks: u32,
    samples: u32,
    stacks: bool,
    data: &[u8],
    known_stacks: u32,
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    // Every sample takes at least 2 bytes: a count past that is corrupt, and
    // must not size an allocation.
    if samples as usize > data.len() / 2 || ticks as usize > data.len() {
        return Err(format!(
            "{ticks} ticks and {samples} samples in {} bytes",
            data.len()
        ));
    }
    out.reserve(samples as usize);
    let bad = |what: &str| format!("malformed {what}");
    let mut last_pc = LastPcs::starting_at(FIRST_PC);
    let mut last_stack = LastPcs::default();
    let mut prev_pc = 0u64;
    let mut pos = 0;
    let mut time = first_time_ns;
    let mut left = samples as u64;
    for t in 0..ticks {
        if t > 0 {
            let d = read_leb128(data, &mut pos).ok_or_else(|| bad("time delta"))?;
            time = time.wrapping_add(step).wrapping_add(unzigzag(d) as u64);
        }
        let n = read_leb128(data, &mut pos).ok_or_else(|| bad("tick count"))?;
        if n > left {
            return Err(format!("tick counts exceed the {samples} samples"));
        }
        left -= n;
        let mut expect: u32 = 0;
        for _ in 0..n {
            let d = read_leb128(data, &mut pos).ok_or_else(|| bad("interpreter id"))?;
            let interp = expect.wrapping_add(unzigzag(d) as i32 as u32);
            if interp > 1 << 24 {
                return Err(format!("interpreter id {interp} above 2^24"));
            }
            expect = interp + 1;
            let lp = last_pc.get_mut(interp);
            let d = read_leb128(data, &mut pos).ok_or_else(|| bad("PC delta"))?;
            let base = if *lp == FIRST_PC { prev_pc } else { *lp };
            let pc = base.wrapping_add(unzigzag(d) as u64);
            *lp = pc;
            prev_pc = pc;
            let mut stack = 0;
            if stacks {
                let ls = last_stack.get_mut(interp);
                let d = read_leb128(data, &mut pos).ok_or_else(|| bad("stack delta"))?;
                let s = (*ls as i64).wrapping_add(unzigzag(d));
                if !(0..=i64::from(known_stacks)).contains(&s) {
                    return Err(format!(
                        "a sample of stack {s} before its introduction (stacks 1 to {known_stacks} known)"
                    ));
                }
                *ls = s as u64;
                stack = s as u32;
            }
            out.push(Sample {
                time_ns: time,
                interp,
                pc,
                stack,
            });
        }
    }
    if left != 0 {
        return Err(format!(
            "tick counts add up to {} but {samples} samples",
            u64::from(samples) - left
        ));
    }
    if pos != data.len() {
        return Err(format!("{} bytes left over in a batch", data.len() - pos));
    }
    Ok(())
}

/// Interns stacks for a writer: a stack is (parent, frame), each new one
/// gets the next id and waits in `pending` until the writer introduces it.
///
/// Memory is bounded: past [`INTERNED_MAX`] stacks the table forgets them
/// all and ids go on from where they were (a stack seen again is introduced
/// again under a new id; readers merge equal paths), so a long run of ever
/// new stacks costs the writer a bounded table.
#[derive(Debug, Default)]
pub struct StackInterner {
    table: HashMap<(u32, u64), u32>,
    last: u32,
    pending: Vec<StackNode>,
}

/// Stacks an interner remembers before it forgets them all.
pub const INTERNED_MAX: usize = 1 << 20;

impl StackInterner {
    /// The id of `parent`'s stack extended by `frame`.
    #[inline]
    pub fn node(&mut self, parent: u32, frame: u64) -> u32 {
        if let Some(&id) = self.table.get(&(parent, frame)) {
            return id;
        }
        if self.table.len() >= INTERNED_MAX {
            self.table.clear();
        }
        self.last += 1;
        let id = self.last;
        self.table.insert((parent, frame), id);
        self.pending.push(StackNode { id, parent, frame });
        id
    }

    /// The id of the stack of `frames` (root first), ended by
    /// [`TRUNCATED_FRAME`] if `truncated`; 0 for no frames, not truncated.
    pub fn stack(&mut self, frames: &[u64], truncated: bool) -> u32 {
        let mut id = 0;
        for &f in frames {
            id = self.node(id, f);
        }
        if truncated {
            id = self.node(id, TRUNCATED_FRAME);
        }
        id
    }

    /// The stacks interned and not yet introduced.
    pub fn pending(&self) -> &[StackNode] {
        &self.pending
    }

    /// Forgets the pending stacks (they have been written).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// The highest id given.
    pub fn last_id(&self) -> u32 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(time_ns: u64, interp: u32, pc: u64, stack: u32) -> Sample {
        Sample {
            time_ns,
            interp,
            pc,
            stack,
        }
    }

    #[test]
    fn a_compact_batch_reads_back_exactly() {
        let samples = vec![
            s(100, 0, 0x1000, 1),
            s(100, 1, 0x2000, 0),
            s(100, 10_000, 0x2000, 2),
            s(1_150, 1, 0x2004, 0),
            s(1_150, 0, 0x0ff0, 3),
            s(2_000, 0, 0x1000, 1),
        ];
        let b = CompactBatch::encode(&samples);
        assert_eq!((b.ticks, b.samples, b.stacks), (3, 6, true));
        assert_eq!(b.tick_step_ns, 950);
        let mut out = Vec::new();
        b.decode_into(&mut out, 3).unwrap();
        assert_eq!(out, samples);
        // A stack past the ones introduced is refused, appending nothing.
        let mut out = Vec::new();
        let e = b.decode_into(&mut out, 2).unwrap_err();
        assert!(e.contains("stack 3 before its introduction"), "{e}");
        assert!(out.is_empty());
    }

    /// Thousands of interpreters parked, ids on both sides of the dense
    /// table's bound (`DENSE_LAST_PC`): each keeps its own PC and stack
    /// base, read back exactly.
    #[test]
    fn a_batch_of_many_interpreters_reads_back_exactly() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let ids: Vec<u32> = (0..10_000).chain([65_535, 65_536, 1 << 20]).collect();
        let mut samples = Vec::new();
        for tick in 0..4u64 {
            let t = 1_000_000 * tick + rand(500);
            for &id in &ids {
                let pc = 0x10_000 + 0x40 * u64::from(id % 97) + rand(3) * 4;
                let stack = if id % 5 == 0 { 0 } else { 1 + (id % 7) };
                samples.push(s(t, id, pc, stack));
            }
        }
        let b = CompactBatch::encode(&samples);
        assert_eq!((b.ticks, b.samples), (4, 4 * ids.len() as u32));
        let mut out = Vec::new();
        b.decode_into(&mut out, 7).unwrap();
        assert_eq!(out, samples);
    }

    #[test]
    fn stacks_intern_and_read_back() {
        let mut i = StackInterner::default();
        let a = i.stack(&[0x10, 0x20], false);
        let b = i.stack(&[0x10, 0x20, 0x20], true);
        assert_eq!(i.stack(&[0x10, 0x20], false), a);
        assert_eq!((a, b, i.last_id()), (2, 4, 4));
        let r = StacksRecord::encode(i.pending());
        let mut nodes = Vec::new();
        r.decode_into(&mut nodes).unwrap();
        assert_eq!(nodes, i.pending());
        assert_eq!(nodes[3].frame, TRUNCATED_FRAME);
        assert_eq!(nodes[3].parent, 3);
        assert_eq!(i.stack(&[], false), 0);
    }
}
