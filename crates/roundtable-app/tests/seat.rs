//! The application layer on a real home: each action writes what it says, and each refusal writes
//! nothing and names its case.

use roundtable_app::{AppError, Draft, Seat, init, unlock};
use roundtable_core::{Body, EntryId, Rule, StanceKind};

fn home() -> (tempfile::TempDir, roundtable_store::Home) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (home, _) = init(&dir.path().join("h"), "Ana", "large print", None).expect("init");
    (dir, home)
}

#[test]
fn a_member_starts_a_group_talks_proposes_and_closes() {
    let (_d, home) = home();
    let (key, enc) = unlock(&home, None).expect("unlock");
    let seat = Seat::new(&home, &key, Some(&enc));
    let mut g = seat.create_group("Board", Rule::Consent, 1).expect("group");
    let me = g.record.members();
    assert_eq!(me.len(), 1);
    assert_eq!(
        (me[0].name.as_str(), me[0].needs.as_str()),
        ("Ana", "large print")
    );
    // The device's encryption key is published with the group, so others can make Ana a reader.
    assert!(g.record.profile_key(&seat.member()).is_some());

    let t = seat.new_thread(&mut g, "Meetings").expect("thread");
    let m = seat.post(&mut g, t, "Ground floor, please").expect("post");
    assert!(matches!(
        g.record.entry(&m).map(|(_, x)| &x.body),
        Some(Body::Message { .. })
    ));
    let p = seat
        .propose(
            &mut g,
            Draft {
                thread: t,
                title: "Meet downstairs".into(),
                easy_read: "We meet on the ground floor.".into(),
                text: String::new(),
                rule: None,
                quorum: None,
                effect: None,
                closes: None,
            },
        )
        .expect("proposal");
    seat.stance(&mut g, p, StanceKind::Agree, "", None)
        .expect("stance");
    let (_, tally) = seat.close(&mut g, p, "We meet downstairs").expect("close");
    assert_eq!(tally.counts.agree, 1);
    assert!(g.record.outcome(&p).is_some());

    let sealed = seat
        .new_sealed_thread(&mut g, "Health", "It is about one member's health", &[])
        .expect("sealed thread");
    let s = seat
        .post(&mut g, sealed, "Only readers read this")
        .expect("sealed post");
    assert!(matches!(
        g.record.entry(&s).map(|(_, x)| &x.body),
        Some(Body::Sealed { .. })
    ));
}

#[test]
fn refusals_write_nothing_and_name_their_case() {
    let (_d, home) = home();
    let (key, enc) = unlock(&home, None).expect("unlock");
    let seat = Seat::new(&home, &key, Some(&enc));
    let mut g = seat.create_group("Board", Rule::Consent, 1).expect("group");
    let t = seat.new_thread(&mut g, "Meetings").expect("thread");
    let before = g.record.len();
    let missing = EntryId([7; 32]);

    let cases: Vec<(AppError, &str)> = vec![
        (seat.new_thread(&mut g, "  ").unwrap_err(), "missing"),
        (seat.post(&mut g, t, "").unwrap_err(), "missing"),
        (
            seat.stance(&mut g, t, StanceKind::Disagree, " ", None)
                .unwrap_err(),
            "reason_needed",
        ),
        (
            seat.close(&mut g, missing, "done").unwrap_err(),
            "not_found",
        ),
        (seat.ask_to_read(&mut g, t, "why").unwrap_err(), "not_found"),
        (
            seat.confirm(&mut g, missing).unwrap_err(),
            "unknown_referent",
        ),
    ];
    for (e, kind) in &cases {
        assert_eq!(e.kind(), *kind, "{e}");
        assert!(e.is_refusal(), "{e}");
        assert!(
            !e.to_string().contains("--"),
            "no flag in a library message: {e}"
        );
    }
    assert_eq!(g.record.len(), before, "a refusal wrote something");

    // Without the key for sealed threads, a sealed thread can be neither started nor written.
    let locked = Seat::new(&home, &key, None);
    let e = locked
        .new_sealed_thread(&mut g, "Health", "why", &[])
        .unwrap_err();
    assert_eq!(e.kind(), "sealed_locked");
    assert_eq!(g.record.len(), before);
}
