//! The pages. Each handler reads the home inside `spawn_blocking`, builds a small view, and renders one
//! askama template; every template extends `layout.html` (the same menu in the same place).

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use roundtable_core::{Body, DeviceId, EntryId, Record, Status};
use roundtable_store::{Group, Home, StoreError};
use serde::Deserialize;

use crate::AppState;
use crate::security::same;

const CSS: &str = include_str!("../static/roundtable.css");

/// Which menu item is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Home,
    Threads,
    Members,
    Help,
    None,
}

// ---------- templates ----------

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    nav: Nav,
    title: &'a str,
    text: &'a str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    group: String,
    me: String,
    status: &'static str,
    threads: Vec<ThreadRow>,
}

#[derive(Template)]
#[template(path = "threads.html")]
struct ThreadsPage {
    nav: Nav,
    group: String,
    threads: Vec<ThreadRow>,
}

#[derive(Template)]
#[template(path = "thread.html")]
struct ThreadPage {
    nav: Nav,
    t: ThreadView,
}

#[derive(Template)]
#[template(path = "write.html")]
struct WritePage {
    nav: Nav,
    id: String,
    title: String,
    text: String,
    problem: &'static str,
    csrf: String,
}

#[derive(Template)]
#[template(path = "check.html")]
struct CheckPage {
    nav: Nav,
    id: String,
    title: String,
    text: String,
    audience: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    nav: Nav,
    group: String,
    members: Vec<MemberRow>,
}

#[derive(Template)]
#[template(path = "help.html")]
struct HelpPage {
    nav: Nav,
}

// ---------- views ----------

pub(crate) struct ThreadRow {
    id: String,
    title: String,
    sealed: bool,
    count: usize,
    last: String,
}

pub(crate) struct MessageRow {
    author: String,
    time: String,
    text: String,
    corrected: bool,
}

pub(crate) struct ThreadView {
    id: String,
    title: String,
    started_by: String,
    started: String,
    messages: Vec<MessageRow>,
    sealed: Option<SealedView>,
}

pub(crate) struct SealedView {
    reason: String,
    readers: String,
    is_reader: bool,
    count: usize,
}

pub(crate) struct MemberRow {
    name: String,
    needs: String,
    status: &'static str,
    me: bool,
}

// ---------- errors ----------

/// A page that went wrong, in plain words.
pub(crate) struct Problem {
    status: StatusCode,
    title: &'static str,
    text: String,
}

impl Problem {
    fn not_found(what: &str) -> Problem {
        Problem {
            status: StatusCode::NOT_FOUND,
            title: "We could not find that",
            text: format!("There is no {what} here. Please choose from the menu."),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            text: format!("Roundtable could not read or save the record: {e}. Nothing was lost."),
        }
    }
}

impl From<askama::Error> for Problem {
    fn from(e: askama::Error) -> Problem {
        Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            text: format!("Roundtable could not draw this page: {e}."),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        refusal(self.status, self.title, &self.text)
    }
}

/// A plain-words page with a status (refusals, errors).
pub(crate) fn refusal(status: StatusCode, title: &str, text: &str) -> Response {
    let body = MessagePage {
        nav: Nav::None,
        title,
        text,
    }
    .render()
    .unwrap_or_else(|_| text.to_string());
    (status, Html(body)).into_response()
}

type PageResult = Result<Response, Problem>;

fn page(t: impl Template) -> PageResult {
    Ok(Html(t.render()?).into_response())
}

// ---------- reading the home ----------

/// Runs `f` with the home opened for this one operation, off the async threads.
async fn with_home<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Home, &AppState) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let home = Home::open(&state.inner.home_dir)?;
        f(&home, &state)
    })
    .await
    .unwrap_or_else(|e| {
        Err(Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            text: format!("A background task failed: {e}."),
        })
    })
}

/// The group shown (part 1: the home's first group).
fn the_group(home: &Home) -> Result<Group, Problem> {
    let groups = home.groups()?;
    let Some((id, _)) = groups.first() else {
        return Err(Problem {
            status: StatusCode::NOT_FOUND,
            title: "No group yet",
            text: "This device is not in a group yet. Start one or join one with the roundtable \
                   command, then come back."
                .into(),
        });
    };
    Ok(home.open_group(id)?)
}

fn names(r: &Record) -> BTreeMap<DeviceId, String> {
    r.members().into_iter().map(|m| (m.id, m.name)).collect()
}

fn name_of(names: &BTreeMap<DeviceId, String>, id: &DeviceId) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("device {}", &id.to_string()[..8]))
}

fn group_name(r: &Record) -> String {
    r.group_info()
        .map(|(n, _, _)| n.to_string())
        .unwrap_or_else(|| "Your group".into())
}

/// Milliseconds since 1970 as "2 March 2025, 14:05 UTC".
pub(crate) fn when(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{d} {} {y}, {:02}:{:02} UTC",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn thread_rows(r: &Record) -> Vec<ThreadRow> {
    r.threads()
        .into_iter()
        .rev()
        .filter_map(|id| {
            let (_, meta) = r.entry(&id)?;
            let (title, sealed) = match &meta.body {
                Body::Thread { title } => (title.clone(), false),
                Body::SealedThread { title, .. } => (title.clone(), true),
                _ => return None,
            };
            let msgs: Vec<EntryId> = r
                .referrers(&id)
                .into_iter()
                .filter(|h| {
                    r.entry(h).is_some_and(|(_, m)| {
                        matches!(m.body, Body::Message { .. } | Body::Sealed { .. })
                    })
                })
                .collect();
            let last = msgs
                .last()
                .and_then(|h| r.entry(h))
                .map_or(meta.time_ms, |(_, m)| m.time_ms);
            Some(ThreadRow {
                id: id.to_string(),
                title,
                sealed,
                count: msgs.len(),
                last: when(last),
            })
        })
        .collect()
}

fn parse_thread(r: &Record, id: &str) -> Result<(EntryId, String, bool), Problem> {
    let tid: EntryId = id.parse().map_err(|_| Problem::not_found("such thread"))?;
    match r.entry(&tid).map(|(_, m)| &m.body) {
        Some(Body::Thread { title }) => Ok((tid, title.clone(), false)),
        Some(Body::SealedThread { title, .. }) => Ok((tid, title.clone(), true)),
        _ => Err(Problem::not_found("such thread")),
    }
}

fn thread_view(r: &Record, me: &DeviceId, id: &str) -> Result<ThreadView, Problem> {
    let (tid, title, sealed) = parse_thread(r, id)?;
    let names = names(r);
    let (author, meta) = r
        .entry(&tid)
        .ok_or_else(|| Problem::not_found("such thread"))?;
    let messages = r
        .referrers(&tid)
        .into_iter()
        .filter_map(|h| {
            let (a, m) = r.entry(&h)?;
            let Body::Message { text, .. } = &m.body else {
                return None;
            };
            let latest = r.corrections(&h).last().and_then(|c| match r.entry(c) {
                Some((_, cm)) => match &cm.body {
                    Body::Correct { text, .. } => Some(text.clone()),
                    _ => None,
                },
                None => None,
            });
            Some(MessageRow {
                author: name_of(&names, &a),
                time: when(m.time_ms),
                corrected: latest.is_some(),
                text: latest.unwrap_or_else(|| text.clone()),
            })
        })
        .collect();
    let sealed = if sealed {
        r.sealed_thread(&tid).map(|info| SealedView {
            reason: info.reason.clone(),
            readers: {
                let mut rs: Vec<String> = info
                    .state
                    .readers
                    .iter()
                    .map(|m| name_of(&names, m))
                    .collect();
                rs.sort();
                rs.join(", ")
            },
            is_reader: info.state.readers.contains(me),
            count: info.entries.len(),
        })
    } else {
        None
    };
    Ok(ThreadView {
        id: tid.to_string(),
        title,
        started_by: name_of(&names, &author),
        started: when(meta.time_ms),
        messages,
        sealed,
    })
}

/// Who will see a message in an open thread, in words.
fn audience(r: &Record) -> String {
    let mut active: Vec<String> = r
        .members()
        .into_iter()
        .filter(|m| m.status == Status::Active)
        .map(|m| m.name)
        .collect();
    active.sort();
    let auditors = r.auditors();
    let mut s = format!("Everyone in the group: {}.", active.join(", "));
    if !auditors.is_empty() {
        let mut names: Vec<String> = auditors.into_iter().map(|(_, n)| n).collect();
        names.sort();
        s.push_str(&format!(
            " The group's auditors can read it too: {}.",
            names.join(", ")
        ));
    }
    s.push_str(" People who join the group later will see it too.");
    s
}

// ---------- handlers ----------

pub(crate) async fn home(State(state): State<AppState>) -> PageResult {
    let p = with_home(&state, |home, st| {
        let g = the_group(home)?;
        let r = &g.record;
        Ok(HomePage {
            nav: Nav::Home,
            group: group_name(r),
            me: name_of(&names(r), &st.inner.device),
            status: "Saved on this device.",
            threads: thread_rows(r),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn threads(State(state): State<AppState>) -> PageResult {
    let p = with_home(&state, |home, _| {
        let g = the_group(home)?;
        Ok(ThreadsPage {
            nav: Nav::Threads,
            group: group_name(&g.record),
            threads: thread_rows(&g.record),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn thread(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let p = with_home(&state, move |home, st| {
        let g = the_group(home)?;
        Ok(ThreadPage {
            nav: Nav::Threads,
            t: thread_view(&g.record, &st.inner.device, &id)?,
        })
    })
    .await?;
    page(p)
}

/// An open thread to write in: (id, title). Sealed threads are not written here yet.
fn open_thread(r: &Record, id: &str) -> Result<(EntryId, String), Problem> {
    match parse_thread(r, id)? {
        (tid, title, false) => Ok((tid, title)),
        (_, _, true) => Err(Problem {
            status: StatusCode::NOT_FOUND,
            title: "Not here yet",
            text: "Writing in a sealed thread is not possible on these pages yet. Please use the \
                   roundtable command."
                .into(),
        }),
    }
}

async fn write_page(
    state: AppState,
    id: String,
    text: String,
    problem: &'static str,
) -> PageResult {
    let p = with_home(&state, move |home, st| {
        let g = the_group(home)?;
        let (tid, title) = open_thread(&g.record, &id)?;
        Ok(WritePage {
            nav: Nav::Threads,
            id: tid.to_string(),
            title,
            text,
            problem,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn write(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    write_page(state, id, String::new(), "").await
}

/// A form's text with the browser's CRLF line ends made plain `\n`.
fn plain(text: String) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    }
}

#[derive(Deserialize)]
pub(crate) struct MessageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    action: String,
}

fn csrf_ok(state: &AppState, form: &MessageForm) -> Result<(), Problem> {
    if same(&form.csrf, state.csrf_token()) {
        Ok(())
    } else {
        Err(Problem {
            status: StatusCode::FORBIDDEN,
            title: "This form is out of date",
            text: "Nothing was saved. Please go back, reload the page, and try again.".into(),
        })
    }
}

/// "Change it" from the check page: the form again, with the words kept.
pub(crate) async fn rewrite(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> PageResult {
    csrf_ok(&state, &form)?;
    write_page(state, id, plain(form.text), "").await
}

pub(crate) async fn check(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> PageResult {
    csrf_ok(&state, &form)?;
    let text = plain(form.text);
    if text.trim().is_empty() {
        return write_page(state, id, text, "Please write your message first.").await;
    }
    let p = with_home(&state, move |home, st| {
        let g = the_group(home)?;
        let (tid, title) = open_thread(&g.record, &id)?;
        Ok(CheckPage {
            nav: Nav::Threads,
            id: tid.to_string(),
            title,
            text,
            audience: audience(&g.record),
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn share(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> PageResult {
    csrf_ok(&state, &form)?;
    let text = plain(form.text);
    if form.action == "change" {
        return write_page(state, id, text, "").await;
    }
    if text.trim().is_empty() {
        return write_page(state, id, text, "Please write your message first.").await;
    }
    let tid = with_home(&state, move |home, st| {
        let mut g = the_group(home)?;
        let (tid, _) = open_thread(&g.record, &id)?;
        let body = Body::Message { thread: tid, text };
        home.append(&mut g, &st.inner.key, body, (st.inner.clock)())?;
        Ok(tid)
    })
    .await?;
    Ok(Redirect::to(&format!("/threads/{tid}")).into_response())
}

pub(crate) async fn members(State(state): State<AppState>) -> PageResult {
    let p = with_home(&state, |home, st| {
        let g = the_group(home)?;
        let r = &g.record;
        let mut members: Vec<MemberRow> = r
            .members()
            .into_iter()
            .map(|m| MemberRow {
                me: m.id == st.inner.device,
                name: m.name,
                needs: m.needs,
                status: match m.status {
                    Status::Active => "Member",
                    Status::Left => "Has left the group",
                    Status::Removed => "Was removed from the group",
                },
            })
            .collect();
        members
            .sort_by(|a, b| (a.status != "Member", &a.name).cmp(&(b.status != "Member", &b.name)));
        Ok(MembersPage {
            nav: Nav::Members,
            group: group_name(r),
            members,
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn help() -> PageResult {
    page(HelpPage { nav: Nav::Help })
}

pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub(crate) async fn not_found() -> Response {
    Problem::not_found("such page").into_response()
}
