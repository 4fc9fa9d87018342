//! Baselines measured in the same run as the cloud benchmarks: a plain single-torrent transfer
//! between two librqbit sessions on loopback (what every shard transfer is built on).

use std::time::{Duration, Instant};

use librqbit::{AddTorrent, AddTorrentOptions, ListenerOptions, Session, SessionOptions};
use raidtorrent_codec::ShardInfo;
use sha1::{Digest, Sha1};

async fn session(dir: &std::path::Path) -> (std::sync::Arc<Session>, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Session::new_with_opts(
        dir.to_owned(),
        SessionOptions {
            dht: None,
            disable_local_service_discovery: true,
            disable_trackers: true,
            persistence: None,
            ipv4_only: true,
            listen: Some(ListenerOptions {
                listen_addr: ([127, 0, 0, 1], port).into(),
                announce_port: Some(port),
                ipv4_only: true,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (s, ([127, 0, 0, 1], port).into())
}

/// Seconds to move `data` as one torrent from a seeding session to a fresh one.
pub async fn plain_transfer(data: &[u8]) -> f64 {
    let piece_length = 256 * 1024;
    let info = ShardInfo {
        name: ShardInfo::random_name(),
        length: data.len() as u64,
        piece_length: piece_length as u64,
        pieces: data
            .chunks(piece_length)
            .map(|p| Sha1::digest(p).into())
            .collect(),
    };
    let torrent = info.to_torrent(&[]);
    let (seed_dir, leech_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(seed_dir.path().join(&info.name), data).unwrap();
    let (seeder, seed_addr) = session(seed_dir.path()).await;
    let h = seeder
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
    h.wait_until_completed().await.unwrap();
    let (leecher, _) = session(leech_dir.path()).await;
    let start = Instant::now();
    let h = leecher
        .add_torrent(
            AddTorrent::from_bytes(torrent),
            Some(AddTorrentOptions {
                initial_peers: Some(vec![seed_addr]),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_handle()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(600), h.wait_until_completed())
        .await
        .expect("plain transfer finishes")
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    seeder.stop().await;
    leecher.stop().await;
    secs
}
