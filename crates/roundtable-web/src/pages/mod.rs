//! The pages. Each handler reads the home inside `spawn_blocking`, builds a small view, and renders one
//! askama template; every template extends `layout.html` (the same menu in the same place).
//!
//! **Invariant:** every action is a real form (POST with the CSRF token) that works without
//! JavaScript; `roundtable.js` only adds read-aloud buttons and live writing advice.

pub(crate) mod actions;
pub(crate) mod audit;
pub(crate) mod devices;
pub(crate) mod home;
pub(crate) mod own_words;
pub(crate) mod pair;
pub(crate) mod proposals;
pub(crate) mod setup;
pub(crate) mod threads;
pub(crate) mod time;
pub(crate) mod words;

pub(crate) use time::{due_words as day, when};

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use roundtable_app::{AppError, Seat};
use roundtable_core::{Body, DeviceId, EntryId, Record, Status};
use roundtable_seal::{Keyring, SealError};
use roundtable_store::{Group, Home, StoreError};

use crate::AppState;
use crate::security::same;

const CSS: &str = include_str!("../../static/roundtable.css");
const JS: &str = include_str!("../../static/roundtable.js");

/// The pictures, one per meaning (see `static/pictures/LICENCE.md`).
const PICTURES: &[(&str, &str)] = &[
    ("home", include_str!("../../static/pictures/home.svg")),
    ("threads", include_str!("../../static/pictures/threads.svg")),
    ("members", include_str!("../../static/pictures/members.svg")),
    ("help", include_str!("../../static/pictures/help.svg")),
    ("actions", include_str!("../../static/pictures/actions.svg")),
    (
        "proposal",
        include_str!("../../static/pictures/proposal.svg"),
    ),
    ("agree", include_str!("../../static/pictures/agree.svg")),
    (
        "not-sure",
        include_str!("../../static/pictures/not-sure.svg"),
    ),
    (
        "disagree",
        include_str!("../../static/pictures/disagree.svg"),
    ),
    ("block", include_str!("../../static/pictures/block.svg")),
    ("saved", include_str!("../../static/pictures/saved.svg")),
    ("shared", include_str!("../../static/pictures/shared.svg")),
    (
        "not-shared",
        include_str!("../../static/pictures/not-shared.svg"),
    ),
    ("sealed", include_str!("../../static/pictures/sealed.svg")),
    (
        "read-aloud",
        include_str!("../../static/pictures/read-aloud.svg"),
    ),
    ("new", include_str!("../../static/pictures/new.svg")),
    ("check", include_str!("../../static/pictures/check.svg")),
    (
        "understood",
        include_str!("../../static/pictures/understood.svg"),
    ),
    ("done", include_str!("../../static/pictures/done.svg")),
    ("write", include_str!("../../static/pictures/write.svg")),
    ("group", include_str!("../../static/pictures/group.svg")),
];

/// Which menu item is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Home,
    Threads,
    Proposals,
    Actions,
    Members,
    Devices,
    Audit,
    Help,
    /// Before the device is set up or unlocked: no menu (every item would lead back here).
    Setup,
    None,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    nav: Nav,
    title: &'a str,
    text: &'a str,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    nav: Nav,
    group: String,
    members: Vec<MemberRow>,
    /// Open questions to the group about itself: who joins or leaves, auditors, its rules.
    asked: Vec<AskedRow>,
    /// How the group decides, in words.
    policy: String,
    csrf: String,
}

pub(crate) struct AskedRow {
    id: String,
    question: String,
    views: String,
}

#[derive(Template)]
#[template(path = "help.html")]
struct HelpPage {
    nav: Nav,
}

pub(crate) struct MemberRow {
    id: String,
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
    pub(crate) text: String,
}

impl Problem {
    pub(crate) fn not_found(what: &str) -> Problem {
        Problem {
            status: StatusCode::NOT_FOUND,
            title: "We could not find that",
            text: format!("There is no {what} here. Please choose from the menu."),
        }
    }

    /// The device's key is not unlocked yet (the guard sends members to the right page first).
    pub(crate) fn locked() -> Problem {
        Problem {
            status: StatusCode::FORBIDDEN,
            title: "This device is not open yet",
            text: "Please set up this device, or give your passphrase, on the first page.".into(),
        }
    }

    /// The record refused a write (a rule), or the form was not complete.
    pub(crate) fn refused(text: impl Into<String>) -> Problem {
        Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "This was not saved",
            text: text.into(),
        }
    }
}

impl From<roundtable_store::OpenError> for Problem {
    fn from(e: roundtable_store::OpenError) -> Problem {
        Problem::from(StoreError::from(e))
    }
}

impl From<roundtable_store::KeyError> for Problem {
    fn from(e: roundtable_store::KeyError) -> Problem {
        Problem::from(StoreError::from(e))
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Refused(roundtable_core::Refused::Invalid(why)) => Problem::refused(
                format!("The group's rules do not allow it: {why}. Nothing was saved."),
            ),
            e => Problem {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                title: "Something went wrong",
                text: format!(
                    "Roundtable could not read or save the record: {e}. Nothing was lost."
                ),
            },
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Problem {
        match e {
            AppError::Store(e) => e.into(),
            AppError::Refused(roundtable_core::Invalid::NotQuorate {
                given,
                needed,
                members,
            }) => Problem::refused(format!(
                "It cannot be closed yet. {} Nothing was saved.",
                views_words(given, needed, members)
            )),
            AppError::Refused(why) => Problem::refused(format!(
                "The group's rules do not allow it: {why}. Nothing was saved."
            )),
            AppError::NotFound { what, .. } => Problem::not_found(&format!("such {what}")),
            AppError::Seal(roundtable_seal::SealError::Random(r)) => Problem {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                title: "Something went wrong",
                text: format!(
                    "This computer could not make a random number: {r}. Nothing was saved."
                ),
            },
            e => Problem::refused(sentence(&e.to_string())),
        }
    }
}

/// A library message as a sentence: a capital first letter and a full stop.
pub(crate) fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out: String = c
        .next()
        .map(|f| f.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(c.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl From<SealError> for Problem {
    fn from(e: SealError) -> Problem {
        Problem::refused(format!("{e}. Nothing was saved."))
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

pub(crate) type PageResult = Result<Response, Problem>;

pub(crate) fn page(t: impl Template) -> PageResult {
    Ok(Html(t.render()?).into_response())
}

/// After a POST: back to a page of ours (never to another site).
pub(crate) fn back_to(path: &str) -> Response {
    let safe = path.starts_with('/') && !path.starts_with("//") && !path.contains('\\');
    Redirect::to(if safe { path } else { "/" }).into_response()
}

// ---------- reading the home ----------

/// Runs `f` with the home opened for this one operation, off the async threads.
pub(crate) async fn with_home<T: Send + 'static>(
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

/// [`with_home`] with the group shown opened too: what nearly every page needs.
pub(crate) async fn with_group<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Home, &AppState, &mut Group) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    with_home(state, |home, st| f(home, st, &mut the_group(home, st)?)).await
}

/// The group shown: the one chosen on the Groups page, else the home's first.
pub(crate) fn the_group(home: &Home, st: &AppState) -> Result<Group, Problem> {
    let groups = home.groups()?;
    let chosen = st.inner.group.lock().ok().and_then(|g| *g);
    let id = chosen
        .filter(|c| groups.iter().any(|(id, _)| id == c))
        .or_else(|| groups.first().map(|(id, _)| *id));
    let Some(id) = id else {
        return Err(Problem {
            status: StatusCode::NOT_FOUND,
            title: "No group yet",
            text: "This device is not in a group yet. Start one or join one with the roundtable \
                   command, then come back."
                .into(),
        });
    };
    Ok(home.open_group(&id)?)
}

/// This member's seat: every write of the page goes through the application layer, as the
/// command line's do.
pub(crate) fn seat<'a>(home: &'a Home, st: &'a AppState) -> Result<Seat<'a>, Problem> {
    let me = st.me().ok_or_else(Problem::locked)?;
    Ok(Seat::new(home, &me.key, st.enc().as_ref()).with_clock(st.inner.clock))
}

/// This device's id (the member it speaks for), once its key is unlocked.
pub(crate) fn my_id(st: &AppState) -> Result<DeviceId, Problem> {
    st.me().map(|m| m.member).ok_or_else(Problem::locked)
}

/// This device's keys for sealed threads, when it holds them.
pub(crate) fn keyring(st: &AppState) -> Option<Keyring> {
    let me = st.me()?;
    st.enc().map(|e| Keyring::new(me.member, &e))
}

pub(crate) fn csrf_ok(state: &AppState, csrf: &str) -> Result<(), Problem> {
    // An empty token (none could be read) never matches, not even an empty field.
    let expected = state.csrf_token();
    if !expected.is_empty() && same(csrf, &expected) {
        Ok(())
    } else {
        Err(Problem {
            status: StatusCode::FORBIDDEN,
            title: "This form is out of date",
            text: "Nothing was saved. Please go back, reload the page, and try again.".into(),
        })
    }
}

pub(crate) fn names(r: &Record) -> BTreeMap<DeviceId, String> {
    r.members().into_iter().map(|m| (m.id, m.name)).collect()
}

/// Each member's needs in their own words (empty when they have not said).
pub(crate) fn needs_of(r: &Record) -> BTreeMap<DeviceId, String> {
    r.members().into_iter().map(|m| (m.id, m.needs)).collect()
}

pub(crate) fn name_of(names: &BTreeMap<DeviceId, String>, id: &DeviceId) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("device {}", &id.to_string()[..8]))
}

pub(crate) fn group_name(r: &Record) -> String {
    r.group_info()
        .map(|(n, _, _)| n.to_string())
        .unwrap_or_else(|| "Your group".into())
}

/// Parses an entry id from a path; a malformed one is "not found", never an error page.
pub(crate) fn parse_id(id: &str, what: &str) -> Result<EntryId, Problem> {
    id.parse()
        .map_err(|_| Problem::not_found(&format!("such {what}")))
}

/// A form's text with the browser's CRLF line ends made plain `\n`.
pub(crate) fn plain(text: String) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    }
}

/// Who will see an entry in an open thread, in words.
pub(crate) fn audience(r: &Record) -> String {
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

pub(crate) async fn members(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> PageResult {
    let p = with_group(&state, |_, st, g| {
        let r = &g.record;
        let mut members: Vec<MemberRow> = r
            .members()
            .into_iter()
            .map(|m| MemberRow {
                id: m.id.to_string(),
                me: st.me().is_some_and(|me| me.member == m.id),
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
        let asked = r
            .genesis()
            .map(|g| r.referrers(&g))
            .unwrap_or_default()
            .into_iter()
            .filter(|p| r.outcome(p).is_none())
            .filter_map(|p| {
                let (_, m) = r.entry(&p)?;
                let Body::Proposal { easy_read, .. } = &m.body else {
                    return None;
                };
                let t = r.tally_now(&p)?;
                Some(AskedRow {
                    id: p.to_string(),
                    question: easy_read.clone(),
                    views: views_words(t.given, t.needed, t.members),
                })
            })
            .collect();
        let policy = match r.policy() {
            Some((rule, quorum)) => policy_words(rule, quorum, r.governance().active_count()),
            None => String::new(),
        };
        Ok(MembersPage {
            nav: Nav::Members,
            group: group_name(r),
            members,
            asked,
            policy,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

#[derive(serde::Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    member_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    needs: String,
}

/// Asks the group whether someone should join: a proposal with this member's agree (decided at once
/// while this member is the only one). Then shows the proposal.
pub(crate) async fn propose_member(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Form(form): axum::Form<AddForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let name = plain(form.name).trim().to_string();
    let needs = plain(form.needs).trim().to_string();
    if name.is_empty() {
        return Err(Problem::refused(
            "Please write the name of the person who would join.",
        ));
    }
    let member: DeviceId = form.member_id.trim().parse().map_err(|_| {
        Problem::refused(
            "That member id is not right: it is 64 letters and numbers, shown on their device.",
        )
    })?;
    let effect = roundtable_core::Effect::Add {
        member,
        name: name.clone(),
        needs,
    };
    let p = with_group(&state, move |home, st, g| {
        propose(home, st, g, effect, &name)
    })
    .await?;
    Ok(axum::response::Redirect::to(&format!("/proposals/{p}")).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct AboutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    needs: String,
}

/// A member changes their own name and needs: an entry signed by them, shown to everyone.
pub(crate) async fn about_me(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Form(form): axum::Form<AboutForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let (name, needs) = (plain(form.name), plain(form.needs));
    with_group(&state, move |home, st, g| {
        Ok(seat(home, st)?.set_about(g, &name, &needs)?)
    })
    .await?;
    Ok(axum::response::Redirect::to("/members").into_response())
}

/// Asks the group whether a member should stop being one.
pub(crate) async fn propose_removal(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let member: DeviceId = id.parse().map_err(|_| Problem::not_found("such member"))?;
    let p = with_group(&state, move |home, st, g| {
        let name = name_of(&names(&g.record), &member);
        propose(
            home,
            st,
            g,
            roundtable_core::Effect::Remove { member },
            &name,
        )
    })
    .await?;
    Ok(axum::response::Redirect::to(&format!("/proposals/{p}")).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    quorum: String,
}

/// Asks the group to change how it decides: never decided by one member (the rules count it).
pub(crate) async fn propose_policy(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Form(form): axum::Form<PolicyForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let rule = roundtable_core::Rule::parse(&form.rule).ok_or_else(|| {
        Problem::refused("Please choose how the group decides. Nothing was changed.")
    })?;
    let quorum: u64 = form
        .quorum
        .trim()
        .parse()
        .ok()
        .filter(|q| (1..=1000).contains(q))
        .ok_or_else(|| {
            Problem::refused(
                "Please write how many members must give a view, as a number from 1. Nothing was \
                 changed.",
            )
        })?;
    let effect = roundtable_core::Effect::Policy { rule, quorum };
    let p = with_group(&state, move |home, st, g| {
        let name = group_name(&g.record);
        propose(home, st, g, effect, &name)
    })
    .await?;
    Ok(axum::response::Redirect::to(&format!("/proposals/{p}")).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct AuditorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    name: String,
}

/// Asks the group to let an auditor's device read the record (never write, never sealed words).
pub(crate) async fn propose_auditor(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Form(form): axum::Form<AuditorForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let name = plain(form.name).trim().to_string();
    if name.is_empty() {
        return Err(Problem::refused(
            "Please write the auditor's name. Nothing was changed.",
        ));
    }
    let device: DeviceId = form.device_id.trim().parse().map_err(|_| {
        Problem::refused(
            "That device id is not right: it is 64 letters and numbers, shown on the auditor's \
             device. Nothing was changed.",
        )
    })?;
    let effect = roundtable_core::Effect::Auditor {
        device,
        name: name.clone(),
    };
    let p = with_group(&state, move |home, st, g| {
        propose(home, st, g, effect, &name)
    })
    .await?;
    Ok(axum::response::Redirect::to(&format!("/proposals/{p}")).into_response())
}

/// Asks the group to name a keeper: an always-on device that holds the record, never writes, never
/// reads sealed words. The same application call as the command line's `keeper add`.
pub(crate) async fn propose_keeper(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Form(form): axum::Form<AuditorForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let name = plain(form.name).trim().to_string();
    if name.is_empty() {
        return Err(Problem::refused(
            "Please write what to call the keeper. Nothing was changed.",
        ));
    }
    let device: DeviceId = form.device_id.trim().parse().map_err(|_| {
        Problem::refused(
            "That device id is not right: it is 64 letters and numbers, shown on the keeper \
             computer when Roundtable is set up there. Nothing was changed.",
        )
    })?;
    let effect = roundtable_core::Effect::Keeper {
        device,
        name: name.clone(),
    };
    let p = with_group(&state, move |home, st, g| {
        propose(home, st, g, effect, &name)
    })
    .await?;
    Ok(axum::response::Redirect::to(&format!("/proposals/{p}")).into_response())
}

/// Asks the group to stop one of its keepers keeping the record (a decision of the group, as
/// adding it was).
pub(crate) async fn propose_keeper_remove(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Form(form): axum::Form<AuditorForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let refused =
        || Problem::refused("Please choose one of the group's keepers. Nothing was changed.");
    let device: DeviceId = form.device_id.trim().parse().map_err(|_| refused())?;
    let p = with_group(&state, move |home, st, g| {
        let name = match g.record.governance().keepers.get(&device) {
            Some(k) if g.record.governance().keeper_active(&device) => k.name.clone(),
            _ => return Err(refused()),
        };
        propose(
            home,
            st,
            g,
            roundtable_core::Effect::KeeperRemove { device },
            &name,
        )
    })
    .await?;
    Ok(axum::response::Redirect::to(&format!("/proposals/{p}")).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A change to the group itself, through the same store call as the command line.
fn propose(
    home: &Home,
    st: &AppState,
    g: &mut Group,
    effect: roundtable_core::Effect,
    name: &str,
) -> Result<EntryId, Problem> {
    Ok(seat(home, st)?.ask_group(g, effect, name)?.proposal)
}

/// "2 of 5 members have given a view. 3 are needed before it can be closed."
pub(crate) fn views_words(given_n: u64, needed: u64, members: u64) -> String {
    let of = if members == 1 {
        "1 member".to_string()
    } else {
        format!("{members} members")
    };
    let given = if given_n == 1 {
        "has given a view".to_string()
    } else {
        "have given a view".to_string()
    };
    let more = needed.saturating_sub(given_n);
    if more == 0 {
        format!(
            "{} of {of} {given}. That is enough: any member can close it now.",
            given_n
        )
    } else {
        format!(
            "{} of {of} {given}. {more} more {} needed before it can be closed.",
            given_n,
            if more == 1 { "is" } else { "are" }
        )
    }
}

/// How the group decides, in words.
pub(crate) fn policy_words(rule: roundtable_core::Rule, quorum: u64, members: u64) -> String {
    let needed = roundtable_core::governance::views_needed(quorum, quorum, members);
    let rule = match rule {
        roundtable_core::Rule::Consent => "a proposal passes when nobody blocks it",
        roundtable_core::Rule::Majority => {
            "a proposal passes when more members agree than disagree or block"
        }
    };
    format!(
        "In this group {rule}, and at least {needed} {} must give a view first. Nobody decides alone: joining, leaving and the rules are decided the same way.",
        if needed == 1 { "member" } else { "members" }
    )
}

pub(crate) async fn help() -> PageResult {
    page(HelpPage { nav: Nav::Help })
}

pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub(crate) async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

pub(crate) async fn picture(Path(name): Path<String>) -> Response {
    let stem = name.strip_suffix(".svg").unwrap_or("");
    match PICTURES.iter().find(|(n, _)| *n == stem) {
        Some((_, svg)) => ([(header::CONTENT_TYPE, "image/svg+xml")], *svg).into_response(),
        None => not_found().await,
    }
}

pub(crate) async fn not_found() -> Response {
    Problem::not_found("such page").into_response()
}
