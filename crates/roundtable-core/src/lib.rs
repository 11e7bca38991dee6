//! The core of Roundtable: signed entries and the rules every device applies to them.
//!
//! A group's record is an Automerge document. Every change to it travels as an [`Entry`]: the change's
//! bytes, verbatim, and an ed25519 signature by the device that made it. [`Record`] checks each entry
//! (signature, author is a member at that point, equal authority, forks) before Automerge sees it, and
//! reaches the same verdicts whatever order entries arrive in.
//!
//! ```
//! use roundtable_core::{Body, DeviceKey, Record, Rule};
//! let ana = DeviceKey::generate().unwrap();
//! let (mut record, _genesis) = Record::create(&ana, "Board", Rule::Consent, 1, "Ana", "", 0).unwrap();
//! let (thread, _entry) = record.author(&ana, Body::Thread { title: "Housing".into() }, 1).unwrap();
//! assert!(record.contains(&thread));
//! ```
//!
//! This crate does no I/O: storage is `roundtable-store`, transport `roundtable-sync`.

#![deny(missing_docs)]

pub mod body;
pub mod bundle;
pub mod change;
pub mod entry;
#[doc(hidden)]
pub mod fuzz;
pub mod governance;
pub mod id;
pub mod identity;
pub mod invalid;
pub mod record;
pub mod recount;
mod rules;
pub mod sealed;
pub mod signature;

pub use body::{Body, Counts, Decision, Effect, Rule, StanceKind};
pub use entry::{DocRef, Entry};
pub use governance::{Device, Governance, Standing};
pub use id::{DeviceId, EntryId, GroupId, MemberId, ParseIdError};
pub use identity::DeviceKey;
pub use record::{
    ActionDoneBy, ActionState, Epoch, Ingested, Invalid, Member, Record, Refused, SealedInfo,
    SealedState, Status,
};
pub use recount::{CountedView, Tally, Unconfirmed};
pub use rules::UNDO_WINDOW_MS;
