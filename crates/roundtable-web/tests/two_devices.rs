//! A member who never opens a terminal: two devices, each from an empty home, driven in a real
//! Chromium through the pages only. Ana's first run starts a group and makes an invitation; Ben's
//! first run joins with it; they sync with "Sync now"; Ben changes his needs; Ana starts a sealed
//! thread with Ben as its reader and Ben writes in it; Ana proposes, Ben gives his view with a
//! reason, Ana closes it; both devices then show the same record, and the audit page agrees. Every
//! page on the way passes axe-core, and the new pages are photographed for `docs/pictures/`.

mod browser_util;

use std::path::Path;
use std::time::Duration;

use browser_util::{Browser, picture, with_devices, with_prepared_devices};

async fn sync_with_first_peer(b: &Browser) {
    b.open("/devices").await;
    b.press("ul.devices form button").await;
    b.assert_shows(&["Synced with"]).await;
}

/// The href of the first link in `<main>` whose text contains `words`.
async fn link_to(b: &Browser, words: &str) -> String {
    let v = b
        .js(
            "for (const a of document.querySelectorAll('main a')) { if (a.textContent.includes(arguments[0])) return a.getAttribute('href'); } return null;",
            vec![serde_json::json!(words)],
        )
        .await;
    let path = b.path().await;
    v.as_str()
        .unwrap_or_else(|| panic!("no link with {words:?} on {path}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_start_join_sync_and_decide_on_the_pages_only() {
    with_devices(Duration::from_secs(400), 2, |devices| async move {
        let (ana, ben) = (devices[0].clone(), devices[1].clone());

        // Ana's first run: the welcome page, then a new group.
        ana.open("/").await;
        assert_eq!(ana.path().await, "/welcome");
        ana.assert_h1("Welcome to Roundtable").await;
        ana.assert_axe_clean("the welcome page").await;
        picture(&ana, "welcome").await;
        // Bad input changes nothing and says why.
        ana.press("button[value=start]").await;
        ana.assert_shows(&["Please write your name"]).await;
        ana.fill("#name", "Ana").await;
        ana.fill("#needs", "Large print, please").await;
        ana.fill("#group", "Garden board").await;
        ana.press("button[value=start]").await;
        assert_eq!(ana.path().await, "/");
        ana.assert_shows(&["Garden board"]).await;

        // An invitation, with its QR code and when it stops working.
        ana.open("/members").await;
        let invite = link_to(&ana, "Invite someone").await;
        ana.open(&invite).await;
        ana.assert_axe_clean("the invitation form").await;
        ana.press("form[action='/invite'] button").await;
        ana.assert_shows(&["works once", "one hour"]).await;
        ana.assert_axe_clean("the invitation").await;
        picture(&ana, "invite").await;
        let invitation = ana.value("#invitation-code").await;
        assert!(invitation.starts_with("rt"), "{invitation}");

        // Ben's first run: a wrong invitation first, then Ana's.
        ben.open("/").await;
        assert_eq!(ben.path().await, "/welcome");
        ben.fill("#name", "Ben").await;
        ben.fill("#needs", "Read aloud").await;
        ben.fill("#invitation", "rt-this-is-not-it").await;
        ben.press("button[value=join]").await;
        ben.assert_shows(&["not an invitation Roundtable can read", "Nothing was made"])
            .await;
        assert_eq!(ben.path().await, "/welcome");
        ben.fill("#invitation", &invitation).await;
        ben.press("button[value=join]").await;
        ben.assert_shows(&["You are in the group Garden board"])
            .await;
        ben.assert_axe_clean("the page after joining").await;
        picture(&ben, "joined").await;

        // Sync now, from Ben's Devices page.
        sync_with_first_peer(&ben).await;
        ben.assert_axe_clean("the Devices page").await;
        picture(&ben, "devices").await;
        ben.assert_shows(&["Ana's device: last synced"]).await;

        // Ben's needs are his to change; they reach Ana with the next sync.
        ben.open("/members").await;
        ben.fill("#my_needs", "Read aloud, and short sentences")
            .await;
        ben.press("form[action='/members/me'] button").await;
        sync_with_first_peer(&ben).await;
        ana.open("/members").await;
        ana.assert_shows(&["Ben", "Read aloud, and short sentences"])
            .await;
        ana.assert_axe_clean("the Members page").await;
        picture(&ana, "own-words").await;
        let line = ana
            .js(
                "return document.querySelector('header .sync-line').textContent;",
                vec![],
            )
            .await;
        assert!(
            line.as_str()
                .is_some_and(|l| l.starts_with("Up to date with Ben's device")),
            "the header's sync line: {line}"
        );

        // A sealed thread for Ana and Ben, with its reason.
        ana.open("/threads/new").await;
        ana.fill("#title", "Ana and Ben only").await;
        ana.check("input[name=who][value=sealed]").await;
        ana.js(
            "document.querySelector('details.sealed-options').open = true; return true;",
            vec![],
        )
        .await;
        ana.check("input[type=checkbox][name^=reader-]").await;
        ana.fill("#reason", "It is about Ben's support at meetings")
            .await;
        ana.press("form[action='/threads/new'] button[type=submit]")
            .await;
        let sealed = ana.path().await;
        assert!(sealed.starts_with("/threads/"), "{sealed}");
        ana.assert_shows(&["It is about Ben's support at meetings"])
            .await;

        // Ben gets it with the next sync, reads it and writes in it.
        sync_with_first_peer(&ben).await;
        ben.open("/threads").await;
        let href = link_to(&ben, "Ana and Ben only").await;
        ben.open(&format!("{href}/write")).await;
        ben.fill("#text", "Please keep a seat for my supporter next to me.")
            .await;
        ben.press("form button[type=submit]").await;
        ben.press("button[value=share]").await;
        ben.assert_shows(&["Please keep a seat for my supporter"])
            .await;
        sync_with_first_peer(&ben).await;
        ana.open(&sealed).await;
        ana.assert_shows(&["Please keep a seat for my supporter next to me."])
            .await;

        // A proposal in an open thread: Ben disagrees with a reason, Ana closes it.
        ana.open("/threads/new").await;
        ana.fill("#title", "Meeting rooms").await;
        ana.press("form[action='/threads/new'] button[type=submit]")
            .await;
        let open_thread = ana.path().await;
        ana.open(&format!("{open_thread}/propose")).await;
        ana.fill("#title", "A seat for supporters").await;
        ana.fill("#easy_read", "Supporters sit next to the member they help.")
            .await;
        ana.fill(
            "#full",
            "At every meeting, each supporter has a seat next to the member they support.",
        )
        .await;
        ana.press("form button[type=submit]").await;
        let proposal = ana.path().await;
        assert!(proposal.starts_with("/proposals/"), "{proposal}");
        sync_with_first_peer(&ben).await;
        ben.open(&proposal).await;
        ben.check("input[name=stance][value=disagree]").await;
        ben.press("form[action$='/stance'] button").await;
        ben.assert_shows(&["Please say why. A reason is needed when you disagree or block."])
            .await;
        ben.assert_axe_clean("the answer that needs a reason").await;
        picture(&ben, "answer-needs-reason").await;
        ben.check("input[name=stance][value=disagree]").await;
        ben.fill("#reason", "There is no lift to the room").await;
        ben.press("form[action$='/stance'] button").await;
        sync_with_first_peer(&ben).await;
        ana.open(&proposal).await;
        ana.assert_shows(&["There is no lift to the room"]).await;
        ana.check("input[name=stance][value=agree]").await;
        ana.press("form[action$='/stance'] button").await;
        ana.assert_shows(&["Everyone has answered."]).await;
        ana.open(&format!("{proposal}/close")).await;
        ana.assert_h1("Close").await;
        ana.assert_axe_clean("the close step").await;
        ana.fill("#outcome", "We ask for a room with a lift first.")
            .await;
        ana.press("form[action$='/close'] button").await;
        sync_with_first_peer(&ben).await;

        // The same record on both devices, and the auditor's check on the page.
        let mut seen = Vec::new();
        for (b, name) in [(&ana, "Ana"), (&ben, "Ben")] {
            b.open(&proposal).await;
            // The record's part of the page: all but the understanding checks, which are
            // addressed to the viewer.
            let text = b.main_text().await;
            let head = text
                .split("What people understood")
                .next()
                .unwrap_or_default();
            let tail = text
                .find("It is decided")
                .map(|i| &text[i..])
                .unwrap_or_default();
            let shared = format!("{head}{tail}");
            assert!(shared.contains("It is decided: it passed"), "{text}");
            assert!(shared.contains("1 agree, 0 not sure, 1 disagree"), "{text}");
            // Each page says "You" to its reader.
            let shared = shared
                .replace("You: ", &format!("{name}: "))
                .replace("What helps you:", &format!("What helps {name}:"));
            seen.push(shared);
            b.open("/audit").await;
            b.assert_shows(&["The record checks out."]).await;
        }
        assert_eq!(seen[0], seen[1], "both devices show the proposal alike");
        ana.assert_axe_clean("the audit page").await;
        picture(&ana, "audit").await;
        // Leaving asks first and says what happens (Ana does not leave).
        ana.open("/members/leave").await;
        ana.assert_shows(&[
            "Are you sure you want to leave",
            "Everything you wrote stays in the record",
        ])
        .await;
        ana.assert_axe_clean("the leave page").await;
        picture(&ana, "leave").await;
        // Ana helps Ben answer: it waits for Ben's yes, on Ben's own page.
        ana.open(&format!("{open_thread}/propose")).await;
        ana.fill("#title", "Tea at every meeting").await;
        ana.fill("#easy_read", "We have tea at every meeting.")
            .await;
        ana.fill("#full", "Tea and biscuits at every meeting.")
            .await;
        ana.press("form button[type=submit]").await;
        let tea = ana.path().await;
        ana.check("input[name=stance][value=agree]").await;
        ana.js(
            "document.querySelector('details.helping').open = true; return true;",
            vec![],
        )
        .await;
        ana.check("input[name=for]:not([value=''])").await;
        ana.press("form[action$='/stance'] button[type=submit]")
            .await;
        ana.assert_shows(&["Ana wrote this for Ben: Agree. Ben has not said yes yet"])
            .await;
        sync_with_first_peer(&ben).await;
        ben.open("/").await;
        ben.assert_shows(&[
            "The group is waiting for your answer",
            "Tea at every meeting",
        ])
        .await;
        ben.open(&tea).await;
        ben.assert_shows(&[
            "Ana wrote this answer for you: Agree.",
            "Is this what you think?",
        ])
        .await;
        ben.assert_axe_clean("a view typed for Ben").await;
        picture(&ben, "supporter").await;
        ben.press(".confirm-view button").await;
        ben.assert_shows(&["You (Ana wrote this for Ben, and Ben said yes): Agree"])
            .await;
        // Ben corrects his own words in an open thread (sealed words are never corrected).
        ben.open(&format!("{open_thread}/write")).await;
        ben.fill("#text", "I can come on Tuesdays.").await;
        ben.press("form button[type=submit]").await;
        ben.press("button[value=share]").await;
        ben.fill(
            "textarea[id^=fix-]",
            "I can come on Tuesdays and Thursdays.",
        )
        .await;
        ben.press("details.correct button").await;
        ben.assert_shows(&[
            "I can come on Tuesdays and Thursdays.",
            "This message was corrected.",
        ])
        .await;
        ben.assert_axe_clean("a corrected message").await;
        picture(&ben, "correct").await;
        sync_with_first_peer(&ben).await;
        ana.open(&tea).await;
        ana.assert_shows(&[
            "Ben (Ana wrote this for Ben, and Ben said yes): Agree",
            "1 of 2 has answered; waiting for you.",
        ])
        .await;
        ana.open(&format!("{tea}/close")).await;
        picture(&ana, "close-check").await;
        ana.open("/members/leave").await;
        ana.assert_axe_clean("the leave page").await;
        ana.open("/groups").await;
        ana.assert_axe_clean("the Groups page").await;
    })
    .await;
}

const PASSPHRASE: &str = "a long passphrase for Ana";

fn locked_home(dir: &Path, _: usize) {
    let (home, _) = roundtable_app::init(dir, "Ana", "", Some(PASSPHRASE)).expect("init");
    let (key, enc) = roundtable_app::unlock(&home, Some(PASSPHRASE)).expect("unlock");
    roundtable_app::Seat::new(&home, &key, Some(&enc))
        .create_group("Garden board", roundtable_core::Rule::Consent, 1)
        .expect("a group");
}

/// A locked device asks for its passphrase on the page: a wrong one is said plainly and changes
/// nothing, the right one opens the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_device_opens_with_its_passphrase_on_the_page() {
    with_prepared_devices(
        Duration::from_secs(120),
        1,
        locked_home,
        |devices| async move {
            let ana = devices[0].clone();
            ana.open("/").await;
            assert_eq!(ana.path().await, "/unlock");
            ana.assert_h1("This device is locked").await;
            ana.assert_axe_clean("the passphrase page").await;
            picture(&ana, "unlock").await;
            ana.fill("#passphrase", "not my passphrase").await;
            ana.press("form[action='/unlock'] button").await;
            ana.assert_shows(&["That passphrase is not right. Nothing was changed."])
                .await;
            ana.assert_axe_clean("the passphrase page with its message")
                .await;
            assert!(
                !ana.c
                    .current_url()
                    .await
                    .expect("url")
                    .as_str()
                    .contains("passphrase")
            );
            ana.fill("#passphrase", PASSPHRASE).await;
            ana.press("form[action='/unlock'] button").await;
            assert_eq!(ana.path().await, "/");
            ana.assert_shows(&["Garden board"]).await;
        },
    )
    .await;
}
