//! The signature phase, on its own: [`verify_signatures`] parses every entry and checks its
//! signature by the signature rule on several threads, in batches ([`validate_signatures`]), for the
//! auditor's large bundles, and [`Record::ingest_verified`] then runs every rule on what passed.
//!
//! **Invariant:** a [`Verified`] is made only by [`verify_signatures`], so
//! [`Record::ingest_verified`] never skips a signature check. An entry that fails is keyed by the
//! SHA-256 of its encoded bytes (`digest_id`), never by the change hash it claims, so a forged copy
//! never shares the real entry's id.

use std::sync::Arc;

use super::Ingested;
use super::{Predecoded, Record, Rejection};
use crate::body::{Body, Containers, ShapeError, decode_change};
use crate::change::ParsedChange;
use crate::entry::{DocRef, Entry, validate_signatures};
use crate::id::{DeviceId, EntryId, GroupId};
use crate::invalid::Invalid;

impl Record {
    /// Ingests entries whose signatures [`verify_signatures`] already checked (in parallel); every
    /// rule still runs. Entries that failed the check are reported as rejected.
    pub fn ingest_verified(&mut self, v: Verified) -> Ingested {
        let batch =
            v.ok.into_iter()
                .map(|(e, p, body)| (e, Ok(p), body))
                .collect();
        let mut out = self.ingest_predecoded(batch, false);
        let mut rejected = v.rejected;
        rejected.append(&mut out.rejected);
        out.rejected = rejected;
        out
    }

    /// Notes where entries stand ([`Verified::positions`]), judging nothing: once
    /// [`Ingested::rebuild`] has stopped a walk over a bundle's parts, the rest of the bundle is read
    /// this way so that [`Record::forks`] names every fork for the walk again.
    pub fn note_positions(&mut self, positions: Vec<(DeviceId, u64, EntryId)>) {
        for (d, seq, h) in positions {
            self.positions.insert((d, seq), h);
        }
    }
}

/// Entries whose signatures were checked by a [`Verifier`]; only it makes one.
pub struct Verified {
    ok: Vec<(Entry, ParsedChange, Option<Predecoded>)>,
    rejected: Vec<Rejection>,
    /// The genesis's containers, once a part held the genesis: later parts' bodies are decoded
    /// against them.
    containers: Option<Arc<Containers>>,
}

impl Verified {
    /// How many entries passed the check.
    pub fn passed(&self) -> usize {
        self.ok.len()
    }

    /// For each entry that passed: its device, sequence number and id.
    pub fn positions(&self) -> Vec<(DeviceId, u64, EntryId)> {
        self.ok
            .iter()
            .map(|(_, p, _)| (DeviceId(p.actor), p.change.seq(), p.hash))
            .collect()
    }

    /// For each entry that passed, in bundle order: its id and the ids it builds on.
    pub fn links(&self) -> Vec<(EntryId, Vec<EntryId>)> {
        self.ok
            .iter()
            .map(|(_, p, _)| {
                (
                    p.hash,
                    p.change.deps().iter().map(|d| EntryId::from(*d)).collect(),
                )
            })
            .collect()
    }
}

/// Checks a bundle's entries part by part as it is read, as [`verify_signatures`] checks them all
/// at once, keeping what later parts need (the genesis's containers, once a part held it).
pub struct Verifier {
    group: GroupId,
    threads: usize,
    containers: Option<Arc<Containers>>,
}

impl Verifier {
    /// A checker for the entries of `group`'s bundle, on `threads` threads.
    pub fn new(group: GroupId, threads: usize) -> Self {
        Verifier {
            group,
            threads,
            containers: None,
        }
    }

    /// Checks the next part; bundle order is kept within it.
    pub fn check(&mut self, entries: Vec<Entry>) -> Verified {
        let v = check_part(&self.group, entries, self.threads, self.containers.clone());
        if self.containers.is_none() {
            self.containers = v.containers.clone();
        }
        v
    }
}

/// Parses every entry and checks its signature by the signature rule, in batches (each entry gets
/// the verdict [`Record::ingest`]'s single check gives it), on `threads` threads, and decodes each
/// record's body there too, so the serial rules walk does not. Bundle order is kept.
pub fn verify_signatures(group: &GroupId, entries: Vec<Entry>, threads: usize) -> Verified {
    Verifier::new(*group, threads).check(entries)
}

fn check_part(
    group: &GroupId,
    entries: Vec<Entry>,
    threads: usize,
    known: Option<Arc<Containers>>,
) -> Verified {
    let threads = threads.clamp(1, 64);
    // The genesis's containers, which every other body is decoded against. Any entry whose change
    // hashes to the group id has the genesis's very change, whatever its signature; if it is
    // refused, nothing else is judged and the bodies decoded here go unused.
    let containers: Option<Arc<Containers>> = known.or_else(|| {
        entries
            .iter()
            .filter_map(|e| e.parse().ok())
            .find(|p| p.hash == *group)
            .and_then(|p| decode_change(&p.change, &Containers::new()).ok())
            .map(|(_, c)| Arc::new(c))
    });
    let decode = |p: &ParsedChange| -> Option<Predecoded> {
        let c = containers.as_ref()?;
        if p.hash == *group {
            return None;
        }
        let body: Result<Body, ShapeError> = decode_change(&p.change, c).map(|(b, _)| b);
        Some(Predecoded {
            body,
            containers: Arc::clone(c),
        })
    };
    // Parse, then the signatures, then the document kind: the order of the single check.
    let check = |c: &[Entry]| -> Vec<Result<(ParsedChange, Option<Predecoded>), Invalid>> {
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
                let body = decode(&p);
                Ok((p, body))
            })
            .collect()
    };
    type Verdicts = Vec<Result<(ParsedChange, Option<Predecoded>), Invalid>>;
    let verdicts: Verdicts = if threads == 1 || entries.len() < 64 {
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
                        (0..n)
                            .map(|_| Err(Invalid::Malformed("the check failed".into())))
                            .collect()
                    })
                })
                .collect()
        })
    };
    let mut v = Verified {
        ok: Vec::with_capacity(entries.len()),
        rejected: Vec::new(),
        containers: containers.clone(),
    };
    for (e, verdict) in entries.into_iter().zip(verdicts) {
        match verdict {
            Ok((p, body)) => v.ok.push((e, p, body)),
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
