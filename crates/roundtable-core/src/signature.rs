//! The signature rule, the one check of an ed25519 signature that every member and the auditor apply
//! (`docs/format.md`, "Signature rule"): the key must be a canonically encoded point not of small order,
//! then the ZIP-215 equation `[8][s]B = [8]R + [8][k]A` of `ed25519-consensus` must hold.
//!
//! **Invariant:** [`verify_batch`] gives every item exactly the verdict [`verify`] gives it. The key
//! refusals are per item; a batch of items that each satisfy the cofactored equation always satisfies
//! the batch equation, and when a batch fails every item of it is checked alone.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_consensus::{Signature, VerificationKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};

/// Signatures checked together by [`verify_batch`]; a failed batch costs this many single checks.
pub const BATCH: usize = 128;

/// Why a (key, message, signature) fails the signature rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The 32 bytes do not decode to a point of the curve.
    #[error("the key is not a point of the curve")]
    NotAPoint,
    /// The key decodes, but these bytes are not the point's canonical encoding.
    #[error("the key is not in its canonical encoding")]
    NonCanonicalKey,
    /// The key is one of the eight points of small order, with which anyone can sign anything.
    #[error("the key is of small order")]
    SmallOrderKey,
    /// `s` is not below the group order, `R` does not decode, or the equation does not hold.
    #[error("the signature does not satisfy the verification equation")]
    Mismatch,
}

impl Refusal {
    /// A stable name: `not_a_point`, `non_canonical_key`, `small_order_key` or `mismatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NotAPoint => "not_a_point",
            Refusal::NonCanonicalKey => "non_canonical_key",
            Refusal::SmallOrderKey => "small_order_key",
            Refusal::Mismatch => "mismatch",
        }
    }
}

/// The refusals of the key alone (canonical encoding, not of small order), checked before the equation.
pub fn check_key(key: &[u8; 32]) -> Result<(), Refusal> {
    key_point(key).map(|_| ())
}

/// [`check_key`], then the key's point.
fn key_point(key: &[u8; 32]) -> Result<EdwardsPoint, Refusal> {
    let point = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| Refusal::NotAPoint)?;
    if point.to_edwards().compress().to_bytes() != *key {
        return Err(Refusal::NonCanonicalKey);
    }
    if point.is_weak() {
        return Err(Refusal::SmallOrderKey);
    }
    Ok(point.to_edwards())
}

/// The single check: [`check_key`], then ed25519-consensus's (ZIP-215) verification.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Result<(), Refusal> {
    check_key(key)?;
    let vk = VerificationKey::try_from(*key).map_err(|_| Refusal::NotAPoint)?;
    vk.verify(&Signature::from(*sig), msg)
        .map_err(|_| Refusal::Mismatch)
}

/// One signature for [`verify_batch`].
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The signer's public key, as given.
    pub key: &'a [u8; 32],
    /// The signed message.
    pub msg: &'a [u8],
    /// `R || s`, as given.
    pub sig: &'a [u8; 64],
}

/// The batch check: for each item, in order, exactly what [`verify`] says of it.
///
/// Items are checked [`BATCH`] at a time by ZIP-215's batch equation with random 128-bit
/// coefficients `z`, `[8]([-Σ z·s]B + Σ [Σ z·k]A + Σ [z]R) = 0`, the keys grouped. It is
/// ed25519-consensus's batch check, computed with curve25519-dalek's multiscalar multiplication
/// (which uses the processor's vector instructions where it has them). A batch that fails is
/// checked item by item with [`verify`], so the bad items are named and every verdict is the
/// single check's.
pub fn verify_batch(items: &[Item<'_>]) -> Vec<Result<(), Refusal>> {
    let mut out = Vec::with_capacity(items.len());
    let mut keys: HashMap<[u8; 32], Result<EdwardsPoint, Refusal>> = HashMap::new();
    let mut rng = BatchRng::new();
    for chunk in items.chunks(BATCH) {
        let start = out.len();
        // The items whose key passes, with the key's point and their place in the chunk.
        let mut queued = Vec::with_capacity(chunk.len());
        for (i, it) in chunk.iter().enumerate() {
            let key = *keys.entry(*it.key).or_insert_with(|| key_point(it.key));
            out.push(key.map(|_| ()));
            if let Ok(a) = key {
                queued.push((i, a, *it));
            }
        }
        let passed = match rng.as_mut() {
            Some(rng) => !queued.is_empty() && batch_holds(&queued, rng),
            // No randomness: the single checks below give the same verdicts.
            None => false,
        };
        if !passed {
            for (i, _, it) in queued {
                out[start + i] = verify(it.key, it.msg, it.sig);
            }
        }
    }
    out
}

/// The batch equation over items whose keys passed [`check_key`] (with their points). True only if
/// (but for a chance of about 2^-128) every item satisfies the single check's equation; false when
/// any `R` does not decode or any `s` is not canonical, which the single check refuses.
fn batch_holds(items: &[(usize, EdwardsPoint, Item<'_>)], rng: &mut BatchRng) -> bool {
    // Per distinct key: its point and the sum of z·k over its items.
    let mut by_key: Vec<(&[u8; 32], EdwardsPoint, Scalar)> = Vec::new();
    let mut r_points = Vec::with_capacity(items.len());
    let mut r_coeffs = Vec::with_capacity(items.len());
    let mut b_coeff = Scalar::ZERO;
    for (_, a, it) in items {
        let (r_bytes, s_bytes) = it.sig.split_at(32);
        let Some(r) = CompressedEdwardsY::from_slice(r_bytes)
            .ok()
            .and_then(|r| r.decompress())
        else {
            return false;
        };
        let Some(s) = s_bytes
            .try_into()
            .ok()
            .and_then(|b: [u8; 32]| Option::<Scalar>::from(Scalar::from_canonical_bytes(b)))
        else {
            return false;
        };
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_bytes)
                .chain_update(it.key)
                .chain_update(it.msg)
                .finalize()
                .into(),
        );
        let mut z = [0u8; 32];
        rng.fill_bytes(&mut z[..16]);
        let z = Scalar::from_bytes_mod_order(z);
        b_coeff -= z * s;
        r_points.push(r);
        r_coeffs.push(z);
        match by_key.iter_mut().find(|(kb, _, _)| *kb == it.key) {
            Some((_, _, c)) => *c += z * k,
            None => by_key.push((it.key, *a, z * k)),
        }
    }
    EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(b_coeff)
            .chain(by_key.iter().map(|(_, _, c)| *c))
            .chain(r_coeffs),
        std::iter::once(ED25519_BASEPOINT_POINT)
            .chain(by_key.iter().map(|(_, a, _)| *a))
            .chain(r_points),
    )
    .mul_by_cofactor()
    .is_identity()
}

/// The batch coefficients: SHA-512 in counter mode over a 32-byte seed from the operating system.
/// They must be unpredictable to whoever made the signatures, never reproducible.
struct BatchRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl BatchRng {
    fn new() -> Option<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).ok()?;
        Some(Self {
            seed,
            counter: 0,
            block: [0; 64],
            used: 64,
        })
    }
}

impl RngCore for BatchRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == self.block.len() {
                let h = Sha512::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_le_bytes())
                    .finalize();
                self.block.copy_from_slice(&h);
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for BatchRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// Honest signatures by a few keys, each message its own.
    fn signed(n: usize) -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
        let keys: Vec<SigningKey> = (1..=3u8)
            .map(|b| SigningKey::from_bytes(&[b; 32]))
            .collect();
        (0..n)
            .map(|i| {
                let k = &keys[i % keys.len()];
                let msg = format!("entry {i}").into_bytes();
                (
                    k.verifying_key().to_bytes(),
                    msg.clone(),
                    k.sign(&msg).to_bytes(),
                )
            })
            .collect()
    }

    fn queued<'a>(v: &'a [([u8; 32], Vec<u8>, [u8; 64])]) -> Vec<(usize, EdwardsPoint, Item<'a>)> {
        v.iter()
            .enumerate()
            .map(|(i, (key, msg, sig))| {
                let a = key_point(key).expect("an honest key");
                (i, a, Item { key, msg, sig })
            })
            .collect()
    }

    /// The batch equation itself holds for honest signatures (else every batch would quietly fall
    /// back to the single checks) and fails when one is forged, its `s` is not canonical or its
    /// `R` does not decode.
    #[test]
    fn the_batch_equation_holds_for_honest_signatures_and_only_for_them() {
        let mut rng = BatchRng::new().expect("randomness");
        let mut v = signed(BATCH);
        assert!(batch_holds(&queued(&v), &mut rng));
        let honest = v.clone();
        v[7].2[40] ^= 1;
        assert!(!batch_holds(&queued(&v), &mut rng), "a forged s");
        let mut v = honest.clone();
        v[9].1.push(b'!');
        assert!(!batch_holds(&queued(&v), &mut rng), "another message");
        let mut v = honest.clone();
        // s + l: the same scalar, not in its canonical encoding.
        let s = Scalar::from_canonical_bytes(v[3].2[32..].try_into().unwrap()).unwrap();
        let l_plus_s = {
            // The group order l, little-endian.
            let l: [u8; 32] =
                hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                    .unwrap()
                    .try_into()
                    .unwrap();
            let (mut out, mut carry) = ([0u8; 32], 0u16);
            for (i, o) in out.iter_mut().enumerate() {
                let t = l[i] as u16 + s.to_bytes()[i] as u16 + carry;
                *o = t as u8;
                carry = t >> 8;
            }
            out
        };
        v[3].2[32..].copy_from_slice(&l_plus_s);
        assert!(!batch_holds(&queued(&v), &mut rng), "a non-canonical s");
        let mut v = honest.clone();
        // y = 2 is not the y of any point of the curve.
        let mut r = [0u8; 32];
        r[0] = 2;
        v[5].2[..32].copy_from_slice(&r);
        assert!(!batch_holds(&queued(&v), &mut rng), "an R off the curve");
        // And the whole check names exactly the forged one.
        let mut v = honest;
        v[100].2[0] ^= 4;
        let items: Vec<Item> = v
            .iter()
            .map(|(key, msg, sig)| Item { key, msg, sig })
            .collect();
        let got = verify_batch(&items);
        let bad: Vec<usize> = (0..got.len()).filter(|i| got[*i].is_err()).collect();
        assert_eq!(bad, vec![100]);
    }
}
