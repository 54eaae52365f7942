//! Analysis at scale: Pulley sections streamed in bounded chunks, reused
//! interpreter ids resolved by time, a sparse timeline, exports from memory.

use pcprof::analysis::convert::{ConvertOptions, ExportFormat, convert, convert_to_writer};
use pcprof::analysis::{LoadOptions, load, load_bytes, load_reader};
use pcprof::format::{Encoder, FunctionRecord, InterpreterRecord, Record, RetiredRecord};
use pcprof::{ProfileReader, Sample};

use crate::common::{TempDir, header};

fn function(addr: u64, len: usize) -> Record {
    Record::Function(FunctionRecord {
        addr,
        name: format!("f{addr:x}"),
        code: vec![0; len],
        loaded_ns: 0,
        listing: None,
    })
}

/// A Pulley file of one section of `n` samples (PC `0x1000 + k % 64`).
fn one_big_section(n: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = Encoder::pulley(&mut bytes);
    enc.write(&function(0x1000, 64)).unwrap();
    let samples: Vec<Sample> = (0..n)
        .map(|k| Sample {
            time_ns: 0,
            interp: 0,
            pc: 0x1000 + k % 64,
            stack: 0,
        })
        .collect();
    enc.write_samples(&samples).unwrap();
    drop(enc);
    bytes
}

#[test]
fn a_large_pulley_section_streams_in_bounded_chunks() {
    let n = 200_000u64;
    let bytes = one_big_section(n);
    let mut r = ProfileReader::new(&bytes[..]).unwrap();
    r.next().unwrap().unwrap();
    let section = r.offset();
    // The section comes in chunks of at most 65 536 samples; the offset
    // stays at its start until the last one.
    let (mut samples, mut pcs) = (Vec::new(), Vec::new());
    let mut chunks = Vec::new();
    while let Some(ev) = r.next_pcs_into(&mut samples, &mut pcs) {
        ev.unwrap();
        assert!(samples.is_empty());
        chunks.push((pcs.len(), r.offset()));
    }
    let total = bytes.len() as u64;
    assert_eq!(
        chunks,
        vec![
            (65_536, section),
            (65_536, section),
            (65_536, section),
            (3_392, total)
        ]
    );
    let p = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.total_samples, n);
    assert_eq!(p.functions[0].samples, n);
    assert_eq!(p.functions[0].hits.get(63), n / 64);
    assert_eq!(p.timeline.total(), n);
}

#[test]
fn a_torn_pulley_section_keeps_the_samples_read_whole() {
    let bytes = one_big_section(200_000);
    // Tag, address, name length, "f1000", body length, body.
    let section = 1 + 8 + 4 + 5 + 4 + 64;
    // Cut 3 bytes into sample 150 000: 150 000 samples are whole.
    let cut = section + 5 + 150_000 * 8 + 3;
    let p = load_bytes(&bytes[..cut], &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.total_samples, 150_000);
    assert_eq!(p.read_error_offset, Some(section as u64));
    let e = p.read_error.unwrap();
    assert!(
        e.contains(&format!("truncated record at byte {section}"))
            && e.contains("needs 1600005 bytes but the file has 1200008 more"),
        "{e}"
    );
    // A cut inside the first sample: no samples, the same error.
    let p = load_bytes(&bytes[..section + 9], &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.total_samples, 0);
    assert_eq!(p.read_error_offset, Some(section as u64));
}

/// Id 5 registered at 0, retired at 30 and registered again at 100; a
/// batch written late (after the second registration) holds samples of
/// both lives.
#[test]
fn a_reused_interpreter_id_resolves_samples_by_time() {
    let interp = |id, registered_ns, label: &str| {
        Record::Interpreter(InterpreterRecord {
            id,
            label: Some(label.to_string()),
            registered_ns,
        })
    };
    let s = |time_ns, interp| Sample {
        time_ns,
        interp,
        pc: 0x1000,
        stack: 0,
    };
    let mut bytes = Vec::new();
    let mut enc = Encoder::native(&mut bytes, &header()).unwrap();
    enc.write(&function(0x1000, 16)).unwrap();
    enc.write(&interp(5, 0, "first")).unwrap();
    enc.write(&interp(70_000, 0, "large id")).unwrap();
    enc.write_samples(&[s(10, 5), s(20, 5), s(20, 70_000)])
        .unwrap();
    enc.write(&Record::Retired(RetiredRecord {
        id: 5,
        retired_ns: 30,
    }))
    .unwrap();
    enc.write(&interp(5, 100, "second")).unwrap();
    enc.write(&interp(70_000, 100, "large id again")).unwrap();
    // Late: 25 belongs to the first life, 150 and 160 to the second.
    enc.write_samples(&[
        s(25, 5),
        s(25, 70_000),
        s(150, 5),
        s(160, 5),
        s(160, 70_000),
    ])
    .unwrap();
    drop(enc);

    let p = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.total_samples, 8);
    let ids: Vec<u32> = p.interpreters.iter().map(|i| i.id).collect();
    assert_eq!(ids, [5, 70_000], "one entry per id");
    let five = &p.interpreters[0];
    assert_eq!(five.samples, 5);
    assert_eq!(five.label.as_deref(), Some("first"));
    assert_eq!((five.registered_ns, five.retired_ns), (0, None));
    let lives: Vec<(u64, Option<u64>, u64)> = five
        .registrations
        .iter()
        .map(|r| (r.registered_ns, r.retired_ns, r.samples))
        .collect();
    assert_eq!(lives, [(0, Some(30), 3), (100, None, 2)]);
    let large: Vec<u64> = p.interpreters[1]
        .registrations
        .iter()
        .map(|r| r.samples)
        .collect();
    assert_eq!(large, [2, 1]);
    // The timeline has one lane per id.
    assert_eq!(
        p.timeline.lanes().map(|(id, _)| id).collect::<Vec<_>>(),
        [5, 70_000]
    );
    assert_eq!(p.timeline.lane(5).iter().sum::<u64>(), 5);
    // The filter keeps both lives.
    let only = LoadOptions {
        interp: Some(5),
        ..LoadOptions::default()
    };
    assert_eq!(load_bytes(&bytes, &only, |_| {}).unwrap().total_samples, 5);
}

/// Interpreters with one sample each, late ones late in the run, and ids
/// far apart: the timeline holds one cell per interpreter, not a lane of
/// buckets each.
#[test]
fn the_timeline_is_sparse_in_interpreters() {
    let n = 5_000u32;
    let mut bytes = Vec::new();
    let mut enc = Encoder::native(&mut bytes, &header()).unwrap();
    enc.write(&function(0x1000, 16)).unwrap();
    let samples: Vec<Sample> = (0..n)
        .map(|k| Sample {
            time_ns: u64::from(k) * 1_000_000,
            interp: k * 3_000,
            pc: 0x1000,
            stack: 0,
        })
        .collect();
    for chunk in samples.chunks(100) {
        enc.write_samples(chunk).unwrap();
    }
    drop(enc);
    let p = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(p.interpreters.len(), n as usize);
    assert_eq!(p.timeline.cells.len(), n as usize);
    assert_eq!(p.timeline.total(), u64::from(n));
    assert!(p.timeline.len() <= 400);
    let last = p.timeline.lane((n - 1) * 3_000);
    assert_eq!(last.len(), p.timeline.len());
    assert_eq!(*last.last().unwrap(), 1);
}

/// An embedder's bytes (a native file in memory) report and convert with
/// no file: the same as from the file.
#[test]
fn exports_and_reports_work_from_memory() {
    let dir = TempDir::new("scale-mem");
    let input = dir.path("in.pcprof");
    crate::convert::write_fixture(&input, ["hot", "warm", "cold"]);
    let bytes = std::fs::read(&input).unwrap();

    let from_file = load(&input, &LoadOptions::default(), |_| {}).unwrap();
    let from_memory = load_reader(&bytes[..], &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(from_memory.total_samples, from_file.total_samples);
    assert_eq!(from_memory.functions, from_file.functions);
    assert_eq!(from_memory.file_bytes, bytes.len() as u64);

    let options = ConvertOptions::default();
    for format in ExportFormat::ALL {
        let output = dir.path(&format!("out.{}", format.exporter().extension));
        let by_file = convert(&input, &output, format, &options).unwrap();
        let mut out = Vec::new();
        let by_memory = convert_to_writer(&mut &bytes[..], &mut out, format, &options).unwrap();
        assert_eq!(by_memory.samples, by_file.samples, "{format}");
        assert_eq!(by_memory.functions, by_file.functions, "{format}");
        let written = std::fs::read(&output).unwrap();
        if format == ExportFormat::Firefox || format == ExportFormat::Speedscope {
            // They name the profile after the input file, which memory has
            // not: the same but for the name.
            let json = |b: &[u8]| {
                let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("name");
                    o.remove("meta");
                }
                v.to_string().replace("pcprof: in.pcprof", "pcprof: ")
            };
            assert!(json(&out) == json(&written), "{format}");
        } else {
            assert_eq!(out, written, "{format}");
        }
    }
    // A bad input is an error before anything is written.
    let mut out = Vec::new();
    let e = convert_to_writer(&mut &b"junk"[..], &mut out, ExportFormat::Native, &options);
    assert!(e.is_err());
    assert!(out.is_empty());
}

/// Three lives of one id, the second recorded out of time order (a crafted
/// file): every sample still goes to the life with the greatest
/// `registered_ns <= time`, whichever registration the fast path holds.
#[test]
fn lives_of_a_reused_id_recorded_out_of_order() {
    let s = |time_ns| Sample {
        time_ns,
        interp: 3,
        pc: 0x1000,
        stack: 0,
    };
    let life = |registered_ns| {
        Record::Interpreter(InterpreterRecord {
            id: 3,
            label: None,
            registered_ns,
        })
    };
    let mut bytes = Vec::new();
    let mut enc = Encoder::native(&mut bytes, &header()).unwrap();
    enc.write(&function(0x1000, 16)).unwrap();
    enc.write(&life(0)).unwrap();
    enc.write(&life(200)).unwrap();
    enc.write(&life(100)).unwrap();
    enc.write_samples(&[s(50), s(150), s(150), s(250), s(250), s(250)])
        .unwrap();
    drop(enc);
    let p = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    let lives: Vec<(u64, u64)> = p.interpreters[0]
        .registrations
        .iter()
        .map(|r| (r.registered_ns, r.samples))
        .collect();
    assert_eq!(lives, [(0, 1), (100, 2), (200, 3)]);
}
