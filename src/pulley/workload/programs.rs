//! The demo's functions, written with [`Asm`]: one `emit_*` per function,
//! each documented with its signature and the Rust it mirrors
//! (`reference.rs`).
//!
//! - [`assemble`] lays them out in one buffer, `main` first, so its calls go
//!   forward and `fib`'s recursion backward: both signs of pc-relative
//!   offsets get exercised.
//! - Register convention: see the module above.

use pulley_interpreter::{UpperRegSet, XReg, op};

use super::asm::{Asm, Label, at, bin};
use super::*;

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
pub(super) fn assemble() -> (Vec<u8>, Vec<DemoFunction>) {
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
