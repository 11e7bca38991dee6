//! `roundtable audit` and `export --automerge`, through the real binary.
//!
//! The audit's exit codes: 0 verified, 1 problems found (the report is still printed), 2 input that
//! cannot be read. It needs no home and no key.

mod util;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use util::{Home, TestCommand, id_at, one_json};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/audit-example.bundle")
}

fn expected_report() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/audit-example.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("read the expected report"))
        .expect("the expected report is JSON")
}

/// A scratch directory for files the tests write.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("roundtable-audit-test-")
        .tempdir()
        .expect("tempdir")
}

/// The example bundle with one byte of an entry flipped.
fn damaged(dir: &Path) -> PathBuf {
    let mut b = std::fs::read(example()).expect("read the example");
    let at = b.len() / 2;
    b[at] ^= 0x01;
    let p = dir.join("damaged.bundle");
    std::fs::write(&p, b).expect("write");
    p
}

/// `roundtable --json audit ARGS...`: exit code and the JSON report on stdout.
fn audit_json<I, S>(args: I) -> (i32, Value)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let o = TestCommand::bare().arg("audit").args(args).output();
    let code = o.status.code().expect("exited");
    (code, one_json(&o.stdout))
}

#[test]
fn the_example_bundle_verifies_with_exit_0() {
    let v = TestCommand::bare().arg("audit").arg(example()).ok();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v, expected_report(), "the CLI prints the library's report");
    // --json after the command, and one thread: the same.
    let o = TestCommand::words()
        .arg("audit")
        .arg(example())
        .args(["--json", "--threads", "1"])
        .output();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(one_json(&o.stdout), expected_report());

    // In plain words: the summary.
    let words = TestCommand::words().arg("audit").arg(example()).run().json;
    let words = words.as_str().unwrap();
    assert!(
        words.contains("All 24 entries are signed by members."),
        "{words}"
    );
    assert!(words.contains("No problems were found."), "{words}");
}

#[test]
fn a_damaged_bundle_exits_1_with_the_full_report() {
    let dir = scratch();
    let bad = damaged(dir.path());
    let (code, v) = audit_json([&bad]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["verified"], false);
    let problems = v["problems"].as_array().expect("problems");
    assert!(!problems.is_empty());
    let kinds: Vec<&str> = problems.iter().filter_map(|p| p["kind"].as_str()).collect();
    assert!(kinds.contains(&"bundle_digest"), "{kinds:?}");
    for p in problems {
        assert!(
            p.get("entry_id").is_some() && p["detail"].is_string(),
            "{p}"
        );
    }

    // A bundle rewritten around the damage (digest recomputed) is still caught.
    let mut b = std::fs::read(&bad).unwrap();
    let n = b.len() - 32;
    let digest: [u8; 32] = Sha256::digest(&b[..n]).into();
    b[n..].copy_from_slice(&digest);
    let rewritten = dir.path().join("rewritten.bundle");
    std::fs::write(&rewritten, b).unwrap();
    let (code, v) = audit_json([&rewritten]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["verified"], false);
    assert!(
        !v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "bundle_digest"),
        "{v}"
    );

    // In plain words, exit 1 too, and the problems are listed.
    let o = TestCommand::words().arg("audit").arg(&bad).output();
    assert_eq!(o.status.code(), Some(1));
    let words = String::from_utf8_lossy(&o.stdout);
    assert!(words.contains("- bundle_digest"), "{words}");
}

#[test]
fn input_that_is_not_a_bundle_exits_2() {
    let dir = scratch();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "minutes of the last meeting\n").unwrap();
    let err = TestCommand::bare().arg("audit").arg(&text).fails(2).stderr;
    assert!(err.contains("not a Roundtable bundle"), "{err}");

    let missing = dir.path().join("nowhere.bundle");
    let err = TestCommand::bare()
        .arg("audit")
        .arg(&missing)
        .fails(2)
        .stderr;
    assert!(err.contains("nowhere.bundle"), "{err}");

    // Cut inside its header: nothing to audit.
    let b = std::fs::read(example()).unwrap();
    let cut = dir.path().join("cut.bundle");
    std::fs::write(&cut, &b[..30]).unwrap();
    TestCommand::bare().arg("audit").arg(&cut).fails(2);
}

#[test]
fn report_writes_an_html_page() {
    let dir = scratch();
    let page = dir.path().join("report.html");
    let v = TestCommand::bare()
        .arg("audit")
        .arg(example())
        .arg("--report")
        .arg(&page)
        .ok();
    let html = std::fs::read_to_string(&page).expect("the report was written");
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.to_lowercase().contains("<script"));
    for line in v["summary"].as_array().unwrap() {
        let line = line.as_str().unwrap().replace('\'', "&#39;");
        assert!(html.contains(&line), "the page lacks {line}");
    }
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/audit-example.html");
    assert_eq!(html, std::fs::read_to_string(committed).unwrap());

    // Problems found: exit 1, and the page is still written.
    let bad = damaged(dir.path());
    let page = dir.path().join("bad.html");
    let o = TestCommand::bare()
        .arg("audit")
        .arg(&bad)
        .arg("--report")
        .arg(&page)
        .output();
    assert_eq!(o.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).expect("the report was written");
    assert!(html.contains("Problems were found"));
    assert!(html.contains("bundle_digest"));
}

#[test]
fn audit_needs_no_home() {
    let dir = scratch();
    let home = dir.path().join("no-such-home");
    let v = TestCommand::bare()
        .arg("--home")
        .arg(&home)
        .arg("audit")
        .arg(example())
        .ok();
    assert_eq!(v["verified"], true);
    let v = TestCommand::bare()
        .env("ROUNDTABLE_HOME", &home)
        .arg("audit")
        .arg(example())
        .ok();
    assert_eq!(v["verified"], true);
    assert!(!home.exists(), "the audit created a home");
}

#[test]
fn export_automerge_loads_with_the_same_heads() {
    let (h, _) = Home::with_group("Ana", "Riverside board");
    let t = id_at(&h.ok(["thread", "new", "Housing"]), "thread_id");
    h.ok(["post", &t, "The waiting list has grown."]);
    h.ok(["post", &t, "Let us ask the council."]);
    let dir = h.path("automerge");
    let v = h.ok([
        OsStr::new("export"),
        OsStr::new("--automerge"),
        dir.as_os_str(),
    ]);
    let file = PathBuf::from(v["files"][0].as_str().expect("the file written"));
    assert_eq!(file, dir.join("Riverside-board.automerge"));
    assert_eq!(v["bytes"], std::fs::metadata(&file).unwrap().len());

    let doc = automerge::Automerge::load(&std::fs::read(&file).unwrap())
        .expect("a standard Automerge file");
    let mut heads: Vec<String> = doc.get_heads().iter().map(|c| c.to_string()).collect();
    heads.sort();
    assert_eq!(heads, h.heads());

    // And the same group's bundle verifies, every entry of it.
    let b = h.path("group.bundle");
    let exported = h.ok([OsStr::new("export"), OsStr::new("--bundle"), b.as_os_str()]);
    let v = TestCommand::bare().arg("audit").arg(&b).ok();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["entries"], exported["entries"]);
    assert_eq!(v["group_name"], "Riverside board");
}
