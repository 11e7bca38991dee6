//! A device on the network: serves its groups, syncs with others, and takes invitations.
//!
//! **Invariant:** the home's redb file is opened only for the moment of each store operation and
//! closed again, so `roundtable post` in another terminal works while `serve` runs; entries written
//! that way are picked up by [`Node::poll_local`] and pushed to connected peers.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr};
use roundtable_core::{DeviceId, DeviceKey, Entry, EntryId, GroupId, MemberId};
use roundtable_store::{Group, Home, InviteRefusal, KeyError, OpenError, StoreError};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::frame::{self, Frame, FrameError, Hello, Join, MAX_FRAME};
use crate::{ALPN, JOIN_ALPN, reconcile};

/// Close code sent to a device that is refused.
const REFUSED: u32 = 403;
/// Entries per Entries frame, and per store batch when sending.
const SEND_BATCH: usize = 1000;
/// Bytes per Entries frame (well under MAX_FRAME).
const FRAME_BYTES: usize = 1024 * 1024;

/// What went wrong in a sync. Nothing already stored is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The other device sent Refuse (this device may not sync that group there, or an invitation
    /// was not accepted): its reason.
    #[error("the other device refused: {0}")]
    Refused(String),
    /// No frame arrived within the idle timeout (20 s by default).
    #[error("could not reach the other device in time")]
    Timeout,
    /// The endpoint, a connection or a stream failed (iroh's error, in words).
    #[error("network problem: {0}")]
    Network(String),
    /// A device id that is not a key, or an address that cannot be listened on.
    #[error("{0}")]
    BadAddress(String),
    /// The other device sent bytes that are not a frame; the connection is closed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The home could not be read or written (nothing acknowledged is lost).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A frame out of order, for another group, or a stream that ended early.
    #[error("the other device broke the protocol: {0}")]
    Protocol(String),
    /// A blocking store task panicked or was cancelled (a panic poisons the groups for this node).
    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<OpenError> for SyncError {
    fn from(e: OpenError) -> SyncError {
        SyncError::Store(e.into())
    }
}

impl From<KeyError> for SyncError {
    fn from(e: KeyError) -> SyncError {
        SyncError::Store(e.into())
    }
}

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Entries received that this device did not have (stored valid or pending).
    pub received: u64,
    /// Entries sent.
    pub sent: u64,
    /// Entries received and rejected (quarantined with the reason).
    pub rejected: u64,
    /// Bytes of frames sent and received.
    pub bytes_sent: u64,
    /// Bytes of frames received.
    pub bytes_received: u64,
}

struct Inner {
    dir: PathBuf,
    key: DeviceKey,
    groups: Mutex<HashMap<GroupId, Group>>,
    live: broadcast::Sender<(GroupId, Vec<EntryId>)>,
    idle: Duration,
    /// The member's encryption secret, only on a node that answers a device link
    /// ([`Node::linking`]): the member's new device gets it, and no other peer ever does.
    enc: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// Set on a node that gives the member's current encryption key to another of the member's
    /// devices ([`Node::giving_keys`]): the passphrase that unlocks it from the home, read afresh
    /// for every request so a key changed meanwhile (by any process on the home) is the one given.
    key_pass: Option<Option<zeroize::Zeroizing<String>>>,
}

/// A device's sync service. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.inner.key.device_id())
    }
}

fn load<'a>(
    home: &Home,
    groups: &'a mut HashMap<GroupId, Group>,
    id: &GroupId,
) -> Result<&'a mut Group, StoreError> {
    // A loaded group was just refreshed by `Node::store`; a new one is read whole.
    Ok(match groups.entry(*id) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => v.insert(home.open_or_new_group(id)?),
    })
}

/// What the inviting device keeps of an invitation secret.
pub fn secret_hash(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads frames from a stream. Cancel-safe: bytes read before a cancellation (a `select!` that picked
/// another branch, a timeout) stay in `buf`, because it only awaits `RecvStream::read`, which is
/// cancel-safe, and consumes a frame only once it is whole.
pub(crate) struct Reader {
    recv: RecvStream,
    buf: Vec<u8>,
}

impl Reader {
    fn new(recv: RecvStream) -> Reader {
        Reader {
            recv,
            buf: Vec::new(),
        }
    }

    async fn next(&mut self, stats: &mut SyncStats) -> Result<Option<Frame>, SyncError> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if self.buf.len() >= 4 {
                let prefix: [u8; 4] = self.buf[..4]
                    .try_into()
                    .map_err(|_| SyncError::Protocol("prefix".into()))?;
                let len = frame::body_len(prefix, MAX_FRAME)?;
                if self.buf.len() >= 4 + len {
                    let frame = Frame::decode(&self.buf[4..4 + len]);
                    self.buf.drain(..4 + len);
                    stats.bytes_received += 4 + len as u64;
                    return Ok(Some(frame?));
                }
            }
            match self.recv.read(&mut chunk).await {
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(None) if self.buf.is_empty() => return Ok(None),
                Ok(None) => {
                    return Err(SyncError::Protocol(
                        "the stream ended inside a frame".into(),
                    ));
                }
                Err(e) => return Err(SyncError::Network(e.to_string())),
            }
        }
    }
}

async fn read_frame(
    recv: &mut Reader,
    idle: Duration,
    stats: &mut SyncStats,
) -> Result<Option<Frame>, SyncError> {
    tokio::time::timeout(idle, recv.next(stats))
        .await
        .map_err(|_| SyncError::Timeout)?
}

async fn write_frame(
    send: &mut SendStream,
    f: &Frame,
    stats: &mut SyncStats,
) -> Result<(), SyncError> {
    let b = f.encode();
    stats.bytes_sent += b.len() as u64;
    send.write_all(&b)
        .await
        .map_err(|e| SyncError::Network(e.to_string()))
}

/// Turns a failure on a closed connection into the refusal the other side gave, if it gave one.
fn explain(conn: &Connection, e: SyncError) -> SyncError {
    match conn.close_reason() {
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(c))
            if c.error_code == VarInt::from_u32(REFUSED) =>
        {
            SyncError::Refused(String::from_utf8_lossy(&c.reason).to_string())
        }
        _ => e,
    }
}

/// What a device is in one group, as [`Node::seat_of`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceSeat {
    /// One of the group's keepers now.
    Keeper,
    /// A keeper the group stopped.
    StoppedKeeper,
    /// A member's device (their first key or a linked one).
    Member,
    /// An auditor's device.
    Auditor,
    /// Nobody's in this group (yet).
    None,
}

impl Node {
    /// A node for the home at `dir`, acting as the device whose key is `key`.
    pub fn new(dir: PathBuf, key: DeviceKey) -> Node {
        Node::with_enc(dir, key, None)
    }

    /// A node that also answers device links ([`Home::add_link`]) for the member whose device
    /// key is `key`, handing the new device the member's encryption secret `enc`.
    pub fn linking(dir: PathBuf, key: DeviceKey, enc: zeroize::Zeroizing<[u8; 32]>) -> Node {
        Node::with_enc(dir, key, Some(enc))
    }

    /// A node that also gives the member's current encryption key (unlocked from the home with
    /// `passphrase`) to another active device of the same member that asks for it
    /// ([`Node::ask_key`]), after the member changed it on this device.
    pub fn giving_keys(dir: PathBuf, key: DeviceKey, passphrase: Option<String>) -> Node {
        let mut node = Node::with_enc(dir, key, None);
        if let Some(inner) = Arc::get_mut(&mut node.inner) {
            inner.key_pass = Some(passphrase.map(zeroize::Zeroizing::new));
        }
        node
    }

    fn with_enc(dir: PathBuf, key: DeviceKey, enc: Option<zeroize::Zeroizing<[u8; 32]>>) -> Node {
        let (live, _) = broadcast::channel(1024);
        Node {
            inner: Arc::new(Inner {
                dir,
                key,
                groups: Mutex::new(HashMap::new()),
                live,
                idle: Duration::from_secs(20),
                enc,
                key_pass: None,
            }),
        }
    }

    /// This device's id: also its iroh endpoint id.
    pub fn device_id(&self) -> DeviceId {
        self.inner.key.device_id()
    }

    /// Runs a store operation on a blocking thread, with the home open just for it.
    async fn store<T, F>(&self, f: F) -> Result<T, SyncError>
    where
        T: Send + 'static,
        F: FnOnce(&Home, &mut HashMap<GroupId, Group>, &DeviceKey) -> Result<T, SyncError>
            + Send
            + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut groups = inner
                .groups
                .lock()
                .map_err(|_| SyncError::Task("a sync task failed earlier".into()))?;
            let home = Home::open(&inner.dir)?;
            // Entries other processes wrote since the last look are announced by whichever
            // operation finds them first, so a live peer is always sent them.
            let mut fresh = Vec::new();
            for (id, g) in groups.iter_mut() {
                let new = home.refresh(g)?;
                if !new.is_empty() {
                    fresh.push((*id, new));
                }
            }
            let r = f(&home, &mut groups, &inner.key);
            for n in fresh {
                let _ = inner.live.send(n);
            }
            r
        })
        .await
        .map_err(|e| SyncError::Task(e.to_string()))?
    }

    /// Loads every group of the home (so their members may connect). Returns their ids.
    pub async fn load_groups(&self) -> Result<Vec<GroupId>, SyncError> {
        self.store(|home, groups, _| {
            let ids: Vec<GroupId> = home.groups()?.into_iter().map(|(id, _)| id).collect();
            for id in &ids {
                load(home, groups, id)?;
            }
            Ok(ids)
        })
        .await
    }

    /// Picks up entries written to the home by other processes (and groups new to it) and tells
    /// connected peers about them. Returns how many entries were new.
    pub async fn poll_local(&self) -> Result<usize, SyncError> {
        let mut rx = self.inner.live.subscribe();
        self.store(|home, groups, _| {
            for (id, _) in home.groups()? {
                if !groups.contains_key(&id) {
                    load(home, groups, &id)?;
                }
            }
            Ok(())
        })
        .await?;
        // `store` announced what it found; count it (others' announcements may be counted too).
        let mut n = 0;
        while let Ok((_, ids)) = rx.try_recv() {
            n += ids.len();
        }
        Ok(n)
    }

    /// The groups loaded so far ([`Node::load_groups`], [`Node::poll_local`]).
    pub fn groups(&self) -> Vec<GroupId> {
        match self.inner.groups.lock() {
            Ok(g) => g.keys().copied().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// How many valid entries the groups loaded so far hold (what a keeper reports it holds).
    pub fn entries_held(&self) -> usize {
        match self.inner.groups.lock() {
            Ok(g) => g.values().map(|g| g.record.len()).sum(),
            Err(_) => 0,
        }
    }

    /// The devices allowed to sync `group` here (active members' devices, auditors, keepers).
    pub fn sync_devices(&self, group: &GroupId) -> Vec<DeviceId> {
        match self.inner.groups.lock() {
            Ok(g) => g
                .get(group)
                .map(|g| g.record.sync_devices())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// What `device` is in each group loaded here (a keeper, a stopped keeper, a member's device,
    /// an auditor's, nobody's): what a keeper's home checks of its own key.
    pub fn seat_of(&self, device: &DeviceId) -> Vec<(GroupId, DeviceSeat)> {
        match self.inner.groups.lock() {
            Ok(g) => g
                .iter()
                .map(|(id, g)| {
                    let gov = g.record.governance();
                    let seat = if gov.keeper_active(device) {
                        DeviceSeat::Keeper
                    } else if gov.keepers.contains_key(device) {
                        DeviceSeat::StoppedKeeper
                    } else if gov.member_of(device).is_some() {
                        DeviceSeat::Member
                    } else if gov.auditors.contains_key(device) {
                        DeviceSeat::Auditor
                    } else {
                        DeviceSeat::None
                    };
                    (*id, seat)
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether `device` may sync `group`: an active member, or an auditor a member granted access.
    pub fn is_member(&self, group: &GroupId, device: &DeviceId) -> bool {
        match self.inner.groups.lock() {
            Ok(g) => g
                .get(group)
                .is_some_and(|g| g.record.sync_devices().contains(device)),
            Err(_) => false,
        }
    }

    /// Whether this device holds the group's membership (its genesis at least).
    fn knows_members(&self, group: &GroupId) -> bool {
        match self.inner.groups.lock() {
            Ok(g) => g.get(group).is_some_and(|g| !g.record.is_empty()),
            Err(_) => false,
        }
    }

    /// Whether `device` may sync anything here: a member (or auditor) of a group this device holds.
    fn allowed_any(&self, device: &DeviceId) -> bool {
        match self.inner.groups.lock() {
            Ok(g) => g.values().any(|g| g.record.sync_devices().contains(device)),
            Err(_) => false,
        }
    }

    async fn hello(&self, group: GroupId) -> Result<(Hello, Vec<EntryId>), SyncError> {
        self.store(move |home, groups, _| {
            let g = load(home, groups, &group)?;
            let evidence = home.evidence_ids(&group)?;
            let hello = Hello {
                version: frame::VERSION,
                group,
                tips: g.record.summary(),
                evidence: evidence.clone(),
            };
            Ok((hello, evidence))
        })
        .await
    }

    /// Sends what the other side lacks, then Done.
    async fn send_missing(
        &self,
        group: GroupId,
        theirs: Hello,
        evidence: Vec<EntryId>,
        send: &mut SendStream,
        stats: &mut SyncStats,
    ) -> Result<(), SyncError> {
        let ids = self
            .store(move |home, groups, _| {
                let g = load(home, groups, &group)?;
                Ok(reconcile::to_send(&g.record, &evidence, &theirs))
            })
            .await?;
        let mut sent = 0u64;
        for chunk in ids.chunks(SEND_BATCH) {
            let chunk = chunk.to_vec();
            let entries = self.read_entries(group, chunk).await?;
            sent += self.send_entries(send, entries, stats).await?;
        }
        stats.sent += sent;
        write_frame(send, &Frame::Done { sent }, stats).await
    }

    async fn read_entries(
        &self,
        group: GroupId,
        ids: Vec<EntryId>,
    ) -> Result<Vec<Entry>, SyncError> {
        self.store(move |home, _, _| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(e) = home.entry(&group, &id)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn send_entries(
        &self,
        send: &mut SendStream,
        entries: Vec<Entry>,
        stats: &mut SyncStats,
    ) -> Result<u64, SyncError> {
        let mut n = 0;
        let mut batch = Vec::new();
        let mut bytes = 0;
        for e in entries {
            bytes += e.encoded_len();
            batch.push(e);
            if bytes >= FRAME_BYTES {
                n += batch.len() as u64;
                write_frame(send, &Frame::Entries(std::mem::take(&mut batch)), stats).await?;
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            n += batch.len() as u64;
            write_frame(send, &Frame::Entries(batch), stats).await?;
        }
        Ok(n)
    }

    /// Verifies and stores entries from a peer; tells other connected peers about the new ones.
    async fn receive(
        &self,
        group: GroupId,
        entries: Vec<Entry>,
        stats: &mut SyncStats,
    ) -> Result<Vec<EntryId>, SyncError> {
        let out = self
            .store(move |home, groups, _| {
                let g = load(home, groups, &group)?;
                let out = home.ingest(g, entries)?;
                if let Err(e) = home.checkpoint(g) {
                    eprintln!(
                        "roundtable: note: could not save a snapshot ({e}); the entries are safe"
                    );
                }
                Ok(out)
            })
            .await?;
        stats.received += (out.accepted.len() + out.pending.len()) as u64;
        stats.rejected += out.rejected.len() as u64;
        if !out.accepted.is_empty() {
            let _ = self.inner.live.send((group, out.accepted.clone()));
        }
        Ok(out.accepted)
    }

    /// Receives until the other side's Done.
    async fn receive_until_done(
        &self,
        group: GroupId,
        recv: &mut Reader,
        stats: &mut SyncStats,
        seen: &mut HashSet<EntryId>,
    ) -> Result<(), SyncError> {
        loop {
            match read_frame(recv, self.inner.idle, stats).await? {
                Some(Frame::Entries(es)) => {
                    seen.extend(es.iter().filter_map(|e| e.parse().ok().map(|p| p.hash)));
                    self.receive(group, es, stats).await?;
                }
                Some(Frame::Done { .. }) => return Ok(()),
                Some(other) => {
                    return Err(SyncError::Protocol(format!(
                        "unexpected {other:?} during the exchange"
                    )));
                }
                None => return Err(SyncError::Protocol("the stream ended before Done".into())),
            }
        }
    }

    /// The exchange after both Hellos: each side sends what the other lacks; in live mode both then
    /// keep pushing new entries until the connection closes.
    #[allow(clippy::too_many_arguments)] // one session's state; a struct would only rename it
    async fn exchange(
        &self,
        group: GroupId,
        from: DeviceId,
        theirs: Hello,
        evidence: Vec<EntryId>,
        send: &mut SendStream,
        recv: &mut Reader,
        live: bool,
    ) -> Result<SyncStats, SyncError> {
        let mut live_rx = self.inner.live.subscribe();
        let mut out_stats = SyncStats::default();
        let mut in_stats = SyncStats::default();
        let mut seen = HashSet::new();
        let (a, b) = tokio::join!(
            self.send_missing(group, theirs, evidence, send, &mut out_stats),
            self.receive_until_done(group, recv, &mut in_stats, &mut seen)
        );
        a?;
        b?;
        self.store(move |home, _, _| Ok(home.record_peer(&from, now_ms())?))
            .await?;
        let mut stats = SyncStats {
            received: in_stats.received,
            sent: out_stats.sent,
            rejected: in_stats.rejected,
            bytes_sent: out_stats.bytes_sent,
            bytes_received: in_stats.bytes_received,
        };
        if !live {
            return Ok(stats);
        }
        loop {
            tokio::select! {
                f = read_frame(recv, Duration::from_secs(24 * 3600), &mut stats) => match f? {
                    Some(Frame::Entries(es)) => {
                        seen.extend(es.iter().filter_map(|e| e.parse().ok().map(|p| p.hash)));
                        self.receive(group, es, &mut stats).await?;
                    }
                    Some(other) => return Err(SyncError::Protocol(format!("unexpected {other:?} in live mode"))),
                    None => return Ok(stats),
                },
                n = live_rx.recv() => match n {
                    Ok((g, ids)) if g == group => {
                        let ids: Vec<EntryId> = ids.into_iter().filter(|h| !seen.contains(h)).collect();
                        if !ids.is_empty() {
                            let entries = self.read_entries(group, ids).await?;
                            let mut wire = SyncStats::default();
                            stats.sent += self.send_entries(send, entries, &mut wire).await?;
                            stats.bytes_sent += wire.bytes_sent;
                            // What the members' page calls "shared with the group".
                            self.store(move |home, _, _| Ok(home.record_peer(&from, now_ms())?))
                                .await?;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed some notices: a fresh reconciliation would catch up; ask for it by ending.
                        return Ok(stats);
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(stats),
                }
            }
        }
    }

    /// Syncs `group` once (or, with `live`, until the connection closes) with the device at `addr`.
    pub async fn sync_with(
        &self,
        ep: &Endpoint,
        addr: EndpointAddr,
        group: GroupId,
        live: bool,
    ) -> Result<SyncStats, SyncError> {
        let peer = DeviceId(*addr.id.as_bytes());
        let conn = ep
            .connect(addr, ALPN)
            .await
            .map_err(|e| SyncError::Network(format!("could not connect: {e}")))?;
        let r = self
            .sync_on(&conn, peer, group, live)
            .await
            .map_err(|e| explain(&conn, e));
        conn.close(VarInt::from_u32(0), b"done");
        r
    }

    async fn sync_on(
        &self,
        conn: &Connection,
        peer: DeviceId,
        group: GroupId,
        live: bool,
    ) -> Result<SyncStats, SyncError> {
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let mut recv = Reader::new(recv);
        let (hello, evidence) = self.hello(group).await?;
        let mut stats = SyncStats::default();
        write_frame(&mut send, &Frame::Hello(hello), &mut stats).await?;
        let theirs = match read_frame(&mut recv, self.inner.idle, &mut stats).await? {
            Some(Frame::Hello(h)) if h.group == group => {
                // Never hand the record to a device that is not a member (a device holding nothing
                // yet, just invited, has nothing to hand over and cannot tell).
                if self.knows_members(&group) && !self.is_member(&group, &peer) {
                    return Err(SyncError::Refused(
                        "the other device is not a member of this group; nothing was sent to it"
                            .into(),
                    ));
                }
                h
            }
            Some(Frame::Refuse(r)) => return Err(SyncError::Refused(r)),
            Some(_) => return Err(SyncError::Protocol("expected Hello".into())),
            None => {
                return Err(SyncError::Protocol(
                    "the other device closed the stream".into(),
                ));
            }
        };
        let mut s = self
            .exchange(group, peer, theirs, evidence, &mut send, &mut recv, live)
            .await?;
        // Closing now could discard entries the other side has not read yet: say we are finished, and
        // wait until it has judged everything and finished too (taking anything it pushes meanwhile).
        let _ = send.finish();
        let mut seen = HashSet::new();
        loop {
            match read_frame(&mut recv, self.inner.idle, &mut s).await? {
                None => break,
                Some(Frame::Entries(es)) => {
                    seen.extend(es.iter().filter_map(|e| e.parse().ok().map(|p| p.hash)));
                    self.receive(group, es, &mut s).await?;
                }
                Some(other) => {
                    return Err(SyncError::Protocol(format!(
                        "unexpected {other:?} at the end"
                    )));
                }
            }
        }
        s.bytes_sent += stats.bytes_sent;
        s.bytes_received += stats.bytes_received;
        Ok(s)
    }

    /// Serves one incoming sync connection.
    async fn serve_conn(&self, conn: Connection) -> Result<(), SyncError> {
        let peer = DeviceId(*conn.remote_id().as_bytes());
        // Another process may have just added a member or stopped a device: judge the peer on
        // what the home holds now, not on what this process last looked at.
        let _ = self.poll_local().await;
        if !self.allowed_any(&peer) {
            // Refused before any payload is read.
            conn.close(
                VarInt::from_u32(REFUSED),
                b"this device is not a member of any group held here",
            );
            return Ok(());
        }
        let (mut send, recv) = conn
            .accept_bi()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let mut recv = Reader::new(recv);
        let mut stats = SyncStats::default();
        let theirs = match read_frame(&mut recv, self.inner.idle, &mut stats).await? {
            Some(Frame::Hello(h)) => h,
            _ => return Err(SyncError::Protocol("expected Hello".into())),
        };
        let group = theirs.group;
        let member = match self.inner.groups.lock() {
            Ok(g) => g
                .get(&group)
                .is_some_and(|g| g.record.sync_devices().contains(&peer)),
            Err(_) => false,
        };
        if !member {
            let reason = "this device is not a member of that group here";
            write_frame(&mut send, &Frame::Refuse(reason.into()), &mut stats).await?;
            let _ = send.finish();
            conn.close(VarInt::from_u32(REFUSED), reason.as_bytes());
            return Ok(());
        }
        let (hello, evidence) = self.hello(group).await?;
        write_frame(&mut send, &Frame::Hello(hello), &mut stats).await?;
        self.exchange(group, peer, theirs, evidence, &mut send, &mut recv, true)
            .await?;
        let _ = send.finish();
        // The initiator closes the connection once it has read our end of stream.
        let _ = tokio::time::timeout(self.inner.idle, conn.closed()).await;
        Ok(())
    }

    /// Serves one invitation: checks the secret, proposes the new member to the group (with this
    /// member's agree), says Welcome with the proposal's id.
    async fn serve_join(&self, conn: Connection) -> Result<(), SyncError> {
        let peer = DeviceId(*conn.remote_id().as_bytes());
        let (mut send, recv) = conn
            .accept_bi()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let mut recv = Reader::new(recv);
        let mut stats = SyncStats::default();
        let join: Join = match read_frame(&mut recv, self.inner.idle, &mut stats).await? {
            Some(Frame::Join(j)) => j,
            Some(Frame::Link(l)) => {
                return self.serve_link(conn, peer, l, send, &mut stats).await;
            }
            Some(Frame::KeyAsk(group)) => {
                return self.serve_key(conn, peer, group, send, &mut stats).await;
            }
            _ => return Err(SyncError::Protocol("expected Join".into())),
        };
        let hash = secret_hash(&join.secret);
        let group = join.group;
        let verdict = self
            .store(move |home, groups, key| {
                if let Err(r) = home.use_invite(&hash, &group, now_ms()) {
                    return Ok(Err(r.to_string()));
                }
                let g = load(home, groups, &group)?;
                // The newcomer's own name and needs; the group decides (alone only while the
                // inviting member is its only member).
                let effect = roundtable_core::Effect::Add {
                    member: peer,
                    name: join.name.clone(),
                    needs: join.needs.clone(),
                };
                match home.propose_change(g, key, effect, &join.name, now_ms()) {
                    Ok(p) => Ok(Ok(p)),
                    Err(StoreError::Refused(r)) => Ok(Err(r.to_string())),
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        match verdict {
            Ok(p) => {
                let _ = self.inner.live.send((group, p.written));
                write_frame(&mut send, &Frame::Welcome(p.proposal), &mut stats).await?;
            }
            Err(reason) => write_frame(&mut send, &Frame::Refuse(reason), &mut stats).await?,
        }
        let _ = send.finish();
        // Let the joiner read the answer before the connection goes.
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        Ok(())
    }

    /// Serves one device link: checks the secret, then either links the peer's device to this
    /// device's member with a `device.add` (the rules check the peer's proof) and says Linked with
    /// the member's encryption secret (only a [`Node::linking`] node does), or, for a recovery link
    /// ([`Node::add_recovery`]), proposes to the group that the peer is the new device of the member
    /// the link names (`member.recover`, with this member's agree) and says Welcome with the
    /// proposal's id. **Invariant:** a recovery never sends any secret.
    async fn serve_link(
        &self,
        conn: Connection,
        peer: DeviceId,
        link: frame::Link,
        mut send: SendStream,
        stats: &mut SyncStats,
    ) -> Result<(), SyncError> {
        let enc = self.inner.enc.clone();
        let hash = secret_hash(&link.secret);
        let group = link.group;
        let verdict = self
            .store(move |home, groups, key| {
                // Only a linking node holds a secret to send, so only it looks for a device link.
                let own = match &enc {
                    Some(enc) => home.use_link(&hash, &group, now_ms()).map(|()| enc.clone()),
                    None => Err(InviteRefusal::Unknown),
                };
                match own {
                    Ok(enc) => {
                        let g = load(home, groups, &group)?;
                        let body = roundtable_core::Body::DeviceAdd {
                            device: peer,
                            name: link.name.clone(),
                            proof: link.proof.to_vec(),
                        };
                        match home.append(g, key, body, now_ms()) {
                            Ok(id) => Ok(Ok(LinkAnswer::Linked(frame::Linked {
                                entry: id,
                                enc_secret: *enc,
                            }))),
                            Err(StoreError::Refused(r)) => Ok(Err(r.to_string())),
                            Err(e) => Err(e.into()),
                        }
                    }
                    Err(InviteRefusal::Unknown) => {
                        let member = match home.use_recovery(&hash, &group, now_ms()) {
                            Ok(m) => m,
                            Err(InviteRefusal::Unknown) if enc.is_none() => {
                                return Ok(Err(
                                    "this device is not answering a device link now".to_string()
                                ));
                            }
                            Err(r) => return Ok(Err(r.to_string())),
                        };
                        let g = load(home, groups, &group)?;
                        let name = g
                            .record
                            .governance()
                            .members
                            .get(&member)
                            .map(|m| m.name.clone())
                            .unwrap_or_default();
                        let effect = roundtable_core::Effect::Recover {
                            member,
                            device: peer,
                            name: link.name.clone(),
                            proof: link.proof,
                        };
                        match home.propose_change(g, key, effect, &name, now_ms()) {
                            Ok(p) => Ok(Ok(LinkAnswer::Proposed(p.proposal, p.written))),
                            Err(StoreError::Refused(r)) => Ok(Err(r.to_string())),
                            Err(e) => Err(e.into()),
                        }
                    }
                    Err(r) => Ok(Err(r.to_string())),
                }
            })
            .await?;
        match verdict {
            Ok(LinkAnswer::Linked(l)) => {
                let _ = self.inner.live.send((link.group, vec![l.entry]));
                write_frame(&mut send, &Frame::Linked(l), stats).await?;
            }
            Ok(LinkAnswer::Proposed(p, written)) => {
                let _ = self.inner.live.send((link.group, written));
                write_frame(&mut send, &Frame::Welcome(p), stats).await?;
            }
            Err(reason) => write_frame(&mut send, &Frame::Refuse(reason), stats).await?,
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        Ok(())
    }

    /// Gives the member's current encryption key to `peer`, another device of this device's member
    /// ([`Node::giving_keys`]). **Invariant:** only to a device that is an active device of the
    /// same member in `group` as this home holds it now, and stopped in no group held here; this
    /// device must be active in `group` too. Anyone else is refused, and told only that.
    async fn serve_key(
        &self,
        conn: Connection,
        peer: DeviceId,
        group: GroupId,
        mut send: SendStream,
        stats: &mut SyncStats,
    ) -> Result<(), SyncError> {
        let pass = self.inner.key_pass.clone();
        let verdict = self
            .store(move |home, groups, key| {
                let Some(pass) = pass else {
                    return Ok(Err("this device does not give keys".to_string()));
                };
                let me = key.device_id();
                let stopped_somewhere = groups.values().any(|g| {
                    let gov = g.record.governance();
                    gov.member_of(&peer).is_some() && !gov.device_active(&peer)
                });
                let g = load(home, groups, &group)?;
                let gov = g.record.governance();
                let same =
                    gov.member_of(&peer).is_some() && gov.member_of(&peer) == gov.member_of(&me);
                if stopped_somewhere
                    || !same
                    || !gov.device_active(&peer)
                    || !gov.device_active(&me)
                {
                    return Ok(Err(
                        "only another active device of the same member is given this key"
                            .to_string(),
                    ));
                }
                match home.enc_secret(pass.as_deref().map(|p| p.as_str())) {
                    Ok(secret) => Ok(Ok(frame::MemberKey(*secret))),
                    Err(_) => Ok(Err("this device's key is locked now".to_string())),
                }
            })
            .await?;
        match verdict {
            Ok(k) => write_frame(&mut send, &Frame::KeyGiven(k), stats).await?,
            Err(reason) => write_frame(&mut send, &Frame::Refuse(reason), stats).await?,
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        Ok(())
    }

    /// Asks another device of this member, at `addr`, for the member's current encryption key
    /// for `group` ([`Node::giving_keys`]); the caller checks it against the key the record
    /// publishes before keeping it.
    pub async fn ask_key(
        ep: &Endpoint,
        addr: EndpointAddr,
        group: GroupId,
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, SyncError> {
        match ask(ep, addr, Frame::KeyAsk(group)).await? {
            Frame::KeyGiven(k) => Ok(zeroize::Zeroizing::new(k.0)),
            _ => Err(SyncError::Protocol("expected KeyGiven".into())),
        }
    }

    /// Proves a device link to the device that made it; returns what it answered: linked (by
    /// the member's own device), or a recovery proposed to the group (by another member's).
    pub async fn link(
        ep: &Endpoint,
        addr: EndpointAddr,
        link: frame::Link,
    ) -> Result<Linking, SyncError> {
        match ask(ep, addr, Frame::Link(link)).await? {
            Frame::Linked(l) => Ok(Linking::Linked(l)),
            Frame::Welcome(p) => Ok(Linking::Proposed(p)),
            _ => Err(SyncError::Protocol("expected Linked or Welcome".into())),
        }
    }

    /// Records a recovery link for a new device of `member` in `group`, valid for `minutes` (at
    /// most a day); returns its secret and expiry.
    pub async fn add_recovery(
        &self,
        group: GroupId,
        member: MemberId,
        minutes: u64,
    ) -> Result<([u8; 32], i64), SyncError> {
        let (secret, hash, expires) = one_time_secret(minutes.min(60 * 24))?;
        self.store(move |home, _, _| Ok(home.add_recovery(&hash, &group, &member, expires)?))
            .await?;
        Ok((secret, expires))
    }

    /// Records a device link for `group` valid for `minutes` (at most a day); returns its secret
    /// and expiry.
    pub async fn add_link(
        &self,
        group: GroupId,
        minutes: u64,
    ) -> Result<([u8; 32], i64), SyncError> {
        let (secret, hash, expires) = one_time_secret(minutes.min(60 * 24))?;
        self.store(move |home, _, _| Ok(home.add_link(&hash, &group, expires)?))
            .await?;
        Ok((secret, expires))
    }

    /// Proves an invitation to the inviting device; returns the id of the proposal that asks the
    /// group to add this device's member.
    pub async fn join(ep: &Endpoint, addr: EndpointAddr, join: Join) -> Result<EntryId, SyncError> {
        match ask(ep, addr, Frame::Join(join)).await? {
            Frame::Welcome(id) => Ok(id),
            _ => Err(SyncError::Protocol("expected Welcome".into())),
        }
    }

    /// Records an invitation for `group` valid for `minutes` (at most 30 days); returns its secret
    /// and expiry.
    pub async fn invite(&self, group: GroupId, minutes: u64) -> Result<([u8; 32], i64), SyncError> {
        let (secret, hash, expires) = one_time_secret(minutes.min(60 * 24 * 30))?;
        self.store(move |home, _, _| Ok(home.add_invite(&hash, &group, expires)?))
            .await?;
        Ok((secret, expires))
    }

    /// The protocol handler for [`ALPN`].
    pub fn sync_handler(&self) -> SyncHandler {
        SyncHandler(self.clone())
    }

    /// The protocol handler for [`JOIN_ALPN`].
    pub fn join_handler(&self) -> JoinHandler {
        JoinHandler(self.clone())
    }
}

/// What a device link's maker answered ([`Node::link`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Linking {
    /// The member's own device linked this one and sent the member's encryption secret.
    Linked(frame::Linked),
    /// Another member's device proposed to the group that this is the member's new device
    /// (`member.recover`); the proposal's id.
    Proposed(EntryId),
}

/// What [`Node::serve_link`] decided inside the store.
enum LinkAnswer {
    Linked(frame::Linked),
    Proposed(EntryId, Vec<EntryId>),
}

/// One request on [`JOIN_ALPN`] (an invitation or a device link) and its one answer; a Refuse is
/// the other device's refusal.
async fn ask(ep: &Endpoint, addr: EndpointAddr, request: Frame) -> Result<Frame, SyncError> {
    let conn = ep
        .connect(addr, JOIN_ALPN)
        .await
        .map_err(|e| SyncError::Network(format!("could not connect: {e}")))?;
    let r = async {
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| SyncError::Network(e.to_string()))?;
        let mut recv = Reader::new(recv);
        let mut stats = SyncStats::default();
        write_frame(&mut send, &request, &mut stats).await?;
        let _ = send.finish();
        match read_frame(&mut recv, Duration::from_secs(20), &mut stats).await? {
            Some(Frame::Refuse(r)) => Err(SyncError::Refused(r)),
            Some(f) => Ok(f),
            None => Err(SyncError::Protocol(
                "the other device closed the stream without an answer".into(),
            )),
        }
    }
    .await
    .map_err(|e| explain(&conn, e));
    conn.close(VarInt::from_u32(0), b"done");
    r
}

/// A fresh one-time secret, the hash the home keeps of it, and when it runs out, `minutes` from now.
fn one_time_secret(minutes: u64) -> Result<([u8; 32], [u8; 32], i64), SyncError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| SyncError::Task(format!("random generator failed: {e}")))?;
    let hash = secret_hash(&secret);
    let expires = now_ms().saturating_add((minutes * 60_000) as i64);
    Ok((secret, hash, expires))
}

impl From<InviteRefusal> for SyncError {
    fn from(r: InviteRefusal) -> Self {
        SyncError::Refused(r.to_string())
    }
}

/// Accepts `roundtable/sync/1` connections.
#[derive(Debug, Clone)]
pub struct SyncHandler(Node);

impl ProtocolHandler for SyncHandler {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        self.0
            .serve_conn(connection)
            .await
            .map_err(AcceptError::from_err)
    }
}

/// Accepts `roundtable/join/1` connections.
#[derive(Debug, Clone)]
pub struct JoinHandler(Node);

impl ProtocolHandler for JoinHandler {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        self.0
            .serve_join(connection)
            .await
            .map_err(AcceptError::from_err)
    }
}
