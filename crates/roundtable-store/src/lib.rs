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

#![deny(missing_docs)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use roundtable_core::record::Ingested;
use roundtable_core::{Body, DeviceKey, Entry, EntryId, GroupId, Record, Rule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub mod keyfile;

/// (group, entry id) → encoded entry, verbatim.
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// (group, entry id) → status byte + reason (UTF-8).
const STATUS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status");
/// (group, position u64 big-endian) → entry id: valid entries in the order they were applied (causal).
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log");
/// group → JSON group facts (name, log length).
const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("groups");
/// group → snapshot: log position u64le, doc length u64le, doc bytes, index bytes, SHA-256 of all before.
const SNAPSHOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshots");
/// SHA-256 of an invitation secret → group (32) | expires ms (i64le) | used (u8).
const INVITES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("invites");
/// device id → last sync time (ms since the epoch, i64le).
const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");
/// Device settings: the member's own name and needs, and the like.
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

const VALID: u8 = 0;
const PENDING: u8 = 1;
const QUARANTINED: u8 = 2;

/// How long opening a home waits for another process that holds it.
pub const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many entries an import commits per transaction.
pub const IMPORT_BATCH: usize = 1000;

/// The most rejected entries a home keeps as evidence for one group from one author (the device
/// the change names; entries that do not parse count as one author). More are refused, counted and
/// not stored, so a hostile file cannot grow every store that imports it.
pub const EVIDENCE_PER_AUTHOR: usize = 64;

/// The most rejected entries a home keeps as evidence for one group in all.
pub const EVIDENCE_TOTAL: usize = 1024;

/// Whether a status value (status byte, then the reason kind) is one that other devices should
/// receive: valid, pending, or rejected by a rule on an entry signed for this group (evidence such
/// as a fork). Bytes whose signature failed, that did not parse, or that belong to another document
/// stay on this device: passing them on would let anyone grow every store with one file.
fn relayable(v: &[u8]) -> bool {
    match v.first() {
        Some(&VALID) | Some(&PENDING) => true,
        Some(&QUARANTINED) => {
            let kind = String::from_utf8_lossy(&v[1..]);
            let kind = kind.split('\n').next().unwrap_or_default();
            !matches!(
                kind,
                "malformed" | "bad_signature" | "unsupported_document" | "not_in_group"
            )
        }
        _ => false,
    }
}

/// The author an entry names (the change's actor), for the evidence limits.
fn claimed_author(e: &Entry) -> Option<[u8; 32]> {
    e.parse().ok().map(|p| p.actor)
}

/// What went wrong in the store. Nothing committed before the error is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed for a reason other than the disk's I/O (the database file is damaged or not a
    /// Roundtable one, a table is missing or of the wrong type, a transaction could not start); the
    /// text is redb's.
    #[error("the database could not be used ({0}); if the disk is full, free space and try again")]
    Database(String),
    /// The file system refused a write for want of space (or quota); the text is the operating
    /// system's. A group whose commit failed so was reloaded from what is committed.
    #[error(
        "the disk is full ({0}): this change may not have been saved, and nothing saved before it \
         is lost. Free space on the disk, then try again"
    )]
    DiskFull(String),
    /// The disk (or the file system) reported an error other than a full disk, such as EIO. A group
    /// whose commit failed so was reloaded from what is committed (or emptied and marked stale until
    /// its next `refresh`, if that read failed too).
    #[error(
        "the disk reported an error while saving ({0}): this change may not have been saved, and \
         nothing saved before it is lost. Check the disk, then try again; Roundtable reopens the \
         record from what was saved"
    )]
    DiskError(String),
    /// An earlier disk error on this open home: redb refuses everything until it is opened again, so
    /// the caller must drop this [`Home`] and open it anew.
    #[error(
        "the disk reported an error earlier, so this home stopped saving until it is opened again; \
         nothing saved before is lost. Check the disk (if the disk is full, free space), then try \
         again"
    )]
    DiskErrorEarlier,
    /// A file names a group this device does not hold, without that group's genesis
    /// ([`Home::ingest`]); nothing was stored.
    #[error(
        "this file is for group {0}, which this device does not hold, and it does not contain that \
         group's first entry (its genesis), so it cannot start the group here; nothing was stored. \
         Ask a member for a full copy of the group"
    )]
    NoGenesis(GroupId),
    /// The group named is not in this home ([`Home::open_group`], [`Home::forget_group`]).
    #[error("this home does not hold group {0}")]
    NoSuchGroup(GroupId),
    /// Stored data fails the store's own checks when read (a row of the wrong length, group facts that
    /// are not JSON, a log entry whose bytes are missing or do not decode, a log the rules now
    /// refuse), or a snapshot or the group facts could not be encoded. A damaged snapshot is not an
    /// error: the record is rebuilt from its entries.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The rules refused a write by this device ([`Home::append`] and the methods built on it,
    /// [`Home::create_group`]); nothing was stored.
    #[error(transparent)]
    Refused(#[from] roundtable_core::Refused),
    /// The home could not be opened or made ([`OpenError`]).
    #[error(transparent)]
    Open(OpenError),
    /// A device key or the encryption secret could not be made, unlocked or saved ([`KeyError`]).
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Why a device key or the encryption secret could not be made, unlocked or saved
/// ([`Home::device_key`], [`Home::enc_secret`], [`keyfile`]). Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing, in words ("writing the device key").
        context: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The key file is damaged or unusable (not its JSON shape, wrong lengths, an unknown protection,
    /// an Argon2id cost above [`keyfile::MAX_ARGON2`], a key that does not match its device id), or
    /// sealing a key failed. The text is the whole message.
    #[error("{0}")]
    Damaged(String),
    /// A passphrase-protected key was opened without a passphrase.
    #[error("the device key is protected by a passphrase: give the passphrase to unlock it")]
    PassphraseNeeded,
    /// A protected key did not decrypt with the passphrase given (a tampered file looks the same).
    /// Nothing was changed.
    #[error("the passphrase is wrong; the device key was not unlocked and nothing was changed")]
    WrongPassphrase,
    /// A new passphrase that is too short to protect the key, refused before anything is written.
    #[error(
        "a passphrase needs at least {min} characters (a few words of your own make a good one); \
         nothing was saved"
    )]
    PassphraseTooShort {
        /// The shortest accepted, in characters ([`keyfile::MIN_PASSPHRASE_CHARS`]).
        min: usize,
    },
    /// The operating system's random generator failed while making a device key, an encryption
    /// secret, or a key file's salt or nonce.
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

impl KeyError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> KeyError {
        move |source| KeyError::Io { context, source }
    }
}

/// Why a home could not be opened or made ([`Home::open`], [`Home::open_with_backend`],
/// [`Home::init`], [`Home::check_private`]). Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Creating or protecting the home folder, or checking who can read it, failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing, in words ("writing the device key").
        context: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process still held the home's database (the folder named) after [`OPEN_WAIT`]
    /// ([`Home::open`]), or at once ([`Home::open_with_backend`], which does not wait).
    #[error("the home at {0} stayed busy (another roundtable command is using it); try again")]
    Busy(PathBuf),
    /// The folder named has no `device.key` (for [`Home::open`], or no `roundtable.redb`): no home
    /// was set up there.
    #[error("no Roundtable home at {0}: set this device up first")]
    NoHome(PathBuf),
    /// [`Home::init`] found a `device.key` in the folder named; nothing was written.
    #[error("a Roundtable home already exists at {0}")]
    HomeExists(PathBuf),
    /// The home folder or a clear-text key is open to other users of this computer
    /// ([`Home::check_private`]); the home is not used.
    #[error(
        "other users of this computer can read this home ({what}); Roundtable will not use it until \
         it is private again. Fix it with: {fix}"
    )]
    NotPrivate {
        /// Each problem found, in words, separated by "; ".
        what: String,
        /// The `chmod` commands that fix them all, one shell line, its paths quoted for a POSIX shell.
        fix: String,
    },
    /// The home's key could not be made or saved ([`Home::init`]).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database failed while it was opened or set up.
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl OpenError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> OpenError {
        move |source| OpenError::Io { context, source }
    }
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> OpenError {
        match e {
            StoreError::Open(o) => o,
            StoreError::Key(k) => OpenError::Key(k),
            e => OpenError::Store(Box::new(e)),
        }
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> StoreError {
        match e {
            OpenError::Store(s) => *s,
            OpenError::Key(k) => StoreError::Key(k),
            o => StoreError::Open(o),
        }
    }
}

impl StoreError {
    /// The key's own error, when this is one ([`KeyError`]).
    pub fn as_key(&self) -> Option<&KeyError> {
        match self {
            StoreError::Key(k) | StoreError::Open(OpenError::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The opening error, when this is one ([`OpenError`]).
    pub fn as_open(&self) -> Option<&OpenError> {
        match self {
            StoreError::Open(o) => Some(o),
            _ => None,
        }
    }
}

impl StoreError {
    /// A redb error in words: an I/O error says what the disk did and that nothing saved is lost.
    fn from_redb(e: redb::Error) -> StoreError {
        use std::io::ErrorKind;
        match e {
            redb::Error::Io(io)
                if matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) =>
            {
                StoreError::DiskFull(io.to_string())
            }
            redb::Error::Io(io) => StoreError::DiskError(io.to_string()),
            redb::Error::PreviousIo => StoreError::DiskErrorEarlier,
            e => StoreError::Database(e.to_string()),
        }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from_redb(e.into())
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

/// The last byte of a device link's row in `INVITES` (an invitation's row has none).
const LINK_ROW: u8 = 2;
/// The tag byte of a recovery link's row in `INVITES`, followed by the member recovered (so its
/// row is 74 bytes: it never works as an invitation (41) or a member's own device link (42)).
const RECOVER_ROW: u8 = 3;

/// Why an invitation was not accepted, in words for the person joining.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteRefusal {
    /// No invitation with this secret is recorded for this group (or its stored row is damaged).
    #[error("this invitation is not known here; ask a member for a new one")]
    Unknown,
    /// The invitation was used already: each is good for one join.
    #[error("this invitation has already been used; ask a member for a new one")]
    Used,
    /// The time given is after the invitation's expiry.
    #[error("this invitation has expired; ask a member for a new one")]
    Expired,
    /// The store failed while checking or marking the invitation; the text is the [`StoreError`].
    #[error("the inviting device could not check the invitation: {0}")]
    Store(String),
}

/// A group's row in the groups table, rewritten only when one of its fields changes (not on every
/// append). The log's length is not here: it is the log table's last position plus one, so an append
/// touches two tables (entries, log), each of which redb copies on write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GroupFacts {
    name: String,
    /// Bumped when a fork forces the log to be rewritten; another process then reloads the group.
    #[serde(default)]
    generation: u64,
}

/// A device home: the database and the key file.
pub struct Home {
    dir: PathBuf,
    db: Database,
    /// Which open of the database this is (unique in the process).
    instance: u64,
    /// Group commits made through this handle.
    commits: AtomicU64,
}

/// Numbers each open of a home in this process.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// What [`Home::propose_change`] wrote.
#[derive(Debug, Clone)]
pub struct Proposed {
    /// The proposal entry (the first of `written`).
    pub proposal: EntryId,
    /// The outcome, when the proposer was the only member and so closed it.
    pub outcome: Option<EntryId>,
    /// Every entry written, in order.
    pub written: Vec<EntryId>,
}

/// An open group: its record and where its log stands.
pub struct Group {
    /// The group's record as committed: never ahead of the disk. Write to it only through [`Home`]
    /// ([`Home::append`], [`Home::ingest`]), which keeps the two in step.
    pub record: Record,
    log_len: u64,
    snap_pos: u64,
    generation: u64,
    /// The (home instance, its commit count) at which this group was last known to match the disk.
    /// redb's file lock keeps every other process out while a `Home` is open, so while both numbers
    /// are unchanged nothing can have been written that this group lacks: `refresh` needs no read.
    seen: (u64, u64),
    /// A commit failed and reading the group back failed too: the record was emptied (it must never
    /// run ahead of the disk) and the next `refresh` loads the group again.
    stale: bool,
    /// Rejected entries the last [`Home::ingest`] did not keep, because the evidence limits
    /// ([`EVIDENCE_PER_AUTHOR`], [`EVIDENCE_TOTAL`]) were reached.
    pub evidence_not_kept: usize,
}

impl Group {
    /// A group with nothing loaded: a new one, or one that is not on disk.
    fn empty(id: GroupId) -> Group {
        Group {
            record: Record::new(id),
            log_len: 0,
            snap_pos: 0,
            generation: 0,
            seen: (0, 0),
            stale: false,
            evidence_not_kept: 0,
        }
    }

    /// The group's id (its genesis entry's id), known even while nothing is loaded.
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

/// Authors one entry into the record and records it in `out` for the commit.
fn author_into(
    record: &mut Record,
    out: &mut Ingested,
    key: &DeviceKey,
    body: Body,
    time_ms: i64,
) -> Result<EntryId, StoreError> {
    let (id, entry) = record.author(key, body, time_ms)?;
    out.accepted.push(id);
    out.entries.insert(id, entry);
    Ok(id)
}

/// The outcome entry closing `proposal` with the record's recount now, and that tally.
fn outcome_body(
    record: &Record,
    proposal: EntryId,
    outcome: &str,
) -> Result<(Body, roundtable_core::Tally), StoreError> {
    let t = record.tally_now(&proposal).ok_or(StoreError::Refused(
        roundtable_core::Refused::Invalid(roundtable_core::Invalid::UnknownReferent {
            what: "proposal".into(),
            id: proposal,
        }),
    ))?;
    let body = Body::Outcome {
        proposal,
        outcome: outcome.to_string(),
        decision: t.decision,
        counts: t.counts,
    };
    Ok((body, t))
}

/// The length of a group's log on disk: its last position plus one (0 when it has none).
fn log_len_on_disk(
    log: &impl ReadableTable<&'static [u8], &'static [u8]>,
    group: &GroupId,
) -> Result<u64, StoreError> {
    let (lo, hi) = (log_key(group, 0), log_key(group, u64::MAX));
    match log.range(lo.as_slice()..=hi.as_slice())?.next_back() {
        None => Ok(0),
        Some(row) => {
            let (k, _) = row?;
            let pos: [u8; 8] = k.value()[32..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("log key".into()))?;
            Ok(u64::from_be_bytes(pos) + 1)
        }
    }
}

/// `s` as one shell word: unchanged when it holds only safe characters, else in single quotes.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// One stored entry with its status, as listed by [`Home::entries`].
#[derive(Debug, Clone)]
pub struct Stored {
    /// The id it is stored under: its change hash, or for bytes that did not parse or whose
    /// signature failed, the SHA-256 of the encoded entry (so a forgery never takes a real id).
    pub id: EntryId,
    /// The entry exactly as signed and received.
    pub entry: Entry,
    /// Its verdict as last committed.
    pub status: StoredStatus,
}

/// An entry's verdict as stored. The store only records what [`Record`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredStatus {
    /// Accepted by the rules: in the group's log, in causal order.
    Valid,
    /// Waiting for entries it builds on; judged when they arrive.
    Pending,
    /// Quarantined, with the reason kind and the reason in words.
    Quarantined {
        /// The rule's stable kind ([`roundtable_core::Invalid::kind`]), or `unknown` when the stored
        /// reason has no kind.
        kind: String,
        /// The reason in words, for people.
        reason: String,
    },
}

impl Home {
    const DB: &'static str = "roundtable.redb";
    const KEY: &'static str = "device.key";

    /// Creates a new home with a fresh device key and encryption secret, both protected by
    /// `passphrase` when one is given. Returns the open home and the device key. Refuses a folder
    /// that already holds a `device.key` ([`OpenError::HomeExists`]) and a short passphrase
    /// ([`KeyError::PassphraseTooShort`]) before writing anything.
    pub fn init(
        dir: &Path,
        name: &str,
        passphrase: Option<&str>,
    ) -> Result<(Home, DeviceKey), OpenError> {
        if dir.join(Self::KEY).exists() {
            return Err(OpenError::HomeExists(dir.to_path_buf()));
        }
        if let Some(p) = passphrase {
            keyfile::check_new_passphrase(p)?;
        }
        std::fs::create_dir_all(dir).map_err(OpenError::io("creating the home folder"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(OpenError::io("protecting the home folder"))?;
        }
        let key = DeviceKey::generate().map_err(|e| KeyError::Random(e.to_string()))?;
        let db = Database::create(dir.join(Self::DB)).map_err(StoreError::from)?;
        let home = Home::with_db(dir, db);
        // Every table exists from the start, so readers never meet a missing one.
        let tx = home.db.begin_write().map_err(StoreError::from)?;
        for t in [ENTRIES, STATUS, LOG, GROUPS, SNAPSHOTS, INVITES, PEERS] {
            tx.open_table(t).map_err(StoreError::from)?;
        }
        tx.open_table(SETTINGS).map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        home.set_setting("name", name.as_bytes())?;
        keyfile::write(&dir.join(Self::KEY), &key, passphrase)?;
        home.new_enc_secret(passphrase)?;
        Ok((home, key))
    }

    const ENC_KEY: &'static str = "encryption.key";

    fn new_enc_secret(&self, passphrase: Option<&str>) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        keyfile::write_enc(&self.dir.join(Self::ENC_KEY), &secret, passphrase)?;
        Ok(secret)
    }

    /// Replaces this device's encryption secret with its member's (from the member's other
    /// device, when this one is linked to them), protected by `passphrase` like the device key.
    pub fn set_enc_secret(
        &self,
        secret: &[u8; 32],
        passphrase: Option<&str>,
    ) -> Result<(), KeyError> {
        // Same protection as the device key: writing it first checks the passphrase.
        self.device_key(passphrase)?;
        keyfile::write_enc(&self.dir.join(Self::ENC_KEY), secret, passphrase)
    }

    const PREV_ENC_KEY: &'static str = "encryption.prev";

    /// Makes `secret` this device's encryption secret and keeps the one it replaces as the
    /// previous secret ([`Home::prev_enc_secret`]), both protected by `passphrase` like the device
    /// key. **Invariant:** the previous secret is saved before the current one is replaced, so a
    /// crash in between leaves both files holding the old secret (nothing lost, nothing changed).
    pub fn replace_enc_secret(
        &self,
        secret: &[u8; 32],
        passphrase: Option<&str>,
    ) -> Result<(), KeyError> {
        let old = self.enc_secret(passphrase)?;
        keyfile::write_enc(&self.dir.join(Self::PREV_ENC_KEY), &old, passphrase)?;
        keyfile::write_enc(&self.dir.join(Self::ENC_KEY), secret, passphrase)
    }

    /// Replaces this device's encryption secret with a new random one ([`Home::replace_enc_secret`])
    /// and returns it.
    pub fn rotate_enc_secret(
        &self,
        passphrase: Option<&str>,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        self.replace_enc_secret(&secret, passphrase)?;
        Ok(secret)
    }

    /// The encryption secret this device held before the last [`Home::replace_enc_secret`], if any.
    pub fn prev_enc_secret(
        &self,
        passphrase: Option<&str>,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
        let path = self.dir.join(Self::PREV_ENC_KEY);
        if !path.exists() {
            return Ok(None);
        }
        keyfile::read_enc(&path, passphrase).map(Some)
    }

    /// Unlocks the device's encryption secret (X25519, for sealed threads), protected like the
    /// device key. A home made before sealed threads existed gets one now.
    pub fn enc_secret(&self, passphrase: Option<&str>) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let path = self.dir.join(Self::ENC_KEY);
        if path.exists() {
            return keyfile::read_enc(&path, passphrase);
        }
        // Same protection as the device key: unlocking it first checks the passphrase.
        self.device_key(passphrase)?;
        self.new_enc_secret(passphrase)
    }

    /// Refuses a home that other users of this computer can read, like ssh does: a home folder
    /// with any permission for group or others, or a key kept in clear text that they can read.
    /// The error names the command that makes the home private again.
    pub fn check_private(dir: &Path) -> Result<(), OpenError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| -> Result<u32, OpenError> {
                Ok(std::fs::metadata(p)
                    .map_err(OpenError::io("checking who can read the home"))?
                    .permissions()
                    .mode()
                    & 0o777)
            };
            let mut open = Vec::new();
            let dir_mode = mode(dir)?;
            if dir_mode & 0o077 != 0 {
                open.push(format!("the folder is {dir_mode:o}, not 700"));
            }
            let mut keys = Vec::new();
            for name in [Self::KEY, Self::ENC_KEY, Self::PREV_ENC_KEY] {
                let p = dir.join(name);
                if !p.exists() {
                    continue;
                }
                keys.push(p.display().to_string());
                let m = mode(&p)?;
                if m & 0o077 != 0 && !keyfile::is_protected(&p)? {
                    open.push(format!(
                        "{name} is kept in clear text with mode {m:o}, not 600"
                    ));
                }
            }
            if !open.is_empty() {
                return Err(OpenError::NotPrivate {
                    what: open.join("; "),
                    fix: format!(
                        "chmod 700 {} && chmod 600 {}",
                        shell_quote(&dir.display().to_string()),
                        keys.iter()
                            .map(|k| shell_quote(k))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Opens an existing home. A home open to other users is refused ([`Home::check_private`]).
    pub fn open(dir: &Path) -> Result<Home, OpenError> {
        if !dir.join(Self::KEY).exists() || !dir.join(Self::DB).exists() {
            return Err(OpenError::NoHome(dir.to_path_buf()));
        }
        Self::check_private(dir)?;
        // Another process (a running `serve`) may hold the file for a moment: wait for it, briefly.
        let deadline = std::time::Instant::now() + OPEN_WAIT;
        let mut pause = std::time::Duration::from_millis(2);
        let db = loop {
            match Database::create(dir.join(Self::DB)) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(OpenError::Busy(dir.to_path_buf()));
                }
                Err(e) => return Err(StoreError::from(e).into()),
            }
        };
        Ok(Home::with_db(dir, db))
    }

    /// Opens an existing home whose database is reached through `backend` rather than the file
    /// `roundtable.redb`: for fault-injection tests (a backend that wraps redb's `FileBackend` and
    /// fails a chosen write) and for embedders with their own storage. The backend must hold this
    /// home's database; as for [`Home::open`], the key file must exist. There is no waiting: a
    /// database another process holds is [`OpenError::Busy`] at once.
    pub fn open_with_backend(
        dir: &Path,
        backend: impl redb::StorageBackend,
    ) -> Result<Home, OpenError> {
        if !dir.join(Self::KEY).exists() {
            return Err(OpenError::NoHome(dir.to_path_buf()));
        }
        let db = match redb::Builder::new().create_with_backend(backend) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(OpenError::Busy(dir.to_path_buf()));
            }
            Err(e) => return Err(StoreError::from(e).into()),
        };
        Ok(Home::with_db(dir, db))
    }

    /// The home at `dir` on an open database, numbered as a new open.
    fn with_db(dir: &Path, db: Database) -> Home {
        Home {
            dir: dir.to_path_buf(),
            db,
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::SeqCst),
            commits: AtomicU64::new(0),
        }
    }

    /// The home folder, as it was given when opened.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the device key needs a passphrase.
    pub fn key_is_protected(&self) -> Result<bool, KeyError> {
        keyfile::is_protected(&self.dir.join(Self::KEY))
    }

    /// This device's public id, as its key file names it: known without the passphrase.
    pub fn device_id(&self) -> Result<roundtable_core::DeviceId, KeyError> {
        keyfile::device_id(&self.dir.join(Self::KEY))?
            .parse()
            .map_err(|_| KeyError::Damaged("the device key file's device id is damaged".into()))
    }

    /// Unlocks the device key.
    pub fn device_key(&self, passphrase: Option<&str>) -> Result<DeviceKey, KeyError> {
        keyfile::read(&self.dir.join(Self::KEY), passphrase)
    }

    /// A device setting's bytes (`name`, the member's own name; `web.seen.GROUP`, ...), or `None`
    /// when it was never set. Settings stay in this home: no bundle or sync carries them.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        // Every table exists from `Home::init` on.
        let t = tx.open_table(SETTINGS)?;
        Ok(t.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Sets or replaces a device setting, committed before it returns. A setting whose name holds a
    /// group's id is removed with that group ([`Home::forget_group`]).
    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(SETTINGS)?.insert(name, value)?;
        tx.commit()?;
        Ok(())
    }

    /// The groups this home holds: id and name.
    pub fn groups(&self) -> Result<Vec<(GroupId, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        // Every table exists from `Home::init` on.
        let t = tx.open_table(GROUPS)?;
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
        let mut group = Group::empty(record.group());
        self.ingest(&mut group, vec![genesis])?;
        Ok(group)
    }

    /// Opens a group, or starts an empty one for entries of a group this home does not know yet.
    pub fn open_or_new_group(&self, id: &GroupId) -> Result<Group, StoreError> {
        match self.open_group(id) {
            Err(StoreError::NoSuchGroup(_)) => Ok(Group::empty(*id)),
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
        let log_len = log_len_on_disk(&log, id)?;
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
            log_len,
            snap_pos,
            generation: facts.generation,
            seen: (self.instance, self.commits.load(Ordering::SeqCst)),
            stale: false,
            evidence_not_kept: 0,
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

    /// Catches up with entries another process wrote to this home since `group` was loaded (a CLI
    /// command while `serve` runs). Returns the ids newly applied.
    pub fn refresh(&self, group: &mut Group) -> Result<Vec<EntryId>, StoreError> {
        let now = (self.instance, self.commits.load(Ordering::SeqCst));
        if group.seen == now && !group.stale {
            return Ok(vec![]);
        }
        let out = self.refresh_from_disk(group)?;
        group.seen = now;
        Ok(out)
    }

    fn refresh_from_disk(&self, group: &mut Group) -> Result<Vec<EntryId>, StoreError> {
        let id = group.id();
        if group.stale {
            *group = match self.open_group(&id) {
                Ok(g) => g,
                Err(StoreError::NoSuchGroup(_)) => Group::empty(id),
                Err(e) => return Err(e),
            };
            // Everything is new to the emptied record.
            return Ok(group.record.causal_order().to_vec());
        }
        let tx = self.db.begin_read()?;
        let facts: GroupFacts = match tx.open_table(GROUPS) {
            Ok(t) => match t.get(id.0.as_slice())? {
                Some(v) => serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                None => return Ok(vec![]),
            },
            Err(_) => return Ok(vec![]),
        };
        let entries = tx.open_table(ENTRIES)?;
        let log = tx.open_table(LOG)?;
        let log_len = log_len_on_disk(&log, &id)?;
        if facts.generation != group.generation || log_len < group.log_len {
            let before: HashSet<EntryId> = group.record.causal_order().iter().copied().collect();
            drop((entries, log, tx));
            *group = self.open_group(&id)?;
            return Ok(group
                .record
                .causal_order()
                .iter()
                .filter(|h| !before.contains(h))
                .copied()
                .collect());
        }
        if log_len == group.log_len {
            return Ok(vec![]);
        }
        let mut tail = Vec::new();
        for row in
            log.range(log_key(&id, group.log_len).as_slice()..log_key(&id, log_len).as_slice())?
        {
            let (_, h) = row?;
            let h: [u8; 32] = h
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("log entry".into()))?;
            tail.push(read_entry(&entries, &id, &EntryId(h))?);
        }
        let out = group.record.ingest_own_log(tail);
        group.log_len = log_len;
        Ok(out.accepted)
    }

    /// A stored entry's verbatim bytes.
    pub fn entry(&self, group: &GroupId, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        let tx = self.db.begin_read()?;
        let entries = tx.open_table(ENTRIES)?;
        match entries.get(key2(group, id).as_slice())? {
            Some(v) => {
                Ok(Some(Entry::decode(v.value()).map_err(|e| {
                    StoreError::Corrupt(format!("entry {id}: {e}"))
                })?))
            }
            None => Ok(None),
        }
    }

    /// Ids of entries held but not valid that other devices should see too: pending ones, and those a
    /// rule rejected (evidence such as forks). Forged and unreadable bytes are not passed on.
    pub fn evidence_ids(&self, group: &GroupId) -> Result<Vec<EntryId>, StoreError> {
        let tx = self.db.begin_read()?;
        let status = tx.open_table(STATUS)?;
        let lo = key2(group, &EntryId([0; 32]));
        let hi = key2(group, &EntryId([0xff; 32]));
        let mut out = Vec::new();
        for row in status.range(lo.as_slice()..=hi.as_slice())? {
            let (k, v) = row?;
            let v = v.value();
            if v.first() != Some(&VALID) && relayable(v) {
                out.push(EntryId(
                    k.value()[32..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("status key".into()))?,
                ));
            }
        }
        Ok(out)
    }

    /// What a bundle of this group holds ([`Home::entries`] without what must stay on this device):
    /// valid entries in causal order, pending ones, and evidence signed for this group. Bytes whose
    /// signature failed or that belong elsewhere are kept here as evidence, never exported as if
    /// they belonged to the group.
    pub fn export_entries(&self, group: &GroupId) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .entries(group)?
            .into_iter()
            .filter(|s| match &s.status {
                StoredStatus::Valid | StoredStatus::Pending => true,
                StoredStatus::Quarantined { kind, .. } => {
                    let mut v = vec![QUARANTINED];
                    v.extend_from_slice(kind.as_bytes());
                    relayable(&v)
                }
            })
            .map(|s| s.entry)
            .collect())
    }

    /// Whether this home holds group `id` (even one with no valid entry yet).
    pub fn holds(&self, id: &GroupId) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(GROUPS)?;
        Ok(t.get(id.0.as_slice())?.is_some())
    }

    /// Removes group `id` from this home, and only it: its entries, statuses, log, snapshot,
    /// invitations and every setting that names it, in one durable transaction. Other devices keep
    /// their copies; nothing is written to the group. Returns how many entries were removed.
    pub fn forget_group(&self, id: &GroupId) -> Result<usize, StoreError> {
        if !self.holds(id)? {
            return Err(StoreError::NoSuchGroup(*id));
        }
        let lo = key2(id, &EntryId([0; 32]));
        let hi = key2(id, &EntryId([0xff; 32]));
        let hex = id.to_string();
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        let mut removed = 0;
        {
            let mut entries = tx.open_table(ENTRIES)?;
            entries.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| {
                removed += 1;
                false
            })?;
            tx.open_table(STATUS)?
                .retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
            tx.open_table(LOG)?.retain_in(
                log_key(id, 0).as_slice()..=log_key(id, u64::MAX).as_slice(),
                |_, _| false,
            )?;
            tx.open_table(SNAPSHOTS)?.remove(id.0.as_slice())?;
            tx.open_table(GROUPS)?.remove(id.0.as_slice())?;
            tx.open_table(INVITES)?
                .retain(|_, v| v.get(..32) != Some(id.0.as_slice()))?;
            tx.open_table(SETTINGS)?.retain(|k, _| !k.contains(&hex))?;
        }
        tx.commit()?;
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(removed)
    }

    /// Records an invitation: only the secret's hash is kept.
    pub fn add_invite(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.add_secret(secret_hash, group, expires_ms, false)
    }

    /// Records a one-time device link (a member's new device): only the secret's hash is kept.
    ///
    /// **Invariant:** a link secret is never accepted as an invitation, nor an invitation's as a
    /// link (the rows differ in length): a newcomer's ticket cannot take an existing member's seat.
    pub fn add_link(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.add_secret(secret_hash, group, expires_ms, true)
    }

    /// Records a recovery link: a one-time secret for a new device of `member`, who lost theirs,
    /// with which this device proposes to the group that the new device is `member`'s
    /// (`member.recover`). Used like a device link ([`Home::use_recovery`]).
    pub fn add_recovery(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        member: &roundtable_core::MemberId,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tail = vec![RECOVER_ROW];
        tail.extend_from_slice(&member.0);
        self.add_row(secret_hash, group, expires_ms, &tail)
    }

    fn add_secret(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        expires_ms: i64,
        link: bool,
    ) -> Result<(), StoreError> {
        let tail: &[u8] = if link { &[LINK_ROW] } else { &[] };
        self.add_row(secret_hash, group, expires_ms, tail)
    }

    /// A row of `INVITES`: group, expiry, used flag, then `tail` (its kind).
    fn add_row(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        expires_ms: i64,
        tail: &[u8],
    ) -> Result<(), StoreError> {
        let mut v = group.0.to_vec();
        v.extend_from_slice(&expires_ms.to_le_bytes());
        v.push(0);
        v.extend_from_slice(tail);
        let tx = self.db.begin_write()?;
        tx.open_table(INVITES)?
            .insert(secret_hash.as_slice(), v.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// Uses an invitation once: it must exist, be for `group`, be unused and not expired at `now_ms`.
    pub fn use_invite(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        now_ms: i64,
    ) -> Result<(), InviteRefusal> {
        self.use_secret(secret_hash, group, now_ms, 41).map(|_| ())
    }

    /// Uses a device link ([`Home::add_link`]) once, like [`Home::use_invite`].
    pub fn use_link(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        now_ms: i64,
    ) -> Result<(), InviteRefusal> {
        self.use_secret(secret_hash, group, now_ms, 42).map(|_| ())
    }

    /// Uses a recovery link ([`Home::add_recovery`]) once; returns the member it is for.
    pub fn use_recovery(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        now_ms: i64,
    ) -> Result<roundtable_core::MemberId, InviteRefusal> {
        let row = self.use_secret(secret_hash, group, now_ms, 74)?;
        match row.get(41) {
            Some(&RECOVER_ROW) => {}
            _ => return Err(InviteRefusal::Unknown),
        }
        let member: [u8; 32] = row
            .get(42..74)
            .and_then(|m| m.try_into().ok())
            .ok_or(InviteRefusal::Unknown)?;
        Ok(roundtable_core::DeviceId(member))
    }

    fn use_secret(
        &self,
        secret_hash: &[u8; 32],
        group: &GroupId,
        now_ms: i64,
        row_len: usize,
    ) -> Result<Vec<u8>, InviteRefusal> {
        let run = || -> Result<Result<Vec<u8>, InviteRefusal>, StoreError> {
            let tx = self.db.begin_write()?;
            let verdict = {
                let mut t = tx.open_table(INVITES)?;
                let row = t.get(secret_hash.as_slice())?.map(|v| v.value().to_vec());
                match row {
                    None => Err(InviteRefusal::Unknown),
                    Some(v) if v.len() != row_len => Err(InviteRefusal::Unknown),
                    Some(v) => {
                        let expires = i64::from_le_bytes(v[32..40].try_into().unwrap_or([0; 8]));
                        if v[..32] != group.0 {
                            Err(InviteRefusal::Unknown)
                        } else if v[40] != 0 {
                            Err(InviteRefusal::Used)
                        } else if now_ms > expires {
                            Err(InviteRefusal::Expired)
                        } else {
                            let mut used = v.clone();
                            used[40] = 1;
                            t.insert(secret_hash.as_slice(), used.as_slice())?;
                            Ok(v)
                        }
                    }
                }
            };
            tx.commit()?;
            Ok(verdict)
        };
        run().map_err(|e| InviteRefusal::Store(e.to_string()))?
    }

    /// Whether an invitation has been used.
    pub fn invite_used(&self, secret_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        // Every table exists from `Home::init` on.
        let t = tx.open_table(INVITES)?;
        Ok(t.get(secret_hash.as_slice())?
            .is_some_and(|v| v.value().get(40) == Some(&1)))
    }

    /// Remembers that this device synced with `device` at `time_ms`.
    pub fn record_peer(
        &self,
        device: &roundtable_core::DeviceId,
        time_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(PEERS)?
            .insert(device.0.as_slice(), time_ms.to_le_bytes().as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// Devices this device has synced with, and when last (ms since the epoch).
    pub fn peers(&self) -> Result<Vec<(roundtable_core::DeviceId, i64)>, StoreError> {
        let tx = self.db.begin_read()?;
        // Every table exists from `Home::init` on.
        let t = tx.open_table(PEERS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let id: [u8; 32] = k
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("peer key".into()))?;
            let t: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("peer time".into()))?;
            out.push((roundtable_core::DeviceId(id), i64::from_le_bytes(t)));
        }
        Ok(out)
    }

    /// Verifies and stores entries (from a bundle or a peer), committing durably every [`IMPORT_BATCH`].
    ///
    /// A group this home does not hold yet is started only from its own genesis: when `entries`
    /// lack it, nothing is stored and the answer is [`StoreError::NoGenesis`].
    pub fn ingest(&self, group: &mut Group, entries: Vec<Entry>) -> Result<Ingested, StoreError> {
        self.refresh(group)?;
        group.evidence_not_kept = 0;
        let id = group.id();
        if !entries.is_empty()
            && group.record.is_empty()
            && !self.holds(&id)?
            && roundtable_core::bundle::genesis_of(&id, &entries).is_none()
        {
            return Err(StoreError::NoGenesis(id));
        }
        let mut total = Ingested::default();
        let mut rest = entries;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(IMPORT_BATCH));
            let batch = std::mem::replace(&mut rest, tail);
            let mut out = group.record.ingest(batch.clone());
            if out.rebuild {
                // The rebuild replaces the record in memory before it commits.
                out = self
                    .rebuild(group, batch)
                    .inspect_err(|_| self.reload(group))?;
            } else {
                self.commit_or_reload(group, &out)?;
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
        // One transaction clears the old verdicts and writes the new ones: a crash leaves either.
        let old_len = group.log_len;
        group.log_len = 0;
        group.snap_pos = 0;
        group.generation += 1;
        self.commit_inner(group, &out, Some(old_len))?;
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
        self.commit_inner(group, out, None)
    }

    /// Commits; if that fails (a full disk, an I/O error), reloads the group from what is on disk, so
    /// the in-memory record never runs ahead of it, and returns the error.
    fn commit_or_reload(&self, group: &mut Group, out: &Ingested) -> Result<(), StoreError> {
        let r = self.commit(group, out);
        if r.is_err() {
            self.reload(group);
        }
        r
    }

    /// After a failed commit: goes back to what is committed, since memory must never be ahead of
    /// the disk. If the group cannot be read back either, it is emptied and marked stale, so that
    /// the next `refresh` (which every write starts with) loads it again.
    fn reload(&self, group: &mut Group) {
        let id = group.id();
        match self.open_group(&id) {
            Ok(g) => *group = g,
            // The group's first batch did not commit: nothing of it is held.
            Err(StoreError::NoSuchGroup(_)) => *group = Group::empty(id),
            Err(_) => {
                *group = Group::empty(id);
                group.stale = true;
            }
        }
    }

    /// [`Home::commit`]; with `clear_log`, first removes the group's old log (of that length),
    /// statuses and snapshot in the same transaction (a rebuild).
    fn commit_inner(
        &self,
        group: &mut Group,
        out: &Ingested,
        clear_log: Option<u64>,
    ) -> Result<(), StoreError> {
        let id = group.id();
        // The group's log length moves only once the transaction has committed.
        let mut log_len = group.log_len;
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        if let Some(old_len) = clear_log {
            let mut log = tx.open_table(LOG)?;
            let mut status = tx.open_table(STATUS)?;
            let mut snaps = tx.open_table(SNAPSHOTS)?;
            for pos in 0..old_len {
                log.remove(log_key(&id, pos).as_slice())?;
            }
            let lo = key2(&id, &EntryId([0; 32]));
            let hi = key2(&id, &EntryId([0xff; 32]));
            status.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
            snaps.remove(id.0.as_slice())?;
        }
        {
            let mut entries = tx.open_table(ENTRIES)?;
            let mut status = tx.open_table(STATUS)?;
            let mut log = tx.open_table(LOG)?;
            let mut groups = tx.open_table(GROUPS)?;
            // A valid entry has no status row (it is in the log); one that was pending or kept as
            // evidence loses its row. Homes written before 2026-12-07 also hold `VALID` rows, which
            // every reader skips.
            for h in &out.accepted {
                let k = key2(&id, h);
                if entries.get(k.as_slice())?.is_none() {
                    let e = out.entries.get(h).ok_or_else(|| {
                        StoreError::Corrupt("an accepted entry has no bytes".into())
                    })?;
                    entries.insert(k.as_slice(), e.encode().as_slice())?;
                }
                if status.get(k.as_slice())?.is_some() {
                    status.remove(k.as_slice())?;
                }
                log.insert(log_key(&id, log_len).as_slice(), h.0.as_slice())?;
                log_len += 1;
            }
            for (h, e) in &out.pending {
                let k = key2(&id, h);
                entries.insert(k.as_slice(), e.encode().as_slice())?;
                status.insert(k.as_slice(), [PENDING].as_slice())?;
            }
            // Evidence is bounded: count what is kept already (only when there is more to keep).
            let mut kept_total = 0usize;
            let mut kept_by: std::collections::HashMap<Option<[u8; 32]>, usize> =
                std::collections::HashMap::new();
            if !out.rejected.is_empty() {
                let lo = key2(&id, &EntryId([0; 32]));
                let hi = key2(&id, &EntryId([0xff; 32]));
                for row in status.range(lo.as_slice()..=hi.as_slice())? {
                    let (k, v) = row?;
                    if v.value().first() != Some(&QUARANTINED) {
                        continue;
                    }
                    kept_total += 1;
                    let author = entries
                        .get(k.value())?
                        .and_then(|e| Entry::decode(e.value()).ok())
                        .and_then(|e| claimed_author(&e));
                    *kept_by.entry(author).or_default() += 1;
                }
            }
            for r in &out.rejected {
                let k = key2(&id, &r.id);
                // A forged copy must never overwrite a valid entry with the same change hash (the
                // record is never ahead of the disk, and holds this batch's accepted entries).
                if group.record.contains(&r.id) {
                    continue;
                }
                let before = status
                    .get(k.as_slice())?
                    .map(|v| v.value().first().copied());
                if before == Some(Some(VALID)) {
                    continue;
                }
                if before.is_none() {
                    let author = claimed_author(&r.entry);
                    let by = kept_by.entry(author).or_default();
                    if kept_total >= EVIDENCE_TOTAL || *by >= EVIDENCE_PER_AUTHOR {
                        group.evidence_not_kept += 1;
                        continue;
                    }
                    kept_total += 1;
                    *by += 1;
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
                generation: group.generation,
            };
            // Unreadable facts are written again; read only, the unchanged row dirties no page.
            let stored = groups
                .get(id.0.as_slice())?
                .and_then(|v| serde_json::from_slice::<GroupFacts>(v.value()).ok());
            if stored.as_ref() != Some(&facts) {
                let facts =
                    serde_json::to_vec(&facts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                groups.insert(id.0.as_slice(), facts.as_slice())?;
            }
        }
        tx.commit()?;
        group.log_len = log_len;
        let before = self.commits.fetch_add(1, Ordering::SeqCst);
        if group.seen == (self.instance, before) {
            group.seen = (self.instance, before + 1);
        }
        Ok(())
    }

    /// Closes a proposal with this device's recount of the stances it holds: the outcome entry and
    /// the tally it records. The rules refuse it until enough members have given a view.
    pub fn close_proposal(
        &self,
        group: &mut Group,
        key: &DeviceKey,
        proposal: EntryId,
        outcome: &str,
        time_ms: i64,
    ) -> Result<(EntryId, roundtable_core::Tally), StoreError> {
        self.refresh(group)?;
        let mut tally = None;
        let ids = self.write_together(group, |record, out| {
            let (body, t) = outcome_body(record, proposal, outcome)?;
            tally = Some(t);
            author_into(record, out, key, body, time_ms)
        })?;
        let tally = tally.ok_or(StoreError::Corrupt("a closed proposal has no tally".into()))?;
        Ok((ids, tally))
    }

    /// Asks the group for a change to itself (a member in or out, an auditor, the policy): writes
    /// the proposal and the proposer's own agree. While the proposer is the group's only active
    /// member, it also closes it, which is how a group is founded; otherwise the others decide.
    /// Returns the proposal, the outcome when it was closed, and every entry written.
    pub fn propose_change(
        &self,
        group: &mut Group,
        key: &DeviceKey,
        effect: roundtable_core::Effect,
        name: &str,
        time_ms: i64,
    ) -> Result<Proposed, StoreError> {
        self.refresh(group)?;
        let body = roundtable_core::governance::group_proposal(&group.record, effect, name).ok_or(
            StoreError::Refused(roundtable_core::Refused::Invalid(
                roundtable_core::Invalid::NotInGroup,
            )),
        )?;
        // The proposal, the proposer's agree and (alone) the outcome commit in one transaction:
        // one durable write, and never a proposal without its proposer's view.
        let mut written = vec![];
        self.write_together(group, |record, out| {
            let proposal = author_into(record, out, key, body, time_ms)?;
            written.push(proposal);
            let agree = Body::Stance {
                proposal,
                stance: roundtable_core::StanceKind::Agree,
                reason: String::new(),
                on_behalf: None,
            };
            written.push(author_into(record, out, key, agree, time_ms)?);
            if record.governance().active_count() == 1 {
                let (body, _) = outcome_body(record, proposal, "Agreed by the only member")?;
                written.push(author_into(record, out, key, body, time_ms)?);
            }
            Ok(proposal)
        })?;
        Ok(Proposed {
            proposal: written[0],
            outcome: written.get(2).copied(),
            written,
        })
    }

    /// Writes a new entry by this device: checked by the rules, signed, and durably stored before it returns.
    pub fn append(
        &self,
        group: &mut Group,
        key: &DeviceKey,
        body: Body,
        time_ms: i64,
    ) -> Result<EntryId, StoreError> {
        self.refresh(group)?;
        self.write_together(group, |record, out| {
            author_into(record, out, key, body, time_ms)
        })
    }

    /// Runs `write`, which authors entries into the record and `out`, then commits them in one
    /// durable transaction. When `write` fails after authoring some, the record goes back to what
    /// is committed (memory is never ahead of the disk) and nothing is written.
    fn write_together<T>(
        &self,
        group: &mut Group,
        write: impl FnOnce(&mut Record, &mut Ingested) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut out = Ingested::default();
        let r = write(&mut group.record, &mut out);
        match r {
            Ok(v) => {
                self.commit_or_reload(group, &out)?;
                Ok(v)
            }
            Err(e) => {
                if !out.accepted.is_empty() {
                    self.reload(group);
                }
                Err(e)
            }
        }
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
        if group.stale {
            // An emptied group would replace the snapshot with an empty one: load it first.
            self.refresh(group)?;
        }
        let (doc, index) = group
            .record
            .snapshot()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut v = Vec::with_capacity(16 + doc.len() + index.len());
        v.extend_from_slice(&group.log_len.to_le_bytes());
        v.extend_from_slice(&(doc.len() as u64).to_le_bytes());
        v.extend_from_slice(&doc);
        v.extend_from_slice(&index);
        let digest: [u8; 32] = Sha256::digest(&v).into();
        v.extend_from_slice(&digest);
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
    // The document is loaded lazily, so damage must be caught here: check the digest first.
    let (v, digest) = v.split_at(v.len().checked_sub(32)?);
    if Sha256::digest(v).as_slice() != digest {
        return None;
    }
    let pos = u64::from_le_bytes(v.get(0..8)?.try_into().ok()?);
    let dlen = usize::try_from(u64::from_le_bytes(v.get(8..16)?.try_into().ok()?)).ok()?;
    let doc = v.get(16..16usize.checked_add(dlen)?)?;
    let index = v.get(16 + dlen..)?;
    Record::restore(*group, doc, index).ok().map(|r| (pos, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// redb's file backend that fails every write and read with EIO once armed.
    #[derive(Debug)]
    struct Failing {
        inner: redb::backends::FileBackend,
        armed: Arc<AtomicBool>,
    }

    impl Failing {
        fn check(&self) -> Result<(), std::io::Error> {
            if self.armed.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            Ok(())
        }
    }

    impl redb::StorageBackend for Failing {
        fn len(&self) -> Result<u64, std::io::Error> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
            self.check()?;
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> Result<(), std::io::Error> {
            self.check()?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            self.check()?;
            self.inner.write(offset, data)
        }
        fn close(&self) -> Result<(), std::io::Error> {
            self.inner.close()
        }
    }

    /// With no cache, reading the group back after a failed commit fails too: the group is
    /// emptied rather than left ahead of the disk, and the next write loads it again.
    #[test]
    fn a_group_that_cannot_be_read_back_after_a_failed_commit_is_loaded_again() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path().join("home");
        let (home, key) = Home::init(&dir, "Ana", None).expect("init");
        let mut g = home
            .create_group(
                &key,
                "Board",
                roundtable_core::Rule::Consent,
                1,
                "Ana",
                "",
                0,
            )
            .expect("group");
        let thread = home
            .append(&mut g, &key, Body::Thread { title: "t".into() }, 1)
            .expect("thread");
        let held = g.record.len();
        drop(home);

        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(Home::DB))
            .expect("the database file");
        let armed = Arc::new(AtomicBool::new(false));
        let backend = Failing {
            inner: redb::backends::FileBackend::new(file).expect("backend"),
            armed: armed.clone(),
        };
        let db = redb::Builder::new()
            .set_cache_size(0)
            .create_with_backend(backend)
            .expect("open");
        let home = Home::with_db(&dir, db);
        // Loaded on this open, so that the append's refresh reads nothing: the commit fails first.
        let mut g = home.open_group(&g.id()).expect("open the group");
        armed.store(true, Ordering::SeqCst);
        let message = |text: &str| Body::Message {
            thread,
            text: text.into(),
        };
        let e = home
            .append(&mut g, &key, message("never saved"), 2)
            .expect_err("the disk fails");
        assert!(matches!(e, StoreError::DiskError(_)), "{e}");
        assert!(g.stale, "reading the group back failed too");
        assert!(g.record.is_empty(), "memory is not ahead of the disk");
        assert!(home.append(&mut g, &key, message("again"), 3).is_err());
        drop(home);

        let home = Home::open(&dir).expect("reopen");
        let id = home
            .append(&mut g, &key, message("saved"), 4)
            .expect("the next write loads the group again");
        assert!(!g.stale);
        assert_eq!(g.record.len(), held + 1);
        let opened = home.open_group(&g.id()).expect("open the group");
        assert!(opened.record.contains(&id));
        assert_eq!(opened.record.heads(), g.record.heads());
    }
}
