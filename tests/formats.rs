//! Both file formats: round trips, byte-for-byte compatibility with Pulley's
//! own recorder, and files cut or damaged anywhere.

use std::sync::Arc;
use std::time::Duration;

use pcprof::format::{
    EncodedBatch, Encoder, FileHeader, FunctionRecord, InterpreterRecord, ReadErrorKind, Record,
};
use pcprof::{Format, ProfileReader, Profiler, Sample, SamplingMode, VirtualClock};
use proptest::prelude::*;

use crate::common::{TempDir, read_all};

/// Records 3 interpreters over 12 ticks with flushes every 5 samples.
fn record(dir: &TempDir, name: &str, format: Format) -> (Vec<u8>, Vec<Vec<u8>>, Vec<Sample>) {
    let clock = VirtualClock::new();
    let mut p = Profiler::builder()
        .frequency(1000)
        // Ticks at whole milliseconds: the test pins their times.
        .sampling(SamplingMode::Periodic)
        .flush_every(5)
        // Virtual time can outrun the writer; enough buffers keep every
        // batch (the drop path has its own test).
        .buffers(64)
        .output(dir.path(name))
        .format(format)
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    let codes: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8; 40 + i]).collect();
    for (i, c) in codes.iter().enumerate() {
        p.register_function(&format!("func{i}"), c).unwrap();
    }
    let hs: Vec<_> = (0..3)
        .map(|i| p.new_interpreter(Some(&format!("t{i}"))).unwrap())
        .collect();
    let mut expect = Vec::new();
    for tick in 1..=12u64 {
        for (i, h) in hs.iter().enumerate() {
            let off = (tick as usize * 7 + i * 3) % codes[i].len();
            h.set_ptr(&codes[i][off]);
        }
        p.sync().unwrap();
        clock.advance(Duration::from_millis(1));
        for (i, _) in hs.iter().enumerate() {
            let off = (tick as usize * 7 + i * 3) % codes[i].len();
            expect.push(Sample {
                time_ns: tick * 1_000_000,
                interp: i as u32,
                pc: codes[i].as_ptr() as u64 + off as u64,
                stack: 0,
            });
        }
    }
    let s = p.stop().unwrap();
    assert_eq!(s.samples_written, 36);
    (std::fs::read(dir.path(name)).unwrap(), codes, expect)
}

#[test]
fn native_round_trip() {
    let dir = TempDir::new("native");
    let (bytes, codes, expect) = record(&dir, "p.data", Format::Native);
    let r = ProfileReader::new(&bytes[..]).unwrap();
    assert_eq!(r.format(), Format::Native);
    let h = r.header().unwrap();
    assert_eq!(
        (h.frequency_hz, h.flush_samples, h.clock.as_str()),
        (1000, 5, "virtual")
    );
    let c = read_all(&bytes).unwrap();
    assert!(c.error.is_none());
    assert_eq!(c.samples, expect);
    assert_eq!(c.functions.len(), 3);
    for (f, code) in c.functions.iter().zip(&codes) {
        assert_eq!(f.code, *code);
        assert_eq!(f.addr, code.as_ptr() as u64);
    }
    let labels: Vec<_> = c
        .interpreters
        .iter()
        .map(|i| i.label.clone().unwrap())
        .collect();
    assert_eq!(labels, ["t0", "t1", "t2"]);
    assert_eq!(c.summary.unwrap().stats.samples_written, 36);
    assert_eq!(*c.order.last().unwrap(), "summary");
    // A batch is handed over at the end of the tick that fills it (ticks
    // are not split): 3 samples a tick, flush 5, so 6 samples a batch.
    assert_eq!(c.batches, 6);
    // About 4 bytes a sample on average, with time and interpreter.
    let sample_bytes: usize = bytes.len();
    assert!(sample_bytes < 36 * 6 + 600, "{sample_bytes}");
}

#[test]
fn pulley_format_is_byte_for_byte_pulleys_own() {
    let dir = TempDir::new("pulley");
    let (bytes, codes, expect) = record(&dir, "p.data", Format::Pulley);

    // The same profile written by Pulley's own Recorder.
    let theirs = dir.path("theirs.data");
    let mut rec = pulley_interpreter::profile::Recorder::new(theirs.to_str().unwrap()).unwrap();
    for (i, c) in codes.iter().enumerate() {
        rec.add_function(&format!("func{i}"), c).unwrap();
    }
    for chunk in expect.chunks(6) {
        let mut s = pulley_interpreter::profile::Samples::default();
        for x in chunk {
            s.append(x.pc as usize);
        }
        rec.add_samples(&mut s).unwrap();
    }
    rec.flush().unwrap();
    drop(rec);
    assert_eq!(bytes, std::fs::read(&theirs).unwrap());

    // And Pulley's decoder reads ours.
    let mut funcs = Vec::new();
    let mut pcs = Vec::new();
    for ev in pulley_interpreter::profile::decode(&bytes) {
        match ev.unwrap() {
            pulley_interpreter::profile::Event::Function(addr, name, body) => {
                funcs.push((addr, name.to_string(), body.to_vec()))
            }
            pulley_interpreter::profile::Event::Samples(s) => pcs.extend(s.iter().map(|p| p.0)),
        }
    }
    assert_eq!(funcs.len(), 3);
    assert_eq!(
        funcs[1],
        (
            codes[1].as_ptr() as u64,
            "func1".to_string(),
            codes[1].clone()
        )
    );
    assert_eq!(pcs, expect.iter().map(|s| s.pc).collect::<Vec<_>>());

    // Our reader tells the format apart by content.
    let c = read_all(&bytes).unwrap();
    assert_eq!(
        ProfileReader::new(&bytes[..]).unwrap().format(),
        Format::Pulley
    );
    assert_eq!(c.samples.iter().map(|s| s.pc).collect::<Vec<_>>(), pcs);
}

/// Record boundaries of a file: the offset after each complete record.
fn boundaries(bytes: &[u8]) -> Vec<u64> {
    let mut r = ProfileReader::new(bytes).unwrap();
    let mut b = vec![r.offset()];
    while let Some(ev) = r.next() {
        ev.unwrap();
        b.push(r.offset());
    }
    b
}

fn check_every_cut(bytes: &[u8], first_cut: usize) {
    let full = read_all(bytes).unwrap();
    let ends = boundaries(bytes);
    for cut in first_cut..bytes.len() {
        let part = &bytes[..cut];
        let c = match read_all(part) {
            Ok(c) => c,
            // Cut inside the native magic/header: an error at the start.
            Err(e) => {
                assert!(cut < ends[0] as usize, "cut {cut}: {e}");
                continue;
            }
        };
        // Complete records are all there, in order; of a Pulley samples
        // section cut short, the samples read whole count too (one more
        // batch).
        let complete = ends.iter().filter(|&&e| e as usize <= cut).count() - 1;
        let pulley = ProfileReader::new(bytes).unwrap().format() == Format::Pulley;
        let partial = if pulley && full.order.get(complete) == Some(&"samples") {
            ((cut as u64 - ends[complete]).saturating_sub(5) / 8) as usize
        } else {
            0
        };
        assert_eq!(
            c.order.len(),
            complete + usize::from(partial > 0),
            "cut at {cut}"
        );
        assert_eq!(c.order[..complete], full.order[..complete]);
        let before = match ends[complete] {
            0 => 0,
            end => read_all(&bytes[..end as usize]).unwrap().samples.len(),
        };
        assert_eq!(c.samples.len(), before + partial, "cut at {cut}");
        assert_eq!(c.samples[..], full.samples[..c.samples.len()]);
        if ends.contains(&(cut as u64)) {
            assert!(c.error.is_none(), "cut at a boundary {cut}");
        } else {
            let e = c.error.unwrap_or_else(|| panic!("cut at {cut}: no error"));
            assert!(e.is_truncation(), "cut at {cut}: {e}");
            assert_eq!(e.offset(), ends[complete], "cut at {cut}");
            assert!(
                e.to_string().contains(&format!("byte {}", ends[complete])),
                "{e}"
            );
        }
    }
}

#[test]
fn native_file_cut_anywhere_keeps_complete_records() {
    let dir = TempDir::new("cutn");
    let (bytes, _, _) = record(&dir, "p.data", Format::Native);
    check_every_cut(&bytes, 0);
}

#[test]
fn pulley_file_cut_anywhere_keeps_complete_records() {
    let dir = TempDir::new("cutp");
    let (bytes, _, _) = record(&dir, "p.data", Format::Pulley);
    check_every_cut(&bytes, 1);
}

#[test]
fn corrupt_bytes_are_reported_with_their_offset() {
    let dir = TempDir::new("corrupt");
    let (bytes, _, _) = record(&dir, "p.data", Format::Native);
    let ends = boundaries(&bytes);
    // Flip one byte in the payload of the fourth record.
    let at = ends[3] as usize + 10;
    let mut bad = bytes.clone();
    bad[at] ^= 0x40;
    let c = read_all(&bad).unwrap();
    let e = c.error.unwrap();
    assert!(matches!(e.kind(), ReadErrorKind::Checksum { .. }), "{e}");
    assert_eq!(e.offset(), ends[3]);
    assert_eq!(c.order.len(), 3);

    // A huge length field is refused, not allocated.
    let mut bad = bytes.clone();
    bad[ends[2] as usize..ends[2] as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_all(&bad).unwrap().error.unwrap();
    assert!(matches!(e.kind(), ReadErrorKind::TooLarge { .. }), "{e}");

    // Not a profile at all, and empty.
    assert!(matches!(
        ProfileReader::new(&b"hello"[..]).unwrap_err().kind(),
        ReadErrorKind::UnknownFormat { .. }
    ));
    assert!(matches!(
        ProfileReader::new(&b""[..]).unwrap_err().kind(),
        ReadErrorKind::Empty
    ));
    // A Pulley section with an unknown tag after a good one.
    let (pb, _, _) = record(&dir, "q.data", Format::Pulley);
    let mut bad = pb.clone();
    let pe = boundaries(&pb);
    bad[pe[1] as usize] = 9;
    let e = read_all(&bad).unwrap().error.unwrap();
    assert!(
        matches!(e.kind(), ReadErrorKind::UnknownTag { tag: 9 }),
        "{e}"
    );
    assert_eq!(e.offset(), pe[1]);
    // A version from the future.
    let mut bad = bytes.clone();
    bad[8] = 99;
    assert!(matches!(
        ProfileReader::new(&bad[..]).unwrap_err().kind(),
        ReadErrorKind::UnsupportedVersion { version: 99 }
    ));
}

/// Interpreter ids are valid up to 2^24; coding a batch once zeroed a table
/// of 8 × id bytes (128 MiB here) per batch, on both sides: seconds for a
/// small file. (The bound on that table is asserted in `format::batch`'s
/// unit tests; this checks the values, through the writer's encoder too.)
#[test]
fn large_interpreter_ids_round_trip() {
    let batch = EncodedBatch {
        counts: vec![2],
        interps: vec![1 << 24, (1 << 24) - 1],
        pc_deltas: vec![2, 4],
        ..EncodedBatch::default()
    };
    let mut file = Vec::new();
    let mut enc = Encoder::native(&mut file, &header()).unwrap();
    for _ in 0..200 {
        enc.write(&Record::Samples(batch.clone())).unwrap();
    }
    drop(enc);
    let c = read_all(&file).unwrap();
    assert!(c.error.is_none());
    assert_eq!(c.samples.len(), 400);
    assert_eq!((c.samples[0].interp, c.samples[0].pc), (1 << 24, 1));
    assert_eq!(c.samples[1].pc, 2);
    // The writer's side: the samples encode back to the same batch.
    assert_eq!(EncodedBatch::encode(&c.samples[..2]), batch);
}

fn header() -> FileHeader {
    FileHeader {
        pcprof_version: "test".into(),
        ..crate::common::header()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any time-ordered samples survive the compact batch encoding.
    #[test]
    fn batch_encoding_round_trips(
        raw in proptest::collection::vec((0u64..5, 0u32..40, any::<u64>()), 0..300)
    ) {
        let mut t = 0;
        let samples: Vec<Sample> = raw
            .into_iter()
            .map(|(dt, interp, pc)| {
                t += dt * 1000;
                Sample { time_ns: t, interp, pc, stack: 0 }
            })
            .collect();
        let mut file = Vec::new();
        let mut enc = Encoder::native(&mut file, &header()).unwrap();
        enc.write(&Record::Interpreter(InterpreterRecord { id: 0, label: None, registered_ns: 0 })).unwrap();
        enc.write(&Record::Function(FunctionRecord { addr: 0, name: "f".into(), code: vec![1, 2], loaded_ns: 0, listing: None })).unwrap();
        enc.write_samples(&samples).unwrap();
        drop(enc);
        let c = read_all(&file).unwrap();
        prop_assert!(c.error.is_none());
        prop_assert_eq!(c.samples, samples);
    }
}

/// A file written by an earlier build (`pcprof demo --seconds 4`, native
/// format version 1, before the summary got its own record type) still
/// reads back whole: the format's layout has not moved.
#[test]
fn a_version_1_file_of_an_earlier_build_still_reads() {
    let bytes = include_bytes!("fixtures/native-v1-demo.data");
    let c = read_all(bytes).unwrap();
    assert!(c.error.is_none(), "{:?}", c.error);
    assert_eq!(c.samples.len(), 7866);
    assert_eq!(c.interpreters.len(), 2);
    assert_eq!(c.functions.len(), 7);
    let summary = c.summary.expect("the run stopped cleanly");
    assert_eq!(summary.stats.samples_written, 7866);
    assert_eq!(summary.stats.frequency_hz, 1000);
    assert_eq!(summary.stats.ticks_missed, 76);
    assert_eq!(summary.stats.errors, 0);
}

/// An embedder who records into its own sink reports from the bytes it
/// received, through any `Read`, with no temporary file.
#[test]
fn a_profile_loads_from_any_reader() {
    let clock = VirtualClock::new();
    let sink = crate::common::MemorySink::default();
    let mut p = Profiler::builder()
        .output_writer(sink.clone())
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    let code = vec![0u8; 8];
    p.register_function("f", &code).unwrap();
    let pc = p.new_interpreter(Some("main")).unwrap();
    pc.set_ptr(&code[3]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(7));
    p.stop().unwrap();
    let bytes = sink.bytes();
    let profile =
        pcprof::analysis::load_reader(std::io::Cursor::new(&bytes), &Default::default(), |_| {})
            .unwrap();
    assert_eq!(profile.total_samples, 7);
    assert_eq!(profile.file_bytes, bytes.len() as u64);
    assert_eq!(profile.path, std::path::Path::new("<memory>"));
    let f = &profile.functions[0];
    assert_eq!((f.name.as_str(), f.samples, f.hits.get(3)), ("f", 7, 7));
    assert!(profile.summary.is_some());
}

/// bincode charges a decoded `u64` 8 bytes against its limit however short
/// its varint: a record whose payload sits just under a decode tier (4 KiB
/// here) used to be refused as `LimitExceeded`. A function of 4 070 bytes
/// of code, and a batch of 65 536 one-sample ticks (as `convert --to native`
/// writes a Pulley file), both read back.
#[test]
fn records_just_under_a_decode_tier_read_back() {
    let mut e = pcprof::format::Encoder::native(Vec::new(), &crate::common::header()).unwrap();
    e.write(&pcprof::format::Record::Function(
        pcprof::format::FunctionRecord {
            addr: 0x1000,
            name: "f".into(),
            code: vec![7; 4070],
            loaded_ns: 0,
            listing: None,
        },
    ))
    .unwrap();
    let samples: Vec<Sample> = (0..65_536u64)
        .map(|k| Sample {
            time_ns: k * 1_000_000,
            interp: 0,
            pc: 0x1000 + k % 4070,
            stack: 0,
        })
        .collect();
    e.write_samples(&samples).unwrap();
    let c = read_all(&e.into_inner()).unwrap();
    assert!(c.error.is_none(), "{:?}", c.error);
    assert_eq!(c.functions.len(), 1);
    assert_eq!(c.samples, samples);
}

#[test]
fn pulley_code_past_the_budget_streams_past_checksummed() {
    let dir = TempDir::new("skip");
    let (bytes, _, _) = record(&dir, "p.data", Format::Pulley);
    let mut kept = ProfileReader::new(&bytes[..]).unwrap();
    let mut skipping = ProfileReader::new(&bytes[..]).unwrap();
    skipping.keep_code_up_to(0);
    let mut functions = 0;
    while let Some(ev) = kept.next() {
        let (ev, other) = (ev.unwrap(), skipping.next().unwrap().unwrap());
        assert_eq!(kept.offset(), skipping.offset());
        match (ev, other) {
            (pcprof::Event::Function(f), pcprof::Event::Function(g)) => {
                functions += 1;
                assert_eq!((f.addr, &f.name), (g.addr, &g.name));
                assert!(g.code.is_empty() && !f.code.is_empty());
                assert_eq!(kept.skipped_code(), None);
                let s = skipping.skipped_code().unwrap();
                assert_eq!(Some(s.offset), kept.function_code_offset());
                assert_eq!(
                    (s.len, s.crc),
                    (f.code.len() as u64, crc32fast::hash(&f.code))
                );
                let at = s.offset as usize;
                assert_eq!(&bytes[at..at + f.code.len()], &f.code[..]);
            }
            (pcprof::Event::Samples(_), pcprof::Event::Samples(_)) => {}
            (a, b) => panic!("{a:?} against {b:?}"),
        }
    }
    assert!(skipping.next().is_none());
    assert!(functions > 0);
    // Cut inside skipped code: a truncation at the function's record.
    let first_code = {
        let mut r = ProfileReader::new(&bytes[..]).unwrap();
        r.keep_code_up_to(0);
        loop {
            if let pcprof::Event::Function(_) = r.next().unwrap().unwrap() {
                break r.skipped_code().unwrap();
            }
        }
    };
    let cut = &bytes[..first_code.offset as usize + first_code.len as usize - 1];
    let mut r = ProfileReader::new(cut).unwrap();
    r.keep_code_up_to(0);
    let e = loop {
        match r.next() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("no error for a cut inside skipped code"),
        }
    };
    assert!(e.is_truncation(), "{e}");
    assert!(e.offset() < first_code.offset, "{e}");
}
