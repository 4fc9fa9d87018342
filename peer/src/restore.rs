//! Bringing held shards from disk into the session: at start for the whole held set, then every
//! [`RETRY`] for the shards still parked (see `STATE.md`).
//!
//! Every held shard enters the ledger parked, then comes into the session: all of them, however
//! many, since shard files share one fixed budget of descriptors (`files.rs`). Only a metainfo
//! file that does not exist forgets a shard. Any other failure (an I/O error, permissions, too
//! many open files elsewhere in the process) leaves it parked: still in the held set, its files
//! untouched, tried again later. A transient error is never read as "missing".

use std::sync::Arc;
use std::time::Duration;

use raidtorrent_proto::InfoHash;

use crate::engine::Source;
use crate::node::{lock, Node};
use crate::store::StoredShard;

/// How often parked shards are tried again.
pub(crate) const RETRY: Duration = Duration::from_secs(30);

/// What a pass over the parked shards did.
#[derive(Debug, Default)]
pub(crate) struct Reopening {
    /// Now in the session.
    pub opened: usize,
    /// Forgotten: their metainfo file does not exist.
    pub forgotten: Vec<InfoHash>,
    /// Still parked after a failure, tried again later.
    pub failed: usize,
}

/// What came of bringing one parked shard into the session.
enum Reopened {
    /// In the session, every piece verified: held.
    Verified,
    /// In the session with pieces missing: fetched again (its metainfo is passed on).
    Incomplete(Vec<u8>),
    /// Its metainfo file does not exist: it cannot be seeded, and is forgotten.
    NoMetainfo,
}

impl Node {
    /// Puts the held set on disk into the ledger (parked), then into the session, and writes the
    /// held set back as a new snapshot.
    pub(crate) async fn restore(self: &Arc<Self>) -> anyhow::Result<()> {
        let stored = self.store.load()?;
        let strays = self.store.remove_strays(&stored)?;
        if strays > 0 {
            tracing::info!(files = strays, "removed data of shards no longer held");
        }
        let started = std::time::Instant::now();
        for s in stored {
            let Some(ih) = InfoHash::from_hex(&s.info_hash) else {
                tracing::warn!(info_hash = %s.info_hash, "held set entry with a bad info-hash; skipped");
                continue;
            };
            let StoredShard {
                name,
                length,
                owners,
                ..
            } = s;
            let owners = owners.iter().map(|o| self.config.owner_named(o)).collect();
            lock(&self.ledger).park(ih, name, length, owners);
        }
        let r = self.reopen_parked().await;
        tracing::info!(
            shards = r.opened,
            parked = r.failed,
            elapsed = ?started.elapsed(),
            "held set restored"
        );
        self.persist_all().await
    }

    /// Brings parked shards into the session.
    pub(crate) async fn reopen_parked(self: &Arc<Self>) -> Reopening {
        let mut r = Reopening::default();
        let parked = lock(&self.ledger).parked();
        for ih in parked {
            match self.reopen(&ih).await {
                Ok(Reopened::Verified) => {
                    r.opened += usize::from(lock(&self.ledger).unpark(&ih, true));
                }
                Ok(Reopened::Incomplete(torrent)) => {
                    if lock(&self.ledger).unpark(&ih, false) {
                        tracing::warn!(%ih, "shard data incomplete on disk; fetching it again");
                        // No stall bound: its sources are announced only every few hours, and
                        // the copy is one a gateway counts on.
                        crate::directives::spawn_fetch(self, ih, torrent, Vec::new(), None);
                        r.opened += 1;
                    }
                }
                Ok(Reopened::NoMetainfo) => {
                    tracing::warn!(%ih, "metainfo file missing: shard forgotten");
                    lock(&self.ledger).forget_parked(&ih);
                    r.forgotten.push(ih);
                }
                Err(e) => {
                    r.failed += 1;
                    tracing::warn!(%ih, "shard kept on disk, not served for now: {e:#}");
                }
            }
        }
        r
    }

    async fn reopen(&self, ih: &InfoHash) -> anyhow::Result<Reopened> {
        let Some(torrent) = self.store.read_torrent(ih)? else {
            return Ok(Reopened::NoMetainfo);
        };
        let handle = self.engine.add(torrent.clone(), Source::Disk).await?;
        match self.engine.verified(&handle).await {
            Ok(true) => Ok(Reopened::Verified),
            Ok(false) => {
                // Fetched again through the tracker, so out of the session until then.
                self.engine.close(ih).await?;
                Ok(Reopened::Incomplete(torrent))
            }
            Err(e) => {
                // Out of the session, files kept: it stays parked.
                if let Err(closed) = self.engine.close(ih).await {
                    tracing::warn!(%ih, "closing a shard that failed to open: {closed:#}");
                }
                Err(e)
            }
        }
    }
}

/// Tries parked shards again every [`RETRY`] until the node stops.
pub(crate) async fn run(node: Arc<Node>) {
    let token = node.tasks.token().clone();
    let mut tick = tokio::time::interval(RETRY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let parked = lock(&node.ledger).parked().len();
        if parked == 0 {
            continue;
        }
        let r = node.reopen_parked().await;
        if r.opened > 0 || !r.forgotten.is_empty() {
            // Shards now served are reported; forgotten ones leave the held set.
            if let Err(e) = node.persist(&r.forgotten).await {
                tracing::error!("{e:#}");
            }
        }
    }
}
