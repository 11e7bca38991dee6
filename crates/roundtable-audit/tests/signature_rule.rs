//! The auditor and the signature rule (`docs/format.md`, "Signature rule"), on the twelve vectors of
//! "Taming the many EdDSAs" (`tests/data/ed25519-speccheck.json`).
//!
//! An entry signs a fixed 115-byte message (format.md section 4), so a vector's own message cannot be
//! an entry's. So the vectors are checked with `roundtable_core::signature::verify_batch`, the function
//! the auditor's signature phase (`record::verify_signatures`, through `entry::validate_signatures`)
//! calls on every entry; and the vectors whose verdict the key alone decides (0, 1, 10, 11) are put
//! in a bundle as the authors of entries, amid honest entries and a forged one, on 1 and 2 threads.
//! The JavaScript rules verifier (`tests/js/verify_rules.mjs`, which applies the rule with its own
//! arithmetic) must agree on both; it needs `node` and the packages of `tests/js` (`bash
//! tests/setup.sh`), and fails without them, never skips.

use std::collections::BTreeSet;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::Command;

use roundtable_audit::audit;
use roundtable_core::body::{ChangeFrame, build_change};
use roundtable_core::bundle;
use roundtable_core::change::raw_change_hash;
use roundtable_core::signature::{BATCH, Item, verify_batch};
use roundtable_core::{Body, DeviceId, DeviceKey, DocRef, Entry, Record, Rule};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `node tests/js/verify_rules.mjs ARGS...`: its exit code and stdout lines.
fn node(args: &[&Path]) -> (i32, Vec<String>) {
    let script = root().join("tests/js/verify_rules.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("`node` could not be run ({e}); run `bash tests/setup.sh` (it installs Node)")
        });
    let code = out.status.code().expect("node was killed by a signal");
    let lines = String::from_utf8(out.stdout).expect("UTF-8");
    (code, lines.lines().map(str::to_string).collect())
}

struct Case {
    key: [u8; 32],
    msg: Vec<u8>,
    sig: [u8; 64],
    refusal: Option<String>,
}

fn cases() -> Vec<Case> {
    let v: Value = serde_json::from_str(include_str!("../../../tests/data/ed25519-speccheck.json"))
        .expect("the vectors are JSON");
    let hex = |c: &Value, f: &str| -> Vec<u8> {
        let s = c[f].as_str().expect(f);
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    };
    v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            key: hex(c, "pub_key").try_into().expect("32 bytes"),
            msg: hex(c, "message"),
            sig: hex(c, "signature").try_into().expect("64 bytes"),
            refusal: c["refusal"].as_str().map(str::to_string),
        })
        .collect()
}

#[test]
fn the_js_rules_verifier_gives_each_vector_its_stated_verdict() {
    let path = root().join("tests/data/ed25519-speccheck.json");
    let (code, lines) = node(&[Path::new("--vectors"), &path]);
    assert_eq!(code, 0, "{lines:?}");
    let want: Vec<String> = cases()
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{i} {}", c.refusal.as_deref().unwrap_or("ok")))
        .collect();
    assert_eq!(lines, want);
}

#[test]
fn the_auditors_signature_check_gives_each_vector_its_stated_verdict() {
    let cases = cases();
    assert_eq!(cases.len(), 12);
    let items: Vec<Item<'_>> = cases
        .iter()
        .map(|c| Item {
            key: &c.key,
            msg: &c.msg,
            sig: &c.sig,
        })
        .collect();
    let got = verify_batch(&items);
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(
            got[i].err().map(|r| r.kind().to_string()),
            c.refusal,
            "vector {i}"
        );
    }
}

/// A genesis-shaped change by `actor` (it is refused for its signature before any rule).
fn change_by(actor: [u8; 32], name: &str) -> Vec<u8> {
    build_change(
        &Body::Genesis {
            name: name.into(),
            rule: Rule::Consent,
            quorum: 1,
            creator_name: "Nobody".into(),
            creator_needs: String::new(),
        },
        &ChangeFrame {
            actor: DeviceId::from_bytes(actor),
            seq: 1,
            start_op: NonZeroU64::MIN,
            deps: vec![],
            time_ms: 0,
        },
        &Default::default(),
    )
    .expect("a well-formed change")
    .raw_bytes()
    .to_vec()
}

#[test]
fn the_auditor_refuses_the_vectors_keys_as_authors_on_any_number_of_threads() {
    let ana = DeviceKey::from_secret(&[1; 32]);
    let (mut rec, genesis) =
        Record::create(&ana, "Board", Rule::Consent, 1, "Ana", "", 0).expect("a group");
    let (thread, e) = rec
        .author(&ana, Body::Thread { title: "t".into() }, 1)
        .expect("a thread");
    let mut entries = vec![genesis, e];
    // More than two batches, so that the forged one fails a batch in the middle.
    while entries.len() < 2 * BATCH + 10 {
        let i = entries.len() as i64;
        let text = format!("message {i}");
        entries.push(
            rec.author(&ana, Body::Message { thread, text }, i)
                .expect("a message")
                .1,
        );
    }
    let forged_at = BATCH + 3;
    entries[forged_at].signature[40] ^= 1;
    let forged = raw_change_hash(&entries[forged_at].change).expect("a hash");

    let mut refused = BTreeSet::from([(forged.to_string(), "does not match".to_string())]);
    for (i, c) in cases().iter().enumerate() {
        let why = match c.refusal.as_deref() {
            Some("small_order_key") => "small order",
            Some("non_canonical_key") => "canonical encoding",
            _ => continue,
        };
        let change = change_by(c.key, &format!("vector {i}"));
        refused.insert((
            raw_change_hash(&change).expect("a hash").to_string(),
            why.to_string(),
        ));
        entries.insert(
            (10 + 40 * i).min(entries.len()),
            Entry {
                doc: DocRef::Public,
                signature: c.sig,
                change,
            },
        );
    }
    assert_eq!(
        refused.len(),
        5,
        "vectors 0, 1, 10 and 11, and the forged entry"
    );
    let bytes = bundle::encode(&rec.group(), &entries);

    let one = audit(&bytes, 1).expect("readable");
    let two = audit(&bytes, 2).expect("readable");
    assert_eq!(one.problems, two.problems, "1 and 2 threads differ");
    assert!(!one.verified);
    let bad: Vec<_> = one
        .problems
        .iter()
        .filter(|p| p.kind == "bad_signature")
        .collect();
    assert_eq!(bad.len(), refused.len(), "{bad:#?}");
    for (id, why) in &refused {
        assert!(
            bad.iter()
                .any(|p| p.entry_id.as_deref() == Some(id) && p.detail.contains(why.as_str())),
            "{id} is not refused for \"{why}\": {bad:#?}"
        );
    }
    // Every other problem is an entry waiting on the forged one; the entries before it are valid.
    assert!(
        one.problems
            .iter()
            .all(|p| p.kind == "bad_signature" || p.kind == "missing_dependency")
    );
    assert_eq!(
        one.problems.len(),
        refused.len() + (2 * BATCH + 10 - forged_at - 1),
        "{:#?}",
        one.problems
    );

    // The JavaScript rules verifier refuses the same entries for the same kinds.
    let automerge = root().join("tests/js/node_modules/@automerge/automerge");
    assert!(
        automerge.is_dir(),
        "{} is missing; run `bash tests/setup.sh`",
        automerge.display()
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("vectors.bundle");
    std::fs::write(&file, &bytes).expect("written");
    let (code, lines) = node(&[&file]);
    assert_eq!(code, 1, "{lines:?}");
    let js: BTreeSet<(String, String)> = lines
        .iter()
        .filter_map(|l| {
            let (id, rest) = l.split_once(' ')?;
            let kind = rest.split(':').next()?;
            (rest != "ok").then(|| (id.to_string(), kind.to_string()))
        })
        .collect();
    let auditor: BTreeSet<(String, String)> = one
        .problems
        .iter()
        .map(|p| (p.entry_id.clone().unwrap_or_default(), p.kind.clone()))
        .collect();
    assert_eq!(js, auditor);
}
