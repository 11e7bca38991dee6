//! `roundtable audit` and `export --automerge`, through the real binary.
//!
//! The audit's exit codes (docs/format.md section 11): 0 verified, 1 problems found in a whole bundle
//! (the report is still printed), 2 a file that is not a whole bundle (the report of its readable part
//! is printed) or input that cannot be read at all. It needs no home and no key.

mod util;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use util::{Home, TestCommand, entry_id, id_at, one_json, read_bundle, write_bundle};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/audit-example.bundle")
}

/// The committed example report, with what this version adds to every report and the committed file
/// does not hold yet (the other engineer regenerates tests/data): `"damaged": null` for a whole
/// bundle and `"notes": []` for one in causal order with each entry once.
fn expected_report() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/audit-example.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("read the expected report"))
            .expect("the expected report is JSON");
    let o = v.as_object_mut().expect("the report is an object");
    o.entry("damaged").or_insert(Value::Null);
    o.entry("notes").or_insert(Value::Array(vec![]));
    v
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
        words.contains("All 37 entries are signed by members."),
        "{words}"
    );
    assert!(words.contains("No problems were found."), "{words}");
}

/// docs/format.md section 5: a file that is not a whole bundle is refused as a whole, exit 2 as the
/// README says; the report still shows what its readable part proves, apart, under `damaged`.
#[test]
fn a_damaged_bundle_exits_2_with_the_salvaged_report() {
    let dir = scratch();
    let bad = damaged(dir.path());
    let (code, v) = audit_json([&bad]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["verified"], false);
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems[0]["kind"], "bundle_damaged", "{v}");
    assert_eq!(problems[0]["entry_id"], Value::Null);
    for p in problems {
        assert!(
            p.get("entry_id").is_some() && p["detail"].is_string(),
            "{p}"
        );
    }
    let failures: Vec<&str> = v["damaged"]["failures"]
        .as_array()
        .expect("damaged.failures")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(failures, ["bundle_digest"], "{v}");
    assert_eq!(v["damaged"]["declared_entries"], 37);
    assert_eq!(v["damaged"]["salvaged"]["entries"], v["entries"]);
    assert_eq!(
        v["damaged"]["salvaged"]["valid_entries"],
        v["valid_entries"]
    );
    assert_eq!(
        v["damaged"]["salvaged"]["verified"], false,
        "an entry is damaged"
    );

    // A bundle rewritten around the damage (digest recomputed) is whole: exit 1, entry problems.
    let mut b = std::fs::read(&bad).unwrap();
    let n = b.len() - 32;
    let digest: [u8; 32] = Sha256::digest(&b[..n]).into();
    b[n..].copy_from_slice(&digest);
    let rewritten = dir.path().join("rewritten.bundle");
    std::fs::write(&rewritten, b).unwrap();
    let (code, v) = audit_json([&rewritten]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["verified"], false);
    assert_eq!(v["damaged"], Value::Null, "{v}");
    assert!(
        !v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "bundle_damaged"),
        "{v}"
    );

    // Only the digest lost: every entry read is valid, and still exit 2.
    let whole = std::fs::read(example()).unwrap();
    let cut = dir.path().join("cut.bundle");
    std::fs::write(&cut, &whole[..whole.len() - 32]).unwrap();
    let (code, v) = audit_json([&cut]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["damaged"]["salvaged"]["verified"], true, "{v}");
    assert_eq!(v["valid_entries"], 37);

    // In plain words, exit 2 too, and the damage is listed.
    let o = TestCommand::words().arg("audit").arg(&bad).output();
    assert_eq!(o.status.code(), Some(2));
    let words = String::from_utf8_lossy(&o.stdout);
    assert!(words.contains("- bundle_damaged"), "{words}");
    assert!(words.contains("- bundle_digest"), "{words}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is damaged"),
        "{o:?}"
    );
}

/// docs/format.md section 5: reordering or repeating entries forges nothing. Such a bundle whose
/// entries are all accepted is verified (exit 0), with notes.
#[test]
fn a_reordered_or_duplicated_bundle_verifies_with_notes() {
    let dir = scratch();
    let (group, entries) = read_bundle(&example());
    let mut shuffled = entries.clone();
    shuffled.reverse();
    shuffled.push(entries[3].clone());
    let p = dir.path().join("shuffled.bundle");
    write_bundle(&p, &group, &shuffled);
    let (code, v) = audit_json([&p]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["problems"], Value::Array(vec![]));
    let notes = v["notes"].as_array().expect("notes");
    let kinds: std::collections::BTreeSet<&str> =
        notes.iter().filter_map(|n| n["kind"].as_str()).collect();
    assert_eq!(kinds, ["duplicate", "out_of_order"].into(), "{v}");
    let dup = notes.iter().find(|n| n["kind"] == "duplicate").unwrap();
    assert_eq!(dup["entry_id"], entry_id(&entries[3]).as_str());
    assert_eq!(v["valid_entries"], 37);
}

/// A refused entry is named by its entry id (docs/format.md section 2), so the entries waiting on it
/// can be linked to it; they say it is refused, not absent.
#[test]
fn a_forged_entry_is_named_by_its_entry_id_and_linked() {
    let dir = scratch();
    let (group, mut entries) = read_bundle(&example());
    let at = entries.len() / 2;
    let real = entry_id(&entries[at]);
    entries[at].signature[7] ^= 0x01;
    let p = dir.path().join("forged.bundle");
    write_bundle(&p, &group, &entries);
    let (code, v) = audit_json([&p]);
    assert_eq!(code, 1, "{v}");
    let problems = v["problems"].as_array().unwrap();
    let bad: Vec<&Value> = problems
        .iter()
        .filter(|p| p["kind"] == "bad_signature")
        .collect();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["entry_id"], real.as_str());
    let waiting: Vec<&Value> = problems
        .iter()
        .filter(|p| p["kind"] == "missing_dependency")
        .collect();
    assert!(!waiting.is_empty());
    assert!(
        waiting
            .iter()
            .any(|p| p["detail"].as_str().unwrap().contains(&real)),
        "{v}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p["detail"].as_str().unwrap().contains("does not hold")),
        "{v}"
    );
}

/// `audit --json BUNDLE | head -c 100`: the reader goes away early. Every command ends quietly with
/// its own exit code, never a panic (exit 101).
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    for json in [true, false] {
        let mut c = if json {
            TestCommand::bare()
        } else {
            TestCommand::words()
        };
        let (code, err) = c.arg("audit").arg(example()).output_to_closed_pipe();
        assert_eq!(code, 0, "audit (json: {json}): {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let dir = scratch();
    let bad = damaged(dir.path());
    let (code, err) = TestCommand::bare()
        .arg("audit")
        .arg(&bad)
        .output_to_closed_pipe();
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The other commands print through one function.
    let (h, _) = Home::with_group("Ana", "Riverside board");
    for args in [&["id"][..], &["show"], &["heads"]] {
        let (code, err) = h.cmd(args).output_to_closed_pipe();
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
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

    // A damaged file: exit 2, and the page is still written.
    let bad = damaged(dir.path());
    let page = dir.path().join("bad.html");
    let o = TestCommand::bare()
        .arg("audit")
        .arg(&bad)
        .arg("--report")
        .arg(&page)
        .output();
    assert_eq!(o.status.code(), Some(2));
    let html = std::fs::read_to_string(&page).expect("the report was written");
    assert!(html.contains("Problems were found"));
    assert!(html.contains("bundle_damaged"));
    assert!(html.contains("The file is damaged") && html.contains("bundle_digest"));
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

/// A file over the largest bundle (2 GiB, docs/format.md section 5) is refused by `audit` and
/// `import` before it is read: exit 1, in words, nothing stored. The file is sparse: nothing is
/// written to the disk.
#[test]
fn a_file_over_the_largest_bundle_is_refused_before_it_is_read() {
    let dir = scratch();
    let big = dir.path().join("big.bundle");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(roundtable_core::bundle::MAX_BUNDLE_BYTES + 1)
        .expect("a sparse file");
    drop(f);
    let fail = TestCommand::bare()
        .args([OsStr::new("audit"), big.as_os_str()])
        .fails(1);
    assert!(
        fail.stderr.contains("largest bundle"),
        "audit said: {}",
        fail.stderr
    );
    let home = Home::init("Ana");
    let before = home.state();
    let fail = home.cmd([OsStr::new("import"), big.as_os_str()]).fails(1);
    assert!(
        fail.stderr.contains("largest bundle") && fail.stderr.contains("not read"),
        "import said: {}",
        fail.stderr
    );
    assert_eq!(home.state(), before, "nothing was stored");
}
