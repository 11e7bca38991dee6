//! XChaCha20-Poly1305 with a random 24-byte nonce carried in front of the ciphertext.
//!
//! **Invariant:** a nonce is never chosen by the caller; 192 random bits make a repeat under one
//! epoch key negligible however many messages the epoch carries.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use roundtable_core::sealed::{NONCE_LEN, TAG_LEN};

use crate::SealError;

/// Encrypts `plain` under `key`, binding `aad`: returns `nonce || ciphertext || tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let nonce: [u8; NONCE_LEN] = crate::random()?;
    let ct = XChaCha20Poly1305::new(&(*key).into())
        .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
        .map_err(|_| SealError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`; fails if anything, the AAD included, is not as sealed.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Damaged);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Damaged)?;
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| SealError::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_key_and_aad() {
        let k = [7u8; 32];
        let s = seal(&k, b"aad", b"words").unwrap();
        assert_eq!(open(&k, b"aad", &s).unwrap(), b"words");
        assert!(open(&k, b"other", &s).is_err());
        assert!(open(&[8u8; 32], b"aad", &s).is_err());
        let mut t = s.clone();
        t[30] ^= 1;
        assert!(open(&k, b"aad", &t).is_err());
        assert!(open(&k, b"aad", &s[..10]).is_err());
    }
}
