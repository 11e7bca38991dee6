//! The signed entry: verbatim Automerge change bytes plus an ed25519 signature.
//!
//! Byte layout (see `docs/format.md`):
//! ```text
//! entry   := doc_kind:u8 [doc_id:32 if doc_kind = 2] signature:64 change_len:u32le change:change_len
//! message := "roundtable/entry/v1" || group_id:32 || doc_id:32 || change_hash:32
//! ```
//! **Invariant:** the change bytes are stored and relayed exactly as signed; nothing is ever re-encoded.

use crate::change::{MAX_CHANGE_BYTES, ParsedChange, parse_change};
use crate::id::{DeviceId, EntryId, GroupId};
use crate::identity::DeviceKey;
use crate::signature::{self, Item, Refusal};

/// Domain-separation tag of the signed message.
pub const ENTRY_TAG: &[u8] = b"roundtable/entry/v1";
/// `doc_kind` byte: the group's public document, whose doc id is the group id.
pub const DOC_PUBLIC: u8 = 1;
/// `doc_kind` byte: another document, named by the 32 bytes that follow. Reserved: no version writes
/// it (sealed threads travel inside public entries, see `crate::sealed`), and the record refuses it.
pub const DOC_OTHER: u8 = 2;
/// Largest encoded entry.
pub const MAX_ENTRY_BYTES: usize = 1 + 32 + 64 + 4 + MAX_CHANGE_BYTES;

/// Which Automerge document of a group an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocRef {
    /// The public record every member and auditor reads.
    Public,
    /// Another document (reserved; refused by the record).
    Other([u8; 32]),
}

impl DocRef {
    /// The 32-byte document id that goes into the signed message.
    pub fn doc_id(&self, group: &GroupId) -> [u8; 32] {
        match self {
            DocRef::Public => group.0,
            DocRef::Other(id) => *id,
        }
    }
}

/// A signed entry as it travels and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The document it belongs to; outside the signature except through the doc id it implies.
    pub doc: DocRef,
    /// The author's ed25519 signature (`R || S`) of the signed message (`signing_message`).
    pub signature: [u8; 64],
    /// The raw Automerge change chunk, exactly as signed; never rebuilt.
    pub change: Vec<u8>,
}

/// Why bytes could not be read as an entry. The caller keeps everything it already had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end inside the entry; how many more were needed.
    #[error("the entry ends early: {0} more bytes were expected")]
    Truncated(usize),
    /// The first byte is neither [`DOC_PUBLIC`] nor [`DOC_OTHER`].
    #[error(
        "unknown document kind {0} (this program reads kinds 1 and 2; a newer version may have written it)"
    )]
    DocKind(u8),
    /// The change length field is over [`MAX_CHANGE_BYTES`] (checked before allocating).
    #[error("the entry says its change is {0} bytes; the most allowed is {MAX_CHANGE_BYTES}")]
    TooLarge(u64),
    /// Bytes left over after one whole entry.
    #[error("{0} unexpected bytes after the entry")]
    Trailing(usize),
}

/// Why a signature check failed (the rule is `docs/format.md`, "Signature rule").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The change's actor id is not a point of the curve.
    #[error("the change's author is not a valid device key")]
    BadKey,
    /// The change's actor id is a point, but not written in its one canonical encoding.
    #[error("the change's author is not a device key in its canonical encoding")]
    NonCanonicalKey,
    /// The change's actor id is a point of small order: a signature under it proves nothing.
    #[error(
        "the change's author is a key of small order, which no device makes and which could sign anything"
    )]
    SmallOrderKey,
    /// The signature fails the signature rule against the change's actor, and no known key made it.
    #[error(
        "the signature does not match the author's key (a forged or damaged entry, or one from another group)"
    )]
    Mismatch,
    #[error("the change's author is {actor}, but the entry was signed by {signer}")]
    /// Another known device signed it: the change claims an author who did not sign it.
    WrongActor {
        /// The author the change claims.
        actor: DeviceId,
        /// The device whose key the signature verifies with.
        signer: DeviceId,
    },
}

impl From<Refusal> for SignatureError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotAPoint => SignatureError::BadKey,
            Refusal::NonCanonicalKey => SignatureError::NonCanonicalKey,
            Refusal::SmallOrderKey => SignatureError::SmallOrderKey,
            Refusal::Mismatch => SignatureError::Mismatch,
        }
    }
}

/// The exact bytes a device signs for a change.
pub fn signing_message(group: &GroupId, doc_id: &[u8; 32], change_hash: &EntryId) -> Vec<u8> {
    let mut m = Vec::with_capacity(ENTRY_TAG.len() + 96);
    m.extend_from_slice(ENTRY_TAG);
    m.extend_from_slice(&group.0);
    m.extend_from_slice(doc_id);
    m.extend_from_slice(&change_hash.0);
    m
}

/// The domain of a new device's proof that it asked to be a member's ([`Body::DeviceAdd`]).
///
/// [`Body::DeviceAdd`]: crate::Body::DeviceAdd
pub const DEVICE_TAG: &[u8] = b"roundtable/device/v1";

/// The exact bytes a new device signs to ask to be `member`'s device in `group`:
/// `"roundtable/device/v1" || group_id:32 || member_id:32 || device_id:32`. Never a prefix of an
/// entry's signed message (the tags differ), so no proof is an entry signature or the reverse.
pub fn device_link_message(group: &GroupId, member: &DeviceId, device: &DeviceId) -> Vec<u8> {
    let mut m = Vec::with_capacity(DEVICE_TAG.len() + 96);
    m.extend_from_slice(DEVICE_TAG);
    m.extend_from_slice(&group.0);
    m.extend_from_slice(&member.0);
    m.extend_from_slice(&device.0);
    m
}

impl DeviceKey {
    /// This device's proof that it asks to be `member`'s device in `group`: what the member's
    /// existing device puts in the `device.add` it writes.
    pub fn link_proof(&self, group: &GroupId, member: &DeviceId) -> [u8; 64] {
        self.sign(&device_link_message(group, member, &self.device_id()))
    }
}

impl Entry {
    /// Signs raw change bytes. `group` is the group id; for a genesis change it is the change's own hash.
    pub fn sign(
        key: &DeviceKey,
        group: &GroupId,
        doc: DocRef,
        change: Vec<u8>,
        hash: &EntryId,
    ) -> Entry {
        let signature = key.sign(&signing_message(group, &doc.doc_id(group), hash));
        Entry {
            doc,
            signature,
            change,
        }
    }

    /// Appends the encoded entry to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self.doc {
            DocRef::Public => out.push(DOC_PUBLIC),
            DocRef::Other(id) => {
                out.push(DOC_OTHER);
                out.extend_from_slice(&id);
            }
        }
        out.extend_from_slice(&self.signature);
        // MAX_CHANGE_BYTES < u32::MAX, and entries are only built from bounded changes.
        out.extend_from_slice(&(self.change.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.change);
    }

    /// The encoded entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut v);
        v
    }

    /// Length of [`Entry::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let doc = match self.doc {
            DocRef::Public => 1,
            DocRef::Other(_) => 33,
        };
        doc + 64 + 4 + self.change.len()
    }

    /// Reads one entry from the front of `bytes`; returns it and the number of bytes used.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Entry, usize), DecodeError> {
        let mut r = Reader { b: bytes, at: 0 };
        let doc = match r.take(1)?[0] {
            DOC_PUBLIC => DocRef::Public,
            DOC_OTHER => DocRef::Other(
                r.take(32)?
                    .try_into()
                    .map_err(|_| DecodeError::Truncated(32))?,
            ),
            k => return Err(DecodeError::DocKind(k)),
        };
        let signature: [u8; 64] = r
            .take(64)?
            .try_into()
            .map_err(|_| DecodeError::Truncated(64))?;
        let len = u32::from_le_bytes(
            r.take(4)?
                .try_into()
                .map_err(|_| DecodeError::Truncated(4))?,
        );
        if len as usize > MAX_CHANGE_BYTES {
            return Err(DecodeError::TooLarge(len.into()));
        }
        let change = r.take(len as usize)?.to_vec();
        Ok((
            Entry {
                doc,
                signature,
                change,
            },
            r.at,
        ))
    }

    /// Reads exactly one entry.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let (e, used) = Self::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - used));
        }
        Ok(e)
    }

    /// Parses the change (bounds, checksum, Automerge decoding). Does not check the signature.
    pub fn parse(&self) -> Result<ParsedChange, crate::change::ChangeError> {
        parse_change(&self.change)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = &self.b[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(DecodeError::Truncated(self.at + n - self.b.len())),
        }
    }
}

/// Checks an entry's signature by the signature rule ([`signature::verify`]) against the change's
/// own actor.
///
/// When that fails and `candidates` (known device keys) holds the key that did sign, the error names
/// it: the change claims one author but was signed by another.
pub fn validate_signature(
    entry: &Entry,
    parsed: &ParsedChange,
    group: &GroupId,
    candidates: &[DeviceId],
) -> Result<(), SignatureError> {
    let msg = signing_message(group, &entry.doc.doc_id(group), &parsed.hash);
    match signature::verify(&parsed.actor, &msg, &entry.signature) {
        Ok(()) => return Ok(()),
        Err(Refusal::Mismatch) => {}
        Err(key) => return Err(key.into()),
    }
    for c in candidates.iter().filter(|c| c.0 != parsed.actor) {
        if signature::verify(&c.0, &msg, &entry.signature).is_ok() {
            return Err(SignatureError::WrongActor {
                actor: DeviceId(parsed.actor),
                signer: *c,
            });
        }
    }
    Err(SignatureError::Mismatch)
}

/// [`validate_signature`] with no candidates, for many entries at once ([`signature::verify_batch`]):
/// for each entry, in order, exactly the verdict `validate_signature(entry, parsed, group, &[])` gives.
pub fn validate_signatures(
    group: &GroupId,
    entries: &[(&Entry, &ParsedChange)],
) -> Vec<Result<(), SignatureError>> {
    let mut out = Vec::with_capacity(entries.len());
    // A batch's messages are built just before it is checked: little memory, warm caches.
    for chunk in entries.chunks(signature::BATCH) {
        let msgs: Vec<Vec<u8>> = chunk
            .iter()
            .map(|(e, p)| signing_message(group, &e.doc.doc_id(group), &p.hash))
            .collect();
        let items: Vec<Item<'_>> = chunk
            .iter()
            .zip(&msgs)
            .map(|((e, p), msg)| Item {
                key: &p.actor,
                msg,
                sig: &e.signature,
            })
            .collect();
        out.extend(
            signature::verify_batch(&items)
                .into_iter()
                .map(|r| r.map_err(SignatureError::from)),
        );
    }
    out
}
