//! The Pulley opcode tables pcprof reads, and telling from the bytecode which
//! one wrote a profile.
//!
//! - Pulley's profile format carries no version, and its opcode numbering has
//!   changed between Wasmtime releases: bytecode decoded with the wrong table
//!   is nonsense that looks like code. Each [`PulleyTable`] is one family of
//!   Wasmtime versions whose opcode numbering is the same.
//! - The families, from the `for_each_op!` / `for_each_extended_op!` lists
//!   and the operand codecs (`decode.rs`, `encode.rs`, `imms.rs`, `regs.rs`)
//!   of pulley-interpreter 30.0.2 to 51.0.0:
//!   - Wasmtime 31-36: 219 primary ops, extended prefix 219, `nop` is
//!     extended op 1 (`trap`, `nop`, `call_indirect_host`, `xmov_fp`, ...).
//!   - Wasmtime 37-39: the same, with `xpcadd` inserted at extended op 3.
//!   - Wasmtime 40-51: `nop` moved to primary op 0 (every other primary op
//!     one up), the extended prefix to 220, and out of the extended list. 46
//!     appended 13 big-endian `_z` loads and stores at the end of the
//!     extended list, so 40-45 bytecode is a subset of 46-51's and one table
//!     serves both.
//!   - Wasmtime 30 (and earlier) has other memory ops from primary op 127
//!     on (`_offset8` / `_offset32` modes, `xbc32_*` bound traps with other
//!     operands) and 225 primary ops: no table here. Its ops below 127 and
//!     its first 13 extended ops are 31-36's, so a function using only
//!     those decodes, correctly, as 31-36; any other should fit no table
//!     (not tested: no Wasmtime 30 encoder among the dev-dependencies).
//! - Every op of the older tables exists in 48.0.8 with the same operands
//!   encoded the same way; only the numbering differs. So we decode with
//!   48.0.8 alone and `translate` the opcode bytes first. An opcode keeps its
//!   length (primary 1 byte, extended 3) except the old extended `nop`, which
//!   is answered here rather than rewritten to the 1-byte primary `nop`.
//! - [`detect_table`] decodes the sampled functions with every table: under
//!   the right one, sampled offsets land on instruction starts and functions
//!   decode to their end. The tests check each table against bytecode made
//!   by that version's own encoder and decoded by its own disassembler.

use std::fmt;
use std::str::FromStr;

use pulley_interpreter::Opcode;

use super::disas;

/// One family of Wasmtime versions that number Pulley's opcodes the same way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PulleyTable {
    /// Wasmtime 31 to 36 (36 is a long-term-support release).
    Wasmtime31To36,
    /// Wasmtime 37 to 39: `xpcadd` added as extended op 3.
    Wasmtime37To39,
    /// Wasmtime 40 to 51, pulley-interpreter 48.0.8's own table.
    #[default]
    Wasmtime40To51,
}

impl PulleyTable {
    /// The table of the pulley-interpreter pcprof is built with (48.0.8).
    pub const LATEST: Self = Self::Wasmtime40To51;

    /// Every table, oldest first.
    pub const ALL: [Self; 3] = [
        Self::Wasmtime31To36,
        Self::Wasmtime37To39,
        Self::Wasmtime40To51,
    ];

    /// First and last Wasmtime major versions of this family.
    pub fn versions(self) -> (u32, u32) {
        match self {
            Self::Wasmtime31To36 => (31, 36),
            Self::Wasmtime37To39 => (37, 39),
            Self::Wasmtime40To51 => (40, 51),
        }
    }

    /// The family of Wasmtime major version `major`, if pcprof knows it.
    pub fn for_version(major: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|table| {
            let (first, last) = table.versions();
            (first..=last).contains(&major)
        })
    }
}

impl fmt::Display for PulleyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = self.versions();
        write!(f, "Wasmtime {first}-{last}")
    }
}

impl FromStr for PulleyTable {
    type Err = UnknownPulleyVersion;

    /// Parses a Wasmtime version: a major number (`"36"`), or a full version
    /// (`"36.0.2"`) of which only the major number counts.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = || UnknownPulleyVersion {
            value: value.to_string(),
        };
        let mut parts = value.trim().split('.');
        let major = parts.next().unwrap_or_default();
        let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !is_number(major) || !parts.all(is_number) {
            return Err(error());
        }
        major
            .parse()
            .ok()
            .and_then(Self::for_version)
            .ok_or_else(error)
    }
}

/// A Wasmtime version with no known Pulley table (see [`PulleyTable::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPulleyVersion {
    /// The value as given.
    value: String,
}

impl UnknownPulleyVersion {
    /// The value as given.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for UnknownPulleyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, _) = PulleyTable::ALL[0].versions();
        let (_, last) = PulleyTable::LATEST.versions();
        write!(
            f,
            "no Pulley opcode table for Wasmtime version '{}': pcprof knows Wasmtime {first} to {last} (a major version number, e.g. 36)",
            self.value
        )
    }
}

impl std::error::Error for UnknownPulleyVersion {}

/// The extended-op prefix of Wasmtime 31-39: their primary op count, 219.
const OLD_EXTENDED_PREFIX: u8 = 219;
/// `nop` in the extended list of Wasmtime 31-39.
const OLD_EXTENDED_NOP: u16 = 1;
/// Extended ops in Wasmtime 31-36 and in 37-39.
const EXTENDED_OPS_31_TO_36: u16 = 310;
const EXTENDED_OPS_37_TO_39: u16 = 311;
/// Bytes of an extended opcode: the prefix and a little-endian `u16`.
const EXTENDED_OPCODE_BYTES: usize = 3;
/// More operand bytes than any op has (the longest, `vshuffle`, has 19):
/// a rewritten instruction copies at most this many. Checked by a test.
pub(super) const MAX_OPERAND_BYTES: usize = 32;

/// The bytes at an instruction start, as 48.0.8 reads them.
#[derive(Debug)]
pub(super) enum Translation<'a> {
    /// 48.0.8's numbering: the bytes as they are.
    Same(&'a [u8]),
    /// The opcode rewritten to 48.0.8's, followed by (at most
    /// [`MAX_OPERAND_BYTES`] of) the operand bytes. Same opcode length.
    Rewritten(Vec<u8>),
    /// The 3-byte extended `nop` of Wasmtime 31-39.
    ExtendedNop,
    /// No op of this table.
    Invalid,
}

/// Translates the instruction starting at `rest[0]` from `table`'s numbering
/// to 48.0.8's. Empty `rest` is invalid.
pub(super) fn translate(table: PulleyTable, rest: &[u8]) -> Translation<'_> {
    let Some(&first) = rest.first() else {
        return Translation::Invalid;
    };
    let extended_ops = match table {
        PulleyTable::Wasmtime40To51 => return Translation::Same(rest),
        PulleyTable::Wasmtime31To36 => EXTENDED_OPS_31_TO_36,
        PulleyTable::Wasmtime37To39 => EXTENDED_OPS_37_TO_39,
    };
    let (opcode, operands) = match first {
        // `nop` took primary 0, so every old primary op moved one up.
        byte if byte < OLD_EXTENDED_PREFIX => (vec![byte + 1], &rest[1..]),
        OLD_EXTENDED_PREFIX => {
            let Some(&[low, high]) = rest.get(1..EXTENDED_OPCODE_BYTES) else {
                return Translation::Invalid;
            };
            let old = u16::from_le_bytes([low, high]);
            if old >= extended_ops {
                return Translation::Invalid;
            }
            let new = match (table, old) {
                (_, OLD_EXTENDED_NOP) => return Translation::ExtendedNop,
                // `trap` stays 0.
                (_, 0) => 0,
                // `nop` left the list: one down. Wasmtime 31-36 lacks
                // `xpcadd` (new 2), so past `call_indirect_host` its ops
                // are back at their old numbers.
                (PulleyTable::Wasmtime31To36, 2) => 1,
                (PulleyTable::Wasmtime31To36, old) => old,
                (_, old) => old - 1,
            };
            let mut opcode = vec![Opcode::ExtendedOp as u8];
            opcode.extend(new.to_le_bytes());
            (opcode, &rest[EXTENDED_OPCODE_BYTES..])
        }
        _ => return Translation::Invalid,
    };
    let mut bytes = opcode;
    bytes.extend_from_slice(&operands[..operands.len().min(MAX_OPERAND_BYTES)]);
    Translation::Rewritten(bytes)
}

/// At most this many functions are decoded by [`detect_table`].
pub const DETECT_MAX_FUNCTIONS: usize = 256;
/// At most this many bytes of code are decoded by [`detect_table`], per table.
pub const DETECT_MAX_BYTES: usize = 1 << 20;

/// What one table makes of the examined bytecode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEvidence {
    /// The table tried.
    pub table: PulleyTable,
    /// Sampled offsets examined (as given: repeats count).
    pub offsets: usize,
    /// Of those, offsets that are the start of an instruction.
    pub offsets_on_starts: usize,
    /// Functions examined.
    pub functions: usize,
    /// Of those, functions that decode to their end (no undecodable tail).
    pub functions_to_end: usize,
}

impl TableEvidence {
    /// Whether everything examined is consistent with this table.
    pub fn fits(&self) -> bool {
        self.offsets_on_starts == self.offsets && self.functions_to_end == self.functions
    }

    /// "1 200 of 1 200 sampled offsets on instruction starts, 831 of 831
    /// functions decode to their end".
    fn summary(&self) -> String {
        format!(
            "{} of {} sampled offsets on instruction starts, {} of {} functions decode to their end",
            grouped(self.offsets_on_starts),
            grouped(self.offsets),
            grouped(self.functions_to_end),
            grouped(self.functions)
        )
    }
}

/// Which table the bytecode of a profile was written with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDetection {
    /// The table to decode with: the latest of those that fit, `None` when
    /// none does (then no names should be printed from the bytecode).
    pub table: Option<PulleyTable>,
    /// One entry per table, in [`PulleyTable::ALL`]'s order.
    pub evidence: Vec<TableEvidence>,
    /// Functions left out by the caps ([`DETECT_MAX_FUNCTIONS`],
    /// [`DETECT_MAX_BYTES`]).
    pub functions_skipped: usize,
}

impl TableDetection {
    /// The evidence of `table`.
    pub fn evidence_for(&self, table: PulleyTable) -> Option<&TableEvidence> {
        self.evidence.iter().find(|e| e.table == table)
    }

    /// The tables that fit, oldest first.
    pub fn fitting(&self) -> Vec<PulleyTable> {
        self.evidence
            .iter()
            .filter(|e| e.fits())
            .map(|e| e.table)
            .collect()
    }

    /// One line for a report: the table used and the evidence, or that none
    /// fits and what each one made of the bytecode.
    pub fn describe(&self) -> String {
        let skipped = match self.functions_skipped {
            0 => String::new(),
            n => format!("; {} more functions not examined", grouped(n)),
        };
        let Some(table) = self.table else {
            let each: Vec<String> = self
                .evidence
                .iter()
                .map(|e| format!("{}: {}", e.table, e.summary()))
                .collect();
            return format!("no Pulley table fits: {}{skipped}", each.join("; "));
        };
        let Some(evidence) = self.evidence_for(table) else {
            return format!("Pulley table: {table}");
        };
        if evidence.functions == 0 {
            return format!("Pulley table: {table} (the default: no bytecode to detect from)");
        }
        let others: Vec<String> = self
            .fitting()
            .into_iter()
            .filter(|&t| t != table)
            .map(|t| t.to_string())
            .collect();
        let ambiguity = match others.len() {
            0 => String::new(),
            _ => format!(
                "; {} fit{} too, the latest is preferred",
                others.join(" and "),
                if others.len() == 1 { "s" } else { "" }
            ),
        };
        format!(
            "Pulley table: {table} (detected: {}{ambiguity}{skipped})",
            evidence.summary()
        )
    }
}

/// Finds the table `functions` were written with. Each item is a function's
/// code and the byte offsets sampled in it.
///
/// Cheap on huge profiles: pass only sampled functions. The most sampled are
/// examined first, and at most [`DETECT_MAX_FUNCTIONS`] functions and
/// [`DETECT_MAX_BYTES`] bytes of code per table; the rest are counted in
/// [`TableDetection::functions_skipped`]. No text is made: each instruction
/// is only measured. A table fits when every examined offset is an
/// instruction start and every examined function decodes to its end; of
/// those that fit, the latest wins. The rule is strict because the samples
/// are exact: Pulley records the pc before it executes each instruction
/// (`before_visit`) in the cell pcprof's adapter samples, so under the right
/// table no sample falls inside an instruction (the adapter's integration
/// test checks it on the real interpreter).
pub fn detect_table<'a>(
    functions: impl IntoIterator<Item = (&'a [u8], &'a [u32])>,
) -> TableDetection {
    let mut functions: Vec<(&[u8], &[u32])> = functions.into_iter().collect();
    // Stable: equally sampled functions keep the caller's order.
    functions.sort_by_key(|(_, offsets)| std::cmp::Reverse(offsets.len()));
    let mut examined = Vec::new();
    let mut bytes = 0usize;
    for &(code, offsets) in &functions {
        if examined.len() == DETECT_MAX_FUNCTIONS {
            break;
        }
        // A function past the byte budget is skipped, but smaller ones
        // after it may still fit in.
        if bytes.saturating_add(code.len()) > DETECT_MAX_BYTES {
            continue;
        }
        bytes += code.len();
        examined.push((code, offsets));
    }
    let functions_skipped = functions.len() - examined.len();

    let evidence: Vec<TableEvidence> = PulleyTable::ALL
        .into_iter()
        .map(|table| {
            let mut evidence = TableEvidence {
                table,
                offsets: 0,
                offsets_on_starts: 0,
                functions: examined.len(),
                functions_to_end: 0,
            };
            for &(code, offsets) in &examined {
                let (starts, to_end) = instruction_starts(code, table);
                evidence.functions_to_end += usize::from(to_end);
                evidence.offsets += offsets.len();
                evidence.offsets_on_starts += offsets
                    .iter()
                    .filter(|o| starts.binary_search(o).is_ok())
                    .count();
            }
            evidence
        })
        .collect();
    let table = evidence.iter().rev().find(|e| e.fits()).map(|e| e.table);
    TableDetection {
        table,
        evidence,
        functions_skipped,
    }
}

/// The instruction starts of `code` under `table`, ascending, and whether it
/// decodes to its end.
fn instruction_starts(code: &[u8], table: PulleyTable) -> (Vec<u32>, bool) {
    let mut starts = Vec::new();
    let mut offset = 0;
    while offset < code.len() {
        let Some(len) = disas::instruction_len(code, offset, table) else {
            return (starts, false);
        };
        starts.push(offset as u32);
        offset += len;
    }
    (starts, true)
}

/// `1234567` as "1 234 567", as reports print counts.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests;
