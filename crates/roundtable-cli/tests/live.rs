//! Live sync through the real binary: `serve --connect` on loopback, and local-network discovery
//! (mDNS) between two network namespaces this test creates itself. Every `serve` here either runs
//! with `--no-mdns` or inside those namespaces: multicast never touches the machine's own interfaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_roundtable");

fn rt(home: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .output()
        .expect("run roundtable");
    assert!(
        out.status.success(),
        "roundtable {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no {k} in {v}"))
        .to_string()
}

/// Two members' homes holding the same group: A started it and added B; B imported A's bundle.
fn two_members(dir: &Path) -> (PathBuf, PathBuf, String) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    rt(&a, &["init", "--name", "Ana"]);
    let bid = s(&rt(&b, &["init", "--name", "Ben"]), "member_id");
    rt(&a, &["group", "create", "Board"]);
    rt(&a, &["member", "add", &bid, "--name", "Ben"]);
    let thread = s(&rt(&a, &["thread", "new", "Meeting"]), "thread_id");
    let bundle = dir.join("a.bundle");
    rt(&a, &["export", "--bundle", bundle.to_str().unwrap()]);
    rt(&b, &["import", bundle.to_str().unwrap()]);
    (a, b, thread)
}

struct Killed(Vec<Child>);
impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(prefix: &[&str], home: &Path, extra: &[&str]) -> (Child, Value) {
    use std::io::BufRead;
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(BIN));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(BIN);
    }
    let mut child = cmd
        .arg("--home")
        .arg(home)
        .arg("serve")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("serve prints its first line");
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("serve's first line is JSON ({e}): {line:?}"));
    (child, v)
}

/// Waits until `b`'s heads equal `a`'s; returns how long it took.
fn converge(a: &Path, b: &Path, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (ha, hb) = (rt(a, &["heads"]), rt(b, &["heads"]));
        if ha == hb {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "no convergence within {limit:?}: {ha} vs {hb}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_sync_pushes_new_entries_within_about_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, thread) = two_members(tmp.path());
    let (sa, va) = serve(&[], &a, &["--listen", "127.0.0.1:0", "--no-mdns"]);
    let _guard_a = Killed(vec![sa]);
    let (sb, _) = serve(
        &[],
        &b,
        &[
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
            "--connect",
            &s(&va, "ticket"),
        ],
    );
    let _guard_b = Killed(vec![sb]);
    // Written on A while both serve: B's serving process receives it by push, not by a sync command.
    rt(&a, &["post", &thread, "Can everyone see this?"]);
    let took = converge(&a, &b, Duration::from_secs(15));
    eprintln!("A → B live: {took:?}");
    // And the other way.
    rt(&b, &["post", &thread, "Yes, I can."]);
    let took = converge(&a, &b, Duration::from_secs(15));
    eprintln!("B → A live: {took:?}");
    let shown = rt(&b, &["show", &thread]);
    assert_eq!(
        shown["threads"][0]["entries"].as_array().map(|e| e.len()),
        Some(2),
        "{shown}"
    );
}

/// A pair of network namespaces joined by a veth link, removed on drop.
struct Netns {
    names: [String; 2],
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`ip` (iproute2) is needed for this test: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn new() -> Netns {
        // Unique per test too: tests of this file run at the same time.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let names = [format!("rta{tag}"), format!("rtb{tag}")];
        let links = [format!("va{tag}"), format!("vb{tag}")];
        let ns = Netns {
            names: names.clone(),
        };
        ip(&["netns", "add", &names[0]]);
        ip(&["netns", "add", &names[1]]);
        ip(&[
            "link", "add", &links[0], "type", "veth", "peer", "name", &links[1],
        ]);
        for i in 0..2 {
            ip(&["link", "set", &links[i], "netns", &names[i]]);
            let x = |args: &[&str]| {
                let mut v = vec!["netns", "exec", &names[i], "ip"];
                v.extend_from_slice(args);
                ip(&v);
            };
            x(&[
                "addr",
                "add",
                &format!("10.231.0.{}/24", i + 1),
                "dev",
                &links[i],
            ]);
            x(&["link", "set", &links[i], "up", "multicast", "on"]);
            x(&["link", "set", "lo", "up"]);
            x(&["route", "add", "224.0.0.0/4", "dev", &links[i]]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn devices_in_one_room_find_each_other_by_mdns() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, thread) = two_members(tmp.path());
    let ns = Netns::new();
    let (sa, _) = serve(&["ip", "netns", "exec", &ns.names[0]], &a, &[]);
    let (sb, _) = serve(&["ip", "netns", "exec", &ns.names[1]], &b, &[]);
    let _guard = Killed(vec![sa, sb]);
    // No ticket is exchanged: the two serving devices find each other on the link.
    rt(&a, &["post", &thread, "Found you without a ticket"]);
    let took = converge(&a, &b, Duration::from_secs(30));
    eprintln!("mDNS discovery and live sync: {took:?}");
}

#[test]
fn sync_nearby_syncs_once_with_the_members_devices_found_by_mdns() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, thread) = two_members(tmp.path());
    rt(&a, &["post", &thread, "Found in the room, no ticket"]);
    let ns = Netns::new();
    let in_b = ["ip", "netns", "exec", ns.names[1].as_str()];
    // Nobody serving nearby: exit 1, saying so, within the time given.
    let start = Instant::now();
    let (code, out, err) = rt_status_in(&in_b, &b, &["sync", "--nearby", "--timeout", "3"]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(err.contains("no member's device"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_ne!(rt(&a, &["heads"]), rt(&b, &["heads"]));
    // A serves in the other namespace on the same link: B finds it by mDNS and syncs once.
    let (sa, va) = serve(&["ip", "netns", "exec", &ns.names[0]], &a, &[]);
    let _guard = Killed(vec![sa]);
    let start = Instant::now();
    let (code, out, err) = rt_status_in(&in_b, &b, &["sync", "--nearby", "--timeout", "20"]);
    assert_eq!(code, 0, "{err}");
    eprintln!("sync --nearby: {out} in {:?}", start.elapsed());
    let synced = out["synced"].as_array().expect("synced is a list");
    assert_eq!(synced.len(), 1, "{out}");
    assert_eq!(synced[0]["device_id"], va["device_id"], "{out}");
    assert_eq!(synced[0]["name"], "Ana", "{out}");
    assert!(synced[0]["received"].as_u64().unwrap_or(0) >= 1, "{out}");
    for k in ["sent", "rejected", "bytes_sent", "bytes_received"] {
        assert!(synced[0][k].is_u64(), "{k} in {out}");
    }
    // It is every other member's device, so it did not wait out the timeout.
    assert!(start.elapsed() < Duration::from_secs(18));
    assert_eq!(rt(&a, &["heads"]), rt(&b, &["heads"]));
    // A ticket and --nearby together make no sense.
    let (code, _, err) = rt_status(&b, &["sync", &s(&va, "ticket"), "--nearby"]);
    assert_eq!(code, 2, "{err}");
}

fn rt_status_in(prefix: &[&str], home: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(BIN)
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .output()
        .expect("run roundtable");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn rt_status(home: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .output()
        .expect("run roundtable");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn invitation_adds_the_new_member_once_and_syncs_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, thread) = two_members(tmp.path());
    rt(&a, &["post", &thread, "Welcome to the board"]);
    let (sa, va) = serve(&[], &a, &["--listen", "127.0.0.1:0", "--no-mdns"]);
    let _guard = Killed(vec![sa]);
    let device = s(&va, "device_id");
    let ticket = s(&rt(&a, &["invite", "--expires", "10"]), "ticket");
    let c = tmp.path().join("c");
    let joined = rt(
        &c,
        &["join", &ticket, "--name", "Cara", "--needs", "read aloud"],
    );
    let cara = s(&joined, "member_id");
    assert_eq!(
        joined["group_id"],
        rt(&a, &["group", "list"])["groups"][0]["group_id"]
    );
    // The inviting device asked the group, with Ana's agree; Ben must agree too, so Cara is not
    // in yet and her device is refused the record.
    assert_eq!(joined["joined"], false, "{joined}");
    let p = s(&joined, "proposal_id");
    let ticket_a = s(&va, "ticket");
    let (code, _, err) = rt_status(&c, &["sync", &ticket_a, "--timeout", "10"]);
    assert_eq!(code, 1, "{err}");
    // Ben gets the proposal, agrees, hands it back; Ana closes it: Cara is in, with her own words.
    rt(&b, &["sync", &ticket_a, "--timeout", "10"]);
    rt(&b, &["stance", &p, "agree"]);
    rt(&b, &["sync", &ticket_a, "--timeout", "10"]);
    let closed = rt(&a, &["close", &p, "--outcome", "Welcome, Cara"]);
    assert_eq!(closed["decision"], "passed", "{closed}");
    rt(&c, &["sync", &ticket_a, "--timeout", "10"]);
    converge(&a, &c, Duration::from_secs(10));
    let members = rt(&c, &["member", "list"]);
    let row = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member_id"] == cara.as_str())
        .cloned();
    assert_eq!(
        row.as_ref().map(|m| m["status"].clone()),
        Some(Value::from("active")),
        "{members}"
    );
    assert_eq!(
        row.as_ref().map(|m| m["name"].clone()),
        Some(Value::from("Cara"))
    );
    // Her own words about what helps her, not words someone else typed.
    assert_eq!(
        row.map(|m| m["needs"].clone()),
        Some(Value::from("read aloud"))
    );
    assert!(
        rt(&a, &["peers"])["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device_id"] == cara.as_str())
    );
    // Single use: a second device with the same invitation is refused.
    let (code, _, err) = rt_status(&tmp.path().join("d"), &["join", &ticket, "--name", "Dan"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already been used"), "{err}");
    // Expired invitations are refused too.
    let old = s(&rt(&a, &["invite", "--expires", "0"]), "ticket");
    std::thread::sleep(Duration::from_millis(50));
    let (code, _, err) = rt_status(&tmp.path().join("e"), &["join", &old, "--name", "Eve"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expired"), "{err}");
    let _ = device;
}

#[test]
fn a_non_member_device_is_refused_with_a_clear_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b, _) = two_members(tmp.path());
    let (sa, va) = serve(&[], &a, &["--listen", "127.0.0.1:0", "--no-mdns"]);
    let _guard = Killed(vec![sa]);
    let x = tmp.path().join("x");
    rt(&x, &["init", "--name", "Stranger"]);
    let before = rt(&a, &["heads"]);
    let (code, _, err) = rt_status(&x, &["sync", &s(&va, "ticket"), "--timeout", "10"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refused") && err.contains("not a member"),
        "{err}"
    );
    assert_eq!(rt(&a, &["heads"]), before);
}

#[test]
fn a_device_added_while_serving_publishes_its_key_and_can_be_made_a_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, c) = (tmp.path().join("a"), tmp.path().join("c"));
    rt(&a, &["init", "--name", "Ana"]);
    let cid = s(&rt(&c, &["init", "--name", "Cy"]), "member_id");
    rt(&a, &["group", "create", "Board"]);
    // Cy's device holds the group (from a bundle) before Cy is a member.
    let bundle = tmp.path().join("a.bundle");
    rt(&a, &["export", "--bundle", bundle.to_str().unwrap()]);
    rt(&c, &["import", bundle.to_str().unwrap()]);
    let (sa, va) = serve(&[], &a, &["--listen", "127.0.0.1:0", "--no-mdns"]);
    let (sc, _) = serve(
        &[],
        &c,
        &[
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
            "--connect",
            &s(&va, "ticket"),
        ],
    );
    let _guard = Killed(vec![sa, sc]);
    // Added while both serve: Cy's serving device learns it live, publishes its key, pushes it back.
    rt(&a, &["member", "add", &cid, "--name", "Cy"]);
    let start = Instant::now();
    let t = loop {
        let (code, out, err) = rt_status(
            &a,
            &[
                "thread",
                "new",
                "Cy's support",
                "--sealed",
                "--reader",
                &cid,
                "--reason",
                "It is about Cy",
            ],
        );
        if code == 0 {
            break s(&out, "thread_id");
        }
        assert!(err.contains("cannot be made a reader yet"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Cy's key never arrived: {err}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    rt(&a, &["post", &t, "Only Ana and Cy read this"]);
    converge(&a, &c, Duration::from_secs(15));
    let shown = rt(&c, &["show", &t]);
    assert_eq!(shown["readable"], true, "{shown}");
    assert_eq!(shown["messages"][0]["text"], "Only Ana and Cy read this");
}
