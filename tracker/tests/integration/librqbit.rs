//! Two librqbit sessions find each other only through the tracker and move a file.
//!
//! librqbit 9.1 cannot bind its outgoing tracker requests to an address, so the tracker sees
//! every session as 127.0.0.1; each session therefore listens on 127.0.0.1 with its own port
//! (the address the tracker hands out). librqbit sends no BEP 41 URL data over UDP, so the UDP
//! run uses an open tracker; the private UDP path is covered with libtorrent in `interop`.

use crate::common::*;
use raidtorrent_tracker::protocol::InfoHash;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Seeds a file from one session and downloads it in another; each session gets the torrent
/// with its own announce URL (same info dict, so the same info-hash).
async fn transfer(t: &TestTracker, seed_announce: &str, leech_announce: &str) {
    let data = random_bytes(3 * 1024 * 1024 + 123, 7);
    let (torrent, ih) = make_torrent("shard-0007.bin", &data, seed_announce, true);
    let (leech_torrent, leech_ih) = make_torrent("shard-0007.bin", &data, leech_announce, true);
    assert_eq!(ih, leech_ih);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    std::fs::write(seed_dir.path().join("shard-0007.bin"), &data).unwrap();

    let (seeder, _) = swarm::session(seed_dir.path(), Ipv4Addr::LOCALHOST).await;
    swarm::seed(&seeder, &torrent, Duration::from_secs(60)).await;
    let tracker = t.service.tracker().clone();
    wait_until(Duration::from_secs(60), "the seeder has announced", || {
        let tracker = tracker.clone();
        async move { tracker.swarms().counts(&InfoHash(ih)).complete == 1 }
    })
    .await;

    // No peers given: the leecher finds the seeder through the tracker's peer list alone.
    let (leecher, _) = swarm::session(leech_dir.path(), Ipv4Addr::LOCALHOST).await;
    swarm::fetch(&leecher, &leech_torrent, &[], Duration::from_secs(120)).await;
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
    let r = admin_json(t.http, &format!("/admin/nodes/{seed_id}")).await;
    assert!(r["announces"].as_i64().unwrap() >= 1, "{r}");
    assert_eq!(r["torrents_seeding"], 1, "{r}");
    let r = admin_json(t.http, &format!("/admin/nodes/{leech_id}")).await;
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
