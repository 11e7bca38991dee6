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
        // Ben and Chloe join by the group's agreement (Ana alone, then Ana and Ben).
        let (ben, chloe) = (
            DeviceKey::from_secret(&[1; 32]),
            DeviceKey::from_secret(&[2; 32]),
        );
        let gid = g.id();
        let mut t = T0;
        roundtable_core::governance::add_members(
            gid,
            2,
            &key,
            &[(&ben, "Ben", ""), (&chloe, "Chloe", "")],
            |k, body| {
                t += 1;
                home.append(&mut g, k, body, t)
            },
        )
        .unwrap();
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
        sync: None,
        lan: None,
    };
    roundtable_web::show_times_in_utc();
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
            "roundtable_{PORT}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000",
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
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
    }
}

/// Issue 19: the page's own words ("thread", "sealed", "sync", ...) are explained on every page
/// that shows them, in "Words on this page"; a page explains no word it does not show.
#[tokio::test]
async fn every_page_explains_the_words_it_uses() {
    let f = fixture();
    let t = f.thread.to_string();
    // (word as listed, the forms it is found by).
    let words: &[(&str, &[&str])] = &[
        ("Thread", &["thread", "threads"]),
        ("Sealed", &["sealed"]),
        ("Sync", &["sync", "synced", "syncing"]),
        ("Record", &["record"]),
        ("Device", &["device", "devices"]),
        ("Stance", &["stance", "stances"]),
        ("Proposal", &["proposal", "proposals"]),
        ("Auditor", &["auditor", "auditors"]),
        ("Quorum", &["quorum"]),
    ];
    let mut explained = std::collections::BTreeSet::new();
    for uri in [
        "/".to_string(),
        "/threads".into(),
        format!("/threads/{t}"),
        format!("/threads/{t}/write"),
        format!("/threads/{t}/propose"),
        "/threads/new".into(),
        "/proposals".into(),
        "/actions".into(),
        "/members".into(),
        "/help".into(),
        "/words".into(),
        "/devices".into(),
        "/audit".into(),
        "/invite".into(),
        "/groups".into(),
        "/no/such/page".into(),
    ] {
        let page = text(send(&f.state, get(&f.state, &uri)).await).await;
        let (body, part) = match page.find("<h2 id=\"words-here-h\">") {
            Some(at) => page.split_at(at),
            None => (page.as_str(), ""),
        };
        // The visible words of the page before its "Words on this page".
        let mut visible = String::new();
        let mut in_tag = false;
        let mut rest = body;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("<script") {
                rest = rest.find("</script>").map_or("", |e| &rest[e + 9..]);
                continue;
            }
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    visible.push(' ');
                }
                c if !in_tag => visible.push(c.to_ascii_lowercase()),
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
        }
        let shown: std::collections::BTreeSet<&str> = visible
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .collect();
        for (word, forms) in words {
            let uses = forms.iter().any(|f| shown.contains(f));
            let says = part.contains(&format!("<dt>{word}</dt><dd>"));
            assert_eq!(
                uses, says,
                "{uri}: {word} used {uses}, explained {says}\n{page}"
            );
            if says {
                explained.insert(*word);
            }
        }
    }
    // The check found something to check: the common words are explained somewhere.
    for w in ["Thread", "Proposal", "Device", "Record"] {
        assert!(explained.contains(w), "{w} is never explained");
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
        format!("/threads/{t}/propose"),
        "/threads/new".into(),
        "/proposals".into(),
        "/actions".into(),
        "/members".into(),
        "/help".into(),
        "/words".into(),
    ] {
        let r = send(&f.state, get(&f.state, &uri)).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        let page = text(r).await;
        assert!(!page.contains("style="), "{uri}");
        assert!(!page.contains("<style"), "{uri}");
        // Scripts only from our own files (the CSP allows nothing else), and only one.
        assert_eq!(page.matches("<script").count(), 1, "{uri}");
        assert!(
            page.contains(r#"<script src="/static/roundtable.js" defer></script>"#),
            "{uri}"
        );
        assert!(page.contains(r#"<html lang="en">"#), "{uri}");
        assert!(page.contains(r##"<a class="skip" href="#main">"##), "{uri}");
        let menu_at = page.find(r#"<nav aria-label="Menu">"#).unwrap();
        let main_at = page.find(r#"<main id="main""#).unwrap();
        assert!(menu_at < main_at, "{uri}");
        for item in [
            "Home",
            "Threads",
            "Proposals",
            "Actions",
            "Members",
            "Get help",
        ] {
            assert!(
                page[menu_at..main_at].contains(&format!(" {item}</a>")),
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
            ("csrf", &f.state.token()),
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
            ("csrf", &f.state.csrf_token()),
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
    // The message, and this device's encryption key, published once with its first write so that
    // others can make it a reader of sealed threads.
    assert_eq!(entry_count(&f), before + 2);

    let page = text(send(&f.state, get(&f.state, &format!("/threads/{t}"))).await).await;
    assert!(page.contains("Who needs a pass?"));
    assert!(page.contains("I need one. &#60;b&#62;Thanks&#60;/b&#62; &#38; see you"));
    assert!(page.contains("on 1 January 2026 at 01:00 UTC"));

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
        sync: None,
        lan: None,
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
    let proposal = {
        let (home, mut g) = open_group(&f);
        let key = home.device_key(None).unwrap();
        let p = home
            .append(
                &mut g,
                &key,
                Body::Proposal {
                    thread: f.thread,
                    title: "Summer trip".into(),
                    text: "A day trip to the coast in July, paid from the events budget.".into(),
                    easy_read: "We go to the sea in July.".into(),
                    rule: Rule::Consent,
                    quorum: 2,
                    effect: None,
                    closes: None,
                },
                T0 + 200_000,
            )
            .unwrap();
        home.append(
            &mut g,
            &DeviceKey::from_secret(&[1; 32]),
            Body::Stance {
                proposal: p,
                stance: roundtable_core::StanceKind::Agree,
                reason: "I love the sea".into(),
                on_behalf: None,
            },
            T0 + 210_000,
        )
        .unwrap();
        home.append(
            &mut g,
            &key,
            Body::Action {
                thread: f.thread,
                text: "Book the coach".into(),
                owner: DeviceKey::from_secret(&[2; 32]).device_id(),
                due: Some("2026-06-30".into()),
            },
            T0 + 220_000,
        )
        .unwrap();
        p
    };
    for (name, uri) in [
        ("home", "/".to_string()),
        ("threads", "/threads".into()),
        ("thread", format!("/threads/{t}")),
        ("write", format!("/threads/{t}/write")),
        ("new_thread", "/threads/new".into()),
        ("propose", format!("/threads/{t}/propose")),
        ("proposals", "/proposals".into()),
        ("proposal", format!("/proposals/{proposal}")),
        ("actions", "/actions".into()),
        ("members", "/members".into()),
        ("help", "/help".into()),
        ("words", "/words".into()),
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
                    ("csrf", &f.state.csrf_token()),
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
    assert!(page.contains("Ben&#39;s health</h1>"), "{page}");
    assert!(page.contains("This thread is sealed"));
    assert!(page.contains("It is about one member&#39;s health"));
    assert!(page.contains("<strong>Its readers:</strong> Ben, Chloe"));
    assert!(page.contains("You are not one of its readers, so its messages are not shown to you."));
    // No words of it, and a way to ask.
    assert!(!page.contains("<h2>Messages</h2>"));
    assert!(page.contains("Ask the readers"));
    assert!(!page.contains("Write a message</a>"));
    // It is listed, marked sealed; a non-reader cannot write in it.
    let list = text(send(&f.state, get(&f.state, "/threads")).await).await;
    assert!(list.contains(r#"<span class="tag">Sealed</span>"#));
    let r = send(&f.state, get(&f.state, &format!("/threads/{thread}/write"))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

fn open_group(f: &Fixture) -> (Home, roundtable_store::Group) {
    let home = Home::open(&f.home_dir).unwrap();
    let (gid, _) = home.groups().unwrap()[0].clone();
    let g = home.open_group(&gid).unwrap();
    (home, g)
}

fn location(r: &Response<HttpBody>) -> String {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Issue 19: the day the group means to decide by is chosen when proposing, kept in the record,
/// said in words on the proposal and on the list, and a wrong choice changes nothing.
#[tokio::test]
async fn a_closing_day_is_chosen_when_proposing_and_said_in_words() {
    let f = fixture();
    let (t, csrf) = (f.thread.to_string(), f.state.csrf_token().to_string());
    let form = |closes: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("title", "Summer trip".to_string()),
            ("easy_read", "We go to the sea in July.".to_string()),
            ("closes", closes.to_string()),
        ]
    };
    let send_form = |fields: Vec<(&'static str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(&f.state, &format!("/threads/{t}/propose"), &fields)
    };
    let page = text(send(&f.state, get(&f.state, &format!("/threads/{t}/propose"))).await).await;
    assert!(page.contains("When should the group decide?"), "{page}");
    assert!(
        page.contains(r#"value="7" checked"#),
        "a week is the default: {page}"
    );
    // A choice the form does not offer: refused in words, the typed words kept, nothing written.
    let before = entry_count(&f);
    let page = text(send(&f.state, send_form(form("someday"))).await).await;
    assert!(
        page.contains("Please choose when the group should decide."),
        "{page}"
    );
    assert!(page.contains(r#"value="Summer trip""#), "{page}");
    assert_eq!(entry_count(&f), before);
    // In 3 days: the record holds the day, the page says it in words.
    let r = send(&f.state, send_form(form("3"))).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let pid: roundtable_core::EntryId = at.trim_start_matches("/proposals/").parse().unwrap();
    let (_, g) = open_group(&f);
    let Some((_, m)) = g.record.entry(&pid) else {
        panic!("the proposal is in the record")
    };
    let Body::Proposal { closes, .. } = &m.body else {
        panic!("a proposal")
    };
    let day = closes.clone().expect("a closing day");
    assert_eq!(day.len(), 10, "YYYY-MM-DD: {day}");
    drop(g);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("<strong>It closes on "), "{page}");
    let list = text(send(&f.state, get(&f.state, "/proposals")).await).await;
    assert!(list.contains("It closes on "), "{list}");
    // No date: nothing is said, and nothing is kept.
    let r = send(&f.state, send_form(form("none"))).await;
    let page = text(send(&f.state, get(&f.state, &location(&r))).await).await;
    assert!(!page.contains("It closes"), "{page}");
}

#[tokio::test]
async fn a_proposal_easy_read_first_stances_with_reasons_understanding_and_outcome() {
    let f = fixture();
    let (t, csrf) = (f.thread.to_string(), f.state.csrf_token().to_string());
    // Without the easy read version nothing is written and the form says why, keeping the words.
    let before = entry_count(&f);
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{t}/propose"),
                &[
                    ("csrf", &csrf),
                    ("title", "Summer trip"),
                    ("easy_read", " "),
                    ("text", "Full"),
                ],
            ),
        )
        .await,
    )
    .await;
    assert!(
        page.contains("Please write the easy read version"),
        "{page}"
    );
    assert!(page.contains(r#"value="Summer trip""#));
    assert_eq!(entry_count(&f), before);

    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/propose"),
            &[
                ("csrf", &csrf),
                ("title", "Summer trip"),
                ("easy_read", "We go to the sea in July."),
                ("text", "The board proposes a day trip to the coast in July, paid from the events budget."),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let pid = at.trim_start_matches("/proposals/").to_string();
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    let easy = page.find("We go to the sea in July.").unwrap();
    let full = page.find("The board proposes").unwrap();
    let summary = page.find("<summary>Read the full text</summary>").unwrap();
    assert!(
        easy < summary && summary < full,
        "easy read first, the full text on request"
    );
    for word in ["Agree", "Not sure", "Disagree", "Block"] {
        assert!(page.contains(&format!("<strong>{word}</strong>")), "{word}");
    }
    for picture in ["agree", "not-sure", "disagree", "block"] {
        assert!(
            page.contains(&format!("/static/pictures/{picture}.svg")),
            "{picture}"
        );
    }

    // Disagree without a reason: refused in words, the choice kept, nothing written.
    let before = entry_count(&f);
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/proposals/{pid}/stance"),
                &[("csrf", &csrf), ("stance", "disagree"), ("reason", "")],
            ),
        )
        .await,
    )
    .await;
    assert!(page.contains("Please say why. A reason is needed when you disagree or block."));
    assert!(page.contains(r#"value="disagree" checked"#));
    assert_eq!(entry_count(&f), before);
    // With a reason it is recorded and shown with its reason.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/proposals/{pid}/stance"),
            &[
                ("csrf", &csrf),
                ("stance", "disagree"),
                ("reason", "July is too hot for me"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("<strong>You</strong>: Disagree"));
    assert!(page.contains("Why: July is too hot for me"));
    assert!(page.contains("You said: <strong>Disagree</strong>"));

    // Ben says what he understood; Ana, the author, confirms it.
    let proposal: EntryId = pid.parse().unwrap();
    let understanding = {
        let (home, mut g) = open_group(&f);
        home.append(
            &mut g,
            &DeviceKey::from_secret(&[1; 32]),
            Body::Understand {
                target: proposal,
                text: "We all go to the beach in summer".into(),
            },
            T0 + 400_000,
        )
        .unwrap()
    };
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains(
        "understood this as: <span class=\"text\">We all go to the beach in summer</span>"
    ));
    assert!(page.contains("Waiting for Ana to answer."));
    assert!(page.contains(&format!(r#"action="/confirm/{understanding}""#)));
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/confirm/{understanding}"),
            &[("csrf", &csrf), ("back", &at)],
        ),
    )
    .await;
    assert_eq!(location(&r), at);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("Ana said: Yes, that&#39;s right."), "{page}");
    assert!(!page.contains(&format!(r#"action="/confirm/{understanding}""#)));

    // One view of the two needed: the page says so, offers no close, and a close is refused.
    assert!(
        page.contains("1 of 3 members has given a view. 1 more is needed before it can be closed.")
    );
    assert!(!page.contains("Close the proposal…"));
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/proposals/{pid}/close"),
            &[("csrf", &csrf), ("outcome", "Ana decides alone.")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = text(r).await;
    assert!(refused.contains("It cannot be closed yet."), "{refused}");
    assert_eq!(entry_count(&f), before);
    // Chloe's view arrives: now it can be closed. Under consent a disagree does not stop it.
    {
        let (home, mut g) = open_group(&f);
        home.append(
            &mut g,
            &DeviceKey::from_secret(&[2; 32]),
            Body::Stance {
                proposal,
                stance: roundtable_core::StanceKind::Abstain,
                reason: String::new(),
                on_behalf: None,
            },
            T0 + 450_000,
        )
        .unwrap();
    }
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("Close the proposal…"), "{page}");
    assert!(
        page.contains("2 of 3 have answered; waiting for Ben."),
        "{page}"
    );
    // Closing is a step of its own, apart from the answers, that names who has not answered.
    assert!(!page.contains(r#"name="outcome""#), "{page}");
    let check = text(send(&f.state, get(&f.state, &format!("/proposals/{pid}/close"))).await).await;
    assert!(
        check.contains("Are you sure? Ben has not answered."),
        "{check}"
    );
    assert!(check.contains(r#"name="outcome""#), "{check}");
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/proposals/{pid}/close"),
            &[("csrf", &csrf), ("outcome", "We will ask again in spring.")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("It is decided: it passed"), "{page}");
    assert!(page.contains("0 agree, 1 not sure, 1 disagree, 0 block."));
    assert!(page.contains("We will ask again in spring."));
    assert!(!page.contains("Give my answer"));
    let list = text(send(&f.state, get(&f.state, "/proposals")).await).await;
    assert!(list.contains("It passed."));
    // A redirect target from the form never leaves this site.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/understand/{proposal}"),
            &[
                ("csrf", &csrf),
                ("text", "Trip in July"),
                ("back", "//evil.example/"),
            ],
        ),
    )
    .await;
    assert_eq!(location(&r), "/");
}

#[tokio::test]
async fn actions_who_what_by_when_then_you_said_we_did() {
    let f = fixture();
    let (t, csrf) = (f.thread.to_string(), f.state.csrf_token().to_string());
    let ben = DeviceKey::from_secret(&[1; 32]).device_id().to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/action"),
            &[
                ("csrf", &csrf),
                ("text", "Ask the council about bus passes"),
                ("owner", &ben),
                ("due", "2026-03-31"),
            ],
        ),
    )
    .await;
    assert_eq!(location(&r), format!("/threads/{t}"));
    let page = text(send(&f.state, get(&f.state, "/actions")).await).await;
    let todo = page.find("<h2>To do</h2>").unwrap();
    let did = page.find("<h2>You said, we did</h2>").unwrap();
    let at = page.find("Ask the council about bus passes").unwrap();
    assert!(todo < at && at < did);
    assert!(page.contains("<strong>Who:</strong> Ben"));
    assert!(page.contains("<strong>By when:</strong> 31 March 2026"));
    assert!(page.contains("Tell Ben it looks done"), "{page}");
    assert!(page.contains("Only Ben can say it is done."), "{page}");
    let id = {
        let (_, g) = open_group(&f);
        *g.record
            .causal_order()
            .iter()
            .rev()
            .find(|h| matches!(g.record.entry(h).unwrap().1.body, Body::Action { .. }))
            .unwrap()
    };
    let r = send(
        &f.state,
        post(&f.state, &format!("/actions/{id}/done"), &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(location(&r), "/actions");
    // Ana is not its owner: her word is a suggestion, and it stays to do until Ben says so.
    let page = text(send(&f.state, get(&f.state, "/actions")).await).await;
    let did = page.find("<h2>You said, we did</h2>").unwrap();
    let at = page.find("Ask the council about bus passes").unwrap();
    assert!(at < did, "still to do: {page}");
    assert!(
        page.contains("Ana said it is done. It counts as done when Ben says so too."),
        "{page}"
    );
    assert!(
        !page.contains("Tell Ben it looks done"),
        "said once: {page}"
    );
    assert!(page.contains("Nothing is done yet."), "{page}");
    // Ben, the owner, says it is done (on his own device).
    {
        let (home, mut g) = open_group(&f);
        home.append(
            &mut g,
            &DeviceKey::from_secret(&[1; 32]),
            Body::ActionDone { action: id },
            T0 + 3_700_000,
        )
        .unwrap();
    }
    let page = text(send(&f.state, get(&f.state, "/actions")).await).await;
    let did = page.find("<h2>You said, we did</h2>").unwrap();
    assert!(
        page[did..].contains("<strong>We did:</strong> Ask the council about bus passes (Ben).")
    );
    assert!(
        page[did..].contains("Done: Ben said so on 1 January 2026 at 01:01 UTC."),
        "{page}"
    );
    assert!(page.contains("Nothing is waiting to be done."));
    // An action with no owner chosen is refused in words.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/action"),
            &[("csrf", &csrf), ("text", "Something"), ("owner", "")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("Please choose who will do it."));
}

/// Issue 19: the owner takes back their own "done" for a day, on the page; nobody else can.
#[tokio::test]
async fn the_owner_takes_back_a_done_within_a_day_and_nobody_else_can() {
    let f = fixture();
    let (t, csrf) = (f.thread.to_string(), f.state.csrf_token().to_string());
    let ana = open_group(&f).0.device_id().unwrap().to_string();
    send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{t}/action"),
            &[("csrf", &csrf), ("text", "Book the room"), ("owner", &ana)],
        ),
    )
    .await;
    let action = {
        let (_, g) = open_group(&f);
        *g.record
            .causal_order()
            .iter()
            .rev()
            .find(|h| matches!(g.record.entry(h).unwrap().1.body, Body::Action { .. }))
            .unwrap()
    };
    let page = text(send(&f.state, get(&f.state, "/actions")).await).await;
    assert!(page.contains("I have done it"), "{page}");
    send(
        &f.state,
        post(
            &f.state,
            &format!("/actions/{action}/done"),
            &[("csrf", &csrf)],
        ),
    )
    .await;
    let page = text(send(&f.state, get(&f.state, "/actions")).await).await;
    assert!(page.contains("Done: Ana said so"), "{page}");
    assert!(page.contains("Take it back: it is not done"), "{page}");
    let done = {
        let (_, g) = open_group(&f);
        g.record.action_state(&action).unwrap().done.unwrap().entry
    };
    // Ben cannot take back Ana's done: the rules refuse it, and nothing is stored.
    {
        let (home, mut g) = open_group(&f);
        let e = home
            .append(
                &mut g,
                &DeviceKey::from_secret(&[1; 32]),
                Body::ActionUndo { done },
                T0 + 3_600_001,
            )
            .unwrap_err();
        assert!(e.to_string().contains("only the member who said"), "{e}");
    }
    let before = entry_count(&f);
    let undo = |at: String, done: EntryId| {
        let st = f.state.clone();
        let csrf = csrf.clone();
        async move {
            let form = [("csrf", csrf.as_str()), ("done", &done.to_string())];
            send(&st, post(&st, &format!("/actions/{at}/undo"), &form)).await
        }
    };
    // The "done" must be one of the action the address names.
    let r = undo(t.clone(), done).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(entry_count(&f), before);
    let r = undo(action.to_string(), done).await;
    assert_eq!(location(&r), "/actions");
    assert_eq!(entry_count(&f), before + 1);
    let page = text(send(&f.state, get(&f.state, "/actions")).await).await;
    assert!(page.contains("Nothing is done yet."), "{page}");
    assert!(page.contains("I have done it"), "open again: {page}");
    // A wrong entry is refused in words and writes nothing.
    let r = undo(action.to_string(), action).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(entry_count(&f), before + 1);
}

#[tokio::test]
async fn a_reader_reads_and_writes_a_sealed_thread_and_the_words_stay_sealed() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let thread = {
        let (home, mut g) = open_group(&f);
        let key = home.device_key(None).unwrap();
        let mine = roundtable_seal::EncSecret::from_bytes(&home.enc_secret(None).unwrap());
        home.append(
            &mut g,
            &key,
            Body::Profile {
                enc_key: mine.public().unwrap(),
            },
            T0 + 150_000,
        )
        .unwrap();
        let ben = DeviceKey::from_secret(&[1; 32]);
        let enc_key = roundtable_seal::EncSecret::generate()
            .unwrap()
            .public()
            .unwrap();
        home.append(&mut g, &ben, Body::Profile { enc_key }, T0 + 160_000)
            .unwrap();
        let body = roundtable_seal::thread::start(
            &g.record,
            "Contract talks",
            "The contract is still being agreed",
            &[key.device_id(), ben.device_id()],
        )
        .unwrap();
        home.append(&mut g, &key, body, T0 + 170_000).unwrap()
    };
    let words = "The council offered two years.";
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{thread}/check"),
                &[("csrf", &csrf), ("text", words)],
            ),
        )
        .await,
    )
    .await;
    assert!(
        page.contains("Only the thread&#39;s readers: Ana, Ben."),
        "{page}"
    );
    assert!(page.contains("but not what it says"));
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/threads/{thread}/share"),
            &[("csrf", &csrf), ("text", words), ("action", "share")],
        ),
    )
    .await;
    assert_eq!(location(&r), format!("/threads/{thread}"));
    let page = text(send(&f.state, get(&f.state, &format!("/threads/{thread}"))).await).await;
    assert!(page.contains("You are one of its readers."));
    assert!(page.contains(words), "{page}");
    assert!(page.contains("Write a message</a>"));
    // In the record it is ciphertext: the words are in no stored entry.
    let (home, g) = open_group(&f);
    let last = g.record.causal_order().last().copied().unwrap();
    assert!(matches!(
        g.record.entry(&last).unwrap().1.body,
        Body::Sealed { .. }
    ));
    for e in home.entries(&g.id()).unwrap() {
        let bytes = e.entry.encode();
        assert!(!bytes.windows(words.len()).any(|w| w == words.as_bytes()));
    }
}

#[tokio::test]
async fn the_check_step_advises_on_hard_words_and_long_sentences_but_never_blocks() {
    let f = fixture();
    let (t, csrf) = (f.thread.to_string(), f.state.csrf_token().to_string());
    let words = "We need a quorum. This sentence has far too many words in it for most of the people who will read it later.";
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{t}/check"),
                &[("csrf", &csrf), ("text", words)],
            ),
        )
        .await,
    )
    .await;
    assert!(page.contains("Could it be clearer?"));
    assert!(page.contains(
        "“quorum” can be hard to understand. You could say: “how many people must take part”."
    ));
    assert!(page.contains("This sentence has 19 words"));
    assert!(page.contains(r#"value="share">Share it</button>"#));
    // Members change the list; the next check uses it.
    let r = send(
        &f.state,
        post(
            &f.state,
            "/words",
            &[
                ("csrf", &csrf),
                ("text", "# ours\nbudget = money we can spend\n"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(text(r).await.contains("The list is saved."));
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{t}/check"),
                &[("csrf", &csrf), ("text", "The budget. A quorum.")],
            ),
        )
        .await,
    )
    .await;
    assert!(page.contains("“budget” can be hard"));
    assert!(!page.contains("“quorum”"));
    let json = text(send(&f.state, get(&f.state, "/glossary.json")).await).await;
    assert_eq!(json, r#"[{"word":"budget","plain":"money we can spend"}]"#);
    // A plain message gets no advice at all.
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{t}/check"),
                &[("csrf", &csrf), ("text", "See you soon.")],
            ),
        )
        .await,
    )
    .await;
    assert!(!page.contains("Could it be clearer?"));
}

#[tokio::test]
async fn home_shows_what_is_new_since_the_last_visit_and_whether_it_is_shared() {
    let f = fixture();
    // The first visit lists what others wrote: Ben's agree to Chloe joining.
    let page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(
        page.contains("Ben answered “Chloe joins the group”."),
        "{page}"
    );
    assert!(page.contains("Not shared yet – no connection"));
    assert!(page.contains("/static/pictures/not-shared.svg"));
    // Ben writes (as if synced in); the next launch lists it, newest first, with a link.
    {
        let (home, mut g) = open_group(&f);
        let ben = DeviceKey::from_secret(&[1; 32]);
        home.append(
            &mut g,
            &ben,
            Body::Message {
                thread: f.thread,
                text: "I do".into(),
            },
            T0 + 500_000,
        )
        .unwrap();
        home.append(
            &mut g,
            &ben,
            Body::Thread {
                title: "Garden day".into(),
            },
            T0 + 600_000,
        )
        .unwrap();
        // This device last exchanged with Ben after its own last entry.
        home.record_peer(&ben.device_id(), T0 + 700_000).unwrap();
    }
    roundtable_web::show_times_in_utc();
    let relaunch = AppState::new(
        &WebConfig {
            home_dir: f.home_dir.clone(),
            passphrase: None,
            port: PORT,
            sync: None,
            lan: None,
        },
        PORT,
    )
    .unwrap();
    let page = text(send(&relaunch, get(&relaunch, "/")).await).await;
    let garden = page
        .find("Ben started the thread “Garden day”.")
        .expect("new thread listed");
    let wrote = page
        .find("Ben wrote in “Bus passes &#60;for&#62; the summer”.")
        .unwrap_or_else(|| panic!("new message listed: {page}"));
    assert!(garden < wrote, "newest first");
    assert!(page.contains(&format!(r#"href="/threads/{}""#, f.thread)));
    assert!(page.contains("Shared with the group"));
    assert!(page.contains("Last shared with Ben&#39;s device on 1 January 2026 at 00:11 UTC."));
    // Reloading keeps the list; "I have seen these" clears it.
    let page = text(send(&relaunch, get(&relaunch, "/")).await).await;
    assert!(page.contains("Garden day"));
    let r = send(
        &relaunch,
        post(&relaunch, "/seen", &[("csrf", &relaunch.csrf_token())]),
    )
    .await;
    assert_eq!(location(&r), "/");
    let page = text(send(&relaunch, get(&relaunch, "/")).await).await;
    assert!(page.contains("Nothing new since your last visit."));
}

#[tokio::test]
async fn a_device_with_several_groups_chooses_which_one_to_show() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(!page.contains("Choose another group"));
    let other = {
        let home = Home::open(&f.home_dir).unwrap();
        let key = home.device_key(None).unwrap();
        let g = home
            .create_group(&key, "Carers' Forum", Rule::Majority, 1, "Ana", "", T0)
            .unwrap();
        g.id()
    };
    let page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(page.contains(r#"<a href="/groups">Choose another group</a>"#));
    let page = text(send(&f.state, get(&f.state, "/groups")).await).await;
    assert!(page.contains("Carers&#39; Forum") && page.contains("Riverside Partnership Board"));
    let r = send(
        &f.state,
        post(
            &f.state,
            "/groups",
            &[("csrf", &csrf), ("group", &other.to_string())],
        ),
    )
    .await;
    assert_eq!(location(&r), "/");
    let page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(page.contains("<h1>Carers&#39; Forum</h1>"), "{page}");
    // An unknown group is "not found", and the choice stays.
    let r = send(
        &f.state,
        post(
            &f.state,
            "/groups",
            &[("csrf", &csrf), ("group", &"ab".repeat(32))],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(page.contains("<h1>Carers&#39; Forum</h1>"));
}

#[tokio::test]
async fn a_sealed_thread_is_started_here_and_a_reader_answers_a_request_to_read() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let (ben, chloe) = (
        DeviceKey::from_secret(&[1; 32]),
        DeviceKey::from_secret(&[2; 32]),
    );
    let ben_field = format!("reader-{}", ben.device_id());
    let form = |reason: &'static str| -> Vec<(String, String)> {
        vec![
            ("csrf".into(), csrf.clone()),
            ("title".into(), "Ben's support plan".into()),
            ("who".into(), "sealed".into()),
            ("reason".into(), reason.into()),
            (ben_field.clone(), "on".into()),
        ]
    };
    let send_form = |pairs: Vec<(String, String)>| {
        let st = f.state.clone();
        async move {
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            send(&st, post(&st, "/threads/new", &refs)).await
        }
    };
    // No reason: refused in words, the choices kept.
    let page = text(send_form(form("")).await).await;
    assert!(
        page.contains("Please say why only some members can read it."),
        "{page}"
    );
    assert!(page.contains(&format!(r#"name="{ben_field}" value="on" checked"#)));
    // Ben's device has not published its key: said in words, nothing sealed is written.
    let page = text(send_form(form("It is about Ben's health")).await).await;
    assert!(page.contains("Ben cannot be made a reader yet"), "{page}");
    let (home, mut g) = open_group(&f);
    assert!(
        g.record
            .threads()
            .iter()
            .all(|t| !matches!(g.record.entry(t).unwrap().1.body, Body::SealedThread { .. }))
    );
    for k in [&ben, &chloe] {
        let enc_key = roundtable_seal::EncSecret::generate()
            .unwrap()
            .public()
            .unwrap();
        home.append(&mut g, k, Body::Profile { enc_key }, T0 + 150_000)
            .unwrap();
    }
    drop((home, g));
    let r = send_form(form("It is about Ben's health")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let thread: EntryId = at.trim_start_matches("/threads/").parse().unwrap();
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(
        page.contains("<strong>Its readers:</strong> Ana, Ben"),
        "{page}"
    );
    assert!(page.contains("It is about Ben&#39;s health"));

    // Chloe asks; Ana, a reader, sees the request with both answers.
    {
        let (home, mut g) = open_group(&f);
        home.append(
            &mut g,
            &chloe,
            Body::Ask {
                thread,
                why: "I help Ben with his plan".into(),
            },
            T0 + 500_000,
        )
        .unwrap();
    }
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("May Chloe read it?"), "{page}");
    assert!(
        page.contains(
            "Every reader, and everyone who was one, must agree before Chloe can read it."
        )
    );
    assert!(page.contains("Yes, I agree"), "{page}");
    let answer = format!("/threads/{thread}/readers/{}", chloe.device_id());
    // Saying no needs a reason.
    let r = send(
        &f.state,
        post(
            &f.state,
            &answer,
            &[("csrf", &csrf), ("answer", "decline"), ("reason", "")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Ana agrees; Chloe reads only once Ben, the other reader, agrees too.
    let agree = || post(&f.state, &answer, &[("csrf", &csrf), ("answer", "add")]);
    let r = send(&f.state, agree()).await;
    assert_eq!(location(&r), at);
    let is_reader = |m: &DeviceKey| {
        let (_, g) = open_group(&f);
        g.record
            .sealed_state(&thread)
            .unwrap()
            .readers
            .contains(&m.device_id())
    };
    assert!(!is_reader(&chloe), "one reader cannot let Chloe in alone");
    // Another reader's device writes its yes (as it would after a sync).
    let agree_as = |by: &DeviceKey, member: roundtable_core::DeviceId, at: i64| {
        let (home, mut g) = open_group(&f);
        home.append(&mut g, by, Body::ReaderAgree { thread, member }, at)
            .unwrap();
    };
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("You agreed."), "{page}");
    assert!(page.contains("Still waiting for Ben."), "{page}");
    assert!(!page.contains("Yes, I agree"), "{page}");
    assert!(page.contains("Ana agreed that Chloe may read it"), "{page}");
    agree_as(&ben, chloe.device_id(), T0 + 600_000);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("You and Ben agreed."), "{page}");
    assert!(
        page.contains("Everyone agreed: let Chloe read it now"),
        "{page}"
    );
    let r = send(&f.state, agree()).await;
    assert_eq!(location(&r), at);
    assert!(is_reader(&chloe));
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("<strong>Its readers:</strong> Ana, Ben, Chloe"));
    assert!(!page.contains("May Chloe read it?"));

    // A reader takes a reader out, and lets them in again, from the thread's own page.
    assert!(page.contains("Take a reader out"), "{page}");
    let readers = format!("/threads/{thread}/readers");
    let ben_id = ben.device_id().to_string();
    for bad in [
        vec![
            ("csrf", csrf.as_str()),
            ("change", "remove"),
            ("member", "nobody"),
        ],
        vec![
            ("csrf", csrf.as_str()),
            ("change", "shout"),
            ("member", ben_id.as_str()),
        ],
    ] {
        let r = send(&f.state, post(&f.state, &readers, &bad)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let change = |what: &'static str| {
        let (st, csrf, readers, ben_id) = (
            f.state.clone(),
            csrf.clone(),
            readers.clone(),
            ben_id.clone(),
        );
        async move {
            let form = [
                ("csrf", csrf.as_str()),
                ("change", what),
                ("member", &ben_id),
            ];
            send(&st, post(&st, &readers, &form)).await
        }
    };
    let r = change("remove").await;
    assert_eq!(location(&r), at);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(
        page.contains("<strong>Its readers:</strong> Ana, Chloe"),
        "{page}"
    );
    assert!(page.contains("Let another member read it"), "{page}");
    assert!(
        page.contains("Ana let Chloe read it on 1 January 2026 at"),
        "who let whom in: {page}"
    );
    assert!(
        page.contains("Ana took Ben out of the readers on 1 January 2026 at"),
        "{page}"
    );
    // Letting Ben read again: Ana agrees, and Chloe (now a reader) is asked; Chloe lets him in.
    let r = change("add").await;
    assert_eq!(location(&r), at);
    assert!(!is_reader(&ben));
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("May Ben read it?"), "{page}");
    assert!(page.contains("Still waiting for Chloe."), "{page}");
    agree_as(&chloe, ben.device_id(), T0 + 900_000);
    let r = change("add").await;
    assert_eq!(location(&r), at);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(
        page.contains("<strong>Its readers:</strong> Ana, Ben, Chloe"),
        "{page}"
    );
    assert!(page.contains("Chloe agreed that Ben may read it"), "{page}");
}

#[tokio::test]
async fn members_page_asks_the_group_to_add_or_remove_never_decides_alone() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/members")).await).await;
    assert!(page.contains(r#"action="/members/propose""#), "{page}");
    let ben = DeviceKey::from_secret(&[1; 32]).device_id().to_string();
    assert!(page.contains(&format!(r#"action="/members/{ben}/remove""#)));
    // A wrong id is refused in words, and nothing is written.
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/propose",
            &[("csrf", &csrf), ("member_id", "abc"), ("name", "Dee")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(entry_count(&f), before);
    // Asking for Dee: a proposal with Ana's agree; Dee is not a member until the others agree.
    let dee = DeviceKey::from_secret(&[9; 32]).device_id().to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/propose",
            &[
                ("csrf", &csrf),
                ("member_id", &dee),
                ("name", "Dee"),
                ("needs", "pictures, short meetings"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("Should Dee join the group?"), "{page}");
    assert!(page.contains("It is about the group itself"), "{page}");
    assert!(page.contains("1 of 3 members has given a view."), "{page}");
    // What passing it does, in plain words with a picture, and the newcomer's needs.
    assert!(page.contains("What changes if it passes"), "{page}");
    assert!(
        page.contains("Dee becomes a member, with an equal say"),
        "{page}"
    );
    assert!(
        page.contains("What helps Dee take part, in their own words: pictures, short meetings"),
        "{page}"
    );
    assert!(page.contains("/static/pictures/members.svg"), "{page}");
    let (_, g) = open_group(&f);
    assert!(!g.record.governance().active(&dee.parse().unwrap()));
    drop(g);
    let members = text(send(&f.state, get(&f.state, "/members")).await).await;
    assert!(members.contains("The group is asked"), "{members}");
    assert!(members.contains("Should Dee join the group?"));
    // Asking whether Ben should go: a proposal, and Ben stays a member.
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/members/{ben}/remove"),
            &[("csrf", &csrf)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&f.state, get(&f.state, &location(&r))).await).await;
    assert!(page.contains("Should Ben stop being a member?"), "{page}");
    assert!(page.contains("only Ben may block it"), "{page}");
    assert!(page.contains("Ben stops being a member."), "{page}");
    let (_, g) = open_group(&f);
    assert!(g.record.governance().active(&ben.parse().unwrap()));
    // Without the form's token nothing is written.
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/propose",
            &[("csrf", "wrong"), ("member_id", &dee), ("name", "Dee")],
        ),
    )
    .await;
    assert_ne!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(entry_count(&f), before);
}

/// Issue 15: a group is removed from this device only after a confirmation page, and only that
/// group goes.
#[tokio::test]
async fn a_group_is_forgotten_from_this_device_after_a_confirmation_step() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let before = entry_count(&f);
    let (mine, other) = {
        let home = Home::open(&f.home_dir).unwrap();
        let mine = home.groups().unwrap();
        let key = home.device_key(None).unwrap();
        let g = home
            .create_group(&key, "Carers' Forum", Rule::Majority, 1, "Ana", "", T0)
            .unwrap();
        (mine, g.id())
    };
    let page = text(send(&f.state, get(&f.state, "/groups")).await).await;
    assert!(page.contains(r#"action="/groups/forget""#), "{page}");
    // The first step only asks.
    let o = other.to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            "/groups/forget",
            &[("csrf", &csrf), ("group", &o)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(r).await;
    assert!(
        page.contains("Remove “Carers&#39; Forum” from this device?"),
        "{page}"
    );
    assert!(page.contains("Other members keep the group"), "{page}");
    assert!(page.contains(r#"name="confirm" value="yes""#), "{page}");
    assert_eq!(Home::open(&f.home_dir).unwrap().groups().unwrap().len(), 2);
    // Without the CSRF token: refused.
    let r = send(
        &f.state,
        post(
            &f.state,
            "/groups/forget",
            &[("csrf", "x"), ("group", &o), ("confirm", "yes")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Confirmed: gone, and only it.
    let r = send(
        &f.state,
        post(
            &f.state,
            "/groups/forget",
            &[("csrf", &csrf), ("group", &o), ("confirm", "yes")],
        ),
    )
    .await;
    assert_eq!(location(&r), "/");
    let home = Home::open(&f.home_dir).unwrap();
    let left = home.groups().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left, mine);
    assert!(home.entries(&other).unwrap().is_empty());
    drop(home);
    assert_eq!(entry_count(&f), before, "the group shown is whole");
    let page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(page.contains("Riverside Partnership Board"), "{page}");
}

/// Issue 15: a reader whose keys are not unlocked is told to give the passphrase, never that they
/// are not a reader.
#[tokio::test]
async fn a_reader_without_unlocked_keys_is_asked_for_the_passphrase() {
    let f = fixture();
    let (thread, key) = {
        let (home, mut g) = open_group(&f);
        let key = home.device_key(None).unwrap();
        let enc = roundtable_seal::EncSecret::from_bytes(&home.enc_secret(None).unwrap());
        let enc_key = enc.public().unwrap();
        if g.record.profile_key(&key.device_id()) != Some(enc_key) {
            home.append(&mut g, &key, Body::Profile { enc_key }, T0 + 200_000)
                .unwrap();
        }
        let body = roundtable_seal::thread::start(
            &g.record,
            "Ana's health",
            "It is private",
            &[key.device_id()],
        )
        .unwrap();
        (home.append(&mut g, &key, body, T0 + 300_000).unwrap(), key)
    };
    let locked = AppState::with_key(f.home_dir.clone(), key, PORT, "t".repeat(64));
    let page = text(send(&locked, get(&locked, &format!("/threads/{thread}"))).await).await;
    assert!(
        page.contains("Give your passphrase to read this sealed thread"),
        "{page}"
    );
    assert!(!page.contains("You are not one of its readers"), "{page}");
    // Unlocked, the same reader is simply a reader.
    let page = text(send(&f.state, get(&f.state, &format!("/threads/{thread}"))).await).await;
    assert!(page.contains("You are one of its readers.</p>"), "{page}");
    assert!(!page.contains("Give your passphrase"), "{page}");
}

/// A member's name and needs are theirs: changed on the page by them, shown to everyone, and an
/// empty name is refused with nothing written.
#[tokio::test]
async fn a_member_changes_their_own_name_and_needs_on_the_page() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/members")).await).await;
    assert!(page.contains(r#"action="/members/me""#), "{page}");
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/me",
            &[("csrf", &csrf), ("name", "  "), ("needs", "large print")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("Please write your name first"));
    assert_eq!(entry_count(&f), before);
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/me",
            &[
                ("csrf", &csrf),
                ("name", "Ana B"),
                ("needs", "large print, <b>short</b> meetings"),
            ],
        ),
    )
    .await;
    assert_eq!(location(&r), "/members");
    let (_, g) = open_group(&f);
    let me = g
        .record
        .members()
        .into_iter()
        .find(|m| m.name == "Ana B")
        .expect("Ana's new name is in the record");
    assert!(!g.record.members().iter().any(|m| m.name == "Ana"));
    assert_eq!(me.needs, "large print, <b>short</b> meetings");
    drop(g);
    let page = text(send(&f.state, get(&f.state, "/members")).await).await;
    assert!(
        page.contains(
            "What helps Ana B:</strong> large print, &#60;b&#62;short&#60;/b&#62; meetings"
        ),
        "{page}"
    );
    // Without the form's token nothing is written.
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/me",
            &[("csrf", "x"), ("name", "Mallory")],
        ),
    )
    .await;
    assert_ne!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(entry_count(&f), before);
}

fn state_for(home_dir: &std::path::Path, passphrase: Option<&str>) -> AppState {
    roundtable_web::show_times_in_utc();
    AppState::new(
        &WebConfig {
            home_dir: home_dir.to_path_buf(),
            passphrase: passphrase.map(str::to_string),
            port: PORT,
            sync: None,
            lan: None,
        },
        PORT,
    )
    .unwrap()
}

/// A device with no home: every page leads to the welcome page; bad forms make nothing; a good one
/// sets the device up and starts a group, and the pages then work.
#[tokio::test]
async fn the_welcome_page_sets_up_a_new_device_and_starts_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let home_dir = dir.path().join("new-home");
    let st = state_for(&home_dir, None);
    let csrf = st.csrf_token().to_string();
    for path in ["/", "/threads", "/members", "/devices", "/audit", "/unlock"] {
        let r = send(&st, get(&st, path)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/welcome", "{path}");
    }
    let page = text(send(&st, get(&st, "/welcome")).await).await;
    assert!(page.contains("What is your name?"), "{page}");
    assert!(page.contains("What helps you take part?"), "{page}");
    assert!(page.contains(r#"type="password""#), "{page}");
    let long = "x".repeat(100_000);
    let bad: [(&[(&str, &str)], &str); 7] = [
        (
            &[("name", ""), ("choice", "start"), ("group", "Board")],
            "Please write your name",
        ),
        (
            &[("name", "Ana"), ("choice", "start"), ("group", "")],
            "what the group is called",
        ),
        (
            &[("name", &long), ("choice", "start"), ("group", "Board")],
            "shorter",
        ),
        (
            &[("name", "Ana"), ("choice", "join"), ("invitation", "")],
            "Please paste the invitation",
        ),
        (
            &[
                ("name", "Ana"),
                ("choice", "join"),
                ("invitation", "rtnotaticket"),
            ],
            "not an invitation Roundtable can read",
        ),
        (
            &[
                ("name", "Ana"),
                ("choice", "start"),
                ("group", "Board"),
                ("passphrase", "short"),
            ],
            "too short",
        ),
        (&[("name", "Ana"), ("choice", "nothing")], "Please choose"),
    ];
    for (form, words) in bad {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(form);
        let r = send(&st, post(&st, "/welcome", &f)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        let page = text(r).await;
        assert!(page.contains(words), "{words}: {page}");
        assert!(
            !home_dir.join("device.key").exists(),
            "nothing made for {form:?}"
        );
    }
    // Markup typed in is shown as text, never as markup.
    let r = send(
        &st,
        post(
            &st,
            "/welcome",
            &[
                ("csrf", &csrf),
                ("name", "<b>Ana</b>"),
                ("choice", "start"),
                ("group", ""),
            ],
        ),
    )
    .await;
    let page = text(r).await;
    assert!(
        page.contains("&lt;b&gt;Ana&lt;/b&gt;") || page.contains("&#60;b&#62;Ana"),
        "{page}"
    );
    assert!(!page.contains("<b>Ana</b>"), "{page}");
    // A form without the CSRF token is refused.
    let r = send(
        &st,
        post(
            &st,
            "/welcome",
            &[("name", "Ana"), ("choice", "start"), ("group", "Board")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!home_dir.join("device.key").exists());

    let r = send(
        &st,
        post(
            &st,
            "/welcome",
            &[
                ("csrf", &csrf),
                ("name", "Ana"),
                ("needs", "Large print, please"),
                ("choice", "start"),
                ("group", "Garden board"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);
    let page = text(send(&st, get(&st, "/members")).await).await;
    assert!(page.contains("Ana"), "{page}");
    assert!(page.contains("Large print, please"), "{page}");
    assert!(page.contains(r#"href="/invite""#), "{page}");
    let page = text(send(&st, get(&st, "/")).await).await;
    assert!(page.contains("Garden board"), "{page}");
    assert!(
        page.contains("Not synced with another member"),
        "the header's sync line: {page}"
    );
    // Set up now: the welcome page sends the member home, and a second setup is refused.
    let r = send(&st, get(&st, "/welcome")).await;
    assert_eq!(location(&r), "/");
    let home = Home::open(&home_dir).unwrap();
    assert_eq!(home.groups().unwrap().len(), 1);
}

/// A protected key is unlocked on the page: the passphrase only in a POST body, a wrong one said
/// plainly with nothing changed, the right one opens every page.
#[tokio::test]
async fn a_locked_device_asks_for_its_passphrase_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let home_dir = dir.path().join("home");
    let pass = "a long passphrase for Ana";
    {
        let (home, key) = roundtable_app::init(&home_dir, "Ana", "", Some(pass)).unwrap();
        let (key2, enc) = roundtable_app::unlock(&home, Some(pass)).unwrap();
        assert_eq!(key.device_id(), key2.device_id());
        roundtable_app::Seat::new(&home, &key2, Some(&enc))
            .create_group("Board", Rule::Consent, 1)
            .unwrap();
    }
    let st = state_for(&home_dir, None);
    let csrf = st.csrf_token().to_string();
    let r = send(&st, get(&st, "/proposals")).await;
    assert_eq!(location(&r), "/unlock");
    let r = send(&st, get(&st, "/welcome")).await;
    assert_eq!(location(&r), "/unlock");
    let page = text(send(&st, get(&st, "/unlock")).await).await;
    assert!(page.contains(r#"method="post" action="/unlock""#), "{page}");
    for wrong in ["", "not the passphrase at all"] {
        let r = send(
            &st,
            post(&st, "/unlock", &[("csrf", &csrf), ("passphrase", wrong)]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let page = text(r).await;
        assert!(page.contains("passphrase"), "{page}");
        assert!(
            !page.contains(wrong) || wrong.is_empty(),
            "never shown back: {page}"
        );
        assert_eq!(location(&send(&st, get(&st, "/")).await), "/unlock");
    }
    let r = send(
        &st,
        post(&st, "/unlock", &[("csrf", &csrf), ("passphrase", pass)]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&st, get(&st, "/")).await).await;
    assert!(page.contains("Board"), "{page}");
    // A wrong passphrase given at launch still stops the page there.
    roundtable_web::show_times_in_utc();
    let e = AppState::new(
        &WebConfig {
            home_dir: home_dir.clone(),
            passphrase: Some("wrong wrong wrong".into()),
            port: PORT,
            sync: None,
            lan: None,
        },
        PORT,
    );
    assert!(e.is_err());
}

/// The audit page says what `roundtable audit` says; leaving asks "Are you sure?" first.
#[tokio::test]
async fn the_audit_page_and_leaving_with_a_check_first() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/audit")).await).await;
    assert!(page.contains("The record checks out."), "{page}");
    assert!(page.contains("Ana"), "{page}");
    assert!(
        page.contains("<li><strong>Ana</strong>: "),
        "each member's part: {page}"
    );
    let page = text(send(&f.state, get(&f.state, "/members/leave")).await).await;
    assert!(page.contains("Are you sure"), "{page}");
    assert!(
        page.contains("Everything you wrote stays in the record"),
        "{page}"
    );
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(&f.state, "/members/leave", &[("csrf", "wrong")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(entry_count(&f), before);
    let r = send(
        &f.state,
        post(&f.state, "/members/leave", &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The leave itself, and this device's encryption key when it was not published yet.
    assert!(entry_count(&f) > before);
    let page = text(send(&f.state, get(&f.state, "/members")).await).await;
    assert!(page.contains("left"), "{page}");
}

/// The invitation page makes a one-time invitation with a QR code and its expiry in words; the
/// Devices page without sync of its own says so, and a bad code changes nothing.
#[tokio::test]
async fn invitations_and_devices_on_the_page() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/invite")).await).await;
    assert!(page.contains("How long should it work?"), "{page}");
    let r = send(
        &f.state,
        post(&f.state, "/invite", &[("csrf", &csrf), ("minutes", "7")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = send(
        &f.state,
        post(&f.state, "/invite", &[("csrf", &csrf), ("minutes", "60")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(r).await;
    assert!(page.contains("<svg role=\"img\""), "a QR code: {page}");
    assert!(page.contains("one hour"), "{page}");
    assert!(page.contains("id=\"invitation-code\""), "{page}");
    let page = text(send(&f.state, get(&f.state, "/devices")).await).await;
    assert!(page.contains("does not serve sync itself"), "{page}");
    assert!(
        page.contains("Ben's device") || page.contains("None yet"),
        "{page}"
    );
    let before = entry_count(&f);
    for bad in [
        "",
        "rt-not-a-ticket",
        &"x".repeat(100_000),
        "<script>alert(1)</script>",
    ] {
        let r = send(
            &f.state,
            post(
                &f.state,
                "/devices/sync",
                &[("csrf", &csrf), ("ticket", bad)],
            ),
        )
        .await;
        assert!(
            r.status().is_client_error() || r.status().is_server_error(),
            "{bad:.20}"
        );
        let page = text(r).await;
        assert!(!page.contains("<script>alert"), "{page}");
        assert_eq!(entry_count(&f), before);
    }
}

/// An invitation whose time is over is refused on the welcome page before anything is made, and
/// a code for syncing is not taken for an invitation.
#[tokio::test]
async fn an_expired_invitation_or_a_sync_code_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home_dir = dir.path().join("new-home");
    let st = state_for(&home_dir, None);
    let csrf = st.csrf_token().to_string();
    let other = DeviceKey::generate().unwrap();
    let group = roundtable_core::EntryId([7; 32]);
    let expired = roundtable_sync::Ticket {
        group,
        device: other.device_id(),
        addrs: vec!["127.0.0.1:9".parse().unwrap()],
        invite: Some(([1; 32], T0)),
        link: None,
    }
    .encode();
    let sync_code = roundtable_sync::Ticket {
        group,
        device: other.device_id(),
        addrs: vec!["127.0.0.1:9".parse().unwrap()],
        invite: None,
        link: None,
    }
    .encode();
    for (code, words) in [
        (expired.as_str(), "This invitation has expired"),
        (sync_code.as_str(), "not an invitation"),
    ] {
        let r = send(
            &st,
            post(
                &st,
                "/welcome",
                &[
                    ("csrf", &csrf),
                    ("name", "Ben"),
                    ("choice", "join"),
                    ("invitation", code),
                ],
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = text(r).await;
        assert!(page.contains(words), "{words}: {page}");
        assert!(page.contains("Nothing was made"), "{page}");
        assert!(!home_dir.exists() || !home_dir.join("device.key").exists());
    }
}

/// How the group decides, and who audits it, are asked of the group on the Members page: bad
/// forms write nothing; good ones become proposals, never changes.
#[tokio::test]
async fn policy_and_auditor_are_asked_of_the_group_on_the_page() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/members")).await).await;
    assert!(page.contains(r#"action="/members/policy""#), "{page}");
    assert!(page.contains(r#"action="/members/auditor""#), "{page}");
    let before = entry_count(&f);
    let long = "9".repeat(100_000);
    for (path, form) in [
        (
            "/members/policy",
            vec![("rule", "consent"), ("quorum", "0")],
        ),
        (
            "/members/policy",
            vec![("rule", "consent"), ("quorum", "two")],
        ),
        (
            "/members/policy",
            vec![("rule", "shouting"), ("quorum", "2")],
        ),
        (
            "/members/policy",
            vec![("rule", "majority"), ("quorum", long.as_str())],
        ),
        (
            "/members/auditor",
            vec![("device_id", "nope"), ("name", "Dee")],
        ),
        (
            "/members/auditor",
            vec![("device_id", &"a".repeat(64)), ("name", " ")],
        ),
    ] {
        let mut full = vec![("csrf", csrf.as_str())];
        full.extend(form.iter().copied());
        let r = send(&f.state, post(&f.state, path, &full)).await;
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {form:?}"
        );
        assert!(text(r).await.contains("Nothing was changed"));
        assert_eq!(entry_count(&f), before);
    }
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/policy",
            &[("csrf", &csrf), ("rule", "majority"), ("quorum", "2")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/proposals/"));
    let page = text(send(&f.state, get(&f.state, &location(&r))).await).await;
    assert!(
        page.contains(
            "rules become these. In this group a proposal passes when more members agree"
        ),
        "{page}"
    );
    let auditor = DeviceKey::from_secret(&[9; 32]).device_id().to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            "/members/auditor",
            &[
                ("csrf", &csrf),
                ("device_id", &auditor),
                ("name", "Dee the auditor"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    assert!(at.starts_with("/proposals/"), "{at}");
    // Asked, not decided: the group has three members, so nothing changed yet.
    let (_, g) = open_group(&f);
    assert!(g.record.auditors().is_empty());
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("Dee the auditor"), "{page}");
}

/// A keeper is asked of the group on the Devices page, in plain words: bad forms write nothing; a
/// good one becomes a proposal (the same application call as `keeper add`), never a change.
#[tokio::test]
async fn a_keeper_is_asked_of_the_group_on_the_devices_page() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let page = text(send(&f.state, get(&f.state, "/devices")).await).await;
    assert!(page.contains(r#"action="/devices/keeper""#), "{page}");
    assert!(page.contains("A keeper is an always-on computer"), "{page}");
    assert!(page.contains("The group has no keeper yet."), "{page}");
    let before = entry_count(&f);
    let hex = "b".repeat(64);
    for form in [
        vec![("device_id", "nope"), ("name", "Council PC")],
        vec![("device_id", hex.as_str()), ("name", " ")],
    ] {
        let mut full = vec![("csrf", csrf.as_str())];
        full.extend(form.iter().copied());
        let r = send(&f.state, post(&f.state, "/devices/keeper", &full)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert!(text(r).await.contains("Nothing was changed"));
        assert_eq!(entry_count(&f), before);
    }
    let keeper = DeviceKey::from_secret(&[11; 32]).device_id().to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            "/devices/keeper",
            &[
                ("csrf", &csrf),
                ("device_id", &keeper),
                ("name", "Council PC"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    assert!(at.starts_with("/proposals/"), "{at}");
    let (_, g) = open_group(&f);
    assert!(g.record.keepers().is_empty(), "asked, not decided");
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("Council PC becomes a keeper"), "{page}");
    assert!(
        page.contains("It cannot write, and it cannot read sealed threads"),
        "{page}"
    );

    // The group agrees (Ana, Ben and Chloe) and Ana closes it: the keeper is listed, with a way
    // to ask the group to stop it, which is again only a proposal.
    let proposal: EntryId = at.trim_start_matches("/proposals/").parse().unwrap();
    {
        let (home, mut g) = open_group(&f);
        let ana = home.device_key(None).unwrap();
        let (ben, chloe) = (
            DeviceKey::from_secret(&[1; 32]),
            DeviceKey::from_secret(&[2; 32]),
        );
        for (i, k) in [&ana, &ben, &chloe].into_iter().enumerate() {
            let stance = Body::Stance {
                proposal,
                stance: roundtable_core::StanceKind::Agree,
                reason: String::new(),
                on_behalf: None,
            };
            home.append(&mut g, k, stance, T0 + 700_000 + i as i64)
                .unwrap();
        }
        let t = g.record.tally_now(&proposal).unwrap();
        let outcome = Body::Outcome {
            proposal,
            outcome: "Council PC keeps our record".into(),
            decision: t.decision,
            counts: t.counts,
        };
        home.append(&mut g, &ana, outcome, T0 + 800_000).unwrap();
        assert_eq!(g.record.keepers().len(), 1, "the group decided");
    }
    let page = text(send(&f.state, get(&f.state, "/devices")).await).await;
    assert!(page.contains("Council PC (device "), "{page}");
    assert!(
        page.contains("Ask the group to stop Council PC keeping the record"),
        "{page}"
    );
    let before = entry_count(&f);
    for bad in ["", "nope", hex.as_str()] {
        let r = send(
            &f.state,
            post(
                &f.state,
                "/devices/keeper/remove",
                &[("csrf", &csrf), ("device_id", bad)],
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(text(r).await.contains("Nothing was changed"));
        assert_eq!(entry_count(&f), before, "{bad}");
    }
    let r = send(
        &f.state,
        post(
            &f.state,
            "/devices/keeper/remove",
            &[("csrf", &csrf), ("device_id", &keeper)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = location(&r);
    let (_, g) = open_group(&f);
    assert_eq!(g.record.keepers().len(), 1, "asked, not decided");
    drop(g);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(
        page.contains("Council PC stops keeping our record"),
        "{page}"
    );
}

/// "I am helping Ben": a view typed for Ben is shown as Ana's, for Ben, and does not count until
/// Ben says yes on his own page; the counts are core's recount.
#[tokio::test]
async fn a_supporter_types_a_view_that_counts_once_the_member_says_yes() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let ben = DeviceKey::from_secret(&[1; 32]);
    let at = {
        let r = send(
            &f.state,
            post(
                &f.state,
                &format!("/threads/{}/propose", f.thread),
                &[
                    ("csrf", &csrf),
                    ("title", "Tea at every meeting"),
                    ("easy_read", "We have tea at every meeting."),
                    ("text", "Tea and biscuits at every meeting."),
                ],
            ),
        )
        .await;
        location(&r)
    };
    let pid: EntryId = at.trim_start_matches("/proposals/").parse().unwrap();
    let ben_id = ben.device_id().to_string();
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("{at}/stance"),
            &[
                ("csrf", &csrf),
                ("stance", "agree"),
                ("reason", ""),
                ("for", &ben_id),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(
        page.contains(
            "Ana wrote this for Ben: Agree. Ben has not said yes yet, so it does not count."
        ),
        "{page}"
    );
    assert!(
        page.contains("Nobody has answered yet; waiting for Ben, Chloe and you."),
        "{page}"
    );
    // Each member who has not answered is reminded on their home page.
    let home_page = text(send(&f.state, get(&f.state, "/")).await).await;
    assert!(
        home_page.contains("The group is waiting for your answer"),
        "{home_page}"
    );
    assert!(home_page.contains("Tea at every meeting"), "{home_page}");
    let (_, g) = open_group(&f);
    assert_eq!(g.record.tally_now(&pid).unwrap().given, 0);
    drop(g);
    // Ben's own page asks him.
    let ben_page = AppState::with_key(
        f.home_dir.clone(),
        DeviceKey::from_secret(&[1; 32]),
        PORT,
        "b".repeat(64),
    );
    let page = text(send(&ben_page, get(&ben_page, &at)).await).await;
    assert!(
        page.contains("Ana wrote this answer for you: Agree."),
        "{page}"
    );
    assert!(page.contains("Is this what you think?"), "{page}");
    let stance = g_unconfirmed(&f, &pid);
    let r = send(
        &ben_page,
        post(
            &ben_page,
            &format!("/confirm/{stance}"),
            &[("csrf", &ben_page.csrf_token()), ("back", &at)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(
        page.contains("Ben (Ana wrote this for Ben, and Ben said yes)"),
        "{page}"
    );
    assert!(
        page.contains("1 of 3 has answered; waiting for Chloe and you."),
        "{page}"
    );
    let (_, g) = open_group(&f);
    assert_eq!(g.record.tally_now(&pid).unwrap().given, 1);
}

fn g_unconfirmed(f: &Fixture, pid: &EntryId) -> EntryId {
    let (_, g) = open_group(f);
    g.record.tally_now(pid).unwrap().unconfirmed[0].entry
}

/// A member corrects their own message on the page: the new words are shown, marked corrected,
/// with the earlier words one click away; nobody else's message offers the form.
#[tokio::test]
async fn a_member_corrects_their_own_message_on_the_page() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let at = format!("/threads/{}", f.thread);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    let id = page
        .split(r#"action="/correct/"#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a correction form on Ana's own message")
        .to_string();
    let before = entry_count(&f);
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/correct/{id}"),
            &[("csrf", &csrf), ("text", " "), ("back", &at)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(entry_count(&f), before);
    let r = send(
        &f.state,
        post(
            &f.state,
            &format!("/correct/{id}"),
            &[
                ("csrf", &csrf),
                ("text", "Who needs a bus pass this summer?"),
                ("back", &at),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(send(&f.state, get(&f.state, &at)).await).await;
    assert!(page.contains("Who needs a bus pass this summer?"), "{page}");
    assert!(
        page.contains("This message was corrected. See the earlier words"),
        "{page}"
    );
    assert!(
        page.contains("Who needs a pass?"),
        "the earlier words: {page}"
    );
}

/// Health or money words in an open thread get a gentle nudge towards a sealed thread; the
/// member may still share.
#[tokio::test]
async fn private_words_in_an_open_thread_get_a_nudge_never_a_block() {
    let f = fixture();
    let csrf = f.state.csrf_token().to_string();
    let check = format!("/threads/{}/check", f.thread);
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &check,
                &[("csrf", &csrf), ("text", "My doctor says I need the lift.")],
            ),
        )
        .await,
    )
    .await;
    assert!(page.contains("This looks private"), "{page}");
    assert!(
        page.contains(r#"value="share""#),
        "sharing is still possible: {page}"
    );
    let page = text(
        send(
            &f.state,
            post(
                &f.state,
                &check,
                &[("csrf", &csrf), ("text", "The bus comes at ten.")],
            ),
        )
        .await,
    )
    .await;
    assert!(!page.contains("This looks private"), "{page}");
}

/// The link and a signed-in browser keep working across launches (the token is kept in the home),
/// until "Sign out every other browser" replaces it: then the old cookie is refused.
#[tokio::test]
async fn a_bookmark_survives_a_relaunch_until_every_other_browser_is_signed_out() {
    let f = fixture();
    let again = state_for(&f.home_dir, None);
    assert_eq!(
        again.token(),
        f.state.token(),
        "the same link after a relaunch"
    );
    let old = f.state.token();
    let r = send(
        &again,
        post(
            &again,
            "/devices/sign-out",
            &[("csrf", &again.csrf_token())],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert_ne!(again.token(), old);
    assert!(
        set.contains(&again.token()),
        "this browser gets the new token: {set}"
    );
    let with_old = Request::get("/")
        .header(header::HOST, host())
        .header(header::COOKIE, format!("roundtable_{PORT}={old}"))
        .body(HttpBody::empty())
        .unwrap();
    assert_eq!(send(&again, with_old).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        send(&again, get(&again, "/")).await.status(),
        StatusCode::OK
    );
    // The next launch keeps the new token.
    assert_eq!(state_for(&f.home_dir, None).token(), again.token());
}

/// One step of a random record: a member answers (or a supporter types an answer for someone), or
/// a member says yes to an answer typed for them.
#[derive(Debug, Clone)]
enum Step {
    Answer {
        proposal: usize,
        by: usize,
        stance: usize,
        for_whom: Option<usize>,
    },
    SayYes {
        proposal: usize,
        by: usize,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (
            0..2usize,
            0..3usize,
            0..4usize,
            proptest::option::of(0..3usize)
        )
            .prop_map(|(proposal, by, stance, for_whom)| Step::Answer {
                proposal,
                by,
                stance,
                for_whom
            }),
        (0..2usize, 0..3usize).prop_map(|(proposal, by)| Step::SayYes { proposal, by }),
    ]
}

/// The number before `after` in `page` (as in "2 of 3 have answered").
fn number_before(page: &str, after: &str) -> Option<usize> {
    let at = page.find(after)?;
    let digits: String = page[..at]
        .chars()
        .rev()
        .skip_while(|c| c.is_whitespace())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Issue 19: every count the pages show is core's recount, on random records with supporters'
    /// answers waiting for a yes: the proposal's page (who answered, the counts if closed now, the
    /// views given), the list of proposals, and the home page's "waiting for your answer".
    #[test]
    fn every_count_on_the_pages_is_cores_recount(steps in proptest::collection::vec(step(), 0..14)) {
        use roundtable_core::{MemberId, StanceKind};
        let f = fixture();
        let keys = [
            open_group(&f).0.device_key(None).unwrap(),
            DeviceKey::from_secret(&[1; 32]),
            DeviceKey::from_secret(&[2; 32]),
        ];
        let ids: Vec<MemberId> = keys.iter().map(DeviceKey::device_id).collect();
        let kinds = [StanceKind::Agree, StanceKind::Abstain, StanceKind::Disagree, StanceKind::Block];
        let (home, mut g) = open_group(&f);
        let (rule, quorum) = g.record.policy().unwrap();
        let mut t = T0 + 1_000_000;
        let proposals: Vec<EntryId> = (0..2)
            .map(|i| {
                t += 1;
                home.append(&mut g, &keys[i], Body::Proposal {
                    thread: f.thread,
                    title: format!("Proposal {i}"),
                    text: String::new(),
                    easy_read: "We do it.".into(),
                    rule,
                    quorum,
                    effect: None,
                    closes: None,
                }, t).unwrap()
            })
            .collect();
        let mut typed: Vec<(usize, usize, EntryId)> = Vec::new(); // (proposal, for whom, entry)
        for s in steps {
            t += 1;
            match s {
                Step::Answer { proposal, by, stance, for_whom } => {
                    let on_behalf = for_whom.filter(|w| *w != by).map(|w| ids[w]);
                    let e = home.append(&mut g, &keys[by], Body::Stance {
                        proposal: proposals[proposal],
                        stance: kinds[stance],
                        reason: "because".into(),
                        on_behalf,
                    }, t);
                    if let (Ok(e), Some(w)) = (e, for_whom.filter(|w| *w != by)) {
                        typed.push((proposal, w, e));
                    }
                }
                Step::SayYes { proposal, by } => {
                    if let Some((_, _, e)) = typed.iter().rev().find(|(p, w, _)| *p == proposal && *w == by) {
                        // A yes the rules refuse (say, to a view replaced since) writes nothing.
                        let _ = home.append(&mut g, &keys[by], Body::Confirm { target: *e }, t);
                    }
                }
            }
        }
        let tallies: Vec<_> = proposals.iter().map(|p| g.record.tally_now(p).unwrap()).collect();
        drop((home, g));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let list = text(send(&f.state, get(&f.state, "/proposals")).await).await;
            let home_page = text(send(&f.state, get(&f.state, "/")).await).await;
            for (i, p) in proposals.iter().enumerate() {
                let tally = &tallies[i];
                let page = text(send(&f.state, get(&f.state, &format!("/proposals/{p}"))).await).await;
                let answered = tally.views.len();
                if tally.waiting.is_empty() {
                    proptest::prop_assert!(page.contains("Everyone has answered."), "{page}");
                } else if answered == 0 {
                    proptest::prop_assert!(page.contains("Nobody has answered yet"), "{page}");
                } else {
                    let of = if answered == 1 { " of 3 has answered" } else { " of 3 have answered" };
                    proptest::prop_assert_eq!(number_before(&page, of), Some(answered), "{}", page);
                }
                let c = tally.counts;
                let counts = format!(
                    "{} agree, {} not sure, {} disagree, {} block.",
                    c.agree, c.abstain, c.disagree, c.block
                );
                // The close step says what closing now would record.
                let close = text(send(&f.state, get(&f.state, &format!("/proposals/{p}/close"))).await).await;
                proptest::prop_assert!(close.contains(&counts), "{counts}\n{close}");
                let given = if tally.given == 1 { "1 of 3 members has given a view" } else { "" };
                if !given.is_empty() {
                    proptest::prop_assert!(page.contains(given), "{page}");
                } else {
                    proptest::prop_assert_eq!(
                        number_before(&page, " of 3 members have given a view"),
                        Some(tally.given as usize),
                        "{}", page
                    );
                }
                // The list: the same number answered.
                let row_at = list.find(&format!("Proposal {i}</a>")).unwrap();
                let row = &list[row_at..];
                let row = &row[..row.find("</li>").unwrap()];
                match answered {
                    0 => proptest::prop_assert!(row.contains("Nobody has answered so far"), "{row}"),
                    1 => proptest::prop_assert!(row.contains("1 member has answered so far"), "{row}"),
                    n => proptest::prop_assert!(row.contains(&format!("{n} members have answered so far")), "{row}"),
                }
                // Home: Ana is reminded exactly when core waits for her.
                let reminded = home_page.contains(&format!("/proposals/{p}\">Proposal {i}</a>"));
                proptest::prop_assert_eq!(reminded, tally.waiting.contains(&ids[0]), "{}", home_page);
            }
            Ok(())
        })?;
    }
}

/// "Add another device of mine" on Ana's page makes a one-time link; a new device's welcome page
/// takes it ("This is another device of mine") over real iroh endpoints on loopback, and becomes
/// Ana's, not a new seat; Ana's page then lists it and stops it, and a stopped device offers no
/// second stop. A link cannot be used twice, and bad forms change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_links_another_device_on_the_page_and_stops_it() {
    use roundtable_web::SyncConfig;
    let loopback = || roundtable_app::net::NetConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        relay: None,
    };
    let f = fixture();
    let ana = AppState::new(
        &WebConfig {
            home_dir: f.home_dir.clone(),
            passphrase: None,
            port: PORT,
            sync: Some(SyncConfig {
                net: loopback(),
                mdns: false,
            }),
            lan: None,
        },
        PORT,
    )
    .unwrap();
    let csrf = ana.csrf_token().to_string();
    let page = text(send(&ana, get(&ana, "/devices")).await).await;
    assert!(page.contains("Add another device of mine"), "{page}");
    assert!(page.contains("(this device)"), "{page}");
    let members_before = text(send(&ana, get(&ana, "/members")).await).await;

    let r = send(&ana, post(&ana, "/devices/link", &[("csrf", &csrf)])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(r).await;
    assert!(page.contains("It works once, for 10 minutes"), "{page}");
    let ticket = page
        .split("<textarea id=\"link-code\" readonly rows=\"3\" spellcheck=\"false\">")
        .nth(1)
        .and_then(|s| s.split("</textarea>").next())
        .expect("the link on the page")
        .trim()
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let phone_dir = dir.path().join("phone");
    let phone = AppState::new(
        &WebConfig {
            home_dir: phone_dir.clone(),
            passphrase: None,
            port: PORT,
            sync: Some(SyncConfig {
                net: loopback(),
                mdns: false,
            }),
            lan: None,
        },
        PORT,
    )
    .unwrap();
    let pcsrf = phone.csrf_token().to_string();
    // Without a name for the device, nothing is made.
    let r = send(
        &phone,
        post(
            &phone,
            "/welcome",
            &[("csrf", &pcsrf), ("choice", "link"), ("link", &ticket)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!phone_dir.join("device.key").exists());
    let r = send(
        &phone,
        post(
            &phone,
            "/welcome",
            &[
                ("csrf", &pcsrf),
                ("choice", "link"),
                ("link", &ticket),
                ("device_name", "Ana's phone"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);
    let page = text(send(&phone, get(&phone, "/devices")).await).await;
    assert!(
        page.contains("Ana&#39;s phone (this device)")
            || page.contains("Ana's phone (this device)"),
        "{page}"
    );
    // The phone is Ana's: the members page there lists the same three people.
    let members = text(send(&phone, get(&phone, "/members")).await).await;
    for name in ["Ana", "Ben", "Chloe"] {
        assert!(
            members.contains(name) && members_before.contains(name),
            "{name}"
        );
    }

    // A second device with the same link is not let in, and leaves no home behind.
    let other_dir = dir.path().join("other");
    let other = state_for(&other_dir, None);
    let ocsrf = other.csrf_token().to_string();
    let r = send(
        &other,
        post(
            &other,
            "/welcome",
            &[
                ("csrf", &ocsrf),
                ("choice", "link"),
                ("link", &ticket),
                ("device_name", "stolen"),
            ],
        ),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(!other_dir.join("device.key").exists());

    // Ana's laptop stops the phone; a bad choice changes nothing.
    let page = text(send(&ana, get(&ana, "/devices")).await).await;
    assert!(
        page.contains("Ana&#39;s phone") || page.contains("Ana's phone"),
        "{page}"
    );
    let phone_id = {
        let home = Home::open(&phone_dir).unwrap();
        home.device_key(None).unwrap().device_id().to_string()
    };
    // Ana's laptop publishes its sealing key on its own time: count the stops only.
    let stops = |f: &Fixture| {
        let home = Home::open(&f.home_dir).unwrap();
        let (gid, _) = home.groups().unwrap()[0].clone();
        let g = home.open_group(&gid).unwrap();
        g.record
            .causal_order()
            .iter()
            .filter(|e| {
                matches!(g.record.entry(e), Some((_, m)) if matches!(m.body, Body::DeviceRevoke { .. }))
            })
            .count()
    };
    for bad in ["", "zz", &"0".repeat(64), &f.home_dir.display().to_string()] {
        let r = send(
            &ana,
            post(&ana, "/devices/stop", &[("csrf", &csrf), ("device", bad)]),
        )
        .await;
        assert!(r.status().is_client_error(), "{bad}: {}", r.status());
        assert_eq!(stops(&f), 0, "{bad}");
    }
    let r = send(
        &ana,
        post(
            &ana,
            "/devices/stop",
            &[("csrf", &csrf), ("device", &phone_id)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(r).await;
    assert!(page.contains("That device is stopped"), "{page}");
    assert!(page.contains(": stopped"), "{page}");
    assert!(
        !page.contains(&format!("value=\"{phone_id}\"")),
        "no second stop: {page}"
    );
    assert_eq!(stops(&f), 1);
    assert!(
        page.contains("Your key for sealed threads is changed"),
        "{page}"
    );

    // The record publishes Ana's new key, which the stopped phone never had; Ben publishes his.
    let public = |dir: &std::path::Path| {
        let secret = Home::open(dir).unwrap().enc_secret(None).unwrap();
        roundtable_seal::EncSecret::from_bytes(&secret)
            .public()
            .unwrap()
    };
    let (now, phones) = (public(&f.home_dir), public(&phone_dir));
    assert_ne!(now, phones);
    {
        let (home, mut g) = open_group(&f);
        let me = home.device_key(None).unwrap().device_id();
        assert_eq!(g.record.profile_key(&me), Some(now));
        let enc_key = roundtable_seal::EncSecret::generate()
            .unwrap()
            .public()
            .unwrap();
        let ben = DeviceKey::from_secret(&[1; 32]);
        home.append(&mut g, &ben, Body::Profile { enc_key }, T0 + 150_000)
            .unwrap();
    }
    // The page holds the new key: what it seals for Ana and Ben from now on it reads.
    let ben_field = format!("reader-{}", DeviceKey::from_secret(&[1; 32]).device_id());
    let r = send(
        &ana,
        post(
            &ana,
            "/threads/new",
            &[
                ("csrf", &csrf),
                ("title", "Ben's support plan"),
                ("who", "sealed"),
                ("reason", "It is about Ben's health"),
                (&ben_field, "on"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);
    let at = location(&r);
    let r = send(
        &ana,
        post(
            &ana,
            &format!("{at}/share"),
            &[
                ("csrf", &csrf),
                ("text", "Only for Ana and Ben"),
                ("action", "share"),
            ],
        ),
    )
    .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let page = text(send(&ana, get(&ana, &at)).await).await;
    assert!(page.contains("Only for Ana and Ben"), "{page}");
}

/// "Help Ben back onto a new device" on Ana's Members page makes a one-time recovery link; Ben's
/// new device takes it on the welcome page ("This is another device of mine") over real iroh
/// endpoints on loopback and is told the group is asked. Until the group agrees, its "See if the
/// group has agreed" is refused in words; once Chloe agrees too and the proposal is closed, the same
/// button brings the group, and the new device writes as Ben.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_brings_ben_back_on_a_new_device_from_the_pages() {
    use roundtable_core::{Effect, StanceKind};
    use roundtable_web::SyncConfig;
    let loopback = || roundtable_app::net::NetConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        relay: None,
    };
    let web = |home_dir: &std::path::Path| {
        AppState::new(
            &WebConfig {
                home_dir: home_dir.to_path_buf(),
                passphrase: None,
                port: PORT,
                sync: Some(SyncConfig {
                    net: loopback(),
                    mdns: false,
                }),
                lan: None,
            },
            PORT,
        )
        .unwrap()
    };
    let f = fixture();
    let ana = web(&f.home_dir);
    let csrf = ana.csrf_token().to_string();
    let (ben, chloe) = (
        DeviceKey::from_secret(&[1; 32]),
        DeviceKey::from_secret(&[2; 32]),
    );
    let page = text(send(&ana, get(&ana, "/members")).await).await;
    assert!(page.contains("Help Ben back onto a new device"), "{page}");
    assert!(
        !page.contains("Help Ana back"),
        "not for your own seat: {page}"
    );
    // Not for a stranger.
    let r = send(
        &ana,
        post(
            &ana,
            &format!("/members/{}/recover", "7".repeat(64)),
            &[("csrf", &csrf)],
        ),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());

    let r = send(
        &ana,
        post(
            &ana,
            &format!("/members/{}/recover", ben.device_id()),
            &[("csrf", &csrf)],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(r).await;
    assert!(page.contains("A new device for Ben"), "{page}");
    assert!(
        page.contains("two in three of the other members must agree"),
        "{page}"
    );
    let ticket = page
        .split("<textarea id=\"recover-code\" readonly rows=\"4\" spellcheck=\"false\">")
        .nth(1)
        .and_then(|s| s.split("</textarea>").next())
        .expect("the link on the page")
        .trim()
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let new_dir = dir.path().join("ben-new");
    let newb = web(&new_dir);
    let ncsrf = newb.csrf_token().to_string();
    let r = send(
        &newb,
        post(
            &newb,
            "/welcome",
            &[
                ("csrf", &ncsrf),
                ("choice", "link"),
                ("link", &ticket),
                ("device_name", "Ben's new phone"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(r).await;
    assert!(page.contains("The group is asked"), "{page}");
    // No group on this device yet: its home page is the Groups page.
    let r = send(&newb, get(&newb, "/")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/groups");
    let groups = text(send(&newb, get(&newb, "/groups")).await).await;
    assert!(groups.contains("See if the group has agreed"), "{groups}");

    // The proposal is Ana's, with her agree; Ana's device serves sync on loopback.
    let (gid, p) = {
        let home = Home::open(&f.home_dir).unwrap();
        let (gid, _) = home.groups().unwrap()[0].clone();
        let g = home.open_group(&gid).unwrap();
        let p = g
            .record
            .causal_order()
            .iter()
            .find(|e| {
                matches!(g.record.entry(e), Some((_, m)) if matches!(&m.body,
                    Body::Proposal { effect: Some(Effect::Recover { member, .. }), .. } if *member == ben.device_id()))
            })
            .copied()
            .expect("the recovery proposal");
        (gid, p)
    };
    let key = Home::open(&f.home_dir).unwrap().device_key(None).unwrap();
    let serving =
        roundtable_app::serve::Serving::start(&f.home_dir, &key, None, &loopback(), false)
            .await
            .unwrap();
    let code = serving.ticket(gid);
    let ask = |newb: &AppState| {
        post(
            newb,
            "/groups/recovered",
            &[("csrf", &ncsrf), ("ticket", &code)],
        )
    };
    let r = send(&newb, ask(&newb)).await;
    let page = text(r).await;
    assert!(page.contains("has not agreed yet"), "{page}");
    assert!(Home::open(&new_dir).unwrap().groups().unwrap().is_empty());

    {
        let home = Home::open(&f.home_dir).unwrap();
        let mut g = home.open_group(&gid).unwrap();
        let t = fixed_clock();
        home.append(
            &mut g,
            &chloe,
            Body::Stance {
                proposal: p,
                stance: StanceKind::Agree,
                reason: String::new(),
                on_behalf: None,
            },
            t,
        )
        .unwrap();
        let tally = g.record.tally_now(&p).unwrap();
        home.append(
            &mut g,
            &key,
            Body::Outcome {
                proposal: p,
                outcome: "Ben is back".into(),
                decision: tally.decision,
                counts: tally.counts,
            },
            t + 1,
        )
        .unwrap();
        assert!(
            g.record.governance().device_active(
                &Home::open(&new_dir)
                    .unwrap()
                    .device_key(None)
                    .unwrap()
                    .device_id()
            )
        );
    }
    let r = send(&newb, ask(&newb)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);
    let home_page = text(send(&newb, get(&newb, "/")).await).await;
    assert!(
        home_page.contains("Riverside Partnership Board"),
        "{home_page}"
    );
    let members = text(send(&newb, get(&newb, "/members")).await).await;
    assert!(members.contains("Ben</strong> (you)"), "{members}");
    // Ben's old key writes nothing more.
    let home = Home::open(&new_dir).unwrap();
    let g = home.open_group(&gid).unwrap();
    assert!(!g.record.governance().device_active(&ben.device_id()));
    drop(serving);
}
