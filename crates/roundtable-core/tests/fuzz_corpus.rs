//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzzers use, so every input a fuzzer ever kept is checked on every test run.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let files = roundtable_core::fuzz::read_corpus(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} must be readable: {e}", dir.display()));
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files
}

fn replay(target: &str, f: fn(&[u8])) {
    for (path, data) in corpus(target) {
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: {} panicked", path.display());
    }
}

#[test]
fn entry_corpus() {
    replay("entry", roundtable_core::fuzz::entry);
}

#[test]
fn bundle_corpus() {
    replay("bundle", roundtable_core::fuzz::bundle);
}

#[test]
fn bundle_header_corpus() {
    replay("bundle_header", roundtable_core::fuzz::bundle_header);
}

#[test]
fn ingest_corpus() {
    replay("ingest", roundtable_core::fuzz::ingest);
}

#[test]
fn bundle_stream_corpus() {
    replay("bundle_stream", roundtable_core::fuzz::bundle_stream);
}
