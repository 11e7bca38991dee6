//! A forged copy of an entry a device already holds is quarantined as evidence, not counted as "already had".

use roundtable_core::{Body, DeviceKey, Record, Rule};

#[test]
fn forged_copy_of_a_held_entry_is_rejected_not_waved_through() {
    let key = DeviceKey::generate().unwrap();
    let (mut rec, _) = Record::create(&key, "Board", Rule::Consent, 1, "Ana", "", 0).unwrap();
    let (thread, entry) = rec
        .author(
            &key,
            Body::Thread {
                title: "Housing".into(),
            },
            1,
        )
        .unwrap();
    let heads = rec.heads();
    let mut forged = entry.clone();
    forged.signature[7] ^= 0x40;
    let out = rec.ingest(vec![forged.clone(), entry]);
    assert_eq!(out.duplicates, 1, "the genuine copy is a duplicate");
    assert_eq!(out.rejected.len(), 1, "the forged copy is rejected");
    let r = &out.rejected[0];
    assert_eq!(r.reason.kind(), "bad_signature");
    assert_ne!(
        r.id, thread,
        "a forged copy is keyed by its own bytes, never by the genuine entry's id"
    );
    assert_eq!(r.entry, forged);
    assert_eq!(rec.heads(), heads);
    assert!(rec.contains(&thread));
}
