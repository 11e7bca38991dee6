//! A keeper through the real binary, over iroh on loopback (issue 16, item 3): the group names an
//! always-on device a keeper (`keeper add`, decided by both members); `keep` runs it; Ana's device
//! syncs with it and goes away; Ben's device syncs with the keeper only and gets everything Ana
//! wrote, her sealed message too, which the keeper holds as ciphertext only. `/health` counts what
//! it holds; an entry forged with the keeper's own key is refused by a member and the auditor; the
//! whole record verifies; once the group stops the keeper, members' devices refuse it at the sync.

mod util;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::num::NonZeroU64;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::{Body, DocRef, Entry, EntryId, Record};
use serde_json::Value;
use util::{
    BIN, Home, Served, decide, id_at, partnership, read_bundle, serve_loopback, write_bundle,
};

const SEALED_WORDS: &str = "Ben's appointment is at the Elm Street clinic";
const OPEN_WORDS: &str = "The meeting moves to Thursday";

/// `keep` on loopback, pulling from `peers` every second, with `/health` on a free loopback port.
/// Returns the process (killed when dropped) and its first line.
fn keep(home: &Path, peers: &[&str]) -> (Served, Value) {
    let mut cmd = Command::new(BIN);
    cmd.arg("--home").arg(home).args([
        "keep",
        "--listen",
        "127.0.0.1:0",
        "--health",
        "127.0.0.1:0",
        "--interval",
        "1",
    ]);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let mut child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keep");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("keep prints its first line");
    // The metrics lines go to stderr, one per round: read them so the pipe never fills.
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            assert!(
                l.starts_with("roundtable: "),
                "every line keep prints says who speaks: {l}"
            );
        }
    });
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (Served(child), v)
}

/// Polls `/health` until it holds `entries`, for at most 20 s.
fn health_until(url: &str, entries: u64) -> Value {
    let start = Instant::now();
    loop {
        let h = util::health(url);
        if h["entries"] == entries {
            return h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the keeper holds {h}, not {entries} entries"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn texts(home: &Home, thread: &str) -> Vec<String> {
    util::thread_texts(&home.ok(["show", thread]))
}

/// A change signed by `key` on every head of `entries`: what a keeper that skips the rules writes.
fn forge(
    entries: &[Entry],
    group: roundtable_core::GroupId,
    key: &roundtable_core::DeviceKey,
    body: &Body,
) -> Entry {
    let (rec, out) = Record::from_entries(group, entries.to_vec());
    assert!(out.rejected.is_empty(), "{out:?}");
    let deps = rec.heads();
    let max_op = deps
        .iter()
        .map(|d| rec.entry(d).expect("a head").1.max_op)
        .max()
        .expect("some head");
    let genesis = entries[0].parse().expect("the genesis parses");
    let containers = decode_change(&genesis.change, &BTreeMap::new())
        .expect("the genesis decodes")
        .1;
    let frame = ChangeFrame {
        actor: key.device_id(),
        seq: rec.next_seq(&key.device_id()),
        start_op: NonZeroU64::new(max_op + 1).unwrap(),
        deps,
        time_ms: 1,
    };
    let change = build_change(body, &frame, &containers).expect("builds");
    let hash = EntryId::from(change.hash());
    Entry::sign(
        key,
        &group,
        DocRef::Public,
        change.raw_bytes().to_vec(),
        &hash,
    )
}

#[test]
fn a_keeper_passes_entries_between_members_who_are_never_online_together() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben"]);
    let (a, b) = (&homes[0], &homes[1]);
    let k = Home::init("Council PC");

    // The group names the keeper: Ana asks (1 view of 2 needed), Ben agrees, Ana closes.
    let asked = a.ok(["keeper", "add", &k.member_id, "--name", "Council PC"]);
    let p = id_at(&asked, "proposal_id");
    assert!(
        asked.get("outcome_id").is_none(),
        "nobody decides alone: {asked}"
    );
    let closed = decide(a, &[b], &p);
    assert_eq!(closed["decision"], "passed", "{closed}");
    b.import(&a.export());
    // Named once: a second proposal for it is refused with the rule's reason.
    let again = a.fails(1, ["keeper", "add", &k.member_id, "--name", "PC"]);
    assert!(
        again.contains("already one of the group's keepers"),
        "{again}"
    );
    // A keeper's key can never join as a member.
    let member = a.fails(1, ["member", "add", &k.member_id, "--name", "K"]);
    assert!(member.contains("keeper"), "{member}");

    // Ana writes in an open thread and in a sealed thread that only Ana and Ben read.
    let open = id_at(&a.ok(["thread", "new", "Meetings"]), "thread_id");
    a.ok(["post", &open, OPEN_WORDS]);
    let sealed = id_at(
        &a.ok([
            "thread",
            "new",
            "Ben's support",
            "--sealed",
            "--reader",
            &b.member_id,
            "--reason",
            "It is about Ben's health",
        ]),
        "thread_id",
    );
    a.ok(["post", &sealed, SEALED_WORDS]);

    // Ana serves; the keeper starts with her ticket and pulls the whole group in its first round.
    let (ana_serving, ana_ticket) = serve_loopback(a.dir());
    let (keeper, first) = keep(k.dir(), &[&ana_ticket]);
    assert_eq!(first["device_id"], k.member_id.as_str(), "{first}");
    let ticket = first["tickets"][0]["ticket"]
        .as_str()
        .unwrap_or_else(|| panic!("the keeper holds the group after its first round: {first}"))
        .to_string();
    let url = first["health"].as_str().expect("a health URL").to_string();
    // Ana goes away. Before that she writes once more and syncs with the keeper herself.
    drop(ana_serving);
    a.ok(["post", &open, "Bring the papers"]);
    let pushed = a.ok(["sync", &ticket, "--timeout", "30"]);
    assert_eq!(pushed["rejected"], 0, "{pushed}");
    let ana_bundle = a.export();
    let (group, ana_entries) = read_bundle(&ana_bundle);
    let h = health_until(&url, ana_entries.len() as u64);
    assert_eq!(h["ok"], true, "{h}");
    assert!(h["peers_seen"].as_u64().unwrap() >= 1, "{h}");
    assert!(h["last_sync_ms"].as_i64().unwrap() > 0, "{h}");

    // Ben never meets Ana online: he syncs with the keeper only, and gets everything she wrote.
    let got = b.ok(["sync", &ticket, "--timeout", "30"]);
    assert!(got["received"].as_u64().unwrap() >= 3, "{got}");
    assert_eq!(got["rejected"], 0, "{got}");
    let ben_open = texts(b, &open);
    assert!(ben_open.iter().any(|t| t == OPEN_WORDS), "{ben_open:?}");
    assert!(
        ben_open.iter().any(|t| t == "Bring the papers"),
        "{ben_open:?}"
    );
    let ben_sealed = texts(b, &sealed);
    assert!(
        ben_sealed.iter().any(|t| t == SEALED_WORDS),
        "Ben reads it: {ben_sealed:?}"
    );
    assert_eq!(
        b.heads(),
        a.heads(),
        "the same record on both members' devices"
    );
    let ben_bundle = b.export();

    // A device that is no member's, auditor's or keeper's is refused by the keeper.
    let stranger = Home::init("Stranger");
    let refused = stranger.fails(1, ["sync", &ticket, "--timeout", "20"]);
    assert!(refused.contains("not a member"), "{refused}");

    // The keeper's store holds the sealed words as ciphertext only (and the open words as written).
    drop(keeper);
    let bytes = util::all_bytes(k.dir());
    assert!(
        util::holds(&bytes, OPEN_WORDS),
        "the check can see words in the keeper's store"
    );
    assert!(
        !util::holds(&bytes, SEALED_WORDS),
        "the keeper's store holds no sealed plaintext"
    );
    assert!(
        !util::holds(&bytes, "Elm Street"),
        "no part of the sealed plaintext either"
    );

    // An entry forged with the keeper's own key: refused by a member's device and by the auditor.
    let key = roundtable_store::Home::open(k.dir())
        .expect("the keeper's home opens")
        .device_key(None)
        .expect("its key");
    let thread = Body::Thread {
        title: "Written by the keeper".into(),
    };
    let mut forged = ana_entries.clone();
    forged.push(forge(&ana_entries, group, &key, &thread));
    let forged_file = a.fresh_path("forged");
    write_bundle(&forged_file, &group, &forged);
    let before = b.heads();
    let import = b.fails(1, [std::ffi::OsStr::new("import"), forged_file.as_os_str()]);
    assert!(import.contains("rejected"), "{import}");
    assert_eq!(b.heads(), before, "nothing the keeper signed is stored");
    let audited = util::TestCommand::bare()
        .arg("audit")
        .arg(&forged_file)
        .fails(1);
    let report: Value = serde_json::from_str(&audited.stdout).expect("the report");
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["keeper_cannot_write"], "{report}");

    // The whole record, as the keeper passed it on to Ben, verifies. (Ben's later exports keep the
    // forged entry as evidence of the refusal.)
    let ok = util::TestCommand::bare().arg("audit").arg(&ben_bundle).ok();
    assert_eq!(ok["verified"], true, "{ok}");
    // The auditor names the keeper the group decided on.
    assert_eq!(ok["keepers"][0]["device_id"], k.member_id.as_str(), "{ok}");
    assert_eq!(ok["keepers"].as_array().map(Vec::len), Some(1), "{ok}");

    // The group stops the keeper (say it was lost): from then on members' devices refuse it at
    // the handshake, before anything is sent, even though its own copy does not know yet.
    let stop = id_at(&a.ok(["keeper", "remove", &k.member_id]), "proposal_id");
    let closed = decide(a, &[b], &stop);
    assert_eq!(closed["decision"], "passed", "{closed}");
    b.import(&a.export());
    let (_stopped, first) = keep(k.dir(), &[]);
    let ticket = first["tickets"][0]["ticket"]
        .as_str()
        .expect("a ticket")
        .to_string();
    let before = b.heads();
    let refused = b.fails(1, ["sync", &ticket, "--timeout", "20"]);
    assert!(refused.contains("not a member"), "{refused}");
    assert_eq!(b.heads(), before);
}
