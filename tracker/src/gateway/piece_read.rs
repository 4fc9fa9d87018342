//! The gateway's piece reads: a [`PieceRead`] (`raidtorrent-fetch`) over the holders the gateway
//! knows to be online, and afterwards each holder's record: a transfer for one that delivered,
//! an audit for one that served a bad piece.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raidtorrent_fetch::{ConnOutcome, PieceRead, Sources};

use super::fetch::ObjectShards;
use super::nodes::TransferRecord;
use super::{Gateway, GatewayError};
use crate::registry::NodeId;
use crate::scoring::TransferKind;

/// The longest a read waits for holders to come online, and for one piece.
const MAX_PATIENCE: Duration = Duration::from_secs(30);

/// A piece read of the gateway's, with what it needs to record the holders' part in it.
pub(super) struct GatewayRead {
    pub(super) read: Arc<PieceRead>,
    gw: Gateway,
    /// Which node listens at each data address.
    by_addr: HashMap<SocketAddr, NodeId>,
}

impl GatewayRead {
    /// Starts fetching the pieces of plaintext `range` from the data shards' holders. Waits, up
    /// to the read's patience, until holders of `k` shards are online: right after nodes
    /// restart, they are reconnecting.
    pub(super) async fn start(
        gw: &Gateway,
        shards: &ObjectShards,
        range: Range<u64>,
    ) -> Result<Self, GatewayError> {
        let patience = gw.inner.config.fetch_timeout.min(MAX_PATIENCE);
        let (by_addr, holders) = holders_online(gw, shards, patience).await?;
        let sources = Sources {
            infos: shards.infos.clone(),
            holders,
            layout: shards.manifest.layout,
            patience,
        };
        Ok(GatewayRead {
            read: PieceRead::start(sources, range),
            gw: gw.clone(),
            by_addr,
        })
    }

    /// Ends the read: stops its connections and records what they did. Returns the bytes
    /// fetched.
    pub(super) async fn finish(&self) -> u64 {
        let done = self.read.finish().await;
        for outcome in &done.outcomes {
            self.judge(outcome, done.took).await;
        }
        self.gw
            .inner
            .piece_bytes
            .fetch_add(done.fetched, Ordering::Relaxed);
        done.fetched
    }

    /// A holder that served a bad piece is audited first; one that delivered gets a transfer.
    async fn judge(&self, o: &ConnOutcome, took: Duration) {
        let (Some(&node), Some(info)) = (self.by_addr.get(&o.addr), self.read.info(o.shard)) else {
            return;
        };
        let ih = info.info_hash();
        if let Some(why) = &o.bad {
            tracing::warn!(node, info_hash = %ih, %why, "a read got a bad piece; auditing the node");
            self.gw.suspect(node, &ih);
        } else if o.bytes > 0 {
            let record = TransferRecord {
                node,
                kind: TransferKind::Fetch,
                info_hash: &ih,
                ok: true,
                bytes: o.bytes,
                took,
            };
            self.gw.inner.nodes.record_transfer(record).await;
        }
    }
}

/// Which node listens where, and each shard's holders that may serve (better first), once
/// holders of `k` shards are online; waits for nodes to connect up to `patience`.
async fn holders_online(
    gw: &Gateway,
    shards: &ObjectShards,
    patience: Duration,
) -> Result<(HashMap<SocketAddr, NodeId>, Vec<Vec<SocketAddr>>), GatewayError> {
    let k = shards.manifest.layout.k();
    let deadline = tokio::time::Instant::now() + patience;
    let mut changes = gw.inner.nodes.hub().changes();
    loop {
        changes.borrow_and_update();
        let snapshot = gw.inner.nodes.snapshot();
        let mut holders = vec![Vec::new(); shards.infos.len()];
        for (i, sources) in gw.fetch_candidates(&snapshot, shards, &[]).await? {
            holders[i] = sources;
        }
        let serving = holders.iter().filter(|h| !h.is_empty()).count();
        if serving >= k {
            return Ok((snapshot.by_addr(), holders));
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return Err(GatewayError::Unavailable(format!(
                "{serving} of the {k} shards needed have a holder online"
            )));
        }
    }
}
