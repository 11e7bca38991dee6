//! The per-record validity rules: what an entry may say in its causal past (the thread exists, a
//! disagree gives a reason, only readers write in a sealed thread, ...). The governance rules (who is
//! in the group, quorum, which outcome stands) are in [`crate::governance`]; both are specified in
//! `docs/rules.md`, and each refusal is its own [`Invalid`] variant.
//!
//! **Invariant:** every rule reads only the entry and its causal past (`clock`), so its verdict is the
//! same on every device and for the auditor.

use std::collections::{BTreeMap, BTreeSet};

use crate::body::{Body, Effect, Rule};
use crate::governance::Governance;
use crate::id::{DeviceId, EntryId, MemberId};
use crate::invalid::Invalid;
use crate::record::{Clock, Epoch, Meta, Record, SealedState};

impl Record {
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
            _ => Err(Invalid::UnknownReferent {
                what: what.to_string(),
                id: *id,
            }),
        }
    }

    pub(crate) fn check_rules(
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
                Err(Invalid::EmptyText(what.to_string()))
            } else {
                Ok(())
            }
        };
        let is_thread = |b: &Body| matches!(b, Body::Thread { .. });
        // Restating or correcting a sealed message in the open would unseal it.
        let not_sealed = |target: &EntryId| match self.in_past(clock, target).map(|m| &m.body) {
            Some(Body::Sealed { .. }) => Err(Invalid::WouldUnseal),
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
                            return Err(Invalid::AlreadyMember);
                        }
                        if gov.auditors.contains_key(member) {
                            return Err(Invalid::MemberAndAuditor(
                                "that device is an auditor's: an auditor cannot also be a member"
                                    .into(),
                            ));
                        }
                        if ed25519_dalek::VerifyingKey::from_bytes(&member.0).is_err() {
                            return Err(Invalid::NotAKey("the member id".into()));
                        }
                    }
                    Some(Effect::Remove { member }) => {
                        if member == author {
                            return Err(Invalid::RemoveSelf);
                        }
                        if !active(member) {
                            return Err(Invalid::NotActive(
                                "the member this proposal would remove is not an active member"
                                    .into(),
                            ));
                        }
                    }
                    Some(Effect::Auditor { device, name }) => {
                        nonempty(name, "the auditor's name")?;
                        if members.contains_key(device) {
                            return Err(Invalid::MemberAndAuditor(
                                "a member's device cannot also be an auditor's".into(),
                            ));
                        }
                        if gov.auditors.contains_key(device) {
                            return Err(Invalid::AlreadyAuditor);
                        }
                        if ed25519_dalek::VerifyingKey::from_bytes(&device.0).is_err() {
                            return Err(Invalid::NotAKey("the auditor's id".into()));
                        }
                    }
                    Some(Effect::Policy { quorum: 0, .. }) => {
                        return Err(Invalid::ZeroQuorum);
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
                    return Err(Invalid::ReasonNeeded(stance.as_str().to_string()));
                }
                if self.standing_at(proposal, clock, gov).is_some() {
                    return Err(Invalid::AlreadyClosed);
                }
                if let Some(m) = on_behalf
                    && !active(m)
                {
                    return Err(Invalid::NotActive(
                        "a stance can only be recorded for an active member".into(),
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
                let t = self
                    .tally(proposal, clock)
                    .ok_or_else(|| Invalid::UnknownReferent {
                        what: "proposal".into(),
                        id: *proposal,
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
                            return Err(Invalid::BadConfirm("only the author of the original entry can confirm an understanding of it".into()));
                        }
                    }
                    Body::Stance {
                        on_behalf: Some(m), ..
                    } if m == author => {}
                    _ => {
                        return Err(Invalid::BadConfirm("only an understanding check, or a stance recorded for you, can be confirmed".into()));
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
                    return Err(Invalid::CorrectNotOwn);
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
                    return Err(Invalid::NotActive(
                        "the owner of an action must be an active member".into(),
                    ));
                }
                if let Some(d) = due
                    && !valid_date(d)
                {
                    return Err(Invalid::BadDate);
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
                    return Err(Invalid::BadEncryptionKey);
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
                    return Err(Invalid::StarterNotReader);
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
                if st.readers.contains(member) {
                    return Err(Invalid::AlreadyReader(
                        "that member is already a reader".into(),
                    ));
                }
                let ids: Vec<EntryId> = wraps.iter().map(|w| w.epoch).collect();
                let mut want: Vec<EntryId> = st.epochs.iter().map(|e| e.id).collect();
                want.sort();
                if ids != want {
                    return Err(Invalid::WrongWraps(
                        "a new reader must be given the key of every epoch of the thread".into(),
                    ));
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
                    return Err(Invalid::NotAReader);
                }
                if next.is_empty() {
                    return Err(Invalid::LastReader);
                }
                if st.epochs.len() >= crate::sealed::MAX_EPOCHS {
                    return Err(Invalid::TooManyEpochs);
                }
                if wraps.iter().map(|w| w.member).collect::<BTreeSet<_>>() != next {
                    return Err(Invalid::WrongWraps(
                        "a new key must be given to every remaining reader and to nobody else"
                            .into(),
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
                    return Err(Invalid::AlreadyReader(
                        "you are already a reader of this thread".into(),
                    ));
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
                    return Err(Invalid::NotAsked);
                }
            }
            Body::Sealed { thread, epoch, ct } => {
                let st = self.sealed_referent(clock, thread, gov)?;
                if !crate::sealed::valid_ct_len(ct.len()) {
                    return Err(Invalid::BadPadding);
                }
                Self::must_read(&st, author, "write in it")?;
                let e = st
                    .epochs
                    .iter()
                    .find(|e| e.id == *epoch)
                    .ok_or(Invalid::UnknownEpoch)?;
                if !e.wraps.contains_key(author) {
                    return Err(Invalid::NoEpochKey);
                }
                if e.wraps.keys().any(|m| !st.readers.contains(m)) {
                    return Err(Invalid::StaleEpoch);
                }
            }
        }
        Ok(())
    }

    fn must_read(st: &SealedState, author: &DeviceId, what: &str) -> Result<(), Invalid> {
        if st.readers.contains(author) {
            Ok(())
        } else {
            Err(Invalid::ReaderOnly(what.to_string()))
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
            return Err(Invalid::NotActive(format!(
                "a reader must be an active member ({member} is not)"
            )));
        }
        match self.profile_key_at(clock, member) {
            Some(k) if k == *key => Ok(()),
            Some(_) => Err(Invalid::WrongKey(*member)),
            None => Err(Invalid::KeyNotPublished(*member)),
        }
    }

    /// Plain messages, proposals and actions may not go into a sealed thread.
    fn open_thread(&self, clock: &Clock, thread: &EntryId) -> Result<(), Invalid> {
        match self.in_past(clock, thread).map(|m| &m.body) {
            Some(Body::SealedThread { .. }) => Err(Invalid::SealedThreadOnly),
            _ => Ok(()),
        }
    }

    fn sealed_referent(
        &self,
        clock: &Clock,
        thread: &EntryId,
        gov: &Governance,
    ) -> Result<SealedState, Invalid> {
        self.sealed_state_at(clock, thread, gov)
            .ok_or_else(|| Invalid::UnknownReferent {
                what: "sealed thread".into(),
                id: *thread,
            })
    }

    /// The latest encryption key a member published in the past `clock`.
    pub(crate) fn profile_key_at(&self, clock: &Clock, member: &MemberId) -> Option<[u8; 32]> {
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
    pub(crate) fn sealed_state_at(
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
                    if let Some(r) = removes
                        && !void
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
}

pub(crate) fn describe(d: &crate::body::Decision, c: &crate::body::Counts) -> String {
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
