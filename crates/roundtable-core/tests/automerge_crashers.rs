//! Replays the inputs upstream Automerge keeps as regression tests for crashes in its loaders
//! (`fuzz/corpus/automerge_load/`, origins in `SOURCES.md` there) through every path by which
//! Roundtable hands bytes to Automerge's decoders: `parse_change`, `Record::ingest`, and
//! `Record::restore` followed by `Record::doc` (which runs `Automerge::load`). None may panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use roundtable_core::{DocRef, Entry, GroupId, Record};

/// Fewer than this and the directory has lost the point of keeping it.
const MIN_INPUTS: usize = 3;

/// Inputs upstream's own test lets `Automerge::load` accept, provided the result is read correctly
/// (`obj_id_64bits` in Automerge's `tests/test.rs`). Automerge 0.12 refuses both; every other input
/// must be refused, as upstream's `fuzz_crashers` test requires of its files.
const MAY_LOAD: &[&str] = &["upstream-64bit-obj-id-change", "upstream-64bit-obj-id-doc"];

fn group() -> GroupId {
    GroupId::from_bytes([1; 32])
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/automerge_load");
    let files: Vec<(String, Vec<u8>)> = roundtable_core::fuzz::read_corpus(&dir)
        .unwrap_or_else(|e| panic!("the regression inputs {} must exist: {e}", dir.display()))
        .into_iter()
        .filter_map(|(p, bytes)| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            (name != "SOURCES.md").then_some((name, bytes))
        })
        .collect();
    assert!(
        files.len() >= MIN_INPUTS,
        "{} holds {} inputs; at least {MIN_INPUTS} are expected",
        dir.display(),
        files.len()
    );
    files
}

fn no_panic<T>(what: &str, name: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what} panicked on {name}"))
}

#[test]
fn parse_change_never_panics() {
    for (name, bytes) in inputs() {
        // Ok or Err are both acceptable; only a panic fails.
        let _ = no_panic("parse_change", &name, || {
            roundtable_core::change::parse_change(&bytes)
        });
    }
}

#[test]
fn ingest_rejects_without_panic() {
    for (name, bytes) in inputs() {
        let mut record = Record::new(group());
        let entry = Entry {
            doc: DocRef::Public,
            signature: [0; 64],
            change: bytes,
        };
        let out = no_panic("Record::ingest", &name, || record.ingest(vec![entry]));
        assert!(out.accepted.is_empty(), "{name} was accepted");
        assert!(out.pending.is_empty(), "{name} is pending");
        assert_eq!(out.rejected.len(), 1, "{name} was not rejected");
        assert!(record.is_empty(), "{name} changed the record");
    }
}

#[test]
fn restoring_them_as_a_snapshot_never_panics() {
    // An empty index that decodes, so that `restore` succeeds and `doc()` reaches `Automerge::load`.
    let (_, empty_index) = Record::new(group()).snapshot().expect("empty snapshot");
    for (name, bytes) in inputs() {
        // With no index at all, as a damaged snapshot might arrive. The index is decoded first and
        // refuses empty bytes, so this stops before Automerge; it must still not panic.
        if let Ok(mut r) = no_panic("Record::restore", &name, || {
            Record::restore(group(), &bytes, &[])
        }) {
            let _ = no_panic("Record::doc", &name, || r.doc().map(|_| ()));
        }
        // With a valid index, so that `doc()` hands the bytes to `Automerge::load`.
        let mut r = no_panic("Record::restore", &name, || {
            Record::restore(group(), &bytes, &empty_index)
        })
        .unwrap_or_else(|e| panic!("{name}: a valid empty index was refused: {e}"));
        let loaded = no_panic("Record::doc", &name, || r.doc().map(|_| ()));
        assert!(
            loaded.is_err() || MAY_LOAD.contains(&name.as_str()),
            "{name} loaded as a document"
        );
    }
}
