//! Crash consistency (in the spirit of redb's `tests/crash_consistency.rs`): a child process appends
//! entries to a home as fast as it can, printing each acknowledged entry id, and is killed with
//! SIGKILL at a seeded random moment. The parent then reopens the home and checks that the database
//! opens, the group opens, and every entry the child acknowledged is in the record.
//!
//! The child is this same test binary, re-executed with `--exact crash_child` and environment
//! variables (the home, a seed, a mode). As a normal test, `crash_child` sees no home and returns at once.
//!
//! `acknowledged_entries_survive_sigkill`: 40 runs on one home, so later runs start from a record with
//! a snapshot and a log tail; `checkpoint` is called after every append, so some kills land while a
//! snapshot is written. One run in five is killed counting from the spawn, so it may land while the
//! child is still opening the home.
//!
//! `acknowledged_entries_survive_sigkill_during_fork_rebuilds` does the same while the child keeps
//! forcing `Home::ingest` to rebuild the record after a fork.
//!
//! SIGKILL ends the process, not the machine: what this checks is that an append is acknowledged only
//! after its commit, that commits are atomic, and that nothing the store does between commits (the
//! snapshot, the group facts) can leave the home unopenable. It does not simulate a power cut.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use roundtable_core::body::{ChangeFrame, build_change, decode_change};
use roundtable_core::{Body, DeviceKey, DocRef, Entry, EntryId, GroupId, Record, Rule};
use roundtable_store::{Group, Home, StoredStatus};

const HOME_ENV: &str = "ROUNDTABLE_CRASH_CHILD_HOME";
const SEED_ENV: &str = "ROUNDTABLE_CRASH_CHILD_SEED";
const MODE_ENV: &str = "ROUNDTABLE_CRASH_CHILD_MODE";

/// What the child does until it is killed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// `Home::append` of threads and messages, with `checkpoint` as it goes.
    Appends,
    /// Appends, and forks that force `Home::ingest` to rebuild the record (see `fork_rebuilds`).
    ForkRebuilds,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Appends => "appends",
            Mode::ForkRebuilds => "forks",
        }
    }
}

/// Number of kill-and-reopen runs. Sized for well under a minute in debug mode on 2 cores.
const RUNS: u64 = 40;

/// A small deterministic generator (SplitMix64): the tests have no `rand` dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes one line to stdout and flushes it; `false` when the parent is gone.
fn say(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").is_ok() && out.flush().is_ok()
}

/// The child: writes until killed. Not a test on its own (see the module docs).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(HOME_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(SEED_ENV)
        .expect("the parent sets the seed")
        .parse()
        .expect("the seed is a number");
    let mode = match std::env::var(MODE_ENV).as_deref() {
        Ok("forks") => Mode::ForkRebuilds,
        _ => Mode::Appends,
    };
    let mut rng = Rng(seed);
    let home = Home::open(Path::new(&dir)).expect("the child opens the home");
    let key = home.device_key(None).expect("the key is not protected");
    let groups = home.groups().expect("the child lists the groups");
    let mut group = match groups.first() {
        Some((id, _)) => home.open_group(id).expect("the child opens the group"),
        None => {
            let g = home
                .create_group(&key, "Crash board", Rule::Consent, 1, "Ana", "", 0)
                .expect("the child creates the group");
            if !say(&format!("ACK {}", g.id())) {
                return;
            }
            g
        }
    };
    if !say("READY") {
        return;
    }
    match mode {
        Mode::Appends => appends(&home, &key, &mut group, &mut rng, seed),
        Mode::ForkRebuilds => fork_rebuilds(&home, &key, &mut group, &mut rng),
    }
}

/// Threads and messages, one durable append at a time, with `checkpoint` after each.
fn appends(home: &Home, key: &DeviceKey, group: &mut Group, rng: &mut Rng, seed: u64) {
    let mut threads = group.record.threads();
    let started = Instant::now();
    let mut n: u64 = 0;
    // The parent kills the child long before this; the bound only stops an orphan.
    while started.elapsed() < Duration::from_secs(60) {
        n += 1;
        let body = if threads.is_empty() || rng.below(8) == 0 {
            Body::Thread {
                title: format!("Thread {seed}/{n}"),
            }
        } else {
            let thread = threads[rng.below(threads.len() as u64) as usize];
            // Some long messages, so pages fill and the file grows while the child is killed.
            let len = if rng.below(10) == 0 {
                1000 + rng.below(8000)
            } else {
                10 + rng.below(200)
            };
            Body::Message {
                thread,
                text: "x".repeat(len as usize),
            }
        };
        let is_thread = matches!(body, Body::Thread { .. });
        let id = home
            .append(group, key, body, n as i64)
            .expect("an append succeeds");
        if !say(&format!("ACK {id}")) {
            return;
        }
        if is_thread {
            threads.push(id);
        }
        if home.checkpoint(group).expect("a checkpoint succeeds") && !say("SNAP") {
            return;
        }
    }
}

/// Each round: Ana adds a new member, who (on two devices' worth of copies) signs two different
/// entries at the same position. The one with the higher id arrives first and is applied; the lower
/// one then wins the fork, so `Home::ingest` rebuilds the record from every entry it holds. Then Ana
/// appends a message. Acknowledged: Ana's entries and each fork's winner.
fn fork_rebuilds(home: &Home, key: &DeviceKey, group: &mut Group, rng: &mut Rng) {
    let gid = group.id();
    let genesis = home
        .entries(&gid)
        .expect("entries")
        .into_iter()
        .find(|s| s.id == gid)
        .expect("the genesis is stored")
        .entry;
    let (_, containers) = decode_change(
        &genesis.parse().expect("the genesis parses").change,
        &BTreeMap::new(),
    )
    .expect("the genesis names its containers");
    let thread = match group.record.threads().first() {
        Some(t) => *t,
        None => {
            let t = home
                .append(
                    group,
                    key,
                    Body::Thread {
                        title: "Forks".into(),
                    },
                    1,
                )
                .expect("a thread");
            if !say(&format!("ACK {t}")) {
                return;
            }
            t
        }
    };
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < Duration::from_secs(60) {
        n += 1;
        let dev = DeviceKey::generate().expect("a key");
        // Ana is the only active member at the start of each round, so her agree adds them.
        let add = home
            .propose_change(
                group,
                key,
                roundtable_core::Effect::Add {
                    member: dev.device_id(),
                    name: format!("Member {n}"),
                    needs: String::new(),
                },
                &format!("Member {n}"),
                n as i64,
            )
            .expect("a member is added")
            .outcome
            .expect("the only member decides alone");
        if !say(&format!("ACK {add}")) {
            return;
        }
        let heads = group.record.heads();
        let max_op = heads
            .iter()
            .map(|h| group.record.entry(h).expect("a head is valid").1.max_op)
            .max()
            .expect("there are heads");
        let signed = |text: &str| -> (EntryId, Entry) {
            let frame = ChangeFrame {
                actor: dev.device_id(),
                seq: 1,
                start_op: NonZeroU64::new(max_op + 1).expect("nonzero"),
                deps: heads.clone(),
                time_ms: n as i64,
            };
            let body = Body::Message {
                thread,
                text: text.into(),
            };
            let change = build_change(&body, &frame, &containers).expect("a change");
            let hash = EntryId::from(change.hash());
            let entry = Entry::sign(
                &dev,
                &gid,
                DocRef::Public,
                change.raw_bytes().to_vec(),
                &hash,
            );
            (hash, entry)
        };
        let mut pair = [signed("one way"), signed("another way")];
        pair.sort_by_key(|(h, _)| *h);
        let [(low, low_entry), (high, high_entry)] = pair;
        let out = home
            .ingest(group, vec![high_entry])
            .expect("the first of the fork is stored");
        assert_eq!(out.accepted, vec![high], "the first of the fork is applied");
        let out = home
            .ingest(group, vec![low_entry])
            .expect("the fork's winner is stored (a rebuild)");
        assert_eq!(out.accepted, vec![low], "the fork's winner is accepted");
        assert!(!group.record.contains(&high), "the loser is set aside");
        if !say(&format!("ACK {low}")) {
            return;
        }
        let m = home
            .append(
                group,
                key,
                Body::Message {
                    thread,
                    text: "x".repeat(10 + rng.below(300) as usize),
                },
                n as i64,
            )
            .expect("a message");
        if !say(&format!("ACK {m}")) {
            return;
        }
        // The newcomer leaves, so that Ana again decides alone next round.
        let left = home
            .append(group, &dev, Body::MemberLeave, n as i64)
            .expect("the newcomer leaves");
        if !say(&format!("ACK {left}")) {
            return;
        }
        if home.checkpoint(group).expect("a checkpoint succeeds") && !say("SNAP") {
            return;
        }
    }
}

/// Reads the child's stdout: complete lines only (a line cut by the kill was never acknowledged).
fn read_lines(stdout: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) if buf.last() == Some(&b'\n') => {
                let _ = tx.send(String::from_utf8_lossy(&buf).trim_end().to_string());
            }
            Ok(_) => return,
        }
    }
}

/// The acknowledged id on a line, if any. The test harness may print its own text before it.
fn ack_of(line: &str) -> Option<EntryId> {
    let at = line.find("ACK ")?;
    let hex = &line[at + 4..];
    assert_eq!(
        hex.len(),
        64,
        "an acknowledged line is a whole id: {line:?}"
    );
    Some(hex.parse().expect("an acknowledged id parses"))
}

struct RunReport {
    acked: Vec<EntryId>,
    snaps: usize,
    killed_after_ready: bool,
}

fn run_child(mode: Mode, exe: &Path, dir: &Path, logs: &Path, run: u64, seed: u64) -> RunReport {
    let mut rng = Rng(seed);
    let delay = Duration::from_millis(3 + rng.below(298));
    // One run in five is killed counting from the spawn, so some kills land while the child is still
    // opening the home (redb's recovery after the previous kill, the snapshot restore, the replay).
    let from_spawn = run % 5 == 4;
    let err_path = logs.join(format!("child-{}-{run}.stderr", mode.name()));
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(HOME_ENV, dir)
        .env(SEED_ENV, seed.to_string())
        .env(MODE_ENV, mode.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("the test binary re-executes itself");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || read_lines(stdout, tx));
    let mut lines = Vec::new();
    let mut ready = false;
    if !from_spawn {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    ready = l.contains("READY");
                    lines.push(l);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "run {run} (seed {seed}): the child never got ready; its stderr:\n{}",
                        std::fs::read_to_string(&err_path).unwrap_or_default()
                    );
                }
            }
        }
    }
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().expect("try_wait") {
        panic!(
            "run {run} (seed {seed}): the child ended before it was killed ({status}); its stderr:\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("the reader thread");
    lines.extend(rx.try_iter());
    RunReport {
        acked: lines.iter().filter_map(|l| ack_of(l)).collect(),
        snaps: lines.iter().filter(|l| l.as_str() == "SNAP").count(),
        killed_after_ready: ready,
    }
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    // One home for every run: later runs start from a snapshot and a log tail.
    let sum = series(Mode::Appends, RUNS, RUNS);
    assert!(
        sum.snaps > 0,
        "no child wrote a snapshot: the runs do not exercise open from a snapshot"
    );
}

/// The same while the child keeps forcing fork rebuilds (`Home::ingest` → `rebuild`), which rewrite the
/// log and the statuses.
#[test]
fn acknowledged_entries_survive_sigkill_during_fork_rebuilds() {
    // A fresh home for every run keeps the record small, so the rebuild's replay (CPU) does not dwarf
    // the window between its two commits; even so a kill lands in it only now and then.
    series(Mode::ForkRebuilds, 150, 1);
}

struct Summary {
    snaps: usize,
}

/// Runs `runs` children, killing each, and checks the home after every kill. A fresh home is started
/// every `runs_per_home` runs; in between, each child goes on from where the last one was killed.
fn series(mode: Mode, runs: u64, runs_per_home: u64) -> Summary {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = PathBuf::new();

    let started = Instant::now();
    let mut acked: Vec<EntryId> = Vec::new();
    let mut total_acked = 0usize;
    let mut checks = 0usize;
    let mut snaps = 0usize;
    let mut runs_with_acks = 0usize;
    let mut killed_during_open = 0usize;
    let mut last = None;
    for run in 0..runs {
        // The child needs the database: redb allows one process at a time.
        drop(last.take());
        if run % runs_per_home == 0 {
            dir = tmp.path().join(format!("home-{run}"));
            drop(Home::init(&dir, "Ana", None).expect("init the home"));
            acked.clear();
        }
        let seed = 0x5eed_0000_u64 + run * 7919;
        let rep = run_child(mode, &exe, &dir, &logs, run, seed);
        if !rep.acked.is_empty() {
            runs_with_acks += 1;
        }
        if !rep.killed_after_ready {
            killed_during_open += 1;
        }
        snaps += rep.snaps;
        total_acked += rep.acked.len();
        acked.extend(rep.acked);

        let ctx = format!("{} run {run} (seed {seed})", mode.name());
        let home = Home::open(&dir).unwrap_or_else(|e| panic!("{ctx}: the home must open: {e}"));
        let groups = home
            .groups()
            .unwrap_or_else(|e| panic!("{ctx}: groups: {e}"));
        if acked.is_empty() {
            // Killed before the genesis was acknowledged: the group may or may not exist.
            assert!(groups.len() <= 1, "{ctx}: at most one group");
            continue;
        }
        assert_eq!(groups.len(), 1, "{ctx}: exactly one group");
        let gid = groups[0].0;
        let group = home
            .open_group(&gid)
            .unwrap_or_else(|e| panic!("{ctx}: the group must open: {e}"));
        let missing = acked.iter().filter(|id| !group.record.contains(id)).count();
        assert!(
            missing == 0,
            "{ctx}: {missing} of {} acknowledged entries are missing after the kill \
             (the record opened with {} valid entries; entries() lists {})",
            acked.len(),
            group.record.len(),
            home.entries(&gid).map_or(0, |v| v.len()),
        );
        checks += acked.len();
        let unique: HashSet<&EntryId> = acked.iter().collect();
        assert_eq!(
            unique.len(),
            acked.len(),
            "{ctx}: an id was acknowledged twice"
        );
        assert!(group.record.len() >= acked.len(), "{ctx}: record length");
        assert!(
            group.record.pending_ids().is_empty(),
            "{ctx}: a single writer's record has nothing pending"
        );
        if mode == Mode::Appends {
            assert!(
                group.record.rejected().is_empty(),
                "{ctx}: a single writer's record has nothing rejected"
            );
        }
        last = Some((home, gid, group.record));
    }
    if let Some((home, gid, record)) = &last {
        check_against_log(home, gid, record);
    }
    eprintln!(
        "crash ({}): {runs} runs in {:.1?}: {} acknowledged entries ({checks} presence checks), \
         {runs_with_acks} runs with acknowledgements, {killed_during_open} killed counting from spawn, \
         {snaps} snapshots written by children",
        mode.name(),
        started.elapsed(),
        total_acked,
    );
    assert!(checks > 0, "no acknowledged entry was ever checked");
    assert!(
        runs_with_acks as u64 >= runs / 2,
        "too few runs acknowledged anything ({runs_with_acks}/{runs}): the kills land too early to test much"
    );
    Summary { snaps }
}

/// The record opened from a snapshot plus its tail agrees with the stored log: the same valid entries,
/// logged in a causal order, and the same heads (the logged entries no other logged entry builds on).
fn check_against_log(home: &Home, gid: &GroupId, opened: &Record) {
    let stored: Vec<_> = home
        .entries(gid)
        .expect("entries")
        .into_iter()
        .filter(|s| s.status == StoredStatus::Valid)
        .collect();
    assert_eq!(
        stored.len(),
        opened.len(),
        "the log and the record have the same length"
    );
    let mut seen: HashSet<EntryId> = HashSet::new();
    let mut built_on: HashSet<EntryId> = HashSet::new();
    for s in &stored {
        assert!(
            opened.contains(&s.id),
            "logged entry {} is in the record",
            s.id
        );
        let parsed = s.entry.parse().expect("a stored entry parses");
        assert_eq!(parsed.hash, s.id, "a stored entry is stored under its hash");
        for d in parsed.change.deps() {
            let d = EntryId::from(*d);
            assert!(
                seen.contains(&d),
                "entry {} is logged before {d}, which it builds on",
                s.id
            );
            built_on.insert(d);
        }
        seen.insert(s.id);
    }
    let mut heads: Vec<EntryId> = seen.difference(&built_on).copied().collect();
    heads.sort();
    assert_eq!(
        heads,
        opened.heads(),
        "the heads of the log are the heads of the record"
    );
}
