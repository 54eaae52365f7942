//! A bundled demo program of real Pulley bytecode to profile.
//!
//! - The program is assembled at start-up with `pulley_interpreter`'s own
//!   encoder (`Op::encode`), so it is exactly the bytecode the interpreter
//!   and its disassembler understand; nothing is hand-written hex.
//! - All functions live in ONE contiguous code buffer, like a compiled module,
//!   and call each other with Pulley's pc-relative `call`/`call1..3` ops. The
//!   buffer is a `Box<[u8]>` that is never reallocated, so the address of
//!   every function (`code().as_ptr() + offset`) stays valid for the
//!   program's lifetime, even if the [`DemoProgram`] value itself is moved.
//! - A tiny label assembler ([`Asm`]) resolves branch and call targets: an op
//!   is encoded with a zero offset and its trailing 4-byte `PcRelOffset` is
//!   patched once all labels are bound. Pulley offsets are relative to the
//!   start of the instruction (or, for `br_table32`, of the table entry).
//! - The functions do different kinds of work at clearly different costs so a
//!   profile has a ranking (share of samples in a release build): `sieve`
//!   (byte stores/loads, nested loops) ~50%, `hash` (FNV-1a over the sieve
//!   bytes) ~16%, `fill` (xorshift vectors) ~13%, `collatz` (dispatch through
//!   a `br_table32`) ~8%, the recursive `fib` (call-heavy, uses frames) ~7%,
//!   `dot` ~5%; `main` drives them and is almost never sampled. One
//!   [`DemoProgram::run_once`] takes ~7 ms.
//! - Every function has a Rust reference implementation; the unit tests run
//!   the bytecode on a real [`Vm`] and compare exact results, and
//!   [`expected_checksum`] gives the driver's result for the host to check.
//!
//! Register convention (our own, simpler than Cranelift's): arguments in
//! `x0..`, result in `x0`; leaf functions clobber `x0..x15` freely; `fib`
//! saves the `x16`/`x17` it uses, and `main` keeps its state in `x16..x24`.

use std::fmt;
use std::ptr::NonNull;

use pulley_interpreter::interp::{DoneReason, RegType, TrapKind, Val, Vm};
use pulley_interpreter::{AddrO32, BinaryOperands, Op, PcRelOffset, UpperRegSet, XReg, op};

/// Bytes of the sieve buffer (also the number of candidates sieved, and the
/// number of bytes `hash` digests).
const SIEVE_N: usize = 1 << 16;
/// Elements (`i64`) of each of the two `dot` vectors.
const DOT_N: usize = 16384;
/// Argument of the recursive `fib`.
const FIB_N: u64 = 20;
/// `collatz` sums the trajectory lengths of `1..COLLATZ_N`.
const COLLATZ_N: u64 = 400;
/// Rounds of the driver loop per [`DemoProgram::run_once`].
const ROUNDS: u64 = 1;

/// Byte offsets of the buffers inside [`Scratch`].
const SIEVE_OFF: usize = 0;
const A_OFF: usize = SIEVE_OFF + SIEVE_N;
const B_OFF: usize = A_OFF + 8 * DOT_N;
const SCRATCH_BYTES: usize = B_OFF + 8 * DOT_N;

/// Seed added to the round number for the second `dot` vector, so the two
/// vectors differ.
const SEED_B: u32 = 0x9e37_79b9;
/// FNV-1a 64-bit parameters.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One function of the demo program: where its body lies in the code buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoFunction {
    /// Function name, as a profile should show it.
    pub name: &'static str,
    /// Byte offset of the first instruction within [`DemoProgram::code`].
    pub offset: usize,
    /// Length of the body in bytes.
    pub len: usize,
}

impl DemoFunction {
    /// The body's byte range within [`DemoProgram::code`].
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The assembled demo program: one code buffer holding all functions.
#[derive(Debug)]
pub struct DemoProgram {
    /// Never reallocated after construction, so function addresses are stable.
    code: Box<[u8]>,
    functions: Vec<DemoFunction>,
}

/// The memory the demo functions read and write (sieve bytes, two vectors).
///
/// Its size is fixed and matches the constants baked into the bytecode, which
/// is what makes [`DemoProgram::run_once`] memory-safe.
#[derive(Debug)]
pub struct Scratch {
    /// `u64` words so the vectors the bytecode loads as `i64` are aligned.
    words: Box<[u64]>,
}

impl Scratch {
    /// Allocates zeroed scratch memory of the size the program expects.
    pub fn new() -> Scratch {
        Scratch {
            words: vec![0u64; SCRATCH_BYTES.div_ceil(8)].into_boxed_slice(),
        }
    }

    fn base_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// Why a run of the bytecode did not return a value to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The interpreter trapped.
    Trap {
        /// Function containing the trapping instruction, if it is ours.
        function: Option<&'static str>,
        /// Offset of the trapping instruction within the code buffer, if it
        /// lies inside it.
        offset: Option<usize>,
        /// The kind of trap, as Pulley reports it (`unknown` if it does not).
        kind: &'static str,
    },
    /// The bytecode executed `call_indirect_host`, which the demo never does.
    HostCall {
        /// The host call's id operand.
        id: u8,
    },
    /// The call returned without a value in `x0`.
    MissingResult,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Trap {
                function,
                offset,
                kind,
            } => {
                write!(f, "pulley trap ({kind})")?;
                if let Some(function) = function {
                    write!(f, " in `{function}`")?;
                }
                if let Some(offset) = offset {
                    write!(f, " at code offset {offset:#x}")?;
                }
                Ok(())
            }
            RunError::HostCall { id } => write!(f, "unexpected host call {id} from pulley"),
            RunError::MissingResult => write!(f, "pulley call returned no result"),
        }
    }
}

impl std::error::Error for RunError {}

impl DemoProgram {
    /// Assembles the demo program.
    pub fn new() -> DemoProgram {
        let (code, functions) = assemble();
        DemoProgram {
            code: code.into_boxed_slice(),
            functions,
        }
    }

    /// The whole code buffer; function `f` starts at `code().as_ptr() + f.offset`.
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// The functions in layout order; together they cover [`Self::code`].
    pub fn functions(&self) -> &[DemoFunction] {
        &self.functions
    }

    /// `(name, slice of the code buffer)` for each function, in layout order.
    pub fn function_bodies(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.functions
            .iter()
            .map(|f| (f.name, &self.code[f.range()]))
    }

    /// Runs the driver (`main`) once on `vm`, with `scratch` as the memory the
    /// functions work on, and returns its checksum (see [`expected_checksum`]).
    ///
    /// A trap or other abnormal exit is returned as an error, never a panic.
    pub fn run_once(&self, vm: &mut Vm, scratch: &mut Scratch) -> Result<u64, RunError> {
        let args = [Val::from(scratch.base_ptr()), Val::from(ROUNDS)];
        // SAFETY: `main` is valid bytecode built by `assemble`, it takes
        // exactly these two integer arguments and returns one, and it only
        // touches `scratch` within the layout `Scratch::new` allocates
        // (`SCRATCH_BYTES`), which we borrow exclusively for the call.
        unsafe { self.call(vm, "main", &args) }
    }

    /// Calls function `name` with `args` and returns its `x0`.
    ///
    /// # Safety
    ///
    /// `args` must be what the function expects; pointers must be valid for
    /// the sizes the function reads and writes.
    unsafe fn call(&self, vm: &mut Vm, name: &str, args: &[Val]) -> Result<u64, RunError> {
        let Some(function) = self.functions.iter().find(|f| f.name == name) else {
            // Only reachable through a typo in this file; the tests call all.
            return Err(RunError::Trap {
                function: None,
                offset: None,
                kind: "no such function",
            });
        };
        // Derive the entry pointer from the whole buffer (not from one byte)
        // so the interpreter may read the rest of the code through it.
        let base = NonNull::from(&self.code[..]).cast::<u8>();
        // SAFETY: `function.offset` is within the buffer (set by `assemble`);
        // the caller guarantees the arguments.
        let done = unsafe {
            let entry = base.add(function.offset);
            vm.call(entry, args, [RegType::XReg])
        };
        match done {
            DoneReason::ReturnToHost(mut results) => match results.next() {
                Some(Val::XReg(value)) => Ok(value.get_u64()),
                _ => Err(RunError::MissingResult),
            },
            DoneReason::Trap { pc, kind } => {
                let offset = (pc.as_ptr() as usize)
                    .checked_sub(base.as_ptr() as usize)
                    .filter(|offset| *offset < self.code.len());
                let function = offset.and_then(|offset| {
                    self.functions
                        .iter()
                        .find(|f| f.range().contains(&offset))
                        .map(|f| f.name)
                });
                Err(RunError::Trap {
                    function,
                    offset,
                    kind: trap_kind_name(kind),
                })
            }
            DoneReason::CallIndirectHost { id, .. } => Err(RunError::HostCall { id }),
        }
    }
}

impl Default for DemoProgram {
    fn default() -> Self {
        DemoProgram::new()
    }
}

/// `TrapKind` implements neither `Debug` nor `Display`, hence this table.
fn trap_kind_name(kind: Option<TrapKind>) -> &'static str {
    match kind {
        None => "unknown",
        Some(TrapKind::DivideByZero) => "divide by zero",
        Some(TrapKind::IntegerOverflow) => "integer overflow",
        Some(TrapKind::BadConversionToInteger) => "bad conversion to integer",
        Some(TrapKind::MemoryOutOfBounds) => "memory out of bounds",
        Some(TrapKind::DisabledOpcode) => "disabled opcode",
        Some(TrapKind::StackOverflow) => "stack overflow",
    }
}

/// The checksum [`DemoProgram::run_once`] returns, computed in plain Rust.
pub fn expected_checksum() -> u64 {
    reference::main(ROUNDS)
}

// ---------------------------------------------------------------------------
// Assembler

/// A branch or call destination, bound to a code offset by [`Asm::bind`].
#[derive(Clone, Copy, Debug)]
struct Label(usize);

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
struct Asm {
    code: Vec<u8>,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
    functions: Vec<DemoFunction>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label bound twice");
        self.labels[label.0] = Some(self.code.len());
    }

    /// Starts function `name` at the current position, ending the previous one.
    fn function(&mut self, name: &'static str, label: Label) {
        self.end_function();
        self.bind(label);
        self.functions.push(DemoFunction {
            name,
            offset: self.code.len(),
            len: 0,
        });
    }

    fn end_function(&mut self) {
        let end = self.code.len();
        if let Some(last) = self.functions.last_mut() {
            last.len = end - last.offset;
        }
    }

    fn op(&mut self, op: impl Into<Op>) {
        op.into().encode(&mut self.code);
    }

    /// Emits an op whose LAST operand is a `PcRelOffset` to `target` (true of
    /// `jump`, every `br_if*` and `call*` op in Pulley's encoding).
    fn op_to(&mut self, target: Label, make: impl FnOnce(PcRelOffset) -> Op) {
        let base = self.code.len();
        make(PcRelOffset::from(0)).encode(&mut self.code);
        self.fixups.push(Fixup {
            at: self.code.len() - 4,
            base,
            label: target,
        });
    }

    /// Emits `br_table32 idx` followed by its inline table of targets.
    fn br_table(&mut self, idx: XReg, targets: &[Label]) {
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

    fn finish(mut self) -> (Vec<u8>, Vec<DemoFunction>) {
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

fn bin(dst: XReg, src1: XReg, src2: XReg) -> BinaryOperands<XReg> {
    BinaryOperands::new(dst, src1, src2)
}

fn at(addr: XReg, offset: i32) -> AddrO32 {
    AddrO32 { addr, offset }
}

/// Labels of all functions, created up front so calls can refer forward.
struct Functions {
    main: Label,
    sieve: Label,
    hash: Label,
    fill: Label,
    dot: Label,
    fib: Label,
    collatz: Label,
}

/// Assembles every function into one buffer, in layout order.
fn assemble() -> (Vec<u8>, Vec<DemoFunction>) {
    let mut a = Asm::default();
    let f = Functions {
        main: a.label(),
        sieve: a.label(),
        hash: a.label(),
        fill: a.label(),
        dot: a.label(),
        fib: a.label(),
        collatz: a.label(),
    };
    // `main` first so its calls go forward and `fib`'s recursion backward:
    // both signs of pc-relative offsets get exercised.
    emit_main(&mut a, &f);
    emit_sieve(&mut a, &f);
    emit_hash(&mut a, &f);
    emit_fill(&mut a, &f);
    emit_dot(&mut a, &f);
    emit_fib(&mut a, &f);
    emit_collatz(&mut a, &f);
    a.finish()
}

/// `main(scratch: *mut u8, rounds: u64) -> u64`: runs every other function
/// `rounds` times and folds their results into `acc = acc * 31 + result`.
fn emit_main(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let (top, done) = (a.label(), a.label());
    a.function("main", f.main);
    a.op(op::PushFrame {});
    a.op(op::Xmov { dst: x16, src: x0 }); // scratch base
    a.op(op::Xmov { dst: x17, src: x1 }); // rounds
    a.op(op::Xzero { dst: x18 }); // acc
    a.op(op::Xzero { dst: x19 }); // round
    a.op(op::Xconst8 { dst: x22, imm: 31 });
    a.bind(top);
    a.op_to(done, |offset| {
        op::BrIfXulteq64 {
            a: x17,
            b: x19,
            offset,
        }
        .into()
    });
    // acc = acc * 31 + sieve(scratch + SIEVE_OFF, SIEVE_N)
    a.op(op::Xadd64U32 {
        dst: x20,
        src1: x16,
        src2: SIEVE_OFF as u32,
    });
    a.op(op::Xconst32 {
        dst: x21,
        imm: SIEVE_N as i32,
    });
    a.op_to(f.sieve, |offset| {
        op::Call2 {
            arg1: x20,
            arg2: x21,
            offset,
        }
        .into()
    });
    a.op(op::Xmadd64 {
        dst: x18,
        src1: x18,
        src2: x22,
        src3: x0,
    });
    // acc = acc * 31 + hash(sieve bytes)
    a.op_to(f.hash, |offset| {
        op::Call2 {
            arg1: x20,
            arg2: x21,
            offset,
        }
        .into()
    });
    a.op(op::Xmadd64 {
        dst: x18,
        src1: x18,
        src2: x22,
        src3: x0,
    });
    // fill(a, DOT_N, round + 1); fill(b, DOT_N, round + SEED_B)
    a.op(op::Xadd64U32 {
        dst: x20,
        src1: x16,
        src2: A_OFF as u32,
    });
    a.op(op::Xconst32 {
        dst: x21,
        imm: DOT_N as i32,
    });
    a.op(op::Xadd64U8 {
        dst: x23,
        src1: x19,
        src2: 1,
    });
    a.op_to(f.fill, |offset| {
        op::Call3 {
            arg1: x20,
            arg2: x21,
            arg3: x23,
            offset,
        }
        .into()
    });
    a.op(op::Xadd64U32 {
        dst: x24,
        src1: x16,
        src2: B_OFF as u32,
    });
    a.op(op::Xadd64U32 {
        dst: x23,
        src1: x19,
        src2: SEED_B,
    });
    a.op_to(f.fill, |offset| {
        op::Call3 {
            arg1: x24,
            arg2: x21,
            arg3: x23,
            offset,
        }
        .into()
    });
    // acc = acc * 31 + dot(a, b, DOT_N)
    a.op_to(f.dot, |offset| {
        op::Call3 {
            arg1: x20,
            arg2: x24,
            arg3: x21,
            offset,
        }
        .into()
    });
    a.op(op::Xmadd64 {
        dst: x18,
        src1: x18,
        src2: x22,
        src3: x0,
    });
    // acc = acc * 31 + fib(FIB_N), with the argument already in x0.
    a.op(op::Xconst8 {
        dst: x0,
        imm: FIB_N as i8,
    });
    a.op_to(f.fib, |offset| op::Call { offset }.into());
    a.op(op::Xmadd64 {
        dst: x18,
        src1: x18,
        src2: x22,
        src3: x0,
    });
    // acc = acc * 31 + collatz(COLLATZ_N)
    a.op(op::Xconst32 {
        dst: x20,
        imm: COLLATZ_N as i32,
    });
    a.op_to(f.collatz, |offset| op::Call1 { arg1: x20, offset }.into());
    a.op(op::Xmadd64 {
        dst: x18,
        src1: x18,
        src2: x22,
        src3: x0,
    });
    a.op(op::Xadd64U8 {
        dst: x19,
        src1: x19,
        src2: 1,
    });
    a.op_to(top, |offset| op::Jump { offset }.into());
    a.bind(done);
    a.op(op::Xmov { dst: x0, src: x18 });
    a.op(op::PopFrame {});
    a.op(op::Ret {});
}

/// `sieve(buf: *mut u8, n: u64) -> u64`: sets `buf[0..n]` to 1, clears the
/// composites from 2 on (Eratosthenes) and returns the number of primes `< n`.
fn emit_sieve(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let (fill, fill_done, outer, inner, next, done) = (
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
    );
    a.function("sieve", f.sieve);
    a.op(op::Xone { dst: x2 });
    a.op(op::Xzero { dst: x9 });
    a.op(op::Xzero { dst: x3 }); // i
    a.bind(fill);
    a.op_to(fill_done, |offset| {
        op::BrIfXulteq64 {
            a: x1,
            b: x3,
            offset,
        }
        .into()
    });
    a.op(op::Xadd64 {
        operands: bin(x4, x0, x3),
    });
    a.op(op::XStore8O32 {
        addr: at(x4, 0),
        src: x2,
    });
    a.op(op::Xadd64U8 {
        dst: x3,
        src1: x3,
        src2: 1,
    });
    a.op_to(fill, |offset| op::Jump { offset }.into());
    a.bind(fill_done);
    a.op(op::Xzero { dst: x5 }); // count
    a.op(op::Xconst8 { dst: x3, imm: 2 }); // i
    a.bind(outer);
    a.op_to(done, |offset| {
        op::BrIfXulteq64 {
            a: x1,
            b: x3,
            offset,
        }
        .into()
    });
    a.op(op::Xadd64 {
        operands: bin(x4, x0, x3),
    });
    a.op(op::XLoad8U32O32 {
        dst: x6,
        addr: at(x4, 0),
    });
    a.op_to(next, |offset| {
        op::BrIfXeq32I8 {
            a: x6,
            b: 0,
            offset,
        }
        .into()
    });
    a.op(op::Xadd64U8 {
        dst: x5,
        src1: x5,
        src2: 1,
    });
    a.op(op::XMul64 {
        operands: bin(x7, x3, x3),
    }); // j = i * i
    a.bind(inner);
    a.op_to(next, |offset| {
        op::BrIfXulteq64 {
            a: x1,
            b: x7,
            offset,
        }
        .into()
    });
    a.op(op::Xadd64 {
        operands: bin(x4, x0, x7),
    });
    a.op(op::XStore8O32 {
        addr: at(x4, 0),
        src: x9,
    });
    a.op(op::Xadd64 {
        operands: bin(x7, x7, x3),
    });
    a.op_to(inner, |offset| op::Jump { offset }.into());
    a.bind(next);
    a.op(op::Xadd64U8 {
        dst: x3,
        src1: x3,
        src2: 1,
    });
    a.op_to(outer, |offset| op::Jump { offset }.into());
    a.bind(done);
    a.op(op::Xmov { dst: x0, src: x5 });
    a.op(op::Ret {});
}

/// `hash(ptr: *const u8, len: u64) -> u64`: 64-bit FNV-1a of the bytes.
fn emit_hash(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let (top, done) = (a.label(), a.label());
    a.function("hash", f.hash);
    a.op(op::Xconst64 {
        dst: x2,
        imm: FNV_OFFSET as i64,
    });
    a.op(op::Xconst64 {
        dst: x3,
        imm: FNV_PRIME as i64,
    });
    a.op(op::Xadd64 {
        operands: bin(x4, x0, x1),
    }); // end
    a.bind(top);
    a.op_to(done, |offset| {
        op::BrIfXulteq64 {
            a: x4,
            b: x0,
            offset,
        }
        .into()
    });
    a.op(op::XLoad8U32O32 {
        dst: x5,
        addr: at(x0, 0),
    });
    // 32-bit loads leave the register's upper half stale: clear it before
    // the 64-bit xor.
    a.op(op::Zext8 { dst: x5, src: x5 });
    a.op(op::XBxor64 {
        operands: bin(x2, x2, x5),
    });
    a.op(op::XMul64 {
        operands: bin(x2, x2, x3),
    });
    a.op(op::Xadd64U8 {
        dst: x0,
        src1: x0,
        src2: 1,
    });
    a.op_to(top, |offset| op::Jump { offset }.into());
    a.bind(done);
    a.op(op::Xmov { dst: x0, src: x2 });
    a.op(op::Ret {});
}

/// `fill(ptr: *mut i64, n: u64, seed: u64) -> u64`: stores `n` xorshift64
/// values (top 24 bits, so `dot` never overflows) and returns the final state.
fn emit_fill(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let (top, done) = (a.label(), a.label());
    a.function("fill", f.fill);
    a.op(op::Xzero { dst: x3 }); // i
    // Shift amounts live in registers: constant-shift ops need a `U6`, which
    // can only be built fallibly.
    a.op(op::Xconst8 { dst: x6, imm: 13 });
    a.op(op::Xconst8 { dst: x7, imm: 7 });
    a.op(op::Xconst8 { dst: x8, imm: 17 });
    a.op(op::Xconst8 { dst: x9, imm: 40 });
    a.bind(top);
    a.op_to(done, |offset| {
        op::BrIfXulteq64 {
            a: x1,
            b: x3,
            offset,
        }
        .into()
    });
    a.op(op::Xshl64 {
        operands: bin(x4, x2, x6),
    });
    a.op(op::XBxor64 {
        operands: bin(x2, x2, x4),
    });
    a.op(op::Xshr64U {
        operands: bin(x4, x2, x7),
    });
    a.op(op::XBxor64 {
        operands: bin(x2, x2, x4),
    });
    a.op(op::Xshl64 {
        operands: bin(x4, x2, x8),
    });
    a.op(op::XBxor64 {
        operands: bin(x2, x2, x4),
    });
    a.op(op::Xshr64U {
        operands: bin(x4, x2, x9),
    });
    a.op(op::XStore64LeO32 {
        addr: at(x0, 0),
        src: x4,
    });
    a.op(op::Xadd64U8 {
        dst: x0,
        src1: x0,
        src2: 8,
    });
    a.op(op::Xadd64U8 {
        dst: x3,
        src1: x3,
        src2: 1,
    });
    a.op_to(top, |offset| op::Jump { offset }.into());
    a.bind(done);
    a.op(op::Xmov { dst: x0, src: x2 });
    a.op(op::Ret {});
}

/// `dot(a: *const i64, b: *const i64, n: u64) -> i64`: wrapping dot product.
fn emit_dot(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let (top, done) = (a.label(), a.label());
    a.function("dot", f.dot);
    a.op(op::Xzero { dst: x3 }); // sum
    a.op(op::Xzero { dst: x4 }); // i
    a.bind(top);
    a.op_to(done, |offset| {
        op::BrIfXulteq64 {
            a: x2,
            b: x4,
            offset,
        }
        .into()
    });
    a.op(op::XLoad64LeO32 {
        dst: x5,
        addr: at(x0, 0),
    });
    a.op(op::XLoad64LeO32 {
        dst: x6,
        addr: at(x1, 0),
    });
    a.op(op::Xmadd64 {
        dst: x3,
        src1: x5,
        src2: x6,
        src3: x3,
    });
    a.op(op::Xadd64U8 {
        dst: x0,
        src1: x0,
        src2: 8,
    });
    a.op(op::Xadd64U8 {
        dst: x1,
        src1: x1,
        src2: 8,
    });
    a.op(op::Xadd64U8 {
        dst: x4,
        src1: x4,
        src2: 1,
    });
    a.op_to(top, |offset| op::Jump { offset }.into());
    a.bind(done);
    a.op(op::Xmov { dst: x0, src: x3 });
    a.op(op::Ret {});
}

/// `fib(n: u64) -> u64`: naive recursion, so the profile gets deep call
/// stacks. Saves `lr`/`fp` with `push_frame_save` and the callee-saved `x16`,
/// `x17` in the 16-byte frame it allocates.
fn emit_fib(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let base = a.label();
    a.function("fib", f.fib);
    a.op_to(base, |offset| {
        op::BrIfXult64U8 {
            a: x0,
            b: 2,
            offset,
        }
        .into()
    });
    // The register-set operand stays empty: `UpperRegSet` can only be filled
    // from a `cranelift_bitset::ScalarBitSet`, another crate; plain stores do
    // the same job.
    a.op(op::PushFrameSave {
        amt: 16,
        regs: UpperRegSet::default(),
    });
    a.op(op::XStore64LeO32 {
        addr: at(sp, 0),
        src: x16,
    });
    a.op(op::XStore64LeO32 {
        addr: at(sp, 8),
        src: x17,
    });
    a.op(op::Xmov { dst: x16, src: x0 }); // n
    a.op(op::Xsub64U8 {
        dst: x0,
        src1: x16,
        src2: 1,
    });
    a.op_to(f.fib, |offset| op::Call { offset }.into());
    a.op(op::Xmov { dst: x17, src: x0 }); // fib(n - 1)
    a.op(op::Xsub64U8 {
        dst: x1,
        src1: x16,
        src2: 2,
    });
    a.op_to(f.fib, |offset| op::Call1 { arg1: x1, offset }.into());
    a.op(op::Xadd64 {
        operands: bin(x0, x17, x0),
    });
    a.op(op::XLoad64LeO32 {
        dst: x16,
        addr: at(sp, 0),
    });
    a.op(op::XLoad64LeO32 {
        dst: x17,
        addr: at(sp, 8),
    });
    a.op(op::PopFrameRestore {
        amt: 16,
        regs: UpperRegSet::default(),
    });
    a.bind(base);
    a.op(op::Ret {});
}

/// `collatz(limit: u64) -> u64`: total Collatz trajectory length of
/// `1..limit`, dispatching on parity through a `br_table32` like a compiled
/// `match`.
fn emit_collatz(a: &mut Asm, f: &Functions) {
    use XReg::*;
    let (outer, step, even, odd, count, next, done) = (
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
    );
    a.function("collatz", f.collatz);
    a.op(op::Xzero { dst: x1 }); // total
    a.op(op::Xone { dst: x2 }); // n
    a.op(op::Xone { dst: x7 }); // shift amount
    a.bind(outer);
    a.op_to(done, |offset| {
        op::BrIfXulteq64 {
            a: x0,
            b: x2,
            offset,
        }
        .into()
    });
    a.op(op::Xmov { dst: x3, src: x2 }); // v
    a.bind(step);
    a.op_to(next, |offset| {
        op::BrIfXeq64I8 {
            a: x3,
            b: 1,
            offset,
        }
        .into()
    });
    a.op(op::Xband64S8 {
        dst: x4,
        src1: x3,
        src2: 1,
    });
    a.br_table(x4, &[even, odd]);
    a.bind(even);
    a.op(op::Xshr64U {
        operands: bin(x3, x3, x7),
    });
    a.op_to(count, |offset| op::Jump { offset }.into());
    a.bind(odd);
    a.op(op::Xmul64S8 {
        dst: x3,
        src1: x3,
        src2: 3,
    });
    a.op(op::Xadd64U8 {
        dst: x3,
        src1: x3,
        src2: 1,
    });
    a.bind(count);
    a.op(op::Xadd64U8 {
        dst: x1,
        src1: x1,
        src2: 1,
    });
    a.op_to(step, |offset| op::Jump { offset }.into());
    a.bind(next);
    a.op(op::Xadd64U8 {
        dst: x2,
        src1: x2,
        src2: 1,
    });
    a.op_to(outer, |offset| op::Jump { offset }.into());
    a.bind(done);
    a.op(op::Xmov { dst: x0, src: x1 });
    a.op(op::Ret {});
}

/// Rust versions of the bytecode functions, for checking results.
mod reference {
    use super::*;

    pub(super) fn sieve(buf: &mut [u8]) -> u64 {
        buf.fill(1);
        let n = buf.len();
        let mut count = 0;
        for i in 2..n {
            if buf[i] != 0 {
                count += 1;
                let mut j = i * i;
                while j < n {
                    buf[j] = 0;
                    j += i;
                }
            }
        }
        count
    }

    pub(super) fn hash(bytes: &[u8]) -> u64 {
        bytes.iter().fold(FNV_OFFSET, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
        })
    }

    pub(super) fn fill(out: &mut [i64], mut seed: u64) -> u64 {
        for slot in out {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *slot = (seed >> 40) as i64;
        }
        seed
    }

    pub(super) fn dot(a: &[i64], b: &[i64]) -> i64 {
        a.iter()
            .zip(b)
            .fold(0i64, |sum, (x, y)| sum.wrapping_add(x.wrapping_mul(*y)))
    }

    pub(super) fn fib(n: u64) -> u64 {
        if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
    }

    pub(super) fn collatz(limit: u64) -> u64 {
        let mut total = 0;
        for n in 1..limit {
            let mut v = n;
            while v != 1 {
                v = if v % 2 == 0 { v / 2 } else { 3 * v + 1 };
                total += 1;
            }
        }
        total
    }

    pub(super) fn main(rounds: u64) -> u64 {
        let mut sieve_buf = vec![0u8; SIEVE_N];
        let mut a = vec![0i64; DOT_N];
        let mut b = vec![0i64; DOT_N];
        let mut acc = 0u64;
        let fold = |acc: &mut u64, value: u64| *acc = acc.wrapping_mul(31).wrapping_add(value);
        for round in 0..rounds {
            fold(&mut acc, sieve(&mut sieve_buf));
            fold(&mut acc, hash(&sieve_buf));
            fill(&mut a, round + 1);
            fill(&mut b, round + u64::from(SEED_B));
            fold(&mut acc, dot(&a, &b) as u64);
            fold(&mut acc, fib(FIB_N));
            fold(&mut acc, collatz(COLLATZ_N));
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> Vm {
        Vm::new().expect("vm")
    }

    #[test]
    fn layout_is_contiguous_and_covers_the_buffer() {
        let program = DemoProgram::new();
        let mut end = 0;
        for f in program.functions() {
            assert_eq!(f.offset, end, "{} does not follow its predecessor", f.name);
            assert!(f.len > 0);
            end = f.offset + f.len;
        }
        assert_eq!(end, program.code().len());
        let names: Vec<_> = program.function_bodies().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["main", "sieve", "hash", "fill", "dot", "fib", "collatz"]
        );
        // `ret` is opcode 1 (right after `nop`).
        for (name, body) in program.function_bodies() {
            assert_eq!(body.last(), Some(&0x01), "{name} should end with ret");
        }
    }

    #[test]
    fn sieve_counts_primes_and_marks_them() {
        let program = DemoProgram::new();
        let mut vm = vm();
        for n in [0usize, 1, 2, 3, 10, 100, 1000, 7919, 7920] {
            let mut buf = vec![0xaau8; n + 8];
            let got = unsafe {
                program.call(
                    &mut vm,
                    "sieve",
                    &[Val::from(buf.as_mut_ptr()), Val::from(n as u64)],
                )
            };
            let mut expected_buf = vec![0u8; n];
            let expected = reference::sieve(&mut expected_buf);
            assert_eq!(got, Ok(expected), "n = {n}");
            assert_eq!(&buf[..n], &expected_buf[..], "n = {n}");
            assert!(buf[n..].iter().all(|&b| b == 0xaa), "wrote past the end");
        }
        let mut buf = vec![0u8; 1000];
        assert_eq!(reference::sieve(&mut buf), 168);
    }

    #[test]
    fn hash_is_fnv1a() {
        let program = DemoProgram::new();
        let mut vm = vm();
        for input in [&b""[..], b"a", b"hello", &[0xff; 300]] {
            let got = unsafe {
                program.call(
                    &mut vm,
                    "hash",
                    &[
                        Val::from(input.as_ptr().cast_mut()),
                        Val::from(input.len() as u64),
                    ],
                )
            };
            assert_eq!(got, Ok(reference::hash(input)));
        }
        // Published FNV-1a 64 test vector.
        assert_eq!(reference::hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn fill_and_dot_match_reference() {
        let program = DemoProgram::new();
        let mut vm = vm();
        let n = 333;
        let mut a = vec![0i64; n];
        let mut b = vec![0i64; n];
        let seed_a = unsafe {
            program.call(
                &mut vm,
                "fill",
                &[
                    Val::from(a.as_mut_ptr()),
                    Val::from(n as u64),
                    Val::from(7u64),
                ],
            )
        };
        let seed_b = unsafe {
            program.call(
                &mut vm,
                "fill",
                &[
                    Val::from(b.as_mut_ptr()),
                    Val::from(n as u64),
                    Val::from(u64::from(SEED_B)),
                ],
            )
        };
        let mut ra = vec![0i64; n];
        let mut rb = vec![0i64; n];
        assert_eq!(seed_a, Ok(reference::fill(&mut ra, 7)));
        assert_eq!(seed_b, Ok(reference::fill(&mut rb, u64::from(SEED_B))));
        assert_eq!(a, ra);
        assert_eq!(b, rb);
        let got = unsafe {
            program.call(
                &mut vm,
                "dot",
                &[
                    Val::from(a.as_mut_ptr()),
                    Val::from(b.as_mut_ptr()),
                    Val::from(n as u64),
                ],
            )
        };
        assert_eq!(got, Ok(reference::dot(&a, &b) as u64));
        assert_ne!(reference::dot(&a, &b), 0);
    }

    #[test]
    fn fib_matches_reference() {
        let program = DemoProgram::new();
        let mut vm = vm();
        for n in 0..=20u64 {
            let got = unsafe { program.call(&mut vm, "fib", &[Val::from(n)]) };
            assert_eq!(got, Ok(reference::fib(n)), "fib({n})");
        }
        assert_eq!(reference::fib(20), 6765);
    }

    #[test]
    fn collatz_matches_reference() {
        let program = DemoProgram::new();
        let mut vm = vm();
        for limit in [0u64, 1, 2, 3, 10, 27, 28, 500] {
            let got = unsafe { program.call(&mut vm, "collatz", &[Val::from(limit)]) };
            assert_eq!(got, Ok(reference::collatz(limit)), "limit {limit}");
        }
        // 27 takes 111 steps.
        assert_eq!(reference::collatz(28) - reference::collatz(27), 111);
    }

    #[test]
    fn main_matches_reference() {
        let program = DemoProgram::new();
        let mut vm = vm();
        let mut scratch = Scratch::new();
        for rounds in [0u64, 1, 3] {
            let got = unsafe {
                program.call(
                    &mut vm,
                    "main",
                    &[Val::from(scratch.base_ptr()), Val::from(rounds)],
                )
            };
            assert_eq!(got, Ok(reference::main(rounds)), "rounds {rounds}");
        }
    }

    #[test]
    fn run_once_returns_the_expected_checksum_repeatedly() {
        let program = DemoProgram::new();
        let mut vm = vm();
        let mut scratch = Scratch::new();
        let expected = expected_checksum();
        for _ in 0..2 {
            assert_eq!(program.run_once(&mut vm, &mut scratch), Ok(expected));
        }
        // Moving the program keeps the code where it was.
        let before = program.code().as_ptr();
        let moved = Box::new(program);
        assert_eq!(moved.code().as_ptr(), before);
        assert_eq!(moved.run_once(&mut vm, &mut scratch), Ok(expected));
    }

    #[test]
    fn traps_are_errors_not_panics() {
        let mut code = Vec::new();
        Op::from(op::Trap {}).encode(&mut code);
        let program = DemoProgram {
            code: code.into_boxed_slice(),
            functions: vec![DemoFunction {
                name: "main",
                offset: 0,
                len: 3,
            }],
        };
        let err = program
            .run_once(&mut vm(), &mut Scratch::new())
            .expect_err("trap");
        assert_eq!(
            err,
            RunError::Trap {
                function: Some("main"),
                offset: Some(0),
                kind: "unknown"
            }
        );
        assert!(err.to_string().contains("in `main` at code offset 0x0"));
    }
}
