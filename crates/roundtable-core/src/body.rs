//! What an entry says: one typed record per change, and its exact shape in Automerge operations.
//!
//! **Invariant (shape):** a non-genesis change makes exactly one new map, at key `"{actor}.{seq}"` of the
//! container for its kind, and then only puts scalar fields into that new map. It never overwrites or
//! deletes anything. So no entry can alter another member's words, every value in the document has one
//! author (the change's actor), and concurrent entries never conflict.
//! The genesis change makes the `group` map and the empty containers at the document root.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use automerge::legacy::{Key, ObjectId, Op, OpId, OpType, SortedVec};
use automerge::{ActorId, ObjType, ScalarValue};
use smol_str::SmolStr;

use crate::id::{DeviceId, EntryId, MemberId};
use crate::sealed::{
    EpochWrap, Wrap, decode_epoch_wraps, decode_wraps, encode_epoch_wraps, encode_wraps,
};

/// Longest text field, in bytes.
pub const MAX_TEXT: usize = 16 * 1024;
/// Longest bytes field (a sealed message's padded ciphertext), in bytes.
pub const MAX_BYTES: usize = 131072 + 40;
/// The containers the genesis change creates, one per kind of record.
pub const CONTAINERS: [&str; 9] = [
    "members",
    "threads",
    "messages",
    "proposals",
    "stances",
    "outcomes",
    "checks",
    "corrections",
    "actions",
];

/// How a proposal is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    /// Passes when nobody blocks and at least `quorum` members gave a stance.
    Consent,
    /// Passes when more agree than disagree and at least `quorum` members gave a stance.
    Majority,
}

impl Rule {
    /// Whether a proposal under `self` asks at least as much as `group` does (consent asks more).
    pub fn at_least(self, group: Rule) -> bool {
        self == group || self == Rule::Consent
    }
    /// The rule's name in a record's `rule` field and in the CLI: `consent` or `majority`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Consent => "consent",
            Rule::Majority => "majority",
        }
    }
    /// Reads a name [`Rule::as_str`] gives; `None` for any other text.
    pub fn parse(s: &str) -> Option<Rule> {
        match s {
            "consent" => Some(Rule::Consent),
            "majority" => Some(Rule::Majority),
            _ => None,
        }
    }
}

/// A member's stance on a proposal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum StanceKind {
    /// For the proposal.
    Agree,
    /// Counted as a view given, for neither side.
    Abstain,
    /// Against, with a reason; under consent it does not stop the proposal.
    Disagree,
    /// Under consent, stops the proposal; under majority, counts as a disagree. Needs a reason.
    Block,
}

impl StanceKind {
    /// The stance's name in a record's `stance` field: `agree`, `abstain`, `disagree` or `block`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StanceKind::Agree => "agree",
            StanceKind::Abstain => "abstain",
            StanceKind::Disagree => "disagree",
            StanceKind::Block => "block",
        }
    }
    /// Reads a name [`StanceKind::as_str`] gives; `None` for any other text.
    pub fn parse(s: &str) -> Option<StanceKind> {
        match s {
            "agree" => Some(StanceKind::Agree),
            "abstain" => Some(StanceKind::Abstain),
            "disagree" => Some(StanceKind::Disagree),
            "block" => Some(StanceKind::Block),
            _ => None,
        }
    }
    /// Disagree and block must say why.
    pub fn needs_reason(&self) -> bool {
        matches!(self, StanceKind::Disagree | StanceKind::Block)
    }
}

/// Whether a closed proposal passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// The proposal passed (and its effect, if any, applies once this outcome stands).
    Passed,
    /// The proposal did not pass; it changes nothing.
    NotPassed,
}

impl Decision {
    /// The decision's name in a record's `decision` field: `passed` or `not_passed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Passed => "passed",
            Decision::NotPassed => "not_passed",
        }
    }
    /// Reads a name [`Decision::as_str`] gives; `None` for any other text.
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "passed" => Some(Decision::Passed),
            "not_passed" => Some(Decision::NotPassed),
            _ => None,
        }
    }
}

/// A change to the group itself that a proposal makes when it passes. Only the group decides these:
/// no entry of one member can make them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    /// Adds (or re-adds) a member, with the name and needs they gave themselves.
    Add {
        /// The newcomer's device id (an ed25519 public key).
        member: MemberId,
        /// The name they go by in the group; never empty.
        name: String,
        /// What they need in order to take part (access needs, in their words; may be empty).
        needs: String,
    },
    /// Removes a member. Besides the group's rule it needs two thirds of the other members to
    /// agree and no block except from the person removed.
    Remove {
        /// The active member removed; never the proposer.
        member: MemberId,
    },
    /// Lets an auditor's device sync the record (public entries and sealed ciphertext, never keys).
    Auditor {
        /// The auditor's device id; never a member's.
        device: DeviceId,
        /// How members call the auditor; never empty.
        name: String,
    },
    /// Recovery by the group: links a new device to a member who lost theirs and stops every
    /// other device of that member. Besides the group's rule it needs two thirds of the other
    /// members to agree and no block from anyone, the member recovered included (from a device
    /// they still hold, their stop on a hijack).
    Recover {
        /// The active member whose seat the new device takes over.
        member: MemberId,
        /// The new device's id (an ed25519 public key); never a member's, an auditor's or a
        /// device already linked.
        device: DeviceId,
        /// What the member calls it ("Ben's new phone"); never empty.
        name: String,
        /// The new device's own signature of [`crate::entry::device_link_message`] for `member`:
        /// nobody can bind a key they do not hold.
        #[serde(with = "sig_bytes")]
        proof: [u8; 64],
    },
    /// Changes the group's own rule and quorum.
    Policy {
        /// The rule every later proposal must ask at least.
        rule: Rule,
        /// The views every later proposal needs at least; never 0.
        quorum: u64,
    },
    /// Names a keeper: an always-on device that stores and forwards every entry of the group
    /// (sealed ones as ciphertext only). It can never write: every entry it signs is refused, and
    /// it is never a reader.
    Keeper {
        /// The keeper's device id (an ed25519 public key); never a member's, a linked device's or
        /// an auditor's.
        device: DeviceId,
        /// What members call it ("Council PC"); never empty.
        name: String,
    },
    /// Stops a keeper: it may no longer sync with the group's devices. Its id stays a keeper's
    /// for good (it never becomes anyone else's).
    KeeperRemove {
        /// The keeper stopped; an active keeper.
        device: DeviceId,
    },
}

impl Effect {
    /// A short stable name: `member.add`, `member.remove`, `member.recover`, `auditor.add`,
    /// `keeper.add`, `keeper.remove` or `policy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::Add { .. } => "member.add",
            Effect::Remove { .. } => "member.remove",
            Effect::Recover { .. } => "member.recover",
            Effect::Auditor { .. } => "auditor.add",
            Effect::Keeper { .. } => "keeper.add",
            Effect::KeeperRemove { .. } => "keeper.remove",
            Effect::Policy { .. } => "policy",
        }
    }

    /// The member a membership effect is about.
    pub fn member(&self) -> Option<MemberId> {
        match self {
            Effect::Add { member, .. }
            | Effect::Remove { member }
            | Effect::Recover { member, .. } => Some(*member),
            _ => None,
        }
    }
}

/// Serde for a 64-byte signature as a byte string (serde derives arrays only up to 32). Reading
/// takes a byte string or a sequence, and refuses any other length: no panic on foreign bytes.
mod sig_bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(sig)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        struct Sig;
        impl<'de> Visitor<'de> for Sig {
            type Value = [u8; 64];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; 64], E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 64], A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(A::Error::invalid_length(65, &self));
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(Sig)
    }
}

/// Stance counts, in the order agree, abstain, disagree, block.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Counts {
    /// Members whose stance is agree.
    pub agree: u64,
    /// Members whose stance is abstain.
    pub abstain: u64,
    /// Members whose stance is disagree.
    pub disagree: u64,
    /// Members whose stance is block.
    pub block: u64,
}

impl Counts {
    /// Counts one more stance of kind `s`.
    pub fn add(&mut self, s: StanceKind) {
        match s {
            StanceKind::Agree => self.agree += 1,
            StanceKind::Abstain => self.abstain += 1,
            StanceKind::Disagree => self.disagree += 1,
            StanceKind::Block => self.block += 1,
        }
    }
    /// Views given: every stance counted, abstentions included.
    pub fn total(&self) -> u64 {
        self.agree + self.abstain + self.disagree + self.block
    }
    /// The decision these counts give under `rule` and `quorum`. Under majority a block counts as
    /// a disagree: it can never weigh less than one.
    pub fn decide(&self, rule: Rule, quorum: u64) -> Decision {
        let quorate = self.total() >= quorum;
        let pass = match rule {
            Rule::Consent => quorate && self.block == 0,
            Rule::Majority => quorate && self.agree > self.disagree + self.block,
        };
        if pass {
            Decision::Passed
        } else {
            Decision::NotPassed
        }
    }
}

/// One record: what a single entry says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Body {
    /// The first entry of a group. Its author is the first member.
    Genesis {
        /// The group's name.
        name: String,
        /// How the group decides, until a policy decision changes it.
        rule: Rule,
        /// The views every proposal needs at least, until a policy decision changes it.
        quorum: u64,
        /// The first member's name.
        creator_name: String,
        /// The first member's needs, in their words (may be empty).
        creator_needs: String,
    },
    /// No longer valid to write (kept so that old entries decode as evidence): a member joins when
    /// the group passes a proposal with [`Effect::Add`].
    MemberAdd {
        /// Whom it claimed to add.
        member: MemberId,
        /// Their name.
        name: String,
        /// Their needs.
        needs: String,
    },
    /// The author leaves the group.
    MemberLeave,
    /// No longer valid to write (kept so that old entries decode as evidence): a removal takes
    /// effect when its proposal ([`Effect::Remove`]) passes.
    MemberRemove {
        /// Whom it claimed to remove.
        member: MemberId,
        /// The decision it claimed to carry out.
        decision: EntryId,
    },
    /// Starts an open thread: a topic messages and proposals are written in.
    Thread {
        /// The thread's title; never empty.
        title: String,
    },
    /// A message in an open thread.
    Message {
        /// The thread it is written in (a valid, open thread in its past).
        thread: EntryId,
        /// The words; never empty.
        text: String,
    },
    /// Asks the group to decide something; stances on it follow, and an outcome closes it.
    Proposal {
        /// The open thread it is made in, or the genesis for a proposal with an effect.
        thread: EntryId,
        /// Its title; never empty.
        title: String,
        /// The full text (may be empty).
        text: String,
        /// The same in plain, short words; never empty.
        easy_read: String,
        /// The rule it is decided by; never weaker than the group's.
        rule: Rule,
        /// The views it asks for at least; never below the group's quorum.
        quorum: u64,
        /// What passing it changes in the group itself, if anything.
        effect: Option<Effect>,
        /// The day the proposer means it to close by, as `YYYY-MM-DD`, if one was chosen: shown to
        /// members and in reminders. Closing is still a member's step, before or after it.
        closes: Option<String>,
    },
    /// A stance; with `on_behalf`, typed by a supporter for that member, who later confirms it.
    Stance {
        /// The open proposal it is on.
        proposal: EntryId,
        /// The view given.
        stance: StanceKind,
        /// Why; required (not blank) for disagree and block.
        reason: String,
        /// The active member it was typed for, if not the author.
        on_behalf: Option<MemberId>,
    },
    /// Closes a proposal with the counts and decision the closer recounted.
    Outcome {
        /// The proposal it closes.
        proposal: EntryId,
        /// What was decided, in the closer's words.
        outcome: String,
        /// The decision; must equal the recount in its past.
        decision: Decision,
        /// The counts; must equal the recount in its past.
        counts: Counts,
    },
    /// "I understood this as ...".
    Understand {
        /// The entry restated (not a sealed one).
        target: EntryId,
        /// The restatement; never empty.
        text: String,
    },
    /// The author of an understood entry says "yes, that's right", or a member confirms a stance typed for them.
    Confirm {
        /// The restatement or the typed stance confirmed.
        target: EntryId,
    },
    /// Hides a mistake from the default view and shows `text` instead; the original keeps its hash.
    Correct {
        /// The entry corrected: the author's own, or an understanding of one of theirs; not sealed.
        target: EntryId,
        /// What to show instead; never empty.
        text: String,
    },
    /// Someone will do something, in an open thread.
    Action {
        /// The open thread it belongs to.
        thread: EntryId,
        /// What is to be done; never empty.
        text: String,
        /// The active member who does it.
        owner: MemberId,
        /// By when, as `YYYY-MM-DD`, if a date was set.
        due: Option<String>,
    },
    /// An action is done (the owner's word), or looks done (anyone else's).
    ActionDone {
        /// The action.
        action: EntryId,
    },
    /// Takes back an `action.done`, by whoever wrote it, within a day of it.
    ActionUndo {
        /// The `action.done` taken back.
        done: EntryId,
    },
    /// A member's public encryption key (X25519), so others can make them a reader of sealed threads.
    Profile {
        /// The author's X25519 public key (RFC 7748); never all zeros.
        enc_key: [u8; 32],
    },
    /// Starts a sealed thread. Its readers are the members its first epoch key is wrapped for;
    /// its title, readers and reason are public.
    SealedThread {
        /// The thread's title (public).
        title: String,
        /// Why it is sealed (public).
        reason: String,
        /// Key commitment of the first epoch key.
        commit: [u8; 32],
        /// The first epoch key, wrapped for each reader (the author among them).
        wraps: Vec<Wrap>,
    },
    /// A reader makes another member a reader: every past epoch key, wrapped for them.
    ReaderAdd {
        /// The sealed thread.
        thread: EntryId,
        /// The active member made a reader (or a reader given keys they lack).
        member: MemberId,
        /// That epoch's key for `member`, for every epoch (for a reader already: only those they lack).
        wraps: Vec<EpochWrap>,
    },
    /// A new epoch key wrapped for the remaining readers; with `removes`, that reader is removed.
    Rekey {
        /// The sealed thread.
        thread: EntryId,
        /// The reader removed, if any.
        removes: Option<MemberId>,
        /// Key commitment of the new epoch key.
        commit: [u8; 32],
        /// The new epoch key, wrapped for each remaining reader.
        wraps: Vec<Wrap>,
    },
    /// A reader agrees that a member may read the sealed thread. A new reader is let in only once
    /// every other reader has agreed (the reader who lets them in agrees by doing it).
    ReaderAgree {
        /// The sealed thread.
        thread: EntryId,
        /// The active member, not a reader yet, who may read.
        member: MemberId,
    },
    /// A member asks to read a sealed thread.
    Ask {
        /// The sealed thread.
        thread: EntryId,
        /// Why they ask; never empty.
        why: String,
    },
    /// A reader declines a member's request, with a reason the member sees.
    Decline {
        /// The sealed thread.
        thread: EntryId,
        /// Who asked.
        member: MemberId,
        /// Why not; never empty.
        reason: String,
    },
    /// A message of a sealed thread: its inner change, encrypted under the epoch's key.
    Sealed {
        /// The sealed thread.
        thread: EntryId,
        /// The epoch whose key encrypts it (the entry that started the epoch).
        epoch: EntryId,
        /// Nonce, ciphertext and tag of the padded inner change; its length is a size bucket plus 40.
        ct: Vec<u8>,
    },
    /// No longer valid to write (kept so that old entries decode as evidence): an auditor is
    /// let in when the group passes a proposal with [`Effect::Auditor`].
    AuditorAdd {
        /// The auditor's device it claimed to let in.
        device: DeviceId,
        /// Its name.
        name: String,
    },
    /// A member links another device of theirs: its later entries are the member's. Written by one
    /// of the member's active devices; `proof` is the new device's own signature that it asked to be
    /// this member's ([`crate::entry::device_link_message`]), so no one can claim a key they do not hold.
    DeviceAdd {
        /// The new device's id (an ed25519 public key); never a member's, an auditor's or a device
        /// already linked.
        device: DeviceId,
        /// What the member calls it ("Ben's phone"); never empty.
        name: String,
        /// The new device's signature of the link message (64 bytes).
        proof: Vec<u8>,
    },
    /// A member stops one of their devices: its entries written after this are refused. Written by
    /// another of the member's active devices.
    DeviceRevoke {
        /// The device stopped; one of the author's member's, not the one writing.
        device: DeviceId,
    },
    /// A member says, in their own words, what they are called and what helps them take part.
    /// Only the member themselves writes it; the latest in the causal order counts.
    About {
        /// The name they want to be called by (not empty).
        name: String,
        /// Their communication and access needs, in their words (may be empty).
        needs: String,
    },
}

/// Why a change's operations are not a well-formed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// The operations are not one new map of scalar puts at the author's key.
    #[error("the change does not have the shape of a record: {0}")]
    Shape(String),
    /// A field is missing, of the wrong type, or not in its canonical encoding.
    #[error("the record has a missing or malformed field '{0}'")]
    Field(&'static str),
    /// The `type` field names no record type.
    #[error("the record's type '{0}' is unknown")]
    Type(String),
    /// A text field is over [`MAX_TEXT`] bytes (or a bytes field over [`MAX_BYTES`]).
    #[error("a text field is longer than {MAX_TEXT} bytes")]
    TooLong,
}

fn shape(msg: &str) -> ShapeError {
    ShapeError::Shape(msg.to_string())
}

impl Body {
    /// The record type written in the `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Genesis { .. } => "group",
            Body::MemberAdd { .. } => "member.add",
            Body::MemberLeave => "member.leave",
            Body::MemberRemove { .. } => "member.remove",
            Body::Thread { .. } => "thread",
            Body::Message { .. } => "message",
            Body::Proposal { .. } => "proposal",
            Body::Stance { .. } => "stance",
            Body::Outcome { .. } => "outcome",
            Body::Understand { .. } => "understand",
            Body::Confirm { .. } => "confirm",
            Body::Correct { .. } => "correct",
            Body::Action { .. } => "action",
            Body::ActionDone { .. } => "action.done",
            Body::ActionUndo { .. } => "action.undo",
            Body::Profile { .. } => "profile",
            Body::SealedThread { .. } => "thread.sealed",
            Body::ReaderAdd { .. } => "thread.reader.add",
            Body::Rekey { .. } => "thread.rekey",
            Body::ReaderAgree { .. } => "thread.reader.agree",
            Body::Ask { .. } => "thread.ask",
            Body::Decline { .. } => "thread.decline",
            Body::Sealed { .. } => "message.sealed",
            Body::AuditorAdd { .. } => "auditor.add",
            Body::About { .. } => "member.about",
            Body::DeviceAdd { .. } => "device.add",
            Body::DeviceRevoke { .. } => "device.revoke",
        }
    }

    /// The root container this kind of record lives in (`group` for the genesis map itself).
    pub fn container(&self) -> &'static str {
        match self {
            Body::Genesis { .. } => "group",
            Body::MemberAdd { .. }
            | Body::MemberLeave
            | Body::MemberRemove { .. }
            | Body::Profile { .. }
            | Body::AuditorAdd { .. }
            | Body::About { .. }
            | Body::DeviceAdd { .. }
            | Body::DeviceRevoke { .. } => "members",
            Body::Thread { .. }
            | Body::SealedThread { .. }
            | Body::ReaderAdd { .. }
            | Body::Rekey { .. }
            | Body::ReaderAgree { .. }
            | Body::Ask { .. }
            | Body::Decline { .. } => "threads",
            Body::Message { .. } | Body::Sealed { .. } => "messages",
            Body::Proposal { .. } => "proposals",
            Body::Stance { .. } => "stances",
            Body::Outcome { .. } => "outcomes",
            Body::Understand { .. } | Body::Confirm { .. } => "checks",
            Body::Correct { .. } => "corrections",
            Body::Action { .. } | Body::ActionDone { .. } | Body::ActionUndo { .. } => "actions",
        }
    }

    fn fields(&self) -> Vec<(&'static str, ScalarValue)> {
        fn s(v: &str) -> ScalarValue {
            ScalarValue::Str(v.into())
        }
        fn id<T: ToString>(v: &T) -> ScalarValue {
            ScalarValue::Str(v.to_string().into())
        }
        fn bytes(v: &[u8; 32]) -> ScalarValue {
            ScalarValue::Bytes(v.to_vec())
        }
        let mut f: Vec<(&'static str, ScalarValue)> = vec![("type", s(self.type_name()))];
        match self {
            Body::Genesis {
                name,
                rule,
                quorum,
                creator_name,
                creator_needs,
            } => {
                f.push(("name", s(name)));
                f.push(("rule", s(rule.as_str())));
                f.push(("quorum", ScalarValue::Uint(*quorum)));
                f.push(("creator_name", s(creator_name)));
                f.push(("creator_needs", s(creator_needs)));
            }
            Body::MemberAdd {
                member,
                name,
                needs,
            } => {
                f.push(("member", id(member)));
                f.push(("name", s(name)));
                f.push(("needs", s(needs)));
            }
            Body::MemberLeave => {}
            Body::MemberRemove { member, decision } => {
                f.push(("member", id(member)));
                f.push(("decision", id(decision)));
            }
            Body::Thread { title } => f.push(("title", s(title))),
            Body::Message { thread, text } => {
                f.push(("thread", id(thread)));
                f.push(("text", s(text)));
            }
            Body::Proposal {
                thread,
                title,
                text,
                easy_read,
                rule,
                quorum,
                effect,
                closes,
            } => {
                f.push(("thread", id(thread)));
                f.push(("title", s(title)));
                f.push(("text", s(text)));
                f.push(("easy_read", s(easy_read)));
                f.push(("rule", s(rule.as_str())));
                f.push(("quorum", ScalarValue::Uint(*quorum)));
                match effect {
                    None => {}
                    Some(Effect::Remove { member }) => f.push(("removes", id(member))),
                    Some(Effect::Add {
                        member,
                        name,
                        needs,
                    }) => {
                        f.push(("adds", id(member)));
                        f.push(("adds_name", s(name)));
                        f.push(("adds_needs", s(needs)));
                    }
                    Some(Effect::Recover {
                        member,
                        device,
                        name,
                        proof,
                    }) => {
                        f.push(("recovers", id(member)));
                        f.push(("recovers_device", id(device)));
                        f.push(("recovers_name", s(name)));
                        f.push(("recovers_proof", ScalarValue::Bytes(proof.to_vec())));
                    }
                    Some(Effect::Auditor { device, name }) => {
                        f.push(("auditor", id(device)));
                        f.push(("auditor_name", s(name)));
                    }
                    Some(Effect::Keeper { device, name }) => {
                        f.push(("keeper", id(device)));
                        f.push(("keeper_name", s(name)));
                    }
                    Some(Effect::KeeperRemove { device }) => {
                        f.push(("unkeeps", id(device)));
                    }
                    Some(Effect::Policy { rule, quorum }) => {
                        f.push(("sets_rule", s(rule.as_str())));
                        f.push(("sets_quorum", ScalarValue::Uint(*quorum)));
                    }
                }
                if let Some(d) = closes {
                    f.push(("closes", s(d)));
                }
            }
            Body::Stance {
                proposal,
                stance,
                reason,
                on_behalf,
            } => {
                f.push(("proposal", id(proposal)));
                f.push(("stance", s(stance.as_str())));
                f.push(("reason", s(reason)));
                if let Some(m) = on_behalf {
                    f.push(("for", id(m)));
                }
            }
            Body::Outcome {
                proposal,
                outcome,
                decision,
                counts,
            } => {
                f.push(("proposal", id(proposal)));
                f.push(("outcome", s(outcome)));
                f.push(("decision", s(decision.as_str())));
                f.push(("agree", ScalarValue::Uint(counts.agree)));
                f.push(("abstain", ScalarValue::Uint(counts.abstain)));
                f.push(("disagree", ScalarValue::Uint(counts.disagree)));
                f.push(("block", ScalarValue::Uint(counts.block)));
            }
            Body::Understand { target, text } | Body::Correct { target, text } => {
                f.push(("target", id(target)));
                f.push(("text", s(text)));
            }
            Body::Confirm { target } => f.push(("target", id(target))),
            Body::Action {
                thread,
                text,
                owner,
                due,
            } => {
                f.push(("thread", id(thread)));
                f.push(("text", s(text)));
                f.push(("owner", id(owner)));
                if let Some(d) = due {
                    f.push(("due", s(d)));
                }
            }
            Body::ActionDone { action } => f.push(("action", id(action))),
            Body::ActionUndo { done } => f.push(("done", id(done))),
            Body::Profile { enc_key } => f.push(("enc_key", bytes(enc_key))),
            Body::SealedThread {
                title,
                reason,
                commit,
                wraps,
            } => {
                f.push(("title", s(title)));
                f.push(("reason", s(reason)));
                f.push(("commit", bytes(commit)));
                f.push(("wraps", ScalarValue::Bytes(encode_wraps(wraps))));
            }
            Body::ReaderAdd {
                thread,
                member,
                wraps,
            } => {
                f.push(("thread", id(thread)));
                f.push(("member", id(member)));
                f.push(("wraps", ScalarValue::Bytes(encode_epoch_wraps(wraps))));
            }
            Body::Rekey {
                thread,
                removes,
                commit,
                wraps,
            } => {
                f.push(("thread", id(thread)));
                if let Some(m) = removes {
                    f.push(("removes", id(m)));
                }
                f.push(("commit", bytes(commit)));
                f.push(("wraps", ScalarValue::Bytes(encode_wraps(wraps))));
            }
            Body::ReaderAgree { thread, member } => {
                f.push(("thread", id(thread)));
                f.push(("member", id(member)));
            }
            Body::Ask { thread, why } => {
                f.push(("thread", id(thread)));
                f.push(("why", s(why)));
            }
            Body::Decline {
                thread,
                member,
                reason,
            } => {
                f.push(("thread", id(thread)));
                f.push(("member", id(member)));
                f.push(("reason", s(reason)));
            }
            Body::Sealed { thread, epoch, ct } => {
                f.push(("thread", id(thread)));
                f.push(("epoch", id(epoch)));
                f.push(("ct", ScalarValue::Bytes(ct.clone())));
            }
            Body::AuditorAdd { device, name } => {
                f.push(("device", id(device)));
                f.push(("name", s(name)));
            }
            Body::About { name, needs } => {
                f.push(("name", s(name)));
                f.push(("needs", s(needs)));
            }
            Body::DeviceAdd {
                device,
                name,
                proof,
            } => {
                f.push(("device", id(device)));
                f.push(("name", s(name)));
                f.push(("proof", ScalarValue::Bytes(proof.clone())));
            }
            Body::DeviceRevoke { device } => f.push(("device", id(device))),
        }
        f
    }

    /// Checks the limits every record must keep (text sizes). The rules that need the record's
    /// context live in `rules.rs`.
    pub fn check_limits(&self) -> Result<(), ShapeError> {
        for (_, v) in self.fields() {
            match v {
                ScalarValue::Str(s) if s.len() > MAX_TEXT => return Err(ShapeError::TooLong),
                ScalarValue::Bytes(b) if b.len() > MAX_BYTES => return Err(ShapeError::TooLong),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Container name → the op id (counter, actor) the genesis change gave it.
pub type Containers = BTreeMap<String, (u64, DeviceId)>;

/// The key a record of `actor` at `seq` must have in its container.
pub fn record_key(actor: &DeviceId, seq: u64) -> String {
    format!("{actor}.{seq}")
}

/// What the author of a new change must say about where it sits in the document.
pub struct ChangeFrame {
    /// The author's device.
    pub actor: DeviceId,
    /// The author's sequence number: 1 + their previous entry's, 1 for their first.
    pub seq: u64,
    /// The first operation's counter: above every counter in the change's past.
    pub start_op: NonZeroU64,
    /// The entries it builds on (the author's heads); empty only for a genesis.
    pub deps: Vec<EntryId>,
    /// The author's clock, in milliseconds since the Unix epoch (informational only).
    pub time_ms: i64,
}

/// Builds the raw change bytes of a record. `containers` maps container names to the op ids the
/// genesis change gave them (empty for the genesis itself).
pub fn build_change(
    body: &Body,
    frame: &ChangeFrame,
    containers: &Containers,
) -> Result<automerge::Change, ShapeError> {
    body.check_limits()?;
    let actor = ActorId::from(frame.actor.0.as_slice());
    let start = frame.start_op.get();
    let mut ops = Vec::new();
    let mut put = |obj: ObjectId, key: &str, action: OpType| {
        ops.push(Op {
            action,
            obj,
            key: Key::Map(SmolStr::from(key)),
            pred: SortedVec::new(),
            insert: false,
        });
    };
    let (container_obj, key) = match body {
        Body::Genesis { .. } => (ObjectId::Root, "group".to_string()),
        _ => {
            let (ctr, a) = containers
                .get(body.container())
                .ok_or_else(|| shape("the group has no such container"))?;
            (
                ObjectId::Id(OpId(*ctr, ActorId::from(a.0.as_slice()))),
                record_key(&frame.actor, frame.seq),
            )
        }
    };
    put(container_obj, &key, OpType::Make(ObjType::Map));
    let rec = ObjectId::Id(OpId(start, actor.clone()));
    for (k, v) in body.fields() {
        put(rec.clone(), k, OpType::Put(v));
    }
    if matches!(body, Body::Genesis { .. }) {
        for c in CONTAINERS {
            put(ObjectId::Root, c, OpType::Make(ObjType::Map));
        }
    }
    let expanded = automerge::ExpandedChange {
        operations: ops,
        actor_id: actor,
        hash: None,
        seq: frame.seq,
        start_op: frame.start_op,
        time: frame.time_ms,
        message: None,
        deps: frame.deps.iter().map(|d| (*d).into()).collect(),
        extra_bytes: Vec::new(),
        author: None,
    };
    Ok(automerge::Change::from(expanded))
}

/// Reads the record out of a change's operations and checks its shape (see the module invariant).
///
/// `containers` is empty when the change is expected to be the genesis. Returns the body and, for a
/// genesis, the container op ids it creates.
pub fn decode_change(
    change: &automerge::Change,
    containers: &Containers,
) -> Result<(Body, Containers), ShapeError> {
    // Cheap bound before expanding: a record has at most a dozen fields.
    if change.len() > 32 {
        return Err(shape("too many operations"));
    }
    let expanded = std::panic::catch_unwind(|| change.decode())
        .map_err(|_| shape("operations could not be decoded"))?;
    let actor: [u8; 32] = change
        .actor_id()
        .to_bytes()
        .try_into()
        .map_err(|_| shape("actor is not 32 bytes"))?;
    let actor = DeviceId(actor);
    let start = change.start_op().get();
    let own = |obj: &ObjectId| matches!(obj, ObjectId::Id(OpId(c, a)) if *c == start && a.to_bytes() == actor.0);
    let mut ops = expanded.operations.iter();
    let first = ops.next().ok_or_else(|| shape("no operations"))?;
    let genesis = containers.is_empty();
    if !first.pred.is_empty() || first.insert || first.action != OpType::Make(ObjType::Map) {
        return Err(shape("the first operation must make a new map"));
    }
    let expected_key = if genesis {
        "group".to_string()
    } else {
        record_key(&actor, change.seq())
    };
    if first.key != Key::Map(SmolStr::from(expected_key.as_str())) {
        return Err(shape(
            "the record is not at the key its author and sequence number give",
        ));
    }
    let container_name = match (&first.obj, genesis) {
        (ObjectId::Root, true) => "group".to_string(),
        (ObjectId::Id(OpId(c, a)), false) => containers
            .iter()
            .find(|(_, (cc, ca))| cc == c && a.to_bytes() == ca.0)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| shape("the record is not in one of the group's containers"))?,
        _ => return Err(shape("the record is not in one of the group's containers")),
    };
    let mut fields: BTreeMap<String, ScalarValue> = BTreeMap::new();
    let mut created = BTreeMap::new();
    let mut op_counter = start;
    for op in ops {
        op_counter += 1;
        if !op.pred.is_empty() || op.insert {
            return Err(shape("a record may not overwrite, delete or insert"));
        }
        let Key::Map(k) = &op.key else {
            return Err(shape("a record only has named fields"));
        };
        match (&op.action, own(&op.obj)) {
            (OpType::Put(v), true) => {
                if fields.insert(k.to_string(), v.clone()).is_some() {
                    return Err(shape("a field is written twice"));
                }
            }
            (OpType::Make(ObjType::Map), false) if genesis && op.obj == ObjectId::Root => {
                if !CONTAINERS.contains(&k.as_str())
                    || created.insert(k.to_string(), (op_counter, actor)).is_some()
                {
                    return Err(shape("the genesis makes an unknown or repeated container"));
                }
            }
            _ => {
                return Err(shape(
                    "a record may only put plain values into its own new map",
                ));
            }
        }
    }
    if genesis && created.len() != CONTAINERS.len() {
        return Err(shape("the genesis must make every container"));
    }
    let body = body_from_fields(&fields)?;
    if body.container() != container_name {
        return Err(shape("the record is in the wrong container for its type"));
    }
    if matches!(body, Body::Genesis { .. }) != genesis {
        return Err(shape("only the first entry of a group may be a genesis"));
    }
    body.check_limits()?;
    Ok((body, created))
}

fn body_from_fields(f: &BTreeMap<String, ScalarValue>) -> Result<Body, ShapeError> {
    let str_of = |k: &'static str| -> Result<String, ShapeError> {
        match f.get(k) {
            Some(ScalarValue::Str(s)) => Ok(s.to_string()),
            _ => Err(ShapeError::Field(k)),
        }
    };
    let ty = match f.get("type") {
        Some(ScalarValue::Str(s)) => s.to_string(),
        _ => return Err(ShapeError::Field("type")),
    };
    // Optional fields are absent rather than empty.
    let opt = |k: &'static str| -> Option<&ScalarValue> { f.get(k) };
    let uint = |k: &'static str| -> Result<u64, ShapeError> {
        match f.get(k) {
            Some(ScalarValue::Uint(n)) => Ok(*n),
            _ => Err(ShapeError::Field(k)),
        }
    };
    let bytes_of = |k: &'static str| -> Result<&[u8], ShapeError> {
        match f.get(k) {
            Some(ScalarValue::Bytes(b)) if b.len() <= MAX_BYTES => Ok(b.as_slice()),
            _ => Err(ShapeError::Field(k)),
        }
    };
    let b32 = |k: &'static str| -> Result<[u8; 32], ShapeError> {
        bytes_of(k)?.try_into().map_err(|_| ShapeError::Field(k))
    };
    let b64 = |k: &'static str| -> Result<Vec<u8>, ShapeError> {
        let b = bytes_of(k)?;
        if b.len() != 64 {
            return Err(ShapeError::Field(k));
        }
        Ok(b.to_vec())
    };
    fn parse_id<T: std::str::FromStr>(s: String, k: &'static str) -> Result<T, ShapeError> {
        s.parse().map_err(|_| ShapeError::Field(k))
    }
    let opt_id = |k: &'static str| -> Result<Option<DeviceId>, ShapeError> {
        match opt(k) {
            None => Ok(None),
            Some(ScalarValue::Str(s)) => s.parse().map(Some).map_err(|_| ShapeError::Field(k)),
            Some(_) => Err(ShapeError::Field(k)),
        }
    };
    let body = match ty.as_str() {
        "group" => Body::Genesis {
            name: str_of("name")?,
            rule: Rule::parse(&str_of("rule")?).ok_or(ShapeError::Field("rule"))?,
            quorum: uint("quorum")?,
            creator_name: str_of("creator_name")?,
            creator_needs: str_of("creator_needs")?,
        },
        "member.add" => Body::MemberAdd {
            member: parse_id(str_of("member")?, "member")?,
            name: str_of("name")?,
            needs: str_of("needs")?,
        },
        "member.leave" => Body::MemberLeave,
        "member.remove" => Body::MemberRemove {
            member: parse_id(str_of("member")?, "member")?,
            decision: parse_id(str_of("decision")?, "decision")?,
        },
        "thread" => Body::Thread {
            title: str_of("title")?,
        },
        "message" => Body::Message {
            thread: parse_id(str_of("thread")?, "thread")?,
            text: str_of("text")?,
        },
        "proposal" => Body::Proposal {
            thread: parse_id(str_of("thread")?, "thread")?,
            title: str_of("title")?,
            text: str_of("text")?,
            easy_read: str_of("easy_read")?,
            rule: Rule::parse(&str_of("rule")?).ok_or(ShapeError::Field("rule"))?,
            quorum: uint("quorum")?,
            closes: match opt("closes") {
                None => None,
                Some(ScalarValue::Str(s)) => Some(s.to_string()),
                Some(_) => return Err(ShapeError::Field("closes")),
            },
            effect: {
                let adds = opt_id("adds")?;
                let removes = opt_id("removes")?;
                let auditor = opt_id("auditor")?;
                let recovers = opt_id("recovers")?;
                let keeper = opt_id("keeper")?;
                let unkeeps = opt_id("unkeeps")?;
                let sets = opt("sets_rule").is_some();
                let n = [
                    adds.is_some(),
                    removes.is_some(),
                    auditor.is_some(),
                    recovers.is_some(),
                    keeper.is_some(),
                    unkeeps.is_some(),
                    sets,
                ]
                .iter()
                .filter(|x| **x)
                .count();
                if n > 1 {
                    return Err(shape("a proposal may make at most one change to the group"));
                }
                if let Some(member) = adds {
                    Some(Effect::Add {
                        member,
                        name: str_of("adds_name")?,
                        needs: str_of("adds_needs")?,
                    })
                } else if let Some(member) = removes {
                    Some(Effect::Remove { member })
                } else if let Some(member) = recovers {
                    let proof: [u8; 64] = bytes_of("recovers_proof")?
                        .try_into()
                        .map_err(|_| ShapeError::Field("recovers_proof"))?;
                    Some(Effect::Recover {
                        member,
                        device: parse_id(str_of("recovers_device")?, "recovers_device")?,
                        name: str_of("recovers_name")?,
                        proof,
                    })
                } else if let Some(device) = auditor {
                    Some(Effect::Auditor {
                        device,
                        name: str_of("auditor_name")?,
                    })
                } else if let Some(device) = keeper {
                    Some(Effect::Keeper {
                        device,
                        name: str_of("keeper_name")?,
                    })
                } else if let Some(device) = unkeeps {
                    Some(Effect::KeeperRemove { device })
                } else if sets {
                    Some(Effect::Policy {
                        rule: Rule::parse(&str_of("sets_rule")?)
                            .ok_or(ShapeError::Field("sets_rule"))?,
                        quorum: uint("sets_quorum")?,
                    })
                } else {
                    None
                }
            },
        },
        "stance" => Body::Stance {
            proposal: parse_id(str_of("proposal")?, "proposal")?,
            stance: StanceKind::parse(&str_of("stance")?).ok_or(ShapeError::Field("stance"))?,
            reason: str_of("reason")?,
            on_behalf: opt_id("for")?,
        },
        "outcome" => Body::Outcome {
            proposal: parse_id(str_of("proposal")?, "proposal")?,
            outcome: str_of("outcome")?,
            decision: Decision::parse(&str_of("decision")?).ok_or(ShapeError::Field("decision"))?,
            counts: Counts {
                agree: uint("agree")?,
                abstain: uint("abstain")?,
                disagree: uint("disagree")?,
                block: uint("block")?,
            },
        },
        "understand" => Body::Understand {
            target: parse_id(str_of("target")?, "target")?,
            text: str_of("text")?,
        },
        "confirm" => Body::Confirm {
            target: parse_id(str_of("target")?, "target")?,
        },
        "correct" => Body::Correct {
            target: parse_id(str_of("target")?, "target")?,
            text: str_of("text")?,
        },
        "action" => Body::Action {
            thread: parse_id(str_of("thread")?, "thread")?,
            text: str_of("text")?,
            owner: parse_id(str_of("owner")?, "owner")?,
            due: match opt("due") {
                None => None,
                Some(ScalarValue::Str(s)) => Some(s.to_string()),
                Some(_) => return Err(ShapeError::Field("due")),
            },
        },
        "action.done" => Body::ActionDone {
            action: parse_id(str_of("action")?, "action")?,
        },
        "action.undo" => Body::ActionUndo {
            done: parse_id(str_of("done")?, "done")?,
        },
        "profile" => Body::Profile {
            enc_key: b32("enc_key")?,
        },
        "thread.sealed" => Body::SealedThread {
            title: str_of("title")?,
            reason: str_of("reason")?,
            commit: b32("commit")?,
            wraps: decode_wraps(bytes_of("wraps")?)?,
        },
        "thread.reader.add" => Body::ReaderAdd {
            thread: parse_id(str_of("thread")?, "thread")?,
            member: parse_id(str_of("member")?, "member")?,
            wraps: decode_epoch_wraps(bytes_of("wraps")?)?,
        },
        "thread.rekey" => Body::Rekey {
            thread: parse_id(str_of("thread")?, "thread")?,
            removes: opt_id("removes")?,
            commit: b32("commit")?,
            wraps: decode_wraps(bytes_of("wraps")?)?,
        },
        "thread.reader.agree" => Body::ReaderAgree {
            thread: parse_id(str_of("thread")?, "thread")?,
            member: parse_id(str_of("member")?, "member")?,
        },
        "thread.ask" => Body::Ask {
            thread: parse_id(str_of("thread")?, "thread")?,
            why: str_of("why")?,
        },
        "thread.decline" => Body::Decline {
            thread: parse_id(str_of("thread")?, "thread")?,
            member: parse_id(str_of("member")?, "member")?,
            reason: str_of("reason")?,
        },
        "auditor.add" => Body::AuditorAdd {
            device: parse_id(str_of("device")?, "device")?,
            name: str_of("name")?,
        },
        "member.about" => Body::About {
            name: str_of("name")?,
            needs: str_of("needs")?,
        },
        "device.add" => Body::DeviceAdd {
            device: parse_id(str_of("device")?, "device")?,
            name: str_of("name")?,
            proof: b64("proof")?,
        },
        "device.revoke" => Body::DeviceRevoke {
            device: parse_id(str_of("device")?, "device")?,
        },
        "message.sealed" => Body::Sealed {
            thread: parse_id(str_of("thread")?, "thread")?,
            epoch: parse_id(str_of("epoch")?, "epoch")?,
            ct: bytes_of("ct")?.to_vec(),
        },
        other => return Err(ShapeError::Type(other.chars().take(40).collect())),
    };
    // The fields must be exactly the canonical encoding of the body: no unknown, missing or retyped field.
    let canonical: BTreeMap<String, ScalarValue> = body
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if &canonical != f {
        return Err(shape("the record's fields are not in their canonical form"));
    }
    Ok(body)
}

#[cfg(test)]
mod recover_shape_tests {
    use super::*;

    fn recovery() -> Body {
        proposal(Some(Effect::Recover {
            member: DeviceId([2; 32]),
            device: DeviceId([3; 32]),
            name: "Ana's new phone".into(),
            proof: [7; 64],
        }))
    }

    fn proposal(effect: Option<Effect>) -> Body {
        Body::Proposal {
            thread: EntryId([1; 32]),
            title: "Ana gets a new device".into(),
            text: String::new(),
            easy_read: "Should Ana's new device take her seat?".into(),
            rule: Rule::Consent,
            quorum: 2,
            effect,
            closes: None,
        }
    }

    fn fields_of(b: &Body) -> BTreeMap<String, ScalarValue> {
        b.fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn a_recovery_reads_back_and_a_malformed_one_is_a_typed_shape_error() {
        let b = recovery();
        let f = fields_of(&b);
        assert_eq!(body_from_fields(&f), Ok(b.clone()));
        // The proof is exactly 64 bytes.
        for len in [0, 63, 65] {
            let mut g = f.clone();
            g.insert("recovers_proof".into(), ScalarValue::Bytes(vec![7; len]));
            assert_eq!(
                body_from_fields(&g),
                Err(ShapeError::Field("recovers_proof"))
            );
        }
        // Every field of the group is needed, and typed.
        for k in ["recovers_device", "recovers_name", "recovers_proof"] {
            let mut g = f.clone();
            g.remove(k);
            assert_eq!(body_from_fields(&g), Err(ShapeError::Field(k)), "{k}");
        }
        let mut g = f.clone();
        g.insert("recovers_device".into(), ScalarValue::Str("not hex".into()));
        assert_eq!(
            body_from_fields(&g),
            Err(ShapeError::Field("recovers_device"))
        );
        // Alone, a stray field of the group is not an effect; with another effect, two effects.
        let mut g = fields_of(&proposal(None));
        g.insert("recovers_name".into(), ScalarValue::Str("x".into()));
        assert!(matches!(body_from_fields(&g), Err(ShapeError::Shape(_))));
        let mut g = f.clone();
        g.insert(
            "removes".into(),
            ScalarValue::Str(DeviceId([4; 32]).to_string().into()),
        );
        assert!(matches!(body_from_fields(&g), Err(ShapeError::Shape(_))));
    }

    #[test]
    fn a_recovery_round_trips_through_serde() {
        let Body::Proposal {
            effect: Some(e), ..
        } = recovery()
        else {
            unreachable!("a recovery proposal");
        };
        let bytes = postcard::to_allocvec(&e).expect("serializes");
        assert_eq!(postcard::from_bytes::<Effect>(&bytes).ok(), Some(e.clone()));
        let json = serde_json::to_string(&e).expect("serializes");
        assert_eq!(serde_json::from_str::<Effect>(&json).ok(), Some(e));
        // A proof of another length is refused, not cut or padded.
        let short = json.replacen("7,", "", 1);
        assert!(serde_json::from_str::<Effect>(&short).is_err());
    }
}
