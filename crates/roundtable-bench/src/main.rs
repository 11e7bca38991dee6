//! `roundtable-bench [--quick]`: prints one line per ratio, `NAME ratio=X target=Y met=true|false`,
//! then a summary. Both sides of a ratio run in this process on the same data, interleaved, and each
//! side's figure is the median of at least five repetitions. `--quick` divides the sizes by ten.
//!
//! Ratios: R1, R1d, R2, R3, R4, R5, R6, R8, R9 (see docs/performance.md). Then A1M, the audit at
//! scale (`A1M secs=S threads=2 rss_mb=M met=... entries=N`): 1,000,000 entries, 100,000 with
//! `--quick`, `--audit-entries N` for another size; `--r2-entries N` sets R2's size.

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};
use ed25519_dalek::{Signer, SigningKey};
use redb::{Database, Durability, TableDefinition};
use roundtable_core::{Body, DeviceKey, Record, Rule};
use roundtable_store::Home;

/// Repetitions of each side; `--reps N` lowers it only for one-off large runs (the 1M audit figure).
static REPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(5);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Ratio {
    name: &'static str,
    ratio: f64,
    target: f64,
    /// true: the ratio must be at most the target; false: at least.
    at_most: bool,
    detail: String,
}

impl Ratio {
    fn met(&self) -> bool {
        if self.at_most {
            self.ratio <= self.target
        } else {
            self.ratio >= self.target
        }
    }
}

/// Runs `a` and `b` alternately `REPS` times; returns their medians.
fn interleaved(
    mut a: impl FnMut() -> anyhow::Result<Duration>,
    mut b: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<(Duration, Duration)> {
    let (mut ta, mut tb) = (vec![], vec![]);
    for _ in 0..REPS.load(std::sync::atomic::Ordering::Relaxed) {
        ta.push(a()?);
        tb.push(b()?);
    }
    Ok((median(ta), median(tb)))
}

fn text(i: usize) -> String {
    format!("Message number {i}: the board agreed to visit the flats together next week.")
}

/// The bench's message `i` in `thread`.
fn message(thread: roundtable_core::EntryId, i: usize) -> Body {
    Body::Message {
        thread,
        text: text(i),
    }
}

/// R1: signed append without fsync (the engine: build, judge, sign, index) against a raw Automerge
/// commit of the same fields plus an ed25519 signature over the change.
fn r1(n: usize) -> anyhow::Result<Ratio> {
    let ours = || sign_and_judge(n);
    let raw = || -> anyhow::Result<Duration> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut doc =
            Automerge::new().with_actor(ActorId::from(key.verifying_key().to_bytes().as_slice()));
        let mut tx = doc.transaction();
        let messages = tx.put_object(ROOT, "messages", ObjType::Map)?;
        tx.commit();
        let thread = "0".repeat(64);
        let t = Instant::now();
        for i in 0..n {
            let mut tx = doc.transaction();
            let m = tx.put_object(&messages, format!("{i}"), ObjType::Map)?;
            tx.put(&m, "type", "message")?;
            tx.put(&m, "thread", thread.as_str())?;
            tx.put(&m, "text", text(i))?;
            let (hash, _) = tx.commit();
            let hash = hash.ok_or_else(|| anyhow::anyhow!("empty change"))?;
            let change = doc
                .get_change_by_hash(&hash)
                .ok_or_else(|| anyhow::anyhow!("no change"))?;
            let _sig = key.sign(change.raw_bytes());
        }
        Ok(t.elapsed())
    };
    let (a, b) = interleaved(ours, raw)?;
    Ok(Ratio {
        name: "R1_signed_append_no_fsync",
        ratio: a.as_secs_f64() / b.as_secs_f64(),
        target: 1.15,
        at_most: true,
        detail: format!(
            "{n} appends: engine {:.1} us each, raw Automerge+sign {:.1} us each",
            us(a, n),
            us(b, n)
        ),
    })
}

fn us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

/// The engine's work for `n` appends with no disk: build, judge and sign each entry in a record.
fn sign_and_judge(n: usize) -> anyhow::Result<Duration> {
    let key = DeviceKey::generate()?;
    let (mut rec, _) = Record::create(&key, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
    let (thread, _) = rec.author(&key, Body::Thread { title: "t".into() }, 1)?;
    let t = Instant::now();
    for i in 0..n {
        rec.author(&key, message(thread, i), i as i64)?;
    }
    // The engine defers Automerge's apply to one batch; include it so both sides end with a document.
    rec.doc()?;
    Ok(t.elapsed())
}

/// R1d: durable appends (one committed transaction each) against raw redb durable single commits of
/// the same entry bytes. Throughput ratio, so higher is better. The detail adds the bound measured
/// in the same run: an append signs and judges (no disk) and then commits two rows (the entry by id,
/// its place in the log) in one durable transaction; raw redb doing only the latter sets a ceiling.
fn r1d(n: usize) -> anyhow::Result<Ratio> {
    const RAW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raw");
    const RAW_LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raw_log");
    let tmp = tempfile::tempdir()?;
    let mut round = 0;
    let mut bytes: Vec<(roundtable_core::EntryId, Vec<u8>)> = vec![];
    let mut ours =
        |keep: &mut Vec<(roundtable_core::EntryId, Vec<u8>)>| -> anyhow::Result<Duration> {
            round += 1;
            let (home, key) = Home::init(&tmp.path().join(format!("ours{round}")), "Ana", None)?;
            let mut g = home.create_group(&key, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
            let thread = home.append(&mut g, &key, Body::Thread { title: "t".into() }, 1)?;
            let t = Instant::now();
            for i in 0..n {
                home.append(&mut g, &key, message(thread, i), i as i64)?;
            }
            let d = t.elapsed();
            if keep.is_empty() {
                *keep = home
                    .entries(&g.id())?
                    .into_iter()
                    .skip(2)
                    .map(|s| (s.id, s.entry.encode()))
                    .collect();
            }
            Ok(d)
        };
    // A first, untimed run produces the entry bytes the raw side commits.
    ours(&mut bytes)?;
    let mut raw_round = 0;
    let mut raw = || -> anyhow::Result<Duration> {
        raw_round += 1;
        let db = Database::create(tmp.path().join(format!("raw{raw_round}.redb")))?;
        let t = Instant::now();
        for (i, (_, b)) in bytes.iter().enumerate() {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            tx.open_table(RAW)?
                .insert((i as u64).to_be_bytes().as_slice(), b.as_slice())?;
            tx.commit()?;
        }
        Ok(t.elapsed())
    };
    // The two rows an append commits, keyed as the store keys them (group and id; group and place).
    let mut rows_round = 0;
    let two_rows = || -> anyhow::Result<Duration> {
        rows_round += 1;
        let db = Database::create(tmp.path().join(format!("rows{rows_round}.redb")))?;
        let t = Instant::now();
        for (i, (id, b)) in bytes.iter().enumerate() {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            let mut k = [7u8; 64];
            k[32..].copy_from_slice(id.as_bytes());
            tx.open_table(RAW)?.insert(k.as_slice(), b.as_slice())?;
            let mut place = [7u8; 40];
            place[32..].copy_from_slice(&(i as u64).to_be_bytes());
            tx.open_table(RAW_LOG)?
                .insert(place.as_slice(), id.as_bytes().as_slice())?;
            tx.commit()?;
        }
        Ok(t.elapsed())
    };
    let mut sink = vec![(roundtable_core::EntryId::from_bytes([0; 32]), vec![0u8])];
    // What each side asks the disk to write (Linux `/proc/self/io`), one extra run each.
    let w0 = written()?;
    ours(&mut sink)?;
    let w1 = written()?;
    raw()?;
    let w2 = written()?;
    let (a, b) = interleaved(|| ours(&mut sink), &mut raw)?;
    let (rows, work) = interleaved(two_rows, || sign_and_judge(n))?;
    Ok(Ratio {
        name: "R1d_durable_append_throughput",
        ratio: b.as_secs_f64() / a.as_secs_f64(),
        target: 0.85,
        at_most: false,
        detail: format!(
            "{n} durable appends: engine {:.0} us each, raw redb commit {:.0} us each; written to disk {:.1} KiB vs {:.1} KiB per append; bound in this run: signing and judging {:.0} us + raw redb committing the entry's two rows {:.0} us, so R1d <= {:.3}",
            us(a, n),
            us(b, n),
            (w1 - w0) as f64 / 1024.0 / n as f64,
            (w2 - w1) as f64 / 1024.0 / n as f64,
            us(work, n),
            us(rows, n),
            b.as_secs_f64() / (work + rows).as_secs_f64()
        ),
    })
}

/// R3: cold open of a record (home + group from its snapshot) against `Automerge::load` of the same
/// document's saved bytes.
fn r3(n: usize) -> anyhow::Result<Ratio> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("home");
    let (home, key) = Home::init(&dir, "Ana", None)?;
    let (mut rec, genesis) = Record::create(&key, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
    let (thread, first) = rec.author(&key, Body::Thread { title: "t".into() }, 1)?;
    let mut all = vec![genesis, first];
    for i in 2..n {
        all.push(rec.author(&key, message(thread, i), i as i64)?.1);
    }
    let saved = rec.doc()?.save();
    let gid = rec.group();
    let mut g = home.open_or_new_group(&gid)?;
    home.ingest(&mut g, all)?;
    home.snapshot(&mut g)?;
    drop((g, home));
    let ours = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let home = Home::open(&dir)?;
        let g = home.open_group(&gid)?;
        let d = t.elapsed();
        anyhow::ensure!(g.record.len() == n, "open gave {} entries", g.record.len());
        Ok(d)
    };
    let raw = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let doc = Automerge::load(&saved)?;
        let d = t.elapsed();
        anyhow::ensure!(!doc.get_heads().is_empty());
        Ok(d)
    };
    let (a, b) = interleaved(ours, raw)?;
    Ok(Ratio {
        name: "R3_cold_open",
        ratio: a.as_secs_f64() / b.as_secs_f64(),
        target: 1.25,
        at_most: true,
        detail: format!(
            "{n} entries: open {:.1} ms, Automerge::load {:.1} ms",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        ),
    })
}

/// Copies a home; the copy is private like the original (homes open to others are refused).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

/// R4 and R5: syncing `n` diverged entries (half written on each of two devices) over iroh on loopback,
/// against verifying, applying and storing the same entries in memory (`Home::ingest` both ways); and
/// the bytes on the wire against the bytes of the entries that were missing.
fn r4_r5(n: usize) -> anyhow::Result<(Ratio, Ratio)> {
    use roundtable_sync::net::{NetConfig, bind, dial_addr, local_addrs};
    let tmp = tempfile::tempdir()?;
    let (ta, tb) = (tmp.path().join("tpl-a"), tmp.path().join("tpl-b"));
    let (ha, ka) = Home::init(&ta, "Ana", None)?;
    let (hb, kb) = Home::init(&tb, "Ben", None)?;
    let mut ga = ha.create_group(&ka, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
    // Ana, the only member, lets Ben in.
    ha.propose_change(
        &mut ga,
        &ka,
        roundtable_core::Effect::Add {
            member: kb.device_id(),
            name: "Ben".into(),
            needs: String::new(),
        },
        "Ben",
        1,
    )?;
    let thread = ha.append(&mut ga, &ka, Body::Thread { title: "t".into() }, 2)?;
    let gid = ga.id();
    let mut gb = hb.open_or_new_group(&gid)?;
    hb.ingest(
        &mut gb,
        ha.entries(&gid)?.into_iter().map(|s| s.entry).collect(),
    )?;
    let shared = ga.record.len();
    for i in 0..n / 2 {
        ha.append(&mut ga, &ka, message(thread, i), i as i64)?;
        hb.append(&mut gb, &kb, message(thread, i), i as i64)?;
    }
    let missing_a: Vec<_> = ha
        .entries(&gid)?
        .into_iter()
        .skip(shared)
        .map(|s| s.entry)
        .collect();
    let missing_b: Vec<_> = hb
        .entries(&gid)?
        .into_iter()
        .skip(shared)
        .map(|s| s.entry)
        .collect();
    let raw_bytes: usize = missing_a
        .iter()
        .chain(&missing_b)
        .map(|e| e.encoded_len())
        .sum();
    drop((ha, hb, ga, gb));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let round = std::cell::Cell::new(0);
    // Each repetition starts from its own copy of the two diverged homes (copying is not timed).
    let fresh_copies = || -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        round.set(round.get() + 1);
        let (da, db) = (
            tmp.path().join(format!("a{}", round.get())),
            tmp.path().join(format!("b{}", round.get())),
        );
        copy_dir(&ta, &da)?;
        copy_dir(&tb, &db)?;
        Ok((da, db))
    };
    let mut wire = 0u64;
    let loopback = NetConfig {
        listen: vec!["127.0.0.1:0".parse()?],
        relay: None,
    };
    let mut over_iroh = || -> anyhow::Result<Duration> {
        let (da, db) = fresh_copies()?;
        let key_a = Home::open(&da)?.device_key(None)?;
        let key_b = Home::open(&db)?.device_key(None)?;
        rt.block_on(async {
            let ep_a = bind(&key_a, &loopback, vec![roundtable_sync::ALPN.to_vec()]).await?;
            let node_a = roundtable_sync::Node::new(da.clone(), key_a);
            node_a.load_groups().await?;
            let router = iroh::protocol::Router::builder(ep_a.clone())
                .accept(roundtable_sync::ALPN, node_a.sync_handler())
                .spawn();
            let ep_b = bind(&key_b, &loopback, vec![roundtable_sync::ALPN.to_vec()]).await?;
            let node_b = roundtable_sync::Node::new(db.clone(), key_b);
            let addr = dial_addr(&node_a.device_id(), &local_addrs(&ep_a))?;
            let t = Instant::now();
            let s = node_b.sync_with(&ep_b, addr, gid, false).await?;
            let d = t.elapsed();
            anyhow::ensure!(
                s.received as usize == missing_a.len() && s.sent as usize == missing_b.len(),
                "{s:?}"
            );
            wire = s.bytes_sent + s.bytes_received;
            ep_b.close().await;
            router.shutdown().await?;
            Ok(d)
        })
    };
    let mut in_memory = || -> anyhow::Result<Duration> {
        let (da, db) = fresh_copies()?;
        let (ha, hb) = (Home::open(&da)?, Home::open(&db)?);
        let (mut ga, mut gb) = (ha.open_group(&gid)?, hb.open_group(&gid)?);
        let t = Instant::now();
        let out_a = ha.ingest(&mut ga, missing_b.clone())?;
        let out_b = hb.ingest(&mut gb, missing_a.clone())?;
        let d = t.elapsed();
        anyhow::ensure!(
            out_a.accepted.len() + out_b.accepted.len() == missing_a.len() + missing_b.len()
        );
        Ok(d)
    };
    let (a, b) = interleaved(&mut over_iroh, &mut in_memory)?;
    let avg = raw_bytes as f64 / (missing_a.len() + missing_b.len()) as f64;
    let r4 = Ratio {
        name: "R4_sync_over_iroh_vs_in_memory",
        ratio: a.as_secs_f64() / b.as_secs_f64(),
        target: 1.3,
        at_most: true,
        detail: format!(
            "{n} diverged entries: over iroh {:.0} ms, in memory {:.0} ms",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        ),
    };
    let r5 = Ratio {
        name: "R5_bytes_on_wire",
        ratio: wire as f64 / raw_bytes as f64,
        target: ((1.0 + 72.0 / avg + 0.05) * 1000.0).round() / 1000.0,
        at_most: true,
        detail: format!(
            "{wire} bytes of frames for {raw_bytes} bytes of entries (average entry {avg:.0} bytes)"
        ),
    };
    Ok((r4, r5))
}

/// R6: sealed durable appends (seal the inner change, sign, store) against plain durable appends of
/// the same texts. Throughput ratio, so higher is better. Also measures the same at the engine level
/// (no fsync) and the bytes a sealed entry adds, for the detail line.
fn r6(n: usize) -> anyhow::Result<Ratio> {
    use roundtable_seal::{EncSecret, Keyring, thread};
    let tmp = tempfile::tempdir()?;
    // Bytes of the entries each side wrote, from its durable runs.
    let (plain_bytes, sealed_bytes) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let mut round = 0;
    let mut plain = |durable: bool| -> anyhow::Result<Duration> {
        round += 1;
        let (home, key) = Home::init(&tmp.path().join(format!("plain{round}")), "Ana", None)?;
        let mut g = home.create_group(&key, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
        let thread = home.append(&mut g, &key, Body::Thread { title: "t".into() }, 1)?;
        let t = Instant::now();
        for i in 0..n {
            let body = message(thread, i);
            if durable {
                home.append(&mut g, &key, body, i as i64)?;
            } else {
                g.record.author(&key, body, i as i64)?;
            }
        }
        let d = t.elapsed();
        if durable {
            plain_bytes.set(
                home.entries(&g.id())?
                    .iter()
                    .skip(2)
                    .map(|s| s.entry.encoded_len())
                    .sum(),
            );
        }
        Ok(d)
    };
    let mut sealed_round = 0;
    let mut sealed = |durable: bool| -> anyhow::Result<Duration> {
        sealed_round += 1;
        let (home, key) = Home::init(
            &tmp.path().join(format!("sealed{sealed_round}")),
            "Ana",
            None,
        )?;
        let me = key.device_id();
        let secret = EncSecret::generate()?;
        let mut g = home.create_group(&key, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
        home.append(
            &mut g,
            &key,
            Body::Profile {
                enc_key: secret.public()?,
            },
            1,
        )?;
        let start = thread::start(&g.record, "t", "benchmark", &[me])?;
        let thread = home.append(&mut g, &key, start, 2)?;
        let mut keys = Keyring::new(me, &secret);
        let t = Instant::now();
        for i in 0..n {
            let body = thread::message(&g.record, &mut keys, &thread, &me, &text(i), i as i64)?;
            if durable {
                home.append(&mut g, &key, body, i as i64)?;
            } else {
                g.record.author(&key, body, i as i64)?;
            }
        }
        let d = t.elapsed();
        if durable {
            sealed_bytes.set(
                home.entries(&g.id())?
                    .iter()
                    .skip(3)
                    .map(|s| s.entry.encoded_len())
                    .sum(),
            );
            let view = thread::open(&g.record, &mut keys, &thread)?;
            anyhow::ensure!(
                view.messages.len() == n,
                "read {} of {n}",
                view.messages.len()
            );
        }
        Ok(d)
    };
    let (p, q) = interleaved(|| plain(true), || sealed(true))?;
    let (pn, qn) = interleaved(|| plain(false), || sealed(false))?;
    let per = |total: &std::cell::Cell<usize>| total.get() as f64 / n as f64;
    Ok(Ratio {
        name: "R6_sealed_append_throughput",
        ratio: p.as_secs_f64() / q.as_secs_f64(),
        target: 0.9,
        at_most: false,
        detail: format!(
            "{n} durable appends: sealed {:.0} us each, plain {:.0} us each; without fsync: sealed {:.1} us, plain {:.1} us (ratio {:.3}); entry size sealed {:.0} bytes, plain {:.0} bytes (+{:.0} bytes each)",
            us(q, n),
            us(p, n),
            us(qn, n),
            us(pn, n),
            pn.as_secs_f64() / qn.as_secs_f64(),
            per(&sealed_bytes),
            per(&plain_bytes),
            per(&sealed_bytes) - per(&plain_bytes)
        ),
    })
}

/// R2: auditing a bundle (read it, check every signature by the signature rule, apply every rule,
/// recount) against the raw batch check of that rule (`signature::verify_batch`, the one the audit
/// runs) over the same signatures on one thread; and the audit's speed-up on 2 threads.
/// The audit's input: a group of four members and `n` entries (messages in one thread, by turns),
/// as `(group, entries)`. R2 and A1M audit its bundle.
fn audit_input(
    n: usize,
) -> anyhow::Result<(roundtable_core::GroupId, Vec<roundtable_core::Entry>)> {
    let keys: Vec<DeviceKey> = (1..=4u8)
        .map(|i| DeviceKey::from_secret(&[i; 32]))
        .collect();
    let (mut rec, genesis) = Record::create(&keys[0], "Bench", Rule::Consent, 1, "Ana", "", 0)?;
    let mut all = vec![genesis];
    // The members join by the group's agreement, as everywhere.
    let names: Vec<String> = (1..keys.len()).map(|i| format!("Member {i}")).collect();
    let newcomers: Vec<(&DeviceKey, &str, &str)> = keys[1..]
        .iter()
        .zip(&names)
        .map(|(k, n)| (k, n.as_str(), ""))
        .collect();
    let mut t = 0;
    roundtable_core::governance::add_members(rec.group(), 1, &keys[0], &newcomers, |k, body| {
        t += 1;
        let (id, e) = rec.author(k, body, t)?;
        all.push(e);
        Ok::<_, roundtable_core::Refused>(id)
    })?;
    let (thread, e) = rec.author(&keys[0], Body::Thread { title: "t".into() }, 9)?;
    all.push(e);
    let bar = progress(n as u64, "building the audit's entries");
    while all.len() < n {
        let i = all.len();
        all.push(
            rec.author(&keys[i % keys.len()], message(thread, i), i as i64)?
                .1,
        );
        if i % 1024 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();
    Ok((rec.group(), all))
}

/// A progress bar on stderr (drawn only when stderr is a terminal), for the long builds.
fn progress(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len}, {elapsed} (about {eta} left)",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what);
    b
}

fn r2(n: usize) -> anyhow::Result<(Ratio, Ratio)> {
    use roundtable_core::entry::signing_message;
    use roundtable_core::signature::{Item, verify_batch};
    let (gid, all) = audit_input(n)?;
    let bytes = roundtable_core::bundle::encode(&gid, &all);
    let mut signed = Vec::with_capacity(n);
    for e in &all {
        let p = e.parse()?;
        let msg = signing_message(&gid, &e.doc.doc_id(&gid), &p.hash);
        signed.push((p.actor, msg, e.signature));
    }
    drop(all);
    let raw = || -> anyhow::Result<Duration> {
        let items: Vec<Item<'_>> = signed
            .iter()
            .map(|(key, msg, sig)| Item { key, msg, sig })
            .collect();
        let t = Instant::now();
        let verdicts = verify_batch(&items);
        let d = t.elapsed();
        anyhow::ensure!(verdicts.iter().all(Result::is_ok), "a signature failed");
        Ok(d)
    };
    let audit = |threads: usize| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let r = roundtable_audit::audit(&bytes, threads)?;
        let d = t.elapsed();
        anyhow::ensure!(r.verified && r.entries == n, "{:?}", r.problems.first());
        Ok(d)
    };
    let (one, batch) = interleaved(|| audit(1), raw)?;
    let (one_again, two) = interleaved(|| audit(1), || audit(2))?;
    let r2 = Ratio {
        name: "R2_audit_rate_vs_verify_batch",
        ratio: batch.as_secs_f64() / one.as_secs_f64(),
        target: 0.75,
        at_most: false,
        detail: format!(
            "{n} entries: audit on 1 thread {:.0} ms ({:.1} us each), raw verify_batch {:.0} ms ({:.1} us each)",
            one.as_secs_f64() * 1e3,
            us(one, n),
            batch.as_secs_f64() * 1e3,
            us(batch, n)
        ),
    };
    let r2t = Ratio {
        name: "R2_audit_speedup_2_threads",
        ratio: one_again.as_secs_f64() / two.as_secs_f64(),
        target: 1.8,
        at_most: false,
        detail: format!(
            "{n} entries: audit on 1 thread {:.0} ms, on 2 threads {:.0} ms",
            one_again.as_secs_f64() * 1e3,
            two.as_secs_f64() * 1e3
        ),
    };
    Ok((r2, r2t))
}

/// A home holding one group of `n` entries (one author, messages in one thread), snapshotted.
fn home_of(
    dir: &std::path::Path,
    n: usize,
) -> anyhow::Result<(roundtable_core::GroupId, DeviceKey)> {
    let (home, key) = Home::init(dir, "Ana", None)?;
    let (mut rec, genesis) = Record::create(&key, "Bench", Rule::Consent, 1, "Ana", "", 0)?;
    let (thread, first) = rec.author(&key, Body::Thread { title: "t".into() }, 1)?;
    let gid = rec.group();
    let mut g = home.open_or_new_group(&gid)?;
    home.ingest(&mut g, vec![genesis, first])?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 2..n {
        batch.push(rec.author(&key, message(thread, i), i as i64)?.1);
        if batch.len() == 10_000 {
            home.ingest(&mut g, std::mem::take(&mut batch))?;
        }
    }
    home.ingest(&mut g, batch)?;
    anyhow::ensure!(
        g.record.len() == n.max(2),
        "built {} entries",
        g.record.len()
    );
    home.snapshot(&mut g)?;
    Ok((gid, key))
}

/// R8: the cost of a durable append when the record holds `big` entries against when it holds
/// `small` (same device, same kind of entry). Also the engine alone (no fsync), for the detail line.
fn r8(big: usize, small: usize) -> anyhow::Result<Ratio> {
    const APPENDS: usize = 200;
    let tmp = tempfile::tempdir()?;
    let (gb, kb) = home_of(&tmp.path().join("big"), big)?;
    let (gs, ks) = home_of(&tmp.path().join("small"), small)?;
    let t = std::cell::Cell::new(0i64);
    let run = |dir: &std::path::Path,
               gid: &roundtable_core::GroupId,
               key: &DeviceKey,
               durable: bool|
     -> anyhow::Result<Duration> {
        let home = Home::open(dir)?;
        let mut g = home.open_group(gid)?;
        let thread = g.record.threads()[0];
        let start = Instant::now();
        for _ in 0..APPENDS {
            t.set(t.get() + 1);
            let body = Body::Message {
                thread,
                text: text(t.get() as usize),
            };
            if durable {
                home.append(&mut g, key, body, 1_000_000_000 + t.get())?;
            } else {
                g.record.author(key, body, 1_000_000_000 + t.get())?;
            }
        }
        Ok(start.elapsed())
    };
    let (db, ds) = (tmp.path().join("big"), tmp.path().join("small"));
    let (a, b) = interleaved(|| run(&db, &gb, &kb, true), || run(&ds, &gs, &ks, true))?;
    let (an, bn) = interleaved(|| run(&db, &gb, &kb, false), || run(&ds, &gs, &ks, false))?;
    Ok(Ratio {
        name: "R8_append_cost_big_vs_small",
        ratio: a.as_secs_f64() / b.as_secs_f64(),
        target: 1.5,
        at_most: true,
        detail: format!(
            "durable appends at {big} entries {:.0} us each, at {small} entries {:.0} us each; engine alone (no fsync) {:.1} us vs {:.1} us (ratio {:.3})",
            us(a, APPENDS),
            us(b, APPENDS),
            us(an, APPENDS),
            us(bn, APPENDS),
            an.as_secs_f64() / bn.as_secs_f64()
        ),
    })
}

/// Bytes this process has caused to be written to storage (Linux `/proc/self/io`).
fn written() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/io")?;
    s.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .ok_or_else(|| anyhow::anyhow!("no write_bytes in /proc/self/io"))?
        .trim()
        .parse()
        .map_err(Into::into)
}

/// Resident memory of this process, in bytes (Linux `/proc/self/statm`).
fn rss() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("statm"))?
        .parse()?;
    Ok(pages * 4096)
}

/// The child side of R9: opens the record (or loads the bare document) and prints how much resident
/// memory that added. A fresh process each time, so nothing else is resident.
fn r9_child(args: &[String]) -> anyhow::Result<()> {
    let what = args.get(2).map(String::as_str).unwrap_or_default();
    let path = std::path::Path::new(args.get(3).map(String::as_str).unwrap_or_default());
    let before = rss()?;
    let keep: Box<dyn std::any::Any> = match what {
        "open" | "open-doc" => {
            let gid: roundtable_core::GroupId = args
                .get(4)
                .map(String::as_str)
                .unwrap_or_default()
                .parse()?;
            let home = Home::open(path)?;
            let mut g = home.open_group(&gid)?;
            if what == "open-doc" {
                g.record.doc()?;
            }
            Box::new((home, g))
        }
        _ => Box::new(Automerge::load(&std::fs::read(path)?)?),
    };
    let after = rss()?;
    println!("{}", after.saturating_sub(before));
    drop(keep);
    Ok(())
}

/// R9: resident memory added by opening a `n`-entry record / by loading the bare Automerge document
/// of the same entries, each in a fresh child process.
fn r9(n: usize) -> anyhow::Result<Ratio> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("home");
    let (gid, _) = home_of(&dir, n)?;
    let saved = {
        let home = Home::open(&dir)?;
        let mut g = home.open_group(&gid)?;
        g.record.doc()?.save()
    };
    let doc = tmp.path().join("doc.automerge");
    std::fs::write(&doc, &saved)?;
    let me = std::env::current_exe()?;
    let child = |args: &[&std::ffi::OsStr]| -> anyhow::Result<u64> {
        let out = std::process::Command::new(&me)
            .arg("--r9-child")
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().parse()?)
    };
    let (mut ours, mut bare, mut with_doc) = (vec![], vec![], vec![]);
    let g = gid.to_string();
    for _ in 0..REPS.load(std::sync::atomic::Ordering::Relaxed) {
        ours.push(child(&["open".as_ref(), dir.as_os_str(), g.as_ref()])?);
        bare.push(child(&["load".as_ref(), doc.as_os_str()])?);
        with_doc.push(child(&["open-doc".as_ref(), dir.as_os_str(), g.as_ref()])?);
    }
    let med = |mut v: Vec<u64>| {
        v.sort();
        v[v.len() / 2]
    };
    let (o, b, w) = (med(ours), med(bare), med(with_doc));
    let mb = |x: u64| x as f64 / (1 << 20) as f64;
    Ok(Ratio {
        name: "R9_resident_memory_open_vs_bare_doc",
        ratio: o as f64 / b as f64,
        target: 1.5,
        at_most: true,
        detail: format!(
            "{n} entries: opening the record adds {:.1} MiB, Automerge::load of its document {:.1} MiB; with the document loaded too (as exports and snapshots do) {:.1} MiB (ratio {:.3})",
            mb(o),
            mb(b),
            mb(w),
            w as f64 / b as f64
        ),
    })
}

/// The result of the audit at scale: `A1M secs=S threads=2 rss_mb=M met=...` (goal: secs <= 8 and
/// rss_mb <= 1536).
struct AuditAtScale {
    n: usize,
    secs: f64,
    rss_mb: f64,
    /// The floor, in the same child: the batch check of every signature on 2 threads.
    sig_secs: f64,
    /// And Automerge's parse of every change on 2 threads.
    parse_secs: f64,
}

/// A1M: the audit of an `n`-entry bundle file (the CLI's path: the file read as a stream, signatures
/// on 2 threads, every rule, the report), run in a fresh child process so that its peak resident
/// memory (`VmHWM`) is the audit's alone, with the process's own few MiB.
fn a1m(n: usize) -> anyhow::Result<AuditAtScale> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("audit.bundle");
    {
        let (gid, all) = audit_input(n)?;
        std::fs::write(&path, roundtable_core::bundle::encode(&gid, &all))?;
    }
    let me = std::env::current_exe()?;
    let spin = indicatif::ProgressBar::new_spinner();
    spin.set_message(format!("auditing {n} entries in a child process"));
    spin.enable_steady_tick(Duration::from_millis(200));
    let out = std::process::Command::new(&me)
        .arg("--a1m-child")
        .arg(&path)
        .output()?;
    spin.finish_and_clear();
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut f = text.split_whitespace();
    let secs: f64 = f.next().unwrap_or_default().parse()?;
    let hwm_kb: f64 = f.next().unwrap_or_default().parse()?;
    let entries: usize = f.next().unwrap_or_default().parse()?;
    let sig_secs: f64 = f.next().unwrap_or_default().parse()?;
    let parse_secs: f64 = f.next().unwrap_or_default().parse()?;
    anyhow::ensure!(entries == n, "the audit read {entries} entries of {n}");
    Ok(AuditAtScale {
        n,
        secs,
        rss_mb: hwm_kb / 1024.0,
        sig_secs,
        parse_secs,
    })
}

/// The child side of A1M: audits the file on 2 threads; prints the seconds, the peak resident memory
/// in KiB (`VmHWM` of this fresh process), the entries read, then the floor measured after the audit
/// (so not in its memory) on the same entries and 2 threads: the signature rule's batch check of
/// every signature, and Automerge's parse of every change (which gives each entry its id, and which
/// nothing can skip), each in seconds.
fn a1m_child(args: &[String]) -> anyhow::Result<()> {
    use roundtable_core::entry::signing_message;
    use roundtable_core::signature::{BATCH, Item, verify_batch};
    let path = args.get(2).map(String::as_str).unwrap_or_default();
    let t = Instant::now();
    let file = std::fs::File::open(path)?;
    let r = roundtable_audit::audit_from(file, 2)?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(r.verified, "{:?}", r.problems.first());
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))?;
    let reader = roundtable_core::bundle::BundleReader::new(std::fs::File::open(path)?)?;
    let gid = reader.group();
    let entries = reader.collect::<Result<Vec<_>, _>>()?;
    let halves: Vec<&[roundtable_core::Entry]> =
        entries.chunks(entries.len().div_ceil(2).max(1)).collect();
    let t = Instant::now();
    let parsed: Vec<Vec<_>> = std::thread::scope(|s| {
        let hs: Vec<_> = halves
            .iter()
            .map(|h| s.spawn(move || h.iter().map(|e| e.parse()).collect::<Vec<_>>()))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("parse thread"))
            .collect()
    });
    let parse_secs = t.elapsed().as_secs_f64();
    let mut signed = Vec::with_capacity(entries.len());
    for (e, p) in entries.iter().zip(parsed.into_iter().flatten()) {
        let p = p?;
        signed.push((
            p.actor,
            signing_message(&gid, &e.doc.doc_id(&gid), &p.hash),
            e.signature,
        ));
    }
    let t = Instant::now();
    let ok = std::thread::scope(|s| {
        let hs: Vec<_> = signed
            .chunks(signed.len().div_ceil(2).max(1))
            .map(|h| {
                s.spawn(move || {
                    // In batches as the audit checks them, each its own call.
                    h.chunks(BATCH).all(|c| {
                        let items: Vec<Item<'_>> = c
                            .iter()
                            .map(|(key, msg, sig)| Item { key, msg, sig })
                            .collect();
                        verify_batch(&items).iter().all(Result::is_ok)
                    })
                })
            })
            .collect();
        hs.into_iter().all(|h| h.join().unwrap_or(false))
    });
    let sig_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(ok, "a signature failed");
    println!(
        "{secs:.3} {hwm} {} {sig_secs:.3} {parse_secs:.3}",
        r.entries
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--r9-child") {
        return r9_child(&args);
    }
    if args.get(1).map(String::as_str) == Some("--a1m-child") {
        return a1m_child(&args);
    }
    // `--write-audit-bundle N FILE`: writes A1M's input of N entries to FILE and stops (for
    // measuring `roundtable import` and `audit` on a large file, docs/performance.md).
    if args.get(1).map(String::as_str) == Some("--write-audit-bundle") {
        let n: usize = args
            .get(2)
            .map(String::as_str)
            .unwrap_or_default()
            .parse()?;
        let path = args.get(3).ok_or_else(|| anyhow::anyhow!("FILE"))?;
        let (gid, all) = audit_input(n)?;
        std::fs::write(path, roundtable_core::bundle::encode(&gid, &all))?;
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only R2` runs just the ratios whose names start with that (for profiling one of them).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let want = |name: &str| only.as_deref().is_none_or(|o| name.starts_with(o));
    let scale = if quick { 10 } else { 1 };
    if let Some(n) = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    {
        REPS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }
    let mut ratios = vec![];
    if want("R1") {
        ratios.push(r1(10_000 / scale)?);
        ratios.push(r1d(1_000 / scale)?);
    }
    if want("R2") {
        // `--r2-entries N` measures R2 on N entries instead (the 1M figures in docs/performance.md).
        let n = args
            .iter()
            .position(|a| a == "--r2-entries")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(100_000 / scale);
        let (r2, r2t) = r2(n)?;
        ratios.extend([r2, r2t]);
    }
    if want("R3") {
        ratios.push(r3(100_000 / scale)?);
    }
    if want("R4") || want("R5") {
        let (r4, r5) = r4_r5(10_000 / scale)?;
        ratios.extend([r4, r5]);
    }
    if want("R6") {
        ratios.push(r6(1_000 / scale)?);
    }
    if want("R8") {
        ratios.push(r8(1_000_000 / scale, 1_000 / scale)?);
    }
    if want("R9") {
        ratios.push(r9(100_000 / scale)?);
    }
    for r in &ratios {
        println!(
            "{} ratio={:.3} target={} met={}",
            r.name,
            r.ratio,
            r.target,
            r.met()
        );
        eprintln!("  {}", r.detail);
    }
    // A1M, the audit at scale: 1,000,000 entries (100,000 with `--quick`, nothing else scaled;
    // `--audit-entries N` for another size). Its own line; the size is the last field.
    if want("A1M") {
        let n = args
            .iter()
            .position(|a| a == "--audit-entries")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(if quick { 100_000 } else { 1_000_000 });
        let a = a1m(n)?;
        println!(
            "A1M secs={:.2} threads=2 rss_mb={:.0} met={} entries={}",
            a.secs,
            a.rss_mb,
            a.secs <= 8.0 && a.rss_mb <= 1536.0,
            a.n
        );
        eprintln!(
            "  {} entries: the audit of the bundle file (read as a stream, 2 threads) took {:.2} s, peak resident memory {:.0} MiB (VmHWM of a fresh process); the floor on the same entries and 2 threads: the signature rule's batch check {:.2} s, Automerge's parse of the changes {:.2} s, together {:.2} s",
            a.n,
            a.secs,
            a.rss_mb,
            a.sig_secs,
            a.parse_secs,
            a.sig_secs + a.parse_secs
        );
    }
    let met = ratios.iter().filter(|r| r.met()).count();
    println!(
        "summary: {met} of {} ratios met their targets ({} mode)",
        ratios.len(),
        if quick { "quick" } else { "full" }
    );
    Ok(())
}
