//! The node's BitTorrent client: one librqbit session configured for private swarms (listener with an
//! explicit announce port, no DHT, LSD or UPnP), seeding data already on disk after a hash check.
//! Every shard's data file is read and written through one node-wide cache of open files
//! (`files.rs`), so the session holds any number of shards within a fixed descriptor budget.
//!
//! A node announces only the shards it fetches without being told whom from (RT-0002 "Peers from
//! reports"): the gateway answers every shard's swarm from the held sets nodes report on the
//! control connection, so a node seeding thousands of shards sends the tracker nothing for them.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use librqbit::api::TorrentIdOrHash;
use librqbit::limits::LimitsConfig;
use librqbit::storage::StorageFactoryExt;
use librqbit::{
    AddTorrent, AddTorrentOptions, ListenerMode, ListenerOptions, ManagedTorrent, Session,
    SessionOptions,
};
use raidtorrent_codec::Metainfo;
use raidtorrent_proto::{InfoHash, Transfer};
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::files::{CachedFilesFactory, FileCache};
use crate::node::lock;

pub type TorrentHandle = Arc<ManagedTorrent>;

/// Where a shard's missing pieces come from when it joins the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nowhere: its data is on disk; it is seeded and never announced.
    Disk,
    /// The peers a directive named; nothing is announced.
    Peers(Vec<SocketAddr>),
    /// Whoever the tracker names: the shard's torrent announces to its tracker.
    Tracker,
}

impl Source {
    /// The given peers, or the tracker when there are none.
    pub fn fetch_from(peers: Vec<SocketAddr>) -> Self {
        if peers.is_empty() {
            Source::Tracker
        } else {
            Source::Peers(peers)
        }
    }
}

pub struct Engine {
    session: Arc<Session>,
    /// Opens every shard torrent's files through the node's one [`FileCache`].
    files: CachedFilesFactory,
    cache: Arc<FileCache>,
    listen: SocketAddr,
    /// Every shard's torrent announces, whatever its [`Source`].
    announce_all: bool,
    /// The session's id of each shard's torrent. librqbit 9.1 finds a torrent by info-hash by
    /// scanning all of them, which made a report of 10,000 held shards take a third of a second.
    ids: Mutex<HashMap<InfoHash, usize>>,
}

impl Engine {
    /// Starts the session; shard files are kept open `file_budget` at a time at most.
    pub async fn start(
        shards_dir: &Path,
        listen: SocketAddr,
        limits: &Limits,
        file_budget: usize,
        announce_all: bool,
        token: CancellationToken,
    ) -> anyhow::Result<Self> {
        // librqbit announces 4240 for a loopback listener without an explicit port, so the port must
        // be known before the session starts.
        let listen = if listen.port() == 0 {
            free_port(listen)?
        } else {
            listen
        };
        let cache = FileCache::new(file_budget);
        let files = CachedFilesFactory::new(cache.clone(), shards_dir.to_owned());
        let session = Session::new_with_opts(
            shards_dir.to_owned(),
            SessionOptions {
                dht: None,
                disable_local_service_discovery: true,
                persistence: None,
                fastresume: false,
                ipv4_only: listen.is_ipv4(),
                listen: Some(ListenerOptions {
                    // uTP too: stock clients (libtorrent, qBittorrent) try uTP first and, at their
                    // defaults, give up on a peer that answers only TCP.
                    mode: ListenerMode::TcpAndUtp,
                    listen_addr: listen,
                    announce_port: Some(listen.port()),
                    ipv4_only: listen.is_ipv4(),
                    enable_upnp_port_forwarding: false,
                    ..Default::default()
                }),
                ratelimits: LimitsConfig {
                    upload_bps: limits.upload_bps.and_then(NonZeroU32::new),
                    download_bps: limits.download_bps.and_then(NonZeroU32::new),
                },
                default_storage_factory: Some(files.clone().boxed()),
                cancellation_token: Some(token),
                client_name_and_version: Some(format!(
                    "raidtorrent-peer {}",
                    env!("CARGO_PKG_VERSION")
                )),
                ..Default::default()
            },
        )
        .await
        .context("starting the BitTorrent session")?;
        Ok(Engine {
            session,
            files,
            cache,
            listen,
            announce_all,
            ids: Mutex::default(),
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Shard data files open now; never more than the budget given at start.
    pub fn open_shard_files(&self) -> usize {
        self.cache.open_files()
    }

    /// The most shard data files open at once.
    pub fn shard_file_budget(&self) -> usize {
        self.cache.budget()
    }

    /// Adds a shard torrent; data already on disk is hash-checked and seeded, the rest fetched
    /// from `source`. A torrent the session already has is left as it is.
    pub async fn add(&self, torrent: Vec<u8>, source: Source) -> anyhow::Result<TorrentHandle> {
        let (initial_peers, announce) = match source {
            Source::Disk => (None, self.announce_all),
            Source::Peers(peers) => (Some(peers), self.announce_all),
            Source::Tracker => (None, true),
        };
        // librqbit 9 announces to every tracker a torrent names (its per-torrent
        // `disable_trackers` option is not read), so a torrent that must not announce is added
        // without its trackers.
        let torrent = if announce {
            torrent
        } else {
            Metainfo::parse(&torrent)?.without_trackers()
        };
        let response = self
            .session
            .add_torrent(
                AddTorrent::from_bytes(torrent),
                Some(AddTorrentOptions {
                    overwrite: true,
                    initial_peers,
                    storage_factory: Some(self.files.clone().boxed()),
                    ..Default::default()
                }),
            )
            .await?;
        let handle = response
            .into_handle()
            .context("the session did not keep the torrent")?;
        lock(&self.ids).insert(InfoHash(handle.info_hash().0), handle.id());
        Ok(handle)
    }

    /// The shard's torrent, if the session has it.
    fn handle(&self, ih: &InfoHash) -> Option<TorrentHandle> {
        let id = *lock(&self.ids).get(ih)?;
        self.session
            .get(TorrentIdOrHash::Id(id))
            .filter(|h| h.info_hash().0 == ih.0)
    }

    /// Takes the shard's torrent out of the session, deleting its files or not.
    async fn delete(&self, ih: &InfoHash, files: bool) -> anyhow::Result<()> {
        let Some(handle) = self.handle(ih) else {
            return Ok(());
        };
        let id = handle.id();
        self.session.delete(id.into(), files).await?;
        // An add of the same shard while this one was deleted has a new id: keep that.
        let mut ids = lock(&self.ids);
        if ids.get(ih) == Some(&id) {
            ids.remove(ih);
        }
        Ok(())
    }

    /// Waits for the hash check on add; true when every piece verified.
    pub async fn verified(&self, handle: &TorrentHandle) -> anyhow::Result<bool> {
        handle.wait_until_initialized().await?;
        let stats = handle.stats();
        Ok(stats.total_bytes > 0 && stats.progress_bytes == stats.total_bytes)
    }

    /// Whether a shard is in the session with every piece verified, serving peers.
    pub fn seeding(&self, ih: &InfoHash) -> bool {
        self.handle(ih)
            .is_some_and(|h| h.live().is_some() && h.stats().finished)
    }

    /// Waits until every piece is downloaded and verified; with a `stall`, fails once that passes
    /// without a byte arriving (every source gone, so a fetch cannot hang on for ever unseen). librqbit's
    /// completion notice can be missed when the last piece lands while the waiter registers, so
    /// the state is also re-read every half second.
    pub async fn wait_complete(
        &self,
        handle: &TorrentHandle,
        stall: Option<Duration>,
    ) -> anyhow::Result<()> {
        let mut watch = stall.map(|stall| StallWatch::new(stall, Instant::now()));
        loop {
            let stats = handle.stats();
            if let Some(e) = stats.error {
                anyhow::bail!("{e}");
            }
            if stats.finished {
                return Ok(());
            }
            // Bytes received from peers, whole piece or not; none counted while the torrent is
            // still checking what it has on disk (the clock starts once it is live).
            let fetched = stats.live.as_ref().map(|l| l.snapshot.fetched_bytes);
            if let Some(w) = watch.as_mut() {
                if w.stalled(fetched, Instant::now()) {
                    return Err(Stalled(w.stall).into());
                }
            }
            if let Ok(r) =
                tokio::time::timeout(Duration::from_millis(500), handle.wait_until_completed())
                    .await
            {
                r?;
            }
        }
    }

    /// Stops a shard's torrent and deletes its files; a torrent the session does not have is fine.
    pub async fn remove(&self, ih: &InfoHash) -> anyhow::Result<()> {
        self.delete(ih, true).await
    }

    /// Takes a shard's torrent out of the session and keeps its files.
    pub async fn close(&self, ih: &InfoHash) -> anyhow::Result<()> {
        self.delete(ih, false).await
    }

    /// Per-peer statistics of one shard.
    pub fn transfers(&self, ih: &InfoHash) -> Vec<Transfer> {
        let Some(live) = self.handle(ih).and_then(|h| h.live()) else {
            return Vec::new();
        };
        // librqbit's filter type is only reachable through its serde form.
        let all = serde_json::from_value(serde_json::json!({"state": "all"}))
            .expect("librqbit's peer filter reads {\"state\": \"all\"}");
        live.per_peer_stats_snapshot(all)
            .peers
            .into_iter()
            .map(|(addr, s)| Transfer {
                ih: *ih,
                addr,
                down: s.counters.fetched_bytes,
                up: s.counters.uploaded_bytes,
                errors: s.counters.errors.into(),
                state: s.state.to_owned(),
            })
            .collect()
    }

    pub async fn stop(&self) {
        self.session.stop().await;
    }
}

/// `ip` with a port free for both TCP and UDP (the session listens on both).
fn free_port(ip: SocketAddr) -> anyhow::Result<SocketAddr> {
    let mut last = None;
    for _ in 0..32 {
        let tcp = TcpListener::bind(ip).with_context(|| format!("binding {ip}"))?;
        let addr = tcp.local_addr()?;
        match std::net::UdpSocket::bind(addr) {
            Ok(_) => return Ok(addr),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "no port on {} is free for both TCP and UDP: {last:?}",
        ip.ip()
    ))
}

/// A download that got no byte for its stall time: its sources are gone.
#[derive(Debug, thiserror::Error)]
#[error("no data arrived for {} s: no peer could send this shard", .0.as_secs())]
pub struct Stalled(pub Duration);

/// Whether a download has gone `stall` without progress: the bytes it has are looked at now and
/// then, and the clock restarts whenever they grew.
struct StallWatch {
    stall: Duration,
    bytes: u64,
    since: Instant,
}

impl StallWatch {
    fn new(stall: Duration, now: Instant) -> Self {
        StallWatch {
            stall,
            bytes: 0,
            since: now,
        }
    }

    /// Records that the download has received `bytes` by `now` (`None` while it is not yet
    /// receiving, which restarts the clock); true once none arrived for `stall`.
    fn stalled(&mut self, bytes: Option<u64>, now: Instant) -> bool {
        match bytes {
            None => self.since = now,
            Some(b) if b != self.bytes => (self.bytes, self.since) = (b, now),
            Some(_) => {}
        }
        now.duration_since(self.since) >= self.stall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_stalls_only_after_a_whole_stall_without_new_bytes() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        // (seconds since the start, bytes received then or None while checking, stalled)
        let cases = [
            (0, None, false),
            (30, None, false),
            (39, Some(0), false),
            (49, Some(0), true),
            (50, Some(5), false),
            (59, Some(5), false),
            (60, Some(5), true),
            (61, Some(6), false),
            (70, None, false),
            (80, Some(6), true),
        ];
        let mut watch = StallWatch::new(Duration::from_secs(10), t0);
        for (at, bytes, stalled) in cases {
            assert_eq!(
                watch.stalled(bytes, s(at)),
                stalled,
                "at {at} s with {bytes:?} bytes"
            );
        }
    }
}
