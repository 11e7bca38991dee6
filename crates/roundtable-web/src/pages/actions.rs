//! Actions: who does what by when, and "You said, we did" (the actions that were done, beside the
//! thread they came from).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use roundtable_core::{Body, DeviceId, EntryId, MemberId, Record};
use serde::Deserialize;

use super::{
    Nav, PageResult, Problem, back_to, csrf_ok, day, name_of, names, page, parse_id, plain, seat,
    when, with_group,
};
use crate::AppState;

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsPage {
    nav: Nav,
    todo: Vec<ActionRow>,
    done: Vec<ActionRow>,
    csrf: String,
}

pub(crate) struct ActionRow {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) owner: String,
    pub(crate) mine: bool,
    pub(crate) due: String,
    pub(crate) thread: String,
    pub(crate) thread_title: String,
    /// "Done by Ben on 3 March 2026", empty while open.
    pub(crate) done: String,
    /// While open: who else said it is done, waiting for the owner ("Ana said it is done ...").
    pub(crate) suggested: String,
    /// Whether this member already said it is done (then the button is not shown again).
    pub(crate) said: bool,
    /// This member's own "done" that can still be taken back (within a day): its entry id.
    pub(crate) undo: String,
}

/// Actions of one thread, or of the whole group; open ones first, each list oldest first.
/// `now` is the time this page stamps new entries with, so "take it back" shows only while the
/// rules would take it.
pub(crate) fn action_rows(
    r: &Record,
    me: &DeviceId,
    only: Option<&EntryId>,
    now: i64,
) -> Vec<ActionRow> {
    let names = names(r);
    let mut open = Vec::new();
    let mut finished = Vec::new();
    for id in r.causal_order() {
        let Some((_, m)) = r.entry(id) else { continue };
        let Body::Action {
            thread,
            text,
            owner,
            due,
        } = &m.body
        else {
            continue;
        };
        if only.is_some_and(|t| t != thread) {
            continue;
        }
        // Core says where it stands: done only by its owner's word; others suggest.
        let state = r.action_state(id).unwrap_or_default();
        let done = state.done.as_ref().map(|d| {
            format!(
                "Done: {} said so {}.",
                name_of(&names, &d.member),
                when(d.time_ms)
            )
        });
        let owner_name = if owner == me {
            "you".to_string()
        } else {
            name_of(&names, owner)
        };
        let suggested = match state.suggested.as_slice() {
            [] => String::new(),
            s => format!(
                "{} said it is done. It counts as done when {owner_name} {} so too.",
                super::proposals::and_list(
                    &s.iter()
                        .map(|d| name_of(&names, &d.member))
                        .collect::<Vec<_>>()
                ),
                if owner == me { "say" } else { "says" }
            ),
        };
        let said = state.suggested.iter().any(|d| d.member == *me);
        // Mine, and young enough for the rules to let me take it back.
        let undo = state
            .done
            .iter()
            .chain(&state.suggested)
            .find(|d| d.member == *me && now - d.time_ms < roundtable_core::UNDO_WINDOW_MS)
            .map(|d| d.entry.to_string())
            .unwrap_or_default();
        let thread_title = match r.entry(thread).map(|(_, tm)| &tm.body) {
            Some(Body::Thread { title }) => title.clone(),
            _ => "a thread".into(),
        };
        let row = ActionRow {
            id: id.to_string(),
            text: text.clone(),
            owner: name_of(&names, owner),
            mine: owner == me,
            due: due.as_deref().map(day).unwrap_or_default(),
            thread: thread.to_string(),
            thread_title,
            done: done.clone().unwrap_or_default(),
            suggested,
            said,
            undo,
        };
        if done.is_some() {
            finished.push(row);
        } else {
            open.push(row);
        }
    }
    open.extend(finished);
    open
}

pub(crate) async fn actions(State(state): State<AppState>) -> PageResult {
    let p = with_group(&state, |_, st, g| {
        let (todo, done) = action_rows(&g.record, &super::my_id(st)?, None, (st.inner.clock)())
            .into_iter()
            .partition(|a| a.done.is_empty());
        Ok(ActionsPage {
            nav: Nav::Actions,
            todo,
            done,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    due: String,
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let text = plain(form.text).trim().to_string();
    if text.is_empty() {
        return Err(Problem::refused(
            "Please write what needs doing, then add the action.",
        ));
    }
    let owner: MemberId = form
        .owner
        .parse()
        .map_err(|_| Problem::refused("Please choose who will do it."))?;
    let due = Some(form.due.trim().to_string()).filter(|d| !d.is_empty());
    let back = format!("/threads/{id}");
    with_group(&state, move |home, st, g| {
        let thread = parse_id(&id, "thread")?;
        Ok(seat(home, st)?.action(g, thread, &text, owner, due)?)
    })
    .await?;
    Ok(back_to(&back))
}

#[derive(Deserialize)]
pub(crate) struct DoneForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn done(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<DoneForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    with_group(&state, move |home, st, g| {
        let action = parse_id(&id, "action")?;
        Ok(seat(home, st)?.action_done(g, action)?)
    })
    .await?;
    Ok(back_to("/actions"))
}

#[derive(Deserialize)]
pub(crate) struct UndoForm {
    #[serde(default)]
    csrf: String,
    /// The member's own `action.done` entry.
    #[serde(default)]
    done: String,
}

/// Takes back this member's own "done" on action `id` (the form names the entry).
pub(crate) async fn undo(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<UndoForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    with_group(&state, move |home, st, g| {
        let action = parse_id(&id, "action")?;
        let done = parse_id(&form.done, "answer")?;
        Ok(seat(home, st)?.action_undo_of(g, action, done)?)
    })
    .await?;
    Ok(back_to("/actions"))
}
