//! Comparing two profiles (typically before and after adding a
//! macro-instruction): the change in share per function and per instruction,
//! largest changes first, as text or as a self-contained HTML page.
//!
//! - Shares are of *all* samples of each profile, for functions and
//!   instructions alike, so profiles of different lengths compare, and the
//!   instruction changes of a function add up to its change. A change is
//!   `after - before`, in percentage points.
//! - Functions match by name (generations of one name are summed).
//! - Instructions match by offset when the function's bytecode is the same
//!   in both. When it differs (the point of adding a macro-instruction), the
//!   two instruction lists are aligned like lines in `diff`: a longest
//!   common subsequence of opcodes; matched instructions compare, the rest
//!   show as removed (only before) or new (only after). An alignment above
//!   [`DiffOptions::max_align_cells`] (instructions before × after) is not
//!   attempted: that function is compared as a whole, with a note.
//! - Samples inside an instruction are credited to it, as in the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::profile::{FunctionProfile, Profile};
use super::text::{counted, escape, share};
use crate::disasm::{DecoderChoice, Instruction, ListingCache, instruction_hits};

/// Options of [`diff`].
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// How to decode bytecode.
    pub decoder: DecoderChoice,
    /// Largest alignment (instructions before × instructions after) tried
    /// for a function whose bytecode changed.
    pub max_align_cells: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            decoder: DecoderChoice::Auto,
            max_align_cells: 4_000_000,
        }
    }
}

/// Samples and share on one side of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Side {
    /// Samples.
    pub samples: u64,
    /// Share of all samples of that profile, in percent.
    pub share: f64,
}

/// How a function's instructions were matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matching {
    /// Same bytecode: by offset.
    SameCode,
    /// Different bytecode: aligned by opcode.
    Aligned,
    /// Only in the first profile.
    OnlyBefore,
    /// Only in the second profile.
    OnlyAfter,
    /// Compared as a whole only, for the reason given.
    FunctionOnly(String),
}

/// The change of one function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionChange {
    /// Name.
    pub name: String,
    /// In the first profile.
    pub before: Side,
    /// In the second profile.
    pub after: Side,
    /// `after.share - before.share`, in percentage points.
    pub delta: f64,
    /// How its instructions were matched.
    pub matching: Matching,
}

/// The change of one instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionChange {
    /// Name of its function.
    pub function: String,
    /// Offset in the first profile's bytecode (`None`: new).
    pub before_offset: Option<u32>,
    /// Offset in the second profile's bytecode (`None`: removed).
    pub after_offset: Option<u32>,
    /// Disassembly (the second profile's when it exists).
    pub text: String,
    /// In the first profile.
    pub before: Side,
    /// In the second profile.
    pub after: Side,
    /// `after.share - before.share`, in percentage points.
    pub delta: f64,
}

/// The result of [`diff`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileDiff {
    /// The first profile's file.
    pub before_path: String,
    /// The second profile's file.
    pub after_path: String,
    /// All samples of the first profile.
    pub before_total: u64,
    /// All samples of the second profile.
    pub after_total: u64,
    /// Per function, largest absolute change first.
    pub functions: Vec<FunctionChange>,
    /// Per instruction with samples on either side, largest absolute change
    /// first.
    pub instructions: Vec<InstructionChange>,
    /// Remarks on what could not be compared finely.
    pub notes: Vec<String>,
}

/// A function name's samples and code in one profile.
#[derive(Clone)]
struct Named<'a> {
    samples: u64,
    /// The first generation's: its code (empty if not kept), length and CRC.
    code: &'a [u8],
    code_id: (u64, u32),
    /// The file's listing of that code, if any.
    listing: Option<&'a crate::format::ListingRecord>,
    /// Borrowed from the profile unless generations had to be summed.
    hits: std::borrow::Cow<'a, crate::analysis::profile::Hits>,
    /// Samples of generations whose code differs from the first one's.
    other_code_samples: u64,
    /// Offsets that shape the listing of big code, when they are not
    /// `hits` (both sides of a diff).
    shape: Option<crate::analysis::profile::Hits>,
}

fn by_name(p: &Profile) -> BTreeMap<&str, Named<'_>> {
    let mut m: BTreeMap<&str, Named<'_>> = BTreeMap::new();
    for f in &p.functions {
        add_generation(&mut m, f);
    }
    m
}

/// A function's instructions and the samples at and inside each.
fn decoded<'a>(
    cache: &mut ListingCache<'a>,
    decoder: &DecoderChoice,
    n: &Named<'a>,
) -> (std::rc::Rc<crate::disasm::Listing>, Vec<(u64, u64)>) {
    let shape = n.shape.as_ref().unwrap_or(&n.hits);
    let l = cache.decode(decoder, n.code, n.listing, shape.as_slice());
    let h = instruction_hits(&l.instructions, n.hits.as_slice());
    (l, h)
}

fn add_generation<'a>(m: &mut BTreeMap<&'a str, Named<'a>>, f: &'a FunctionProfile) {
    match m.get_mut(f.name.as_str()) {
        None => {
            m.insert(
                &f.name,
                Named {
                    samples: f.samples,
                    code: &f.code,
                    code_id: (f.code_len, f.code_crc),
                    listing: f.listing.as_deref(),
                    hits: std::borrow::Cow::Borrowed(&f.hits),
                    other_code_samples: 0,
                    shape: None,
                },
            );
        }
        Some(n) => {
            n.samples += f.samples;
            if n.code_id == (f.code_len, f.code_crc) {
                // Only sampled generations keep their code.
                if n.code.is_empty() {
                    n.code = &f.code;
                }
                n.hits.to_mut().add(&f.hits);
            } else {
                n.other_code_samples += f.samples;
            }
        }
    }
}

/// Two sides of the same code, made to list alike: each gets the bytes of
/// whichever kept them, and the listing is cut (for big code) at the
/// samples of both, each side counting its own.
fn both_sides<'a>(x: &Named<'a>, y: &Named<'a>) -> (Named<'a>, Named<'a>) {
    let code = if x.code.is_empty() { y.code } else { x.code };
    let (mut x, mut y) = (x.clone(), y.clone());
    x.code = code;
    y.code = code;
    if code.len() > crate::disasm::WHOLE_LISTING_BYTES {
        let mut union = x.hits.clone().into_owned();
        union.add(&y.hits);
        x.shape = Some(union.clone());
        y.shape = Some(union);
    }
    (x, y)
}

fn side(samples: u64, total: u64) -> Side {
    Side {
        samples,
        share: share(samples, total),
    }
}

/// Compares `before` with `after`.
pub fn diff(before: &Profile, after: &Profile, options: &DiffOptions) -> ProfileDiff {
    let (bt, at) = (before.total_samples, after.total_samples);
    let b = by_name(before);
    let a = by_name(after);
    let mut names: Vec<&str> = b.keys().chain(a.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    let mut functions = Vec::new();
    let mut instructions = Vec::new();
    let mut notes = Vec::new();
    // Both profiles usually hold the same code: decode it once.
    let mut cache = ListingCache::default();
    for name in names {
        let (fb, fa) = (b.get(name), a.get(name));
        let before_side = side(fb.map_or(0, |f| f.samples), bt);
        let after_side = side(fa.map_or(0, |f| f.samples), at);
        let matching = match (fb, fa) {
            (Some(x), Some(y)) => {
                for (label, n) in [("first", x), ("second", y)] {
                    if n.other_code_samples > 0 {
                        notes.push(format!(
                            "{name}: {} of the {label} profile fell in a reloaded version \
                             with other bytecode; they count for the function only",
                            counted(n.other_code_samples, "sample")
                        ));
                    }
                }
                let same = x.code_id == y.code_id;
                // The same code is listed alike on both sides: with either
                // side's bytes (a side without samples kept none), and for
                // code listed by its sampled blocks, the blocks of both.
                let (x, y) = match same {
                    true => both_sides(x, y),
                    false => (x.clone(), y.clone()),
                };
                let (lb, hb) = decoded(&mut cache, &options.decoder, &x);
                let ib = &lb.instructions;
                let (la, ha) = decoded(&mut cache, &options.decoder, &y);
                let ia = &la.instructions;
                if same {
                    for (k, ins) in ib.iter().enumerate() {
                        let sb = hb[k].0 + hb[k].1;
                        let sa = ha.get(k).map_or(0, |h| h.0 + h.1);
                        push_change(
                            &mut instructions,
                            name,
                            Some(ins),
                            Some(ins),
                            sb,
                            sa,
                            bt,
                            at,
                        );
                    }
                    Matching::SameCode
                } else if ib.len().saturating_mul(ia.len()) > options.max_align_cells {
                    let why = format!(
                        "bytecode differs and {} × {} instructions is too large to align",
                        ib.len(),
                        ia.len()
                    );
                    notes.push(format!("{name}: compared as a whole only ({why})"));
                    Matching::FunctionOnly(why)
                } else {
                    for (x_i, y_i) in align(ib, ia) {
                        let sb = x_i.map_or(0, |k| hb[k].0 + hb[k].1);
                        let sa = y_i.map_or(0, |k| ha[k].0 + ha[k].1);
                        push_change(
                            &mut instructions,
                            name,
                            x_i.map(|k| &ib[k]),
                            y_i.map(|k| &ia[k]),
                            sb,
                            sa,
                            bt,
                            at,
                        );
                    }
                    Matching::Aligned
                }
            }
            (Some(x), None) => {
                let (lb, hb) = decoded(&mut cache, &options.decoder, x);
                let ib = &lb.instructions;
                for (ins, h) in ib.iter().zip(&hb) {
                    push_change(
                        &mut instructions,
                        name,
                        Some(ins),
                        None,
                        h.0 + h.1,
                        0,
                        bt,
                        at,
                    );
                }
                Matching::OnlyBefore
            }
            (None, Some(y)) => {
                let (la, ha) = decoded(&mut cache, &options.decoder, y);
                let ia = &la.instructions;
                for (ins, h) in ia.iter().zip(&ha) {
                    push_change(
                        &mut instructions,
                        name,
                        None,
                        Some(ins),
                        0,
                        h.0 + h.1,
                        bt,
                        at,
                    );
                }
                Matching::OnlyAfter
            }
            (None, None) => continue,
        };
        functions.push(FunctionChange {
            name: name.to_string(),
            before: before_side,
            after: after_side,
            delta: after_side.share - before_side.share,
            matching,
        });
    }
    let order = |d: f64| -d.abs();
    functions.sort_by(|x, y| {
        order(x.delta)
            .total_cmp(&order(y.delta))
            .then(x.name.cmp(&y.name))
    });
    instructions.sort_by(|x, y| {
        order(x.delta)
            .total_cmp(&order(y.delta))
            .then(x.function.cmp(&y.function))
            .then(x.after_offset.cmp(&y.after_offset))
            .then(x.before_offset.cmp(&y.before_offset))
    });
    ProfileDiff {
        before_path: before.path.display().to_string(),
        after_path: after.path.display().to_string(),
        before_total: bt,
        after_total: at,
        functions,
        instructions,
        notes,
    }
}

#[allow(clippy::too_many_arguments)]
fn push_change(
    out: &mut Vec<InstructionChange>,
    function: &str,
    before: Option<&Instruction>,
    after: Option<&Instruction>,
    sb: u64,
    sa: u64,
    bt: u64,
    at: u64,
) {
    if sb == 0 && sa == 0 {
        return;
    }
    let (b, a) = (side(sb, bt), side(sa, at));
    out.push(InstructionChange {
        function: function.to_string(),
        before_offset: before.map(|i| i.offset),
        after_offset: after.map(|i| i.offset),
        text: after.or(before).map(|i| i.text.clone()).unwrap_or_default(),
        before: b,
        after: a,
        delta: a.share - b.share,
    });
}

/// Longest common subsequence of the opcodes of `x` and `y`, as pairs of
/// indices in order (`None` on one side: unmatched).
fn align(x: &[Instruction], y: &[Instruction]) -> Vec<(Option<usize>, Option<usize>)> {
    let (n, m) = (x.len(), y.len());
    // lcs[i][j] = LCS length of x[i..] and y[j..], row-major.
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * w + j] = if x[i].opcode == y[j].opcode {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let mut out = Vec::with_capacity(n.max(m));
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if x[i].opcode == y[j].opcode {
            out.push((Some(i), Some(j)));
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
            out.push((Some(i), None));
            i += 1;
        } else {
            out.push((None, Some(j)));
            j += 1;
        }
    }
    out.extend((i..n).map(|i| (Some(i), None)));
    out.extend((j..m).map(|j| (None, Some(j))));
    out
}

fn location(c: &InstructionChange) -> String {
    match (c.before_offset, c.after_offset) {
        (Some(b), Some(a)) if a == b => format!("{}+{a:#x}", c.function),
        (Some(b), Some(a)) => format!("{}+{b:#x}->{a:#x}", c.function),
        (Some(b), None) => format!("{}+{b:#x} (removed)", c.function),
        (None, Some(a)) => format!("{}+{a:#x} (new)", c.function),
        (None, None) => c.function.clone(),
    }
}

fn matching_text(m: &Matching) -> &str {
    match m {
        Matching::SameCode => "",
        Matching::Aligned => "bytecode changed: aligned by opcode",
        Matching::OnlyBefore => "only before",
        Matching::OnlyAfter => "only after",
        Matching::FunctionOnly(_) => "bytecode changed: function only",
    }
}

/// Writes `d` as text: at most `top` rows per table (`None`: all).
pub fn write_text(out: &mut dyn Write, d: &ProfileDiff, top: Option<usize>) -> io::Result<()> {
    let top = top.unwrap_or(usize::MAX);
    writeln!(
        out,
        "before: {} ({})\nafter:  {} ({})",
        d.before_path,
        counted(d.before_total, "sample"),
        d.after_path,
        counted(d.after_total, "sample")
    )?;
    writeln!(
        out,
        "shares are of all samples of each profile; change = after - before, in percentage points"
    )?;
    writeln!(out, "\nfunctions, largest changes first:")?;
    writeln!(out, "   change    before     after  function")?;
    for f in d.functions.iter().take(top) {
        let m = matching_text(&f.matching);
        let m = if m.is_empty() {
            String::new()
        } else {
            format!("  ({m})")
        };
        writeln!(
            out,
            "{:+9.2} {:8.2}% {:8.2}%  {}{m}",
            f.delta, f.before.share, f.after.share, f.name
        )?;
    }
    writeln!(out, "\ninstructions, largest changes first:")?;
    if d.instructions.is_empty() {
        writeln!(out, "  (no sampled instruction)")?;
    } else {
        let locs: Vec<String> = d.instructions.iter().take(top).map(location).collect();
        let width = locs.iter().map(|l| l.len()).max().unwrap_or(5).max(5);
        writeln!(
            out,
            "   change    before     after  {:width$}  instruction",
            "where"
        )?;
        for (c, loc) in d.instructions.iter().zip(&locs) {
            writeln!(
                out,
                "{:+9.2} {:8.2}% {:8.2}%  {loc:width$}  {}",
                c.delta, c.before.share, c.after.share, c.text
            )?;
        }
        if d.instructions.len() > locs.len() {
            writeln!(out, "  ... {} more", d.instructions.len() - locs.len())?;
        }
    }
    for n in &d.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

/// A bar cell: the change drawn from the middle, right for a rise (red),
/// left for a fall (green), scaled to `max`.
fn bar(delta: f64, max: f64) -> String {
    let w = if max > 0.0 {
        (delta.abs() / max * 50.0).min(50.0)
    } else {
        0.0
    };
    let (left, color) = if delta >= 0.0 {
        (50.0, "#d9534f")
    } else {
        (50.0 - w, "#3c9d5d")
    };
    format!(
        "<td class=\"bar\"><div><span style=\"left:{left:.1}%;width:{w:.1}%;background:{color}\"></span></div></td>"
    )
}

/// Writes `d` as a self-contained HTML page (no scripts, no network): at most
/// `top` rows per table (`None`: all).
pub fn write_html(out: &mut dyn Write, d: &ProfileDiff, top: Option<usize>) -> io::Result<()> {
    let top = top.unwrap_or(usize::MAX);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>pcprof diff</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\n\
         table{{border-collapse:collapse;margin-bottom:2em}}\n\
         th,td{{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}}\n\
         th{{background:#f4f4f4}}\n td.name,th.name{{text-align:left}}\n\
         td.code{{text-align:left;font-family:monospace;white-space:pre}}\n\
         .up{{color:#b52b27}} .down{{color:#2a7a45}}\n\
         td.bar{{width:200px}} td.bar div{{position:relative;height:10px;background:#f7f7f7}}\n\
         td.bar span{{position:absolute;top:0;height:10px}}\n\
         </style>\n</head>\n<body>\n<h1>pcprof diff</h1>\n"
    );
    let _ = write!(
        h,
        "<p>before: <code>{}</code> ({} samples)<br>\nafter: <code>{}</code> ({} samples)</p>\n\
         <p>Shares are of all samples of each profile; change = after &minus; before, in \
         percentage points.</p>\n",
        escape(&d.before_path),
        d.before_total,
        escape(&d.after_path),
        d.after_total
    );
    let cls = |x: f64| {
        if x > 0.0 {
            "up"
        } else if x < 0.0 {
            "down"
        } else {
            ""
        }
    };
    let max_f = d
        .functions
        .iter()
        .map(|f| f.delta.abs())
        .fold(0.0, f64::max);
    h.push_str(
        "<h2>Functions</h2>\n<table id=\"functions\">\n<thead><tr><th>change</th><th></th>\
         <th>before</th><th>after</th><th class=\"name\">function</th></tr></thead>\n<tbody>\n",
    );
    for f in d.functions.iter().take(top) {
        let m = matching_text(&f.matching);
        let _ = writeln!(
            h,
            "<tr><td class=\"{}\">{:+.2}</td>{}<td>{:.2}%</td><td>{:.2}%</td>\
             <td class=\"name\">{}{}</td></tr>",
            cls(f.delta),
            f.delta,
            bar(f.delta, max_f),
            f.before.share,
            f.after.share,
            escape(&f.name),
            if m.is_empty() {
                String::new()
            } else {
                format!(" <small>({})</small>", escape(m))
            }
        );
    }
    h.push_str("</tbody>\n</table>\n");
    let max_i = d
        .instructions
        .iter()
        .map(|c| c.delta.abs())
        .fold(0.0, f64::max);
    h.push_str(
        "<h2>Instructions</h2>\n<table id=\"instructions\">\n<thead><tr><th>change</th><th></th>\
         <th>before</th><th>after</th><th class=\"name\">where</th>\
         <th class=\"name\">instruction</th></tr></thead>\n<tbody>\n",
    );
    for c in d.instructions.iter().take(top) {
        let _ = writeln!(
            h,
            "<tr><td class=\"{}\">{:+.2}</td>{}<td>{:.2}%</td><td>{:.2}%</td>\
             <td class=\"name\">{}</td><td class=\"code\">{}</td></tr>",
            cls(c.delta),
            c.delta,
            bar(c.delta, max_i),
            c.before.share,
            c.after.share,
            escape(&location(c)),
            escape(&c.text)
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if !d.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &d.notes {
            let _ = writeln!(h, "<li>{}</li>", escape(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body>\n</html>\n");
    out.write_all(h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disasm::InstructionKind;

    fn ins(ops: &[&str]) -> Vec<Instruction> {
        ops.iter()
            .enumerate()
            .map(|(k, o)| Instruction {
                offset: k as u32,
                len: 1,
                opcode: o.to_string(),
                text: o.to_string(),
                kind: InstructionKind::Plain,
            })
            .collect()
    }

    #[test]
    fn alignment_matches_common_opcodes() {
        let x = ins(&["a", "b", "c", "d"]);
        let y = ins(&["a", "m", "d"]);
        let got = align(&x, &y);
        assert_eq!(
            got,
            vec![
                (Some(0), Some(0)),
                (Some(1), None),
                (Some(2), None),
                (None, Some(1)),
                (Some(3), Some(2)),
            ]
        );
    }
}
