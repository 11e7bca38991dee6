//! `/pair` on the LAN listener: the form that takes the 6 numbers shown on the computer, and the
//! cookie that keeps the phone or tablet in.
//!
//! **Invariant:** the cookie is given only after a right code, once its hash is kept in the home;
//! a wrong, paused, run-out or missing code changes nothing but the count of wrong tries.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::Nav;
use crate::AppState;
use crate::lan::pairing::{FREE_TRIES, Try, short_agent};
use crate::security::{lan_cookie, lan_paired};

#[derive(Template)]
#[template(path = "pair.html")]
struct PairPage {
    nav: Nav,
    problem: String,
}

fn pair_page(status: StatusCode, problem: String) -> Response {
    match (PairPage {
        nav: Nav::Setup,
        problem,
    })
    .render()
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => super::Problem::from(e).into_response(),
    }
}

/// What a browser not let in sees on any page: the form, with a 403.
pub(crate) fn not_in(_state: &AppState) -> Response {
    pair_page(StatusCode::FORBIDDEN, String::new())
}

pub(crate) async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if lan_paired(&state, &headers) {
        return Redirect::to("/").into_response();
    }
    pair_page(StatusCode::OK, String::new())
}

/// Seconds in words, rounded up: "30 seconds", "2 minutes".
fn wait_words(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    if s < 120 {
        format!("{s} second{}", if s == 1 { "" } else { "s" })
    } else {
        format!("{} minutes", (s + 59) / 60)
    }
}

pub(crate) async fn pair(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(lan) = state.lan() else {
        return super::not_found().await;
    };
    let typed: String = form
        .get("code")
        .map(|c| {
            c.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect()
        })
        .unwrap_or_default();
    if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return pair_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please type the 6 numbers, and nothing else.".into(),
        );
    }
    match lan.pairing.try_code(&typed) {
        Try::Right => {}
        Try::Wrong { pause_ms: None } => {
            return pair_page(
                StatusCode::FORBIDDEN,
                format!(
                    "These are not the numbers on the computer's screen. Please look again and \
                     type them. After {FREE_TRIES} wrong tries you have to wait a little."
                ),
            );
        }
        Try::Wrong {
            pause_ms: Some(wait),
        }
        | Try::Paused { wait_ms: wait } => {
            let mut r = pair_page(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong tries. Please wait {}, then type the numbers again.",
                    wait_words(wait)
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&((wait.max(0) + 999) / 1000).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Try::Expired => {
            return pair_page(
                StatusCode::FORBIDDEN,
                "These numbers have run out: they work for 10 minutes. On the computer, press \
                 \"Let a phone or tablet in\" again for new ones."
                    .into(),
            );
        }
        Try::NoCode => {
            return pair_page(
                StatusCode::FORBIDDEN,
                "The computer is not showing any numbers now. On the computer, open the Devices \
                 page and press \"Let a phone or tablet in\"."
                    .into(),
            );
        }
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match lan
        .browsers
        .add(short_agent(agent), lan.pairing.now())
        .await
    {
        Ok(secret) => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&lan_cookie(&secret)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => pair_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            super::sentence(&format!(
                "{e}. This phone or tablet is not let in; make new numbers on the computer and try again"
            )),
        ),
    }
}
