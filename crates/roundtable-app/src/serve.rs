//! A device that serves while a member uses it: it answers sync and invitations for every group
//! this home holds, pushes entries written here to the devices it is connected to, finds members'
//! devices nearby (mDNS, when asked) and keeps a live sync with them while live sync is on.
//!
//! The web page runs one ([`Serving::start`]) so that `roundtable web` alone is enough; its
//! "Sync now" buttons call [`Serving::sync_device`] and [`Serving::sync_ticket`].
//!
//! **Invariant:** the endpoint is built from the caller's [`NetConfig`] (no relay unless named);
//! it dials only addresses from a ticket, from a device found on the local network, or remembered
//! from an earlier sync with that device.
//!
//! **Invariant:** serving changes no rule: a device found nearby is synced with only when it is an
//! active member's device of the group (the sync handshake refuses anyone else on both sides).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr};
use roundtable_core::{DeviceId, DeviceKey, GroupId};
use roundtable_store::Home;
use roundtable_sync::net::{bind, dial_addr, local_addrs, via_relay};
use roundtable_sync::{ALPN, JOIN_ALPN, Node, SyncError, Ticket};

use crate::AppError;
use crate::net::{NetConfig, SyncReport, after_sync, announce_serve, withdraw_serve};

/// The home setting that remembers where a device answered last (`peer-addrs/DEVICE_ID`).
const ADDRS_SETTING: &str = "peer-addrs/";

/// Aborts the task when dropped.
struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A device seen on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Nearby {
    /// The device.
    pub device: DeviceId,
    /// When it was last seen, in milliseconds since 1970 by this device's clock.
    pub seen_ms: i64,
}

struct Shared {
    nearby: Mutex<BTreeMap<DeviceId, (EndpointAddr, i64)>>,
    live: AtomicBool,
    /// Live syncs under way, one per device and group.
    links: Mutex<BTreeMap<(DeviceId, GroupId), Background>>,
}

/// This device serving (see the module docs). Dropping it stops everything it runs.
pub struct Serving {
    ep: Endpoint,
    node: Node,
    router: Router,
    dir: PathBuf,
    key: DeviceKey,
    passphrase: Option<String>,
    /// Where the relay is, when one was named: added to every address dialed.
    net: NetConfig,
    shared: Arc<Shared>,
    _tasks: Vec<Background>,
}

impl Serving {
    /// Binds an endpoint from `net`, answers sync and invitations for every group of the home at
    /// `dir`, says so in the home's serve file (so an invitation made elsewhere on this home names
    /// these addresses) and, with `mdns`, looks for devices nearby. `passphrase` unlocks this
    /// device's encryption key when a sync lets it publish the key. Live sync starts off.
    pub async fn start(
        dir: &Path,
        key: &DeviceKey,
        passphrase: Option<&str>,
        net: &NetConfig,
        mdns: bool,
    ) -> Result<Serving, AppError> {
        let ep = bind(key, net, vec![ALPN.to_vec(), JOIN_ALPN.to_vec()]).await?;
        let node = Node::giving_keys(
            dir.to_path_buf(),
            DeviceKey::from_secret(&key.secret_bytes()),
            passphrase.map(str::to_string),
        );
        if let Err(e) = node.load_groups().await {
            ep.close().await;
            return Err(e.into());
        }
        let router = Router::builder(ep.clone())
            .accept(ALPN, node.sync_handler())
            .accept(JOIN_ALPN, node.join_handler())
            .spawn();
        let addrs = local_addrs(&ep);
        // Without the note an invitation made on this home would bind a second endpoint; serving
        // goes on either way.
        let _ = announce_serve(dir, key.device_id(), &addrs);
        let shared = Arc::new(Shared {
            nearby: Mutex::new(BTreeMap::new()),
            live: AtomicBool::new(false),
            links: Mutex::new(BTreeMap::new()),
        });
        let mut tasks = Vec::new();
        let poller = node.clone();
        tasks.push(Background(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                // Entries written while the home was busy are picked up at the next tick.
                let _ = poller.poll_local().await;
            }
        })));
        if mdns {
            let (ep2, node2, shared2) = (ep.clone(), node.clone(), shared.clone());
            tasks.push(Background(tokio::spawn(async move {
                let found = {
                    let (ep, node, shared) = (ep2.clone(), node2.clone(), shared2.clone());
                    move |peer: DeviceId, addr: EndpointAddr| {
                        if let Ok(mut n) = shared.nearby.lock() {
                            n.insert(peer, (addr.clone(), crate::now_ms()));
                        }
                        if shared.live.load(Ordering::SeqCst) {
                            link(&ep, &node, &shared, peer, addr);
                        }
                    }
                };
                // Discovery that cannot start leaves "Sync now" with a ticket, which still works.
                let _ = roundtable_sync::lan::discover(ep2, found).await;
            })));
        }
        Ok(Serving {
            ep,
            node,
            router,
            dir: dir.to_path_buf(),
            key: DeviceKey::from_secret(&key.secret_bytes()),
            passphrase: passphrase.map(str::to_string),
            net: net.clone(),
            shared,
            _tasks: tasks,
        })
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.key.device_id()
    }

    /// Where this device answers.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        local_addrs(&self.ep)
    }

    /// This device's ticket for `group`: what another member's device needs to sync with it.
    pub fn ticket(&self, group: GroupId) -> String {
        Ticket::sync(group, self.device(), self.addrs()).encode()
    }

    /// Picks up groups this home holds since serving started (a group made or joined since).
    pub async fn reload(&self) -> Result<(), AppError> {
        self.node.load_groups().await?;
        Ok(())
    }

    /// The devices seen on the local network, most recently seen first.
    pub fn nearby(&self) -> Vec<Nearby> {
        let mut v: Vec<Nearby> = self
            .shared
            .nearby
            .lock()
            .map(|n| {
                n.iter()
                    .map(|(d, (_, t))| Nearby {
                        device: *d,
                        seen_ms: *t,
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|n| std::cmp::Reverse(n.seen_ms));
        v
    }

    /// Whether live sync is on.
    pub fn live(&self) -> bool {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Turns live sync with the members' devices nearby on or off. On: every member's device
    /// seen nearby (now or later) gets a live sync. Off: the live syncs stop.
    pub fn set_live(&self, on: bool) {
        self.shared.live.store(on, Ordering::SeqCst);
        if on {
            let seen: Vec<(DeviceId, EndpointAddr)> = self
                .shared
                .nearby
                .lock()
                .map(|n| n.iter().map(|(d, (a, _))| (*d, a.clone())).collect())
                .unwrap_or_default();
            for (d, a) in seen {
                link(&self.ep, &self.node, &self.shared, d, a);
            }
        } else if let Ok(mut l) = self.shared.links.lock() {
            l.clear();
        }
    }

    /// Syncs `group` once with a device seen nearby, or else at the addresses it answered at
    /// last time, within `timeout`.
    pub async fn sync_device(
        &self,
        group: GroupId,
        device: DeviceId,
        timeout: Duration,
    ) -> Result<SyncReport, AppError> {
        let seen = self
            .shared
            .nearby
            .lock()
            .ok()
            .and_then(|n| n.get(&device).map(|(a, _)| a.clone()));
        let addr = match seen {
            Some(a) => a,
            None => {
                let addrs = remembered_addrs(&self.dir, device).await;
                if addrs.is_empty() {
                    return Err(AppError::Sync(SyncError::BadAddress(
                        "this device does not know where that device is now; use its ticket".into(),
                    )));
                }
                dial_addr(&device, &addrs)?
            }
        };
        self.sync_at(group, device, addr, timeout).await
    }

    /// Syncs once with the serving device a ticket names (not an invitation), within `timeout`,
    /// and remembers where it answered.
    pub async fn sync_ticket(
        &self,
        ticket: &str,
        timeout: Duration,
    ) -> Result<SyncReport, AppError> {
        let t = Ticket::decode(ticket.trim())?;
        if t.link.is_some() {
            return Err(AppError::IsADeviceLink);
        }
        if t.invite.is_some() {
            return Err(AppError::IsAnInvitation);
        }
        let addr = dial_addr(&t.device, &t.addrs)?;
        let r = self.sync_at(t.group, t.device, addr, timeout).await?;
        remember_addrs(&self.dir, t.device, &t.addrs).await;
        Ok(r)
    }

    async fn sync_at(
        &self,
        group: GroupId,
        device: DeviceId,
        addr: EndpointAddr,
        timeout: Duration,
    ) -> Result<SyncReport, AppError> {
        // A group joined since serving started must be known to the node first.
        self.node.load_groups().await?;
        let addr = via_relay(addr, &self.net);
        let sync = self.node.sync_with(&self.ep, addr.clone(), group, false);
        let stats = tokio::time::timeout(timeout, sync)
            .await
            .map_err(|_| SyncError::Timeout)??;
        let (published, key_changed, key_note) = after_sync(
            &self.ep,
            &self.dir,
            &self.key,
            self.passphrase.as_deref(),
            group,
            device,
            addr.clone(),
        )
        .await;
        if published {
            let again = self.node.sync_with(&self.ep, addr, group, false);
            let _ = tokio::time::timeout(timeout, again).await;
        }
        Ok(SyncReport {
            group,
            device,
            stats,
            published,
            key_note,
            key_changed,
        })
    }

    /// Stops serving: the serve file is withdrawn and the endpoint closed.
    pub async fn stop(self) {
        withdraw_serve(&self.dir);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.router.shutdown()).await;
    }
}

/// Starts a live sync with `peer` for every group this node holds in which it is a member's
/// device, unless one runs. Only the device with the smaller id dials, so two devices that find
/// each other open one connection.
fn link(ep: &Endpoint, node: &Node, shared: &Arc<Shared>, peer: DeviceId, addr: EndpointAddr) {
    if peer <= node.device_id() {
        return;
    }
    let Ok(mut links) = shared.links.lock() else {
        return;
    };
    links.retain(|_, b| !b.0.is_finished());
    for group in node.groups() {
        if !node.is_member(&group, &peer) || links.contains_key(&(peer, group)) {
            continue;
        }
        let (ep, node, addr) = (ep.clone(), node.clone(), addr.clone());
        let task = tokio::spawn(async move {
            // A live sync that ends (the other device went away) is started again when the
            // device is seen again.
            let _ = node.sync_with(&ep, addr, group, true).await;
        });
        links.insert((peer, group), Background(task));
    }
}

/// Where `device` answered last, as this home remembers it (empty: nowhere known).
pub(crate) async fn remembered_addrs(dir: &Path, device: DeviceId) -> Vec<SocketAddr> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let home = Home::open(&dir).ok()?;
        let v = home
            .setting(&format!("{ADDRS_SETTING}{device}"))
            .ok()
            .flatten()?;
        Some(
            String::from_utf8_lossy(&v)
                .split(',')
                .filter_map(|a| a.parse().ok())
                .collect(),
        )
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Remembers where `device` answered, for the next sync with it.
pub(crate) async fn remember_addrs(dir: &Path, device: DeviceId, addrs: &[SocketAddr]) {
    let dir = dir.to_path_buf();
    let text = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // Only a convenience for the next "Sync now": a busy home just forgets it.
    let _ = tokio::task::spawn_blocking(move || {
        let home = Home::open(&dir)?;
        home.set_setting(&format!("{ADDRS_SETTING}{device}"), text.as_bytes())
    })
    .await;
}

/// Remembers where the device a ticket (or an invitation) names answered, so that a later
/// [`Serving::sync_device`] with it works without its code. A ticket that cannot be read is
/// ignored: this is only a convenience.
pub async fn remember_ticket(dir: &Path, ticket: &str) {
    if let Ok(t) = Ticket::decode(ticket.trim()) {
        remember_addrs(dir, t.device, &t.addrs).await;
    }
}
