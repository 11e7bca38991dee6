//! Bundles: a group's entries in one file, for offline meetings and auditors.
//!
//! ```text
//! bundle := "RTBUNDLE" version:u8=1 group_id:32 count:u64le entry*count digest:32
//! digest := SHA-256 of every byte before it
//! ```
//! The digest catches a damaged or cut-short file before anything is stored; each entry still carries
//! its own signature, so a bundle needs no trust in whoever carried it.
//!
//! A file is read as a stream ([`BundleReader`]), holding one entry at a time; [`decode`] and
//! [`decode_lenient`], for bytes already in memory, are that same reader over a slice.

use sha2::{Digest, Sha256};

use crate::entry::{DecodeError, Entry};
use crate::id::GroupId;

mod stream;
pub use stream::BundleReader;

/// The largest bundle file read (2 GiB, `docs/format.md` section 5): far above any board's
/// record (a million entries are about 450 MB), and a bound on what an auditor's laptop is asked to
/// hold. A larger input is refused before it is read past this size.
pub const MAX_BUNDLE_BYTES: u64 = 2 << 30;

/// The first 8 bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"RTBUNDLE";
/// The format version this program writes and reads (`docs/format.md` section 5).
pub const VERSION: u8 = 1;
/// Bytes of the header: magic, version, group id, count.
pub(crate) const HEADER: usize = 8 + 1 + 32 + 8;
/// The smallest encoded entry (public document, empty change), used to bound `count` before allocating.
pub(crate) const MIN_ENTRY: usize = 1 + 64 + 4;

/// Why a bundle could not be read. Nothing from it has been stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file does not start with [`MAGIC`].
    #[error("this is not a Roundtable bundle (it does not start with RTBUNDLE)")]
    NotABundle,
    /// A format version other than [`VERSION`].
    #[error(
        "this bundle has format version {0}, and this program reads version 1 (a newer Roundtable may read it)"
    )]
    Version(u8),
    /// Shorter than a header and a digest.
    #[error("the bundle is cut short: it ends before its header and check digest")]
    Truncated,
    /// The SHA-256 digest at the end does not match the bytes before it.
    #[error("the bundle is damaged or cut short: its check digest does not match its contents")]
    Digest,
    /// The header's count is more entries than the file's size could hold.
    #[error("the bundle says it holds {0} entries, more than its size allows")]
    Count(u64),
    #[error("entry {index} of the bundle cannot be read: {error}")]
    /// An entry's framing is broken.
    Entry {
        /// The entry's position in the bundle, from 0.
        index: u64,
        /// What is wrong with it.
        error: DecodeError,
    },
    /// Bytes between the last entry (by the header's count) and the digest.
    #[error("the bundle has {0} unexpected bytes after its last entry")]
    Trailing(usize),
    /// The input is larger than [`MAX_BUNDLE_BYTES`] (the given bound); it was not read further.
    #[error(
        "the file is larger than {} bytes, the largest bundle this program reads; it is not a whole bundle, or the group's record must be carried in more than one file",
        .0
    )]
    TooBig(u64),
    /// Reading the input failed (the kind and the system's words).
    #[error("the bundle could not be read ({1}); check the file and the disk, then try again")]
    Io(std::io::ErrorKind, String),
}

/// The valid genesis of `group` among `entries`, if there is one: an entry whose id is the group id,
/// whose signature verifies and that the rules accept as the group's first entry. A device starts a
/// group it does not hold only from this; a file that names a group without it is refused.
pub fn genesis_of<'a>(group: &GroupId, entries: &'a [Entry]) -> Option<&'a Entry> {
    entries.iter().find(|e| {
        e.parse().is_ok_and(|p| p.hash.0 == group.0)
            && crate::record::Record::new(*group)
                .ingest(vec![(*e).clone()])
                .accepted
                .len()
                == 1
    })
}

/// Writes a bundle.
pub fn encode(group: &GroupId, entries: &[Entry]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(HEADER + 32 + entries.iter().map(Entry::encoded_len).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&group.0);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        e.encode_into(&mut out);
    }
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    out
}

/// Checks the magic and version and reads the header: the group id and the entry count. `bytes` is
/// the file's start (all of it when it is shorter than a header).
pub(crate) fn header(bytes: &[u8]) -> Result<(GroupId, u64), BundleError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    if bytes.len() < 9 {
        return Err(BundleError::Truncated);
    }
    if bytes[8] != VERSION {
        return Err(BundleError::Version(bytes[8]));
    }
    if bytes.len() < HEADER {
        return Err(BundleError::Truncated);
    }
    let mut group = [0u8; 32];
    group.copy_from_slice(&bytes[9..41]);
    let mut count_bytes = [0u8; 8];
    count_bytes.copy_from_slice(&bytes[41..49]);
    Ok((GroupId::from_bytes(group), u64::from_le_bytes(count_bytes)))
}

/// Reads a bundle: its group id and entries, after checking its framing and digest. The first
/// error, in this order: the header, a file shorter than a header and a digest, the digest, the
/// count, an entry, trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<(GroupId, Vec<Entry>), BundleError> {
    let mut r = BundleReader::new(bytes)?;
    let entries = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((r.group(), entries))
}

/// What a lenient read of a bundle found: everything readable, and every problem with the framing.
#[derive(Debug)]
pub struct Salvaged {
    /// The group the header names (every entry is verified against it).
    pub group: GroupId,
    /// The entry count the header gives (what a whole bundle would hold).
    pub count: u64,
    /// The entries that could be read, in bundle order.
    pub entries: Vec<Entry>,
    /// Framing problems (digest, count, a damaged entry, cut short, trailing bytes); empty if none.
    pub problems: Vec<BundleError>,
}

/// Reads as much of a bundle as can be read, for an auditor who must report every problem rather
/// than stop at the first. Fails only when the header itself is unreadable.
pub fn decode_lenient(bytes: &[u8]) -> Result<Salvaged, BundleError> {
    let mut r = BundleReader::lenient(bytes)?;
    let entries = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok(Salvaged {
        group: r.group(),
        count: r.entry_count(),
        entries,
        problems: r.into_problems(),
    })
}
