//! The orphan collector: shards no object references (deleted or replaced objects, failed or
//! interrupted uploads) are dropped from every node that holds them, then forgotten. A node that
//! is offline keeps its holding until a later pass finds it connected.
//!
//! Dropping is final, so an orphan must stay an orphan after a power loss. It does: the collector
//! reads through the database's readers, which see a commit only once it is on disk (the writer
//! commits with `synchronous = FULL`, `registry::db`), so the DELETE or overwrite that orphaned
//! a shard can no longer roll back by the time its copies are dropped.

use std::time::Duration;

use super::worker::{Worker, WorkerHandle};
use super::{Gateway, GatewayError};

/// Orphans looked at per pass.
const BATCH: u32 = 256;

/// The orphan collector.
pub(super) struct Collector {
    pub gw: Gateway,
    pub interval: Duration,
}

impl Worker for Collector {
    fn name(&self) -> &'static str {
        "collector"
    }

    fn between_steps(&self) -> Duration {
        self.interval
    }

    async fn step(&mut self, _: &WorkerHandle) -> Result<(), GatewayError> {
        let dropped = pass(&self.gw).await?;
        if dropped > 0 {
            tracing::info!(dropped, "orphan copies dropped from nodes");
        }
        Ok(())
    }
}

/// One pass: returns how many copies were dropped.
async fn pass(gw: &Gateway) -> Result<usize, GatewayError> {
    let inner = &gw.inner;
    let snapshot = inner.nodes.snapshot();
    let mut dropped = 0;
    for (ih, holders) in inner.meta.orphans(BATCH).await? {
        for node in holders {
            if snapshot.connected(node).is_none() {
                continue;
            }
            match inner.copies.drop(node, &ih).await {
                Ok(()) => dropped += 1,
                Err(e) => {
                    tracing::info!(node, %ih, error = %e, "orphan not dropped; retrying later")
                }
            }
        }
        inner.meta.forget_orphan(&ih).await?;
    }
    Ok(dropped)
}
