//! The gateway's own BitTorrent session (librqbit): it seeds freshly encoded shards until their
//! nodes have them, and fetches shards back from nodes for reads.
//!
//! librqbit facts this relies on (measured; see DESIGN.md): a session without a listener cannot
//! seed, and on loopback it announces port 4240 unless told its port, so the session listens on a
//! port chosen here and announces that port; DHT, LSD and UPnP are off (private swarms only);
//! seeding data already on disk needs `overwrite`, and the data is hash-checked when added.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use librqbit::dht::Id20;
use librqbit::{AddTorrent, AddTorrentOptions, ListenerOptions, Session, SessionOptions};
use raidtorrent_codec::InfoHash;

/// The gateway's session; cheap to clone.
#[derive(Clone)]
pub struct Swarm {
    session: Arc<Session>,
    data_addr: SocketAddr,
}

impl Swarm {
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
        Ok(Swarm {
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
        self.add(folder, torrent, Vec::new(), timeout).await
    }

    /// Downloads a shard into `folder` from `peers` (and whoever the tracker names); resolves when
    /// every piece is in and verified.
    pub async fn fetch(
        &self,
        folder: &Path,
        torrent: Vec<u8>,
        peers: Vec<SocketAddr>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.add(folder, torrent, peers, timeout).await
    }

    async fn add(
        &self,
        folder: &Path,
        torrent: Vec<u8>,
        peers: Vec<SocketAddr>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
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
        tokio::time::timeout(timeout, handle.wait_until_completed())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "shard {} not complete within {timeout:?}",
                    InfoHash(handle.info_hash().0)
                )
            })?
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
