//! The per-record validity rules: what an entry may say in its causal past (the thread exists, a
//! disagree gives a reason, only readers write in a sealed thread, ...). The governance rules (who is
//! in the group, which outcome stands) are in [`crate::governance`] and the recount and quorum in
//! [`crate::recount`]; all are specified in `docs/rules.md`, and each refusal is its own [`Invalid`]
//! variant. Also here: a sealed thread's readers and epochs at a point ([`SealedState`]), which its
//! rules read.
//!
//! **Invariant:** every rule reads only the entry and its causal past (`clock`), so its verdict is the
//! same on every device and for the auditor.

use std::collections::{BTreeMap, BTreeSet};

use crate::body::{Body, Counts, Decision, Effect, Rule, StanceKind};
use crate::governance::Governance;
use crate::id::{DeviceId, EntryId, MemberId};
use crate::invalid::Invalid;
use crate::record::{Clock, Meta, Record};
use crate::sealed::{EpochWrap, Wrap};

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
    /// Whose agreement a new reader needs: the readers, and every active member who was one (who
    /// holds some epoch's key). A reader taken out is still asked before the words written while
    /// they read go to someone new.
    pub asked: BTreeSet<MemberId>,
    /// Members who are not readers and whom some of `asked` have agreed to let in: for each, those
    /// whose latest word was yes (a `thread.reader.agree`, not followed by their `thread.decline`).
    /// Cleared when the member is let in or taken out.
    pub agreed: BTreeMap<MemberId, BTreeSet<MemberId>>,
}

impl SealedState {
    /// Those asked (other than `member` themselves) who have not agreed yet to let `member` in.
    pub fn still_to_agree(&self, member: &MemberId) -> Vec<MemberId> {
        let yes = self.agreed.get(member);
        self.asked
            .iter()
            .filter(|r| *r != member && !yes.is_some_and(|y| y.contains(*r)))
            .copied()
            .collect()
    }

    /// [`SealedState::still_to_agree`] but for `by`, who would let `member` in.
    pub fn waiting_for(&self, member: &MemberId, by: &MemberId) -> Vec<MemberId> {
        let mut w = self.still_to_agree(member);
        w.retain(|r| r != by);
        w
    }
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
        author: &MemberId,
        device: &DeviceId,
        time_ms: i64,
        clock: &Clock,
        gov: &Governance,
    ) -> Result<(), Invalid> {
        let p = &Point {
            r: self,
            author,
            device,
            time_ms,
            clock,
            gov,
        };
        match body {
            // Only a group's first entry is its genesis (checked in `Record::judge`).
            Body::Genesis { .. } => Err(Invalid::Shape(
                "only the first entry may start a group".into(),
            )),
            // Membership and auditors change only by the group's decisions (`governance`).
            Body::MemberAdd { .. } => Err(Invalid::AddWithoutDecision),
            Body::MemberRemove { .. } => Err(Invalid::RemovalWithoutDecision(
                "a removal takes effect when the group passes the proposal to remove them; no other entry can remove a member".into(),
            )),
            Body::AuditorAdd { .. } => Err(Invalid::AuditorWithoutDecision),
            // A member may always leave.
            Body::MemberLeave => Ok(()),
            Body::About { name, .. } => validate_about(name),
            Body::Thread { title } => validate_thread(title),
            Body::Message { thread, text } => validate_message(p, thread, text),
            Body::Proposal {
                thread,
                title,
                easy_read,
                rule,
                quorum,
                effect,
                closes,
                ..
            } => validate_proposal(p, thread, title, easy_read, rule, quorum, effect, closes),
            Body::Stance {
                proposal,
                stance,
                reason,
                on_behalf,
            } => validate_stance(p, proposal, stance, reason, on_behalf),
            Body::Outcome {
                proposal,
                decision,
                counts,
                ..
            } => validate_outcome(p, proposal, decision, counts),
            Body::Understand { target, text } => validate_understand(p, target, text),
            Body::Confirm { target } => validate_confirm(p, target),
            Body::Correct { target, text } => validate_correct(p, target, text),
            Body::Action {
                thread,
                text,
                owner,
                due,
            } => validate_action(p, thread, text, owner, due),
            Body::ActionDone { action } => validate_action_done(p, action),
            Body::ActionUndo { done } => validate_action_undo(p, done),
            Body::Profile { enc_key } => validate_profile(enc_key),
            Body::SealedThread {
                title,
                reason,
                wraps,
                ..
            } => validate_sealed_thread(p, title, reason, wraps),
            Body::ReaderAdd {
                thread,
                member,
                wraps,
            } => validate_reader_add(p, thread, member, wraps),
            Body::Rekey {
                thread,
                removes,
                wraps,
                ..
            } => validate_rekey(p, thread, removes, wraps),
            Body::ReaderAgree { thread, member } => validate_reader_agree(p, thread, member),
            Body::Ask { thread, why } => validate_ask(p, thread, why),
            Body::Decline {
                thread,
                member,
                reason,
            } => validate_decline(p, thread, member, reason),
            Body::Sealed { thread, epoch, ct } => validate_sealed(p, thread, epoch, ct),
            Body::DeviceAdd {
                device,
                name,
                proof,
            } => validate_device_add(p, device, name, proof),
            Body::DeviceRevoke { device } => validate_device_revoke(p, device),
        }
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
        let mut agreed: BTreeMap<MemberId, BTreeSet<MemberId>> = BTreeMap::new();
        for (m, h) in events {
            let void = self.is_void(gov, &h);
            match &m.body {
                _ if void && !matches!(m.body, Body::Rekey { .. }) => {}
                Body::ReaderAgree { member, .. } => {
                    agreed.entry(*member).or_default().insert(self.actor_of(m));
                }
                Body::Decline { member, .. } => {
                    if let Some(y) = agreed.get_mut(member) {
                        y.remove(&self.actor_of(m));
                    }
                }
                Body::ReaderAdd { member, wraps, .. } => {
                    agreed.remove(member);
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
                        agreed.remove(r);
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
        let asked: BTreeSet<MemberId> = epochs
            .iter()
            .flat_map(|e| e.wraps.keys())
            .chain(readers.iter())
            .filter(|r| gov.active(r))
            .copied()
            .collect();
        agreed.retain(|m, y| {
            y.retain(|r| asked.contains(r));
            !readers.contains(m) && !y.is_empty()
        });
        Some(SealedState {
            readers,
            epochs,
            asked,
            agreed,
        })
    }
}

/// An entry's author and causal past: what every rule reads.
pub(crate) struct Point<'a> {
    pub(crate) r: &'a Record,
    /// The member the entry is by (its device's member).
    pub(crate) author: &'a MemberId,
    /// The device that wrote it.
    pub(crate) device: &'a DeviceId,
    /// The time the entry judged claims (its change's timestamp), ms since the epoch.
    pub(crate) time_ms: i64,
    pub(crate) clock: &'a Clock,
    pub(crate) gov: &'a Governance,
}

fn nonempty(s: &str, what: &str) -> Result<(), Invalid> {
    if s.trim().is_empty() {
        Err(Invalid::EmptyText(what.to_string()))
    } else {
        Ok(())
    }
}

fn is_thread(b: &Body) -> bool {
    matches!(b, Body::Thread { .. })
}

fn is_proposal(b: &Body) -> bool {
    matches!(b, Body::Proposal { .. })
}

/// Restating or correcting a sealed message in the open would unseal it.
fn not_sealed(p: &Point, target: &EntryId) -> Result<(), Invalid> {
    match p.r.in_past(p.clock, target).map(|m| &m.body) {
        Some(Body::Sealed { .. }) => Err(Invalid::WouldUnseal),
        _ => Ok(()),
    }
}

fn must_read(st: &SealedState, author: &DeviceId, what: &str) -> Result<(), Invalid> {
    Record::must_read(st, author, what)
}

/// A reader, or a former reader still in the group: those asked before someone new reads.
fn must_be_asked(st: &SealedState, author: &DeviceId, what: &str) -> Result<(), Invalid> {
    if st.asked.contains(author) {
        Ok(())
    } else {
        Err(Invalid::ReaderOnly(what.to_string()))
    }
}

/// A member's own words about themselves have a name. (Only its author can write it: it is about
/// whoever signs it, so nobody can change another member's name or needs.)
pub(crate) fn validate_about(name: &str) -> Result<(), Invalid> {
    nonempty(name, "your name")?;
    Ok(())
}

/// A thread has a title.
pub(crate) fn validate_thread(title: &str) -> Result<(), Invalid> {
    nonempty(title, "the title")?;
    Ok(())
}

/// A message has words and goes in an open thread that exists.
pub(crate) fn validate_message(p: &Point, thread: &EntryId, text: &str) -> Result<(), Invalid> {
    nonempty(text, "the message")?;
    p.r.open_thread(p.clock, thread)?;
    p.r.referent(p.clock, thread, "thread", is_thread)?;

    Ok(())
}

/// A proposal has a title and an easy-read version, a closing day (if any) that is a date, sits in
/// an open thread (or, with an effect, in the group itself), asks no less than the group's policy,
/// and its effect makes sense now.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the record, like every validate_* function"
)]
pub(crate) fn validate_proposal(
    p: &Point,
    thread: &EntryId,
    title: &str,
    easy_read: &str,
    rule: &Rule,
    quorum: &u64,
    effect: &Option<Effect>,
    closes: &Option<String>,
) -> Result<(), Invalid> {
    nonempty(title, "the title")?;
    nonempty(easy_read, "the easy-read version")?;
    if let Some(d) = closes
        && !valid_date(d)
    {
        return Err(Invalid::BadDate);
    }
    // A proposal about the group itself may sit in the group (its genesis) rather than a thread.
    if !(effect.is_some() && Some(*thread) == p.r.ix.genesis) {
        p.r.open_thread(p.clock, thread)?;
        p.r.referent(p.clock, thread, "thread", is_thread)?;
    }
    let (group_rule, group_quorum) = p.gov.policy.unwrap_or((Rule::Consent, 0));
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
            if p.gov.active(member) {
                return Err(Invalid::AlreadyMember);
            }
            if p.gov.auditors.contains_key(member) {
                return Err(Invalid::MemberAndAuditor(
                    "that device is an auditor's: an auditor cannot also be a member".into(),
                ));
            }
            if p.gov.linked.contains_key(member) {
                return Err(Invalid::DeviceTaken(
                    "it is a member's own device; a device can be one member's only".into(),
                ));
            }
            if p.gov.keepers.contains_key(member) {
                return Err(Invalid::DeviceTaken(
                    "it is a keeper's device; a keeper can never be a member".into(),
                ));
            }
            if ed25519_dalek::VerifyingKey::from_bytes(&member.0).is_err() {
                return Err(Invalid::NotAKey("the member id".into()));
            }
        }
        Some(Effect::Remove { member }) => {
            if member == p.author {
                return Err(Invalid::RemoveSelf);
            }
            if !p.gov.active(member) {
                return Err(Invalid::NotActive(
                    "the member this proposal would remove is not an active member".into(),
                ));
            }
        }
        Some(Effect::Auditor { device, name }) => {
            nonempty(name, "the auditor's name")?;
            if p.gov.members.contains_key(device) {
                return Err(Invalid::MemberAndAuditor(
                    "a member's device cannot also be an auditor's".into(),
                ));
            }
            if p.gov.linked.contains_key(device) || p.gov.keepers.contains_key(device) {
                return Err(Invalid::DeviceTaken(
                    "it is a member's own device or a keeper's; a device can be one seat's only"
                        .into(),
                ));
            }
            if p.gov.auditors.contains_key(device) {
                return Err(Invalid::AlreadyAuditor);
            }
            if ed25519_dalek::VerifyingKey::from_bytes(&device.0).is_err() {
                return Err(Invalid::NotAKey("the auditor's id".into()));
            }
        }
        Some(Effect::Recover {
            member,
            device,
            name,
            proof,
        }) => {
            // rules.md D5: the new device is nobody's yet and signed the link to `member` itself.
            nonempty(name, "the device's name")?;
            if !p.gov.active(member) {
                return Err(Invalid::NotActive(
                    "the member this proposal would recover is not an active member".into(),
                ));
            }
            if p.gov.members.contains_key(device)
                || p.gov.linked.contains_key(device)
                || p.gov.keepers.contains_key(device)
            {
                return Err(Invalid::DeviceTaken(
                    "it is a member's id, a device already linked or a keeper's; a device can be one seat's only".into(),
                ));
            }
            if p.gov.auditors.contains_key(device) {
                return Err(Invalid::MemberAndAuditor(
                    "that device is an auditor's: an auditor cannot also be a member's device"
                        .into(),
                ));
            }
            if ed25519_dalek::VerifyingKey::from_bytes(&device.0).is_err() {
                return Err(Invalid::NotAKey("the new device's id".into()));
            }
            // The same message and check as a `device.add`'s proof, for the member recovered.
            let msg = crate::entry::device_link_message(&p.r.group(), member, device);
            crate::signature::verify(&device.0, &msg, proof)
                .map_err(|_| Invalid::BadDeviceProof)?;
        }
        Some(Effect::Keeper { device, name }) => {
            // A keeper's key is nobody else's, and the group names it once at a time.
            nonempty(name, "the keeper's name")?;
            if p.gov.members.contains_key(device)
                || p.gov.linked.contains_key(device)
                || p.gov.auditors.contains_key(device)
            {
                return Err(Invalid::DeviceTaken(
                    "it is a member's id, a member's device or an auditor's; a keeper's device can be no one else's".into(),
                ));
            }
            if p.gov.keeper_active(device) {
                return Err(Invalid::AlreadyKeeper);
            }
            if ed25519_dalek::VerifyingKey::from_bytes(&device.0).is_err() {
                return Err(Invalid::NotAKey("the keeper's id".into()));
            }
        }
        Some(Effect::KeeperRemove { device }) if !p.gov.keeper_active(device) => {
            return Err(Invalid::NotAKeeper);
        }
        Some(Effect::KeeperRemove { .. }) => {}
        Some(Effect::Policy { quorum: 0, .. }) => {
            return Err(Invalid::ZeroQuorum);
        }
        Some(Effect::Policy { .. }) => {}
    }

    Ok(())
}

/// A stance is on an open proposal, gives a reason to disagree or block, and is typed only for an
/// active member.
pub(crate) fn validate_stance(
    p: &Point,
    proposal: &EntryId,
    stance: &StanceKind,
    reason: &str,
    on_behalf: &Option<MemberId>,
) -> Result<(), Invalid> {
    p.r.referent(p.clock, proposal, "proposal", is_proposal)?;
    if stance.needs_reason() && reason.trim().is_empty() {
        return Err(Invalid::ReasonNeeded(stance.as_str().to_string()));
    }
    if p.r.standing_at(proposal, p.clock, p.gov).is_some() {
        return Err(Invalid::AlreadyClosed);
    }
    if let Some(m) = on_behalf
        && !p.gov.active(m)
    {
        return Err(Invalid::NotActive(
            "a stance can only be recorded for an active member".into(),
        ));
    }

    Ok(())
}

/// A close recounts the stances in its past exactly, once enough views are in; it is the first,
/// or it settles closes that conflict.
pub(crate) fn validate_outcome(
    p: &Point,
    proposal: &EntryId,
    decision: &Decision,
    counts: &Counts,
) -> Result<(), Invalid> {
    p.r.referent(p.clock, proposal, "proposal", is_proposal)?;
    // A close is refused once one stands, unless closes made apart conflict: a close
    // that sees them all settles it.
    if p.r
        .standing_at(proposal, p.clock, p.gov)
        .is_some_and(|s| !s.conflict())
    {
        return Err(Invalid::AlreadyClosed);
    }
    let t =
        p.r.tally(proposal, p.clock)
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

    Ok(())
}

/// "I understood this as ..." restates an entry that exists and is not sealed.
pub(crate) fn validate_understand(p: &Point, target: &EntryId, text: &str) -> Result<(), Invalid> {
    nonempty(text, "the restatement")?;
    not_sealed(p, target)?;
    p.r.referent(p.clock, target, "entry", |_| true)?;

    Ok(())
}

/// Only the author of the understood entry confirms an understanding of it; only the member a
/// stance was typed for confirms that stance.
pub(crate) fn validate_confirm(p: &Point, target: &EntryId) -> Result<(), Invalid> {
    let t = p.r.referent(p.clock, target, "entry", |_| true)?;
    match &t.body {
        Body::Understand { target: orig, .. } => {
            let o = p.r.referent(p.clock, orig, "entry", |_| true)?;
            if p.r.actor_of(o) != *p.author {
                return Err(Invalid::BadConfirm(
                    "only the author of the original entry can confirm an understanding of it"
                        .into(),
                ));
            }
        }
        Body::Stance {
            on_behalf: Some(m), ..
        } if m == p.author => {}
        _ => {
            return Err(Invalid::BadConfirm(
                "only an understanding check, or a stance recorded for you, can be confirmed"
                    .into(),
            ));
        }
    }

    Ok(())
}

/// A member corrects their own entries, or an understanding of them, never a sealed message.
pub(crate) fn validate_correct(p: &Point, target: &EntryId, text: &str) -> Result<(), Invalid> {
    nonempty(text, "the correction")?;
    not_sealed(p, target)?;
    let t = p.r.referent(p.clock, target, "entry", |_| true)?;
    let own = p.r.actor_of(t) == *p.author;
    let of_own = match &t.body {
        Body::Understand { target: orig, .. } => {
            p.r.in_past(p.clock, orig)
                .is_some_and(|o| p.r.actor_of(o) == *p.author)
        }
        _ => false,
    };
    if !own && !of_own {
        return Err(Invalid::CorrectNotOwn);
    }

    Ok(())
}

/// An action has words, an active owner and a well-formed due date, in an open thread.
pub(crate) fn validate_action(
    p: &Point,
    thread: &EntryId,
    text: &str,
    owner: &MemberId,
    due: &Option<String>,
) -> Result<(), Invalid> {
    nonempty(text, "the action")?;
    p.r.open_thread(p.clock, thread)?;
    p.r.referent(p.clock, thread, "thread", is_thread)?;
    if !p.gov.active(owner) {
        return Err(Invalid::NotActive(
            "the owner of an action must be an active member".into(),
        ));
    }
    if let Some(d) = due
        && !valid_date(d)
    {
        return Err(Invalid::BadDate);
    }

    Ok(())
}

/// Only an action that exists can be marked done.
pub(crate) fn validate_action_done(p: &Point, action: &EntryId) -> Result<(), Invalid> {
    p.r.referent(p.clock, action, "action", |b| {
        matches!(b, Body::Action { .. })
    })?;

    Ok(())
}

/// How long after an `action.done` its author may take it back, in ms (by the entries' own times).
pub const UNDO_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Only an `action.done` in the past can be taken back, by its own author, within a day of it.
pub(crate) fn validate_action_undo(p: &Point, done: &EntryId) -> Result<(), Invalid> {
    let d = p.r.referent(p.clock, done, "action.done", |b| {
        matches!(b, Body::ActionDone { .. })
    })?;
    if p.r.actor_of(d) != *p.author {
        return Err(Invalid::UndoNotOwn);
    }
    if p.time_ms.saturating_sub(d.time_ms) > UNDO_WINDOW_MS {
        return Err(Invalid::UndoTooLate);
    }

    Ok(())
}

/// A published encryption key is not all zeros.
pub(crate) fn validate_profile(enc_key: &[u8; 32]) -> Result<(), Invalid> {
    if enc_key == &[0u8; 32] {
        return Err(Invalid::BadEncryptionKey);
    }

    Ok(())
}

/// A sealed thread has a title and a reason everyone sees, and its starter is one of its readers,
/// each wrapped to the key they published.
pub(crate) fn validate_sealed_thread(
    p: &Point,
    title: &str,
    reason: &str,
    wraps: &[Wrap],
) -> Result<(), Invalid> {
    nonempty(title, "the title")?;
    nonempty(reason, "the reason it is sealed")?;
    if !wraps.iter().any(|w| w.member == *p.author) {
        return Err(Invalid::StarterNotReader);
    }
    for w in wraps {
        p.r.check_reader_key(p.clock, &|m: &MemberId| p.gov.active(m), &w.member, &w.key)?;
    }

    Ok(())
}

/// A reader adds an active member who is not a reader yet, with every epoch's key.
pub(crate) fn validate_reader_add(
    p: &Point,
    thread: &EntryId,
    member: &MemberId,
    wraps: &[EpochWrap],
) -> Result<(), Invalid> {
    let st = p.r.sealed_referent(p.clock, thread, p.gov)?;
    must_read(&st, p.author, "add a reader")?;
    let ids: Vec<EntryId> = wraps.iter().map(|w| w.epoch).collect();
    if st.readers.contains(member) {
        // A reader who lacks keys (added at the same moment as a new key was made) is given
        // exactly the keys they lack, by any reader: format.md section 10.
        let lacking: BTreeSet<EntryId> = st
            .epochs
            .iter()
            .filter(|e| !e.wraps.contains_key(member))
            .map(|e| e.id)
            .collect();
        if lacking.is_empty() {
            return Err(Invalid::AlreadyReader(
                "that member is already a reader".into(),
            ));
        }
        if ids.is_empty() || !ids.iter().all(|i| lacking.contains(i)) {
            return Err(Invalid::WrongWraps(
                "a reader may be given only keys of the thread they do not hold yet".into(),
            ));
        }
    } else {
        if st.readers.len() >= crate::sealed::MAX_READERS {
            return Err(Invalid::TooManyReaders(crate::sealed::MAX_READERS));
        }
        let waiting = st.waiting_for(member, p.author);
        if !waiting.is_empty() {
            return Err(Invalid::NotAgreed(waiting));
        }
        let mut want: Vec<EntryId> = st.epochs.iter().map(|e| e.id).collect();
        want.sort();
        if ids != want {
            return Err(Invalid::WrongWraps(
                "a new reader must be given the key of every epoch of the thread".into(),
            ));
        }
    }
    for w in wraps {
        p.r.check_reader_key(p.clock, &|m: &MemberId| p.gov.active(m), member, &w.key)?;
    }

    Ok(())
}

/// A reader agrees that an active member who is not a reader may read the thread.
pub(crate) fn validate_reader_agree(
    p: &Point,
    thread: &EntryId,
    member: &MemberId,
) -> Result<(), Invalid> {
    let st = p.r.sealed_referent(p.clock, thread, p.gov)?;
    must_be_asked(&st, p.author, "agree to let someone read")?;
    if st.readers.contains(member) {
        return Err(Invalid::AlreadyReader(
            "that member is already a reader".into(),
        ));
    }
    if !p.gov.active(member) {
        return Err(Invalid::NotActive(format!(
            "a reader must be an active member ({member} is not)"
        )));
    }

    Ok(())
}

/// A reader starts a new epoch for exactly the remaining readers, keeping at least one.
pub(crate) fn validate_rekey(
    p: &Point,
    thread: &EntryId,
    removes: &Option<MemberId>,
    wraps: &[Wrap],
) -> Result<(), Invalid> {
    let st = p.r.sealed_referent(p.clock, thread, p.gov)?;
    must_read(&st, p.author, "change its key")?;
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
            "a new key must be given to every remaining reader and to nobody else".into(),
        ));
    }
    for w in wraps {
        p.r.check_reader_key(p.clock, &|m: &MemberId| p.gov.active(m), &w.member, &w.key)?;
    }

    Ok(())
}

/// A member who is not a reader asks to read, saying why.
pub(crate) fn validate_ask(p: &Point, thread: &EntryId, why: &str) -> Result<(), Invalid> {
    let st = p.r.sealed_referent(p.clock, thread, p.gov)?;
    nonempty(why, "the reason for asking")?;
    if st.readers.contains(p.author) {
        return Err(Invalid::AlreadyReader(
            "you are already a reader of this thread".into(),
        ));
    }

    Ok(())
}

/// A reader, or a former reader still in the group, says no to letting a member read (their
/// request, or another's agreement), with a reason everyone sees.
pub(crate) fn validate_decline(
    p: &Point,
    thread: &EntryId,
    member: &MemberId,
    reason: &str,
) -> Result<(), Invalid> {
    let st = p.r.sealed_referent(p.clock, thread, p.gov)?;
    must_be_asked(&st, p.author, "answer a request")?;
    nonempty(reason, "the reason")?;
    let asked =
        p.r.ix
            .thread_events
            .get(thread)
            .into_iter()
            .flatten()
            .any(|h| {
                p.r.in_past(p.clock, h).is_some_and(|m| match &m.body {
                    Body::Ask { .. } => p.r.actor_of(m) == *member,
                    Body::ReaderAgree { member: x, .. } => x == member,
                    _ => false,
                })
            });
    if !asked {
        return Err(Invalid::NotAsked);
    }

    Ok(())
}

/// A member links a device of theirs: the device is nobody's yet, and it signed the link itself.
pub(crate) fn validate_device_add(
    p: &Point,
    device: &DeviceId,
    name: &str,
    proof: &[u8],
) -> Result<(), Invalid> {
    nonempty(name, "the device's name")?;
    if p.gov.device_known(device) {
        return Err(Invalid::DeviceTaken(
            "a member's, an auditor's, a keeper's, or a device already linked (a device is linked once, to one member)".into(),
        ));
    }
    // The proof is checked by the entry signature's rule (strict, canonical, no small-order key).
    let msg = crate::entry::device_link_message(&p.r.group(), p.author, device);
    let proof: &[u8; 64] = proof.try_into().map_err(|_| Invalid::BadDeviceProof)?;
    crate::signature::verify(&device.0, &msg, proof).map_err(|_| Invalid::BadDeviceProof)?;

    Ok(())
}

/// A member stops a device of their own, from another of their active devices.
pub(crate) fn validate_device_revoke(p: &Point, device: &DeviceId) -> Result<(), Invalid> {
    if p.gov.member_of(device) != Some(*p.author) {
        return Err(Invalid::NotYourDevice(
            "a member can stop only their own devices".into(),
        ));
    }
    if p.gov.revoked.contains_key(device) {
        return Err(Invalid::NotYourDevice(
            "that device is already stopped".into(),
        ));
    }
    if device == p.device {
        return Err(Invalid::NotYourDevice(
            "a device cannot stop itself: stop it from another of your devices (or ask the group to link a new one)".into(),
        ));
    }

    Ok(())
}

/// A sealed message is padded, written by a reader, in an epoch whose key only readers hold.
pub(crate) fn validate_sealed(
    p: &Point,
    thread: &EntryId,
    epoch: &EntryId,
    ct: &[u8],
) -> Result<(), Invalid> {
    let st = p.r.sealed_referent(p.clock, thread, p.gov)?;
    if !crate::sealed::valid_ct_len(ct.len()) {
        return Err(Invalid::BadPadding);
    }
    must_read(&st, p.author, "write in it")?;
    let e = st
        .epochs
        .iter()
        .find(|e| e.id == *epoch)
        .ok_or(Invalid::UnknownEpoch)?;
    if !e.wraps.contains_key(p.author) {
        return Err(Invalid::NoEpochKey);
    }
    if e.wraps.keys().any(|m| !st.readers.contains(m)) {
        return Err(Invalid::StaleEpoch);
    }

    Ok(())
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
    // Digits only: `u32::from_str` would also take a leading `+`, which `YYYY-MM-DD` does not.
    let num = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match (num(&d[0..4]), num(&d[5..7]), num(&d[8..10])) {
        (Some(_), Some(m), Some(day)) => (1..=12).contains(&m) && (1..=31).contains(&day),
        _ => false,
    }
}

#[cfg(test)]
mod date_tests {
    use super::valid_date;

    #[test]
    fn a_due_date_is_digits_only() {
        assert!(valid_date("2026-12-01"));
        for bad in [
            "2026-+1-01",
            "+026-12-01",
            "2026-12-+1",
            "2026-13-01",
            "2026-12-00",
            "26-12-01xx",
        ] {
            assert!(!valid_date(bad), "{bad} must be refused");
        }
    }
}
