//! The JSON that `audit`, `show`, `import` and `export --automerge` print, checked against the JSON
//! Schema files in `docs/schema/` (docs/format.md section 11) on real output of the real binary.
//!
//! The checker below understands exactly the keywords those files use, and refuses any other, so a
//! schema can never hold a rule that goes unchecked here. Every object in them forbids unknown keys,
//! so a field added to a command's output without its schema fails this test.

mod util;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use util::{TestCommand, id_at, one_json, partnership, read_bundle, sync, write_bundle};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema(name: &str) -> Value {
    let p = root()
        .join("docs/schema")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// Keywords that say nothing to check.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "$defs", "title", "description"];

/// A JSON Schema (draft 2020-12) checker for the keywords the project's schemas use.
struct Checker<'a> {
    root: &'a Value,
}

impl Checker<'_> {
    /// Every way `v` fails `s`, each with its JSON path.
    fn errors(&self, s: &Value, v: &Value, at: &str) -> Vec<String> {
        let s = match s {
            Value::Bool(true) => return vec![],
            Value::Bool(false) => return vec![format!("{at}: nothing is allowed here")],
            Value::Object(o) => o,
            other => panic!("schema at {at} is not a schema: {other}"),
        };
        let mut e = Vec::new();
        for (k, kv) in s {
            match k.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => {
                    let name = kv
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/$defs/"))
                        .unwrap_or_else(|| panic!("only local #/$defs/ refs are understood: {kv}"));
                    let target = &self.root["$defs"][name];
                    assert!(!target.is_null(), "no $defs/{name}");
                    e.extend(self.errors(target, v, at));
                }
                "type" => {
                    let types: Vec<&str> = match kv {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => panic!("bad type at {at}"),
                    };
                    if !types.iter().any(|t| is_type(v, t)) {
                        e.push(format!("{at}: {v} is not of type {types:?}"));
                    }
                }
                "enum" => {
                    let allowed = kv.as_array().expect("enum is a list");
                    if !allowed.contains(v) {
                        e.push(format!("{at}: {v} is not one of {kv}"));
                    }
                }
                "const" => {
                    if v != kv {
                        e.push(format!("{at}: {v} is not {kv}"));
                    }
                }
                "pattern" => {
                    let p = kv.as_str().expect("pattern is a string");
                    if let Some(s) = v.as_str()
                        && !matches_pattern(p, s)
                    {
                        e.push(format!("{at}: {s:?} does not match {p}"));
                    }
                }
                "minimum" => {
                    let m = kv.as_f64().expect("minimum is a number");
                    if v.as_f64().is_some_and(|x| x < m) {
                        e.push(format!("{at}: {v} is below {m}"));
                    }
                }
                "minItems" | "maxItems" => {
                    let n = kv.as_u64().expect("a count") as usize;
                    if let Some(a) = v.as_array() {
                        let bad = if k == "minItems" {
                            a.len() < n
                        } else {
                            a.len() > n
                        };
                        if bad {
                            e.push(format!("{at}: {} items breaks {k} {n}", a.len()));
                        }
                    }
                }
                "items" => {
                    for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                        e.extend(self.errors(kv, x, &format!("{at}[{i}]")));
                    }
                }
                "properties" => {
                    let props = kv.as_object().expect("properties is an object");
                    if let Some(o) = v.as_object() {
                        for (name, ps) in props {
                            if let Some(x) = o.get(name) {
                                e.extend(self.errors(ps, x, &format!("{at}.{name}")));
                            }
                        }
                    }
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for r in kv.as_array().expect("required is a list") {
                            let r = r.as_str().expect("a key");
                            if !o.contains_key(r) {
                                e.push(format!("{at}: lacks required key {r:?}"));
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    let props: &Map<String, Value> = s
                        .get("properties")
                        .and_then(Value::as_object)
                        .expect("additionalProperties comes with properties");
                    if let Some(o) = v.as_object() {
                        for (name, x) in o.iter().filter(|(n, _)| !props.contains_key(*n)) {
                            e.extend(self.errors(
                                kv,
                                x,
                                &format!("{at}.{name} (not in the schema)"),
                            ));
                        }
                    }
                }
                "anyOf" | "oneOf" => {
                    let branches = kv.as_array().expect("a list of schemas");
                    let passing = branches
                        .iter()
                        .filter(|b| self.errors(b, v, at).is_empty())
                        .count();
                    let ok = if k == "anyOf" {
                        passing > 0
                    } else {
                        passing == 1
                    };
                    if !ok {
                        let why: Vec<String> = branches
                            .iter()
                            .flat_map(|b| self.errors(b, v, at).into_iter().take(3))
                            .collect();
                        e.push(format!(
                            "{at}: {passing} of the {k} branches hold: {}",
                            why.join(" | ")
                        ));
                    }
                }
                other => panic!("the checker does not understand the keyword {other:?} (at {at})"),
            }
        }
        e
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("unknown type {other}"),
    }
}

/// The patterns the schemas use, and no others.
fn matches_pattern(p: &str, s: &str) -> bool {
    match p {
        "^[0-9a-f]{64}$" => {
            s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        "^[a-z_]+$" => !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        other => panic!("the checker does not understand the pattern {other}"),
    }
}

#[track_caller]
fn assert_valid(name: &str, v: &Value, what: &str) {
    let s = schema(name);
    let errors = Checker { root: &s }.errors(&s, v, "$");
    assert!(
        errors.is_empty(),
        "{what} does not match docs/schema/{name}.schema.json:\n{}\n{v:#}",
        errors.join("\n")
    );
}

/// The checker itself refuses what it should: a wrong type, a missing key, an unknown key.
#[test]
fn the_checker_refuses_output_that_breaks_a_schema() {
    let s = schema("import");
    let c = Checker { root: &s };
    let good = serde_json::json!({"imported": 1, "rejected": 0, "pending": 0, "already_had": 0,
        "group_id": "0".repeat(64)});
    assert!(c.errors(&s, &good, "$").is_empty());
    let mut wrong = good.clone();
    wrong["pending"] = "none".into();
    assert!(!c.errors(&s, &wrong, "$").is_empty());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("already_had");
    assert!(!c.errors(&s, &missing, "$").is_empty());
    let mut extra = good.clone();
    extra["surprise"] = 1.into();
    assert!(!c.errors(&s, &extra, "$").is_empty());
    let mut upper = good;
    upper["group_id"] = "A".repeat(64).into();
    assert!(!c.errors(&s, &upper, "$").is_empty());
}

fn example() -> PathBuf {
    root().join("tests/data/audit-example.bundle")
}

fn audit_json(bundle: &Path) -> Value {
    one_json(&TestCommand::bare().arg("audit").arg(bundle).output().stdout)
}

#[test]
fn audit_output_matches_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    assert_valid("audit", &audit_json(&example()), "the example's report");

    let bytes = std::fs::read(example()).unwrap();
    // Damaged: the digest broken.
    let mut b = bytes.clone();
    *b.last_mut().unwrap() ^= 1;
    let p = dir.path().join("damaged.bundle");
    std::fs::write(&p, &b).unwrap();
    let v = audit_json(&p);
    assert!(v["damaged"].is_object());
    assert_valid("audit", &v, "a damaged file's report");

    // Whole, with a forged entry, a repeated one and the order reversed: problems and notes.
    let (group, mut entries) = read_bundle(&example());
    entries[5].signature[0] ^= 1;
    entries.reverse();
    entries.push(entries[0].clone());
    let p = dir.path().join("forged.bundle");
    write_bundle(&p, &group, &entries);
    let v = audit_json(&p);
    assert!(
        !v["problems"].as_array().unwrap().is_empty() && !v["notes"].as_array().unwrap().is_empty()
    );
    assert_valid("audit", &v, "a forged and reordered bundle's report");
}

/// A board of three with every kind of entry `show` lists, in open and sealed threads.
#[test]
fn show_import_and_export_output_match_their_schemas() {
    let (homes, _g) = partnership("Board", &["Ana", "Ben", "Cy"]);
    let (a, b, c) = (&homes[0], &homes[1], &homes[2]);
    let t = id_at(&a.ok(["thread", "new", "Housing"]), "thread_id");
    let m = id_at(
        &a.ok(["post", &t, "The waiting list has grown."]),
        "entry_id",
    );
    let p = id_at(
        &a.ok([
            "propose",
            &t,
            "Write to the council",
            "--easy-read",
            "We send a letter.",
        ]),
        "proposal_id",
    );
    let open = id_at(
        &a.ok([
            "propose",
            &t,
            "Meet in spring",
            "--easy-read",
            "We meet in April.",
        ]),
        "proposal_id",
    );
    a.ok(["stance", &open, "agree", "--for", &c.member_id]);
    let act = id_at(
        &a.ok([
            "action",
            "add",
            &t,
            "Draft the letter",
            "--owner",
            &b.member_id,
            "--due",
            "2027-03-01",
        ]),
        "action_id",
    );
    a.ok(["stance", &p, "agree", "--reason", "It is needed."]);
    for h in [b, c] {
        sync(a, h);
    }
    b.ok(["stance", &p, "agree"]);
    c.ok(["stance", &p, "abstain"]);
    let u = id_at(
        &b.ok(["understand", &m, "--as", "More people are waiting."]),
        "entry_id",
    );
    b.ok(["action", "done", &act]);
    for h in [b, c] {
        sync(h, a);
    }
    a.ok(["close", &p, "--outcome", "We write."]);
    a.ok(["confirm", &u]);
    a.ok(["correct", &m, "The waiting list has grown a lot."]);
    let s = id_at(
        &a.ok([
            "thread",
            "new",
            "Ben's support",
            "--sealed",
            "--reader",
            &b.member_id,
            "--reason",
            "It is about one member's health",
        ]),
        "thread_id",
    );
    a.ok(["post", &s, "A quiet room, please."]);
    sync(a, c);
    c.ok(["thread", "ask", &s, "--why", "I arrange the rooms"]);
    sync(c, a);
    a.ok([
        "thread",
        "decline",
        &s,
        &c.member_id,
        "--reason",
        "Ben asked to keep it small",
    ]);
    // Every reader agrees before C reads: A first, then B lets C in.
    let agreed = a.ok(["thread", "add-reader", &s, &c.member_id]);
    assert_eq!(agreed["reader"], false, "{agreed}");
    assert_eq!(agreed["waiting_for"][0]["member_id"], b.member_id.as_str());
    sync(a, b);
    let added = b.ok(["thread", "add-reader", &s, &c.member_id]);
    assert_eq!(added["reader"], true, "{added}");
    sync(b, a);
    a.ok(["thread", "remove-reader", &s, &c.member_id]);
    for h in [b, c] {
        let v = sync(a, h);
        assert_valid("import", &v, "import");
    }
    // A rejected entry kept as evidence: another group's entry relabelled into this one.
    let (zed, _) = util::Home::with_group("Zed", "Elsewhere");
    let (_, theirs) = read_bundle(&zed.export());
    let gid: roundtable_core::GroupId =
        id_at(&a.ok(["show"])["group"], "group_id").parse().unwrap();
    let relabelled = a.fresh_path("relabelled");
    write_bundle(&relabelled, &gid, &theirs);
    a.cmd([OsStr::new("import"), relabelled.as_os_str()])
        .fails(1);

    // The output holds every shape the schema gives, so each is checked.
    let v = a.ok(["show", "--all"]);
    assert!(
        v["quarantined"].as_array().is_some_and(|q| !q.is_empty()),
        "evidence is listed: {v}"
    );
    let threads = v["threads"].as_array().unwrap();
    let open_t = threads
        .iter()
        .find(|x| x["thread_id"] == t.as_str())
        .unwrap();
    let kinds: Vec<&str> = open_t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for k in ["message", "proposal", "action"] {
        assert!(kinds.contains(&k), "no {k} in {open_t}");
    }
    let entry = |id: &str| {
        open_t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entry_id"] == id)
            .unwrap()
            .clone()
    };
    assert!(entry(&p)["outcome"].is_object());
    assert!(entry(&open)["outcome"].is_null());
    assert!(entry(&open)["stances"][0]["recorded_by"].is_object());
    assert!(entry(&m)["original_text"].is_string());
    assert_eq!(entry(&m)["understandings"][0]["confirmed"], true);
    assert_eq!(entry(&act)["done"], true);
    let sealed_t = threads
        .iter()
        .find(|x| x["thread_id"] == s.as_str())
        .unwrap();
    for k in [
        "reader_changes",
        "asks",
        "declines",
        "entries",
        "sealed_entries",
    ] {
        assert!(
            !sealed_t[k].as_array().unwrap().is_empty(),
            "no {k}: {sealed_t}"
        );
    }

    for (who, h) in [("a reader", a), ("a former reader", c), ("a reader", b)] {
        assert_valid("show", &h.ok(["show"]), &format!("show, by {who}"));
        assert_valid(
            "show",
            &h.ok(["show", "--all"]),
            &format!("show --all, by {who}"),
        );
        assert_valid(
            "show",
            &h.ok(["show", &t]),
            &format!("show OPEN_THREAD, by {who}"),
        );
        let sealed = h.ok(["show", &s]);
        assert_eq!(sealed["sealed"], true);
        assert_valid("show", &sealed, &format!("show SEALED_THREAD, by {who}"));
    }
    // A member who never was a reader.
    let (more, _) = partnership("Other board", &["Dee", "Eve"]);
    let s2 = id_at(
        &more[0].ok([
            "thread",
            "new",
            "Private",
            "--sealed",
            "--reason",
            "A personal matter",
        ]),
        "thread_id",
    );
    more[0].ok(["post", &s2, "Only for me."]);
    sync(&more[0], &more[1]);
    assert_valid("show", &more[1].ok(["show"]), "show, by a non-reader");
    assert_valid(
        "show",
        &more[1].ok(["show", &s2]),
        "show SEALED_THREAD, by a non-reader",
    );

    // export --automerge.
    let dir = a.path("automerge");
    let v = a.ok([
        OsStr::new("export"),
        OsStr::new("--automerge"),
        dir.as_os_str(),
    ]);
    assert_valid("export-automerge", &v, "export --automerge");
    // And the audit of this board's own bundle.
    let bundle = a.export();
    let v = audit_json(&bundle);
    assert_eq!(v["verified"], true, "{v}");
    assert!(!v["sealed_threads"].as_array().unwrap().is_empty());
    assert_valid("audit", &v, "the board's report");
}
