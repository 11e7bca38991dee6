//! The streaming bundle reader and the in-memory decoders agree on any bytes, read in any pieces:
//! the same entries and the same error (strict), the same entries and problems (lenient).

use proptest::prelude::*;
use roundtable_core::bundle::{self, BundleError, BundleReader};
use roundtable_core::entry::{DecodeError, DocRef, Entry};
use roundtable_core::fuzz::{Chunked, reference, stream_lenient, stream_strict};
use roundtable_core::id::GroupId;
use sha2::{Digest, Sha256};

fn entry() -> impl Strategy<Value = Entry> {
    (
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(other, id, s, change)| Entry {
            doc: if other {
                DocRef::Other(id)
            } else {
                DocRef::Public
            },
            signature: [s; 64],
            change,
        })
}

/// A well-formed bundle, then damaged in one of several ways (or not at all).
fn bundle_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(entry(), 0..6),
        0u8..6,
        any::<usize>(),
        any::<u8>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(entries, how, at, byte, count, reseal)| {
            let mut b = bundle::encode(&GroupId::from_bytes([9; 32]), &entries);
            match how {
                0 => {}
                1 => b.truncate(at % (b.len() + 1)),
                2 => {
                    let i = at % b.len();
                    b[i] ^= byte | 1;
                }
                3 => b[41..49].copy_from_slice(&(count % 10).to_le_bytes()),
                4 => b
                    .splice(b.len() - 32..b.len() - 32, vec![byte; at % 80])
                    .for_each(drop),
                _ => b[41..49].copy_from_slice(&count.to_le_bytes()),
            }
            if reseal && b.len() >= 32 {
                let n = b.len() - 32;
                let d = Sha256::digest(&b[..n]);
                b[n..].copy_from_slice(&d);
            }
            b
        })
}

fn agree(bytes: &[u8], chunk: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        stream_strict(Chunked::new(bytes, chunk)),
        reference::decode(bytes)
    );
    prop_assert_eq!(
        stream_lenient(Chunked::new(bytes, chunk)),
        reference::decode_lenient(bytes)
    );
    prop_assert_eq!(bundle::decode(bytes), reference::decode(bytes));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn stream_agrees_on_arbitrary_bytes(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
        magic in any::<bool>(),
        chunk in 1usize..100,
    ) {
        // Half the inputs start like a bundle, so the fuzz reaches past the header.
        if magic && bytes.len() >= 9 {
            bytes[..8].copy_from_slice(bundle::MAGIC);
            bytes[8] = bundle::VERSION;
        }
        agree(&bytes, chunk)?;
    }

    #[test]
    fn stream_agrees_on_damaged_bundles(bytes in bundle_bytes(), chunk in 1usize..5000) {
        agree(&bytes, chunk)?;
    }
}

#[test]
fn cut_short_inside_an_entry_is_refused_with_the_entry_named() {
    let e = Entry {
        doc: DocRef::Public,
        signature: [1; 64],
        change: vec![7; 1000],
    };
    let good = bundle::encode(&GroupId::from_bytes([3; 32]), &[e.clone(), e.clone(), e]);
    // Cut inside the third entry, then given a good digest of what is left (so only the framing
    // can tell): the strict reader yields two entries, then the error, and nothing is whole.
    let mut cut = good[..good.len() - 32 - 500].to_vec();
    let d = Sha256::digest(&cut);
    cut.extend_from_slice(&d);
    let got = stream_strict(Chunked::new(&cut, 4096));
    assert_eq!(
        got,
        Err(BundleError::Entry {
            index: 2,
            error: DecodeError::Truncated(500)
        })
    );
    assert!(
        got.unwrap_err().to_string().contains("entry 2"),
        "the message names the entry"
    );
    // Without the digest fixed, the digest is what is reported, as before.
    let plain_cut = &good[..good.len() - 500];
    assert_eq!(bundle::decode(plain_cut), Err(BundleError::Digest));
    let lenient = stream_lenient(Chunked::new(plain_cut, 1)).expect("the header is fine");
    assert_eq!(
        lenient.2.len(),
        2,
        "the lenient reader salvages the two whole entries"
    );
    assert_eq!(lenient.3[0], BundleError::Digest);
}

/// A reader whose input is far larger than one entry holds only its buffer and one entry: an endless
/// zero-filled input is read only up to the largest bundle, then refused.
#[test]
fn an_endless_input_is_refused_at_the_largest_bundle() {
    struct Endless;
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            Ok(buf.len())
        }
    }
    let mut head = bundle::MAGIC.to_vec();
    head.push(bundle::VERSION);
    head.extend_from_slice(&[0; 32]);
    head.extend_from_slice(&0u64.to_le_bytes());
    let r = BundleReader::new(std::io::Read::chain(&head[..], Endless)).expect("a header");
    let got: Vec<_> = r.collect();
    assert_eq!(
        got,
        vec![Err(BundleError::TooBig(bundle::MAX_BUNDLE_BYTES))]
    );
}

#[test]
fn a_failing_input_is_an_io_error() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the disk said no"))
        }
    }
    let mut head = bundle::MAGIC.to_vec();
    head.push(bundle::VERSION);
    head.extend_from_slice(&[0; 32]);
    head.extend_from_slice(&1u64.to_le_bytes());
    let r = BundleReader::new(std::io::Read::chain(&head[..], Broken)).expect("a header");
    let got: Vec<_> = r.collect();
    assert!(
        matches!(&got[..], [Err(BundleError::Io(std::io::ErrorKind::Other, m))] if m.contains("the disk said no")),
        "{got:?}"
    );
}
