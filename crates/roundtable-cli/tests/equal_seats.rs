//! Equal seats that hold: each way one member could act for the whole group, tried with the real
//! `roundtable` binary on real homes and bundles carried between them, is refused or has no effect.

mod util;

use serde_json::Value;
use util::{Home, TestCommand, decide, id_at, partnership, partnership_with, sync};

/// What `show` says in words on `h`.
fn show_words(h: &Home) -> String {
    let out = TestCommand::words()
        .arg("--home")
        .arg(h.dir())
        .arg("show")
        .run()
        .json;
    out.as_str().unwrap_or_default().to_string()
}

fn proposal<'a>(show: &'a Value, id: &str) -> &'a Value {
    let in_threads = show["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["entries"].as_array().into_iter().flatten());
    let in_group = show["group_proposals"].as_array().into_iter().flatten();
    in_threads
        .chain(in_group)
        .find(|e| e["proposal_id"] == id)
        .unwrap_or_else(|| panic!("no proposal {id} in {show}"))
}

#[test]
fn one_member_cannot_remove_another_alone() {
    let (homes, _g) = partnership_with("Board", &["Ana", "Ben", "Cara"], &["--quorum", "3"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t = id_at(&a.ok(["thread", "new", "Members"]), "thread_id");
    let before = a.stored();
    // Asking for fewer views than the group's quorum is refused, and says what the rule is.
    for q in ["1", "0"] {
        let err = a.fails(
            1,
            [
                "propose",
                &t,
                "Remove Ben",
                "--easy-read",
                "Ben goes",
                "--quorum",
                q,
                "--removes",
                &b.member_id,
            ],
        );
        assert!(err.contains("at least 3 members"), "{err}");
    }
    assert_eq!(a.stored(), before);
    // With the group's quorum: Ana agrees alone and tries to close at once.
    let p = id_at(
        &a.ok([
            "propose",
            &t,
            "Remove Ben",
            "--easy-read",
            "Ben goes",
            "--removes",
            &b.member_id,
        ]),
        "proposal_id",
    );
    a.ok(["stance", &p, "agree"]);
    let before = a.stored();
    let err = a.fails(1, ["close", &p, "--outcome", "Ben is out"]);
    assert_eq!(
        err.trim(),
        "roundtable: not written: 1 of 3 members have given a view; 2 more are needed before it can be closed"
    );
    let err = a.fails(1, ["member", "remove", &b.member_id, "--decision", &p]);
    assert!(err.contains("2 more are needed"), "{err}");
    assert_eq!(a.stored(), before);
    // Carried to Ben's device, nothing has changed either.
    sync(a, b);
    for h in [a, b] {
        assert_eq!(h.status_of(&b.member_id).as_deref(), Some("active"));
    }
    let shown = a.show();
    let e = proposal(&shown, &p);
    assert_eq!(e["views"]["given"], 1);
    assert_eq!(e["views"]["needed"], 3);
    assert_eq!(e["outcome"], Value::Null);
}

#[test]
fn the_proposer_cannot_pick_a_weaker_rule() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cara"]);
    let a = &homes[0];
    let t = id_at(&a.ok(["thread", "new", "Money"]), "thread_id");
    let err = a.fails(
        1,
        [
            "propose",
            &t,
            "Spend it",
            "--easy-read",
            "We spend it",
            "--rule",
            "majority",
        ],
    );
    assert!(
        err.contains("this group decides by consent: a proposal may not ask for majority"),
        "{err}"
    );
    // A majority group may ask for consent: more, never less.
    let (homes, _g) = partnership_with("Board", &["Ana", "Ben"], &["--rule", "majority"]);
    let a = &homes[0];
    let t = id_at(&a.ok(["thread", "new", "Money"]), "thread_id");
    let p = id_at(
        &a.ok([
            "propose",
            &t,
            "Spend it",
            "--easy-read",
            "We spend it",
            "--rule",
            "consent",
        ]),
        "proposal_id",
    );
    assert_eq!(proposal(&a.show(), &p)["rule"], "consent");
}

#[test]
fn the_policy_changes_only_by_a_passed_decision() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cara"]);
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let t = id_at(&a.ok(["thread", "new", "Rules"]), "thread_id");
    let p = id_at(
        &a.ok([
            "propose",
            &t,
            "Decide by majority",
            "--easy-read",
            "More yes than no is enough",
            "--sets-rule",
            "majority",
            "--sets-quorum",
            "2",
        ]),
        "proposal_id",
    );
    a.ok(["stance", &p, "agree"]);
    assert_eq!(a.show()["group"]["rule"], "consent", "not before it passes");
    let closed = decide(a, &[b, c], &p);
    assert_eq!(closed["decision"], "passed", "{closed}");
    let g = &a.show()["group"];
    assert_eq!(
        (g["rule"].as_str(), g["quorum"].as_u64()),
        (Some("majority"), Some(2))
    );
}

#[test]
fn adding_someone_needs_the_group_and_keys_of_ones_own_making_do_not_vote() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cara"]);
    let (a, b) = (&homes[0], &homes[1]);
    // Ana makes two keys of her own and asks for both to join; neither joins while she alone agrees.
    let socks = [Home::init("Sock one"), Home::init("Sock two")];
    for s in &socks {
        let asked = a.ok(["member", "add", &s.member_id, "--name", &s.name]);
        assert!(asked.get("outcome_id").is_none(), "{asked}");
        let p = id_at(&asked, "proposal_id");
        a.fails(1, ["close", &p, "--outcome", "in"]);
        assert_eq!(a.status_of(&s.member_id), None);
    }
    // The sock's device, given the record, cannot write in it.
    let bundle = a.export();
    socks[0].import(&bundle);
    let t = id_at(&a.ok(["thread", "new", "Plans"]), "thread_id");
    socks[0].import(&a.export());
    socks[0].fails(1, ["post", &t, "I vote too"]);
    // Nor can an auditor be let in by one member alone.
    let inspector = Home::init("Inspector");
    let asked = a.ok([
        "auditor",
        "add",
        &inspector.member_id,
        "--name",
        "Inspector",
    ]);
    let p = id_at(&asked, "proposal_id");
    a.fails(1, ["close", &p, "--outcome", "in"]);
    sync(a, b);
    let shown = b.show();
    let e = proposal(&shown, &p);
    assert_eq!(e["effect"]["kind"], "auditor.add");
    assert!(
        e["easy_read"]
            .as_str()
            .unwrap()
            .contains("Should Inspector be able to check our record?"),
        "{e}"
    );
}

#[test]
fn two_closes_made_apart_conflict_and_the_removal_follows_the_one_that_stands() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cara", "Dev"]);
    let (a, b, c, d) = (&homes[0], &homes[1], &homes[2], &homes[3]);
    let p = id_at(&a.ok(["member", "remove", &d.member_id]), "proposal_id");
    for h in [b, c] {
        sync(a, h);
        h.ok(["stance", &p, "agree"]);
    }
    // Everyone has Ana's, Ben's and Cara's agree.
    sync(b, c);
    sync(c, b);
    // Apart: Cara closes with the three agrees; Ben changes his mind to a block and closes.
    let passed = c.ok(["close", &p, "--outcome", "Dev leaves"]);
    assert_eq!(passed["decision"], "passed");
    assert_eq!(c.status_of(&d.member_id).as_deref(), Some("removed"));
    b.ok(["stance", &p, "block", "--reason", "Dev was not heard"]);
    let not = b.ok(["close", &p, "--outcome", "Dev stays"]);
    assert_eq!(not["decision"], "not_passed");
    // Both closes reach Ana's device: a conflict, shown; both counted 3 views, so on the tie
    // "not passed" stands, and Dev is a member, on every device.
    sync(c, a);
    sync(b, a);
    sync(a, c);
    for h in [a, c] {
        assert_eq!(h.status_of(&d.member_id).as_deref(), Some("active"));
        let shown = h.show();
        let e = proposal(&shown, &p);
        assert_eq!(e["outcome"]["decision"], "not_passed", "{e}");
        assert_eq!(
            e["conflicting_outcomes"].as_array().unwrap().len(),
            2,
            "{e}"
        );
    }
    let words = show_words(a);
    assert!(words.contains("closed it at the same time"), "{words}");
    // The auditor says so too.
    let bundle = a.export();
    let audit = a
        .cmd([std::ffi::OsStr::new("audit"), bundle.as_os_str()])
        .fails(1);
    let report: Value = serde_json::from_str(&audit.stdout).unwrap();
    assert_eq!(report["verified"], false);
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["conflicting_outcomes"], "{report}");
    assert_eq!(report["problems"][0]["entry_id"], p.as_str());
    // A close that sees both settles it.
    let settled = a.ok(["close", &p, "--outcome", "Settled: Dev stays"]);
    assert_eq!(settled["decision"], "not_passed");
    let bundle = a.export();
    let report = a.ok([std::ffi::OsStr::new("audit"), bundle.as_os_str()]);
    assert_eq!(report["verified"], true, "{report}");
    let e = proposal(&a.show(), &p).clone();
    assert_eq!(e["conflicting_outcomes"], serde_json::json!([]));
}

#[test]
fn a_removed_members_old_copy_changes_nothing() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cara"]);
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let t = id_at(&a.ok(["thread", "new", "Plans"]), "thread_id");
    let open = id_at(
        &a.ok([
            "propose",
            &t,
            "Garden day",
            "--easy-read",
            "We meet in the garden",
        ]),
        "proposal_id",
    );
    a.ok(["stance", &open, "agree"]);
    sync(a, b);
    b.ok(["stance", &open, "block", "--reason", "Not in winter"]);
    sync(b, a);
    sync(a, c);
    // Cara keeps a copy of her home from before her removal.
    let old = c.copy();
    let rm = id_at(&a.ok(["member", "remove", &c.member_id]), "proposal_id");
    sync(a, b);
    b.ok(["stance", &rm, "agree"]);
    sync(b, a);
    assert_eq!(
        a.ok(["close", &rm, "--outcome", "Cara leaves"])["decision"],
        "passed"
    );

    // From the old copy Cara closes the open proposal, and asks for a key of her own making to
    // join, agreeing to it.
    let closed = old.ok(["close", &open, "--outcome", "Not passed, says Cara"]);
    assert_eq!(closed["decision"], "not_passed");
    let sock = Home::init("Cara again");
    let asked = old.ok(["member", "add", &sock.member_id, "--name", "Cara again"]);
    let sock_p = id_at(&asked, "proposal_id");
    // It all arrives: kept and marked, and none of it has any effect.
    let v = sync(&old, a);
    assert_eq!(v["rejected"], 0, "{v}");
    let shown = a.show();
    assert_eq!(
        proposal(&shown, &open)["outcome"],
        Value::Null,
        "Cara's close does not stand"
    );
    let sp = proposal(&shown, &sock_p);
    assert!(
        sp["marks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "written_concurrently_with_removal"),
        "{sp}"
    );
    assert_eq!(a.status_of(&sock.member_id), None);
    assert_eq!(a.status_of(&c.member_id).as_deref(), Some("removed"));
    // The members close it themselves.
    let out = a.ok(["close", &open, "--outcome", "Not in winter"]);
    assert_eq!(out["decision"], "not_passed");
    assert_eq!(out["counts"]["block"], 1);
}

#[test]
fn two_members_removing_each_other_alone_changes_nothing() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cara", "Dev", "Eve"]);
    let (a, b) = (&homes[0], &homes[1]);
    let pa = id_at(&a.ok(["member", "remove", &b.member_id]), "proposal_id");
    let pb = id_at(&b.ok(["member", "remove", &a.member_id]), "proposal_id");
    a.fails(1, ["close", &pa, "--outcome", "Ben is out"]);
    b.fails(1, ["close", &pb, "--outcome", "Ana is out"]);
    sync(a, b);
    sync(b, a);
    for h in [a, b] {
        let members = h.members();
        assert_eq!(members.len(), 5);
        assert!(members.iter().all(|(_, _, s)| s == "active"), "{members:?}");
        let shown = h.show();
        for p in [&pa, &pb] {
            let e = proposal(&shown, p);
            assert_eq!(e["outcome"], Value::Null);
            assert_eq!(e["views"]["given"], 1);
        }
    }
    let words = show_words(a);
    assert!(words.contains("About the group"), "{words}");
}

/// A member's name and needs are their own: a newcomer's words from `init` reach the group even
/// when whoever asked the group to add them typed other words, and only the member changes them
/// later (`member about`), for everyone.
#[test]
fn my_name_and_needs_are_mine() {
    let (a, _g) = Home::with_group("Ana", "Board");
    let mut b = Home::empty();
    let out = b
        .cmd([
            "init",
            "--name",
            "Ben",
            "--needs",
            "pictures, short meetings",
        ])
        .run();
    b.member_id = id_at(&out.json, "member_id");
    // Ana, alone in the group, adds Ben with words of her own.
    let asked = a.ok(["member", "add", &b.member_id, "--name", "Benjamin"]);
    assert!(asked.get("outcome_id").is_some(), "{asked}");
    // Ben's device opens the group: his own words are written once, signed by him.
    b.import(&a.export());
    sync(&b, &a);
    let ben = |h: &Home| {
        let v = h.ok(["member", "list"]);
        v["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["member_id"] == b.member_id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no Ben in {v}"))
    };
    assert_eq!(ben(&a)["name"], "Ben");
    assert_eq!(ben(&a)["needs"], "pictures, short meetings");
    // Ben changes his needs; everyone sees it once synced.
    b.ok(["member", "about", "--needs", "large print"]);
    sync(&b, &a);
    assert_eq!(ben(&a)["needs"], "large print");
    assert_eq!(ben(&a)["name"], "Ben");
    // Ana's `member about` changes only Ana: nobody can change another member's words.
    a.ok(["member", "about", "--name", "Ana R"]);
    sync(&a, &b);
    assert_eq!(ben(&b)["needs"], "large print");
    let names: Vec<String> = b.members().into_iter().map(|(_, n, _)| n).collect();
    assert!(names.contains(&"Ana R".to_string()), "{names:?}");
    // An empty name is refused with nothing written; no flag at all is a usage error.
    let before = b.stored();
    let err = b.fails(1, ["member", "about", "--name", " "]);
    assert!(err.contains("your name"), "{err}");
    assert_eq!(b.stored(), before);
    b.cmd(["member", "about"]).fails(2);
}
