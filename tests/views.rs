//! Call-stack views: the exports with real stacks (Firefox Profiler,
//! speedscope, collapsed rendered by inferno), `report --tree` and
//! `calls`, on the version 3 fixture, whose every path is known
//! (`tests/versions.rs`, `v3_fixture`): `main` calls `f`, `f` calls `g`,
//! `g` calls itself; interpreter 0 cycles through four stacks for 12
//! ticks, interpreter 1 has no stack and sits in `main` for 12 ticks.

use std::path::PathBuf;

use pcprof::analysis::calltree::{CallTree, Calls, find_function};
use pcprof::analysis::convert::{ConvertOptions, ExportFormat, convert, speedscope};
use pcprof::analysis::{Frame, LoadOptions, load_bytes};

use crate::common::TempDir;
use crate::convert::fx_stack_names;
use crate::report::pcprof;

const V3: &[u8] = include_bytes!("fixtures/native-v3-stacks.data");

fn fixture(dir: &TempDir) -> PathBuf {
    let path = dir.path("v3.data");
    std::fs::write(&path, V3).unwrap();
    path
}

/// Interpreter 0's stacks, each 3 times: the four paths of the fixture,
/// outermost first, down to the leaf instruction.
fn interp0_paths() -> Vec<Vec<&'static str>> {
    vec![
        vec!["main", "f", "g", "inc @ g+0x0"],
        vec!["main", "f", "g", "g", "inc @ g+0x2"],
        vec!["main", "[truncated]", "g", "inc @ g+0x2"],
        vec!["main", "f", "inc @ f+0x1"],
    ]
}

#[test]
fn firefox_samples_carry_their_callers() {
    let dir = TempDir::new("views-firefox");
    let input = fixture(&dir);
    let out = dir.path("v3.json");
    let report = convert(
        &input,
        &out,
        ExportFormat::Firefox,
        &ConvertOptions::default(),
    )
    .unwrap();
    assert!(
        report.notes.iter().any(|n| n
            == "Kept: the call stacks of 12 samples, each caller as its function (the call \
                site's instruction is not kept)."),
        "{:?}",
        report.notes
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let threads = json["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    let names = |t: &serde_json::Value| -> Vec<Vec<String>> {
        t["samples"]["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| fx_stack_names(t, s.as_u64().unwrap() as usize))
            .collect()
    };
    let want: Vec<Vec<String>> = (0..12)
        .map(|k| {
            interp0_paths()[k % 4]
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .collect();
    assert_eq!(names(&threads[0]), want);
    // Without a stack: function, then instruction, as before.
    assert_eq!(
        names(&threads[1]),
        vec![vec!["main".to_string(), "inc @ main+0x0".to_string()]; 12]
    );
    // One stack table entry per distinct prefix: main, f, g, inc@g0, g,
    // inc@g2, [truncated], g, inc@g2, inc@f1.
    assert_eq!(threads[0]["stackTable"]["length"], 10);
}

#[test]
fn speedscope_samples_are_multi_frame() {
    let dir = TempDir::new("views-speedscope");
    let input = fixture(&dir);
    let out = dir.path("v3.json");
    convert(
        &input,
        &out,
        ExportFormat::Speedscope,
        &ConvertOptions::default(),
    )
    .unwrap();
    let file: speedscope::File = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let frames: Vec<&str> = file.shared.frames.iter().map(|f| f.name.as_str()).collect();
    let stacks = |p: &speedscope::SampledProfile| -> Vec<Vec<&str>> {
        p.samples
            .iter()
            .map(|s| s.iter().map(|&i| frames[i]).collect())
            .collect()
    };
    assert_eq!(file.profiles.len(), 2);
    let want: Vec<Vec<&str>> = (0..12).map(|k| interp0_paths()[k % 4].clone()).collect();
    assert_eq!(stacks(&file.profiles[0]), want);
    assert_eq!(file.profiles[0].weights, vec![1e6; 12]);
    // Interpreter 1: one path, its 12 samples merged.
    assert_eq!(
        stacks(&file.profiles[1]),
        vec![vec!["main", "inc @ main+0x0"]]
    );
    assert_eq!(file.profiles[1].weights, vec![12e6]);
}

/// The export keeps each distinct stack once and writes each sample's in
/// full: its bytes are the [`speedscope::File`] of the same input's, on
/// stacks, merged samples and two interpreters.
#[test]
fn speedscope_export_writes_the_file_api_bytes() {
    let dir = TempDir::new("views-speedscope-bytes");
    let input = fixture(&dir);
    let out = dir.path("v3.json");
    let options = ConvertOptions::default();
    convert(&input, &out, ExportFormat::Speedscope, &options).unwrap();
    let (file, _) = speedscope::speedscope_file(&input, &options).unwrap();
    let written = std::fs::read(&out).unwrap();
    let from_api = serde_json::to_vec(&file).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&from_api)
    );
}

/// The collapsed export, rendered by inferno: every frame of every path is
/// a rectangle of the SVG, with its samples.
#[test]
fn collapsed_renders_in_inferno_with_every_frame() {
    let dir = TempDir::new("views-collapsed");
    let input = fixture(&dir);
    let out = dir.path("v3.txt");
    convert(
        &input,
        &out,
        ExportFormat::Collapsed,
        &ConvertOptions::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut svg = Vec::new();
    let mut options = inferno::flamegraph::Options::default();
    inferno::flamegraph::from_lines(&mut options, text.lines(), &mut svg).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    // inferno's tooltips: `name (N samples, P%)`.
    for (frame, samples) in [
        ("main", 24),
        ("f", 9),
        ("[truncated]", 3),
        ("inc @ main+0x0", 12),
        ("inc @ f+0x1", 3),
        ("inc @ g+0x2", 3),
    ] {
        let title = format!("<title>{frame} ({samples} samples, ");
        assert!(svg.contains(&title), "no {title:?} in\n{svg}");
    }
    // g under f (6 samples), g under g (3), g under [truncated] (3).
    assert_eq!(svg.matches("<title>g (6 samples, ").count(), 1);
    assert_eq!(svg.matches("<title>g (3 samples, ").count(), 2);
    assert!(!svg.contains("<title>g (9 samples"), "{svg}");
}

#[test]
fn call_tree_counts_inclusive_and_self_per_path() {
    let p = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    let tree = CallTree::new(&p);
    let name = |f: Frame| match f {
        Frame::Function(i) => p.functions[i].name.clone(),
        Frame::Outside => "[unresolved]".into(),
        Frame::Truncated => "[truncated]".into(),
    };
    // Depth-first, children by total: (depth, name, total, self).
    let mut lines = Vec::new();
    let mut todo: Vec<(u32, usize)> = vec![(0, 0)];
    while let Some((k, depth)) = todo.pop() {
        let n = &tree.nodes[k as usize];
        if k != 0 {
            lines.push((depth, name(n.frame), n.total, n.self_samples));
        }
        todo.extend(tree.children(k).iter().rev().map(|&c| (c, depth + 1)));
    }
    let want = [
        (1, "main", 24, 12),
        (2, "f", 9, 3),
        (3, "g", 6, 3),
        (4, "g", 3, 3),
        (2, "[truncated]", 3, 0),
        (3, "g", 3, 3),
    ];
    let want: Vec<(usize, String, u64, u64)> = want
        .iter()
        .map(|&(d, n, t, s)| (d, n.to_string(), t, s))
        .collect();
    assert_eq!(lines, want);
    assert_eq!(tree.nodes[0].total, 24);
}

/// The model's leaf-first walk (what pprof's locations need) is each
/// path reversed, the sample's own function first.
#[test]
fn stack_tree_walks_leaf_first() {
    let p = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    let name = |f: Frame| match f {
        Frame::Function(i) => p.functions[i].name.clone(),
        Frame::Outside => "[unresolved]".into(),
        Frame::Truncated => "[truncated]".into(),
    };
    let mut got: Vec<(Vec<String>, u64)> = p
        .stacks
        .leaves
        .iter()
        .map(|l| (p.stacks.leaf_first(l).map(name).collect(), l.samples))
        .collect();
    got.sort();
    let want: Vec<(Vec<String>, u64)> = [
        (&["f", "main"][..], 3),
        (&["g", "[truncated]", "main"][..], 3),
        (&["g", "f", "main"][..], 3),
        (&["g", "g", "f", "main"][..], 3),
        (&["main"][..], 12),
    ]
    .iter()
    .map(|(v, n)| (v.iter().map(|s| s.to_string()).collect(), *n))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn callers_and_callees_count_a_recursion_once_per_sample() {
    let p = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    let idx = |n: &str| p.functions.iter().position(|f| f.name == n).unwrap();
    let (main, f, g) = (idx("main"), idx("f"), idx("g"));
    let calls = Calls::new(&p, &[g]);
    assert_eq!((calls.total, calls.self_samples), (9, 9));
    assert_eq!(
        calls.callers,
        vec![
            (Some(Frame::Function(f)), 6),
            (Some(Frame::Function(g)), 3),
            (Some(Frame::Truncated), 3),
        ]
    );
    assert_eq!(calls.callees, vec![(Frame::Function(g), 3)]);
    // g's total agrees with the report's inclusive figure.
    assert_eq!(p.inclusive_samples()[g], 9);
    let calls = Calls::new(&p, &[main]);
    assert_eq!((calls.total, calls.self_samples), (24, 12));
    assert_eq!(calls.callers, vec![(None, 24)]);
    assert_eq!(
        calls.callees,
        vec![(Frame::Function(f), 9), (Frame::Truncated, 3)]
    );
    assert_eq!(find_function(&p, "ma"), Ok(vec![main]));
    assert!(find_function(&p, "x").is_err());
}

#[test]
fn cli_tree_and_calls() {
    let dir = TempDir::new("views-cli");
    let input = fixture(&dir);
    let file = input.to_str().unwrap();
    let (ok, out, err) = pcprof(&["report", "--tree", "--threshold", "20", file]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "call tree: 24 samples, 3 with a truncated stack; nodes under 20% left out\n \
         total%   self%  function\n\
         100.00%  50.00%  main\n \
         37.50%  12.50%    f\n \
         25.00%  12.50%      g\n\
         (3 nodes under 20% not shown)\n"
    );
    let (ok, out, err) = pcprof(&["report", "--tree", "--depth", "2", file]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "call tree: 24 samples, 3 with a truncated stack; nodes under 0.5% left out\n \
         total%   self%  function\n\
         100.00%  50.00%  main\n \
         37.50%  12.50%    f\n \
         12.50%   0.00%    [truncated]\n\
         (3 nodes under 0.5% or deeper than 2 not shown)\n"
    );
    let (ok, out, err) = pcprof(&["calls", file, "g"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "g: total 37.50% (9 samples), self 37.50% (9 samples) of 24 samples\n\
         \n\
         callers (share of all samples in which each called it):\n \
         25.00%         6  f\n \
         12.50%         3  g\n \
         12.50%         3  [truncated]\n\
         \n\
         callees (share of all samples in which it called each):\n \
         12.50%         3  g\n"
    );
    let (ok, _, err) = pcprof(&["calls", file, "nothing"]);
    assert!(!ok);
    assert!(
        err.contains("v3.data: no function of the profile is named \"nothing\""),
        "{err}"
    );
    // The flame graph's bounds from the command line: the root and the
    // two hottest frames (main, 24 samples; f, 9).
    let page = dir.path("v3.html");
    let (ok, _, err) = pcprof(&[
        "html",
        "--flame-frames",
        "2",
        file,
        "-o",
        page.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let page = std::fs::read_to_string(&page).unwrap();
    assert_eq!(page.matches("<div class=\"fl\"").count(), 3);
    assert!(page.contains("4 frames under 7 samples (29.17% of all) are not drawn"));
    let (ok, out, _) = pcprof(&["calls", "--help"]);
    assert!(ok);
    assert!(out.contains("FUNCTION"), "{out}");
}

/// The flame graph's size is bounded on a profile with many call paths:
/// frames under the share asked, and past the most frames asked, are left
/// out, and the page says so; a profile without stacks has no flame graph.
#[test]
fn html_flame_graph_is_bounded_and_only_with_stacks() {
    use pcprof::analysis::html::{HtmlOptions, render};
    use pcprof::analysis::{PathNode, StackLeaf, StackTree};

    let mut p = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    // A chain of 4 000 callers (main, g, main, ...) with one sample at each
    // depth, in function f: 8 000 call paths, the deepest the coldest.
    let depth = 4000u32;
    let mut nodes = vec![PathNode {
        parent: 0,
        frame: Frame::Outside,
    }];
    let mut leaves = Vec::new();
    for k in 1..=depth {
        nodes.push(PathNode {
            parent: k - 1,
            frame: Frame::Function(if k % 2 == 0 { 0 } else { 2 }),
        });
        leaves.push(StackLeaf {
            stack: k,
            function: Some(1),
            offset: 1,
            samples: 1,
        });
    }
    p.stacks = StackTree {
        nodes,
        leaves,
        truncated_samples: 0,
    };
    p.total_samples = u64::from(depth);
    let frames = |page: &str| page.matches("<div class=\"fl\"").count();

    // By default at most 3 000 frames: the root, then the chain's nodes
    // of totals 4000 down to 1001.
    let page = render(&p, &HtmlOptions::default());
    assert_eq!(frames(&page), 1 + 3000);
    assert!(
        page.contains("5,000 frames under 1,001 samples (25.02% of all) are not drawn"),
        "{}",
        &page[page.find("flame-cut").unwrap()..][..300]
    );
    // 0.1% of 4 000 samples: frames of 4 samples or more, the root, then
    // the chain's nodes 1..=3997 (totals 4000..=4).
    let page = render(
        &p,
        &HtmlOptions {
            flame_max_frames: usize::MAX,
            ..HtmlOptions::default()
        },
    );
    assert_eq!(frames(&page), 1 + 3997);
    assert!(
        page.contains("4,003 frames under 4 samples (0.10% of all) are not drawn"),
        "{}",
        &page[page.find("flame-cut").unwrap()..][..300]
    );
    let page = render(
        &p,
        &HtmlOptions {
            flame_max_frames: 100,
            ..HtmlOptions::default()
        },
    );
    // The 100 hottest frames: totals 4000 down to 3901.
    assert_eq!(frames(&page), 1 + 100);
    assert!(page.contains("7,900 frames under 3,901 samples"), "bounded");

    // Names from the file are escaped in the frames' text and attributes.
    let mut q = load_bytes(V3, &LoadOptions::default(), |_| {}).unwrap();
    q.functions[0].name = "<b onclick=\"x\">m</b>".into();
    let page = render(&q, &HtmlOptions::default());
    assert!(!page.contains("<b onclick"), "a name unescaped");
    assert!(page.contains("data-name=\"&lt;b onclick=&quot;x&quot;&gt;m&lt;/b&gt;\""));

    // Without stacks: no section, no link.
    p.stacks = StackTree::default();
    let page = render(&p, &HtmlOptions::default());
    assert!(
        !page.contains("id=\"flame-section\"") && !page.contains("href=\"#flame-section\""),
        "a flame graph without stacks"
    );
}
