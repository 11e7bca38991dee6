#![no_main]
//! Fuzzes `roundtable_core::fuzz::bundle_stream` (the streaming reader against the in-memory
//! reference); the corpus in `fuzz/corpus/bundle_stream` is replayed by a normal test.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzz::bundle_stream(data));
