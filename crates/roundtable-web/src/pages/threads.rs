//! Threads: the list, a new thread, one thread (open or sealed), and writing a message with the
//! "Check before you share" step.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use roundtable_app::AppError;
use roundtable_core::{Body, DeviceId, EntryId, MemberId, Record, Status};
use roundtable_seal::thread as sealed;
use serde::Deserialize;

use super::actions::{ActionRow, action_rows};
use super::proposals::{UnderstandingRow, understandings};
use super::{
    Nav, PageResult, Problem, audience, back_to, csrf_ok, group_name, keyring, name_of, names,
    page, parse_id, plain, seat, when, with_group,
};
use crate::AppState;
use crate::jargon::{self, Advice};

#[derive(Template)]
#[template(path = "threads.html")]
struct ThreadsPage {
    nav: Nav,
    group: String,
    threads: Vec<ThreadRow>,
}

#[derive(Template)]
#[template(path = "new_thread.html")]
struct NewThreadPage {
    nav: Nav,
    title: String,
    sealed: bool,
    reason: String,
    /// The other active members: (id, name, chosen as a reader).
    members: Vec<(String, String, bool)>,
    problem: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "thread.html")]
struct ThreadPage {
    nav: Nav,
    t: ThreadView,
    csrf: String,
}

#[derive(Template)]
#[template(path = "write.html")]
struct WritePage {
    nav: Nav,
    id: String,
    title: String,
    text: String,
    problem: &'static str,
    sealed: bool,
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
    sealed: bool,
    advice: Advice,
    /// In an open thread, a word that suggests the message is private ("doctor", "debt").
    private: String,
    csrf: String,
}

pub(crate) struct ThreadRow {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) sealed: bool,
    pub(crate) count: usize,
    pub(crate) last: String,
}

pub(crate) struct MessageRow {
    id: String,
    author: String,
    time: String,
    text: String,
    corrected: bool,
    understandings: Vec<UnderstandingRow>,
    /// Understanding checks are for open entries only (a sealed message's words stay sealed).
    can_understand: bool,
    /// Written by this member: others say what they understood, not the author.
    own: bool,
    /// What helps the author take part, in their words, shown beside their name.
    needs: String,
    /// Earlier words of a corrected message, oldest first (the original, then older corrections).
    history: Vec<String>,
}

/// The words an open entry showed before its latest correction: the original, then every
/// correction but the last.
fn history(r: &Record, id: &EntryId, original: &str) -> Vec<String> {
    let mut v = vec![original.to_string()];
    for c in r.corrections(id) {
        if let Some((_, cm)) = r.entry(&c)
            && let Body::Correct { text, .. } = &cm.body
        {
            v.push(text.clone());
        }
    }
    v.pop();
    v
}

pub(crate) struct ProposalLink {
    id: String,
    title: String,
    state: String,
}

pub(crate) struct ThreadView {
    id: String,
    title: String,
    started_by: String,
    started: String,
    messages: Vec<MessageRow>,
    proposals: Vec<ProposalLink>,
    actions: Vec<ActionRow>,
    members: Vec<(String, String)>,
    sealed: Option<SealedView>,
    back: String,
    show_messages: bool,
    can_write: bool,
}

pub(crate) struct SealedView {
    reason: String,
    readers: String,
    is_reader: bool,
    /// This device holds its encryption secret (unlocked with the passphrase at start).
    unlocked: bool,
    /// Messages were opened (a reader, or a former reader who keeps what they were given).
    readable: bool,
    count: usize,
    /// Requests to read, and what was answered, in words.
    asks: Vec<String>,
    /// Whether this member may ask (not a reader, not asked yet).
    can_ask: bool,
    /// Members a reader is asked about: they asked, or another reader agreed to let them in.
    pending: Vec<Candidate>,
    /// For a reader: the members who could be let in (id, name).
    others: Vec<(String, String)>,
    /// For a reader: the other readers, who could be taken out (id, name).
    fellow: Vec<(String, String)>,
    /// Who let whom in, and who took whom out, in words, in order (everyone sees this).
    changes: Vec<String>,
}

/// A member someone would let read the thread, as a reader sees it: every reader must agree.
pub(crate) struct Candidate {
    id: String,
    name: String,
    /// Why they asked, if they did.
    why: Option<String>,
    /// "Ana agreed." or "Ana and Ben agreed."; empty when no one has yet.
    agreed: String,
    /// "Still waiting for Ben and you."
    waiting: String,
    /// Readers whose latest word is no: "Ben said no: “…”".
    said_no: Vec<String>,
    /// This member agreed already.
    mine: bool,
    /// The words of the yes button, if this member has one: a reader who is the last to agree
    /// lets them in; anyone else asked who has not agreed says yes.
    yes: Option<String>,
}

/// "Ana", "Ana and Ben", "Ana, Ben and Chloe".
fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The members a reader is asked about (they asked and no one said no, or some reader agreed),
/// with who agreed and who is still to, from core's fold of the thread.
fn candidates(
    info: &roundtable_core::SealedInfo,
    names: &std::collections::BTreeMap<DeviceId, String>,
    me: &MemberId,
    active: &[DeviceId],
) -> Vec<Candidate> {
    let mut ids: Vec<MemberId> = info
        .asks
        .iter()
        .map(|(_, m, _)| *m)
        .filter(|m| !info.declines.iter().any(|(_, _, d, _)| d == m))
        .chain(info.state.agreed.keys().copied())
        .filter(|m| !info.state.readers.contains(m) && active.contains(m))
        .collect();
    ids.sort();
    ids.dedup();
    let you = |r: &MemberId| {
        if r == me {
            "you".to_string()
        } else {
            name_of(names, r)
        }
    };
    ids.into_iter()
        .map(|m| {
            let yes = info.state.agreed.get(&m).cloned().unwrap_or_default();
            let waiting = info.state.still_to_agree(&m);
            let name = name_of(names, &m);
            let last = waiting.iter().all(|r| r == me);
            let button = match (info.state.readers.contains(me) && last, yes.contains(me)) {
                (true, true) => Some(format!("Everyone agreed: let {name} read it now")),
                (true, false) => Some(format!("Yes: let {name} read it now")),
                (false, false) => Some("Yes, I agree".to_string()),
                (false, true) => None,
            };
            // "You" first: "You and Ben agreed."
            let mut agreed: Vec<String> = yes.iter().filter(|r| *r != me).map(you).collect();
            if yes.contains(me) {
                agreed.insert(0, "you".into());
            }
            let mut said_no: Vec<String> = Vec::new();
            for (_, by, d, reason) in &info.declines {
                if *d == m && waiting.contains(by) {
                    said_no.retain(|s| !s.starts_with(&format!("{} ", you(by))));
                    said_no.push(format!("{} said no: “{reason}”", you(by)));
                }
            }
            let waiting_words = match waiting.as_slice() {
                [] => "Every reader has agreed.".to_string(),
                w => format!(
                    "Still waiting for {}.",
                    and_list(&w.iter().map(you).collect::<Vec<_>>())
                ),
            };
            Candidate {
                id: m.to_string(),
                name,
                why: info
                    .asks
                    .iter()
                    .rev()
                    .find(|(_, a, _)| *a == m)
                    .map(|(_, _, w)| w.clone()),
                agreed: match agreed.len() {
                    0 => String::new(),
                    _ => format!("{} agreed.", capitalised(&and_list(&agreed))),
                },
                waiting: waiting_words,
                said_no,
                mine: yes.contains(me),
                yes: button,
            }
        })
        .collect()
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The thread's reader changes in words: "Ana let Chloe read it, on 3 December 2026, 14:05 UTC."
fn reader_changes(
    r: &Record,
    tid: &EntryId,
    names: &std::collections::BTreeMap<DeviceId, String>,
) -> Vec<String> {
    let mut readers: std::collections::BTreeSet<MemberId> = match r.entry(tid).map(|(_, m)| &m.body)
    {
        Some(Body::SealedThread { wraps, .. }) => wraps.iter().map(|w| w.member).collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let refs: std::collections::HashSet<EntryId> = r.referrers(tid).into_iter().collect();
    for id in r.causal_order() {
        if !refs.contains(id) {
            continue;
        }
        let Some((by, m)) = r.entry(id) else { continue };
        match &m.body {
            Body::ReaderAgree { member, .. } if !readers.contains(member) => out.push(format!(
                "{} agreed that {} may read it {}.",
                name_of(names, &by),
                name_of(names, member),
                when(m.time_ms)
            )),
            // A ReaderAdd for a reader already is only keys they lacked: not a change.
            Body::ReaderAdd { member, .. } if readers.insert(*member) => out.push(format!(
                "{} let {} read it {}.",
                name_of(names, &by),
                name_of(names, member),
                when(m.time_ms)
            )),
            Body::Rekey {
                removes: Some(member),
                ..
            } if readers.remove(member) => out.push(format!(
                "{} took {} out of the readers {}.",
                name_of(names, &by),
                name_of(names, member),
                when(m.time_ms)
            )),
            _ => {}
        }
    }
    out
}

pub(crate) fn thread_rows(r: &Record) -> Vec<ThreadRow> {
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
    let tid = parse_id(id, "thread")?;
    match r.entry(&tid).map(|(_, m)| &m.body) {
        Some(Body::Thread { title }) => Ok((tid, title.clone(), false)),
        Some(Body::SealedThread { title, .. }) => Ok((tid, title.clone(), true)),
        _ => Err(Problem::not_found("such thread")),
    }
}

/// The text shown for an open entry: its author's latest correction, else the original.
pub(crate) fn shown_text(r: &Record, id: &EntryId, original: &str) -> (String, bool) {
    let latest = r.corrections(id).last().and_then(|c| match r.entry(c) {
        Some((_, cm)) => match &cm.body {
            Body::Correct { text, .. } => Some(text.clone()),
            _ => None,
        },
        None => None,
    });
    match latest {
        Some(t) => (t, true),
        None => (original.to_string(), false),
    }
}

pub(crate) fn active_members(r: &Record) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r
        .members()
        .into_iter()
        .filter(|m| m.status == Status::Active)
        .map(|m| (m.id.to_string(), m.name))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

fn thread_view(st: &AppState, r: &Record, id: &str) -> Result<ThreadView, Problem> {
    let me: DeviceId = super::my_id(st)?;
    let (tid, title, is_sealed) = parse_thread(r, id)?;
    let names = names(r);
    let needs = super::needs_of(r);
    let (author, meta) = r
        .entry(&tid)
        .ok_or_else(|| Problem::not_found("such thread"))?;
    let mut messages: Vec<MessageRow> = Vec::new();
    let mut proposals = Vec::new();
    for h in r.referrers(&tid) {
        let Some((a, m)) = r.entry(&h) else { continue };
        match &m.body {
            Body::Message { text, .. } => {
                let earlier = history(r, &h, text);
                let (text, corrected) = shown_text(r, &h, text);
                messages.push(MessageRow {
                    history: if corrected { earlier } else { Vec::new() },
                    id: h.to_string(),
                    author: name_of(&names, &a),
                    needs: needs.get(&a).cloned().unwrap_or_default(),
                    time: when(m.time_ms),
                    corrected,
                    text,
                    understandings: understandings(r, &names, &h, &me),
                    can_understand: true,
                    own: a == me,
                });
            }
            Body::Proposal { title, .. } => proposals.push(ProposalLink {
                id: h.to_string(),
                title: title.clone(),
                state: match r.outcome(&h) {
                    Some((_, roundtable_core::Decision::Passed)) => "Decided: it passed.".into(),
                    Some(_) => "Decided: it did not pass.".into(),
                    None => "Open: members can give their answer.".into(),
                },
            }),
            _ => {}
        }
    }
    let sealed = if is_sealed {
        let info = r
            .sealed_thread(&tid)
            .ok_or_else(|| Problem::not_found("such thread"))?;
        let is_reader = info.state.readers.contains(&me);
        let view = keyring(st).and_then(|mut k| sealed::open(r, &mut k, &tid).ok());
        let readable = view
            .as_ref()
            .is_some_and(|v| is_reader || !v.messages.is_empty());
        for m in view.iter().flat_map(|v| v.messages.iter()) {
            messages.push(MessageRow {
                id: m.id.to_string(),
                author: name_of(&names, &m.author),
                needs: needs.get(&m.author).cloned().unwrap_or_default(),
                time: when(m.time_ms),
                text: m.text.clone(),
                corrected: false,
                history: Vec::new(),
                understandings: Vec::new(),
                can_understand: false,
                own: m.author == me,
            });
        }
        let mut rs: Vec<String> = info
            .state
            .readers
            .iter()
            .map(|m| name_of(&names, m))
            .collect();
        rs.sort();
        let mut asks: Vec<String> = info
            .asks
            .iter()
            .map(|(_, m, why)| format!("{} asked to read it: “{why}”", name_of(&names, m)))
            .collect();
        asks.extend(info.declines.iter().map(|(_, by, m, reason)| {
            format!(
                "{} said no to {}: “{reason}”",
                name_of(&names, by),
                name_of(&names, m)
            )
        }));
        let asked = info.asks.iter().any(|(_, m, _)| *m == me);
        let pending = if info.state.asked.contains(&me) {
            candidates(&info, &names, &me, &r.active_members())
        } else {
            Vec::new()
        };
        let (mut others, mut fellow) = (Vec::new(), Vec::new());
        if is_reader {
            for m in r
                .members()
                .into_iter()
                .filter(|m| r.active_members().contains(&m.id))
            {
                if m.id == me {
                    continue;
                }
                let row = (m.id.to_string(), m.name.clone());
                if info.state.readers.contains(&m.id) {
                    fellow.push(row);
                } else if !pending.iter().any(|c| c.id == row.0) {
                    others.push(row);
                }
            }
        }
        Some(SealedView {
            changes: reader_changes(r, &tid, &names),
            others,
            fellow,
            reason: info.reason.clone(),
            readers: rs.join(", "),
            is_reader,
            unlocked: keyring(st).is_some(),
            readable,
            count: info.entries.len(),
            asks,
            can_ask: !is_reader && !asked && r.active_members().contains(&me),
            pending,
        })
    } else {
        None
    };
    Ok(ThreadView {
        back: format!("/threads/{tid}"),
        show_messages: sealed.as_ref().is_none_or(|s| s.readable),
        can_write: sealed.as_ref().is_none_or(|s| s.is_reader),
        id: tid.to_string(),
        title,
        started_by: name_of(&names, &author),
        started: when(meta.time_ms),
        messages,
        proposals,
        actions: action_rows(r, &me, Some(&tid), (st.inner.clock)()),
        members: active_members(r),
        sealed,
    })
}

// ---------- handlers ----------

pub(crate) async fn threads(State(state): State<AppState>) -> PageResult {
    let p = with_group(&state, |_, _, g| {
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
    let p = with_group(&state, move |_, st, g| {
        Ok(ThreadPage {
            nav: Nav::Threads,
            t: thread_view(st, &g.record, &id)?,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

fn other_members(st: &AppState, r: &Record, chosen: &[String]) -> Vec<(String, String, bool)> {
    let me = st.me().map(|m| m.member.to_string()).unwrap_or_default();
    active_members(r)
        .into_iter()
        .filter(|(id, _)| *id != me)
        .map(|(id, name)| {
            let on = chosen.contains(&id);
            (id, name, on)
        })
        .collect()
}

async fn new_thread_page(
    state: AppState,
    title: String,
    sealed: bool,
    reason: String,
    chosen: Vec<String>,
    problem: String,
) -> PageResult {
    let p = with_group(&state, move |_, st, g| {
        Ok(NewThreadPage {
            nav: Nav::Threads,
            title,
            sealed,
            reason,
            members: other_members(st, &g.record, &chosen),
            problem,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn new_thread(State(state): State<AppState>) -> PageResult {
    new_thread_page(
        state,
        String::new(),
        false,
        String::new(),
        Vec::new(),
        String::new(),
    )
    .await
}

/// The new-thread form: `title`, `who` ("everyone" or "sealed"), `reason`, and one `reader-ID`
/// checkbox per member (a map, because the form's checkboxes have one name each).
pub(crate) async fn start_thread(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let title = field("title").trim().to_string();
    let sealed = field("who") == "sealed";
    let reason = plain(field("reason")).trim().to_string();
    let chosen: Vec<String> = form
        .keys()
        .filter_map(|k| k.strip_prefix("reader-").map(str::to_string))
        .collect();
    // The title and the reason are the application layer's to check; choosing a reader is the
    // page's own question (a sealed thread for oneself alone is allowed on the command line).
    if sealed && chosen.is_empty() && !title.is_empty() && !reason.is_empty() {
        let problem = "Please choose at least one other member who can read it.";
        return new_thread_page(state, title, sealed, reason, chosen, problem.into()).await;
    }
    let (t2, r2, c2) = (title.clone(), reason.clone(), chosen.clone());
    let made = with_group(&state, move |home, st, g| {
        let mut readers: Vec<MemberId> = Vec::new();
        for id in &chosen {
            readers.push(id.parse().map_err(|_| Problem::not_found("such member"))?);
        }
        let seat = seat(home, st)?;
        let r = if sealed {
            seat.new_sealed_thread(g, &title, &reason, &readers)
        } else {
            seat.new_thread(g, &title)
        };
        match r {
            Ok(id) => Ok(Ok(id)),
            Err(AppError::Missing { what }) if what.starts_with("the thread's title") => {
                Ok(Err("Please give the thread a title.".to_string()))
            }
            Err(AppError::Missing { .. }) => Ok(Err(
                "Please say why only some members can read it. Everyone will see this reason."
                    .to_string(),
            )),
            // A chosen member's device has not published its key yet: say so, keep the form.
            Err(AppError::NoKeyYet { member, .. }) => Ok(Err(no_key_yet(
                &g.record,
                &member,
                "Ask them to open Roundtable once, or start the thread without them and add them \
                 later.",
            ))),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    match made {
        Ok(id) => Ok(Redirect::to(&format!("/threads/{id}")).into_response()),
        Err(problem) => new_thread_page(state, t2, sealed, r2, c2, problem).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub(crate) struct ReaderForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    member: String,
    /// "add" or "remove".
    #[serde(default)]
    change: String,
}

/// A reader agrees to let another member read the thread (they read once every reader agrees), or
/// takes a reader out (the thread then gets a new key before anyone writes again). The thread's
/// page shows everyone who agreed, who let whom in, and who said no.
pub(crate) async fn change_reader(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ReaderForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let back = format!("/threads/{id}");
    let m: MemberId = form
        .member
        .parse()
        .map_err(|_| Problem::refused("Please choose a member. Nothing was changed."))?;
    let remove = match form.change.as_str() {
        "add" => false,
        "remove" => true,
        _ => {
            return Err(Problem::refused(
                "Please choose what to change. Nothing was changed.",
            ));
        }
    };
    with_group(&state, move |home, st, g| {
        let (tid, _, is_sealed) = parse_thread(&g.record, &id)?;
        if !is_sealed {
            return Err(Problem::not_found("such sealed thread"));
        }
        let seat = seat(home, st)?;
        if remove {
            seat.remove_reader(g, tid, m)?;
            return Ok(());
        }
        match seat.add_reader(g, tid, m) {
            Err(AppError::NoKeyYet { .. }) => Err(Problem::refused(no_key_yet(
                &g.record,
                &m,
                "Ask them to open Roundtable once, then try again.",
            ))),
            other => other.map(|_| ()).map_err(Problem::from),
        }
    })
    .await?;
    Ok(back_to(&back))
}

/// A reader answers about a member: agrees to let them read (the last reader to agree lets them
/// in), or says no with a reason everyone sees.
pub(crate) async fn answer(
    State(state): State<AppState>,
    Path((id, member)): Path<(String, String)>,
    Form(form): Form<AnswerForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let reason = plain(form.reason).trim().to_string();
    let back = format!("/threads/{id}");
    with_group(&state, move |home, st, g| {
        let (tid, _, is_sealed) = parse_thread(&g.record, &id)?;
        let m: MemberId = member
            .parse()
            .map_err(|_| Problem::not_found("such member"))?;
        if !is_sealed {
            return Err(Problem::not_found("such sealed thread"));
        }
        let seat = seat(home, st)?;
        if form.answer != "add" {
            seat.decline(g, tid, m, &reason)?;
            return Ok(());
        }
        match seat.add_reader(g, tid, m) {
            Err(AppError::NoKeyYet { .. }) => Err(Problem::refused(no_key_yet(
                &g.record,
                &m,
                "Ask them to open Roundtable once, then try again.",
            ))),
            other => other.map(|_| ()).map_err(Problem::from),
        }
    })
    .await?;
    Ok(back_to(&back))
}

/// Why `m` cannot be made a reader yet, and what to do (`then`).
fn no_key_yet(r: &Record, m: &MemberId, then: &str) -> String {
    format!(
        "{} cannot be made a reader yet: their device has not opened the group since they joined. \
         {then}",
        name_of(&names(r), m)
    )
}

/// A thread this member may write in: (id, title, sealed). Sealed threads only for their readers.
fn writable(st: &AppState, r: &Record, id: &str) -> Result<(EntryId, String, bool), Problem> {
    let (tid, title, sealed) = parse_thread(r, id)?;
    if sealed
        && !r
            .sealed_state(&tid)
            .is_some_and(|s| st.me().is_some_and(|me| s.readers.contains(&me.member)))
    {
        return Err(Problem {
            status: StatusCode::FORBIDDEN,
            title: "Only its readers can write here",
            text: "This thread is sealed, and you are not one of its readers. You can ask to read \
                   it on the thread's page."
                .into(),
        });
    }
    Ok((tid, title, sealed))
}

async fn write_page(
    state: AppState,
    id: String,
    text: String,
    problem: &'static str,
) -> PageResult {
    let p = with_group(&state, move |_, st, g| {
        let (tid, title, sealed) = writable(st, &g.record, &id)?;
        Ok(WritePage {
            nav: Nav::Threads,
            id: tid.to_string(),
            title,
            text,
            problem,
            sealed,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn write(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    write_page(state, id, String::new(), "").await
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

/// "Change it" from the check page: the form again, with the words kept.
pub(crate) async fn rewrite(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    write_page(state, id, plain(form.text), "").await
}

/// Reads the members' glossary (`glossary.txt` in the home), else the shipped one.
pub(crate) fn glossary(st: &AppState) -> Vec<jargon::Term> {
    let text = std::fs::read_to_string(st.inner.home_dir.join(super::words::GLOSSARY_FILE))
        .unwrap_or_else(|_| jargon::DEFAULT_GLOSSARY.to_string());
    jargon::parse(&text)
}

pub(crate) async fn check(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let text = plain(form.text);
    if text.trim().is_empty() {
        return write_page(state, id, text, "Please write your message first.").await;
    }
    let p = with_group(&state, move |_, st, g| {
        let r = &g.record;
        let (tid, title, sealed) = writable(st, r, &id)?;
        let audience = if sealed {
            let names = names(r);
            let mut rs: Vec<String> = r
                .sealed_state(&tid)
                .map(|s| s.readers.iter().map(|m| name_of(&names, m)).collect())
                .unwrap_or_default();
            rs.sort();
            format!(
                "Only the thread's readers: {}. Everyone in the group can see that you wrote a \
                 message, and when, but not what it says.",
                rs.join(", ")
            )
        } else {
            audience(r)
        };
        Ok(CheckPage {
            nav: Nav::Threads,
            id: tid.to_string(),
            title,
            advice: jargon::check(&text, &glossary(st)),
            private: if sealed {
                String::new()
            } else {
                jargon::private_word(&text).unwrap_or_default().to_string()
            },
            text,
            audience,
            sealed,
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
    csrf_ok(&state, &form.csrf)?;
    let text = plain(form.text);
    if form.action == "change" {
        return write_page(state, id, text, "").await;
    }
    let (id2, t2) = (id.clone(), text.clone());
    let r = with_group(&state, move |home, st, g| {
        let (tid, _, _) = writable(st, &g.record, &id2)?;
        Ok(seat(home, st)?.post(g, tid, &t2).map(|_| tid))
    })
    .await?;
    match r {
        Ok(tid) => Ok(Redirect::to(&format!("/threads/{tid}")).into_response()),
        Err(AppError::Missing { .. }) => {
            write_page(state, id, text, "Please write your message first.").await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct AskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    why: String,
}

/// Asking to read a sealed thread; its readers see the request and answer it.
pub(crate) async fn ask(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<AskForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let why = plain(form.why).trim().to_string();
    let back = format!("/threads/{id}");
    with_group(&state, move |home, st, g| {
        let (tid, _, sealed) = parse_thread(&g.record, &id)?;
        if !sealed {
            return Err(Problem::not_found("such sealed thread"));
        }
        Ok(seat(home, st)?.ask_to_read(g, tid, &why)?)
    })
    .await?;
    Ok(back_to(&back))
}
