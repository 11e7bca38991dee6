//! The public shape of sealed threads: sizes, the bytes the crypto binds, and the thread's own
//! Automerge changes. No cryptography here (that is `roundtable-seal`); everything in this module is
//! what every device, reader or not, and every auditor can check.
//!
//! A sealed thread is started by a public `thread.sealed` entry naming its readers (by their key wraps)
//! and its reason. Each message in it is a public `message.sealed` entry whose `ct` field holds
//! `nonce:24 || XChaCha20-Poly1305(padded inner change) || tag:16`, where the inner change is a change
//! of the thread's own Automerge document. So a sealed message is signed, stored, relayed, ordered and
//! judged exactly like any other entry, and only the words inside are hidden.
//!
//! **Invariant:** the ciphertext length is `40 + bucket`, where bucket is one of [`BUCKETS`]: a
//! non-reader learns only which size bucket a message falls in.

use std::num::NonZeroU64;

use automerge::legacy::{Key, ObjectId, Op, OpId, OpType, SortedVec};
use automerge::{ActorId, ObjType, ScalarValue};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use crate::body::{ShapeError, record_key};
use crate::id::{DeviceId, EntryId, GroupId, MemberId};

/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// An epoch key, and the HPKE-sealed copy of it: 32 bytes of key plus a 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 48;
/// Most readers a sealed thread may have (bounds every reader wrap list before it is read).
pub const MAX_READERS: usize = 64;
/// Most epochs a new reader can be given at once (bounds a `thread.reader.add` wrap list; 900 rows
/// of [`WRAP_LEN`] bytes fit in one bytes field).
pub const MAX_EPOCHS: usize = 900;
/// Padded plaintext sizes: 256 bytes up to 128 KiB, each step 1.5 or 1.33 times the last (256, 384,
/// 512, 768, ...). A non-reader learns the step, never the exact size; the padding costs at most half
/// the message and a third on average.
pub const BUCKETS: [usize; 19] = [
    256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768,
    49152, 65536, 98304, 131072,
];

/// The smallest bucket that holds `n` bytes of inner change plus its 4-byte length.
pub fn bucket_for(n: usize) -> Option<usize> {
    BUCKETS.iter().copied().find(|b| n + 4 <= *b)
}

/// Whether a `ct` field has one of the allowed padded lengths.
pub fn valid_ct_len(len: usize) -> bool {
    len >= NONCE_LEN + TAG_LEN && BUCKETS.contains(&(len - NONCE_LEN - TAG_LEN))
}

/// The key commitment published for an epoch: readers check the key they unwrap against it, so no
/// author can give different readers different keys.
pub fn key_commitment(epoch_key: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"roundtable/key-commit/v1");
    h.update(epoch_key);
    h.finalize().into()
}

/// The AAD of a sealed message. It binds the group, the thread, the epoch (and its key commitment),
/// the author and the author's position in the record, so a ciphertext moved to another thread, epoch,
/// author or entry (a replay) does not open.
pub fn message_aad(
    group: &GroupId,
    thread: &EntryId,
    epoch: &EntryId,
    commit: &[u8; 32],
    author: &DeviceId,
    seq: u64,
) -> Vec<u8> {
    let mut a = Vec::with_capacity(20 + 5 * 32 + 8);
    a.extend_from_slice(b"roundtable/sealed/v1");
    a.extend_from_slice(&group.0);
    a.extend_from_slice(&thread.0);
    a.extend_from_slice(&epoch.0);
    a.extend_from_slice(commit);
    a.extend_from_slice(&author.0);
    a.extend_from_slice(&seq.to_le_bytes());
    a
}

/// The HPKE `info` of a key wrap: binds the group, the recipient and the key commitment (which names
/// the epoch: every epoch key is fresh and random, and the thread's own id is not known while its
/// first entry is being made).
pub fn wrap_info(group: &GroupId, member: &MemberId, commit: &[u8; 32]) -> Vec<u8> {
    let mut a = Vec::with_capacity(18 + 3 * 32);
    a.extend_from_slice(b"roundtable/wrap/v1");
    a.extend_from_slice(&group.0);
    a.extend_from_slice(&member.0);
    a.extend_from_slice(commit);
    a
}

/// An epoch key sealed for one reader with HPKE (X25519, HKDF-SHA256, ChaCha20-Poly1305).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrap {
    /// The reader it is for.
    pub member: MemberId,
    /// The reader's published encryption key it was sealed to.
    pub key: [u8; 32],
    /// HPKE encapsulated key.
    pub enc: [u8; 32],
    /// The sealed epoch key, [`WRAPPED_KEY_LEN`] bytes.
    pub ct: Vec<u8>,
}

/// A past epoch's key sealed for a new reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochWrap {
    /// The entry that started the epoch (the thread itself, or a `thread.rekey`).
    pub epoch: EntryId,
    /// The new reader's published encryption key it was sealed to.
    pub key: [u8; 32],
    /// HPKE encapsulated key.
    pub enc: [u8; 32],
    /// The sealed epoch key, [`WRAPPED_KEY_LEN`] bytes.
    pub ct: Vec<u8>,
}

/// Bytes of one encoded wrap: id 32, key 32, enc 32, sealed key 48.
pub const WRAP_LEN: usize = 32 + 32 + 32 + WRAPPED_KEY_LEN;

fn encode_rows(rows: impl Iterator<Item = ([u8; 32], [u8; 32], [u8; 32], Vec<u8>)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, key, enc, ct) in rows {
        out.extend_from_slice(&id);
        out.extend_from_slice(&key);
        out.extend_from_slice(&enc);
        out.extend_from_slice(&ct);
    }
    out
}

type Row = ([u8; 32], [u8; 32], [u8; 32], Vec<u8>);

/// Rows sorted by id with no repeats; anything else is not canonical.
fn decode_rows(b: &[u8], field: &'static str, max: usize) -> Result<Vec<Row>, ShapeError> {
    if b.is_empty() || !b.len().is_multiple_of(WRAP_LEN) || b.len() / WRAP_LEN > max {
        return Err(ShapeError::Field(field));
    }
    let mut rows: Vec<Row> = Vec::with_capacity(b.len() / WRAP_LEN);
    for c in b.chunks_exact(WRAP_LEN) {
        let arr = |r: std::ops::Range<usize>| -> [u8; 32] {
            let mut a = [0u8; 32];
            a.copy_from_slice(&c[r]);
            a
        };
        let row = (arr(0..32), arr(32..64), arr(64..96), c[96..].to_vec());
        if rows.last().is_some_and(|l| l.0 >= row.0) {
            return Err(ShapeError::Field(field));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Encodes reader wraps (sorted by member).
pub fn encode_wraps(w: &[Wrap]) -> Vec<u8> {
    encode_rows(w.iter().map(|w| (w.member.0, w.key, w.enc, w.ct.clone())))
}

/// Decodes reader wraps; they must be sorted by member, unique, 1 to [`MAX_READERS`].
pub fn decode_wraps(b: &[u8]) -> Result<Vec<Wrap>, ShapeError> {
    Ok(decode_rows(b, "wraps", MAX_READERS)?
        .into_iter()
        .map(|(id, key, enc, ct)| Wrap {
            member: DeviceId(id),
            key,
            enc,
            ct,
        })
        .collect())
}

/// Encodes epoch wraps (sorted by epoch).
pub fn encode_epoch_wraps(w: &[EpochWrap]) -> Vec<u8> {
    encode_rows(w.iter().map(|w| (w.epoch.0, w.key, w.enc, w.ct.clone())))
}

/// Decodes epoch wraps; sorted by epoch, unique, 1 to [`MAX_EPOCHS`].
pub fn decode_epoch_wraps(b: &[u8]) -> Result<Vec<EpochWrap>, ShapeError> {
    Ok(decode_rows(b, "wraps", MAX_EPOCHS)?
        .into_iter()
        .map(|(id, key, enc, ct)| EpochWrap {
            epoch: EntryId(id),
            key,
            enc,
            ct,
        })
        .collect())
}

// ----- the thread's own document -----

/// Where an inner change sits in the thread's document. Each author's inner changes form one chain:
/// `seq` counts the author's sealed messages in the thread, `deps` names the author's previous inner
/// change. The causal order across authors is the public record's (the outer entries').
pub struct InnerFrame {
    /// The author's device (the inner change's actor).
    pub actor: DeviceId,
    /// The author's sealed messages in this thread so far, plus one.
    pub seq: u64,
    /// The first operation's counter in the thread's document.
    pub start_op: NonZeroU64,
    /// The author's previous inner change in this thread; empty for their first.
    pub deps: Vec<automerge::ChangeHash>,
    /// The author's clock, in milliseconds since the Unix epoch (informational only).
    pub time_ms: i64,
}

/// Builds an inner change: one map at the root key `"{actor}.{seq}"` holding `type = "message"` and
/// `text`. Like public records, it never overwrites anything.
pub fn build_inner(frame: &InnerFrame, text: &str) -> Result<automerge::Change, ShapeError> {
    if text.len() > crate::body::MAX_TEXT {
        return Err(ShapeError::TooLong);
    }
    let actor = ActorId::from(frame.actor.0.as_slice());
    let rec = ObjectId::Id(OpId(frame.start_op.get(), actor.clone()));
    let op = |obj: ObjectId, key: &str, action: OpType| Op {
        action,
        obj,
        key: Key::Map(SmolStr::from(key)),
        pred: SortedVec::new(),
        insert: false,
    };
    let ops = vec![
        op(
            ObjectId::Root,
            &record_key(&frame.actor, frame.seq),
            OpType::Make(ObjType::Map),
        ),
        op(
            rec.clone(),
            "type",
            OpType::Put(ScalarValue::Str("message".into())),
        ),
        op(rec, "text", OpType::Put(ScalarValue::Str(text.into()))),
    ];
    Ok(automerge::Change::from(automerge::ExpandedChange {
        operations: ops,
        actor_id: actor,
        hash: None,
        seq: frame.seq,
        start_op: frame.start_op,
        time: frame.time_ms,
        message: None,
        deps: frame.deps.clone(),
        extra_bytes: Vec::new(),
        author: None,
    }))
}

/// Reads the text out of an inner change, checking its exact shape.
pub fn decode_inner(change: &automerge::Change) -> Result<String, ShapeError> {
    if change.len() != 3 {
        return Err(ShapeError::Shape(
            "a sealed message has three operations".into(),
        ));
    }
    let expanded = std::panic::catch_unwind(|| change.decode())
        .map_err(|_| ShapeError::Shape("operations could not be decoded".into()))?;
    let actor = change.actor_id().to_bytes();
    let start = change.start_op().get();
    let ops = &expanded.operations;
    let own = |obj: &ObjectId| matches!(obj, ObjectId::Id(OpId(c, a)) if *c == start && a.to_bytes() == actor);
    let Ok(actor32) = <[u8; 32]>::try_from(actor) else {
        return Err(ShapeError::Shape("actor is not 32 bytes".into()));
    };
    let key = record_key(&DeviceId(actor32), change.seq());
    let plain = |o: &Op| o.pred.is_empty() && !o.insert;
    let ok_first = plain(&ops[0])
        && ops[0].obj == ObjectId::Root
        && ops[0].key == Key::Map(SmolStr::from(key.as_str()))
        && ops[0].action == OpType::Make(ObjType::Map);
    let ok_type = plain(&ops[1])
        && own(&ops[1].obj)
        && ops[1].key == Key::Map("type".into())
        && ops[1].action == OpType::Put(ScalarValue::Str("message".into()));
    let text = match (&ops[2].action, plain(&ops[2]) && own(&ops[2].obj)) {
        (OpType::Put(ScalarValue::Str(s)), true) if ops[2].key == Key::Map("text".into()) => {
            s.to_string()
        }
        _ => String::new(),
    };
    if !ok_first || !ok_type || text.is_empty() || text.len() > crate::body::MAX_TEXT {
        return Err(ShapeError::Shape(
            "the sealed content is not a message of this thread".into(),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_size_up_to_the_largest() {
        assert_eq!(bucket_for(0), Some(256));
        assert_eq!(bucket_for(252), Some(256));
        assert_eq!(bucket_for(253), Some(384));
        assert_eq!(bucket_for(381), Some(512));
        assert_eq!(bucket_for(131068), Some(131072));
        assert_eq!(bucket_for(131069), None);
        assert!(valid_ct_len(256 + 40));
        assert!(valid_ct_len(384 + 40));
        assert!(!valid_ct_len(257 + 40));
        assert!(!valid_ct_len(10));
    }

    #[test]
    fn wraps_round_trip_and_must_be_sorted() {
        let w = |m: u8| Wrap {
            member: DeviceId([m; 32]),
            key: [1; 32],
            enc: [2; 32],
            ct: vec![3; WRAPPED_KEY_LEN],
        };
        let list = vec![w(1), w(2)];
        let b = encode_wraps(&list);
        assert_eq!(decode_wraps(&b).unwrap(), list);
        let unsorted = encode_wraps(&[w(2), w(1)]);
        assert!(decode_wraps(&unsorted).is_err());
        assert!(decode_wraps(&b[..b.len() - 1]).is_err());
        assert!(decode_wraps(&[]).is_err());
    }

    #[test]
    fn inner_change_round_trips() {
        let frame = InnerFrame {
            actor: DeviceId([7; 32]),
            seq: 2,
            start_op: NonZeroU64::new(9).unwrap(),
            deps: vec![],
            time_ms: 5,
        };
        let c = build_inner(&frame, "hello").unwrap();
        assert_eq!(decode_inner(&c).unwrap(), "hello");
    }
}
