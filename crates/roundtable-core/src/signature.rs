//! The signature rule, the one check of an ed25519 signature that every member and the auditor apply
//! (`docs/format.md`, "Signature rule"): the key must be a canonically encoded point not of small order,
//! then the ZIP-215 equation `[8][s]B = [8]R + [8][k]A` of `ed25519-consensus` must hold.
//!
//! **Invariant:** [`verify_batch`] gives every item exactly the verdict [`verify`] gives it. The key
//! refusals are per item; a batch of items that each satisfy the cofactored equation always satisfies
//! the batch equation, and when a batch fails every item of it is checked alone.

use std::collections::HashMap;

use ed25519_consensus::{Signature, VerificationKey, VerificationKeyBytes, batch};
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
    let point = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| Refusal::NotAPoint)?;
    if point.to_edwards().compress().to_bytes() != *key {
        return Err(Refusal::NonCanonicalKey);
    }
    if point.is_weak() {
        return Err(Refusal::SmallOrderKey);
    }
    Ok(())
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
/// Items are checked [`BATCH`] at a time with ed25519-consensus's batch verifier (random 128-bit
/// coefficients). A batch that fails is checked item by item, so the bad items are named.
pub fn verify_batch(items: &[Item<'_>]) -> Vec<Result<(), Refusal>> {
    let mut out = Vec::with_capacity(items.len());
    let mut keys: HashMap<[u8; 32], Result<(), Refusal>> = HashMap::new();
    for chunk in items.chunks(BATCH) {
        let start = out.len();
        let mut queued = Vec::with_capacity(chunk.len());
        let mut verifier = batch::Verifier::new();
        for (i, it) in chunk.iter().enumerate() {
            let key = *keys.entry(*it.key).or_insert_with(|| check_key(it.key));
            if key.is_ok() {
                verifier.queue((
                    VerificationKeyBytes::from(*it.key),
                    Signature::from(*it.sig),
                    it.msg,
                ));
                queued.push(i);
            }
            out.push(key);
        }
        let passed = !queued.is_empty()
            && match BatchRng::new() {
                Some(rng) => verifier.verify(rng).is_ok(),
                // No randomness: the single checks below give the same verdicts.
                None => false,
            };
        if !passed {
            for i in queued {
                let it = chunk[i];
                out[start + i] = verify(it.key, it.msg, it.sig);
            }
        }
    }
    out
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
