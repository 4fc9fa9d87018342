//! The orphan collector: shards no object references (deleted or replaced objects, failed or
//! interrupted uploads) are dropped from every node that holds them, then forgotten.
//!
//! States: idle (waiting for its interval or a wake-up) → busy (one pass over a batch of orphans) →
//! idle; a node that is offline keeps its holding until a later pass finds it connected.

use std::time::Duration;

use super::Gateway;
use crate::control::Outcome;

/// Orphans looked at per pass.
const BATCH: u32 = 256;
/// Time a node gets to confirm a drop.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn run(
    gw: &Gateway,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = gw.inner.collector.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        match pass(gw).await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(dropped, "orphan copies dropped from nodes"),
            Err(e) => tracing::warn!(error = %e, "orphan collection pass failed"),
        }
    }
}

/// One pass: returns how many copies were dropped.
pub(super) async fn pass(gw: &Gateway) -> Result<usize, super::GatewayError> {
    let inner = &gw.inner;
    let connected: std::collections::HashSet<i64> =
        inner.hub.connected().into_iter().map(|c| c.node).collect();
    let mut dropped = 0;
    for (ih_hex, holders) in inner.meta.orphans(BATCH).await? {
        let Some(ih) = raidtorrent_codec::InfoHash::from_hex(&ih_hex) else {
            continue;
        };
        for node in holders.into_iter().filter(|n| connected.contains(n)) {
            match inner.hub.drop_shard(node, ih, DROP_TIMEOUT).await {
                Ok(Outcome::Acked) => {
                    inner.meta.remove_holding(&ih_hex, node).await?;
                    dropped += 1;
                }
                Ok(Outcome::Refused { code, reason }) => {
                    tracing::warn!(node, %ih, ?code, reason, "node refused to drop an orphan")
                }
                Err(e) => {
                    tracing::debug!(node, %ih, error = %e, "drop not confirmed; retrying later")
                }
            }
        }
        inner.meta.forget_orphan(&ih_hex).await?;
    }
    Ok(dropped)
}
