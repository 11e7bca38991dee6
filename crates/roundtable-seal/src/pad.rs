//! Padding to size buckets: `len:u32le || bytes || zeros` up to the smallest bucket that fits.
//!
//! **Invariant:** every sealed message's plaintext is exactly one of `roundtable_core::sealed::BUCKETS`
//! long, so its ciphertext tells a non-reader only the bucket.

use roundtable_core::sealed::{BUCKETS, bucket_for};

use crate::SealError;

/// Pads `bytes` to the smallest bucket that holds them with their 4-byte length; fails with
/// [`SealError::TooLarge`] when none does.
pub fn pad(bytes: &[u8]) -> Result<Vec<u8>, SealError> {
    let size = bucket_for(bytes.len()).ok_or(SealError::TooLarge)?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out.resize(size, 0);
    Ok(out)
}

/// Removes padding. The bucket must be the smallest that fits and the padding must be zeros, so a
/// message has exactly one padded form.
pub fn unpad(padded: &[u8]) -> Result<&[u8], SealError> {
    if !BUCKETS.contains(&padded.len()) {
        return Err(SealError::Damaged);
    }
    let (len, rest) = padded.split_at(4);
    let len = u32::from_le_bytes(len.try_into().map_err(|_| SealError::Damaged)?) as usize;
    if len > rest.len()
        || bucket_for(len) != Some(padded.len())
        || rest[len..].iter().any(|b| *b != 0)
    {
        return Err(SealError::Damaged);
    }
    Ok(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_buckets_and_back() {
        for n in [0usize, 1, 252, 253, 1000, 131068] {
            let b = vec![0xab; n];
            let p = pad(&b).unwrap();
            assert!(BUCKETS.contains(&p.len()));
            assert_eq!(unpad(&p).unwrap(), &b[..]);
        }
        assert!(pad(&vec![0; 131069]).is_err());
        let mut p = pad(b"abc").unwrap();
        p[100] = 1;
        assert!(unpad(&p).is_err());
        assert!(unpad(&p[..255]).is_err());
        // A short message padded into a larger bucket than it needs is not its one padded form.
        let mut big = pad(b"abc").unwrap();
        big.resize(512, 0);
        assert!(unpad(&big).is_err());
    }
}
