//! The recount: how a proposal stands from the stances in a causal past. An outcome entry carries
//! the counts and decision its author computed; every device recounts them here, and the rules
//! reject an outcome that does not match (`outcome_mismatch`). Specified in `docs/rules.md`.
//!
//! **Invariant (decisions are recounted, never trusted):** the count at a point reads only that
//! point's causal past: each member active there counts with their latest stance (by op counter,
//! then id), and a stance typed for a member counts once that member confirms it. The views needed
//! are fixed by the members active when the proposal was made ([`views_needed`]); a removal also
//! needs two thirds of the others to agree, and only the member removed may block it.

use std::collections::BTreeMap;

use crate::body::{Body, Counts, Decision, Effect, Rule, StanceKind};
use crate::id::{EntryId, MemberId};
use crate::record::{Clock, Record, Status};

/// How a proposal stands when counted at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Each counted member's latest stance, by kind.
    pub counts: Counts,
    /// What closing here would decide (the removal rule included).
    pub decision: Decision,
    /// The rule it is decided by (the proposal's own, never weaker than the group's).
    pub rule: Rule,
    /// Active members when it was proposed.
    pub members: u64,
    /// Views needed before it can be closed: the largest of the proposal's quorum, the group's
    /// quorum and a majority of `members`, but never more than `members`.
    pub needed: u64,
    /// Views counted.
    pub given: u64,
    /// Each counted member's view (what the counts are made of).
    pub views: BTreeMap<MemberId, CountedView>,
    /// Views typed for a member by someone else that the member has not confirmed: they do not
    /// count until the member says yes. The latest per member, when later than their counted view.
    pub unconfirmed: Vec<Unconfirmed>,
    /// Members active at this point with no counted view: those the group is waiting for.
    pub waiting: Vec<MemberId>,
}

/// One member's view as counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedView {
    /// What they said.
    pub stance: StanceKind,
    /// The stance entry.
    pub entry: EntryId,
    /// Who typed it, when a supporter did and the member confirmed it.
    pub typed_by: Option<MemberId>,
}

/// A view typed for someone that waits for their yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfirmed {
    /// The member it is for.
    pub member: MemberId,
    /// Who typed it.
    pub typed_by: MemberId,
    /// What it says.
    pub stance: StanceKind,
    /// The stance entry (the member confirms this one).
    pub entry: EntryId,
}

impl Tally {
    /// Whether enough members have given a view for the proposal to be closed.
    pub fn quorate(&self) -> bool {
        self.given >= self.needed
    }
}

impl Record {
    /// Counts a proposal from the stances in the past `clock`: each active member's latest stance
    /// counts; a stance typed for someone counts once they confirmed it.
    pub fn tally(&self, proposal: &EntryId, clock: &Clock) -> Option<Tally> {
        let pm = self.ix.entries.get(proposal)?;
        let Body::Proposal {
            rule,
            quorum,
            effect,
            ..
        } = &pm.body
        else {
            return None;
        };
        let at_proposal = self.governance_at(&pm.clock);
        let members = at_proposal.active_count();
        let group_quorum = at_proposal.policy.map(|(_, q)| q).unwrap_or(0);
        let needed = views_needed(*quorum, group_quorum, members);
        let g = self.governance_at(clock);
        let mut latest: BTreeMap<MemberId, ((u64, EntryId), StanceKind)> = BTreeMap::new();
        let mut typed: BTreeMap<MemberId, MemberId> = BTreeMap::new();
        let mut asked: BTreeMap<MemberId, ((u64, EntryId), Unconfirmed)> = BTreeMap::new();
        for h in self.ix.refs.get(proposal).into_iter().flatten() {
            let Some(m) = self.in_past(clock, h) else {
                continue;
            };
            let Body::Stance {
                stance, on_behalf, ..
            } = &m.body
            else {
                continue;
            };
            // Written on a device its member stopped, concurrently with the stop, or on a device
            // whose link is not in force: void.
            let device = self.device_of(m);
            if let Some(by) = g.revoked.get(&device)
                && self.concurrent(h, by)
            {
                continue;
            }
            if device != self.actor_of(m) && g.member_of(&device) != Some(self.actor_of(m)) {
                continue;
            }
            let key = (m.max_op, *h);
            let voter = match on_behalf {
                None => self.actor_of(m),
                Some(v) => {
                    if !self.confirmed_by(h, v, clock) {
                        if asked.get(v).is_none_or(|(k, _)| *k < key) {
                            let u = Unconfirmed {
                                member: *v,
                                typed_by: self.actor_of(m),
                                stance: *stance,
                                entry: *h,
                            };
                            asked.insert(*v, (key, u));
                        }
                        continue;
                    }
                    *v
                }
            };
            if latest.get(&voter).is_none_or(|(k, _)| *k < key) {
                latest.insert(voter, (key, *stance));
                match on_behalf {
                    Some(_) => typed.insert(voter, self.actor_of(m)),
                    None => typed.remove(&voter),
                };
            }
        }
        latest.retain(|voter, _| g.active(voter));
        let mut counts = Counts::default();
        for (_, s) in latest.values() {
            counts.add(*s);
        }
        let given = counts.total();
        let mut decision = counts.decide(*rule, needed);
        if let Some(Effect::Remove { member }) = effect {
            // Two thirds of the others agree, and only the person removed may block.
            let others: Vec<&MemberId> = at_proposal
                .members
                .values()
                .filter(|m| m.status == Status::Active && m.id != *member)
                .map(|m| &m.id)
                .collect();
            let agree = others
                .iter()
                .filter(|o| matches!(latest.get(**o), Some((_, StanceKind::Agree))))
                .count() as u64;
            let blocks = latest
                .iter()
                .filter(|(v, (_, s))| *v != member && *s == StanceKind::Block)
                .count();
            let mut c = counts;
            if matches!(latest.get(member), Some((_, StanceKind::Block))) && *rule == Rule::Consent
            {
                c.block -= 1;
                c.disagree += 1;
            }
            let base = c.decide(*rule, needed) == Decision::Passed;
            let pass = base && blocks == 0 && agree * 3 >= 2 * others.len() as u64;
            decision = if pass {
                Decision::Passed
            } else {
                Decision::NotPassed
            };
        }
        if let Some(Effect::Recover { member, .. }) = effect {
            // Two thirds of the others agree, and nobody blocks: the member recovered least of
            // all (a block from a device they still hold stops a hijack of their seat).
            let others = at_proposal
                .members
                .values()
                .filter(|m| m.status == Status::Active && m.id != *member)
                .count() as u64;
            let agree = latest
                .iter()
                .filter(|(v, (_, s))| *v != member && *s == StanceKind::Agree)
                .filter(|(v, _)| at_proposal.active(v))
                .count() as u64;
            let pass = decision == Decision::Passed && counts.block == 0 && agree * 3 >= 2 * others;
            decision = if pass {
                Decision::Passed
            } else {
                Decision::NotPassed
            };
        }
        let unconfirmed = asked
            .into_iter()
            .filter(|(v, (k, _))| g.active(v) && latest.get(v).is_none_or(|(lk, _)| lk < k))
            .map(|(_, (_, u))| u)
            .collect();
        let waiting = g
            .members
            .values()
            .filter(|m| m.status == Status::Active && !latest.contains_key(&m.id))
            .map(|m| m.id)
            .collect();
        let views = latest
            .iter()
            .map(|(v, ((_, entry), stance))| {
                let cv = CountedView {
                    stance: *stance,
                    entry: *entry,
                    typed_by: typed.get(v).copied(),
                };
                (*v, cv)
            })
            .collect();
        Some(Tally {
            counts,
            decision,
            rule: *rule,
            members,
            needed,
            given,
            views,
            unconfirmed,
            waiting,
        })
    }

    fn confirmed_by(&self, target: &EntryId, who: &MemberId, clock: &Clock) -> bool {
        self.ix.refs.get(target).into_iter().flatten().any(|c| {
            self.in_past(clock, c)
                .is_some_and(|m| matches!(m.body, Body::Confirm { .. }) && self.actor_of(m) == *who)
        })
    }

    /// Recounts a proposal from the stances in the past `clock` (see [`Record::tally`]).
    pub fn recount(&self, proposal: &EntryId, clock: &Clock) -> (Counts, Decision) {
        self.tally(proposal, clock)
            .map(|t| (t.counts, t.decision))
            .unwrap_or((Counts::default(), Decision::NotPassed))
    }

    /// The recount of a proposal at a valid entry's causal point (for an outcome: what it should say).
    /// [`Record::tally`] in the causal past of entry `at` (an outcome, say), `at` excluded.
    pub fn tally_at(&self, proposal: &EntryId, at: &EntryId) -> Option<Tally> {
        let m = self.ix.entries.get(at)?;
        self.tally(proposal, &m.clock)
    }

    /// Recounts a proposal in the causal past of entry `at`.
    pub fn recount_at(&self, proposal: &EntryId, at: &EntryId) -> Option<(Counts, Decision)> {
        let m = self.ix.entries.get(at)?;
        Some(self.recount(proposal, &m.clock))
    }

    /// Recount of a proposal at the heads (what closing it now would record).
    pub fn recount_now(&self, proposal: &EntryId) -> (Counts, Decision) {
        self.recount(proposal, &self.clock_of(&self.heads()))
    }

    /// How a proposal stands if counted now: counts, decision, views given and needed.
    pub fn tally_now(&self, proposal: &EntryId) -> Option<Tally> {
        self.tally(proposal, &self.clock_of(&self.heads()))
    }
}

/// Views a proposal needs before it can be closed: the largest of its own quorum, the group's quorum
/// and a majority of the `members` active when it was proposed, but never more than `members`.
pub fn views_needed(proposal_quorum: u64, group_quorum: u64, members: u64) -> u64 {
    proposal_quorum
        .max(group_quorum)
        .max(members / 2 + 1)
        .min(members)
}
