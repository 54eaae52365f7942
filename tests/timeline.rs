//! The timeline says which function ran when: exact per-function counts
//! per (interpreter, bucket) for hand-encoded native and Pulley files, the
//! per-cell cap, and the HTML's legend and its note for files without
//! times.

use pcprof::analysis::html::{HtmlOptions, render};
use pcprof::analysis::{LoadOptions, TIMELINE_FUNCTIONS_PER_CELL, load_bytes};
use pcprof::format::{Encoder, FunctionRecord, InterpreterRecord, Record, Sample};

use crate::common::header;

fn function(addr: u64, name: &str) -> Record {
    Record::Function(FunctionRecord {
        addr,
        name: name.into(),
        code: vec![0; 16],
        loaded_ns: 0,
        listing: None,
    })
}

fn interp(id: u32) -> Record {
    Record::Interpreter(InterpreterRecord {
        id,
        label: None,
        registered_ns: 0,
    })
}

/// Per bucket of interpreter `id`: (function, samples).
fn breakdown(p: &pcprof::analysis::Profile, id: u32, bucket: u32) -> Vec<(Option<usize>, u64)> {
    p.timeline
        .cell_functions(id, bucket)
        .iter()
        .map(|f| (f.function, f.samples))
        .collect()
}

const F: u64 = 0x100;
const G: u64 = 0x200;

/// Two functions alternating in time on interpreter 1, one sample of
/// interpreter 2, and a PC outside every function.
fn alternating() -> Vec<u8> {
    let mut file = Vec::new();
    let mut enc = Encoder::native(&mut file, &header()).unwrap();
    for r in [function(F, "f"), function(G, "g<b>"), interp(1), interp(2)] {
        enc.write(&r).unwrap();
    }
    let s = |time_ns, interp, pc| Sample {
        time_ns,
        interp,
        pc,
        stack: 0,
    };
    const MS: u64 = 1_000_000;
    enc.write_samples(&[
        // Bucket 0 (the first 1 ms): f g f f on 1, g on 2.
        s(0, 1, F),
        s(100_000, 1, G + 4),
        s(150_000, 2, G),
        s(200_000, 1, F + 1),
        s(300_000, 1, F),
        // Bucket 1: g g.
        s(MS, 1, G),
        s(MS + 100_000, 1, G + 2),
    ])
    .unwrap();
    enc.write_samples(&[
        // Bucket 2: f g f g and one outside.
        s(2 * MS, 1, F),
        s(2 * MS + 1, 1, G),
        s(2 * MS + 2, 1, 0x999),
        s(2 * MS + 3, 1, F),
        s(2 * MS + 4, 1, G),
    ])
    .unwrap();
    drop(enc);
    file
}

#[test]
fn functions_per_bucket_are_exact() {
    let p = load_bytes(&alternating(), &LoadOptions::default(), |_| {}).unwrap();
    let t = &p.timeline;
    assert_eq!((t.bucket_ns, t.start_ns, t.len()), (1_000_000, 0, 3));
    assert!(!t.by_sample_index);
    let (f, g) = (Some(0), Some(1));
    assert_eq!(breakdown(&p, 1, 0), vec![(f, 3), (g, 1)]);
    assert_eq!(breakdown(&p, 1, 1), vec![(g, 2)]);
    assert_eq!(breakdown(&p, 1, 2), vec![(f, 2), (g, 2), (None, 1)]);
    assert_eq!(breakdown(&p, 2, 0), vec![(g, 1)]);
    assert!(breakdown(&p, 2, 1).is_empty());
    // The cells are the sums of their functions.
    assert_eq!(t.lane(1), vec![4, 2, 5]);
    assert_eq!(t.functions.iter().map(|f| f.samples).sum::<u64>(), 12);
    assert_eq!(t.total(), 12);
}

#[test]
fn a_cell_keeps_at_most_its_cap_of_functions() {
    // 20 functions in one bucket, round robin: function k has k + 1
    // samples and the hottest arrive first.
    let n = 20u64;
    let mut file = Vec::new();
    let mut enc = Encoder::native(&mut file, &header()).unwrap();
    for k in 0..n {
        enc.write(&function(0x1000 + 0x100 * k, &format!("f{k}")))
            .unwrap();
    }
    enc.write(&interp(1)).unwrap();
    let mut samples = Vec::new();
    for round in 0..n {
        for k in (round..n).rev() {
            samples.push(Sample {
                time_ns: samples.len() as u64,
                interp: 1,
                pc: 0x1000 + 0x100 * k,
                stack: 0,
            });
        }
    }
    enc.write_samples(&samples).unwrap();
    drop(enc);
    let p = load_bytes(&file, &LoadOptions::default(), |_| {}).unwrap();
    let cell = breakdown(&p, 1, 0);
    assert_eq!(cell.len(), TIMELINE_FUNCTIONS_PER_CELL);
    let kept = TIMELINE_FUNCTIONS_PER_CELL as u64 - 1;
    // The first functions seen (the hottest here) are exact, in index
    // order; the rest is "other".
    let mut want: Vec<(Option<usize>, u64)> =
        (n - kept..n).map(|k| (Some(k as usize), k + 1)).collect();
    want.push((None, (1..=n - kept).sum()));
    assert_eq!(cell, want);
    assert_eq!(p.timeline.total(), n * (n + 1) / 2);
}

/// The cap keeps a cell's most hit functions, whenever they arrive: here
/// 20 cold functions (a sample each) come first, then 5 hot ones (100
/// samples each, interleaved), all in one bucket.
#[test]
fn a_cell_keeps_its_hottest_functions_even_when_they_arrive_last() {
    let (cold, hot) = (20u64, 5u64);
    let mut file = Vec::new();
    let mut enc = Encoder::native(&mut file, &header()).unwrap();
    for k in 0..cold + hot {
        enc.write(&function(0x1000 + 0x100 * k, &format!("f{k}")))
            .unwrap();
    }
    enc.write(&interp(1)).unwrap();
    let mut pcs: Vec<u64> = (0..cold).collect();
    for _ in 0..100 {
        pcs.extend(cold..cold + hot);
    }
    let samples: Vec<Sample> = pcs
        .iter()
        .enumerate()
        .map(|(t, &k)| Sample {
            time_ns: t as u64,
            interp: 1,
            pc: 0x1000 + 0x100 * k,
            stack: 0,
        })
        .collect();
    enc.write_samples(&samples).unwrap();
    drop(enc);
    let p = load_bytes(&file, &LoadOptions::default(), |_| {}).unwrap();
    let cell = breakdown(&p, 1, 0);
    assert_eq!(cell.len(), TIMELINE_FUNCTIONS_PER_CELL);
    assert_eq!(p.timeline.buckets, 1);
    // Every hot function, exact; then the cold ones kept (one sample
    // each: ties go to the lowest index), and "other" with the rest.
    let kept_cold = (TIMELINE_FUNCTIONS_PER_CELL - 1) as u64 - hot;
    let mut want: Vec<(Option<usize>, u64)> = (0..kept_cold)
        .map(|k| (Some(k as usize), 1))
        .chain((cold..cold + hot).map(|k| (Some(k as usize), 100)))
        .collect();
    want.push((None, cold - kept_cold));
    assert_eq!(cell, want);
}

/// A Pulley file: 16 samples of f, 16 of g, then f and g alternating for
/// 16, in two sections.
fn pulley_alternating() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = Encoder::pulley(&mut bytes);
    enc.write(&function(F, "f")).unwrap();
    enc.write(&function(G, "g")).unwrap();
    let s = |pc| Sample {
        time_ns: 0,
        interp: 0,
        pc,
        stack: 0,
    };
    let mut first: Vec<Sample> = (0..16).map(|_| s(F)).collect();
    first.extend((0..10).map(|_| s(G)));
    enc.write_samples(&first).unwrap();
    let mut second: Vec<Sample> = (0..6).map(|_| s(G)).collect();
    second.extend((0..16).map(|k| s(if k % 2 == 0 { F } else { G })));
    enc.write_samples(&second).unwrap();
    drop(enc);
    bytes
}

#[test]
fn pulley_buckets_are_runs_of_samples_by_function() {
    let p = load_bytes(&pulley_alternating(), &LoadOptions::default(), |_| {}).unwrap();
    let t = &p.timeline;
    assert!(t.by_sample_index);
    // Sample indices count from 1; buckets of 16 samples.
    assert_eq!((t.bucket_ns, t.start_ns, t.len()), (16, 1, 3));
    let (f, g) = (Some(0), Some(1));
    assert_eq!(breakdown(&p, 0, 0), vec![(f, 16)]);
    assert_eq!(breakdown(&p, 0, 1), vec![(g, 16)]);
    assert_eq!(breakdown(&p, 0, 2), vec![(f, 8), (g, 8)]);
}

#[test]
fn the_page_has_a_legend_and_says_when_there_are_no_times() {
    let native = load_bytes(&alternating(), &LoadOptions::default(), |_| {}).unwrap();
    let page = render(&native, &HtmlOptions::default());
    assert!(page.contains("<ul class=\"legend\">"));
    // Legend entries: both functions (escaped) and "other" (the PC outside).
    for name in [
        "</svg> f</li>",
        "</svg> g&lt;b&gt;</li>",
        "</svg> other</li>",
    ] {
        assert!(page.contains(name), "legend lacks {name:?}");
    }
    assert!(!page.contains("g<b>"));
    // A bucket's tooltip: its time, samples and functions.
    assert!(
        page.contains(
            "<title>interp 1 · 2 ms–3 ms: 5 samples\ng&lt;b&gt;: 2\nf: 2\nother: 1</title>"
        ),
        "no tooltip for bucket 2 of interp 1 in {:?}",
        page.split("<title>")
            .filter(|s| s.starts_with("interp 1 ·"))
            .collect::<Vec<_>>()
    );
    assert!(!page.contains("carry no times"));

    let pulley = load_bytes(&pulley_alternating(), &LoadOptions::default(), |_| {}).unwrap();
    let page = render(&pulley, &HtmlOptions::default());
    assert!(page.contains("Pulley-format files carry no times: samples in file order"));
    assert!(page.contains("<title>interp 0 · samples #33–#48: 16 samples\nf: 8\ng: 8</title>"));
    assert_eq!(page.matches("<g class=\"lane\">").count(), 1);
}
