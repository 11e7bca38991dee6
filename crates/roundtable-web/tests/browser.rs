//! The web page in a real browser: Debian's headless Chromium through Debian's chromedriver, on the real
//! server over a real home. Every page is checked by axe-core (WCAG 2.2 A and AA), screenshotted at 1280
//! and 320 px, and checked for sideways scrolling; the main flows are done with the keyboard only.
//!
//! Needs /usr/bin/chromium, /usr/bin/chromedriver (Debian's `chromium` and `chromium-driver`) and
//! `npm ci` in tests/js (axe-core); without them these tests fail, they never skip.
//!
//! To add a page: a [`Case`] in [`pages`] (with the data it needs in `browser_util::fixture` and its
//! `Ids`). To add a flow: a test calling [`with_browser`] with the keyboard helpers (`tab_until`,
//! `shift_tab_until`, `activate`, `keys`, `assert_shows`). Screenshots and the axe summary are written
//! to `target/screenshots/`.

mod browser_util;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use browser_util::{
    ARROW_DOWN, Browser, ENTER, Ids, SPACE, picture, screenshot_dir, with_browser, with_lan_browser,
};
use fantoccini::Locator;

/// Every test is bounded: a hung browser fails the test instead of hanging CI.
const LIMIT: Duration = Duration::from_secs(120);

// ---------- the pages ----------

/// How to reach a page.
enum Open {
    /// A GET of a path on the server.
    Get(String),
    /// Any address (e.g. the server under another host name, which has no cookie).
    Url(String),
    /// A form: open `path`, type into the named fields, then press Enter on the `submit` button.
    Form {
        path: String,
        fill: Vec<(&'static str, &'static str)>,
        submit: &'static str,
    },
}

/// One page to check: its name (for screenshots and the summary), how to reach it, and words its `<h1>`
/// must contain (so a wrong page is never checked by mistake).
struct Case {
    name: &'static str,
    open: Open,
    h1: &'static str,
    /// Whether the stylesheet must apply (it is served only with the launch token).
    styled: bool,
}

/// Every page that exists now, with the fixture's data.
fn pages(ids: &Ids, port: u16) -> Vec<Case> {
    let t = &ids.thread;
    let get = |p: &str| Open::Get(p.to_string());
    vec![
        Case {
            name: "home",
            open: get("/"),
            h1: "Riverside Partnership Board",
            styled: true,
        },
        Case {
            name: "threads",
            open: get("/threads"),
            h1: "Threads",
            styled: true,
        },
        Case {
            name: "thread",
            open: get(&format!("/threads/{t}")),
            h1: "Bus passes <for> the summer",
            styled: true,
        },
        Case {
            name: "thread-sealed-not-reader",
            open: get(&format!("/threads/{}", ids.sealed_other)),
            h1: "Ben's health",
            styled: true,
        },
        Case {
            name: "thread-sealed-reader",
            open: get(&format!("/threads/{}", ids.sealed_mine)),
            h1: "Ana's support plan",
            styled: true,
        },
        Case {
            name: "write",
            open: get(&format!("/threads/{t}/write")),
            h1: "Write a message",
            styled: true,
        },
        Case {
            name: "write-empty",
            open: Open::Form {
                path: format!("/threads/{t}/write"),
                fill: vec![],
                submit: "button[type=submit]",
            },
            h1: "Write a message",
            styled: true,
        },
        Case {
            name: "check",
            open: Open::Form {
                path: format!("/threads/{t}/write"),
                fill: vec![("text", "Me, please.\nThanks!")],
                submit: "button[type=submit]",
            },
            h1: "Check before you share",
            styled: true,
        },
        Case {
            name: "thread-new",
            open: get("/threads/new"),
            h1: "Start a new thread",
            styled: true,
        },
        Case {
            name: "proposals",
            open: get("/proposals"),
            h1: "Proposals",
            styled: true,
        },
        Case {
            name: "proposal",
            open: get(&format!("/proposals/{}", ids.proposal)),
            h1: "Ask the council for summer passes",
            styled: true,
        },
        Case {
            name: "proposal-new",
            open: get(&format!("/threads/{t}/propose")),
            h1: "Propose something",
            styled: true,
        },
        Case {
            name: "actions",
            open: get("/actions"),
            h1: "Actions",
            styled: true,
        },
        Case {
            name: "groups",
            open: get("/groups"),
            h1: "Your groups",
            styled: true,
        },
        Case {
            name: "words",
            open: get("/words"),
            h1: "Hard words",
            styled: true,
        },
        Case {
            name: "members",
            open: get("/members"),
            h1: "Members",
            styled: true,
        },
        Case {
            name: "invite-form",
            open: get("/invite"),
            h1: "Invite someone",
            styled: true,
        },
        Case {
            name: "invite",
            open: Open::Form {
                path: "/invite".into(),
                fill: vec![],
                submit: "form[action='/invite'] button[type=submit]",
            },
            h1: "Invite someone",
            styled: true,
        },
        Case {
            name: "recover",
            // "Help Ben back onto a new device", under its details on the Members page.
            open: Open::Form {
                path: "/members".into(),
                fill: vec![],
                submit: "form[action$='/recover'] button[type=submit]",
            },
            h1: "A new device for",
            styled: true,
        },
        Case {
            name: "devices",
            open: get("/devices"),
            h1: "Devices",
            styled: true,
        },
        Case {
            name: "audit",
            open: get("/audit"),
            h1: "Check the record",
            styled: true,
        },
        Case {
            name: "leave",
            open: get("/members/leave"),
            h1: "Are you sure",
            styled: true,
        },
        Case {
            name: "help",
            open: get("/help"),
            h1: "Get help",
            styled: true,
        },
        Case {
            name: "not-found",
            open: get("/no/such/page"),
            h1: "We could not find that",
            styled: true,
        },
        Case {
            name: "refused",
            // localhost is allowed but has no cookie: the page a member sees without the link.
            open: Open::Url(format!("http://localhost:{port}/")),
            h1: "Please open Roundtable from its link",
            styled: false,
        },
    ]
}

async fn open_case(b: &Browser, open: &Open) {
    match open {
        Open::Get(path) => b.open(path).await,
        Open::Url(url) => b.c.goto(url).await.expect("open the address"),
        Open::Form { path, fill, submit } => {
            b.open(path).await;
            // A form folded away under <details> is opened first, as a member would.
            b.js(
                "document.querySelectorAll('details').forEach(d => d.open = true);",
                vec![],
            )
            .await;
            for (name, text) in fill {
                let field =
                    b.c.find(Locator::Css(&format!("[name={name}]")))
                        .await
                        .unwrap_or_else(|e| panic!("{path} has no field {name}: {e}"));
                field.send_keys(text).await.expect("type into the field");
            }
            let button =
                b.c.find(Locator::Css(submit))
                    .await
                    .unwrap_or_else(|e| panic!("{path} has no {submit}: {e}"));
            // Focus the button, then Enter submits the form as a person's key press would.
            let button = serde_json::to_value(&button).expect("the button as a script argument");
            b.js("arguments[0].focus();", vec![button]).await;
            b.activate(ENTER).await;
        }
    }
}

// ---------- axe, screenshots, reflow ----------

struct Row {
    name: &'static str,
    violations: [usize; 2],
    passes: [usize; 2],
    incomplete: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_fits_320px_and_is_screenshotted() {
    with_browser(LIMIT, |b| async move {
        let started = Instant::now();
        let mut rows = Vec::new();
        let mut problems = String::new();
        for case in pages(&b.ids, b.port) {
            open_case(&b, &case.open).await;
            let h1 = b.h1().await;
            if !h1.contains(case.h1) {
                // Checking the wrong page proves nothing: note it and go on to the next page.
                let _ = writeln!(
                    problems,
                    "{}: expected an <h1> with {:?}, found {h1:?} at {}",
                    case.name,
                    case.h1,
                    b.path().await
                );
                continue;
            }
            // The stylesheet must load under the page's CSP, or the screenshots mean nothing.
            if case.styled {
                let position = b
                    .js(
                        "return getComputedStyle(document.querySelector('.skip')).position;",
                        vec![],
                    )
                    .await;
                assert_eq!(
                    position, "absolute",
                    "{}: the stylesheet did not apply",
                    case.name
                );
            }

            let mut row = Row {
                name: case.name,
                violations: [0; 2],
                passes: [0; 2],
                incomplete: Vec::new(),
            };
            for (i, width) in [1280u32, 320].into_iter().enumerate() {
                b.viewport(width, 900).await;
                let axe = b.axe().await;
                row.violations[i] = axe.violations.len();
                row.passes[i] = axe.passes;
                for id in axe.incomplete {
                    if !row.incomplete.contains(&id) {
                        row.incomplete.push(id);
                    }
                }
                if !axe.violations.is_empty() {
                    let _ = writeln!(problems, "{} at {width} px: axe found:", case.name);
                    for v in &axe.violations {
                        let _ = write!(problems, "{v}");
                    }
                }
                b.screenshot(case.name, width).await;
            }
            // 320 px is 1280 px at 400% zoom (WCAG 1.4.10); 640 px is 200%.
            for width in [320, 640] {
                if let Some(p) = b.overflow(width).await {
                    let _ = writeln!(problems, "{}: {p}", case.name);
                }
            }
            rows.push(row);
        }

        let mut summary = format!(
            "axe-core {} on {} pages, tags {:?} ({:.1} s)\n{:<26} {:>15} {:>15}  needs review\n",
            axe_version(),
            rows.len(),
            browser_util::AXE_TAGS,
            started.elapsed().as_secs_f64(),
            "page",
            "violations@1280/320",
            "passes@1280/320",
        );
        for r in &rows {
            let _ = writeln!(
                summary,
                "{:<26} {:>15} {:>15}  {}",
                r.name,
                format!("{}/{}", r.violations[0], r.violations[1]),
                format!("{}/{}", r.passes[0], r.passes[1]),
                r.incomplete.join(", ")
            );
        }
        let dir = screenshot_dir();
        let file = dir.join("axe-summary.txt");
        std::fs::write(&file, format!("{summary}\n{problems}"))
            .unwrap_or_else(|e| panic!("could not write {}: {e}", file.display()));
        println!("{summary}\nscreenshots and this summary: {}", dir.display());
        assert!(problems.is_empty(), "{summary}\n{problems}");
    })
    .await;
}

fn axe_version() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/js/node_modules/axe-core/package.json"
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "(unknown version)".into())
}

// ---------- the keyboard ----------

/// From the home page to the open thread, with Tab and Enter only: Threads in the menu, then the thread.
async fn keyboard_to_the_thread(b: &Browser) {
    b.tab_until("the Threads menu item", |f| {
        f.region == "nav" && f.is_link("Threads")
    })
    .await;
    b.activate(ENTER).await;
    assert_eq!(b.path().await, "/threads");
    b.tab_until("the thread's link", |f| {
        f.is_link("Bus passes <for> the summer")
    })
    .await;
    b.activate(ENTER).await;
    assert_eq!(b.path().await, format!("/threads/{}", b.ids.thread));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_reaches_a_thread_through_the_menu_and_reads_it() {
    with_browser(LIMIT, |b| async move {
        assert_eq!(b.path().await, "/");
        keyboard_to_the_thread(&b).await;
        b.assert_h1("Bus passes <for> the summer").await;
        b.assert_shows(&["Ana", "Who needs a pass?"]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_writes_checks_and_shares_a_message() {
    with_browser(LIMIT, |b| async move {
        keyboard_to_the_thread(&b).await;
        b.tab_until("Write a message", |f| f.is_link("Write a message"))
            .await;
        b.activate(ENTER).await;
        assert_eq!(b.path().await, format!("/threads/{}/write", b.ids.thread));

        b.tab_until("the message box", |f| f.tag == "textarea")
            .await;
        // Enter in the box is a new line, not a submit.
        b.keys(&format!("I can bring the forms.{ENTER}See you on Monday."))
            .await;
        b.tab_until("Check my message", |f| f.is_button("Check my message"))
            .await;
        b.activate(ENTER).await;
        assert_eq!(b.path().await, format!("/threads/{}/check", b.ids.thread));
        b.assert_h1("Check before you share").await;
        b.assert_shows(&[
            "I can bring the forms.\nSee you on Monday.",
            "Who will see it",
            "Everyone in the group: Ana, Ben, Chloe.",
            "It cannot be deleted, only corrected.",
        ])
        .await;

        // Past "Share it" to "Change it", then back with Shift+Tab, and Space presses it.
        b.tab_until("Change it", |f| f.is_button("Change it")).await;
        b.shift_tab_until("Share it", |f| f.is_button("Share it"))
            .await;
        b.activate(SPACE).await;
        assert_eq!(b.path().await, format!("/threads/{}", b.ids.thread));
        b.assert_shows(&[
            "Who needs a pass?",
            "I can bring the forms.\nSee you on Monday.",
        ])
        .await;
    })
    .await;
}

/// From any page to a thread by its title, through the Threads menu item, with Tab and Enter only.
async fn keyboard_to(b: &Browser, title: &str) {
    b.tab_until("the Threads menu item", |f| {
        f.region == "nav" && f.is_link("Threads")
    })
    .await;
    b.activate(ENTER).await;
    b.tab_until(title, |f| f.is_link(title)).await;
    b.activate(ENTER).await;
    b.assert_h1(title).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_proposes_then_gives_a_stance_that_needs_a_reason() {
    with_browser(LIMIT, |b| async move {
        keyboard_to_the_thread(&b).await;
        b.tab_until("Propose something", |f| f.is_link("Propose something"))
            .await;
        b.activate(ENTER).await;
        assert_eq!(b.path().await, format!("/threads/{}/propose", b.ids.thread));
        b.tab_until("the title box", |f| f.name == "title").await;
        b.keys("Meet at the library").await;
        b.tab_until("the easy read box", |f| f.name == "easy_read")
            .await;
        b.keys("We meet at the library. It has a lift.").await;
        b.tab_until("the full text box", |f| f.name == "text").await;
        b.keys("From March, board meetings move to the central library, which is step-free.")
            .await;
        b.tab_until("Share the proposal", |f| f.is_button("Share the proposal"))
            .await;
        b.activate(ENTER).await;
        assert!(b.path().await.starts_with("/proposals/"));
        b.assert_h1("Meet at the library").await;
        b.assert_shows(&["We meet at the library. It has a lift."])
            .await;
        // The full text is there on request: a <summary> opened with Enter.
        assert!(!b.main_text().await.contains("step-free"));
        b.tab_until("Read the full text", |f| {
            f.tag == "summary" && f.text == "Read the full text"
        })
        .await;
        b.keys(ENTER).await;
        b.assert_shows(&["step-free"]).await;

        // Disagree (the arrow keys move through the answers), first without a reason: refused.
        b.tab_until("the answers", |f| f.name == "stance").await;
        b.keys(&format!("{ARROW_DOWN}{ARROW_DOWN}")).await;
        let chosen = b.focused().await;
        assert!(chosen.text.contains("Disagree"), "{}", chosen.describe());
        b.tab_until("Give my answer", |f| f.is_button("Give my answer"))
            .await;
        b.activate(ENTER).await;
        b.assert_shows(&["Please say why. A reason is needed when you disagree or block."])
            .await;
        // The choice was kept: the reason is all that is missing.
        b.tab_until("the reason box", |f| f.name == "reason").await;
        b.keys("Some of us cannot get to the centre easily.").await;
        b.tab_until("Give my answer", |f| f.is_button("Give my answer"))
            .await;
        b.activate(ENTER).await;
        b.assert_shows(&[
            "You said: Disagree",
            "You: Disagree",
            "Why: Some of us cannot get to the centre easily.",
        ])
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_understanding_check_and_the_authors_yes() {
    with_browser(LIMIT, |b| async move {
        // Ana says how she understood Ben's message (her own has no such form).
        keyboard_to_the_thread(&b).await;
        // Every entry has a read-aloud button (added by the script), reachable by keyboard.
        let entries = b
            .js(
                "return document.querySelectorAll('[data-read]').length;",
                vec![],
            )
            .await;
        let buttons = b
            .js(
                "return document.querySelectorAll('button.read-aloud').length;",
                vec![],
            )
            .await;
        assert_eq!(entries, buttons);
        assert!(entries.as_u64().is_some_and(|n| n >= 2), "{entries}");
        b.tab_until("a Read aloud button", |f| f.is_button("Read aloud"))
            .await;
        b.tab_until("Say what you understood", |f| {
            f.tag == "summary" && f.text == "Say what you understood"
        })
        .await;
        b.keys(ENTER).await;
        b.tab_until("the understanding box", |f| {
            f.tag == "textarea" && f.text.contains("I understood this as")
        })
        .await;
        b.keys("The council pays half, and we pay half.").await;
        b.tab_until("Share what I understood", |f| {
            f.is_button("Share what I understood")
        })
        .await;
        b.activate(ENTER).await;
        assert_eq!(b.path().await, format!("/threads/{}", b.ids.thread));
        b.assert_shows(&[
            "Ana understood this as: The council pays half, and we pay half.",
            "Waiting for Ben to answer.",
        ])
        .await;

        // Ben said how he understood Ana's proposal: Ana answers "Yes, that's right".
        b.tab_until("the Proposals menu item", |f| {
            f.region == "nav" && f.is_link("Proposals")
        })
        .await;
        b.activate(ENTER).await;
        b.tab_until("the proposal", |f| {
            f.is_link("Ask the council for summer passes")
        })
        .await;
        b.activate(ENTER).await;
        b.assert_shows(&[
            "Ben understood this as: We ask for passes for July and August.",
            "Waiting for Ana to answer.",
        ])
        .await;
        b.tab_until("Yes, that's right", |f| f.is_button("Yes, that's right"))
            .await;
        b.activate(ENTER).await;
        b.assert_shows(&["Ana said: Yes, that's right."]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_reads_and_writes_a_sealed_thread_as_a_reader() {
    with_browser(LIMIT, |b| async move {
        keyboard_to(&b, "Ana's support plan").await;
        b.assert_shows(&[
            "This thread is sealed",
            "You are one of its readers.",
            "I would like a break every hour.",
        ])
        .await;
        b.tab_until("Write a message", |f| f.is_link("Write a message"))
            .await;
        b.activate(ENTER).await;
        b.tab_until("the message box", |f| f.tag == "textarea").await;
        b.keys("Mornings are best for me.").await;
        b.tab_until("Check my message", |f| f.is_button("Check my message"))
            .await;
        b.activate(ENTER).await;
        b.assert_shows(&[
            "Only the thread's readers: Ana, Ben.",
            "Everyone in the group can see that you wrote a message, and when, but not what it says.",
        ])
        .await;
        b.tab_until("Share it", |f| f.is_button("Share it")).await;
        b.activate(ENTER).await;
        b.assert_shows(&[
            "I would like a break every hour.",
            "Mornings are best for me.",
        ])
        .await;
    })
    .await;
}

/// Issue 19, case 7: only the owner says an action is done, and can take it back for a day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_marks_an_own_action_done_and_takes_it_back() {
    with_browser(LIMIT, |b| async move {
        b.open("/actions").await;
        b.assert_shows(&["Collect the pass forms"]).await;
        b.tab_until("I have done it", |f| f.is_button("I have done it"))
            .await;
        b.activate(ENTER).await;
        b.assert_shows(&[
            "We did: Collect the pass forms",
            "Done: Ana said so today at",
            "You can take it back for a day.",
        ])
        .await;
        b.assert_axe_clean("a done action that can be taken back")
            .await;
        picture(&b, "action-undo").await;
        let back = "Take it back: it is not done";
        b.tab_until(back, |f| f.is_button(back)).await;
        b.activate(ENTER).await;
        b.assert_shows(&["Nothing is done yet."]).await;
    })
    .await;
}

/// Issue 19, case 5, on a tablet: `web --lan` (here on 127.0.0.13, loopback only). The computer's
/// Devices page shows 6 numbers; the tablet's browser opens the LAN `/pair` page over HTTPS, types
/// them, and lands on the member's home page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_is_let_in_with_the_numbers_from_the_devices_page() {
    with_lan_browser(LIMIT, "127.0.0.13:0", |b, lan| async move {
        b.open("/devices").await;
        b.assert_shows(&["Phones and tablets", &lan.urls[0]]).await;
        b.press("form[action='/devices/pair'] button[type=submit]")
            .await;
        b.assert_shows(&["Type these 6 numbers on the phone or tablet:"])
            .await;
        let code = b
            .js(
                "return document.getElementById('pair-code').textContent.trim();",
                vec![],
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            code.len() == 6 && code.bytes().all(|c| c.is_ascii_digit()),
            "{code:?}"
        );
        b.c.goto(&lan.urls[0])
            .await
            .expect("open the LAN pair page");
        assert_eq!(b.path().await, "/pair");
        assert_eq!(b.h1().await, "Let this phone or tablet in");
        b.assert_shows(&["Type the 6 numbers shown on the computer's screen"])
            .await;
        b.assert_axe_clean("the pair page").await;
        picture(&b, "pair").await;
        b.fill("#code", &code).await;
        b.press("form[action='/pair'] button[type=submit]").await;
        let here = b.c.current_url().await.expect("the current address");
        assert_eq!(
            here.host_str(),
            Some(lan.addr.ip().to_string().as_str()),
            "still on the LAN address: {here}"
        );
        assert_eq!(here.path(), "/", "the member's home page: {here}");
        assert_eq!(b.h1().await, "Riverside Partnership Board");
        // Signed in now: another page opens too.
        let threads = format!("https://{}/threads", lan.addr);
        b.c.goto(&threads)
            .await
            .expect("open the threads on the LAN");
        assert!(b.h1().await.starts_with("Threads"));
    })
    .await;
}

/// Issue 19, case 6: no one reader lets someone in. Chloe asked to read Ana's sealed thread and Ben
/// agreed; Ana's page says who agreed and who is still asked, and Ana, the last, lets Chloe in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_lets_a_member_read_once_every_reader_agrees() {
    with_browser(LIMIT, |b| async move {
        keyboard_to(&b, "Ana's support plan").await;
        b.assert_shows(&[
            "May Chloe read it?",
            "Chloe asked to read it: “I book the rooms and the breaks”",
            "Every reader, and everyone who was one, must agree before Chloe can read it. Any of them can say no, with a reason.",
            "Ben agreed.",
            "Still waiting for you.",
            "Ben agreed that Chloe may read it",
        ])
        .await;
        b.assert_axe_clean("a request every reader answers").await;
        picture(&b, "sealed-consent").await;
        let yes = "Yes: let Chloe read it now";
        b.tab_until(yes, |f| f.is_button(yes)).await;
        b.activate(ENTER).await;
        b.assert_shows(&["Its readers: Ana, Ben, Chloe", "Ana let Chloe read it"])
            .await;
        let main = b.main_text().await;
        assert!(!main.contains("May Chloe read it?"), "{main}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_sees_why_a_sealed_thread_is_closed_and_asks_to_read_it() {
    with_browser(LIMIT, |b| async move {
        keyboard_to(&b, "Ben's health").await;
        b.assert_shows(&[
            "This thread is sealed",
            "Its readers: Ben, Chloe",
            "You are not one of its readers, so its messages are not shown to you.",
        ])
        .await;
        let main = b.main_text().await;
        assert!(
            !main.contains("Messages"),
            "no messages for a non-reader: {main}"
        );
        assert!(!main.contains("Write a message"));
        b.tab_until("the box to say why", |f| f.name == "why").await;
        b.keys("I am Ben's supporter at meetings.").await;
        b.tab_until("Ask the readers", |f| f.is_button("Ask the readers"))
            .await;
        b.activate(ENTER).await;
        b.assert_shows(&["Ana asked to read it: “I am Ben's supporter at meetings.”"])
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_starts_a_sealed_thread_with_a_reader_and_a_reason() {
    with_browser(LIMIT, |b| async move {
        b.tab_until("the Threads menu item", |f| {
            f.region == "nav" && f.is_link("Threads")
        })
        .await;
        b.activate(ENTER).await;
        b.tab_until("Start a new thread", |f| f.is_link("Start a new thread"))
            .await;
        b.activate(ENTER).await;
        b.tab_until("the title box", |f| f.name == "title").await;
        b.keys("Travel money").await;
        // The questions about readers are closed until a sealed thread is chosen (the script opens
        // them; without it they are one Enter away).
        let open = "return document.querySelector('details.sealed-options').open;";
        assert_eq!(b.js(open, vec![]).await, false);
        b.tab_until("who can read it", |f| f.name == "who").await;
        b.keys(ARROW_DOWN).await;
        assert!(b.focused().await.text.contains("Only the members I choose"));
        assert_eq!(b.js(open, vec![]).await, true);
        b.tab_until("Ben's box", |f| f.tag == "input" && f.text == "Ben")
            .await;
        b.keys(SPACE).await;
        b.tab_until("the reason box", |f| f.name == "reason").await;
        b.keys("It is about one member's money.").await;
        b.tab_until("Start the thread", |f| f.is_button("Start the thread"))
            .await;
        b.activate(ENTER).await;
        b.assert_h1("Travel money").await;
        b.assert_shows(&[
            "This thread is sealed",
            "Why it is sealed: It is about one member's money.",
            "Its readers: Ana, Ben",
            "You are one of its readers.",
        ])
        .await;
    })
    .await;
}

const TABBABLE_IN_MAIN_JS: &str = "return document.querySelectorAll(\
    'main a[href], main button, main textarea, main select, main input:not([type=hidden]), \
     main [tabindex]:not([tabindex=\"-1\"])').length;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_link_is_the_first_tab_stop_and_focus_is_always_visible() {
    with_browser(LIMIT, |b| async move {
        let mut report = String::new();
        for case in pages(&b.ids, b.port) {
            let Open::Get(path) = &case.open else {
                continue;
            };
            b.open(path).await;
            let first = b.tab().await;
            assert!(
                first.is_link("Skip to the page") && first.href == "#main",
                "{}: the first Tab stop should be the skip link, not {}",
                case.name,
                first.describe()
            );
            // The skip link takes the focus past the menu, to <main>, so the next Tab stop is in it.
            b.keys(ENTER).await;
            let main = b.focused().await;
            assert_eq!(
                main.tag, "main",
                "{}: the skip link should focus <main>",
                case.name
            );
            let next = b.tab().await;
            let tabbable = b.js(TABBABLE_IN_MAIN_JS, vec![]).await;
            assert!(
                next.region == "main" || tabbable == 0,
                "{}: after the skip link, Tab should go into <main>, not to {}",
                case.name,
                next.describe()
            );
            // Every Tab stop, from the top, shows where the focus is (`tab` checks each one).
            b.open(path).await;
            let mut stops = Vec::new();
            for _ in 0..60 {
                let f = b.tab().await;
                if f.is_body() || (!stops.is_empty() && f.is_link("Skip to the page")) {
                    break;
                }
                stops.push(f.describe());
            }
            let _ = writeln!(report, "{}: {} Tab stops", case.name, stops.len());
        }
        println!("{report}");
    })
    .await;
}
