//! Sealed threads: what only their readers can read.
//!
//! Some matters may not leave a small group. Their content is sealed, but their existence, their
//! readers and the reason are public, because the partnership's rule is that when something cannot be
//! shared, a reason is given. The public shape (sizes, AADs, the rules every device checks) lives in
//! `roundtable_core::sealed`; this crate holds every piece of cryptography, one thin module per
//! primitive, and the reader's side of a thread:
//!
//! - [`aead`]: XChaCha20-Poly1305 of each inner change under the epoch key, random nonces.
//! - [`wrap`]: HPKE (X25519) wraps of an epoch key to one reader's encryption key.
//! - [`pad`]: padding to size buckets.
//! - [`thread`]: starting a thread, adding and removing readers, writing and reading messages.
//!
//! ```
//! use roundtable_core::{DeviceKey, Record, Rule, Body};
//! use roundtable_seal::{EncSecret, Keyring, thread};
//! let ana = DeviceKey::generate().unwrap();
//! let ana_enc = EncSecret::generate().unwrap();
//! let (mut rec, _) = Record::create(&ana, "Board", Rule::Consent, 1, "Ana", "", 0).unwrap();
//! rec.author(&ana, Body::Profile { enc_key: ana_enc.public().unwrap() }, 1).unwrap();
//! let body = thread::start(&rec, "Health", "It is about one member's health", &[ana.device_id()]).unwrap();
//! let (t, _) = rec.author(&ana, body, 2).unwrap();
//! let mut keys = Keyring::new(ana.device_id(), &ana_enc);
//! let msg = thread::message(&rec, &mut keys, &t, &ana.device_id(), "Only we read this", 3).unwrap();
//! rec.author(&ana, msg, 3).unwrap();
//! let view = thread::open(&rec, &mut keys, &t).unwrap();
//! assert_eq!(view.messages[0].text, "Only we read this");
//! ```

#![deny(missing_docs)]

pub mod aead;
#[doc(hidden)]
pub mod fuzz;
pub mod pad;
pub mod thread;
pub mod wrap;

pub use thread::{Keyring, SealedMessage, ThreadView, Unreadable};
pub use wrap::EncSecret;

use roundtable_core::body::ShapeError;
use roundtable_core::{EntryId, MemberId};

/// Why sealing or opening did not happen. Nothing is written when one of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The operating system gave no randomness for a key or nonce.
    #[error("the device's random number generator failed: {0}")]
    Random(String),
    /// HPKE or the AEAD refused to seal (an unusable recipient key, or a counter overflow).
    #[error("encryption failed")]
    Encrypt,
    /// A ciphertext, wrap or padding does not open or check: tampered, damaged, or under other AAD.
    #[error("the sealed content could not be opened: it was changed, moved or copied")]
    Damaged,
    /// A secret or public X25519 key HPKE cannot use.
    #[error("an encryption key is not valid")]
    BadKey,
    /// The inner change is larger than the largest size bucket.
    #[error("the message is too long to seal (the most is about 128 KiB)")]
    TooLarge,
    /// A sealed message must have words.
    #[error("the message is empty")]
    Empty,
    /// The member has published no encryption key (`profile`) in the record, so no key can be wrapped for them.
    #[error(
        "member {0} has no encryption key in the record yet: their device publishes one the first time it opens the group. Ask them to sync once, then try again"
    )]
    NoKey(MemberId),
    /// The id is not a valid sealed thread in this record.
    #[error("{0} is not a sealed thread here")]
    NotSealed(EntryId),
    /// This device's member is not a reader now (or holds no key of the epoch to write in).
    #[error("you are not a reader of this sealed thread")]
    NotReader,
    /// An epoch key this device should pass on or build on is one it could not open.
    #[error("you do not hold the key of an earlier part of this thread, so you cannot pass it on")]
    MissingEpoch,
    /// The thread already has `MAX_READERS` readers (the limit given).
    #[error(
        "this sealed thread has {0} readers, the most it can have: start another sealed thread for more"
    )]
    TooManyReaders(usize),
    /// No epoch's key is held by exactly the readers now: write a [`thread::rekey`] first.
    #[error(
        "a reader has left or was removed since the thread's key was made: a new key is needed first"
    )]
    NeedsRekey,
    /// What opened is not a well-formed inner change, or a message is over `MAX_TEXT`.
    #[error("{0}")]
    Shape(#[from] ShapeError),
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(b)
}
