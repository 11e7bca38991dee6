//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/sealed/`) through the same entry point the
//! fuzzer uses, so every input it ever kept is checked on every test run.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let files = roundtable_core::fuzz::read_corpus(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} must be readable: {e}", dir.display()));
    assert!(
        files.len() >= 3,
        "the corpus {} holds {} files, expected at least 3",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn sealed_corpus() {
    for (path, data) in corpus("sealed") {
        let r = std::panic::catch_unwind(|| roundtable_seal::fuzz::sealed(&data));
        assert!(r.is_ok(), "sealed: {} panicked", path.display());
    }
}
