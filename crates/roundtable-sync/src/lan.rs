//! Finding the other devices in the room: mDNS on the local network (`iroh-mdns-address-lookup`).
//!
//! A serving device advertises itself under the service name `roundtable` and listens for others.
//! When it finds an active member's device of the group it serves, it keeps a live sync with it. Only
//! the device with the smaller id dials, so two devices that find each other open one connection.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::Endpoint;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;
use roundtable_core::{DeviceId, GroupId};

use crate::node::{Node, SyncError};

/// The mDNS service name Roundtable devices advertise.
pub const SERVICE: &str = "roundtable";

/// Advertises this device on the LAN and keeps a live sync with every member's device found there.
/// Runs until the endpoint closes.
pub async fn discover_and_sync(ep: Endpoint, node: Node, group: GroupId) -> Result<(), SyncError> {
    let mdns = MdnsAddressLookup::builder()
        .service_name(SERVICE)
        .build(ep.id())
        .map_err(|e| SyncError::Network(format!("local network discovery could not start: {e}")))?;
    ep.address_lookup()
        .map_err(|e| SyncError::Network(format!("local network discovery could not start: {e}")))?
        .add(mdns.clone());
    let me = node.device_id();
    let linked: Arc<Mutex<HashSet<DeviceId>>> = Arc::default();
    let mut events = mdns.subscribe().await;
    while let Some(ev) = events.next().await {
        let DiscoveryEvent::Discovered { endpoint_info, .. } = ev else {
            continue;
        };
        let peer = DeviceId(*endpoint_info.endpoint_id.as_bytes());
        if peer <= me || !node.is_member(&group, &peer) {
            continue;
        }
        if !linked.lock().map(|mut l| l.insert(peer)).unwrap_or(false) {
            continue;
        }
        let (ep, node, linked) = (ep.clone(), node.clone(), linked.clone());
        let addr = endpoint_info.into_endpoint_addr();
        tokio::spawn(async move {
            if let Err(e) = node.sync_with(&ep, addr, group, true).await {
                eprintln!(
                    "roundtable: live sync with {peer} (found on the local network) stopped: {e}"
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(mut l) = linked.lock() {
                l.remove(&peer);
            }
        });
    }
    Ok(())
}

/// Advertises this device on the LAN and calls `found` with every Roundtable device seen there
/// (its id and where it answers). Runs until the endpoint closes. What to do with a device found
/// (sync once, keep a live sync, only list it) is the caller's choice.
pub async fn discover(
    ep: Endpoint,
    found: impl Fn(DeviceId, iroh::EndpointAddr) + Send + 'static,
) -> Result<(), SyncError> {
    look(ep, true, found).await
}

/// Like [`discover`], but without advertising this device: for a device that only dials the
/// devices it sees (a one-off `sync` with the devices nearby) and answers no one.
pub async fn listen(
    ep: Endpoint,
    found: impl Fn(DeviceId, iroh::EndpointAddr) + Send + 'static,
) -> Result<(), SyncError> {
    look(ep, false, found).await
}

async fn look(
    ep: Endpoint,
    advertise: bool,
    found: impl Fn(DeviceId, iroh::EndpointAddr) + Send + 'static,
) -> Result<(), SyncError> {
    let mdns = MdnsAddressLookup::builder()
        .service_name(SERVICE)
        .advertise(advertise)
        .build(ep.id())
        .map_err(|e| SyncError::Network(format!("local network discovery could not start: {e}")))?;
    ep.address_lookup()
        .map_err(|e| SyncError::Network(format!("local network discovery could not start: {e}")))?
        .add(mdns.clone());
    let mut events = mdns.subscribe().await;
    while let Some(ev) = events.next().await {
        if let DiscoveryEvent::Discovered { endpoint_info, .. } = ev {
            let peer = DeviceId(*endpoint_info.endpoint_id.as_bytes());
            found(peer, endpoint_info.into_endpoint_addr());
        }
    }
    Ok(())
}
