//! A small stack-based interpreter, instrumented with pcprof.
//!
//! What any interpreter author does to use pcprof, marked `// pcprof:`:
//! start a profiler, register the bytecode and the interpreter, publish the
//! PC before each instruction (one relaxed store), stop. Telling pcprof the
//! instruction set (`StackVmIsa`, about 30 lines) puts each function's
//! listing in the file, so every `pcprof` command shows `push 1`, `jz 52`,
//! ... and `pcprof sequences` cuts basic blocks at the jumps, calls and
//! returns, with no plug-in on the command line.
//!
//! It also keeps a shadow call stack (`// pcprof:` at `Op::Call` and
//! `Op::Ret`: one `call(site)` and one `ret()`), so the report gives each
//! function its total share beside its self share and the collapsed export
//! has the real stacks. The workload's call tree is known: `main` calls
//! `collatz` once per number, then `fib(22)`, which recurses 21 levels deep.
//!
//! ```text
//! cargo run --release --example stack_vm
//! cargo run --release -- report pcprof-stack-vm.data
//! cargo run --release -- convert pcprof-stack-vm.data --to collapsed -o stacks.txt
//! cargo run --release -- sequences pcprof-stack-vm.data
//! cargo run --release --example stack_vm -- --bench   # the shadow stack's cost
//! ```

use std::sync::Arc;
use std::time::Instant;

use pcprof::format::Flow;
use pcprof::{InstructionSet, ListingBuilder};

/// The instruction set: one opcode byte, then a little-endian `i32` operand
/// for the ops that take one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Push = 0, // push operand
    Load,     // push local[operand]
    Store,    // local[operand] = pop
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    JumpIfZero, // pop; if zero, jump to operand
    Jump,       // jump to operand
    Call,       // call function operand (its index)
    Ret,
    Print,
    Halt,
}

impl Op {
    fn decode(byte: u8) -> Option<Op> {
        use Op::*;
        [
            Push, Load, Store, Add, Sub, Mul, Div, Rem, JumpIfZero, Jump, Call, Ret, Print, Halt,
        ]
        .get(byte as usize)
        .copied()
    }

    fn mnemonic(self) -> &'static str {
        match self {
            Op::Push => "push",
            Op::Load => "load",
            Op::Store => "store",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Rem => "rem",
            Op::JumpIfZero => "jz",
            Op::Jump => "jmp",
            Op::Call => "call",
            Op::Ret => "ret",
            Op::Print => "print",
            Op::Halt => "halt",
        }
    }

    fn has_operand(self) -> bool {
        matches!(
            self,
            Op::Push | Op::Load | Op::Store | Op::JumpIfZero | Op::Jump | Op::Call
        )
    }
}

/// pcprof: the instruction set as the profiler records it. `decode` runs
/// once per registered function (on the profiler's registry, never while
/// sampling) and pushes each instruction: length, mnemonic, operands and
/// control flow (what cuts basic blocks).
#[derive(Debug)]
struct StackVmIsa;

impl InstructionSet for StackVmIsa {
    fn name(&self) -> &str {
        "stack-vm"
    }

    fn decode(&self, code: &[u8], out: &mut ListingBuilder) {
        let mut at = 0;
        while let Some(op) = code.get(at).and_then(|&b| Op::decode(b)) {
            let operand = code
                .get(at + 1..at + 5)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let (len, operand) = match (op.has_operand(), operand) {
                (true, Some(v)) => (5, Some(v)),
                (true, None) => return, // truncated: the rest is undecodable
                (false, _) => (1, None),
            };
            let flow = match op {
                Op::Jump => Flow::Branch {
                    targets: vec![operand.unwrap_or(0) as u32],
                    conditional: false,
                },
                Op::JumpIfZero => Flow::Branch {
                    targets: vec![operand.unwrap_or(0) as u32],
                    conditional: true,
                },
                Op::Call => Flow::Call,
                Op::Ret | Op::Halt => Flow::Return,
                _ => Flow::Plain,
            };
            // Jump targets in hex, as reports show offsets.
            let text = match (op, operand) {
                (Op::Jump | Op::JumpIfZero, Some(v)) => format!("{v:#x}"),
                (_, Some(v)) => v.to_string(),
                (_, None) => String::new(),
            };
            out.push(len, op.mnemonic(), &text, flow);
            at += len as usize;
        }
    }
}

/// A tiny assembler with forward labels.
#[derive(Default)]
struct Asm {
    code: Vec<u8>,
}

impl Asm {
    fn op(&mut self, op: Op) -> &mut Self {
        self.code.push(op as u8);
        self
    }
    fn op1(&mut self, op: Op, operand: i32) -> usize {
        self.code.push(op as u8);
        let at = self.code.len();
        self.code.extend_from_slice(&operand.to_le_bytes());
        at
    }
    fn here(&self) -> i32 {
        self.code.len() as i32
    }
    fn patch(&mut self, at: usize, target: i32) {
        self.code[at..at + 4].copy_from_slice(&target.to_le_bytes());
    }
}

/// `collatz(n)`: steps for n to reach 1.
fn collatz() -> Vec<u8> {
    let mut a = Asm::default();
    // local0 = n (argument), local1 = steps
    a.op1(Op::Store, 0);
    a.op1(Op::Push, 0);
    a.op1(Op::Store, 1);
    let top = a.here();
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 1);
    a.op(Op::Sub);
    let done = a.op1(Op::JumpIfZero, 0);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 2);
    a.op(Op::Rem);
    let even = a.op1(Op::JumpIfZero, 0);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 3);
    a.op(Op::Mul);
    a.op1(Op::Push, 1);
    a.op(Op::Add);
    a.op1(Op::Store, 0);
    let join = a.op1(Op::Jump, 0);
    let even_at = a.here();
    a.patch(even, even_at);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 2);
    a.op(Op::Div);
    a.op1(Op::Store, 0);
    let join_at = a.here();
    a.patch(join, join_at);
    a.op1(Op::Load, 1);
    a.op1(Op::Push, 1);
    a.op(Op::Add);
    a.op1(Op::Store, 1);
    a.op1(Op::Jump, top);
    let done_at = a.here();
    a.patch(done, done_at);
    a.op1(Op::Load, 1);
    a.op(Op::Ret);
    a.code
}

/// `fib(n)`, recursively: two calls a level, so a sample's stack is
/// `main;fib;fib;...`.
fn fib() -> Vec<u8> {
    let mut a = Asm::default();
    a.op1(Op::Store, 0); // n
    a.op1(Op::Load, 0);
    let zero = a.op1(Op::JumpIfZero, 0);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 1);
    a.op(Op::Sub);
    let one = a.op1(Op::JumpIfZero, 0);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 1);
    a.op(Op::Sub);
    a.op1(Op::Call, FIB);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 2);
    a.op(Op::Sub);
    a.op1(Op::Call, FIB);
    a.op(Op::Add);
    a.op(Op::Ret);
    let small = a.here();
    a.patch(zero, small);
    a.patch(one, small);
    a.op1(Op::Load, 0);
    a.op(Op::Ret);
    a.code
}

/// Index of `collatz` and `fib` among the functions (the call operand).
const COLLATZ: i32 = 1;
const FIB: i32 = 2;

/// `main(n)`: `fib(n)` alone: what the benchmark runs.
fn fib_main(n: i32) -> Vec<u8> {
    let mut a = Asm::default();
    a.op1(Op::Push, n);
    a.op1(Op::Call, FIB);
    a.op(Op::Print);
    a.op(Op::Halt);
    a.code
}

/// `main`: sums `collatz(i)` for i in 1..=limit, adds `fib(fib_n)`,
/// printing the total.
fn main_fn(limit: i32, fib_n: i32) -> Vec<u8> {
    let mut a = Asm::default();
    a.op1(Op::Push, limit);
    a.op1(Op::Store, 0); // i
    a.op1(Op::Push, 0);
    a.op1(Op::Store, 1); // total
    let top = a.here();
    a.op1(Op::Load, 0);
    let done = a.op1(Op::JumpIfZero, 0);
    a.op1(Op::Load, 0);
    a.op1(Op::Call, COLLATZ);
    a.op1(Op::Load, 1);
    a.op(Op::Add);
    a.op1(Op::Store, 1);
    a.op1(Op::Load, 0);
    a.op1(Op::Push, 1);
    a.op(Op::Sub);
    a.op1(Op::Store, 0);
    a.op1(Op::Jump, top);
    let done_at = a.here();
    a.patch(done, done_at);
    a.op1(Op::Load, 1);
    a.op1(Op::Push, fib_n);
    a.op1(Op::Call, FIB);
    a.op(Op::Add);
    a.op(Op::Print);
    a.op(Op::Halt);
    a.code
}

/// What the interpreter tells of its calls: pcprof's shadow stack, or
/// nothing (the benchmark's baseline; monomorphised, so it costs nothing).
trait Calls {
    fn call(&mut self, site: *const u8);
    fn ret(&mut self);
}

impl Calls for pcprof::StackHandle {
    #[inline(always)]
    fn call(&mut self, site: *const u8) {
        pcprof::StackHandle::call(self, site as usize);
    }
    #[inline(always)]
    fn ret(&mut self) {
        pcprof::StackHandle::ret(self);
    }
}

/// No shadow stack.
struct NoStack;

impl Calls for NoStack {
    #[inline(always)]
    fn call(&mut self, _: *const u8) {}
    #[inline(always)]
    fn ret(&mut self) {}
}

struct Frame {
    func: usize,
    ip: usize,
    locals: [i64; 4],
}

/// Runs `functions[0]`. `pc` is the interpreter's pcprof handle, `calls`
/// its shadow stack (or none). Returns what it printed and the calls made.
fn run(
    functions: &[Vec<u8>],
    pc: &pcprof::PcHandle,
    calls: &mut impl Calls,
) -> Result<(i64, u64), String> {
    let mut made = 0u64;
    let mut stack: Vec<i64> = Vec::with_capacity(64);
    let mut frames = vec![Frame {
        func: 0,
        ip: 0,
        locals: [0; 4],
    }];
    let mut printed = 0;
    loop {
        let frame = frames.last_mut().ok_or("no frame")?;
        let code = &functions[frame.func];
        let at: *const u8 = &code[frame.ip];
        // pcprof: publish the address of the instruction about to run.
        pc.set_ptr(at);
        let op = Op::decode(code[frame.ip]).ok_or_else(|| format!("bad opcode at {}", frame.ip))?;
        let operand = if op.has_operand() {
            let b = code
                .get(frame.ip + 1..frame.ip + 5)
                .ok_or("truncated operand")?;
            i32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            0
        };
        frame.ip += if op.has_operand() { 5 } else { 1 };
        let mut pop = || stack.pop().ok_or("stack underflow");
        match op {
            Op::Push => stack.push(operand.into()),
            Op::Load => stack.push(frame.locals[operand as usize]),
            Op::Store => frame.locals[operand as usize] = pop()?,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem => {
                let (b, a) = (pop()?, pop()?);
                stack.push(match op {
                    Op::Add => a.wrapping_add(b),
                    Op::Sub => a.wrapping_sub(b),
                    Op::Mul => a.wrapping_mul(b),
                    Op::Div => a.checked_div(b).ok_or("division by zero")?,
                    _ => a.checked_rem(b).ok_or("remainder by zero")?,
                });
            }
            Op::JumpIfZero => {
                if pop()? == 0 {
                    frame.ip = operand as usize;
                }
            }
            Op::Jump => frame.ip = operand as usize,
            Op::Call => {
                // pcprof: the call site goes on the shadow stack.
                calls.call(at);
                made += 1;
                frames.push(Frame {
                    func: operand as usize,
                    ip: 0,
                    locals: [0; 4],
                });
            }
            Op::Ret => {
                // pcprof: and comes off it.
                calls.ret();
                frames.pop();
            }
            Op::Print => printed = pop()?,
            Op::Halt => {
                // pcprof: idle from here on.
                pc.set_idle();
                return Ok((printed, made));
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Actor transitions, when asked for: RUST_LOG=pcprof_actors=trace.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if std::env::args().any(|a| a == "--bench") {
        return bench();
    }
    // The workload's size: COLLATZ_LIMIT numbers, then fib(FIB_N).
    let env = |k: &str, d: i32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let out = std::path::PathBuf::from("pcprof-stack-vm.data");
    if out.exists() {
        return Err(format!("{} exists; remove it first", out.display()).into());
    }
    let t = Instant::now();
    let (total, stats) = record(&out, env("COLLATZ_LIMIT", 20_000), env("FIB_N", 22))?;
    println!("sum of collatz steps: {total} in {:.2?}", t.elapsed());
    println!(
        "{} samples written to {}",
        stats.samples_written,
        out.display()
    );
    println!("next: cargo run --release -- report {}", out.display());
    Ok(())
}

/// Profiles the program (collatz steps of `limit` down to 1, then
/// `fib(fib_n)`) into `out` with a shadow stack; returns its result and the
/// profiler's statistics. (Public for the tests, which run it too.)
pub fn record(
    out: &std::path::Path,
    limit: i32,
    fib_n: i32,
) -> Result<(i64, pcprof::Stats), Box<dyn std::error::Error>> {
    let functions = vec![main_fn(limit, fib_n), collatz(), fib()];
    // pcprof: start (10 kHz here, for a short run) with the instruction
    // set, register the bytecode and this interpreter.
    let mut profiler = pcprof::Profiler::builder()
        .frequency(10_000)
        .instruction_set(Arc::new(StackVmIsa))
        .output(out)
        .start()?;
    profiler.register_function("main", &functions[0])?;
    profiler.register_function("collatz", &functions[1])?;
    profiler.register_function("fib", &functions[2])?;
    // pcprof: an interpreter with a shadow stack of up to 64 frames.
    let (pc, mut stack) = profiler.new_interpreter_with_stack(Some("main"), 64)?;

    let (total, _) = run(&functions, &pc, &mut stack)?;

    // pcprof: stop; the file is complete once this returns.
    let stats = profiler.stop()?;
    Ok((total, stats))
}

/// This thread's CPU time, in seconds: what the runs are timed with, so a
/// busy machine's preemptions do not count (its cache misses still do).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The shadow stack's cost on a call-heavy run: `fib(n)` with and without
/// it, interleaved, best of several runs each (CPU time), in ns per call (each call
/// returns, so a call and its return) and as a slowdown. The profiler runs
/// (at 1 kHz) in both, with the stack read by its sampler in the first.
fn bench() -> Result<(), Box<dyn std::error::Error>> {
    let n = std::env::var("FIB_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(27);
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let functions = vec![fib_main(n), collatz(), fib()];
    let mut profiler = pcprof::Profiler::builder()
        .frequency(1000)
        .output(
            std::env::temp_dir().join(format!("pcprof-stack-bench-{}.data", std::process::id())),
        )
        .start()?;
    for (name, f) in ["main", "collatz", "fib"].iter().zip(&functions) {
        profiler.register_function(name, f)?;
    }
    let (pc, mut stack) = profiler.new_interpreter_with_stack(Some("bench"), 64)?;
    let (mut on, mut off) = (f64::MAX, f64::MAX);
    let mut calls = 0;
    for _ in 0..rounds {
        let t = cpu_seconds();
        let (_, c) = run(&functions, &pc, &mut stack)?;
        on = on.min(cpu_seconds() - t);
        let t = cpu_seconds();
        let (_, c2) = run(&functions, &pc, &mut NoStack)?;
        off = off.min(cpu_seconds() - t);
        assert_eq!(c, c2);
        calls = c;
    }
    let stats = profiler.stop()?;
    if let Some(path) = profiler.output_path() {
        let _ = std::fs::remove_file(path);
    }
    println!(
        "fib({n}): {calls} calls; best of {rounds} (CPU time): {:.1} ms with the shadow \
         stack, {:.1} ms without",
        on * 1e3,
        off * 1e3
    );
    println!(
        "shadow stack: {:+.2} ns per call+return, slowdown {:+.2} % ({} samples, {} torn reads)",
        (on - off) * 1e9 / calls as f64,
        (on / off - 1.0) * 100.0,
        stats.samples_written,
        stats.stack_reads_torn
    );
    Ok(())
}
