//! What can go wrong when a member acts, in words a member can act on.

use roundtable_core::bundle::BundleError;
use roundtable_core::{EntryId, GroupId, Invalid, MemberId};
use roundtable_seal::SealError;
use roundtable_store::{KeyError, OpenError, StoreError};
use roundtable_sync::{SyncError, TicketError};

/// Why an action was not carried out. Nothing is written when one of these is returned, except
/// where a variant says so.
///
/// **API boundary:** messages never name a command, a flag or a page: each front end adds its own
/// hint (the command line's flags, the web page's buttons). [`AppError::kind`] is stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The group's rules refuse the entry (its kind is the rule's, as in `docs/rules.md`).
    #[error("not written: {0}")]
    Refused(Invalid),
    /// Something the member must give is empty: `what` is said as "please write {what} first".
    #[error("please write {what} first; nothing was saved")]
    Missing {
        /// What is missing, in words ("the title", "what you understood").
        what: &'static str,
    },
    /// Disagreeing or blocking needs a reason, so that others can understand.
    #[error("please say why you {stance}; nothing was saved")]
    ReasonNeeded {
        /// "disagree" or "block".
        stance: &'static str,
    },
    /// An id that names nothing of that kind in this group.
    #[error("there is no {what} {id} in this group")]
    NotFound {
        /// What was looked for ("thread", "sealed thread", "proposal").
        what: &'static str,
        /// The id given.
        id: EntryId,
    },
    /// The proposal given to decide a removal is about something else.
    #[error("proposal {proposal} is not a proposal to remove {member}")]
    NotThatRemoval {
        /// The proposal given.
        proposal: EntryId,
        /// The member whose removal was meant.
        member: MemberId,
    },
    /// A member cannot be made a reader before their device has published its encryption key.
    #[error(
        "not written: {name} cannot be made a reader yet, because their device has not opened the \
         group since they were added (it publishes their encryption key then). Ask {name} to sync \
         once, then try again"
    )]
    NoKeyYet {
        /// The member.
        member: MemberId,
        /// Their name in the group.
        name: String,
    },
    /// Removing a reader who is not one.
    #[error("not written: {name} is not a reader of this thread")]
    NotAReader {
        /// The member's name.
        name: String,
    },
    /// This device has no key for sealed threads unlocked.
    #[error(
        "not written: this device's key for sealed threads is locked; give the passphrase to unlock it"
    )]
    SealedLocked,
    /// The group's first entry has not reached this device yet.
    #[error("the group is not complete on this device yet: sync with a member first")]
    Incomplete,
    /// The device holds no such group.
    #[error("this device does not hold group {0}")]
    NoSuchGroup(GroupId),
    /// A bundle for another group than the one asked for.
    #[error("the file is for group {found}, not {wanted}; nothing was imported")]
    WrongGroup {
        /// The group the file is for.
        found: GroupId,
        /// The group asked for.
        wanted: GroupId,
    },
    /// The group's record is larger as one bundle than a bundle may be, so no device could read it.
    #[error(
        "the group's record would be {bytes} bytes as one file, more than the {max} a bundle may          hold, so no device could read it; nothing was written"
    )]
    TooBigToExport {
        /// The bundle's size.
        bytes: u64,
        /// The largest bundle (`roundtable_core::bundle::MAX_BUNDLE_BYTES`).
        max: u64,
    },
    /// A file with no entries for a group this device does not hold.
    #[error(
        "the file holds no entries, and this device does not hold its group {0}; nothing was imported"
    )]
    EmptyBundle(GroupId),
    /// Every new entry of a file was refused (or waits for entries not seen yet, beside them).
    #[error(
        "nothing was imported: all {} new entries were rejected{} ({} kept aside as evidence with \
         the reason, {already} were already here)",
        rejections.len(),
        match waiting { 0 => String::new(), n => format!(" or wait for entries not seen yet ({n} waiting)") },
        rejections.len() - not_kept.min(&rejections.len())
    )]
    NothingTaken {
        /// The entries refused, with why.
        rejections: Vec<roundtable_core::record::Rejection>,
        /// Entries that wait for entries not seen yet.
        waiting: usize,
        /// Refused entries not kept as evidence (over the limits).
        not_kept: usize,
        /// Entries this device already held.
        already: usize,
    },
    /// A keeper's health endpoint must answer on this computer only.
    #[error(
        "the health address {0} is not on this computer: give a loopback address (127.0.0.1 or ::1)"
    )]
    HealthNotLoopback(std::net::SocketAddr),
    /// The health endpoint could not listen there.
    #[error("the health endpoint cannot listen on {0}: {1}")]
    HealthUnavailable(std::net::SocketAddr, String),
    /// A keeper with no group and no member's device to get one from.
    #[error(
        "this device holds no group yet and knows no member's device: give it a member's ticket to get the group's record from"
    )]
    NothingToKeep,
    /// A keeper runs with a key of its own: this one is a member's or an auditor's in that group.
    #[error(
        "this device's key is a member's or an auditor's in group {0}; a keeper needs a home and key of its own, which the group names a keeper"
    )]
    NotAKeeperKey(GroupId),
    /// A bundle that is not whole or not a bundle.
    #[error("{0}; nothing was changed")]
    Bundle(#[from] BundleError),
    /// Sealing or opening failed for a reason other than the ones above.
    #[error("not written: {0}")]
    Seal(SealError),
    /// The store could not read or save (disk, database, key file).
    #[error(transparent)]
    Store(StoreError),
    /// A text that is not a whole ticket.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// An invitation was given where a member's device to sync with was meant.
    #[error(
        "this ticket is an invitation for a new member's device, not a device to sync with: join \
         the group with it instead"
    )]
    IsAnInvitation,
    /// A ticket to sync with was given where an invitation was meant.
    #[error("this ticket is not an invitation: it is for syncing with a member's device")]
    NotAnInvitation,
    /// The invitation's time is over (checked before anything is dialed or made).
    #[error("this invitation has expired; ask a member for a new one")]
    InvitationExpired,
    /// A device link ticket was given where an invitation or a device to sync with was meant,
    /// or another ticket where a device link was meant.
    #[error(
        "this ticket is a link for another device of a member: use it on the new device, to make \
         that device the member's"
    )]
    IsADeviceLink,
    /// Another ticket was given where a device link was meant.
    #[error(
        "this ticket is not a device link: make one on your other device (\"Add another device of \
         mine\") and use the link it shows"
    )]
    NotADeviceLink,
    /// `device join` needs a folder with no home yet: a device is linked to one member once.
    #[error(
        "this device already has a home at {0}: a linked device starts with a new one (choose \
         another folder)"
    )]
    HomeExists(std::path::PathBuf),
    /// A recovery link was asked for this device's own member: a member adds a device of their
    /// own with a device link, and the group's help is for a member who lost every device.
    #[error(
        "this is your own seat: to add a device of yours, make a device link on this device \
         instead; the group's help is for a member who lost every device"
    )]
    OwnSeat,
    /// No member's device of the group answered on the local network in the time given.
    #[error(
        "no member's device of this group was found on the local network in time; check that \
         one is serving nearby on the same network, or sync with its ticket"
    )]
    NobodyNearby,
    /// A sync or a join did not complete: the other device refused, could not be reached in
    /// time, or broke the protocol; or the network or the home failed. Nothing already stored is
    /// lost.
    #[error(transparent)]
    Sync(SyncError),
    /// The auditor could not read this device's own copy of the record as a bundle.
    #[error("the audit could not read the record: {0}")]
    Audit(#[from] roundtable_audit::AuditError),
}

impl From<SyncError> for AppError {
    fn from(e: SyncError) -> AppError {
        AppError::Sync(e)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::Refused(roundtable_core::Refused::Invalid(i)) => AppError::Refused(i),
            e => AppError::Store(e),
        }
    }
}

impl From<OpenError> for AppError {
    fn from(e: OpenError) -> AppError {
        AppError::from(StoreError::from(e))
    }
}

impl From<KeyError> for AppError {
    fn from(e: KeyError) -> AppError {
        AppError::Store(StoreError::Key(e))
    }
}

impl From<SealError> for AppError {
    fn from(e: SealError) -> AppError {
        AppError::Seal(e)
    }
}

impl AppError {
    /// A stable name for the case: the rule's kind for a refusal, else this enum's own.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Refused(i) => i.kind(),
            AppError::Missing { .. } => "missing",
            AppError::ReasonNeeded { .. } => "reason_needed",
            AppError::NotFound { .. } => "not_found",
            AppError::NotThatRemoval { .. } => "not_that_removal",
            AppError::NoKeyYet { .. } => "no_key_yet",
            AppError::NotAReader { .. } => "not_a_reader",
            AppError::SealedLocked => "sealed_locked",
            AppError::Incomplete => "incomplete",
            AppError::NoSuchGroup(_) => "no_such_group",
            AppError::WrongGroup { .. } => "wrong_group",
            AppError::EmptyBundle(_) => "empty_bundle",
            AppError::TooBigToExport { .. } => "too_big_to_export",
            AppError::NothingTaken { .. } => "nothing_taken",
            AppError::Bundle(_) => "bundle_damaged",
            AppError::Seal(SealError::Random(_)) => "random",
            AppError::Seal(_) => "seal",
            AppError::Store(_) => "store",
            AppError::Ticket(_) => "bad_ticket",
            AppError::IsAnInvitation => "is_an_invitation",
            AppError::NotAnInvitation => "not_an_invitation",
            AppError::InvitationExpired => "invitation_expired",
            AppError::NobodyNearby => "nobody_nearby",
            AppError::IsADeviceLink => "is_a_device_link",
            AppError::NotADeviceLink => "not_a_device_link",
            AppError::HomeExists(_) => "home_exists",
            AppError::OwnSeat => "own_seat",
            AppError::HealthNotLoopback(_) => "health_not_loopback",
            AppError::HealthUnavailable(..) => "health_unavailable",
            AppError::NothingToKeep => "nothing_to_keep",
            AppError::NotAKeeperKey(_) => "not_a_keeper_key",
            AppError::Audit(_) => "audit",
            AppError::Sync(s) => match s {
                SyncError::Refused(_) => "sync_refused",
                SyncError::Timeout => "sync_timeout",
                SyncError::Network(_) => "network",
                SyncError::BadAddress(_) => "bad_address",
                SyncError::Frame(_) | SyncError::Protocol(_) => "sync_protocol",
                SyncError::Store(_) => "store",
                _ => "sync_internal",
            },
        }
    }

    /// Whether the action was understood and refused (a front end's "no", exit 1), rather than
    /// failing for want of a working disk, key file or random generator (exit 2). Of the network
    /// cases, a refusal is: a ticket of the wrong kind, an expired invitation, the other device's
    /// refusal, no answer in time, a network failure, and a broken protocol; a damaged ticket, an
    /// address that cannot be used and a failing home during a sync are not.
    pub fn is_refusal(&self) -> bool {
        match self {
            AppError::Seal(SealError::Random(_)) => false,
            AppError::Ticket(_) => false,
            AppError::HealthUnavailable(..) => false,
            // The file could not be read: the disk's failure, not a verdict on the bundle.
            AppError::Bundle(BundleError::Io(..)) => false,
            AppError::Sync(s) => matches!(
                s,
                SyncError::Refused(_)
                    | SyncError::Timeout
                    | SyncError::Network(_)
                    | SyncError::Protocol(_)
                    | SyncError::Frame(_)
            ),
            AppError::Store(s) => {
                matches!(s, StoreError::NoGenesis(_))
                    || matches!(s.as_open(), Some(OpenError::NotPrivate { .. }))
                    || matches!(
                        s.as_key(),
                        Some(
                            KeyError::WrongPassphrase
                                | KeyError::PassphraseNeeded
                                | KeyError::PassphraseTooShort { .. }
                        )
                    )
            }
            _ => true,
        }
    }
}
