//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test, so that what the
//! fuzzer explores and what CI replays are the same code. Each must return normally on any input.

use std::path::{Path, PathBuf};

use crate::body::{Body, Rule};
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
