//! The fuzzing harness of pcprof's profile readers, shared by the libFuzzer
//! targets (`fuzz/fuzz_targets/`) and the main test suite, which replays
//! `fuzz/corpus/` through the same functions.
//!
//! - [`read`] drives `ProfileReader` over a file of either format and checks
//!   what holds for any input: offsets only grow, errors name the record's
//!   start, a cut file says so, both reading APIs agree, the fast batch
//!   decoder agrees with bincode, and what was read writes back and reads
//!   again unchanged.
//! - [`load`] drives `analysis::load_bytes` and checks the aggregate's sums
//!   (per function, per interpreter, over the timeline, under a filter).
//! - [`structured`] turns the input into valid records, writes them with
//!   the library's own encoder, checks they read back exactly, then damages
//!   them (a cut, a byte changed inside a frame with its CRC recomputed, a
//!   raw byte) and runs [`read`] and [`load`] on the result.
//! - [`mutate`] is the targets' custom mutator: it splits a native file into
//!   frames (a Pulley file into sections), lets libFuzzer mutate one payload
//!   and frames it again with its length and CRC recomputed, so most mutants
//!   pass the checksum and reach the decoders behind it.
//!
//! Plain std + pcprof (+ bincode, a dependency of pcprof's already), so that
//! the test suite can include it with `#[path]`.

use pcprof::analysis::{LoadOptions, Profile, load_bytes};
use pcprof::format::{
    EncodedBatch, Encoder, Event, FileHeader, Flow, Format, FunctionRecord, InterpreterRecord,
    ListedInstruction, ListingRecord, MAX_RECORD_LEN, RateRecord, ReadErrorKind, Record,
    RetiredRecord, Sample, SamplingMode, SamplingRecord, StacksRecord, Summary, UnloadRecord,
    code_hash,
};
use pcprof::{ProfileReader, Stats};

/// A listing of `code` that depends on the code alone (so every function
/// with the same code gets the same one, as the reader attaches it), or
/// none for half the codes: instructions of 1 to 3 bytes, every kind of
/// flow, branches within the code.
fn listing_for(code: &[u8]) -> Option<std::sync::Arc<ListingRecord>> {
    if code.first().is_some_and(|b| b % 2 == 1) {
        return None;
    }
    let code_len = code.len() as u32;
    let mut instructions = Vec::new();
    let mut at = 0usize;
    while at < code.len() {
        let b = code[at];
        let len = (usize::from(b % 3) + 1).min(code.len() - at);
        let flow = match b % 5 {
            0 => Flow::Plain,
            1 => Flow::Branch {
                targets: vec![u32::from(b) % code_len],
                conditional: b.is_multiple_of(2),
            },
            2 => Flow::Call,
            3 => Flow::Return,
            _ => Flow::Undecodable,
        };
        instructions.push(ListedInstruction {
            len: len as u32,
            opcode: u32::from(b % 2),
            operands: format!("{b}"),
            flow,
        });
        at += len;
    }
    Some(std::sync::Arc::new(ListingRecord {
        code_hash: code_hash(code),
        code_len,
        isa: "fuzz".to_string(),
        opcodes: vec!["even".to_string(), "odd".to_string()],
        instructions,
    }))
}

/// The first payload byte of a `Record::Listing` (its variant index).
const LISTING_VARIANT: u8 = 8;

/// Bytes before the first native frame: magic and version.
const PREFIX: usize = 10;
/// Interpreter ids the round trip re-encodes (and the generator makes): the
/// encoder's table of last PCs is dense (8 bytes per id up to the largest),
/// fine for the sampler's small ids but not for arbitrary ones. Above the
/// decoder's dense bound (4096), to reach its map too.
const ROUND_TRIP_MAX_INTERP: u32 = 1 << 13;

/// What one pass of the reader saw.
#[derive(Debug, PartialEq)]
struct Outcome {
    format: Option<Format>,
    header: Option<FileHeader>,
    events: Vec<Event>,
    /// The final offset, or the error's offset and message.
    end: Result<u64, (u64, String)>,
}

/// Reads `data` to the end with `next` or with `next_into`, checking the
/// reader's invariants along the way.
fn read_pass(data: &[u8], into: bool) -> Outcome {
    let len = data.len() as u64;
    let mut r = match ProfileReader::new(data) {
        Ok(r) => r,
        Err(e) => {
            check_error(&e, len);
            return Outcome {
                format: None,
                header: None,
                events: Vec::new(),
                end: Err((e.offset(), e.to_string())),
            };
        }
    };
    let mut out = Outcome {
        format: Some(r.format()),
        header: r.header().cloned(),
        events: Vec::new(),
        end: Ok(0),
    };
    assert_eq!(out.header.is_some(), r.format() == Format::Native);
    let mut buf = Vec::new();
    let mut last = r.offset();
    assert!(last <= len);
    loop {
        let item = if into {
            r.next_into(&mut buf).map(|ev| {
                ev.map(|ev| match ev {
                    Event::Samples(v) => {
                        assert!(v.is_empty(), "next_into hands samples in the buffer");
                        Event::Samples(std::mem::take(&mut buf))
                    }
                    other => {
                        assert!(buf.is_empty(), "samples left in the buffer");
                        other
                    }
                })
            })
        } else {
            r.next()
        };
        match item {
            None => {
                assert_eq!(r.offset(), len, "a clean end consumes every byte");
                out.end = Ok(len);
                break;
            }
            Some(Ok(ev)) => {
                // A Pulley samples section comes in chunks: the offset stays
                // at the section's start until its last chunk.
                let chunk = r.format() == Format::Pulley
                    && matches!(&ev, Event::Samples(v) if !v.is_empty());
                assert!(r.offset() > last || chunk, "an event consumes bytes");
                assert!(r.offset() <= len);
                last = r.offset();
                out.events.push(ev);
            }
            Some(Err(e)) => {
                check_error(&e, len);
                // A listing record is no event (it is attached to the
                // functions after it), so the record at fault may start
                // after the last event's end.
                assert!(e.offset() >= last, "an error names its record's start");
                assert!(r.next().is_none(), "nothing after an error");
                assert!(r.next_into(&mut buf).is_none() && buf.is_empty());
                out.end = Err((e.offset(), e.to_string()));
                break;
            }
        }
    }
    assert!(r.next().is_none(), "fused");
    out
}

fn check_error(e: &pcprof::ReadError, len: u64) {
    assert!(
        e.offset() <= len,
        "error offset {} past the end",
        e.offset()
    );
    match e.kind() {
        ReadErrorKind::Io(err) => panic!("I/O error reading a slice: {err}"),
        ReadErrorKind::Truncated { needed, available } => {
            assert!(available < needed, "{e}");
            assert_eq!(e.offset() + available, len, "a cut is at the end: {e}");
        }
        ReadErrorKind::TooLarge { len } => assert!(*len > u64::from(MAX_RECORD_LEN)),
        _ => {}
    }
    assert!(!e.to_string().is_empty());
}

/// Reads a file of either format, checking every invariant (see the module
/// documentation). Panics on a violation.
pub fn read(data: &[u8]) {
    let first = read_pass(data, false);
    let second = read_pass(data, true);
    assert_eq!(first, second, "next and next_into disagree");
    if first.format == Some(Format::Native) {
        check_batches_against_bincode(data, &first.events);
    }
    round_trip(&first);
}

/// The reader decodes sample batches straight from a frame's bytes; bincode
/// plus [`EncodedBatch::decode_into`] is the reference it must agree with.
fn check_batches_against_bincode(data: &[u8], events: &[Event]) {
    let Some((payloads, _)) = split_native(data) else {
        panic!("a native file without the native prefix");
    };
    // Event `i` is the `i`-th frame after the header that is not a listing
    // (variant 8: kept by the reader, not an event), and events stop at the
    // first bad frame.
    let frames: Vec<&Vec<u8>> = payloads
        .iter()
        .skip(1)
        .filter(|p| p.first() != Some(&LISTING_VARIANT))
        .collect();
    for (i, ev) in events.iter().enumerate() {
        let Event::Samples(samples) = ev else {
            continue;
        };
        let payload = frames[i];
        let config = bincode::config::standard().with_limit::<{ MAX_RECORD_LEN as usize }>();
        let decoded: Result<(Record, usize), _> =
            bincode::serde::decode_from_slice(payload, config);
        match decoded {
            Ok((Record::Samples(batch), used)) if used == payload.len() => {
                let mut v = Vec::new();
                batch
                    .decode_into(&mut v)
                    .unwrap_or_else(|e| panic!("reader accepted a batch bincode rejects: {e}"));
                assert_eq!(&v, samples, "fast path and bincode decode differently");
            }
            other => panic!("reader read samples bincode does not: {other:?}"),
        }
    }
}

/// Writes what was read with the library's encoder, reads it again: the
/// same events, and a clean end.
fn round_trip(o: &Outcome) {
    let Some(format) = o.format else { return };
    let nonempty = |ev: &&Event| !matches!(ev, Event::Samples(s) if s.is_empty());
    let large_id = o.events.iter().any(
        |ev| matches!(ev, Event::Samples(s) if s.iter().any(|s| s.interp >= ROUND_TRIP_MAX_INTERP)),
    );
    if large_id {
        return;
    }
    let mut file = Vec::new();
    {
        let mut enc = match (&o.header, format) {
            (Some(h), Format::Native) => Encoder::native(&mut file, h).expect("encode header"),
            _ => Encoder::pulley(&mut file),
        };
        for ev in o.events.iter().filter(nonempty) {
            let record = match ev.clone() {
                Event::Samples(s) => {
                    enc.write_samples(&s).expect("encode samples");
                    continue;
                }
                Event::Function(f) => Record::Function(f),
                Event::Unload(u) => Record::Unload(u),
                Event::Interpreter(i) => Record::Interpreter(i),
                Event::Retired(r) => Record::Retired(r),
                Event::Rate(r) => Record::Rate(r),
                Event::Summary(s) => Record::Summary(s),
                Event::Sampling(s) => Record::Sampling(s),
                Event::Stacks(n) => Record::Stacks(StacksRecord::encode(&n)),
            };
            enc.write(&record).expect("encode record");
        }
    }
    if file.is_empty() {
        // A Pulley file with no section: no bytes, which is not a profile.
        assert!(o.events.iter().all(|ev| !nonempty(&ev)));
        return;
    }
    let again = read_pass(&file, false);
    assert_eq!(
        again.end,
        Ok(file.len() as u64),
        "re-encoded file reads cleanly"
    );
    assert_eq!(again.header, o.header);
    let a: Vec<&Event> = again.events.iter().filter(nonempty).collect();
    let b: Vec<&Event> = o.events.iter().filter(nonempty).collect();
    assert_eq!(a, b, "events change through a write and a read");
}

/// Loads a file of either format with `analysis::load_bytes`, checking the
/// aggregate. Panics on a violation.
pub fn load(data: &[u8]) {
    let len = data.len() as u64;
    let options = LoadOptions::default();
    let mut last_progress = 0;
    let p = match load_bytes(data, &options, |n| {
        assert!(n >= last_progress && n <= len, "progress {n} of {len}");
        last_progress = n;
    }) {
        Ok(p) => p,
        Err(e) => {
            assert!(ProfileReader::new(data).is_err(), "load failed: {e}");
            return;
        }
    };
    check_profile(&p, len, &options);
    let interp_total: u64 = p.interpreters.iter().map(|i| i.samples).sum();
    assert_eq!(interp_total, p.total_samples);

    // Filtered to one interpreter: exactly its samples (an id may have
    // several records; its samples count to the latest).
    if let Some(id) = p.interpreters.first().map(|i| i.id) {
        let options = LoadOptions {
            interp: Some(id),
            timeline_buckets: 7,
            ..LoadOptions::default()
        };
        let q = load_bytes(data, &options, |_| {}).expect("loaded once already");
        check_profile(&q, len, &options);
        let want: u64 = if p.format == Format::Pulley && id != 0 {
            0
        } else {
            p.interpreters
                .iter()
                .filter(|i| i.id == id)
                .map(|i| i.samples)
                .sum()
        };
        assert_eq!(q.total_samples, want);
        assert_eq!(q.read_error, p.read_error);
    }
}

fn check_profile(p: &Profile, len: u64, options: &LoadOptions) {
    assert_eq!(p.file_bytes, len);
    let mut in_functions = 0u64;
    for f in &p.functions {
        assert!(f.hits.iter().all(|(o, _)| u64::from(o) < f.code_len));
        assert_eq!(f.samples, f.hits.total());
        assert!(
            f.samples == 0 || f.has_code(),
            "a sampled function keeps its code"
        );
        in_functions += f.samples;
    }
    assert_eq!(in_functions + p.unresolved, p.total_samples);
    let in_timeline: u64 = p.timeline.total();
    assert_eq!(in_timeline, p.total_samples, "timeline loses samples");
    assert!(p.timeline.len() <= options.timeline_buckets.max(2));
    if let Some((lo, hi)) = p.time_range {
        assert!(lo <= hi);
    }
    assert_eq!(p.read_error.is_some(), p.read_error_offset.is_some());
    assert!(p.read_error_offset.is_none_or(|o| o <= len));
}

/// A cursor that turns fuzzer bytes into values; zeros once exhausted.
#[derive(Debug)]
pub struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Gen<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Gen<'a> {
        Gen { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn le(&mut self, n: usize) -> u64 {
        (0..n).fold(0, |v, i| v | u64::from(self.byte()) << (8 * i))
    }

    /// A value below `n` (0 if `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.le(4) % n }
    }

    /// Mostly small numbers, some at bincode's varint boundaries, some any.
    fn num(&mut self) -> u64 {
        const EDGES: [u64; 12] = [
            0,
            1,
            250,
            251,
            u16::MAX as u64,
            1 << 16,
            u32::MAX as u64,
            1 << 32,
            1 << 24,
            i64::MAX as u64,
            1 << 63,
            u64::MAX,
        ];
        match self.byte() % 4 {
            0 => u64::from(self.byte()),
            1 => self.le(2),
            2 => self.le(8),
            _ => EDGES[self.byte() as usize % EDGES.len()],
        }
    }

    fn one_in(&mut self, n: u8) -> bool {
        self.byte().is_multiple_of(n)
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.byte()).collect()
    }

    fn string(&mut self, max: u64) -> String {
        String::from_utf8_lossy(&self.bytes(max)).into_owned()
    }

    fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// Builds records from `g` and encodes them: the file, and the events a
/// reader must return for it.
pub fn generate(g: &mut Gen) -> (Vec<u8>, Vec<Event>) {
    let native = !g.one_in(4);
    let header = FileHeader {
        pcprof_version: g.string(8),
        pid: g.num() as u32,
        started_unix_ns: g.num(),
        frequency_hz: g.num() as u32,
        flush_samples: g.num() as u32,
        clock: g.string(8),
    };
    let mut file = Vec::new();
    let mut expect = Vec::new();
    {
        let mut enc = if native {
            Encoder::native(&mut file, &header).expect("encode header")
        } else {
            Encoder::pulley(&mut file)
        };
        // A few addresses so that samples land in functions.
        let base = |g: &mut Gen| 0x1000 * g.below(4);
        let mut time = g.num();
        for _ in 0..g.below(24) {
            if g.exhausted() {
                break;
            }
            let record = match g.byte() % 8 {
                0 | 1 => {
                    let addr = if g.one_in(8) { g.num() } else { base(g) };
                    let code = g.bytes(64);
                    Record::Function(FunctionRecord {
                        addr,
                        name: g.string(12),
                        listing: native.then(|| listing_for(&code)).flatten(),
                        code,
                        loaded_ns: if native { g.num() } else { 0 },
                    })
                }
                2 | 3 => {
                    let mut samples = Vec::new();
                    let step = g.num();
                    for _ in 0..g.below(48) {
                        time = match g.byte() % 4 {
                            0 => time,
                            1 | 2 => time.wrapping_add(step),
                            _ => g.num(),
                        };
                        let interp = match g.byte() % 8 {
                            0 => g.below(u64::from(ROUND_TRIP_MAX_INTERP)) as u32,
                            _ => g.below(4) as u32,
                        };
                        let pc = if g.one_in(8) {
                            g.num()
                        } else {
                            base(g) + g.below(72)
                        };
                        samples.push(if native {
                            Sample {
                                time_ns: time,
                                interp,
                                pc,
                                stack: 0,
                            }
                        } else {
                            Sample {
                                time_ns: 0,
                                interp: 0,
                                pc,
                                stack: 0,
                            }
                        });
                    }
                    if g.one_in(16) {
                        // An empty batch, as bincode writes it.
                        Record::Samples(EncodedBatch::default())
                    } else {
                        Record::Samples(EncodedBatch::encode(&samples))
                    }
                }
                4 => Record::Interpreter(InterpreterRecord {
                    id: g.num() as u32,
                    label: g.one_in(2).then(|| g.string(8)),
                    registered_ns: g.num(),
                }),
                5 => Record::Retired(RetiredRecord {
                    id: g.num() as u32,
                    retired_ns: g.num(),
                }),
                6 => match g.byte() % 3 {
                    0 => Record::Unload(UnloadRecord {
                        addr: base(g),
                        unloaded_ns: g.num(),
                    }),
                    1 if native => Record::Sampling(SamplingRecord {
                        mode: if g.one_in(2) {
                            SamplingMode::Periodic
                        } else {
                            SamplingMode::Randomized
                        },
                        frequency_hz: g.num() as u32,
                    }),
                    _ => Record::Rate(RateRecord {
                        time_ns: g.num(),
                        frequency_hz: g.num() as u32,
                    }),
                },
                _ => Record::Summary(Summary {
                    stopped_ns: g.num(),
                    stats: Stats {
                        samples_written: g.num(),
                        elapsed_ns: g.num(),
                        ..Stats::default()
                    },
                }),
            };
            let event = match &record {
                Record::Samples(b) => {
                    let mut v = Vec::new();
                    b.decode_into(&mut v).expect("an encoded batch decodes");
                    Some(Event::Samples(v))
                }
                Record::Function(f) => Some(Event::Function(f.clone())),
                _ if !native => None,
                Record::Unload(u) => Some(Event::Unload(*u)),
                Record::Interpreter(i) => Some(Event::Interpreter(i.clone())),
                Record::Retired(r) => Some(Event::Retired(*r)),
                Record::Rate(r) => Some(Event::Rate(*r)),
                Record::Summary(s) => Some(Event::Summary(s.clone())),
                Record::Sampling(s) => Some(Event::Sampling(*s)),
                Record::Batch(b) => {
                    let mut v = Vec::new();
                    b.decode_into(&mut v, u32::MAX)
                        .expect("an encoded batch decodes");
                    Some(Event::Samples(v))
                }
                Record::Stacks(r) => {
                    let mut v = Vec::new();
                    r.decode_into(&mut v)
                        .expect("an encoded stacks record decodes");
                    Some(Event::Stacks(v))
                }
                // Kept by the reader (`push_record`), not an event.
                Record::Header(_) | Record::Listing(_) | Record::Push(_) => None,
            };
            let written = enc.write(&record).expect("encode record");
            // Pulley has no empty batch: nothing is written for one.
            if written > 0
                && let Some(ev) = event
            {
                expect.push(ev);
            }
        }
    }
    (file, expect)
}

/// Generates a valid file from the input, checks it reads back exactly, then
/// damages it and checks [`read`] and [`load`] on the result.
pub fn structured(data: &[u8]) {
    let mut g = Gen::new(data);
    let (mut file, expect) = generate(&mut g);
    if file.is_empty() {
        // A Pulley file with no section: no bytes, which is not a profile.
        assert!(expect.is_empty());
        assert!(ProfileReader::new(&file[..]).is_err());
        return;
    }
    let o = read_pass(&file, false);
    assert_eq!(o.end, Ok(file.len() as u64), "a valid file reads cleanly");
    assert_eq!(
        o.events, expect,
        "records change through a write and a read"
    );
    read(&file);
    load(&file);
    let written: u64 = expect
        .iter()
        .map(|e| match e {
            Event::Samples(s) => s.len() as u64,
            _ => 0,
        })
        .sum();
    let p = load_bytes(&file, &LoadOptions::default(), |_| {}).expect("a valid file loads");
    assert_eq!(p.total_samples, written);
    assert!(p.read_error.is_none());

    match g.byte() % 4 {
        0 => {
            // A cut anywhere: a prefix of the events, then a clean end
            // (at a record boundary) or a truncation.
            let cut = g.below(file.len() as u64 + 1) as usize;
            file.truncate(cut);
            let o = read_pass(&file, false);
            // All but the last event are whole records; the last may be
            // the samples read whole of a torn Pulley section.
            let whole = o.events.len().saturating_sub(1);
            assert!(
                expect.starts_with(&o.events[..whole]),
                "a cut file reads other events"
            );
            if let Some(last) = o.events.last() {
                let ok = match (last, expect.get(whole)) {
                    (a, Some(b)) if a == b => true,
                    (Event::Samples(a), Some(Event::Samples(b))) => {
                        o.end.is_err() && b.starts_with(a)
                    }
                    _ => false,
                };
                assert!(ok, "a cut file reads other events");
            }
            if o.end.is_err() {
                let e = ProfileReader::new(&file[..])
                    .and_then(|r| r.filter_map(Result::err).next().map_or(Ok(()), Err));
                let e = e.expect_err("the error comes back");
                assert!(
                    e.is_truncation() || (cut == 0 && matches!(e.kind(), ReadErrorKind::Empty)),
                    "a cut reads as {e}"
                );
            }
        }
        1 => {
            // A byte changed inside a frame, its CRC recomputed: reaches the
            // decoders.
            if let Some((mut payloads, tail)) = split_native(&file)
                && !payloads.is_empty()
            {
                let i = g.below(payloads.len() as u64) as usize;
                let p = &mut payloads[i];
                if !p.is_empty() {
                    let at = g.below(p.len() as u64) as usize;
                    p[at] = g.byte();
                }
                file = join_native(&file[..PREFIX], &payloads, &tail);
            }
        }
        2 => {
            if !file.is_empty() {
                let at = g.below(file.len() as u64) as usize;
                file[at] ^= g.byte() | 1;
            }
        }
        _ => return,
    }
    read(&file);
    load(&file);
}

/// A native file's frame payloads (CRCs unchecked) and the bytes after the
/// last whole frame; `None` without the native prefix.
pub fn split_native(data: &[u8]) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    if data.len() < PREFIX || data[..8] != pcprof::format::MAGIC {
        return None;
    }
    let mut payloads = Vec::new();
    let mut pos = PREFIX;
    while let Some(head) = data.get(pos..pos + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(payload) = data.get(pos + 8..).and_then(|d| d.get(..len)) else {
            break;
        };
        payloads.push(payload.to_vec());
        pos += 8 + len;
    }
    Some((payloads, data[pos..].to_vec()))
}

/// Frames `payloads` (lengths and CRCs computed) after `prefix`, then `tail`.
pub fn join_native(prefix: &[u8], payloads: &[Vec<u8>], tail: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32(p).to_le_bytes());
        out.extend_from_slice(p);
    }
    out.extend_from_slice(tail);
    out
}

/// CRC-32 (IEEE), as the format's `crc32fast` computes it; bitwise: fuzz
/// inputs are small, and the test suite need not depend on `crc32fast`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A section of a Pulley file.
#[derive(Debug, Clone)]
enum Section {
    Function {
        addr: u64,
        name: Vec<u8>,
        body: Vec<u8>,
    },
    Samples(Vec<u8>),
}

/// A Pulley file's whole sections and the bytes after them.
fn split_pulley(data: &[u8]) -> (Vec<Section>, Vec<u8>) {
    let mut sections = Vec::new();
    let mut pos = 0;
    let u32_at = |p: usize| -> Option<usize> {
        let b = data.get(p..p + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    loop {
        let parsed = (|| match data.get(pos)? {
            1 => {
                let a = data.get(pos + 1..pos + 9)?;
                let addr = u64::from_le_bytes(a.try_into().ok()?);
                let nl = u32_at(pos + 9)?;
                let name = data.get(pos + 13..)?.get(..nl)?.to_vec();
                let bl = u32_at(pos + 13 + nl)?;
                let body = data.get(pos + 17 + nl..)?.get(..bl)?.to_vec();
                Some((Section::Function { addr, name, body }, 17 + nl + bl))
            }
            2 => {
                let n = u32_at(pos + 1)?.checked_mul(8)?;
                let pcs = data.get(pos + 5..)?.get(..n)?.to_vec();
                Some((Section::Samples(pcs), 5 + n))
            }
            _ => None,
        })();
        match parsed {
            Some((s, used)) => {
                sections.push(s);
                pos += used;
            }
            None => break,
        }
    }
    (sections, data[pos..].to_vec())
}

fn join_pulley(sections: &[Section], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in sections {
        match s {
            Section::Function { addr, name, body } => {
                out.push(1);
                out.extend_from_slice(&addr.to_le_bytes());
                out.extend_from_slice(&(name.len() as u32).to_le_bytes());
                out.extend_from_slice(name);
                out.extend_from_slice(&(body.len() as u32).to_le_bytes());
                out.extend_from_slice(body);
            }
            Section::Samples(pcs) => {
                let n = pcs.len() / 8;
                out.push(2);
                out.extend_from_slice(&(n as u32).to_le_bytes());
                out.extend_from_slice(&pcs[..n * 8]);
            }
        }
    }
    out.extend_from_slice(tail);
    out
}

/// A mutation of the bytes in a buffer, at most `max` long (libFuzzer's own
/// mutator in the targets).
pub type ByteMutator<'a> = dyn FnMut(&mut Vec<u8>, usize) + 'a;

/// The targets' mutator: mostly mutates inside one native frame or Pulley
/// section and frames it again (lengths and CRC recomputed); sometimes
/// duplicates, drops or swaps whole records; sometimes mutates the raw
/// bytes, to reach the framing's own checks. Keeps `data` within `max`.
pub fn mutate(data: &mut Vec<u8>, max: usize, seed: u32, bytes: &mut ByteMutator) {
    let pick = seed % 16;
    let mut r = seed >> 4;
    let mut below = |n: usize| {
        let v = r as usize % n.max(1);
        r = r.rotate_right(7) ^ 0x9e37_79b9;
        v
    };
    // Room each payload may grow into, keeping the whole within `max`.
    let room = max.saturating_sub(data.len()).max(1);
    if let Some((mut payloads, tail)) = split_native(data)
        && !payloads.is_empty()
        && pick < 15
    {
        let n = payloads.len();
        let i = below(n);
        match pick {
            0..=10 => {
                let p = &mut payloads[i];
                let limit = p.len() + room;
                bytes(p, limit);
            }
            11 => {
                let p = payloads[i].clone();
                payloads.insert(below(n + 1), p);
            }
            12 => {
                payloads.remove(i);
            }
            13 => payloads.swap(i, below(n)),
            _ => {
                // A mutated copy inserted: the original stays valid, so
                // the reader reaches the copy.
                let mut raw = payloads[i].clone();
                let limit = raw.len() + room;
                bytes(&mut raw, limit);
                payloads.insert(below(n + 1), raw);
            }
        }
        *data = join_native(&data[..PREFIX], &payloads, &tail);
    } else if data.first().is_some_and(|&b| b == 1 || b == 2) && pick < 14 {
        let (mut sections, tail) = split_pulley(data);
        if sections.is_empty() {
            bytes(data, max);
        } else {
            let n = sections.len();
            let i = below(n);
            match (pick, &mut sections[i]) {
                (0..=3, Section::Function { name, .. }) => {
                    let limit = name.len() + room;
                    bytes(name, limit)
                }
                (4..=7, Section::Function { body, .. }) => {
                    let limit = body.len() + room;
                    bytes(body, limit)
                }
                (0..=9, Section::Function { addr, .. }) => {
                    let mut a = addr.to_le_bytes().to_vec();
                    bytes(&mut a, 8);
                    a.resize(8, 0);
                    *addr = u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
                }
                (0..=9, Section::Samples(pcs)) => {
                    let limit = pcs.len() + room;
                    bytes(pcs, limit)
                }
                (10 | 11, _) => {
                    let s = sections[i].clone();
                    sections.insert(below(n + 1), s);
                }
                (12, _) => {
                    sections.remove(i);
                }
                _ => sections.swap(i, below(n)),
            }
            *data = join_pulley(&sections, &tail);
        }
    } else {
        bytes(data, max);
    }
    data.truncate(max);
}

/// [`mutate`] in the shape of libFuzzer's custom-mutator callback, around
/// its byte mutator `bytes(buf, size, max_size) -> new_size`.
pub fn mutate_in_place(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    bytes: fn(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut v = data[..size].to_vec();
    let mut byte_mutator = |buf: &mut Vec<u8>, max: usize| {
        let n = buf.len();
        let max = max.max(n).max(1);
        buf.resize(max, 0);
        let k = bytes(buf, n, max);
        buf.truncate(k);
    };
    mutate(&mut v, max_size, seed, &mut byte_mutator);
    let n = v.len().min(max_size).min(data.len());
    data[..n].copy_from_slice(&v[..n]);
    n
}
