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
//! - Files: this one holds the program (layout, running it, errors);
//!   `asm.rs` a tiny label assembler resolving branch and call targets;
//!   `programs.rs` the functions; `reference.rs` their Rust versions;
//!   `tests.rs` runs the bytecode against them.
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

mod asm;
mod programs;
mod reference;
#[cfg(test)]
mod tests;

use pulley_interpreter::interp::{DoneReason, RegType, TrapKind, Val, Vm};

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
        let (code, functions) = programs::assemble();
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
