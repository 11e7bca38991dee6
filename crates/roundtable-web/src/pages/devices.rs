//! Reaching the others: the invitation page, the Devices page (this device's code, devices nearby,
//! "Sync now", live sync, when each device last synced) and the sync line in every page's header.
//!
//! **Invariant:** an invitation's secret is shown only on the page answering the POST that made
//! it (never in a URL, never cached: every response is `no-store`).

use std::collections::HashMap;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use roundtable_app::AppError;
use roundtable_app::net::SyncReport;
use roundtable_core::DeviceId;
use roundtable_store::Home;

use super::setup::{JoinedPage, net_config};
use super::time::ago;
use super::{Nav, PageResult, Problem, csrf_ok, group_name, name_of, names, page, when};
use crate::AppState;
use crate::lan::pairing::NewCode;

/// How long one "Sync now" may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Code {
    ticket: String,
    qr: String,
}

pub(crate) struct InviteView {
    ticket: String,
    qr: String,
    until: String,
    minutes_words: String,
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    nav: Nav,
    group: String,
    csrf: String,
    problem: String,
    invitation: Option<InviteView>,
}

pub(crate) struct DeviceRow {
    id: String,
    name: String,
    seen: String,
}

pub(crate) struct PeerRow {
    id: String,
    name: String,
    when: String,
}

/// The page on the local network, as the computer's Devices page shows it.
pub(crate) struct LanView {
    links: Vec<Code>,
    /// The certificate's SHA-256, in pairs of hex digits as browsers show it.
    fingerprint: String,
    browsers: Vec<BrowserRow>,
    /// The code just made, when the member pressed "Let a phone or tablet in".
    code: Option<PairCodeView>,
}

pub(crate) struct PairCodeView {
    digits: String,
    until: String,
}

pub(crate) struct BrowserRow {
    id: String,
    label: String,
    when: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    nav: Nav,
    csrf: String,
    status: String,
    message: String,
    ticket: Option<Code>,
    no_ticket: &'static str,
    nearby: Vec<DeviceRow>,
    nearby_note: &'static str,
    serving: bool,
    live: bool,
    peers: Vec<PeerRow>,
    /// Whether this page is shown on a phone or tablet over the local network.
    on_lan: bool,
    /// Phones and tablets: shown on the computer only, when the page is served on the network.
    lan: Option<LanView>,
    /// This member's own devices (their first one first).
    mine: Vec<MyDevice>,
    /// A one-time link just made for another device of this member.
    link: Option<Code>,
    /// The group's keepers now (always-on devices that hold the record, never write).
    keepers: Vec<KeeperRow>,
}

/// One of the group's keepers on the Devices page.
pub(crate) struct KeeperRow {
    id: String,
    /// The start of its device id, to tell it apart on the computer it runs on.
    short: String,
    name: String,
    /// "last synced with this device 5 minutes ago", or "not synced with this device yet".
    when: String,
}

/// One of the reader's own devices on the Devices page.
pub(crate) struct MyDevice {
    id: String,
    name: String,
    this: bool,
    stopped: bool,
}

/// `text` as an inline SVG QR code with a text alternative (an inline `<svg>` needs no `data:`
/// URL, which the page's Content-Security-Policy refuses).
pub(crate) fn qr_svg(text: &str, label: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            let start = svg.find("<svg").unwrap_or(0);
            let label = label.replace(['"', '<', '>', '&'], "");
            svg[start..].replacen(
                "<svg",
                &format!("<svg role=\"img\" aria-label=\"{label}\""),
                1,
            )
        }
        // Too long for a QR code: the text beside it is enough.
        Err(_) => String::new(),
    }
}

/// The header's sync line: "Up to date with Ben's device, 2 minutes ago" or "Not synced since
/// Tuesday". Empty before the keys are open or when there is no group.
pub(crate) fn sync_line(home: &Home, st: &AppState, now: i64) -> String {
    let Some(me) = st.me().map(|m| m.device) else {
        return String::new();
    };
    let Ok(g) = super::the_group(home, st) else {
        return String::new();
    };
    let r = &g.record;
    let devices = r.sync_devices();
    let names = names(r);
    let last = home
        .peers()
        .unwrap_or_default()
        .into_iter()
        .filter(|(d, _)| *d != me && devices.contains(d))
        .max_by_key(|(_, t)| *t);
    let mine = r
        .summary()
        .into_iter()
        .find(|(d, _, _)| *d == me)
        .and_then(|(_, _, tip)| r.entry(&tip).map(|(_, m)| m.time_ms));
    match last {
        None => "Not synced with another member's device yet".into(),
        Some((d, t)) if mine.is_none_or(|m| m <= t) => format!(
            "Up to date with {}'s device, {}",
            name_of(&names, &d),
            ago(now, t)
        ),
        Some((_, t)) => {
            let since = match ago(now, t).as_str() {
                "just now" => "a moment ago".to_string(),
                w => w.strip_prefix("on ").unwrap_or(w).to_string(),
            };
            format!("Not synced since {since}")
        }
    }
}

pub(crate) async fn invite_form(State(state): State<AppState>) -> PageResult {
    let group = super::with_group(&state, |_, _, g| Ok(group_name(&g.record))).await?;
    page(InvitePage {
        nav: Nav::Members,
        group,
        csrf: state.csrf_token().to_string(),
        problem: String::new(),
        invitation: None,
    })
}

pub(crate) async fn invite(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let minutes: u64 = match field("minutes").as_str() {
        "60" => 60,
        "1440" => 1440,
        "10080" => 10080,
        _ => {
            return Err(Problem::refused(
                "Please choose how long the invitation should work. Nothing was made.",
            ));
        }
    };
    let (group, gid) =
        super::with_group(&state, |_, _, g| Ok((group_name(&g.record), g.id()))).await?;
    let me = state.me().ok_or_else(Problem::locked)?;
    let inv = roundtable_app::net::invite(
        &state.inner.home_dir,
        &me.key,
        gid,
        minutes,
        &net_config(&state),
    )
    .await?;
    let until = when(inv.expires_ms);
    let ticket = inv.ticket.clone();
    if let Some(host) = inv.host {
        // No serving device on this home: this process answers the invitation until it is used
        // or expires.
        answer(host, "the invitation");
    }
    let minutes_words = match minutes {
        60 => "one hour",
        1440 => "one day",
        _ => "one week",
    };
    page(InvitePage {
        nav: Nav::Members,
        group: group.clone(),
        csrf: state.csrf_token().to_string(),
        problem: String::new(),
        invitation: Some(InviteView {
            qr: qr_svg(&ticket, &format!("A QR code of the invitation to {group}")),
            ticket,
            until,
            minutes_words: minutes_words.into(),
        }),
    })
}

pub(crate) async fn devices(State(state): State<AppState>) -> PageResult {
    devices_page(state, String::new()).await
}

async fn devices_page(state: AppState, message: String) -> PageResult {
    devices_page_with(state, message, None, None).await
}

/// The LAN part of the computer's Devices page.
fn lan_view(state: &AppState, code: Option<NewCode>) -> Option<LanView> {
    let lan = state.lan().filter(|_| !state.on_lan())?;
    let now = lan.pairing.now();
    let fingerprint = lan
        .fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Some(LanView {
        links: lan
            .urls
            .iter()
            .map(|u| Code {
                qr: qr_svg(u, &format!("A QR code of the address {u}")),
                ticket: u.clone(),
            })
            .collect(),
        fingerprint,
        browsers: lan
            .browsers
            .list()
            .into_iter()
            .map(|p| BrowserRow {
                id: p.hash,
                label: p.label,
                when: ago(now, p.paired_ms),
            })
            .collect(),
        code: code.map(|c| PairCodeView {
            digits: c.digits,
            until: when(c.until_ms),
        }),
    })
}

async fn devices_page_with(
    state: AppState,
    message: String,
    code: Option<NewCode>,
    link: Option<Code>,
) -> PageResult {
    let serving = state.serving();
    let now = (state.inner.clock)();
    let nearby = serving.as_ref().map(|s| s.nearby()).unwrap_or_default();
    let gid_ticket = serving.clone();
    let (status, peers, nearby, ticket, mine, keepers) =
        super::with_group(&state, move |home, st, g| {
            let names = names(&g.record);
            let me = super::my_id(st)?;
            let peers = roundtable_app::net::peers(home)?
                .into_iter()
                .filter(|p| p.device != me)
                .map(|p| PeerRow {
                    id: p.device.to_string(),
                    name: device_name(&names, &p.device, p.name.as_deref()),
                    when: ago(now, p.last_sync_ms),
                })
                .collect::<Vec<_>>();
            let nearby = nearby
                .into_iter()
                .filter(|n| n.device != me)
                .map(|n| DeviceRow {
                    id: n.device.to_string(),
                    name: device_name(&names, &n.device, None),
                    seen: ago(now, n.seen_ms),
                })
                .collect();
            let ticket = gid_ticket.map(|s| {
                let t = s.ticket(g.id());
                Code {
                    qr: qr_svg(&t, "A QR code of this device's code"),
                    ticket: t,
                }
            });
            let mine = super::seat(home, st)?
                .devices(g)
                .into_iter()
                .map(|d| MyDevice {
                    id: d.id.to_string(),
                    name: d.name.unwrap_or_else(|| "Your first device".into()),
                    this: d.this,
                    stopped: d.stopped,
                })
                .collect::<Vec<_>>();
            let seen: HashMap<DeviceId, i64> =
                home.peers().unwrap_or_default().into_iter().collect();
            let keepers = g
                .record
                .keepers()
                .into_iter()
                .map(|(d, name)| KeeperRow {
                    id: d.to_string(),
                    short: d.to_string()[..8].to_string(),
                    name,
                    when: match seen.get(&d) {
                        Some(t) => format!("last synced with this device {}", ago(now, *t)),
                        None => "not synced with this device yet".into(),
                    },
                })
                .collect::<Vec<_>>();
            Ok((
                sync_line(home, st, now),
                peers,
                nearby,
                ticket,
                mine,
                keepers,
            ))
        })
        .await?;
    let mdns = state.inner.sync.as_ref().is_some_and(|s| s.mdns);
    page(DevicesPage {
        nav: Nav::Devices,
        csrf: state.csrf_token().to_string(),
        status: format!("{status}."),
        message,
        ticket,
        no_ticket: if state.inner.syncing {
            "Sync is served by the Roundtable window that opened this page: its code is printed there."
        } else {
            "This page does not serve sync itself. Start it with \"roundtable web\" to sync from here."
        },
        nearby,
        nearby_note: if mdns {
            "Devices on the same Wi-Fi or cable appear here when their Roundtable is open."
        } else {
            "Looking for devices nearby is turned off on this device. Use a device's code instead."
        },
        serving: serving.is_some(),
        live: serving.as_ref().is_some_and(|s| s.live()),
        peers,
        on_lan: state.on_lan(),
        lan: lan_view(&state, code),
        mine,
        link,
        keepers,
    })
}

/// "Let a phone or tablet in": a new one-time code, shown on this page only (never in a URL).
pub(crate) async fn pair_code(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    csrf_ok(&state, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let Some(lan) = state.lan() else {
        return Err(Problem::refused(
            "Roundtable is not open to the local network now. Start it with \"roundtable web \
             --lan\" to let a phone or tablet in.",
        ));
    };
    let code = lan
        .pairing
        .new_code()
        .map_err(|e| Problem::refused(format!("No numbers were made: {e}.")))?;
    devices_page_with(state, String::new(), Some(code), None).await
}

/// "Sign this one out": the browser's cookie opens nothing from now on.
pub(crate) async fn unpair(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    csrf_ok(&state, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let Some(lan) = state.lan() else {
        return Err(Problem::refused(
            "Roundtable is not open to the local network now: nothing was changed.",
        ));
    };
    let id = form.get("browser").map(String::as_str).unwrap_or("");
    let message = match lan.browsers.remove(id).await {
        Ok(true) => "That phone or tablet is signed out. It needs new numbers to come back in.",
        Ok(false) => "That phone or tablet was signed out already.",
        Err(e) => return Err(Problem::refused(format!("Nothing was changed: {e}."))),
    };
    devices_page(state, message.into()).await
}

/// "Add another device of mine": a one-time link for the member's new device, answered by this
/// process for 10 minutes or until it is used. Made on the computer only: a phone or tablet let in
/// to the page is a browser of this device, not one of the member's devices.
pub(crate) async fn link(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    csrf_ok(&state, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let gid = super::with_group(&state, |_, _, g| Ok(g.id())).await?;
    let me = state.me().ok_or_else(Problem::locked)?;
    let l = roundtable_app::link_device(
        &state.inner.home_dir,
        &me.key,
        me.passphrase.as_deref(),
        gid,
        10,
        &net_config(&state),
    )
    .await?;
    let ticket = l.ticket.clone();
    if let Some(host) = l.host {
        answer(host, "the device link");
    }
    devices_page_with(
        state,
        "Here is a link for your new device. It works once, for 10 minutes.".into(),
        None,
        Some(Code {
            qr: qr_svg(&ticket, "A QR code of the link for your new device"),
            ticket,
        }),
    )
    .await
}

#[derive(Template)]
#[template(path = "recover.html")]
struct RecoverPage {
    nav: Nav,
    name: String,
    until: String,
    ticket: String,
    qr: String,
}

/// "Help Ben back onto a new device": a one-time recovery link for another member who lost every
/// device, answered by this process for 10 minutes or until it is used. Their new device's answer
/// becomes the group's proposal (`member.recover`, with this member's agree); no secret is sent, so
/// a paired browser may make one too.
pub(crate) async fn recover(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    csrf_ok(&state, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let member: DeviceId = id.parse().map_err(|_| Problem::not_found("such member"))?;
    let (gid, name) = super::with_group(&state, move |_, _, g| {
        Ok((g.id(), name_of(&names(&g.record), &member)))
    })
    .await?;
    let me = state.me().ok_or_else(Problem::locked)?;
    let l = roundtable_app::recover_link(
        &state.inner.home_dir,
        &me.key,
        gid,
        member,
        10,
        &net_config(&state),
    )
    .await?;
    let ticket = l.ticket.clone();
    if let Some(host) = l.host {
        answer(host, "the recovery link");
    }
    page(RecoverPage {
        nav: Nav::Members,
        until: when(l.expires_ms),
        qr: qr_svg(
            &ticket,
            &format!("A QR code of the link for {name}'s new device"),
        ),
        ticket,
        name,
    })
}

/// "Stop this device": one of the member's own devices, lost or broken.
pub(crate) async fn stop(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let Ok(device) = field("device").parse::<DeviceId>() else {
        return Err(Problem::refused(
            "Please choose one of your devices to stop. Nothing was changed.",
        ));
    };
    super::with_group(&state, move |home, st, g| {
        let me = st.me().ok_or_else(Problem::locked)?;
        let stopped =
            roundtable_app::stop_device(home, &me.key, me.passphrase.as_deref(), g.id(), device)?;
        st.set_enc(stopped.enc);
        Ok(())
    })
    .await?;
    devices_page(
        state,
        "That device is stopped. What it writes from now on is refused everywhere, and it cannot sync any more. \
         Your key for sealed threads is changed, so it cannot read what is sealed from now on. \
         Your other devices get the new key when they next sync with this one.".into(),
    )
    .await
}

/// Answers an invitation or a device link from this process until it is used or runs out.
fn answer(host: roundtable_app::net::InvitationHost, what: &'static str) {
    tokio::spawn(async move {
        match host.start(|_| {}).await {
            Ok(h) => {
                let _ = h.until_used().await;
            }
            Err(e) => eprintln!("roundtable: could not answer {what}: {e}"),
        }
    });
}

/// A device's name for the page: its member's name, else what is known of it.
fn device_name(
    names: &std::collections::BTreeMap<DeviceId, String>,
    d: &DeviceId,
    known: Option<&str>,
) -> String {
    match (names.get(d), known) {
        (Some(n), _) => format!("{n}'s device"),
        (None, Some(n)) => format!("{n}'s device"),
        (None, None) => format!(
            "a device that is not in this group ({})",
            &d.to_string()[..8]
        ),
    }
}

pub(crate) async fn sync_now(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let ticket = field("ticket").trim().to_string();
    let device = field("device");
    let serving = state.serving();
    let r: Result<SyncReport, AppError> = if !ticket.is_empty() {
        match &serving {
            Some(s) => s.sync_ticket(&ticket, SYNC_TIMEOUT).await,
            None => {
                let me = state.me().ok_or_else(Problem::locked)?;
                roundtable_app::net::sync_once(
                    &state.inner.home_dir,
                    &me.key,
                    me.passphrase.as_deref(),
                    &ticket,
                    &net_config(&state),
                    SYNC_TIMEOUT,
                )
                .await
            }
        }
    } else if let Ok(d) = device.parse::<DeviceId>() {
        let Some(s) = &serving else {
            return Err(Problem::refused(
                "This page does not serve sync itself: paste the other device's code instead.",
            ));
        };
        let gid = super::with_group(&state, |_, _, g| Ok(g.id())).await?;
        s.sync_device(gid, d, SYNC_TIMEOUT).await
    } else {
        return Err(Problem::refused(
            "Please paste the other device's code, or choose a device. Nothing was changed.",
        ));
    };
    match r {
        Ok(rep) => {
            let changed = rep.key_changed;
            if changed {
                // Given the member's new key by their other device: use it from now on.
                super::with_group(&state, |home, st, _| {
                    let me = st.me().ok_or_else(Problem::locked)?;
                    st.set_enc(roundtable_app::enc_keys(home, me.passphrase.as_deref())?);
                    Ok(())
                })
                .await?;
            }
            let who = super::with_group(&state, move |_, _, g| {
                Ok(device_name(&names(&g.record), &rep.device, None))
            })
            .await
            .unwrap_or_else(|_| "the other device".into());
            let s = rep.stats;
            devices_page(
                state,
                format!(
                    "Synced with {who}: {} new {} came to this device, {} went to theirs.{}",
                    s.received,
                    if s.received == 1 { "entry" } else { "entries" },
                    s.sent,
                    if changed {
                        " This device now has your new key for sealed threads."
                    } else {
                        ""
                    }
                ),
            )
            .await
        }
        Err(e) => {
            let why = sync_words(&e);
            let p = JoinedPage {
                nav: Nav::Devices,
                title: "This device could not sync".into(),
                picture: "not-shared",
                lines: vec![why, "Nothing on this device was lost or changed.".into()],
                next: "/devices",
                next_words: "Go back to the Devices page",
            };
            let status = if e.is_refusal() {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            Ok((status, axum::response::Html(p.render()?)).into_response())
        }
    }
}

/// Why a sync failed, in words.
pub(crate) fn sync_words(e: &AppError) -> String {
    use roundtable_app::net::SyncError;
    match e {
        AppError::Ticket(_) => "This is not a code Roundtable can read. Please copy the whole \
                                code again (it starts with \"rt\")."
            .into(),
        AppError::IsAnInvitation => "This code is an invitation for a new member, not a device to \
                                     sync with. A new member uses it on their welcome page."
            .into(),
        AppError::Sync(SyncError::Timeout) => {
            "The other device did not answer in time. Is its Roundtable open?".into()
        }
        AppError::Sync(SyncError::Refused(r)) => {
            format!("The other device said no: {}.", r.trim_end_matches('.'))
        }
        AppError::Sync(SyncError::BadAddress(_)) => "This device does not know where that device \
                                                      is now. Paste its code instead."
            .into(),
        e => super::sentence(&e.to_string()),
    }
}

pub(crate) async fn live(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    csrf_ok(&state, &field("csrf"))?;
    let Some(s) = state.serving() else {
        return Err(Problem::refused(
            "This page does not serve sync itself, so live sync cannot be turned on here.",
        ));
    };
    let on = field("live") == "on";
    s.set_live(on);
    devices_page(
        state,
        if on {
            "Live sync is on.".into()
        } else {
            "Live sync is off.".into()
        },
    )
    .await
}

/// Where `layout.html` wants the header's sync line.
const SYNC_MARK: &str = "<!--roundtable:sync-line-->";

/// Puts the sync line into a page's header (every page extends `layout.html`), then the meaning
/// of the page's own words at its end ([`super::own_words::explain`]), header included.
pub(crate) async fn with_sync_line(
    state: &AppState,
    r: axum::response::Response,
) -> axum::response::Response {
    let html = r
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return r;
    }
    let (parts, body) = r.into_parts();
    // The body is a page this server has just rendered in memory: no limit to guard.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return axum::response::Response::from_parts(parts, axum::body::Body::empty());
    };
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains(SYNC_MARK) {
        return axum::response::Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let line = if state.me().is_some() {
        let st = state.clone();
        tokio::task::spawn_blocking(move || {
            let home = Home::open(&st.inner.home_dir).ok()?;
            Some(sync_line(&home, &st, (st.inner.clock)()))
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
    } else {
        String::new()
    };
    let fill = if line.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"sync-line\"><a href=\"/devices\">{}.</a></p>",
            askama_escape(&line)
        )
    };
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    axum::response::Response::from_parts(
        parts,
        axum::body::Body::from(super::own_words::explain(
            text.replacen(SYNC_MARK, &fill, 1),
        )),
    )
}

fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Signs out every other browser: a new token, kept in the home; this browser gets it at once.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    csrf_ok(&state, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.new_token())
        .await
        .map_err(|e| Problem::refused(format!("A background task failed: {e}.")))?
        .map_err(|e| Problem::refused(format!("Nothing was changed: {e}.")))?;
    let mut r = devices_page(
        state.clone(),
        "Every other browser is signed out. This one stays signed in.".into(),
    )
    .await?;
    let cookie = crate::security::cookie(&state);
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(r)
}
