//! Equal authority: who is in the group, what its policy is, and which decisions stand (how a
//! proposal is counted is in [`crate::recount`]). Everything here is a pure function of a causal
//! past (a [`Clock`]).
//!
//! **Invariant (no one acts for the group alone):** the members, the auditors, the keepers and the
//! policy change
//! only through the *standing* outcome of a passed proposal with an [`Effect`], a member's own
//! leaving, or the genesis. No single entry of one member can add, re-add or remove anyone, let an
//! auditor in, or change the rule: a close is valid only when the stances in its past reach the
//! quorum, and its recount is checked by every device.
//!
//! **Invariant (effects follow the decision that stands):** when two closes of one proposal are
//! concurrent, the one that stands is chosen from the DAG alone (more stances counted wins; on a
//! tie, "not passed"; then the lower id), and only its effect is applied.
//!
//! **Invariant (a removed author has no effect):** an entry written concurrently with its author's
//! removal (or leaving) stays valid and shown, but as a close, a stance, a leave or a reader change
//! it does nothing in any past that holds the removal.
//!
//! The fold is iterated: voiding one entry can only add to the set of void entries, so it ends
//! after at most as many rounds as there are governance entries (usually one or two).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::body::{Body, Counts, Decision, Effect, Rule, StanceKind};
use crate::id::{DeviceId, EntryId, MemberId};
use crate::record::{Clock, Meta, Record};

// The tally lives in `crate::recount`; these names keep `governance::Tally` and
// `governance::views_needed` working.
pub use crate::recount::{Tally, views_needed};

/// A member's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// A member now: their entries count.
    Active,
    /// Left the group by their own `member.leave`.
    Left,
    /// Removed by a passed proposal with [`Effect::Remove`].
    Removed,
}

impl Status {
    /// The standing in words for output: `active`, `left` or `removed`.
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
    /// Their device id.
    pub id: MemberId,
    /// The name they joined with.
    pub name: String,
    /// What they need in order to take part, in their words (may be empty).
    pub needs: String,
    /// Their standing at that point.
    pub status: Status,
}

/// The group's state at one causal point.
#[derive(Debug, Clone, Default)]
pub struct Governance {
    /// Everyone who has ever been a member, with their standing.
    pub members: BTreeMap<MemberId, Member>,
    /// Auditors' devices, with their names.
    pub auditors: BTreeMap<DeviceId, String>,
    /// Keepers' devices (always-on devices that store and forward the record but never write),
    /// stopped ones included: a keeper's id is a keeper's for good.
    pub keepers: BTreeMap<DeviceId, Keeper>,
    /// The group's rule and minimum quorum, as the genesis or the last policy decision set them.
    pub policy: Option<(Rule, u64)>,
    /// Members who have said their name and needs in their own words (a `member.about`).
    pub own_words: BTreeSet<MemberId>,
    /// Devices members linked to themselves (`device.add`), beyond each member's first key (their
    /// member id, always their device). A device is linked once, to one member, for good.
    pub linked: BTreeMap<DeviceId, Device>,
    /// Devices their member stopped (`device.revoke`), with the entry that stopped each.
    pub revoked: BTreeMap<DeviceId, EntryId>,
    /// The entry that last changed each member's standing.
    changed_by: BTreeMap<MemberId, EntryId>,
    /// Governance entries that are valid but void (their author was removed concurrently).
    void: BTreeSet<EntryId>,
}

/// A device a member linked to themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Whose device it is.
    pub member: MemberId,
    /// What the member calls it.
    pub name: String,
    /// The `device.add` that linked it.
    pub added_by: EntryId,
}

/// A keeper the group named (`keeper.add`): it may sync the record, never write in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keeper {
    /// What members call it.
    pub name: String,
    /// The outcome that named it (last, when it was named again after a stop).
    pub added_by: EntryId,
    /// The outcome that stopped it (`keeper.remove`), while it is stopped.
    pub removed_by: Option<EntryId>,
}

impl Governance {
    /// Whether `device` is a keeper the group has not stopped: it may sync, never write.
    pub fn keeper_active(&self, device: &DeviceId) -> bool {
        self.keepers
            .get(device)
            .is_some_and(|k| k.removed_by.is_none())
    }

    /// The keepers not stopped, with their names.
    pub fn active_keepers(&self) -> Vec<(DeviceId, String)> {
        self.keepers
            .iter()
            .filter(|(_, k)| k.removed_by.is_none())
            .map(|(d, k)| (*d, k.name.clone()))
            .collect()
    }

    /// The member a device belongs to: its member's first key, or a device linked to them.
    pub fn member_of(&self, device: &DeviceId) -> Option<MemberId> {
        match self.linked.get(device) {
            Some(d) => Some(d.member),
            None => self.members.contains_key(device).then_some(*device),
        }
    }

    /// Whether `device` may write and sync here: a device of an active member, not stopped.
    pub fn device_active(&self, device: &DeviceId) -> bool {
        self.member_of(device).is_some_and(|m| self.active(&m))
            && !self.revoked.contains_key(device)
    }

    /// A member's devices here, their first key first, each with whether it is stopped.
    pub fn devices_of(&self, member: &MemberId) -> Vec<(DeviceId, bool)> {
        let mut v = Vec::new();
        if self.members.contains_key(member) {
            v.push((*member, self.revoked.contains_key(member)));
        }
        for (d, x) in &self.linked {
            if x.member == *member {
                v.push((*d, self.revoked.contains_key(d)));
            }
        }
        v
    }

    /// Whether `device` is anyone's in this group: a member's first key, a linked device, an
    /// auditor's or a keeper's (stopped keepers included).
    pub fn device_known(&self, device: &DeviceId) -> bool {
        self.members.contains_key(device)
            || self.linked.contains_key(device)
            || self.auditors.contains_key(device)
            || self.keepers.contains_key(device)
    }

    /// Whether `m` is an active member here.
    pub fn active(&self, m: &MemberId) -> bool {
        self.members
            .get(m)
            .is_some_and(|x| x.status == Status::Active)
    }

    /// Active members here.
    pub fn active_count(&self) -> u64 {
        self.members
            .values()
            .filter(|m| m.status == Status::Active)
            .count() as u64
    }
}

/// Which outcome of a proposal counts at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The outcome entry that stands.
    pub outcome: EntryId,
    /// Its decision (only a passed one applies an effect).
    pub decision: Decision,
    /// Every outcome not in the past of another (more than one: a conflict shown to everyone).
    pub frontier: Vec<EntryId>,
}

impl Standing {
    /// Two or more closes were made without seeing each other and none settles them yet.
    pub fn conflict(&self) -> bool {
        self.frontier.len() > 1
    }
}

/// How many points' governance a record keeps (a recount asks for two: the proposal's and now).
const GOV_CACHE: usize = 8;

impl Record {
    /// The group's state at the point `clock`.
    pub fn governance_at(&self, clock: &Clock) -> std::sync::Arc<Governance> {
        let mut events: Vec<(&Meta, EntryId)> = self
            .ix
            .membership
            .iter()
            .filter_map(|h| self.in_past(clock, h).map(|m| (m, *h)))
            .collect();
        events.sort_by_key(|(m, h)| (m.max_op, *h));
        let key: Vec<EntryId> = events.iter().map(|(_, h)| *h).collect();
        if let Ok(cache) = self.gov_cache.lock()
            && let Some((_, g)) = cache.iter().find(|(k, _)| *k == key)
        {
            return std::sync::Arc::clone(g);
        }
        let mut void = BTreeSet::new();
        let g = loop {
            let (mut g, more) = self.fold_once(&events, &void);
            if more.is_subset(&void) {
                g.void = void;
                break std::sync::Arc::new(g);
            }
            void.extend(more);
        };
        if let Ok(mut cache) = self.gov_cache.lock() {
            if cache.len() >= GOV_CACHE {
                cache.remove(0);
            }
            cache.push((key, std::sync::Arc::clone(&g)));
        }
        g
    }

    /// One pass of the governance fold with `void` entries skipped; returns the state and every
    /// entry found void on the way.
    fn fold_once(
        &self,
        events: &[(&Meta, EntryId)],
        void: &BTreeSet<EntryId>,
    ) -> (Governance, BTreeSet<EntryId>) {
        // The standing outcome of each effect proposal, among the outcomes not void.
        let mut by_proposal: BTreeMap<EntryId, Vec<EntryId>> = BTreeMap::new();
        for (m, h) in events {
            if let Body::Outcome { proposal, .. } = &m.body
                && !void.contains(h)
            {
                by_proposal.entry(*proposal).or_default().push(*h);
            }
        }
        let standing: BTreeSet<EntryId> = by_proposal
            .values()
            .filter_map(|outs| self.pick_standing(outs))
            .filter(|s| s.decision == Decision::Passed)
            .map(|s| s.outcome)
            .collect();
        let mut g = Governance::default();
        let mut found = BTreeSet::new();
        let mut applied = Vec::new();
        for (m, h) in events {
            let author = self.actor_of(m);
            let device = self.device_of(m);
            if let Body::Genesis {
                rule,
                quorum,
                creator_name,
                creator_needs,
                ..
            } = &m.body
            {
                g.members.insert(
                    author,
                    Member {
                        id: author,
                        name: creator_name.clone(),
                        needs: creator_needs.clone(),
                        status: Status::Active,
                    },
                );
                g.changed_by.insert(author, *h);
                g.policy = Some((*rule, *quorum));
                continue;
            }
            if void.contains(h) {
                continue;
            }
            if !g.active(&author) || g.revoked.contains_key(&device) {
                // Valid, so the author and device were active in its past: the removal or the
                // device's stop is concurrent with it.
                found.insert(*h);
                continue;
            }
            match &m.body {
                Body::MemberLeave => {
                    if let Some(x) = g.members.get_mut(&author) {
                        x.status = Status::Left;
                    }
                    g.changed_by.insert(author, *h);
                }
                Body::About { name, needs } => {
                    if let Some(x) = g.members.get_mut(&author) {
                        x.name = name.clone();
                        x.needs = needs.clone();
                    }
                    g.own_words.insert(author);
                }
                Body::DeviceAdd {
                    device: d, name, ..
                } => {
                    // Of two links of one device made apart, the first in linear order stands.
                    if !g.device_known(d) {
                        g.linked.insert(
                            *d,
                            Device {
                                member: author,
                                name: name.clone(),
                                added_by: *h,
                            },
                        );
                    }
                }
                Body::DeviceRevoke { device: d } => {
                    if *d != device && g.member_of(d) == Some(author) && !g.revoked.contains_key(d)
                    {
                        g.revoked.insert(*d, *h);
                    }
                }
                Body::Outcome { proposal, .. } if standing.contains(h) => {
                    let Some(Body::Proposal {
                        effect: Some(effect),
                        ..
                    }) = self.ix.entries.get(proposal).map(|p| &p.body)
                    else {
                        continue;
                    };
                    apply_effect(&mut g, effect, *h);
                }
                _ => continue,
            }
            applied.push((*h, author, device));
        }
        for (h, author, device) in applied {
            if self.void_in(&g, &h, &author, &device) {
                found.insert(h);
            }
        }
        (g, found)
    }

    /// Whether the valid entry `h` by `author` on `device` is void in `g`: its device is stopped
    /// there, or its author is not active there, by an entry concurrent with `h`.
    fn void_in(&self, g: &Governance, h: &EntryId, author: &MemberId, device: &DeviceId) -> bool {
        if g.void.contains(h) {
            return true;
        }
        // A linked device whose link is not in force here (void: made on a device stopped
        // concurrently) speaks for nobody, whoever it claimed to be.
        if device != author && g.member_of(device) != Some(*author) {
            return true;
        }
        if let Some(by) = g.revoked.get(device)
            && by != h
            && self.concurrent(h, by)
        {
            return true;
        }
        if g.active(author) {
            return false;
        }
        let Some(by) = g.changed_by.get(author).filter(|b| *b != h) else {
            return false;
        };
        self.concurrent(h, by)
    }

    /// Neither entry is in the other's past.
    pub(crate) fn concurrent(&self, a: &EntryId, b: &EntryId) -> bool {
        match (self.ix.entries.get(a), self.ix.entries.get(b)) {
            (Some(ma), Some(mb)) => {
                ma.clock.get(mb.actor) < mb.seq && mb.clock.get(ma.actor) < ma.seq
            }
            _ => false,
        }
    }

    /// Whether a valid entry has no effect in `g` (see the module's third invariant).
    pub fn is_void(&self, g: &Governance, h: &EntryId) -> bool {
        match self.ix.entries.get(h) {
            Some(m) => self.void_in(g, h, &self.actor_of(m), &self.device_of(m)),
            None => false,
        }
    }

    /// The outcome that stands among `outs` (outcomes of one proposal).
    fn pick_standing(&self, outs: &[EntryId]) -> Option<Standing> {
        let frontier: Vec<EntryId> = outs
            .iter()
            .filter(|o| {
                !outs.iter().any(|p| {
                    p != *o
                        && self
                            .ix
                            .entries
                            .get(p)
                            .is_some_and(|pm| self.in_past(&pm.clock, o).is_some())
                })
            })
            .copied()
            .collect();
        let recorded = |h: &EntryId| match self.ix.entries.get(h).map(|m| &m.body) {
            Some(Body::Outcome {
                decision, counts, ..
            }) => Some((*decision, *counts)),
            _ => None,
        };
        // More stances counted wins; on a tie "not passed"; then the lower id.
        let (outcome, decision) = frontier
            .iter()
            .filter_map(|h| recorded(h).map(|(d, c)| (*h, d, c)))
            .max_by_key(|(h, d, c)| (c.total(), *d == Decision::NotPassed, std::cmp::Reverse(*h)))
            .map(|(h, d, _)| (h, d))?;
        let mut frontier = frontier;
        frontier.sort();
        Some(Standing {
            outcome,
            decision,
            frontier,
        })
    }

    /// The outcome of `proposal` that stands at `clock`, if it has been closed there.
    pub fn standing_at(
        &self,
        proposal: &EntryId,
        clock: &Clock,
        g: &Governance,
    ) -> Option<Standing> {
        let outs: Vec<EntryId> = self
            .ix
            .refs
            .get(proposal)?
            .iter()
            .filter(|h| {
                self.in_past(clock, h)
                    .is_some_and(|m| matches!(m.body, Body::Outcome { .. }))
                    && !self.is_void(g, h)
            })
            .copied()
            .collect();
        if outs.is_empty() {
            return None;
        }
        self.pick_standing(&outs)
    }
}

fn apply_effect(g: &mut Governance, effect: &Effect, at: EntryId) {
    match effect {
        Effect::Add {
            member,
            name,
            needs,
        } => {
            // A device linked to a member, or a keeper, cannot become a member of its own.
            if !g.active(member)
                && !g.linked.contains_key(member)
                && !g.keepers.contains_key(member)
            {
                g.members.insert(
                    *member,
                    Member {
                        id: *member,
                        name: name.clone(),
                        needs: needs.clone(),
                        status: Status::Active,
                    },
                );
                g.changed_by.insert(*member, at);
            }
        }
        Effect::Remove { member } => {
            if let Some(x) = g.members.get_mut(member)
                && x.status == Status::Active
            {
                x.status = Status::Removed;
                g.changed_by.insert(*member, at);
            }
        }
        Effect::Recover {
            member,
            device,
            name,
            ..
        } => {
            // Only for an active member and a device still nobody's (a link or an add made apart
            // may have taken it first in linear order): else it changes nothing, and the member's
            // devices go on.
            if g.active(member) && !g.device_known(device) {
                // Every device of the member is stopped by this close: later entries of them are
                // refused (D1), those concurrent with it void, exactly as after a device.revoke.
                for (d, stopped) in g.devices_of(member) {
                    if !stopped {
                        g.revoked.insert(d, at);
                    }
                }
                g.linked.insert(
                    *device,
                    Device {
                        member: *member,
                        name: name.clone(),
                        added_by: at,
                    },
                );
            }
        }
        Effect::Auditor { device, name } => {
            if !g.members.contains_key(device)
                && !g.linked.contains_key(device)
                && !g.keepers.contains_key(device)
            {
                g.auditors.insert(*device, name.clone());
            }
        }
        Effect::Keeper { device, name } => {
            // Only a device that is no one else's: a key belongs to one seat, for good. A stopped
            // keeper named again goes on.
            if !g.members.contains_key(device)
                && !g.linked.contains_key(device)
                && !g.auditors.contains_key(device)
                && !g.keeper_active(device)
            {
                g.keepers.insert(
                    *device,
                    Keeper {
                        name: name.clone(),
                        added_by: at,
                        removed_by: None,
                    },
                );
            }
        }
        Effect::KeeperRemove { device } => {
            if let Some(k) = g.keepers.get_mut(device)
                && k.removed_by.is_none()
            {
                k.removed_by = Some(at);
            }
        }
        Effect::Policy { rule, quorum } => g.policy = Some((*rule, *quorum)),
    }
}

/// The proposal that asks the group for `effect`, in plain words, in the group itself (its genesis
/// stands for the thread), under the group's rule and quorum. `name` is how members call whoever
/// the effect is about.
pub fn group_proposal(record: &Record, effect: Effect, name: &str) -> Option<Body> {
    let genesis = record.genesis()?;
    let (rule, quorum) = record.policy()?;
    let returning = effect
        .member()
        .is_some_and(|m| record.governance().members.contains_key(&m));
    let (title, easy_read) = match &effect {
        Effect::Add { .. } if returning => (
            format!("{name} comes back to the group"),
            format!("Should {name} come back to the group?"),
        ),
        Effect::Add { .. } => (
            format!("{name} joins the group"),
            format!("Should {name} join the group?"),
        ),
        Effect::Remove { .. } => (
            format!("{name} leaves the group"),
            format!(
                "Should {name} stop being a member? They would not take part any more. \
                 Two in three of the other members must agree, and only {name} may block it."
            ),
        ),
        Effect::Recover { .. } => (
            format!("{name} gets a new device"),
            format!(
                "Should {name}'s new device take {name}'s seat? Every device {name} had before \
                 would stop. Two in three of the other members must agree, and anyone may \
                 block it, {name} too from a device they still have."
            ),
        ),
        Effect::Auditor { .. } => (
            format!("{name} checks our record"),
            format!(
                "Should {name} be able to check our record? They could read everything except \
                 sealed threads, and could never write in it."
            ),
        ),
        Effect::Keeper { .. } => (
            format!("{name} keeps our record"),
            format!(
                "Should {name} keep a copy of our record? A keeper is an always-on computer that \
                 holds the group's record so members who are online at different times still get \
                 each other's news. It cannot write, and it cannot read sealed threads."
            ),
        ),
        Effect::KeeperRemove { .. } => (
            format!("{name} stops keeping our record"),
            format!(
                "Should {name} stop keeping our record? It would not get anything new from us."
            ),
        ),
        Effect::Policy { rule, quorum } => (
            "How the group decides".to_string(),
            format!(
                "Should the group decide by {}, with at least {quorum} {} giving a view?",
                match rule {
                    Rule::Consent => "consent (no one blocks)",
                    Rule::Majority => "majority (more agree than disagree)",
                },
                if *quorum == 1 { "member" } else { "members" }
            ),
        ),
    };
    Some(Body::Proposal {
        thread: genesis,
        title,
        text: String::new(),
        easy_read,
        rule,
        quorum,
        effect: Some(effect),
        closes: None,
    })
}

/// Test and example support: adds members the way a group does. For each newcomer, `founder`
/// proposes it, every member so far (the founder, then the newcomers before) agrees, and the
/// founder closes it. `write` writes one entry as a key, through whatever store the caller uses.
#[doc(hidden)]
pub fn add_members<E>(
    genesis: EntryId,
    group_quorum: u64,
    founder: &crate::identity::DeviceKey,
    newcomers: &[(&crate::identity::DeviceKey, &str, &str)],
    mut write: impl FnMut(&crate::identity::DeviceKey, Body) -> Result<EntryId, E>,
) -> Result<(), E> {
    let mut voters = vec![founder];
    for (key, name, needs) in newcomers {
        let n = voters.len() as u64;
        let proposal = write(
            founder,
            Body::Proposal {
                thread: genesis,
                title: format!("{name} joins the group"),
                text: String::new(),
                easy_read: format!("Should {name} join the group?"),
                rule: Rule::Consent,
                quorum: group_quorum.max(n),
                effect: Some(Effect::Add {
                    member: key.device_id(),
                    name: name.to_string(),
                    needs: needs.to_string(),
                }),
                closes: None,
            },
        )?;
        for v in &voters {
            write(
                v,
                Body::Stance {
                    proposal,
                    stance: StanceKind::Agree,
                    reason: String::new(),
                    on_behalf: None,
                },
            )?;
        }
        write(
            founder,
            Body::Outcome {
                proposal,
                outcome: format!("{name} joins"),
                decision: Decision::Passed,
                counts: Counts {
                    agree: n,
                    ..Counts::default()
                },
            },
        )?;
        voters.push(key);
    }
    Ok(())
}
