//! Moving the record by file: a bundle out, a bundle in.

use roundtable_core::{GroupId, Ingested, bundle};
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
    let (group, entries) = bundle::decode(bytes)?;
    if let Some(wanted) = want
        && wanted != group
    {
        return Err(AppError::WrongGroup {
            found: group,
            wanted,
        });
    }
    if entries.is_empty() && !home.holds(&group)? {
        return Err(AppError::EmptyBundle(group));
    }
    let mut g = home.open_or_new_group(&group)?;
    let out = home.ingest(&mut g, entries)?;
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
    Ok((bundle::encode(group, &entries), entries.len()))
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
