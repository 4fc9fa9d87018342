//! Baselines measured in the same run as the cloud benchmarks: a plain single-torrent transfer
//! between two librqbit sessions on loopback (what every shard transfer is built on).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use raidtorrent_codec::ShardInfo;
use raidtorrent_testkit::swarm;
use sha1::{Digest, Sha1};

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
    let (seeder, seed_addr) = swarm::session(seed_dir.path(), Ipv4Addr::LOCALHOST).await;
    swarm::seed(&seeder, &torrent, Duration::from_secs(600)).await;
    let (leecher, _) = swarm::session(leech_dir.path(), Ipv4Addr::LOCALHOST).await;
    let start = Instant::now();
    swarm::fetch(&leecher, &torrent, &[seed_addr], Duration::from_secs(600)).await;
    let secs = start.elapsed().as_secs_f64();
    seeder.stop().await;
    leecher.stop().await;
    secs
}
