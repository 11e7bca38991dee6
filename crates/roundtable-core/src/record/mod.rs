//! The record engine: verify-then-apply. [`Record::ingest`] takes entries from anywhere (a peer, a
//! bundle, the store's log, this device's own writes through [`Record::author`]) and decides, for
//! each, valid, pending or rejected.
//!
//! **Invariant (validity is a pure function of the DAG):** the verdict on every entry depends only on
//! the set of entries known, never on the order they arrived in or on who relayed them. The engine
//! keeps that promise in three steps for every batch: (1) parse and check signatures, (2) settle
//! forks across everything known (the lowest hash at an `(actor, seq)` wins), (3) walk the entries in
//! causal order, so each is judged against exactly its causal past. When a fork is settled against an
//! entry that was already applied, the caller rebuilds from all entries ([`Ingested::rebuild`]).
//!
//! **Invariant:** only valid entries ever reach Automerge.
//!
//! The rest of the record lives in submodules, each `impl Record` for one concern: `clock`
//! (causal positions), `verify` (the signature phase, also run in parallel for the auditor),
//! `index` (what is kept for each valid entry, built as it is admitted), `query` (the read-only
//! views) and `snapshot` (the Automerge document and snapshots). The per-record rules are in
//! `crate::rules`, the governance fold in [`crate::governance`] and the recount in
//! [`crate::recount`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU64;

use automerge::Automerge;

use crate::body::{Body, ChangeFrame, build_change, decode_change};
use crate::change::ParsedChange;
use crate::entry::{DocRef, Entry, validate_signature};
use crate::governance::Governance;
use crate::id::{DeviceId, EntryId, GroupId};
use crate::identity::DeviceKey;

mod clock;
mod index;
mod position;
mod query;
mod snapshot;
mod verify;

pub use crate::governance::{Member, Status};
pub use crate::invalid::Invalid;
pub use crate::rules::{Epoch, HeldWrap, SealedState};
pub use clock::Clock;
pub(crate) use index::Index;
pub use index::Meta;
pub use position::Forks;
use position::Positions;
pub use query::{ActionDoneBy, ActionState, SealedInfo};
use snapshot::Doc;
pub use snapshot::SnapshotError;
use verify::digest_id;
pub use verify::{Verified, Verifier, verify_signatures};

/// The record's maps: entry ids hash fast with foldhash, seeded at random in each process so that
/// no one can make entries whose ids share a bucket.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An entry that is not (or not yet) part of the record.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The change hash when the entry was rejected by a rule; the SHA-256 of its encoded bytes when it
    /// could not be parsed or its signature failed (so a forged copy never shares the real entry's id).
    pub id: EntryId,
    /// The entry, verbatim, kept as evidence.
    pub entry: Entry,
    /// Why: the first rule it fails, with its stable kind ([`Invalid::kind`]).
    pub reason: Invalid,
}

/// What one call to [`Record::ingest`] did.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Newly valid entries, in a causal order.
    pub accepted: Vec<EntryId>,
    /// The bytes of the newly valid entries, for the store.
    pub entries: HashMap<EntryId, Entry>,
    /// Entries now waiting for entries they build on.
    pub pending: Vec<(EntryId, Entry)>,
    /// Entries refused in this batch, including those that depend on a refused entry.
    pub rejected: Vec<Rejection>,
    /// Entries the record already held.
    pub duplicates: usize,
    /// A fork was settled against an entry already applied: nothing in this batch was applied, and
    /// the caller must rebuild the record from every entry it holds ([`Record::from_entries`]).
    pub rebuild: bool,
}

/// A refused write, in words for the person who tried it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The rules refuse it (the first rule it fails); it is not part of the record.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// Randomness for a key or nonce could not be had; nothing was written.
    #[error("the device's random number generator failed: {0}")]
    Random(String),
}

struct Candidate {
    entry: Entry,
    parsed: ParsedChange,
    /// The body as decoded ahead, in the auditor's parallel phase, with the containers it used.
    /// Used only when they are the record's own, so the verdict is the serial decode's.
    body: Option<Predecoded>,
}

/// A body decoded ahead of the rules walk (see [`Candidate::body`]).
pub(crate) struct Predecoded {
    pub(crate) body: Result<Body, crate::body::ShapeError>,
    pub(crate) containers: std::sync::Arc<crate::body::Containers>,
}

/// A group's record: the Automerge document of valid entries plus what the rules need to judge new ones.
pub struct Record {
    group: GroupId,
    doc: Doc,
    /// Valid changes not yet given to Automerge (see [`Doc`]).
    doc_queue: Vec<automerge::Change>,
    /// False for a record that keeps no Automerge document ([`Record::without_document`]): its
    /// changes are never queued, and [`Record::doc`] refuses.
    keep_doc: bool,
    pub(crate) ix: Index,
    /// The governance at the heads, computed once per change of the record.
    gov_now: std::sync::OnceLock<Governance>,
    /// The governance at the last few points asked, by the membership entries in their past (all
    /// it depends on, and those entries never change once admitted).
    pub(crate) gov_cache: std::sync::Mutex<Vec<(Vec<EntryId>, std::sync::Arc<Governance>)>>,
    /// Boxed: a candidate is large (its change, its decoded body), and the map moves its values as it grows.
    pending: FastMap<EntryId, Box<Candidate>>,
    /// Sig-valid entries rejected by a rule: anything built on them is rejected too.
    rejected: FastMap<EntryId, Invalid>,
    /// Every sig-valid entry seen at an (actor, seq): fork evidence.
    positions: Positions,
    /// Pending entries waiting on a dependency, by that dependency.
    waiting: FastMap<EntryId, Vec<EntryId>>,
    /// How many dependencies each pending entry still waits for.
    missing: FastMap<EntryId, usize>,
}

impl Record {
    /// An empty record that judges and indexes exactly as [`Record::new`]'s but keeps no Automerge
    /// document (the auditor's: the report reads only the index), so it holds no copy of the
    /// changes, and hands back no accepted entry's bytes ([`Ingested::entries`] stays empty: there
    /// is no store to put them in). [`Record::doc`] and snapshots refuse.
    pub fn without_document(group: GroupId) -> Self {
        Record {
            keep_doc: false,
            ..Record::new(group)
        }
    }

    /// An empty record for a group whose id is known (from a bundle, a ticket or the genesis).
    pub fn new(group: GroupId) -> Self {
        Record {
            group,
            doc: Doc::Loaded(Box::new(Automerge::new())),
            doc_queue: Vec::new(),
            keep_doc: true,
            ix: Index::default(),
            gov_now: std::sync::OnceLock::new(),
            gov_cache: std::sync::Mutex::new(Vec::new()),
            pending: FastMap::default(),
            rejected: FastMap::default(),
            positions: Positions::default(),
            waiting: FastMap::default(),
            missing: FastMap::default(),
        }
    }

    /// Starts a new group: builds and signs its genesis entry. The creator is its first member.
    pub fn create(
        key: &DeviceKey,
        name: &str,
        rule: crate::body::Rule,
        quorum: u64,
        creator_name: &str,
        creator_needs: &str,
        time_ms: i64,
    ) -> Result<(Record, Entry), Refused> {
        let body = Body::Genesis {
            name: name.to_string(),
            rule,
            quorum,
            creator_name: creator_name.to_string(),
            creator_needs: creator_needs.to_string(),
        };
        let frame = ChangeFrame {
            actor: key.device_id(),
            seq: 1,
            start_op: NonZeroU64::MIN,
            deps: vec![],
            time_ms,
        };
        let change = build_change(&body, &frame, &BTreeMap::new()).map_err(Invalid::from)?;
        let hash = EntryId::from(change.hash());
        let entry = Entry::sign(
            key,
            &hash,
            DocRef::Public,
            change.raw_bytes().to_vec(),
            &hash,
        );
        let mut record = Record::new(hash);
        let out = record.ingest(vec![entry.clone()]);
        if let Some(r) = out.rejected.into_iter().next() {
            return Err(r.reason.into());
        }
        Ok((record, entry))
    }

    /// Builds a record from every entry held (used after a fork forces a rebuild, and in tests).
    pub fn from_entries(group: GroupId, entries: Vec<Entry>) -> (Record, Ingested) {
        let mut r = Record::new(group);
        let out = r.ingest(entries);
        (r, out)
    }

    /// The group's id (its genesis entry's id), known even before the genesis is.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Verifies a batch of entries and applies the valid ones. Never panics on hostile input.
    pub fn ingest(&mut self, batch: Vec<Entry>) -> Ingested {
        self.ingest_with(batch, true)
    }

    /// Re-applies entries this device verified and stored itself (its own log), skipping only the
    /// signature check. Every rule still runs. Never use it for bytes from a peer or a file.
    pub fn ingest_own_log(&mut self, batch: Vec<Entry>) -> Ingested {
        self.ingest_with(batch, false)
    }

    fn ingest_with(&mut self, batch: Vec<Entry>, check_signatures: bool) -> Ingested {
        let parsed = batch
            .into_iter()
            .map(|e| {
                let p = e.parse().map_err(Invalid::from);
                (e, p)
            })
            .collect();
        self.ingest_parsed(parsed, check_signatures)
    }

    fn ingest_parsed(
        &mut self,
        batch: Vec<(Entry, Result<ParsedChange, Invalid>)>,
        check_signatures: bool,
    ) -> Ingested {
        let batch = batch.into_iter().map(|(e, p)| (e, p, None)).collect();
        self.ingest_predecoded(batch, check_signatures)
    }

    pub(crate) fn ingest_predecoded(
        &mut self,
        batch: Vec<(Entry, Result<ParsedChange, Invalid>, Option<Predecoded>)>,
        check_signatures: bool,
    ) -> Ingested {
        let mut out = Ingested::default();
        // Step 1: parse and check signatures.
        let mut fresh: Vec<Box<Candidate>> = Vec::new();
        let mut seen_in_batch: HashSet<EntryId, foldhash::fast::RandomState> = HashSet::default();
        for (entry, parsed, body) in batch {
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => {
                    let id = digest_id(&entry);
                    out.rejected.push(Rejection {
                        id,
                        entry,
                        reason: e,
                    });
                    continue;
                }
            };
            let h = parsed.hash;
            if entry.doc != DocRef::Public {
                // `doc_kind` is outside the signature: key by the entry's own bytes so a relabelled
                // copy can never shadow the genuine entry.
                out.rejected.push(Rejection {
                    id: digest_id(&entry),
                    entry,
                    reason: Invalid::UnsupportedDocument,
                });
                continue;
            }
            let verified = match check_signatures {
                true => validate_signature(&entry, &parsed, &self.group, &self.ix.actors),
                false => Ok(()),
            };
            if let Err(e) = verified {
                // Keyed by its own bytes: a forged copy must never collide with the real entry.
                out.rejected.push(Rejection {
                    id: digest_id(&entry),
                    entry,
                    reason: e.into(),
                });
                continue;
            }
            // Duplicates are counted only once their signature holds, so a forged copy of an entry
            // already held is quarantined as evidence rather than waved through as "already had".
            if self.ix.entries.contains_key(&h)
                || self.pending.contains_key(&h)
                || self.rejected.contains_key(&h)
                || !seen_in_batch.insert(h)
            {
                out.duplicates += 1;
                continue;
            }
            fresh.push(Box::new(Candidate {
                entry,
                parsed,
                body,
            }));
        }
        // Step 2: settle forks over everything known.
        for c in &fresh {
            self.positions.insert(
                (DeviceId(c.parsed.actor), c.parsed.change.seq()),
                c.parsed.hash,
            );
        }
        let mut losers: BTreeMap<EntryId, Invalid> = BTreeMap::new();
        for c in &fresh {
            let pos = (DeviceId(c.parsed.actor), c.parsed.change.seq());
            let Some(all) = self.positions.get(&pos) else {
                continue;
            };
            if all.len() < 2 {
                continue;
            }
            let Some(winner) = all.first().copied() else {
                continue;
            };
            for l in all.iter().skip(1) {
                losers.insert(
                    *l,
                    Invalid::Fork {
                        device: pos.0,
                        seq: pos.1,
                        winner,
                    },
                );
            }
        }
        if losers.keys().any(|l| self.ix.entries.contains_key(l)) {
            // Undo step 2's bookkeeping; the caller rebuilds from everything.
            for c in &fresh {
                let pos = (DeviceId(c.parsed.actor), c.parsed.change.seq());
                self.positions.remove(&pos, &c.parsed.hash);
            }
            out.rebuild = true;
            return out;
        }
        // Entries whose every dependency has been judged (valid or rejected).
        let mut ready = Vec::new();
        for (l, reason) in &losers {
            if let Some(c) = self.pending.remove(l) {
                self.reject(*l, c.entry, reason.clone(), &mut out, &mut ready);
            } else if let Some(old) = self.rejected.get_mut(l) {
                *old = reason.clone();
            }
        }
        // Step 3: judge entries in causal order; an entry waits until every entry it builds on is judged.
        let mut fresh_ids = Vec::new();
        for c in fresh {
            let h = c.parsed.hash;
            if let Some(reason) = losers.get(&h) {
                self.reject(h, c.entry, reason.clone(), &mut out, &mut ready);
                continue;
            }
            let deps: Vec<EntryId> = c
                .parsed
                .change
                .deps()
                .iter()
                .map(|d| EntryId::from(*d))
                .collect();
            self.pending.insert(h, c);
            fresh_ids.push(h);
            let missing: Vec<EntryId> = deps
                .into_iter()
                .filter(|d| !self.ix.entries.contains_key(d) && !self.rejected.contains_key(d))
                .collect();
            if missing.is_empty() {
                ready.push(h);
            } else {
                self.missing.insert(h, missing.len());
                for d in missing {
                    self.waiting.entry(d).or_default().push(h);
                }
            }
        }
        ready.sort_unstable_by(|a, b| b.cmp(a));
        while let Some(h) = ready.pop() {
            let Some(c) = self.pending.remove(&h) else {
                continue;
            };
            self.missing.remove(&h);
            let Candidate {
                entry,
                parsed,
                body,
            } = *c;
            // Named by the lowest rejected dependency, so the reason does not depend on arrival order.
            let bad = parsed
                .change
                .deps()
                .iter()
                .map(|d| EntryId::from(*d))
                .filter(|d| self.rejected.contains_key(d))
                .min();
            let verdict = match bad {
                Some(bad) => Err(Invalid::DependsOnRejected(bad)),
                None => match self.judge(&parsed, body) {
                    Ok(meta) => {
                        self.apply(h, meta, parsed);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            match verdict {
                Ok(()) => {
                    out.accepted.push(h);
                    if self.keep_doc {
                        out.entries.insert(h, entry);
                    }
                    for w in self.waiting.remove(&h).unwrap_or_default() {
                        if let Some(n) = self.missing.get_mut(&w) {
                            *n -= 1;
                            if *n == 0 {
                                ready.push(w);
                            }
                        }
                    }
                }
                Err(reason) => self.reject(h, entry, reason, &mut out, &mut ready),
            }
        }
        for h in fresh_ids {
            if let Some(c) = self.pending.get(&h) {
                out.pending.push((h, c.entry.clone()));
            }
        }
        out
    }

    /// Quarantines an entry. Entries waiting on it become `ready` once all they build on is judged;
    /// they are then rejected as depending on a rejected entry.
    fn reject(
        &mut self,
        h: EntryId,
        entry: Entry,
        reason: Invalid,
        out: &mut Ingested,
        ready: &mut Vec<EntryId>,
    ) {
        self.missing.remove(&h);
        self.rejected.insert(h, reason.clone());
        out.rejected.push(Rejection {
            id: h,
            entry,
            reason,
        });
        for w in self.waiting.remove(&h).unwrap_or_default() {
            if let Some(n) = self.missing.get_mut(&w) {
                *n -= 1;
                if *n == 0 {
                    ready.push(w);
                }
            }
        }
    }

    /// Checks what `key` wants to write and, if the rules allow it, signs and applies it.
    pub fn author(
        &mut self,
        key: &DeviceKey,
        body: Body,
        time_ms: i64,
    ) -> Result<(EntryId, Entry), Refused> {
        let actor = key.device_id();
        let heads: Vec<EntryId> = self.ix.heads.iter().copied().collect();
        if heads.is_empty() {
            return Err(Invalid::NotInGroup.into());
        }
        let clock = self.clock_of(&heads);
        let seq = self
            .ix
            .actor_ix
            .get(&actor)
            .map(|a| clock.get(*a))
            .unwrap_or(0)
            + 1;
        let max_op = heads
            .iter()
            .filter_map(|h| self.ix.entries.get(h))
            .map(|m| m.max_op)
            .max()
            .unwrap_or(0);
        let start_op = NonZeroU64::new(max_op + 1).ok_or(Invalid::OpCounter)?;
        let frame = ChangeFrame {
            actor,
            seq,
            start_op,
            deps: heads,
            time_ms,
        };
        let change = build_change(&body, &frame, &self.ix.containers).map_err(Invalid::from)?;
        let hash = EntryId::from(change.hash());
        let entry = Entry::sign(
            key,
            &self.group,
            DocRef::Public,
            change.raw_bytes().to_vec(),
            &hash,
        );
        let parsed = entry.parse().map_err(Invalid::from)?;
        // Our own fresh signature needs no check; the rules do, exactly as for a peer's entry.
        let meta = self.judge(&parsed, None)?;
        if let Some(at) = self.positions.get(&(actor, seq)) {
            // This device already signed something else at this position elsewhere (a copied home).
            // A refused write must leave nothing behind: refuse a losing fork here, and let ingest
            // settle the position only for a winner.
            if let Some(winner) = at.first().filter(|w| **w < hash) {
                return Err(Invalid::Fork {
                    device: actor,
                    seq,
                    winner: *winner,
                }
                .into());
            }
            let out = self.ingest(vec![entry.clone()]);
            // The entries it displaces are rejected in the same batch: look for this one's verdict.
            return match out.rejected.into_iter().find(|r| r.id == hash) {
                Some(r) => Err(r.reason.into()),
                None => Ok((hash, entry)),
            };
        }
        self.apply(hash, meta, parsed);
        Ok((hash, entry))
    }

    /// Admits a judged entry to the index and queues its change for Automerge.
    fn apply(&mut self, h: EntryId, meta: Meta, parsed: ParsedChange) {
        self.admit(h, meta, &parsed);
        if self.keep_doc {
            self.doc_queue.push(parsed.change);
        }
    }

    /// The member an entry is by: its device's member (see [`Meta`]'s `member`).
    pub(crate) fn actor_of(&self, meta: &Meta) -> DeviceId {
        match &meta.member {
            Some(m) => **m,
            None => self.ix.actors[meta.actor as usize],
        }
    }

    /// The device that wrote an entry (its change's actor).
    pub(crate) fn device_of(&self, meta: &Meta) -> DeviceId {
        self.ix.actors[meta.actor as usize]
    }

    /// The rules. `parsed` has a valid signature and all its dependencies are valid. `pre` is its
    /// body decoded ahead; it is used only if decoded with this record's containers.
    fn judge(&self, parsed: &ParsedChange, pre: Option<Predecoded>) -> Result<Meta, Invalid> {
        let ch = &parsed.change;
        let actor = DeviceId(parsed.actor);
        let deps: Vec<EntryId> = ch.deps().iter().map(|d| EntryId::from(*d)).collect();
        if deps.is_empty() {
            if parsed.hash != self.group || ch.seq() != 1 || ch.start_op().get() != 1 {
                return Err(Invalid::NotInGroup);
            }
            let (body, containers) = decode_change(ch, &BTreeMap::new())?;
            let mut clock = Clock::default();
            let actor_ix = self
                .ix
                .actor_ix
                .get(&actor)
                .copied()
                .unwrap_or(self.ix.actors.len() as u32);
            clock.set(actor_ix, 1);
            let meta = Meta {
                actor: actor_ix,
                seq: 1,
                max_op: ch.max_op(),
                time_ms: ch.timestamp(),
                clock,
                body,
                member: None,
            };
            let _ = containers; // recorded by `admit`
            return Ok(meta);
        }
        if self.ix.genesis.is_none() {
            return Err(Invalid::NotInGroup);
        }
        let mut clock = self.clock_of(&deps);
        let actor_ix = self
            .ix
            .actor_ix
            .get(&actor)
            .copied()
            .unwrap_or(self.ix.actors.len() as u32);
        let expected = clock.get(actor_ix) + 1;
        if ch.seq() != expected {
            return Err(Invalid::Sequence {
                expected,
                found: ch.seq(),
            });
        }
        let dep_max = deps
            .iter()
            .filter_map(|d| self.ix.entries.get(d))
            .map(|m| m.max_op)
            .max()
            .unwrap_or(0);
        if ch.start_op().get() <= dep_max || ch.is_empty() {
            return Err(Invalid::OpCounter);
        }
        let body = match pre {
            Some(p) if *p.containers == self.ix.containers => p.body?,
            _ => decode_change(ch, &self.ix.containers)?.0,
        };
        let gov = self.governance_at(&clock);
        // A keeper stores and forwards; it never writes (its id is never a member's).
        if gov.keepers.contains_key(&actor) {
            return Err(Invalid::KeeperCannotWrite);
        }
        let member = gov.member_of(&actor).ok_or(Invalid::NotMember)?;
        if gov.revoked.contains_key(&actor) {
            return Err(Invalid::DeviceRevoked);
        }
        match gov.members.get(&member).map(|m| m.status) {
            Some(Status::Active) => {}
            Some(_) => return Err(Invalid::AfterRemoval),
            None => return Err(Invalid::NotMember),
        }
        self.check_rules(&body, &member, &actor, ch.timestamp(), &clock, &gov)?;
        clock.set(actor_ix, ch.seq());
        Ok(Meta {
            actor: actor_ix,
            seq: ch.seq(),
            max_op: ch.max_op(),
            time_ms: ch.timestamp(),
            clock,
            body,
            member: (member != actor).then(|| Box::new(member)),
        })
    }
}
