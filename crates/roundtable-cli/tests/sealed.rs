//! Sealed threads through the real binary: the command contract, what readers and non-readers see,
//! asking for access, and sealed entries relayed over iroh by a device that cannot read them.

mod util;

use std::collections::BTreeSet;

use serde_json::Value;
use util::{Home, TestCommand, decide, id_at, partnership, serve_loopback, sync};

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().expect("a string").to_string())
        .collect()
}

fn words(home: &Home, args: &[&str]) -> String {
    let out = TestCommand::words()
        .arg("--home")
        .arg(home.dir())
        .args(args)
        .output();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn texts(show: &Value) -> Vec<String> {
    show["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages list: {show}"))
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_string())
        .collect()
}

const REASON: &str = "It is about one member's health";

/// Ana starts a sealed thread for Ana and Ben and writes two messages; everyone gets them.
fn sealed_board() -> (Vec<Home>, String) {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cy"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t = id_at(
        &a.ok([
            "thread",
            "new",
            "Ben's support",
            "--sealed",
            "--reader",
            &b.member_id,
            "--reason",
            REASON,
        ]),
        "thread_id",
    );
    a.ok(["post", &t, "Ben needs a quiet room at meetings"]);
    a.ok(["post", &t, "And large print papers"]);
    let bundle = a.export();
    for h in &homes[1..] {
        h.import(&bundle);
    }
    (homes, t)
}

#[test]
fn readers_read_sealed_messages_and_everyone_sees_title_readers_reason_and_count() {
    let (homes, t) = sealed_board();
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let want = vec![
        "Ben needs a quiet room at meetings".to_string(),
        "And large print papers".to_string(),
    ];
    for reader in [a, b] {
        let v = reader.ok(["show", &t]);
        assert_eq!(v["sealed"], true, "{v}");
        assert_eq!(v["readable"], true, "{v}");
        assert_eq!(texts(&v), want);
        // The group view lists the same messages inside the thread, like an open thread's entries.
        let all = reader.show();
        let th = all["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["thread_id"] == t.as_str())
            .unwrap_or_else(|| panic!("{all}"));
        assert_eq!(th["entries"].as_array().map(|e| e.len()), Some(2), "{th}");
    }
    // A reader replies; the other reader reads it.
    b.ok(["post", &t, "Thank you, that helps"]);
    sync(b, a);
    assert_eq!(texts(&a.ok(["show", &t])).len(), 3);

    // Cy is not a reader: the public facts, in plain words, and never the words or ciphertext.
    let v = c.ok(["show", &t]);
    assert_eq!(v["sealed"], true, "{v}");
    assert_eq!(v["readable"], false, "{v}");
    assert_eq!(v["reason"], REASON, "{v}");
    assert_eq!(v["entries"], 2, "{v}");
    assert_eq!(
        set(&v["readers"]),
        BTreeSet::from([a.member_id.clone(), b.member_id.clone()])
    );
    assert_eq!(
        set(&v["reader_names"]),
        BTreeSet::from(["Ana".into(), "Ben".into()])
    );
    assert_eq!(v["messages"], serde_json::json!([]), "{v}");
    // Who wrote each sealed message, and when, is public.
    let authors: Vec<&str> = v["sealed_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["author"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["Ana", "Ana"], "{v}");
    let text = v.to_string();
    assert!(!text.contains("quiet room"), "{text}");
    let w = words(c, &["show", &t]);
    assert!(w.contains("not one of its readers"), "{w}");
    assert!(w.contains(REASON), "{w}");
    assert!(w.contains("It has 2 sealed messages"), "{w}");
    assert!(!w.contains("quiet room"), "{w}");
    // Writing in it is refused, with a reason, and nothing is written.
    let before = c.heads();
    let err = c.fails(1, ["post", &t, "Let me in"]);
    assert!(err.contains("not a reader"), "{err}");
    assert_eq!(c.heads(), before);
}

#[test]
fn asking_adding_declining_and_removing_readers() {
    let (homes, t) = sealed_board();
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    // Cy asks; Ana declines with a reason Cy sees.
    c.ok(["thread", "ask", &t, "--why", "I support Ben at meetings"]);
    sync(c, a);
    let seen = a.ok(["show", &t]);
    assert_eq!(seen["asks"][0]["member_id"], c.member_id.as_str(), "{seen}");
    assert_eq!(seen["asks"][0]["why"], "I support Ben at meetings");
    a.ok([
        "thread",
        "decline",
        &t,
        &c.member_id,
        "--reason",
        "Ben asked to keep it to two people for now",
    ]);
    sync(a, c);
    let v = c.ok(["show", &t]);
    assert_eq!(v["declines"][0]["member_id"], c.member_id.as_str(), "{v}");
    assert_eq!(
        v["declines"][0]["reason"],
        "Ben asked to keep it to two people for now"
    );
    assert!(words(c, &["show", &t]).contains("two people for now"));

    // Later Ana agrees that Cy may read; one reader cannot let Cy in alone: Ben is asked.
    let agreed = a.ok(["thread", "add-reader", &t, &c.member_id]);
    assert_eq!(agreed["reader"], false, "{agreed}");
    assert_eq!(agreed["waiting_for"][0]["name"], "Ben", "{agreed}");
    let again = a.ok(["thread", "add-reader", &t, &c.member_id]);
    assert_eq!(again["entry_id"], serde_json::Value::Null, "{again}");
    sync(a, c);
    assert_eq!(c.ok(["show", &t])["readable"], false);
    sync(a, b);
    let w = words(b, &["show", &t]);
    assert!(w.contains("Ana agreed that Cy may read it"), "{w}");
    // Ben agrees too, the last reader to: Cy can read, and reads the whole history.
    let added = b.ok(["thread", "add-reader", &t, &c.member_id]);
    assert_eq!(added["reader"], true, "{added}");
    sync(b, a);
    sync(a, c);
    let v = c.ok(["show", &t]);
    assert_eq!(v["readable"], true, "{v}");
    assert_eq!(texts(&v).len(), 2, "{v}");

    // Ana removes Ben: a new key; Ben cannot read what is written after.
    a.ok(["thread", "remove-reader", &t, &b.member_id]);
    a.ok(["post", &t, "Written after Ben stopped reading"]);
    sync(a, b);
    sync(a, c);
    let vb = b.ok(["show", &t]);
    assert_eq!(vb["readable"], false, "{vb}");
    assert_eq!(vb["entries"], 3, "{vb}");
    assert!(!vb.to_string().contains("Written after"), "{vb}");
    // What Ben was given while a reader stays readable to him; the plain words say so.
    assert_eq!(texts(&vb).len(), 2, "{vb}");
    assert!(words(b, &["show", &t]).contains("no longer one of its readers"));
    let changes: Vec<&str> = vb["reader_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["agreed", "added", "removed"], "{vb}");
    assert_eq!(vb["reader_changes"][1]["by"]["name"], "Ben", "{vb}");
    let vc = c.ok(["show", &t]);
    assert_eq!(texts(&vc).len(), 3, "{vc}");
    assert_eq!(
        set(&vc["readers"]),
        BTreeSet::from([a.member_id.clone(), c.member_id.clone()])
    );
    // Cy writes too, under the new key; Ana reads it.
    c.ok(["post", &t, "Cy here"]);
    sync(c, a);
    assert_eq!(
        texts(&a.ok(["show", &t])).last().map(String::as_str),
        Some("Cy here")
    );
}

#[test]
fn a_member_whose_device_has_not_opened_the_group_cannot_be_made_a_reader_yet() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben"]);
    let a = &homes[0];
    let dee = Home::init("Dee");
    let asked = a.ok(["member", "add", &dee.member_id, "--name", "Dee"]);
    let closed = decide(a, &[&homes[1]], &id_at(&asked, "proposal_id"));
    assert_eq!(closed["decision"], "passed", "{closed}");
    let before = a.heads();
    let err = a.fails(
        1,
        [
            "thread",
            "new",
            "Contract",
            "--sealed",
            "--reader",
            &dee.member_id,
            "--reason",
            "A contract under negotiation",
        ],
    );
    assert!(err.contains("Dee cannot be made a reader yet"), "{err}");
    assert!(err.contains("sync"), "{err}");
    assert_eq!(a.heads(), before, "a refused command writes nothing");
    // Once Dee's device holds the group it publishes its key; after a sync Dee can be a reader.
    sync(a, &dee);
    sync(&dee, a);
    let t = id_at(
        &a.ok([
            "thread",
            "new",
            "Contract",
            "--sealed",
            "--reader",
            &dee.member_id,
            "--reason",
            "A contract under negotiation",
        ]),
        "thread_id",
    );
    a.ok(["post", &t, "The price is not agreed yet"]);
    sync(a, &dee);
    assert_eq!(
        texts(&dee.ok(["show", &t])),
        vec!["The price is not agreed yet"]
    );
}

#[test]
fn sealed_needs_a_reason_and_readers_need_sealed() {
    let (a, _g) = Home::with_group("Ana", "Board");
    for args in [
        vec!["thread", "new", "T", "--sealed"],
        vec!["thread", "new", "T", "--reason", "why"],
        vec!["thread", "new", "T", "--reader", &a.member_id],
    ] {
        let f = a.cmd(&args).fails(2);
        assert!(!f.stderr.is_empty(), "{args:?}");
    }
    let err = a.fails(1, ["thread", "new", "T", "--sealed", "--reason", "   "]);
    assert!(err.contains("reason"), "{err}");
}

// ----- relayed over iroh by a device that cannot read it -----

#[test]
fn two_readers_linked_only_through_a_non_reader_get_every_sealed_entry() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cy"]);
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let t = id_at(
        &a.ok([
            "thread",
            "new",
            "Safeguarding",
            "--sealed",
            "--reader",
            &b.member_id,
            "--reason",
            "A safeguarding concern about a named person",
        ]),
        "thread_id",
    );
    for i in 0..5 {
        a.ok(["post", &t, &format!("sealed note {i}")]);
    }
    // A ↔ C over iroh; then A goes away and C ↔ B. Ana and Ben never meet.
    {
        let (_sa, ticket) = serve_loopback(a.dir());
        c.cmd(["sync", &ticket, "--timeout", "20"]).ok();
    }
    let vc = c.ok(["show", &t]);
    assert_eq!(vc["entries"], 5, "{vc}");
    assert_eq!(vc["readable"], false);
    {
        let (_sc, ticket) = serve_loopback(c.dir());
        b.cmd(["sync", &ticket, "--timeout", "20"]).ok();
    }
    let vb = b.ok(["show", &t]);
    assert_eq!(
        texts(&vb),
        (0..5)
            .map(|i| format!("sealed note {i}"))
            .collect::<Vec<_>>(),
        "{vb}"
    );
    assert_eq!(vb["unreadable"], serde_json::json!([]));
    // And back: Ben answers, C relays to Ana.
    b.ok(["post", &t, "Ben read all five"]);
    {
        let (_sc, ticket) = serve_loopback(c.dir());
        b.cmd(["sync", &ticket, "--timeout", "20"]).ok();
        a.cmd(["sync", &ticket, "--timeout", "20"]).ok();
    }
    assert_eq!(
        texts(&a.ok(["show", &t])).last().map(String::as_str),
        Some("Ben read all five")
    );
    assert_eq!(a.heads(), b.heads());
}
