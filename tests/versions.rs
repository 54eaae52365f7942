//! Every native format version keeps loading: one small file of each in
//! `tests/fixtures/`, each loaded to exact figures.
//!
//! - `native-v1-demo.data`: written by an earlier build (`pcprof demo
//!   --seconds 4`), version 1.
//! - `native-v2-listing.data`: written by [`v2_fixture`], a deterministic
//!   generator (fixed header, the library's own encoder); regenerate it with
//!   `PCPROF_WRITE_FIXTURES=1 cargo test --test tests versions::` only when
//!   a new version is added, never to make a test pass.
//! - `native-v3-stacks.data`: written by [`v3_fixture`] the same way: call
//!   stacks (a recursion, a truncated stack, an interpreter without one)
//!   and compact batches.

use std::sync::Arc;

use pcprof::analysis::{LoadOptions, load_bytes};
use pcprof::disasm::{DecoderChoice, InstructionKind, decode_function};
use pcprof::format::{
    Encoder, FileHeader, FunctionRecord, InterpreterRecord, PushRecord, RateRecord, Record,
    SamplingMode, SamplingRecord, Summary, UnloadRecord,
};
use pcprof::isa::listing_of;
use pcprof::{ProfileReader, Sample, Stats};

use crate::isa::Tiny;

const V1: &[u8] = include_bytes!("fixtures/native-v1-demo.data");
const V2: &[u8] = include_bytes!("fixtures/native-v2-listing.data");
const V3: &[u8] = include_bytes!("fixtures/native-v3-stacks.data");

/// The version 2 fixture: a listing shared by a function and its reload at
/// the same address, a function without one, two interpreters, a sampling
/// record, a rate change and a summary.
fn v2_fixture() -> Vec<u8> {
    let header = FileHeader {
        pcprof_version: "fixture".into(),
        pid: 7,
        started_unix_ns: 1_700_000_000_000_000_000,
        frequency_hz: 1000,
        flush_samples: 100,
        clock: "virtual".into(),
    };
    // loop: inc; inc; br 0; ret  (offsets 0, 1, 2, 4)
    let looped = vec![1u8, 1, 2, 0, 3];
    let listing = listing_of(&Tiny::default(), &looped).map(Arc::new);
    let function = |name: &str, addr, code: &[u8], loaded_ns, listing| {
        Record::Function(FunctionRecord {
            addr,
            name: name.into(),
            code: code.to_vec(),
            loaded_ns,
            listing,
        })
    };
    let mut file = Vec::new();
    let mut e = Encoder::native_version(&mut file, &header, 2).unwrap();
    e.write(&Record::Sampling(SamplingRecord {
        mode: SamplingMode::Randomized,
        frequency_hz: 1000,
    }))
    .unwrap();
    for id in 0..2 {
        e.write(&Record::Interpreter(InterpreterRecord {
            id,
            label: Some(format!("interp-{id}")),
            registered_ns: 0,
        }))
        .unwrap();
    }
    e.write(&function("loop", 0x1000, &looped, 0, listing.clone()))
        .unwrap();
    e.write(&function("plain", 0x2000, &[9, 9, 9, 9, 9, 9], 0, None))
        .unwrap();
    let tick = |t: u64, interp, pc| Sample {
        time_ns: t * 1_000_000,
        interp,
        pc,
        stack: 0,
    };
    let mut samples = Vec::new();
    for t in 1..=10 {
        samples.push(tick(t, 0, 0x1000 + [0, 1, 2, 2, 4][t as usize % 5]));
        samples.push(tick(t, 1, 0x2000 + t % 3));
    }
    e.write_samples(&samples).unwrap();
    e.write(&Record::Unload(UnloadRecord {
        addr: 0x1000,
        unloaded_ns: 10_500_000,
    }))
    .unwrap();
    e.write(&function("loop", 0x1000, &looped, 10_500_000, listing))
        .unwrap();
    e.write(&Record::Rate(RateRecord {
        time_ns: 10_600_000,
        frequency_hz: 500,
    }))
    .unwrap();
    let later: Vec<Sample> = (0..4).map(|k| tick(12 + 2 * k, 0, 0x1002)).collect();
    e.write_samples(&later).unwrap();
    e.write(&Record::Summary(Summary {
        stopped_ns: 20_000_000,
        stats: Stats {
            frequency_hz: 500,
            elapsed_ns: 20_000_000,
            samples_taken: 24,
            samples_written: 24,
            ..Stats::default()
        },
    }))
    .unwrap();
    drop(e);
    // The encoder writes the current version; every record here is of
    // version 2, so the file is the version 2 fixture once it says so.
    file[8..10].copy_from_slice(&2u16.to_le_bytes());
    file
}

/// Regenerates the v2 fixture when asked (see the module docs); otherwise
/// checks that the generator still writes the committed bytes, so the
/// fixture stays what its figures below say.
#[test]
fn the_v2_fixture_is_what_its_generator_writes() {
    check_fixture(v2_fixture(), V2, "native-v2-listing.data");
}

/// Writes `bytes` over the fixture `name` when `PCPROF_WRITE_FIXTURES` is
/// set; else checks they are the committed ones.
fn check_fixture(bytes: Vec<u8>, committed: &[u8], name: &str) {
    if std::env::var_os("PCPROF_WRITE_FIXTURES").is_some() {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, &bytes).unwrap();
    }
    assert_eq!(
        bytes, committed,
        "the encoder no longer writes the fixture {name}"
    );
}

/// The version 3 fixture: `main` calls `f` at main+2, `f` calls `g` at
/// f+3, `g` calls itself at g+1. Interpreter 0 keeps a shadow stack and
/// cycles through four stacks (the fourth truncated below `main`),
/// interpreter 1 keeps none and sits at main+0; 12 ticks, 1 ms apart.
fn v3_fixture() -> Vec<u8> {
    let header = FileHeader {
        pcprof_version: "fixture".into(),
        pid: 7,
        started_unix_ns: 1_700_000_000_000_000_000,
        frequency_hz: 1000,
        flush_samples: 100,
        clock: "virtual".into(),
    };
    // inc; inc; inc; inc; ret  (offsets 0 to 4)
    let code = vec![1u8, 1, 1, 1, 3];
    let listing = listing_of(&Tiny::default(), &code).map(Arc::new);
    let mut file = Vec::new();
    let mut e = Encoder::native(&mut file, &header).unwrap();
    e.write(&Record::Sampling(SamplingRecord {
        mode: SamplingMode::Periodic,
        frequency_hz: 1000,
    }))
    .unwrap();
    for id in 0..2 {
        e.write(&Record::Interpreter(InterpreterRecord {
            id,
            label: Some(format!("interp-{id}")),
            registered_ns: 0,
        }))
        .unwrap();
    }
    for (name, addr) in [("main", 0x1000), ("f", 0x2000), ("g", 0x3000)] {
        e.write(&Record::Function(FunctionRecord {
            addr,
            name: name.into(),
            code: code.clone(),
            loaded_ns: 0,
            listing: listing.clone(),
        }))
        .unwrap();
    }
    let mut samples = Vec::new();
    for t in 1..=12u64 {
        let (frames, truncated, leaf): (&[u64], bool, u64) = match t % 4 {
            0 => (&[0x1002], false, 0x2001),
            1 => (&[0x1002, 0x2003], false, 0x3000),
            2 => (&[0x1002, 0x2003, 0x3001], false, 0x3002),
            _ => (&[0x1002], true, 0x3002),
        };
        let stack = e.stacks().stack(frames, truncated);
        let time_ns = t * 1_000_000 + t % 3;
        samples.push(Sample {
            time_ns,
            interp: 0,
            pc: leaf,
            stack,
        });
        samples.push(Sample {
            time_ns,
            interp: 1,
            pc: 0x1000,
            stack: 0,
        });
        if t == 6 {
            e.write_samples(&samples).unwrap();
            samples.clear();
        }
    }
    e.write_samples(&samples).unwrap();
    e.write(&Record::Summary(Summary {
        stopped_ns: 13_000_000,
        stats: Stats {
            frequency_hz: 1000,
            elapsed_ns: 13_000_000,
            samples_taken: 24,
            samples_written: 24,
            ..Stats::default()
        },
    }))
    .unwrap();
    drop(e);
    file
}

/// As for version 2: regenerated only when asked, else checked.
#[test]
fn the_v3_fixture_is_what_its_generator_writes() {
    check_fixture(v3_fixture(), V3, "native-v3-stacks.data");
}

#[test]
fn the_v3_fixture_reads_back_its_stacks_and_samples() {
    use pcprof::format::{StackNode, TRUNCATED_FRAME};
    use pcprof::{Event, ProfileReader};
    let r = ProfileReader::new(V3).unwrap();
    assert_eq!(r.version(), 3);
    let mut nodes = Vec::new();
    let mut samples = Vec::new();
    for ev in r {
        match ev.unwrap() {
            Event::Stacks(n) => nodes.extend(n),
            Event::Samples(s) => samples.extend(s),
            _ => {}
        }
    }
    let node = |id, parent, frame| StackNode { id, parent, frame };
    assert_eq!(
        nodes,
        [
            node(1, 0, 0x1002),
            node(2, 1, 0x2003),
            node(3, 2, 0x3001),
            node(4, 1, TRUNCATED_FRAME),
        ]
    );
    let of_0: Vec<(u64, u64, u32)> = samples
        .iter()
        .filter(|s| s.interp == 0)
        .map(|s| (s.time_ns, s.pc, s.stack))
        .take(4)
        .collect();
    assert_eq!(
        of_0,
        [
            (1_000_001, 0x3000, 2),
            (2_000_002, 0x3002, 3),
            (3_000_000, 0x3002, 4),
            (4_000_001, 0x2001, 1),
        ]
    );
    assert_eq!(samples.len(), 24);
    assert!(
        samples
            .iter()
            .filter(|s| s.interp == 1)
            .all(|s| s.stack == 0)
    );
}

#[test]
fn the_v3_fixture_loads_to_its_figures() {
    use pcprof::analysis::Frame;
    let p = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.read_error, None);
    assert_eq!(p.total_samples, 24);
    assert!(p.has_stacks());
    let own: Vec<(&str, u64)> = p
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.samples))
        .collect();
    assert_eq!(own, [("main", 12), ("f", 3), ("g", 9)]);
    // main is on every stack; g's recursion counts once a sample.
    assert_eq!(p.inclusive_samples(), [24, 9, 9]);
    assert_eq!(p.stacks.truncated_samples, 3);
    let mut paths: Vec<(Vec<Frame>, Option<usize>, u64, u64)> = p
        .stacks
        .leaves
        .iter()
        .map(|l| (p.stacks.path(l.stack), l.function, l.offset, l.samples))
        .collect();
    paths.sort();
    let (main, f, g) = (Frame::Function(0), Frame::Function(1), Frame::Function(2));
    assert_eq!(
        paths,
        [
            (vec![], Some(0), 0, 12),
            (vec![main], Some(1), 1, 3),
            (vec![main, f], Some(2), 0, 3),
            (vec![main, f, g], Some(2), 2, 3),
            (vec![main, Frame::Truncated], Some(2), 2, 3),
        ]
    );
    let s = p.summary.clone().expect("the run stopped cleanly");
    assert_eq!(s.stats.samples_written, 24);
    // The report's totals beside the self shares.
    use pcprof::analysis::report::{ReportOptions, write_report};
    let mut out = Vec::new();
    write_report(&mut out, &p, &ReportOptions::default()).unwrap();
    let text = String::from_utf8(out).unwrap();
    let totals: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("call stacks:"))
        .take(5)
        .collect();
    assert_eq!(
        totals,
        [
            "call stacks: 12 of 24 samples under a caller, 3 truncated",
            "  total    self  function",
            "100.00%  50.00%  main",
            " 37.50%  37.50%  g",
            " 37.50%  12.50%  f",
        ]
    );
    assert!(
        text.contains(" 50.00% main  (12 samples, total 100.00%)"),
        "{text}"
    );
}

/// The collapsed export writes the real stacks, `[truncated]` where frames
/// were lost; the Pulley export drops them and says so.
#[test]
fn the_v3_fixture_exports_its_stacks() {
    use pcprof::analysis::convert::{ConvertOptions, recode, write_collapsed};
    use pcprof::{Format, ProfileReader};
    let p = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    let mut out = Vec::new();
    write_collapsed(&p, &DecoderChoice::Auto, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "main;inc @ main+0x0 12\n\
         main;f;inc @ f+0x1 3\n\
         main;f;g;inc @ g+0x0 3\n\
         main;f;g;g;inc @ g+0x2 3\n\
         main;[truncated];g;inc @ g+0x2 3\n"
    );
    let mut pulley = Vec::new();
    let report = recode(
        ProfileReader::new(V3).unwrap(),
        Format::Pulley,
        &mut pulley,
        std::path::Path::new("out"),
        &ConvertOptions::default(),
    )
    .unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("Not kept: the call stacks of 12 samples")),
        "{:?}",
        report.notes
    );
    // Native to native keeps them, re-interned.
    let mut native = Vec::new();
    recode(
        ProfileReader::new(V3).unwrap(),
        Format::Native,
        &mut native,
        std::path::Path::new("out"),
        &ConvertOptions::default(),
    )
    .unwrap();
    let q = load_bytes(&native, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(q.stacks, p.stacks);
}

#[test]
fn the_v1_fixture_loads_to_its_figures() {
    let p = load_bytes(V1, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.read_error, None);
    assert_eq!(p.total_samples, 7866);
    assert_eq!(p.unresolved, 0);
    assert_eq!(p.sampling, None);
    assert!(p.functions.iter().all(|f| f.listing.is_none()));
    let mut by_name: Vec<(&str, u64)> = p
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.samples))
        .collect();
    by_name.sort();
    assert_eq!(by_name, V1_FUNCTIONS);
    let interps: Vec<(u32, Option<&str>, u64)> = p
        .interpreters
        .iter()
        .map(|i| (i.id, i.label.as_deref(), i.samples))
        .collect();
    assert_eq!(interps, V1_INTERPRETERS);
    let s = p.summary.expect("the run stopped cleanly");
    assert_eq!(
        (
            s.stats.samples_written,
            s.stats.frequency_hz,
            s.stats.ticks_missed
        ),
        (7866, 1000, 76)
    );
}

#[test]
fn the_v2_fixture_loads_to_its_figures() {
    let p = load_bytes(V2, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.read_error, None);
    assert_eq!(p.file_bytes, V2.len() as u64);
    assert_eq!(p.total_samples, 24);
    assert_eq!(p.unresolved, 0);
    assert_eq!(
        p.sampling,
        Some(SamplingRecord {
            mode: SamplingMode::Randomized,
            frequency_hz: 1000
        })
    );
    assert_eq!(p.sampling_text().as_deref(), Some("randomized, 1000 Hz"));
    let f: Vec<(&str, u64, Vec<u64>)> = p
        .functions
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.samples,
                f.hits.dense(f.code_len as usize),
            )
        })
        .collect();
    assert_eq!(
        f,
        vec![
            ("loop", 10, vec![2, 2, 4, 0, 2]),
            ("plain", 10, vec![3, 4, 3, 0, 0, 0]),
            ("loop", 4, vec![0, 0, 4, 0, 0]),
        ]
    );
    // One listing in the file, attached to both generations of `loop`.
    let (a, b) = (&p.functions[0].listing, &p.functions[2].listing);
    assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
    assert_eq!(p.functions[1].listing, None);
    assert_eq!(V2.windows(4).filter(|w| w == b"tiny").count(), 1);
    // The listing is what every analysis decodes with by default.
    let l = decode_function(
        &DecoderChoice::Auto,
        &p.functions[0].code,
        p.functions[0].listing.as_deref(),
        p.functions[0].hits.as_slice(),
    );
    assert_eq!(l.decoder, "tiny");
    let shown: Vec<(u32, &str, &InstructionKind)> = l
        .instructions
        .iter()
        .map(|i| (i.offset, i.text.as_str(), &i.kind))
        .collect();
    assert_eq!(
        shown,
        vec![
            (0, "inc", &InstructionKind::Plain),
            (1, "inc", &InstructionKind::Plain),
            (
                2,
                "br 0",
                &InstructionKind::Branch {
                    targets: vec![0],
                    conditional: true
                }
            ),
            (4, "ret", &InstructionKind::Return),
        ]
    );
    // Hex, when asked for, still starts a line at every listed instruction.
    let hex = decode_function(
        &DecoderChoice::Hex,
        &p.functions[0].code,
        p.functions[0].listing.as_deref(),
        &[],
    );
    let lines: Vec<(u32, u32)> = hex.instructions.iter().map(|i| (i.offset, i.len)).collect();
    assert_eq!(lines, vec![(0, 1), (1, 1), (2, 2), (4, 1)]);
    let interps: Vec<(u32, Option<&str>, u64)> = p
        .interpreters
        .iter()
        .map(|i| (i.id, i.label.as_deref(), i.samples))
        .collect();
    assert_eq!(
        interps,
        vec![(0, Some("interp-0"), 14), (1, Some("interp-1"), 10)]
    );
    assert_eq!(p.rates.len(), 1);
    assert_eq!(p.summary.map(|s| s.stats.samples_written), Some(24));
}

/// A version 1 file holding a record of version 2 is refused with an error
/// that says so, at the record's offset.
#[test]
fn a_version_1_file_with_a_version_2_record_is_refused() {
    let mut bytes = V2.to_vec();
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let p = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    let e = p.read_error.expect("refused");
    assert!(
        e.contains("a sampling record (format version 2) in a version 1 file"),
        "{e}"
    );
    assert_eq!(p.total_samples, 0);
    // And a version this build does not know is refused up front.
    bytes[8..10].copy_from_slice(&4u16.to_le_bytes());
    let e = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "native format version 4 at byte 8 is not supported (this pcprof reads versions 1 to 3)"
    );
}

/// The push record (12) is of version 3: in a version 2 file it is
/// corrupt, and the reader says so rather than skip it.
#[test]
fn a_push_record_in_a_version_2_file_is_refused() {
    let push = PushRecord {
        stopped_ns: 9,
        intervals_pushed: 3,
        intervals_dropped: 1,
        chunks_dropped: 0,
    };
    let mut bytes = V2.to_vec();
    // A native frame of the push record, appended to the fixture.
    let header = FileHeader {
        pcprof_version: "fixture".into(),
        pid: 7,
        started_unix_ns: 0,
        frequency_hz: 1000,
        flush_samples: 100,
        clock: "virtual".into(),
    };
    let mut e = Encoder::native(Vec::new(), &header).unwrap();
    let start = e.bytes_written() as usize;
    e.write(&Record::Push(push)).unwrap();
    bytes.extend_from_slice(&e.into_inner()[start..]);
    let at = V2.len() as u64;
    let mut reader = ProfileReader::new(bytes.as_slice()).unwrap();
    let e = loop {
        match reader.next() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("the push record was accepted"),
        }
    };
    assert_eq!(e.offset(), at);
    assert!(
        e.to_string()
            .contains("a push record (format version 3) in a version 2 file"),
        "{e}"
    );
    // In a version 3 file it is read, and kept.
    bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
    let mut reader = ProfileReader::new(bytes.as_slice()).unwrap();
    for ev in reader.by_ref() {
        ev.unwrap();
    }
    assert_eq!(reader.push_record(), Some(&push));
}

/// Samples per function of the version 1 fixture, by name.
const V1_FUNCTIONS: &[(&str, u64)] = &[
    ("collatz", 463),
    ("dot", 350),
    ("fib", 561),
    ("fill", 2070),
    ("hash", 1105),
    ("main", 0),
    ("sieve", 3317),
];

/// Its interpreters: id, label, samples.
const V1_INTERPRETERS: &[(u32, Option<&str>, u64)] =
    &[(0, Some("interp-0"), 3935), (1, Some("interp-1"), 3931)];

/// Native → Pulley → native: the listings and sampling record are gone (the
/// Pulley format has no place for them), and the report says the file was
/// converted instead of blaming a profiler that did not stop cleanly.
/// Native → native keeps both.
#[test]
fn a_file_converted_from_pulley_says_so_and_native_copies_keep_listings() {
    use pcprof::analysis::convert::{ConvertOptions, recode};
    use pcprof::analysis::report::{ReportOptions, write_report};
    use pcprof::{Format, ProfileReader};
    let convert = |bytes: &[u8], to| {
        let mut out = Vec::new();
        let reader = ProfileReader::new(bytes).unwrap();
        recode(
            reader,
            to,
            &mut out,
            std::path::Path::new("x"),
            &ConvertOptions::default(),
        )
        .unwrap();
        out
    };
    let report = |bytes: &[u8]| {
        let p = load_bytes(bytes, &LoadOptions::default(), |_| {}).unwrap();
        let mut out = Vec::new();
        write_report(&mut out, &p, &ReportOptions::default()).unwrap();
        (p, String::from_utf8(out).unwrap())
    };
    let back = convert(&convert(V2, Format::Pulley), Format::Native);
    let (p, text) = report(&back);
    assert!(p.converted_from_pulley());
    assert!(
        text.contains("run: converted from a Pulley-format file: no run statistics"),
        "{text}"
    );
    assert!(!text.contains("did not stop cleanly"), "{text}");
    assert!(!text.contains("sampling:"), "{text}");
    // Its timeline says the times are synthetic; a native copy's does not.
    use pcprof::analysis::html::{HtmlOptions, render};
    let synthetic = "the times are synthetic";
    assert!(render(&p, &HtmlOptions::default()).contains(synthetic));

    let copy = convert(V2, Format::Native);
    let (p, text) = report(&copy);
    assert!(!p.converted_from_pulley());
    assert_eq!(p.sampling.map(|s| s.mode), Some(SamplingMode::Randomized));
    assert!(p.functions[0].listing.is_some());
    assert!(text.contains("decoder: tiny"), "{text}");
    assert!(text.contains("sampling: randomized, 1000 Hz"), "{text}");
    assert!(!render(&p, &HtmlOptions::default()).contains(synthetic));
}

/// Merging the version 3 fixture with itself keeps its stacks: frames are
/// translated like PCs, so every path and figure doubles.
#[test]
fn a_merge_of_the_v3_fixture_keeps_its_stacks() {
    use pcprof::analysis::merge::{MergeInput, MergeOptions, merge};
    let dir = crate::common::TempDir::new("v3-merge");
    let input = dir.path("v3.data");
    std::fs::write(&input, V3).unwrap();
    let inputs = [MergeInput::new(input.clone()), MergeInput::new(input)];
    merge(&inputs, &dir.path("merged.data"), &MergeOptions::default()).unwrap();
    let one = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    let two =
        pcprof::analysis::load(&dir.path("merged.data"), &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(two.total_samples, 48);
    assert_eq!(two.inclusive_samples(), [48, 18, 18]);
    assert_eq!(two.stacks.truncated_samples, 6);
    let paths = |p: &pcprof::analysis::Profile| {
        let mut v: Vec<_> = p
            .stacks
            .leaves
            .iter()
            .map(|l| (p.stacks.path(l.stack), l.function, l.offset, l.samples))
            .collect();
        v.sort();
        v
    };
    let doubled: Vec<_> = paths(&one)
        .into_iter()
        .map(|(path, f, o, n)| (path, f, o, 2 * n))
        .collect();
    assert_eq!(paths(&two), doubled);
}
