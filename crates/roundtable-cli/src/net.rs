//! The network commands: `serve`, `sync`, `invite`, `join`, `peers`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use iroh::protocol::Router;
use roundtable_core::{DeviceKey, GroupId};
use roundtable_store::Home;
use roundtable_sync::frame::Join;
use roundtable_sync::net::{NetConfig, bind, dial_addr, local_addrs};
use roundtable_sync::{ALPN, JOIN_ALPN, Node, SyncError, Ticket};
use serde_json::json;

use crate::{Out, refuse};

/// Where a running `serve` says how to reach it, so `invite` can use its addresses.
const SERVE_FILE: &str = "serve.json";

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the network runtime")
}

fn sync_error(e: SyncError) -> anyhow::Error {
    match e {
        SyncError::Refused(_)
        | SyncError::Timeout
        | SyncError::Network(_)
        | SyncError::Protocol(_)
        | SyncError::Frame(_) => refuse(e.to_string()),
        other => anyhow::Error::new(other),
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
        let ep = bind(&a.key, &cfg, vec![ALPN.to_vec(), JOIN_ALPN.to_vec()]).await.map_err(sync_error)?;
        spawn_profile_publisher(a.dir.to_path_buf(), &a.key, a.pass.clone(), a.group);
        let node = Node::new(a.dir.to_path_buf(), a.key);
        node.load_groups().await.map_err(sync_error)?;
        let router = Router::builder(ep.clone())
            .accept(ALPN, node.sync_handler())
            .accept(JOIN_ALPN, node.join_handler())
            .spawn();
        let addrs = local_addrs(&ep);
        let ticket = Ticket { group: a.group, device, addrs: addrs.clone(), invite: None }.encode();
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
        let serve_file = a.dir.join(SERVE_FILE);
        let note = json!({ "pid": std::process::id(), "addrs": line["addrs"], "device_id": line["device_id"] });
        std::fs::write(&serve_file, note.to_string()).context("could not write serve.json in the home")?;
        crate::write_stdout(&line.to_string()).context("could not write to standard output")?;
        if a.mdns {
            let (ep, node, group) = (ep.clone(), node.clone(), a.group);
            tokio::spawn(async move {
                if let Err(e) = roundtable_sync::lan::discover_and_sync(ep, node, group).await {
                    eprintln!("roundtable: {e}; share the ticket instead");
                }
            });
        } else {
            eprintln!("roundtable: local network discovery is off (--no-mdns); share the ticket instead");
        }
        spawn_poller(node.clone());
        for t in a.connect {
            let t = Ticket::decode(t)?;
            let (node, ep) = (node.clone(), ep.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(addr) = dial_addr(&t.device, &t.addrs) else { return };
                    if let Err(e) = node.sync_with(&ep, addr, t.group, true).await {
                        eprintln!("roundtable: live sync with {} stopped: {e}; trying again", t.device);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        eprintln!("roundtable: serving; stop with Ctrl+C");
        wait_for_stop().await;
        let _ = std::fs::remove_file(&serve_file);
        let _ = tokio::time::timeout(Duration::from_secs(3), router.shutdown()).await;
        Ok(Out { json: serde_json::Value::Null, words: String::new() })
    })
}

/// `sync TICKET`: one sync with a serving device.
pub fn sync(
    dir: &Path,
    key: DeviceKey,
    pass: Option<&str>,
    ticket: &str,
    timeout: u64,
) -> anyhow::Result<Out> {
    let t = Ticket::decode(ticket)?;
    if t.invite.is_some() {
        return Err(refuse(
            "this is an invitation: use `roundtable join TICKET --name NAME`",
        ));
    }
    let rt = runtime()?;
    let stats = rt.block_on(async {
        let ep = bind(&key, &NetConfig::default(), vec![ALPN.to_vec()])
            .await
            .map_err(sync_error)?;
        let node = Node::new(
            dir.to_path_buf(),
            DeviceKey::from_secret(&key.secret_bytes()),
        );
        let addr = dial_addr(&t.device, &t.addrs).map_err(sync_error)?;
        let r = tokio::time::timeout(
            Duration::from_secs(timeout),
            node.sync_with(&ep, addr.clone(), t.group, false),
        )
        .await;
        // A device that now holds a group it was added to publishes its encryption key, and
        // passes it on at once so that others can make it a reader.
        if matches!(r, Ok(Ok(_))) && crate::sealed::publish_after_sync(dir, &key, pass, &t.group) {
            let _ = tokio::time::timeout(
                Duration::from_secs(timeout),
                node.sync_with(&ep, addr, t.group, false),
            )
            .await;
        }
        ep.close().await;
        match r {
            Err(_) => Err(sync_error(SyncError::Timeout)),
            Ok(r) => r.map_err(sync_error),
        }
    })?;
    Ok(Out {
        json: json!({ "received": stats.received, "sent": stats.sent, "rejected": stats.rejected,
                      "bytes_sent": stats.bytes_sent, "bytes_received": stats.bytes_received }),
        words: format!(
            "Synced: {} new entries received, {} sent, {} rejected (kept aside with the reason).",
            stats.received, stats.sent, stats.rejected
        ),
    })
}

fn serve_note(dir: &Path) -> Option<Vec<SocketAddr>> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(SERVE_FILE)).ok()?).ok()?;
    let pid = v["pid"].as_u64()?;
    if cfg!(target_os = "linux") && !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some(
        v["addrs"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str()?.parse().ok())
            .collect(),
    )
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
        let device = key.device_id();
        let running = serve_note(dir);
        let (ep, node) = match running {
            Some(_) => (None, Node::new(dir.to_path_buf(), key)),
            None => {
                let ep = bind(&key, &NetConfig::default(), vec![ALPN.to_vec(), JOIN_ALPN.to_vec()]).await.map_err(sync_error)?;
                (Some(ep), Node::new(dir.to_path_buf(), key))
            }
        };
        let (secret, expires) = node.invite(group, minutes).await.map_err(sync_error)?;
        let addrs = match (&running, &ep) {
            (Some(a), _) => a.clone(),
            (None, Some(ep)) => local_addrs(ep),
            (None, None) => vec![],
        };
        let ticket = Ticket { group, device, addrs, invite: Some((secret, expires)) }.encode();
        let words = format!(
            "Give this invitation to the new member. It works once, for {minutes} minutes.\n{ticket}\n{}",
            qr(&ticket)
        );
        let out = Out { json: json!({ "ticket": ticket }), words };
        let Some(ep) = ep else { return Ok(out) };
        // No `serve` here: serve this invitation until it is used (and the newcomer has synced) or expires.
        crate::print_out(&out, json_mode).context("could not write to standard output")?;
        node.load_groups().await.map_err(sync_error)?;
        let router = Router::builder(ep.clone())
            .accept(ALPN, node.sync_handler())
            .accept(JOIN_ALPN, node.join_handler())
            .spawn();
        spawn_poller(node.clone());
        eprintln!("roundtable: waiting for the new member to join (Ctrl+C to stop)");
        let hash = roundtable_sync::node::secret_hash(&secret);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(minutes.saturating_mul(60));
        let used_at = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break None,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let home = match Home::open(dir) {
                Ok(h) => h,
                Err(_) => continue,
            };
            if home.invite_used(&hash)? {
                break Some(tokio::time::Instant::now());
            }
        };
        if used_at.is_some() {
            // Give the newcomer a moment to sync the record.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), router.shutdown()).await;
        Ok(Out { json: serde_json::Value::Null, words: String::new() })
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
    let t = Ticket::decode(ticket)?;
    let Some((secret, expires)) = t.invite else {
        return Err(refuse(
            "this ticket is not an invitation: use `roundtable sync TICKET`",
        ));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if now > expires {
        return Err(refuse(
            "this invitation has expired; ask a member for a new one",
        ));
    }
    let key = match Home::open(dir) {
        Ok(home) => home.device_key(pass)?,
        Err(roundtable_store::StoreError::NoHome(_)) => {
            let (_, key) = roundtable_app::init(dir, name, needs, pass)?;
            if pass.is_none() {
                eprintln!(
                    "roundtable: warning: your device key is stored without a passphrase (readable only by you)."
                );
            }
            key
        }
        Err(e) => return Err(e.into()),
    };
    let me = key.device_id();
    let rt = runtime()?;
    let (proposal, stats) = rt.block_on(async {
        let ep = bind(&key, &NetConfig::default(), vec![ALPN.to_vec()])
            .await
            .map_err(sync_error)?;
        let addr = dial_addr(&t.device, &t.addrs).map_err(sync_error)?;
        let j = Join {
            group: t.group,
            secret,
            name: name.to_string(),
            needs: needs.to_string(),
        };
        let proposal =
            tokio::time::timeout(Duration::from_secs(30), Node::join(&ep, addr.clone(), j))
                .await
                .map_err(|_| sync_error(SyncError::Timeout))?
                .map_err(sync_error)?;
        let node = Node::new(
            dir.to_path_buf(),
            DeviceKey::from_secret(&key.secret_bytes()),
        );
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            node.sync_with(&ep, addr.clone(), t.group, false),
        )
        .await;
        // A device that now holds a group it was added to publishes its encryption key, and
        // passes it on at once so that others can make it a reader.
        if matches!(r, Ok(Ok(_))) && crate::sealed::publish_after_sync(dir, &key, pass, &t.group) {
            let _ = tokio::time::timeout(
                Duration::from_secs(60),
                node.sync_with(&ep, addr, t.group, false),
            )
            .await;
        }
        ep.close().await;
        match r {
            Err(_) => Err(sync_error(SyncError::Timeout)),
            // Not a member yet: the group has not agreed to the proposal so far.
            Ok(Err(SyncError::Refused(_))) => Ok((proposal, None)),
            Ok(r) => r.map(|s| (proposal, Some(s))).map_err(sync_error),
        }
    })?;
    let words = match &stats {
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
            "group_id": t.group.to_string(),
            "proposal_id": proposal.to_string(),
            "joined": stats.is_some(),
        }),
        words,
    })
}

/// `peers`: devices this one has synced with.
pub fn peers(
    home: &Home,
    names: &std::collections::BTreeMap<roundtable_core::DeviceId, String>,
) -> anyhow::Result<Out> {
    let peers = home.peers()?;
    let list: Vec<_> = peers
        .iter()
        .map(|(d, t)| json!({ "device_id": d.to_string(), "name": names.get(d).cloned().unwrap_or_default(), "last_sync": t }))
        .collect();
    let words = if peers.is_empty() {
        "This device has not synced with anyone yet.".to_string()
    } else {
        peers
            .iter()
            .map(|(d, t)| {
                format!(
                    "{} ({d}), last synced at {t} ms",
                    names.get(d).map(String::as_str).unwrap_or("unknown device")
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

/// `web`: the members' web page on 127.0.0.1. Prints `{"url"}` as its first line, serves until stopped.
pub fn web(
    dir: &Path,
    pass: Option<String>,
    port: u16,
    listen: &[SocketAddr],
    mdns: bool,
) -> anyhow::Result<Out> {
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = roundtable_web::WebConfig {
            home_dir: dir.to_path_buf(),
            passphrase: pass,
            port,
            // The page serves sync too, so that `roundtable web` alone is enough.
            sync: Some(roundtable_web::SyncConfig {
                net: net_config(listen, &None)?,
                mdns,
            }),
        };
        // A store refusal (a wrong passphrase, a home open to others) keeps its type: exit 1.
        let (_addr, url, server) = match roundtable_web::serve(cfg).await {
            Ok(s) => s,
            Err(roundtable_web::WebError::Store(e)) => {
                return Err(anyhow::Error::new(e).context("could not start the web page"));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("could not start the web page")),
        };
        // The first line is the contract: one JSON object, whatever --json says.
        crate::write_stdout(&json!({ "url": url }).to_string())
            .context("could not write to standard output")?;
        eprintln!("roundtable: open this link in your web browser: {url}");
        eprintln!("roundtable: it works only on this device; Ctrl+C stops it");
        tokio::select! {
            r = server => r.context("the web page stopped")?,
            _ = wait_for_stop() => {}
        }
        Ok(Out {
            json: serde_json::Value::Null,
            words: String::new(),
        })
    })
}
