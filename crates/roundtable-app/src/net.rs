//! The network actions, written once for every front end: one sync with a member's device
//! ([`sync_once`]), a one-time invitation for a new member's device ([`invite`]), joining a group
//! with one ([`join`]), and the devices this one has synced with ([`peers`]).
//!
//! The functions are async (the web page runs in tokio; the command line makes a runtime and
//! blocks on them) and print nothing: what a front end says is built from what they return.
//! Blocking work on the home (opening it, unlocking a key, writing an entry) runs in
//! `spawn_blocking`, so a web server's workers are never held up.
//!
//! **Invariant:** every endpoint is built by `roundtable_sync::net::bind` from the [`NetConfig`]
//! the caller gives (`NetConfig::default()`: every interface, a random port, no relay); nothing
//! here dials anything but the addresses written in a ticket.
//!
//! **Invariant:** after a sync that reached the other device, this device publishes its
//! encryption key (and hands readers keys they lack) through [`Seat::prepare`], and when that wrote
//! anything it syncs once more, at once, so that others can make this member a reader.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use iroh::Endpoint;
use iroh::protocol::Router;
use roundtable_core::{DeviceId, DeviceKey, EntryId, GroupId, MemberId};
use roundtable_seal::EncSecret;
use roundtable_store::{Home, OpenError};
use roundtable_sync::frame::Join;
use roundtable_sync::net::{bind, dial_addr, local_addrs, via_relay};
use roundtable_sync::{ALPN, JOIN_ALPN, Node, Ticket};

pub use roundtable_sync::net::NetConfig;
pub use roundtable_sync::{SyncError, SyncStats};

use crate::{AppError, Seat};

/// The file in a home where a running serving device says how to reach it, so that an invitation
/// made on the same home (by another process) names its addresses.
pub const SERVE_FILE: &str = "serve.json";

/// How long the invitation handshake of [`join`] may take at most (less when the caller's
/// timeout is shorter).
pub const JOIN_HANDSHAKE: Duration = Duration::from_secs(30);

pub(crate) fn clone_key(key: &DeviceKey) -> DeviceKey {
    DeviceKey::from_secret(&key.secret_bytes())
}

pub(crate) fn task_failed(e: tokio::task::JoinError) -> AppError {
    AppError::Sync(SyncError::Task(e.to_string()))
}

/// Publishes this device's encryption key in a group it holds, and hands readers of sealed threads
/// the keys they lack ([`Seat::prepare`]), after a sync or a join. Returns whether an entry was
/// written. Does nothing while this device is not an active member of the group.
pub fn publish_after_sync(
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: &GroupId,
) -> Result<bool, AppError> {
    let home = Home::open(dir)?;
    let mut g = home.open_group(group)?;
    let enc = crate::enc_keys(&home, passphrase)?;
    Seat::new(&home, key, Some(&enc)).prepare(&mut g)
}

/// [`publish_after_sync`] off the async workers.
pub(crate) async fn publish_in_background(
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: GroupId,
) -> Result<bool, AppError> {
    let (dir, key, pass) = (
        dir.to_path_buf(),
        clone_key(key),
        passphrase.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || publish_after_sync(&dir, &key, pass.as_deref(), &group))
        .await
        .map_err(task_failed)?
}

/// After a sync with `peer` (at `addr`) reached it: when `peer` is another active device of this
/// device's member and the record publishes a newer key for the member than this device holds
/// (the member changed it on another device, [`crate::device::stop_device`]), asks `peer` for it
/// and keeps it, the old one as the one it replaced. Returns whether this device now holds a new
/// key. A key that is not the one the record publishes is not kept.
pub async fn catch_up_key(
    ep: &Endpoint,
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: GroupId,
    peer: DeviceId,
    addr: iroh::EndpointAddr,
) -> Result<bool, AppError> {
    let (d, k, pass) = (
        dir.to_path_buf(),
        clone_key(key),
        passphrase.map(str::to_string),
    );
    let wanted = tokio::task::spawn_blocking(move || -> Result<Option<[u8; 32]>, AppError> {
        let home = Home::open(&d)?;
        let g = home.open_group(&group)?;
        let me = crate::home_member(&home, &k);
        let gov = g.record.governance();
        let mine = |dev: &DeviceId| gov.member_of(dev) == Some(me) && gov.device_active(dev);
        if !mine(&k.device_id()) || !mine(&peer) {
            return Ok(None);
        }
        let Some(published) = g.record.profile_key(&me) else {
            return Ok(None);
        };
        let enc = crate::enc_keys(&home, pass.as_deref())?;
        if published == enc.public()? || crate::key_is_newer(&g.record, me, k.device_id(), &enc)? {
            return Ok(None);
        }
        Ok(Some(published))
    })
    .await
    .map_err(task_failed)??;
    let Some(published) = wanted else {
        return Ok(false);
    };
    let secret = Node::ask_key(ep, addr, group).await?;
    if EncSecret::from_bytes(&secret).public()? != published {
        // The other device does not hold the new key either.
        return Ok(false);
    }
    let (d, pass) = (dir.to_path_buf(), passphrase.map(str::to_string));
    tokio::task::spawn_blocking(move || -> Result<(), AppError> {
        Home::open(&d)?.replace_enc_secret(&secret, pass.as_deref())?;
        Ok(())
    })
    .await
    .map_err(task_failed)??;
    Ok(true)
}

/// What a device does after a sync with `peer` reached it: takes the member's new key from
/// `peer` when it is behind ([`catch_up_key`]), then publishes and hands out keys
/// ([`publish_after_sync`]). Returns (published, key caught up, why either could not be done).
pub(crate) async fn after_sync(
    ep: &Endpoint,
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: GroupId,
    peer: DeviceId,
    addr: iroh::EndpointAddr,
) -> (bool, bool, Option<AppError>) {
    let mut note = None;
    let caught_up = match catch_up_key(ep, dir, key, passphrase, group, peer, addr).await {
        Ok(c) => c,
        Err(e) => {
            note = Some(e);
            false
        }
    };
    match publish_in_background(dir, key, passphrase, group).await {
        Ok(wrote) => (wrote, caught_up, note),
        Err(e) => (false, caught_up, note.or(Some(e))),
    }
}

/// What one sync did.
#[derive(Debug)]
#[non_exhaustive]
pub struct SyncReport {
    /// The group synced.
    pub group: GroupId,
    /// The device synced with.
    pub device: DeviceId,
    /// What the (first) sync exchanged.
    pub stats: SyncStats,
    /// Whether this device then published its encryption key or handed readers keys, and synced
    /// once more to pass them on.
    pub published: bool,
    /// Why this device could not publish its encryption key yet, when it could not (a locked key,
    /// a busy home). The sync itself succeeded; the next one tries again.
    pub key_note: Option<AppError>,
    /// Whether the other device, another of this member's, gave this one the member's new key
    /// ([`catch_up_key`]): a front end that keeps the keys in memory unlocks them again.
    pub key_changed: bool,
}

/// Syncs the whole record of the ticket's group with the serving device it names, once, within
/// `timeout` (and as long again for the second sync that passes on this device's key, when it
/// published one). `passphrase` unlocks this device's encryption key afterwards.
///
/// Refuses an invitation ([`AppError::IsAnInvitation`]) before dialing anything.
pub async fn sync_once(
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    ticket: &str,
    net: &NetConfig,
    timeout: Duration,
) -> Result<SyncReport, AppError> {
    let t = Ticket::decode(ticket)?;
    if t.link.is_some() {
        return Err(AppError::IsADeviceLink);
    }
    if t.invite.is_some() {
        return Err(AppError::IsAnInvitation);
    }
    let ep = bind(key, net, vec![ALPN.to_vec()]).await?;
    let node = Node::new(dir.to_path_buf(), clone_key(key));
    let addr = match dial_addr(&t.device, &t.addrs) {
        Ok(a) => via_relay(a, net),
        Err(e) => {
            ep.close().await;
            return Err(e.into());
        }
    };
    let r = tokio::time::timeout(timeout, node.sync_with(&ep, addr.clone(), t.group, false)).await;
    let (mut published, mut key_changed, mut key_note) = (false, false, None);
    if matches!(r, Ok(Ok(_))) {
        (published, key_changed, key_note) =
            after_sync(&ep, dir, key, passphrase, t.group, t.device, addr.clone()).await;
        if published {
            let _ = tokio::time::timeout(timeout, node.sync_with(&ep, addr, t.group, false)).await;
        }
    }
    ep.close().await;
    let stats = match r {
        Err(_) => return Err(SyncError::Timeout.into()),
        Ok(r) => r?,
    };
    Ok(SyncReport {
        group: t.group,
        device: t.device,
        stats,
        published,
        key_note,
        key_changed,
    })
}

/// Where a running serving device of this home can be reached, from [`SERVE_FILE`]: `None` when
/// there is none (no file, a damaged one, or, on Linux, its process has ended).
pub fn serving_addrs(dir: &Path) -> Option<Vec<SocketAddr>> {
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

/// Says, in [`SERVE_FILE`], that this process serves the home at `addrs` (for [`invite`] run
/// elsewhere on the same home). [`withdraw_serve`] removes it when serving stops.
pub fn announce_serve(dir: &Path, device: DeviceId, addrs: &[SocketAddr]) -> std::io::Result<()> {
    let note = serde_json::json!({
        "pid": std::process::id(),
        "addrs": addrs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "device_id": device.to_string(),
    });
    std::fs::write(dir.join(SERVE_FILE), note.to_string())
}

/// Removes what [`announce_serve`] wrote (nothing happens when it is gone already).
pub fn withdraw_serve(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SERVE_FILE));
}

/// A one-time invitation for a new member's device, made by [`invite`].
#[non_exhaustive]
pub struct Invitation {
    /// The ticket's text, to give to the new member (it holds the one-time secret).
    pub ticket: String,
    /// The group it invites to.
    pub group: GroupId,
    /// When it stops working, in milliseconds since 1970.
    pub expires_ms: i64,
    /// How many minutes it works for, as asked.
    pub minutes: u64,
    /// `Some` when no serving device runs on this home: then this process must serve the
    /// invitation itself ([`InvitationHost::start`]) for the newcomer to reach it.
    pub host: Option<InvitationHost>,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ticket holds the secret: never in a debug print.
        f.debug_struct("Invitation")
            .field("group", &self.group)
            .field("expires_ms", &self.expires_ms)
            .field("minutes", &self.minutes)
            .field("host", &self.host.is_some())
            .finish_non_exhaustive()
    }
}

/// The endpoint an [`Invitation`] names when no serving device runs on the home: bound, not yet
/// answering.
pub struct InvitationHost {
    pub(crate) ep: Endpoint,
    pub(crate) node: Node,
    pub(crate) dir: PathBuf,
    pub(crate) hash: [u8; 32],
    pub(crate) minutes: u64,
}

/// Makes a one-time invitation to `group`, working for `minutes` (at most 30 days). When a
/// serving device runs on this home ([`serving_addrs`]), the ticket names its addresses and it
/// answers the newcomer; otherwise an endpoint is bound here from `net`, the ticket names it, and
/// [`Invitation::host`] must be started for the invitation to be answered.
pub async fn invite(
    dir: &Path,
    key: &DeviceKey,
    group: GroupId,
    minutes: u64,
    net: &NetConfig,
) -> Result<Invitation, AppError> {
    let device = key.device_id();
    let running = serving_addrs(dir);
    let ep = match running {
        Some(_) => None,
        None => Some(bind(key, net, vec![ALPN.to_vec(), JOIN_ALPN.to_vec()]).await?),
    };
    let node = Node::new(dir.to_path_buf(), clone_key(key));
    let (secret, expires) = match node.invite(group, minutes).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(ep) = ep {
                ep.close().await;
            }
            return Err(e.into());
        }
    };
    let addrs = match (running, &ep) {
        (Some(a), _) => a,
        (None, Some(ep)) => local_addrs(ep),
        (None, None) => vec![],
    };
    let ticket = Ticket {
        group,
        device,
        addrs,
        invite: Some((secret, expires)),
        link: None,
    }
    .encode();
    let host = ep.map(|ep| InvitationHost {
        ep,
        node,
        dir: dir.to_path_buf(),
        hash: roundtable_sync::node::secret_hash(&secret),
        minutes,
    });
    Ok(Invitation {
        ticket,
        group,
        expires_ms: expires,
        minutes,
        host,
    })
}

/// Aborts the task when dropped.
struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl InvitationHost {
    /// Starts answering: loads the home's groups, accepts the newcomer's join and sync, and
    /// pushes entries other processes write on this home. `notes` hears of a failure to read
    /// those entries (the answering goes on).
    pub async fn start(
        self,
        notes: impl Fn(AppError) + Send + 'static,
    ) -> Result<HostedInvitation, AppError> {
        self.node.load_groups().await?;
        let router = Router::builder(self.ep.clone())
            .accept(ALPN, self.node.sync_handler())
            .accept(JOIN_ALPN, self.node.join_handler())
            .spawn();
        let node = self.node.clone();
        let poller = Background(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Err(e) = node.poll_local().await {
                    notes(e.into());
                }
            }
        }));
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.minutes.saturating_mul(60));
        Ok(HostedInvitation {
            router,
            _poller: poller,
            dir: self.dir,
            hash: self.hash,
            deadline,
        })
    }
}

/// An invitation being answered by this process ([`InvitationHost::start`]).
pub struct HostedInvitation {
    router: Router,
    _poller: Background,
    dir: PathBuf,
    hash: [u8; 32],
    deadline: tokio::time::Instant,
}

impl HostedInvitation {
    /// Answers until the invitation is used (then 5 seconds more, for the newcomer to sync the
    /// record) or expires, then stops. Returns whether it was used.
    pub async fn until_used(self) -> Result<bool, AppError> {
        let used = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => break false,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let (dir, hash) = (self.dir.clone(), self.hash);
            let r = tokio::task::spawn_blocking(move || match Home::open(&dir) {
                // Busy or briefly unreadable: look again at the next tick.
                Err(_) => Ok(false),
                Ok(home) => home.invite_used(&hash),
            })
            .await
            .map_err(task_failed)?;
            if r? {
                break true;
            }
        };
        if used {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), self.router.shutdown()).await;
        Ok(used)
    }
}

/// A join under way: the invitation is read and checked, and this device's home is open (made
/// first when there was none). [`Joining::finish`] does the rest.
pub struct Joining {
    dir: PathBuf,
    key: DeviceKey,
    passphrase: Option<String>,
    ticket: Ticket,
    secret: [u8; 32],
    name: String,
    needs: String,
    new_home: bool,
}

impl Joining {
    /// Reads the invitation `ticket` and checks it has not expired (before anything is made or
    /// dialed), then opens this device's home in `dir`, or makes one for `name` with `needs`
    /// (protected by `passphrase` when given) when there is none. Blocking (a new key is
    /// derived from the passphrase): [`join`] runs it off the async workers.
    pub fn start(
        dir: &Path,
        passphrase: Option<&str>,
        ticket: &str,
        name: &str,
        needs: &str,
    ) -> Result<Joining, AppError> {
        let t = Ticket::decode(ticket)?;
        if t.link.is_some() {
            return Err(AppError::IsADeviceLink);
        }
        let Some((secret, expires)) = t.invite else {
            return Err(AppError::NotAnInvitation);
        };
        if crate::now_ms() > expires {
            return Err(AppError::InvitationExpired);
        }
        let (key, new_home) = match Home::open(dir) {
            Ok(home) => (home.device_key(passphrase)?, false),
            Err(OpenError::NoHome(_)) => {
                let (_, key) = crate::init(dir, name, needs, passphrase)?;
                (key, true)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Joining {
            dir: dir.to_path_buf(),
            key,
            passphrase: passphrase.map(str::to_string),
            ticket: t,
            secret,
            name: name.to_string(),
            needs: needs.to_string(),
            new_home,
        })
    }

    /// Whether [`Joining::start`] made a new home (and device key) for this device.
    pub fn new_home(&self) -> bool {
        self.new_home
    }

    /// The member this device joins as.
    pub fn member(&self) -> MemberId {
        self.key.device_id()
    }

    /// The group the invitation is for.
    pub fn group(&self) -> GroupId {
        self.ticket.group
    }

    /// Proves the invitation to the inviting device (within [`JOIN_HANDSHAKE`] or `timeout`,
    /// whichever is shorter), which asks the group to add this member; then syncs the group's
    /// record within `timeout`. When the group has already agreed, this device is a member: it
    /// publishes its encryption key and syncs again (within `timeout`) to pass it on. When the
    /// group has not agreed yet, the other device refuses the sync and the result says
    /// `joined: false`.
    pub async fn finish(self, net: &NetConfig, timeout: Duration) -> Result<Joined, AppError> {
        let ep = bind(&self.key, net, vec![ALPN.to_vec()]).await?;
        let r = self.run(&ep, net, timeout).await;
        ep.close().await;
        r
    }

    async fn run(
        &self,
        ep: &Endpoint,
        net: &NetConfig,
        timeout: Duration,
    ) -> Result<Joined, AppError> {
        let t = &self.ticket;
        let addr = via_relay(dial_addr(&t.device, &t.addrs)?, net);
        let j = Join {
            group: t.group,
            secret: self.secret,
            name: self.name.clone(),
            needs: self.needs.clone(),
        };
        let proposal =
            tokio::time::timeout(timeout.min(JOIN_HANDSHAKE), Node::join(ep, addr.clone(), j))
                .await
                .map_err(|_| SyncError::Timeout)??;
        let node = Node::new(self.dir.clone(), clone_key(&self.key));
        let r =
            tokio::time::timeout(timeout, node.sync_with(ep, addr.clone(), t.group, false)).await;
        let (mut published, mut key_note) = (false, None);
        if matches!(r, Ok(Ok(_))) {
            match publish_in_background(&self.dir, &self.key, self.passphrase.as_deref(), t.group)
                .await
            {
                Ok(wrote) => published = wrote,
                Err(e) => key_note = Some(e),
            }
            if published {
                let _ =
                    tokio::time::timeout(timeout, node.sync_with(ep, addr, t.group, false)).await;
            }
        }
        let stats = match r {
            Err(_) => return Err(SyncError::Timeout.into()),
            // Not a member yet: the group has not agreed to the proposal so far.
            Ok(Err(SyncError::Refused(_))) => None,
            Ok(r) => Some(r?),
        };
        Ok(Joined {
            member: self.member(),
            group: t.group,
            proposal,
            joined: stats.is_some(),
            stats,
            new_home: self.new_home,
            published,
            key_note,
        })
    }
}

/// What [`join`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Joined {
    /// The member this device joined as (its device id).
    pub member: MemberId,
    /// The group.
    pub group: GroupId,
    /// The proposal that asks the group to add this member.
    pub proposal: EntryId,
    /// Whether this device is a member already and holds the group's record (the group had
    /// agreed); otherwise it joins when enough members agree, and a later sync brings the record.
    pub joined: bool,
    /// What the sync of the record exchanged, when it was allowed.
    pub stats: Option<SyncStats>,
    /// Whether a new home (and device key) was made for this device.
    pub new_home: bool,
    /// Whether this device published its encryption key after the sync, and synced again.
    pub published: bool,
    /// Why this device could not publish its encryption key yet, when it could not.
    pub key_note: Option<AppError>,
}

/// A new device joins a group with an invitation `ticket`: [`Joining::start`] (the invitation
/// checked, the home opened or made for `name` with `needs`) then [`Joining::finish`] (the
/// handshake, the sync, the key published, the sync again).
pub async fn join(
    dir: &Path,
    passphrase: Option<&str>,
    ticket: &str,
    name: &str,
    needs: &str,
    net: &NetConfig,
    timeout: Duration,
) -> Result<Joined, AppError> {
    let (dir, pass, ticket, name, needs) = (
        dir.to_path_buf(),
        passphrase.map(str::to_string),
        ticket.to_string(),
        name.to_string(),
        needs.to_string(),
    );
    let joining = tokio::task::spawn_blocking(move || {
        Joining::start(&dir, pass.as_deref(), &ticket, &name, &needs)
    })
    .await
    .map_err(task_failed)??;
    joining.finish(net, timeout).await
}

/// A device this one has synced with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// The device.
    pub device: DeviceId,
    /// Its member's name in a group this device holds, when one knows it.
    pub name: Option<String>,
    /// When the last sync with it ended, in milliseconds since 1970 by this device's clock.
    pub last_sync_ms: i64,
}

/// The devices this one has synced with, with their members' names from the groups it holds.
pub fn peers(home: &Home) -> Result<Vec<Peer>, AppError> {
    let mut names = BTreeMap::new();
    for (id, _) in home.groups()? {
        for m in home.open_group(&id)?.record.members() {
            names.insert(m.id, m.name);
        }
    }
    Ok(home
        .peers()?
        .into_iter()
        .map(|(device, last_sync_ms)| Peer {
            device,
            name: names.get(&device).cloned(),
            last_sync_ms,
        })
        .collect())
}

/// One device found nearby and synced with by [`sync_nearby`].
#[derive(Debug)]
#[non_exhaustive]
pub struct NearbySync {
    /// The device.
    pub device: DeviceId,
    /// Its member's name in the group, when this device knows it.
    pub name: Option<String>,
    /// What the sync exchanged.
    pub stats: SyncStats,
}

/// What [`sync_nearby`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct NearbyReport {
    /// The group synced.
    pub group: GroupId,
    /// Every member's device found on the local network and synced with, in the order synced.
    pub synced: Vec<NearbySync>,
    /// Members' devices found but not synced with (refused, unreachable), with why.
    pub failed: Vec<(DeviceId, AppError)>,
    /// Whether this device then published its encryption key, and synced again to pass it on.
    pub published: bool,
    /// Why this device could not publish its encryption key yet, when it could not.
    pub key_note: Option<AppError>,
    /// Whether one of the devices found, another of this member's, gave this one the member's
    /// new key ([`catch_up_key`]).
    pub key_changed: bool,
}

/// Syncs `group` once with every active member's device found on the local network by mDNS
/// within `timeout` (this device listens and does not advertise itself). Ends as soon as every
/// other active member's device has been synced with, else at `timeout`; a sync still under way
/// then is dropped. Returns [`AppError::NobodyNearby`] when no member's device was found, and the
/// first failure when devices were found but none could be synced with.
pub async fn sync_nearby(
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: GroupId,
    net: &NetConfig,
    timeout: Duration,
) -> Result<NearbyReport, AppError> {
    let me = key.device_id();
    let d = dir.to_path_buf();
    let members = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let home = Home::open(&d)?;
        Ok(home.open_group(&group)?.record.members())
    })
    .await
    .map_err(task_failed)??;
    let names: BTreeMap<DeviceId, String> =
        members.iter().map(|m| (m.id, m.name.clone())).collect();
    let others: std::collections::BTreeSet<DeviceId> = members
        .iter()
        .filter(|m| m.status == roundtable_core::Status::Active && m.id != me)
        .map(|m| m.id)
        .collect();
    let ep = bind(key, net, vec![ALPN.to_vec()]).await?;
    let node = Node::new(dir.to_path_buf(), clone_key(key));
    if let Err(e) = node.load_groups().await {
        ep.close().await;
        return Err(e.into());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let lookout = {
        let ep = ep.clone();
        tokio::spawn(async move {
            roundtable_sync::lan::listen(ep, move |d, a| {
                let _ = tx.send((d, a));
            })
            .await
        })
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tried = std::collections::BTreeSet::new();
    let mut running = tokio::task::JoinSet::new();
    let mut synced: Vec<(NearbySync, iroh::EndpointAddr)> = Vec::new();
    let mut failed = Vec::new();
    let mut looking = true;
    loop {
        if others
            .iter()
            .all(|d| synced.iter().any(|(s, _)| s.device == *d))
        {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            found = rx.recv(), if looking => {
                let Some((peer, addr)) = found else {
                    looking = false;
                    continue;
                };
                if peer == me || !node.is_member(&group, &peer) || !tried.insert(peer) {
                    continue;
                }
                let (ep, node) = (ep.clone(), node.clone());
                running.spawn(async move {
                    let r = node.sync_with(&ep, addr.clone(), group, false).await;
                    (peer, addr, r)
                });
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                match done {
                    Ok((peer, addr, Ok(stats))) => synced.push((
                        NearbySync { device: peer, name: names.get(&peer).cloned(), stats },
                        addr,
                    )),
                    Ok((peer, _, Err(e))) => failed.push((peer, AppError::from(e))),
                    Err(e) => return Err(task_failed(e)),
                }
            }
        }
    }
    lookout.abort();
    running.abort_all();
    let (mut published, mut key_note, mut key_changed) = (false, None, false);
    if !synced.is_empty() {
        for (s, addr) in &synced {
            match catch_up_key(&ep, dir, key, passphrase, group, s.device, addr.clone()).await {
                Ok(true) => {
                    key_changed = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => key_note = key_note.or(Some(e)),
            }
        }
        match publish_in_background(dir, key, passphrase, group).await {
            Ok(wrote) => published = wrote,
            Err(e) => key_note = Some(e),
        }
        if published {
            for (_, addr) in &synced {
                let again = node.sync_with(&ep, addr.clone(), group, false);
                let _ = tokio::time::timeout(timeout, again).await;
            }
        }
    }
    ep.close().await;
    if synced.is_empty() {
        return Err(match failed.into_iter().next() {
            Some((_, e)) => e,
            None => AppError::NobodyNearby,
        });
    }
    Ok(NearbyReport {
        group,
        synced: synced.into_iter().map(|(s, _)| s).collect(),
        failed,
        published,
        key_note,
        key_changed,
    })
}
