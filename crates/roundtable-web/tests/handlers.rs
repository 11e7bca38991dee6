//! Handler tests without a socket: a real home in a temporary folder (real redb, real signatures),
//! the router driven with `oneshot`.

use axum::body::Body as HttpBody;
use axum::http::{Request, Response, StatusCode, header};
use roundtable_core::{Body, DeviceKey, EntryId, Rule};
use roundtable_store::Home;
use roundtable_web::{AppState, WebConfig, router};
use tower::ServiceExt;

const PORT: u16 = 48123;
const T0: i64 = 1_767_225_600_000; // 1 January 2026, 00:00 UTC

struct Fixture {
    _dir: tempfile::TempDir,
    home_dir: std::path::PathBuf,
    state: AppState,
    thread: EntryId,
}

fn fixed_clock() -> i64 {
    T0 + 3_600_000
}

/// A home with a group of three (Ana is this device), one thread with one message.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home_dir = dir.path().join("home");
    let thread = {
        let (home, key) = Home::init(&home_dir, "Ana's laptop", None).unwrap();
        let mut g = home
            .create_group(
                &key,
                "Riverside Partnership Board",
                Rule::Consent,
                2,
                "Ana",
                "Easy read, please",
                T0,
            )
            .unwrap();
        for (n, name) in [(1u8, "Ben"), (2, "Chloe")] {
            let other = DeviceKey::from_secret(&[n; 32]);
            home.append(
                &mut g,
                &key,
                Body::MemberAdd {
                    member: other.device_id(),
                    name: name.into(),
                    needs: String::new(),
                },
                T0 + i64::from(n),
            )
            .unwrap();
        }
        let thread = home
            .append(
                &mut g,
                &key,
                Body::Thread {
                    title: "Bus passes <for> the summer".into(),
                },
                T0 + 60_000,
            )
            .unwrap();
        home.append(
            &mut g,
            &key,
            Body::Message {
                thread,
                text: "Who needs a pass?".into(),
            },
            T0 + 120_000,
        )
        .unwrap();
        thread
    }; // the home is closed here: the web opens it per request
    let cfg = WebConfig {
        home_dir: home_dir.clone(),
        passphrase: None,
        port: PORT,
    };
    let state = AppState::new(&cfg, PORT).unwrap().with_clock(fixed_clock);
    Fixture {
        _dir: dir,
        home_dir,
        state,
        thread,
    }
}

fn host() -> String {
    format!("127.0.0.1:{PORT}")
}

fn cookie(state: &AppState) -> String {
    format!("roundtable_{PORT}={}", state.token())
}

fn get(state: &AppState, uri: &str) -> Request<HttpBody> {
    Request::get(uri)
        .header(header::HOST, host())
        .header(header::COOKIE, cookie(state))
        .body(HttpBody::empty())
        .unwrap()
}

fn post(state: &AppState, uri: &str, form: &[(&str, &str)]) -> Request<HttpBody> {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    Request::post(uri)
        .header(header::HOST, host())
        .header(header::COOKIE, cookie(state))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(HttpBody::from(body.join("&")))
        .unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn send(state: &AppState, req: Request<HttpBody>) -> Response<HttpBody> {
    router(state.clone()).oneshot(req).await.unwrap()
}

async fn text(r: Response<HttpBody>) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn entry_count(f: &Fixture) -> usize {
    let home = Home::open(&f.home_dir).unwrap();
    let (gid, _) = home.groups().unwrap()[0].clone();
    home.entries(&gid).unwrap().len()
}

/// Replaces every run of exactly 64 lowercase hex characters (ids, tokens) with `[hex]`.
fn redact(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let run = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            .count();
        if run == 64 {
            out.push_str("[hex]");
            i += 64;
        } else if run > 0 {
            out.push_str(&s[i..i + run]);
            i += run;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[tokio::test]
async fn without_the_token_every_page_is_refused_in_plain_words() {
    let f = fixture();
    for uri in ["/", "/threads", "/help", "/static/roundtable.css"] {
        let req = Request::get(uri)
            .header(header::HOST, host())
            .body(HttpBody::empty())
            .unwrap();
        let r = send(&f.state, req).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{uri}");
        let page = text(r).await;
        assert!(
            page.contains("Please open Roundtable from its link"),
            "{uri}"
        );
    }
    // A wrong cookie or a wrong token in the address is refused too.
    let req = Request::get("/?t=0000")
        .header(header::HOST, host())
        .header(header::COOKIE, format!("roundtable_{PORT}=0000"))
        .body(HttpBody::empty())
        .unwrap();
    assert_eq!(send(&f.state, req).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_token_in_the_link_becomes_a_strict_cookie_and_leaves_the_address() {
    let f = fixture();
    let req = Request::get(format!("/threads?t={}", f.state.token()))
        .header(header::HOST, host())
        .body(HttpBody::empty())
        .unwrap();
    let r = send(&f.state, req).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/threads");
    let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert_eq!(
        set,
        format!(
            "roundtable_{PORT}={}; HttpOnly; SameSite=Strict; Path=/",
            f.state.token()
        )
    );
    // With the cookie, the page is served.
    let r = send(&f.state, get(&f.state, "/threads")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The URL printed at launch carries the token, on 127.0.0.1.
    assert_eq!(
        f.state.url(),
        format!("http://127.0.0.1:{PORT}/?t={}", f.state.token())
    );
    assert_eq!(f.state.token().len(), 64);
}

#[tokio::test]
async fn another_host_is_refused_even_with_the_token() {
    let f = fixture();
    for h in [
        "evil.example:48123".to_string(),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{}", PORT + 1),
        format!("[::1]:{PORT}"),
    ] {
        let req = Request::get("/")
            .header(header::HOST, h.as_str())
            .header(header::COOKIE, cookie(&f.state))
            .body(HttpBody::empty())
            .unwrap();
        let r = send(&f.state, req).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{h}");
        assert!(text(r).await.contains("This address is not allowed"));
    }
    let req = Request::get("/")
        .header(header::HOST, format!("localhost:{PORT}"))
        .header(header::COOKIE, cookie(&f.state))
        .body(HttpBody::empty())
        .unwrap();
    assert_eq!(send(&f.state, req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let f = fixture();
    let refused = Request::get("/")
        .header(header::HOST, "evil.example")
        .body(HttpBody::empty())
        .unwrap();
    for req in [
        get(&f.state, "/"),
        get(&f.state, "/help"),
        get(&f.state, "/static/roundtable.css"),
        get(&f.state, "/no/such/page"),
        refused,
    ] {
        let r = send(&f.state, req).await;
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'self'");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    }
}

#[tokio::test]
async fn pages_use_no_inline_style_or_script_and_share_one_menu() {
    let f = fixture();
    let t = f.thread.to_string();
    for uri in [
        "/".to_string(),
        "/threads".into(),
        format!("/threads/{t}"),
        format!("/threads/{t}/write"),
        "/members".into(),
        "/help".into(),
    ] {
        let r = send(&f.state, get(&f.state, &uri)).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        let page = text(r).await;
        assert!(!page.contains("style="), "{uri}");
        assert!(!page.contains("<style"), "{uri}");
        assert!(!page.contains("<script"), "{uri}");
        assert!(page.contains(r#"<html lang="en">"#), "{uri}");
        assert!(page.contains(r##"<a class="skip" href="#main">"##), "{uri}");
        let menu_at = page.find(r#"<nav aria-label="Menu">"#).unwrap();
        let main_at = page.find(r#"<main id="main""#).unwrap();
        assert!(menu_at < main_at, "{uri}");
        for item in ["Home", "Threads", "Members", "Get help"] {
            assert!(
                page[menu_at..main_at].contains(&format!(">{item}</a>")),
                "{uri}"
            );
        }
    }
    let css = text(send(&f.state, get(&f.state, "/static/roundtable.css")).await).await;
    assert!(css.contains("prefers-reduced-motion"));
    assert!(css.contains("min-height: 44px"));
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_writes_nothing() {
    let f = fixture();
    let before = entry_count(&f);
    let uri = format!("/threads/{}/share", f.thread);
    for form in [
        vec![("text", "Sneaky"), ("action", "share")],
        vec![("csrf", "0000"), ("text", "Sneaky"), ("action", "share")],
        vec![
            ("csrf", f.state.token()),
            ("text", "Sneaky"),
            ("action", "share"),
        ],
    ] {
        let r = send(&f.state, post(&f.state, &uri, &form)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(text(r).await.contains("Nothing was saved"));
    }
    // A cross-site form (another Origin) is refused even with the right CSRF token.
    let mut req = post(
        &f.state,
        &uri,
        &[
            ("csrf", f.state.csrf_token()),
            ("text", "Sneaky"),
            ("action", "share"),
        ],
    );
    req.headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(send(&f.state, req).await.status(), StatusCode::FORBIDDEN);
    // The check page needs it too.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{}/check", f.thread),
            &[("text", "Hi")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(entry_count(&f), before);
}

#[tokio::test]
async fn writing_a_message_checks_who_will_see_it_then_shares_it() {
    let f = fixture();
    let t = f.thread.to_string();
    let csrf = f.state.csrf_token().to_string();
    let before = entry_count(&f);

    // The form.
    let form = text(send(&f.state, get(&f.state, &format!("/threads/{t}/write"))).await).await;
    assert!(form.contains(&format!(r#"action="/threads/{t}/check""#)));
    assert!(form.contains(&format!(r#"name="csrf" value="{csrf}""#)));

    // Check before you share: the words, who sees them, and that they stay.
    let words = "I need one. <b>Thanks</b> & see you";
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/check"),
            &[("csrf", &csrf), ("text", words)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let check = text(r).await;
    assert!(check.contains("Check before you share"));
    assert!(check.contains("Everyone in the group: Ana, Ben, Chloe."));
    assert!(check.contains("It cannot be deleted, only corrected."));
    assert!(check.contains("I need one. &#60;b&#62;Thanks&#60;/b&#62; &#38; see you"));
    assert!(!check.contains("<b>"));
    assert!(check.contains(r#"value="share">Share it</button>"#));
    assert!(check.contains(r#"value="change" class="secondary">Change it</button>"#));
    assert_eq!(entry_count(&f), before, "checking writes nothing");

    // Change it: the form again, with the words kept.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/share"),
            &[("csrf", &csrf), ("text", words), ("action", "change")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let again = text(r).await;
    assert!(again.contains("Write a message"));
    assert!(again.contains("I need one. &#60;b&#62;Thanks"));
    assert_eq!(entry_count(&f), before, "changing writes nothing");

    // Share it: saved, and back to the thread.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/share"),
            &[("csrf", &csrf), ("text", words), ("action", "share")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], format!("/threads/{t}"));
    assert_eq!(entry_count(&f), before + 1);

    let page = text(send(&f.state, get(&f.state, &format!("/threads/{t}"))).await).await;
    assert!(page.contains("Who needs a pass?"));
    assert!(page.contains("I need one. &#60;b&#62;Thanks&#60;/b&#62; &#38; see you"));
    assert!(page.contains("1 January 2026, 01:00 UTC"));

    // The entry is a real signed message in the record, by this device.
    let home = Home::open(&f.home_dir).unwrap();
    let (gid, _) = home.groups().unwrap()[0].clone();
    let g = home.open_group(&gid).unwrap();
    let last = *g.record.referrers(&f.thread).last().unwrap();
    let (_, meta) = g.record.entry(&last).unwrap();
    assert_eq!(
        meta.body,
        Body::Message {
            thread: f.thread,
            text: words.into()
        }
    );
}

#[tokio::test]
async fn an_empty_message_goes_back_to_the_form_with_a_reason() {
    let f = fixture();
    let before = entry_count(&f);
    let csrf = f.state.csrf_token().to_string();
    for path in ["check", "share"] {
        let r = send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{}/{path}", f.thread),
                &[("csrf", &csrf), ("text", "   "), ("action", "share")],
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(text(r).await.contains("Please write your message first."));
    }
    assert_eq!(entry_count(&f), before);
}

#[tokio::test]
async fn an_unknown_thread_is_a_plain_not_found() {
    let f = fixture();
    for uri in [
        "/threads/nonsense".to_string(),
        format!("/threads/{}", "ab".repeat(32)),
        format!("/threads/{}/write", "ab".repeat(32)),
    ] {
        let r = send(&f.state, get(&f.state, &uri)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(text(r).await.contains("We could not find that"));
    }
}

#[tokio::test]
async fn serve_binds_loopback_only_and_prints_a_token_url() {
    let f = fixture();
    let cfg = WebConfig {
        home_dir: f.home_dir.clone(),
        passphrase: None,
        port: 0,
    };
    let (addr, url, fut) = roundtable_web::serve(cfg).await.unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert!(url.starts_with(&format!("http://127.0.0.1:{}/?t=", addr.port())));
    assert_eq!(url.rsplit("?t=").next().unwrap().len(), 64);
    drop(fut);
}

#[tokio::test]
async fn snapshots() {
    let f = fixture();
    let t = f.thread.to_string();
    for (name, uri) in [
        ("home", "/".to_string()),
        ("threads", "/threads".into()),
        ("thread", format!("/threads/{t}")),
        ("write", format!("/threads/{t}/write")),
        ("members", "/members".into()),
        ("help", "/help".into()),
    ] {
        let page = text(send(&f.state, get(&f.state, &uri)).await).await;
        insta::assert_snapshot!(name, redact(&page));
    }
    let check = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{t}/check"),
                &[
                    ("csrf", f.state.csrf_token()),
                    ("text", "Me, please.\nThanks!"),
                ],
            ),
        )
        .await,
    )
    .await;
    insta::assert_snapshot!("check", redact(&check));
    let refused = Request::get("/")
        .header(header::HOST, host())
        .body(HttpBody::empty())
        .unwrap();
    insta::assert_snapshot!(
        "refused",
        redact(&text(send(&f.state, refused).await).await)
    );
}

#[tokio::test]
async fn line_ends_from_the_browser_are_stored_plain() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{}/share", f.thread),
            &[("csrf", &csrf), ("text", "one\r\ntwo"), ("action", "share")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let home = Home::open(&f.home_dir).unwrap();
    let (gid, _) = home.groups().unwrap()[0].clone();
    let g = home.open_group(&gid).unwrap();
    let last = *g.record.referrers(&f.thread).last().unwrap();
    assert_eq!(
        g.record.entry(&last).unwrap().1.body,
        Body::Message {
            thread: f.thread,
            text: "one\ntwo".into()
        }
    );
}

#[tokio::test]
async fn a_sealed_thread_shows_its_public_facts_to_a_non_reader() {
    let f = fixture();
    let thread = {
        let home = Home::open(&f.home_dir).unwrap();
        let (gid, _) = home.groups().unwrap()[0].clone();
        let mut g = home.open_group(&gid).unwrap();
        let (ben, chloe) = (
            DeviceKey::from_secret(&[1; 32]),
            DeviceKey::from_secret(&[2; 32]),
        );
        for k in [&ben, &chloe] {
            let enc_key = roundtable_seal::EncSecret::generate()
                .unwrap()
                .public()
                .unwrap();
            home.append(&mut g, k, Body::Profile { enc_key }, T0 + 200_000)
                .unwrap();
        }
        let body = roundtable_seal::thread::start(
            &g.record,
            "Ben's health",
            "It is about one member's health",
            &[ben.device_id(), chloe.device_id()],
        )
        .unwrap();
        home.append(&mut g, &ben, body, T0 + 300_000).unwrap()
    };
    let page = text(send(&f.state, get(&f.state, &format!("/threads/{thread}"))).await).await;
    assert!(page.contains("<h1>Ben&#39;s health</h1>"), "{page}");
    assert!(page.contains("This thread is sealed"));
    assert!(page.contains("It is about one member&#39;s health"));
    assert!(page.contains("<strong>Its readers:</strong> Ben, Chloe"));
    assert!(page.contains("You are not one of its readers."));
    assert!(!page.contains("Write a message</a>"));
    // It is listed, marked sealed; writing in it is not offered here.
    let list = text(send(&f.state, get(&f.state, "/threads")).await).await;
    assert!(list.contains(r#"<span class="tag">Sealed</span>"#));
    let r = send(&f.state, get(&f.state, &format!("/threads/{thread}/write"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
