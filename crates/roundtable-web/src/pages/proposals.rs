//! Proposals (easy read first, stances with pictures, reasons, the outcome) and understanding
//! checks ("I understood this as …", then the author's "Yes, that's right" or correction).

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use roundtable_core::{Body, Decision, DeviceId, Effect, EntryId, Record, Rule, StanceKind};
use serde::Deserialize;

use super::threads::shown_text;
use super::{
    Nav, PageResult, Problem, back_to, csrf_ok, name_of, names, page, parse_id, plain, seat, when,
    with_group,
};
use crate::AppState;

#[derive(Template)]
#[template(path = "proposals.html")]
struct ProposalsPage {
    nav: Nav,
    open: Vec<ProposalRow>,
    decided: Vec<ProposalRow>,
}

#[derive(Template)]
#[template(path = "proposal.html")]
struct ProposalPage {
    nav: Nav,
    p: ProposalView,
    /// The stance form as it was sent, when it came back with a problem.
    chosen: String,
    reason: String,
    problem: &'static str,
    csrf: String,
}

#[derive(Template)]
#[template(path = "new_proposal.html")]
struct NewProposalPage {
    nav: Nav,
    thread: String,
    thread_title: String,
    title: String,
    easy_read: String,
    text: String,
    problem: &'static str,
    csrf: String,
}

struct ProposalRow {
    id: String,
    title: String,
    words: String,
}

/// One stance button: the value sent, the picture, the words.
pub(crate) struct Choice {
    value: &'static str,
    picture: &'static str,
    words: &'static str,
    hint: &'static str,
}

const CHOICES: [Choice; 4] = [
    Choice {
        value: "agree",
        picture: "agree",
        words: "Agree",
        hint: "I am happy with this.",
    },
    Choice {
        value: "abstain",
        picture: "not-sure",
        words: "Not sure",
        hint: "I do not mind, or I do not know yet.",
    },
    Choice {
        value: "disagree",
        picture: "disagree",
        words: "Disagree",
        hint: "I do not like this. Please say why.",
    },
    Choice {
        value: "block",
        picture: "block",
        words: "Block",
        hint: "This must not happen. Please say why.",
    },
];

struct StanceRow {
    name: String,
    /// What helps them take part, in their words.
    needs: String,
    words: &'static str,
    picture: &'static str,
    reason: String,
}

struct ProposalView {
    id: String,
    title: String,
    thread: String,
    thread_title: String,
    author: String,
    time: String,
    easy_read: String,
    text: String,
    how: String,
    stances: Vec<StanceRow>,
    mine: Option<&'static str>,
    understandings: Vec<UnderstandingRow>,
    is_author: bool,
    outcome: Option<OutcomeView>,
    /// What closing now would record, in words.
    recount: String,
    /// How many have given a view and how many are needed, in words.
    views: String,
    /// Enough views to close it.
    quorate: bool,
    /// Closes made apart disagree: which one stands, in words.
    conflict: String,
    /// The proposal is about the group itself (it sits in the group, not a thread).
    about_group: bool,
    choices: &'static [Choice],
    back: String,
}

struct OutcomeView {
    passed: bool,
    words: String,
    counts: String,
    by: String,
    time: String,
}

pub(crate) struct UnderstandingRow {
    pub(crate) id: String,
    pub(crate) by: String,
    pub(crate) text: String,
    /// "confirmed", "corrected" or "waiting".
    pub(crate) state: &'static str,
    pub(crate) answer: String,
    /// This member wrote the understood entry and has not answered yet.
    pub(crate) can_answer: bool,
}

fn stance_words(s: StanceKind) -> (&'static str, &'static str) {
    match s {
        StanceKind::Agree => ("Agree", "agree"),
        StanceKind::Abstain => ("Not sure", "not-sure"),
        StanceKind::Disagree => ("Disagree", "disagree"),
        StanceKind::Block => ("Block", "block"),
    }
}

fn counts_words(c: &roundtable_core::Counts) -> String {
    format!(
        "{} agree, {} not sure, {} disagree, {} block.",
        c.agree, c.abstain, c.disagree, c.block
    )
}

/// The understanding checks of an entry, with their answers.
pub(crate) fn understandings(
    r: &Record,
    names: &BTreeMap<DeviceId, String>,
    target: &EntryId,
    me: &DeviceId,
) -> Vec<UnderstandingRow> {
    let Some((target_author, _)) = r.entry(target) else {
        return Vec::new();
    };
    r.referrers(target)
        .into_iter()
        .filter_map(|u| {
            let (by, m) = r.entry(&u)?;
            let Body::Understand { text, .. } = &m.body else {
                return None;
            };
            let answers = r.referrers(&u);
            let confirmed = answers.iter().any(|a| {
                r.entry(a).is_some_and(|(who, am)| {
                    who == target_author && matches!(am.body, Body::Confirm { .. })
                })
            });
            let correction = answers.iter().rev().find_map(|a| match r.entry(a) {
                Some((who, am)) if who == target_author && who != by => match &am.body {
                    Body::Correct { text, .. } => Some(text.clone()),
                    _ => None,
                },
                _ => None,
            });
            // The understanding's own author may correct their words.
            let own = answers.iter().rev().find_map(|a| match r.entry(a) {
                Some((who, am)) if who == by => match &am.body {
                    Body::Correct { text, .. } => Some(text.clone()),
                    _ => None,
                },
                _ => None,
            });
            let author_name = name_of(names, &target_author);
            let (state, answer) = match (confirmed, correction) {
                (true, _) => (
                    "confirmed",
                    format!("{author_name} said: Yes, that's right."),
                ),
                (false, Some(c)) => (
                    "corrected",
                    format!("{author_name} said what they meant: {c}"),
                ),
                (false, None) => ("waiting", format!("Waiting for {author_name} to answer.")),
            };
            Some(UnderstandingRow {
                id: u.to_string(),
                by: name_of(names, &by),
                text: own.unwrap_or_else(|| text.clone()),
                state,
                answer,
                can_answer: state == "waiting" && target_author == *me && by != *me,
            })
        })
        .collect()
}

/// Each member's latest stance on a proposal, with its reason (a later stance replaces an earlier one).
fn latest_stances(r: &Record, proposal: &EntryId) -> BTreeMap<DeviceId, (StanceKind, String)> {
    let mut latest = BTreeMap::new();
    for h in r.referrers(proposal) {
        let Some((a, m)) = r.entry(&h) else { continue };
        if let Body::Stance {
            stance,
            reason,
            on_behalf,
            ..
        } = &m.body
        {
            latest.insert(on_behalf.unwrap_or(a), (*stance, reason.clone()));
        }
    }
    latest
}

fn proposal_view(st: &AppState, r: &Record, id: &str) -> Result<ProposalView, Problem> {
    let pid = parse_id(id, "proposal")?;
    let me = super::my_id(st)?;
    let (author, meta) = r
        .entry(&pid)
        .ok_or_else(|| Problem::not_found("such proposal"))?;
    let Body::Proposal {
        thread,
        title,
        text,
        easy_read,
        rule,
        effect,
        ..
    } = &meta.body
    else {
        return Err(Problem::not_found("such proposal"));
    };
    let names = names(r);
    let needs = super::needs_of(r);
    let (text, _) = shown_text(r, &pid, text);
    let thread_title = match r.entry(thread).map(|(_, m)| &m.body) {
        Some(Body::Thread { title }) => title.clone(),
        _ => "its thread".into(),
    };
    let tally = r
        .tally_now(&pid)
        .ok_or_else(|| Problem::not_found("such proposal"))?;
    let needed = tally.needed;
    let mut how = match rule {
        Rule::Consent => {
            format!("It passes if nobody blocks it and at least {needed} members give their view.")
        }
        Rule::Majority => format!(
            "It passes if more members agree than disagree or block, and at least {needed} members give their view."
        ),
    };
    if let Some(Effect::Remove { member }) = effect {
        let who = name_of(&names, member);
        how.push_str(&format!(
            " To stop someone being a member, two in three of the other members must agree, and only {who} may block it."
        ));
    }
    let conflict = match r.standing(&pid) {
        Some(s) if s.conflict() => format!(
            "{} members closed this at the same time, without seeing each other's close, and they do not agree. The close that counted more views stands; on a tie, \"it did not pass\" stands. Any member can close it again to settle it.",
            s.frontier.len()
        ),
        _ => String::new(),
    };
    let latest = latest_stances(r, &pid);
    let stance_rows = latest
        .iter()
        .map(|(who, (s, reason))| {
            let (words, picture) = stance_words(*s);
            StanceRow {
                name: name_of(&names, who),
                needs: needs.get(who).cloned().unwrap_or_default(),
                words,
                picture,
                reason: reason.clone(),
            }
        })
        .collect();
    let outcome = r.outcome(&pid).and_then(|(oid, d)| {
        let (by, om) = r.entry(&oid)?;
        let Body::Outcome {
            outcome, counts, ..
        } = &om.body
        else {
            return None;
        };
        Some(OutcomeView {
            passed: d == Decision::Passed,
            words: outcome.clone(),
            counts: counts_words(counts),
            by: name_of(&names, &by),
            time: when(om.time_ms),
        })
    });
    let (counts, decision) = (tally.counts, tally.decision);
    Ok(ProposalView {
        id: pid.to_string(),
        title: title.clone(),
        thread: thread.to_string(),
        thread_title,
        author: name_of(&names, &author),
        time: when(meta.time_ms),
        easy_read: easy_read.clone(),
        text,
        how,
        stances: stance_rows,
        mine: latest.get(&me).map(|(s, _)| stance_words(*s).0),
        understandings: understandings(r, &names, &pid, &me),
        is_author: author == me,
        outcome,
        recount: format!(
            "If it is closed now: it {}. {}",
            if decision == Decision::Passed {
                "passes"
            } else {
                "does not pass"
            },
            counts_words(&counts)
        ),
        choices: &CHOICES,
        back: format!("/proposals/{pid}"),
        views: super::views_words(tally.given, tally.needed, tally.members),
        quorate: tally.quorate(),
        conflict,
        about_group: Some(*thread) == r.genesis(),
    })
}

// ---------- handlers ----------

pub(crate) async fn proposals(State(state): State<AppState>) -> PageResult {
    let p = with_group(&state, |_, _, g| {
        let r = &g.record;
        let names = names(r);
        let (mut open, mut decided) = (Vec::new(), Vec::new());
        for id in r.causal_order().iter().rev() {
            let Some((a, m)) = r.entry(id) else { continue };
            let Body::Proposal { title, .. } = &m.body else {
                continue;
            };
            let row = |words| ProposalRow {
                id: id.to_string(),
                title: title.clone(),
                words,
            };
            match r.outcome(id) {
                None => open.push(row(format!(
                    "Proposed by {} on {}. {} stance(s) so far.",
                    name_of(&names, &a),
                    when(m.time_ms),
                    latest_stances(r, id).len()
                ))),
                Some((_, d)) => decided.push(row(if d == Decision::Passed {
                    "It passed.".to_string()
                } else {
                    "It did not pass.".to_string()
                })),
            }
        }
        Ok(ProposalsPage {
            nav: Nav::Proposals,
            open,
            decided,
        })
    })
    .await?;
    page(p)
}

async fn proposal_page(
    state: AppState,
    id: String,
    chosen: String,
    reason: String,
    problem: &'static str,
) -> PageResult {
    let p = with_group(&state, move |_, st, g| {
        Ok(ProposalPage {
            nav: Nav::Proposals,
            p: proposal_view(st, &g.record, &id)?,
            chosen,
            reason,
            problem,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

pub(crate) async fn proposal(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    proposal_page(state, id, String::new(), String::new(), "").await
}

#[derive(Deserialize)]
pub(crate) struct StanceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    stance: String,
    #[serde(default)]
    reason: String,
}

pub(crate) async fn stance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<StanceForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let reason = plain(form.reason).trim().to_string();
    let Some(kind) = StanceKind::parse(&form.stance) else {
        return proposal_page(
            state,
            id,
            String::new(),
            reason,
            "Please choose one of the four answers.",
        )
        .await;
    };
    if kind.needs_reason() && reason.is_empty() {
        return proposal_page(
            state,
            id,
            form.stance,
            reason,
            "Please say why. A reason is needed when you disagree or block.",
        )
        .await;
    }
    let back = format!("/proposals/{id}");
    with_group(&state, move |home, st, g| {
        let proposal = parse_id(&id, "proposal")?;
        Ok(seat(home, st)?.stance(g, proposal, kind, &reason, None)?)
    })
    .await?;
    Ok(back_to(&back))
}

#[derive(Deserialize)]
pub(crate) struct OutcomeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    outcome: String,
}

/// Closes a proposal: the stances are recounted here and the outcome recorded with them.
pub(crate) async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<OutcomeForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let outcome = plain(form.outcome).trim().to_string();
    if outcome.is_empty() {
        return Err(Problem::refused(
            "Please write what was decided, in plain words, then close the proposal.",
        ));
    }
    let back = format!("/proposals/{id}");
    with_group(&state, move |home, st, g| {
        let proposal = parse_id(&id, "proposal")?;
        Ok(seat(home, st)?.close(g, proposal, &outcome).map(|_| ())?)
    })
    .await?;
    Ok(back_to(&back))
}

pub(crate) async fn new_proposal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> PageResult {
    new_proposal_page(state, id, String::new(), String::new(), String::new(), "").await
}

async fn new_proposal_page(
    state: AppState,
    id: String,
    title: String,
    easy_read: String,
    text: String,
    problem: &'static str,
) -> PageResult {
    let p = with_group(&state, move |_, st, g| {
        let tid = parse_id(&id, "thread")?;
        let Some(Body::Thread {
            title: thread_title,
        }) = g.record.entry(&tid).map(|(_, m)| &m.body)
        else {
            return Err(Problem::not_found("such open thread"));
        };
        Ok(NewProposalPage {
            nav: Nav::Proposals,
            thread: tid.to_string(),
            thread_title: thread_title.clone(),
            title,
            easy_read,
            text,
            problem,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    page(p)
}

#[derive(Deserialize)]
pub(crate) struct ProposalForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    easy_read: String,
    #[serde(default)]
    text: String,
}

pub(crate) async fn propose(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ProposalForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let (title, easy_read, text) = (
        form.title.trim().to_string(),
        plain(form.easy_read).trim().to_string(),
        plain(form.text).trim().to_string(),
    );
    let problem = if title.is_empty() {
        "Please give the proposal a title."
    } else if easy_read.is_empty() {
        "Please write the easy read version: short sentences, everyday words."
    } else {
        ""
    };
    if !problem.is_empty() {
        return new_proposal_page(state, id, title, easy_read, text, problem).await;
    }
    let pid = with_group(&state, move |home, st, g| {
        let thread = parse_id(&id, "thread")?;
        let draft = roundtable_app::Draft {
            thread,
            title,
            text,
            easy_read,
            rule: None,
            quorum: None,
            effect: None,
        };
        Ok(seat(home, st)?.propose(g, draft)?)
    })
    .await?;
    Ok(Redirect::to(&format!("/proposals/{pid}")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct TextForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    back: String,
}

/// Writes one entry about entry `id` from a form, then goes back to the page the form was on.
/// `needs` is the words shown when the form's text is required and empty.
async fn write_about(
    state: AppState,
    id: String,
    form: TextForm,
    needs: Option<&'static str>,
    act: fn(
        &roundtable_app::Seat,
        &mut roundtable_store::Group,
        EntryId,
        &str,
    ) -> Result<EntryId, roundtable_app::AppError>,
) -> Result<Response, Problem> {
    csrf_ok(&state, &form.csrf)?;
    let text = plain(form.text).trim().to_string();
    if let Some(words) = needs
        && text.is_empty()
    {
        return Err(Problem::refused(words));
    }
    with_group(&state, move |home, st, g| {
        let target = parse_id(&id, "entry")?;
        Ok(act(&seat(home, st)?, g, target, &text)?)
    })
    .await?;
    Ok(back_to(&form.back))
}

/// "I understood this as …" on any open entry.
pub(crate) async fn understand(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, Problem> {
    let needs = "Please write what you understood, then share it.";
    write_about(state, id, form, Some(needs), |s, g, target, text| {
        s.understand(g, target, text)
    })
    .await
}

/// The author's "Yes, that's right".
pub(crate) async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, Problem> {
    write_about(state, id, form, None, |s, g, target, _| {
        s.confirm(g, target)
    })
    .await
}

/// The author's correction of an understanding: what they meant.
pub(crate) async fn correct(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, Problem> {
    let needs = "Please write what you meant, then send it.";
    write_about(state, id, form, Some(needs), |s, g, target, text| {
        s.correct(g, target, text)
    })
    .await
}
