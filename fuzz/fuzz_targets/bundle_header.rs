#![no_main]
//! Fuzzes `roundtable_core::fuzz::bundle_header`; the corpus in `fuzz/corpus/bundle_header` is replayed by a normal test.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzz::bundle_header(data));
