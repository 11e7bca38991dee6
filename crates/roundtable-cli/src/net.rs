//! The network commands: `serve`, `sync`, `invite`, `join`, `peers`.
//!
//! `sync`, `invite`, `join` and `peers` are thin callers of `roundtable_app::net`: this file makes
//! the runtime, picks the timeouts, and turns what the application layer returns into words and
//! JSON. `serve` (a long-running node with live sync, mDNS and the web page) is still built here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use iroh::protocol::Router;
use roundtable_app::AppError;
use roundtable_app::net::{self as app, NetConfig};
use roundtable_core::{DeviceKey, GroupId};
use roundtable_store::Home;
use roundtable_sync::net::{bind, dial_addr, local_addrs, via_relay};
use roundtable_sync::{ALPN, JOIN_ALPN, Node, Ticket};
use serde_json::json;

use crate::{Out, refuse};

/// How long `join` waits for the group's record (and again to pass on this device's key).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the network runtime")
}

/// The application layer's error, with the command to type instead where a ticket of the other
/// kind was given (its messages name no command).
fn net_error(e: AppError) -> anyhow::Error {
    match e {
        AppError::IsAnInvitation => {
            refuse("this is an invitation: use `roundtable join TICKET --name NAME`")
        }
        AppError::NotAnInvitation => {
            refuse("this ticket is not an invitation: use `roundtable sync TICKET`")
        }
        AppError::IsADeviceLink => refuse(
            "this is a link for another device of yours: on that device use `roundtable device join TICKET --name NAME`",
        ),
        AppError::NotADeviceLink => refuse(
            "this ticket is not a device link: on your other device run `roundtable device link` \
             and use the ticket it shows",
        ),
        AppError::HomeExists(dir) => refuse(format!(
            "this device already has a home at {}: a linked device starts with a new one (choose \
             another folder with --home)",
            dir.display()
        )),
        e => anyhow::Error::new(e),
    }
}

/// Says why this device's encryption key is not published yet; the sync itself succeeded.
fn key_note(note: Option<AppError>) {
    if let Some(e) = note {
        let e = anyhow::Error::new(e);
        eprintln!("roundtable: note: could not publish this device's encryption key yet ({e:#})");
    }
}

fn net_config(listen: &[SocketAddr], relay: &Option<String>) -> anyhow::Result<NetConfig> {
    let relay = relay
        .as_deref()
        .map(|u| {
            u.parse::<iroh::RelayUrl>()
                .map_err(|e| anyhow!("--relay {u} is not a relay URL: {e}"))
        })
        .transpose()?;
    Ok(NetConfig {
        listen: listen.to_vec(),
        relay,
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn spawn_poller(node: Node) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Err(e) = node.poll_local().await {
                eprintln!("roundtable: could not read new local entries: {e}");
            }
        }
    });
}

/// While serving, a device added to the group (by a peer, live) publishes its encryption key as soon
/// as it holds its membership, as a device does after `sync` or `import`. Checked at start, then
/// every 5 seconds until done; the entry it writes is pushed to live peers by the poller.
fn spawn_profile_publisher(dir: PathBuf, key: &DeviceKey, pass: Option<String>, group: GroupId) {
    let key = DeviceKey::from_secret(&key.secret_bytes());
    tokio::spawn(async move {
        let key = std::sync::Arc::new(key);
        loop {
            let (dir, key, pass) = (dir.clone(), key.clone(), pass.clone());
            let done = tokio::task::spawn_blocking(move || {
                let home = Home::open(&dir).ok()?;
                let mut g = home.open_group(&group).ok()?;
                let me = key.device_id();
                if !g.record.active_devices().contains(&me) {
                    return Some(false);
                }
                crate::sealed::publish_profile(&home, &key, pass.as_deref(), &mut g).ok()?;
                Some(true)
            })
            .await;
            // Published (or already there): nothing more to do for this serve.
            if matches!(done, Ok(Some(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
}

pub struct ServeArgs<'a> {
    pub dir: &'a Path,
    pub key: DeviceKey,
    pub pass: Option<String>,
    pub group: GroupId,
    pub listen: &'a [SocketAddr],
    pub relay: &'a Option<String>,
    pub connect: &'a [String],
    pub mdns: bool,
    /// Also serve the members' web page on this port of 127.0.0.1 (0: any free port).
    pub web: Option<u16>,
}

/// `serve`: prints `{"ticket", "device_id", "addrs"}` as its first line, then serves until stopped.
pub fn serve(a: ServeArgs<'_>) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = net_config(a.listen, a.relay)?;
        let device = a.key.device_id();
        let ep = bind(&a.key, &cfg, vec![ALPN.to_vec(), JOIN_ALPN.to_vec()])
            .await
            .map_err(AppError::from)?;
        spawn_profile_publisher(a.dir.to_path_buf(), &a.key, a.pass.clone(), a.group);
        let node = Node::giving_keys(a.dir.to_path_buf(), a.key, a.pass.clone());
        node.load_groups().await.map_err(AppError::from)?;
        let router = Router::builder(ep.clone())
            .accept(ALPN, node.sync_handler())
            .accept(JOIN_ALPN, node.join_handler())
            .spawn();
        let addrs = local_addrs(&ep);
        let ticket = Ticket {
            group: a.group,
            device,
            addrs: addrs.clone(),
            invite: None,
            link: None,
        }
        .encode();
        let mut line = json!({
            "ticket": ticket,
            "device_id": device.to_string(),
            "addrs": addrs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        });
        // With --web, the members' web page runs alongside; its link joins the first line.
        if let Some(port) = a.web {
            let cfg = roundtable_web::WebConfig {
                home_dir: a.dir.to_path_buf(),
                passphrase: a.pass.clone(),
                port,
                // `serve` serves sync itself.
                sync: None,
                lan: None,
            };
            let (_addr, url, server) = roundtable_web::serve_with(cfg, true)
                .await
                .context("could not start the web page")?;
            line["url"] = json!(url);
            tokio::spawn(async move {
                if let Err(e) = server.await {
                    eprintln!("roundtable: the web page stopped: {e}");
                }
            });
        }
        // For `invite` run on this home meanwhile: it names these addresses, and this node answers.
        app::announce_serve(a.dir, device, &addrs)
            .context("could not write serve.json in the home")?;
        crate::write_stdout(&line.to_string()).context("could not write to standard output")?;
        if a.mdns {
            let (ep, node, group) = (ep.clone(), node.clone(), a.group);
            tokio::spawn(async move {
                if let Err(e) = roundtable_sync::lan::discover_and_sync(ep, node, group).await {
                    eprintln!("roundtable: {e}; share the ticket instead");
                }
            });
        } else {
            eprintln!(
                "roundtable: local network discovery is off (--no-mdns); share the ticket instead"
            );
        }
        spawn_poller(node.clone());
        for t in a.connect {
            let t = Ticket::decode(t)?;
            let (node, ep, cfg) = (node.clone(), ep.clone(), cfg.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(addr) = dial_addr(&t.device, &t.addrs) else {
                        return;
                    };
                    let addr = via_relay(addr, &cfg);
                    if let Err(e) = node.sync_with(&ep, addr, t.group, true).await {
                        eprintln!(
                            "roundtable: live sync with {} stopped: {e}; trying again",
                            t.device
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        eprintln!("roundtable: serving; stop with Ctrl+C");
        wait_for_stop().await;
        app::withdraw_serve(a.dir);
        let _ = tokio::time::timeout(Duration::from_secs(3), router.shutdown()).await;
        Ok(Out {
            json: serde_json::Value::Null,
            words: String::new(),
        })
    })
}

/// `sync TICKET`: one sync with a serving device.
pub fn sync(
    dir: &Path,
    key: DeviceKey,
    pass: Option<&str>,
    ticket: &str,
    timeout: u64,
    relay: &Option<String>,
) -> anyhow::Result<Out> {
    let cfg = net_config(&[], relay)?;
    let rt = runtime()?;
    let report = rt
        .block_on(app::sync_once(
            dir,
            &key,
            pass,
            ticket,
            &cfg,
            Duration::from_secs(timeout),
        ))
        .map_err(net_error)?;
    key_note(report.key_note);
    let stats = report.stats;
    Ok(Out {
        json: json!({ "received": stats.received, "sent": stats.sent, "rejected": stats.rejected,
                      "bytes_sent": stats.bytes_sent, "bytes_received": stats.bytes_received }),
        words: format!(
            "Synced: {} new entries received, {} sent, {} rejected (kept aside with the reason).",
            stats.received, stats.sent, stats.rejected
        ),
    })
}

/// `sync --nearby`: one sync with every member's device of the group found on the local network.
pub fn sync_nearby(
    dir: &Path,
    key: DeviceKey,
    pass: Option<&str>,
    group: GroupId,
    timeout: u64,
    relay: &Option<String>,
) -> anyhow::Result<Out> {
    let cfg = net_config(&[], relay)?;
    let rt = runtime()?;
    let report = rt
        .block_on(app::sync_nearby(
            dir,
            &key,
            pass,
            group,
            &cfg,
            Duration::from_secs(timeout),
        ))
        .map_err(|e| match e {
            AppError::NobodyNearby => refuse(format!(
                "{e} (looked for {timeout} seconds; `roundtable serve` must run on the other \
                 device, on the same network; or use `roundtable sync TICKET`)"
            )),
            e => net_error(e),
        })?;
    key_note(report.key_note);
    for (d, e) in &report.failed {
        eprintln!("roundtable: note: could not sync with {d} (found nearby): {e}");
    }
    let synced: Vec<_> = report
        .synced
        .iter()
        .map(|s| {
            json!({ "device_id": s.device.to_string(), "name": s.name.clone().unwrap_or_default(),
                    "received": s.stats.received, "sent": s.stats.sent, "rejected": s.stats.rejected,
                    "bytes_sent": s.stats.bytes_sent, "bytes_received": s.stats.bytes_received })
        })
        .collect();
    let words = report
        .synced
        .iter()
        .map(|s| {
            format!(
                "Synced with {} ({}): {} new entries received, {} sent, {} rejected.",
                s.name.as_deref().unwrap_or("a device"),
                s.device,
                s.stats.received,
                s.stats.sent,
                s.stats.rejected
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Out {
        json: json!({ "synced": synced }),
        words,
    })
}

fn qr(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

/// `invite`: prints a one-time ticket; serves it here unless `serve` already runs on this home.
pub fn invite(
    dir: &Path,
    key: DeviceKey,
    group: GroupId,
    minutes: u64,
    json_mode: bool,
) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let inv = app::invite(dir, &key, group, minutes, &NetConfig::default())
            .await
            .map_err(net_error)?;
        let ticket = &inv.ticket;
        let words = format!(
            "Give this invitation to the new member. It works once, for {minutes} minutes.\n{ticket}\n{}",
            qr(ticket)
        );
        let out = Out {
            json: json!({ "ticket": ticket }),
            words,
        };
        let Some(host) = inv.host else {
            return Ok(out);
        };
        // No `serve` here: serve this invitation until it is used (and the newcomer has synced) or expires.
        crate::print_out(&out, json_mode).context("could not write to standard output")?;
        let hosted = host
            .start(|e| eprintln!("roundtable: could not read new local entries: {e}"))
            .await
            .map_err(net_error)?;
        eprintln!("roundtable: waiting for the new member to join (Ctrl+C to stop)");
        hosted.until_used().await.map_err(net_error)?;
        Ok(Out {
            json: serde_json::Value::Null,
            words: String::new(),
        })
    })
}

/// Where `device link` answers.
pub struct LinkNet<'a> {
    pub listen: &'a [SocketAddr],
    pub relay: &'a Option<String>,
}

/// `device link`: prints a one-time link for another device of this member, then answers it
/// until it is used (and the new device has synced) or expires.
pub fn device_link(
    dir: &Path,
    key: DeviceKey,
    pass: Option<String>,
    group: GroupId,
    minutes: u64,
    net: &LinkNet<'_>,
    json_mode: bool,
) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = net_config(net.listen, net.relay)?;
        let link = roundtable_app::link_device(dir, &key, pass.as_deref(), group, minutes, &cfg)
            .await
            .map_err(net_error)?;
        let minutes = link.minutes;
        answer_link(
            link,
            format!(
                "On your new device, run `roundtable device join TICKET --name NAME` with this link. It works once, for {minutes} minutes. Keep it to yourself: it makes a device yours."
            ),
            "your new device",
            "roundtable device link",
            json_mode,
        )
        .await
    })
}

/// Prints a device or recovery link (`words`, the ticket and its QR code; or JSON), then answers
/// it until it is used; exit 1 if it runs out unused.
async fn answer_link(
    link: app::Invitation,
    words: String,
    who: &str,
    again: &str,
    json_mode: bool,
) -> anyhow::Result<Out> {
    let ticket = &link.ticket;
    crate::print_out(
        &Out {
            json: json!({ "ticket": ticket, "expires_ms": link.expires_ms }),
            words: format!("{words}\n{ticket}\n{}", qr(ticket)),
        },
        json_mode,
    )
    .context("could not write to standard output")?;
    let Some(host) = link.host else {
        return Err(anyhow!("the link has no device to answer it"));
    };
    let hosted = host
        .start(|e| eprintln!("roundtable: could not read new local entries: {e}"))
        .await
        .map_err(net_error)?;
    eprintln!("roundtable: waiting for {who} (Ctrl+C to stop)");
    if !hosted.until_used().await.map_err(net_error)? {
        return Err(refuse(format!(
            "the link was not used in time; make a new one with `{again}`"
        )));
    }
    Ok(Out {
        json: serde_json::Value::Null,
        words: String::new(),
    })
}

/// `member recover MEMBER_ID`: prints a one-time recovery link for that member's new device,
/// then answers it by proposing to the group that the device is theirs.
pub fn member_recover(
    dir: &Path,
    key: DeviceKey,
    group: GroupId,
    member: roundtable_core::MemberId,
    minutes: u64,
    net: &LinkNet<'_>,
    json_mode: bool,
) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = net_config(net.listen, net.relay)?;
        let link = roundtable_app::recover_link(dir, &key, group, member, minutes, &cfg)
            .await
            .map_err(|e| match e {
                AppError::OwnSeat => refuse(
                    "this is your own seat: to add a device of yours use `roundtable device link`",
                ),
                e => net_error(e),
            })?;
        let minutes = link.minutes;
        answer_link(
            link,
            format!(
                "On their new device, they run `roundtable device join TICKET --name NAME` with this link. It works once, for {minutes} minutes. Then the group is asked to agree that the device is theirs."
            ),
            "the new device",
            "roundtable member recover",
            json_mode,
        )
        .await
    })
}

/// `device join TICKET --name NAME`: on a member's new device, takes the link and syncs the group.
pub fn device_join(
    dir: &Path,
    pass: Option<&str>,
    ticket: &str,
    name: &str,
    relay: &Option<String>,
) -> anyhow::Result<Out> {
    let rt = runtime()?;
    let cfg = net_config(&[], relay)?;
    let j = rt
        .block_on(roundtable_app::join_device(
            dir,
            pass,
            ticket,
            name,
            &cfg,
            JOIN_TIMEOUT,
        ))
        .map_err(net_error)?;
    if pass.is_none() {
        eprintln!(
            "roundtable: warning: your device key is stored without a passphrase (readable only by you)."
        );
    }
    let received = j.stats.as_ref().map(|s| s.received).unwrap_or(0);
    if j.waiting {
        return Ok(Out {
            json: json!({
                "member_id": j.member.to_string(),
                "device_id": j.device.to_string(),
                "group_id": j.group.to_string(),
                "entry_id": j.entry.to_string(),
                "proposal_id": j.entry.to_string(),
                "synced": false,
            }),
            words: format!(
                "The group is asked to agree that this device ({name}) is yours. When it agrees, sync with a member's device (`roundtable sync TICKET`) to get the group's record.\nYour member id: {}\nThis device's id: {}\nThe proposal: {}",
                j.member, j.device, j.entry
            ),
        });
    }
    Ok(Out {
        json: json!({
            "member_id": j.member.to_string(),
            "device_id": j.device.to_string(),
            "group_id": j.group.to_string(),
            "entry_id": j.entry.to_string(),
            "synced": j.stats.is_some(),
        }),
        words: format!(
            "This device is now yours ({name}), and holds the group's record ({received} entries received).\nYour member id: {}\nThis device's id: {}",
            j.member, j.device
        ),
    })
}

/// `join TICKET --name NAME`: on a new device, proves the invitation, is added, and syncs the group.
pub fn join(
    dir: &Path,
    pass: Option<&str>,
    ticket: &str,
    name: &str,
    needs: &str,
) -> anyhow::Result<Out> {
    let joining = app::Joining::start(dir, pass, ticket, name, needs).map_err(net_error)?;
    if joining.new_home() && pass.is_none() {
        eprintln!(
            "roundtable: warning: your device key is stored without a passphrase (readable only by you)."
        );
    }
    let rt = runtime()?;
    let joined = rt
        .block_on(joining.finish(&NetConfig::default(), JOIN_TIMEOUT))
        .map_err(net_error)?;
    key_note(joined.key_note);
    let me = joined.member;
    let words = match &joined.stats {
        Some(stats) => format!(
            "Welcome, {name}. You are now a member, and this device holds the group's record ({} entries received).\nYour member id: {me}",
            stats.received
        ),
        None => format!(
            "Thank you, {name}. The group has been asked whether you can join: you join when enough members agree. Then run `roundtable sync` with a member's ticket to get the group's record.\nYour member id: {me}"
        ),
    };
    Ok(Out {
        json: json!({
            "member_id": me.to_string(),
            "group_id": joined.group.to_string(),
            "proposal_id": joined.proposal.to_string(),
            "joined": joined.joined,
        }),
        words,
    })
}

/// `peers`: devices this one has synced with.
pub fn peers(home: &Home) -> anyhow::Result<Out> {
    let peers = app::peers(home)?;
    let list: Vec<_> = peers
        .iter()
        .map(|p| json!({ "device_id": p.device.to_string(), "name": p.name.clone().unwrap_or_default(), "last_sync": p.last_sync_ms }))
        .collect();
    let words = if peers.is_empty() {
        "This device has not synced with anyone yet.".to_string()
    } else {
        peers
            .iter()
            .map(|p| {
                format!(
                    "{} ({}), last synced at {} ms",
                    p.name.as_deref().unwrap_or("unknown device"),
                    p.device,
                    p.last_sync_ms
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Out {
        json: json!({ "peers": list }),
        words,
    })
}

/// What `web` is started with.
pub struct WebArgs<'a> {
    pub dir: &'a Path,
    pub pass: Option<String>,
    pub port: u16,
    pub listen: &'a [SocketAddr],
    pub relay: &'a Option<String>,
    pub mdns: bool,
    /// `--lan`: also serve the page over TLS to phones and tablets let in on the local network.
    pub lan: bool,
    /// `--lan-listen ADDR`: where the LAN listener binds (default: every IPv4 interface).
    pub lan_listen: Option<SocketAddr>,
}

/// `web`: the members' web page on 127.0.0.1 (and with `--lan` on the local network, over TLS).
/// Prints `{"url"}` (with `--lan` also `"lan_urls"` and `"fingerprint"`) as its first line, serves
/// until stopped.
pub fn web(a: WebArgs<'_>) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = roundtable_web::WebConfig {
            home_dir: a.dir.to_path_buf(),
            passphrase: a.pass,
            port: a.port,
            // The page serves sync too, so that `roundtable web` alone is enough.
            sync: Some(roundtable_web::SyncConfig {
                net: net_config(a.listen, a.relay)?,
                mdns: a.mdns,
            }),
            lan: a.lan.then(|| roundtable_web::lan::LanConfig {
                listen: a.lan_listen,
                clock: None,
            }),
        };
        // A store refusal (a wrong passphrase, a home open to others) keeps its type: exit 1.
        let launched = match roundtable_web::launch(cfg).await {
            Ok(s) => s,
            Err(roundtable_web::WebError::Store(e)) => {
                return Err(anyhow::Error::new(e).context("could not start the web page"));
            }
            Err(roundtable_web::WebError::Lan(e @ roundtable_web::lan::LanError::NoHome(_))) => {
                return Err(anyhow::Error::new(e).context(
                    "could not open the web page to the local network (run `roundtable init`, \
                     or `roundtable web` without --lan to set this device up on its page)",
                ));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("could not start the web page")),
        };
        let url = launched.url.clone();
        // The first line is the contract: one JSON object, whatever --json says. Without --lan
        // it has "url" only; "lan_urls" and "fingerprint" are absent, never null.
        let mut first = json!({ "url": url });
        if let Some(l) = &launched.lan {
            first["lan_urls"] = json!(l.urls);
            first["fingerprint"] = json!(l.fingerprint);
        }
        crate::write_stdout(&first.to_string()).context("could not write to standard output")?;
        eprintln!("roundtable: open this link in your web browser: {url}");
        match &launched.lan {
            None => eprintln!("roundtable: it works only on this device; Ctrl+C stops it"),
            Some(l) => {
                for u in &l.urls {
                    eprintln!("roundtable: on a phone or tablet on this network, open {u}");
                }
                eprintln!(
                    "roundtable: then type the numbers that \"Let a phone or tablet in\" shows on \
                     this computer's Devices page; Ctrl+C stops it"
                );
                if l.new_certificate {
                    eprintln!(
                        "roundtable: this computer made a new certificate for its network address"
                    );
                }
                eprintln!("roundtable: its SHA-256 fingerprint is {}", l.fingerprint);
            }
        }
        tokio::select! {
            r = launched.server => r.context("the web page stopped")?,
            _ = wait_for_stop() => {}
        }
        Ok(Out {
            json: serde_json::Value::Null,
            words: String::new(),
        })
    })
}

pub struct KeepArgs<'a> {
    pub dir: &'a Path,
    pub key: DeviceKey,
    pub listen: &'a [SocketAddr],
    pub relay: &'a Option<String>,
    pub peers: &'a [String],
    pub health: Option<SocketAddr>,
    pub interval: Duration,
    /// Stop after this many rounds; None: until stopped.
    pub rounds: Option<u64>,
}

/// The metrics line of one round, in words.
fn keep_line(s: &roundtable_app::keep::KeepStats) -> String {
    let last = match s.last_sync_ms {
        None => "never".to_string(),
        Some(t) => {
            let ago = (roundtable_app::now_ms() - t).max(0) / 1000;
            format!("{ago} s ago")
        }
    };
    format!(
        "roundtable: keeper: {} entries held, {} peers seen, last sync {last} (round {}: {} devices synced, {} did not answer)",
        s.entries, s.peers_seen, s.rounds, s.synced, s.failed
    )
}

/// `keep`: runs a keeper. First line: `{"device_id", "addrs", "tickets", "health"}` (after the
/// first round, so a fresh keeper names the groups it just received); then one metrics line on
/// stderr per round, until stopped (or `rounds` are done).
pub fn keep(a: KeepArgs<'_>) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = net_config(a.listen, a.relay)?;
        let kc = roundtable_app::keep::KeepConfig::new(cfg, a.peers.to_vec(), a.health);
        let keeper = roundtable_app::keep::Keeping::start(a.dir, &a.key, kc)
            .await
            .map_err(|e| match e {
                AppError::NothingToKeep => refuse(format!(
                    "{e} (use `roundtable keep --peer TICKET`, with the ticket `roundtable serve` prints on a member's device)"
                )),
                AppError::HealthNotLoopback(_) => refuse(format!("{e} (--health)")),
                e => net_error(e),
            })?;
        let mut stats = keeper.round().await.map_err(net_error)?;
        let tickets: Vec<_> = keeper
            .groups()
            .into_iter()
            .map(|g| json!({ "group_id": g.to_string(), "ticket": keeper.ticket(g) }))
            .collect();
        let line = json!({
            "device_id": keeper.device().to_string(),
            "addrs": keeper.addrs().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "tickets": tickets,
            "health": keeper.health_addr().map(|h| format!("http://{h}/health")),
        });
        crate::write_stdout(&line.to_string()).context("could not write to standard output")?;
        eprintln!("{}", keep_line(&stats));
        eprintln!("roundtable: keeping; stop with Ctrl+C");
        let stop = wait_for_stop();
        tokio::pin!(stop);
        while a.rounds.is_none_or(|n| stats.rounds < n) {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(a.interval) => {}
            }
            match keeper.round().await {
                Ok(s) => {
                    stats = s;
                    eprintln!("{}", keep_line(&stats));
                }
                Err(e @ AppError::NotAKeeperKey(_)) => return Err(net_error(e)),
                Err(e) => eprintln!("roundtable: keeper: this round failed: {e}; trying again"),
            }
        }
        keeper.stop().await;
        Ok(Out {
            json: serde_json::Value::Null,
            words: String::new(),
        })
    })
}
