//! Entry point shared by the cargo-fuzz target `sealed` (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`), so that what the fuzzer explores and what CI replays are the same code.
//! It must return normally on any input.

use std::borrow::Cow;
use std::sync::OnceLock;

use automerge::Automerge;
use roundtable_core::sealed::{
    self, MAX_READERS, WRAPPED_KEY_LEN, bucket_for, key_commitment, message_aad, wrap_info,
};
use roundtable_core::{DeviceId, EntryId, GroupId};

use crate::wrap::EncSecret;
use crate::{aead, pad, thread, wrap};

/// The fixed epoch key every input is sealed under and opened with.
pub const KEY: [u8; 32] = [0x5e; 32];
/// The fixed author the inner change must name (seeds use it as their actor).
pub const AUTHOR: DeviceId = DeviceId([7; 32]);
/// The fixed encryption secret wraps are opened with.
pub const ENC_SECRET: [u8; 32] = [0x3c; 32];

struct Fixed {
    aad: Vec<u8>,
    info: Vec<u8>,
    secret: EncSecret,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let commit = key_commitment(&KEY);
        let group = GroupId::from_bytes([1; 32]);
        Fixed {
            aad: message_aad(
                &group,
                &EntryId::from_bytes([2; 32]),
                &EntryId::from_bytes([3; 32]),
                &commit,
                &AUTHOR,
                4,
            ),
            info: wrap_info(&group, &AUTHOR, &commit),
            secret: EncSecret::from_bytes(&ENC_SECRET),
        }
    })
}

/// The AAD every input is sealed with (for building seeds).
pub fn aad() -> &'static [u8] {
    &fixed().aad
}

/// The HPKE info wraps are opened with (for building seeds).
pub fn info() -> &'static [u8] {
    &fixed().info
}

/// Every decoder of sealed bytes from peers, on arbitrary bytes:
///
/// - the wrap lists of `thread.sealed`, `thread.rekey` and `reader.add` (a decoded list re-encodes
///   to the same bytes), and the reader's unwrap of the first wrap;
/// - removing padding, and opening the input as a ciphertext under the fixed key;
/// - everything a reader decodes after decryption (padding, the inner change, its author and
///   shape, then Automerge applying it), with the input sealed as the padded plaintext, and as the
///   inner change (padded, its chunk checksum corrected) so the fuzzer reaches the inner change;
/// - HPKE unwrap of the input split into an encapsulated key (32 bytes) and a sealed key.
pub fn sealed(data: &[u8]) {
    let f = fixed();

    if let Ok(w) = sealed::decode_wraps(data) {
        assert!(!w.is_empty() && w.len() <= MAX_READERS, "1 to 64 wraps");
        assert!(w.iter().all(|w| w.ct.len() == WRAPPED_KEY_LEN));
        assert_eq!(
            sealed::encode_wraps(&w),
            data,
            "wraps re-encode identically"
        );
        let _ = wrap::unwrap(&f.secret, &w[0].enc, &f.info, &w[0].ct);
    }
    if let Ok(w) = sealed::decode_epoch_wraps(data) {
        assert!(!w.is_empty() && w.len() <= MAX_READERS, "1 to 64 wraps");
        assert!(w.iter().all(|w| w.ct.len() == WRAPPED_KEY_LEN));
        assert_eq!(
            sealed::encode_epoch_wraps(&w),
            data,
            "epoch wraps re-encode identically"
        );
    }

    if let Ok(inner) = pad::unpad(data) {
        assert!(
            bucket_for(inner.len()).is_some_and(|b| b <= data.len()),
            "what is unpadded fits the padded size"
        );
    }

    // As a ciphertext under the fixed key and AAD (only a seed sealed under them opens).
    let _ = sealed::valid_ct_len(data.len());
    accepted(thread::open_envelope(&KEY, &f.aad, data, &AUTHOR));

    // As the plaintext inside a ciphertext, as it is; and as the inner change, padded, with its
    // checksum corrected so that mutated changes reach Automerge's decoder and the shape checks.
    envelope(data);
    if let Ok(padded) = pad::pad(&with_checksum(data)) {
        envelope(&padded);
    }

    if let Some((enc, ct)) = data.split_first_chunk::<32>() {
        let _ = wrap::unwrap(&f.secret, enc, &f.info, ct);
    }
}

/// `data` with the checksum of its Automerge chunk header (bytes 4..8) corrected, when Automerge
/// parses it (Automerge does not check it; `roundtable_core::change::parse_change` does).
fn with_checksum(data: &[u8]) -> Cow<'_, [u8]> {
    if data.len() < 8 {
        return Cow::Borrowed(data);
    }
    let Ok(Ok(change)) = std::panic::catch_unwind(|| automerge::Change::try_from(data)) else {
        return Cow::Borrowed(data);
    };
    let mut fixed = data.to_vec();
    fixed[4..8].copy_from_slice(&change.hash().0[..4]);
    Cow::Owned(fixed)
}

/// `plain` sealed under the fixed key, then opened as a reader opens a sealed message.
fn envelope(plain: &[u8]) {
    let f = fixed();
    if let Ok(ct) = aead::seal(&KEY, &f.aad, plain) {
        accepted(thread::open_envelope(&KEY, &f.aad, &ct, &AUTHOR));
    }
}

/// What holds of an opened message, and what `thread::open` then does with its change.
#[allow(clippy::type_complexity)]
fn accepted(
    opened: Result<(String, automerge::ChangeHash, u64, automerge::Change), crate::SealError>,
) {
    let Ok((text, hash, max_op, change)) = opened else {
        return;
    };
    assert!(!text.is_empty(), "an accepted message has text");
    assert_eq!(hash, change.hash());
    assert_eq!(max_op, change.max_op());
    assert_eq!(change.actor_id().to_bytes(), AUTHOR.0.as_slice());
    let mut doc = Automerge::new();
    let _ = doc.apply_changes([change]);
}
