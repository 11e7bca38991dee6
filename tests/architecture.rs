//! Keeps `ARCHITECTURE.md` true where the code can be read for it.
//!
//! (a) The front ends (`roundtable-cli`, `roundtable-web`) never write on their own: no store append,
//!     no proposal or close built by hand, no sealing, no bundle encoding. Every member action goes
//!     through `roundtable-app`'s `Seat`, so a rule or a check is written once.
//! (a') The command line's network commands other than `serve` (`sync`, `invite`, `join`, `peers`)
//!     call `roundtable_app::net`: no node, ticket, sync or invitation handled by the CLI itself.
//! (b) Every crate under `crates/` has its section in the code map, and every section names a crate
//!     that exists.
//! (c) The library crates the map says deny `missing_docs` do.
//! (d) No library error message names a command or a flag: the web page shows them too.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let p = e.expect("a readable directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Calls that write to the record, seal, or frame bundles: the application layer's work.
const WRITES: &[&str] = &[
    ".append(",
    ".propose_change(",
    ".close_proposal(",
    "Home::init(",
    ".set_setting(\"needs\"",
    ".export_entries(",
    "bundle::encode(",
    "bundle::decode(",
    "thread::start(",
    "thread::add_reader(",
    "thread::rekey(",
    "thread::message(",
    "all_missing_keys(",
    "Record::create(",
    "record.author(",
];

#[test]
fn front_ends_write_only_through_the_application_layer() {
    let mut found = Vec::new();
    for front in ["crates/roundtable-cli/src", "crates/roundtable-web/src"] {
        let mut files = Vec::new();
        rust_files(&root().join(front), &mut files);
        assert!(!files.is_empty(), "no sources found under {front}");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a readable source file");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for w in WRITES {
                    if code.contains(w) {
                        found.push(format!("{}:{}: {w}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "front ends must call roundtable-app's Seat instead of writing themselves:\n{}",
        found.join("\n")
    );
}

/// Network work that `roundtable_app::net` does for the command line: allowed only in `serve`
/// (a long-running node, still built by the CLI), and `serve.json` not even there.
const NET_ACTIONS: &[&str] = &[
    "Node::new(",
    "Node::join(",
    "Ticket::decode(",
    ".sync_with(",
    ".invite(",
    ".invite_used(",
    "secret_hash(",
];

/// The lines of `text` outside the body of `pub fn serve(` (up to its closing `}` in column 0).
fn outside_serve(text: &str) -> Vec<(usize, &str)> {
    let mut in_serve = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("pub fn serve(") {
            in_serve = true;
        } else if in_serve && line == "}" {
            in_serve = false;
        } else if !in_serve {
            out.push((n, line));
        }
    }
    out
}

#[test]
fn the_cli_network_commands_call_the_application_layer() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/roundtable-cli/src"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("net.rs")),
        "no net.rs in the CLI"
    );
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            if line
                .split("//")
                .next()
                .unwrap_or("")
                .contains("\"serve.json\"")
            {
                found.push(format!("{}:{}: \"serve.json\"", f.display(), n + 1));
            }
        }
        for (n, line) in outside_serve(&text) {
            let code = line.split("//").next().unwrap_or("");
            for w in NET_ACTIONS {
                if code.contains(w) {
                    found.push(format!("{}:{}: {w}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the CLI's sync, invite, join and peers must call roundtable_app::net:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_code_map_names_every_crate() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut crates: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    crates.sort();
    for c in &crates {
        assert!(
            arch.contains(&format!("### `crates/{c}`")),
            "ARCHITECTURE.md's code map has no section for crates/{c}"
        );
    }
    for line in arch.lines() {
        if let Some(rest) = line.strip_prefix("### `crates/") {
            let name = rest.trim_end_matches('`');
            assert!(
                crates.iter().any(|c| c == name),
                "ARCHITECTURE.md maps crates/{name}, which does not exist"
            );
        }
    }
}

#[test]
fn the_documented_libraries_deny_missing_docs() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    assert!(arch.contains("`-app` deny `missing_docs`"));
    for c in ["core", "seal", "store", "sync", "web", "audit", "app"] {
        let lib = root().join(format!("crates/roundtable-{c}/src/lib.rs"));
        let text = std::fs::read_to_string(&lib).expect("lib.rs");
        assert!(
            text.contains("#![deny(missing_docs)]"),
            "{} lacks #![deny(missing_docs)], which ARCHITECTURE.md promises",
            lib.display()
        );
    }
}

/// The error messages of a library crate (`#[error("...")]`, up to the attribute's end).
fn error_messages(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some((_, buf)) = current.as_mut() {
            buf.push_str(line);
        } else if line.trim_start().starts_with("#[error(") {
            current = Some((n + 1, line.to_string()));
        }
        if current
            .as_ref()
            .is_some_and(|(_, b)| b.trim_end().ends_with(")]"))
        {
            out.extend(current.take());
        }
    }
    out
}

#[test]
fn no_library_message_names_a_command_or_a_flag() {
    let mut found = Vec::new();
    let mut seen = 0;
    for dir in std::fs::read_dir(root().join("crates")).expect("crates/") {
        let dir = dir.expect("a readable directory entry").path();
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The binaries add the commands and flags to the libraries' words.
        if matches!(name, "roundtable-cli" | "roundtable-bench") {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a readable source file");
            for (n, msg) in error_messages(&text) {
                seen += 1;
                if msg.contains("`roundtable ") || msg.contains(" --") {
                    found.push(format!("{}:{n}: {}", f.display(), msg.trim()));
                }
            }
        }
    }
    assert!(
        seen > 50,
        "only {seen} error messages found: the scan is broken"
    );
    assert!(
        found.is_empty(),
        "library messages are shown on the web page too; the CLI adds commands and flags:\n{}",
        found.join("\n")
    );
}
