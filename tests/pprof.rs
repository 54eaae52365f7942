//! The `pprof` export: decoded back with profile.proto's own definitions on
//! profiles whose every count is known, then read by the real consumer,
//! `go tool pprof` (`-raw`, `-top`, `-traces`), on the demo, the stack VM
//! and the profile Wasmtime wrote. Without Go those say they were skipped;
//! under `CI` they fail instead.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pcprof::Sample;
use pcprof::analysis::convert::pprof::{PULLEY_COMMENT, proto};
use pcprof::analysis::convert::{
    ConvertOptions, ExportFormat, Granularity, convert, convert_to_writer,
};
use pcprof::analysis::report::DecoderChoice;
use pcprof::disasm::HexDecoder;
use pcprof::format::{Encoder, FileHeader, FunctionRecord, InterpreterRecord, RateRecord, Record};
use prost::Message as _;

use crate::common::TempDir;
use crate::convert::{HOT, STARTED_UNIX_NS, WARM, write_fixture};
use crate::report::{pcprof_exit, pulley_file, rep};

fn options() -> ConvertOptions {
    ConvertOptions {
        decoder: DecoderChoice::Custom(Arc::new(HexDecoder { width: 4 })),
        ..ConvertOptions::default()
    }
}

/// Gunzips and decodes a pprof file.
fn decode(bytes: &[u8]) -> proto::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .expect("gzip");
    proto::Profile::decode(raw.as_slice()).expect("profile.proto")
}

fn export(input: &Path, options: &ConvertOptions) -> proto::Profile {
    let out = input.with_extension("pb.gz");
    convert(input, &out, ExportFormat::Pprof, options).expect("convert to pprof");
    decode(&std::fs::read(&out).unwrap())
}

fn s(p: &proto::Profile, i: i64) -> &str {
    &p.string_table[usize::try_from(i).unwrap()]
}

/// Each sample as (its frames' function names, leaf first then callers,
/// with the leaf location's address; its labels; its values).
type Row = (Vec<String>, u64, BTreeMap<String, String>, Vec<i64>);

fn rows(p: &proto::Profile) -> Vec<Row> {
    let function = |id: u64| {
        let f = p.function.iter().find(|f| f.id == id).expect("function id");
        s(p, f.name).to_string()
    };
    let location = |id: u64| p.location.iter().find(|l| l.id == id).expect("location id");
    p.sample
        .iter()
        .map(|sample| {
            let mut names = Vec::new();
            for &id in &sample.location_id {
                for line in &location(id).line {
                    names.push(function(line.function_id));
                }
            }
            let leaf = location(sample.location_id[0]).address;
            let labels = sample
                .label
                .iter()
                .map(|l| (s(p, l.key).to_string(), s(p, l.str).to_string()))
                .collect();
            (names, leaf, labels, sample.value.clone())
        })
        .collect()
}

fn labels(id: &str, label: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("interpreter_id".to_string(), id.to_string()),
        ("interpreter_label".to_string(), label.to_string()),
    ])
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pprof_holds_every_count_label_and_time_of_the_fixture() {
    let dir = TempDir::new("pprof-fixture");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let p = export(&input, &options());

    assert_eq!(p.string_table[0], "");
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(&p, t.r#type), s(&p, t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    let period_type = p.period_type.as_ref().expect("period type");
    assert_eq!(
        (s(&p, period_type.r#type), s(&p, period_type.unit)),
        ("cpu", "nanoseconds")
    );
    assert_eq!(s(&p, p.default_sample_type), "cpu");
    assert_eq!(p.period, 1_000_000);
    assert_eq!(p.time_nanos, STARTED_UNIX_NS as i64);
    assert_eq!(p.duration_nanos, 61_000_000);

    // Hottest first; +0x4 and +0x5 are two hex lines, so two instructions;
    // 1 ms a sample at the fixture's 1 kHz.
    let ms = 1_000_000;
    let expect: Vec<Row> = vec![
        (
            strs(&["hot+0x4 04 05 06 07", "hot"]),
            4,
            labels("1", "main"),
            vec![30, 30 * ms],
        ),
        (
            strs(&["hot+0x8 08 09 0a 0b", "hot"]),
            8,
            labels("1", "main"),
            vec![20, 20 * ms],
        ),
        (
            strs(&["warm+0x0 00 01 02 03", "warm"]),
            0,
            labels("2", "worker"),
            vec![15, 15 * ms],
        ),
        (
            strs(&["warm+0xc 0c 0d 0e 0f", "warm"]),
            12,
            labels("2", "worker"),
            vec![14, 14 * ms],
        ),
        (
            strs(&["hot+0x5 05 06 07 08", "hot"]),
            5,
            labels("1", "main"),
            vec![10, 10 * ms],
        ),
        (
            strs(&["[unresolved]"]),
            0,
            labels("2", "worker"),
            vec![1, ms],
        ),
    ];
    assert_eq!(rows(&p), expect);

    // Every id a sample or location names exists; the one mapping is
    // already symbolised (pprof looks for no binary).
    assert_eq!(p.mapping.len(), 1);
    assert!(p.mapping[0].has_functions && p.mapping[0].has_inline_frames);
    assert!(p.location.iter().all(|l| l.mapping_id == p.mapping[0].id));
    assert!(!p.function.iter().any(|f| s(&p, f.name) == "cold"));
}

#[test]
fn pprof_function_granularity_stops_at_the_function_and_keeps_addresses() {
    let dir = TempDir::new("pprof-function");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let options = ConvertOptions {
        granularity: Granularity::Function,
        interp: Some(1),
        ..options()
    };
    let p = export(&input, &options);
    let got: Vec<(Vec<String>, u64, i64)> = rows(&p)
        .into_iter()
        .map(|(names, addr, _, v)| (names, addr, v[0]))
        .collect();
    assert_eq!(
        got,
        [
            (strs(&["hot"]), 4, 30),
            (strs(&["hot"]), 8, 20),
            (strs(&["hot"]), 5, 10),
        ]
    );
    assert!(!p.mapping[0].has_inline_frames);
}

#[test]
fn pprof_nanoseconds_follow_rate_changes() {
    let dir = TempDir::new("pprof-rate");
    let input = dir.path("rate.pcprof");
    let mut e = Encoder::native(
        Vec::new(),
        &FileHeader {
            pcprof_version: "test".to_string(),
            pid: 1,
            started_unix_ns: 5,
            frequency_hz: 1000,
            flush_samples: 20,
            clock: "virtual".to_string(),
        },
    )
    .unwrap();
    e.write(&Record::Function(FunctionRecord {
        addr: HOT,
        name: "f".to_string(),
        code: (0..16).collect(),
        loaded_ns: 0,
        listing: None,
    }))
    .unwrap();
    e.write(&Record::Interpreter(InterpreterRecord {
        id: 0,
        label: None,
        registered_ns: 0,
    }))
    .unwrap();
    let at = |k: u64| Sample {
        time_ns: k * 1_000_000,
        interp: 0,
        pc: HOT,
        stack: 0,
    };
    // 10 samples at 1 kHz (1 ms each), a pause, 10 at 250 Hz (4 ms each).
    e.write_samples(&(1..=10).map(at).collect::<Vec<_>>())
        .unwrap();
    for hz in [0, 250] {
        e.write(&Record::Rate(RateRecord {
            time_ns: 10_500_000,
            frequency_hz: hz,
        }))
        .unwrap();
    }
    e.write_samples(&(11..=20).map(|k| at(k * 4)).collect::<Vec<_>>())
        .unwrap();
    std::fs::write(&input, e.into_inner()).unwrap();
    let p = export(&input, &ConvertOptions::default());
    let got: Vec<Row> = rows(&p);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].3, vec![20, 10 * 1_000_000 + 10 * 4_000_000]);
    // No label: only the id.
    assert_eq!(
        got[0].2,
        BTreeMap::from([("interpreter_id".to_string(), "0".to_string())])
    );
    // No summary: the profile lasts until its last sample.
    assert_eq!(p.duration_nanos, 80_000_000);
}

#[test]
fn pprof_of_a_pulley_file_counts_and_says_so() {
    let dir = TempDir::new("pprof-pulley");
    let input = dir.path("in.pulley");
    let code: Vec<u8> = (0..16).collect();
    let pcs: Vec<u64> = rep(WARM + 4, 7).chain(rep(WARM + 8, 3)).collect();
    std::fs::write(&input, pulley_file(&[("w", WARM, &code)], &pcs, 4)).unwrap();
    let out = dir.path("out.pb.gz");
    let report = convert(&input, &out, ExportFormat::Pprof, &options()).unwrap();
    assert_eq!(report.samples, 10);
    assert!(
        report.notes.iter().any(|n| n.contains("no times")),
        "{:?}",
        report.notes
    );
    let p = decode(&std::fs::read(&out).unwrap());
    let types: Vec<&str> = p.sample_type.iter().map(|t| s(&p, t.r#type)).collect();
    assert_eq!(types, ["samples"]);
    assert_eq!((p.time_nanos, p.duration_nanos, p.period), (0, 0, 1));
    let comments: Vec<&str> = p.comment.iter().map(|&c| s(&p, c)).collect();
    assert!(comments.contains(&PULLEY_COMMENT), "{comments:?}");
    let counts: Vec<(u64, Vec<i64>)> = rows(&p).into_iter().map(|r| (r.1, r.3)).collect();
    assert_eq!(counts, [(4, vec![7]), (8, vec![3])]);
}

#[test]
fn pprof_from_a_reader_is_the_file_export_byte_for_byte() {
    let dir = TempDir::new("pprof-reader");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let out = dir.path("out.pb.gz");
    convert(&input, &out, ExportFormat::Pprof, &options()).unwrap();
    let bytes = std::fs::read(&input).unwrap();
    let mut written = Vec::new();
    let report = convert_to_writer(
        &mut bytes.as_slice(),
        &mut written,
        ExportFormat::Pprof,
        &options(),
    )
    .unwrap();
    assert_eq!(report.samples, 90);
    assert_eq!(written, std::fs::read(&out).unwrap());
}

// --- The real consumer: go tool pprof ---------------------------------

/// `go`, or `None` after a notice (a failure under CI).
fn go_or_skip(test: &str) -> Option<PathBuf> {
    let found = Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("go"));
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: go is not installed (`apt-get install -y golang-go`), and CI is set");
        }
        eprintln!("notice: {test} skipped: go is not installed (apt-get install -y golang-go)");
    }
    found
}

/// `go tool pprof ARGS FILE`'s standard output.
fn go_pprof(go: &Path, dir: &TempDir, args: &[&str], file: &Path) -> String {
    let out = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        // Go's caches in the test's directory: HOME may be unwritable.
        .env("GOCACHE", dir.path("gocache"))
        .env("HOME", dir.path("."))
        .env("PPROF_TMPDIR", dir.path("."))
        .output()
        .expect("run go tool pprof");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `-top` over every node, in samples whatever the default value.
const TOP_ALL: &[&str] = &[
    "-top",
    "-sample_index=samples",
    "-nodecount=100000",
    "-nodefraction=0",
];

/// `N` of a `-top` header's `Showing nodes accounting for X, P% of N total`.
fn top_total(top: &str) -> u64 {
    let line = top
        .lines()
        .find(|l| l.starts_with("Showing nodes"))
        .unwrap_or_else(|| panic!("no total in {top}"));
    line.rsplit(" of ")
        .next()
        .and_then(|t| t.strip_suffix(" total"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// The rows of a `-top` table: (flat, cum, name).
fn top_rows(top: &str) -> Vec<(u64, u64, String)> {
    top.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // flat flat% sum% cum cum% name...
            let name = f.get(5..)?.join(" ");
            let name = name.strip_suffix(" (inline)").unwrap_or(&name).to_string();
            Some((f[0].parse().ok()?, f[3].parse().ok()?, name))
        })
        .collect()
}

/// What `go tool pprof` prints of `profile`'s export matches pcprof's own
/// reading: sample totals, the hottest function and instruction (as
/// `pcprof report` shows them), and the interpreter labels.
fn check_with_go(test: &str, profile: &Path, labels: &[(u32, Option<&str>)]) {
    let Some(go) = go_or_skip(test) else {
        return;
    };
    let dir = TempDir::new(test);
    let loaded = pcprof::analysis::load(profile, &pcprof::analysis::LoadOptions::default(), |_| {})
        .expect("load");
    let samples = loaded.total_samples;
    let hot_fn = loaded.functions_by_heat()[0];
    let (hot_ins_fn, hot_offset, hot_n) = loaded
        .functions
        .iter()
        .flat_map(|f| f.hits.iter().map(move |(o, n)| (f.name.as_str(), o, n)))
        .max_by_key(|&(_, _, n)| n)
        .expect("a sampled instruction");
    let (code, report, err) =
        pcprof_exit(&["report", profile.to_str().unwrap(), "--threshold", "0"]);
    assert_eq!(code, Some(0), "{err}");

    let ins = dir.path("ins.pb.gz");
    let fun = dir.path("fun.pb.gz");
    for (out, granularity) in [
        (&ins, Granularity::Instruction),
        (&fun, Granularity::Function),
    ] {
        let options = ConvertOptions {
            granularity,
            ..ConvertOptions::default()
        };
        let converted = convert(profile, out, ExportFormat::Pprof, &options).unwrap();
        assert_eq!(converted.samples, samples);
    }

    // By instruction: the totals, in samples whatever the default value;
    // the hottest instruction first (ties aside), named `func+0x1c opcode`
    // with the opcode `pcprof report` shows at that offset.
    let top = go_pprof(&go, &dir, TOP_ALL, &ins);
    assert_eq!(top_total(&top), samples, "{top}");
    let rows = top_rows(&top);
    let prefix = format!("{hot_ins_fn}+{hot_offset:#x} ");
    let row = rows
        .iter()
        .find(|r| r.2.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{prefix} not in\n{top}"));
    assert_eq!((row.0, rows[0].0), (hot_n, hot_n), "{top}");
    let opcode = &row.2[prefix.len()..];
    assert!(
        report.contains(&format!("{hot_offset:x}: {opcode}")),
        "{hot_offset:x}: {opcode} not in the report:\n{report}"
    );
    // By function: the hottest function first, as in the report.
    let top = go_pprof(&go, &dir, TOP_ALL, &fun);
    assert_eq!(top_total(&top), samples, "{top}");
    let rows = top_rows(&top);
    assert_eq!(rows[0].0, hot_fn.samples, "{top}");
    assert!(
        rows.contains(&(hot_fn.samples, hot_fn.samples, hot_fn.name.clone())),
        "{top}"
    );
    let first_line = report
        .lines()
        // `(N samples)`, or `(N samples, total P%)` with call stacks.
        .find(|l| {
            (l.contains(" samples)") || l.contains(" samples, total "))
                && !l.starts_with('\t')
                && !l.contains("interpreter")
        })
        .expect("a function line");
    assert!(
        first_line.contains(&format!("% {}  (", hot_fn.name)),
        "{first_line}"
    );

    // -raw: every sample's values and labels; the counts add up.
    let raw = go_pprof(&go, &dir, &["-raw"], &ins);
    let mut total = 0;
    let mut in_samples = false;
    for l in raw.lines() {
        if l.starts_with("Samples:") {
            in_samples = true;
            continue;
        }
        if l.starts_with("Locations") {
            break;
        }
        let Some((values, _)) = l.trim().split_once(':') else {
            continue;
        };
        if in_samples
            && let Ok(n) = values
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse::<u64>()
        {
            total += n;
        }
    }
    assert_eq!(total, samples, "{raw}");
    for (id, label) in labels {
        assert!(raw.contains(&format!("interpreter_id:[{id}]")), "{raw}");
        if let Some(l) = label {
            assert!(raw.contains(&format!("interpreter_label:[{l}]")), "{raw}");
        }
    }
    // -traces: labels, then the stack leaf first: the instruction, then
    // its function.
    let traces = go_pprof(&go, &dir, &["-traces"], &ins);
    assert!(traces.contains("interpreter_id:"), "{traces}");
    let at = traces
        .find(&prefix)
        .unwrap_or_else(|| panic!("{prefix} not in\n{traces}"));
    let next = traces[at..].lines().nth(1).unwrap_or("").trim();
    assert_eq!(next, hot_ins_fn, "{traces}");
}

#[test]
fn go_pprof_reads_the_demo() {
    let dir = TempDir::new("pprof-go-demo");
    let data = dir.path("demo.data");
    let (code, out, err) = pcprof_exit(&[
        "demo",
        "--seconds",
        "1",
        "--threads",
        "2",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    check_with_go(
        "go_pprof_reads_the_demo",
        &data,
        &[(0, Some("interp-0")), (1, Some("interp-1"))],
    );
}

#[test]
fn go_pprof_reads_the_profile_wasmtime_wrote() {
    let dir = TempDir::new("pprof-go-flite");
    let data = crate::real::flite(&dir);
    check_with_go(
        "go_pprof_reads_the_profile_wasmtime_wrote",
        Path::new(&data),
        &[(0, None)],
    );
}

/// The stack VM example, run here as its `main` would.
#[path = "../examples/stack_vm.rs"]
#[allow(dead_code)]
mod stack_vm;

#[test]
fn go_pprof_reads_the_stack_vm() {
    let dir = TempDir::new("pprof-go-stack-vm");
    let data = dir.path("stack-vm.data");
    // Unoptimised here: a smaller run than the example's.
    let (_, stats) = stack_vm::record(&data, 3_000, 15).expect("stack VM");
    assert!(stats.samples_written > 0);
    check_with_go("go_pprof_reads_the_stack_vm", &data, &[(0, Some("main"))]);
}

#[test]
fn pcprof_convert_takes_the_granularity() {
    let dir = TempDir::new("pprof-cli");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let out = dir.path("out.pb.gz");
    let (code, _, err) = pcprof_exit(&[
        "convert",
        input.to_str().unwrap(),
        "--to",
        "pprof",
        "--granularity",
        "function",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("wrote") && err.contains("90 samples"), "{err}");
    let p = decode(&std::fs::read(&out).unwrap());
    let mut names: Vec<&str> = p.function.iter().map(|f| s(&p, f.name)).collect();
    names.sort();
    assert_eq!(names, ["[unresolved]", "hot", "warm"]);

    let (code, _, err) = pcprof_exit(&[
        "convert",
        input.to_str().unwrap(),
        "--to",
        "pprof",
        "--granularity",
        "line",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("expected function or instruction"), "{err}");
}

#[test]
fn pprof_profiles_cut_a_native_file_into_dated_intervals() {
    use pcprof::analysis::convert::pprof::pprof_profiles_from;

    let dir = TempDir::new("pprof-intervals");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let mut got = Vec::new();
    let reader = pcprof::ProfileReader::open(&input).unwrap();
    let report =
        pprof_profiles_from(reader, &options(), Some(20_000_000), |p| got.push(p)).unwrap();
    assert_eq!(report.samples, 90);
    // Ticks 1..=60 ms for `main`, 1..=30 ms for `worker`, in windows of
    // 20 ms from the clock's epoch: [0, 20) holds ticks 1..=19 of both.
    let ms = 1_000_000i64;
    let summary: Vec<(i64, i64, i64, i64)> = got
        .iter()
        .map(|p| {
            let n = p.sample.iter().map(|s| s.value[0]).sum();
            let ns = p.sample.iter().map(|s| s.value[1]).sum();
            (
                p.time_nanos - STARTED_UNIX_NS as i64,
                p.duration_nanos,
                n,
                ns,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 20 * ms, 38, 38 * ms),
            (20 * ms, 20 * ms, 31, 31 * ms),
            (40 * ms, 20 * ms, 20, 20 * ms),
            (60 * ms, 20 * ms, 1, ms),
        ]
    );
    // Each window is a whole profile: its own tables, labels kept.
    for p in &got {
        assert_eq!(p.period, 1_000_000);
        assert!(!rows(p).is_empty());
        assert!(
            rows(p)
                .iter()
                .all(|r| r.2.contains_key("interpreter_label"))
        );
    }

    // A Pulley file has no times to cut.
    let pulley = dir.path("in.pulley");
    let code: Vec<u8> = (0..16).collect();
    std::fs::write(&pulley, pulley_file(&[("w", WARM, &code)], &[WARM], 1)).unwrap();
    let reader = pcprof::ProfileReader::open(&pulley).unwrap();
    let e = pprof_profiles_from(reader, &options(), Some(1), |_| panic!("no profile")).unwrap_err();
    assert!(e.to_string().contains("no times"), "{e}");
}

/// Call stacks (format version 3): each sample's locations are its leaf
/// instruction, then each caller's function, innermost first, with
/// `[truncated]` where frames were lost; the counts are the collapsed
/// export's, path by path.
#[test]
fn pprof_carries_the_call_stacks_leaf_first() {
    let dir = TempDir::new("pprof-stacks");
    let input = dir.path("v3.pcprof");
    std::fs::write(&input, include_bytes!("fixtures/native-v3-stacks.data")).unwrap();
    let p = export(&input, &ConvertOptions::default());
    let mut got: Vec<(Vec<String>, i64)> = rows(&p)
        .into_iter()
        .map(|(names, _, _, values)| (names, values[0]))
        .collect();
    got.sort();
    let want = |names: &[&str], n: i64| (strs(names), n);
    assert_eq!(
        got,
        [
            want(&["f+0x1 inc", "f", "main"], 3),
            want(&["g+0x0 inc", "g", "f", "main"], 3),
            want(&["g+0x2 inc", "g", "[truncated]", "main"], 3),
            want(&["g+0x2 inc", "g", "g", "f", "main"], 3),
            want(&["main+0x0 inc", "main"], 12),
        ]
    );
}
