//! `pcprof convert`: each export checked against what its consumer needs —
//! the Firefox Profiler's table invariants, speedscope's file format, flame
//! graph tools' line syntax, Pulley's own decoder — on a constructed profile
//! whose every count is known.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pcprof::analysis::convert::{ConvertError, ConvertOptions, ExportFormat, convert, speedscope};
use pcprof::analysis::report::DecoderChoice;
use pcprof::disasm::HexDecoder;
use pcprof::format::{
    Encoder, FileHeader, FunctionRecord, InterpreterRecord, Record, RetiredRecord, Summary,
};
use pcprof::{Sample, Stats};

use crate::common::{TempDir, read_all};

pub(crate) const HOT: u64 = 0x1000;
pub(crate) const WARM: u64 = 0x2000;
pub(crate) const COLD: u64 = 0x3000;
pub(crate) const STRAY_PC: u64 = 0x9999;
pub(crate) const STARTED_UNIX_NS: u64 = 1_700_000_000_000_000_000;

/// The fixture's samples, in file order.
///
/// - interpreter 1 (`main`), ticks 1..=60 ms: `hot+4` (or `hot+5`, inside the
///   same 4-byte instruction) 40 times, `hot+8` 20 times;
/// - interpreter 2 (`worker`), ticks 1..=30 ms: `warm+0` 15 times,
///   `warm+12` 14 times, one PC outside every function (tick 29).
pub(crate) fn fixture_samples() -> Vec<Sample> {
    let mut v = Vec::new();
    for k in 1..=60u64 {
        let t = k * 1_000_000;
        let pc = match k % 6 {
            1 => HOT + 5,
            0 | 3 => HOT + 8,
            _ => HOT + 4,
        };
        v.push(Sample {
            time_ns: t,
            interp: 1,
            pc,
            stack: 0,
        });
        if k <= 30 {
            let pc = if k == 29 {
                STRAY_PC
            } else if k % 2 == 0 {
                WARM
            } else {
                WARM + 12
            };
            v.push(Sample {
                time_ns: t,
                interp: 2,
                pc,
                stack: 0,
            });
        }
    }
    v
}

/// Writes the fixture profile (native format) to `path`: functions `hot`,
/// `warm` (16 bytes each, bytes = their offsets) and `cold` (no samples),
/// names given by `names` (to test escaping), two interpreters, 90 samples
/// in batches of 10 ticks, a closing summary.
pub(crate) fn write_fixture(path: &Path, names: [&str; 3]) -> Vec<Sample> {
    let file = std::fs::File::create(path).expect("create fixture");
    let mut e = Encoder::native(
        std::io::BufWriter::new(file),
        &FileHeader {
            pcprof_version: "test".to_string(),
            pid: 4242,
            started_unix_ns: STARTED_UNIX_NS,
            frequency_hz: 1000,
            flush_samples: 20,
            clock: "virtual".to_string(),
        },
    )
    .expect("header");
    for (name, addr, len) in [
        (names[0], HOT, 16u8),
        (names[1], WARM, 16),
        (names[2], COLD, 8),
    ] {
        e.write(&Record::Function(FunctionRecord {
            addr,
            name: name.to_string(),
            code: (0..len).collect(),
            loaded_ns: 0,
            listing: None,
        }))
        .expect("function");
    }
    for (id, label) in [(1, "main"), (2, "worker")] {
        e.write(&Record::Interpreter(InterpreterRecord {
            id,
            label: Some(label.to_string()),
            registered_ns: 0,
        }))
        .expect("interpreter");
    }
    let samples = fixture_samples();
    // Ten ticks per batch: a tick never spans two batches.
    let mut start = 0;
    while start < samples.len() {
        let tick_end = samples[start].time_ns + 10_000_000;
        let end = samples[start..]
            .iter()
            .position(|s| s.time_ns >= tick_end)
            .map_or(samples.len(), |p| start + p);
        e.write_samples(&samples[start..end]).expect("samples");
        start = end;
    }
    e.write(&Record::Retired(RetiredRecord {
        id: 2,
        retired_ns: 31_000_000,
    }))
    .expect("retired");
    e.write(&Record::Summary(Summary {
        stopped_ns: 61_000_000,
        stats: Stats {
            frequency_hz: 1000,
            elapsed_ns: 60_000_000,
            ticks_scheduled: 61,
            ticks_taken: 60,
            ticks_missed: 1,
            samples_taken: 90,
            samples_written: 90,
            samples_dropped: 0,
            lateness_p50_ns: 12_000,
            lateness_p99_ns: 80_000,
            lateness_max_ns: 150_000,
            ..Stats::default()
        },
    }))
    .expect("summary");
    use std::io::Write as _;
    e.into_inner().flush().expect("flush");
    samples
}

const NAMES: [&str; 3] = ["hot", "warm", "cold"];

fn fixture(dir: &TempDir) -> PathBuf {
    let path = dir.path("in.pcprof");
    write_fixture(&path, NAMES);
    path
}

/// Fixed 4-byte hex chunks: instruction names every test can spell out.
fn options() -> ConvertOptions {
    ConvertOptions {
        decoder: DecoderChoice::Custom(Arc::new(HexDecoder { width: 4 })),
        ..ConvertOptions::default()
    }
}

fn run(
    input: &Path,
    output: &Path,
    format: ExportFormat,
) -> pcprof::analysis::convert::ConvertReport {
    convert(input, output, format, &options())
        .unwrap_or_else(|e| panic!("convert to {format}: {e}"))
}

#[test]
fn collapsed_lines_parse_back_to_the_exact_counts() {
    let dir = TempDir::new("collapsed");
    let input = fixture(&dir);
    let out = dir.path("out.folded");
    let report = run(&input, &out, ExportFormat::Collapsed);
    assert_eq!(report.samples, 90);
    assert_eq!(report.unresolved, 1);
    let text = std::fs::read_to_string(&out).unwrap();
    // What flame graph tools do: split at the last space, then at `;`.
    let mut parsed: Vec<(Vec<String>, u64)> = Vec::new();
    for line in text.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("`stack count`");
        let count: u64 = count.parse().expect("count is an integer");
        parsed.push((stack.split(';').map(str::to_string).collect(), count));
    }
    assert_eq!(parsed.iter().map(|(_, c)| c).sum::<u64>(), 90);
    let expect: Vec<(Vec<&str>, u64)> = vec![
        // A frame per sampled offset: +0x4 and +0x5 are two instructions.
        (vec!["hot", "04 05 06 07 @ hot+0x4"], 30),
        (vec!["hot", "05 06 07 08 @ hot+0x5"], 10),
        (vec!["hot", "08 09 0a 0b @ hot+0x8"], 20),
        (vec!["warm", "00 01 02 03 @ warm+0x0"], 15),
        (vec!["warm", "0c 0d 0e 0f @ warm+0xc"], 14),
        (vec!["[unresolved]"], 1),
    ];
    let got: Vec<(Vec<&str>, u64)> = parsed
        .iter()
        .map(|(s, c)| (s.iter().map(String::as_str).collect(), *c))
        .collect();
    assert_eq!(got, expect);
}

#[test]
fn collapsed_names_cannot_break_the_line_syntax() {
    let dir = TempDir::new("collapsed-names");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["a;b\nc", "w", "c"]);
    let out = dir.path("out.folded");
    run(&input, &out, ExportFormat::Collapsed);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    let first = text.lines().next().unwrap();
    assert_eq!(first, "a:b c;04 05 06 07 @ a:b c+0x4 30");
}

#[test]
fn speedscope_file_meets_the_format() {
    let dir = TempDir::new("speedscope");
    let input = fixture(&dir);
    let out = dir.path("out.speedscope.json");
    let report = run(&input, &out, ExportFormat::Speedscope);
    assert_eq!(report.samples, 90);
    let bytes = std::fs::read(&out).unwrap();

    // The raw JSON has the keys speedscope's importer looks for.
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(v["$schema"], speedscope::SCHEMA);
    assert!(v["shared"]["frames"].is_array());
    for p in v["profiles"].as_array().expect("profiles") {
        assert_eq!(p["type"], "sampled");
        for key in [
            "name",
            "unit",
            "startValue",
            "endValue",
            "samples",
            "weights",
        ] {
            assert!(!p[key].is_null(), "profile lacks {key}");
        }
    }

    // And it reads back into the typed structs, whose invariants hold.
    let file: speedscope::File = serde_json::from_slice(&bytes).expect("speedscope structs");
    let frames = &file.shared.frames;
    let names: Vec<&str> = frames.iter().map(|f| f.name.as_str()).collect();
    for want in ["hot", "warm", "[unresolved]", "04 05 06 07 @ hot+0x4"] {
        assert!(names.contains(&want), "missing frame {want}: {names:?}");
    }
    assert!(!names.contains(&"cold"), "cold has no sample");
    assert_eq!(file.profiles.len(), 2);
    assert_eq!(file.active_profile_index, Some(0));
    let mut total = 0.0;
    for (p, (label, count)) in file.profiles.iter().zip([("main", 60.0), ("worker", 30.0)]) {
        assert_eq!(p.kind, "sampled");
        assert!(p.name.contains(label), "{}", p.name);
        // Native files have times: a sample weighs its period (1 ms at
        // the fixture's 1 kHz), so speedscope shows durations.
        assert_eq!(p.unit, "nanoseconds");
        assert_eq!(p.samples.len(), p.weights.len());
        let sum: f64 = p.weights.iter().sum();
        assert_eq!(sum, count * 1e6);
        assert_eq!(p.end_value - p.start_value, sum);
        for stack in &p.samples {
            assert!(!stack.is_empty());
            assert!(stack.iter().all(|&i| i < frames.len()));
        }
        assert!(
            p.weights
                .iter()
                .all(|&w| w >= 1e6 && (w / 1e6).fract() == 0.0)
        );
        total += sum;
    }
    assert_eq!(total, 90.0 * 1e6);

    // Time order is kept: main's stacks replay its PCs run by run.
    let main = &file.profiles[0];
    let mut replay: Vec<&str> = Vec::new();
    for (stack, &w) in main.samples.iter().zip(&main.weights) {
        let leaf = frames[*stack.last().unwrap()].name.as_str();
        replay.extend(std::iter::repeat_n(leaf, (w / 1e6) as usize));
    }
    let expect: Vec<&str> = fixture_samples()
        .iter()
        .filter(|s| s.interp == 1)
        .map(|s| match s.pc - HOT {
            8 => "08 09 0a 0b @ hot+0x8",
            5 => "05 06 07 08 @ hot+0x5",
            _ => "04 05 06 07 @ hot+0x4",
        })
        .collect();
    assert_eq!(replay, expect);
    // Consecutive samples at one instruction were merged.
    assert!(main.samples.len() < 60);
}

/// Follows a Firefox Profiler stack to its frames' names, outermost first.
pub(crate) fn fx_stack_names(thread: &serde_json::Value, mut stack: usize) -> Vec<String> {
    let strings = thread["stringArray"].as_array().unwrap();
    let mut names = Vec::new();
    loop {
        let frame = thread["stackTable"]["frame"][stack].as_u64().unwrap() as usize;
        let func = thread["frameTable"]["func"][frame].as_u64().unwrap() as usize;
        let name = thread["funcTable"]["name"][func].as_u64().unwrap() as usize;
        names.push(strings[name].as_str().unwrap().to_string());
        match thread["stackTable"]["prefix"][stack].as_u64() {
            Some(p) => stack = p as usize,
            None => break,
        }
    }
    names.reverse();
    names
}

#[test]
fn firefox_profile_has_consistent_tables_and_real_times() {
    let dir = TempDir::new("firefox");
    let input = fixture(&dir);
    let out = dir.path("out.json");
    let report = run(&input, &out, ExportFormat::Firefox);
    assert_eq!(report.samples, 90);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    let meta = &v["meta"];
    assert!(meta["version"].is_number());
    assert!(meta["preprocessedProfileVersion"].as_u64().unwrap() >= 50);
    assert_eq!(meta["interval"].as_f64(), Some(1.0));
    assert_eq!(
        meta["startTime"].as_f64(),
        Some(STARTED_UNIX_NS as f64 / 1e6)
    );
    assert!(
        meta["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "Bytecode")
    );

    let threads = v["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 2, "one thread per interpreter");
    let mut total = 0;
    let samples = fixture_samples();
    for (thread, (label, id)) in threads.iter().zip([("main", 1u32), ("worker", 2)]) {
        assert!(thread["name"].as_str().unwrap().contains(label));
        let s = &thread["samples"];
        let n = s["length"].as_u64().unwrap() as usize;
        for col in ["stack", "timeDeltas", "weight"] {
            assert_eq!(s[col].as_array().unwrap().len(), n, "samples.{col}");
        }
        let stacks = &thread["stackTable"];
        let n_stacks = stacks["length"].as_u64().unwrap() as usize;
        assert_eq!(stacks["frame"].as_array().unwrap().len(), n_stacks);
        assert_eq!(stacks["prefix"].as_array().unwrap().len(), n_stacks);
        let n_frames = thread["frameTable"]["length"].as_u64().unwrap() as usize;
        let n_funcs = thread["funcTable"]["length"].as_u64().unwrap() as usize;
        let n_strings = thread["stringArray"].as_array().unwrap().len();
        for (i, p) in stacks["prefix"].as_array().unwrap().iter().enumerate() {
            assert!(
                p.is_null() || (p.as_u64().unwrap() as usize) < i,
                "prefix before stack"
            );
        }
        assert!(
            stacks["frame"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| (f.as_u64().unwrap() as usize) < n_frames)
        );
        assert_eq!(
            thread["frameTable"]["func"].as_array().unwrap().len(),
            n_frames
        );
        assert!(
            thread["frameTable"]["func"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| (f.as_u64().unwrap() as usize) < n_funcs)
        );
        assert!(
            thread["funcTable"]["name"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| (f.as_u64().unwrap() as usize) < n_strings)
        );

        // Every sample, at its real time, with its function and instruction.
        let mine: Vec<&Sample> = samples.iter().filter(|x| x.interp == id).collect();
        assert_eq!(n, mine.len());
        let mut t = 0.0;
        for (k, x) in mine.iter().enumerate() {
            t += s["timeDeltas"][k].as_f64().unwrap();
            assert!(
                (t - x.time_ns as f64 / 1e6).abs() < 1e-6,
                "time of sample {k}"
            );
            assert_eq!(s["weight"][k].as_i64(), Some(1));
            let names = fx_stack_names(thread, s["stack"][k].as_u64().unwrap() as usize);
            let want: Vec<&str> = match x.pc {
                STRAY_PC => vec!["[unresolved]"],
                pc if pc == HOT + 8 => vec!["hot", "08 09 0a 0b @ hot+0x8"],
                pc if pc == HOT + 5 => vec!["hot", "05 06 07 08 @ hot+0x5"],
                pc if pc < WARM => vec!["hot", "04 05 06 07 @ hot+0x4"],
                WARM => vec!["warm", "00 01 02 03 @ warm+0x0"],
                _ => vec!["warm", "0c 0d 0e 0f @ warm+0xc"],
            };
            assert_eq!(names, want, "stack of sample {k}");
        }
        total += n;
    }
    assert_eq!(total, 90);
}

/// A function as Pulley's decoder sees it: address, name, body.
type PulleyFunction = (u64, String, Vec<u8>);

fn decode_pulley(bytes: &[u8]) -> (Vec<PulleyFunction>, Vec<u64>) {
    use pulley_interpreter::profile::{Event, decode};
    let mut functions = Vec::new();
    let mut pcs = Vec::new();
    for ev in decode(bytes) {
        match ev.unwrap_or_else(|e| panic!("Pulley's decoder refused the file: {e}")) {
            Event::Function(addr, name, body) => {
                functions.push((addr, name.to_string(), body.to_vec()))
            }
            Event::Samples(s) => pcs.extend(s.iter().map(|p| p.0)),
        }
    }
    (functions, pcs)
}

#[test]
fn native_to_pulley_reads_in_pulleys_own_decoder() {
    let dir = TempDir::new("to-pulley");
    let input = fixture(&dir);
    let out = dir.path("out.data");
    let report = run(&input, &out, ExportFormat::Pulley);
    assert_eq!(report.samples, 90);
    assert_eq!(report.functions, 3);
    assert!(report.notes.iter().any(|n| n.contains("times")));
    let (functions, pcs) = decode_pulley(&std::fs::read(&out).unwrap());
    let original = read_all(&std::fs::read(&input).unwrap()).unwrap();
    let want: Vec<PulleyFunction> = original
        .functions
        .iter()
        .map(|f| (f.addr, f.name.clone(), f.code.clone()))
        .collect();
    assert_eq!(functions, want);
    let want_pcs: Vec<u64> = fixture_samples().iter().map(|s| s.pc).collect();
    assert_eq!(pcs, want_pcs);
}

#[test]
fn pulley_to_native_and_back_is_lossless() {
    let dir = TempDir::new("from-pulley");
    // The source is written by Pulley's own recorder.
    let src = dir.path("pulley.data");
    let code_a: Vec<u8> = (0..32).collect();
    let code_b: Vec<u8> = (100..124).collect();
    let mut rec = pulley_interpreter::profile::Recorder::new(src.to_str().unwrap()).unwrap();
    rec.add_function("a", &code_a).unwrap();
    rec.add_function("b<&>", &code_b).unwrap();
    let base_a = code_a.as_ptr() as u64;
    let base_b = code_b.as_ptr() as u64;
    let mut want_pcs = Vec::new();
    for batch in 0..3u64 {
        let mut samples = pulley_interpreter::profile::Samples::default();
        for k in 0..7u64 {
            let pc = if k % 3 == 0 {
                base_b + k
            } else {
                base_a + batch + k
            };
            samples.append(pc as usize);
            want_pcs.push(pc);
        }
        rec.add_samples(&mut samples).unwrap();
    }
    rec.flush().unwrap();
    drop(rec);

    let native = dir.path("native.pcprof");
    let options = ConvertOptions {
        pulley_interval_ns: 250_000,
        ..options()
    };
    let report = convert(&src, &native, ExportFormat::Native, &options).unwrap();
    assert_eq!(report.samples, 21);
    let c = read_all(&std::fs::read(&native).unwrap()).unwrap();
    assert!(c.error.is_none(), "{:?}", c.error);
    let names: Vec<&str> = c.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "b<&>"]);
    assert_eq!(c.functions[0].code, code_a);
    assert_eq!(c.functions[1].addr, base_b);
    assert_eq!(c.interpreters.len(), 1);
    assert_eq!(c.interpreters[0].id, 0);
    let pcs: Vec<u64> = c.samples.iter().map(|s| s.pc).collect();
    assert_eq!(pcs, want_pcs);
    let times: Vec<u64> = c.samples.iter().map(|s| s.time_ns).collect();
    assert_eq!(times, (0..21).map(|i| i * 250_000).collect::<Vec<_>>());

    // And back: byte for byte what Pulley wrote.
    let back = dir.path("back.data");
    convert(&native, &back, ExportFormat::Pulley, &options).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());
}

#[test]
fn native_round_trip_through_native_keeps_everything_and_filters() {
    let dir = TempDir::new("native-native");
    let input = fixture(&dir);
    let out = dir.path("copy.pcprof");
    run(&input, &out, ExportFormat::Native);
    let a = read_all(&std::fs::read(&input).unwrap()).unwrap();
    let b = read_all(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(a.samples, b.samples);
    assert_eq!(a.functions, b.functions);
    assert_eq!(a.interpreters, b.interpreters);
    assert_eq!(a.summary, b.summary);

    let only = dir.path("worker.pcprof");
    let options = ConvertOptions {
        interp: Some(2),
        ..options()
    };
    let report = convert(&input, &only, ExportFormat::Native, &options).unwrap();
    assert_eq!(report.samples, 30);
    let c = read_all(&std::fs::read(&only).unwrap()).unwrap();
    assert!(c.samples.iter().all(|s| s.interp == 2));
    assert_eq!(c.samples.len(), 30);
    assert_eq!(c.interpreters.len(), 1);
}

#[test]
fn truncated_input_converts_up_to_the_fault() {
    let dir = TempDir::new("truncated");
    let input = fixture(&dir);
    let bytes = std::fs::read(&input).unwrap();
    let cut = dir.path("cut.pcprof");
    std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
    for format in ExportFormat::ALL {
        let out = dir.path(&format!("out.{format}"));
        let report = run(&cut, &out, format);
        let e = report
            .read_error
            .unwrap_or_else(|| panic!("{format}: no read error"));
        assert!(e.contains("cut.pcprof"), "{e}");
        assert!(report.samples > 0 && report.samples <= 90);
        assert!(out.exists());
    }
}

#[test]
fn errors_name_the_file_and_leave_nothing_behind() {
    let dir = TempDir::new("convert-errors");
    let input = fixture(&dir);

    let e = convert(&input, &input, ExportFormat::Native, &options()).unwrap_err();
    assert!(matches!(e, ConvertError::SameFile { .. }), "{e}");
    assert!(
        read_all(&std::fs::read(&input).unwrap())
            .unwrap()
            .error
            .is_none()
    );

    let missing = dir.path("missing.pcprof");
    let e = convert(&missing, &dir.path("o"), ExportFormat::Firefox, &options()).unwrap_err();
    assert!(e.to_string().contains("missing.pcprof"), "{e}");

    let garbage = dir.path("garbage.bin");
    std::fs::write(&garbage, b"\x7fELF....").unwrap();
    for format in ExportFormat::ALL {
        let e = convert(&garbage, &dir.path("o"), format, &options()).unwrap_err();
        assert!(
            e.to_string().contains("garbage.bin") && e.to_string().contains("not a profile"),
            "{e}"
        );
    }

    let nowhere = dir.path("no/such/dir/out.json");
    let e = convert(&input, &nowhere, ExportFormat::Speedscope, &options()).unwrap_err();
    assert!(e.to_string().contains("out.json"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn cli_convert_writes_and_requires_output() {
    let dir = TempDir::new("convert-cli");
    let input = fixture(&dir);
    let out = dir.path("flame.txt");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pcprof"))
        .args([
            "convert",
            input.to_str().unwrap(),
            "--to",
            "collapsed",
            "--decoder",
            "hex",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("90 samples"));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 6);

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pcprof"))
        .args(["convert", input.to_str().unwrap(), "--to", "firefox"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--output"));
}

/// Issue 12: collapsed frames are `function;mnemonic operands @ where`,
/// without the disassembler's `// target = ..` comments, so flame graph
/// tools cutting a narrow box keep the mnemonic.
#[test]
fn collapsed_frames_lead_with_the_mnemonic_without_comments() {
    use crate::report::{assemble, pulley_file, rep, xadd32};
    use pulley_interpreter::{PcRelOffset, XReg::*, op};
    let dir = TempDir::new("collapsed-pulley");
    let ops = |rel: i32| {
        vec![
            op::BrIf {
                cond: x0,
                offset: PcRelOffset::from(rel),
            }
            .into(),
            xadd32(x0, x0, x1),
            op::Ret {}.into(),
        ]
    };
    let (_, o) = assemble(&ops(0));
    let (code, o2) = assemble(&ops((o[2] - o[0]) as i32));
    assert_eq!(o, o2);
    let pcs: Vec<u64> = rep(0x1000 + o[0], 3).chain(rep(0x1000 + o[1], 2)).collect();
    let input = dir.path("p.pulley");
    std::fs::write(&input, pulley_file(&[("f", 0x1000, &code)], &pcs, 16)).unwrap();
    let out = dir.path("flame.txt");
    convert(
        &input,
        &out,
        ExportFormat::Collapsed,
        &ConvertOptions::default(),
    )
    .unwrap();
    // The disassembly itself carries the comment the frame must not.
    let listing = pcprof::disasm::decode_function(&DecoderChoice::Auto, &code, None, &[]);
    assert!(
        listing.instructions[0].text.contains("// target = 0x9"),
        "{}",
        listing.instructions[0].text
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text,
        "f;br_if32 x0, 0x9 @ f+0x0 3\nf;xadd32 x0, x0, x1 @ f+0x6 2\n"
    );
}

/// A rate change halves the rate: the samples after it weigh twice as much,
/// so speedscope's durations follow the time the samples stand for.
#[test]
fn speedscope_weights_follow_the_rate() {
    let dir = TempDir::new("speedscope-rate");
    let input = dir.path("rate.data");
    let file = std::fs::File::create(&input).expect("create");
    let mut e = Encoder::native(
        std::io::BufWriter::new(file),
        &FileHeader {
            pcprof_version: "test".to_string(),
            pid: 1,
            started_unix_ns: STARTED_UNIX_NS,
            frequency_hz: 1000,
            flush_samples: 20,
            clock: "virtual".to_string(),
        },
    )
    .expect("header");
    e.write(&Record::Function(FunctionRecord {
        addr: HOT,
        name: "hot".to_string(),
        code: (0..16).collect(),
        loaded_ns: 0,
        listing: None,
    }))
    .expect("function");
    let at = |time_ns: u64, pc: u64| Sample {
        time_ns,
        interp: 1,
        pc,
        stack: 0,
    };
    e.write_samples(&[at(1_000_000, HOT), at(2_000_000, HOT + 4)])
        .expect("samples");
    e.write(&Record::Rate(pcprof::format::RateRecord {
        time_ns: 2_500_000,
        frequency_hz: 500,
    }))
    .expect("rate");
    e.write_samples(&[at(4_000_000, HOT + 4), at(6_000_000, HOT + 8)])
        .expect("samples");
    std::io::Write::flush(e.get_mut()).expect("flush");
    drop(e);
    let out = dir.path("out.json");
    run(&input, &out, ExportFormat::Speedscope);
    let file: speedscope::File =
        serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("speedscope");
    let p = &file.profiles[0];
    assert_eq!(p.unit, "nanoseconds");
    // hot+0, then hot+4 at 1 kHz and at 500 Hz (merged), then hot+8.
    assert_eq!(p.weights, vec![1e6, 1e6 + 2e6, 2e6]);
    assert_eq!(p.end_value - p.start_value, 6e6);
}
