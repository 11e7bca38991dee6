//! Store figures for the issue notes: appending 10k entries (durable one by one, and as one batched
//! import), and opening a 100k-entry record. The ratio benchmarks proper live in the benchmark suite.
//!
//! Run: `cargo run --release --example figures [-- N_OPEN]` (default 100000).

use std::time::Instant;

use roundtable::core::{Body, Entry, Rule};
use roundtable::store::Home;

fn main() -> anyhow::Result<()> {
    let n_open: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir()?;

    // 10k durable appends, one transaction each.
    let (home, key) = Home::init(&tmp.path().join("a"), "Ana", None)?;
    let mut g = home.create_group(&key, "Board", Rule::Consent, 1, "Ana", "", 0)?;
    let thread = home.append(&mut g, &key, Body::Thread { title: "t".into() }, 1)?;
    let t = Instant::now();
    for i in 0..10_000 {
        home.append(
            &mut g,
            &key,
            Body::Message {
                thread,
                text: format!("message number {i}"),
            },
            i,
        )?;
        home.checkpoint(&mut g)?;
    }
    let append = t.elapsed();
    println!(
        "append 10000 durable one by one: {:.2} s ({:.0} us each)",
        append.as_secs_f64(),
        append.as_micros() as f64 / 1e4
    );

    // The same entries imported into a fresh home, committed in batches.
    let entries: Vec<Entry> = home
        .entries(&g.id())?
        .into_iter()
        .map(|s| s.entry)
        .collect();
    let (home_b, _) = Home::init(&tmp.path().join("b"), "Ben", None)?;
    let mut gb = home_b.open_or_new_group(&g.id())?;
    let t = Instant::now();
    let out = home_b.ingest(&mut gb, entries)?;
    home_b.checkpoint(&mut gb)?;
    println!(
        "import {} entries in batches of {}: {:.2} s",
        out.accepted.len(),
        roundtable::store::IMPORT_BATCH,
        t.elapsed().as_secs_f64()
    );

    // Open a record of n_open entries: sign them in memory, import them in batches, snapshot, reopen.
    let dir_c = tmp.path().join("c");
    let (home_c, key_c) = Home::init(&dir_c, "Cy", None)?;
    let (mut rec, genesis) =
        roundtable::core::Record::create(&key_c, "Big", Rule::Consent, 1, "Cy", "", 0)?;
    let (thread, first) = rec.author(&key_c, Body::Thread { title: "t".into() }, 1)?;
    let mut all = vec![genesis, first];
    for i in 2..n_open {
        all.push(
            rec.author(
                &key_c,
                Body::Message {
                    thread,
                    text: format!("message number {i}"),
                },
                i as i64,
            )?
            .1,
        );
    }
    let mut gc = home_c.open_or_new_group(&rec.group())?;
    let t = Instant::now();
    home_c.ingest(&mut gc, all)?;
    println!(
        "import {n_open} entries: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    home_c.snapshot(&mut gc)?;
    println!(
        "snapshot of {n_open} entries: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop((gc, home_c));
    let t = Instant::now();
    let home_c = Home::open(&dir_c)?;
    let gc = home_c.open_group(&rec.group())?;
    let open = t.elapsed();
    assert_eq!(gc.record.len(), n_open);
    println!(
        "open a {n_open}-entry record (Home::open + open_group): {:.3} s",
        open.as_secs_f64()
    );
    Ok(())
}
