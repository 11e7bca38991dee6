//! The frames of `roundtable/sync/1`, and their codec.
//!
//! ```text
//! frame    := len:u32le type:u8 body            (len counts type and body; len <= MAX_FRAME)
//! Hello    := 1 version:u8 group:32 ntips:u32le (device:32 seq:u64le tip:32)*ntips nev:u32le id:32*nev
//! Entries  := 2 count:u32le entry*count         (entry as in docs/format.md)
//! Done     := 3 sent:u64le
//! Refuse   := 4 reason:utf8                     (at most MAX_REASON bytes)
//! Join     := 5 group:32 secret:32 name_len:u16le name needs_len:u16le needs
//! Welcome  := 6 entry:32                        (the id of the entry that added the joiner)
//! Link     := 7 group:32 secret:32 proof:64 name_len:u16le name   (a member's new device asks)
//! Linked   := 8 entry:32 enc_secret:32          (the device.add's id; the member's sealed key)
//! KeyAsk   := 9 group:32                        (a member's device asks another of theirs for
//!                                                the member's current encryption key)
//! KeyGiven := 10 enc_secret:32                  (that key)
//! ```
//! **Invariant:** every count and length is checked against the bytes actually present before
//! anything is allocated, so a peer cannot make a device allocate more than one frame's worth.

use roundtable_core::{DeviceId, Entry, EntryId, GroupId};

/// Largest frame a device accepts (an Entries frame holds whole entries up to this size).
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Largest refusal reason.
pub const MAX_REASON: usize = 1024;
/// Largest name or needs text in a Join.
pub const MAX_JOIN_TEXT: usize = 4096;
/// Version of the protocol spoken inside `roundtable/sync/1`.
pub const VERSION: u8 = 1;

const HELLO: u8 = 1;
const ENTRIES: u8 = 2;
const DONE: u8 = 3;
const REFUSE: u8 = 4;
const JOIN: u8 = 5;
const WELCOME: u8 = 6;
const LINK: u8 = 7;
const LINKED: u8 = 8;
const KEY_ASK: u8 = 9;
const KEY_GIVEN: u8 = 10;

/// What a device has: for each author, the highest sequence number and its entry id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version ([`VERSION`]).
    pub version: u8,
    /// The group to sync; the acceptor refuses a sender who is not allowed to sync it.
    pub group: GroupId,
    /// Per author of valid entries: (device, highest seq, that entry's id), as `Record::summary`.
    pub tips: Vec<(DeviceId, u64, EntryId)>,
    /// Ids of pending entries and rule-rejected evidence (such as forks) this device holds.
    pub evidence: Vec<EntryId>,
}

/// A new device proves its invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The group the invitation is for.
    pub group: GroupId,
    /// The invitation's one-time secret, from the ticket.
    pub secret: [u8; 32],
    /// The name the newcomer goes by; at most [`MAX_JOIN_TEXT`] bytes.
    pub name: String,
    /// What they need in order to take part; at most [`MAX_JOIN_TEXT`] bytes.
    pub needs: String,
}

/// A member's new device proves a device link ticket (on `roundtable/join/1`).
#[derive(Clone, PartialEq, Eq)]
pub struct Link {
    /// The group the link is for.
    pub group: GroupId,
    /// The link's one-time secret, from the ticket.
    pub secret: [u8; 32],
    /// The new device's signature of the link (`DeviceKey::link_proof`).
    pub proof: [u8; 64],
    /// What the member calls the new device; at most [`MAX_JOIN_TEXT`] bytes.
    pub name: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("group", &self.group)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The member's existing device linked the new one.
#[derive(Clone, PartialEq, Eq)]
pub struct Linked {
    /// The `device.add` entry that links the new device.
    pub entry: EntryId,
    /// The member's encryption secret (sealed threads are wrapped to the member, not the device).
    pub enc_secret: [u8; 32],
}

impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never goes into a debug print.
        f.debug_struct("Linked")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// A member's encryption secret, as one of their devices gives it to another (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct MemberKey(pub [u8; 32]);

impl std::fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberKey(..)")
    }
}

/// One message of `roundtable/sync/1` or `roundtable/join/1` (layouts in the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a sync: what the sender has.
    Hello(Hello),
    /// Entries, verbatim as signed; checked by the receiver like an import.
    Entries(Vec<Entry>),
    /// The sender has sent everything the other lacked.
    Done {
        /// How many entries it sent in this sync.
        sent: u64,
    },
    /// The sender will not sync, and why (at most [`MAX_REASON`] bytes).
    Refuse(String),
    /// A new device proves its invitation.
    Join(Join),
    /// The invitation was accepted: the id of the entry that added the joiner.
    Welcome(EntryId),
    /// A member's new device proves a device link.
    Link(Link),
    /// The device link was accepted.
    Linked(Linked),
    /// A member's device asks another of the member's devices, one that holds the member's
    /// current encryption key for this group, for that key.
    KeyAsk(GroupId),
    /// The member's current encryption key.
    KeyGiven(MemberKey),
}

/// Why bytes from a peer are not a frame. The connection is closed; nothing was stored from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix is over [`MAX_FRAME`] (refused before reading the body).
    #[error("the other device sent a frame of {0} bytes; the most allowed is {MAX_FRAME}")]
    TooLarge(u64),
    /// A length of 0: no type byte.
    #[error("the other device sent an empty frame")]
    Empty,
    /// A type byte this version does not know.
    #[error("the other device sent an unknown frame type {0} (is it a newer version?)")]
    Type(u8),
    /// A count, length or field does not fit the bytes present (which one, in words).
    #[error("the other device sent a damaged frame: {0}")]
    Malformed(&'static str),
    /// An entry inside an Entries frame does not decode.
    #[error("the other device sent a damaged entry: {0}")]
    Entry(roundtable_core::entry::DecodeError),
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        if self.b.len() < n {
            return Err(FrameError::Malformed(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?
                .try_into()
                .map_err(|_| FrameError::Malformed(what))?,
        ))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?
                .try_into()
                .map_err(|_| FrameError::Malformed(what))?,
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?
                .try_into()
                .map_err(|_| FrameError::Malformed(what))?,
        ))
    }
    fn id(&mut self, what: &'static str) -> Result<[u8; 32], FrameError> {
        self.take(32, what)?
            .try_into()
            .map_err(|_| FrameError::Malformed(what))
    }
    /// A count of items of at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, min_size: usize, what: &'static str) -> Result<usize, FrameError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size) > self.b.len() {
            return Err(FrameError::Malformed(what));
        }
        Ok(n)
    }
    fn text(&mut self, len: usize, what: &'static str) -> Result<String, FrameError> {
        String::from_utf8(self.take(len, what)?.to_vec()).map_err(|_| FrameError::Malformed(what))
    }
}

impl Frame {
    /// The frame with its length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; 4];
        match self {
            Frame::Hello(h) => {
                b.push(HELLO);
                b.push(h.version);
                b.extend_from_slice(&h.group.0);
                b.extend_from_slice(&(h.tips.len() as u32).to_le_bytes());
                for (d, seq, tip) in &h.tips {
                    b.extend_from_slice(&d.0);
                    b.extend_from_slice(&seq.to_le_bytes());
                    b.extend_from_slice(&tip.0);
                }
                b.extend_from_slice(&(h.evidence.len() as u32).to_le_bytes());
                for e in &h.evidence {
                    b.extend_from_slice(&e.0);
                }
            }
            Frame::Entries(es) => {
                b.push(ENTRIES);
                b.extend_from_slice(&(es.len() as u32).to_le_bytes());
                for e in es {
                    e.encode_into(&mut b);
                }
            }
            Frame::Done { sent } => {
                b.push(DONE);
                b.extend_from_slice(&sent.to_le_bytes());
            }
            Frame::Refuse(r) => {
                b.push(REFUSE);
                let mut end = r.len().min(MAX_REASON);
                while !r.is_char_boundary(end) {
                    end -= 1;
                }
                b.extend_from_slice(&r.as_bytes()[..end]);
            }
            Frame::Join(j) => {
                b.push(JOIN);
                b.extend_from_slice(&j.group.0);
                b.extend_from_slice(&j.secret);
                for t in [&j.name, &j.needs] {
                    let t = &t.as_bytes()[..t.len().min(MAX_JOIN_TEXT)];
                    b.extend_from_slice(&(t.len() as u16).to_le_bytes());
                    b.extend_from_slice(t);
                }
            }
            Frame::Welcome(id) => {
                b.push(WELCOME);
                b.extend_from_slice(&id.0);
            }
            Frame::Link(l) => {
                b.push(LINK);
                b.extend_from_slice(&l.group.0);
                b.extend_from_slice(&l.secret);
                b.extend_from_slice(&l.proof);
                let t = &l.name.as_bytes()[..l.name.len().min(MAX_JOIN_TEXT)];
                b.extend_from_slice(&(t.len() as u16).to_le_bytes());
                b.extend_from_slice(t);
            }
            Frame::Linked(l) => {
                b.push(LINKED);
                b.extend_from_slice(&l.entry.0);
                b.extend_from_slice(&l.enc_secret);
            }
            Frame::KeyAsk(g) => {
                b.push(KEY_ASK);
                b.extend_from_slice(&g.0);
            }
            Frame::KeyGiven(k) => {
                b.push(KEY_GIVEN);
                b.extend_from_slice(&k.0);
            }
        }
        let len = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&len.to_le_bytes());
        b
    }

    /// Reads a frame's body (the bytes after the length prefix).
    pub fn decode(body: &[u8]) -> Result<Frame, FrameError> {
        if body.len() > MAX_FRAME {
            return Err(FrameError::TooLarge(body.len() as u64));
        }
        let Some((&ty, rest)) = body.split_first() else {
            return Err(FrameError::Empty);
        };
        let mut r = Reader { b: rest };
        let frame = match ty {
            HELLO => {
                let version = r.u8("version")?;
                let group = GroupId::from_bytes(r.id("group")?);
                let n = r.count(72, "tip count")?;
                let mut tips = Vec::with_capacity(n);
                for _ in 0..n {
                    tips.push((DeviceId(r.id("tip")?), r.u64("tip")?, EntryId(r.id("tip")?)));
                }
                let n = r.count(32, "evidence count")?;
                let mut evidence = Vec::with_capacity(n);
                for _ in 0..n {
                    evidence.push(EntryId(r.id("evidence")?));
                }
                Frame::Hello(Hello {
                    version,
                    group,
                    tips,
                    evidence,
                })
            }
            ENTRIES => {
                let n = r.count(69, "entry count")?;
                let mut es = Vec::with_capacity(n);
                for _ in 0..n {
                    let (e, used) = Entry::decode_prefix(r.b).map_err(FrameError::Entry)?;
                    r.b = &r.b[used..];
                    es.push(e);
                }
                Frame::Entries(es)
            }
            DONE => Frame::Done {
                sent: r.u64("count")?,
            },
            REFUSE => {
                if r.b.len() > MAX_REASON {
                    return Err(FrameError::Malformed("reason too long"));
                }
                let n = r.b.len();
                Frame::Refuse(r.text(n, "reason")?)
            }
            JOIN => {
                let group = GroupId::from_bytes(r.id("group")?);
                let secret = r.id("secret")?;
                let n = r.u16("name")? as usize;
                let name = r.text(n, "name")?;
                let n = r.u16("needs")? as usize;
                let needs = r.text(n, "needs")?;
                if name.len() > MAX_JOIN_TEXT || needs.len() > MAX_JOIN_TEXT {
                    return Err(FrameError::Malformed("join text too long"));
                }
                Frame::Join(Join {
                    group,
                    secret,
                    name,
                    needs,
                })
            }
            WELCOME => Frame::Welcome(EntryId(r.id("entry")?)),
            LINK => {
                let group = GroupId::from_bytes(r.id("group")?);
                let secret = r.id("secret")?;
                let proof: [u8; 64] = r
                    .take(64, "proof")?
                    .try_into()
                    .map_err(|_| FrameError::Malformed("proof"))?;
                let n = r.u16("name")? as usize;
                let name = r.text(n, "name")?;
                if name.len() > MAX_JOIN_TEXT {
                    return Err(FrameError::Malformed("link name too long"));
                }
                Frame::Link(Link {
                    group,
                    secret,
                    proof,
                    name,
                })
            }
            LINKED => Frame::Linked(Linked {
                entry: EntryId(r.id("entry")?),
                enc_secret: r.id("secret")?,
            }),
            KEY_ASK => Frame::KeyAsk(GroupId::from_bytes(r.id("group")?)),
            KEY_GIVEN => Frame::KeyGiven(MemberKey(r.id("secret")?)),
            t => return Err(FrameError::Type(t)),
        };
        if !r.b.is_empty() {
            return Err(FrameError::Malformed("trailing bytes"));
        }
        Ok(frame)
    }
}

/// Reads the length prefix; refuses a length over `max` before reading the body.
pub fn body_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len as u64));
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    Ok(len)
}

/// Fuzz entry point: decoding never panics, and a decoded frame re-encodes to the same bytes.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    if let Ok(f) = Frame::decode(data) {
        assert_eq!(
            &f.encode()[4..],
            data,
            "a decoded frame re-encodes identically"
        );
    }
}
