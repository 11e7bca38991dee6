//! The record on disk: one redb file per device home.
//!
//! ```text
//! HOME/roundtable.redb   entries (verbatim), statuses with reasons, the causal log, snapshots
//! HOME/device.key        the device secret key (mode 0600; sealed when a passphrase is given)
//! ```
//!
//! **Invariant:** an entry is acknowledged (returned as written or imported) only after the redb
//! transaction holding it commits with `Durability::Immediate`. Bulk imports commit in batches.
//!
//! **Invariant:** the store keeps every entry it was given that parsed as an entry: valid, pending
//! (waiting for entries it builds on) or quarantined with its reason. Nothing is silently dropped.
//!
//! **API boundary:** the store never judges entries itself; [`roundtable_core::Record`] does. The store
//! persists the verdicts and reloads the record quickly from a snapshot plus the log written after it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use roundtable_core::record::Ingested;
use roundtable_core::{Body, DeviceKey, Entry, EntryId, GroupId, Record, Rule};
use serde::{Deserialize, Serialize};

pub mod keyfile;

/// (group, entry id) → encoded entry, verbatim.
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// (group, entry id) → status byte + reason (UTF-8).
const STATUS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status");
/// (group, position u64 big-endian) → entry id: valid entries in the order they were applied (causal).
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log");
/// group → JSON group facts (name, log length).
const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("groups");
/// group → snapshot: log position u64le, doc length u64le, doc bytes, index bytes.
const SNAPSHOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshots");
/// Device settings: the member's own name and needs, and the like.
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

const VALID: u8 = 0;
const PENDING: u8 = 1;
const QUARANTINED: u8 = 2;

/// How many entries an import commits per transaction.
pub const IMPORT_BATCH: usize = 1000;

/// What went wrong in the store. Nothing committed before the error is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
    #[error("the database could not be used ({0}); if the disk is full, free space and try again")]
    Database(String),
    #[error("no Roundtable home at {0}: run `roundtable init --name NAME` first")]
    NoHome(PathBuf),
    #[error("a Roundtable home already exists at {0}")]
    HomeExists(PathBuf),
    #[error("{0}")]
    KeyFile(String),
    #[error("the device key is protected by a passphrase: give it with --passphrase-env VAR")]
    PassphraseNeeded,
    #[error("the passphrase is wrong; the device key was not unlocked and nothing was changed")]
    WrongPassphrase,
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
    #[error("this home does not hold group {0}")]
    NoSuchGroup(GroupId),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Refused(#[from] roundtable_core::Refused),
}

impl StoreError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        move |source| StoreError::Io { context, source }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupFacts {
    name: String,
    log_len: u64,
}

/// A device home: the database and the key file.
pub struct Home {
    dir: PathBuf,
    db: Database,
}

/// An open group: its record and where its log stands.
pub struct Group {
    pub record: Record,
    log_len: u64,
    snap_pos: u64,
}

impl Group {
    pub fn id(&self) -> GroupId {
        self.record.group()
    }
}

fn key2(group: &GroupId, id: &EntryId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&group.0);
    k[32..].copy_from_slice(&id.0);
    k
}

fn log_key(group: &GroupId, pos: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&group.0);
    k[32..].copy_from_slice(&pos.to_be_bytes());
    k
}

/// One stored entry with its status, as listed by [`Home::entries`].
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: EntryId,
    pub entry: Entry,
    pub status: StoredStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredStatus {
    Valid,
    Pending,
    /// Quarantined, with the reason kind and the reason in words.
    Quarantined {
        kind: String,
        reason: String,
    },
}

impl Home {
    const DB: &'static str = "roundtable.redb";
    const KEY: &'static str = "device.key";

    /// Creates a new home with a fresh device key. Returns whether the key is passphrase-protected.
    pub fn init(
        dir: &Path,
        name: &str,
        passphrase: Option<&str>,
    ) -> Result<(Home, DeviceKey), StoreError> {
        if dir.join(Self::KEY).exists() {
            return Err(StoreError::HomeExists(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(StoreError::io("creating the home folder"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(StoreError::io("protecting the home folder"))?;
        }
        let key = DeviceKey::generate().map_err(|e| StoreError::Random(e.to_string()))?;
        let db = Database::create(dir.join(Self::DB))?;
        let home = Home {
            dir: dir.to_path_buf(),
            db,
        };
        home.set_setting("name", name.as_bytes())?;
        keyfile::write(&dir.join(Self::KEY), &key, passphrase)?;
        Ok((home, key))
    }

    /// Opens an existing home.
    pub fn open(dir: &Path) -> Result<Home, StoreError> {
        if !dir.join(Self::KEY).exists() || !dir.join(Self::DB).exists() {
            return Err(StoreError::NoHome(dir.to_path_buf()));
        }
        let db = Database::create(dir.join(Self::DB))?;
        Ok(Home {
            dir: dir.to_path_buf(),
            db,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the device key needs a passphrase.
    pub fn key_is_protected(&self) -> Result<bool, StoreError> {
        keyfile::is_protected(&self.dir.join(Self::KEY))
    }

    /// Unlocks the device key.
    pub fn device_key(&self, passphrase: Option<&str>) -> Result<DeviceKey, StoreError> {
        keyfile::read(&self.dir.join(Self::KEY), passphrase)
    }

    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = match tx.open_table(SETTINGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(name)?.map(|v| v.value().to_vec()))
    }

    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(SETTINGS)?.insert(name, value)?;
        tx.commit()?;
        Ok(())
    }

    /// The groups this home holds: id and name.
    pub fn groups(&self) -> Result<Vec<(GroupId, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = match tx.open_table(GROUPS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let id: [u8; 32] = k
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("group key".into()))?;
            let facts: GroupFacts = serde_json::from_slice(v.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((GroupId::from_bytes(id), facts.name));
        }
        Ok(out)
    }

    /// Starts a new group with this device's member as its first member.
    #[allow(clippy::too_many_arguments)] // Record::create's arguments, plus the home.
    pub fn create_group(
        &self,
        key: &DeviceKey,
        name: &str,
        rule: Rule,
        quorum: u64,
        creator_name: &str,
        creator_needs: &str,
        time_ms: i64,
    ) -> Result<Group, StoreError> {
        let (record, genesis) = Record::create(
            key,
            name,
            rule,
            quorum,
            creator_name,
            creator_needs,
            time_ms,
        )?;
        let mut group = Group {
            record: Record::new(record.group()),
            log_len: 0,
            snap_pos: 0,
        };
        self.ingest(&mut group, vec![genesis])?;
        Ok(group)
    }

    /// Opens a group, or starts an empty one for entries of a group this home does not know yet.
    pub fn open_or_new_group(&self, id: &GroupId) -> Result<Group, StoreError> {
        match self.open_group(id) {
            Err(StoreError::NoSuchGroup(_)) => Ok(Group {
                record: Record::new(*id),
                log_len: 0,
                snap_pos: 0,
            }),
            other => other,
        }
    }

    /// Loads a group: its latest snapshot, then the log written after it, then pending and quarantined entries.
    pub fn open_group(&self, id: &GroupId) -> Result<Group, StoreError> {
        let tx = self.db.begin_read()?;
        let groups = tx
            .open_table(GROUPS)
            .map_err(|_| StoreError::NoSuchGroup(*id))?;
        let facts: GroupFacts = match groups.get(id.0.as_slice())? {
            Some(v) => {
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => return Err(StoreError::NoSuchGroup(*id)),
        };
        let mut record = None;
        let mut snap_pos = 0;
        if let Ok(snaps) = tx.open_table(SNAPSHOTS)
            && let Some(v) = snaps.get(id.0.as_slice())?
        {
            let v = v.value();
            if let Some((pos, r)) = parse_snapshot(id, v) {
                snap_pos = pos;
                record = Some(r);
            }
        }
        let mut record = record.unwrap_or_else(|| Record::new(*id));
        let entries = tx.open_table(ENTRIES)?;
        let log = tx.open_table(LOG)?;
        let mut tail = Vec::new();
        for row in log.range(log_key(id, snap_pos).as_slice()..log_key(id, u64::MAX).as_slice())? {
            let (_, h) = row?;
            let h: [u8; 32] = h
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("log entry".into()))?;
            tail.push(read_entry(&entries, id, &EntryId(h))?);
        }
        // Entries after the snapshot were verified when first stored: every rule runs again, but their
        // signatures are not re-checked (this file never comes from another device).
        for chunk in tail.chunks(IMPORT_BATCH) {
            let out = record.ingest_own_log(chunk.to_vec());
            if !out.rejected.is_empty() || out.rebuild {
                return Err(StoreError::Corrupt(
                    "the log holds entries the rules now refuse".into(),
                ));
            }
        }
        let others: Vec<Entry> = self
            .by_status(&tx, id, |s| s != VALID)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        if !others.is_empty() {
            record.ingest(others);
        }
        Ok(Group {
            record,
            log_len: facts.log_len,
            snap_pos,
        })
    }

    fn by_status(
        &self,
        tx: &redb::ReadTransaction,
        group: &GroupId,
        want: impl Fn(u8) -> bool,
    ) -> Result<Vec<(EntryId, Entry)>, StoreError> {
        let status = tx.open_table(STATUS)?;
        let entries = tx.open_table(ENTRIES)?;
        let lo = key2(group, &EntryId([0; 32]));
        let hi = key2(group, &EntryId([0xff; 32]));
        let mut out = Vec::new();
        for row in status.range(lo.as_slice()..=hi.as_slice())? {
            let (k, v) = row?;
            let s = v.value().first().copied().unwrap_or(QUARANTINED);
            if want(s) {
                let id: [u8; 32] = k.value()[32..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("status key".into()))?;
                out.push((EntryId(id), read_entry(&entries, group, &EntryId(id))?));
            }
        }
        Ok(out)
    }

    /// Every entry of the group: valid ones in causal order, then pending, then quarantined.
    pub fn entries(&self, group: &GroupId) -> Result<Vec<Stored>, StoreError> {
        let tx = self.db.begin_read()?;
        let entries = tx.open_table(ENTRIES)?;
        let log = tx.open_table(LOG)?;
        let mut out = Vec::new();
        for row in log.range(log_key(group, 0).as_slice()..log_key(group, u64::MAX).as_slice())? {
            let (_, h) = row?;
            let id = EntryId(
                h.value()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("log entry".into()))?,
            );
            out.push(Stored {
                id,
                entry: read_entry(&entries, group, &id)?,
                status: StoredStatus::Valid,
            });
        }
        let status = tx.open_table(STATUS)?;
        let mut rest = Vec::new();
        for (id, entry) in self.by_status(&tx, group, |s| s != VALID)? {
            let v = status
                .get(key2(group, &id).as_slice())?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            let st = match v.first() {
                Some(&PENDING) => StoredStatus::Pending,
                _ => {
                    let text = String::from_utf8_lossy(v.get(1..).unwrap_or_default()).to_string();
                    let (kind, reason) = text.split_once('\n').unwrap_or(("unknown", &text));
                    StoredStatus::Quarantined {
                        kind: kind.to_string(),
                        reason: reason.to_string(),
                    }
                }
            };
            rest.push(Stored {
                id,
                entry,
                status: st,
            });
        }
        rest.sort_by_key(|s| (s.status != StoredStatus::Pending, s.id));
        out.extend(rest);
        Ok(out)
    }

    /// Verifies and stores entries (from a bundle or a peer), committing durably every [`IMPORT_BATCH`].
    pub fn ingest(&self, group: &mut Group, entries: Vec<Entry>) -> Result<Ingested, StoreError> {
        let mut total = Ingested::default();
        let mut rest = entries;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(IMPORT_BATCH));
            let batch = std::mem::replace(&mut rest, tail);
            let mut out = group.record.ingest(batch.clone());
            if out.rebuild {
                out = self.rebuild(group, batch)?;
            } else {
                self.commit(group, &out)?;
            }
            total.accepted.extend(out.accepted);
            total.pending.extend(out.pending);
            total.rejected.extend(out.rejected);
            total.duplicates += out.duplicates;
        }
        // Pending entries that were accepted later in the same import are no longer pending.
        total
            .pending
            .retain(|(h, _)| !group.record.contains(h) && !group.record.rejected().contains_key(h));
        Ok(total)
    }

    /// A fork was settled against an applied entry: judge everything again from scratch.
    ///
    /// The report covers this batch (new entries accepted, pending or rejected, and the ones already
    /// held) and every entry held before that the rebuild now rejects, so nothing is set aside unseen.
    fn rebuild(&self, group: &mut Group, batch: Vec<Entry>) -> Result<Ingested, StoreError> {
        let id = group.id();
        let held = self.entries(&id)?;
        let was_quarantined: HashSet<EntryId> = held
            .iter()
            .filter(|s| matches!(s.status, StoredStatus::Quarantined { .. }))
            .map(|s| s.id)
            .collect();
        let known: HashSet<EntryId> = held.iter().map(|s| s.id).collect();
        let mut all: Vec<Entry> = held.into_iter().map(|s| s.entry).collect();
        let mut report = Ingested::default();
        let mut mine = HashSet::new();
        for e in batch {
            match e.parse() {
                Ok(p) if known.contains(&p.hash) => report.duplicates += 1,
                Ok(p) => {
                    mine.insert(p.hash);
                    all.push(e);
                }
                Err(_) => all.push(e),
            }
        }
        let (record, out) = Record::from_entries(id, all);
        group.record = record;
        let tx = self.db.begin_write()?;
        {
            let mut log = tx.open_table(LOG)?;
            let mut status = tx.open_table(STATUS)?;
            let mut snaps = tx.open_table(SNAPSHOTS)?;
            for pos in 0..group.log_len {
                log.remove(log_key(&id, pos).as_slice())?;
            }
            let lo = key2(&id, &EntryId([0; 32]));
            let hi = key2(&id, &EntryId([0xff; 32]));
            status.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
            snaps.remove(id.0.as_slice())?;
        }
        tx.commit()?;
        group.log_len = 0;
        group.snap_pos = 0;
        // Every entry is re-recorded with its new verdict, valid ones in causal order.
        self.commit(group, &out)?;
        report.accepted = out
            .accepted
            .iter()
            .filter(|h| mine.contains(h))
            .copied()
            .collect();
        report.pending = out
            .pending
            .into_iter()
            .filter(|(h, _)| mine.contains(h))
            .collect();
        report.rejected = out
            .rejected
            .into_iter()
            .filter(|r| !was_quarantined.contains(&r.id))
            .collect();
        Ok(report)
    }

    /// Writes, under one durable transaction, the entries and verdicts of one ingest.
    fn commit(&self, group: &mut Group, out: &Ingested) -> Result<(), StoreError> {
        let id = group.id();
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        {
            let mut entries = tx.open_table(ENTRIES)?;
            let mut status = tx.open_table(STATUS)?;
            let mut log = tx.open_table(LOG)?;
            let mut groups = tx.open_table(GROUPS)?;
            for h in &out.accepted {
                let k = key2(&id, h);
                if entries.get(k.as_slice())?.is_none() {
                    let e = out.entries.get(h).ok_or_else(|| {
                        StoreError::Corrupt("an accepted entry has no bytes".into())
                    })?;
                    entries.insert(k.as_slice(), e.encode().as_slice())?;
                }
                status.insert(k.as_slice(), [VALID].as_slice())?;
                log.insert(log_key(&id, group.log_len).as_slice(), h.0.as_slice())?;
                group.log_len += 1;
            }
            for (h, e) in &out.pending {
                let k = key2(&id, h);
                entries.insert(k.as_slice(), e.encode().as_slice())?;
                status.insert(k.as_slice(), [PENDING].as_slice())?;
            }
            for r in &out.rejected {
                let k = key2(&id, &r.id);
                // A forged copy must never overwrite a valid entry with the same change hash.
                if status
                    .get(k.as_slice())?
                    .is_some_and(|v| v.value().first() == Some(&VALID))
                {
                    continue;
                }
                entries.insert(k.as_slice(), r.entry.encode().as_slice())?;
                let mut v = vec![QUARANTINED];
                v.extend_from_slice(format!("{}\n{}", r.reason.kind(), r.reason).as_bytes());
                status.insert(k.as_slice(), v.as_slice())?;
            }
            let name = group
                .record
                .group_info()
                .map(|(n, _, _)| n.to_string())
                .unwrap_or_default();
            let facts = GroupFacts {
                name,
                log_len: group.log_len,
            };
            let facts =
                serde_json::to_vec(&facts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            groups.insert(id.0.as_slice(), facts.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes a new entry by this device: checked by the rules, signed, and durably stored before it returns.
    pub fn append(
        &self,
        group: &mut Group,
        key: &DeviceKey,
        body: Body,
        time_ms: i64,
    ) -> Result<EntryId, StoreError> {
        let (id, entry) = group.record.author(key, body, time_ms)?;
        let mut out = Ingested {
            accepted: vec![id],
            ..Default::default()
        };
        out.entries.insert(id, entry);
        self.commit(group, &out)?;
        Ok(id)
    }

    /// Saves a snapshot when enough entries were written since the last one, so the next open
    /// replays at most about an eighth of the record.
    pub fn checkpoint(&self, group: &mut Group) -> Result<bool, StoreError> {
        let since = group.log_len.saturating_sub(group.snap_pos);
        if since < 64.max(group.log_len / 8) {
            return Ok(false);
        }
        self.snapshot(group)?;
        Ok(true)
    }

    /// Saves a snapshot now.
    pub fn snapshot(&self, group: &mut Group) -> Result<(), StoreError> {
        let (doc, index) = group
            .record
            .snapshot()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut v = Vec::with_capacity(16 + doc.len() + index.len());
        v.extend_from_slice(&group.log_len.to_le_bytes());
        v.extend_from_slice(&(doc.len() as u64).to_le_bytes());
        v.extend_from_slice(&doc);
        v.extend_from_slice(&index);
        let tx = self.db.begin_write()?;
        tx.open_table(SNAPSHOTS)?
            .insert(group.id().0.as_slice(), v.as_slice())?;
        tx.commit()?;
        group.snap_pos = group.log_len;
        Ok(())
    }
}

fn read_entry(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    group: &GroupId,
    id: &EntryId,
) -> Result<Entry, StoreError> {
    let v = table
        .get(key2(group, id).as_slice())?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {id} is missing")))?;
    Entry::decode(v.value()).map_err(|e| StoreError::Corrupt(format!("entry {id}: {e}")))
}

/// A damaged snapshot is ignored: the record is rebuilt from its entries instead.
fn parse_snapshot(group: &GroupId, v: &[u8]) -> Option<(u64, Record)> {
    let pos = u64::from_le_bytes(v.get(0..8)?.try_into().ok()?);
    let dlen = usize::try_from(u64::from_le_bytes(v.get(8..16)?.try_into().ok()?)).ok()?;
    let doc = v.get(16..16usize.checked_add(dlen)?)?;
    let index = v.get(16 + dlen..)?;
    Record::restore(*group, doc, index).ok().map(|r| (pos, r))
}
