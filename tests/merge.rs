//! `pcprof merge` and suites: functions matched by name and code, PCs
//! translated, interpreters labelled by origin, summaries summed, the
//! Pulley fixture merged with a native file, outputs that never replace an
//! input, a truncated input named with its offset (exit status 3) while the
//! others are reported; `report A B` equals `report` of the merged file;
//! `sequences A B` counts programs.

use std::collections::HashSet;

use pcprof::analysis::merge::{MergeInput, MergeOptions, OUTSIDE_BASE, merge};
use pcprof::analysis::{LoadOptions, Profile, load};
use pcprof::format::{Encoder, FunctionRecord, InterpreterRecord, Record, Summary};
use pcprof::{ProfileReader, Sample, Stats};
use pulley_interpreter::{Op, XReg, op};

use crate::common::{TempDir, header, read_all};
use crate::report::{assemble, pcprof_exit, pulley_file, rep, xadd32};

/// Exit status when an input could not be read whole.
const INPUT_FAILED: i32 = 3;

/// A native file: functions `(name, addr, code)`, interpreters `(id,
/// label)`, samples `(time, interp, pc)` in batches of 4, and a summary
/// counting them when `summary`.
fn native_file(
    funcs: &[(&str, u64, &[u8])],
    interps: &[(u32, Option<&str>)],
    samples: &[(u64, u32, u64)],
    summary: bool,
) -> Vec<u8> {
    let mut e = Encoder::native(Vec::new(), &header()).unwrap();
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
    for (id, label) in interps {
        e.write(&Record::Interpreter(InterpreterRecord {
            id: *id,
            label: label.map(str::to_string),
            registered_ns: 0,
        }))
        .unwrap();
    }
    let samples: Vec<Sample> = samples
        .iter()
        .map(|&(time_ns, interp, pc)| Sample {
            time_ns,
            interp,
            pc,
            stack: 0,
        })
        .collect();
    for chunk in samples.chunks(4) {
        e.write_samples(chunk).unwrap();
    }
    if summary {
        let last = samples.last().map_or(0, |s| s.time_ns);
        e.write(&Record::Summary(Summary {
            stopped_ns: last + 1,
            stats: Stats {
                frequency_hz: 1000,
                elapsed_ns: last + 1,
                ticks_scheduled: samples.len() as u64 + 1,
                ticks_taken: samples.len() as u64,
                ticks_missed: 1,
                samples_written: samples.len() as u64,
                lateness_p99_ns: 1000 * samples.len() as u64,
                ..Stats::default()
            },
        }))
        .unwrap();
    }
    e.into_inner()
}

/// A: `f` (code X) at 0x1000, `g` (code Y) at 0x2000, interpreter 0
/// "main"; 3 samples in f (at +0 and +1), 2 in g at +2, 1 outside.
fn file_a() -> Vec<u8> {
    native_file(
        &[("f", 0x1000, b"XXXX"), ("g", 0x2000, b"YYYY")],
        &[(0, Some("main"))],
        &[
            (1_000_000, 0, 0x1000),
            (2_000_000, 0, 0x1001),
            (3_000_000, 0, 0x1000),
            (4_000_000, 0, 0x2002),
            (5_000_000, 0, 0x2002),
            (6_000_000, 0, 0x9000),
        ],
        true,
    )
}

/// B: `f` with A's code at another address, `g` with other code at A's
/// address; interpreters 0 "worker" and 1 without a label; 4 samples in
/// f at +3, 1 in g at +0.
fn file_b() -> Vec<u8> {
    native_file(
        &[("f", 0x5000, b"XXXX"), ("g", 0x2000, b"ZZZ")],
        &[(0, Some("worker")), (1, None)],
        &[
            (1_000_000, 0, 0x5003),
            (1_000_000, 1, 0x5003),
            (2_000_000, 0, 0x5003),
            (2_000_000, 1, 0x5003),
            (3_000_000, 1, 0x2000),
        ],
        true,
    )
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

fn load_path(path: &str) -> Profile {
    load(path.as_ref(), &LoadOptions::default(), |_| {}).unwrap()
}

/// `(name, code, samples)` of every function, sorted.
fn functions(p: &Profile) -> Vec<(String, Vec<u8>, u64)> {
    let mut v: Vec<_> = p
        .functions
        .iter()
        .map(|f| (f.name.clone(), f.code.clone(), f.samples))
        .collect();
    v.sort();
    v
}

#[test]
fn two_native_files_merge_by_name_and_code() {
    let dir = TempDir::new("merge-two");
    let a = write(&dir, "a.pcprof", &file_a());
    let b = write(&dir, "b.pcprof", &file_b());
    let out = dir.path("m.pcprof");
    let out = out.to_str().unwrap();
    let (code, _, err) = pcprof_exit(&["merge", &a, &b, "-o", out]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("wrote") && err.contains("11 samples from 2 files"),
        "{err}"
    );

    let m = load_path(out);
    assert!(m.read_error.is_none(), "{:?}", m.read_error);
    assert_eq!(m.total_samples, 11);
    assert_eq!(m.unresolved, 1);
    // f is one function (same name and code); g's two codes stay apart.
    assert_eq!(
        functions(&m),
        vec![
            ("f".to_string(), b"XXXX".to_vec(), 7),
            ("g".to_string(), b"YYYY".to_vec(), 2),
            ("g".to_string(), b"ZZZ".to_vec(), 1),
        ]
    );
    // Offsets survive the translation.
    let f = m.functions.iter().find(|f| f.name == "f").unwrap();
    assert_eq!(f.hits.dense(4), vec![2, 1, 0, 4]);
    let g = m.functions.iter().find(|f| f.code == b"YYYY").unwrap();
    assert_eq!(g.hits.dense(4), vec![0, 0, 2, 0]);
    // Interpreters stay apart, labelled with their origin.
    let labels: Vec<(u32, Option<String>, u64)> = m
        .interpreters
        .iter()
        .map(|i| (i.id, i.label.clone(), i.samples))
        .collect();
    assert_eq!(
        labels,
        vec![
            (0, Some("a.pcprof: main".to_string()), 6),
            (1, Some("b.pcprof: worker".to_string()), 2),
            (2, Some("b.pcprof: interp-1".to_string()), 3),
        ]
    );
    // The summary sums the runs'; runs follow one another in time.
    let s = m.summary.as_ref().unwrap();
    assert_eq!(s.stats.samples_written, 11);
    assert_eq!(s.stats.ticks_taken, 11);
    assert_eq!(s.stats.ticks_missed, 2);
    assert_eq!(s.stats.elapsed_ns, 6_000_001 + 3_000_001);
    assert_eq!(s.stats.lateness_p99_ns, 6000, "the larger of the two");
    assert_eq!(m.time_range, Some((1_000_000, 6_000_002 + 3_000_000)));

    // The outside PC stays outside every function, above all of them.
    let raw = read_all(&std::fs::read(out).unwrap()).unwrap();
    assert!(raw.error.is_none());
    assert!(raw.unloads.is_empty());
    let outside: Vec<u64> = raw
        .samples
        .iter()
        .map(|s| s.pc)
        .filter(|&pc| pc >= OUTSIDE_BASE)
        .collect();
    assert_eq!(outside, vec![OUTSIDE_BASE + 0x9000]);
    let mut spans: Vec<(u64, u64)> = raw
        .functions
        .iter()
        .map(|f| (f.addr, f.addr + f.code.len() as u64))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
}

#[test]
fn the_library_reports_each_source() {
    let dir = TempDir::new("merge-lib");
    let a = write(&dir, "a.pcprof", &file_a());
    let b = write(&dir, "b.pcprof", &file_b());
    let inputs = MergeInput::from_paths([&a, &b]);
    let report = merge(&inputs, &dir.path("m.pcprof"), &MergeOptions::default()).unwrap();
    assert!(report.all_read());
    assert_eq!(report.functions, 3);
    assert_eq!(report.samples, 11);
    let per: Vec<(&str, u64, u64, u64, u64)> = report
        .sources
        .iter()
        .map(|s| {
            (
                s.origin.as_str(),
                s.samples,
                s.new_functions,
                s.unresolved,
                s.summary.as_ref().map_or(0, |x| x.stats.samples_written),
            )
        })
        .collect();
    assert_eq!(
        per,
        vec![("a.pcprof", 6, 2, 1, 6), ("b.pcprof", 5, 1, 0, 5)]
    );
    assert_eq!(report.sources[1].time_offset_ns, 6_000_002);
    // Two inputs with the same file name are told apart by their paths.
    std::fs::create_dir_all(dir.path("x")).unwrap();
    let a2 = write(&dir, "x/a.pcprof", &file_a());
    let labels: Vec<String> = MergeInput::from_paths([&a, &a2])
        .into_iter()
        .map(|i| i.origin)
        .collect();
    assert_eq!(labels, vec![a.clone(), a2.clone()]);
}

/// The Pulley fixture written by Wasmtime 48, gunzipped into `dir`.
fn flite(dir: &TempDir) -> String {
    let gz = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/flite-slt-1khz.data.gz");
    let out = dir.path("flite.data");
    let status = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    out.to_str().unwrap().to_string()
}

#[test]
fn the_pulley_fixture_merges_with_a_native_file() {
    let dir = TempDir::new("merge-flite");
    let fl = flite(&dir);
    let a = write(&dir, "a.pcprof", &file_a());
    let out = dir.path("m.pcprof");
    let out = out.to_str().unwrap();
    let (code, _, err) = pcprof_exit(&["merge", &fl, &a, "-o", out]);
    assert_eq!(code, Some(0), "{err}");

    // The fixture's distinct (name, code) pairs, read straight.
    let mut distinct = HashSet::new();
    for ev in ProfileReader::open(&fl).unwrap() {
        if let pcprof::Event::Function(f) = ev.unwrap() {
            distinct.insert((f.name, f.code));
        }
    }
    let m = load_path(out);
    assert!(m.read_error.is_none(), "{:?}", m.read_error);
    assert_eq!(m.total_samples, 14_116 + 6);
    assert_eq!(m.functions.len(), distinct.len() + 2);
    let top = m.functions_by_heat()[0];
    assert_eq!((top.name.as_str(), top.samples), ("mlsa_resynthesis", 9136));
    let labels: Vec<Option<String>> = m.interpreters.iter().map(|i| i.label.clone()).collect();
    assert_eq!(
        labels,
        vec![
            Some("flite.data: pulley".to_string()),
            Some("a.pcprof: main".to_string())
        ]
    );
    assert_eq!(m.interpreters[0].samples, 14_116);
    // Only the native input had a summary: the sum is its own.
    assert_eq!(m.summary.as_ref().unwrap().stats.samples_written, 6);

    // `report A B` gives the figures of `report` of the merged file.
    let (c1, merged, _) = pcprof_exit(&["report", out, "--instructions", "false"]);
    let (c2, suite, _) = pcprof_exit(&["report", &fl, &a, "--instructions", "false"]);
    assert_eq!((c1, c2), (Some(0), Some(0)));
    let (suite_report, sources) = suite.split_once("\nsuite: 2 files merged").unwrap();
    let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(suite_report.trim_end()), body(merged.trim_end()));
    assert!(
        suite_report.starts_with("profile: flite.data + a.pcprof (native format"),
        "{suite_report}"
    );
    assert!(
        sources.contains("flite.data: pulley format, 14116 samples"),
        "{sources}"
    );
    assert!(
        sources.contains("a.pcprof: native format, 6 samples, 1 outside every function; run:"),
        "{sources}"
    );
}

#[test]
fn merge_never_writes_over_an_input() {
    let dir = TempDir::new("merge-same");
    let a = write(&dir, "a.pcprof", &file_a());
    let b = write(&dir, "b.pcprof", &file_b());
    let before = std::fs::read(&b).unwrap();
    let (code, _, err) = pcprof_exit(&["merge", &a, &b, "-o", &b]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the output is the input file"), "{err}");
    assert_eq!(std::fs::read(&b).unwrap(), before);
    // Spelled differently, through a symlink: still refused.
    let link = dir.path("link.pcprof");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let (code, _, _) = pcprof_exit(&["merge", &a, &b, "-o", link.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(std::fs::read(&a).unwrap(), file_a());
}

#[test]
fn a_truncated_input_is_named_with_its_offset_and_the_others_are_merged() {
    let dir = TempDir::new("merge-cut");
    let a = write(&dir, "a.pcprof", &file_a());
    let whole = file_b();
    let cut = &whole[..whole.len() - 10];
    let b = write(&dir, "b.pcprof", cut);
    let fault = {
        let r = ProfileReader::new(cut).unwrap();
        let e = r.filter_map(Result::err).next().unwrap();
        assert!(e.is_truncation());
        e.offset()
    };
    let c = write(&dir, "c.pcprof", &file_a());
    let out = dir.path("m.pcprof");
    let out = out.to_str().unwrap();
    let (code, _, err) = pcprof_exit(&["merge", &a, &b, &c, "-o", out]);
    assert_eq!(code, Some(INPUT_FAILED), "{err}");
    let failed: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(failed.len(), 1, "{err}");
    assert!(
        failed[0].contains(&b) && failed[0].contains(&format!("truncated record at byte {fault}")),
        "{err}"
    );
    // b's summary was the cut record: its samples are all merged, and the
    // two whole inputs around it too.
    let m = load_path(out);
    assert_eq!(m.total_samples, 6 + 5 + 6);
    assert_eq!(m.summary.as_ref().unwrap().stats.samples_written, 12);

    // Analysis commands over the suite: the report of what was read, the
    // file named on stderr, the same exit status.
    let (code, report, err) = pcprof_exit(&["report", &a, &b, &c]);
    assert_eq!(code, Some(INPUT_FAILED), "{err}");
    assert!(report.contains("samples: 17 in 3 functions"), "{report}");
    assert!(report.contains("stopped early:"), "{report}");
    assert!(
        err.contains(&b) && err.contains(&format!("byte {fault}")),
        "{err}"
    );
    let (code, _, err) = pcprof_exit(&["sequences", &a, &b]);
    assert_eq!(code, Some(INPUT_FAILED), "{err}");
    assert!(err.contains(&format!("byte {fault}")), "{err}");
    // A file that is no profile at all is named too.
    let junk = write(&dir, "junk.pcprof", b"hello");
    let (code, _, err) = pcprof_exit(&["merge", &a, &junk, "-o", out]);
    assert_eq!(code, Some(INPUT_FAILED), "{err}");
    assert!(
        err.contains("junk.pcprof") && err.contains("not a profile"),
        "{err}"
    );
}

/// A Pulley function of `xadd32 ; xmov ; xadd32 ; ret` at 0x1000, and
/// samples on its first three instructions `n` times each.
fn pulley_program(n: usize) -> Vec<u8> {
    use XReg::*;
    let ops: Vec<Op> = vec![
        xadd32(x0, x0, x1),
        op::Xmov { dst: x2, src: x0 }.into(),
        xadd32(x0, x0, x2),
        op::Ret {}.into(),
    ];
    let (code, o) = assemble(&ops);
    let mut pcs = Vec::new();
    for off in &o[..3] {
        pcs.extend(rep(0x1000 + off, n));
    }
    pulley_file(&[("kernel", 0x1000, &code)], &pcs, 16)
}

#[test]
fn sequences_over_a_suite_count_programs() {
    let dir = TempDir::new("merge-seq");
    let p1 = write(&dir, "p1.data", &pulley_program(10));
    let p2 = write(&dir, "p2.data", &pulley_program(5));
    let (code, out, err) = pcprof_exit(&["sequences", &p1, &p2, "--top", "3"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("of 2 programs (p1.data + p2.data): 45 samples"),
        "{out}"
    );
    let header = out.lines().find(|l| l.starts_with("rank")).unwrap();
    assert!(header.contains("programs"), "{header}");
    // The whole function's run is the top candidate: all 45 samples, in
    // both programs, its best site in p1.
    let first = out
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    let cols: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(&cols[..4], &["1", "100.00%", "45", "2"], "{first}");
    assert!(
        first.contains("p1.data: kernel+0x0 (30 samples)"),
        "{first}"
    );
}

#[test]
fn diff_takes_several_files_a_side() {
    let dir = TempDir::new("merge-diff");
    let a = write(&dir, "a.pcprof", &file_a());
    let b = write(&dir, "b.pcprof", &file_b());
    let (code, two, err) = pcprof_exit(&["diff", &a, &b]);
    assert_eq!(code, Some(0), "{err}");
    let (code, suites, err) = pcprof_exit(&["diff", &a, "--", &a, &b]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(two, suites);
    let (code, _, err) = pcprof_exit(&["diff", &a, &b, &a]);
    assert_eq!(code, Some(1));
    assert!(err.contains("A1 A2 -- B1 B2"), "{err}");
}
