//! `pcprof sequences`: exact candidates on hand-built Pulley bytecode with
//! known hit counts; runs never cross branches, calls, returns or branch
//! targets; merging across functions by opcode; a custom decoder.

use std::sync::Arc;

use pcprof::analysis::report::DecoderChoice;
use pcprof::analysis::sequences::{Candidate, SequenceOptions, Site, mine};
use pcprof::disasm::{Instruction, InstructionDecoder, InstructionKind};
use pulley_interpreter::{Op, PcRelOffset, XReg, op};

use crate::common::TempDir;
use crate::report::{assemble, load_bytes, pcprof, pcprof_exit, pulley_file, rep, xadd32};

/// `f1`: a block ending in `br_if32`, a one-instruction block, and a block
/// starting at the branch target; `f2`: a block ending in a `call`.
/// Returns the file and the instruction offsets of both functions.
fn two_functions() -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    use XReg::*;
    let f1_ops = |rel: i32| -> Vec<Op> {
        vec![
            op::Xzero { dst: x0 }.into(),
            xadd32(x0, x0, x1),
            op::Xmov { dst: x2, src: x0 }.into(),
            op::BrIf {
                cond: x0,
                offset: PcRelOffset::from(rel),
            }
            .into(),
            xadd32(x0, x0, x1),
            op::Xmov { dst: x2, src: x0 }.into(), // the branch target
            op::Ret {}.into(),
        ]
    };
    let (_, o) = assemble(&f1_ops(0));
    let (f1, o1) = assemble(&f1_ops((o[5] - o[3]) as i32));
    let (f2, o2) = assemble(&[
        xadd32(x0, x0, x1),
        op::Xmov { dst: x2, src: x0 }.into(),
        op::Call {
            offset: PcRelOffset::from(0),
        }
        .into(),
        op::Xmov { dst: x3, src: x0 }.into(),
        op::Ret {}.into(),
    ]);
    let mut pcs = Vec::new();
    for (k, n) in [10, 20, 30, 5, 7, 3, 0].into_iter().enumerate() {
        pcs.extend(rep(0x1000 + o1[k], n));
    }
    for (k, n) in [4, 6, 2, 1, 0].into_iter().enumerate() {
        pcs.extend(rep(0x2000 + o2[k], n));
    }
    let bytes = pulley_file(&[("f1", 0x1000, &f1), ("f2", 0x2000, &f2)], &pcs, 16);
    (bytes, o1, o2)
}

fn cand(
    ops: &[&str],
    samples: u64,
    sites: usize,
    function: &str,
    offset: u64,
    top: u64,
) -> Candidate {
    Candidate {
        opcodes: ops.iter().map(|s| s.to_string()).collect(),
        samples,
        share: samples as f64 * 100.0 / 88.0,
        sites,
        top_site: Site {
            function: function.into(),
            offset: offset as u32,
            samples: top,
        },
    }
}

#[test]
fn exact_candidates_within_basic_blocks() {
    let dir = TempDir::new("seq-exact");
    let (bytes, o1, o2) = two_functions();
    let p = load_bytes(&dir, "p.pulley", &bytes);
    assert_eq!(p.total_samples, 88);
    let s = mine(
        &p,
        &SequenceOptions {
            max_len: 3,
            top: None,
            ..SequenceOptions::default()
        },
    );
    let expect = vec![
        cand(&["xzero", "xadd32", "xmov"], 60, 1, "f1", o1[0], 60),
        // Merged across f1 and f2.
        cand(&["xadd32", "xmov"], 60, 2, "f1", o1[1], 50),
        cand(&["xadd32", "xmov", "br_if32"], 55, 1, "f1", o1[1], 55),
        cand(&["xmov", "br_if32"], 35, 1, "f1", o1[2], 35),
        cand(&["xzero", "xadd32"], 30, 1, "f1", o1[0], 30),
        cand(&["xadd32", "xmov", "call"], 12, 1, "f2", o2[0], 12),
        cand(&["xmov", "call"], 8, 1, "f2", o2[1], 8),
        cand(&["xmov", "ret"], 4, 2, "f1", o1[5], 3),
    ];
    assert_eq!(s.candidates, expect);
    assert_eq!(s.distinct, 8);
    // Nothing crosses the branch (br_if32 -> xadd32), the branch target
    // (xadd32 -> xmov at o1[5]) or the call (call -> xmov).
    for c in &s.candidates {
        let j = c.opcodes.join(" ");
        assert!(!j.contains("br_if32 "), "{j}");
        assert!(!j.contains("call "), "{j}");
        assert!(!j.contains("ret "), "{j}");
    }
    assert!(
        !s.candidates
            .iter()
            .any(|c| c.opcodes == ["xadd32", "xmov", "ret"])
    );

    // Top and lengths.
    let s = mine(
        &p,
        &SequenceOptions {
            min_len: 2,
            max_len: 2,
            top: Some(2),
            decoder: DecoderChoice::Auto,
        },
    );
    let got: Vec<(Vec<String>, u64)> = s
        .candidates
        .iter()
        .map(|c| (c.opcodes.clone(), c.samples))
        .collect();
    assert_eq!(
        got,
        vec![
            (vec!["xadd32".to_string(), "xmov".to_string()], 60),
            (vec!["xmov".to_string(), "br_if32".to_string()], 35),
        ]
    );

    // The binary prints the same ranking.
    let path = dir.path("p.pulley");
    let (ok, out, err) = pcprof(&[
        "sequences",
        path.to_str().unwrap(),
        "--max-len",
        "3",
        "--top",
        "3",
    ]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains('%'))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[0].contains("68.18%") && rows[0].contains("xzero ; xadd32 ; xmov"),
        "{out}"
    );
    assert!(
        rows[1].contains("xadd32 ; xmov ") && rows[1].contains("f1+0x2 (50 samples)"),
        "{out}"
    );
}

#[test]
fn overlapping_occurrences_count_once() {
    let dir = TempDir::new("seq-overlap");
    use XReg::*;
    let (code, o) = assemble(&[
        op::Xzero { dst: x0 }.into(),
        op::Xzero { dst: x1 }.into(),
        op::Xzero { dst: x2 }.into(),
        op::Ret {}.into(),
    ]);
    let mut pcs = Vec::new();
    for (k, n) in [1, 2, 3].into_iter().enumerate() {
        pcs.extend(rep(0x10 + o[k], n));
    }
    let p = load_bytes(
        &dir,
        "p.pulley",
        &pulley_file(&[("z", 0x10, &code)], &pcs, 4),
    );
    let s = mine(&p, &SequenceOptions::default());
    let zz = s
        .candidates
        .iter()
        .find(|c| c.opcodes == ["xzero", "xzero"])
        .unwrap();
    // Occurrences at 0 (1+2) and 1 (2+3) cover 6 samples, not 8.
    assert_eq!((zz.samples, zz.sites, zz.share), (6, 2, 100.0));
    assert_eq!(zz.top_site.offset as u64, o[1]);
    assert_eq!(zz.top_site.samples, 5);
}

/// A toy stack bytecode: one byte per instruction.
#[derive(Debug)]
struct Toy;

impl InstructionDecoder for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn decode(&self, code: &[u8]) -> Vec<Instruction> {
        code.iter()
            .enumerate()
            .map(|(i, b)| {
                let (opcode, kind) = match b {
                    1 => ("push", InstructionKind::Plain),
                    2 => ("add", InstructionKind::Plain),
                    3 => (
                        "jz",
                        InstructionKind::Branch {
                            targets: vec![0],
                            conditional: true,
                        },
                    ),
                    0 => ("ret", InstructionKind::Return),
                    _ => ("?", InstructionKind::Undecodable),
                };
                Instruction {
                    offset: i as u32,
                    len: 1,
                    opcode: opcode.into(),
                    text: opcode.into(),
                    kind,
                }
            })
            .collect()
    }
}

#[test]
fn a_custom_decoder_plugs_in() {
    let dir = TempDir::new("seq-custom");
    // push push add jz | push add ret ; in g: push add ret
    let f = [1u8, 1, 2, 3, 1, 2, 0];
    let g = [1u8, 2, 0];
    let mut pcs = Vec::new();
    for (k, n) in [0, 4, 4, 1, 2, 2, 0].into_iter().enumerate() {
        pcs.extend(rep(0x100 + k as u64, n));
    }
    pcs.extend(rep(0x200, 1));
    let p = load_bytes(
        &dir,
        "toy.pulley",
        &pulley_file(&[("f", 0x100, &f), ("g", 0x200, &g)], &pcs, 3),
    );
    let s = mine(
        &p,
        &SequenceOptions {
            max_len: 2,
            top: None,
            decoder: DecoderChoice::Custom(Arc::new(Toy)),
            ..SequenceOptions::default()
        },
    );
    let got: Vec<(String, u64, usize)> = s
        .candidates
        .iter()
        .map(|c| (c.opcodes.join(" "), c.samples, c.sites))
        .collect();
    // Offset 0 is a branch target, so `jz` ends a block that starts at 0;
    // `push add` occurs in f (twice) and g.
    let want: Vec<(String, u64, usize)> = [
        ("push add", 4 + 4 + 4 + 1, 3),
        ("add jz", 4 + 1, 1),
        ("push push", 4, 1),
        ("add ret", 2, 1),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b, c))
    .collect();
    assert_eq!(got, want);
}

/// `two_functions` written to `dir/p.pulley`; returns its path.
fn two_functions_file(dir: &crate::common::TempDir) -> String {
    let path = dir.path("p.pulley");
    std::fs::write(&path, two_functions().0).unwrap();
    path.to_str().unwrap().to_string()
}

/// Issue 12: the hex decoder has no instruction boundaries, so `sequences`
/// refuses it as a usage error instead of ranking runs of bytes.
#[test]
fn hex_decoder_is_refused() {
    let dir = crate::common::TempDir::new("seq-hex");
    let path = two_functions_file(&dir);
    let (code, out, err) = pcprof_exit(&["sequences", &path, "--decoder", "hex"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(
            "invalid value 'hex' for '--decoder <DECODER>': the hex decoder has no instruction \
             boundaries; sequences need a decoder that knows instructions (auto or pulley)"
        ),
        "{err}"
    );
    let (code, _, err) = pcprof_exit(&["sequences", &path, "--decoder", "pulley"]);
    assert_eq!(code, Some(0), "{err}");
}

/// Issue 12: length errors are usage errors (exit 2) naming the argument
/// the user gave; `--min-len` alone raises the default `--max-len`.
#[test]
fn length_errors_name_the_argument_given() {
    let dir = crate::common::TempDir::new("seq-lens");
    let path = two_functions_file(&dir);
    let (code, _, err) = pcprof_exit(&["sequences", &path, "--max-len", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid value '1' for '--max-len <MAX_LEN>': must be at least 2"),
        "{err}"
    );
    assert!(!err.contains("--min-len"), "{err}");
    let (code, _, err) = pcprof_exit(&["sequences", &path, "--max-len", "65"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must be at most 64"), "{err}");
    let (code, _, err) = pcprof_exit(&["sequences", &path, "--top", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid value '0' for '--top <TOP>': must be at least 1"),
        "{err}"
    );
    let (code, _, err) = pcprof_exit(&["sequences", &path, "--min-len", "5", "--max-len", "3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--min-len 5 is above --max-len 3"), "{err}");

    let (code, out, err) = pcprof_exit(&["sequences", &path, "--min-len", "5"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("runs of 5 to 5 instructions"), "{out}");
    let (code, out, err) = pcprof_exit(&["sequences", &path, "--max-len", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("runs of 2 to 2 instructions"), "{out}");
}

/// Issue 12: a top site with one sample reads `(1 sample)`.
#[test]
fn one_sample_is_singular() {
    use XReg::*;
    let dir = crate::common::TempDir::new("seq-plural");
    let (f, o) = assemble(&[xadd32(x0, x0, x1), xadd32(x0, x0, x1), op::Ret {}.into()]);
    let pcs = [0x1000 + o[1]];
    let path = dir.path("one.pulley");
    std::fs::write(&path, pulley_file(&[("f", 0x1000, &f)], &pcs, 16)).unwrap();
    let (ok, out, err) = pcprof(&["sequences", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains(": 1 sample, runs of 2 to 4"), "{out}");
    assert!(out.contains("f+0x0 (1 sample)\n"), "{out}");
    assert!(!out.contains("1 samples"), "{out}");
}
