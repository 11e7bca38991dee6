//! Proposals (easy read first, stances with pictures, reasons, the outcome) and understanding
//! checks ("I understood this as …", then the author's "Yes, that's right" or correction).

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use roundtable_app::AppError;
use roundtable_core::{
    Body, Decision, DeviceId, Effect, EntryId, MemberId, Record, Rule, StanceKind,
};
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
    /// The closing choice to show as chosen: "3", "7", "14" or "none".
    closes: String,
}

/// The choices for when the group should decide: (value, words).
pub(crate) const CLOSES: [(&str, &str); 4] = [
    ("3", "In 3 days"),
    ("7", "In a week"),
    ("14", "In two weeks"),
    (
        "none",
        "No date: someone closes it when everyone has answered",
    ),
];

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

/// The four answers with hints that say what each does under `rule`.
fn choices(rule: Rule) -> Vec<Choice> {
    CHOICES
        .iter()
        .map(|c| Choice {
            hint: match (c.value, rule) {
                ("disagree", Rule::Consent) => {
                    "I do not like this. Please say why. It does not stop the proposal: only Block does."
                }
                ("block", Rule::Consent) => {
                    "This must not happen. Please say why. One Block stops the proposal."
                }
                ("disagree", Rule::Majority) => {
                    "I do not like this. Please say why. It counts against the proposal."
                }
                ("block", Rule::Majority) => {
                    "This must not happen. Please say why. Under a majority vote it counts against, like Disagree."
                }
                ("abstain", _) => "I do not mind, or I do not know yet. It counts as a view, not for or against.",
                _ => c.hint,
            },
            ..*c
        })
        .collect()
}

/// Names joined in words: "Dan", "Dan and Eve", "Cara, Dan and Eve".
pub(crate) fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

struct StanceRow {
    name: String,
    /// Whose needs they are, in the reader's words ("you" for the reader).
    needs_of: String,
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
    choices: Vec<Choice>,
    back: String,
    /// "2 of 3 have answered; waiting for Chloe."
    answered: String,
    /// The names of those not answered yet, joined in words ("Dan and Eve"), empty when none.
    waiting: String,
    /// Views typed for someone that wait for their yes, in words.
    pending: Vec<String>,
    /// A view someone typed for this member, waiting for this member's yes.
    confirm: Option<ConfirmView>,
    /// The other active members this member could be helping (id, name).
    helping: Vec<(String, String)>,
    /// What passing it changes in the group, in words and a picture, when it changes the group.
    effect: Option<EffectView>,
    /// When it is meant to close, in words ("It closes on Friday."), while it is open.
    closes: String,
}

/// What a proposal about the group itself changes if it passes.
struct EffectView {
    picture: &'static str,
    words: String,
    /// The newcomer's own words about what helps them (only for someone joining).
    needs: String,
}

/// What passing `effect` changes, in plain words, for the proposal's page.
fn effect_view(effect: &Effect, names: &BTreeMap<MemberId, String>, members: u64) -> EffectView {
    match effect {
        Effect::Add { name, needs, .. } => EffectView {
            picture: "members",
            words: format!(
                "If the group says yes, {name} becomes a member, with an equal say like everyone else."
            ),
            needs: if needs.trim().is_empty() {
                format!("{name} has not said what helps them yet.")
            } else {
                format!("What helps {name} take part, in their own words: {needs}")
            },
        },
        Effect::Remove { member } => {
            let who = name_of(names, member);
            EffectView {
                picture: "members",
                words: format!(
                    "If the group says yes, {who} stops being a member. {who} can still read what was written before, on their own device, but cannot write or answer any more."
                ),
                needs: String::new(),
            }
        }
        Effect::Auditor { name, .. } => EffectView {
            picture: "check",
            words: format!(
                "If the group says yes, {name} may check the group's record as an auditor. {name} can see what is written in open threads and check that every entry is genuine, but cannot write, answer, or read sealed threads."
            ),
            needs: String::new(),
        },
        Effect::Keeper { name, .. } => EffectView {
            picture: "group",
            words: format!(
                "If the group says yes, {name} becomes a keeper. A keeper is an always-on computer that holds the group's record so members who are online at different times still get each other's news. It cannot write, and it cannot read sealed threads."
            ),
            needs: String::new(),
        },
        Effect::KeeperRemove { .. } => EffectView {
            picture: "group",
            words: "If the group says yes, this keeper stops: it gets nothing new from the group's devices any more.".to_string(),
            needs: String::new(),
        },
        // Minimal view until the web shows recoveries (issue 16 item 2).
        Effect::Recover { member, name, .. } => {
            let who = name_of(names, member);
            EffectView {
                picture: "members",
                words: format!(
                    "If the group says yes, {who}'s new device ({name}) takes {who}'s seat, and every device {who} had before stops."
                ),
                needs: String::new(),
            }
        }
        Effect::Policy { rule, quorum } => EffectView {
            picture: "group",
            words: format!(
                "If the group says yes, the group's rules become these. {}",
                super::policy_words(*rule, *quorum, members)
            ),
            needs: String::new(),
        },
    }
}

struct ConfirmView {
    entry: String,
    by: String,
    words: &'static str,
    reason: String,
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
        closes,
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
    let least = match needed {
        1 => "at least 1 member gives their view".to_string(),
        n => format!("at least {n} members give their view"),
    };
    let mut how = match rule {
        Rule::Consent => format!("It passes if nobody blocks it and {least}."),
        Rule::Majority => {
            format!("It passes if more members agree than disagree or block, and {least}.")
        }
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
    // Every list and count here is core's recount: the page can never disagree with the auditor.
    let reason_of = |e: &EntryId| match r.entry(e).map(|(_, m)| &m.body) {
        Some(Body::Stance { reason, .. }) => reason.clone(),
        _ => String::new(),
    };
    let stance_rows = tally
        .views
        .iter()
        .map(|(who, v)| {
            let (words, picture) = stance_words(v.stance);
            let name = if *who == me {
                "You".to_string()
            } else {
                name_of(&names, who)
            };
            let by = v.typed_by.map(|b| {
                format!(
                    " ({} wrote this for {}, and {} said yes)",
                    name_of(&names, &b),
                    name_of(&names, who),
                    name_of(&names, who)
                )
            });
            StanceRow {
                needs_of: if *who == me {
                    "you".into()
                } else {
                    name_of(&names, who)
                },
                name: format!("{name}{}", by.unwrap_or_default()),
                needs: needs.get(who).cloned().unwrap_or_default(),
                words,
                picture,
                reason: reason_of(&v.entry),
            }
        })
        .collect();
    let pending = tally
        .unconfirmed
        .iter()
        .map(|u| {
            format!(
                "{} wrote this for {}: {}. {} has not said yes yet, so it does not count.",
                name_of(&names, &u.typed_by),
                name_of(&names, &u.member),
                stance_words(u.stance).0,
                name_of(&names, &u.member)
            )
        })
        .collect();
    let confirm = tally
        .unconfirmed
        .iter()
        .find(|u| u.member == me)
        .map(|u| ConfirmView {
            entry: u.entry.to_string(),
            by: name_of(&names, &u.typed_by),
            words: stance_words(u.stance).0,
            reason: reason_of(&u.entry),
        });
    let mut waiting_names: Vec<String> = tally
        .waiting
        .iter()
        .filter(|w| **w != me)
        .map(|w| name_of(&names, w))
        .collect();
    waiting_names.sort();
    if tally.waiting.contains(&me) {
        waiting_names.push("you".into());
    }
    let active = tally.views.len() + tally.waiting.len();
    let answered = match (tally.views.len(), waiting_names.is_empty()) {
        (_, true) => "Everyone has answered.".to_string(),
        (0, false) => format!(
            "Nobody has answered yet; waiting for {}.",
            and_list(&waiting_names)
        ),
        (n, false) => format!(
            "{n} of {active} {} answered; waiting for {}.",
            if n == 1 { "has" } else { "have" },
            and_list(&waiting_names)
        ),
    };
    let helping = r
        .members()
        .into_iter()
        .filter(|m| m.id != me && r.active_members().contains(&m.id))
        .map(|m| (m.id.to_string(), m.name))
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
    let tally_views = (tally.given, tally.needed, tally.members, tally.quorate());
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
        mine: tally.views.get(&me).map(|v| stance_words(v.stance).0),
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
        choices: choices(*rule),
        back: format!("/proposals/{pid}"),
        answered,
        waiting: and_list(&waiting_names),
        pending,
        confirm,
        helping,
        views: super::views_words(tally_views.0, tally_views.1, tally_views.2),
        quorate: tally_views.3,
        conflict,
        about_group: Some(*thread) == r.genesis(),
        effect: effect
            .as_ref()
            .map(|e| effect_view(e, &names, tally_views.2)),
        closes: match (closes, r.outcome(&pid)) {
            (Some(d), None) => super::time::closes_words(d).unwrap_or_default(),
            _ => String::new(),
        },
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
            let Body::Proposal { title, closes, .. } = &m.body else {
                continue;
            };
            let row = |words| ProposalRow {
                id: id.to_string(),
                title: title.clone(),
                words,
            };
            match r.outcome(id) {
                None => open.push(row(format!(
                    "Proposed by {} {}. {} so far.{}",
                    name_of(&names, &a),
                    when(m.time_ms),
                    // Core's recount: a view typed for someone counts once they say yes.
                    match r.tally_now(id).map_or(0, |t| t.views.len()) {
                        0 => "Nobody has answered".to_string(),
                        1 => "1 member has answered".to_string(),
                        n => format!("{n} members have answered"),
                    },
                    closes
                        .as_deref()
                        .and_then(super::time::closes_words)
                        .map(|w| format!(" {w}"))
                        .unwrap_or_default()
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
    /// The member this answer is typed for, when a supporter helps them.
    #[serde(default, rename = "for")]
    on_behalf: String,
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
    let back = format!("/proposals/{id}");
    // "I am helping Ben": the view is typed for Ben and counts once Ben says yes.
    let on_behalf: Option<MemberId> = match form.on_behalf.trim() {
        "" => None,
        m => Some(m.parse().map_err(|_| Problem::not_found("such member"))?),
    };
    let (id2, r2) = (id.clone(), reason.clone());
    let r = with_group(&state, move |home, st, g| {
        let proposal = parse_id(&id2, "proposal")?;
        Ok(seat(home, st)?
            .stance(g, proposal, kind, &r2, on_behalf)
            .map(|_| ()))
    })
    .await?;
    match r {
        Ok(()) => Ok(back_to(&back)),
        // The application layer asks for the reason; the page keeps the answer chosen.
        Err(AppError::ReasonNeeded { .. }) => {
            let words = "Please say why. A reason is needed when you disagree or block.";
            proposal_page(state, id, form.stance, reason, words).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct OutcomeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    outcome: String,
}

/// Closes a proposal: the stances are recounted here and the outcome recorded with them.
#[derive(Template)]
#[template(path = "close_form.html")]
struct ClosePage {
    nav: Nav,
    p: ProposalView,
    outcome: String,
    problem: String,
    csrf: String,
}

async fn close_page(state: AppState, id: String, outcome: String, problem: String) -> PageResult {
    let failed = !problem.is_empty();
    let p = with_group(&state, move |_, st, g| {
        Ok(ClosePage {
            nav: Nav::Proposals,
            p: proposal_view(st, &g.record, &id)?,
            outcome,
            problem,
            csrf: st.csrf_token().to_string(),
        })
    })
    .await?;
    let r = page(p)?;
    Ok(if failed {
        (axum::http::StatusCode::UNPROCESSABLE_ENTITY, r).into_response()
    } else {
        r
    })
}

/// The "Are you sure?" step before closing: who has not answered, and what closing would record.
pub(crate) async fn close_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> PageResult {
    close_page(state, id, String::new(), String::new()).await
}

/// Closes a proposal. A refusal keeps the page and the typed words.
pub(crate) async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<OutcomeForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let outcome = plain(form.outcome).trim().to_string();
    let back = format!("/proposals/{id}");
    let (id2, o2) = (id.clone(), outcome.clone());
    let r = with_group(&state, move |home, st, g| {
        let proposal = parse_id(&id2, "proposal")?;
        Ok(seat(home, st)?.close(g, proposal, &o2).map(|_| ()))
    })
    .await?;
    match r {
        Ok(()) => Ok(back_to(&back)),
        Err(AppError::Missing { .. }) => {
            let words = "Please write what was decided, in plain words, then close the proposal.";
            close_page(state, id, outcome, words.into()).await
        }
        Err(e @ AppError::Refused(_)) => {
            let words = Problem::from(e).text;
            close_page(state, id, outcome, words).await
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn new_proposal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> PageResult {
    new_proposal_page(
        state,
        id,
        [String::new(), String::new(), String::new(), "7".into()],
        "",
    )
    .await
}

/// The form, with what was typed (title, easy read, text, closing choice) kept.
async fn new_proposal_page(
    state: AppState,
    id: String,
    [title, easy_read, text, closes]: [String; 4],
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
            closes,
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
    /// In how many days the group means to decide: "3", "7", "14", or "none".
    #[serde(default)]
    closes: String,
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
    // The closing day is the page's own question; the text fields are the application layer's.
    let closes = match form.closes.as_str() {
        "none" => None,
        "3" | "7" | "14" | "" => Some(super::time::date_in_days(form.closes.parse().unwrap_or(7))),
        _ => {
            let words = "Please choose when the group should decide.";
            let typed = [title, easy_read, text, form.closes];
            return new_proposal_page(state, id, typed, words).await;
        }
    };
    let typed = [title, easy_read, text, form.closes];
    let (id2, [t2, e2, x2, _]) = (id.clone(), typed.clone());
    let r = with_group(&state, move |home, st, g| {
        let draft = roundtable_app::Draft {
            thread: parse_id(&id2, "thread")?,
            title: t2,
            easy_read: e2,
            text: x2,
            rule: None,
            quorum: None,
            effect: None,
            closes,
        };
        Ok(seat(home, st)?.propose(g, draft))
    })
    .await?;
    match r {
        Ok(pid) => Ok(Redirect::to(&format!("/proposals/{pid}")).into_response()),
        Err(AppError::Missing { what }) => {
            let words = if what.contains("title") {
                "Please give the proposal a title."
            } else {
                "Please write the easy read version: short sentences, everyday words."
            };
            new_proposal_page(state, id, typed, words).await
        }
        Err(e) => Err(e.into()),
    }
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
/// `needs` is the words shown when the application layer finds the form's text missing.
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
    let r = with_group(&state, move |home, st, g| {
        let target = parse_id(&id, "entry")?;
        Ok(act(&seat(home, st)?, g, target, &text))
    })
    .await?;
    match (r, needs) {
        (Ok(_), _) => Ok(back_to(&form.back)),
        // The application layer says the text is missing; the page says it in its own words.
        (Err(AppError::Missing { .. }), Some(words)) => Err(Problem::refused(words)),
        (Err(e), _) => Err(e.into()),
    }
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
