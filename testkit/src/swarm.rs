//! librqbit sessions for tests: a stock BitTorrent implementation on loopback that seeds and
//! fetches torrents, with nothing that reaches past the machine (no DHT, no local service
//! discovery, no UPnP, no persistence).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use librqbit::{
    AddTorrent, AddTorrentOptions, ListenerOptions, ManagedTorrent, Session, SessionOptions,
};

use crate::{free_port, within};

/// A session keeping its torrents' files in `dir` and listening on `ip` (a loopback address) on
/// a free port, which it also announces to trackers; returns the session and that address.
///
/// Trackers in a torrent are used: librqbit cannot bind its tracker requests to an address, so a
/// tracker sees every session as 127.0.0.1 and hands out the announced port there.
pub async fn session(dir: &Path, ip: Ipv4Addr) -> (Arc<Session>, SocketAddr) {
    let addr = SocketAddr::from((ip, free_port(&ip.to_string())));
    let session = Session::new_with_opts(
        dir.to_owned(),
        SessionOptions {
            dht: None,
            disable_local_service_discovery: true,
            persistence: None,
            fastresume: false,
            ipv4_only: true,
            listen: Some(ListenerOptions {
                listen_addr: addr,
                announce_port: Some(addr.port()),
                ipv4_only: true,
                enable_upnp_port_forwarding: false,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("a librqbit session on {addr}: {e:#}"));
    (session, addr)
}

/// Adds `torrent` over whatever of its data is already in the session's folder (nothing is
/// fetched or overwritten), without waiting for the hash check.
pub async fn add_existing(session: &Arc<Session>, torrent: &[u8]) -> Arc<ManagedTorrent> {
    add(
        session,
        torrent,
        AddTorrentOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .await
}

/// Seeds `torrent` from the data already in the session's folder: adds it and waits (up to
/// `timeout`) until the hash check found every piece.
pub async fn seed(
    session: &Arc<Session>,
    torrent: &[u8],
    timeout: Duration,
) -> Arc<ManagedTorrent> {
    let handle = add_existing(session, torrent).await;
    within(
        timeout,
        "the seeder's hash check",
        handle.wait_until_completed(),
    )
    .await
    .unwrap();
    handle
}

/// Downloads `torrent` into the session's folder from `peers` (dialled directly) and the
/// torrent's trackers, and waits (up to `timeout`) until every piece is in.
pub async fn fetch(
    session: &Arc<Session>,
    torrent: &[u8],
    peers: &[SocketAddr],
    timeout: Duration,
) -> Arc<ManagedTorrent> {
    let options = AddTorrentOptions {
        initial_peers: (!peers.is_empty()).then(|| peers.to_vec()),
        ..Default::default()
    };
    let handle = add(session, torrent, options).await;
    within(timeout, "the download", handle.wait_until_completed())
        .await
        .unwrap();
    handle
}

async fn add(
    session: &Arc<Session>,
    torrent: &[u8],
    options: AddTorrentOptions,
) -> Arc<ManagedTorrent> {
    session
        .add_torrent(AddTorrent::from_bytes(torrent.to_vec()), Some(options))
        .await
        .unwrap_or_else(|e| panic!("adding a torrent: {e:#}"))
        .into_handle()
        .expect("a torrent to download, not a listing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_bytes;
    use sha1::{Digest, Sha1};

    /// A single-file v1 torrent with no tracker.
    fn torrent(name: &str, data: &[u8], piece: usize) -> Vec<u8> {
        let pieces: Vec<u8> = data.chunks(piece).flat_map(Sha1::digest).collect();
        let mut t = Vec::new();
        t.extend_from_slice(b"d4:infod6:lengthi");
        t.extend_from_slice(data.len().to_string().as_bytes());
        t.extend_from_slice(format!("e4:name{}:{name}", name.len()).as_bytes());
        t.extend_from_slice(
            format!("12:piece lengthi{piece}e6:pieces{}:", pieces.len()).as_bytes(),
        );
        t.extend_from_slice(&pieces);
        t.extend_from_slice(b"ee");
        t
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_seeded_torrent_is_fetched_from_its_address() {
        let data = random_bytes(300_000, 3);
        let torrent = torrent("object.bin", &data, 32 * 1024);
        let (seed_dir, fetch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(seed_dir.path().join("object.bin"), &data).unwrap();
        let (seeder, addr) = session(seed_dir.path(), Ipv4Addr::LOCALHOST).await;
        assert_eq!(seeder.listen_addr(), Some(addr));
        seed(&seeder, &torrent, Duration::from_secs(60)).await;
        let (fetcher, _) = session(fetch_dir.path(), Ipv4Addr::LOCALHOST).await;
        fetch(&fetcher, &torrent, &[addr], Duration::from_secs(60)).await;
        let got = std::fs::read(fetch_dir.path().join("object.bin")).unwrap();
        assert!(got == data, "fetched bytes differ");
        seeder.stop().await;
        fetcher.stop().await;
    }
}
