//! The record engine: verify-then-apply, the validity rules, and the state they imply.
//!
//! **Invariant (validity is a pure function of the DAG):** the verdict on every entry depends only on
//! the set of entries known, never on the order they arrived in or on who relayed them. The engine
//! keeps that promise in three steps for every batch: (1) parse and check signatures, (2) settle
//! forks across everything known (the lowest hash at an `(actor, seq)` wins), (3) walk the entries in
//! causal order, so each is judged against exactly its causal past. When a fork is settled against an
//! entry that was already applied, the caller rebuilds from all entries ([`Ingested::rebuild`]).
//!
//! **Invariant:** only valid entries ever reach Automerge.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroU64;

use automerge::Automerge;
use serde::{Deserialize, Serialize};

use crate::body::{
    Body, ChangeFrame, Counts, Decision, Effect, Rule, ShapeError, build_change, decode_change,
};
use crate::change::{ChangeError, ParsedChange};
use crate::entry::{DocRef, Entry, SignatureError, validate_signature};
use crate::governance::Governance;
use crate::id::{DeviceId, EntryId, GroupId, MemberId};
use crate::identity::DeviceKey;

/// Why an entry is not part of the record. Kept with the entry in quarantine, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Invalid {
    #[error("the entry could not be read: {0}")]
    Malformed(String),
    #[error("{0}")]
    Signature(String),
    #[error(
        "the device {device} wrote two different entries at position {seq} (a fork); the one with the lower id, {winner}, is kept"
    )]
    Fork {
        device: DeviceId,
        seq: u64,
        winner: EntryId,
    },
    #[error("it builds on entry {0}, which was rejected")]
    DependsOnRejected(EntryId),
    #[error("it is not part of this group (it does not build on the group's first entry)")]
    NotInGroup,
    #[error("its position in its author's sequence is wrong (expected {expected}, found {found})")]
    Sequence { expected: u64, found: u64 },
    #[error("its operation numbers overlap earlier entries")]
    OpCounter,
    #[error("{0}")]
    Shape(String),
    #[error("its author was not a member of the group when they wrote it")]
    NotMember,
    #[error("its author had already left or been removed when they wrote it")]
    AfterRemoval,
    #[error("removing another member needs a passed decision that names the removal: {0}")]
    RemovalWithoutDecision(String),
    #[error(
        "a member joins only when the group passes a proposal to add them; no one can add a member alone"
    )]
    AddWithoutDecision,
    #[error(
        "an auditor is let in only when the group passes a proposal for it; no one can let an auditor in alone"
    )]
    AuditorWithoutDecision,
    #[error("{0}")]
    BelowPolicy(String),
    #[error("{}", not_quorate(*given, *needed, *members))]
    NotQuorate {
        given: u64,
        needed: u64,
        members: u64,
    },
    #[error("this proposal is already closed")]
    AlreadyClosed,
    #[error("the recorded outcome ({recorded}) does not match the stances ({recounted})")]
    OutcomeMismatch { recorded: String, recounted: String },
    #[error("{0}")]
    Rule(String),
    #[error(
        "this version reads entries of the public record only (sealed threads travel inside it); a newer version may have written this one"
    )]
    UnsupportedDocument,
}

impl Invalid {
    /// A short stable name for reports and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Invalid::Malformed(_) => "malformed",
            Invalid::Signature(_) => "bad_signature",
            Invalid::Fork { .. } => "fork",
            Invalid::DependsOnRejected(_) => "depends_on_rejected",
            Invalid::NotInGroup => "not_in_group",
            Invalid::Sequence { .. } => "bad_sequence",
            Invalid::OpCounter => "bad_op_counter",
            Invalid::Shape(_) => "bad_shape",
            Invalid::NotMember => "not_member",
            Invalid::AfterRemoval => "after_removal",
            Invalid::RemovalWithoutDecision(_) => "removal_without_decision",
            Invalid::AddWithoutDecision => "add_without_decision",
            Invalid::AuditorWithoutDecision => "auditor_without_decision",
            Invalid::BelowPolicy(_) => "below_policy",
            Invalid::NotQuorate { .. } => "not_quorate",
            Invalid::AlreadyClosed => "already_closed",
            Invalid::OutcomeMismatch { .. } => "outcome_mismatch",
            Invalid::Rule(_) => "rule",
            Invalid::UnsupportedDocument => "unsupported_document",
        }
    }
}

/// "3 of 5 members have given a view; 1 more is needed".
fn not_quorate(given: u64, needed: u64, members: u64) -> String {
    let more = needed.saturating_sub(given);
    format!(
        "{given} of {members} {} given a view; {more} more {} needed before it can be closed",
        if members == 1 {
            "member has"
        } else {
            "members have"
        },
        if more == 1 { "is" } else { "are" }
    )
}

impl From<ShapeError> for Invalid {
    fn from(e: ShapeError) -> Self {
        Invalid::Shape(e.to_string())
    }
}
impl From<ChangeError> for Invalid {
    fn from(e: ChangeError) -> Self {
        Invalid::Malformed(e.to_string())
    }
}
impl From<SignatureError> for Invalid {
    fn from(e: SignatureError) -> Self {
        Invalid::Signature(e.to_string())
    }
}

/// A member's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Active,
    Left,
    Removed,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Left => "left",
            Status::Removed => "removed",
        }
    }
}

/// A member as the membership rules see them at some point of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub needs: String,
    pub status: Status,
}

/// Causal position of an entry: for every device, the highest sequence number in its past, itself included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock(Vec<u64>);

impl Clock {
    pub(crate) fn get(&self, actor: u32) -> u64 {
        self.0.get(actor as usize).copied().unwrap_or(0)
    }
    fn merge(&mut self, other: &Clock) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = (*a).max(*b);
        }
    }
    fn set(&mut self, actor: u32, seq: u64) {
        let i = actor as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] = seq;
    }
}

/// What the record knows about a valid entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub(crate) actor: u32,
    pub seq: u64,
    /// The change's highest op counter; strictly greater than any in its past, so it orders causally.
    pub max_op: u64,
    /// Author's timestamp in milliseconds (informational; never used by a rule).
    pub time_ms: i64,
    pub(crate) clock: Clock,
    pub body: Body,
}

/// The part of the engine that a snapshot saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    actors: Vec<DeviceId>,
    actor_ix: HashMap<DeviceId, u32>,
    pub(crate) entries: HashMap<EntryId, Meta>,
    heads: BTreeSet<EntryId>,
    containers: BTreeMap<String, (u64, DeviceId)>,
    genesis: Option<EntryId>,
    /// Governance entries: the genesis, leaves and the outcomes of proposals with an effect. Few,
    /// folded to find the group's state at a point.
    pub(crate) membership: Vec<EntryId>,
    /// Entries that refer to an entry (messages of a thread, stances of a proposal, ...).
    pub(crate) refs: HashMap<EntryId, Vec<EntryId>>,
    /// Valid entries in the order they were applied (a causal order).
    order: Vec<EntryId>,
    /// Profile entries (members' encryption keys): few, folded like membership.
    profiles: Vec<EntryId>,
    /// Sealed threads' reader changes, asks and declines, by thread (not their messages).
    thread_events: HashMap<EntryId, Vec<EntryId>>,
    /// Sealed messages by thread and author, in the author's order: a writer finds its place here
    /// without walking the whole thread.
    sealed_chains: HashMap<EntryId, HashMap<DeviceId, Vec<EntryId>>>,
}

/// A wrap as its holder opens it: (their encryption key, HPKE enc, sealed key).
pub type HeldWrap = ([u8; 32], [u8; 32], Vec<u8>);

/// One key epoch of a sealed thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// The entry that started it: the thread itself, or a `thread.rekey`.
    pub id: EntryId,
    /// The key commitment every holder checks the key they unwrap against.
    pub commit: [u8; 32],
    /// Who holds its key, with the wrap each can open.
    pub wraps: BTreeMap<MemberId, HeldWrap>,
}

/// A sealed thread as the rules see it at some point of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedState {
    /// Readers now: added, not removed, and still active members.
    pub readers: BTreeSet<MemberId>,
    /// Epochs in the order they started.
    pub epochs: Vec<Epoch>,
}

impl SealedState {
    /// The epoch a new message must use: the latest whose key is held by exactly the readers.
    /// `None` means a new epoch (a rekey) must be written first.
    pub fn writable_epoch(&self) -> Option<&Epoch> {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.wraps.keys().copied().collect::<BTreeSet<_>>() == self.readers)
    }
}

/// Everything public about a sealed thread, at the heads.
#[derive(Debug, Clone)]
pub struct SealedInfo {
    pub title: String,
    pub reason: String,
    pub state: SealedState,
    /// Its sealed messages, in a causal order.
    pub entries: Vec<EntryId>,
    /// Requests to read it: (entry, who asked, why).
    pub asks: Vec<(EntryId, MemberId, String)>,
    /// Declined requests: (entry, reader who declined, member, reason).
    pub declines: Vec<(EntryId, MemberId, MemberId, String)>,
}

/// An entry that is not (or not yet) part of the record.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The change hash when the entry was rejected by a rule; the SHA-256 of its encoded bytes when it
    /// could not be parsed or its signature failed (so a forged copy never shares the real entry's id).
    pub id: EntryId,
    pub entry: Entry,
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
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("the device's random number generator failed: {0}")]
    Random(String),
}

struct Candidate {
    entry: Entry,
    parsed: ParsedChange,
}

/// A group's record: the Automerge document of valid entries plus what the rules need to judge new ones.
pub struct Record {
    group: GroupId,
    doc: Doc,
    /// Valid changes not yet given to Automerge (see [`Doc`]).
    doc_queue: Vec<automerge::Change>,
    pub(crate) ix: Index,
    /// The governance at the heads, computed once per change of the record.
    gov_now: std::sync::OnceLock<Governance>,
    pending: HashMap<EntryId, Candidate>,
    /// Sig-valid entries rejected by a rule: anything built on them is rejected too.
    rejected: HashMap<EntryId, Invalid>,
    /// Every sig-valid entry seen at an (actor, seq): fork evidence.
    positions: HashMap<(DeviceId, u64), BTreeSet<EntryId>>,
    /// Pending entries waiting on a dependency, by that dependency.
    waiting: HashMap<EntryId, Vec<EntryId>>,
    /// How many dependencies each pending entry still waits for.
    missing: HashMap<EntryId, usize>,
}

impl Record {
    /// An empty record for a group whose id is known (from a bundle, a ticket or the genesis).
    pub fn new(group: GroupId) -> Self {
        Record {
            group,
            doc: Doc::Loaded(Box::new(Automerge::new())),
            doc_queue: Vec::new(),
            ix: Index::default(),
            gov_now: std::sync::OnceLock::new(),
            pending: HashMap::new(),
            rejected: HashMap::new(),
            positions: HashMap::new(),
            waiting: HashMap::new(),
            missing: HashMap::new(),
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

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The Automerge document of valid entries, brought up to date.
    pub fn doc(&mut self) -> Result<&Automerge, SnapshotError> {
        self.flush_doc()?;
        match &self.doc {
            Doc::Loaded(d) => Ok(d),
            Doc::Saved(_) => Err(SnapshotError::Decode("the document did not load".into())),
        }
    }

    /// Gives Automerge every queued change in one call.
    fn flush_doc(&mut self) -> Result<(), SnapshotError> {
        if let Doc::Saved(bytes) = &self.doc {
            let d = Automerge::load(bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
            self.doc = Doc::Loaded(Box::new(d));
        }
        if let Doc::Loaded(d) = &mut self.doc
            && !self.doc_queue.is_empty()
        {
            // Only valid changes are queued; Automerge has no say in validity. A refusal here is a
            // bug to report, and the entries themselves stay safe in the store.
            d.apply_changes(std::mem::take(&mut self.doc_queue))
                .map_err(|e| SnapshotError::Apply(e.to_string()))?;
        }
        Ok(())
    }

    /// Verifies a batch of entries and applies the valid ones. Never panics on hostile input.
    pub fn ingest(&mut self, batch: Vec<Entry>) -> Ingested {
        self.ingest_with(batch, true)
    }

    /// Ingests entries whose signatures [`verify_signatures`] already checked (in parallel); every
    /// rule still runs. Entries that failed the check are reported as rejected.
    pub fn ingest_verified(&mut self, v: Verified) -> Ingested {
        let batch = v.ok.into_iter().map(|(e, p)| (e, Ok(p))).collect();
        let mut out = self.ingest_parsed(batch, false);
        let mut rejected = v.rejected;
        rejected.append(&mut out.rejected);
        out.rejected = rejected;
        out
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
        let mut out = Ingested::default();
        // Step 1: parse and check signatures.
        let mut fresh: Vec<Candidate> = Vec::new();
        let mut seen_in_batch = HashSet::new();
        for (entry, parsed) in batch {
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
            fresh.push(Candidate { entry, parsed });
        }
        // Step 2: settle forks over everything known.
        for c in &fresh {
            self.positions
                .entry((DeviceId(c.parsed.actor), c.parsed.change.seq()))
                .or_default()
                .insert(c.parsed.hash);
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
            let winner = *all.iter().next().expect("len >= 2");
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
                if let Some(s) = self.positions.get_mut(&pos) {
                    s.remove(&c.parsed.hash);
                }
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
            // Named by the lowest rejected dependency, so the reason does not depend on arrival order.
            let bad = c
                .parsed
                .change
                .deps()
                .iter()
                .map(|d| EntryId::from(*d))
                .filter(|d| self.rejected.contains_key(d))
                .min();
            let verdict = match bad {
                Some(bad) => Err(Invalid::DependsOnRejected(bad)),
                None => self
                    .judge(&c.parsed)
                    .and_then(|meta| self.apply(h, meta, &c.parsed)),
            };
            match verdict {
                Ok(()) => {
                    out.accepted.push(h);
                    out.entries.insert(h, c.entry);
                    for w in self.waiting.remove(&h).unwrap_or_default() {
                        if let Some(n) = self.missing.get_mut(&w) {
                            *n -= 1;
                            if *n == 0 {
                                ready.push(w);
                            }
                        }
                    }
                }
                Err(reason) => self.reject(h, c.entry, reason, &mut out, &mut ready),
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

    /// Entries waiting for entries they build on.
    pub fn pending_ids(&self) -> Vec<EntryId> {
        let mut v: Vec<_> = self.pending.keys().copied().collect();
        v.sort();
        v
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
        let meta = self.judge(&parsed)?;
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
        self.apply(hash, meta, &parsed)?;
        Ok((hash, entry))
    }

    /// Admits a judged entry to the index and queues its change for Automerge.
    fn apply(&mut self, h: EntryId, meta: Meta, parsed: &ParsedChange) -> Result<(), Invalid> {
        self.admit(h, meta, parsed);
        self.doc_queue.push(parsed.change.clone());
        Ok(())
    }

    pub(crate) fn actor_of(&self, meta: &Meta) -> DeviceId {
        self.ix.actors[meta.actor as usize]
    }

    /// The combined clock of a set of valid entries.
    fn clock_of(&self, heads: &[EntryId]) -> Clock {
        let mut c = Clock::default();
        for h in heads {
            if let Some(m) = self.ix.entries.get(h) {
                c.merge(&m.clock);
            }
        }
        c
    }

    /// Is valid entry `x` in the past described by `clock`?
    pub(crate) fn in_past(&self, clock: &Clock, x: &EntryId) -> Option<&Meta> {
        self.ix
            .entries
            .get(x)
            .filter(|m| clock.get(m.actor) >= m.seq)
    }

    /// Membership as the rules see it at the point `clock`.
    pub fn members_at_clock(&self, clock: &Clock) -> BTreeMap<MemberId, Member> {
        self.governance_at(clock).members
    }

    /// The governance at the heads.
    pub fn governance(&self) -> &Governance {
        self.gov_now
            .get_or_init(|| self.governance_at(&self.clock_of(&self.heads())))
    }

    /// The rules. `parsed` has a valid signature and all its dependencies are valid.
    fn judge(&self, parsed: &ParsedChange) -> Result<Meta, Invalid> {
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
        let (body, _) = decode_change(ch, &self.ix.containers)?;
        let gov = self.governance_at(&clock);
        match gov.members.get(&actor).map(|m| m.status) {
            Some(Status::Active) => {}
            Some(_) => return Err(Invalid::AfterRemoval),
            None => return Err(Invalid::NotMember),
        }
        self.check_rules(&body, &actor, &clock, &gov)?;
        clock.set(actor_ix, ch.seq());
        Ok(Meta {
            actor: actor_ix,
            seq: ch.seq(),
            max_op: ch.max_op(),
            time_ms: ch.timestamp(),
            clock,
            body,
        })
    }

    fn rule(msg: impl Into<String>) -> Invalid {
        Invalid::Rule(msg.into())
    }

    /// The entry `id` must be valid, in the past, and of a kind `want` accepts.
    fn referent<'a>(
        &'a self,
        clock: &Clock,
        id: &EntryId,
        what: &str,
        want: impl Fn(&Body) -> bool,
    ) -> Result<&'a Meta, Invalid> {
        match self.in_past(clock, id) {
            Some(m) if want(&m.body) => Ok(m),
            _ => Err(Self::rule(format!(
                "it refers to {what} {id}, which does not exist here"
            ))),
        }
    }

    fn check_rules(
        &self,
        body: &Body,
        author: &DeviceId,
        clock: &Clock,
        gov: &Governance,
    ) -> Result<(), Invalid> {
        let members = &gov.members;
        let active = |m: &MemberId| gov.active(m);
        let nonempty = |s: &str, what: &str| {
            if s.trim().is_empty() {
                Err(Self::rule(format!("{what} is empty")))
            } else {
                Ok(())
            }
        };
        let is_thread = |b: &Body| matches!(b, Body::Thread { .. });
        // Restating or correcting a sealed message in the open would unseal it.
        let not_sealed = |target: &EntryId| match self.in_past(clock, target).map(|m| &m.body) {
            Some(Body::Sealed { .. }) => Err(Self::rule(
                "a sealed message cannot be restated or corrected in the open: that would unseal its words",
            )),
            _ => Ok(()),
        };
        let is_proposal = |b: &Body| matches!(b, Body::Proposal { .. });
        match body {
            Body::Genesis { .. } => {
                return Err(Invalid::Shape(
                    "only the first entry may start a group".into(),
                ));
            }
            Body::MemberAdd { .. } => return Err(Invalid::AddWithoutDecision),
            Body::MemberLeave => {}
            Body::MemberRemove { .. } => {
                return Err(Invalid::RemovalWithoutDecision(
                    "a removal takes effect when the group passes the proposal to remove them; no other entry can remove a member".into(),
                ));
            }
            Body::Thread { title } => nonempty(title, "the title")?,
            Body::Message { thread, text } => {
                nonempty(text, "the message")?;
                self.open_thread(clock, thread)?;
                self.referent(clock, thread, "thread", is_thread)?;
            }
            Body::Proposal {
                thread,
                title,
                easy_read,
                rule,
                quorum,
                effect,
                ..
            } => {
                nonempty(title, "the title")?;
                nonempty(easy_read, "the easy-read version")?;
                // A proposal about the group itself may sit in the group (its genesis) rather than a thread.
                if !(effect.is_some() && Some(*thread) == self.ix.genesis) {
                    self.open_thread(clock, thread)?;
                    self.referent(clock, thread, "thread", is_thread)?;
                }
                let (group_rule, group_quorum) = gov.policy.unwrap_or((Rule::Consent, 0));
                if !rule.at_least(group_rule) {
                    return Err(Invalid::BelowPolicy(format!(
                        "this group decides by {}: a proposal may not ask for {}",
                        group_rule.as_str(),
                        rule.as_str()
                    )));
                }
                if *quorum < group_quorum {
                    return Err(Invalid::BelowPolicy(format!(
                        "this group needs at least {group_quorum} members to give a view on every proposal: a proposal may ask for more, never fewer"
                    )));
                }
                match effect {
                    None => {}
                    Some(Effect::Add { member, name, .. }) => {
                        nonempty(name, "the new member's name")?;
                        if active(member) {
                            return Err(Self::rule("that person is already a member"));
                        }
                        if gov.auditors.contains_key(member) {
                            return Err(Self::rule(
                                "that device is an auditor's: an auditor cannot also be a member",
                            ));
                        }
                        if ed25519_dalek::VerifyingKey::from_bytes(&member.0).is_err() {
                            return Err(Self::rule("the member id is not a device key"));
                        }
                    }
                    Some(Effect::Remove { member }) => {
                        if member == author {
                            return Err(Self::rule("to leave, use leave, not remove"));
                        }
                        if !active(member) {
                            return Err(Self::rule(
                                "the member this proposal would remove is not an active member",
                            ));
                        }
                    }
                    Some(Effect::Auditor { device, name }) => {
                        nonempty(name, "the auditor's name")?;
                        if members.contains_key(device) {
                            return Err(Self::rule(
                                "a member's device cannot also be an auditor's",
                            ));
                        }
                        if gov.auditors.contains_key(device) {
                            return Err(Self::rule("that device is already an auditor's"));
                        }
                        if ed25519_dalek::VerifyingKey::from_bytes(&device.0).is_err() {
                            return Err(Self::rule("the auditor's id is not a device key"));
                        }
                    }
                    Some(Effect::Policy { quorum: 0, .. }) => {
                        return Err(Self::rule("the group's quorum must be at least 1 member"));
                    }
                    Some(Effect::Policy { .. }) => {}
                }
            }
            Body::Stance {
                proposal,
                stance,
                reason,
                on_behalf,
            } => {
                self.referent(clock, proposal, "proposal", is_proposal)?;
                if stance.needs_reason() && reason.trim().is_empty() {
                    return Err(Self::rule(format!(
                        "a reason is needed to {}",
                        stance.as_str()
                    )));
                }
                if self.standing_at(proposal, clock, gov).is_some() {
                    return Err(Invalid::AlreadyClosed);
                }
                if let Some(m) = on_behalf
                    && !active(m)
                {
                    return Err(Self::rule(
                        "a stance can only be recorded for an active member",
                    ));
                }
            }
            Body::Outcome {
                proposal,
                decision,
                counts,
                ..
            } => {
                self.referent(clock, proposal, "proposal", is_proposal)?;
                // A close is refused once one stands, unless closes made apart conflict: a close
                // that sees them all settles it.
                if self
                    .standing_at(proposal, clock, gov)
                    .is_some_and(|s| !s.conflict())
                {
                    return Err(Invalid::AlreadyClosed);
                }
                let t = self.tally(proposal, clock).ok_or_else(|| {
                    Self::rule("it refers to a proposal that does not exist here")
                })?;
                if t.counts != *counts || t.decision != *decision {
                    return Err(Invalid::OutcomeMismatch {
                        recorded: describe(decision, counts),
                        recounted: describe(&t.decision, &t.counts),
                    });
                }
                if !t.quorate() {
                    return Err(Invalid::NotQuorate {
                        given: t.given,
                        needed: t.needed,
                        members: t.members,
                    });
                }
            }
            Body::Understand { target, text } => {
                nonempty(text, "the restatement")?;
                not_sealed(target)?;
                self.referent(clock, target, "entry", |_| true)?;
            }
            Body::Confirm { target } => {
                let t = self.referent(clock, target, "entry", |_| true)?;
                match &t.body {
                    Body::Understand { target: orig, .. } => {
                        let o = self.referent(clock, orig, "entry", |_| true)?;
                        if self.actor_of(o) != *author {
                            return Err(Self::rule(
                                "only the author of the original entry can confirm an understanding of it",
                            ));
                        }
                    }
                    Body::Stance {
                        on_behalf: Some(m), ..
                    } if m == author => {}
                    _ => {
                        return Err(Self::rule(
                            "only an understanding check, or a stance recorded for you, can be confirmed",
                        ));
                    }
                }
            }
            Body::Correct { target, text } => {
                nonempty(text, "the correction")?;
                not_sealed(target)?;
                let t = self.referent(clock, target, "entry", |_| true)?;
                let own = self.actor_of(t) == *author;
                let of_own = match &t.body {
                    Body::Understand { target: orig, .. } => self
                        .in_past(clock, orig)
                        .is_some_and(|o| self.actor_of(o) == *author),
                    _ => false,
                };
                if !own && !of_own {
                    return Err(Self::rule(
                        "you can correct your own entries, or an understanding of them",
                    ));
                }
            }
            Body::Action {
                thread,
                text,
                owner,
                due,
            } => {
                nonempty(text, "the action")?;
                self.open_thread(clock, thread)?;
                self.referent(clock, thread, "thread", is_thread)?;
                if !active(owner) {
                    return Err(Self::rule(
                        "the owner of an action must be an active member",
                    ));
                }
                if let Some(d) = due
                    && !valid_date(d)
                {
                    return Err(Self::rule("the due date must look like 2026-12-31"));
                }
            }
            Body::ActionDone { action } => {
                self.referent(clock, action, "action", |b| {
                    matches!(b, Body::Action { .. })
                })?;
            }
            Body::AuditorAdd { .. } => return Err(Invalid::AuditorWithoutDecision),
            Body::Profile { enc_key } => {
                if enc_key == &[0u8; 32] {
                    return Err(Self::rule("the encryption key is not a valid key"));
                }
            }
            Body::SealedThread {
                title,
                reason,
                wraps,
                ..
            } => {
                nonempty(title, "the title")?;
                nonempty(reason, "the reason it is sealed")?;
                if !wraps.iter().any(|w| w.member == *author) {
                    return Err(Self::rule(
                        "the member who starts a sealed thread must be one of its readers",
                    ));
                }
                for w in wraps {
                    self.check_reader_key(clock, &active, &w.member, &w.key)?;
                }
            }
            Body::ReaderAdd {
                thread,
                member,
                wraps,
            } => {
                let st = self.sealed_referent(clock, thread, gov)?;
                Self::must_read(&st, author, "add a reader")?;
                let ids: Vec<EntryId> = wraps.iter().map(|w| w.epoch).collect();
                if st.readers.contains(member) {
                    // A reader who lacks keys (added at the same moment as a new key was made) is
                    // given exactly keys they lack, by any reader: format.md section 10.
                    let lacking: BTreeSet<EntryId> = st
                        .epochs
                        .iter()
                        .filter(|e| !e.wraps.contains_key(member))
                        .map(|e| e.id)
                        .collect();
                    if lacking.is_empty() {
                        return Err(Self::rule("that member is already a reader"));
                    }
                    if ids.is_empty() || !ids.iter().all(|i| lacking.contains(i)) {
                        return Err(Self::rule(
                            "a reader may be given only keys of the thread they do not hold yet",
                        ));
                    }
                } else {
                    if st.readers.len() >= crate::sealed::MAX_READERS {
                        return Err(Self::rule(format!(
                            "this sealed thread has {} readers, the most it can have: start another sealed thread",
                            crate::sealed::MAX_READERS
                        )));
                    }
                    let mut want: Vec<EntryId> = st.epochs.iter().map(|e| e.id).collect();
                    want.sort();
                    if ids != want {
                        return Err(Self::rule(
                            "a new reader must be given the key of every epoch of the thread",
                        ));
                    }
                }
                for w in wraps {
                    self.check_reader_key(clock, &active, member, &w.key)?;
                }
            }
            Body::Rekey {
                thread,
                removes,
                wraps,
                ..
            } => {
                let st = self.sealed_referent(clock, thread, gov)?;
                Self::must_read(&st, author, "change its key")?;
                let mut next = st.readers.clone();
                if let Some(m) = removes
                    && !next.remove(m)
                {
                    return Err(Self::rule("that member is not a reader of this thread"));
                }
                if next.is_empty() {
                    return Err(Self::rule("a sealed thread must keep at least one reader"));
                }
                if st.epochs.len() >= crate::sealed::MAX_EPOCHS {
                    return Err(Self::rule(
                        "this sealed thread has had as many keys as it can: start a new sealed thread",
                    ));
                }
                if wraps.iter().map(|w| w.member).collect::<BTreeSet<_>>() != next {
                    return Err(Self::rule(
                        "a new key must be given to every remaining reader and to nobody else",
                    ));
                }
                for w in wraps {
                    self.check_reader_key(clock, &active, &w.member, &w.key)?;
                }
            }
            Body::Ask { thread, why } => {
                let st = self.sealed_referent(clock, thread, gov)?;
                nonempty(why, "the reason for asking")?;
                if st.readers.contains(author) {
                    return Err(Self::rule("you are already a reader of this thread"));
                }
            }
            Body::Decline {
                thread,
                member,
                reason,
            } => {
                let st = self.sealed_referent(clock, thread, gov)?;
                Self::must_read(&st, author, "answer a request")?;
                nonempty(reason, "the reason")?;
                let asked = self
                    .ix
                    .thread_events
                    .get(thread)
                    .into_iter()
                    .flatten()
                    .any(|h| {
                        self.in_past(clock, h).is_some_and(|m| {
                            matches!(m.body, Body::Ask { .. }) && self.actor_of(m) == *member
                        })
                    });
                if !asked {
                    return Err(Self::rule("that member has not asked to read this thread"));
                }
            }
            Body::Sealed { thread, epoch, ct } => {
                let st = self.sealed_referent(clock, thread, gov)?;
                if !crate::sealed::valid_ct_len(ct.len()) {
                    return Err(Self::rule(
                        "the sealed content is not padded to one of the allowed sizes",
                    ));
                }
                Self::must_read(&st, author, "write in it")?;
                let e = st.epochs.iter().find(|e| e.id == *epoch).ok_or_else(|| {
                    Self::rule("it names a key epoch this thread does not have here")
                })?;
                if !e.wraps.contains_key(author) {
                    return Err(Self::rule("its author was not given that epoch's key"));
                }
                if e.wraps.keys().any(|m| !st.readers.contains(m)) {
                    return Err(Self::rule(
                        "it uses a key that someone who is no longer a reader holds; a new key is needed",
                    ));
                }
            }
        }
        Ok(())
    }

    fn must_read(st: &SealedState, author: &DeviceId, what: &str) -> Result<(), Invalid> {
        if st.readers.contains(author) {
            Ok(())
        } else {
            Err(Self::rule(format!(
                "only a reader of this sealed thread can {what}"
            )))
        }
    }

    /// A reader's wrap must go to an active member, sealed to the key their latest profile publishes.
    fn check_reader_key(
        &self,
        clock: &Clock,
        active: &impl Fn(&MemberId) -> bool,
        member: &MemberId,
        key: &[u8; 32],
    ) -> Result<(), Invalid> {
        if !active(member) {
            return Err(Self::rule(format!(
                "a reader must be an active member ({member} is not)"
            )));
        }
        match self.profile_key_at(clock, member) {
            Some(k) if k == *key => Ok(()),
            Some(_) => Err(Self::rule(format!(
                "the key for {member} is not the one they published"
            ))),
            None => Err(Self::rule(format!(
                "{member} has not published an encryption key yet (their device publishes one the first time it opens the group)"
            ))),
        }
    }

    /// Plain messages, proposals and actions may not go into a sealed thread.
    fn open_thread(&self, clock: &Clock, thread: &EntryId) -> Result<(), Invalid> {
        match self.in_past(clock, thread).map(|m| &m.body) {
            Some(Body::SealedThread { .. }) => Err(Self::rule(
                "this thread is sealed: only sealed messages can go in it",
            )),
            _ => Ok(()),
        }
    }

    fn sealed_referent(
        &self,
        clock: &Clock,
        thread: &EntryId,
        gov: &Governance,
    ) -> Result<SealedState, Invalid> {
        self.sealed_state_at(clock, thread, gov).ok_or_else(|| {
            Self::rule(format!(
                "it refers to sealed thread {thread}, which does not exist here"
            ))
        })
    }

    /// The latest encryption key a member published in the past `clock`.
    fn profile_key_at(&self, clock: &Clock, member: &MemberId) -> Option<[u8; 32]> {
        self.ix
            .profiles
            .iter()
            .filter_map(|h| self.in_past(clock, h).map(|m| (m, h)))
            .filter(|(m, _)| self.actor_of(m) == *member)
            .filter_map(|(m, h)| match &m.body {
                Body::Profile { enc_key } => Some(((m.max_op, *h), *enc_key)),
                _ => None,
            })
            .max_by_key(|(k, _)| *k)
            .map(|(_, k)| k)
    }

    /// A sealed thread's readers and epochs at a point: a fold over its reader changes in that past,
    /// in causal order (op counter, then id), keeping only readers who are still active members.
    /// A reader change by someone removed concurrently with it adds or removes no one.
    fn sealed_state_at(
        &self,
        clock: &Clock,
        thread: &EntryId,
        gov: &Governance,
    ) -> Option<SealedState> {
        let t = self.in_past(clock, thread)?;
        let Body::SealedThread { commit, wraps, .. } = &t.body else {
            return None;
        };
        let to_map = |wraps: &[crate::sealed::Wrap]| {
            wraps
                .iter()
                .map(|w| (w.member, (w.key, w.enc, w.ct.clone())))
                .collect::<BTreeMap<_, _>>()
        };
        let mut readers: BTreeSet<MemberId> = wraps.iter().map(|w| w.member).collect();
        let mut epochs = vec![Epoch {
            id: *thread,
            commit: *commit,
            wraps: to_map(wraps),
        }];
        let mut events: Vec<(&Meta, EntryId)> = self
            .ix
            .thread_events
            .get(thread)
            .into_iter()
            .flatten()
            .filter_map(|h| self.in_past(clock, h).map(|m| (m, *h)))
            .collect();
        events.sort_by_key(|(m, h)| (m.max_op, *h));
        for (m, h) in events {
            let void = self.is_void(gov, &h);
            match &m.body {
                Body::ReaderAdd { .. } if void => {}
                Body::ReaderAdd { member, wraps, .. } => {
                    readers.insert(*member);
                    for w in wraps {
                        if let Some(e) = epochs.iter_mut().find(|e| e.id == w.epoch) {
                            e.wraps.insert(*member, (w.key, w.enc, w.ct.clone()));
                        }
                    }
                }
                Body::Rekey {
                    removes,
                    commit,
                    wraps,
                    ..
                } => {
                    // A removal that would leave no active reader removes no one: of two readers
                    // removing each other at the same moment, the first in linear order stands.
                    if let Some(r) = removes
                        && !void
                        && readers.iter().any(|x| x != r && gov.active(x))
                    {
                        readers.remove(r);
                    }
                    epochs.push(Epoch {
                        id: h,
                        commit: *commit,
                        wraps: to_map(wraps),
                    });
                }
                _ => {}
            }
        }
        readers.retain(|r| gov.active(r));
        Some(SealedState { readers, epochs })
    }

    /// Reads what an entry says, if its change parses and has a record's shape in this group
    /// (used to describe rejected entries; says nothing about validity).
    pub fn body_of(&self, e: &Entry) -> Option<Body> {
        let parsed = e.parse().ok()?;
        if self.ix.containers.is_empty() {
            return None;
        }
        decode_change(&parsed.change, &self.ix.containers)
            .ok()
            .map(|(b, _)| b)
    }

    /// The recount of a proposal at a valid entry's causal point (for an outcome: what it should say).
    pub fn recount_at(&self, proposal: &EntryId, at: &EntryId) -> Option<(Counts, Decision)> {
        let m = self.ix.entries.get(at)?;
        Some(self.recount(proposal, &m.clock))
    }

    /// Recounts a proposal from the stances in the past `clock` (see [`Record::tally`]).
    pub fn recount(&self, proposal: &EntryId, clock: &Clock) -> (Counts, Decision) {
        self.tally(proposal, clock)
            .map(|t| (t.counts, t.decision))
            .unwrap_or((Counts::default(), Decision::NotPassed))
    }

    fn admit(&mut self, h: EntryId, mut meta: Meta, parsed: &ParsedChange) {
        let actor = DeviceId(parsed.actor);
        let ix = match self.ix.actor_ix.get(&actor) {
            Some(i) => *i,
            None => {
                let i = self.ix.actors.len() as u32;
                self.ix.actors.push(actor);
                self.ix.actor_ix.insert(actor, i);
                i
            }
        };
        debug_assert_eq!(meta.actor, ix);
        meta.actor = ix;
        if let Body::Genesis { .. } = meta.body {
            if let Ok((_, containers)) = decode_change(&parsed.change, &BTreeMap::new()) {
                self.ix.containers = containers;
            }
            self.ix.genesis = Some(h);
        }
        for d in parsed.change.deps() {
            self.ix.heads.remove(&EntryId::from(*d));
        }
        self.ix.heads.insert(h);
        let governs = match &meta.body {
            Body::Genesis { .. } | Body::MemberLeave => true,
            Body::Outcome { proposal, .. } => matches!(
                self.ix.entries.get(proposal).map(|p| &p.body),
                Some(Body::Proposal {
                    effect: Some(_),
                    ..
                })
            ),
            _ => false,
        };
        if governs {
            self.ix.membership.push(h);
        }
        self.gov_now = std::sync::OnceLock::new();
        for r in references(&meta.body) {
            self.ix.refs.entry(r).or_default().push(h);
        }
        match &meta.body {
            Body::Profile { .. } => self.ix.profiles.push(h),
            Body::Sealed { thread, .. } => self
                .ix
                .sealed_chains
                .entry(*thread)
                .or_default()
                .entry(actor)
                .or_default()
                .push(h),
            Body::ReaderAdd { thread, .. }
            | Body::Rekey { thread, .. }
            | Body::Ask { thread, .. }
            | Body::Decline { thread, .. } => {
                self.ix.thread_events.entry(*thread).or_default().push(h)
            }
            _ => {}
        }
        self.positions
            .entry((actor, meta.seq))
            .or_default()
            .insert(h);
        self.ix.entries.insert(h, meta);
        self.ix.order.push(h);
    }

    // ----- views -----

    /// The current heads, sorted: two devices holding the same entries print the same heads.
    pub fn heads(&self) -> Vec<EntryId> {
        self.ix.heads.iter().copied().collect()
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.ix.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ix.entries.is_empty()
    }

    /// Valid entry ids in a causal order (every entry after the entries it builds on).
    pub fn causal_order(&self) -> &[EntryId] {
        &self.ix.order
    }

    /// Ids of entries rejected by a rule, with their reasons.
    pub fn rejected(&self) -> &HashMap<EntryId, Invalid> {
        &self.rejected
    }

    /// Whether `id` is a valid entry of this record.
    pub fn contains(&self, id: &EntryId) -> bool {
        self.ix.entries.contains_key(id)
    }

    /// The group's name and its rule and quorum now (as the genesis or the last passed policy
    /// decision set them), once its genesis is known.
    pub fn group_info(&self) -> Option<(&str, crate::body::Rule, u64)> {
        let g = self.ix.genesis.as_ref()?;
        let (rule, quorum) = self.policy()?;
        match &self.ix.entries.get(g)?.body {
            Body::Genesis { name, .. } => Some((name, rule, quorum)),
            _ => None,
        }
    }

    /// The group's first entry (its id is the group's id).
    pub fn genesis(&self) -> Option<EntryId> {
        self.ix.genesis
    }

    /// Members now (at the heads), with their standing.
    pub fn members(&self) -> Vec<Member> {
        self.governance().members.values().cloned().collect()
    }

    /// A valid entry: its author, body and meta.
    pub fn entry(&self, id: &EntryId) -> Option<(DeviceId, &Meta)> {
        self.ix.entries.get(id).map(|m| (self.actor_of(m), m))
    }

    /// Entries that refer to `id`, in causal order (op counter, then id).
    pub fn referrers(&self, id: &EntryId) -> Vec<EntryId> {
        let mut v: Vec<EntryId> = self.ix.refs.get(id).cloned().unwrap_or_default();
        v.sort_by_key(|h| (self.ix.entries.get(h).map(|m| m.max_op), *h));
        v
    }

    /// All threads, oldest first.
    pub fn threads(&self) -> Vec<EntryId> {
        let mut v: Vec<(u64, EntryId)> = self
            .ix
            .entries
            .iter()
            .filter(|(_, m)| matches!(m.body, Body::Thread { .. } | Body::SealedThread { .. }))
            .map(|(h, m)| (m.max_op, *h))
            .collect();
        v.sort();
        v.into_iter().map(|(_, h)| h).collect()
    }

    /// The outcome of a proposal that stands now, if it is closed: (outcome entry, decision).
    pub fn outcome(&self, proposal: &EntryId) -> Option<(EntryId, Decision)> {
        self.standing(proposal).map(|s| (s.outcome, s.decision))
    }

    /// Which outcome of a proposal stands now, and whether closes made apart conflict.
    pub fn standing(&self, proposal: &EntryId) -> Option<crate::governance::Standing> {
        self.standing_at(proposal, &self.clock_of(&self.heads()), self.governance())
    }

    /// Recount of a proposal at the heads (what closing it now would record).
    pub fn recount_now(&self, proposal: &EntryId) -> (Counts, Decision) {
        self.recount(proposal, &self.clock_of(&self.heads()))
    }

    /// How a proposal stands if counted now: counts, decision, views given and needed.
    pub fn tally_now(&self, proposal: &EntryId) -> Option<crate::governance::Tally> {
        self.tally(proposal, &self.clock_of(&self.heads()))
    }

    /// The group's rule and quorum now.
    pub fn policy(&self) -> Option<(crate::body::Rule, u64)> {
        self.governance().policy
    }

    /// Proposals whose closes were made apart and conflict now, with the outcome that stands.
    pub fn conflicts(&self) -> Vec<(EntryId, crate::governance::Standing)> {
        let mut props: Vec<EntryId> = self
            .ix
            .entries
            .values()
            .filter_map(|m| match &m.body {
                Body::Outcome { proposal, .. } => Some(*proposal),
                _ => None,
            })
            .collect();
        props.sort();
        props.dedup();
        props
            .into_iter()
            .filter_map(|p| self.standing(&p).map(|s| (p, s)))
            .filter(|(_, s)| s.conflict())
            .collect()
    }

    /// "Written concurrently with removal": the author was removed (or left) by an entry that
    /// neither came before nor after this one. Such an entry is kept and shown, but as a close, a
    /// stance, a leave or a reader change it has no effect (see [`crate::governance`]).
    pub fn concurrent_with_removal(&self, id: &EntryId) -> bool {
        let g = self.governance();
        let Some(m) = self.ix.entries.get(id) else {
            return false;
        };
        let author = self.actor_of(m);
        !g.active(&author) && self.is_void(g, id)
    }

    /// Whether a valid entry has no effect now (its author was removed concurrently with it).
    pub fn void_now(&self, id: &EntryId) -> bool {
        self.is_void(self.governance(), id)
    }

    /// A sealed thread's public facts at the heads: title, reason, readers, epochs, entries, asks.
    pub fn sealed_thread(&self, thread: &EntryId) -> Option<SealedInfo> {
        let clock = self.clock_of(&self.heads());
        let state = self.sealed_state_at(&clock, thread, self.governance())?;
        let Some(Body::SealedThread { title, reason, .. }) =
            self.ix.entries.get(thread).map(|m| &m.body)
        else {
            return None;
        };
        let entries = self
            .referrers(thread)
            .into_iter()
            .filter(|h| {
                matches!(
                    self.ix.entries.get(h).map(|m| &m.body),
                    Some(Body::Sealed { .. })
                )
            })
            .collect();
        let mut events = self
            .ix
            .thread_events
            .get(thread)
            .cloned()
            .unwrap_or_default();
        self.sort_causally(&mut events);
        let (mut asks, mut declines) = (Vec::new(), Vec::new());
        for h in events {
            let Some(m) = self.ix.entries.get(&h) else {
                continue;
            };
            match &m.body {
                Body::Ask { why, .. } => asks.push((h, self.actor_of(m), why.clone())),
                Body::Decline { member, reason, .. } => {
                    declines.push((h, self.actor_of(m), *member, reason.clone()))
                }
                _ => {}
            }
        }
        Some(SealedInfo {
            title: title.clone(),
            reason: reason.clone(),
            state,
            entries,
            asks,
            declines,
        })
    }

    /// A sealed thread's readers and epochs at the heads (cheaper than [`Record::sealed_thread`]:
    /// a fold over its few reader changes, without listing its messages).
    pub fn sealed_state(&self, thread: &EntryId) -> Option<SealedState> {
        let clock = self.clock_of(&self.heads());
        self.sealed_state_at(&clock, thread, self.governance())
    }

    /// `author`'s sealed messages in `thread`, in their order.
    pub fn sealed_chain(&self, thread: &EntryId, author: &DeviceId) -> &[EntryId] {
        self.ix
            .sealed_chains
            .get(thread)
            .and_then(|c| c.get(author))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The encryption key a member has published, at the heads.
    pub fn profile_key(&self, member: &MemberId) -> Option<[u8; 32]> {
        self.profile_key_at(&self.clock_of(&self.heads()), member)
    }

    /// The sequence number `actor`'s next entry will have (sealed messages bind it in their AAD).
    pub fn next_seq(&self, actor: &DeviceId) -> u64 {
        let clock = self.clock_of(&self.heads());
        self.ix
            .actor_ix
            .get(actor)
            .map(|a| clock.get(*a))
            .unwrap_or(0)
            + 1
    }

    /// Whether the entry has been corrected, and by which entries.
    pub fn corrections(&self, id: &EntryId) -> Vec<EntryId> {
        self.referrers(id)
            .into_iter()
            .filter(|h| {
                matches!(
                    self.ix.entries.get(h).map(|m| &m.body),
                    Some(Body::Correct { .. })
                )
            })
            .collect()
    }

    // ----- what sync needs -----

    /// For every device with valid entries: its highest sequence number and the id of that entry.
    ///
    /// Because each entry builds on its author's previous one, a device's valid entries are exactly
    /// sequence numbers `1..=seq`, so this names the whole valid set; the tip id tells two devices
    /// whose counts agree whether their chains do too (they differ only after a fork).
    pub fn summary(&self) -> Vec<(DeviceId, u64, EntryId)> {
        let clock = self.clock_of(&self.heads());
        let mut v: Vec<_> = self
            .ix
            .actors
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let seq = clock.get(i as u32);
                self.valid_at(a, seq).map(|tip| (*a, seq, tip))
            })
            .collect();
        v.sort();
        v
    }

    /// The valid entry of `device` at `seq`, if any.
    pub fn valid_at(&self, device: &DeviceId, seq: u64) -> Option<EntryId> {
        self.positions
            .get(&(*device, seq))?
            .iter()
            .find(|h| self.ix.entries.contains_key(h))
            .copied()
    }

    /// Sorts entry ids into a causal order: by op counter (which grows along every causal chain), then id.
    pub fn sort_causally(&self, ids: &mut [EntryId]) {
        ids.sort_by_key(|h| {
            (
                self.ix.entries.get(h).map(|m| m.max_op).unwrap_or(u64::MAX),
                *h,
            )
        });
    }

    /// Auditors' devices now, with their names: they may sync the record but never write.
    pub fn auditors(&self) -> Vec<(DeviceId, String)> {
        self.governance()
            .auditors
            .iter()
            .map(|(d, n)| (*d, n.clone()))
            .collect()
    }

    /// Devices allowed to sync this group now: active members' and auditors'.
    pub fn sync_devices(&self) -> Vec<DeviceId> {
        let mut v = self.active_devices();
        v.extend(self.auditors().into_iter().map(|(d, _)| d));
        v
    }

    /// Active members' device ids now (the devices whose entries count).
    pub fn active_devices(&self) -> Vec<DeviceId> {
        self.members()
            .into_iter()
            .filter(|m| m.status == Status::Active)
            .map(|m| m.id)
            .collect()
    }

    // ----- snapshots -----

    /// The state a snapshot saves: Automerge's saved document and the engine's index.
    pub fn snapshot(&mut self) -> Result<(Vec<u8>, Vec<u8>), SnapshotError> {
        let index =
            postcard::to_stdvec(&self.ix).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        let doc = self.doc()?.save();
        Ok((doc, index))
    }

    /// Restores a record from a snapshot taken by this device. Entries valid after the snapshot are then
    /// applied with [`Record::ingest`]; pending and rejected entries are handed back the same way.
    ///
    /// The document itself is loaded only when first needed (opening reads just the index); the caller
    /// is expected to have checked the snapshot's integrity.
    pub fn restore(group: GroupId, doc: &[u8], index: &[u8]) -> Result<Record, SnapshotError> {
        let doc = Doc::Saved(doc.to_vec());
        let ix: Index =
            postcard::from_bytes(index).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let mut positions: HashMap<(DeviceId, u64), BTreeSet<EntryId>> = HashMap::new();
        for (h, m) in &ix.entries {
            let a = *ix
                .actors
                .get(m.actor as usize)
                .ok_or_else(|| SnapshotError::Decode("actor index".into()))?;
            positions.entry((a, m.seq)).or_default().insert(*h);
        }
        let mut r = Record::new(group);
        r.doc = doc;
        r.ix = ix;
        r.positions = positions;
        Ok(r)
    }
}

/// The Automerge document. Applying changes costs Automerge time in proportion to the whole document
/// per call, so valid changes queue up and are applied in one call when the document is read
/// (snapshots, exports); a restored snapshot stays as bytes until then.
enum Doc {
    Saved(Vec<u8>),
    Loaded(Box<Automerge>),
}

/// A snapshot could not be written or read. The entries themselves are untouched; rebuild from them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("could not encode the snapshot: {0}")]
    Encode(String),
    #[error("the snapshot is damaged ({0}); the record can be rebuilt from its entries")]
    Decode(String),
    #[error("Automerge refused validated changes ({0}); please report this. The entries are safe")]
    Apply(String),
}

fn describe(d: &Decision, c: &Counts) -> String {
    format!(
        "{}: {} agree, {} abstain, {} disagree, {} block",
        d.as_str(),
        c.agree,
        c.abstain,
        c.disagree,
        c.block
    )
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    match (num(&d[0..4]), num(&d[5..7]), num(&d[8..10])) {
        (Some(_), Some(m), Some(day)) => (1..=12).contains(&m) && (1..=31).contains(&day),
        _ => false,
    }
}

/// The entries a record refers to.
fn references(b: &Body) -> Vec<EntryId> {
    match b {
        Body::Message { thread, .. }
        | Body::Proposal { thread, .. }
        | Body::Action { thread, .. } => vec![*thread],
        Body::Stance { proposal, .. } | Body::Outcome { proposal, .. } => vec![*proposal],
        Body::MemberRemove { decision, .. } => vec![*decision],
        Body::Understand { target, .. }
        | Body::Confirm { target }
        | Body::Correct { target, .. } => vec![*target],
        Body::ActionDone { action } => vec![*action],
        Body::ReaderAdd { thread, .. }
        | Body::Rekey { thread, .. }
        | Body::Ask { thread, .. }
        | Body::Decline { thread, .. }
        | Body::Sealed { thread, .. } => vec![*thread],
        Body::Genesis { .. }
        | Body::MemberAdd { .. }
        | Body::MemberLeave
        | Body::Thread { .. }
        | Body::Profile { .. }
        | Body::SealedThread { .. }
        | Body::AuditorAdd { .. } => vec![],
    }
}

/// Entries whose signatures were checked by [`verify_signatures`]; only that function makes one.
pub struct Verified {
    ok: Vec<(Entry, ParsedChange)>,
    rejected: Vec<Rejection>,
}

impl Verified {
    /// How many entries passed the check.
    pub fn passed(&self) -> usize {
        self.ok.len()
    }

    /// For each entry that passed, in bundle order: its id and the ids it builds on.
    pub fn links(&self) -> Vec<(EntryId, Vec<EntryId>)> {
        self.ok
            .iter()
            .map(|(_, p)| {
                (
                    p.hash,
                    p.change.deps().iter().map(|d| EntryId::from(*d)).collect(),
                )
            })
            .collect()
    }
}

/// Parses every entry and checks its signature with `verify_strict` (the same check as
/// [`Record::ingest`]), on `threads` threads. Bundle order is kept.
pub fn verify_signatures(group: &GroupId, entries: Vec<Entry>, threads: usize) -> Verified {
    let threads = threads.clamp(1, 64);
    let check = |e: &Entry| -> Result<ParsedChange, Invalid> {
        let parsed = e.parse()?;
        validate_signature(e, &parsed, group, &[])?;
        if e.doc != DocRef::Public {
            return Err(Invalid::UnsupportedDocument);
        }
        Ok(parsed)
    };
    let verdicts: Vec<Result<ParsedChange, Invalid>> = if threads == 1 || entries.len() < 64 {
        entries.iter().map(check).collect()
    } else {
        let chunk = entries.len().div_ceil(threads);
        std::thread::scope(|sc| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|c| {
                    (
                        c.len(),
                        sc.spawn(move || c.iter().map(check).collect::<Vec<_>>()),
                    )
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(n, h)| {
                    // Parsing catches Automerge's panics; should a check still panic, its entries are refused.
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Invalid::Malformed("the check failed".into())); n]
                    })
                })
                .collect()
        })
    };
    let mut v = Verified {
        ok: Vec::with_capacity(entries.len()),
        rejected: Vec::new(),
    };
    for (e, verdict) in entries.into_iter().zip(verdicts) {
        match verdict {
            Ok(p) => v.ok.push((e, p)),
            Err(reason) => v.rejected.push(Rejection {
                id: digest_id(&e),
                entry: e,
                reason,
            }),
        }
    }
    v
}

/// Id of an entry whose change could not be parsed: SHA-256 of its encoded bytes.
fn digest_id(e: &Entry) -> EntryId {
    use sha2::{Digest, Sha256};
    EntryId(Sha256::digest(e.encode()).into())
}
