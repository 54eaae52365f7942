//! The bytecode run on a real `Vm`, compared with [`super::reference`].

use pulley_interpreter::{Op, op};

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
