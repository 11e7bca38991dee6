//! The network actions on loopback only: a second home joins through an invitation made on the
//! first (served by a `Node` on 127.0.0.1), then syncs once.

use std::time::Duration;

use iroh::protocol::Router;
use roundtable_app::net::{self, NetConfig};
use roundtable_app::{Seat, unlock};
use roundtable_core::Rule;
use roundtable_sync::{ALPN, JOIN_ALPN, Node};

fn loopback() -> NetConfig {
    NetConfig {
        listen: vec!["127.0.0.1:0".parse().expect("an address")],
        relay: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_home_joins_through_an_invitation_and_syncs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (home, key) = roundtable_app::init(&a, "Ana", "large print", None).expect("init a");
    let (key2, enc) = unlock(&home, None).expect("unlock");
    let g = Seat::new(&home, &key2, Some(&enc))
        .create_group("Board", Rule::Consent, 1)
        .expect("group");
    let gid = g.id();
    drop((g, home));

    // The first home served on 127.0.0.1, as `serve` does, and said so in serve.json.
    let ep = roundtable_sync::net::bind(&key, &loopback(), vec![ALPN.to_vec(), JOIN_ALPN.to_vec()])
        .await
        .expect("bind");
    let node = Node::new(
        a.clone(),
        roundtable_core::DeviceKey::from_secret(&key.secret_bytes()),
    );
    node.load_groups().await.expect("load");
    let router = Router::builder(ep.clone())
        .accept(ALPN, node.sync_handler())
        .accept(JOIN_ALPN, node.join_handler())
        .spawn();
    let addrs = roundtable_sync::net::local_addrs(&ep);
    assert!(addrs.iter().all(|s| s.ip().is_loopback()), "{addrs:?}");
    net::announce_serve(&a, key.device_id(), &addrs).expect("serve.json");

    let limit = Duration::from_secs(60);
    let run = async {
        let inv = net::invite(&a, &key, gid, 10, &loopback())
            .await
            .expect("invite");
        assert!(inv.host.is_none(), "the running node answers");
        let joined = net::join(
            &b,
            None,
            &inv.ticket,
            "Ben",
            "read aloud",
            &loopback(),
            Duration::from_secs(20),
        )
        .await
        .expect("join");
        assert!(joined.new_home);
        assert_eq!(joined.group, gid);
        assert!(joined.joined, "{joined:?}");
        // A group of one: the inviting device's agree passes the proposal, so Ben is in.
        let home_b = roundtable_store::Home::open(&b).expect("home b");
        let key_b = home_b.device_key(None).expect("key b");
        drop(home_b);
        let serve_ticket = roundtable_sync::Ticket {
            group: gid,
            device: key.device_id(),
            addrs: addrs.clone(),
            invite: None,
            link: None,
        }
        .encode();
        let report = net::sync_once(
            &b,
            &key_b,
            None,
            &serve_ticket,
            &loopback(),
            Duration::from_secs(20),
        )
        .await
        .expect("sync");
        assert_eq!(report.group, gid);
        (joined, report)
    };
    let (joined, _report) = tokio::time::timeout(limit, run)
        .await
        .expect("within a minute");
    let home_b = roundtable_store::Home::open(&b).expect("home b");
    assert!(
        home_b
            .groups()
            .expect("groups")
            .iter()
            .any(|(g, _)| *g == gid)
    );
    let g = home_b.open_group(&gid).expect("group on b");
    assert!(
        g.record.contains(&joined.proposal),
        "the join proposal is there"
    );
    net::withdraw_serve(&a);
    let _ = tokio::time::timeout(Duration::from_secs(10), router.shutdown()).await;
}
