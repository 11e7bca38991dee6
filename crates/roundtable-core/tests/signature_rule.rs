//! The signature rule (`docs/format.md`, "Signature rule") on the twelve edge cases of "Taming the
//! many EdDSAs" (`tests/data/ed25519-speccheck.json`): the single and the batch check give each the
//! verdict the file states, and ed25519-consensus alone gives the ZIP-215 verdict the file states.

use ed25519_dalek::{Signer, SigningKey};
use roundtable_core::signature::{self, BATCH, Item, Refusal};

struct Case {
    what: String,
    key: [u8; 32],
    msg: Vec<u8>,
    sig: [u8; 64],
    valid: bool,
    refusal: Option<String>,
    zip215: bool,
}

fn cases() -> Vec<Case> {
    let text = include_str!("../../../tests/data/ed25519-speccheck.json");
    let v: serde_json::Value = serde_json::from_str(text).expect("the vectors are JSON");
    let hex = |c: &serde_json::Value, f: &str| hex::decode(c[f].as_str().expect(f)).expect(f);
    v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            what: c["what"].as_str().expect("what").to_string(),
            key: hex(c, "pub_key").try_into().expect("32-byte key"),
            msg: hex(c, "message"),
            sig: hex(c, "signature").try_into().expect("64-byte signature"),
            valid: c["valid"].as_bool().expect("valid"),
            refusal: c["refusal"].as_str().map(str::to_string),
            zip215: c["zip215"].as_bool().expect("zip215"),
        })
        .collect()
}

fn item(c: &Case) -> Item<'_> {
    Item {
        key: &c.key,
        msg: &c.msg,
        sig: &c.sig,
    }
}

#[test]
fn the_single_check_gives_each_vector_its_stated_verdict() {
    let cases = cases();
    assert_eq!(cases.len(), 12);
    for (i, c) in cases.iter().enumerate() {
        let got = signature::verify(&c.key, &c.msg, &c.sig);
        assert_eq!(got.is_ok(), c.valid, "vector {i} ({}): {got:?}", c.what);
        assert_eq!(
            got.err().map(|r| r.kind().to_string()),
            c.refusal,
            "vector {i} ({})",
            c.what
        );
    }
}

#[test]
fn ed25519_consensus_alone_gives_the_zip215_verdicts() {
    for (i, c) in cases().iter().enumerate() {
        let raw = ed25519_consensus::VerificationKey::try_from(c.key)
            .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(c.sig), &c.msg));
        assert_eq!(raw.is_ok(), c.zip215, "vector {i} ({})", c.what);
        // Our rule only adds refusals of the key: it never accepts what ZIP-215 refuses.
        if c.valid {
            assert!(c.zip215, "vector {i}");
        } else if c.zip215 {
            assert!(
                matches!(
                    signature::check_key(&c.key),
                    Err(Refusal::SmallOrderKey | Refusal::NonCanonicalKey)
                ),
                "vector {i}: refused with ZIP-215 passing, but not for its key"
            );
        }
    }
}

/// Honest signatures by a few keys, for mixing with the vectors.
fn honest(n: usize) -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    let keys: Vec<SigningKey> = (1..=3u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    (0..n)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let msg = format!("message {i}").into_bytes();
            let sig = k.sign(&msg).to_bytes();
            (k.verifying_key().to_bytes(), msg, sig)
        })
        .collect()
}

#[test]
fn the_batch_check_agrees_with_the_single_check_on_every_vector() {
    let cases = cases();
    let all: Vec<Item<'_>> = cases.iter().map(item).collect();
    let single: Vec<Result<(), Refusal>> = cases
        .iter()
        .map(|c| signature::verify(&c.key, &c.msg, &c.sig))
        .collect();
    assert_eq!(
        signature::verify_batch(&all),
        single,
        "all twelve in one batch"
    );
    for (i, it) in all.iter().enumerate() {
        assert_eq!(
            signature::verify_batch(&[*it]),
            vec![single[i]],
            "vector {i} alone"
        );
    }
    // Every vector amid honest signatures, across batch boundaries; run a few times, since the
    // batch's coefficients are random.
    let good = honest(3 * BATCH);
    for round in 0..4 {
        let mut items: Vec<Item<'_>> = good
            .iter()
            .map(|(k, m, s)| Item {
                key: k,
                msg: m,
                sig: s,
            })
            .collect();
        let mut expect = vec![Ok(()); items.len()];
        for (i, it) in all.iter().enumerate() {
            let at = (i * 31 + round * 7) % items.len();
            items.insert(at, *it);
            expect.insert(at, single[i]);
        }
        assert_eq!(signature::verify_batch(&items), expect, "round {round}");
    }
}

#[test]
fn a_failed_batch_names_exactly_the_bad_signatures() {
    let mut good = honest(2 * BATCH + 5);
    for i in [0, 17, BATCH, 2 * BATCH + 4] {
        good[i].2[40] ^= 1;
    }
    let items: Vec<Item<'_>> = good
        .iter()
        .map(|(k, m, s)| Item {
            key: k,
            msg: m,
            sig: s,
        })
        .collect();
    let got = signature::verify_batch(&items);
    for (i, r) in got.iter().enumerate() {
        let bad = [0, 17, BATCH, 2 * BATCH + 4].contains(&i);
        assert_eq!(r.is_err(), bad, "item {i}: {r:?}");
        assert_eq!(
            *r,
            signature::verify(items[i].key, items[i].msg, items[i].sig)
        );
    }
    assert!(signature::verify_batch(&[]).is_empty());
}

/// A member's device (`Record::ingest`, one single check per entry) and the auditor's signature phase
/// (`verify_signatures`, in batches, on 2 threads) reach the same verdict on every entry of a bundle
/// with forged entries and the vectors' refused keys as authors.
#[test]
fn a_member_and_the_auditors_batches_agree_entry_by_entry() {
    use roundtable_core::body::{ChangeFrame, build_change};
    use roundtable_core::record::verify_signatures;
    use roundtable_core::{Body, DeviceId, DeviceKey, DocRef, Entry, Record, Rule};
    use std::collections::BTreeSet;

    let ana = DeviceKey::from_secret(&[1; 32]);
    let (mut rec, genesis) = Record::create(&ana, "Board", Rule::Consent, 1, "Ana", "", 0).unwrap();
    let (thread, e) = rec
        .author(&ana, Body::Thread { title: "t".into() }, 1)
        .unwrap();
    let mut entries = vec![genesis, e];
    while entries.len() < 2 * BATCH + 10 {
        let i = entries.len() as i64;
        let text = format!("message {i}");
        entries.push(
            rec.author(&ana, Body::Message { thread, text }, i)
                .unwrap()
                .1,
        );
    }
    entries[BATCH - 1].signature[3] ^= 1;
    entries[2 * BATCH + 2].signature[50] ^= 1;
    for (i, c) in cases().iter().enumerate() {
        let change = build_change(
            &Body::Genesis {
                name: format!("vector {i}"),
                rule: Rule::Consent,
                quorum: 1,
                creator_name: "Nobody".into(),
                creator_needs: String::new(),
            },
            &ChangeFrame {
                actor: DeviceId::from_bytes(c.key),
                seq: 1,
                start_op: std::num::NonZeroU64::MIN,
                deps: vec![],
                time_ms: 0,
            },
            &Default::default(),
        )
        .unwrap();
        let at = (7 + 23 * i).min(entries.len());
        entries.insert(
            at,
            Entry {
                doc: DocRef::Public,
                signature: c.sig,
                change: change.raw_bytes().to_vec(),
            },
        );
    }
    let group = rec.group();
    let verdicts = |ingested: roundtable_core::Ingested| {
        let rejected: BTreeSet<(String, String, String)> = ingested
            .rejected
            .iter()
            .map(|r| {
                (
                    r.id.to_string(),
                    r.reason.kind().to_string(),
                    r.reason.to_string(),
                )
            })
            .collect();
        let accepted: BTreeSet<String> = ingested.accepted.iter().map(|a| a.to_string()).collect();
        (accepted, rejected)
    };
    let member = verdicts(Record::new(group).ingest(entries.clone()));
    let auditor =
        verdicts(Record::new(group).ingest_verified(verify_signatures(&group, entries, 2)));
    assert_eq!(member, auditor);
    let bad: Vec<_> = member.1.iter().filter(|r| r.1 == "bad_signature").collect();
    // The two forged entries and the twelve vectors (each signs its own message, not the entry's);
    // four of them for their keys.
    assert_eq!(bad.len(), 14, "{bad:#?}");
    let for_key = bad
        .iter()
        .filter(|r| r.2.contains("small order") || r.2.contains("canonical"))
        .count();
    assert_eq!(for_key, 4, "{bad:#?}");
}
