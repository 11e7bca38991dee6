//! I/O errors other than a full disk during commits: a clear error, never a panic, and nothing
//! acknowledged is lost.
//!
//! The errors are injected at redb's storage layer (this machine has no device-mapper, so no
//! dm-error): [`Faulty`] wraps redb's real `FileBackend` on the home's real `roundtable.redb` and
//! passes every call through, file locks included, except one chosen call, which fails with EIO
//! (`std::io::Error::from_raw_os_error(5)`): the k-th `write`, or the k-th `sync_data`, or the k-th
//! `set_len`. The home is opened through it with [`Home::open_with_backend`].
//!
//! For each kind of call, k goes 1, 2, 3, … until a run makes fewer than k such calls, so each call
//! of that kind that a run makes is failed once, in its own run. A run starts from a fresh copy of a
//! template home (a group with a snapshot, a thread and a second member, Ben). The group is loaded on
//! an ordinary open of the home and kept across opens, as the sync node keeps its groups. Then, on
//! the faulty open: three durable appends; an import of a batch of 21 entries signed by Ben; an import
//! of one entry of Ben's that wins a fork against the last of those, so the store rebuilds the
//! record; one more append; a snapshot; closing the home. Every step runs, whatever happened before
//! it, so the steps after the fault are the next attempts on the same open home.
//!
//! Checked in every run: the step that made the faulted call returns an error that says the disk
//! reported an error (never a panic), later steps on that open home succeed or fail with a clear
//! error, and the open group never holds an entry the disk does not. Then the home is opened
//! normally (no faults): it must hold every acknowledged entry, only entries that verify, and a
//! record equal to one rebuilt from its entries; a new append must work and survive another reopen.
//!
//! Not covered: errors from the kernel or a real device, read errors (apart from the unit test in
//! `src/lib.rs` for a group that cannot be read back), and power loss (see `docs/reliability.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use roundtable_core::entry::validate_signature;
use roundtable_core::{Body, DeviceKey, Entry, EntryId, GroupId, Record, Rule};
use roundtable_store::{Home, StoreError, StoredStatus};

/// EIO on Linux and the BSDs.
const EIO: i32 = 5;

// ----- the faulty backend -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    SyncData,
    SetLen,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Write => "write",
            Kind::SyncData => "sync_data",
            Kind::SetLen => "set_len",
        })
    }
}

/// Calls made through a [`Faulty`] backend, and whether its fault was hit.
#[derive(Debug, Default)]
struct Calls {
    writes: AtomicU64,
    syncs: AtomicU64,
    set_lens: AtomicU64,
    hit: AtomicBool,
}

/// redb's `FileBackend` on the real file, failing the `k`-th call of one kind with EIO.
#[derive(Debug)]
struct Faulty {
    inner: FileBackend,
    kind: Kind,
    k: u64,
    calls: Arc<Calls>,
}

impl Faulty {
    fn open(db: &Path, kind: Kind, k: u64, calls: Arc<Calls>) -> Faulty {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(db)
            .expect("the home's database file opens");
        Faulty {
            inner: FileBackend::new(file).expect("redb takes the file"),
            kind,
            k,
            calls,
        }
    }

    /// Counts a call of `kind`; the error to return instead of making it, if it is the chosen one.
    fn fault(&self, kind: Kind) -> Result<(), std::io::Error> {
        let counter = match kind {
            Kind::Write => &self.calls.writes,
            Kind::SyncData => &self.calls.syncs,
            Kind::SetLen => &self.calls.set_lens,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if kind == self.kind && n == self.k {
            self.calls.hit.store(true, Ordering::SeqCst);
            return Err(std::io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.fault(Kind::SetLen)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.fault(Kind::SyncData)?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.fault(Kind::Write)?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    // The file locks are the real ones, so the home stays locked against other opens as usual.
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

// ----- the template home and the entries a run imports -----

/// A home with a group, a thread and a second member (Ben), closed; and Ben's entries, made on his
/// own copy of the record, for the runs to import.
struct Template {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    gid: GroupId,
    thread: EntryId,
    ana: DeviceKey,
    /// Entries the template holds.
    held: Vec<EntryId>,
    /// 20 messages by Ben, then the one of his two forked entries with the higher id.
    batch: Vec<Entry>,
    /// The lower-id forked entry: it wins the fork, so importing it after `batch` rebuilds the record.
    winner: Entry,
    winner_id: EntryId,
    loser_id: EntryId,
}

fn template() -> Template {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path().join("template");
    let (home, ana) = Home::init(&dir, "Ana", None).expect("init the template home");
    let mut g = home
        .create_group(&ana, "Board", Rule::Consent, 1, "Ana", "", 0)
        .expect("create the group");
    let gid = g.id();
    let thread = home
        .append(
            &mut g,
            &ana,
            Body::Thread {
                title: "Repairs".into(),
            },
            1,
        )
        .expect("a thread");
    let ben = DeviceKey::generate().expect("the OS random generator works");
    home.propose_change(
        &mut g,
        &ana,
        roundtable_core::Effect::Add {
            member: ben.device_id(),
            name: "Ben".into(),
            needs: String::new(),
        },
        "Ben",
        2,
    )
    .expect("Ben is added");
    home.snapshot(&mut g).expect("a snapshot");
    let held_entries: Vec<Entry> = home
        .entries(&gid)
        .expect("entries")
        .into_iter()
        .map(|s| s.entry)
        .collect();
    let held = g.record.causal_order().to_vec();
    drop(g);
    drop(home);

    let message = |text: String| Body::Message { thread, text };
    let (mut bens, _) = Record::from_entries(gid, held_entries.clone());
    let mut batch = Vec::new();
    for i in 0..20 {
        let (_, e) = bens
            .author(&ben, message(format!("Ben's note {i}")), 10 + i)
            .expect("Ben writes");
        batch.push(e);
    }
    // Two different entries at Ben's next position: a fork.
    let mut all = held_entries;
    all.extend(batch.iter().cloned());
    let (mut other, _) = Record::from_entries(gid, all);
    let one = bens
        .author(&ben, message("one way".into()), 40)
        .expect("one side of the fork");
    let two = other
        .author(&ben, message("another way".into()), 40)
        .expect("the other side of the fork");
    let (winner, loser) = if one.0 < two.0 {
        (one, two)
    } else {
        (two, one)
    };
    batch.push(loser.1);
    Template {
        _tmp: tmp,
        dir,
        gid,
        thread,
        ana,
        held,
        batch,
        winner_id: winner.0,
        winner: winner.1,
        loser_id: loser.0,
    }
}

/// A fresh copy of the template home.
fn fresh(t: &Template, to: &Path) {
    std::fs::create_dir_all(to).expect("the home folder");
    // A home is private (mode 0700), or Roundtable refuses to open it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    for f in std::fs::read_dir(&t.dir).expect("the template folder") {
        let f = f.expect("a template file");
        std::fs::copy(f.path(), to.join(f.file_name())).expect("copy a template file");
    }
}

// ----- one run -----

/// What a step acknowledged: entries written or imported.
#[derive(Default)]
struct Acked {
    /// Appended by this device, or imported and reported accepted: must be valid after reopening
    /// (Ben's forked loser excepted, once the winner is valid).
    valid: BTreeSet<EntryId>,
    /// Imported and reported as stored (accepted, pending or rejected): must be held.
    held: BTreeSet<EntryId>,
}

/// What happened to one run's fault.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// The step that made the faulted call returned an error.
    Refused(&'static str),
    /// The faulted call was one redb does not need (and ignores): the step succeeded.
    Absorbed(&'static str),
    /// The faulted call was made while the home closed (dropping it returns nothing).
    AtClose,
}

struct RunReport {
    hit: bool,
    outcome: Option<Outcome>,
    calls: (u64, u64, u64),
    /// Texts of the errors the steps returned, the first one after the fault first.
    errors: Vec<String>,
    /// Steps after the fault on the same open home that still succeeded / were refused.
    later_ok: usize,
    later_refused: usize,
    /// Entries never acknowledged that were there after reopening: their commit reached the file,
    /// and then the faulted call (in practice a `sync_data`) failed, so the step returned an error.
    unacked_present: usize,
}

/// The errors an I/O fault may show: each says what the disk did, that nothing saved is lost, and
/// what to do.
fn is_clear(e: &StoreError) -> bool {
    let text = e.to_string();
    let plain = match e {
        StoreError::DiskError(_) => {
            text.contains("the disk reported an error while saving") && text.contains("os error 5")
        }
        StoreError::DiskErrorEarlier => text.contains("the disk reported an error earlier"),
        _ => false,
    };
    plain && text.contains("nothing saved before") && text.contains("try again")
}

/// One run's tally, kept as its steps go.
struct Steps<'a> {
    ctx: &'a str,
    calls: &'a Calls,
    acked: Acked,
    outcome: Option<Outcome>,
    errors: Vec<String>,
    later_ok: usize,
    later_refused: usize,
}

impl Steps<'_> {
    fn hit(&self) -> bool {
        self.calls.hit.load(Ordering::SeqCst)
    }

    /// Runs one step; whether it was refused. A panic fails the test with the fault named.
    fn step(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Acked) -> Result<(), StoreError>,
    ) -> bool {
        let ctx = self.ctx;
        let before = self.hit();
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut self.acked)))
            .unwrap_or_else(|_| panic!("{ctx}: {name} panicked"));
        let refused = r.is_err();
        match r {
            Ok(()) if before => self.later_ok += 1,
            Ok(()) => {
                if self.hit() {
                    self.outcome = Some(Outcome::Absorbed(name));
                }
            }
            Err(e) => {
                assert!(
                    self.hit(),
                    "{ctx}: {name} failed before any fault was injected: {e}"
                );
                assert!(is_clear(&e), "{ctx}: {name}: the error is not clear: {e}");
                assert!(
                    before || matches!(e, StoreError::DiskError(_)),
                    "{ctx}: {name}: the first error names the disk's: {e}"
                );
                if before {
                    self.later_refused += 1;
                } else {
                    self.outcome = Some(Outcome::Refused(name));
                }
                self.errors.push(e.to_string());
            }
        }
        refused
    }
}

fn run(t: &Template, root: &Path, kind: Kind, k: u64) -> RunReport {
    let dir = root.join(format!("{kind}-{k}"));
    fresh(t, &dir);
    let ctx = format!("EIO on {kind} #{k}");
    // Like the sync node, which keeps its groups loaded across opens of the home: the group is
    // loaded on another open, and goes on being used after an error.
    let mut g = {
        let home = Home::open(&dir).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
        home.open_group(&t.gid)
            .unwrap_or_else(|e| panic!("{ctx}: open the group: {e}"))
    };
    let calls = Arc::new(Calls::default());
    let backend = Faulty::open(&dir.join("roundtable.redb"), kind, k, calls.clone());
    let mut s = Steps {
        ctx: &ctx,
        calls: &calls,
        acked: Acked::default(),
        outcome: None,
        errors: Vec::new(),
        later_ok: 0,
        later_refused: 0,
    };
    s.acked.valid.extend(t.held.iter().copied());
    // What the open group held right after each refused step, and at the end: all must be on disk.
    let mut memory: BTreeSet<EntryId> = BTreeSet::new();

    let opened = catch_unwind(AssertUnwindSafe(|| Home::open_with_backend(&dir, backend)))
        .unwrap_or_else(|_| panic!("{ctx}: opening the home panicked"));
    match opened {
        Err(e) => {
            assert!(s.hit(), "{ctx}: the home did not open: {e}");
            let e = StoreError::from(e);
            assert!(
                matches!(e, StoreError::DiskError(_)) && is_clear(&e),
                "{ctx}: open: the error is not clear: {e}"
            );
            s.outcome = Some(Outcome::Refused("open"));
            s.errors.push(e.to_string());
        }
        Ok(home) => {
            let (ana, thread) = (&t.ana, t.thread);
            // What the open group holds right after a refused step.
            let mut refused = |g: &Record, was_refused: bool| {
                if was_refused {
                    memory.extend(g.causal_order().iter().copied());
                }
            };
            for i in 0..3 {
                let r = s.step("append", |a| {
                    let body = Body::Message {
                        thread,
                        text: format!("Ana's note {i}"),
                    };
                    a.valid.insert(home.append(&mut g, ana, body, 100 + i)?);
                    Ok(())
                });
                refused(&g.record, r);
            }
            for (name, entries) in [
                ("import a batch", t.batch.clone()),
                ("import a fork winner (rebuild)", vec![t.winner.clone()]),
            ] {
                let r = s.step(name, |a| {
                    let out = home.ingest(&mut g, entries)?;
                    a.valid.extend(out.accepted.iter().copied());
                    a.held.extend(out.accepted);
                    a.held.extend(out.pending.into_iter().map(|(h, _)| h));
                    a.held.extend(out.rejected.into_iter().map(|r| r.id));
                    Ok(())
                });
                refused(&g.record, r);
            }
            let r = s.step("append", |a| {
                let body = Body::Message {
                    thread,
                    text: "Ana's last note".into(),
                };
                a.valid.insert(home.append(&mut g, ana, body, 200)?);
                Ok(())
            });
            refused(&g.record, r);
            let r = s.step("snapshot", |_| home.snapshot(&mut g));
            refused(&g.record, r);
            let before = s.hit();
            catch_unwind(AssertUnwindSafe(|| drop(home)))
                .unwrap_or_else(|_| panic!("{ctx}: closing the home panicked"));
            if !before && s.hit() {
                s.outcome = Some(Outcome::AtClose);
            }
        }
    }
    // The open group is never ahead of the disk, even if no step after the fault reloaded it.
    memory.extend(g.record.causal_order().iter().copied());
    drop(g);
    let counts = (
        calls.writes.load(Ordering::SeqCst),
        calls.syncs.load(Ordering::SeqCst),
        calls.set_lens.load(Ordering::SeqCst),
    );
    let unacked_present = check_reopened(t, &dir, &ctx, &s.acked, &memory);
    std::fs::remove_dir_all(&dir).expect("remove the run's home");
    RunReport {
        hit: s.hit(),
        outcome: s.outcome,
        calls: counts,
        errors: s.errors,
        later_ok: s.later_ok,
        later_refused: s.later_refused,
        unacked_present,
    }
}

/// Opens the home normally and checks it; returns how many entries never acknowledged are held.
fn check_reopened(
    t: &Template,
    dir: &Path,
    ctx: &str,
    acked: &Acked,
    memory: &BTreeSet<EntryId>,
) -> usize {
    let gid = t.gid;
    let home = Home::open(dir).unwrap_or_else(|e| panic!("{ctx}: the home must open: {e}"));
    let groups = home
        .groups()
        .unwrap_or_else(|e| panic!("{ctx}: groups: {e}"));
    assert_eq!(groups.len(), 1, "{ctx}: one group");
    let mut g = home
        .open_group(&gid)
        .unwrap_or_else(|e| panic!("{ctx}: the group must open: {e}"));
    let stored = home
        .entries(&gid)
        .unwrap_or_else(|e| panic!("{ctx}: entries: {e}"));
    let held: BTreeMap<EntryId, &StoredStatus> = stored.iter().map(|s| (s.id, &s.status)).collect();

    // Every acknowledged entry is there: valid, except Ben's forked loser once the winner is in.
    let winner_in = g.record.contains(&t.winner_id);
    for id in &acked.valid {
        let displaced = *id == t.loser_id && winner_in;
        assert!(
            g.record.contains(id) || displaced,
            "{ctx}: acknowledged entry {id} was lost (held: {:?})",
            held.get(id)
        );
    }
    for id in &acked.held {
        assert!(
            held.contains_key(id),
            "{ctx}: acknowledged entry {id} is not held"
        );
    }
    // Memory was never ahead of the disk: what the open group held after the fault is there.
    for id in memory {
        assert!(
            g.record.contains(id) || (*id == t.loser_id && winner_in),
            "{ctx}: the open group held {id}, which is not on disk"
        );
    }

    // Every entry held verifies: it decodes, is stored under its hash, and its signature holds.
    for s in &stored {
        let parsed = s
            .entry
            .parse()
            .unwrap_or_else(|e| panic!("{ctx}: entry {} does not parse: {e}", s.id));
        assert_eq!(
            parsed.hash, s.id,
            "{ctx}: an entry is stored under its hash"
        );
        validate_signature(&s.entry, &parsed, &gid, &[])
            .unwrap_or_else(|e| panic!("{ctx}: entry {}: bad signature: {e:?}", s.id));
    }
    // Nothing is half-stored: the record opened from the store is the one its entries make.
    let (rebuilt, _) = Record::from_entries(gid, stored.iter().map(|s| s.entry.clone()).collect());
    let set = |r: &Record| r.causal_order().iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(
        set(&g.record),
        set(&rebuilt),
        "{ctx}: the same valid entries"
    );
    assert_eq!(g.record.heads(), rebuilt.heads(), "{ctx}: the same heads");
    let keys = |r: &Record| r.rejected().keys().copied().collect::<BTreeSet<_>>();
    assert_eq!(keys(&g.record), keys(&rebuilt), "{ctx}: the same rejected");
    let pending = |r: &Record| r.pending_ids().into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        pending(&g.record),
        pending(&rebuilt),
        "{ctx}: the same pending"
    );
    // The statuses stored agree with the record.
    for s in &stored {
        let agrees = match &s.status {
            StoredStatus::Valid => g.record.contains(&s.id),
            StoredStatus::Pending => g.record.pending_ids().contains(&s.id),
            StoredStatus::Quarantined { .. } => g.record.rejected().contains_key(&s.id),
        };
        assert!(agrees, "{ctx}: entry {} is stored as {:?}", s.id, s.status);
    }
    // The only entry ever set aside is the fork's loser, as evidence, once the winner is in.
    let rejected = keys(&g.record);
    let expected: BTreeSet<EntryId> = if winner_in {
        [t.loser_id].into()
    } else {
        BTreeSet::new()
    };
    assert_eq!(
        rejected, expected,
        "{ctx}: only the fork's loser is set aside"
    );

    let unacked = stored
        .iter()
        .filter(|s| !acked.valid.contains(&s.id) && !acked.held.contains(&s.id))
        .count();

    // Writing works again.
    let more = home
        .append(
            &mut g,
            &t.ana,
            Body::Message {
                thread: t.thread,
                text: "written after the disk error".into(),
            },
            300,
        )
        .unwrap_or_else(|e| panic!("{ctx}: an append after reopening failed: {e}"));
    drop(g);
    drop(home);
    let home = Home::open(dir).unwrap_or_else(|e| panic!("{ctx}: the second reopen: {e}"));
    let g = home
        .open_group(&gid)
        .unwrap_or_else(|e| panic!("{ctx}: the group, second reopen: {e}"));
    assert!(g.record.contains(&more), "{ctx}: the new append is kept");
    unacked
}

// ----- the sweeps -----

/// Fails every call of `kind` in turn, one per run, until a run makes fewer such calls than k.
fn sweep(kind: Kind) {
    let started = Instant::now();
    let t = template();
    let root = tempfile::tempdir().expect("a temporary folder");
    let mut outcomes: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut texts: BTreeSet<String> = BTreeSet::new();
    let (mut later_ok, mut later_refused, mut unacked, mut with_unacked) = (0, 0, 0, 0);
    let mut k = 0;
    let calls = loop {
        k += 1;
        assert!(k <= 10_000, "the {kind} sweep never ends");
        let rep = run(&t, root.path(), kind, k);
        if !rep.hit {
            assert!(rep.errors.is_empty(), "a run without a fault failed");
            break rep.calls;
        }
        let outcome = rep
            .outcome
            .unwrap_or_else(|| panic!("EIO on {kind} #{k}: the fault was hit but not seen"));
        *outcomes.entry(outcome).or_default() += 1;
        texts.extend(
            rep.errors
                .iter()
                .map(|e| e.split(" (").next().unwrap_or(e).to_string()),
        );
        later_ok += rep.later_ok;
        later_refused += rep.later_refused;
        unacked += rep.unacked_present;
        if rep.unacked_present > 0 {
            with_unacked += 1;
        }
    };
    let points = k - 1;
    eprintln!(
        "io_errors ({kind}): {points} fault points (a run without faults makes {} writes, {} \
         sync_data, {} set_len) in {:.1?}",
        calls.0,
        calls.1,
        calls.2,
        started.elapsed()
    );
    for (o, n) in &outcomes {
        eprintln!("  {n:>4} × {o:?}");
    }
    eprintln!(
        "  later steps on the same open home: {later_ok} succeeded, {later_refused} refused; \
         {with_unacked} runs held {unacked} entries never acknowledged (committed, then the error)"
    );
    for t in &texts {
        eprintln!("  error: {t}");
    }
    let expected = match kind {
        Kind::Write => calls.0,
        Kind::SyncData => calls.1,
        Kind::SetLen => calls.2,
    };
    assert_eq!(points, expected, "every {kind} call was failed once");
    assert!(points > 0, "no {kind} call was made: nothing was tested");
}

#[test]
fn eio_on_every_write_loses_nothing_acknowledged() {
    sweep(Kind::Write);
}

#[test]
fn eio_on_every_sync_loses_nothing_acknowledged() {
    sweep(Kind::SyncData);
}

#[test]
fn eio_on_every_set_len_loses_nothing_acknowledged() {
    sweep(Kind::SetLen);
}
