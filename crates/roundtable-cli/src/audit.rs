//! `roundtable audit BUNDLE`: no home, no key. And `export --automerge DIR`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use roundtable_audit::{AuditError, Report, render_html};
use roundtable_store::Group;
use serde_json::json;

use crate::Out;

/// Runs the audit; exit 0 verified, 1 problems found, 2 a file that is not a whole bundle (the report
/// of its readable part is still printed when there is one) or no input at all.
pub fn run(bundle: &Path, report: Option<&Path>, threads: Option<usize>, json: bool) -> ExitCode {
    match audit(bundle, report, threads, !json) {
        Ok(r) => {
            let text = if json {
                match serde_json::to_string(&r) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("roundtable: could not write the report: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                words(&r)
            };
            if let Err(e) = crate::write_stdout(&text) {
                eprintln!("roundtable: could not write the report: {e}");
                return ExitCode::from(2);
            }
            if r.verified {
                ExitCode::SUCCESS
            } else if r.damaged.is_some() {
                eprintln!(
                    "roundtable: {} is damaged (not a whole bundle); the report shows only what its readable part proves",
                    bundle.display()
                );
                ExitCode::from(2)
            } else {
                eprintln!(
                    "roundtable: the audit found {} problem(s); each is listed with its reason",
                    r.problems.len()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("roundtable: {e:#}");
            // A file over the largest bundle is refused, as a check that failed.
            if e.chain().any(|c| c.is::<crate::Refusal>()) {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn audit(
    bundle: &Path,
    report: Option<&Path>,
    threads: Option<usize>,
    progress: bool,
) -> anyhow::Result<Report> {
    let file = crate::open_bundle(bundle)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let bar = crate::progress::Progress::new(size, progress);
    let r = roundtable_audit::audit_from(bar.reader(file), threads);
    bar.done();
    let r = r.map_err(|e| match e {
        AuditError::Unreadable(b) => anyhow::anyhow!("{} cannot be audited: {b}", bundle.display()),
        other => anyhow::Error::new(other),
    })?;
    if let Some(path) = report {
        let html = render_html(&r)?;
        std::fs::write(path, html)
            .with_context(|| format!("could not write the report to {}", path.display()))?;
    }
    Ok(r)
}

fn words(r: &Report) -> String {
    let mut w = format!("Audit of \"{}\" ({})\n", r.group_name, r.group_id);
    for line in &r.summary {
        w += &format!("{line}\n");
    }
    for p in r.problems.iter().take(50) {
        w += &format!(
            "- {}{}: {}\n",
            p.kind,
            p.entry_id
                .as_deref()
                .map(|id| format!(" (entry {id})"))
                .unwrap_or_default(),
            p.detail
        );
    }
    if r.problems.len() > 50 {
        w += &format!(
            "... and {} more (use --json or --report for all).\n",
            r.problems.len() - 50
        );
    }
    if let Some(d) = &r.damaged {
        w += "The file is damaged:\n";
        for f in &d.failures {
            w += &format!("- {}: {}\n", f.kind, f.detail);
        }
    }
    if !r.notes.is_empty() {
        w += &format!(
            "{} (they forge nothing; see --json for each).\n",
            match r.notes.len() {
                1 => "1 note".to_string(),
                n => format!("{n} notes"),
            }
        );
    }
    w
}

/// A file name from a group's name: letters, digits, '-' and '_' only.
fn file_stem(name: &str, fallback: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        fallback.to_string()
    } else {
        s
    }
}

/// Writes the group's public document as a standard Automerge file.
pub fn export_automerge(g: &mut Group, dir: &Path) -> anyhow::Result<Out> {
    let g = &mut g.record;
    let name = g
        .group_info()
        .map(|(n, _, _)| n.to_string())
        .unwrap_or_default();
    let stem = file_stem(&name, &g.group().to_string());
    let bytes = g.doc()?.save();
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let path = dir.join(format!("{stem}.automerge"));
    crate::write_atomically(&path, &bytes)?;
    Ok(Out {
        json: json!({ "files": [path.display().to_string()], "bytes": bytes.len() }),
        words: format!(
            "Wrote the public record of \"{name}\" as a standard Automerge file: {}",
            path.display()
        ),
    })
}
