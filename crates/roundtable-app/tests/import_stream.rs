//! Importing a bundle read as a stream: in batches, with the genesis wherever the file puts it, the
//! same counts as taking it whole; a file cut short inside an entry stores nothing.

use roundtable_app::{AppError, import_bundle_from, init};
use roundtable_core::bundle::{self, BundleError};
use roundtable_core::{Body, DeviceKey, Entry, GroupId, Record, Rule};

/// A group of one author and `n` entries, newest first: every entry arrives before what it builds
/// on, and the genesis comes last, in the file's last batch.
fn reversed(n: usize) -> (GroupId, Vec<Entry>) {
    let key = DeviceKey::from_secret(&[5; 32]);
    let (mut rec, genesis) =
        Record::create(&key, "Board", Rule::Consent, 1, "Ana", "", 0).expect("genesis");
    let (thread, first) = rec
        .author(&key, Body::Thread { title: "t".into() }, 1)
        .expect("thread");
    let mut all = vec![genesis, first];
    while all.len() < n {
        let i = all.len();
        let text = format!("message {i}");
        all.push(
            rec.author(&key, Body::Message { thread, text }, i as i64)
                .expect("message")
                .1,
        );
    }
    all.reverse();
    (rec.group(), all)
}

#[test]
fn a_bundle_in_many_batches_with_its_genesis_last_is_taken_whole() {
    let (group, entries) = reversed(2_500);
    let bytes = bundle::encode(&group, &entries);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (home, _) = init(&dir.path().join("h"), "Bo", "", None).expect("init");
    let mut opens = 0;
    let got = import_bundle_from(
        &home,
        || {
            opens += 1;
            Ok(&bytes[..])
        },
        None,
    )
    .expect("imported");
    assert_eq!(opens, 2, "read once to check, once to store");
    assert_eq!(got.ingested.accepted.len(), 2_500);
    assert!(got.ingested.pending.is_empty(), "nothing is left waiting");
    assert_eq!(got.ingested.duplicates, 0, "the genesis is counted once");
    assert_eq!(got.group.record.len(), 2_500);
    // Again: every entry is already held.
    let again = import_bundle_from(&home, || Ok(&bytes[..]), None).expect("imported again");
    assert_eq!(again.ingested.accepted.len(), 0);
    assert_eq!(again.ingested.duplicates, 2_500);
}

#[test]
fn a_bundle_cut_short_inside_an_entry_stores_nothing() {
    let (group, entries) = reversed(1_500);
    let bytes = bundle::encode(&group, &entries);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (home, _) = init(&dir.path().join("h"), "Bo", "", None).expect("init");
    // Cut inside the last entry (the genesis), and inside one in the middle.
    for cut in [bytes.len() - 40, bytes.len() / 2] {
        let short = &bytes[..cut];
        let err = import_bundle_from(&home, || Ok(short), None)
            .err()
            .expect("refused");
        assert!(
            matches!(err, AppError::Bundle(BundleError::Digest)),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert!(!home.holds(&group).expect("read"), "nothing was stored");
    }
}
