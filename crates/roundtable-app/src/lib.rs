//! Roundtable's application layer: every action a member takes, written once.
//!
//! The command line (`roundtable`), the web page (`roundtable-web`) and the sync node are front
//! ends: they turn a command, a form or a peer's request into one call here, and the result or the
//! [`AppError`] into their own words. The rules themselves live in `roundtable-core`; this crate
//! builds the entries a member's action needs (sealing them when the thread is sealed), checks what
//! a member must give (a reason to disagree, a title), and writes through the store.
//!
//! ```no_run
//! # fn main() -> Result<(), roundtable_app::AppError> {
//! use roundtable_app::{Seat, unlock};
//! use roundtable_store::Home;
//!
//! let home = Home::open(std::path::Path::new("/path/to/home"))?;
//! let (key, enc) = unlock(&home, None)?;
//! let seat = Seat::new(&home, &key, Some(&enc));
//! let (id, _) = home.groups()?[0];
//! let mut group = home.open_group(&id)?;
//! let thread = seat.new_thread(&mut group, "Our next meeting")?;
//! seat.post(&mut group, thread, "Can we meet on the ground floor? There is no lift.")?;
//! # Ok(()) }
//! ```
//!
//! The network actions live in [`net`]: one sync with a member's device ([`net::sync_once`]),
//! a one-time invitation ([`net::invite`]), joining with one ([`net::join`]) and the devices
//! synced with ([`net::peers`]); async, printing nothing, so the web page can call them as the
//! command line does. A front end keeps only its words, its flags and a long-running `serve`.
//!
//! **Invariant:** a front end never builds an entry body nor calls the store's `append`: every
//! write goes through a [`Seat`] (checked by the workspace's architecture test).
//!
//! **Invariant (equal authority):** nothing here can change who is in the group, who reads a
//! sealed thread beyond what one reader may do, or the group's rules, except by a proposal the
//! group decides ([`Seat::ask_group`]); the rules in core refuse anything else on every device.
#![deny(missing_docs)]

pub mod device;
mod error;
pub mod keep;
pub mod net;
mod sealed;
pub mod serve;
mod transfer;
mod write;

pub use device::{
    DeviceInfo, DeviceJoined, Stopped, devices, home_member, join_device, link_device,
    recover_link, stop_device, waiting_recovery,
};
pub use error::AppError;
pub use net::publish_after_sync;
pub use sealed::{LetIn, limits_note};
pub use transfer::{Imported, audit_group, export_bundle, import_bundle, import_bundle_from};
pub use write::Draft;

use roundtable_core::{Body, DeviceKey, EntryId, MemberId, Record};
use roundtable_seal::{EncSecret, Keyring};
use roundtable_store::{Group, Home};

/// A member's seat at the table on this device: the home, the device key that signs, and the key
/// that opens sealed threads (absent when it is locked). Borrowed, so a front end can keep the
/// keys as long as it likes and make a seat per action.
pub struct Seat<'a> {
    home: &'a Home,
    key: &'a DeviceKey,
    /// A copy, so a front end may swap its keys (after a key change) while seats exist.
    enc: Option<EncSecret>,
    clock: fn() -> i64,
    /// The member this device signs for: its own key, or on a linked device the member's id.
    member: MemberId,
}

/// Milliseconds since 1970 by this computer's clock (0 if it is set before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unlocks this device's keys: the signing key and the key for sealed threads. Fails with the
/// store's `PassphraseNeeded` or `WrongPassphrase`, changing nothing.
pub fn unlock(home: &Home, passphrase: Option<&str>) -> Result<(DeviceKey, EncSecret), AppError> {
    let key = home.device_key(passphrase)?;
    Ok((key, enc_keys(home, passphrase)?))
}

/// This device's key for sealed threads, with the one it replaced when the member changed it
/// ([`device::stop_device`], [`net::catch_up_key`]), so epochs not yet wrapped again still open.
pub fn enc_keys(home: &Home, passphrase: Option<&str>) -> Result<EncSecret, AppError> {
    let enc = EncSecret::from_bytes(&*home.enc_secret(passphrase)?);
    Ok(match home.prev_enc_secret(passphrase)? {
        Some(old) => enc.with_previous(&old),
        None => enc,
    })
}

/// A member's name in the record, or the start of their id when the record does not know them.
pub fn member_name(record: &Record, m: &MemberId) -> String {
    record
        .governance()
        .members
        .get(m)
        .map(|x| x.name.clone())
        .unwrap_or_else(|| format!("member {}", &m.to_string()[..8]))
}

impl<'a> Seat<'a> {
    /// A seat for the member whose device key is `key`. Without `enc`, sealed threads can be
    /// neither read nor written, and this device's encryption key is not published.
    pub fn new(home: &'a Home, key: &'a DeviceKey, enc: Option<&EncSecret>) -> Seat<'a> {
        let member = device::home_member(home, key);
        Seat {
            home,
            key,
            enc: enc.cloned(),
            clock: now_ms,
            member,
        }
    }

    /// The same seat with another clock (tests give a fixed one).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Seat<'a> {
        self.clock = clock;
        self
    }

    /// The home this seat writes to.
    pub fn home(&self) -> &'a Home {
        self.home
    }

    /// The member this device signs for (on a member's first device, its own key).
    pub fn member(&self) -> MemberId {
        self.member
    }

    /// This device's own key.
    pub fn device(&self) -> roundtable_core::DeviceId {
        self.key.device_id()
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn keyring(&self) -> Result<Keyring, AppError> {
        let enc = self.enc.as_ref().ok_or(AppError::SealedLocked)?;
        Ok(Keyring::new(self.member(), enc))
    }

    /// Writes one entry durably, then saves a snapshot when one is due.
    fn append(&self, g: &mut Group, body: Body) -> Result<EntryId, AppError> {
        let id = self.home.append(g, self.key, body, self.now())?;
        self.checkpoint(g);
        Ok(id)
    }

    fn checkpoint(&self, g: &mut Group) {
        // A snapshot only speeds up the next open: the entries are already durable, and the next
        // write tries again, so a failure here is not the member's concern.
        let _ = self.home.checkpoint(g);
    }

    /// Makes the group ready for this member to write: publishes this device's encryption key
    /// when the record lacks it (until then nobody can make this member a reader), and gives the
    /// readers of sealed threads this device reads the keys they lack and it holds (a reader added
    /// at the same moment as a new key was made). Runs before every write, and after an import, a
    /// sync or a join. Returns whether it wrote anything. Without an unlocked key it does nothing.
    pub fn prepare(&self, g: &mut Group) -> Result<bool, AppError> {
        let Some(enc) = &self.enc else {
            return Ok(false);
        };
        let me = self.member();
        if !g.record.governance().device_active(&self.device()) {
            return Ok(false);
        }
        let public = enc.public()?;
        let mut wrote = false;
        let linked = me != self.device();
        if key_is_newer(&g.record, me, self.device(), enc)? {
            self.append(g, Body::Profile { enc_key: public })?;
            wrote = true;
        }
        if !linked {
            wrote |= self.own_words_once(g)?;
        }
        let mut keys = Keyring::new(me, enc);
        for body in roundtable_seal::thread::all_missing_keys(&g.record, &mut keys)? {
            // Another reader's device may have sent it first; the rules then refuse this one.
            match self.append(g, body) {
                Ok(_) => wrote = true,
                Err(AppError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(wrote)
    }

    /// A member added by someone else was named and described in that member's words. The first
    /// time this device writes in the group, it says the member's own words (from [`init`] or
    /// [`Seat::set_about`]) when they differ; after that, only [`Seat::set_about`] changes them.
    fn own_words_once(&self, g: &mut Group) -> Result<bool, AppError> {
        let me = self.member();
        // The group's founder gave the words in the genesis themselves.
        let founder = g
            .record
            .genesis()
            .and_then(|h| g.record.entry(&h).map(|(a, _)| a));
        if founder == Some(me) || g.record.governance().own_words.contains(&me) {
            return Ok(false);
        }
        let (name, needs) = (setting(self.home, "name")?, setting(self.home, "needs")?);
        let now = g.record.governance().members.get(&me).cloned();
        match now {
            // Needs left empty at set-up mean "not said yet", not "none": the group's words stay.
            Some(m)
                if !name.trim().is_empty()
                    && (m.name != name || (!needs.trim().is_empty() && m.needs != needs)) =>
            {
                let needs = if needs.trim().is_empty() {
                    m.needs
                } else {
                    needs
                };
                self.append(g, Body::About { name, needs })?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Changes the name this member goes by and what helps them take part, in their own words:
    /// an entry everyone sees, and this device's own settings for groups started later.
    pub fn set_about(&self, g: &mut Group, name: &str, needs: &str) -> Result<EntryId, AppError> {
        if name.trim().is_empty() {
            return Err(AppError::Missing { what: "your name" });
        }
        let id = self.write(
            g,
            Body::About {
                name: name.trim().to_string(),
                needs: needs.trim().to_string(),
            },
        )?;
        self.home.set_setting("name", name.trim().as_bytes())?;
        self.home.set_setting("needs", needs.trim().as_bytes())?;
        Ok(id)
    }

    /// [`Seat::prepare`], then the entry.
    fn write(&self, g: &mut Group, body: Body) -> Result<EntryId, AppError> {
        self.prepare(g)?;
        self.append(g, body)
    }
}

/// Whether this device's key for sealed threads is newer than the one the record publishes for
/// `me`, so that this device must publish it: when the record has none, when this device holds the
/// published key as the one it replaced (it changed the key: [`device::stop_device`]), or when it
/// is the member's only device left (the group recovered the member onto it, and the old key is
/// lost with the old devices). **Invariant:** otherwise another of the member's devices changed the
/// key and this one waits to be given it ([`net::catch_up_key`]): publishing an older key would
/// give it back to a stopped device.
pub(crate) fn key_is_newer(
    rec: &Record,
    me: MemberId,
    device: roundtable_core::DeviceId,
    enc: &EncSecret,
) -> Result<bool, AppError> {
    let Some(published) = rec.profile_key(&me) else {
        return Ok(true);
    };
    if published == enc.public()? {
        return Ok(false);
    }
    if let Some(old) = enc.previous()
        && old.public()? == published
    {
        return Ok(true);
    }
    Ok(rec
        .governance()
        .devices_of(&me)
        .iter()
        .all(|(d, stopped)| *d == device || *stopped))
}

/// Sets up this device for a member: a new home with a new device key (protected by
/// `passphrase` when given: at least 12 characters), the member's name and needs in their words.
pub fn init(
    dir: &std::path::Path,
    name: &str,
    needs: &str,
    passphrase: Option<&str>,
) -> Result<(Home, DeviceKey), AppError> {
    if name.trim().is_empty() {
        return Err(AppError::Missing { what: "your name" });
    }
    let (home, key) = Home::init(dir, name, passphrase)?;
    home.set_setting("needs", needs.as_bytes())?;
    Ok((home, key))
}

/// A setting of this home as text ("name", "needs"), empty when unset.
pub fn setting(home: &Home, name: &str) -> Result<String, AppError> {
    Ok(home
        .setting(name)?
        .map(|v| String::from_utf8_lossy(&v).to_string())
        .unwrap_or_default())
}

/// Removes a group from this device only (other devices keep theirs). Returns the group's name
/// and how many entries were removed.
pub fn forget_group(
    home: &Home,
    id: &roundtable_core::GroupId,
) -> Result<(String, usize), AppError> {
    let name = home
        .groups()?
        .into_iter()
        .find(|(g, _)| g == id)
        .map(|(_, n)| n)
        .ok_or(AppError::NoSuchGroup(*id))?;
    Ok((name, home.forget_group(id)?))
}

impl Seat<'_> {
    /// Starts a new group with this member as its first member, under its name and needs from
    /// [`init`]; `rule` and `quorum` are how the group decides until it decides otherwise.
    pub fn create_group(
        &self,
        name: &str,
        rule: roundtable_core::Rule,
        quorum: u64,
    ) -> Result<Group, AppError> {
        if name.trim().is_empty() {
            return Err(AppError::Missing {
                what: "the group's name",
            });
        }
        let me = setting(self.home, "name")?;
        let needs = setting(self.home, "needs")?;
        let mut g =
            self.home
                .create_group(self.key, name, rule, quorum, &me, &needs, self.now())?;
        self.home.snapshot(&mut g)?;
        self.prepare(&mut g)?;
        Ok(g)
    }
}
