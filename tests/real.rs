//! Profiles shaped like real programs': the fixture Wasmtime wrote, code of
//! megabytes with few samples, samples spread over many threads' tallies.
//! Exact figures, no timing.

use pcprof::analysis::{LoadOptions, Profile, load, load_bytes};
use pcprof::disasm::InstructionDecoder;
use pcprof::pulley::PulleyDecoder;
use pcprof::pulley::workload::DemoProgram;

use crate::common::TempDir;
use crate::report::{pcprof_exit, pulley_file};

/// The Pulley fixture written by Wasmtime 48 (beside the repository, in
/// `../shared/fixtures/`), gunzipped into `dir`.
pub fn flite(dir: &TempDir) -> String {
    let gz = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/flite-slt-1khz.data.gz");
    let out = dir.path("flite.data");
    let status = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "gzip -dc {}", gz.display());
    out.to_str().unwrap().to_string()
}

#[test]
fn the_fixture_reports_its_table_its_callees_and_folds_cold_code() {
    let dir = TempDir::new("real-flite");
    let fl = flite(&dir);
    let (code, out, err) = pcprof_exit(&["report", &fl]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "decoder: Pulley table: Wasmtime 40-51 (detected: 1 438 of 1 438 sampled offsets on \
             instruction starts, 101 of 101 functions decode to their end)"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n 64.72% mlsa_resynthesis  (9136 samples)\n"),
        "{out}"
    );
    // Direct calls name the function they call.
    assert!(
        out.contains("call4 x19, x19, x0, x27, 0x1181    // target = 0x22dd -> b2en"),
        "{out}"
    );
    // The cold start of the hottest function is one line, and float
    // constants read as floats.
    assert!(
        out.contains("\t             0: ... 237 instructions, 1384 bytes not sampled (to 0x568)\n"),
        "{out}"
    );
    assert!(out.contains(": fconst32 f22, 1.0\n"), "{out}");
    // Asked for another Wasmtime's table, the bytecode is not what it
    // expects: the report says which table it used.
    let (code, out, err) = pcprof_exit(&["report", &fl, "--pulley-version", "36", "--top", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("decoder: Pulley table: Wasmtime 31-36 (as asked)"),
        "{out}"
    );
    let (code, _, err) = pcprof_exit(&["report", &fl, "--pulley-version", "30"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("Wasmtime version '30'"), "{err}");
    // Every instruction, when asked: no fold of listed code.
    let (_, all, _) = pcprof_exit(&["report", &fl, "--all-instructions", "--top", "1"]);
    assert!(!all.contains("not sampled"), "{all}");
    assert!(all.lines().count() > 1000);
}

/// A Pulley file: `functions` as (name, code), laid out from 0x10000, and
/// `pcs`; and the functions' addresses.
fn pulley_bytes(functions: &[(&str, Vec<u8>)], pcs: &[u64]) -> (Vec<u8>, Vec<u64>) {
    let mut addr = 0x10000u64;
    let mut addrs = Vec::new();
    for (_, code) in functions {
        addrs.push(addr);
        addr += code.len() as u64 + 16;
    }
    let laid: Vec<(&str, u64, &[u8])> = functions
        .iter()
        .zip(&addrs)
        .map(|((n, c), &a)| (*n, a, c.as_slice()))
        .collect();
    (pulley_file(&laid, pcs, 1 << 20), addrs)
}

/// `body` repeated until the code has at least `bytes`.
fn repeated(body: &[u8], bytes: usize) -> Vec<u8> {
    let mut code = Vec::with_capacity(bytes + body.len());
    while code.len() < bytes {
        code.extend_from_slice(body);
    }
    code
}

#[test]
fn big_code_lists_its_sampled_blocks_and_counts_the_rest() {
    let program = DemoProgram::new();
    let (_, body) = program.function_bodies().next().unwrap();
    let code = repeated(body, 1 << 20);
    let starts: Vec<u32> = PulleyDecoder
        .decode(&code)
        .iter()
        .map(|i| i.offset)
        .collect();
    let total = starts.len() as u64;
    let hot = starts[starts.len() / 2];
    let dir = TempDir::new("real-big");
    let (bytes, addrs) = pulley_bytes(&[("big", code.clone())], &[0x10000 + u64::from(hot); 3]);
    let path = dir.path("big.pulley");
    std::fs::write(&path, bytes).unwrap();
    let (status, out, err) = pcprof_exit(&["report", path.to_str().unwrap()]);
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(addrs, [0x10000]);
    // The hot instruction, the instructions of its block, and two lines
    // for everything else: a report of kilobytes for a megabyte of code.
    let hot_line = format!("\t100.00% {hot:6x}: ");
    assert!(out.contains(&hot_line), "{out}");
    let folded: Vec<&str> = out.lines().filter(|l| l.contains("not sampled")).collect();
    assert_eq!(folded.len(), 2, "{out}");
    let count = |l: &str| -> u64 {
        let (_, rest) = l.split_once("... ").unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let listed = out
        .lines()
        .filter(|l| l.starts_with('\t') && !l.contains("not sampled"))
        .count();
    assert_eq!(
        count(folded[0]) + count(folded[1]) + listed as u64,
        total,
        "{out}"
    );
    assert!(out.len() < 4096, "{} bytes", out.len());
}

#[test]
fn code_is_kept_only_for_sampled_functions_and_read_back_when_dropped() {
    // 300 functions of 64 KiB: more code than a load keeps while reading,
    // so the later functions' code is dropped and read back if sampled.
    let functions: Vec<(String, Vec<u8>)> = (0..300u32)
        .map(|k| (format!("f{k}"), vec![(k % 251) as u8; 64 << 10]))
        .collect();
    let named: Vec<(&str, Vec<u8>)> = functions
        .iter()
        .map(|(n, c)| (n.as_str(), c.clone()))
        .collect();
    let (_, addrs) = pulley_bytes(&named, &[]);
    let pcs = [addrs[3] + 5, addrs[299] + 7, addrs[299] + 7, addrs[150]];
    let (bytes, _) = pulley_bytes(&named, &pcs);
    let dir = TempDir::new("real-code");
    let path = dir.path("code.pulley");
    std::fs::write(&path, &bytes).unwrap();
    let check = |p: &Profile| {
        assert_eq!(p.total_samples, 4);
        for (k, f) in p.functions.iter().enumerate() {
            assert_eq!(f.code_len, 64 << 10);
            assert_eq!(f.code_crc, crc32fast::hash(&functions[k].1), "{}", f.name);
            match k {
                3 | 150 | 299 => assert_eq!(f.code, functions[k].1, "{}", f.name),
                _ => assert!(f.code.is_empty(), "{} kept its code", f.name),
            }
        }
        assert_eq!(p.functions[299].hits.as_slice(), &[(7, 2)]);
    };
    check(&load(&path, &LoadOptions::default(), |_| {}).unwrap());
    check(&load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap());
    // Asked to, a load keeps every function's code.
    let all = LoadOptions {
        keep_all_code: true,
        ..LoadOptions::default()
    };
    let p = load(&path, &all, |_| {}).unwrap();
    assert!(
        p.functions
            .iter()
            .zip(&functions)
            .all(|(f, (_, c))| &f.code == c)
    );
}

#[test]
fn tallies_on_several_threads_give_the_one_threaded_profile() {
    // Samples hop between 1 000 functions, enough of them (17 MB) that
    // the load tallies on two threads.
    let program = DemoProgram::new();
    let bodies: Vec<Vec<u8>> = program.function_bodies().map(|(_, b)| b.to_vec()).collect();
    let names: Vec<String> = (0..1000).map(|k| format!("f{k}")).collect();
    let functions: Vec<(&str, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(k, n)| (n.as_str(), bodies[k % bodies.len()].clone()))
        .collect();
    let (_, addrs) = pulley_bytes(&functions, &[]);
    let starts: Vec<Vec<u32>> = functions
        .iter()
        .map(|(_, c)| PulleyDecoder.decode(c).iter().map(|i| i.offset).collect())
        .collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let pcs: Vec<u64> = (0..2_200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x % 1000) as usize;
            let s = &starts[f];
            addrs[f] + u64::from(s[(x >> 20) as usize % s.len()])
        })
        .collect();
    let (bytes, _) = pulley_bytes(&functions, &pcs);
    assert!(bytes.len() > 16 << 20);
    let one = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let two = LoadOptions {
        threads: 2,
        ..LoadOptions::default()
    };
    let a = load_bytes(&bytes, &one, |_| {}).unwrap();
    let b = load_bytes(&bytes, &two, |_| {}).unwrap();
    assert_eq!(a.total_samples, 2_200_000);
    // Exactly the samples written, at their offsets: the hot code is wider
    // than the memo, so most chunks were counted sorted by address.
    let mut truth = vec![std::collections::BTreeMap::<u32, u64>::new(); functions.len()];
    for &pc in &pcs {
        let f = addrs.partition_point(|&a| a <= pc) - 1;
        *truth[f].entry((pc - addrs[f]) as u32).or_insert(0) += 1;
    }
    for (f, t) in a.functions.iter().zip(&truth) {
        let t: Vec<(u32, u64)> = t.iter().map(|(&o, &n)| (o, n)).collect();
        assert_eq!(f.hits.as_slice(), t.as_slice(), "{}", f.name);
    }
    assert_eq!(b.total_samples, a.total_samples);
    assert_eq!(a.functions, b.functions);
    assert_eq!(a.timeline.cells, b.timeline.cells);
    assert_eq!(a.timeline.bucket_ns, b.timeline.bucket_ns);
    assert_eq!(a.interpreters, b.interpreters);
}
