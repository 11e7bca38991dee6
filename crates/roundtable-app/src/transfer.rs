//! Moving the record by file: a bundle out, a bundle in.

use std::io::Read;

use roundtable_core::bundle::{BundleError, BundleReader};
use roundtable_core::change::raw_change_hash;
use roundtable_core::{Entry, GroupId, Ingested, bundle};
use roundtable_store::{Group, Home};

use crate::AppError;

/// What an import took.
pub struct Imported {
    /// The group, opened, with the entries taken.
    pub group: Group,
    /// What the rules made of the file's entries.
    pub ingested: Ingested,
}

/// Checks and stores the entries of a bundle file's bytes. With `want`, a bundle for another
/// group is refused. Refused as a whole (nothing taken) when the file is damaged, holds no
/// entries for a group this device lacks, or every new entry in it was refused. Entries that wait
/// for entries not seen yet are kept and count as taken.
pub fn import_bundle(
    home: &Home,
    bytes: &[u8],
    want: Option<GroupId>,
) -> Result<Imported, AppError> {
    import_bundle_from(home, || Ok(bytes), want)
}

/// Entries stored per [`Home::ingest`] call, at most: by count, and by change bytes (so a batch of
/// the largest entries stays small in memory).
const STREAM_BATCH: usize = roundtable_store::IMPORT_BATCH;
const STREAM_BATCH_BYTES: usize = 16 << 20;

/// [`import_bundle`] on a bundle read as a stream, holding a batch of entries at a time, never
/// the whole file. `open` gives the bundle from its start and is called twice: a first read checks
/// that the file is whole (framing and digest) and finds the group's genesis, storing nothing; the
/// second stores the entries in batches. Should the file change between the two (the second read
/// then fails), the batches already stored stay: each of their entries was judged by the rules.
pub fn import_bundle_from<R: Read>(
    home: &Home,
    mut open: impl FnMut() -> std::io::Result<R>,
    want: Option<GroupId>,
) -> Result<Imported, AppError> {
    let io = |e: std::io::Error| AppError::Bundle(BundleError::Io(e.kind(), e.to_string()));
    let reader = BundleReader::new(open().map_err(io)?)?;
    let group = reader.group();
    if let Some(wanted) = want
        && wanted != group
    {
        return Err(AppError::WrongGroup {
            found: group,
            wanted,
        });
    }
    let held = home.holds(&group)?;
    // First read: the whole file is checked before anything is stored. A group this device lacks
    // starts only from its genesis, which goes first (its place in the file is remembered).
    let mut count = 0u64;
    let mut genesis: Option<(u64, Entry)> = None;
    for e in reader {
        let e = e?;
        if !held
            && genesis.is_none()
            && raw_change_hash(&e.change).is_ok_and(|h| h.0 == group.0)
            && bundle::genesis_of(&group, std::slice::from_ref(&e)).is_some()
        {
            genesis = Some((count, e));
        }
        count += 1;
    }
    if count == 0 && !held {
        return Err(AppError::EmptyBundle(group));
    }
    // Second read: the entries, in batches.
    let mut reader = BundleReader::new(open().map_err(io)?)?;
    if reader.group() != group {
        return Err(AppError::Bundle(BundleError::Digest));
    }
    let mut g = home.open_or_new_group(&group)?;
    let skip = genesis.as_ref().map(|(i, _)| *i);
    let mut batch: Vec<Entry> = genesis.into_iter().map(|(_, e)| e).collect();
    let mut bytes = 0usize;
    let mut out = Ingested::default();
    let mut not_kept = 0usize;
    let mut index = 0u64;
    let mut calls = 0usize;
    loop {
        let next = reader.next().transpose()?;
        let last = next.is_none();
        if let Some(e) = next {
            if Some(index) != skip {
                bytes += e.change.len();
                batch.push(e);
            }
            index += 1;
        }
        if (last && (!batch.is_empty() || calls == 0))
            || batch.len() >= STREAM_BATCH
            || bytes >= STREAM_BATCH_BYTES
        {
            calls += 1;
            let part = home.ingest(&mut g, std::mem::take(&mut batch))?;
            not_kept += g.evidence_not_kept;
            out.accepted.extend(part.accepted);
            out.pending.extend(part.pending);
            out.rejected.extend(part.rejected);
            out.duplicates += part.duplicates;
            bytes = 0;
        }
        if last {
            break;
        }
    }
    g.evidence_not_kept = not_kept;
    // Pending entries that were accepted later in the same import are no longer pending.
    out.pending
        .retain(|(h, _)| !g.record.contains(h) && !g.record.rejected().contains_key(h));
    if out.accepted.is_empty() && !out.rejected.is_empty() {
        return Err(AppError::NothingTaken {
            waiting: out.pending.len(),
            not_kept: g.evidence_not_kept,
            already: out.duplicates,
            rejections: out.rejected,
        });
    }
    // A snapshot only speeds up the next open; the entries are already durable.
    let _ = home.checkpoint(&mut g);
    Ok(Imported {
        group: g,
        ingested: out,
    })
}

/// Every entry of the group as a bundle file's bytes, and how many entries it holds. Rejected
/// bytes that were never signed for this group stay on this device.
pub fn export_bundle(home: &Home, group: &GroupId) -> Result<(Vec<u8>, usize), AppError> {
    let entries = home.export_entries(group)?;
    let bytes = bundle::encode(group, &entries);
    fits(bytes.len(), bundle::MAX_BUNDLE_BYTES)?;
    Ok((bytes, entries.len()))
}

/// A bundle is written only if every device can read it back: no larger than `max`.
fn fits(len: usize, max: u64) -> Result<(), AppError> {
    match len as u64 {
        bytes if bytes > max => Err(AppError::TooBigToExport { bytes, max }),
        _ => Ok(()),
    }
}

/// The auditor's report on this device's copy of the group's record: the same program and the same
/// verdict an outside auditor gets from the exported bundle (`threads` threads check signatures).
pub fn audit_group(
    home: &Home,
    group: &GroupId,
    threads: usize,
) -> Result<roundtable_audit::Report, AppError> {
    let (bytes, _) = export_bundle(home, group)?;
    Ok(roundtable_audit::audit(&bytes, threads)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_larger_than_any_device_reads_is_not_written() {
        assert!(fits(100, 100).is_ok());
        let e = fits(101, 100).unwrap_err();
        assert_eq!(e.kind(), "too_big_to_export");
        assert!(e.to_string().contains("101 bytes"), "{e}");
        assert!(e.is_refusal());
    }
}
