//! A client's short-lived BitTorrent session: an [`Engine`] over a temporary directory that
//! `put` seeds shards from (`get` needs none: it leeches pieces itself). The directory outlives
//! the session: `put` removes it with its journal (`super::journal`), so that a `put` killed
//! outright can be resumed from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::engine::{Engine, Source, TorrentHandle};

/// Shard files kept open at once: the session holds at most k + m shards, opened on demand.
const FILE_BUDGET: usize = 64;

pub struct ClientSession {
    pub engine: Arc<Engine>,
    token: CancellationToken,
    dir: PathBuf,
}

impl ClientSession {
    /// A new empty temporary directory for shards, kept until its owner removes it; the engine
    /// starts later, in [`ClientSession::start`].
    pub fn dir() -> anyhow::Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix("raidtorrent-client-")
            .tempdir()
            .context("creating a temporary directory for shards")?;
        Ok(dir.keep())
    }

    /// Starts a session over `dir` (shards already there are hash-checked and seeded once added).
    pub async fn start(dir: &Path, listen: SocketAddr) -> anyhow::Result<Self> {
        let token = CancellationToken::new();
        let engine = Engine::start(
            dir,
            listen,
            &Limits::default(),
            FILE_BUDGET,
            false,
            token.child_token(),
        )
        .await?;
        Ok(ClientSession {
            engine: Arc::new(engine),
            token,
            dir: dir.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Adds a shard's torrent (tracker-less), seeding to `peers`.
    pub async fn add(
        &self,
        torrent: Vec<u8>,
        peers: Vec<SocketAddr>,
    ) -> anyhow::Result<TorrentHandle> {
        let source = match peers.is_empty() {
            true => Source::Disk,
            false => Source::Peers(peers),
        };
        self.engine.add(torrent, source).await
    }

    /// Stops the engine and its tasks; the directory stays.
    pub async fn stop(&self) {
        self.engine.stop().await;
        self.token.cancel();
    }
}

/// Socket addresses from the gateway's strings; those that do not parse are skipped with a warning.
pub fn parse_nodes(nodes: &[String]) -> Vec<SocketAddr> {
    nodes
        .iter()
        .filter_map(|n| match n.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                tracing::warn!(node = %n, "the gateway named a node address that does not parse");
                None
            }
        })
        .collect()
}
