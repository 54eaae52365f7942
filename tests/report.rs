//! `pcprof report`: exact shares and ordering on constructed files,
//! threshold and `--instructions`, decoders, samples that are not at an
//! instruction, bad files (library and binary), colour, interpreter filter,
//! and accuracy against a synthetic interpreter on the virtual clock.
//!
//! Also the shared helpers of the analysis tests (`sequences`, `diff`):
//! Pulley files written directly with `Encoder::pulley`, bytecode assembled
//! with Pulley's own encoder.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pcprof::analysis::report::{DecoderChoice, ReportOptions, ReportTotals, write_report};
use pcprof::analysis::{LoadOptions, Profile, load};
use pcprof::format::{Encoder, FileHeader, FunctionRecord, InterpreterRecord, Record, Sample};
use pcprof::{Format, Profiler, VirtualClock};
use pulley_interpreter::{BinaryOperands, Op, XReg, op};

use crate::common::TempDir;

/// Encodes `ops`; returns the code and the offset of each op.
pub fn assemble(ops: &[Op]) -> (Vec<u8>, Vec<u64>) {
    let mut code = Vec::new();
    let mut offsets = Vec::new();
    for o in ops {
        offsets.push(code.len() as u64);
        o.encode(&mut code);
    }
    (code, offsets)
}

/// `xadd32 dst, a, b`.
pub fn xadd32(dst: XReg, a: XReg, b: XReg) -> Op {
    op::Xadd32 {
        operands: BinaryOperands::new(dst, a, b),
    }
    .into()
}

/// A Pulley-format file with these functions `(name, addr, code)` and
/// sample PCs, in batches of `batch`.
pub fn pulley_file(funcs: &[(&str, u64, &[u8])], pcs: &[u64], batch: usize) -> Vec<u8> {
    let mut e = Encoder::pulley(Vec::new());
    for (name, addr, code) in funcs {
        e.write(&Record::Function(FunctionRecord {
            addr: *addr,
            name: name.to_string(),
            code: code.to_vec(),
            loaded_ns: 0,
            listing: None,
        }))
        .unwrap();
    }
    let samples: Vec<Sample> = pcs
        .iter()
        .map(|&pc| Sample {
            time_ns: 0,
            interp: 0,
            pc,
            stack: 0,
        })
        .collect();
    for chunk in samples.chunks(batch.max(1)) {
        e.write_samples(chunk).unwrap();
    }
    e.into_inner()
}

/// `n` copies of `pc`.
pub fn rep(pc: u64, n: usize) -> impl Iterator<Item = u64> {
    std::iter::repeat_n(pc, n)
}

/// Writes `bytes` to `dir/name` and loads it.
pub fn load_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> Profile {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    load(&path, &LoadOptions::default(), |_| {}).unwrap()
}

/// Runs the `pcprof` binary without colour; returns (success, stdout,
/// stderr).
pub fn pcprof(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = pcprof_exit(args);
    (code == Some(0), out, err)
}

/// Runs the `pcprof` binary without colour; returns (exit code, stdout,
/// stderr).
pub fn pcprof_exit(args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::demo::pcprof().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(profile: &Profile, options: &ReportOptions) -> (String, ReportTotals) {
    let mut out = Vec::new();
    let totals = write_report(&mut out, profile, options).unwrap();
    (String::from_utf8(out).unwrap(), totals)
}

/// `(share, name)` of each function line, in order.
fn function_lines(text: &str) -> Vec<(f64, String)> {
    text.lines()
        .filter(|l| !l.starts_with('\t') && (l.contains(" samples)") || l.contains(" sample)")))
        .filter_map(|l| {
            let (pct, rest) = l.trim_start().split_once("% ")?;
            let pct: f64 = pct.parse().ok()?;
            let name = rest.split("  (").next()?.to_string();
            Some((pct, name))
        })
        .collect()
}

/// `(share or None, offset)` of each instruction line, in order.
fn instruction_lines(text: &str) -> Vec<(Option<f64>, u64)> {
    text.lines()
        .filter(|l| l.starts_with('\t'))
        .map(|l| {
            let l = &l[1..];
            let (head, _) = l.split_once(": ").unwrap();
            let (pct, off) = if let Some((p, o)) = head.split_once('%') {
                (Some(p.trim().parse().unwrap()), o.trim())
            } else {
                (None, head.trim())
            };
            (pct, u64::from_str_radix(off, 16).unwrap())
        })
        .collect()
}

/// Three functions: alpha (70 samples: 40/20/10/0 on its four
/// instructions), beta (29: 25 on its first, 4 on its `ret`), gamma (1).
fn three_functions() -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    use XReg::*;
    let (alpha, ao) = assemble(&[
        op::Xzero { dst: x0 }.into(),
        xadd32(x0, x0, x1),
        op::Xmov { dst: x2, src: x0 }.into(),
        op::Ret {}.into(),
    ]);
    let (beta, bo) = assemble(&[op::Xconst8 { dst: x0, imm: 1 }.into(), op::Ret {}.into()]);
    let (gamma, _) = assemble(&[op::Ret {}.into()]);
    let mut pcs = Vec::new();
    // Interleaved, so batches mix functions.
    for _ in 0..5 {
        pcs.extend(rep(0x1000 + ao[0], 8));
        pcs.extend(rep(0x1000 + ao[1], 4));
        pcs.extend(rep(0x1000 + ao[2], 2));
        pcs.extend(rep(0x2000 + bo[0], 5));
    }
    pcs.extend(rep(0x2000 + bo[1], 4));
    pcs.push(0x3000);
    let bytes = pulley_file(
        &[
            ("alpha", 0x1000, &alpha),
            ("beta", 0x2000, &beta),
            ("gamma", 0x3000, &gamma),
        ],
        &pcs,
        7,
    );
    (bytes, ao, bo)
}

#[test]
fn shares_and_order_are_exact() {
    let dir = TempDir::new("report-exact");
    let (bytes, ao, bo) = three_functions();
    let p = load_bytes(&dir, "p.pulley", &bytes);
    assert_eq!(p.total_samples, 100);
    let (text, totals) = report(&p, &ReportOptions::default());
    assert_eq!(
        function_lines(&text),
        vec![
            (70.0, "alpha".into()),
            (29.0, "beta".into()),
            (1.0, "gamma".into())
        ]
    );
    assert!(text.contains(" 70.00% alpha  (70 samples)"), "{text}");
    // Instruction shares are of the function's samples.
    let ins = instruction_lines(&text);
    assert_eq!(
        ins,
        vec![
            (Some(57.14), ao[0]),
            (Some(28.57), ao[1]),
            (Some(14.29), ao[2]),
            (None, ao[3]),
            (Some(86.21), bo[0]),
            (Some(13.79), bo[1]),
            (Some(100.0), 0),
        ]
    );
    assert!(text.contains("xadd32 x0, x0, x1"), "{text}");
    assert_eq!(totals.functions_shown, 3);
    assert_eq!(totals.outside_functions, 0);
    assert_eq!(totals.inside_instructions, 0);
    assert!(text.contains(
        "not at an instruction: 0 outside every function, 0 inside an instruction rather than at its start"
    ));
    assert!(text.contains("run: not recorded"), "{text}");
    assert!(!text.contains('\x1b'));
}

#[test]
fn threshold_top_and_instructions_flag() {
    let dir = TempDir::new("report-threshold");
    let (bytes, ao, bo) = three_functions();
    let p = load_bytes(&dir, "p.pulley", &bytes);
    let opts = ReportOptions {
        threshold: 20.0,
        ..ReportOptions::default()
    };
    let (text, _) = report(&p, &opts);
    // gamma (1 %) is left out; instructions under 20 % are not annotated.
    assert_eq!(
        function_lines(&text),
        vec![(70.0, "alpha".into()), (29.0, "beta".into())]
    );
    assert_eq!(
        instruction_lines(&text),
        vec![
            (Some(57.14), ao[0]),
            (Some(28.57), ao[1]),
            (None, ao[2]),
            (None, ao[3]),
            (Some(86.21), bo[0]),
            (None, bo[1]),
        ]
    );
    let (text, totals) = report(
        &p,
        &ReportOptions {
            instructions: false,
            ..ReportOptions::default()
        },
    );
    assert!(instruction_lines(&text).is_empty(), "{text}");
    assert_eq!(function_lines(&text).len(), 3);
    assert_eq!(totals.functions_shown, 3);
    let (text, _) = report(
        &p,
        &ReportOptions {
            top: Some(1),
            ..ReportOptions::default()
        },
    );
    assert_eq!(function_lines(&text), vec![(70.0, "alpha".into())]);

    // The same through the binary.
    let path = dir.path("p.pulley");
    let path = path.to_str().unwrap();
    let (ok, out, err) = pcprof(&[
        "report",
        path,
        "--threshold",
        "20",
        "--instructions",
        "false",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        function_lines(&out),
        vec![(70.0, "alpha".into()), (29.0, "beta".into())]
    );
    assert!(instruction_lines(&out).is_empty());
    let (ok, out, _) = pcprof(&["report", path, "--top", "2"]);
    assert!(ok);
    assert_eq!(function_lines(&out).len(), 2);
    assert_eq!(instruction_lines(&out).len(), 6);
}

#[test]
fn non_pulley_bytes_fall_back_to_hex() {
    let dir = TempDir::new("report-hex");
    // 0xff.. is no Pulley opcode.
    let blob = [0xffu8, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7];
    let (good, go) = assemble(&[op::Xzero { dst: XReg::x0 }.into(), op::Ret {}.into()]);
    let mut pcs: Vec<u64> = rep(0x5000 + 5, 3).collect();
    pcs.extend(rep(0x5000, 1));
    pcs.extend(rep(0x6000 + go[1], 1));
    let bytes = pulley_file(
        &[("blob", 0x5000, &blob), ("good", 0x6000, &good)],
        &pcs,
        100,
    );
    let p = load_bytes(&dir, "p.pulley", &bytes);
    let (text, totals) = report(&p, &ReportOptions::default());
    assert_eq!(totals.hex_fallbacks, 1);
    assert!(
        text.contains(" 80.00% blob  (4 samples)  [not Pulley bytecode: hex]"),
        "{text}"
    );
    // Lines of 4 bytes, plus a line start at the sampled offset 5.
    let ins = instruction_lines(&text);
    assert_eq!(ins[..3], [(Some(25.0), 0), (None, 4), (Some(75.0), 5)]);
    assert!(text.contains("ff fe fd fc"), "{text}");
    assert!(text.contains("     5: fa f9 f8 f7"), "{text}");
    // The good function is still disassembled by Pulley.
    assert!(text.contains(": ret"), "{text}");
    assert_eq!(totals.inside_instructions, 0);

    // Forced hex: everything in hex.
    let (text, _) = report(
        &p,
        &ReportOptions {
            decoder: DecoderChoice::Hex,
            ..ReportOptions::default()
        },
    );
    assert!(!text.contains(": ret"), "{text}");
    // Forced Pulley: the undecodable bytes show as such.
    let (text, _) = report(
        &p,
        &ReportOptions {
            decoder: DecoderChoice::Pulley,
            ..ReportOptions::default()
        },
    );
    assert!(!text.contains("[not Pulley bytecode: hex]"), "{text}");
    assert!(text.contains("ff fe fd"), "{text}");
}

#[test]
fn samples_outside_functions_and_inside_instructions_are_counted() {
    let dir = TempDir::new("report-outside");
    let (code, o) = assemble(&[
        op::Xconst8 {
            dst: XReg::x0,
            imm: 7,
        }
        .into(),
        op::Ret {}.into(),
    ]);
    let mut pcs = vec![0x1000 + o[0], 0x1000 + o[0] + 1, 0x1000 + o[1]];
    pcs.extend([0x10, 0x9000, 0x1000 + code.len() as u64]);
    let bytes = pulley_file(&[("f", 0x1000, &code)], &pcs, 2);
    let p = load_bytes(&dir, "p.pulley", &bytes);
    assert_eq!(p.total_samples, 6);
    assert_eq!(p.unresolved, 3);
    let (text, totals) = report(&p, &ReportOptions::default());
    assert_eq!(totals.outside_functions, 3);
    assert_eq!(totals.inside_instructions, 1);
    assert!(text.contains(
        "not at an instruction: 3 outside every function, 1 inside an instruction rather than at its start"
    ), "{text}");
    // The sample inside `xconst8` is credited to it.
    assert_eq!(function_lines(&text), vec![(50.0, "f".into())]);
    assert_eq!(
        instruction_lines(&text),
        vec![(Some(66.67), o[0]), (Some(33.33), o[1])]
    );
    assert!(text.contains("(1 inside)"), "{text}");
}

#[test]
fn bad_files_give_one_line_errors() {
    let dir = TempDir::new("report-bad");
    let (bytes, _, _) = three_functions();
    let empty = dir.path("empty");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.path("garbage");
    std::fs::write(&garbage, b"hello, this is not a profile").unwrap();
    let cut = dir.path("cut");
    // Cut in the middle of the last sample section.
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();

    // Library: empty and garbage files do not load; the cut one loads its
    // complete records and says where reading stopped.
    let e = load(&empty, &LoadOptions::default(), |_| {}).unwrap_err();
    assert!(e.to_string().contains("empty file"), "{e}");
    let e = load(&garbage, &LoadOptions::default(), |_| {}).unwrap_err();
    assert!(e.to_string().contains("not a profile"), "{e}");
    let p = load(&cut, &LoadOptions::default(), |_| {}).unwrap();
    let err = p.read_error.clone().unwrap();
    assert!(err.contains("truncated"), "{err}");
    assert!(p.total_samples > 0 && p.total_samples < 100);

    // Binary: one line on stderr, non-zero exit.
    for (path, want) in [(&empty, "empty file"), (&garbage, "not a profile")] {
        let (ok, out, err) = pcprof(&["report", path.to_str().unwrap()]);
        assert!(!ok);
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("pcprof: error: ") && err.contains(want),
            "{err}"
        );
    }
    let (ok, out, err) = pcprof(&["report", cut.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("% alpha"),
        "the complete records are reported: {out}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated record at byte"), "{err}");
    let missing = dir.path("missing");
    let (ok, _, err) = pcprof(&["report", missing.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    // The other subcommands behave the same.
    for args in [
        vec!["sequences", garbage.to_str().unwrap()],
        vec!["diff", empty.to_str().unwrap(), garbage.to_str().unwrap()],
    ] {
        let (ok, _, err) = pcprof(&args);
        assert!(!ok);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn colour_only_when_asked() {
    let dir = TempDir::new("report-color");
    let (bytes, _, _) = three_functions();
    let p = load_bytes(&dir, "p.pulley", &bytes);
    let (text, _) = report(
        &p,
        &ReportOptions {
            color: true,
            ..ReportOptions::default()
        },
    );
    // Hottest instruction of alpha in bold red, coolest annotated in green.
    assert!(text.contains("\x1b[1m\x1b[38;2;255;0;0m"), "{text:?}");
    assert!(text.contains("\x1b[38;2;0;255;0m"), "{text:?}");
    // The binary's stdout is a pipe here: no escapes, with or without
    // NO_COLOR.
    let path = dir.path("p.pulley");
    let (ok, out, _) = pcprof(&["report", path.to_str().unwrap()]);
    assert!(ok);
    assert!(!out.contains('\x1b'));
    let out = Command::new(env!("CARGO_BIN_EXE_pcprof"))
        .args(["report", path.to_str().unwrap()])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!out.stdout.contains(&0x1b));
}

/// A native file: two interpreters with labels, a summary.
fn two_interpreters(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path("two.pcprof");
    let header = FileHeader {
        pcprof_version: "test".into(),
        flush_samples: 100,
        ..crate::common::header()
    };
    let mut e = Encoder::native(Vec::new(), &header).unwrap();
    let (f, fo) = assemble(&[op::Xzero { dst: XReg::x0 }.into(), op::Ret {}.into()]);
    let (g, _) = assemble(&[op::Ret {}.into()]);
    e.write(&Record::Function(FunctionRecord {
        addr: 0x100,
        name: "f".into(),
        code: f,
        loaded_ns: 0,
        listing: None,
    }))
    .unwrap();
    e.write(&Record::Function(FunctionRecord {
        addr: 0x200,
        name: "g".into(),
        code: g,
        loaded_ns: 0,
        listing: None,
    }))
    .unwrap();
    for (id, label) in [(1, "main"), (2, "worker")] {
        e.write(&Record::Interpreter(InterpreterRecord {
            id,
            label: Some(label.into()),
            registered_ns: 0,
        }))
        .unwrap();
    }
    let mut samples = Vec::new();
    for t in 1..=10u64 {
        samples.push(Sample {
            time_ns: t * 1_000_000,
            interp: 1,
            pc: 0x100 + fo[(t % 2) as usize],
            stack: 0,
        });
        if t <= 4 {
            samples.push(Sample {
                time_ns: t * 1_000_000,
                interp: 2,
                pc: 0x200,
                stack: 0,
            });
        }
    }
    e.write_samples(&samples).unwrap();
    let stats = pcprof::Stats {
        frequency_hz: 1000,
        elapsed_ns: 10_000_000,
        ticks_scheduled: 10,
        ticks_taken: 10,
        ticks_missed: 0,
        samples_taken: 14,
        samples_written: 14,
        samples_dropped: 0,
        lateness_p50_ns: 1_500,
        lateness_p99_ns: 42_000,
        ..pcprof::Stats::default()
    };
    e.write(&Record::Summary(pcprof::format::Summary {
        stopped_ns: 10_000_000,
        stats,
    }))
    .unwrap();
    std::fs::write(&path, e.into_inner()).unwrap();
    path
}

#[test]
fn interpreters_filter_and_run_summary() {
    let dir = TempDir::new("report-interp");
    let path = two_interpreters(&dir);
    let p = load(&path, &LoadOptions::default(), |_| {}).unwrap();
    let (text, _) = report(&p, &ReportOptions::default());
    assert_eq!(
        function_lines(&text),
        vec![(71.43, "f".into()), (28.57, "g".into())]
    );
    assert!(text.contains("interpreters: 2"), "{text}");
    assert!(
        text.contains(" 71.43% interpreter 1 \"main\": 10 samples"),
        "{text}"
    );
    assert!(
        text.contains(" 28.57% interpreter 2 \"worker\": 4 samples"),
        "{text}"
    );
    assert!(
        text.contains(
            "run: duration 0.010 s, rate asked 1000 Hz, achieved 1000.0 Hz, ticks missed 0, \
             samples dropped 0, lateness p50 1.5 µs, p99 42.0 µs"
        ),
        "{text}"
    );

    let opts = LoadOptions {
        interp: Some(2),
        ..LoadOptions::default()
    };
    let p = load(&path, &opts, |_| {}).unwrap();
    let (text, _) = report(&p, &ReportOptions::default());
    assert_eq!(function_lines(&text), vec![(100.0, "g".into())]);
    assert!(text.contains("filter: 4 of 14 samples kept"), "{text}");

    let (ok, out, err) = pcprof(&["report", path.to_str().unwrap(), "--interp", "1"]);
    assert!(ok, "{err}");
    assert_eq!(function_lines(&out), vec![(100.0, "f".into())]);
    let (ok, _, err) = pcprof(&["report", path.to_str().unwrap(), "--interp", "9"]);
    assert!(!ok);
    assert!(err.contains("no interpreter 9"), "{err}");
}

/// Issue 3 §5: an interpreter holds known PCs for 70 / 20 / 10 % of its
/// time; each share in the report is within 2 points of the truth.
#[test]
fn accuracy_of_a_synthetic_interpreter() {
    let dir = TempDir::new("report-accuracy");
    let clock = VirtualClock::new();
    let path = dir.path("acc.pcprof");
    let mut p = Profiler::builder()
        .frequency(1000)
        .flush_every(64)
        .buffers(64)
        .output(&path)
        .format(Format::Native)
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    let codes: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8; 32]).collect();
    for (name, code) in ["a", "b", "c"].iter().zip(&codes) {
        p.register_function(name, code).unwrap();
    }
    let h = p.new_interpreter(Some("synthetic")).unwrap();
    // Interleaved: 7 ms in a, 2 in b, 1 in c, ten times.
    for _ in 0..10 {
        for (code, ms) in codes.iter().zip([7u64, 2, 1]) {
            h.set_ptr(&code[4]);
            p.sync().unwrap();
            clock.advance(Duration::from_millis(ms));
        }
    }
    p.stop().unwrap();
    let (ok, out, err) = pcprof(&["report", path.to_str().unwrap(), "--instructions", "false"]);
    assert!(ok, "{err}");
    let shares = function_lines(&out);
    let names: Vec<&str> = shares.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "{out}");
    for ((share, _), truth) in shares.iter().zip([70.0, 20.0, 10.0]) {
        assert!((share - truth).abs() <= 2.0, "{share} vs {truth}: {out}");
    }
    assert!(
        out.contains("run: duration 0.100 s, rate asked 1000 Hz"),
        "{out}"
    );
}

#[test]
fn report_of_a_file_without_samples() {
    let dir = TempDir::new("report-nosamples");
    let (code, _) = assemble(&[op::Ret {}.into()]);
    let bytes = pulley_file(&[("f", 0x10, &code)], &[], 1);
    let path = dir.path("p.pulley");
    std::fs::write(&path, bytes).unwrap();
    let (ok, out, _) = pcprof(&["report", path.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("no samples in this profile"), "{out}");
}

/// The allocation-free reader (`next_into`, with its direct decoding of
/// native sample batches) yields exactly what the generic reader yields,
/// for extreme values and many interpreters, and the same error on a
/// corrupt batch.
#[test]
fn fast_reader_matches_generic_reader() {
    use pcprof::format::{Event, ProfileReader};
    let header = FileHeader {
        pcprof_version: "t".into(),
        pid: 0,
        started_unix_ns: 0,
        frequency_hz: 1,
        flush_samples: 1,
        clock: "virtual".into(),
    };
    let mut e = Encoder::native(Vec::new(), &header).unwrap();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut time = 0u64;
    for batch in 0..20 {
        let n = 1 + (next() % 300) as usize;
        let samples: Vec<Sample> = (0..n)
            .map(|_| {
                time += [0, 1, 250, 251, 65_536, 1 << 40][(next() % 6) as usize];
                let pc = match next() % 4 {
                    0 => next(),
                    1 => u64::MAX - next() % 3,
                    2 => next() % 300,
                    _ => 0x1000 + next() % 64,
                };
                Sample {
                    time_ns: time,
                    interp: (next() % if batch % 2 == 0 { 3 } else { 300 }) as u32,
                    pc,
                    stack: 0,
                }
            })
            .collect();
        e.write_samples(&samples).unwrap();
    }
    let bytes = e.into_inner();
    let collect_fast = |bytes: &[u8]| {
        let mut r = ProfileReader::new(bytes).unwrap();
        let (mut all, mut buf, mut err) = (Vec::new(), Vec::new(), None);
        while let Some(ev) = r.next_into(&mut buf) {
            match ev {
                Ok(Event::Samples(v)) => {
                    assert!(v.is_empty());
                    all.extend_from_slice(&buf);
                }
                Ok(_) => {}
                Err(e) => err = Some(e.to_string()),
            }
        }
        (all, err)
    };
    let collect_slow = |bytes: &[u8]| {
        let (mut all, mut err) = (Vec::new(), None);
        for ev in ProfileReader::new(bytes).unwrap() {
            match ev {
                Ok(Event::Samples(v)) => all.extend(v),
                Ok(_) => {}
                Err(e) => err = Some(e.to_string()),
            }
        }
        (all, err)
    };
    let (fast, slow) = (collect_fast(&bytes), collect_slow(&bytes));
    assert!(fast.0.len() > 100);
    assert_eq!(fast, slow);
    // Cut and corrupted copies fail the same way in both.
    for cut in [bytes.len() - 1, bytes.len() / 2] {
        assert_eq!(collect_fast(&bytes[..cut]), collect_slow(&bytes[..cut]));
    }
}

/// A Pulley file `dir/name`: `f` (`xadd32` then `ret`) at 0x1000 with
/// `n_first` samples on the `xadd32`, and `g` with 1 sample on its only
/// `xadd32`.
fn small_pulley(dir: &TempDir, name: &str, n_first: usize) -> String {
    use XReg::*;
    let (f, _) = assemble(&[xadd32(x0, x0, x1), op::Ret {}.into()]);
    let (g, _) = assemble(&[xadd32(x0, x0, x1), op::Ret {}.into()]);
    let pcs: Vec<u64> = rep(0x1000, n_first).chain(rep(0x2000, 1)).collect();
    let path = dir.path(name);
    std::fs::write(
        &path,
        pulley_file(&[("f", 0x1000, &f), ("g", 0x2000, &g)], &pcs, 16),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// Issue 12: `--top 0` is a usage error naming the argument, not an empty
/// report that blames the threshold.
#[test]
fn top_zero_is_a_usage_error() {
    let dir = TempDir::new("report-top0");
    let path = small_pulley(&dir, "p.pulley", 3);
    let (code, out, err) = pcprof_exit(&["report", &path, "--top", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("invalid value '0' for '--top <TOP>': must be at least 1"),
        "{err}"
    );
    let (code, out, err) = pcprof_exit(&["report", &path, "--top", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(function_lines(&out), vec![(75.0, "f".into())]);
}

/// Issue 12: a Pulley file has no interpreter ids; `--interp` on one is
/// refused with the file's name, never silently ignored.
#[test]
fn interp_on_a_pulley_file_is_refused() {
    let dir = TempDir::new("report-pulley-interp");
    let path = small_pulley(&dir, "p.pulley", 3);
    for command in ["report", "sequences", "html"] {
        let (code, out, err) = pcprof_exit(&[command, &path, "--interp", "0"]);
        assert_eq!(code, Some(1), "{command}: {err}");
        assert!(out.is_empty(), "{command}: {out}");
        assert_eq!(
            err.trim_end(),
            format!(
                "pcprof: error: {path}: a Pulley-format file has no interpreter ids, so --interp does \
                 not apply; leave it out"
            ),
            "{command}"
        );
    }
}

/// Issue 12: counts read "1 sample", "3 samples", "2 functions".
#[test]
fn counts_are_singular_for_one() {
    let dir = TempDir::new("report-plural");
    let path = small_pulley(&dir, "p.pulley", 3);
    let (ok, out, err) = pcprof(&["report", &path, "--instructions", "false"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("samples: 4 in 2 functions (2 sampled)\n"),
        "{out}"
    );
    assert!(out.contains(" 75.00% f  (3 samples)\n"), "{out}");
    assert!(out.contains(" 25.00% g  (1 sample)\n"), "{out}");
    assert!(!out.contains("1 samples"), "{out}");

    let one = dir.path("one.pulley");
    let (f, _) = assemble(&[xadd32(XReg::x0, XReg::x0, XReg::x1), op::Ret {}.into()]);
    std::fs::write(&one, pulley_file(&[("f", 0x1000, &f)], &[0x1000], 16)).unwrap();
    let (ok, out, err) = pcprof(&["report", one.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("samples: 1 in 1 function (1 sampled)\n"),
        "{out}"
    );
    assert!(out.contains("100.00% f  (1 sample)\n"), "{out}");
}

/// A file of `n` interpreters, interpreter k with k + 1 samples in one
/// function `f` (1 byte of code per sample tick).
fn many_interpreters(dir: &TempDir, n: u32) -> std::path::PathBuf {
    let path = dir.path("many.pcprof");
    let header = FileHeader {
        pcprof_version: "test".into(),
        flush_samples: 100,
        ..crate::common::header()
    };
    let mut e = Encoder::native(Vec::new(), &header).unwrap();
    let (f, _) = assemble(&[op::Ret {}.into()]);
    e.write(&Record::Function(FunctionRecord {
        addr: 0x100,
        name: "f".into(),
        code: f,
        loaded_ns: 0,
        listing: None,
    }))
    .unwrap();
    let mut samples = Vec::new();
    for id in 0..n {
        e.write(&Record::Interpreter(InterpreterRecord {
            id,
            label: None,
            registered_ns: 0,
        }))
        .unwrap();
        for t in 0..=u64::from(id) {
            samples.push(Sample {
                time_ns: (t + 1) * 1_000_000,
                interp: id,
                pc: 0x100,
                stack: 0,
            });
        }
    }
    samples.sort_by_key(|s| s.time_ns);
    e.write_samples(&samples).unwrap();
    std::fs::write(&path, e.into_inner()).unwrap();
    path
}

/// The summary lists the busiest interpreters and one line for the rest,
/// so a process of a million short-lived interpreters stays readable.
#[test]
fn the_busiest_interpreters_are_listed_and_the_rest_summed() {
    use pcprof::analysis::report::INTERPRETER_LINES;
    let dir = TempDir::new("report-many");
    let n = INTERPRETER_LINES as u32 + 4;
    let profile = load(&many_interpreters(&dir, n), &LoadOptions::default(), |_| {}).unwrap();
    let (text, _) = report(&profile, &ReportOptions::default());
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("% interpreter "))
        .collect();
    assert_eq!(listed.len(), INTERPRETER_LINES, "{text}");
    // Busiest first: interpreter n - 1 has n samples.
    assert!(
        listed[0].ends_with(&format!("interpreter {}: {n} samples", n - 1)),
        "{text}"
    );
    // The 4 least busy (ids 0..4: 1 + 2 + 3 + 4 samples) share one line.
    let all: u64 = (1..=u64::from(n)).sum();
    let rest = format!(
        "{:6.2}% 4 more interpreters: 10 samples",
        10.0 * 100.0 / all as f64
    );
    assert!(text.contains(&rest), "{rest:?} missing:\n{text}");
    assert!(!text.contains("interpreter 3:"), "{text}");
}

/// `pcprof report F | head -1`: the reader goes away, and pcprof ends
/// quietly with success, as `cat` would, rather than printing an error.
#[test]
fn a_closed_pipe_ends_the_report_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = TempDir::new("report-pipe");
    // Enough output to fill a pipe: every instruction of many functions.
    let path = dir.path("long.pcprof");
    let mut e = Encoder::pulley(Vec::new());
    let ops: Vec<Op> = (0..200)
        .map(|_| op::Xzero { dst: XReg::x0 }.into())
        .collect();
    let (code, offsets) = assemble(&ops);
    let mut samples = Vec::new();
    for k in 0..200u64 {
        let addr = 0x10_000 * (k + 1);
        e.write(&Record::Function(FunctionRecord {
            addr,
            name: format!("function_{k}"),
            code: code.clone(),
            loaded_ns: 0,
            listing: None,
        }))
        .unwrap();
        samples.extend(offsets.iter().map(|o| Sample {
            time_ns: 0,
            interp: 0,
            pc: addr + o,
            stack: 0,
        }));
    }
    e.write_samples(&samples).unwrap();
    std::fs::write(&path, e.into_inner()).unwrap();

    let mut child = crate::demo::pcprof()
        .args(["report", "--threshold", "0"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("profile:"), "{first}");
    // The reading end is dropped here.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
