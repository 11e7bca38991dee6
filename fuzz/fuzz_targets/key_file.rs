#![no_main]
//! Fuzzes `roundtable_store::keyfile::fuzz_decode`; the corpus in `fuzz/corpus/key_file` is replayed by a normal test.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_store::keyfile::fuzz_decode(data));
