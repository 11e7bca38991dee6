//! Validity is a pure function of the DAG: whatever order entries arrive in, and however they are
//! split into batches, every replica reaches the same heads, members, accepted, rejected (with the
//! same reasons) and pending entries.
//!
//! Each case plays a scenario: 3 to 7 devices, each on its own replica, write at random (threads,
//! messages, proposals with and without a removal, stances with reasons, stances typed for someone
//! else and their confirmations, closes, member adds, leaves, removals, and sealed threads by their
//! public rules: published keys, readers added, rekeys with removals, sealed messages, requests to
//! read and refusals) and exchange random subsets of
//! what they hold, at times across a network split into two sides that heal later. Devices also misbehave: a device restored from an old snapshot writes again (a
//! fork), and keys write by hand after leaving, without ever being members, or breaking a rule. Every
//! entry produced is collected and then delivered to fresh replicas in three random orders and batch
//! splits; a random part of it is delivered too (so some entries wait); and the scenario's own devices,
//! with their incremental histories and rebuilds, finally receive everything. All must agree with one
//! device that received every entry at once, in their verdicts and in the whole Automerge document
//! they hold. Last, the auditor, given every entry in a bundle, must
//! reach the same verdicts.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU64;

use proptest::prelude::*;
use roundtable_core::SealedState;
use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::sealed::{BUCKETS, EpochWrap, NONCE_LEN, TAG_LEN, WRAPPED_KEY_LEN, Wrap};
use roundtable_core::{
    Body, Decision, DeviceId, DeviceKey, DocRef, Effect, Entry, EntryId, GroupId, Invalid, Member,
    Record, Rule, StanceKind, Status, governance,
};

/// Cases per run: 256 (override with the `PROPTEST_CASES` environment variable). The whole file then
/// takes about 17 s in a debug build on 2 cores, with the workspace's `[profile.dev.package."*"]
/// opt-level = 2`. Without that override ed25519 runs unoptimised (about 13 ms per signature check)
/// and a case costs 1 to 2 s: use about 32 cases there to stay under a minute.
const CASES: u32 = 256;

// ----- a small deterministic generator (proptest drives the seeds) -----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ----- the scenario -----

#[derive(Debug, Clone)]
enum Op {
    /// Device `who` writes something valid in its own view, chosen by `what` and `pick`.
    Write {
        who: usize,
        what: u8,
        pick: usize,
        flag: bool,
    },
    /// Device `from` sends a random subset of what it holds to `to`, or (one time in three) everything
    /// it holds to every other device.
    Exchange {
        from: usize,
        to: usize,
        seed: u64,
    },
    /// The network splits: devices whose bit is set in `mask` reach only each other, the rest only
    /// each other, until `Heal`. Exchanges across the split do not happen.
    Partition {
        mask: u8,
    },
    Heal,
    /// Device `who` keeps a snapshot of its record.
    Backup {
        who: usize,
    },
    /// Device `who` is restored from its snapshot and writes from there: a fork when it wrote since.
    Twin {
        who: usize,
    },
    /// Key `who` (index `n` is an outsider) writes by hand, without the engine's checks, on the heads
    /// of device `on`'s record: after leaving, after removal, never a member, or breaking a rule.
    Forge {
        who: usize,
        on: usize,
        what: u8,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    /// Number of devices (members or future members).
    n: usize,
    /// How many of them the creator adds at the start.
    initial: usize,
    majority: bool,
    ops: Vec<Op>,
    /// Delivery orders to try: a shuffle seed and a number of batches.
    deliveries: Vec<(u64, usize)>,
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    let dev = 0..n;
    prop_oneof![
        10 => (dev.clone(), any::<u8>(), any::<usize>(), any::<bool>())
            .prop_map(|(who, what, pick, flag)| Op::Write { who, what, pick, flag }),
        8 => (dev.clone(), dev.clone(), any::<u64>())
            .prop_map(|(from, to, seed)| Op::Exchange { from, to, seed }),
        1 => any::<u8>().prop_map(|mask| Op::Partition { mask }),
        1 => Just(Op::Heal),
        1 => dev.clone().prop_map(|who| Op::Backup { who }),
        1 => dev.clone().prop_map(|who| Op::Twin { who }),
        2 => (0..=n, dev, any::<u8>()).prop_map(|(who, on, what)| Op::Forge { who, on, what }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (3usize..=7)
        .prop_flat_map(|n| {
            (
                Just(n),
                2..n,
                any::<bool>(),
                proptest::collection::vec(op(n), 30..120),
                proptest::collection::vec((any::<u64>(), 1usize..=4), 3),
            )
        })
        .prop_map(|(n, initial, majority, ops, deliveries)| Scenario {
            n,
            initial,
            majority,
            ops,
            deliveries,
        })
}

// ----- devices -----

/// A device's record and every entry it holds, as a store keeps them.
struct Replica {
    rec: Record,
    held: Vec<Entry>,
    ids: HashSet<EntryId>,
    backup: Option<(Vec<u8>, Vec<u8>)>,
}

fn id_of(e: &Entry) -> EntryId {
    e.parse().expect("scenario entries parse").hash
}

impl Replica {
    fn new(group: GroupId) -> Replica {
        Replica {
            rec: Record::new(group),
            held: Vec::new(),
            ids: HashSet::new(),
            backup: None,
        }
    }

    /// Ingests what is new, rebuilding from everything held when the engine asks to (as a store does).
    fn deliver(&mut self, batch: Vec<Entry>) {
        let batch: Vec<Entry> = batch
            .into_iter()
            .filter(|e| self.ids.insert(id_of(e)))
            .collect();
        self.held.extend(batch.iter().cloned());
        let out = self.rec.ingest(batch);
        if out.rebuild {
            let (rec, again) = Record::from_entries(self.rec.group(), self.held.clone());
            assert!(!again.rebuild);
            self.rec = rec;
        }
    }

    fn active(&self, m: &DeviceId) -> bool {
        self.rec
            .members()
            .iter()
            .any(|x| x.id == *m && x.status == Status::Active)
    }

    fn bodies(&self) -> Vec<(EntryId, DeviceId, Body)> {
        self.rec
            .causal_order()
            .iter()
            .filter_map(|h| self.rec.entry(h).map(|(a, m)| (*h, a, m.body.clone())))
            .collect()
    }
}

fn pick<T: Clone>(v: &[T], i: usize) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[i % v.len()].clone())
    }
}

/// Which kind of record `Op::Write` wants: 0 thread, 1 message, 2 proposal, 3 stance, 4 stance typed
/// for another member, 5 confirmation of one, 6 close, 7 proposal to add a member, 8 leave,
/// 9 removal, 17 proposal to change the policy; sealed threads (their public rules): 10 profile,
/// 11 sealed thread, 12 sealed message, 13 reader add, 14 rekey (with or without a removal), 15 ask,
/// 16 decline.
const WANT: [u8; 34] = [
    0, 1, 1, 2, 3, 3, 4, 4, 5, 5, 6, 6, 6, 7, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 11, 12, 12, 13, 14,
    15, 16, 17, 17,
];

/// What to write instead when a kind cannot be written yet: the step that leads to it.
fn prerequisite(kind: u8) -> u8 {
    match kind {
        3 | 4 | 17 => 2,
        5 | 6 => 3,
        7 | 8 => 1,
        11 => 10,
        12..=15 => 11,
        16 => 15,
        _ => 0,
    }
}

/// A published encryption key. Its bytes only need to be non-zero: the rules check who holds which
/// key, and a non-reader cannot tell real ciphertext from these bytes.
fn enc_key(me: &DeviceId, t: i64) -> [u8; 32] {
    let mut k = me.0;
    k[..8].copy_from_slice(&t.to_le_bytes());
    k[31] |= 1;
    k
}

/// A wrap of an epoch key for `member`, sealed (as far as anyone but them can tell) to their
/// published key.
fn wrap_for(rec: &Record, member: DeviceId, t: i64) -> Option<Wrap> {
    Some(Wrap {
        member,
        key: rec.profile_key(&member)?,
        enc: enc_key(&member, t),
        ct: vec![7; WRAPPED_KEY_LEN],
    })
}

/// The body device `me` writes for `Op::Write`: the kind `what` picks if it can be written in `me`'s
/// view, else the step towards it (a stance before a close, a proposal before a stance, ...).
fn choose(
    rep: &Replica,
    me: DeviceId,
    keys: &[DeviceKey],
    what: u8,
    p: usize,
    flag: bool,
    t: i64,
) -> Option<Body> {
    let mut kind = WANT[usize::from(what) % WANT.len()];
    loop {
        if let Some(b) = body_of_kind(kind, rep, me, keys, p, flag, t) {
            return Some(b);
        }
        if kind == 0 {
            return None;
        }
        kind = prerequisite(kind);
    }
}

#[allow(clippy::too_many_arguments)]
fn body_of_kind(
    kind: u8,
    rep: &Replica,
    me: DeviceId,
    keys: &[DeviceKey],
    p: usize,
    flag: bool,
    t: i64,
) -> Option<Body> {
    let all = rep.bodies();
    // Open threads: messages, proposals and actions never go in a sealed one.
    let threads: Vec<EntryId> = rep
        .rec
        .threads()
        .into_iter()
        .filter(|h| rep.rec.sealed_state(h).is_none())
        .collect();
    let proposals: Vec<(EntryId, Option<DeviceId>)> = all
        .iter()
        .filter_map(|(h, _, b)| match b {
            Body::Proposal { effect, .. } => Some((
                *h,
                match effect {
                    Some(Effect::Remove { member }) => Some(*member),
                    _ => None,
                },
            )),
            _ => None,
        })
        .collect();
    let open: Vec<EntryId> = proposals
        .iter()
        .map(|(h, _)| *h)
        .filter(|h| rep.rec.outcome(h).is_none())
        .collect();
    let (group_rule, group_quorum) = rep.rec.policy()?;
    let active: Vec<DeviceId> = rep
        .rec
        .members()
        .into_iter()
        .filter(|m| m.status == Status::Active)
        .map(|m| m.id)
        .collect();
    let others: Vec<DeviceId> = active.iter().copied().filter(|k| *k != me).collect();
    // Mostly agreement, so that decisions (and removals) pass often enough.
    let kinds = [
        StanceKind::Agree,
        StanceKind::Agree,
        StanceKind::Agree,
        StanceKind::Abstain,
        StanceKind::Disagree,
        StanceKind::Block,
    ];
    let stance = |on_behalf| {
        let proposal = pick(&open, p)?;
        // Changes to the group itself mostly find agreement, so that they pass now and then.
        let about_group = proposals.iter().any(|(h, _)| {
            *h == proposal
                && rep.rec.entry(h).is_some_and(|(_, m)| {
                    matches!(
                        m.body,
                        Body::Proposal {
                            effect: Some(_),
                            ..
                        }
                    )
                })
        });
        Some(Body::Stance {
            proposal,
            stance: if about_group && p % 6 != 5 {
                StanceKind::Agree
            } else {
                kinds[(p / 7) % kinds.len()]
            },
            reason: format!("reason {t}"),
            on_behalf,
        })
    };
    match kind {
        0 => Some(Body::Thread {
            title: format!("thread {t}"),
        }),
        1 => Some(Body::Message {
            thread: pick(&threads, p)?,
            text: format!("message {t}"),
        }),
        2 => Some(Body::Proposal {
            thread: pick(&threads, p)?,
            title: format!("proposal {t}"),
            text: "text".into(),
            easy_read: "easy".into(),
            // Never weaker than the group's policy; sometimes asking for more.
            rule: if p.is_multiple_of(2) {
                Rule::Consent
            } else {
                group_rule
            },
            quorum: group_quorum + (p / 2 % 2) as u64,
            effect: if flag {
                Some(Effect::Remove {
                    member: pick(&others, p / 5)?,
                })
            } else {
                None
            },
            closes: None,
        }),
        3 => stance(None),
        4 => stance(Some(pick(&others, p / 3)?)),
        5 => {
            let mine: Vec<EntryId> = all
                .iter()
                .filter(
                    |(_, _, b)| matches!(b, Body::Stance { on_behalf: Some(m), .. } if *m == me),
                )
                .map(|(h, _, _)| *h)
                .collect();
            Some(Body::Confirm {
                target: pick(&mine, p)?,
            })
        }
        6 => {
            // Close once enough members have a say (or settle closes that conflict).
            let quorate: Vec<EntryId> = proposals
                .iter()
                .map(|(h, _)| *h)
                .filter(|h| rep.rec.standing(h).is_none_or(|s| s.conflict()))
                .filter(|h| rep.rec.tally_now(h).is_some_and(|t| t.quorate()))
                .collect();
            // Half the time, a change to the group itself that would pass, if there is one.
            let about_group: Vec<EntryId> = quorate
                .iter()
                .copied()
                .filter(|h| matches!(rep.rec.entry(h), Some((_, m)) if matches!(m.body, Body::Proposal { effect: Some(_), .. })))
                .filter(|h| rep.rec.tally_now(h).is_some_and(|t| t.decision == Decision::Passed))
                .collect();
            let quorate = if p.is_multiple_of(2) && !about_group.is_empty() {
                about_group
            } else {
                quorate
            };
            let proposal = pick(&quorate, p)?;
            let (counts, decision) = rep.rec.recount_now(&proposal);
            Some(Body::Outcome {
                proposal,
                outcome: format!("closed {t}"),
                decision,
                counts,
            })
        }
        7 => {
            // A proposal to add (or re-add) someone.
            let outside: Vec<DeviceId> = keys
                .iter()
                .map(DeviceKey::device_id)
                .filter(|k| !active.contains(k))
                .collect();
            let effect = Effect::Add {
                member: pick(&outside, p)?,
                name: format!("member {t}"),
                needs: String::new(),
            };
            governance::group_proposal(&rep.rec, effect, "someone")
        }
        8 => (flag && p.is_multiple_of(3)).then_some(Body::MemberLeave),
        17 => {
            // Vote on an open policy proposal, else propose one.
            let policy: Vec<EntryId> = open
                .iter()
                .copied()
                .filter(|h| matches!(rep.rec.entry(h), Some((_, m)) if matches!(m.body, Body::Proposal { effect: Some(Effect::Policy { .. }), .. })))
                .collect();
            if let Some(proposal) = pick(&policy, p) {
                return Some(Body::Stance {
                    proposal,
                    stance: StanceKind::Agree,
                    reason: String::new(),
                    on_behalf: None,
                });
            }
            let effect = Effect::Policy {
                rule: if p.is_multiple_of(2) {
                    Rule::Consent
                } else {
                    Rule::Majority
                },
                quorum: 1 + (p / 10 % 3) as u64,
            };
            governance::group_proposal(&rep.rec, effect, "policy")
        }
        10..=16 => sealed_body(kind, rep, me, &active, p, flag, t),
        _ => {
            // Removals take a decision: close or support an open one, else propose one.
            let removals: Vec<(EntryId, DeviceId)> = proposals
                .iter()
                .filter_map(|(h, r)| Some((*h, (*r)?)))
                .filter(|(_, r)| *r != me && active.contains(r))
                .collect();
            let open: Vec<EntryId> = removals
                .iter()
                .map(|(h, _)| *h)
                .filter(|h| rep.rec.outcome(h).is_none())
                .collect();
            let voted = |h: &EntryId| {
                all.iter().any(|(_, a, b)| {
                    *a == me && matches!(b, Body::Stance { proposal, on_behalf: None, .. } if proposal == h)
                })
            };
            match pick(&open, p) {
                // Close when it would pass, or now and then when it would not.
                Some(proposal)
                    if rep.rec.tally_now(&proposal).is_some_and(|t| {
                        t.quorate()
                            && (t.decision == Decision::Passed || (flag && p.is_multiple_of(4)))
                    }) && (voted(&proposal) || flag) =>
                {
                    let (counts, decision) = rep.rec.recount_now(&proposal);
                    Some(Body::Outcome {
                        proposal,
                        outcome: format!("closed {t}"),
                        decision,
                        counts,
                    })
                }
                Some(proposal) => Some(Body::Stance {
                    proposal,
                    stance: StanceKind::Agree,
                    reason: String::new(),
                    on_behalf: None,
                }),
                None => governance::group_proposal(
                    &rep.rec,
                    Effect::Remove {
                        member: pick(&others, p)?,
                    },
                    "someone",
                ),
            }
        }
    }
}

/// The sealed-thread records, as an honest device writes them (wraps for exactly the right members,
/// the writable epoch, padded ciphertext).
fn sealed_body(
    kind: u8,
    rep: &Replica,
    me: DeviceId,
    active: &[DeviceId],
    p: usize,
    flag: bool,
    t: i64,
) -> Option<Body> {
    let rec = &rep.rec;
    let sealed: Vec<(EntryId, SealedState)> = rec
        .threads()
        .into_iter()
        .filter_map(|h| Some((h, rec.sealed_state(&h)?)))
        .collect();
    let reading: Vec<(EntryId, SealedState)> = sealed
        .iter()
        .filter(|(_, st)| st.readers.contains(&me))
        .cloned()
        .collect();
    let keyed: Vec<DeviceId> = active
        .iter()
        .copied()
        .filter(|m| rec.profile_key(m).is_some())
        .collect();
    match kind {
        10 => Some(Body::Profile {
            enc_key: enc_key(&me, t),
        }),
        11 => {
            rec.profile_key(&me)?;
            // Wrap lists are canonical: one per member, in member order.
            let mut readers = vec![me];
            readers.extend(
                keyed
                    .iter()
                    .enumerate()
                    .filter(|(i, m)| **m != me && (p >> i) & 1 == 1)
                    .map(|(_, m)| *m),
            );
            readers.sort();
            Some(Body::SealedThread {
                title: format!("sealed {t}"),
                reason: format!("because {t}"),
                commit: [3; 32],
                wraps: readers
                    .into_iter()
                    .map(|m| wrap_for(rec, m, t))
                    .collect::<Option<_>>()?,
            })
        }
        12 => {
            let (thread, st) = pick(&reading, p)?;
            let epoch = st.writable_epoch()?;
            Some(Body::Sealed {
                thread,
                epoch: epoch.id,
                ct: vec![p as u8; BUCKETS[p % 3] + NONCE_LEN + TAG_LEN],
            })
        }
        13 => {
            let (thread, st) = pick(&reading, p)?;
            let outside: Vec<DeviceId> = keyed
                .iter()
                .copied()
                .filter(|m| !st.readers.contains(m))
                .collect();
            let member = pick(&outside, p / 3)?;
            // Every other reader agrees first (S32); the last to agree lets them in.
            if !st.waiting_for(&member, &me).is_empty() {
                return Some(Body::ReaderAgree { thread, member });
            }
            let key = rec.profile_key(&member)?;
            let mut wraps: Vec<EpochWrap> = st
                .epochs
                .iter()
                .map(|e| EpochWrap {
                    epoch: e.id,
                    key,
                    enc: enc_key(&member, t),
                    ct: vec![9; WRAPPED_KEY_LEN],
                })
                .collect();
            wraps.sort_by_key(|w| w.epoch);
            Some(Body::ReaderAdd {
                thread,
                member,
                wraps,
            })
        }
        14 => {
            let (thread, st) = pick(&reading, p)?;
            let others: Vec<DeviceId> = st.readers.iter().copied().filter(|m| *m != me).collect();
            let removes = if flag { pick(&others, p / 3) } else { None };
            let wraps = st
                .readers
                .iter()
                .filter(|m| Some(**m) != removes)
                .map(|m| wrap_for(rec, *m, t))
                .collect::<Option<_>>()?;
            Some(Body::Rekey {
                thread,
                removes,
                commit: [4; 32],
                wraps,
            })
        }
        15 => {
            let closed: Vec<EntryId> = sealed
                .iter()
                .filter(|(_, st)| !st.readers.contains(&me))
                .map(|(h, _)| *h)
                .collect();
            Some(Body::Ask {
                thread: pick(&closed, p)?,
                why: format!("may I read {t}"),
            })
        }
        _ => {
            let asks: Vec<(EntryId, DeviceId)> = reading
                .iter()
                .filter_map(|(h, st)| {
                    let info = rec.sealed_thread(h)?;
                    let (_, m, _) = info.asks.iter().find(|(_, m, _)| !st.readers.contains(m))?;
                    Some((*h, *m))
                })
                .collect();
            let (thread, member) = pick(&asks, p)?;
            Some(Body::Decline {
                thread,
                member,
                reason: format!("not now {t}"),
            })
        }
    }
}

/// What a device that skips the checks writes: a thread (refused only when its author is not an
/// active member), a block without a reason, a close with the wrong counts, a removal or an add
/// without a decision, or a close before the quorum is reached.
fn hostile(rec: &Record, me: DeviceId, what: u8, t: i64) -> Body {
    let thread = Body::Thread {
        title: format!("forged {t}"),
    };
    let ids = rec.causal_order();
    let proposal = ids.iter().copied().find(|h| {
        matches!(rec.entry(h), Some((_, m)) if matches!(m.body, Body::Proposal { .. }))
            && rec.outcome(h).is_none()
    });
    match (what % 6, proposal) {
        (4, _) => Body::MemberAdd {
            member: DeviceKey::from_secret(&[200; 32]).device_id(),
            name: format!("sock {t}"),
            needs: String::new(),
        },
        (5, Some(proposal)) if rec.tally_now(&proposal).is_some_and(|t| !t.quorate()) => {
            let (counts, decision) = rec.recount_now(&proposal);
            Body::Outcome {
                proposal,
                outcome: format!("too early {t}"),
                decision,
                counts,
            }
        }
        (1, Some(proposal)) => Body::Stance {
            proposal,
            stance: StanceKind::Block,
            reason: " ".into(),
            on_behalf: None,
        },
        (2, Some(proposal)) => {
            let (mut counts, decision) = rec.recount_now(&proposal);
            counts.agree += 1;
            Body::Outcome {
                proposal,
                outcome: format!("forged {t}"),
                decision,
                counts,
            }
        }
        (3, _) => match rec
            .members()
            .into_iter()
            .find(|m| m.id != me && m.status == Status::Active)
        {
            Some(m) => Body::MemberRemove {
                member: m.id,
                decision: ids.first().copied().unwrap_or(EntryId([0; 32])),
            },
            None => thread,
        },
        _ => thread,
    }
}

/// Builds and signs an entry by hand on the heads of `rec`, as a device that skips the checks would.
fn forge(rec: &Record, genesis: &Entry, key: &DeviceKey, body: &Body, t: i64) -> Option<Entry> {
    let me = key.device_id();
    let seq = rec
        .causal_order()
        .iter()
        .filter_map(|h| rec.entry(h))
        .filter(|(a, _)| *a == me)
        .map(|(_, m)| m.seq)
        .max()
        .unwrap_or(0)
        + 1;
    let deps = rec.heads();
    let max_op = deps
        .iter()
        .filter_map(|d| rec.entry(d))
        .map(|(_, m)| m.max_op)
        .max()?;
    let containers = decode_change(&genesis.parse().ok()?.change, &BTreeMap::new())
        .ok()?
        .1;
    let frame = ChangeFrame {
        actor: me,
        seq,
        start_op: NonZeroU64::new(max_op + 1)?,
        deps,
        time_ms: t,
    };
    let change = build_change(body, &frame, &containers).ok()?;
    let hash = EntryId::from(change.hash());
    Some(Entry::sign(
        key,
        &rec.group(),
        DocRef::Public,
        change.raw_bytes().to_vec(),
        &hash,
    ))
}

/// Plays a scenario; returns the group and every entry any device produced.
fn play(s: &Scenario) -> (GroupId, Vec<Entry>, Vec<Replica>) {
    let keys: Vec<DeviceKey> = (0..=s.n)
        .map(|i| DeviceKey::from_secret(&[i as u8 + 1; 32]))
        .collect();
    let (members, outsider) = keys.split_at(s.n);
    let rule = if s.majority {
        Rule::Majority
    } else {
        Rule::Consent
    };
    let (rec, genesis) = Record::create(&members[0], "Group", rule, 1, "Member 0", "", 0).unwrap();
    let group = rec.group();
    let mut pool = vec![genesis.clone()];
    let mut creator = Replica::new(group);
    creator.deliver(vec![genesis.clone()]);
    // The founding: each newcomer joins by the agreement of everyone already in.
    let names: Vec<String> = (0..=s.initial).map(|i| format!("Member {i}")).collect();
    let newcomers: Vec<(&DeviceKey, &str, &str)> = members
        .iter()
        .zip(&names)
        .take(s.initial + 1)
        .skip(1)
        .map(|(k, n)| (k, n.as_str(), ""))
        .collect();
    let mut t = 0;
    governance::add_members(group, 1, &members[0], &newcomers, |k, body| {
        t += 1;
        let (id, e) = creator.rec.author(k, body, t)?;
        creator.held.push(e.clone());
        creator.ids.insert(id);
        pool.push(e);
        Ok::<_, roundtable_core::Refused>(id)
    })
    .unwrap();
    let mut reps: Vec<Replica> = (0..s.n).map(|_| Replica::new(group)).collect();
    for r in reps.iter_mut().skip(1) {
        r.deliver(pool.clone());
    }
    reps[0] = creator;

    // While partitioned: which side each device is on.
    let mut split: Option<u8> = None;
    let same_side =
        |split: Option<u8>, a: usize, b: usize| split.is_none_or(|m| (m >> a) & 1 == (m >> b) & 1);
    for (step, o) in s.ops.iter().enumerate() {
        let t = 100 + step as i64;
        match o {
            Op::Partition { mask } => split = Some(*mask),
            Op::Heal => split = None,
            Op::Write {
                who,
                what,
                pick,
                flag,
            } => {
                let me = members[*who].device_id();
                let rep = &mut reps[*who];
                if !rep.active(&me) {
                    continue;
                }
                let Some(body) = choose(rep, me, members, *what, *pick, *flag, t) else {
                    continue;
                };
                match rep.rec.author(&members[*who], body.clone(), t) {
                    Ok((id, e)) => {
                        assert!(rep.ids.insert(id));
                        rep.held.push(e.clone());
                        pool.push(e);
                    }
                    // After a fork, this device's next position may hold an entry it signed that was
                    // refused or waits: writing there is a fork too, refused when it would lose.
                    Err(roundtable_core::Refused::Invalid(Invalid::Fork { .. })) => {}
                    Err(e) => panic!("{body:?} was refused: {e}"),
                }
            }
            Op::Exchange { from, seed, .. } if seed % 3 == 0 => {
                // A meeting: `from` hands everything it holds to everyone.
                let all = reps[*from].held.clone();
                for (i, r) in reps.iter_mut().enumerate() {
                    if i != *from && same_side(split, i, *from) {
                        r.deliver(all.clone());
                    }
                }
            }
            Op::Exchange { from, to, seed } => {
                if from == to || !same_side(split, *from, *to) {
                    continue;
                }
                let mut rng = Rng(*seed);
                let all = seed % 4 == 1;
                let mut batch: Vec<Entry> = reps[*from]
                    .held
                    .iter()
                    .filter(|_| all || rng.below(4) != 0)
                    .cloned()
                    .collect();
                rng.shuffle(&mut batch);
                reps[*to].deliver(batch);
            }
            Op::Backup { who } => {
                reps[*who].backup = Some(reps[*who].rec.snapshot().unwrap());
            }
            Op::Twin { who } => {
                let Some((doc, index)) = &reps[*who].backup else {
                    continue;
                };
                let mut twin = Record::restore(group, doc, index).unwrap();
                let key = &members[*who];
                let Ok((thread, e1)) = twin.author(
                    key,
                    Body::Thread {
                        title: format!("twin {t}"),
                    },
                    t,
                ) else {
                    continue;
                };
                let mut made = vec![e1];
                if let Ok((_, e2)) = twin.author(
                    key,
                    Body::Message {
                        thread,
                        text: "from the twin".into(),
                    },
                    t,
                ) {
                    made.push(e2);
                }
                pool.extend(made.iter().cloned());
                reps[*who].deliver(made);
            }
            Op::Forge { who, on, what } => {
                let key = if *who < s.n {
                    &members[*who]
                } else {
                    &outsider[0]
                };
                let body = hostile(&reps[*on].rec, key.device_id(), *what, t);
                if let Some(e) = forge(&reps[*on].rec, &genesis, key, &body, t)
                    && !reps[*on].ids.contains(&id_of(&e))
                {
                    pool.push(e.clone());
                    reps[*on].deliver(vec![e]);
                }
            }
        }
    }
    (group, pool, reps)
}

/// Everything a replica's verdicts decide.
#[derive(Debug, PartialEq)]
struct Summary {
    heads: Vec<EntryId>,
    members: Vec<Member>,
    accepted: BTreeSet<EntryId>,
    rejected: BTreeMap<EntryId, Invalid>,
    pending: Vec<EntryId>,
    /// Valid entries written concurrently with their author's removal.
    concurrent: BTreeSet<EntryId>,
    /// The decision that stands for every proposal, and whether closes conflict.
    decisions: BTreeMap<EntryId, Option<(EntryId, Decision, bool)>>,
    auditors: Vec<(DeviceId, String)>,
    policy: Option<(Rule, u64)>,
}

fn summary(r: &Record) -> Summary {
    Summary {
        heads: r.heads(),
        members: r.members(),
        accepted: r.causal_order().iter().copied().collect(),
        rejected: r.rejected().iter().map(|(k, v)| (*k, v.clone())).collect(),
        pending: r.pending_ids(),
        concurrent: r
            .causal_order()
            .iter()
            .copied()
            .filter(|h| r.concurrent_with_removal(h))
            .collect(),
        decisions: r
            .causal_order()
            .iter()
            .filter(
                |h| matches!(r.entry(h), Some((_, m)) if matches!(m.body, Body::Proposal { .. })),
            )
            .map(|h| {
                (
                    *h,
                    r.standing(h).map(|s| (s.outcome, s.decision, s.conflict())),
                )
            })
            .collect(),
        auditors: r.auditors(),
        policy: r.policy(),
    }
}

/// No one's standing changed without a passed decision of the group: every member but the founder
/// joined by a passed proposal to add them, everyone removed by a passed proposal to remove them,
/// and the policy is the genesis's or a passed policy decision's.
fn governed(r: &Record, founder: DeviceId) -> Result<(), String> {
    let passed: Vec<Effect> = r
        .causal_order()
        .iter()
        .filter_map(|h| match r.entry(h).map(|(_, m)| &m.body) {
            Some(Body::Proposal {
                effect: Some(e), ..
            }) if matches!(r.outcome(h), Some((_, Decision::Passed))) => Some(e.clone()),
            _ => None,
        })
        .collect();
    for m in r.members() {
        let added = passed
            .iter()
            .any(|e| matches!(e, Effect::Add { member, .. } if *member == m.id));
        if m.id != founder && !added {
            return Err(format!("{} is a member without a decision", m.id));
        }
        let removed = passed
            .iter()
            .any(|e| matches!(e, Effect::Remove { member } if *member == m.id));
        if m.status == Status::Removed && !removed {
            return Err(format!("{} was removed without a decision", m.id));
        }
    }
    if r.auditors().iter().any(|(d, _)| {
        !passed
            .iter()
            .any(|e| matches!(e, Effect::Auditor { device, .. } if device == d))
    }) {
        return Err("an auditor was let in without a decision".into());
    }
    let policy = r.policy();
    let genesis_policy = r.entry(&r.group()).and_then(|(_, m)| match &m.body {
        Body::Genesis { rule, quorum, .. } => Some((*rule, *quorum)),
        _ => None,
    });
    if policy != genesis_policy
        && !passed.iter().any(
            |e| matches!(e, Effect::Policy { rule, quorum } if Some((*rule, *quorum)) == policy),
        )
    {
        return Err("the policy changed without a decision".into());
    }
    Ok(())
}

/// The record's state as members see it: the whole Automerge document, materialised (every thread,
/// message, stance, outcome, member and sealed ciphertext), independent of the order changes arrived in.
fn state(r: &mut Record) -> automerge::hydrate::Value {
    r.doc()
        .expect("the document of valid entries loads")
        .hydrate(None)
}

/// Delivers `entries` to a fresh device in the order and batches `seed` and `batches` give.
fn shuffled(group: GroupId, entries: &[Entry], seed: u64, batches: usize) -> Record {
    let mut rng = Rng(seed);
    let mut order = entries.to_vec();
    rng.shuffle(&mut order);
    let mut cuts: Vec<usize> = (1..batches).map(|_| rng.below(order.len() + 1)).collect();
    cuts.push(order.len());
    cuts.sort_unstable();
    let mut r = Replica::new(group);
    let mut at = 0;
    for c in cuts {
        r.deliver(order[at..c].to_vec());
        at = c;
    }
    r.rec
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES),
    ))]

    #[test]
    fn every_delivery_order_reaches_the_same_verdicts(s in scenario()) {
        let (group, pool, reps) = play(&s);
        let (mut reference, _) = Record::from_entries(group, pool.clone());
        let want = summary(&reference);
        let want_state = state(&mut reference);
        prop_assert_eq!(want.accepted.len() + want.rejected.len() + want.pending.len(), pool.len());
        let founder = DeviceKey::from_secret(&[1; 32]).device_id();
        prop_assert_eq!(governed(&reference, founder), Ok(()));
        // `COVERAGE=1 ... -- --nocapture` prints what each case exercised (figures for the notes).
        if std::env::var("COVERAGE").is_ok() {
            let removed = want.members.iter().filter(|m| m.status == Status::Removed).count();
            let joined = want.members.len();
            let conflicts = want.decisions.values().filter(|d| d.is_some_and(|x| x.2)).count();
            let closed = want.decisions.values().filter(|d| d.is_some()).count();
            let voids = want.accepted.iter().filter(|h| reference.void_now(h)).count();
            let quor = want.rejected.values().filter(|r| r.kind() == "not_quorate").count();
            eprintln!("COV members {joined} removed {removed} closed {closed} conflicts {conflicts} void {voids} flagged {} notquorate {quor} policy {:?}", want.concurrent.len(), want.policy);
        }

        // Fresh replicas, every entry, random orders and batch splits: the same verdicts and the
        // same document.
        for (seed, batches) in &s.deliveries {
            let mut r = shuffled(group, &pool, *seed, *batches);
            prop_assert_eq!(&summary(&r), &want, "seed {} batches {}", seed, batches);
            prop_assert_eq!(&state(&mut r), &want_state, "seed {} batches {}", seed, batches);
        }

        // Some entries never arrive: the rest wait or are judged, the same way in any order.
        let mut rng = Rng(s.deliveries[0].0 ^ 0x5eed);
        let part: Vec<Entry> = pool.iter().filter(|_| rng.below(5) != 0).cloned().collect();
        let (mut reference, _) = Record::from_entries(group, part.clone());
        let (seed, batches) = s.deliveries[1];
        let mut partial = shuffled(group, &part, seed, batches);
        prop_assert_eq!(summary(&partial), summary(&reference));
        prop_assert_eq!(state(&mut partial), state(&mut reference));

        // The scenario's own devices, after they receive everything.
        for mut rep in reps {
            rep.deliver(pool.clone());
            prop_assert_eq!(&summary(&rep.rec), &want);
            prop_assert_eq!(&state(&mut rep.rec), &want_state);
        }

        // The auditor, given every entry in a bundle, reaches the same verdicts.
        let mut ordered: Vec<Entry> = Vec::with_capacity(pool.len());
        let by_id: std::collections::HashMap<EntryId, &Entry> =
            pool.iter().map(|e| (id_of(e), e)).collect();
        let valid: HashSet<EntryId> = want.accepted.iter().copied().collect();
        // Valid entries in a causal order, as `export` writes them; then the rest.
        let (full, _) = Record::from_entries(group, pool.clone());
        ordered.extend(full.causal_order().iter().filter_map(|h| by_id.get(h).map(|e| (*e).clone())));
        ordered.extend(pool.iter().filter(|e| !valid.contains(&id_of(e))).cloned());
        let report = roundtable_audit::audit(&roundtable_core::bundle::encode(&group, &ordered), 2)
            .expect("a bundle the test wrote is readable");
        prop_assert_eq!(report.valid_entries, want.accepted.len());
        prop_assert!(!report.notes.iter().any(|n| n.kind == "out_of_order" && n.entry_id.as_ref().is_some_and(|i| valid.iter().any(|v| v.to_string() == *i))));
        let ids_of = |kinds: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
            report
                .problems
                .iter()
                .filter(|p| kinds(&p.kind))
                .filter_map(|p| p.entry_id.clone())
                .collect()
        };
        let by_rule = ids_of(&|k| {
            !(matches!(
                k,
                "bad_signature" | "malformed" | "unsupported_document" | "missing_dependency"
                    | "conflicting_outcomes"
            ) || k.starts_with("change_"))
        });
        let want_rejected: BTreeSet<String> = want.rejected.keys().map(|k| k.to_string()).collect();
        prop_assert_eq!(by_rule, want_rejected);
        // Closes made apart that disagree: the auditor names the same proposals as every device.
        let conflicts = ids_of(&|k| k == "conflicting_outcomes");
        let want_conflicts: BTreeSet<String> = want
            .decisions
            .iter()
            .filter(|(_, d)| d.is_some_and(|(_, _, c)| c))
            .map(|(p, _)| p.to_string())
            .collect();
        prop_assert_eq!(conflicts, want_conflicts);
        let waiting = ids_of(&|k| k == "missing_dependency");
        let want_pending: BTreeSet<String> = want.pending.iter().map(|k| k.to_string()).collect();
        prop_assert_eq!(waiting, want_pending);
        let flagged: BTreeSet<String> = report.flags.iter().map(|f| f.entry_id.clone()).collect();
        let want_flagged: BTreeSet<String> = want.concurrent.iter().map(|k| k.to_string()).collect();
        prop_assert_eq!(flagged, want_flagged);
        let members: Vec<(String, String)> = report
            .members
            .iter()
            .map(|m| (m.member_id.clone(), m.status.clone()))
            .collect();
        let want_members: Vec<(String, String)> = want
            .members
            .iter()
            .map(|m| (m.id.to_string(), m.status.as_str().to_string()))
            .collect();
        prop_assert_eq!(members, want_members);
    }
}
