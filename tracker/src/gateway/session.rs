//! The gateway's own BitTorrent session (librqbit): it seeds freshly encoded and rebuilt shards
//! until their nodes have them, and fetches shards back from nodes for reads and rebuilds.
//!
//! librqbit facts this relies on (measured; see DESIGN.md): a session without a listener cannot
//! seed, and on loopback it announces port 4240 unless told its port, so the session listens on a
//! port chosen here and announces that port; DHT, LSD and UPnP are off (private swarms only);
//! seeding data already on disk needs `overwrite`, and the data is hash-checked when added.
//!
//! The session announces nothing: every node it seeds to is told its address in the directive,
//! and it fetches only from the holders it names, which are the peers the tracker would name
//! (RT-0002 "Peers from reports"). Torrents join it as their bare info dict, since librqbit 9
//! announces to every tracker a torrent lists.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use librqbit::dht::Id20;
use librqbit::{AddTorrent, AddTorrentOptions, ListenerOptions, Session, SessionOptions};
use raidtorrent_codec::{InfoHash, Metainfo};

/// The gateway's session; cheap to clone.
#[derive(Clone)]
pub struct PeerSession {
    session: Arc<Session>,
    data_addr: SocketAddr,
}

impl PeerSession {
    /// Starts a session that keeps its files under `dir` and takes peer connections on `ip`.
    pub async fn start(dir: &Path, ip: IpAddr) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // librqbit needs the port before it binds (it announces it); take one the OS hands out.
        let port = std::net::TcpListener::bind((ip, 0))?.local_addr()?.port();
        let session = Session::new_with_opts(
            dir.to_owned(),
            SessionOptions {
                dht: None,
                disable_local_service_discovery: true,
                persistence: None,
                fastresume: false,
                ipv4_only: ip.is_ipv4(),
                listen: Some(ListenerOptions {
                    listen_addr: (ip, port).into(),
                    announce_port: Some(port),
                    ipv4_only: ip.is_ipv4(),
                    enable_upnp_port_forwarding: false,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;
        Ok(PeerSession {
            session,
            data_addr: (ip, port).into(),
        })
    }

    /// Where nodes reach this session's peer-wire listener.
    pub fn data_addr(&self) -> SocketAddr {
        self.data_addr
    }

    /// Seeds a shard whose file already sits in `folder`; resolves once its pieces checked out.
    pub async fn seed(
        &self,
        folder: &Path,
        torrent: Vec<u8>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.add(folder, torrent, Vec::new(), timeout).await.0
    }

    /// Downloads a shard into `folder` from `peers`; resolves when
    /// every piece is in and verified. Also says how each peer did: librqbit drops a peer whose
    /// piece fails its hash and counts that as an error against it.
    pub async fn fetch(
        &self,
        folder: &Path,
        torrent: Vec<u8>,
        peers: Vec<SocketAddr>,
        timeout: Duration,
    ) -> (anyhow::Result<()>, Vec<PeerReport>) {
        let (result, handle) = self.add(folder, torrent, peers, timeout).await;
        let reports = handle.map(|h| peer_reports(&h)).unwrap_or_default();
        (result, reports)
    }

    async fn add(
        &self,
        folder: &Path,
        torrent: Vec<u8>,
        peers: Vec<SocketAddr>,
        timeout: Duration,
    ) -> (anyhow::Result<()>, Option<Arc<librqbit::ManagedTorrent>>) {
        let handle = match self.add_handle(folder, torrent, peers).await {
            Ok(h) => h,
            Err(e) => return (Err(e), None),
        };
        let result = tokio::time::timeout(timeout, handle.wait_until_completed())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "shard {} not complete within {timeout:?}",
                    InfoHash(handle.info_hash().0)
                )
            })
            .and_then(|r| r);
        (result, Some(handle))
    }

    async fn add_handle(
        &self,
        folder: &Path,
        torrent: Vec<u8>,
        peers: Vec<SocketAddr>,
    ) -> anyhow::Result<Arc<librqbit::ManagedTorrent>> {
        let torrent = Metainfo::parse(&torrent)?.without_trackers();
        let handle = self
            .session
            .add_torrent(
                AddTorrent::from_bytes(torrent),
                Some(AddTorrentOptions {
                    overwrite: true,
                    output_folder: Some(folder.to_string_lossy().into_owned()),
                    initial_peers: (!peers.is_empty()).then_some(peers),
                    ..Default::default()
                }),
            )
            .await?
            .into_handle()
            .ok_or_else(|| anyhow::anyhow!("librqbit did not return a torrent handle"))?;
        Ok(handle)
    }

    /// Stops seeding or fetching a shard; with `delete_files`, its file goes too.
    pub async fn forget(&self, info_hash: InfoHash, delete_files: bool) {
        let id = Id20::new(info_hash.0);
        if let Err(e) = self.session.delete(id.into(), delete_files).await {
            tracing::debug!(%info_hash, error = %e, "forgetting a shard the session did not have");
        }
    }

    pub async fn stop(&self) {
        self.session.stop().await;
    }
}

/// How one peer did in a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    pub addr: SocketAddr,
    /// Bytes received from it.
    pub fetched_bytes: u64,
    /// Times librqbit dropped it: a piece that failed its hash, or a broken connection.
    pub errors: u32,
}

/// Every peer the torrent met, live or gone.
fn peer_reports(handle: &librqbit::ManagedTorrent) -> Vec<PeerReport> {
    let Some(live) = handle.live() else {
        return Vec::new();
    };
    // librqbit does not export the filter's type (without its HTTP API); it is built from its
    // serde form, its type inferred from the call.
    let all = serde_json::from_str(r#"{"state":"all"}"#).expect("librqbit's peer filter form");
    live.per_peer_stats_snapshot(all)
        .peers
        .into_iter()
        .filter_map(|(addr, stats)| {
            Some(PeerReport {
                addr: addr.parse().ok()?,
                fetched_bytes: stats.counters.fetched_bytes,
                errors: stats.counters.errors,
            })
        })
        .collect()
}
