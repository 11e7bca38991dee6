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
    /// `malformed`: the bytes are not an entry, or its change not an Automerge change (the reason in words).
    #[error("the entry could not be read: {0}")]
    Malformed(String),
    /// `bad_signature`: the signature does not verify against the change's author (the reason in words).
    #[error("{0}")]
    Signature(String),
    /// `fork`: the author signed another entry at the same position; the lower id wins, and both are kept as evidence.
    #[error(
        "the device {device} wrote two different entries at position {seq} (a fork); the one with the lower id, {winner}, is kept"
    )]
    Fork {
        /// The device that forked.
        device: DeviceId,
        /// The position both entries claim.
        seq: u64,
        /// The entry kept at that position (the lower id).
        winner: EntryId,
    },
    /// `depends_on_rejected`: it builds on a rejected entry (the lowest such id, whatever the arrival order).
    #[error("it builds on entry {0}, which was rejected")]
    DependsOnRejected(EntryId),
    /// `not_in_group`: a first entry that is not this group's genesis, or an entry before the genesis is known.
    #[error("it is not part of this group (it does not build on the group's first entry)")]
    NotInGroup,
    /// `bad_sequence`: its `seq` is not one more than its author's highest in its past.
    #[error("its position in its author's sequence is wrong (expected {expected}, found {found})")]
    Sequence {
        /// One more than the author's highest `seq` in the entry's past.
        expected: u64,
        /// The entry's own `seq`.
        found: u64,
    },
    /// `bad_op_counter`: it has no operations, or its first op counter is not above every one in its past.
    #[error("its operation numbers overlap earlier entries")]
    OpCounter,
    /// `bad_shape`: its operations are not one well-formed record ([`ShapeError`], in words).
    #[error("{0}")]
    Shape(String),
    /// `not_member`: its author was never a member in its past.
    #[error("its author was not a member of the group when they wrote it")]
    NotMember,
    /// `after_removal`: its author had left or been removed in its past.
    #[error("its author had already left or been removed when they wrote it")]
    AfterRemoval,
    /// `removal_without_decision`: a `member.remove` record, always refused (a removal is a proposal's effect).
    #[error("removing another member needs a passed decision that names the removal: {0}")]
    RemovalWithoutDecision(String),
    /// `add_without_decision`: a `member.add` record, always refused (a member joins by a proposal's effect).
    #[error(
        "a member joins only when the group passes a proposal to add them; no one can add a member alone"
    )]
    AddWithoutDecision,
    /// `auditor_without_decision`: an `auditor.add` record, always refused (an auditor is let in by a proposal's effect).
    #[error(
        "an auditor is let in only when the group passes a proposal for it; no one can let an auditor in alone"
    )]
    AuditorWithoutDecision,
    /// `below_policy`: a proposal asks a weaker rule or a smaller quorum than the group's.
    #[error("{0}")]
    BelowPolicy(String),
    /// `not_quorate`: a close made before enough members gave a view.
    #[error("{}", not_quorate(*given, *needed, *members))]
    NotQuorate {
        /// Views given in the close's past.
        given: u64,
        /// Views needed ([`crate::recount::views_needed`]).
        needed: u64,
        /// Active members when the proposal was made.
        members: u64,
    },
    /// `already_closed`: a stance or close on a proposal whose outcome already stands (and no conflict to settle).
    #[error("this proposal is already closed")]
    AlreadyClosed,
    /// `outcome_mismatch`: a close whose counts or decision differ from the recount in its past.
    #[error("the recorded outcome ({recorded}) does not match the stances ({recounted})")]
    OutcomeMismatch {
        /// The decision and counts the close records, in words.
        recorded: String,
        /// The recount's, in words.
        recounted: String,
    },
    /// `unknown_referent`: it refers to an entry that is not valid in its past, or not of the kind needed.
    #[error("it refers to {what} {id}, which does not exist here")]
    UnknownReferent {
        /// What kind of entry was needed ("thread", "proposal", ...).
        what: String,
        /// The id referred to.
        id: EntryId,
    },
    /// `empty_text`: a required text field is blank (which field, in words).
    #[error("{0} is empty")]
    EmptyText(String),
    /// `reason_needed`: a disagree or block without a reason (the stance named).
    #[error("a reason is needed to {0}")]
    ReasonNeeded(String),
    /// `would_unseal`: an understanding or correction of a sealed message, which would copy its words into the open.
    #[error(
        "a sealed message cannot be restated or corrected in the open: that would unseal its words"
    )]
    WouldUnseal,
    /// `sealed_thread_only`: an open record (message, proposal, action) in a sealed thread.
    #[error("this thread is sealed: only sealed messages can go in it")]
    SealedThreadOnly,
    /// `already_member`: a proposal to add someone who is an active member.
    #[error("that person is already a member")]
    AlreadyMember,
    /// `member_and_auditor`: a device proposed as both a member and an auditor (which way, in words).
    #[error("{0}")]
    MemberAndAuditor(String),
    /// `already_auditor`: a proposal to let in a device that is already an auditor's.
    #[error("that device is already an auditor's")]
    AlreadyAuditor,
    /// `not_a_key`: an id that must be a device's is not a valid ed25519 public key (which id, in words).
    #[error("{0} is not a device key")]
    NotAKey(String),
    /// `remove_self`: a proposal to remove its own proposer (who leaves instead).
    #[error("to leave, use leave, not remove")]
    RemoveSelf,
    /// `not_active`: it names someone who must be an active member and is not (a reader, an
    /// action's owner, the member removed, the member a stance is typed for; in words).
    #[error("{0}")]
    NotActive(String),
    /// `zero_quorum`: a policy proposal that sets the quorum to 0.
    #[error("the group's quorum must be at least 1 member")]
    ZeroQuorum,
    /// `bad_confirm`: a confirm by someone other than the understood entry's author or the member a stance was typed for.
    #[error("{0}")]
    BadConfirm(String),
    /// `correct_not_own`: a correction of someone else's entry.
    #[error("you can correct your own entries, or an understanding of them")]
    CorrectNotOwn,
    /// `undo_not_own`: an `action.undo` by someone other than who wrote the `action.done`.
    #[error("only the member who said an action is done can take it back")]
    UndoNotOwn,
    /// `undo_too_late`: an `action.undo` more than a day after its `action.done`.
    #[error("an action can be marked not done again only within a day of being marked done")]
    UndoTooLate,
    /// `bad_date`: an action's due date or a proposal's closing day is not `YYYY-MM-DD`.
    #[error("a date (a due date, a closing day) must look like 2026-12-31: year, month, day")]
    BadDate,
    /// `bad_encryption_key`: a profile's encryption key is all zeros.
    #[error("the encryption key is not a valid key")]
    BadEncryptionKey,
    /// `starter_not_reader`: a sealed thread whose starter is not among its readers.
    #[error("the member who starts a sealed thread must be one of its readers")]
    StarterNotReader,
    /// `already_reader`: adding (or asking as) a reader who already is one and lacks no key (in words).
    #[error("{0}")]
    AlreadyReader(String),
    /// `reader_only`: a non-reader tried what only a sealed thread's readers may (the action named).
    #[error("only a reader of this sealed thread can {0}")]
    ReaderOnly(String),
    /// `not_a_reader`: a rekey removes someone who is not a reader.
    #[error("that member is not a reader of this thread")]
    NotAReader,
    /// `last_reader`: a rekey that would leave the thread with no reader.
    #[error("a sealed thread must keep at least one reader")]
    LastReader,
    /// `too_many_epochs`: a rekey past `sealed::MAX_EPOCHS`.
    #[error("this sealed thread has had as many keys as it can: start a new sealed thread")]
    TooManyEpochs,
    /// `too_many_readers`: a reader added past the limit (the limit, `sealed::MAX_READERS`).
    #[error(
        "this sealed thread has {0} readers, the most it can have: start another sealed thread"
    )]
    TooManyReaders(usize),
    /// `wrong_wraps`: the wraps are not exactly the readers (or epochs) the rule asks for (in words).
    #[error("{0}")]
    WrongWraps(String),
    /// `not_asked`: a decline of a member who has not asked to read the thread, and whom no reader
    /// has agreed to let in.
    #[error("no one has asked to let that member read this thread")]
    NotAsked,
    /// `not_agreed`: a new reader let in before every other reader agreed (those who have not, in
    /// the entry's past; a reader's later "no" takes back their agreement).
    #[error("{}", not_agreed(.0))]
    NotAgreed(Vec<MemberId>),
    /// `bad_padding`: a sealed message's ciphertext is not one of the bucket sizes plus nonce and tag.
    #[error("the sealed content is not padded to one of the allowed sizes")]
    BadPadding,
    /// `unknown_epoch`: a sealed message names an epoch the thread does not have in its past.
    #[error("it names a key epoch this thread does not have here")]
    UnknownEpoch,
    /// `no_epoch_key`: a sealed message in an epoch whose key was not wrapped for its author.
    #[error("its author was not given that epoch's key")]
    NoEpochKey,
    /// `stale_epoch`: a sealed message in an epoch whose key someone who is no longer a reader
    /// holds, or that was sealed to an encryption key a reader no longer publishes.
    #[error(
        "it uses a key that someone who is no longer a reader, or a lost device, may hold; a new key is needed"
    )]
    StaleEpoch,
    /// `key_not_published`: a wrap for a member with no published encryption key in its past.
    #[error(
        "{0} has not published an encryption key yet (their device publishes one the first time it opens the group)"
    )]
    KeyNotPublished(MemberId),
    /// `wrong_key`: a wrap sealed to a key other than the member's latest published one.
    #[error("the key for {0} is not the one they published")]
    WrongKey(MemberId),
    /// `unsupported_document`: an entry of a document other than the public record.
    #[error(
        "this version reads entries of the public record only (sealed threads travel inside it); a newer version may have written this one"
    )]
    UnsupportedDocument,
    /// `device_revoked`: its device had been stopped by its member (a `device.revoke`) in its past.
    #[error(
        "it was written on a device its member had stopped (a lost or replaced device); its member's other devices still work"
    )]
    DeviceRevoked,
    /// `device_taken`: a `device.add` (or a proposal) for a device that already is a member's, a
    /// linked device or an auditor's.
    #[error("that device already belongs to someone in this group: {0}")]
    DeviceTaken(String),
    /// `bad_device_proof`: a `device.add` whose proof is not the new device's own signature of
    /// the link message.
    #[error(
        "the new device did not sign this link (its proof does not verify); link it again from the new device"
    )]
    BadDeviceProof,
    /// `keeper_cannot_write`: an entry signed by a keeper's device (a keeper stores and forwards
    /// the record; it never writes in it).
    #[error(
        "it was signed by a keeper's device: a keeper stores and passes on the group's record, but it can never write in it"
    )]
    KeeperCannotWrite,
    /// `already_keeper`: a proposal to name a keeper that is one already (and not stopped).
    #[error("that device is already one of the group's keepers")]
    AlreadyKeeper,
    /// `not_a_keeper`: a proposal to stop a keeper that is not an active keeper.
    #[error("that device is not one of the group's keepers now")]
    NotAKeeper,
    /// `not_your_device`: a `device.revoke` of a device that is not an active device of its
    /// author's member, or of the device writing it.
    #[error("{0}")]
    NotYourDevice(String),
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
            Invalid::UndoNotOwn => "undo_not_own",
            Invalid::UndoTooLate => "undo_too_late",
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
            Invalid::NotAgreed(_) => "not_agreed",
            Invalid::BadPadding => "bad_padding",
            Invalid::UnknownEpoch => "unknown_epoch",
            Invalid::NoEpochKey => "no_epoch_key",
            Invalid::StaleEpoch => "stale_epoch",
            Invalid::KeyNotPublished(_) => "key_not_published",
            Invalid::WrongKey(_) => "wrong_key",
            Invalid::UnsupportedDocument => "unsupported_document",
            Invalid::DeviceRevoked => "device_revoked",
            Invalid::DeviceTaken(_) => "device_taken",
            Invalid::BadDeviceProof => "bad_device_proof",
            Invalid::NotYourDevice(_) => "not_your_device",
            Invalid::KeeperCannotWrite => "keeper_cannot_write",
            Invalid::AlreadyKeeper => "already_keeper",
            Invalid::NotAKeeper => "not_a_keeper",
        }
    }
}

/// "every reader must agree before someone new reads the thread; waiting for 1 reader: …".
fn not_agreed(waiting: &[MemberId]) -> String {
    let who: Vec<String> = waiting.iter().map(ToString::to_string).collect();
    format!(
        "every reader must agree before someone new can read this thread; still waiting for {} {}: {}",
        waiting.len(),
        if waiting.len() == 1 {
            "reader"
        } else {
            "readers"
        },
        who.join(", ")
    )
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
