//! Home (what is new since the last visit, whether the record is shared) and the group chooser.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use roundtable_core::{Body, Decision, DeviceId, Effect, GroupId, Record};
use roundtable_store::Home;
use serde::Deserialize;

use super::threads::{ThreadRow, thread_rows};
use super::{
    Nav, PageResult, Problem, back_to, csrf_ok, group_name, name_of, names, page, the_group, when,
    with_group, with_home,
};
use crate::AppState;

/// At most this many new things are listed; the rest are counted.
const NEW_SHOWN: usize = 12;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    group: String,
    me: String,
    status: Status,
    new: Vec<NewRow>,
    more: usize,
    threads: Vec<ThreadRow>,
    several_groups: bool,
    csrf: String,
    /// Open proposals this member has not answered yet: (id, title, when it closes in words).
    to_answer: Vec<(String, String, String)>,
}

/// Open proposals `me` has not given a counted view on (core's recount says who is waited for).
fn to_answer(r: &Record, me: &DeviceId) -> Vec<(String, String, String)> {
    r.causal_order()
        .iter()
        .filter_map(|id| {
            let (_, m) = r.entry(id)?;
            let Body::Proposal { title, closes, .. } = &m.body else {
                return None;
            };
            if r.outcome(id).is_some() {
                return None;
            }
            let t = r.tally_now(id)?;
            let closes = closes
                .as_deref()
                .and_then(super::time::closes_words)
                .unwrap_or_default();
            t.waiting
                .contains(me)
                .then(|| (id.to_string(), title.clone(), closes))
        })
        .collect()
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    nav: Nav,
    groups: Vec<GroupRow>,
    csrf: String,
    /// This new device waits for the group's decision on giving its member's seat back.
    waiting: bool,
}

/// The confirmation step before a group is removed from this device.
#[derive(Template)]
#[template(path = "forget.html")]
struct ForgetPage {
    nav: Nav,
    id: String,
    name: String,
    entries: usize,
    csrf: String,
}

struct GroupRow {
    id: String,
    name: String,
    current: bool,
}

pub(crate) struct NewRow {
    pub(crate) words: String,
    pub(crate) link: String,
}

/// The sync status in words and a picture.
pub(crate) struct Status {
    pub(crate) picture: &'static str,
    pub(crate) words: &'static str,
    pub(crate) detail: String,
}

/// Each device's highest sequence number in the record: what "seen" means. A device's entries are
/// numbered 1, 2, 3… so one number per device names exactly which of its entries were there.
fn marks(r: &Record) -> BTreeMap<DeviceId, u64> {
    r.summary()
        .into_iter()
        .map(|(d, seq, _)| (d, seq))
        .collect()
}

fn encode_marks(m: &BTreeMap<DeviceId, u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * 40);
    for (d, seq) in m {
        out.extend_from_slice(&d.0);
        out.extend_from_slice(&seq.to_le_bytes());
    }
    out
}

/// A damaged setting reads as "nothing seen yet": it only decides what is listed as new.
fn decode_marks(b: &[u8]) -> BTreeMap<DeviceId, u64> {
    b.chunks_exact(40)
        .filter_map(|c| {
            let d: [u8; 32] = c[..32].try_into().ok()?;
            let s: [u8; 8] = c[32..].try_into().ok()?;
            Some((DeviceId(d), u64::from_le_bytes(s)))
        })
        .collect()
}

fn seen_key(g: &GroupId) -> String {
    format!("web.seen.{g}")
}

/// What this launch counts as seen for group `g`: kept in memory from the first home page of the
/// launch, so reloading keeps the list; saved so that the next launch starts from this visit.
fn baseline(
    home: &Home,
    st: &AppState,
    g: &GroupId,
    now: &BTreeMap<DeviceId, u64>,
) -> Result<BTreeMap<DeviceId, u64>, Problem> {
    if let Some(b) = st.inner.seen.lock().ok().and_then(|s| s.get(g).cloned()) {
        return Ok(b);
    }
    let stored = home.setting(&seen_key(g))?.map(|b| decode_marks(&b));
    let b = stored.unwrap_or_default();
    if let Ok(mut s) = st.inner.seen.lock() {
        s.insert(*g, b.clone());
    }
    home.set_setting(&seen_key(g), &encode_marks(now))?;
    Ok(b)
}

/// One line about a new entry, and where to read it; `None` for entries members need not be told
/// about (keys, profiles).
fn describe(
    r: &Record,
    names: &BTreeMap<DeviceId, String>,
    author: &DeviceId,
    body: &Body,
) -> Option<(String, String)> {
    let who = name_of(names, author);
    let title = |t| -> String {
        match r.entry(t).map(|(_, m)| &m.body) {
            Some(Body::Thread { title } | Body::SealedThread { title, .. }) => title.clone(),
            Some(Body::Proposal { title, .. }) => title.clone(),
            _ => "a thread".into(),
        }
    };
    Some(match body {
        Body::Genesis { name, .. } => (
            format!("{who} started the group {name}."),
            "/members".into(),
        ),
        Body::MemberAdd { name, .. } => (
            format!("{who} added {name} to the group."),
            "/members".into(),
        ),
        Body::MemberLeave => (format!("{who} left the group."), "/members".into()),
        Body::MemberRemove { member, .. } => (
            format!(
                "{} was removed from the group, as decided.",
                name_of(names, member)
            ),
            "/members".into(),
        ),
        Body::Thread { title } => (
            format!("{who} started the thread “{title}”."),
            String::new(),
        ),
        Body::SealedThread { title, .. } => (
            format!("{who} started the sealed thread “{title}”."),
            String::new(),
        ),
        Body::Message { thread, .. } => (
            format!("{who} wrote in “{}”.", title(thread)),
            format!("/threads/{thread}"),
        ),
        Body::Sealed { thread, .. } => (
            format!("{who} wrote a sealed message in “{}”.", title(thread)),
            format!("/threads/{thread}"),
        ),
        Body::Proposal {
            easy_read,
            effect: Some(_),
            ..
        } => (format!("{who} asked the group: {easy_read}"), String::new()),
        Body::Proposal { title, .. } => (format!("{who} proposed “{title}”."), String::new()),
        Body::Stance { proposal, .. } => (
            format!("{who} answered “{}”.", title(proposal)),
            format!("/proposals/{proposal}"),
        ),
        Body::Outcome { proposal, .. } => {
            let effect = match r.entry(proposal).map(|(_, m)| &m.body) {
                Some(Body::Proposal { effect, .. }) => effect.clone(),
                _ => None,
            };
            let passed = matches!(r.outcome(proposal), Some((_, Decision::Passed)));
            let words = match effect {
                Some(Effect::Add { name, .. }) if passed => {
                    format!("{name} joined the group, as the group decided.")
                }
                Some(Effect::Remove { member }) if passed => format!(
                    "{} is no longer a member, as the group decided.",
                    name_of(names, &member)
                ),
                Some(Effect::Auditor { name, .. }) if passed => {
                    format!("{name} can now check the record, as the group decided.")
                }
                Some(Effect::Keeper { name, .. }) if passed => {
                    format!("{name} now keeps the group's record, as the group decided.")
                }
                Some(Effect::KeeperRemove { .. }) if passed => {
                    "A keeper stopped keeping the group's record, as the group decided.".to_string()
                }
                Some(Effect::Policy { .. }) if passed => {
                    "The group changed how it decides.".to_string()
                }
                _ => format!("“{}” was decided.", title(proposal)),
            };
            (words, format!("/proposals/{proposal}"))
        }
        Body::DeviceAdd { name, .. } => (
            format!("{who} started using another device: {name}."),
            "/devices".into(),
        ),
        Body::DeviceRevoke { .. } => (
            format!("{who} stopped one of their devices."),
            "/devices".into(),
        ),
        Body::Understand { .. } => (format!("{who} said what they understood."), String::new()),
        Body::Confirm { .. } => (format!("{who} confirmed an understanding."), String::new()),
        Body::Correct { .. } => (format!("{who} corrected something."), String::new()),
        Body::Action { text, .. } => (format!("New action: {text}"), "/actions".into()),
        Body::ActionDone { .. } => (format!("{who} said an action is done."), "/actions".into()),
        Body::ActionUndo { .. } => (
            format!("{who} said an action is not done after all."),
            "/actions".into(),
        ),
        Body::Ask { thread, .. } => (
            format!("{who} asked to read “{}”.", title(thread)),
            format!("/threads/{thread}"),
        ),
        Body::Decline { thread, member, .. } => (
            format!(
                "{who} said no to {} reading “{}”, and why.",
                name_of(names, member),
                title(thread)
            ),
            format!("/threads/{thread}"),
        ),
        Body::ReaderAgree { thread, member } => (
            format!(
                "{who} agreed that {} may read “{}”. Every reader must agree.",
                name_of(names, member),
                title(thread)
            ),
            format!("/threads/{thread}"),
        ),
        Body::ReaderAdd { thread, member, .. } => (
            format!(
                "{who} made {} a reader of “{}”.",
                name_of(names, member),
                title(thread)
            ),
            format!("/threads/{thread}"),
        ),
        Body::AuditorAdd { name, .. } => (
            format!("{who} let {name} check the record as an auditor."),
            "/members".into(),
        ),
        Body::About { needs, .. } if needs.trim().is_empty() => (
            format!("{who} changed the name they go by."),
            "/members".into(),
        ),
        Body::About { needs, .. } => (
            format!("{who} said what helps them take part: {needs}"),
            "/members".into(),
        ),
        Body::Profile { .. } | Body::Rekey { .. } => return None,
    })
}

/// Entries past `seen`, newest first, as lines with links to where they are read.
fn new_rows(r: &Record, seen: &BTreeMap<DeviceId, u64>, me: &DeviceId) -> (Vec<NewRow>, usize) {
    let names = names(r);
    let mut rows = Vec::new();
    let mut total = 0;
    for id in r.causal_order().iter().rev() {
        let Some((author, meta)) = r.entry(id) else {
            continue;
        };
        if author == *me || meta.seq <= seen.get(&author).copied().unwrap_or(0) {
            continue;
        }
        let Some((words, link)) = describe(r, &names, &author, &meta.body) else {
            continue;
        };
        total += 1;
        if rows.len() < NEW_SHOWN {
            let link = match (&meta.body, link.is_empty()) {
                (Body::Thread { .. } | Body::SealedThread { .. }, true) => format!("/threads/{id}"),
                (Body::Proposal { .. }, true) => format!("/proposals/{id}"),
                (
                    Body::Understand { target, .. }
                    | Body::Confirm { target }
                    | Body::Correct { target, .. },
                    true,
                ) => link_of(r, target),
                _ => link,
            };
            rows.push(NewRow { words, link });
        }
    }
    let more = total - rows.len();
    (rows, more)
}

/// The page an entry is read on.
fn link_of(r: &Record, id: &roundtable_core::EntryId) -> String {
    match r.entry(id).map(|(_, m)| &m.body) {
        Some(Body::Proposal { .. }) => format!("/proposals/{id}"),
        Some(Body::Thread { .. } | Body::SealedThread { .. }) => format!("/threads/{id}"),
        Some(Body::Message { thread, .. } | Body::Action { thread, .. }) => {
            format!("/threads/{thread}")
        }
        Some(Body::Understand { target, .. }) => link_of(r, target),
        _ => "/".into(),
    }
}

/// Shared when every entry of this device was written before the last exchange with another device
/// of the group (both times are this device's own clock).
fn status(home: &Home, st: &AppState, r: &Record) -> Result<Status, Problem> {
    let me = super::my_id(st)?;
    let devices = r.sync_devices();
    let names = names(r);
    let last = home
        .peers()?
        .into_iter()
        .filter(|(d, _)| *d != me && devices.contains(d))
        .max_by_key(|(_, t)| *t);
    let mine = r
        .summary()
        .into_iter()
        .find(|(d, _, _)| *d == me)
        .and_then(|(_, _, tip)| r.entry(&tip).map(|(_, m)| m.time_ms));
    let shared = match (last, mine) {
        (Some((_, t)), Some(m)) => m <= t,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let since = last
        .map(|(d, t)| {
            format!(
                "Last shared with {}'s device {}.",
                name_of(&names, &d),
                when(t)
            )
        })
        .unwrap_or_else(|| "It has not been shared with another device yet.".into());
    Ok(if shared {
        Status {
            picture: "shared",
            words: "Shared with the group",
            detail: format!("Everything you wrote is saved on this device and was shared. {since}"),
        }
    } else if st.inner.syncing {
        Status {
            picture: "saved",
            words: "Saved on this device",
            detail: format!("It will be shared when another member's device connects. {since}"),
        }
    } else {
        Status {
            picture: "not-shared",
            words: "Not shared yet – no connection",
            detail: format!(
                "What you wrote is saved on this device. It is shared when you sync with another member. {since}"
            ),
        }
    })
}

pub(crate) async fn home(State(state): State<AppState>) -> PageResult {
    // A device set up but in no group yet (a join that did not reach the other device): its
    // Groups page offers to start one or join one.
    if with_home(&state, |home, _| Ok(home.groups()?.is_empty())).await? {
        return Ok(Redirect::to("/groups").into_response());
    }
    let p = with_group(&state, |home, st, g| {
        let r = &g.record;
        let now = marks(r);
        let seen = baseline(home, st, &g.id(), &now)?;
        let (new, more) = new_rows(r, &seen, &super::my_id(st)?);
        Ok(HomePage {
            nav: Nav::Home,
            group: group_name(r),
            me: name_of(&names(r), &super::my_id(st)?),
            status: status(home, st, r)?,
            new,
            more,
            threads: thread_rows(r),
            several_groups: home.groups()?.len() > 1,
            csrf: st.csrf_token().to_string(),
            to_answer: to_answer(r, &super::my_id(st)?),
        })
    })
    .await?;
    page(p)
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// "I have seen these": what is in the record now stops being new.
pub(crate) async fn mark_seen(
    State(state): State<AppState>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    with_group(&state, |home, st, g| {
        let now = marks(&g.record);
        home.set_setting(&seen_key(&g.id()), &encode_marks(&now))?;
        if let Ok(mut s) = st.inner.seen.lock() {
            s.insert(g.id(), now);
        }
        Ok(())
    })
    .await?;
    Ok(back_to("/"))
}

pub(crate) async fn groups(State(state): State<AppState>) -> PageResult {
    let p = with_home(&state, |home, st| {
        let current = the_group(home, st).ok().map(|g| g.id());
        let groups = home
            .groups()?
            .into_iter()
            .map(|(id, name)| GroupRow {
                current: Some(id) == current,
                id: id.to_string(),
                name,
            })
            .collect();
        Ok(GroupsPage {
            nav: Nav::Home,
            groups,
            csrf: st.csrf_token().to_string(),
            waiting: roundtable_app::waiting_recovery(home)?.is_some(),
        })
    })
    .await?;
    page(p)
}

#[derive(Deserialize)]
pub(crate) struct GroupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    group: String,
    /// "yes" on the confirmation step of removing a group.
    #[serde(default)]
    confirm: String,
}

/// Removing a group from this device: first a page that says what will go, then, confirmed, the
/// removal. Other devices keep the group; nothing is written to it.
pub(crate) async fn forget_group(
    State(state): State<AppState>,
    Form(form): Form<GroupForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let id: GroupId = form
        .group
        .parse()
        .map_err(|_| Problem::not_found("such group"))?;
    let confirmed = form.confirm == "yes";
    let confirm_page = with_home(&state, move |home, st| {
        let Some((_, name)) = home.groups()?.into_iter().find(|(g, _)| *g == id) else {
            return Err(Problem::not_found("such group"));
        };
        if !confirmed {
            return Ok(Some(ForgetPage {
                nav: Nav::Home,
                id: id.to_string(),
                name: if name.is_empty() {
                    "(a group with no name)".into()
                } else {
                    name
                },
                entries: home.entries(&id)?.len(),
                csrf: st.csrf_token().to_string(),
            }));
        }
        roundtable_app::forget_group(home, &id)?;
        if let Ok(mut g) = st.inner.group.lock()
            && *g == Some(id)
        {
            *g = None;
        }
        Ok(None)
    })
    .await?;
    match confirm_page {
        Some(p) => page(p),
        None => Ok(back_to("/")),
    }
}

pub(crate) async fn choose_group(
    State(state): State<AppState>,
    Form(form): Form<GroupForm>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let id: GroupId = form
        .group
        .parse()
        .map_err(|_| Problem::not_found("such group"))?;
    with_home(&state, move |home, st| {
        if !home.groups()?.iter().any(|(g, _)| *g == id) {
            return Err(Problem::not_found("such group"));
        }
        if let Ok(mut g) = st.inner.group.lock() {
            *g = Some(id);
        }
        Ok(())
    })
    .await?;
    Ok(back_to("/"))
}

pub(crate) async fn new_group(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    super::csrf_ok(&state, &field("csrf"))?;
    let name = field("name").trim().to_string();
    if name.is_empty() {
        return Err(Problem::refused(
            "Please write what the group is called. Nothing was made.",
        ));
    }
    let id = with_home(&state, move |home, st| {
        Ok(super::seat(home, st)?
            .create_group(&name, roundtable_core::Rule::Consent, 1)?
            .id())
    })
    .await?;
    if let Ok(mut g) = state.inner.group.lock() {
        *g = Some(id);
    }
    let _ = state.start_serving().await;
    Ok(Redirect::to("/").into_response())
}
