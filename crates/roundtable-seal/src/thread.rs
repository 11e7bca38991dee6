//! A sealed thread from a member's side: start it, add or remove readers, write and read messages.
//!
//! Every function here returns a [`Body`] for the caller to sign and store like any other entry;
//! the record's rules then check it exactly as every other device will.
//!
//! **Invariant (what a reader accepts):** a sealed message is shown only if it opens under its
//! epoch's key with the AAD of its own group, thread, epoch, author and sequence number (so a moved or
//! replayed ciphertext does not open), its padding is canonical, its inner change is by the entry's
//! signer, at the next position in that author's chain of sealed messages in this thread, builds on
//! the author's previous one, and has exactly the shape of a message. All readers who hold the same
//! entries reach the same verdict.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU64;

use automerge::{Automerge, ChangeHash};
use roundtable_core::body::Body;
use roundtable_core::record::{Epoch, Record, SealedState};
use roundtable_core::sealed::{
    self, EpochWrap, InnerFrame, Wrap, key_commitment, message_aad, wrap_info,
};
use roundtable_core::{DeviceId, EntryId, MemberId};
use zeroize::Zeroizing;

use crate::wrap::EncSecret;
use crate::{SealError, aead, pad, wrap};

/// The epoch keys this device has opened, and where its own chain of sealed messages ends.
pub struct Keyring {
    me: MemberId,
    secret: EncSecret,
    keys: HashMap<EntryId, Zeroizing<[u8; 32]>>,
    /// Per thread: (my sealed messages so far, the last one's inner hash and highest op).
    tips: HashMap<EntryId, (u64, ChangeHash, u64)>,
}

impl Keyring {
    /// An empty keyring for member `me`, who unwraps epoch keys with `secret` (or the secret it
    /// replaced, [`EncSecret::with_previous`]). Keys are opened on first use and kept (zeroed on
    /// drop) for the keyring's life.
    pub fn new(me: MemberId, secret: &EncSecret) -> Self {
        Keyring {
            me,
            secret: secret.clone(),
            keys: HashMap::new(),
            tips: HashMap::new(),
        }
    }

    /// The epoch's key, if this device was given it. The key must match the epoch's public commitment.
    fn key(
        &mut self,
        rec: &Record,
        epoch: &Epoch,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, SealError> {
        if let Some(k) = self.keys.get(&epoch.id) {
            return Ok(Some(k.clone()));
        }
        let Some((pk, enc, ct)) = epoch.wraps.get(&self.me) else {
            return Ok(None);
        };
        let secret = if *pk == self.secret.public()? {
            self.secret.clone()
        } else {
            match self.secret.previous() {
                Some(old) if *pk == old.public()? => old,
                // Sealed to an encryption key this device does not have (any more, or yet).
                _ => return Ok(None),
            }
        };
        let info = wrap_info(&rec.group(), &self.me, &epoch.commit);
        let key = wrap::unwrap(&secret, enc, &info, ct)?;
        if key_commitment(&key) != epoch.commit {
            return Err(SealError::Damaged);
        }
        self.keys.insert(epoch.id, key.clone());
        Ok(Some(key))
    }
}

fn fresh_key() -> Result<Zeroizing<[u8; 32]>, SealError> {
    Ok(Zeroizing::new(crate::random()?))
}

/// Wraps `key` for each reader, sealed to the encryption key their profile publishes.
fn wraps_for(
    rec: &Record,
    readers: &BTreeSet<MemberId>,
    key: &[u8; 32],
    commit: &[u8; 32],
) -> Result<Vec<Wrap>, SealError> {
    readers
        .iter()
        .map(|m| {
            let pk = rec.profile_key(m).ok_or(SealError::NoKey(*m))?;
            let (enc, ct) = wrap::wrap(&pk, &wrap_info(&rec.group(), m, commit), key)?;
            Ok(Wrap {
                member: *m,
                key: pk,
                enc,
                ct,
            })
        })
        .collect()
}

/// A new sealed thread with these readers (the author must be one of them) and its public reason.
pub fn start(
    rec: &Record,
    title: &str,
    reason: &str,
    readers: &[MemberId],
) -> Result<Body, SealError> {
    let readers: BTreeSet<MemberId> = readers.iter().copied().collect();
    let key = fresh_key()?;
    let commit = key_commitment(&key);
    Ok(Body::SealedThread {
        title: title.to_string(),
        reason: reason.to_string(),
        commit,
        wraps: wraps_for(rec, &readers, &key, &commit)?,
    })
}

/// A new epoch for the readers there are now, without `removes` if given: whoever is not a reader
/// after it cannot read anything written under it.
pub fn rekey(rec: &Record, thread: &EntryId, removes: Option<MemberId>) -> Result<Body, SealError> {
    let info = rec
        .sealed_thread(thread)
        .ok_or(SealError::NotSealed(*thread))?;
    let mut next = info.state.readers.clone();
    if let Some(m) = &removes {
        next.remove(m);
    }
    let key = fresh_key()?;
    let commit = key_commitment(&key);
    Ok(Body::Rekey {
        thread: *thread,
        removes,
        commit,
        wraps: wraps_for(rec, &next, &key, &commit)?,
    })
}

/// Makes `member` a reader: every epoch's key, wrapped for them, so they read the whole history.
/// The record takes it only once every other reader has agreed (`thread.reader.agree`, rule S32).
pub fn add_reader(
    rec: &Record,
    keys: &mut Keyring,
    thread: &EntryId,
    member: &MemberId,
) -> Result<Body, SealError> {
    let info = rec
        .sealed_thread(thread)
        .ok_or(SealError::NotSealed(*thread))?;
    if !info.state.readers.contains(&keys.me) {
        return Err(SealError::NotReader);
    }
    if !info.state.readers.contains(member) && info.state.readers.len() >= sealed::MAX_READERS {
        return Err(SealError::TooManyReaders(sealed::MAX_READERS));
    }
    let pk = rec.profile_key(member).ok_or(SealError::NoKey(*member))?;
    let mut wraps = Vec::new();
    for e in &info.state.epochs {
        let key = keys.key(rec, e)?.ok_or(SealError::MissingEpoch)?;
        let (enc, ct) = wrap::wrap(&pk, &wrap_info(&rec.group(), member, &e.commit), &key)?;
        wraps.push(EpochWrap {
            epoch: e.id,
            key: pk,
            enc,
            ct,
        });
    }
    wraps.sort_by_key(|w| w.epoch);
    Ok(Body::ReaderAdd {
        thread: *thread,
        member: *member,
        wraps,
    })
}

/// The keys other readers of `thread` lack and this device holds, each as a `thread.reader.add`
/// for that reader with exactly those epochs (format.md section 10). A reader added at the same
/// moment as a new key was made lacks that key; any reader's device that holds it sends it, so
/// nobody has to notice. Readers whose published key is not yet known are skipped.
pub fn missing_keys(
    rec: &Record,
    keys: &mut Keyring,
    thread: &EntryId,
) -> Result<Vec<Body>, SealError> {
    let info = rec
        .sealed_thread(thread)
        .ok_or(SealError::NotSealed(*thread))?;
    if !info.state.readers.contains(&keys.me) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for member in &info.state.readers {
        let Some(pk) = rec.profile_key(member) else {
            continue;
        };
        let mut wraps = Vec::new();
        for e in info
            .state
            .epochs
            .iter()
            .filter(|e| e.wraps.get(member).map(|w| w.0) != Some(pk))
        {
            // An epoch this device cannot open (not given it, or damaged) is someone else's to send.
            let Ok(Some(key)) = keys.key(rec, e) else {
                continue;
            };
            let (enc, ct) = wrap::wrap(&pk, &wrap_info(&rec.group(), member, &e.commit), &key)?;
            wraps.push(EpochWrap {
                epoch: e.id,
                key: pk,
                enc,
                ct,
            });
        }
        if !wraps.is_empty() {
            wraps.sort_by_key(|w| w.epoch);
            wraps.truncate(sealed::MAX_EPOCHS);
            out.push(Body::ReaderAdd {
                thread: *thread,
                member: *member,
                wraps,
            });
        }
    }
    Ok(out)
}

/// [`missing_keys`] for every sealed thread of the record this device reads.
pub fn all_missing_keys(rec: &Record, keys: &mut Keyring) -> Result<Vec<Body>, SealError> {
    let mut out = Vec::new();
    for t in rec.threads() {
        if rec.sealed_thread(&t).is_some() {
            out.extend(missing_keys(rec, keys, &t)?);
        }
    }
    Ok(out)
}

/// In words, how close a thread is to its limits ([`sealed::MAX_READERS`] readers,
/// [`sealed::MAX_EPOCHS`] keys), once it is within 8 readers or 50 keys of one; `None` before.
pub fn limits_note(state: &SealedState) -> Option<String> {
    let readers = state.readers.len();
    let epochs = state.epochs.len();
    let mut notes = Vec::new();
    if readers + 8 >= sealed::MAX_READERS {
        notes.push(format!(
            "This sealed thread has {readers} readers; it can have at most {}. For more, start another sealed thread.",
            sealed::MAX_READERS
        ));
    }
    if epochs + 50 >= sealed::MAX_EPOCHS {
        notes.push(format!(
            "This sealed thread has had {epochs} keys (a new one each time a reader is removed); it can have at most {}, and then no reader can be removed. Before then, start a new sealed thread.",
            sealed::MAX_EPOCHS
        ));
    }
    (!notes.is_empty()).then(|| notes.join(" "))
}

/// A sealed message written on the device `author` (its member must be a reader) for the thread's
/// current epoch. Fails with [`SealError::NeedsRekey`] when a reader has gone since the key was
/// made: write [`rekey`] first.
pub fn message(
    rec: &Record,
    keys: &mut Keyring,
    thread: &EntryId,
    author: &DeviceId,
    text: &str,
    time_ms: i64,
) -> Result<Body, SealError> {
    // Readers refuse an empty inner message, and everything its author writes after it.
    if text.trim().is_empty() {
        return Err(SealError::Empty);
    }
    // The readers and epochs only (a fold over the thread's few reader changes): writing must not
    // cost in proportion to the thread's length.
    let state = rec
        .sealed_state(thread)
        .ok_or(SealError::NotSealed(*thread))?;
    let member = rec.governance().member_of(author).unwrap_or(*author);
    if !state.readers.contains(&member) {
        return Err(SealError::NotReader);
    }
    let epoch = state.writable_epoch().ok_or(SealError::NeedsRekey)?.clone();
    let key = keys.key(rec, &epoch)?.ok_or(SealError::NotReader)?;
    // Where my chain in this thread ends: from the cache when it is current, else from my last message.
    let mine = rec.sealed_chain(thread, author);
    let count = mine.len() as u64;
    let tip = match keys.tips.get(thread) {
        Some(t) if t.0 == count => Some((t.1, t.2)),
        _ => match mine.last() {
            None => None,
            Some(last) => {
                let m =
                    open_one(rec, keys, &state, thread, last)?.ok_or(SealError::MissingEpoch)?;
                Some((m.1, m.2))
            }
        },
    };
    let frame = InnerFrame {
        actor: *author,
        seq: count + 1,
        start_op: NonZeroU64::new(tip.map(|t| t.1).unwrap_or(0) + 1).ok_or(SealError::Encrypt)?,
        deps: tip.map(|t| vec![t.0]).unwrap_or_default(),
        time_ms,
    };
    let inner = sealed::build_inner(&frame, text)?;
    let aad = message_aad(
        &rec.group(),
        thread,
        &epoch.id,
        &epoch.commit,
        author,
        rec.next_seq(author),
    );
    // The uncompressed change (chunk type 1), the only form a reader accepts: `bytes()` would
    // deflate a long message into a compressed chunk that `open` rejects as malformed.
    let ct = aead::seal(&key, &aad, &pad::pad(inner.raw_bytes())?)?;
    keys.tips
        .insert(*thread, (count + 1, inner.hash(), inner.max_op()));
    Ok(Body::Sealed {
        thread: *thread,
        epoch: epoch.id,
        ct,
    })
}

/// Why a reader does not see a sealed message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreadable {
    /// Written under a key this device was not given (before it was a reader, or after it stopped).
    NotForYou,
    /// It does not open: its ciphertext was changed, moved from another thread, epoch or entry, or
    /// its key does not match the epoch's commitment.
    Damaged,
    /// It opens, but what is inside is not a well-formed message at its place.
    Malformed(String),
    /// It builds on a message of its author that could not be read.
    BuildsOnUnreadable,
}

impl Unreadable {
    /// A short stable name for output and JSON: `not_for_you`, `damaged`, `malformed` or
    /// `builds_on_unreadable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Unreadable::NotForYou => "not_for_you",
            Unreadable::Damaged => "damaged",
            Unreadable::Malformed(_) => "malformed",
            Unreadable::BuildsOnUnreadable => "builds_on_unreadable",
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotForYou => f.write_str("written with a key you were not given"),
            Unreadable::Damaged => f.write_str(
                "it does not open: it was changed, or moved or copied from somewhere else",
            ),
            Unreadable::Malformed(why) => write!(f, "it opens, but is not a proper message: {why}"),
            Unreadable::BuildsOnUnreadable => {
                f.write_str("it follows a message by the same author that could not be read")
            }
        }
    }
}

/// A sealed message as a reader sees it.
#[derive(Debug, Clone)]
pub struct SealedMessage {
    /// The sealed entry's id in the public record.
    pub id: EntryId,
    /// Who wrote it: the member whose device signed the outer entry.
    pub author: MemberId,
    /// The author's timestamp, in milliseconds since the Unix epoch (informational).
    pub time_ms: i64,
    /// The words, decrypted.
    pub text: String,
}

/// A sealed thread as this device can read it.
pub struct ThreadView {
    /// Whether this device is a reader now.
    pub reader: bool,
    /// The messages this device could read, in the record's causal order.
    pub messages: Vec<SealedMessage>,
    /// Every other sealed message of the thread, with why it is not shown.
    pub unreadable: Vec<(EntryId, Unreadable)>,
    /// The thread's own Automerge document, built from the messages that were read.
    pub doc: Automerge,
}

/// Opens one sealed entry: its text, inner hash and highest op, or `None` when not for this device.
/// Checks everything except its place in the author's chain (see [`open`]).
#[allow(clippy::type_complexity)]
fn open_one(
    rec: &Record,
    keys: &mut Keyring,
    state: &SealedState,
    thread: &EntryId,
    id: &EntryId,
) -> Result<Option<(String, ChangeHash, u64, automerge::Change)>, SealError> {
    // The chain, the AAD and the inner change's actor are the writing device's.
    let (Some((_, meta)), Some(author)) = (rec.entry(id), rec.entry_device(id)) else {
        return Err(SealError::Damaged);
    };
    let Body::Sealed { epoch, ct, .. } = &meta.body else {
        return Err(SealError::Damaged);
    };
    let Some(e) = state.epochs.iter().find(|e| e.id == *epoch) else {
        return Err(SealError::Damaged);
    };
    let Some(key) = keys.key(rec, e)? else {
        return Ok(None);
    };
    let aad = message_aad(&rec.group(), thread, epoch, &e.commit, &author, meta.seq);
    open_envelope(&key, &aad, ct, &author).map(Some)
}

/// Opens a sealed message's ciphertext under `key` and `aad` and checks what is inside: canonical
/// padding, a well-formed inner change by `author`, with exactly the shape of a message. Returns its
/// text, inner hash, highest op and the change. Everything a reader decodes after decryption.
#[allow(clippy::type_complexity)]
pub(crate) fn open_envelope(
    key: &[u8; 32],
    aad: &[u8],
    ct: &[u8],
    author: &DeviceId,
) -> Result<(String, ChangeHash, u64, automerge::Change), SealError> {
    let plain = aead::open(key, aad, ct)?;
    let inner = pad::unpad(&plain)?;
    let parsed = roundtable_core::change::parse_change(inner)
        .map_err(|e| SealError::Shape(roundtable_core::body::ShapeError::Shape(e.to_string())))?;
    if parsed.actor != author.0 {
        return Err(SealError::Shape(roundtable_core::body::ShapeError::Shape(
            "the sealed change names another author".into(),
        )));
    }
    let text = sealed::decode_inner(&parsed.change)?;
    let (hash, max_op) = (parsed.change.hash(), parsed.change.max_op());
    Ok((text, hash, max_op, parsed.change))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tip {
    Start,
    Read(ChangeHash),
    Hidden,
    Bad,
}

/// Reads a sealed thread with this device's keys. A non-reader gets an empty view, never an error.
pub fn open(rec: &Record, keys: &mut Keyring, thread: &EntryId) -> Result<ThreadView, SealError> {
    let info = rec
        .sealed_thread(thread)
        .ok_or(SealError::NotSealed(*thread))?;
    let mut view = ThreadView {
        reader: info.state.readers.contains(&keys.me),
        messages: Vec::new(),
        unreadable: Vec::new(),
        doc: Automerge::new(),
    };
    // Per author: how many sealed messages so far, and how the last one went.
    let mut chains: HashMap<DeviceId, (u64, Tip)> = HashMap::new();
    let mut changes = Vec::new();
    for id in &info.entries {
        let (Some((_, meta)), Some(author)) = (rec.entry(id), rec.entry_device(id)) else {
            continue;
        };
        let chain = chains.entry(author).or_insert((0, Tip::Start));
        let prev = chain.1;
        chain.0 += 1;
        let expected_seq = chain.0;
        let verdict = match open_one(rec, keys, &info.state, thread, id) {
            Ok(None) => Err(Unreadable::NotForYou),
            Err(SealError::Damaged) => Err(Unreadable::Damaged),
            Err(SealError::Shape(s)) => Err(Unreadable::Malformed(s.to_string())),
            Err(other) => Err(Unreadable::Malformed(other.to_string())),
            Ok(Some((text, hash, _, change))) => {
                let deps = change.deps().to_vec();
                let place_ok = match prev {
                    Tip::Start => deps.is_empty(),
                    Tip::Read(h) => deps == [h],
                    // Written under a key this device lacks: its hash cannot be checked here.
                    Tip::Hidden => deps.len() == 1,
                    Tip::Bad => false,
                };
                if change.seq() != expected_seq {
                    Err(Unreadable::Malformed(format!(
                        "it says it is message {} of its author here, but it is message {expected_seq}",
                        change.seq()
                    )))
                } else if prev == Tip::Bad {
                    Err(Unreadable::BuildsOnUnreadable)
                } else if !place_ok {
                    Err(Unreadable::Malformed(
                        "it does not build on its author's previous message".into(),
                    ))
                } else {
                    Ok((text, hash, change))
                }
            }
        };
        chains.insert(
            author,
            (
                expected_seq,
                match &verdict {
                    Ok((_, h, _)) => Tip::Read(*h),
                    Err(Unreadable::NotForYou) => Tip::Hidden,
                    Err(_) => Tip::Bad,
                },
            ),
        );
        match verdict {
            Ok((text, _, change)) => {
                changes.push(change);
                view.messages.push(SealedMessage {
                    id: *id,
                    author: rec.governance().member_of(&author).unwrap_or(author),
                    time_ms: meta.time_ms,
                    text,
                });
            }
            Err(why) => view.unreadable.push((*id, why)),
        }
    }
    // Only checked changes reach Automerge; each author's chain is complete up to each of them.
    view.doc
        .apply_changes(changes)
        .map_err(|e| SealError::Shape(roundtable_core::body::ShapeError::Shape(e.to_string())))?;
    Ok(view)
}
