//! An offline meeting, start to end, on three real device homes (redb files in a temporary folder).
//!
//! Ana starts the group; Ben joins (Ana, still alone, agrees), then Cara joins once Ana and Ben both
//! agree: nobody is let in by one member alone. The three write while apart, pass bundles to each
//! other (as they would on a memory stick in a room without internet), reach the same record, decide
//! a proposal together, and check that every device counted the same result.
//!
//! Run: `cargo run --release --example offline_meeting`

use std::time::Instant;

use roundtable::core::{
    Body, DeviceKey, Effect, Entry, EntryId, GroupId, Rule, StanceKind, bundle,
};
use roundtable::store::{Group, Home, Proposed};

struct Device {
    name: &'static str,
    home: Home,
    key: DeviceKey,
    group: Option<Group>,
}

impl Device {
    fn new(dir: &std::path::Path, name: &'static str) -> anyhow::Result<Device> {
        let (home, key) = Home::init(&dir.join(name), name, None)?;
        Ok(Device {
            name,
            home,
            key,
            group: None,
        })
    }

    fn group(&mut self) -> &mut Group {
        self.group.as_mut().expect("the device holds the group")
    }

    /// Asks the group for a change to itself, with this member's agree.
    fn propose(&mut self, effect: Effect) -> anyhow::Result<Proposed> {
        let g = self.group.as_mut().expect("the device holds the group");
        let name = match &effect {
            Effect::Add { name, .. } => name.clone(),
            _ => String::new(),
        };
        Ok(self
            .home
            .propose_change(g, &self.key, effect, &name, now_ms())?)
    }

    fn write(&mut self, body: Body) -> anyhow::Result<EntryId> {
        let g = self.group.as_mut().expect("the device holds the group");
        Ok(self.home.append(g, &self.key, body, now_ms())?)
    }

    /// Everything this device holds, as a bundle file's bytes.
    fn bundle(&mut self) -> anyhow::Result<Vec<u8>> {
        let id = self.group().id();
        let entries: Vec<Entry> = self
            .home
            .entries(&id)?
            .into_iter()
            .map(|s| s.entry)
            .collect();
        Ok(bundle::encode(&id, &entries))
    }

    /// Reads a bundle from another device: every entry is checked before it is stored.
    fn import(&mut self, bytes: &[u8], from: &str) -> anyhow::Result<()> {
        let (gid, entries): (GroupId, Vec<Entry>) = bundle::decode(bytes)?;
        if self.group.is_none() {
            self.group = Some(self.home.open_or_new_group(&gid)?);
        }
        let g = self.group.as_mut().expect("just set");
        let out = self.home.ingest(g, entries)?;
        println!(
            "  {} reads {}'s bundle: {} new entries, {} rejected, {} waiting.",
            self.name,
            from,
            out.accepted.len(),
            out.rejected.len(),
            out.pending.len()
        );
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let mut ana = Device::new(tmp.path(), "Ana")?;
    let mut ben = Device::new(tmp.path(), "Ben")?;
    let mut cara = Device::new(tmp.path(), "Cara")?;

    println!(
        "1. Ana starts the group \"Housing Partnership Board\"; the group lets in Ben, then Cara."
    );
    ana.group = Some(ana.home.create_group(
        &ana.key,
        "Housing Partnership Board",
        Rule::Consent,
        3,
        "Ana",
        "large print",
        now_ms(),
    )?);
    let ben_id = ben.key.device_id();
    let cara_id = cara.key.device_id();
    // While Ana is the only member, her own agree decides: this is how a group is founded.
    let joined = ana.propose(Effect::Add {
        member: ben_id,
        name: "Ben".into(),
        needs: "easy read, extra time".into(),
    })?;
    assert!(
        joined.outcome.is_some(),
        "the founder alone decides while alone"
    );
    println!("  Ben is in: Ana was the only member, and she agreed.");
    // Now there are two: Cara joins only when Ben agrees too.
    let asked = ana.propose(Effect::Add {
        member: cara_id,
        name: "Cara".into(),
        needs: "read aloud".into(),
    })?;
    assert!(
        asked.outcome.is_none(),
        "one member cannot let Cara in alone"
    );
    let to_ben = ana.bundle()?;
    ben.import(&to_ben, "Ana")?;
    ben.write(Body::Stance {
        proposal: asked.proposal,
        stance: StanceKind::Agree,
        reason: String::new(),
        on_behalf: None,
    })?;
    let from_ben = ben.bundle()?;
    ana.import(&from_ben, "Ben")?;
    let t = ana
        .group()
        .record
        .tally_now(&asked.proposal)
        .expect("the proposal is known");
    ana.write(Body::Outcome {
        proposal: asked.proposal,
        outcome: "Cara joins".into(),
        decision: t.decision,
        counts: t.counts,
    })?;
    assert!(ana.group().record.governance().active(&cara_id));
    println!("  Cara is in: Ana and Ben both agreed.");
    let thread = ana.write(Body::Thread {
        title: "New flats on Mill Lane".into(),
    })?;
    let first = ana.bundle()?;
    ben.import(&first, "Ana")?;
    cara.import(&first, "Ana")?;

    println!("2. Apart, with no connection, each of them writes.");
    let ana_msg = ana.write(Body::Message {
        thread,
        text: "The council wants our views on the new flats.".into(),
    })?;
    ben.write(Body::Message {
        thread,
        text: "I would like a visit before we decide.".into(),
    })?;
    let proposal = cara.write(Body::Proposal {
        thread,
        title: "Visit the flats together".into(),
        text: "The board visits the Mill Lane flats before giving its view to the council.".into(),
        easy_read: "We all go and see the flats first. Then we say what we think.".into(),
        rule: Rule::Consent,
        quorum: 3,
        effect: None,
        closes: None,
    })?;

    println!("3. They meet and swap bundles.");
    let (a, b, c) = (ana.bundle()?, ben.bundle()?, cara.bundle()?);
    ana.import(&b, "Ben")?;
    ana.import(&c, "Cara")?;
    ben.import(&a, "Ana")?;
    ben.import(&c, "Cara")?;
    cara.import(&a, "Ana")?;
    cara.import(&b, "Ben")?;

    println!("4. Ben checks he understood Ana, and Ana confirms. Everyone gives a stance.");
    let check = ben.write(Body::Understand {
        target: ana_msg,
        text: "The council is asking us what we think.".into(),
    })?;
    ben.write(Body::Stance {
        proposal,
        stance: StanceKind::Agree,
        reason: String::new(),
        on_behalf: None,
    })?;
    cara.write(Body::Stance {
        proposal,
        stance: StanceKind::Agree,
        reason: String::new(),
        on_behalf: None,
    })?;
    ana.write(Body::Stance {
        proposal,
        stance: StanceKind::Disagree,
        reason: "The visit must have step-free access.".into(),
        on_behalf: None,
    })?;
    let (b, c) = (ben.bundle()?, cara.bundle()?);
    ana.import(&b, "Ben")?;
    ana.import(&c, "Cara")?;
    ana.write(Body::Confirm { target: check })?;

    println!("5. Ana closes the proposal; the devices recount it from the stances.");
    let (counts, decision) = ana.group().record.recount_now(&proposal);
    ana.write(Body::Outcome {
        proposal,
        outcome: "We visit in two weeks, with step-free access.".into(),
        decision,
        counts,
    })?;
    let a = ana.bundle()?;
    ben.import(&a, "Ana")?;
    cara.import(&a, "Ana")?;

    println!("\nWhat happened:");
    let heads: Vec<Vec<EntryId>> = [&mut ana, &mut ben, &mut cara]
        .into_iter()
        .map(|d| d.group().record.heads())
        .collect();
    let same = heads.iter().all(|h| *h == heads[0]);
    let len = ana.group().record.len();
    println!(
        "- All three devices hold the same {len} entries: {}.",
        if same {
            "yes, their records match"
        } else {
            "NO, they differ"
        }
    );
    for d in [&mut ana, &mut ben, &mut cara] {
        let name = d.name;
        let (_, decision) = d.group().record.outcome(&proposal).expect("closed");
        println!(
            "- {name}'s device says the proposal {}.",
            if decision.as_str() == "passed" {
                "passed"
            } else {
                "did not pass"
            }
        );
    }
    println!(
        "- The count: {} agree, {} not sure, {} disagree, {} block. Nobody blocked, so under consent it {}.",
        counts.agree,
        counts.abstain,
        counts.disagree,
        counts.block,
        if decision.as_str() == "passed" {
            "passed"
        } else {
            "did not pass"
        }
    );
    println!("- Ana's reason for disagreeing is kept with her stance, for everyone to see.");
    println!("- Every entry is signed by its author's device; no device is in charge.");
    println!(
        "Done in {:.0} ms.",
        started.elapsed().as_secs_f64() * 1000.0
    );
    anyhow::ensure!(same, "the devices did not converge");
    Ok(())
}
