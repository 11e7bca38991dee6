//! A harness for testing the real `roundtable` binary, in the style of ripgrep's `tests/util.rs`.
//!
//! A [`Home`] is a device home inside its own temporary directory. [`Home::cmd`] builds a
//! [`TestCommand`] that runs `roundtable --home DIR --json ...`; its finishers assert the exit code
//! and, on success, that stdout holds exactly one JSON document.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_roundtable");

/// Environment variables of the test process that must not leak into the binary.
const SCRUBBED: &[&str] = &["ROUNDTABLE_HOME"];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The auditor verifies the whole history in `bundle` (`roundtable audit`, exit 0).
pub fn audits(bundle: &Path) {
    let out = Command::new(BIN)
        .arg("audit")
        .arg(bundle)
        .output()
        .expect("audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Asserts that `s` is an id as the CLI prints it: 64 lowercase hexadecimal characters.
#[track_caller]
pub fn assert_id(s: &str) {
    assert!(
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not an id (64 lowercase hex chars): {s:?}"
    );
}

/// The string at `v[key]`, asserted to be an id.
#[track_caller]
pub fn id_at(v: &Value, key: &str) -> String {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {key:?} in {v}"));
    assert_id(s);
    s.to_string()
}

/// Parses stdout as exactly one JSON document.
#[track_caller]
pub fn one_json(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let mut docs = serde_json::Deserializer::from_slice(stdout).into_iter::<Value>();
    let first = match docs.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => panic!("stdout is not JSON ({e}):\n{text}"),
        None => panic!("stdout holds no JSON document"),
    };
    match docs.next() {
        None => first,
        Some(_) => panic!("stdout holds more than one JSON document:\n{text}"),
    }
}

/// What a successful run printed.
#[derive(Debug)]
pub struct Run {
    pub json: Value,
    pub stderr: String,
}

/// What a failed run printed.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A command about to run, built like ripgrep's `TestCommand`.
pub struct TestCommand {
    cmd: Command,
    json: bool,
}

impl TestCommand {
    /// The binary with no `--home` (and no inherited `ROUNDTABLE_HOME`) and `--json`.
    pub fn bare() -> TestCommand {
        let mut cmd = Command::new(BIN);
        for v in SCRUBBED {
            cmd.env_remove(v);
        }
        cmd.arg("--json");
        TestCommand { cmd, json: true }
    }

    /// The binary without `--json` (plain words on stdout).
    pub fn words() -> TestCommand {
        let mut cmd = Command::new(BIN);
        for v in SCRUBBED {
            cmd.env_remove(v);
        }
        TestCommand { cmd, json: false }
    }

    pub fn arg<S: AsRef<OsStr>>(&mut self, a: S) -> &mut Self {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, k: K, v: V) -> &mut Self {
        self.cmd.env(k, v);
        self
    }

    /// Runs the command with the passphrase in the environment variable `var`.
    pub fn passphrase(&mut self, var: &str, value: &str) -> &mut Self {
        self.cmd.arg("--passphrase-env").arg(var).env(var, value);
        self
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self
            .cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        format!("roundtable {}", args.join(" "))
    }

    pub fn output(&mut self) -> Output {
        self.cmd
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", self.describe()))
    }

    /// Runs with stdout a pipe whose reader has already gone (as `| head` does once it has read
    /// enough): every write to stdout fails with a broken pipe. Returns the exit code and stderr.
    pub fn output_to_closed_pipe(&mut self) -> (i32, String) {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let o = self
            .cmd
            .stdout(writer)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", self.describe()));
        let code = o
            .status
            .code()
            .unwrap_or_else(|| panic!("{} was killed by a signal", self.describe()));
        (code, String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// Runs, asserts exit code 0 and, with `--json`, exactly one JSON document on stdout.
    #[track_caller]
    pub fn run(&mut self) -> Run {
        let o = self.output();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            o.status.success(),
            "{} failed with {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.describe(),
            o.status.code()
        );
        let json = if self.json {
            one_json(&o.stdout)
        } else {
            Value::String(stdout)
        };
        Run { json, stderr }
    }

    /// Runs, asserts exit code 0, returns the JSON document.
    #[track_caller]
    pub fn ok(&mut self) -> Value {
        self.run().json
    }

    /// Runs, asserts the exit code is `code` (not 0), that stderr says something, and that stdout
    /// holds nothing but (at most) one JSON document.
    #[track_caller]
    pub fn fails(&mut self, code: i32) -> Failure {
        let f = self.fails_any();
        assert_eq!(
            f.code,
            code,
            "{} exited {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.describe(),
            f.code,
            f.stdout,
            f.stderr
        );
        f
    }

    /// Runs and asserts it failed (any nonzero exit code) with a message on stderr.
    #[track_caller]
    pub fn fails_any(&mut self) -> Failure {
        let o = self.output();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let code = o
            .status
            .code()
            .unwrap_or_else(|| panic!("{} was killed by a signal", self.describe()));
        assert_ne!(
            code,
            0,
            "{} succeeded but should have failed\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.describe()
        );
        assert!(
            !stderr.trim().is_empty(),
            "{} failed ({code}) without a message on stderr",
            self.describe()
        );
        if self.json && !stdout.trim().is_empty() {
            one_json(&o.stdout);
        }
        Failure {
            code,
            stdout,
            stderr,
        }
    }
}

/// Everything a home shows about its groups: compared before and after a refused command.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub groups: Value,
    /// For each group: (heads, `show --all`), which lists members too.
    pub per_group: Vec<(Value, Value)>,
}

/// A device home in its own temporary directory.
pub struct Home {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The member id, once `init` ran.
    pub member_id: String,
    pub name: String,
}

impl Home {
    /// A home folder that does not exist yet (no `init`).
    pub fn empty() -> Home {
        let tmp = tempfile::Builder::new()
            .prefix("roundtable-test-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().join("home");
        Home {
            tmp,
            dir,
            member_id: String::new(),
            name: String::new(),
        }
    }

    /// A home set up with `init --name NAME` (no passphrase).
    #[track_caller]
    pub fn init(name: &str) -> Home {
        let mut h = Home::empty();
        let out = h.cmd(["init", "--name", name]).run();
        h.member_id = id_at(&out.json, "member_id");
        h.name = name.to_string();
        h
    }

    /// A home whose member started a group (default rule consent, quorum 1). Returns the group id.
    #[track_caller]
    pub fn with_group(name: &str, group: &str) -> (Home, String) {
        let h = Home::init(name);
        let g = id_at(&h.ok(["group", "create", group]), "group_id");
        (h, g)
    }

    /// The home folder (what `--home` is given).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path in this home's temporary directory, outside the home folder itself.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A fresh file name in this home's temporary directory.
    pub fn fresh_path(&self, prefix: &str) -> PathBuf {
        self.path(&unique(prefix))
    }

    /// `roundtable --home DIR --json ARGS...`
    pub fn cmd<I, S>(&self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = TestCommand::bare();
        c.arg("--home").arg(&self.dir).args(args);
        c
    }

    /// Runs `ARGS`, asserting success; returns the JSON document.
    #[track_caller]
    pub fn ok<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).ok()
    }

    /// Runs `ARGS`, asserting the exit code; returns stderr.
    #[track_caller]
    pub fn fails<I, S>(&self, code: i32, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).fails(code).stderr
    }

    /// `roundtable heads`: the list of heads.
    #[track_caller]
    pub fn heads(&self) -> Vec<String> {
        let v = self.ok(["heads"]);
        let heads: Vec<String> = v["heads"]
            .as_array()
            .unwrap_or_else(|| panic!("heads is not a list: {v}"))
            .iter()
            .map(|h| {
                let s = h.as_str().expect("a head is a string").to_string();
                assert_id(&s);
                s
            })
            .collect();
        let mut sorted = heads.clone();
        sorted.sort();
        assert_eq!(heads, sorted, "heads are not sorted");
        heads
    }

    #[track_caller]
    pub fn show(&self) -> Value {
        self.ok(["show"])
    }

    /// `member list`, as (member_id, name, status) rows.
    #[track_caller]
    pub fn members(&self) -> Vec<(String, String, String)> {
        let v = self.ok(["member", "list"]);
        v["members"]
            .as_array()
            .unwrap_or_else(|| panic!("members is not a list: {v}"))
            .iter()
            .map(|m| {
                (
                    id_at(m, "member_id"),
                    m["name"].as_str().unwrap_or_default().to_string(),
                    m["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The status of member `id` as `member list` says.
    #[track_caller]
    pub fn status_of(&self, id: &str) -> Option<String> {
        self.members()
            .into_iter()
            .find(|(m, _, _)| m == id)
            .map(|(_, _, s)| s)
    }

    /// Everything this home shows, to compare before and after a command that must change nothing.
    #[track_caller]
    pub fn state(&self) -> State {
        let groups = self.ok(["group", "list"]);
        let mut per_group = Vec::new();
        for g in groups["groups"].as_array().into_iter().flatten() {
            let gid = id_at(g, "group_id");
            let heads = self.ok(["--group", &gid, "heads"]);
            let show = self.ok(["--group", &gid, "show", "--all"]);
            per_group.push((heads, show));
        }
        State { groups, per_group }
    }

    /// Every entry this home stores, of every group, verbatim (as `export` writes them), with each
    /// group's heads: a cheap fingerprint to check that a refused command stored nothing.
    #[track_caller]
    pub fn stored(&self) -> Vec<u8> {
        let groups = self.ok(["group", "list"]);
        let mut out = Vec::new();
        for g in groups["groups"].as_array().into_iter().flatten() {
            let gid = id_at(g, "group_id");
            let p = self.fresh_path("fingerprint");
            self.ok([
                OsStr::new("--group"),
                OsStr::new(&gid),
                OsStr::new("export"),
                OsStr::new("--bundle"),
                p.as_os_str(),
            ]);
            out.extend(std::fs::read(&p).expect("read export"));
            std::fs::remove_file(&p).ok();
        }
        out
    }

    /// `export --bundle FILE` to a fresh file; returns its path.
    #[track_caller]
    pub fn export(&self) -> PathBuf {
        let p = self.fresh_path("bundle");
        let v = self.ok([OsStr::new("export"), OsStr::new("--bundle"), p.as_os_str()]);
        assert!(v["entries"].as_u64().is_some(), "export says: {v}");
        p
    }

    /// `import FILE`, asserting success; returns {"imported","rejected","pending",...}.
    #[track_caller]
    pub fn import(&self, file: &Path) -> Value {
        let v = self.ok([OsStr::new("import"), file.as_os_str()]);
        for k in ["imported", "rejected", "pending"] {
            assert!(v[k].as_u64().is_some(), "import output lacks {k}: {v}");
        }
        v
    }

    /// A copy of this home (same key, same record) in a new temporary directory.
    pub fn copy(&self) -> Home {
        let h = Home::empty();
        std::fs::create_dir_all(&h.dir).expect("create home copy");
        // A home is private (mode 0700), or Roundtable refuses to open it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700");
        for e in std::fs::read_dir(&self.dir).expect("read home") {
            let e = e.expect("dir entry");
            if e.file_type().expect("file type").is_file() {
                std::fs::copy(e.path(), h.dir.join(e.file_name())).expect("copy home file");
            }
        }
        Home {
            member_id: self.member_id.clone(),
            name: self.name.clone(),
            ..h
        }
    }
}

/// Exports every entry of `from` and imports them into `to`; returns what `import` said.
#[track_caller]
pub fn sync(from: &Home, to: &Home) -> Value {
    let b = from.export();
    to.import(&b)
}

/// The group decides `proposal` (made on `proposer`, who already agreed): every home in `voters`
/// receives it, agrees and hands its agree back; then `proposer` closes it. Returns what `close`
/// printed.
#[track_caller]
pub fn decide(proposer: &Home, voters: &[&Home], proposal: &str) -> Value {
    let b = proposer.export();
    for v in voters {
        v.import(&b);
        v.ok(["stance", proposal, "agree"]);
        proposer.import(&v.export());
    }
    proposer.ok(["close", proposal, "--outcome", "Agreed"])
}

/// A partnership: the first home starts group `group`, and the group lets in every other member
/// (the first alone decides while alone; after that, everyone already in agrees). Each other home
/// imports the group. Returns the homes (in the order of `names`) and the group id.
#[track_caller]
pub fn partnership(group: &str, names: &[&str]) -> (Vec<Home>, String) {
    partnership_with(group, names, &[])
}

/// [`partnership`], with `group create` given `args` (for example `--rule majority`).
#[track_caller]
pub fn partnership_with(group: &str, names: &[&str], args: &[&str]) -> (Vec<Home>, String) {
    let first = Home::init(names[0]);
    let mut create = vec!["group", "create", group];
    create.extend_from_slice(args);
    let g = id_at(&first.ok(create), "group_id");
    let mut homes = vec![first];
    for n in &names[1..] {
        let h = Home::init(n);
        let asked = homes[0].ok(["member", "add", &h.member_id, "--name", n]);
        if asked.get("outcome_id").is_none() {
            let p = id_at(&asked, "proposal_id");
            let voters: Vec<&Home> = homes[1..].iter().collect();
            let closed = decide(&homes[0], &voters, &p);
            assert_eq!(closed["decision"], "passed", "{closed}");
        }
        homes.push(h);
    }
    let b = homes[0].export();
    for h in &homes[1..] {
        let v = h.import(&b);
        assert_eq!(v["rejected"], 0, "{v}");
        assert_eq!(v["pending"], 0, "{v}");
    }
    // Each device published its encryption key when it first opened the group: share those too,
    // so every home starts with the same record.
    for h in &homes[1..] {
        homes[0].import(&h.export());
    }
    let all = homes[0].export();
    for h in &homes[1..] {
        h.import(&all);
    }
    (homes, g)
}

/// The entries of a bundle file, decoded with the core library (to build partial bundles).
pub fn read_bundle(path: &Path) -> (roundtable_core::GroupId, Vec<roundtable_core::Entry>) {
    let bytes = std::fs::read(path).expect("read bundle");
    roundtable_core::bundle::decode(&bytes).expect("a valid bundle")
}

/// Writes a bundle holding exactly `entries`.
pub fn write_bundle(
    path: &Path,
    group: &roundtable_core::GroupId,
    entries: &[roundtable_core::Entry],
) {
    std::fs::write(path, roundtable_core::bundle::encode(group, entries)).expect("write bundle");
}

/// The id of an entry as the CLI prints it.
pub fn entry_id(e: &roundtable_core::Entry) -> String {
    e.parse().expect("a parsable entry").hash.to_string()
}

/// A child process killed (and reaped) when dropped.
pub struct Served(pub std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on loopback only, without mDNS; returns the process and its ticket.
pub fn serve_loopback(home: &Path) -> (Served, String) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-mdns"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serve prints its first line");
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let ticket = v["ticket"].as_str().expect("ticket").to_string();
    (Served(child), ticket)
}

/// The words of a thread in `show THREAD`'s output: a sealed thread's messages (for a reader), or
/// an open thread's entries.
pub fn thread_texts(show: &Value) -> Vec<String> {
    show["messages"]
        .as_array()
        .or_else(|| show["threads"][0]["entries"].as_array())
        .unwrap_or_else(|| panic!("no messages in {show}"))
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

/// `GET /health` on a keeper (`url` as `keep` prints it), as JSON.
pub fn health(url: &str) -> Value {
    use std::io::{Read, Write};
    let addr = url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/health"))
        .unwrap_or_else(|| panic!("not a health URL: {url}"));
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /health");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read /health");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Every byte of every file in a home (to look for words that must not be there).
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read a home") {
        let p = e.expect("entry").path();
        if p.is_file() {
            out.extend(std::fs::read(&p).expect("read a file of a home"));
        }
    }
    out
}

/// Whether `needle`'s bytes occur in `hay`.
pub fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
