//! The HTML report: for a person, and for paper. A summary in plain words first, then the details.

use askama::Template;

use crate::{AuditError, Report, grouped};

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
    entries: String,
    valid: String,
    verdict: &'static str,
}

/// Renders the report as one self-contained HTML page (no scripts, no outside files).
pub fn render_html(r: &Report) -> Result<String, AuditError> {
    Page {
        r,
        entries: grouped(r.entries),
        valid: grouped(r.valid_entries),
        verdict: if r.verified {
            "Verified: the record is whole and every rule was kept."
        } else {
            "Problems were found: see below."
        },
    }
    .render()
    .map_err(|e| AuditError::Report(e.to_string()))
}
