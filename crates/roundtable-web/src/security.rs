//! The guard in front of every page: Host check, launch token, security headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::AppState;
use crate::pages::refusal;

/// Constant-time comparison of two tokens.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie_name(state: &AppState) -> String {
    // Cookies do not separate ports: one name per port keeps two launches apart.
    format!("roundtable_{}", state.port())
}

fn host_ok(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = state.port();
    host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
}

fn origin_ok(state: &AppState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        None => true,
        Some(o) => {
            let port = state.port();
            o == format!("http://127.0.0.1:{port}") || o == format!("http://localhost:{port}")
        }
    }
}

fn cookie_token<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The cookie that keeps this browser signed in: the token, HttpOnly, this site only. It lasts a
/// year, until "Sign out every browser" on the Devices page replaces the token.
pub(crate) fn cookie(state: &AppState) -> String {
    format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000",
        cookie_name(state),
        state.token()
    )
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "t")
        .map(|(_, v)| v)
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Nothing to other sites. Not `no-referrer`: with it Chromium sends `Origin: null` on our own
    // forms, which the Origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if !host_ok(&state, headers) {
        return secure(refusal(
            StatusCode::FORBIDDEN,
            "This address is not allowed",
            "Roundtable only answers on this computer, at the address it printed when it started.",
        ));
    }
    if req.method() == Method::POST && !origin_ok(&state, headers) {
        return secure(refusal(
            StatusCode::FORBIDDEN,
            "This form came from another website",
            "Nothing was saved. Please use the form on the Roundtable page.",
        ));
    }
    if cookie_token(&state, headers).is_some_and(|t| same(t, &state.token())) {
        // Until this device is set up and unlocked, every page but those two (and the styles and
        // pictures they use) leads there.
        let path = req.uri().path();
        if state.me().is_none()
            && !matches!(path, "/welcome" | "/unlock" | "/help")
            && !path.starts_with("/static/")
        {
            return secure(Redirect::to(crate::pages::setup::setup_path(&state)).into_response());
        }
        let r = next.run(req).await;
        return secure(crate::pages::devices::with_sync_line(&state, r).await);
    }
    if req.method() == Method::GET
        && query_token(req.uri().query()).is_some_and(|t| same(t, &state.token()))
    {
        // Keep the token in a cookie and take it out of the address bar (and the history).
        let cookie = cookie(&state);
        let mut r = Redirect::to(req.uri().path()).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return secure(r);
    }
    secure(refusal(
        StatusCode::FORBIDDEN,
        "Please open Roundtable from its link",
        "This page needs the link Roundtable printed when it started (it ends with ?t= and a long code). \
         Copy that whole link into your browser.",
    ))
}

// ---------- the LAN listener ----------

/// The paired browser's cookie. `__Host-`: the browser keeps it only with `Secure`, `Path=/` and
/// no `Domain`, so no other site or plain-HTTP page can set or read it.
pub(crate) const LAN_COOKIE: &str = "__Host-roundtable-lan";

/// The cookie that keeps a paired phone or tablet in: its secret, a year, this site only, never
/// over plain HTTP, never readable by scripts.
pub(crate) fn lan_cookie(secret: &str) -> String {
    format!("{LAN_COOKIE}={secret}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000")
}

fn cookie_named<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries a paired browser's cookie that is still let in.
pub(crate) fn lan_paired(state: &AppState, headers: &HeaderMap) -> bool {
    match (state.lan(), cookie_named(headers, LAN_COOKIE)) {
        (Some(lan), Some(v)) => lan.browsers.knows(v),
        _ => false,
    }
}

/// Pages that change how this computer is reached or opened: only on the computer itself.
fn local_only(path: &str) -> bool {
    matches!(
        path,
        "/welcome" | "/unlock" | "/devices/sign-out" | "/devices/pair" | "/devices/unpair"
    )
}

/// The guard of the LAN listener. It never reads the launch token or its cookie: only a paired
/// browser's cookie opens a page. `Host` must name the LAN address and port served, and every
/// POST must come from that same origin.
pub(crate) async fn lan_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let Some(host) = host.filter(|h| state.lan().is_some_and(|l| l.host_ok(h))) else {
        return secure(refusal(
            StatusCode::FORBIDDEN,
            "This address is not allowed",
            "Roundtable answers on this network only at the address it printed when it started.",
        ));
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        if origin != Some(format!("https://{host}").as_str()) {
            return secure(refusal(
                StatusCode::FORBIDDEN,
                "This form came from another website",
                "Nothing was saved. Please use the form on the Roundtable page.",
            ));
        }
    }
    let path = req.uri().path();
    if path == "/pair" || path.starts_with("/static/") {
        return secure(next.run(req).await);
    }
    if local_only(path) {
        return secure(refusal(
            StatusCode::FORBIDDEN,
            "Only on the computer itself",
            "This is done on the computer Roundtable runs on, not from a phone or tablet.",
        ));
    }
    if !lan_paired(&state, headers) {
        // Not let in (never, or signed out): the code form, whatever page was asked for.
        return secure(crate::pages::pair::not_in(&state));
    }
    if state.me().is_none() {
        return secure(refusal(
            StatusCode::FORBIDDEN,
            "Roundtable is locked on the computer",
            "Please open Roundtable on the computer first (give its passphrase there), then reload this page.",
        ));
    }
    let r = next.run(req).await;
    secure(crate::pages::devices::with_sync_line(&state, r).await)
}
