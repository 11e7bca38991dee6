//! Issue 15 at the store: a group is started only from its genesis, `forget_group` removes one group
//! completely and nothing else, rejected entries are kept once within bounds and never exported or
//! relayed when they were not signed for the group, and a home open to others is refused.

use std::path::Path;

use roundtable_core::{Body, DeviceKey, Entry, GroupId, Record, Rule};
use roundtable_store::{
    EVIDENCE_PER_AUTHOR, EVIDENCE_TOTAL, Group, Home, OpenError, StoreError, StoredStatus,
};

fn key() -> DeviceKey {
    DeviceKey::generate().expect("the OS random generator works")
}

fn init(root: &Path, name: &str) -> (Home, DeviceKey) {
    Home::init(&root.join(name), name, None).expect("init a home")
}

/// A group of its own (one member) with `n` messages: its id and every entry, genesis first.
fn other_group(k: &DeviceKey, n: usize) -> (GroupId, Vec<Entry>) {
    let (mut r, genesis) =
        Record::create(k, "Elsewhere", Rule::Consent, 1, "Zed", "", 0).expect("genesis");
    let mut out = vec![genesis];
    let (t, e) = r
        .author(k, Body::Thread { title: "T".into() }, 1)
        .expect("thread");
    out.push(e);
    for i in 0..n {
        let (_, e) = r
            .author(
                k,
                Body::Message {
                    thread: t,
                    text: format!("note {i}"),
                },
                2 + i as i64,
            )
            .expect("message");
        out.push(e);
    }
    (r.group(), out)
}

fn quarantined(home: &Home, gid: &GroupId) -> usize {
    home.entries(gid)
        .unwrap()
        .iter()
        .filter(|s| matches!(s.status, StoredStatus::Quarantined { .. }))
        .count()
}

#[test]
fn a_group_this_home_does_not_hold_starts_only_from_its_genesis() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, _) = init(tmp.path(), "ana");
    let zed = key();
    let (gid, entries) = other_group(&zed, 2);
    // Everything but the genesis, and the genesis under another group's name: refused, nothing kept.
    let phantom = GroupId::from_bytes([0x5a; 32]);
    for (g, es) in [(gid, entries[1..].to_vec()), (phantom, entries.clone())] {
        let mut group = home.open_or_new_group(&g).unwrap();
        let e = home.ingest(&mut group, es).unwrap_err();
        assert!(matches!(e, StoreError::NoGenesis(x) if x == g), "{e}");
        assert!(
            !e.to_string().contains("--"),
            "no CLI flag in a library message: {e}"
        );
        assert!(!home.holds(&g).unwrap());
        assert!(home.groups().unwrap().is_empty());
        assert!(home.entries(&g).unwrap().is_empty());
    }
    // With its genesis (last, in a later batch), the group starts.
    let mut group = home.open_or_new_group(&gid).unwrap();
    let mut rev = entries.clone();
    rev.reverse();
    let out = home.ingest(&mut group, rev).unwrap();
    assert_eq!(out.accepted.len(), entries.len());
    assert!(home.holds(&gid).unwrap());
}

#[test]
fn forget_group_removes_that_group_completely_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, ana) = init(tmp.path(), "ana");
    let mut mine = home
        .create_group(&ana, "Board", Rule::Consent, 1, "Ana", "", 0)
        .unwrap();
    home.append(
        &mut mine,
        &ana,
        Body::Thread {
            title: "Mine".into(),
        },
        1,
    )
    .unwrap();
    home.snapshot(&mut mine).unwrap();
    let zed = key();
    let (gid, entries) = other_group(&zed, 3);
    let mut other = home.open_or_new_group(&gid).unwrap();
    home.ingest(&mut other, entries.clone()).unwrap();
    // Some evidence and a snapshot and a setting for the other group, a setting for mine.
    let (_, foreign) = other_group(&key(), 1);
    home.ingest(&mut other, foreign[1..].to_vec()).unwrap();
    home.snapshot(&mut other).unwrap();
    home.set_setting(&format!("web.seen.{gid}"), b"x").unwrap();
    home.set_setting(&format!("web.seen.{}", mine.id()), b"y")
        .unwrap();
    home.add_invite(&[1; 32], &gid, i64::MAX).unwrap();
    home.add_invite(&[2; 32], &mine.id(), i64::MAX).unwrap();
    let mine_before = home.entries(&mine.id()).unwrap().len();
    let mine_heads = mine.record.heads();
    assert!(quarantined(&home, &gid) > 0);

    let removed = home.forget_group(&gid).unwrap();
    assert_eq!(removed, entries.len() + foreign.len() - 1);
    assert!(!home.holds(&gid).unwrap());
    assert!(home.entries(&gid).unwrap().is_empty());
    assert!(home.evidence_ids(&gid).unwrap().is_empty());
    assert!(matches!(
        home.open_group(&gid),
        Err(StoreError::NoSuchGroup(_))
    ));
    assert_eq!(home.setting(&format!("web.seen.{gid}")).unwrap(), None);
    assert!(
        home.use_invite(&[1; 32], &gid, 0).is_err(),
        "its invitation is gone"
    );
    assert!(matches!(
        home.forget_group(&gid),
        Err(StoreError::NoSuchGroup(_))
    ));
    // Mine is untouched, and reopens the same (snapshot and all).
    let dir = home.dir().to_path_buf();
    drop((home, mine, other));
    let home = Home::open(&dir).unwrap();
    assert_eq!(home.groups().unwrap().len(), 1);
    assert_eq!(home.entries(&mine_id(&home)).unwrap().len(), mine_before);
    let again = home.open_group(&mine_id(&home)).unwrap();
    assert_eq!(again.record.heads(), mine_heads);
    assert_eq!(
        home.setting(&format!("web.seen.{}", mine_id(&home)))
            .unwrap(),
        Some(b"y".to_vec())
    );
    // The forgotten group can come back from its genesis, as new.
    let mut back = home.open_or_new_group(&gid).unwrap();
    let out = home.ingest(&mut back, entries.clone()).unwrap();
    assert_eq!((out.accepted.len(), out.duplicates), (entries.len(), 0));
}

fn mine_id(home: &Home) -> GroupId {
    home.groups().unwrap()[0].0
}

#[test]
fn rejected_entries_are_kept_once_within_bounds_and_never_exported_or_relayed() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, ana) = init(tmp.path(), "ana");
    let mut g: Group = home
        .create_group(&ana, "Board", Rule::Consent, 1, "Ana", "", 0)
        .unwrap();
    let gid = g.id();
    let valid = home.export_entries(&gid).unwrap();
    // Valid entries of another group, relabelled into this one: signed, but not for this group.
    let zed = key();
    let (_, theirs) = other_group(&zed, EVIDENCE_PER_AUTHOR + 20);
    let out = home.ingest(&mut g, theirs.clone()).unwrap();
    assert!(out.accepted.is_empty());
    assert_eq!(out.rejected.len(), theirs.len());
    assert_eq!(
        quarantined(&home, &gid),
        EVIDENCE_PER_AUTHOR,
        "bounded per author"
    );
    assert_eq!(g.evidence_not_kept, theirs.len() - EVIDENCE_PER_AUTHOR);
    // Once: the same file again adds nothing.
    home.ingest(&mut g, theirs.clone()).unwrap();
    assert_eq!(quarantined(&home, &gid), EVIDENCE_PER_AUTHOR);
    // Never exported nor relayed as if they belonged to the group.
    assert_eq!(home.export_entries(&gid).unwrap(), valid);
    assert!(home.evidence_ids(&gid).unwrap().is_empty());
    // Bounded in total: many authors.
    let mut authors = 0;
    while quarantined(&home, &gid) < EVIDENCE_TOTAL {
        let (_, more) = other_group(&key(), EVIDENCE_PER_AUTHOR);
        home.ingest(&mut g, more).unwrap();
        authors += 1;
        assert!(authors < 100, "the total bound holds");
    }
    let (_, more) = other_group(&key(), 5);
    home.ingest(&mut g, more.clone()).unwrap();
    assert_eq!(quarantined(&home, &gid), EVIDENCE_TOTAL);
    assert_eq!(g.evidence_not_kept, more.len());
    // The record itself is untouched.
    assert_eq!(home.export_entries(&gid).unwrap(), valid);
}

#[cfg(unix)]
#[test]
fn a_home_open_to_others_is_refused_with_the_command_that_fixes_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (home, _) = init(tmp.path(), "ana");
    let dir = home.dir().to_path_buf();
    drop(home);
    let chmod =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let fix = format!(
        "chmod 700 {d} && chmod 600 {d}/device.key {d}/encryption.key",
        d = dir.display()
    );
    chmod(&dir, 0o755);
    let e = Home::open(&dir).err().expect("refused");
    assert!(matches!(e, OpenError::NotPrivate { .. }), "{e}");
    assert!(e.to_string().contains(&fix), "{e}");
    chmod(&dir, 0o700);
    chmod(&dir.join("device.key"), 0o644);
    let e = Home::open(&dir).err().expect("refused");
    assert!(
        e.to_string().contains("device.key is kept in clear text"),
        "{e}"
    );
    assert!(e.to_string().contains(&fix), "{e}");
    chmod(&dir.join("device.key"), 0o600);
    Home::open(&dir).expect("private again");
}
