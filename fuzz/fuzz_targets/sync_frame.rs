#![no_main]
//! Fuzzes `roundtable_sync::frame::fuzz` (a frame body, without its length prefix); the corpus in
//! `fuzz/corpus/sync_frame` is replayed by a normal test.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_sync::frame::fuzz(data));
