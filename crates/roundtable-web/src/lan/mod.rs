//! The members' page on the local network, for a phone or tablet the member lets in: a second
//! listener on this computer's LAN address, over TLS only, that opens nothing before pairing.
//!
//! **Invariant: the two listeners' credentials never cross.** The loopback listener accepts only
//! the launch token (`?t=` once, then its cookie `roundtable_PORT`); the LAN listener accepts only a
//! paired browser's cookie (`__Host-roundtable-lan`, `Secure`), checked against the hashes kept in
//! the home. Neither guard reads the other's credential, and each side's forms carry their own CSRF
//! token (the LAN's is random at each launch, never derived from the launch token).
//!
//! **Invariant:** the LAN listener answers only with its own address in `Host` (and in `Origin`,
//! which every POST must carry), and pairing itself is managed only from the computer: making a
//! code, signing a browser out, the passphrase and welcome pages are refused on the LAN.

pub(crate) mod cert;
pub(crate) mod pairing;
pub(crate) mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub use cert::{CERT_FILE, fingerprint};
pub use pairing::{CODE_LIFE_MS, Clock, FIRST_PAUSE_MS, FREE_TRIES};

/// How `roundtable web` serves the page on the local network.
#[derive(Clone, Default)]
pub struct LanConfig {
    /// Where the LAN listener binds. `None`: every IPv4 interface (`0.0.0.0`) on the port of the
    /// last launch if it is free (a phone's bookmark keeps working), else any; the links name
    /// each non-loopback IPv4 address. An explicit address serves that address only (a loopback
    /// address such as `127.0.0.2:0` is for tests).
    pub listen: Option<SocketAddr>,
    /// The pairing's clock (tests move it on); `None`: the system's.
    pub clock: Option<Clock>,
}

impl std::fmt::Debug for LanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanConfig")
            .field("listen", &self.listen)
            .field("clock", &self.clock.as_ref().map(|_| "injected"))
            .finish()
    }
}

/// Why the page could not be served on the local network, or a pairing step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LanError {
    /// There is no device home yet: a phone could only reach a welcome page meant for this computer.
    #[error(
        "this device is not set up yet (no home at {0}): set it up on this computer before letting a phone or tablet in"
    )]
    NoHome(PathBuf),
    /// No IPv4 address other than loopback was found.
    #[error("this computer has no local network address: is it connected to Wi-Fi or a cable?")]
    NoAddress,
    /// The address asked for is not IPv4.
    #[error("{0} is not an IPv4 address; the page on the local network is served over IPv4 only")]
    NotIpv4(SocketAddr),
    /// The kept certificate file can be read by other users of this computer.
    #[error(
        "{} can be read by other users of this computer; make it private with: chmod 600 {}",
        path.display(),
        path.display()
    )]
    NotPrivate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The certificate file could not be read or written.
    #[error("could not read or write {}: {source}", path.display())]
    File {
        /// The certificate file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Making the certificate failed.
    #[error("could not make the certificate: {0}")]
    Certificate(String),
    /// rustls refused the certificate or its settings.
    #[error("could not set up the secure connection: {0}")]
    Tls(String),
    /// Listening on the LAN address failed (the port is taken, say).
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The operating system's random generator failed.
    #[error("could not make a random number: {0}")]
    Random(String),
    /// The browsers let in could not be saved in the home.
    #[error("could not save the list of phones and tablets let in: {0}")]
    Save(String),
    /// As many browsers are let in as allowed.
    #[error(
        "{} phones and tablets are let in already: sign one out first",
        pairing::MAX_BROWSERS
    )]
    TooManyBrowsers,
    /// A lock was poisoned by a panic elsewhere.
    #[error("an internal lock failed")]
    Poisoned,
}

/// The LAN side, shared by both listeners: the loopback Devices page makes the codes and signs
/// browsers out; the LAN listener checks them.
pub(crate) struct Lan {
    pub(crate) pairing: pairing::Pairing,
    pub(crate) browsers: pairing::Browsers,
    /// The LAN forms' CSRF token: random at each launch, unrelated to the launch token.
    pub(crate) csrf: String,
    /// `IP:PORT` for each address served: the only `Host` values the LAN listener answers.
    pub(crate) hosts: Vec<String>,
    /// `https://IP:PORT/pair` for each address served.
    pub(crate) urls: Vec<String>,
    /// Hex SHA-256 of the certificate's DER.
    pub(crate) fingerprint: String,
}

impl Lan {
    pub(crate) fn host_ok(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }
}

/// This computer's IPv4 addresses other than loopback, of interfaces that are up, sorted.
pub fn lan_ipv4s() -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = netdev::get_interfaces()
        .into_iter()
        .filter(|i| i.is_up() && !i.is_loopback())
        .flat_map(|i| i.ipv4.into_iter().map(|n| n.addr()))
        .filter(|ip| serveable(*ip))
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// An address a phone on the LAN could reach: not loopback, unspecified, broadcast or multicast.
fn serveable(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

/// Where to bind, and which addresses the links and the certificate name.
pub(crate) fn plan(
    listen: Option<SocketAddr>,
    kept_port: Option<u16>,
) -> Result<(Vec<SocketAddr>, Vec<Ipv4Addr>), LanError> {
    let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    match listen {
        None => {
            let ips = lan_ipv4s();
            if ips.is_empty() {
                return Err(LanError::NoAddress);
            }
            let mut binds = Vec::new();
            if let Some(p) = kept_port {
                binds.push(any(p));
            }
            binds.push(any(0));
            Ok((binds, ips))
        }
        Some(addr) => match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                let ips = lan_ipv4s();
                if ips.is_empty() {
                    return Err(LanError::NoAddress);
                }
                Ok((vec![addr], ips))
            }
            IpAddr::V4(ip) => Ok((vec![addr], vec![ip])),
            IpAddr::V6(_) => Err(LanError::NotIpv4(addr)),
        },
    }
}

/// Binds the first of `binds` that is free (the kept port, then any).
pub(crate) async fn bind(binds: &[SocketAddr]) -> Result<tokio::net::TcpListener, LanError> {
    let mut last = None;
    for addr in binds {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((*addr, e)),
        }
    }
    let (addr, source) = last.unwrap_or_else(|| {
        (
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            std::io::Error::other("no address to listen on"),
        )
    });
    Err(LanError::Listen { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_special_addresses_are_never_served() {
        assert!(!serveable(Ipv4Addr::LOCALHOST));
        assert!(!serveable("127.0.0.2".parse().unwrap()));
        assert!(!serveable(Ipv4Addr::UNSPECIFIED));
        assert!(!serveable(Ipv4Addr::BROADCAST));
        assert!(!serveable("224.0.0.251".parse().unwrap()));
        assert!(serveable("192.168.1.5".parse().unwrap()));
        assert!(lan_ipv4s().iter().all(|ip| !ip.is_loopback()));
    }

    #[test]
    fn an_explicit_address_is_the_only_one_served() {
        let addr: SocketAddr = "127.0.0.2:0".parse().unwrap();
        let (binds, ips) = plan(Some(addr), Some(4000)).unwrap();
        assert_eq!(binds, vec![addr]);
        assert_eq!(ips, vec!["127.0.0.2".parse::<Ipv4Addr>().unwrap()]);
        assert!(matches!(
            plan(Some("[::1]:0".parse().unwrap()), None),
            Err(LanError::NotIpv4(_))
        ));
    }
}
