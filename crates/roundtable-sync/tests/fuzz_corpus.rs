//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/sync_frame/` and `fuzz/corpus/ticket/`)
//! through the same entry points the fuzzers use, so every input a fuzzer ever kept is checked on
//! every test run. The hand-made seeds are also checked for what they stand for: `seed-*` files are
//! valid and decode, `regress-*` files must be refused (see `fuzz/README.md`).

use std::path::{Path, PathBuf};

use roundtable_sync::Ticket;
use roundtable_sync::frame::Frame;

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

/// The named seeds of a corpus: `(name, bytes, expected to decode)`.
fn seeds(target: &str) -> Vec<(String, Vec<u8>, bool)> {
    let named: Vec<_> = corpus(target)
        .into_iter()
        .filter_map(|(p, data)| {
            let name = Path::new(&p).file_name()?.to_str()?.to_owned();
            let valid = if name.starts_with("seed-") {
                true
            } else if name.starts_with("regress-") {
                false
            } else {
                return None;
            };
            Some((name, data, valid))
        })
        .collect();
    assert!(
        named.iter().any(|s| s.2) && named.iter().any(|s| !s.2),
        "{target}: the corpus lost its named seeds"
    );
    named
}

#[test]
fn sync_frame_corpus() {
    replay("sync_frame", roundtable_sync::frame::fuzz);
}

#[test]
fn ticket_corpus() {
    replay("ticket", roundtable_sync::ticket::fuzz);
}

#[test]
fn sync_frame_seeds_decode_or_are_refused() {
    for (name, body, valid) in seeds("sync_frame") {
        match Frame::decode(&body) {
            Ok(f) => {
                assert!(valid, "sync_frame: {name} must be refused, got {f:?}");
                assert_eq!(&f.encode()[4..], &body[..], "sync_frame: {name} re-encodes");
            }
            Err(e) => assert!(!valid, "sync_frame: {name} must decode: {e}"),
        }
    }
}

#[test]
fn ticket_seeds_decode_or_are_refused() {
    for (name, text, valid) in seeds("ticket") {
        let decoded = std::str::from_utf8(&text).ok().map(Ticket::decode);
        match decoded {
            Some(Ok(t)) => {
                assert!(valid, "ticket: {name} must be refused, got {t:?}");
                assert_eq!(
                    Ticket::decode(&t.encode()),
                    Ok(t),
                    "ticket: {name} re-encodes"
                );
            }
            Some(Err(e)) => assert!(!valid, "ticket: {name} must decode: {e}"),
            None => assert!(!valid, "ticket: {name} must decode: not UTF-8"),
        }
    }
}

/// The Automerge 0.12 sync message whose bloom filter has 0 bits per entry (it makes Automerge's
/// own sync divide by zero) is not a frame: peer bytes never reach Automerge's sync protocol.
#[test]
fn automerge_zero_bit_bloom_message_is_refused() {
    let body = [0x42, 0, 0, 1, 0, 3, 1, 0, 1, 0];
    assert!(Frame::decode(&body).is_err());
    let kept = corpus("sync_frame")
        .into_iter()
        .any(|(_, data)| data == body);
    assert!(
        kept,
        "the corpus keeps the Automerge zero-bit bloom message"
    );
}
