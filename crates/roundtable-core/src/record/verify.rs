//! The signature phase, on its own: [`verify_signatures`] parses every entry and checks its
//! signature by the signature rule on several threads, in batches ([`validate_signatures`]), for the
//! auditor's large bundles, and [`Record::ingest_verified`] then runs every rule on what passed.
//!
//! **Invariant:** a [`Verified`] is made only by [`verify_signatures`], so
//! [`Record::ingest_verified`] never skips a signature check. An entry that fails is keyed by the
//! SHA-256 of its encoded bytes (`digest_id`), never by the change hash it claims, so a forged copy
//! never shares the real entry's id.

use super::Ingested;
use super::{Record, Rejection};
use crate::change::ParsedChange;
use crate::entry::{DocRef, Entry, validate_signatures};
use crate::id::{EntryId, GroupId};
use crate::invalid::Invalid;

impl Record {
    /// Ingests entries whose signatures [`verify_signatures`] already checked (in parallel); every
    /// rule still runs. Entries that failed the check are reported as rejected.
    pub fn ingest_verified(&mut self, v: Verified) -> Ingested {
        let batch = v.ok.into_iter().map(|(e, p)| (e, Ok(p))).collect();
        let mut out = self.ingest_parsed(batch, false);
        let mut rejected = v.rejected;
        rejected.append(&mut out.rejected);
        out.rejected = rejected;
        out
    }
}

/// Entries whose signatures were checked by [`verify_signatures`]; only that function makes one.
pub struct Verified {
    ok: Vec<(Entry, ParsedChange)>,
    rejected: Vec<Rejection>,
}

impl Verified {
    /// Adds the verdicts on the next part of the same bundle, checked by [`verify_signatures`]
    /// (so a bundle read as a stream is checked part by part); bundle order is kept.
    pub fn append(&mut self, mut next: Verified) {
        self.ok.append(&mut next.ok);
        self.rejected.append(&mut next.rejected);
    }

    /// How many entries passed the check.
    pub fn passed(&self) -> usize {
        self.ok.len()
    }

    /// For each entry that passed, in bundle order: its id and the ids it builds on.
    pub fn links(&self) -> Vec<(EntryId, Vec<EntryId>)> {
        self.ok
            .iter()
            .map(|(_, p)| {
                (
                    p.hash,
                    p.change.deps().iter().map(|d| EntryId::from(*d)).collect(),
                )
            })
            .collect()
    }
}

/// Parses every entry and checks its signature by the signature rule, in batches (each entry gets
/// the verdict [`Record::ingest`]'s single check gives it), on `threads` threads. Bundle order is kept.
pub fn verify_signatures(group: &GroupId, entries: Vec<Entry>, threads: usize) -> Verified {
    let threads = threads.clamp(1, 64);
    // Parse, then the signatures, then the document kind: the order of the single check.
    let check = |c: &[Entry]| -> Vec<Result<ParsedChange, Invalid>> {
        let parsed: Vec<Result<ParsedChange, Invalid>> =
            c.iter().map(|e| e.parse().map_err(Invalid::from)).collect();
        let pairs: Vec<(&Entry, &ParsedChange)> = c
            .iter()
            .zip(&parsed)
            .filter_map(|(e, p)| p.as_ref().ok().map(|p| (e, p)))
            .collect();
        let mut sigs = validate_signatures(group, &pairs).into_iter();
        c.iter()
            .zip(parsed)
            .map(|(e, p)| {
                let p = p?;
                // One verdict per parsed entry, in order.
                sigs.next()
                    .unwrap_or(Err(crate::entry::SignatureError::Mismatch))?;
                if e.doc != DocRef::Public {
                    return Err(Invalid::UnsupportedDocument);
                }
                Ok(p)
            })
            .collect()
    };
    let verdicts: Vec<Result<ParsedChange, Invalid>> = if threads == 1 || entries.len() < 64 {
        check(&entries)
    } else {
        let chunk = entries.len().div_ceil(threads);
        std::thread::scope(|sc| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|c| (c.len(), sc.spawn(move || check(c))))
                .collect();
            handles
                .into_iter()
                .flat_map(|(n, h)| {
                    // Parsing catches Automerge's panics; should a check still panic, its entries are refused.
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Invalid::Malformed("the check failed".into())); n]
                    })
                })
                .collect()
        })
    };
    let mut v = Verified {
        ok: Vec::with_capacity(entries.len()),
        rejected: Vec::new(),
    };
    for (e, verdict) in entries.into_iter().zip(verdicts) {
        match verdict {
            Ok(p) => v.ok.push((e, p)),
            Err(reason) => v.rejected.push(Rejection {
                id: digest_id(&e),
                entry: e,
                reason,
            }),
        }
    }
    v
}

/// Id of an entry whose change could not be parsed: SHA-256 of its encoded bytes.
pub(super) fn digest_id(e: &Entry) -> EntryId {
    use sha2::{Digest, Sha256};
    EntryId(Sha256::digest(e.encode()).into())
}
