//! Members on different networks, through a self-hosted relay: the real `iroh-relay` server (the
//! one `docs/relay.md` tells a board to run) in a network namespace of its own, routed to two
//! other namespaces that have no path to each other (no route between them, and forwarding off in
//! the relay's namespace). Device A serves in one, device B syncs from the other. Without the
//! relay the sync fails within its timeout; with it, B ends holding A's entries.
//!
//! Nothing here leaves the namespaces this test makes: the relay listens on an address inside
//! them, has no QUIC address discovery and no metrics server, and the devices are given no other
//! relay, no DNS and no public address lookup.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod util;

const BIN: &str = env!("CARGO_BIN_EXE_roundtable");

fn rt(home: &Path, args: &[&str]) -> Value {
    let (code, v, err) = rt_status(&[], home, args);
    assert_eq!(code, 0, "roundtable {args:?} failed: {err}");
    v
}

/// Runs the binary (inside a namespace when `prefix` is `ip netns exec NS`): exit code, stdout
/// as JSON (null when it is not), stderr.
fn rt_status(prefix: &[&str], home: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(BIN));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(BIN);
    }
    let out = cmd
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .output()
        .expect("run roundtable");
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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

/// The relay's address: on the relay namespace's loopback, routed to from both sides, so that
/// both devices name the same relay URL.
const RELAY_IP: &str = "10.234.0.1";
const A_IP: &str = "10.234.1.2";

/// Three network namespaces, removed on drop: R (the relay) linked to A and to B by one veth
/// pair each. A and B each have a route to the relay's address only; R does not forward.
struct Three {
    relay: String,
    a: String,
    b: String,
}

impl Three {
    fn new() -> Three {
        // Unique per test in this process too: the tests of this file run at the same time.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = (std::process::id() % 10_000) * 10 + n % 10;
        let t = Three {
            relay: format!("rtr{tag}"),
            a: format!("rtra{tag}"),
            b: format!("rtrb{tag}"),
        };
        for n in [&t.relay, &t.a, &t.b] {
            ip(&["netns", "add", n]);
        }
        let inr = |args: &[&str]| {
            let mut v = vec!["netns", "exec", &t.relay, "ip"];
            v.extend_from_slice(args);
            ip(&v);
        };
        inr(&["link", "set", "lo", "up"]);
        inr(&["addr", "add", &format!("{RELAY_IP}/32"), "dev", "lo"]);
        for (i, ns) in [(1, &t.a), (2, &t.b)] {
            let (near, far) = (format!("rr{i}x{tag}"), format!("rd{i}x{tag}"));
            ip(&["link", "add", &near, "type", "veth", "peer", "name", &far]);
            ip(&["link", "set", &near, "netns", &t.relay]);
            ip(&["link", "set", &far, "netns", ns]);
            inr(&["addr", "add", &format!("10.234.{i}.1/24"), "dev", &near]);
            inr(&["link", "set", &near, "up"]);
            let x = |args: &[&str]| {
                let mut v = vec!["netns", "exec", ns.as_str(), "ip"];
                v.extend_from_slice(args);
                ip(&v);
            };
            x(&["link", "set", "lo", "up"]);
            x(&["addr", "add", &format!("10.234.{i}.2/24"), "dev", &far]);
            x(&["link", "set", &far, "up"]);
            // Only the relay's own address: no route to the other device's network.
            x(&[
                "route",
                "add",
                &format!("{RELAY_IP}/32"),
                "via",
                &format!("10.234.{i}.1"),
            ]);
        }
        // A new namespace starts with forwarding off; make sure, so A and B have no path at all.
        let fwd = Command::new("ip")
            .args([
                "netns",
                "exec",
                &t.relay,
                "cat",
                "/proc/sys/net/ipv4/ip_forward",
            ])
            .output()
            .expect("read ip_forward");
        assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "0");
        t
    }
}

impl Drop for Three {
    fn drop(&mut self) {
        for n in [&self.relay, &self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The real iroh relay server, plain HTTP, run by a thread of this test that has moved into the
/// relay's namespace (a network namespace is per thread). Stops when dropped.
struct Relay {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(netns: &str) -> Relay {
        let path = format!("/run/netns/{netns}");
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let run = || -> Result<(String, tokio::runtime::Runtime, _), String> {
                let ns = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| format!("setns {path}: {e}"))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let server = rt.block_on(async {
                    let mut cfg = iroh_relay::server::ServerConfig::default();
                    // No TLS, no QUIC (so no address discovery), no metrics server.
                    cfg.relay = Some(iroh_relay::server::RelayConfig::new(
                        format!("{RELAY_IP}:0")
                            .parse::<std::net::SocketAddr>()
                            .map_err(|e| e.to_string())?,
                    ));
                    cfg.quic = None;
                    cfg.metrics_addr = None;
                    iroh_relay::server::Server::spawn(cfg)
                        .await
                        .map_err(|e| format!("relay server: {e}"))
                })?;
                let addr = server.http_addr().ok_or("the relay has no HTTP address")?;
                Ok((format!("http://{addr}"), rt, server))
            };
            match run() {
                Err(e) => {
                    let _ = url_tx.send(Err(e));
                }
                Ok((url, rt, server)) => {
                    let _ = url_tx.send(Ok(url));
                    rt.block_on(async {
                        let _ = stopped.await;
                        let _ = server.shutdown().await;
                    });
                }
            }
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the relay thread answers")
            .unwrap_or_else(|e| panic!("the relay did not start: {e}"));
        Relay {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    let mut args = vec!["serve"];
    args.extend_from_slice(extra);
    spawn(prefix, home, &args)
}

/// Starts `roundtable --home HOME --json ARGS` (inside a namespace when `prefix` is
/// `ip netns exec NS`; on the host when it is empty) and reads its first stdout line as JSON.
fn spawn(prefix: &[&str], home: &Path, args: &[&str]) -> (Child, Value) {
    use std::io::BufRead;
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(BIN));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(BIN);
    }
    let mut child = cmd
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start roundtable");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a first line");
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the first line of {args:?} is JSON ({e}): {line:?}"));
    (child, v)
}

#[test]
fn members_on_networks_with_no_path_between_them_sync_through_a_self_hosted_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, thread) = two_members(tmp.path());
    // Written on A after B's copy was made: what B must receive.
    rt(&a, &["post", &thread, "Sent through our own relay"]);
    let nets = Three::new();
    let relay = Relay::start(&nets.relay);
    eprintln!("relay at {}", relay.url);
    let in_a = ["ip", "netns", "exec", nets.a.as_str()];
    let in_b = ["ip", "netns", "exec", nets.b.as_str()];
    let (sa, va) = serve(
        &in_a,
        &a,
        &[
            "--listen",
            &format!("{A_IP}:0"),
            "--no-mdns",
            "--relay",
            &relay.url,
        ],
    );
    let _guard = Killed(vec![sa]);
    let ticket = s(&va, "ticket");
    assert!(
        va["addrs"].to_string().contains(A_IP),
        "A serves on its own network: {va}"
    );

    // The control: without the relay, B has no path to A and the sync fails within its timeout.
    let start = Instant::now();
    let (code, out, err) = rt_status(&in_b, &b, &["sync", &ticket, "--timeout", "8"]);
    let took = start.elapsed();
    assert_eq!(code, 1, "a direct sync must fail here: {out} {err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_ne!(rt(&a, &["heads"]), rt(&b, &["heads"]));
    eprintln!("without the relay: exit 1 after {took:?}: {}", err.trim());

    // Through the relay: B ends holding A's entries.
    let start = Instant::now();
    let (code, out, err) = rt_status(
        &in_b,
        &b,
        &["sync", &ticket, "--relay", &relay.url, "--timeout", "30"],
    );
    let took = start.elapsed();
    assert_eq!(code, 0, "sync through the relay failed: {err}");
    eprintln!("through the relay: {out} in {took:?}");
    assert!(out["received"].as_u64().unwrap_or(0) >= 1, "{out}");
    assert_eq!(rt(&a, &["heads"]), rt(&b, &["heads"]));
    let shown = rt(&b, &["show", &thread]);
    assert!(
        shown.to_string().contains("Sent through our own relay"),
        "{shown}"
    );
    drop(relay);
}

/// `GET /health` of a keeper whose loopback is inside namespace `netns`, from a thread of this
/// test that has moved into it.
fn health_in(netns: &str, url: &str) -> Value {
    let (path, url) = (format!("/run/netns/{netns}"), url.to_string());
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open the namespace");
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        util::health(&url)
    })
    .join()
    .expect("the health thread")
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.code().unwrap_or(-1);
        }
        assert!(start.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn carry(from: &Path, to: &Path, file: &Path) {
    rt(from, &["export", "--bundle", file.to_str().unwrap()]);
    rt(to, &["import", file.to_str().unwrap()]);
}

/// A member's new device, linked on the host over loopback: `device link` on `existing`, `device
/// join` on `new`. Returns the new device's id.
fn link_phone(existing: &Path, new: &Path, name: &str) -> String {
    let (mut host, first) = spawn(
        &[],
        existing,
        &[
            "device",
            "link",
            "--listen",
            "127.0.0.1:0",
            "--expires",
            "5",
        ],
    );
    let joined = rt(
        new,
        &["device", "join", &s(&first, "ticket"), "--name", name],
    );
    assert_eq!(wait_exit(&mut host, Duration::from_secs(30)), 0);
    assert_eq!(joined["synced"], true, "{joined}");
    s(&joined, "device_id")
}

fn texts_of(home: &Path, prefix: &[&str], thread: &str) -> Vec<String> {
    let (code, v, err) = rt_status(prefix, home, &["show", thread]);
    assert_eq!(code, 0, "{err}");
    util::thread_texts(&v)
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const SEALED_WORDS: &str = "Cai's carer can come on Tuesdays only";

/// Issue 16's test: three members (Ana, Ben, Cai) with five devices (Ana and Cai each have a
/// phone) and a keeper, on networks that do not reach each other. Ana's and Cai's devices are on
/// network A, Ben's on network B; the keeper and the board's own relay sit between them. Ben syncs
/// only through the relay and the keeper. Ana and Ben are never online together; Ana's phone is
/// stopped and what it writes afterwards is refused everywhere; Cai loses both devices and the
/// group brings Cai back on a new one. Every device still in use ends with the same record, the
/// keeper's store holds no sealed words, and the auditor verifies the whole history.
#[test]
fn three_members_five_devices_and_a_keeper_across_networks_end_with_one_record() {
    let tmp = tempfile::tempdir().unwrap();
    let home = |n: &str| tmp.path().join(n);
    let (a, ap, b, c, cp, k, cn) = (
        home("ana"),
        home("ana-phone"),
        home("ben"),
        home("cai"),
        home("cai-phone"),
        home("keeper"),
        home("cai-new"),
    );
    let bundle = home("carry.bundle");

    // On one table first: the group, two phones, a keeper named by the group, a sealed thread.
    rt(&a, &["init", "--name", "Ana"]);
    let bid = s(&rt(&b, &["init", "--name", "Ben"]), "member_id");
    let cid = s(&rt(&c, &["init", "--name", "Cai"]), "member_id");
    let kid = s(&rt(&k, &["init", "--name", "Council PC"]), "device_id");
    rt(&a, &["group", "create", "Board"]);
    rt(&a, &["member", "add", &bid, "--name", "Ben"]);
    let p = s(
        &rt(&a, &["member", "add", &cid, "--name", "Cai"]),
        "proposal_id",
    );
    carry(&a, &b, &bundle);
    rt(&b, &["stance", &p, "agree"]);
    rt(&b, &["close", &p, "--outcome", "Cai joins"]);
    carry(&b, &a, &bundle);
    carry(&a, &c, &bundle);
    let ap_id = link_phone(&a, &ap, "Ana's phone");
    link_phone(&c, &cp, "Cai's phone");
    carry(&a, &b, &bundle);
    carry(&c, &b, &bundle);
    let p = s(
        &rt(&b, &["keeper", "add", &kid, "--name", "Council PC"]),
        "proposal_id",
    );
    carry(&b, &a, &bundle);
    rt(&a, &["stance", &p, "agree"]);
    rt(
        &a,
        &["close", &p, "--outcome", "The council PC keeps our record"],
    );
    carry(&a, &b, &bundle);
    carry(&a, &c, &bundle);
    let thread = s(&rt(&a, &["thread", "new", "Meetings"]), "thread_id");
    let sealed = s(
        &rt(
            &c,
            &[
                "thread",
                "new",
                "Cai's support",
                "--sealed",
                "--reader",
                &bid,
                "--reason",
                "It is about Cai's care",
            ],
        ),
        "thread_id",
    );
    rt(&c, &["post", &sealed, SEALED_WORDS]);
    carry(&c, &a, &bundle);
    carry(&a, &ap, &bundle);

    let nets = Three::new();
    let relay = Relay::start(&nets.relay);
    let in_a = ["ip", "netns", "exec", nets.a.as_str()];
    let in_b = ["ip", "netns", "exec", nets.b.as_str()];
    let in_r = ["ip", "netns", "exec", nets.relay.as_str()];
    let ok = |prefix: &[&str], home: &Path, args: &[&str]| {
        let (code, v, err) = rt_status(prefix, home, args);
        assert_eq!(code, 0, "roundtable {args:?} failed: {err}");
        v
    };
    let net = |ip: &str| {
        vec![
            "--listen".to_string(),
            format!("{ip}:0"),
            "--relay".to_string(),
            relay.url.clone(),
        ]
    };
    let args = |fixed: &[&str], more: &[String]| {
        let mut v: Vec<String> = fixed.iter().map(|x| x.to_string()).collect();
        v.extend_from_slice(more);
        v
    };
    let mut guard = Killed(vec![]);

    // Ana serves on network A; the keeper, between the networks, pulls from her every second.
    let (sa, va) = serve(&in_a, &a, &refs(&args(&["--no-mdns"], &net(A_IP))));
    let ticket_a = s(&va, "ticket");
    guard.0.push(sa);
    let keep_args = args(
        &[
            "keep",
            "--interval",
            "1",
            "--health",
            "127.0.0.1:0",
            "--peer",
            &ticket_a,
        ],
        &net(RELAY_IP),
    );
    let (kp, first) = spawn(&in_r, &k, &refs(&keep_args));
    guard.0.push(kp);
    let ticket_k = first["tickets"][0]["ticket"]
        .as_str()
        .unwrap_or_else(|| panic!("the keeper holds the group after its first round: {first}"))
        .to_string();
    let health = first["health"].as_str().expect("a health URL").to_string();

    // Ana writes and goes away; the keeper has what she wrote.
    ok(&in_a, &a, &["post", &thread, "Ana: the hall is booked"]);
    let start = Instant::now();
    let held = loop {
        let h = health_in(&nets.relay, &health);
        let want = ok(&in_a, &a, &["heads"]);
        if ok(&in_r, &k, &["heads"]) == want {
            break h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the keeper did not pull: {h}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(held["ok"], true, "{held}");
    assert!(held["peers_seen"].as_u64().unwrap_or(0) >= 1, "{held}");
    let mut sa = guard.0.remove(0);
    let _ = sa.kill();
    let _ = sa.wait();

    // Ben, on network B, has no path to Ana: he syncs with the keeper, and gets her words (and the
    // sealed thread he reads) while she is offline.
    let got = ok(
        &in_b,
        &b,
        &["sync", &ticket_k, "--relay", &relay.url, "--timeout", "30"],
    );
    assert_eq!(got["rejected"], 0, "{got}");
    assert!(texts_of(&b, &in_b, &thread).contains(&"Ana: the hall is booked".to_string()));
    assert!(texts_of(&b, &in_b, &sealed).contains(&SEALED_WORDS.to_string()));
    ok(&in_b, &b, &["post", &thread, "Ben: I will bring the tea"]);
    ok(
        &in_b,
        &b,
        &["sync", &ticket_k, "--relay", &relay.url, "--timeout", "30"],
    );

    // Ana stops her phone from her laptop, back on network A, and syncs with the keeper. The phone,
    // offline, does not know, and writes: at the same moment as the stop, so it is kept but counts
    // for nothing, and the phone cannot pass it on (refused at the sync); it travels only in a file.
    ok(&in_a, &a, &["device", "revoke", &ap_id]);
    ok(&in_a, &a, &["sync", &ticket_k, "--timeout", "30"]);
    assert!(texts_of(&a, &in_a, &thread).contains(&"Ben: I will bring the tea".to_string()));
    ok(&in_a, &ap, &["post", &thread, "Written on the lost phone"]);
    let (code, _, err) = rt_status(&in_a, &ap, &["sync", &ticket_k, "--timeout", "20"]);
    assert_eq!(code, 1, "the stopped phone is refused: {err}");
    let phone_bundle = home("phone.bundle");
    ok(
        &in_a,
        &ap,
        &["export", "--bundle", phone_bundle.to_str().unwrap()],
    );
    ok(
        &in_b,
        &b,
        &["sync", &ticket_k, "--relay", &relay.url, "--timeout", "30"],
    );
    ok(&in_b, &b, &["import", phone_bundle.to_str().unwrap()]);
    // Once the phone has the stop in its past, whatever it writes is refused.
    let ana_bundle = home("ana.bundle");
    ok(
        &in_a,
        &a,
        &["export", "--bundle", ana_bundle.to_str().unwrap()],
    );
    ok(&in_a, &ap, &["import", ana_bundle.to_str().unwrap()]);
    let (code, _, err) = rt_status(&in_a, &ap, &["post", &thread, "After the stop"]);
    assert_eq!(code, 1, "a stopped device's later entry is refused: {err}");

    // Cai loses both devices. Ana makes a recovery link; Cai's new device takes it; Ben agrees
    // through the keeper; Ana closes; the new device syncs with the keeper and writes as Cai.
    let (mut host, link) = spawn(
        &in_a,
        &a,
        &refs(&args(
            &["member", "recover", &cid, "--expires", "5"],
            &net(A_IP),
        )),
    );
    let joined = ok(
        &in_a,
        &cn,
        &[
            "device",
            "join",
            &s(&link, "ticket"),
            "--name",
            "Cai's new phone",
        ],
    );
    assert_eq!(wait_exit(&mut host, Duration::from_secs(30)), 0);
    let pid = s(&joined, "proposal_id");
    ok(&in_a, &a, &["sync", &ticket_k, "--timeout", "30"]);
    ok(
        &in_b,
        &b,
        &["sync", &ticket_k, "--relay", &relay.url, "--timeout", "30"],
    );
    ok(&in_b, &b, &["stance", &pid, "agree"]);
    ok(
        &in_b,
        &b,
        &["sync", &ticket_k, "--relay", &relay.url, "--timeout", "30"],
    );
    ok(&in_a, &a, &["sync", &ticket_k, "--timeout", "30"]);
    ok(&in_a, &a, &["close", &pid, "--outcome", "Cai is back"]);
    ok(&in_a, &a, &["sync", &ticket_k, "--timeout", "30"]);
    ok(&in_a, &cn, &["sync", &ticket_k, "--timeout", "30"]);
    let id = ok(&in_a, &cn, &["id"]);
    assert_eq!(s(&id, "member_id"), cid, "{id}");
    ok(&in_a, &cn, &["post", &thread, "Cai: back on my new phone"]);
    ok(&in_a, &cn, &["sync", &ticket_k, "--timeout", "30"]);
    // Cai's old devices are refused.
    for old in [&c, &cp] {
        let (code, _, err) = rt_status(&in_a, old, &["sync", &ticket_k, "--timeout", "20"]);
        assert_eq!(code, 1, "an old device of Cai is refused: {err}");
    }

    // Ben, last, through the relay straight to Ana this time (she serves again), and everyone
    // with the keeper, until nothing new is written (a device that learns of Cai's new key hands
    // Cai the sealed thread's keys, which is one more entry to pass on).
    let (sa, va) = serve(&in_a, &a, &refs(&args(&["--no-mdns"], &net(A_IP))));
    guard.0.push(sa);
    let ticket_a = s(&va, "ticket");
    let mut rounds = 0;
    loop {
        ok(
            &in_b,
            &b,
            &["sync", &ticket_k, "--relay", &relay.url, "--timeout", "30"],
        );
        ok(
            &in_b,
            &b,
            &["sync", &ticket_a, "--relay", &relay.url, "--timeout", "30"],
        );
        ok(&in_a, &cn, &["sync", &ticket_k, "--timeout", "30"]);
        ok(&in_a, &a, &["sync", &ticket_k, "--timeout", "30"]);
        let heads = ok(&in_a, &a, &["heads"]);
        let same = [(&in_b, &b), (&in_a, &cn), (&in_r, &k)]
            .iter()
            .all(|(prefix, home)| ok(prefix.as_slice(), home, &["heads"]) == heads);
        if same {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 4,
            "the devices still differ after {rounds} rounds of syncs"
        );
    }
    assert!(
        texts_of(&cn, &in_a, &sealed).contains(&SEALED_WORDS.to_string()),
        "Cai's new device reads the sealed thread"
    );

    // One record on every device still in use (checked above); in it, everyone's words.
    let words = texts_of(&b, &in_b, &thread);
    for w in [
        "Ana: the hall is booked",
        "Ben: I will bring the tea",
        "Cai: back on my new phone",
    ] {
        assert!(words.contains(&w.to_string()), "{w}: {words:?}");
    }
    let (_, shown, _) = rt_status(&in_b, &b, &["show", &thread]);
    let lost = shown["threads"][0]["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|m| m["text"] == "Written on the lost phone"))
        .unwrap_or_else(|| panic!("the phone's entry is kept and shown: {shown}"));
    assert!(
        lost["marks"].to_string().contains("no_effect"),
        "written at the same moment as its stop, it counts for nothing: {lost}"
    );
    assert!(!words.contains(&"After the stop".to_string()), "{words:?}");
    drop(guard);
    drop(relay);

    // The keeper holds the sealed thread as ciphertext only; the whole history verifies.
    let bytes = util::all_bytes(&k);
    assert!(
        util::holds(&bytes, "Ana: the hall is booked"),
        "the check can see open words"
    );
    assert!(
        !util::holds(&bytes, SEALED_WORDS),
        "the keeper's store holds no sealed words"
    );
    let all = home("all.bundle");
    rt(&a, &["export", "--bundle", all.to_str().unwrap()]);
    util::audits(&all);
}
