//! The auditor: verifies a whole history from a bundle, offline, with no secret key.
//!
//! Council governance and inspectors must be able to check that a record is whole, that every entry
//! came from a member, and that decisions were counted honestly, without being members. [`audit`]
//! reads a bundle leniently (every framing failure is reported, not only the first), checks every
//! signature by the signature rule (`docs/format.md`), in batches, on as many threads as asked, then applies exactly the rules every
//! member's device applies ([`roundtable_core::Record`]), and reports:
//!
//! - every problem, each with a stable `kind` (`docs/format.md` section 11 lists them all): a damaged
//!   file (`bundle_damaged`, with the framing failures in [`Report::damaged`]), an unreadable change
//!   (`change_checksum`, ...), `missing_dependency`, and every rule's kind (`bad_signature`, `fork`,
//!   `not_member`, `outcome_mismatch`, `removal_without_decision`, ...);
//! - notes that forge nothing and change no verdict: entries out of causal order, repeated entries;
//! - the members and auditors, every decision recounted from its stances, every sealed thread with its
//!   reason and readers, entries written concurrently with their author's removal, and each member's
//!   participation (an auditor can see whether every voice was heard).
//!
//! **Invariant:** the auditor's verdict on each entry is the one every member's device reaches: it
//! runs the same rules on the same bytes. Its independence comes from `docs/format.md`, which lets a
//! program in another language repeat the checks (`tests/independent_verify.py` does).
//!
//! **Invariant:** every problem names an entry by its entry id (the change hash, `docs/format.md`
//! section 2) whenever the change's bytes give one, so a refused entry and the entries waiting on it
//! carry the same id. Only an entry whose change has no hash is named by the SHA-256 of its bytes.

#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};

use roundtable_core::body::Body;
use std::io::{Read, Seek, SeekFrom};

use roundtable_core::bundle::{BundleError, BundleReader};
use roundtable_core::change::{ChangeError, parse_change, raw_change_hash};
use roundtable_core::entry::DecodeError;
use roundtable_core::record::{Forks, Rejection, Verified, Verifier};
use roundtable_core::{Counts, Decision, DeviceId, EntryId, GroupId, Invalid, MemberId, Record};
use serde::Serialize;

mod html;

pub use html::render_html;

/// The input could not be read as a bundle at all (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The header is unreadable (not a bundle, another version, too short): nothing to audit.
    #[error("this is not a Roundtable bundle it can read: {0}")]
    Unreadable(#[from] BundleError),
    /// The HTML page could not be rendered.
    #[error("could not write the report: {0}")]
    Report(String),
}

/// One problem found: a report with any problem is not verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable kind: a framing, change or rule check (`docs/format.md` section 11).
    pub kind: String,
    /// The entry concerned, when there is one: its entry id (`docs/format.md` section 2); only for an
    /// entry whose change has no hash, the SHA-256 of its encoded bytes (the detail then says so).
    pub entry_id: Option<String>,
    /// What is wrong, in words.
    pub detail: String,
}

/// Something about the file that forges nothing and changes no verdict (`docs/format.md` section 5:
/// readers must not rely on order, and a repeated entry is the same entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// `out_of_order` or `duplicate`.
    pub kind: String,
    /// The entry concerned, by its entry id.
    pub entry_id: Option<String>,
    /// What was seen, in words.
    pub detail: String,
}

/// One way the file's framing fails (`docs/format.md` section 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// `bundle_digest`, `bundle_count`, `truncated_bundle`, `truncated_entry`, `trailing_bytes`, ...
    pub kind: String,
    /// The failure in words.
    pub detail: String,
}

/// The file is not a whole bundle: how its framing fails, and what its readable part proves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Every framing failure found, not only the first.
    pub failures: Vec<Failure>,
    /// The entry count the header gives.
    pub declared_entries: u64,
    /// What the readable entries prove on their own.
    pub salvaged: Salvage,
}

/// The entries read from a damaged file, judged on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Salvage {
    /// Entries that could be read.
    pub entries: usize,
    /// Of those, the ones every member's device accepts.
    pub valid_entries: usize,
    /// Every entry read is accepted and nothing but the damage is wrong. Entries may still be missing:
    /// a damaged file cannot say what it lost.
    pub verified: bool,
}

/// Someone who has been a member, as the record stands at the end of the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    /// Their member id, in hex.
    pub member_id: String,
    /// The name they joined with.
    pub name: String,
    /// `active`, `left` or `removed`.
    pub status: String,
}

/// An auditor the group let in (by a passed proposal), at the end of the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct AuditorRow {
    /// The auditor's device id, in hex.
    pub device_id: String,
    /// The name the group gave it.
    pub name: String,
}

/// A keeper the group named (by a passed proposal) and has not stopped, at the end of the bundle:
/// a device that holds and passes on the record, and never writes nor reads sealed words.
#[derive(Debug, Clone, Serialize)]
pub struct KeeperRow {
    /// The keeper's device id, in hex.
    pub device_id: String,
    /// The name the group gave it.
    pub name: String,
}

/// A decision: what was recorded when it closed, and what the stances that counted then give.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRow {
    /// The proposal's entry id.
    pub proposal_id: String,
    /// The proposal's title.
    pub title: String,
    /// The closing outcome's entry id.
    pub outcome_id: String,
    /// What the outcome entry says.
    pub recorded: Count,
    /// The recount from the stances in the outcome's causal past.
    pub recounted: Count,
    /// Whether both agree. Every row is a valid close, so it is always true (the rules refuse a
    /// close that does not match, as the problem `outcome_mismatch`); the report shows it checked.
    pub matches: bool,
    /// Whether this is the outcome that stands now: false for a close that conflicts with another
    /// and lost (fewer views counted, or a tie against "not passed"), or one made by a member
    /// concurrently with their removal.
    pub stands: bool,
    /// Members whose view counted when it closed.
    pub answered: u64,
    /// Members active when it closed: a decision with `answered < members` was taken without
    /// every voice (allowed by the group's quorum; the report says so).
    pub members: u64,
}

/// A decision and the stance counts behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// `passed` or `not_passed`.
    pub decision: String,
    /// Members counted as agreeing.
    pub agree: u64,
    /// Members counted as abstaining.
    pub abstain: u64,
    /// Members counted as disagreeing.
    pub disagree: u64,
    /// Members counted as blocking.
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

/// A sealed thread's public facts at the end of the bundle (its words stay sealed).
#[derive(Debug, Clone, Serialize)]
pub struct SealedRow {
    /// The thread's entry id.
    pub thread_id: String,
    /// Its public title.
    pub title: String,
    /// Why it is sealed, as its starter said.
    pub reason: String,
    /// Its readers' member ids, sorted.
    pub readers: Vec<String>,
    /// The same readers' names, in the same order.
    pub reader_names: Vec<String>,
    /// Its sealed messages.
    pub entries: usize,
    /// Its key epochs (1 + the rekeys).
    pub epochs: usize,
}

/// Equal voice: what each member did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Participation {
    /// The member's id, in hex.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// Threads they started, open and sealed.
    pub threads: u64,
    /// Messages they wrote, open and sealed.
    pub messages: u64,
    /// Proposals they made.
    pub proposals: u64,
    /// Stances given, including those typed for them by a supporter.
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
    /// `written_concurrently_with_removal`.
    pub kind: String,
    /// The entry flagged.
    pub entry_id: String,
    /// Its author.
    pub member_id: String,
    /// What it means, in words.
    pub detail: String,
}

/// The whole report (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No problem at all: the file is a whole bundle and every entry in it is accepted.
    pub verified: bool,
    /// The group id the bundle's header names.
    pub group_id: String,
    /// The group's name from its genesis (empty when the genesis is not valid here).
    pub group_name: String,
    /// Entries in the bundle that could be read (every copy of a repeated entry counts).
    pub entries: usize,
    /// Of those, the ones every member's device accepts (each entry once).
    pub valid_entries: usize,
    /// `None` for a whole bundle. For a damaged file, its framing failures; everything else in the
    /// report then describes only the entries that could be read.
    pub damaged: Option<Damage>,
    /// Everyone who has been a member, with their standing.
    pub members: Vec<MemberRow>,
    /// The auditors let in.
    pub auditors: Vec<AuditorRow>,
    /// The keepers the group named and has not stopped.
    pub keepers: Vec<KeeperRow>,
    /// Every problem found; any one makes `verified` false.
    pub problems: Vec<Problem>,
    /// What the file does that forges nothing: never a reason for `verified` to be false.
    pub notes: Vec<Note>,
    /// Every valid close, recounted.
    pub decisions: Vec<DecisionRow>,
    /// Every sealed thread's public facts.
    pub sealed_threads: Vec<SealedRow>,
    /// What each member did.
    pub participation: Vec<Participation>,
    /// Entries written concurrently with their author's removal.
    pub flags: Vec<Flag>,
    /// The plain-words summary the HTML report opens with.
    pub summary: Vec<String>,
}

/// The kind of a framing failure; each names one check of `docs/format.md` section 5.
fn failure_kind(e: &BundleError) -> &'static str {
    match e {
        BundleError::Digest => "bundle_digest",
        BundleError::Count(_) => "bundle_count",
        // The file ends at an entry boundary, before `count` entries.
        BundleError::Truncated => "truncated_bundle",
        BundleError::Trailing(_) => "trailing_bytes",
        BundleError::Entry { error, .. } => match error {
            // An entry runs past the end of the file: the file was cut short inside it.
            DecodeError::Truncated(_) => "truncated_entry",
            DecodeError::DocKind(_) => "unknown_doc_kind",
            DecodeError::TooLarge(_) => "change_too_large",
            _ => "unreadable_entry",
        },
        // The header failures stop the audit (`AuditError::Unreadable`) and never get here.
        _ => "unreadable_bundle",
    }
}

fn failure(e: &BundleError, read: usize, count: u64) -> Failure {
    let detail = match e {
        BundleError::Truncated => {
            format!("the file ends after {read} entries, but its header says it holds {count}")
        }
        other => other.to_string(),
    };
    Failure {
        kind: failure_kind(e).to_string(),
        detail,
    }
}

/// The kind of a change that does not parse: one per check of `docs/format.md` section 3.
fn change_kind(e: &ChangeError) -> &'static str {
    match e {
        ChangeError::Size => "change_size",
        ChangeError::Magic => "change_magic",
        ChangeError::ChunkType(_) => "change_chunk_type",
        ChangeError::Length => "change_length",
        ChangeError::Checksum => "change_checksum",
        ChangeError::Automerge(_) => "change_undecodable",
        ChangeError::Actor => "change_actor",
        _ => "malformed",
    }
}

/// How the report names a refused entry: its entry id when its change has one (the rules key a
/// forged or relabelled entry by its bytes, so that it never shadows the genuine one; a report row is
/// no key, and the auditor needs the id the entries waiting on it name). `None`: no hash.
fn refused_id(r: &Rejection) -> Option<EntryId> {
    raw_change_hash(&r.entry.change).ok()
}

/// The problem kind of a refused entry: the rule's kind, and for an unparsable change which check failed.
fn refused_kind(r: &Rejection) -> &'static str {
    match &r.reason {
        Invalid::Malformed(_) => match parse_change(&r.entry.change) {
            Err(e) => change_kind(&e),
            // The parse failed in the first pass (a panic caught) but not now: say only "malformed".
            Ok(_) => r.reason.kind(),
        },
        other => other.kind(),
    }
}

/// Audits a bundle's bytes, checking signatures on `threads` threads.
pub fn audit(bytes: &[u8], threads: usize) -> Result<Report, AuditError> {
    audit_from(std::io::Cursor::new(bytes), threads)
}

/// Entries read before their signatures are checked, part by part, while the file is read.
const VERIFY_PART: usize = 16 * 1024;

/// Audits a bundle read as a stream (a file: never all of it in memory), the same report as
/// [`audit`] on its bytes. On more than one thread, the rules walk over a part runs on a thread
/// of its own while the next part's signatures are checked on `threads` threads; either way each
/// part's entries are dropped once judged and only the record's index stays. A failing input
/// ([`BundleError::Io`]) or one over [`roundtable_core::bundle::MAX_BUNDLE_BYTES`] is
/// [`AuditError::Unreadable`].
///
/// A fork whose losing entry comes in an earlier part than the entry it loses to cannot be undone
/// in a walk that has dropped its entries: the file is then read and judged again from the start
/// with every fork known ([`Record::expecting_forks`]), which is why the input must seek. Honest
/// bundles have no fork, so this costs a second reading only of a bundle that has one.
pub fn audit_from<R: Read + Seek>(input: R, threads: usize) -> Result<Report, AuditError> {
    audit_in_parts(input, threads, VERIFY_PART)
}

/// [`audit_from`] with parts of `part` entries: the report is the same for every size (tests
/// check it with parts of one entry and more, forks across parts included).
#[doc(hidden)]
pub fn audit_in_parts<R: Read + Seek>(
    mut input: R,
    threads: usize,
    part: usize,
) -> Result<Report, AuditError> {
    let part = part.max(1);
    let start = input.stream_position().map_err(io_error)?;
    let first = walk(&mut input, threads, part, None)?;
    if !first.walker.forked {
        return Ok(report(first));
    }
    let forks = first.walker.record.forks();
    drop(first);
    input.seek(SeekFrom::Start(start)).map_err(io_error)?;
    let mut second = walk(&mut input, threads, part, Some(forks))?;
    // Cannot happen (every fork is known from the start); say so if it does.
    second.internal = second.walker.forked;
    Ok(report(second))
}

fn io_error(e: std::io::Error) -> AuditError {
    AuditError::Unreadable(BundleError::Io(e.kind(), e.to_string()))
}

/// What the rules walk keeps across parts: the record, every refusal, the waiting entries in
/// bundle order, and what the order notes need.
struct Walker {
    record: Record,
    rejected: Vec<Rejection>,
    /// Entries left waiting at the end of their part, in bundle order (some are judged later).
    waiting: Vec<EntryId>,
    duplicates: usize,
    /// Entries (their first copy) that build on entries not seen before them, with those entries
    /// in the order they name them: the order notes, once the whole bundle is known.
    forward: Vec<(EntryId, Vec<EntryId>)>,
    /// How many copies of each repeated entry the bundle holds.
    copies: HashMap<EntryId, usize>,
    /// Set once a fork could not be settled in the walk; from then on positions are only noted.
    forked: bool,
}

impl Walker {
    fn new(record: Record) -> Self {
        Walker {
            record,
            rejected: Vec::new(),
            waiting: Vec::new(),
            duplicates: 0,
            forward: Vec::new(),
            copies: HashMap::new(),
            forked: false,
        }
    }

    /// Judges one part (entries in bundle order, after every earlier part).
    fn take(&mut self, v: Verified) {
        if self.forked {
            self.record.note_positions(v.positions());
            return;
        }
        // Order and repetition, among the entries whose signatures hold (a part's entries are
        // compared with the earlier parts', which the record has seen, and with each other).
        let mut here: HashSet<EntryId> = HashSet::with_capacity(v.passed());
        for (id, deps) in v.links() {
            if here.contains(&id) || self.record.has_seen(&id) {
                *self.copies.entry(id).or_insert(1) += 1;
                continue;
            }
            here.insert(id);
            let unseen: Vec<EntryId> = deps
                .into_iter()
                .filter(|d| !here.contains(d) && !self.record.has_seen(d))
                .collect();
            if !unseen.is_empty() {
                self.forward.push((id, unseen));
            }
        }
        let positions = v.positions();
        let out = self.record.ingest_verified(v);
        if out.rebuild {
            // Nothing of this part was applied; learn where its entries and the rest stand.
            self.forked = true;
            self.record.note_positions(positions);
            return;
        }
        self.duplicates += out.duplicates;
        self.rejected.extend(out.rejected);
        self.waiting
            .extend(out.pending.into_iter().map(|(id, _)| id));
    }
}

/// A walk over the whole file.
struct Walked {
    walker: Walker,
    group: GroupId,
    declared: u64,
    /// Entries read.
    n: usize,
    /// The file's framing failures.
    problems: Vec<BundleError>,
    /// The record asked to be rebuilt when it could not need to.
    internal: bool,
}

/// Reads the bundle part by part, checks each part's signatures and walks the rules over it (on
/// more than one thread, the walk of a part while the next is checked). If a fork must be settled
/// against an entry already judged, the walk stops judging (`walker.forked`) and reads on to learn
/// every fork, to walk again with them.
fn walk<R: Read>(
    input: R,
    threads: usize,
    part_size: usize,
    forks: Option<Forks>,
) -> Result<Walked, AuditError> {
    let mut reader = BundleReader::lenient(input)?;
    let group = reader.group();
    let declared = reader.entry_count();
    let mut record = Record::without_document(group);
    if let Some(f) = forks {
        record = record.expecting_forks(f);
    }
    let mut verifier = Verifier::new(group, threads);
    let mut walker = Walker::new(record);
    let n = if threads <= 1 || declared <= part_size as u64 {
        // One thread asked for (the walk then takes turns with the check), or one part (as the
        // header says; it only decides this): no thread to hand parts to.
        read_parts(&mut reader, &mut verifier, part_size, |v| {
            walker.take(v);
            true
        })?
    } else {
        // One part waits while the walker judges the one before it: at most three in memory.
        let (parts, next) = std::sync::mpsc::sync_channel::<Verified>(1);
        let (walked, read) = std::thread::scope(|s| {
            let w = s.spawn(move || {
                for v in next {
                    walker.take(v);
                }
                walker
            });
            let read = read_parts(&mut reader, &mut verifier, part_size, |v| {
                parts.send(v).is_ok()
            });
            drop(parts);
            (w.join(), read)
        });
        // The walk never panics on what a file holds; should it, the panic is the caller's, as
        // it was before the walk had its own thread.
        walker = walked.unwrap_or_else(|p| std::panic::resume_unwind(p));
        read?
    };
    Ok(Walked {
        walker,
        group,
        declared,
        n,
        problems: reader.into_problems(),
        internal: false,
    })
}

/// Reads entries, checks them `part` at a time and hands each part on (`give` says whether to go
/// on); returns how many entries were read.
fn read_parts<R: Read>(
    reader: &mut BundleReader<R>,
    verifier: &mut Verifier,
    part: usize,
    mut give: impl FnMut(Verified) -> bool,
) -> Result<usize, BundleError> {
    let mut entries = Vec::with_capacity(part.min(VERIFY_PART));
    let mut n = 0usize;
    for e in reader.by_ref() {
        entries.push(e?);
        n += 1;
        if entries.len() == part {
            let full = std::mem::replace(&mut entries, Vec::with_capacity(part));
            if !give(verifier.check(full)) {
                return Ok(n);
            }
        }
    }
    give(verifier.check(entries));
    Ok(n)
}

/// The report of a walk.
fn report(walked: Walked) -> Report {
    let Walked {
        walker,
        group,
        declared,
        n,
        problems: framing,
        internal,
    } = walked;
    let Walker {
        record,
        rejected,
        waiting,
        duplicates,
        forward,
        copies,
        ..
    } = walker;
    let failures: Vec<Failure> = framing.iter().map(|e| failure(e, n, declared)).collect();
    let mut problems = Vec::new();
    if !failures.is_empty() {
        problems.push(Problem {
            kind: "bundle_damaged".into(),
            entry_id: None,
            detail: format!(
                "the file is not a whole bundle, so it is refused as a whole ({}); this report shows only what the {} it could read prove on their own",
                failures
                    .iter()
                    .map(|f| f.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                plural(n, "entry", "entries")
            ),
        });
    }
    if internal {
        problems.push(Problem {
            kind: "internal".into(),
            entry_id: None,
            detail: "the record asked to be rebuilt; please report this".into(),
        });
    }
    // In order of id: the walk meets refusals part by part, and the report must not depend on
    // the parts' size.
    let mut rejected = rejected;
    rejected.sort_by_key(|r| r.id);
    // Every refused entry, by the id the report gives it.
    let mut refused: HashMap<EntryId, &'static str> = HashMap::new();
    for r in &rejected {
        let kind = refused_kind(r);
        let (id, detail) = match refused_id(r) {
            Some(id) => {
                refused.entry(id).or_insert(kind);
                let detail = if record.contains(&id) {
                    format!(
                        "{}; this is a copy of entry {id} with different bytes outside its change, and the genuine entry is in the bundle and counts",
                        r.reason
                    )
                } else {
                    r.reason.to_string()
                };
                (id, detail)
            }
            None => (
                r.id,
                format!(
                    "{}; its change has no entry id (docs/format.md section 3), so it is named by the SHA-256 of its encoded bytes",
                    r.reason
                ),
            ),
        };
        problems.push(Problem {
            kind: kind.to_string(),
            entry_id: Some(id.to_string()),
            detail,
        });
    }
    // Waiting at the end of their part and never judged after.
    let left: Vec<(EntryId, &roundtable_core::Entry)> = waiting
        .iter()
        .filter_map(|id| record.pending_entry(id).map(|e| (*id, e)))
        .collect();
    let pending: HashSet<EntryId> = left.iter().map(|(id, _)| *id).collect();
    for (id, e) in &left {
        let deps: Vec<EntryId> = e
            .parse()
            .map(|p| p.change.deps().iter().map(|d| EntryId::from(*d)).collect())
            .unwrap_or_default();
        let (mut on_refused, mut absent, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for d in deps.iter().filter(|d| !record.contains(d)) {
            if let Some(kind) = refused.get(d) {
                on_refused.push(format!("{d} ({kind})"));
            } else if pending.contains(d) {
                waiting.push(d.to_string());
            } else {
                absent.push(d.to_string());
            }
        }
        let mut parts = Vec::new();
        if !on_refused.is_empty() {
            parts.push(format!(
                "it builds on entries the bundle holds but that were refused (each is listed with its own problem): {}",
                on_refused.join(", ")
            ));
        }
        if !absent.is_empty() {
            parts.push(format!(
                "it builds on entries the bundle does not hold: {}",
                absent.join(", ")
            ));
        }
        if !waiting.is_empty() {
            parts.push(format!(
                "it builds on entries that are themselves waiting for a missing or refused entry: {}",
                waiting.join(", ")
            ));
        }
        problems.push(Problem {
            kind: "missing_dependency".into(),
            entry_id: Some(id.to_string()),
            detail: parts.join("; "),
        });
    }
    // Order and repetition forge nothing; they are notes about the entries that passed the signature
    // check (a refused entry is reported for itself).
    let rule_rejected: HashSet<EntryId> = rejected.iter().map(|r| r.id).collect();
    let notes = order_notes(&record, &forward, copies, &rule_rejected);
    // The outcome mismatches are problems; the decision table shows them beside the honest ones.
    let mut decisions = decisions(&record);
    for r in &rejected {
        if let (
            Invalid::OutcomeMismatch { .. },
            Some(Body::Outcome {
                proposal,
                decision,
                counts,
                ..
            }),
        ) = (&r.reason, record.body_of(&r.entry))
        {
            let recounted = record.recount_now(&proposal);
            let (answered, members) = record
                .tally_now(&proposal)
                .map(|t| {
                    (
                        t.views.len() as u64,
                        (t.views.len() + t.waiting.len()) as u64,
                    )
                })
                .unwrap_or_default();
            decisions.push(DecisionRow {
                answered,
                members,
                proposal_id: proposal.to_string(),
                title: proposal_title(&record, &proposal),
                outcome_id: r.id.to_string(),
                recorded: Count::of(decision, counts),
                recounted: Count::of(recounted.1, recounted.0),
                matches: false,
                stands: false,
            });
        }
    }
    // Closes made apart that disagree are shown to everyone until a close that sees them all settles it.
    for (proposal, st) in record.conflicts() {
        problems.push(Problem {
            kind: "conflicting_outcomes".into(),
            entry_id: Some(proposal.to_string()),
            detail: format!(
                "{} closes of \"{}\" were made without seeing each other and do not agree ({}); the one that counted more views stands, on a tie \"not passed\": {} ({}). A close that sees them all settles it",
                st.frontier.len(),
                proposal_title(&record, &proposal),
                st.frontier
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                st.outcome,
                st.decision.as_str()
            ),
        });
    }
    // Without the genesis nothing can be checked: not who the members are, nor the group's rules.
    if record.genesis().is_none() {
        problems.push(Problem {
            kind: "no_genesis".into(),
            entry_id: None,
            detail: format!(
                "the bundle does not hold the group's first entry (its genesis, whose id is the group id {group}), so none of its {} can be verified",
                plural(n, "entry", "entries")
            ),
        });
    }
    let damaged = (!failures.is_empty()).then(|| Damage {
        failures,
        declared_entries: declared,
        salvaged: Salvage {
            entries: n,
            valid_entries: record.len(),
            // Everything read is accepted: the only problem is the damage itself.
            verified: problems.len() == 1 && record.genesis().is_some(),
        },
    });
    build(
        &record,
        group,
        (n, duplicates),
        problems,
        notes,
        damaged,
        decisions,
    )
}

/// A bundle lists entries in a causal order (nothing before what it builds on), each once; a reader
/// must not rely on either. `forward` are the entries whose signatures hold that name entries not
/// seen before them (see [`Walker`]), in bundle order; such an entry is out of order when one of
/// them comes later in the bundle (the record has seen it by the end). Entries in `skip` (refused
/// by a rule) are reported for themselves.
fn order_notes(
    record: &Record,
    forward: &[(EntryId, Vec<EntryId>)],
    copies: HashMap<EntryId, usize>,
    skip: &HashSet<EntryId>,
) -> Vec<Note> {
    let mut out = Vec::new();
    for (id, unseen) in forward {
        if skip.contains(id) {
            continue;
        }
        if let Some(later) = unseen.iter().find(|d| record.has_seen(d)) {
            out.push(Note {
                kind: "out_of_order".into(),
                entry_id: Some(id.to_string()),
                detail: format!(
                    "it comes before entry {later}, which it builds on: the bundle has been reordered, which changes nothing"
                ),
            });
        }
    }
    let copies: BTreeMap<EntryId, usize> = copies.into_iter().collect();
    for (id, n) in copies {
        out.push(Note {
            kind: "duplicate".into(),
            entry_id: Some(id.to_string()),
            detail: format!(
                "it appears {n} times in the bundle; every copy is the same entry (the same change, so the same id) and it counts once"
            ),
        });
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
        let (answered, members) = record
            .tally_at(proposal, id)
            .map(|t| {
                (
                    t.views.len() as u64,
                    (t.views.len() + t.waiting.len()) as u64,
                )
            })
            .unwrap_or_default();
        rows.push(DecisionRow {
            answered,
            members,
            proposal_id: proposal.to_string(),
            title: proposal_title(record, proposal),
            outcome_id: id.to_string(),
            recorded: Count::of(*decision, *counts),
            recounted: Count::of(rd, rc),
            matches: rc == *counts && rd == *decision,
            stands: record.outcome(proposal).is_some_and(|(o, _)| o == *id),
        });
    }
    rows
}

/// `counts`: the entries read, and how many of them are extra copies of an entry read before.
fn build(
    record: &Record,
    group: GroupId,
    (n, copies): (usize, usize),
    problems: Vec<Problem>,
    notes: Vec<Note>,
    damaged: Option<Damage>,
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
    let summary = summary(
        record,
        n,
        copies,
        &problems,
        &notes,
        damaged.as_ref(),
        &decisions,
        &sealed_threads,
        &flags,
    );
    Report {
        verified,
        group_id: group.to_string(),
        group_name,
        entries: n,
        valid_entries: record.len(),
        damaged,
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
        keepers: record
            .keepers()
            .into_iter()
            .map(|(d, n): (DeviceId, String)| KeeperRow {
                device_id: d.to_string(),
                name: n,
            })
            .collect(),
        problems,
        notes,
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

#[allow(clippy::too_many_arguments)]
fn summary(
    record: &Record,
    n: usize,
    copies: usize,
    problems: &[Problem],
    notes: &[Note],
    damaged: Option<&Damage>,
    decisions: &[DecisionRow],
    sealed: &[SealedRow],
    flags: &[Flag],
) -> Vec<String> {
    let mut s = Vec::new();
    if damaged.is_some() {
        s.push(
            "The file is damaged: it is not a whole bundle. What follows is only what the entries that could be read prove; others may be lost."
                .into(),
        );
    }
    let valid = record.len();
    // Each entry once: the extra copies of a repeated entry are the same entry.
    if valid + copies == n && problems.is_empty() {
        s.push(format!(
            "All {} are signed by members.",
            plural(valid, "entry", "entries")
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
    let failed = |kinds: &[&str]| {
        damaged.is_some_and(|d| d.failures.iter().any(|f| kinds.contains(&f.kind.as_str())))
    };
    let changed = problems.iter().any(|p| {
        matches!(p.kind.as_str(), "bad_signature" | "malformed") || p.kind.starts_with("change_")
    }) || failed(&[
        "bundle_digest",
        "unknown_doc_kind",
        "change_too_large",
        "unreadable_entry",
        "truncated_entry",
    ]);
    let no_genesis = problems.iter().any(|p| p.kind == "no_genesis");
    if no_genesis {
        s.push(
            "The bundle does not hold the group's first entry (its genesis), so nothing in it can be verified."
                .into(),
        );
    }
    let missing = no_genesis
        || problems.iter().any(|p| p.kind == "missing_dependency")
        || failed(&["truncated_entry", "truncated_bundle"]);
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
    let partial = decisions
        .iter()
        .filter(|d| d.stands && d.answered < d.members)
        .count();
    if partial > 0 {
        s.push(format!(
            "{} taken without every member's view (as the group's quorum allows); the table shows how many answered.",
            plural(partial, "decision was", "decisions were")
        ));
    }
    if !notes.is_empty() {
        s.push(
            "The bundle lists some entries out of order or more than once; that forges nothing and changes no verdict."
                .into(),
        );
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
