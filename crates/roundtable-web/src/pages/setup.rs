//! Before the keys are open: the welcome page (set this device up, then start or join a group) and
//! the passphrase page. Joining a further group later uses the same join as the welcome page.
//!
//! **Invariant:** a passphrase only ever travels in a POST body, never in a URL, and is never
//! written back into a page; a refused form changes nothing (a wrong passphrase, a bad or expired
//! invitation is refused before any home is made).

use std::collections::HashMap;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use roundtable_app::AppError;
use roundtable_app::net::{Joined, Joining, NetConfig};
use roundtable_core::Rule;
use roundtable_store::{Home, KeyError, StoreError};

use super::{Nav, PageResult, Problem, csrf_ok, group_name, page, plain};
use crate::AppState;

/// How long a join may take: the handshake, then the record.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    nav: Nav,
    csrf: String,
    problem: String,
    name: String,
    needs: String,
    group: String,
    invitation: String,
    /// A link from the member's other device ("This is another device of mine").
    link: String,
    device_name: String,
}

#[derive(Template)]
#[template(path = "unlock.html")]
struct UnlockPage {
    nav: Nav,
    csrf: String,
    problem: String,
}

#[derive(Template)]
#[template(path = "joined.html")]
pub(crate) struct JoinedPage {
    pub(crate) nav: Nav,
    pub(crate) title: String,
    pub(crate) picture: &'static str,
    pub(crate) lines: Vec<String>,
    pub(crate) next: &'static str,
    pub(crate) next_words: &'static str,
}

/// Whether this home has a device key yet (the welcome page is for a device without one).
pub(crate) fn has_home(st: &AppState) -> bool {
    st.inner.home_dir.join("device.key").exists()
}

/// Where a member goes before the keys are open.
pub(crate) fn setup_path(st: &AppState) -> &'static str {
    if has_home(st) { "/unlock" } else { "/welcome" }
}

fn with_status(status: StatusCode, r: PageResult) -> PageResult {
    r.map(|mut resp| {
        *resp.status_mut() = status;
        resp
    })
}

pub(crate) async fn welcome(State(state): State<AppState>) -> Response {
    if state.me().is_some() {
        return Redirect::to("/").into_response();
    }
    if has_home(&state) {
        return Redirect::to("/unlock").into_response();
    }
    page(WelcomePage {
        nav: Nav::Setup,
        csrf: state.csrf_token().to_string(),
        problem: String::new(),
        name: String::new(),
        needs: String::new(),
        group: String::new(),
        invitation: String::new(),
        link: String::new(),
        device_name: String::new(),
    })
    .into_response()
}

pub(crate) fn net_config(st: &AppState) -> NetConfig {
    st.inner
        .sync
        .as_ref()
        .map(|s| s.net.clone())
        .unwrap_or_default()
}

/// Opens the keys of the home just made or joined and starts serving sync from the page.
async fn open_keys(state: &AppState, passphrase: Option<String>) -> Result<(), Problem> {
    let st = state.clone();
    let pass = passphrase.clone();
    let (key, enc) = tokio::task::spawn_blocking(move || {
        let home = Home::open(&st.inner.home_dir)?;
        // The link and this browser's sign-in keep working after a restart.
        st.keep_token(&home);
        roundtable_app::unlock(&home, pass.as_deref())
    })
    .await
    .map_err(|e| Problem::refused(format!("A background task failed: {e}.")))??;
    state.set_me(key, Some(enc), passphrase);
    if let Err(e) = state.start_serving().await {
        // The page works without it; "Sync now" on the Devices page says why it cannot sync.
        tracing_note(&format!("sync could not start: {e}"));
    }
    Ok(())
}

fn tracing_note(s: &str) {
    eprintln!("roundtable: {s}");
}

pub(crate) async fn set_up(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    if state.me().is_some() || has_home(&state) {
        return Ok(Redirect::to("/").into_response());
    }
    let _one = state.inner.setup.lock().await;
    let name = field("name").trim().to_string();
    let needs = plain(field("needs")).trim().to_string();
    let group = field("group").trim().to_string();
    let invitation = field("invitation").trim().to_string();
    let link = field("link").trim().to_string();
    let device_name = field("device_name").trim().to_string();
    let pass = field("passphrase");
    let pass = (!pass.is_empty()).then_some(pass);
    let again = |problem: String| {
        with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(WelcomePage {
                nav: Nav::Setup,
                csrf: state.csrf_token().to_string(),
                problem,
                name: name.clone(),
                needs: needs.clone(),
                group: group.clone(),
                invitation: invitation.clone(),
                link: link.clone(),
                device_name: device_name.clone(),
            }),
        )
    };
    if field("choice") == "link" {
        if let Some(p) = &pass
            && p.chars().count() < 12
        {
            return again(
                "The passphrase is too short: use at least 12 letters, numbers or spaces, or \
                 leave it empty. Nothing was made."
                    .into(),
            );
        }
        if link.is_empty() || device_name.is_empty() {
            return again(
                "Please paste the link from your other device, and say what you call this one."
                    .into(),
            );
        }
        return match roundtable_app::join_device(
            &state.inner.home_dir,
            pass.as_deref(),
            &link,
            &device_name,
            &net_config(&state),
            JOIN_TIMEOUT,
        )
        .await
        {
            Ok(j) if j.waiting => {
                open_keys(&state, pass).await?;
                let p = JoinedPage {
                    nav: Nav::Home,
                    title: "The group is asked".into(),
                    picture: "members",
                    lines: vec![
                        "This device has asked the group to give you your seat back on it. \
                         Nobody decides this alone: two in three of the other members must agree, \
                         and nobody may block it."
                            .into(),
                        "When the group has agreed, come back to this page and choose \
                         \"See if the group has agreed\"."
                            .into(),
                    ],
                    next: "/groups",
                    next_words: "Go on",
                };
                Ok(axum::response::Html(p.render()?).into_response())
            }
            Ok(_) => {
                open_keys(&state, pass).await?;
                Ok(Redirect::to("/devices").into_response())
            }
            // Until the other device says yes, nothing is kept here (`join_device`): the
            // member may try again.
            Err(e) if !has_home(&state) => again(join_words(&e)),
            Err(e) => Ok(not_reached(&e)),
        };
    }
    if name.is_empty() {
        return again("Please write your name, so the group knows who you are.".into());
    }
    if name.chars().count() > 100 || needs.chars().count() > 2000 {
        return again("Please make your name or your needs shorter.".into());
    }
    if let Some(p) = &pass
        && p.chars().count() < 12
    {
        return again(
            "The passphrase is too short: use at least 12 letters, numbers or spaces, or leave it \
             empty. Nothing was made."
                .into(),
        );
    }
    match field("choice").as_str() {
        "start" => {
            if group.is_empty() {
                return again("Please write what the group is called.".into());
            }
            if group.chars().count() > 200 {
                return again("Please give the group a shorter name.".into());
            }
            let st = state.clone();
            let (n, d, g, p) = (name.clone(), needs.clone(), group.clone(), pass.clone());
            tokio::task::spawn_blocking(move || -> Result<(), AppError> {
                let (home, _) = roundtable_app::init(&st.inner.home_dir, &n, &d, p.as_deref())?;
                let (key, enc) = roundtable_app::unlock(&home, p.as_deref())?;
                roundtable_app::Seat::new(&home, &key, Some(&enc)).create_group(
                    &g,
                    Rule::Consent,
                    1,
                )?;
                Ok(())
            })
            .await
            .map_err(|e| Problem::refused(format!("A background task failed: {e}.")))??;
            open_keys(&state, pass).await?;
            Ok(Redirect::to("/").into_response())
        }
        "join" => {
            if invitation.is_empty() {
                return again("Please paste the invitation a member gave you.".into());
            }
            match join(&state, pass.clone(), &invitation, &name, &needs).await {
                Ok(page) => Ok(page),
                Err(JoinFailed::Before(e)) => again(join_words(&e)),
                Err(JoinFailed::After(e)) => Ok(not_reached(&e)),
                Err(JoinFailed::Keys(p)) => Err(p),
            }
        }
        _ => again("Please choose: start a new group, or join one.".into()),
    }
}

pub(crate) enum JoinFailed {
    /// Nothing was made: the invitation was refused before any home or key.
    Before(AppError),
    /// This device is set up (or was already) but the inviting device was not reached.
    After(AppError),
    /// The home was made but its keys could not be opened here.
    Keys(Problem),
}

/// Joins with `invitation`: the home made first when there is none (for `name` with `needs`).
pub(crate) async fn join(
    state: &AppState,
    passphrase: Option<String>,
    invitation: &str,
    name: &str,
    needs: &str,
) -> Result<Response, JoinFailed> {
    let (st, pass, t, n, d) = (
        state.clone(),
        passphrase.clone(),
        invitation.to_string(),
        name.to_string(),
        needs.to_string(),
    );
    let joining = tokio::task::spawn_blocking(move || {
        Joining::start(&st.inner.home_dir, pass.as_deref(), &t, &n, &d)
    })
    .await
    .map_err(|e| {
        JoinFailed::Before(AppError::Sync(roundtable_app::net::SyncError::Task(
            e.to_string(),
        )))
    })?
    .map_err(JoinFailed::Before)?;
    let finished = joining.finish(&net_config(state), JOIN_TIMEOUT).await;
    if state.me().is_none() {
        open_keys(state, passphrase)
            .await
            .map_err(JoinFailed::Keys)?;
    } else if let Err(e) = state.start_serving().await {
        tracing_note(&format!("sync could not pick up the group: {e}"));
    }
    let joined = finished.map_err(JoinFailed::After)?;
    // "Sync now" with the inviting device then works from the Devices page.
    roundtable_app::serve::remember_ticket(&state.inner.home_dir, invitation).await;
    Ok(joined_page(state, &joined).await)
}

async fn joined_page(state: &AppState, j: &Joined) -> Response {
    let st = state.clone();
    let gid = j.group;
    let group = tokio::task::spawn_blocking(move || {
        let home = Home::open(&st.inner.home_dir).ok()?;
        let g = home.open_group(&gid).ok()?;
        Some(group_name(&g.record))
    })
    .await
    .ok()
    .flatten();
    if let Ok(mut chosen) = state.inner.group.lock() {
        *chosen = Some(j.group);
    }
    let p = if j.joined {
        JoinedPage {
            nav: Nav::None,
            title: format!(
                "You are in the group {}",
                group.unwrap_or_else(|| "you were invited to".into())
            ),
            picture: "shared",
            lines: vec![
                "The group agreed, and this device now has the group's record.".into(),
                "Your name and what helps you take part are shared with the group.".into(),
            ],
            next: "/",
            next_words: "Go to the home page",
        }
    } else {
        JoinedPage {
            nav: Nav::None,
            title: "Your request to join is with the group".into(),
            picture: "proposal",
            lines: vec![
                "The member who invited you has asked the group to agree that you join.".into(),
                "When enough members agree, open the Devices page and press \"Sync now\" to get \
                 the group's record."
                    .into(),
            ],
            next: "/devices",
            next_words: "Go to the Devices page",
        }
    };
    page(p).into_response()
}

/// An invitation refused before anything was made, in words.
pub(crate) fn join_words(e: &AppError) -> String {
    match e {
        AppError::Ticket(_) => "This is not an invitation Roundtable can read. Please copy the \
                                whole code again (it starts with \"rt\"). Nothing was made."
            .into(),
        AppError::NotAnInvitation => "This code is for syncing with a member's device, not an \
                                      invitation. Please ask a member for an invitation. Nothing \
                                      was made."
            .into(),
        AppError::InvitationExpired => {
            "This invitation has expired. Please ask a member for a new \
                                        one. Nothing was made."
                .into()
        }
        AppError::Store(StoreError::Key(KeyError::PassphraseTooShort { .. })) => {
            "The passphrase is too short: use at least 12 letters, numbers or spaces. Nothing was \
             made."
                .into()
        }
        AppError::Store(StoreError::Key(KeyError::WrongPassphrase)) => {
            "That passphrase is not right. Nothing was changed.".into()
        }
        e => format!("{} Nothing was made.", super::sentence(&e.to_string())),
    }
}

/// The device is set up, but the join did not complete.
pub(crate) fn not_reached(e: &AppError) -> Response {
    let why = match e {
        AppError::Sync(roundtable_app::net::SyncError::Timeout) => {
            "The inviting device did not answer in time.".to_string()
        }
        AppError::Sync(roundtable_app::net::SyncError::Refused(r)) => {
            format!("The inviting device said no: {}.", r.trim_end_matches('.'))
        }
        e => super::sentence(&e.to_string()),
    };
    let p = JoinedPage {
        nav: Nav::None,
        title: "Roundtable could not reach the inviting device".into(),
        picture: "not-shared",
        lines: vec![
            why,
            "Your device is set up and nothing is lost. Make sure the other member's Roundtable \
             is open, then try again with the same invitation on the Groups page while it still \
             works."
                .into(),
        ],
        next: "/groups",
        next_words: "Go to the Groups page",
    };
    with_status(StatusCode::BAD_GATEWAY, page(p)).unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn unlock_page(State(state): State<AppState>) -> Response {
    if state.me().is_some() {
        return Redirect::to("/").into_response();
    }
    if !has_home(&state) {
        return Redirect::to("/welcome").into_response();
    }
    page(UnlockPage {
        nav: Nav::Setup,
        csrf: state.csrf_token().to_string(),
        problem: String::new(),
    })
    .into_response()
}

pub(crate) async fn unlock(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    if state.me().is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let _one = state.inner.setup.lock().await;
    let pass = field("passphrase");
    let again = |problem: &str| {
        with_status(
            StatusCode::UNAUTHORIZED,
            page(UnlockPage {
                nav: Nav::Setup,
                csrf: state.csrf_token().to_string(),
                problem: problem.into(),
            }),
        )
    };
    if pass.is_empty() {
        return again("Please type your passphrase.");
    }
    let st = state.clone();
    let p = pass.clone();
    let r = tokio::task::spawn_blocking(move || {
        let home = Home::open(&st.inner.home_dir)?;
        roundtable_app::unlock(&home, Some(&p))
    })
    .await
    .map_err(|e| Problem::refused(format!("A background task failed: {e}.")))?;
    match r {
        Ok((key, enc)) => {
            state.set_me(key, Some(enc), Some(pass));
            if let Err(e) = state.start_serving().await {
                tracing_note(&format!("sync could not start: {e}"));
            }
            Ok(Redirect::to("/").into_response())
        }
        Err(AppError::Store(StoreError::Key(KeyError::WrongPassphrase))) => {
            again("That passphrase is not right. Nothing was changed. Please try again.")
        }
        Err(e) => Err(e.into()),
    }
}

/// The Groups page's "Join another group": the same join, for this device's member.
/// "See if the group has agreed": a new device waiting for the group's decision on a recovery
/// syncs with the device that asked for it (or with the member's device whose code is pasted).
/// Refused until the group has agreed; then this device holds the group.
pub(crate) async fn recovered(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let pasted = field("ticket").trim().to_string();
    let st = state.clone();
    let saved = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        roundtable_app::waiting_recovery(&Home::open(&st.inner.home_dir)?)
    })
    .await
    .map_err(|e| Problem::refused(format!("A background task failed: {e}.")))??;
    let ticket = match (pasted.is_empty(), saved) {
        (false, _) => pasted,
        (true, Some(t)) => t,
        (true, None) => {
            return Err(Problem::refused(
                "Please paste the code of a member's device (on its Devices page). Nothing was changed.",
            ));
        }
    };
    let me = state.me().ok_or_else(Problem::locked)?;
    match roundtable_app::net::sync_once(
        &state.inner.home_dir,
        &me.key,
        me.passphrase.as_deref(),
        &ticket,
        &net_config(&state),
        Duration::from_secs(30),
    )
    .await
    {
        Ok(_) => Ok(Redirect::to("/").into_response()),
        Err(e) => {
            let why = if e.is_refusal() {
                "The other device says the group has not agreed yet. Please ask the others to \
                 give their view, and try again later."
                    .to_string()
            } else {
                super::devices::sync_words(&e)
            };
            let p = JoinedPage {
                nav: Nav::Home,
                title: "Not yet".into(),
                picture: "not-shared",
                lines: vec![why, "Nothing on this device was lost or changed.".into()],
                next: "/groups",
                next_words: "Go back",
            };
            Ok(axum::response::Html(p.render()?).into_response())
        }
    }
}

pub(crate) async fn join_another(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let invitation = field("invitation").trim().to_string();
    if invitation.is_empty() {
        return Err(Problem::refused(
            "Please paste the invitation a member gave you. Nothing was changed.",
        ));
    }
    let pass = state.me().and_then(|m| m.passphrase.clone());
    let st = state.clone();
    let (name, needs) = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let home = Home::open(&st.inner.home_dir)?;
        Ok((
            roundtable_app::setting(&home, "name")?,
            roundtable_app::setting(&home, "needs")?,
        ))
    })
    .await
    .map_err(|e| Problem::refused(format!("A background task failed: {e}.")))??;
    match join(&state, pass, &invitation, &name, &needs).await {
        Ok(page) => Ok(page),
        Err(JoinFailed::Before(e)) => Err(Problem::refused(join_words(&e))),
        Err(JoinFailed::After(e)) => Ok(not_reached(&e)),
        Err(JoinFailed::Keys(p)) => Err(p),
    }
}
