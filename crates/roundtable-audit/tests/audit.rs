//! The auditor against the committed example (`tests/data/audit-example.*`, made by
//! `examples/audit_example.rs`) and against every kind of damage the issue names: each single flipped
//! byte, a cut-off tail, a removed middle entry, a reordered bundle, an outcome that differs from its
//! stances, a removal without a decision, a forged signature and a fork, each reported with its own
//! kind, and all of them at once.
//!
//! Rule-breaking entries are built by hand, as a hostile device would (`build_change` and
//! `Entry::sign`, as in `crates/roundtable-core/tests/rules.rs`): `Record::author` refuses them.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use roundtable_audit::{AuditError, Report, audit, render_html};
use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::bundle;
use roundtable_core::{
    Body, Counts, Decision, DeviceKey, DocRef, Entry, EntryId, GroupId, Record, Rule, StanceKind,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const BUNDLE: &[u8] = include_bytes!("../../../tests/data/audit-example.bundle");
const JSON: &str = include_str!("../../../tests/data/audit-example.json");
const HTML: &str = include_str!("../../../tests/data/audit-example.html");

/// How many entries the example holds.
const N: usize = 24;

/// The example's members: name and the byte their fixed secret key repeats.
const MEMBERS: [(&str, u8); 4] = [("Ana", 1), ("Ben", 2), ("Chloe", 3), ("Dev", 4)];

fn key(n: u8) -> DeviceKey {
    DeviceKey::from_secret(&[n; 32])
}

fn run(bytes: &[u8]) -> Report {
    audit(bytes, 2).unwrap_or_else(|e| panic!("the bundle should be readable: {e}"))
}

fn kinds(r: &Report) -> BTreeSet<&str> {
    r.problems.iter().map(|p| p.kind.as_str()).collect()
}

/// Asserts the report is not verified and lists exactly `want` kinds of problem.
#[track_caller]
fn assert_kinds(r: &Report, want: &[&str]) {
    assert!(!r.verified, "a damaged bundle was verified: {r:#?}");
    let want: BTreeSet<&str> = want.iter().copied().collect();
    assert_eq!(kinds(r), want, "problems: {:#?}", r.problems);
}

fn example_entries() -> (GroupId, Vec<Entry>) {
    bundle::decode(BUNDLE).expect("the committed example bundle is well-formed")
}

fn id_of(e: &Entry) -> EntryId {
    e.parse().expect("a parsable entry").hash
}

/// Recomputes a bundle's trailing digest, as anyone who rewrites a bundle can.
fn redigest(b: &mut [u8]) {
    let n = b.len() - 32;
    let d: [u8; 32] = Sha256::digest(&b[..n]).into();
    b[n..].copy_from_slice(&d);
}

/// The example group, continued: valid entries through the rules, hostile ones by hand.
struct Ext {
    group: GroupId,
    genesis: Entry,
    rec: Record,
    base: Vec<Entry>,
    /// Entries written after the example, in causal order (valid and forged).
    extra: Vec<Entry>,
    time: i64,
}

impl Ext {
    fn new() -> Ext {
        let (group, base) = example_entries();
        let (rec, out) = Record::from_entries(group, base.clone());
        assert!(out.rejected.is_empty() && out.pending.is_empty());
        let time = rec
            .causal_order()
            .iter()
            .filter_map(|h| rec.entry(h))
            .map(|(_, m)| m.time_ms)
            .max()
            .unwrap();
        Ext {
            group,
            genesis: base[0].clone(),
            rec,
            base,
            extra: Vec::new(),
            time,
        }
    }

    fn tick(&mut self) -> i64 {
        self.time += 60_000;
        self.time
    }

    /// Writes through the rules; the write must be accepted.
    fn write(&mut self, k: &DeviceKey, body: Body) -> EntryId {
        let t = self.tick();
        let (id, e) = self
            .rec
            .author(k, body.clone(), t)
            .unwrap_or_else(|e| panic!("{body:?} was refused: {e}"));
        self.extra.push(e);
        id
    }

    /// Builds and signs `body` as `k` on the current heads without asking the rules, as a device
    /// that skips them would. Not applied here: a later valid write by `k` would fork with it, so
    /// forge as the last thing a key does.
    fn forge(&mut self, k: &DeviceKey, body: &Body) -> (EntryId, Entry) {
        let deps = self.rec.heads();
        let max_op = deps
            .iter()
            .map(|d| self.rec.entry(d).expect("a head is valid").1.max_op)
            .max()
            .unwrap();
        let containers = decode_change(&self.genesis.parse().unwrap().change, &BTreeMap::new())
            .unwrap()
            .1;
        let frame = ChangeFrame {
            actor: k.device_id(),
            seq: self.rec.next_seq(&k.device_id()),
            start_op: NonZeroU64::new(max_op + 1).unwrap(),
            deps,
            time_ms: self.tick(),
        };
        let change = build_change(body, &frame, &containers).unwrap();
        let hash = EntryId::from(change.hash());
        let entry = Entry::sign(
            k,
            &self.group,
            DocRef::Public,
            change.raw_bytes().to_vec(),
            &hash,
        );
        (hash, entry)
    }

    fn proposal(&mut self, k: &DeviceKey, removes: Option<&DeviceKey>) -> EntryId {
        let thread = self.write(
            k,
            Body::Thread {
                title: "Next year".into(),
            },
        );
        self.write(
            k,
            Body::Proposal {
                thread,
                title: "A proposal".into(),
                text: "We do this.".into(),
                easy_read: "We do this.".into(),
                rule: Rule::Consent,
                quorum: 1,
                removes: removes.map(|r| r.device_id()),
            },
        )
    }

    fn stance(&mut self, k: &DeviceKey, proposal: EntryId, stance: StanceKind, reason: &str) {
        self.write(
            k,
            Body::Stance {
                proposal,
                stance,
                reason: reason.into(),
                on_behalf: None,
            },
        );
    }

    /// A proposal Ana blocks, closed by `closer` as passed with one agree and no block.
    fn dishonest_outcome(&mut self, closer: &DeviceKey) -> (EntryId, EntryId) {
        let p = self.proposal(&key(2), None);
        self.stance(&key(1), p, StanceKind::Block, "It leaves out the tenants.");
        assert_eq!(self.rec.recount_now(&p).1, Decision::NotPassed);
        let (id, e) = self.forge(
            closer,
            &Body::Outcome {
                proposal: p,
                outcome: "Passed.".into(),
                decision: Decision::Passed,
                counts: Counts {
                    agree: 1,
                    abstain: 0,
                    disagree: 0,
                    block: 0,
                },
            },
        );
        self.extra.push(e);
        (p, id)
    }

    /// A proposal to remove Dev that did not pass, then a removal of Dev by `remover` naming it.
    fn removal_without_decision(&mut self, closer: &DeviceKey, remover: &DeviceKey) -> EntryId {
        let p = self.proposal(&key(2), Some(&key(4)));
        self.stance(&key(4), p, StanceKind::Block, "I was not asked.");
        let (counts, decision) = self.rec.recount_now(&p);
        assert_eq!(decision, Decision::NotPassed);
        self.write(
            closer,
            Body::Outcome {
                proposal: p,
                outcome: "Not passed.".into(),
                decision,
                counts,
            },
        );
        let (id, e) = self.forge(
            remover,
            &Body::MemberRemove {
                member: key(4).device_id(),
                decision: p,
            },
        );
        self.extra.push(e);
        id
    }

    fn bundle(&self) -> Vec<u8> {
        let all: Vec<Entry> = self.base.iter().chain(&self.extra).cloned().collect();
        bundle::encode(&self.group, &all)
    }
}

// ----- the committed example -----

#[test]
fn example_bundle_audits_to_its_committed_report() {
    let r = run(BUNDLE);
    assert!(r.verified, "{:#?}", r.problems);
    let got = serde_json::to_value(&r).unwrap();
    let want: Value = serde_json::from_str(JSON).unwrap();
    assert_eq!(
        got, want,
        "the example's report changed: if that is intended, run `cargo run --example audit_example -- --reports`"
    );
    assert_eq!(
        render_html(&r).unwrap(),
        HTML,
        "the example's HTML report changed: if that is intended, run `cargo run --example audit_example -- --reports`"
    );
    // The same on one thread as on many.
    let one = serde_json::to_value(audit(BUNDLE, 1).unwrap()).unwrap();
    assert_eq!(one, want);
}

#[test]
fn example_report_keeps_the_issue_contract() {
    let v: Value = serde_json::from_str(JSON).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["entries"], N);
    assert!(v["members"].is_array());
    assert_eq!(v["problems"], Value::Array(vec![]));
    let shapes: [(&str, &[&str]); 3] = [
        ("decisions", &["proposal_id", "recorded", "recounted"]),
        (
            "sealed_threads",
            &["thread_id", "reason", "readers", "entries"],
        ),
        (
            "participation",
            &[
                "member_id",
                "name",
                "threads",
                "messages",
                "proposals",
                "stances",
                "reasons",
                "understanding_checks",
            ],
        ),
    ];
    for (list, fields) in shapes {
        let rows = v[list].as_array().unwrap_or_else(|| panic!("{list}"));
        assert!(!rows.is_empty(), "{list} is empty in the example");
        for row in rows {
            for f in fields {
                assert!(row.get(f).is_some(), "{list} row lacks {f}: {row}");
            }
        }
    }
    // A problem row has exactly the contract's fields, even when it names no entry.
    let mut b = BUNDLE.to_vec();
    *b.last_mut().unwrap() ^= 1;
    let damaged = serde_json::to_value(run(&b)).unwrap();
    for p in damaged["problems"].as_array().unwrap() {
        for f in ["kind", "entry_id", "detail"] {
            assert!(p.get(f).is_some(), "problem lacks {f}: {p}");
        }
    }
}

#[test]
fn example_counts_what_the_example_wrote() {
    let r = run(BUNDLE);
    assert_eq!((r.entries, r.valid_entries), (N, N));
    assert_eq!(
        r.summary[0],
        format!("All {N} entries are signed by members.")
    );
    assert_eq!(r.group_name, "Riverside Partnership Board");

    let id = |n: u8| key(n).device_id().to_string();
    let mut members: Vec<(String, String, String)> = r
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.name.clone(), m.status.clone()))
        .collect();
    members.sort();
    let mut want: Vec<(String, String, String)> = MEMBERS
        .iter()
        .map(|(name, n)| (id(*n), name.to_string(), "active".to_string()))
        .collect();
    want.sort();
    assert_eq!(members, want);
    assert_eq!(r.auditors.len(), 1);
    assert_eq!(r.auditors[0].device_id, id(0x0a));
    assert_eq!(r.auditors[0].name, "Council inspector");

    // threads, messages, proposals, stances, reasons, understanding checks, of them confirmed.
    let expected: [(&str, [u64; 7]); 4] = [
        ("Ana", [1, 2, 0, 1, 1, 0, 0]), // the sealed thread, a message and a sealed message
        ("Ben", [1, 1, 0, 1, 0, 0, 0]), // "Housing" and a sealed message
        ("Chloe", [0, 1, 1, 1, 0, 0, 0]),
        ("Dev", [0, 1, 0, 1, 0, 1, 1]),
    ];
    assert_eq!(r.participation.len(), 4);
    for (name, counts) in expected {
        let n = MEMBERS.iter().find(|m| m.0 == name).unwrap().1;
        let p = r
            .participation
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no participation row for {name}"));
        assert_eq!(p.member_id, id(n));
        let got = [
            p.threads,
            p.messages,
            p.proposals,
            p.stances,
            p.reasons,
            p.understanding_checks,
            p.understanding_confirmed,
        ];
        assert_eq!(got, counts, "{name}");
    }

    assert_eq!(r.decisions.len(), 1);
    let d = &r.decisions[0];
    assert!(d.matches);
    assert_eq!(d.recorded, d.recounted);
    assert_eq!(
        (
            d.recorded.decision.as_str(),
            d.recorded.agree,
            d.recorded.abstain
        ),
        ("passed", 3, 1)
    );

    assert_eq!(r.sealed_threads.len(), 1);
    let s = &r.sealed_threads[0];
    assert_eq!(s.entries, 2);
    assert!(!s.reason.is_empty());
    let mut readers = s.reader_names.clone();
    readers.sort();
    assert_eq!(readers, ["Ana", "Ben"]);
    assert!(s.readers.contains(&id(1)) && s.readers.contains(&id(2)));
    assert!(r.flags.is_empty());
}

#[test]
fn html_report_renders_the_summary_and_no_script() {
    // Damage in the middle: half the entries count, the rest are missing a dependency.
    let mut damaged = BUNDLE.to_vec();
    damaged[BUNDLE.len() / 2] ^= 0x01;
    for bytes in [BUNDLE, &damaged[..]] {
        let r = run(bytes);
        let html = render_html(&r).unwrap();
        assert!(html.starts_with("<!doctype html>"));
        for line in &r.summary {
            let escaped = line
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;");
            assert!(html.contains(&escaped), "the page lacks {line:?}");
        }
        let lower = html.to_lowercase();
        assert!(
            !lower.contains("<script"),
            "the report must not hold scripts"
        );
        assert!(!lower.contains(" src="), "the report must load nothing");
        assert!(html.contains(&r.group_name));
        if !r.verified {
            assert!(html.contains("Problems were found"));
            for p in &r.problems {
                assert!(html.contains(&p.kind), "{}", p.kind);
            }
        }
    }
}

// ----- damage -----

/// What a damaged copy gave: unreadable, or readable with problems.
#[derive(Default)]
struct Tally {
    unreadable: usize,
    problems: usize,
    verified: Vec<usize>,
}

/// Audits `damage(offset)` for every offset in `offsets`, on every core.
fn tally(offsets: Vec<usize>, damage: impl Fn(usize) -> Vec<u8> + Sync) -> Tally {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = offsets.len().div_ceil(cores).max(1);
    let parts: Vec<Tally> = std::thread::scope(|sc| {
        let handles: Vec<_> = offsets
            .chunks(chunk)
            .map(|c| {
                let damage = &damage;
                sc.spawn(move || {
                    let mut t = Tally::default();
                    for &i in c {
                        match audit(&damage(i), 1) {
                            Err(AuditError::Unreadable(_)) => t.unreadable += 1,
                            Err(e) => panic!("offset {i}: {e}"),
                            Ok(r) if r.verified => t.verified.push(i),
                            Ok(r) => {
                                assert!(!r.problems.is_empty(), "offset {i}");
                                t.problems += 1;
                            }
                        }
                    }
                    t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut t = Tally::default();
    for p in parts {
        t.unreadable += p.unreadable;
        t.problems += p.problems;
        t.verified.extend(p.verified);
    }
    t
}

#[test]
fn every_single_flipped_byte_is_detected() {
    let len = BUNDLE.len();
    let t = tally((0..len).collect(), |i| {
        let mut b = BUNDLE.to_vec();
        b[i] ^= 0x01;
        b
    });
    assert!(
        t.verified.is_empty(),
        "flipping these bytes went unnoticed: {:?}",
        t.verified
    );
    assert_eq!(t.unreadable + t.problems, len);
    println!(
        "flipped each of {len} bytes (xor 0x01): {} unreadable, {} with problems",
        t.unreadable, t.problems
    );

    // The high bit, on every 7th byte.
    let some: Vec<usize> = (0..len).step_by(7).collect();
    let n = some.len();
    let t = tally(some, |i| {
        let mut b = BUNDLE.to_vec();
        b[i] ^= 0x80;
        b
    });
    assert!(t.verified.is_empty(), "unnoticed: {:?}", t.verified);
    assert_eq!(t.unreadable + t.problems, n);
}

/// The digest catches any flip, but anyone can recompute it (docs/format.md, section 5). Without it,
/// a flipped byte is still caught: by a signature, by the entry id, or by the framing no longer
/// adding up.
#[test]
fn every_flipped_byte_is_detected_even_with_a_recomputed_digest() {
    let len = BUNDLE.len();
    let t = tally((0..len - 32).collect(), |i| {
        let mut b = BUNDLE.to_vec();
        b[i] ^= 0x01;
        redigest(&mut b);
        b
    });
    assert!(
        t.verified.is_empty(),
        "flipping these bytes (and recomputing the digest) went unnoticed: {:?}",
        t.verified
    );
    assert_eq!(t.unreadable + t.problems, len - 32);
}

#[test]
fn a_cut_off_tail_is_reported_as_truncated() {
    let (_, entries) = example_entries();
    let last = entries.last().unwrap().encoded_len();
    let len = BUNDLE.len();
    // Cut at the start of the last entry: it and the digest are gone.
    let r = run(&BUNDLE[..len - 32 - last]);
    assert_kinds(&r, &["truncated", "bundle_digest"]);
    assert_eq!((r.entries, r.valid_entries), (N - 1, N - 1));
    assert!(
        r.summary
            .contains(&"Some entries are missing from the bundle.".to_string())
    );
    // Cut inside the last entry.
    for cut in [32 + 1, 32 + last / 2, 32 + last - 1] {
        let r = run(&BUNDLE[..len - cut]);
        assert_kinds(&r, &["truncated", "bundle_digest"]);
        assert_eq!(r.entries, N - 1);
    }
    // Only the digest cut off, or part of it.
    let r = run(&BUNDLE[..len - 32]);
    assert_kinds(&r, &["bundle_digest"]);
    let r = run(&BUNDLE[..len - 5]);
    assert!(!r.verified && kinds(&r).contains("bundle_digest"));
    // Every cut that leaves the header is readable and is reported.
    for cut in (1..len - 49).step_by(97) {
        let r = run(&BUNDLE[..len - cut]);
        assert!(!r.verified, "cut {cut}");
    }
    // A cut inside the header: nothing to audit.
    assert!(matches!(
        audit(&BUNDLE[..40], 1),
        Err(AuditError::Unreadable(_))
    ));
}

#[test]
fn a_removed_middle_entry_leaves_its_dependents_missing_a_dependency() {
    let (group, mut entries) = example_entries();
    let at = N / 2;
    let removed = id_of(&entries.remove(at));
    let r = run(&bundle::encode(&group, &entries));
    assert_kinds(&r, &["missing_dependency"]);
    assert_eq!(r.valid_entries, at);
    assert_eq!(
        r.problems.len(),
        N - 1 - at,
        "every later entry builds on it"
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.detail.contains(&removed.to_string()))
    );
    assert!(
        r.summary
            .contains(&"Some entries are missing from the bundle.".to_string())
    );
}

#[test]
fn a_reordered_bundle_is_reported_as_out_of_order() {
    let (group, mut entries) = example_entries();
    let (a, b) = (id_of(&entries[5]), id_of(&entries[6]));
    let deps: Vec<EntryId> = entries[6]
        .parse()
        .unwrap()
        .change
        .deps()
        .iter()
        .map(|d| EntryId::from(*d))
        .collect();
    assert!(deps.contains(&a), "entry 6 builds on entry 5");
    entries.swap(5, 6);
    let r = run(&bundle::encode(&group, &entries));
    assert_kinds(&r, &["out_of_order"]);
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].entry_id, Some(b.to_string()));
    // Every entry still counts: order is a problem of the file, not of the record.
    assert_eq!(r.valid_entries, N);

    // Backwards: every entry but the first comes before what it builds on.
    let (_, mut entries) = example_entries();
    entries.reverse();
    let r = run(&bundle::encode(&group, &entries));
    assert_kinds(&r, &["out_of_order"]);
    assert_eq!(r.problems.len(), N - 1);
}

#[test]
fn an_outcome_that_differs_from_its_stances_is_reported() {
    let mut x = Ext::new();
    let (proposal, outcome) = x.dishonest_outcome(&key(3));
    let r = run(&x.bundle());
    assert_kinds(&r, &["outcome_mismatch"]);
    assert_eq!(r.problems[0].entry_id, Some(outcome.to_string()));
    assert_eq!(r.decisions.len(), 2);
    let d = r
        .decisions
        .iter()
        .find(|d| d.outcome_id == outcome.to_string())
        .expect("the dishonest outcome is in the decision table");
    assert!(!d.matches);
    assert_eq!(d.proposal_id, proposal.to_string());
    assert_eq!(
        (
            d.recorded.decision.as_str(),
            d.recorded.agree,
            d.recorded.block
        ),
        ("passed", 1, 0)
    );
    assert_eq!(
        (
            d.recounted.decision.as_str(),
            d.recounted.agree,
            d.recounted.block
        ),
        ("not_passed", 0, 1)
    );
    assert!(
        r.summary
            .contains(&"1 of 2 decisions recounted do not match what was recorded.".to_string())
    );
}

#[test]
fn a_removal_without_a_decision_is_reported() {
    let mut x = Ext::new();
    let removal = x.removal_without_decision(&key(3), &key(2));
    let r = run(&x.bundle());
    assert_kinds(&r, &["removal_without_decision"]);
    assert_eq!(r.problems[0].entry_id, Some(removal.to_string()));
    assert!(r.problems[0].detail.contains("did not pass"));
    let dev = key(4).device_id().to_string();
    let dev = r.members.iter().find(|m| m.member_id == dev).unwrap();
    assert_eq!(dev.status, "active", "Dev is still a member");
}

#[test]
fn a_forged_signature_is_reported() {
    let (group, mut entries) = example_entries();
    // The last entry: nothing builds on it, so nothing else goes missing.
    let real = id_of(entries.last().unwrap());
    entries.last_mut().unwrap().signature[10] ^= 0x04;
    let r = run(&bundle::encode(&group, &entries));
    assert_kinds(&r, &["bad_signature"]);
    assert_eq!(r.valid_entries, N - 1);
    // Named by the SHA-256 of its bytes, so a forged copy never takes the real entry's id.
    assert_ne!(r.problems[0].entry_id, Some(real.to_string()));
    assert!(
        r.auditors.is_empty(),
        "the forged AuditorAdd does not count"
    );

    // Signed with the right key for another group.
    let (_, mut entries) = example_entries();
    let last = entries.pop().unwrap();
    let ben = key(2);
    let other = EntryId([7; 32]);
    entries.push(Entry::sign(
        &ben,
        &other,
        DocRef::Public,
        last.change.clone(),
        &real,
    ));
    let r = run(&bundle::encode(&group, &entries));
    assert_kinds(&r, &["bad_signature"]);
}

#[test]
fn a_fork_is_reported_and_both_entries_are_kept_as_evidence() {
    let mut x = Ext::new();
    let dev = key(4);
    let (a, ea) = x.forge(
        &dev,
        &Body::Thread {
            title: "Garden".into(),
        },
    );
    let (b, eb) = x.forge(
        &dev,
        &Body::Thread {
            title: "Allotment".into(),
        },
    );
    assert_ne!(a, b);
    x.extra.extend([ea, eb]);
    let r = run(&x.bundle());
    assert_kinds(&r, &["fork"]);
    let (winner, loser) = if a < b { (a, b) } else { (b, a) };
    assert_eq!(r.entries, N + 2, "both are in the bundle");
    assert_eq!(r.valid_entries, N + 1, "the lower id is kept");
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].entry_id, Some(loser.to_string()));
    assert!(r.problems[0].detail.contains(&winner.to_string()));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let mut x = Ext::new();
    // Valid writes first (by every key), forgeries last, each by a key that then writes no more.
    let (_, outcome) = x.dishonest_outcome(&key(3));
    let removal = x.removal_without_decision(&key(1), &key(2));
    // A forged entry nothing builds on.
    let (_, mut forged) = x.forge(
        &key(4),
        &Body::Thread {
            title: "Forged".into(),
        },
    );
    forged.signature[40] ^= 0x10;
    x.extra.push(forged);
    // And two early entries swapped.
    x.base.swap(5, 6);
    let mut b = x.bundle();
    let r = run(&b);
    assert_kinds(
        &r,
        &[
            "out_of_order",
            "outcome_mismatch",
            "removal_without_decision",
            "bad_signature",
        ],
    );
    let named: BTreeSet<String> = r
        .problems
        .iter()
        .filter_map(|p| p.entry_id.clone())
        .collect();
    assert!(named.contains(&outcome.to_string()) && named.contains(&removal.to_string()));
    // And the file damaged on top of it all.
    *b.last_mut().unwrap() ^= 0x01;
    let r = run(&b);
    assert_kinds(
        &r,
        &[
            "bundle_digest",
            "out_of_order",
            "outcome_mismatch",
            "removal_without_decision",
            "bad_signature",
        ],
    );
    assert_eq!(r.problems.len(), 5, "{:#?}", r.problems);
    assert_eq!(
        r.summary.last().unwrap(),
        "5 problems were found: each is listed below with its reason."
    );
}

#[test]
fn not_a_bundle_is_unreadable() {
    for bytes in [&b""[..], b"hello, world", b"RTBUNDLE", &BUNDLE[..48]] {
        assert!(matches!(audit(bytes, 1), Err(AuditError::Unreadable(_))));
    }
    let mut newer = BUNDLE.to_vec();
    newer[8] = 2;
    assert!(matches!(audit(&newer, 1), Err(AuditError::Unreadable(_))));
}
