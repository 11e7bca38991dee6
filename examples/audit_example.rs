//! The auditor's worked example: a small partnership board with a bit of everything an auditor
//! looks at, made with fixed keys and fixed timestamps, and the report `roundtable audit` gives for it.
//!
//! ```text
//! cargo run --example audit_example               # writes the three files below
//! cargo run --example audit_example -- --reports  # keeps the bundle, rewrites the two reports from it
//! ```
//!
//! It writes `tests/data/audit-example.bundle`, `tests/data/audit-example.json` (what
//! `roundtable audit --json` prints, pretty-printed) and `tests/data/audit-example.html` (what
//! `--report` writes). `crates/roundtable-audit/tests/audit.rs` checks that the bundle still audits
//! to exactly that report.
//!
//! The keys and timestamps are fixed, but the sealed thread's keys and nonces are random (as they must
//! be), so a new run makes a different bundle: after changing only the report, use `--reports`.
//!
//! What is in it: four members (Ana starts the group; Ben, Chloe and Dev join, each by a proposal
//! everyone already in agrees to; each publishes an encryption key), a thread with three messages, a
//! proposal by Chloe with four stances (Ana's with a reason), an understanding check by Dev that
//! Chloe confirms, the proposal closed as passed, a sealed thread with two readers (Ana and Ben) and
//! one sealed message by each, and an auditor the group lets in on Ben's proposal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use roundtable::core::body::Body;
use roundtable::core::bundle;
use roundtable::core::{DeviceKey, Entry, EntryId, Record, Rule, StanceKind};
use roundtable_seal::{EncSecret, Keyring, thread};

/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch: the genesis's timestamp.
pub const T0_MS: i64 = 1_767_225_600_000;

/// The members' signing keys: 32 bytes of 0x01 (Ana) to 0x04 (Dev). Never use a fixed key for real.
pub const MEMBERS: [(&str, u8); 4] = [("Ana", 1), ("Ben", 2), ("Chloe", 3), ("Dev", 4)];
/// The auditor's device key: 32 bytes of 0x0a.
pub const AUDITOR: u8 = 0x0a;

/// A member's encryption secret: 32 bytes of 0x11 (Ana) to 0x14 (Dev).
fn enc_secret(n: u8) -> EncSecret {
    EncSecret::from_bytes(&[0x10 + n; 32])
}

struct Writer {
    record: Record,
    entries: HashMap<EntryId, Entry>,
    minute: i64,
}

impl Writer {
    fn now(&mut self) -> i64 {
        self.minute += 1;
        T0_MS + self.minute * 60_000
    }

    fn write(&mut self, key: &DeviceKey, body: Body) -> EntryId {
        let t = self.now();
        let (id, entry) = self
            .record
            .author(key, body, t)
            .unwrap_or_else(|e| panic!("the example wrote something the rules refuse: {e}"));
        self.entries.insert(id, entry);
        id
    }
}

/// Builds the example group; returns its bundle, entries in causal order.
pub fn build() -> Vec<u8> {
    let keys: Vec<DeviceKey> = MEMBERS
        .iter()
        .map(|(_, n)| DeviceKey::from_secret(&[*n; 32]))
        .collect();
    let [ana, ben, chloe, dev] = [&keys[0], &keys[1], &keys[2], &keys[3]];
    let (record, genesis) = Record::create(
        ana,
        "Riverside Partnership Board",
        Rule::Consent,
        2,
        "Ana",
        "large print",
        T0_MS,
    )
    .expect("genesis");
    let mut w = Writer {
        entries: HashMap::from([(record.group(), genesis)]),
        record,
        minute: 0,
    };

    // Membership by the group's agreement, and each member's public encryption key.
    let newcomers: Vec<(&DeviceKey, &str, &str)> = keys
        .iter()
        .zip(MEMBERS)
        .skip(1)
        .map(|(k, (name, _))| (k, name, if name == "Dev" { "easy read" } else { "" }))
        .collect();
    let group = w.record.group();
    roundtable::core::governance::add_members(group, 2, ana, &newcomers, |k, body| {
        Ok::<_, std::convert::Infallible>(w.write(k, body))
    })
    .expect("the members join");
    for (k, (_, n)) in keys.iter().zip(MEMBERS) {
        let enc_key = enc_secret(n).public().expect("encryption key");
        w.write(k, Body::Profile { enc_key });
    }

    // A thread with three messages.
    let housing = w.write(
        ben,
        Body::Thread {
            title: "Housing".into(),
        },
    );
    for (k, text) in [
        (ana, "The waiting list has grown again this year."),
        (
            chloe,
            "We could ask the council for the empty flats on Mill Lane.",
        ),
        (dev, "Please keep it short and in easy read."),
    ] {
        w.write(
            k,
            Body::Message {
                thread: housing,
                text: text.into(),
            },
        );
    }

    // A proposal, an understanding check its author confirms, four stances, and the outcome.
    let proposal = w.write(
        chloe,
        Body::Proposal {
            thread: housing,
            title: "Ask the council for the Mill Lane flats".into(),
            text: "The board writes to the council to ask for the six empty flats on Mill Lane \
                   to be let to people on our waiting list."
                .into(),
            easy_read: "We ask the council for the empty flats on Mill Lane.".into(),
            rule: Rule::Consent,
            quorum: 3,
            effect: None,
            closes: None,
        },
    );
    let understood = w.write(
        dev,
        Body::Understand {
            target: proposal,
            text: "We write one letter to the council about the Mill Lane flats.".into(),
        },
    );
    w.write(chloe, Body::Confirm { target: understood });
    for (k, stance, reason) in [
        (
            ana,
            StanceKind::Agree,
            "It is the quickest way to help people now.",
        ),
        (ben, StanceKind::Agree, ""),
        (chloe, StanceKind::Agree, ""),
        (dev, StanceKind::Abstain, ""),
    ] {
        w.write(
            k,
            Body::Stance {
                proposal,
                stance,
                reason: reason.into(),
                on_behalf: None,
            },
        );
    }
    let (counts, decision) = w.record.recount_now(&proposal);
    w.write(
        chloe,
        Body::Outcome {
            proposal,
            outcome: "Chloe writes the letter this week.".into(),
            decision,
            counts,
        },
    );

    // A sealed thread: Ana and Ben can read it; everyone can see that it exists and why.
    let body = thread::start(
        &w.record,
        "A tenant's complaint",
        "It names a tenant, who asked that only the two caseworkers read it",
        &[ana.device_id(), ben.device_id()],
    )
    .expect("start the sealed thread");
    let sealed = w.write(ana, body);
    for (k, n, text) in [
        (
            ana,
            1u8,
            "The tenant has asked us to keep this between the two of us.",
        ),
        (ben, 2u8, "Agreed. I will call them on Monday."),
    ] {
        let secret = enc_secret(n);
        let mut ring = Keyring::new(k.device_id(), &secret);
        let t = w.now();
        let body = thread::message(&w.record, &mut ring, &sealed, &k.device_id(), text, t)
            .expect("seal the message");
        w.write(k, body);
    }

    // The council's inspector may sync the record (and never write): Ben asks, the group agrees.
    let effect = roundtable::core::Effect::Auditor {
        device: DeviceKey::from_secret(&[AUDITOR; 32]).device_id(),
        name: "Council inspector".into(),
    };
    let ask = roundtable::core::governance::group_proposal(&w.record, effect, "Council inspector")
        .expect("the group is known");
    let ask = w.write(ben, ask);
    for k in [ben, ana, chloe] {
        w.write(
            k,
            Body::Stance {
                proposal: ask,
                stance: StanceKind::Agree,
                reason: String::new(),
                on_behalf: None,
            },
        );
    }
    let (counts, decision) = w.record.recount_now(&ask);
    w.write(
        ben,
        Body::Outcome {
            proposal: ask,
            outcome: "The inspector can check our record.".into(),
            decision,
            counts,
        },
    );
    assert_eq!(w.record.auditors().len(), 1);

    let entries: Vec<Entry> = w
        .record
        .causal_order()
        .iter()
        .map(|id| w.entries[id].clone())
        .collect();
    assert_eq!(entries.len(), w.entries.len());
    bundle::encode(&w.record.group(), &entries)
}

/// The `--json` report (pretty-printed) and the HTML report of a bundle.
pub fn reports(bundle: &[u8]) -> (String, String) {
    let report = roundtable_audit::audit(bundle, 1).expect("the example bundle is readable");
    assert!(
        report.verified,
        "the example must verify: {:?}",
        report.problems
    );
    let json = serde_json::to_string_pretty(&report).expect("json") + "\n";
    let html = roundtable_audit::render_html(&report).expect("html");
    (json, html)
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn main() {
    let dir = data_dir();
    let bundle_path = dir.join("audit-example.bundle");
    let bundle = match std::env::args().nth(1).as_deref() {
        Some("--reports") => std::fs::read(&bundle_path).expect("read the example bundle"),
        Some(other) => panic!("unknown argument {other:?} (the only one is --reports)"),
        None => {
            let b = build();
            std::fs::write(&bundle_path, &b).expect("write the bundle");
            println!("wrote {} ({} bytes)", bundle_path.display(), b.len());
            b
        }
    };
    let (json, html) = reports(&bundle);
    for (name, text) in [("audit-example.json", json), ("audit-example.html", html)] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a report");
        println!("wrote {}", path.display());
    }
}
