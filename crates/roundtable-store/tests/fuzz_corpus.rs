//! Replays the committed cargo-fuzz corpus of the key file decoder (`fuzz/corpus/key_file/`) through
//! the entry point the fuzzer uses.

use std::path::PathBuf;

#[test]
fn key_file_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/key_file");
    let files = roundtable_core::fuzz::read_corpus(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} must be readable: {e}", dir.display()));
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    for (path, data) in files {
        let r = std::panic::catch_unwind(|| roundtable_store::keyfile::fuzz_decode(&data));
        assert!(r.is_ok(), "key_file: {} panicked", path.display());
    }
}
