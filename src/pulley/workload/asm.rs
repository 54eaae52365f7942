//! A minimal label assembler over `pulley_interpreter`'s own encoder.
//!
//! - Ops are encoded with `Op::encode` into one buffer, so the bytes are
//!   exactly what the interpreter and its disassembler understand.
//! - A branch or call is encoded with a zero offset; its trailing 4-byte
//!   `PcRelOffset` is patched once all labels are bound ([`Asm::finish`]).
//!   Pulley offsets are relative to the start of the instruction (or, for
//!   `br_table32`, of the table entry).
//! - [`Asm::function`] and [`Asm::end_function`] record each function's
//!   range in the buffer, for the profiler's registration.

use pulley_interpreter::{AddrO32, BinaryOperands, Op, PcRelOffset, XReg, op};

use super::DemoFunction;

/// A branch or call destination, bound to a code offset by [`Asm::bind`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Label(usize);

/// A 4-byte pc-relative field to patch once its label is bound.
#[derive(Debug)]
struct Fixup {
    /// Position of the little-endian `i32` field.
    at: usize,
    /// Position the offset is relative to (instruction or table-entry start).
    base: usize,
    label: Label,
}

/// Minimal assembler: encodes ops into one buffer and resolves labels.
#[derive(Debug, Default)]
pub(super) struct Asm {
    code: Vec<u8>,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
    functions: Vec<DemoFunction>,
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub(super) fn bind(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label bound twice");
        self.labels[label.0] = Some(self.code.len());
    }

    /// Starts function `name` at the current position, ending the previous one.
    pub(super) fn function(&mut self, name: &'static str, label: Label) {
        self.end_function();
        self.bind(label);
        self.functions.push(DemoFunction {
            name,
            offset: self.code.len(),
            len: 0,
        });
    }

    pub(super) fn end_function(&mut self) {
        let end = self.code.len();
        if let Some(last) = self.functions.last_mut() {
            last.len = end - last.offset;
        }
    }

    pub(super) fn op(&mut self, op: impl Into<Op>) {
        op.into().encode(&mut self.code);
    }

    /// Emits an op whose LAST operand is a `PcRelOffset` to `target` (true of
    /// `jump`, every `br_if*` and `call*` op in Pulley's encoding).
    pub(super) fn op_to(&mut self, target: Label, make: impl FnOnce(PcRelOffset) -> Op) {
        let base = self.code.len();
        make(PcRelOffset::from(0)).encode(&mut self.code);
        self.fixups.push(Fixup {
            at: self.code.len() - 4,
            base,
            label: target,
        });
    }

    /// Emits `br_table32 idx` followed by its inline table of targets.
    pub(super) fn br_table(&mut self, idx: XReg, targets: &[Label]) {
        self.op(op::BrTable32 {
            idx,
            amt: targets.len() as u32,
        });
        for &label in targets {
            let at = self.code.len();
            self.code.extend_from_slice(&0i32.to_le_bytes());
            // Table entries are relative to the entry itself.
            self.fixups.push(Fixup {
                at,
                base: at,
                label,
            });
        }
    }

    pub(super) fn finish(mut self) -> (Vec<u8>, Vec<DemoFunction>) {
        self.end_function();
        for fixup in &self.fixups {
            let Some(target) = self.labels[fixup.label.0] else {
                // A bug in `assemble`; the tests (debug builds) catch it. In
                // release the field keeps offset 0 rather than panicking.
                debug_assert!(false, "unbound label {:?}", fixup.label);
                continue;
            };
            // The buffer is a few KiB, so the difference always fits in i32.
            let rel = (target as i64 - fixup.base as i64) as i32;
            self.code[fixup.at..fixup.at + 4].copy_from_slice(&rel.to_le_bytes());
        }
        (self.code, self.functions)
    }
}

pub(super) fn bin(dst: XReg, src1: XReg, src2: XReg) -> BinaryOperands<XReg> {
    BinaryOperands::new(dst, src1, src2)
}

pub(super) fn at(addr: XReg, offset: i32) -> AddrO32 {
    AddrO32 { addr, offset }
}
