//! `analysis::load_bytes` over files of either format, with the same
//! frame-aware mutator as the reader targets.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| pcprof_fuzz::load(data));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    pcprof_fuzz::mutate_in_place(data, size, max_size, seed, fuzzer_mutate)
});
