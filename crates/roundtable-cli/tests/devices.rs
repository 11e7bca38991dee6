//! A member's devices through the real binary, over iroh on loopback: `device link` on Ana's
//! laptop, `device join` on her new phone, the phone writing as Ana, `device list`, and
//! `device revoke` from the laptop: the stopped phone is refused at the sync and by the rules.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod util;
use util::{BIN, audits};

fn run(home: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(BIN)
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

fn rt(home: &Path, args: &[&str]) -> Value {
    let (code, v, err) = run(home, args);
    assert_eq!(code, 0, "roundtable {args:?} failed: {err}");
    v
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no {k} in {v}"))
        .to_string()
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

/// Starts `roundtable ARGS` and reads its first stdout line as JSON.
fn spawn(home: &Path, args: &[&str]) -> (Child, Value) {
    let mut child = Command::new(BIN)
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
        .unwrap_or_else(|e| panic!("the first line is JSON ({e}): {line:?}"));
    (child, v)
}

fn wait(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.code().unwrap_or(-1);
        }
        assert!(start.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ana (who started the group) and Ben, both members, with one thread.
fn board(dir: &Path) -> (PathBuf, PathBuf, String) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    rt(&a, &["init", "--name", "Ana", "--needs", "large print"]);
    let bid = s(&rt(&b, &["init", "--name", "Ben"]), "member_id");
    rt(&a, &["group", "create", "Board"]);
    rt(&a, &["member", "add", &bid, "--name", "Ben"]);
    let thread = s(&rt(&a, &["thread", "new", "Meeting"]), "thread_id");
    let bundle = dir.join("a.bundle");
    rt(&a, &["export", "--bundle", bundle.to_str().unwrap()]);
    rt(&b, &["import", bundle.to_str().unwrap()]);
    (a, b, thread)
}

/// Ana's sealed thread "Ben's support", for Ana and `ben`; its id.
fn bens_support(ana: &Path, ben: &str) -> String {
    let args = [
        "thread",
        "new",
        "Ben's support",
        "--sealed",
        "--reader",
        ben,
        "--reason",
        "It is about Ben's health",
    ];
    s(&rt(ana, &args), "thread_id")
}

fn messages(home: &Path, thread: &str) -> Vec<Value> {
    let v = rt(home, &["show", thread]);
    v["threads"][0]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no messages in {v}"))
}

#[test]
fn a_member_links_a_phone_writes_from_it_and_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, thread) = board(tmp.path());
    let ana = s(&rt(&a, &["id"]), "member_id");

    let (mut link, first) = spawn(
        &a,
        &[
            "device",
            "link",
            "--listen",
            "127.0.0.1:0",
            "--expires",
            "5",
        ],
    );
    let mut guard = Killed(vec![]);
    let ticket = s(&first, "ticket");
    // A link is not an invitation, nor a ticket to sync with.
    let (code, _, err) = run(&tmp.path().join("x"), &["join", &ticket, "--name", "X"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("device join"), "{err}");

    let phone = tmp.path().join("phone");
    let joined = rt(
        &phone,
        &["device", "join", &ticket, "--name", "Ana's phone"],
    );
    assert_eq!(s(&joined, "member_id"), ana, "{joined}");
    let phone_id = s(&joined, "device_id");
    assert_ne!(phone_id, ana);
    assert_eq!(joined["synced"], true, "{joined}");
    assert_eq!(wait(&mut link, Duration::from_secs(30)), 0);
    // Used once: a second device with the same link is refused by nobody answering it any more,
    // and the phone's own home refuses a second join.
    let (code, _, err) = run(&phone, &["device", "join", &ticket, "--name", "again"]);
    assert_ne!(code, 0, "{err}");

    let id = rt(&phone, &["id"]);
    assert_eq!(
        (s(&id, "member_id"), s(&id, "device_id")),
        (ana.clone(), phone_id.clone())
    );
    let list = rt(&phone, &["device", "list"]);
    let devices = list["devices"].as_array().expect("devices").clone();
    assert_eq!(devices.len(), 2, "{list}");
    assert_eq!(devices[0]["device_id"], ana.as_str());
    assert_eq!(devices[1]["device_id"], phone_id.as_str());
    assert_eq!(devices[1]["name"], "Ana's phone");
    assert_eq!(devices[1]["this_device"], true);
    // Still two members: a device is not a seat.
    let members = rt(&phone, &["member", "list"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(2),
        "{members}"
    );

    // The phone writes; the laptop serves; Ben sees it as Ana's.
    let (sa, va) = spawn(&a, &["serve", "--listen", "127.0.0.1:0", "--no-mdns"]);
    guard.0.push(sa);
    let ticket_a = s(&va, "ticket");
    rt(&phone, &["post", &thread, "Written on my phone"]);
    rt(&phone, &["sync", &ticket_a, "--timeout", "10"]);
    rt(&b, &["sync", &ticket_a, "--timeout", "10"]);
    let msgs = messages(&b, &thread);
    let m = msgs
        .iter()
        .find(|m| m["text"] == "Written on my phone")
        .unwrap_or_else(|| panic!("Ben lacks the phone's message: {msgs:?}"));
    assert_eq!(m["author"]["member_id"], ana.as_str(), "{m}");
    assert_eq!(m["author"]["name"], "Ana", "{m}");

    // The laptop stops the phone (the phone cannot stop itself).
    let (code, _, err) = run(&phone, &["device", "revoke", &phone_id]);
    assert_eq!(code, 1, "{err}");
    rt(&a, &["device", "revoke", &phone_id]);
    let list = rt(&a, &["device", "list"]);
    assert_eq!(list["devices"][1]["stopped"], true, "{list}");
    // Refused at the sync from now on.
    let (code, out, err) = run(&phone, &["sync", &ticket_a, "--timeout", "10"]);
    assert_eq!(code, 1, "{out} {err}");
    // Ben learns of the stop; the laptop goes on.
    rt(&b, &["sync", &ticket_a, "--timeout", "10"]);
    rt(&a, &["post", &thread, "Still here on the laptop"]);
    // The whole history verifies for an auditor.
    let bundle = tmp.path().join("all.bundle");
    rt(&b, &["export", "--bundle", bundle.to_str().unwrap()]);
    audits(&bundle);
}

#[test]
fn device_join_refuses_an_invitation_a_home_and_a_damaged_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b, _) = board(tmp.path());
    let (sa, va) = spawn(&a, &["serve", "--listen", "127.0.0.1:0", "--no-mdns"]);
    let _guard = Killed(vec![sa]);
    // An invitation for a new member is not a device link: no seat can be taken with it.
    let invite = s(&rt(&a, &["invite", "--expires", "5"]), "ticket");
    let (code, _, err) = run(
        &tmp.path().join("p"),
        &["device", "join", &invite, "--name", "p"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a device link"), "{err}");
    assert!(!tmp.path().join("p").join("device.key").exists());
    let (code, _, err) = run(
        &tmp.path().join("q"),
        &["device", "join", &s(&va, "ticket"), "--name", "q"],
    );
    assert_eq!(code, 1, "{err}");
    // A folder that already holds a home.
    let (mut link, first) = spawn(
        &a,
        &[
            "device",
            "link",
            "--listen",
            "127.0.0.1:0",
            "--expires",
            "1",
        ],
    );
    let ticket = s(&first, "ticket");
    let (code, _, err) = run(&a, &["device", "join", &ticket, "--name", "again"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already has a home"), "{err}");
    let _ = link.kill();
    let _ = link.wait();
    let (code, _, err) = run(
        &tmp.path().join("r"),
        &["device", "join", "rtdamaged", "--name", "r"],
    );
    assert_eq!(code, 2, "{err}");
}

fn carry(from: &Path, to: &Path, file: &Path) {
    rt(from, &["export", "--bundle", file.to_str().unwrap()]);
    rt(to, &["import", file.to_str().unwrap()]);
}

/// Issue 16, item 2: Ben lost every device. Ana makes a recovery link; Ben's new device takes it
/// and the group is asked; until it agrees the new device cannot sync. Cai agrees and closes; the
/// new device then syncs, writes as Ben, and Ben's old device is refused. The auditor verifies it.
#[test]
fn the_group_brings_a_member_back_on_a_new_device() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let bundle = tmp.path().join("carry.bundle");
    rt(&a, &["init", "--name", "Ana"]);
    let bid = s(&rt(&b, &["init", "--name", "Ben"]), "member_id");
    let cid = s(&rt(&c, &["init", "--name", "Cai"]), "member_id");
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
    let thread = s(&rt(&a, &["thread", "new", "Meeting"]), "thread_id");
    let sealed = bens_support(&a, &bid);
    rt(&a, &["post", &sealed, "A quiet room is booked for Ben"]);
    carry(&a, &c, &bundle);

    // Your own seat takes a device link, not the group's help.
    let (code, _, err) = run(
        &a,
        &["member", "recover", &s(&rt(&a, &["id"]), "member_id")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("device link"), "{err}");

    let (mut host, first) = spawn(
        &a,
        &[
            "member",
            "recover",
            &bid,
            "--listen",
            "127.0.0.1:0",
            "--expires",
            "5",
        ],
    );
    let mut guard = Killed(vec![]);
    let newb = tmp.path().join("ben-new");
    let joined = rt(
        &newb,
        &[
            "device",
            "join",
            &s(&first, "ticket"),
            "--name",
            "Ben's new phone",
        ],
    );
    assert_eq!(wait(&mut host, Duration::from_secs(30)), 0);
    assert_eq!(s(&joined, "member_id"), bid, "{joined}");
    assert_eq!(joined["synced"], false, "{joined}");
    let pid = s(&joined, "proposal_id");
    let new_id = s(&joined, "device_id");

    let (sa, va) = spawn(&a, &["serve", "--listen", "127.0.0.1:0", "--no-mdns"]);
    guard.0.push(sa);
    let ticket_a = s(&va, "ticket");
    // Asked, not decided: the new device is nobody's yet.
    let (code, _, err) = run(&newb, &["sync", &ticket_a, "--timeout", "10"]);
    assert_eq!(code, 1, "{err}");
    // Ana's agree alone does not decide it.
    let (code, _, err) = run(&a, &["close", &pid, "--outcome", "Ben is back"]);
    assert_eq!(code, 1, "{err}");
    rt(&c, &["sync", &ticket_a, "--timeout", "10"]);
    rt(&c, &["stance", &pid, "agree"]);
    rt(&c, &["close", &pid, "--outcome", "Ben is back"]);
    rt(&c, &["sync", &ticket_a, "--timeout", "10"]);

    rt(&newb, &["sync", &ticket_a, "--timeout", "10"]);
    let id = rt(&newb, &["id"]);
    assert_eq!(
        (s(&id, "member_id"), s(&id, "device_id")),
        (bid.clone(), new_id.clone())
    );
    rt(&newb, &["post", &thread, "Back on my new phone"]);
    rt(&newb, &["sync", &ticket_a, "--timeout", "10"]);
    let msgs = messages(&a, &thread);
    let m = msgs
        .iter()
        .find(|m| m["text"] == "Back on my new phone")
        .unwrap_or_else(|| panic!("Ana lacks the new phone's message: {msgs:?}"));
    assert_eq!(m["author"]["member_id"], bid.as_str(), "{m}");
    // The sealed thread: the new device publishes a new key, which Ana's device sends the thread's
    // keys to, and her next message uses a new key, which the lost phone's key does not open.
    rt(&a, &["post", &sealed, "Welcome back, Ben"]);
    rt(&newb, &["sync", &ticket_a, "--timeout", "10"]);
    let v = rt(&newb, &["show", &sealed]);
    assert_eq!(v["readable"], true, "{v}");
    let texts: Vec<&str> = v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["A quiet room is booked for Ben", "Welcome back, Ben"],
        "{v}"
    );
    rt(&newb, &["post", &sealed, "Thank you, I can read it all"]);
    rt(&newb, &["sync", &ticket_a, "--timeout", "10"]);
    let v = rt(&a, &["show", &sealed]);
    let last = v["messages"]
        .as_array()
        .and_then(|m| m.last())
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(last["text"], "Thank you, I can read it all", "{v}");
    assert_eq!(last["author"]["member_id"], bid.as_str(), "{v}");
    assert_eq!(last["author"]["name"], "Ben", "{v}");
    let list = rt(&newb, &["device", "list"]);
    let devices = list["devices"].as_array().expect("devices").clone();
    assert_eq!(devices.len(), 2, "{list}");
    assert_eq!(devices[0]["stopped"], true, "the old device: {list}");
    assert_eq!(devices[1]["device_id"], new_id.as_str(), "{list}");
    // Ben's old device is stopped by the group's decision: refused at the sync.
    let (code, _, err) = run(&b, &["sync", &ticket_a, "--timeout", "10"]);
    assert_eq!(code, 1, "{err}");
    // Still three members: a recovery is not a new seat.
    let members = rt(&a, &["member", "list"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );
    let all = tmp.path().join("all.bundle");
    rt(&a, &["export", "--bundle", all.to_str().unwrap()]);
    audits(&all);
}

/// Links a new device of the member at `home` into `dir`, named `name`; returns its device id.
fn link_new(home: &Path, dir: &Path, name: &str) -> String {
    let (mut link, first) = spawn(
        home,
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
        dir,
        &["device", "join", &s(&first, "ticket"), "--name", name],
    );
    assert_eq!(wait(&mut link, Duration::from_secs(30)), 0);
    s(&joined, "device_id")
}

fn sealed_texts(home: &Path, thread: &str) -> Vec<String> {
    let v = rt(home, &["show", thread]);
    v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages list: {v}"))
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn stopping_a_phone_changes_the_members_key_and_her_tablet_is_given_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _) = board(tmp.path());
    let ben = s(&rt(&b, &["id"]), "member_id");
    let (phone, tablet) = (tmp.path().join("phone"), tmp.path().join("tablet"));
    let phone_id = link_new(&a, &phone, "Ana's phone");
    link_new(&a, &tablet, "Ana's tablet");

    let (sa, va) = spawn(&a, &["serve", "--listen", "127.0.0.1:0", "--no-mdns"]);
    let _guard = Killed(vec![sa]);
    let ticket = s(&va, "ticket");
    let sync = |h: &Path| rt(h, &["sync", &ticket, "--timeout", "10"]);
    // Ben's key reaches Ana, so she can seal a thread for the two of them.
    sync(&b);
    let t = bens_support(&a, &ben);
    rt(&a, &["post", &t, "Before the stop"]);
    for h in [&phone, &tablet, &b] {
        sync(h);
    }
    assert_eq!(sealed_texts(&phone, &t), ["Before the stop"]);

    // The phone is lost: Ana stops it from her laptop, and her key is changed.
    let stopped = rt(&a, &["device", "revoke", &phone_id]);
    assert_eq!(stopped["key_changed"], true, "{stopped}");
    sync(&b);
    rt(&b, &["post", &t, "After the stop"]);
    sync(&b);
    assert_eq!(
        sealed_texts(&a, &t),
        ["Before the stop", "After the stop"],
        "the laptop reads both"
    );

    // The tablet is behind until it syncs with the laptop, which gives it the new key.
    sync(&tablet);
    assert_eq!(
        sealed_texts(&tablet, &t),
        ["Before the stop", "After the stop"]
    );
    rt(&tablet, &["post", &t, "Written on the tablet"]);
    sync(&tablet);
    sync(&b);
    assert_eq!(
        sealed_texts(&b, &t),
        ["Before the stop", "After the stop", "Written on the tablet"]
    );

    // The phone cannot sync; given every entry in a file, it still cannot read what came after.
    let (code, out, err) = run(&phone, &["sync", &ticket, "--timeout", "10"]);
    assert_eq!(code, 1, "{out} {err}");
    let bundle = tmp.path().join("all.bundle");
    rt(&b, &["export", "--bundle", bundle.to_str().unwrap()]);
    rt(&phone, &["import", bundle.to_str().unwrap()]);
    let v = rt(&phone, &["show", &t]);
    assert_eq!(
        v["sealed_entries"].as_array().map(Vec::len),
        Some(3),
        "the phone holds every sealed message: {v}"
    );
    // Not even the old one now: its epoch's key went to Ana's new key in the record.
    assert_eq!(sealed_texts(&phone, &t), Vec::<String>::new());
    audits(&bundle);
}
