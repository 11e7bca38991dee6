//! The engine's index: what the record keeps for each valid entry ([`Meta`]) and the lookups the
//! rules and the views need (referrers, governance entries, profiles, sealed threads' events and
//! chains), all built as each entry is admitted.
//!
//! **Invariant:** only `Record::admit` adds to the index, once per valid entry and in a causal
//! order (`Record::restore` loads a saved one whole), and the index is exactly what a snapshot
//! saves; so a restored record judges new entries as the one that took the snapshot would.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{Clock, Record};
use crate::body::{Body, decode_change};
use crate::change::ParsedChange;
use crate::id::{DeviceId, EntryId};

/// What the record knows about a valid entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub(crate) actor: u32,
    /// The author's sequence number: the entry is their `seq`-th in the group.
    pub seq: u64,
    /// The change's highest op counter; strictly greater than any in its past, so it orders causally.
    pub max_op: u64,
    /// Author's timestamp in milliseconds (informational; never used by a rule).
    pub time_ms: i64,
    pub(crate) clock: Clock,
    /// What the entry says.
    pub body: Body,
    /// The member the entry is by, when its device is not the member's own first key (a linked
    /// device, `device.add`). Fixed when the entry is judged, from its causal past.
    pub(crate) member: Option<Box<DeviceId>>,
}

/// The part of the engine that a snapshot saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub(super) actors: Vec<DeviceId>,
    pub(super) actor_ix: HashMap<DeviceId, u32>,
    /// Boxed: a `Meta` is large (its decoded body), and the map holds about twice as many slots as entries.
    pub(crate) entries: super::FastMap<EntryId, Box<Meta>>,
    pub(super) heads: BTreeSet<EntryId>,
    pub(super) containers: BTreeMap<String, (u64, DeviceId)>,
    pub(crate) genesis: Option<EntryId>,
    /// Governance entries: the genesis, leaves, own words, device links and revocations, and the
    /// outcomes of proposals with an effect. Few,
    /// folded to find the group's state at a point.
    pub(crate) membership: Vec<EntryId>,
    /// Entries that refer to an entry (messages of a thread, stances of a proposal, ...).
    pub(crate) refs: super::FastMap<EntryId, Vec<EntryId>>,
    /// Valid entries in the order they were applied (a causal order).
    pub(super) order: Vec<EntryId>,
    /// Profile entries (members' encryption keys): few, folded like membership.
    pub(crate) profiles: Vec<EntryId>,
    /// Sealed threads' reader changes, asks and declines, by thread (not their messages).
    pub(crate) thread_events: super::FastMap<EntryId, Vec<EntryId>>,
    /// Sealed messages by thread and author, in the author's order: a writer finds its place here
    /// without walking the whole thread.
    pub(super) sealed_chains: HashMap<EntryId, HashMap<DeviceId, Vec<EntryId>>>,
}

impl Record {
    pub(super) fn admit(&mut self, h: EntryId, mut meta: Meta, parsed: &ParsedChange) {
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
            Body::Genesis { .. }
            | Body::MemberLeave
            | Body::About { .. }
            | Body::DeviceAdd { .. }
            | Body::DeviceRevoke { .. } => true,
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
            | Body::ReaderAgree { thread, .. }
            | Body::Ask { thread, .. }
            | Body::Decline { thread, .. } => {
                self.ix.thread_events.entry(*thread).or_default().push(h)
            }
            _ => {}
        }
        self.positions.insert((actor, meta.seq), h);
        self.ix.entries.insert(h, Box::new(meta));
        self.ix.order.push(h);
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
        Body::ActionUndo { done } => vec![*done],
        Body::ReaderAdd { thread, .. }
        | Body::Rekey { thread, .. }
        | Body::ReaderAgree { thread, .. }
        | Body::Ask { thread, .. }
        | Body::Decline { thread, .. }
        | Body::Sealed { thread, .. } => vec![*thread],
        Body::Genesis { .. }
        | Body::MemberAdd { .. }
        | Body::MemberLeave
        | Body::Thread { .. }
        | Body::Profile { .. }
        | Body::SealedThread { .. }
        | Body::AuditorAdd { .. }
        | Body::About { .. }
        | Body::DeviceAdd { .. }
        | Body::DeviceRevoke { .. } => vec![],
    }
}
