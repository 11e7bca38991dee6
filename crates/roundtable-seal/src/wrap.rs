//! HPKE (RFC 9180, base mode, X25519-HKDF-SHA256, HKDF-SHA256, ChaCha20-Poly1305): an epoch key
//! sealed to one reader's encryption key.
//!
//! **Invariant:** encryption keys are X25519 keys of their own, never derived from a device's
//! signing key, so a leaked signing key reads nothing and a leaked encryption key signs nothing.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use roundtable_core::sealed::WRAPPED_KEY_LEN;
use zeroize::Zeroizing;

use crate::SealError;

type K = X25519HkdfSha256;

/// A member's encryption secret (X25519) as one device holds it, kept at rest like the signing
/// key; with the secret it replaced, when the member changed it (a stopped device kept the old
/// one), so that epoch keys still wrapped to the old secret open until they are wrapped again.
#[derive(Clone)]
pub struct EncSecret {
    key: Zeroizing<[u8; 32]>,
    previous: Option<Zeroizing<[u8; 32]>>,
}

impl EncSecret {
    /// A new random secret.
    pub fn generate() -> Result<EncSecret, SealError> {
        Ok(EncSecret::from_bytes(&crate::random()?))
    }

    /// The secret from its 32 stored bytes (as `to_bytes` gave them). Any 32 bytes are accepted;
    /// an unusable secret fails later, in [`EncSecret::public`] or an unwrap, with `BadKey`.
    pub fn from_bytes(b: &[u8; 32]) -> EncSecret {
        EncSecret {
            key: Zeroizing::new(*b),
            previous: None,
        }
    }

    /// The same secret, also holding `previous`, the secret it replaced (only for opening).
    pub fn with_previous(mut self, previous: &[u8; 32]) -> EncSecret {
        self.previous = Some(Zeroizing::new(*previous));
        self
    }

    /// The secret this one replaced, when this device holds it.
    pub fn previous(&self) -> Option<EncSecret> {
        self.previous.as_deref().map(EncSecret::from_bytes)
    }

    /// The 32 secret bytes, to store at rest; zeroed when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.key.clone()
    }

    fn private(&self) -> Result<<K as Kem>::PrivateKey, SealError> {
        <K as Kem>::PrivateKey::from_bytes(self.key.as_slice()).map_err(|_| SealError::BadKey)
    }

    /// The public key to publish in the member's profile entry.
    pub fn public(&self) -> Result<[u8; 32], SealError> {
        let pk = K::sk_to_pk(&self.private()?);
        pk.to_bytes()
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadKey)
    }
}

/// Seals `key` to `recipient`; returns (encapsulated key, sealed key of [`WRAPPED_KEY_LEN`] bytes).
pub fn wrap(
    recipient: &[u8; 32],
    info: &[u8],
    key: &[u8; 32],
) -> Result<([u8; 32], Vec<u8>), SealError> {
    let pk = <K as Kem>::PublicKey::from_bytes(recipient).map_err(|_| SealError::BadKey)?;
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeS::Base,
        &pk,
        info,
        key,
        b"",
    )
    .map_err(|_| SealError::Encrypt)?;
    let enc: [u8; 32] = enc
        .to_bytes()
        .as_slice()
        .try_into()
        .map_err(|_| SealError::Encrypt)?;
    debug_assert_eq!(ct.len(), WRAPPED_KEY_LEN);
    Ok((enc, ct))
}

/// Opens a wrap sealed to `secret`.
pub fn unwrap(
    secret: &EncSecret,
    enc: &[u8; 32],
    info: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let enc = <K as Kem>::EncappedKey::from_bytes(enc).map_err(|_| SealError::Damaged)?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, K>(
            &OpModeR::Base,
            &secret.private()?,
            &enc,
            info,
            ct,
            b"",
        )
        .map_err(|_| SealError::Damaged)?,
    );
    Ok(Zeroizing::new(
        plain
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Damaged)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_unwraps() {
        let a = EncSecret::generate().unwrap();
        let b = EncSecret::generate().unwrap();
        let key = [9u8; 32];
        let (enc, ct) = wrap(&a.public().unwrap(), b"info", &key).unwrap();
        assert_eq!(ct.len(), WRAPPED_KEY_LEN);
        assert_eq!(*unwrap(&a, &enc, b"info", &ct).unwrap(), key);
        assert!(unwrap(&b, &enc, b"info", &ct).is_err());
        assert!(unwrap(&a, &enc, b"other", &ct).is_err());
    }
}
