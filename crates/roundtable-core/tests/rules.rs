//! One test per validity rule: each builds the entry the rule must refuse (often by hand, as a hostile
//! peer would, with `build_change` and `Entry::sign`), checks the exact `Invalid` kind it gets, and
//! checks that the valid entries around it are accepted.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::change::MAGIC;
use roundtable_core::record::Rejection;
use roundtable_core::{
    Body, Counts, Decision, DeviceId, DeviceKey, DocRef, Effect, Entry, EntryId, GroupId, Ingested,
    Invalid, Record, Refused, Rule, StanceKind, Status, governance,
};
use sha2::{Digest, Sha256};

// ----- helpers -----

fn key() -> DeviceKey {
    DeviceKey::generate().expect("the OS random generator works")
}

/// A group as one device sees it, plus every entry it holds (what a store would keep).
struct World {
    group: GroupId,
    genesis: Entry,
    rec: Record,
    log: Vec<Entry>,
    time: i64,
    /// Every key that has been a member, so the group can vote.
    keys: BTreeMap<DeviceId, DeviceKey>,
}

fn copy(k: &DeviceKey) -> DeviceKey {
    DeviceKey::from_secret(&k.secret_bytes())
}

impl World {
    /// `keys[0]` creates the group and the group adds every other key as a member.
    fn new(keys: &[&DeviceKey]) -> World {
        let (rec, genesis) =
            Record::create(keys[0], "Board", Rule::Consent, 1, "Member 0", "", 0).unwrap();
        let mut w = World {
            group: rec.group(),
            genesis: genesis.clone(),
            rec,
            log: vec![genesis],
            time: 0,
            keys: BTreeMap::new(),
        };
        w.keys.insert(keys[0].device_id(), copy(keys[0]));
        for (i, k) in keys.iter().enumerate().skip(1) {
            w.add(keys[0], k, &format!("Member {i}"));
        }
        w
    }

    /// `by` proposes `effect`; every active member agrees and `by` closes it.
    fn decide(&mut self, by: &DeviceKey, effect: Effect) -> (EntryId, EntryId, Decision) {
        let body = governance::group_proposal(&self.rec, effect, "them").unwrap();
        let p = self.write(by, body);
        let voters: Vec<DeviceKey> = self
            .rec
            .members()
            .into_iter()
            .filter(|m| m.status == Status::Active)
            .map(|m| copy(&self.keys[&m.id]))
            .collect();
        for v in &voters {
            self.stance(v, p, StanceKind::Agree);
        }
        let (o, d) = self.close(by, p);
        (p, o, d)
    }

    fn tick(&mut self) -> i64 {
        self.time += 1;
        self.time
    }

    /// Writes through the engine's own checks; the write must be accepted.
    fn write(&mut self, k: &DeviceKey, body: Body) -> EntryId {
        let t = self.tick();
        let (id, e) = self
            .rec
            .author(k, body.clone(), t)
            .unwrap_or_else(|e| panic!("{body:?} was refused: {e}"));
        assert!(self.rec.contains(&id));
        self.log.push(e);
        id
    }

    /// The group adds (or re-adds) `who`, everyone agreeing; returns the outcome.
    fn add(&mut self, by: &DeviceKey, who: &DeviceKey, name: &str) -> EntryId {
        self.keys.insert(who.device_id(), copy(who));
        let (_, o, d) = self.decide(
            by,
            Effect::Add {
                member: who.device_id(),
                name: name.into(),
                needs: String::new(),
            },
        );
        assert_eq!(d, Decision::Passed);
        o
    }

    fn thread(&mut self, k: &DeviceKey) -> EntryId {
        self.write(
            k,
            Body::Thread {
                title: "Housing".into(),
            },
        )
    }

    fn proposal(&mut self, k: &DeviceKey, thread: EntryId, removes: Option<DeviceId>) -> EntryId {
        self.write(k, proposal_body(thread, removes))
    }

    fn stance(&mut self, k: &DeviceKey, proposal: EntryId, stance: StanceKind) -> EntryId {
        self.write(k, stance_body(proposal, stance, "my reason", None))
    }

    /// Closes with the engine's own recount.
    fn close(&mut self, k: &DeviceKey, proposal: EntryId) -> (EntryId, Decision) {
        let (counts, decision) = self.rec.recount_now(&proposal);
        let id = self.write(
            k,
            Body::Outcome {
                proposal,
                outcome: "closed".into(),
                decision,
                counts,
            },
        );
        (id, decision)
    }

    /// Builds and signs an entry as `k` on the current heads without asking the engine.
    fn forge(&mut self, k: &DeviceKey, body: &Body) -> (EntryId, Entry) {
        let seq = seq_of(&self.rec, &k.device_id()) + 1;
        let t = self.tick();
        forge_on(
            &self.rec,
            &self.genesis,
            k.device_id(),
            k,
            body,
            seq,
            self.group,
            t,
        )
    }

    /// Forges `body` as `k` and checks that a fresh device holding this one's entries refuses it with
    /// `kind`. (A fresh device each time: two signed entries at one position of a device are a fork.)
    fn refuse(&mut self, k: &DeviceKey, body: &Body, kind: &str) -> Invalid {
        let (id, entry) = self.forge(k, body);
        let mut other = self.replica();
        refused(&mut other, id, entry, kind)
    }

    /// A fresh device that holds everything this one holds.
    fn replica(&self) -> Record {
        let (r, out) = Record::from_entries(self.group, self.log.clone());
        assert!(out.rejected.is_empty() && out.pending.is_empty());
        r
    }
}

fn proposal_body(thread: EntryId, removes: Option<DeviceId>) -> Body {
    Body::Proposal {
        thread,
        title: "Proposal".into(),
        text: "We do this.".into(),
        easy_read: "We do this.".into(),
        rule: Rule::Consent,
        quorum: 2,
        effect: removes.map(|member| Effect::Remove { member }),
        closes: None,
    }
}

fn stance_body(
    proposal: EntryId,
    stance: StanceKind,
    reason: &str,
    on_behalf: Option<DeviceId>,
) -> Body {
    Body::Stance {
        proposal,
        stance,
        reason: reason.into(),
        on_behalf,
    }
}

/// The highest sequence number of `dev` among the record's valid entries.
fn seq_of(rec: &Record, dev: &DeviceId) -> u64 {
    rec.causal_order()
        .iter()
        .filter(|h| rec.entry_device(h).as_ref() == Some(dev))
        .filter_map(|h| rec.entry(h))
        .map(|(_, m)| m.seq)
        .max()
        .unwrap_or(0)
}

/// Builds a change by hand on the heads of `rec`: `actor` is who the change claims wrote it, `signer`
/// the key that signs it for `group`.
#[allow(clippy::too_many_arguments)]
fn forge_on(
    rec: &Record,
    genesis: &Entry,
    actor: DeviceId,
    signer: &DeviceKey,
    body: &Body,
    seq: u64,
    group: GroupId,
    time_ms: i64,
) -> (EntryId, Entry) {
    let deps = rec.heads();
    let max_op = deps
        .iter()
        .map(|d| rec.entry(d).expect("a head is valid").1.max_op)
        .max()
        .unwrap_or(0);
    let containers = decode_change(&genesis.parse().unwrap().change, &BTreeMap::new())
        .unwrap()
        .1;
    let frame = ChangeFrame {
        actor,
        seq,
        start_op: NonZeroU64::new(max_op + 1).unwrap(),
        deps,
        time_ms,
    };
    let change = build_change(body, &frame, &containers).unwrap();
    let hash = EntryId::from(change.hash());
    let entry = Entry::sign(
        signer,
        &group,
        DocRef::Public,
        change.raw_bytes().to_vec(),
        &hash,
    );
    (hash, entry)
}

fn rejection<'a>(out: &'a Ingested, id: &EntryId) -> &'a Rejection {
    out.rejected
        .iter()
        .find(|r| r.id == *id)
        .unwrap_or_else(|| panic!("{id:?} was not rejected: {out:?}"))
}

/// Ingests one entry that must be refused; returns the reason after checking its kind, that nothing
/// was applied, and (for sig-valid entries) that the record quarantined it with the same reason.
fn refused(rec: &mut Record, id: EntryId, entry: Entry, kind: &str) -> Invalid {
    let heads = rec.heads();
    let out = rec.ingest(vec![entry]);
    assert!(out.accepted.is_empty(), "{out:?}");
    assert!(out.pending.is_empty(), "{out:?}");
    assert!(!out.rebuild);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    let r = &out.rejected[0];
    if matches!(kind, "malformed" | "bad_signature") {
        // Keyed by its own bytes, so a forged copy never shares the real entry's id.
        assert_eq!(r.id, digest_id(&r.entry));
        assert_ne!(r.id, id);
    } else {
        assert_eq!(r.id, id);
    }
    assert_eq!(r.reason.kind(), kind, "{}", r.reason);
    assert!(!rec.contains(&id));
    assert_eq!(rec.heads(), heads);
    if !matches!(kind, "malformed" | "bad_signature") {
        assert_eq!(rec.rejected().get(&id), Some(&r.reason));
    }
    r.reason.clone()
}

fn digest_id(e: &Entry) -> EntryId {
    EntryId(Sha256::digest(e.encode()).into())
}

fn accepted(rec: &mut Record, id: EntryId, entry: Entry) {
    let out = rec.ingest(vec![entry]);
    assert_eq!(out.accepted, vec![id], "{out:?}");
    assert!(out.rejected.is_empty() && out.pending.is_empty() && !out.rebuild);
    assert!(rec.contains(&id));
}

fn refused_kind(r: Result<(EntryId, Entry), Refused>) -> &'static str {
    match r {
        Err(Refused::Invalid(i)) => i.kind(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A change with a correct header and checksum around `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut chunk = vec![1u8];
    let mut n = body.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            chunk.push(b);
            break;
        }
        chunk.push(b | 0x80);
    }
    chunk.extend_from_slice(body);
    let digest = Sha256::digest(&chunk);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&digest[..4]);
    out.extend_from_slice(&chunk);
    out
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ----- signatures -----

#[test]
fn forged_signature_is_rejected() {
    let (ana, ben) = (key(), key());
    let mut w = World::new(&[&ana, &ben]);
    let mut other = w.replica();

    let (id, good) = w.forge(
        &ben,
        &Body::Thread {
            title: "Rent".into(),
        },
    );

    // One flipped bit anywhere in the signature.
    for i in [0, 31, 32, 63] {
        let mut bad = good.clone();
        bad.signature[i] ^= 0x01;
        let why = refused(&mut other, id, bad, "bad_signature");
        assert!(why.to_string().contains("does not match"), "{why}");
    }

    // The right key, but signed for another group.
    let elsewhere = EntryId([7; 32]);
    let change = good.change.clone();
    let wrong_group = Entry::sign(&ben, &elsewhere, DocRef::Public, change, &id);
    refused(&mut other, id, wrong_group, "bad_signature");

    // The genuine entry is still accepted afterwards: a bad copy does not poison the id.
    accepted(&mut other, id, good);
    assert!(other.rejected().is_empty());
}

#[test]
fn change_signed_by_another_member_names_the_signer() {
    let (ana, ben) = (key(), key());
    let mut w = World::new(&[&ana, &ben]);
    // Ben has written, so his device is known to the record.
    w.thread(&ben);
    let mut other = w.replica();

    let body = Body::Thread {
        title: "Written by Ben, claimed as Ana's".into(),
    };
    let seq = seq_of(&w.rec, &ana.device_id()) + 1;
    let (id, entry) = forge_on(
        &w.rec,
        &w.genesis,
        ana.device_id(),
        &ben,
        &body,
        seq,
        w.group,
        99,
    );
    let why = refused(&mut other, id, entry.clone(), "bad_signature");
    let text = why.to_string();
    assert!(text.contains(&ben.device_id().to_string()), "{text}");
    assert!(text.contains(&ana.device_id().to_string()), "{text}");
    assert!(text.contains("signed by"), "{text}");
    refused(&mut w.rec, id, entry, "bad_signature");

    // Signed by an unknown key: refused, and no signer can be named.
    let stranger = key();
    let (id, entry) = forge_on(
        &w.rec,
        &w.genesis,
        ana.device_id(),
        &stranger,
        &body,
        seq,
        w.group,
        100,
    );
    let why = refused(&mut other, id, entry, "bad_signature");
    assert!(!why.to_string().contains(&stranger.device_id().to_string()));

    // Ana signing her own change is fine.
    let (id, entry) = forge_on(
        &w.rec,
        &w.genesis,
        ana.device_id(),
        &ana,
        &body,
        seq,
        w.group,
        101,
    );
    accepted(&mut other, id, entry);
}

// ----- membership -----

#[test]
fn non_member_author_is_rejected() {
    let (ana, ben, outsider) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    let thread = w.thread(&ana);

    for body in [
        Body::Thread {
            title: "Let me in".into(),
        },
        Body::Message {
            thread,
            text: "hello".into(),
        },
        Body::MemberAdd {
            member: outsider.device_id(),
            name: "Me".into(),
            needs: String::new(),
        },
    ] {
        w.refuse(&outsider, &body, "not_member");
        assert_eq!(refused_kind(w.rec.author(&outsider, body, 5)), "not_member");
    }

    // Once added, the same person may write.
    w.add(&ben, &outsider, "Dee");
    let (id, entry) = w.forge(
        &outsider,
        &Body::Thread {
            title: "Thanks".into(),
        },
    );
    let mut fresh = w.replica();
    accepted(&mut fresh, id, entry);
}

#[test]
fn write_after_leaving_or_removal_is_rejected() {
    let (ana, ben, cai) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    let thread = w.thread(&ana);

    // Ben leaves, then writes.
    w.write(&ben, Body::MemberLeave);
    let msg = Body::Message {
        thread,
        text: "one more thing".into(),
    };
    w.refuse(&ben, &msg, "after_removal");
    assert_eq!(
        refused_kind(w.rec.author(&ben, msg.clone(), 9)),
        "after_removal"
    );
    w.refuse(&ben, &Body::MemberLeave, "after_removal");

    // Cai is removed by a passed decision (Ana, the one other member left, agrees), then writes.
    let p = w.proposal(&ana, thread, Some(cai.device_id()));
    w.stance(&ana, p, StanceKind::Agree);
    w.stance(&cai, p, StanceKind::Agree);
    assert_eq!(w.close(&ana, p).1, Decision::Passed);
    w.refuse(&cai, &msg, "after_removal");

    // Re-added, Ben may write again.
    w.add(&ana, &ben, "Ben");
    let (id, entry) = w.forge(&ben, &msg);
    let mut other = w.replica();
    accepted(&mut other, id, entry);
}

#[test]
fn removal_takes_effect_only_when_its_proposal_passes() {
    let (ana, ben, cai, dee) = (key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai, &dee]);
    let thread = w.thread(&ana);
    let status = |r: &Record, m: &DeviceKey| {
        r.members()
            .into_iter()
            .find(|x| x.id == m.device_id())
            .map(|x| x.status)
    };

    // No entry of one member removes anyone, whatever decision it names.
    let open = w.proposal(&ana, thread, Some(cai.device_id()));
    for decision in [EntryId([3; 32]), thread, open] {
        let body = Body::MemberRemove {
            member: cai.device_id(),
            decision,
        };
        w.refuse(&ana, &body, "removal_without_decision");
        assert_eq!(
            refused_kind(w.rec.author(&ana, body, 50)),
            "removal_without_decision"
        );
    }

    // Ben blocks: it does not pass, and Cai stays.
    w.stance(&ana, open, StanceKind::Agree);
    w.stance(&dee, open, StanceKind::Agree);
    w.write(
        &ben,
        stance_body(open, StanceKind::Block, "not like this", None),
    );
    assert_eq!(w.close(&ana, open).1, Decision::NotPassed);
    assert_eq!(status(&w.rec, &cai), Some(Status::Active));

    // Cai's own block does not stop it; two of the three others agreeing is enough.
    let p = w.proposal(&ben, thread, Some(cai.device_id()));
    w.stance(&ana, p, StanceKind::Agree);
    w.stance(&ben, p, StanceKind::Agree);
    w.write(
        &cai,
        stance_body(p, StanceKind::Block, "I want to stay", None),
    );
    let (close, d) = w.close(&ben, p);
    assert_eq!(d, Decision::Passed);
    assert_eq!(status(&w.rec, &cai), Some(Status::Removed));
    assert_eq!(status(&w.replica(), &cai), Some(Status::Removed));
    assert_eq!(status(&w.rec, &dee), Some(Status::Active));
    assert!(w.rec.contains(&close));

    // One agree of three others is not two thirds, even when nobody blocks.
    let (eve, fay) = (key(), key());
    let mut w = World::new(&[&ana, &ben, &cai, &dee, &eve, &fay]);
    let thread = w.thread(&ana);
    let p = w.proposal(&ana, thread, Some(fay.device_id()));
    for k in [&ana, &ben, &cai] {
        w.stance(k, p, StanceKind::Agree);
    }
    for k in [&dee, &eve] {
        w.stance(k, p, StanceKind::Abstain);
    }
    let t = w.rec.tally_now(&p).unwrap();
    assert_eq!((t.given, t.needed, t.members), (5, 4, 6));
    assert_eq!(
        t.decision,
        Decision::NotPassed,
        "3 of 5 others is under two thirds"
    );
    w.stance(&dee, p, StanceKind::Agree);
    assert_eq!(w.close(&ana, p).1, Decision::Passed);

    // Removing oneself is a rule error (leave instead).
    w.refuse(
        &ana,
        &proposal_body(thread, Some(ana.device_id())),
        "remove_self",
    );
}

#[test]
fn one_member_cannot_act_for_the_group() {
    let (ana, ben, cai, mallory) = (key(), key(), key(), key());
    let (rec, genesis) = Record::create(&ana, "Board", Rule::Consent, 3, "Ana", "", 0).unwrap();
    let mut w = World {
        group: rec.group(),
        genesis: genesis.clone(),
        rec,
        log: vec![genesis],
        time: 0,
        keys: BTreeMap::new(),
    };
    w.keys.insert(ana.device_id(), copy(&ana));
    // Founding: while Ana is the only member, her own agree and close suffice.
    w.add(&ana, &ben, "Ben");
    w.add(&ana, &cai, "Cai");
    let thread = w.thread(&ana);

    // Direct membership and auditor entries are refused outright.
    let add = Body::MemberAdd {
        member: mallory.device_id(),
        name: "Sock puppet".into(),
        needs: String::new(),
    };
    w.refuse(&ana, &add, "add_without_decision");
    let auditor = Body::AuditorAdd {
        device: mallory.device_id(),
        name: "Outsider".into(),
    };
    w.refuse(&ana, &auditor, "auditor_without_decision");

    // A proposal may not ask for less than the group's policy.
    let mut low = proposal_body(thread, Some(ben.device_id()));
    if let Body::Proposal { quorum, .. } = &mut low {
        *quorum = 1;
    }
    let why = w.refuse(&ana, &low, "below_policy");
    assert!(why.to_string().contains("at least 3"), "{why}");
    let mut weaker = proposal_body(thread, None);
    if let Body::Proposal { rule, quorum, .. } = &mut weaker {
        *rule = Rule::Majority;
        *quorum = 3;
    }
    let why = w.refuse(&ana, &weaker, "below_policy");
    assert!(why.to_string().contains("consent"), "{why}");

    // Ana alone proposes a sock puppet, agrees and tries to close: not enough views.
    let p = w.write(
        &ana,
        governance::group_proposal(
            &w.rec,
            Effect::Add {
                member: mallory.device_id(),
                name: "Sock puppet".into(),
                needs: String::new(),
            },
            "Sock puppet",
        )
        .unwrap(),
    );
    w.stance(&ana, p, StanceKind::Agree);
    let t = w.rec.tally_now(&p).unwrap();
    let early = Body::Outcome {
        proposal: p,
        outcome: "done".into(),
        decision: t.decision,
        counts: t.counts,
    };
    let why = w.refuse(&ana, &early, "not_quorate");
    assert_eq!(
        why.to_string(),
        "1 of 3 members have given a view; 2 more are needed before it can be closed"
    );
    assert_eq!(refused_kind(w.rec.author(&ana, early, 90)), "not_quorate");
    // Quorum 0 in the proposal changes nothing: the floor is a majority and the group's quorum.
    let mut zero = proposal_body(thread, None);
    if let Body::Proposal { quorum, .. } = &mut zero {
        *quorum = 0;
    }
    w.refuse(&ana, &zero, "below_policy");
    assert!(!w.rec.members().iter().any(|m| m.id == mallory.device_id()));

    // Under majority, blocks count against: 1 agree, 2 blocks does not pass.
    let policy = w
        .decide(
            &ana,
            Effect::Policy {
                rule: Rule::Majority,
                quorum: 3,
            },
        )
        .2;
    assert_eq!(policy, Decision::Passed);
    assert_eq!(w.rec.policy(), Some((Rule::Majority, 3)));
    let mut maj = proposal_body(thread, None);
    if let Body::Proposal { rule, quorum, .. } = &mut maj {
        *rule = Rule::Majority;
        *quorum = 3;
    }
    let m = w.write(&ana, maj);
    w.stance(&ana, m, StanceKind::Agree);
    w.write(&ben, stance_body(m, StanceKind::Block, "no", None));
    w.write(&cai, stance_body(m, StanceKind::Block, "no", None));
    assert_eq!(w.close(&ana, m).1, Decision::NotPassed);
}

#[test]
fn concurrent_closes_conflict_and_effects_follow_the_decision_that_stands() {
    let (ana, ben, cai, dee) = (key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai, &dee]);
    let thread = w.thread(&ana);
    let p = w.proposal(&ana, thread, Some(dee.device_id()));
    w.stance(&ana, p, StanceKind::Agree);
    w.stance(&ben, p, StanceKind::Agree);
    w.stance(&cai, p, StanceKind::Agree);
    // Cai's device closes with the three agrees it has; Ben's device, apart, changes Ben's view to
    // a block and closes with what it saw.
    let mut cai_rec = w.replica();
    let mut ben_rec = w.replica();
    let (_, b_block_e) = ben_rec
        .author(&ben, stance_body(p, StanceKind::Block, "wait", None), 60)
        .unwrap();
    let (bc, bd) = ben_rec.recount_now(&p);
    let (b_close, b_close_e) = ben_rec
        .author(
            &ben,
            Body::Outcome {
                proposal: p,
                outcome: "not now".into(),
                decision: bd,
                counts: bc,
            },
            61,
        )
        .unwrap();
    assert_eq!(bd, Decision::NotPassed);
    let (cc, cd) = cai_rec.recount_now(&p);
    let (c_close, c_close_e) = cai_rec
        .author(
            &cai,
            Body::Outcome {
                proposal: p,
                outcome: "Dee leaves".into(),
                decision: cd,
                counts: cc,
            },
            62,
        )
        .unwrap();
    assert_eq!(cd, Decision::Passed);
    let dee_status = |r: &Record| {
        r.members()
            .into_iter()
            .find(|m| m.id == dee.device_id())
            .unwrap()
            .status
    };
    assert_eq!(dee_status(&cai_rec), Status::Removed);
    // Merged in either order: a conflict; both counted 3 views, so "not passed" stands and Dee stays.
    let all = [b_block_e.clone(), b_close_e.clone(), c_close_e.clone()];
    for order in [[0, 1, 2], [2, 0, 1]] {
        let mut log = w.log.clone();
        log.extend(order.iter().map(|i| all[*i].clone()));
        let (r, out) = Record::from_entries(w.group, log);
        assert!(out.rejected.is_empty(), "{out:?}");
        let st = r.standing(&p).unwrap();
        assert!(st.conflict());
        assert_eq!(st.outcome, b_close);
        assert_eq!(st.decision, Decision::NotPassed);
        let mut both = vec![b_close, c_close];
        both.sort();
        assert_eq!(st.frontier, both);
        assert_eq!(dee_status(&r), Status::Active);
        assert_eq!(r.conflicts().len(), 1);
    }
    // A close that sees both settles it; stances are still refused.
    w.rec.ingest(all.to_vec());
    w.log.extend(all);
    w.refuse(
        &ana,
        &stance_body(p, StanceKind::Agree, "", None),
        "already_closed",
    );
    let (settle, d) = w.close(&ana, p);
    assert_eq!(d, Decision::NotPassed, "Ben's block is in its past");
    let st = w.rec.standing(&p).unwrap();
    assert!(!st.conflict());
    assert_eq!(st.outcome, settle);
    assert!(w.rec.conflicts().is_empty());
    // Once settled, no more closes.
    let (c, d) = w.rec.recount_now(&p);
    let again = Body::Outcome {
        proposal: p,
        outcome: "again".into(),
        decision: d,
        counts: c,
    };
    w.refuse(&cai, &again, "already_closed");
}

#[test]
fn two_members_removing_each_other_alone_changes_nothing() {
    let (ana, ben, cai, dee, eve) = (key(), key(), key(), key(), key());
    let w = World::new(&[&ana, &ben, &cai, &dee, &eve]);
    let thread_w = {
        let mut w2 = World {
            group: w.group,
            genesis: w.genesis.clone(),
            rec: w.replica(),
            log: w.log.clone(),
            time: 100,
            keys: BTreeMap::new(),
        };
        let t = w2.thread(&ana);
        (w2, t)
    };
    let (base, thread) = thread_w;
    // On their own devices, Ana proposes Ben out and Ben proposes Ana out, each agreeing alone.
    let mut a = base.replica();
    let (pa, pa_e) = a
        .author(&ana, proposal_body(thread, Some(ben.device_id())), 1)
        .unwrap();
    let (_, sa_e) = a
        .author(&ana, stance_body(pa, StanceKind::Agree, "", None), 2)
        .unwrap();
    let (c, d) = a.recount_now(&pa);
    let r = a.author(
        &ana,
        Body::Outcome {
            proposal: pa,
            outcome: "out".into(),
            decision: d,
            counts: c,
        },
        3,
    );
    assert_eq!(refused_kind(r), "not_quorate");
    let mut b = base.replica();
    let (pb, pb_e) = b
        .author(&ben, proposal_body(thread, Some(ana.device_id())), 1)
        .unwrap();
    let (_, sb_e) = b
        .author(&ben, stance_body(pb, StanceKind::Agree, "", None), 2)
        .unwrap();
    let mut log = base.log.clone();
    log.extend([pa_e, sa_e, pb_e, sb_e]);
    let (merged, out) = Record::from_entries(base.group, log);
    assert!(out.rejected.is_empty());
    assert!(merged.members().iter().all(|m| m.status == Status::Active));
    assert!(merged.outcome(&pa).is_none() && merged.outcome(&pb).is_none());
}

// ----- forks -----

/// Ingests `batch` into a device holding `held`, rebuilding from everything when the engine asks to.
fn deliver(rec: &mut Record, held: &mut Vec<Entry>, batch: Vec<Entry>) -> bool {
    held.extend(batch.iter().cloned());
    let out = rec.ingest(batch);
    if out.rebuild {
        let (r, _) = Record::from_entries(rec.group(), held.clone());
        *rec = r;
    }
    out.rebuild
}

#[test]
fn fork_keeps_both_and_the_lower_hash_wins_in_any_order() {
    let (ana, ben, cai) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    w.thread(&ana);
    let group = w.group;
    let base = w.log.clone();

    // Ben's device is restored twice from the same snapshot, and each copy writes.
    let (doc, index) = w.rec.snapshot().unwrap();
    let mut r1 = Record::restore(group, &doc, &index).unwrap();
    let mut r2 = Record::restore(group, &doc, &index).unwrap();
    assert_eq!(r1.heads(), w.rec.heads());
    let t1 = Body::Thread {
        title: "From the laptop".into(),
    };
    let t2 = Body::Thread {
        title: "From the backup".into(),
    };
    let (e1_id, e1) = r1.author(&ben, t1, 10).unwrap();
    let (e2_id, e2) = r2.author(&ben, t2, 10).unwrap();
    assert_ne!(e1_id, e2_id);
    let seq = e1.parse().unwrap().change.seq();
    assert_eq!(seq, e2.parse().unwrap().change.seq());

    // Each branch grows: Ana builds on the first, Cai on the second.
    let (a1_id, a1) = r1
        .author(
            &ana,
            Body::Message {
                thread: e1_id,
                text: "on branch one".into(),
            },
            11,
        )
        .unwrap();
    let (c2_id, c2) = r2
        .author(
            &cai,
            Body::Message {
                thread: e2_id,
                text: "on branch two".into(),
            },
            11,
        )
        .unwrap();

    let (winner, loser) = if e1_id < e2_id {
        (e1_id, e2_id)
    } else {
        (e2_id, e1_id)
    };
    let expected = Invalid::Fork {
        device: ben.device_id(),
        seq,
        winner,
    };

    // Delivered one at a time, in both orders, and both in one batch in both orders.
    for (first, second) in [(&e1, &e2), (&e2, &e1)] {
        let (mut rec, _) = Record::from_entries(group, base.clone());
        let mut held = base.clone();
        assert!(!deliver(&mut rec, &mut held, vec![first.clone()]));
        deliver(&mut rec, &mut held, vec![second.clone()]);
        assert!(rec.contains(&winner) && !rec.contains(&loser));
        assert_eq!(rec.rejected().get(&loser), Some(&expected));
        assert_eq!(rec.rejected().len(), 1);

        let (mut rec, out) = Record::from_entries(group, base.clone());
        assert!(out.rejected.is_empty());
        let out = rec.ingest(vec![first.clone(), second.clone()]);
        assert_eq!(out.accepted, vec![winner]);
        assert_eq!(rejection(&out, &loser).reason, expected);
        assert_eq!(rejection(&out, &loser).reason.kind(), "fork");
    }

    // A replica that applied the loser is told to rebuild when the winner arrives.
    let (mut rec, _) = Record::from_entries(group, base.clone());
    let loser_entry = if loser == e1_id { &e1 } else { &e2 };
    let winner_entry = if winner == e1_id { &e1 } else { &e2 };
    rec.ingest(vec![loser_entry.clone()]);
    assert!(rec.contains(&loser));
    let out = rec.ingest(vec![winner_entry.clone()]);
    assert!(out.rebuild && out.accepted.is_empty());
    assert!(
        rec.contains(&loser),
        "nothing is applied when a rebuild is asked for"
    );

    // The two restored devices exchange everything: identical heads, the loser's branch quarantined.
    let mut held1: Vec<Entry> = base
        .iter()
        .cloned()
        .chain([e1.clone(), a1.clone()])
        .collect();
    let mut held2: Vec<Entry> = base
        .iter()
        .cloned()
        .chain([e2.clone(), c2.clone()])
        .collect();
    let rebuilt1 = deliver(&mut r1, &mut held1, vec![e2.clone(), c2.clone()]);
    let rebuilt2 = deliver(&mut r2, &mut held2, vec![e1.clone(), a1.clone()]);
    assert_eq!(rebuilt1, loser == e1_id);
    assert_eq!(rebuilt2, loser == e2_id);
    assert_eq!(r1.heads(), r2.heads());
    assert_eq!(r1.members(), r2.members());
    let (on_winner, on_loser) = if winner == e1_id {
        (a1_id, c2_id)
    } else {
        (c2_id, a1_id)
    };
    for r in [&r1, &r2] {
        assert!(r.contains(&winner) && r.contains(&on_winner));
        assert_eq!(r.rejected().get(&loser), Some(&expected));
        assert_eq!(
            r.rejected().get(&on_loser),
            Some(&Invalid::DependsOnRejected(loser))
        );
        assert_eq!(r.heads(), vec![on_winner]);
        assert!(r.pending_ids().is_empty());
    }
}

/// After a fork, a device's next write can land on a position where it already signed an entry that
/// was refused or still waits. A refused write there must leave nothing behind, exactly like any other
/// refused write: the store never sees it, so the record must not remember it either.
#[test]
fn refused_write_at_a_used_position_leaves_nothing_behind() {
    let (ana, ben) = (key(), key());
    let mut w = World::new(&[&ana, &ben]);
    let thread = w.thread(&ana);
    let group = w.group;
    let (doc, index) = w.rec.snapshot().unwrap();
    let msg = |text: &str| Body::Message {
        thread,
        text: text.into(),
    };

    // Ben's twin, restored from the snapshot, writes two entries; Ben's device writes one that wins.
    // b2 is not among the smallest ids, so that a later write soon wins the position from it
    // (with a tiny b2, step 2's loop would almost never find a smaller id).
    let (e2, e2_entry, b2, b2_entry) = (2i64..)
        .find_map(|t| {
            let mut twin = Record::restore(group, &doc, &index).unwrap();
            let (e2, e2_entry) = twin.author(&ben, msg("twin"), 1).unwrap();
            let (b2, b2_entry) = twin.author(&ben, msg("twin again"), t).unwrap();
            (b2.0[0] >= 0x40).then_some((e2, e2_entry, b2, b2_entry))
        })
        .unwrap();
    let (e1, e1_entry) = (0i64..)
        .find_map(|t| {
            let mut r = Record::restore(group, &doc, &index).unwrap();
            let (id, e) = r.author(&ben, msg("device"), 10 + t).unwrap();
            (id < e2).then_some((id, e))
        })
        .unwrap();

    let unknown_thread = Body::Message {
        thread: EntryId([5; 32]),
        text: "where?".into(),
    };
    let state = |r: &Record| (r.heads(), summary_rejected(r), r.pending_ids(), r.len());

    // 1. The twin's second entry waits (its dependency has not arrived) at Ben's next position.
    let mut log: Vec<Entry> = w
        .log
        .iter()
        .cloned()
        .chain([e1_entry.clone(), b2_entry.clone()])
        .collect();
    let (mut rec, _) = Record::from_entries(group, log.clone());
    assert!(rec.contains(&e1));
    assert_eq!(rec.pending_ids(), vec![b2]);
    let before = state(&rec);
    assert_eq!(
        refused_kind(rec.author(&ben, unknown_thread.clone(), 20)),
        "unknown_referent"
    );
    assert_eq!(state(&rec), before);
    let mut t = 30;
    let won = loop {
        t += 1;
        assert!(t < 200, "a write never won the position");
        match rec.author(&ben, msg("next"), t) {
            Ok((id, _)) => break id,
            Err(Refused::Invalid(Invalid::Fork { winner, .. })) => {
                assert_eq!(winner, b2);
                assert_eq!(state(&rec), before);
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(won < b2 && rec.contains(&won));
    assert_eq!(
        rec.rejected().get(&b2).map(Invalid::kind),
        Some("fork"),
        "the waiting entry lost the position"
    );

    // 2. Everything arrived: the twin's first entry lost the fork, its second depends on it.
    log.push(e2_entry);
    let (mut rec, _) = Record::from_entries(group, log.clone());
    assert_eq!(rec.rejected().get(&e2).map(Invalid::kind), Some("fork"));
    assert_eq!(
        rec.rejected().get(&b2),
        Some(&Invalid::DependsOnRejected(e2))
    );
    let before = state(&rec);
    assert_eq!(
        refused_kind(rec.author(&ben, unknown_thread, 20)),
        "unknown_referent"
    );
    assert_eq!(state(&rec), before);
    let mut t = 300;
    let (won, won_entry) = loop {
        t += 1;
        assert!(t < 500, "a write never won the position");
        match rec.author(&ben, msg("next"), t) {
            Ok(x) => break x,
            Err(Refused::Invalid(Invalid::Fork { winner, .. })) => {
                assert_eq!(winner, b2);
                assert_eq!(state(&rec), before);
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(rec.contains(&won));
    // The device's record is exactly what a rebuild from what it holds gives.
    log.push(won_entry);
    let (again, _) = Record::from_entries(group, log);
    assert_eq!(state(&rec), state(&again));
    assert_eq!(rec.rejected().get(&b2).map(Invalid::kind), Some("fork"));
}

fn summary_rejected(r: &Record) -> BTreeMap<EntryId, Invalid> {
    r.rejected().iter().map(|(k, v)| (*k, v.clone())).collect()
}

// ----- pending -----

#[test]
fn entry_before_its_dependency_waits_then_is_accepted() {
    let (ana, ben) = (key(), key());
    let mut w = World::new(&[&ana, &ben]);
    let base = w.log.clone();
    let thread = w.thread(&ana);
    let m1 = w.write(
        &ben,
        Body::Message {
            thread,
            text: "first".into(),
        },
    );
    let m2 = w.write(
        &ana,
        Body::Message {
            thread,
            text: "second".into(),
        },
    );
    let entry = |i: usize| w.log[base.len() + i].clone();

    let (mut rec, _) = Record::from_entries(w.group, base.clone());
    let out = rec.ingest(vec![entry(2)]);
    assert!(out.accepted.is_empty() && out.rejected.is_empty());
    assert_eq!(out.pending.len(), 1);
    assert_eq!(out.pending[0].0, m2);
    let out = rec.ingest(vec![entry(1)]);
    assert_eq!(
        out.pending.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![m1]
    );
    let mut waiting = vec![m1, m2];
    waiting.sort();
    assert_eq!(rec.pending_ids(), waiting);
    assert!(rec.rejected().is_empty());
    assert!(!rec.contains(&m1) && !rec.contains(&m2));

    // The missing dependency arrives: all three are accepted, in causal order.
    let out = rec.ingest(vec![entry(0)]);
    assert_eq!(out.accepted, vec![thread, m1, m2]);
    assert!(out.pending.is_empty() && out.rejected.is_empty());
    assert!(rec.pending_ids().is_empty());
    assert_eq!(rec.heads(), w.rec.heads());

    // An entry with nothing of the group at all also waits rather than being refused.
    let mut empty = Record::new(w.group);
    let out = empty.ingest(vec![entry(0)]);
    assert_eq!(out.pending.len(), 1);
    assert!(out.rejected.is_empty());
    let out = empty.ingest(base);
    assert_eq!(out.accepted.len(), w.log.len() - 2);
    assert!(empty.contains(&thread));
}

// ----- concurrent removal -----

#[test]
fn entry_concurrent_with_removal_is_kept_marked_and_has_no_effect() {
    let (ana, ben, cai, dee, newkey) = (key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai, &dee]);
    let thread = w.thread(&ana);
    let removal = w.proposal(&ana, thread, Some(cai.device_id()));
    w.stance(&ana, removal, StanceKind::Agree);
    w.stance(&ben, removal, StanceKind::Agree);
    w.stance(&dee, removal, StanceKind::Agree);
    let budget = w.proposal(&ben, thread, None);
    w.stance(&ana, budget, StanceKind::Agree);
    let other = w.proposal(&ben, thread, None);
    w.stance(&ana, other, StanceKind::Agree);
    w.stance(&ben, other, StanceKind::Agree);
    w.stance(&dee, other, StanceKind::Agree);

    // Cai keeps a copy of the home from before the removal closed, and keeps writing from it.
    let mut cai_rec = w.replica();
    let mut cai_log = Vec::new();
    let mut cai_write = |rec: &mut Record, body: Body, t: i64| {
        let (id, e) = rec.author(&cai, body, t).unwrap();
        cai_log.push(e);
        id
    };
    let msg = cai_write(
        &mut cai_rec,
        Body::Message {
            thread,
            text: "written offline".into(),
        },
        100,
    );
    let stance = cai_write(
        &mut cai_rec,
        stance_body(budget, StanceKind::Block, "too expensive", None),
        101,
    );
    // Before the removal is known, Cai's block counts.
    assert_eq!(cai_rec.recount_now(&budget).0.block, 1);
    // Cai closes another proposal, and proposes a key of their own making, agreeing to it.
    let (oc, od) = cai_rec.recount_now(&other);
    let cai_close = cai_write(
        &mut cai_rec,
        Body::Outcome {
            proposal: other,
            outcome: "closed by Cai".into(),
            decision: od,
            counts: oc,
        },
        102,
    );
    let sock_body = governance::group_proposal(
        &cai_rec,
        Effect::Add {
            member: newkey.device_id(),
            name: "Cai again".into(),
            needs: String::new(),
        },
        "Cai again",
    )
    .unwrap();
    let sock = cai_write(&mut cai_rec, sock_body, 103);
    cai_write(
        &mut cai_rec,
        stance_body(sock, StanceKind::Agree, "", None),
        104,
    );

    // Meanwhile the group closes Cai's removal.
    let (rm, d) = w.close(&ben, removal);
    assert_eq!(d, Decision::Passed);
    let out = w.rec.ingest(cai_log.clone());
    assert!(out.rejected.is_empty(), "{out:?}");
    w.log.extend(cai_log);
    for id in [msg, stance, cai_close, sock] {
        assert!(w.rec.concurrent_with_removal(&id), "{id}");
    }
    assert!(!w.rec.concurrent_with_removal(&rm));
    assert!(!w.rec.concurrent_with_removal(&budget));
    // Cai's close does not stand: the proposal is open again for the members.
    assert!(w.rec.void_now(&cai_close));
    assert_eq!(w.rec.outcome(&other), None);
    let (reclose, d) = w.close(&ana, other);
    assert_eq!(d, Decision::Passed);
    assert_eq!(w.rec.outcome(&other), Some((reclose, Decision::Passed)));

    // A close after the removal does not count Cai's block.
    let (counts, _) = w.rec.recount_now(&budget);
    assert_eq!(
        counts,
        Counts {
            agree: 1,
            ..Counts::default()
        }
    );
    let wrong = Body::Outcome {
        proposal: budget,
        outcome: "blocked".into(),
        decision: Decision::NotPassed,
        counts: Counts {
            agree: 1,
            block: 1,
            ..Counts::default()
        },
    };
    w.refuse(&ben, &wrong, "outcome_mismatch");
    w.stance(&ben, budget, StanceKind::Agree);
    w.stance(&dee, budget, StanceKind::Agree);
    let (close, d) = w.close(&ben, budget);
    assert_eq!(d, Decision::Passed);
    assert!(!w.rec.concurrent_with_removal(&close));
    // Cai's sock puppet never joins.
    assert!(!w.rec.members().iter().any(|m| m.id == newkey.device_id()));

    // Cai's device merges the removal; Cai's next write is after the removal and is refused.
    let (mut merged, out) = Record::from_entries(w.group, w.log.clone());
    assert!(out.rejected.is_empty());
    assert!(merged.concurrent_with_removal(&msg));
    let (id, entry) = forge_on(
        &merged,
        &w.genesis,
        cai.device_id(),
        &cai,
        &Body::Message {
            thread,
            text: "after".into(),
        },
        seq_of(&merged, &cai.device_id()) + 1,
        w.group,
        200,
    );
    refused(&mut merged, id, entry, "after_removal");
}

// ----- stances -----

#[test]
fn stance_rules() {
    let (ana, ben, cai) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    let thread = w.thread(&ana);
    let p = w.proposal(&ana, thread, None);

    // Disagree and block need a reason; agree and abstain do not.
    for (kind, reason) in [
        (StanceKind::Disagree, ""),
        (StanceKind::Block, ""),
        (StanceKind::Block, "  \n"),
    ] {
        let body = stance_body(p, kind, reason, None);
        let why = w.refuse(&ben, &body, "reason_needed");
        assert!(why.to_string().contains("reason"), "{why}");
        assert_eq!(refused_kind(w.rec.author(&ben, body, 1)), "reason_needed");
    }
    w.write(&ben, stance_body(p, StanceKind::Agree, "", None));
    w.write(&cai, stance_body(p, StanceKind::Abstain, "", None));
    let count = |w: &World| w.rec.recount_now(&p).0;
    assert_eq!(
        count(&w),
        Counts {
            agree: 1,
            abstain: 1,
            ..Counts::default()
        }
    );

    // The latest stance of a member counts.
    w.write(
        &ben,
        stance_body(p, StanceKind::Disagree, "changed my mind", None),
    );
    assert_eq!(
        count(&w),
        Counts {
            abstain: 1,
            disagree: 1,
            ..Counts::default()
        }
    );
    w.write(&ben, stance_body(p, StanceKind::Agree, "", None));
    assert_eq!(
        count(&w),
        Counts {
            agree: 1,
            abstain: 1,
            ..Counts::default()
        }
    );

    // Ben types a stance for Ana: it counts only once Ana confirms it.
    let for_ana = w.write(
        &ben,
        stance_body(
            p,
            StanceKind::Block,
            "Ana says: not yet",
            Some(ana.device_id()),
        ),
    );
    assert_eq!(
        count(&w),
        Counts {
            agree: 1,
            abstain: 1,
            ..Counts::default()
        }
    );
    // Ben's own stance is untouched by what he typed for Ana; nobody but Ana can confirm it.
    w.refuse(&cai, &Body::Confirm { target: for_ana }, "bad_confirm");
    w.refuse(&ben, &Body::Confirm { target: for_ana }, "bad_confirm");
    w.write(&ana, Body::Confirm { target: for_ana });
    assert_eq!(
        count(&w),
        Counts {
            agree: 1,
            abstain: 1,
            block: 1,
            ..Counts::default()
        }
    );
    // Ana's own later stance replaces the one typed for her.
    w.write(&ana, stance_body(p, StanceKind::Agree, "", None));
    assert_eq!(
        count(&w),
        Counts {
            agree: 2,
            abstain: 1,
            ..Counts::default()
        }
    );

    // A stance typed for someone who is not a member is refused.
    let stranger = key();
    let body = stance_body(p, StanceKind::Agree, "", Some(stranger.device_id()));
    w.refuse(&ben, &body, "not_active");

    // After the close, no more stances.
    let (_, d) = w.close(&cai, p);
    assert_eq!(d, Decision::Passed);
    let late = stance_body(p, StanceKind::Block, "too late", None);
    w.refuse(&ben, &late, "already_closed");
}

// ----- outcomes -----

#[test]
fn outcome_must_match_the_recount() {
    let (ana, ben, cai) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    let thread = w.thread(&ana);
    let p = w.proposal(&ana, thread, None);
    w.stance(&ana, p, StanceKind::Agree);
    w.write(&ben, stance_body(p, StanceKind::Block, "no", None));
    // An unconfirmed stance typed for Cai does not count either.
    w.write(
        &ana,
        stance_body(p, StanceKind::Agree, "", Some(cai.device_id())),
    );
    let (counts, decision) = w.rec.recount_now(&p);
    assert_eq!(
        counts,
        Counts {
            agree: 1,
            block: 1,
            ..Counts::default()
        }
    );
    assert_eq!(decision, Decision::NotPassed);

    let outcome = |decision, counts| Body::Outcome {
        proposal: p,
        outcome: "closed".into(),
        decision,
        counts,
    };
    let wrong = [
        // Hides the block.
        outcome(
            Decision::Passed,
            Counts {
                agree: 1,
                ..Counts::default()
            },
        ),
        // Right counts, wrong decision.
        outcome(Decision::Passed, counts),
        // Counts the unconfirmed stance.
        outcome(
            Decision::NotPassed,
            Counts {
                agree: 2,
                block: 1,
                ..Counts::default()
            },
        ),
    ];
    for body in wrong {
        let why = w.refuse(&cai, &body, "outcome_mismatch");
        assert!(matches!(why, Invalid::OutcomeMismatch { .. }));
        assert_eq!(
            refused_kind(w.rec.author(&cai, body, 3)),
            "outcome_mismatch"
        );
    }
    let (id, entry) = w.forge(&cai, &outcome(decision, counts));
    let mut other = w.replica();
    accepted(&mut other, id, entry.clone());
    assert_eq!(other.outcome(&p), Some((id, Decision::NotPassed)));
    accepted(&mut w.rec, id, entry.clone());

    // A second close of the same proposal is refused.
    w.log.push(entry);
    w.refuse(&ana, &outcome(decision, counts), "already_closed");
}

// ----- malformed input -----

#[test]
fn malformed_input_is_rejected_never_a_panic() {
    let (ana, ben) = (key(), key());
    let mut w = World::new(&[&ana, &ben]);
    let (good_id, good) = w.forge(
        &ben,
        &Body::Thread {
            title: "Good".into(),
        },
    );
    let mut rec = w.replica();

    // Truncated entry bytes: decoding fails with an error at every length.
    let bytes = good.encode();
    assert_eq!(Entry::decode(&bytes).unwrap(), good);
    for n in 0..bytes.len() {
        assert!(Entry::decode(&bytes[..n]).is_err(), "length {n}");
    }
    assert!(Entry::decode(&[bytes.as_slice(), &[0]].concat()).is_err());

    // Truncated change bytes inside an entry: rejected as malformed at every length.
    let mut all = Vec::new();
    for n in 0..good.change.len() {
        let e = Entry {
            doc: DocRef::Public,
            signature: good.signature,
            change: good.change[..n].to_vec(),
        };
        all.push(e.clone());
        let out = rec.ingest(vec![e]);
        assert!(out.accepted.is_empty() && out.pending.is_empty());
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].reason.kind(), "malformed", "length {n}");
    }

    // Garbage change bytes: plain noise, noise behind the magic bytes, and noise in a correctly framed
    // change (so Automerge's own decoder is reached).
    let mut garbage: Vec<Vec<u8>> = Vec::new();
    for seed in 1..40u64 {
        let len = (seed as usize * 37) % 300 + 1;
        garbage.push(noise(seed, len));
        garbage.push([MAGIC.as_slice(), &noise(seed, len)].concat());
        garbage.push(framed(&noise(seed, len)));
    }
    garbage.push(framed(&[]));
    garbage.push(vec![0; 5000]);
    for g in garbage {
        let e = Entry {
            doc: DocRef::Public,
            signature: [1; 64],
            change: g,
        };
        all.push(e.clone());
        let id = {
            let out = rec.ingest(vec![e.clone()]);
            assert_eq!(out.rejected.len(), 1, "{out:?}");
            out.rejected[0].id
        };
        let out = Record::from_entries(w.group, vec![e]).1;
        assert_eq!(out.rejected[0].reason.kind(), "malformed");
        assert_eq!(out.rejected[0].id, id);
    }

    // A bad checksum: the header's four checksum bytes, or any byte of the body.
    for i in [4, 5, 6, 7, 9, good.change.len() / 2, good.change.len() - 1] {
        let mut change = good.change.clone();
        change[i] ^= 0x40;
        let e = Entry {
            doc: DocRef::Public,
            signature: good.signature,
            change,
        };
        all.push(e.clone());
        let out = rec.ingest(vec![e]);
        assert_eq!(out.rejected.len(), 1);
        let why = &out.rejected[0].reason;
        assert_eq!(why.kind(), "malformed", "byte {i}: {why}");
    }

    // Every single-byte change of a valid change is refused without a panic.
    for i in 0..good.change.len() {
        let mut change = good.change.clone();
        change[i] = change[i].wrapping_add(1);
        let out = rec.ingest(vec![Entry {
            doc: DocRef::Public,
            signature: good.signature,
            change,
        }]);
        assert_eq!(out.rejected.len(), 1, "byte {i}");
        assert!(out.accepted.is_empty());
    }

    // None of this left anything behind, and the good entry is still accepted, even in a batch
    // with all the garbage.
    assert!(rec.rejected().is_empty());
    assert!(rec.pending_ids().is_empty());
    all.push(good);
    let n = all.len();
    let out = rec.ingest(all);
    assert_eq!(out.accepted, vec![good_id]);
    assert_eq!(out.rejected.len(), n - 1);
    assert!(out.rejected.iter().all(|r| r.reason.kind() == "malformed"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // 256 cases; well under a second.
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes, read as an entry and then ingested, never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let group = GroupId::from_bytes([9; 32]);
            let mut rec = Record::new(group);
            let _ = Entry::decode(&bytes);
            let as_change = Entry { doc: DocRef::Public, signature: [0; 64], change: bytes.clone() };
            let framed_change = Entry { doc: DocRef::Public, signature: [0; 64], change: framed(&bytes) };
            let out = rec.ingest(vec![as_change, framed_change]);
            prop_assert!(out.accepted.is_empty());
            prop_assert_eq!(out.rejected.len(), 2);
        }
    }
}

// ----- a member's devices -----

fn link_body(w: &World, member: &DeviceKey, device: &DeviceKey, name: &str) -> Body {
    Body::DeviceAdd {
        device: device.device_id(),
        name: name.into(),
        proof: device.link_proof(&w.group, &member.device_id()).to_vec(),
    }
}

#[test]
fn a_linked_device_writes_as_its_member_with_one_stance_per_member() {
    let (ana, ben, phone) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    let link = w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    let g = w.rec.governance();
    assert_eq!(g.member_of(&phone.device_id()), Some(ana.device_id()));
    assert!(g.device_active(&phone.device_id()));
    assert_eq!(g.linked[&phone.device_id()].added_by, link);
    assert!(w.rec.sync_devices().contains(&phone.device_id()));
    assert_eq!(w.rec.active_members().len(), 2);

    let thread = w.thread(&phone);
    assert_eq!(w.rec.entry(&thread).map(|(a, _)| a), Some(ana.device_id()));
    // Ana says "agree" on her laptop, then "block" on her phone: one member, one stance, the later.
    let p = w.proposal(&ben, thread, None);
    w.stance(&ana, p, StanceKind::Agree);
    w.stance(&phone, p, StanceKind::Block);
    let (counts, _) = w.rec.recount_now(&p);
    assert_eq!((counts.agree, counts.block), (0, 1), "{counts:?}");
    // Ana's phone may edit what Ana wrote on her laptop: it is hers.
    let msg = w.write(
        &ana,
        Body::Message {
            thread,
            text: "on the laptop".into(),
        },
    );
    let _ = msg;
    // Every other device agrees.
    let r = w.replica();
    assert_eq!(r.entry(&thread).map(|(a, _)| a), Some(ana.device_id()));
    assert_eq!(r.recount_now(&p).0.block, 1);
}

#[test]
fn a_device_link_needs_the_new_devices_own_signature_and_a_free_device() {
    let (ana, ben, phone, other) = (key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    // Signed by another key than the device named: Ana cannot claim a key she does not hold.
    let forged = Body::DeviceAdd {
        device: phone.device_id(),
        name: "phone".into(),
        proof: other.link_proof(&w.group, &ana.device_id()).to_vec(),
    };
    w.refuse(&ana, &forged, "bad_device_proof");
    // The phone's proof for Ben does not make it Ana's.
    let for_ben = Body::DeviceAdd {
        device: phone.device_id(),
        name: "phone".into(),
        proof: phone.link_proof(&w.group, &ben.device_id()).to_vec(),
    };
    w.refuse(&ana, &for_ben, "bad_device_proof");
    // Ben's own key (a member) cannot be linked to Ana, even with its signature.
    let take_ben = link_body(&w, &ana, &ben, "Ben");
    w.refuse(&ana, &take_ben, "device_taken");
    let nameless = link_body(&w, &ana, &phone, " ");
    w.refuse(&ana, &nameless, "empty_text");
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    // Once linked, it is nobody else's, nor Ana's twice.
    let again = link_body(&w, &ben, &phone, "Ben's phone");
    w.refuse(&ben, &again, "device_taken");
    // And it cannot be proposed as a new member.
    let as_member = governance::group_proposal(
        &w.rec,
        Effect::Add {
            member: phone.device_id(),
            name: "Phone".into(),
            needs: String::new(),
        },
        "Phone",
    )
    .unwrap();
    w.refuse(&ben, &as_member, "device_taken");
    // A non-member's key cannot link anything.
    let outsider = key();
    let theirs = link_body(&w, &outsider, &other, "x");
    w.refuse(&outsider, &theirs, "not_member");
}

#[test]
fn a_stopped_device_is_refused_and_only_its_member_stops_it_from_another_device() {
    let (ana, ben, phone) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    let thread = w.thread(&phone);
    let stop = Body::DeviceRevoke {
        device: phone.device_id(),
    };
    // Not by another member, not by the device itself.
    w.refuse(&ben, &stop, "not_your_device");
    w.refuse(&phone, &stop, "not_your_device");
    w.write(&ana, stop.clone());
    let g = w.rec.governance();
    assert!(!g.device_active(&phone.device_id()));
    assert!(g.active(&ana.device_id()), "Ana stays a member");
    assert!(!w.rec.sync_devices().contains(&phone.device_id()));
    assert!(w.rec.sync_devices().contains(&ana.device_id()));
    // What the phone writes from now on is refused everywhere.
    let later = Body::Message {
        thread,
        text: "from the lost phone".into(),
    };
    w.refuse(&phone, &later, "device_revoked");
    assert_eq!(
        refused_kind(w.rec.author(&phone, later.clone(), 99)),
        "device_revoked"
    );
    // Not twice.
    w.refuse(&ana, &stop, "not_your_device");
    // Ana's laptop goes on.
    w.write(
        &ana,
        Body::Message {
            thread,
            text: "still here".into(),
        },
    );
    // A linked device may stop the member's first device (the laptop was stolen).
    let (cai, tablet) = (key(), key());
    let mut w = World::new(&[&cai, &ben]);
    w.write(&cai, link_body(&w, &cai, &tablet, "tablet"));
    w.write(
        &tablet,
        Body::DeviceRevoke {
            device: cai.device_id(),
        },
    );
    let thread = w.thread(&tablet);
    w.refuse(
        &cai,
        &Body::Message {
            thread,
            text: "thief".into(),
        },
        "device_revoked",
    );
    assert!(w.rec.governance().active(&cai.device_id()));
}

#[test]
fn what_a_device_wrote_concurrently_with_its_stop_has_no_effect() {
    let (ana, ben, cai, phone) = (key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    let thread = w.thread(&ben);
    let p = w.proposal(&ben, thread, None);
    // The phone's copy, taken before the stop, blocks offline.
    let mut phone_rec = w.replica();
    let (block, e) = phone_rec
        .author(&phone, stance_body(p, StanceKind::Block, "no", None), 50)
        .unwrap();
    w.write(
        &ana,
        Body::DeviceRevoke {
            device: phone.device_id(),
        },
    );
    // The block arrives later: valid (its past had no stop), kept, but void.
    let out = w.rec.ingest(vec![e.clone()]);
    assert_eq!(out.accepted, vec![block], "{out:?}");
    w.log.push(e);
    assert!(w.rec.void_now(&block));
    assert_eq!(w.rec.recount_now(&p).0.block, 0);
    // The same on a device that learns them in the other order.
    let r = w.replica();
    assert!(r.void_now(&block));
    assert_eq!(r.recount_now(&p).0.block, 0);
}

// ----- recovery by the group (rules.md section 2a, D5) -----

/// A proposal that `member`'s seat goes to `device`, with the new device's own proof.
fn recover_effect(w: &World, member: &DeviceKey, device: &DeviceKey, name: &str) -> Effect {
    Effect::Recover {
        member: member.device_id(),
        device: device.device_id(),
        name: name.into(),
        proof: device.link_proof(&w.group, &member.device_id()),
    }
}

#[test]
fn a_recovery_that_passes_stops_the_old_devices_and_the_new_one_writes_as_the_member() {
    let (ana, ben, cai, phone, fresh) = (key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    let thread = w.thread(&ben);
    let open = w.proposal(&ben, thread, None);
    // The phone's copy, taken before the recovery, blocks offline: concurrent with the close.
    let mut phone_rec = w.replica();
    let (offline, offline_entry) = phone_rec
        .author(&phone, stance_body(open, StanceKind::Block, "no", None), 50)
        .unwrap();
    // Ana lost both devices: Ben proposes her new one, Ben and Cai agree (two thirds of the others).
    let body = governance::group_proposal(
        &w.rec,
        recover_effect(&w, &ana, &fresh, "Ana's new phone"),
        "Ana",
    )
    .unwrap();
    let p = w.write(&ben, body);
    w.stance(&ben, p, StanceKind::Agree);
    w.stance(&cai, p, StanceKind::Agree);
    let (close, decision) = w.close(&ben, p);
    assert_eq!(decision, Decision::Passed);

    let g = w.rec.governance();
    assert_eq!(g.member_of(&fresh.device_id()), Some(ana.device_id()));
    assert!(g.device_active(&fresh.device_id()));
    assert_eq!(g.linked[&fresh.device_id()].added_by, close);
    assert_eq!(g.revoked.get(&phone.device_id()), Some(&close));
    assert_eq!(g.revoked.get(&ana.device_id()), Some(&close));
    assert!(!g.device_active(&phone.device_id()) && !g.device_active(&ana.device_id()));
    assert!(
        g.active(&ana.device_id()),
        "Ana stays a member, on her new device"
    );
    assert_eq!(w.rec.active_members().len(), 3);
    assert!(w.rec.sync_devices().contains(&fresh.device_id()));
    assert!(!w.rec.sync_devices().contains(&phone.device_id()));

    // What the old devices write from now on is refused everywhere.
    let later = Body::Message {
        thread,
        text: "from the lost phone".into(),
    };
    w.refuse(&phone, &later, "device_revoked");
    w.refuse(&ana, &later, "device_revoked");
    assert_eq!(
        refused_kind(w.rec.author(&phone, later.clone(), 99)),
        "device_revoked"
    );
    // What the phone wrote offline, concurrently with the close, is kept but void.
    let out = w.rec.ingest(vec![offline_entry.clone()]);
    assert_eq!(out.accepted, vec![offline], "{out:?}");
    w.log.push(offline_entry);
    assert!(w.rec.void_now(&offline));
    assert_eq!(w.rec.recount_now(&open).0.block, 0);

    // The new device writes as Ana: her message, her one stance.
    let msg = w.write(
        &fresh,
        Body::Message {
            thread,
            text: "back again".into(),
        },
    );
    assert_eq!(w.rec.entry(&msg).map(|(a, _)| a), Some(ana.device_id()));
    w.stance(&fresh, open, StanceKind::Disagree);
    let t = w.rec.tally_now(&open).unwrap();
    assert_eq!((t.counts.disagree, t.counts.block, t.given), (1, 0, 1));
    assert!(t.views.contains_key(&ana.device_id()));
    // Every other device agrees.
    let r = w.replica();
    assert!(r.void_now(&offline));
    assert_eq!(r.entry(&msg).map(|(a, _)| a), Some(ana.device_id()));
    assert_eq!(r.recount_now(&open).0, t.counts);
    assert_eq!(r.governance().revoked.get(&phone.device_id()), Some(&close));
}

#[test]
fn a_recovery_blocked_from_the_members_old_device_does_not_pass() {
    let (ana, ben, cai, phone, thief) = (key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    // Majority: a block would only weigh as a disagree there; a recovery takes none, whoever blocks.
    let (_, _, d) = w.decide(
        &ana,
        Effect::Policy {
            rule: Rule::Majority,
            quorum: 1,
        },
    );
    assert_eq!(d, Decision::Passed);
    let body =
        governance::group_proposal(&w.rec, recover_effect(&w, &ana, &thief, "new"), "Ana").unwrap();
    let p = w.write(&ben, body);
    w.stance(&ben, p, StanceKind::Agree);
    w.stance(&cai, p, StanceKind::Agree);
    // Ana's phone is only offline, not lost: she stops the hijack.
    w.stance(&phone, p, StanceKind::Block);
    let (counts, decision) = w.rec.recount_now(&p);
    assert_eq!((counts.agree, counts.block), (2, 1));
    assert_eq!(decision, Decision::NotPassed);
    // A close claiming it passed is refused; the honest one is kept and changes nothing.
    let lie = Body::Outcome {
        proposal: p,
        outcome: "closed".into(),
        decision: Decision::Passed,
        counts,
    };
    w.refuse(&ben, &lie, "outcome_mismatch");
    w.close(&ben, p);
    let g = w.rec.governance();
    assert_eq!(g.member_of(&thief.device_id()), None);
    assert!(g.device_active(&phone.device_id()) && g.device_active(&ana.device_id()));

    // Without the block, one agree of the two others is not two thirds, though a majority of the
    // views (Ana's phone abstains); with Cai's it is.
    let body =
        governance::group_proposal(&w.rec, recover_effect(&w, &ana, &thief, "new"), "Ana").unwrap();
    let p = w.write(&ben, body);
    w.stance(&ben, p, StanceKind::Agree);
    w.stance(&phone, p, StanceKind::Abstain);
    assert_eq!(w.rec.recount_now(&p).1, Decision::NotPassed);
    w.stance(&cai, p, StanceKind::Agree);
    assert_eq!(w.rec.recount_now(&p).1, Decision::Passed);
}

#[test]
fn a_recovery_needs_the_new_devices_proof_a_free_device_and_an_active_member() {
    let (ana, ben, cai, phone, fresh, other) = (key(), key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    let inspector = key();
    w.decide(
        &ben,
        Effect::Auditor {
            device: inspector.device_id(),
            name: "Inspector".into(),
        },
    );
    let prop = |w: &World, e: Effect| governance::group_proposal(&w.rec, e, "Ana").unwrap();
    let with =
        |member: &DeviceKey, device: DeviceId, name: &str, proof: [u8; 64]| Effect::Recover {
            member: member.device_id(),
            device,
            name: name.into(),
            proof,
        };
    // Signed by another key than the device named: nobody binds a key they do not hold.
    let forged = with(
        &ana,
        fresh.device_id(),
        "new",
        other.link_proof(&w.group, &ana.device_id()),
    );
    w.refuse(&ben, &prop(&w, forged), "bad_device_proof");
    // The fresh device's proof for Cai does not give it Ana's seat.
    let for_cai = with(
        &ana,
        fresh.device_id(),
        "new",
        fresh.link_proof(&w.group, &cai.device_id()),
    );
    w.refuse(&ben, &prop(&w, for_cai), "bad_device_proof");
    // A member's id, a linked device, an auditor's device: taken.
    let cai_key = with(
        &ana,
        cai.device_id(),
        "new",
        cai.link_proof(&w.group, &ana.device_id()),
    );
    w.refuse(&ben, &prop(&w, cai_key), "device_taken");
    let linked = with(
        &ana,
        phone.device_id(),
        "new",
        phone.link_proof(&w.group, &ana.device_id()),
    );
    w.refuse(&ben, &prop(&w, linked), "device_taken");
    let audit = with(
        &ana,
        inspector.device_id(),
        "new",
        inspector.link_proof(&w.group, &ana.device_id()),
    );
    w.refuse(&ben, &prop(&w, audit), "member_and_auditor");
    // Not a key at all (checked before the proof).
    let not_key = (0u8..=255)
        .map(|b| DeviceId([b; 32]))
        .find(|d| ed25519_dalek::VerifyingKey::from_bytes(&d.0).is_err())
        .expect("some 32-byte string is not a point");
    w.refuse(
        &ben,
        &prop(&w, with(&ana, not_key, "new", [0; 64])),
        "not_a_key",
    );
    // A nameless device.
    let nameless = recover_effect(&w, &ana, &fresh, " ");
    w.refuse(&ben, &prop(&w, nameless), "empty_text");
    // Someone who is not a member, or no longer one.
    let outsider = key();
    w.refuse(
        &ben,
        &prop(&w, recover_effect(&w, &outsider, &fresh, "new")),
        "not_active",
    );
    w.write(&cai, Body::MemberLeave);
    w.refuse(
        &ben,
        &prop(&w, recover_effect(&w, &cai, &fresh, "new")),
        "not_active",
    );
    // The twin: any active member may propose it, Ana's own phone too.
    w.write(&ben, prop(&w, recover_effect(&w, &ana, &fresh, "new")));
    w.write(&phone, prop(&w, recover_effect(&w, &ana, &other, "other")));
}

#[test]
fn a_recovery_closed_on_an_old_device_stands_and_a_link_made_apart_on_one_is_void() {
    let (ana, ben, cai, phone, fresh, tab) = (key(), key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    // The laptop's copy, taken before the recovery: it links a tablet offline.
    let mut laptop_rec = w.replica();
    let (link, link_entry) = laptop_rec
        .author(&ana, link_body(&w, &ana, &tab, "tablet"), 50)
        .unwrap();
    let body =
        governance::group_proposal(&w.rec, recover_effect(&w, &ana, &fresh, "new"), "Ana").unwrap();
    let p = w.write(&ben, body);
    w.stance(&ben, p, StanceKind::Agree);
    w.stance(&cai, p, StanceKind::Agree);
    w.stance(&phone, p, StanceKind::Agree);
    // Ana's old phone itself closes it: the close stops the phone, and still stands.
    let (close, decision) = w.close(&phone, p);
    assert_eq!(decision, Decision::Passed);
    assert!(!w.rec.void_now(&close));
    let g = w.rec.governance();
    assert_eq!(g.member_of(&fresh.device_id()), Some(ana.device_id()));
    assert_eq!(g.revoked.get(&phone.device_id()), Some(&close));
    w.refuse(
        &phone,
        &Body::Thread {
            title: "after".into(),
        },
        "device_revoked",
    );
    // The tablet's link, written on the laptop concurrently with the close, is valid but void: the
    // tablet is nobody's, and every device agrees, whatever it learned first.
    let out = w.rec.ingest(vec![link_entry.clone()]);
    assert_eq!(out.accepted, vec![link], "{out:?}");
    w.log.push(link_entry);
    assert!(w.rec.void_now(&link));
    let g = w.rec.governance();
    assert_eq!(g.member_of(&tab.device_id()), None);
    assert_eq!(g.member_of(&fresh.device_id()), Some(ana.device_id()));
    let mut reversed = w.log.clone();
    reversed.reverse();
    let (r, out) = Record::from_entries(w.group, reversed);
    assert!(out.rejected.is_empty(), "{out:?}");
    let h = r.governance();
    assert_eq!(h.linked, g.linked);
    assert_eq!(h.revoked, g.revoked);
}

/// rules.md §2a D4: a stolen laptop, stopped by Ana's phone, links a tablet offline, concurrently
/// with the stop. The link is void, so the tablet is nobody's: what it writes (a block on an open
/// proposal, a message) is void too, and the recount does not give Ana its block, on every device
/// whatever it learned first.
#[test]
fn a_device_linked_on_a_stopped_device_concurrently_speaks_for_nobody() {
    let (ana, ben, phone, tab) = (key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    let t = w.thread(&ben);
    let p = w.proposal(&ben, t, None);
    // The laptop's copy, taken now: stolen, it links a tablet that blocks the proposal.
    let mut laptop = w.replica();
    let (link, link_entry) = laptop
        .author(&ana, link_body(&w, &ana, &tab, "tablet"), 50)
        .unwrap();
    let (block, block_entry) = laptop
        .author(&tab, stance_body(p, StanceKind::Block, "no", None), 51)
        .unwrap();
    let (msg, msg_entry) = laptop
        .author(
            &tab,
            Body::Message {
                thread: t,
                text: "I am Ana".into(),
            },
            52,
        )
        .unwrap();
    // Meanwhile Ana's phone stops the laptop; Ana (on her phone) and Ben agree.
    w.write(
        &phone,
        Body::DeviceRevoke {
            device: ana.device_id(),
        },
    );
    w.stance(&phone, p, StanceKind::Agree);
    w.stance(&ben, p, StanceKind::Agree);
    let out = w.rec.ingest(vec![
        link_entry.clone(),
        block_entry.clone(),
        msg_entry.clone(),
    ]);
    assert!(out.rejected.is_empty(), "{out:?}");
    for e in [link_entry, block_entry, msg_entry] {
        w.log.push(e);
    }
    for (what, id) in [("link", link), ("block", block), ("message", msg)] {
        assert!(w.rec.void_now(&id), "the tablet's {what} is void");
    }
    assert_eq!(w.rec.governance().member_of(&tab.device_id()), None);
    let (counts, decision) = w.rec.recount_now(&p);
    assert_eq!((counts.agree, counts.block), (2, 0), "{counts:?}");
    assert_eq!(decision, Decision::Passed);
    let mut reversed = w.log.clone();
    reversed.reverse();
    let (r, out) = Record::from_entries(w.group, reversed);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(r.recount_now(&p), (counts, decision));
    assert!(r.void_now(&block));
}

fn keeper_effect(k: &DeviceKey, name: &str) -> Effect {
    Effect::Keeper {
        device: k.device_id(),
        name: name.into(),
    }
}

#[test]
fn a_keeper_is_named_by_the_group_syncs_and_can_never_write() {
    let (ana, ben, cai, keeper) = (key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben, &cai]);
    // One member cannot name a keeper alone: Ana's agree is 1 of 3 views.
    let body =
        governance::group_proposal(&w.rec, keeper_effect(&keeper, "Council PC"), "Council PC")
            .unwrap();
    let p = w.write(&ana, body);
    w.stance(&ana, p, StanceKind::Agree);
    let (counts, decision) = w.rec.recount_now(&p);
    let premature = Body::Outcome {
        proposal: p,
        outcome: "closed".into(),
        decision,
        counts,
    };
    w.refuse(&ana, &premature, "not_quorate");
    assert!(w.rec.keepers().is_empty());
    assert!(!w.rec.sync_devices().contains(&keeper.device_id()));
    w.stance(&ben, p, StanceKind::Agree);
    w.stance(&cai, p, StanceKind::Agree);
    assert_eq!(w.close(&ana, p).1, Decision::Passed);
    assert_eq!(
        w.rec.keepers(),
        vec![(keeper.device_id(), "Council PC".to_string())]
    );
    // It may sync (both ways), but it is no member and no writer: it is never counted, never a reader.
    assert!(w.rec.sync_devices().contains(&keeper.device_id()));
    assert!(!w.rec.active_devices().contains(&keeper.device_id()));
    assert_eq!(w.rec.active_members().len(), 3);
    let thread = w.thread(&ana);
    for body in [
        Body::Thread {
            title: "From the keeper".into(),
        },
        Body::Message {
            thread,
            text: "I write".into(),
        },
        Body::MemberLeave,
        Body::Profile { enc_key: [9; 32] },
    ] {
        w.refuse(&keeper, &body, "keeper_cannot_write");
    }
    // Through the engine's own write path too.
    let t = w.tick();
    assert_eq!(
        refused_kind(w.rec.author(&keeper, Body::MemberLeave, t)),
        "keeper_cannot_write"
    );
    // Named twice: refused while it is a keeper.
    let again = governance::group_proposal(&w.rec, keeper_effect(&keeper, "PC"), "PC").unwrap();
    w.refuse(&ben, &again, "already_keeper");
}

#[test]
fn a_keepers_key_is_no_one_elses_and_no_one_elses_key_is_a_keepers() {
    let (ana, ben, keeper, phone, inspector, fresh) = (key(), key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    w.write(&ana, link_body(&w, &ana, &phone, "Ana's phone"));
    w.decide(
        &ben,
        Effect::Auditor {
            device: inspector.device_id(),
            name: "Inspector".into(),
        },
    );
    w.decide(&ana, keeper_effect(&keeper, "Council PC"));
    let prop = |w: &World, e: Effect| governance::group_proposal(&w.rec, e, "x").unwrap();
    // A member's id, a linked device or an auditor's cannot be named a keeper.
    for taken in [&ben, &phone, &inspector] {
        w.refuse(&ana, &prop(&w, keeper_effect(taken, "PC")), "device_taken");
    }
    // A keeper's key cannot join as a member, be linked, be an auditor, or take a seat back.
    let as_member = Effect::Add {
        member: keeper.device_id(),
        name: "Keeper".into(),
        needs: String::new(),
    };
    w.refuse(&ana, &prop(&w, as_member), "device_taken");
    w.refuse(
        &ana,
        &link_body(&w, &ana, &keeper, "my keeper"),
        "device_taken",
    );
    let as_auditor = Effect::Auditor {
        device: keeper.device_id(),
        name: "Keeper".into(),
    };
    w.refuse(&ana, &prop(&w, as_auditor), "device_taken");
    let recover = recover_effect(&w, &ana, &keeper, "new");
    w.refuse(&ben, &prop(&w, recover), "device_taken");
    // A nameless keeper, or one that is not a key.
    w.refuse(&ana, &prop(&w, keeper_effect(&fresh, " ")), "empty_text");
    let not_key = (0u8..=255)
        .map(|b| DeviceId([b; 32]))
        .find(|d| ed25519_dalek::VerifyingKey::from_bytes(&d.0).is_err())
        .expect("some 32-byte string is not a point");
    let bad = Effect::Keeper {
        device: not_key,
        name: "PC".into(),
    };
    w.refuse(&ana, &prop(&w, bad), "not_a_key");
    // Stopping a device that is not a keeper.
    let stop_other = Effect::KeeperRemove {
        device: fresh.device_id(),
    };
    w.refuse(&ana, &prop(&w, stop_other), "not_a_keeper");
}

#[test]
fn a_stopped_keeper_may_not_sync_and_still_never_writes() {
    let (ana, ben, keeper) = (key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    w.decide(&ana, keeper_effect(&keeper, "Council PC"));
    assert!(w.rec.sync_devices().contains(&keeper.device_id()));
    let (_, _, d) = w.decide(
        &ben,
        Effect::KeeperRemove {
            device: keeper.device_id(),
        },
    );
    assert_eq!(d, Decision::Passed);
    assert!(w.rec.keepers().is_empty());
    assert!(!w.rec.sync_devices().contains(&keeper.device_id()));
    w.refuse(&keeper, &Body::MemberLeave, "keeper_cannot_write");
    // Its key stays a keeper's: it cannot come back as a member.
    let as_member = governance::group_proposal(
        &w.rec,
        Effect::Add {
            member: keeper.device_id(),
            name: "Keeper".into(),
            needs: String::new(),
        },
        "Keeper",
    )
    .unwrap();
    w.refuse(&ana, &as_member, "device_taken");
    // Stopping it twice is refused; the group may name it again.
    let twice = governance::group_proposal(
        &w.rec,
        Effect::KeeperRemove {
            device: keeper.device_id(),
        },
        "Council PC",
    )
    .unwrap();
    w.refuse(&ana, &twice, "not_a_keeper");
    w.decide(&ana, keeper_effect(&keeper, "Council PC"));
    assert!(w.rec.sync_devices().contains(&keeper.device_id()));
}

#[test]
fn a_keeper_named_concurrently_with_the_same_key_joining_is_one_seat_only() {
    // Two proposals made apart: "K joins" and "K keeps our record". Both pass on their own side;
    // merged, the first in linear order takes the key and the other changes nothing.
    // Each side is written on other devices of the same members (one device writes on one side).
    let (ana, ben, k, ana_phone, ben_phone) = (key(), key(), key(), key(), key());
    let mut w = World::new(&[&ana, &ben]);
    w.write(&ana, link_body(&w, &ana, &ana_phone, "Ana's phone"));
    w.write(&ben, link_body(&w, &ben, &ben_phone, "Ben's phone"));
    let mut other = w.replica();
    w.decide(&ana, keeper_effect(&k, "PC"));
    let add = governance::group_proposal(
        &other,
        Effect::Add {
            member: k.device_id(),
            name: "K".into(),
            needs: String::new(),
        },
        "K",
    )
    .unwrap();
    let mut log = Vec::new();
    let mut t = 1000;
    let mut write = |rec: &mut Record, key: &DeviceKey, body: Body| {
        t += 1;
        let (id, e) = rec.author(key, body, t).unwrap();
        log.push(e);
        id
    };
    let p = write(&mut other, &ben_phone, add);
    for v in [&ana_phone, &ben_phone] {
        write(&mut other, v, stance_body(p, StanceKind::Agree, "", None));
    }
    let (counts, decision) = other.recount_now(&p);
    assert_eq!(decision, Decision::Passed);
    write(
        &mut other,
        &ben_phone,
        Body::Outcome {
            proposal: p,
            outcome: "K joins".into(),
            decision,
            counts,
        },
    );
    let mut all = w.log.clone();
    all.extend(log);
    let (merged, out) = Record::from_entries(w.group, all);
    assert!(out.rejected.is_empty() && out.pending.is_empty(), "{out:?}");
    let g = merged.governance();
    let member = g.active(&k.device_id());
    let keeper = g.keeper_active(&k.device_id());
    assert!(
        member ^ keeper,
        "one seat only: member {member}, keeper {keeper}"
    );
}
