//! Why an entry is not part of the record: one variant, with its own stable kind, per rule.
//!
//! **Invariant:** a kind string never changes meaning; `docs/format.md` section 11 and `docs/rules.md`
//! list every one, and the CLI, the web page, the auditor and the tests all use these.

use serde::{Deserialize, Serialize};

use crate::body::ShapeError;
use crate::change::ChangeError;
use crate::entry::SignatureError;
use crate::id::{DeviceId, EntryId, MemberId};

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
    #[error("it refers to {what} {id}, which does not exist here")]
    UnknownReferent { what: String, id: EntryId },
    #[error("{0} is empty")]
    EmptyText(String),
    #[error("a reason is needed to {0}")]
    ReasonNeeded(String),
    #[error(
        "a sealed message cannot be restated or corrected in the open: that would unseal its words"
    )]
    WouldUnseal,
    #[error("this thread is sealed: only sealed messages can go in it")]
    SealedThreadOnly,
    #[error("that person is already a member")]
    AlreadyMember,
    #[error("{0}")]
    MemberAndAuditor(String),
    #[error("that device is already an auditor's")]
    AlreadyAuditor,
    #[error("{0} is not a device key")]
    NotAKey(String),
    #[error("to leave, use leave, not remove")]
    RemoveSelf,
    #[error("{0}")]
    NotActive(String),
    #[error("the group's quorum must be at least 1 member")]
    ZeroQuorum,
    #[error("{0}")]
    BadConfirm(String),
    #[error("you can correct your own entries, or an understanding of them")]
    CorrectNotOwn,
    #[error("the due date must look like 2026-12-31")]
    BadDate,
    #[error("the encryption key is not a valid key")]
    BadEncryptionKey,
    #[error("the member who starts a sealed thread must be one of its readers")]
    StarterNotReader,
    #[error("{0}")]
    AlreadyReader(String),
    #[error("only a reader of this sealed thread can {0}")]
    ReaderOnly(String),
    #[error("that member is not a reader of this thread")]
    NotAReader,
    #[error("a sealed thread must keep at least one reader")]
    LastReader,
    #[error("this sealed thread has had as many keys as it can: start a new sealed thread")]
    TooManyEpochs,
    #[error(
        "this sealed thread has {0} readers, the most it can have: start another sealed thread"
    )]
    TooManyReaders(usize),
    #[error("{0}")]
    WrongWraps(String),
    #[error("that member has not asked to read this thread")]
    NotAsked,
    #[error("the sealed content is not padded to one of the allowed sizes")]
    BadPadding,
    #[error("it names a key epoch this thread does not have here")]
    UnknownEpoch,
    #[error("its author was not given that epoch's key")]
    NoEpochKey,
    #[error("it uses a key that someone who is no longer a reader holds; a new key is needed")]
    StaleEpoch,
    #[error(
        "{0} has not published an encryption key yet (their device publishes one the first time it opens the group)"
    )]
    KeyNotPublished(MemberId),
    #[error("the key for {0} is not the one they published")]
    WrongKey(MemberId),
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
            Invalid::UnknownReferent { .. } => "unknown_referent",
            Invalid::EmptyText(_) => "empty_text",
            Invalid::ReasonNeeded(_) => "reason_needed",
            Invalid::WouldUnseal => "would_unseal",
            Invalid::SealedThreadOnly => "sealed_thread_only",
            Invalid::AlreadyMember => "already_member",
            Invalid::MemberAndAuditor(_) => "member_and_auditor",
            Invalid::AlreadyAuditor => "already_auditor",
            Invalid::NotAKey(_) => "not_a_key",
            Invalid::RemoveSelf => "remove_self",
            Invalid::NotActive(_) => "not_active",
            Invalid::ZeroQuorum => "zero_quorum",
            Invalid::BadConfirm(_) => "bad_confirm",
            Invalid::CorrectNotOwn => "correct_not_own",
            Invalid::BadDate => "bad_date",
            Invalid::BadEncryptionKey => "bad_encryption_key",
            Invalid::StarterNotReader => "starter_not_reader",
            Invalid::AlreadyReader(_) => "already_reader",
            Invalid::ReaderOnly(_) => "reader_only",
            Invalid::NotAReader => "not_a_reader",
            Invalid::LastReader => "last_reader",
            Invalid::TooManyEpochs => "too_many_epochs",
            Invalid::TooManyReaders(_) => "too_many_readers",
            Invalid::WrongWraps(_) => "wrong_wraps",
            Invalid::NotAsked => "not_asked",
            Invalid::BadPadding => "bad_padding",
            Invalid::UnknownEpoch => "unknown_epoch",
            Invalid::NoEpochKey => "no_epoch_key",
            Invalid::StaleEpoch => "stale_epoch",
            Invalid::KeyNotPublished(_) => "key_not_published",
            Invalid::WrongKey(_) => "wrong_key",
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
