//! Building an iroh endpoint that never reaches the internet on its own.

use std::net::SocketAddr;

use iroh::endpoint::{RelayMode, presets};
use iroh::{Endpoint, EndpointAddr, RelayUrl, SecretKey};
use roundtable_core::{DeviceId, DeviceKey};

use crate::node::SyncError;

/// Where and how an endpoint listens.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// Addresses to bind; empty means all interfaces on a random port (IPv4 and IPv6).
    pub listen: Vec<SocketAddr>,
    /// A self-hosted iroh relay, for members on different networks. None: no relay at all.
    pub relay: Option<RelayUrl>,
}

/// The iroh endpoint id of a device: the same 32 bytes as its device id.
pub fn endpoint_id(device: &DeviceId) -> Result<iroh::EndpointId, SyncError> {
    iroh::EndpointId::from_bytes(&device.0)
        .map_err(|_| SyncError::BadAddress("the device id is not a valid key".into()))
}

/// Binds an endpoint with `presets::Minimal`: no DNS lookups, no public relays, no port mapping.
pub async fn bind(
    key: &DeviceKey,
    cfg: &NetConfig,
    alpns: Vec<Vec<u8>>,
) -> Result<Endpoint, SyncError> {
    let relay = match &cfg.relay {
        None => RelayMode::Disabled,
        Some(url) => RelayMode::custom([url.clone()]),
    };
    let mut b = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&key.secret_bytes()))
        .relay_mode(relay)
        .alpns(alpns);
    if !cfg.listen.is_empty() {
        b = b.clear_ip_transports();
        for a in &cfg.listen {
            b = b
                .bind_addr(*a)
                .map_err(|e| SyncError::BadAddress(format!("cannot listen on {a}: {e}")))?;
        }
    }
    b.bind()
        .await
        .map_err(|e| SyncError::Network(format!("could not open the network endpoint: {e}")))
}

/// The dialable addresses of an endpoint: what it is bound to, with unspecified addresses left out.
pub fn local_addrs(ep: &Endpoint) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = ep
        .addr()
        .ip_addrs()
        .copied()
        .filter(|a| !a.ip().is_unspecified())
        .collect();
    if v.is_empty() {
        v = ep
            .bound_sockets()
            .into_iter()
            .filter(|a| !a.ip().is_unspecified())
            .collect();
    }
    v.sort();
    v.dedup();
    v
}

/// An address to dial a device at.
pub fn dial_addr(device: &DeviceId, addrs: &[SocketAddr]) -> Result<EndpointAddr, SyncError> {
    let mut a = EndpointAddr::new(endpoint_id(device)?);
    for s in addrs {
        a = a.with_ip_addr(*s);
    }
    Ok(a)
}

/// `addr` with the self-hosted relay of `cfg` added, when there is one: a ticket names only a
/// device's direct addresses, and members on different networks reach each other through the
/// relay they all use (`--relay URL` on every device), where the other device is connected.
pub fn via_relay(addr: EndpointAddr, cfg: &NetConfig) -> EndpointAddr {
    match &cfg.relay {
        Some(url) => addr.with_relay_url(url.clone()),
        None => addr,
    }
}
