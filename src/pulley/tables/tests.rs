//! Each table checked against the pulley-interpreter of its versions: every
//! op disassembled by that version's own disassembler, and functions made by
//! its own encoder decoded and detected.

use super::*;
use crate::disasm::{Instruction, InstructionDecoder, InstructionKind};
use crate::pulley::{PulleyDecoder, PulleyTableDecoder};

/// Opcode names in opcode order, from a `for_each_op!`-style list.
macro_rules! op_names {
    ($( $( #[$attr:meta] )* $snake:ident = $name:ident $( { $($fields:tt)* } )? ; )*) => {
        &[$(stringify!($snake)),*]
    };
}

const PRIMARY_36: &[&str] = pulley36::for_each_op!(op_names);
const EXTENDED_36: &[&str] = pulley36::for_each_extended_op!(op_names);
const PRIMARY_39: &[&str] = pulley39::for_each_op!(op_names);
const EXTENDED_39: &[&str] = pulley39::for_each_extended_op!(op_names);
const PRIMARY_40: &[&str] = pulley40::for_each_op!(op_names);
const EXTENDED_40: &[&str] = pulley40::for_each_extended_op!(op_names);
const PRIMARY_48: &[&str] = pulley_interpreter::for_each_op!(op_names);
const EXTENDED_48: &[&str] = pulley_interpreter::for_each_extended_op!(op_names);

/// The text and length of the first instruction of `bytes`, by the
/// disassembler of the pulley-interpreter crate `$pulley`.
macro_rules! disassemble_one {
    ($pulley:ident, $bytes:expr) => {{
        use $pulley::decode::OpVisitor as _;
        let mut disas = $pulley::disas::Disassembler::new($bytes);
        disas.offsets(false).hexdump(false).br_tables(false);
        match $pulley::decode::Decoder::new().decode_one(&mut disas) {
            Ok(()) => Some((
                disas.disas().trim().to_string(),
                disas.bytecode().position(),
            )),
            Err(_) => None,
        }
    }};
}

/// Every opcode of the table `$pulley` was built with (the primary ops,
/// then the extended ones), each followed by zeros.
macro_rules! every_opcode {
    ($pulley:ident) => {{
        let prefix = $pulley::Opcode::ExtendedOp as u8;
        let mut all: Vec<Vec<u8>> = (0..prefix).map(|b| vec![b]).collect();
        let extended = $pulley::for_each_extended_op!(op_names).len() as u16;
        all.extend((0..extended).map(|code| {
            let mut bytes = vec![prefix];
            bytes.extend(code.to_le_bytes());
            bytes
        }));
        for bytes in &mut all {
            bytes.resize(bytes.len() + 64, 0);
        }
        all
    }};
}

/// Decodes the first instruction of `bytes` with `table`.
fn first(table: PulleyTable, bytes: &[u8]) -> Instruction {
    PulleyTableDecoder::new(table).decode(bytes).remove(0)
}

#[test]
fn the_constants_are_the_old_crates() {
    assert_eq!(pulley36::Opcode::ExtendedOp as u8, OLD_EXTENDED_PREFIX);
    assert_eq!(pulley39::Opcode::ExtendedOp as u8, OLD_EXTENDED_PREFIX);
    assert_eq!(PRIMARY_36.len(), usize::from(OLD_EXTENDED_PREFIX));
    assert_eq!(PRIMARY_39.len(), usize::from(OLD_EXTENDED_PREFIX));
    assert_eq!(EXTENDED_36.len(), usize::from(EXTENDED_OPS_31_TO_36));
    assert_eq!(EXTENDED_39.len(), usize::from(EXTENDED_OPS_37_TO_39));
    assert_eq!(EXTENDED_36[usize::from(OLD_EXTENDED_NOP)], "nop");
    assert_eq!(EXTENDED_39[usize::from(OLD_EXTENDED_NOP)], "nop");
    assert_eq!(EXTENDED_39[3], "xpcadd");
    assert!(!EXTENDED_36.contains(&"xpcadd"));
    // 48.0.8: `nop` is primary 0 and the prefix one further.
    assert_eq!(PRIMARY_48[0], "nop");
    assert_eq!(Opcode::ExtendedOp as u8, OLD_EXTENDED_PREFIX + 1);
    assert!(!EXTENDED_48.contains(&"nop"));
    // 40 numbers as 48.0.8 does, which only appended extended ops (in 46).
    assert_eq!(PRIMARY_40, PRIMARY_48);
    assert_eq!(EXTENDED_40, &EXTENDED_48[..EXTENDED_40.len()]);
    assert_eq!((EXTENDED_40.len(), EXTENDED_48.len()), (310, 323));
}

/// A Pulley disassembler's text as pcprof prints it: float constants as
/// floats, not their bits.
fn as_ours(text: String) -> String {
    let Some((head, bits)) = text.rsplit_once(", ") else {
        return text;
    };
    if text.starts_with("fconst32 ")
        && let Ok(b) = bits.parse::<u32>()
    {
        return format!("{head}, {:?}", f32::from_bits(b));
    }
    if text.starts_with("fconst64 ")
        && let Ok(b) = bits.parse::<u64>()
    {
        return format!("{head}, {:?}", f64::from_bits(b));
    }
    text
}

/// Every op of Wasmtime 36, 39 and 40 decodes under its table to the name,
/// length and text that version's own disassembler gives.
#[test]
fn every_old_op_decodes_as_its_own_disassembler_says() {
    let mut checked = 0;
    macro_rules! check_family {
        ($krate:ident, $table:expr) => {
            for bytes in every_opcode!($krate) {
                let (text, len) = disassemble_one!($krate, &bytes).expect("decodes its own op");
                let text = as_ours(text);
                let ours = first($table, &bytes);
                assert_eq!(
                    (ours.text.as_str(), ours.len as usize),
                    (text.as_str(), len)
                );
                assert_eq!(text.split_whitespace().next(), Some(ours.opcode.as_str()));
                checked += 1;
            }
        };
    }
    check_family!(pulley36, PulleyTable::Wasmtime31To36);
    check_family!(pulley39, PulleyTable::Wasmtime37To39);
    // Wasmtime 40, the oldest of the latest table's family.
    check_family!(pulley40, PulleyTable::Wasmtime40To51);
    assert_eq!(checked, 219 + 310 + 219 + 311 + 220 + 310);
}

/// Opcodes past an old table's end are undecodable, not some newer op.
#[test]
fn opcodes_past_an_old_table_are_undecodable() {
    for (table, extended) in [
        (PulleyTable::Wasmtime31To36, EXTENDED_OPS_31_TO_36),
        (PulleyTable::Wasmtime37To39, EXTENDED_OPS_37_TO_39),
    ] {
        for byte in OLD_EXTENDED_PREFIX + 1..=u8::MAX {
            let bytes = [byte, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(first(table, &bytes).kind, InstructionKind::Undecodable);
        }
        for code in [extended, extended + 1, u16::MAX] {
            let mut bytes = vec![OLD_EXTENDED_PREFIX];
            bytes.extend(code.to_le_bytes());
            bytes.resize(32, 0);
            let inst = first(table, &bytes);
            assert_eq!(inst.kind, InstructionKind::Undecodable, "{table} {code}");
            assert_eq!(inst.len, 32);
        }
        // A truncated extended opcode.
        assert_eq!(
            first(table, &[OLD_EXTENDED_PREFIX, 0]).kind,
            InstructionKind::Undecodable
        );
    }
}

/// A rewritten instruction copies [`MAX_OPERAND_BYTES`] of operands: more
/// than the longest op has.
#[test]
fn max_operand_bytes_covers_the_longest_op() {
    let longest = every_opcode!(pulley_interpreter)
        .iter()
        .map(|bytes| {
            let opcode_len = if bytes[0] == Opcode::ExtendedOp as u8 {
                EXTENDED_OPCODE_BYTES
            } else {
                1
            };
            let inst = first(PulleyTable::LATEST, bytes);
            (inst.len as usize - opcode_len, inst.opcode)
        })
        .max();
    assert_eq!(longest, Some((19, "vshuffle".to_string())));
    const { assert!(19 < MAX_OPERAND_BYTES) };
}

/// Functions written with one version's encoder, and the (offset, name,
/// length) of each of their instructions.
#[derive(Debug, Default)]
struct Function {
    code: Vec<u8>,
    expected: Vec<(u32, &'static str, u32)>,
}

impl Function {
    /// Appends what `encode` writes, as one instruction named `name`.
    fn op(&mut self, name: &'static str, encode: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let start = self.code.len();
        encode(&mut self.code);
        let len = self.code.len() - start;
        self.expected.push((start as u32, name, len as u32));
        self
    }

    /// Every instruction start: a profile that sampled each once.
    fn starts(&self) -> Vec<u32> {
        self.expected.iter().map(|&(offset, _, _)| offset).collect()
    }
}

/// A few functions made by the encoder of the pulley-interpreter crate
/// `$pulley`: primary and extended ops, a call, branches, a `br_table32`
/// and its table, and `xpcadd` where the version has it.
macro_rules! functions_made_by {
    ($pulley:ident $(, $xpcadd:ident)?) => {{
        use $pulley::encode as e;
        use $pulley::{BinaryOperands, XReg};
        let mut leaf = Function::default();
        leaf.op("nop", |c| e::nop(c))
            .op("xadd32", |c| {
                e::xadd32(c, BinaryOperands::new(XReg::x0, XReg::x0, XReg::x1))
            })
            .op("br_if32", |c| e::br_if32(c, XReg::x0, 6))
            .op("xmov_fp", |c| e::xmov_fp(c, XReg::x2));
        $( leaf.op(stringify!($xpcadd), |c| e::$xpcadd(c, XReg::x3, -8)); )?
        leaf.op("call_indirect_host", |c| e::call_indirect_host(c, 7u8))
            .op("ret", |c| e::ret(c));

        let mut caller = Function::default();
        caller
            .op("push_frame", |c| e::push_frame(c))
            .op("xconst8", |c| e::xconst8(c, XReg::x0, 1i8))
            .op("call", |c| e::call(c, -64))
            .op("call1", |c| e::call1(c, XReg::x5, -64))
            .op("br_table32", |c| {
                e::br_table32(c, XReg::x0, 2u32);
                c.extend(8i32.to_le_bytes());
                c.extend(9i32.to_le_bytes());
            })
            .op("xmov", |c| e::xmov(c, XReg::x1, XReg::x0))
            .op("jump", |c| e::jump(c, 5))
            .op("trap", |c| e::trap(c))
            .op("xsub64", |c| {
                e::xsub64(c, BinaryOperands::new(XReg::x0, XReg::x1, XReg::x2))
            })
            .op("pop_frame", |c| e::pop_frame(c))
            .op("ret", |c| e::ret(c));
        vec![leaf, caller]
    }};
}

/// The test bytecode of every table, made by a version of that family.
fn functions_of(table: PulleyTable) -> Vec<Function> {
    match table {
        PulleyTable::Wasmtime31To36 => functions_made_by!(pulley36),
        PulleyTable::Wasmtime37To39 => functions_made_by!(pulley39, xpcadd),
        PulleyTable::Wasmtime40To51 => functions_made_by!(pulley_interpreter, xpcadd),
    }
}

/// Wasmtime 40's bytecode, for the latest table (whose other test
/// bytecode is 48.0.8's).
fn functions_of_40() -> Vec<Function> {
    functions_made_by!(pulley40, xpcadd)
}

#[test]
fn wasmtime_40s_encoder_output_is_the_latest_table() {
    let functions = functions_of_40();
    for function in &functions {
        let instructions = PulleyTableDecoder::new(PulleyTable::LATEST).decode(&function.code);
        let decoded: Vec<(u32, &str, u32)> = instructions
            .iter()
            .map(|i| (i.offset, i.opcode.as_str(), i.len))
            .collect();
        assert_eq!(decoded, function.expected);
    }
    let starts: Vec<Vec<u32>> = functions.iter().map(Function::starts).collect();
    let detection = detect_table(
        functions
            .iter()
            .zip(&starts)
            .map(|(f, s)| (f.code.as_slice(), s.as_slice())),
    );
    assert_eq!(detection.fitting(), vec![PulleyTable::LATEST]);
}

#[test]
fn each_tables_encoder_output_decodes_with_that_table() {
    for table in PulleyTable::ALL {
        for function in functions_of(table) {
            let instructions = PulleyTableDecoder::new(table).decode(&function.code);
            let decoded: Vec<(u32, &str, u32)> = instructions
                .iter()
                .map(|i| (i.offset, i.opcode.as_str(), i.len))
                .collect();
            assert_eq!(decoded, function.expected, "{table}");
            // The outline, whose plain-op lengths are remembered across
            // functions and tables, agrees: twice, the second time from
            // what the first remembered.
            for _ in 0..2 {
                let mut outline = Vec::new();
                PulleyTableDecoder::new(table).outline(&function.code, &mut |o, l, k| {
                    outline.push((o, l, k.clone()))
                });
                let expected: Vec<_> = instructions
                    .iter()
                    .map(|i| (i.offset, i.len, i.kind.clone()))
                    .collect();
                assert_eq!(outline, expected, "{table}");
            }
        }
    }
}

/// The texts match the whole-body disassembly of the version that wrote it.
#[test]
fn each_tables_text_is_its_versions_disassembly() {
    let texts = |table: PulleyTable, code: &[u8]| -> Vec<String> {
        PulleyTableDecoder::new(table)
            .decode(code)
            .into_iter()
            .map(|i| match i.text.split_once("    // targets") {
                Some((head, _)) => head.to_string(),
                None => i.text,
            })
            .collect()
    };
    macro_rules! whole_body {
        ($pulley:ident, $code:expr) => {{
            let mut disas = $pulley::disas::Disassembler::new($code);
            disas.offsets(false).hexdump(false).br_tables(false);
            $pulley::decode::Decoder::decode_all(&mut disas).expect("own bytecode");
            disas
                .disas()
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect::<Vec<String>>()
        }};
    }
    for f in functions_of(PulleyTable::Wasmtime31To36) {
        let table = PulleyTable::Wasmtime31To36;
        assert_eq!(texts(table, &f.code), whole_body!(pulley36, &f.code));
    }
    for f in functions_of(PulleyTable::Wasmtime37To39) {
        let table = PulleyTable::Wasmtime37To39;
        assert_eq!(texts(table, &f.code), whole_body!(pulley39, &f.code));
    }
    for f in functions_of_40() {
        let table = PulleyTable::Wasmtime40To51;
        assert_eq!(texts(table, &f.code), whole_body!(pulley40, &f.code));
    }
}

/// The demo program (48.0.8 bytecode, with a `br_table32`) is the latest
/// table's, and only its.
#[test]
fn the_demo_program_is_detected_as_the_latest() {
    let program = crate::pulley::workload::DemoProgram::new();
    let bodies: Vec<(&str, &[u8])> = program.function_bodies().collect();
    let starts: Vec<Vec<u32>> = bodies
        .iter()
        .map(|(_, body)| {
            PulleyDecoder
                .decode(body)
                .iter()
                .map(|i| i.offset)
                .collect()
        })
        .collect();
    let detection = detect_table(
        bodies
            .iter()
            .zip(&starts)
            .map(|((_, body), s)| (*body, s.as_slice())),
    );
    assert_eq!(
        detection.fitting(),
        vec![PulleyTable::LATEST],
        "{}",
        detection.describe()
    );
}

#[test]
fn each_tables_bytecode_is_detected_as_that_table_only() {
    for table in PulleyTable::ALL {
        let functions = functions_of(table);
        let starts: Vec<Vec<u32>> = functions.iter().map(Function::starts).collect();
        let detection = detect_table(
            functions
                .iter()
                .zip(&starts)
                .map(|(f, s)| (f.code.as_slice(), s.as_slice())),
        );
        assert_eq!(detection.table, Some(table), "{}", detection.describe());
        assert_eq!(detection.fitting(), vec![table], "{}", detection.describe());
        assert_eq!(detection.functions_skipped, 0);
        let right = detection.evidence_for(table).expect("evidence");
        let samples: usize = starts.iter().map(Vec::len).sum();
        assert_eq!((right.offsets, right.offsets_on_starts), (samples, samples));
        assert_eq!((right.functions, right.functions_to_end), (2, 2));
        for wrong in PulleyTable::ALL.into_iter().filter(|&t| t != table) {
            let evidence = detection.evidence_for(wrong).expect("evidence");
            assert!(!evidence.fits(), "{wrong} claims {table}: {evidence:?}");
        }
    }
}

#[test]
fn describe_names_the_table_and_the_evidence() {
    let functions = functions_of(PulleyTable::Wasmtime31To36);
    let starts: Vec<Vec<u32>> = functions.iter().map(Function::starts).collect();
    let detection = detect_table(
        functions
            .iter()
            .zip(&starts)
            .map(|(f, s)| (f.code.as_slice(), s.as_slice())),
    );
    assert_eq!(
        detection.describe(),
        "Pulley table: Wasmtime 31-36 (detected: 17 of 17 sampled offsets on instruction starts, 2 of 2 functions decode to their end)"
    );
}

/// Small deterministic generator, to avoid a dependency for fuzzing.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_fits_no_table() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let functions: Vec<(Vec<u8>, Vec<u32>)> = (0..8)
        .map(|_| {
            let code: Vec<u8> = (0..200).map(|_| xorshift(&mut state) as u8).collect();
            let offsets = (0..20)
                .map(|_| (xorshift(&mut state) % 200) as u32)
                .collect();
            (code, offsets)
        })
        .collect();
    let detection = detect_table(functions.iter().map(|(c, o)| (c.as_slice(), o.as_slice())));
    assert_eq!(detection.table, None, "{}", detection.describe());
    assert!(detection.fitting().is_empty());
    assert!(
        detection
            .describe()
            .starts_with("no Pulley table fits: Wasmtime 31-36: "),
        "{}",
        detection.describe()
    );
}

#[test]
fn a_sample_inside_an_instruction_rules_a_table_out() {
    let functions = functions_of(PulleyTable::LATEST);
    // 1 is inside `xadd32`, which starts at 1... so take its second byte.
    let inside = [functions[0].expected[1].0 + 1];
    let detection = detect_table([(functions[0].code.as_slice(), inside.as_slice())]);
    assert_eq!(detection.table, None, "{}", detection.describe());
    let latest = detection.evidence_for(PulleyTable::LATEST).expect("latest");
    assert_eq!(
        (
            latest.offsets,
            latest.offsets_on_starts,
            latest.functions_to_end
        ),
        (1, 0, 1)
    );
    // Past the end of the function is no instruction start either.
    let past = [functions[0].code.len() as u32];
    let detection = detect_table([(functions[0].code.as_slice(), past.as_slice())]);
    assert_eq!(detection.table, None);
}

#[test]
fn ties_go_to_the_latest_and_say_so() {
    // `ret` alone is 1 in 48.0.8 and `call` (truncated) in 31-39: only
    // the latest fits. Empty code fits every table: the latest wins, and
    // the others are named.
    let detection = detect_table([(&[][..], &[][..])]);
    assert_eq!(detection.table, Some(PulleyTable::LATEST));
    assert_eq!(detection.fitting(), PulleyTable::ALL.to_vec());
    assert_eq!(
        detection.describe(),
        "Pulley table: Wasmtime 40-51 (detected: 0 of 0 sampled offsets on instruction starts, 1 of 1 functions decode to their end; Wasmtime 31-36 and Wasmtime 37-39 fit too, the latest is preferred)"
    );
    let nothing = detect_table(std::iter::empty());
    assert_eq!(nothing.table, Some(PulleyTable::LATEST));
    assert_eq!(
        nothing.describe(),
        "Pulley table: Wasmtime 40-51 (the default: no bytecode to detect from)"
    );
}

#[test]
fn detection_is_capped_most_sampled_first() {
    let good = functions_of(PulleyTable::LATEST);
    let code = &good[0].code;
    let starts = good[0].starts();
    let bad = [0xffu8; 4];
    let one = [0u32];
    // Many clean functions with one sample each, and a garbage function
    // with the most samples last: it is examined, the excess is not.
    let mut functions: Vec<(&[u8], &[u32])> =
        vec![(code.as_slice(), &one[..]); DETECT_MAX_FUNCTIONS + 10];
    functions.push((&bad[..], starts.as_slice()));
    let detection = detect_table(functions.iter().copied());
    assert_eq!(detection.functions_skipped, 11);
    let latest = detection.evidence_for(PulleyTable::LATEST).expect("latest");
    assert_eq!(latest.functions, DETECT_MAX_FUNCTIONS);
    assert_eq!(latest.functions_to_end, DETECT_MAX_FUNCTIONS - 1);
    assert_eq!(detection.table, None);
    assert!(
        detection
            .describe()
            .ends_with("; 11 more functions not examined"),
        "{}",
        detection.describe()
    );

    // A function bigger than the byte budget is skipped, not cut.
    let huge = vec![0u8; DETECT_MAX_BYTES + 1];
    let detection = detect_table([(huge.as_slice(), &one[..]), (code.as_slice(), &one[..])]);
    assert_eq!(detection.functions_skipped, 1);
    assert_eq!(detection.table, Some(PulleyTable::LATEST));
}

#[test]
fn garbage_never_panics_under_any_table() {
    let mut state = 0x1234_5678_9abc_def1u64;
    for round in 0..2000 {
        let len = (xorshift(&mut state) % 48) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
        // Bias towards the old extended prefix and small opcodes.
        if round % 2 == 0 {
            for b in bytes.iter_mut().step_by(3) {
                *b = if *b % 4 == 0 {
                    OLD_EXTENDED_PREFIX
                } else {
                    *b % 8
                };
            }
        }
        for table in PulleyTable::ALL {
            let instructions = PulleyTableDecoder::new(table).decode(&bytes);
            let mut end = 0;
            for (i, inst) in instructions.iter().enumerate() {
                assert_eq!(inst.offset, end, "{table}: {inst:?}");
                assert!(inst.len >= 1);
                if inst.kind == InstructionKind::Undecodable {
                    assert_eq!(i, instructions.len() - 1);
                }
                end += inst.len;
            }
            assert_eq!(end as usize, bytes.len());
        }
        let offsets = [0, 1, 2, u32::MAX];
        let _ = detect_table([(bytes.as_slice(), &offsets[..])]);
    }
}

#[test]
fn versions_parse_to_their_family() {
    let parsed = |s: &str| s.parse::<PulleyTable>();
    for major in 31..=36 {
        assert_eq!(parsed(&major.to_string()), Ok(PulleyTable::Wasmtime31To36));
    }
    for major in 37..=39 {
        assert_eq!(parsed(&major.to_string()), Ok(PulleyTable::Wasmtime37To39));
    }
    for major in 40..=51 {
        assert_eq!(parsed(&major.to_string()), Ok(PulleyTable::Wasmtime40To51));
    }
    assert_eq!(parsed("36.0.23"), Ok(PulleyTable::Wasmtime31To36));
    assert_eq!(parsed(" 48 "), Ok(PulleyTable::Wasmtime40To51));
    for bad in [
        "30",
        "52",
        "0",
        "",
        "abc",
        "36.x",
        "-36",
        "36.",
        "v36",
        "99999999999",
    ] {
        let error = parsed(bad).expect_err(bad);
        assert_eq!(error.value(), bad);
        assert_eq!(
            error.to_string(),
            format!(
                "no Pulley opcode table for Wasmtime version '{bad}': pcprof knows Wasmtime 31 to 51 (a major version number, e.g. 36)"
            )
        );
    }
}

#[test]
fn display_and_constants() {
    let names: Vec<String> = PulleyTable::ALL.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        names,
        ["Wasmtime 31-36", "Wasmtime 37-39", "Wasmtime 40-51"]
    );
    assert_eq!(PulleyTable::default(), PulleyTable::LATEST);
    assert_eq!(PulleyTable::ALL.last(), Some(&PulleyTable::LATEST));
    assert_eq!(PulleyTableDecoder::default().table(), PulleyTable::LATEST);
    // The families are contiguous, oldest first.
    for pair in PulleyTable::ALL.windows(2) {
        assert_eq!(pair[0].versions().1 + 1, pair[1].versions().0);
    }
    assert_eq!(
        PulleyTableDecoder::new(PulleyTable::Wasmtime31To36).name(),
        "pulley"
    );
}

#[test]
fn grouped_counts() {
    assert_eq!(grouped(0), "0");
    assert_eq!(grouped(999), "999");
    assert_eq!(grouped(1200), "1 200");
    assert_eq!(grouped(1_234_567), "1 234 567");
}
