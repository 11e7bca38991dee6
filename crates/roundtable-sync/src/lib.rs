//! Sync between devices over iroh: protocol `roundtable/sync/1`, verify-then-apply.
//!
//! Each device's ed25519 key is also its iroh secret key, so the endpoint id *is* the device id and
//! iroh's handshake proves who is on the other end. A device that is not an active member of a group
//! this device serves is refused before any payload is read.
//!
//! ```text
//! initiator                                 acceptor
//!   ── Hello(group, tips, evidence) ──►       (member of that group? else Refuse)
//!   ◄── Hello(group, tips, evidence) ──
//!   ── Entries* Done ──►   ◄── Entries* Done ──      each side sends what the other lacks
//!   (live: both keep pushing Entries as they are written)
//! ```
//!
//! **Invariant:** peer bytes never reach Automerge directly: every entry goes through
//! [`roundtable_core::Record::ingest`] (via the store) like an imported bundle. Automerge's own sync
//! protocol is never used: it panics on crafted input in 0.12.
//!
//! **Invariant:** no traffic leaves for the internet by default: endpoints use `presets::Minimal`,
//! relays disabled, no portmapper, and only the addresses in a ticket (or found on the LAN).

#![deny(missing_docs)]

pub mod frame;
pub mod lan;
pub mod net;
pub mod node;
pub mod reconcile;
pub mod ticket;

pub use node::{DeviceSeat, Linking, Node, SyncError, SyncStats};
pub use ticket::{Ticket, TicketError};

/// The ALPN of the sync protocol.
pub const ALPN: &[u8] = b"roundtable/sync/1";
/// The ALPN a new device uses once, to prove an invitation.
pub const JOIN_ALPN: &[u8] = b"roundtable/join/1";
