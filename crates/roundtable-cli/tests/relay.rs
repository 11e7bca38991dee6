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
        let tag = std::process::id() % 100_000;
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
    use std::io::BufRead;
    let mut child = Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(BIN)
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
