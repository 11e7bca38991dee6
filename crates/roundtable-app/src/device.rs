//! A member's devices: linking a new one ([`link_device`], [`join_device`]), listing them
//! ([`devices`]) and stopping one ([`Seat::revoke_device`]).
//!
//! A member is their first device key (their member id) and the devices they link to it. The
//! existing device signs a `device.add` naming the new device's key and carrying the new key's
//! own signature of the link, so one member cannot claim a key someone else holds. Entries from
//! any of a member's devices count as that member's; the rules in core refuse a stopped device's
//! later entries and the sync refuses the device itself.
//!
//! **Invariant:** a device link is one member's act on their own seat only: it never changes who
//! is in the group, and a link ticket is never accepted as an invitation (nor the reverse).
//!
//! Sealed threads are wrapped to the member's encryption key, so the new device receives it over
//! the link's connection (authenticated and encrypted end to end by iroh). Stopping a device
//! ([`stop_device`]) changes the member's encryption key, so a stopped device that kept its copy
//! can read only what was sealed before the stop; the member's other devices are given the new
//! key by the device that changed it, over the same kind of connection.

use std::path::Path;
use std::time::Duration;

use roundtable_core::{Body, DeviceId, DeviceKey, EntryId, GroupId, MemberId, Record};
use roundtable_seal::EncSecret;
use roundtable_store::{Group, Home, OpenError};
use roundtable_sync::frame::Link;
use roundtable_sync::net::{bind, dial_addr, local_addrs, via_relay};
use roundtable_sync::{ALPN, JOIN_ALPN, Linking, Node, Ticket};

use crate::net::{Invitation, InvitationHost, NetConfig, SyncStats, clone_key, task_failed};
use crate::{AppError, Seat};

/// The setting that names the member a linked device belongs to (absent on a member's first
/// device, whose key is the member id).
pub const MEMBER_SETTING: &str = "member";

/// The setting that keeps, on a new device waiting for the group's decision on a recovery, the
/// code of the device that asked the group for it (a plain sync code: no secret).
pub const RECOVERY_PEER_SETTING: &str = "recovery.peer";

/// The sync code of the device that asked the group to recover this device's member, while this
/// home waits for the decision (it holds no copy of that group yet); `None` otherwise. Syncing with
/// it ([`crate::net::sync_once`]) brings the group once it has agreed, and is refused until then.
pub fn waiting_recovery(home: &Home) -> Result<Option<String>, AppError> {
    let Some(code) = home.setting(RECOVERY_PEER_SETTING)? else {
        return Ok(None);
    };
    let Ok(code) = String::from_utf8(code) else {
        return Ok(None);
    };
    let Ok(t) = Ticket::decode(&code) else {
        return Ok(None);
    };
    let held = home.groups()?.iter().any(|(g, _)| *g == t.group);
    Ok((!held).then_some(code))
}

/// The member whose device `key` is on this home: the member it was linked to
/// ([`join_device`] writes it once), else the key itself (a member's first device).
pub fn home_member(home: &Home, key: &DeviceKey) -> MemberId {
    // Unreadable or absent means this is the member's first device.
    home.setting(MEMBER_SETTING)
        .ok()
        .flatten()
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .map(DeviceId)
        .unwrap_or_else(|| key.device_id())
}

/// Longest a device link works: a link is made with both devices at hand.
pub const MAX_LINK_MINUTES: u64 = 60;

/// Makes a one-time link for another device of this member in `group`, working for `minutes`
/// (at most [`MAX_LINK_MINUTES`]). An endpoint is bound here from `net` and named in the ticket;
/// [`Invitation::host`] is always `Some` and must be started for the new device to be answered.
/// `passphrase` unlocks the member's encryption key, which the new device receives.
pub async fn link_device(
    dir: &Path,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: GroupId,
    minutes: u64,
    net: &NetConfig,
) -> Result<Invitation, AppError> {
    let minutes = minutes.clamp(1, MAX_LINK_MINUTES);
    let (d, pass, device) = (
        dir.to_path_buf(),
        passphrase.map(str::to_string),
        key.device_id(),
    );
    let (enc, member) = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let home = Home::open(&d)?;
        let g = home.open_group(&group)?;
        if !g.record.governance().device_active(&device) {
            return Err(AppError::Refused(roundtable_core::Invalid::NotMember));
        }
        let member = g.record.governance().member_of(&device).unwrap_or(device);
        Ok((home.enc_secret(pass.as_deref())?, member))
    })
    .await
    .map_err(task_failed)??;
    let ep = bind(key, net, vec![ALPN.to_vec(), JOIN_ALPN.to_vec()]).await?;
    let node = Node::linking(dir.to_path_buf(), clone_key(key), enc);
    let made = node.add_link(group, minutes).await;
    host_link(dir, ep, node, made, group, device, member, minutes).await
}

/// Makes a one-time **recovery link** for `member`, another member of `group` who lost every
/// device: their new device takes it with [`join_device`], and this device then proposes to the
/// group that it is `member`'s (`member.recover`, with this member's agree). Nothing passes until
/// the group agrees under its rule (two thirds of the other members, and no block, not even from
/// one of `member`'s old devices); no secret is sent. Works for `minutes` (at most
/// [`MAX_LINK_MINUTES`]); [`Invitation::host`] must be started, as for [`link_device`].
pub async fn recover_link(
    dir: &Path,
    key: &DeviceKey,
    group: GroupId,
    member: MemberId,
    minutes: u64,
    net: &NetConfig,
) -> Result<Invitation, AppError> {
    let minutes = minutes.clamp(1, MAX_LINK_MINUTES);
    let (d, device) = (dir.to_path_buf(), key.device_id());
    tokio::task::spawn_blocking(move || -> Result<(), AppError> {
        let home = Home::open(&d)?;
        let g = home.open_group(&group)?;
        let gov = g.record.governance();
        if !gov.device_active(&device) {
            return Err(AppError::Refused(roundtable_core::Invalid::NotMember));
        }
        if gov.member_of(&device) == Some(member) {
            return Err(AppError::OwnSeat);
        }
        if !gov.active(&member) {
            return Err(AppError::Refused(roundtable_core::Invalid::NotActive(
                "the member to help back is not an active member of this group".into(),
            )));
        }
        Ok(())
    })
    .await
    .map_err(task_failed)??;
    let ep = bind(key, net, vec![ALPN.to_vec(), JOIN_ALPN.to_vec()]).await?;
    // Not a linking node: it holds no secret to send, whatever the new device asks.
    let node = Node::new(dir.to_path_buf(), clone_key(key));
    let made = node.add_recovery(group, member, minutes).await;
    host_link(dir, ep, node, made, group, device, member, minutes).await
}

/// The ticket of a link for a device of `member` (made on `device`, answered by `node` on `ep`),
/// with its host; `made` is the link's secret and expiry as the home recorded them.
#[allow(clippy::too_many_arguments)]
async fn host_link(
    dir: &Path,
    ep: iroh::Endpoint,
    node: Node,
    made: Result<([u8; 32], i64), roundtable_sync::SyncError>,
    group: GroupId,
    device: DeviceId,
    member: MemberId,
    minutes: u64,
) -> Result<Invitation, AppError> {
    let (secret, expires) = match made {
        Ok(s) => s,
        Err(e) => {
            ep.close().await;
            return Err(e.into());
        }
    };
    let ticket = Ticket {
        group,
        device,
        addrs: local_addrs(&ep),
        invite: Some((secret, expires)),
        link: Some(member),
    }
    .encode();
    Ok(Invitation {
        ticket,
        group,
        expires_ms: expires,
        minutes,
        host: Some(InvitationHost {
            ep,
            node,
            dir: dir.to_path_buf(),
            hash: roundtable_sync::node::secret_hash(&secret),
            minutes,
        }),
    })
}

/// What [`join_device`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeviceJoined {
    /// The member this device now belongs to.
    pub member: MemberId,
    /// This device's own new key.
    pub device: DeviceId,
    /// The group.
    pub group: GroupId,
    /// The `device.add` the member's other device wrote; for a recovery link, the proposal.
    pub entry: EntryId,
    /// Whether the group has yet to agree that this is the member's device (a recovery link,
    /// [`recover_link`]): until it passes this device cannot sync, and nothing was synced.
    pub waiting: bool,
    /// What the sync of the record exchanged, when it completed in time.
    pub stats: Option<SyncStats>,
}

/// A member's new device takes a link `ticket` made by [`link_device`] on their other device:
/// makes a new home in `dir` (protected by `passphrase` when given) with a new device key, proves
/// the link, keeps the member's encryption key it receives, and syncs the group's record within
/// `timeout`. `name` is what the member calls this device. Refuses a folder that holds a home.
pub async fn join_device(
    dir: &Path,
    passphrase: Option<&str>,
    ticket: &str,
    name: &str,
    net: &NetConfig,
    timeout: Duration,
) -> Result<DeviceJoined, AppError> {
    let t = Ticket::decode(ticket)?;
    let (Some((secret, expires)), Some(member)) = (t.invite, t.link) else {
        return Err(AppError::NotADeviceLink);
    };
    if name.trim().is_empty() {
        return Err(AppError::Missing {
            what: "a name for this device",
        });
    }
    if crate::now_ms() > expires {
        return Err(AppError::InvitationExpired);
    }
    let (d, pass, n) = (
        dir.to_path_buf(),
        passphrase.map(str::to_string),
        name.trim().to_string(),
    );
    let existed = dir.exists();
    let key = tokio::task::spawn_blocking(move || -> Result<DeviceKey, AppError> {
        match Home::open(&d) {
            Ok(_) => return Err(AppError::HomeExists(d)),
            Err(OpenError::NoHome(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let (home, key) = Home::init(&d, &n, pass.as_deref())?;
        home.set_setting(MEMBER_SETTING, &member.0)?;
        Ok(key)
    })
    .await
    .map_err(task_failed)??;
    let mut home = Unlinked {
        dir,
        existed,
        key,
        kept: false,
    };
    let key = clone_key(&home.key);
    let device = key.device_id();
    let ep = bind(&key, net, vec![ALPN.to_vec()]).await?;
    let r = async {
        let addr = via_relay(dial_addr(&t.device, &t.addrs)?, net);
        let link = Link {
            group: t.group,
            secret,
            proof: key.link_proof(&t.group, &member),
            name: name.trim().to_string(),
        };
        let answer = tokio::time::timeout(
            timeout.min(crate::net::JOIN_HANDSHAKE),
            Node::link(&ep, addr.clone(), link),
        )
        .await
        .map_err(|_| roundtable_sync::SyncError::Timeout)??;
        let linked = match answer {
            Linking::Linked(l) => l,
            Linking::Proposed(p) => {
                // The group is asked: this home, with its own new encryption key, waits for it,
                // and keeps where to ask again.
                let code = Ticket::sync(t.group, t.device, t.addrs.clone()).encode();
                let d = dir.to_path_buf();
                tokio::task::spawn_blocking(move || -> Result<(), AppError> {
                    Home::open(&d)?.set_setting(RECOVERY_PEER_SETTING, code.as_bytes())?;
                    Ok(())
                })
                .await
                .map_err(task_failed)??;
                home.keep();
                return Ok::<_, AppError>((p, None, true));
            }
            _ => {
                return Err(AppError::Sync(roundtable_sync::SyncError::Protocol(
                    "the other device answered the link in a way this version does not know".into(),
                )));
            }
        };
        // Linked: from here on the home is this member's device, kept whatever happens next.
        home.keep();
        let (d, pass, enc) = (
            dir.to_path_buf(),
            passphrase.map(str::to_string),
            zeroize::Zeroizing::new(linked.enc_secret),
        );
        tokio::task::spawn_blocking(move || -> Result<(), AppError> {
            Home::open(&d)?.set_enc_secret(&enc, pass.as_deref())?;
            Ok(())
        })
        .await
        .map_err(task_failed)??;
        let node = Node::new(dir.to_path_buf(), clone_key(&key));
        let stats =
            match tokio::time::timeout(timeout, node.sync_with(&ep, addr, t.group, false)).await {
                Ok(r) => Some(r?),
                Err(_) => None,
            };
        Ok::<_, AppError>((linked.entry, stats, false))
    }
    .await;
    ep.close().await;
    let (entry, stats, waiting) = r?;
    // The member's own name and needs, as the record has them, for this device's settings.
    let d = dir.to_path_buf();
    let group = t.group;
    tokio::task::spawn_blocking(move || -> Result<(), AppError> {
        if waiting {
            // Nothing is synced until the group agrees.
            return Ok(());
        }
        let home = Home::open(&d)?;
        let g = home.open_group(&group)?;
        if let Some(m) = g.record.governance().members.get(&member) {
            home.set_setting("name", m.name.as_bytes())?;
            home.set_setting("needs", m.needs.as_bytes())?;
        }
        Ok(())
    })
    .await
    .map_err(task_failed)??;
    Ok(DeviceJoined {
        member,
        device,
        group: t.group,
        entry,
        waiting,
        stats,
    })
}

/// The home [`join_device`] made, removed again unless the link was accepted ([`Unlinked::keep`]):
/// a refused or unanswered link leaves nothing behind, so the member can simply try again.
struct Unlinked<'a> {
    dir: &'a Path,
    existed: bool,
    key: DeviceKey,
    kept: bool,
}

impl Unlinked<'_> {
    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Unlinked<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Only what `Home::init` made in a folder that held no home.
        if self.existed {
            for f in ["device.key", "encryption.key", "roundtable.redb"] {
                let _ = std::fs::remove_file(self.dir.join(f));
            }
        } else {
            let _ = std::fs::remove_dir_all(self.dir);
        }
    }
}

/// One of a member's devices ([`devices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The device's key.
    pub id: DeviceId,
    /// What the member called it when linking it; `None` for the member's first device.
    pub name: Option<String>,
    /// Whether it has been stopped (`device.revoke`).
    pub stopped: bool,
    /// Whether it is the device asking.
    pub this: bool,
}

/// The devices of `member` in the record, their first device first.
pub fn devices(record: &Record, member: &MemberId, this: &DeviceId) -> Vec<DeviceInfo> {
    let g = record.governance();
    g.devices_of(member)
        .into_iter()
        .map(|(id, stopped)| DeviceInfo {
            id,
            name: g.linked.get(&id).map(|d| d.name.clone()),
            stopped,
            this: id == *this,
        })
        .collect()
}

/// What [`stop_device`] did.
#[non_exhaustive]
pub struct Stopped {
    /// The `device.revoke` in the group asked about.
    pub entry: EntryId,
    /// The other groups held here where the device was stopped too.
    pub also: Vec<GroupId>,
    /// The member's new encryption key (holding the one it replaced), already kept on this home:
    /// a front end that keeps the keys in memory uses this one from now on.
    pub enc: EncSecret,
    /// The groups where the new key is published.
    pub published: Vec<GroupId>,
}

impl std::fmt::Debug for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Stopped")
            .field("entry", &self.entry)
            .field("also", &self.also)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

/// Stops `device`, one of this member's own devices (not the one asking), in `group` and in
/// every other group held here where it is still an active device of this member; then changes
/// the member's encryption key: a new one is kept on this home (the old one as the one it
/// replaced) and published in every group this device is active in, and every sealed thread's
/// key this member reads is wrapped again for it. Epochs wrapped to the old key are then stale
/// (format.md section 10), so what is sealed from now on is sealed to keys the stopped device
/// never had; the member's other devices are given the new key when they next sync with this one
/// ([`crate::net::catch_up_key`]). `passphrase` unlocks and protects the keys.
///
/// **Invariant:** a device stopped in one group is stopped in all: the member's key is one for
/// every group, so a device that could still sync one group could be given the new key.
pub fn stop_device(
    home: &Home,
    key: &DeviceKey,
    passphrase: Option<&str>,
    group: GroupId,
    device: DeviceId,
) -> Result<Stopped, AppError> {
    let enc = crate::enc_keys(home, passphrase)?;
    let seat = Seat::new(home, key, Some(&enc));
    let me = seat.member();
    let mut g = home.open_group(&group)?;
    let entry = seat.revoke_device(&mut g, device)?;
    let mut also = Vec::new();
    let groups: Vec<GroupId> = home.groups()?.into_iter().map(|(id, _)| id).collect();
    for id in groups.iter().filter(|id| **id != group) {
        let mut other = home.open_group(id)?;
        let gov = other.record.governance();
        if gov.member_of(&device) == Some(me)
            && gov.device_active(&device)
            && gov.device_active(&key.device_id())
        {
            seat.revoke_device(&mut other, device)?;
            also.push(*id);
        }
    }
    home.rotate_enc_secret(passphrase)?;
    let enc = crate::enc_keys(home, passphrase)?;
    let seat = Seat::new(home, key, Some(&enc));
    let mut published = Vec::new();
    for id in &groups {
        let mut g = home.open_group(id)?;
        if !g.record.governance().device_active(&key.device_id()) {
            continue;
        }
        seat.prepare(&mut g)?;
        if g.record.profile_key(&me) == Some(enc.public()?) {
            published.push(*id);
        }
    }
    Ok(Stopped {
        entry,
        also,
        enc,
        published,
    })
}

impl Seat<'_> {
    /// This seat's devices in the group ([`devices`]).
    pub fn devices(&self, g: &Group) -> Vec<DeviceInfo> {
        devices(&g.record, &self.member(), &self.device())
    }

    /// Stops one of this member's own devices (not the one asking) in this group: the rules
    /// refuse its later entries everywhere, and its sync is refused. A front end calls
    /// [`stop_device`], which also stops it in every group and changes the member's key.
    pub fn revoke_device(&self, g: &mut Group, device: DeviceId) -> Result<EntryId, AppError> {
        self.write(g, Body::DeviceRevoke { device })
    }
}
