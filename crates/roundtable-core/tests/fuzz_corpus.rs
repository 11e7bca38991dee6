//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzzers use, so every input a fuzzer ever kept is checked on every test run.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} must exist: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("corpus file")))
        .collect()
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
fn ingest_corpus() {
    replay("ingest", roundtable_core::fuzz::ingest);
}
