//! Tickets: how one device tells another where to find it (and, for an invitation, the secret).
//!
//! ```text
//! ticket := "rt" base32(lowercase, no padding) of
//!           version:u8=1 kind:u8 group:32 device:32 naddrs:u8 addr*naddrs [secret:32 expires_ms:i64le]
//! addr   := 4 ip:4 port:u16le | 6 ip:16 port:u16le
//! kind   := 0 serve (sync with this device) | 1 invite (join the group through this device)
//!         | 2 device link (a member's new device: the secret, then member:32)
//! ```

use std::net::{IpAddr, SocketAddr};

use roundtable_core::{DeviceId, GroupId, MemberId};

const PREFIX: &str = "rt";
const MAX_ADDRS: usize = 16;

/// Where to find a device of a group, and for an invitation the secret that lets a newcomer join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The group.
    pub group: GroupId,
    /// The device to connect to (its id is its iroh endpoint id).
    pub device: DeviceId,
    /// Its direct addresses; at most 16 are written.
    pub addrs: Vec<SocketAddr>,
    /// For an invitation or a device link: the one-time secret and when it expires (ms since
    /// the epoch).
    pub invite: Option<([u8; 32], i64)>,
    /// For a device link (with `invite`): the member the new device is linked to.
    pub link: Option<MemberId>,
}

/// Why a text is not a ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// It does not start with `rt`.
    #[error("this is not a Roundtable ticket (it should start with \"rt\"); copy the whole ticket")]
    Prefix,
    /// Not base32, too long, cut short, or a field out of range (which one, in words).
    #[error("the ticket is damaged or incomplete ({0}); copy the whole ticket again")]
    Damaged(&'static str),
    /// A version byte other than 1.
    #[error("this ticket was made by a newer version of Roundtable")]
    Version,
}

impl Ticket {
    /// A plain sync ticket (no invitation, no link): what another device syncs `group` with.
    pub fn sync(group: GroupId, device: DeviceId, addrs: Vec<SocketAddr>) -> Ticket {
        Ticket {
            group,
            device,
            addrs,
            invite: None,
            link: None,
        }
    }

    /// The ticket's text: `rt` and lowercase base32 without padding (layout in the module doc).
    pub fn encode(&self) -> String {
        let kind = match (&self.invite, &self.link) {
            (None, _) => 0,
            (Some(_), None) => 1,
            (Some(_), Some(_)) => 2,
        };
        let mut b = vec![1u8, kind];
        b.extend_from_slice(&self.group.0);
        b.extend_from_slice(&self.device.0);
        let addrs = &self.addrs[..self.addrs.len().min(MAX_ADDRS)];
        b.push(addrs.len() as u8);
        for a in addrs {
            match a.ip() {
                IpAddr::V4(ip) => {
                    b.push(4);
                    b.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    b.push(6);
                    b.extend_from_slice(&ip.octets());
                }
            }
            b.extend_from_slice(&a.port().to_le_bytes());
        }
        if let Some((secret, expires)) = &self.invite {
            b.extend_from_slice(secret);
            b.extend_from_slice(&expires.to_le_bytes());
            if let Some(m) = &self.link {
                b.extend_from_slice(&m.0);
            }
        }
        format!(
            "{PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase()
        )
    }

    /// Reads a ticket's text (surrounding whitespace ignored). Does not check an invitation's
    /// expiry: the inviting device does.
    pub fn decode(s: &str) -> Result<Ticket, TicketError> {
        let s = s.trim();
        let body = s.strip_prefix(PREFIX).ok_or(TicketError::Prefix)?;
        if body.len() > 4096 {
            return Err(TicketError::Damaged("too long"));
        }
        let b = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| TicketError::Damaged("not base32"))?;
        let mut r = &b[..];
        let mut take = |n: usize, what: &'static str| -> Result<Vec<u8>, TicketError> {
            if r.len() < n {
                return Err(TicketError::Damaged(what));
            }
            let (h, t) = r.split_at(n);
            r = t;
            Ok(h.to_vec())
        };
        if take(1, "version")?[0] != 1 {
            return Err(TicketError::Version);
        }
        let kind = take(1, "kind")?[0];
        let id32 = |v: Vec<u8>| -> Result<[u8; 32], TicketError> {
            v.try_into().map_err(|_| TicketError::Damaged("id"))
        };
        let group = GroupId::from_bytes(id32(take(32, "group")?)?);
        let device = DeviceId(id32(take(32, "device")?)?);
        let n = take(1, "addresses")?[0] as usize;
        if n > MAX_ADDRS {
            return Err(TicketError::Damaged("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let ip: IpAddr = match take(1, "address")?[0] {
                4 => <[u8; 4]>::try_from(take(4, "address")?)
                    .map_err(|_| TicketError::Damaged("address"))?
                    .into(),
                6 => <[u8; 16]>::try_from(take(16, "address")?)
                    .map_err(|_| TicketError::Damaged("address"))?
                    .into(),
                _ => return Err(TicketError::Damaged("address family")),
            };
            let port = u16::from_le_bytes(
                take(2, "port")?
                    .try_into()
                    .map_err(|_| TicketError::Damaged("port"))?,
            );
            addrs.push(SocketAddr::new(ip, port));
        }
        let invite = match kind {
            0 => None,
            1 | 2 => {
                let secret = id32(take(32, "secret")?)?;
                let expires = i64::from_le_bytes(
                    take(8, "expiry")?
                        .try_into()
                        .map_err(|_| TicketError::Damaged("expiry"))?,
                );
                Some((secret, expires))
            }
            _ => return Err(TicketError::Damaged("kind")),
        };
        let link = match kind {
            2 => Some(DeviceId(id32(take(32, "member")?)?)),
            _ => None,
        };
        if !r.is_empty() {
            return Err(TicketError::Damaged("extra bytes"));
        }
        Ok(Ticket {
            group,
            device,
            addrs,
            invite,
            link,
        })
    }
}

/// Fuzz entry point: any text decodes to a ticket or an error, and a ticket re-encodes identically.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    if let Ok(t) = std::str::from_utf8(data)
        .map_err(|_| TicketError::Prefix)
        .and_then(Ticket::decode)
    {
        assert_eq!(Ticket::decode(&t.encode()), Ok(t));
    }
}
