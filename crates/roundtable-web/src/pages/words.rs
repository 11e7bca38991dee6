//! The members' glossary: hard words and plain ones to use instead. Kept as a plain text file in the
//! home (`glossary.txt`), so members can change it here or in any text editor.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::threads::glossary;
use super::{Nav, PageResult, Problem, csrf_ok, page, plain};
use crate::AppState;
use crate::jargon;

pub(crate) const GLOSSARY_FILE: &str = "glossary.txt";

/// A glossary larger than this is refused (it is read on every check).
const MAX_GLOSSARY: usize = 64 * 1024;

#[derive(Template)]
#[template(path = "words.html")]
struct WordsPage {
    nav: Nav,
    terms: Vec<jargon::Term>,
    text: String,
    saved: bool,
    max_words: usize,
    csrf: String,
}

fn current_text(st: &AppState) -> String {
    std::fs::read_to_string(st.inner.home_dir.join(GLOSSARY_FILE))
        .unwrap_or_else(|_| jargon::DEFAULT_GLOSSARY.to_string())
}

pub(crate) async fn words(State(state): State<AppState>) -> PageResult {
    page(WordsPage {
        nav: Nav::Help,
        terms: glossary(&state),
        text: current_text(&state),
        saved: false,
        max_words: jargon::MAX_WORDS,
        csrf: state.csrf_token().to_string(),
    })
}

#[derive(Deserialize)]
pub(crate) struct GlossaryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

pub(crate) async fn save(
    State(state): State<AppState>,
    Form(form): Form<GlossaryForm>,
) -> PageResult {
    csrf_ok(&state, &form.csrf)?;
    let text = plain(form.text);
    if text.len() > MAX_GLOSSARY {
        return Err(Problem::refused(
            "The list is too long to save (the most is 64 KB). Nothing was changed.",
        ));
    }
    let path = state.inner.home_dir.join(GLOSSARY_FILE);
    // Write then rename: a crash or a full disk leaves the old list whole.
    let tmp = path.with_extension("txt.new");
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Problem::refused(format!(
                "The list could not be saved ({e}). The old list is kept."
            ))
        })?;
    page(WordsPage {
        nav: Nav::Help,
        terms: jargon::parse(&text),
        text,
        saved: true,
        max_words: jargon::MAX_WORDS,
        csrf: state.csrf_token().to_string(),
    })
}

/// The glossary for the live advice while writing (JavaScript only enhances the server's check).
pub(crate) async fn glossary_json(State(state): State<AppState>) -> Response {
    let body = serde_json::to_string(&glossary(&state)).unwrap_or_else(|_| "[]".into());
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}
