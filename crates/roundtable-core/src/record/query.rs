//! The read-only views of a record: what the CLI, the web page, sync and the auditor read. Nothing
//! here changes the record or judges an entry.
//!
//! Views without a point are at the heads (the record as this device holds it now); the `_at`
//! forms elsewhere take a [`Clock`](super::Clock).

use std::collections::BTreeMap;

use super::{Clock, Member, Meta, Record, SealedState, Status};
use crate::body::{Body, Decision, decode_change};
use crate::entry::Entry;
use crate::governance::Governance;
use crate::id::{DeviceId, EntryId, MemberId};
use crate::invalid::Invalid;

/// Everything public about a sealed thread, at the heads.
#[derive(Debug, Clone)]
pub struct SealedInfo {
    /// The thread's public title.
    pub title: String,
    /// Why it is sealed, as its starter said.
    pub reason: String,
    /// Its readers and epochs at the heads.
    pub state: SealedState,
    /// Its sealed messages, in a causal order.
    pub entries: Vec<EntryId>,
    /// Requests to read it: (entry, who asked, why).
    pub asks: Vec<(EntryId, MemberId, String)>,
    /// Declined requests: (entry, reader who declined, member, reason).
    pub declines: Vec<(EntryId, MemberId, MemberId, String)>,
}

impl Record {
    // ----- what the engine holds -----

    /// The current heads, sorted: two devices holding the same entries print the same heads.
    pub fn heads(&self) -> Vec<EntryId> {
        self.ix.heads.iter().copied().collect()
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.ix.entries.len()
    }

    /// Whether no entry is valid yet (not even the genesis).
    pub fn is_empty(&self) -> bool {
        self.ix.entries.is_empty()
    }

    /// Valid entry ids in a causal order (every entry after the entries it builds on).
    pub fn causal_order(&self) -> &[EntryId] {
        &self.ix.order
    }

    /// Whether `id` is a valid entry of this record.
    pub fn contains(&self, id: &EntryId) -> bool {
        self.ix.entries.contains_key(id)
    }

    /// Whether an entry whose signature held has been given to this record: valid, waiting for
    /// entries it builds on, or refused by a rule.
    pub fn has_seen(&self, id: &EntryId) -> bool {
        self.ix.entries.contains_key(id)
            || self.pending.contains_key(id)
            || self.rejected.contains_key(id)
    }

    /// A waiting entry's bytes.
    pub fn pending_entry(&self, id: &EntryId) -> Option<&Entry> {
        self.pending.get(id).map(|c| &c.entry)
    }

    /// Entries waiting for entries they build on.
    pub fn pending_ids(&self) -> Vec<EntryId> {
        let mut v: Vec<_> = self.pending.keys().copied().collect();
        v.sort();
        v
    }

    /// Ids of entries rejected by a rule, with their reasons.
    pub fn rejected(&self) -> &super::FastMap<EntryId, Invalid> {
        &self.rejected
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

    // ----- the group now -----

    /// The group's first entry (its id is the group's id).
    pub fn genesis(&self) -> Option<EntryId> {
        self.ix.genesis
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

    /// The group's rule and quorum now.
    pub fn policy(&self) -> Option<(crate::body::Rule, u64)> {
        self.governance().policy
    }

    /// The governance at the heads.
    pub fn governance(&self) -> &Governance {
        self.gov_now
            .get_or_init(|| (*self.governance_at(&self.clock_of(&self.heads()))).clone())
    }

    /// Members now (at the heads), with their standing.
    pub fn members(&self) -> Vec<Member> {
        self.governance().members.values().cloned().collect()
    }

    /// Membership as the rules see it at the point `clock`.
    pub fn members_at_clock(&self, clock: &Clock) -> BTreeMap<MemberId, Member> {
        self.governance_at(clock).members.clone()
    }

    // ----- entries and what refers to them -----

    /// A valid entry: its author (the member), body and meta.
    pub fn entry(&self, id: &EntryId) -> Option<(MemberId, &Meta)> {
        self.ix.entries.get(id).map(|m| (self.actor_of(m), &**m))
    }

    /// The device that wrote a valid entry (its change's actor): the member's own id on their
    /// first device, else a device linked to them. Sequence numbers and sealed chains are per device.
    pub fn entry_device(&self, id: &EntryId) -> Option<DeviceId> {
        self.ix.entries.get(id).map(|m| self.device_of(m))
    }

    /// Entries that refer to `id`, in causal order (op counter, then id).
    pub fn referrers(&self, id: &EntryId) -> Vec<EntryId> {
        let mut v: Vec<EntryId> = self.ix.refs.get(id).cloned().unwrap_or_default();
        v.sort_by_key(|h| (self.ix.entries.get(h).map(|m| m.max_op), *h));
        v
    }

    /// Where an action stands: done only when its owner says so; anyone else's `action.done` is a
    /// suggestion that it is done, for the owner to confirm. An `action.done` taken back
    /// (`action.undo`) counts for nothing. `None` for an entry that is not an action.
    pub fn action_state(&self, id: &EntryId) -> Option<ActionState> {
        let (_, m) = self.entry(id)?;
        let Body::Action { owner, .. } = &m.body else {
            return None;
        };
        let mut state = ActionState::default();
        for h in self.referrers(id) {
            let Some((by, dm)) = self.entry(&h) else {
                continue;
            };
            if !matches!(dm.body, Body::ActionDone { .. }) {
                continue;
            }
            // Taken back by its author (the rules allow no one else).
            let undone = self.referrers(&h).iter().any(|u| {
                self.entry(u)
                    .is_some_and(|(_, um)| matches!(um.body, Body::ActionUndo { .. }))
            });
            if undone {
                continue;
            }
            let said = ActionDoneBy {
                member: by,
                time_ms: dm.time_ms,
                entry: h,
            };
            if by == *owner {
                if state.done.is_none() {
                    state.done = Some(said);
                }
            } else {
                state.suggested.push(said);
            }
        }
        Some(state)
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

    /// Sorts entry ids into a causal order: by op counter (which grows along every causal chain), then id.
    pub fn sort_causally(&self, ids: &mut [EntryId]) {
        ids.sort_by_key(|h| {
            (
                self.ix.entries.get(h).map(|m| m.max_op).unwrap_or(u64::MAX),
                *h,
            )
        });
    }

    // ----- decisions and removals -----

    /// The outcome of a proposal that stands now, if it is closed: (outcome entry, decision).
    pub fn outcome(&self, proposal: &EntryId) -> Option<(EntryId, Decision)> {
        self.standing(proposal).map(|s| (s.outcome, s.decision))
    }

    /// Which outcome of a proposal stands now, and whether closes made apart conflict.
    pub fn standing(&self, proposal: &EntryId) -> Option<crate::governance::Standing> {
        self.standing_at(proposal, &self.clock_of(&self.heads()), self.governance())
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

    // ----- sealed threads -----

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

    /// Auditors' devices now, with their names: they may sync the record but never write.
    pub fn auditors(&self) -> Vec<(DeviceId, String)> {
        self.governance()
            .auditors
            .iter()
            .map(|(d, n)| (*d, n.clone()))
            .collect()
    }

    /// Keepers now (not stopped), with their names: they may sync the record (pull and push,
    /// sealed entries as ciphertext) but never write in it.
    pub fn keepers(&self) -> Vec<(DeviceId, String)> {
        self.governance().active_keepers()
    }

    /// Devices allowed to sync this group now: active members', auditors' and keepers'.
    pub fn sync_devices(&self) -> Vec<DeviceId> {
        let mut v = self.active_devices();
        v.extend(self.auditors().into_iter().map(|(d, _)| d));
        v.extend(self.keepers().into_iter().map(|(d, _)| d));
        v
    }

    /// Active members' devices now, not stopped (the devices that may write and sync): each
    /// member's first key and the devices they linked.
    pub fn active_devices(&self) -> Vec<DeviceId> {
        let g = self.governance();
        g.members
            .keys()
            .chain(g.linked.keys())
            .filter(|d| g.device_active(d))
            .copied()
            .collect()
    }

    /// Active members now (their member ids: one per member, however many devices they have).
    pub fn active_members(&self) -> Vec<MemberId> {
        self.members()
            .into_iter()
            .filter(|m| m.status == Status::Active)
            .map(|m| m.id)
            .collect()
    }
}

/// Where an action stands ([`Record::action_state`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActionState {
    /// The owner's own "it is done", the first in causal order; `None` while it is open.
    pub done: Option<ActionDoneBy>,
    /// Others who said it is done, in causal order: suggestions the owner may confirm.
    pub suggested: Vec<ActionDoneBy>,
}

/// Who said an action is done, when, and in which entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActionDoneBy {
    /// The member who said it.
    pub member: MemberId,
    /// The time their entry claims, ms since the epoch.
    pub time_ms: i64,
    /// Their `action.done` entry.
    pub entry: EntryId,
}
