//! Records generated from the input, written by the library's encoder, read
//! back exactly, then damaged and read again (libFuzzer's own mutator: the
//! input is a recipe, not a file).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pcprof_fuzz::structured(data));
