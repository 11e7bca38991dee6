//! Issue 15, case 8, as a property: 3 to 6 devices, each with its own replica of the record, add
//! and remove readers of one sealed thread, rotate its key and write in it concurrently, syncing
//! pairs at random. After every sync a device gives other readers the keys they lack
//! (`thread::all_missing_keys`, what the CLI and the web page do). Once everyone has synced:
//!
//! - every device agrees on the record and on the reader set, and the thread has a reader;
//! - every current reader reads every message written while they were a reader (as its writer saw
//!   the readers), and all current readers read the same messages;
//! - no removed reader reads anything written after their removal (after every time they were
//!   given keys).

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use roundtable_core::{Body, DeviceId, DeviceKey, Entry, EntryId, Record, Rule};
use roundtable_seal::{EncSecret, Keyring, SealError, thread};

struct Device {
    rec: Record,
    known: HashSet<EntryId>,
    entries: Vec<Entry>,
}

struct Written {
    id: EntryId,
    /// The readers as the writer's device saw them when writing.
    readers: BTreeSet<DeviceId>,
    /// Every entry the writer's device held then.
    past: HashSet<EntryId>,
}

struct World {
    keys: Vec<DeviceKey>,
    encs: Vec<EncSecret>,
    devices: Vec<Device>,
    thread: EntryId,
    written: Vec<Written>,
    time: i64,
}

impl World {
    fn new(n: usize, initial: &[usize]) -> World {
        let keys: Vec<DeviceKey> = (0..n).map(|_| DeviceKey::generate().unwrap()).collect();
        let encs: Vec<EncSecret> = (0..n).map(|_| EncSecret::generate().unwrap()).collect();
        let (mut rec, genesis) =
            Record::create(&keys[0], "Board", Rule::Consent, 1, "M0", "", 0).unwrap();
        let mut entries = vec![genesis];
        let mut time = 0;
        let names: Vec<String> = (1..n).map(|i| format!("M{i}")).collect();
        let newcomers: Vec<(&DeviceKey, &str, &str)> = keys[1..]
            .iter()
            .zip(&names)
            .map(|(k, name)| (k, name.as_str(), ""))
            .collect();
        let gid = rec.group();
        let genesis_id = rec.genesis().unwrap();
        roundtable_core::governance::add_members(genesis_id, 1, &keys[0], &newcomers, |k, b| {
            time += 1;
            rec.author(k, b, time).map(|(id, e)| {
                entries.push(e);
                id
            })
        })
        .unwrap();
        for (k, e) in keys.iter().zip(&encs) {
            time += 1;
            let (_, entry) = rec
                .author(
                    k,
                    Body::Profile {
                        enc_key: e.public().unwrap(),
                    },
                    time,
                )
                .unwrap();
            entries.push(entry);
        }
        let readers: Vec<DeviceId> = initial.iter().map(|i| keys[*i].device_id()).collect();
        let body = thread::start(&rec, "Health", "It is private", &readers).unwrap();
        time += 1;
        let (t, e) = rec.author(&keys[initial[0]], body, time).unwrap();
        entries.push(e);
        let devices = (0..n)
            .map(|_| {
                let (r, _) = Record::from_entries(gid, entries.clone());
                Device {
                    known: r.causal_order().iter().copied().collect(),
                    rec: r,
                    entries: entries.clone(),
                }
            })
            .collect();
        World {
            keys,
            encs,
            devices,
            thread: t,
            written: Vec::new(),
            time,
        }
    }

    fn id(&self, i: usize) -> DeviceId {
        self.keys[i].device_id()
    }

    fn readers(&self, d: usize) -> BTreeSet<DeviceId> {
        self.devices[d]
            .rec
            .sealed_thread(&self.thread)
            .unwrap()
            .state
            .readers
    }

    /// Device `d` writes `body`; `None` when its own rules refuse it.
    fn write(&mut self, d: usize, body: Body) -> Option<EntryId> {
        self.time += 1;
        let dev = &mut self.devices[d];
        let (id, e) = dev.rec.author(&self.keys[d], body, self.time).ok()?;
        dev.known.insert(id);
        dev.entries.push(e);
        Some(id)
    }

    fn say(&mut self, d: usize, text: &str) {
        let me = self.id(d);
        if !self.readers(d).contains(&me) {
            return;
        }
        let mut keys = Keyring::new(me, &self.encs[d]);
        let body = match thread::message(
            &self.devices[d].rec,
            &mut keys,
            &self.thread,
            &me,
            text,
            self.time,
        ) {
            Err(SealError::NeedsRekey) => {
                let rk = thread::rekey(&self.devices[d].rec, &self.thread, None).unwrap();
                self.write(d, rk).expect("a rekey by a reader");
                let mut keys = Keyring::new(me, &self.encs[d]);
                thread::message(
                    &self.devices[d].rec,
                    &mut keys,
                    &self.thread,
                    &me,
                    text,
                    self.time,
                )
                .unwrap()
            }
            other => other.unwrap(),
        };
        let readers = self.readers(d);
        let past = self.devices[d].known.clone();
        let id = self.write(d, body).expect("a reader's sealed message");
        self.written.push(Written { id, readers, past });
    }

    fn add(&mut self, d: usize, m: usize) {
        let (me, them) = (self.id(d), self.id(m));
        let readers = self.readers(d);
        if !readers.contains(&me) || readers.contains(&them) {
            return;
        }
        // Every other reader agrees first (rule S32): until then, `d` writes its agreement.
        let st = self.devices[d].rec.sealed_state(&self.thread).unwrap();
        if !st.waiting_for(&them, &me).is_empty() {
            let agree = Body::ReaderAgree {
                thread: self.thread,
                member: them,
            };
            self.write(d, agree).expect("a reader's agreement");
            return;
        }
        let mut keys = Keyring::new(me, &self.encs[d]);
        if let Ok(body) = thread::add_reader(&self.devices[d].rec, &mut keys, &self.thread, &them) {
            self.write(d, body)
                .expect("a reader every other reader agreed to");
        }
    }

    fn remove(&mut self, d: usize, m: usize) {
        let (me, them) = (self.id(d), self.id(m));
        let readers = self.readers(d);
        if d == m || !readers.contains(&me) || !readers.contains(&them) {
            return;
        }
        let body = thread::rekey(&self.devices[d].rec, &self.thread, Some(them)).unwrap();
        self.write(d, body).expect("a removal by a reader");
    }

    fn rotate(&mut self, d: usize) {
        if self.readers(d).contains(&self.id(d)) {
            let body = thread::rekey(&self.devices[d].rec, &self.thread, None).unwrap();
            self.write(d, body).expect("a rekey by a reader");
        }
    }

    /// `to` takes what `from` has, then gives readers the keys they lack. Returns whether `to`
    /// learned or wrote anything.
    fn pull(&mut self, from: usize, to: usize) -> bool {
        let new: Vec<Entry> = self.devices[from]
            .entries
            .iter()
            .filter(|e| {
                let id = e.parse().unwrap().hash;
                !self.devices[to].known.contains(&id)
            })
            .cloned()
            .collect();
        let mut changed = false;
        if !new.is_empty() {
            let dev = &mut self.devices[to];
            let out = dev.rec.ingest(new.clone());
            assert!(
                out.rejected.is_empty(),
                "honest entries are accepted: {:?}",
                out.rejected
            );
            assert!(!out.rebuild);
            for e in new {
                let id = e.parse().unwrap().hash;
                if dev.known.insert(id) {
                    dev.entries.push(e);
                    changed = true;
                }
            }
        }
        let me = self.id(to);
        let mut keys = Keyring::new(me, &self.encs[to]);
        let bodies = thread::all_missing_keys(&self.devices[to].rec, &mut keys).unwrap();
        for b in bodies {
            changed |= self.write(to, b).is_some();
        }
        changed
    }

    fn settle(&mut self) {
        let n = self.devices.len();
        for _round in 0..12 {
            let mut changed = false;
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        changed |= self.pull(a, b);
                    }
                }
            }
            if !changed {
                return;
            }
        }
        panic!("the devices did not settle");
    }

    /// The messages device `d`'s member reads, with a fresh keyring.
    fn reads(&self, d: usize) -> BTreeSet<EntryId> {
        let mut keys = Keyring::new(self.id(d), &self.encs[d]);
        thread::open(&self.devices[0].rec, &mut keys, &self.thread)
            .map(|v| v.messages.iter().map(|m| m.id).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Say(usize),
    Add(usize, usize),
    Remove(usize, usize),
    Rotate(usize),
    Sync(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Say),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Add(a, b)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Remove(a, b)),
        1 => any::<usize>().prop_map(Op::Rotate),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Sync(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_reader_changes_and_rotations_fail_safe(
        n in 3usize..=6,
        first in 1usize..=3,
        ops in proptest::collection::vec(op(), 8..40),
    ) {
        let initial: Vec<usize> = (0..first.min(n)).collect();
        let mut w = World::new(n, &initial);
        for (i, o) in ops.iter().enumerate() {
            // The acting device: the first from `d` on that is a reader in its own replica.
            let actor = |w: &World, d: usize| {
                (0..n).map(|k| (d + k) % n).find(|x| w.readers(*x).contains(&w.id(*x)))
            };
            match *o {
                Op::Say(d) => if let Some(d) = actor(&w, d) { w.say(d, &format!("message {i}")) },
                Op::Add(d, m) => if let Some(d) = actor(&w, d) { w.add(d, m % n) },
                Op::Remove(d, m) => if let Some(d) = actor(&w, d) { w.remove(d, m % n) },
                Op::Rotate(d) => if let Some(d) = actor(&w, d) { w.rotate(d) },
                Op::Sync(a, b) => {
                    if a % n != b % n {
                        w.pull(a % n, b % n);
                    }
                }
            }
        }
        w.settle();
        if std::env::var_os("READERS_PROP_STATS").is_some() {
            let info = w.devices[0].rec.sealed_thread(&w.thread).unwrap();
            eprintln!("n={n} ops={} messages={} epochs={} readers={}", ops.len(), w.written.len(), info.state.epochs.len(), info.state.readers.len());
        }
        // Everyone agrees on the record and on the readers; the thread keeps a reader.
        let heads = w.devices[0].rec.heads();
        let readers = w.readers(0);
        for d in 1..n {
            prop_assert_eq!(w.devices[d].rec.heads(), heads.clone());
            prop_assert_eq!(w.readers(d), readers.clone());
        }
        prop_assert!(!readers.is_empty(), "a sealed thread always keeps a reader");
        let reads: Vec<BTreeSet<EntryId>> = (0..n).map(|d| w.reads(d)).collect();
        let adds_of = |m: DeviceId| -> Vec<EntryId> {
            w.devices[0]
                .rec
                .causal_order()
                .iter()
                .filter(|h| matches!(
                    w.devices[0].rec.entry(h).map(|(_, meta)| &meta.body),
                    Some(Body::ReaderAdd { member, .. }) if *member == m
                ))
                .copied()
                .collect()
        };
        for d in 0..n {
            let me = w.id(d);
            if readers.contains(&me) {
                for m in &w.written {
                    if m.readers.contains(&me) {
                        prop_assert!(reads[d].contains(&m.id), "reader {} cannot read {}", d, m.id);
                    }
                }
                // Current readers all read the same messages: nobody is left without a key.
                prop_assert_eq!(&reads[d], &reads[readers.iter().map(|r| {
                    (0..n).find(|i| w.id(*i) == *r).unwrap()
                }).next().unwrap()]);
            } else {
                let adds = adds_of(me);
                for m in &w.written {
                    let after_every_grant = adds.iter().all(|a| m.past.contains(a));
                    if after_every_grant && !m.readers.contains(&me) {
                        prop_assert!(!reads[d].contains(&m.id), "removed {} reads {}", d, m.id);
                    }
                }
            }
        }
    }
}

/// The case of the issue, step by step: Ben agrees, then Ana adds Cy while Ben makes a new key; once they have
/// synced, Cy holds the new key too, sent by a reader's device, and reads Ben's message. A second
/// copy of the same key for Cy is refused by the rules.
#[test]
fn a_reader_added_during_a_rotation_is_sent_the_missing_key() {
    let mut w = World::new(3, &[0, 1]);
    // Ben agrees that Cy may read, and Ana's device learns it; then the two moves at once.
    w.add(1, 2);
    w.pull(1, 0);
    w.add(0, 2);
    assert!(w.readers(0).contains(&w.id(2)), "Ana let Cy in");
    w.rotate(1);
    w.say(1, "after the new key");
    let bens = w.written.last().unwrap().id;
    w.pull(0, 1);
    w.pull(1, 0);
    // Ben's device, on this sync, sends Cy the key of its epoch; Ana's does not need to.
    let info = w.devices[1].rec.sealed_thread(&w.thread).unwrap();
    let cy = w.id(2);
    assert!(info.state.readers.contains(&cy));
    assert!(
        info.state.epochs.iter().all(|e| e.wraps.contains_key(&cy)),
        "Cy holds every key on Ben's device"
    );
    w.settle();
    assert!(w.reads(2).contains(&bens), "Cy reads Ben's message");
    // Nothing is left to send, and sending it again is refused.
    let mut keys = Keyring::new(w.id(0), &w.encs[0]);
    assert!(
        thread::all_missing_keys(&w.devices[0].rec, &mut keys)
            .unwrap()
            .is_empty()
    );
    let epoch = info.state.epochs.last().unwrap();
    let again = Body::ReaderAdd {
        thread: w.thread,
        member: cy,
        wraps: vec![roundtable_core::sealed::EpochWrap {
            epoch: epoch.id,
            key: w.encs[2].public().unwrap(),
            enc: epoch.wraps[&cy].1,
            ct: epoch.wraps[&cy].2.clone(),
        }],
    };
    let e = w.devices[0]
        .rec
        .author(&w.keys[0], again, 99)
        .expect_err("a key Cy holds is not given twice");
    assert!(e.to_string().contains("already a reader"), "{e}");
}

/// Two readers remove each other at the same moment: one removal stands, the same on every device,
/// and the thread keeps a reader.
#[test]
fn two_readers_removing_each_other_leave_one_reader() {
    let mut w = World::new(3, &[0, 1]);
    w.remove(0, 1);
    w.remove(1, 0);
    w.settle();
    let r0 = w.readers(0);
    assert_eq!(r0.len(), 1, "{r0:?}");
    for d in 1..3 {
        assert_eq!(w.readers(d), r0);
    }
    // The one left can write and read.
    let left = (0..2).find(|d| r0.contains(&w.id(*d))).unwrap();
    w.say(left, "still here");
    let id = w.written.last().unwrap().id;
    w.settle();
    assert!(w.reads(left).contains(&id));
    assert!(!w.reads(1 - left).contains(&id));
}

/// The limits are said in words before they are hit, and not long before.
#[test]
fn the_limits_are_said_in_words_before_they_are_hit() {
    use roundtable_core::record::{Epoch, SealedState};
    let epoch = |i: u8| Epoch {
        id: EntryId([i; 32]),
        commit: [0; 32],
        wraps: Default::default(),
        stale: false,
    };
    let readers = |n: u8| (0..n).map(|i| DeviceId([i; 32])).collect::<BTreeSet<_>>();
    let quiet = SealedState {
        readers: readers(10),
        epochs: vec![epoch(1)],
        asked: Default::default(),
        agreed: Default::default(),
    };
    assert_eq!(thread::limits_note(&quiet), None);
    let many = SealedState {
        readers: readers(60),
        epochs: vec![epoch(1)],
        asked: Default::default(),
        agreed: Default::default(),
    };
    let note = thread::limits_note(&many).unwrap();
    assert!(
        note.contains("60 readers") && note.contains("at most 64"),
        "{note}"
    );
    let keys = SealedState {
        readers: readers(2),
        epochs: (0..=250u8).cycle().take(860).map(epoch).collect(),
        asked: Default::default(),
        agreed: Default::default(),
    };
    let note = thread::limits_note(&keys).unwrap();
    assert!(
        note.contains("860 keys") && note.contains("at most 900"),
        "{note}"
    );
}
