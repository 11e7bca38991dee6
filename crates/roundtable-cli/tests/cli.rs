//! The `roundtable` command's contract, tested through the real binary.

mod util;

use serde_json::{Value, json};
use util::{
    Home, TestCommand, assert_id, decide, entry_id, id_at, one_json, partnership, partnership_with,
    read_bundle, sync, write_bundle,
};

// ----- helpers over `show` -----

/// The thread `id` in a `show` document.
#[track_caller]
fn thread<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["threads"]
        .as_array()
        .unwrap_or_else(|| panic!("show has no threads list: {show}"))
        .iter()
        .find(|t| t["thread_id"] == id)
        .unwrap_or_else(|| panic!("thread {id} not in show: {show}"))
}

/// The entry `id` (message, proposal or action) anywhere in a `show` document.
#[track_caller]
fn entry<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["entries"].as_array().into_iter().flatten())
        .find(|e| e["entry_id"] == id)
        .unwrap_or_else(|| panic!("entry {id} not in show: {show}"))
}

fn counts(agree: u64, abstain: u64, disagree: u64, block: u64) -> Value {
    json!({"agree": agree, "abstain": abstain, "disagree": disagree, "block": block})
}

/// A well-formed id that names nothing.
const NOWHERE: &str = "00000000000000000000000000000000000000000000000000000000000000ff";

// ----- init, id, global flags -----

#[test]
fn init_prints_ids_that_id_repeats_and_warns_without_passphrase() {
    let h = Home::empty();
    let out = h.cmd(["init", "--name", "Ana"]).run();
    let member = id_at(&out.json, "member_id");
    let device = id_at(&out.json, "device_id");
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("passphrase"),
        "init without a passphrase must warn on stderr, said: {:?}",
        out.stderr
    );
    let again = h.ok(["id"]);
    assert_eq!(again["member_id"], member.as_str());
    assert_eq!(again["device_id"], device.as_str());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.dir().join("device.key"))
            .expect("device.key exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "device.key mode is {:o}", mode & 0o777);
    }

    // A second init in the same home is refused and keeps the key.
    h.cmd(["init", "--name", "Other"]).fails_any();
    assert_eq!(h.ok(["id"]), again);

    // Without --json the same command prints words, and the id in them.
    let words = TestCommand::words()
        .arg("--home")
        .arg(h.dir())
        .arg("id")
        .run()
        .json;
    let words = words.as_str().unwrap();
    assert!(words.contains(&member), "{words}");
    assert!(serde_json::from_str::<Value>(words).is_err());
}

#[test]
fn global_flags_home_env_group_and_exit_codes() {
    let h = Home::init("Ana");

    // Usage errors: exit 2, nothing on stdout.
    let f = h.cmd(["frobnicate"]).fails(2);
    assert!(f.stdout.is_empty());
    h.fails(2, ["post"]);
    h.fails(2, ["stance", NOWHERE, "maybe"]);
    h.fails(
        2,
        [
            "propose",
            NOWHERE,
            "t",
            "--easy-read",
            "e",
            "--rule",
            "dice",
        ],
    );

    // A missing home is an I/O error: exit 2, and the message says what to do.
    let missing = Home::empty();
    let err = missing.fails(2, ["id"]);
    assert!(err.contains("init"), "{err}");
    missing.fails(2, ["show"]);
    assert!(
        !missing.dir().exists(),
        "a failed command must not create a home"
    );

    // ROUNDTABLE_HOME works like --home.
    let via_env = TestCommand::bare()
        .env("ROUNDTABLE_HOME", h.dir())
        .arg("id")
        .ok();
    assert_eq!(via_env["member_id"], h.member_id.as_str());
    let g1 = id_at(
        &TestCommand::bare()
            .env("ROUNDTABLE_HOME", h.dir())
            .args(["group", "create", "First"])
            .ok(),
        "group_id",
    );

    // With one group, --group is optional.
    let t1 = id_at(&h.ok(["thread", "new", "In first"]), "thread_id");
    assert_eq!(thread(&h.show(), &t1)["title"], "In first");
    assert_eq!(h.show()["group"]["group_id"], g1.as_str());

    // With two groups, the group must be chosen.
    let g2 = id_at(&h.ok(["group", "create", "Second"]), "group_id");
    assert_ne!(g1, g2);
    let err = h.cmd(["thread", "new", "Where?"]).fails_any().stderr;
    assert!(err.contains("--group"), "{err}");
    let t2 = id_at(
        &h.ok(["--group", &g2, "thread", "new", "In second"]),
        "thread_id",
    );
    let s1 = h.ok(["--group", &g1, "show"]);
    let s2 = h.ok(["--group", &g2, "show"]);
    assert_eq!(s1["threads"].as_array().unwrap().len(), 1);
    assert_eq!(s2["threads"].as_array().unwrap().len(), 1);
    assert_eq!(thread(&s2, &t2)["title"], "In second");
    // The flag works after the subcommand too, and a malformed group id is a usage error.
    h.ok(["heads", "--group", &g1]);
    h.fails(2, ["--group", "not-a-group", "heads"]);

    let groups = h.ok(["group", "list"]);
    let mut listed: Vec<String> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| id_at(g, "group_id"))
        .collect();
    listed.sort();
    let mut want = vec![g1, g2];
    want.sort();
    assert_eq!(listed, want);
}

// ----- ids and references -----

#[test]
fn malformed_ids_are_usage_errors_and_unknown_entries_are_refused() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo"]);
    let a = &homes[0];
    let bo = homes[1].member_id.clone();
    let t = id_at(&a.ok(["thread", "new", "Housing"]), "thread_id");
    let m = id_at(&a.ok(["post", &t, "hello"]), "entry_id");
    let p = id_at(
        &a.ok(["propose", &t, "Paint", "--easy-read", "Paint it"]),
        "proposal_id",
    );
    let before = a.stored();

    let bad_ids = [
        "abc".to_string(),
        "".to_string(),
        "0".repeat(63),
        "0".repeat(65),
        format!("{}g", "0".repeat(63)),
        format!("{}-", &t[..63]),
    ];
    for bad in &bad_ids {
        a.fails(2, ["post", bad, "hi"]);
    }
    for bad in &bad_ids[..2] {
        let b = bad.as_str();
        let cmds: Vec<Vec<&str>> = vec![
            vec!["propose", b, "T", "--easy-read", "E"],
            vec!["propose", &t, "T", "--easy-read", "E", "--removes", b],
            vec!["stance", b, "agree"],
            vec!["stance", &p, "agree", "--for", b],
            vec!["understand", b, "--as", "x"],
            vec!["confirm", b],
            vec!["correct", b, "x"],
            vec!["close", b, "--outcome", "x"],
            vec!["action", "add", b, "x", "--owner", &bo],
            vec!["action", "add", &t, "x", "--owner", b],
            vec!["action", "done", b],
            vec!["member", "add", b, "--name", "X"],
            vec!["member", "remove", b, "--decision", &p],
            vec!["member", "remove", &bo, "--decision", b],
            vec!["show", b],
            vec!["--group", b, "heads"],
        ];
        for c in cmds {
            a.fails(2, c);
        }
    }
    let err = a.fails(2, ["post", "abc", "hi"]);
    assert!(err.contains("abc") && err.contains("64"), "{err}");

    // Well-formed ids that name nothing (or the wrong kind of entry) are refused: exit 1.
    for c in [
        vec!["post", NOWHERE, "hi"],
        vec!["post", &p, "a message in a proposal?"],
        vec!["show", NOWHERE],
        vec!["show", &p],
        vec!["propose", NOWHERE, "T", "--easy-read", "E"],
        vec!["stance", NOWHERE, "agree"],
        vec!["stance", &t, "agree"],
        vec!["close", NOWHERE, "--outcome", "x"],
        vec!["close", &m, "--outcome", "x"],
        vec!["understand", NOWHERE, "--as", "x"],
        vec!["confirm", NOWHERE],
        vec!["correct", NOWHERE, "x"],
        vec!["action", "add", NOWHERE, "x", "--owner", &bo],
        vec!["action", "done", NOWHERE],
        vec!["action", "done", &m],
        vec!["member", "remove", &bo, "--decision", NOWHERE],
    ] {
        a.fails(1, c);
    }
    // Empty texts are refused too.
    a.fails(1, ["post", &t, "  "]);
    a.fails(1, ["thread", "new", ""]);
    a.fails(1, ["propose", &t, "Title", "--easy-read", " "]);

    assert_eq!(a.stored(), before, "refused commands changed the record");
}

// ----- members -----

#[test]
fn members_are_added_listed_and_can_leave() {
    let (a, _g) = Home::with_group("Ana", "Board");
    let b = Home::init("Bo");
    let c = Home::init("Cy");
    assert_eq!(
        a.members(),
        vec![(a.member_id.clone(), "Ana".into(), "active".into())]
    );
    // Ana is the only member: her own agree and close let Bo in (how a group is founded).
    let added = a.ok([
        "member",
        "add",
        &b.member_id,
        "--name",
        "Bo",
        "--needs",
        "Large print",
    ]);
    id_at(&added, "proposal_id");
    id_at(&added, "outcome_id");
    // Now there are two: Cy joins only when Bo agrees too.
    let asked = a.ok(["member", "add", &c.member_id, "--name", "Cy"]);
    assert!(asked.get("outcome_id").is_none(), "{asked}");
    assert_eq!(
        a.status_of(&c.member_id),
        None,
        "not a member before the group agrees"
    );
    let p = id_at(&asked, "proposal_id");
    assert_eq!(decide(&a, &[&b], &p)["decision"], "passed");
    let mut want = vec![
        (a.member_id.clone(), "Ana".to_string(), "active".to_string()),
        (b.member_id.clone(), "Bo".to_string(), "active".to_string()),
        (c.member_id.clone(), "Cy".to_string(), "active".to_string()),
    ];
    want.sort();
    let mut got = a.members();
    got.sort();
    assert_eq!(got, want);
    let list = a.ok(["member", "list"]);
    let bo = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member_id"] == b.member_id.as_str())
        .unwrap();
    assert_eq!(bo["needs"], "Large print");

    // Adding someone twice is refused; nothing changes.
    let before = a.stored();
    a.fails(1, ["member", "add", &b.member_id, "--name", "Bo again"]);
    assert_eq!(a.stored(), before);

    sync(&a, &b);
    sync(&b, &a);
    let mut got_b = b.members();
    got_b.sort();
    assert_eq!(got_b, want);

    // Bo leaves; Bo can no longer write, nor leave again.
    let t = id_at(&a.ok(["thread", "new", "Plans"]), "thread_id");
    sync(&a, &b);
    id_at(&b.ok(["member", "leave"]), "entry_id");
    assert_eq!(b.status_of(&b.member_id).as_deref(), Some("left"));
    let before = b.stored();
    let err = b.fails(1, ["post", &t, "still here?"]);
    assert!(err.contains("left") || err.contains("removed"), "{err}");
    b.fails(1, ["member", "leave"]);
    assert_eq!(b.stored(), before);

    sync(&b, &a);
    assert_eq!(a.status_of(&b.member_id).as_deref(), Some("left"));
    assert_eq!(a.status_of(&c.member_id).as_deref(), Some("active"));
    // The show document lists members by id, name and status as well.
    let show = a.show();
    let m = show["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member_id"] == b.member_id.as_str())
        .unwrap();
    assert_eq!(m["name"], "Bo");
    assert_eq!(m["status"], "left");
}

#[test]
fn removal_takes_effect_when_the_group_passes_it() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo", "Cy", "Di"]);
    let (a, b, c, d) = (&homes[0], &homes[1], &homes[2], &homes[3]);
    let t = id_at(&a.ok(["thread", "new", "Membership"]), "thread_id");
    for h in [b, c, d] {
        sync(a, h);
    }

    // `member remove` without a decision asks the group, with Ana's agree; Cy stays for now.
    let asked = a.ok(["member", "remove", &c.member_id]);
    let p = id_at(&asked, "proposal_id");
    assert!(asked.get("outcome_id").is_none(), "{asked}");
    assert_eq!(a.status_of(&c.member_id).as_deref(), Some("active"));
    let shown = a.show();
    let gp = &shown["group_proposals"];
    let e = gp
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["proposal_id"] == p.as_str())
        .expect("the removal is asked of the group");
    assert_eq!(e["effect"]["kind"], "member.remove");
    assert!(
        e["easy_read"]
            .as_str()
            .unwrap()
            .contains("Should Cy stop being a member?"),
        "{e}"
    );
    // Closing too early is refused in words.
    let err = a.fails(1, ["member", "remove", &c.member_id, "--decision", &p]);
    assert!(
        err.contains("1 of 4 members have given a view; 2 more are needed"),
        "{err}"
    );
    // A proposal that does not remove Cy cannot be used to remove Cy.
    let plain = id_at(
        &a.ok(["propose", &t, "Plain", "--easy-read", "Plain"]),
        "proposal_id",
    );
    let err = a.fails(1, ["member", "remove", &c.member_id, "--decision", &plain]);
    assert!(err.contains("not a proposal to remove"), "{err}");

    // Cy's own block does not stop it; Bo and Di agree (all of the others), and Bo closes it
    // with `member remove --decision`.
    sync(a, c);
    c.ok(["stance", &p, "block", "--reason", "I want to stay"]);
    for h in [c, d] {
        sync(h, b);
    }
    // Meanwhile Cy, who has not seen the close yet, writes a message.
    let concurrent = id_at(&c.ok(["post", &t, "written before I heard"]), "entry_id");
    sync(a, b);
    sync(a, d);
    d.ok(["stance", &p, "agree"]);
    sync(d, b);
    b.ok(["stance", &p, "agree"]);
    let out = b.ok(["member", "remove", &c.member_id, "--decision", &p]);
    id_at(&out, "entry_id");
    assert_eq!(b.status_of(&c.member_id).as_deref(), Some("removed"));
    sync(b, a);
    assert_eq!(a.status_of(&c.member_id).as_deref(), Some("removed"));
    assert_eq!(a.status_of(&b.member_id).as_deref(), Some("active"));
    // Removing oneself is leaving, not removal.
    a.fails(1, ["member", "remove", &a.member_id]);
    sync(c, a);

    // Cy's concurrent message is kept and marked.
    let show = a.show();
    let e = entry(&show, &concurrent);
    assert_eq!(e["text"], "written before I heard");
    assert!(
        e["marks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "written_concurrently_with_removal"),
        "{e}"
    );

    // Once Cy has the removal, Cy can no longer write.
    sync(a, c);
    assert_eq!(c.status_of(&c.member_id).as_deref(), Some("removed"));
    let before = c.stored();
    c.fails(1, ["post", &t, "after removal"]);
    assert_eq!(c.stored(), before);
}

// ----- threads, posts, show -----

#[test]
fn threads_posts_and_show() {
    let (homes, g) = partnership("Board", &["Ana", "Bo"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t1 = id_at(&a.ok(["thread", "new", "Housing"]), "thread_id");
    let t2 = id_at(&a.ok(["thread", "new", "Budget"]), "thread_id");
    let m1 = id_at(&a.ok(["post", &t1, "First message"]), "entry_id");
    sync(a, b);
    let m2 = id_at(&b.ok(["post", &t1, "A reply"]), "entry_id");
    let m3 = id_at(&b.ok(["post", &t2, "Money"]), "entry_id");
    sync(b, a);

    let show = a.show();
    assert_eq!(show["group"]["group_id"], g.as_str());
    assert_eq!(show["group"]["name"], "Board");
    let titles: Vec<&str> = show["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Housing", "Budget"]);
    let th = thread(&show, &t1);
    assert_eq!(th["author"]["member_id"], a.member_id.as_str());
    assert_eq!(th["author"]["name"], "Ana");
    let ids: Vec<&str> = th["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [m1.as_str(), m2.as_str()]);
    let e1 = entry(&show, &m1);
    assert_eq!(e1["kind"], "message");
    assert_eq!(e1["text"], "First message");
    assert_eq!(e1["author"]["member_id"], a.member_id.as_str());
    assert_eq!(e1["author"]["name"], "Ana");
    assert!(e1["marks"].as_array().unwrap().is_empty());
    let e2 = entry(&show, &m2);
    assert_eq!(e2["author"]["member_id"], b.member_id.as_str());
    assert_eq!(e2["author"]["name"], "Bo");

    // show THREAD_ID shows that thread only.
    let only = a.ok(["show", &t2]);
    let threads = only["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0]["thread_id"], t2.as_str());
    assert_eq!(entry(&only, &m3)["text"], "Money");

    // Both homes hold the same entries, so they show the same record.
    assert_eq!(b.show(), show);
}

// ----- proposals, stances, close -----

#[test]
fn a_closing_day_is_a_date_kept_with_the_proposal() {
    let (a, _g) = Home::with_group("Ana", "Board");
    let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
    let before = a.stored();
    for bad in ["2026-13-01", "Friday", "2026-12-1"] {
        let err = a.fails(1, ["propose", &t, "P", "--easy-read", "E", "--closes", bad]);
        assert!(err.contains("2026-12-31"), "{bad}: {err}");
    }
    assert_eq!(a.stored(), before);
    let p = id_at(
        &a.ok([
            "propose",
            &t,
            "P",
            "--easy-read",
            "E",
            "--closes",
            "2026-12-11",
        ]),
        "proposal_id",
    );
    let q = id_at(
        &a.ok(["propose", &t, "Q", "--easy-read", "E"]),
        "proposal_id",
    );
    let show = a.show();
    assert_eq!(entry(&show, &p)["closes"], "2026-12-11");
    assert!(entry(&show, &q)["closes"].is_null());
}

#[test]
fn stance_needs_a_reason_to_disagree_or_block() {
    let (a, _g) = Home::with_group("Ana", "Board");
    let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
    let p = id_at(
        &a.ok(["propose", &t, "P", "--easy-read", "P in short"]),
        "proposal_id",
    );
    let before = a.stored();
    for s in ["disagree", "block"] {
        let err = a.fails(1, ["stance", &p, s]);
        assert!(err.contains("reason"), "{err}");
        a.fails(1, ["stance", &p, s, "--reason", "   "]);
    }
    assert_eq!(a.stored(), before);
    for s in ["agree", "abstain"] {
        id_at(&a.ok(["stance", &p, s]), "entry_id");
    }
    for s in ["disagree", "block"] {
        id_at(&a.ok(["stance", &p, s, "--reason", "because"]), "entry_id");
    }
    let show = a.show();
    let stances = entry(&show, &p)["stances"].as_array().unwrap().clone();
    assert_eq!(stances.len(), 4);
    assert_eq!(stances[3]["stance"], "block");
    assert_eq!(stances[3]["reason"], "because");
    assert_eq!(stances[3]["member_id"], a.member_id.as_str());
    assert_eq!(stances[3]["name"], "Ana");
}

/// One proposal to close: its rule and quorum, each member's stances in order, what closing says
/// (`"refused"`: too few views, the close is refused).
struct CloseCase {
    title: &'static str,
    rule: Option<&'static str>,
    quorum: Option<&'static str>,
    /// (member index: 0 Ana, 1 Bo, 2 Cy; stance; reason)
    stances: &'static [(usize, &'static str, &'static str)],
    decision: &'static str,
    counts: [u64; 4],
}

/// Runs close cases in a three-member group (Ana, Bo, Cy) made with `group create` `args`: Ana
/// proposes, each member gives their stances in their own home, the homes exchange bundles, and Ana
/// closes every proposal.
fn check_close(args: &[&str], cases: &[CloseCase]) {
    let (homes, _g) = partnership_with("Board", &["Ana", "Bo", "Cy"], args);
    let a = &homes[0];
    let t = id_at(&a.ok(["thread", "new", "Decisions"]), "thread_id");
    let mut ids = Vec::new();
    for c in cases {
        let mut args = vec![
            "propose",
            &t,
            c.title,
            "--easy-read",
            c.title,
            "--text",
            "Full text",
        ];
        if let Some(r) = c.rule {
            args.extend(["--rule", r]);
        }
        if let Some(q) = c.quorum {
            args.extend(["--quorum", q]);
        }
        ids.push(id_at(&a.ok(args), "proposal_id"));
    }
    let give = |who: usize| {
        for (c, p) in cases.iter().zip(&ids) {
            for (_, s, reason) in c.stances.iter().filter(|(w, _, _)| *w == who) {
                let mut args = vec!["stance", p.as_str(), s];
                if !reason.is_empty() {
                    args.extend(["--reason", reason]);
                }
                id_at(&homes[who].ok(args), "entry_id");
            }
        }
    };
    give(0);
    let needs = |who: usize| cases.iter().any(|c| c.stances.iter().any(|s| s.0 == who));
    if needs(1) || needs(2) {
        let bundle = a.export();
        for who in [1, 2].into_iter().filter(|w| needs(*w)) {
            homes[who].import(&bundle);
            give(who);
            sync(&homes[who], a);
        }
    }
    let shown = a.show();
    for (c, p) in cases.iter().zip(&ids) {
        let [ag, ab, di, bl] = c.counts;
        let e = entry(&shown, p);
        assert_eq!(e["current_counts"], counts(ag, ab, di, bl), "{}", c.title);
        let would = if c.decision == "refused" {
            "not_passed"
        } else {
            c.decision
        };
        assert_eq!(e["would_decide"], would, "{}", c.title);
        assert_eq!(e["outcome"], Value::Null, "{}", c.title);
    }
    for (c, p) in cases.iter().zip(&ids) {
        let [ag, ab, di, bl] = c.counts;
        if c.decision == "refused" {
            let err = a.fails(1, ["close", p, "--outcome", "Recorded"]);
            assert!(
                err.contains("needed before it can be closed"),
                "{}: {err}",
                c.title
            );
            continue;
        }
        let out = a.ok(["close", p, "--outcome", "Recorded"]);
        assert_eq!(out["decision"], c.decision, "{}: {out}", c.title);
        assert_eq!(out["counts"], counts(ag, ab, di, bl), "{}: {out}", c.title);
    }
    let shown = a.show();
    for (c, p) in cases.iter().zip(&ids) {
        let e = entry(&shown, p);
        if c.decision == "refused" {
            assert_eq!(e["outcome"], Value::Null, "{}", c.title);
            continue;
        }
        assert_eq!(e["outcome"]["decision"], c.decision, "{}", c.title);
        assert_eq!(e["outcome"]["outcome"], "Recorded", "{}", c.title);
        let [ag, ab, di, bl] = c.counts;
        assert_eq!(
            e["outcome"]["counts"],
            counts(ag, ab, di, bl),
            "{}",
            c.title
        );
        assert_eq!(
            e["outcome"]["closed_by"]["member_id"],
            a.member_id.as_str(),
            "{}",
            c.title
        );
    }
}

#[test]
fn close_under_consent_passes_with_quorum_and_no_block() {
    check_close(
        &[],
        &[
            CloseCase {
                title: "consent: agree and abstain meet quorum 2",
                rule: Some("consent"),
                quorum: Some("2"),
                stances: &[(0, "agree", ""), (1, "abstain", "")],
                decision: "passed",
                counts: [1, 1, 0, 0],
            },
            CloseCase {
                title: "consent: quorum 3 not met, so it cannot be closed",
                rule: Some("consent"),
                quorum: Some("3"),
                stances: &[(0, "agree", ""), (1, "agree", "")],
                decision: "refused",
                counts: [2, 0, 0, 0],
            },
            CloseCase {
                title: "consent: one block stops it",
                rule: Some("consent"),
                quorum: Some("2"),
                stances: &[
                    (0, "agree", ""),
                    (1, "block", "this harms us"),
                    (2, "agree", ""),
                ],
                decision: "not_passed",
                counts: [2, 0, 0, 1],
            },
            CloseCase {
                title: "consent: a disagree is not a block",
                rule: Some("consent"),
                quorum: Some("2"),
                stances: &[(0, "agree", ""), (1, "disagree", "I would not")],
                decision: "passed",
                counts: [1, 0, 1, 0],
            },
            CloseCase {
                title: "the group's rule (consent) by default; its quorum 1 is raised to a majority",
                rule: None,
                quorum: None,
                stances: &[(0, "abstain", "")],
                decision: "refused",
                counts: [0, 1, 0, 0],
            },
            CloseCase {
                title: "two of three is a majority",
                rule: None,
                quorum: None,
                stances: &[(0, "abstain", ""), (2, "agree", "")],
                decision: "passed",
                counts: [1, 1, 0, 0],
            },
            CloseCase {
                title: "no stances at all",
                rule: Some("consent"),
                quorum: Some("1"),
                stances: &[],
                decision: "refused",
                counts: [0, 0, 0, 0],
            },
        ],
    );
}

#[test]
fn close_under_majority_needs_more_agree_than_disagree_and_quorum() {
    check_close(
        &["--rule", "majority"],
        &[
            CloseCase {
                title: "majority: 2 agree, 1 disagree",
                rule: Some("majority"),
                quorum: Some("3"),
                stances: &[(0, "agree", ""), (1, "disagree", "no"), (2, "agree", "")],
                decision: "passed",
                counts: [2, 0, 1, 0],
            },
            CloseCase {
                title: "majority: a tie does not pass",
                rule: Some("majority"),
                quorum: Some("2"),
                stances: &[(0, "agree", ""), (1, "disagree", "no")],
                decision: "not_passed",
                counts: [1, 0, 1, 0],
            },
            CloseCase {
                title: "majority: quorum 3 not met, so it cannot be closed",
                rule: Some("majority"),
                quorum: Some("3"),
                stances: &[(0, "agree", ""), (1, "agree", "")],
                decision: "refused",
                counts: [2, 0, 0, 0],
            },
            CloseCase {
                title: "majority: two blocks outweigh one agree",
                rule: Some("majority"),
                quorum: Some("2"),
                stances: &[
                    (0, "agree", ""),
                    (1, "block", "strongly no"),
                    (2, "block", "no"),
                ],
                decision: "not_passed",
                counts: [1, 0, 0, 2],
            },
            CloseCase {
                title: "a majority group may ask for consent",
                rule: Some("consent"),
                quorum: Some("2"),
                stances: &[(0, "agree", ""), (1, "block", "no"), (2, "agree", "")],
                decision: "not_passed",
                counts: [2, 0, 0, 1],
            },
            CloseCase {
                title: "majority: a block counts against but is not a veto",
                rule: Some("majority"),
                quorum: Some("2"),
                stances: &[
                    (0, "agree", ""),
                    (1, "block", "strongly no"),
                    (2, "agree", ""),
                ],
                decision: "passed",
                counts: [2, 0, 0, 1],
            },
        ],
    );
}

#[test]
fn close_counts_each_members_latest_stance() {
    check_close(
        &["--rule", "majority"],
        &[
            CloseCase {
                title: "block, then agree",
                rule: Some("consent"),
                quorum: Some("1"),
                stances: &[
                    (0, "block", "not yet"),
                    (0, "agree", ""),
                    (2, "abstain", ""),
                ],
                decision: "passed",
                counts: [1, 1, 0, 0],
            },
            CloseCase {
                title: "agree, then disagree",
                rule: Some("majority"),
                quorum: Some("1"),
                stances: &[
                    (0, "agree", ""),
                    (0, "disagree", "changed my mind"),
                    (2, "abstain", ""),
                ],
                decision: "not_passed",
                counts: [0, 1, 1, 0],
            },
            CloseCase {
                title: "Bo agrees, then blocks",
                rule: Some("consent"),
                quorum: Some("1"),
                stances: &[
                    (1, "agree", ""),
                    (1, "block", "on reflection"),
                    (2, "abstain", ""),
                ],
                decision: "not_passed",
                counts: [0, 1, 0, 1],
            },
        ],
    );
}

#[test]
fn a_stance_for_another_member_counts_once_they_confirm_it() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo", "Cy"]);
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let t = id_at(&a.ok(["thread", "new", "Decisions"]), "thread_id");
    let prop = |title: &str| {
        id_at(
            &a.ok([
                "propose",
                &t,
                title,
                "--easy-read",
                title,
                "--rule",
                "consent",
                "--quorum",
                "2",
            ]),
            "proposal_id",
        )
    };
    let confirmed = prop("confirmed by Bo");
    let unconfirmed = prop("never confirmed");
    let by_other = prop("confirmed by Cy instead");
    let mut typed = Vec::new();
    for p in [&confirmed, &unconfirmed, &by_other] {
        a.ok(["stance", p, "agree"]);
        typed.push(id_at(
            &a.ok(["stance", p, "agree", "--for", &b.member_id]),
            "entry_id",
        ));
    }

    // Before Bo confirms, the stance typed for Bo is shown but does not count.
    let show = a.show();
    let pe = entry(&show, &confirmed);
    assert_eq!(pe["rule"], "consent");
    assert_eq!(pe["quorum"], 2);
    assert_eq!(pe["easy_read"], "confirmed by Bo");
    let st = pe["stances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["entry_id"] == typed[0].as_str())
        .unwrap();
    assert_eq!(st["member_id"], b.member_id.as_str());
    assert_eq!(st["name"], "Bo");
    assert_eq!(st["recorded_by"]["member_id"], a.member_id.as_str());
    assert_eq!(st["confirmed"], false);
    assert_eq!(pe["current_counts"], counts(1, 0, 0, 0));
    assert_eq!(pe["would_decide"], "not_passed");
    assert_eq!(pe["outcome"], Value::Null);

    let bundle = a.export();
    b.import(&bundle);
    c.import(&bundle);
    id_at(&b.ok(["confirm", &typed[0]]), "entry_id");
    // Only the member it was typed for can confirm it; Ana cannot confirm for Bo either.
    let before = c.stored();
    c.fails(1, ["confirm", &typed[2]]);
    assert_eq!(c.stored(), before);
    a.fails(1, ["confirm", &typed[2]]);
    sync(b, a);
    sync(c, a);

    let show = a.show();
    let st = entry(&show, &confirmed)["stances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["entry_id"] == typed[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(st["confirmed"], true);
    let out = a.ok(["close", &confirmed, "--outcome", "Recorded"]);
    assert_eq!(out["decision"], "passed", "{out}");
    assert_eq!(out["counts"], counts(2, 0, 0, 0), "{out}");
    // An unconfirmed stance is not a view: one of the two needed, so these cannot be closed.
    let before = a.stored();
    for p in [&unconfirmed, &by_other] {
        let err = a.fails(1, ["close", p, "--outcome", "Recorded"]);
        assert!(err.contains("1 more is needed"), "{err}");
    }

    // Closed proposals take no more stances, confirmations or closes.
    a.fails(1, ["stance", &confirmed, "agree"]);
    a.fails(1, ["close", &confirmed, "--outcome", "again"]);
    a.fails(1, ["stance", &confirmed, "agree", "--for", &c.member_id]);
    assert_eq!(a.stored(), before);
}

// ----- understanding checks and corrections -----

#[test]
fn understand_confirm_and_correct() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t = id_at(&a.ok(["thread", "new", "Access"]), "thread_id");
    let m = id_at(&a.ok(["post", &t, "We meet on Tuesdays"]), "entry_id");
    sync(a, b);
    let u = id_at(
        &b.ok(["understand", &m, "--as", "Meetings are every Tuesday"]),
        "entry_id",
    );
    let before = b.stored();
    // Only the author of the original can confirm an understanding of it, or correct it.
    b.fails(1, ["confirm", &u]);
    b.fails(1, ["correct", &m, "We meet on Mondays"]);
    b.fails(1, ["understand", &m, "--as", " "]);
    assert_eq!(b.stored(), before);
    sync(b, a);

    let show = a.show();
    let und = &entry(&show, &m)["understandings"][0];
    assert_eq!(und["entry_id"], u.as_str());
    assert_eq!(und["text"], "Meetings are every Tuesday");
    assert_eq!(und["author"]["member_id"], b.member_id.as_str());
    assert_eq!(und["confirmed"], false);

    id_at(&a.ok(["confirm", &u]), "entry_id");
    assert_eq!(entry(&a.show(), &m)["understandings"][0]["confirmed"], true);

    // Correcting: the usual view shows the correction; --all shows the original too.
    a.fails(1, ["correct", &m, ""]);
    let fix = id_at(
        &a.ok(["correct", &m, "We meet on Tuesdays at 10"]),
        "entry_id",
    );
    let show = a.show();
    let e = entry(&show, &m);
    assert_eq!(e["text"], "We meet on Tuesdays at 10");
    assert_eq!(e["corrected"], true);
    assert!(
        e["marks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "corrected")
    );
    assert_eq!(e["corrections"][0]["entry_id"], fix.as_str());
    assert_eq!(e["corrections"][0]["text"], "We meet on Tuesdays at 10");
    assert_eq!(e["entry_id"], m.as_str(), "the original keeps its id");
    let all = a.ok(["show", "--all"]);
    let e = entry(&all, &m);
    let text = serde_json::to_string(e).unwrap();
    assert!(text.contains("\"We meet on Tuesdays\""), "{e}");
    assert!(text.contains("We meet on Tuesdays at 10"), "{e}");
    assert_eq!(e["original_text"], "We meet on Tuesdays");
    // The plain (non --all) view does not show the original text.
    assert!(
        !serde_json::to_string(entry(&show, &m))
            .unwrap()
            .contains("\"We meet on Tuesdays\"")
    );

    // The author may also correct an understanding of their entry.
    id_at(
        &a.ok(["correct", &u, "Meetings are every Tuesday at 10"]),
        "entry_id",
    );
    let show = a.show();
    let und = &entry(&show, &m)["understandings"][0];
    assert_eq!(und["corrections"][0], "Meetings are every Tuesday at 10");

    sync(a, b);
    assert_eq!(b.show(), a.show());
}

// ----- actions -----

#[test]
fn actions_have_an_owner_a_due_date_and_can_be_done() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo"]);
    let (a, b) = (&homes[0], &homes[1]);
    let outsider = Home::init("Out");
    let t = id_at(&a.ok(["thread", "new", "Tasks"]), "thread_id");
    let x = id_at(
        &a.ok([
            "action",
            "add",
            &t,
            "Book the room",
            "--owner",
            &b.member_id,
            "--due",
            "2026-05-01",
        ]),
        "action_id",
    );
    let y = id_at(
        &a.ok([
            "action",
            "add",
            &t,
            "Write minutes",
            "--owner",
            &a.member_id,
        ]),
        "action_id",
    );
    let before = a.stored();
    for due in [
        "2026-13-01",
        "2026-02-32",
        "tomorrow",
        "26-05-01",
        "2026/05/01",
    ] {
        a.fails(
            1,
            [
                "action",
                "add",
                &t,
                "Bad date",
                "--owner",
                &b.member_id,
                "--due",
                due,
            ],
        );
    }
    a.fails(
        1,
        [
            "action",
            "add",
            &t,
            "Outsider",
            "--owner",
            &outsider.member_id,
        ],
    );
    a.fails(1, ["action", "add", &t, "", "--owner", &a.member_id]);
    a.fails(1, ["action", "done", &t]);
    assert_eq!(a.stored(), before);

    let show = a.show();
    let e = entry(&show, &x);
    assert_eq!(e["kind"], "action");
    assert_eq!(e["text"], "Book the room");
    assert_eq!(e["owner"]["member_id"], b.member_id.as_str());
    assert_eq!(e["owner"]["name"], "Bo");
    assert_eq!(e["due"], "2026-05-01");
    assert_eq!(e["done"], false);
    assert_eq!(entry(&show, &y)["due"], Value::Null);

    sync(a, b);
    id_at(&b.ok(["action", "done", &x]), "entry_id");
    // Bo is not the owner of y: his word is a suggestion, and y stays to do until Ana says so.
    id_at(&b.ok(["action", "done", &y]), "entry_id");
    sync(b, a);
    let show = a.show();
    assert_eq!(entry(&show, &x)["done"], true);
    assert_eq!(entry(&show, &x)["suggested_done_by"], json!([]));
    assert_eq!(entry(&show, &y)["done"], false);
    assert_eq!(
        entry(&show, &y)["suggested_done_by"][0]["name"],
        "Bo",
        "{show}"
    );
    let done_y = id_at(&a.ok(["action", "done", &y]), "entry_id");
    assert_eq!(entry(&a.show(), &y)["done"], true);
    // Only who said it is done takes it back; then it is open again.
    sync(a, b);
    let before = b.stored();
    let err = b.fails(1, ["action", "undo", &done_y]);
    assert!(err.contains("only the member who said"), "{err}");
    assert_eq!(b.stored(), before);
    a.fails(1, ["action", "undo", &x]);
    id_at(&a.ok(["action", "undo", &done_y]), "entry_id");
    assert_eq!(entry(&a.show(), &y)["done"], false);
}

// ----- heads and exchanging bundles -----

#[test]
fn heads_are_sorted_and_equal_for_the_same_entries() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo", "Cy"]);
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let t = id_at(&a.ok(["thread", "new", "Shared"]), "thread_id");
    sync(a, b);
    sync(a, c);
    let base = a.heads();
    assert_eq!(base, b.heads());
    assert_eq!(base, c.heads());
    assert_eq!(base, vec![t.clone()]);

    // Two homes writing at the same time, then exchanging bundles.
    let a1 = id_at(&a.ok(["post", &t, "from Ana"]), "entry_id");
    let b1 = id_at(&b.ok(["post", &t, "from Bo"]), "entry_id");
    let ba = a.export();
    let bb = b.export();
    b.import(&ba);
    a.import(&bb);
    let heads = a.heads();
    let mut want = vec![a1, b1];
    want.sort();
    assert_eq!(heads, want);
    assert_eq!(b.heads(), heads);
    assert_eq!(a.show(), b.show());

    // Three homes writing at the same time (Cy has seen none of the above), exchanging in
    // different orders, and three outsiders importing the three bundles in different orders.
    let a2 = id_at(&a.ok(["post", &t, "Ana again"]), "entry_id");
    let b2 = id_at(&b.ok(["post", &t, "Bo again"]), "entry_id");
    let p = id_at(
        &c.ok(["propose", &t, "From Cy", "--easy-read", "Cy asks"]),
        "proposal_id",
    );
    let c2 = id_at(&c.ok(["stance", &p, "agree"]), "entry_id");
    let (fa, fb, fc) = (a.export(), b.export(), c.export());
    let x = Home::init("X");
    let y = Home::init("Y");
    let z = Home::init("Z");
    for (h, order) in [
        (a, vec![&fc, &fb]),
        (b, vec![&fa, &fc]),
        (c, vec![&fb, &fa]),
        (&x, vec![&fa, &fb, &fc]),
        (&y, vec![&fc, &fa, &fb]),
        (&z, vec![&fb, &fc, &fa]),
    ] {
        for f in order {
            let v = h.import(f);
            assert_eq!(v["rejected"], 0, "{v}");
            assert_eq!(v["pending"], 0, "{v}");
        }
    }
    let mut want = vec![a2, b2, c2];
    want.sort();
    let heads = a.heads();
    assert_eq!(heads, want);
    let show = a.show();
    for h in [b, c, &x, &y, &z] {
        assert_eq!(h.heads(), heads);
    }
    assert_eq!(c.show(), show);
    assert_eq!(y.show(), show);
    // Importing again adds nothing.
    for f in [&fa, &fb, &fc] {
        let v = x.import(f);
        assert_eq!(v["imported"], 0, "{v}");
    }
    assert_eq!(x.heads(), heads);
}

#[test]
fn export_writes_every_entry_and_import_works_in_a_new_home() {
    let (a, g) = Home::with_group("Ana", "Board");
    let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
    for i in 0..3 {
        a.ok(["post", &t, &format!("message {i}")]);
    }
    let p = id_at(
        &a.ok(["propose", &t, "P", "--easy-read", "p"]),
        "proposal_id",
    );
    a.ok(["stance", &p, "agree"]);
    // genesis, the creator's encryption-key profile, thread, 3 messages, proposal, stance
    let n = 8;
    let file = a.path("all.bundle");
    let out = a.ok([
        std::ffi::OsStr::new("export"),
        "--bundle".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(out["entries"], n);
    let (bg, entries) = read_bundle(&file);
    assert_eq!(bg.to_string(), g);
    assert_eq!(entries.len(), n);

    // A home that does not know the group yet.
    let d = Home::init("Dee");
    assert_eq!(d.ok(["group", "list"])["groups"], json!([]));
    let v = d.import(&file);
    assert_eq!(v["imported"], n, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert_eq!(v["pending"], 0, "{v}");
    assert_eq!(d.ok(["group", "list"])["groups"][0]["group_id"], g.as_str());
    assert_eq!(d.heads(), a.heads());
    assert_eq!(d.show(), a.show());
    let again = d.import(&file);
    assert_eq!(again["imported"], 0, "{again}");

    // A file that cannot be read is an I/O error.
    let missing = d.path("no-such-file");
    d.cmd([std::ffi::OsStr::new("import"), missing.as_os_str()])
        .fails(2);
    // A bundle that cannot be written is an I/O error too.
    let nowhere = a.path("no-such-dir").join("out.bundle");
    a.cmd([
        std::ffi::OsStr::new("export"),
        "--bundle".as_ref(),
        nowhere.as_os_str(),
    ])
    .fails(2);
    // A bundle of another group, with --group given, is refused.
    let (other, og) = Home::with_group("Oz", "Elsewhere");
    let before = other.stored();
    let f = other
        .cmd([std::ffi::OsStr::new("import"), file.as_os_str()])
        .args(["--group", &og])
        .fails(1);
    assert!(f.stderr.contains("group"), "{}", f.stderr);
    assert_eq!(other.stored(), before);
}

#[test]
fn entries_waiting_for_missing_entries_are_pending_until_they_arrive() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
    sync(a, b);
    for i in 0..3 {
        a.ok(["post", &t, &format!("later {i}")]);
    }
    let full = a.export();
    let (group, entries) = read_bundle(&full);
    let n = entries.len();

    // A home that knows the group gets the last two new entries, not the one they build on.
    let tail = a.path("tail.bundle");
    write_bundle(&tail, &group, &entries[n - 2..]);
    let heads_before = b.heads();
    let v = b.import(&tail);
    assert_eq!(v["imported"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert_eq!(v["pending"], 2, "{v}");
    assert_eq!(b.show()["pending"], 2);
    assert_eq!(b.heads(), heads_before);
    let show = b.show();
    for e in &entries[n - 2..] {
        let id = entry_id(e);
        assert!(
            !serde_json::to_string(&show)
                .unwrap()
                .contains(&format!("\"entry_id\":\"{id}\"")),
            "a pending entry is shown as valid"
        );
    }
    let v = b.import(&full);
    assert_eq!(v["pending"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert_eq!(b.show()["pending"], 0);
    assert_eq!(b.heads(), a.heads());
    assert_eq!(b.show(), a.show());

    // A home that does not know the group is given everything but the first entries: without the
    // group's genesis it is refused and nothing is stored (issue 15). With the first entries, and
    // then the rest, it has the group.
    let e = Home::init("Eve");
    let k = 2;
    let late = a.path("late.bundle");
    let early = a.path("early.bundle");
    write_bundle(&late, &group, &entries[k..]);
    write_bundle(&early, &group, &entries[..k]);
    let refused = e
        .cmd([std::ffi::OsStr::new("import"), late.as_os_str()])
        .fails(1);
    assert!(refused.stderr.contains("genesis"), "{}", refused.stderr);
    assert_eq!(e.ok(["group", "list"])["groups"], serde_json::json!([]));
    let v = e.import(&early);
    assert_eq!(v["pending"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    let v = e.import(&late);
    assert_eq!(v["imported"], n - k, "{v}");
    assert_eq!(v["pending"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert_eq!(e.show()["pending"], 0);
    assert_eq!(e.heads(), a.heads());
    assert_eq!(e.show(), a.show());
}

/// Imports each of `files` into `home`, asserting exit 1 with a message saying what was wrong.
fn assert_all_refused(home: &Home, files: &[std::path::PathBuf]) {
    for f in files {
        let fail = home
            .cmd([std::ffi::OsStr::new("import"), f.as_os_str()])
            .fails(1);
        let err = fail.stderr.to_lowercase();
        assert!(
            [
                "damaged",
                "cut short",
                "not a roundtable bundle",
                "version",
                "cannot be read"
            ]
            .iter()
            .any(|w| err.contains(w)),
            "import of {} said: {}",
            f.display(),
            fail.stderr
        );
        assert!(fail.stdout.trim().is_empty(), "{}", fail.stdout);
    }
}

#[test]
fn damaged_or_truncated_bundles_are_refused_and_change_nothing() {
    let (homes, _g) = partnership("Board", &["Ana", "Bo"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
    a.ok(["post", &t, "known to Bo"]);
    sync(a, b);
    // Ana writes more, so a wrong import would change Bo's record.
    a.ok(["post", &t, "new to Bo"]);
    let p = id_at(
        &a.ok(["propose", &t, "P", "--easy-read", "p"]),
        "proposal_id",
    );
    a.ok(["stance", &p, "agree"]);
    let good = std::fs::read(a.export()).unwrap();
    let len = good.len();
    assert!(len > 200);

    // Positions: every header byte, every digest byte, and a stride through the entries.
    let mut positions: Vec<usize> = (0..64).collect();
    positions.extend((len - 40)..len);
    positions.extend((64..len - 40).step_by(((len - 104) / 60).max(1)));
    positions.sort();
    positions.dedup();
    let mut flipped = Vec::new();
    for (i, &pos) in positions.iter().enumerate() {
        let mut bad = good.clone();
        bad[pos] ^= if i % 2 == 0 { 0xff } else { 0x01 };
        let f = a.path(&format!("flip-{pos}.bundle"));
        std::fs::write(&f, &bad).unwrap();
        flipped.push(f);
    }
    let mut cuts: Vec<usize> = vec![
        0,
        1,
        7,
        8,
        9,
        40,
        41,
        48,
        49,
        50,
        80,
        len - 33,
        len - 32,
        len - 31,
        len - 1,
    ];
    cuts.extend((50..len).step_by((len / 40).max(1)));
    cuts.sort();
    cuts.dedup();
    let mut truncated = Vec::new();
    for &cut in &cuts {
        let f = a.path(&format!("cut-{cut}.bundle"));
        std::fs::write(&f, &good[..cut]).unwrap();
        truncated.push(f);
    }
    // Bytes appended after the digest are damage too.
    let mut longer = good.clone();
    longer.push(0);
    let f = a.path("longer.bundle");
    std::fs::write(&f, &longer).unwrap();
    truncated.push(f);

    let before = b.state();
    let all: Vec<_> = flipped.iter().chain(truncated.iter()).cloned().collect();
    // Spread the imports over copies of Bo's home, in parallel (each home is one database).
    let copies: Vec<Home> = (0..4).map(|_| b.copy()).collect();
    std::thread::scope(|s| {
        for (i, home) in copies.iter().enumerate() {
            let share: Vec<_> = all.iter().skip(i).step_by(copies.len()).cloned().collect();
            s.spawn(move || assert_all_refused(home, &share));
        }
        // Bo's own home gets a sample, and is checked in between.
        s.spawn(|| {
            assert_all_refused(b, &all[..3]);
            assert_eq!(b.state(), before);
            assert_all_refused(b, &all[all.len() - 3..]);
        });
    });
    assert_eq!(b.state(), before, "a refused bundle changed Bo's record");
    for c in &copies {
        assert_eq!(
            c.state(),
            before,
            "a refused bundle changed a copy of Bo's record"
        );
    }
    // A home that does not know the group yet stays without it.
    let fresh = Home::init("Fay");
    let sample: Vec<_> = all.iter().step_by(17).cloned().collect();
    assert_all_refused(&fresh, &sample);
    assert_eq!(fresh.ok(["group", "list"])["groups"], json!([]));

    // The undamaged bundle still imports.
    let f = a.path("good.bundle");
    std::fs::write(&f, &good).unwrap();
    b.import(&f);
    assert_eq!(b.heads(), a.heads());
}

#[test]
fn a_non_member_cannot_write() {
    let (a, _g) = Home::with_group("Ana", "Board");
    let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
    let m = id_at(&a.ok(["post", &t, "hello"]), "entry_id");
    let p = id_at(
        &a.ok(["propose", &t, "P", "--easy-read", "p"]),
        "proposal_id",
    );
    let d = Home::init("Dee");
    let v = sync(&a, &d);
    assert_eq!(v["rejected"], 0, "{v}");
    let before = d.state();
    let err = d.fails(1, ["post", &t, "let me in"]);
    assert!(err.contains("member"), "{err}");
    for c in [
        vec!["thread", "new", "Mine"],
        vec!["stance", &p, "agree"],
        vec!["understand", &m, "--as", "hi"],
        vec!["member", "add", &d.member_id, "--name", "Dee"],
        vec!["member", "leave"],
        vec!["close", &p, "--outcome", "x"],
        vec!["action", "add", &t, "x", "--owner", &a.member_id],
    ] {
        d.fails(1, c);
    }
    assert_eq!(d.state(), before, "a refused write was stored");
    // Nothing of Dee's travels back.
    let heads = a.heads();
    let v = sync(&d, &a);
    assert_eq!(v["imported"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert_eq!(a.heads(), heads);
}

#[test]
fn a_passphrase_protects_the_device_key() {
    const VAR: &str = "RT_TEST_PASSPHRASE";
    const PASS: &str = "correct horse battery staple";
    let h = Home::empty();
    let init = h.cmd(["init", "--name", "Ana"]).passphrase(VAR, PASS).run();
    let member = id_at(&init.json, "member_id");
    assert!(!init.stderr.contains("warning"), "{}", init.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.dir().join("device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Without the passphrase, or with a wrong one: exit 1, a clear message, nothing changed.
    let err = h.fails(1, ["id"]);
    assert!(err.contains("passphrase"), "{err}");
    let err = h.fails(1, ["group", "create", "Board"]);
    assert!(err.contains("passphrase"), "{err}");
    assert_eq!(h.ok(["group", "list"])["groups"], json!([]));
    let f = h.cmd(["id"]).passphrase(VAR, "wrong").fails(1);
    assert!(
        f.stderr.contains("passphrase") && f.stderr.contains("wrong"),
        "{}",
        f.stderr
    );

    // With it, everything works.
    let id = h.cmd(["id"]).passphrase(VAR, PASS).ok();
    assert_eq!(id["member_id"], member.as_str());
    id_at(
        &h.cmd(["group", "create", "Board"])
            .passphrase(VAR, PASS)
            .ok(),
        "group_id",
    );
    let t = id_at(
        &h.cmd(["thread", "new", "T"]).passphrase(VAR, PASS).ok(),
        "thread_id",
    );
    let before = h.state();
    let err = h.fails(1, ["post", &t, "no passphrase"]);
    assert!(err.contains("passphrase"), "{err}");
    h.cmd(["post", &t, "wrong passphrase"])
        .passphrase(VAR, "wrong")
        .fails(1);
    assert_eq!(h.state(), before);
    let m = id_at(
        &h.cmd(["post", &t, "right passphrase"])
            .passphrase(VAR, PASS)
            .ok(),
        "entry_id",
    );
    assert_eq!(entry(&h.show(), &m)["text"], "right passphrase");
    assert_id(&m);
    // The key file does not hold the secret in the clear: a copy of it alone cannot sign.
    let key = std::fs::read_to_string(h.dir().join("device.key")).unwrap();
    assert!(!key.contains(PASS));
}

// ----- a device restored from a copy (a fork) -----

/// Two copies of one home (a device restored from a backup) write different entries at the same
/// position of the device's sequence: a fork, which every device settles the same way (the entry
/// with the lower id wins). Returns `(a, a2, one, two)`: `a` wrote "one" then "three" on top of it,
/// `a2` wrote "two". With `a_loses`, retries until "two" has the lower id, so `a` must give up
/// entries it already applied (and rebuild); otherwise until "one" has the lower id.
fn forked_homes(a_loses: bool) -> (Home, Home, String, String) {
    for _ in 0..20 {
        let (a, _g) = Home::with_group("Ana", "Board");
        let t = id_at(&a.ok(["thread", "new", "T"]), "thread_id");
        let a2 = a.copy();
        let one = id_at(&a.ok(["post", &t, "one"]), "entry_id");
        let two = id_at(&a2.ok(["post", &t, "two"]), "entry_id");
        if (two < one) == a_loses {
            a.ok(["post", &t, "three"]);
            return (a, a2, one, two);
        }
    }
    panic!("could not make the fork wanted in 20 tries");
}

#[test]
fn copies_of_a_home_that_forked_converge() {
    for a_loses in [true, false] {
        let (a, a2, one, two) = forked_homes(a_loses);
        let fa = a.export();
        let fa2 = a2.export();
        // The side whose only new entry loses the fork took nothing: that import exits 1 (the
        // loser is kept as evidence); the other side's import takes the winner.
        for (h, f) in [(&a, &fa2), (&a2, &fa)] {
            let out = h
                .cmd([std::ffi::OsStr::new("import"), f.as_os_str()])
                .output();
            assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
        }
        assert_eq!(a.heads(), a2.heads());
        assert_eq!(a.show(), a2.show());
        let winner = if a_loses { &two } else { &one };
        let loser = if a_loses { &one } else { &two };
        let show = a.show();
        assert!(entry(&show, winner)["text"].is_string());
        let loser_quarantined = show["quarantined"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["entry_id"] == loser.as_str() && q["kind"] == "fork");
        assert!(loser_quarantined, "{show}");
        let x = Home::init("X");
        x.import(&fa2);
        // The second file's only new entry may be the fork's loser: then nothing is taken (exit 1).
        let out = x
            .cmd([std::ffi::OsStr::new("import"), fa.as_os_str()])
            .output();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
        assert_eq!(x.heads(), a.heads());
    }
}

#[test]
fn import_reports_only_new_entries_when_a_fork_forces_a_rebuild() {
    let (a, a2, _one, _two) = forked_homes(true);
    // a2's bundle holds genesis, profile and thread (which `a` holds) and "two" (which it does
    // not); "two" wins the fork, so `a` rebuilds its record.
    let fa2 = a2.export();
    let v = a.import(&fa2);
    assert_eq!(
        v["imported"], 1,
        "the home already held 3 of the 4 entries in the bundle: {v}"
    );
    assert_eq!(v["already_had"], 3, "{v}");
}

#[test]
fn json_output_is_one_document_even_for_words_heavy_commands() {
    let (a, _g) = Home::with_group("Ana", "Board");
    let t = id_at(&a.ok(["thread", "new", "Line one\nline two"]), "thread_id");
    a.ok(["post", &t, "text with \"quotes\" and\nnewlines"]);
    for args in [
        vec!["show"],
        vec!["show", "--all"],
        vec!["heads"],
        vec!["member", "list"],
        vec!["group", "list"],
        vec!["id"],
    ] {
        let o = a.cmd(&args).output();
        assert!(o.status.success());
        one_json(&o.stdout);
    }
}
