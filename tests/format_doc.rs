//! Keeps `docs/format.md` honest.
//!
//! (a) The worked example in the document is exactly what `examples/format_example.rs` produces now,
//!     and `tests/data/format-example.bundle` is exactly its bundle.
//! (b) An independent verifier written from the document alone (`tests/independent_verify.py`, Python
//!     standard library only) accepts that bundle and computes the same entry ids as Rust.
//! (c) It refuses the bundle when any byte is changed, and it reaches the same verdict as Rust on
//!     entries that are re-framed by a rewriter or crafted to slip past a lax ed25519 check.
//! (d) It agrees with the auditor (`roundtable_audit::audit`) on the verdict, the exit code, and the
//!     ids and kinds of the refused entries (docs/format.md section 11) of honest, reordered,
//!     duplicated, damaged and forged bundles.
//!
//! These tests need `python3`; without it they fail, they are never skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::Command;

use roundtable::core::body::{Body, CONTAINERS, ChangeFrame, build_change};
use roundtable::core::bundle;
use roundtable::core::change::raw_change_hash;
use roundtable::core::entry::{DocRef, Entry, validate_signature};
use roundtable::core::{DeviceId, EntryId, Rule};

#[allow(dead_code)]
#[path = "../examples/format_example.rs"]
mod format_example;

use format_example::{Example, T0_MS, breakdown, build, bundle_map, report};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the independent verifier on `bundle`; returns its exit code and stdout lines.
fn python_verify(bundle: &Path) -> (i32, Vec<String>) {
    let out = Command::new("python3")
        .arg(root().join("tests/independent_verify.py"))
        .arg(bundle)
        .output()
        .expect(
            "python3 could not be run: it is required by this test (it runs the independent verifier \
             tests/independent_verify.py); install Python 3",
        );
    let stdout = String::from_utf8(out.stdout).expect("the verifier prints UTF-8");
    let code = out
        .status
        .code()
        .expect("the verifier was killed by a signal");
    (code, stdout.lines().map(str::to_string).collect())
}

fn verify_bytes(bytes: &[u8]) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.bundle");
    std::fs::write(&path, bytes).unwrap();
    python_verify(&path)
}

/// The exit code `roundtable audit` gives these bytes (docs/format.md section 11).
fn audit_code(bytes: &[u8]) -> i32 {
    match roundtable_audit::audit(bytes, 1) {
        Err(_) => 2,
        Ok(r) if r.verified => 0,
        Ok(r) if r.damaged.is_some() => 2,
        Ok(_) => 1,
    }
}

/// Rust's verdict on one entry of the example group: `Ok(id)` if its signature verifies.
fn rust_verdict(ex: &Example, entry: &Entry) -> Result<EntryId, String> {
    let parsed = entry.parse().map_err(|e| e.to_string())?;
    validate_signature(entry, &parsed, &ex.group, &[]).map_err(|e| e.to_string())?;
    Ok(parsed.hash)
}

#[test]
fn the_document_shows_what_the_example_produces() {
    let ex = build();
    let doc = std::fs::read_to_string(root().join("docs/format.md")).expect("docs/format.md");
    let stale = "docs/format.md is stale: run `cargo run --example format_example` and paste its output \
                 into the worked example (and update the prose that quotes it)";
    assert!(
        doc.contains(&report(&ex)),
        "{stale} (the hex listing differs)"
    );
    assert!(
        doc.contains(&bundle_map(&ex)),
        "{stale} (the map of the bundle differs)"
    );
    assert!(
        doc.contains(&breakdown(&ex)),
        "{stale} (the byte-by-byte breakdown differs)"
    );
    // Quoted in the prose as well.
    for id in ex.entries.iter().map(|(id, _)| id.to_string()) {
        assert!(doc.contains(&id), "{stale} (entry id {id} is not quoted)");
    }
    let file = std::fs::read(root().join("tests/data/format-example.bundle"))
        .expect("tests/data/format-example.bundle");
    assert!(
        file == ex.bundle,
        "tests/data/format-example.bundle is stale: run \
         `cargo run --example format_example -- tests/data/format-example.bundle`"
    );
}

#[test]
fn the_example_is_deterministic_and_self_consistent() {
    let a = build();
    let b = build();
    assert_eq!(a.bundle, b.bundle);
    let (group, entries) = bundle::decode(&a.bundle).unwrap();
    assert_eq!(group, a.group);
    for ((id, e), d) in a.entries.iter().zip(&entries) {
        assert_eq!(e, d);
        assert_eq!(raw_change_hash(&e.change).unwrap(), *id);
        assert_eq!(rust_verdict(&a, e), Ok(*id));
    }
    // The genesis's hash is the group id it signed with.
    assert_eq!(a.entries[0].0, a.group);
}

#[test]
fn python_verifies_the_bundle_and_computes_the_same_ids() {
    let ex = build();
    let (code, lines) = python_verify(&root().join("tests/data/format-example.bundle"));
    let want: Vec<String> = ex
        .entries
        .iter()
        .map(|(id, _)| format!("{id} ok"))
        .collect();
    assert_eq!(lines, want, "the verifier's output");
    assert_eq!(code, 0, "the verifier's exit status");
}

#[test]
fn python_refuses_a_bundle_with_any_changed_byte() {
    let ex = build();
    let n = ex.bundle.len();
    let entry0 = 49;
    let change0 = entry0 + 1 + 64 + 4;
    // One position in every region: magic, version, group id, count, doc_kind, signature R and S,
    // change length, change magic, change checksum, change body, the last entry's text, the digest.
    let positions = [
        0,
        8,
        9,
        41,
        entry0,
        entry0 + 1,
        entry0 + 40,
        entry0 + 65,
        change0,
        change0 + 5,
        change0 + 40,
        n - 40,
        n - 1,
    ];
    for at in positions {
        for mask in [0x01u8, 0x80] {
            let mut b = ex.bundle.clone();
            b[at] ^= mask;
            let (code, lines) = verify_bytes(&b);
            assert_eq!(
                code, 2,
                "flipping bit {mask:#04x} of byte {at} was not caught: {lines:?}"
            );
            assert_eq!(audit_code(&b), 2, "the auditor, byte {at}");
            assert!(
                bundle::decode(&b).is_err(),
                "Rust accepted byte {at} flipped"
            );
        }
    }
    // Cut short, and one byte too many: not a whole bundle.
    assert_eq!(verify_bytes(&ex.bundle[..n - 1]).0, 2);
    assert_eq!(audit_code(&ex.bundle[..n - 1]), 2);
    let mut longer = ex.bundle.clone();
    longer.push(0);
    assert_eq!(verify_bytes(&longer).0, 2);
    assert_eq!(audit_code(&longer), 2);
}

/// A rewriter can re-frame a bundle and fix up its digest, but cannot forge an entry: Rust and Python
/// both refuse exactly the entries that were changed.
#[test]
fn a_rewritten_bundle_cannot_carry_a_forged_entry() {
    let ex = build();
    let mut entries: Vec<Entry> = ex.entries.iter().map(|(_, e)| e.clone()).collect();
    // Rebuild the message's change with one letter of its text changed, at the same place in the
    // history (actor, seq, start_op, deps, time): a well-formed change with a correct checksum, as a
    // careful forger would make it. Its hash differs, so the original signature no longer fits.
    let parsed = entries[2].parse().unwrap();
    let c = &parsed.change;
    let frame = ChangeFrame {
        actor: ex.key.device_id(),
        seq: c.seq(),
        start_op: c.start_op(),
        deps: c.deps().iter().map(|h| EntryId::from(*h)).collect(),
        time_ms: c.timestamp(),
    };
    // The genesis made the containers with ops 8..=16, in the order of `CONTAINERS` (docs/format.md).
    let containers: BTreeMap<String, (u64, DeviceId)> = CONTAINERS
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), (8 + i as u64, ex.key.device_id())))
        .collect();
    let thread = ex.entries[1].0;
    let rebuild = |text: &str| {
        let body = Body::Message {
            thread,
            text: text.into(),
        };
        build_change(&body, &frame, &containers)
            .unwrap()
            .raw_bytes()
            .to_vec()
    };
    assert_eq!(
        rebuild("Hello"),
        entries[2].change,
        "the documented record shape rebuilds the message byte for byte"
    );
    entries[2].change = rebuild("Jello");
    // Flip a bit of the thread's signature.
    entries[1].signature[10] ^= 0x04;
    let b = bundle::encode(&ex.group, &entries);
    assert!(
        bundle::decode(&b).is_ok(),
        "the framing and digest are fine"
    );

    let (code, lines) = verify_bytes(&b);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], format!("{} ok", ex.entries[0].0));
    for (i, line) in lines.iter().enumerate().skip(1) {
        assert!(!line.ends_with(" ok"), "entry {i} passed: {line}");
        assert!(
            rust_verdict(&ex, &entries[i]).is_err(),
            "Rust passed entry {i}"
        );
    }
    // The forged message's id is what Python printed, and what Rust computes.
    assert!(lines[2].starts_with(&raw_change_hash(&entries[2].change).unwrap().to_string()));

    // A bundle re-labelled with another group id: every signature names the real group.
    let other = EntryId::from_bytes([7; 32]);
    let (code, lines) = verify_bytes(&bundle::encode(&other, &entries[..1]));
    assert_eq!(code, 1, "{lines:?}");
    assert!(!lines[0].ends_with(" ok"));
}

/// The signature rule's refusals that a textbook ed25519 verifier lacks (docs/format.md, "Signature
/// rule"): Rust, Python and the auditor refuse each entry, and Python names the same refusal.
#[test]
fn python_applies_the_signature_rule() {
    let ex = build();
    // 1. A malleated signature: S + L verifies the same equation as S, but S must be below L.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut malleated = ex.message().1.clone();
    let mut carry = 0u16;
    for (s, l) in malleated.signature[32..].iter_mut().zip(L) {
        let v = u16::from(*s) + u16::from(l) + carry;
        *s = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);

    // 2. A change whose author is the identity point (a small-order "key"), with the signature
    //    R = B (the base point), S = 1. Then [S]B - [k]A = B = R for every message: a verifier that
    //    skips the small-order check accepts it.
    let identity = {
        let mut k = [0u8; 32];
        k[0] = 1;
        DeviceId::from_bytes(k)
    };
    let change = build_change(
        &Body::Genesis {
            name: "Forged".into(),
            rule: Rule::Consent,
            quorum: 1,
            creator_name: "Nobody".into(),
            creator_needs: String::new(),
        },
        &ChangeFrame {
            actor: identity,
            seq: 1,
            start_op: NonZeroU64::MIN,
            deps: vec![],
            time_ms: T0_MS,
        },
        &BTreeMap::new(),
    )
    .unwrap();
    let mut signature = [0u8; 64];
    signature[0] = 0x58;
    signature[1..32].fill(0x66);
    signature[32] = 1;
    let weak = Entry {
        doc: DocRef::Public,
        signature,
        change: change.raw_bytes().to_vec(),
    };

    // 3. A non-canonical encoding of a point of large order (y = p + 3), which ed25519-dalek's
    //    verify_strict took as a key; the rule refuses it whatever the signature.
    let mut y = [0xffu8; 32];
    y[0] = 0xf0;
    y[31] = 0x7f;
    let non_canonical = Entry {
        doc: DocRef::Public,
        signature: ex.message().1.signature,
        change: genesis_by(DeviceId::from_bytes(y)),
    };

    for (name, entry, why) in [
        ("S + L", &malleated, "mismatch"),
        ("small-order key", &weak, "small_order_key"),
        ("non-canonical key", &non_canonical, "non_canonical_key"),
    ] {
        assert!(
            rust_verdict(&ex, entry).is_err(),
            "Rust accepted the {name} entry"
        );
        let b = bundle::encode(&ex.group, std::slice::from_ref(entry));
        let (code, lines) = verify_bytes(&b);
        assert_eq!(code, 1, "Python accepted the {name} entry: {lines:?}");
        assert_eq!(audit_code(&b), 1, "the auditor, {name}");
        let id = raw_change_hash(&entry.change).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with(&format!("{id} bad_signature:"))
                && lines[0].ends_with(&format!("({why})")),
            "{name}: {lines:?}"
        );
    }
}

/// A genesis change whose author is `actor`.
fn genesis_by(actor: DeviceId) -> Vec<u8> {
    build_change(
        &Body::Genesis {
            name: "Torsion".into(),
            rule: Rule::Consent,
            quorum: 1,
            creator_name: "Ana".into(),
            creator_needs: String::new(),
        },
        &ChangeFrame {
            actor,
            seq: 1,
            start_op: NonZeroU64::MIN,
            deps: vec![],
            time_ms: T0_MS,
        },
        &BTreeMap::new(),
    )
    .unwrap()
    .raw_bytes()
    .to_vec()
}

/// Signatures that only the cofactored equation accepts, made with a real secret key: the key
/// `A' = [a]B + T` and `R = [r]B + T` with `T` of order 8. `[8][s]B = [8]R + [8][k]A'` holds, and
/// `[s]B = R + [k]A'` does not (it is off by `[k + 1]T`). Members' devices, the auditor and
/// Python accept the genesis signed so; ed25519-dalek's verify_strict, the old rule, refused it.
#[test]
fn a_key_with_a_torsion_component_signs_under_the_cofactored_rule() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::traits::IsIdentity;
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use sha2::{Digest, Sha512};

    let h = Sha512::digest([9u8; 32]);
    let mut a_bytes: [u8; 32] = h[..32].try_into().unwrap();
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    // An order-8 point: the small key of speccheck vectors 0 and 1.
    let t_bytes: [u8; 32] =
        hex_32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa");
    let t = CompressedEdwardsY(t_bytes).decompress().unwrap();
    assert!(
        t.is_small_order() && !(t + t + t + t).is_identity(),
        "T has order 8"
    );
    let key = (EdwardsPoint::mul_base(&a) + t).compress().to_bytes();
    let change = genesis_by(DeviceId::from_bytes(key));
    let id = raw_change_hash(&change).unwrap();
    let group = id;
    let msg = roundtable::core::entry::signing_message(&group, &group.0, &id);

    let mut signature = [0u8; 64];
    for nonce in 0u8.. {
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest([nonce; 7]).into());
        let r_point = (EdwardsPoint::mul_base(&r) + t).compress().to_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_point)
                .chain_update(key)
                .chain_update(&msg)
                .finalize()
                .into(),
        );
        let s = r + k * a;
        signature[..32].copy_from_slice(&r_point);
        signature[32..].copy_from_slice(s.as_bytes());
        // The cofactorless equation holds only when 8 divides k + 1.
        if !(k + Scalar::ONE).as_bytes()[0].is_multiple_of(8) {
            break;
        }
    }
    let entry = Entry {
        doc: DocRef::Public,
        signature,
        change,
    };
    let parsed = entry.parse().unwrap();
    assert_eq!(validate_signature(&entry, &parsed, &group, &[]), Ok(()));
    let dalek = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
    assert!(
        dalek
            .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&signature))
            .is_err(),
        "the cofactorless rule accepted it: the test proves nothing"
    );

    let b = bundle::encode(&group, std::slice::from_ref(&entry));
    let (code, lines) = verify_bytes(&b);
    assert_eq!((code, lines), (0, vec![format!("{id} ok")]), "Python");
    let report = roundtable_audit::audit(&b, 1).expect("readable");
    assert!(report.verified, "the auditor: {:?}", report.problems);
}

fn hex_32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// The twelve edge cases of "Taming the many EdDSAs" (tests/data/ed25519-speccheck.json): the file,
/// Rust's single check and the Python verifier give each the same verdict and the same refusal.
#[test]
fn python_rust_and_the_file_agree_on_the_speccheck_vectors() {
    let path = root().join("tests/data/ed25519-speccheck.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    let out = Command::new("python3")
        .arg(root().join("tests/independent_verify.py"))
        .arg("--vectors")
        .arg(&path)
        .output()
        .expect("python3 could not be run: it is required by this test; install Python 3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(python.len(), 12, "{python:?}");
    for (i, c) in cases.iter().enumerate() {
        let expected = c["refusal"].as_str().unwrap_or("ok");
        assert_eq!(c["valid"].as_bool(), Some(expected == "ok"), "vector {i}");
        assert_eq!(python[i], format!("{i} {expected}"), "Python, vector {i}");
        let bytes = |f: &str| -> Vec<u8> {
            let s = c[f].as_str().unwrap();
            (0..s.len() / 2)
                .map(|j| u8::from_str_radix(&s[2 * j..2 * j + 2], 16).unwrap())
                .collect()
        };
        let key: [u8; 32] = bytes("pub_key").try_into().unwrap();
        let sig: [u8; 64] = bytes("signature").try_into().unwrap();
        let rust = roundtable::core::signature::verify(&key, &bytes("message"), &sig);
        assert_eq!(
            rust.err().map_or("ok", |r| r.kind()),
            expected,
            "Rust, vector {i}"
        );
    }
}

/// What the Python verifier says of each refused entry, as (id, kind); and of a damaged file, its kind.
fn python_refusals(lines: &[String]) -> (BTreeSet<(String, String)>, Option<String>) {
    let mut refused = BTreeSet::new();
    let mut bundle = None;
    for l in lines {
        if let Some(rest) = l.strip_prefix("bundle: ") {
            bundle = rest.split(':').next().map(str::to_string);
            continue;
        }
        let (id, rest) = l
            .split_once(' ')
            .expect("a line is `ID ok` or `ID KIND: reason`");
        if rest != "ok" {
            let kind = rest.split(':').next().unwrap_or_default();
            refused.insert((id.to_string(), kind.to_string()));
        }
    }
    (refused, bundle)
}

/// The verifier written from the documents alone and the auditor agree on the verdict, the exit code,
/// and every refused entry's id and kind; on a damaged file, Python's one failure is among the
/// auditor's. (Python checks integrity and authorship only, so these bundles break no other rule.)
#[test]
fn python_and_the_auditor_agree_on_ids_kinds_and_exit_codes() {
    let ex = build();
    let entries: Vec<Entry> = ex.entries.iter().map(|(_, e)| e.clone()).collect();
    let enc = |es: &[Entry]| bundle::encode(&ex.group, es);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![("honest", ex.bundle.clone())];
    cases.push((
        "reordered",
        enc(&[&entries[2], &entries[0], &entries[1]].map(Clone::clone)),
    ));
    cases.push((
        "duplicated",
        enc(&[
            &entries[0],
            &entries[1],
            &entries[1],
            &entries[2],
            &entries[0],
        ]
        .map(Clone::clone)),
    ));
    let n = ex.bundle.len();
    cases.push(("cut", ex.bundle[..n - 40].to_vec()));
    let mut flipped = ex.bundle.clone();
    flipped[n - 1] ^= 1;
    cases.push(("digest", flipped));
    let mut count = ex.bundle.clone();
    count[41] = 4;
    let d: [u8; 32] = sha_256(&count[..n - 32]);
    count[n - 32..].copy_from_slice(&d);
    cases.push(("count", count));
    // The thread's signature broken: the message waits on it.
    let mut forged = entries.clone();
    forged[1].signature[5] ^= 0x40;
    cases.push(("forged", enc(&forged)));
    // The message relabelled as doc_kind 2 with the group id as its doc id: its signature still holds.
    let mut relabelled = entries.clone();
    relabelled[2].doc = DocRef::Other(ex.group.0);
    cases.push(("relabelled", enc(&relabelled)));
    // A change with no hash (its checksum broken): named by the SHA-256 of its encoded bytes.
    let mut unhashed = entries.clone();
    unhashed[2].change[5] ^= 1;
    cases.push(("no hash", enc(&unhashed)));

    for (name, bytes) in cases {
        let (code, lines) = verify_bytes(&bytes);
        assert_eq!(
            code,
            audit_code(&bytes),
            "{name}: exit codes differ: {lines:?}"
        );
        let report = roundtable_audit::audit(&bytes, 1).expect("readable");
        let (py, py_bundle) = python_refusals(&lines);
        match (&report.damaged, py_bundle) {
            (Some(d), Some(kind)) => {
                assert!(
                    d.failures.iter().any(|f| f.kind == kind),
                    "{name}: Python says {kind}, the auditor {:?}",
                    d.failures
                );
                continue;
            }
            (None, None) => {}
            (d, p) => panic!("{name}: damaged? the auditor {d:?}, Python {p:?}"),
        }
        let integrity = |k: &str| {
            matches!(k, "bad_signature" | "unsupported_document" | "malformed")
                || k.starts_with("change_")
        };
        let rust: BTreeSet<(String, String)> = report
            .problems
            .iter()
            .filter(|p| integrity(&p.kind))
            .map(|p| (p.entry_id.clone().unwrap_or_default(), p.kind.clone()))
            .collect();
        assert_eq!(py, rust, "{name}: {lines:?} / {:#?}", report.problems);
        // The entries waiting on a refused one name it by the id Python printed.
        for p in report
            .problems
            .iter()
            .filter(|p| p.kind == "missing_dependency")
        {
            assert!(
                py.iter().any(|(id, _)| p.detail.contains(id.as_str())),
                "{name}: {p:?} names no refused entry"
            );
        }
        assert_eq!(report.verified, code == 0, "{name}");
    }
}

fn sha_256(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).into()
}
