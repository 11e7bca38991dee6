//! Sealed threads end to end on the real `Record` (no store, no network): who reads what, what a
//! reader refuses to show, the public rules every device checks, padding, and that the order in which
//! entries arrive changes neither the record nor what a reader reads.

use std::num::NonZeroU64;

use roundtable_core::sealed::{
    BUCKETS, InnerFrame, NONCE_LEN, TAG_LEN, Wrap, build_inner, key_commitment, message_aad,
    valid_ct_len, wrap_info,
};
use roundtable_core::{Body, DeviceId, DeviceKey, Entry, EntryId, GroupId, Record, Rule};
use roundtable_seal::{EncSecret, Keyring, SealError, ThreadView, Unreadable, aead, pad, thread};
use sha2::{Digest, Sha256};

// ----- helpers -----

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;

/// One record object that authors for every member's key, and every entry it produced.
struct Group {
    rec: Record,
    keys: Vec<DeviceKey>,
    /// Every entry written, genesis first, in the order written.
    entries: Vec<Entry>,
    time: i64,
}

/// A group of `n` members; each has an encryption secret (returned separately, so keyrings can
/// borrow them while the record changes) and has published it in a `Profile` entry.
fn group(n: usize) -> (Group, Vec<EncSecret>) {
    let keys: Vec<DeviceKey> = (0..n).map(|_| DeviceKey::generate().unwrap()).collect();
    let encs: Vec<EncSecret> = (0..n).map(|_| EncSecret::generate().unwrap()).collect();
    let (rec, genesis) = Record::create(&keys[0], "Board", Rule::Consent, 1, "Ana", "", 0).unwrap();
    let mut g = Group {
        rec,
        keys,
        entries: vec![genesis],
        time: 0,
    };
    for i in 1..n {
        let member = g.id(i);
        g.add(member, &format!("Member {i}"));
    }
    for (i, enc) in encs.iter().enumerate() {
        g.write(
            i,
            Body::Profile {
                enc_key: enc.public().unwrap(),
            },
        );
    }
    (g, encs)
}

impl Group {
    /// The group adds `member`: Ana proposes it, every active member agrees, Ana closes it.
    fn add(&mut self, member: DeviceId, name: &str) {
        let effect = roundtable_core::Effect::Add {
            member,
            name: name.into(),
            needs: String::new(),
        };
        let body = roundtable_core::governance::group_proposal(&self.rec, effect, name).unwrap();
        let p = self.write(A, body);
        let active: Vec<usize> = (0..self.keys.len())
            .filter(|i| self.rec.governance().active(&self.id(*i)))
            .collect();
        for i in active {
            self.write(
                i,
                Body::Stance {
                    proposal: p,
                    stance: roundtable_core::StanceKind::Agree,
                    reason: String::new(),
                    on_behalf: None,
                },
            );
        }
        let t = self.rec.tally_now(&p).unwrap();
        self.write(
            A,
            Body::Outcome {
                proposal: p,
                outcome: "welcome".into(),
                decision: t.decision,
                counts: t.counts,
            },
        );
        assert!(self.rec.governance().active(&member));
    }

    fn id(&self, who: usize) -> DeviceId {
        self.keys[who].device_id()
    }

    fn ids(&self, who: &[usize]) -> Vec<DeviceId> {
        who.iter().map(|w| self.id(*w)).collect()
    }

    fn group_id(&self) -> GroupId {
        self.rec.group()
    }

    /// Another device's copy of this record, with the same keys (for concurrent writes).
    fn fork(&self) -> Group {
        Group {
            rec: Record::from_entries(self.group_id(), self.entries.clone()).0,
            keys: self
                .keys
                .iter()
                .map(|k| DeviceKey::from_secret(&k.secret_bytes()))
                .collect(),
            entries: self.entries.clone(),
            time: self.time + 1000,
        }
    }

    fn try_write(&mut self, who: usize, body: Body) -> Result<EntryId, String> {
        self.time += 1;
        match self.rec.author(&self.keys[who], body, self.time) {
            Ok((id, entry)) => {
                self.entries.push(entry);
                Ok(id)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn write(&mut self, who: usize, body: Body) -> EntryId {
        self.try_write(who, body)
            .unwrap_or_else(|e| panic!("member {who} could not write: {e}"))
    }

    /// `record.author` refuses the body with a message containing `needle`, and nothing is added.
    fn refuse(&mut self, who: usize, body: Body, needle: &str) {
        let (len, heads) = (self.rec.len(), self.rec.heads());
        let err = self
            .try_write(who, body)
            .expect_err("the record accepted what its rules forbid");
        assert!(
            err.contains(needle),
            "expected a refusal mentioning {needle:?}, got {err:?}"
        );
        assert_eq!(self.rec.len(), len, "a refused write left an entry behind");
        assert_eq!(self.rec.heads(), heads);
    }

    /// `who` starts a sealed thread read by `readers`.
    fn start(&mut self, who: usize, readers: &[usize]) -> EntryId {
        let body = thread::start(
            &self.rec,
            "Health",
            "It is about one member's health",
            &self.ids(readers),
        )
        .unwrap();
        self.write(who, body)
    }

    /// The body of a sealed message by `who`, built with a fresh keyring (as after a restart).
    fn sealed_body(&self, encs: &[EncSecret], who: usize, t: EntryId, text: &str) -> Body {
        let mut keys = Keyring::new(self.id(who), &encs[who]);
        thread::message(&self.rec, &mut keys, &t, &self.id(who), text, self.time + 1).unwrap()
    }

    /// `who` writes a sealed message.
    fn say(&mut self, encs: &[EncSecret], who: usize, t: EntryId, text: &str) -> EntryId {
        let body = self.sealed_body(encs, who, t, text);
        self.write(who, body)
    }

    fn rekey(&mut self, who: usize, t: EntryId, removes: Option<usize>) -> EntryId {
        let body = thread::rekey(&self.rec, &t, removes.map(|r| self.id(r))).unwrap();
        self.write(who, body)
    }

    /// Every other reader agrees (rule S32), then `who` lets `member` read.
    fn add_reader(&mut self, encs: &[EncSecret], who: usize, t: EntryId, member: usize) -> EntryId {
        let m = self.id(member);
        for r in self
            .rec
            .sealed_state(&t)
            .unwrap()
            .waiting_for(&m, &self.id(who))
        {
            let r = (0..self.keys.len()).find(|i| self.id(*i) == r).unwrap();
            let agree = Body::ReaderAgree {
                thread: t,
                member: m,
            };
            self.write(r, agree);
        }
        let mut keys = Keyring::new(self.id(who), &encs[who]);
        let body = thread::add_reader(&self.rec, &mut keys, &t, &self.id(member)).unwrap();
        self.write(who, body)
    }

    /// The thread as `who` reads it, with a fresh keyring.
    fn view(&self, encs: &[EncSecret], who: usize, t: EntryId) -> ThreadView {
        view_of(&self.rec, self.id(who), &encs[who], t)
    }

    /// The thread's sealed entries, in the record's causal order.
    fn sealed_entries(&self, t: EntryId) -> Vec<EntryId> {
        self.rec.sealed_thread(&t).unwrap().entries
    }

    fn epochs(&self, t: EntryId) -> Vec<EntryId> {
        let info = self.rec.sealed_thread(&t).unwrap();
        info.state.epochs.iter().map(|e| e.id).collect()
    }

    /// The `ct` field of a sealed message.
    fn ct(&self, id: EntryId) -> Vec<u8> {
        match &self.rec.entry(&id).unwrap().1.body {
            Body::Sealed { ct, .. } => ct.clone(),
            other => panic!("{id} is not a sealed message: {other:?}"),
        }
    }

    /// The key of epoch `epoch` of thread `t`, opened by reader `who` (to craft ciphertexts by hand).
    fn epoch_key(&self, encs: &[EncSecret], who: usize, t: EntryId, epoch: EntryId) -> [u8; 32] {
        let info = self.rec.sealed_thread(&t).unwrap();
        let e = info.state.epochs.iter().find(|e| e.id == epoch).unwrap();
        let me = self.id(who);
        let (_, enc, ct) = &e.wraps[&me];
        let info = wrap_info(&self.group_id(), &me, &e.commit);
        *roundtable_seal::wrap::unwrap(&encs[who], enc, &info, ct).unwrap()
    }

    fn commit(&self, t: EntryId, epoch: EntryId) -> [u8; 32] {
        let info = self.rec.sealed_thread(&t).unwrap();
        info.state
            .epochs
            .iter()
            .find(|e| e.id == epoch)
            .unwrap()
            .commit
    }
}

fn view_of(rec: &Record, me: DeviceId, enc: &EncSecret, t: EntryId) -> ThreadView {
    let mut keys = Keyring::new(me, enc);
    thread::open(rec, &mut keys, &t).unwrap()
}

/// What a reader made of each entry, in thread order: the text, or why it was not shown.
type Verdicts = Vec<(EntryId, Result<(DeviceId, String), Unreadable>)>;

fn verdicts(rec: &Record, view: &ThreadView, t: EntryId) -> Verdicts {
    let entries = rec.sealed_thread(&t).unwrap().entries;
    let shown = view.messages.len() + view.unreadable.len();
    assert_eq!(shown, entries.len(), "every entry gets exactly one verdict");
    entries
        .into_iter()
        .map(|id| {
            let read = view.messages.iter().find(|m| m.id == id);
            let hidden = view.unreadable.iter().find(|(u, _)| *u == id);
            let v = match (read, hidden) {
                (Some(m), None) => Ok((m.author, m.text.clone())),
                (None, Some((_, why))) => Err(why.clone()),
                _ => panic!("entry {id} is both read and unreadable, or neither"),
            };
            (id, v)
        })
        .collect()
}

fn texts(view: &ThreadView) -> Vec<String> {
    view.messages.iter().map(|m| m.text.clone()).collect()
}

fn verdict_of(g: &Group, encs: &[EncSecret], who: usize, t: EntryId, id: EntryId) -> Verdict {
    let v = g.view(encs, who, t);
    if let Some(m) = v.messages.iter().find(|m| m.id == id) {
        return Ok(m.text.clone());
    }
    let (_, why) = v
        .unreadable
        .iter()
        .find(|(u, _)| *u == id)
        .unwrap_or_else(|| panic!("{id} is not in the thread"));
    Err(why.clone())
}

type Verdict = Result<String, Unreadable>;

/// A sealed message by hand: `text` as the inner change `frame`, padded, encrypted under `key`
/// with `aad`. Exactly what `thread::message` makes when every argument is the right one.
fn craft(key: &[u8; 32], aad: &[u8], frame: &InnerFrame, text: &str) -> Vec<u8> {
    let inner = build_inner(frame, text).unwrap();
    aead::seal(key, aad, &pad::pad(inner.raw_bytes()).unwrap()).unwrap()
}

fn first_frame(actor: DeviceId) -> InnerFrame {
    InnerFrame {
        actor,
        seq: 1,
        start_op: NonZeroU64::MIN,
        deps: vec![],
        time_ms: 1,
    }
}

/// A small deterministic generator (SplitMix64) for shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ----- 1. non-readers -----

#[test]
fn non_readers_decrypt_no_entry_and_readers_decrypt_all() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B]);
    let written = ["A: first", "B: reply", "A: second", "B: last word"];
    for (i, text) in written.iter().enumerate() {
        g.say(&encs, if i % 2 == 0 { A } else { B }, t, text);
    }
    let entries = g.sealed_entries(t);
    assert_eq!(entries.len(), 4);

    for outsider in [C, D] {
        let v = g.view(&encs, outsider, t);
        assert!(!v.reader);
        assert!(v.messages.is_empty(), "a non-reader decrypted something");
        let hidden: Vec<EntryId> = v.unreadable.iter().map(|(id, _)| *id).collect();
        assert_eq!(hidden, entries, "every entry is listed, in order");
        assert!(
            v.unreadable
                .iter()
                .all(|(_, w)| *w == Unreadable::NotForYou)
        );
        assert_eq!(v.doc.get_changes(&[]).len(), 0);
        // Nor can a non-reader write or pass the thread on.
        let mut keys = Keyring::new(g.id(outsider), &encs[outsider]);
        assert!(matches!(
            thread::message(&g.rec, &mut keys, &t, &g.id(outsider), "hi", 99),
            Err(SealError::NotReader)
        ));
        assert!(matches!(
            thread::add_reader(&g.rec, &mut keys, &t, &g.id(outsider)),
            Err(SealError::NotReader)
        ));
    }

    let va = g.view(&encs, A, t);
    let vb = g.view(&encs, B, t);
    assert!(va.reader && vb.reader);
    assert!(va.unreadable.is_empty() && vb.unreadable.is_empty());
    assert_eq!(texts(&va), written);
    assert_eq!(texts(&vb), written);
    let ids = |v: &ThreadView| v.messages.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(&va), entries);
    assert_eq!(ids(&vb), entries);
    let authors: Vec<DeviceId> = va.messages.iter().map(|m| m.author).collect();
    assert_eq!(authors, g.ids(&[A, B, A, B]));
    // The thread's own document holds exactly the messages that were read.
    assert_eq!(va.doc.get_changes(&[]).len(), 4);
    assert_eq!(vb.doc.get_heads(), va.doc.get_heads());
}

// ----- 2. a new reader -----

#[test]
fn a_new_reader_reads_every_epoch_of_the_history() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B]);
    g.say(&encs, A, t, "epoch one, by A");
    g.say(&encs, B, t, "epoch one, by B");
    g.rekey(B, t, None);
    g.say(&encs, A, t, "epoch two, by A");
    g.rekey(A, t, None);
    g.say(&encs, B, t, "epoch three, by B");
    assert_eq!(g.epochs(t).len(), 3);

    // Before being added, C reads nothing and cannot ask to be given the thread by itself.
    assert!(g.view(&encs, C, t).messages.is_empty());

    g.add_reader(&encs, A, t, C);
    let info = g.rec.sealed_thread(&t).unwrap();
    assert!(info.state.readers.contains(&g.id(C)));
    assert!(
        info.state
            .epochs
            .iter()
            .all(|e| e.wraps.contains_key(&g.id(C))),
        "C was given the key of every epoch"
    );

    let vc = g.view(&encs, C, t);
    assert!(vc.reader);
    assert!(vc.unreadable.is_empty(), "{:?}", vc.unreadable);
    assert_eq!(
        texts(&vc),
        [
            "epoch one, by A",
            "epoch one, by B",
            "epoch two, by A",
            "epoch three, by B"
        ]
    );

    // The new reader writes in the current epoch, and the others read it.
    g.say(&encs, C, t, "C has read it all");
    for who in [A, B, C] {
        let v = g.view(&encs, who, t);
        assert_eq!(v.messages.len(), 5);
        assert_eq!(v.messages[4].text, "C has read it all");
        assert!(v.unreadable.is_empty());
    }
    // D is still outside.
    assert!(g.view(&encs, D, t).messages.is_empty());
}

/// No one reader lets someone in alone, not even by taking the others out first: a reader taken
/// out is still asked (their words were written for the readers they were among), may say no or
/// agree, and never lets anyone in themselves.
#[test]
fn taking_the_other_readers_out_does_not_let_one_reader_decide_alone() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B]);
    g.say(&encs, B, t, "about my health");
    g.rekey(A, t, Some(B));
    let (b, c) = (g.id(B), g.id(C));
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    let add = thread::add_reader(&g.rec, &mut ka, &t, &c).unwrap();
    g.refuse(A, add.clone(), "every reader must agree");
    let st = g.rec.sealed_state(&t).unwrap();
    assert_eq!(st.readers, [g.id(A)].into());
    assert_eq!(st.waiting_for(&c, &g.id(A)), [b]);
    // A's yes is shared; B, no longer a reader, says no; then yes. Only a reader lets C in.
    g.write(
        A,
        Body::ReaderAgree {
            thread: t,
            member: c,
        },
    );
    let no = Body::Decline {
        thread: t,
        member: c,
        reason: "I was not asked".into(),
    };
    g.write(B, no);
    g.refuse(A, add.clone(), "every reader must agree");
    g.write(
        B,
        Body::ReaderAgree {
            thread: t,
            member: c,
        },
    );
    let mut kb = Keyring::new(b, &encs[B]);
    assert!(
        thread::add_reader(&g.rec, &mut kb, &t, &c).is_err(),
        "B is not a reader"
    );
    g.write(A, add);
    assert_eq!(g.view(&encs, C, t).messages[0].text, "about my health");
    // D, never a reader, can neither agree nor say no.
    let d = g.id(D);
    g.refuse(
        D,
        Body::ReaderAgree {
            thread: t,
            member: d,
        },
        "only a reader",
    );
    g.refuse(
        D,
        Body::Decline {
            thread: t,
            member: c,
            reason: "no".into(),
        },
        "only a reader",
    );
}

// ----- 3. a removed reader -----

#[test]
fn a_removed_reader_decrypts_nothing_written_after_removal() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B, C]);
    g.say(&encs, A, t, "before 1");
    g.say(&encs, B, t, "before 2");
    g.say(&encs, C, t, "before 3");
    let old_epoch = g.epochs(t)[0];

    let rekey = g.rekey(A, t, Some(B));
    let info = g.rec.sealed_thread(&t).unwrap();
    assert!(!info.state.readers.contains(&g.id(B)));
    assert!(!info.state.epochs[1].wraps.contains_key(&g.id(B)));
    assert_eq!(info.state.writable_epoch().unwrap().id, rekey);

    let after = ["after 1", "after 2", "after 3"];
    g.say(&encs, A, t, after[0]);
    g.say(&encs, C, t, after[1]);
    g.say(&encs, A, t, after[2]);

    let vb = g.view(&encs, B, t);
    assert!(!vb.reader);
    assert_eq!(texts(&vb), ["before 1", "before 2", "before 3"]);
    assert_eq!(vb.unreadable.len(), 3);
    assert!(
        vb.unreadable
            .iter()
            .all(|(_, w)| *w == Unreadable::NotForYou)
    );
    let later: Vec<EntryId> = g.sealed_entries(t)[3..].to_vec();
    assert_eq!(
        vb.unreadable.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        later
    );
    // The remaining readers read everything.
    for who in [A, C] {
        let v = g.view(&encs, who, t);
        assert_eq!(v.messages.len(), 6);
        assert!(v.unreadable.is_empty());
    }

    // B can no longer write, by the library or by hand.
    let mut kb = Keyring::new(g.id(B), &encs[B]);
    assert!(matches!(
        thread::message(&g.rec, &mut kb, &t, &g.id(B), "still here?", 1),
        Err(SealError::NotReader)
    ));
    let ct = g.ct(g.sealed_entries(t)[1]);
    g.refuse(
        B,
        Body::Sealed {
            thread: t,
            epoch: old_epoch,
            ct: ct.clone(),
        },
        "only a reader of this sealed thread can write in it",
    );

    // A remaining reader may not write under the old epoch, whose key B holds: not a library
    // message, not a hand-built one with a properly sealed ct.
    let key = g.epoch_key(&encs, A, t, old_epoch);
    let aad = message_aad(
        &g.group_id(),
        &t,
        &old_epoch,
        &g.commit(t, old_epoch),
        &g.id(A),
        g.rec.next_seq(&g.id(A)),
    );
    let forged = craft(&key, &aad, &first_frame(g.id(A)), "B would read this");
    g.refuse(
        A,
        Body::Sealed {
            thread: t,
            epoch: old_epoch,
            ct: forged,
        },
        "it uses a key that someone who is no longer a reader",
    );
    // The current epoch still takes A's messages.
    g.say(&encs, A, t, "the current key works");
}

#[test]
fn a_reader_who_leaves_the_group_forces_a_new_key() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B]);
    g.say(&encs, B, t, "goodbye soon");
    g.write(B, Body::MemberLeave);
    let info = g.rec.sealed_thread(&t).unwrap();
    assert!(!info.state.readers.contains(&g.id(B)));
    assert!(info.state.writable_epoch().is_none());
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    assert!(matches!(
        thread::message(&g.rec, &mut ka, &t, &g.id(A), "hello", 1),
        Err(SealError::NeedsRekey)
    ));
    let forged = vec![0u8; NONCE_LEN + TAG_LEN + BUCKETS[0]];
    g.refuse(
        A,
        Body::Sealed {
            thread: t,
            epoch: t,
            ct: forged,
        },
        "no longer a reader",
    );
    // A departed member cannot be given the new key either.
    let Body::Rekey {
        thread,
        removes,
        commit,
        mut wraps,
    } = thread::rekey(&g.rec, &t, None).unwrap()
    else {
        panic!("not a Rekey")
    };
    assert_eq!(wraps.len(), 1);
    let mut for_b = wraps[0].clone();
    for_b.member = g.id(B);
    for_b.key = encs[B].public().unwrap();
    wraps.push(for_b);
    wraps.sort_by_key(|w| w.member);
    g.refuse(
        A,
        Body::Rekey {
            thread,
            removes,
            commit,
            wraps,
        },
        "to every remaining reader and to nobody else",
    );
    g.rekey(A, t, None);
    g.say(&encs, A, t, "after the new key");
    let va = g.view(&encs, A, t);
    assert_eq!(texts(&va), ["goodbye soon", "after the new key"]);
    let vb = g.view(&encs, B, t);
    assert_eq!(texts(&vb), ["goodbye soon"]);
}

/// A reader whose encryption key changed (the group recovered them onto a new device, which
/// publishes its own key) is sent every epoch's key again, for the new key; and since the lost device
/// may hold the old key, no new message may use an epoch whose key went to it.
#[test]
fn a_reader_with_a_new_key_is_sent_every_key_again_and_the_old_epochs_are_not_written() {
    let (mut g, mut encs) = group(3);
    let t = g.start(A, &[A, B]);
    g.say(&encs, A, t, "before the loss");
    let before = g.sealed_body(&encs, A, t, "written with the old key");
    // Ben's new device: a new encryption key, published in Ben's name.
    let lost = std::mem::replace(&mut encs[B], EncSecret::generate().unwrap());
    g.write(
        B,
        Body::Profile {
            enc_key: encs[B].public().unwrap(),
        },
    );
    let st = g.rec.sealed_state(&t).unwrap();
    assert!(
        st.epochs.iter().all(|e| e.stale),
        "the old key may be on the lost device"
    );
    assert!(st.writable_epoch().is_none());
    // Not even a message prepared before the new key was published may use that epoch now.
    g.refuse(A, before, "lost device");
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    assert!(matches!(
        thread::message(&g.rec, &mut ka, &t, &g.id(A), "hello", 1),
        Err(SealError::NeedsRekey)
    ));
    // Ben cannot read with the new key yet; Ana's device sends every epoch's key again.
    assert!(texts(&g.view(&encs, B, t)).is_empty());
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    let sent = thread::missing_keys(&g.rec, &mut ka, &t).unwrap();
    assert_eq!(sent.len(), 1, "one reader lacks keys: {sent:?}");
    let again = sent[0].clone();
    g.write(A, sent[0].clone());
    assert_eq!(texts(&g.view(&encs, B, t)), ["before the loss"]);
    // Sent once: nothing lacks now, and a second copy is refused.
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    assert!(
        thread::missing_keys(&g.rec, &mut ka, &t)
            .unwrap()
            .is_empty()
    );
    g.refuse(A, again, "already a reader");
    // The epoch stays stale; a new key lets both write, and the lost key opens none of it.
    assert!(g.rec.sealed_state(&t).unwrap().writable_epoch().is_none());
    g.rekey(A, t, None);
    g.say(&encs, B, t, "back with my new phone");
    assert_eq!(
        texts(&g.view(&encs, A, t)),
        ["before the loss", "back with my new phone"]
    );
    let st = g.rec.sealed_state(&t).unwrap();
    let new = st.writable_epoch().expect("the new key is writable");
    let (to, enc, ct) = &new.wraps[&g.id(B)];
    assert_eq!(*to, encs[B].public().unwrap());
    let info = wrap_info(&g.group_id(), &g.id(B), &new.commit);
    assert!(roundtable_seal::wrap::unwrap(&lost, enc, &info, ct).is_err());
}

/// A reader who changes their own key (they stopped a lost device) keeps the old one as the one
/// it replaced: with it their device wraps every epoch again for the new key by itself, and reads
/// on; the old key alone opens nothing written after.
#[test]
fn a_reader_who_changes_their_key_wraps_every_epoch_again_with_the_one_it_replaced() {
    let (mut g, mut encs) = group(3);
    let t = g.start(A, &[A, B]);
    g.say(&encs, B, t, "before the stop");
    let old = encs[B].clone();
    let new = EncSecret::generate().unwrap();
    encs[B] = new.clone().with_previous(&old.to_bytes());
    g.write(
        B,
        Body::Profile {
            enc_key: new.public().unwrap(),
        },
    );
    // The previous key still opens the old epoch; the new one alone does not.
    assert_eq!(texts(&g.view(&encs, B, t)), ["before the stop"]);
    let mut only_new = Keyring::new(g.id(B), &new);
    assert!(
        thread::open(&g.rec, &mut only_new, &t)
            .unwrap()
            .messages
            .is_empty()
    );
    // Ben's own device sends Ben the keys for the new key.
    let mut kb = Keyring::new(g.id(B), &encs[B]);
    let sent = thread::missing_keys(&g.rec, &mut kb, &t).unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    g.write(B, sent[0].clone());
    assert_eq!(
        texts(&view_of(&g.rec, g.id(B), &new, t)),
        ["before the stop"],
        "now the new key alone opens it"
    );
    // The next message needs a new epoch, which the old key cannot open.
    g.rekey(A, t, None);
    g.say(&encs, A, t, "after the stop");
    assert_eq!(
        texts(&g.view(&encs, B, t)),
        ["before the stop", "after the stop"]
    );
    let mut stolen = Keyring::new(g.id(B), &old);
    let seen = thread::open(&g.rec, &mut stolen, &t).unwrap();
    assert!(seen.messages.is_empty(), "the old key now opens nothing");
}

// ----- 4. tampering, moving, replaying -----

#[test]
fn tampered_entry_bytes_are_rejected_by_the_signature() {
    let (mut g, encs) = group(3);
    let t = g.start(A, &[A, B]);
    g.say(&encs, B, t, "earlier");
    let id = g.say(&encs, A, t, "the words that get tampered with");
    let genuine = g.entries.last().unwrap().clone();
    let ct = g.ct(id);

    // Another device's copy that has everything except this entry.
    let before = g.entries[..g.entries.len() - 1].to_vec();
    let (mut copy, out) = Record::from_entries(g.group_id(), before);
    assert!(out.rejected.is_empty() && out.pending.is_empty());

    // The ciphertext travels verbatim inside the signed change bytes.
    let bytes = genuine.encode();
    let at = bytes
        .windows(ct.len())
        .position(|w| w == ct.as_slice())
        .expect("the ct is carried verbatim in the entry");
    let change_start = bytes.len() - genuine.change.len();

    // A flipped ct byte breaks the change's checksum...
    let mut flipped = bytes.clone();
    flipped[at + NONCE_LEN + 3] ^= 0x01;
    let tampered = Entry::decode(&flipped).unwrap();
    let out = copy.ingest(vec![tampered.clone()]);
    assert_eq!(out.rejected.len(), 1);
    assert!(out.accepted.is_empty());

    // ...and with the checksum made right again, the signature no longer matches.
    let mut fixed = tampered.change.clone();
    let digest: [u8; 32] = Sha256::digest(&fixed[8..]).into();
    fixed[4..8].copy_from_slice(&digest[..4]);
    let mut refixed = flipped.clone();
    refixed[change_start..].copy_from_slice(&fixed);
    let forged = Entry::decode(&refixed).unwrap();
    assert!(forged.parse().is_ok(), "the forged change itself parses");
    let out = copy.ingest(vec![forged]);
    assert_eq!(out.rejected.len(), 1);
    let r = &out.rejected[0];
    assert_eq!(r.reason.kind(), "bad_signature", "{}", r.reason);
    assert!(out.accepted.is_empty());
    assert!(copy.sealed_thread(&t).unwrap().entries.len() == 1);

    // The genuine entry is still accepted, and reads the same there.
    let out = copy.ingest(vec![genuine]);
    assert_eq!(out.accepted, vec![id]);
    assert_eq!(copy.heads(), g.rec.heads());
    let v = view_of(&copy, g.id(B), &encs[B], t);
    assert_eq!(texts(&v), ["earlier", "the words that get tampered with"]);
}

#[test]
fn a_re_signed_tampered_ct_is_public_but_damaged_and_the_chain_after_it_is_consistent() {
    let (mut g, encs) = group(3);
    let t = g.start(A, &[A, B]);
    // A keeps one keyring, like a running device.
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    let body = thread::message(&g.rec, &mut ka, &t, &g.id(A), "fine", 1).unwrap();
    let good = g.write(A, body);
    g.say(&encs, B, t, "B is fine too");

    let body = thread::message(&g.rec, &mut ka, &t, &g.id(A), "to be tampered", 2).unwrap();
    let Body::Sealed {
        thread,
        epoch,
        mut ct,
    } = body
    else {
        panic!("not a sealed body")
    };
    ct[NONCE_LEN + 7] ^= 0x80;
    // The record cannot look inside: it accepts the entry as A's.
    let bad = g.write(A, Body::Sealed { thread, epoch, ct });
    assert!(g.rec.contains(&bad));

    let body = thread::message(&g.rec, &mut ka, &t, &g.id(A), "after the damage", 3).unwrap();
    let later = g.write(A, body);
    let b_later = g.say(&encs, B, t, "B carries on");

    let va = g.view(&encs, A, t);
    let vb = g.view(&encs, B, t);
    let (wa, wb) = (verdicts(&g.rec, &va, t), verdicts(&g.rec, &vb, t));
    assert_eq!(wa, wb, "both readers reach the same verdict on every entry");
    let of = |id: EntryId| wa.iter().find(|(e, _)| *e == id).unwrap().1.clone();
    assert_eq!(of(good), Ok((g.id(A), "fine".to_string())));
    assert_eq!(of(bad), Err(Unreadable::Damaged));
    // A's next message builds on the damaged one: it is not shown either, for anyone.
    assert_eq!(of(later), Err(Unreadable::BuildsOnUnreadable));
    // Other authors' chains are untouched.
    assert_eq!(of(b_later), Ok((g.id(B), "B carries on".to_string())));
    // A reader added afterwards reaches the same verdicts.
    g.add_reader(&encs, B, t, C);
    let vc = g.view(&encs, C, t);
    assert_eq!(verdicts(&g.rec, &vc, t), wa);
}

#[test]
fn a_ct_moved_to_another_thread_is_damaged() {
    let (mut g, encs) = group(3);
    let t1 = g.start(A, &[A, B]);
    let t2 = g.start(A, &[A, B]);
    let m1 = g.say(&encs, A, t1, "only for thread one");
    let ct = g.ct(m1);
    let moved = g.write(
        A,
        Body::Sealed {
            thread: t2,
            epoch: t2,
            ct,
        },
    );
    for who in [A, B] {
        assert_eq!(
            verdict_of(&g, &encs, who, t2, moved),
            Err(Unreadable::Damaged)
        );
        assert_eq!(
            verdict_of(&g, &encs, who, t1, m1),
            Ok("only for thread one".into())
        );
    }
}

#[test]
fn a_ct_moved_to_another_epoch_of_the_same_thread_is_damaged() {
    let (mut g, encs) = group(3);
    let t = g.start(A, &[A, B]);
    let m1 = g.say(&encs, A, t, "epoch one");
    let e2 = g.rekey(B, t, None);
    // Both epochs are still writable by the rules (nobody was removed).
    let moved = g.write(
        A,
        Body::Sealed {
            thread: t,
            epoch: e2,
            ct: g.ct(m1),
        },
    );
    for who in [A, B] {
        assert_eq!(
            verdict_of(&g, &encs, who, t, moved),
            Err(Unreadable::Damaged)
        );
    }
}

#[test]
fn an_author_replaying_their_own_ct_is_damaged() {
    let (mut g, encs) = group(3);
    let t = g.start(A, &[A, B]);
    let m1 = g.say(&encs, A, t, "said once");
    let epoch = g.epochs(t)[0];
    // Same thread, same epoch, same author, same key: only the sequence number differs.
    let replay = g.write(
        A,
        Body::Sealed {
            thread: t,
            epoch,
            ct: g.ct(m1),
        },
    );
    for who in [A, B] {
        let v = g.view(&encs, who, t);
        assert_eq!(texts(&v), ["said once"], "the replay is not shown twice");
        assert_eq!(v.unreadable, vec![(replay, Unreadable::Damaged)]);
    }
}

#[test]
fn another_reader_copying_a_ct_under_their_own_signature_is_damaged() {
    let (mut g, encs) = group(3);
    let t = g.start(A, &[A, B]);
    let m1 = g.say(&encs, A, t, "A's words");
    let copied = g.write(
        B,
        Body::Sealed {
            thread: t,
            epoch: t,
            ct: g.ct(m1),
        },
    );
    for who in [A, B] {
        let v = g.view(&encs, who, t);
        assert_eq!(texts(&v), ["A's words"]);
        assert_eq!(v.unreadable, vec![(copied, Unreadable::Damaged)]);
    }
}

/// With the right key, each part of the AAD and of the inner change is still checked: change any
/// one of them and the message is not shown. Each case gets its own thread (a damaged message
/// breaks its author's chain there).
#[test]
fn readers_check_every_bound_field_even_under_the_right_key() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Case {
        Correct,
        Group,
        Thread,
        EpochInAad,
        Commit,
        AuthorInAad,
        SeqInAad,
        InnerActor,
        InnerSeq,
        InnerDeps,
        NonzeroPadding,
        WrongEpochKey,
    }
    let (mut g, encs) = group(3);
    let other_thread = g.start(A, &[A, B]);
    let cases = [
        Case::Correct,
        Case::Group,
        Case::Thread,
        Case::EpochInAad,
        Case::Commit,
        Case::AuthorInAad,
        Case::SeqInAad,
        Case::InnerActor,
        Case::InnerSeq,
        Case::InnerDeps,
        Case::NonzeroPadding,
        Case::WrongEpochKey,
    ];
    for case in cases {
        let t = g.start(A, &[A, B]);
        let e1 = t;
        let e2 = g.rekey(A, t, None);
        let (a, b) = (g.id(A), g.id(B));
        let seq = g.rec.next_seq(&a);
        let key = match case {
            Case::WrongEpochKey => g.epoch_key(&encs, A, t, e1),
            _ => g.epoch_key(&encs, A, t, e2),
        };
        let aad = message_aad(
            &if case == Case::Group {
                GroupId::from_bytes([9; 32])
            } else {
                g.group_id()
            },
            if case == Case::Thread {
                &other_thread
            } else {
                &t
            },
            if case == Case::EpochInAad { &e1 } else { &e2 },
            &if case == Case::Commit {
                g.commit(t, e1)
            } else {
                g.commit(t, e2)
            },
            if case == Case::AuthorInAad { &b } else { &a },
            if case == Case::SeqInAad { seq + 1 } else { seq },
        );
        let mut frame = first_frame(if case == Case::InnerActor { b } else { a });
        if case == Case::InnerSeq {
            frame.seq = 2;
        }
        if case == Case::InnerDeps {
            frame.deps = vec![automerge::ChangeHash([3; 32])];
        }
        let ct = if case == Case::NonzeroPadding {
            let inner = build_inner(&frame, "words").unwrap();
            let mut padded = pad::pad(inner.raw_bytes()).unwrap();
            *padded.last_mut().unwrap() = 1;
            aead::seal(&key, &aad, &padded).unwrap()
        } else {
            craft(&key, &aad, &frame, "words")
        };
        assert!(valid_ct_len(ct.len()));
        let id = g.write(
            A,
            Body::Sealed {
                thread: t,
                epoch: e2,
                ct,
            },
        );
        let (va, vb) = (
            verdict_of(&g, &encs, A, t, id),
            verdict_of(&g, &encs, B, t, id),
        );
        assert_eq!(va, vb, "{case:?}: readers disagree");
        match case {
            Case::Correct => assert_eq!(va, Ok("words".into()), "the control case reads"),
            Case::InnerActor | Case::InnerSeq | Case::InnerDeps => {
                assert!(
                    matches!(va, Err(Unreadable::Malformed(_))),
                    "{case:?}: {va:?}"
                )
            }
            _ => assert_eq!(va, Err(Unreadable::Damaged), "{case:?}"),
        }
    }
}

/// The key commitment: an author who wraps a different key for one reader cannot make that reader
/// read a message the others cannot.
#[test]
fn a_wrap_that_does_not_match_the_commitment_is_not_used() {
    let (mut g, encs) = group(3);
    let (a, b) = (g.id(A), g.id(B));
    let key = [5u8; 32];
    let other_key = [6u8; 32];
    let commit = key_commitment(&key);
    let wrap_for = |m: DeviceId, k: &[u8; 32]| {
        let pk = g.rec.profile_key(&m).unwrap();
        let (enc, ct) =
            roundtable_seal::wrap::wrap(&pk, &wrap_info(&g.group_id(), &m, &commit), k).unwrap();
        Wrap {
            member: m,
            key: pk,
            enc,
            ct,
        }
    };
    let mut wraps = vec![wrap_for(a, &key), wrap_for(b, &other_key)];
    wraps.sort_by_key(|w| w.member);
    let t = g.write(
        A,
        Body::SealedThread {
            title: "Split".into(),
            reason: "a test of the commitment".into(),
            commit,
            wraps,
        },
    );
    // A message only B's (wrong) key opens.
    let aad = message_aad(&g.group_id(), &t, &t, &commit, &a, g.rec.next_seq(&a));
    let ct = craft(&other_key, &aad, &first_frame(a), "for B's eyes only");
    let id = g.write(
        A,
        Body::Sealed {
            thread: t,
            epoch: t,
            ct,
        },
    );
    assert_eq!(verdict_of(&g, &encs, B, t, id), Err(Unreadable::Damaged));
    assert_eq!(verdict_of(&g, &encs, A, t, id), Err(Unreadable::Damaged));
    // And B cannot write under a key that does not match.
    let mut kb = Keyring::new(b, &encs[B]);
    assert!(matches!(
        thread::message(&g.rec, &mut kb, &t, &b, "x", 1),
        Err(SealError::Damaged)
    ));
}

// ----- 5. the rules every device checks -----

#[test]
fn the_record_refuses_what_the_sealed_rules_forbid() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B]);
    g.say(&encs, A, t, "first");
    let ct = g.ct(g.sealed_entries(t)[0]);

    // A non-reader posting a sealed message.
    g.refuse(
        C,
        Body::Sealed {
            thread: t,
            epoch: t,
            ct: ct.clone(),
        },
        "only a reader of this sealed thread can write in it",
    );
    // A plain message into a sealed thread, even by a reader.
    g.refuse(
        A,
        Body::Message {
            thread: t,
            text: "in the open".into(),
        },
        "this thread is sealed",
    );
    // Nor a proposal or an action.
    g.refuse(
        A,
        Body::Proposal {
            thread: t,
            title: "Decide".into(),
            text: "in the open".into(),
            easy_read: "in the open".into(),
            rule: Rule::Consent,
            quorum: 1,
            effect: None,
            closes: None,
        },
        "this thread is sealed",
    );
    g.refuse(
        A,
        Body::Action {
            thread: t,
            text: "do it".into(),
            owner: g.id(A),
            due: None,
        },
        "this thread is sealed",
    );
    // A ct whose length is not a padded bucket.
    for len in [
        ct.len() - 1,
        ct.len() + 1,
        NONCE_LEN + TAG_LEN + 100,
        NONCE_LEN + TAG_LEN,
    ] {
        g.refuse(
            A,
            Body::Sealed {
                thread: t,
                epoch: t,
                ct: vec![7; len],
            },
            "padded to one of the allowed sizes",
        );
    }
    // An epoch the thread does not have.
    g.refuse(
        A,
        Body::Sealed {
            thread: t,
            epoch: g.sealed_entries(t)[0],
            ct: ct.clone(),
        },
        "key epoch this thread does not have",
    );
    // A sealed message that names a plain thread.
    let plain = g.write(
        A,
        Body::Thread {
            title: "Open".into(),
        },
    );
    g.refuse(
        A,
        Body::Sealed {
            thread: plain,
            epoch: plain,
            ct: ct.clone(),
        },
        "which does not exist here",
    );

    // A ReaderAdd that does not wrap every epoch.
    g.rekey(A, t, None);
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    let Body::ReaderAdd {
        thread,
        member,
        mut wraps,
    } = thread::add_reader(&g.rec, &mut ka, &t, &g.id(C)).unwrap()
    else {
        panic!("not a ReaderAdd")
    };
    assert_eq!(wraps.len(), 2);
    let full = wraps.clone();
    wraps.pop();
    // Not before every other reader agrees; then not without every epoch's key.
    g.refuse(
        A,
        Body::ReaderAdd {
            thread,
            member,
            wraps: full.clone(),
        },
        "every reader must agree",
    );
    g.write(B, Body::ReaderAgree { thread, member });
    g.refuse(
        A,
        Body::ReaderAdd {
            thread,
            member,
            wraps,
        },
        "the key of every epoch",
    );
    // Nor by a non-reader, nor for someone already a reader.
    g.refuse(
        D,
        Body::ReaderAdd {
            thread,
            member,
            wraps: full.clone(),
        },
        "only a reader of this sealed thread can add a reader",
    );
    let mut kb = Keyring::new(g.id(B), &encs[B]);
    let again = thread::add_reader(&g.rec, &mut kb, &t, &g.id(A)).unwrap();
    g.refuse(B, again, "already a reader");

    // A thread naming a reader who has no profile: the library says so, and so do the rules.
    let newcomer = DeviceKey::generate().unwrap();
    g.add(newcomer.device_id(), "New");
    let err = thread::start(&g.rec, "T", "why", &[g.id(A), newcomer.device_id()]).unwrap_err();
    assert!(
        matches!(err, SealError::NoKey(m) if m == newcomer.device_id()),
        "{err}"
    );
    let Body::SealedThread {
        title,
        reason,
        commit,
        mut wraps,
    } = thread::start(&g.rec, "T", "why", &[g.id(A), g.id(D)]).unwrap()
    else {
        panic!("not a SealedThread")
    };
    // Same wraps, but one of them relabelled for the newcomer.
    let d = g.id(D);
    wraps.iter_mut().find(|w| w.member == d).unwrap().member = newcomer.device_id();
    wraps.sort_by_key(|w| w.member);
    g.refuse(
        A,
        Body::SealedThread {
            title: title.clone(),
            reason,
            commit,
            wraps: wraps.clone(),
        },
        "has not published an encryption key yet",
    );

    // A sealed thread without a reason, or not read by its own author.
    let body = thread::start(&g.rec, "T", "  ", &[g.id(A)]).unwrap();
    g.refuse(A, body, "the reason it is sealed is empty");
    let body = thread::start(&g.rec, "T", "why", &[g.id(B)]).unwrap();
    g.refuse(A, body, "must be one of its readers");

    // Ask by a reader; Decline of someone who did not ask; Decline by a non-reader.
    g.refuse(
        A,
        Body::Ask {
            thread: t,
            why: "let me in".into(),
        },
        "already a reader",
    );
    g.refuse(
        A,
        Body::Decline {
            thread: t,
            member: g.id(D),
            reason: "no".into(),
        },
        "no one has asked",
    );
    let ask = g.write(
        D,
        Body::Ask {
            thread: t,
            why: "I handle the budget".into(),
        },
    );
    g.refuse(
        C,
        Body::Decline {
            thread: t,
            member: g.id(D),
            reason: "no".into(),
        },
        "only a reader of this sealed thread can answer a request",
    );
    g.write(
        A,
        Body::Decline {
            thread: t,
            member: g.id(D),
            reason: "It is about health; the budget is not affected.".into(),
        },
    );
    let info = g.rec.sealed_thread(&t).unwrap();
    assert_eq!(info.asks.len(), 1);
    assert_eq!(info.asks[0].0, ask);
    assert_eq!(info.declines.len(), 1);
    assert_eq!(info.declines[0].2, g.id(D));

    // Restating or correcting a sealed message in the open.
    let sealed_msg = g.sealed_entries(t)[0];
    g.refuse(
        B,
        Body::Understand {
            target: sealed_msg,
            text: "I understood: ...".into(),
        },
        "a sealed message cannot be restated or corrected in the open",
    );
    g.refuse(
        A,
        Body::Correct {
            target: sealed_msg,
            text: "what I meant".into(),
        },
        "a sealed message cannot be restated or corrected in the open",
    );
    // The sealed thread's public entry may be restated (its title and reason are public).
    g.write(
        B,
        Body::Understand {
            target: t,
            text: "A private thread about health".into(),
        },
    );
}

// ----- 6. order of arrival -----

fn thread_facts(rec: &Record, t: EntryId) -> (Vec<EntryId>, Vec<DeviceId>, Vec<EntryId>, usize) {
    let info = rec.sealed_thread(&t).unwrap();
    (
        info.entries,
        info.state.readers.into_iter().collect(),
        info.state.epochs.iter().map(|e| e.id).collect(),
        info.asks.len(),
    )
}

#[test]
fn every_arrival_order_gives_the_same_record_and_the_same_reading() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B]);
    g.say(&encs, A, t, "a1");
    g.say(&encs, B, t, "b1");
    // B agrees that C may read, before the copies part (C is let in on this side).
    let c = g.id(C);
    g.write(
        B,
        Body::ReaderAgree {
            thread: t,
            member: c,
        },
    );

    // Another device copy: B and D write there while A and C write here (concurrently).
    let mut other = g.fork();
    let split = g.entries.len();
    other.say(&encs, B, t, "b2, concurrent with the new key");
    other.write(
        D,
        Body::Ask {
            thread: t,
            why: "may I?".into(),
        },
    );
    g.rekey(A, t, None);
    g.add_reader(&encs, A, t, C);
    g.say(&encs, C, t, "c1");

    // The two copies exchange everything.
    let theirs = other.entries[split..].to_vec();
    let ours = g.entries[split..].to_vec();
    let out = g.rec.ingest(theirs.clone());
    assert_eq!(out.accepted.len(), theirs.len(), "{:?}", out.rejected);
    g.entries.extend(theirs);
    other.rec.ingest(ours);

    // Then B is removed, A writes under the new key, and C replays a ct (damaged for readers).
    g.rekey(A, t, Some(B));
    g.say(&encs, A, t, "a2, B cannot read this");
    let c1 = g.sealed_entries(t)[3];
    let epoch = *g.epochs(t).last().unwrap();
    g.write(
        C,
        Body::Sealed {
            thread: t,
            epoch,
            ct: g.ct(c1),
        },
    );
    g.say(&encs, A, t, "a3");
    assert!(g.rec.rejected().is_empty());

    let facts = thread_facts(&g.rec, t);
    let reading: Vec<Verdicts> = [A, B, C, D]
        .iter()
        .map(|w| verdicts(&g.rec, &g.view(&encs, *w, t), t))
        .collect();
    // The scenario did what it meant to: b2 (written under the first key, concurrently with the
    // second) reads for C; a2 is hidden from B; the replay is damaged.
    let a_texts: Vec<String> = reading[A]
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok().map(|(_, t)| t.clone()))
        .collect();
    assert_eq!(a_texts.len(), 6, "{a_texts:?}");
    assert!(a_texts.contains(&"b2, concurrent with the new key".to_string()));
    assert_eq!(reading[A], reading[C]);
    assert!(
        reading[A]
            .iter()
            .any(|(_, v)| *v == Err(Unreadable::Damaged))
    );
    assert!(
        reading[B]
            .iter()
            .any(|(_, v)| *v == Err(Unreadable::NotForYou))
    );
    assert!(
        reading[D]
            .iter()
            .all(|(_, v)| *v == Err(Unreadable::NotForYou))
    );

    let mut rng = Rng(0x5eed_0f5e);
    for round in 0..3 {
        let mut shuffled = g.entries.clone();
        rng.shuffle(&mut shuffled);
        let mut copy = Record::new(g.group_id());
        match round {
            // All at once.
            0 => {
                copy.ingest(shuffled);
            }
            // One entry at a time: most wait for what they build on.
            1 => {
                for e in shuffled {
                    copy.ingest(vec![e]);
                }
            }
            // Random batches.
            _ => {
                while !shuffled.is_empty() {
                    let n = 1 + rng.below(shuffled.len().min(7));
                    let rest = shuffled.split_off(n);
                    copy.ingest(shuffled);
                    shuffled = rest;
                }
            }
        }
        assert!(copy.pending_ids().is_empty(), "round {round}");
        assert!(copy.rejected().is_empty(), "round {round}");
        assert_eq!(copy.len(), g.rec.len(), "round {round}");
        assert_eq!(copy.heads(), g.rec.heads(), "round {round}");
        assert_eq!(thread_facts(&copy, t), facts, "round {round}");
        for (w, expected) in [A, B, C, D].iter().zip(&reading) {
            let v = view_of(&copy, g.id(*w), &encs[*w], t);
            assert_eq!(
                &verdicts(&copy, &v, t),
                expected,
                "round {round}, reader {w}"
            );
        }
    }

    // The other device, which got its entries in its own order, agrees as well.
    other.rec.ingest(g.entries.clone());
    assert_eq!(other.rec.heads(), g.rec.heads());
    assert_eq!(thread_facts(&other.rec, t), facts);
    let v = view_of(&other.rec, g.id(C), &encs[C], t);
    assert_eq!(verdicts(&other.rec, &v, t), reading[C]);
}

// ----- 7. padding -----

#[test]
fn short_messages_share_a_size_and_long_ones_are_larger() {
    let (mut g, encs) = group(4);
    let t = g.start(A, &[A, B, C, D]);
    // Each is its author's first message, so the inner changes differ only in their text. An
    // inner change costs about 176 bytes besides its text (a later one, with its dependency, about
    // 208), so the smallest bucket (256) holds up to about 75 characters: 60 is used, not 200.
    let mut rng = Rng(7);
    let mut words = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect()
    };
    let (w1, w60, w2000) = (words(1), words(60), words(2000));
    let one = g.say(&encs, A, t, &w1);
    let sixty = g.say(&encs, B, t, &w60);
    let two_thousand = g.say(&encs, C, t, &w2000);
    let (l1, l60, l2000) = (g.ct(one).len(), g.ct(sixty).len(), g.ct(two_thousand).len());
    for l in [l1, l60, l2000] {
        assert!(valid_ct_len(l), "{l} is not 40 + a bucket");
    }
    assert_eq!(l1, l60, "1 and 60 characters fall in the same bucket");
    assert_eq!(l1, NONCE_LEN + TAG_LEN + BUCKETS[0]);
    assert!(l2000 > l1, "{l2000} <= {l1}");
    // Inner changes are sealed uncompressed: the size follows the length, not the content.
    let repetitive = g.say(&encs, D, t, &"z".repeat(2000));
    assert_eq!(g.ct(repetitive).len(), l2000);
    // Everything is read back exactly.
    let v = g.view(&encs, A, t);
    assert!(v.unreadable.is_empty(), "{:?}", v.unreadable);
    assert_eq!(texts(&v), [w1, w60, w2000, "z".repeat(2000)]);
}

#[test]
fn messages_of_every_length_up_to_the_limit_are_readable() {
    let (mut g, encs) = group(3);
    let t = g.start(A, &[A, B]);
    let mut rng = Rng(11);
    let mut written = Vec::new();
    // Later messages carry a dependency; long ones would be deflated by Automerge if sealed in
    // compressed form, which readers refuse.
    for (i, n) in [
        1usize,
        41,
        100,
        300,
        1000,
        5000,
        roundtable_core::body::MAX_TEXT,
    ]
    .into_iter()
    .enumerate()
    {
        let text: String = if i % 2 == 0 {
            (0..n)
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect()
        } else {
            "ab".repeat(n / 2 + 1)[..n].to_string()
        };
        let who = if i % 3 == 2 { B } else { A };
        let id = g.say(&encs, who, t, &text);
        assert!(valid_ct_len(g.ct(id).len()));
        written.push(text);
    }
    for who in [A, B] {
        let v = g.view(&encs, who, t);
        assert!(v.unreadable.is_empty(), "{:?}", v.unreadable);
        assert_eq!(texts(&v), written);
    }
    // Beyond the limit, and empty, the library refuses before anything is written.
    let mut ka = Keyring::new(g.id(A), &encs[A]);
    let too_long = "x".repeat(roundtable_core::body::MAX_TEXT + 1);
    assert!(matches!(
        thread::message(&g.rec, &mut ka, &t, &g.id(A), &too_long, 1),
        Err(SealError::Shape(_))
    ));
    for blank in ["", "  \n"] {
        assert!(matches!(
            thread::message(&g.rec, &mut ka, &t, &g.id(A), blank, 1),
            Err(SealError::Empty)
        ));
    }
    // A's chain is intact after those refusals.
    g.say(&encs, A, t, "still readable");
    let v = g.view(&encs, B, t);
    assert!(v.unreadable.is_empty());
    assert_eq!(v.messages.last().unwrap().text, "still readable");
}
