//! The store's promises, tested through its public API: reopening gives the same record (with and
//! without a snapshot, and with a damaged one), `checkpoint` snapshots and open uses the snapshot,
//! `entries()` lists valid, pending and quarantined entries in that order, forged entries are
//! quarantined without disturbing valid ones, the key file at rest, and imports in batches.
//!
//! A few tests are white-box: they open `roundtable.redb` with redb directly to damage a snapshot or
//! drop old log rows, relying on the table layout documented at the top of `src/lib.rs`.
//!
//! Timings live in `examples/figures.rs` and the benchmark suite, not here.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Instant;

use redb::{ReadableDatabase, TableDefinition};
use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::{Body, DeviceKey, DocRef, Entry, EntryId, GroupId, Member, Record, Rule};
use roundtable_store::{Group, Home, IMPORT_BATCH, KeyError, OpenError, StoredStatus};

// ----- helpers -----

fn key() -> DeviceKey {
    DeviceKey::generate().expect("the OS random generator works")
}

fn init(root: &Path, name: &str) -> (Home, DeviceKey) {
    Home::init(&root.join(name), name, None).expect("init a home")
}

fn thread(home: &Home, g: &mut Group, k: &DeviceKey, title: &str) -> EntryId {
    home.append(
        g,
        k,
        Body::Thread {
            title: title.into(),
        },
        1,
    )
    .expect("a thread")
}

fn message(home: &Home, g: &mut Group, k: &DeviceKey, thread: EntryId, text: &str) -> EntryId {
    home.append(
        g,
        k,
        Body::Message {
            thread,
            text: text.into(),
        },
        2,
    )
    .expect("a message")
}

/// `by` is the group's only member, so their own agree and close add `who`; returns the outcome.
fn add_member(home: &Home, g: &mut Group, by: &DeviceKey, who: &DeviceKey, name: &str) -> EntryId {
    home.propose_change(
        g,
        by,
        roundtable_core::Effect::Add {
            member: who.device_id(),
            name: name.into(),
            needs: "large print".into(),
        },
        name,
        3,
    )
    .expect("a member is added")
    .outcome
    .expect("the only member decides alone")
}

fn all_entries(home: &Home, gid: &GroupId) -> Vec<Entry> {
    home.entries(gid)
        .expect("entries")
        .into_iter()
        .map(|s| s.entry)
        .collect()
}

fn entry_of(home: &Home, gid: &GroupId, id: &EntryId) -> Entry {
    home.entries(gid)
        .expect("entries")
        .into_iter()
        .find(|s| s.id == *id)
        .unwrap_or_else(|| panic!("entry {id} is stored"))
        .entry
}

/// Everything a reopen must give back the same.
#[derive(Debug, PartialEq)]
struct View {
    heads: Vec<EntryId>,
    members: Vec<Member>,
    len: usize,
    valid: BTreeSet<EntryId>,
    pending: Vec<EntryId>,
    rejected: BTreeMap<EntryId, &'static str>,
    threads: Vec<EntryId>,
    info: Option<(String, Rule, u64)>,
}

fn view(r: &Record) -> View {
    View {
        heads: r.heads(),
        members: r.members(),
        len: r.len(),
        valid: r.causal_order().iter().copied().collect(),
        pending: r.pending_ids(),
        rejected: r.rejected().iter().map(|(h, i)| (*h, i.kind())).collect(),
        threads: r.threads(),
        info: r.group_info().map(|(n, rule, q)| (n.to_string(), rule, q)),
    }
}

/// Statuses as listed by `entries()`, in order.
fn listing(home: &Home, gid: &GroupId) -> Vec<(EntryId, StoredStatus)> {
    home.entries(gid)
        .expect("entries")
        .into_iter()
        .map(|s| (s.id, s.status))
        .collect()
}

fn reopen(dir: &Path, gid: &GroupId) -> (Home, Group) {
    let home = Home::open(dir).expect("the home reopens");
    let g = home.open_group(gid).expect("the group reopens");
    (home, g)
}

/// The id of an entry refused before its change could be trusted: SHA-256 of its encoded bytes.
fn digest_id(e: &Entry) -> EntryId {
    use sha2::Digest;
    EntryId(sha2::Sha256::digest(e.encode()).into())
}

fn forge(e: &Entry) -> Entry {
    let mut bad = e.clone();
    bad.signature[7] ^= 0x20;
    bad
}

/// Two devices in one group. Ana's home holds concurrent entries by both, so it has two heads.
struct Pair {
    ana: Home,
    ana_key: DeviceKey,
    ana_g: Group,
    bea: Home,
    bea_key: DeviceKey,
    bea_g: Group,
    gid: GroupId,
    thread: EntryId,
}

fn pair(root: &Path) -> Pair {
    let (ana, ana_key) = init(root, "ana");
    let (bea, bea_key) = init(root, "bea");
    let mut ana_g = ana
        .create_group(
            &ana_key,
            "Board",
            Rule::Majority,
            2,
            "Ana",
            "plain words",
            0,
        )
        .expect("create the group");
    let gid = ana_g.id();
    let t = thread(&ana, &mut ana_g, &ana_key, "Housing");
    add_member(&ana, &mut ana_g, &ana_key, &bea_key, "Bea");
    for i in 0..4 {
        message(&ana, &mut ana_g, &ana_key, t, &format!("Ana says {i}"));
    }
    let mut bea_g = bea.open_or_new_group(&gid).expect("a new group");
    let out = bea
        .ingest(&mut bea_g, all_entries(&ana, &gid))
        .expect("Bea imports Ana's entries");
    assert_eq!(
        out.accepted.len(),
        9,
        "genesis, thread, Bea's proposal, agree and close, 4 messages"
    );
    // Concurrent writes: Bea's three and Ana's two do not know of each other.
    let mut bea_new = Vec::new();
    for i in 0..3 {
        bea_new.push(message(
            &bea,
            &mut bea_g,
            &bea_key,
            t,
            &format!("Bea says {i}"),
        ));
    }
    message(&ana, &mut ana_g, &ana_key, t, "Ana again");
    message(&ana, &mut ana_g, &ana_key, t, "Ana once more");
    let from_bea: Vec<Entry> = bea_new.iter().map(|h| entry_of(&bea, &gid, h)).collect();
    let out = ana.ingest(&mut ana_g, from_bea).expect("Ana imports Bea's");
    assert_eq!(out.accepted.len(), 3);
    assert_eq!(ana_g.record.heads().len(), 2, "two concurrent heads");
    assert_eq!(ana_g.record.members().len(), 2);
    Pair {
        ana,
        ana_key,
        ana_g,
        bea,
        bea_key,
        bea_g,
        gid,
        thread: t,
    }
}

/// A chain of `n` entries by one device (genesis, a thread, messages), built with `build_change`
/// and signed by hand: no Automerge document, so it costs O(n) however long it is.
fn chain(k: &DeviceKey, n: usize) -> (GroupId, Vec<Entry>) {
    let (mut rec, genesis) =
        Record::create(k, "Long", Rule::Consent, 1, "Ana", "", 0).expect("genesis");
    let gid = rec.group();
    let (t, t_entry) = rec
        .author(
            k,
            Body::Thread {
                title: "Long".into(),
            },
            1,
        )
        .expect("a thread");
    let (_, containers) =
        decode_change(&genesis.parse().expect("parses").change, &BTreeMap::new()).expect("genesis");
    let parsed = t_entry.parse().expect("parses");
    let (mut prev, mut max_op, mut seq) = (t, parsed.change.max_op(), parsed.change.seq());
    let mut out = vec![genesis, t_entry];
    while out.len() < n {
        seq += 1;
        let frame = ChangeFrame {
            actor: k.device_id(),
            seq,
            start_op: NonZeroU64::new(max_op + 1).expect("nonzero"),
            deps: vec![prev],
            time_ms: seq as i64,
        };
        let body = Body::Message {
            thread: t,
            text: format!("message {seq}"),
        };
        let change = build_change(&body, &frame, &containers).expect("a message change");
        let hash = EntryId::from(change.hash());
        max_op = change.max_op();
        out.push(Entry::sign(
            k,
            &gid,
            DocRef::Public,
            change.raw_bytes().to_vec(),
            &hash,
        ));
        prev = hash;
    }
    (gid, out)
}

// White-box access to the database (see the module docs).
const SNAPSHOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshots");
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log");

fn raw_db(home_dir: &Path) -> redb::Database {
    redb::Database::open(home_dir.join("roundtable.redb")).expect("open the database directly")
}

fn raw_snapshot(home_dir: &Path, gid: &GroupId) -> Option<Vec<u8>> {
    let db = raw_db(home_dir);
    let tx = db.begin_read().unwrap();
    let t = tx.open_table(SNAPSHOTS).ok()?;
    t.get(gid.0.as_slice()).unwrap().map(|v| v.value().to_vec())
}

fn put_raw_snapshot(home_dir: &Path, gid: &GroupId, value: &[u8]) {
    let db = raw_db(home_dir);
    let tx = db.begin_write().unwrap();
    tx.open_table(SNAPSHOTS)
        .unwrap()
        .insert(gid.0.as_slice(), value)
        .unwrap();
    tx.commit().unwrap();
}

// ----- reopening -----

#[test]
fn reopen_without_snapshot_gives_the_same_record() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pair(tmp.path());
    let dir = p.ana.dir().to_path_buf();
    let gid = p.gid;
    let before = view(&p.ana_g.record);
    let listed = listing(&p.ana, &gid);
    drop(p);
    assert!(raw_snapshot(&dir, &gid).is_none(), "no snapshot yet");
    let (home, g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
    assert_eq!(listing(&home, &gid), listed);
    assert_eq!(home.groups().unwrap(), vec![(gid, "Board".to_string())]);
    // Reopening twice changes nothing either.
    drop((home, g));
    let (_home, g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
}

/// Homes written before 2026-12-07 hold a `VALID` status row for every valid entry and the log's
/// length in the group's row; both are now left unwritten and must be ignored when present.
#[test]
fn a_home_with_status_rows_for_valid_entries_and_a_stale_log_length_reads_the_same() {
    const STATUS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status");
    const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("groups");
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        ana,
        ana_key: key,
        ana_g,
        gid,
        thread,
        ..
    } = pair(tmp.path());
    let dir = ana.dir().to_path_buf();
    let before = view(&ana_g.record);
    let listed = listing(&ana, &gid);
    let valid: Vec<EntryId> = ana_g.record.causal_order().to_vec();
    drop((ana, ana_g));
    {
        let db = raw_db(&dir);
        let tx = db.begin_write().unwrap();
        {
            let mut status = tx.open_table(STATUS).unwrap();
            for id in &valid {
                let mut k = gid.0.to_vec();
                k.extend_from_slice(&id.0);
                status.insert(k.as_slice(), [0u8].as_slice()).unwrap();
            }
            // The old row's log length, one short: nothing may trust it.
            let row = format!(
                r#"{{"name":"Board","log_len":{},"generation":0}}"#,
                valid.len() - 1
            );
            tx.open_table(GROUPS)
                .unwrap()
                .insert(gid.0.as_slice(), row.as_bytes())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let (home, mut g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
    assert_eq!(listing(&home, &gid), listed);
    assert!(home.evidence_ids(&gid).unwrap().is_empty());
    let m = message(&home, &mut g, &key, thread, "after the upgrade");
    drop((home, g));
    let (home, g) = reopen(&dir, &gid);
    assert!(g.record.contains(&m));
    assert_eq!(listing(&home, &gid).len(), listed.len() + 1);
    assert_eq!(home.groups().unwrap(), vec![(gid, "Board".to_string())]);
}

#[test]
fn reopen_after_snapshot_gives_the_same_record() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        ana,
        ana_key,
        mut ana_g,
        bea,
        bea_key,
        mut bea_g,
        gid,
        thread: t,
    } = pair(tmp.path());
    // Pending and quarantined entries exist when the snapshot is taken: a message on a thread Ana
    // does not have yet, and a forged copy of a message she never gets.
    let t2 = thread(&bea, &mut bea_g, &bea_key, "Budget");
    let m = message(&bea, &mut bea_g, &bea_key, t2, "on the budget");
    let leaf = message(&bea, &mut bea_g, &bea_key, t, "never sent as is");
    let out = ana
        .ingest(
            &mut ana_g,
            vec![
                entry_of(&bea, &gid, &m),
                forge(&entry_of(&bea, &gid, &leaf)),
            ],
        )
        .unwrap();
    assert_eq!(out.pending.len(), 1);
    assert_eq!(out.rejected.len(), 1);
    ana.snapshot(&mut ana_g).expect("snapshot");
    // A tail after the snapshot.
    for i in 0..5 {
        message(
            &ana,
            &mut ana_g,
            &ana_key,
            t,
            &format!("after the snapshot {i}"),
        );
    }
    let before = view(&ana_g.record);
    let listed = listing(&ana, &gid);
    let dir = ana.dir().to_path_buf();
    drop((ana, ana_g));
    assert!(raw_snapshot(&dir, &gid).is_some(), "a snapshot is stored");
    let (home, mut g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
    assert_eq!(listing(&home, &gid), listed);

    // The pending entry is still waiting, and is accepted once its thread arrives.
    let out = home
        .ingest(&mut g, vec![entry_of(&bea, &gid, &t2)])
        .unwrap();
    assert_eq!(
        out.accepted.len(),
        2,
        "the thread and the message waiting for it"
    );
    assert!(g.record.contains(&m));
    let before = view(&g.record);
    drop((home, g));
    let (home, g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
    drop((home, g));

    // A snapshot with nothing after it.
    let (home, mut g) = reopen(&dir, &gid);
    home.snapshot(&mut g).unwrap();
    drop((home, g));
    let (_home, g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
}

#[test]
fn damaged_snapshot_is_ignored_and_the_record_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        ana,
        ana_key,
        mut ana_g,
        gid,
        thread: t,
        ..
    } = pair(tmp.path());
    ana.snapshot(&mut ana_g).unwrap();
    message(&ana, &mut ana_g, &ana_key, t, "after the snapshot");
    let before = view(&ana_g.record);
    let dir = ana.dir().to_path_buf();
    drop((ana, ana_g));
    let good = raw_snapshot(&dir, &gid).expect("a snapshot");
    let dlen = u64::from_le_bytes(good[8..16].try_into().unwrap()) as usize;
    let mut garbage_doc = good.clone();
    for b in &mut garbage_doc[16..16 + dlen] {
        *b = 0xa5;
    }
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("header only", good[..16].to_vec()),
        ("document length beyond the value", {
            let mut v = good.clone();
            v[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            v
        }),
        ("garbage document", garbage_doc),
        ("truncated index", good[..good.len() - 7].to_vec()),
        ("truncated document", good[..16 + dlen / 2].to_vec()),
    ];
    for (what, bytes) in damaged {
        put_raw_snapshot(&dir, &gid, &bytes);
        let home = Home::open(&dir).unwrap();
        let g = home
            .open_group(&gid)
            .unwrap_or_else(|e| panic!("{what}: the group must open from its entries: {e}"));
        assert_eq!(view(&g.record), before, "{what}");
    }
    // A fresh snapshot replaces the damaged one.
    let (home, mut g) = reopen(&dir, &gid);
    home.snapshot(&mut g).unwrap();
    drop((home, g));
    assert_eq!(view(&reopen(&dir, &gid).1.record), before);
}

// ----- checkpoints -----

#[test]
fn checkpoint_snapshots_after_enough_entries_and_open_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, k) = init(tmp.path(), "ana");
    let dir = home.dir().to_path_buf();
    let mut g = home
        .create_group(&k, "Board", Rule::Consent, 1, "Ana", "", 0)
        .unwrap();
    let gid = g.id();
    let t = thread(&home, &mut g, &k, "Notes");
    let mut first_true = None;
    for i in 0..400 {
        message(&home, &mut g, &k, t, &format!("note {i}"));
        if home.checkpoint(&mut g).unwrap() {
            first_true = Some(g.record.len());
            break;
        }
    }
    let at = first_true.expect("checkpoint snapshots within 400 entries");
    assert!(
        at > 10,
        "checkpoint must not snapshot after every few entries (it did at {at})"
    );
    assert!(
        !home.checkpoint(&mut g).unwrap(),
        "no second snapshot right after the first"
    );
    for i in 0..10 {
        message(&home, &mut g, &k, t, &format!("tail {i}"));
    }
    assert!(
        !home.checkpoint(&mut g).unwrap(),
        "a short tail is not snapshotted"
    );
    let before = view(&g.record);
    let listed = listing(&home, &gid);
    drop((home, g));
    let snap = raw_snapshot(&dir, &gid).expect("checkpoint stored a snapshot");
    let snap_pos = u64::from_le_bytes(snap[..8].try_into().unwrap());
    assert_eq!(
        snap_pos as usize, at,
        "the snapshot covers the log as it was"
    );
    let (home, g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
    assert_eq!(g.record.len(), at + 10);
    assert_eq!(listing(&home, &gid), listed);
    drop((home, g));

    // Open really starts from the snapshot: with the log rows it covers gone, the record is the same.
    {
        let db = raw_db(&dir);
        let tx = db.begin_write().unwrap();
        {
            let mut log = tx.open_table(LOG).unwrap();
            for pos in 0..snap_pos {
                let mut key = gid.0.to_vec();
                key.extend_from_slice(&pos.to_be_bytes());
                assert!(log.remove(key.as_slice()).unwrap().is_some());
            }
        }
        tx.commit().unwrap();
    }
    let (_home, g) = reopen(&dir, &gid);
    assert_eq!(view(&g.record), before);
}

// ----- entries() -----

#[test]
fn entries_lists_valid_in_causal_order_then_pending_then_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let (ana, ak) = init(tmp.path(), "ana");
    let (bea, _) = init(tmp.path(), "bea");
    let cy = key();
    let mut a = ana
        .create_group(&ak, "Board", Rule::Consent, 1, "Ana", "", 0)
        .unwrap();
    let gid = a.id();
    let t = thread(&ana, &mut a, &ak, "Housing");
    add_member(&ana, &mut a, &ak, &cy, "Cy");
    for i in 0..3 {
        message(&ana, &mut a, &ak, t, &format!("m{i}"));
    }
    let base = all_entries(&ana, &gid);
    // Cy forks: two different entries at the same position, written on two copies of the record.
    let fork: Vec<Entry> = ["one", "two"]
        .iter()
        .map(|text| {
            let (mut copy, _) = Record::from_entries(gid, base.clone());
            copy.author(
                &cy,
                Body::Message {
                    thread: t,
                    text: (*text).into(),
                },
                9,
            )
            .unwrap()
            .1
        })
        .collect();
    // Ana goes on: a thread Bea will not get (so what builds on it waits), and a leaf Bea only gets forged.
    let t2 = thread(&ana, &mut a, &ak, "Budget");
    let p1 = message(&ana, &mut a, &ak, t2, "p1");
    let p2 = message(&ana, &mut a, &ak, t2, "p2");
    let leaf = message(&ana, &mut a, &ak, t, "leaf");

    let mut b = bea.open_or_new_group(&gid).unwrap();
    let mut batch = base.clone();
    // Children before their parents within the batch: the order of arrival must not matter.
    batch.reverse();
    batch.extend(fork.iter().cloned());
    batch.push(entry_of(&ana, &gid, &p2));
    batch.push(entry_of(&ana, &gid, &p1));
    batch.push(forge(&entry_of(&ana, &gid, &leaf)));
    let out = bea.ingest(&mut b, batch).unwrap();
    assert_eq!(
        out.accepted.len(),
        base.len() + 1,
        "the base and the fork's winner"
    );
    assert_eq!(out.pending.len(), 2);
    assert_eq!(out.rejected.len(), 2);

    let check = |home: &Home, g: &Group| {
        let stored = home.entries(&gid).unwrap();
        let n_valid = g.record.len();
        let n_pending = g.record.pending_ids().len();
        assert_eq!(stored.len(), n_valid + n_pending + 2);
        let (valid, rest) = stored.split_at(n_valid);
        let (pending, quarantined) = rest.split_at(n_pending);
        // Valid: every entry after the entries it builds on, and exactly the record's valid entries.
        let mut seen = HashSet::new();
        for s in valid {
            assert_eq!(s.status, StoredStatus::Valid);
            assert!(g.record.contains(&s.id));
            for d in s.entry.parse().unwrap().change.deps() {
                assert!(
                    seen.contains(&EntryId::from(*d)),
                    "{} before its deps",
                    s.id
                );
            }
            seen.insert(s.id);
        }
        // Pending: sorted by id, the record's pending entries.
        assert!(pending.iter().all(|s| s.status == StoredStatus::Pending));
        let ids: Vec<EntryId> = pending.iter().map(|s| s.id).collect();
        assert_eq!(ids, g.record.pending_ids());
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>(),
            [p1, p2].iter().collect()
        );
        // Quarantined: the forged leaf and the fork's loser, with their reasons.
        let mut kinds = BTreeMap::new();
        for s in quarantined {
            match &s.status {
                StoredStatus::Quarantined { kind, reason } => {
                    assert!(!reason.is_empty());
                    kinds.insert(s.id, kind.clone());
                }
                other => panic!("expected quarantined, got {other:?}"),
            }
        }
        assert!(quarantined.windows(2).all(|w| w[0].id < w[1].id));
        // The forged copy is keyed by its own bytes, never by the genuine entry's id.
        let forged = forge(&entry_of(&ana, &gid, &leaf));
        let forged_id = digest_id(&forged);
        assert_eq!(
            kinds.get(&forged_id).map(String::as_str),
            Some("bad_signature")
        );
        assert_eq!(
            kinds.values().filter(|k| k.as_str() == "fork").count(),
            1,
            "{kinds:?}"
        );
        assert!(!kinds.contains_key(&leaf));
        assert!(!g.record.contains(&leaf));
        // The forged copy is stored verbatim, so it can be shown and reported.
        let stored_forged = quarantined.iter().find(|s| s.id == forged_id).unwrap();
        assert_eq!(stored_forged.entry, forged);
    };
    check(&bea, &b);
    let valid_now: Vec<EntryId> = bea.entries(&gid).unwrap()[..b.record.len()]
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        valid_now,
        b.record.causal_order(),
        "valid entries are listed in the order they were applied"
    );
    let dir = bea.dir().to_path_buf();
    let before = view(&b.record);
    drop((bea, b));
    let (bea, mut b) = reopen(&dir, &gid);
    assert_eq!(view(&b.record), before);
    check(&bea, &b);

    // The missing thread arrives: what waited becomes valid; the quarantine is unchanged.
    let out = bea.ingest(&mut b, vec![entry_of(&ana, &gid, &t2)]).unwrap();
    assert_eq!(out.accepted.len(), 3);
    assert!(out.pending.is_empty());
    let listed = listing(&bea, &gid);
    assert_eq!(
        listed
            .iter()
            .filter(|(_, s)| matches!(s, StoredStatus::Quarantined { .. }))
            .count(),
        2
    );
    assert!(listed.iter().all(|(_, s)| *s != StoredStatus::Pending));
}

// ----- forged entries -----

#[test]
fn forged_entry_is_quarantined_as_bad_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pair(tmp.path());
    let (carl, _) = init(tmp.path(), "carl");
    // Carl gets everything from Ana except one of her messages, which he gets forged.
    let stored = p.ana.entries(&p.gid).unwrap();
    let victim = *p
        .ana_g
        .record
        .heads()
        .iter()
        .find(|h| p.ana_g.record.entry(h).unwrap().0 == p.ana_key.device_id())
        .expect("one head is Ana's");
    let mut g = carl.open_or_new_group(&p.gid).unwrap();
    let rest: Vec<Entry> = stored
        .iter()
        .filter(|s| s.id != victim)
        .map(|s| s.entry.clone())
        .collect();
    let n = rest.len();
    carl.ingest(&mut g, rest).unwrap();
    let before = view(&g.record);
    let forged = forge(&entry_of(&p.ana, &p.gid, &victim));
    let out = carl.ingest(&mut g, vec![forged.clone()]).unwrap();
    assert!(out.accepted.is_empty());
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].reason.kind(), "bad_signature");
    assert_eq!(
        out.rejected[0].id,
        digest_id(&forged),
        "a forged copy is keyed by its own bytes, not by the genuine entry's id"
    );
    assert_eq!(view(&g.record), before, "the valid entries are undisturbed");
    let q = carl
        .entries(&p.gid)
        .unwrap()
        .into_iter()
        .find(|s| s.id == digest_id(&forged))
        .expect("the forged entry is kept");
    assert!(
        matches!(&q.status, StoredStatus::Quarantined { kind, .. } if kind == "bad_signature"),
        "{:?}",
        q.status
    );
    assert_eq!(q.entry, forged);
    let dir = carl.dir().to_path_buf();
    drop((carl, g));
    let (carl, g) = reopen(&dir, &p.gid);
    assert_eq!(view(&g.record), before);
    assert_eq!(carl.entries(&p.gid).unwrap().len(), n + 1);
}

#[test]
fn forged_copy_of_a_held_entry_leaves_the_valid_copy_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pair(tmp.path());
    let (carl, _) = init(tmp.path(), "carl");
    let mut g = carl.open_or_new_group(&p.gid).unwrap();
    carl.ingest(&mut g, all_entries(&p.ana, &p.gid)).unwrap();
    let before = view(&g.record);
    let listed = listing(&carl, &p.gid);
    for victim in [p.thread, p.gid, *g.record.heads().last().unwrap()] {
        let genuine = entry_of(&carl, &p.gid, &victim);
        let out = carl.ingest(&mut g, vec![forge(&genuine)]).unwrap();
        assert!(out.accepted.is_empty() && out.pending.is_empty());
        // Quarantined as evidence under its own bytes' id, never counted as "already had".
        assert_eq!((out.duplicates, out.rejected.len()), (0, 1));
        assert_eq!(out.rejected[0].reason.kind(), "bad_signature");
        assert_ne!(out.rejected[0].id, victim);
        assert_eq!(view(&g.record), before);
        assert_eq!(
            entry_of(&carl, &p.gid, &victim),
            genuine,
            "the stored bytes are the genuine ones"
        );
    }
    // The valid entries are listed exactly as before; the three forged copies are added as quarantined.
    let after = listing(&carl, &p.gid);
    assert_eq!(after[..listed.len()], listed[..]);
    let added: Vec<_> = after[listed.len()..]
        .iter()
        .map(|(_, st)| st.clone())
        .collect();
    assert_eq!(added.len(), 3);
    assert!(
        added.iter().all(
            |st| matches!(st, StoredStatus::Quarantined { kind, .. } if kind == "bad_signature")
        )
    );
    let dir = carl.dir().to_path_buf();
    drop((carl, g));
    let (_carl, g) = reopen(&dir, &p.gid);
    assert_eq!(view(&g.record), before);
}

/// A forged copy arrives first and is quarantined, then the genuine entry: the genuine one is stored
/// and logged with its own bytes, the forged one stays in quarantine, and the group reopens.
#[test]
fn genuine_entry_after_a_forged_copy_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pair(tmp.path());
    let (carl, _) = init(tmp.path(), "carl");
    let mut g = carl.open_or_new_group(&p.gid).unwrap();
    let victim = *p.ana_g.record.causal_order().last().unwrap();
    let genuine = entry_of(&p.ana, &p.gid, &victim);
    let others: Vec<Entry> = p
        .ana
        .entries(&p.gid)
        .unwrap()
        .into_iter()
        .filter(|s| s.id != victim)
        .map(|s| s.entry)
        .collect();
    carl.ingest(&mut g, others).unwrap();
    let out = carl.ingest(&mut g, vec![forge(&genuine)]).unwrap();
    assert_eq!(out.rejected.len(), 1);
    let out = carl.ingest(&mut g, vec![genuine.clone()]).unwrap();
    assert_eq!(out.accepted, vec![victim]);
    let stored = carl
        .entries(&p.gid)
        .unwrap()
        .into_iter()
        .find(|s| s.id == victim)
        .unwrap();
    assert_eq!(stored.status, StoredStatus::Valid);
    assert_eq!(
        stored.entry, genuine,
        "the valid entry is stored with its genuine signature"
    );
    let q = carl
        .entries(&p.gid)
        .unwrap()
        .into_iter()
        .find(|s| s.id == digest_id(&forge(&genuine)))
        .expect("the forged copy stays in quarantine");
    assert!(matches!(q.status, StoredStatus::Quarantined { .. }));
    let before = view(&g.record);
    let dir = carl.dir().to_path_buf();
    drop((carl, g));
    let home = Home::open(&dir).unwrap();
    let g = home
        .open_group(&p.gid)
        .expect("the group opens after a forged copy was followed by the genuine entry");
    assert_eq!(view(&g.record), before);
}

// ----- the key file -----

#[test]
fn protected_key_wrong_passphrase_right_passphrase_and_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ana");
    let (home, k) = Home::init(&dir, "Ana", Some("correct horse")).unwrap();
    assert!(home.key_is_protected().unwrap());
    let file = dir.join("device.key");
    let bytes = std::fs::read(&file).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        !text.contains(&hex::encode(*k.secret_bytes())),
        "the secret is not stored in the clear"
    );
    assert!(matches!(
        home.device_key(Some("correct horse battery")),
        Err(KeyError::WrongPassphrase)
    ));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "a wrong passphrase changes nothing"
    );
    assert!(matches!(
        home.device_key(None),
        Err(KeyError::PassphraseNeeded)
    ));
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    drop(home);
    let home = Home::open(&dir).unwrap();
    let again = home.device_key(Some("correct horse")).unwrap();
    assert_eq!(again.device_id(), k.device_id());
    assert_eq!(*again.secret_bytes(), *k.secret_bytes());
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(home.setting("name").unwrap(), Some(b"Ana".to_vec()));
}

#[test]
fn a_changed_encryption_key_keeps_the_one_it_replaced_under_the_same_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ana");
    let (home, _) = Home::init(&dir, "Ana", Some("correct horse")).unwrap();
    let pass = Some("correct horse");
    let first = home.enc_secret(pass).unwrap();
    assert!(home.prev_enc_secret(pass).unwrap().is_none());
    // A wrong passphrase changes nothing.
    assert!(matches!(
        home.rotate_enc_secret(Some("wrong horse battery")),
        Err(KeyError::WrongPassphrase)
    ));
    assert!(!dir.join("encryption.prev").exists());
    assert_eq!(*home.enc_secret(pass).unwrap(), *first);

    let second = home.rotate_enc_secret(pass).unwrap();
    assert_ne!(*second, *first);
    assert_eq!(*home.enc_secret(pass).unwrap(), *second);
    assert_eq!(*home.prev_enc_secret(pass).unwrap().unwrap(), *first);
    assert!(matches!(
        home.prev_enc_secret(None),
        Err(KeyError::PassphraseNeeded)
    ));
    let text = std::fs::read_to_string(dir.join("encryption.prev")).unwrap();
    assert!(!text.contains(&hex::encode(*first)), "not in the clear");

    // Only one key back is kept: the one replaced last.
    let given = [42u8; 32];
    home.replace_enc_secret(&given, pass).unwrap();
    assert_eq!(*home.enc_secret(pass).unwrap(), given);
    assert_eq!(*home.prev_enc_secret(pass).unwrap().unwrap(), *second);
    drop(home);
    Home::open(&dir).expect("a home with a replaced key is still private and opens");
}

#[test]
fn unprotected_key_file_and_home_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("ana");
    let (home, k) = Home::init(&dir, "Ana", None).unwrap();
    assert!(!home.key_is_protected().unwrap());
    assert_eq!(home.device_key(None).unwrap().device_id(), k.device_id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("device.key")), 0o600, "the key file is 0600");
        assert_eq!(mode(&dir), 0o700, "the home folder is 0700");
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temporary file is left behind: {names:?}"
    );
    drop(home);
    assert!(matches!(
        Home::init(&dir, "Ana", None),
        Err(OpenError::HomeExists(_))
    ));
    assert!(matches!(
        Home::open(&tmp.path().join("nowhere")),
        Err(OpenError::NoHome(_))
    ));
    let home = Home::open(&dir).unwrap();
    assert_eq!(home.device_key(None).unwrap().device_id(), k.device_id());
}

// ----- imports -----

#[test]
fn import_of_2500_entries_commits_in_batches() {
    const N: usize = 2500;
    const { assert!(N > 2 * IMPORT_BATCH, "the import spans several batches") };
    let tmp = tempfile::tempdir().unwrap();
    let ana = key();
    let (gid, entries) = chain(&ana, N);
    let (home, _) = init(tmp.path(), "bea");
    let dir = home.dir().to_path_buf();
    let mut g = home.open_or_new_group(&gid).unwrap();
    let t = Instant::now();
    // Children first: the first batches are all pending when they commit, the last accepts them.
    let mut reversed = entries.clone();
    reversed.reverse();
    let out = home.ingest(&mut g, reversed).unwrap();
    eprintln!("import of {N} entries, children first: {:.1?}", t.elapsed());
    assert_eq!(out.accepted.len(), N);
    assert!(
        out.pending.is_empty(),
        "nothing is reported pending once accepted"
    );
    assert!(out.rejected.is_empty());
    assert_eq!(g.record.len(), N);
    let heads = g.record.heads();
    // Snapshot, so the reopen below does not replay 2,500 signature checks in a debug build.
    assert!(home.checkpoint(&mut g).unwrap());
    drop((home, g));

    let home = Home::open(&dir).unwrap();
    let listed = home.entries(&gid).unwrap();
    assert_eq!(listed.len(), N, "every imported entry is stored");
    assert!(listed.iter().all(|s| s.status == StoredStatus::Valid));
    let stored: HashSet<EntryId> = listed.iter().map(|s| s.id).collect();
    for e in &entries {
        assert!(stored.contains(&e.parse().unwrap().hash));
    }
    let g = home.open_group(&gid).unwrap();
    assert_eq!(g.record.len(), N);
    assert_eq!(g.record.heads(), heads);
    assert!(
        entries
            .iter()
            .all(|e| g.record.contains(&e.parse().unwrap().hash))
    );
}

#[test]
fn import_from_another_homes_entries_in_causal_order() {
    // A smaller copy from a home's own listing (the CLI's bundle path), over a batch boundary.
    const N: usize = IMPORT_BATCH + 200;
    let tmp = tempfile::tempdir().unwrap();
    let k = key();
    let (gid, entries) = chain(&k, N);
    let (src, _) = init(tmp.path(), "ana");
    let mut sg = src.open_or_new_group(&gid).unwrap();
    src.ingest(&mut sg, entries).unwrap();
    let (dst, _) = init(tmp.path(), "bea");
    let mut dg = dst.open_or_new_group(&gid).unwrap();
    let out = dst.ingest(&mut dg, all_entries(&src, &gid)).unwrap();
    assert_eq!(out.accepted.len(), N);
    assert_eq!(dg.record.heads(), sg.record.heads());
    let dir = dst.dir().to_path_buf();
    dst.checkpoint(&mut dg).unwrap();
    drop((dst, dg));
    let home = Home::open(&dir).unwrap();
    assert_eq!(home.entries(&gid).unwrap().len(), N);
    let g = home.open_group(&gid).unwrap();
    assert_eq!(g.record.len(), N);
    assert_eq!(g.record.heads(), sg.record.heads());
}

// ----- measurements -----

/// `refresh` skips its read while nothing can have changed; a second `Group` of the same home must
/// still see what the first one wrote.
#[test]
fn two_open_groups_of_one_home_see_each_others_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, k) = init(tmp.path(), "Ana");
    let mut g1 = home
        .create_group(&k, "Board", Rule::Consent, 1, "Ana", "", 0)
        .unwrap();
    let gid = g1.id();
    let mut g2 = home.open_group(&gid).unwrap();
    let t = thread(&home, &mut g1, &k, "From the first");
    assert_eq!(home.refresh(&mut g2).unwrap(), vec![t]);
    assert!(g2.record.contains(&t));
    // And back: the second writes, the first sees it, and nothing is read twice.
    let m = message(&home, &mut g2, &k, t, "From the second");
    assert_eq!(home.refresh(&mut g1).unwrap(), vec![m]);
    assert_eq!(home.refresh(&mut g1).unwrap(), Vec::<EntryId>::new());
    assert_eq!(g1.record.heads(), g2.record.heads());
}
