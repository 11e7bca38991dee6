//! The actions on sealed threads: starting one, letting a member read it or stopping them,
//! asking to read, saying no with a reason, and writing sealed messages.
//!
//! **Invariant:** a sealed message's words are sealed on this device before anything is written;
//! the record, the store and every peer only ever see the ciphertext.

use roundtable_core::{Body, EntryId, MemberId, Record, SealedInfo};
use roundtable_seal::{SealError, thread};
use roundtable_store::Group;

use crate::{AppError, Seat, member_name};

/// In words, how close the sealed thread `entry` belongs to (or is) is to its limits of readers
/// and keys, once they are near; `None` before, and for entries outside sealed threads.
pub fn limits_note(record: &Record, entry: &EntryId) -> Option<String> {
    let t = match record.entry(entry).map(|(_, m)| &m.body) {
        Some(
            Body::ReaderAdd { thread, .. }
            | Body::Rekey { thread, .. }
            | Body::Sealed { thread, .. },
        ) => *thread,
        _ => *entry,
    };
    thread::limits_note(&record.sealed_thread(&t)?.state)
}

fn sealed(record: &Record, t: &EntryId) -> Result<SealedInfo, AppError> {
    record.sealed_thread(t).ok_or(AppError::NotFound {
        what: "sealed thread",
        id: *t,
    })
}

/// A sealing failure in words: a member without a published key is named.
fn seal_error(e: SealError, record: &Record) -> AppError {
    match e {
        SealError::NoKey(m) => AppError::NoKeyYet {
            member: m,
            name: member_name(record, &m),
        },
        e => AppError::Seal(e),
    }
}

/// What agreeing to let a member read did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LetIn {
    /// Every other reader had agreed: the member can now read the whole thread (the entry that
    /// gave them its keys).
    Added(EntryId),
    /// This member's agreement is written; the member can read once these readers agree too.
    Agreed {
        /// The agreement.
        entry: EntryId,
        /// The readers still to agree.
        waiting: Vec<MemberId>,
    },
    /// This member had agreed already; nothing was written. Still waiting for these readers.
    AlreadyAgreed {
        /// The readers still to agree.
        waiting: Vec<MemberId>,
    },
}

impl LetIn {
    /// The entry written, if any.
    pub fn entry(&self) -> Option<EntryId> {
        match self {
            LetIn::Added(e) | LetIn::Agreed { entry: e, .. } => Some(*e),
            LetIn::AlreadyAgreed { .. } => None,
        }
    }
}

impl Seat<'_> {
    /// Starts a sealed thread: only `readers` (and this member, always) can read what is written
    /// in it; everyone sees its title, its readers and `reason`.
    pub fn new_sealed_thread(
        &self,
        g: &mut Group,
        title: &str,
        reason: &str,
        readers: &[MemberId],
    ) -> Result<EntryId, AppError> {
        if title.trim().is_empty() {
            return Err(AppError::Missing {
                what: "the thread's title",
            });
        }
        if reason.trim().is_empty() {
            return Err(AppError::Missing {
                what: "the reason it is sealed (everyone in the group sees it)",
            });
        }
        self.keyring()?;
        self.prepare(g)?;
        let mut ids = readers.to_vec();
        ids.push(self.member());
        let body =
            thread::start(&g.record, title, reason, &ids).map_err(|e| seal_error(e, &g.record))?;
        self.append(g, body)
    }

    /// Agrees that `member` may read the sealed thread. Someone new reads only once every reader,
    /// and every member who was one, agrees (any of them may say no with a reason instead,
    /// [`Seat::decline`]): when this member is a reader and the last to agree, they let `member`
    /// in at once, with every key of the thread; before, their agreement is written for the others
    /// to see. A former reader's agreement is only ever written: a reader lets them in.
    pub fn add_reader(
        &self,
        g: &mut Group,
        t: EntryId,
        member: MemberId,
    ) -> Result<LetIn, AppError> {
        let info = sealed(&g.record, &t)?;
        let me = self.member();
        if !info.state.readers.contains(&member) {
            let waiting = info.state.waiting_for(&member, &me);
            if !waiting.is_empty() || !info.state.readers.contains(&me) {
                if info
                    .state
                    .agreed
                    .get(&member)
                    .is_some_and(|y| y.contains(&me))
                {
                    return Ok(LetIn::AlreadyAgreed { waiting });
                }
                let entry = self.write(g, Body::ReaderAgree { thread: t, member })?;
                return Ok(LetIn::Agreed { entry, waiting });
            }
        }
        let mut keys = self.keyring()?;
        self.prepare(g)?;
        let body = thread::add_reader(&g.record, &mut keys, &t, &member)
            .map_err(|e| seal_error(e, &g.record))?;
        Ok(LetIn::Added(self.append(g, body)?))
    }

    /// Stops `member` reading the sealed thread: a new key is made that they do not get, so they
    /// cannot read anything written from now on.
    pub fn remove_reader(
        &self,
        g: &mut Group,
        t: EntryId,
        member: MemberId,
    ) -> Result<EntryId, AppError> {
        let info = sealed(&g.record, &t)?;
        if !info.state.readers.contains(&member) {
            return Err(AppError::NotAReader {
                name: member_name(&g.record, &member),
            });
        }
        self.prepare(g)?;
        let body =
            thread::rekey(&g.record, &t, Some(member)).map_err(|e| seal_error(e, &g.record))?;
        self.append(g, body)
    }

    /// Asks to read a sealed thread; its readers see why, and answer.
    pub fn ask_to_read(&self, g: &mut Group, t: EntryId, why: &str) -> Result<EntryId, AppError> {
        sealed(&g.record, &t)?;
        if why.trim().is_empty() {
            return Err(AppError::Missing {
                what: "why you would like to read it",
            });
        }
        self.write(
            g,
            Body::Ask {
                thread: t,
                why: why.to_string(),
            },
        )
    }

    /// Says no to letting `member` read (their request, or another reader's agreement to let them
    /// in), with a reason everyone sees; it takes back this member's own agreement, if any.
    pub fn decline(
        &self,
        g: &mut Group,
        t: EntryId,
        member: MemberId,
        reason: &str,
    ) -> Result<EntryId, AppError> {
        sealed(&g.record, &t)?;
        if reason.trim().is_empty() {
            return Err(AppError::Missing {
                what: "the reason (everyone in the group will see it)",
            });
        }
        self.write(
            g,
            Body::Decline {
                thread: t,
                member,
                reason: reason.to_string(),
            },
        )
    }

    /// A sealed message for the thread's readers; when a reader has gone since the key was made,
    /// a new key is written first.
    pub(crate) fn post_sealed(
        &self,
        g: &mut Group,
        t: EntryId,
        text: &str,
    ) -> Result<EntryId, AppError> {
        let mut keys = self.keyring()?;
        self.prepare(g)?;
        // The sealed chain is per device; the reader is the member.
        let me = self.device();
        let body = match thread::message(&g.record, &mut keys, &t, &me, text, self.now()) {
            Err(SealError::NeedsRekey) => {
                let rk =
                    thread::rekey(&g.record, &t, None).map_err(|e| seal_error(e, &g.record))?;
                self.append(g, rk)?;
                thread::message(&g.record, &mut keys, &t, &me, text, self.now())
            }
            other => other,
        }
        .map_err(|e| seal_error(e, &g.record))?;
        self.append(g, body)
    }
}
