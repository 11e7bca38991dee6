#![no_main]
//! Fuzzes `roundtable_sync::ticket::fuzz` (ticket text); the corpus in `fuzz/corpus/ticket` is
//! replayed by a normal test.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_sync::ticket::fuzz(data));
