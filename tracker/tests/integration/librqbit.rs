//! Two librqbit sessions find each other only through the tracker and move a file.
//!
//! librqbit 9.1 cannot bind its outgoing tracker requests to an address, so the tracker sees
//! every session as 127.0.0.1; each session therefore listens on 127.0.0.1 with its own port
//! (the address the tracker hands out). librqbit sends no BEP 41 URL data over UDP, so the UDP
//! run uses an open tracker; the private UDP path is covered with libtorrent in `interop`.

use crate::common::*;
use librqbit::{AddTorrent, AddTorrentOptions, ListenerOptions, Session, SessionOptions};
use raidtorrent_tracker::protocol::InfoHash;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn session(dir: &Path) -> Arc<Session> {
    let port = free_port("127.0.0.1");
    Session::new_with_opts(
        dir.to_owned(),
        SessionOptions {
            dht: None,
            disable_local_service_discovery: true,
            persistence: None,
            fastresume: false,
            ipv4_only: true,
            listen: Some(ListenerOptions {
                listen_addr: ([127, 0, 0, 1], port).into(),
                announce_port: Some(port),
                ipv4_only: true,
                enable_upnp_port_forwarding: false,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Seeds a file from one session and downloads it in another; each session gets the torrent
/// with its own announce URL (same info dict, so the same info-hash).
async fn transfer(t: &TestTracker, seed_announce: &str, leech_announce: &str) {
    let data = test_data(3 * 1024 * 1024 + 123, 7);
    let (torrent, ih) = make_torrent("shard-0007.bin", &data, seed_announce, true);
    let (leech_torrent, leech_ih) = make_torrent("shard-0007.bin", &data, leech_announce, true);
    assert_eq!(ih, leech_ih);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    std::fs::write(seed_dir.path().join("shard-0007.bin"), &data).unwrap();

    let seeder = session(seed_dir.path()).await;
    let handle = seeder
        .add_torrent(
            AddTorrent::from_bytes(torrent.clone()),
            Some(AddTorrentOptions {
                overwrite: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_handle()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), handle.wait_until_completed())
        .await
        .expect("seeder checks its data")
        .unwrap();
    let tracker = t.service.tracker().clone();
    poll(60, "the seeder's announce", || {
        let tracker = tracker.clone();
        async move { (tracker.swarms().counts(&InfoHash(ih)).complete == 1).then_some(()) }
    })
    .await;

    let leecher = session(leech_dir.path()).await;
    let handle = leecher
        .add_torrent(AddTorrent::from_bytes(leech_torrent), None)
        .await
        .unwrap()
        .into_handle()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), handle.wait_until_completed())
        .await
        .expect("leecher downloads through the tracker's peer list")
        .unwrap();
    let got = std::fs::read(leech_dir.path().join("shard-0007.bin")).unwrap();
    assert!(got == data, "downloaded bytes differ");
    seeder.stop().await;
    leecher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn librqbit_sessions_meet_over_http() {
    let t = TestTracker::start(test_config(false)).await;
    let (seed_id, seed_key) = t.node("gateway-seeder").await;
    let (leech_id, leech_key) = t.node("volunteer").await;
    transfer(&t, &t.announce_url(&seed_key), &t.announce_url(&leech_key)).await;
    // Each node's record shows its role in the swarm.
    t.service.recorder().flush().await.unwrap();
    let r = get_json(t.http, &format!("/nodes/{seed_id}")).await;
    assert!(r["announces"].as_i64().unwrap() >= 1, "{r}");
    assert_eq!(r["torrents_seeding"], 1, "{r}");
    let r = get_json(t.http, &format!("/nodes/{leech_id}")).await;
    assert!(r["announces"].as_i64().unwrap() >= 1, "{r}");
    assert_eq!(r["torrents_leeching"], 1, "{r}");
    t.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn librqbit_sessions_meet_over_udp() {
    let t = TestTracker::start(test_config(true)).await;
    let url = format!("udp://{}", t.udp);
    transfer(&t, &url, &url).await;
    t.service.shutdown().await;
}
