//! A keeper: an always-on device that holds the group's record so that members who are online at
//! different times still get each other's entries. It serves sync for every group its home holds
//! and, every round, pulls from (and pushes to) the members' devices it knows: the tickets it was
//! given and the addresses it remembers. It answers a small `/health` on a loopback port.
//!
//! **Invariant:** a keeper writes nothing. It holds no reader's key, so sealed messages stay
//! ciphertext on its disk, and it never publishes an encryption key or any other entry (every
//! entry signed by a keeper's key is refused by every device and the auditor, rules.md K1).
//!
//! **Invariant:** the endpoint is built from the caller's [`NetConfig`] (no relay unless named);
//! it dials only addresses from a ticket or remembered from an earlier sync with that device.
//! Who may sync is the rules' `sync_devices`, on both sides: a stopped keeper is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr};
use roundtable_core::{DeviceId, DeviceKey, GroupId};
use roundtable_store::Home;
use roundtable_sync::net::{bind, dial_addr, local_addrs, via_relay};
use roundtable_sync::{ALPN, DeviceSeat, Node, SyncError, Ticket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::AppError;
use crate::net::{NetConfig, clone_key};

/// How a keeper runs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct KeepConfig {
    /// Where to listen, and the relay if any.
    pub net: NetConfig,
    /// Serving devices' tickets to pull from every round (members' devices).
    pub peers: Vec<String>,
    /// Where `/health` answers; must be a loopback address. None: no health endpoint.
    pub health: Option<SocketAddr>,
    /// How long one sync with one device may take.
    pub timeout: Duration,
}

impl KeepConfig {
    /// A keeper on `net`, pulling from `peers`, with `/health` at `health`.
    pub fn new(net: NetConfig, peers: Vec<String>, health: Option<SocketAddr>) -> KeepConfig {
        KeepConfig {
            net,
            peers,
            health,
            timeout: Duration::from_secs(20),
        }
    }
}

/// What a keeper holds and has done, as `/health` and the metrics line say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepStats {
    /// Valid entries held, over every group.
    pub entries: usize,
    /// Devices it has synced with, ever (either side dialing).
    pub peers_seen: usize,
    /// When it last synced with anyone (ms since 1970 by this computer's clock).
    pub last_sync_ms: Option<i64>,
    /// Rounds done since it started.
    pub rounds: u64,
    /// Devices that answered in the last round.
    pub synced: usize,
    /// Devices tried in the last round that did not answer or refused.
    pub failed: usize,
}

impl KeepStats {
    /// The `/health` answer: `{"ok":true,"entries":N,"peers_seen":N,"last_sync_ms":N|null,...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": true,
            "entries": self.entries,
            "peers_seen": self.peers_seen,
            "last_sync_ms": self.last_sync_ms,
            "rounds": self.rounds,
        })
    }
}

/// A keeper running (see the module docs). Dropping it stops its tasks.
pub struct Keeping {
    ep: Endpoint,
    node: Node,
    router: Router,
    dir: PathBuf,
    key: DeviceKey,
    cfg: KeepConfig,
    tickets: Vec<Ticket>,
    stats: Arc<Mutex<KeepStats>>,
    health: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Keeping {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Keeping {
    /// Starts a keeper on the home at `dir` with its device key `key`: checks the key is no
    /// member's or auditor's in any group held, binds the endpoint, serves sync, and starts the
    /// health endpoint. Pulls nothing yet: call [`Keeping::round`].
    pub async fn start(dir: &Path, key: &DeviceKey, cfg: KeepConfig) -> Result<Keeping, AppError> {
        let tickets = cfg
            .peers
            .iter()
            .map(|t| {
                let t = Ticket::decode(t.trim())?;
                if t.link.is_some() {
                    return Err(AppError::IsADeviceLink);
                }
                if t.invite.is_some() {
                    return Err(AppError::IsAnInvitation);
                }
                Ok(t)
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        if let Some(h) = cfg.health
            && !h.ip().is_loopback()
        {
            return Err(AppError::HealthNotLoopback(h));
        }
        let node = Node::new(dir.to_path_buf(), clone_key(key));
        node.load_groups().await?;
        check_seat(&node, &key.device_id())?;
        if node.groups().is_empty() && tickets.is_empty() {
            return Err(AppError::NothingToKeep);
        }
        let ep = bind(key, &cfg.net, vec![ALPN.to_vec()]).await?;
        let router = Router::builder(ep.clone())
            .accept(ALPN, node.sync_handler())
            .spawn();
        let stats = Arc::new(Mutex::new(KeepStats::default()));
        let mut tasks = Vec::new();
        let poller = node.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // Entries a member's device pushed are already stored; this picks up groups too.
                let _ = poller.poll_local().await;
            }
        }));
        let mut health = None;
        if let Some(addr) = cfg.health {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| AppError::HealthUnavailable(addr, e.to_string()))?;
            health = listener.local_addr().ok();
            let (stats, node, dir) = (stats.clone(), node.clone(), dir.to_path_buf());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let (stats, node, dir) = (stats.clone(), node.clone(), dir.clone());
                    tokio::spawn(async move {
                        let s = current(&stats, &node, &dir).await;
                        let _ = answer_health(conn, &s).await;
                    });
                }
            }));
        }
        Ok(Keeping {
            ep,
            node,
            router,
            dir: dir.to_path_buf(),
            key: clone_key(key),
            cfg,
            tickets,
            stats,
            health,
            tasks,
        })
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.key.device_id()
    }

    /// Where this keeper answers sync.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        local_addrs(&self.ep)
    }

    /// Where `/health` answers, when it runs.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health
    }

    /// The groups this keeper holds.
    pub fn groups(&self) -> Vec<GroupId> {
        self.node.groups()
    }

    /// This keeper's ticket for `group`: what a member's device syncs with.
    pub fn ticket(&self, group: GroupId) -> String {
        Ticket::sync(group, self.device(), self.addrs()).encode()
    }

    /// One round: syncs once with every device it knows (the tickets given, then every device
    /// allowed to sync a group held here whose address it remembers), each within the config's
    /// timeout, and returns what it holds after. A device that does not answer is counted in
    /// `failed` and tried again next round.
    pub async fn round(&self) -> Result<KeepStats, AppError> {
        self.node.load_groups().await?;
        check_seat(&self.node, &self.device())?;
        let mut targets: Vec<(GroupId, DeviceId, Vec<SocketAddr>)> = self
            .tickets
            .iter()
            .map(|t| (t.group, t.device, t.addrs.clone()))
            .collect();
        for group in self.node.groups() {
            for d in self.node.sync_devices(&group) {
                if d == self.device() || targets.iter().any(|(g, x, _)| *g == group && *x == d) {
                    continue;
                }
                let addrs = crate::serve::remembered_addrs(&self.dir, d).await;
                if !addrs.is_empty() {
                    targets.push((group, d, addrs));
                }
            }
        }
        let (mut synced, mut failed) = (0, 0);
        for (group, device, addrs) in targets {
            match self.sync_at(group, device, &addrs).await {
                Ok(()) => {
                    synced += 1;
                    crate::serve::remember_addrs(&self.dir, device, &addrs).await;
                }
                Err(_) => failed += 1,
            }
        }
        // A group first received this round is served from now on.
        self.node.load_groups().await?;
        let mut s = current(&self.stats, &self.node, &self.dir).await;
        s.rounds += 1;
        s.synced = synced;
        s.failed = failed;
        if let Ok(mut st) = self.stats.lock() {
            *st = s.clone();
        }
        Ok(s)
    }

    async fn sync_at(
        &self,
        group: GroupId,
        device: DeviceId,
        addrs: &[SocketAddr],
    ) -> Result<(), AppError> {
        let addr: EndpointAddr = via_relay(dial_addr(&device, addrs)?, &self.cfg.net);
        let sync = self.node.sync_with(&self.ep, addr, group, false);
        tokio::time::timeout(self.cfg.timeout, sync)
            .await
            .map_err(|_| SyncError::Timeout)??;
        Ok(())
    }

    /// What it holds now.
    pub async fn stats(&self) -> KeepStats {
        current(&self.stats, &self.node, &self.dir).await
    }

    /// Stops serving and closes the endpoint.
    pub async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(3), self.router.shutdown()).await;
    }
}

/// Refuses a key that is a member's or an auditor's in a group held: a keeper has a key of its
/// own, and is named by the group.
fn check_seat(node: &Node, me: &DeviceId) -> Result<(), AppError> {
    for (group, seat) in node.seat_of(me) {
        match seat {
            DeviceSeat::Member | DeviceSeat::Auditor => {
                return Err(AppError::NotAKeeperKey(group));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The stats with the entries and peers as the node and home hold them now.
async fn current(stats: &Mutex<KeepStats>, node: &Node, dir: &Path) -> KeepStats {
    let mut s = stats.lock().map(|s| s.clone()).unwrap_or_default();
    s.entries = node.entries_held();
    let dir = dir.to_path_buf();
    let peers = tokio::task::spawn_blocking(move || Home::open(&dir).ok()?.peers().ok())
        .await
        .ok()
        .flatten();
    if let Some(p) = peers {
        s.peers_seen = p.len();
        s.last_sync_ms = p.iter().map(|(_, t)| *t).max();
    }
    s
}

/// Answers one HTTP request: `GET /health` with the stats as JSON, anything else 404.
async fn answer_health(mut conn: tokio::net::TcpStream, s: &KeepStats) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    let mut n = 0;
    // Only the request line matters; read until it ends, at most 2 KiB, for at most 5 s.
    let read = async {
        while n < buf.len() {
            let m = conn.read(&mut buf[n..]).await?;
            if m == 0 {
                break;
            }
            n += m;
            if buf[..n].windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    let mut parts = line.split_whitespace();
    let ok = parts.next() == Some("GET") && parts.next() == Some("/health");
    let (status, body) = if ok {
        ("200 OK", s.to_json().to_string())
    } else {
        (
            "404 Not Found",
            r#"{"ok":false,"error":"not found"}"#.to_string(),
        )
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes()).await?;
    conn.shutdown().await
}
