//! The auditor's check on the page ("Check the record"), and leaving the group with an "Are you
//! sure?" step that says what happens.
//!
//! **Invariant:** the page shows exactly what `roundtable audit` reports on this device's copy
//! of the record: the same program ([`roundtable_app::audit_group`]), never a second count.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use roundtable_audit::Participation;

use super::{Nav, PageResult, csrf_ok, group_name, page, seat, with_group};
use crate::AppState;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    group: String,
    verified: bool,
    entries: usize,
    problems: Vec<String>,
    notes: Vec<String>,
    decisions: String,
    participation: Vec<Participation>,
}

#[derive(Template)]
#[template(path = "leave.html")]
struct LeavePage {
    nav: Nav,
    group: String,
    csrf: String,
}

pub(crate) async fn audit(State(state): State<AppState>) -> PageResult {
    let p = with_group(&state, |home, _, g| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let r = roundtable_app::audit_group(home, &g.id(), threads)?;
        let matching = r.decisions.iter().filter(|d| d.matches).count();
        let partial = r
            .decisions
            .iter()
            .filter(|d| d.stands && d.answered < d.members)
            .count();
        let decisions = match r.decisions.len() {
            0 => "No decision has been closed yet.".to_string(),
            n if matching == n => format!(
                "The group closed {n} {}. Counting every view again gives the same {}.",
                if n == 1 { "decision" } else { "decisions" },
                if n == 1 { "result" } else { "results" }
            ),
            n => format!(
                "The group closed {n} decisions. Counting the views again gives a different \
                 result for {} of them.",
                n - matching
            ),
        };
        let decisions = match partial {
            0 => decisions,
            1 => format!("{decisions} 1 of them was taken without every member's view."),
            n => format!("{decisions} {n} of them were taken without every member's view."),
        };
        Ok(AuditPage {
            nav: Nav::Audit,
            group: group_name(&g.record),
            verified: r.verified,
            entries: r.valid_entries,
            problems: r
                .problems
                .iter()
                .map(|p| super::sentence(&p.detail))
                .collect(),
            notes: r.notes.iter().map(|n| super::sentence(&n.detail)).collect(),
            decisions,
            participation: r.participation,
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn leave_form(State(state): State<AppState>) -> PageResult {
    let group = with_group(&state, |_, _, g| Ok(group_name(&g.record))).await?;
    page(LeavePage {
        nav: Nav::Members,
        group,
        csrf: state.csrf_token().to_string(),
    })
}

pub(crate) async fn leave(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    csrf_ok(&state, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    with_group(&state, |home, st, g| Ok(seat(home, st)?.leave(g)?)).await?;
    Ok(Redirect::to("/members").into_response())
}
