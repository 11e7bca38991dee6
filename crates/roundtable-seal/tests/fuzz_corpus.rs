//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/sealed/`) through the same entry point the
//! fuzzer uses, so every input it ever kept is checked on every test run.

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
    assert!(
        files.len() >= 3,
        "the corpus {} holds {} files, expected at least 3",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("corpus file")))
        .collect()
}

#[test]
fn sealed_corpus() {
    for (path, data) in corpus("sealed") {
        let r = std::panic::catch_unwind(|| roundtable_seal::fuzz::sealed(&data));
        assert!(r.is_ok(), "sealed: {} panicked", path.display());
    }
}
