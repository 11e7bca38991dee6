//! `export --automerge` writes a standard Automerge file: the reference JavaScript implementation
//! (`@automerge/automerge`, installed by `.ci/run` into `tests/js` from its committed lockfile) loads
//! it and sees the same heads and content as the device.

mod util;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use util::{id_at, partnership};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

#[test]
fn the_javascript_automerge_loads_the_export_with_the_same_heads() {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/@automerge/automerge").is_dir(),
        "run `npm ci` in {} first (.ci/run does)",
        dir.display()
    );
    let (homes, _g) = partnership("Riverside Board", &["Ana", "Ben"]);
    let a = &homes[0];
    let t = id_at(&a.ok(["thread", "new", "Housing"]), "thread_id");
    a.ok(["post", &t, "The council wants our views."]);
    a.ok(["post", &t, "Can we visit the flats first?"]);
    let out_dir = a.path("automerge");
    let v = a.ok([
        std::ffi::OsStr::new("export"),
        "--automerge".as_ref(),
        out_dir.as_os_str(),
    ]);
    let file = v["files"][0]
        .as_str()
        .expect("the file written")
        .to_string();
    assert!(file.ends_with("Riverside-Board.automerge"), "{file}");
    let out = Command::new("node")
        .arg(dir.join("load_automerge.mjs"))
        .arg(&file)
        .output()
        .expect("node is needed for this test (.ci/run installs it)");
    assert!(
        out.status.success(),
        "node could not load the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert_eq!(seen["heads"], a.ok(["heads"])["heads"], "{seen}");
    assert_eq!(seen["name"], "Riverside Board");
    assert_eq!(seen["threads"], 1);
    assert_eq!(seen["messages"], 2);
}
