//! `pcprof diff`: exact share changes per function and instruction, largest
//! first, on two constructed profiles (one function's bytecode unchanged,
//! one with two instructions replaced by a "macro"); HTML structure.

use pcprof::analysis::diff::{DiffOptions, Matching, ProfileDiff, diff, write_html, write_text};
use pulley_interpreter::{BinaryOperands, XReg, op};

use crate::common::TempDir;
use crate::report::{assemble, load_bytes, pcprof, pulley_file, rep, xadd32};

fn pcs(base: u64, offsets: &[u64], hits: &[usize]) -> Vec<u64> {
    offsets
        .iter()
        .zip(hits)
        .flat_map(|(&o, &n)| rep(base + o, n))
        .collect()
}

/// Before: f (10/20/10/0) and g (30/20/10/0), 100 samples. After: f with the
/// same code (10/10/5/5), g with `xadd32; xmov` replaced by `xsub32`
/// (5/15/0), 50 samples.
fn profiles(dir: &TempDir) -> ProfileDiff {
    use XReg::*;
    let (f, fo) = assemble(&[
        op::Xzero { dst: x0 }.into(),
        xadd32(x0, x0, x1),
        op::Xmov { dst: x2, src: x0 }.into(),
        op::Ret {}.into(),
    ]);
    let (g, go) = assemble(&[
        op::Xconst8 { dst: x0, imm: 1 }.into(),
        xadd32(x0, x0, x1),
        op::Xmov { dst: x2, src: x0 }.into(),
        op::Ret {}.into(),
    ]);
    let (g2, g2o) = assemble(&[
        op::Xconst8 { dst: x0, imm: 1 }.into(),
        op::Xsub32 {
            operands: BinaryOperands::new(x2, x0, x1),
        }
        .into(),
        op::Ret {}.into(),
    ]);
    let mut before = pcs(0x1000, &fo, &[10, 20, 10, 0]);
    before.extend(pcs(0x2000, &go, &[30, 20, 10, 0]));
    let mut after = pcs(0x1000, &fo, &[10, 10, 5, 5]);
    after.extend(pcs(0x3000, &g2o, &[5, 15, 0]));
    let b = load_bytes(
        dir,
        "before.pulley",
        &pulley_file(&[("f", 0x1000, &f), ("g", 0x2000, &g)], &before, 9),
    );
    let a = load_bytes(
        dir,
        "after.pulley",
        &pulley_file(&[("g", 0x3000, &g2), ("f", 0x1000, &f)], &after, 9),
    );
    diff(&b, &a, &DiffOptions::default())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn exact_changes_largest_first() {
    let dir = TempDir::new("diff-exact");
    let d = profiles(&dir);
    assert_eq!((d.before_total, d.after_total), (100, 50));
    let funcs: Vec<(&str, f64, f64, f64, &Matching)> = d
        .functions
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.before.share,
                f.after.share,
                f.delta,
                &f.matching,
            )
        })
        .collect();
    assert_eq!(funcs.len(), 2);
    assert_eq!(funcs[0].0, "f");
    assert!(close(funcs[0].1, 40.0) && close(funcs[0].2, 60.0) && close(funcs[0].3, 20.0));
    assert_eq!(funcs[0].4, &Matching::SameCode);
    assert_eq!(funcs[1].0, "g");
    assert!(close(funcs[1].3, -20.0));
    assert_eq!(funcs[1].4, &Matching::Aligned);

    // (function, before offset, after offset, opcode in text, delta)
    type Row<'a> = (&'a str, Option<u32>, Option<u32>, &'a str, f64);
    let want: Vec<Row> = vec![
        ("g", None, Some(3), "xsub32", 30.0),
        ("g", Some(3), None, "xadd32", -20.0),
        ("g", Some(0), Some(0), "xconst8", -20.0),
        ("f", Some(0), Some(0), "xzero", 10.0),
        ("f", Some(10), Some(10), "ret", 10.0),
        ("g", Some(10), None, "xmov", -10.0),
        ("f", Some(2), Some(2), "xadd32", 0.0),
        ("f", Some(6), Some(6), "xmov", 0.0),
    ];
    assert_eq!(d.instructions.len(), want.len(), "{:#?}", d.instructions);
    for (c, (f, bo, ao, text, delta)) in d.instructions.iter().zip(&want) {
        assert_eq!(c.function, *f, "{c:?}");
        assert!(c.text.starts_with(text), "{c:?} vs {text}");
        assert!(close(c.delta, *delta), "{c:?} vs {delta}");
        // Offsets depend on encodings: check which sides exist, and that the
        // unchanged function matched by equal offsets.
        assert_eq!(c.before_offset.is_some(), bo.is_some(), "{c:?}");
        assert_eq!(c.after_offset.is_some(), ao.is_some(), "{c:?}");
        if *f == "f" {
            assert_eq!(c.before_offset, c.after_offset);
        }
    }
    // The instruction changes of a function add up to its change.
    let g_sum: f64 = d
        .instructions
        .iter()
        .filter(|c| c.function == "g")
        .map(|c| c.delta)
        .sum();
    assert!(close(g_sum, -20.0));

    let mut out = Vec::new();
    write_text(&mut out, &d, None).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("   +20.00    40.00%    60.00%  f\n"),
        "{text}"
    );
    assert!(
        text.contains("   -20.00    60.00%    40.00%  g  (bytecode changed: aligned by opcode)"),
        "{text}"
    );
    assert!(text.contains("(new)"), "{text}");
    assert!(text.contains("(removed)"), "{text}");
}

/// Tags of `html`, checked to nest properly (void elements excepted).
fn check_well_formed(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    let void = ["meta", "br", "!DOCTYPE"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').expect("unclosed tag");
        let tag = &after[..end];
        rest = &after[end + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        if void.contains(&name.as_str()) || tag.starts_with("!DOCTYPE") {
            continue;
        }
        if tag.starts_with('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.as_str()),
                "bad nesting at </{name}>"
            );
        } else {
            stack.push(name);
        }
        if stack.last().is_some_and(|t| t == "style") {
            // Skip the CSS (may contain '>').
            let close = rest.find("</style>").expect("style closed");
            rest = &rest[close..];
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn html_is_well_formed_and_complete() {
    let dir = TempDir::new("diff-html");
    let d = profiles(&dir);
    let mut out = Vec::new();
    write_html(&mut out, &d, None).unwrap();
    let html = String::from_utf8(out).unwrap();
    check_well_formed(&html);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"));
    let rows = html.matches("<tr>").count();
    assert_eq!(rows, 2 + d.functions.len() + d.instructions.len());
    assert!(html.contains("<td class=\"up\">+20.00</td>"), "{html}");

    // Through the binary.
    let out_path = dir.path("d.html");
    let (ok, stdout, err) = pcprof(&[
        "diff",
        dir.path("before.pulley").to_str().unwrap(),
        dir.path("after.pulley").to_str().unwrap(),
        "--html",
        out_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("functions, largest changes first:"),
        "{stdout}"
    );
    let page = std::fs::read_to_string(&out_path).unwrap();
    check_well_formed(&page);
    assert!(page.contains("xsub32"));
}

#[test]
fn escapes_names_in_html() {
    let dir = TempDir::new("diff-escape");
    let (code, _) = assemble(&[op::Ret {}.into()]);
    let name = "<f&\"g\">";
    let b = load_bytes(&dir, "b", &pulley_file(&[(name, 0x10, &code)], &[0x10], 1));
    let a = load_bytes(
        &dir,
        "a",
        &pulley_file(&[(name, 0x10, &code)], &[0x10, 0x99], 1),
    );
    let d = diff(&b, &a, &DiffOptions::default());
    let mut out = Vec::new();
    write_html(&mut out, &d, None).unwrap();
    let html = String::from_utf8(out).unwrap();
    check_well_formed(&html);
    assert!(html.contains("&lt;f&amp;&quot;g&quot;&gt;"));
    assert!(!html.contains(name));
}
