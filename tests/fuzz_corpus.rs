//! The fuzz corpus replayed, so that every input that once mattered to the
//! fuzzer (new coverage, or a bug since fixed) stays checked by `cargo test`.
//!
//! - The harness is the fuzz targets' own (`fuzz/src/lib.rs`, included by
//!   path): the same invariants, without libFuzzer or nightly.
//! - `fuzz/corpus/<target>/` holds each target's minimised corpus; the
//!   directory name picks the harness function.
//! - Random recipes for the structured generator and mutants of the corpus
//!   (the frame-aware mutator, driven by a simple byte flipper) add a little
//!   exploration to every run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

// `mutate_in_place` is the libFuzzer shim, unused here.
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    files
}

/// Runs `f` on every file of the target's corpus; fails naming every file
/// that panics. Speed is not asserted here (a busy machine would make that
/// a flake): the fuzz runs hold each input to their time limit.
fn replay(target: &str, f: fn(&[u8])) {
    let mut failed = Vec::new();
    for path in corpus(target) {
        let data = std::fs::read(&path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "panicked on {failed:#?}");
}

#[test]
fn native_corpus() {
    replay("native", harness::read);
}

#[test]
fn pulley_corpus() {
    replay("pulley", harness::read);
}

#[test]
fn load_corpus() {
    replay("load", harness::load);
}

#[test]
fn structured_corpus() {
    replay("structured", harness::structured);
}

/// Mutants of the reader corpora: inside-frame mutations keep the CRCs
/// valid, so these reach the decoders too.
#[test]
fn mutants_of_the_corpus() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut flip = |buf: &mut Vec<u8>, max: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 3 {
            0 if !buf.is_empty() => {
                let i = (x >> 8) as usize % buf.len();
                buf[i] ^= (x >> 32) as u8 | 1;
            }
            1 if buf.len() < max => buf.push((x >> 16) as u8),
            _ => buf.truncate(buf.len().saturating_sub(1)),
        }
    };
    for path in [corpus("native"), corpus("pulley")].concat() {
        let data = std::fs::read(&path).unwrap();
        for seed in 0..16u32 {
            let mut m = data.clone();
            let max = data.len() + 64;
            harness::mutate(&mut m, max, seed * 0x0101_0101, &mut flip);
            assert!(m.len() <= max);
            harness::read(&m);
            harness::load(&m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any recipe makes a file that reads back exactly, and whose damaged
    /// copies (cut, a byte changed behind a recomputed CRC, a raw byte)
    /// keep every reader invariant.
    #[test]
    fn structured_recipes(recipe in proptest::collection::vec(any::<u8>(), 0..2048)) {
        harness::structured(&recipe);
    }
}

/// Found by the `load` target: an interpreter id registered twice has two
/// slots, and the timeline kept only the last slot's counts.
#[test]
fn timeline_counts_an_id_registered_twice() {
    use pcprof::format::{Encoder, InterpreterRecord, Record, Sample};
    let header = crate::common::header();
    let interp = Record::Interpreter(InterpreterRecord {
        id: 3,
        label: None,
        registered_ns: 0,
    });
    let sample = |time_ns| Sample {
        time_ns,
        interp: 3,
        pc: 0,
        stack: 0,
    };
    let mut file = Vec::new();
    let mut enc = Encoder::native(&mut file, &header).unwrap();
    enc.write(&interp).unwrap();
    enc.write_samples(&[sample(1), sample(2)]).unwrap();
    enc.write(&interp).unwrap();
    enc.write_samples(&[sample(3)]).unwrap();
    drop(enc);
    let p = pcprof::analysis::load_bytes(&file, &Default::default(), |_| {}).unwrap();
    assert_eq!(p.total_samples, 3);
    assert_eq!(p.timeline.lane(3).iter().sum::<u64>(), 3);
    harness::load(&file);
}

/// Found by the `native` target: the reader's fast batch decoder took a
/// `u32` written with bincode's u64 marker, which bincode refuses; the two
/// decoders must agree on what a valid batch is.
#[test]
fn batch_u32_with_the_u64_marker_is_refused() {
    let mut prefix = pcprof::format::MAGIC.to_vec();
    prefix.extend_from_slice(&pcprof::format::VERSION.to_le_bytes());
    // Record::Header: version "0", then zeros and an empty clock name.
    let header = [0, 1, b'0', 0, 0, 0, 0, 0];
    // Record::Samples: first time 0, step 0, no time delta, one tick of one
    // sample, interpreter 0 as 253 + 8 bytes, PC delta 0.
    let mut batch = vec![5, 0, 0, 0, 1, 1, 1, 253];
    batch.extend_from_slice(&[0; 8]);
    batch.extend_from_slice(&[1, 0]);
    let file = harness::join_native(&prefix, &[header.to_vec(), batch], &[]);
    let mut r = pcprof::ProfileReader::new(&file[..]).unwrap();
    let e = r.next().unwrap().unwrap_err();
    assert!(e.to_string().contains("U64"), "{e}");
    harness::read(&file);
}

/// Found by the `load` and `pulley` targets under AddressSanitizer (whose
/// allocator hooks enforce the 256 MB limit per allocation): a string
/// length of a few bytes made bincode allocate it, up to 1 GiB, before
/// finding the payload too short. The claim is now refused first.
#[test]
fn a_huge_string_length_is_refused_before_allocating() {
    let mut prefix = pcprof::format::MAGIC.to_vec();
    prefix.extend_from_slice(&pcprof::format::VERSION.to_le_bytes());
    // Record::Header whose version string claims 600 MB (u64 marker).
    let mut header = vec![0, 253];
    header.extend_from_slice(&600_000_000u64.to_le_bytes());
    header.extend_from_slice(b"0.1");
    let file = harness::join_native(&prefix, &[header], &[]);
    let e = pcprof::ProfileReader::new(&file[..]).unwrap_err();
    assert!(e.to_string().contains("LimitExceeded"), "{e}");
    harness::read(&file);
    harness::load(&file);
}
