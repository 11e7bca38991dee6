//! Reading raw Automerge change bytes safely.
//!
//! **Invariant:** the hash we sign and check is recomputed here from the raw bytes
//! (`SHA-256(chunk_type || LEB128(len) || body)`), never taken from a peer, and it must equal the
//! hash Automerge computes, so a change with a non-canonical header is refused.

use sha2::{Digest, Sha256};

use crate::id::EntryId;

/// Automerge's chunk magic bytes.
pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk type of an uncompressed change; the only type an entry may carry.
pub const CHUNK_CHANGE: u8 = 1;
/// Largest change an entry may carry. Bounds every allocation made for a peer's change.
pub const MAX_CHANGE_BYTES: usize = 256 * 1024;

/// Why change bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// Too short to hold a chunk header, or over [`MAX_CHANGE_BYTES`].
    #[error("the change is empty or larger than {MAX_CHANGE_BYTES} bytes")]
    Size,
    /// The first 4 bytes are not [`MAGIC`].
    #[error("the change does not start with Automerge's magic bytes")]
    Magic,
    /// A chunk type other than [`CHUNK_CHANGE`] (a document or a compressed change).
    #[error("the change is not an uncompressed Automerge change (chunk type {0})")]
    ChunkType(u8),
    /// The body length is not shortest-form LEB128 or differs from the bytes that follow, or
    /// Automerge's hash of what it read differs from the hash of the raw bytes.
    #[error("the change's length field is malformed or does not match its size")]
    Length,
    /// The checksum is not the first 4 bytes of the hash recomputed from the bytes.
    #[error("the change's checksum does not match its contents (it was damaged)")]
    Checksum,
    /// Automerge refused (or panicked on) the bytes; its message.
    #[error("Automerge could not read the change: {0}")]
    Automerge(String),
    /// The actor id is not 32 bytes.
    #[error("the change's author is not a device key (actor ids are 32-byte ed25519 keys)")]
    Actor,
}

/// A change that parsed, with the hash recomputed from its raw bytes.
#[derive(Debug, Clone)]
pub struct ParsedChange {
    /// The change hash recomputed from the raw bytes (equal to Automerge's): the entry id.
    pub hash: EntryId,
    /// The change as Automerge read it.
    pub change: automerge::Change,
    /// The author's device id: the change's 32-byte actor id.
    pub actor: [u8; 32],
}

/// Hash of the raw change bytes as Automerge defines it. Does no other check.
pub fn raw_change_hash(bytes: &[u8]) -> Result<EntryId, ChangeError> {
    if bytes.len() < 10 || bytes.len() > MAX_CHANGE_BYTES {
        return Err(ChangeError::Size);
    }
    if bytes[..4] != MAGIC {
        return Err(ChangeError::Magic);
    }
    if bytes[8] != CHUNK_CHANGE {
        return Err(ChangeError::ChunkType(bytes[8]));
    }
    let (len, used) = read_uleb(&bytes[9..]).ok_or(ChangeError::Length)?;
    let body_start = 9 + used;
    if u64::try_from(bytes.len() - body_start).ok() != Some(len) {
        return Err(ChangeError::Length);
    }
    let digest: [u8; 32] = Sha256::digest(&bytes[8..]).into();
    if digest[..4] != bytes[4..8] {
        return Err(ChangeError::Checksum);
    }
    Ok(EntryId(digest))
}

/// Parses a change: bounds, header, checksum, Automerge's own decoding, and a 32-byte actor.
pub fn parse_change(bytes: &[u8]) -> Result<ParsedChange, ChangeError> {
    let hash = raw_change_hash(bytes)?;
    // Automerge's decoder is hardened but external; a panic on hostile bytes must not take the device down.
    let change = std::panic::catch_unwind(|| automerge::Change::try_from(bytes))
        .map_err(|_| ChangeError::Automerge("decoder panicked".into()))?
        .map_err(|e| ChangeError::Automerge(e.to_string()))?;
    if EntryId::from(change.hash()) != hash {
        return Err(ChangeError::Length);
    }
    let actor: [u8; 32] = change
        .actor_id()
        .to_bytes()
        .try_into()
        .map_err(|_| ChangeError::Actor)?;
    Ok(ParsedChange {
        hash,
        change,
        actor,
    })
}

/// An unsigned LEB128 in its shortest form (docs/format.md section 1): a final `00` after another
/// byte is overlong and refused, as Automerge refuses it; so is a value over 64 bits.
fn read_uleb(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        let part = u64::from(byte & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part.checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            if i > 0 && *byte == 0 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}
