//! The auditor: verifies a whole history from a bundle, offline, with no secret key.
//!
//! Council governance and inspectors must be able to check that a record is whole, that every entry
//! came from a member, and that decisions were counted honestly, without being members. [`audit`]
//! reads a bundle leniently (every framing problem is reported, not only the first), checks every
//! signature with `verify_strict` on as many threads as asked, then applies exactly the rules every
//! member's device applies ([`roundtable_core::Record`]), and reports:
//!
//! - every problem, each with a stable `kind`: framing (`bundle_digest`, `truncated`, ...), order
//!   (`out_of_order`), `duplicate`, `missing_dependency`, and every rule's kind (`bad_signature`, `fork`,
//!   `not_member`, `outcome_mismatch`, `removal_without_decision`, ...);
//! - the members and auditors, every decision recounted from its stances, every sealed thread with its
//!   reason and readers, entries written concurrently with their author's removal, and each member's
//!   participation (an auditor can see whether every voice was heard).
//!
//! **Invariant:** the auditor's verdict on each entry is the one every member's device reaches: it
//! runs the same rules on the same bytes. Its independence comes from `docs/format.md`, which lets a
//! program in another language repeat the checks (`tests/independent_verify.py` does).

use std::collections::{BTreeMap, HashMap, HashSet};

use roundtable_core::body::Body;
use roundtable_core::bundle::{self, BundleError};
use roundtable_core::entry::DecodeError;
use roundtable_core::record::verify_signatures;
use roundtable_core::{Counts, Decision, DeviceId, EntryId, GroupId, MemberId, Record};
use serde::Serialize;

mod html;

pub use html::render_html;

/// The input could not be read as a bundle at all (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("this is not a Roundtable bundle it can read: {0}")]
    Unreadable(#[from] BundleError),
    #[error("could not write the report: {0}")]
    Report(String),
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: String,
    /// The entry concerned, when there is one (its id; for an unreadable or forged entry, the SHA-256
    /// of its bytes).
    pub entry_id: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    pub member_id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditorRow {
    pub device_id: String,
    pub name: String,
}

/// A decision: what was recorded when it closed, and what the stances that counted then give.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRow {
    pub proposal_id: String,
    pub title: String,
    pub outcome_id: String,
    pub recorded: Count,
    pub recounted: Count,
    pub matches: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub decision: String,
    pub agree: u64,
    pub abstain: u64,
    pub disagree: u64,
    pub block: u64,
}

impl Count {
    fn of(d: Decision, c: Counts) -> Count {
        Count {
            decision: d.as_str().to_string(),
            agree: c.agree,
            abstain: c.abstain,
            disagree: c.disagree,
            block: c.block,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SealedRow {
    pub thread_id: String,
    pub title: String,
    pub reason: String,
    pub readers: Vec<String>,
    pub reader_names: Vec<String>,
    pub entries: usize,
    pub epochs: usize,
}

/// Equal voice: what each member did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Participation {
    pub member_id: String,
    pub name: String,
    pub threads: u64,
    pub messages: u64,
    pub proposals: u64,
    pub stances: u64,
    /// Stances that gave a reason.
    pub reasons: u64,
    /// Understanding checks given ("I understood this as ...").
    pub understanding_checks: u64,
    /// Of those, how many the author confirmed.
    pub understanding_confirmed: u64,
}

/// An entry written concurrently with its author's removal: kept, shown, never counted after it.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    pub kind: String,
    pub entry_id: String,
    pub member_id: String,
    pub detail: String,
}

/// The whole report (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verified: bool,
    pub group_id: String,
    pub group_name: String,
    /// Entries in the bundle that could be read.
    pub entries: usize,
    /// Of those, the ones every member's device accepts.
    pub valid_entries: usize,
    pub members: Vec<MemberRow>,
    pub auditors: Vec<AuditorRow>,
    pub problems: Vec<Problem>,
    pub decisions: Vec<DecisionRow>,
    pub sealed_threads: Vec<SealedRow>,
    pub participation: Vec<Participation>,
    pub flags: Vec<Flag>,
    /// The plain-words summary the HTML report opens with.
    pub summary: Vec<String>,
}

fn framing_kind(e: &BundleError) -> &'static str {
    match e {
        BundleError::Digest => "bundle_digest",
        BundleError::Count(_) => "bundle_count",
        // An entry that runs past the end of the file: the bundle was cut short inside it.
        BundleError::Entry {
            error: DecodeError::Truncated(_),
            ..
        } => "truncated",
        BundleError::Entry { .. } => "unreadable_entry",
        BundleError::Truncated => "truncated",
        BundleError::Trailing(_) => "trailing_bytes",
        _ => "bundle",
    }
}

/// Audits a bundle's bytes, checking signatures on `threads` threads.
pub fn audit(bytes: &[u8], threads: usize) -> Result<Report, AuditError> {
    let salvaged = bundle::decode_lenient(bytes)?;
    let group = salvaged.group;
    let mut problems: Vec<Problem> = salvaged
        .problems
        .iter()
        .map(|e| Problem {
            kind: framing_kind(e).to_string(),
            entry_id: None,
            detail: e.to_string(),
        })
        .collect();
    let n = salvaged.entries.len();
    let verified = verify_signatures(&group, salvaged.entries, threads);
    let order = order_problems(&verified.links());
    let mut record = Record::new(group);
    let out = record.ingest_verified(verified);
    if out.rebuild {
        // Cannot happen on a fresh record (nothing is applied before forks are settled); say so if it does.
        problems.push(Problem {
            kind: "internal".into(),
            entry_id: None,
            detail: "the record asked to be rebuilt; please report this".into(),
        });
    }
    // Order matters for the entries that count; a rejected entry is reported for itself.
    let rejected: HashSet<String> = out.rejected.iter().map(|r| r.id.to_string()).collect();
    problems.extend(
        order
            .into_iter()
            .filter(|p| p.entry_id.as_ref().is_none_or(|id| !rejected.contains(id))),
    );
    for r in &out.rejected {
        problems.push(Problem {
            kind: r.reason.kind().to_string(),
            entry_id: Some(r.id.to_string()),
            detail: r.reason.to_string(),
        });
    }
    if out.duplicates > 0 {
        problems.push(Problem {
            kind: "duplicate".into(),
            entry_id: None,
            detail: format!(
                "{} entries appear in the bundle more than once",
                out.duplicates
            ),
        });
    }
    let present: HashSet<EntryId> = out
        .accepted
        .iter()
        .chain(out.pending.iter().map(|(id, _)| id))
        .copied()
        .collect();
    for (id, e) in &out.pending {
        let missing: Vec<String> = e
            .parse()
            .map(|p| {
                p.change
                    .deps()
                    .iter()
                    .map(|d| EntryId::from(*d))
                    .filter(|d| !present.contains(d) && !record.contains(d))
                    .map(|d| d.to_string())
                    .collect()
            })
            .unwrap_or_default();
        problems.push(Problem {
            kind: "missing_dependency".into(),
            entry_id: Some(id.to_string()),
            detail: if missing.is_empty() {
                "it builds on an entry that is itself waiting for a missing entry".into()
            } else {
                format!(
                    "it builds on entries the bundle does not hold: {}",
                    missing.join(", ")
                )
            },
        });
    }
    // The outcome mismatches are problems; the decision table shows them beside the honest ones.
    let mut decisions = decisions(&record);
    for r in &out.rejected {
        if let (
            roundtable_core::Invalid::OutcomeMismatch { .. },
            Some(Body::Outcome {
                proposal,
                decision,
                counts,
                ..
            }),
        ) = (&r.reason, record.body_of(&r.entry))
        {
            let recounted = record.recount_now(&proposal);
            decisions.push(DecisionRow {
                proposal_id: proposal.to_string(),
                title: proposal_title(&record, &proposal),
                outcome_id: r.id.to_string(),
                recorded: Count::of(decision, counts),
                recounted: Count::of(recounted.1, recounted.0),
                matches: false,
            });
        }
    }
    let report = build(&record, group, n, problems, decisions);
    Ok(report)
}

/// A bundle lists entries in a causal order: nothing before what it builds on. `links` are the
/// entries whose signatures hold, in bundle order, with what each builds on.
fn order_problems(links: &[(EntryId, Vec<EntryId>)]) -> Vec<Problem> {
    let mut position: HashMap<EntryId, usize> = HashMap::with_capacity(links.len());
    for (i, (id, _)) in links.iter().enumerate() {
        position.entry(*id).or_insert(i);
    }
    let mut out = Vec::new();
    for (i, (id, deps)) in links.iter().enumerate() {
        if let Some(later) = deps
            .iter()
            .find(|d| position.get(d).is_some_and(|&j| j > i))
        {
            out.push(Problem {
                kind: "out_of_order".into(),
                entry_id: Some(id.to_string()),
                detail: format!(
                    "it comes before entry {later}, which it builds on: the bundle has been reordered"
                ),
            });
        }
    }
    out
}

fn proposal_title(record: &Record, p: &EntryId) -> String {
    match record.entry(p).map(|(_, m)| &m.body) {
        Some(Body::Proposal { title, .. }) => title.clone(),
        _ => String::new(),
    }
}

fn decisions(record: &Record) -> Vec<DecisionRow> {
    let mut rows = Vec::new();
    for id in record.causal_order() {
        let Some((_, m)) = record.entry(id) else {
            continue;
        };
        let Body::Outcome {
            proposal,
            decision,
            counts,
            ..
        } = &m.body
        else {
            continue;
        };
        let Some((rc, rd)) = record.recount_at(proposal, id) else {
            continue;
        };
        rows.push(DecisionRow {
            proposal_id: proposal.to_string(),
            title: proposal_title(record, proposal),
            outcome_id: id.to_string(),
            recorded: Count::of(*decision, *counts),
            recounted: Count::of(rd, rc),
            matches: rc == *counts && rd == *decision,
        });
    }
    rows
}

fn build(
    record: &Record,
    group: GroupId,
    n: usize,
    problems: Vec<Problem>,
    decisions: Vec<DecisionRow>,
) -> Report {
    let members = record.members();
    let names: BTreeMap<MemberId, String> =
        members.iter().map(|m| (m.id, m.name.clone())).collect();
    let name = |m: &MemberId| names.get(m).cloned().unwrap_or_default();
    let mut part: BTreeMap<MemberId, Participation> = members
        .iter()
        .map(|m| {
            (
                m.id,
                Participation {
                    member_id: m.id.to_string(),
                    name: m.name.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut flags = Vec::new();
    for id in record.causal_order() {
        let Some((author, m)) = record.entry(id) else {
            continue;
        };
        if record.concurrent_with_removal(id) {
            flags.push(Flag {
                kind: "written_concurrently_with_removal".into(),
                entry_id: id.to_string(),
                member_id: author.to_string(),
                detail: format!(
                    "{} wrote this at the same time as their removal: it is kept and shown, and it never counts in a decision closed after the removal",
                    name(&author)
                ),
            });
        }
        let who = match &m.body {
            Body::Stance {
                on_behalf: Some(v), ..
            } => *v,
            _ => author,
        };
        let Some(p) = part.get_mut(&who) else {
            continue;
        };
        match &m.body {
            Body::Thread { .. } | Body::SealedThread { .. } => p.threads += 1,
            Body::Message { .. } | Body::Sealed { .. } => p.messages += 1,
            Body::Proposal { .. } => p.proposals += 1,
            Body::Stance { reason, .. } => {
                p.stances += 1;
                if !reason.trim().is_empty() {
                    p.reasons += 1;
                }
            }
            Body::Understand { .. } => {
                p.understanding_checks += 1;
                let confirmed = record.referrers(id).iter().any(|c| {
                    record
                        .entry(c)
                        .is_some_and(|(_, cm)| matches!(cm.body, Body::Confirm { .. }))
                });
                if confirmed {
                    p.understanding_confirmed += 1;
                }
            }
            _ => {}
        }
    }
    let sealed_threads: Vec<SealedRow> = record
        .threads()
        .iter()
        .filter_map(|t| record.sealed_thread(t).map(|i| (t, i)))
        .map(|(t, i)| SealedRow {
            thread_id: t.to_string(),
            title: i.title.clone(),
            reason: i.reason.clone(),
            readers: i.state.readers.iter().map(|r| r.to_string()).collect(),
            reader_names: i.state.readers.iter().map(&name).collect(),
            entries: i.entries.len(),
            epochs: i.state.epochs.len(),
        })
        .collect();
    let group_name = record
        .group_info()
        .map(|(n, _, _)| n.to_string())
        .unwrap_or_default();
    let verified = problems.is_empty() && !record.is_empty();
    let summary = summary(record, n, &problems, &decisions, &sealed_threads, &flags);
    Report {
        verified,
        group_id: group.to_string(),
        group_name,
        entries: n,
        valid_entries: record.len(),
        members: members
            .iter()
            .map(|m| MemberRow {
                member_id: m.id.to_string(),
                name: m.name.clone(),
                status: m.status.as_str().to_string(),
            })
            .collect(),
        auditors: record
            .auditors()
            .into_iter()
            .map(|(d, n): (DeviceId, String)| AuditorRow {
                device_id: d.to_string(),
                name: n,
            })
            .collect(),
        problems,
        decisions,
        sealed_threads,
        participation: part.into_values().collect(),
        flags,
        summary,
    }
}

/// Thousands with commas, as people read them: 4,213.
pub fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", grouped(n))
    }
}

fn summary(
    record: &Record,
    n: usize,
    problems: &[Problem],
    decisions: &[DecisionRow],
    sealed: &[SealedRow],
    flags: &[Flag],
) -> Vec<String> {
    let mut s = Vec::new();
    let valid = record.len();
    if valid == n && problems.is_empty() {
        s.push(format!(
            "All {} are signed by members.",
            plural(n, "entry", "entries")
        ));
    } else {
        s.push(format!(
            "{} of the {} in this bundle are signed by members and follow the group's rules.",
            grouped(valid),
            plural(n, "entry", "entries")
        ));
    }
    let honest = decisions.iter().filter(|d| d.matches).count();
    if decisions.is_empty() {
        s.push("No decision has been closed yet.".into());
    } else if honest == decisions.len() {
        s.push(format!(
            "{} recounted and {}.",
            if decisions.len() == 1 {
                "1 decision was".to_string()
            } else {
                format!("{} decisions were", grouped(decisions.len()))
            },
            if decisions.len() == 1 {
                "it matches"
            } else {
                "they match"
            }
        ));
    } else {
        s.push(format!(
            "{} of {} decisions recounted do not match what was recorded.",
            decisions.len() - honest,
            decisions.len()
        ));
    }
    let changed = problems.iter().any(|p| {
        matches!(
            p.kind.as_str(),
            "bundle_digest" | "bad_signature" | "malformed" | "unreadable_entry" | "truncated"
        )
    });
    let missing = problems
        .iter()
        .any(|p| matches!(p.kind.as_str(), "missing_dependency" | "truncated"));
    if !changed && !missing {
        s.push("Nothing was changed and nothing is missing.".into());
    } else {
        if changed {
            s.push("Some entries were changed or damaged after they were signed.".into());
        }
        if missing {
            s.push("Some entries are missing from the bundle.".into());
        }
    }
    if !sealed.is_empty() {
        s.push(format!(
            "{} sealed; each says who can read it and why.",
            if sealed.len() == 1 {
                "1 thread is".to_string()
            } else {
                format!("{} threads are", sealed.len())
            }
        ));
    }
    if !flags.is_empty() {
        s.push(format!(
            "{} written at the same time as the author's removal (kept, and not counted after it).",
            plural(flags.len(), "entry was", "entries were")
        ));
    }
    if problems.is_empty() {
        s.push("No problems were found.".into());
    } else {
        s.push(format!(
            "{} found: each is listed below with its reason.",
            plural(problems.len(), "problem was", "problems were")
        ));
    }
    s
}
