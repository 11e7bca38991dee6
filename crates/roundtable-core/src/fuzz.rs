//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test, so that what the
//! fuzzer explores and what CI replays are the same code. Each must return normally on any input.

use std::path::{Path, PathBuf};

use crate::body::{Body, Rule};
use crate::bundle::BundleError;
use crate::entry::{DocRef, Entry};
use crate::id::{EntryId, GroupId};
use crate::identity::DeviceKey;
use crate::record::Record;

/// Entry decoding, change parsing and signature checking on arbitrary bytes.
pub fn entry(data: &[u8]) {
    if let Ok(e) = Entry::decode(data) {
        assert_eq!(
            Entry::decode(&e.encode()).as_ref(),
            Ok(&e),
            "encoding round-trips"
        );
        if let Ok(p) = e.parse() {
            let _ = crate::entry::validate_signature(&e, &p, &GroupId::from_bytes([7; 32]), &[]);
        }
    }
}

/// Bundle decoding on arbitrary bytes; a decoded bundle re-encodes to the same bytes. The input is
/// tried as it is and with a correct digest appended, so the fuzzer also reaches the framing behind it.
pub fn bundle(data: &[u8]) {
    use sha2::{Digest, Sha256};
    bundle_stream(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&Sha256::digest(data));
    for bytes in [data, &sealed] {
        let strict = crate::bundle::decode(bytes);
        if let Ok((g, entries)) = &strict {
            assert_eq!(
                crate::bundle::encode(g, entries),
                bytes,
                "a decoded bundle re-encodes identically"
            );
        }
        // The auditor's lenient reader: never panics, and agrees with the strict one on good bundles.
        if let Ok(s) = crate::bundle::decode_lenient(bytes)
            && let Ok((g, entries)) = strict
        {
            assert!(s.problems.is_empty(), "a good bundle has no problems");
            assert_eq!((s.group, s.entries), (g, entries));
        }
    }
}

/// The streaming reader on arbitrary bytes: it gives exactly what the reference in-memory decoders
/// ([`reference`]) give (the same entries, the same error or problems), however the input arrives.
/// The input is tried as it is and with a correct digest appended, and each is fed whole, one byte
/// per read, and in reads of sizes taken from the input.
pub fn bundle_stream(data: &[u8]) {
    use sha2::{Digest, Sha256};
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&Sha256::digest(data));
    let step = 1 + data.first().copied().unwrap_or(0) as usize * 37;
    for bytes in [data, &sealed] {
        let strict = reference::decode(bytes);
        let lenient = reference::decode_lenient(bytes);
        for chunk in [usize::MAX, 1, step] {
            assert_eq!(
                stream_strict(Chunked::new(bytes, chunk)),
                strict,
                "the stream and the reference agree (strict, reads of {chunk})"
            );
            assert_eq!(
                stream_lenient(Chunked::new(bytes, chunk)),
                lenient,
                "the stream and the reference agree (lenient, reads of {chunk})"
            );
        }
        assert_eq!(crate::bundle::decode(bytes), strict, "decode is the stream");
    }
}

/// All of a strict stream: the group and entries, or its one error.
pub fn stream_strict(input: impl std::io::Read) -> Result<(GroupId, Vec<Entry>), BundleError> {
    let mut r = crate::bundle::BundleReader::new(input)?;
    let entries = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((r.group(), entries))
}

/// All of a lenient stream: group, count, entries and problems.
#[allow(clippy::type_complexity)]
pub fn stream_lenient(
    input: impl std::io::Read,
) -> Result<(GroupId, u64, Vec<Entry>, Vec<BundleError>), BundleError> {
    let mut r = crate::bundle::BundleReader::lenient(input)?;
    let entries = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((r.group(), r.entry_count(), entries, r.into_problems()))
}

/// A reader that hands out at most `chunk` bytes per read, as a pipe or a slow disk may.
pub struct Chunked<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl<'a> Chunked<'a> {
    /// Reads `bytes`, at most `chunk` (at least 1) per call.
    pub fn new(bytes: &'a [u8], chunk: usize) -> Self {
        Chunked {
            bytes,
            chunk: chunk.max(1),
        }
    }
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// The in-memory bundle decoders as they were before the streaming reader, kept as its oracle:
/// the whole file in a slice, the digest checked first. Only tests and fuzzers call them.
pub mod reference {
    use sha2::{Digest, Sha256};

    use crate::bundle::{BundleError, HEADER, MIN_ENTRY, header};
    use crate::entry::Entry;
    use crate::id::GroupId;

    /// The strict decoder: the group and entries, or the first error.
    pub fn decode(bytes: &[u8]) -> Result<(GroupId, Vec<Entry>), BundleError> {
        let (group, count) = header(bytes)?;
        if bytes.len() < HEADER + 32 {
            return Err(BundleError::Truncated);
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        let want: [u8; 32] = Sha256::digest(body).into();
        if want != digest {
            return Err(BundleError::Digest);
        }
        let mut rest = &body[HEADER..];
        if count > (rest.len() / MIN_ENTRY) as u64 {
            return Err(BundleError::Count(count));
        }
        let mut entries = Vec::new();
        for index in 0..count {
            let (e, used) =
                Entry::decode_prefix(rest).map_err(|error| BundleError::Entry { index, error })?;
            entries.push(e);
            rest = &rest[used..];
        }
        if !rest.is_empty() {
            return Err(BundleError::Trailing(rest.len()));
        }
        Ok((group, entries))
    }

    /// The lenient decoder: group, count, entries and problems.
    #[allow(clippy::type_complexity)]
    pub fn decode_lenient(
        bytes: &[u8],
    ) -> Result<(GroupId, u64, Vec<Entry>, Vec<BundleError>), BundleError> {
        let (group, count) = header(bytes)?;
        let mut problems = Vec::new();
        let digest_ok = bytes.len() >= HEADER + 32 && {
            let (body, digest) = bytes.split_at(bytes.len() - 32);
            <[u8; 32]>::from(Sha256::digest(body)) == digest
        };
        if !digest_ok {
            problems.push(BundleError::Digest);
        }
        let end = if digest_ok {
            bytes.len() - 32
        } else {
            bytes.len()
        };
        let mut rest = &bytes[HEADER..end];
        if count > (rest.len() / MIN_ENTRY) as u64 {
            problems.push(BundleError::Count(count));
        }
        let mut entries = Vec::new();
        for index in 0..count {
            if rest.is_empty() {
                problems.push(BundleError::Truncated);
                break;
            }
            match Entry::decode_prefix(rest) {
                Ok((e, used)) => {
                    entries.push(e);
                    rest = &rest[used..];
                }
                Err(error) => {
                    problems.push(BundleError::Entry { index, error });
                    rest = &[];
                    break;
                }
            }
        }
        if !rest.is_empty() && (digest_ok || rest.len() != 32) {
            problems.push(BundleError::Trailing(rest.len()));
        }
        Ok((group, count, entries, problems))
    }
}

/// A bundle header (`RTBUNDLE`, version, group id, count: the first 49 bytes of the input, the rest
/// taken from the real header)
/// in front of a real group's genesis and one message, with a correct digest: decoding never
/// panics, and the file can start a group on a device only when its header names the genesis's
/// own group.
pub fn bundle_header(data: &[u8]) {
    use sha2::{Digest, Sha256};
    let key = DeviceKey::from_secret(&[3; 32]);
    let Ok((mut rec, genesis)) = Record::create(&key, "Fuzz", Rule::Consent, 1, "Ana", "", 0)
    else {
        panic!("genesis must build");
    };
    let Ok((_, thread)) = rec.author(&key, Body::Thread { title: "T".into() }, 1) else {
        panic!("a thread must build");
    };
    let real = crate::bundle::encode(&rec.group(), &[genesis.clone(), thread.clone()]);
    // Header bytes the input does not give are the real header's (so a short input names the group).
    let mut head = real[..49].to_vec();
    let given = data.len().min(49);
    head[..given].copy_from_slice(&data[..given]);
    let mut bytes = head;
    bytes.extend_from_slice(&real[49..real.len() - 32]);
    bytes.extend_from_slice(data.get(49..).unwrap_or_default());
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    if let Ok((g, entries)) = crate::bundle::decode(&bytes) {
        let starts = crate::bundle::genesis_of(&g, &entries).is_some();
        assert_eq!(
            starts,
            g == rec.group() && entries.contains(&genesis),
            "only the genesis of the named group starts it"
        );
    }
    let _ = crate::bundle::decode_lenient(&bytes);
}

/// Arbitrary change bytes, correctly signed by a member, through the full rules of a live record.
///
/// The input is split on the byte sequence `"\xffNEXT"` into changes. Each is signed with a member's
/// key, so the fuzzer gets past the signature and exercises parsing, shape and every rule.
pub fn ingest(data: &[u8]) {
    let key = DeviceKey::from_secret(&[1; 32]);
    let Ok((mut live, genesis)) = Record::create(&key, "Fuzz", Rule::Consent, 1, "Ana", "", 0)
    else {
        panic!("genesis must build");
    };
    let Ok((_, thread)) = live.author(&key, Body::Thread { title: "t".into() }, 1) else {
        panic!("a member can start a thread");
    };
    let group = live.group();
    let mut fuzzed = vec![];
    for chunk in split(data, b"\xffNEXT") {
        let hash = crate::change::raw_change_hash(chunk).unwrap_or(EntryId::from_bytes([0; 32]));
        fuzzed.push(Entry::sign(
            &key,
            &group,
            DocRef::Public,
            chunk.to_vec(),
            &hash,
        ));
    }
    let out = live.ingest(fuzzed.clone());
    // Validity is a pure function of the entries: a fresh replica given everything at once agrees.
    let mut all = vec![genesis, thread];
    all.extend(fuzzed);
    let (fresh, _) = Record::from_entries(group, all.clone());
    if !out.rebuild {
        assert_eq!(live.heads(), fresh.heads(), "same entries, same heads");
        assert_eq!(live.len(), fresh.len(), "same entries, same verdicts");
    }
    // The auditor's path (signatures in batches on two threads, bodies decoded ahead) reaches the
    // same verdict on every entry as a member's.
    let mut audited = Record::new(group);
    audited.ingest_verified(crate::record::verify_signatures(&group, all, 2));
    assert_eq!(audited.heads(), fresh.heads(), "the auditor's heads");
    assert_eq!(audited.len(), fresh.len(), "the auditor's verdicts");
    let kinds = |r: &Record| -> Vec<(EntryId, &'static str)> {
        let mut v: Vec<_> = r
            .rejected()
            .iter()
            .map(|(id, why)| (*id, why.kind()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(kinds(&audited), kinds(&fresh), "the auditor's reasons");
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = vec![];
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= data.len() {
        if &data[i..i + sep.len()] == sep {
            out.push(&data[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&data[start..]);
    out
}

/// The files of a committed corpus folder with their bytes, sorted by name: what the replay tests of
/// every crate run through these entry points.
pub fn read_corpus(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(&p).map(|b| (p, b)))
        .collect()
}
