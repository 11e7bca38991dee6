//! The actions in the open record: threads, messages, proposals and views, understanding,
//! actions, and the proposals that change the group itself.

use roundtable_core::{Body, Effect, EntryId, MemberId, Rule, StanceKind, Tally};
use roundtable_store::{Group, Proposed};

use crate::{AppError, Seat};

/// A proposal as its author writes it.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The thread it is proposed in.
    pub thread: EntryId,
    /// A short title.
    pub title: String,
    /// The easy-read version, shown first (required).
    pub easy_read: String,
    /// The full text (may be empty).
    pub text: String,
    /// The rule it is decided by; the group's when `None` (the rules refuse a weaker one).
    pub rule: Option<Rule>,
    /// The views needed before closing; the group's when `None` (never fewer).
    pub quorum: Option<u64>,
    /// What it does to the group when it passes (remove a member, change the policy).
    pub effect: Option<Effect>,
    /// The day it is meant to close by, `YYYY-MM-DD` (shown to members; the rules refuse any other
    /// form).
    pub closes: Option<String>,
}

fn required(text: &str, what: &'static str) -> Result<(), AppError> {
    match text.trim().is_empty() {
        true => Err(AppError::Missing { what }),
        false => Ok(()),
    }
}

impl Seat<'_> {
    /// Starts an open thread: everyone in the group, its auditors and later members read it.
    pub fn new_thread(&self, g: &mut Group, title: &str) -> Result<EntryId, AppError> {
        required(title, "the thread's title")?;
        self.write(
            g,
            Body::Thread {
                title: title.to_string(),
            },
        )
    }

    /// Writes a message in a thread; in a sealed thread it is sealed for the readers (with a new
    /// key first when a reader has gone since the key was made).
    pub fn post(&self, g: &mut Group, thread: EntryId, text: &str) -> Result<EntryId, AppError> {
        required(text, "your message")?;
        if g.record.sealed_thread(&thread).is_some() {
            return self.post_sealed(g, thread, text);
        }
        self.write(
            g,
            Body::Message {
                thread,
                text: text.to_string(),
            },
        )
    }

    /// Makes a proposal, decided by the group's rule and quorum unless the draft asks for more.
    pub fn propose(&self, g: &mut Group, d: Draft) -> Result<EntryId, AppError> {
        required(&d.title, "the proposal's title")?;
        required(&d.easy_read, "the easy-read version")?;
        let (_, rule, quorum) = g.record.group_info().ok_or(AppError::Incomplete)?;
        self.write(
            g,
            Body::Proposal {
                thread: d.thread,
                title: d.title,
                text: d.text,
                easy_read: d.easy_read,
                rule: d.rule.unwrap_or(rule),
                quorum: d.quorum.unwrap_or(quorum),
                effect: d.effect,
                closes: d.closes,
            },
        )
    }

    /// Gives this member's view on a proposal, or records one for `on_behalf` (it counts once
    /// they confirm it). Disagreeing and blocking need a reason.
    pub fn stance(
        &self,
        g: &mut Group,
        proposal: EntryId,
        stance: StanceKind,
        reason: &str,
        on_behalf: Option<MemberId>,
    ) -> Result<EntryId, AppError> {
        if stance.needs_reason() && reason.trim().is_empty() {
            return Err(AppError::ReasonNeeded {
                stance: stance.as_str(),
            });
        }
        self.write(
            g,
            Body::Stance {
                proposal,
                stance,
                reason: reason.to_string(),
                on_behalf,
            },
        )
    }

    /// Says how this member understood an entry, so its author can confirm or correct it.
    pub fn understand(
        &self,
        g: &mut Group,
        target: EntryId,
        text: &str,
    ) -> Result<EntryId, AppError> {
        required(text, "what you understood")?;
        self.write(
            g,
            Body::Understand {
                target,
                text: text.to_string(),
            },
        )
    }

    /// Confirms an understanding of this member's entry, or a view recorded for them.
    pub fn confirm(&self, g: &mut Group, target: EntryId) -> Result<EntryId, AppError> {
        self.write(g, Body::Confirm { target })
    }

    /// Corrects this member's entry (or an understanding of it); the original keeps its id.
    pub fn correct(&self, g: &mut Group, target: EntryId, text: &str) -> Result<EntryId, AppError> {
        required(text, "what you meant")?;
        self.write(
            g,
            Body::Correct {
                target,
                text: text.to_string(),
            },
        )
    }

    /// Closes a proposal with this device's recount of the views it holds; the rules refuse it
    /// until enough members have given a view (`not_quorate`).
    pub fn close(
        &self,
        g: &mut Group,
        proposal: EntryId,
        outcome: &str,
    ) -> Result<(EntryId, Tally), AppError> {
        required(outcome, "what was decided")?;
        // The store counts the views once, at the close; here only whether it is a proposal.
        if !matches!(
            g.record.entry(&proposal).map(|(_, m)| &m.body),
            Some(Body::Proposal { .. })
        ) {
            return Err(AppError::NotFound {
                what: "proposal",
                id: proposal,
            });
        }
        self.prepare(g)?;
        let (id, t) = self
            .home
            .close_proposal(g, self.key, proposal, outcome, self.now())?;
        self.checkpoint(g);
        Ok((id, t))
    }

    /// Closes the proposal `proposal` to remove `member`; refused when it is about anything else.
    pub fn close_removal(
        &self,
        g: &mut Group,
        member: MemberId,
        proposal: EntryId,
    ) -> Result<(EntryId, Tally), AppError> {
        match g.record.entry(&proposal).map(|(_, m)| &m.body) {
            Some(Body::Proposal {
                effect: Some(Effect::Remove { member: m }),
                ..
            }) if *m == member => {}
            _ => return Err(AppError::NotThatRemoval { proposal, member }),
        }
        self.close(g, proposal, "Closed to decide the removal")
    }

    /// Adds an action: what, who does it, and by when (a `YYYY-MM-DD` day, or none).
    pub fn action(
        &self,
        g: &mut Group,
        thread: EntryId,
        text: &str,
        owner: MemberId,
        due: Option<String>,
    ) -> Result<EntryId, AppError> {
        required(text, "what needs doing")?;
        self.write(
            g,
            Body::Action {
                thread,
                text: text.to_string(),
                owner,
                due: due.filter(|d| !d.trim().is_empty()),
            },
        )
    }

    /// Says an action is done: it is, when this member owns it; else it is a suggestion for its
    /// owner ([`roundtable_core::Record::action_state`]).
    pub fn action_done(&self, g: &mut Group, action: EntryId) -> Result<EntryId, AppError> {
        self.write(g, Body::ActionDone { action })
    }

    /// Takes back this member's own `action.done` entry `done`, within a day of it (the rules
    /// refuse anyone else's, and a later one).
    pub fn action_undo(&self, g: &mut Group, done: EntryId) -> Result<EntryId, AppError> {
        self.write(g, Body::ActionUndo { done })
    }

    /// [`Seat::action_undo`], when `done` is an `action.done` of `action` (a form naming both
    /// must name one thing); otherwise not found, and nothing is written.
    pub fn action_undo_of(
        &self,
        g: &mut Group,
        action: EntryId,
        done: EntryId,
    ) -> Result<EntryId, AppError> {
        match g.record.entry(&done).map(|(_, m)| &m.body) {
            Some(Body::ActionDone { action: a }) if *a == action => self.action_undo(g, done),
            _ => Err(AppError::NotFound {
                what: "answer to that action",
                id: done,
            }),
        }
    }

    /// Leaves the group. What this member wrote stays in the record.
    pub fn leave(&self, g: &mut Group) -> Result<EntryId, AppError> {
        self.write(g, Body::MemberLeave)
    }

    /// Asks the group for a change to itself (someone joins or leaves, an auditor, the policy):
    /// the proposal in plain words and this member's agree. While this member is the group's only
    /// one it is also closed, which is how a group is founded; otherwise the group decides.
    /// `name` is the person the change is about.
    pub fn ask_group(
        &self,
        g: &mut Group,
        effect: Effect,
        name: &str,
    ) -> Result<Proposed, AppError> {
        self.prepare(g)?;
        let p = self
            .home
            .propose_change(g, self.key, effect, name, self.now())?;
        self.checkpoint(g);
        Ok(p)
    }
}
