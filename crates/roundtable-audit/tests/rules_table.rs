//! The rules as a table (`docs/rules.md`): one row per rule kind, each a small group whose next entry
//! breaks exactly that rule, and a near twin that keeps it. Every member's rules (`Record`) and the
//! auditor (`audit`) must name the same kind for the entry that breaks it, and accept the twin.
//!
//! Then each row's entries are written as bundle files (`bundle::encode`, what `audit` reads), once
//! with the breaking entry and once with the twin, and run through the two independent verifiers:
//!
//! - `tests/js/verify_rules.mjs` (Node, with the reference JavaScript Automerge), written from
//!   `docs/format.md` and `docs/rules.md` alone, must name the same kind for the breaking entry, `ok` for
//!   every entry before it and for every entry of the twin's bundle, and exit 1 and 0;
//! - `tests/independent_verify.py` (integrity and signatures only) must say `ok` for every entry of
//!   both bundles: the rows break rules, never signatures.
//!
//! The verifiers' disagreements are gathered over all rows and reported together. The test needs
//! `node`, the packages of `tests/js` and `python3` (`bash tests/setup.sh`); without them it fails,
//! it is never skipped. `RULES_TABLE_KEEP=DIR` keeps the bundles it writes, to run a verifier by hand.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::Command;

use roundtable_audit::audit;
use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::sealed::{BUCKETS, EpochWrap, NONCE_LEN, TAG_LEN, WRAPPED_KEY_LEN, Wrap};
use roundtable_core::{
    Body, Counts, Decision, DeviceKey, DocRef, Effect, Entry, EntryId, Record, Rule, StanceKind,
    bundle, governance,
};

/// A group of `n` members (fixed keys 1..=n), founded by the group's agreement, each with a published
/// encryption key, and one open thread.
struct G {
    rec: Record,
    log: Vec<Entry>,
    keys: Vec<DeviceKey>,
    genesis: Entry,
    thread: EntryId,
    t: i64,
}

fn key(n: usize) -> DeviceKey {
    DeviceKey::from_secret(&[n as u8 + 1; 32])
}

fn enc(n: usize) -> [u8; 32] {
    [0x40 + n as u8; 32]
}

impl G {
    fn new(n: usize, rule: Rule, quorum: u64) -> G {
        let keys: Vec<DeviceKey> = (0..n).map(key).collect();
        let (rec, genesis) = Record::create(&keys[0], "Board", rule, quorum, "M0", "", 0).unwrap();
        let mut g = G {
            rec,
            log: vec![genesis.clone()],
            keys,
            genesis,
            thread: EntryId([0; 32]),
            t: 0,
        };
        let names: Vec<String> = (1..n).map(|i| format!("M{i}")).collect();
        let copies: Vec<DeviceKey> = (1..n).map(key).collect();
        let newcomers: Vec<(&DeviceKey, &str, &str)> = copies
            .iter()
            .zip(&names)
            .map(|(k, nm)| (k, nm.as_str(), ""))
            .collect();
        let gid = g.rec.group();
        let founder = key(0);
        governance::add_members(gid, quorum, &founder, &newcomers, |k, body| {
            g.t += 1;
            let (id, e) = g.rec.author(k, body, g.t)?;
            g.log.push(e);
            Ok::<_, roundtable_core::Refused>(id)
        })
        .unwrap();
        for i in 0..n {
            g.write(i, Body::Profile { enc_key: enc(i) });
        }
        // A member's own words about themselves (`member.about`), in every row's past.
        g.write(
            n - 1,
            Body::About {
                name: format!("M{} (own words)", n - 1),
                needs: "large print".into(),
            },
        );
        g.thread = g.write(
            0,
            Body::Thread {
                title: "Housing".into(),
            },
        );
        g
    }

    fn id(&self, i: usize) -> roundtable_core::DeviceId {
        self.keys[i].device_id()
    }

    fn write(&mut self, i: usize, body: Body) -> EntryId {
        // The members' keys are fixed (`key`): the same key as `self.keys[i]`.
        self.write_as(&key(i), body)
    }

    /// Writes `body` on device `k` (a member's first key or a device linked to one).
    fn write_as(&mut self, k: &DeviceKey, body: Body) -> EntryId {
        self.t += 1;
        let (id, e) = self
            .rec
            .author(k, body.clone(), self.t)
            .unwrap_or_else(|e| panic!("{body:?} was refused: {e}"));
        self.log.push(e);
        id
    }

    /// A `device.add` of `device` to member `i`, with the new device's own proof.
    fn link_body(&self, i: usize, device: &DeviceKey, name: &str) -> Body {
        Body::DeviceAdd {
            device: device.device_id(),
            name: name.into(),
            proof: device.link_proof(&self.rec.group(), &self.id(i)).to_vec(),
        }
    }

    /// Member `i` links `device` to themselves, from their first device.
    fn link(&mut self, i: usize, device: &DeviceKey, name: &str) -> EntryId {
        let body = self.link_body(i, device, name);
        self.write(i, body)
    }

    /// Applies an entry made elsewhere (a forged one, signed apart) and keeps it in the log.
    fn apply(&mut self, e: Entry) -> EntryId {
        let id = id_of(&e);
        let out = self.rec.ingest(vec![e.clone()]);
        assert_eq!(out.accepted, vec![id], "{out:?}");
        self.log.push(e);
        id
    }

    /// Signs `body` as member `i` on the heads, with no check: what a device that skips the rules
    /// writes. Not applied.
    fn forge(&self, i: usize, body: &Body) -> Entry {
        self.forge_as(&self.keys[i], body)
    }

    fn forge_as(&self, k: &DeviceKey, body: &Body) -> Entry {
        self.forge_at(k, body, 0, 0)
    }

    /// [`G::forge_as`], with the sequence number and the first op counter moved by the offsets.
    fn forge_at(&self, k: &DeviceKey, body: &Body, seq_off: i64, op_off: i64) -> Entry {
        let deps = self.rec.heads();
        let max_op = deps
            .iter()
            .map(|d| self.rec.entry(d).unwrap().1.max_op)
            .max()
            .unwrap();
        let max_op = (max_op as i64 + op_off) as u64;
        let containers = decode_change(&self.genesis.parse().unwrap().change, &BTreeMap::new())
            .unwrap()
            .1;
        let frame = ChangeFrame {
            actor: k.device_id(),
            seq: (self.rec.next_seq(&k.device_id()) as i64 + seq_off) as u64,
            start_op: NonZeroU64::new(max_op + 1).unwrap(),
            deps,
            time_ms: self.t + 1,
        };
        let change = build_change(body, &frame, &containers).unwrap();
        let hash = EntryId::from(change.hash());
        Entry::sign(
            k,
            &self.rec.group(),
            DocRef::Public,
            change.raw_bytes().to_vec(),
            &hash,
        )
    }

    fn proposal(&mut self, effect: Option<Effect>) -> EntryId {
        let thread = if effect.is_some() {
            self.rec.group()
        } else {
            self.thread
        };
        let (rule, quorum) = self.rec.policy().unwrap();
        self.write(
            0,
            Body::Proposal {
                thread,
                title: "P".into(),
                text: String::new(),
                easy_read: "We do it.".into(),
                rule,
                quorum,
                effect,
                closes: None,
            },
        )
    }

    fn stance(&mut self, i: usize, p: EntryId, s: StanceKind) -> EntryId {
        self.write(i, stance(p, s, "because"))
    }

    fn outcome(&self, p: EntryId) -> Body {
        let (counts, decision) = self.rec.recount_now(&p);
        Body::Outcome {
            proposal: p,
            outcome: "done".into(),
            decision,
            counts,
        }
    }

    fn wrap(&self, i: usize) -> Wrap {
        Wrap {
            member: self.id(i),
            key: enc(i),
            enc: [9; 32],
            ct: vec![7; WRAPPED_KEY_LEN],
        }
    }

    /// Wraps for `readers`, in the canonical order (by member).
    fn wraps(&self, readers: &[usize]) -> Vec<Wrap> {
        let mut w: Vec<Wrap> = readers.iter().map(|i| self.wrap(*i)).collect();
        w.sort_by_key(|w| w.member);
        w
    }

    fn sealed_thread(&self, readers: &[usize]) -> Body {
        let mut wraps: Vec<Wrap> = readers.iter().map(|i| self.wrap(*i)).collect();
        wraps.sort_by_key(|w| w.member);
        Body::SealedThread {
            title: "Support".into(),
            reason: "It is about health".into(),
            commit: [3; 32],
            wraps,
        }
    }
}

fn stance(p: EntryId, s: StanceKind, reason: &str) -> Body {
    Body::Stance {
        proposal: p,
        stance: s,
        reason: reason.into(),
        on_behalf: None,
    }
}

fn message(thread: EntryId, text: &str) -> Body {
    Body::Message {
        thread,
        text: text.into(),
    }
}

/// One row: the group, an entry that breaks the rule, and a twin that keeps it (`None` when no
/// entry of that shape can be valid).
struct Case {
    g: G,
    bad: Entry,
    good: Option<Entry>,
}

fn id_of(e: &Entry) -> EntryId {
    e.parse().unwrap().hash
}

/// The workspace root (this crate is `crates/roundtable-audit`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

const SETUP: &str =
    "run `bash tests/setup.sh` (it installs Node, Python 3 and the pinned npm packages)";

/// Runs an independent verifier (`program script FILE`) on `bytes` written as a bundle file; returns its
/// exit code and its stdout lines. Fails loudly when the program or the script cannot be run: these
/// checks are never skipped.
fn run_verifier(program: &str, script: &Path, name: &str, bytes: &[u8]) -> (i32, Vec<String>) {
    assert!(
        script.is_file(),
        "{} is missing: this test runs it; {SETUP}",
        script.display()
    );
    if program == "node" {
        let automerge = root().join("tests/js/node_modules/@automerge/automerge");
        assert!(
            automerge.is_dir(),
            "{} is missing: the rules verifier needs the reference Automerge; {SETUP}",
            automerge.display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.bundle"));
    std::fs::write(&path, bytes).unwrap();
    if let Some(keep) = std::env::var_os("RULES_TABLE_KEEP") {
        // For debugging a row: RULES_TABLE_KEEP=DIR keeps every bundle the test writes.
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&path, Path::new(&keep).join(format!("{name}.bundle"))).unwrap();
    }
    let out = Command::new(program)
        .arg(script)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`{program}` could not be run ({e}): this test needs it to run {}; {SETUP}",
                script.display()
            )
        });
    let stdout = String::from_utf8(out.stdout).expect("the verifier prints UTF-8");
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "{} was killed by a signal; stderr: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        code == 2 || !stdout.is_empty(),
        "{} printed nothing for {name}; stderr: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout.lines().map(str::to_string).collect())
}

/// The verdict a verifier's line gives its entry: `(id, "ok")` or `(id, kind)`.
fn verdict(line: &str) -> (String, String) {
    let (id, rest) = line.split_once(' ').unwrap_or((line, ""));
    let kind = rest.split_once(':').map_or(rest, |(k, _)| k);
    (id.to_string(), kind.to_string())
}

/// What an independent verifier must say of `entries`: `ok` for each but `bad`, and `kind` for `bad`.
/// Returns what it said otherwise, for the failure report.
fn verifier_agrees(
    program: &str,
    script: &str,
    name: &str,
    group: &EntryId,
    entries: &[Entry],
    bad: Option<(&EntryId, &str)>,
) -> Result<(), String> {
    let script = root().join(script);
    let (code, lines) = run_verifier(program, &script, name, &bundle::encode(group, entries));
    assert_ne!(
        code,
        2,
        "{} could not read {name}: {lines:?}",
        script.display()
    );
    let want: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            let id = id_of(e);
            let v = match bad {
                Some((b, kind)) if *b == id => kind.to_string(),
                _ => "ok".to_string(),
            };
            (id.to_string(), v)
        })
        .collect();
    let got: Vec<(String, String)> = lines.iter().map(|l| verdict(l)).collect();
    let want_code = if bad.is_some() { 1 } else { 0 };
    if got == want && code == want_code {
        Ok(())
    } else {
        let wrong: Vec<String> = lines
            .iter()
            .zip(&want)
            .filter(|(l, w)| verdict(l) != **w)
            .map(|(l, w)| format!("said `{l}`, want `{}`", w.1))
            .collect();
        Err(format!(
            "{name}: {} exited {code} (want {want_code}), {} lines for {} entries: {wrong:?}",
            script.display(),
            lines.len(),
            want.len()
        ))
    }
}

/// Core and the auditor agree on `kind` for the bad entry, and accept the good one. Then the two
/// independent verifiers read the same entries as bundle files: the rules verifier written from the
/// docs (`tests/js/verify_rules.mjs`) must name the same kind for the bad entry and `ok` for every
/// other entry; the integrity verifier (`tests/independent_verify.py`) must say `ok` for every entry
/// (the rows break rules, never signatures). Their disagreements are returned, not panicked on, so
/// one run lists every row that differs.
fn check(kind: &str, c: Case) -> Vec<String> {
    let Case { g, bad, good } = c;
    let bad_id = id_of(&bad);
    let mut with_bad = g.log.clone();
    with_bad.push(bad);
    let gid = g.rec.group();
    let mut failures = Vec::new();
    let js = "tests/js/verify_rules.mjs";
    let py = "tests/independent_verify.py";
    failures.extend(
        verifier_agrees(
            "node",
            js,
            &format!("{kind}-breaks"),
            &gid,
            &with_bad,
            Some((&bad_id, kind)),
        )
        .err(),
    );
    failures.extend(
        verifier_agrees(
            "python3",
            py,
            &format!("{kind}-breaks-py"),
            &gid,
            &with_bad,
            None,
        )
        .err(),
    );
    let (rec, out) = Record::from_entries(g.rec.group(), with_bad.clone());
    let core_kind = rec.rejected().get(&bad_id).map(|r| r.kind());
    let said: Vec<String> = out.rejected.iter().map(|r| r.reason.to_string()).collect();
    assert_eq!(core_kind, Some(kind), "{kind}: core said {said:?}");
    let report = audit(&bundle::encode(&g.rec.group(), &with_bad), 1).unwrap();
    assert!(!report.verified, "{kind}");
    let named: Vec<&str> = report
        .problems
        .iter()
        .filter(|p| p.entry_id.as_deref() == Some(bad_id.to_string().as_str()))
        .map(|p| p.kind.as_str())
        .collect();
    assert_eq!(
        named,
        [kind],
        "{kind}: the auditor said {:?}",
        report.problems
    );
    if let Some(good) = good {
        let good_id = id_of(&good);
        let mut with_good = g.log.clone();
        with_good.push(good);
        let (rec, out) = Record::from_entries(g.rec.group(), with_good.clone());
        let said: Vec<String> = out.rejected.iter().map(|r| r.reason.to_string()).collect();
        assert!(
            rec.contains(&good_id),
            "{kind}: the twin was refused: {said:?}"
        );
        let report = audit(&bundle::encode(&g.rec.group(), &with_good), 1).unwrap();
        assert!(report.verified, "{kind}: {:?}", report.problems);
        failures.extend(
            verifier_agrees("node", js, &format!("{kind}-keeps"), &gid, &with_good, None).err(),
        );
        failures.extend(
            verifier_agrees(
                "python3",
                py,
                &format!("{kind}-keeps-py"),
                &gid,
                &with_good,
                None,
            )
            .err(),
        );
    }
    failures
}

/// A rule's kind and how to build its case.
type Row = (&'static str, Box<dyn Fn() -> Case>);

fn rows() -> Vec<Row> {
    let mut v: Vec<Row> = Vec::new();
    v.push((
        "not_member",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge_as(&key(7), &message(g.thread, "hi"));
            let good = Some(g.forge(1, &message(g.thread, "hi")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "after_removal",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            g.write(1, Body::MemberLeave);
            let bad = g.forge(1, &message(g.thread, "still here"));
            let good = Some(g.forge(0, &message(g.thread, "still here")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "add_without_decision",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge(
                0,
                &Body::MemberAdd {
                    member: key(7).device_id(),
                    name: "X".into(),
                    needs: String::new(),
                },
            );
            let body = governance::group_proposal(
                &g.rec,
                Effect::Add {
                    member: key(7).device_id(),
                    name: "X".into(),
                    needs: String::new(),
                },
                "X",
            )
            .unwrap();
            let good = Some(g.forge(0, &body));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "removal_without_decision",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let p = g.proposal(Some(Effect::Remove { member: g.id(2) }));
            let bad = g.forge(
                0,
                &Body::MemberRemove {
                    member: g.id(2),
                    decision: p,
                },
            );
            let good = Some(g.forge(0, &stance(p, StanceKind::Agree, "")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "auditor_without_decision",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge(
                0,
                &Body::AuditorAdd {
                    device: key(8).device_id(),
                    name: "Inspector".into(),
                },
            );
            let body = governance::group_proposal(
                &g.rec,
                Effect::Auditor {
                    device: key(8).device_id(),
                    name: "Inspector".into(),
                },
                "Inspector",
            )
            .unwrap();
            Case {
                good: Some(g.forge(0, &body)),
                g,
                bad,
            }
        }),
    ));
    v.push((
        "below_policy",
        Box::new(|| {
            let g = G::new(3, Rule::Consent, 3);
            let p = |rule, quorum| Body::Proposal {
                thread: g.thread,
                title: "P".into(),
                text: String::new(),
                easy_read: "E".into(),
                rule,
                quorum,
                effect: None,
                closes: None,
            };
            let bad = g.forge(0, &p(Rule::Consent, 2));
            let good = Some(g.forge(0, &p(Rule::Consent, 3)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "already_closed",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let p = g.proposal(None);
            g.stance(0, p, StanceKind::Agree);
            g.stance(1, p, StanceKind::Agree);
            let close = g.outcome(p);
            g.write(0, close);
            let bad = g.forge(1, &stance(p, StanceKind::Block, "late"));
            let good = Some(g.forge(1, &message(g.thread, "late")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "outcome_mismatch",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let p = g.proposal(None);
            g.stance(0, p, StanceKind::Agree);
            g.stance(1, p, StanceKind::Block);
            let good_body = g.outcome(p);
            let bad = g.forge(
                0,
                &Body::Outcome {
                    proposal: p,
                    outcome: "done".into(),
                    decision: Decision::Passed,
                    counts: Counts {
                        agree: 2,
                        ..Counts::default()
                    },
                },
            );
            let good = Some(g.forge(0, &good_body));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_quorate",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let p = g.proposal(None);
            g.stance(0, p, StanceKind::Agree);
            let bad = g.forge(0, &g.outcome(p));
            let good = Some(g.forge(1, &stance(p, StanceKind::Agree, "")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "unknown_referent",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge(0, &message(EntryId([5; 32]), "where"));
            let good = Some(g.forge(0, &message(g.thread, "here")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "empty_text",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge(0, &message(g.thread, "  "));
            let good = Some(g.forge(0, &message(g.thread, "words")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "reason_needed",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let p = g.proposal(None);
            let bad = g.forge(1, &stance(p, StanceKind::Block, " "));
            let good = Some(g.forge(1, &stance(p, StanceKind::Block, "it harms us")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "sealed_thread_only",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let sealed = g.write(0, g.sealed_thread(&[0, 1]));
            let bad = g.forge(0, &message(sealed, "in the open"));
            let good = Some(g.forge(0, &message(g.thread, "in the open")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "already_member",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let add = |m| {
                governance::group_proposal(
                    &g.rec,
                    Effect::Add {
                        member: m,
                        name: "N".into(),
                        needs: String::new(),
                    },
                    "N",
                )
                .unwrap()
            };
            let bad = g.forge(0, &add(g.id(1)));
            let good = Some(g.forge(0, &add(key(7).device_id())));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "remove_self",
        Box::new(|| {
            let g = G::new(3, Rule::Consent, 1);
            let rm =
                |m| governance::group_proposal(&g.rec, Effect::Remove { member: m }, "N").unwrap();
            let bad = g.forge(0, &rm(g.id(0)));
            let good = Some(g.forge(0, &rm(g.id(1))));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "zero_quorum",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let set = |quorum| {
                governance::group_proposal(
                    &g.rec,
                    Effect::Policy {
                        rule: Rule::Majority,
                        quorum,
                    },
                    "",
                )
                .unwrap()
            };
            let bad = g.forge(0, &set(0));
            let good = Some(g.forge(0, &set(2)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_confirm",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let m = g.write(0, message(g.thread, "my point"));
            let u = g.write(
                1,
                Body::Understand {
                    target: m,
                    text: "you mean this".into(),
                },
            );
            let bad = g.forge(2, &Body::Confirm { target: u });
            let good = Some(g.forge(0, &Body::Confirm { target: u }));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "correct_not_own",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let m = g.write(0, message(g.thread, "my point"));
            let fix = Body::Correct {
                target: m,
                text: "what I meant".into(),
            };
            let bad = g.forge(1, &fix);
            let good = Some(g.forge(0, &fix));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_active",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let act = |owner| Body::Action {
                thread: g.thread,
                text: "Book the room".into(),
                owner,
                due: None,
            };
            let bad = g.forge(0, &act(key(7).device_id()));
            let good = Some(g.forge(0, &act(g.id(1))));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_date",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let act = |due: &str| Body::Action {
                thread: g.thread,
                text: "Book the room".into(),
                owner: g.id(1),
                due: Some(due.into()),
            };
            let bad = g.forge(0, &act("2026-13-01"));
            let good = Some(g.forge(0, &act("2026-12-01")));
            Case { g, bad, good }
        }),
    ));
    // B's action, with B's own "done" in the record.
    let done_by_owner = || {
        let mut g = G::new(2, Rule::Consent, 1);
        let act = g.write(
            0,
            Body::Action {
                thread: g.thread,
                text: "Book the room".into(),
                owner: g.id(1),
                due: None,
            },
        );
        let done = g.write(1, Body::ActionDone { action: act });
        (g, done)
    };
    v.push((
        "undo_not_own",
        Box::new(move || {
            let (g, done) = done_by_owner();
            let undo = Body::ActionUndo { done };
            let bad = g.forge(0, &undo);
            let good = Some(g.forge(1, &undo));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "undo_too_late",
        Box::new(move || {
            let (mut g, done) = done_by_owner();
            let undo = Body::ActionUndo { done };
            // Forged at the done's time + 1 ms + the window: within a day is the twin.
            g.t += roundtable_core::UNDO_WINDOW_MS - 2;
            let good = Some(g.forge(1, &undo));
            g.t += 2;
            let bad = g.forge(1, &undo);
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_encryption_key",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge(1, &Body::Profile { enc_key: [0; 32] });
            let good = Some(g.forge(1, &Body::Profile { enc_key: [1; 32] }));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "starter_not_reader",
        Box::new(|| {
            let g = G::new(3, Rule::Consent, 1);
            let bad = g.forge(0, &g.sealed_thread(&[1, 2]));
            let good = Some(g.forge(0, &g.sealed_thread(&[0, 2])));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "wrong_key",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let mut body = g.sealed_thread(&[0, 1]);
            if let Body::SealedThread { wraps, .. } = &mut body {
                wraps[0].key = [0x77; 32];
            }
            let bad = g.forge(0, &body);
            let good = Some(g.forge(0, &g.sealed_thread(&[0, 1])));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "reader_only",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let sealed = Body::Sealed {
                thread: t,
                epoch: t,
                ct: vec![1; BUCKETS[0] + NONCE_LEN + TAG_LEN],
            };
            let bad = g.forge(2, &sealed);
            let good = Some(g.forge(1, &sealed));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_padding",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let sealed = |len| Body::Sealed {
                thread: t,
                epoch: t,
                ct: vec![1; len],
            };
            let bad = g.forge(1, &sealed(BUCKETS[0] + NONCE_LEN + TAG_LEN + 1));
            let good = Some(g.forge(1, &sealed(BUCKETS[0] + NONCE_LEN + TAG_LEN)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "unknown_epoch",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let sealed = |epoch| Body::Sealed {
                thread: t,
                epoch,
                ct: vec![1; BUCKETS[0] + NONCE_LEN + TAG_LEN],
            };
            let bad = g.forge(1, &sealed(g.thread));
            let good = Some(g.forge(1, &sealed(t)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "already_reader",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let ids: Vec<_> = (0..3).map(|i| g.id(i)).collect();
            let add = |m: usize| Body::ReaderAdd {
                thread: t,
                member: ids[m],
                wraps: vec![EpochWrap {
                    epoch: t,
                    key: enc(m),
                    enc: [9; 32],
                    ct: vec![7; WRAPPED_KEY_LEN],
                }],
            };
            let bad = g.forge(0, &add(1));
            g.write(
                1,
                Body::ReaderAgree {
                    thread: t,
                    member: ids[2],
                },
            );
            let good = Some(g.forge(0, &add(2)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_agreed",
        Box::new(|| {
            let mut g = G::new(4, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1, 2]));
            let newcomer = g.id(3);
            let agree = |g: &mut G, i| {
                g.write(
                    i,
                    Body::ReaderAgree {
                        thread: t,
                        member: newcomer,
                    },
                )
            };
            // Reader 2 agrees and then says no: 2's "no" takes it back. Reader 0 takes reader 1
            // out, who is still asked: their words were written for the readers they were among.
            agree(&mut g, 2);
            g.write(
                2,
                Body::Decline {
                    thread: t,
                    member: newcomer,
                    reason: "ask the person it is about first".into(),
                },
            );
            let rekey = g.write(
                0,
                Body::Rekey {
                    thread: t,
                    removes: Some(g.id(1)),
                    commit: [4; 32],
                    wraps: g.wraps(&[0, 2]),
                },
            );
            let mut wraps: Vec<EpochWrap> = [t, rekey]
                .into_iter()
                .map(|epoch| EpochWrap {
                    epoch,
                    key: enc(3),
                    enc: [9; 32],
                    ct: vec![7; WRAPPED_KEY_LEN],
                })
                .collect();
            wraps.sort_by_key(|w| w.epoch);
            let add = Body::ReaderAdd {
                thread: t,
                member: newcomer,
                wraps,
            };
            let bad = g.forge(0, &add);
            agree(&mut g, 1);
            agree(&mut g, 2);
            let good = Some(g.forge(0, &add));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "last_reader",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            g.write(
                0,
                Body::Rekey {
                    thread: t,
                    removes: Some(g.id(1)),
                    commit: [4; 32],
                    wraps: g.wraps(&[0]),
                },
            );
            let bad = g.forge(
                0,
                &Body::Rekey {
                    thread: t,
                    removes: Some(g.id(0)),
                    commit: [5; 32],
                    wraps: g.wraps(&[0]),
                },
            );
            let good = Some(g.forge(
                0,
                &Body::Rekey {
                    thread: t,
                    removes: None,
                    commit: [5; 32],
                    wraps: g.wraps(&[0]),
                },
            ));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_asked",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let asker = g.id(2);
            let decline = move || Body::Decline {
                thread: t,
                member: asker,
                reason: "not now".into(),
            };
            let bad = g.forge(0, &decline());
            g.write(
                2,
                Body::Ask {
                    thread: t,
                    why: "I support M1".into(),
                },
            );
            let good = Some(g.forge(0, &decline()));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "would_unseal",
        Box::new(|| {
            let mut g = G::new(2, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let sealed = g.write(
                0,
                Body::Sealed {
                    thread: t,
                    epoch: t,
                    ct: vec![1; BUCKETS[0] + NONCE_LEN + TAG_LEN],
                },
            );
            let m = g.write(0, message(g.thread, "open words"));
            let restate = |target| Body::Understand {
                target,
                text: "you mean".into(),
            };
            let bad = g.forge(1, &restate(sealed));
            let good = Some(g.forge(1, &restate(m)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_a_reader",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let rekey = |removes, wraps| Body::Rekey {
                thread: t,
                removes,
                commit: [6; 32],
                wraps,
            };
            let bad = g.forge(0, &rekey(Some(g.id(2)), g.wraps(&[0, 1])));
            let good = Some(g.forge(0, &rekey(Some(g.id(1)), g.wraps(&[0]))));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "wrong_wraps",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1]));
            let rekey = |wraps| Body::Rekey {
                thread: t,
                removes: Some(g.id(1)),
                commit: [6; 32],
                wraps,
            };
            let bad = g.forge(0, &rekey(g.wraps(&[0, 1])));
            let good = Some(g.forge(0, &rekey(g.wraps(&[0]))));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "stale_epoch",
        Box::new(|| {
            let mut g = G::new(3, Rule::Consent, 1);
            let t = g.write(0, g.sealed_thread(&[0, 1, 2]));
            let next = g.write(
                0,
                Body::Rekey {
                    thread: t,
                    removes: Some(g.id(2)),
                    commit: [6; 32],
                    wraps: g.wraps(&[0, 1]),
                },
            );
            let sealed = |epoch| Body::Sealed {
                thread: t,
                epoch,
                ct: vec![1; BUCKETS[0] + NONCE_LEN + TAG_LEN],
            };
            let bad = g.forge(1, &sealed(t));
            let good = Some(g.forge(1, &sealed(next)));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "member_and_auditor",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let auditor = |device| {
                governance::group_proposal(
                    &g.rec,
                    Effect::Auditor {
                        device,
                        name: "Inspector".into(),
                    },
                    "Inspector",
                )
                .unwrap()
            };
            let bad = g.forge(0, &auditor(g.id(1)));
            let good = Some(g.forge(0, &auditor(key(8).device_id())));
            Case { g, bad, good }
        }),
    ));
    // Keepers (rules.md section 2b): key 30 named the group's keeper.
    v.push((
        "keeper_cannot_write",
        Box::new(|| {
            let g = with_keeper();
            let bad = g.forge_as(&key(30), &message(g.thread, "from the keeper"));
            let good = Some(g.forge(1, &message(g.thread, "from a member")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "already_keeper",
        Box::new(|| {
            let g = with_keeper();
            let bad = g.forge(0, &keeper_proposal(&g, key(30).device_id()));
            let good = Some(g.forge(0, &keeper_proposal(&g, key(31).device_id())));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_a_keeper",
        Box::new(|| {
            let g = with_keeper();
            let stop = |device| {
                governance::group_proposal(&g.rec, Effect::KeeperRemove { device }, "PC").unwrap()
            };
            let bad = g.forge(0, &stop(key(31).device_id()));
            let good = Some(g.forge(0, &stop(key(30).device_id())));
            Case { g, bad, good }
        }),
    ));
    // A member's devices (rules.md section 2a): M0's phone and tablet (keys 20 and 21) linked to M0.
    let devices = || {
        let mut g = G::new(2, Rule::Consent, 1);
        let (phone, tablet) = (key(20), key(21));
        g.link(0, &phone, "M0's phone");
        g.link(0, &tablet, "M0's tablet");
        (g, phone, tablet)
    };
    v.push((
        "device_revoked",
        Box::new(move || {
            let (mut g, phone, tablet) = devices();
            g.write(
                0,
                Body::DeviceRevoke {
                    device: phone.device_id(),
                },
            );
            // The stopped phone writes nothing more; M0's tablet goes on, as M0.
            let bad = g.forge_as(&phone, &message(g.thread, "from the lost phone"));
            let good = Some(g.forge_as(&tablet, &message(g.thread, "from the tablet")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "device_taken",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            // M1's own key, with M1's own signature of the link: still a member's, not M0's device.
            let bad = g.forge(0, &g.link_body(0, &g.keys[1], "M1"));
            let good = Some(g.forge(0, &g.link_body(0, &key(20), "M0's phone")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_device_proof",
        Box::new(move || {
            let (g, _, tablet) = devices();
            // The tablet (M0's) links a new device: the proof names the member, M0, not the tablet.
            let new = key(22);
            let for_tablet = Body::DeviceAdd {
                device: new.device_id(),
                name: "laptop".into(),
                proof: new.link_proof(&g.rec.group(), &tablet.device_id()).to_vec(),
            };
            let bad = g.forge_as(&tablet, &for_tablet);
            let good = Some(g.forge_as(&tablet, &g.link_body(0, &new, "laptop")));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "not_your_device",
        Box::new(move || {
            let (g, phone, tablet) = devices();
            let stop = Body::DeviceRevoke {
                device: phone.device_id(),
            };
            // M1 cannot stop M0's phone; M0's tablet can.
            let bad = g.forge(1, &stop);
            let good = Some(g.forge_as(&tablet, &stop));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_sequence",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge_at(&key(1), &message(g.thread, "skips"), 1, 0);
            let good = Some(g.forge_at(&key(1), &message(g.thread, "skips"), 0, 0));
            Case { g, bad, good }
        }),
    ));
    v.push((
        "bad_op_counter",
        Box::new(|| {
            let g = G::new(2, Rule::Consent, 1);
            let bad = g.forge_at(&key(1), &message(g.thread, "overlaps"), 0, -1);
            let good = Some(g.forge_at(&key(1), &message(g.thread, "overlaps"), 0, 5));
            Case { g, bad, good }
        }),
    ));
    v
}

#[test]
fn every_rule_has_one_kind_that_members_and_the_auditor_agree_on() {
    let rows = rows();
    let mut kinds: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), rows.len(), "one row per kind");
    let mut failures = Vec::new();
    for (kind, case) in rows {
        failures.extend(check(kind, case()));
    }
    assert!(
        failures.is_empty(),
        "the independent verifiers disagree on {} bundles:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// S9 holds for a proposal's closing day as for an action's due date, in every verifier.
#[test]
fn a_proposals_closing_day_is_checked_like_a_due_date() {
    let case = || {
        let g = G::new(2, Rule::Consent, 1);
        let (rule, quorum) = g.rec.policy().unwrap();
        let prop = |closes: &str| Body::Proposal {
            thread: g.thread,
            title: "Summer trip".into(),
            text: String::new(),
            easy_read: "We go to the sea.".into(),
            rule,
            quorum,
            effect: None,
            closes: Some(closes.into()),
        };
        let bad = g.forge(0, &prop("2026-12-32"));
        let good = Some(g.forge(0, &prop("2026-12-11")));
        Case { g, bad, good }
    };
    let failures = check("bad_date", case());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A file that is not a whole bundle: the rules verifier says why in one `bundle: KIND: reason` line
/// and exits 2, as `roundtable audit` does (docs/format.md section 11), never crashing.
#[test]
fn the_rules_verifier_refuses_a_damaged_bundle_in_one_line_with_exit_code_2() {
    use sha2::{Digest, Sha256};
    let g = G::new(2, Rule::Consent, 1);
    let whole = bundle::encode(&g.rec.group(), &g.log);
    let redigest = |mut b: Vec<u8>| {
        let n = b.len() - 32;
        let d = Sha256::digest(&b[..n]);
        b[n..].copy_from_slice(&d);
        b
    };
    let mut cut = whole.clone();
    cut.truncate(whole.len() - 10);
    let mut flipped = whole.clone();
    flipped[60] ^= 1;
    let mut count = whole.clone();
    count[41..49].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut fewer = whole.clone();
    fewer[41..49].copy_from_slice(&((g.log.len() as u64) - 1).to_le_bytes());
    let mut doc_kind = whole.clone();
    doc_kind[49] = 7;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not-a-bundle",
            b"not a bundle at all".to_vec(),
            "unreadable",
        ),
        ("header-only", whole[..49].to_vec(), "bundle_digest"),
        ("cut", cut, "bundle_digest"),
        ("flipped", flipped, "bundle_digest"),
        ("count", redigest(count), "bundle_count"),
        ("fewer", redigest(fewer), "trailing_bytes"),
        ("doc-kind", redigest(doc_kind), "unknown_doc_kind"),
    ];
    let script = root().join("tests/js/verify_rules.mjs");
    for (name, bytes, kind) in cases {
        let (code, lines) = run_verifier("node", &script, name, &bytes);
        assert_eq!(code, 2, "{name}: {lines:?}");
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!("bundle: {kind}: ")),
            "{name}: {lines:?}"
        );
    }
    // The whole bundle itself reads, and every entry is valid.
    let (code, lines) = run_verifier("node", &script, "whole", &whole);
    assert_eq!((code, lines.len()), (0, g.log.len()), "{lines:?}");
}

/// Runs `check` on every case and fails with every verifier disagreement at once.
fn check_all(cases: Vec<(&str, Case)>) {
    let mut failures = Vec::new();
    for (kind, case) in cases {
        failures.extend(check(kind, case));
    }
    assert!(
        failures.is_empty(),
        "the independent verifiers disagree on {} bundles:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A member's two devices (rules.md section 2a): `G::new(3)` with M0's phone (key 20) linked.
/// A group of two whose keeper is key 30 (named by both members' agree).
fn with_keeper() -> G {
    let mut g = G::new(2, Rule::Consent, 1);
    let p = g.proposal(Some(Effect::Keeper {
        device: key(30).device_id(),
        name: "Council PC".into(),
    }));
    for i in 0..2 {
        g.stance(i, p, StanceKind::Agree);
    }
    g.write(0, g.outcome(p));
    g
}

fn keeper_proposal(g: &G, device: roundtable_core::DeviceId) -> Body {
    governance::group_proposal(
        &g.rec,
        Effect::Keeper {
            device,
            name: "Council PC".into(),
        },
        "Council PC",
    )
    .unwrap()
}

/// rules.md sections 2a and 2b, D2: a key is one seat's only. A keeper's key cannot be added as a
/// member, linked, let in as an auditor, nor recover a seat; a member's id, a linked device or an
/// auditor's cannot be named a keeper. Every verifier names it `device_taken`.
#[test]
fn a_keepers_key_is_one_seat_only() {
    let mut cases: Vec<(&str, Case)> = Vec::new();
    let keeper = key(30);
    let add = |g: &G, member| {
        governance::group_proposal(
            &g.rec,
            Effect::Add {
                member,
                name: "K".into(),
                needs: String::new(),
            },
            "K",
        )
        .unwrap()
    };
    let g = with_keeper();
    let bad = g.forge(0, &add(&g, keeper.device_id()));
    let good = Some(g.forge(0, &add(&g, key(31).device_id())));
    cases.push(("device_taken", Case { g, bad, good }));
    let g = with_keeper();
    let bad = g.forge(0, &g.link_body(0, &keeper, "my box"));
    let good = Some(g.forge(0, &g.link_body(0, &key(31), "my box")));
    cases.push(("device_taken", Case { g, bad, good }));
    let g = with_keeper();
    let auditor = |g: &G, device| {
        governance::group_proposal(
            &g.rec,
            Effect::Auditor {
                device,
                name: "Inspector".into(),
            },
            "Inspector",
        )
        .unwrap()
    };
    let bad = g.forge(0, &auditor(&g, keeper.device_id()));
    let good = Some(g.forge(0, &auditor(&g, key(31).device_id())));
    cases.push(("device_taken", Case { g, bad, good }));
    let g = with_keeper();
    let bad = g.forge(0, &keeper_proposal(&g, g.id(1)));
    let good = Some(g.forge(0, &keeper_proposal(&g, key(31).device_id())));
    cases.push(("device_taken", Case { g, bad, good }));
    check_all(cases);
}

fn with_phone() -> (G, DeviceKey) {
    let mut g = G::new(3, Rule::Consent, 1);
    let phone = key(20);
    g.link(0, &phone, "M0's phone");
    (g, phone)
}

/// A linked device's entries are its member's: one stance per member whichever device wrote it, a
/// confirm of the member's own words, a sealed message of a reader, a correction of what the member
/// wrote on another device. Each twin is the linked device's entry, accepted by every verifier.
#[test]
fn a_linked_devices_entries_are_its_members() {
    let mut cases: Vec<(&str, Case)> = Vec::new();
    // M0 agrees on the first device, then blocks on the phone: M0's latest is the block, one seat.
    let (mut g, phone) = with_phone();
    let p = g.proposal(None);
    g.stance(0, p, StanceKind::Agree);
    g.write_as(&phone, stance(p, StanceKind::Block, "on second thought"));
    g.stance(1, p, StanceKind::Agree);
    let close = g.outcome(p);
    let Body::Outcome { counts, .. } = &close else {
        unreachable!()
    };
    assert_eq!(
        (counts.agree, counts.block, counts.total()),
        (1, 1, 2),
        "one stance per member: {counts:?}"
    );
    let bad = g.forge(
        1,
        &Body::Outcome {
            proposal: p,
            outcome: "done".into(),
            decision: Decision::NotPassed,
            counts: Counts {
                agree: 2,
                block: 1,
                ..Counts::default()
            },
        },
    );
    let good = Some(g.forge(1, &close));
    cases.push(("outcome_mismatch", Case { g, bad, good }));

    // M1 restates what M0 wrote on the first device: M0's phone confirms it, M2 cannot.
    let (mut g, phone) = with_phone();
    let m = g.write(0, message(g.thread, "my point"));
    let u = g.write(
        1,
        Body::Understand {
            target: m,
            text: "you mean this".into(),
        },
    );
    let bad = g.forge(2, &Body::Confirm { target: u });
    let good = Some(g.forge_as(&phone, &Body::Confirm { target: u }));
    cases.push(("bad_confirm", Case { g, bad, good }));

    // M0's phone corrects what M0 wrote on the first device; M1 cannot.
    let (mut g, phone) = with_phone();
    let m = g.write(0, message(g.thread, "my point"));
    let fix = Body::Correct {
        target: m,
        text: "what I meant".into(),
    };
    let bad = g.forge(1, &fix);
    let good = Some(g.forge_as(&phone, &fix));
    cases.push(("correct_not_own", Case { g, bad, good }));

    // M0 (a reader) writes in the sealed thread from the phone; M2 (no reader) cannot.
    let (mut g, phone) = with_phone();
    let t = g.write(0, g.sealed_thread(&[0, 1]));
    let sealed = Body::Sealed {
        thread: t,
        epoch: t,
        ct: vec![1; BUCKETS[0] + NONCE_LEN + TAG_LEN],
    };
    let bad = g.forge(2, &sealed);
    let good = Some(g.forge_as(&phone, &sealed));
    cases.push(("reader_only", Case { g, bad, good }));

    // M0's phone cannot propose M0's removal (it is M0); it may propose M1's.
    let (g, phone) = with_phone();
    let rm = |m| governance::group_proposal(&g.rec, Effect::Remove { member: m }, "N").unwrap();
    let bad = g.forge_as(&phone, &rm(g.id(0)));
    let good = Some(g.forge_as(&phone, &rm(g.id(1))));
    cases.push(("remove_self", Case { g, bad, good }));
    check_all(cases);
}

/// `device_taken`, `not_your_device` and `device_revoked` in their other forms (rules.md section 2a,
/// D1, D2, D4).
#[test]
fn a_device_is_one_members_and_only_they_stop_it() {
    let mut cases: Vec<(&str, Case)> = Vec::new();
    // Linked to M0, the phone is nobody else's: M1 cannot link it, even with its proof for M1.
    let (g, phone) = with_phone();
    let bad = g.forge(1, &g.link_body(1, &phone, "M1's phone"));
    let good = Some(g.forge(1, &g.link_body(1, &key(23), "M1's phone")));
    cases.push(("device_taken", Case { g, bad, good }));

    // Nor can the group add it as a member of its own.
    let (g, phone) = with_phone();
    let add = |m| {
        governance::group_proposal(
            &g.rec,
            Effect::Add {
                member: m,
                name: "N".into(),
                needs: String::new(),
            },
            "N",
        )
        .unwrap()
    };
    let bad = g.forge(1, &add(phone.device_id()));
    let good = Some(g.forge(1, &add(key(23).device_id())));
    cases.push(("device_taken", Case { g, bad, good }));

    // A device never stops itself; another of the member's devices does.
    let (mut g, phone) = with_phone();
    let tablet = key(21);
    g.link(0, &tablet, "M0's tablet");
    let stop = Body::DeviceRevoke {
        device: phone.device_id(),
    };
    let bad = g.forge_as(&phone, &stop);
    let good = Some(g.forge_as(&tablet, &stop));
    cases.push(("not_your_device", Case { g, bad, good }));

    // Not twice; the tablet may stop M0's first device (the laptop was stolen).
    let (mut g, phone) = with_phone();
    g.write(
        0,
        Body::DeviceRevoke {
            device: phone.device_id(),
        },
    );
    let tablet = key(21);
    g.link(0, &tablet, "M0's tablet");
    let bad = g.forge(
        0,
        &Body::DeviceRevoke {
            device: phone.device_id(),
        },
    );
    let good = Some(g.forge_as(&tablet, &Body::DeviceRevoke { device: g.id(0) }));
    cases.push(("not_your_device", Case { g, bad, good }));

    // Once the first device is stopped, it writes nothing more; M0 is still a member, on the phone.
    let (mut g, phone) = with_phone();
    g.write_as(&phone, Body::DeviceRevoke { device: g.id(0) });
    let bad = g.forge(0, &message(g.thread, "the thief"));
    let good = Some(g.forge_as(&phone, &message(g.thread, "M0 again")));
    cases.push(("device_revoked", Case { g, bad, good }));
    check_all(cases);
}

/// What a device wrote apart, concurrently with its stop, is valid but void (rules.md section 2a):
/// the phone's block, written offline before M0 stopped the phone, counts for nothing in the tally.
#[test]
fn a_stance_written_concurrently_with_its_devices_stop_counts_for_nothing() {
    let (mut g, phone) = with_phone();
    let p = g.proposal(None);
    // The phone blocks offline, on the heads before the stop; the stop does not see it.
    let block = g.forge_as(&phone, &stance(p, StanceKind::Block, "from the old copy"));
    g.write(
        0,
        Body::DeviceRevoke {
            device: phone.device_id(),
        },
    );
    g.apply(block);
    g.stance(1, p, StanceKind::Agree);
    g.stance(2, p, StanceKind::Agree);
    let close = |counts, decision| Body::Outcome {
        proposal: p,
        outcome: "done".into(),
        decision,
        counts,
    };
    let counted = Counts {
        agree: 2,
        block: 1,
        ..Counts::default()
    };
    let bad = g.forge(1, &close(counted, Decision::NotPassed));
    let not_counted = Counts {
        agree: 2,
        ..Counts::default()
    };
    let good = Some(g.forge(1, &close(not_counted, Decision::Passed)));
    check_all(vec![("outcome_mismatch", Case { g, bad, good })]);
}

/// rules.md section 2a, D2: a proposal to add a device linked to a member as an auditor is refused
/// `device_taken`, as one to add it as a member is.
#[test]
fn a_linked_device_cannot_be_proposed_as_an_auditor() {
    let (g, phone) = with_phone();
    let auditor = |device| {
        governance::group_proposal(
            &g.rec,
            Effect::Auditor {
                device,
                name: "Inspector".into(),
            },
            "Inspector",
        )
        .unwrap()
    };
    let bad = g.forge(1, &auditor(phone.device_id()));
    let good = Some(g.forge(1, &auditor(key(8).device_id())));
    check_all(vec![("device_taken", Case { g, bad, good })]);
}

/// rules.md section 2a, D5: the group recovers M0's seat with a new device (key 24). The proposal's
/// refusals, in their order; a recovery blocked by M0's phone does not pass; once one passes, M0's
/// phone and first device are stopped (what they write after is refused, what the phone wrote
/// concurrently is void) and the new device writes as M0.
#[test]
fn a_group_recovers_a_members_seat() {
    let fresh = || key(24);
    let recover = |g: &G, member: usize, device: &DeviceKey, signer: &DeviceKey, name: &str| {
        let effect = Effect::Recover {
            member: g.id(member),
            device: device.device_id(),
            name: name.into(),
            proof: signer.link_proof(&g.rec.group(), &g.id(member)),
        };
        governance::group_proposal(&g.rec, effect, "M0").unwrap()
    };
    let mut cases: Vec<(&str, Case)> = Vec::new();

    // Signed by another key than the new device: nobody binds a key they do not hold.
    let (g, _) = with_phone();
    let bad = g.forge(1, &recover(&g, 0, &fresh(), &key(25), "M0's new phone"));
    let good = Some(g.forge(1, &recover(&g, 0, &fresh(), &fresh(), "M0's new phone")));
    cases.push(("bad_device_proof", Case { g, bad, good }));

    // A device linked to M0 already, or a member's id: taken.
    let (g, phone) = with_phone();
    let bad = g.forge(1, &recover(&g, 0, &phone, &phone, "again"));
    let good = Some(g.forge(1, &recover(&g, 0, &fresh(), &fresh(), "again")));
    cases.push(("device_taken", Case { g, bad, good }));
    let (g, _) = with_phone();
    let m2 = key(2);
    let bad = g.forge(1, &recover(&g, 0, &m2, &m2, "M2's key"));
    let good = Some(g.forge(1, &recover(&g, 0, &fresh(), &fresh(), "new")));
    cases.push(("device_taken", Case { g, bad, good }));

    // An auditor's device: an auditor is never a member's device.
    let (mut g, _) = with_phone();
    let inspector = key(8);
    let p = g.proposal(Some(Effect::Auditor {
        device: inspector.device_id(),
        name: "Inspector".into(),
    }));
    for i in 0..3 {
        g.stance(i, p, StanceKind::Agree);
    }
    g.write(0, g.outcome(p));
    let bad = g.forge(1, &recover(&g, 0, &inspector, &inspector, "new"));
    let good = Some(g.forge(1, &recover(&g, 0, &fresh(), &fresh(), "new")));
    cases.push(("member_and_auditor", Case { g, bad, good }));

    // Someone who never was a member, with their own proof.
    let (g, _) = with_phone();
    let stranger = key(7);
    let for_stranger = Effect::Recover {
        member: stranger.device_id(),
        device: fresh().device_id(),
        name: "new".into(),
        proof: fresh().link_proof(&g.rec.group(), &stranger.device_id()),
    };
    let bad = g.forge(
        1,
        &governance::group_proposal(&g.rec, for_stranger, "X").unwrap(),
    );
    let good = Some(g.forge(1, &recover(&g, 0, &fresh(), &fresh(), "new")));
    cases.push(("not_active", Case { g, bad, good }));

    // M0's phone is only offline: its block stops the recovery, even with M1 and M2 agreeing.
    let (mut g, phone) = with_phone();
    let p = g.write(1, recover(&g, 0, &fresh(), &fresh(), "M0's new phone"));
    g.stance(1, p, StanceKind::Agree);
    g.stance(2, p, StanceKind::Agree);
    g.write_as(
        &phone,
        stance(p, StanceKind::Block, "I still have my phone"),
    );
    let (counts, decision) = g.rec.recount_now(&p);
    assert_eq!(decision, Decision::NotPassed);
    let close = |decision| Body::Outcome {
        proposal: p,
        outcome: "done".into(),
        decision,
        counts,
    };
    let bad = g.forge(1, &close(Decision::Passed));
    let good = Some(g.forge(1, &close(Decision::NotPassed)));
    cases.push(("outcome_mismatch", Case { g, bad, good }));

    // A recovery that passes: the phone's offline block on another proposal, concurrent with the
    // close, counts for nothing; the phone and M0's first device write nothing more; the new device
    // writes as M0.
    let passed = || {
        let (mut g, phone) = with_phone();
        let open = g.proposal(None);
        let offline = g.forge_as(
            &phone,
            &stance(open, StanceKind::Block, "from the old copy"),
        );
        let p = g.write(1, recover(&g, 0, &fresh(), &fresh(), "M0's new phone"));
        g.stance(1, p, StanceKind::Agree);
        g.stance(2, p, StanceKind::Agree);
        g.write(1, g.outcome(p));
        g.apply(offline);
        (g, phone, open)
    };
    let (g, phone, _) = passed();
    let bad = g.forge_as(&phone, &message(g.thread, "from the lost phone"));
    let good = Some(g.forge_as(&fresh(), &message(g.thread, "M0, back")));
    cases.push(("device_revoked", Case { g, bad, good }));
    let (g, _, _) = passed();
    let bad = g.forge(0, &message(g.thread, "the first device"));
    let good = Some(g.forge_as(&fresh(), &message(g.thread, "M0, back")));
    cases.push(("device_revoked", Case { g, bad, good }));
    let (mut g, _, open) = passed();
    g.stance(1, open, StanceKind::Agree);
    g.stance(2, open, StanceKind::Agree);
    let close = |counts, decision| Body::Outcome {
        proposal: open,
        outcome: "done".into(),
        decision,
        counts,
    };
    let counted = Counts {
        agree: 2,
        block: 1,
        ..Counts::default()
    };
    let bad = g.forge(1, &close(counted, Decision::NotPassed));
    let not_counted = Counts {
        agree: 2,
        ..Counts::default()
    };
    let good = Some(g.forge(1, &close(not_counted, Decision::Passed)));
    cases.push(("outcome_mismatch", Case { g, bad, good }));
    check_all(cases);
}

/// A reader who publishes a new encryption key (the group recovered them onto a new device) makes
/// every epoch whose key went to the old one stale (format.md section 10, step 7): no message may use
/// it, even after the reader is sent its key again for the new one; a new epoch may.
#[test]
fn a_readers_new_key_makes_the_old_epochs_stale() {
    let new_key = [0x77; 32];
    let setup = || {
        let mut g = G::new(3, Rule::Consent, 1);
        let t = g.write(0, g.sealed_thread(&[0, 1]));
        g.write(1, Body::Profile { enc_key: new_key });
        (g, t)
    };
    let sealed = |thread, epoch| Body::Sealed {
        thread,
        epoch,
        ct: vec![1; BUCKETS[0] + NONCE_LEN + TAG_LEN],
    };
    let send_again = |g: &G, thread, key| Body::ReaderAdd {
        thread,
        member: g.id(1),
        wraps: vec![EpochWrap {
            epoch: thread,
            key,
            enc: [9; 32],
            ct: vec![7; WRAPPED_KEY_LEN],
        }],
    };
    let mut cases: Vec<(&str, Case)> = Vec::new();

    // The old epoch is stale; the reader lacks its key for the new one, and may be sent it.
    let (g, t) = setup();
    let bad = g.forge(0, &sealed(t, t));
    let good = Some(g.forge(0, &send_again(&g, t, new_key)));
    cases.push(("stale_epoch", Case { g, bad, good }));

    // Sent for the new key, the old epoch stays stale; once sent, it is not lacking any more.
    let (mut g, t) = setup();
    g.write(0, send_again(&g, t, new_key));
    let bad = g.forge(0, &sealed(t, t));
    let rekey = Body::Rekey {
        thread: t,
        removes: None,
        commit: [6; 32],
        wraps: {
            let mut w = vec![
                g.wrap(0),
                Wrap {
                    key: new_key,
                    ..g.wrap(1)
                },
            ];
            w.sort_by_key(|w| w.member);
            w
        },
    };
    let good = Some(g.forge(0, &rekey));
    cases.push(("stale_epoch", Case { g, bad, good }));
    let (mut g, t) = setup();
    g.write(0, send_again(&g, t, new_key));
    let bad = g.forge(0, &send_again(&g, t, new_key));
    let good = Some(g.forge(0, &rekey));
    cases.push(("already_reader", Case { g, bad, good }));

    // A wrap for the key the reader no longer publishes is the wrong key.
    let (g, t) = setup();
    let bad = g.forge(0, &send_again(&g, t, enc(1)));
    let good = Some(g.forge(0, &send_again(&g, t, new_key)));
    cases.push(("wrong_key", Case { g, bad, good }));
    check_all(cases);
}
