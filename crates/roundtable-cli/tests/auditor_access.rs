//! An auditor's device, granted by a member, syncs the record over iroh (public entries and sealed
//! ciphertext, never keys), audits it, and can never write in it.

mod util;

use util::{Home, decide, id_at, partnership, serve_loopback};

#[test]
fn a_granted_auditor_syncs_reads_no_secrets_audits_and_cannot_write() {
    let (homes, g) = partnership("Board", &["Ana", "Ben"]);
    let (a, b) = (&homes[0], &homes[1]);
    let t = id_at(
        &a.ok([
            "thread",
            "new",
            "Contract",
            "--sealed",
            "--reader",
            &b.member_id,
            "--reason",
            "A contract under negotiation",
        ]),
        "thread_id",
    );
    a.ok(["post", &t, "The price is 40,000"]);
    let open = id_at(&a.ok(["thread", "new", "Housing"]), "thread_id");
    a.ok(["post", &open, "Visit on Tuesday"]);

    let inspector = Home::init("Council inspector");
    let stranger = Home::init("Stranger");
    // Not granted yet: refused before anything is sent.
    {
        let (_s, ticket) = serve_loopback(a.dir());
        let f = inspector.cmd(["sync", &ticket, "--timeout", "20"]).fails(1);
        assert!(f.stderr.contains("not a member"), "{}", f.stderr);
    }
    assert_eq!(
        inspector.ok(["group", "list"])["groups"],
        serde_json::json!([])
    );

    // One member alone cannot let an outsider in: Ana asks, and until Ben agrees it stays refused.
    let asked = a.ok([
        "auditor",
        "add",
        &inspector.member_id,
        "--name",
        "Council inspector",
    ]);
    let p = id_at(&asked, "proposal_id");
    assert!(asked.get("outcome_id").is_none(), "{asked}");
    {
        let (_s, ticket) = serve_loopback(a.dir());
        let f = inspector.cmd(["sync", &ticket, "--timeout", "20"]).fails(1);
        assert!(f.stderr.contains("not a member"), "{}", f.stderr);
    }
    let f = a.fails(1, ["close", &p, "--outcome", "Ana decides alone"]);
    assert!(f.contains("1 more is needed"), "{f}");
    let closed = decide(a, &[b], &p);
    assert_eq!(closed["decision"], "passed", "{closed}");
    {
        let (_s, ticket) = serve_loopback(a.dir());
        inspector.cmd(["sync", &ticket, "--timeout", "20"]).ok();
        let f = stranger.cmd(["sync", &ticket, "--timeout", "20"]).fails(1);
        assert!(f.stderr.contains("not a member"), "{}", f.stderr);
    }
    assert_eq!(inspector.heads(), a.heads());
    // The public record, and the sealed thread's public facts only.
    let shown = inspector.ok(["show", &t]);
    assert_eq!(shown["readable"], false, "{shown}");
    assert_eq!(shown["entries"], 1);
    assert!(!shown.to_string().contains("40,000"), "{shown}");
    assert!(inspector.show().to_string().contains("Visit on Tuesday"));
    // It holds no key of the thread: nothing in its home opens the sealed message.
    let stored = String::from_utf8_lossy(&inspector.stored()).to_string();
    assert!(!stored.contains("40,000"));

    // It audits what it received.
    let bundle = inspector.export();
    let report = inspector.ok([std::ffi::OsStr::new("audit"), bundle.as_os_str()]);
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["group_id"], g.as_str());
    assert_eq!(
        report["auditors"][0]["device_id"],
        inspector.member_id.as_str(),
        "{report}"
    );
    assert_eq!(
        report["sealed_threads"][0]["reason"],
        "A contract under negotiation"
    );

    // It can never write: its own commands are refused, and nothing it signs is accepted.
    let before = inspector.heads();
    let err = inspector.fails(1, ["post", &open, "I was here"]);
    assert!(err.contains("not a member"), "{err}");
    assert_eq!(inspector.heads(), before);
}
