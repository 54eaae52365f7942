//! Rust versions of the bytecode functions, for checking results: the unit
//! tests compare every function with its reference, and
//! [`super::expected_checksum`] is the driver's.

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
