//! The cloud against the plain BitTorrent transfer it is built on, in one run on one machine.
//!
//! 1. baseline: one 256 MiB torrent moved between two librqbit sessions on loopback;
//! 2. PUT of the same bytes to a gateway with 6 nodes in 3 zones, (k, m) = (4, 2), 2 copies, until
//!    durable (every copy confirmed), and GET of it back.
//!
//! Prints MB/s and the ratios: GET / baseline, and PUT / (baseline / expansion), where expansion is
//! copies × (k + m) / k, the bytes a durable PUT must move per object byte.
//!
//! `cargo bench -p raidtorrent-integration --bench cloud` (`-- --test` runs a small, quick version).

use std::time::{Duration, Instant};

use librqbit::{AddTorrent, AddTorrentOptions, ListenerOptions, Session, SessionOptions};
use raidtorrent_codec::ShardInfo;
use raidtorrent_integration::{random_bytes, TestCloud};
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
async fn plain_transfer(data: &[u8]) -> f64 {
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

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let size: usize = if quick { 8 << 20 } else { 256 << 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let data = random_bytes(size, 42);
        let mb = size as f64 / 1e6;
        let plain = plain_transfer(&data).await;

        let t = TestCloud::start(6, 3).await;
        let gw = t.cloud.gateway.clone();
        gw.create_bucket("bench", None).await.unwrap();
        let start = Instant::now();
        gw.put(
            "bench",
            "o",
            std::io::Cursor::new(data.clone()),
            Some(size as u64),
        )
        .await
        .unwrap();
        let put = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (_, mut body) = gw.get("bench", "o", None).await.unwrap();
        let mut got = Vec::with_capacity(size);
        while let Some(chunk) = body.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        let get = start.elapsed().as_secs_f64();
        assert!(got == data, "read back differs");
        let expansion = 2.0 * 6.0 / 4.0;
        println!(
            "cloud benchmark, {} MiB object, 6 nodes in 3 zones, (4,2) x 2 copies:",
            size >> 20
        );
        println!("  plain torrent  {:8.1} MB/s", mb / plain);
        println!(
            "  PUT (durable)  {:8.1} MB/s  = {:.2}x plain/expansion ({expansion:.1}x bytes moved)",
            mb / put,
            plain * expansion / put
        );
        println!(
            "  GET            {:8.1} MB/s  = {:.2}x plain",
            mb / get,
            plain / get
        );
    });
}
