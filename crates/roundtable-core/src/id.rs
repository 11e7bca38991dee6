//! Identifiers and their one stable text form: lowercase hex, 64 characters.
//!
//! **Invariant:** every id the CLI prints is parsed back by [`std::str::FromStr`] unchanged, so a
//! member can copy an id from any output into any command.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An id could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not 64 hexadecimal characters.
    #[error(
        "'{0}' is not an id: an id is 64 characters, 0-9 and a-f; copy it whole from where it is shown"
    )]
    Malformed(String),
}

fn parse_hex32(s: &str) -> Result<[u8; 32], ParseIdError> {
    let s = s.trim();
    let mut out = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(ParseIdError::Malformed(s.chars().take(80).collect()));
    }
    Ok(out)
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// From raw bytes.
            pub fn from_bytes(b: [u8; 32]) -> Self {
                Self(b)
            }
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..12])
            }
        }
        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }
    };
}

hex_id!(
    /// A device: its ed25519 public key, also its Automerge actor id (and, later, its iroh endpoint id).
    DeviceId
);
hex_id!(
    /// An entry: the SHA-256 hash of its Automerge change, exactly as Automerge computes it.
    /// Threads, proposals and actions are named by the id of the entry that created them.
    EntryId
);

/// A member is a person; in this version one member has one device and shares its id.
pub type MemberId = DeviceId;

/// A group is named by the id of its genesis entry.
pub type GroupId = EntryId;

impl From<automerge::ChangeHash> for EntryId {
    fn from(h: automerge::ChangeHash) -> Self {
        EntryId(h.0)
    }
}
impl From<EntryId> for automerge::ChangeHash {
    fn from(e: EntryId) -> Self {
        automerge::ChangeHash(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_bad_input() {
        let id = EntryId([0xab; 32]);
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<EntryId>().unwrap(), id);
        assert!("abc".parse::<EntryId>().is_err());
        assert!(s.replace('a', "g").parse::<EntryId>().is_err());
    }
}
